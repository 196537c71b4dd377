//! Helpers shared by the end-to-end service tests: the demo archive built once per test
//! binary, a `tessera serve` child process, a minimal HTTP/1.1 client, the project venv.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new(repo_root().join("tools/python-env"))
            .output()
            .expect("running tools/python-env");
        assert!(
            out.status.success(),
            "tools/python-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let venv = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        PathBuf::from(venv).join("bin/python")
    })
}

/// The demo archive (real Hipparcos), built once for this test binary.
/// The demo archive, rebuilt once per run of a test binary in a directory named after the
/// binary under Cargo's target tmpdir: fresh on every run (no stale data from an older
/// build), and never more than one copy per binary on disk (a kept temporary directory per
/// run filled the disk).
pub(crate) fn demo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_stem().unwrap().to_string_lossy().to_string();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-{name}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        tessera_server::demo::ensure_demo(&dir).unwrap();
        dir
    })
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(args: &[&str], state: &Path) -> Server {
    start_on(demo_root(), args, state)
}

/// `tessera serve --data root` on a free port.
pub(crate) fn start_on(root: &Path, args: &[&str], state: &Path) -> Server {
    launch(root, args, state, None)
}

/// `tessera serve --data root --state-dir state ARGS` on a free port; its log goes to `log`
/// (`RUST_LOG=info`, no colours) or nowhere (`RUST_LOG=warn`). Waits for the `home:` line.
fn launch(root: &Path, args: &[&str], state: &Path, log: Option<&Path>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    match log {
        Some(l) => cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(std::fs::File::create(l).unwrap()),
        None => cmd.env("RUST_LOG", "warn").stderr(Stdio::null()),
    };
    let mut child = cmd
        .arg("serve")
        .arg("--data")
        .arg(root)
        .arg("--state-dir")
        .arg(state)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
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
        .recv_timeout(Duration::from_secs(300))
        .expect("server did not print its URL");
    Server { child, addr }
}

/// One HTTP/1.1 request; returns status, headers (lower-case) and body.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `tessera serve --data root` on a free port with its request log (`RUST_LOG=info`, no
/// colours) written to `log`: one line per request, `GET /path STATUS … ms`.
pub(crate) fn start_logged(root: &Path, args: &[&str], state: &Path, log: &Path) -> Server {
    launch(root, args, state, Some(log))
}

/// One HTTP/1.1 request with extra request headers; returns status, headers (lower-case)
/// and body (read to the server's close; empty for HEAD and 304).
pub(crate) fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

/// The value of a response header (lower-case name) in a head returned by [`http`].
pub(crate) fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}
