//! Image HiPS generation (`tessera hips build`) against Aladin's Hipsgen 12.001 on the
//! committed real images (`datasets/images/`) and on inputs derived from them:
//!
//! * pixel agreement: Hipsgen and Tessera build from the same input, and the FITS tiles of
//!   the deepest order are compared pixel by pixel (same order, same tiles, the same set of
//!   non-blank pixels, values within a stated tolerance);
//! * Hipsgen's `LINT` on our output (its exit code is 0 whatever it finds: the verdict line
//!   is parsed);
//! * blank handling (NaN and `BLANK`), overlapping images averaged, a parent tile the 2×2
//!   mean of its children, PNG/JPEG tiles, Allsky, `Moc.fits`, `properties`, atomic
//!   re-publication;
//! * bad input: unknown collection, no registry, unreadable file, no celestial WCS, bad
//!   options — clear errors naming the file, and the previous HiPS left intact.
#![allow(clippy::print_stderr)] // the agreement figures, for the record

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::repo_root;

const JAR: &str = "/usr/share/java/aladin.jar";
const W: usize = 512;

// ---------------------------------------------------------------------------------------
// running the tools

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
}

fn tessera_ok(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Replaces a registered file's content. `load-images` hard-links files into the data
/// root, so writing in place would change the committed original: unlink first.
fn replace(path: &Path, bytes: &[u8]) {
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `tessera load-images FILES --data ROOT --collection NAME`.
fn register(root: &Path, collection: &str, files: &[&Path]) {
    let mut args = vec!["load-images"];
    args.extend(files.iter().map(|f| s(f)));
    args.extend(["--data", s(root), "--collection", collection]);
    tessera_ok(&args);
}

/// `tessera hips build` of `collection` into ROOT/hips/<collection>.
fn build(root: &Path, collection: &str, extra: &[&str]) -> PathBuf {
    let out = root.join("hips").join(collection);
    let mut args = vec![
        "hips",
        "build",
        "--data",
        s(root),
        "--collection",
        collection,
        "--out",
        s(&out),
        "--quiet",
    ];
    args.extend(extra);
    tessera_ok(&args);
    out
}

fn jar() {
    assert!(
        Path::new(JAR).is_file(),
        "{JAR} missing: run tools/install-test-deps (Debian package aladin)"
    );
}

/// Hipsgen's console output without ANSI colour codes.
fn strip_ansi(raw: &str) -> String {
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
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
    text
}

/// Hipsgen on the FITS files of `input` (a directory) into `out`, computing what `tessera
/// hips build` computes: float tiles (`hips_pixel_bitpix=-32`, else integer inputs give
/// integer tiles), overlaps averaged without fading (`mixing=true fading=false`, its
/// defaults), FITS tiles only (`INDEX TILES`: no PNG, whose cut differs anyway).
fn hipsgen(input: &Path, out: &Path) {
    jar();
    let o = Command::new("timeout")
        .args([
            "600",
            "java",
            "-Djava.awt.headless=true",
            "-jar",
            JAR,
            "-hipsgen",
        ])
        .arg(format!("in={}", input.display()))
        .arg(format!("out={}", out.display()))
        .args([
            "creator_did=ivo://tessera/test/hipsgen",
            "hips_pixel_bitpix=-32",
            "mixing=true",
            "fading=false",
            "INDEX",
            "TILES",
        ])
        .current_dir(input.parent().unwrap())
        .output()
        .unwrap();
    let text = strip_ansi(&format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ));
    assert!(
        o.status.success() && !text.contains("ABORT") && out.join("properties").is_file(),
        "Hipsgen failed on {}:\n{text}",
        input.display()
    );
}

/// Hipsgen `LINT` on a local HiPS directory: the text, colour codes removed.
fn lint(dir: &Path) -> String {
    jar();
    let o = Command::new("timeout")
        .args([
            "300",
            "java",
            "-Djava.awt.headless=true",
            "-jar",
            JAR,
            "-hipsgen",
        ])
        .arg(format!("out={}", dir.display()))
        .arg("LINT")
        .current_dir(dir.parent().unwrap())
        .output()
        .unwrap();
    strip_ansi(&format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ))
}

// ---------------------------------------------------------------------------------------
// reading HiPS output

