//! The demo archive: the real Hipparcos catalogue (hip2) and a few real FITS images from
//! `datasets/`, loaded and registered on first run, and an image HiPS of the images at
//! `ROOT/hips/demo-images`.

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
    let images = ensure_demo_hips(root) | images;
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

/// The id of the demo image HiPS, at `ROOT/hips/demo-images`.
pub const DEMO_HIPS_ID: &str = "demo-images";

/// Builds the image HiPS of the demo images (collection `demo`) at
/// `ROOT/hips/demo-images`, once. The deepest order is fixed at 9 (M13's natural order; the
/// 0.2″ UKIDSS pixels would ask for 12: 59 deepest tiles and 145 MB instead of 5 and 47 MB),
/// which keeps the build under a second even in a debug build. A failure is logged and the
/// demo goes on without the HiPS. Returns whether it built it.
pub fn ensure_demo_hips(root: &Path) -> bool {
    let out = root.join("hips").join(DEMO_HIPS_ID);
    if out.join("properties").is_file() || !root.join(tessera_loader::obscore::REGISTRY).is_file() {
        return false;
    }
    let mut opts = tessera_loader::hips::HipsBuildOptions::new(root, "demo", &out);
    opts.order = Some(9);
    opts.title = Some("Tessera demo images (DSS M13, UKIDSS Crab, a SIP test image)".into());
    match tessera_loader::hips::build_image_hips(&opts) {
        Ok(r) => {
            tracing::info!(
                tiles = r.tiles.iter().sum::<usize>(),
                "demo image HiPS built in {:.1} s at {}",
                r.seconds,
                out.display()
            );
            true
        }
        Err(e) => {
            tracing::warn!("the demo image HiPS was not built: {e}");
            false
        }
    }
}

fn tessera_storage_settings() -> tessera_loader::LeafSettings {
    tessera_loader::LeafSettings {
        row_group_rows: 8192,
        ..Default::default()
    }
}
