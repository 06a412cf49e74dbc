//! RFC 9457 problem details: every error the API returns.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of problem details (RFC 9457 section 3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail document (RFC 9457 section 3.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Short summary of the problem type.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl Problem {
    /// 400: a query parameter or path segment is invalid.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: "Bad Request",
            status: 400,
            detail: detail.into(),
        }
    }

    /// 404: the route or the resource does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: "Not Found",
            status: 404,
            detail: detail.into(),
        }
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: "Method Not Allowed",
            status: 405,
            detail: detail.into(),
        }
    }

    /// 500: a bug or a failed internal step.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: "Internal Server Error",
            status: 500,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}
