//! The VOSI and DALI documents of the TAP service (`tessera_server::tap::vosi`) on the demo
//! archive: the tables document agrees with TAP_SCHEMA, every document validates against the
//! IVOA schemas bundled with STILTS (`stilts xsdvalidate`), every advertised ADQL language
//! feature and UDF works in the engine, and every example query runs and returns rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use quick_xml::events::Event;
use tessera_engine::{Engine, Limits, Location};
use tessera_server::tap::vosi::{self, ServiceDescription, TablesDoc};

const BASE: &str = "http://127.0.0.1:8080/tap";

/// A scratch directory of this test binary under Cargo's target tmpdir, emptied on first
/// use in each run (one copy on disk, never stale).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The demo archive (real Hipparcos), built once per run of this test binary.
fn demo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = scratch("vosi-demo");
        tessera_server::demo::ensure_demo(&dir).unwrap();
        dir
    })
}

async fn engine() -> Engine {
    // The loader runs its own runtime: build the archive outside this one.
    let root = std::thread::spawn(|| demo_root().to_path_buf())
        .join()
        .expect("building the demo archive");
    Engine::open(Location::local(&root).unwrap()).await.unwrap()
}

/// Runs a query; returns the row count, or the error text.
async fn run(engine: &Engine, adql: &str) -> Result<usize, String> {
    let limits = Limits {
        timeout: Some(Duration::from_secs(300)),
        ..Default::default()
    };
    let r = engine
        .query(adql, &limits)
        .await
        .map_err(|e| e.to_string())?;
    let (batches, _) = r.collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// The first two columns of a query as text.
async fn pairs(engine: &Engine, adql: &str) -> Vec<(String, String)> {
    let r = engine.query(adql, &Limits::default()).await.unwrap();
    let (batches, _) = r.collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let text = |i: usize| {
            let a = arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
            let a = a.as_string::<i32>().clone();
            (0..a.len()).map(move |j| a.value(j).to_string())
        };
        out.extend(text(0).zip(text(1)));
    }
    out
}

// ------------------------------------------------------------------------------------------
// A small DOM over quick-xml (which also checks well-formedness: matching end tags, one
// root, known entities).
// ------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    /// The element's own text (not its descendants'), entities resolved.
    text: String,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    fn child(&self, local: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.local() == local)
    }

    fn children<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.local() == local)
    }

    fn child_text(&self, local: &str) -> Option<&str> {
        self.child(local).map(|c| c.text.as_str())
    }

    /// Every descendant (and self) matching `pred`, in document order.
    fn find_all<'a>(&'a self, pred: &dyn Fn(&Node) -> bool, out: &mut Vec<&'a Node>) {
        if pred(self) {
            out.push(self);
        }
        for c in &self.children {
            c.find_all(pred, out);
        }
    }

    fn all<'a>(&'a self, pred: &dyn Fn(&Node) -> bool) -> Vec<&'a Node> {
        let mut v = Vec::new();
        self.find_all(pred, &mut v);
        v
    }
}

fn parse_xml(doc: &str) -> Node {
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut stack: Vec<Node> = vec![Node::default()];
    let open = |e: &quick_xml::events::BytesStart<'_>| Node {
        name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("malformed attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value()
                        .expect("bad attribute value")
                        .into_owned(),
                )
            })
            .collect(),
        ..Default::default()
    };
    loop {
        match reader
            .read_event()
            .expect("document is not well-formed XML")
        {
            Event::Start(e) => stack.push(open(&e)),
            Event::Empty(e) => {
                let n = open(&e);
                stack.last_mut().unwrap().children.push(n);
            }
            Event::End(_) => {
                let n = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(n);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.decode().unwrap()),
            Event::CData(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().expect("bad character reference") {
                    Some(c) => c,
                    None => match &*r.decode().unwrap() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("undeclared entity &{other};"),
                    },
                };
                stack.last_mut().unwrap().text.push(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "not exactly one root element");
    doc.children.pop().unwrap()
}

// ------------------------------------------------------------------------------------------
// stilts xsdvalidate
// ------------------------------------------------------------------------------------------

/// The STILTS jar holding the taplint schemas.
fn stilts_jar() -> PathBuf {
    let dir = Path::new("/usr/share/java");
    let direct = dir.join("starlink-ttools.jar");
    if direct.is_file() {
        return direct;
    }
    std::fs::read_dir(dir)
        .expect("no /usr/share/java (is stilts installed? tools/install-test-deps)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("starlink-ttools") && n.ends_with(".jar"))
        })
        .expect("starlink-ttools jar not found (is stilts installed? tools/install-test-deps)")
}

