//! UWS 1.1 (<https://www.ivoa.net/documents/UWS/>): the asynchronous job system behind
//! `/tap/async`.
//!
//! * [`JobStore`] keeps every job in an SQLite database (WAL), so jobs survive restarts:
//!   at start-up jobs found EXECUTING become ERROR ("the server stopped while this job was
//!   executing; submit it again") and QUEUED jobs are queued again.
//! * [`UwsState`] owns the queue: at most `max_queued` jobs wait, at most `max_running`
//!   execute at once, each under `tokio::time::timeout(execution duration)`. A job runs
//!   through a [`JobRunner`] (the TAP query executor) that writes its results to the
//!   object store under `<prefix>/<job id>/`. ABORT drops the runner's future. A background
//!   sweeper destroys jobs whose destruction time has passed (results, uploaded files, row).
//! * [`router`] serves the UWS REST binding; nest it at `/tap/async`.
//!
//! Every phase change is written to the database before anyone can observe it, and the
//! database is the only arbiter of phase transitions: each transition is a read-modify-write
//! in one transaction that checks the phase it starts from, so ABORT, DELETE, the
//! dispatcher and a finishing job cannot overwrite each other.

mod http;
mod queue;
mod store;
mod xml;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use tokio::sync::{Notify, Semaphore, watch};

pub use http::router;
pub use store::{JobFilter, JobRef, JobStore, Recovered, StoreError};

use super::error::TapError;
use super::params::{ParamLimits, TapParams, UploadedPart};

/// The UWS execution phases (UWS 1.1 §2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Created, not yet asked to run.
    Pending,
    /// Waiting for an execution slot.
    Queued,
    /// Running.
    Executing,
    /// Finished with results.
    Completed,
    /// Failed.
    Error,
    /// Aborted by the client (or the server).
    Aborted,
    /// Unknown (never set by this server).
    Unknown,
    /// Held (never set by this server).
    Held,
    /// Suspended (never set by this server).
    Suspended,
    /// Archived (never set by this server: jobs are destroyed instead).
    Archived,
}

impl Phase {
    /// Every phase, in schema order.
    pub const ALL: [Phase; 10] = [
        Phase::Pending,
        Phase::Queued,
        Phase::Executing,
        Phase::Completed,
        Phase::Error,
        Phase::Aborted,
        Phase::Unknown,
        Phase::Held,
        Phase::Suspended,
        Phase::Archived,
    ];

    /// The UWS name (`PENDING`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Queued => "QUEUED",
            Phase::Executing => "EXECUTING",
            Phase::Completed => "COMPLETED",
            Phase::Error => "ERROR",
            Phase::Aborted => "ABORTED",
            Phase::Unknown => "UNKNOWN",
            Phase::Held => "HELD",
            Phase::Suspended => "SUSPENDED",
            Phase::Archived => "ARCHIVED",
        }
    }

    /// Parses a UWS phase name (case-insensitive).
    pub fn parse(s: &str) -> Option<Phase> {
        let s = s.trim();
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// PENDING, QUEUED or EXECUTING: the phases a `WAIT` blocks in.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Pending | Phase::Queued | Phase::Executing)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file uploaded with a job (a multipart part), kept in the job's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpload {
    /// The part's form name as sent (what `UPLOAD=t,param:NAME` refers to).
    pub name: String,
    /// Where the bytes are.
    pub path: PathBuf,
    /// The client's file name, if any.
    pub file_name: Option<String>,
    /// The part's content type, if any.
    pub content_type: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// One result of a job, an object in the results store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// The UWS result id (`result` for the TAP result).
    pub id: String,
    /// The object's key.
    pub key: object_store::path::Path,
    /// Its media type, answered as Content-Type.
    pub mime: String,
    /// Its size in bytes, if known.
    pub size: Option<u64>,
    /// Rows in the table, if known.
    pub rows: Option<u64>,
    /// Whether MAXREC truncated the table.
    pub overflow: bool,
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// What went wrong, for the client.
    pub message: String,
    /// `true`: the request was at fault (UWS `fatal`); `false`: the service (`transient`).
    pub fatal: bool,
}

