//! Latency of one query run N times, through the ADQL engine or through plain DataFusion SQL
//! over the same Parquet files, for the comparison runners (`benches/compare/aggregates.py`,
//! `benches/compare/xmatch.py`).
//!
//! * `--adql Q --root DIR`: opens the data root with `Engine::open` and times
//!   `engine.query(Q, limits).await?.collect().await?` (parse + translate + plan + execute +
//!   collect).
//! * `--sql Q --parquet NAME=DIR ...`: a default `SessionContext` (DataFusion's own defaults:
//!   target partitions = CPUs, no filter pushdown) with each `DIR` registered as table `NAME`
//!   by `register_parquet` (every `*.parquet` file under it, recursively); times
//!   `ctx.sql(Q).await?.collect().await?`. `NAME` may be `schema.table`.
//!
//! `--warmup N` untimed runs (default 1), then `--repeat N` timed runs (default 5).
//! `--timeout S` gives every run S seconds (wall clock, planning included); a run that
//! exceeds it ends the measurement and the report says `"timeout":true`.
//! `--dump N` puts the first N rows of the last result into the report (cells as text), so
//! the caller can cross-check results between systems; `--explain` adds the physical plan
//! (`EXPLAIN` output) for SQL runs and the translated SQL for ADQL runs.
//!
//! Usage:
//!
//! ```text
//! query_latency (--adql Q --root DIR | --sql Q --parquet NAME=DIR ...)
//!               [--repeat N] [--warmup N] [--timeout S] [--dump N] [--explain]
//! ```
//!
//! Output on stdout, one JSON object:
//!
//! ```text
//! {"mode":"adql","query":"..","warmup":1,"repeat":5,"timeout":false,"p50_ms":..,"p95_ms":..,
//!  "mean_ms":..,"min_ms":..,"max_ms":..,"rows":N,"ms":[..],"columns":[..],"result":[[..],..]}
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;
use tessera_engine::{Engine, Limits, Location};

const USAGE: &str = "usage: query_latency (--adql Q --root DIR | --sql Q --parquet NAME=DIR ...) \
[--repeat N] [--warmup N] [--timeout S] [--dump N] [--explain]";

struct Args {
    adql: Option<String>,
    sql: Option<String>,
    root: Option<PathBuf>,
    parquet: Vec<(String, PathBuf)>,
    repeat: usize,
    warmup: usize,
    timeout: Option<Duration>,
    dump: usize,
    explain: bool,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("query_latency: error: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("query_latency: error: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(&args)) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("query_latency: error: {e}");
            std::process::exit(1);
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        adql: None,
        sql: None,
        root: None,
        parquet: Vec::new(),
        repeat: 5,
        warmup: 1,
        timeout: None,
        dump: 0,
        explain: false,
    };
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
            "--adql" => a.adql = Some(value("--adql")?),
            "--sql" => a.sql = Some(value("--sql")?),
            "--root" => a.root = Some(PathBuf::from(value("--root")?)),
            "--parquet" => {
                let v = value("--parquet")?;
                let (name, dir) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--parquet: expected NAME=DIR, got {v:?}"))?;
                a.parquet.push((name.to_string(), PathBuf::from(dir)));
            }
            "--repeat" => a.repeat = count("--repeat", value("--repeat")?)?.max(1),
            "--warmup" => a.warmup = count("--warmup", value("--warmup")?)?,
            "--timeout" => {
                let v = value("--timeout")?;
                let s: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--timeout: not a positive number of seconds: {v}"))?;
                a.timeout = Some(Duration::from_secs_f64(s));
            }
            "--dump" => a.dump = count("--dump", value("--dump")?)?,
            "--explain" => a.explain = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    match (&a.adql, &a.sql) {
        (Some(_), None) if a.root.is_some() => {}
        (None, Some(_)) if !a.parquet.is_empty() => {}
        _ => {
            return Err(format!(
                "give --adql Q --root DIR, or --sql Q --parquet NAME=DIR\n{USAGE}"
            ));
        }
    }
    Ok(a)
}