/// The taplint XSDs, extracted once per run from the STILTS jar.
fn xsd_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("vosi-xsd");
        let jar = stilts_jar();
        let pattern = "uk/ac/starlink/ttools/taplint/*.xsd";
        let status = match Command::new("unzip")
            .arg("-o")
            .arg("-q")
            .arg(&jar)
            .arg(pattern)
            .arg("-d")
            .arg(&dir)
            .status()
        {
            Ok(s) => s,
            // No unzip: the JDK's jar tool extracts into the working directory.
            Err(_) => Command::new("jar")
                .arg("xf")
                .arg(&jar)
                .arg("uk/ac/starlink/ttools/taplint")
                .current_dir(&dir)
                .status()
                .expect("neither unzip nor jar could run"),
        };
        assert!(
            status.success(),
            "extracting the XSDs from {}",
            jar.display()
        );
        let xsds = dir.join("uk/ac/starlink/ttools/taplint");
        assert!(xsds.join("VOSITables-v1.1.xsd").is_file());
        xsds
    })
}

/// Validates `doc` with `stilts xsdvalidate`, the IVOA namespaces mapped to the bundled
/// schemas (CLIENTS.md §2). Panics with stilts' output on failure.
fn xsdvalidate(label: &str, doc: &str) {
    let xsd = xsd_dir();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join(format!("{label}.xml"));
    std::fs::write(&file, doc).unwrap();
    let map = [
        (vosi::NS_VOSI_CAPABILITIES, "VOSICapabilities-v1.0.xsd"),
        (vosi::NS_VOSI_AVAILABILITY, "VOSIAvailability-v1.0.xsd"),
        (vosi::NS_VOSI_TABLES, "VOSITables-v1.1.xsd"),
        (vosi::NS_VORESOURCE, "VOResource-v1.1.xsd"),
        (vosi::NS_VODATASERVICE, "VODataService-v1.2.xsd"),
        (vosi::NS_TAPREGEXT, "TAPRegExt-v1.0-Erratum1.xsd"),
        ("http://www.ivoa.net/xml/STC/stc-v1.30.xsd", "stc-v1.30.xsd"),
        ("http://www.w3.org/1999/xlink", "xlink.xsd"),
    ];
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg("stilts").arg("xsdvalidate");
    for (ns, f) in map {
        cmd.arg(format!("schemaloc={ns}=file://{}", xsd.join(f).display()));
    }
    cmd.arg("uselocals=true")
        .arg("verbose=true")
        .arg(format!("doc={}", file.display()));
    let out = cmd
        .output()
        .expect("running stilts (tools/install-test-deps)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.to_ascii_lowercase().contains("error"))
        .collect();
    assert!(
        out.status.success() && bad.is_empty(),
        "{label}: stilts xsdvalidate failed ({}):\n{text}\n--- document ---\n{doc}",
        out.status
    );
}

// ------------------------------------------------------------------------------------------
// Tables
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_document_agrees_with_tap_schema() {
    let engine = engine().await;
    let doc = TablesDoc::load(&engine).await.unwrap();

    let tap_tables: Vec<String> = pairs(
        &engine,
        "SELECT table_name, schema_name FROM TAP_SCHEMA.tables",
    )
    .await
    .into_iter()
    .map(|(t, _)| t)
    .collect();
    let tap_counts: HashMap<String, usize> = pairs(
        &engine,
        "SELECT table_name, COUNT(*) FROM TAP_SCHEMA.columns GROUP BY table_name",
    )
    .await
    .into_iter()
    .map(|(t, n)| (t, n.parse().unwrap()))
    .collect();
    for t in [
        "TAP_SCHEMA.schemas",
        "TAP_SCHEMA.tables",
        "TAP_SCHEMA.columns",
        "TAP_SCHEMA.keys",
        "TAP_SCHEMA.key_columns",
        "hipparcos.hip2",
    ] {
        assert!(tap_tables.iter().any(|x| x == t), "TAP_SCHEMA lacks {t}");
    }

    // Full document: every TAP_SCHEMA table exactly once, with all its columns.
    let full = parse_xml(&doc.render(false));
    assert_eq!(full.name, "vosi:tableset");
    let tables = full.all(&|n| n.name == "table");
    for t in &tap_tables {
        let found: Vec<_> = tables
            .iter()
            .filter(|n| n.child_text("name") == Some(t.as_str()))
            .collect();
        assert_eq!(found.len(), 1, "{t} appears {} times", found.len());
        let columns = found[0].children("column").count();
        assert_eq!(
            columns,
            tap_counts.get(t).copied().unwrap_or(0),
            "columns of {t}"
        );
    }
    assert_eq!(tables.len(), tap_tables.len(), "tables not in TAP_SCHEMA");
    // Foreign keys: each key of TAP_SCHEMA.keys under its from_table, with its columns.
    let keys = pairs(
        &engine,
        "SELECT k.from_table, k.target_table FROM TAP_SCHEMA.keys AS k \
         JOIN TAP_SCHEMA.key_columns AS c ON k.key_id = c.key_id",
    )
    .await;
    let mut declared: Vec<(String, String)> = Vec::new();
    for t in &tables {
        for k in t.children("foreignKey") {
            let target = k.child_text("targetTable").unwrap().to_string();
            for c in k.children("fkColumn") {
                assert!(c.child_text("fromColumn").is_some_and(|s| !s.is_empty()));
                assert!(c.child_text("targetColumn").is_some_and(|s| !s.is_empty()));
                declared.push((t.child_text("name").unwrap().to_string(), target.clone()));
            }
        }
    }
    let mut want = keys.clone();
    want.sort();
    declared.sort();
    assert_eq!(
        declared, want,
        "foreign keys of /tables and TAP_SCHEMA.keys"
    );
    // Tables sit in their schema.
    for s in full.children("schema") {
        let schema = s.child_text("name").unwrap();
        for t in s.children("table") {
            let name = t.child_text("name").unwrap();
            assert!(
                name.to_ascii_lowercase()
                    .starts_with(&format!("{}.", schema.to_ascii_lowercase())),
                "{name} in schema {schema}"
            );
        }
    }
    // Column metadata as TAP_SCHEMA has it.
    let hip = tables
        .iter()
        .find(|n| n.child_text("name") == Some("hipparcos.hip2"))
        .unwrap();
    let meta = pairs(
        &engine,
        "SELECT column_name, datatype FROM TAP_SCHEMA.columns WHERE table_name = 'hipparcos.hip2' \
         ORDER BY column_index",
    )
    .await;
    let got: Vec<(String, String)> = hip
        .children("column")
        .map(|c| {
            let dt = c.child("dataType").unwrap();
            assert_eq!(dt.attr("xsi:type"), Some("vs:VOTableType"));
            (c.child_text("name").unwrap().to_string(), dt.text.clone())
        })
        .collect();
    assert_eq!(got, meta, "hipparcos.hip2 columns in column_index order");
    let ra = hip
        .children("column")
        .find(|c| c.child_text("name") == Some("ra"))
        .unwrap();
    assert_eq!(ra.child_text("unit"), Some("deg"));
    assert!(ra.children("flag").any(|f| f.text == "indexed"));
    assert_eq!(hip.attr("type"), Some("base_table"));
    assert!(hip.child_text("nrows").unwrap().parse::<u64>().unwrap() > 100_000);
    // TAP_SCHEMA columns are standard ones.
    let ts = tables
        .iter()
        .find(|n| n.child_text("name") == Some("TAP_SCHEMA.columns"))
        .unwrap();
    assert!(ts.children("column").all(|c| c.attr("std") == Some("true")));

    // detail=min: tables without columns.
    let min = doc.render(true);
    assert!(!min.contains("<column"), "detail=min lists columns");
    let min = parse_xml(&min);
    assert_eq!(min.all(&|n| n.name == "table").len(), tap_tables.len());

    // One table, case-insensitively.
    let one = doc.render_table("hipparcos.hip2").expect("hipparcos.hip2");
    let one = parse_xml(&one);
    assert_eq!(one.name, "vosi:table");
    assert_eq!(one.child_text("name"), Some("hipparcos.hip2"));
    assert_eq!(one.children("column").count(), tap_counts["hipparcos.hip2"]);
    assert!(doc.render_table("HIPPARCOS.HIP2").is_some());
    assert!(doc.render_table("tap_schema.tables").is_some());
    assert!(doc.render_table("nosuch.table").is_none());
    assert!(doc.render_table("hip2").is_none());
}

// ------------------------------------------------------------------------------------------
// Schema validation
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_validate_against_the_ivoa_schemas() {
    let engine = engine().await;
    let doc = TablesDoc::load(&engine).await.unwrap();
    let mut d = ServiceDescription::default();
    xsdvalidate("capabilities", &vosi::capabilities(BASE, &d));
    d.upload_by_url = true;
    xsdvalidate("capabilities-http", &vosi::capabilities(BASE, &d));
    xsdvalidate(
        "availability",
        &vosi::availability(SystemTime::now(), "running <normally> & well"),
    );
    xsdvalidate(
        "availability-nonote",
        &vosi::availability(SystemTime::now(), ""),
    );
    xsdvalidate("tables", &doc.render(false));
    xsdvalidate("tables-min", &doc.render(true));
    xsdvalidate("table-hip2", &doc.render_table("hipparcos.hip2").unwrap());
    xsdvalidate(
        "table-tap-schema",
        &doc.render_table("TAP_SCHEMA.columns").unwrap(),
    );
}

#[test]
fn xsdvalidate_rejects_an_invalid_document() {
    // The validation above means something only if a bad document fails.
    let bad = vosi::availability(SystemTime::now(), "x").replace(
        "<vosi:available>true</vosi:available>",
        "<vosi:available>perhaps</vosi:available>",
    );
    let r = std::panic::catch_unwind(|| xsdvalidate("bad-availability", &bad));
    assert!(r.is_err(), "stilts accepted available=perhaps");
}

// ------------------------------------------------------------------------------------------
// Capabilities
// ------------------------------------------------------------------------------------------

/// A query exercising each advertised feature form.
fn feature_query(type_uri: &str, form: &str) -> Option<&'static str> {
    let frag = type_uri.rsplit('#').next().unwrap_or("");
    Some(match (frag, form) {
        ("features-udf", f) if f.starts_with("ivo_healpix_index(") => {
            "SELECT TOP 3 ivo_healpix_index(5, ra, dec) FROM hipparcos.hip2"
        }
        ("features-udf", f) if f.starts_with("ivo_healpix_center(") => {
            "SELECT TOP 3 ivo_healpix_center(5, 100), COORD1(ivo_healpix_center(5, 100)) FROM hipparcos.hip2"
        }
        ("features-adqlgeo", "AREA") => {
            "SELECT TOP 1 AREA(CIRCLE('ICRS', 10, 20, 1)), AREA(POLYGON('ICRS', 10, 10, 12, 10, 11, 12)) FROM hipparcos.hip2"
        }
        ("features-adqlgeo", "BOX") => {
            "SELECT HIP FROM hipparcos.hip2 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', 10, 20, 4, 4))"
        }
        ("features-adqlgeo", "CENTROID") => {
            "SELECT TOP 1 COORD1(CENTROID(POLYGON('ICRS', 10, 10, 12, 10, 11, 12))), COORD2(CENTROID(CIRCLE('ICRS', 10, 20, 1))) FROM hipparcos.hip2"
        }
        ("features-adqlgeo", "CIRCLE" | "CONTAINS" | "POINT") => {
            "SELECT HIP FROM hipparcos.hip2 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 101.287, -16.716, 1))"
        }
        ("features-adqlgeo", "COORD1" | "COORD2") => {
            "SELECT TOP 3 COORD1(POINT('ICRS', ra, dec)), COORD2(POINT('ICRS', ra, dec)) FROM hipparcos.hip2"
        }
        ("features-adqlgeo", "COORDSYS") => {
            "SELECT TOP 3 COORDSYS(POINT('ICRS', ra, dec)) FROM hipparcos.hip2"
        }
        ("features-adqlgeo", "DISTANCE") => {
            "SELECT TOP 3 DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 0, 0)) FROM hipparcos.hip2 \
             WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 101.287, -16.716)) < 1"
        }
        ("features-adqlgeo", "INTERSECTS") => {
            "SELECT HIP FROM hipparcos.hip2 WHERE 1 = INTERSECTS(CIRCLE('ICRS', ra, dec, 0.01), CIRCLE('ICRS', 101.287, -16.716, 1)) \
             AND 1 = INTERSECTS(POINT('ICRS', ra, dec), POLYGON('ICRS', 100, -18, 103, -18, 101.5, -15))"
        }
        ("features-adqlgeo", "POLYGON") => {
            "SELECT HIP FROM hipparcos.hip2 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 10, 10, 20, 10, 15, 20))"
        }
        ("features-adql-string", "LOWER" | "UPPER") => {
            "SELECT LOWER(table_name), UPPER(table_name) FROM TAP_SCHEMA.tables WHERE LOWER(table_name) = 'hipparcos.hip2' AND UPPER(table_name) = 'HIPPARCOS.HIP2'"
        }
        ("features-adql-string", "ILIKE") => {
            "SELECT table_name FROM TAP_SCHEMA.tables WHERE table_name ILIKE 'HIPPARCOS.H%'"
        }
        ("features-adql-sets", "UNION") => {
            "SELECT HIP FROM hipparcos.hip2 WHERE HIP < 10 UNION SELECT HIP FROM hipparcos.hip2 WHERE HIP BETWEEN 5 AND 20"
        }
        ("features-adql-sets", "EXCEPT") => {
            "SELECT HIP FROM hipparcos.hip2 WHERE HIP < 20 EXCEPT SELECT HIP FROM hipparcos.hip2 WHERE HIP < 10"
        }
        ("features-adql-sets", "INTERSECT") => {
            "SELECT HIP FROM hipparcos.hip2 WHERE HIP < 20 INTERSECT SELECT HIP FROM hipparcos.hip2 WHERE HIP > 10"
        }
        ("features-adql-common-table", "WITH") => {
            "WITH bright AS (SELECT HIP, Hpmag FROM hipparcos.hip2 WHERE Hpmag < 3) SELECT COUNT(*) FROM bright"
        }
        ("features-adql-type", "CAST") => {
            "SELECT TOP 3 CAST(HIP AS BIGINT), CAST(Hpmag AS INTEGER), CAST(HIP AS VARCHAR(10)), CAST(Plx AS REAL) FROM hipparcos.hip2"
        }
        ("features-adql-unit", "IN_UNIT") => {
            "SELECT TOP 3 IN_UNIT(Plx, 'arcsec'), IN_UNIT(ra, 'rad') FROM hipparcos.hip2"
        }
        ("features-adql-offset", "OFFSET") => {
            "SELECT TOP 5 HIP FROM hipparcos.hip2 ORDER BY HIP OFFSET 10"
        }
        ("features-adql-bitwise", "BIT_AND" | "BIT_OR" | "BIT_XOR" | "BIT_NOT") => {
            "SELECT TOP 3 HIP & 255, HIP | 1, HIP ^ 3, ~HIP FROM hipparcos.hip2"
        }
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_advertise_what_the_engine_does() {
    let engine = engine().await;
    let d = ServiceDescription {
        max_rec_default: 1000,
        max_rec_hard: 5000,
        max_upload_bytes: 1 << 20,
        max_upload_rows: 10_000,
        execution_duration_default_s: 60,
        execution_duration_hard_s: 120,
        retention_default_s: 3600,
        retention_hard_s: 7200,
        upload_by_url: false,
        obscore: false,
    };
    let caps = parse_xml(&vosi::capabilities(&format!("{BASE}/"), &d));
    assert_eq!(caps.name, "vosi:capabilities");
    let cap = |id: &str| {
        let found: Vec<_> = caps
            .children("capability")
            .filter(|c| c.attr("standardID") == Some(id))
            .collect();
        assert_eq!(found.len(), 1, "capability {id}");
        found[0]
    };
    let url = |c: &Node| {
        c.child("interface")
            .and_then(|i| i.child_text("accessURL"))
            .unwrap()
            .to_string()
    };

    let tap = cap("ivo://ivoa.net/std/TAP");
    assert_eq!(tap.attr("xsi:type"), Some("tr:TableAccess"));
    let intf = tap.child("interface").unwrap();
    assert_eq!(intf.attr("xsi:type"), Some("vs:ParamHTTP"));
    assert_eq!(intf.attr("role"), Some("std"));
    assert_eq!(intf.attr("version"), Some("1.1"));
    assert_eq!(url(tap), BASE);
    for (id, path) in [
        ("ivo://ivoa.net/std/VOSI#capabilities", "capabilities"),
        ("ivo://ivoa.net/std/VOSI#availability", "availability"),
        ("ivo://ivoa.net/std/VOSI#tables", "tables"),
        ("ivo://ivoa.net/std/DALI#examples", "examples"),
    ] {
        assert_eq!(url(cap(id)), format!("{BASE}/{path}"));
    }
    assert_eq!(
        cap("ivo://ivoa.net/std/VOSI#tables")
            .child("interface")
            .unwrap()
            .attr("version"),
        Some("1.1")
    );
    assert!(tap.child("dataModel").is_none(), "no data model yet");

    // Languages and features.
    let lang = tap.child("language").unwrap();
    assert_eq!(lang.child_text("name"), Some("ADQL"));
    let versions: Vec<(&str, Option<&str>)> = lang
        .children("version")
        .map(|v| (v.text.as_str(), v.attr("ivo-id")))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("2.0", Some("ivo://ivoa.net/std/ADQL#v2.0")),
            ("2.1", Some("ivo://ivoa.net/std/ADQL#v2.1")),
        ]
    );
    let mut failures = Vec::new();
    let mut udfs = Vec::new();
    let mut types = Vec::new();
    for group in lang.children("languageFeatures") {
        let ty = group.attr("type").unwrap();
        types.push(ty.to_string());
        for f in group.children("feature") {
            let form = f.child_text("form").unwrap();
            assert!(
                f.child_text("description").is_some_and(|d| !d.is_empty()),
                "{form} has no description"
            );
            if ty.ends_with("#features-udf") {
                udfs.push(form.to_string());
            }
            let Some(q) = feature_query(ty, form) else {
                failures.push(format!("{ty} {form}: no test query (add one)"));
                continue;
            };
            match run(&engine, q).await {
                Ok(n) if n > 0 => {}
                Ok(_) => failures.push(format!("{ty} {form}: no rows from {q}")),
                Err(e) => failures.push(format!("{ty} {form}: {e}\n  {q}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let want_udfs: Vec<String> = Engine::functions()
        .iter()
        .map(|f| f.form.to_string())
        .collect();
    assert_eq!(udfs, want_udfs);
    for t in [
        "features-udf",
        "features-adqlgeo",
        "features-adql-string",
        "features-adql-offset",
        "features-adql-type",
        "features-adql-unit",
        "features-adql-common-table",
        "features-adql-sets",
    ] {
        let t = format!("ivo://ivoa.net/std/TAPRegExt#{t}");
        assert!(types.contains(&t), "{t} not advertised");
    }
    // REGION is not supported, and the capabilities must not say otherwise.
    assert!(
        run(
            &engine,
            "SELECT TOP 1 REGION('Circle ICRS 10 20 1') FROM hipparcos.hip2"
        )
        .await
        .is_err()
    );
    let geo = lang
        .children("languageFeatures")
        .find(|g| {
            g.attr("type")
                .is_some_and(|t| t.ends_with("#features-adqlgeo"))
        })
        .unwrap();
    assert!(
        geo.children("feature")
            .all(|f| f.child_text("form") != Some("REGION"))
    );
    // The UDF forms are in the TAPRegExt shape taplint checks.
    for u in &udfs {
        let (name, rest) = u.split_once('(').unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert!(rest.contains(") -> "), "{u}");
    }

    // Output formats: one per format, each parseable back from its MIME type and aliases.
    let formats: Vec<&Node> = tap.children("outputFormat").collect();
    assert_eq!(formats.len(), tessera_server::formats::Format::ALL.len());
    for (f, n) in tessera_server::formats::Format::ALL.iter().zip(&formats) {
        assert_eq!(n.child_text("mime"), Some(f.mime()));
        assert_eq!(
            tessera_server::formats::Format::parse(f.mime()).unwrap(),
            *f
        );
        let aliases: Vec<&str> = n.children("alias").map(|a| a.text.as_str()).collect();
        assert!(aliases.contains(&f.short_name()));
        for a in aliases {
            assert_eq!(tessera_server::formats::Format::parse(a).unwrap(), *f);
        }
    }
    assert_eq!(
        formats[0].attr("ivo-id"),
        Some("ivo://ivoa.net/std/TAPRegExt#output-votable-binary2")
    );
    assert_eq!(
        formats[1].attr("ivo-id"),
        Some("ivo://ivoa.net/std/TAPRegExt#output-votable-td")
    );

    // Uploads and limits.
    let uploads: Vec<&str> = tap
        .children("uploadMethod")
        .map(|u| u.attr("ivo-id").unwrap())
        .collect();
    assert_eq!(uploads, vec!["ivo://ivoa.net/std/TAPRegExt#upload-inline"]);
    let limit = |el: &str, which: &str| {
        let n = tap.child(el).unwrap().child(which).unwrap();
        (n.text.clone(), n.attr("unit").map(str::to_string))
    };
    assert_eq!(limit("retentionPeriod", "default"), ("3600".into(), None));
    assert_eq!(limit("retentionPeriod", "hard"), ("7200".into(), None));
    assert_eq!(limit("executionDuration", "default"), ("60".into(), None));
    assert_eq!(limit("executionDuration", "hard"), ("120".into(), None));
    assert_eq!(
        limit("outputLimit", "default"),
        ("1000".into(), Some("row".into()))
    );
    assert_eq!(
        limit("outputLimit", "hard"),
        ("5000".into(), Some("row".into()))
    );
    assert_eq!(
        limit("uploadLimit", "hard"),
        ("1048576".into(), Some("byte".into()))
    );

    let with_http = parse_xml(&vosi::capabilities(
        BASE,
        &ServiceDescription {
            upload_by_url: true,
            ..d
        },
    ));
    let methods: Vec<String> = with_http
        .all(&|n| n.name == "uploadMethod")
        .iter()
        .map(|u| u.attr("ivo-id").unwrap().to_string())
        .collect();
    assert_eq!(
        methods,
        vec![
            "ivo://ivoa.net/std/TAPRegExt#upload-inline",
            "ivo://ivoa.net/std/TAPRegExt#upload-http"
        ]
    );
}

#[test]
fn availability_document() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a = parse_xml(&vosi::availability(t, "all <good> & fine"));
    assert_eq!(a.name, "vosi:availability");
    assert_eq!(a.attr("xmlns:vosi"), Some(vosi::NS_VOSI_AVAILABILITY));
    assert_eq!(a.child_text("available"), Some("true"));
    assert_eq!(a.child_text("upSince"), Some("2023-11-14T22:13:20Z"));
    assert_eq!(a.child_text("note"), Some("all <good> & fine"));
}

// ------------------------------------------------------------------------------------------
// Examples
// ------------------------------------------------------------------------------------------

/// The examples of a document: (id, name, query, tables).
fn examples_in(doc: &str) -> Vec<(String, String, String, Vec<String>)> {
    let html = parse_xml(doc);
    assert_eq!(html.name, "html");
    assert_eq!(html.attr("xmlns"), Some("http://www.w3.org/1999/xhtml"));
    let vocab = html.all(&|n| n.attr("vocab").is_some());
    assert_eq!(vocab.len(), 1);
    assert_eq!(vocab[0].attr("vocab"), Some(vosi::EXAMPLES_VOCAB));
    let mut out = Vec::new();
    for ex in html.all(&|n| n.attr("typeof") == Some("example")) {
        let id = ex.attr("id").expect("example without id").to_string();
        assert_eq!(ex.attr("resource"), Some(format!("#{id}").as_str()));
        let props = |p: &str| ex.all(&|n| n.attr("property") == Some(p));
        let names = props("name");
        assert_eq!(names.len(), 1, "{id}: one name");
        let queries = props("query");
        assert_eq!(queries.len(), 1, "{id}: one query");
        // Plain text, as pyvo (ElementTree .text) and taplint read it.
        assert!(queries[0].children.is_empty(), "{id}: markup in the query");
        assert!(names[0].children.is_empty(), "{id}: markup in the name");
        let tables = props("table").iter().map(|t| t.text.clone()).collect();
        out.push((id, names[0].text.clone(), queries[0].text.clone(), tables));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_runs_and_returns_rows() {
    let engine = engine().await;
    let doc = vosi::examples(BASE);
    let examples = examples_in(&doc);
    assert!(examples.len() >= 5, "only {} examples", examples.len());
    let mut ids: Vec<&str> = examples.iter().map(|e| e.0.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), examples.len(), "duplicate ids");
    let tables = TablesDoc::load(&engine).await.unwrap();
    let mut failures = Vec::new();
    for (id, name, query, used) in &examples {
        assert!(!name.trim().is_empty());
        for t in used {
            assert!(tables.table(t).is_some(), "{id}: no table {t}");
        }
        match run(&engine, query).await {
            Ok(n) if n > 0 => {}
            Ok(_) => failures.push(format!("{id}: no rows\n{query}")),
            Err(e) => failures.push(format!("{id}: {e}\n{query}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The text in the document is the query as written, entities resolved.
    for (e, (_, _, q, _)) in vosi::EXAMPLES.iter().zip(&examples) {
        assert_eq!(e.query, q);
    }
    // On the demo archive every example applies.
    assert_eq!(vosi::examples_for(BASE, &tables), doc);
    // Without the demo catalogue only the TAP_SCHEMA examples remain.
    let bare = TablesDoc {
        schemas: tables
            .schemas
            .iter()
            .filter(|s| s.name == "TAP_SCHEMA")
            .cloned()
            .collect(),
    };
    let rest = examples_in(&vosi::examples_for(BASE, &bare));
    assert!(!rest.is_empty());
    assert!(
        rest.iter()
            .all(|e| e.3.iter().all(|t| t.starts_with("TAP_SCHEMA.")))
    );
}
