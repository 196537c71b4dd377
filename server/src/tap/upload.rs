//! TAP UPLOAD (TAP 1.1 §3.3.1, DALI §3.4.4): `UPLOAD=name,URI[;name,URI…]` where the URI is
//! `param:part` (an inline multipart part) or an `http(s)://` URL (only when the operator
//! allows it). The table becomes `TAP_UPLOAD.name` for the one query.
//!
//! The bytes are read with the loader's readers (VOTable in TABLEDATA, BINARY or BINARY2 of
//! any version, CSV, Parquet, FITS binary tables), chosen by sniffing the first bytes rather
//! than trusting a content type: clients label VOTables variously (`text/xml`,
//! `application/x-votable+xml`, `application/octet-stream`). Size and row limits apply.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::Schema;
use tessera_engine::UploadTable;
use tessera_loader::source::{self, Format, ReadOptions};

use super::error::TapError;
use super::params::TapParams;

/// What uploads may be.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// Bytes of one uploaded table at most.
    pub max_bytes: u64,
    /// Rows of one uploaded table at most.
    pub max_rows: u64,
    /// Tables per request at most.
    pub max_tables: usize,
    /// Whether `http(s)://` URLs may be fetched.
    pub allow_urls: bool,
    /// Where fetched tables are spooled.
    pub spool_dir: PathBuf,
}

/// One entry of the UPLOAD parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    /// The table name.
    pub name: String,
    /// `param:part` or a URL, as given.
    pub uri: String,
}

/// Parses `UPLOAD` values (each may hold several `;`-separated entries).
pub fn parse_upload_param(
    values: &[&str],
    limits: &UploadLimits,
) -> Result<Vec<UploadSpec>, TapError> {
    let mut out: Vec<UploadSpec> = Vec::new();
    for v in values {
        for entry in v.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, uri)) = entry.split_once(',') else {
                return Err(TapError::bad_request(format!(
                    "UPLOAD entry `{entry}` is not `name,URI` (e.g. UPLOAD=mytable,param:file1)"
                )));
            };
            let (name, uri) = (name.trim(), uri.trim());
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(TapError::bad_request(format!(
                    "UPLOAD table name `{name}` is not an ADQL identifier (a letter, then letters, digits or _)"
                )));
            }
            if out.iter().any(|u| u.name.eq_ignore_ascii_case(name)) {
                return Err(TapError::bad_request(format!(
                    "UPLOAD names table `{name}` twice"
                )));
            }
            out.push(UploadSpec {
                name: name.to_string(),
                uri: uri.to_string(),
            });
        }
    }
    if out.len() > limits.max_tables {
        return Err(TapError::bad_request(format!(
            "{} tables uploaded; at most {} are allowed",
            out.len(),
            limits.max_tables
        )));
    }
    Ok(out)
}

/// Where an upload's bytes are: a file on disk (taken from the request) or a URL.
#[derive(Debug)]
pub enum UploadSource {
    /// A spooled file (kept alive by the guard, if any).
    File(PathBuf, Option<tempfile::TempPath>),
    /// A URL to fetch.
    Url(String),
}

/// Resolves `param:` references against the request's parts. URLs are checked against the
/// configuration here and fetched by [`load_uploads`].
pub fn resolve_sources(
    specs: &[UploadSpec],
    params: &mut TapParams,
    limits: &UploadLimits,
) -> Result<Vec<(String, UploadSource)>, TapError> {
    let mut out = Vec::new();
    for s in specs {
        let src = if let Some(part) = s.uri.strip_prefix("param:") {
            match params.take_file(part, &limits.spool_dir)? {
                Some(p) => UploadSource::File(p.file.to_path_buf(), Some(p.file)),
                None => {
                    return Err(TapError::bad_request(format!(
                        "UPLOAD table `{}` refers to param:{part}, but the request has no part named `{part}` (send it as multipart/form-data)",
                        s.name
                    )));
                }
            }
        } else {
            check_url(&s.name, &s.uri, limits)?;
            UploadSource::Url(s.uri.clone())
        };
        out.push((s.name.clone(), src));
    }
    Ok(out)
}

