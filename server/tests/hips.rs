//! Catalogue HiPS end to end through a running `tessera serve` on the demo archive (real
//! Hipparcos, 117,955 stars): every star in exactly one tile of the hierarchy, the brightest
//! in the order-1 Allsky, `Completeness` lines consistent with the tree, brighter stars never
//! below fainter ones, the root files with their content types, ETag and 304, Aladin's
//! Hipsgen `LINT` verdict, and the HiPS list.
#![allow(clippy::print_stderr)] // tile counts and the LINT report, for the record

use std::collections::{HashMap, HashSet};
use std::process::Command;

mod common;
use common::{http, start};

const HIPS: &str = "/hips/hipparcos.hip2";
const ROWS: usize = 117_955;
const SIRIUS: i64 = 32349;

fn props(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A parsed TSV tile: (loaded, total) of its `Completeness` line and its rows (HIP, Hpmag).
struct Tile {
    loaded: usize,
    total: usize,
    rows: Vec<(i64, f64)>,
}

fn parse_tile(body: &[u8], what: &str) -> Tile {
    let text = std::str::from_utf8(body).unwrap();
    let mut lines = text.split('\n');
    let first = lines.next().unwrap();
    let c = first
        .strip_prefix("# Completeness = ")
        .unwrap_or_else(|| panic!("{what}: first line {first:?}"));
    let (a, b) = c.split_once('/').unwrap();
    assert_eq!(lines.next(), Some("HIP\tra\tdec\tHpmag"), "{what}: header");
    let mut rows = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        assert!(!l.starts_with('#'), "{what}: a second comment line");
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 4, "{what}: {l}");
        let ra: f64 = f[1].parse().unwrap();
        let dec: f64 = f[2].parse().unwrap();
        assert!((0.0..360.0).contains(&ra) && (-90.0..=90.0).contains(&dec));
        let mag = if f[3].is_empty() {
            f64::INFINITY
        } else {
            f[3].parse().unwrap()
        };
        rows.push((f[0].parse().unwrap(), mag));
    }
    Tile {
        loaded: a.trim().parse().unwrap(),
        total: b.trim().parse().unwrap(),
        rows,
    }
}

fn tile_path(hips: &str, k: u8, n: u64) -> String {
    format!("{hips}/Norder{k}/Dir{}/Npix{n}.tsv", n / 10000 * 10000)
}

