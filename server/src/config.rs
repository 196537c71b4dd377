//! Configuration that comes from the environment. Only `main`, the CLI and this module read
//! environment variables; the library crates receive explicit settings.

use std::path::{Path, PathBuf};

use tessera_engine::StoreOptions;

/// Object-store settings from the usual AWS variables (`AWS_ENDPOINT_URL`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or
/// `AWS_DEFAULT_REGION`, `AWS_ALLOW_HTTP`), overridden by explicit flags.
pub fn store_options(endpoint: Option<String>, region: Option<String>) -> StoreOptions {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    StoreOptions {
        s3_endpoint: endpoint
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL")),
        s3_region: region
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION")),
        s3_access_key_id: env("AWS_ACCESS_KEY_ID"),
        s3_secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
        s3_session_token: env("AWS_SESSION_TOKEN"),
        s3_allow_http: env("AWS_ALLOW_HTTP").is_some_and(|v| v == "true" || v == "1"),
    }
}

/// The Aladin Lite ES module (`aladin-lite/dist/aladin.js`, npm package 3.8.2) the `/viewer`
/// page loads: looked for in `dir` (an npm prefix holding `node_modules/aladin-lite`, the
/// package directory, or its `dist/`), else in the prefix `tools/install-test-deps` installs
/// into, `$XDG_CACHE_HOME/tessera-web` or `~/.cache/tessera-web`. None when absent: the page
/// then loads the CDS-hosted build.
pub fn aladin_lite_script(dir: Option<&Path>) -> Option<PathBuf> {
    let find = |d: &Path| {
        [
            d.join("node_modules/aladin-lite/dist/aladin.js"),
            d.join("dist/aladin.js"),
            d.join("aladin.js"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    };
    if let Some(d) = dir {
        let found = find(d);
        if found.is_none() {
            tracing::warn!(
                "--aladin-lite {}: no aladin-lite/dist/aladin.js there; /viewer will load Aladin Lite from CDS",
                d.display()
            );
        }
        return found;
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let cache = env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache")))?;
    find(&cache.join("tessera-web"))
}

/// Parses a byte size such as `512M`, `4G`, `1.5GiB` or `1000000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512M, 4G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit `{other}` in `{s}`")),
    };
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3X").is_err());
    }
}
