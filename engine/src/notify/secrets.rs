//! Secret resolution: a `NotificationEndpoint` names `secretKeyRef {name, key}`; the value is
//! read from `--secrets-dir DIR` at `DIR/<name>/<key>`, the layout of a Secret mounted as a
//! volume at `DIR/<name>` (Kubernetes keeps the files current when the Secret changes; the
//! value is read again for every delivery, so a rotation needs no restart). Standalone reads
//! the same layout from a plain directory.
//!
//! Must not: let a name or key leave `DIR` (`..`, `/`), read more than [`MAX_SECRET_BYTES`],
//! or put a value in a log line, an error or a `Debug` output ([`SecretValue`] redacts itself).

use std::path::{Path, PathBuf};

/// Longest secret value read.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// A secret value; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it (a request, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Why a secret could not be read (names the reference, never the value).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No `--secrets-dir` was given.
    #[error("secret {name}/{key}: no --secrets-dir is configured")]
    NoDir {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// The name or key is not a Kubernetes name.
    #[error("secret {name:?}/{key:?}: not a valid Secret name and key")]
    Invalid {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// The file is missing, unreadable, too large, empty or not UTF-8.
    #[error("secret {name}/{key}: {reason}")]
    Read {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where secrets are read from.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    dir: Option<PathBuf>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn valid_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl SecretStore {
    /// Secrets under `dir` (`None`: every lookup fails with [`SecretError::NoDir`]).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Reads `DIR/<name>/<key>`, trimmed of surrounding whitespace.
    pub async fn get(&self, name: &str, key: &str) -> Result<SecretValue, SecretError> {
        let err = |reason: String| SecretError::Read {
            name: name.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let Some(dir) = &self.dir else {
            return Err(SecretError::NoDir {
                name: name.to_owned(),
                key: key.to_owned(),
            });
        };
        if !valid_name(name) || !valid_key(key) {
            return Err(SecretError::Invalid {
                name: name.to_owned(),
                key: key.to_owned(),
            });
        }
        let path = dir.join(name).join(key);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| err(format!("cannot read {}: {}", path.display(), e.kind())))?;
        if !meta.is_file() {
            return Err(err(format!("{} is not a file", path.display())));
        }
        if meta.len() > MAX_SECRET_BYTES {
            return Err(err(format!("larger than {MAX_SECRET_BYTES} bytes")));
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| err(format!("cannot read {}: {}", path.display(), e.kind())))?;
        let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8".into()))?;
        let value = text.trim();
        if value.is_empty() {
            return Err(err("empty".into()));
        }
        Ok(SecretValue::new(value))
    }

    /// Like [`Self::get`], `None` when the file does not exist (optional keys).
    pub async fn get_optional(
        &self,
        name: &str,
        key: &str,
    ) -> Result<Option<SecretValue>, SecretError> {
        match self.get(name, key).await {
            Ok(v) => Ok(Some(v)),
            Err(SecretError::Read { .. }) if self.missing(name, key) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn missing(&self, name: &str, key: &str) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|d| !d.join(name).join(key).exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_volume_layout_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("slack")).unwrap();
        std::fs::write(dir.path().join("slack/url"), "https://hooks.example/x\n").unwrap();
        std::fs::write(dir.path().join("top"), "nope").unwrap();
        let store = SecretStore::new(Some(dir.path().to_owned()));
        let v = store.get("slack", "url").await.unwrap();
        assert_eq!(v.expose(), "https://hooks.example/x");
        assert_eq!(format!("{v:?}"), "SecretValue(<redacted>)");
        assert!(matches!(
            store.get("..", "top").await,
            Err(SecretError::Invalid { .. })
        ));
        assert!(matches!(
            store.get("slack", "../../top").await,
            Err(SecretError::Invalid { .. })
        ));
        assert!(store.get("slack", "missing").await.is_err());
        assert!(
            store
                .get_optional("slack", "missing")
                .await
                .unwrap()
                .is_none()
        );
        let none = SecretStore::new(None);
        assert!(matches!(
            none.get("slack", "url").await,
            Err(SecretError::NoDir { .. })
        ));
    }
}