/// Walks the whole tile tree of the Hipparcos HiPS at `hips` and checks it: every star in
/// exactly one tile, Sirius at order 1, `Completeness` consistent with the tree, brighter
/// stars never below fainter ones, the Allsky files equal to their orders' tiles. Returns
/// the HIP numbers of every tile, in tile order.
fn check_tree(addr: &str, hips: &str) -> HashMap<(u8, u64), Vec<i64>> {
    let (st, _, body) = http(addr, "GET", &format!("{hips}/properties"), None);
    assert_eq!(st, 200);
    let p = props(&String::from_utf8(body).unwrap());
    let max_order: u8 = p["hips_order"].parse().unwrap();
    assert_eq!(p["hips_cat_nrows"], ROWS.to_string());
    assert!((3..=11).contains(&max_order), "hips_order {max_order}");

    // Walk the tree from order 1, following the tiles that exist, down to hips_order (and
    // one order beyond, which must be empty).
    let mut seen: HashMap<i64, (u8, u64)> = HashMap::new();
    let mut tiles: HashMap<(u8, u64), Tile> = HashMap::new();
    let mut frontier: Vec<u64> = (0..48).collect();
    let mut requests = 0;
    for k in 1..=max_order + 1 {
        let mut next = Vec::new();
        for &n in &frontier {
            let path = tile_path(hips, k, n);
            let (st, head, body) = http(addr, "GET", &path, None);
            requests += 1;
            if st == 404 {
                assert!(!body.contains(&b'\t'), "{path}: a 404 body with a tab");
                assert!(head.contains("access-control-allow-origin: *"));
                continue;
            }
            assert_eq!(st, 200, "{path}");
            assert!(k <= max_order, "{path} exists beyond hips_order");
            assert!(
                head.contains("content-type: text/tab-separated-values"),
                "{path}: {head}"
            );
            let t = parse_tile(&body, &path);
            assert!(!t.rows.is_empty(), "{path}: served without rows");
            for &(hip, _) in &t.rows {
                if let Some(prev) = seen.insert(hip, (k, n)) {
                    panic!("HIP {hip} in {prev:?} and in ({k}, {n})");
                }
            }
            next.extend((0..4).map(|c| 4 * n + c));
            tiles.insert((k, n), t);
        }
        frontier = next;
    }
    assert_eq!(seen.len(), ROWS, "stars found in the tiles");
    assert_eq!(seen[&SIRIUS].0, 1, "Sirius is not at order 1");
    eprintln!(
        "{hips}: {} tiles over orders 1..={max_order}, {requests} requests",
        tiles.len()
    );

    // Completeness: the tile and its ancestors deliver `loaded` of the `total` rows of the
    // cell; all of them exactly when no deeper tile exists.
    for (&(k, n), t) in &tiles {
        assert!(
            t.rows.len() <= t.loaded && t.loaded <= t.total,
            "({k}, {n})"
        );
        let children: Vec<&Tile> = (0..4)
            .filter_map(|c| tiles.get(&(k + 1, 4 * n + c)))
            .collect();
        assert_eq!(children.is_empty(), t.loaded == t.total, "({k}, {n})");
        // What the children and their descendants still deliver is what this tile lacks.
        let deeper: usize = children
            .iter()
            .map(|c| c.total - (c.loaded - c.rows.len()))
            .sum();
        assert_eq!(deeper, t.total - t.loaded, "({k}, {n})");
    }
    // Order-1 totals add up to the catalogue.
    let sum1: usize = (0..48)
        .filter_map(|n| tiles.get(&(1, n)))
        .map(|t| t.total)
        .sum();
    assert_eq!(sum1, ROWS);

    // Brighter stars are never below fainter ones: every star of a deeper tile is at least
    // as faint as the faintest star of each of its ancestors.
    for (&(k, n), t) in &tiles {
        for j in 1..k {
            let a = &tiles[&(j, n >> (2 * u32::from(k - j)))];
            let faintest = a.rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
            for &(hip, m) in &t.rows {
                assert!(
                    m >= faintest,
                    "HIP {hip} (Hp {m}) at ({k}, {n}) is brighter than the faintest of ({j}, …)"
                );
            }
        }
    }

    // The Allsky files are the order-1 and order-2 tiles, tile by tile.
    for k in [1u8, 2] {
        let (st, head, body) = http(addr, "GET", &format!("{hips}/Norder{k}/Allsky.tsv"), None);
        assert_eq!(st, 200);
        assert!(head.contains("content-type: text/tab-separated-values"));
        let a = parse_tile(&body, "Allsky");
        let mut want: Vec<i64> = tiles
            .iter()
            .filter(|((o, _), _)| *o == k)
            .flat_map(|(_, t)| t.rows.iter().map(|r| r.0))
            .collect();
        let mut got: Vec<i64> = a.rows.iter().map(|r| r.0).collect();
        assert_eq!(got.len(), want.len());
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "Norder{k}/Allsky.tsv");
        assert_eq!(a.total, ROWS);
        if k == 1 {
            assert!(got.binary_search(&SIRIUS).is_ok());
            assert_eq!(a.rows.len(), 48 * 60);
        }
    }
    tiles
        .into_iter()
        .map(|(c, t)| (c, t.rows.into_iter().map(|r| r.0).collect()))
        .collect()
}

#[test]
fn every_star_is_in_exactly_one_tile() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    check_tree(&srv.addr, HIPS);
}

