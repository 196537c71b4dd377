//! VOSI and DALI documents of the TAP service: capabilities (VOSI-capabilities 1.0 with
//! TAPRegExt 1.0), availability (VOSI-availability 1.0), tables (VOSI-tables 1.1, built from
//! TAP_SCHEMA so that `/tables` and TAP_SCHEMA never disagree) and examples (DALI 1.1
//! XHTML + RDFa).
//!
//! Everything here is a pure function from settings (or TAP_SCHEMA content) to an XML
//! string; the HTTP layer only serves the text. The documents carry no `xsi:schemaLocation`
//! (validators map the IVOA namespaces to their bundled schemas, see CLIENTS.md §0 and §2).
//!
//! What the capabilities advertise is what the engine does; `server/tests/vosi.rs` runs a
//! query for every advertised language feature and every example against the demo archive,
//! and validates each document with `stilts xsdvalidate`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use tessera_engine::{Engine, ErrorKind, Limits};

use crate::formats::Format;

/// VOSI-capabilities namespace.
pub const NS_VOSI_CAPABILITIES: &str = "http://www.ivoa.net/xml/VOSICapabilities/v1.0";
/// VOSI-availability namespace.
pub const NS_VOSI_AVAILABILITY: &str = "http://www.ivoa.net/xml/VOSIAvailability/v1.0";
/// VOSI-tables namespace (VOSI-tables 1.1 kept the 1.0 namespace).
pub const NS_VOSI_TABLES: &str = "http://www.ivoa.net/xml/VOSITables/v1.0";
/// VOResource namespace (VOResource 1.1 kept the 1.0 namespace).
pub const NS_VORESOURCE: &str = "http://www.ivoa.net/xml/VOResource/v1.0";
/// VODataService namespace (VODataService 1.2 kept the 1.1 namespace).
pub const NS_VODATASERVICE: &str = "http://www.ivoa.net/xml/VODataService/v1.1";
/// TAPRegExt namespace.
pub const NS_TAPREGEXT: &str = "http://www.ivoa.net/xml/TAPRegExt/v1.0";
/// XML Schema instance namespace (`xsi:type`).
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The RDFa vocabulary of DALI 1.1 examples documents.
pub const EXAMPLES_VOCAB: &str = "http://www.ivoa.net/rdf/examples#";

const TAPREGEXT: &str = "ivo://ivoa.net/std/TAPRegExt";

/// Settings the documents advertise.
#[derive(Debug, Clone)]
pub struct ServiceDescription {
    /// MAXREC default (TAPRegExt `outputLimit/default`, unit `row`).
    pub max_rec_default: u64,
    /// MAXREC hard limit (`outputLimit/hard`).
    pub max_rec_hard: u64,
    /// Bytes of one uploaded table at most (`uploadLimit/hard`, unit `byte`).
    pub max_upload_bytes: u64,
    /// Rows of one uploaded table at most (TAPRegExt has room for one unit per limit, so
    /// this one is stated in the capability's description).
    pub max_upload_rows: u64,
    /// `executionDuration/default` of an async job, seconds.
    pub execution_duration_default_s: u64,
    /// `executionDuration/hard`, seconds.
    pub execution_duration_hard_s: u64,
    /// `retentionPeriod/default`, seconds.
    pub retention_default_s: u64,
    /// `retentionPeriod/hard`, seconds.
    pub retention_hard_s: u64,
    /// Whether `UPLOAD=name,http://…` is allowed (advertises `#upload-http` then).
    pub upload_by_url: bool,
    /// Whether `ivoa.ObsCore` is served (declares the ObsCore 1.1 data model).
    pub obscore: bool,
}

impl Default for ServiceDescription {
    /// The defaults of `tessera serve`.
    fn default() -> Self {
        ServiceDescription {
            max_rec_default: 100_000,
            max_rec_hard: 100_000_000,
            max_upload_bytes: 256 << 20,
            max_upload_rows: 1_000_000,
            execution_duration_default_s: 3600,
            execution_duration_hard_s: 4 * 3600,
            retention_default_s: 7 * 86400,
            retention_hard_s: 30 * 86400,
            upload_by_url: false,
            obscore: false,
        }
    }
}

// ------------------------------------------------------------------------------------------
// XML text
// ------------------------------------------------------------------------------------------

/// Escapes text for XML element content and attribute values (both quote kinds), dropping
/// the characters XML 1.0 does not allow at all (C0 controls other than tab, LF and CR,
/// U+FFFE, U+FFFF).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `<tag>text</tag>` on its own line, or nothing when the text is absent or blank.
fn elem(out: &mut String, indent: &str, tag: &str, text: Option<&str>) {
    if let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) {
        let _ = writeln!(out, "{indent}<{tag}>{}</{tag}>", xml_escape(t));
    }
}

// ------------------------------------------------------------------------------------------
// Capabilities
// ------------------------------------------------------------------------------------------

