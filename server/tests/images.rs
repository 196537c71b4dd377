//! Images end to end through a running `tessera serve`: the demo images found by SIAv2,
//! linked by DataLink (checked by `stilts datalinklint`), cut by SODA (pixel-identical to
//! astropy's `Cutout2D`, WCS to 1e-6 pixel, `fitsverify` clean), the AWAV cube cut by BAND,
//! ivoa.ObsCore over TAP, STILTS' SIA2 client, and bad inputs answered with the standard
//! errors.

use std::process::Command;

mod common;
use common::{demo_root, http, python, repo_root, start};

const M13: &str = "ivo://tessera/demo?m13";

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn demo_images_are_found_linked_and_cut_with_pyvo() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let script = r##"
import io, json, sys
import numpy as np, pyvo, astropy.units as u
from astropy.io import fits
from astropy.wcs import WCS
from astropy.nddata import Cutout2D
from astropy.coordinates import SkyCoord
base, m13 = sys.argv[1], sys.argv[2]
out = {}
sia = pyvo.dal.SIA2Service(base + "/sia2/query", check_baseurl=False)
res = sia.search(pos=(250.42, 36.46, 0.1))
out["sia_rows"] = len(res)
out["sia_ids"] = [str(r["obs_publisher_did"]) for r in res]
res_all = pyvo.dal.SIA2Service(base + "/sia/query", check_baseurl=False).search(collection="demo")
out["all_rows"] = len(res_all)
rec = [r for r in res if str(r["obs_publisher_did"]) == "ivo://tessera/demo?m13"][0]
dl = rec.getdatalink()
this = next(dl.bysemantics("#this", include_narrower=False)).access_url
whole = pyvo.dal.adhoc.DatalinkResults  # noqa
import requests
whole = requests.get(this, timeout=60).content
src = fits.open(io.BytesIO(whole))[0]
out["whole_equal"] = whole == open(m13, "rb").read()
proc = dl.get_first_proc()
for (ra, dec, r) in [(250.42, 36.46, 0.01), (250.4226, 36.4602, 0.03), (250.38, 36.43, 0.02)]:
    data = proc.processed(circle=[ra, dec, r] * u.deg).read()
    ours = fits.open(io.BytesIO(data))[0]
    c = Cutout2D(src.data, SkyCoord(ra, dec, unit="deg"), size=2 * r * u.deg, wcs=WCS(src.header), mode="trim")
    key = f"{ra},{dec},{r}"
    out["identical " + key] = bool(ours.data.shape == c.data.shape and np.array_equal(ours.data, c.data))
    probe = SkyCoord(ra + 0.001, dec - 0.001, unit="deg")
    a = np.array(WCS(ours.header).world_to_pixel(probe))
    b = np.array(c.wcs.world_to_pixel(probe))
    out["wcs " + key] = float(np.abs(a - b).max())
    open(sys.argv[3] + f"/cut{len(out)}.fits", "wb").write(data)
t = pyvo.dal.TAPService(base + "/tap").run_sync(
    "SELECT obs_publisher_did, dataproduct_type, s_xel1 FROM ivoa.ObsCore WHERE obs_collection = 'demo' ORDER BY obs_id").to_table()
out["tap"] = [[str(r[0]), str(r[1]), int(r[2])] for r in t]
print(json.dumps(out))
"##;
    let dir = tempfile::tempdir().unwrap();
    let m13 = repo_root().join("datasets/images/m13.fits");
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(format!("http://{}", srv.addr))
        .arg(&m13)
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["sia_ids"], serde_json::json!([M13]), "{v}");
    assert_eq!(v["all_rows"], 3, "{v}");
    assert_eq!(v["whole_equal"], true, "{v}");
    for (k, val) in v.as_object().unwrap() {
        if k.starts_with("identical") {
            assert_eq!(val, true, "{k}: {v}");
        }
        if k.starts_with("wcs") {
            assert!(val.as_f64().unwrap() < 1e-6, "{k}: {v}");
        }
    }
    assert_eq!(
        v["tap"],
        serde_json::json!([
            ["ivo://tessera/demo?m13", "image", 300],
            ["ivo://tessera/demo?sip-wcs", "image", 100],
            ["ivo://tessera/demo?ukidss-crab-zpn", "image", 300]
        ]),
        "{v}"
    );
    // fitsverify on every cutout pyvo received.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        let o = Command::new("fitsverify")
            .arg("-q")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

