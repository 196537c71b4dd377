//! The query façade: ADQL text plus limits in, a stream of Arrow record batches out.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};

use std::collections::HashMap;

use arrow::datatypes::{Field, Schema};
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use tessera_storage::columns;

use crate::adql::ParseLimits;
use crate::session::{QueryPool, Session, map_error, query_cap};
use crate::translate::{ExposedTable, translate};
use crate::{Archive, Error, ErrorKind, Location, Result};
use datafusion::prelude::SessionContext;

/// Limits a caller puts on one query. The engine enforces them itself.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Rows returned at most; more rows set [`QueryResult::overflowed`] (TAP MAXREC).
    pub max_rows: Option<u64>,
    /// Wall-clock limit from the start of planning to the last batch.
    pub timeout: Option<Duration>,
    /// Text length and nesting depth.
    pub parse: ParseLimits,
}

/// How the engine runs, for all its queries.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Bytes of memory all running queries may hold together (sorts, aggregates and joins
    /// spill to disk beyond their share); `None` for no limit.
    pub memory_limit: Option<usize>,
    /// Where spill files go (default: the system temp directory).
    pub spill_dir: Option<std::path::PathBuf>,
    /// Send every query through DataFusion, even plain cone searches that the small-cone
    /// fast path would answer (for comparisons and tests).
    pub general_path_only: bool,
    /// Small tables held in memory and exposed beside the catalogs (the server's
    /// `ivoa.obscore`), listed in TAP_SCHEMA like them.
    pub extra_tables: Vec<ExtraTable>,
}

/// An in-memory table exposed as `schema.table` (see [`EngineOptions::extra_tables`]).
#[derive(Debug, Clone)]
pub struct ExtraTable {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// TAP_SCHEMA description.
    pub description: String,
    /// The rows; field metadata (unit, ucd, utype, description, xtype, principal) describes
    /// the columns.
    pub batch: RecordBatch,
}

/// A function the service offers beyond ADQL's core, for TAP capabilities.
#[derive(Debug, Clone)]
pub struct FunctionDecl {
    /// Name as used in queries.
    pub name: &'static str,
    /// Signature in TAPRegExt form, e.g. `ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT`.
    pub form: &'static str,
    /// What it does.
    pub description: &'static str,
}

/// The running query: its schema (fields carry unit, ucd, description and xtype metadata)
/// and its batches. Dropping it cancels the work.
pub struct QueryResult {
    pub(crate) schema: SchemaRef,
    pub(crate) stream: Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>,
    pub(crate) overflow: Arc<AtomicBool>,
}

impl std::fmt::Debug for QueryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryResult")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl QueryResult {
    /// The result columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next batch, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        self.stream.next().await
    }

    /// Whether rows were cut at `max_rows` (only meaningful once the stream has ended).
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::Relaxed)
    }

    /// Collects every batch; returns them with the overflow flag.
    pub async fn collect(mut self) -> Result<(Vec<RecordBatch>, bool)> {
        let mut out = Vec::new();
        while let Some(b) = self.next().await {
            out.push(b?);
        }
        Ok((out, self.overflowed()))
    }
}

/// A table uploaded with a query, readable as `TAP_UPLOAD.<name>` by that query only.
#[derive(Debug, Clone)]
pub struct UploadTable {
    /// The table name (without the `TAP_UPLOAD.` schema).
    pub name: String,
    /// Its columns; field metadata (unit, ucd, description) flows to the result.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

/// The ADQL engine over one archive.
#[derive(Debug, Clone)]
pub struct Engine {
    archive: Arc<Archive>,
    session: Arc<Session>,
}

impl Engine {
    /// Opens the data root with default options (no memory limit).
    pub async fn open(root: Location) -> Result<Engine> {
        Engine::open_with(root, &EngineOptions::default()).await
    }

    /// Opens the data root.
    pub async fn open_with(root: Location, opts: &EngineOptions) -> Result<Engine> {
        let archive = Archive::open(root).await?;
        Engine::from_archive(archive, opts).await
    }

    /// The engine over an already opened archive.
    pub async fn from_archive(archive: Archive, opts: &EngineOptions) -> Result<Engine> {
        let session = Session::new(archive.catalogs(), opts).await?;
        Ok(Engine {
            archive: Arc::new(archive),
            session: Arc::new(session),
        })
    }

    /// The catalogs.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Parses only: `Ok` for syntactically valid ADQL, the syntax error otherwise.
    pub fn check(adql: &str, limits: &ParseLimits) -> Result<()> {
        crate::adql::parse(adql, limits)?;
        Ok(())
    }

    /// Parses, checks and translates a query to the SQL DataFusion plans (for `EXPLAIN`-like
    /// diagnostics and benchmarks).
    pub fn translate(&self, adql: &str, limits: &ParseLimits) -> Result<String> {
        let q = crate::adql::parse(adql, limits)?;
        Ok(translate(&q, &self.session.tables)?.sql)
    }

