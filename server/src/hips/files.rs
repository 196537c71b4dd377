//! Image HiPS served from files: every directory `ROOT/hips/<id>/` of the local data root that
//! holds a `properties` file (what `tessera hips build` and Aladin's Hipsgen write) is served
//! as it is at `/hips/<id>/…`. Image tiles are plain files written once by a generator, so
//! nothing is computed per request: the kernel's page cache is the tile cache.
//!
//! * **Which name wins.** `/hips/<name>/` is a catalogue HiPS when a catalog `schema.table`
//!   has that name (case-insensitive), else this directory; `/hips/list` lists both, an image
//!   HiPS shadowed by a catalog name left out.
//! * **Object-store roots.** A data root on an object store (`s3://…`) serves no image HiPS
//!   (every `/hips/<id>/` that is not a catalogue is a 404): the generators write local
//!   directories, and a bucket's own static hosting serves tiles better than a proxy would.
//! * **`properties`** is served with every `hips_service_url*` key of the file replaced by one
//!   `hips_service_url` = this server's absolute URL of the HiPS (from the request's `Host` or
//!   `X-Forwarded-*` headers, as the catalogue HiPS do): a generator cannot know where it will
//!   be served, and Aladin Lite may switch to any mirror advertised there (FORMATS.md §3.7).
//! * **Headers.** Content types by extension (`.fits` → `application/fits`, `.png`, `.jpg`,
//!   `.webp`, `properties` and `.txt` → `text/plain`, `.xml`, `.html`, `.tsv`, `.json`;
//!   anything else `application/octet-stream`); a strong `ETag` from the file's size and
//!   modification time (and, for `properties`, the URL written into it) with `Last-Modified`;
//!   `If-None-Match` (which takes precedence, RFC 9110 §13.2.2) or `If-Modified-Since` give
//!   304; `Cache-Control: public, max-age=3600` as the catalogue HiPS. CORS
//!   (`Access-Control-Allow-Origin: *`) is added by the `/hips` router for every response.
//!   HEAD reads no file body (the handler in [`head`]).
//! * **Paths never leave the HiPS.** The id must be one path segment of `[A-Za-z0-9._-]` not
//!   starting with a dot. The file path (already percent-decoded by the router, so `%2e%2e`
//!   arrives as `..`) must be relative, without empty, `.`, `..` or dot-prefixed segments,
//!   backslashes or NULs. Then the HiPS directory is canonicalised and must lie inside the
//!   canonical data root, and the file is canonicalised (symlinks resolved) and must lie inside
//!   the canonical HiPS directory: a symlink pointing out of the HiPS is a 404, never a read.
//!   Every refusal is a 404 with a short tab-free body (Aladin Lite parses 404 bodies as tiles).
//! * **Reads.** The checks, `open` and `fstat` run on the request's task (path lookups of a
//!   served tree are in the dentry cache), and so does the read of a file up to 8 MiB when
//!   all its pages are in the page cache: one `preadv2(RWF_NOWAIT)` of the whole file, which
//!   returns `EAGAIN` instead of waiting for the disk. Otherwise the read goes to the blocking
//!   pool (`spawn_blocking`), so a cold tile never stalls an async worker; files over 8 MiB
//!   (an order-3 `Allsky.fits` of 64-bit pixels is 25 MB) stream in 256 KiB chunks read there.
//!   Measured with `benches/compare/hips_tiles.py` (wrk, 4 keep-alive connections, 170 KB PNG
//!   tiles from the page cache, server pinned to one core of the quiet 2-core VM): this path
//!   serves 13,700–14,000 tiles per CPU second with p99 0.5 ms; every read on the blocking
//!   pool gave 10,000–11,300 and p99 0.73–0.78 ms (the two context switches of the hop were
//!   the largest item of its profile), a plain blocking `read` on the task 13,000–13,300.
//!   `tokio::fs` would be one such hop per call (open, metadata, read).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{HipsService, base_url, missing};

/// The subdirectory of the data root holding the image HiPS.
pub(crate) const HIPS_DIR: &str = "hips";
/// Files up to this size are read in one `read`; larger ones are streamed.
const SMALL: u64 = 8 << 20;
/// Chunk size of streamed files.
const CHUNK: u64 = 256 << 10;
/// `Cache-Control` of every file (as the catalogue HiPS).
const CACHE_CONTROL: &str = "public, max-age=3600";

