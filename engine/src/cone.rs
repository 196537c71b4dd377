//! The small-cone fast path: `SELECT <columns> FROM <catalog> WHERE <one cone>` answered
//! straight from the Parquet pages, without DataFusion.
//!
//! A cone search is the archive's commonest query, and DataFusion's fixed cost per query
//! (planning, physical optimisation, the scan's file opening and pruning machinery: a few
//! milliseconds) is many times the work of reading the few kilobytes a small cone touches.
//! So the engine recognises the plain cone query on the syntax tree and runs it here:
//!
//! 1. the cone becomes `_healpix_29` ranges (cdshealpix coverage, never missing a row);
//! 2. partitions outside them are skipped (from `partition_info.csv`, listed once);
//! 3. each remaining leaf's footer and page index come from a bounded in-memory cache
//!    ([`MetaCache`]): a warm cone does no metadata I/O;
//! 4. row groups are skipped by their `_healpix_29` statistics and pages by the page index,
//!    giving a row selection; only the selected pages of the needed columns are fetched
//!    (one coalesced ranged read per leaf) and decoded;
//! 5. the same exact kernel as the general path (`geom::kernels::point_in_circle`, plus the
//!    distance comparison for the `DISTANCE` form) filters the rows.
//!
//! Anything else — other predicates, expressions in the select list, ORDER BY, joins, a cone
//! whose pages hold more than [`MAX_FAST_ROWS`] rows — takes the general DataFusion path, so
//! the answer never depends on which path ran (checked by
//! `tests/tests/integration/engine.rs::fast_cone_path_equals_general_path`).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, BooleanArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use tessera_storage::healpix::{RangeSet, cone_ranges};

use crate::adql::ast::{
    BinaryOp, Expr, ExprKind, Ident, Literal, Query, SelectItem, SetExpr, TableRef, UnaryOp,
};
use crate::geom::kernels::{self, Num};
use crate::query::{Limits, QueryResult};
use crate::translate::eq_ident;
use crate::{CatalogInfo, Error, ErrorKind, Result};

/// Rows the selected pages may hold at most for the fast path; a wider cone goes through
/// DataFusion, whose memory pool, parallelism and streaming suit it better.
pub(crate) const MAX_FAST_ROWS: usize = 262_144;

/// Bytes of decoded footers and page indexes kept at most.
const META_CACHE_BYTES: usize = 64 << 20;

/// The TAP_SCHEMA tables' names.
const TAP_TABLES: &[&str] = &["schemas", "tables", "columns", "keys", "key_columns"];

/// One leaf file of a catalog.
#[derive(Debug)]
struct Leaf {
    path: Path,
    /// The file itself, when the catalog is on the local file system.
    local: Option<std::path::PathBuf>,
    size: u64,
    range: Range<i64>,
}

/// Reads a leaf: positioned reads of the local file (the bytes are almost always in the page
/// cache, and a thread hop would cost more than the read), the object store otherwise.
struct LeafReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    local: Option<Arc<std::fs::File>>,
    size: u64,
}

impl LeafReader {
    fn open(t: &ConeTable, l: &Leaf) -> Result<LeafReader> {
        let local = match &l.local {
            Some(p) => Some(Arc::new(
                std::fs::File::open(p).map_err(|e| storage(&l.path, e))?,
            )),
            None => None,
        };
        Ok(LeafReader {
            store: t.store.clone(),
            path: l.path.clone(),
            local,
            size: l.size,
        })
    }

    fn read_local(f: &std::fs::File, r: Range<u64>) -> parquet::errors::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        f.read_exact_at(&mut buf, r.start)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok(Bytes::from(buf))
    }
}

impl AsyncFileReader for LeafReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        if let Some(f) = &self.local {
            return futures::future::ready(Self::read_local(f, range)).boxed();
        }
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        if let Some(f) = &self.local {
            let out = ranges.into_iter().map(|r| Self::read_local(f, r)).collect();
            return futures::future::ready(out).boxed();
        }
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let md = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(md))
        }
        .boxed()
    }
}

/// A catalog as the fast path sees it.
#[derive(Debug)]
pub(crate) struct ConeTable {
    schema_name: String,
    table_name: String,
    /// Columns with their VOParquet metadata, as the general path exposes them.
    schema: SchemaRef,
    store: Arc<dyn ObjectStore>,
    leaves: Vec<Leaf>,
    ra: usize,
    dec: usize,
}

