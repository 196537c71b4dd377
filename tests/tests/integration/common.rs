//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tessera_loader::{LoadOptions, LoadReport, PlanSettings};
use tessera_storage::{Catalog, Location, StoreOptions};

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn datasets() -> PathBuf {
    repo_root().join("datasets")
}

/// The test venv's python (created by `tools/python-env`, which is fast when up to date).
/// Panics with instructions when it cannot be created: these tests never skip.
pub(crate) fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new(repo_root().join("tools/python-env"))
            .output()
            .expect("running tools/python-env");
        assert!(
            out.status.success(),
            "tools/python-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let venv = stdout
            .lines()
            .last()
            .expect("python-env printed nothing")
            .trim();
        PathBuf::from(venv).join("bin/python")
    })
}

/// Runs `tests/python/hats_compat.py ARGS`; returns (success, last stdout line, stderr tail).
pub(crate) fn hats_compat(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/python/hats_compat.py"))
        .args(args)
        .output()
        .expect("running hats_compat.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    (
        out.status.success(),
        stdout.lines().last().unwrap_or("").to_string(),
        tail,
    )
}

/// Writes a deterministic sky CSV: uniform stars, a dense clump, stars within 1° of both
/// poles and on both sides of RA 0/360. Columns: id, ra, dec, mag, name, flag.
pub(crate) fn write_sky_csv(path: &Path, rows: usize, seed: u64) {
    use rand::{Rng, SeedableRng};
    use std::io::Write;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let f = std::fs::File::create(path).unwrap();
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "id,ra,dec,mag,name,flag").unwrap();
    for i in 0..rows {
        let (ra, dec): (f64, f64) = match i % 10 {
            0..=5 => (
                rng.random_range(0.0..360.0),
                rng.random_range(-1.0f64..1.0).asin().to_degrees(),
            ),
            6 | 7 => (
                45.0 + rng.random_range(-2.0..2.0),
                20.0 + rng.random_range(-2.0..2.0),
            ),
            8 => (
                rng.random_range(0.0..360.0),
                if i % 20 == 8 { 89.0 } else { -89.0 } + rng.random_range(0.0..1.0),
            ),
            _ => (
                (rng.random_range(-1.0..1.0f64)).rem_euclid(360.0),
                rng.random_range(-3.0..3.0),
            ),
        };
        let dec = dec.clamp(-90.0, 90.0);
        let mag: f64 = rng.random_range(5.0..21.0);
        writeln!(
            w,
            "{i},{ra:.9},{dec:.9},{mag:.3},star {i},{}",
            if i % 3 == 0 { "true" } else { "false" }
        )
        .unwrap();
    }
}

/// Load options for a small test catalog.
pub(crate) fn small_load(input: &Path, catalog: &str) -> LoadOptions {
    LoadOptions {
        inputs: vec![input.to_path_buf()],
        catalog: catalog.to_string(),
        plan: PlanSettings {
            threshold: 5_000,
            lowest_order: 0,
            drop_empty_siblings: true,
        },
        highest_order: 8,
        ..Default::default()
    }
}

pub(crate) fn load(opts: &LoadOptions) -> LoadReport {
    tessera_loader::load(opts).unwrap_or_else(|e| panic!("load failed: {e}"))
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub(crate) fn open(url: &str, store: &StoreOptions) -> Catalog {
    let loc = Location::parse(url, store).unwrap();
    block_on(Catalog::open(&loc)).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// Checksum of the catalog over `columns`.
pub(crate) fn catalog_digest(cat: &Catalog, columns: &[String]) -> String {
    block_on(tessera_loader::checksum::catalog_checksum(
        cat,
        Some(columns.to_vec()),
    ))
    .unwrap()
    .digest()
}

/// Checksum of the input files as the loader reads them, over all their columns; returns the
/// digest and the column names.
pub(crate) fn source_digest(
    inputs: &[PathBuf],
    format: Option<tessera_loader::Format>,
    read: &tessera_loader::ReadOptions,
) -> (String, Vec<String>) {
    let mut src = tessera_loader::source::open(&inputs[0], format, read).unwrap();
    let cols = tessera_loader::checksum::data_columns(&src.schema());
    drop(src.next_batch());
    let sum = tessera_loader::checksum::source_checksum(inputs, format, read, Some(cols.clone()))
        .unwrap();
    (sum.digest(), cols)
}

/// Whether a directory holds hidden staging directories left by a load.
pub(crate) fn staging_dirs(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains("tessera-staging"))
                .collect()
        })
        .unwrap_or_default()
}
