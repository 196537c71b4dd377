//! Building a catalogue's HiPS hierarchy in memory: read the tile columns through the engine,
//! rank the rows, assign each row to exactly one tile (the Hipsgen-cat way), and keep the
//! rendered TSV lines with per-order indexes so that any tile is cut out on request.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use arrow::compute::{cast, filter_record_batch, is_not_null};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tessera_engine::{Catalog, CatalogInfo, ColumnInfo, Limits};

use crate::formats::ResultWriter;
use crate::formats::csv::{DelimitedWriter, Dialect};
use crate::scs::quote;
use crate::tap::TapService;

/// Deepest tile order: rows still unplaced when every tile above is full all go there.
pub(crate) const MAX_ORDER: u8 = 11;

/// Rows a tile at `order` holds at most (except at [`MAX_ORDER`]): 60 per order-1 tile and
/// 45 per order-2 tile (at most 2,880 and 8,640 rows in `Norder1/Allsky.tsv` and
/// `Norder2/Allsky.tsv`, the n1 ≈ 3000, n2 ≈ 3·n1 of the CDS scheme), 100 per tile deeper.
pub(crate) fn quota(order: u8) -> u32 {
    match order {
        1 => 60,
        2 => 45,
        _ => 100,
    }
}

/// One catalogue's HiPS, held in memory.
#[derive(Debug)]
pub(crate) struct Hierarchy {
    /// `schema.table`.
    pub(crate) name: String,
    /// `obs_title`.
    pub(crate) title: String,
    /// `hips_release_date` (`YYYY-mm-ddTHH:MMZ`).
    pub(crate) release_date: String,
    /// The TSV header line, with its LF.
    pub(crate) header: String,
    /// All rows' TSV lines, LF-terminated, back to back; row i is `text[offsets[i]..offsets[i+1]]`.
    text: Vec<u8>,
    offsets: Vec<usize>,
    /// Rank of each row (0 = most important).
    rank: Vec<u32>,
    /// Per order (index = order, 0 unused): `(_healpix_29, row)` of the rows assigned to
    /// that order, sorted.
    per_order: Vec<Vec<(u64, u32)>>,
    /// `_healpix_29` of every placed row, sorted (for the `Completeness` totals).
    all: Vec<u64>,
    /// Deepest order holding rows (`hips_order`).
    pub(crate) max_order: u8,
    /// Coverage: canonical MOC cells and its best order.
    pub(crate) moc: Vec<(u8, u64)>,
    pub(crate) moc_order: u8,
    /// `hips_initial_ra`, `hips_initial_dec`, `hips_initial_fov`.
    pub(crate) initial: (f64, f64, f64),
    /// `Metadata.xml`.
    pub(crate) metadata_xml: String,
    /// The ranking column, if one was found.
    pub(crate) rank_column: Option<String>,
}

impl Hierarchy {
    /// Rows placed in the hierarchy (`hips_cat_nrows`).
    pub(crate) fn rows(&self) -> usize {
        self.all.len()
    }

    /// Tiles holding rows at `order`.
    pub(crate) fn tile_count(&self, order: u8) -> usize {
        let Some(v) = self.per_order.get(usize::from(order)) else {
            return 0;
        };
        let shift = 2 * (29 - u32::from(order));
        let mut n = 0;
        let mut last = None;
        for &(h, _) in v {
            let p = h >> shift;
            if last != Some(p) {
                n += 1;
                last = Some(p);
            }
        }
        n
    }

    fn count(v: &[u64], lo: u64, hi: u64) -> usize {
        v.partition_point(|&h| h < hi) - v.partition_point(|&h| h < lo)
    }

    fn range(v: &[(u64, u32)], lo: u64, hi: u64) -> &[(u64, u32)] {
        let a = v.partition_point(|&(h, _)| h < lo);
        let b = v.partition_point(|&(h, _)| h < hi);
        &v[a..b]
    }

