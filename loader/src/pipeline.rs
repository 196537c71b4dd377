//! The load pipeline: pass 1 builds the HEALPix histogram from the RA/Dec columns, the planner
//! picks partitions, pass 2 scatters full rows to per-partition buffers (spilled to Arrow IPC
//! files when they outgrow the memory budget), then each partition is sorted and written in
//! parallel on rayon, and the catalog is published atomically.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;
use tessera_storage::columns::{ColumnMeta, UCD, UNIT};
use tessera_storage::healpix::{hash29_unchecked, pixel_at};
use tessera_storage::{
    CatalogBuilder, HEALPIX_COLUMN, LeafSettings, Location, Pixel, Properties, Skymap, StoreOptions,
};

use crate::error::{Error, Result};
use crate::plan::{PlanSettings, plan_partitions};
use crate::progress::Progress;
use crate::source::{BadRow, BadRows, Format, ReadOptions, RowLoc, RowSource, SourceBatch, open};

/// Everything a load needs. Field docs double as the CLI help.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Input files, all with the same columns.
    pub inputs: Vec<PathBuf>,
    /// Target catalog location (path, `file://`, `s3://`, `memory://`).
    pub catalog: String,
    /// Object-store settings for `s3://` targets.
    pub store: StoreOptions,
    /// Input format; guessed from the file name when `None`.
    pub format: Option<Format>,
    /// RA column; found by UCD or common names when `None`.
    pub ra: Option<String>,
    /// Dec column; found by UCD or common names when `None`.
    pub dec: Option<String>,
    /// Partitioning rules.
    pub plan: PlanSettings,
    /// Mapping order (`highest_healpix_order`): histogram and skymap order, deepest partition.
    pub highest_order: u8,
    /// Memory budget in bytes for buffers, sorting and writing.
    pub memory_limit: u64,
    /// Malformed rows to skip (and report) before failing.
    pub skip_bad_rows: u64,
    /// Parquet settings.
    pub leaf: LeafSettings,
    /// Reader options (column types, delimiter, ReadMe); `bad_rows` is set by the loader.
    pub read: ReadOptions,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Scratch directory for spill files (default: the system temp directory).
    pub scratch: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            inputs: Vec::new(),
            catalog: String::new(),
            store: StoreOptions::default(),
            format: None,
            ra: None,
            dec: None,
            plan: PlanSettings {
                threshold: 1_000_000,
                lowest_order: 0,
                drop_empty_siblings: true,
            },
            highest_order: 10,
            memory_limit: 2 << 30,
            skip_bad_rows: 0,
            leaf: LeafSettings::default(),
            read: ReadOptions::default(),
            progress: false,
            scratch: None,
        }
    }
}

/// What a load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Rows written.
    pub rows: u64,
    /// Partitions written.
    pub partitions: usize,
    /// Deepest partition order.
    pub max_order: u8,
    /// Rows skipped as malformed.
    pub bad_rows: Vec<BadRow>,
    /// Seconds spent in pass 1 (histogram), pass 2 (scatter), writing, publishing.
    pub seconds: [f64; 4],
    /// Bytes spilled to scratch files.
    pub spilled_bytes: u64,
    /// Partitions too large to sort in memory, merged from sorted runs.
    pub merged_partitions: usize,
    /// The RA/Dec columns used (in degrees).
    pub ra_dec: (String, String),
}

/// How to get RA/Dec in degrees from the input.
#[derive(Debug, Clone)]
struct Coord {
    /// Input column name.
    input: String,
    /// Multiply input values by this to get degrees.
    to_deg: f64,
    /// Name of the degree column in the catalog (the input column itself when `to_deg == 1`).
    output: String,
}

const RA_NAMES: &[&str] = &[
    "ra", "ra_deg", "radeg", "raj2000", "ra_icrs", "ra2000", "_raj2000", "alpha", "ra_j2000",
    "rarad", "ra_rad",
];
const DEC_NAMES: &[&str] = &[
    "dec",
    "dec_deg",
    "decdeg",
    "dedeg",
    "dej2000",
    "decj2000",
    "de_icrs",
    "dec_icrs",
    "dec2000",
    "_dej2000",
    "decl",
    "de",
    "delta",
    "dec_j2000",
    "derad",
    "decrad",
    "dec_rad",
];

fn unit_factor(unit: Option<&str>, name: &str, hours_ok: bool) -> Result<f64> {
    let u = unit.map(|u| u.trim().to_ascii_lowercase());
    let lname = name.to_ascii_lowercase();
    Ok(match u.as_deref() {
        None | Some("") | Some("deg") | Some("degree") | Some("degrees") | Some("---") => {
            if lname.ends_with("rad") && u.is_none() {
                std::f64::consts::PI.recip() * 180.0
            } else {
                1.0
            }
        }
        Some("rad") | Some("radian") | Some("radians") => 180.0 / std::f64::consts::PI,
        Some("h") | Some("hour") | Some("hours") | Some("hr") if hours_ok => 15.0,
        Some("arcmin") => 1.0 / 60.0,
        Some("arcsec") => 1.0 / 3600.0,
        Some(other) => {
            return Err(Error::Usage(format!(
                "column `{name}` has unit `{other}`, which is not an angle Tessera can convert to degrees"
            )));
        }
    })
}