/// Whether `id` can name an image HiPS directory: one path segment of ASCII letters, digits,
/// `.`, `_`, `-`, not starting with a dot, at most 128 bytes.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether a (percent-decoded) request path may name a file inside a HiPS directory:
/// relative, no empty, `.`, `..` or dot-prefixed segment, no backslash or NUL.
pub(crate) fn valid_rel(rel: &str) -> bool {
    !rel.is_empty()
        && rel.len() <= 1024
        && !rel.contains(['\\', '\0'])
        && rel
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.'))
}

/// The content type of a HiPS file, by name.
pub(crate) fn content_type(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name == "properties" {
        return "text/plain; charset=utf-8";
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "fits" | "fit" | "fts" => "application/fits",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "txt" => "text/plain; charset=utf-8",
        "tsv" => "text/tab-separated-values; charset=utf-8",
        "xml" => "text/xml; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The conditional-request headers of a request (owned, for the blocking section).
#[derive(Debug, Clone, Default)]
pub(crate) struct Conditions {
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
}

impl Conditions {
    pub(crate) fn from_headers(h: &HeaderMap) -> Conditions {
        let get = |name: header::HeaderName| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Conditions {
            if_none_match: get(header::IF_NONE_MATCH),
            if_modified_since: get(header::IF_MODIFIED_SINCE),
        }
    }

    /// Whether the client's copy is current: `If-None-Match` when present (weak comparison,
    /// `*` matches), else `If-Modified-Since` at one-second resolution.
    fn fresh(&self, etag: &str, mtime: SystemTime) -> bool {
        if let Some(inm) = &self.if_none_match {
            let ours = etag.trim_start_matches("W/");
            return inm
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == ours);
        }
        let Some(ims) = &self.if_modified_since else {
            return false;
        };
        let Ok(since) = chrono::DateTime::parse_from_rfc2822(ims.trim()) else {
            return false;
        };
        unix_secs(mtime) <= since.timestamp()
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A strong `ETag` from a file's size and modification time (nanoseconds), and for
/// generated variants (`properties`) a hash of what was put into them.
pub(crate) fn etag(len: u64, mtime: SystemTime, extra: Option<&str>) -> String {
    let ns = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    match extra {
        None => format!("\"{len:x}-{ns:x}\""),
        Some(x) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            x.hash(&mut h);
            format!("\"{len:x}-{ns:x}-{:x}\"", h.finish())
        }
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate).
pub(crate) fn http_date(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// What a file gives: its bytes; or the open file, to stream when it is large, or to read
/// on the blocking pool when its pages are not all in the page cache.
#[derive(Debug)]
pub(crate) enum Content {
    Bytes(Vec<u8>),
    File(std::fs::File),
    Unread(std::fs::File),
}

/// A file found, with what the response needs.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) len: u64,
    pub(crate) mtime: SystemTime,
    /// None for HEAD and 304.
    pub(crate) content: Option<Content>,
    /// The client's copy is current (304).
    pub(crate) fresh: bool,
}

/// Opens a regular file, checks `cond` against its size/mtime ETag and reads it when asked
/// and needed. With `nowait`, a small file is read only if its pages are all cached
/// ([`read_cached`]), else left [`Content::Unread`]; without, it is read (blocking).
pub(crate) fn open_file(
    path: &Path,
    cond: Option<&Conditions>,
    want_body: bool,
    nowait: bool,
) -> std::io::Result<Found> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not a regular file",
        ));
    }
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let fresh = cond.is_some_and(|c| c.fresh(&etag(len, mtime, None), mtime));
    let content = if fresh || !want_body {
        None
    } else if len <= SMALL {
        let n = usize::try_from(len).unwrap_or(0);
        if !nowait {
            Some(Content::Bytes(read_all(&mut f, n)?))
        } else if let Some(b) = read_cached(&f, n) {
            Some(Content::Bytes(b))
        } else {
            Some(Content::Unread(f))
        }
    } else {
        Some(Content::File(f))
    };
    Ok(Found {
        len,
        mtime,
        content,
        fresh,
    })
}