fn props(dir: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(dir.join("properties"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A FITS image: header keywords (string values unquoted) and physical values
/// (`BZERO + BSCALE·raw`) in stored order, rows bottom-up.
struct Fits {
    keys: HashMap<String, String>,
    width: usize,
    height: usize,
    data: Vec<f64>,
}

fn read_fits(path: &Path) -> Fits {
    let bytes = std::fs::read(path).unwrap();
    let mut keys = HashMap::new();
    let mut pos = 0;
    loop {
        let card = std::str::from_utf8(&bytes[pos..pos + 80]).unwrap();
        pos += 80;
        let key = card[..8].trim().to_string();
        if key == "END" {
            break;
        }
        if &card[8..10] == "= " {
            let v = card[10..].split(" /").next().unwrap().trim();
            keys.insert(key, v.trim_matches('\'').trim().to_string());
        }
    }
    let data_start = pos.div_ceil(2880) * 2880;
    let num = |k: &str, d: f64| keys.get(k).map_or(d, |v| v.parse::<f64>().unwrap());
    let (width, height) = (num("NAXIS1", 0.0) as usize, num("NAXIS2", 0.0) as usize);
    let (bzero, bscale) = (num("BZERO", 0.0), num("BSCALE", 1.0));
    assert_eq!(keys["BITPIX"], "-32", "{}", path.display());
    let data = bytes[data_start..data_start + width * height * 4]
        .chunks_exact(4)
        .map(|c| bzero + bscale * f64::from(f32::from_be_bytes(c.try_into().unwrap())))
        .collect();
    Fits {
        keys,
        width,
        height,
        data,
    }
}

/// The value of `key` in a header block (free or fixed format, quotes removed).
fn card_value(header: &str, key: &str) -> Option<String> {
    header.as_bytes().chunks(80).find_map(|c| {
        let c = std::str::from_utf8(c).ok()?;
        (c.len() == 80 && c[..8].trim_end() == key && &c[8..10] == "= ").then(|| {
            c[10..]
                .split(" /")
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('\'')
                .trim()
                .to_string()
        })
    })
}

/// The NUNIQ cells of a `Moc.fits` and its `MOCORD_S`.
fn moc_cells(path: &Path) -> (Vec<u64>, u8) {
    let f = std::fs::read(path).unwrap();
    let head = String::from_utf8_lossy(&f[2880..5760]).to_string();
    assert_eq!(
        card_value(&head, "ORDERING").as_deref(),
        Some("NUNIQ"),
        "{head}"
    );
    assert_eq!(card_value(&head, "TFORM1").as_deref(), Some("1J"), "{head}");
    let rows: usize = card_value(&head, "NAXIS2").unwrap().parse().unwrap();
    let order = card_value(&head, "MOCORD_S").unwrap().parse().unwrap();
    let mut v: Vec<u64> = f[5760..5760 + 4 * rows]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes(c.try_into().unwrap())))
        .collect();
    v.sort_unstable();
    (v, order)
}

/// The FITS tiles of order `k`: `NorderK/DirD/NpixN.fits` → N.
fn tiles(dir: &Path, k: u8) -> BTreeMap<u64, PathBuf> {
    let mut out = BTreeMap::new();
    let base = dir.join(format!("Norder{k}"));
    for d in std::fs::read_dir(&base).unwrap().flatten() {
        if !d.file_name().to_string_lossy().starts_with("Dir") {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_prefix("Npix")
                .and_then(|n| n.strip_suffix(".fits"))
            {
                out.insert(n.parse().unwrap(), f.path());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// writing test inputs

/// One FITS card.
fn card(out: &mut Vec<u8>, text: &str) {
    let mut c = format!("{text:<80}");
    c.truncate(80);
    out.extend_from_slice(c.as_bytes());
}

/// A 2-D FITS image from `cards` (WCS etc.) and physical `values` (row 0 first = FITS
/// row 1); BITPIX −32 (NaN blank) or 16 (`raw = (v − bzero)/bscale`, NaN → BLANK −32768).
fn write_image(
    path: &Path,
    nx: usize,
    ny: usize,
    cards: &[String],
    values: &[f64],
    int16: Option<(f64, f64)>,
) {
    let mut out = Vec::new();
    card(&mut out, "SIMPLE  =                    T");
    card(
        &mut out,
        &format!(
            "BITPIX  = {:>20}",
            if int16.is_some() { "16" } else { "-32" }
        ),
    );
    card(&mut out, "NAXIS   =                    2");
    card(&mut out, &format!("NAXIS1  = {nx:>20}"));
    card(&mut out, &format!("NAXIS2  = {ny:>20}"));
    if let Some((bzero, bscale)) = int16 {
        card(&mut out, &format!("BZERO   = {bzero:>20.1}"));
        card(&mut out, &format!("BSCALE  = {bscale:>20.1}"));
        card(&mut out, "BLANK   =               -32768");
    }
    for c in cards {
        card(&mut out, c);
    }
    card(&mut out, "END");
    out.resize(out.len().div_ceil(2880) * 2880, b' ');
    for &v in values {
        match int16 {
            Some((bzero, bscale)) => {
                let raw = if v.is_nan() {
                    -32768i16
                } else {
                    ((v - bzero) / bscale).round() as i16
                };
                out.extend_from_slice(&raw.to_be_bytes());
            }
            None => out.extend_from_slice(&(v as f32).to_be_bytes()),
        }
    }
    out.resize(out.len().div_ceil(2880) * 2880, 0);
    std::fs::write(path, out).unwrap();
}

/// The 300×300 pixels of datasets/images/m13.fits (BITPIX 16, no scaling), row 0 first.
fn m13_pixels() -> Vec<f64> {
    let bytes = std::fs::read(repo_root().join("datasets/images/m13.fits")).unwrap();
    bytes[2880..2880 + 300 * 300 * 2]
        .chunks_exact(2)
        .map(|c| f64::from(i16::from_be_bytes([c[0], c[1]])))
        .collect()
}

/// A deterministic scatter of `n` positions in `[0, w) × [0, h)`.
fn scatter(n: usize, w: usize, h: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize
    };
    (0..n).map(|_| (next() % w, next() % h)).collect()
}

/// Two overlapping cut-outs of M13 with blanks:
/// * `a.fits`: float32, rows 0–199 × columns 0–199, a 10×10 NaN hole at (150, 150) and 300
///   scattered NaN pixels;
/// * `b.fits`: int16 with `BZERO = 50`, `BSCALE = 2` (physical = 2·M13 + 50) and
///   `BLANK = −32768`, rows 100–299 × columns 80–299, a 10×10 blank hole at M13 (155, 155)
///   (a quarter under a's hole: both blank there) and 300 scattered blank pixels.
///
/// (Hipsgen rounds the physical values of an integer image to integers — with
/// `BSCALE = 1.5` its tiles are up to 0.5 above the bilinear interpolation of the true
/// values, which Tessera computes — so `BSCALE` is an integer here.)
fn overlap_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let m13 = m13_pixels();
    let wcs = |x0: usize, y0: usize| -> Vec<String> {
        vec![
            "CTYPE1  = 'RA---TAN'".into(),
            "CTYPE2  = 'DEC--TAN'".into(),
            "CRVAL1  =             250.4226".into(),
            "CRVAL2  =              36.4602".into(),
            format!("CRPIX1  = {:>20.3}", 150.5 - x0 as f64),
            format!("CRPIX2  = {:>20.3}", 150.5 - y0 as f64),
            "CDELT1  =       -0.00027770002".into(),
            "CDELT2  =        0.00027770002".into(),
            "EQUINOX =               2000.0".into(),
        ]
    };
    let cut = |x0: usize, y0: usize, nx: usize, ny: usize, hole: (usize, usize), seed: u64| {
        let mut v: Vec<f64> = (0..ny)
            .flat_map(|j| (0..nx).map(move |i| (i, j)))
            .map(|(i, j)| m13[(y0 + j) * 300 + x0 + i])
            .collect();
        for j in hole.1..hole.1 + 10 {
            for i in hole.0..hole.0 + 10 {
                if (x0..x0 + nx).contains(&i) && (y0..y0 + ny).contains(&j) {
                    v[(j - y0) * nx + (i - x0)] = f64::NAN;
                }
            }
        }
        for (i, j) in scatter(300, nx, ny, seed) {
            v[j * nx + i] = f64::NAN;
        }
        v
    };
    std::fs::create_dir_all(dir).unwrap();
    let a = dir.join("a.fits");
    write_image(
        &a,
        200,
        200,
        &wcs(0, 0),
        &cut(0, 0, 200, 200, (150, 150), 1),
        None,
    );
    let b = dir.join("b.fits");
    let vb: Vec<f64> = cut(80, 100, 220, 200, (155, 155), 2)
        .into_iter()
        .map(|v| 2.0 * v + 50.0)
        .collect();
    write_image(&b, 220, 200, &wcs(80, 100), &vb, Some((50.0, 2.0)));
    (a, b)
}

/// `sip-wcs.fits` with its `PCi_j` (and `CDELTi = 1`) written as `CDi_j`: the same WCS
/// (astropy agrees), in the form Hipsgen reads (with `PCi_j` + `CDELTi` it takes 1° pixels
/// and finds no tile).
fn sip_as_cd(dest: &Path) {
    let mut bytes = std::fs::read(repo_root().join("datasets/images/sip-wcs.fits")).unwrap();
    let mut pos = 0;
    loop {
        let key = String::from_utf8_lossy(&bytes[pos..pos + 8]).to_string();
        if key.trim_end() == "END" {
            break;
        }
        if key.starts_with("PC") {
            bytes[pos..pos + 2].copy_from_slice(b"CD");
        } else if key.starts_with("CDELT") {
            let c = format!("{:<80}", "COMMENT CDELTn = 1 folded into CDi_j");
            bytes[pos..pos + 80].copy_from_slice(c.as_bytes());
        }
        pos += 80;
    }
    std::fs::write(dest, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------
// the comparison

/// What a comparison of the deepest tiles found.
#[derive(Debug)]
struct Agreement {
    order: u8,
    tiles: usize,
    compared: usize,
    only_ours: usize,
    only_theirs: usize,
    clipped: usize,
    max: f64,
    p99: f64,
    median: f64,
    range: f64,
}

/// Compares the deepest FITS tiles of two HiPS. Pixels where Hipsgen's value sits on a
/// bound of its `hips_data_range` are counted as `clipped` and left out: Hipsgen clamps the
/// values it maps to BITPIX −32 to the range it estimated from the reference image.
fn compare(ours: &Path, theirs: &Path) -> Agreement {
    let (po, pt) = (props(ours), props(theirs));
    assert_eq!(
        po["hips_order"], pt["hips_order"],
        "deepest order: ours vs Hipsgen"
    );
    let order: u8 = po["hips_order"].parse().unwrap();
    let (to, tt) = (tiles(ours, order), tiles(theirs, order));
    assert_eq!(
        to.keys().collect::<Vec<_>>(),
        tt.keys().collect::<Vec<_>>(),
        "the tiles of order {order}"
    );
    let bounds: Vec<f64> = pt
        .get("hips_data_range")
        .map(|r| r.split_whitespace().map(|v| v.parse().unwrap()).collect())
        .unwrap_or_default();
    let mut diffs = Vec::new();
    let (mut only_ours, mut only_theirs, mut clipped) = (0, 0, 0);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (n, path) in &to {
        let a = read_fits(path);
        let b = read_fits(&tt[n]);
        assert_eq!((a.width, a.height, b.width, b.height), (W, W, W, W));
        // The tile's HPX WCS is Hipsgen's.
        for k in ["CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"] {
            let (x, y): (f64, f64) = (a.keys[k].parse().unwrap(), b.keys[k].parse().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                "tile {n} {k}: {x} vs {y}"
            );
        }
        assert_eq!(a.keys["CTYPE1"], b.keys["CTYPE1"]);
        for (x, y) in a.data.iter().zip(&b.data) {
            match (x.is_nan(), y.is_nan()) {
                (true, true) => {}
                (false, true) => only_ours += 1,
                (true, false) => only_theirs += 1,
                (false, false) => {
                    // The range is printed rounded: "at a bound" within 10⁻³ of its width.
                    let near = 1e-3
                        * bounds
                            .get(1)
                            .zip(bounds.first())
                            .map_or(0.0, |(h, l)| h - l);
                    if bounds.len() == 2 && bounds.iter().any(|b| (y - b).abs() <= near) {
                        clipped += 1;
                        continue;
                    }
                    lo = lo.min(*y);
                    hi = hi.max(*y);
                    diffs.push((x - y).abs());
                }
            }
        }
    }
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((diffs.len() - 1) as f64 * q) as usize];
    Agreement {
        order,
        tiles: to.len(),
        compared: diffs.len(),
        only_ours,
        only_theirs,
        clipped,
        max: at(1.0),
        p99: at(0.99),
        median: at(0.5),
        range: hi - lo,
    }
}

/// Tolerances, relative to the range of Hipsgen's values over the compared pixels.
struct Tolerance {
    max: f64,
    p99: f64,
    median: f64,
}

/// Tessera's exact path agrees with Hipsgen to Hipsgen's own float precision (~10⁻⁷ of
/// the range). The tolerance covers the interpolation of pixel positions between exactly
/// projected grid nodes (estimated error ≤ 10⁻³ input pixel, `loader::hips::sample`), which
/// shows where the image is steepest: observed worst 1.6·10⁻⁴ of the range (order 5, tiled
/// M13 with sharp stars), 1.6·10⁻⁵ on M13 itself; p99 ≤ 1.5·10⁻⁵; the median is at
/// Hipsgen's float precision (≤ 1.2·10⁻⁷).
const TIGHT: Tolerance = Tolerance {
    max: 5e-4,
    p99: 5e-5,
    median: 1e-6,
};

/// SIP: Hipsgen inverts the distortion with the approximate `AP`/`BP` polynomials (here up
/// to 0.0055 pixel from the exact inverse), Tessera exactly by iterating `A`/`B` to 10⁻¹²
/// pixel (astropy's `all_world2pix`, which Tessera's tiles match to 10⁻⁵ of the range).
/// Observed worst 1.3·10⁻³ of the range (on a star's slope), p99 1.1·10⁻⁴, median 7·10⁻⁶.
const SIP: Tolerance = Tolerance {
    max: 2.5e-3,
    p99: 2.5e-4,
    median: 2e-5,
};

fn check(name: &str, a: &Agreement, tol: &Tolerance) {
    eprintln!(
        "{name}: order {}, {} tiles, {} pixels compared ({} clipped by Hipsgen left out), |Δ| max {:.3e}, p99 {:.3e}, median {:.3e} on a range of {:.4}",
        a.order, a.tiles, a.compared, a.clipped, a.max, a.p99, a.median, a.range
    );
    assert_eq!(
        (a.only_ours, a.only_theirs),
        (0, 0),
        "{name}: pixels non-blank in one HiPS only"
    );
    assert!(a.compared > 1000, "{name}: {a:?}");
    // Hipsgen's clipping concerns a handful of outliers (a hot pixel of sip-wcs.fits).
    assert!(
        a.clipped * 1000 <= a.compared,
        "{name}: {} clipped pixels",
        a.clipped
    );
    assert!(
        a.max <= tol.max * a.range
            && a.p99 <= tol.p99 * a.range
            && a.median <= tol.median * a.range,
        "{name}: |Δ| max {} p99 {} median {} on a range of {} (tolerance {}, {} and {} of the range)",
        a.max,
        a.p99,
        a.median,
        a.range,
        tol.max,
        tol.p99,
        tol.median
    );
}

// ---------------------------------------------------------------------------------------
// tests

/// The deepest tiles of Tessera and Hipsgen agree pixel by pixel on: M13 (DSS, int16,
/// TAN), the UKIDSS Crab (ZPN, image in HDU 1), sip-wcs.fits (TAN-SIP) and two overlapping
/// cut-outs of M13 with NaN and BLANK pixels, BZERO/BSCALE (overlap averaging and blanks).
#[test]
fn deepest_tiles_agree_with_hipsgen() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let images = repo_root().join("datasets/images");
    let mut cases: Vec<(&str, Vec<PathBuf>, &Tolerance)> = vec![
        ("m13", vec![images.join("m13.fits")], &TIGHT),
        ("zpn", vec![images.join("ukidss-crab-zpn.fits")], &TIGHT),
    ];
    let sip_dir = tmp.path().join("in-sip");
    std::fs::create_dir_all(&sip_dir).unwrap();
    sip_as_cd(&sip_dir.join("sip-cd.fits"));
    cases.push(("sip", vec![sip_dir.join("sip-cd.fits")], &SIP));
    let (a, b) = overlap_inputs(&tmp.path().join("in-overlap"));
    cases.push(("overlap", vec![a, b], &TIGHT));

    for (name, files, tol) in cases {
        // Hipsgen reads a directory: the inputs of each case alone in one.
        let input = tmp.path().join(format!("hg-in-{name}"));
        std::fs::create_dir_all(&input).unwrap();
        for f in &files {
            std::fs::copy(f, input.join(f.file_name().unwrap())).unwrap();
        }
        let theirs = tmp.path().join(format!("hg-out-{name}"));
        hipsgen(&input, &theirs);
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        register(&root, name, &refs);
        let ours = build(&root, name, &[]);
        check(name, &compare(&ours, &theirs), tol);
        // Keep the disk footprint small.
        std::fs::remove_dir_all(&theirs).unwrap();
    }
}

/// Allsky and MOC equal Hipsgen's on a wide image (5.7°, order 5: order-3 tiles with
/// data): the Allsky takes every 8th pixel of each order-3 tile, the MOC is the same set of
/// NUNIQ cells at order 7.
#[test]
fn allsky_and_moc_equal_hipsgen() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let n = 1024;
    let m13 = m13_pixels();
    let values: Vec<f64> = (0..n * n)
        .map(|k| m13[(k / n % 300) * 300 + k % n % 300])
        .collect();
    let cards = [
        "CTYPE1  = 'RA---TAN'",
        "CTYPE2  = 'DEC--TAN'",
        "CRVAL1  =                120.0",
        "CRVAL2  =                -30.0",
        "CRPIX1  =                512.5",
        "CRPIX2  =                512.5",
        "CDELT1  = -0.00555555555555556",
        "CDELT2  =  0.00555555555555556",
        "RADESYS = 'ICRS'",
    ]
    .map(String::from);
    write_image(&input.join("wide.fits"), n, n, &cards, &values, None);
    let theirs = tmp.path().join("hg");
    hipsgen(&input, &theirs);
    let root = tmp.path().join("root");
    register(&root, "wide", &[&input.join("wide.fits")]);
    let ours = build(&root, "wide", &[]);
    assert_eq!(props(&ours)["hips_order"], "5");
    check("wide", &compare(&ours, &theirs), &TIGHT);

    let (a, b) = (
        read_fits(&ours.join("Norder3/Allsky.fits")),
        read_fits(&theirs.join("Norder3/Allsky.fits")),
    );
    assert_eq!((a.width, a.height), (1728, 1856));
    assert_eq!((b.width, b.height), (1728, 1856));
    let mut both = 0;
    for (x, y) in a.data.iter().zip(&b.data) {
        assert_eq!(x.is_nan(), y.is_nan(), "Allsky blank pixels differ");
        if !x.is_nan() {
            both += 1;
            assert!((x - y).abs() <= TIGHT.max * 3500.0, "Allsky: {x} vs {y}");
        }
    }
    assert!(both > 1000, "{both} Allsky pixels with data");

    let (mine, order) = moc_cells(&ours.join("Moc.fits"));
    assert_eq!(order, 7);
    assert_eq!((mine, order), moc_cells(&theirs.join("Moc.fits")));
}

/// Hipsgen's LINT finds no error on a Tessera image HiPS with FITS, PNG and JPEG tiles;
/// the only warnings are the recommended keywords the registry cannot know.
#[test]
fn hipsgen_lint_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    register(
        &root,
        "demo",
        &[&repo_root().join("datasets/images/m13.fits")],
    );
    let out = build(
        &root,
        "demo",
        &["--format", "fits,png,jpeg", "--stretch", "asinh"],
    );
    let text = lint(&out);
    eprintln!("{text}");
    assert!(
        text.contains("is IVOA HiPS 1.0 compatible")
            || text.contains("is fully IVOA HiPS 1.0 compatible"),
        "no compatible verdict:\n{text}"
    );
    assert!(!text.contains("not IVOA HiPS 1.0 compatible"), "{text}");
    assert!(text.contains("\"Moc.fits\" ok"), "{text}");
    assert!(
        text.contains("Allsky found [Norder3/Allsky.png] ok"),
        "{text}"
    );
    assert!(
        text.contains("Allsky found [Norder3/Allsky.fits] ok"),
        "{text}"
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "LINT errors: {errors:#?}");
    for w in text.lines().filter(|l| l.contains("WARN")) {
        assert!(
            w.contains("recommended keyword missing"),
            "unexpected warning: {w}"
        );
    }
}

/// Blanks, overlap averaging, the tree, PNG/JPEG, Allsky, MOC and properties on the two
/// overlapping cut-outs (built together and each alone).
#[test]
fn blanks_overlaps_tree_png_moc_properties() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let (a, b) = overlap_inputs(&tmp.path().join("in"));
    register(&root, "a", &[&a]);
    register(&root, "b", &[&b]);
    register(&root, "ab", &[&a, &b]);
    let fmt = ["--format", "fits,png,jpeg", "--cut", "100,1000"];
    let (ha, hb, hab) = (
        build(&root, "a", &fmt),
        build(&root, "b", &fmt),
        build(&root, "ab", &fmt),
    );
    let order = 9;
    let (ta, tb, tab) = (tiles(&ha, order), tiles(&hb, order), tiles(&hab, order));

    // Overlaps averaged; a pixel blank in one image takes the other's value; blank in both
    // stays blank.
    let (mut mean, mut only_a, mut only_b, mut none, mut weighted) = (0, 0, 0, 0, 0);
    for (n, p) in &tab {
        let ab = read_fits(p);
        let va = ta.get(n).map(|p| read_fits(p).data);
        let vb = tb.get(n).map(|p| read_fits(p).data);
        for (k, x) in ab.data.iter().enumerate() {
            let xa = va.as_ref().map_or(f64::NAN, |v| v[k]);
            let xb = vb.as_ref().map_or(f64::NAN, |v| v[k]);
            match (xa.is_nan(), xb.is_nan()) {
                (true, true) => {
                    assert!(x.is_nan(), "tile {n} pixel {k}: {x} where both are blank");
                    none += 1;
                }
                (false, true) => {
                    assert!((x - xa).abs() <= 1e-3, "tile {n} pixel {k}");
                    only_a += 1;
                }
                (true, false) => {
                    assert!((x - xb).abs() <= 1e-3, "tile {n} pixel {k}");
                    only_b += 1;
                }
                (false, false) => {
                    let m = (xa + xb) / 2.0;
                    if (x - m).abs() <= 1e-3 * m.abs() {
                        mean += 1;
                    } else {
                        // The last row/column of an image weighs ½ (Hipsgen's rule).
                        assert!(
                            (x - xa.min(xb)) >= -1e-3 && (xa.max(xb) - x) >= -1e-3,
                            "tile {n} pixel {k}: {x} not between {xa} and {xb}"
                        );
                        weighted += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "overlap: {mean} pixels the plain mean, {weighted} edge-weighted, {only_a} from a only, {only_b} from b only, {none} blank"
    );
    assert!(
        mean > 10_000 && only_a > 10_000 && only_b > 10_000,
        "{mean} {only_a} {only_b}"
    );
    assert!(weighted < mean / 20, "{weighted} edge-weighted pixels");

    // Blank pixels inside the footprint: the holes. The pixels covered by neither image
    // include the part of a's hole under b's hole (≥ 25 input pixels ≈ 30 HiPS pixels).
    let covered: usize = tab
        .values()
        .map(|p| read_fits(p).data.iter().filter(|v| !v.is_nan()).count())
        .sum();
    // a ∪ b covers 200·200 + 220·200 − 120·100 = 72,000 input pixels of 0.9997″; a HiPS
    // pixel at order 18 is 0.8052″ on a side.
    let expected = 72_000.0 * (0.999_72f64 / 0.805_2).powi(2);
    assert!(
        (covered as f64 - expected).abs() < 0.01 * expected,
        "{covered} pixels covered, about {expected:.0} expected"
    );

    // A parent tile is the mean of the non-blank pixels of each 2×2 block of its children.
    let parents = tiles(&hab, order - 1);
    let mut checked = 0;
    for (pn, pp) in &parents {
        let parent = read_fits(pp).data;
        for q in 0..4u64 {
            let Some(cp) = tab.get(&(4 * pn + q)) else {
                continue;
            };
            let child = read_fits(cp).data;
            // Memory order (row r from the top): stored row W−1−r. Child q holds the
            // parent's rows (q & 1)·W/2… and columns (q >> 1)·W/2….
            let at = |v: &[f64], r: usize, c: usize| v[(W - 1 - r) * W + c];
            for pr in 0..W / 2 {
                for pc in 0..W / 2 {
                    let block = [
                        at(&child, 2 * pr, 2 * pc),
                        at(&child, 2 * pr, 2 * pc + 1),
                        at(&child, 2 * pr + 1, 2 * pc),
                        at(&child, 2 * pr + 1, 2 * pc + 1),
                    ];
                    let ok: Vec<f64> = block.iter().copied().filter(|v| !v.is_nan()).collect();
                    let got = at(
                        &parent,
                        (q as usize & 1) * W / 2 + pr,
                        (q as usize >> 1) * W / 2 + pc,
                    );
                    if ok.is_empty() {
                        assert!(got.is_nan());
                    } else {
                        let m = ok.iter().sum::<f64>() / ok.len() as f64;
                        assert!((got - m).abs() <= 1e-4 * m.abs().max(1.0), "{got} vs {m}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked} parent pixels checked");
    // Every order down to 0 is there.
    for k in 0..=order {
        assert!(!tiles(&hab, k).is_empty(), "no tile at order {k}");
    }

    // PNG: 512×512 grey + alpha, transparent exactly where the FITS tile is blank, grey
    // levels 1…255 elsewhere, following the cut 100…1000 (linear). JPEG: a 512×512 JFIF.
    let (n, fits_path) = tab.iter().next().unwrap();
    let fits = read_fits(fits_path);
    let png_path = fits_path.with_extension("png");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (W as u32, W as u32));
    assert_eq!(info.color_type, png::ColorType::GrayscaleAlpha);
    let (mut transparent, mut opaque) = (0, 0);
    for r in 0..W {
        for c in 0..W {
            let (g, alpha) = (buf[2 * (r * W + c)], buf[2 * (r * W + c) + 1]);
            let v = fits.data[(W - 1 - r) * W + c];
            if v.is_nan() {
                assert_eq!(
                    (g, alpha),
                    (0, 0),
                    "tile {n} ({r}, {c}): blank must be transparent"
                );
                transparent += 1;
            } else {
                assert_eq!(alpha, 255);
                let want = 1.0 + 254.0 * ((v - 100.0) / 900.0).clamp(0.0, 1.0);
                assert!((f64::from(g) - want).abs() <= 1.0, "grey {g} for {v}");
                opaque += 1;
            }
        }
    }
    assert!(transparent > 0 && opaque > 0);
    let jpg = std::fs::read(fits_path.with_extension("jpg")).unwrap();
    assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
    let sof = jpg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let (h, w) = (
        u16::from_be_bytes([jpg[sof + 5], jpg[sof + 6]]),
        u16::from_be_bytes([jpg[sof + 7], jpg[sof + 8]]),
    );
    assert_eq!((w, h), (W as u16, W as u16));

    // Allsky files.
    let allsky = read_fits(&hab.join("Norder3/Allsky.fits"));
    assert_eq!((allsky.width, allsky.height), (1728, 1856));
    for ext in ["png", "jpg"] {
        assert!(hab.join(format!("Norder3/Allsky.{ext}")).is_file());
    }

    // The MOC (order 9: the deepest order, ≥ 7) is exactly the set of deepest tiles with
    // data, and moc_sky_fraction is their area.
    let (cells, moc_order) = moc_cells(&hab.join("Moc.fits"));
    assert_eq!(moc_order, 9);
    let cells: Vec<u64> = cells.iter().map(|u| u - 4 * 4u64.pow(9)).collect();
    assert_eq!(cells, tab.keys().copied().collect::<Vec<_>>());
    let p = props(&hab);
    let frac: f64 = p["moc_sky_fraction"].parse().unwrap();
    let want = cells.len() as f64 / (12.0 * 4f64.powi(9));
    assert!((frac - want).abs() < 1e-6 * want, "{frac} vs {want}");

    // properties.
    for key in [
        "creator_did",
        "obs_title",
        "obs_description",
        "dataproduct_type",
        "hips_version",
        "hips_release_date",
        "hips_status",
        "hips_tile_format",
        "hips_order",
        "hips_frame",
        "hips_tile_width",
        "hips_pixel_bitpix",
        "hips_pixel_cut",
        "hips_data_range",
        "hips_initial_ra",
        "hips_initial_dec",
        "hips_initial_fov",
        "moc_sky_fraction",
        "hips_builder",
    ] {
        assert!(p.contains_key(key), "properties lacks {key}: {p:?}");
    }
    assert_eq!(p["dataproduct_type"], "image");
    assert_eq!(p["hips_version"], "1.4");
    assert_eq!(p["hips_tile_width"], "512");
    assert_eq!(p["hips_pixel_bitpix"], "-32");
    assert_eq!(p["hips_tile_format"], "png jpeg fits");
    assert_eq!(p["hips_order"], "9");
    assert_eq!(p["hips_frame"], "equatorial");
    assert_eq!(p["hips_pixel_cut"], "100 1000");
    assert_eq!(p["hips_status"], "public master clonableOnce");
    assert_eq!(p["creator_did"], "ivo://tessera/P/ab");
    let date = &p["hips_release_date"];
    assert!(
        date.len() == 17 && date.ends_with('Z') && &date[10..11] == "T",
        "{date}"
    );
    let ra: f64 = p["hips_initial_ra"].parse().unwrap();
    let dec: f64 = p["hips_initial_dec"].parse().unwrap();
    assert!(
        (ra - 250.42).abs() < 0.05 && (dec - 36.46).abs() < 0.05,
        "{ra} {dec}"
    );
}

/// Re-building publishes the new version in one step: no staging directory left, a stale
/// one of a dead build removed, the old content replaced. A failing build leaves the
/// previous version in place.
#[test]
fn publication_is_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    register(
        &root,
        "m13",
        &[&repo_root().join("datasets/images/m13.fits")],
    );
    let out = build(&root, "m13", &[]);
    let hips = root.join("hips");
    // A build killed before publishing leaves its staging directory (pid 999999999 does not
    // exist); the next build removes it.
    let stale = hips.join(".m13.tessera-staging-999999999");
    std::fs::create_dir_all(stale.join("Norder9")).unwrap();
    std::fs::write(out.join("marker"), "old").unwrap();
    build(&root, "m13", &["--format", "fits,jpeg"]);
    assert!(!out.join("marker").exists(), "the old version survived");
    assert!(out.join("Norder9/Dir600000/Npix603930.jpg").is_file());
    assert!(!out.join("Norder9/Dir600000/Npix603930.png").exists());
    let names: Vec<String> = std::fs::read_dir(&hips)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["m13".to_string()], "left in hips/: {names:?}");

    // A failing build (the image file became unreadable) keeps the published version.
    let before = std::fs::read(out.join("properties")).unwrap();
    let img = root.join("images/m13/m13.fits");
    let good = std::fs::read(&img).unwrap();
    replace(&img, &good[..4000]);
    let o = tessera(&[
        "hips",
        "build",
        "--data",
        s(&root),
        "--collection",
        "m13",
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(out.join("properties")).unwrap(), before);
    assert!(out.join("Norder9/Dir600000/Npix603930.fits").is_file());
    let names: Vec<String> = std::fs::read_dir(&hips)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["m13".to_string()], "left in hips/: {names:?}");
}

/// Bad input gives a clear error naming what is wrong, and nothing is published.
#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let err = |args: &[&str]| -> String {
        let o = tessera(args);
        assert!(!o.status.success(), "tessera {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let hb = |collection: &str, extra: &[&str]| -> String {
        let mut a = vec![
            "hips",
            "build",
            "--data",
            s(&root),
            "--collection",
            collection,
        ];
        a.extend(extra);
        err(&a)
    };
    // No registry yet.
    std::fs::create_dir_all(&root).unwrap();
    let e = hb("demo", &[]);
    assert!(e.contains("load-images"), "{e}");

    register(
        &root,
        "demo",
        &[&repo_root().join("datasets/images/m13.fits")],
    );
    // Unknown collection: the known ones are listed.
    let e = hb("nope", &[]);
    assert!(e.contains("`nope`") && e.contains("demo"), "{e}");
    // Bad options.
    let e = hb("demo", &["--format", "gif"]);
    assert!(e.contains("gif"), "{e}");
    let e = hb("demo", &["--stretch", "cubic"]);
    assert!(e.contains("cubic"), "{e}");
    let e = hb("demo", &["--cut", "5,1"]);
    assert!(e.contains("--cut"), "{e}");
    let e = hb("demo", &["--cut", "x"]);
    assert!(e.contains("MIN,MAX"), "{e}");
    let e = hb("demo", &["--order", "25"]);
    assert!(e.contains("--order 25"), "{e}");
    let e = hb("demo", &["--out", s(&root.join("hips/.hidden"))]);
    assert!(e.contains("id"), "{e}");

    // A registered file that is no longer readable FITS: the error names it.
    let img = root.join("images/demo/m13.fits");
    let good = std::fs::read(&img).unwrap();
    replace(&img, &[b'x'; 2880]);
    let e = hb("demo", &[]);
    assert!(e.contains("m13.fits") && e.contains("FITS"), "{e}");
    // Truncated data.
    replace(&img, &good[..2880 + 1000]);
    let e = hb("demo", &[]);
    assert!(e.contains("m13.fits") && e.contains("truncated"), "{e}");
    // No celestial WCS: the CTYPEs renamed.
    let mut nowcs = good.clone();
    for pos in (0..2880).step_by(80) {
        if nowcs[pos..pos + 5] == *b"CTYPE" {
            nowcs[pos..pos + 80].copy_from_slice(format!("{:<80}", "COMMENT no WCS").as_bytes());
        }
    }
    replace(&img, &nowcs);
    let e = hb("demo", &[]);
    assert!(e.contains("m13.fits") && e.contains("HDU 0"), "{e}");
    assert!(
        !root.join("hips/demo").exists(),
        "a failed build published something"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.join("hips"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A cube contributes its first plane, and `properties` says so.
#[test]
fn cube_uses_its_first_plane() {
    let tmp = tempfile::tempdir().unwrap();
    let (nx, ny, nz) = (60usize, 40usize, 3usize);
    let mut out = Vec::new();
    for c in [
        "SIMPLE  =                    T".to_string(),
        "BITPIX  =                  -32".into(),
        "NAXIS   =                    3".into(),
        format!("NAXIS1  = {nx:>20}"),
        format!("NAXIS2  = {ny:>20}"),
        format!("NAXIS3  = {nz:>20}"),
        "CTYPE1  = 'RA---TAN'".into(),
        "CTYPE2  = 'DEC--TAN'".into(),
        "CTYPE3  = 'WAVE'".into(),
        "CUNIT3  = 'm'".into(),
        "CRVAL1  =                 10.0".into(),
        "CRVAL2  =                -20.0".into(),
        "CRVAL3  =               5.0E-7".into(),
        "CRPIX1  =                 30.5".into(),
        "CRPIX2  =                 20.5".into(),
        "CRPIX3  =                  1.0".into(),
        "CDELT1  =           -0.0002778".into(),
        "CDELT2  =            0.0002778".into(),
        "CDELT3  =               1.0E-9".into(),
        "RADESYS = 'ICRS'".into(),
        "END".into(),
    ] {
        card(&mut out, &c);
    }
    out.resize(2880 * out.len().div_ceil(2880), b' ');
    for plane in 0..nz {
        for _ in 0..nx * ny {
            out.extend_from_slice(&(plane as f32 + 1.0).to_be_bytes());
        }
    }
    out.resize(2880 * out.len().div_ceil(2880), 0);
    let cube = tmp.path().join("cube.fits");
    std::fs::write(&cube, out).unwrap();
    let root = tmp.path().join("root");
    register(&root, "cube", &[&cube]);
    let hips = build(&root, "cube", &[]);
    let p = props(&hips);
    assert!(p["obs_description"].contains("first plane"), "{p:?}");
    assert_eq!(p["hips_order"], "9");
    let mut n = 0;
    for path in tiles(&hips, 9).values() {
        for v in read_fits(path).data.iter().filter(|v| !v.is_nan()) {
            assert_eq!(*v, 1.0, "a value from another plane");
            n += 1;
        }
    }
    assert!(n > 3000, "{n} pixels");
}

/// The demo data root gets an image HiPS of its images at ROOT/hips/demo-images, once.
#[test]
fn demo_builds_its_image_hips() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert!(tessera_server::demo::ensure_demo_images(root).unwrap());
    assert!(tessera_server::demo::ensure_demo_hips(root));
    let out = root.join("hips").join(tessera_server::demo::DEMO_HIPS_ID);
    let p = props(&out);
    assert_eq!(p["hips_order"], "9");
    assert_eq!(p["dataproduct_type"], "image");
    // M13 (3 tiles), the SIP image and the Crab at order 9.
    assert!(tiles(&out, 9).len() >= 5, "{:?}", tiles(&out, 9).keys());
    assert!(!tessera_server::demo::ensure_demo_hips(root), "built twice");
}
