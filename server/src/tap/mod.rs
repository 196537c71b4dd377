//! The TAP 1.1 service under `/tap`: parameters ([`params`]), synchronous queries, the UWS
//! asynchronous job system ([`uws`]), VOSI and DALI documents ([`vosi`]) and table uploads.

pub mod error;
pub mod params;
pub mod runner;
pub mod stream;
pub mod sync;
pub mod upload;
pub mod uws;
pub mod vosi;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tessera_engine::Engine;

/// How the TAP service runs (from `tessera serve` flags).
#[derive(Debug, Clone)]
pub struct TapConfig {
    /// Rows returned when MAXREC is not given.
    pub max_rec_default: u64,
    /// Rows returned at most, whatever MAXREC says.
    pub max_rec_hard: u64,
    /// Wall-clock limit of a synchronous query.
    pub sync_timeout: Duration,
    /// Request parameter limits and the spool directory.
    pub params: params::ParamLimits,
    /// Upload limits.
    pub upload: upload::UploadLimits,
    /// Catalogues with more rows get no catalogue HiPS (it is built in memory).
    pub hips_max_rows: u64,
    /// Where catalogue HiPS tile stores are built on demand (`<state dir>/hips`).
    pub hips_dir: PathBuf,
}

impl TapConfig {
    /// Defaults with spool files under `spool_dir`.
    pub fn with_spool_dir(spool_dir: PathBuf) -> TapConfig {
        TapConfig {
            max_rec_default: 100_000,
            max_rec_hard: 100_000_000,
            sync_timeout: Duration::from_secs(600),
            params: params::ParamLimits {
                max_upload_bytes: 256 << 20,
                max_text_bytes: 1 << 20,
                spool_dir: spool_dir.clone(),
            },
            upload: upload::UploadLimits {
                max_bytes: 256 << 20,
                max_rows: 1_000_000,
                max_tables: 8,
                allow_urls: false,
                spool_dir: spool_dir.clone(),
            },
            hips_max_rows: crate::hips::DEFAULT_MAX_ROWS,
            hips_dir: spool_dir.with_file_name("hips"),
        }
    }
}

/// The TAP service: the engine and its settings.
#[derive(Debug)]
pub struct TapService {
    /// The query engine.
    pub engine: Engine,
    /// Settings.
    pub config: TapConfig,
    /// The VOSI tables document (from TAP_SCHEMA, built once: catalogs are fixed for the
    /// engine's life).
    pub tables: vosi::TablesDoc,
    /// What the capabilities advertise.
    pub description: vosi::ServiceDescription,
    /// When the service started.
    pub up_since: std::time::SystemTime,
    /// The registered images (ObsCore, DataLink, SODA).
    pub images: crate::images::ImageIndex,
}

/// The `/tap` routes.
pub fn router(svc: Arc<TapService>) -> Router {
    Router::new()
        .route("/tap", get(landing))
        .route("/tap/sync", get(sync::sync).post(sync::sync))
        .route("/tap/capabilities", get(capabilities))
        .route("/tap/availability", get(availability))
        .route("/tap/tables", get(tables))
        .route("/tap/tables/{name}", get(table))
        .route("/tap/examples", get(examples))
        // Our own limits apply while the body streams (params.rs); axum's 2 MB default
        // would cut uploads short.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(svc)
}

fn xml(body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn capabilities(
    axum::extract::State(svc): axum::extract::State<Arc<TapService>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let base = format!("{}/tap", request_origin(&headers));
    xml(vosi::capabilities(&base, &svc.description))
}

async fn availability(
    axum::extract::State(svc): axum::extract::State<Arc<TapService>>,
) -> axum::response::Response {
    xml(vosi::availability(
        svc.up_since,
        "Tessera is accepting queries",
    ))
}

async fn tables(
    axum::extract::State(svc): axum::extract::State<Arc<TapService>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> axum::response::Response {
    // VOSI-tables 1.1 §3.4: detail=min leaves the columns out.
    let min = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .any(|(k, v)| k.eq_ignore_ascii_case("detail") && v.eq_ignore_ascii_case("min"));
    xml(svc.tables.render(min))
}

async fn table(
    axum::extract::State(svc): axum::extract::State<Arc<TapService>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match svc.tables.render_table(&name) {
        Some(doc) => xml(doc),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("no table {name}; GET /tap/tables lists them\n"),
        )
            .into_response(),
    }
}

async fn examples(
    axum::extract::State(svc): axum::extract::State<Arc<TapService>>,
    headers: HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let base = format!("{}/tap", request_origin(&headers));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/xhtml+xml; charset=utf-8",
        )],
        vosi::examples_for(&base, &svc.tables),
    )
        .into_response()
}