fn find_coord(schema: &Schema, given: Option<&str>, is_ra: bool) -> Result<Coord> {
    let what = if is_ra { "RA" } else { "Dec" };
    let field = match given {
        Some(name) => schema.field_with_name(name).map_err(|_| {
            Error::Usage(format!(
                "--{} {name}: no such column (columns: {})",
                what.to_ascii_lowercase(),
                names(schema)
            ))
        })?,
        None => {
            let ucd_main = if is_ra {
                "pos.eq.ra;meta.main"
            } else {
                "pos.eq.dec;meta.main"
            };
            let ucd = if is_ra { "pos.eq.ra" } else { "pos.eq.dec" };
            let by_ucd = |exact: bool| {
                schema.fields().iter().find(|f| {
                    f.metadata().get(UCD).is_some_and(|u| {
                        let u = u.to_ascii_lowercase();
                        if exact {
                            u == ucd_main
                        } else {
                            u.split(';').next() == Some(ucd)
                        }
                    })
                })
            };
            let list = if is_ra { RA_NAMES } else { DEC_NAMES };
            let by_name = || {
                list.iter().find_map(|n| {
                    schema
                        .fields()
                        .iter()
                        .find(|f| f.name().eq_ignore_ascii_case(n))
                })
            };
            by_ucd(true)
                .or_else(|| by_ucd(false))
                .or_else(by_name)
                .map(|f| f.as_ref())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "cannot find the {what} column by UCD or name; pass --{} (columns: {})",
                        what.to_ascii_lowercase(),
                        names(schema)
                    ))
                })?
        }
    };
    if !field.data_type().is_numeric() {
        return Err(Error::Usage(format!(
            "{what} column `{}` is {}, not a number",
            field.name(),
            field.data_type()
        )));
    }
    let to_deg = unit_factor(
        field.metadata().get(UNIT).map(String::as_str),
        field.name(),
        is_ra,
    )?;
    let output = if to_deg == 1.0 {
        field.name().clone()
    } else {
        let base = if is_ra { "ra" } else { "dec" };
        let mut out = base.to_string();
        let mut i = 1;
        while schema.field_with_name(&out).is_ok() {
            out = format!(
                "{base}_deg{}",
                if i > 1 { i.to_string() } else { String::new() }
            );
            i += 1;
        }
        out
    };
    Ok(Coord {
        input: field.name().clone(),
        to_deg,
        output,
    })
}

fn names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns dropped from inputs because the loader recomputes them.
const DROPPED: &[&str] = &[HEALPIX_COLUMN, "Norder", "Dir", "Npix", "_hipscat_index"];

/// The catalog schema: `_healpix_29`, the input columns, then added degree columns.
fn catalog_schema(input: &Schema, ra: &Coord, dec: &Coord) -> SchemaRef {
    let mut fields: Vec<Field> = vec![
        ColumnMeta {
            ucd: Some("pos.healpix".into()),
            description: Some("HEALPix NESTED index at order 29 of (RA, Dec)".into()),
            ..Default::default()
        }
        .apply(Field::new(HEALPIX_COLUMN, DataType::Int64, false)),
    ];
    for f in input.fields() {
        if DROPPED.contains(&f.name().as_str()) {
            continue;
        }
        let mut f = f.as_ref().clone();
        // Give the position columns their UCDs when the input had none.
        for (c, ucd) in [(ra, "pos.eq.ra;meta.main"), (dec, "pos.eq.dec;meta.main")] {
            if c.to_deg == 1.0 && f.name() == &c.input && !f.metadata().contains_key(UCD) {
                let mut m = f.metadata().clone();
                m.insert(UCD.into(), ucd.into());
                m.entry(UNIT.into()).or_insert_with(|| "deg".into());
                f = f.with_metadata(m);
            }
        }
        fields.push(f);
    }
    for (c, ucd, what) in [
        (ra, "pos.eq.ra;meta.main", "Right ascension"),
        (dec, "pos.eq.dec;meta.main", "Declination"),
    ] {
        if c.to_deg != 1.0 {
            fields.push(
                ColumnMeta {
                    unit: Some("deg".into()),
                    ucd: Some(ucd.into()),
                    description: Some(format!("{what} in degrees, converted from `{}`", c.input)),
                    ..Default::default()
                }
                .apply(Field::new(&c.output, DataType::Float64, false)),
            );
        }
    }
    Arc::new(Schema::new(fields))
}

/// Positions of one batch in degrees, with a validity check.
struct Positions {
    ra: Vec<f64>,
    dec: Vec<f64>,
}