/// One `languageFeatures` group of TAPRegExt: the feature type and its `(form, description)`
/// pairs.
#[derive(Debug, Clone)]
pub struct FeatureGroup {
    /// Feature type URI, e.g. `ivo://ivoa.net/std/TAPRegExt#features-adqlgeo`.
    pub type_uri: &'static str,
    /// The features: form and description.
    pub features: Vec<(&'static str, &'static str)>,
}

/// The ADQL language features the service advertises, beyond ADQL 2.0's core: every one
/// is exercised by a query in `server/tests/vosi.rs`.
///
/// Not advertised: `REGION` (the engine rejects STC-S strings) and the ADQL 2.1
/// `#features-adql-conditional` group (COALESCE works, but STILTS 3.4.7 taplint does not know
/// that feature type and reports an error for it, `E-CAP-KEYX`).
pub fn language_features() -> Vec<FeatureGroup> {
    let geo: &[&str] = &[
        "AREA",
        "BOX",
        "CENTROID",
        "CIRCLE",
        "CONTAINS",
        "COORD1",
        "COORD2",
        "COORDSYS",
        "DISTANCE",
        "INTERSECTS",
        "POINT",
        "POLYGON",
    ];
    vec![
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-udf",
            features: Engine::functions()
                .iter()
                .map(|f| (f.form, f.description))
                .collect(),
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo",
            features: geo
                .iter()
                .map(|g| (*g, "ICRS only; other coordinate systems are rejected"))
                .collect(),
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adql-string",
            features: vec![
                ("LOWER", "converts a string to lower case"),
                ("UPPER", "converts a string to upper case"),
                ("ILIKE", "case-insensitive LIKE"),
            ],
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adql-sets",
            features: vec![
                ("UNION", "union of two query results (ALL keeps duplicates)"),
                ("EXCEPT", "rows of the first result not in the second"),
                ("INTERSECT", "rows in both results"),
            ],
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adql-common-table",
            features: vec![("WITH", "named subqueries (common table expressions)")],
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adql-type",
            features: vec![(
                "CAST",
                "conversion to SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), TIMESTAMP",
            )],
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adql-unit",
            features: vec![(
                "IN_UNIT",
                "converts a column with a declared unit to a compatible unit given as a string literal",
            )],
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adql-offset",
            features: vec![("OFFSET", "skips the first rows of the result")],
        },
        FeatureGroup {
            type_uri: "ivo://ivoa.net/std/TAPRegExt#features-adql-bitwise",
            features: vec![
                ("BIT_AND", "bitwise and of integers, written a & b"),
                ("BIT_OR", "bitwise or of integers, written a | b"),
                ("BIT_XOR", "bitwise exclusive or of integers, written a ^ b"),
                ("BIT_NOT", "bitwise complement of an integer, written ~a"),
            ],
        },
    ]
}

/// The TAPRegExt `ivo-id` of an output format, when the standard names it.
fn output_format_id(f: Format) -> Option<&'static str> {
    match f {
        Format::VoTableBinary2 => Some("ivo://ivoa.net/std/TAPRegExt#output-votable-binary2"),
        Format::VoTableTabledata => Some("ivo://ivoa.net/std/TAPRegExt#output-votable-td"),
        _ => None,
    }
}

/// The short names `RESPONSEFORMAT` accepts for a format (`votable`, `votable/b2`, `csv`, …),
/// without the MIME types: the short name first.
fn output_format_aliases(f: Format) -> Vec<&'static str> {
    let is_mime = |n: &str| {
        n.split_once('/')
            .is_some_and(|(t, _)| matches!(t, "text" | "application"))
    };
    let mut out = vec![f.short_name()];
    for n in Format::supported() {
        if !is_mime(n) && !out.contains(&n) && Format::parse(n).is_ok_and(|g| g == f) {
            out.push(n);
        }
    }
    out
}

