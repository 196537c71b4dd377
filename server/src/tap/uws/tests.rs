//! Tests of the UWS job system: the store (round trip, restart recovery, list filters), the
//! queue with a fake runner (concurrency, ABORT, execution duration, WAIT, destruction) and
//! job creation with uploads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::Semaphore;

use super::*;
use crate::tap::params::{ParamLimits, TapParams, UploadedPart};

// ---------------------------------------------------------------------------------------
// Store

fn t(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap()
}

fn sample_job(id: &str, phase: Phase, created_ms: i64) -> Job {
    Job {
        id: id.to_string(),
        run_id: Some(format!("run-{id}")),
        owner: None,
        phase,
        quote: None,
        creation_time: t(created_ms),
        start_time: None,
        end_time: None,
        execution_duration: 600,
        destruction: t(created_ms + 86_400_000),
        parameters: vec![
            ("LANG".into(), "ADQL".into()),
            (
                "QUERY".into(),
                "SELECT * FROM t WHERE a < 3 AND b = 'x'".into(),
            ),
            ("UPLOAD".into(), "a,param:x".into()),
            ("UPLOAD".into(), "b,param:y".into()),
        ],
        uploads: Vec::new(),
        results: Vec::new(),
        error: None,
    }
}

#[test]
fn store_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
    let mut job = sample_job("0123456789abcdef", Phase::Completed, 1_700_000_000_123);
    job.owner = Some("someone".into());
    job.quote = Some(t(1_700_000_100_000));
    job.start_time = Some(t(1_700_000_001_000));
    job.end_time = Some(t(1_700_000_002_500));
    job.uploads = vec![JobUpload {
        name: "upload_t1".into(),
        path: dir.path().join("x/upload-0"),
        file_name: Some("t1.vot".into()),
        content_type: Some("application/x-votable+xml".into()),
        size: 1234,
    }];
    job.results = vec![JobResult {
        id: "result".into(),
        key: object_store::path::Path::from("async/0123456789abcdef/result.vot"),
        mime: "application/x-votable+xml".into(),
        size: Some(999),
        rows: Some(10),
        overflow: true,
    }];
    store.insert(&job).unwrap();
    assert_eq!(store.get(&job.id).unwrap().as_ref(), Some(&job));
    assert!(store.insert(&job).is_err(), "a duplicate id is refused");

    let mut err_job = sample_job("fedcba9876543210", Phase::Error, 1_700_000_000_000);
    err_job.error = Some(JobFailure::transient("disk full"));
    err_job.run_id = None;
    store.insert(&err_job).unwrap();
    assert_eq!(store.get(&err_job.id).unwrap(), Some(err_job.clone()));

    // Read-modify-write; an Err leaves the record as it was.
    let r: Result<Option<()>, TapError> = store.update(&job.id, |j| {
        j.phase = Phase::Aborted;
        Err(TapError::bad_request("no"))
    });
    assert!(r.is_err());
    assert_eq!(store.get(&job.id).unwrap().unwrap().phase, Phase::Completed);
    let r: Result<Option<u32>, TapError> = store.update(&job.id, |j| {
        j.parameters.push(("MAXREC".into(), "5".into()));
        Ok(7)
    });
    assert_eq!(r.unwrap(), Some(7));
    assert_eq!(
        store.get(&job.id).unwrap().unwrap().parameter("maxrec"),
        Some("5")
    );
    let r: Result<Option<()>, TapError> = store.update("nope", |_| Ok(()));
    assert_eq!(r.unwrap(), None);

    assert_eq!(store.ids().unwrap().len(), 2);
    assert!(store.delete(&job.id).unwrap());
    assert!(!store.delete(&job.id).unwrap());
    assert_eq!(store.get(&job.id).unwrap(), None);
}