fn check_url(name: &str, uri: &str, limits: &UploadLimits) -> Result<(), TapError> {
    let lower = uri.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        if limits.allow_urls {
            Ok(())
        } else {
            Err(TapError::bad_request(format!(
                "UPLOAD table `{name}`: this service does not fetch tables from URLs; send the table inline (UPLOAD={name},param:<part>)"
            )))
        }
    } else {
        Err(TapError::bad_request(format!(
            "UPLOAD table `{name}`: unsupported URI `{uri}`; use param:<part> or an http(s) URL"
        )))
    }
}

/// Fetches URL uploads and reads every upload into memory as an [`UploadTable`].
pub async fn load_uploads(
    sources: Vec<(String, UploadSource)>,
    limits: &UploadLimits,
) -> Result<Vec<UploadTable>, TapError> {
    let mut out = Vec::new();
    for (name, src) in sources {
        let (path, _guard) = match src {
            UploadSource::File(p, g) => (p, g),
            UploadSource::Url(u) => {
                let tmp = fetch(&name, &u, limits).await?;
                (tmp.to_path_buf(), Some(tmp))
            }
        };
        let limits2 = limits.clone();
        let name2 = name.clone();
        let table = tokio::task::spawn_blocking(move || read_table(&name2, &path, &limits2))
            .await
            .map_err(TapError::internal)??;
        out.push(table);
    }
    Ok(out)
}

async fn fetch(
    name: &str,
    url: &str,
    limits: &UploadLimits,
) -> Result<tempfile::TempPath, TapError> {
    use tokio::io::AsyncWriteExt;
    let fail = |m: String| TapError::bad_request(format!("UPLOAD table `{name}` from {url}: {m}"));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(TapError::internal)?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("the server answered {}", resp.status())));
    }
    let tmp = tempfile::NamedTempFile::new_in(&limits.spool_dir).map_err(TapError::internal)?;
    let (f, path) = tmp.into_parts();
    let mut f = tokio::fs::File::from_std(f);
    let mut size = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
        size += chunk.len() as u64;
        if size > limits.max_bytes {
            return Err(TapError::too_large(format!(
                "UPLOAD table `{name}` from {url} exceeds the upload limit of {} bytes",
                limits.max_bytes
            )));
        }
        f.write_all(&chunk).await.map_err(TapError::internal)?;
    }
    f.flush().await.map_err(TapError::internal)?;
    Ok(path)
}

/// The format of a table file, from its first bytes.
fn sniff(path: &Path) -> Result<Format, TapError> {
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(path).map_err(TapError::internal)?;
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..]).map_err(TapError::internal)?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let head = &head[..n];
    if head.starts_with(b"PAR1") {
        return Ok(Format::Parquet);
    }
    if head.starts_with(b"SIMPLE  =") {
        return Ok(Format::Fits);
    }
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('<') {
        return Ok(Format::VoTable);
    }
    Ok(Format::Csv)
}

