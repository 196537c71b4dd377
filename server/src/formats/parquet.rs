//! VOParquet results: Parquet whose key-value metadata carries
//! `IVOA.VOTable-Parquet.version` = `1.0` and `IVOA.VOTable-Parquet.content`, a VOTable with
//! the `FIELD`s of the result (the same `FIELD`s as the VOTable formats write, no data), so
//! that TOPCAT, astropy and pyarrow users see units, UCDs and descriptions.
//!
//! The columns keep their Arrow types (timestamps stay Parquet timestamps, regions lists of
//! doubles); only duplicate names are made unique like in the other formats. The Arrow field
//! metadata also travels in the `ARROW:schema` entry. ZSTD level 3; row groups are cut at 64 Ki
//! rows or 64 MiB, which bounds the writer's memory (Parquet cannot stream below a row group).

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::columns::col_specs;
use super::votable::metadata_document;
use super::{FormatError, ResultWriter, WriterOptions};

/// Parquet key-value metadata key of the VOParquet version.
pub const VERSION_KEY: &str = "IVOA.VOTable-Parquet.version";
/// Parquet key-value metadata key of the VOTable document.
pub const CONTENT_KEY: &str = "IVOA.VOTable-Parquet.content";

/// Streaming VOParquet writer.
#[derive(Debug)]
pub struct ParquetWriter<W: Write + Send> {
    inner: ArrowWriter<W>,
    schema: SchemaRef,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// Starts the file (nothing is written before the first row group is full).
    pub fn new(out: W, schema: &SchemaRef, options: &WriterOptions) -> Result<Self, FormatError> {
        let specs = col_specs(schema);
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(&specs)
            .map(|(f, s)| f.as_ref().clone().with_name(s.name.clone()))
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(64 * 1024))
            .set_max_row_group_bytes(Some(64 << 20))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(VERSION_KEY.into(), "1.0".to_string()),
                KeyValue::new(
                    CONTENT_KEY.into(),
                    metadata_document(&schema, &options.table_name),
                ),
            ]))
            .build();
        let inner = ArrowWriter::try_new(out, schema.clone(), Some(props))?;
        Ok(ParquetWriter { inner, schema })
    }
}

impl<W: Write + Send> ResultWriter<W> for ParquetWriter<W> {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let b = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        self.inner.write(&b)?;
        Ok(())
    }

    fn finish(self: Box<Self>, _overflow: bool) -> Result<W, FormatError> {
        let mut out = self.inner.into_inner()?;
        out.flush()?;
        Ok(out)
    }

    fn finish_error(self: Box<Self>, _message: &str) -> Result<W, FormatError> {
        self.finish(false)
    }
}
