//! The UWS 1.1 REST binding. Nest the router at the job list's path (`/tap/async`); every
//! URL in documents and `Location` headers is absolute: `request_origin(headers)` + the
//! mount path of the [`UwsState`].

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use object_store::ObjectStoreExt;

use super::super::error::TapError;
use super::super::params::read_params;
use super::super::request_origin;
use super::{Job, JobFilter, Phase, UwsState, format_time, no_such_job, parse_iso8601, xml};

/// The `/tap/async` routes (the job list at `/`, job `X` at `/X`). Nest it:
/// `Router::new().nest("/tap/async", uws::router(state))`.
pub fn router(state: UwsState) -> Router {
    Router::new()
        .route("/", get(list_jobs).post(create_job))
        .route("/{id}", get(get_job).post(post_job).delete(delete_job))
        .route("/{id}/phase", get(get_phase).post(post_phase))
        .route(
            "/{id}/executionduration",
            get(get_execution_duration).post(post_execution_duration),
        )
        .route(
            "/{id}/destruction",
            get(get_destruction).post(post_destruction),
        )
        .route("/{id}/quote", get(get_quote))
        .route("/{id}/owner", get(get_owner))
        .route("/{id}/error", get(get_error))
        .route(
            "/{id}/parameters",
            get(get_parameters).post(post_parameters),
        )
        .route("/{id}/results", get(get_results))
        .route("/{id}/results/{rid}", get(get_result))
        // read_params applies the service's own limits while the body streams.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn list_url(s: &UwsState, headers: &HeaderMap) -> String {
    format!("{}{}", request_origin(headers), s.mount_path())
}

fn job_url(s: &UwsState, headers: &HeaderMap, id: &str) -> String {
    format!("{}/{id}", list_url(s, headers))
}

fn see_other(url: String) -> Response {
    match HeaderValue::from_str(&url) {
        Ok(v) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(e) => TapError::internal(format!("job URL `{url}`: {e}")).into_response(),
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

async fn list_jobs(State(s): State<UwsState>, req: Request) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    let mut filter = JobFilter::default();
    for v in p.get_all("PHASE") {
        let ph = Phase::parse(v).ok_or_else(|| {
            TapError::bad_request(format!(
                "PHASE={v} is not a UWS phase (PENDING, QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED, \
                 UNKNOWN, HELD, SUSPENDED or ARCHIVED)"
            ))
        })?;
        if !filter.phases.contains(&ph) {
            filter.phases.push(ph);
        }
    }
    for v in p.get_all("AFTER") {
        let t = parse_iso8601(v).ok_or_else(|| {
            TapError::bad_request(format!(
                "AFTER={v} is not an ISO 8601 time (e.g. 2030-01-31T12:00:00Z)"
            ))
        })?;
        // Repeated: the latest wins (the strongest constraint).
        filter.after = Some(filter.after.map_or(t, |a| a.max(t)));
    }
    for v in p.get_all("LAST") {
        let n: u64 =
            v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                TapError::bad_request(format!("LAST={v} is not a positive integer"))
            })?;
        filter.last = Some(filter.last.map_or(n, |l| l.min(n)));
    }
    let jobs = s.list(filter).await?;
    Ok(xml_response(xml::job_list(&jobs, &list_url(&s, &headers))))
}

async fn create_job(State(s): State<UwsState>, req: Request) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    let job = s.create_job(p).await?;
    Ok(see_other(job_url(&s, &headers, &job.id)))
}

async fn get_job(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    let job = match p.get_nonempty("WAIT") {
        None => s.job_or_404(&id).await?,
        Some(w) => {
            let wait = parse_wait(w, s.config().max_wait)?;
            let only_in = match p.get_nonempty("PHASE") {
                None => None,
                Some(v) => Some(Phase::parse(v).ok_or_else(|| {
                    TapError::bad_request(format!("PHASE={v} is not a UWS phase"))
                })?),
            };
            s.wait(&id, wait, only_in).await?
        }
    };
    Ok(xml_response(xml::job_document(
        &job,
        &job_url(&s, &headers, &id),
    )))
}

/// `WAIT=n`: n seconds (fractions allowed), negative = as long as the server allows.
fn parse_wait(v: &str, max: Duration) -> Result<Duration, TapError> {
    let f: f64 = v
        .trim()
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite())
        .ok_or_else(|| {
            TapError::bad_request(format!(
                "WAIT={v} is not a number of seconds (-1 = as long as allowed)"
            ))
        })?;
    if f < 0.0 {
        return Ok(max);
    }
    Ok(Duration::from_secs_f64(f.min(max.as_secs_f64())))
}

