//! Spatial queries against brute force on random data (issue 4): cones (the small-cone fast
//! path and the DataFusion path), DISTANCE bounds, polygons and boxes, with centres drawn
//! around both poles, across RA 0/360 and in a dense clump, radii from milli-arcseconds to
//! 60°; and cones on the real Gaia DR3 bright stars (482k). The random catalog is split into
//! many partitions of mixed orders, small row groups and small pages, so that partition,
//! row-group and page pruning are all exercised.

use std::sync::OnceLock;

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use proptest::prelude::*;
use tessera_engine::{Engine, EngineOptions, Limits, Location};

use crate::common::{load, small_load, write_sky_csv};

/// 60k random stars (uniform, a clump at (45, 20), caps at both poles, a band across RA 0)
/// loaded into `sky.stars`: ~5000-row partitions of orders up to 8, 2048-row row groups,
/// 256-row pages.
fn root() -> &'static std::path::Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("sky.csv");
        write_sky_csv(&csv, 60_000, 404);
        let cat = dir.path().join("sky/stars");
        let mut opts = small_load(&csv, cat.to_str().unwrap());
        opts.leaf.row_group_rows = 2048;
        opts.leaf.page_rows = 256;
        std::thread::spawn(move || load(&opts)).join().unwrap();
        std::fs::remove_file(&csv).unwrap();
        dir
    })
    .path()
}

fn unit(ra: f64, dec: f64) -> [f64; 3] {
    let (r, d) = (ra.to_radians(), dec.to_radians());
    [d.cos() * r.cos(), d.cos() * r.sin(), d.sin()]
}

struct Sky {
    fast: Engine,
    general: Engine,
    /// (id, ra, dec) of every star.
    stars: Vec<(i64, f64, f64)>,
}

fn sky(rt: &tokio::runtime::Runtime) -> Sky {
    rt.block_on(async {
        let fast = Engine::open(Location::local(root()).unwrap())
            .await
            .unwrap();
        let general = Engine::open_with(
            Location::local(root()).unwrap(),
            &EngineOptions {
                general_path_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let (b, _) = general
            .query("SELECT id, ra, dec FROM sky.stars", &Limits::default())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut stars = Vec::new();
        for b in &b {
            let id = b.column(0).as_primitive::<Int64Type>();
            let ra = b.column(1).as_primitive::<Float64Type>();
            let dec = b.column(2).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                stars.push((id.value(i), ra.value(i), dec.value(i)));
            }
        }
        assert_eq!(stars.len(), 60_000);
        Sky {
            fast,
            general,
            stars,
        }
    })
}

async fn ids(e: &Engine, q: &str) -> Vec<i64> {
    let (b, _) = e
        .query(q, &Limits::default())
        .await
        .unwrap_or_else(|err| panic!("{q}: {err}"))
        .collect()
        .await
        .unwrap_or_else(|err| panic!("{q}: {err}"));
    let mut v: Vec<i64> = b
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_primitive::<Int64Type>();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Ids in `got` but not `want` or the reverse, except stars within 1e-9° of the edge, where
/// the engine's haversine and this test's dot product may round differently.
fn check_cone(sky: &Sky, q: &str, got: &[i64], ra: f64, dec: f64, r: f64) {
    let c = unit(ra, dec);
    let want: Vec<i64> = sky
        .stars
        .iter()
        .filter(|s| {
            let p = unit(s.1, s.2);
            p[0] * c[0] + p[1] * c[1] + p[2] * c[2] >= r.to_radians().cos()
        })
        .map(|s| s.0)
        .collect();
    let mut want = want;
    want.sort_unstable();
    for h in got
        .iter()
        .filter(|h| want.binary_search(h).is_err())
        .chain(want.iter().filter(|h| got.binary_search(h).is_err()))
    {
        let s = sky.stars.iter().find(|s| s.0 == *h).unwrap();
        let p = unit(s.1, s.2);
        let d = (p[0] * c[0] + p[1] * c[1] + p[2] * c[2])
            .clamp(-1.0, 1.0)
            .acos()
            .to_degrees();
        assert!(
            (d - r).abs() < 1e-9,
            "{q}: star {h} at {d}° from the centre is {}",
            if got.contains(h) {
                "returned but outside"
            } else {
                "inside but missing"
            }
        );
    }
}

/// Centres: anywhere, near a pole, on the RA seam, in the clump, or on a star.
fn centre() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        (0.0..360.0f64, -1.0..1.0f64).prop_map(|(ra, z)| (ra, z.asin().to_degrees())),
        (0.0..360.0f64, 85.0..=90.0f64),
        (0.0..360.0f64, -90.0..=-85.0f64),
        (prop_oneof![0.0..0.5f64, 359.5..360.0f64], -4.0..4.0f64),
        (43.0..47.0f64, 18.0..22.0f64),
    ]
}

