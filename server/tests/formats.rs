//! Result formats read back by the community tools: astropy (VOTable, FITS), pyarrow
//! (VOParquet), Python's csv module (CSV) and json, through `tests/python/formats_check.py`
//! in the project venv (`tools/python-env`); `stilts votlint` on the VOTables. Every format
//! gets the same sample: every Arrow type the engine produces, nulls in every column, NaN and
//! infinities, unicode, XML/CSV/TSV special characters, duplicate column names, two batches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, LargeStringArray, ListArray, RecordBatch, StringArray,
    StringViewArray, TimestampMillisecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, TimeUnit};
use serde_json::{Value, json};
use tessera_server::formats::{self, Format, WriterOptions};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new(repo_root().join("tools/python-env"))
            .output()
            .expect("running tools/python-env");
        assert!(
            out.status.success(),
            "tools/python-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("python-env printed nothing")
                .trim(),
        )
        .join("bin/python")
    })
}

/// Runs `formats_check.py FORMAT PATH` and returns its JSON report.
fn read_back(kind: &str, path: &Path) -> Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/formats_check.py"))
        .arg(kind)
        .arg(path)
        .output()
        .expect("running formats_check.py");
    assert!(
        out.status.success(),
        "formats_check.py {kind} {} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("formats_check.py prints JSON")
}

/// `stilts votlint` on `path`: the ERROR and WARNING lines it prints (its exit code is always 0).
fn votlint(path: &Path) -> (Vec<String>, Vec<String>) {
    let out = Command::new("stilts")
        .arg("votlint")
        .arg(format!("votable={}", path.display()))
        .output()
        .expect("stilts not found: run tools/install-test-deps (Debian package `stilts`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let pick = |p: &str| {
        text.lines()
            .filter(|l| l.starts_with(p))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    (pick("ERROR"), pick("WARNING"))
}

// ---- the sample ----------------------------------------------------------------------------

/// How a column's values read back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum K {
    Bool,
    Int,
    F32,
    F64,
    Str,
    /// ISO text everywhere except Parquet (raw integers there).
    Time,
    Bin,
    List,
}

struct Col {
    name: &'static str,
    k: K,
    /// Canonical values (as formats_check.py prints them for VOTable).
    values: Vec<Value>,
    /// Parquet's view where it differs (timestamps as integers).
    raw: Option<Vec<Value>>,
}

fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn list(items: &[Option<Vec<f64>>]) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
        items.iter().map(|v| {
            v.as_ref()
                .map(|v| v.iter().map(|x| Some(*x)).collect::<Vec<_>>())
        }),
    ))
}

fn region(name: &str, xtype: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
        true,
    )
    .with_metadata(md(&[("xtype", xtype), ("unit", "deg")]))
}

const NASTY: &str = "<tag a=\"1\">&amp; 'q' ]]> x,y;\"z\"";

