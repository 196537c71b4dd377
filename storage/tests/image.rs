//! FITS image core against astropy: WCS on real files and every projection of the WCSLIB
//! 1904-66 test headers, Cutout2D-identical circle cutouts, BAND on a real AWAV cube,
//! fitsverify on every cutout, robustness on broken files, and bounded memory on a large
//! synthetic image.
//!
//! Needs the Python test venv (`tools/python-env`, astropy's test data lives in it),
//! `fitsverify` (Debian package `fitsverify`) and the images of
//! `tools/fetch-datasets test-images` (fetched on first use).

#![allow(clippy::print_stderr)] // the test reports the agreement it measured

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Value, json};
use tessera_storage::image::{
    CutoutRegion, Frame, ImageError, ImageHdu, ImageWcs, footprint, plan_cutout, read_image_hdus,
    write_cutout,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let out = Command::new(repo_root().join("tools/python-env"))
            .output()
            .expect("running tools/python-env");
        assert!(
            out.status.success(),
            "tools/python-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("python-env printed nothing")
                .trim(),
        )
    })
}

fn site_packages() -> PathBuf {
    venv().join("lib/python3.11/site-packages")
}

fn astropy_file(rel: &str) -> PathBuf {
    let p = site_packages().join("astropy").join(rel);
    assert!(p.exists(), "astropy test file missing: {}", p.display());
    p
}

fn images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(repo_root().join("tools/fetch-datasets"))
            .arg("test-images")
            .output()
            .expect("running tools/fetch-datasets test-images");
        assert!(
            out.status.success(),
            "tools/fetch-datasets test-images: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("fetch-datasets printed nothing")
                .trim(),
        )
    })
}

fn image(name: &str) -> PathBuf {
    images_dir().join(name)
}

