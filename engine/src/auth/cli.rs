//! `netwarden-engine token create|list|revoke` and the server's authentication flags.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use tracing::{info, warn};

use super::store::{StoreError, TokenFile};
use super::token::{Scope, generate};
use super::{Auth, DEFAULT_BURST, DEFAULT_RATE_PER_MINUTE};
use crate::notify::format::{now_ns, rfc3339};

/// A failed token command or authentication setup.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness.
    #[error("cannot draw a random token: {0}")]
    Random(String),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// Writing the output.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// `token …`: manage the API tokens of a token file.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The token file (created when missing).
    #[arg(long, env = "NETWARDEN_TOKENS_FILE", global = true)]
    pub tokens: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// Token subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Creates a token and prints it once on stdout (only its SHA-256 is stored).
    Create {
        /// A name for people (who or what uses the token).
        #[arg(long)]
        name: String,
        /// Scopes, comma-separated: read, write, admin (each includes the ones before it).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "read")]
        scope: Vec<Scope>,
        /// Lifetime: `90d`, `12h`, `30m` (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Lists the tokens (id, name, scopes, expiry; never secrets).
    List,
    /// Revokes tokens by id or by name.
    Revoke {
        /// Token id (8 hex digits) or name.
        id_or_name: String,
    },
}

/// Parses `90d`, `12h`, `30m`, `45s` into nanoseconds.
pub fn parse_lifetime(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "d" => n.checked_mul(86_400)?,
        "h" => n.checked_mul(3_600)?,
        "m" => n.checked_mul(60)?,
        "s" => n,
        _ => return None,
    };
    (secs > 0)
        .then(|| secs.checked_mul(1_000_000_000))
        .flatten()
}

/// Runs a token command; the new token goes to `out`, everything else to `err`.
pub fn run(args: &TokenArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), AuthError> {
    let path = args
        .tokens
        .as_deref()
        .ok_or_else(|| AuthError::Usage("name the token file with --tokens FILE".into()))?;
    let mut file = TokenFile::load(path)?;
    match &args.command {
        TokenCommand::Create {
            name,
            scope,
            expires_in,
        } => {
            if name.trim().is_empty() || name.len() > 200 {
                return Err(AuthError::Usage(
                    "--name must be 1 to 200 characters".into(),
                ));
            }
            let now = now_ns();
            let expires = expires_in
                .as_deref()
                .map(|e| {
                    parse_lifetime(e)
                        .map(|d| now.saturating_add(d))
                        .ok_or_else(|| {
                            AuthError::Usage(format!(
                                "--expires-in {e:?}: use 90d, 12h, 30m or 45s"
                            ))
                        })
                })
                .transpose()?;
            let mut scopes = scope.clone();
            scopes.sort();
            scopes.dedup();
            let (record, token) = generate(name, scopes, now, expires)
                .map_err(|e| AuthError::Random(e.to_string()))?;
            writeln!(
                err,
                "created token {} ({}) with scopes {}{}; it is shown once, store it now",
                record.id,
                record.name,
                record
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                record
                    .expires_ns
                    .map(|e| format!(", expires {}", rfc3339(e)))
                    .unwrap_or_default(),
            )?;
            file.tokens.push(record);
            file.save(path)?;
            writeln!(out, "{token}")?;
        }
        TokenCommand::List => {
            writeln!(
                out,
                "{:<8}  {:<24}  {:<16}  EXPIRES",
                "ID", "NAME", "SCOPES"
            )?;
            let now = now_ns();
            for t in &file.tokens {
                let expires = match t.expires_ns {
                    None => "never".to_owned(),
                    Some(e) if e <= now => format!("{} (expired)", rfc3339(e)),
                    Some(e) => rfc3339(e),
                };
                writeln!(
                    out,
                    "{:<8}  {:<24}  {:<16}  {expires}",
                    t.id,
                    t.name,
                    t.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )?;
            }
        }
        TokenCommand::Revoke { id_or_name } => {
            let before = file.tokens.len();
            file.tokens
                .retain(|t| t.id != *id_or_name && t.name != *id_or_name);
            let removed = before - file.tokens.len();
            if removed == 0 {
                return Err(AuthError::Usage(format!(
                    "no token with id or name {id_or_name:?}"
                )));
            }
            file.save(path)?;
            writeln!(err, "revoked {removed} token(s)")?;
        }
    }
    Ok(())
}

/// The API server's authentication flags (`run` and `standalone`).
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Token file (see `netwarden-engine token create`); every API request then needs
    /// `Authorization: Bearer <token>`, except /healthz and /readyz.
    #[arg(long, env = "NETWARDEN_TOKENS_FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve the API without tokens (`run` refuses to start without --tokens otherwise).
    #[arg(long, env = "NETWARDEN_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Serve /metrics without a token (for Prometheus scrapes).
    #[arg(long, env = "NETWARDEN_OPEN_METRICS")]
    pub open_metrics: bool,
    /// Requests per minute and token.
    #[arg(long, default_value_t = DEFAULT_RATE_PER_MINUTE)]
    pub api_rate_per_minute: u32,
    /// Requests a token may burst above its rate.
    #[arg(long, default_value_t = DEFAULT_BURST)]
    pub api_rate_burst: u32,
}

impl AuthArgs {
    fn enforced(&self, path: &std::path::Path) -> Result<Auth, AuthError> {
        let auth = Auth::tokens(path)?
            .with_open_metrics(self.open_metrics)
            .with_rate(self.api_rate_per_minute, self.api_rate_burst);
        info!(path = %path.display(), open_metrics = self.open_metrics, "API tokens required");
        Ok(auth)
    }

    /// Cluster mode: tokens required unless `--insecure-no-auth`.
    pub fn for_run(&self) -> Result<Auth, AuthError> {
        match (&self.tokens, self.insecure_no_auth) {
            (Some(path), false) => self.enforced(path),
            (Some(_), true) => Err(AuthError::Usage(
                "--tokens and --insecure-no-auth contradict each other".into(),
            )),
            (None, true) => {
                warn!("the API is open to anyone who can reach it (--insecure-no-auth)");
                Ok(Auth::open())
            }
            (None, false) => Err(AuthError::Usage(
                "the API needs tokens: give --tokens FILE (netwarden-engine token create) or --insecure-no-auth".into(),
            )),
        }
    }

    /// Standalone: tokens when `--tokens` is given, else open (and said so in the log).
    pub fn for_standalone(&self, listen: SocketAddr) -> Result<Auth, AuthError> {
        if let Some(path) = &self.tokens {
            return self.enforced(path);
        }
        if listen.ip().is_loopback() {
            info!(%listen, "the API is open without tokens (standalone on a loopback address; --tokens FILE secures it)");
        } else {
            warn!(%listen, "the API is open without tokens to anyone who can reach this address; give --tokens FILE");
        }
        Ok(Auth::open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("2d"), Some(2 * 86_400 * 1_000_000_000));
        assert_eq!(parse_lifetime("30m"), Some(1_800 * 1_000_000_000));
        assert_eq!(parse_lifetime("0d"), None);
        assert_eq!(parse_lifetime("d"), None);
        assert_eq!(parse_lifetime("5y"), None);
        assert_eq!(parse_lifetime(""), None);
    }
}