#[test]
fn datalink_documents_pass_datalinklint_and_errors_are_standard() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let a = &srv.addr;
    for ids in [
        format!("ID={}", enc(M13)),
        format!(
            "ID={}&ID={}&ID=ivo://nowhere",
            enc(M13),
            enc("ivo://tessera/demo?ukidss-crab-zpn")
        ),
    ] {
        let out = Command::new("timeout")
            .args(["120", "stilts", "datalinklint"])
            .arg(format!("votable=http://{a}/datalink/links?{ids}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Totals: Errors: 0;") && text.contains("Failures: 0"),
            "{ids}:\n{text}"
        );
    }
    let (status, _, body) = http(
        a,
        "GET",
        &format!("/datalink/links?ID={}&ID=ivo://nowhere", enc(M13)),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("NotFoundFault: no dataset with ID ivo://nowhere")
    );
    // SODA errors: unknown ID 404, no overlap, bad or missing region 400; DALI documents.
    let cases = [
        (
            "ID=ivo://nowhere&CIRCLE=1+2+0.1".to_string(),
            404,
            "NotFoundFault",
        ),
        (
            format!("ID={}&CIRCLE=10+10+0.01", enc(M13)),
            400,
            "NoOverlap",
        ),
        (format!("ID={}&CIRCLE=10+10", enc(M13)), 400, "UsageFault"),
        (format!("ID={}", enc(M13)), 400, "CIRCLE, POLYGON or POS"),
        (
            format!("ID={}&POS=RANGE+250+251+37+36", enc(M13)),
            400,
            "reversed",
        ),
        (
            format!("ID={}&CIRCLE=250.42+36.46+0.01&TIME=1+2", enc(M13)),
            400,
            "TIME",
        ),
    ];
    for (q, want, needle) in cases {
        let (status, head, body) = http(a, "GET", &format!("/soda/sync?{q}"), None);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, want, "{q}: {body}");
        assert!(head.contains("application/x-votable+xml"), "{q}: {head}");
        assert!(
            body.contains("QUERY_STATUS") && body.contains(needle),
            "{q}: {body}"
        );
    }
    // POS RANGE and POLYGON cut too.
    for q in [
        format!("ID={}&POS=RANGE+250.40+250.44+36.44+36.48", enc(M13)),
        format!(
            "ID={}&POLYGON=250.40+36.44+250.44+36.44+250.42+36.48",
            enc(M13)
        ),
    ] {
        let (status, _, body) = http(a, "GET", &format!("/soda/sync?{q}"), None);
        assert_eq!(status, 200, "{q}");
        assert!(body.starts_with(b"SIMPLE  =                    T"), "{q}");
        assert_eq!(body.len() % 2880, 0, "{q}");
    }
    // SODA async (UWS): the same bytes as sync.
    let q = format!("ID={}&CIRCLE=250.42+36.46+0.01", enc(M13));
    let (_, _, sync_bytes) = http(a, "GET", &format!("/soda/sync?{q}"), None);
    let (status, head, _) = http(a, "POST", "/soda/async", Some(&format!("{q}&PHASE=RUN")));
    assert_eq!(status, 303, "{head}");
    let job = head
        .lines()
        .find_map(|l| l.strip_prefix("location:"))
        .unwrap()
        .trim()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // WAIT returns at each phase change (UWS 1.1): wait until a final phase.
    let mut doc = String::new();
    for _ in 0..10 {
        let (_, _, d) = http(a, "GET", &format!("/soda/async/{job}?WAIT=30"), None);
        doc = String::from_utf8_lossy(&d).to_string();
        if doc.contains("COMPLETED") || doc.contains("ERROR") {
            break;
        }
    }
    assert!(doc.contains("<uws:phase>COMPLETED"), "{doc}");
    let (status, _, async_bytes) =
        http(a, "GET", &format!("/soda/async/{job}/results/result"), None);
    assert_eq!(status, 200);
    assert_eq!(async_bytes, sync_bytes);
    // STILTS' SIA2 client.
    let out = Command::new("timeout")
        .args(["120", "stilts", "cone", "servicetype=sia2"])
        .arg(format!("serviceurl=http://{a}/sia2/query"))
        .args([
            "lon=83.6331",
            "lat=22.0145",
            "radius=0.05",
            "ofmt=csv",
            "out=-",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ivo://tessera/demo?ukidss-crab-zpn"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn cube_band_cutouts_select_the_planes_astropy_selects() {
    // The MUSE cube (AWAV axis) from the mpdaf wheel, fetched once into the cache.
    let out = Command::new(repo_root().join("tools/fetch-datasets"))
        .arg("test-images")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::path::PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap(),
    );
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(demo_root().join("hipparcos"), root.path().join("hipparcos"))
        .unwrap();
    let reg = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("load-images")
        .arg(dir.join("minicube.fits"))
        .args(["--collection", "muse", "--data"])
        .arg(root.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&reg.stdout);
    assert!(
        reg.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&reg.stderr)
    );
    let state = tempfile::tempdir().unwrap();
    let srv = common::start_on(root.path(), &[], state.path());
    let script = r#"