fn positions(
    batch: &RecordBatch,
    ra: &Coord,
    dec: &Coord,
    loc: &RowLoc,
    file: &str,
    bad: &BadRows,
) -> Result<(Positions, Vec<bool>)> {
    let get = |c: &Coord| -> Result<Vec<f64>> {
        let col = batch
            .column_by_name(&c.input)
            .ok_or_else(|| Error::Internal(format!("column {} missing from batch", c.input)))?;
        let col = cast(col, &DataType::Float64)?;
        let a = col
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| Error::Internal("cast to Float64 failed".into()))?;
        Ok((0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    f64::NAN
                } else {
                    a.value(i) * c.to_deg
                }
            })
            .collect())
    };
    let r = get(ra)?;
    let d = get(dec)?;
    let mut keep = vec![true; r.len()];
    for i in 0..r.len() {
        let (x, y) = (r[i], d[i]);
        let problem = if !x.is_finite() {
            Some((ra, format!("RA must be a finite number, got {x}")))
        } else if !y.is_finite() {
            Some((dec, format!("Dec must be a finite number, got {y}")))
        } else if !(-90.0..=90.0).contains(&y) {
            Some((dec, format!("Dec {y}° is outside [-90, 90]")))
        } else {
            None
        };
        if let Some((c, message)) = problem {
            bad.skip(BadRow {
                file: file.to_string(),
                place: loc.describe(i),
                column: Some(c.input.clone()),
                message,
            })?;
            keep[i] = false;
        }
    }
    Ok((Positions { ra: r, dec: d }, keep))
}