fn sample() -> (SchemaRef, Vec<RecordBatch>, Vec<Col>) {
    let ts = [1_709_210_096_789i64, -1, 0];
    let fields = vec![
        Field::new("flag", DataType::Boolean, true),
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true).with_metadata(md(&[
            ("unit", "mas/yr"),
            ("ucd", "pos.pm;pos.eq.ra"),
            (
                "description",
                "Proper motion <µα*> & \"friends\"\nsecond line",
            ),
            ("utype", "stc:AstroCoords.Position2D.Value2.C1"),
        ])),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("u8", DataType::UInt8, true),
        Field::new("u16", DataType::UInt16, true),
        Field::new("u32", DataType::UInt32, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("ra", DataType::Float64, true).with_metadata(md(&[
            ("unit", "deg"),
            ("ucd", "pos.eq.ra;meta.main"),
            ("description", "Right ascension (ICRS) — ünïcödé"),
        ])),
        Field::new("text", DataType::Utf8, true),
        Field::new("view", DataType::Utf8View, true),
        Field::new("large", DataType::LargeUtf8, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("d", DataType::Date32, true),
        Field::new("bytes", DataType::Binary, true),
        region("pos", "point"),
        region("circ", "circle"),
        region("poly", "polygon"),
        Field::new("i32", DataType::Int32, true),
    ];
    let schema = Arc::new(Schema::new(fields));
    let poly_a = vec![10.0, 20.0, 11.0, 20.0, 11.0, 21.0];
    let poly_b = vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
        ])),
        Arc::new(Int8Array::from(vec![Some(-128), Some(127), None, Some(0)])),
        Arc::new(Int16Array::from(vec![
            Some(1),
            Some(i16::MIN),
            None,
            Some(-5),
        ])),
        Arc::new(Int32Array::from(vec![
            Some(2),
            Some(i32::MAX),
            None,
            Some(i32::MIN),
        ])),
        Arc::new(Int64Array::from(vec![
            Some(3),
            Some(i64::MIN + 1),
            None,
            Some(9_007_199_254_740_993),
        ])),
        Arc::new(UInt8Array::from(vec![Some(255), Some(0), None, Some(7)])),
        Arc::new(UInt16Array::from(vec![Some(65535), Some(0), None, Some(1)])),
        Arc::new(UInt32Array::from(vec![
            Some(u32::MAX),
            Some(0),
            None,
            Some(1),
        ])),
        Arc::new(UInt64Array::from(vec![
            Some(i64::MAX as u64),
            Some(0),
            None,
            Some(1),
        ])),
        Arc::new(Float32Array::from(vec![
            Some(0.1),
            Some(f32::MAX),
            None,
            Some(f32::NAN),
        ])),
        Arc::new(Float64Array::from(vec![
            Some(0.1),
            Some(f64::NEG_INFINITY),
            None,
            Some(f64::NAN),
        ])),
        Arc::new(StringArray::from(vec![
            Some("plain"),
            Some(NASTY),
            None,
            Some("ünïcödé ✓ 星 🔭"),
        ])),
        Arc::new(StringViewArray::from(vec![
            Some("tab\there"),
            Some("a view string longer than twelve bytes"),
            None,
            Some("back\\slash"),
        ])),
        Arc::new(LargeStringArray::from(vec![
            Some("L"),
            Some("é"),
            None,
            Some("'quoted'"),
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(ts[0]),
            Some(ts[1]),
            None,
            Some(ts[2]),
        ])),
        Arc::new(Date32Array::from(vec![
            Some(19_782),
            Some(-1),
            None,
            Some(0),
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 1, 255][..]),
            Some(&b"abc"[..]),
            None,
            Some(&[7u8][..]),
        ])),
        list(&[
            Some(vec![10.5, -3.25]),
            Some(vec![0.0, 90.0]),
            None,
            Some(vec![359.9, -89.9]),
        ]),
        list(&[
            Some(vec![1.0, 2.0, 0.5]),
            Some(vec![0.0, -90.0, 180.0]),
            None,
            Some(vec![3.0, 4.0, 1e-9]),
        ]),
        list(&[
            Some(poly_a.clone()),
            Some(poly_b.clone()),
            None,
            Some(poly_a.clone()),
        ]),
        Arc::new(Int32Array::from(vec![None, Some(-1), None, Some(42)])),
    ];
    let all = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let batches = vec![all.slice(0, 1), all.slice(1, 0), all.slice(1, 3)];

    let f = |v: f64| {
        if v.is_nan() {
            json!("NaN")
        } else if v.is_infinite() {
            json!(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            json!(v)
        }
    };
    let n = Value::Null;
    let lst = |v: &[f64]| Value::Array(v.iter().map(|x| f(*x)).collect());
    let ints = |v: [Option<i64>; 4]| {
        v.iter()
            .map(|x| x.map_or(Value::Null, |x| json!(x)))
            .collect()
    };
    let strs = |v: [Option<&str>; 4]| {
        v.iter()
            .map(|x| x.map_or(Value::Null, |x| json!(x)))
            .collect()
    };
    let cols = vec![
        Col {
            name: "flag",
            k: K::Bool,
            values: vec![json!(true), json!(false), n.clone(), json!(true)],
            raw: None,
        },
        Col {
            name: "i8",
            k: K::Int,
            values: ints([Some(-128), Some(127), None, Some(0)]),
            raw: None,
        },
        Col {
            name: "i16",
            k: K::Int,
            values: ints([Some(1), Some(i16::MIN.into()), None, Some(-5)]),
            raw: None,
        },
        Col {
            name: "i32",
            k: K::Int,
            values: ints([Some(2), Some(i32::MAX.into()), None, Some(i32::MIN.into())]),
            raw: None,
        },
        Col {
            name: "i64",
            k: K::Int,
            values: ints([
                Some(3),
                Some(i64::MIN + 1),
                None,
                Some(9_007_199_254_740_993),
            ]),
            raw: None,
        },
        Col {
            name: "u8",
            k: K::Int,
            values: ints([Some(255), Some(0), None, Some(7)]),
            raw: None,
        },
        Col {
            name: "u16",
            k: K::Int,
            values: ints([Some(65535), Some(0), None, Some(1)]),
            raw: None,
        },
        Col {
            name: "u32",
            k: K::Int,
            values: ints([Some(u32::MAX.into()), Some(0), None, Some(1)]),
            raw: None,
        },
        Col {
            name: "u64",
            k: K::Int,
            values: ints([Some(i64::MAX), Some(0), None, Some(1)]),
            raw: None,
        },
        Col {
            name: "f32",
            k: K::F32,
            values: vec![f(0.1f32 as f64), f(f32::MAX as f64), n.clone(), f(f64::NAN)],
            raw: None,
        },
        Col {
            name: "ra",
            k: K::F64,
            values: vec![f(0.1), f(f64::NEG_INFINITY), n.clone(), f(f64::NAN)],
            raw: None,
        },
        Col {
            name: "text",
            k: K::Str,
            values: strs([Some("plain"), Some(NASTY), None, Some("ünïcödé ✓ 星 🔭")]),
            raw: None,
        },
        Col {
            name: "view",
            k: K::Str,
            values: strs([
                Some("tab\there"),
                Some("a view string longer than twelve bytes"),
                None,
                Some("back\\slash"),
            ]),
            raw: None,
        },
        Col {
            name: "large",
            k: K::Str,
            values: strs([Some("L"), Some("é"), None, Some("'quoted'")]),
            raw: None,
        },
        Col {
            name: "t",
            k: K::Time,
            values: strs([
                Some("2024-02-29T12:34:56.789"),
                Some("1969-12-31T23:59:59.999"),
                None,
                Some("1970-01-01T00:00:00.000"),
            ]),
            raw: Some(ints([Some(ts[0]), Some(ts[1]), None, Some(ts[2])])),
        },
        Col {
            name: "d",
            k: K::Time,
            values: strs([
                Some("2024-02-29"),
                Some("1969-12-31"),
                None,
                Some("1970-01-01"),
            ]),
            raw: Some(ints([Some(19_782), Some(-1), None, Some(0)])),
        },
        Col {
            name: "bytes",
            k: K::Bin,
            values: vec![
                json!([0, 1, 255]),
                json!([97, 98, 99]),
                n.clone(),
                json!([7]),
            ],
            raw: None,
        },
        Col {
            name: "pos",
            k: K::List,
            values: vec![
                lst(&[10.5, -3.25]),
                lst(&[0.0, 90.0]),
                n.clone(),
                lst(&[359.9, -89.9]),
            ],
            raw: None,
        },
        Col {
            name: "circ",
            k: K::List,
            values: vec![
                lst(&[1.0, 2.0, 0.5]),
                lst(&[0.0, -90.0, 180.0]),
                n.clone(),
                lst(&[3.0, 4.0, 1e-9]),
            ],
            raw: None,
        },
        Col {
            name: "poly",
            k: K::List,
            values: vec![lst(&poly_a), lst(&poly_b), n.clone(), lst(&poly_a)],
            raw: None,
        },
        Col {
            name: "i32_2",
            k: K::Int,
            values: ints([None, Some(-1), None, Some(42)]),
            raw: None,
        },
    ];
    (schema, batches, cols)
}