/// Runs cutout_check.py on a list of tasks; returns one result per task.
fn astropy(tasks: &[Value]) -> Vec<Value> {
    let mut child = Command::new(venv().join("bin/python"))
        .arg(repo_root().join("tests/python/cutout_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cutout_check.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(tasks).expect("json").as_bytes())
        .expect("writing tasks");
    let out = child.wait_with_output().expect("cutout_check.py");
    assert!(
        out.status.success(),
        "cutout_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).expect("cutout_check.py output");
    assert_eq!(v.len(), tasks.len());
    for (t, r) in tasks.iter().zip(&v) {
        assert!(r.get("error").is_none(), "astropy task {t} failed: {r}");
    }
    v
}

/// fitsverify's findings (warnings and errors) per HDU (0-based), card numbers removed.
fn fitsverify_report(path: &Path) -> (i32, Vec<Vec<String>>) {
    let out = Command::new("fitsverify")
        .arg(path)
        .output()
        .expect("running fitsverify (Debian package `fitsverify`)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut hdus: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("=================== HDU") {
            hdus.push(Vec::new());
        } else if line.starts_with("*** Warning") || line.starts_with("*** Error") {
            let mut msg = line.to_string();
            // "Keyword #24, EPOCH ..." -> "Keyword EPOCH ...": card numbers shift in a cutout.
            while let Some(i) = msg.find('#') {
                let end = msg[i + 1..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(msg.len(), |e| i + 1 + e);
                msg.replace_range(i..end, "");
            }
            // Warnings about a duplicated keyword name card numbers too.
            let msg: String = msg.split(" card ").next().unwrap_or("").to_string();
            if let Some(h) = hdus.last_mut() {
                h.push(msg);
            }
        }
    }
    (out.status.code().unwrap_or(-1), hdus)
}

/// `fitsverify -q` on a cutout: exit 0, or, when the source HDU itself has findings
/// (inherited cards such as a deprecated EPOCH or an unparsable DATE-OBS, which the cutout
/// copies as they are), no finding that the source HDU does not have.
fn fitsverify(path: &Path, source: Option<(&Path, usize)>) {
    let q = Command::new("fitsverify")
        .arg("-q")
        .arg(path)
        .output()
        .expect("running fitsverify (Debian package `fitsverify`)");
    if q.status.success() {
        return;
    }
    let (_, mine) = fitsverify_report(path);
    let mine = mine.into_iter().next().unwrap_or_default();
    let theirs = match source {
        Some((src, hdu)) => fitsverify_report(src)
            .1
            .into_iter()
            .nth(hdu)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let new: Vec<&String> = mine.iter().filter(|m| !theirs.contains(m)).collect();
    assert!(
        new.is_empty() && source.is_some(),
        "fitsverify -q {}: {}\nfindings not in the source HDU: {new:#?}",
        path.display(),
        String::from_utf8_lossy(&q.stdout),
    );
}

fn pair(v: &Value) -> (f64, f64) {
    (
        v[0].as_f64().unwrap_or(f64::NAN),
        v[1].as_f64().unwrap_or(f64::NAN),
    )
}

fn ang_dist(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (ra1, de1, ra2, de2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let s = ((de2 - de1) / 2.0).sin().powi(2)
        + de1.cos() * de2.cos() * ((ra2 - ra1) / 2.0).sin().powi(2);
    (2.0 * s.sqrt().asin()).to_degrees()
}

fn hdu_of(path: &Path, index: usize) -> ImageHdu {
    read_image_hdus(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|h| h.index == index)
        .unwrap_or_else(|| panic!("{} has no image HDU {index}", path.display()))
}

/// A grid of pixels spanning the image (edges at 0.5 and N + 0.5 included).
fn grid(na: usize, nb: usize, k: usize) -> Vec<(f64, f64)> {
    let mut v = Vec::new();
    for i in 0..k {
        for j in 0..k {
            let x = 0.5 + na as f64 * i as f64 / (k - 1) as f64;
            let y = 0.5 + nb as f64 * j as f64 / (k - 1) as f64;
            v.push((x, y));
        }
    }
    v
}

/// Compares pixel↔sky both ways with astropy on a grid; returns (max error in pixels of
/// pix→sky, max error of sky→pix, points compared).
fn compare_wcs(path: &Path, hdu: &ImageHdu, wcs: &ImageWcs, k: usize) -> (f64, f64, usize) {
    let (a, b) = wcs.celestial_axes();
    let pixels = grid(hdu.shape[a], hdu.shape[b], k);
    // Sky positions for the inverse test: our native coordinates of offset pixels.
    let mut sky_px = Vec::new();
    let mut sky = Vec::new();
    for &(x, y) in &pixels {
        if let Some(s) = wcs.pixel_to_native(x + 0.37, y - 0.29) {
            sky_px.push((x + 0.37, y - 0.29));
            sky.push(s);
        }
    }
    let r = &astropy(&[json!({
        "op": "wcs", "file": path, "hdu": hdu.index,
        "pixels": pixels.iter().map(|p| [p.0, p.1]).collect::<Vec<_>>(),
        "sky": sky.iter().map(|p| [p.0, p.1]).collect::<Vec<_>>(),
    })])[0];
    let scale = wcs.pixel_scale_deg();
    let mut worst_fwd: f64 = 0.0;
    let mut n = 0;
    for (i, &(x, y)) in pixels.iter().enumerate() {
        let world = pair(&r["world"][i]);
        let icrs = pair(&r["icrs"][i]);
        let mine = wcs.pixel_to_native(x, y);
        match (mine, world.0.is_finite()) {
            (Some(m), true) => {
                let d = ang_dist(m, world) / scale;
                worst_fwd = worst_fwd.max(d);
                let s = wcs.pixel_to_sky(x, y).expect("sky");
                let di = ang_dist(s, icrs) / scale;
                worst_fwd = worst_fwd.max(di);
                n += 1;
            }
            (None, false) => {}
            (m, _) => panic!(
                "{}: pixel ({x}, {y}): ours {m:?}, astropy {world:?}",
                path.display()
            ),
        }
    }
    let mut worst_inv: f64 = 0.0;
    for (i, &s) in sky.iter().enumerate() {
        let theirs = pair(&r["pix"][i]);
        let mine = wcs.native_to_pixel(s.0, s.1).expect("sky_to_pixel");
        if theirs.0.is_finite() {
            worst_inv = worst_inv
                .max((mine.0 - theirs.0).abs())
                .max((mine.1 - theirs.1).abs());
            // And the round trip through ICRS.
            let icrs = wcs.pixel_to_sky(sky_px[i].0, sky_px[i].1).expect("icrs");
            let back = wcs.sky_to_pixel(icrs.0, icrs.1).expect("back");
            worst_inv = worst_inv
                .max((back.0 - sky_px[i].0).abs())
                .max((back.1 - sky_px[i].1).abs());
        }
    }
    let scales = (
        r["scales"][0].as_f64().unwrap_or(0.0),
        r["scales"][1].as_f64().unwrap_or(0.0),
    );
    let mine = wcs.pixel_scales();
    assert!(
        (mine.0 - scales.0).abs() <= 1e-12 * scales.0
            && (mine.1 - scales.1).abs() <= 1e-12 * scales.1,
        "{}: pixel scales {mine:?}, astropy {scales:?}",
        path.display()
    );
    (worst_fwd, worst_inv, n)
}

fn real_files() -> Vec<(PathBuf, usize)> {
    vec![
        (
            astropy_file("io/fits/hdu/compressed/tests/data/m13.fits"),
            0,
        ),
        (astropy_file("nddata/tests/data/sip-wcs.fits"), 0),
        (image("a478hst-cutout.fits"), 1),
        (image("ukidss-zpn.fits"), 1),
        (image("magpis-glon-sin.fits"), 0),
        (image("first-4axis.fits"), 0),
        (image("minicube.fits"), 1),
    ]
}

#[test]
fn wcs_matches_astropy_on_real_files() {
    for (path, index) in real_files() {
        let hdu = hdu_of(&path, index);
        let wcs = ImageWcs::from_header(&hdu.header).unwrap_or_else(|e| panic!("{e}"));
        let (fwd, inv, n) = compare_wcs(&path, &hdu, &wcs, 9);
        eprintln!(
            "{}: {} {} pix->sky {fwd:.2e} px, sky->pix {inv:.2e} px over {n} points",
            path.display(),
            wcs.projection(),
            if wcs.has_sip() { "+SIP" } else { "" }
        );
        assert!(n >= 50, "{}: only {n} points compared", path.display());
        assert!(
            fwd < 1e-6 && inv < 1e-6,
            "{}: pix->sky {fwd:e} px, sky->pix {inv:e} px",
            path.display()
        );
    }
}

#[test]
fn frames_and_spectral_axes() {
    let magpis = hdu_of(&image("magpis-glon-sin.fits"), 0);
    let w = ImageWcs::from_header(&magpis.header).expect("magpis");
    assert_eq!(w.frame(), Frame::Galactic);
    assert_eq!(w.projection(), "SIN");
    assert!(w.spectral().is_none(), "LAMBDA is no spectral axis we know");

    let cube = hdu_of(&image("minicube.fits"), 1);
    let w = ImageWcs::from_header(&cube.header).expect("minicube");
    let s = w.spectral().expect("AWAV axis");
    assert_eq!((s.axis, s.len, s.ctype.as_str()), (3, 3681, "AWAV"));
    let (lo, hi) = s.coverage_m().expect("coverage");
    assert!((lo - (4749.890625 - 0.625) * 1e-10).abs() < 1e-16, "{lo}");
    assert!(
        (hi - (4749.890625 + 1.25 * 3680.0 + 0.625) * 1e-10).abs() < 1e-16,
        "{hi}"
    );
    let r = &astropy(&[
        json!({"op": "band", "file": image("minicube.fits"), "hdu": 1, "lo": 6.0e-7, "hi": 6.1e-7}),
    ])[0];
    let w1 = r["world"][0].as_f64().expect("w1");
    assert!(
        (s.si_at(1.0) - w1).abs() < 1e-18,
        "AWAV at pixel 1: {} vs astropy {w1}",
        s.si_at(1.0)
    );

    // FREQ axis beyond NAXIS (FIRST: NAXIS = 2, CTYPE3 = FREQ): a single plane.
    let first = hdu_of(&image("first-4axis.fits"), 0);
    let w = ImageWcs::from_header(&first.header).expect("FIRST");
    let s = w.spectral().expect("FREQ axis");
    assert_eq!((s.axis, s.len), (3, 1));
    let (lo, hi) = s.coverage_m().expect("coverage");
    let c = 299_792_458.0;
    assert!(
        (lo - c / (1364.9e6 + 21.875e6 / 2.0)).abs() < 1e-12
            && (hi - c / (1364.9e6 - 21.875e6 / 2.0)).abs() < 1e-12
    );
}

/// Builds a FITS file from a header-only `.hdr` (80-character cards, no END) and zero data.
fn fits_from_hdr(hdr: &Path, out: &Path) {
    let text = std::fs::read_to_string(hdr).expect("hdr");
    let text: String = text.chars().filter(|&c| c != '\n').collect();
    let mut cards: Vec<String> = Vec::new();
    let mut naxis = [0usize; 2];
    let mut bitpix = 0i64;
    for chunk in text.as_bytes().chunks(80) {
        let card = String::from_utf8_lossy(chunk).to_string();
        if card.starts_with("END ") || card.trim() == "END" {
            break;
        }
        let value = |c: &str| c[10..].split('/').next().unwrap_or("").trim().to_string();
        if card.starts_with("NAXIS1 ") {
            naxis[0] = value(&card).parse().expect("NAXIS1");
        }
        if card.starts_with("NAXIS2 ") {
            naxis[1] = value(&card).parse().expect("NAXIS2");
        }
        if card.starts_with("BITPIX ") {
            bitpix = value(&card).parse().expect("BITPIX");
        }
        cards.push(format!("{card:<80}"));
    }
    cards.push(format!("{:<80}", "END"));
    let mut bytes = cards.concat().into_bytes();
    bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
    let data = naxis[0] * naxis[1] * (bitpix.unsigned_abs() as usize / 8);
    bytes.resize(bytes.len() + data.div_ceil(2880) * 2880, 0);
    std::fs::write(out, bytes).expect("writing fits");
}

#[test]
fn every_projection_of_the_wcslib_test_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let maps = site_packages().join("astropy/wcs/tests/data/maps");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&maps)
        .expect("maps")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    let unsupported = ["BON", "PCO", "TSC", "CSC", "QSC"];
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for hdr in names {
        let code = hdr
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("1904-66_"))
            .expect("name")
            .to_string();
        let path = dir.path().join(format!("{code}.fits"));
        fits_from_hdr(&hdr, &path);
        let hdu = hdu_of(&path, 0);
        match ImageWcs::from_header(&hdu.header) {
            Err(ImageError::UnsupportedProjection {
                code: c, keyword, ..
            }) => {
                assert_eq!((c.as_str(), keyword.as_str()), (code.as_str(), "CTYPE1"));
                assert!(
                    unsupported.contains(&code.as_str()),
                    "{code} unexpectedly unsupported"
                );
                report.push(format!("{code}: unsupported (clear error)"));
            }
            Err(e) => {
                failures.push(format!("{code}: {e}"));
            }
            Ok(wcs) => {
                assert!(
                    !unsupported.contains(&code.as_str()),
                    "{code} unexpectedly supported"
                );
                let (fwd, inv, n) = compare_wcs(&path, &hdu, &wcs, 13);
                report.push(format!(
                    "{code}: pix->sky {fwd:.1e} px, sky->pix {inv:.1e} px ({n} points)"
                ));
                if !(fwd < 1e-6 && inv < 1e-6 && n > 0) {
                    failures.push(format!(
                        "{code}: pix->sky {fwd:e} px, sky->pix {inv:e} px over {n} points"
                    ));
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "projections disagreeing with astropy:\n{}",
        failures.join("\n")
    );
}

/// One circle cutout made by us, to be compared with Cutout2D.
struct CircleCase {
    tag: String,
    path: PathBuf,
    index: usize,
    ra: f64,
    dec: f64,
    radius: f64,
    out: PathBuf,
    ranges: Option<((usize, usize), (usize, usize))>,
}

/// Plans and writes a circle cutout (fitsverify on it); the astropy side comes later, in
/// one batch.
fn make_circle(
    path: &Path,
    index: usize,
    (ra, dec, radius): (f64, f64, f64),
    out_dir: &Path,
    tag: &str,
) -> CircleCase {
    let hdu = hdu_of(path, index);
    let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
    let plan =
        plan_cutout(&hdu, &wcs, &CutoutRegion::Circle { ra, dec, radius }, None).expect("plan");
    let out = out_dir.join(format!("{tag}.fits"));
    if let Some(plan) = &plan {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&out).expect("create"));
        let n = write_cutout(path, &hdu, plan, &mut f).expect("write");
        drop(f);
        assert_eq!(n, std::fs::metadata(&out).expect("meta").len());
        assert_eq!(n, plan.file_len(hdu.bytes_per_pixel()));
        fitsverify(&out, Some((path, index)));
    }
    let (a, b) = wcs.celestial_axes();
    CircleCase {
        tag: tag.to_string(),
        path: path.to_path_buf(),
        index,
        ra,
        dec,
        radius,
        out,
        ranges: plan.map(|p| (p.ranges[a], p.ranges[b])),
    }
}

/// Compares the cutouts with Cutout2D (one Python run); returns how many overlapped.
fn check_circles(cases: &[CircleCase]) -> usize {
    let tasks: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "op": "cutout", "file": &c.path, "hdu": c.index, "ra": c.ra, "dec": c.dec,
                "radius": c.radius, "out": c.ranges.map(|_| &c.out),
            })
        })
        .collect();
    let results = astropy(&tasks);
    let mut cut = 0;
    for (c, r) in cases.iter().zip(&results) {
        let tag = &c.tag;
        let no_overlap = r["no_overlap"].as_bool().expect("no_overlap");
        assert_eq!(
            c.ranges.is_none(),
            no_overlap,
            "{tag}: overlap disagrees with Cutout2D: {r}"
        );
        let Some(ranges) = c.ranges else { continue };
        cut += 1;
        let bbox = &r["bbox"];
        let theirs_b = (
            bbox[0][0].as_u64().expect("y0") as usize + 1,
            bbox[0][1].as_u64().expect("y1") as usize + 1,
        );
        let theirs_a = (
            bbox[1][0].as_u64().expect("x0") as usize + 1,
            bbox[1][1].as_u64().expect("x1") as usize + 1,
        );
        assert_eq!(
            ranges,
            (theirs_a, theirs_b),
            "{tag}: box differs from Cutout2D: {r}"
        );
        assert_eq!(
            r["equal"],
            json!(true),
            "{tag}: pixels differ from Cutout2D: {r}"
        );
        let dpix = r["dpix"].as_f64().expect("dpix");
        let dgrid = r["dpix_grid"].as_f64().expect("dpix_grid");
        assert!(
            dpix < 1e-6 && dgrid < 1e-6,
            "{tag}: cutout WCS off by {dpix} / {dgrid} px: {r}"
        );
    }
    cut
}

