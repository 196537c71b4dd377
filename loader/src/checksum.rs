//! Order-independent checksums of table contents, to prove that a load preserved every value.
//!
//! Each row is encoded with Arrow's row format (a canonical byte encoding per data type, nulls
//! included), hashed with SipHash under fixed keys, and the row hashes are summed modulo 2^64,
//! so the result does not depend on row order or batch boundaries.

use std::hash::Hasher;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};

/// A running checksum over rows of a fixed set of columns.
#[derive(Debug)]
pub struct Checksum {
    columns: Vec<String>,
    converter: Option<RowConverter>,
    /// Rows seen.
    pub rows: u64,
    /// Sum of row hashes.
    pub sum: u64,
}

impl Checksum {
    /// A checksum over `columns` (by name, in this order).
    pub fn new(columns: Vec<String>) -> Checksum {
        Checksum {
            columns,
            converter: None,
            rows: 0,
            sum: 0,
        }
    }

    /// Adds a batch holding (at least) the checksum's columns.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let cols = self
            .columns
            .iter()
            .map(|c| {
                batch
                    .column_by_name(c)
                    .cloned()
                    .ok_or_else(|| Error::Usage(format!("checksum: no column `{c}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        if self.converter.is_none() {
            let fields = cols
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect();
            self.converter = Some(RowConverter::new(fields)?);
        }
        let conv = self
            .converter
            .as_ref()
            .ok_or_else(|| Error::Internal("row converter".into()))?;
        let rows = conv.convert_columns(&cols)?;
        for r in rows.iter() {
            let mut h = std::hash::DefaultHasher::new();
            h.write(r.as_ref());
            self.sum = self.sum.wrapping_add(h.finish());
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// `rows:sum` in hex, for printing and comparing.
    pub fn digest(&self) -> String {
        format!("{}:{:016x}", self.rows, self.sum)
    }
}

/// The names of `schema`'s columns except `_healpix_29`.
pub fn data_columns(schema: &SchemaRef) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != tessera_storage::HEALPIX_COLUMN)
        .collect()
}

/// Checksum of every row of a catalog over `columns` (default: all but `_healpix_29`).
pub async fn catalog_checksum(
    catalog: &tessera_storage::Catalog,
    columns: Option<Vec<String>>,
) -> Result<Checksum> {
    let columns = columns.unwrap_or_else(|| data_columns(&catalog.schema));
    let mut sum = Checksum::new(columns.clone());
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    for p in &catalog.partitions {
        for b in catalog.read_partition(*p, Some(&names)).await? {
            sum.add(&b)?;
        }
    }
    Ok(sum)
}

/// Checksum of every row of input files, read as the loader reads them.
pub fn source_checksum(
    inputs: &[std::path::PathBuf],
    format: Option<crate::source::Format>,
    opts: &crate::source::ReadOptions,
    columns: Option<Vec<String>>,
) -> Result<Checksum> {
    let mut sum: Option<Checksum> = None;
    for p in inputs {
        let mut src = crate::source::open(p, format, opts)?;
        let s = sum.get_or_insert_with(|| {
            Checksum::new(
                columns
                    .clone()
                    .unwrap_or_else(|| data_columns(&src.schema())),
            )
        });
        while let Some(b) = src.next_batch()? {
            s.add(&b.batch)?;
        }
    }
    sum.ok_or_else(|| Error::Usage("no inputs".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(ids: Vec<i64>, xs: Vec<Option<f64>>, s: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Float64Array::from(xs)),
                Arc::new(StringArray::from(s)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn independent_of_row_order_and_sensitive_to_any_value() {
        let cols = vec!["id".to_string(), "x".into(), "s".into()];
        let mut a = Checksum::new(cols.clone());
        a.add(&batch(
            vec![1, 2, 3],
            vec![Some(1.5), None, Some(3.0)],
            vec![Some("a"), Some("b"), None],
        ))
        .unwrap();
        let mut b = Checksum::new(cols.clone());
        b.add(&batch(vec![3], vec![Some(3.0)], vec![None])).unwrap();
        b.add(&batch(
            vec![2, 1],
            vec![None, Some(1.5)],
            vec![Some("b"), Some("a")],
        ))
        .unwrap();
        assert_eq!(a.digest(), b.digest());
        let mut c = Checksum::new(cols);
        c.add(&batch(
            vec![1, 2, 3],
            vec![Some(1.5), Some(0.0), Some(3.0)],
            vec![Some("a"), Some("b"), None],
        ))
        .unwrap();
        assert_ne!(a.digest(), c.digest(), "null vs 0.0 must differ");
    }
}
