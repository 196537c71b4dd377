//! `/tap/sync` and the query execution shared with async jobs: TAP parameters to a running
//! query, and a running query to a streamed response.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_engine::{ErrorKind, Limits, QueryResult};

use super::TapService;
use super::error::TapError;
use super::params::{TapParams, read_params};
use super::upload::{self, UploadSource};
use crate::formats::{Format, WriterOptions};

/// A query request, validated.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// The ADQL text.
    pub adql: String,
    /// The output format.
    pub format: Format,
    /// Rows at most (MAXREC, capped by the hard limit).
    pub maxrec: u64,
    /// RUNID, echoed in the result.
    pub runid: Option<String>,
    /// The UPLOAD entries.
    pub uploads: Vec<upload::UploadSpec>,
}

/// Checks the TAP parameters of a query (TAP 1.1 §2.3, DALI §3.4).
pub fn query_spec(p: &TapParams, svc: &TapService) -> Result<QuerySpec, TapError> {
    if let Some(r) = p.get_nonempty("REQUEST")
        && !r.eq_ignore_ascii_case("doQuery")
    {
        return Err(TapError::bad_request(format!(
            "REQUEST={r} is not supported; this service answers REQUEST=doQuery (or no REQUEST)"
        )));
    }
    match p.get_nonempty("LANG") {
        None => {
            return Err(TapError::bad_request(
                "the LANG parameter is missing: send LANG=ADQL with the QUERY",
            ));
        }
        Some(l)
            if l.eq_ignore_ascii_case("ADQL")
                || l.eq_ignore_ascii_case("ADQL-2.0")
                || l.eq_ignore_ascii_case("ADQL-2.1") => {}
        Some(l) => {
            return Err(TapError::bad_request(format!(
                "query language LANG={l} is not supported; use LANG=ADQL (ADQL-2.0 and ADQL-2.1 are accepted)"
            )));
        }
    }
    let adql = match p.get("QUERY") {
        Some(q) if !q.trim().is_empty() => q.to_string(),
        _ => {
            return Err(TapError::bad_request(
                "the QUERY parameter is missing or empty: send the ADQL text as QUERY",
            ));
        }
    };
    let format = match p
        .get_nonempty("RESPONSEFORMAT")
        .or_else(|| p.get_nonempty("FORMAT"))
    {
        Some(f) => Format::parse(f).map_err(|e| TapError::bad_request(e.to_string()))?,
        None => Format::default(),
    };
    let cfg = &svc.config;
    let maxrec = match p.get_nonempty("MAXREC") {
        None => cfg.max_rec_default,
        Some(m) => {
            let v: i64 = m.parse().map_err(|_| {
                TapError::bad_request(format!("MAXREC={m} is not a non-negative integer"))
            })?;
            if v < 0 {
                return Err(TapError::bad_request(format!(
                    "MAXREC={m} is not a non-negative integer"
                )));
            }
            (v as u64).min(cfg.max_rec_hard)
        }
    };
    let runid = p.get("RUNID").map(str::to_string);
    let uploads = upload::parse_upload_param(&p.get_all("UPLOAD"), &cfg.upload)?;
    Ok(QuerySpec {
        adql,
        format,
        maxrec,
        runid,
        uploads,
    })
}

/// The engine's error as a TAP error: the caller's mistakes are 400, ours 500.
pub fn engine_error(e: &tessera_engine::Error) -> TapError {
    let kind = e.kind();
    let prefix = match kind {
        ErrorKind::Syntax => "",
        ErrorKind::UnknownTable => "unknown table: ",
        ErrorKind::UnknownColumn => "unknown column: ",
        ErrorKind::UnknownFunction => "unknown function: ",
        ErrorKind::Limit => "limit exceeded: ",
        ErrorKind::Timeout => "time limit exceeded: ",
        _ => "",
    };
    let msg = e.to_string();
    let message = if msg.starts_with(prefix.trim_end_matches(": ")) {
        msg
    } else {
        format!("{prefix}{msg}")
    };
    if kind.is_user_error() {
        TapError::bad_request(message)
    } else {
        TapError::internal(message)
    }
}

/// Reads the uploads and starts the query; waits for its first batch so that errors found
/// while planning or at the start of execution are answered as errors, not as a result.
pub async fn start(
    svc: &TapService,
    spec: &QuerySpec,
    sources: Vec<(String, UploadSource)>,
    timeout: Option<Duration>,
) -> Result<(QueryResult, Option<RecordBatch>), TapError> {
    let uploads = upload::load_uploads(sources, &svc.config.upload).await?;
    let limits = Limits {
        max_rows: Some(spec.maxrec),
        timeout,
        ..Default::default()
    };
    let mut r = svc
        .engine
        .query_with_uploads(&spec.adql, &limits, uploads)
        .await
        .map_err(|e| engine_error(&e))?;
    let first = match r.next().await {
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => return Err(engine_error(&e)),
        None => None,
    };
    Ok((r, first))
}

/// The INFOs every result carries.
pub fn writer_options(spec: &QuerySpec, svc: &TapService) -> WriterOptions {
    let mut infos = vec![("QUERY".to_string(), spec.adql.clone())];
    if let Some(r) = &spec.runid {
        infos.push(("RUNID".into(), r.clone()));
    }
    infos.push(("MAXREC".into(), spec.maxrec.to_string()));
    WriterOptions {
        infos,
        spool_dir: Some(svc.config.params.spool_dir.clone()),
        ..Default::default()
    }
}

/// `GET|POST /tap/sync`.
pub async fn sync(State(svc): State<Arc<TapService>>, req: Request) -> Response {
    match run_sync(&svc, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run_sync(svc: &Arc<TapService>, req: Request) -> Result<Response, TapError> {
    let mut p = read_params(req, &svc.config.params).await?;
    let spec = query_spec(&p, svc)?;
    let sources = upload::resolve_sources(&spec.uploads, &mut p, &svc.config.upload)?;
    respond(svc, &spec, sources).await
}

/// Runs a checked query and answers with its streamed result (TAP sync, SIAv2).
pub async fn respond(
    svc: &TapService,
    spec: &QuerySpec,
    sources: Vec<(String, UploadSource)>,
) -> Result<Response, TapError> {
    let (result, first) = start(svc, spec, sources, Some(svc.config.sync_timeout)).await?;
    let mut opts = writer_options(spec, svc);
    opts.resources
        .extend(crate::datalink::descriptors_for(&result.schema(), svc));
    let enc = super::stream::encode(first, result, spec.format, opts);
    let mut resp = Response::new(Body::from_stream(enc.body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(spec.format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"result.{}\"",
        spec.format.extension()
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
