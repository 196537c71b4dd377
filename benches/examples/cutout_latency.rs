//! FITS cutout latency at library level (issue 6), for the side-by-side runner
//! `benches/compare/cutouts.py` (Tessera vs astropy `Cutout2D` on a memory-mapped file).
//!
//! Every cutout is a SODA `CIRCLE ra dec r` and does, timed piece by piece, what one
//! `/soda/sync` request does in the server, minus HTTP:
//!
//! * **open**: `read_image_hdus(FILE)` (headers read, data skipped), the `--hdu` picked,
//!   `ImageWcs::from_header`;
//! * **plan**: `plan_cutout` (Cutout2D's box for the circle);
//! * **write**: `write_cutout` (pixels copied from 8 MiB memory-mapped windows) into the sink:
//!   `file` (default) = the previous `DIR/cutout-tessera-<pid>.fits` removed, then
//!   `File::create` and written (page cache, no fsync: what astropy's
//!   `writeto(path, overwrite=True)` does), or `buffer` = a `Vec<u8>` kept across cutouts
//!   (cleared, its capacity kept).
//!
//! `lib` = plan + write (the WCS and HDU in hand); `total` = open + plan + write.
//!
//! Usage:
//!
//! ```text
//! cutout_latency --image FILE [--hdu N] (--cutouts FILE | --cutout RA,DEC,R ...)
//!                [--repeat N] [--no-warmup] [--cold] [--sink file|buffer] [--dir DIR]
//! cutout_latency --image FILE [--hdu N] --stdin [--dir DIR]
//! ```
//!
//! `FILE` of `--cutouts` has one circle per line, `ra dec radius` in degrees (whitespace- or
//! comma-separated, `#` starts a comment). Batch mode: one warm-up pass over all cutouts (unless
//! `--no-warmup`), then `--repeat` timed passes; with `--cold` each cutout is timed once after
//! `sync` and `echo 3 > /proc/sys/vm/drop_caches` (root). One JSON object on stdout:
//!
//! ```text
//! {"mode":"warm","sink":"file","image":"…","shape":[8192,8192],"cutouts":N,"repeat":1,
//!  "lib":{stats},"total":{stats},"open":{stats},"plan":{stats},"write":{stats},
//!  "bytes":N,"rss_kb_start":..,"hwm_kb_start":..,"hwm_kb_after_warmup":..,"hwm_kb_end":..,
//!  "rss_kb_end":..,"cuts":[{"ra":..,"dec":..,"r":..,"ranges":[[x0,x1],[y0,y1]],"bytes":N,
//!  "ms":[..]}, ..]}
//! ```
//!
//! (`stats` = `{"p50_ms","p95_ms","mean_ms","min_ms","max_ms","n"}`; `ms` are the `lib`
//! times; `ranges` are 1-based inclusive pixel ranges, FITS axis order.)
//!
//! `--stdin` mode, for a runner that interleaves this process with another system: one
//! command per line on stdin, one JSON line per command on stdout:
//!
//! * `cut SINK RA DEC R` → `{"ok":true,"open_ms":..,"plan_ms":..,"write_ms":..,"lib_ms":..,
//!   "total_ms":..,"bytes":N,"ranges":[[..],[..]],"rss_kb":..,"hwm_kb":..}` (`{"ok":false,
//!   "error":"…"}` on failure; the runner drops the page cache itself for cold cutouts);
//! * `status` → `{"rss_kb":..,"hwm_kb":..,"rss_file_kb":..,"rss_anon_kb":..}`;
//! * `reset-hwm` → writes `5` to `/proc/self/clear_refs` (VmHWM := VmRSS), then as `status`;
//! * `quit`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tessera_engine::image::{
    CutoutRegion, ImageHdu, ImageWcs, plan_cutout, read_image_hdus, write_cutout,
};

const USAGE: &str = "usage: cutout_latency --image FILE [--hdu N] (--cutouts FILE | --cutout RA,DEC,R ... | --stdin) \
[--repeat N] [--no-warmup] [--cold] [--sink file|buffer] [--dir DIR]";

