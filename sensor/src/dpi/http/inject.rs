//! Conservative detectors for attacks carried in a URL, standing in for nDPI's use of
//! libinjection (XSS, SQL injection) and its RCE word lists. Each looks at the query string's
//! parameter values after percent-decoding (`+` as space), lower-cased, and wants a
//! characteristic construct, not a lone keyword:
//! - XSS: an HTML tag or handler that runs script (`<script`, `<svg/onload`, `javascript:`, `onerror=`...).
//! - SQLi: a quote or comment that closes the literal followed by SQL (`' or `, `' union select`, `--`),
//!   or `union [all] select` / stacked queries anywhere.
//! - RCE: a shell command at the start of a value or after `;`, `|`, `&&`, `` ` ``, `$(`, or PHP
//!   code-execution calls.
//! - Path traversal: `../` (also encoded) anywhere in the path ("suspicious URL").

use crate::dpi::util::MAX_URL;

/// What [`scan_url`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlFindings {
    /// Cross-site scripting.
    pub xss: bool,
    /// SQL injection.
    pub sqli: bool,
    /// Remote code execution.
    pub rce: bool,
    /// Path traversal.
    pub traversal: bool,
}

/// Scans a request target (path and query).
pub fn scan_url(url: &str) -> UrlFindings {
    let url = url.get(..MAX_URL).unwrap_or(url);
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut f = UrlFindings::default();
    let dpath = decode(path, true).to_ascii_lowercase();
    f.traversal = dpath.contains("../")
        || dpath.contains("..\\")
        || dpath.contains("..%5c")
        || dpath.contains("..%2f");
    let mut values: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v).or(Some(kv)))
        .map(|v| decode(v, false).to_ascii_lowercase())
        .collect();
    // Attacks sometimes sit in the path itself.
    values.push(dpath);
    for v in values.iter().filter(|v| worth_scanning(v)) {
        f.xss |= is_xss(v);
        f.sqli |= is_sqli(v);
        f.rce |= is_rce(v);
    }
    f
}

/// Percent-decodes `s` (twice, to see through double encoding), `+` as space in queries.
fn decode(s: &str, path: bool) -> String {
    let once = percent(s, !path);
    if once.contains('%') {
        percent(&once, false)
    } else {
        once
    }
}

fn percent(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hv = |c: u8| (c as char).to_digit(16);
                if let (Some(h), Some(l)) = (hv(b[i + 1]), hv(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `v` can match any pattern of [`is_xss`], [`is_sqli`] or [`is_rce`]: each needs one
/// of these characters, except two plain-word patterns. Most URLs are plain paths; this keeps
/// them off the substring searches (the cost of a new HTTP flow).
fn worth_scanning(v: &str) -> bool {
    v.bytes().any(|b| {
        matches!(
            b,
            b'<' | b':' | b'(' | b'\'' | b'"' | b';' | b'|' | b'&' | b'`' | b'$' | b'='
        ) || b.is_ascii_whitespace()
    }) || v.contains("information_schema")
        || v.contains("document.cookie")
}

fn is_xss(v: &str) -> bool {
    const TAGS: &[&str] = &[
        "<script", "<iframe", "<svg", "<img", "<body", "<object", "<embed", "<marquee", "<details",
    ];
    const HANDLERS: &[&str] = &[
        "onerror=",
        "onload=",
        "onmouseover=",
        "onfocus=",
        "ontoggle=",
        "onclick=",
    ];
    v.contains("javascript:")
        || v.contains("vbscript:")
        || TAGS.iter().any(|t| v.contains(t))
        || (v.contains('<') && HANDLERS.iter().any(|h| v.contains(h)))
        || v.contains("document.cookie")
        || (v.contains("alert(") && (v.contains('<') || v.contains('"') || v.contains('\'')))
}

fn is_sqli(v: &str) -> bool {
    let squeezed: String = v.split_whitespace().collect::<Vec<_>>().join(" ");
    let v = squeezed.as_str();
    if v.contains("union select")
        || v.contains("union all select")
        || v.contains("information_schema")
    {
        return true;
    }
    // A closing quote followed by SQL.
    for q in ['\'', '"'] {
        for (i, _) in v.match_indices(q) {
            let after = v[i + 1..].trim_start_matches(')').trim_start();
            if [
                "or ", "and ", "union ", "select ", "order by", "group by", "--", "having ",
            ]
            .iter()
            .any(|k| after.starts_with(k))
            {
                return true;
            }
        }
    }
    [
        "sleep(",
        "benchmark(",
        "waitfor delay",
        "; drop ",
        ";drop ",
        "' or '1'='1",
        " or 1=1",
    ]
    .iter()
    .any(|k| v.contains(k))
}

fn is_rce(v: &str) -> bool {
    const COMMANDS: &[&str] = &[
        "ls",
        "cat",
        "id",
        "uname",
        "wget",
        "curl",
        "nc",
        "bash",
        "sh",
        "whoami",
        "ping",
        "rm",
        "chmod",
        "perl",
        "python",
        "/bin/sh",
        "/bin/bash",
        "cmd.exe",
        "cmd",
        "powershell",
        "echo",
        "nslookup",
        "ifconfig",
        "netstat",
    ];
    const PHP: &[&str] = &[
        "system(",
        "exec(",
        "passthru(",
        "shell_exec(",
        "popen(",
        "proc_open(",
        "eval(",
        "phpinfo(",
        "assert(",
    ];
    if PHP.iter().any(|p| v.contains(p)) {
        return true;
    }
    let starts_cmd = |s: &str| {
        let s = s.trim_start();
        COMMANDS.iter().any(|c| {
            s.strip_prefix(c)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ';', '|', '&', '\t']))
        })
    };
    if starts_cmd(v) && v.len() < 256 && v.contains(' ') {
        return true;
    }
    for sep in [";", "|", "&&", "`", "$("] {
        let mut it = v.split(sep);
        it.next();
        if it.any(starts_cmd) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_classics() {
        assert!(scan_url("/x?default=English%3Cscript%3Ealert(1)%3C/script%3E").xss);
        assert!(scan_url("/sqli/?id=%3Fid%3Da%27+UNION+SELECT+%22text%22").sqli);
        assert!(scan_url("/q?id=1%27%20or%20%271%27=%271").sqli);
        assert!(scan_url("/index.php?file=viewtopic&rush=%6c%73%20").rce);
        assert!(scan_url("/a?cmd=;cat%20/etc/passwd").rce);
        assert!(scan_url("/../../../../etc/shadow").traversal);
        assert!(scan_url("/_vti_bin/..%255c..%255cwinnt/system32/cmd.exe").traversal);
    }

    #[test]
    fn ordinary_urls_are_clean() {
        for u in [
            "/",
            "/search?q=rust+select+from+list",
            "/a?name=O%27Brien",
            "/index.m3u8?token=89b198b8844824ca15b8b379c26fc1b7",
            "/api?lang=en&sort=id",
            "/docs/ls-command.html",
            "/wiki/Category:Shell?id=1",
        ] {
            assert_eq!(scan_url(u), UrlFindings::default(), "{u}");
        }
    }
}
