//! `/tap/sync` end to end over loopback (issue 5): throughput and server memory of a large
//! result, and the latency of small cones through HTTP next to the same cones through the
//! engine in process. Driver: `benches/compare/tap_sync.py`; results in `docs/benchmarks.md`
//! ("TAP /tap/sync end to end").
//!
//! The server is the real binary: either started here (`--tessera BIN --root DIR`: runs
//! `BIN serve --data DIR --listen 127.0.0.1:0 --state-dir <temp> --maxrec-hard 1000000000`,
//! reads the address from its `home: http://ADDR/` line, kills it at the end), or one already
//! running (`--url http://ADDR --pid PID`). The client is a plain blocking HTTP/1.1 client on a
//! `std::net::TcpStream` (TCP_NODELAY, 1 MiB read buffer) that handles chunked and
//! content-length bodies and throws the body away as it arrives (counting bytes, newlines and
//! keeping the first 64 KiB and the last 4 KiB, from which it gets the row count: CSV/TSV lines
//! minus the header; BINARY2: base64 characters → bytes ÷ row width, when every FIELD has a
//! fixed width).
//!
//! ```text
//! tap_sync big   SERVER --query ADQL [--format votable|csv|…] [--maxrec N] [--repeat N]
//!                [--sample-ms 100]
//! tap_sync cones SERVER --root DIR --table SCHEMA.TABLE [--id COL] [--ra COL] [--dec COL]
//!                (--cones FILE | --cone RA,DEC,R ... | --random N [--seed S] --radius R[,R..])
//!                [--repeat N] [--format votable] [--interleave]
//! SERVER = --tessera BIN --root DIR [--serve-arg ARG ...] [--state-parent DIR]
//!        | --url http://HOST:PORT [--pid PID]
//! ```
//!
//! **big**: `--repeat` times (default 3), one `GET /tap/sync?LANG=ADQL&QUERY=…&RESPONSEFORMAT=…
//! &MAXREC=…` on a new connection, body read to its end and discarded; the server's `VmRSS` is
//! sampled from `/proc/PID/status` every `--sample-ms` (default 100) during the transfer, and
//! its `VmHWM` is reset before each run (`5` to `/proc/PID/clear_refs`) and read after. MB =
//! 10⁶ bytes of HTTP body.
//!
//! ```text
//! {"mode":"big","format":"votable","maxrec":N,"query":"…","server_pid":N,"rss_idle_mb":..,
//!  "runs":[{"status":200,"bytes":N,"rows":N,"query_status":"OK","complete":true,"s":..,
//!           "mb_per_s":..,"headers_ms":..,"ttfb_ms":..,"rss_start_mb":..,"rss_peak_mb":..,
//!           "rss_end_mb":..,"rss_after_1s_mb":..,"hwm_mb":..,"samples":N,"rss_mb":[..]}, ..],
//!  "median_s":..,"median_mb_per_s":..,"max_rss_peak_mb":..}
//! ```
//!
//! **cones**: the engine is opened in this process (`Engine::open(Location)`, as
//! `cone_latency`) on `--root`; every cone is the ADQL of `cone_latency`
//! (`SELECT <id>, ra, dec FROM <table> WHERE 1=CONTAINS(POINT('ICRS', ra, dec),
//! CIRCLE('ICRS', ra0, dec0, r))`). One warm-up pass over all cones (engine, HTTP on new
//! connections, HTTP on keep-alive connections), then `--repeat` (default 3) timed passes. A
//! pass runs every cone (a) in the engine (`query(..).collect()`; all cones back to back in one
//! `block_on`, exactly as `cone_latency`), then every cone (b) as `GET /tap/sync` on a new
//! connection (`Connection: close`; the timer starts before `connect`), then (c) on a
//! keep-alive connection, then (d) on a second keep-alive connection whose client sets
//! `TCP_QUICKACK` after sending each request (so that a delayed ACK of the client cannot hold
//! back a server write waiting on Nagle's algorithm); then, as the floor of the HTTP path,
//! `GET /health` the same three ways, once per cone. With `--interleave` each cone instead
//! runs (a)–(d) back to back before the next cone (the engine then runs between HTTP requests,
//! its worker threads idle in between, like the server's). For HTTP: `headers` = first byte of the
//! response, `ttfb` = first byte of the body, `total` = last byte of the body. The HTTP row
//! count of every cone is checked against the engine's. `--random N` draws N centres uniform on
//! the sphere (seed `--seed`, default 42) for each `--radius` (degrees, or with an `arcsec`,
//! `arcmin` or `deg` suffix).
//!
//! ```text
//! {"mode":"cones","schedule":"blocks|interleaved","table":"…","format":"votable","repeat":3,"server_pid":N,"rss_mb":..,
//!  "keep_alive_reconnects":N,
//!  "health":{"new_conn":{stats},"keep_alive":{stats},"keep_alive_quickack":{stats}},
//!  "radii":[{"r":..,"cones":N,"rows":N,"row_mismatches":0,"engine":{stats},
//!            "new_conn":{"headers":{stats},"ttfb":{stats},"total":{stats}},
//!            "keep_alive":{…},"keep_alive_quickack":{…},"ratio_p50_new_conn":..,
//!            "ratio_p50_keep_alive":..,"ratio_p50_keep_alive_quickack":..}, ..]}
//! ```
//!
//! where `{stats}` is `{"p50_ms":..,"p95_ms":..,"mean_ms":..,"min_ms":..,"max_ms":..,"n":N}`
//! over every timed run, and the ratios are HTTP `total` p50 ÷ engine p50.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tessera_engine::{Engine, Limits, Location};

