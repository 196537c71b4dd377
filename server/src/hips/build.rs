//! Building a catalogue's HiPS tile store ([`super::store`]) from its HATS partitions, in two
//! passes of at most two partitions in memory at a time, so a 100-million-row catalogue costs
//! no more memory than its largest partition.
//!
//! 1. **Ranks and candidates.** Each partition's `_healpix_29`, RA, Dec and ranking column are
//!    read; its rows are ranked, and its best rows that may belong above its own order are kept
//!    as candidates ([`super::assign`]); also its coverage and the sum of its directions.
//! 2. **Upper orders.** The candidates of all partitions are placed at the orders above their
//!    partitions.
//! 3. **Tiles.** Each partition's tile columns are read and rendered as TSV once; its rows are
//!    placed at its own order and deeper; those tiles are compressed into the store with their
//!    `Completeness` counts, and the lines of its candidates placed above are kept for step 4.
//! 4. The upper tiles, the order-0 records, `Moc.fits` and `meta.json` are written, and the
//!    store is published by a rename.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use futures::{StreamExt, TryStreamExt};
use tessera_engine::{Catalog, CatalogInfo, ColumnInfo, Pixel};

use super::assign::{self, RankKey, cell};
use super::store::{self, StoreMeta, StoreWriter, TileRecord};
use crate::formats::ResultWriter;
use crate::formats::csv::{DelimitedWriter, Dialect};

/// Partitions in work at once (each pass): one per core, each a task of its own (reading
/// and decoding included), so that a build uses every core.
fn in_flight() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// Deepest order of the coverage kept while reading (the MOC's order is at most this).
const MOC_MAX_ORDER: u8 = 10;

/// zstd level of the tile frames.
const ZSTD_LEVEL: i32 = 1;

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

/// What a catalogue's HiPS is made of.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// `schema.table`.
    pub(crate) name: String,
    /// The tile columns: identifier, RA, Dec, the ranking magnitude, then the principal
    /// columns in catalogue order.
    pub(crate) columns: Vec<String>,
    pub(crate) ra: String,
    pub(crate) dec: String,
    pub(crate) rank: Option<String>,
}

