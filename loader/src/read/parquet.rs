//! Apache Parquet input, through the parquet crate's Arrow reader. Column metadata comes from
//! the Arrow field metadata and, where present, the VOParquet document (which wins).

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use tessera_storage::columns::{ColumnMeta, VOPARQUET_CONTENT_KEY, parse_voparquet_content};

use crate::error::{Error, Result};
use crate::source::{ReadOptions, RowLoc, RowSource, SourceBatch};

/// A Parquet file opened for reading.
pub struct ParquetSource {
    file: String,
    schema: SchemaRef,
    reader: ParquetRecordBatchReader,
    rows_read: u64,
    total_rows: u64,
}

impl std::fmt::Debug for ParquetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSource")
            .field("file", &self.file)
            .finish()
    }
}

impl ParquetSource {
    /// Opens `path` and reads its footer.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let file = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
            Error::bad(
                &file,
                "footer",
                None,
                format!("not a readable Parquet file: {e}"),
            )
        })?;
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        // Column metadata from VOParquet, if any.
        let vo: Vec<(String, ColumnMeta)> = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == VOPARQUET_CONTENT_KEY))
            .and_then(|k| k.value.as_deref())
            .map(parse_voparquet_content)
            .unwrap_or_default();
        let arrow_schema = builder.schema().clone();
        let indices: Vec<usize> = match &opts.projection {
            Some(cols) => (0..arrow_schema.fields().len())
                .filter(|&i| cols.contains(arrow_schema.field(i).name()))
                .collect(),
            None => (0..arrow_schema.fields().len()).collect(),
        };
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices.clone());
        let fields: Vec<Field> = indices
            .iter()
            .map(|&i| {
                let f = arrow_schema.field(i).clone();
                match vo.iter().find(|(n, _)| n == f.name()) {
                    Some((_, m)) => m.apply(f),
                    None => f,
                }
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let reader = builder
            .with_projection(mask)
            .with_batch_size(opts.batch_rows.max(1))
            .build()
            .map_err(|e| Error::bad(&file, "footer", None, e.to_string()))?;
        Ok(ParquetSource {
            file,
            schema,
            reader,
            rows_read: 0,
            total_rows,
        })
    }
}

impl RowSource for ParquetSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        match self.reader.next() {
            None => Ok(None),
            Some(Err(e)) => Err(Error::bad(
                &self.file,
                format!("row {}", self.rows_read + 1),
                None,
                format!("cannot decode: {e}"),
            )),
            Some(Ok(b)) => {
                let first = self.rows_read + 1;
                self.rows_read += b.num_rows() as u64;
                // Re-attach the field metadata (the reader's batches carry the file schema).
                let batch = b.with_schema(self.schema.clone())?;
                Ok(Some(SourceBatch {
                    batch,
                    loc: RowLoc::Rows { first },
                }))
            }
        }
    }

    fn progress(&self) -> Option<f64> {
        (self.total_rows > 0).then(|| self.rows_read as f64 / self.total_rows as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, RecordBatch};
    use arrow::datatypes::DataType;

    #[test]
    fn reads_rows_projection_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let ra = ColumnMeta {
            unit: Some("deg".into()),
            ucd: Some("pos.eq.ra;meta.main".into()),
            ..Default::default()
        }
        .apply(Field::new("ra", DataType::Float64, false));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            ra,
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>())),
                Arc::new(Float64Array::from(
                    (0..1000).map(|i| i as f64 / 10.0).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), schema, None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();

        let opts = ReadOptions {
            batch_rows: 300,
            ..Default::default()
        };
        let mut src = ParquetSource::open(&p, &opts).unwrap();
        assert_eq!(
            ColumnMeta::of(src.schema().field(1)).ucd.as_deref(),
            Some("pos.eq.ra;meta.main")
        );
        let mut n = 0;
        let mut firsts = vec![];
        while let Some(b) = src.next_batch().unwrap() {
            if let RowLoc::Rows { first } = b.loc {
                firsts.push(first);
            }
            n += b.batch.num_rows();
        }
        assert_eq!(n, 1000);
        assert_eq!(firsts, vec![1, 301, 601, 901]);

        let opts = ReadOptions {
            projection: Some(vec!["ra".into()]),
            ..Default::default()
        };
        let src = ParquetSource::open(&p, &opts).unwrap();
        assert_eq!(src.schema().fields().len(), 1);

        std::fs::write(dir.path().join("bad.parquet"), b"PAR1 nonsense").unwrap();
        let e = ParquetSource::open(&dir.path().join("bad.parquet"), &ReadOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("bad.parquet: footer"), "{e}");
    }
}
