//! TAP/DALI request parameters: from the query string and, for POST, from an
//! `application/x-www-form-urlencoded` or `multipart/form-data` body.
//!
//! Names are case-insensitive (DALI §3.1): they are kept upper-cased; values are kept as
//! sent, in order, and a name may repeat (UWS list filters repeat `PHASE`). Multipart parts
//! with a file name or a content type other than `text/plain` are streamed to temporary
//! files in the spool directory (never held in memory), so an inline upload of any size up
//! to the configured limit costs one file; the files are deleted when the [`TapParams`] is
//! dropped unless a job takes them ([`TapParams::take_file`]). Chunked bodies without
//! `Content-Length` are read like any other.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{Method, StatusCode, header};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::error::TapError;

/// Limits on what a request may carry.
#[derive(Debug, Clone)]
pub struct ParamLimits {
    /// Bytes of one uploaded part at most.
    pub max_upload_bytes: u64,
    /// Bytes of a text parameter (or a whole urlencoded body) at most.
    pub max_text_bytes: usize,
    /// Where uploaded parts are spooled.
    pub spool_dir: PathBuf,
}

/// An uploaded multipart part, spooled to a file.
#[derive(Debug)]
pub struct UploadedPart {
    /// The part's form name, as sent.
    pub name: String,
    /// The file name the client gave, if any.
    pub file_name: Option<String>,
    /// The part's content type, if any.
    pub content_type: Option<String>,
    /// The spooled bytes (deleted on drop unless taken).
    pub file: tempfile::TempPath,
    /// Its size in bytes.
    pub size: u64,
}

/// The parameters of one request.
#[derive(Debug, Default)]
pub struct TapParams {
    /// `(NAME upper-cased, value)` in the order received.
    pub values: Vec<(String, String)>,
    /// Spooled multipart parts.
    pub files: Vec<UploadedPart>,
}

impl TapParams {
    /// The first value of a parameter (name in any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter, in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first non-empty value of a parameter, trimmed.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Removes and returns the spooled part named `name` (exact name first, then
    /// case-insensitive). A text parameter of that name is written to a file in `spool_dir`
    /// instead, so `UPLOAD=t,param:x` also works when `x` came as a plain form field.
    pub fn take_file(
        &mut self,
        name: &str,
        spool_dir: &Path,
    ) -> Result<Option<UploadedPart>, TapError> {
        let pos = self.files.iter().position(|f| f.name == name).or_else(|| {
            self.files
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(name))
        });
        if let Some(i) = pos {
            return Ok(Some(self.files.remove(i)));
        }
        let Some(i) = self
            .values
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
        else {
            return Ok(None);
        };
        let (_, text) = self.values.remove(i);
        let mut f = tempfile::NamedTempFile::new_in(spool_dir).map_err(TapError::internal)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(TapError::internal)?;
        Ok(Some(UploadedPart {
            name: name.to_string(),
            file_name: None,
            content_type: None,
            size: text.len() as u64,
            file: f.into_temp_path(),
        }))
    }
}

fn push_urlencoded(out: &mut Vec<(String, String)>, raw: &[u8]) {
    for (k, v) in form_urlencoded::parse(raw) {
        out.push((k.to_ascii_uppercase(), v.into_owned()));
    }
}

/// Reads the parameters of a request: the query string always, the body for POST and PUT.
pub async fn read_params(req: Request, limits: &ParamLimits) -> Result<TapParams, TapError> {
    let mut p = TapParams::default();
    if let Some(q) = req.uri().query() {
        push_urlencoded(&mut p.values, q.as_bytes());
    }
    if !(req.method() == Method::POST || req.method() == Method::PUT) {
        return Ok(p);
    }
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("multipart/form-data") {
        read_multipart(req, limits, &mut p).await?;
    } else if ctype.is_empty() || ctype.starts_with("application/x-www-form-urlencoded") {
        let body = read_text_body(req.into_body(), limits.max_text_bytes).await?;
        push_urlencoded(&mut p.values, &body);
    } else {
        return Err(TapError::bad_request(format!(
            "unsupported request body type `{ctype}`: send parameters as \
             application/x-www-form-urlencoded or multipart/form-data"
        ))
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    Ok(p)
}

async fn read_text_body(body: Body, max: usize) -> Result<Vec<u8>, TapError> {
    let mut out = Vec::new();
    let mut s = body.into_data_stream();
    while let Some(chunk) = s.next().await {
        let chunk =
            chunk.map_err(|e| TapError::bad_request(format!("reading the request body: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err(TapError::too_large(format!(
                "the request body exceeds {max} bytes; send large tables as a multipart upload"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn read_multipart(
    req: Request,
    limits: &ParamLimits,
    p: &mut TapParams,
) -> Result<(), TapError> {
    let mut mp = Multipart::from_request(req, &()).await.map_err(|e| {
        TapError::bad_request(format!("malformed multipart request: {}", e.body_text()))
    })?;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(multipart_error(e.body_text(), e.status()));
            }
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let is_text = file_name.is_none()
            && content_type
                .as_deref()
                .is_none_or(|c| c.to_ascii_lowercase().starts_with("text/plain"));
        let mut field = field;
        if is_text {
            let mut buf = Vec::new();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| multipart_error(e.body_text(), e.status()))?
            {
                if buf.len() + chunk.len() > limits.max_text_bytes {
                    return Err(TapError::too_large(format!(
                        "form field `{name}` exceeds {} bytes; send tables as file parts",
                        limits.max_text_bytes
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(buf).map_err(|_| {
                TapError::bad_request(format!("form field `{name}` is not UTF-8 text"))
            })?;
            p.values.push((name.to_ascii_uppercase(), text));
        } else {
            let tmp =
                tempfile::NamedTempFile::new_in(&limits.spool_dir).map_err(TapError::internal)?;
            let (std_file, path) = tmp.into_parts();
            let mut file = tokio::fs::File::from_std(std_file);
            let mut size = 0u64;
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| multipart_error(e.body_text(), e.status()))?
            {
                size += chunk.len() as u64;
                if size > limits.max_upload_bytes {
                    return Err(TapError::too_large(format!(
                        "uploaded part `{name}` exceeds the upload limit of {} bytes",
                        limits.max_upload_bytes
                    )));
                }
                file.write_all(&chunk).await.map_err(TapError::internal)?;
            }
            file.flush().await.map_err(TapError::internal)?;
            p.files.push(UploadedPart {
                name,
                file_name,
                content_type,
                file: path,
                size,
            });
        }
    }
    Ok(())
}

fn multipart_error(text: String, status: StatusCode) -> TapError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        TapError::too_large(format!("the request body is too large: {text}"))
    } else {
        TapError::bad_request(format!("malformed multipart request: {text}"))
    }
}
