//! The job database: one SQLite file in WAL mode, one connection behind a mutex (every call
//! is a few short statements). Times are kept as milliseconds since the Unix epoch (UTC);
//! parameters, uploads and results as JSON text.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use serde_json::{Value, json};

use super::{Job, JobFailure, JobResult, JobUpload, Phase};

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS uws_job (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    run_id             TEXT,
    owner              TEXT,
    phase              TEXT NOT NULL,
    creation_ms        INTEGER NOT NULL,
    start_ms           INTEGER,
    end_ms             INTEGER,
    execution_duration INTEGER NOT NULL,
    destruction_ms     INTEGER NOT NULL,
    quote_ms           INTEGER,
    parameters         TEXT NOT NULL,
    uploads            TEXT NOT NULL,
    results            TEXT NOT NULL,
    error_message      TEXT,
    error_fatal        INTEGER
);
CREATE INDEX IF NOT EXISTS uws_job_creation ON uws_job(creation_ms);
CREATE INDEX IF NOT EXISTS uws_job_destruction ON uws_job(destruction_ms);
CREATE INDEX IF NOT EXISTS uws_job_phase ON uws_job(phase);
";

const COLUMNS: &str = "id, run_id, owner, phase, creation_ms, start_ms, end_ms, execution_duration, \
     destruction_ms, quote_ms, parameters, uploads, results, error_message, error_fatal";

/// The message of jobs that were executing when the server stopped.
pub(super) const INTERRUPTED: &str =
    "the server stopped while this job was executing; submit it again";

/// A failure of the job database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be read back.
    #[error("corrupt job record: {0}")]
    Corrupt(String),
    /// The database was written by a newer version.
    #[error("the job database has schema version {0}; this server knows version {SCHEMA_VERSION}")]
    Version(i64),
    /// The database's directory could not be created.
    #[error("{0}")]
    Io(String),
    /// A background task failed.
    #[error("background task failed: {0}")]
    Task(String),
}

/// A job in the job list (UWS `ShortJobDescription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// The job id.
    pub id: String,
    /// Its RUNID.
    pub run_id: Option<String>,
    /// Its owner.
    pub owner: Option<String>,
    /// Its phase.
    pub phase: Phase,
    /// When it was created.
    pub creation_time: DateTime<Utc>,
}

/// Job list filters (UWS 1.1 §2.2.1.1).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in one of these phases; empty: every phase except ARCHIVED.
    pub phases: Vec<Phase>,
    /// Only jobs created after this time.
    pub after: Option<DateTime<Utc>>,
    /// Only the N most recently created jobs, newest first.
    pub last: Option<u64>,
}

/// What [`JobStore::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs that were QUEUED, in queue order: to be queued again.
    pub requeued: Vec<String>,
    /// Jobs that were EXECUTING and are now ERROR.
    pub failed: Vec<String>,
}

