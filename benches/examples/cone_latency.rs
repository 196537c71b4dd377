//! Warm cone-search latency through the ADQL engine, for the side-by-side comparison runner
//! (`benches/compare/cones.py`).
//!
//! Opens a data root with `Engine::open`, then for every cone runs
//! `SELECT <id>, ra, dec FROM <table> WHERE 1=CONTAINS(POINT('ICRS', ra, dec),
//! CIRCLE('ICRS', <ra>, <dec>, <r>))` through `engine.query(..).await?.collect().await?`:
//! one warm-up pass over all cones, then `--repeat N` timed passes. With `--plan-only` it
//! times `engine.plan` (parse + translate + DataFusion logical plan) instead. With `--general`
//! the engine sends every query through DataFusion (`EngineOptions::general_path_only`)
//! instead of the small-cone fast path. With `--cold`
//! every cone gets a freshly opened engine, then the OS page cache is dropped (`sync`, then
//! `3 > /proc/sys/vm/drop_caches`: needs root), then the one query is timed (no warm-up).
//!
//! Usage:
//!
//! ```text
//! cone_latency --root DIR --table SCHEMA.TABLE [--id COL] [--ra COL] [--dec COL]
//!              (--cones FILE | --cone RA,DEC,R ...) [--repeat N] [--plan-only] [--general] [--no-warmup] [--cold]
//! ```
//!
//! `FILE` has one cone per line, `ra dec radius` in degrees (whitespace- or comma-separated;
//! `#` starts a comment). Output on stdout, one JSON object:
//!
//! ```text
//! {"mode":"query","table":"hipparcos.hip2","cones":200,"repeat":1,
//!  "p50_ms":..,"p95_ms":..,"mean_ms":..,"min_ms":..,"max_ms":..,"rows":N,
//!  "queries":[{"ra":..,"dec":..,"r":..,"rows":n,"ms":[..]}, ..]}
//! ```
//!
//! The summary statistics are over every timed run (cones × repeat); `rows` is the sum of the
//! per-cone row counts of one pass (0 in plan-only mode).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use tessera_engine::{Engine, EngineOptions, Limits, Location};

const USAGE: &str = "usage: cone_latency --root DIR --table SCHEMA.TABLE [--id COL] [--ra COL] [--dec COL] \
(--cones FILE | --cone RA,DEC,R ...) [--repeat N] [--plan-only] [--general] [--no-warmup] [--cold]";

struct Args {
    root: PathBuf,
    table: String,
    id: String,
    ra: String,
    dec: String,
    cones: Vec<(f64, f64, f64)>,
    repeat: usize,
    plan_only: bool,
    general: bool,
    warmup: bool,
    cold: bool,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cone_latency: error: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cone_latency: error: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(&args)) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("cone_latency: error: {e}");
            std::process::exit(1);
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut root = None;
    let mut table = None;
    let mut id = "id".to_string();
    let mut ra = "ra".to_string();
    let mut dec = "dec".to_string();
    let mut cones = Vec::new();
    let mut repeat = 1usize;
    let mut plan_only = false;
    let mut general = false;
    let mut warmup = true;
    let mut cold = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--root" => root = Some(PathBuf::from(value("--root")?)),
            "--table" => table = Some(value("--table")?),
            "--id" => id = value("--id")?,
            "--ra" => ra = value("--ra")?,
            "--dec" => dec = value("--dec")?,
            "--cones" => {
                let path = value("--cones")?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                for (n, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    cones.push(parse_cone(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?);
                }
            }
            "--cone" => cones.push(parse_cone(&value("--cone")?)?),
            "--repeat" => {
                let v = value("--repeat")?;
                repeat = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--repeat: not a positive count: {v}"))?;
            }
            "--plan-only" => plan_only = true,
            "--general" => general = true,
            "--no-warmup" => warmup = false,
            "--cold" => cold = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let root = root.ok_or_else(|| format!("--root is required\n{USAGE}"))?;
    let table = table.ok_or_else(|| format!("--table is required\n{USAGE}"))?;
    if cones.is_empty() {
        return Err(format!(
            "no cones (--cones FILE or --cone RA,DEC,R)\n{USAGE}"
        ));
    }
    for name in [&table, &id, &ra, &dec] {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("not a plain identifier: {name}"));
        }
    }
    Ok(Args {
        root,
        table,
        id,
        ra,
        dec,
        cones,
        repeat,
        plan_only,
        general,
        warmup,
        cold,
    })
}

