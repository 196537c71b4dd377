//! The data root the cases run over: `hipparcos.hip2` (the real catalogue) and the fixture
//! tables `tests/conformance/fixtures/<schema>/<table>.csv`, loaded with `tessera_loader`.
//!
//! `CONFORMANCE_ROOT=/some/dir` keeps the root there: loaded on the first run (when the
//! directory does not exist), reused as is afterwards (delete it after changing fixtures).

use std::path::{Path, PathBuf};

use tessera_loader::{Format, LoadOptions, PlanSettings, ReadOptions};

/// A loaded data root; a temporary one is deleted on drop.
#[derive(Debug)]
pub(crate) struct DataRoot {
    pub(crate) path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fixture CSVs: `(schema, table, path)`, sorted.
pub(crate) fn fixtures() -> Vec<(String, String, PathBuf)> {
    let dir = crate::golden::conformance_dir().join("fixtures");
    let mut out = Vec::new();
    for s in std::fs::read_dir(&dir).unwrap().flatten() {
        if !s.path().is_dir() {
            continue;
        }
        let schema = s.file_name().to_string_lossy().to_string();
        for t in std::fs::read_dir(s.path()).unwrap().flatten() {
            let p = t.path();
            if p.extension().is_some_and(|x| x == "csv") {
                let table = p.file_stem().unwrap().to_string_lossy().to_string();
                out.push((schema.clone(), table, p));
            }
        }
    }
    out.sort();
    out
}

fn load(opts: &LoadOptions) {
    if let Err(e) = tessera_loader::load(opts) {
        panic!("loading {} failed: {e}", opts.catalog);
    }
}

fn load_into(root: &Path) {
    let hip = root.join("hipparcos/hip2");
    load(&LoadOptions {
        inputs: vec![repo_root().join("datasets/hipparcos/hip2.dat.zst")],
        catalog: hip.to_string_lossy().to_string(),
        format: Some(Format::Cds),
        read: ReadOptions {
            readme: Some(repo_root().join("datasets/hipparcos/ReadMe")),
            ..Default::default()
        },
        plan: PlanSettings {
            threshold: 20_000,
            lowest_order: 0,
            drop_empty_siblings: true,
        },
        highest_order: 7,
        ..Default::default()
    });
    for (schema, table, csv) in fixtures() {
        load(&LoadOptions {
            inputs: vec![csv],
            catalog: root
                .join(&schema)
                .join(&table)
                .to_string_lossy()
                .to_string(),
            plan: PlanSettings {
                threshold: 5_000,
                lowest_order: 0,
                drop_empty_siblings: true,
            },
            highest_order: 6,
            ..Default::default()
        });
    }
}

/// Loads (or reuses, see the module doc) the data root. Blocking: call from a blocking thread.
pub(crate) fn build() -> DataRoot {
    if let Some(dir) = std::env::var_os("CONFORMANCE_ROOT") {
        let path = PathBuf::from(dir);
        if !path.exists() {
            let staging = path.with_extension("loading");
            let _ = std::fs::remove_dir_all(&staging);
            load_into(&staging);
            std::fs::rename(&staging, &path).unwrap();
        }
        return DataRoot { path, _temp: None };
    }
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("root");
    load_into(&path);
    DataRoot {
        path,
        _temp: Some(temp),
    }
}
