//! The TAP service's error: an HTTP status and a message a person can act on, answered as a
//! VOTable error document (`INFO name="QUERY_STATUS" value="ERROR"`, DALI §5.2).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered to the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TapError {
    /// The HTTP status (4xx: the caller's mistake; 5xx: ours).
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl TapError {
    /// A bad parameter or query (400).
    pub fn bad_request(message: impl Into<String>) -> TapError {
        TapError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// Something that does not exist (404).
    pub fn not_found(message: impl Into<String>) -> TapError {
        TapError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// A request over a size limit (413).
    pub fn too_large(message: impl Into<String>) -> TapError {
        TapError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: message.into(),
        }
    }

    /// A failure of the service (500); the message is logged, the client sees it too.
    pub fn internal(e: impl std::fmt::Display) -> TapError {
        tracing::error!("internal error: {e}");
        TapError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("internal error: {e}"),
        }
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> TapError {
        self.status = status;
        self
    }
}

impl IntoResponse for TapError {
    fn into_response(self) -> Response {
        let mut r = (self.status, crate::formats::error_document(&self.message)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-votable+xml"),
        );
        r
    }
}
