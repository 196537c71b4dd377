use arrow::array::{AsArray, Float64Array, Int32Array, Int64Array};
use arrow::datatypes::{Float64Type, Int64Type};
use tessera_loader::{Format, ReadOptions};
use tessera_storage::columns::ColumnMeta;
use tessera_storage::{Location, StoreOptions, list_catalogs};

use crate::common::*;

#[test]
fn hip2_round_trips_every_value_with_units_and_converted_positions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let input = datasets().join("hipparcos/hip2.dat.zst");
    let read = ReadOptions {
        readme: Some(datasets().join("hipparcos/ReadMe")),
        ..Default::default()
    };
    let mut opts = small_load(&input, root.join("hipparcos/hip2").to_str().unwrap());
    opts.format = Some(Format::Cds);
    opts.read = read.clone();
    opts.plan.threshold = 20_000;
    opts.highest_order = 7;
    let report = load(&opts);
    assert_eq!(report.rows, 117_955);
    assert_eq!(report.ra_dec, ("ra".to_string(), "dec".to_string()));

    let cat = open(
        root.join("hipparcos/hip2").to_str().unwrap(),
        &StoreOptions::default(),
    );
    assert_eq!(cat.nrows(), Some(117_955));
    assert_eq!(cat.properties.get("hats_col_ra"), Some("ra"));
    // The legacy copy for hats < 0.5 readers is byte-identical.
    let dir_cat = root.join("hipparcos/hip2");
    assert_eq!(
        std::fs::read(dir_cat.join("properties")).unwrap(),
        std::fs::read(dir_cat.join("hats.properties")).unwrap()
    );
    // Every value of every input column preserved.
    let (src, cols) = source_digest(&opts.inputs, opts.format, &read);
    assert_eq!(catalog_digest(&cat, &cols), src);
    assert!(src.starts_with("117955:"));
    // Column metadata from the ReadMe travels into the catalog.
    let plx = ColumnMeta::of(cat.schema.field_with_name("Plx").unwrap());
    assert_eq!(plx.unit.as_deref(), Some("mas"));
    assert!(plx.description.unwrap().to_lowercase().contains("parallax"));
    let ra = ColumnMeta::of(cat.schema.field_with_name("ra").unwrap());
    assert_eq!(ra.unit.as_deref(), Some("deg"));
    assert_eq!(ra.ucd.as_deref(), Some("pos.eq.ra;meta.main"));
    // Radians became degrees: Sirius (HIP 32349) at RA 101.28854, Dec -16.71314 (DATA.md).
    let mut found = false;
    for p in &cat.partitions {
        for b in block_on(cat.read_partition(*p, Some(&["HIP", "ra", "dec", "Hpmag"]))).unwrap() {
            let hip = b
                .column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .map(|a| a.values().to_vec())
                .or_else(|| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .map(|a| a.values().iter().map(|v| *v as i32).collect())
                })
                .unwrap();
            let ra = b.column(1).as_primitive::<Float64Type>();
            let dec = b.column(2).as_primitive::<Float64Type>();
            for (i, &id) in hip.iter().enumerate() {
                if id == 32349 {
                    assert!((ra.value(i) - 101.28854).abs() < 1e-5, "{}", ra.value(i));
                    assert!((dec.value(i) + 16.71314).abs() < 1e-5, "{}", dec.value(i));
                    let hp = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
                    assert!((hp.value(i) + 1.0876).abs() < 1e-9);
                    found = true;
                }
            }
        }
    }
    assert!(found, "Sirius not found");
}

#[test]
fn synthetic_catalog_spills_under_a_small_memory_limit_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sky.csv");
    write_sky_csv(&csv, 800_000, 11);
    let target = dir.path().join("root/synth/sky");
    let mut opts = small_load(&csv, target.to_str().unwrap());
    opts.plan.threshold = 20_000;
    // 800k rows of ~60 B in memory do not fit the scatter half of this budget.
    opts.memory_limit = 280 << 20;
    opts.scratch = Some(dir.path().join("scratch"));
    let report = load(&opts);
    assert_eq!(report.rows, 800_000);
    assert!(
        report.spilled_bytes > 0,
        "expected spilling, got {report:?}"
    );
    let cat = open(target.to_str().unwrap(), &StoreOptions::default());
    let (src, cols) = source_digest(&opts.inputs, None, &ReadOptions::default());
    assert_eq!(catalog_digest(&cat, &cols), src);
    // Scratch files are gone.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("scratch"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "scratch not cleaned: {left:?}");
    // Rows inside each leaf are sorted by _healpix_29 and lie in their pixel.
    for p in &cat.partitions {
        let mut last = i64::MIN;
        for b in block_on(cat.read_partition(*p, Some(&["_healpix_29"]))).unwrap() {
            for v in b.column(0).as_primitive::<Int64Type>().values() {
                assert!(*v >= last && p.range29().contains(v));
                last = *v;
            }
        }
    }
}

