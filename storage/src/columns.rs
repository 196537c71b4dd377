//! Column metadata (unit, UCD, description, utype, xtype, principal flag) and its two homes:
//! Arrow field metadata inside Tessera, and VOParquet (a VOTable document in the Parquet
//! key-value metadata) on disk.
//!
//! Inside Tessera a column's metadata is the Arrow field metadata under the keys [`UNIT`],
//! [`UCD`], [`DESCRIPTION`], [`UTYPE`], [`XTYPE`] and [`PRINCIPAL`] (`"true"`/`"false"`).
//! Writers copy it into the `IVOA.VOTable-Parquet.content` document so that TOPCAT, astropy and
//! pyarrow users see it; the Arrow field metadata also stays in the `ARROW:schema` entry.
//! VOTable has no attribute for the TAP `principal` flag, so it lives only in the Arrow field
//! metadata.
//!
//! The VOTable text is produced with `quick_xml`'s escaping; no hand-written XML parser is
//! needed here because Tessera reads its own metadata back from the Arrow fields.

use std::collections::HashMap;

use arrow::datatypes::{DataType, Field, Schema};

/// Arrow field metadata key for the unit (VOUnit string, e.g. `deg`, `mas/yr`).
pub const UNIT: &str = "unit";
/// Arrow field metadata key for the UCD (e.g. `pos.eq.ra;meta.main`).
pub const UCD: &str = "ucd";
/// Arrow field metadata key for the free-text description.
pub const DESCRIPTION: &str = "description";
/// Arrow field metadata key for the utype.
pub const UTYPE: &str = "utype";
/// Arrow field metadata key for the DALI xtype (e.g. `timestamp`).
pub const XTYPE: &str = "xtype";
/// Arrow field metadata key for the TAP principal flag (`"true"` or `"false"`).
pub const PRINCIPAL: &str = "principal";

/// Parquet key-value metadata key holding the VOParquet version (`1.0`).
pub const VOPARQUET_VERSION_KEY: &str = "IVOA.VOTable-Parquet.version";
/// Parquet key-value metadata key holding the VOTable document.
pub const VOPARQUET_CONTENT_KEY: &str = "IVOA.VOTable-Parquet.content";

/// The descriptive metadata of one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMeta {
    /// Unit, as a VOUnit string.
    pub unit: Option<String>,
    /// Unified Content Descriptor.
    pub ucd: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// Data-model utype.
    pub utype: Option<String>,
    /// DALI xtype.
    pub xtype: Option<String>,
    /// TAP principal flag.
    pub principal: bool,
}

impl ColumnMeta {
    /// Reads the metadata of an Arrow field.
    pub fn of(field: &Field) -> ColumnMeta {
        Self::from_map(field.metadata())
    }

    /// Reads the metadata from an Arrow metadata map.
    pub fn from_map(m: &HashMap<String, String>) -> ColumnMeta {
        let get = |k: &str| m.get(k).filter(|v| !v.is_empty()).cloned();
        ColumnMeta {
            unit: get(UNIT),
            ucd: get(UCD),
            description: get(DESCRIPTION),
            utype: get(UTYPE),
            xtype: get(XTYPE),
            principal: m.get(PRINCIPAL).is_some_and(|v| v == "true"),
        }
    }

    /// Writes the metadata into an Arrow metadata map (keys absent when the value is).
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for (k, v) in [
            (UNIT, &self.unit),
            (UCD, &self.ucd),
            (DESCRIPTION, &self.description),
            (UTYPE, &self.utype),
            (XTYPE, &self.xtype),
        ] {
            if let Some(v) = v {
                m.insert(k.to_string(), v.clone());
            }
        }
        if self.principal {
            m.insert(PRINCIPAL.to_string(), "true".to_string());
        }
        m
    }

    /// Returns `field` with this metadata merged over its own.
    pub fn apply(&self, field: Field) -> Field {
        let mut m = field.metadata().clone();
        m.extend(self.to_map());
        field.with_metadata(m)
    }
}