#[test]
fn restart_recovery_with_a_real_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/jobs.sqlite");
    let mut completed = sample_job("c000000000000001", Phase::Completed, 1_000);
    completed.start_time = Some(t(1_100));
    completed.end_time = Some(t(1_200));
    completed.results = vec![JobResult {
        id: "result".into(),
        key: object_store::path::Path::from("async/c000000000000001/result.vot"),
        mime: "application/x-votable+xml".into(),
        size: Some(10),
        rows: Some(1),
        overflow: false,
    }];
    let mut executing = sample_job("e000000000000001", Phase::Executing, 2_000);
    executing.start_time = Some(t(2_100));
    let pending = sample_job("p000000000000001", Phase::Pending, 3_000);
    let queued2 = sample_job("q000000000000002", Phase::Queued, 5_000);
    let queued1 = sample_job("q000000000000001", Phase::Queued, 4_000);
    let mut aborted = sample_job("a000000000000001", Phase::Aborted, 6_000);
    aborted.end_time = Some(t(6_500));
    {
        let store = JobStore::open(&path).unwrap();
        for j in [
            &completed, &executing, &pending, &queued2, &queued1, &aborted,
        ] {
            store.insert(j).unwrap();
        }
        // Dropped here, as a stopped server would leave it.
    }
    let before = Utc::now();
    let store = JobStore::open(&path).unwrap();
    let rec = store.recover().unwrap();
    assert_eq!(rec.failed, vec!["e000000000000001".to_string()]);
    assert_eq!(
        rec.requeued,
        vec![
            "q000000000000001".to_string(),
            "q000000000000002".to_string()
        ],
        "QUEUED jobs come back oldest first"
    );
    let e = store.get("e000000000000001").unwrap().unwrap();
    assert_eq!(e.phase, Phase::Error);
    let err = e.error.clone().unwrap();
    assert_eq!(
        err.message,
        "the server stopped while this job was executing; submit it again"
    );
    assert!(!err.fatal);
    assert!(e.end_time.unwrap() >= truncate_ms(before) - chrono::Duration::seconds(1));
    assert_eq!(e.start_time, Some(t(2_100)));
    assert_eq!(e.parameters, executing.parameters);
    assert_eq!(store.get("c000000000000001").unwrap(), Some(completed));
    assert_eq!(store.get("p000000000000001").unwrap(), Some(pending));
    assert_eq!(store.get("q000000000000001").unwrap(), Some(queued1));
    assert_eq!(store.get("a000000000000001").unwrap(), Some(aborted));
    // Nothing was lost.
    assert_eq!(store.ids().unwrap().len(), 6);
    // A second recovery finds nothing more to fail.
    let again = store.recover().unwrap();
    assert!(again.failed.is_empty());
    assert_eq!(again.requeued.len(), 2);
    // The file is in WAL mode.
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
}

#[test]
fn job_list_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
    let phases = [
        ("j000000000000000", Phase::Pending, 10_000),
        ("j000000000000001", Phase::Completed, 20_000),
        ("j000000000000002", Phase::Error, 30_000),
        ("j000000000000003", Phase::Archived, 40_000),
        ("j000000000000004", Phase::Completed, 50_000),
        ("j000000000000005", Phase::Executing, 60_000),
    ];
    for (id, p, ms) in phases {
        store.insert(&sample_job(id, p, ms)).unwrap();
    }
    let ids = |f: JobFilter| -> Vec<String> {
        store
            .list(&f)
            .unwrap()
            .into_iter()
            .map(|j| j.id[15..].to_string())
            .collect()
    };
    // Default: everything but ARCHIVED, oldest first.
    assert_eq!(ids(JobFilter::default()), ["0", "1", "2", "4", "5"]);
    assert_eq!(
        ids(JobFilter {
            phases: vec![Phase::Completed],
            ..Default::default()
        }),
        ["1", "4"]
    );
    assert_eq!(
        ids(JobFilter {
            phases: vec![Phase::Completed, Phase::Error, Phase::Archived],
            ..Default::default()
        }),
        ["1", "2", "3", "4"]
    );
    assert_eq!(
        ids(JobFilter {
            after: Some(t(30_000)),
            ..Default::default()
        }),
        ["4", "5"],
        "AFTER is strict and ARCHIVED stays out"
    );
    assert_eq!(
        ids(JobFilter {
            last: Some(3),
            ..Default::default()
        }),
        ["5", "4", "2"],
        "LAST: the most recent, newest first"
    );
    assert_eq!(
        ids(JobFilter {
            phases: vec![Phase::Completed, Phase::Pending],
            after: Some(t(5_000)),
            last: Some(2),
        }),
        ["4", "1"]
    );
    let refs = store
        .list(&JobFilter {
            phases: vec![Phase::Pending],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(refs[0].run_id.as_deref(), Some("run-j000000000000000"));
    assert_eq!(refs[0].creation_time, t(10_000));
    assert_eq!(refs[0].owner, None);
}

#[test]
fn times_and_phases() {
    let x = t(1_795_278_600_123);
    assert_eq!(format_time(&x), "2026-11-21T16:30:00.123Z");
    assert_eq!(parse_iso8601("2026-11-21T16:30:00.123Z"), Some(x));
    assert_eq!(parse_iso8601("2026-11-21T17:30:00.123+01:00"), Some(x));
    assert_eq!(parse_iso8601("2026-11-21T16:30:00.123"), Some(x));
    assert_eq!(parse_iso8601("2026-11-21 16:30:00.123"), Some(x));
    assert_eq!(
        parse_iso8601("2026-11-21"),
        Some(Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap())
    );
    assert_eq!(
        parse_iso8601("2026-11-21T16:30"),
        Some(Utc.with_ymd_and_hms(2026, 11, 21, 16, 30, 0).unwrap())
    );
    assert_eq!(parse_iso8601("yesterday"), None);
    for p in Phase::ALL {
        assert_eq!(Phase::parse(p.as_str()), Some(p));
        assert_eq!(Phase::parse(&p.as_str().to_lowercase()), Some(p));
    }
    assert_eq!(Phase::parse("RUN"), None);
    let id = new_job_id();
    assert!(is_job_id(&id), "{id}");
    assert_ne!(new_job_id(), id);
    assert_eq!(
        xml::esc("a<b & \"c\"\u{1}"),
        "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
    );
}

// ---------------------------------------------------------------------------------------
// Queue and executor with a fake runner

/// A runner whose behaviour is chosen by the job's MODE parameter: `ok` finishes at once,
/// `gate` waits for a permit of `gate`, `forever` never finishes, `fail` fails, `panic`
/// panics. Every run first writes `<prefix>/<id>/result.txt`.
struct Shared {
    active: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    dropped: AtomicUsize,
    gate: Semaphore,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            gate: Semaphore::new(0),
        }
    }
}

