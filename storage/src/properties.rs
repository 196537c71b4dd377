//! `hats.properties`: Java-properties syntax with HiPS vocabulary, keys kept in order and
//! unknown keys preserved.

use crate::error::{Error, Result};

/// The file name Tessera writes (HATS v1.0). The legacy `properties` copy is read as a
/// fallback but never written, so a HiPS `properties` can share the directory.
pub const FILE_NAME: &str = "hats.properties";
/// The legacy name hats < 0.5 used, read when [`FILE_NAME`] is absent.
pub const LEGACY_FILE_NAME: &str = "properties";

/// Ordered key/value pairs of a `hats.properties` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(String, String)>,
}

impl Properties {
    /// Empty properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the file text. Accepts `key=value`, `key = value` and `key:value`; `#`/`!`
    /// comments and blank lines are skipped; backslash line continuations are joined.
    pub fn parse(text: &str, file: &str) -> Result<Properties> {
        let mut entries: Vec<(String, String)> = Vec::new();
        let mut pending = String::new();
        for (i, raw) in text.lines().enumerate() {
            let line = if pending.is_empty() {
                raw.trim_start().to_string()
            } else {
                format!("{pending}{}", raw.trim_start())
            };
            if line.ends_with('\\') && !line.ends_with("\\\\") {
                pending = line[..line.len() - 1].to_string();
                continue;
            }
            pending.clear();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let sep = line.find(['=', ':']).ok_or_else(|| Error::Malformed {
                file: file.to_string(),
                message: format!("line {}: expected `key=value`, found `{line}`", i + 1),
            })?;
            let key = line[..sep].trim().to_string();
            let value = line[sep + 1..].trim().to_string();
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(e) => e.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(Properties { entries })
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (kept in place if present, appended otherwise).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// `hats_nrows` as a number.
    pub fn nrows(&self) -> Option<u64> {
        self.get("hats_nrows").and_then(|v| v.parse().ok())
    }

    /// Renders the file: `#HATS catalog`, then `key=value` lines.
    pub fn render(&self) -> String {
        let mut s = String::from("#HATS catalog\n");
        for (k, v) in &self.entries {
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hats_import_output_and_keeps_unknown_keys() {
        let text = "#HATS catalog\nobs_collection=sample\ndataproduct_type=object\nhats_nrows=5000\nhats_col_ra = ra\nx_custom:42\nhats_creation_date=2026-11-21T07:45UTC\n";
        let p = Properties::parse(text, "hats.properties").unwrap();
        assert_eq!(p.get("hats_col_ra"), Some("ra"));
        assert_eq!(p.get("x_custom"), Some("42"));
        assert_eq!(p.get("hats_creation_date"), Some("2026-11-21T07:45UTC"));
        assert_eq!(p.nrows(), Some(5000));
        let again = Properties::parse(&p.render(), "x").unwrap();
        assert_eq!(again, p);
        assert!(
            p.render()
                .starts_with("#HATS catalog\nobs_collection=sample\n")
        );
    }

    #[test]
    fn malformed_line_is_named() {
        let e = Properties::parse("#HATS\nok=1\nnonsense\n", "hats.properties").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
    }
}