#[test]
fn partitions_larger_than_memory_are_merged_from_sorted_runs() {
    // 300k rows in few big partitions under a limit that lets a writer sort only ~50k rows:
    // each partition is spilled as sorted runs and merged into its leaf.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("field.csv");
    {
        use rand::{Rng, SeedableRng};
        use std::io::Write;
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(w, "id,ra,dec,mag").unwrap();
        for i in 0..300_000 {
            // A 10° field, and magnitudes with many ties.
            let (ra, dec): (f64, f64) =
                (rng.random_range(40.0..50.0), rng.random_range(10.0..20.0));
            writeln!(
                w,
                "{i},{ra:.8},{dec:.8},{}",
                rng.random_range(0..50) as f64 / 2.0
            )
            .unwrap();
        }
    }
    let target = dir.path().join("root/synth/merged");
    let mut opts = small_load(&csv, target.to_str().unwrap());
    opts.plan.threshold = 300_000;
    opts.highest_order = 6;
    opts.memory_limit = 270 << 20;
    opts.leaf.sort_columns = vec!["mag".into()];
    opts.leaf.row_group_rows = 10_000;
    let report = load(&opts);
    assert!(report.spilled_bytes > 0);
    assert!(report.merged_partitions > 0, "{report:?}");
    let cat = open(target.to_str().unwrap(), &StoreOptions::default());
    assert_eq!(cat.properties.get("hats_cols_sort"), Some("mag"));
    let (src, cols) = source_digest(&opts.inputs, None, &ReadOptions::default());
    assert_eq!(catalog_digest(&cat, &cols), src);
    let mut biggest = 0;
    for p in &cat.partitions {
        let mut last = (i64::MIN, f64::MIN);
        let mut n = 0;
        for b in block_on(cat.read_partition(*p, Some(&["_healpix_29", "mag"]))).unwrap() {
            let h = b.column(0).as_primitive::<Int64Type>();
            let m = b.column(1).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                let key = (h.value(i), m.value(i));
                assert!(key >= last, "{p}: {key:?} after {last:?}");
                assert!(p.range29().contains(&key.0));
                last = key;
                n += 1;
            }
        }
        biggest = biggest.max(n);
    }
    assert!(
        biggest > 100_000,
        "expected big partitions, largest has {biggest} rows"
    );
    let (ok, json, err) = hats_compat(&["validate", target.to_str().unwrap()]);
    assert!(ok, "{json}\n{err}");
}

#[test]
fn memory_store_round_trip_and_catalog_listing() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("m.csv");
    write_sky_csv(&csv, 20_000, 5);
    let opts = small_load(&csv, "memory://rt/root/demo/m");
    load(&opts);
    let cat = open("memory://rt/root/demo/m", &StoreOptions::default());
    let (src, cols) = source_digest(&opts.inputs, None, &ReadOptions::default());
    assert_eq!(catalog_digest(&cat, &cols), src);
    let root = Location::parse("memory://rt/root", &StoreOptions::default()).unwrap();
    let list = block_on(list_catalogs(&root)).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].schema.as_str(), list[0].table.as_str()),
        ("demo", "m")
    );
}

#[test]
fn reloading_replaces_the_previous_version_completely() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    write_sky_csv(&a, 30_000, 1);
    write_sky_csv(&b, 8_000, 2);
    let target = dir.path().join("root/s/t");
    load(&small_load(&a, target.to_str().unwrap()));
    load(&small_load(&b, target.to_str().unwrap()));
    let cat = open(target.to_str().unwrap(), &StoreOptions::default());
    assert_eq!(cat.nrows(), Some(8_000));
    let (src, cols) = source_digest(std::slice::from_ref(&b), None, &ReadOptions::default());
    assert_eq!(catalog_digest(&cat, &cols), src);
    // No leaf of the first version survives, and no staging directory is left.
    let leaves = walk(&target.join("dataset"));
    let expected: usize = cat.partitions.len();
    assert_eq!(
        leaves.iter().filter(|p| p.ends_with(".parquet")).count(),
        expected
    );
    assert!(staging_dirs(target.parent().unwrap()).is_empty());
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}