fn parse_cone(s: &str) -> Result<(f64, f64, f64), String> {
    let v: Vec<f64> = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<f64>().map_err(|e| format!("{t:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [ra, dec, r] if ra.is_finite() && dec.is_finite() && r.is_finite() && r > 0.0 => {
            Ok((ra, dec, r))
        }
        _ => Err(format!("expected RA DEC RADIUS (degrees), got {s:?}")),
    }
}

fn adql(a: &Args, (ra, dec, r): (f64, f64, f64)) -> String {
    // `{:?}` prints an f64 so that it parses back to the same value.
    format!(
        "SELECT {id}, {rac}, {decc} FROM {t} WHERE 1=CONTAINS(POINT('ICRS', {rac}, {decc}), CIRCLE('ICRS', {ra:?}, {dec:?}, {r:?}))",
        id = a.id,
        rac = a.ra,
        decc = a.dec,
        t = a.table,
    )
}

/// Runs one query (or plans it); returns the row count.
async fn once(engine: &Engine, q: &str, limits: &Limits, plan_only: bool) -> Result<u64, String> {
    if plan_only {
        engine.plan(q, limits).await.map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let (batches, _) = engine
        .query(q, limits)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
}

async fn run(a: &Args) -> Result<String, String> {
    let root = Location::local(&a.root).map_err(|e| format!("{}: {e}", a.root.display()))?;
    let opts = EngineOptions {
        general_path_only: a.general,
        ..Default::default()
    };
    let engine = Engine::open_with(root, &opts)
        .await
        .map_err(|e| format!("opening {}: {e}", a.root.display()))?;
    let limits = Limits::default();
    let queries: Vec<String> = a.cones.iter().map(|&c| adql(a, c)).collect();

    let mut rows = vec![0u64; queries.len()];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(a.repeat); queries.len()];
    if a.cold {
        drop(engine);
        for (i, q) in queries.iter().enumerate() {
            let fresh = Engine::open_with(
                Location::local(&a.root).map_err(|e| format!("{}: {e}", a.root.display()))?,
                &opts,
            )
            .await
            .map_err(|e| format!("opening {}: {e}", a.root.display()))?;
            drop_caches()?;
            let t0 = Instant::now();
            rows[i] = once(&fresh, q, &limits, a.plan_only)
                .await
                .map_err(|e| format!("{q}: {e}"))?;
            times[i].push(t0.elapsed().as_secs_f64() * 1e3);
        }
        return Ok(report(a, &rows, &times));
    }
    if a.warmup {
        for (i, q) in queries.iter().enumerate() {
            rows[i] = once(&engine, q, &limits, a.plan_only)
                .await
                .map_err(|e| format!("{q}: {e}"))?;
        }
    }
    for _ in 0..a.repeat {
        for (i, q) in queries.iter().enumerate() {
            let t0 = Instant::now();
            let n = once(&engine, q, &limits, a.plan_only)
                .await
                .map_err(|e| format!("{q}: {e}"))?;
            times[i].push(t0.elapsed().as_secs_f64() * 1e3);
            rows[i] = n;
        }
    }
    Ok(report(a, &rows, &times))
}

/// Empties the OS page cache (root only).
fn drop_caches() -> Result<(), String> {
    let ok = std::process::Command::new("sync")
        .status()
        .map_err(|e| format!("sync: {e}"))?;
    if !ok.success() {
        return Err("sync failed".into());
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .map_err(|e| format!("--cold: writing /proc/sys/vm/drop_caches (needs root): {e}"))
}

/// The JSON report.
fn report(a: &Args, rows: &[u64], times: &[Vec<f64>]) -> String {
    let mut all: Vec<f64> = times.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"mode\":\"{}{}\",\"table\":\"{}\",\"cones\":{},\"repeat\":{},\"p50_ms\":{:.4},\"p95_ms\":{:.4},\"mean_ms\":{:.4},\"min_ms\":{:.4},\"max_ms\":{:.4},\"rows\":{},\"queries\":[",
        match (a.plan_only, a.cold) {
            (true, false) => "plan",
            (true, true) => "plan-cold",
            (false, false) => "query",
            (false, true) => "query-cold",
        },
        if a.general { "-general" } else { "" },
        a.table,
        a.cones.len(),
        times.first().map_or(0, Vec::len),
        quantile(&all, 0.50),
        quantile(&all, 0.95),
        mean,
        all[0],
        all[all.len() - 1],
        rows.iter().sum::<u64>(),
    );
    for (i, &(ra, dec, r)) in a.cones.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"ra\":{ra:?},\"dec\":{dec:?},\"r\":{r:?},\"rows\":{},\"ms\":[",
            rows[i]
        );
        for (j, t) in times[i].iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "{t:.4}");
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

/// Linear-interpolated quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}