/// Loads the inputs into a HATS catalog. Runs on the calling thread plus the global rayon
/// pool; creates its own small tokio runtime only to publish to an object store.
pub fn load(opts: &LoadOptions) -> Result<LoadReport> {
    let t0 = Instant::now();
    if opts.inputs.is_empty() {
        return Err(Error::Usage("no input files".into()));
    }
    for p in &opts.inputs {
        if !p.is_file() {
            return Err(Error::Usage(format!(
                "input {} does not exist or is not a file",
                p.display()
            )));
        }
    }
    if opts.highest_order > 19 {
        return Err(Error::Usage(format!(
            "--highest-order {} is too deep for an in-memory histogram (at most 19)",
            opts.highest_order
        )));
    }
    let target = Location::parse(&opts.catalog, &opts.store)?;
    let bad = BadRows::new(opts.skip_bad_rows);
    let mut read = opts.read.clone();
    read.bad_rows = bad.clone();

    // Schema of every input (must agree), RA/Dec, bytes per row.
    let mut first: Option<(SchemaRef, PathBuf)> = None;
    let mut bytes_per_row = 64.0f64;
    for p in &opts.inputs {
        let mut src = open_all(p, opts.format, &read)?;
        let schema = src.schema();
        match &first {
            None => {
                // Estimate the in-memory row size from a first batch.
                if let Some(b) = src.next_batch()? {
                    let n = b.batch.num_rows().max(1) as f64;
                    bytes_per_row = (b.batch.get_array_memory_size() as f64 / n).max(16.0) + 8.0;
                }
                first = Some((schema, p.clone()));
            }
            Some((s0, p0)) => {
                let a: Vec<_> = s0
                    .fields()
                    .iter()
                    .map(|f| (f.name(), f.data_type()))
                    .collect();
                let b: Vec<_> = schema
                    .fields()
                    .iter()
                    .map(|f| (f.name(), f.data_type()))
                    .collect();
                if a != b {
                    return Err(Error::Usage(format!(
                        "{} and {} have different columns or types; load them separately",
                        p0.display(),
                        p.display()
                    )));
                }
            }
        }
    }
    let (mut input_schema, first_path) =
        first.ok_or_else(|| Error::Internal("no inputs".into()))?;
    // Text inputs infer types from a sample; a typo in a coordinate makes the column text.
    // Coordinates must be numbers, so read them as such and let the bad value be reported
    // at its line (or skipped).
    let mut forced = Vec::new();
    for (given, is_ra) in [(opts.ra.as_deref(), true), (opts.dec.as_deref(), false)] {
        if let Err(Error::Usage(m)) = find_coord(&input_schema, given, is_ra)
            && m.contains("is Utf8, not a number")
            && let Some(name) = m.split('`').nth(1)
            && !read.column_types.iter().any(|(n, _)| n == name)
        {
            forced.push((name.to_string(), DataType::Float64));
        }
    }
    if !forced.is_empty() {
        read.column_types.extend(forced);
        input_schema = open_all(&first_path, opts.format, &read)?.schema();
    }
    let ra = find_coord(&input_schema, opts.ra.as_deref(), true)?;
    let dec = find_coord(&input_schema, opts.dec.as_deref(), false)?;
    let schema = catalog_schema(&input_schema, &ra, &dec);
    let progress = Progress::new(opts.progress);

    // Pass 1: histogram at the mapping order.
    let k = opts.highest_order;
    let shift = 2 * (29 - k) as u32;
    let mut hist = Skymap::zeros(k);
    let proj = ReadOptions {
        projection: Some(vec![ra.input.clone(), dec.input.clone()]),
        ..read.clone()
    };
    let mut rows_seen = 0u64;
    for (fi, p) in opts.inputs.iter().enumerate() {
        let file = p.display().to_string();
        let mut src = open(p, opts.format, &proj)?;
        while let Some(b) = src.next_batch()? {
            let (pos, keep) = positions(&b.batch, &ra, &dec, &b.loc, &file, &bad)?;
            // Hash in parallel, sort each slice's cells and add them as runs: sorted
            // increments walk the 100 MB histogram in order instead of missing the cache on
            // every row.
            let runs: Vec<Vec<(u64, u64)>> = (0..pos.ra.len())
                .into_par_iter()
                .with_min_len(8192)
                .fold(Vec::new, |mut cells: Vec<u64>, i| {
                    if keep[i] {
                        cells.push(pixel_at(hash29_unchecked(pos.ra[i], pos.dec[i]), k));
                    }
                    cells
                })
                .map(|mut cells| {
                    cells.sort_unstable();
                    run_lengths(cells.into_iter())
                })
                .collect();
            for (c, n) in runs.into_iter().flatten() {
                hist.counts[c as usize] += n;
            }
            rows_seen += b.batch.num_rows() as u64;
            progress.update(
                "pass 1/3: histogram",
                rows_seen,
                fraction(fi, opts.inputs.len(), src.as_ref()),
            );
        }
    }
    let t1 = Instant::now();
    if hist.total() == 0 {
        return Err(Error::Usage(
            "the inputs hold no rows with valid positions".into(),
        ));
    }
    let parts = plan_partitions(&hist, &opts.plan)?;
    let starts: Vec<i64> = parts.iter().map(|p| p.range29().start).collect();
    let planned_rows: Vec<u64> = parts
        .iter()
        .map(|p| {
            let s = 2 * (k - p.order) as u32;
            hist.counts[(p.npix << s) as usize..((p.npix + 1) << s) as usize]
                .iter()
                .sum::<u64>()
        })
        .collect();
    let max_part_rows = planned_rows.iter().copied().max().unwrap_or(0);
    // Memory plan. Fixed: the histogram, code and I/O buffers. Half of the rest holds the
    // scattered rows of pass 2; the other half is shared by the writer threads, each sorting
    // at most `sort_cap_rows` rows in memory (two copies: concatenated and sorted) next to a
    // Parquet row group. Larger partitions are merged from sorted runs, so any partition size
    // fits any budget above the floor.
    let threads = rayon::current_num_threads().max(1);
    // 192 MiB: the process itself, the reader's chunks in flight and their parsed batches, the group being
    // scattered, and allocator slack.
    let fixed = hist.counts.len() as u64 * 8 + (192 << 20);
    let floor = fixed + (64 << 20);
    if opts.memory_limit < floor {
        return Err(Error::ResourcesExhausted(format!(
            "--memory-limit {} MiB is below the {} MiB this load needs at --highest-order {k}",
            opts.memory_limit >> 20,
            floor >> 20
        )));
    }
    // 20 % of the rest is kept as slack for allocator overhead and transient copies (spills
    // concatenate a buffer before writing it), measured with `/usr/bin/time -v`.
    let budget = (opts.memory_limit - fixed) / 5 * 4;
    let scatter_budget = budget / 2;
    let row_group_bytes = (opts.leaf.row_group_rows as f64 * bytes_per_row) as u64;
    let per_thread = (budget / 2 / threads as u64).saturating_sub(row_group_bytes);
    // In-memory sort of a partition: its rows read back from spills, concatenated, sorted.
    let sort_cap_rows =
        ((per_thread as f64 / (bytes_per_row * 3.0)) as u64).max(RUN_BATCH_ROWS as u64);
    let keys = sort_keys(&schema, &opts.leaf.sort_columns)?;
    tracing::info!(
        partitions = parts.len(),
        max_part_rows,
        bytes_per_row,
        sort_cap_rows,
        "partition plan ready"
    );

    // Pass 2: scatter rows into per-partition buffers, spilling the largest when over budget.
    let scratch_root = opts.scratch.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&scratch_root).map_err(|e| Error::io(&scratch_root, e))?;
    let scratch = tempfile::Builder::new()
        .prefix("tessera-load-")
        .tempdir_in(&scratch_root)
        .map_err(|e| Error::io(&scratch_root, e))?;
    // Rows only drop between the passes (bad rows), so a partition planned within the sort
    // cap is sorted in memory, and only the larger ones are merged from sorted runs.
    let mut buffers: Vec<PartBuffer> = planned_rows
        .iter()
        .map(|&n| PartBuffer {
            merge: n > sort_cap_rows,
            ..Default::default()
        })
        .collect();
    let mut buffered = 0u64;
    let mut spilled_bytes = 0u64;
    // The histogram's memory is reused to count the rows pass 2 actually keeps (rows a reader
    // rejects only in pass 2 must not be counted in the skymap).
    let mut written_hist = hist;
    written_hist.counts.fill(0);
    let mut rows_done = 0u64;
    let group = rayon::current_num_threads().max(1);
    for (fi, p) in opts.inputs.iter().enumerate() {
        let file = p.display().to_string();
        let mut src = open_all(p, opts.format, &read)?;
        loop {
            let mut batches: Vec<SourceBatch> = Vec::with_capacity(group);
            while batches.len() < group {
                match src.next_batch()? {
                    Some(b) => batches.push(b),
                    None => break,
                }
            }
            if batches.is_empty() {
                break;
            }
            let scattered: Vec<Result<Vec<(usize, RecordBatch)>>> = batches
                .par_iter()
                .map(|b| scatter(b, &schema, &ra, &dec, &starts, &parts, &file, &bad))
                .collect();
            for s in scattered {
                for (pi, rb) in s? {
                    // Charged at its real size (taken batches own exactly their buffers).
                    let bytes = rb.get_array_memory_size() as u64;
                    rows_done += rb.num_rows() as u64;
                    buffers[pi].rows += rb.num_rows() as u64;
                    buffers[pi].mem_rows += rb.num_rows() as u64;
                    buffers[pi].bytes += bytes;
                    buffers[pi].batches.push(rb);
                    buffered += bytes;
                }
            }
            // Spill a partition whose rows in memory outgrow what a writer may sort, and the
            // largest buffers while the total is over budget (until half of it is free).
            let mut chosen: Vec<bool> = buffers
                .iter()
                .map(|b| b.merge && b.mem_rows > sort_cap_rows)
                .collect();
            for (b, c) in buffers.iter().zip(&chosen) {
                if *c {
                    buffered -= b.bytes;
                }
            }
            if buffered > scatter_budget {
                let mut order: Vec<usize> = (0..buffers.len()).filter(|&i| !chosen[i]).collect();
                order.sort_by_key(|&i| std::cmp::Reverse(buffers[i].bytes));
                for i in order {
                    if buffered <= scatter_budget / 2 || buffers[i].bytes == 0 {
                        break;
                    }
                    buffered -= buffers[i].bytes;
                    chosen[i] = true;
                }
            }
            if chosen.iter().any(|c| *c) {
                // The spills are independent files: write them in parallel.
                let dir = scratch.path();
                spilled_bytes += buffers
                    .par_iter_mut()
                    .enumerate()
                    .filter(|(i, _)| chosen[*i])
                    .map(|(i, b)| b.spill(dir, i, &schema, &keys))
                    .try_reduce(|| 0, |a, b| Ok(a + b))?;
            }
            progress.update(
                "pass 2/3: scatter",
                rows_done,
                fraction(fi, opts.inputs.len(), src.as_ref()),
            );
        }
    }
    let t2 = Instant::now();

    // Write: each partition sorted and written in parallel, within the memory budget.
    let builder = CatalogBuilder::new(&target, schema.clone(), &opts.leaf, scratch.path())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    let done = std::sync::atomic::AtomicU64::new(0);
    let total_rows = rows_done;
    let jobs: Vec<(Pixel, PartBuffer)> = parts
        .iter()
        .copied()
        .zip(buffers)
        .filter(|(_, b)| b.rows > 0)
        .collect();
    let sort_cols = &opts.leaf.sort_columns;
    let merged_partitions = jobs.iter().filter(|(_, b)| b.merge).count();
    let cell_runs: Vec<Vec<(u64, u64)>> = pool.install(|| {
        jobs.into_par_iter()
            .map(|(pixel, buf)| -> Result<Vec<(u64, u64)>> {
                let rows = buf.rows;
                let cells = buf.write(pixel, &builder, &schema, &keys, shift)?;
                let d = done.fetch_add(rows, std::sync::atomic::Ordering::Relaxed) + rows;
                progress.update(
                    "pass 3/3: sort and write",
                    d,
                    Some(d as f64 / total_rows as f64),
                );
                Ok(cells)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    for (c, n) in cell_runs.into_iter().flatten() {
        written_hist.counts[c as usize] += n;
    }
    let t3 = Instant::now();

    let mut props = Properties::new();
    let table = target
        .prefix
        .parts()
        .next_back()
        .map(|p| p.as_ref().to_string())
        .unwrap_or_else(|| "catalog".into());
    props.set("obs_collection", table);
    props.set("dataproduct_type", "object");
    props.set("hats_nrows", "");
    props.set("hats_col_ra", ra.output.clone());
    props.set("hats_col_dec", dec.output.clone());
    props.set("hats_max_rows", opts.plan.threshold.to_string());
    if !sort_cols.is_empty() {
        props.set("hats_cols_sort", sort_cols.join(" "));
    }
    let staged = builder.finish(props, &written_hist)?;
    let (rows, partitions) = (staged.nrows(), staged.leaves().len());
    let max_order = staged
        .leaves()
        .iter()
        .map(|l| l.pixel.order)
        .max()
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("runtime: {e}")))?;
    rt.block_on(staged.publish())?;
    progress.finish(rows, t0.elapsed().as_secs_f64());
    let t4 = Instant::now();
    Ok(LoadReport {
        rows,
        partitions,
        max_order,
        bad_rows: bad.rows(),
        seconds: [
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            (t4 - t3).as_secs_f64(),
        ],
        spilled_bytes,
        merged_partitions,
        ra_dec: (ra.output, dec.output),
    })
}

/// Run-length encodes a sorted sequence: `(value, count)` pairs.
fn run_lengths(sorted: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some((v, n)) if *v == c => *n += 1,
            _ => out.push((c, 1)),
        }
    }
    out
}