async fn post_job(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    if let Some(action) = p.get("ACTION") {
        if action.trim().eq_ignore_ascii_case("DELETE") {
            if !s.delete(&id).await? {
                return Err(no_such_job(&id));
            }
            return Ok(see_other(list_url(&s, &headers)));
        }
        return Err(TapError::bad_request(format!(
            "ACTION={action} is not accepted; the only action is ACTION=DELETE"
        )));
    }
    s.set_parameters(&id, p).await?;
    Ok(see_other(job_url(&s, &headers, &id)))
}

async fn delete_job(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, TapError> {
    if !s.delete(&id).await? {
        return Err(no_such_job(&id));
    }
    Ok(see_other(list_url(&s, &headers)))
}

async fn get_phase(
    State(s): State<UwsState>,
    Path(id): Path<String>,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    Ok(text(job.phase.as_str().to_string()))
}

async fn post_phase(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    let Some(v) = p.get_nonempty("PHASE") else {
        return Err(TapError::bad_request(
            "the PHASE parameter is missing: send PHASE=RUN or PHASE=ABORT",
        ));
    };
    match super::parse_phase_action(v)? {
        super::PhaseAction::Run => s.run(&id).await?,
        super::PhaseAction::Abort => {
            s.abort(&id).await?;
        }
    }
    Ok(see_other(job_url(&s, &headers, &id)))
}

async fn get_execution_duration(
    State(s): State<UwsState>,
    Path(id): Path<String>,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    Ok(text(job.execution_duration.to_string()))
}

async fn post_execution_duration(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    let Some(v) = p.get_nonempty("EXECUTIONDURATION") else {
        return Err(TapError::bad_request(
            "the EXECUTIONDURATION parameter is missing: send a number of seconds",
        ));
    };
    s.set_execution_duration(&id, v).await?;
    Ok(see_other(job_url(&s, &headers, &id)))
}

async fn get_destruction(
    State(s): State<UwsState>,
    Path(id): Path<String>,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    Ok(text(format_time(&job.destruction)))
}

async fn post_destruction(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    let Some(v) = p.get_nonempty("DESTRUCTION") else {
        return Err(TapError::bad_request(
            "the DESTRUCTION parameter is missing: send an ISO 8601 time",
        ));
    };
    s.set_destruction(&id, v).await?;
    Ok(see_other(job_url(&s, &headers, &id)))
}

async fn get_quote(
    State(s): State<UwsState>,
    Path(id): Path<String>,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    Ok(text(
        job.quote.as_ref().map(format_time).unwrap_or_default(),
    ))
}

async fn get_owner(
    State(s): State<UwsState>,
    Path(id): Path<String>,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    Ok(text(job.owner.unwrap_or_default()))
}

async fn get_error(
    State(s): State<UwsState>,
    Path(id): Path<String>,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    match &job.error {
        Some(e) => Ok((
            [(header::CONTENT_TYPE, "application/x-votable+xml")],
            crate::formats::error_document(&e.message),
        )
            .into_response()),
        None => Err(TapError::not_found(format!(
            "job {id} has no error (it is {})",
            job.phase
        ))),
    }
}

async fn get_parameters(
    State(s): State<UwsState>,
    Path(id): Path<String>,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    Ok(xml_response(xml::parameters_document(&job)))
}

async fn post_parameters(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, TapError> {
    let headers = req.headers().clone();
    let p = read_params(req, s.param_limits()).await?;
    s.set_parameters(&id, p).await?;
    Ok(see_other(job_url(&s, &headers, &id)))
}

async fn get_results(
    State(s): State<UwsState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, TapError> {
    let job = s.job_or_404(&id).await?;
    Ok(xml_response(xml::results_document(
        &job,
        &job_url(&s, &headers, &id),
    )))
}

async fn get_result(
    State(s): State<UwsState>,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, TapError> {
    let job: Job = s.job_or_404(&id).await?;
    let Some(r) = job.result(&rid) else {
        return Err(TapError::not_found(format!(
            "job {id} has no result `{rid}` (it is {}{})",
            job.phase,
            if job.results.is_empty() {
                String::new()
            } else {
                format!(
                    "; its results: {}",
                    job.results
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )));
    };
    let got = match s.results().store.get(&r.key).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(TapError::not_found(format!(
                "the result `{rid}` of job {id} is no longer available"
            )));
        }
        Err(e) => return Err(TapError::internal(format!("reading result {}: {e}", r.key))),
    };
    let size = got.meta.size;
    let mut resp = Response::new(Body::from_stream(got.into_stream()));
    let ctype = HeaderValue::from_str(&r.mime)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    resp.headers_mut().insert(header::CONTENT_TYPE, ctype);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(resp)
}