/// The VOTable `datatype` (and `arraysize`) that represents an Arrow type, or `None` when the
/// type has no VOTable equivalent.
pub fn votable_datatype(dt: &DataType) -> Option<(&'static str, Option<&'static str>)> {
    Some(match dt {
        DataType::Boolean => ("boolean", None),
        DataType::Int8 | DataType::Int16 => ("short", None),
        DataType::UInt8 => ("unsignedByte", None),
        DataType::UInt16 | DataType::Int32 => ("int", None),
        DataType::UInt32 | DataType::Int64 | DataType::UInt64 => ("long", None),
        DataType::Float16 | DataType::Float32 => ("float", None),
        DataType::Float64 => ("double", None),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("char", Some("*")),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            ("unsignedByte", Some("*"))
        }
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => ("char", Some("*")),
        _ => return None,
    })
}

/// Builds the VOParquet `IVOA.VOTable-Parquet.content` document for `schema`: one FIELD per
/// column, in order, named exactly like the Parquet columns.
pub fn voparquet_content(schema: &Schema, table_name: &str) -> String {
    use quick_xml::escape::escape;
    let mut s = String::with_capacity(256 + schema.fields().len() * 160);
    s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    s.push_str("<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n");
    s.push_str(" <RESOURCE type=\"results\">\n");
    s.push_str(&format!("  <TABLE name=\"{}\">\n", escape(table_name)));
    for f in schema.fields() {
        let meta = ColumnMeta::of(f);
        let (dt, arraysize) = votable_datatype(f.data_type()).unwrap_or(("char", Some("*")));
        s.push_str(&format!(
            "   <FIELD name=\"{}\" datatype=\"{dt}\"",
            escape(f.name())
        ));
        if let Some(a) = arraysize {
            s.push_str(&format!(" arraysize=\"{a}\""));
        }
        let xtype = meta.xtype.clone().or_else(|| match f.data_type() {
            DataType::Timestamp(_, _) => Some("timestamp".to_string()),
            _ => None,
        });
        for (k, v) in [
            ("unit", &meta.unit),
            ("ucd", &meta.ucd),
            ("utype", &meta.utype),
            ("xtype", &xtype),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}=\"{}\"", escape(v.as_str())));
            }
        }
        match &meta.description {
            Some(d) => s.push_str(&format!(
                "><DESCRIPTION>{}</DESCRIPTION></FIELD>\n",
                escape(d.as_str())
            )),
            None => s.push_str("/>\n"),
        }
    }
    s.push_str("   <PARQUET type=\"Parquet-local-XML\"/>\n");
    s.push_str("  </TABLE>\n </RESOURCE>\n</VOTABLE>\n");
    s
}