/// Radii from 3.6 milliarcseconds to 60°, log-uniform.
fn radius() -> impl Strategy<Value = f64> {
    (-6.0..(60f64).log10()).prop_map(|x| 10f64.powf(x))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Cones, in the CONTAINS and DISTANCE forms, on both paths, equal brute force.
    #[test]
    fn cones_equal_brute_force((ra, dec) in centre(), r in radius(), form in 0..3u8) {
        static STATE: OnceLock<(tokio::runtime::Runtime, Sky)> = OnceLock::new();
        let (rt, sky) = STATE.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let s = sky(&rt);
            (rt, s)
        });
        let q = match form {
            0 => format!("SELECT id FROM sky.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r}))"),
            1 => format!("SELECT id FROM sky.stars WHERE INTERSECTS(CIRCLE({ra}, {dec}, {r}), POINT(ra, dec)) = 1"),
            _ => format!("SELECT id FROM sky.stars WHERE DISTANCE(POINT(ra, dec), POINT({ra}, {dec})) <= {r}"),
        };
        let (a, b) = rt.block_on(async { (ids(&sky.fast, &q).await, ids(&sky.general, &q).await) });
        check_cone(sky, &q, &a, ra, dec, r);
        check_cone(sky, &q, &b, ra, dec, r);
    }

    /// Polygons (either winding) and boxes: the pruned answer equals the same kernel over the
    /// whole table (the spatial filter hidden from pruning behind an OR that is never true).
    #[test]
    fn polygons_and_boxes_equal_the_unpruned_scan(
        (ra, dec) in centre(),
        h in radius().prop_map(|r| r.min(20.0)),
        reversed in any::<bool>(),
        as_box in any::<bool>(),
    ) {
        static STATE: OnceLock<(tokio::runtime::Runtime, Sky)> = OnceLock::new();
        let (rt, sky) = STATE.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let s = sky(&rt);
            (rt, s)
        });
        let (lo, hi) = ((dec - h).max(-89.9), (dec + h).min(89.9));
        prop_assume!(hi - lo > 1e-6);
        let (w0, w1) = (ra - h, ra + h);
        let region = if as_box {
            format!("BOX({ra}, {}, {}, {})", (lo + hi) / 2.0, 2.0 * h, hi - lo)
        } else if reversed {
            format!("POLYGON({w0}, {hi}, {w1}, {hi}, {w1}, {lo}, {w0}, {lo})")
        } else {
            format!("POLYGON({w0}, {lo}, {w1}, {lo}, {w1}, {hi}, {w0}, {hi})")
        };
        let q = format!("SELECT id FROM sky.stars WHERE 1 = CONTAINS(POINT(ra, dec), {region})");
        let unpruned = format!("{q} OR id < 0");
        let (a, b) = rt.block_on(async { (ids(&sky.fast, &q).await, ids(&sky.general, &unpruned).await) });
        prop_assert_eq!(a, b, "{}", q);
    }
}

/// A small cone reads a small fraction of the catalog: shown by EXPLAIN ANALYZE on the
/// DataFusion path (partitions read, row groups and pages pruned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_cones_read_a_small_fraction() {
    let e = Engine::open(Location::local(root()).unwrap())
        .await
        .unwrap();
    let parts = std::fs::read_to_string(root().join("sky/stars/partition_info.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert!(parts >= 12, "{parts} partitions");
    let q = "SELECT id FROM sky.stars WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(45.1, 20.2, 0.05))";
    let plan = e.explain_analyze(q, &Limits::default()).await.unwrap();
    let scan = plan
        .lines()
        .find(|l| l.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan in\n{plan}"));
    let mut leaves: Vec<&str> = scan
        .split(['[', ',', ' '])
        .filter(|s| s.contains("Npix="))
        .map(|s| s.split(':').next().unwrap())
        .collect();
    leaves.sort();
    leaves.dedup();
    assert!(
        !leaves.is_empty() && leaves.len() <= 2,
        "{} of {parts} partitions read: {scan}",
        leaves.len()
    );
    // Within them, row groups and pages pruned by `_healpix_29` statistics and page index.
    // `name=2.05 K total → 512 matched`
    let counts = |name: &str| -> (f64, f64) {
        let text = scan
            .split(&format!("{name}="))
            .nth(1)
            .unwrap_or_else(|| panic!("no {name}: {scan}"));
        let num = |s: &str| -> f64 {
            let s = s.trim();
            let (v, k) = match s.split_once(' ') {
                Some((v, "K")) => (v, 1e3),
                Some((v, "M")) => (v, 1e6),
                _ => (s, 1.0),
            };
            v.parse::<f64>().unwrap_or_else(|_| panic!("{name}: {s:?}")) * k
        };
        let (total, rest) = text.split_once(" total → ").unwrap();
        let matched = rest.split(" matched").next().unwrap();
        (num(total), num(matched))
    };
    let (groups, groups_kept) = counts("row_groups_pruned_statistics");
    let (rows, rows_kept) = counts("page_index_rows_pruned");
    assert!(
        groups_kept < groups && rows_kept < rows,
        "row groups {groups_kept}/{groups} and rows {rows_kept}/{rows} kept: {scan}"
    );
}

/// Gaia DR3 bright stars (482,176 rows, DATA.md §2.2; fetched from PyPI by
/// `tools/fetch-datasets gaia-bright`) loaded into a temp root as `gaia.gaia_bright`, with
/// Hipparcos beside it as `hipparcos.hip2` (for the crossmatch test).
pub(crate) fn gaia_root() -> &'static std::path::Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let repo = crate::common::repo_root();
        // The script needs pip: the project venv's.
        let venv_bin = crate::common::python().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new(repo.join("tools/fetch-datasets"))
            .arg("gaia-bright")
            .env("PATH", path)
            .output()
            .expect("running tools/fetch-datasets gaia-bright");
        assert!(
            out.status.success(),
            "tools/fetch-datasets gaia-bright: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let dir = tempfile::tempdir().unwrap();
        let cat = dir.path().join("gaia/gaia_bright");
        let mut opts = small_load(&csv, cat.to_str().unwrap());
        opts.plan.threshold = 30_000;
        opts.highest_order = 7;
        opts.read.column_types = vec![("source_id".into(), arrow::datatypes::DataType::Int64)];
        std::thread::spawn(move || load(&opts)).join().unwrap();
        let datasets = crate::common::datasets();
        let hip = dir.path().join("hipparcos/hip2");
        let mut opts = small_load(
            &datasets.join("hipparcos/hip2.dat.zst"),
            hip.to_str().unwrap(),
        );
        opts.format = Some(tessera_loader::Format::Cds);
        opts.read.readme = Some(datasets.join("hipparcos/ReadMe"));
        opts.plan.threshold = 20_000;
        opts.highest_order = 7;
        std::thread::spawn(move || load(&opts)).join().unwrap();
        dir
    })
    .path()
}

