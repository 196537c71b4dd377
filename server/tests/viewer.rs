//! Image HiPS and the sky viewer, end to end through a fresh `tessera serve`:
//!
//! * `viewer_shows_image_and_catalogue`: on the demo archive, headless Chromium loads
//!   `/viewer` (Aladin Lite 3.8.2 served from where `tools/install-test-deps` installed it);
//!   a screenshot shows non-blank image tiles at M13 and the Hipparcos markers around it, and
//!   the server's request log shows Aladin Lite fetching the image HiPS's properties, Moc and
//!   tiles and the catalogue's Metadata.xml, Allsky files and tiles, all 200, with CORS.
//! * `hipsgen_lint_passes_on_the_image_hips`: Aladin's Hipsgen `LINT` over HTTP on the demo's
//!   image HiPS reports no error.
//! * `static_serving`: on a scratch data root, content types, ETag/304, Last-Modified and
//!   If-Modified-Since, HEAD, large files streamed, `properties` with our
//!   `hips_service_url`, the HiPS list, CORS on every response, and traversal attempts (`..`,
//!   `%2e%2e`, `%2f`, absolute paths, dot files, symlinks out of the HiPS and out of the data
//!   root, a HiPS directory that is a symlink out of the root) answered 404 without a byte of
//!   the files outside.
//!
//! The screenshot is taken over the DevTools protocol (`--remote-debugging-pipe`) after real
//! time has passed, not with `--screenshot --virtual-time-budget`: Aladin Lite decodes tiles
//! with `createImageBitmap` off the main thread, and virtual time runs out before the decoded
//! tiles are drawn (those screenshots show the markers on an empty sky, whatever the budget).
#![allow(clippy::print_stderr)] // what was fetched and the LINT report, for the record

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{demo_root, header_value, http, http_with, start_logged, start_on};

/// M13, the centre of datasets/images/m13.fits (a demo image).
const M13: (f64, f64) = (250.4226, 36.4602);
const CATALOG: &str = "hipparcos.hip2";
const CHROMIUM: &str = "/usr/bin/chromium";
const ALADIN_JAR: &str = "/usr/share/java/aladin.jar";
/// The viewport of the screenshots; the viewer's side list is 220 px wide.
const WIDTH: u32 = 1020;
const HEIGHT: u32 = 700;
const SIDE: u32 = 220;

/// The image HiPS of the demo archive (`tessera serve` builds `ROOT/hips/demo-images` from
/// the demo images on first run).
fn image_hips() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let id = first_image_hips(demo_root()).expect("the demo archive has no image HiPS");
        assert_eq!(id, "demo-images");
        id
    })
}

fn first_image_hips(root: &Path) -> Option<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root.join("hips"))
        .ok()?
        .flatten()
        .filter(|e| e.path().join("properties").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    ids.sort();
    ids.into_iter().next()
}

