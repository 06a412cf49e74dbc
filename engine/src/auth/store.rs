//! The token file: JSON `{"tokens": [TokenRecord…]}`, written by `netwarden-engine token …`
//! (atomically: a temporary file renamed over it, mode 0600) and read by the API, which looks
//! at the file's modification time at most once a second and reloads it when it changed, so a
//! token created or revoked on the command line (or a rotated Kubernetes Secret) takes effect
//! without a restart. A file that fails to parse keeps the tokens loaded before (and logs).

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::token::TokenRecord;

/// Largest token file read.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// How often the file's modification time is looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// The tokens.
    pub tokens: Vec<TokenRecord>,
}

/// A token file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// I/O.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Not a token file.
    #[error("token file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl TokenFile {
    /// Reads `path` (a missing file is an empty one).
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_FILE_BYTES {
            return Err(StoreError::Invalid {
                path: path.to_owned(),
                reason: format!("larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = std::fs::read(path).map_err(io)?;
        serde_json::from_slice(&text).map_err(|e| StoreError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Writes to `path` atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(io)?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// The tokens the API checks, following the file.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    state: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    tokens: Vec<TokenRecord>,
    modified: Option<SystemTime>,
    checked: Instant,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TokenStore {
    /// Loads `path` now (an error if it cannot be read or parsed).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let file = TokenFile::load(path)?;
        Ok(Self {
            path: path.to_owned(),
            state: RwLock::new(Loaded {
                tokens: file.tokens,
                modified: modified(path),
                checked: Instant::now(),
            }),
        })
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record with `id`, reloading the file first when it changed.
    pub fn find(&self, id: &str) -> Option<TokenRecord> {
        self.refresh();
        let state = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.tokens.iter().find(|t| t.id == id).cloned()
    }

    /// Every record (after a reload when the file changed).
    pub fn records(&self) -> Vec<TokenRecord> {
        self.refresh();
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tokens
            .clone()
    }

    /// Tokens loaded now.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tokens
            .len()
    }

    /// Whether no token is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refresh(&self) {
        {
            let state = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.checked.elapsed() < RELOAD_EVERY {
                return;
            }
        }
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.checked = Instant::now();
        let now = modified(&self.path);
        if now == state.modified {
            return;
        }
        match TokenFile::load(&self.path) {
            Ok(file) => {
                tracing::info!(path = %self.path.display(), tokens = file.tokens.len(), "token file reloaded");
                state.tokens = file.tokens;
                state.modified = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, "token file not reloaded; keeping the tokens loaded before");
            }
        }
    }
}