/// The catalogs the fast path can answer, with the metadata cache they share.
#[derive(Debug)]
pub(crate) struct ConePath {
    tables: Vec<ConeTable>,
    cache: MetaCache,
    /// Queries answered here (for tests and metrics).
    pub(crate) answered: AtomicU64,
}

/// A recognised cone query.
#[derive(Debug, Clone)]
pub(crate) struct ConeQuery {
    table: usize,
    /// Table column indices, in output order, with their output names.
    columns: Vec<(usize, String)>,
    ra: f64,
    dec: f64,
    radius: f64,
    /// The `DISTANCE(…) < r` (false) or `<= r` (true) form.
    distance: Option<bool>,
    top: Option<u64>,
}

impl ConePath {
    /// Builds the fast-path view of the catalogs from the leaves the engine listed.
    /// `leaves`: per catalog, its table schema (as the session exposes it) and its leaf
    /// files in partition order.
    pub(crate) fn new(
        catalogs: &[CatalogInfo],
        leaves: Vec<(SchemaRef, Vec<(Path, u64)>)>,
    ) -> ConePath {
        let mut tables = Vec::new();
        for (c, (schema, files)) in catalogs.iter().zip(leaves) {
            let (Some(ra), Some(dec)) = (&c.ra_dec.0, &c.ra_dec.1) else {
                continue;
            };
            let find = |n: &str| c.columns.iter().position(|x| x.name == *n);
            let (Some(ra), Some(dec)) = (find(ra), find(dec)) else {
                continue;
            };
            tables.push(ConeTable {
                schema_name: c.schema.clone(),
                table_name: c.table.clone(),
                schema,
                store: c.location.store.clone(),
                leaves: files
                    .into_iter()
                    .zip(&c.pixels)
                    .map(|((path, size), p)| Leaf {
                        path,
                        local: c.location.local_dir.as_ref().map(|d| d.join(p.leaf_path())),
                        size,
                        range: p.range29(),
                    })
                    .collect(),
                ra,
                dec,
            });
        }
        ConePath {
            tables,
            cache: MetaCache::new(META_CACHE_BYTES),
            answered: AtomicU64::new(0),
        }
    }

    /// The cone query `q` is, if it is one this path answers.
    pub(crate) fn recognise(&self, q: &Query) -> Option<ConeQuery> {
        if !q.with.is_empty() || !q.order_by.is_empty() || q.offset.is_some() {
            return None;
        }
        let SetExpr::Select(s) = &q.body else {
            return None;
        };
        if s.distinct || !s.group_by.is_empty() || s.having.is_some() || s.from.len() != 1 {
            return None;
        }
        let TableRef::Table { name, alias, .. } = &s.from[0] else {
            return None;
        };
        let (table_i, t) = self.find_table(name)?;
        // The names a qualified column may use.
        let qualifier_ok = |parts: &[Ident]| -> bool {
            match (parts, alias) {
                ([], _) => true,
                ([a], Some(al)) => same_ident(a, al),
                (q, None) => {
                    q.len() <= name.len()
                        && q.iter()
                            .rev()
                            .zip(name.iter().rev())
                            .all(|(a, b)| same_ident(a, b))
                }
                _ => false,
            }
        };
        let column = |e: &Expr| -> Option<usize> {
            let ExprKind::Column(parts) = &unnest(e).kind else {
                return None;
            };
            let (col, qual) = parts.split_last()?;
            if !qualifier_ok(qual) {
                return None;
            }
            let mut hits = t
                .schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| eq_ident(col, f.name()));
            let (i, _) = hits.next()?;
            if hits.next().is_some() {
                return None;
            }
            Some(i)
        };

        let mut columns: Vec<(usize, String)> = Vec::new();
        for it in &s.items {
            match it {
                SelectItem::Wildcard(_) => columns.extend(
                    t.schema
                        .fields()
                        .iter()
                        .enumerate()
                        .map(|(i, f)| (i, f.name().clone())),
                ),
                SelectItem::Expr { expr, alias } => {
                    // Only bare column references (no parentheses: the general path names
                    // those differently).
                    if !matches!(expr.kind, ExprKind::Column(_)) {
                        return None;
                    }
                    let i = column(expr)?;
                    let name = match alias {
                        Some(a) => a.name.clone(),
                        None => t.schema.field(i).name().clone(),
                    };
                    columns.push((i, name));
                }
                SelectItem::QualifiedWildcard(..) => return None,
            }
        }
        // Output names must be unique (the general path renames duplicates).
        let mut seen = std::collections::HashSet::new();
        if !columns
            .iter()
            .all(|(_, n)| seen.insert(n.to_ascii_lowercase()))
        {
            return None;
        }