#[test]
fn circle_cutouts_are_cutout2d() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cases = Vec::new();
    for (path, index) in real_files() {
        if path.ends_with("minicube.fits") || path.ends_with("first-4axis.fits") {
            continue; // cubes and 4-axis WCS: Cutout2D takes 2-D images only (see cube test)
        }
        let hdu = hdu_of(&path, index);
        let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
        let (na, nb) = (hdu.shape[0] as f64, hdu.shape[1] as f64);
        let scale = wcs.pixel_scale_deg();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        // Centres avoid the knife edges where x − n/2 is an integer: there the box depends on
        // the last bit of the centre (and astropy's all_world2pix stops at 1e-4 pixel).
        let cases_px = [
            ("inside", (na * 0.5 + 0.3, nb * 0.45 - 0.2), 7.3),
            ("inside-odd", (na * 0.3 + 0.63, nb * 0.6 + 0.41), 4.5),
            ("edge", (1.2, nb * 0.5 + 0.27), 6.0),
            ("corner", (na - 0.4, nb - 0.2), 9.7),
            ("partly-outside", (-3.17, nb + 2.61), 8.2),
            (
                "whole",
                (na * 0.5 + 0.21, nb * 0.5 + 0.33),
                (na.max(nb)) * 0.9,
            ),
            ("outside", (-40.3, nb * 0.5 + 0.3), 8.0),
            ("tiny", (na * 0.5 + 0.2, nb * 0.5 - 0.3), 0.8),
        ];
        for (tag, (x, y), r_pix) in cases_px {
            let (ra, dec) = wcs.pixel_to_sky(x, y).expect("centre");
            let tag = format!("{name}-{tag}");
            cases.push(make_circle(
                &path,
                index,
                (ra, dec, r_pix * scale),
                dir.path(),
                &tag,
            ));
        }
    }
    let cut = check_circles(&cases);
    assert!(cut >= 25, "only {cut} cutouts made");
}

