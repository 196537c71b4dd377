//! Writes the synthetic benchmark catalog as CSV (see the `tessera_benches` crate doc for the
//! columns and the sky model).
//!
//! Usage: `gen_synthetic [--rows N] [--seed S] [--threads T] OUT.csv`
//!
//! The file is written to `OUT.csv.partial` and renamed when complete. The output depends only
//! on `--rows` and `--seed` (not on `--threads`).
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use tessera_benches::{CHUNK_ROWS, CSV_HEADER, write_chunk_csv};

const USAGE: &str = "usage: gen_synthetic [--rows N] [--seed S] [--threads T] OUT.csv";

fn main() {
    if let Err(e) = run() {
        eprintln!("gen_synthetic: error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut rows: u64 = 20_000_000;
    let mut seed: u64 = 42;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--rows" => rows = parse_count(&value("--rows")?)?,
            "--seed" => {
                seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--threads" => {
                threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s => {
                if out.replace(PathBuf::from(s)).is_some() {
                    return Err(format!("only one output file\n{USAGE}"));
                }
            }
        }
    }
    let out = out.ok_or_else(|| USAGE.to_string())?;
    let threads = threads.max(1);
    let t0 = Instant::now();
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let file =
        std::fs::File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut w = std::io::BufWriter::with_capacity(4 << 20, file);
    let io = |e: std::io::Error| format!("{}: {e}", partial.display());
    w.write_all(CSV_HEADER.as_bytes()).map_err(io)?;

    let chunks = rows.div_ceil(CHUNK_ROWS);
    let next = AtomicU64::new(0);
    let mut bytes = CSV_HEADER.len() as u64;
    std::thread::scope(|s| -> Result<(), String> {
        // Bounded: at most `2·threads` finished chunks wait for the writer.
        let (tx, rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(2 * threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= chunks {
                        break;
                    }
                    let mut buf = Vec::with_capacity(CHUNK_ROWS as usize * 112);
                    write_chunk_csv(&mut buf, seed, c, rows);
                    if tx.send((c, buf)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Write chunks in order.
        let mut pending: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut want = 0u64;
        for (c, buf) in rx {
            pending.insert(c, buf);
            while let Some(buf) = pending.remove(&want) {
                w.write_all(&buf).map_err(io)?;
                bytes += buf.len() as u64;
                want += 1;
            }
        }
        if want != chunks {
            return Err(format!("internal error: wrote {want} of {chunks} chunks"));
        }
        Ok(())
    })?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&partial, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "gen_synthetic: wrote {rows} rows ({:.1} MiB, seed {seed}, {threads} threads) to {} in {secs:.1} s",
        bytes as f64 / (1 << 20) as f64,
        out.display()
    );
    Ok(())
}

/// Parses a row count: digits with optional `_` separators, or a `k`/`M` suffix (`20M`).
fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.replace('_', "");
    let (num, mul) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1_000),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t.as_str(), 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|e| format!("--rows {s}: {e}"))
}