/// Opens an input with all its columns.
fn open_all(path: &Path, format: Option<Format>, read: &ReadOptions) -> Result<Box<dyn RowSource>> {
    open(
        path,
        format,
        &ReadOptions {
            projection: None,
            ..read.clone()
        },
    )
}

fn fraction(file_index: usize, files: usize, src: &dyn RowSource) -> Option<f64> {
    src.progress()
        .map(|f| (file_index as f64 + f) / files as f64)
}

/// Adds `_healpix_29` and degree columns to a batch, drops bad rows, and splits it by
/// partition (one copied batch per partition touched).
#[allow(clippy::too_many_arguments)]
fn scatter(
    b: &SourceBatch,
    schema: &SchemaRef,
    ra: &Coord,
    dec: &Coord,
    starts: &[i64],
    parts: &[Pixel],
    file: &str,
    bad: &BadRows,
) -> Result<Vec<(usize, RecordBatch)>> {
    let (pos, keep) = positions(&b.batch, ra, dec, &b.loc, file, bad)?;
    let n = b.batch.num_rows();
    let mut h = Vec::with_capacity(n);
    let mut part = Vec::with_capacity(n);
    for (i, &kept) in keep.iter().enumerate() {
        if !kept {
            h.push(0);
            part.push(u32::MAX);
            continue;
        }
        let v = hash29_unchecked(pos.ra[i], pos.dec[i]);
        let pi = starts.partition_point(|s| *s <= v).wrapping_sub(1);
        if pi >= parts.len() || v >= parts[pi].range29().end {
            // The histogram of pass 1 covered this row; reaching here means the input changed
            // between the passes.
            return Err(Error::bad(
                file,
                b.loc.describe(i),
                None,
                "row not seen in the first pass: did the input change during the load?",
            ));
        }
        h.push(v);
        part.push(pi as u32);
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    columns.push(Arc::new(Int64Array::from(h)));
    for f in schema.fields().iter().skip(1) {
        if let Some(c) = b.batch.column_by_name(f.name()) {
            columns.push(c.clone());
        } else if f.name() == &ra.output {
            columns.push(Arc::new(Float64Array::from(pos.ra.clone())));
        } else if f.name() == &dec.output {
            columns.push(Arc::new(Float64Array::from(pos.dec.clone())));
        } else {
            return Err(Error::Internal(format!("no data for column {}", f.name())));
        }
    }
    let full = RecordBatch::try_new(schema.clone(), columns)?;
    let mut idx: Vec<u32> = (0..n as u32).filter(|&i| keep[i as usize]).collect();
    idx.sort_by_key(|&i| part[i as usize]);
    let mut out = Vec::new();
    let mut s = 0;
    while s < idx.len() {
        let p = part[idx[s] as usize];
        let mut e = s;
        while e < idx.len() && part[idx[e] as usize] == p {
            e += 1;
        }
        let take = UInt32Array::from(idx[s..e].to_vec());
        out.push((p as usize, take_record_batch(&full, &take)?));
        s = e;
    }
    Ok(out)
}

/// Rows of one partition collected in pass 2: batches in memory, plus sorted runs spilled to
/// Arrow IPC files.
#[derive(Debug, Default)]
struct PartBuffer {
    batches: Vec<RecordBatch>,
    spills: Vec<PathBuf>,
    /// All rows of the partition (in memory and spilled).
    rows: u64,
    /// Rows currently in memory.
    mem_rows: u64,
    /// Bytes currently in memory.
    bytes: u64,
    /// The partition is planned larger than a writer may sort in memory: its spills are
    /// sorted runs, merged when the leaf is written. Known from the pass-1 histogram.
    merge: bool,
}

/// Rows per batch of a spilled run, and per merge output chunk. A merge holds one batch and
/// one small read buffer per run, so this bounds its memory: runs × 4096 rows.
const RUN_BATCH_ROWS: usize = 4096;

fn sort_keys(schema: &SchemaRef, sort_cols: &[String]) -> Result<Vec<usize>> {
    let mut keys = vec![0];
    for c in sort_cols {
        keys.push(
            schema
                .index_of(c)
                .map_err(|_| Error::Usage(format!("--sort-columns: no column `{c}`")))?,
        );
    }
    Ok(keys)
}

/// Sorts a batch by the key columns (`_healpix_29` then the sort columns).
fn sort_batch(all: &RecordBatch, keys: &[usize]) -> Result<RecordBatch> {
    let order = if keys.len() == 1 {
        arrow::compute::sort_to_indices(all.column(0), None, None)?
    } else {
        let cols: Vec<arrow::compute::SortColumn> = keys
            .iter()
            .map(|&i| arrow::compute::SortColumn {
                values: all.column(i).clone(),
                options: None,
            })
            .collect();
        arrow::compute::lexsort_to_indices(&cols, None)?
    };
    Ok(take_record_batch(all, &order)?)
}

fn read_run(
    path: &Path,
) -> Result<arrow::ipc::reader::StreamReader<std::io::BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(arrow::ipc::reader::StreamReader::try_new(
        std::io::BufReader::with_capacity(64 << 10, file),
        None,
    )?)
}