#[test]
fn cube_cutout_with_band() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = image("minicube.fits");
    let hdu = hdu_of(&path, 1);
    let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
    let spec = wcs.spectral().expect("spectral").clone();
    let bands: [(f64, f64); 5] = [
        (6.0e-7, 6.1e-7),
        (4.0e-7, 4.76e-7),
        (9.3e-7, 1.0e-6),
        (6.56281e-7, 6.56281e-7),
        (5e-7, 4.9e-7),
    ];
    let tasks: Vec<Value> = bands
        .iter()
        .map(|&(lo, hi)| json!({"op": "band", "file": &path, "hdu": 1, "lo": lo.min(hi), "hi": lo.max(hi)}))
        .collect();
    let res = astropy(&tasks);
    for (&(lo, hi), r) in bands.iter().zip(&res) {
        let mine = spec.planes_in_band(lo, hi);
        let theirs = r["planes"].as_array().map(|a| {
            (
                a[0].as_u64().expect("k0") as usize,
                a[1].as_u64().expect("k1") as usize,
            )
        });
        assert_eq!(mine, theirs, "BAND {lo}..{hi}: {r}");
    }
    // Outside the coverage: no overlap.
    let centre = wcs.pixel_to_sky(20.3, 19.6).expect("centre");
    let circle = CutoutRegion::Circle {
        ra: centre.0,
        dec: centre.1,
        radius: 3.0 / 3600.0,
    };
    assert!(
        plan_cutout(&hdu, &wcs, &circle, Some((1.0e-6, 2.0e-6)))
            .expect("plan")
            .is_none()
    );
    assert!(
        plan_cutout(&hdu, &wcs, &circle, Some((1.0e-7, 4.0e-7)))
            .expect("plan")
            .is_none()
    );

    // A circle + band on the cube: plane by plane equal to Cutout2D on that plane.
    let (lo, hi) = (6.0e-7, 6.01e-7);
    let plan = plan_cutout(&hdu, &wcs, &circle, Some((lo, hi)))
        .expect("plan")
        .expect("overlap");
    let (k0, k1) = plan.ranges[2];
    assert_eq!(Some((k0, k1)), spec.planes_in_band(lo, hi));
    let out = dir.path().join("cube.fits");
    let mut f = std::fs::File::create(&out).expect("create");
    write_cutout(&path, &hdu, &plan, &mut f).expect("write");
    drop(f);
    fitsverify(&out, Some((&path, 1)));
    let tasks: Vec<Value> = [k0, (k0 + k1) / 2, k1]
        .iter()
        .map(|&k| {
            json!({"op": "cutout", "file": &path, "hdu": 1, "ra": centre.0, "dec": centre.1,
                   "radius": 3.0 / 3600.0, "out": &out, "plane": k - 1, "plane_in_out": k - k0})
        })
        .collect();
    for r in astropy(&tasks) {
        assert_eq!(
            r["equal"],
            json!(true),
            "cube plane differs from Cutout2D: {r}"
        );
        assert!(r["dpix"].as_f64().expect("dpix") < 1e-6, "{r}");
        let bbox = &r["bbox"];
        assert_eq!(
            plan.ranges[0],
            (
                bbox[1][0].as_u64().expect("x") as usize + 1,
                bbox[1][1].as_u64().expect("x") as usize + 1
            )
        );
        assert_eq!(
            plan.ranges[1],
            (
                bbox[0][0].as_u64().expect("y") as usize + 1,
                bbox[0][1].as_u64().expect("y") as usize + 1
            )
        );
    }
    // The spectral CRPIX is shifted too: the first plane of the cutout has the wavelength of
    // plane k0 of the cube.
    let cut = hdu_of(&out, 0);
    let cw = ImageWcs::from_header(&cut.header).expect("cutout wcs");
    let cs = cw.spectral().expect("spectral");
    assert!((cs.si_at(1.0) - spec.si_at(k0 as f64)).abs() < 1e-18);
    assert_eq!(cut.shape[2], k1 + 1 - k0);
    // BAND on an image without spectral axis is an error naming the HDU.
    let m13 = astropy_file("io/fits/hdu/compressed/tests/data/m13.fits");
    let h = hdu_of(&m13, 0);
    let w = ImageWcs::from_header(&h.header).expect("wcs");
    let c = w.pixel_to_sky(150.0, 150.0).expect("c");
    let e = plan_cutout(
        &h,
        &w,
        &CutoutRegion::Circle {
            ra: c.0,
            dec: c.1,
            radius: 0.01,
        },
        Some((5e-7, 6e-7)),
    )
    .expect_err("no spectral axis");
    assert!(
        e.to_string().contains("HDU 0") && e.to_string().contains("spectral"),
        "{e}"
    );
}

