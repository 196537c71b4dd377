//! The TAP service against the real clients, through a running `tessera serve` on the demo
//! archive: `stilts taplint` (zero errors in every stage), pyvo (sync, async, upload, tables,
//! examples) with every output format read back by astropy/pyarrow, STILTS tapquery with a
//! chunked multipart VOTable 1.2 upload, and jobs surviving a SIGKILL of the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{enc, http, python, repo_root, start};

#[test]
fn pyvo_sync_async_upload_tables_examples_and_every_format() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/tap_pyvo.py"))
        .arg(format!("http://{}/tap", srv.addr))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"ok\": true"),
        "pyvo checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reports of level ERROR or FAILURE that we accept, as `STAGE-CODE`, each with its reason.
///
/// * `LOC-NOTP` (FAILURE "No table with name ivoa.obsplan"): taplint 3.4.7's ObsLocTAP stage
///   reports it for every service without an `ivoa.obsplan` table, whatever the
///   capabilities declare; Tessera serves no observation plans.
const TAPLINT_ALLOWED: &[&str] = &["LOC-NOTP"];

#[test]
fn taplint_finds_no_errors_in_any_stage() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    for interface in ["cap", "tap1.1"] {
        let out = Command::new("timeout")
            .args(["900", "stilts", "taplint"])
            .arg(format!("tapurl=http://{}/tap", srv.addr))
            .arg(format!("interface={interface}"))
            .args(["format=json", "report=EWF", "maxrepeat=20"])
            .output()
            .expect("stilts not found: run tools/install-test-deps");
        let text = String::from_utf8_lossy(&out.stdout);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "taplint output is not JSON ({e}):\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let mut errors = Vec::new();
        let mut stages = Vec::new();
        for sec in json["sections"].as_array().unwrap() {
            let code = sec["code"].as_str().unwrap_or("");
            stages.push(code.to_string());
            for r in sec["reports"].as_array().into_iter().flatten() {
                let level = r["level"].as_str().unwrap_or("");
                let rc = r["code"].as_str().unwrap_or("");
                if (level == "ERROR" || level == "FAILURE")
                    && !TAPLINT_ALLOWED.contains(&format!("{code}-{rc}").as_str())
                {
                    errors.push(format!("{level} {code}-{rc}: {}", r["text"]));
                }
            }
        }
        for s in [
            "TMV", "TME", "TMS", "TMC", "CPV", "CAP", "AVV", "QGE", "QPO", "QAS", "UWS", "MDQ",
            "UPL", "EXA",
        ] {
            if interface == "cap" {
                assert!(
                    stages.iter().any(|x| x == s),
                    "stage {s} did not run: {stages:?}"
                );
            }
        }
        assert!(
            errors.is_empty(),
            "taplint interface={interface}: {} errors:\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
}

#[test]
fn stilts_tapquery_sync_async_and_chunked_votable_upload() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "id,ra,dec\n1,0.0009118508717948024,1.0890133181622599\n2,10,20\n",
    )
    .unwrap();
    // STILTS sends the upload as a VOTable 1.2 TABLEDATA part of a chunked multipart body
    // with a quoted boundary.
    let out = Command::new("timeout")
        .args(["300", "stilts", "tapquery"])
        .arg(format!("tapurl=http://{}/tap", srv.addr))
        .arg("adql=SELECT u.id, h.HIP FROM TAP_UPLOAD.t1 AS u JOIN hipparcos.hip2 AS h ON 1=CONTAINS(POINT('ICRS',h.ra,h.dec), CIRCLE('ICRS',u.ra,u.dec,0.001))")
        .args(["nupload=1", "ufmt1=csv", "upname1=t1", "sync=true", "ofmt=csv", "out=-"])
        .arg(format!("upload1={}", csv.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, vec!["id,HIP", "1,1"], "{text}");
    let out = Command::new("timeout")
        .args(["300", "stilts", "tapquery"])
        .arg(format!("tapurl=http://{}/tap", srv.addr))
        .arg("adql=SELECT COUNT(*) AS n FROM hipparcos.hip2")
        .args(["sync=false", "delete=finished", "ofmt=csv", "out=-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("117955"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn job_phase(addr: &str, job: &str) -> String {
    let (status, _, body) = http(addr, "GET", &format!("/tap/async/{job}/phase"), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body).trim().to_string()
}

fn submit(addr: &str, query: &str, run: bool) -> String {
    let body = format!(
        "LANG=ADQL&QUERY={}{}",
        enc(query),
        if run { "&PHASE=RUN" } else { "" }
    );
    let (status, head, _) = http(addr, "POST", "/tap/async", Some(&body));
    assert_eq!(status, 303, "{head}");
    let loc = head
        .lines()
        .find_map(|l| l.strip_prefix("location:"))
        .unwrap()
        .trim()
        .to_string();
    loc.rsplit('/').next().unwrap().to_string()
}

fn wait_phase(addr: &str, job: &str, want: &[&str], secs: u64) -> String {
    let t = Instant::now();
    loop {
        let p = job_phase(addr, job);
        if want.contains(&p.as_str()) || t.elapsed() > Duration::from_secs(secs) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn jobs_survive_a_sigkill_with_truthful_phases() {
    let state = tempfile::tempdir().unwrap();
    // One job at a time, so that a second slow job waits in the queue.
    let mut srv = start(&["--max-running-jobs", "1"], state.path());
    let addr = srv.addr.clone();
    let done = submit(
        &addr,
        "SELECT TOP 5 HIP FROM hipparcos.hip2 ORDER BY HIP",
        true,
    );
    assert_eq!(
        wait_phase(&addr, &done, &["COMPLETED", "ERROR"], 60),
        "COMPLETED"
    );
    // A self-join of 118k rows with no usable constraint runs for hours: it is executing
    // when the server dies, and the next one is queued behind it.
    let slow = "SELECT COUNT(*) FROM hipparcos.hip2 AS a, hipparcos.hip2 AS b WHERE a.Hpmag + b.Hpmag > 100";
    let running = submit(&addr, slow, true);
    assert_eq!(wait_phase(&addr, &running, &["EXECUTING"], 60), "EXECUTING");
    let queued = submit(&addr, slow, true);
    assert_eq!(job_phase(&addr, &queued), "QUEUED");
    let pending = submit(&addr, "SELECT TOP 1 HIP FROM hipparcos.hip2", false);

    // SIGKILL: no chance to clean up.
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();

    let srv = start(&["--max-running-jobs", "1"], state.path());
    let addr = srv.addr.clone();
    let (status, _, list) = http(&addr, "GET", "/tap/async", None);
    assert_eq!(status, 200);
    let list = String::from_utf8_lossy(&list);
    for j in [&done, &running, &queued, &pending] {
        assert!(
            list.contains(j.as_str()),
            "job {j} lost after restart:\n{list}"
        );
    }
    assert_eq!(job_phase(&addr, &done), "COMPLETED");
    let (status, head, body) = http(
        &addr,
        "GET",
        &format!("/tap/async/{done}/results/result"),
        None,
    );
    assert_eq!(status, 200, "{head}");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("QUERY_STATUS") && body.contains("<VOTABLE"),
        "{body}"
    );
    assert_eq!(job_phase(&addr, &running), "ERROR");
    let (status, _, err) = http(&addr, "GET", &format!("/tap/async/{running}/error"), None);
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&err).contains("server stopped"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    // The queued job was queued again and runs now; the pending one waits for RUN.
    let p = job_phase(&addr, &queued);
    assert!(p == "QUEUED" || p == "EXECUTING", "{p}");
    assert_eq!(job_phase(&addr, &pending), "PENDING");
    // ABORT stops it for real.
    let (status, _, _) = http(
        &addr,
        "POST",
        &format!("/tap/async/{queued}/phase"),
        Some("PHASE=ABORT"),
    );
    assert_eq!(status, 303);
    assert_eq!(wait_phase(&addr, &queued, &["ABORTED"], 30), "ABORTED");
    let (status, _, _) = http(
        &addr,
        "POST",
        &format!("/tap/async/{pending}/phase"),
        Some("PHASE=RUN"),
    );
    assert_eq!(status, 303);
    assert_eq!(
        wait_phase(&addr, &pending, &["COMPLETED", "ERROR"], 60),
        "COMPLETED"
    );
    // DELETE removes the job and its result.
    let (status, _, _) = http(&addr, "DELETE", &format!("/tap/async/{done}"), None);
    assert_eq!(status, 303);
    let (status, _, _) = http(&addr, "GET", &format!("/tap/async/{done}"), None);
    assert_eq!(status, 404);
}

/// A multipart POST with one file part; returns status and body.
fn post_multipart(
    addr: &str,
    path: &str,
    fields: &[(&str, &str)],
    file: (&str, &[u8]),
) -> (u16, String) {
    let boundary = "<<<--tessera-test-boundary-->>>";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"t.csv\"\r\nContent-Type: text/csv\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=\"{boundary}\"\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    (text[9..12].parse().unwrap(), text)
}

#[test]
fn limits_and_bad_parameters_give_clear_errors_never_5xx() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(
        &[
            "--maxrec-hard",
            "5",
            "--maxrec-default",
            "3",
            "--upload-max-rows",
            "2",
        ],
        state.path(),
    );
    let a = &srv.addr;
    let q = enc("SELECT TOP 10 HIP FROM hipparcos.hip2 ORDER BY HIP");
    // MAXREC above the hard limit is capped, and the cut is flagged.
    let (status, _, body) = http(
        a,
        "GET",
        &format!("/tap/sync?LANG=ADQL&QUERY={q}&MAXREC=100&RESPONSEFORMAT=votable/td"),
        None,
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("<TR>").count(), 5, "{body}");
    assert!(body.contains("value=\"OVERFLOW\""), "{body}");
    // No MAXREC: the default.
    let (_, _, body) = http(
        a,
        "GET",
        &format!("/tap/sync?lang=ADQL&query={q}&responseformat=csv"),
        None,
    );
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), 1 + 3);
    for (params, needle) in [
        (format!("LANG=ADQL&QUERY={q}&MAXREC=-1"), "MAXREC=-1"),
        (format!("LANG=SQL&QUERY={q}"), "LANG=SQL"),
        (format!("QUERY={q}"), "LANG parameter is missing"),
        ("LANG=ADQL".to_string(), "QUERY parameter is missing"),
        (
            format!("LANG=ADQL&QUERY={q}&RESPONSEFORMAT=xls"),
            "unknown result format `xls`",
        ),
        (
            format!("LANG=ADQL&QUERY={q}&REQUEST=getTables"),
            "REQUEST=getTables",
        ),
        (
            format!(
                "LANG=ADQL&QUERY={}",
                enc("SELECT nosuch FROM hipparcos.hip2")
            ),
            "unknown column nosuch",
        ),
        (
            format!("LANG=ADQL&QUERY={}", enc("SELECT ra FROM hipparcos.hip3")),
            "unknown table hipparcos.hip3; did you mean hipparcos.hip2",
        ),
        (format!("LANG=ADQL&QUERY={q}&UPLOAD=bad"), "not `name,URI`"),
    ] {
        let (status, head, body) = http(a, "POST", "/tap/sync", Some(&params));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{params}: {head}\n{body}");
        assert!(head.contains("application/x-votable+xml"), "{head}");
        assert!(
            body.contains("value=\"ERROR\"") && body.contains(needle),
            "{params}: {body}"
        );
    }
    // Too many uploaded rows: 413 with the limit named.
    let (status, body) = post_multipart(
        a,
        "/tap/sync",
        &[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT * FROM TAP_UPLOAD.t"),
            ("UPLOAD", "t,param:f"),
        ],
        ("f", b"ra,dec\n1,2\n3,4\n5,6\n"),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("more than 2 rows"), "{body}");
    // Unknown job and unknown table document: 404.
    assert_eq!(http(a, "GET", "/tap/async/nosuchjob", None).0, 404);
    assert_eq!(http(a, "GET", "/tap/tables/nosuch.table", None).0, 404);
}