impl PartBuffer {
    /// Writes the in-memory rows to an Arrow IPC file (as a sorted run for partitions that
    /// will be merged); returns the bytes written.
    fn spill(
        &mut self,
        dir: &Path,
        index: usize,
        schema: &SchemaRef,
        keys: &[usize],
    ) -> Result<u64> {
        let path = dir.join(format!("p{index}-{}.arrows", self.spills.len()));
        let all = concat_batches(schema, &std::mem::take(&mut self.batches))?;
        // Only partitions that will be merged need sorted runs; the others are sorted once,
        // in memory, when their leaf is written.
        let sorted = if self.merge {
            sort_batch(&all, keys)?
        } else {
            all
        };
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = arrow::ipc::writer::StreamWriter::try_new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            schema,
        )?;
        let mut off = 0;
        while off < sorted.num_rows() {
            let n = RUN_BATCH_ROWS.min(sorted.num_rows() - off);
            w.write(&sorted.slice(off, n))?;
            off += n;
        }
        w.finish()?;
        drop(w);
        self.spills.push(path.clone());
        self.bytes = 0;
        self.mem_rows = 0;
        Ok(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
    }

    /// Writes the partition's leaf. A partition of at most `sort_cap_rows` rows is sorted in
    /// memory; a larger one is merged from its sorted runs (and its sorted in-memory rest),
    /// so that memory stays bounded whatever the partition size. Returns the sorted
    /// `_healpix_29` values' cells as run lengths for the skymap.
    fn write(
        self,
        pixel: Pixel,
        builder: &CatalogBuilder,
        schema: &SchemaRef,
        keys: &[usize],
        shift: u32,
    ) -> Result<Vec<(u64, u64)>> {
        let mut cells = Vec::new();
        let mut count = |b: &RecordBatch| -> Result<()> {
            let h = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| Error::Internal("_healpix_29 not Int64".into()))?;
            for (c, n) in run_lengths(h.values().iter().map(|v| (*v as u64) >> shift)) {
                match cells.last_mut() {
                    Some((lc, ln)) if *lc == c => *ln += n,
                    _ => cells.push((c, n)),
                }
            }
            Ok(())
        };
        if !self.merge {
            let mut batches = Vec::new();
            for path in &self.spills {
                for b in read_run(path)? {
                    batches.push(b?);
                }
                let _ = std::fs::remove_file(path);
            }
            batches.extend(self.batches);
            let all = concat_batches(schema, &batches)?;
            drop(batches);
            let sorted = sort_batch(&all, keys)?;
            drop(all);
            builder.write_leaf(pixel, std::slice::from_ref(&sorted))?;
            count(&sorted)?;
            return Ok(cells);
        }
        // Merge: one cursor per run, the in-memory rest sorted as one more run.
        let mut sources: Vec<RunSource> = Vec::new();
        for path in &self.spills {
            sources.push(RunSource::File(read_run(path)?));
        }
        if !self.batches.is_empty() {
            let rest = sort_batch(&concat_batches(schema, &self.batches)?, keys)?;
            sources.push(RunSource::Mem(Some(rest)));
        }
        drop(self.batches);
        let mut w = builder.leaf_writer(pixel)?;
        merge_runs(sources, schema, keys, |b| {
            count(b)?;
            w.write(b).map_err(Error::from)
        })?;
        w.finish()?;
        for path in &self.spills {
            let _ = std::fs::remove_file(path);
        }
        Ok(cells)
    }
}