#[derive(Clone, Copy, PartialEq)]
enum Sink {
    File,
    Buffer,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::File => "file",
            Sink::Buffer => "buffer",
        }
    }

    fn parse(s: &str) -> Result<Sink, String> {
        match s {
            "file" => Ok(Sink::File),
            "buffer" => Ok(Sink::Buffer),
            _ => Err(format!("unknown sink {s:?} (file or buffer)")),
        }
    }
}

struct Args {
    image: PathBuf,
    hdu: usize,
    cutouts: Vec<(f64, f64, f64)>,
    repeat: usize,
    warmup: bool,
    cold: bool,
    sink: Sink,
    dir: PathBuf,
    stdin: bool,
}

/// The timings and result of one cutout.
struct Cut {
    open_ms: f64,
    plan_ms: f64,
    write_ms: f64,
    bytes: u64,
    ranges: Vec<(usize, usize)>,
}

impl Cut {
    fn lib_ms(&self) -> f64 {
        self.plan_ms + self.write_ms
    }
    fn total_ms(&self) -> f64 {
        self.open_ms + self.plan_ms + self.write_ms
    }
}

/// What the cutouts share: the output file's path and the reusable buffer.
struct Cutter {
    image: PathBuf,
    hdu: usize,
    out_file: PathBuf,
    buf: Vec<u8>,
}

impl Cutter {
    fn open(&self) -> Result<(ImageHdu, ImageWcs), String> {
        let hdus = read_image_hdus(&self.image).map_err(|e| e.to_string())?;
        let hdu = hdus
            .into_iter()
            .find(|h| h.index == self.hdu)
            .ok_or_else(|| format!("{}: no image HDU {}", self.image.display(), self.hdu))?;
        let wcs = ImageWcs::from_header(&hdu.header).map_err(|e| e.to_string())?;
        Ok((hdu, wcs))
    }

