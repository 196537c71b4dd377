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
