//! The queue and the executor: QUEUED jobs wait in a bounded FIFO; a dispatcher starts
//! them as execution slots (a semaphore of `max_running` permits) free up; each runs in its
//! own task under the execution-duration timeout and can be cancelled (ABORT, DELETE),
//! which drops the runner's future. Plus the destruction sweeper.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures::{FutureExt, StreamExt};
use object_store::ObjectStoreExt;
use tokio::sync::{oneshot, watch};

use super::{
    Inner, Job, JobFailure, JobResult, Phase, ResultsLocation, Running, TapError, blocking, now,
};

/// How long ABORT and DELETE wait for an executing job's task to finish dropping its query.
const STOP_WAIT: Duration = Duration::from_secs(10);

fn notify_change(inner: &Inner) {
    inner.changes.send_modify(|v| *v = v.wrapping_add(1));
}

/// PENDING → QUEUED and into the queue. QUEUED/EXECUTING: nothing to do. Finished: 400.
pub(super) async fn enqueue(inner: &Arc<Inner>, id: &str) -> Result<(), TapError> {
    {
        let mut q = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.waiting.len() + q.reserved >= inner.config.max_queued {
            return Err(TapError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "the job queue is full ({} jobs are waiting to run); the job stays PENDING: \
                     send PHASE=RUN again later",
                    inner.config.max_queued
                ),
            });
        }
        q.reserved += 1;
    }
    let s = inner.store.clone();
    let id2 = id.to_string();
    let out = blocking(move || {
        s.update(&id2, |job| -> Result<bool, TapError> {
            match job.phase {
                Phase::Pending => {
                    job.phase = Phase::Queued;
                    Ok(true)
                }
                Phase::Queued | Phase::Executing => Ok(false),
                p => Err(TapError::bad_request(format!(
                    "job {} is {p}; a job runs only once: create a new job to run the query again",
                    job.id
                ))),
            }
        })
    })
    .await;
    let queued = matches!(out, Ok(Some(true)));
    {
        let mut q = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.reserved = q.reserved.saturating_sub(1);
        if queued {
            q.waiting.push_back(id.to_string());
        }
    }
    if queued {
        inner.queue_notify.notify_one();
        notify_change(inner);
    }
    match out {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(super::no_such_job(id)),
        Err(e) => Err(e),
    }
}

/// Starts queued jobs as slots free up. Runs until the runtime stops or it is aborted.
pub(super) async fn dispatch_loop(inner: Arc<Inner>) {
    loop {
        let Ok(permit) = inner.slots.clone().acquire_owned().await else {
            return;
        };
        let id = loop {
            let next = inner
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .waiting
                .pop_front();
            match next {
                Some(id) => break id,
                None => inner.queue_notify.notified().await,
            }
        };
        // Registered before the job becomes EXECUTING, so that an ABORT that sees
        // EXECUTING always finds the way to stop it.
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let (done_tx, done_rx) = watch::channel(false);
        inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                Running {
                    cancel: Some(cancel_tx),
                    done: done_rx,
                },
            );
        let s = inner.store.clone();
        let id2 = id.clone();
        let started = blocking(move || {
            s.update(&id2, |job| -> Result<Option<Job>, TapError> {
                if job.phase != Phase::Queued {
                    return Ok(None);
                }
                job.phase = Phase::Executing;
                job.start_time = Some(now());
                Ok(Some(job.clone()))
            })
        })
        .await;
        let job = match started {
            Ok(Some(Some(job))) => job,
            Ok(_) => {
                // Aborted or deleted while queued.
                inner
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                continue;
            }
            Err(e) => {
                tracing::error!("UWS job {id}: could not start: {e}");
                inner
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                fail_unstarted(&inner, &id, &e.message).await;
                continue;
            }
        };
        notify_change(&inner);
        let inner2 = inner.clone();
        tokio::spawn(async move {
            let _permit = permit;
            execute(&inner2, job, cancel_rx).await;
            inner2
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = done_tx.send(true);
        });
    }
}