struct Fake(Arc<Shared>);

struct ActiveGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.shared.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl JobRunner for Fake {
    fn run(
        &self,
        job: Job,
        out: ResultsLocation,
    ) -> BoxFuture<'static, Result<Vec<JobResult>, JobFailure>> {
        let shared = self.0.clone();
        async move {
            shared.started.fetch_add(1, Ordering::SeqCst);
            let now_active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
            shared.peak.fetch_max(now_active, Ordering::SeqCst);
            let mut guard = ActiveGuard {
                shared: shared.clone(),
                finished: false,
            };
            let key = out.job_prefix(&job.id).join("result.txt");
            let body = format!("rows of job {}\n", job.id);
            let size = body.len() as u64;
            out.store
                .put(&key, body.into())
                .await
                .map_err(|e| JobFailure::transient(e.to_string()))?;
            match job.parameter("MODE").unwrap_or("ok") {
                "gate" => {
                    if let Ok(p) = shared.gate.acquire().await {
                        p.forget();
                    }
                }
                "forever" => futures::future::pending::<()>().await,
                "fail" => {
                    guard.finished = true;
                    return Err(JobFailure::fatal("the query is wrong"));
                }
                "panic" => {
                    guard.finished = true;
                    panic!("the runner panicked");
                }
                _ => {}
            }
            guard.finished = true;
            Ok(vec![JobResult {
                id: "result".into(),
                key,
                mime: "text/plain".into(),
                size: Some(size),
                rows: Some(1),
                overflow: false,
            }])
        }
        .boxed()
    }
}

struct Harness {
    _dir: Option<tempfile::TempDir>,
    state: UwsState,
    shared: Arc<Shared>,
    objects: Arc<InMemory>,
    spool: PathBuf,
    db: PathBuf,
    jobs_dir: PathBuf,
}