/// The job database.
#[derive(Debug)]
pub struct JobStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl JobStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<JobStore, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                "job database {}: journal mode {mode}, not WAL",
                path.display()
            );
        }
        // FULL: a phase change reported to a client survives a power cut too.
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Version(version));
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION};"))?;
        Ok(JobStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new job (fails if the id exists).
    pub fn insert(&self, job: &Job) -> Result<(), StoreError> {
        let conn = self.lock();
        let r = Row::from_job(job)?;
        conn.execute(
            &format!("INSERT INTO uws_job ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
            params![
                r.id,
                r.run_id,
                r.owner,
                r.phase,
                r.creation_ms,
                r.start_ms,
                r.end_ms,
                r.execution_duration,
                r.destruction_ms,
                r.quote_ms,
                r.parameters,
                r.uploads,
                r.results,
                r.error_message,
                r.error_fatal
            ],
        )?;
        Ok(())
    }

    /// Reads a job.
    pub fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let conn = self.lock();
        load(&conn, id)
    }

    /// Read-modify-write of one job in one transaction: `f` sees the stored job and may
    /// change it; if it returns `Ok` the job is written back. `Ok(None)`: no such job.
    pub fn update<T, E>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Job) -> Result<T, E>,
    ) -> Result<Option<T>, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let Some(mut job) = load(&tx, id)? else {
            return Ok(None);
        };
        let out = f(&mut job)?;
        let r = Row::from_job(&job)?;
        tx.execute(
            "UPDATE uws_job SET run_id = ?2, owner = ?3, phase = ?4, creation_ms = ?5, start_ms = ?6, \
             end_ms = ?7, execution_duration = ?8, destruction_ms = ?9, quote_ms = ?10, parameters = ?11, \
             uploads = ?12, results = ?13, error_message = ?14, error_fatal = ?15 WHERE id = ?1",
            params![
                id,
                r.run_id,
                r.owner,
                r.phase,
                r.creation_ms,
                r.start_ms,
                r.end_ms,
                r.execution_duration,
                r.destruction_ms,
                r.quote_ms,
                r.parameters,
                r.uploads,
                r.results,
                r.error_message,
                r.error_fatal
            ],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(Some(out))
    }

    /// Removes a job's record; `false` if there was none.
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        Ok(conn.execute("DELETE FROM uws_job WHERE id = ?1", [id])? > 0)
    }

    /// The job list, filtered. Without `last`, oldest first; with it, newest first.
    pub fn list(&self, filter: &JobFilter) -> Result<Vec<JobRef>, StoreError> {
        let mut sql =
            String::from("SELECT id, run_id, owner, phase, creation_ms FROM uws_job WHERE ");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if filter.phases.is_empty() {
            sql.push_str("phase <> 'ARCHIVED'");
        } else {
            let marks = vec!["?"; filter.phases.len()].join(", ");
            sql.push_str(&format!("phase IN ({marks})"));
            for p in &filter.phases {
                args.push(p.as_str().to_string().into());
            }
        }
        if let Some(a) = filter.after {
            sql.push_str(" AND creation_ms > ?");
            args.push(a.timestamp_millis().into());
        }
        match filter.last {
            Some(n) => {
                sql.push_str(" ORDER BY creation_ms DESC, seq DESC LIMIT ?");
                args.push(i64::try_from(n).unwrap_or(i64::MAX).into());
            }
            None => sql.push_str(" ORDER BY creation_ms, seq"),
        }
        let conn = self.lock();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, run_id, owner, phase, creation_ms) = row?;
            out.push(JobRef {
                phase: parse_phase(&phase)?,
                creation_time: from_ms(creation_ms)?,
                id,
                run_id,
                owner,
            });
        }
        Ok(out)
    }

    /// Ids of the jobs whose destruction time is at or before `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare("SELECT id FROM uws_job WHERE destruction_ms <= ?1 ORDER BY destruction_ms")?;
        let ids = st
            .query_map([now.timestamp_millis()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Every job id.
    pub fn ids(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.lock();
        let mut st = conn.prepare("SELECT id FROM uws_job")?;
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(ids)
    }

    /// Start-up recovery: jobs found EXECUTING become ERROR (a transient error saying the
    /// server stopped; end time now); QUEUED jobs are returned, oldest first, to be queued
    /// again. Nothing else changes.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = Utc::now().timestamp_millis();
        let failed = {
            let mut st = tx.prepare(
                "SELECT id FROM uws_job WHERE phase = 'EXECUTING' ORDER BY creation_ms, seq",
            )?;
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        tx.execute(
            "UPDATE uws_job SET phase = 'ERROR', end_ms = ?1, results = '[]', error_message = ?2, error_fatal = 0 \
             WHERE phase = 'EXECUTING'",
            params![now, INTERRUPTED],
        )?;
        let requeued = {
            let mut st = tx.prepare(
                "SELECT id FROM uws_job WHERE phase = 'QUEUED' ORDER BY creation_ms, seq",
            )?;
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        tx.commit()?;
        Ok(Recovered { requeued, failed })
    }
}

/// A job as column values.
struct Row {
    id: String,
    run_id: Option<String>,
    owner: Option<String>,
    phase: &'static str,
    creation_ms: i64,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    execution_duration: i64,
    destruction_ms: i64,
    quote_ms: Option<i64>,
    parameters: String,
    uploads: String,
    results: String,
    error_message: Option<String>,
    error_fatal: Option<bool>,
}

impl Row {
    fn from_job(job: &Job) -> Result<Row, StoreError> {
        let parameters = Value::Array(job.parameters.iter().map(|(k, v)| json!([k, v])).collect());
        let mut uploads = Vec::with_capacity(job.uploads.len());
        for u in &job.uploads {
            let path = u.path.to_str().ok_or_else(|| {
                StoreError::Corrupt(format!("upload path {} is not UTF-8", u.path.display()))
            })?;
            uploads.push(json!({
                "name": u.name,
                "path": path,
                "file_name": u.file_name,
                "content_type": u.content_type,
                "size": u.size,
            }));
        }
        let results: Vec<Value> = job
            .results
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "key": r.key.as_ref(),
                    "mime": r.mime,
                    "size": r.size,
                    "rows": r.rows,
                    "overflow": r.overflow,
                })
            })
            .collect();
        Ok(Row {
            id: job.id.clone(),
            run_id: job.run_id.clone(),
            owner: job.owner.clone(),
            phase: job.phase.as_str(),
            creation_ms: job.creation_time.timestamp_millis(),
            start_ms: job.start_time.map(|t| t.timestamp_millis()),
            end_ms: job.end_time.map(|t| t.timestamp_millis()),
            execution_duration: i64::try_from(job.execution_duration).unwrap_or(i64::MAX),
            destruction_ms: job.destruction.timestamp_millis(),
            quote_ms: job.quote.map(|t| t.timestamp_millis()),
            parameters: parameters.to_string(),
            uploads: Value::Array(uploads).to_string(),
            results: Value::Array(results).to_string(),
            error_message: job.error.as_ref().map(|e| e.message.clone()),
            error_fatal: job.error.as_ref().map(|e| e.fatal),
        })
    }
}