/// The VOSI capabilities document of the TAP service whose base URL (no trailing slash
/// needed) is `tap_base_url`, e.g. `http://127.0.0.1:8080/tap`.
pub fn capabilities(tap_base_url: &str, d: &ServiceDescription) -> String {
    let base = tap_base_url.trim_end_matches('/');
    let b = xml_escape(base);
    let mut o = String::with_capacity(8192);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<vosi:capabilities xmlns:vosi=\"{NS_VOSI_CAPABILITIES}\" xmlns:vr=\"{NS_VORESOURCE}\" \
         xmlns:vs=\"{NS_VODATASERVICE}\" xmlns:tr=\"{NS_TAPREGEXT}\" xmlns:xsi=\"{NS_XSI}\">"
    );

    // TAP itself.
    o.push_str(
        "  <capability standardID=\"ivo://ivoa.net/std/TAP\" xsi:type=\"tr:TableAccess\">\n",
    );
    elem(
        &mut o,
        "    ",
        "description",
        Some(&format!(
            "ADQL 2.1 queries over HEALPix-partitioned catalogs (TAP 1.1, sync and async). \
             Uploaded tables hold at most {} rows and {} bytes.",
            d.max_upload_rows, d.max_upload_bytes
        )),
    );
    let _ = writeln!(
        o,
        "    <interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"1.1\">\n      \
         <accessURL use=\"base\">{b}</accessURL>\n    </interface>"
    );
    if d.obscore {
        o.push_str(
            "    <dataModel ivo-id=\"ivo://ivoa.net/std/ObsCore#core-1.1\">ObsCore-1.1</dataModel>\n",
        );
    }
    o.push_str("    <language>\n      <name>ADQL</name>\n");
    o.push_str("      <version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.0\">2.0</version>\n");
    o.push_str("      <version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.1\">2.1</version>\n");
    o.push_str(
        "      <description>ADQL 2.1 (queries written for ADQL 2.0 are accepted); \
         geometry in ICRS only</description>\n",
    );
    for g in language_features() {
        let _ = writeln!(
            o,
            "      <languageFeatures type=\"{}\">",
            xml_escape(g.type_uri)
        );
        for (form, description) in &g.features {
            let _ = writeln!(
                o,
                "        <feature>\n          <form>{}</form>\n          \
                 <description>{}</description>\n        </feature>",
                xml_escape(form),
                xml_escape(description)
            );
        }
        o.push_str("      </languageFeatures>\n");
    }
    o.push_str("    </language>\n");
    for f in Format::ALL {
        match output_format_id(f) {
            Some(id) => {
                let _ = writeln!(o, "    <outputFormat ivo-id=\"{id}\">");
            }
            None => o.push_str("    <outputFormat>\n"),
        }
        let _ = writeln!(o, "      <mime>{}</mime>", xml_escape(f.mime()));
        for a in output_format_aliases(f) {
            let _ = writeln!(o, "      <alias>{}</alias>", xml_escape(a));
        }
        o.push_str("    </outputFormat>\n");
    }
    let _ = writeln!(
        o,
        "    <uploadMethod ivo-id=\"{TAPREGEXT}#upload-inline\"/>"
    );
    if d.upload_by_url {
        let _ = writeln!(o, "    <uploadMethod ivo-id=\"{TAPREGEXT}#upload-http\"/>");
    }
    let _ = writeln!(
        o,
        "    <retentionPeriod>\n      <default>{}</default>\n      <hard>{}</hard>\n    </retentionPeriod>",
        d.retention_default_s,
        d.retention_hard_s.max(d.retention_default_s)
    );
    let _ = writeln!(
        o,
        "    <executionDuration>\n      <default>{}</default>\n      <hard>{}</hard>\n    </executionDuration>",
        d.execution_duration_default_s,
        d.execution_duration_hard_s
            .max(d.execution_duration_default_s)
    );
    let _ = writeln!(
        o,
        "    <outputLimit>\n      <default unit=\"row\">{}</default>\n      \
         <hard unit=\"row\">{}</hard>\n    </outputLimit>",
        d.max_rec_default.min(d.max_rec_hard),
        d.max_rec_hard
    );
    let _ = writeln!(
        o,
        "    <uploadLimit>\n      <hard unit=\"byte\">{}</hard>\n    </uploadLimit>",
        d.max_upload_bytes
    );
    o.push_str("  </capability>\n");

    // VOSI and DALI endpoints.
    let endpoint = |o: &mut String, id: &str, path: &str, version: Option<&str>| {
        let v = version
            .map(|v| format!(" role=\"std\" version=\"{v}\""))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  <capability standardID=\"{id}\">\n    <interface xsi:type=\"vs:ParamHTTP\"{v}>\n      \
             <accessURL use=\"full\">{b}/{path}</accessURL>\n    </interface>\n  </capability>"
        );
    };
    endpoint(
        &mut o,
        "ivo://ivoa.net/std/VOSI#capabilities",
        "capabilities",
        None,
    );
    endpoint(
        &mut o,
        "ivo://ivoa.net/std/VOSI#availability",
        "availability",
        None,
    );
    endpoint(
        &mut o,
        "ivo://ivoa.net/std/VOSI#tables",
        "tables",
        Some("1.1"),
    );
    // DALI 1.1 §2.3: the examples are a web page.
    let _ = writeln!(
        o,
        "  <capability standardID=\"ivo://ivoa.net/std/DALI#examples\">\n    \
         <interface xsi:type=\"vr:WebBrowser\">\n      \
         <accessURL use=\"full\">{b}/examples</accessURL>\n    </interface>\n  </capability>"
    );
    o.push_str("</vosi:capabilities>\n");
    o
}

// ------------------------------------------------------------------------------------------
// Availability
// ------------------------------------------------------------------------------------------