        let is_pos = |ra: &Expr, dec: &Expr| column(ra) == Some(t.ra) && column(dec) == Some(t.dec);
        let (ra, dec, radius, distance) = cone_predicate(s.selection.as_ref()?, &is_pos)?;
        if !(ra.is_finite() && (-90.0..=90.0).contains(&dec) && radius > 0.0 && radius <= 180.0) {
            return None;
        }
        Some(ConeQuery {
            table: table_i,
            columns,
            ra,
            dec,
            radius,
            distance,
            top: s.top,
        })
    }

    fn find_table(&self, name: &[Ident]) -> Option<(usize, &ConeTable)> {
        let mut hits = self.tables.iter().enumerate().filter(|(_, t)| match name {
            [tb] => eq_ident(tb, &t.table_name),
            [s, tb] => eq_ident(s, &t.schema_name) && eq_ident(tb, &t.table_name),
            _ => false,
        });
        let hit = hits.next()?;
        if hits.next().is_some() {
            return None;
        }
        // A table name shared with a TAP_SCHEMA table would be ambiguous unqualified: the
        // general path reports that.
        if name.len() == 1 && TAP_TABLES.iter().any(|n| eq_ident(&name[0], n)) {
            return None;
        }
        Some(hit)
    }

    /// Runs a recognised cone; `None` when its pages hold too many rows for this path.
    pub(crate) async fn run(&self, q: &ConeQuery, limits: &Limits) -> Result<Option<QueryResult>> {
        let t = &self.tables[q.table];
        let ranges = cone_ranges(q.ra.rem_euclid(360.0), q.dec, q.radius)
            .map_err(|e| Error::query(ErrorKind::Geometry, e.to_string()))?;

        // Footers and page indexes of the leaves the cone touches, then the pages it needs.
        let leaves: Vec<usize> = (0..t.leaves.len())
            .filter(|&i| ranges.overlaps(&t.leaves[i].range))
            .collect();
        let metas =
            futures::future::try_join_all(leaves.iter().map(|&i| self.cache.get(q.table, t, i)))
                .await?;
        let mut plans = Vec::new();
        let mut total = 0usize;
        for (&i, meta) in leaves.iter().zip(&metas) {
            let (groups, selection, rows) = select_pages(meta, &ranges);
            if rows == 0 {
                continue;
            }
            total += rows;
            if total > MAX_FAST_ROWS {
                return Ok(None);
            }
            plans.push((i, meta.clone(), groups, selection));
        }
        self.answered.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            table = %format!("{}.{}", t.schema_name, t.table_name),
            partitions = t.leaves.len(),
            partitions_read = plans.len(),
            row_groups_read = plans.iter().map(|p| p.2.len()).sum::<usize>(),
            rows_selected = total,
            "fast cone"
        );

        // The columns to read: the output ones plus RA and Dec.
        let mut needed: Vec<usize> = q.columns.iter().map(|c| c.0).collect();
        needed.extend([t.ra, t.dec]);
        needed.sort_unstable();
        needed.dedup();
        let reads = plans.into_iter().map(|(i, meta, groups, selection)| {
            let leaf = &t.leaves[i];
            let needed = &needed;
            async move {
                let file_schema = meta.schema().clone();
                let mut roots = Vec::with_capacity(needed.len());
                for &c in needed {
                    let name = t.schema.field(c).name();
                    let idx = file_schema.index_of(name).map_err(|_| {
                        Error::query(
                            ErrorKind::Storage,
                            format!("{}: no column {name} in the leaf", leaf.path),
                        )
                    })?;
                    roots.push(idx);
                }
                let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
                let reader = LeafReader::open(t, leaf)?;
                let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
                    .with_projection(mask)
                    .with_row_groups(groups)
                    .with_row_selection(selection)
                    .with_batch_size(8192)
                    .build()
                    .map_err(|e| storage(&leaf.path, e))?;
                let batches: Vec<RecordBatch> = stream
                    .try_collect()
                    .await
                    .map_err(|e| storage(&leaf.path, e))?;
                Ok::<_, Error>(batches)
            }
        });
        let read = futures::future::try_join_all(reads).await?;

        let out_schema = Arc::new(Schema::new(
            q.columns
                .iter()
                .map(|(i, name)| {
                    let f = t.schema.field(*i);
                    Field::new(name, f.data_type().clone(), true)
                        .with_metadata(f.metadata().clone())
                })
                .collect::<Vec<_>>(),
        ));
        let mut out = Vec::new();
        let mut kept = 0u64;
        let cap = match (q.top, limits.max_rows) {
            (Some(a), Some(b)) => Some(a.min(b.saturating_add(1))),
            (a, b) => a.or(b.map(|b| b.saturating_add(1))),
        };
        'leaves: for b in read.into_iter().flatten() {
            let batch = self.exact(q, t, &b, &out_schema)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let n = batch.num_rows() as u64;
            if let Some(c) = cap
                && kept + n >= c
            {
                out.push(batch.slice(0, (c - kept) as usize));
                kept = c;
                break 'leaves;
            }
            kept += n;
            out.push(batch);
        }
        // TOP cuts silently; MAXREC cuts with the overflow flag.
        let overflow = Arc::new(AtomicBool::new(false));
        if let Some(max) = limits.max_rows
            && kept > max
        {
            let mut left = max;
            for b in out.iter_mut() {
                let n = (b.num_rows() as u64).min(left);
                *b = b.slice(0, n as usize);
                left -= n;
            }
            out.retain(|b| b.num_rows() > 0);
            overflow.store(true, Ordering::Relaxed);
        }
        Ok(Some(QueryResult {
            schema: out_schema,
            stream: Box::pin(futures::stream::iter(out.into_iter().map(Ok))),
            overflow,
        }))
    }

    /// The rows of `b` inside the cone, as output columns.
    fn exact(
        &self,
        q: &ConeQuery,
        t: &ConeTable,
        b: &RecordBatch,
        out_schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let col = |i: usize| -> Result<Float64Array> {
            let name = t.schema.field(i).name();
            let a = b
                .column_by_name(name)
                .ok_or_else(|| internal(format!("column {name} not read")))?;
            let a = arrow::compute::cast(a, &DataType::Float64).map_err(internal)?;
            a.as_any()
                .downcast_ref::<Float64Array>()
                .cloned()
                .ok_or_else(|| internal("cast to Float64"))
        };
        let (ra, dec) = (col(t.ra)?, col(t.dec)?);
        let rows = b.num_rows();
        let inside = kernels::point_in_circle(
            Num::Array(&ra),
            Num::Array(&dec),
            Num::Scalar(Some(q.ra)),
            Num::Scalar(Some(q.dec)),
            Num::Scalar(Some(q.radius)),
            rows,
        )
        .map_err(|e| Error::query(ErrorKind::Geometry, e))?;
        let mut keep: BooleanArray = inside.iter().map(|v| Some(v == Some(1))).collect();
        if let Some(inclusive) = q.distance {
            let d = kernels::distance(
                Num::Array(&ra),
                Num::Array(&dec),
                Num::Scalar(Some(q.ra)),
                Num::Scalar(Some(q.dec)),
                rows,
            )
            .map_err(|e| Error::query(ErrorKind::Geometry, e))?;
            keep = keep
                .iter()
                .zip(d.iter())
                .map(|(k, d)| {
                    Some(
                        k == Some(true)
                            && d.is_some_and(|d| {
                                if inclusive {
                                    d <= q.radius
                                } else {
                                    d < q.radius
                                }
                            }),
                    )
                })
                .collect();
        }
        let mut cols = Vec::with_capacity(q.columns.len());
        for (i, _) in &q.columns {
            let f = t.schema.field(*i);
            let a = b
                .column_by_name(f.name())
                .ok_or_else(|| internal(format!("column {} not read", f.name())))?;
            let a = arrow::compute::filter(a, &keep).map_err(internal)?;
            let a = if a.data_type() == f.data_type() {
                a
            } else {
                arrow::compute::cast(&a, f.data_type()).map_err(internal)?
            };
            cols.push(a);
        }
        let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(keep.true_count()));
        RecordBatch::try_new_with_options(out_schema.clone(), cols, &opts).map_err(internal)
    }
}