/// The request log lines `METHOD PATH STATUS` of a `start_logged` server.
fn requests(log: &Path) -> Vec<(String, String, u16)> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .filter_map(|l| {
            let rest = l.split("tessera_server::routes: ").nth(1)?;
            let mut f = rest.split_whitespace();
            let (m, p, s) = (f.next()?, f.next()?, f.next()?);
            Some((m.to_string(), p.to_string(), s.parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Chromium over the DevTools protocol, on a pipe: messages are NUL-terminated JSON, the
// browser reads fd 3 and writes fd 4 (bash redirects them to our stdin/stdout pipes).

struct Browser {
    child: Child,
    to: ChildStdin,
    /// Messages from the browser, read by a thread (so that waits are bounded).
    from: std::sync::mpsc::Receiver<Vec<u8>>,
    next: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch(log: &Path) -> Browser {
        assert!(
            Path::new(CHROMIUM).is_file(),
            "{CHROMIUM} missing: run tools/install-test-deps"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("bash")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 1>&2")
            .arg(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
                "--ignore-gpu-blocklist",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                &format!("--window-size={WIDTH},{HEIGHT}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let mut pipe: BufReader<ChildStdout> = BufReader::new(child.stdout.take().unwrap());
        let (tx, from) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut buf = Vec::new();
                match pipe.read_until(0, &mut buf) {
                    Ok(n) if n > 0 && buf.last() == Some(&0) => {
                        buf.pop();
                        if tx.send(buf).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
        Browser {
            child,
            to,
            from,
            next: 0,
            session: None,
            _profile: profile,
        }
    }

    /// One command; its `result` (events in between are skipped).
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next += 1;
        let mut msg = serde_json::json!({"id": self.next, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = s.clone().into();
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        loop {
            // A hung browser fails the test (and is killed on drop) instead of hanging it.
            let buf = self
                .from
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no answer from Chromium to {method}: {e}"));
            let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            if v["id"].as_u64() == Some(self.next) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page of WIDTH × HEIGHT CSS pixels.
    fn open(&mut self, url: &str) {
        let t = self.call(
            "Target.createTarget",
            serde_json::json!({"url": "about:blank"}),
        );
        let target = t["targetId"].as_str().unwrap().to_string();
        let a = self.call(
            "Target.attachToTarget",
            serde_json::json!({"targetId": target, "flatten": true}),
        );
        self.session = Some(a["sessionId"].as_str().unwrap().to_string());
        self.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        );
        self.call("Page.navigate", serde_json::json!({"url": url}));
    }

    fn eval(&mut self, js: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": js, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// A PNG of the page.
    fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine as _;
        let r = self.call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        );
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a screenshot shows.
#[derive(Debug)]
struct Shot {
    /// Pixels of the box around the view centre that differ from the empty sky's colour
    /// (the most common colour of the Aladin Lite area).
    image_pixels: usize,
    /// Distinct colours in that box (an empty sky has one).
    image_levels: usize,
    /// Pixels of the first catalogue's marker colour (#00ff00) in the Aladin Lite area.
    markers: usize,
}

fn analyse(png_bytes: &[u8]) -> Shot {
    let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let ch = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        c => panic!("screenshot colour type {c:?}"),
    };
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
    let px = |x: u32, y: u32| {
        let i = (y as usize * info.width as usize + x as usize) * ch;
        [buf[i], buf[i + 1], buf[i + 2]]
    };
    let mut counts = std::collections::HashMap::new();
    let mut markers = 0;
    for y in 0..HEIGHT {
        for x in SIDE + 10..WIDTH {
            let p = px(x, y);
            *counts.entry(p).or_insert(0usize) += 1;
            if p[1] >= 180 && p[0] <= 100 && p[2] <= 100 {
                markers += 1;
            }
        }
    }
    let background = counts
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(p, _)| p)
        .unwrap();
    let (cx, cy) = ((SIDE + WIDTH) / 2, HEIGHT / 2);
    let mut levels = std::collections::HashSet::new();
    let mut image_pixels = 0;
    for y in cy - 60..cy + 60 {
        for x in cx - 60..cx + 60 {
            let p = px(x, y);
            if p.iter().zip(background).any(|(&a, b)| a.abs_diff(b) > 30) {
                image_pixels += 1;
            }
            levels.insert(p);
        }
    }
    Shot {
        image_pixels,
        image_levels: levels.len(),
        markers,
    }
}

#[test]
fn viewer_shows_image_and_catalogue() {
    let id = image_hips();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("server.log");
    let srv = start_logged(demo_root(), &[], &state.path().join("state"), &log);
    let a = srv.addr.clone();

    // The home page links the viewer; the viewer loads the locally installed Aladin Lite.
    let (st, _, body) = http(&a, "GET", "/", None);
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("href=\"/viewer\""));
    let (st, head, body) = http(&a, "GET", "/viewer", None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("import A from '/static/aladin-lite/aladin.js'"),
        "the viewer does not use the local Aladin Lite (tools/install-test-deps installs it \
         into ~/.cache/tessera-web):\n{page}"
    );
    let (st, head, _) = http(&a, "HEAD", "/static/aladin-lite/aladin.js", None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    let len: u64 = header_value(&head, "content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert!(len > 1_000_000, "aladin.js of {len} bytes");

    // The browser, at M13 with a field wide enough for a few Hipparcos stars.
    let url = format!(
        "http://{a}/viewer?image={id}&cats={CATALOG}&target={}%20{}&fov=0.8",
        M13.0, M13.1
    );
    let mut b = Browser::launch(&state.path().join("chromium.log"));
    b.open(&url);
    let t0 = Instant::now();
    loop {
        let title = b.eval("document.title");
        if title.as_str() == Some("Tessera viewer: ready") {
            break;
        }
        assert!(
            !title.as_str().unwrap_or("").contains("failed"),
            "viewer failed: {title}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "viewer not ready: {title}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let layers = b.eval(
        "JSON.stringify({images: window.tessera.images.map(p => p.id), \
         cats: window.tessera.cats.map(p => p.id)})",
    );
    eprintln!(
        "viewer ready after {:.1} s: {layers}",
        t0.elapsed().as_secs_f64()
    );
    let layers = layers.as_str().unwrap();
    assert!(layers.contains(&format!("\"{id}\"")) && layers.contains(CATALOG));

    // Tiles arrive and are decoded asynchronously: screenshots until both show (bounded).
    let (png_bytes, shot) = loop {
        std::thread::sleep(Duration::from_millis(750));
        let png_bytes = b.screenshot();
        let shot = analyse(&png_bytes);
        let done = shot.image_pixels >= 1000 && shot.image_levels >= 16 && shot.markers >= 30;
        if done || t0.elapsed() > Duration::from_secs(120) {
            break (png_bytes, shot);
        }
    };
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer-screenshot.png");
    std::fs::write(&keep, &png_bytes).unwrap();
    eprintln!("{shot:?}; screenshot in {}", keep.display());
    drop(b);
    assert!(
        shot.image_pixels >= 1000 && shot.image_levels >= 16,
        "no image tiles at M13 in the screenshot ({}): {shot:?}",
        keep.display()
    );
    assert!(
        shot.markers >= 30,
        "no catalogue markers in the screenshot ({}): {shot:?}",
        keep.display()
    );

    // What Aladin Lite fetched, from the server's request log.
    let reqs = requests(&log);
    let hips = |name: &str| {
        reqs.iter()
            .filter(move |(m, p, _)| m == "GET" && p.starts_with(&format!("/hips/{name}/")))
            .collect::<Vec<_>>()
    };
    let img = hips(id);
    let cat = hips(CATALOG);
    for (_, p, s) in img.iter().chain(&cat) {
        assert!(*s == 200 || *s == 304 || *s == 404, "{p}: {s}");
    }
    let ok = |v: &[&(String, String, u16)], pred: &dyn Fn(&str) -> bool| {
        v.iter().filter(|(_, p, s)| *s == 200 && pred(p)).count()
    };
    assert_eq!(ok(&img, &|p| p.ends_with("/properties")), 1, "{img:?}");
    assert!(ok(&img, &|p| p.ends_with("/Moc.fits")) >= 1, "{img:?}");
    let tile = |p: &str| {
        p.contains("/Norder")
            && p.contains("/Npix")
            && [".png", ".jpg", ".webp", ".fits"]
                .iter()
                .any(|e| p.ends_with(e))
    };
    let image_tiles = ok(&img, &tile);
    assert!(image_tiles >= 1, "no image tile fetched: {img:?}");
    assert_eq!(ok(&cat, &|p| p.ends_with("/Metadata.xml")), 1, "{cat:?}");
    for k in [1, 2] {
        assert_eq!(
            ok(&cat, &|p| p.ends_with(&format!("/Norder{k}/Allsky.tsv"))),
            1,
            "{cat:?}"
        );
    }
    let cat_tiles = ok(&cat, &|p| p.contains("/Npix") && p.ends_with(".tsv"));
    assert!(cat_tiles >= 1, "no catalogue tile fetched: {cat:?}");
    eprintln!(
        "Aladin Lite fetched {} image HiPS files ({image_tiles} tiles) and {} catalogue HiPS \
         files ({cat_tiles} tiles)",
        img.len(),
        cat.len()
    );

    // Every /hips response carries CORS, whatever its status.
    for p in [
        format!("/hips/{id}/properties"),
        format!("/hips/{CATALOG}/Norder1/Allsky.tsv"),
        format!("/hips/{CATALOG}/Norder29/Dir0/Npix1.tsv"),
        "/hips/list".to_string(),
        "/hips/no-such-hips/properties".to_string(),
    ] {
        let (_, head, _) = http(&a, "GET", &p, None);
        assert_eq!(
            header_value(&head, "access-control-allow-origin"),
            Some("*"),
            "{p}"
        );
    }
}

#[test]
fn hipsgen_lint_passes_on_the_image_hips() {
    let id = image_hips();
    let state = tempfile::tempdir().unwrap();
    let srv = start_on(demo_root(), &[], state.path());
    let out = Command::new("timeout")
        .arg("300")
        .args([
            "java",
            "-Djava.awt.headless=true",
            "-jar",
            ALADIN_JAR,
            "-hipsgen",
        ])
        .arg(format!("out=http://{}/hips/{id}", srv.addr))
        .arg("LINT")
        .current_dir(state.path())
        .output()
        .unwrap();
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the ANSI colour codes.
    let mut text = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            text.push(c);
        }
    }
    eprintln!("{text}");
    assert!(
        text.contains("is IVOA HiPS 1.0 compatible")
            || text.contains("is fully IVOA HiPS 1.0 compatible")
            || text.contains("IVOA HiPS 1.0 compatible but with warnings"),
        "no compatible verdict:\n{text}"
    );
    assert!(!text.contains("is not IVOA HiPS 1.0 compatible"), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "LINT errors: {errors:#?}");
}

// ---------------------------------------------------------------------------------------
// Static serving on a scratch data root.

const SECRET: &str = "TOP-SECRET-7f3a";

/// A data root with `hips/t/` (a small image HiPS of made-up files), a secret file in the
/// root, and outside the root a secret file and a HiPS directory; symlinks out of the HiPS,
/// out of the root, and one inside the HiPS.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    hips: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    let hips = root.join("hips/t");
    for d in [hips.join("Norder3/Dir0"), outside.join("hips-out")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(root.join("secret.txt"), SECRET).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    std::fs::write(
        outside.join("hips-out/properties"),
        format!("creator_did = ivo://x/out\nobs_title = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        hips.join("properties"),
        "creator_did          = ivo://tessera/test/t\n\
         obs_title            = Test image HiPS\n\
         #hips_service_url    = ex: http://yourHipsServer/t\n\
         \n\
         dataproduct_type     = image\n\
         hips_version         = 1.4\n\
         hips_release_date    = 2026-11-21T12:00Z\n\
         hips_status          = public master clonableOnce\n\
         hips_tile_format     = png fits\n\
         hips_order           = 3\n\
         hips_frame           = equatorial\n\
         hips_service_url     = http://somewhere.else/t\n\
         hips_service_url_1   = http://mirror.example/t\n",
    )
    .unwrap();
    let files: [(&str, Vec<u8>); 7] = [
        ("Norder3/Dir0/Npix147.fits", fits_like(2880 * 3)),
        (
            "Norder3/Dir0/Npix147.png",
            b"\x89PNG\r\n\x1a\nnot really".to_vec(),
        ),
        ("Norder3/Dir0/Npix147.jpg", b"\xff\xd8\xffjpeg".to_vec()),
        ("Norder3/Allsky.png", b"\x89PNG\r\n\x1a\nallsky".to_vec()),
        ("Moc.fits", fits_like(2880 * 2)),
        ("index.html", b"<!doctype html><title>t</title>".to_vec()),
        // Larger than what is read in one go: streamed.
        ("Norder3/Allsky.fits", fits_like(9 << 20)),
    ];
    for (p, b) in files {
        std::fs::write(hips.join(p), b).unwrap();
    }
    let link = |target: &Path, at: &Path| std::os::unix::fs::symlink(target, at).unwrap();
    link(
        &outside.join("secret.txt"),
        &hips.join("Norder3/Dir0/Npix1.fits"),
    );
    link(Path::new("../../secret.txt"), &hips.join("up.png"));
    link(
        Path::new("Norder3/Dir0/Npix147.png"),
        &hips.join("inner.png"),
    );
    link(&outside.join("hips-out"), &root.join("hips/escape"));
    std::fs::write(hips.join(".hidden"), SECRET).unwrap();
    Scratch {
        _dir: dir,
        root,
        hips,
    }
}

/// Deterministic bytes of `n` (the content does not matter, the identity of the bytes does).
fn fits_like(n: usize) -> Vec<u8> {
    let mut v = b"SIMPLE  =                    T".to_vec();
    v.extend((0..n - v.len()).map(|i| (i * 7 % 251) as u8));
    v
}

#[test]
fn static_serving() {
    let s = scratch();
    let state = tempfile::tempdir().unwrap();
    let srv = start_on(&s.root, &[], state.path());
    let a = srv.addr.as_str();
    let get = |p: &str| http(a, "GET", p, None);
    let cors = |head: &str, what: &str| {
        assert_eq!(
            header_value(head, "access-control-allow-origin"),
            Some("*"),
            "{what}: {head}"
        );
    };

    // Content types and bytes.
    for (p, ty) in [
        ("Norder3/Dir0/Npix147.fits", "application/fits"),
        ("Norder3/Dir0/Npix147.png", "image/png"),
        ("Norder3/Dir0/Npix147.jpg", "image/jpeg"),
        ("Norder3/Allsky.png", "image/png"),
        ("Norder3/Allsky.fits", "application/fits"),
        ("Moc.fits", "application/fits"),
        ("index.html", "text/html; charset=utf-8"),
        ("inner.png", "image/png"),
    ] {
        let (st, head, body) = get(&format!("/hips/t/{p}"));
        assert_eq!(st, 200, "{p}");
        assert_eq!(header_value(&head, "content-type"), Some(ty), "{p}");
        assert_eq!(body, std::fs::read(s.hips.join(p)).unwrap(), "{p}");
        assert_eq!(
            header_value(&head, "content-length").map(|v| v.parse::<usize>().unwrap()),
            Some(body.len()),
            "{p}"
        );
        cors(&head, p);
        assert!(header_value(&head, "cache-control").is_some(), "{p}");
    }
    let (st, _, body) = get("/hips/t/");
    assert_eq!(
        (st, body),
        (200, std::fs::read(s.hips.join("index.html")).unwrap())
    );
    let (st, head, _) = get("/hips/t");
    assert_eq!(st, 308);
    assert_eq!(header_value(&head, "location"), Some("/hips/t/"));

    // properties: ours as hips_service_url, the file's own ones and blank lines dropped.
    let (st, head, body) = get("/hips/t/properties");
    assert_eq!(st, 200);
    assert_eq!(
        header_value(&head, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    let p = String::from_utf8(body).unwrap();
    let urls: Vec<&str> = p
        .lines()
        .filter(|l| l.starts_with("hips_service_url"))
        .collect();
    assert_eq!(urls.len(), 1, "{p}");
    assert_eq!(
        urls[0].split_once('=').unwrap().1.trim(),
        format!("http://{a}/hips/t")
    );
    assert!(
        !p.contains("\n\n") && p.contains("hips_order           = 3"),
        "{p}"
    );
    let tag = header_value(&head, "etag").unwrap().to_string();
    // Behind a proxy the URL, and so the ETag, follow X-Forwarded-*.
    let (_, head2, body2) = http_with(
        a,
        "GET",
        "/hips/t/properties",
        &[
            ("X-Forwarded-Host", "sky.example.org"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert!(
        String::from_utf8(body2)
            .unwrap()
            .contains("= https://sky.example.org/hips/t\n")
    );
    assert_ne!(header_value(&head2, "etag").unwrap(), tag);
    let (st, _, body) = http_with(a, "GET", "/hips/t/properties", &[("If-None-Match", &tag)]);
    assert_eq!((st, body.len()), (304, 0));

    // ETag / Last-Modified / 304.
    let tile = "/hips/t/Norder3/Dir0/Npix147.fits";
    let (_, head, _) = get(tile);
    let tag = header_value(&head, "etag").unwrap().to_string();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    let lm = header_value(&head, "last-modified").unwrap().to_string();
    assert!(lm.ends_with(" gmt"), "{lm}");
    let (st, head, body) = http_with(a, "GET", tile, &[("If-None-Match", &tag)]);
    assert_eq!((st, body.len()), (304, 0));
    assert_eq!(header_value(&head, "etag"), Some(tag.as_str()));
    cors(&head, "304");
    let (st, _, _) = http_with(
        a,
        "GET",
        tile,
        &[("If-None-Match", &format!("\"x\", {tag}"))],
    );
    assert_eq!(st, 304);
    let (st, _, body) = http_with(a, "GET", tile, &[("If-None-Match", "\"other\"")]);
    assert_eq!((st, body.len()), (200, 2880 * 3));
    let (st, _, _) = http_with(a, "GET", tile, &[("If-Modified-Since", &lm)]);
    assert_eq!(st, 304);
    let (st, _, _) = http_with(
        a,
        "GET",
        tile,
        &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    );
    assert_eq!(st, 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let (st, _, _) = http_with(
        a,
        "GET",
        tile,
        &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
    );
    assert_eq!(st, 200);

    // HEAD: the headers of GET, no body.
    for p in [
        tile,
        "/hips/t/Norder3/Allsky.fits",
        "/hips/t/properties",
        "/hips/t/",
    ] {
        let (st, head, body) = http(a, "HEAD", p, None);
        let (_, ghead, gbody) = get(p);
        assert_eq!((st, body.len()), (200, 0), "HEAD {p}");
        for h in ["content-type", "content-length", "etag", "last-modified"] {
            assert_eq!(
                header_value(&head, h),
                header_value(&ghead, h),
                "HEAD {p}: {h}"
            );
        }
        assert_eq!(
            header_value(&head, "content-length").unwrap(),
            gbody.len().to_string()
        );
    }

    // The HiPS list: our record with our URL, nothing from outside the root.
    let (st, head, body) = get("/hips/list");
    assert_eq!(st, 200);
    cors(&head, "list");
    let list = String::from_utf8(body).unwrap();
    assert!(
        list.contains(&format!("hips_service_url    = http://{a}/hips/t\n")),
        "{list}"
    );
    assert!(list.contains("creator_did          = ivo://tessera/test/t"));
    assert!(!list.contains(SECRET) && !list.contains("escape"), "{list}");
    assert!(!list.contains("ex: http://yourHipsServer"), "{list}");

    // Traversal: nothing outside the HiPS is ever served.
    for p in [
        "/hips/t/../../secret.txt",
        "/hips/t/../secret.txt",
        "/hips/t/..%2f..%2fsecret.txt",
        "/hips/t/%2e%2e/%2e%2e/secret.txt",
        "/hips/t/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/hips/t/Norder3/../../../secret.txt",
        "/hips/%2e%2e/secret.txt",
        "/hips/..%2fsecret.txt/properties",
        "/hips/t//etc/passwd",
        "/hips/t/%2fetc%2fpasswd",
        "/hips/t/%2f%2e%2e%2fsecret.txt",
        "/hips/t/Norder3/Dir0/Npix1.fits",
        "/hips/t/up.png",
        "/hips/t/.hidden",
        "/hips/t/./properties",
        "/hips/t/Norder3",
        "/hips/t/Norder3/Dir0/",
        "/hips/t/%00properties",
        "/hips/t/..\\..\\secret.txt",
        "/hips/escape/properties",
        "/hips/escape/",
        "/hips/.t/properties",
    ] {
        let (st, head, body) = get(p);
        assert!(st == 404 || st == 400, "{p}: {st}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains(SECRET), "{p}: served a file outside: {text}");
        assert!(!body.contains(&b'\t') && body.len() < 200, "{p}: {text}");
        if st == 404 {
            // (a 400 may come from the HTTP parser, before any route)
            cors(&head, p);
        }
    }
    // Absolute-form and dot-segment request targets sent as such.
    for target in [
        "http://x/hips/t/../../secret.txt",
        "/hips/t/./../../secret.txt",
    ] {
        let (st, _, body) = http(a, "GET", target, None);
        assert!(st == 404 || st == 400, "{target}: {st}");
        assert!(!String::from_utf8_lossy(&body).contains(SECRET));
    }
}