    fn line(&self, row: u32) -> &[u8] {
        let i = row as usize;
        &self.text[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The tile (order, npix) as TSV, `None` when it holds no rows. Order-0 tiles never
    /// hold rows (Aladin Lite never asks for them) but are served without rows, with their
    /// `Completeness`, for the cells that contain rows, since `hips_order_min = 0` (see the
    /// module documentation).
    pub(crate) fn tile(&self, order: u8, npix: u64) -> Option<Vec<u8>> {
        if order > self.max_order {
            return None;
        }
        let shift = 2 * (29 - u32::from(order));
        let (lo, hi) = (npix << shift, (npix + 1) << shift);
        if order == 0 {
            let total = Self::count(&self.all, lo, hi);
            return (total > 0).then(|| self.render(0, total, &[]));
        }
        let mut rows: Vec<u32> = Self::range(&self.per_order[usize::from(order)], lo, hi)
            .iter()
            .map(|&(_, r)| r)
            .collect();
        if rows.is_empty() {
            return None;
        }
        rows.sort_unstable_by_key(|&r| self.rank[r as usize]);
        let loaded: usize = (1..=usize::from(order))
            .map(|k| Self::range(&self.per_order[k], lo, hi).len())
            .sum();
        let total = Self::count(&self.all, lo, hi);
        Some(self.render(loaded, total, &rows))
    }

    /// `NorderK/Allsky.tsv`: every row of every tile at `order`, tile by tile.
    pub(crate) fn allsky(&self, order: u8) -> Option<Vec<u8>> {
        if order == 0 || order > 3 || order > self.max_order {
            return None;
        }
        let shift = 2 * (29 - u32::from(order));
        let mut rows: Vec<(u64, u32, u32)> = self.per_order[usize::from(order)]
            .iter()
            .map(|&(h, r)| (h >> shift, self.rank[r as usize], r))
            .collect();
        rows.sort_unstable();
        let loaded: usize = (1..=usize::from(order))
            .map(|k| self.per_order[k].len())
            .sum();
        let rows: Vec<u32> = rows.into_iter().map(|(_, _, r)| r).collect();
        Some(self.render(loaded, self.all.len(), &rows))
    }

    fn render(&self, loaded: usize, total: usize, rows: &[u32]) -> Vec<u8> {
        let mut out = format!("# Completeness = {loaded}/{total}\n{}", self.header).into_bytes();
        for &r in rows {
            out.extend_from_slice(self.line(r));
        }
        out
    }
}

/// The column ranking the rows: a `phot.mag*` UCD, else a numeric column named like `*mag*`
/// that is not an error or scatter (`e_`, `err`, `sig`).
pub(crate) fn magnitude_column(c: &CatalogInfo) -> Option<&ColumnInfo> {
    let numeric = |col: &&ColumnInfo| col.arrow_type.is_numeric();
    c.columns
        .iter()
        .filter(numeric)
        .find(|col| {
            col.meta
                .ucd
                .as_deref()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("phot.mag"))
        })
        .or_else(|| {
            c.columns.iter().filter(numeric).find(|col| {
                let n = col.name.to_ascii_lowercase();
                n.contains("mag")
                    && !n.starts_with("e_")
                    && !n.starts_with("err")
                    && !n.contains("_err")
                    && !n.contains("error")
                    && !n.starts_with("sig")
            })
        })
}

/// The columns of the tiles: identifier, RA, Dec, the ranking magnitude, then the principal
/// columns in catalogue order.
fn tile_columns(c: &CatalogInfo) -> Result<Vec<String>, String> {
    let (Some(ra), Some(dec)) = (c.ra_dec.0.as_deref(), c.ra_dec.1.as_deref()) else {
        return Err(format!(
            "catalog {} declares no position columns",
            c.qualified_name()
        ));
    };
    let mut cols: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if n != "_healpix_29" && !cols.iter().any(|c| c == n) {
            cols.push(n.to_string());
        }
    };
    if let Some(id) = crate::scs::id_column(c) {
        add(id);
    }
    add(ra);
    add(dec);
    if let Some(m) = magnitude_column(c) {
        add(&m.name);
    }
    for col in c.columns.iter().filter(|col| col.meta.principal) {
        add(&col.name);
    }
    Ok(cols)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn f64_column(b: &RecordBatch, i: usize) -> Result<Float64Array, String> {
    let a = cast(b.column(i), &DataType::Float64).map_err(|e| e.to_string())?;
    a.as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .ok_or_else(|| "not a float column".to_string())
}

/// Reads the catalogue through the engine and builds its hierarchy.
pub(crate) async fn build(svc: &TapService, c: &CatalogInfo) -> Result<Arc<Hierarchy>, String> {
    let cols = tile_columns(c)?;
    let mag = magnitude_column(c).map(|m| m.name.clone());
    let (ra, dec) = (
        c.ra_dec.0.clone().unwrap_or_default(),
        c.ra_dec.1.clone().unwrap_or_default(),
    );
    let select: Vec<String> = std::iter::once("_healpix_29".to_string())
        .chain(cols.iter().cloned())
        .map(|n| quote(&n))
        .collect();
    let adql = format!(
        "SELECT {} FROM {}.{}",
        select.join(", "),
        quote(&c.schema),
        quote(&c.table)
    );
    let result = svc
        .engine
        .query(&adql, &Limits::default())
        .await
        .map_err(|e| format!("reading {}: {e}", c.qualified_name()))?;
    let schema = result.schema();
    let (batches, _) = result
        .collect()
        .await
        .map_err(|e| format!("reading {}: {e}", c.qualified_name()))?;
    let (title, release_date) = match Catalog::open(&c.location).await {
        Ok(cat) => (
            cat.properties
                .get("obs_title")
                .or_else(|| cat.properties.get("obs_collection"))
                .map(str::to_string),
            cat.properties
                .get("hats_creation_date")
                .or_else(|| cat.properties.get("hats_release_date"))
                .and_then(hips_date),
        ),
        Err(_) => (None, None),
    };
    let name = c.qualified_name();
    let title = title.unwrap_or_else(|| name.clone());
    let release_date =
        release_date.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%MZ").to_string());
    let pos = |n: &str| cols.iter().position(|c| c == n).map(|i| i + 1);
    let (ra_i, dec_i, mag_i) = (pos(&ra), pos(&dec), mag.as_deref().and_then(pos));
    let (Some(ra_i), Some(dec_i)) = (ra_i, dec_i) else {
        return Err("position columns missing from the result".into());
    };
    let metadata_xml = metadata(&schema, &name, ra_i, dec_i);
    tokio::task::spawn_blocking(move || {
        assemble(
            name,
            title,
            release_date,
            schema,
            batches,
            (ra_i, dec_i, mag_i),
            mag,
            metadata_xml,
        )
    })
    .await
    .map_err(|e| format!("building the hierarchy: {e}"))?
    .map(Arc::new)
}

/// `2026-11-21T17:12UTC`, `2025-08-22` … → `YYYY-mm-ddTHH:MMZ`.
fn hips_date(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches("UTC").trim_end_matches('Z');
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M") {
        return Some(t.format("%Y-%m-%dT%H:%MZ").to_string());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.format("%Y-%m-%dT%H:%MZ").to_string());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%Y-%m-%dT00:00Z").to_string())
}