async fn harness(tweak: impl FnOnce(&mut UwsConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness_at(dir.path(), tweak).await;
    h._dir = Some(dir);
    h
}

async fn harness_at(root: &Path, tweak: impl FnOnce(&mut UwsConfig)) -> Harness {
    let spool = root.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let jobs_dir = root.join("jobs");
    let mut config = UwsConfig::new(jobs_dir.clone());
    config.max_running = 2;
    config.max_queued = 10;
    config.sweep_interval = Duration::from_secs(3600);
    tweak(&mut config);
    let db = root.join("jobs.sqlite");
    let store = JobStore::open(&db).unwrap();
    let shared = Arc::new(Shared::default());
    let objects = Arc::new(InMemory::new());
    let results = ResultsLocation {
        store: objects.clone(),
        prefix: object_store::path::Path::from("async"),
    };
    let limits = ParamLimits {
        max_upload_bytes: 1 << 20,
        max_text_bytes: 1 << 16,
        spool_dir: spool.clone(),
    };
    let state = UwsState::start(
        store,
        Arc::new(Fake(shared.clone())),
        results,
        config,
        limits,
    )
    .await
    .unwrap();
    Harness {
        _dir: None,
        state,
        shared,
        objects,
        spool,
        db,
        jobs_dir,
    }
}

fn params(pairs: &[(&str, &str)]) -> TapParams {
    TapParams {
        values: pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v.to_string()))
            .collect(),
        files: Vec::new(),
    }
}

async fn phase_of(h: &Harness, id: &str) -> Phase {
    h.state.job(id).await.unwrap().unwrap().phase
}

