//! The DataFusion session behind the engine: exposed tables, TAP_SCHEMA, UDFs, and the
//! mapping of DataFusion's errors back to ADQL terms.
//!
//! The session has no information_schema, no default tables, and the SQL it plans comes only
//! from [`crate::translate`], so a query can reach nothing but the registered tables.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::common::config::ConfigNonZeroUsize;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::cone::ConePath;
use crate::error::{Error, ErrorKind, Result};
use crate::hats::HatsTable;
use crate::translate::{ExposedTable, Translation, did_you_mean, nearest};
use crate::{CatalogInfo, EngineOptions, tap_schema};

/// Nesting the generated SQL may reach: the ADQL tree's height cap (1000) times the
/// parentheses the translator adds per level, with margin.
const SQL_RECURSION_LIMIT: usize = 10_000;

/// The session and what it exposes.
pub(crate) struct Session {
    pub ctx: SessionContext,
    pub tables: Vec<ExposedTable>,
    /// The small-cone fast path over the catalogs.
    pub cone: ConePath,
    /// Whether plain cone queries take the fast path.
    pub fast_cone: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tables", &self.tables.len())
            .finish()
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::query(ErrorKind::Internal, e.to_string())
}

/// Memory per sort or aggregate partition below which the engine runs fewer partitions
/// (see [`limit_memory`]).
const MIN_PARTITION_SHARE: usize = 16 << 20;

/// Sizes DataFusion's buffers to a process-wide pool of `limit` bytes.
///
/// The pool is a [`FairSpillPool`]: each spillable consumer (one per partition of every
/// running sort, grouped aggregate or repartition) may hold an equal share of what the
/// unspillable reservations leave, and spills to disk beyond it; unspillable reservations
/// (a hash join's build side, merge buffers) are granted first come, first served up to the
/// limit. On top of that each query may hold at most half the pool ([`query_cap`], enforced
/// by its [`QueryPool`], itself fair among the query's partitions): without the cap a hash
/// join growing without bound took the whole pool and a sort running beside it failed (1
/// time in 5 under 32 MiB); with it the join fails alone at half the pool and the sort
/// spills within the other half. A query that cannot work within its part fails alone with
/// "Resources exhausted" (ErrorKind::Limit) while the others go on.
///
/// What a sort needs besides its spillable buffer is not spillable, and scales with the
/// batch: merging its sorted runs reserves twice the largest batch of each run it reads,
/// for every run read at once (at 8192 rows of hip2's 50 columns, 5 MB a run), and the
/// final merge across partitions holds a batch per partition. Under DataFusion's defaults a
/// 32 MiB pool failed a 45 MB sort of hip2 in that merge. Hence, for a limited pool:
///
/// * at most one partition per [`MIN_PARTITION_SHARE`] of the limit (a 32 MiB pool runs two);
/// * batches of `limit / (partitions × 16 KiB)` rows, rounded down to a power of two within
///   1024..=8192 (1024 at 32 MiB, DataFusion's 8192 from 256 MiB on two partitions, 1 GiB on
///   eight), so one batch of even a 2 KB-wide row stays a small part of a share;
/// * merges of at most 4 spilled runs at once (more runs take more merge passes, not more
///   memory), so that one partition's merge cannot take the memory another one needs;
/// * each sort's up-front merge reservation (10 MB by default) cut to a sixteenth of a
///   partition's part of the pool.
fn limit_memory(
    config: &mut SessionConfig,
    rt: RuntimeEnvBuilder,
    limit: usize,
    threads: usize,
) -> RuntimeEnvBuilder {
    let partitions = (limit / MIN_PARTITION_SHARE).clamp(1, threads.max(1));
    let rows = limit / (partitions * (16 << 10));
    let batch = if rows < 1024 {
        1024
    } else {
        (1usize << rows.ilog2()).min(8192)
    };
    let exec = &mut config.options_mut().execution;
    exec.target_partitions = partitions;
    exec.batch_size = ConfigNonZeroUsize::try_new(batch).unwrap_or(exec.batch_size);
    exec.sort_spill_reservation_bytes = exec
        .sort_spill_reservation_bytes
        .min(limit / partitions / 16);
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(limit),
        NonZeroUsize::MIN.saturating_add(4), // the 5 largest consumers
    );
    rt.with_memory_pool(Arc::new(pool))
        .with_max_spill_merge_fan_in(4)
}

