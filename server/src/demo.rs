//! The demo archive: the real Hipparcos catalogue (hip2) from `datasets/`, loaded on first run.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where the committed datasets are: `$TESSERA_DATASETS`, the source tree this binary was
/// built from, or `./datasets`.
pub fn datasets_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TESSERA_DATASETS").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets")),
        Some(PathBuf::from("datasets")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("hipparcos/hip2.dat.zst").is_file())
}

/// Builds the demo archive under `root` unless it already holds it. Returns whether it loaded.
pub fn ensure_demo(root: &Path) -> anyhow::Result<bool> {
    let target = root.join("hipparcos/hip2");
    if target.join("hats.properties").is_file() {
        return Ok(false);
    }
    let ds = datasets_dir().context(
        "cannot find datasets/hipparcos/hip2.dat.zst; run from the source tree or set TESSERA_DATASETS",
    )?;
    let input = ds.join("hipparcos/hip2.dat.zst");
    let opts = tessera_loader::LoadOptions {
        inputs: vec![input],
        catalog: target.display().to_string(),
        format: Some(tessera_loader::Format::Cds),
        read: tessera_loader::ReadOptions {
            readme: Some(ds.join("hipparcos/ReadMe")),
            ..Default::default()
        },
        plan: tessera_loader::PlanSettings {
            threshold: 20_000,
            lowest_order: 0,
            drop_empty_siblings: true,
        },
        highest_order: 7,
        leaf: tessera_storage_settings(),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let report = tessera_loader::load(&opts).context("loading the demo Hipparcos catalogue")?;
    tracing::info!(
        rows = report.rows,
        partitions = report.partitions,
        "demo archive built in {:.1} s at {}",
        t.elapsed().as_secs_f64(),
        target.display()
    );
    Ok(true)
}

fn tessera_storage_settings() -> tessera_loader::LeafSettings {
    tessera_loader::LeafSettings {
        row_group_rows: 8192,
        ..Default::default()
    }
}