    /// Runs a query under DataFusion's EXPLAIN ANALYZE and returns the physical plan with its
    /// metrics: the leaves each scan read (`file_groups`), row groups pruned by statistics
    /// and by the `_healpix_29` ranges, pages and rows pruned by the page index, rows output.
    pub async fn explain_analyze(&self, adql: &str, limits: &Limits) -> Result<String> {
        let q = crate::adql::parse(adql, &limits.parse)?;
        let mut t = translate(&q, &self.session.tables)?;
        t.sql = format!("EXPLAIN ANALYZE {}", t.sql);
        let plan = self.session.plan(&t).await?;
        let df = self
            .session
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| map_error(e, &t))?;
        let batches = df.collect().await.map_err(|e| map_error(e, &t))?;
        let mut out = String::new();
        for b in &batches {
            let col = b.num_columns().saturating_sub(1);
            let plans = arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Utf8)
                .map_err(|e| Error::query(ErrorKind::Internal, e.to_string()))?;
            let plans = plans
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or_else(|| Error::query(ErrorKind::Internal, "EXPLAIN gave no text"))?;
            for p in plans.iter().flatten() {
                out.push_str(p);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Parses, translates and plans a query without running it.
    pub async fn plan(&self, adql: &str, limits: &Limits) -> Result<LogicalPlan> {
        Ok(self.prepare(adql, limits).await?.0)
    }

    async fn prepare(
        &self,
        adql: &str,
        limits: &Limits,
    ) -> Result<(LogicalPlan, crate::translate::Translation)> {
        self.prepare_in(adql, limits, &self.session.ctx, &self.session.tables)
            .await
    }

    async fn prepare_in(
        &self,
        adql: &str,
        limits: &Limits,
        ctx: &SessionContext,
        tables: &[ExposedTable],
    ) -> Result<(LogicalPlan, crate::translate::Translation)> {
        let q = crate::adql::parse(adql, &limits.parse)?;
        let t = translate(&q, tables)?;
        let mut plan = self.session.plan_in(ctx, &t).await?;
        if let Some(max) = limits.max_rows {
            plan = LogicalPlanBuilder::from(plan)
                .limit(
                    0,
                    Some(max.saturating_add(1).min(usize::MAX as u64) as usize),
                )
                .and_then(|b| b.build())
                .map_err(|e| map_error(e, &t))?;
        }
        Ok((plan, t))
    }

    /// Runs a query.
    pub async fn query(&self, adql: &str, limits: &Limits) -> Result<QueryResult> {
        self.query_with_uploads(adql, limits, Vec::new()).await
    }

    /// Runs a query that may read tables uploaded with it (`TAP_UPLOAD.<name>`, TAP 1.1
    /// §3.3.1), including in joins and crossmatches with the catalogs.
    pub async fn query_with_uploads(
        &self,
        adql: &str,
        limits: &Limits,
        uploads: Vec<UploadTable>,
    ) -> Result<QueryResult> {
        let deadline = limits.timeout.map(|t| tokio::time::Instant::now() + t);
        let view = if uploads.is_empty() {
            None
        } else {
            Some(self.session.with_uploads(uploads)?)
        };
        if self.session.fast_cone && view.is_none() {
            let fast = self.fast_cone(adql, limits);
            let fast = match deadline {
                Some(d) => tokio::time::timeout_at(d, fast)
                    .await
                    .map_err(|_| timeout_error(limits))?,
                None => fast.await,
            }?;
            if let Some(r) = fast {
                return Ok(r);
            }
        }
        let work = self.start(adql, limits, view.as_ref());
        match deadline {
            Some(d) => tokio::time::timeout_at(d, work)
                .await
                .map_err(|_| timeout_error(limits))?,
            None => work.await,
        }
        .map(|mut r| {
            if let Some(d) = deadline {
                r.stream = with_deadline(r.stream, d, limits.clone());
            }
            r
        })
    }

    /// A plain cone search answered by the small-cone fast path (`cone.rs`); `None` for
    /// anything else.
    async fn fast_cone(&self, adql: &str, limits: &Limits) -> Result<Option<QueryResult>> {
        let q = crate::adql::parse(adql, &limits.parse)?;
        match self.session.cone.recognise(&q) {
            Some(c) => self.session.cone.run(&c, limits).await,
            None => Ok(None),
        }
    }

    /// How many queries the small-cone fast path has answered.
    pub fn fast_cone_queries(&self) -> u64 {
        self.session
            .cone
            .answered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn start(
        &self,
        adql: &str,
        limits: &Limits,
        view: Option<&(SessionContext, Vec<ExposedTable>)>,
    ) -> Result<QueryResult> {
        let (ctx, tables) = match view {
            Some((c, t)) => (c, t.as_slice()),
            None => (&self.session.ctx, self.session.tables.as_slice()),
        };
        let (plan, t) = self.prepare_in(adql, limits, ctx, tables).await?;
        let logical = plan.schema().as_arrow().clone();
        let df = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| map_error(e, &t))?;
        // Physical planning and execution run on the compute runtime; this task only
        // receives finished batches, so the caller's runtime and its timers stay free.
        let memory_limit = match self.session.ctx.runtime_env().memory_pool.memory_limit() {
            MemoryLimit::Finite(n) => Some(n),
            _ => None,
        };
        // Each query draws on the process pool through its own capped view of it.
        let pool = memory_limit.map(|limit| {
            Arc::new(QueryPool::new(
                self.session.ctx.runtime_env().memory_pool.clone(),
                query_cap(limit),
            )) as Arc<dyn MemoryPool>
        });
        let stream = crate::runtime::execute(df, pool)
            .await
            .map_err(|e| exec_error(e, &t, memory_limit))?;
        let physical = stream.schema();
        let fields: Vec<Field> = physical
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut md: HashMap<String, String> = logical
                    .fields()
                    .get(i)
                    .filter(|l| l.name() == f.name())
                    .map(|l| l.metadata().clone())
                    .unwrap_or_default();
                md.extend(f.metadata().iter().map(|(k, v)| (k.clone(), v.clone())));
                if let Some(o) = t.outputs.get(f.name()) {
                    if let Some(x) = o.xtype {
                        md.insert(columns::XTYPE.into(), x.into());
                    }
                    if let Some(u) = &o.unit {
                        md.insert(columns::UNIT.into(), u.clone());
                    }
                }
                Field::new(f.name(), f.data_type().clone(), f.is_nullable()).with_metadata(md)
            })
            .collect();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let overflow = Arc::new(AtomicBool::new(false));
        let state = RowState {
            inner: stream,
            schema: schema.clone(),
            left: limits.max_rows,
            overflow: overflow.clone(),
            translation: Arc::new(t),
            memory_limit,
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            let item = st.inner.next().await?;
            let out = match item {
                Err(e) => {
                    st.done = true;
                    Err(exec_error(e, &st.translation, st.memory_limit))
                }
                Ok(b) => {
                    let mut b = b;
                    if let Some(left) = st.left {
                        if (b.num_rows() as u64) > left {
                            b = b.slice(0, left as usize);
                            st.overflow.store(true, Ordering::Relaxed);
                            st.done = true;
                        }
                        st.left = Some(left - b.num_rows() as u64);
                    }
                    RecordBatch::try_new(st.schema.clone(), b.columns().to_vec())
                        .map_err(|e| Error::query(ErrorKind::Internal, e.to_string()))
                }
            };
            Some((out, st))
        });
        Ok(QueryResult {
            schema,
            stream: Box::pin(stream),
            overflow,
        })
    }

    /// The extension functions, for TAP capabilities.
    pub fn functions() -> &'static [FunctionDecl] {
        &[
            FunctionDecl {
                name: "ivo_healpix_index",
                form: "ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT",
                description: "NESTED HEALPix index at the given order (0 to 29) of an ICRS position in degrees",
            },
            FunctionDecl {
                name: "ivo_healpix_center",
                form: "ivo_healpix_center(order INTEGER, ipix BIGINT) -> POINT",
                description: "centre of a NESTED HEALPix cell as an ICRS point",
            },
        ]
    }
}

