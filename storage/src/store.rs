//! Where catalogs live: a plain path or `file://` URL, `s3://bucket/prefix` on an
//! S3-compatible store, or `memory://name/prefix` (process-wide in-memory stores, for tests).
//!
//! This module never reads the environment: callers (the binary's config layer) fill
//! [`StoreOptions`], e.g. from `AWS_*` variables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::error::{Error, Result};

/// Connection settings for S3-compatible stores.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; `None` means AWS itself.
    pub s3_endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub s3_region: Option<String>,
    /// Access key id.
    pub s3_access_key_id: Option<String>,
    /// Secret access key. Never logged.
    pub s3_secret_access_key: Option<String>,
    /// Session token, for temporary credentials.
    pub s3_session_token: Option<String>,
    /// Allow plain HTTP endpoints (loopback test servers).
    pub s3_allow_http: bool,
}

/// A resolved location: a store and a prefix inside it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix of the location inside the store.
    pub prefix: ObjectPath,
    /// The URL as the user gave it (without credentials), for messages.
    pub url: String,
    /// The local directory, when the store is the local file system.
    pub local_dir: Option<PathBuf>,
}

static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<object_store::memory::InMemory>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Location {
    /// Parses a location URL. Plain paths and `file://` URLs are made absolute; the directory
    /// need not exist yet.
    pub fn parse(url: &str, opts: &StoreOptions) -> Result<Location> {
        let invalid = |m: String| Error::Invalid {
            what: "location",
            message: m,
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(format!(
                    "`{url}` names no bucket (s3://bucket/prefix)"
                )));
            }
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(opts.s3_region.as_deref().unwrap_or("us-east-1"));
            if let Some(e) = &opts.s3_endpoint {
                b = b
                    .with_endpoint(e)
                    .with_virtual_hosted_style_request(false)
                    .with_allow_http(opts.s3_allow_http || e.starts_with("http://"));
            }
            if let Some(k) = &opts.s3_access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = &opts.s3_secret_access_key {
                b = b.with_secret_access_key(s);
            }
            if let Some(t) = &opts.s3_session_token {
                b = b.with_token(t);
            }
            let store = b.build()?;
            return Ok(Location {
                store: Arc::new(store),
                prefix: ObjectPath::from(prefix.trim_matches('/')),
                url: url.to_string(),
                local_dir: None,
            });
        }
        if let Some(rest) = url.strip_prefix("memory://") {
            let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let store = MEMORY_STORES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
                .clone();
            return Ok(Location {
                store,
                prefix: ObjectPath::from(prefix.trim_matches('/')),
                url: url.to_string(),
                local_dir: None,
            });
        }
        let path = if let Some(rest) = url.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if url.contains("://") {
            return Err(invalid(format!(
                "`{url}`: unsupported scheme; use a path, file://, s3:// or memory://"
            )));
        } else {
            PathBuf::from(url)
        };
        Self::local(&path)
    }

    /// A location on the local file system.
    pub fn local(path: &Path) -> Result<Location> {
        let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
        let abs = normalize(&abs);
        let prefix = ObjectPath::from_absolute_path(&abs).map_err(|e| Error::Invalid {
            what: "location",
            message: format!("{}: {e}", abs.display()),
        })?;
        Ok(Location {
            store: Arc::new(object_store::local::LocalFileSystem::new()),
            prefix,
            url: abs.display().to_string(),
            local_dir: Some(abs),
        })
    }

    /// The object path of `rel` (slash-separated) inside this location.
    pub fn path(&self, rel: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    /// A child location `rel` below this one.
    pub fn child(&self, rel: &str) -> Location {
        Location {
            store: self.store.clone(),
            prefix: self.path(rel),
            url: format!("{}/{}", self.url.trim_end_matches('/'), rel),
            local_dir: self.local_dir.as_ref().map(|d| d.join(rel)),
        }
    }
}

/// Removes `.` and `..` components lexically (the path may not exist yet).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_schemes() {
        let o = StoreOptions::default();
        let l = Location::parse("/tmp/x/../data/cat", &o).unwrap();
        assert_eq!(l.local_dir.as_deref(), Some(Path::new("/tmp/data/cat")));
        assert_eq!(
            l.path("dataset/_metadata").as_ref(),
            "tmp/data/cat/dataset/_metadata"
        );
        let l = Location::parse("file:///tmp/data", &o).unwrap();
        assert_eq!(l.prefix.as_ref(), "tmp/data");
        let l = Location::parse("memory://t1/a/b", &o).unwrap();
        assert_eq!(l.prefix.as_ref(), "a/b");
        assert!(l.local_dir.is_none());
        let o = StoreOptions {
            s3_endpoint: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        let l = Location::parse("s3://archive/root/cat", &o).unwrap();
        assert_eq!(l.prefix.as_ref(), "root/cat");
        assert!(Location::parse("s3:///x", &o).is_err());
        assert!(Location::parse("ftp://x/y", &o).is_err());
    }
}