/// ISO 8601 UTC, whole seconds (`2025-01-31T12:00:00Z`), as `xsd:dateTime` wants.
fn iso8601(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The VOSI availability document: available since `up_since`, with `note` (omitted when
/// empty).
pub fn availability(up_since: SystemTime, note: &str) -> String {
    let mut o = String::with_capacity(512);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<vosi:availability xmlns:vosi=\"{NS_VOSI_AVAILABILITY}\">"
    );
    o.push_str("  <vosi:available>true</vosi:available>\n");
    let _ = writeln!(o, "  <vosi:upSince>{}</vosi:upSince>", iso8601(up_since));
    elem(&mut o, "  ", "vosi:note", Some(note));
    o.push_str("</vosi:availability>\n");
    o
}

// ------------------------------------------------------------------------------------------
// Tables
// ------------------------------------------------------------------------------------------

/// A column as TAP_SCHEMA.columns describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDoc {
    /// `column_name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `unit`.
    pub unit: Option<String>,
    /// `ucd`.
    pub ucd: Option<String>,
    /// `utype`.
    pub utype: Option<String>,
    /// `datatype` (a VOTable datatype: `char`, `double`, …).
    pub datatype: String,
    /// `arraysize`.
    pub arraysize: Option<String>,
    /// `xtype`.
    pub xtype: Option<String>,
    /// `principal` = 1.
    pub principal: bool,
    /// `indexed` = 1.
    pub indexed: bool,
    /// `std` = 1.
    pub std: bool,
    index: Option<i64>,
}

/// A foreign key (TAP_SCHEMA.keys with its key_columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyDoc {
    /// `key_id`.
    pub key_id: String,
    /// `target_table`.
    pub target_table: String,
    /// `(from_column, target_column)` pairs.
    pub columns: Vec<(String, String)>,
    /// `description`.
    pub description: Option<String>,
    /// `utype`.
    pub utype: Option<String>,
}

/// A table as TAP_SCHEMA.tables describes it, with its columns and foreign keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDoc {
    /// `table_name`, qualified (`schema.table`).
    pub name: String,
    /// `table_type` (`table` or `view`).
    pub table_type: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `utype`.
    pub utype: Option<String>,
    /// Row count of the catalog, when the archive knows it.
    pub nrows: Option<u64>,
    /// Columns, by `column_index` then name.
    pub columns: Vec<ColumnDoc>,
    /// Foreign keys from this table.
    pub foreign_keys: Vec<ForeignKeyDoc>,
    index: Option<i64>,
}

/// A schema as TAP_SCHEMA.schemas describes it, with its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaDoc {
    /// `schema_name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `utype`.
    pub utype: Option<String>,
    /// Tables, by `table_index` then name.
    pub tables: Vec<TableDoc>,
    index: Option<i64>,
}

/// The tables document, from TAP_SCHEMA so `/tables` and TAP_SCHEMA always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablesDoc {
    /// Schemas, by `schema_index` then name.
    pub schemas: Vec<SchemaDoc>,
}

fn internal(message: impl Into<String>) -> tessera_engine::Error {
    tessera_engine::Error::Query {
        kind: ErrorKind::Internal,
        message: message.into(),
        line: 0,
        column: 0,
    }
}

/// The rows of an ADQL query as text cells (integers as decimal text), all batches together.
struct Rows {
    names: Vec<String>,
    cols: Vec<Vec<Option<String>>>,
    len: usize,
}

impl Rows {
    async fn query(engine: &Engine, adql: &str) -> Result<Rows, tessera_engine::Error> {
        let result = engine.query(adql, &Limits::default()).await?;
        let schema = result.schema();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let (batches, _) = result.collect().await?;
        let mut cols = vec![Vec::new(); names.len()];
        let mut len = 0;
        for b in &batches {
            append_text_columns(b, &mut cols)?;
            len += b.num_rows();
        }
        Ok(Rows { names, cols, len })
    }

    fn col(&self, name: &str) -> Result<&[Option<String>], tessera_engine::Error> {
        self.names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| self.cols[i].as_slice())
            .ok_or_else(|| internal(format!("TAP_SCHEMA query returned no column {name}")))
    }

    fn text(&self, name: &str, row: usize) -> Result<Option<String>, tessera_engine::Error> {
        Ok(self.col(name)?.get(row).cloned().flatten())
    }

    fn int(&self, name: &str, row: usize) -> Result<Option<i64>, tessera_engine::Error> {
        match self.text(name, row)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| internal(format!("TAP_SCHEMA {name}: not an integer: {s}"))),
        }
    }

    fn flag(&self, name: &str, row: usize) -> Result<bool, tessera_engine::Error> {
        Ok(self.int(name, row)?.is_some_and(|v| v != 0))
    }
}

fn append_text_columns(
    b: &RecordBatch,
    cols: &mut [Vec<Option<String>>],
) -> Result<(), tessera_engine::Error> {
    for (i, out) in cols.iter_mut().enumerate() {
        let a = b.column(i);
        let cast_err = |e: arrow::error::ArrowError| internal(format!("reading TAP_SCHEMA: {e}"));
        if a.data_type().is_integer() {
            let v = arrow::compute::cast(a, &DataType::Int64).map_err(cast_err)?;
            let v = v.as_primitive::<Int64Type>();
            out.extend((0..v.len()).map(|j| v.is_valid(j).then(|| v.value(j).to_string())));
        } else {
            let v = arrow::compute::cast(a, &DataType::Utf8).map_err(cast_err)?;
            let v = v.as_string::<i32>();
            out.extend((0..v.len()).map(|j| v.is_valid(j).then(|| v.value(j).to_string())));
        }
    }
    Ok(())
}