/// Pixels (1-based) whose centre lies inside the region, by brute force.
fn brute_box(
    hdu: &ImageHdu,
    wcs: &ImageWcs,
    inside: &dyn Fn(f64, f64) -> bool,
) -> Option<((usize, usize), (usize, usize))> {
    let mut bx: Option<((usize, usize), (usize, usize))> = None;
    for j in 1..=hdu.shape[1] {
        for i in 1..=hdu.shape[0] {
            let (ra, dec) = wcs.pixel_to_sky(i as f64, j as f64).expect("sky");
            if inside(ra, dec) {
                bx = Some(match bx {
                    None => ((i, i), (j, j)),
                    Some(((a0, a1), (b0, b1))) => ((a0.min(i), a1.max(i)), (b0.min(j), b1.max(j))),
                });
            }
        }
    }
    bx
}

#[test]
fn polygon_and_range_cutouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, index) in [
        (
            astropy_file("io/fits/hdu/compressed/tests/data/m13.fits"),
            0,
        ),
        (image("magpis-glon-sin.fits"), 0),
        (image("a478hst-cutout.fits"), 1),
    ] {
        let hdu = hdu_of(&path, index);
        let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
        let (na, nb) = (hdu.shape[0] as f64, hdu.shape[1] as f64);
        let p = |x: f64, y: f64| wcs.pixel_to_sky(x, y).expect("sky");
        // A triangle partly outside and a quadrilateral inside, in both windings.
        let tri = vec![
            p(-20.0, nb * 0.3),
            p(na * 0.6, nb * 0.2),
            p(na * 0.4, nb * 0.8),
        ];
        let quad = vec![
            p(na * 0.2, nb * 0.2),
            p(na * 0.7, nb * 0.25),
            p(na * 0.65, nb * 0.7),
            p(na * 0.25, nb * 0.6),
        ];
        let mut quad_rev = quad.clone();
        quad_rev.reverse();
        for (k, poly) in [tri, quad, quad_rev].into_iter().enumerate() {
            let region = CutoutRegion::Polygon(poly.clone());
            let plan = plan_cutout(&hdu, &wcs, &region, None)
                .expect("plan")
                .expect("overlap");
            let inside = |ra: f64, dec: f64| point_in_polygon(&poly, ra, dec);
            let ((a0, a1), (b0, b1)) = brute_box(&hdu, &wcs, &inside).expect("brute");
            let (r0, r1) = (plan.ranges[0], plan.ranges[1]);
            // Every pixel whose centre is inside is kept; at most one more pixel per side
            // (pixels touched by the region but with the centre outside).
            assert!(
                r0.0 <= a0 && r0.1 >= a1 && r1.0 <= b0 && r1.1 >= b1,
                "{}: {:?} misses {:?}",
                path.display(),
                plan.ranges,
                ((a0, a1), (b0, b1))
            );
            assert!(
                a0 - r0.0 <= 1 && r0.1 - a1 <= 1 && b0 - r1.0 <= 1 && r1.1 - b1 <= 1,
                "{}: {:?} too large for {:?}",
                path.display(),
                plan.ranges,
                ((a0, a1), (b0, b1))
            );
            let out = dir.path().join(format!("poly{k}.fits"));
            let mut f = std::fs::File::create(&out).expect("create");
            write_cutout(&path, &hdu, &plan, &mut f).expect("write");
            drop(f);
            fitsverify(&out, Some((&path, index)));
        }
        // RANGE around the centre.
        let c = p(na * 0.5, nb * 0.5);
        let half = 0.2 * na * wcs.pixel_scale_deg();
        let ra = (
            c.0 - half / c.1.to_radians().cos(),
            c.0 + half / c.1.to_radians().cos(),
        );
        let dec = (c.1 - half * 0.5, c.1 + half);
        let plan = plan_cutout(&hdu, &wcs, &CutoutRegion::Range { ra, dec }, None)
            .expect("plan")
            .expect("overlap");
        let inside = |r: f64, d: f64| {
            d >= dec.0 && d <= dec.1 && (r - ra.0).rem_euclid(360.0) <= ra.1 - ra.0
        };
        let ((a0, a1), (b0, b1)) = brute_box(&hdu, &wcs, &inside).expect("brute");
        let (r0, r1) = (plan.ranges[0], plan.ranges[1]);
        assert!(
            r0.0 <= a0
                && r0.1 >= a1
                && r1.0 <= b0
                && r1.1 >= b1
                && a0 - r0.0 <= 1
                && r0.1 - a1 <= 1
                && b0 - r1.0 <= 1
                && r1.1 - b1 <= 1,
            "{}: RANGE {:?} vs brute force {:?}",
            path.display(),
            plan.ranges,
            ((a0, a1), (b0, b1))
        );
        // A range covering the whole sky keeps the whole image.
        let all = plan_cutout(
            &hdu,
            &wcs,
            &CutoutRegion::Range {
                ra: (f64::NEG_INFINITY, f64::INFINITY),
                dec: (-90.0, 90.0),
            },
            None,
        )
        .expect("plan")
        .expect("overlap");
        assert_eq!(
            all.ranges,
            hdu.shape.iter().map(|&n| (1, n)).collect::<Vec<_>>()
        );
    }
}

fn point_in_polygon(poly: &[(f64, f64)], ra: f64, dec: f64) -> bool {
    let v = |(r, d): (f64, f64)| {
        let (r, d) = (r.to_radians(), d.to_radians());
        [d.cos() * r.cos(), d.cos() * r.sin(), d.sin()]
    };
    let p = v((ra, dec));
    let mut total = 0.0;
    for i in 0..poly.len() {
        let (a, b) = (v(poly[i]), v(poly[(i + 1) % poly.len()]));
        let c = [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ];
        let y = p[0] * c[0] + p[1] * c[1] + p[2] * c[2];
        let dot = |x: [f64; 3], z: [f64; 3]| x[0] * z[0] + x[1] * z[1] + x[2] * z[2];
        total += y.atan2(dot(a, b) - dot(p, a) * dot(p, b));
    }
    total.abs() > std::f64::consts::PI
}

