use tessera_loader::ReadOptions;
use tessera_storage::StoreOptions;

use crate::common::*;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_value_names_file_line_and_column_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,ra,dec\n");
    for i in 0..100 {
        text.push_str(&format!("{i},{}.5,10\n", i));
    }
    text.push_str("100,12.x,10\n");
    let csv = write(dir.path(), "bad.csv", &text);
    let target = dir.path().join("root/s/t");
    let e = tessera_loader::load(&small_load(&csv, target.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.csv: line 102, column ra"), "{e}");
    assert!(e.contains("found `12.x`"), "{e}");
    assert!(
        !target.exists(),
        "a failed first load must leave no catalog"
    );
    assert!(staging_dirs(target.parent().unwrap()).is_empty());
}

#[test]
fn failed_reload_leaves_the_previous_version_intact() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    write_sky_csv(&good, 10_000, 3);
    let target = dir.path().join("root/s/t");
    load(&small_load(&good, target.to_str().unwrap()));
    let cat = open(target.to_str().unwrap(), &StoreOptions::default());
    let (src, cols) = source_digest(std::slice::from_ref(&good), None, &ReadOptions::default());
    let before = catalog_digest(&cat, &cols);
    assert_eq!(before, src);

    let bad = write(
        dir.path(),
        "bad.csv",
        "id,ra,dec,mag,name,flag\n1,10,95,1,x,true\n",
    );
    let e = tessera_loader::load(&small_load(&bad, target.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.csv: line 2, column dec") && e.contains("outside [-90, 90]"),
        "{e}"
    );
    let cat = open(target.to_str().unwrap(), &StoreOptions::default());
    assert_eq!(catalog_digest(&cat, &cols), before);
    assert!(staging_dirs(target.parent().unwrap()).is_empty());
}

#[test]
fn skip_bad_rows_reports_each_row_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "some.csv",
        "id,ra,dec\n1,10,10\n2,nan,10\n3,11,x\n4,12,-91\n5,13,11\n",
    );
    let target = dir.path().join("root/s/t");
    let mut opts = small_load(&csv, target.to_str().unwrap());
    opts.read.column_types = vec![("dec".into(), arrow::datatypes::DataType::Float64)];
    opts.skip_bad_rows = 3;
    let r = load(&opts);
    assert_eq!(r.rows, 2);
    let places: Vec<String> = r
        .bad_rows
        .iter()
        .map(|b| format!("{} {:?}", b.place, b.column))
        .collect();
    assert_eq!(
        places,
        vec![
            "line 4 Some(\"dec\")",
            "line 3 Some(\"ra\")",
            "line 5 Some(\"dec\")"
        ],
        "pass 1 reads only positions, so the unparsable dec (line 4) is reported by the reader first"
    );
    opts.skip_bad_rows = 2;
    let e = tessera_loader::load(&opts).unwrap_err().to_string();
    assert!(e.contains("--skip-bad-rows"), "{e}");
    // The earlier catalog is still there and still holds the 2 good rows.
    assert_eq!(
        open(target.to_str().unwrap(), &StoreOptions::default()).nrows(),
        Some(2)
    );
}

#[test]
fn missing_coordinates_and_oversized_cells_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "nocoord.csv", "id,x,y\n1,2,3\n");
    let e = tessera_loader::load(&small_load(
        &csv,
        dir.path().join("r/s/t").to_str().unwrap(),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cannot find the RA column") && e.contains("--ra"),
        "{e}"
    );

    let mut text = String::from("id,ra,dec\n");
    for i in 0..50 {
        text.push_str(&format!("{i},10.000001,20.000001\n"));
    }
    let csv = write(dir.path(), "dense.csv", &text);
    let mut opts = small_load(&csv, dir.path().join("r/s/d").to_str().unwrap());
    opts.plan.threshold = 10;
    let e = tessera_loader::load(&opts).unwrap_err().to_string();
    assert!(
        e.contains("alone holds 50 rows") && e.contains("--highest-order"),
        "{e}"
    );

    let opts = small_load(
        &dir.path().join("absent.csv"),
        dir.path().join("r/s/a").to_str().unwrap(),
    );
    let e = tessera_loader::load(&opts).unwrap_err().to_string();
    assert!(e.contains("absent.csv does not exist"), "{e}");
}