/// What one query may hold of the pool at most: half, so that a query whose unspillable
/// buffers (a hash join's build side) grow without bound fails at half the pool and leaves
/// the other half to the queries beside it, instead of starving them.
pub(crate) fn query_cap(limit: usize) -> usize {
    limit / 2
}

/// One query's view of the process pool: every reservation goes both to the shared pool
/// (whose fair shares and limit apply as for any query) and to a [`FairSpillPool`] of the
/// query's own of size `cap`, which shares the cap fairly among the query's spilling
/// partitions. A spilling operator refused by either spills.
#[derive(Debug)]
pub(crate) struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    local: FairSpillPool,
}

impl QueryPool {
    pub(crate) fn new(shared: Arc<dyn MemoryPool>, cap: usize) -> QueryPool {
        QueryPool {
            shared,
            local: FairSpillPool::new(cap),
        }
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query({}, in {})", self.local, self.shared)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.local.register(consumer);
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.local.unregister(consumer);
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.local.grow(reservation, additional);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.local.shrink(reservation, shrink);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.local.try_grow(reservation, additional)?;
        self.shared
            .try_grow(reservation, additional)
            .inspect_err(|_| self.local.shrink(reservation, additional))
    }

    fn reserved(&self) -> usize {
        self.local.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.shared.memory_limit()
    }
}