#[test]
fn no_overlap_is_none() {
    let path = astropy_file("io/fits/hdu/compressed/tests/data/m13.fits");
    let hdu = hdu_of(&path, 0);
    let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
    let far = [
        CutoutRegion::Circle {
            ra: 10.0,
            dec: -30.0,
            radius: 0.5,
        },
        CutoutRegion::Circle {
            ra: 250.4226 + 180.0,
            dec: -36.46,
            radius: 1.0,
        },
        CutoutRegion::Polygon(vec![(10.0, 10.0), (11.0, 10.0), (11.0, 11.0)]),
        CutoutRegion::Range {
            ra: (10.0, 20.0),
            dec: (-5.0, 5.0),
        },
        CutoutRegion::Circle {
            ra: 250.4226,
            dec: 36.4602 + 0.1,
            radius: 0.01,
        },
    ];
    for region in far {
        assert!(
            plan_cutout(&hdu, &wcs, &region, None)
                .expect("plan")
                .is_none(),
            "{region:?}"
        );
    }
    // Invalid requests are errors naming the file and HDU.
    let e = plan_cutout(
        &hdu,
        &wcs,
        &CutoutRegion::Circle {
            ra: 250.0,
            dec: 95.0,
            radius: 0.1,
        },
        None,
    )
    .expect_err("dec");
    assert!(
        e.to_string().contains("m13.fits") && e.to_string().contains("HDU 0"),
        "{e}"
    );
    let e = plan_cutout(
        &hdu,
        &wcs,
        &CutoutRegion::Polygon(vec![(1.0, 1.0), (2.0, 2.0)]),
        None,
    )
    .expect_err("polygon");
    assert!(e.to_string().contains("3 vertices"), "{e}");
}

#[test]
fn footprints() {
    for (path, index) in real_files() {
        let hdu = hdu_of(&path, index);
        let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
        let fp = footprint(&hdu, &wcs).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = wcs.celestial_axes();
        let (na, nb) = (hdu.shape[a] as f64, hdu.shape[b] as f64);
        // The corners are vertices.
        for (x, y) in [
            (0.5, 0.5),
            (na + 0.5, 0.5),
            (na + 0.5, nb + 0.5),
            (0.5, nb + 0.5),
        ] {
            let s = wcs.pixel_to_sky(x, y).expect("corner");
            assert!(
                fp.polygon.iter().any(|&v| ang_dist(v, s) < 1e-9),
                "{}: corner ({x}, {y}) missing",
                path.display()
            );
        }
        if wcs.projection() == "TAN" && !wcs.has_sip() {
            assert_eq!(
                fp.polygon.len(),
                4,
                "{}: TAN needs no edge points",
                path.display()
            );
        }
        // Counter-clockwise seen from inside: walking the vertices, the interior is on the
        // left on the sky (east to the left), i.e. the cross products point inwards.
        let v = |(r, d): (f64, f64)| {
            let (r, d) = (r.to_radians(), d.to_radians());
            [d.cos() * r.cos(), d.cos() * r.sin(), d.sin()]
        };
        let c = v(fp.center);
        let mut turn = 0.0;
        for i in 0..fp.polygon.len() {
            let (p, q) = (v(fp.polygon[i]), v(fp.polygon[(i + 1) % fp.polygon.len()]));
            let w = [
                p[1] * q[2] - p[2] * q[1],
                p[2] * q[0] - p[0] * q[2],
                p[0] * q[1] - p[1] * q[0],
            ];
            turn += w[0] * c[0] + w[1] * c[1] + w[2] * c[2];
        }
        assert!(
            turn < 0.0,
            "{}: polygon is not counter-clockwise seen from inside",
            path.display()
        );
        let diag = ang_dist(
            wcs.pixel_to_sky(0.5, 0.5).expect("c"),
            wcs.pixel_to_sky(na + 0.5, nb + 0.5).expect("c"),
        );
        assert!(
            fp.fov_deg >= diag * 0.99 && fp.fov_deg <= diag * 1.2,
            "{}: fov {} vs diagonal {diag}",
            path.display(),
            fp.fov_deg
        );
        let centre = wcs
            .pixel_to_sky((na + 1.0) / 2.0, (nb + 1.0) / 2.0)
            .expect("centre");
        assert!(ang_dist(centre, fp.center) < 1e-12);
        assert!((fp.pixel_scale_deg - wcs.pixel_scale_deg()).abs() < 1e-15);
    }
    // Galactic image: the footprint is in ICRS, as astropy converts it.
    let path = image("magpis-glon-sin.fits");
    let hdu = hdu_of(&path, 0);
    let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
    let fp = footprint(&hdu, &wcs).expect("footprint");
    let r = &astropy(&[
        json!({"op": "wcs", "file": &path, "hdu": 0, "pixels": [[150.5, 150.5], [0.5, 0.5]]}),
    ])[0];
    assert_eq!(r["frame"], json!("galactic"));
    let scale = wcs.pixel_scale_deg();
    assert!(
        ang_dist(fp.center, pair(&r["icrs"][0])) < 1e-6 * scale,
        "{:?} vs {}",
        fp.center,
        r["icrs"][0]
    );
    assert!(
        fp.polygon
            .iter()
            .any(|&v| ang_dist(v, pair(&r["icrs"][1])) < 1e-6 * scale)
    );
}

// ---- robustness -------------------------------------------------------------------------

fn card(text: &str) -> String {
    format!("{text:<80}")
}

/// A minimal FITS image: given cards (after SIMPLE), END, padding, then `data` bytes.
fn write_fits(path: &Path, cards: &[String], data: usize) {
    let mut all = vec![card("SIMPLE  =                    T")];
    all.extend_from_slice(cards);
    all.push(card("END"));
    let mut bytes = all.concat().into_bytes();
    bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
    bytes.resize(bytes.len() + data, 0);
    std::fs::write(path, bytes).expect("write");
}