/// Polls until the job is in `want` (generous bound).
async fn until_phase(h: &Harness, id: &str, want: Phase) -> Job {
    let t0 = Instant::now();
    loop {
        let j = h.state.job(id).await.unwrap().unwrap();
        if j.phase == want {
            return j;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "job {id} is {} after 20 s, expected {want}",
            j.phase
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn object_keys(objects: &InMemory, prefix: &str) -> Vec<String> {
    use futures::StreamExt;
    let p = object_store::path::Path::from(prefix);
    objects
        .list(Some(&p))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_never_exceeds_max_running() {
    let h = harness(|c| c.max_running = 2).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let j = h
            .state
            .create_job(params(&[("MODE", "gate"), ("PHASE", "RUN")]))
            .await
            .unwrap();
        assert!(
            matches!(j.phase, Phase::Queued | Phase::Executing),
            "{}",
            j.phase
        );
        ids.push(j.id);
    }
    until("two jobs executing", || {
        h.shared.active.load(Ordering::SeqCst) == 2
    })
    .await;
    // Give the dispatcher every chance to over-start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.shared.active.load(Ordering::SeqCst), 2);
    assert_eq!(h.shared.started.load(Ordering::SeqCst), 2);
    assert_eq!(h.state.queued_len(), 4);
    let mut executing = 0;
    let mut queued = 0;
    for id in &ids {
        match phase_of(&h, id).await {
            Phase::Executing => executing += 1,
            Phase::Queued => queued += 1,
            p => panic!("unexpected {p}"),
        }
    }
    assert_eq!((executing, queued), (2, 4));
    // Release them one at a time.
    for i in 1..=6 {
        h.shared.gate.add_permits(1);
        until("a job to finish", || {
            h.shared.started.load(Ordering::SeqCst) >= (i + 2).min(6)
                || h.shared.active.load(Ordering::SeqCst) < 2
        })
        .await;
    }
    for id in &ids {
        let j = until_phase(&h, id, Phase::Completed).await;
        assert_eq!(j.results.len(), 1);
        assert!(j.start_time.is_some() && j.end_time.is_some());
        assert!(j.start_time <= j.end_time);
    }
    assert_eq!(h.shared.peak.load(Ordering::SeqCst), 2);
    assert_eq!(h.shared.dropped.load(Ordering::SeqCst), 0);
    // Each task leaves the running set right after recording its end.
    until("the running set to empty", || h.state.running_len() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503() {
    let h = harness(|c| {
        c.max_running = 1;
        c.max_queued = 1;
    })
    .await;
    let a = h
        .state
        .create_job(params(&[("MODE", "gate"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    until_phase(&h, &a.id, Phase::Executing).await;
    let b = h
        .state
        .create_job(params(&[("MODE", "gate"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    assert_eq!(b.phase, Phase::Queued);
    let err = h
        .state
        .create_job(params(&[
            ("MODE", "gate"),
            ("PHASE", "RUN"),
            ("RUNID", "c"),
        ]))
        .await
        .unwrap_err();
    assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(err.message.contains("queue is full"), "{}", err.message);
    let all = h.state.list(JobFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2, "the refused job is not kept");
    let d = h
        .state
        .create_job(params(&[("MODE", "gate")]))
        .await
        .unwrap();
    let err = h.state.run(&d.id).await.unwrap_err();
    assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(phase_of(&h, &d.id).await, Phase::Pending);
    // Once there is room again, it runs.
    h.shared.gate.add_permits(1);
    until_phase(&h, &b.id, Phase::Executing).await;
    h.state.run(&d.id).await.unwrap();
    h.shared.gate.add_permits(2);
    until_phase(&h, &d.id, Phase::Completed).await;
    // RUN on a finished job is refused; RUN on a queued or executing job is a no-op.
    let err = h.state.run(&a.id).await.unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert!(err.message.contains("COMPLETED"), "{}", err.message);
}

use axum::http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_drops_the_runner_and_ends_aborted() {
    let h = harness(|_| {}).await;
    let j = h
        .state
        .create_job(params(&[("MODE", "forever"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    let running = until_phase(&h, &j.id, Phase::Executing).await;
    assert!(running.start_time.is_some());
    until("the runner to start", || {
        h.shared.active.load(Ordering::SeqCst) == 1
    })
    .await;
    let prefix = format!("async/{}", j.id);
    until("the partial object", || true).await;
    let after = h.state.abort(&j.id).await.unwrap();
    assert_eq!(after, Phase::Aborted);
    // abort() returns once the task has dropped the runner's future.
    assert_eq!(h.shared.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(h.shared.active.load(Ordering::SeqCst), 0);
    let job = h.state.job(&j.id).await.unwrap().unwrap();
    assert_eq!(job.phase, Phase::Aborted);
    assert!(job.end_time.is_some());
    assert!(job.results.is_empty());
    assert!(
        object_keys(&h.objects, &prefix).await.is_empty(),
        "partial results are deleted"
    );
    assert_eq!(h.state.running_len(), 0);
    // Aborting again changes nothing; running again is refused.
    assert_eq!(h.state.abort(&j.id).await.unwrap(), Phase::Aborted);
    assert_eq!(
        h.state.run(&j.id).await.unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
    // A PENDING and a QUEUED job abort too; a queued one never starts.
    let p = h.state.create_job(params(&[("MODE", "ok")])).await.unwrap();
    assert_eq!(h.state.abort(&p.id).await.unwrap(), Phase::Aborted);
    let blockers: Vec<_> = futures::future::join_all((0..2).map(|_| {
        h.state
            .create_job(params(&[("MODE", "gate"), ("PHASE", "RUN")]))
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let q = h
        .state
        .create_job(params(&[("MODE", "ok"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    for b in &blockers {
        until_phase(&h, &b.id, Phase::Executing).await;
    }
    assert_eq!(phase_of(&h, &q.id).await, Phase::Queued);
    assert_eq!(h.state.abort(&q.id).await.unwrap(), Phase::Aborted);
    let started = h.shared.started.load(Ordering::SeqCst);
    h.shared.gate.add_permits(2);
    for b in &blockers {
        until_phase(&h, &b.id, Phase::Completed).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.shared.started.load(Ordering::SeqCst),
        started,
        "the aborted job never ran"
    );
    assert_eq!(phase_of(&h, &q.id).await, Phase::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_duration_exceeded_is_an_error() {
    let h = harness(|c| c.execution_duration_hard = Duration::from_secs(5)).await;
    let j = h
        .state
        .create_job(params(&[
            ("MODE", "forever"),
            ("EXECUTIONDURATION", "1"),
            ("PHASE", "RUN"),
        ]))
        .await
        .unwrap();
    assert_eq!(j.execution_duration, 1);
    let done = until_phase(&h, &j.id, Phase::Error).await;
    let e = done.error.unwrap();
    assert!(
        e.message.contains("execution duration of 1 s exceeded"),
        "{}",
        e.message
    );
    assert!(e.fatal);
    assert_eq!(h.shared.dropped.load(Ordering::SeqCst), 1);
    until("the runner to be dropped", || {
        h.shared.active.load(Ordering::SeqCst) == 0
    })
    .await;
    let prefix = format!("async/{}", j.id);
    until("nothing", || true).await;
    // The partial object is deleted right after the phase is recorded.
    let t0 = Instant::now();
    while !object_keys(&h.objects, &prefix).await.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Hard limit and 0 = the hard limit.
    let k = h
        .state
        .create_job(params(&[("EXECUTIONDURATION", "100000")]))
        .await
        .unwrap();
    assert_eq!(k.execution_duration, 5);
    let k = h.state.set_execution_duration(&k.id, "0").await.unwrap();
    assert_eq!(k.execution_duration, 5);
    let k = h.state.set_execution_duration(&k.id, "3").await.unwrap();
    assert_eq!(k.execution_duration, 3);
    assert_eq!(
        h.state
            .set_execution_duration(&k.id, "-1")
            .await
            .unwrap_err()
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.state
            .set_execution_duration(&k.id, "soon")
            .await
            .unwrap_err()
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_panics_end_in_error() {
    let h = harness(|_| {}).await;
    let f = h
        .state
        .create_job(params(&[("MODE", "fail"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    let f = until_phase(&h, &f.id, Phase::Error).await;
    assert_eq!(f.error, Some(JobFailure::fatal("the query is wrong")));
    let p = h
        .state
        .create_job(params(&[("MODE", "panic"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    let p = until_phase(&h, &p.id, Phase::Error).await;
    let e = p.error.unwrap();
    assert!(!e.fatal);
    assert!(e.message.contains("internal error"), "{}", e.message);
    // The slot of the panicked job is free again.
    let ok = h
        .state
        .create_job(params(&[("MODE", "ok"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    until_phase(&h, &ok.id, Phase::Completed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_as_soon_as_the_phase_changes() {
    let h = harness(|c| c.max_wait = Duration::from_secs(30)).await;
    let j = h
        .state
        .create_job(params(&[("MODE", "gate")]))
        .await
        .unwrap();
    // PENDING -> QUEUED/EXECUTING wakes a waiter.
    let waiter = {
        let s = h.state.clone();
        let id = j.id.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let job = s.wait(&id, Duration::from_secs(30), None).await.unwrap();
            (job.phase, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "WAIT blocks while PENDING");
    h.state.run(&j.id).await.unwrap();
    let (phase, took) = waiter.await.unwrap();
    assert_ne!(phase, Phase::Pending);
    assert!(took < Duration::from_secs(10), "{took:?}");
    until_phase(&h, &j.id, Phase::Executing).await;
    // EXECUTING -> COMPLETED wakes a waiter.
    let waiter = {
        let s = h.state.clone();
        let id = j.id.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let job = s.wait(&id, Duration::from_secs(30), None).await.unwrap();
            (job.phase, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "WAIT blocks while EXECUTING");
    h.shared.gate.add_permits(1);
    let (phase, took) = waiter.await.unwrap();
    assert_eq!(phase, Phase::Completed);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A finished job answers at once.
    let t0 = Instant::now();
    let done = h
        .state
        .wait(&j.id, Duration::from_secs(30), None)
        .await
        .unwrap();
    assert_eq!(done.phase, Phase::Completed);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // PHASE=: only wait while in that phase.
    let k = h.state.create_job(params(&[("MODE", "ok")])).await.unwrap();
    let t0 = Instant::now();
    let same = h
        .state
        .wait(&k.id, Duration::from_secs(30), Some(Phase::Executing))
        .await
        .unwrap();
    assert_eq!(same.phase, Phase::Pending);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // A timeout returns the job unchanged.
    let t0 = Instant::now();
    let same = h
        .state
        .wait(&k.id, Duration::from_millis(200), None)
        .await
        .unwrap();
    assert_eq!(same.phase, Phase::Pending);
    assert!(t0.elapsed() >= Duration::from_millis(150));
    // Unknown jobs are 404.
    assert_eq!(
        h.state
            .wait("0000000000000000", Duration::from_secs(1), None)
            .await
            .unwrap_err()
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destruction_removes_the_job_its_results_and_uploads() {
    let h = harness(|c| c.retention_hard = Duration::from_secs(7 * 86400)).await;
    let mut p = params(&[("MODE", "ok"), ("UPLOAD", "t1,param:upload_t1")]);
    p.files.push(spooled(&h.spool, "upload_t1", b"<VOTABLE/>"));
    let j = h.state.create_job(p).await.unwrap();
    let dir = h.jobs_dir.join(&j.id);
    assert!(dir.is_dir());
    h.state.run(&j.id).await.unwrap();
    let done = until_phase(&h, &j.id, Phase::Completed).await;
    let prefix = format!("async/{}", j.id);
    assert_eq!(object_keys(&h.objects, &prefix).await.len(), 1);
    let got = h
        .objects
        .get(&done.results[0].key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], format!("rows of job {}\n", j.id).as_bytes());

    // Destruction is capped by the longest retention.
    let far = h
        .state
        .set_destruction(&j.id, "2999-01-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        far.destruction,
        far.creation_time + chrono::Duration::days(7)
    );
    assert_eq!(
        h.state
            .set_destruction(&j.id, "whenever")
            .await
            .unwrap_err()
            .status,
        StatusCode::BAD_REQUEST
    );
    let keep = h.state.create_job(params(&[("MODE", "ok")])).await.unwrap();
    assert_eq!(h.state.sweep().await.unwrap(), 0);
    h.state
        .set_destruction(&j.id, "2000-01-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(h.state.sweep().await.unwrap(), 1);
    assert_eq!(h.state.job(&j.id).await.unwrap(), None);
    assert!(object_keys(&h.objects, &prefix).await.is_empty());
    assert!(!dir.exists());
    assert!(h.state.job(&keep.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweeper_destroys_expired_jobs() {
    let h = harness(|c| c.sweep_interval = Duration::from_millis(50)).await;
    let j = h
        .state
        .create_job(params(&[("MODE", "gate"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    until_phase(&h, &j.id, Phase::Executing).await;
    // An executing job past its destruction time is aborted and destroyed.
    h.state.set_destruction(&j.id, "2000-01-01").await.unwrap();
    let t0 = Instant::now();
    while h.state.job(&j.id).await.unwrap().is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the sweeper did not destroy the job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.shared.dropped.load(Ordering::SeqCst), 1);
    assert!(
        object_keys(&h.objects, &format!("async/{}", j.id))
            .await
            .is_empty()
    );
}

fn spooled(spool: &Path, name: &str, bytes: &[u8]) -> UploadedPart {
    let mut f = tempfile::NamedTempFile::new_in(spool).unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
    UploadedPart {
        name: name.to_string(),
        file_name: Some(format!("{name}.xml")),
        content_type: Some("application/x-votable+xml".into()),
        file: f.into_temp_path(),
        size: bytes.len() as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_parameters() {
    let h = harness(|_| {}).await;
    let mut p = params(&[
        ("REQUEST", "doQuery"),
        ("LANG", "ADQL"),
        ("QUERY", "SELECT * FROM TAP_UPLOAD.t1"),
        ("UPLOAD", "t1,param:upload_t1;t2,param:inline"),
        ("INLINE", "a,b\n1,2\n"),
        ("RUNID", "first"),
        ("DESTRUCTION", "2000-01-01T00:00:00Z"),
    ]);
    // `INLINE` came upper-cased as a text field; the UPLOAD reference is matched in any case.
    p.files.push(spooled(&h.spool, "upload_t1", b"<VOTABLE/>"));
    let spooled_path = p.files[0].file.to_path_buf();
    let j = h.state.create_job(p).await.unwrap();
    assert_eq!(j.phase, Phase::Pending);
    assert_eq!(j.run_id.as_deref(), Some("first"));
    assert_eq!(j.parameter("runid"), Some("first"));
    assert_eq!(
        j.parameter("INLINE"),
        None,
        "an inline table is a file, not a parameter"
    );
    assert_eq!(j.destruction, t(946_684_800_000));
    assert!(!spooled_path.exists(), "the spooled part was moved");
    assert_eq!(j.uploads.len(), 2);
    let u1 = j.upload("upload_t1").unwrap();
    assert!(u1.path.starts_with(h.jobs_dir.join(&j.id)));
    assert_eq!(std::fs::read(&u1.path).unwrap(), b"<VOTABLE/>");
    assert_eq!(
        u1.content_type.as_deref(),
        Some("application/x-votable+xml")
    );
    let u2 = j.upload("inline").unwrap();
    assert_eq!(std::fs::read(&u2.path).unwrap(), b"a,b\n1,2\n");

    // As request parameters again (what the query executor reads).
    let mut tp = j.tap_params(&h.spool).unwrap();
    assert_eq!(tp.get("QUERY"), Some("SELECT * FROM TAP_UPLOAD.t1"));
    let part = tp.take_file("upload_t1", &h.spool).unwrap().unwrap();
    assert_eq!(std::fs::read(&part.file).unwrap(), b"<VOTABLE/>");
    drop(part);
    drop(tp);
    assert!(u1.path.exists(), "the job keeps its own file");

    // Later parameters replace earlier values of the same name; new parts join or replace.
    let mut more = params(&[("runId", "second"), ("MAXREC", "10")]);
    more.files.push(spooled(
        &h.spool,
        "upload_t1",
        b"<VOTABLE version=\"1.4\"/>",
    ));
    let j2 = h.state.set_parameters(&j.id, more).await.unwrap();
    assert_eq!(j2.run_id.as_deref(), Some("second"));
    assert_eq!(j2.parameter_values("RUNID"), ["second"]);
    assert_eq!(j2.parameter("MAXREC"), Some("10"));
    assert_eq!(j2.parameter("QUERY"), Some("SELECT * FROM TAP_UPLOAD.t1"));
    assert_eq!(j2.uploads.len(), 2);
    assert_eq!(
        std::fs::read(&j2.upload("upload_t1").unwrap().path).unwrap(),
        b"<VOTABLE version=\"1.4\"/>"
    );
    assert!(!u1.path.exists() || j2.upload("upload_t1").unwrap().path == u1.path);

    // Bad values are refused and change nothing.
    for bad in [
        params(&[("EXECUTIONDURATION", "x")]),
        params(&[("DESTRUCTION", "x")]),
        params(&[("PHASE", "SUSPEND")]),
        params(&[("ACTION", "DELETE")]),
    ] {
        assert_eq!(
            h.state.set_parameters(&j.id, bad).await.unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
    for bad in [
        params(&[("PHASE", "ABORT")]),
        params(&[("ACTION", "DELETE")]),
    ] {
        assert_eq!(
            h.state.create_job(bad).await.unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(h.state.job(&j.id).await.unwrap().unwrap(), j2);

    // Only while PENDING.
    let j3 = h
        .state
        .set_parameters(&j.id, params(&[("MODE", "ok"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    assert_ne!(j3.phase, Phase::Pending);
    until_phase(&h, &j.id, Phase::Completed).await;
    let err = h
        .state
        .set_parameters(&j.id, params(&[("MAXREC", "1")]))
        .await
        .unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert!(err.message.contains("PENDING"), "{}", err.message);
    assert_eq!(
        h.state
            .set_parameters("0000000000000000", params(&[("MAXREC", "1")]))
            .await
            .unwrap_err()
            .status,
        StatusCode::NOT_FOUND
    );

    // Deleting removes the directory.
    assert!(h.state.delete(&j.id).await.unwrap());
    assert!(!h.jobs_dir.join(&j.id).exists());
    assert!(!h.state.delete(&j.id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_fails_executing_jobs_and_runs_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let old = harness_at(root, |c| c.max_running = 1).await;
    let e = old
        .state
        .create_job(params(&[("MODE", "forever"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    until_phase(&old, &e.id, Phase::Executing).await;
    let q = old
        .state
        .create_job(params(&[("MODE", "ok"), ("PHASE", "RUN")]))
        .await
        .unwrap();
    let p = old
        .state
        .create_job(params(&[("MODE", "ok")]))
        .await
        .unwrap();
    assert_eq!(phase_of(&old, &q.id).await, Phase::Queued);
    // The old server stops dispatching; its database and directories stay as they are.
    old.state.shutdown();
    // A leftover directory of a job that was never recorded.
    std::fs::create_dir_all(root.join("jobs/00000000deadbeef")).unwrap();

    let h = harness_at(root, |c| c.max_running = 1).await;
    let e = h.state.job(&e.id).await.unwrap().unwrap();
    assert_eq!(e.phase, Phase::Error);
    assert!(e.end_time.is_some());
    assert_eq!(
        e.error.unwrap().message,
        "the server stopped while this job was executing; submit it again"
    );
    until_phase(&h, &q.id, Phase::Completed).await;
    assert_eq!(phase_of(&h, &p.id).await, Phase::Pending);
    assert!(!root.join("jobs/00000000deadbeef").exists());
    assert!(root.join("jobs").join(&p.id).exists());
    assert_eq!(h.db, old.db);
}