#[test]
fn simple_cone_search_with_pyvo_stilts_and_votlint() {
    let state = tempfile::tempdir().unwrap();
    let srv = start(&[], state.path());
    let a = &srv.addr;
    // pyvo's SCS client on /scs (the first catalog) and /scs/<table>; the ids equal a TAP
    // query of the same cone written with DISTANCE (not the fast path's form).
    let script = r#"
import json, sys, pyvo, requests
base = sys.argv[1]
out = {}
for url in [base + "/scs", base + "/scs/hipparcos.hip2"]:
    r = pyvo.dal.SCSService(url).search(pos=(56.75, 24.12), radius=0.7, verbosity=3)
    out[url] = sorted(int(x) for x in r["HIP"])
    ucds = {f.ucd for f in r.fielddescs}
    assert {"ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN"} <= ucds, ucds
tap = pyvo.dal.TAPService(base + "/tap")
t = tap.run_sync("SELECT HIP FROM hipparcos.hip2 WHERE DISTANCE(POINT(ra, dec), POINT(56.75, 24.12)) <= 0.7").to_table()
out["tap"] = sorted(int(x) for x in t["HIP"])
try:
    pyvo.dal.SCSService(base + "/scs").search(pos=(56.75, 24.12), radius=200)
    out["error"] = None
except pyvo.dal.DALQueryError as e:
    out["error"] = str(e)
print(json.dumps(out))
"#;
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
    let tap = &v["tap"];
    assert!(tap.as_array().unwrap().len() > 10, "{v}");
    assert_eq!(&v[format!("http://{a}/scs")], tap);
    assert_eq!(&v[format!("http://{a}/scs/hipparcos.hip2")], tap);
    assert!(v["error"].as_str().unwrap().contains("SR=200"), "{v}");

    // STILTS cone (SCS client) and votlint on what it received.
    let dir = tempfile::tempdir().unwrap();
    let vot = dir.path().join("cone.vot");
    let out = Command::new("timeout")
        .args(["120", "stilts", "cone"])
        .arg(format!("serviceurl=http://{a}/scs/hipparcos.hip2?"))
        .args([
            "lon=56.75",
            "lat=24.12",
            "radius=0.7",
            "verb=3",
            "ofmt=csv",
            "out=-",
        ])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        csv.lines().count(),
        1 + tap.as_array().unwrap().len(),
        "{csv}"
    );
    let (status, _, body) = http(
        a,
        "GET",
        "/scs/hipparcos.hip2?RA=56.75&DEC=24.12&SR=0.7&VERB=3",
        None,
    );
    assert_eq!(status, 200);
    std::fs::write(&vot, &body).unwrap();
    let out = Command::new("timeout")
        .args(["120", "stilts", "votlint"])
        .arg(format!("votable={}", vot.display()))
        .output()
        .unwrap();
    let lint = String::from_utf8_lossy(&out.stdout);
    assert!(!lint.lines().any(|l| l.starts_with("ERROR")), "{lint}");
    // Unknown catalogue: an SCS error document.
    let (status, _, body) = http(a, "GET", "/scs/no.such?RA=1&DEC=2&SR=0.1", None);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("name=\"Error\""));
}
