//! The authentication middleware: `Authorization: Bearer <token>` → the token's record →
//! expiry → scope for the method and path → per-token rate limit → the handler; an audit line
//! for every write. 401 (with `WWW-Authenticate: Bearer`), 403 and 429 are problem details.
//! The token is never logged: only its id and name once it matched.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use tracing::{debug, info};

use super::token::{Scope, parse};
use super::{Auth, Principal};
use crate::api::problem::Problem;

/// Paths served without a token.
pub const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];
/// Target of the audit log lines.
pub const AUDIT_TARGET: &str = "netwarden_engine::audit";

/// The scope a request needs.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    if path == "/api/v2/tokens" || path.starts_with("/api/v2/tokens/") {
        Scope::Admin
    } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Scope::Read
    } else {
        Scope::Write
    }
}

fn problem(status: u16, title: &'static str, detail: &str) -> Response {
    Problem {
        kind: "about:blank",
        title,
        status,
        detail: detail.to_owned(),
    }
    .into_response()
}

fn unauthorized(detail: &str, invalid: bool) -> Response {
    let mut r = problem(401, "Unauthorized", detail);
    let challenge = if invalid {
        "Bearer realm=\"netwarden\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"netwarden\""
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// The middleware (`axum::middleware::from_fn_with_state(auth, authorize)`).
pub async fn authorize(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let Some(store) = &auth.tokens else {
        return next.run(req).await;
    };
    if OPEN_PATHS.contains(&path.as_str()) || (auth.open_metrics && path == "/metrics") {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        debug!(%path, "request without a token");
        return unauthorized("this API needs `Authorization: Bearer <token>`", false);
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .and_then(parse);
    let Some(presented) = presented else {
        debug!(%path, "malformed token");
        return unauthorized("the token is not a Netwarden token", true);
    };
    // The id is looked up, the secret compared in constant time: a wrong secret and an unknown
    // id answer the same.
    let record = store
        .find(presented.id)
        .filter(|r| r.matches(presented.secret));
    let Some(record) = record else {
        debug!(%path, "unknown or wrong token");
        return unauthorized("the token is not valid", true);
    };
    if record.expired(crate::notify::format::now_ns()) {
        debug!(%path, token = %record.id, "expired token");
        return unauthorized("the token has expired", true);
    }
    let method = req.method().clone();
    let needed = required_scope(&method, &path);
    if !record.allows(needed) {
        info!(target: AUDIT_TARGET, token = %record.id, name = %record.name, %method, %path, status = 403, "denied: missing scope");
        return problem(
            403,
            "Forbidden",
            &format!("this needs a token with the {} scope", needed.as_str()),
        );
    }
    if !auth.admit(&record.id) {
        let mut r = problem(
            429,
            "Too Many Requests",
            "the token's rate limit is exceeded",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let principal = Principal {
        id: record.id.clone(),
        name: record.name.clone(),
        scopes: record.scopes.clone(),
    };
    req.extensions_mut().insert(principal);
    let response = next.run(req).await;
    if needed != Scope::Read {
        info!(target: AUDIT_TARGET, token = %record.id, name = %record.name, %method, %path, status = response.status().as_u16(), "API write");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_method_and_path() {
        assert_eq!(required_scope(&Method::GET, "/api/v2/hosts"), Scope::Read);
        assert_eq!(
            required_scope(&Method::DELETE, "/api/v2/alerts/1"),
            Scope::Write
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v2/alerts/1/ack"),
            Scope::Write
        );
        assert_eq!(required_scope(&Method::GET, "/api/v2/tokens"), Scope::Admin);
        assert_eq!(required_scope(&Method::GET, "/api/v2/tokensx"), Scope::Read);
    }
}
