use arrow::compute::cast;
use arrow::record_batch::RecordBatch;
use tessera_loader::ReadOptions;
use tessera_loader::checksum::Checksum;
use tessera_storage::StoreOptions;

use crate::common::*;

#[test]
fn hats_validator_accepts_tessera_output_and_lsdb_cones_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sky.csv");
    write_sky_csv(&csv, 60_000, 21);
    let target = dir.path().join("root/synth/sky");
    let mut opts = small_load(&csv, target.to_str().unwrap());
    opts.plan.threshold = 4_000;
    load(&opts);
    let t = target.to_str().unwrap();
    let (ok, json, err) = hats_compat(&["validate", t]);
    assert!(ok, "validate failed: {json}\n{err}");
    assert!(json.contains("\"is_valid_catalog\": true"), "{json}");
    // Poles, the RA seam, the clump, a tiny and a huge radius (arcsec).
    for (ra, dec, r) in [
        ("0", "90", "7200"),
        ("123", "-90", "3600"),
        ("359.9", "0", "7200"),
        ("0.05", "1", "1"),
        ("45", "20", "1800"),
        ("200", "-10", "108000"),
    ] {
        let (ok, json, err) = hats_compat(&["cone", t, ra, dec, r, "--id", "id"]);
        assert!(ok, "cone ({ra}, {dec}, {r}\") failed: {json}\n{err}");
        assert!(json.contains("\"missing_in_lsdb\": 0") && json.contains("\"extra_in_lsdb\": 0"), "{json}");
    }
}

#[test]
fn hip2_cones_match_the_reference_counts() {
    // DATA.md: pole (0, +90, r=2°) → 31 hip2 rows; RA wrap (359.9, 0, r=2°) → 25 rows.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("root/hipparcos/hip2");
    let mut opts = small_load(&datasets().join("hipparcos/hip2.dat.zst"), target.to_str().unwrap());
    opts.format = Some(tessera_loader::Format::Cds);
    opts.read.readme = Some(datasets().join("hipparcos/ReadMe"));
    opts.plan.threshold = 20_000;
    load(&opts);
    let t = target.to_str().unwrap();
    let (ok, json, err) = hats_compat(&["validate", t]);
    assert!(ok, "{json}\n{err}");
    for (ra, dec, n) in [("0", "90", 31), ("359.9", "0", 25)] {
        let (ok, json, err) = hats_compat(&["cone", t, ra, dec, "7200", "--id", "HIP"]);
        assert!(ok, "{json}\n{err}");
        assert!(json.contains(&format!("\"lsdb_count\": {n},")), "{json}");
        assert!(json.contains(&format!("\"brute_count\": {n},")), "{json}");
    }
}

#[test]
fn catalogs_made_by_hats_import_read_back_with_identical_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sky.csv");
    write_sky_csv(&csv, 20_000, 8);
    let out = dir.path().join("hi");
    let (ok, json, err) = hats_compat(&[
        "import",
        csv.to_str().unwrap(),
        out.to_str().unwrap(),
        "sky",
        "--ra",
        "ra",
        "--dec",
        "dec",
        "--threshold",
        "3000",
        "--highest-order",
        "6",
    ]);
    assert!(ok, "hats-import failed: {json}\n{err}");
    let cat = open(out.join("sky").to_str().unwrap(), &StoreOptions::default());
    assert_eq!(cat.nrows(), Some(20_000));
    assert!(cat.partitions.len() > 1);
    // Compare with the CSV as Tessera reads it, casting the catalog's columns to the same
    // types (pandas may write large strings).
    let mut src = tessera_loader::source::open(&csv, None, &ReadOptions::default()).unwrap();
    let schema = src.schema();
    let cols = tessera_loader::checksum::data_columns(&schema);
    let mut want = Checksum::new(cols.clone());
    while let Some(b) = src.next_batch().unwrap() {
        want.add(&b.batch).unwrap();
    }
    let mut got = Checksum::new(cols.clone());
    let names: Vec<&str> = cols.iter().map(String::as_str).collect();
    for p in &cat.partitions {
        for b in block_on(cat.read_partition(*p, Some(&names))).unwrap() {
            let arrays = schema
                .fields()
                .iter()
                .map(|f| cast(b.column_by_name(f.name()).unwrap(), f.data_type()).unwrap())
                .collect();
            got.add(&RecordBatch::try_new(schema.clone(), arrays).unwrap()).unwrap();
        }
    }
    assert_eq!(got.digest(), want.digest());
}