import io, json, sys
import numpy as np, requests, astropy.units as u
from astropy.io import fits
from astropy.wcs import WCS
from astropy.nddata import Cutout2D
from astropy.coordinates import SkyCoord
base, cube = sys.argv[1], sys.argv[2]
r = requests.get(base + "/tap/sync", params={"LANG": "ADQL", "QUERY": "SELECT obs_publisher_did, em_min, em_max, dataproduct_type FROM ivoa.ObsCore WHERE obs_collection = 'muse' AND dataproduct_type = 'cube'", "RESPONSEFORMAT": "json"}, timeout=60).json()
did, em_min, em_max, dpt = r["data"][0]
src = fits.open(cube)
hdu = [h for h in src if h.data is not None and h.data.ndim == 3][0]
w = WCS(hdu.header)
lo, hi = 6.0e-7, 6.01e-7
resp = requests.get(base + "/soda/sync", params={"ID": did, "CIRCLE": "63.3557 10.4657 0.0005", "BAND": f"{lo} {hi}"}, timeout=60)
ours = fits.open(io.BytesIO(resp.content))[0]
spec = w.spectral
# Plane k (0-based) covers [value(k - 0.5), value(k + 0.5)] (metres): the planes that overlap.
n = hdu.data.shape[0]
edges_lo = spec.pixel_to_world(np.arange(n) - 0.5).to_value("m")
edges_hi = spec.pixel_to_world(np.arange(n) + 0.5).to_value("m")
want = np.nonzero((edges_hi >= lo) & (edges_lo <= hi))[0]
out = {"em": [em_min, em_max], "full_em": [float(edges_lo[0]), float(edges_hi[-1])],
       "planes": int(ours.data.shape[0]), "want_planes": int(len(want)),
       "planes_equal": all(bool(np.array_equal(ours.data[i], Cutout2D(hdu.data[k], SkyCoord(63.3557, 10.4657, unit="deg"), size=0.001 * u.deg, wcs=w.celestial, mode="trim").data, equal_nan=True)) for i, k in enumerate(want)),
       "crval3_world": float(WCS(ours.header).spectral.pixel_to_world(0).to_value("m")),
       "want_world": float(spec.pixel_to_world(want[0]).to_value("m")), "status": resp.status_code}
