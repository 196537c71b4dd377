//! The TAP 1.1 service under `/tap`: parameters ([`params`]), synchronous queries, the UWS
//! asynchronous job system ([`uws`]), VOSI and DALI documents ([`vosi`]) and table uploads.

pub mod error;
pub mod params;
pub mod uws;
pub mod vosi;

use axum::http::{HeaderMap, header};

/// `scheme://host[:port]` of the service as the client reached it (from `Host`, or
/// `X-Forwarded-Host`/`X-Forwarded-Proto` behind a proxy), for absolute URLs in documents.
pub fn request_origin(headers: &HeaderMap) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(',').next().unwrap_or("").trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let host = get("x-forwarded-host")
        .or_else(|| get(header::HOST.as_str()))
        .unwrap_or_else(|| "localhost".into());
    let proto = get("x-forwarded-proto").unwrap_or_else(|| "http".into());
    format!("{proto}://{host}")
}