/// Sort key: index (absent last), then name.
fn order_key(index: Option<i64>, name: &str) -> (bool, i64, String) {
    (index.is_none(), index.unwrap_or(0), name.to_string())
}

impl TablesDoc {
    /// Reads TAP_SCHEMA through the engine.
    pub async fn load(engine: &Engine) -> Result<TablesDoc, tessera_engine::Error> {
        let schemas = Rows::query(
            engine,
            "SELECT schema_name, description, utype, schema_index FROM TAP_SCHEMA.schemas",
        )
        .await?;
        let tables = Rows::query(
            engine,
            "SELECT schema_name, table_name, table_type, description, utype, table_index \
             FROM TAP_SCHEMA.tables",
        )
        .await?;
        let columns = Rows::query(
            engine,
            "SELECT table_name, column_name, description, unit, ucd, utype, datatype, \
             arraysize, xtype, principal, indexed, std, column_index FROM TAP_SCHEMA.columns",
        )
        .await?;
        let keys = Rows::query(
            engine,
            "SELECT key_id, from_table, target_table, description, utype FROM TAP_SCHEMA.keys",
        )
        .await?;
        let key_columns = Rows::query(
            engine,
            "SELECT key_id, from_column, target_column FROM TAP_SCHEMA.key_columns",
        )
        .await?;

        let mut doc = TablesDoc {
            schemas: Vec::with_capacity(schemas.len),
        };
        for r in 0..schemas.len {
            let Some(name) = schemas.text("schema_name", r)? else {
                continue;
            };
            doc.schemas.push(SchemaDoc {
                name,
                description: schemas.text("description", r)?,
                utype: schemas.text("utype", r)?,
                tables: Vec::new(),
                index: schemas.int("schema_index", r)?,
            });
        }

        // Foreign keys by key_id, then by from_table.
        let mut fk_cols: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in 0..key_columns.len {
            if let (Some(id), Some(from), Some(to)) = (
                key_columns.text("key_id", r)?,
                key_columns.text("from_column", r)?,
                key_columns.text("target_column", r)?,
            ) {
                fk_cols.entry(id).or_default().push((from, to));
            }
        }
        let mut fks: HashMap<String, Vec<ForeignKeyDoc>> = HashMap::new();
        for r in 0..keys.len {
            let (Some(key_id), Some(from), Some(target_table)) = (
                keys.text("key_id", r)?,
                keys.text("from_table", r)?,
                keys.text("target_table", r)?,
            ) else {
                continue;
            };
            let columns = fk_cols.remove(&key_id).unwrap_or_default();
            fks.entry(from.to_ascii_lowercase())
                .or_default()
                .push(ForeignKeyDoc {
                    key_id,
                    target_table,
                    columns,
                    description: keys.text("description", r)?,
                    utype: keys.text("utype", r)?,
                });
        }

        // Columns by table.
        let mut cols: HashMap<String, Vec<ColumnDoc>> = HashMap::new();
        for r in 0..columns.len {
            let (Some(table), Some(name)) = (
                columns.text("table_name", r)?,
                columns.text("column_name", r)?,
            ) else {
                continue;
            };
            cols.entry(table.to_ascii_lowercase())
                .or_default()
                .push(ColumnDoc {
                    name,
                    description: columns.text("description", r)?,
                    unit: columns.text("unit", r)?,
                    ucd: columns.text("ucd", r)?,
                    utype: columns.text("utype", r)?,
                    datatype: columns
                        .text("datatype", r)?
                        .unwrap_or_else(|| "char".to_string()),
                    arraysize: columns.text("arraysize", r)?,
                    xtype: columns.text("xtype", r)?,
                    principal: columns.flag("principal", r)?,
                    indexed: columns.flag("indexed", r)?,
                    std: columns.flag("std", r)?,
                    index: columns.int("column_index", r)?,
                });
        }

        let rows: HashMap<String, u64> = engine
            .archive()
            .catalogs()
            .iter()
            .map(|c| (c.qualified_name().to_ascii_lowercase(), c.rows))
            .collect();

        for r in 0..tables.len {
            let Some(name) = tables.text("table_name", r)? else {
                continue;
            };
            let key = name.to_ascii_lowercase();
            let mut columns = cols.remove(&key).unwrap_or_default();
            columns.sort_by_key(|c| order_key(c.index, &c.name));
            let table = TableDoc {
                table_type: tables.text("table_type", r)?,
                description: tables.text("description", r)?,
                utype: tables.text("utype", r)?,
                nrows: rows.get(&key).copied(),
                columns,
                foreign_keys: fks.remove(&key).unwrap_or_default(),
                index: tables.int("table_index", r)?,
                name,
            };
            // A table whose schema TAP_SCHEMA.schemas lacks still gets one.
            let schema_name = match tables.text("schema_name", r)? {
                Some(s) => s,
                None => table
                    .name
                    .split_once('.')
                    .map(|(s, _)| s.to_string())
                    .unwrap_or_default(),
            };
            let pos = match doc
                .schemas
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(&schema_name))
            {
                Some(p) => p,
                None => {
                    doc.schemas.push(SchemaDoc {
                        name: schema_name,
                        description: None,
                        utype: None,
                        tables: Vec::new(),
                        index: None,
                    });
                    doc.schemas.len() - 1
                }
            };
            doc.schemas[pos].tables.push(table);
        }
        doc.schemas.sort_by_key(|s| order_key(s.index, &s.name));
        for s in &mut doc.schemas {
            s.tables.sort_by_key(|t| order_key(t.index, &t.name));
        }
        Ok(doc)
    }

    /// Every table, in document order.
    pub fn tables(&self) -> impl Iterator<Item = &TableDoc> {
        self.schemas.iter().flat_map(|s| s.tables.iter())
    }

    /// The table named `name` (case-insensitive match of the qualified name).
    pub fn table(&self, name: &str) -> Option<&TableDoc> {
        let name = name.trim();
        self.tables().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The VOSI-tables 1.1 `<vosi:tableset>`; `detail_min` (`?detail=min`) leaves out the
    /// columns and foreign keys.
    pub fn render(&self, detail_min: bool) -> String {
        let mut o = String::with_capacity(if detail_min { 4096 } else { 65536 });
        o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            o,
            "<vosi:tableset xmlns:vosi=\"{NS_VOSI_TABLES}\" xmlns:vs=\"{NS_VODATASERVICE}\" \
             xmlns:xsi=\"{NS_XSI}\">"
        );
        for s in &self.schemas {
            o.push_str("  <schema>\n");
            let _ = writeln!(o, "    <name>{}</name>", xml_escape(&s.name));
            elem(&mut o, "    ", "description", s.description.as_deref());
            elem(&mut o, "    ", "utype", s.utype.as_deref());
            for t in &s.tables {
                render_table_into(&mut o, "    ", "table", "", t, !detail_min);
            }
            o.push_str("  </schema>\n");
        }
        o.push_str("</vosi:tableset>\n");
        o
    }

    /// The VOSI-tables 1.1 `<vosi:table>` of one table (`GET /tables/<schema.table>`), with
    /// its columns; `None` when TAP_SCHEMA has no such table (case-insensitive).
    pub fn render_table(&self, name: &str) -> Option<String> {
        let t = self.table(name)?;
        let mut o = String::with_capacity(16384);
        o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let ns = format!(
            " xmlns:vosi=\"{NS_VOSI_TABLES}\" xmlns:vs=\"{NS_VODATASERVICE}\" xmlns:xsi=\"{NS_XSI}\""
        );
        render_table_into(&mut o, "", "vosi:table", &ns, t, true);
        Some(o)
    }
}