fn load(conn: &Connection, id: &str) -> Result<Option<Job>, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM uws_job WHERE id = ?1"),
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, String>(12)?,
                    r.get::<_, Option<String>>(13)?,
                    r.get::<_, Option<bool>>(14)?,
                ))
            },
        )
        .optional()?;
    let Some((
        id,
        run_id,
        owner,
        phase,
        creation_ms,
        start_ms,
        end_ms,
        execution_duration,
        destruction_ms,
        quote_ms,
        parameters,
        uploads,
        results,
        error_message,
        error_fatal,
    )) = row
    else {
        return Ok(None);
    };
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("job {id}: {what}: {e}"))
    };
    let params_json: Value =
        serde_json::from_str(&parameters).map_err(|e| corrupt("parameters", &e))?;
    let mut params = Vec::new();
    for p in params_json.as_array().into_iter().flatten() {
        match (
            p.get(0).and_then(Value::as_str),
            p.get(1).and_then(Value::as_str),
        ) {
            (Some(k), Some(v)) => params.push((k.to_string(), v.to_string())),
            _ => return Err(corrupt("parameters", &"not [name, value] pairs")),
        }
    }
    let uploads_json: Value = serde_json::from_str(&uploads).map_err(|e| corrupt("uploads", &e))?;
    let mut ups = Vec::new();
    for u in uploads_json.as_array().into_iter().flatten() {
        let s = |k: &str| u.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(name), Some(path)) = (s("name"), s("path")) else {
            return Err(corrupt("uploads", &"an entry lacks its name or path"));
        };
        ups.push(JobUpload {
            name,
            path: PathBuf::from(path),
            file_name: s("file_name"),
            content_type: s("content_type"),
            size: u.get("size").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    let results_json: Value = serde_json::from_str(&results).map_err(|e| corrupt("results", &e))?;
    let mut res = Vec::new();
    for r in results_json.as_array().into_iter().flatten() {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(rid), Some(key), Some(mime)) = (s("id"), s("key"), s("mime")) else {
            return Err(corrupt("results", &"an entry lacks its id, key or type"));
        };
        res.push(JobResult {
            id: rid,
            key: object_store::path::Path::from(key),
            mime,
            size: r.get("size").and_then(Value::as_u64),
            rows: r.get("rows").and_then(Value::as_u64),
            overflow: r.get("overflow").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Ok(Some(Job {
        run_id,
        owner,
        phase: parse_phase(&phase)?,
        quote: quote_ms.map(from_ms).transpose()?,
        creation_time: from_ms(creation_ms)?,
        start_time: start_ms.map(from_ms).transpose()?,
        end_time: end_ms.map(from_ms).transpose()?,
        execution_duration: u64::try_from(execution_duration).unwrap_or(0),
        destruction: from_ms(destruction_ms)?,
        parameters: params,
        uploads: ups,
        results: res,
        error: error_message.map(|message| JobFailure {
            message,
            fatal: error_fatal.unwrap_or(true),
        }),
        id,
    }))
}

fn parse_phase(s: &str) -> Result<Phase, StoreError> {
    Phase::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown phase `{s}`")))
}

fn from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms out of range")))
}