/// The same catalogue loaded with partitions of orders 0 to 4 (`--pixel-threshold 1000`):
/// `tessera load` writes the tile store (the tiles above a partition are computed from its
/// candidates, see `hips::assign`), the server finds and serves it without building one, and
/// every tile holds exactly the stars, in the same order, of the demo's single-order catalogue.
#[test]
fn partitioned_catalogue_gives_the_same_tiles() {
    let root = tempfile::tempdir().unwrap();
    let ds = common::repo_root().join("datasets/hipparcos");
    let catalog = root.path().join("hipparcos/hip2");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("load")
        .arg(ds.join("hip2.dat.zst"))
        .args(["--format", "cds", "--readme"])
        .arg(ds.join("ReadMe"))
        .arg("--catalog")
        .arg(&catalog)
        .args(["--pixel-threshold", "1000", "--no-progress"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("HiPS tile store of 117955 rows"),
        "{stdout}"
    );
    let parts = std::fs::read_to_string(catalog.join("partition_info.csv")).unwrap();
    let orders: HashSet<&str> = parts
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert!(
        orders.len() >= 2 && orders.contains("3"),
        "orders {orders:?}"
    );
    let store = root.path().join(".tessera/hips/hipparcos.hip2");
    assert!(store.join("tiles.idx").is_file() && store.join("meta.json").is_file());

    let state = tempfile::tempdir().unwrap();
    let srv = common::start_on(root.path(), &[], state.path());
    let tiles = check_tree(&srv.addr, HIPS);
    assert!(
        !state.path().join("hips/hipparcos.hip2").exists(),
        "the server built its own store instead of serving the loader's"
    );

    let demo_state = tempfile::tempdir().unwrap();
    let demo = start(&[], demo_state.path());
    let mut differ = 0;
    for (&(k, n), hips) in &tiles {
        let (st, _, body) = http(&demo.addr, "GET", &tile_path(HIPS, k, n), None);
        assert_eq!(st, 200, "({k}, {n}) missing in the demo's HiPS");
        let demo_hips: Vec<i64> = parse_tile(&body, "demo").rows.iter().map(|r| r.0).collect();
        differ += usize::from(&demo_hips != hips);
    }
    assert_eq!(differ, 0, "{differ} of {} tiles differ", tiles.len());
}

#[test]
fn root_files_headers_and_errors() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let a = &srv.addr;

    let (st, head, body) = http(a, "GET", &format!("{HIPS}/properties"), None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"));
    assert!(head.contains("cache-control: public"));
    let p = props(&String::from_utf8(body).unwrap());
    for (k, v) in [
        ("creator_did", "ivo://tessera/hips/hipparcos.hip2"),
        ("dataproduct_type", "catalog"),
        ("hips_version", "1.4"),
        ("hips_status", "public master clonableOnce"),
        ("hips_frame", "equatorial"),
        ("hips_tile_format", "tsv"),
        ("hips_order_min", "0"),
        ("hips_cat_nrows", "117955"),
        ("moc_sky_fraction", "1.00000"),
    ] {
        assert_eq!(p.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(p["hips_service_url"], format!("http://{a}{HIPS}"));
    for k in [
        "obs_title",
        "hips_release_date",
        "hips_initial_ra",
        "hips_initial_dec",
        "hips_initial_fov",
    ] {
        assert!(p.contains_key(k), "{k} missing");
    }
    let date = &p["hips_release_date"];
    assert!(
        date.len() == 17 && date.ends_with('Z') && &date[10..11] == "T",
        "{date}"
    );

    // ETag and 304.
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    let req = format!(
        "GET {HIPS}/properties HTTP/1.1\r\nHost: {a}\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    );
    let mut s = std::net::TcpStream::connect(a).unwrap();
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 304"), "{resp}");

    // Metadata.xml, both spellings: RA/Dec found by UCD, as Aladin does.
    for name in ["Metadata.xml", "metadata.xml"] {
        let (st, head, body) = http(a, "GET", &format!("{HIPS}/{name}"), None);
        assert_eq!(st, 200);
        assert!(head.contains("content-type: text/xml"), "{head}");
        let x = String::from_utf8(body).unwrap();
        let fields: Vec<&str> = x.split("<FIELD").skip(1).collect();
        assert_eq!(fields.len(), 4, "{x}");
        assert!(
            fields[1].contains("name=\"ra\"") && fields[1].contains("ucd=\"pos.eq.ra;meta.main\"")
        );
        assert!(
            fields[2].contains("name=\"dec\"")
                && fields[2].contains("ucd=\"pos.eq.dec;meta.main\"")
        );
        assert!(fields[0].contains("name=\"HIP\"") && fields[3].contains("name=\"Hpmag\""));
    }

    // Moc.fits: NUNIQ; Hipparcos covers the whole sky, i.e. the 12 base cells (uniq 4…15).
    let (st, head, body) = http(a, "GET", &format!("{HIPS}/Moc.fits"), None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: application/fits"));
    assert_eq!(body.len() % 2880, 0);
    let h = String::from_utf8_lossy(&body[2880..5760]).to_string();
    for card in [
        "XTENSION= 'BINTABLE'",
        "TTYPE1  = 'UNIQ    '",
        "ORDERING= 'NUNIQ   '",
        "MOCVERS = '2.0     '",
        "COORDSYS= 'C       '",
        "NAXIS2  =                   12",
    ] {
        assert!(h.contains(card), "{card} missing in {h}");
    }
    let uniq: Vec<u32> = body[5760..5760 + 48]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(uniq, (4..16).collect::<Vec<u32>>());

    // Missing things: 404, short body without a tab (Aladin Lite parses it as a tile).
    for path in [
        format!("{HIPS}/Norder11/Dir0/Npix5.tsv"),
        format!("{HIPS}/Norder3/Dir0/Npix5.png"),
        format!("{HIPS}/Norder5/Allsky.tsv"),
        "/hips/nosuch.table/properties".to_string(),
    ] {
        let (st, head, body) = http(a, "GET", &path, None);
        assert_eq!(st, 404, "{path}");
        assert!(head.contains("access-control-allow-origin: *"));
        assert!(body.len() < 200 && !body.contains(&b'\t'), "{path}");
    }
    // Order 0 holds no rows; its tiles exist for hips_order_min = 0.
    let (st, _, body) = http(a, "GET", &format!("{HIPS}/Norder0/Dir0/Npix4.tsv"), None);
    assert_eq!(st, 200);
    let t = parse_tile(&body, "order 0");
    assert!(t.rows.is_empty() && t.loaded == 0 && t.total > 0);

    // The HiPS directory itself.
    let (st, head, _) = http(a, "GET", HIPS, None);
    assert_eq!(st, 308, "{head}");
    let (st, head, _) = http(a, "GET", &format!("{HIPS}/"), None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/html"));
}

#[test]
fn hipsgen_lint_says_compatible() {
    let jar = "/usr/share/java/aladin.jar";
    assert!(
        std::path::Path::new(jar).is_file(),
        "{jar} missing: run tools/install-test-deps (Debian package aladin)"
    );
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let out = Command::new("timeout")
        .args([
            "300",
            "java",
            "-Djava.awt.headless=true",
            "-jar",
            jar,
            "-hipsgen",
        ])
        .arg(format!("out=http://{}{HIPS}", srv.addr))
        .arg("LINT")
        .current_dir(state.path())
        .output()
        .unwrap();
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Strip ANSI colour codes.
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
    eprintln!("{text}");
    assert!(
        text.contains("is IVOA HiPS 1.0 compatible")
            || text.contains("is fully IVOA HiPS 1.0 compatible"),
        "no compatible verdict:\n{text}"
    );
    assert!(!text.contains("is not IVOA HiPS 1.0 compatible"), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "LINT errors: {errors:#?}");
    // The only warnings are recommended keywords Tessera cannot know for a catalogue.
    for w in text.lines().filter(|l| l.contains("WARN")) {
        assert!(
            w.contains("recommended keyword missing"),
            "unexpected warning: {w}"
        );
    }
}

#[test]
fn hips_list_names_the_catalogue() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let (st, head, body) = http(&srv.addr, "GET", "/hips/list", None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/plain"));
    let text = String::from_utf8(body).unwrap();
    let records: Vec<HashMap<String, String>> = text
        .split("\n\n")
        .map(props)
        .filter(|r| !r.is_empty())
        .collect();
    assert!(!records.is_empty(), "{text}");
    let mut dids = HashSet::new();
    for r in &records {
        for k in [
            "creator_did",
            "hips_release_date",
            "hips_service_url",
            "hips_status",
        ] {
            assert!(r.contains_key(k), "{k} missing in {r:?}");
        }
        assert!(
            dids.insert(r["creator_did"].clone()),
            "duplicate creator_did"
        );
    }
    let hip = records
        .iter()
        .find(|r| r["creator_did"] == "ivo://tessera/hips/hipparcos.hip2")
        .unwrap_or_else(|| panic!("no Hipparcos record in {text}"));
    assert_eq!(
        hip["hips_service_url"],
        format!("http://{}{HIPS}", srv.addr)
    );
    assert_eq!(hip["dataproduct_type"], "catalog");
    assert_eq!(hip["hips_cat_nrows"], ROWS.to_string());
    // The URL it names serves the HiPS.
    let (st, _, _) = http(&srv.addr, "GET", &format!("{HIPS}/properties"), None);
    assert_eq!(st, 200);
}
