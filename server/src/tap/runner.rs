//! Async TAP jobs: the [`uws::JobRunner`] that runs a job's query exactly as `/tap/sync`
//! would, streaming the encoded result into the object store (`<data root>/.tessera/results/
//! <job>/result.<ext>`) with a multipart upload, so a result of any size costs a few chunks
//! of memory. Dropping the future (ABORT, execution duration) drops the query, which stops it.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::TapService;
use super::uws::{Job, JobFailure, JobResult, JobRunner, ResultsLocation};
use super::{stream, sync, upload};

/// Runs TAP jobs.
#[derive(Debug)]
pub struct TapRunner {
    /// The service the queries run in.
    pub svc: Arc<TapService>,
}

fn failure(e: super::error::TapError) -> JobFailure {
    if e.status.is_client_error() {
        JobFailure::fatal(e.message)
    } else {
        JobFailure::transient(e.message)
    }
}

impl JobRunner for TapRunner {
    fn run(
        &self,
        job: Job,
        out: ResultsLocation,
    ) -> BoxFuture<'static, Result<Vec<JobResult>, JobFailure>> {
        let svc = self.svc.clone();
        Box::pin(async move {
            let spool = &svc.config.params.spool_dir;
            let mut params = job
                .tap_params(spool)
                .map_err(|e| JobFailure::transient(format!("reading the job's uploads: {e}")))?;
            let spec = sync::query_spec(&params, &svc).map_err(failure)?;
            let sources = upload::resolve_sources(&spec.uploads, &mut params, &svc.config.upload)
                .map_err(failure)?;
            let (result, first) = sync::start(&svc, &spec, sources, None)
                .await
                .map_err(failure)?;
            let mut opts = sync::writer_options(&spec, &svc);
            opts.resources
                .extend(crate::datalink::descriptors_for(&result.schema(), &svc));
            let mut enc = stream::encode(first, result, spec.format, opts);
            let key = out
                .job_prefix(&job.id)
                .join(format!("result.{}", spec.format.extension()));
            let mut w = object_store::buffered::BufWriter::new(out.store.clone(), key.clone());
            let mut write_err = None;
            while let Some(chunk) = enc.body.next().await {
                let r = match chunk {
                    Ok(c) => w.write_all(&c).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    write_err = Some(e.to_string());
                    break;
                }
            }
            if write_err.is_none()
                && let Err(e) = w.shutdown().await
            {
                write_err = Some(format!("storing the result: {e}"));
            }
            drop(enc.body);
            let summary = enc
                .summary
                .await
                .map_err(|e| JobFailure::transient(format!("encoding the result: {e}")))?;
            if let Some(msg) = summary.error.or(write_err) {
                let _ = w.abort().await;
                let _ = out.store.delete(&key).await;
                // The query's own failure is usually the caller's (a limit, a bad value).
                return Err(JobFailure::fatal(msg));
            }
            Ok(vec![JobResult {
                id: "result".into(),
                key,
                mime: spec.format.mime().to_string(),
                size: Some(summary.bytes),
                rows: Some(summary.rows),
                overflow: summary.overflow,
            }])
        })
    }
}

/// Runs SODA async jobs: the cutout of `/soda/sync`, streamed into the object store.
#[derive(Debug)]
pub struct SodaRunner {
    /// The service (images, limits).
    pub svc: Arc<TapService>,
}

impl JobRunner for SodaRunner {
    fn run(
        &self,
        job: Job,
        out: ResultsLocation,
    ) -> BoxFuture<'static, Result<Vec<JobResult>, JobFailure>> {
        let svc = self.svc.clone();
        Box::pin(async move {
            let params = job
                .tap_params(&svc.config.params.spool_dir)
                .map_err(|e| JobFailure::transient(format!("reading the job: {e}")))?;
            let (hdu, plan) = crate::soda::plan_request(&svc, &params)
                .await
                .map_err(failure)?;
            let mut body = crate::soda::cutout_body(hdu, plan);
            let key = out.job_prefix(&job.id).join("cutout.fits");
            let mut w = object_store::buffered::BufWriter::new(out.store.clone(), key.clone());
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let r = match chunk {
                    Ok(c) => {
                        size += c.len() as u64;
                        w.write_all(&c).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    let _ = w.abort().await;
                    let _ = out.store.delete(&key).await;
                    return Err(JobFailure::transient(format!("writing the cutout: {e}")));
                }
            }
            w.shutdown()
                .await
                .map_err(|e| JobFailure::transient(format!("storing the cutout: {e}")))?;
            Ok(vec![JobResult {
                id: "result".into(),
                key,
                mime: "application/fits".into(),
                size: Some(size),
                rows: None,
                overflow: false,
            }])
        })
    }
}