/// A sorted run: a spill file or a batch in memory.
enum RunSource {
    File(arrow::ipc::reader::StreamReader<std::io::BufReader<std::fs::File>>),
    Mem(Option<RecordBatch>),
}

impl RunSource {
    fn next(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            RunSource::File(r) => Ok(r.next().transpose()?),
            RunSource::Mem(b) => Ok(b.take()),
        }
    }
}

/// K-way merge of sorted runs into `sink`, in chunks of [`RUN_BATCH_ROWS`] rows. Keys are
/// compared in Arrow's row format, so secondary sort columns of any type merge correctly.
/// Memory: one batch per run plus one output chunk.
fn merge_runs(
    mut sources: Vec<RunSource>,
    schema: &SchemaRef,
    keys: &[usize],
    mut sink: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    use arrow::row::{RowConverter, Rows, SortField};
    let conv = RowConverter::new(
        keys.iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?;
    struct Cursor {
        rows: Rows,
        len: usize,
        pos: usize,
        slot: usize,
    }
    let mut slots: Vec<RecordBatch> = Vec::new();
    let mut cursors: Vec<Option<Cursor>> = Vec::with_capacity(sources.len());
    let load = |src: &mut RunSource, slots: &mut Vec<RecordBatch>| -> Result<Option<Cursor>> {
        loop {
            match src.next()? {
                None => return Ok(None),
                Some(b) if b.num_rows() == 0 => continue,
                Some(b) => {
                    let cols: Vec<ArrayRef> = keys.iter().map(|&i| b.column(i).clone()).collect();
                    let rows = conv.convert_columns(&cols)?;
                    slots.push(b);
                    return Ok(Some(Cursor {
                        len: rows.num_rows(),
                        rows,
                        pos: 0,
                        slot: slots.len() - 1,
                    }));
                }
            }
        }
    };
    for src in sources.iter_mut() {
        let c = load(src, &mut slots)?;
        cursors.push(c);
    }
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(RUN_BATCH_ROWS);
    loop {
        let mut best: Option<usize> = None;
        for (i, c) in cursors.iter().enumerate() {
            let Some(c) = c else { continue };
            best = match best {
                Some(b) => {
                    let bc = cursors[b]
                        .as_ref()
                        .ok_or_else(|| Error::Internal("merge cursor".into()))?;
                    if c.rows.row(c.pos) < bc.rows.row(bc.pos) {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
                None => Some(i),
            };
        }
        let Some(i) = best else { break };
        let (slot, pos, exhausted) = {
            let c = cursors[i]
                .as_mut()
                .ok_or_else(|| Error::Internal("merge cursor".into()))?;
            let p = (c.slot, c.pos);
            c.pos += 1;
            (p.0, p.1, c.pos == c.len)
        };
        picks.push((slot, pos));
        if exhausted {
            cursors[i] = load(&mut sources[i], &mut slots)?;
        }
        if picks.len() == RUN_BATCH_ROWS {
            flush(&mut picks, &mut slots, &mut cursors, schema, &mut sink)?;
        }
    }
    if !picks.is_empty() {
        flush(&mut picks, &mut slots, &mut cursors, schema, &mut sink)?;
    }
    return Ok(());

    /// Emits the picked rows and drops batches no cursor still points into.
    fn flush(
        picks: &mut Vec<(usize, usize)>,
        slots: &mut Vec<RecordBatch>,
        cursors: &mut [Option<Cursor>],
        schema: &SchemaRef,
        sink: &mut impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let refs: Vec<&RecordBatch> = slots.iter().collect();
        let out = if refs.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            arrow::compute::interleave_record_batch(&refs, picks)?
        };
        sink(&out)?;
        picks.clear();
        let mut kept = Vec::new();
        for c in cursors.iter_mut().flatten() {
            kept.push(slots[c.slot].clone());
            c.slot = kept.len() - 1;
        }
        *slots = kept;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinate_columns_found_by_ucd_then_name_with_unit_conversion() {
        let ra = ColumnMeta {
            unit: Some("rad".into()),
            ..Default::default()
        }
        .apply(Field::new("RArad", DataType::Float64, true));
        let s = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            ra,
            Field::new("DErad", DataType::Float64, true),
        ]);
        let r = find_coord(&s, None, true).unwrap();
        assert_eq!((r.input.as_str(), r.output.as_str()), ("RArad", "ra"));
        assert!((r.to_deg - 57.29577951308232).abs() < 1e-12);
        let d = find_coord(&s, None, false).unwrap();
        assert_eq!(d.input, "DErad");
        assert!(
            (d.to_deg - 57.29577951308232).abs() < 1e-12,
            "no unit, name ends in rad"
        );

        let ucd = ColumnMeta {
            ucd: Some("pos.eq.ra;meta.main".into()),
            ..Default::default()
        }
        .apply(Field::new("alpha_x", DataType::Float32, true));
        let s = Schema::new(vec![Field::new("ra", DataType::Float64, true), ucd]);
        assert_eq!(find_coord(&s, None, true).unwrap().input, "alpha_x");
        let e = find_coord(&s, None, false).unwrap_err().to_string();
        assert!(e.contains("--dec"), "{e}");
        let e = find_coord(&s, Some("nope"), true).unwrap_err().to_string();
        assert!(e.contains("no such column"), "{e}");
        let hours = ColumnMeta {
            unit: Some("h".into()),
            ..Default::default()
        }
        .apply(Field::new("RA", DataType::Float64, true));
        let s = Schema::new(vec![hours]);
        assert_eq!(find_coord(&s, None, true).unwrap().to_deg, 15.0);
    }
}