/// VODataService `Table/@type`: TAP_SCHEMA's `table` is VODataService's `base_table`.
fn vods_table_type(t: &str) -> &str {
    if t.eq_ignore_ascii_case("table") {
        "base_table"
    } else {
        t
    }
}

fn render_table_into(
    o: &mut String,
    indent: &str,
    tag: &str,
    extra_attrs: &str,
    t: &TableDoc,
    with_columns: bool,
) {
    let ty = t
        .table_type
        .as_deref()
        .map(|ty| format!(" type=\"{}\"", xml_escape(vods_table_type(ty))))
        .unwrap_or_default();
    let _ = writeln!(o, "{indent}<{tag}{extra_attrs}{ty}>");
    let i1 = format!("{indent}  ");
    let i2 = format!("{indent}    ");
    let _ = writeln!(o, "{i1}<name>{}</name>", xml_escape(&t.name));
    elem(o, &i1, "description", t.description.as_deref());
    elem(o, &i1, "utype", t.utype.as_deref());
    if let Some(n) = t.nrows {
        let _ = writeln!(o, "{i1}<nrows>{n}</nrows>");
    }
    if with_columns {
        for c in &t.columns {
            let std = if c.std { " std=\"true\"" } else { "" };
            let _ = writeln!(o, "{i1}<column{std}>");
            let _ = writeln!(o, "{i2}<name>{}</name>", xml_escape(&c.name));
            elem(o, &i2, "description", c.description.as_deref());
            elem(o, &i2, "unit", c.unit.as_deref());
            elem(o, &i2, "ucd", c.ucd.as_deref());
            elem(o, &i2, "utype", c.utype.as_deref());
            let mut attrs = String::new();
            if let Some(a) = c
                .arraysize
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                let _ = write!(attrs, " arraysize=\"{}\"", xml_escape(a));
            }
            if let Some(x) = c.xtype.as_deref().map(str::trim).filter(|x| !x.is_empty()) {
                let _ = write!(attrs, " extendedType=\"{}\"", xml_escape(x));
            }
            let _ = writeln!(
                o,
                "{i2}<dataType xsi:type=\"vs:VOTableType\"{attrs}>{}</dataType>",
                xml_escape(c.datatype.trim())
            );
            if c.indexed {
                let _ = writeln!(o, "{i2}<flag>indexed</flag>");
            }
            if c.principal {
                let _ = writeln!(o, "{i2}<flag>principal</flag>");
            }
            let _ = writeln!(o, "{i1}</column>");
        }
        for k in &t.foreign_keys {
            let _ = writeln!(o, "{i1}<foreignKey>");
            let _ = writeln!(
                o,
                "{i2}<targetTable>{}</targetTable>",
                xml_escape(&k.target_table)
            );
            for (from, to) in &k.columns {
                let _ = writeln!(
                    o,
                    "{i2}<fkColumn>\n{i2}  <fromColumn>{}</fromColumn>\n{i2}  \
                     <targetColumn>{}</targetColumn>\n{i2}</fkColumn>",
                    xml_escape(from),
                    xml_escape(to)
                );
            }
            elem(o, &i2, "description", k.description.as_deref());
            elem(o, &i2, "utype", k.utype.as_deref());
            let _ = writeln!(o, "{i1}</foreignKey>");
        }
    }
    let _ = writeln!(o, "{indent}</{tag}>");
}

