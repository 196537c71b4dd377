//! The UWS 1.1 REST binding over a real socket (`/tap/async` nested like the server does),
//! with a fake job runner, a hand-written HTTP/1.1 client, and the job documents checked
//! against the UWS 1.1 schema by `stilts xsdvalidate`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use tessera_server::tap::params::ParamLimits;
use tessera_server::tap::uws::{
    self, Job, JobFailure, JobResult, JobRunner, JobStore, ResultsLocation, UwsConfig, UwsState,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// MODE=ok (default) writes a small VOTable; MODE=echo writes the upload `upload_t1` back;
/// MODE=fail fails; MODE=slow sleeps 300 ms first. Every job first sleeps `delay`.
struct FakeRunner {
    delay: Duration,
}

impl JobRunner for FakeRunner {
    fn run(
        &self,
        job: Job,
        out: ResultsLocation,
    ) -> BoxFuture<'static, Result<Vec<JobResult>, JobFailure>> {
        let delay = self.delay;
        async move {
            tokio::time::sleep(delay).await;
            let mode = job.parameter("MODE").unwrap_or("ok").to_string();
            let (body, mime) = match mode.as_str() {
                "fail" => {
                    return Err(JobFailure::fatal(
                        "column \"x\" is unknown in <t> & elsewhere",
                    ));
                }
                "echo" => {
                    let u = job
                        .upload("upload_t1")
                        .ok_or_else(|| JobFailure::fatal("no upload_t1"))?;
                    let bytes = tokio::fs::read(&u.path)
                        .await
                        .map_err(|e| JobFailure::transient(e.to_string()))?;
                    (bytes, "application/x-votable+xml")
                }
                _ => {
                    if mode == "slow" {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let q = job
                        .parameter("QUERY")
                        .unwrap_or("")
                        .replace('&', "&amp;")
                        .replace('<', "&lt;");
                    (
                        format!(
                            "<?xml version=\"1.0\"?>\n<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n\
                             <RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n\
                             <TABLE><FIELD name=\"query\" datatype=\"char\" arraysize=\"*\"/>\n\
                             <DATA><TABLEDATA><TR><TD>{q}</TD></TR></TABLEDATA></DATA></TABLE>\n</RESOURCE>\n</VOTABLE>\n"
                        )
                        .into_bytes(),
                        "application/x-votable+xml",
                    )
                }
            };
            let key = out.job_prefix(&job.id).join("result.vot");
            let size = body.len() as u64;
            out.store
                .put(&key, body.into())
                .await
                .map_err(|e| JobFailure::transient(e.to_string()))?;
            Ok(vec![JobResult {
                id: "result".into(),
                key,
                mime: mime.into(),
                size: Some(size),
                rows: Some(1),
                overflow: false,
            }])
        }
        .boxed()
    }
}

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    objects: Arc<InMemory>,
}

async fn server() -> Server {
    server_with(Duration::ZERO, |app| app).await
}