print(json.dumps(out))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(format!("http://{}", srv.addr))
        .arg(dir.join("minicube.fits"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["planes"], v["want_planes"], "{v}");
    assert_eq!(v["planes_equal"], true, "{v}");
    let (a, b) = (
        v["crval3_world"].as_f64().unwrap(),
        v["want_world"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-15, "{v}");
    let em = v["em"].as_array().unwrap();
    let full = v["full_em"].as_array().unwrap();
    for i in 0..2 {
        let (x, y) = (em[i].as_f64().unwrap(), full[i].as_f64().unwrap());
        assert!(
            (x - y).abs() < 1e-12,
            "ObsCore em_min/em_max {em:?} vs astropy {full:?}"
        );
    }
}

#[test]
fn load_images_rejects_broken_files_with_clear_errors_and_registers_nothing() {
    let root = tempfile::tempdir().unwrap();
    let src = repo_root().join("datasets/images/m13.fits");
    let bytes = std::fs::read(&src).unwrap();
    let truncated = root.path().join("truncated.fits");
    std::fs::write(&truncated, &bytes[..bytes.len() - 50_000]).unwrap();
    let garbage = root.path().join("garbage.fits");
    std::fs::write(&garbage, b"this is not FITS at all").unwrap();
    let data = root.path().join("data");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("load-images")
            .arg(&src)
            .arg(&truncated)
            .arg(&garbage)
            .arg("--data")
            .arg(&data)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("truncated.fits") && err.contains("nothing was registered"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!data.join(".tessera/obscore.parquet").exists());
    let out = run(&["--skip-bad"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{err}");
    assert!(text.contains("registered 1 dataset"), "{text}");
    assert!(
        err.contains("skipped") && err.contains("truncated.fits") && err.contains("garbage.fits"),
        "{err}"
    );
}

#[test]
fn catalog_rows_link_to_themselves_their_neighbours_and_configured_queries() {
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(demo_root().join("hipparcos"), root.path().join("hipparcos"))
        .unwrap();
    std::fs::create_dir_all(root.path().join(".tessera")).unwrap();
    std::fs::write(
        root.path().join(".tessera/datalink.json"),
        r##"[{"catalog": "hipparcos.hip2", "semantics": "#auxiliary", "description": "bright neighbours within 2 degrees", "query": "SELECT HIP, Hpmag FROM hipparcos.hip2 WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, 2)) AND Hpmag < 8 AND HIP <> {id}"}]"##,
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let srv = common::start_on(root.path(), &[], state.path());
    let a = &srv.addr;
    let script = r##"
import json, sys, pyvo
base = sys.argv[1]
tap = pyvo.dal.TAPService(base + "/tap")
res = tap.run_sync("SELECT HIP, ra, dec FROM hipparcos.hip2 WHERE HIP = 32349")
dl = res[0].getdatalink()
out = {"links": [[r.semantics, r.description] for r in dl]}
this = [r for r in dl if r.semantics == "#this"][0].getdataset().read()
rows = {}
for r in dl:
    t = pyvo.dal.DALResults.from_result_url(r.access_url).to_table()
    rows[r.description] = [int(x) for x in t["HIP"]]
out["rows"] = rows
print(json.dumps(out))
"##;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(format!("http://{a}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let links = v["links"].as_array().unwrap();
    assert_eq!(links.len(), 3, "{v}");
    let rows = &v["rows"];
    // Sirius itself; within 1′ only Sirius; the configured query finds other bright stars
    // within 1° and never Sirius.
    assert_eq!(
        rows["this row of hipparcos.hip2 (full columns)"],
        serde_json::json!([32349]),
        "{v}"
    );
    assert_eq!(
        rows["sources of hipparcos.hip2 within 1 arcmin"],
        serde_json::json!([32349]),
        "{v}"
    );
    let bright = rows["bright neighbours within 2 degrees"]
        .as_array()
        .unwrap();
    assert!(
        !bright.is_empty() && !bright.contains(&serde_json::json!(32349)),
        "{v}"
    );
    // detail=minimal gives the identifier and position only; unknown rows are NotFoundFault.
    let (status, _, body) = http(
        a,
        "GET",
        "/datalink/cat/hipparcos.hip2?ID=32349&ID=999999999&detail=minimal",
        None,
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        body.contains("minimal columns")
            && body.contains("NotFoundFault: no row of hipparcos.hip2 with HIP = 999999999"),
        "{body}"
    );
    let out = Command::new("timeout")
        .args(["120", "stilts", "datalinklint"])
        .arg(format!(
            "votable=http://{a}/datalink/cat/hipparcos.hip2?ID=32349&ID=999999999"
        ))
        .output()
        .unwrap();
    let lint = String::from_utf8_lossy(&out.stdout);
    assert!(
        lint.contains("Totals: Errors: 0;") && lint.contains("Failures: 0"),
        "{lint}"
    );
    let (status, _, _) = http(
        a,
        "GET",
        "/datalink/cat/hipparcos.hip2?ID=1&detail=everything",
        None,
    );
    assert_eq!(status, 400);
}

#[test]
fn sia_parameters_filter_and_bad_ones_are_refused() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let a = &srv.addr;
    let count = |q: &str| -> (u16, usize, String) {
        let (status, _, body) = http(
            a,
            "GET",
            &format!("/sia/query?{q}&RESPONSEFORMAT=votable/td"),
            None,
        );
        let body = String::from_utf8_lossy(&body).to_string();
        (status, body.matches("<TR>").count(), body)
    };
    // The three demo images; FOV, DPTYPE, CALIB, COLLECTION, TARGET and ID select among them.
    assert_eq!(count("COLLECTION=demo").1, 3);
    assert_eq!(count("COLLECTION=demo&COLLECTION=other").1, 3);
    assert_eq!(count("COLLECTION=other").1, 0);
    assert_eq!(count("DPTYPE=image&CALIB=2").1, 3);
    assert_eq!(count("DPTYPE=cube").1, 0);
    assert_eq!(count("FOV=0.1+0.2").1, 1, "m13 spans 0.118 deg");
    assert_eq!(count(&format!("ID={}", enc(M13))).1, 1);
    assert_eq!(count("POS=RANGE+250+251+36+37").1, 1);
    assert_eq!(count("POS=POLYGON+83.6+22.0+83.7+22.0+83.65+22.05").1, 1);
    // Images without a spectral axis have no em_min/em_max: a BAND excludes them.
    assert_eq!(count("BAND=5e-7+6e-7").1, 0);
    let (status, n, body) = count("COLLECTION=demo&MAXREC=1");
    assert_eq!((status, n), (200, 1));
    assert!(body.contains("value=\"OVERFLOW\""), "{body}");
    for bad in [
        "POS=CIRCLE+1+2",
        "BAND=7+6",
        "CALIB=x",
        "POS=BOX+1+2+3+4",
        "MAXREC=-3",
    ] {
        let (status, _, body) = count(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("QUERY_STATUS"), "{bad}: {body}");
    }
    let (status, _, caps) = http(a, "GET", "/sia/capabilities", None);
    let caps = String::from_utf8_lossy(&caps);
    assert_eq!(status, 200);
    assert!(
        caps.contains("ivo://ivoa.net/std/SIA#query-2.0")
            && caps.contains(&format!("http://{a}/sia/query")),
        "{caps}"
    );
    let (status, _, avail) = http(a, "GET", "/sia/availability", None);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&avail).contains("<vosi:available>true"));
}
