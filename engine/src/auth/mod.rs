//! API tokens (docs/api.md, "Authentication"): `Authorization: Bearer nw_<id>_<secret>`.
//!
//! Owns: the token format and its hashing ([`token`]), the token file and its reload
//! ([`store`]), the axum middleware that authenticates, authorizes by scope, rate-limits per
//! token and writes audit lines for writes ([`middleware`]), the `token create|list|revoke`
//! command ([`cli`]) and `GET /api/v2/tokens` (admin).
//! Must not: log, return or store a token's secret (only its id, name and SHA-256 digest).
//!
//! Modes: [`Auth::tokens`] checks every request except `/healthz`, `/readyz` and (with
//! `--open-metrics`) `/metrics`; [`Auth::open`] lets everything through — standalone without
//! `--tokens` (it logs so) and `run --insecure-no-auth`.

pub mod cli;
pub mod middleware;
pub mod store;
pub mod token;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

pub use middleware::authorize;
use store::{StoreError, TokenStore};
use token::Scope;

use crate::notify::bucket::TokenBucket;

/// Default requests per minute and token.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 1200;
/// Default burst above it.
pub const DEFAULT_BURST: u32 = 200;

/// How the API authenticates.
#[derive(Debug)]
pub struct Auth {
    tokens: Option<TokenStore>,
    open_metrics: bool,
    rate: (u32, u32),
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl Auth {
    /// No authentication: every request passes.
    pub fn open() -> Self {
        Self {
            tokens: None,
            open_metrics: true,
            rate: (DEFAULT_RATE_PER_MINUTE, DEFAULT_BURST),
            buckets: Mutex::default(),
        }
    }

    /// Tokens from `path` (followed for changes).
    pub fn tokens(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            tokens: Some(TokenStore::open(path)?),
            open_metrics: false,
            rate: (DEFAULT_RATE_PER_MINUTE, DEFAULT_BURST),
            buckets: Mutex::default(),
        })
    }

    /// Serves `/metrics` without a token too.
    #[must_use]
    pub fn with_open_metrics(mut self, open: bool) -> Self {
        self.open_metrics = open;
        self
    }

    /// Per-token rate limit: `per_minute` sustained, `burst` above.
    #[must_use]
    pub fn with_rate(mut self, per_minute: u32, burst: u32) -> Self {
        self.rate = (per_minute.max(1), burst.max(1));
        self
    }

    /// Whether requests need a token.
    pub fn is_enforced(&self) -> bool {
        self.tokens.is_some()
    }

    /// Takes one request from the bucket of token `id`.
    fn admit(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buckets
            .entry(id.to_owned())
            .or_insert_with(|| TokenBucket::new(self.rate.0, self.rate.1, now))
            .take(now)
    }
}

/// The caller, as the handlers see it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token id.
    pub id: String,
    /// Token name.
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
}

/// One row of `GET /api/v2/tokens`: never the secret nor its digest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Token id.
    pub id: String,
    /// Token name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Expiry (RFC 3339), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// `GET /api/v2/tokens` (admin scope): the tokens in force.
pub async fn list(State(auth): State<Arc<Auth>>) -> Json<Vec<TokenView>> {
    let rows = auth
        .tokens
        .as_ref()
        .map(store::TokenStore::records)
        .unwrap_or_default()
        .into_iter()
        .map(|r| TokenView {
            id: r.id,
            name: r.name,
            scopes: r.scopes,
            created: crate::notify::format::rfc3339(r.created_ns),
            expires: r.expires_ns.map(crate::notify::format::rfc3339),
        })
        .collect();
    Json(rows)
}

/// The token routes, to merge into the API router.
pub fn routes<S: Clone + Send + Sync + 'static>(auth: Arc<Auth>) -> axum::Router<S> {
    axum::Router::new()
        .route("/api/v2/tokens", axum::routing::get(list))
        .with_state(auth)
}

/// `router` (the API) with the token routes and every request through [`authorize`].
pub fn secure(router: axum::Router, auth: Arc<Auth>) -> axum::Router {
    router
        .merge(routes(Arc::clone(&auth)))
        .layer(axum::middleware::from_fn_with_state(auth, authorize))
}