// ---- comparison ----------------------------------------------------------------------------

fn as_f32(v: &Value) -> Value {
    match v {
        Value::Number(x) => json!(x.as_f64().unwrap() as f32 as f64),
        other => other.clone(),
    }
}

/// A CSV/TSV field read back as the canonical value of its column.
fn from_text(k: K, s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    let num = |s: &str| match s {
        "NaN" | "+Inf" | "-Inf" => json!(s),
        _ => json!(
            s.parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number: {s:?}"))
        ),
    };
    match k {
        K::Bool => json!(match s {
            "true" => true,
            "false" => false,
            _ => panic!("not a boolean: {s:?}"),
        }),
        K::Int => json!(s.parse::<i64>().unwrap()),
        K::F32 | K::F64 => num(s),
        K::Str | K::Time => json!(s),
        K::Bin => Value::Array(
            (0..s.len())
                .step_by(2)
                .map(|i| json!(u8::from_str_radix(&s[i..i + 2], 16).unwrap()))
                .collect(),
        ),
        K::List => Value::Array(s.split(' ').map(num).collect()),
    }
}

fn strip_trailing(v: &Value, pad: &Value) -> Value {
    match v {
        Value::Array(a) => {
            let mut a = a.clone();
            while a.last() == Some(pad) {
                a.pop();
            }
            Value::Array(a)
        }
        other => other.clone(),
    }
}