struct RowState {
    inner: datafusion::physical_plan::SendableRecordBatchStream,
    schema: SchemaRef,
    left: Option<u64>,
    overflow: Arc<AtomicBool>,
    translation: Arc<crate::translate::Translation>,
    /// The memory pool's limit, for the error of a query that exceeds it.
    memory_limit: Option<usize>,
    done: bool,
}

/// An error of a running query, in ADQL terms; running out of the memory pool names the
/// pool's limit.
fn exec_error(
    e: DataFusionError,
    t: &crate::translate::Translation,
    memory_limit: Option<usize>,
) -> Error {
    match (e.find_root(), memory_limit) {
        (DataFusionError::ResourcesExhausted(detail), Some(limit)) => Error::query(
            ErrorKind::Limit,
            format!(
                "the query needs more memory than it may hold of the engine's memory limit \
                 ({}, shared by all running queries, at most half of it for one query; \
                 sorts and aggregates spill to disk beyond their share, but this query \
                 could not): {detail}",
                bytes(limit)
            ),
        ),
        _ => map_error(e, t),
    }
}

/// A byte count for people: `32 MiB`, `1.5 GiB`.
fn bytes(n: usize) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift {
            let v = n as f64 / (1u64 << shift) as f64;
            return if v.fract() == 0.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

fn timeout_error(limits: &Limits) -> Error {
    Error::query(
        ErrorKind::Timeout,
        format!(
            "the query ran longer than the {:.1} s allowed",
            limits.timeout.unwrap_or_default().as_secs_f64()
        ),
    )
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// Ends the stream with a timeout error at the deadline; dropping the inner stream cancels
/// DataFusion's work.
fn with_deadline(
    inner: BatchStream,
    deadline: tokio::time::Instant,
    limits: Limits,
) -> BatchStream {
    Box::pin(futures::stream::unfold(Some(inner), move |st| {
        let limits = limits.clone();
        async move {
            let mut s = st?;
            match tokio::time::timeout_at(deadline, s.next()).await {
                Ok(Some(item)) => Some((item, Some(s))),
                Ok(None) => None,
                Err(_) => {
                    drop(s);
                    Some((Err(timeout_error(&limits)), None))
                }
            }
        }
    }))
}
