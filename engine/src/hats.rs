//! The HATS table provider: a catalog as a DataFusion table that reads only the partitions,
//! row groups and pages a spatial constraint can touch.
//!
//! The leaf files and their sizes are listed once when the engine opens (no listing per
//! query). At scan time the pushed-down filters are searched for the region kernels the
//! translator emits — `adql_point_in_circle(ra, dec, …) = 1` and
//! `adql_point_in_polygon(ra, dec, …) = 1` over this table's own position columns, AND-ed and
//! OR-ed — and turned into a `_healpix_29` range set (cdshealpix coverage, never missing a
//! row). Partitions outside it are skipped; inside, a `_healpix_29` range predicate lets the
//! Parquet reader skip row groups by statistics and pages by the page index. DataFusion still
//! applies the exact filter above the scan (the pushdown is `Inexact`).

use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Column, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use tessera_storage::healpix::{RangeSet, cone_ranges};

use crate::CatalogInfo;

/// Most ranges put into the row-group/page predicate; beyond, the smallest gaps are closed.
const MAX_PREDICATE_RANGES: usize = 64;

/// One leaf file.
#[derive(Debug, Clone)]
struct Leaf {
    /// Object path inside the store.
    path: String,
    size: u64,
    range: Range<i64>,
}

/// A HATS catalog as a table.
#[derive(Debug)]
pub(crate) struct HatsTable {
    schema: SchemaRef,
    url: ObjectStoreUrl,
    leaves: Vec<Leaf>,
    ra: Option<String>,
    dec: Option<String>,
    /// Rows in the catalog (`hats_nrows`): exact statistics for unfiltered scans, so that
    /// `COUNT(*)` is answered without reading the leaves.
    rows: u64,
}

impl HatsTable {
    /// Lists the catalog's leaves once (one LIST of `dataset/`) and matches them to its
    /// partitions.
    pub(crate) async fn open(
        c: &CatalogInfo,
        url: ObjectStoreUrl,
        schema: SchemaRef,
    ) -> crate::Result<HatsTable> {
        let prefix = c.location.path("dataset");
        let listed: std::collections::HashMap<object_store::path::Path, u64> = c
            .location
            .store
            .list(Some(&prefix))
            .map_ok(|m| (m.location, m.size))
            .try_collect()
            .await
            .map_err(|e| {
                crate::Error::query(
                    crate::ErrorKind::Storage,
                    format!("listing {}/dataset: {e}", c.location.url),
                )
            })?;
        let mut leaves = Vec::with_capacity(c.pixels.len());
        for p in &c.pixels {
            let path = c.location.path(&p.leaf_path());
            let Some(&size) = listed.get(&path) else {
                return Err(crate::Error::query(
                    crate::ErrorKind::Storage,
                    format!(
                        "{}: partition file {} is missing",
                        c.location.url,
                        p.leaf_path()
                    ),
                ));
            };
            leaves.push(Leaf {
                path: path.to_string(),
                size,
                range: p.range29(),
            });
        }
        Ok(HatsTable {
            schema,
            url,
            leaves,
            ra: c.ra_dec.0.clone(),
            dec: c.ra_dec.1.clone(),
            rows: c.rows,
        })
    }

    /// The leaf files (object path, size) in partition order.
    pub(crate) fn leaf_files(&self) -> Vec<(object_store::path::Path, u64)> {
        self.leaves
            .iter()
            .map(|l| {
                let p = object_store::path::Path::parse(&l.path)
                    .unwrap_or_else(|_| object_store::path::Path::from(l.path.as_str()));
                (p, l.size)
            })
            .collect()
    }

