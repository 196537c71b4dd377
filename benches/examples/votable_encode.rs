//! VOTable encoding rate of Tessera's result writers (issue 5: "BINARY2 ≥ 300 MB/s/core"), for
//! the comparison runner `benches/compare/votable.py` (against STILTS and astropy).
//!
//! Reads a Parquet file into record batches of `--batch-size` rows (untimed, all in memory;
//! text columns cast to `Utf8View` unless `--utf8`, as DataFusion delivers them to the TAP
//! layer), then, on the calling thread only, encodes the whole table with
//! `tessera_server::formats::writer(format, …)` + `write_batch` per batch + `finish(false)`
//! into a writer that only counts the bytes (no copy, no I/O). Each timed run is the complete
//! document: header, every batch, trailer.
//!
//! ```text
//! votable_encode --parquet FILE [--format b2|td|b2,td] [--repeat N] [--warmup N]
//!                [--batch-size N] [--rows N] [--utf8] [--save FILE]
//! ```
//!
//! * `--format`: `b2` (BINARY2, default), `td` (TABLEDATA), or both (`b2,td`: the formats
//!   alternate within each repeat, so both see the same machine load);
//! * `--warmup N` untimed encodings per format (default 1), `--repeat N` timed ones (default 5);
//! * `--rows N`: only the first N rows of the file;
//! * `--save FILE`: before timing, writes each format once (untimed) to `FILE` (with `.b2` or
//!   `.td` appended when both formats are asked for), for validation by another reader.
//!
//! Prints one JSON object on stdout; MB = 10⁶ bytes of *output*; `s` are wall-clock seconds,
//! `cpu_s` the CPU seconds of all the process's threads over the same run
//! (`/proc/self/task/*/schedstat`), which a busy machine does not inflate; the rates are from
//! the wall-clock medians:
//!
//! ```text
//! {"rows":N,"batches":N,"batch_size":8192,"strings":"Utf8View","read_s":..,
//!  "results":[{"format":"votable/b2","bytes":N,"s":[..],"cpu_s":[..],"median_cpu_s":..,
//!              "median_s":..,"min_s":..,"mb_per_s":..,"mrows_per_s":..},..]}
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tessera_server::formats::{self, Format, WriterOptions};

const USAGE: &str = "usage: votable_encode --parquet FILE [--format b2|td|b2,td] [--repeat N] \
[--warmup N] [--batch-size N] [--rows N] [--utf8] [--save FILE]";

/// A `Write` that keeps only the number of bytes passed to it.
#[derive(Debug, Default)]
struct Count(u64);