fn tan_cards(n1: usize, n2: usize, bitpix: i32) -> Vec<String> {
    vec![
        card(&format!("BITPIX  = {bitpix:>20}")),
        card("NAXIS   =                    2"),
        card(&format!("NAXIS1  = {n1:>20}")),
        card(&format!("NAXIS2  = {n2:>20}")),
        card("CTYPE1  = 'RA---TAN'"),
        card("CTYPE2  = 'DEC--TAN'"),
        card("CRVAL1  =                 10.0"),
        card("CRVAL2  =                 20.0"),
        card(&format!(
            "CRPIX1  = {:>20}",
            format!("{:.1}", n1 as f64 / 2.0 + 0.5)
        )),
        card(&format!(
            "CRPIX2  = {:>20}",
            format!("{:.1}", n2 as f64 / 2.0 + 0.5)
        )),
        card("CDELT1  =             -0.0001"),
        card("CDELT2  =              0.0001"),
        card("RADESYS = 'ICRS    '"),
    ]
}

fn err_text<T: std::fmt::Debug>(r: Result<T, ImageError>) -> String {
    r.expect_err("an error").to_string()
}

#[test]
fn robustness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // Truncated data: copy m13 and cut it.
    let m13 = astropy_file("io/fits/hdu/compressed/tests/data/m13.fits");
    let bytes = std::fs::read(&m13).expect("m13");
    let cut = d.join("m13-cut.fits");
    std::fs::write(&cut, &bytes[..bytes.len() - 5000]).expect("write");
    let e = err_text(read_image_hdus(&cut));
    assert!(
        e.contains("m13-cut.fits")
            && e.contains("HDU 0")
            && e.contains("truncated")
            && e.contains("NAXIS"),
        "{e}"
    );
    // Cut inside the header: no END.
    std::fs::write(&cut, &bytes[..2000]).expect("write");
    let e = err_text(read_image_hdus(&cut));
    assert!(e.contains("HDU 0") && e.contains("END"), "{e}");
    // Truncated extension of a multi-HDU file: names HDU 2.
    let hst = std::fs::read(image("a478hst-cutout.fits")).expect("hst");
    let hdus = read_image_hdus(&image("a478hst-cutout.fits")).expect("hst");
    let wht = hdus.iter().find(|h| h.index == 2).expect("WHT");
    std::fs::write(&cut, &hst[..(wht.data_offset + 1000) as usize]).expect("write");
    let e = err_text(read_image_hdus(&cut));
    assert!(e.contains("HDU 2") && e.contains("truncated"), "{e}");
    // The file shrinks between listing and cutting: write_cutout reports it too.
    let good = d.join("shrinks.fits");
    std::fs::write(&good, &bytes).expect("write");
    let hdu = hdu_of(&good, 0);
    let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
    let c = wcs.pixel_to_sky(150.0, 150.0).expect("c");
    let plan = plan_cutout(
        &hdu,
        &wcs,
        &CutoutRegion::Circle {
            ra: c.0,
            dec: c.1,
            radius: 0.01,
        },
        None,
    )
    .expect("plan")
    .expect("overlap");
    std::fs::write(&good, &bytes[..bytes.len() / 2]).expect("write");
    let e = err_text(write_cutout(&good, &hdu, &plan, &mut Vec::new()));
    assert!(e.contains("HDU 0") && e.contains("truncated"), "{e}");

    // Malformed structural card.
    let bad = d.join("bad-naxis.fits");
    let mut cards = tan_cards(10, 10, 16);
    cards[2] = card("NAXIS1  = 'ten'");
    write_fits(&bad, &cards, 2880);
    let e = err_text(read_image_hdus(&bad));
    assert!(
        e.contains("bad-naxis.fits") && e.contains("HDU 0") && e.contains("card 4 (NAXIS1)"),
        "{e}"
    );
    let mut cards = tan_cards(10, 10, 16);
    cards[0] = card("BITPIX  =                   17");
    write_fits(&bad, &cards, 2880);
    let e = err_text(read_image_hdus(&bad));
    assert!(e.contains("card 2 (BITPIX)"), "{e}");
    // Malformed WCS card: an unterminated string, and a number that is not one.
    let mut cards = tan_cards(10, 10, 16);
    cards[4] = card("CTYPE1  = 'RA---TAN");
    write_fits(&bad, &cards, 2880);
    let hdu = hdu_of(&bad, 0);
    let e = err_text(ImageWcs::from_header(&hdu.header));
    assert!(
        e.contains("HDU 0") && e.contains("CTYPE1") && e.contains("closing quote"),
        "{e}"
    );
    let mut cards = tan_cards(10, 10, 16);
    cards[6] = card("CRVAL1  = 10h30m");
    write_fits(&bad, &cards, 2880);
    let hdu = hdu_of(&bad, 0);
    let e = err_text(ImageWcs::from_header(&hdu.header));
    assert!(e.contains("card 8 (CRVAL1)"), "{e}");
    // A sloppy non-WCS card is tolerated until somebody reads it.
    let mut cards = tan_cards(10, 10, 16);
    cards.push(card("DATE-OBS= 2011-09-01"));
    write_fits(&bad, &cards, 2880);
    let hdu = hdu_of(&bad, 0);
    ImageWcs::from_header(&hdu.header).expect("WCS unaffected");
    let e = err_text(hdu.header.get_str("DATE-OBS"));
    assert!(e.contains("DATE-OBS") && e.contains("card 15"), "{e}");

    // A header declaring 4 axes for 2-D data: NAXIS3/NAXIS4 missing, or data too short.
    let mut cards = tan_cards(33, 33, -32);
    cards[1] = card("NAXIS   =                    4");
    write_fits(&bad, &cards, 33 * 33 * 4);
    let e = err_text(read_image_hdus(&bad));
    assert!(e.contains("HDU 0") && e.contains("NAXIS3"), "{e}");
    cards.insert(4, card("NAXIS3  =                    3"));
    cards.insert(5, card("NAXIS4  =                    2"));
    write_fits(&bad, &cards, (33 * 33 * 4usize).div_ceil(2880) * 2880);
    let e = err_text(read_image_hdus(&bad));
    assert!(e.contains("HDU 0") && e.contains("truncated"), "{e}");
    // The real FIRST file (NAXIS = 2, WCS keywords for 4 axes) reads fine.
    let first = hdu_of(&image("first-4axis.fits"), 0);
    assert_eq!(first.shape, vec![33, 33]);

    // Unknown projections.
    for (ctype, code) in [("TPV", "TPV"), ("XYZ", "XYZ"), ("TSC", "TSC")] {
        let mut cards = tan_cards(10, 10, 16);
        cards[4] = card(&format!("CTYPE1  = 'RA---{ctype}'"));
        cards[5] = card(&format!("CTYPE2  = 'DEC--{ctype}'"));
        write_fits(&bad, &cards, 2880);
        let hdu = hdu_of(&bad, 0);
        let e = ImageWcs::from_header(&hdu.header).expect_err("unsupported");
        assert!(
            matches!(&e, ImageError::UnsupportedProjection { code: c, .. } if c == code),
            "{e}"
        );
        let e = e.to_string();
        assert!(
            e.contains("HDU 0") && e.contains("CTYPE1") && e.contains(code),
            "{e}"
        );
    }
    // No celestial axes; mismatched axes; FK4; a too-short CTYPE (must not panic).
    for (i, c) in [
        (4, "CTYPE1  = 'LINEAR  '"),
        (5, "CTYPE2  = 'DEC--SIN'"),
        (4, "CTYPE1  = 'RA'"),
        (12, "RADESYS = 'FK4     '"),
    ] {
        let mut cards = tan_cards(10, 10, 16);
        cards[i] = card(c);
        write_fits(&bad, &cards, 2880);
        let hdu = hdu_of(&bad, 0);
        let e = err_text(ImageWcs::from_header(&hdu.header));
        assert!(
            e.contains("HDU 0") && (e.contains("CTYPE") || e.contains("RADESYS")),
            "{c}: {e}"
        );
    }
    // Not FITS at all; empty file.
    std::fs::write(&bad, b"hello world").expect("write");
    assert!(err_text(read_image_hdus(&bad)).contains("HDU 0"));
    std::fs::write(&bad, b"").expect("write");
    assert!(err_text(read_image_hdus(&bad)).contains("empty"));
    // Tables and empty primaries are skipped.
    let hdus = read_image_hdus(&image("minicube.fits")).expect("minicube");
    assert_eq!(
        hdus.iter().map(|h| h.index).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(hdus[0].extname.as_deref(), Some("DATA"));
}

