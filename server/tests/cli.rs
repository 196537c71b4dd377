//! End-to-end tests of the `tessera` binary: load, info, serve, the demo archive, and loads
//! killed with SIGKILL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env("RUST_LOG", "warn");
    c
}

fn write_csv(path: &Path, rows: usize, offset: f64) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "id,ra,dec,mag").unwrap();
    for i in 0..rows {
        let ra = (i as f64 * 0.137 + offset) % 360.0;
        let dec = ((i as f64 * 0.0731) % 178.0) - 89.0;
        writeln!(
            w,
            "{i},{ra:.6},{dec:.6},{:.3}",
            10.0 + (i % 100) as f64 / 10.0
        )
        .unwrap();
    }
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}\n{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn checksum(catalog: &Path) -> String {
    let out = run_ok(tessera().arg("info").arg(catalog).arg("--checksum"));
    out.lines()
        .find_map(|l| l.strip_prefix("checksum:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn load_and_info_show_partitions_orders_rows_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("stars.csv");
    write_csv(&csv, 50_000, 0.0);
    let cat = dir.path().join("root/demo/stars");
    let out = run_ok(
        tessera()
            .arg("load")
            .arg(&csv)
            .arg("--catalog")
            .arg(&cat)
            .args(["--pixel-threshold", "5000", "--highest-order", "6"]),
    );
    assert!(out.contains("loaded 50000 rows"), "{out}");
    let info = run_ok(tessera().arg("info").arg(&cat));
    assert!(info.contains("rows:       50000"), "{info}");
    assert!(info.contains("hats_col_ra=ra"), "{info}");
    assert!(info.contains("ucd=pos.eq.dec;meta.main"), "{info}");
    let parts: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("partitions:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(parts > 10, "{info}");

    // Bad flags and bad input give an error and a non-zero exit, never a panic.
    let out = tessera()
        .arg("load")
        .arg(dir.path().join("missing.csv"))
        .arg("--catalog")
        .arg(&cat)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.csv does not exist") && !err.contains("panicked"),
        "{err}"
    );
}

/// Reads the printed `home:` URL of a starting server.
fn start_server(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(u) = line.trim().strip_prefix("home:") {
                let _ = tx.send(
                    u.trim()
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string(),
                );
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server did not print its URL");
    (child, addr)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    (status, resp)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_lists_catalogs_with_rows_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("s.csv");
    write_csv(&csv, 3_000, 1.0);
    let root = dir.path().join("root");
    run_ok(
        tessera()
            .arg("load")
            .arg(&csv)
            .arg("--catalog")
            .arg(root.join("survey/bright")),
    );
    let (child, addr) = start_server(
        tessera()
            .arg("serve")
            .arg("--data")
            .arg(&root)
            .args(["--listen", "127.0.0.1:0"]),
    );
    let _guard = Kill(child);
    let (status, body) = get(&addr, "/");
    assert_eq!(status, 200);
    assert!(
        body.contains("survey.bright") && body.contains("3000 rows"),
        "{body}"
    );
    assert!(body.contains("<td>mag</td>"), "{body}");
    assert!(body.contains("access-control-allow-origin: *"), "{body}");
    let (status, body) = get(&addr, "/health");
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\",\"catalogs\":1"), "{body}");
    let (status, body) = get(&addr, "/nope");
    assert_eq!(status, 404);
    assert!(body.contains("access-control-allow-origin: *"), "{body}");
}

#[test]
fn serve_without_data_builds_the_demo_archive_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let (child, addr) = start_server(
        tessera()
            .current_dir(dir.path())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"]),
    );
    let _guard = Kill(child);
    let built = t.elapsed();
    let (status, body) = get(&addr, "/");
    assert_eq!(status, 200);
    assert!(
        body.contains("hipparcos.hip2") && body.contains("117955 rows"),
        "{body}"
    );
    assert!(
        dir.path()
            .join("tessera-data/hipparcos/hip2/hats.properties")
            .is_file()
    );
    // Debug builds are slow; the release figure is in docs/benchmarks.md.
    assert!(built < Duration::from_secs(120), "{built:?}");
}

fn dir_listing(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.path().is_dir() {
                out.extend(dir_listing(&e.path()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_load_killed_with_sigkill_leaves_the_previous_version_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (dir.path().join("v1.csv"), dir.path().join("v2.csv"));
    write_csv(&v1, 20_000, 0.0);
    write_csv(&v2, 1_500_000, 3.0);
    let cat = dir.path().join("root/s/t");
    run_ok(tessera().arg("load").arg(&v1).arg("--catalog").arg(&cat));
    let before = checksum(&cat);
    let files_before = dir_listing(&cat);

    // Kill the second load at several points of its life.
    let mut killed_mid_load = 0;
    for delay_ms in [300u64, 1500, 3000] {
        let mut child = tessera()
            .arg("load")
            .arg(&v2)
            .arg("--catalog")
            .arg(&cat)
            .args(["--pixel-threshold", "100000", "--memory-limit", "300M"])
            .arg("--scratch")
            .arg(dir.path().join("scratch"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if finished {
            break; // the machine was fast enough to finish: nothing to check for this delay
        }
        killed_mid_load += 1;
        assert_eq!(checksum(&cat), before, "killed after {delay_ms} ms");
        assert_eq!(dir_listing(&cat), files_before);
    }
    assert!(
        killed_mid_load > 0,
        "every load finished before it could be killed"
    );
    // The next load succeeds and clears the staging area the killed ones left.
    run_ok(tessera().arg("load").arg(&v1).arg("--catalog").arg(&cat));
    let hidden: Vec<_> = std::fs::read_dir(cat.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(hidden, vec!["t".to_string()], "staging left behind");
    assert_eq!(checksum(&cat), before);
}

#[test]
fn query_answers_in_every_format_and_check_lints_without_data() {
    let dir = tempfile::tempdir().unwrap();
    let sirius = "SELECT TOP 5 hip, ra, dec FROM hipparcos.hip2 WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 101.287, -16.716, 1)) ORDER BY hip";
    // Without --data the demo archive is built on first use.
    let table = run_ok(tessera().current_dir(dir.path()).args(["query", sirius]));
    assert!(table.lines().next().unwrap().contains("HIP"), "{table}");
    assert!(table.contains("32349"), "Sirius is HIP 32349:\n{table}");
    assert!(table.contains("(3 rows)"), "{table}");

    let csv = run_ok(
        tessera()
            .current_dir(dir.path())
            .args(["query", "--format", "csv", sirius]),
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "HIP,ra,dec");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines.iter().any(|l| l.starts_with("32349,101.28")), "{csv}");

    let json = run_ok(tessera().current_dir(dir.path()).args([
        "query",
        "--format",
        "json",
        "SELECT TOP 1 POINT(ra, dec) AS p, Plx FROM hipparcos.hip2 WHERE hip = 32349",
    ]));
    assert!(
        json.contains("\"name\": \"p\"") && json.contains("\"xtype\": \"point\""),
        "{json}"
    );
    assert!(
        json.contains("\"unit\": \"mas\"") && json.contains("[101.28"),
        "{json}"
    );
    assert!(json.contains("\"overflow\": false"), "{json}");

    // --max-rows reports the cut.
    let cut = run_ok(tessera().current_dir(dir.path()).args([
        "query",
        "--max-rows",
        "2",
        "SELECT hip FROM hipparcos.hip2",
    ]));
    assert!(cut.contains("(2 rows, more rows exist"), "{cut}");

    // A rejected query: non-zero exit, the error kind, position and nearest names.
    let out = tessera()
        .current_dir(dir.path())
        .args(["query", "SELECT TOP 1 hpmag2 FROM hipparcos.hip2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown_column") && err.contains("Hpmag"),
        "{err}"
    );
    assert!(err.contains("line 1, column 14"), "{err}");

    // --check needs no data at all.
    let empty = tempfile::tempdir().unwrap();
    let ok = run_ok(tessera().current_dir(empty.path()).args([
        "query",
        "--check",
        "SELECT a.x, COUNT(*) FROM s.t AS a GROUP BY a.x HAVING COUNT(*) > 1",
    ]));
    assert_eq!(ok.trim(), "ok");
    let out = tessera()
        .current_dir(empty.path())
        .args(["query", "--check", "SELECT ra,\n  dec FROM s.t WHERE"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("syntax") && err.contains("line 2"), "{err}");
    assert!(
        !empty.path().join("tessera-data").exists(),
        "--check must not build data"
    );
}