// ------------------------------------------------------------------------------------------
// Examples
// ------------------------------------------------------------------------------------------

/// One DALI example query.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// XML id (also the fragment of `resource`).
    pub id: &'static str,
    /// Title.
    pub name: &'static str,
    /// What it shows (plain text).
    pub description: &'static str,
    /// The ADQL (ADQL 2.0 syntax plus the declared UDFs, so that ADQL 2.0 clients and
    /// validators accept it too).
    pub query: &'static str,
    /// Tables the query reads (listed as `property="table"`).
    pub tables: &'static [&'static str],
}

/// The examples, written for the demo archive (`hipparcos.hip2`) and TAP_SCHEMA.
pub const EXAMPLES: &[Example] = &[
    Example {
        id: "cone-search",
        name: "Cone search around Sirius",
        description: "Hipparcos stars within one degree of Sirius, with CONTAINS, POINT and CIRCLE (positions in degrees, ICRS).",
        query: "SELECT HIP, ra, dec, Hpmag, Plx\n\
                FROM hipparcos.hip2\n\
                WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 101.287, -16.716, 1.0))\n\
                ORDER BY Hpmag",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "brightest",
        name: "The twenty brightest stars",
        description: "TOP with ORDER BY: the stars with the smallest Hipparcos magnitude.",
        query: "SELECT TOP 20 HIP, ra, dec, Hpmag, \"B-V\"\n\
                FROM hipparcos.hip2\n\
                ORDER BY Hpmag ASC",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "nearby-stars",
        name: "Stars within 10 parsecs",
        description: "Parallax above 100 mas, with the distance in parsecs computed in the query.",
        query: "SELECT HIP, ra, dec, Plx, e_Plx, 1000.0 / Plx AS dist_pc, Hpmag\n\
                FROM hipparcos.hip2\n\
                WHERE Plx > 100\n\
                ORDER BY Plx DESC",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "healpix-counts",
        name: "Star counts per HEALPix cell",
        description: "Counts in the 192 cells of HEALPix order 2 (NESTED), with the ivo_healpix_index function, densest first.",
        query: "SELECT hpx, COUNT(*) AS n_stars\n\
                FROM (SELECT ivo_healpix_index(2, ra, dec) AS hpx FROM hipparcos.hip2) AS cells\n\
                GROUP BY hpx\n\
                ORDER BY n_stars DESC",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "close-pairs",
        name: "Close pairs of stars",
        description: "A crossmatch of the catalogue with itself: pairs closer than 20 arcseconds, with their separation from DISTANCE.",
        query: "SELECT a.HIP AS hip_a, b.HIP AS hip_b, a.Hpmag AS hpmag_a, b.Hpmag AS hpmag_b,\n\
                  3600 * DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) AS sep_arcsec\n\
                FROM hipparcos.hip2 AS a\n\
                JOIN hipparcos.hip2 AS b\n\
                  ON 1 = CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, 20.0 / 3600))\n\
                WHERE a.HIP < b.HIP\n\
                ORDER BY sep_arcsec",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "colour-magnitude",
        name: "Colour-magnitude diagram",
        description: "Absolute Hipparcos magnitude against B-V for stars with parallaxes better than 10 per cent (a delimited identifier for the column B-V).",
        query: "SELECT HIP, \"B-V\" AS b_v, Hpmag + 5 * LOG10(Plx / 100) AS abs_hpmag\n\
                FROM hipparcos.hip2\n\
                WHERE Plx > 0 AND e_Plx < 0.1 * Plx AND \"B-V\" IS NOT NULL",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "table-columns",
        name: "Columns of a table",
        description: "TAP_SCHEMA describes every table: here the columns of hipparcos.hip2 with their types, units and UCDs.",
        query: "SELECT column_name, datatype, arraysize, unit, ucd, description\n\
                FROM TAP_SCHEMA.columns\n\
                WHERE table_name = 'hipparcos.hip2'\n\
                ORDER BY column_index",
        tables: &["TAP_SCHEMA.columns"],
    },
    Example {
        id: "list-tables",
        name: "Tables of the service",
        description: "Every table with its schema and description, from TAP_SCHEMA.",
        query: "SELECT schema_name, table_name, table_type, description\n\
                FROM TAP_SCHEMA.tables\n\
                ORDER BY schema_name, table_name",
        tables: &["TAP_SCHEMA.tables"],
    },
];

