//! Validation as pure functions: the same rules as the CEL `x-kubernetes-validations` in the
//! schemas (which the API server enforces at admission), checked again by the operator before
//! it publishes and by `standalone --config`, which has no API server. Every error names the
//! field and says what to fix.

use std::fmt;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One rule a spec breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field (`spec.hosts[0].cidr`).
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl FieldError {
    /// A new error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins errors into one condition message (`a: x; b: y`).
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A spec that can check itself.
pub trait Validate {
    /// Every rule the spec breaks (empty when valid).
    fn validate(&self) -> Vec<FieldError>;
}

/// An IP network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The network address as written (host bits are allowed, as in CEL's `cidr()`).
    pub addr: IpAddr,
    /// Prefix length (32 or 128 for a single address).
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses `10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32` (what CEL's `isIP(self) || isCIDR(self)` accepts).
pub fn parse_ip_or_cidr(text: &str) -> Result<IpNet, String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!("{text:?} is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "{text:?} has a prefix length that is not 0..={max}"
                ));
            }
        },
    };
    Ok(IpNet { addr, prefix })
}

/// Checks a label key (`[prefix/]name`, name ≤ 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn check_label_key(key: &str) -> Result<(), String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !is_dns_subdomain(prefix) {
                return Err(format!(
                    "label key {key:?} has an invalid prefix (a DNS subdomain)"
                ));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 || !is_label_chars(name) {
        return Err(format!(
            "label key {key:?} must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a label value (empty, or ≤ 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_chars(value)) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} must be at most 63 characters of letters, digits, '-', '_' or '.'"
        ))
    }
}

fn is_label_chars(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

/// Checks a label selector as the API server would (keys, values, operators).
pub fn check_label_selector(field: &str, selector: &LabelSelector) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        if let Err(e) = check_label_key(key).and_then(|()| check_label_value(value)) {
            errors.push(FieldError::new(format!("{field}.matchLabels"), e));
        }
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        if let Err(e) = check_label_key(&expr.key) {
            errors.push(FieldError::new(format!("{at}.key"), e));
        }
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errors.push(FieldError::new(
                    format!("{at}.values"),
                    "In and NotIn need at least one value",
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errors.push(FieldError::new(
                    format!("{at}.values"),
                    "Exists and DoesNotExist take no values",
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(FieldError::new(
                format!("{at}.operator"),
                format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist"),
            )),
        }
        for v in values {
            if let Err(e) = check_label_value(v) {
                errors.push(FieldError::new(format!("{at}.values"), e));
            }
        }
    }
    errors
}

/// Whether a selector selects nothing in particular (no labels, no expressions: everything).
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(std::collections::BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Checks an interface name or glob (`eth0`, `ens*`, `veth?abc`): 1-15 characters (Linux
/// `IFNAMSIZ - 1`) of letters, digits, `-_.:@` and the wildcards `*` and `?`.
pub fn check_interface_pattern(pattern: &str) -> Result<(), String> {
    let ok = !pattern.is_empty()
        && pattern.len() <= 15
        && pattern.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@' | b'*' | b'?')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{pattern:?} is not an interface name or glob: 1-15 characters of letters, digits, '-', '_', '.', ':', '@', '*' or '?'"
        ))
    }
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Checks a domain pattern (`example.com`, `*.example.com`): DNS labels, a leading `*.` allowed.
pub fn check_domain_pattern(pattern: &str) -> Result<(), String> {
    let rest = pattern.strip_prefix("*.").unwrap_or(pattern);
    let ok = !rest.is_empty()
        && pattern.len() <= 253
        && rest.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{pattern:?} is not a domain or a `*.domain` pattern"
        ))
    }
}

/// Whether a domain matches a pattern from [`check_domain_pattern`] (case-insensitive;
/// `*.example.com` matches subdomains, not `example.com` itself).
pub fn domain_matches(pattern: &str, domain: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            domain.len() > suffix.len() + 1
                && domain[domain.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && domain.as_bytes()[domain.len() - suffix.len() - 1] == b'.'
        }
        None => domain.eq_ignore_ascii_case(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn cidrs_parse_like_cel() {
        assert_eq!(parse_ip_or_cidr("10.0.0.0/8").unwrap().prefix, 8);
        assert_eq!(parse_ip_or_cidr("10.1.2.3").unwrap().prefix, 32);
        assert_eq!(parse_ip_or_cidr("2001:db8::/32").unwrap().prefix, 32);
        assert!(parse_ip_or_cidr("10.0.0.0/33").is_err());
        assert!(parse_ip_or_cidr("10.0.0/8").is_err());
        assert!(parse_ip_or_cidr("10.0.0.0/+8").is_err());
        assert!(parse_ip_or_cidr("example.com").is_err());
        assert!(parse_ip_or_cidr("2001:db8::/129").is_err());
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net = parse_ip_or_cidr("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert!(
            parse_ip_or_cidr("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            parse_ip_or_cidr("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::42".parse().unwrap())
        );
    }

    #[test]
    fn selectors_are_checked_like_the_api_server() {
        let good = LabelSelector {
            match_labels: Some([("app.kubernetes.io/name".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["frontend".into()]),
            }]),
        };
        assert!(check_label_selector("spec.podSelector", &good).is_empty());
        let bad = LabelSelector {
            match_labels: Some([("-bad".to_string(), "x".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Within".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: None,
                },
            ]),
        };
        let errors = check_label_selector("spec.podSelector", &bad);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[1]
                .to_string()
                .contains("matchExpressions[0].operator")
        );
        assert!(selector_is_empty(&LabelSelector::default()));
    }

    #[test]
    fn interface_globs() {
        assert!(check_interface_pattern("eth0").is_ok());
        assert!(check_interface_pattern("veth*").is_ok());
        assert!(check_interface_pattern("").is_err());
        assert!(check_interface_pattern("a-very-long-interface").is_err());
        assert!(check_interface_pattern("eth0;rm").is_err());
        assert!(glob_matches("veth*", "veth12ab"));
        assert!(glob_matches("eth?", "eth1"));
        assert!(!glob_matches("eth?", "eth10"));
        assert!(glob_matches("*", "lo"));
        assert!(glob_matches("e*h*0", "eth0"));
        assert!(!glob_matches("ens*", "eth0"));
    }

    #[test]
    fn domain_patterns() {
        assert!(check_domain_pattern("*.example.com").is_ok());
        assert!(check_domain_pattern("example.com").is_ok());
        assert!(check_domain_pattern("*.").is_err());
        assert!(check_domain_pattern("exa mple.com").is_err());
        assert!(domain_matches("*.example.com", "api.EXAMPLE.com"));
        assert!(!domain_matches("*.example.com", "example.com"));
        assert!(!domain_matches("*.example.com", "badexample.com"));
        assert!(domain_matches("example.com", "example.com."));
    }
}
