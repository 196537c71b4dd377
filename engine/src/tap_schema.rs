//! TAP_SCHEMA (TAP 1.1 §4): schemas, tables, columns, keys and key_columns, built from the
//! catalogs' metadata and registered as ordinary in-memory tables so ADQL reads them like
//! any other.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::CatalogInfo;
use tessera_storage::columns::ColumnMeta;

/// The schema name.
pub(crate) const SCHEMA: &str = "TAP_SCHEMA";

/// One TAP_SCHEMA table: its name and content.
pub(crate) struct TapTable {
    pub name: &'static str,
    pub batch: RecordBatch,
}

/// VOTable datatype, arraysize and xtype of an Arrow type (TAP 1.1 §4.3).
pub(crate) fn votable_type(
    dt: &DataType,
    xtype: Option<&str>,
) -> (&'static str, Option<String>, Option<String>) {
    let x = xtype.map(str::to_string);
    match dt {
        DataType::Boolean => ("boolean", None, x),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ("short", None, x),
        DataType::Int32 | DataType::UInt16 => ("int", None, x),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ("long", None, x),
        DataType::Float16 | DataType::Float32 => ("float", None, x),
        DataType::Float64 => ("double", None, x),
        // Text is written as unicodeChar by every result writer (VOTable 1.4 `char` is ASCII).
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            ("unicodeChar", Some("*".into()), x)
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            ("unsignedByte", Some("*".into()), x)
        }
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => (
            "char",
            Some("*".into()),
            Some(x.unwrap_or_else(|| "timestamp".into())),
        ),
        DataType::FixedSizeList(f, n) => {
            let (t, _, _) = votable_type(f.data_type(), None);
            (t, Some(n.to_string()), x)
        }
        // TAP 1.0-style region columns (ObsCore s_region) are STC-S text in results.
        DataType::List(_) | DataType::LargeList(_) if x.as_deref() == Some("adql:REGION") => {
            ("char", Some("*".into()), x)
        }
        DataType::List(f) | DataType::LargeList(f) => {
            let (t, _, _) = votable_type(f.data_type(), None);
            let size = match x.as_deref() {
                Some("point") => "2",
                Some("circle") => "3",
                _ => "*",
            };
            (t, Some(size.into()), x)
        }
        _ => ("unicodeChar", Some("*".into()), x),
    }
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
fn int(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int32, nullable)
}

fn strings(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
fn ints(v: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from(v))
}

/// A column name as ADQL must write it: delimited (`"size"`, `"B-V"`, `"_healpix_29"`) when
/// it is a reserved word or not a regular identifier. TAP_SCHEMA lists names in this form
/// (TAP 1.1 §4.3), so clients can paste them into queries.
fn adql_name(name: &str) -> String {
    if crate::adql::lexer::needs_delimiting(name) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

struct ColRow {
    table: String,
    name: String,
    meta: ColumnMeta,
    datatype: &'static str,
    arraysize: Option<String>,
    xtype: Option<String>,
    indexed: bool,
    std: bool,
    index: i32,
}

/// The standard columns of the TAP_SCHEMA tables, with descriptions.
fn tap_columns() -> Vec<(&'static str, Vec<(Field, &'static str)>)> {
    vec![
        (
            "schemas",
            vec![
                (
                    utf8("schema_name", false),
                    "schema name for reference to tap_schema.schemas",
                ),
                (
                    utf8("utype", true),
                    "lists the utypes of schemas in the tableset",
                ),
                (
                    utf8("description", true),
                    "describes schemas in the tableset",
                ),
                (
                    int("schema_index", true),
                    "recommended sort order when listing schemas",
                ),
            ],
        ),
        (
            "tables",
            vec![
                (
                    utf8("schema_name", false),
                    "the schema this table belongs to",
                ),
                (utf8("table_name", false), "the fully qualified table name"),
                (utf8("table_type", false), "one of: table view"),
                (
                    utf8("utype", true),
                    "lists the utype of tables in the tableset",
                ),
                (
                    utf8("description", true),
                    "describes tables in the tableset",
                ),
                (
                    int("table_index", true),
                    "recommended sort order when listing tables",
                ),
            ],
        ),
        (
            "columns",
            vec![
                (
                    utf8("table_name", false),
                    "the table this column belongs to",
                ),
                (utf8("column_name", false), "the column name"),
                (
                    utf8("utype", true),
                    "lists the utypes of columns in the tableset",
                ),
                (
                    utf8("ucd", true),
                    "lists the UCDs of columns in the tableset",
                ),
                (
                    utf8("unit", true),
                    "lists the unit used for column values in the tableset",
                ),
                (
                    utf8("description", true),
                    "describes the columns in the tableset",
                ),
                (
                    utf8("datatype", false),
                    "lists the ADQL datatype of columns in the tableset",
                ),
                (
                    utf8("arraysize", true),
                    "lists the size of variable-length columns in the tableset",
                ),
                (
                    utf8("xtype", true),
                    "a DALI or custom extended type annotation",
                ),
                (int("size", true), "deprecated: use arraysize"),
                (
                    int("principal", false),
                    "a principal column; 1 means 1, 0 means 0",
                ),
                (
                    int("indexed", false),
                    "an indexed column; 1 means 1, 0 means 0",
                ),
                (int("std", false), "a standard column; 1 means 1, 0 means 0"),
                (
                    int("column_index", true),
                    "recommended sort order when listing columns",
                ),
            ],
        ),
        (
            "keys",
            vec![
                (utf8("key_id", false), "unique key identifier"),
                (utf8("from_table", false), "fully qualified table name"),
                (utf8("target_table", false), "fully qualified table name"),
                (
                    utf8("utype", true),
                    "lists the utype of keys in the tableset",
                ),
                (utf8("description", true), "describes keys in the tableset"),
            ],
        ),
        (
            "key_columns",
            vec![
                (utf8("key_id", false), "unique key identifier"),
                (
                    utf8("from_column", false),
                    "key column name in the from_table",
                ),
                (
                    utf8("target_column", false),
                    "key column name in the target_table",
                ),
            ],
        ),
    ]
}