enum Runner {
    Adql(Engine, String, Limits),
    Sql(SessionContext, String),
}

impl Runner {
    async fn once(&self) -> Result<Vec<RecordBatch>, String> {
        match self {
            Runner::Adql(engine, q, limits) => {
                let (batches, _) = engine
                    .query(q, limits)
                    .await
                    .map_err(|e| e.to_string())?
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(batches)
            }
            Runner::Sql(ctx, q) => ctx
                .sql(q)
                .await
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// One run under the timeout: `Ok(None)` when it ran out of time.
    async fn timed(&self, timeout: Option<Duration>) -> Result<Option<Vec<RecordBatch>>, String> {
        match timeout {
            None => self.once().await.map(Some),
            Some(t) => match tokio::time::timeout(t, self.once()).await {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            },
        }
    }
}

async fn sql_context(parquet: &[(String, PathBuf)]) -> Result<SessionContext, String> {
    let config = SessionConfig::new().with_create_default_catalog_and_schema(true);
    let ctx = SessionContext::new_with_config(config);
    for (name, dir) in parquet {
        let (schema, table) = match name.split_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, name.as_str()),
        };
        if let Some(s) = schema {
            ctx.sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
                .await
                .map_err(|e| e.to_string())?;
        }
        let path = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let url = format!("{}/", path.display());
        let opts =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let reference = match schema {
            Some(s) => format!("{s}.{table}"),
            None => table.to_string(),
        };
        ctx.register_listing_table(reference.as_str(), &url, opts, None, None)
            .await
            .map_err(|e| format!("registering {url} as {reference}: {e}"))?;
    }
    Ok(ctx)
}