const USAGE: &str = "usage:
  tap_sync big   SERVER --query ADQL [--format votable|csv|...] [--maxrec N] [--repeat N] [--sample-ms 100]
  tap_sync cones SERVER --root DIR --table SCHEMA.TABLE [--id COL] [--ra COL] [--dec COL]
                 (--cones FILE | --cone RA,DEC,R ... | --random N [--seed S] --radius R[,R..])
                 [--repeat N] [--format votable] [--interleave]
  SERVER = --tessera BIN --root DIR [--serve-arg ARG ...] [--state-parent DIR]
         | --url http://HOST:PORT [--pid PID]";

/// Body bytes kept from the start of a response (the VOTable header).
const HEAD_CAP: usize = 64 << 10;
/// Body bytes kept from the end of a response (the VOTable trailer).
const TAIL_CAP: usize = 4 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Big,
    Cones,
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    tessera: Option<PathBuf>,
    root: Option<PathBuf>,
    serve_args: Vec<String>,
    state_parent: Option<PathBuf>,
    url: Option<String>,
    pid: Option<u32>,
    query: Option<String>,
    format: String,
    maxrec: Option<u64>,
    repeat: usize,
    sample_ms: u64,
    table: Option<String>,
    id: String,
    ra: String,
    dec: String,
    cones: Vec<(f64, f64, f64)>,
    random: Option<usize>,
    seed: u64,
    radii: Vec<f64>,
    interleave: bool,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tap_sync: error: {e}");
            std::process::exit(2);
        }
    };
    let out = match args.mode {
        Mode::Big => run_big(&args),
        Mode::Cones => run_cones(&args),
    };
    match out {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("tap_sync: error: {e}");
            std::process::exit(1);
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("big") => Mode::Big,
        Some("cones") => Mode::Cones,
        Some("-h" | "--help") => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(other) => return Err(format!("unknown mode {other:?} (big or cones)\n{USAGE}")),
        None => return Err(USAGE.to_string()),
    };
    let mut a = Args {
        mode,
        tessera: None,
        root: None,
        serve_args: Vec::new(),
        state_parent: None,
        url: None,
        pid: None,
        query: None,
        format: "votable".into(),
        maxrec: None,
        repeat: 3,
        sample_ms: 100,
        table: None,
        id: "id".into(),
        ra: "ra".into(),
        dec: "dec".into(),
        cones: Vec::new(),
        random: None,
        seed: 42,
        radii: Vec::new(),
        interleave: false,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let count = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a count: {v}"))
        };
        match arg.as_str() {
            "--tessera" => a.tessera = Some(PathBuf::from(value("--tessera")?)),
            "--root" => a.root = Some(PathBuf::from(value("--root")?)),
            "--serve-arg" => a.serve_args.push(value("--serve-arg")?),
            "--state-parent" => a.state_parent = Some(PathBuf::from(value("--state-parent")?)),
            "--url" => a.url = Some(value("--url")?),
            "--pid" => a.pid = Some(count("--pid", value("--pid")?)? as u32),
            "--query" => a.query = Some(value("--query")?),
            "--format" => a.format = value("--format")?,
            "--maxrec" => a.maxrec = Some(count("--maxrec", value("--maxrec")?)?),
            "--repeat" => a.repeat = count("--repeat", value("--repeat")?)?.max(1) as usize,
            "--sample-ms" => a.sample_ms = count("--sample-ms", value("--sample-ms")?)?.max(1),
            "--table" => a.table = Some(value("--table")?),
            "--id" => a.id = value("--id")?,
            "--ra" => a.ra = value("--ra")?,
            "--dec" => a.dec = value("--dec")?,
            "--cones" => {
                let path = value("--cones")?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                for (n, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if !line.is_empty() {
                        a.cones
                            .push(parse_cone(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?);
                    }
                }
            }
            "--cone" => a.cones.push(parse_cone(&value("--cone")?)?),
            "--random" => a.random = Some(count("--random", value("--random")?)? as usize),
            "--interleave" => a.interleave = true,
            "--seed" => a.seed = count("--seed", value("--seed")?)?,
            "--radius" => {
                for r in value("--radius")?.split(',') {
                    a.radii.push(parse_radius(r)?);
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.url.is_none() && (a.tessera.is_none() || a.root.is_none()) {
        return Err(format!(
            "give --tessera BIN --root DIR (start a server) or --url URL\n{USAGE}"
        ));
    }
    match a.mode {
        Mode::Big => {
            if a.query.is_none() {
                return Err(format!("big: --query is required\n{USAGE}"));
            }
        }
        Mode::Cones => {
            if a.root.is_none() || a.table.is_none() {
                return Err(format!("cones: --root and --table are required\n{USAGE}"));
            }
            for name in [a.table.as_deref().unwrap_or(""), &a.id, &a.ra, &a.dec] {
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                {
                    return Err(format!("not a plain identifier: {name}"));
                }
            }
            if let Some(n) = a.random {
                if a.radii.is_empty() {
                    return Err("--random needs --radius".into());
                }
                let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
                let centres: Vec<(f64, f64)> = (0..n)
                    .map(|_| {
                        let ra: f64 = rng.random_range(0.0..360.0);
                        let z: f64 = rng.random_range(-1.0..1.0);
                        (ra, z.asin().to_degrees())
                    })
                    .collect();
                for &r in &a.radii {
                    a.cones
                        .extend(centres.iter().map(|&(ra, dec)| (ra, dec, r)));
                }
            }
            if a.cones.is_empty() {
                return Err(format!("cones: no cones\n{USAGE}"));
            }
        }
    }
    Ok(a)
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

fn parse_radius(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("arcsec") {
        (n, 1.0 / 3600.0)
    } else if let Some(n) = s.strip_suffix("arcmin") {
        (n, 1.0 / 60.0)
    } else if let Some(n) = s.strip_suffix("deg") {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .map(|r| r * scale)
        .ok_or_else(|| format!("--radius: not a radius: {s:?}"))
}

// ---------------------------------------------------------------------------------------
// the server

/// The server under test; a server started here is killed when this is dropped.
#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    pid: Option<u32>,
    child: Option<Child>,
    state: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(s) = self.state.take() {
            let _ = s.close();
        }
    }
}

fn server(a: &Args) -> Result<Server, String> {
    if let Some(url) = &a.url {
        let hostport = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--url: only http:// URLs: {url}"))?
            .trim_end_matches('/');
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("--url {url}: {e}"))?
            .next()
            .ok_or_else(|| format!("--url {url}: no address"))?;
        return Ok(Server {
            addr,
            pid: a.pid,
            child: None,
            state: None,
        });
    }
    let (Some(bin), Some(root)) = (&a.tessera, &a.root) else {
        return Err("--tessera and --root are required".into());
    };
    let parent = match &a.state_parent {
        Some(p) => p.clone(),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/tessera-bench/tmp"),
    };
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let state = tempfile::Builder::new()
        .prefix("tap_sync-state-")
        .tempdir_in(&parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let log = std::fs::File::create(state.path().join("server.log"))
        .map_err(|e| format!("server log: {e}"))?;
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--data")
        .arg(root)
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .args(["--maxrec-hard", "1000000000"])
        .args(&a.serve_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("no server stdout")?;
    let mut srv = Server {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        pid: Some(pid),
        child: Some(child),
        state: Some(state),
    };
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines
            .read_line(&mut line)
            .map_err(|e| format!("reading the server's output: {e}"))?;
        if n == 0 {
            let log = srv
                .state
                .as_ref()
                .and_then(|s| std::fs::read_to_string(s.path().join("server.log")).ok())
                .unwrap_or_default();
            return Err(format!(
                "the server exited before printing its address:\n{}",
                log.chars()
                    .rev()
                    .take(3000)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            ));
        }
        if let Some(rest) = line.trim().strip_prefix("home:") {
            let hostport = rest
                .trim()
                .trim_start_matches("http://")
                .trim_end_matches('/');
            srv.addr = hostport
                .parse()
                .map_err(|e| format!("server address {hostport:?}: {e}"))?;
            break;
        }
    }
    // Keeps draining the server's stdout.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut lines, &mut std::io::sink());
    });
    // Waits until it answers.
    let t0 = Instant::now();
    loop {
        let ok = connect(srv.addr)
            .and_then(|mut c| {
                get(
                    &mut c,
                    srv.addr,
                    "/health",
                    false,
                    false,
                    Instant::now(),
                    false,
                )
            })
            .map(|r| r.status == 200)
            .unwrap_or(false);
        if ok {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err("the server did not answer /health within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(srv)
}

/// `VmRSS` and `VmHWM` of a process, in MB (10⁶ bytes).
fn rss(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb * 1024.0 / 1e6)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples a process's `VmRSS` on a thread.
#[derive(Debug)]
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<f64>>,
}

impl Sampler {
    fn start(pid: u32, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if let Some((r, _)) = rss(pid) {
                    v.push(r);
                }
                next += every;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            v
        });
        Sampler { stop, thread }
    }

    fn finish(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// the HTTP client

type Conn = BufReader<TcpStream>;

fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(3600)))?;
    Ok(BufReader::with_capacity(1 << 20, s))
}