// ---- memory -----------------------------------------------------------------------------

fn proc_status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

#[test]
fn large_image_cutout_reads_only_what_it_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.fits");
    let n = 8192usize;
    {
        let mut f = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&path).expect("create"),
        );
        let mut cards = vec![card("SIMPLE  =                    T")];
        cards.extend(tan_cards(n, n, -32));
        cards.push(card("END"));
        let mut head = cards.concat().into_bytes();
        head.resize(head.len().div_ceil(2880) * 2880, b' ');
        f.write_all(&head).expect("header");
        // Pixel value = row number (y), so the cutout can be checked.
        let mut row = vec![0u8; n * 4];
        for y in 1..=n {
            let v = (y as f32).to_be_bytes();
            for px in row.chunks_exact_mut(4) {
                px.copy_from_slice(&v);
            }
            f.write_all(&row).expect("row");
        }
        f.flush().expect("flush");
    }
    let file_len = std::fs::metadata(&path).expect("meta").len();
    assert_eq!(file_len, 2880 + (n * n * 4) as u64);
    let hdu = hdu_of(&path, 0);
    let wcs = ImageWcs::from_header(&hdu.header).expect("wcs");
    let (ra, dec) = wcs.pixel_to_sky(3000.0, 5000.0).expect("centre");
    // 2r / 0.0001 deg = 1000 pixels.
    let region = CutoutRegion::Circle {
        ra,
        dec,
        radius: 0.05,
    };
    let out = dir.path().join("cut.fits");
    let rss0 = proc_status_kb("VmRSS:");
    // Reset the peak (VmHWM) to the current RSS, so that the peak during the cutout is seen
    // (Linux ≥ 4.0; if refused, VmHWM only overstates the growth).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t0 = Instant::now();
    let plan = plan_cutout(&hdu, &wcs, &region, None)
        .expect("plan")
        .expect("overlap");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&out).expect("create"));
    write_cutout(&path, &hdu, &plan, &mut f).expect("write");
    drop(f);
    let cold = t0.elapsed();
    let rss1 = proc_status_kb("VmRSS:");
    let peak = proc_status_kb("VmHWM:");
    assert_eq!(plan.shape(), vec![1000, 1000]);
    let t1 = Instant::now();
    let plan = plan_cutout(&hdu, &wcs, &region, None)
        .expect("plan")
        .expect("overlap");
    let mut sink = std::io::sink();
    write_cutout(&path, &hdu, &plan, &mut sink).expect("write");
    let warm = t1.elapsed();
    let growth_mb = rss1.saturating_sub(rss0) as f64 / 1024.0;
    let peak_mb = peak.saturating_sub(rss0) as f64 / 1024.0;
    eprintln!(
        "8192² f4 ({} MB): 1000² cutout cold {cold:?}, warm {warm:?}, VmRSS growth {growth_mb:.1} MB, peak {peak_mb:.1} MB above the start",
        file_len / 1_000_000
    );
    assert!(
        peak_mb < 64.0,
        "peak RSS {peak_mb} MB above the start during a 1000² cutout of a {file_len}-byte image"
    );
    assert!(
        growth_mb < 64.0,
        "VmRSS grew by {growth_mb} MB for a 1000² cutout"
    );
    // Contents: row y of the cutout holds the original row number.
    let cut = hdu_of(&out, 0);
    let bytes = std::fs::read(&out).expect("cut");
    let (y0, _) = plan.ranges[1];
    for j in [0usize, 499, 999] {
        let off = cut.data_offset as usize + (j * 1000 + 17) * 4;
        let v = f32::from_be_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]);
        assert_eq!(v, (y0 + j) as f32);
    }
    fitsverify(&out, None);
    // The cutout's WCS maps the centre to the same sky position.
    let cw = ImageWcs::from_header(&cut.header).expect("cutout wcs");
    let p_orig = wcs.sky_to_pixel(ra, dec).expect("p");
    let p_cut = cw.sky_to_pixel(ra, dec).expect("p");
    let off = ((plan.ranges[0].0 - 1) as f64, (plan.ranges[1].0 - 1) as f64);
    assert!((p_orig.0 - off.0 - p_cut.0).abs() < 1e-6 && (p_orig.1 - off.1 - p_cut.1).abs() < 1e-6);
}

#[test]
fn wcs_and_hdus_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ImageWcs>();
    check::<ImageHdu>();
    check::<tessera_storage::image::CutoutPlan>();
    check::<ImageError>();
}