async fn server_with(delay: Duration, extra: impl FnOnce(axum::Router) -> axum::Router) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let mut config = UwsConfig::new(dir.path().join("jobs"));
    config.max_running = 2;
    config.max_wait = Duration::from_secs(20);
    let store = JobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
    let objects = Arc::new(InMemory::new());
    let results = ResultsLocation {
        store: objects.clone(),
        prefix: object_store::path::Path::from("async"),
    };
    let limits = ParamLimits {
        max_upload_bytes: 1 << 20,
        max_text_bytes: 1 << 16,
        spool_dir: spool,
    };
    let state = UwsState::start(
        store,
        Arc::new(FakeRunner { delay }),
        results,
        config,
        limits,
    )
    .await
    .unwrap();
    let app = extra(axum::Router::new().nest("/tap/async", uws::router(state)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        addr,
        _dir: dir,
        objects,
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`). `body` is sent with
/// `Content-Length`, or chunked when `chunked` (as STILTS sends uploads).
async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        req.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else {
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    }
    let mut bytes = req.into_bytes();
    if chunked {
        for chunk in body.chunks(100) {
            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes.extend_from_slice(body);
    }
    s.write_all(&bytes).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
        .await
        .expect("the server answered within 60 s")
        .unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = pos + rest[pos..].windows(2).position(|w| w == b"\r\n").unwrap();
            let size_text = String::from_utf8_lossy(&rest[pos..line_end]).into_owned();
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            pos = line_end + 2;
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
        out
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, target: &str) -> Resp {
    http(addr, "GET", target, &[], b"", false).await
}

async fn post_form(addr: SocketAddr, target: &str, form: &str) -> Resp {
    http(
        addr,
        "POST",
        target,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
        false,
    )
    .await
}

/// The path of an absolute URL on this server.
fn path_of(addr: SocketAddr, url: &str) -> String {
    url.strip_prefix(&format!("http://{addr}"))
        .unwrap_or_else(|| panic!("{url} is not on http://{addr}"))
        .to_string()
}

/// Creates a job; returns its path (`/tap/async/<id>`).
async fn create(addr: SocketAddr, form: &str) -> String {
    let r = post_form(addr, "/tap/async", form).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let loc = r.header("location").expect("Location").to_string();
    let path = path_of(addr, &loc);
    assert!(path.starts_with("/tap/async/"), "{path}");
    path
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)?;
    Some(&s[i..i + j])
}

/// Waits for a final phase with WAIT (bounded).
async fn wait_final(addr: SocketAddr, job: &str) -> String {
    let t0 = Instant::now();
    loop {
        let r = get(addr, &format!("{job}?WAIT=5")).await;
        assert_eq!(r.status, 200);
        let doc = r.text();
        let phase = between(&doc, "<uws:phase>", "</uws:phase>")
            .unwrap()
            .to_string();
        if ["COMPLETED", "ERROR", "ABORTED"].contains(&phase.as_str()) {
            return doc;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "job {job} still {phase}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_binding_end_to_end() {
    let srv = server().await;
    let a = srv.addr;

    // Create: 303 to the absolute job URL; PENDING with every parameter.
    let job = create(
        a,
        "REQUEST=doQuery&LANG=ADQL&QUERY=SELECT+1+%3C+2&RUNID=taplint-1&MODE=slow",
    )
    .await;
    let id = job.rsplit('/').next().unwrap().to_string();
    assert_eq!(id.len(), 16);
    let r = get(a, &job).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/xml"));
    let doc = r.text();
    assert!(doc.contains("<uws:job "), "{doc}");
    assert!(doc.contains("version=\"1.1\""));
    assert!(doc.contains(&format!("<uws:jobId>{id}</uws:jobId>")));
    assert!(doc.contains("<uws:phase>PENDING</uws:phase>"));
    assert!(doc.contains("<uws:runId>taplint-1</uws:runId>"));
    assert!(doc.contains("<uws:ownerId xsi:nil=\"true\"/>"));
    assert!(
        doc.contains("<uws:parameter id=\"QUERY\">SELECT 1 &lt; 2</uws:parameter>"),
        "{doc}"
    );
    assert!(doc.contains("<uws:parameter id=\"RUNID\">taplint-1</uws:parameter>"));

    // The job's text resources agree with the document.
    let phase = get(a, &format!("{job}/phase")).await;
    assert_eq!((phase.status, phase.text().as_str()), (200, "PENDING"));
    assert!(
        phase
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let ed = get(a, &format!("{job}/executionduration")).await.text();
    assert_eq!(
        Some(ed.as_str()),
        between(&doc, "<uws:executionDuration>", "</uws:executionDuration>")
    );
    let destruction = get(a, &format!("{job}/destruction")).await.text();
    assert_eq!(
        Some(destruction.as_str()),
        between(&doc, "<uws:destruction>", "</uws:destruction>")
    );
    assert!(destruction.ends_with('Z'), "{destruction}");
    let q = get(a, &format!("{job}/quote")).await;
    assert_eq!((q.status, q.text().as_str()), (200, ""));
    let o = get(a, &format!("{job}/owner")).await;
    assert_eq!((o.status, o.text().as_str()), (200, ""));
    let params = get(a, &format!("{job}/parameters")).await;
    assert_eq!(params.status, 200);
    assert!(
        params.text().contains("<uws:parameters xmlns:uws="),
        "{}",
        params.text()
    );

    // Settings while PENDING.
    let r = post_form(a, &format!("{job}/parameters"), "runId=taplint-2").await;
    assert_eq!(r.status, 303);
    assert_eq!(path_of(a, r.header("location").unwrap()), job);
    let doc = get(a, &job).await.text();
    assert!(doc.contains("<uws:runId>taplint-2</uws:runId>"));
    assert!(doc.contains("<uws:parameter id=\"RUNID\">taplint-2</uws:parameter>"));
    assert!(!doc.contains("taplint-1"));
    let r = post_form(
        a,
        &format!("{job}/executionduration"),
        "EXECUTIONDURATION=30",
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        get(a, &format!("{job}/executionduration")).await.text(),
        "30"
    );
    let r = post_form(
        a,
        &format!("{job}/destruction"),
        "DESTRUCTION=2099-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        get(a, &format!("{job}/destruction"))
            .await
            .text()
            .ends_with('Z')
    );
    let r = post_form(
        a,
        &format!("{job}/executionduration"),
        "EXECUTIONDURATION=soon",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/x-votable+xml"));
    let r = post_form(a, &format!("{job}/phase"), "PHASE=SUSPEND").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("PHASE=SUSPEND"), "{}", r.text());

    // RUN: 303 to the job; WAIT follows it to COMPLETED.
    let r = post_form(a, &format!("{job}/phase"), "PHASE=RUN").await;
    assert_eq!(r.status, 303);
    assert_eq!(path_of(a, r.header("location").unwrap()), job);
    let p = get(a, &format!("{job}/phase")).await.text();
    assert!(
        ["QUEUED", "EXECUTING", "COMPLETED"].contains(&p.as_str()),
        "{p}"
    );
    let doc = wait_final(a, &job).await;
    assert!(doc.contains("<uws:phase>COMPLETED</uws:phase>"), "{doc}");
    let href = format!("http://{a}/tap/async/{id}/results/result");
    assert!(
        doc.contains(&format!("<uws:result id=\"result\" xlink:href=\"{href}\"")),
        "{doc}"
    );
    assert!(doc.contains("mime-type=\"application/x-votable+xml\""));
    assert!(between(&doc, "<uws:startTime>", "</uws:startTime>").is_some());
    assert!(between(&doc, "<uws:endTime>", "</uws:endTime>").is_some());
    let results = get(a, &format!("{job}/results")).await;
    assert_eq!(results.status, 200);
    assert!(results.text().contains(&href));

    // The result streams from the object store with its type.
    let r = get(a, &format!("{job}/results/result")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-votable+xml"));
    assert!(
        r.text().contains("<TD>SELECT 1 &lt; 2</TD>"),
        "{}",
        r.text()
    );
    assert_eq!(
        r.header("content-length")
            .map(|v| v.parse::<usize>().unwrap()),
        Some(r.body.len())
    );
    assert_eq!(get(a, &format!("{job}/results/other")).await.status, 404);
    assert_eq!(get(a, &format!("{job}/error")).await.status, 404);
    // Finished: settings and RUN are refused.
    assert_eq!(
        post_form(a, &format!("{job}/phase"), "PHASE=RUN")
            .await
            .status,
        400
    );
    assert_eq!(
        post_form(a, &format!("{job}/parameters"), "MAXREC=1")
            .await
            .status,
        400
    );
    // ABORT on a finished job changes nothing.
    assert_eq!(
        post_form(a, &format!("{job}/phase"), "PHASE=ABORT")
            .await
            .status,
        303
    );
    assert_eq!(get(a, &format!("{job}/phase")).await.text(), "COMPLETED");

    // The job list and its filters.
    let pending = create(a, "LANG=ADQL&QUERY=SELECT+2").await;
    let pending_id = pending.rsplit('/').next().unwrap().to_string();
    let list = get(a, "/tap/async").await;
    assert_eq!(list.status, 200);
    let text = list.text();
    assert!(text.contains("<uws:jobs "), "{text}");
    assert!(
        text.contains(&format!(
            "<uws:jobref id=\"{id}\" xlink:href=\"http://{a}/tap/async/{id}\">"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("<uws:jobref id=\"{pending_id}\"")));
    let completed = get(a, "/tap/async?PHASE=COMPLETED").await.text();
    assert!(completed.contains(&id) && !completed.contains(&pending_id));
    let both = get(a, "/tap/async?PHASE=COMPLETED&PHASE=PENDING")
        .await
        .text();
    assert!(both.contains(&id) && both.contains(&pending_id));
    let last = get(a, "/tap/async?LAST=1").await.text();
    assert!(last.contains(&pending_id) && !last.contains(&id), "{last}");
    let after = get(a, "/tap/async?AFTER=2000-01-01T00:00:00Z").await.text();
    assert!(after.contains(&pending_id) && after.contains(&id));
    let none = get(a, "/tap/async?AFTER=2999-01-01T00:00:00Z").await.text();
    assert!(!none.contains("<uws:jobref"));
    for bad in ["PHASE=BOGUS", "LAST=0", "LAST=many", "AFTER=yesterday"] {
        let r = get(a, &format!("/tap/async?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
    }

    // DELETE and ACTION=DELETE: 303 to the job list, then 404.
    let r = http(a, "DELETE", &job, &[], b"", false).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{a}/tap/async").as_str())
    );
    let gone = get(a, &job).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.header("content-type"),
        Some("application/x-votable+xml")
    );
    assert!(gone.text().contains("QUERY_STATUS"));
    assert_eq!(get(a, &format!("{job}/results/result")).await.status, 404);
    let prefix = object_store::path::Path::from(format!("async/{id}"));
    assert!(
        srv.objects
            .list_with_delimiter(Some(&prefix))
            .await
            .unwrap()
            .objects
            .is_empty()
    );
    let r = post_form(a, &pending, "ACTION=DELETE").await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{a}/tap/async").as_str())
    );
    assert_eq!(get(a, &pending).await.status, 404);
    assert_eq!(
        http(a, "DELETE", &pending, &[], b"", false).await.status,
        404
    );
    assert_eq!(get(a, "/tap/async/0123456789abcdef").await.status, 404);
    assert_eq!(
        get(a, "/tap/async/0123456789abcdef/phase").await.status,
        404
    );
    assert_eq!(
        post_form(a, &format!("{pending}/phase"), "PHASE=RUN")
            .await
            .status,
        404
    );

    // A failing job: ERROR, an error summary and the VOTable error document.
    let bad = create(a, "LANG=ADQL&QUERY=SELECT+x&MODE=fail&PHASE=RUN").await;
    let doc = wait_final(a, &bad).await;
    assert!(doc.contains("<uws:phase>ERROR</uws:phase>"));
    assert!(
        doc.contains("<uws:errorSummary type=\"fatal\" hasDetail=\"true\">"),
        "{doc}"
    );
    assert!(
        doc.contains("column &quot;x&quot; is unknown in &lt;t&gt; &amp; elsewhere"),
        "{doc}"
    );
    let e = get(a, &format!("{bad}/error")).await;
    assert_eq!(e.status, 200);
    assert_eq!(e.header("content-type"), Some("application/x-votable+xml"));
    assert!(e.text().contains("QUERY_STATUS"), "{}", e.text());
    assert!(e.text().contains("is unknown"), "{}", e.text());

    // ABORT of a pending job.
    let p = create(a, "LANG=ADQL&QUERY=SELECT+3").await;
    assert_eq!(
        post_form(a, &format!("{p}/phase"), "PHASE=ABORT")
            .await
            .status,
        303
    );
    assert_eq!(get(a, &format!("{p}/phase")).await.text(), "ABORTED");
}

/// A multipart body like STILTS sends: quoted boundary with `<`, `>` and dashes, text parts
/// with a charset, the table in a file part named `upload_t1`.
fn stilts_multipart(fields: &[(&str, &str)], table: &[u8]) -> (String, Vec<u8>) {
    let boundary = "<<<--------------MULTIPART-BOUNDARY------->>>";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\
                 Content-Type: text/plain; charset=UTF-8\r\n\r\n{v}\r\n"
            )
            .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"upload_t1\"; filename=\"upload_t1\"\r\n\
             Content-Type: application/x-votable+xml\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(table);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary=\"{boundary}\""), b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_multipart_upload_becomes_a_job_file() {
    let srv = server().await;
    let a = srv.addr;
    let table = b"<?xml version=\"1.0\"?>\n<VOTABLE version=\"1.2\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.2\"><RESOURCE/></VOTABLE>\n".repeat(20);
    let (ctype, body) = stilts_multipart(
        &[
            ("REQUEST", "doQuery"),
            ("LANG", "ADQL"),
            ("QUERY", "SELECT * FROM TAP_UPLOAD.t1"),
            ("UPLOAD", "t1,param:upload_t1"),
            ("MODE", "echo"),
            ("PHASE", "RUN"),
        ],
        &table,
    );
    let r = http(
        a,
        "POST",
        "/tap/async",
        &[("Content-Type", &ctype)],
        &body,
        true,
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let job = path_of(a, r.header("location").unwrap());
    let doc = wait_final(a, &job).await;
    assert!(doc.contains("<uws:phase>COMPLETED</uws:phase>"), "{doc}");
    assert!(doc.contains("<uws:parameter id=\"UPLOAD\">t1,param:upload_t1</uws:parameter>"));
    let res = get(a, &format!("{job}/results/result")).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.body, table,
        "the runner read the uploaded table from the job's directory"
    );
}

/// `stilts xsdvalidate` against the UWS 1.1 schema bundled in the STILTS jar.
fn xsd_validate(doc: &Path, xsd_dir: &Path) {
    let uws = xsd_dir.join("UWS-v1.1.xsd");
    let xlink = xsd_dir.join("xlink.xsd");
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg("stilts")
        .arg("xsdvalidate")
        .arg("uselocals=true")
        .arg(format!(
            "schemaloc=http://www.ivoa.net/xml/UWS/v1.0={} http://www.w3.org/1999/xlink={}",
            uws.display(),
            xlink.display()
        ))
        .arg(format!("doc={}", doc.display()))
        .output()
        .expect("running stilts (Debian package `stilts`)");
    assert!(
        out.status.success(),
        "xsdvalidate {} failed ({}):\n{}\n{}\n--- document ---\n{}",
        doc.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(doc).unwrap_or_default()
    );
}

/// Extracts the UWS 1.1 and XLink schemas from the STILTS jar.
fn extract_schemas(into: &Path) -> PathBuf {
    let jar = ["/usr/share/java/starlink-ttools.jar"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::fs::read_dir("/usr/share/java")
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("starlink-ttools") && n.ends_with(".jar"))
                })
        })
        .expect(
            "the STILTS jar (starlink-ttools.jar, Debian package `stilts`) under /usr/share/java",
        );
    for name in ["UWS-v1.1.xsd", "xlink.xsd"] {
        let out = std::process::Command::new("unzip")
            .arg("-o")
            .arg("-j")
            .arg("-q")
            .arg(&jar)
            .arg(format!("uk/ac/starlink/ttools/taplint/{name}"))
            .arg("-d")
            .arg(into)
            .output()
            .expect("running unzip");
        assert!(
            out.status.success(),
            "unzip {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    into.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_documents_and_the_job_list_validate_against_the_uws_schema() {
    let srv = server().await;
    let a = srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let xsd = extract_schemas(tmp.path());

    let pending = create(a, "LANG=ADQL&QUERY=SELECT+%27%3C%26%3E%27&RUNID=r%26d").await;
    let completed = create(a, "LANG=ADQL&QUERY=SELECT+1&PHASE=RUN").await;
    wait_final(a, &completed).await;
    let failed = create(a, "LANG=ADQL&QUERY=SELECT+1&MODE=fail&PHASE=RUN").await;
    wait_final(a, &failed).await;
    let aborted = create(a, "QUERY=x").await;
    post_form(a, &format!("{aborted}/phase"), "PHASE=ABORT").await;
    let empty = create(a, "").await;

    let mut docs = Vec::new();
    for (name, target) in [
        ("pending", pending.clone()),
        ("completed", completed.clone()),
        ("error", failed.clone()),
        ("aborted", aborted.clone()),
        ("empty", empty.clone()),
        ("list", "/tap/async".to_string()),
        (
            "list-filtered",
            "/tap/async?PHASE=COMPLETED&LAST=5".to_string(),
        ),
        ("list-none", "/tap/async?PHASE=ARCHIVED".to_string()),
    ] {
        let r = get(a, &target).await;
        assert_eq!(r.status, 200, "{target}");
        let path = tmp.path().join(format!("{name}.xml"));
        std::fs::write(&path, &r.body).unwrap();
        docs.push(path);
    }
    let completed_doc = std::fs::read_to_string(tmp.path().join("completed.xml")).unwrap();
    assert!(completed_doc.contains("<uws:result "), "{completed_doc}");
    let error_doc = std::fs::read_to_string(tmp.path().join("error.xml")).unwrap();
    assert!(error_doc.contains("<uws:errorSummary"), "{error_doc}");
    for d in &docs {
        xsd_validate(d, &xsd);
    }
}

const TABLES_DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"
    xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <schema>
    <name>demo</name>
    <table>
      <name>demo.stars</name>
      <column><name>ra</name><unit>deg</unit><ucd>pos.eq.ra</ucd><dataType xsi:type="vs:VOTableType">double</dataType></column>
    </table>
  </schema>
</vosi:tableset>
"#;

/// taplint's UWS stage (job creation, parameters, ABORT, ACTION=DELETE, HTTP DELETE, the
/// job's sub-resources, RUN and phase progression, job document validation) reports no
/// error, failure or warning. `/tap/tables` is a static document here: the stage needs
/// one table from the TME stage to build its query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taplint_uws_stage_passes() {
    // Jobs take a while, so that taplint follows QUEUED/EXECUTING to COMPLETED.
    let srv = server_with(Duration::from_millis(1500), |app| {
        app.route(
            "/tap/tables",
            axum::routing::get(|| async { ([("content-type", "text/xml")], TABLES_DOC) }),
        )
    })
    .await;
    let url = format!("http://{}/tap", srv.addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args([
                "300",
                "stilts",
                "taplint",
                &format!("tapurl={url}"),
                "interface=tap1.1",
                "stages=TME UWS",
                "format=json",
                "report=EWISF",
            ])
            .output()
            .expect("running stilts taplint (Debian package `stilts`)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "taplint: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let uws = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "UWS")
        .unwrap_or_else(|| panic!("no UWS section: {stdout}"));
    let reports = uws["reports"].as_array().unwrap();
    let bad: Vec<&serde_json::Value> = reports
        .iter()
        .filter(|r| ["ERROR", "FAILURE", "WARNING"].contains(&r["level"].as_str().unwrap_or("")))
        .collect();
    assert!(bad.is_empty(), "taplint UWS reports: {bad:#?}");
    let codes: Vec<&str> = reports.iter().filter_map(|r| r["code"].as_str()).collect();
    // The run went through job creation, RUN and the validation of the job document.
    assert!(codes.contains(&"CJOB"), "{codes:?}");
    assert!(codes.contains(&"VUWS"), "{codes:?}");
    assert!(
        !codes.contains(&"JOFI"),
        "the job should not complete at once: {codes:?}"
    );
}
