//! Every HTTP route, declared in [`app`]. Handlers are thin: extract, ask the engine, render.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tessera_engine::Archive;

use crate::tap::TapService;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    tap: Arc<TapService>,
    /// The local Aladin Lite module of the viewer page (`config::aladin_lite_script`).
    aladin_lite: Option<PathBuf>,
}

impl AppState {
    /// State over the TAP service (and through it the engine and the archive).
    pub fn new(tap: Arc<TapService>) -> AppState {
        AppState {
            tap,
            aladin_lite: None,
        }
    }

    /// The viewer serves Aladin Lite from this `aladin.js` (None: the page loads it from CDS).
    pub fn with_aladin_lite(mut self, script: Option<PathBuf>) -> AppState {
        self.aladin_lite = script;
        self
    }

    fn archive(&self) -> &Archive {
        self.tap.engine.archive()
    }
}

/// The application router (tests call it without a socket). `extra` holds routers with
/// their own state (the UWS job system).
pub fn app(state: AppState, extra: Router) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/health", get(health))
        .with_state(state.clone())
        .merge(crate::tap::router(state.tap.clone()))
        .merge(crate::scs::router(state.tap.clone()))
        .merge(crate::hips::router(state.tap.clone()))
        .merge(crate::sia::router(state.tap.clone()))
        .merge(crate::datalink::router(state.tap.clone()))
        .merge(crate::soda::router(state.tap.clone()))
        .merge(crate::viewer::router(state.aladin_lite.clone()))
        .merge(extra)
        .fallback(not_found)
        .layer(middleware::from_fn(log_and_cors))
}

/// One log line per request with its timing, and CORS on every response (errors included).
async fn log_and_cors(req: Request, next: Next) -> Response {
    let t = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp.headers_mut().insert(
        header::SERVER,
        HeaderValue::from_static(concat!("Tessera/", env!("CARGO_PKG_VERSION"))),
    );
    tracing::info!(
        "{method} {path} {} {:.1} ms",
        resp.status().as_u16(),
        t.elapsed().as_secs_f64() * 1e3
    );
    resp
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn health(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"status\":\"ok\",\"catalogs\":{}}}\n",
            s.archive().catalogs().len()
        ),
    )
        .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn home(State(s): State<AppState>) -> Html<String> {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera</title>\n\
         <style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style></head><body>\n\
         <h1>Tessera</h1>\n<p>Astronomical catalogs as HEALPix-partitioned Parquet (HATS).</p>\n\
         <p><a href=\"/viewer\">Sky viewer</a>: the image and catalogue HiPS of this server in \
         Aladin Lite (<a href=\"/hips/list\">HiPS list</a>).</p>\n",
    );
    let cats = s.archive().catalogs();
    h.push_str(&format!("<h2>Catalogs ({})</h2>\n", cats.len()));
    if cats.is_empty() {
        h.push_str(
            "<p>No catalogs under this data root. Load one with <code>tessera load</code>.</p>\n",
        );
    }
    for c in cats {
        h.push_str(&format!(
            "<h3 id=\"{id}\">{id}</h3>\n<p>{} rows in {} partitions (orders {})</p>\n",
            c.rows,
            c.partitions,
            c.orders
                .iter()
                .map(|(o, n)| format!("{o}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            id = esc(&c.qualified_name()),
        ));
        h.push_str("<table><tr><th>column</th><th>type</th><th>unit</th><th>UCD</th><th>description</th></tr>\n");
        for col in &c.columns {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&col.name),
                esc(&col.data_type),
                esc(col.meta.unit.as_deref().unwrap_or("")),
                esc(col.meta.ucd.as_deref().unwrap_or("")),
                esc(col.meta.description.as_deref().unwrap_or("")),
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str(
        "<h2>Services</h2>\n<ul><li><a href=\"/viewer\">/viewer</a> (sky viewer)</li>\
         <li><a href=\"/hips/list\">/hips/list</a> (HiPS list)</li>\
         <li><a href=\"/health\">/health</a></li></ul>\n</body></html>\n",
    );
    Html(h)
}