/// Reads the FIELDs of a VOParquet `IVOA.VOTable-Parquet.content` document: `(name, meta)`
/// in document order. Namespace prefixes are ignored. Malformed XML yields the fields read
/// before the fault (metadata is advisory; the Parquet schema stays authoritative).
pub fn parse_voparquet_content(xml: &str) -> Vec<(String, ColumnMeta)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out: Vec<(String, ColumnMeta)> = Vec::new();
    let mut in_field_desc = false;
    let mut in_field = false;
    while let Ok(ev) = reader.read_event() {
        match ev {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"FIELD" => {
                let mut name = None;
                let mut meta = ColumnMeta::default();
                for a in e.attributes().flatten() {
                    let v = a
                        .decode_and_unescape_value(reader.decoder())
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    match a.key.local_name().as_ref() {
                        b"name" => name = Some(v),
                        b"ID" if name.is_none() => name = Some(v),
                        b"unit" => meta.unit = Some(v),
                        b"ucd" => meta.ucd = Some(v),
                        b"utype" => meta.utype = Some(v),
                        b"xtype" => meta.xtype = Some(v),
                        _ => {}
                    }
                }
                out.push((name.unwrap_or_default(), meta));
                // An Empty element has no children; a Start one may hold a DESCRIPTION.
                in_field = xml_is_start(&reader, xml);
            }
            Event::Start(e) if in_field && e.local_name().as_ref() == b"DESCRIPTION" => {
                in_field_desc = true;
            }
            Event::Text(t) if in_field_desc => {
                if let (Some(last), Ok(text)) = (out.last_mut(), t.decode()) {
                    last.1
                        .description
                        .get_or_insert_with(String::new)
                        .push_str(&text);
                }
            }
            // quick-xml reports `&amp;`, `&#65;` … as separate events.
            Event::GeneralRef(r) if in_field_desc => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => r.decode().ok().and_then(|name| {
                        quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
                    }),
                };
                if let (Some(last), Some(text)) = (out.last_mut(), resolved) {
                    last.1
                        .description
                        .get_or_insert_with(String::new)
                        .push_str(&text);
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"DESCRIPTION" => {
                in_field_desc = false;
                if let Some(d) = out.last_mut().and_then(|l| l.1.description.as_mut()) {
                    *d = d.trim().to_string();
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"FIELD" => in_field = false,
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// Whether the element just read ended with `>` rather than `/>`.
fn xml_is_start(reader: &quick_xml::Reader<&[u8]>, xml: &str) -> bool {
    let pos = reader.buffer_position() as usize;
    !xml.as_bytes()[..pos.min(xml.len())].ends_with(b"/>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voparquet_document_names_fields_in_order_with_metadata() {
        let ra = ColumnMeta {
            unit: Some("deg".into()),
            ucd: Some("pos.eq.ra;meta.main".into()),
            description: Some("Right ascension <ICRS> & more".into()),
            ..Default::default()
        }
        .apply(Field::new("ra", DataType::Float64, false));
        let schema = Schema::new(vec![Field::new("_healpix_29", DataType::Int64, false), ra]);
        let doc = voparquet_content(&schema, "t");
        let a = doc.find("name=\"_healpix_29\" datatype=\"long\"").unwrap();
        let b = doc
            .find("name=\"ra\" datatype=\"double\" unit=\"deg\" ucd=\"pos.eq.ra;meta.main\"")
            .unwrap();
        assert!(a < b);
        assert!(doc.contains("Right ascension &lt;ICRS&gt; &amp; more"));
        assert!(doc.contains("<PARQUET type=\"Parquet-local-XML\"/>"));
    }

    #[test]
    fn voparquet_document_parses_back_with_any_prefix() {
        let ra = ColumnMeta {
            unit: Some("deg".into()),
            ucd: Some("pos.eq.ra;meta.main".into()),
            description: Some("RA & <more>".into()),
            ..Default::default()
        }
        .apply(Field::new("ra", DataType::Float64, false));
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false), ra]);
        let back = parse_voparquet_content(&voparquet_content(&schema, "t"));
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].0, "id");
        assert_eq!(back[1].1.unit.as_deref(), Some("deg"));
        assert_eq!(back[1].1.description.as_deref(), Some("RA & <more>"));
        let astropy = r#"<ns0:VOTABLE xmlns:ns0="http://www.ivoa.net/xml/VOTable/v1.3"><ns0:RESOURCE><ns0:TABLE><ns0:FIELD name="g" datatype="float" unit="mag"/><ns0:FIELD name="h" datatype="int"><ns0:DESCRIPTION>x</ns0:DESCRIPTION></ns0:FIELD></ns0:TABLE></ns0:RESOURCE></ns0:VOTABLE>"#;
        let back = parse_voparquet_content(astropy);
        assert_eq!(back[0].1.unit.as_deref(), Some("mag"));
        assert_eq!(back[1].1.description.as_deref(), Some("x"));
        assert!(back[0].1.description.is_none());
    }

    #[test]
    fn metadata_round_trips_through_field() {
        let m = ColumnMeta {
            unit: Some("mag".into()),
            principal: true,
            ..Default::default()
        };
        let f = m.apply(Field::new("g", DataType::Float32, true));
        assert_eq!(ColumnMeta::of(&f), m);
    }
}
