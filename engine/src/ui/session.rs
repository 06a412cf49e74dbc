//! UI sessions: an API token, checked by the API's own middleware, is exchanged for a random
//! session id in an `HttpOnly`, `SameSite=Strict` cookie. The server keeps only the id's
//! SHA-256 digest (a leaked session table cannot be replayed), at most [`MAX_SESSIONS`]
//! sessions (the one expiring first is dropped), each for [`SESSION_TTL`]. Every session
//! carries a random CSRF token that every write form posts back; it is compared in constant
//! time. The token itself is never stored, logged or echoed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::ServiceExt as _;

use super::{SessionExt, Ui, layout};
use crate::auth::token::Scope;
use crate::auth::{Auth, Principal};

/// Name of the session cookie.
pub const COOKIE: &str = "nw_session";
/// Sessions kept at most.
pub const MAX_SESSIONS: usize = 1024;
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Longest token accepted by the login form.
pub const MAX_TOKEN_LEN: usize = 256;

/// A session, as the pages see it.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who: the token's name (or "open access").
    pub who: String,
    /// Whether writes (acknowledge, exclude) are allowed.
    pub can_write: bool,
    /// The CSRF token of every write form.
    pub csrf: String,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        presented.len() == self.csrf.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

#[derive(Debug)]
struct Entry {
    session: Session,
    expires: Instant,
}

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Entry>>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    // The OS's generator; without it no session can be made safely.
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    let mut out = String::with_capacity(64);
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
    out
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for `who`; returns the id (for the cookie) and the session.
    pub fn open(&self, who: &str, can_write: bool) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            who: who.chars().take(64).collect(),
            can_write,
            csrf: random_hex(),
        };
        let now = Instant::now();
        let mut t = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.retain(|_, e| e.expires > now);
        if t.len() >= MAX_SESSIONS
            && let Some(oldest) = t.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k)
        {
            t.remove(&oldest);
        }
        if !id.is_empty() {
            t.insert(
                digest(&id),
                Entry {
                    session: session.clone(),
                    expires: now + SESSION_TTL,
                },
            );
        }
        (id, session)
    }

    /// The session of cookie value `id`, unless unknown or expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        if id.len() != 64 {
            return None;
        }
        let mut t = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = digest(id);
        match t.get(&key) {
            Some(e) if e.expires > Instant::now() => Some(e.session.clone()),
            Some(_) => {
                t.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of cookie value `id`.
    pub fn close(&self, id: &str) {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&digest(id));
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session id from the request's cookies.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Sets the session cookie on `resp`.
pub fn set_cookie(resp: &mut Response, id: &str) {
    let v = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Checks `token` with the API's own middleware (format, secret, expiry, rate limit): the
/// token's principal, or `None`.
pub async fn check_token(auth: Arc<Auth>, token: &str) -> Option<Principal> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let probe = axum::Router::new()
        .route(
            "/api/v2/alerts",
            axum::routing::get(
                |axum::Extension(p): axum::Extension<Principal>| async move {
                    let mut r = StatusCode::OK.into_response();
                    r.extensions_mut().insert(p);
                    r
                },
            ),
        )
        .layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::authorize,
        ));
    let value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    let req = Request::get("/api/v2/alerts")
        .header(header::AUTHORIZATION, value)
        .body(Body::empty())
        .ok()?;
    let resp = probe.oneshot(req).await.ok()?;
    resp.extensions().get::<Principal>().cloned()
}

/// Query of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go after logging in (a path of this site).
    pub next: Option<String>,
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The API token.
    pub token: String,
    /// Where to go after.
    pub next: Option<String>,
}

/// A local path to go to after login (anything else: the overview).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 1024
                && p.bytes().all(|b| b.is_ascii_graphic())
                && !p.starts_with("/ui/login") =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn login_view(next: &str, error: Option<&str>) -> maud::Markup {
    html! {
        section.login {
            h1 { "Log in to Netwarden" }
            p { "Paste an API token (" code { "netwarden-engine token create" } "). It is checked once and never stored: the browser gets a session cookie." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required autofocus maxlength="256";
                button type="submit" { "Log in" }
            }
        }
    }
}

/// `GET /ui/login`.
pub async fn login_page(State(ui): State<Ui>, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if !ui.auth.is_enforced() {
        return Redirect::to(&next).into_response();
    }
    layout::bare("Log in", &login_view(&next, None)).into_response()
}

/// `POST /ui/login`: token → session cookie, or the form again.
pub async fn login(State(ui): State<Ui>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    if !ui.auth.is_enforced() {
        return Redirect::to(&next).into_response();
    }
    let Some(p) = check_token(ui.auth.clone(), f.token.trim()).await else {
        let mut r = layout::bare(
            "Log in",
            &login_view(
                &next,
                Some("That token is not valid (or is expired, or rate-limited)."),
            ),
        )
        .into_response();
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let can_write = p.scopes.iter().any(|s| *s >= Scope::Write);
    let (id, _) = ui.sessions.open(&p.name, can_write);
    tracing::info!(target: crate::auth::middleware::AUDIT_TARGET, token = %p.id, name = %p.name, "UI login");
    let mut r = Redirect::to(&next).into_response();
    set_cookie(&mut r, &id);
    r
}

/// A form that carries only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    pub csrf: String,
}

/// `POST /ui/logout`.
pub async fn logout(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !s.csrf_ok(&f.csrf) {
        return layout::error_page(StatusCode::FORBIDDEN, "Invalid CSRF token.");
    }
    if let Some(id) = cookie(&headers) {
        ui.sessions.close(id);
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("nw_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_id_only_and_bounded() {
        let s = Sessions::default();
        let (id, sess) = s.open("ops", false);
        assert_eq!(id.len(), 64);
        assert_eq!(s.get(&id).map(|x| x.csrf), Some(sess.csrf.clone()));
        assert!(s.get(&"0".repeat(64)).is_none());
        assert!(s.get("short").is_none());
        for _ in 0..MAX_SESSIONS + 10 {
            s.open("x", true);
        }
        assert!(s.len() <= MAX_SESSIONS);
        s.close(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn csrf_compare_and_next_paths() {
        let s = Session {
            who: "a".into(),
            can_write: true,
            csrf: "abc".into(),
        };
        assert!(s.csrf_ok("abc"));
        assert!(!s.csrf_ok("abd") && !s.csrf_ok("") && !s.csrf_ok("abcd"));
        assert_eq!(safe_next(Some("/ui/alerts?x=1")), "/ui/alerts?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/ui/login",
            "/a\u{7f}",
            "/a b",
            "/\u{e9}",
            "/a\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
    }

    #[test]
    fn cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; nw_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h), Some("xyz"));
    }
}