/// `Metadata.xml`: the tile columns as FIELDs; RA/Dec carry `pos.eq.ra;meta.main` and
/// `pos.eq.dec;meta.main` whatever the catalogue declares (Aladin finds positions by UCD).
fn metadata(schema: &SchemaRef, name: &str, ra_i: usize, dec_i: usize) -> String {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, f)| {
            let mut md = f.metadata().clone();
            if i == ra_i {
                md.insert("ucd".into(), "pos.eq.ra;meta.main".into());
            } else if i == dec_i {
                md.insert("ucd".into(), "pos.eq.dec;meta.main".into());
            }
            f.as_ref().clone().with_metadata(md)
        })
        .collect();
    crate::formats::votable::metadata_document(&Schema::new(fields), name)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    name: String,
    title: String,
    release_date: String,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    (ra_i, dec_i, mag_i): (usize, usize, Option<usize>),
    rank_column: Option<String>,
    metadata_xml: String,
) -> Result<Hierarchy, String> {
    let proj: Vec<usize> = (1..schema.fields().len()).collect();
    let tile_schema = Arc::new(schema.project(&proj).map_err(|e| e.to_string())?);
    let mut w =
        DelimitedWriter::new(Vec::new(), &tile_schema, Dialect::Tsv).map_err(|e| e.to_string())?;
    let mut hpx: Vec<u64> = Vec::new();
    let mut key: Vec<f64> = Vec::new();
    let mut sum = [0f64; 3];
    let mut points: Vec<[f64; 3]> = Vec::new();
    for b in &batches {
        let b = if b.column(0).null_count() > 0 {
            let mask = is_not_null(b.column(0)).map_err(|e| e.to_string())?;
            filter_record_batch(b, &mask).map_err(|e| e.to_string())?
        } else {
            b.clone()
        };
        let h = cast(b.column(0), &DataType::Int64).map_err(|e| e.to_string())?;
        let h = h
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("_healpix_29 is not an integer")?;
        hpx.extend(h.values().iter().map(|&v| v as u64));
        match mag_i {
            Some(i) => {
                let m = f64_column(&b, i)?;
                key.extend((0..m.len()).map(|j| {
                    let v = if m.is_null(j) { f64::NAN } else { m.value(j) };
                    if v.is_finite() { v } else { f64::INFINITY }
                }));
            }
            None => key.extend(std::iter::repeat_n(0.0, b.num_rows())),
        }
        let (ra, dec) = (f64_column(&b, ra_i)?, f64_column(&b, dec_i)?);
        for j in 0..b.num_rows() {
            if ra.is_null(j) || dec.is_null(j) {
                continue;
            }
            let (a, d) = (ra.value(j).to_radians(), dec.value(j).to_radians());
            let p = [d.cos() * a.cos(), d.cos() * a.sin(), d.sin()];
            if p.iter().all(|x| x.is_finite()) {
                for k in 0..3 {
                    sum[k] += p[k];
                }
                points.push(p);
            }
        }
        w.write_batch(&b.project(&proj).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let text = Box::new(w).finish(false).map_err(|e| e.to_string())?;
    let header_end = text
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| p + 1)
        .ok_or("no TSV header")?;
    let header = String::from_utf8_lossy(&text[..header_end]).into_owned();
    let text = text[header_end..].to_vec();
    let mut offsets = Vec::with_capacity(hpx.len() + 1);
    offsets.push(0);
    offsets.extend(
        text.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let n = hpx.len();
    if offsets.len() != n + 1 {
        return Err(format!(
            "{} TSV lines for {n} rows",
            offsets.len().saturating_sub(1)
        ));
    }
    if n > u32::MAX as usize {
        return Err("too many rows".into());
    }
    // Rank: brightest first (NULL/NaN last), ties and catalogues without a magnitude in a
    // stable pseudo-random order (a hash of the HEALPix index), then by row.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        key[a]
            .total_cmp(&key[b])
            .then(splitmix(hpx[a]).cmp(&splitmix(hpx[b])))
            .then(a.cmp(&b))
    });
    let mut rank = vec![0u32; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    // Assignment: shallowest order whose tile still has room.
    let mut counts: HashMap<(u8, u64), u32> = HashMap::new();
    let mut per_order: Vec<Vec<(u64, u32)>> = vec![Vec::new(); usize::from(MAX_ORDER) + 1];
    for &i in &order {
        let h = hpx[i as usize];
        for k in 1..=MAX_ORDER {
            let c = counts
                .entry((k, h >> (2 * (29 - u32::from(k)))))
                .or_insert(0);
            if *c < quota(k) || k == MAX_ORDER {
                *c += 1;
                per_order[usize::from(k)].push((h, i));
                break;
            }
        }
    }
    drop(counts);
    for v in &mut per_order {
        v.sort_unstable();
    }
    let max_order = (1..=MAX_ORDER)
        .rev()
        .find(|&k| !per_order[usize::from(k)].is_empty())
        .unwrap_or(1);
    per_order.truncate(usize::from(max_order) + 1);
    let mut all = hpx;
    all.sort_unstable();
    let moc_order = max_order.max(3);
    let shift = 2 * (29 - u32::from(moc_order));
    let mut cells: Vec<u64> = all.iter().map(|&h| h >> shift).collect();
    cells.dedup();
    let moc = super::moc::normalise(moc_order, cells);
    let initial = initial_view(&sum, &points, super::moc::sky_fraction(&moc));
    Ok(Hierarchy {
        name,
        title,
        release_date,
        header,
        text,
        offsets,
        rank,
        per_order,
        all,
        max_order,
        moc,
        moc_order,
        initial,
        metadata_xml,
        rank_column,
    })
}

/// Centre and field of view: the mean direction of the rows and twice the largest distance
/// from it; the whole sky (0, 0, 180) for catalogues covering much of it.
fn initial_view(sum: &[f64; 3], points: &[[f64; 3]], fraction: f64) -> (f64, f64, f64) {
    let norm = (sum[0] * sum[0] + sum[1] * sum[1] + sum[2] * sum[2]).sqrt();
    if points.is_empty() || fraction > 0.25 || norm < 0.5 * points.len() as f64 {
        return (0.0, 0.0, 180.0);
    }
    let c = [sum[0] / norm, sum[1] / norm, sum[2] / norm];
    let min_cos = points
        .iter()
        .map(|p| p[0] * c[0] + p[1] * c[1] + p[2] * c[2])
        .fold(1.0f64, f64::min);
    let fov = (2.0 * min_cos.clamp(-1.0, 1.0).acos().to_degrees()).clamp(0.01, 180.0);
    let ra = c[1].atan2(c[0]).to_degrees().rem_euclid(360.0);
    let dec = c[2].clamp(-1.0, 1.0).asin().to_degrees();
    (ra, dec, fov)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            hips_date("2026-11-21T17:12UTC").as_deref(),
            Some("2026-11-21T17:12Z")
        );
        assert_eq!(
            hips_date("2025-08-22").as_deref(),
            Some("2025-08-22T00:00Z")
        );
        assert_eq!(hips_date("soon"), None);
    }

    #[test]
    fn quotas() {
        assert_eq!(quota(1) * 48, 2880);
        assert_eq!(quota(2) * 192, 8640);
        assert_eq!(quota(5), 100);
    }
}