async fn run(a: &Args) -> Result<String, String> {
    let (runner, mode, query) = if let Some(q) = &a.adql {
        let root = a.root.as_ref().ok_or("--adql needs --root")?;
        let loc = Location::local(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let engine = Engine::open(loc)
            .await
            .map_err(|e| format!("opening {}: {e}", root.display()))?;
        let limits = Limits {
            timeout: a.timeout,
            ..Limits::default()
        };
        (Runner::Adql(engine, q.clone(), limits), "adql", q.clone())
    } else {
        let q = a.sql.clone().ok_or("no query")?;
        let ctx = sql_context(&a.parquet).await?;
        (Runner::Sql(ctx, q.clone()), "sql", q)
    };

    let explain = if a.explain {
        Some(match &runner {
            Runner::Adql(engine, q, limits) => engine
                .translate(q, &limits.parse)
                .map_err(|e| e.to_string())?,
            Runner::Sql(ctx, q) => {
                let b = ctx
                    .sql(&format!("EXPLAIN {q}"))
                    .await
                    .map_err(|e| e.to_string())?
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut s = String::new();
                for row in cells(&b, usize::MAX)? {
                    s.push_str(&row.join("\n"));
                    s.push('\n');
                }
                s
            }
        })
    } else {
        None
    };

    let mut timed_out = false;
    let mut last: Vec<RecordBatch> = Vec::new();
    let mut times = Vec::with_capacity(a.repeat);
    let dog = a.timeout.map(|t| Watchdog::start(t, mode, &query));
    for _ in 0..a.warmup {
        if let Some(d) = &dog {
            d.begin(&times);
        }
        let t0 = Instant::now();
        match runner.timed(a.timeout).await {
            Ok(Some(b)) => last = b,
            Ok(None) => {
                timed_out = true;
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                break;
            }
            Err(e) if e.contains("timeout") || e.contains("time limit") => {
                timed_out = true;
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if !timed_out {
        for _ in 0..a.repeat {
            if let Some(d) = &dog {
                d.begin(&times);
            }
            let t0 = Instant::now();
            let r = runner.timed(a.timeout).await;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            match r {
                Ok(Some(b)) => {
                    times.push(ms);
                    last = b;
                }
                Ok(None) => {
                    timed_out = true;
                    times.push(ms);
                    break;
                }
                Err(e) if e.contains("timeout") || e.contains("time limit") => {
                    timed_out = true;
                    times.push(ms);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    report(a, mode, &query, timed_out, &times, &last, explain)
}

/// A thread that ends the process when one run overruns `--timeout` by more than 5 s: a
/// CPU-bound plan can keep every runtime thread busy so that tokio's own timer never fires.
/// It prints the report with `"timeout":true` and the times of the runs that finished.
struct Watchdog {
    state: Arc<std::sync::Mutex<(Instant, Vec<f64>)>>,
}

impl Watchdog {
    fn start(limit: Duration, mode: &str, query: &str) -> Watchdog {
        let state = Arc::new(std::sync::Mutex::new((Instant::now(), Vec::new())));
        let s = state.clone();
        let head = format!(
            "{{\"mode\":\"{mode}\",\"query\":{},\"timeout\":true,\"timeout_s\":{},\"watchdog\":true,\"rows\":0",
            json_str(query),
            limit.as_secs_f64()
        );
        let grace = limit + Duration::from_secs(5);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let (started, done) = match s.lock() {
                    Ok(g) => (g.0, g.1.clone()),
                    Err(_) => return,
                };
                let over = started.elapsed();
                if over > grace {
                    let mut out = head.clone();
                    out.push_str(",\"ms\":[");
                    for (i, t) in done
                        .iter()
                        .chain(std::iter::once(&(over.as_secs_f64() * 1e3)))
                        .enumerate()
                    {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{t:.4}");
                    }
                    out.push_str("],\"columns\":[],\"result\":[]}");
                    println!("{out}");
                    std::process::exit(0);
                }
            }
        });
        Watchdog { state }
    }

    /// A run starts now; `done` are the finished runs' times.
    fn begin(&self, done: &[f64]) {
        if let Ok(mut g) = self.state.lock() {
            *g = (Instant::now(), done.to_vec());
        }
    }
}

/// Rows of the batches as text cells (at most `limit` rows).
fn cells(batches: &[RecordBatch], limit: usize) -> Result<Vec<Vec<String>>, String> {
    let opts = FormatOptions::default().with_null("");
    let mut out = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for r in 0..b.num_rows() {
            if out.len() >= limit {
                return Ok(out);
            }
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(out)
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn report(
    a: &Args,
    mode: &str,
    query: &str,
    timed_out: bool,
    times: &[f64],
    last: &[RecordBatch],
    explain: Option<String>,
) -> Result<String, String> {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rows: usize = last.iter().map(RecordBatch::num_rows).sum();
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"mode\":\"{mode}\",\"query\":{},\"warmup\":{},\"repeat\":{},\"timeout\":{timed_out}",
        json_str(query),
        a.warmup,
        a.repeat
    );
    if let Some(t) = a.timeout {
        let _ = write!(out, ",\"timeout_s\":{}", t.as_secs_f64());
    }
    if !sorted.is_empty() && !timed_out {
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        let _ = write!(
            out,
            ",\"p50_ms\":{:.4},\"p95_ms\":{:.4},\"mean_ms\":{:.4},\"min_ms\":{:.4},\"max_ms\":{:.4}",
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.95),
            mean,
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
    let _ = write!(out, ",\"rows\":{rows},\"ms\":[");
    for (i, t) in times.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{t:.4}");
    }
    out.push_str("],\"columns\":[");
    if let Some(b) = last.first() {
        for (i, f) in b.schema().fields().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_str(f.name()));
        }
    }
    out.push_str("],\"result\":[");
    for (i, row) in cells(last, a.dump)?.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, c) in row.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&json_str(c));
        }
        out.push(']');
    }
    out.push(']');
    if let Some(e) = explain {
        let _ = write!(out, ",\"explain\":{}", json_str(&e));
    }
    out.push('}');
    Ok(out)
}

/// Linear-interpolated quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}