/// The DALI examples document with every example of [`EXAMPLES`] (for the demo archive).
pub fn examples(tap_base_url: &str) -> String {
    render_examples(tap_base_url, EXAMPLES.iter())
}

/// The DALI examples document with the examples whose tables all exist in `tables`: on an
/// archive without the demo catalogue only the TAP_SCHEMA examples remain.
pub fn examples_for(tap_base_url: &str, tables: &TablesDoc) -> String {
    render_examples(
        tap_base_url,
        EXAMPLES
            .iter()
            .filter(|e| e.tables.iter().all(|t| tables.table(t).is_some())),
    )
}

fn render_examples<'a>(tap_base_url: &str, list: impl Iterator<Item = &'a Example>) -> String {
    let base = tap_base_url.trim_end_matches('/');
    let mut o = String::with_capacity(8192);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n");
    o.push_str("<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n");
    o.push_str("<head>\n  <meta http-equiv=\"Content-Type\" content=\"application/xhtml+xml; charset=UTF-8\"/>\n");
    o.push_str("  <title>TAP examples</title>\n</head>\n");
    let _ = writeln!(o, "<body vocab=\"{EXAMPLES_VOCAB}\">");
    o.push_str("<h1>Example queries</h1>\n");
    let _ = writeln!(
        o,
        "<p>ADQL queries for the TAP service at <a href=\"{0}\">{0}</a>; each runs as it \
         stands (the link runs it synchronously).</p>",
        xml_escape(base)
    );
    for e in list {
        let id = xml_escape(e.id);
        let _ = writeln!(
            o,
            "<div typeof=\"example\" id=\"{id}\" resource=\"#{id}\">\n  \
             <h2 property=\"name\">{}</h2>\n  <p>{}</p>",
            xml_escape(e.name),
            xml_escape(e.description)
        );
        if !e.tables.is_empty() {
            o.push_str("  <p>Tables:");
            for (i, t) in e.tables.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let _ = write!(o, "{sep}<span property=\"table\">{}</span>", xml_escape(t));
            }
            o.push_str("</p>\n");
        }
        let _ = writeln!(
            o,
            "  <pre class=\"dali-example-query\" property=\"query\">{}</pre>",
            xml_escape(e.query)
        );
        let run: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("REQUEST", "doQuery")
            .append_pair("LANG", "ADQL")
            .append_pair("QUERY", e.query)
            .finish();
        let _ = writeln!(
            o,
            "  <p><a href=\"{}\">Run this query</a></p>\n</div>",
            xml_escape(&format!("{base}/sync?{run}"))
        );
    }
    o.push_str("</body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_illegal_characters() {
        assert_eq!(
            xml_escape("a<b & \"c\" 'd'>\u{1}\te"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\te"
        );
    }

    #[test]
    fn aliases_are_short_names() {
        assert_eq!(
            output_format_aliases(Format::VoTableBinary2),
            vec!["votable/b2", "votable"]
        );
        assert_eq!(output_format_aliases(Format::Csv), vec!["csv"]);
        assert_eq!(
            output_format_aliases(Format::VoTableTabledata),
            vec!["votable/td"]
        );
    }

    #[test]
    fn upload_http_only_when_allowed() {
        let mut d = ServiceDescription::default();
        let off = capabilities("http://h/tap/", &d);
        assert!(!off.contains("#upload-http"));
        assert!(off.contains("<accessURL use=\"base\">http://h/tap</accessURL>"));
        d.upload_by_url = true;
        assert!(capabilities("http://h/tap", &d).contains("#upload-http"));
    }

    #[test]
    fn availability_has_utc_time() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86400);
        let a = availability(t, "");
        assert!(a.contains("<vosi:upSince>1970-01-02T00:00:00Z</vosi:upSince>"));
        assert!(!a.contains("vosi:note"));
        assert!(availability(t, "ok & up").contains("<vosi:note>ok &amp; up</vosi:note>"));
    }
}