fn described_schema(cols: &[(Field, &'static str)]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|(f, d)| {
                let mut m = ColumnMeta {
                    description: Some((*d).to_string()),
                    ..Default::default()
                };
                m.principal = true;
                f.clone().with_metadata(m.to_map())
            })
            .collect::<Vec<_>>(),
    ))
}

fn description(table: &str) -> &'static str {
    match table {
        "schemas" => "description of schemas in this tableset",
        "tables" => "description of tables in this tableset",
        "columns" => "description of columns in this tableset",
        "keys" => "description of foreign keys in this tableset",
        _ => "description of foreign key columns in this tableset",
    }
}

/// TAP_SCHEMA's foreign keys: (key_id, from table, target table, (from column, target
/// column), description).
#[allow(clippy::type_complexity)]
fn tap_keys() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    (&'static str, &'static str),
    &'static str,
)> {
    vec![
        (
            "tap_schema_tables_schema",
            "tables",
            "schemas",
            ("schema_name", "schema_name"),
            "the schema of a table",
        ),
        (
            "tap_schema_columns_table",
            "columns",
            "tables",
            ("table_name", "table_name"),
            "the table of a column",
        ),
        (
            "tap_schema_keys_from",
            "keys",
            "tables",
            ("from_table", "table_name"),
            "the table a key starts from",
        ),
        (
            "tap_schema_keys_target",
            "keys",
            "tables",
            ("target_table", "table_name"),
            "the table a key points to",
        ),
        (
            "tap_schema_key_columns_key",
            "key_columns",
            "keys",
            ("key_id", "key_id"),
            "the key of a key column",
        ),
    ]
}