impl JobFailure {
    /// A failure caused by the request (UWS type `fatal`).
    pub fn fatal(message: impl Into<String>) -> JobFailure {
        JobFailure {
            message: message.into(),
            fatal: true,
        }
    }

    /// A failure of the service (UWS type `transient`).
    pub fn transient(message: impl Into<String>) -> JobFailure {
        JobFailure {
            message: message.into(),
            fatal: false,
        }
    }
}

/// A UWS job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job's identifier (16 lower-case hex digits).
    pub id: String,
    /// The client's RUNID, if any.
    pub run_id: Option<String>,
    /// The owner (none while the service is anonymous).
    pub owner: Option<String>,
    /// The current phase.
    pub phase: Phase,
    /// Predicted completion time (this service gives none).
    pub quote: Option<DateTime<Utc>>,
    /// When the job was created.
    pub creation_time: DateTime<Utc>,
    /// When it started executing.
    pub start_time: Option<DateTime<Utc>>,
    /// When it reached a final phase.
    pub end_time: Option<DateTime<Utc>>,
    /// Longest execution, in seconds.
    pub execution_duration: u64,
    /// When the job and its results are destroyed.
    pub destruction: DateTime<Utc>,
    /// The parameters, names upper-cased, in the order received (a name may repeat).
    /// UWS control parameters (PHASE, ACTION, EXECUTIONDURATION, DESTRUCTION) are not kept
    /// here; RUNID is kept (and also in [`Job::run_id`]).
    pub parameters: Vec<(String, String)>,
    /// Uploaded files.
    pub uploads: Vec<JobUpload>,
    /// Results (when COMPLETED).
    pub results: Vec<JobResult>,
    /// The error (when ERROR).
    pub error: Option<JobFailure>,
}

impl Job {
    /// The first value of a parameter (name in any case).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter, in order.
    pub fn parameter_values(&self, name: &str) -> Vec<&str> {
        self.parameters
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The uploaded file whose part was named `name` (exact name first, then any case).
    pub fn upload(&self, name: &str) -> Option<&JobUpload> {
        self.uploads.iter().find(|u| u.name == name).or_else(|| {
            self.uploads
                .iter()
                .find(|u| u.name.eq_ignore_ascii_case(name))
        })
    }

    /// The result with this id.
    pub fn result(&self, id: &str) -> Option<&JobResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// The execution duration limit.
    pub fn execution_limit(&self) -> Duration {
        Duration::from_secs(self.execution_duration)
    }

    /// The job's parameters as a request's [`TapParams`], so that the synchronous query
    /// path can run it unchanged: the values, and each uploaded file as a spooled part. The
    /// parts are hard links (copies across file systems) made in `spool_dir`, deleted when
    /// the `TapParams` is dropped; the job's own files stay.
    pub fn tap_params(&self, spool_dir: &Path) -> std::io::Result<TapParams> {
        let mut files = Vec::with_capacity(self.uploads.len());
        for u in &self.uploads {
            let tmp = tempfile::Builder::new()
                .prefix("uws-upload-")
                .tempfile_in(spool_dir)?
                .into_temp_path();
            std::fs::remove_file(&tmp)?;
            if std::fs::hard_link(&u.path, &tmp).is_err() {
                std::fs::copy(&u.path, &tmp)?;
            }
            files.push(UploadedPart {
                name: u.name.clone(),
                file_name: u.file_name.clone(),
                content_type: u.content_type.clone(),
                file: tmp,
                size: u.size,
            });
        }
        Ok(TapParams {
            values: self.parameters.clone(),
            files,
        })
    }
}

/// Where results are written: job X writes under `<prefix>/<X>/`.
#[derive(Debug, Clone)]
pub struct ResultsLocation {
    /// The object store.
    pub store: Arc<dyn object_store::ObjectStore>,
    /// The prefix owned by the job system.
    pub prefix: object_store::path::Path,
}

impl ResultsLocation {
    /// `<prefix>/<job id>`: where the job's results go.
    pub fn job_prefix(&self, job_id: &str) -> object_store::path::Path {
        self.prefix.clone().join(job_id)
    }
}

/// Runs jobs (the TAP query executor implements this; tests use fakes).
pub trait JobRunner: Send + Sync + 'static {
    /// Runs the job's query and writes its results under `out.job_prefix(&job.id)`.
    /// Dropping the future must stop the work (ABORT and the execution-duration limit drop
    /// it).
    fn run(
        &self,
        job: Job,
        out: ResultsLocation,
    ) -> BoxFuture<'static, Result<Vec<JobResult>, JobFailure>>;
}