impl Write for Count {
    #[inline]
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }

    #[inline]
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.0 += b.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Args {
    parquet: PathBuf,
    formats: Vec<Format>,
    repeat: usize,
    warmup: usize,
    batch_size: usize,
    rows: Option<usize>,
    utf8: bool,
    save: Option<PathBuf>,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("votable_encode: error: {e}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("votable_encode: error: {e}");
            std::process::exit(1);
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        parquet: PathBuf::new(),
        formats: vec![Format::VoTableBinary2],
        repeat: 5,
        warmup: 1,
        batch_size: 8192,
        rows: None,
        utf8: false,
        save: None,
    };
    let mut parquet = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let count = |name: &str, v: String| -> Result<usize, String> {
            v.parse().map_err(|_| format!("{name}: not a count: {v}"))
        };
        match arg.as_str() {
            "--parquet" => parquet = Some(PathBuf::from(value("--parquet")?)),
            "--format" => {
                a.formats = value("--format")?
                    .split(',')
                    .map(|f| match f.trim() {
                        "b2" | "binary2" => Ok(Format::VoTableBinary2),
                        "td" | "tabledata" => Ok(Format::VoTableTabledata),
                        other => Err(format!("--format: expected b2 or td, got {other:?}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--repeat" => a.repeat = count("--repeat", value("--repeat")?)?.max(1),
            "--warmup" => a.warmup = count("--warmup", value("--warmup")?)?,
            "--batch-size" => a.batch_size = count("--batch-size", value("--batch-size")?)?.max(1),
            "--rows" => a.rows = Some(count("--rows", value("--rows")?)?),
            "--utf8" => a.utf8 = true,
            "--save" => a.save = Some(PathBuf::from(value("--save")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    a.parquet = parquet.ok_or_else(|| format!("--parquet FILE is required\n{USAGE}"))?;
    if a.formats.is_empty() {
        return Err(format!("--format: no format given\n{USAGE}"));
    }
    Ok(a)
}

/// The file's batches, text columns as `Utf8View` unless `utf8`.
fn read(args: &Args) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let file = File::open(&args.parquet).map_err(|e| format!("{}: {e}", args.parquet.display()))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("{}: {e}", args.parquet.display()))?
        .with_batch_size(args.batch_size);
    if let Some(n) = args.rows {
        builder = builder.with_limit(n);
    }
    let reader = builder.build().map_err(|e| e.to_string())?;
    let src = reader.schema();
    let view = |dt: &DataType| {
        !args.utf8
            && matches!(
                dt,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
    };
    let schema: SchemaRef = Arc::new(Schema::new_with_metadata(
        src.fields()
            .iter()
            .map(|f| {
                if view(f.data_type()) {
                    Field::new(f.name(), DataType::Utf8View, f.is_nullable())
                        .with_metadata(f.metadata().clone())
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
        src.metadata().clone(),
    ));
    let mut batches = Vec::new();
    for b in reader {
        let b = b.map_err(|e| e.to_string())?;
        let cols = b
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    cast(c, f.data_type()).map_err(|e| e.to_string())
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        batches.push(RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())?);
    }
    Ok((schema, batches))
}

/// Encodes every batch into `out` as one document.
fn encode<W: Write + Send + 'static>(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: W,
) -> Result<W, String> {
    let mut w = formats::writer(format, schema, out, &WriterOptions::default())
        .map_err(|e| e.to_string())?;
    for b in batches {
        w.write_batch(b).map_err(|e| e.to_string())?;
    }
    w.finish(false).map_err(|e| e.to_string())
}

/// CPU time of every thread of this process so far, in seconds (the first field of
/// `/proc/self/task/*/schedstat`, nanoseconds on CPU); `None` where that is not available.
fn cpu_s() -> Option<f64> {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let p = t.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(p).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn run(args: &Args) -> Result<String, String> {
    let t = Instant::now();
    let (schema, batches) = read(args)?;
    let read_s = t.elapsed().as_secs_f64();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    eprintln!(
        "votable_encode: {rows} rows in {} batches read in {read_s:.2} s",
        batches.len()
    );

    if let Some(path) = &args.save {
        for &f in &args.formats {
            let p = if args.formats.len() > 1 {
                let suffix = if f == Format::VoTableBinary2 {
                    "b2"
                } else {
                    "td"
                };
                PathBuf::from(format!("{}.{suffix}", path.display()))
            } else {
                path.clone()
            };
            let file = File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut w = encode(
                f,
                &schema,
                &batches,
                io::BufWriter::with_capacity(1 << 20, file),
            )?;
            w.flush().map_err(|e| e.to_string())?;
            eprintln!("votable_encode: wrote {}", p.display());
        }
    }

    for _ in 0..args.warmup {
        for &f in &args.formats {
            encode(f, &schema, &batches, Count::default())?;
        }
    }
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); args.formats.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); args.formats.len()];
    let mut bytes = vec![0u64; args.formats.len()];
    for _ in 0..args.repeat {
        for (k, &f) in args.formats.iter().enumerate() {
            let c = cpu_s();
            let t = Instant::now();
            let out = encode(f, &schema, &batches, Count::default())?;
            let s = t.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (c, cpu_s()) {
                cpu[k].push(b - a);
            }
            bytes[k] = out.0;
            secs[k].push(s);
            eprintln!(
                "votable_encode: {f}: {} bytes in {s:.3} s ({:.1} MB/s)",
                out.0,
                out.0 as f64 / s / 1e6
            );
        }
    }

    let mut json = format!(
        "{{\"rows\":{rows},\"batches\":{},\"batch_size\":{},\"strings\":\"{}\",\"read_s\":{read_s:.3},\"results\":[",
        batches.len(),
        args.batch_size,
        if args.utf8 { "as read" } else { "Utf8View" }
    );
    for (k, &f) in args.formats.iter().enumerate() {
        let med = median(&secs[k]);
        let min = secs[k].iter().copied().fold(f64::INFINITY, f64::min);
        let list = secs[k]
            .iter()
            .map(|s| format!("{s:.4}"))
            .collect::<Vec<_>>()
            .join(",");
        let cpu_list = cpu[k]
            .iter()
            .map(|s| format!("{s:.4}"))
            .collect::<Vec<_>>()
            .join(",");
        let cpu_med = if cpu[k].is_empty() {
            "null".to_string()
        } else {
            format!("{:.4}", median(&cpu[k]))
        };
        if k > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"format\":\"{f}\",\"bytes\":{},\"s\":[{list}],\"cpu_s\":[{cpu_list}],\"median_cpu_s\":{cpu_med},\"median_s\":{med:.4},\"min_s\":{min:.4},\"mb_per_s\":{:.2},\"mrows_per_s\":{:.3}}}",
            bytes[k],
            bytes[k] as f64 / med / 1e6,
            rows as f64 / med / 1e6
        ));
    }
    json.push_str("]}");
    Ok(json)
}