/// Builds the five tables.
pub(crate) fn build(
    catalogs: &[CatalogInfo],
    extra: &[crate::ExtraTable],
) -> Result<Vec<TapTable>, arrow::error::ArrowError> {
    let defs = tap_columns();
    let mut schema_rows: Vec<(String, String)> = Vec::new();
    let mut table_rows: Vec<(String, String, String)> = Vec::new();
    let mut col_rows: Vec<ColRow> = Vec::new();

    schema_rows.push((
        SCHEMA.into(),
        "the tables that describe this service's tables".into(),
    ));
    for (name, cols) in &defs {
        let qualified = format!("{SCHEMA}.{name}");
        table_rows.push((SCHEMA.into(), qualified.clone(), description(name).into()));
        for (i, (f, d)) in cols.iter().enumerate() {
            let (datatype, arraysize, xtype) = votable_type(f.data_type(), None);
            col_rows.push(ColRow {
                table: qualified.clone(),
                name: adql_name(f.name()),
                meta: ColumnMeta {
                    description: Some((*d).to_string()),
                    principal: true,
                    ..Default::default()
                },
                datatype,
                arraysize,
                xtype,
                indexed: false,
                std: true,
                index: i as i32 + 1,
            });
        }
    }
    for c in catalogs {
        if !schema_rows.iter().any(|(s, _)| *s == c.schema) {
            schema_rows.push((c.schema.clone(), format!("catalogs under {}/", c.schema)));
        }
        let qualified = c.qualified_name();
        table_rows.push((
            c.schema.clone(),
            qualified.clone(),
            format!("{} rows in {} HEALPix partitions", c.rows, c.partitions),
        ));
        // Without principal flags from the catalog, the identifier (first column after
        // `_healpix_29`) and the position are what a client should show first.
        let flagged = c.columns.iter().any(|col| col.meta.principal);
        let first_data = c
            .columns
            .iter()
            .find(|col| col.name != "_healpix_29")
            .map(|col| &col.name);
        for (i, col) in c.columns.iter().enumerate() {
            let dt: DataType = col.arrow_type.clone();
            let (datatype, arraysize, xtype) = votable_type(&dt, col.meta.xtype.as_deref());
            let is_pos =
                Some(&col.name) == c.ra_dec.0.as_ref() || Some(&col.name) == c.ra_dec.1.as_ref();
            let mut meta = col.meta.clone();
            if !flagged {
                meta.principal = is_pos || Some(&col.name) == first_data;
            }
            col_rows.push(ColRow {
                table: qualified.clone(),
                name: adql_name(&col.name),
                meta,
                datatype,
                arraysize,
                xtype,
                indexed: col.name == "_healpix_29" || is_pos,
                std: false,
                index: i as i32 + 1,
            });
        }
    }
    for x in extra {
        if !schema_rows.iter().any(|(s, _)| *s == x.schema) {
            schema_rows.push((x.schema.clone(), format!("tables under {}", x.schema)));
        }
        let qualified = format!("{}.{}", x.schema, x.table);
        table_rows.push((x.schema.clone(), qualified.clone(), x.description.clone()));
        for (i, f) in x.batch.schema().fields().iter().enumerate() {
            let meta = ColumnMeta::of(f);
            let (datatype, arraysize, xtype) = votable_type(f.data_type(), meta.xtype.as_deref());
            // Columns of a data model (ObsCore) carry its utype.
            let std = meta.utype.is_some();
            col_rows.push(ColRow {
                table: qualified.clone(),
                name: adql_name(f.name()),
                meta,
                datatype,
                arraysize,
                xtype,
                indexed: false,
                std,
                index: i as i32 + 1,
            });
        }
    }

    let mut out = Vec::new();
    for (name, cols) in &defs {
        let schema = described_schema(cols);
        let columns: Vec<ArrayRef> = match *name {
            "schemas" => vec![
                strings(schema_rows.iter().map(|r| Some(r.0.clone())).collect()),
                strings(schema_rows.iter().map(|_| None).collect()),
                strings(schema_rows.iter().map(|r| Some(r.1.clone())).collect()),
                ints((0..schema_rows.len()).map(|i| Some(i as i32)).collect()),
            ],
            "tables" => vec![
                strings(table_rows.iter().map(|r| Some(r.0.clone())).collect()),
                strings(table_rows.iter().map(|r| Some(r.1.clone())).collect()),
                strings(table_rows.iter().map(|_| Some("table".into())).collect()),
                strings(table_rows.iter().map(|_| None).collect()),
                strings(table_rows.iter().map(|r| Some(r.2.clone())).collect()),
                ints((0..table_rows.len()).map(|i| Some(i as i32)).collect()),
            ],
            "columns" => vec![
                strings(col_rows.iter().map(|r| Some(r.table.clone())).collect()),
                strings(col_rows.iter().map(|r| Some(r.name.clone())).collect()),
                strings(col_rows.iter().map(|r| r.meta.utype.clone()).collect()),
                strings(col_rows.iter().map(|r| r.meta.ucd.clone()).collect()),
                strings(col_rows.iter().map(|r| r.meta.unit.clone()).collect()),
                strings(
                    col_rows
                        .iter()
                        .map(|r| r.meta.description.clone())
                        .collect(),
                ),
                strings(
                    col_rows
                        .iter()
                        .map(|r| Some(r.datatype.to_string()))
                        .collect(),
                ),
                strings(col_rows.iter().map(|r| r.arraysize.clone()).collect()),
                strings(col_rows.iter().map(|r| r.xtype.clone()).collect()),
                ints(
                    col_rows
                        .iter()
                        .map(|r| r.arraysize.as_deref().and_then(|a| a.parse().ok()))
                        .collect(),
                ),
                ints(
                    col_rows
                        .iter()
                        .map(|r| Some(r.meta.principal as i32))
                        .collect(),
                ),
                ints(col_rows.iter().map(|r| Some(r.indexed as i32)).collect()),
                ints(col_rows.iter().map(|r| Some(r.std as i32)).collect()),
                ints(col_rows.iter().map(|r| Some(r.index)).collect()),
            ],
            // TAP_SCHEMA's own foreign keys (TAP 1.1 §4); none between the catalogs yet.
            "keys" => {
                let keys = tap_keys();
                vec![
                    strings(keys.iter().map(|k| Some(k.0.to_string())).collect()),
                    strings(
                        keys.iter()
                            .map(|k| Some(format!("{SCHEMA}.{}", k.1)))
                            .collect(),
                    ),
                    strings(
                        keys.iter()
                            .map(|k| Some(format!("{SCHEMA}.{}", k.2)))
                            .collect(),
                    ),
                    strings(keys.iter().map(|_| None).collect()),
                    strings(keys.iter().map(|k| Some(k.4.to_string())).collect()),
                ]
            }
            "key_columns" => {
                let keys = tap_keys();
                vec![
                    strings(keys.iter().map(|k| Some(k.0.to_string())).collect()),
                    strings(keys.iter().map(|k| Some(k.3.0.to_string())).collect()),
                    strings(keys.iter().map(|k| Some(k.3.1.to_string())).collect()),
                ]
            }
            _ => schema
                .fields()
                .iter()
                .map(|f| arrow::array::new_empty_array(f.data_type()))
                .collect(),
        };
        let batch = RecordBatch::try_new(schema, columns)?;
        out.push(TapTable { name, batch });
    }
    Ok(out)
}