/// A QUEUED job that could not be started is not left QUEUED forever: it becomes ERROR.
async fn fail_unstarted(inner: &Arc<Inner>, id: &str, why: &str) {
    let s = inner.store.clone();
    let id2 = id.to_string();
    let msg = format!("the job could not be started: {why}");
    let r = blocking(move || {
        s.update(&id2, |job| -> Result<(), TapError> {
            if job.phase == Phase::Queued {
                job.phase = Phase::Error;
                job.end_time = Some(now());
                job.error = Some(JobFailure::transient(msg));
            }
            Ok(())
        })
    })
    .await;
    if let Err(e) = r {
        tracing::error!(
            "UWS job {id}: could not record the failure to start: {}",
            e.message
        );
    }
    notify_change(inner);
}

enum Outcome {
    Done(Vec<JobResult>),
    Failed(JobFailure),
    Cancelled,
}

async fn execute(inner: &Arc<Inner>, job: Job, cancel: oneshot::Receiver<()>) {
    let id = job.id.clone();
    let limit = job.execution_limit();
    let secs = job.execution_duration;
    let outcome = {
        let run = AssertUnwindSafe(inner.runner.run(job, inner.results.clone())).catch_unwind();
        tokio::select! {
            r = tokio::time::timeout(limit, run) => match r {
                Err(_) => Outcome::Failed(JobFailure::fatal(format!(
                    "execution duration of {secs} s exceeded: the query was stopped \
                     (ask for a longer EXECUTIONDURATION, or make the query cheaper)"
                ))),
                Ok(Err(_panic)) => Outcome::Failed(JobFailure::transient(
                    "internal error: the query stopped unexpectedly",
                )),
                Ok(Ok(Ok(results))) => Outcome::Done(results),
                Ok(Ok(Err(f))) => Outcome::Failed(f),
            },
            // A cancel sender dropped without sending is not a cancellation.
            () = async {
                if cancel.await.is_err() {
                    futures::future::pending::<()>().await;
                }
            } => Outcome::Cancelled,
        }
        // The runner's future is dropped here.
    };
    finish(inner, &id, outcome).await;
}

