//! Static files of the UI, embedded in the binary (no file system at run time). URLs carry a
//! digest of the files (`/assets/<digest>/app.js`), so they are served with a one-year
//! `immutable` cache lifetime and change name when a file changes.
//! Vendored libraries live under `engine/assets/ui/vendor/` with their licences.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/ui/app.js"),
    },
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/ui/app.css"),
    },
    Asset {
        name: "uplot.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/ui/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        name: "uplot.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/ui/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        name: "cytoscape.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/ui/vendor/cytoscape/cytoscape.min.js"),
    },
    Asset {
        name: "favicon.svg",
        mime: "image/svg+xml",
        body: include_bytes!("../../assets/ui/favicon.svg"),
    },
];

/// Digest of every embedded file (FNV-1a 64): the version segment of asset URLs.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for a in ASSETS {
        for b in a.name.bytes().chain(a.body.iter().copied()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
});

/// The URL of asset `name`.
pub fn url(name: &str) -> String {
    format!("/assets/{}/{name}", *VERSION)
}

/// `GET /assets/{version}/{file}`.
pub async fn serve(Path((version, file)): Path<(String, String)>) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        // An old page asking for an old version gets today's file, not cached for long.
        "public, max-age=60"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(a.mime)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        a.body,
    )
        .into_response()
}