    fn cut(&mut self, sink: Sink, (ra, dec, radius): (f64, f64, f64)) -> Result<Cut, String> {
        let t0 = Instant::now();
        let (hdu, wcs) = self.open()?;
        let t1 = Instant::now();
        let plan = plan_cutout(&hdu, &wcs, &CutoutRegion::Circle { ra, dec, radius }, None)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("CIRCLE {ra} {dec} {radius} does not overlap the image"))?;
        let t2 = Instant::now();
        let bytes = match sink {
            Sink::File => {
                // Removed first, as astropy's `writeto(overwrite=True)` does (on ext4,
                // truncating a file with unwritten data would start its writeback on close).
                let _ = std::fs::remove_file(&self.out_file);
                let mut f = std::fs::File::create(&self.out_file)
                    .map_err(|e| format!("{}: {e}", self.out_file.display()))?;
                write_cutout(&self.image, &hdu, &plan, &mut f).map_err(|e| e.to_string())?
            }
            Sink::Buffer => {
                self.buf.clear();
                write_cutout(&self.image, &hdu, &plan, &mut self.buf).map_err(|e| e.to_string())?
            }
        };
        let t3 = Instant::now();
        Ok(Cut {
            open_ms: ms(t1 - t0),
            plan_ms: ms(t2 - t1),
            write_ms: ms(t3 - t2),
            bytes,
            ranges: plan.ranges,
        })
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cutout_latency: error: {e}");
            std::process::exit(2);
        }
    };
    let res = if args.stdin {
        serve_stdin(&args)
    } else {
        run_batch(&args).map(|json| println!("{json}"))
    };
    if let Err(e) = res {
        eprintln!("cutout_latency: error: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> Result<Args, String> {
    let mut image = None;
    let mut hdu = 0usize;
    let mut cutouts = Vec::new();
    let mut repeat = 1usize;
    let mut warmup = true;
    let mut cold = false;
    let mut sink = Sink::File;
    let mut dir = None;
    let mut stdin = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--image" => image = Some(PathBuf::from(value("--image")?)),
            "--hdu" => {
                let v = value("--hdu")?;
                hdu = v.parse().map_err(|_| format!("--hdu: not a number: {v}"))?;
            }
            "--cutouts" => {
                let path = value("--cutouts")?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                for (n, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    cutouts.push(parse_circle(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?);
                }
            }
            "--cutout" => cutouts.push(parse_circle(&value("--cutout")?)?),
            "--repeat" => {
                let v = value("--repeat")?;
                repeat = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--repeat: not a positive count: {v}"))?;
            }
            "--no-warmup" => warmup = false,
            "--cold" => cold = true,
            "--sink" => sink = Sink::parse(&value("--sink")?)?,
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--stdin" => stdin = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let image = image.ok_or_else(|| format!("--image is required\n{USAGE}"))?;
    if !stdin && cutouts.is_empty() {
        return Err(format!(
            "no cutouts (--cutouts FILE, --cutout RA,DEC,R or --stdin)\n{USAGE}"
        ));
    }
    // Default output directory: next to the image (same disk, as the runner's astropy file).
    let dir = dir.unwrap_or_else(|| {
        image
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    Ok(Args {
        image,
        hdu,
        cutouts,
        repeat,
        warmup,
        cold,
        sink,
        dir,
        stdin,
    })
}

fn parse_circle(s: &str) -> Result<(f64, f64, f64), String> {
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

fn cutter(a: &Args) -> Result<Cutter, String> {
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    Ok(Cutter {
        image: a.image.clone(),
        hdu: a.hdu,
        out_file: a
            .dir
            .join(format!("cutout-tessera-{}.fits", std::process::id())),
        buf: Vec::new(),
    })
}

/// `(VmRSS, VmHWM, RssFile, RssAnon)` of this process in kB.
fn mem() -> (u64, u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        get("VmRSS:"),
        get("VmHWM:"),
        get("RssFile:"),
        get("RssAnon:"),
    )
}

fn reset_hwm() -> Result<(), String> {
    std::fs::write("/proc/self/clear_refs", "5\n")
        .map_err(|e| format!("writing /proc/self/clear_refs: {e}"))
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

fn ranges_json(r: &[(usize, usize)]) -> String {
    let parts: Vec<String> = r.iter().map(|(a, b)| format!("[{a},{b}]")).collect();
    format!("[{}]", parts.join(","))
}

fn serve_stdin(a: &Args) -> Result<(), String> {
    let mut c = cutter(a)?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [] => continue,
            ["quit"] => break,
            ["status"] => status_json(),
            ["reset-hwm"] => match reset_hwm() {
                Ok(()) => status_json(),
                Err(e) => format!("{{\"ok\":false,\"error\":{}}}", json_str(&e)),
            },
            ["cut", sink, rest @ ..] => {
                match Sink::parse(sink).and_then(|s| Ok((s, parse_circle(&rest.join(" "))?))) {
                    Ok((sink, circle)) => match c.cut(sink, circle) {
                        Ok(cut) => {
                            let (rss, hwm, _, _) = mem();
                            format!(
                                "{{\"ok\":true,\"open_ms\":{:.4},\"plan_ms\":{:.4},\"write_ms\":{:.4},\"lib_ms\":{:.4},\"total_ms\":{:.4},\"bytes\":{},\"ranges\":{},\"rss_kb\":{rss},\"hwm_kb\":{hwm}}}",
                                cut.open_ms,
                                cut.plan_ms,
                                cut.write_ms,
                                cut.lib_ms(),
                                cut.total_ms(),
                                cut.bytes,
                                ranges_json(&cut.ranges),
                            )
                        }
                        Err(e) => format!("{{\"ok\":false,\"error\":{}}}", json_str(&e)),
                    },
                    Err(e) => format!("{{\"ok\":false,\"error\":{}}}", json_str(&e)),
                }
            }
            _ => format!(
                "{{\"ok\":false,\"error\":{}}}",
                json_str(&format!("unknown command {line:?}"))
            ),
        };
        writeln!(stdout, "{reply}").map_err(|e| format!("stdout: {e}"))?;
        stdout.flush().map_err(|e| format!("stdout: {e}"))?;
    }
    let _ = std::fs::remove_file(&c.out_file);
    Ok(())
}

fn status_json() -> String {
    let (rss, hwm, file, anon) = mem();
    format!(
        "{{\"ok\":true,\"rss_kb\":{rss},\"hwm_kb\":{hwm},\"rss_file_kb\":{file},\"rss_anon_kb\":{anon}}}"
    )
}

fn run_batch(a: &Args) -> Result<String, String> {
    let mut c = cutter(a)?;
    let (hdu, _) = c.open()?;
    let shape = hdu.shape.clone();
    drop(hdu);
    let (rss_start, hwm_start, _, _) = mem();
    let n = a.cutouts.len();
    let mut cuts: Vec<Vec<Cut>> = (0..n).map(|_| Vec::new()).collect();
    let mut hwm_after_warmup = hwm_start;
    if a.cold {
        for (i, &circle) in a.cutouts.iter().enumerate() {
            drop_caches()?;
            cuts[i].push(c.cut(a.sink, circle)?);
        }
    } else {
        if a.warmup {
            for &circle in &a.cutouts {
                c.cut(a.sink, circle)?;
            }
            hwm_after_warmup = mem().1;
        }
        for _ in 0..a.repeat {
            for (i, &circle) in a.cutouts.iter().enumerate() {
                cuts[i].push(c.cut(a.sink, circle)?);
            }
        }
    }
    let (rss_end, hwm_end, _, _) = mem();
    let _ = std::fs::remove_file(&c.out_file);

    let all: Vec<&Cut> = cuts.iter().flatten().collect();
    let pick = |f: &dyn Fn(&Cut) -> f64| all.iter().map(|c| f(c)).collect::<Vec<f64>>();
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"mode\":\"{}\",\"sink\":\"{}\",\"image\":{},\"shape\":[{}],\"cutouts\":{n},\"repeat\":{},\
\"lib\":{},\"total\":{},\"open\":{},\"plan\":{},\"write\":{},\"bytes\":{},\
\"rss_kb_start\":{rss_start},\"hwm_kb_start\":{hwm_start},\"hwm_kb_after_warmup\":{hwm_after_warmup},\
\"hwm_kb_end\":{hwm_end},\"rss_kb_end\":{rss_end},\"cuts\":[",
        if a.cold { "cold" } else { "warm" },
        a.sink.name(),
        json_str(&a.image.display().to_string()),
        shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        if a.cold { 1 } else { a.repeat },
        stats(&pick(&Cut::lib_ms)),
        stats(&pick(&Cut::total_ms)),
        stats(&pick(&|c| c.open_ms)),
        stats(&pick(&|c| c.plan_ms)),
        stats(&pick(&|c| c.write_ms)),
        cuts.iter()
            .filter_map(|v| v.first())
            .map(|c| c.bytes)
            .sum::<u64>(),
    );
    for (i, &(ra, dec, r)) in a.cutouts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let first = &cuts[i][0];
        let _ = write!(
            out,
            "{{\"ra\":{ra:?},\"dec\":{dec:?},\"r\":{r:?},\"ranges\":{},\"bytes\":{},\"ms\":[",
            ranges_json(&first.ranges),
            first.bytes
        );
        for (j, cut) in cuts[i].iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "{:.4}", cut.lib_ms());
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    Ok(out)
}

fn stats(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return "null".into();
    }
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    format!(
        "{{\"p50_ms\":{:.4},\"p95_ms\":{:.4},\"mean_ms\":{mean:.4},\"min_ms\":{:.4},\"max_ms\":{:.4},\"n\":{}}}",
        quantile(&s, 0.50),
        quantile(&s, 0.95),
        s[0],
        s[s.len() - 1],
        s.len()
    )
}

/// Linear-interpolated quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