/// The row groups and row selection of the pages whose `_healpix_29` span meets `ranges`,
/// and the number of rows selected.
fn select_pages(
    meta: &ArrowReaderMetadata,
    ranges: &RangeSet,
) -> (Vec<usize>, RowSelection, usize) {
    let md = meta.metadata();
    let mut groups = Vec::new();
    let mut selected: Vec<Range<usize>> = Vec::new();
    let mut offset = 0usize; // row offset within the selected row groups
    let mut rows = 0usize;
    for (g, rg) in md.row_groups().iter().enumerate() {
        let n = rg.num_rows() as usize;
        let span = match rg.column(0).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(&lo), Some(&hi)) => Some(lo..hi.saturating_add(1)),
                _ => None,
            },
            _ => None,
        };
        if span.as_ref().is_some_and(|s| !ranges.overlaps(s)) {
            continue;
        }
        groups.push(g);
        let pages = md
            .offset_index()
            .and_then(|o| o.get(g))
            .and_then(|o| o.first())
            .map(|o| o.page_locations());
        let index = md
            .column_index()
            .and_then(|c| c.get(g))
            .and_then(|c| c.first());
        match (pages, index) {
            (Some(pages), Some(ColumnIndexMetaData::INT64(ix))) if !pages.is_empty() => {
                for (p, loc) in pages.iter().enumerate() {
                    let start = loc.first_row_index as usize;
                    let end = pages
                        .get(p + 1)
                        .map_or(n, |next| next.first_row_index as usize);
                    let keep = match (ix.min_value(p), ix.max_value(p)) {
                        (Some(&lo), Some(&hi)) => ranges.overlaps(&(lo..hi.saturating_add(1))),
                        _ => true,
                    };
                    if keep && end > start {
                        push_range(&mut selected, offset + start..offset + end);
                        rows += end - start;
                    }
                }
            }
            _ => {
                push_range(&mut selected, offset..offset + n);
                rows += n;
            }
        }
        offset += n;
    }
    let selection = RowSelection::from_consecutive_ranges(selected.into_iter(), offset);
    (groups, selection, rows)
}