/// Checks every value of a read-back report against the sample; `fmt` selects the format's
/// known, documented differences.
fn compare(fmt: &str, got: &Value, cols: &[Col]) {
    let names: Vec<&str> = got["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let want: Vec<&str> = cols.iter().map(|c| c.name).collect();
    assert_eq!(names, want, "{fmt}: column names");
    let rows = got["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{fmt}: row count");
    for (r, row) in rows.iter().enumerate() {
        for (c, col) in cols.iter().enumerate() {
            let mut e = match (&col.raw, fmt) {
                (Some(raw), "parquet") => raw[r].clone(),
                _ => col.values[r].clone(),
            };
            let mut a = row[c].clone();
            if matches!(fmt, "csv" | "tsv") {
                a = from_text(col.k, a.as_str().unwrap());
            }
            match fmt {
                "json" => {
                    e = match e {
                        Value::String(_) if col.k != K::Str && col.k != K::Time => Value::Null,
                        Value::Array(v) if col.k == K::List => Value::Array(
                            v.into_iter()
                                .map(|x| if x.is_string() { Value::Null } else { x })
                                .collect(),
                        ),
                        other => other,
                    };
                    if col.k == K::Bin {
                        a = a.as_str().map_or(Value::Null, |s| from_text(K::Bin, s));
                    }
                }
                "fits" => {
                    if col.k == K::Bool && e.is_null() {
                        continue; // FITS L has no null distinct from false in astropy
                    }
                    if col.k == K::List {
                        // Padding NaNs; astropy masks some of them.
                        a = strip_trailing(&strip_trailing(&a, &Value::Null), &json!("NaN"));
                        a = strip_trailing(&strip_trailing(&a, &Value::Null), &json!("NaN"));
                        if e.is_null() {
                            e = json!([]);
                        }
                    }
                    if col.k == K::Bin {
                        a = strip_trailing(&a, &json!(0));
                        if e.is_null() {
                            e = json!([]);
                        }
                    }
                }
                _ => {}
            }
            // NaN is the null of floating point in VOTable and FITS: astropy masks it.
            if matches!(fmt, "votable/td" | "votable/b2" | "fits")
                && matches!(col.k, K::F32 | K::F64)
                && e == json!("NaN")
                && a.is_null()
            {
                continue;
            }
            // astropy reads a null variable-length VOTable array as an empty one.
            if matches!(fmt, "votable/td" | "votable/b2")
                && matches!(col.k, K::Bin | K::List)
                && e.is_null()
                && a == json!([])
            {
                continue;
            }
            // Formats (or readers: astropy does not mask VOTable strings) where an empty
            // string and a null are one value.
            if matches!(col.k, K::Str | K::Time)
                && matches!(fmt, "fits" | "tsv" | "csv" | "votable/td" | "votable/b2")
                && e.is_null()
                && a == json!("")
            {
                a = Value::Null;
            }
            if col.k == K::F32 {
                e = as_f32(&e);
                a = as_f32(&a);
            }
            assert_eq!(a, e, "{fmt}: row {r}, column {}", col.name);
        }
    }
}

/// The sample without its polygon column, which votlint 3.4.7 misreads (see
/// `votlint_misreads_binary2_polygons`).
fn lintable(batches: &[RecordBatch]) -> (SchemaRef, Vec<RecordBatch>) {
    let keep: Vec<usize> = (0..batches[0].num_columns()).filter(|&c| c != 19).collect();
    let b: Vec<RecordBatch> = batches.iter().map(|b| b.project(&keep).unwrap()).collect();
    (b[0].schema(), b)
}

fn write(fmt: Format, schema: &SchemaRef, batches: &[RecordBatch], overflow: bool) -> Vec<u8> {
    formats::write_all(
        fmt,
        schema,
        batches,
        overflow,
        Vec::new(),
        &WriterOptions::default(),
    )
    .unwrap()
}

fn to_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn check_fields(fmt: &str, got: &Value) {
    let fields = got["fields"].as_array().unwrap();
    let by = |n: &str| fields.iter().find(|f| f["name"] == n).unwrap();
    let i16f = by("i16");
    assert_eq!(i16f["datatype"], "short", "{fmt}");
    // astropy writes units back in its own spelling ("mas / yr").
    assert_eq!(
        i16f["unit"].as_str().unwrap().replace(' ', ""),
        "mas/yr",
        "{fmt}"
    );
    assert_eq!(i16f["ucd"], "pos.pm;pos.eq.ra", "{fmt}");
    assert_eq!(
        i16f["utype"], "stc:AstroCoords.Position2D.Value2.C1",
        "{fmt}"
    );
    assert_eq!(
        i16f["description"], "Proper motion <µα*> & \"friends\"\nsecond line",
        "{fmt}"
    );
    assert_eq!(
        by("ra")["description"],
        "Right ascension (ICRS) — ünïcödé",
        "{fmt}"
    );
    for (n, dt, size, xtype) in [
        ("flag", "boolean", None, None),
        ("i8", "short", None, None),
        ("u8", "short", None, None),
        ("u16", "int", None, None),
        ("u32", "long", None, None),
        ("u64", "long", None, None),
        ("f32", "float", None, None),
        ("ra", "double", None, None),
        ("text", "unicodeChar", Some("*"), None),
        ("view", "unicodeChar", Some("*"), None),
        ("t", "char", Some("*"), Some("timestamp")),
        ("d", "char", Some("*"), Some("timestamp")),
        ("bytes", "unsignedByte", Some("*"), None),
        ("pos", "double", Some("2"), Some("point")),
        ("circ", "double", Some("3"), Some("circle")),
        ("poly", "double", Some("*"), Some("polygon")),
    ] {
        let f = by(n);
        assert_eq!(f["datatype"], dt, "{fmt}: {n}");
        assert_eq!(f["arraysize"].as_str(), size, "{fmt}: {n}");
        assert_eq!(f["xtype"].as_str(), xtype, "{fmt}: {n}");
    }
}

// ---- the tests -----------------------------------------------------------------------------

fn votable_roundtrip(fmt: Format) {
    let (schema, batches, cols) = sample();
    let dir = tempfile::tempdir().unwrap();
    let bytes = write(fmt, &schema, &batches, false);
    let path = to_file(dir.path(), "r.vot", &bytes);
    let got = read_back("votable", &path);
    let name = match fmt {
        Format::VoTableTabledata => "votable/td",
        _ => "votable/b2",
    };
    compare(name, &got, &cols);
    check_fields(name, &got);
    assert_eq!(got["status"], json!(["OK"]));
    assert_eq!(got["version"], "1.4");
    let ids: Vec<&str> = got["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids[3], "i32");
    assert_eq!(ids[20], "i32_2");
    // votlint on everything but the polygons (see `votlint_misreads_binary2_polygons`).
    let (ls, lb) = lintable(&batches);
    let path = to_file(dir.path(), "lint.vot", &write(fmt, &ls, &lb, false));
    let (errors, warnings) = votlint(&path);
    assert!(errors.is_empty(), "votlint errors: {errors:#?}");
    assert!(warnings.is_empty(), "votlint warnings: {warnings:#?}");
}

/// Polygons (`double`, `arraysize="*"`, `xtype="polygon"`): votlint is clean on TABLEDATA
/// without nulls. FIXME(STILTS 3.4.7 bug): votlint's polygon checker reads `nel` (-1 for
/// `*`) items instead of the stream's count in BINARY2, so it loses sync and reports errors
/// (or runs out of memory), and it rejects an empty TD (a null polygon) in TABLEDATA; STIL's
/// reader (`stilts tpipe`, TOPCAT) and astropy read both correctly (checked in the round
/// trips above). This test fails when a fixed STILTS arrives: then lint polygons everywhere.
#[test]
fn votlint_misreads_binary2_polygons() {
    let (_, batches, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let polys: Vec<RecordBatch> = batches.iter().map(|b| b.project(&[19]).unwrap()).collect();
    let schema = polys[0].schema();
    let non_null: Vec<RecordBatch> = vec![polys[0].clone(), polys[2].slice(0, 1)];
    let td = to_file(
        dir.path(),
        "p.vot",
        &write(Format::VoTableTabledata, &schema, &non_null, false),
    );
    let (errors, warnings) = votlint(&td);
    assert!(
        errors.is_empty() && warnings.is_empty(),
        "{errors:#?} {warnings:#?}"
    );
    let b2 = to_file(
        dir.path(),
        "p2.vot",
        &write(Format::VoTableBinary2, &schema, &non_null, false),
    );
    let out = Command::new("stilts")
        .arg("-J-Xmx64m")
        .arg("votlint")
        .arg(format!("votable={}", b2.display()))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("ERROR") || text.contains("OutOfMemoryError"),
        "votlint now reads BINARY2 polygons: remove this FIXME and lint them\n{text}"
    );
}

#[test]
fn votable_tabledata_roundtrip() {
    votable_roundtrip(Format::VoTableTabledata);
}

#[test]
fn votable_binary2_roundtrip() {
    votable_roundtrip(Format::VoTableBinary2);
}

#[test]
fn csv_roundtrip() {
    let (schema, batches, cols) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = to_file(
        dir.path(),
        "r.csv",
        &write(Format::Csv, &schema, &batches, false),
    );
    compare("csv", &read_back("csv", &path), &cols);
}

#[test]
fn tsv_roundtrip() {
    let (schema, batches, cols) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = to_file(
        dir.path(),
        "r.tsv",
        &write(Format::Tsv, &schema, &batches, false),
    );
    compare("tsv", &read_back("tsv", &path), &cols);
}

#[test]
fn json_roundtrip() {
    let (schema, batches, cols) = sample();
    let dir = tempfile::tempdir().unwrap();
    let bytes = write(Format::Json, &schema, &batches, false);
    // Also valid for a strict Rust parser.
    let _: Value = serde_json::from_slice(&bytes).unwrap();
    let path = to_file(dir.path(), "r.json", &bytes);
    let got = read_back("json", &path);
    compare("json", &got, &cols);
    check_fields("json", &got);
    assert_eq!(got["overflow"], false);
}

#[test]
fn fits_roundtrip() {
    let (schema, batches, cols) = sample();
    let dir = tempfile::tempdir().unwrap();
    let bytes = write(Format::Fits, &schema, &batches, false);
    assert_eq!(bytes.len() % 2880, 0);
    let path = to_file(dir.path(), "r.fits", &bytes);
    let got = read_back("fits", &path);
    compare("fits", &got, &cols);
    let h = &got["extra"];
    assert_eq!(h["TUNIT3"], "mas/yr");
    assert_eq!(h["TFORM12"], format!("{}A", NASTY.len()));
    assert_eq!(h["TFORM18"], "2D");
    assert_eq!(h["TFORM20"], "8D");
    // i16 holds its minimum, so its TNULL is the maximum.
    assert_eq!(h["TNULL3"], i16::MAX as i64);
    assert_eq!(got["overflow"], false);
}

#[test]
fn parquet_roundtrip() {
    let (schema, batches, cols) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = to_file(
        dir.path(),
        "r.parquet",
        &write(Format::Parquet, &schema, &batches, false),
    );
    let got = read_back("parquet", &path);
    compare("parquet", &got, &cols);
    check_fields("parquet", &got);
    assert_eq!(got["extra"]["version"], "1.0");
}

#[test]
fn empty_results_in_every_format() {
    let (schema, batches, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    for fmt in Format::ALL {
        for input in [&[][..], &batches[1..2]] {
            let bytes = write(fmt, &schema, input, false);
            let path = to_file(dir.path(), &format!("empty.{}", fmt.extension()), &bytes);
            let kind = match fmt {
                Format::VoTableBinary2 | Format::VoTableTabledata => "votable",
                other => other.extension(),
            };
            let got = read_back(kind, &path);
            assert_eq!(got["rows"], json!([]), "{fmt}");
            assert_eq!(got["names"].as_array().unwrap().len(), 21, "{fmt}");
            if kind == "votable" {
                let (errors, _) = votlint(&path);
                assert!(errors.is_empty(), "{fmt}: votlint errors: {errors:#?}");
            }
        }
    }
}

#[test]
fn overflow_is_flagged() {
    let (schema, batches, _) = sample();
    let (schema, batches) = {
        let _ = schema;
        lintable(&batches)
    };
    let dir = tempfile::tempdir().unwrap();
    for fmt in [Format::VoTableBinary2, Format::VoTableTabledata] {
        let bytes = write(fmt, &schema, &batches, true);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let table_end = text.find("</TABLE>").unwrap();
        let overflow = text
            .find("<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>")
            .unwrap();
        assert!(overflow > table_end, "{fmt}: OVERFLOW INFO after the table");
        let path = to_file(dir.path(), "o.vot", &bytes);
        let got = read_back("votable", &path);
        assert_eq!(got["status"], json!(["OK", "OVERFLOW"]), "{fmt}");
        assert_eq!(got["rows"].as_array().unwrap().len(), 4);
        let (errors, warnings) = votlint(&path);
        assert!(
            errors.is_empty() && warnings.is_empty(),
            "{errors:#?} {warnings:#?}"
        );
    }
    let json_path = to_file(
        dir.path(),
        "o.json",
        &write(Format::Json, &schema, &batches, true),
    );
    assert_eq!(read_back("json", &json_path)["overflow"], true);
    let fits_path = to_file(
        dir.path(),
        "o.fits",
        &write(Format::Fits, &schema, &batches, true),
    );
    assert_eq!(read_back("fits", &fits_path)["overflow"], true);
}

#[test]
fn errors_become_query_status_error() {
    let dir = tempfile::tempdir().unwrap();
    let msg = "syntax error at line 1, column 8: expected FROM, found `<`";
    let path = to_file(dir.path(), "e.vot", formats::error_document(msg).as_bytes());
    let got = read_back("votable", &path);
    assert_eq!(got["status"], json!(["ERROR"]));
    assert_eq!(got["status_text"], json!([msg]));
    let (errors, warnings) = votlint(&path);
    assert!(
        errors.is_empty() && warnings.is_empty(),
        "{errors:#?} {warnings:#?}"
    );

    // A failure after rows were sent: the table is closed, then the ERROR INFO follows.
    let (_, batches, _) = sample();
    let (schema, batches) = lintable(&batches);
    for fmt in [Format::VoTableBinary2, Format::VoTableTabledata] {
        let mut w = formats::writer(fmt, &schema, Vec::new(), &WriterOptions::default()).unwrap();
        w.write_batch(&batches[0]).unwrap();
        let bytes = w.finish_error("query timed out after 60 s").unwrap();
        let path = to_file(dir.path(), "e2.vot", &bytes);
        let got = read_back("votable", &path);
        assert_eq!(got["status"], json!(["OK", "ERROR"]), "{fmt}");
        assert_eq!(got["rows"].as_array().unwrap().len(), 1, "{fmt}");
        let (errors, _) = votlint(&path);
        assert!(errors.is_empty(), "{fmt}: {errors:#?}");
    }
    let mut w =
        formats::writer(Format::Json, &schema, Vec::new(), &WriterOptions::default()).unwrap();
    w.write_batch(&batches[0]).unwrap();
    let v: Value = serde_json::from_slice(&w.finish_error("boom").unwrap()).unwrap();
    assert_eq!(v["error"], "boom");
}

/// The bytes do not depend on how the rows are cut into batches (base64 lines and FITS
/// spooling carry over batch boundaries).
#[test]
fn output_does_not_depend_on_batch_boundaries() {
    let n = 1000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let all = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(Float64Array::from_iter(
                (0..n).map(|i| (i % 7 != 0).then_some(i as f64 / 3.0)),
            )),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 5 != 0).then(|| "s".repeat(i as usize % 13))),
            )),
        ],
    )
    .unwrap();
    let mut cut = Vec::new();
    let mut at = 0;
    for len in [7, 1, 0, 100, 13, 57, 3].iter().cycle() {
        let len = (*len).min(n as usize - at);
        cut.push(all.slice(at, len));
        at += len;
        if at == n as usize {
            break;
        }
    }
    for fmt in Format::ALL {
        if fmt == Format::Parquet {
            continue; // row-group layout is the Parquet writer's business
        }
        let one = write(fmt, &schema, std::slice::from_ref(&all), false);
        let many = write(fmt, &schema, &cut, false);
        assert!(one == many, "{fmt}: output differs with batch boundaries");
    }
}

#[test]
fn unknown_format_is_a_clear_error() {
    let e = Format::parse("text/html").unwrap_err().to_string();
    assert!(e.contains("unknown result format `text/html`"), "{e}");
    assert!(
        e.contains("votable/td") && e.contains("application/fits"),
        "{e}"
    );
}

#[test]
fn unsigned_64_bit_values_above_i64_max_are_refused() {
    let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::UInt64, true)]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(UInt64Array::from(vec![u64::MAX]))],
    )
    .unwrap();
    let mut w =
        formats::writer(Format::Csv, &schema, Vec::new(), &WriterOptions::default()).unwrap();
    let e = w.write_batch(&b).unwrap_err().to_string();
    assert!(e.starts_with("column `u` cannot be written"), "{e}");
}