impl Session {
    pub(crate) async fn new(catalogs: &[CatalogInfo], opts: &EngineOptions) -> Result<Session> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(threads)
            .with_default_catalog_and_schema("datafusion", "public")
            .with_create_default_catalog_and_schema(true);
        config.options_mut().sql_parser.enable_ident_normalization = false;
        config.options_mut().execution.parquet.pushdown_filters = false;
        // One memory pool for every query of the process: sorts, aggregates and joins that
        // can spill share it fairly and spill to disk; what cannot fit fails with
        // "Resources exhausted" (mapped to ErrorKind::Limit, naming the limit) while other
        // queries go on.
        let mut rt = RuntimeEnvBuilder::new();
        if let Some(limit) = opts.memory_limit {
            rt = limit_memory(&mut config, rt, limit, threads);
        }
        if let Some(dir) = &opts.spill_dir {
            rt = rt.with_temp_file_path(dir.clone());
        }
        let ctx = SessionContext::new_with_config_rt(config, rt.build_arc().map_err(internal)?);
        for udf in crate::geom::udfs()
            .into_iter()
            .chain(crate::functions::udfs())
        {
            ctx.register_udf(udf);
        }
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| internal("no default catalog"))?;
        let mut tables = Vec::new();
        let mut leaf_files = Vec::new();

        let add_schema = |name: &str| -> Result<()> {
            if catalog.schema(name).is_none() {
                catalog
                    .register_schema(name, Arc::new(MemorySchemaProvider::new()))
                    .map_err(internal)?;
            }
            Ok(())
        };

        add_schema(tap_schema::SCHEMA)?;
        for t in tap_schema::build(catalogs, &opts.extra_tables).map_err(internal)? {
            let schema = t.batch.schema();
            let mem = MemTable::try_new(schema.clone(), vec![vec![t.batch]]).map_err(internal)?;
            ctx.register_table(
                TableReference::partial(tap_schema::SCHEMA, t.name),
                Arc::new(mem),
            )
            .map_err(internal)?;
            tables.push(ExposedTable {
                schema: tap_schema::SCHEMA.into(),
                table: t.name.into(),
                columns: schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), None))
                    .collect(),
                rows: None,
                ra_dec: None,
            });
        }

        for (i, c) in catalogs.iter().enumerate() {
            add_schema(&c.schema)?;
            // Each catalog's store is registered under its own URL so that local, S3 and
            // memory catalogs look alike to DataFusion.
            let base = format!("tessera://c{i}");
            let url = url::Url::parse(&base).map_err(internal)?;
            ctx.register_object_store(&url, c.location.store.clone());
            let schema = Arc::new(arrow::datatypes::Schema::new(
                c.columns
                    .iter()
                    .map(|col| {
                        arrow::datatypes::Field::new(&col.name, col.arrow_type.clone(), true)
                            .with_metadata(col.meta.to_map())
                    })
                    .collect::<Vec<_>>(),
            ));
            let store_url = ObjectStoreUrl::parse(&base).map_err(internal)?;
            let table = HatsTable::open(c, store_url, schema.clone()).await?;
            leaf_files.push((schema, table.leaf_files()));
            ctx.register_table(
                TableReference::partial(c.schema.as_str(), c.table.as_str()),
                Arc::new(table),
            )
            .map_err(internal)?;
            tables.push(ExposedTable {
                schema: c.schema.clone(),
                table: c.table.clone(),
                columns: c
                    .columns
                    .iter()
                    .map(|col| (col.name.clone(), col.meta.unit.clone()))
                    .collect(),
                rows: Some(c.rows),
                // Only Float64 positions: `_healpix_29` was hashed from the values stored.
                ra_dec: c
                    .ra_dec
                    .0
                    .clone()
                    .zip(c.ra_dec.1.clone())
                    .filter(|(ra, dec)| {
                        [ra, dec].iter().all(|n| {
                            c.columns.iter().any(|col| {
                                &col.name == *n
                                    && col.arrow_type == arrow::datatypes::DataType::Float64
                            })
                        })
                    }),
            });
        }
        for x in &opts.extra_tables {
            add_schema(&x.schema)?;
            let schema = x.batch.schema();
            let mem =
                MemTable::try_new(schema.clone(), vec![vec![x.batch.clone()]]).map_err(internal)?;
            ctx.register_table(
                TableReference::partial(x.schema.as_str(), x.table.as_str()),
                Arc::new(mem),
            )
            .map_err(internal)?;
            tables.push(ExposedTable {
                schema: x.schema.clone(),
                table: x.table.clone(),
                columns: schema
                    .fields()
                    .iter()
                    .map(|f| {
                        (
                            f.name().clone(),
                            f.metadata().get(tessera_storage::columns::UNIT).cloned(),
                        )
                    })
                    .collect(),
                rows: Some(x.batch.num_rows() as u64),
                ra_dec: None,
            });
        }
        let cone = ConePath::new(catalogs, leaf_files);
        Ok(Session {
            ctx,
            tables,
            cone,
            fast_cone: !opts.general_path_only,
        })
    }

    /// A query's own view of the session: the exposed tables plus `uploads` as
    /// `TAP_UPLOAD.<name>`. The uploads live in a schema of this view only (an overlay on
    /// the shared catalog), so concurrent queries with uploads of the same name never see
    /// each other's, and nothing needs removing afterwards. Planning state, functions,
    /// object stores and the memory pool are the session's.
    pub(crate) fn with_uploads(
        &self,
        uploads: Vec<crate::UploadTable>,
    ) -> Result<(SessionContext, Vec<ExposedTable>)> {
        let base = self
            .ctx
            .catalog("datafusion")
            .ok_or_else(|| internal("no default catalog"))?;
        let schema = Arc::new(MemorySchemaProvider::new());
        let mut tables = self.tables.clone();
        for u in uploads {
            if tables
                .iter()
                .any(|t| t.schema == UPLOAD_SCHEMA && t.table.eq_ignore_ascii_case(&u.name))
            {
                return Err(Error::query(
                    ErrorKind::Semantic,
                    format!("two uploaded tables are named {}", u.name),
                ));
            }
            let rows: usize = u.batches.iter().map(|b| b.num_rows()).sum();
            let columns = u
                .schema
                .fields()
                .iter()
                .map(|f| {
                    (
                        f.name().clone(),
                        f.metadata().get(tessera_storage::columns::UNIT).cloned(),
                    )
                })
                .collect();
            let mem = MemTable::try_new(u.schema.clone(), vec![u.batches]).map_err(|e| {
                Error::query(
                    ErrorKind::Semantic,
                    format!("uploaded table {}: {e}", u.name),
                )
            })?;
            datafusion::catalog::SchemaProvider::register_table(
                schema.as_ref(),
                u.name.clone(),
                Arc::new(mem),
            )
            .map_err(internal)?;
            tables.push(ExposedTable {
                schema: UPLOAD_SCHEMA.into(),
                table: u.name,
                columns,
                rows: Some(rows as u64),
                ra_dec: None,
            });
        }
        let overlay = Arc::new(UploadOverlay {
            base,
            uploads: schema,
        });
        let list = Arc::new(datafusion::catalog::MemoryCatalogProviderList::new());
        datafusion::catalog::CatalogProviderList::register_catalog(
            list.as_ref(),
            "datafusion".into(),
            overlay,
        );
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_catalog_list(list)
            .build();
        Ok((SessionContext::new_with_state(state), tables))
    }

    /// Plans translated SQL.
    pub(crate) async fn plan(&self, t: &Translation) -> Result<LogicalPlan> {
        self.plan_in(&self.ctx, t).await
    }

    /// Plans translated SQL in a given view of the session (see [`Session::with_uploads`]).
    pub(crate) async fn plan_in(
        &self,
        ctx: &SessionContext,
        t: &Translation,
    ) -> Result<LogicalPlan> {
        let state = ctx.state();
        // Our own sqlparser call, for its recursion limit: the generated SQL nests as deep as
        // the ADQL did (≤ 1000 levels by the parser's cap, more with the parentheses the
        // translator adds), and DataFusion's default limit is 50. sqlparser grows its stack
        // on demand (`recursive-protection`), so depth costs no stack overflow.
        let stmt = Parser::new(&GenericDialect {})
            .with_recursion_limit(SQL_RECURSION_LIMIT)
            .try_with_sql(&t.sql)
            .and_then(|mut p| p.parse_statement())
            .map_err(|e| map_error(DataFusionError::SQL(Box::new(e), None), t))?;
        state
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await
            .map_err(|e| map_error(e, t))
    }
}

