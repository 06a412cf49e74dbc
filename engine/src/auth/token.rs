//! Tokens: `nw_<id>_<secret>`, `id` 8 hex digits naming the token (for lookup, logs and
//! revocation: not secret), `secret` 256 random bits as 64 hex digits. Only SHA-256 of the
//! secret is stored (a 256-bit random secret needs no slow hash: it cannot be guessed, only
//! stolen), and the presented secret's digest is compared in constant time (`subtle`).

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::notify::format::webhook::hex;

/// What a token may do; each scope includes the ones below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET (and HEAD).
    Read,
    /// POST, PUT, PATCH, DELETE on the API.
    Write,
    /// Token management.
    Admin,
}

impl Scope {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// A stored token: never the secret, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// The public id (8 hex digits).
    pub id: String,
    /// A name for people (who or what uses it).
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
    /// Expiry, ns since the epoch (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ns: Option<u64>,
    /// SHA-256 of the secret part, hex.
    pub sha256: String,
}

impl TokenRecord {
    /// Whether the token grants `scope` (admin ⊃ write ⊃ read).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s >= scope)
    }

    /// Whether the token has expired at `now_ns`.
    pub fn expired(&self, now_ns: u64) -> bool {
        self.expires_ns.is_some_and(|e| now_ns >= e)
    }

    /// Whether `secret` is this token's secret (constant time in the secret's content).
    pub fn matches(&self, secret: &str) -> bool {
        let digest = sha2::Sha256::digest(secret.as_bytes());
        let presented = hex(&digest);
        presented.as_bytes().ct_eq(self.sha256.as_bytes()).into()
    }
}

/// A presented token split into its id and secret.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    /// The id.
    pub id: &'a str,
    /// The secret part.
    pub secret: &'a str,
}

/// Parses `nw_<id>_<secret>` (`None` when it is not of that shape).
pub fn parse(token: &str) -> Option<Presented<'_>> {
    let rest = token.strip_prefix("nw_")?;
    let (id, secret) = rest.split_once('_')?;
    let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(id, 8) && hexy(secret, 64)).then_some(Presented { id, secret })
}

/// A new token: the record to store and the token to show once.
pub fn generate(
    name: &str,
    scopes: Vec<Scope>,
    now_ns: u64,
    expires_ns: Option<u64>,
) -> Result<(TokenRecord, String), getrandom::Error> {
    let mut id = [0u8; 4];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let (id, secret) = (hex(&id), hex(&secret));
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_owned(),
        scopes,
        created_ns: now_ns,
        expires_ns,
        sha256: hex(&sha2::Sha256::digest(secret.as_bytes())),
    };
    Ok((record, format!("nw_{id}_{secret}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_match() {
        let (rec, token) = generate("ci", vec![Scope::Write], 1, Some(10)).unwrap();
        let p = parse(&token).unwrap();
        assert_eq!(p.id, rec.id);
        assert!(rec.matches(p.secret));
        assert!(!rec.matches(&"0".repeat(64)));
        assert!(!rec.sha256.contains(p.secret));
        assert!(rec.allows(Scope::Read) && rec.allows(Scope::Write) && !rec.allows(Scope::Admin));
        assert!(!rec.expired(9) && rec.expired(10));
        assert!(parse("nw_xyz_abc").is_none());
        assert!(parse(&token[..token.len() - 1]).is_none());
        let (other, _) = generate("ci", vec![Scope::Read], 1, None).unwrap();
        assert_ne!(other.sha256, rec.sha256);
    }
}
