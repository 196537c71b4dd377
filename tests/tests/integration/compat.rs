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
        assert!(
            json.contains("\"missing_in_lsdb\": 0") && json.contains("\"extra_in_lsdb\": 0"),
            "{json}"
        );
    }
}

#[test]
fn hip2_cones_match_the_reference_counts() {
    // DATA.md: pole (0, +90, r=2°) → 31 hip2 rows; RA wrap (359.9, 0, r=2°) → 25 rows.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("root/hipparcos/hip2");
    let mut opts = small_load(
        &datasets().join("hipparcos/hip2.dat.zst"),
        target.to_str().unwrap(),
    );
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
            got.add(&RecordBatch::try_new(schema.clone(), arrays).unwrap())
                .unwrap();
        }
    }
    assert_eq!(got.digest(), want.digest());
}

/// The same stars written by astropy as a FITS binary table and as a BINARY2 VOTable load into
/// catalogs with identical values, keep their units/UCDs/descriptions, and pass the hats
/// validator.
#[test]
fn fits_and_votable_written_by_astropy_load_to_identical_catalogs() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, numpy as np
from astropy.table import Table
from astropy.io.votable import from_table
rng = np.random.default_rng(4)
n = 20000
t = Table()
t["source_id"] = np.arange(n, dtype=np.int64) * 7 + 3
t["RA_ICRS"] = rng.uniform(0, 360, n)
t["DE_ICRS"] = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
t["Gmag"] = rng.uniform(3, 21, n).astype(np.float32)
t["nobs"] = rng.integers(0, 500, n).astype(np.int32)
t["RA_ICRS"].unit = "deg"; t["DE_ICRS"].unit = "deg"; t["Gmag"].unit = "mag"
t["RA_ICRS"].description = "Right ascension (ICRS)"
t["DE_ICRS"].description = "Declination (ICRS)"
t["Gmag"].description = "G magnitude"
from astropy.io import fits
hdu = fits.table_to_hdu(t)
for i, name in enumerate(t.colnames, start=1):
    if t[name].description:
        hdu.header[f"TCOMM{i}"] = t[name].description
hdu.header["TUCD2"] = "pos.eq.ra;meta.main"
hdu.header["TUCD3"] = "pos.eq.dec;meta.main"
fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(sys.argv[1], overwrite=True)
vt = from_table(t)
f = vt.get_first_table()
f.get_field_by_id("RA_ICRS").ucd = "pos.eq.ra;meta.main"
f.get_field_by_id("DE_ICRS").ucd = "pos.eq.dec;meta.main"
vt.set_all_tables_format("binary2")
vt.to_xml(sys.argv[2])
"#;
    let (fits, vot) = (dir.path().join("stars.fits"), dir.path().join("stars.vot"));
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&fits)
        .arg(&vot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cols: Vec<String> = ["source_id", "RA_ICRS", "DE_ICRS", "Gmag", "nobs"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut digests = Vec::new();
    for (input, name) in [(&fits, "fits"), (&vot, "vot")] {
        let target = dir.path().join(format!("root/x/{name}"));
        let mut opts = small_load(input, target.to_str().unwrap());
        opts.plan.threshold = 2_000;
        let r = load(&opts);
        assert_eq!(r.rows, 20_000);
        assert_eq!(r.ra_dec, ("RA_ICRS".to_string(), "DE_ICRS".to_string()));
        let cat = open(target.to_str().unwrap(), &StoreOptions::default());
        let g =
            tessera_storage::columns::ColumnMeta::of(cat.schema.field_with_name("Gmag").unwrap());
        assert_eq!(g.unit.as_deref(), Some("mag"), "{name}");
        assert_eq!(g.description.as_deref(), Some("G magnitude"), "{name}");
        let ra = tessera_storage::columns::ColumnMeta::of(
            cat.schema.field_with_name("RA_ICRS").unwrap(),
        );
        assert_eq!(ra.ucd.as_deref(), Some("pos.eq.ra;meta.main"), "{name}");
        digests.push(catalog_digest(&cat, &cols));
        let (ok, json, err) = hats_compat(&["validate", target.to_str().unwrap()]);
        assert!(ok, "{name}: {json}\n{err}");
    }
    assert_eq!(digests[0], digests[1], "FITS and VOTable catalogs differ");
    assert!(digests[0].starts_with("20000:"));
}