fn push_range(v: &mut Vec<Range<usize>>, r: Range<usize>) {
    match v.last_mut() {
        Some(last) if last.end == r.start => last.end = r.end,
        _ => v.push(r),
    }
}

/// `(ra, dec, radius, distance form)` of a WHERE clause that is exactly one cone over the
/// table's position: `1 = CONTAINS(POINT(ra, dec), CIRCLE(…))` and its `= 1`, INTERSECTS and
/// `DISTANCE(POINT(ra, dec), POINT(…)) < r` / `<=` / `r >` forms, with literal numbers.
fn cone_predicate(
    w: &Expr,
    is_pos: &dyn Fn(&Expr, &Expr) -> bool,
) -> Option<(f64, f64, f64, Option<bool>)> {
    let w = unnest(w);
    let ExprKind::Binary { op, left, right } = &w.kind else {
        return None;
    };
    match op {
        BinaryOp::Eq => {
            let f = if literal(left) == Some(1.0) {
                right
            } else if literal(right) == Some(1.0) {
                left
            } else {
                return None;
            };
            let (name, args) = function(f)?;
            let (p, c) = match (name.to_ascii_uppercase().as_str(), args) {
                ("CONTAINS", [p, c]) => (p, c),
                ("INTERSECTS", [a, b]) => {
                    if function(a).is_some_and(|(n, _)| n.eq_ignore_ascii_case("POINT")) {
                        (a, b)
                    } else {
                        (b, a)
                    }
                }
                _ => return None,
            };
            let (pra, pdec) = point_args(p)?;
            if !is_pos(pra, pdec) {
                return None;
            }
            let (cn, cargs) = function(c)?;
            if !cn.eq_ignore_ascii_case("CIRCLE") {
                return None;
            }
            let cargs = strip_sys(cargs)?;
            let [cra, cdec, r] = cargs else {
                return None;
            };
            Some((literal(cra)?, literal(cdec)?, literal(r)?, None))
        }
        BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
            let (d, r) = match op {
                BinaryOp::Lt | BinaryOp::LtEq => (left, right),
                _ => (right, left),
            };
            let inclusive = matches!(op, BinaryOp::LtEq | BinaryOp::GtEq);
            let r = literal(r)?;
            let (name, args) = function(d)?;
            if !name.eq_ignore_ascii_case("DISTANCE") {
                return None;
            }
            let (p, q): ((&Expr, &Expr), (&Expr, &Expr)) = match args {
                [a, b] => (point_args(a)?, point_args(b)?),
                [a, b, c, d] => ((a, b), (c, d)),
                _ => return None,
            };
            let (ra, dec) = if is_pos(p.0, p.1) {
                (literal(q.0)?, literal(q.1)?)
            } else if is_pos(q.0, q.1) {
                (literal(p.0)?, literal(p.1)?)
            } else {
                return None;
            };
            Some((ra, dec, r, Some(inclusive)))
        }
        _ => None,
    }
}