/// What a response was, with its timings in seconds from the caller's `t0`.
#[derive(Debug, Default)]
struct Resp {
    status: u16,
    /// First byte of the response.
    headers_s: f64,
    /// First byte of the body (the end of the headers when the body is empty).
    first_body_s: Option<f64>,
    /// Last byte of the body.
    total_s: f64,
    /// The server keeps the connection open.
    keep_alive: bool,
    bytes: u64,
    newlines: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Resp {
    fn take(&mut self, t0: Instant, d: &[u8], count_newlines: bool) {
        if d.is_empty() {
            return;
        }
        if self.first_body_s.is_none() {
            self.first_body_s = Some(t0.elapsed().as_secs_f64());
        }
        self.bytes += d.len() as u64;
        if count_newlines {
            self.newlines += d.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        if self.head.len() < HEAD_CAP {
            let n = (HEAD_CAP - self.head.len()).min(d.len());
            self.head.extend_from_slice(&d[..n]);
        }
        if d.len() >= TAIL_CAP {
            self.tail.clear();
            self.tail.extend_from_slice(&d[d.len() - TAIL_CAP..]);
        } else {
            self.tail.extend_from_slice(d);
            if self.tail.len() > 2 * TAIL_CAP {
                self.tail.drain(..self.tail.len() - TAIL_CAP);
            }
        }
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// One `GET` on `conn`; reads the whole body (discarding it).
fn get(
    conn: &mut Conn,
    addr: SocketAddr,
    target: &str,
    keep_alive: bool,
    quick_ack: bool,
    t0: Instant,
    count_newlines: bool,
) -> std::io::Result<Resp> {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: tap_sync\r\nAccept: */*\r\nConnection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    );
    conn.get_mut().write_all(req.as_bytes())?;
    if quick_ack {
        set_quickack(conn.get_ref());
    }
    let mut r = Resp::default();
    if conn.fill_buf()?.is_empty() {
        return Err(bad("the server closed the connection"));
    }
    r.headers_s = t0.elapsed().as_secs_f64();
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    r.status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    r.keep_alive = version == "HTTP/1.1";
    let mut length: Option<u64> = None;
    let mut chunked = false;
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(bad("end of stream in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.parse().map_err(|_| bad("bad Content-Length"))?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                r.keep_alive = !v.eq_ignore_ascii_case("close");
            }
        }
    }
    let read_n = |conn: &mut Conn, r: &mut Resp, mut left: u64| -> std::io::Result<()> {
        while left > 0 {
            let buf = conn.fill_buf()?;
            if buf.is_empty() {
                return Err(bad("end of stream in the body"));
            }
            let n = (buf.len() as u64).min(left) as usize;
            r.take(t0, &buf[..n], count_newlines);
            conn.consume(n);
            left -= n as u64;
        }
        Ok(())
    };
    if chunked {
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err(bad("end of stream in a chunk size"));
            }
            let size = line.trim().split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                loop {
                    line.clear();
                    if conn.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            read_n(conn, &mut r, size)?;
            let mut crlf = [0u8; 2];
            conn.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = length {
        read_n(conn, &mut r, n)?;
    } else {
        r.keep_alive = false;
        loop {
            let buf = conn.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            r.take(t0, buf, count_newlines);
            conn.consume(n);
        }
    }
    r.total_s = t0.elapsed().as_secs_f64();
    if r.first_body_s.is_none() {
        r.first_body_s = Some(r.total_s);
    }
    Ok(r)
}

/// Asks the kernel to acknowledge what arrives next at once (Linux `TCP_QUICKACK`; it lapses
/// by itself, hence once per request): takes the client's delayed ACK out of the picture.
#[cfg(target_os = "linux")]
fn set_quickack(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn setsockopt(
            fd: std::ffi::c_int,
            level: std::ffi::c_int,
            name: std::ffi::c_int,
            value: *const std::ffi::c_void,
            len: u32,
        ) -> std::ffi::c_int;
    }
    const IPPROTO_TCP: std::ffi::c_int = 6;
    const TCP_QUICKACK: std::ffi::c_int = 12;
    let one: std::ffi::c_int = 1;
    // SAFETY: a live socket descriptor, and a pointer to an int of the length given.
    unsafe {
        setsockopt(
            s.as_raw_fd(),
            IPPROTO_TCP,
            TCP_QUICKACK,
            (&raw const one).cast(),
            size_of::<std::ffi::c_int>() as u32,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_quickack(_: &TcpStream) {}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn sync_target(adql: &str, format: &str, maxrec: Option<u64>) -> String {
    let mut t = format!(
        "/tap/sync?LANG=ADQL&RESPONSEFORMAT={}&QUERY={}",
        percent_encode(format),
        percent_encode(adql)
    );
    if let Some(m) = maxrec {
        let _ = write!(t, "&MAXREC={m}");
    }
    t
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let mut from = 0;
    while let Some(i) = tag[from..].find(&key) {
        let at = from + i;
        if at == 0 || tag.as_bytes()[at - 1].is_ascii_whitespace() {
            let v = &tag[at + key.len()..];
            return v.find('"').map(|j| &v[..j]);
        }
        from = at + key.len();
    }
    None
}

/// Bytes of one BINARY2 row (null mask included), when every FIELD has a fixed width.
fn binary2_row_width(header: &str) -> Option<usize> {
    let mut fields = 0usize;
    let mut width = 0usize;
    for part in header.split("<FIELD").skip(1) {
        if !part.starts_with(|c: char| c.is_ascii_whitespace()) {
            continue; // <FIELDref
        }
        let tag = &part[..part.find('>')?];
        let items = match attr(tag, "arraysize") {
            None => 1,
            Some(s) if s.contains('*') => return None,
            Some(s) => s
                .split('x')
                .map(|d| d.trim().parse::<usize>().ok())
                .product::<Option<usize>>()?,
        };
        let bytes = match attr(tag, "datatype")? {
            "boolean" | "unsignedByte" | "char" => 1,
            "short" | "unicodeChar" => 2,
            "int" | "float" => 4,
            "long" | "double" | "floatComplex" => 8,
            "doubleComplex" => 16,
            _ => return None,
        };
        fields += 1;
        width += bytes * items;
    }
    (fields > 0).then(|| width + fields.div_ceil(8))
}

/// The row count of a complete response body, where the format allows it cheaply.
fn rows_of(format: &str, r: &Resp) -> Option<u64> {
    let f = format.to_ascii_lowercase();
    if f.starts_with("csv") || f.starts_with("text/csv") || f.starts_with("tsv") {
        return Some(r.newlines.saturating_sub(1));
    }
    let binary2 = matches!(
        f.as_str(),
        "votable" | "votable/b2" | "application/x-votable+xml" | "text/xml"
    ) || f.contains("serialization=binary2");
    if !binary2 {
        return None;
    }
    let open = b"<STREAM encoding=\"base64\">\n";
    let start = find(&r.head, open)? + open.len();
    let width = binary2_row_width(std::str::from_utf8(&r.head[..start]).ok()?)?;
    let close = rfind(&r.tail, b"</STREAM>")?;
    let trailer = (r.tail.len() - close) as u64;
    let newlines_out = r.head[..start].iter().filter(|&&b| b == b'\n').count() as u64
        + r.tail[close..].iter().filter(|&&b| b == b'\n').count() as u64;
    let region = r.bytes.checked_sub(start as u64 + trailer)?;
    let b64 = region.checked_sub(r.newlines.checked_sub(newlines_out)?)?;
    let pad = r.tail[..close]
        .iter()
        .rev()
        .filter(|&&b| b != b'\n')
        .take(2)
        .filter(|&&b| b == b'=')
        .count() as u64;
    let decoded = (b64 / 4 * 3).checked_sub(pad)?;
    (decoded % width as u64 == 0).then_some(decoded / width as u64)
}

/// `OK`, `OVERFLOW` or `ERROR` (VOTable), from the end of the body.
fn query_status(r: &Resp) -> &'static str {
    if find(&r.tail, b"value=\"ERROR\"").is_some() {
        "ERROR"
    } else if find(&r.tail, b"value=\"OVERFLOW\"").is_some() {
        "OVERFLOW"
    } else {
        "OK"
    }
}

// ---------------------------------------------------------------------------------------
// big results

fn run_big(a: &Args) -> Result<String, String> {
    let srv = server(a)?;
    let Some(pid) = srv.pid else {
        return Err("big: the server's --pid is needed for its memory".into());
    };
    let adql = a.query.as_deref().unwrap_or_default();
    let target = sync_target(adql, &a.format, a.maxrec);
    let every = Duration::from_millis(a.sample_ms);
    let idle = rss(pid).map_or(f64::NAN, |r| r.0);
    let mut runs = Vec::new();
    for i in 0..a.repeat {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5\n");
        let start = rss(pid).map_or(f64::NAN, |r| r.0);
        let sampler = Sampler::start(pid, every);
        let t0 = Instant::now();
        let got = connect(srv.addr)
            .and_then(|mut c| get(&mut c, srv.addr, &target, false, false, t0, true));
        let samples = sampler.finish();
        let (end, hwm) = rss(pid).unwrap_or((f64::NAN, f64::NAN));
        std::thread::sleep(Duration::from_secs(1));
        let after = rss(pid).map_or(f64::NAN, |r| r.0);
        let r = got.map_err(|e| format!("run {}: {e}", i + 1))?;
        if r.status != 200 {
            return Err(format!(
                "run {}: HTTP {}: {}",
                i + 1,
                r.status,
                String::from_utf8_lossy(&r.head)
            ));
        }
        let peak = samples.iter().copied().fold(start.max(end), f64::max);
        eprintln!(
            "tap_sync: big run {}: {} bytes in {:.2} s ({:.1} MB/s), RSS {:.0} → peak {:.0} → {:.0} MB",
            i + 1,
            r.bytes,
            r.total_s,
            r.bytes as f64 / 1e6 / r.total_s,
            start,
            peak,
            end
        );
        runs.push((r, start, peak, end, after, hwm, samples));
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"mode\":\"big\",\"format\":{},\"maxrec\":{},\"query\":{},\"server_pid\":{pid},\"rss_idle_mb\":{idle:.1},\"runs\":[",
        json_str(&a.format),
        a.maxrec.map_or("null".to_string(), |m| m.to_string()),
        json_str(adql),
    );
    for (i, (r, start, peak, end, after, hwm, samples)) in runs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let rows = rows_of(&a.format, r).map_or("null".to_string(), |n| n.to_string());
        let complete = !a.format.starts_with("votable") || r.tail.ends_with(b"</VOTABLE>\n");
        let _ = write!(
            out,
            "{{\"status\":{},\"bytes\":{},\"rows\":{rows},\"query_status\":\"{}\",\"complete\":{complete},\"s\":{:.3},\"mb_per_s\":{:.1},\"headers_ms\":{:.2},\"ttfb_ms\":{:.2},\"rss_start_mb\":{start:.1},\"rss_peak_mb\":{peak:.1},\"rss_end_mb\":{end:.1},\"rss_after_1s_mb\":{after:.1},\"hwm_mb\":{hwm:.1},\"samples\":{},\"rss_mb\":[",
            r.status,
            r.bytes,
            query_status(r),
            r.total_s,
            r.bytes as f64 / 1e6 / r.total_s,
            r.headers_s * 1e3,
            r.first_body_s.unwrap_or(r.total_s) * 1e3,
            samples.len(),
        );
        for (j, s) in samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "{s:.1}");
        }
        out.push_str("]}");
    }
    let mut secs: Vec<f64> = runs.iter().map(|r| r.0.total_s).collect();
    secs.sort_by(f64::total_cmp);
    let mut rates: Vec<f64> = runs
        .iter()
        .map(|r| r.0.bytes as f64 / 1e6 / r.0.total_s)
        .collect();
    rates.sort_by(f64::total_cmp);
    let max_peak = runs.iter().map(|r| r.2).fold(f64::NAN, f64::max);
    let _ = write!(
        out,
        "],\"median_s\":{:.3},\"median_mb_per_s\":{:.1},\"max_rss_peak_mb\":{max_peak:.1}}}",
        quantile(&secs, 0.5),
        quantile(&rates, 0.5),
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// small cones

fn adql(a: &Args, (ra, dec, r): (f64, f64, f64)) -> String {
    format!(
        "SELECT {id}, {rac}, {decc} FROM {t} WHERE 1=CONTAINS(POINT('ICRS', {rac}, {decc}), CIRCLE('ICRS', {ra:?}, {dec:?}, {r:?}))",
        id = a.id,
        rac = a.ra,
        decc = a.dec,
        t = a.table.as_deref().unwrap_or_default(),
    )
}

async fn engine_once(engine: &Engine, q: &str) -> Result<u64, String> {
    let (batches, _) = engine
        .query(q, &Limits::default())
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
}

/// Timings of one HTTP request, in ms.
#[derive(Debug, Default, Clone)]
struct Times {
    headers: Vec<f64>,
    ttfb: Vec<f64>,
    total: Vec<f64>,
}

impl Times {
    fn push(&mut self, r: &Resp) {
        self.headers.push(r.headers_s * 1e3);
        self.ttfb.push(r.first_body_s.unwrap_or(r.total_s) * 1e3);
        self.total.push(r.total_s * 1e3);
    }

    fn json(&self) -> String {
        format!(
            "{{\"headers\":{},\"ttfb\":{},\"total\":{}}}",
            stats(&self.headers),
            stats(&self.ttfb),
            stats(&self.total)
        )
    }
}

/// A keep-alive connection, reopened when the server closes it.
#[derive(Debug)]
struct KeepAlive {
    addr: SocketAddr,
    conn: Option<Conn>,
    reconnects: u64,
    /// Sets TCP_QUICKACK after sending each request.
    quick_ack: bool,
}

impl KeepAlive {
    fn get(&mut self, target: &str, count_newlines: bool) -> Result<Resp, String> {
        let t0 = Instant::now();
        if self.conn.is_none() {
            self.conn = Some(connect(self.addr).map_err(|e| format!("connect: {e}"))?);
            self.reconnects += 1;
        }
        let c = self.conn.as_mut().ok_or("no connection")?;
        let r = get(
            c,
            self.addr,
            target,
            true,
            self.quick_ack,
            t0,
            count_newlines,
        )
        .map_err(|e| format!("{target}: {e}"))?;
        if !r.keep_alive {
            self.conn = None;
        }
        Ok(r)
    }
}

fn new_conn_get(addr: SocketAddr, target: &str, count_newlines: bool) -> Result<Resp, String> {
    let t0 = Instant::now();
    let mut c = connect(addr).map_err(|e| format!("connect: {e}"))?;
    get(&mut c, addr, target, false, false, t0, count_newlines)
        .map_err(|e| format!("{target}: {e}"))
}

fn check(r: &Resp, what: &str) -> Result<(), String> {
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "{what}: HTTP {}: {}",
            r.status,
            String::from_utf8_lossy(&r.head)
        ))
    }
}

/// Checks a cone's response and keeps its timings.
fn record(
    r: &Resp,
    q: &str,
    want: u64,
    format: &str,
    times: &mut Times,
    mismatches: &mut u64,
) -> Result<(), String> {
    check(r, q)?;
    times.push(r);
    if rows_of(format, r) != Some(want) {
        *mismatches += 1;
    }
    Ok(())
}

fn run_cones(a: &Args) -> Result<String, String> {
    let root_dir = a.root.as_ref().ok_or("--root is required")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let root = Location::local(root_dir).map_err(|e| format!("{}: {e}", root_dir.display()))?;
    let engine = rt
        .block_on(Engine::open(root))
        .map_err(|e| format!("opening {}: {e}", root_dir.display()))?;
    let srv = server(a)?;
    let queries: Vec<String> = a.cones.iter().map(|&c| adql(a, c)).collect();
    let targets: Vec<String> = queries
        .iter()
        .map(|q| sync_target(q, &a.format, None))
        .collect();
    let mut ka = KeepAlive {
        addr: srv.addr,
        conn: None,
        reconnects: 0,
        quick_ack: false,
    };
    let mut kq = KeepAlive {
        addr: srv.addr,
        conn: None,
        reconnects: 0,
        quick_ack: true,
    };

    // Warm-up: every cone once each way.
    let mut rows = vec![0u64; queries.len()];
    for (i, q) in queries.iter().enumerate() {
        rows[i] = rt
            .block_on(engine_once(&engine, q))
            .map_err(|e| format!("{q}: {e}"))?;
        let r = new_conn_get(srv.addr, &targets[i], true)?;
        check(&r, q)?;
        let r = ka.get(&targets[i], true)?;
        check(&r, q)?;
        let r = kq.get(&targets[i], true)?;
        check(&r, q)?;
    }
    let _ = new_conn_get(srv.addr, "/health", false)?;
    let _ = ka.get("/health", false)?;
    let _ = kq.get("/health", false)?;

    let n = queries.len();
    let mut eng = vec![Vec::<f64>::new(); n];
    let mut newc = vec![Times::default(); n];
    let mut keep = vec![Times::default(); n];
    let mut keepq = vec![Times::default(); n];
    let mut mismatches = vec![0u64; n];
    let mut health_new = Vec::new();
    let mut health_ka = Vec::new();
    let mut health_kq = Vec::new();
    for pass in 0..a.repeat {
        if a.interleave {
            for (i, q) in queries.iter().enumerate() {
                let t0 = Instant::now();
                let got = rt
                    .block_on(engine_once(&engine, q))
                    .map_err(|e| format!("{q}: {e}"))?;
                eng[i].push(t0.elapsed().as_secs_f64() * 1e3);
                rows[i] = got;
                let r = new_conn_get(srv.addr, &targets[i], true)?;
                record(&r, q, got, &a.format, &mut newc[i], &mut mismatches[i])?;
                let r = ka.get(&targets[i], true)?;
                record(&r, q, got, &a.format, &mut keep[i], &mut mismatches[i])?;
                let r = kq.get(&targets[i], true)?;
                record(&r, q, got, &a.format, &mut keepq[i], &mut mismatches[i])?;
            }
        } else {
            // The engine's cones back to back in one `block_on`, as in `cone_latency`; then
            // each HTTP way over all the cones.
            let timed = rt.block_on(async {
                let mut v = Vec::with_capacity(n);
                for q in &queries {
                    let t0 = Instant::now();
                    let got = engine_once(&engine, q)
                        .await
                        .map_err(|e| format!("{q}: {e}"))?;
                    v.push((t0.elapsed().as_secs_f64() * 1e3, got));
                }
                Ok::<_, String>(v)
            })?;
            for (i, (ms, got)) in timed.into_iter().enumerate() {
                eng[i].push(ms);
                rows[i] = got;
            }
            for (i, q) in queries.iter().enumerate() {
                let r = new_conn_get(srv.addr, &targets[i], true)?;
                record(&r, q, rows[i], &a.format, &mut newc[i], &mut mismatches[i])?;
            }
            for (i, q) in queries.iter().enumerate() {
                let r = ka.get(&targets[i], true)?;
                record(&r, q, rows[i], &a.format, &mut keep[i], &mut mismatches[i])?;
            }
            for (i, q) in queries.iter().enumerate() {
                let r = kq.get(&targets[i], true)?;
                record(&r, q, rows[i], &a.format, &mut keepq[i], &mut mismatches[i])?;
            }
        }
        for _ in 0..n {
            let r = new_conn_get(srv.addr, "/health", false)?;
            health_new.push(r.total_s * 1e3);
            let r = ka.get("/health", false)?;
            health_ka.push(r.total_s * 1e3);
            let r = kq.get("/health", false)?;
            health_kq.push(r.total_s * 1e3);
        }
        eprintln!("tap_sync: cones pass {}/{} done", pass + 1, a.repeat);
    }
    let server_rss = srv.pid.and_then(rss).map_or(f64::NAN, |r| r.0);

    let mut radii: Vec<f64> = Vec::new();
    for &(_, _, r) in &a.cones {
        if !radii.contains(&r) {
            radii.push(r);
        }
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"mode\":\"cones\",\"schedule\":\"{}\",\"table\":{},\"format\":{},\"repeat\":{},\"server_pid\":{},\"rss_mb\":{server_rss:.1},\"keep_alive_reconnects\":{},\"health\":{{\"new_conn\":{},\"keep_alive\":{},\"keep_alive_quickack\":{}}},\"radii\":[",
        if a.interleave {
            "interleaved"
        } else {
            "blocks"
        },
        json_str(a.table.as_deref().unwrap_or_default()),
        json_str(&a.format),
        a.repeat,
        srv.pid.map_or("null".to_string(), |p| p.to_string()),
        ka.reconnects + kq.reconnects,
        stats(&health_new),
        stats(&health_ka),
        stats(&health_kq),
    );
    for (k, &rad) in radii.iter().enumerate() {
        let idx: Vec<usize> = (0..n).filter(|&i| a.cones[i].2 == rad).collect();
        let e: Vec<f64> = idx.iter().flat_map(|&i| eng[i].iter().copied()).collect();
        let mut nc = Times::default();
        let mut kc = Times::default();
        let mut qc = Times::default();
        for &i in &idx {
            qc.headers.extend(&keepq[i].headers);
            qc.ttfb.extend(&keepq[i].ttfb);
            qc.total.extend(&keepq[i].total);
            nc.headers.extend(&newc[i].headers);
            nc.ttfb.extend(&newc[i].ttfb);
            nc.total.extend(&newc[i].total);
            kc.headers.extend(&keep[i].headers);
            kc.ttfb.extend(&keep[i].ttfb);
            kc.total.extend(&keep[i].total);
        }
        let p50 = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            quantile(&s, 0.5)
        };
        if k > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"r\":{rad:?},\"cones\":{},\"rows\":{},\"row_mismatches\":{},\"engine\":{},\"new_conn\":{},\"keep_alive\":{},\"keep_alive_quickack\":{},\"ratio_p50_new_conn\":{:.3},\"ratio_p50_keep_alive\":{:.3},\"ratio_p50_keep_alive_quickack\":{:.3}}}",
            idx.len(),
            idx.iter().map(|&i| rows[i]).sum::<u64>(),
            idx.iter().map(|&i| mismatches[i]).sum::<u64>(),
            stats(&e),
            nc.json(),
            kc.json(),
            qc.json(),
            p50(&nc.total) / p50(&e),
            p50(&kc.total) / p50(&e),
            p50(&qc.total) / p50(&e),
        );
    }
    out.push_str("]}");
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// output

fn stats(v: &[f64]) -> String {
    if v.is_empty() {
        return "null".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "{{\"p50_ms\":{:.4},\"p95_ms\":{:.4},\"mean_ms\":{:.4},\"min_ms\":{:.4},\"max_ms\":{:.4},\"n\":{}}}",
        quantile(&s, 0.5),
        quantile(&s, 0.95),
        s.iter().sum::<f64>() / s.len() as f64,
        s[0],
        s[s.len() - 1],
        s.len()
    )
}

/// Linear-interpolated quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