impl Source {
    /// The tile columns of `c`, ranked by `rank` when given (a numeric column), else by
    /// [`magnitude_column`].
    pub(crate) fn of(c: &CatalogInfo, rank: Option<&str>) -> Result<Source, String> {
        let (Some(ra), Some(dec)) = (c.ra_dec.0.as_deref(), c.ra_dec.1.as_deref()) else {
            return Err(format!(
                "catalog {} declares no position columns: no HiPS",
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
        let rank = match rank {
            Some(r) => {
                let col = c.columns.iter().find(|col| col.name == r).ok_or_else(|| {
                    format!(
                        "no column {r} in {} to rank the HiPS rows by",
                        c.qualified_name()
                    )
                })?;
                if !col.arrow_type.is_numeric() {
                    return Err(format!(
                        "column {r} of {} is not numeric: it cannot rank the HiPS rows",
                        c.qualified_name()
                    ));
                }
                Some(r.to_string())
            }
            None => magnitude_column(c).map(|m| m.name.clone()),
        };
        if let Some(m) = &rank {
            add(m);
        }
        for col in c.columns.iter().filter(|col| col.meta.principal) {
            add(&col.name);
        }
        Ok(Source {
            name: c.qualified_name(),
            columns: cols,
            ra: ra.to_string(),
            dec: dec.to_string(),
            rank,
        })
    }

    /// The fingerprint of the catalogue version: a store built from another version is not
    /// served. (The ranking column is not part of it: a store built with `--hips-rank` is
    /// served as it is.)
    pub(crate) fn fingerprint(&self, cat: &Catalog) -> String {
        let mut parts: Vec<String> = vec![cat.location.url.clone()];
        let mut props: Vec<String> = cat
            .properties
            .entries()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        props.sort();
        parts.extend(props);
        parts.extend(
            cat.partitions
                .iter()
                .map(|p| format!("{}/{}", p.order, p.npix)),
        );
        store::fingerprint(parts.iter().map(String::as_str))
    }
}

/// What step 1 keeps of a partition.
#[derive(Debug)]
struct Ranked {
    nrows: u64,
    candidates: Vec<RankKey>,
    moc_cells: Vec<u64>,
    sum: [f64; 3],
    points: u64,
}

/// What step 3 returns of a partition.
#[derive(Debug)]
struct Tiled {
    tiles: Vec<(TileRecord, Vec<u8>)>,
    /// Lines of the rows placed above the partition, by (partition, row).
    upper_lines: Vec<((u32, u32), Vec<u8>)>,
    header: String,
    deepest: u8,
    min_cos: f64,
}

fn f64_column(b: &RecordBatch, i: usize) -> Result<Float64Array, String> {
    let a = cast(b.column(i), &DataType::Float64).map_err(|e| e.to_string())?;
    a.as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .ok_or_else(|| "not a float column".to_string())
}

/// `_healpix_29` (column 0) and the ranking values (column `rank_i`, +∞ for NULL/NaN; 0 for
/// every row without a ranking column) of a partition's batches.
fn keys(
    batches: &[RecordBatch],
    rank_i: Option<usize>,
    leaf: &str,
) -> Result<(Vec<u64>, Vec<f64>), String> {
    let mut hpx = Vec::new();
    let mut key = Vec::new();
    for b in batches {
        let h = cast(b.column(0), &DataType::Int64).map_err(|e| format!("{leaf}: {e}"))?;
        let h = h
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| format!("{leaf}: _healpix_29 is not an integer"))?;
        if h.null_count() > 0 {
            return Err(format!("{leaf}: a row without _healpix_29"));
        }
        hpx.extend(h.values().iter().map(|&v| v as u64));
        match rank_i {
            Some(i) => {
                let m = f64_column(b, i).map_err(|e| format!("{leaf}: {e}"))?;
                key.extend((0..m.len()).map(|j| {
                    let v = if m.is_null(j) { f64::NAN } else { m.value(j) };
                    if v.is_finite() { v } else { f64::INFINITY }
                }));
            }
            None => key.extend(std::iter::repeat_n(0.0, b.num_rows())),
        }
    }
    if hpx.len() > u32::MAX as usize {
        return Err(format!("{leaf}: over 2^32 rows in one partition"));
    }
    Ok((hpx, key))
}

fn unit(ra: f64, dec: f64) -> Option<[f64; 3]> {
    let (a, d) = (ra.to_radians(), dec.to_radians());
    let p = [d.cos() * a.cos(), d.cos() * a.sin(), d.sin()];
    p.iter().all(|x| x.is_finite()).then_some(p)
}

/// Step 1 for one partition (columns: `_healpix_29`, RA, Dec, [rank]).
fn rank_partition(
    part: u32,
    pixel: Pixel,
    batches: &[RecordBatch],
    has_rank: bool,
    leaf: &str,
) -> Result<Ranked, String> {
    let (hpx, key) = keys(batches, has_rank.then_some(3), leaf)?;
    let local = assign::local_order(&hpx, &key);
    let candidates = assign::candidates(pixel.order, part, &hpx, &key, &local);
    let mut moc_cells: Vec<u64> = hpx.iter().map(|&h| cell(h, MOC_MAX_ORDER)).collect();
    moc_cells.sort_unstable();
    moc_cells.dedup();
    let mut sum = [0f64; 3];
    let mut points = 0;
    for b in batches {
        let (ra, dec) = (f64_column(b, 1)?, f64_column(b, 2)?);
        for j in 0..b.num_rows() {
            if ra.is_null(j) || dec.is_null(j) {
                continue;
            }
            if let Some(p) = unit(ra.value(j), dec.value(j)) {
                for (s, x) in sum.iter_mut().zip(p) {
                    *s += x;
                }
                points += 1;
            }
        }
    }
    Ok(Ranked {
        nrows: hpx.len() as u64,
        candidates,
        moc_cells,
        sum,
        points,
    })
}

/// Number of values of the sorted `v` in `[lo, hi)`.
fn count(v: &[u64], lo: u64, hi: u64) -> u64 {
    (v.partition_point(|&h| h < hi) - v.partition_point(|&h| h < lo)) as u64
}

fn cell_range(order: u8, n: u64) -> (u64, u64) {
    let s = 2 * (29 - u32::from(order));
    (n << s, (n + 1) << s)
}

fn compressor() -> Result<zstd::bulk::Compressor<'static>, String> {
    zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| format!("zstd: {e}"))
}