async fn landing() -> axum::response::Html<&'static str> {
    axum::response::Html(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera TAP</title></head><body>\n\
         <h1>Tessera TAP 1.1 service</h1>\n<ul>\n\
         <li><a href=\"tap/capabilities\">capabilities</a></li>\n\
         <li><a href=\"tap/availability\">availability</a></li>\n\
         <li><a href=\"tap/tables\">tables</a></li>\n\
         <li><a href=\"tap/examples\">examples</a></li>\n\
         <li>sync: <code>tap/sync?LANG=ADQL&amp;QUERY=…</code></li>\n\
         <li><a href=\"tap/async\">async</a> (UWS 1.1)</li>\n</ul>\n</body></html>\n",
    )
}

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

/// Where and how async jobs run (from `tessera serve` flags).
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Local directory for the job database and the jobs' uploaded files.
    pub state_dir: PathBuf,
    /// Where results are written (under the data root, in the object store).
    pub results: tessera_engine::Location,
    /// Jobs executing at once.
    pub max_running: usize,
    /// Jobs waiting at most.
    pub max_queued: usize,
    /// Default execution duration.
    pub duration_default: Duration,
    /// Longest execution duration.
    pub duration_max: Duration,
    /// Default retention (destruction = creation + this).
    pub retention_default: Duration,
    /// Longest retention.
    pub retention_max: Duration,
}

/// Builds the TAP service and starts its job system; returns the service and the router of
/// the parts with their own state.
pub async fn start(
    engine: Engine,
    config: TapConfig,
    jobs: JobSettings,
    images: crate::images::ImageIndex,
) -> anyhow::Result<(Arc<TapService>, Router)> {
    use anyhow::Context;
    let param_limits = config.params.clone();
    let tables = vosi::TablesDoc::load(&engine)
        .await
        .context("reading TAP_SCHEMA for the tables document")?;
    let description = vosi::ServiceDescription {
        max_rec_default: config.max_rec_default,
        max_rec_hard: config.max_rec_hard,
        max_upload_bytes: config.upload.max_bytes,
        max_upload_rows: config.upload.max_rows,
        execution_duration_default_s: jobs.duration_default.as_secs(),
        execution_duration_hard_s: jobs.duration_max.as_secs(),
        retention_default_s: jobs.retention_default.as_secs(),
        retention_hard_s: jobs.retention_max.as_secs(),
        upload_by_url: config.upload.allow_urls,
        obscore: tables.table("ivoa.ObsCore").is_some(),
    };
    let svc = Arc::new(TapService {
        engine,
        config,
        tables,
        description,
        up_since: std::time::SystemTime::now(),
        images,
    });
    let db = jobs.state_dir.join("jobs.sqlite");
    let store = uws::JobStore::open(&db)
        .with_context(|| format!("opening the job database {}", db.display()))?;
    let mut uc = uws::UwsConfig::new(jobs.state_dir.join("jobs"));
    uc.max_running = jobs.max_running;
    uc.max_queued = jobs.max_queued;
    uc.execution_duration_default = jobs.duration_default;
    uc.execution_duration_hard = jobs.duration_max;
    uc.retention_default = jobs.retention_default;
    uc.retention_hard = jobs.retention_max;
    let results = uws::ResultsLocation {
        store: jobs.results.store.clone(),
        prefix: jobs.results.prefix.clone(),
    };
    let runner = Arc::new(runner::TapRunner { svc: svc.clone() });
    let state = uws::UwsState::start(store, runner, results, uc, param_limits)
        .await
        .context("starting the job system")?;
    // SODA async: the same job system on its own database and results prefix.
    let soda_db = jobs.state_dir.join("soda-jobs.sqlite");
    let soda_store = uws::JobStore::open(&soda_db)
        .with_context(|| format!("opening the job database {}", soda_db.display()))?;
    let mut sc = uws::UwsConfig::new(jobs.state_dir.join("soda-jobs"));
    sc.max_running = jobs.max_running;
    sc.max_queued = jobs.max_queued;
    sc.execution_duration_default = jobs.duration_default;
    sc.execution_duration_hard = jobs.duration_max;
    sc.retention_default = jobs.retention_default;
    sc.retention_hard = jobs.retention_max;
    let soda_results = uws::ResultsLocation {
        store: jobs.results.store.clone(),
        prefix: jobs.results.prefix.clone().join("soda"),
    };
    let soda_state = uws::UwsState::start(
        soda_store,
        Arc::new(runner::SodaRunner { svc: svc.clone() }),
        soda_results,
        sc,
        svc.config.params.clone(),
    )
    .await
    .context("starting the SODA job system")?
    .with_mount_path("/soda/async");
    let extra = Router::new()
        .nest("/tap/async", uws::router(state))
        .nest("/soda/async", uws::router(soda_state))
        .layer(axum::extract::DefaultBodyLimit::disable());
    Ok((svc, extra))
}