/// Persists how a job ended. Whatever a job leaves in the store when it does not end
/// COMPLETED is deleted.
async fn finish(inner: &Arc<Inner>, id: &str, outcome: Outcome) {
    let (results, failure) = match outcome {
        Outcome::Cancelled => {
            // ABORT/DELETE recorded the phase before cancelling; this only guards against
            // a job left EXECUTING with nothing running it.
            let s = inner.store.clone();
            let id2 = id.to_string();
            let r = blocking(move || {
                s.update(&id2, |job| -> Result<bool, TapError> {
                    if job.phase != Phase::Executing {
                        return Ok(false);
                    }
                    job.phase = Phase::Aborted;
                    job.end_time = Some(now());
                    Ok(true)
                })
            })
            .await;
            if matches!(r, Ok(Some(true))) {
                notify_change(inner);
            }
            delete_prefix(&inner.results, id).await;
            return;
        }
        Outcome::Done(r) => (r, None),
        Outcome::Failed(f) => (Vec::new(), Some(f)),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let s = inner.store.clone();
        let id2 = id.to_string();
        let results2 = results.clone();
        let failure2 = failure.clone();
        let r = blocking(move || {
            s.update(&id2, |job| -> Result<bool, TapError> {
                if job.phase != Phase::Executing {
                    return Ok(false);
                }
                job.end_time = Some(now());
                match failure2 {
                    None => {
                        job.phase = Phase::Completed;
                        job.results = results2;
                    }
                    Some(f) => {
                        job.phase = Phase::Error;
                        job.error = Some(f);
                    }
                }
                Ok(true)
            })
        })
        .await;
        match r {
            Ok(Some(true)) => {
                if failure.is_some() {
                    delete_prefix(&inner.results, id).await;
                }
                notify_change(inner);
                return;
            }
            Ok(_) => {
                // Aborted or deleted meanwhile: what it wrote goes.
                delete_results(&inner.results, id, &results).await;
                return;
            }
            Err(e) if attempt < 3 => {
                tracing::warn!(
                    "UWS job {id}: recording its end failed ({}); retrying",
                    e.message
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                // Left EXECUTING in the database: the next start-up makes it ERROR.
                tracing::error!("UWS job {id}: could not record its end: {}", e.message);
                delete_results(&inner.results, id, &results).await;
                return;
            }
        }
    }
}

/// ABORT: returns the phase afterwards, `None` if there is no such job.
pub(super) async fn abort(inner: &Arc<Inner>, id: &str) -> Result<Option<Phase>, TapError> {
    let s = inner.store.clone();
    let id2 = id.to_string();
    let out = blocking(move || {
        s.update(&id2, |job| -> Result<(Phase, Phase), TapError> {
            let before = job.phase;
            if before.is_active() {
                job.phase = Phase::Aborted;
                job.end_time = Some(now());
            }
            Ok((before, job.phase))
        })
    })
    .await?;
    let Some((before, after)) = out else {
        return Ok(None);
    };
    if before.is_active() {
        inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .retain(|q| q != id);
        notify_change(inner);
        stop_running(inner, id).await;
    }
    Ok(Some(after))
}

/// Cancels the job's execution task, if any, and waits (bounded) until the runner's
/// future has been dropped.
async fn stop_running(inner: &Arc<Inner>, id: &str) {
    let done = {
        let mut running = inner.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get_mut(id).map(|r| {
            if let Some(c) = r.cancel.take() {
                let _ = c.send(());
            }
            r.done.clone()
        })
    };
    if let Some(mut done) = done
        && tokio::time::timeout(STOP_WAIT, done.wait_for(|d| *d))
            .await
            .is_err()
    {
        tracing::warn!("UWS job {id}: its query did not stop within {STOP_WAIT:?}");
    }
}

/// Destroys a job: aborts it if active, then deletes results, uploads and the record (in
/// that order, so that a crash half-way leaves a record that the next sweep finishes).
pub(super) async fn destroy(inner: &Arc<Inner>, id: &str) -> Result<bool, TapError> {
    let Some(_) = abort(inner, id).await? else {
        return Ok(false);
    };
    let s = inner.store.clone();
    let id2 = id.to_string();
    let Some(job) = blocking(move || s.get(&id2)).await? else {
        return Ok(false);
    };
    delete_results(&inner.results, id, &job.results).await;
    let dir = inner.config.jobs_dir.join(id);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("UWS job {id}: removing {}: {e}", dir.display()),
    }
    for u in &job.uploads {
        if !u.path.starts_with(&dir) {
            let _ = tokio::fs::remove_file(&u.path).await;
        }
    }
    let s = inner.store.clone();
    let id2 = id.to_string();
    let deleted = blocking(move || s.delete(&id2)).await?;
    notify_change(inner);
    Ok(deleted)
}

/// Deletes the listed result objects and everything under the job's prefix.
async fn delete_results(results: &ResultsLocation, id: &str, listed: &[JobResult]) {
    for r in listed {
        match results.store.delete(&r.key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("UWS job {id}: deleting result {}: {e}", r.key),
        }
    }
    delete_prefix(results, id).await;
}

/// Deletes every object under `<prefix>/<id>/`.
pub(super) async fn delete_prefix(results: &ResultsLocation, id: &str) {
    let prefix = results.job_prefix(id);
    let mut keys = Vec::new();
    {
        let mut listing = results.store.list(Some(&prefix));
        while let Some(item) = listing.next().await {
            match item {
                Ok(meta) => keys.push(meta.location),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!("UWS job {id}: listing {prefix}: {e}");
                    break;
                }
            }
        }
    }
    for k in keys {
        match results.store.delete(&k).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("UWS job {id}: deleting {k}: {e}"),
        }
    }
}

/// Destroys the jobs whose destruction time has passed.
pub(super) async fn sweep_once(inner: &Arc<Inner>) -> Result<usize, TapError> {
    let s = inner.store.clone();
    let t = now();
    let ids = blocking(move || s.expired(t)).await?;
    let mut n = 0;
    for id in ids {
        match destroy(inner, &id).await {
            Ok(true) => {
                tracing::info!("UWS job {id} destroyed (destruction time reached)");
                n += 1;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("UWS job {id}: destruction failed: {}", e.message),
        }
    }
    Ok(n)
}

pub(super) async fn sweep_loop(inner: Arc<Inner>) {
    let every = inner.config.sweep_interval.max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sweep_once(&inner).await {
            tracing::warn!("UWS sweep failed: {}", e.message);
        }
    }
}