fn read_all(f: &mut std::fs::File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// The whole file (`len` bytes from offset 0) if every page of it is in the page cache, with
/// one `preadv2(RWF_NOWAIT)`: None when the read would wait for the disk, comes back short,
/// or fails in any way (the caller then reads it on the blocking pool).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn read_cached(f: &std::fs::File, len: usize) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    // SAFETY: `iov` describes the `len` bytes of `buf`'s allocation, which outlives the call;
    // the kernel writes at most `len` bytes there.
    let n = unsafe { libc::preadv2(f.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    if usize::try_from(n).ok() != Some(len) {
        return None;
    }
    // SAFETY: the kernel reported all `len` bytes written.
    unsafe { buf.set_len(len) };
    Some(buf)
}

/// Elsewhere every read goes to the blocking pool.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn read_cached(_f: &std::fs::File, _len: usize) -> Option<Vec<u8>> {
    None
}

/// Reads a [`Content::Unread`] file on the blocking pool.
async fn finish_read(found: Found) -> std::io::Result<Found> {
    let Found {
        len,
        mtime,
        content,
        fresh,
    } = found;
    let content = match content {
        Some(Content::Unread(mut f)) => {
            let n = usize::try_from(len).unwrap_or(0);
            let b = tokio::task::spawn_blocking(move || read_all(&mut f, n))
                .await
                .map_err(std::io::Error::other)??;
            Some(Content::Bytes(b))
        }
        c => c,
    };
    Ok(Found {
        len,
        mtime,
        content,
        fresh,
    })
}

/// The response for a file: 200 with the body (or the length only, for HEAD), or 304.
pub(crate) fn respond(content_type: &'static str, etag: &str, found: Found) -> Response {
    let mut resp = if found.fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let (body, len) = match found.content {
            Some(Content::Bytes(b)) => {
                let n = b.len() as u64;
                (Body::from(b), n)
            }
            Some(Content::File(f) | Content::Unread(f)) => (stream_file(f, found.len), found.len),
            None => (Body::empty(), found.len),
        };
        let mut r = (StatusCode::OK, body).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Set here so that HEAD (empty body) and streamed bodies carry the real length.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(found.mtime)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    resp
}

/// A large file as a body of 256 KiB chunks, each read on the blocking pool.
fn stream_file(file: std::fs::File, len: u64) -> Body {
    let chunks = futures::stream::unfold(Some((file, len)), |state| async move {
        let (mut f, left) = state?;
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
            f.read_exact(&mut buf).map(|()| (f, buf))
        })
        .await;
        match read {
            Ok(Ok((f, buf))) => Some((Ok(bytes::Bytes::from(buf)), Some((f, left - n)))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    Body::from_stream(chunks)
}

/// Serves a file of the local file system at `path` (the viewer's Aladin Lite script):
/// conditional GET, HEAD without a read.
pub(crate) async fn send_file(
    path: PathBuf,
    content_type: &'static str,
    headers: &HeaderMap,
    want_body: bool,
) -> Response {
    let cond = Conditions::from_headers(headers);
    let r =
        tokio::task::spawn_blocking(move || open_file(&path, Some(&cond), want_body, false)).await;
    match r {
        Ok(Ok(found)) => {
            let tag = etag(found.len, found.mtime, None);
            respond(content_type, &tag, found)
        }
        Ok(Err(e)) => missing(&format!("cannot read the file: {}", e.kind())),
        Err(e) => {
            tracing::error!("file read task failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// The result of looking a request up in the image HiPS directories.
#[derive(Debug)]
enum Lookup {
    /// No image HiPS of that name.
    NoHips,
    /// The HiPS exists; the path is refused or names no file.
    NoFile,
    Found(Found),
}

/// `ROOT/hips/<id>` canonicalised, if it is an image HiPS inside the canonical data root.
fn hips_dir(root: &Path, id: &str) -> Option<PathBuf> {
    if !valid_id(id) {
        return None;
    }
    let canon_root = root.canonicalize().ok()?;
    let dir = root.join(HIPS_DIR).join(id).canonicalize().ok()?;
    if !dir.starts_with(&canon_root) {
        tracing::warn!(
            "image HiPS {id}: {} is outside the data root, not served",
            dir.display()
        );
        return None;
    }
    dir.join("properties").is_file().then_some(dir)
}

/// The blocking part of a request for `ROOT/hips/<id>/<rel>`.
fn lookup(root: &Path, id: &str, rel: &str, cond: Option<&Conditions>, want_body: bool) -> Lookup {
    let Some(dir) = hips_dir(root, id) else {
        return Lookup::NoHips;
    };
    if !valid_rel(rel) {
        return Lookup::NoFile;
    }
    let Ok(file) = dir.join(rel).canonicalize() else {
        return Lookup::NoFile;
    };
    if !file.starts_with(&dir) {
        tracing::warn!(
            "image HiPS {id}: {rel} resolves to {} outside the HiPS, refused",
            file.display()
        );
        return Lookup::NoFile;
    }
    match open_file(&file, cond, want_body, true) {
        Ok(f) => Lookup::Found(f),
        Err(_) => Lookup::NoFile,
    }
}

/// The local data root of the service (None for an object-store root).
fn local_root(s: &HipsService) -> Option<PathBuf> {
    s.svc.engine.archive().root().local_dir.clone()
}

/// Answers `/hips/<id>/<rel>` from the image HiPS directory `ROOT/hips/<id>`; None when there
/// is no image HiPS of that name (the caller answers 404).
pub(super) async fn serve(
    s: &HipsService,
    id: &str,
    rel: &str,
    headers: &HeaderMap,
    want_body: bool,
) -> Option<Response> {
    let root = local_root(s)?;
    if !valid_id(id) {
        return None;
    }
    let is_props = rel == "properties";
    let cond = Conditions::from_headers(headers);
    // Checks, open and fstat here; the read too when the file is in the page cache, else on
    // the blocking pool (see the module doc).
    let looked = if is_props {
        // Always read: its ETag depends on the URL written into it.
        lookup(&root, id, rel, None, true)
    } else {
        lookup(&root, id, rel, Some(&cond), want_body)
    };
    let found = match looked {
        Lookup::NoHips => return None,
        Lookup::NoFile => return Some(missing("no such file in this HiPS")),
        Lookup::Found(f) => f,
    };
    let found = match finish_read(found).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("image HiPS {id}: reading {rel}: {e}");
            return Some(missing("cannot read this file"));
        }
    };
    if !is_props {
        let tag = etag(found.len, found.mtime, None);
        return Some(respond(content_type(rel), &tag, found));
    }
    let url = base_url(headers, id);
    let raw = match found.content {
        Some(Content::Bytes(b)) => b,
        _ => return Some(missing("properties file too large")),
    };
    let body = rewrite_properties(&String::from_utf8_lossy(&raw), &url, false).into_bytes();
    let tag = etag(found.len, found.mtime, Some(&url));
    let fresh = Conditions::from_headers(headers).fresh(&tag, found.mtime);
    let len = body.len() as u64;
    let content = (want_body && !fresh).then_some(Content::Bytes(body));
    Some(respond(
        content_type(rel),
        &tag,
        Found {
            len,
            mtime: found.mtime,
            content,
            fresh,
        },
    ))
}

/// HEAD on `/hips/<name>/<path>`: image HiPS files without reading them; catalogue HiPS as
/// their GET (axum drops the body).
pub(super) async fn head(
    State(s): State<Arc<HipsService>>,
    UrlPath((name, path)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if s.catalog(&name).is_none()
        && let Some(r) = serve(&s, &name, &path, &headers, false).await
    {
        return r;
    }
    super::serve(&s, &name, &path, &headers).await
}

/// HEAD on `/hips/<name>/` (the HiPS's `index.html`).
pub(super) async fn head_index(
    State(s): State<Arc<HipsService>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if s.catalog(&name).is_none()
        && let Some(r) = serve(&s, &name, "index.html", &headers, false).await
    {
        return r;
    }
    super::serve(&s, &name, "index.html", &headers).await
}

/// `Access-Control-Allow-Origin: *` on every `/hips` response, errors included (Aladin Lite
/// fetches everything cross-origin; FORMATS.md §3.7).
pub(super) async fn cors(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// A `properties` text with `hips_service_url` set to `url`: every `hips_service_url*` key of
/// the file dropped, blank lines dropped, and for the HiPS list (`list`) comment lines too.
pub(crate) fn rewrite_properties(raw: &str, url: &str, list: bool) -> String {
    let mut out = String::with_capacity(raw.len() + url.len() + 24);
    for line in raw.lines() {
        let t = line.trim();
        if t.is_empty() || (list && t.starts_with('#')) {
            continue;
        }
        if !t.starts_with('#') {
            let key = t.split('=').next().unwrap_or("").trim();
            if key == "hips_service_url" || key.starts_with("hips_service_url_") {
                continue;
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{:<20}= {url}\n", "hips_service_url"));
    out
}

/// The HiPS-list records of the image HiPS (sorted by id), with `hips_service_url` set from
/// the request; ids in `shadowed` (catalogue names, lower-case) are left out.
pub(super) async fn list_records(
    s: &HipsService,
    headers: &HeaderMap,
    shadowed: Vec<String>,
) -> Vec<String> {
    let Some(root) = local_root(s) else {
        return Vec::new();
    };
    let found = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(root.join(HIPS_DIR)) else {
            return out;
        };
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if shadowed.contains(&id.to_ascii_lowercase()) {
                tracing::warn!("image HiPS {id} is shadowed by the catalogue of that name");
                continue;
            }
            let Some(dir) = hips_dir(&root, &id) else {
                continue;
            };
            match std::fs::read(dir.join("properties")) {
                Ok(b) => out.push((id, String::from_utf8_lossy(&b).into_owned())),
                Err(err) => tracing::warn!("image HiPS {id}: properties: {err}"),
            }
        }
        out.sort();
        out
    })
    .await
    .unwrap_or_default();
    found
        .into_iter()
        .map(|(id, raw)| rewrite_properties(&raw, &base_url(headers, &id), true))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths() {
        assert!(valid_id("m13"));
        assert!(valid_id("demo.images-v2_1"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "a b", "a%2e", "é"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert!(valid_rel("properties"));
        assert!(valid_rel("Norder3/Dir0/Npix147.fits"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "Norder3/../../x",
            "Norder3/./Npix1.png",
            "a//b",
            "a/",
            ".git/config",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(!valid_rel(bad), "{bad:?}");
        }
    }

    #[test]
    fn types() {
        assert_eq!(content_type("Norder3/Dir0/Npix1.fits"), "application/fits");
        assert_eq!(content_type("Moc.fits"), "application/fits");
        assert_eq!(content_type("Norder3/Allsky.png"), "image/png");
        assert_eq!(content_type("Norder3/Allsky.jpg"), "image/jpeg");
        assert_eq!(content_type("properties"), "text/plain; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn properties_rewritten() {
        let raw = "creator_did = ivo://x/P/y\r\n#hips_service_url    = ex: http://old\n\n\
                   hips_service_url = http://elsewhere/y\nhips_service_url_1=http://mirror\n\
                   hips_order = 9\n";
        let p = rewrite_properties(raw, "http://h:1/hips/y", false);
        assert_eq!(
            p,
            "creator_did = ivo://x/P/y\n#hips_service_url    = ex: http://old\n\
             hips_order = 9\nhips_service_url    = http://h:1/hips/y\n"
        );
        let l = rewrite_properties(raw, "http://h:1/hips/y", true);
        assert!(!l.contains('#') && !l.contains("\n\n") && l.contains("hips_order = 9"));
    }

    #[test]
    fn conditions() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let tag = etag(10, t, None);
        let c = |inm: Option<&str>, ims: Option<&str>| Conditions {
            if_none_match: inm.map(str::to_string),
            if_modified_since: ims.map(str::to_string),
        };
        assert!(c(Some(&tag), None).fresh(&tag, t));
        assert!(c(Some(&format!("\"x\", W/{tag}")), None).fresh(&tag, t));
        assert!(c(Some("*"), None).fresh(&tag, t));
        assert!(!c(Some("\"other\""), Some(&http_date(t))).fresh(&tag, t));
        assert!(c(None, Some(&http_date(t))).fresh(&tag, t));
        assert!(
            !c(
                None,
                Some(&http_date(t - std::time::Duration::from_secs(1)))
            )
            .fresh(&tag, t)
        );
        assert!(!c(None, Some("garbage")).fresh(&tag, t));
        // Header values are case-insensitive in practice (some clients lower-case them).
        assert!(c(None, Some(&http_date(t).to_ascii_lowercase())).fresh(&tag, t));
        assert_eq!(http_date(t), "Tue, 14 Nov 2023 22:13:20 GMT");
    }
}