/// Cones on real, clustered data: Gaia-bright, both paths, equal brute force — at both
/// poles, on the RA seam, on bright stars and at random places, from 1″ to 10°.
#[test]
fn gaia_bright_cones_equal_brute_force() {
    use rand::{Rng, SeedableRng};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = gaia_root();
    let (fast, general, stars) = rt.block_on(async {
        let fast = Engine::open(Location::local(root).unwrap()).await.unwrap();
        let general = Engine::open_with(
            Location::local(root).unwrap(),
            &EngineOptions {
                general_path_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let (b, _) = general
            .query(
                "SELECT source_id, ra, dec FROM gaia.gaia_bright",
                &Limits::default(),
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut stars = Vec::new();
        for b in &b {
            let id = b.column(0).as_primitive::<Int64Type>();
            let ra = b.column(1).as_primitive::<Float64Type>();
            let dec = b.column(2).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                stars.push((id.value(i), ra.value(i), dec.value(i)));
            }
        }
        (fast, general, stars)
    });
    assert_eq!(stars.len(), 482_176);
    let sky = Sky {
        fast,
        general,
        stars,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(2016);
    let mut centres = vec![(0.0, 90.0), (200.0, -90.0), (0.0, 0.0), (359.999, -30.0)];
    for _ in 0..12 {
        let s = sky.stars[rng.random_range(0..sky.stars.len())];
        centres.push((s.1, s.2));
        centres.push((
            rng.random_range(0.0..360.0),
            rng.random_range(-1.0f64..1.0).asin().to_degrees(),
        ));
    }
    let radii = [1.0 / 3600.0, 2.0 / 3600.0, 1.0 / 60.0, 0.1, 1.0, 10.0];
    let before = sky.fast.fast_cone_queries();
    for (k, &(ra, dec)) in centres.iter().enumerate() {
        for (j, &r) in radii.iter().enumerate() {
            if (k + j) % 2 == 1 {
                continue;
            }
            let q = format!(
                "SELECT source_id FROM gaia.gaia_bright WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))"
            );
            let (a, b) =
                rt.block_on(async { (ids(&sky.fast, &q).await, ids(&sky.general, &q).await) });
            check_cone(&sky, &q, &a, ra, dec, r);
            check_cone(&sky, &q, &b, ra, dec, r);
        }
    }
    assert!(sky.fast.fast_cone_queries() - before >= 40);
    // Polygons and boxes on the same centres: the pruned answer equals the unpruned scan.
    for (k, &(ra, dec)) in centres.iter().enumerate() {
        let h = [0.01, 0.3, 2.0][k % 3];
        let (lo, hi) = ((dec - h).max(-89.9), (dec + h).min(89.9));
        if hi - lo < 1e-6 {
            continue;
        }
        let regions = [
            format!("POLYGON({}, {lo}, {}, {lo}, {}, {hi})", ra - h, ra + h, ra),
            format!("BOX({ra}, {}, {}, {})", (lo + hi) / 2.0, 2.0 * h, hi - lo),
        ];
        for region in regions {
            let q = format!(
                "SELECT source_id FROM gaia.gaia_bright WHERE 1 = CONTAINS(POINT(ra, dec), {region})"
            );
            let unpruned = format!("{q} OR source_id = 0");
            let (a, b) = rt.block_on(async {
                (
                    ids(&sky.general, &q).await,
                    ids(&sky.general, &unpruned).await,
                )
            });
            assert_eq!(a, b, "{q}");
        }
    }
}