    /// The `_healpix_29` ranges a filter confines rows to, if it is spatial.
    fn filter_ranges(&self, e: &Expr) -> Option<RangeSet> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => match (self.filter_ranges(left), self.filter_ranges(right)) {
                    (Some(a), Some(b)) => Some(intersect(&a, &b)),
                    (a, b) => a.or(b),
                },
                Operator::Or => {
                    let a = self.filter_ranges(left)?;
                    let b = self.filter_ranges(right)?;
                    let mut all = a.ranges().to_vec();
                    all.extend_from_slice(b.ranges());
                    Some(RangeSet::from_ranges(all))
                }
                Operator::Eq => {
                    let (f, one) = if is_one(left) {
                        (right, left)
                    } else {
                        (left, right)
                    };
                    if !is_one(one) {
                        return None;
                    }
                    self.kernel_ranges(strip_cast(f))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn kernel_ranges(&self, e: &Expr) -> Option<RangeSet> {
        let Expr::ScalarFunction(f) = e else {
            return None;
        };
        let args = &f.args;
        let is_col = |x: &Expr, name: &Option<String>| matches!(strip_cast(x), Expr::Column(c) if Some(&c.name) == name.as_ref());
        if args.len() < 3 || !is_col(&args[0], &self.ra) || !is_col(&args[1], &self.dec) {
            return None;
        }
        match f.func.name() {
            "adql_point_in_circle" if args.len() == 5 => {
                let (ra, dec, r) = (number(&args[2])?, number(&args[3])?, number(&args[4])?);
                if r.is_nan() || r <= 0.0 || !(-90.0..=90.0).contains(&dec) {
                    return None;
                }
                cone_ranges(ra.rem_euclid(360.0), dec, r.min(180.0)).ok()
            }
            "adql_point_in_polygon" if args.len() == 3 => {
                let coords = list_numbers(&args[2])?;
                if coords.len() < 6 || coords.len() % 2 != 0 {
                    return None;
                }
                bounding_cap(&coords).and_then(|(ra, dec, r)| cone_ranges(ra, dec, r).ok())
            }
            _ => None,
        }
    }
}

/// A cap (ra, dec, radius in degrees) holding a polygon: centred on the normalised sum of
/// its vertices, reaching the farthest one. Caps up to 90° are convex, so the great-circle
/// edges and the interior (the smaller region, which lies in the vertices' convex hull) stay
/// inside. `None` (no pruning) for wider polygons.
///
/// cdshealpix's polygon coverage would be tighter for thin polygons but panics on polygons
/// around a pole (cdshealpix 0.10.1, special_points_finder), so it is not used here.
fn bounding_cap(coords: &[f64]) -> Option<(f64, f64, f64)> {
    let v: Vec<[f64; 3]> = coords
        .chunks(2)
        .map(|p| {
            let (r, d) = (p[0].to_radians(), p[1].to_radians());
            [d.cos() * r.cos(), d.cos() * r.sin(), d.sin()]
        })
        .collect();
    let s = v
        .iter()
        .fold([0.0; 3], |a, x| [a[0] + x[0], a[1] + x[1], a[2] + x[2]]);
    let n = (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]).sqrt();
    if n.is_nan() || n <= 1e-9 {
        return None;
    }
    let c = [s[0] / n, s[1] / n, s[2] / n];
    let r = v
        .iter()
        .map(|x| {
            (x[0] * c[0] + x[1] * c[1] + x[2] * c[2])
                .clamp(-1.0, 1.0)
                .acos()
        })
        .fold(0.0f64, f64::max)
        .to_degrees()
        + 1e-7;
    if r > 90.0 {
        return None;
    }
    let ra = c[1].atan2(c[0]).to_degrees().rem_euclid(360.0);
    let dec = c[2].clamp(-1.0, 1.0).asin().to_degrees();
    Some((ra, dec, r))
}

fn strip_cast(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => strip_cast(&c.expr),
        Expr::TryCast(c) => strip_cast(&c.expr),
        _ => e,
    }
}

fn is_one(e: &Expr) -> bool {
    matches!(strip_cast(e), Expr::Literal(v, _) if scalar_f64(v) == Some(1.0))
}

fn scalar_f64(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float64(Some(x)) => Some(*x),
        ScalarValue::Float32(Some(x)) => Some(*x as f64),
        ScalarValue::Int64(Some(x)) => Some(*x as f64),
        ScalarValue::Int32(Some(x)) => Some(*x as f64),
        ScalarValue::Int16(Some(x)) => Some(*x as f64),
        ScalarValue::Int8(Some(x)) => Some(*x as f64),
        ScalarValue::UInt64(Some(x)) => Some(*x as f64),
        ScalarValue::UInt32(Some(x)) => Some(*x as f64),
        _ => None,
    }
}

fn number(e: &Expr) -> Option<f64> {
    match strip_cast(e) {
        Expr::Literal(v, _) => scalar_f64(v),
        Expr::Negative(x) => number(x).map(|v| -v),
        _ => None,
    }
}

/// The numbers of a constant region list: a `List<Float64>` literal, or `adql_polygon` /
/// `adql_box`-free constructor calls with literal arguments.
fn list_numbers(e: &Expr) -> Option<Vec<f64>> {
    match strip_cast(e) {
        Expr::Literal(ScalarValue::List(l), _) => {
            if l.is_empty() || l.is_null(0) {
                return None;
            }
            let v = l.value(0);
            let v = arrow::compute::cast(&v, &arrow::datatypes::DataType::Float64).ok()?;
            let v = v.as_any().downcast_ref::<arrow::array::Float64Array>()?;
            if v.null_count() > 0 {
                return None;
            }
            Some(v.values().to_vec())
        }
        Expr::ScalarFunction(f) if f.func.name() == "adql_polygon" => {
            f.args.iter().map(number).collect()
        }
        _ => None,
    }
}

use arrow::array::Array;