fn compress(z: &mut zstd::bulk::Compressor<'static>, text: &[u8]) -> Result<Vec<u8>, String> {
    z.compress(text)
        .map_err(|e| format!("compressing a tile: {e}"))
}

/// Step 3 for one partition (columns: `_healpix_29`, then the tile columns).
#[allow(clippy::too_many_arguments)]
fn tile_partition(
    part: u32,
    pixel: Pixel,
    deepest: u8,
    batches: &[RecordBatch],
    rank_i: Option<usize>,
    (ra_i, dec_i): (usize, usize),
    upper_rows: &[(u32, u8)],
    centre: Option<[f64; 3]>,
    leaf: &str,
) -> Result<Tiled, String> {
    let (hpx, key) = keys(batches, rank_i, leaf)?;
    let n = hpx.len();
    let local = assign::local_order(&hpx, &key);
    let mut upper = vec![0u8; n];
    for &(r, k) in upper_rows {
        if let Some(u) = upper.get_mut(r as usize) {
            *u = k;
        }
    }
    let levels = assign::place_local(pixel.order, deepest, &hpx, &local, upper);
    // TSV lines of every row.
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| format!("{leaf}: no rows"))?;
    let proj: Vec<usize> = (1..schema.fields().len()).collect();
    let tile_schema = Arc::new(schema.project(&proj).map_err(|e| e.to_string())?);
    let mut w =
        DelimitedWriter::new(Vec::new(), &tile_schema, Dialect::Tsv).map_err(|e| e.to_string())?;
    let mut min_cos = 1.0f64;
    for b in batches {
        w.write_batch(&b.project(&proj).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if let Some(c) = centre {
            let (ra, dec) = (f64_column(b, ra_i)?, f64_column(b, dec_i)?);
            for j in 0..b.num_rows() {
                if ra.is_null(j) || dec.is_null(j) {
                    continue;
                }
                if let Some(p) = unit(ra.value(j), dec.value(j)) {
                    min_cos = min_cos.min(p[0] * c[0] + p[1] * c[1] + p[2] * c[2]);
                }
            }
        }
    }
    let text = Box::new(w).finish(false).map_err(|e| e.to_string())?;
    let header_end = text
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| p + 1)
        .ok_or("no TSV header")?;
    let header = String::from_utf8_lossy(&text[..header_end]).into_owned();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(header_end);
    offsets.extend(
        text[header_end..]
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| header_end + i + 1),
    );
    if offsets.len() != n + 1 {
        return Err(format!(
            "{leaf}: {} TSV lines for {n} rows",
            offsets.len().saturating_sub(1)
        ));
    }
    let line = |r: usize| &text[offsets[r]..offsets[r + 1]];
    // Completeness counts: every row's position, and the rows placed at each order.
    let mut all = hpx.clone();
    all.sort_unstable();
    let deepest_here = levels.iter().copied().max().unwrap_or(0);
    let mut per_level: Vec<Vec<u64>> = vec![Vec::new(); usize::from(deepest_here) + 1];
    for (r, &k) in levels.iter().enumerate() {
        per_level[usize::from(k)].push(hpx[r]);
    }
    for v in &mut per_level {
        v.sort_unstable();
    }
    // Local tiles: rows at the partition's order and deeper, grouped by tile, in rank order.
    let first = pixel.order.max(1);
    let mut rows: Vec<(u8, u64, u32, u32)> = Vec::new();
    let mut upper_lines = Vec::new();
    for (pos, &r) in local.iter().enumerate() {
        let k = levels[r as usize];
        if k >= first {
            rows.push((k, cell(hpx[r as usize], k), pos as u32, r));
        } else {
            upper_lines.push(((part, r), line(r as usize).to_vec()));
        }
    }
    rows.sort_unstable();
    let mut tiles = Vec::new();
    let mut z = compressor()?;
    if pixel.order == 0 {
        tiles.push((
            TileRecord {
                nuniq: 4 + pixel.npix,
                offset: 0,
                clen: 0,
                ulen: 0,
                nrows: 0,
                loaded: 0,
                total: n as u64,
            },
            Vec::new(),
        ));
    }
    let mut i = 0;
    while i < rows.len() {
        let (k, c) = (rows[i].0, rows[i].1);
        let mut j = i;
        let mut body = Vec::new();
        while j < rows.len() && rows[j].0 == k && rows[j].1 == c {
            body.extend_from_slice(line(rows[j].3 as usize));
            j += 1;
        }
        let (lo, hi) = cell_range(k, c);
        let loaded: u64 = per_level
            .iter()
            .take(usize::from(k) + 1)
            .map(|v| count(v, lo, hi))
            .sum();
        tiles.push((
            TileRecord {
                nuniq: (4u64 << (2 * u32::from(k))) + c,
                offset: 0,
                clen: 0,
                ulen: u32::try_from(body.len()).map_err(|_| "tile over 4 GiB".to_string())?,
                nrows: (j - i) as u32,
                loaded,
                total: count(&all, lo, hi),
            },
            compress(&mut z, &body)?,
        ));
        i = j;
    }
    Ok(Tiled {
        tiles,
        upper_lines,
        header,
        deepest: deepest_here,
        min_cos,
    })
}