fn read_table(name: &str, path: &Path, limits: &UploadLimits) -> Result<UploadTable, TapError> {
    let size = std::fs::metadata(path).map_err(TapError::internal)?.len();
    if size > limits.max_bytes {
        return Err(TapError::too_large(format!(
            "UPLOAD table `{name}` is {size} bytes; the limit is {} bytes",
            limits.max_bytes
        )));
    }
    if size == 0 {
        return Err(TapError::bad_request(format!(
            "UPLOAD table `{name}` is empty"
        )));
    }
    let format = sniff(path)?;
    let bad = |e: tessera_loader::Error| {
        TapError::bad_request(format!("UPLOAD table `{name}` cannot be read: {e}"))
    };
    let opts = ReadOptions {
        batch_rows: 8192,
        delimiter: Some(b','),
        ..Default::default()
    };
    let mut src = source::open(path, Some(format), &opts).map_err(bad)?;
    let schema = src.schema();
    let mut batches = Vec::new();
    let mut rows = 0u64;
    while let Some(b) = src.next_batch().map_err(bad)? {
        rows += b.batch.num_rows() as u64;
        if rows > limits.max_rows {
            return Err(TapError::too_large(format!(
                "UPLOAD table `{name}` has more than {} rows, the upload limit",
                limits.max_rows
            )));
        }
        batches.push(b.batch);
    }
    // The loader's readers name the file in their messages; uploaded columns keep their
    // metadata (unit, ucd) so results and TAP_UPLOAD columns describe themselves.
    let schema = Arc::new(Schema::new_with_metadata(
        schema.fields().clone(),
        Default::default(),
    ));
    let batches = batches
        .into_iter()
        .map(|b| b.with_schema(schema.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TapError::internal)?;
    Ok(UploadTable {
        name: name.to_string(),
        schema,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> UploadLimits {
        UploadLimits {
            max_bytes: 1 << 20,
            max_rows: 10,
            max_tables: 2,
            allow_urls: false,
            spool_dir: std::env::temp_dir(),
        }
    }

    #[test]
    fn parses_upload_parameter() {
        let l = limits();
        let v = parse_upload_param(&["t1,param:a; t2,http://x/y"], &l).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            UploadSpec {
                name: "t1".into(),
                uri: "param:a".into()
            }
        );
        assert!(parse_upload_param(&["1t,param:a"], &l).is_err());
        assert!(parse_upload_param(&["t1"], &l).is_err());
        assert!(parse_upload_param(&["t,param:a;T,param:b"], &l).is_err());
        assert!(parse_upload_param(&["a,param:a;b,param:b;c,param:c"], &l).is_err());
        let mut p = TapParams::default();
        let e = resolve_sources(&v[1..], &mut p, &l).unwrap_err();
        assert!(e.message.contains("does not fetch"), "{}", e.message);
        let e = resolve_sources(&v[..1], &mut p, &l).unwrap_err();
        assert!(e.message.contains("no part named `a`"), "{}", e.message);
    }

    #[test]
    fn reads_csv_and_votable_and_enforces_rows() {
        let l = limits();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("a");
        std::fs::write(&csv, "ra,dec,name\n10.5,20,a\n11,-3.25,b\n").unwrap();
        let t = read_table("t", &csv, &l).unwrap();
        assert_eq!(t.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        assert_eq!(
            t.schema.field(0).data_type(),
            &arrow::datatypes::DataType::Float64
        );
        let vot = dir.path().join("b");
        std::fs::write(
            &vot,
            r#"<?xml version="1.0"?><VOTABLE version="1.2" xmlns="http://www.ivoa.net/xml/VOTable/v1.2"><RESOURCE><TABLE>
<FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra"/><FIELD name="id" datatype="int"/>
<DATA><TABLEDATA><TR><TD>1.5</TD><TD>7</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"#,
        )
        .unwrap();
        let t = read_table("v", &vot, &l).unwrap();
        assert_eq!(
            t.schema.field(0).metadata().get("unit").map(String::as_str),
            Some("deg")
        );
        let big = dir.path().join("c");
        let mut s = String::from("x\n");
        for i in 0..11 {
            s.push_str(&format!("{i}\n"));
        }
        std::fs::write(&big, s).unwrap();
        let e = read_table("c", &big, &l).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        let bad = dir.path().join("d");
        std::fs::write(&bad, "<VOTABLE><RESOURCE><TABLE><FIELD name=\"a\" datatype=\"int\"/><DATA><TABLEDATA><TR><TD>x</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").unwrap();
        let e = read_table("d", &bad, &l).unwrap_err();
        assert!(e.message.contains("UPLOAD table `d`"), "{}", e.message);
    }
}