fn point_args(e: &Expr) -> Option<(&Expr, &Expr)> {
    let (name, args) = function(e)?;
    if !name.eq_ignore_ascii_case("POINT") {
        return None;
    }
    match strip_sys(args)? {
        [ra, dec] => Some((ra, dec)),
        _ => None,
    }
}

/// Region arguments without the optional coordinate system, which must be ICRS or empty.
fn strip_sys(args: &[Expr]) -> Option<&[Expr]> {
    match args.first().map(|a| &unnest(a).kind) {
        Some(ExprKind::Literal(Literal::String(s))) => {
            let s = s.trim().to_ascii_uppercase();
            (s.is_empty() || s == "ICRS").then(|| &args[1..])
        }
        _ => Some(args),
    }
}

fn function(e: &Expr) -> Option<(&str, &[Expr])> {
    match &unnest(e).kind {
        ExprKind::Function {
            name,
            args,
            distinct: false,
        } => Some((name.name.as_str(), args.as_slice())),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<f64> {
    constant(e).map(|c| c.0)
}

/// A constant numeric expression's value, and whether it is an integer. Arithmetic folds as
/// SQL does: `1/60` is integer division (0), `1/60.0` is not; anything else is not constant.
fn constant(e: &Expr) -> Option<(f64, bool)> {
    match &unnest(e).kind {
        ExprKind::Literal(Literal::Integer(i)) => Some((*i as f64, true)),
        ExprKind::Literal(Literal::Float(f, _)) => Some((*f, false)),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => constant(expr).map(|(v, i)| (-v, i)),
        ExprKind::Unary {
            op: UnaryOp::Plus,
            expr,
        } => constant(expr),
        ExprKind::Binary { op, left, right } => {
            let ((a, ai), (b, bi)) = (constant(left)?, constant(right)?);
            let int = ai && bi;
            // Integer arithmetic beyond f64's exact range, or integer division: not folded.
            if int
                && (matches!(op, BinaryOp::Div)
                    || a.abs() > 2f64.powi(52)
                    || b.abs() > 2f64.powi(52))
            {
                return None;
            }
            let v = match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div if b != 0.0 => a / b,
                _ => return None,
            };
            v.is_finite().then_some((v, int))
        }
        _ => None,
    }
}

fn unnest(mut e: &Expr) -> &Expr {
    while let ExprKind::Nested(x) = &e.kind {
        e = x;
    }
    e
}

/// Whether two identifiers name the same thing (an alias and its use).
fn same_ident(a: &Ident, b: &Ident) -> bool {
    if a.delimited || b.delimited {
        a.name == b.name
    } else {
        a.name.eq_ignore_ascii_case(&b.name)
    }
}

fn storage(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::query(ErrorKind::Storage, format!("reading {path}: {e}"))
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::query(ErrorKind::Internal, e.to_string())
}

/// Decoded footers and page indexes of leaf files, bounded in bytes; the least recently used
/// go first.
#[derive(Debug)]
struct MetaCache {
    limit: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<(usize, usize), (ArrowReaderMetadata, usize, u64)>,
    bytes: usize,
    tick: u64,
}

impl MetaCache {
    fn new(limit: usize) -> MetaCache {
        MetaCache {
            limit,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    async fn get(&self, table: usize, t: &ConeTable, leaf: usize) -> Result<ArrowReaderMetadata> {
        {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.tick += 1;
            let tick = g.tick;
            if let Some(e) = g.map.get_mut(&(table, leaf)) {
                e.2 = tick;
                return Ok(e.0.clone());
            }
        }
        let l = &t.leaves[leaf];
        let mut reader = LeafReader::open(t, l)?;
        let meta = ArrowReaderMetadata::load_async(
            &mut reader,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )
        .await
        .map_err(|e| storage(&l.path, e))?;
        let size = meta.metadata().memory_size();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.tick += 1;
        let tick = g.tick;
        if let Some(old) = g.map.insert((table, leaf), (meta.clone(), size, tick)) {
            g.bytes -= old.1;
        }
        g.bytes += size;
        while g.bytes > self.limit && g.map.len() > 1 {
            let Some((&k, _)) = g.map.iter().min_by_key(|(_, v)| v.2) else {
                break;
            };
            if let Some(old) = g.map.remove(&k) {
                g.bytes -= old.1;
            }
        }
        Ok(meta)
    }
}
