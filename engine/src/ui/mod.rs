//! The web UI (docs/ui.md): server-rendered HTML pages over the engine's state, served by the
//! engine beside the API.
//!
//! Owns: the pages ([`overview`], [`alerts`], [`hosts`], [`flows`], [`points`]), the login that
//! exchanges an API token for a session cookie and the CSRF token of every write ([`session`]),
//! the embedded static assets ([`assets`]), the live-update stream ([`live`]) and the words
//! that explain a host's score ([`explain`]).
//! Must not: build HTML from strings (maud escapes every value; nothing bypasses it), run
//! inline script or style (the Content-Security-Policy forbids both), or call the HTTP API over
//! the network — the pages read the state in-process, through the API's own handler functions
//! so that a filter means the same in the UI and in the API.
//!
//! Authentication follows the API's rule: with API tokens (`--tokens`) every page needs a
//! session, made by logging in with a token; without tokens (standalone on loopback) the UI is
//! open like the API, and a session is still made on the first visit to carry the CSRF token.

pub mod alerts;
pub mod assets;
pub mod explain;
pub mod flows;
pub mod hosts;
pub mod layout;
pub mod live;
pub mod overview;
pub mod points;
pub mod servicemap;
pub mod session;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::auth::Auth;
use session::{Session, Sessions};

/// The Content-Security-Policy of every UI response: nothing but this origin's own files; no
/// inline script, no inline style, no framing, no plugins, forms post only here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";
/// Largest form body accepted (login, acknowledge, exclude).
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest a page may take to render.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where an exclusion made in the UI goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UiSettings {
    /// Standalone `--config DIR`: exclusions are written there as YAML files (and the directory
    /// watcher applies them). `None`: the UI shows a ready-to-apply `AlertExclusion` instead.
    pub config_dir: Option<PathBuf>,
}

/// The UI's settings, shared so that standalone mode can name its `--config` directory after
/// the engine started.
#[derive(Clone, Debug, Default)]
pub struct UiHandle(Arc<RwLock<UiSettings>>);

impl UiHandle {
    /// The settings now.
    pub fn get(&self) -> UiSettings {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets the directory exclusions are written to.
    pub fn set_config_dir(&self, dir: Option<PathBuf>) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .config_dir = dir;
    }
}

/// What the pages share.
#[derive(Clone)]
pub struct Ui {
    /// The API's state (engine, bus, metrics registry): the pages call the API's handlers.
    pub api: ApiState,
    /// The API's authentication: tokens checked at login.
    pub auth: Arc<Auth>,
    /// Sessions.
    pub sessions: Arc<Sessions>,
    /// Settings.
    pub settings: UiHandle,
}

/// The UI routes (`/`, `/ui/…`, `/assets/…`), to merge beside the API's (after its token
/// middleware: the UI authenticates with its session cookie).
pub fn routes(api: ApiState, auth: Arc<Auth>, settings: UiHandle) -> Router {
    let ui = Ui {
        api,
        auth,
        sessions: Arc::new(Sessions::default()),
        settings,
    };
    Router::new()
        .route("/", get(overview::page))
        .route("/ui", get(|| async { Redirect::to("/") }))
        .route("/ui/overview.json", get(overview::data))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/alerts", get(alerts::list))
        .route("/ui/alerts/{id}", get(alerts::detail))
        .route("/ui/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route("/ui/alerts/{id}/exclude", post(alerts::exclude))
        .route("/ui/hosts", get(hosts::list))
        .route("/ui/hosts/{ip}", get(hosts::detail))
        .route("/ui/hosts/{ip}/series.json", get(hosts::series))
        .route("/ui/flows", get(flows::list))
        .route("/ui/points", get(points::list))
        .route("/ui/servicemap", get(servicemap::page))
        .route("/ui/servicemap.json", get(servicemap::data))
        .route("/ui/servicemap/policy.yaml", get(servicemap::policy))
        .route(
            "/ui/servicemap/edges/{id}",
            get(servicemap::edge).post(servicemap::set_status),
        )
        .route("/ui/live", get(live::stream))
        .route("/assets/{version}/{file}", get(assets::serve))
        .layer(middleware::from_fn_with_state(ui.clone(), gate))
        .layer(middleware::map_response(security_headers))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            PAGE_TIMEOUT,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_FORM_BYTES))
        .with_state(ui)
}

/// Headers of every UI response.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Whether a write request comes from this origin: `Origin` (when the browser sends it) must
/// name the host the request was sent to.
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    origin.to_str().is_ok_and(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            == Some(host)
    })
}

/// Sessions: the request's session is looked up from its cookie and attached; without one,
/// pages redirect to the login (tokens enforced) or a session is opened (open mode). Writes
/// from another origin are refused.
async fn gate(State(ui): State<Ui>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/assets/") {
        return next.run(req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD && !same_origin(&req) {
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "This request came from another site and was refused.",
        );
    }
    if path == "/ui/login" {
        return next.run(req).await;
    }
    let found = session::cookie(req.headers()).and_then(|id| ui.sessions.get(id));
    if let Some(s) = found {
        req.extensions_mut().insert(s);
        return next.run(req).await;
    }
    if !ui.auth.is_enforced() {
        let (id, s) = ui.sessions.open("open access", true);
        req.extensions_mut().insert(s);
        let mut resp = next.run(req).await;
        session::set_cookie(&mut resp, &id);
        return resp;
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let next_path = req
            .uri()
            .path_and_query()
            .map_or("/", axum::http::uri::PathAndQuery::as_str);
        let target = format!("/ui/login?next={}", layout::enc(next_path));
        return Redirect::to(&target).into_response();
    }
    layout::error_page(
        StatusCode::UNAUTHORIZED,
        "Your session has expired: log in again.",
    )
}

/// A problem from an API handler, as a page.
pub fn problem_page(p: &Problem) -> Response {
    layout::error_page(
        StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &p.detail,
    )
}

/// The session attached by [`gate`] (every page handler takes it).
pub type SessionExt = axum::Extension<Session>;