/// Settings of the job system.
#[derive(Debug, Clone)]
pub struct UwsConfig {
    /// Jobs executing at once.
    pub max_running: usize,
    /// Jobs waiting in QUEUED at most; beyond, `PHASE=RUN` is answered 503.
    pub max_queued: usize,
    /// Execution duration of a job that asks for none.
    pub execution_duration_default: Duration,
    /// Longest execution duration (also what `EXECUTIONDURATION=0` means).
    pub execution_duration_hard: Duration,
    /// Destruction = creation + this, unless the client asks otherwise.
    pub retention_default: Duration,
    /// Destruction is at most creation + this.
    pub retention_hard: Duration,
    /// Longest blocking `WAIT` (`WAIT=-1` waits this long).
    pub max_wait: Duration,
    /// Uploaded files of job X are kept in `<jobs_dir>/<X>/`.
    pub jobs_dir: PathBuf,
    /// How often expired jobs are destroyed.
    pub sweep_interval: Duration,
}

impl UwsConfig {
    /// Defaults (4 running, 100 queued, 10 min default / 2 h longest execution, 3 days
    /// default / 30 days longest retention, WAIT up to 60 s, sweep every minute) with
    /// upload files under `jobs_dir`.
    pub fn new(jobs_dir: PathBuf) -> UwsConfig {
        UwsConfig {
            max_running: 4,
            max_queued: 100,
            execution_duration_default: Duration::from_secs(600),
            execution_duration_hard: Duration::from_secs(7200),
            retention_default: Duration::from_secs(3 * 86400),
            retention_hard: Duration::from_secs(30 * 86400),
            max_wait: Duration::from_secs(60),
            jobs_dir,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// Why the job system could not start.
#[derive(Debug, thiserror::Error)]
pub enum UwsError {
    /// The job database failed.
    #[error("job database: {0}")]
    Store(#[from] StoreError),
    /// The jobs directory could not be prepared.
    #[error("jobs directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A job currently executing: how to stop it and how to know it stopped.
#[derive(Debug)]
struct Running {
    cancel: Option<tokio::sync::oneshot::Sender<()>>,
    done: watch::Receiver<bool>,
}

#[derive(Debug, Default)]
struct Queue {
    /// QUEUED job ids in order.
    waiting: VecDeque<String>,
    /// Slots reserved by requests between their check and their database update.
    reserved: usize,
}

struct Inner {
    store: Arc<JobStore>,
    runner: Arc<dyn JobRunner>,
    results: ResultsLocation,
    config: UwsConfig,
    param_limits: ParamLimits,
    queue: Mutex<Queue>,
    queue_notify: Notify,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<String, Running>>,
    /// Bumped after every persisted phase change; WAIT subscribes.
    changes: watch::Sender<u64>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("store", &self.store)
            .field("results", &self.results)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The running job system: store, queue, executor and sweeper. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UwsState {
    inner: Arc<Inner>,
    /// Where the router is nested (for absolute URLs); default `/tap/async`.
    mount: Arc<str>,
}

/// What `PHASE=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhaseAction {
    Run,
    Abort,
}

fn parse_phase_action(v: &str) -> Result<PhaseAction, TapError> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("RUN") {
        Ok(PhaseAction::Run)
    } else if v.eq_ignore_ascii_case("ABORT") {
        Ok(PhaseAction::Abort)
    } else {
        Err(TapError::bad_request(format!(
            "PHASE={v} is not accepted: send PHASE=RUN to start the job or PHASE=ABORT to stop it"
        )))
    }
}

impl UwsState {
    /// Opens the job system: recovers the store (EXECUTING jobs become ERROR, QUEUED jobs
    /// are queued again), removes upload directories of jobs that no longer exist, and
    /// starts the dispatcher and the destruction sweeper on the current tokio runtime.
    pub async fn start(
        store: JobStore,
        runner: Arc<dyn JobRunner>,
        results: ResultsLocation,
        config: UwsConfig,
        param_limits: ParamLimits,
    ) -> Result<UwsState, UwsError> {
        std::fs::create_dir_all(&config.jobs_dir).map_err(|source| UwsError::Io {
            path: config.jobs_dir.clone(),
            source,
        })?;
        let store = Arc::new(store);
        let recovered = {
            let s = store.clone();
            blocking(move || s.recover()).await?
        };
        let max_running = config.max_running.clamp(1, Semaphore::MAX_PERMITS);
        let inner = Arc::new(Inner {
            store,
            runner,
            results,
            config,
            param_limits,
            queue: Mutex::new(Queue::default()),
            queue_notify: Notify::new(),
            slots: Arc::new(Semaphore::new(max_running)),
            running: Mutex::new(HashMap::new()),
            changes: watch::Sender::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        for id in &recovered.failed {
            tracing::warn!("UWS job {id} was executing when the server stopped; it is now ERROR");
            queue::delete_prefix(&inner.results, id).await;
        }
        if !recovered.requeued.is_empty() {
            tracing::info!(
                "UWS: {} queued job(s) queued again",
                recovered.requeued.len()
            );
        }
        {
            let mut q = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.waiting.extend(recovered.requeued.iter().cloned());
        }
        remove_orphan_dirs(&inner).await;
        let dispatcher = tokio::spawn(queue::dispatch_loop(inner.clone()));
        let sweeper = tokio::spawn(queue::sweep_loop(inner.clone()));
        {
            let mut t = inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
            t.push(dispatcher.abort_handle());
            t.push(sweeper.abort_handle());
        }
        inner.queue_notify.notify_one();
        Ok(UwsState {
            inner,
            mount: Arc::from("/tap/async"),
        })
    }

    /// The same state answering under another mount path (for absolute URLs), e.g.
    /// `/other/async`.
    pub fn with_mount_path(mut self, path: &str) -> UwsState {
        self.mount = Arc::from(path.trim_end_matches('/'));
        self
    }

    /// The mount path (`/tap/async` by default).
    pub fn mount_path(&self) -> &str {
        &self.mount
    }

    /// The settings.
    pub fn config(&self) -> &UwsConfig {
        &self.inner.config
    }

    /// The job store.
    pub fn store(&self) -> &Arc<JobStore> {
        &self.inner.store
    }

    /// Stops the dispatcher and the sweeper (executing jobs keep running until they end;
    /// a restart recovers whatever they leave behind).
    pub fn shutdown(&self) {
        let t = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for h in t.iter() {
            h.abort();
        }
    }

    /// Reads a job.
    pub async fn job(&self, id: &str) -> Result<Option<Job>, TapError> {
        let s = self.inner.store.clone();
        let id = id.to_string();
        blocking(move || s.get(&id))
            .await
            .map_err(TapError::internal)
    }

    async fn job_or_404(&self, id: &str) -> Result<Job, TapError> {
        self.job(id).await?.ok_or_else(|| no_such_job(id))
    }

    /// Lists jobs.
    pub async fn list(&self, filter: JobFilter) -> Result<Vec<JobRef>, TapError> {
        let s = self.inner.store.clone();
        blocking(move || s.list(&filter))
            .await
            .map_err(TapError::internal)
    }

    /// Creates a job from a request's parameters (UWS control parameters included:
    /// RUNID, EXECUTIONDURATION, DESTRUCTION, and PHASE=RUN to queue it at once). Files
    /// are moved into the job's directory.
    pub async fn create_job(&self, mut params: TapParams) -> Result<Job, TapError> {
        let cfg = &self.inner.config;
        let now = now();
        let mut job = Job {
            id: String::new(),
            run_id: None,
            owner: None,
            phase: Phase::Pending,
            quote: None,
            creation_time: now,
            start_time: None,
            end_time: None,
            execution_duration: cfg.execution_duration_default.as_secs().max(1),
            destruction: now + chrono_duration(cfg.retention_default),
            parameters: Vec::new(),
            uploads: Vec::new(),
            results: Vec::new(),
            error: None,
        };
        if params.get("ACTION").is_some() {
            return Err(TapError::bad_request(
                "ACTION is not accepted when creating a job (ACTION=DELETE applies to an existing job)",
            ));
        }
        let phase = params.get("PHASE").map(parse_phase_action).transpose()?;
        if phase == Some(PhaseAction::Abort) {
            return Err(TapError::bad_request(
                "PHASE=ABORT is not accepted when creating a job; send PHASE=RUN or no PHASE",
            ));
        }
        let parts = take_parts(&mut params, &self.inner.param_limits.spool_dir)?;
        apply_settings(&mut job, &params.values, cfg)?;
        let jobs_dir = cfg.jobs_dir.clone();
        let store = self.inner.store.clone();
        let job = blocking(move || -> Result<Job, TapError> {
            // A unique id: the directory is created atomically (a collision of 64 random
            // bits is astronomically unlikely, but would be refused here).
            std::fs::create_dir_all(&jobs_dir)
                .map_err(|e| TapError::internal(format!("creating {}: {e}", jobs_dir.display())))?;
            let mut dir = None;
            for _ in 0..8 {
                job.id = new_job_id();
                let d = jobs_dir.join(&job.id);
                match std::fs::create_dir(&d) {
                    Ok(()) => {
                        dir = Some(d);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        return Err(TapError::internal(format!("creating {}: {e}", d.display())));
                    }
                }
            }
            let Some(dir) = dir else {
                return Err(TapError::internal("could not allocate a job id"));
            };
            let stored = (|| -> Result<(), TapError> {
                for part in parts {
                    let u = store_part(part, &dir, &job.uploads).map_err(TapError::internal)?;
                    replace_upload(&mut job.uploads, u);
                }
                store.insert(&job)?;
                Ok(())
            })();
            if let Err(e) = stored {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
            Ok(job)
        })
        .await?;
        if phase == Some(PhaseAction::Run) {
            if let Err(e) = self.run(&job.id).await {
                // The client asked for a queued job; a job it did not ask for is not kept.
                let _ = self.delete(&job.id).await;
                return Err(e);
            }
            return self.job_or_404(&job.id).await;
        }
        Ok(job)
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.inner.config.jobs_dir.join(id)
    }

    /// Sets parameters of a PENDING job (UWS control parameters included; PHASE is then
    /// applied, ACTION is not accepted here).
    pub async fn set_parameters(&self, id: &str, mut params: TapParams) -> Result<Job, TapError> {
        if params.get("ACTION").is_some() {
            return Err(TapError::bad_request(
                "ACTION is only accepted by a POST to the job itself",
            ));
        }
        let phase = params.get("PHASE").map(parse_phase_action).transpose()?;
        let parts = take_parts(&mut params, &self.inner.param_limits.spool_dir)?;
        let values = params.values;
        let has_changes =
            !parts.is_empty() || values.iter().any(|(k, _)| !k.eq_ignore_ascii_case("PHASE"));
        if has_changes {
            let cfg = self.inner.config.clone();
            let dir = self.job_dir(id);
            let s = self.inner.store.clone();
            let id2 = id.to_string();
            let found = blocking(move || -> Result<Option<()>, TapError> {
                // Files are moved in before the record is updated (outside the database
                // lock: a move across file systems copies), and removed again if the
                // update is refused.
                let Some(current) = s.get(&id2)? else {
                    return Ok(None);
                };
                if current.phase != Phase::Pending {
                    return Err(not_pending(&current, "its parameters"));
                }
                let mut moved: Vec<JobUpload> = Vec::new();
                if !parts.is_empty() {
                    std::fs::create_dir_all(&dir).map_err(TapError::internal)?;
                }
                for part in parts {
                    let mut taken: Vec<JobUpload> = current.uploads.clone();
                    taken.extend(moved.iter().cloned());
                    match store_part(part, &dir, &taken) {
                        Ok(u) => moved.push(u),
                        Err(e) => {
                            for m in &moved {
                                let _ = std::fs::remove_file(&m.path);
                            }
                            return Err(TapError::internal(e));
                        }
                    }
                }
                let new_paths: Vec<PathBuf> = moved.iter().map(|u| u.path.clone()).collect();
                let out = s.update(&id2, |job| -> Result<Vec<PathBuf>, TapError> {
                    if job.phase != Phase::Pending {
                        return Err(not_pending(job, "its parameters"));
                    }
                    apply_settings(job, &values, &cfg)?;
                    let mut replaced = Vec::new();
                    for u in moved {
                        if let Some(old) = job.uploads.iter().find(|o| o.name == u.name) {
                            replaced.push(old.path.clone());
                        }
                        replace_upload(&mut job.uploads, u);
                    }
                    Ok(replaced)
                });
                match out {
                    Ok(Some(replaced)) => {
                        for f in replaced {
                            let _ = std::fs::remove_file(f);
                        }
                        Ok(Some(()))
                    }
                    Ok(None) => {
                        for p in &new_paths {
                            let _ = std::fs::remove_file(p);
                        }
                        Ok(None)
                    }
                    Err(e) => {
                        for p in &new_paths {
                            let _ = std::fs::remove_file(p);
                        }
                        Err(e)
                    }
                }
            })
            .await?;
            if found.is_none() {
                return Err(no_such_job(id));
            }
        } else if self.job(id).await?.is_none() {
            return Err(no_such_job(id));
        }
        match phase {
            Some(PhaseAction::Run) => self.run(id).await?,
            Some(PhaseAction::Abort) => {
                self.abort(id).await?;
            }
            None => {}
        }
        self.job_or_404(id).await
    }

    /// Sets the execution duration (seconds) of a PENDING job; 0 means the longest allowed.
    pub async fn set_execution_duration(&self, id: &str, value: &str) -> Result<Job, TapError> {
        let values = vec![("EXECUTIONDURATION".to_string(), value.to_string())];
        self.update_pending_settings(id, values, "its execution duration")
            .await
    }

    /// Sets the destruction time (ISO 8601) of a job, in any phase; capped by the longest
    /// retention.
    pub async fn set_destruction(&self, id: &str, value: &str) -> Result<Job, TapError> {
        let t = parse_iso8601(value).ok_or_else(|| {
            TapError::bad_request(format!(
                "DESTRUCTION={value} is not an ISO 8601 time (e.g. 2030-01-31T12:00:00Z)"
            ))
        })?;
        let cfg = self.inner.config.clone();
        let s = self.inner.store.clone();
        let id2 = id.to_string();
        let out = blocking(move || {
            s.update(&id2, |job| -> Result<(), TapError> {
                job.destruction = cap_destruction(job, t, &cfg);
                Ok(())
            })
        })
        .await?;
        out.ok_or_else(|| no_such_job(id))?;
        self.job_or_404(id).await
    }

    async fn update_pending_settings(
        &self,
        id: &str,
        values: Vec<(String, String)>,
        what: &'static str,
    ) -> Result<Job, TapError> {
        let cfg = self.inner.config.clone();
        let s = self.inner.store.clone();
        let id2 = id.to_string();
        let out = blocking(move || {
            s.update(&id2, |job| -> Result<(), TapError> {
                if job.phase != Phase::Pending {
                    return Err(not_pending(job, what));
                }
                apply_settings(job, &values, &cfg)
            })
        })
        .await?;
        out.ok_or_else(|| no_such_job(id))?;
        self.job_or_404(id).await
    }

    /// `PHASE=RUN`: queues a PENDING job (503 when the queue is full). A job already
    /// QUEUED or EXECUTING is left alone; a finished job cannot run again (400).
    pub async fn run(&self, id: &str) -> Result<(), TapError> {
        queue::enqueue(&self.inner, id).await
    }

    /// `PHASE=ABORT`: a PENDING, QUEUED or EXECUTING job becomes ABORTED (an executing
    /// job's query is dropped before this returns, or within 10 s at worst). Finished jobs
    /// are left alone. Returns the phase afterwards.
    pub async fn abort(&self, id: &str) -> Result<Phase, TapError> {
        queue::abort(&self.inner, id)
            .await?
            .ok_or_else(|| no_such_job(id))
    }

    /// Destroys a job: aborts it if active, deletes its results, its uploaded files and its
    /// record. `false` if there was no such job.
    pub async fn delete(&self, id: &str) -> Result<bool, TapError> {
        queue::destroy(&self.inner, id).await
    }

    /// Destroys every job whose destruction time has passed; returns how many.
    pub async fn sweep(&self) -> Result<usize, TapError> {
        queue::sweep_once(&self.inner).await
    }

    /// UWS 1.1 blocking: waits up to `timeout` (capped by `max_wait`) while the job stays
    /// in the phase it has now, if that phase is PENDING, QUEUED or EXECUTING (and equals
    /// `only_in` when given). Returns the job as it is then.
    pub async fn wait(
        &self,
        id: &str,
        timeout: Duration,
        only_in: Option<Phase>,
    ) -> Result<Job, TapError> {
        let timeout = timeout.min(self.inner.config.max_wait);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.inner.changes.subscribe();
        let first = self.job_or_404(id).await?;
        let initial = first.phase;
        if !initial.is_active() || only_in.is_some_and(|p| p != initial) {
            return Ok(first);
        }
        loop {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.job_or_404(id).await;
            }
            let job = self.job_or_404(id).await?;
            if job.phase != initial {
                return Ok(job);
            }
        }
    }

    /// Number of jobs waiting in the queue.
    pub fn queued_len(&self) -> usize {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .len()
    }

    /// Number of jobs executing now.
    pub fn running_len(&self) -> usize {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn results(&self) -> &ResultsLocation {
        &self.inner.results
    }

    fn param_limits(&self) -> &ParamLimits {
        &self.inner.param_limits
    }
}

fn no_such_job(id: &str) -> TapError {
    TapError::not_found(format!(
        "no job `{id}`: it never existed or has been destroyed"
    ))
}

fn not_pending(job: &Job, what: &str) -> TapError {
    TapError::bad_request(format!(
        "job {} is {}: {what} can only be changed while it is PENDING",
        job.id, job.phase
    ))
}

/// Runs a store call on the blocking pool.
async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(E::from(StoreError::Task(e.to_string()))),
    }
}

impl From<StoreError> for TapError {
    fn from(e: StoreError) -> TapError {
        TapError::internal(e)
    }
}

/// Applies UWS settings and job parameters from `values` to a PENDING job: RUNID,
/// EXECUTIONDURATION and DESTRUCTION set the job's fields (RUNID is also kept as a
/// parameter), PHASE and ACTION are skipped, every other name replaces the values the job
/// had under that name.
fn apply_settings(
    job: &mut Job,
    values: &[(String, String)],
    cfg: &UwsConfig,
) -> Result<(), TapError> {
    let mut replaced: Vec<String> = Vec::new();
    for (k, v) in values {
        let k = k.to_ascii_uppercase();
        match k.as_str() {
            "PHASE" | "ACTION" => continue,
            "EXECUTIONDURATION" => {
                job.execution_duration = parse_execution_duration(v, cfg)?;
                continue;
            }
            "DESTRUCTION" => {
                let t = parse_iso8601(v).ok_or_else(|| {
                    TapError::bad_request(format!(
                        "DESTRUCTION={v} is not an ISO 8601 time (e.g. 2030-01-31T12:00:00Z)"
                    ))
                })?;
                job.destruction = cap_destruction(job, t, cfg);
                continue;
            }
            "RUNID" => {
                job.run_id = Some(v.clone()).filter(|s| !s.is_empty());
            }
            _ => {}
        }
        if !replaced.contains(&k) {
            job.parameters.retain(|(n, _)| *n != k);
            replaced.push(k.clone());
        }
        job.parameters.push((k, v.clone()));
    }
    Ok(())
}

fn parse_execution_duration(v: &str, cfg: &UwsConfig) -> Result<u64, TapError> {
    let hard = cfg.execution_duration_hard.as_secs().max(1);
    let t = v.trim();
    let n: i64 = t
        .parse()
        .ok()
        .or_else(|| {
            t.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f.ceil() as i64)
        })
        .ok_or_else(|| {
            TapError::bad_request(format!(
                "EXECUTIONDURATION={v} is not a whole number of seconds"
            ))
        })?;
    if n < 0 {
        return Err(TapError::bad_request(format!(
            "EXECUTIONDURATION={v} is negative; send a number of seconds (0 = the longest allowed, {hard} s)"
        )));
    }
    let n = n as u64;
    Ok(if n == 0 { hard } else { n.min(hard) })
}

fn cap_destruction(job: &Job, t: DateTime<Utc>, cfg: &UwsConfig) -> DateTime<Utc> {
    let max = job.creation_time + chrono_duration(cfg.retention_hard);
    truncate_ms(t.min(max))
}

/// Moves the parts of a request that become job files out of `params`: every file part,
/// and the plain-text fields that `UPLOAD=t,param:NAME` refers to.
fn take_parts(params: &mut TapParams, spool_dir: &Path) -> Result<Vec<UploadedPart>, TapError> {
    let mut referenced: Vec<String> = Vec::new();
    for v in params.get_all("UPLOAD") {
        for entry in v.split(';') {
            if let Some((_, uri)) = entry.split_once(',')
                && let Some(name) = uri.trim().strip_prefix("param:")
            {
                let name = name.trim().to_string();
                if !name.is_empty() && !referenced.contains(&name) {
                    referenced.push(name);
                }
            }
        }
    }
    let mut parts = Vec::new();
    for name in referenced {
        let is_file = params
            .files
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&name));
        let is_reserved = matches!(
            name.to_ascii_uppercase().as_str(),
            "PHASE" | "ACTION" | "RUNID" | "EXECUTIONDURATION" | "DESTRUCTION" | "UPLOAD"
        );
        if !is_file
            && !is_reserved
            && let Some(p) = params.take_file(&name, spool_dir)?
        {
            parts.push(p);
        }
    }
    parts.append(&mut params.files);
    Ok(parts)
}

/// Moves a spooled part into the job directory as `upload-N` (never overwriting a file).
fn store_part(
    part: UploadedPart,
    dir: &Path,
    existing: &[JobUpload],
) -> std::io::Result<JobUpload> {
    let mut n = existing.len();
    let mut tmp = part.file;
    let path = loop {
        let path = dir.join(format!("upload-{n}"));
        match tmp.persist_noclobber(&path) {
            Ok(()) => break path,
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                tmp = e.path;
                n += 1;
            }
            Err(e) => {
                // Another file system: copy into a new file; the spooled one is removed
                // when `e.path` drops.
                let mut src = std::fs::File::open(&e.path)?;
                loop {
                    let path = dir.join(format!("upload-{n}"));
                    match std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                    {
                        Ok(mut f) => {
                            std::io::copy(&mut src, &mut f)?;
                            f.sync_all()?;
                            return Ok(JobUpload {
                                name: part.name,
                                path,
                                file_name: part.file_name,
                                content_type: part.content_type,
                                size: part.size,
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    };
    Ok(JobUpload {
        name: part.name,
        path,
        file_name: part.file_name,
        content_type: part.content_type,
        size: part.size,
    })
}

fn replace_upload(uploads: &mut Vec<JobUpload>, u: JobUpload) {
    uploads.retain(|o| o.name != u.name);
    uploads.push(u);
}

/// Removes directories in `jobs_dir` named like a job id whose job no longer exists (left
/// by a crash between creating the directory and recording the job).
async fn remove_orphan_dirs(inner: &Arc<Inner>) {
    let Ok(rd) = std::fs::read_dir(&inner.config.jobs_dir) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_job_id(name) || !entry.path().is_dir() {
            continue;
        }
        let s = inner.store.clone();
        let id = name.to_string();
        match blocking(move || s.get(&id)).await {
            Ok(None) => {
                tracing::info!("UWS: removing leftover directory of unknown job {name}");
                let _ = std::fs::remove_dir_all(entry.path());
            }
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!("UWS: checking leftover directory {name}: {e}"),
        }
    }
}

fn is_job_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new random job id: 16 lower-case hex digits from the OS's random source (with a
/// keyed hash of time, process and counter as a fallback).
fn new_job_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 8];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !from_os {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        b = h.finish().to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Now, to the millisecond (what the store keeps).
fn now() -> DateTime<Utc> {
    truncate_ms(Utc::now())
}

fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t.timestamp_millis())
        .single()
        .unwrap_or(t)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365 * 100))
}

/// `2026-11-21T16:30:00.123Z`.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses ISO 8601 times: with an offset or `Z`, or without one (then UTC); seconds and
/// fractions optional; a bare date means its midnight UTC.
pub fn parse_iso8601(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .unwrap_or(s);
    let s = s.replacen(' ', "T", 1);
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests;