/// Centre and field of view: the mean direction of the rows and twice the largest distance
/// from it; the whole sky (0, 0, 180) for catalogues covering much of it.
fn initial_view(sum: &[f64; 3], points: u64, min_cos: f64, fraction: f64) -> (f64, f64, f64) {
    let norm = (sum[0] * sum[0] + sum[1] * sum[1] + sum[2] * sum[2]).sqrt();
    if points == 0 || fraction > 0.25 || norm < 0.5 * points as f64 {
        return (0.0, 0.0, 180.0);
    }
    let c = [sum[0] / norm, sum[1] / norm, sum[2] / norm];
    let fov = (2.0 * min_cos.clamp(-1.0, 1.0).acos().to_degrees()).clamp(0.01, 180.0);
    let ra = c[1].atan2(c[0]).to_degrees().rem_euclid(360.0);
    let dec = c[2].clamp(-1.0, 1.0).asin().to_degrees();
    (ra, dec, fov)
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

/// `Metadata.xml`: the tile columns as FIELDs (with the catalogue's units, UCDs and
/// descriptions); RA/Dec carry `pos.eq.ra;meta.main` and `pos.eq.dec;meta.main` whatever the
/// catalogue declares (Aladin finds positions by UCD).
fn metadata(cat: &Catalog, src: &Source) -> Result<String, String> {
    let fields: Vec<Field> = src
        .columns
        .iter()
        .map(|n| {
            let f = cat
                .schema
                .field_with_name(n)
                .map_err(|_| format!("no column {n} in {}", src.name))?;
            let mut md = f.metadata().clone();
            if *n == src.ra {
                md.insert("ucd".into(), "pos.eq.ra;meta.main".into());
            } else if *n == src.dec {
                md.insert("ucd".into(), "pos.eq.dec;meta.main".into());
            }
            Ok(f.clone().with_metadata(md))
        })
        .collect::<Result<_, String>>()?;
    Ok(crate::formats::votable::metadata_document(
        &Schema::new(fields),
        &src.name,
    ))
}

async fn read(
    cat: &Catalog,
    pixel: Pixel,
    cols: &[String],
) -> Result<(Vec<RecordBatch>, String), String> {
    let leaf = format!("{}/{}", cat.location.url, pixel.leaf_path());
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    let batches = cat
        .read_partition(pixel, Some(&cols))
        .await
        .map_err(|e| format!("reading {leaf}: {e}"))?;
    let batches = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    Ok((batches, leaf))
}

/// Runs `f` as a task of its own (on a worker thread, in parallel with the others).
async fn spawned<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    tokio::spawn(f)
        .await
        .map_err(|e| format!("HiPS build task: {e}"))?
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("HiPS build task: {e}"))?
}

/// What a build did.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) rows: u64,
    pub(crate) tiles: u64,
    pub(crate) max_order: u8,
    pub(crate) bytes: u64,
}

