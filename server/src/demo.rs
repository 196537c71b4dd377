//! The demo archive: the real Hipparcos catalogue (hip2) and a few real FITS images from
//! `datasets/`, loaded and registered on first run.

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
    let images = ensure_demo_images(root)?;
    if target.join("hats.properties").is_file() {
        return Ok(images);
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

/// Registers the committed demo images (`datasets/images/*.fits`) in the demo root's
/// ivoa.ObsCore, once. Returns whether it registered them.
pub fn ensure_demo_images(root: &Path) -> anyhow::Result<bool> {
    if root.join(tessera_loader::obscore::REGISTRY).is_file() {
        return Ok(false);
    }
    let Some(dir) = datasets_dir()
        .map(|d| d.join("images"))
        .filter(|d| d.is_dir())
    else {
        return Ok(false);
    };
    let report = tessera_loader::images::load_images(&tessera_loader::images::ImageLoadOptions {
        inputs: vec![dir],
        root: root.to_path_buf(),
        collection: "demo".into(),
        skip_bad: false,
        calib_level: 2,
    })
    .context("registering the demo images")?;
    tracing::info!(images = report.registered, "demo images registered");
    Ok(true)
}

fn tessera_storage_settings() -> tessera_loader::LeafSettings {
    tessera_loader::LeafSettings {
        row_group_rows: 8192,
        ..Default::default()
    }
}