/// The schema of uploaded tables (TAP 1.1 §3.3.1).
pub(crate) const UPLOAD_SCHEMA: &str = "TAP_UPLOAD";

/// The default catalog as one query sees it: the shared schemas, plus its own
/// `TAP_UPLOAD`.
#[derive(Debug)]
struct UploadOverlay {
    base: Arc<dyn datafusion::catalog::CatalogProvider>,
    uploads: Arc<MemorySchemaProvider>,
}

impl datafusion::catalog::CatalogProvider for UploadOverlay {
    fn schema_names(&self) -> Vec<String> {
        let mut v = self.base.schema_names();
        v.push(UPLOAD_SCHEMA.into());
        v
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn datafusion::catalog::SchemaProvider>> {
        if name == UPLOAD_SCHEMA {
            Some(self.uploads.clone())
        } else {
            self.base.schema(name)
        }
    }
}

/// DataFusion's error, in ADQL terms: unknown columns get their position and nearest names;
/// geometry errors from the UDFs keep their message; type errors are the caller's.
pub(crate) fn map_error(e: DataFusionError, t: &Translation) -> Error {
    let root = e.find_root();
    let msg = root.clone_message_only();
    tracing::debug!(datafusion = %root, sql = %t.sql, "query failed");
    if matches!(root, DataFusionError::Internal(_)) {
        return Error::query(ErrorKind::Internal, msg);
    }
    if let Some(rest) = msg.split("No field named ").nth(1) {
        let end = [". ", "\n"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
            .unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('.').to_string();
        let bare = name
            .rsplit('.')
            .next()
            .unwrap_or(&name)
            .trim_matches('"')
            .to_string();
        let near = nearest(&bare, t.visible.iter().map(String::as_str));
        let text = format!("unknown column {bare}{}", did_you_mean(&near));
        return match t.idents.iter().find(|i| i.name.eq_ignore_ascii_case(&bare)) {
            Some(id) => Error::at(ErrorKind::UnknownColumn, id.span, text),
            None => Error::query(ErrorKind::UnknownColumn, text),
        };
    }
    if msg.contains("Ambiguous reference") || msg.contains("ambiguous") {
        return Error::query(ErrorKind::UnknownColumn, msg);
    }
    if let Some(g) = msg.find("geometry: ") {
        return Error::query(
            ErrorKind::Geometry,
            msg[g + "geometry: ".len()..].to_string(),
        );
    }
    if msg.contains("Resources exhausted") {
        return Error::query(
            ErrorKind::Limit,
            format!("the query needs more memory than the engine's memory limit allows: {msg}"),
        );
    }
    if msg.contains("Object Store error")
        || msg.contains("IO error")
        || msg.contains("Parquet error")
    {
        return Error::query(ErrorKind::Storage, msg);
    }
    if msg.contains("This feature is not implemented") || msg.contains("Unsupported") {
        return Error::query(ErrorKind::Unsupported, msg);
    }
    Error::query(ErrorKind::Semantic, msg)
}

trait CloneMessage {
    fn clone_message_only(&self) -> String;
}

impl CloneMessage for DataFusionError {
    fn clone_message_only(&self) -> String {
        let s = self.to_string();
        // Drop DataFusion's category prefixes, which mean nothing to an ADQL user.
        for p in [
            "Schema error: ",
            "Error during planning: ",
            "Execution error: ",
            "Arrow error: ",
            "Internal error: ",
            "SQL error: ",
            "Optimizer rule ",
        ] {
            if let Some(r) = s.strip_prefix(p) {
                return r.to_string();
            }
        }
        s
    }
}