/// Builds the tile store of catalogue `c` into `dir` (replacing what is there once complete).
pub(crate) async fn build(
    c: &CatalogInfo,
    rank: Option<&str>,
    dir: &Path,
) -> Result<Summary, String> {
    let src = Source::of(c, rank)?;
    let cat = Catalog::open(&c.location)
        .await
        .map_err(|e| format!("opening {}: {e}", c.location.url))?;
    let fingerprint = src.fingerprint(&cat);
    let pixels: Vec<Pixel> = cat.partitions.clone();
    let part_order: Vec<u8> = pixels.iter().map(|p| p.order).collect();
    let deepest = assign::max_order(part_order.iter().copied().max().unwrap_or(0));
    let has_rank = src.rank.is_some();

    // Step 1.
    let mut cols1: Vec<&str> = vec!["_healpix_29", &src.ra, &src.dec];
    if let Some(r) = &src.rank {
        cols1.push(r);
    }
    let cat = Arc::new(cat);
    let cols1: Arc<Vec<String>> = Arc::new(cols1.iter().map(|s| s.to_string()).collect());
    let ranked: Vec<Ranked> = futures::stream::iter(pixels.iter().copied().enumerate())
        .map(|(i, pixel)| {
            let (cat, cols1) = (cat.clone(), cols1.clone());
            spawned(async move {
                let (batches, leaf) = read(&cat, pixel, &cols1).await?;
                blocking(move || rank_partition(i as u32, pixel, &batches, has_rank, &leaf)).await
            })
        })
        .buffered(in_flight())
        .try_collect()
        .await?;
    let nrows: Vec<u64> = ranked.iter().map(|r| r.nrows).collect();
    let total_rows: u64 = nrows.iter().sum();
    let mut sum = [0f64; 3];
    let mut points = 0;
    let mut moc_cells = Vec::new();
    let mut cands = Vec::new();
    for r in ranked {
        for (s, x) in sum.iter_mut().zip(r.sum) {
            *s += x;
        }
        points += r.points;
        moc_cells.extend(r.moc_cells);
        cands.extend(r.candidates);
    }
    let norm = (sum[0] * sum[0] + sum[1] * sum[1] + sum[2] * sum[2]).sqrt();
    let centre = (norm > 0.0).then(|| [sum[0] / norm, sum[1] / norm, sum[2] / norm]);

    // Step 2.
    let placed = blocking({
        let part_order = part_order.clone();
        move || Ok(assign::place_upper(cands, &part_order))
    })
    .await?;
    let mut upper_by_part: Vec<Vec<(u32, u8)>> = vec![Vec::new(); pixels.len()];
    for (c, k) in &placed {
        upper_by_part[c.part as usize].push((c.row, *k));
    }

    // Step 3.
    let tmp = dir.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    let result = async {
        let mut writer = StoreWriter::create(&tmp)?;
        let mut cols3: Vec<String> = vec!["_healpix_29".to_string()];
        cols3.extend(src.columns.iter().cloned());
        let cols3 = Arc::new(cols3);
        let pos = |n: &str| src.columns.iter().position(|c| c == n).map(|i| i + 1);
        let rank_i = src.rank.as_deref().and_then(pos);
        let (Some(ra_i), Some(dec_i)) = (pos(&src.ra), pos(&src.dec)) else {
            return Err("position columns missing from the tile columns".to_string());
        };
        let mut stream = futures::stream::iter(pixels.iter().copied().enumerate())
            .map(|(i, pixel)| {
                let (cat, cols3) = (cat.clone(), cols3.clone());
                let upper = std::mem::take(&mut upper_by_part[i]);
                spawned(async move {
                    let (batches, leaf) = read(&cat, pixel, &cols3).await?;
                    blocking(move || {
                        tile_partition(
                            i as u32,
                            pixel,
                            deepest,
                            &batches,
                            rank_i,
                            (ra_i, dec_i),
                            &upper,
                            centre,
                            &leaf,
                        )
                    })
                    .await
                })
            })
            .buffered(in_flight());
        let mut header = None;
        let mut max_order = 0u8;
        let mut min_cos = 1.0f64;
        let mut upper_lines: HashMap<(u32, u32), Vec<u8>> = HashMap::new();
        let mut tiles = 0u64;
        while let Some(t) = stream.next().await {
            let t = t?;
            header.get_or_insert(t.header);
            max_order = max_order.max(t.deepest);
            min_cos = min_cos.min(t.min_cos);
            upper_lines.extend(t.upper_lines);
            for (rec, frame) in t.tiles {
                tiles += u64::from(rec.nrows > 0);
                writer.add(rec, &frame)?;
            }
        }
        drop(stream);

        // Step 4: tiles above the partitions.
        let mut upper: Vec<(u8, u64, RankKey)> =
            placed.iter().map(|&(c, k)| (k, cell(c.h, k), c)).collect();
        upper.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.cmp(&b.2)));
        let mut per_level: Vec<Vec<u64>> = vec![Vec::new(); usize::from(deepest) + 1];
        for &(k, _, c) in &upper {
            per_level[usize::from(k)].push(c.h);
        }
        for v in &mut per_level {
            v.sort_unstable();
        }
        // Rows of the partitions inside a cell of order k above them.
        let rows_inside = |k: u8, n: u64| -> u64 {
            pixels
                .iter()
                .zip(&nrows)
                .filter(|(p, _)| p.order > k && p.npix >> (2 * u32::from(p.order - k)) == n)
                .map(|(_, &r)| r)
                .sum()
        };
        let mut z = compressor()?;
        let mut i = 0;
        while i < upper.len() {
            let (k, c) = (upper[i].0, upper[i].1);
            let mut j = i;
            let mut body = Vec::new();
            while j < upper.len() && upper[j].0 == k && upper[j].1 == c {
                let key = (upper[j].2.part, upper[j].2.row);
                let line = upper_lines
                    .get(&key)
                    .ok_or_else(|| format!("no line for row {key:?}"))?;
                body.extend_from_slice(line);
                j += 1;
            }
            let (lo, hi) = cell_range(k, c);
            let loaded: u64 = per_level
                .iter()
                .take(usize::from(k) + 1)
                .map(|v| count(v, lo, hi))
                .sum();
            writer.add(
                TileRecord {
                    nuniq: (4u64 << (2 * u32::from(k))) + c,
                    offset: 0,
                    clen: 0,
                    ulen: u32::try_from(body.len()).map_err(|_| "tile over 4 GiB".to_string())?,
                    nrows: (j - i) as u32,
                    loaded,
                    total: rows_inside(k, c),
                },
                &compress(&mut z, &body)?,
            )?;
            tiles += 1;
            max_order = max_order.max(k);
            i = j;
        }
        // Order-0 cells made of deeper partitions.
        for base in 0..12u64 {
            if pixels.iter().any(|p| p.order == 0 && p.npix == base) {
                continue;
            }
            let total = rows_inside(0, base);
            if total > 0 {
                let rec = TileRecord {
                    nuniq: 4 + base,
                    offset: 0,
                    clen: 0,
                    ulen: 0,
                    nrows: 0,
                    loaded: 0,
                    total,
                };
                writer.add(rec, &[])?;
            }
        }

        // Coverage, view, metadata.
        let moc_order = max_order.clamp(3, MOC_MAX_ORDER);
        let shift = 2 * u32::from(MOC_MAX_ORDER - moc_order);
        let cells: Vec<u64> = moc_cells.iter().map(|&h| h >> shift).collect();
        let moc = super::moc::normalise(moc_order, cells);
        let sky_fraction = super::moc::sky_fraction(&moc);
        let title = cat
            .properties
            .get("obs_title")
            .or_else(|| cat.properties.get("obs_collection"))
            .map(str::to_string)
            .unwrap_or_else(|| src.name.clone());
        let release_date = cat
            .properties
            .get("hats_creation_date")
            .or_else(|| cat.properties.get("hats_release_date"))
            .and_then(hips_date)
            .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%MZ").to_string());
        let header = header.unwrap_or_else(|| format!("{}\n", src.columns.join("\t")));
        let meta = StoreMeta {
            fingerprint,
            name: src.name.clone(),
            title,
            release_date,
            header,
            metadata_xml: metadata(&cat, &src)?,
            rank_column: src.rank.clone(),
            rows: total_rows,
            max_order: max_order.max(1),
            moc_order,
            sky_fraction,
            initial: initial_view(&sum, points, min_cos, sky_fraction),
            tiles_per_order: Vec::new(),
        };
        let bytes = writer.bytes();
        writer.finish(meta, &super::moc::fits(moc_order, &moc))?;
        store::publish(&tmp, dir)?;
        Ok(Summary {
            rows: total_rows,
            tiles,
            max_order,
            bytes,
        })
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
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
}