/// Intersection of two range sets.
fn intersect(a: &RangeSet, b: &RangeSet) -> RangeSet {
    let (a, b) = (a.ranges(), b.ranges());
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let s = a[i].start.max(b[j].start);
        let e = a[i].end.min(b[j].end);
        if s < e {
            out.push(s..e);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    RangeSet::from_ranges(out)
}

/// At most `n` ranges covering `set`: the smallest gaps are closed.
fn coarsen(set: &RangeSet, n: usize) -> Vec<Range<i64>> {
    let r = set.ranges();
    if r.len() <= n {
        return r.to_vec();
    }
    let mut gaps: Vec<(i64, usize)> = (1..r.len())
        .map(|i| (r[i].start - r[i - 1].end, i))
        .collect();
    gaps.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut cuts: Vec<usize> = gaps[..n - 1].iter().map(|g| g.1).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(n);
    let mut start = r[0].start;
    for &c in &cuts {
        out.push(start..r[c - 1].end);
        start = r[c].start;
    }
    out.push(start..r[r.len() - 1].end);
    out
}

#[async_trait]
impl TableProvider for HatsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Conjunction of every spatial filter.
        let mut ranges: Option<RangeSet> = None;
        for f in filters {
            if let Some(r) = self.filter_ranges(f) {
                ranges = Some(match ranges {
                    Some(a) => intersect(&a, &r),
                    None => r,
                });
            }
        }
        let leaves: Vec<&Leaf> = self
            .leaves
            .iter()
            .filter(|l| ranges.as_ref().is_none_or(|r| r.overlaps(&l.range)))
            .collect();
        tracing::debug!(
            partitions = self.leaves.len(),
            read = leaves.len(),
            ranges = ranges.as_ref().map_or(0, |r| r.ranges().len()),
            "HATS scan"
        );

        // Row-group and page pruning: the filters themselves (statistics on any column) and
        // the `_healpix_29` ranges.
        let mut predicate: Vec<Expr> = filters.to_vec();
        if let Some(r) = &ranges {
            let h = Expr::Column(Column::from_name("_healpix_29"));
            let parts: Vec<Expr> = coarsen(r, MAX_PREDICATE_RANGES)
                .into_iter()
                .map(|x| {
                    Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(Expr::BinaryExpr(BinaryExpr::new(
                            Box::new(h.clone()),
                            Operator::GtEq,
                            Box::new(Expr::Literal(ScalarValue::Int64(Some(x.start)), None)),
                        ))),
                        Operator::And,
                        Box::new(Expr::BinaryExpr(BinaryExpr::new(
                            Box::new(h.clone()),
                            Operator::Lt,
                            Box::new(Expr::Literal(ScalarValue::Int64(Some(x.end)), None)),
                        ))),
                    ))
                })
                .collect();
            if let Some(any) = parts.into_iter().reduce(|a, b| {
                Expr::BinaryExpr(BinaryExpr::new(Box::new(a), Operator::Or, Box::new(b)))
            }) {
                predicate.push(any);
            }
        }
        // Footers and page indexes come from the runtime's bounded metadata cache, so a warm
        // query does no metadata I/O.
        let runtime = state.runtime_env();
        let factory = CachedParquetFileReaderFactory::new(
            runtime.object_store(&self.url)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut source = ParquetSource::new(self.schema.clone())
            .with_enable_page_index(true)
            .with_parquet_file_reader_factory(Arc::new(factory));
        if let Some(p) = predicate.into_iter().reduce(|a, b| {
            Expr::BinaryExpr(BinaryExpr::new(Box::new(a), Operator::And, Box::new(b)))
        }) {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(p, &df_schema)?);
        }

        // Spread the leaves over the target partitions, largest first.
        let n = state
            .config()
            .target_partitions()
            .max(1)
            .min(leaves.len().max(1));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); n];
        let mut sorted = leaves;
        sorted.sort_by_key(|l| std::cmp::Reverse(l.size));
        for l in sorted {
            if let Some(g) = groups.iter_mut().min_by_key(|g| g.0) {
                g.0 += l.size;
                g.1.push(PartitionedFile::new(l.path.clone(), l.size));
            }
        }
        let groups: Vec<FileGroup> = groups
            .into_iter()
            .filter(|g| !g.1.is_empty())
            .map(|g| FileGroup::new(g.1))
            .collect();
        let mut config = FileScanConfigBuilder::new(self.url.clone(), Arc::new(source))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .with_file_groups(groups);
        if filters.is_empty() {
            config = config.with_statistics(Statistics {
                num_rows: Precision::Exact(self.rows as usize),
                total_byte_size: Precision::Absent,
                column_statistics: Statistics::unknown_column(&self.schema),
            });
        }
        let config = config.build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersect_and_coarsen_keep_every_value() {
        let a = RangeSet::from_ranges(vec![0..10, 20..30, 40..50]);
        let b = RangeSet::from_ranges(vec![5..25, 45..100]);
        assert_eq!(intersect(&a, &b).ranges(), &[5..10, 20..25, 45..50]);
        let many = RangeSet::from_ranges((0..100).map(|i| i * 10..i * 10 + 3 + (i % 3)).collect());
        let c = coarsen(&many, 8);
        assert_eq!(c.len(), 8);
        for r in many.ranges() {
            assert!(
                c.iter().any(|x| x.start <= r.start && r.end <= x.end),
                "{r:?} lost"
            );
        }
    }
}
