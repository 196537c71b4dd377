//! Result formats of the TAP service: streaming writers from Arrow batches to bytes.
//!
//! A writer is made from the result schema ([`writer`]), takes the batches one at a time
//! ([`ResultWriter::write_batch`]) and ends with the overflow flag ([`ResultWriter::finish`],
//! which writes the trailer and hands the output back). Every writer except FITS writes its
//! header at creation and each batch as it comes, into a buffer that is passed to the
//! [`std::io::Write`] once per batch, so memory is bounded by one batch whatever the result
//! size. FITS needs the row count and the string widths in its header: its writer spools the
//! normalised batches to an anonymous temporary file (Arrow IPC) and writes everything at
//! `finish` (see [`fits`]).
//!
//! Formats ([`Format`], parsed from TAP `RESPONSEFORMAT`/`FORMAT` values by
//! [`Format::parse`]):
//!
//! * VOTable 1.4 (`version="1.4"`, namespace `http://www.ivoa.net/xml/VOTable/v1.3`, which is
//!   what STILTS 3.4 and astropy validate) with BINARY2 or TABLEDATA. **The default is
//!   BINARY2**: it keeps integer nulls exact (null mask), carries floats bit for bit, is about
//!   half the size of TABLEDATA and several times faster to write and to parse, and every
//!   TAP client (pyvo/astropy, TOPCAT/STILTS, astroquery) reads it. TABLEDATA stays one
//!   `RESPONSEFORMAT=votable/td` away for people reading results by eye.
//! * CSV (RFC 4180) and TSV (IANA `text/tab-separated-values`, backslash escapes).
//! * JSON: `{"metadata":[…],"data":[[…],…],"overflow":false}` (see [`json`]).
//! * FITS: a primary HDU without data and one BINTABLE (see [`fits`]).
//! * VOParquet: Parquet whose key-value metadata holds the VOTable description of the
//!   columns (see [`parquet`]).
//!
//! All formats share the column normalisation of [`columns`]: the same datatypes as
//! TAP_SCHEMA, timestamps as ISO 8601 text, regions as lists of doubles, and duplicate
//! column names made unique (`ra`, `ra_2`).

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

pub(crate) mod columns;
pub mod csv;
pub mod fits;
pub mod json;
pub mod parquet;
pub mod votable;

pub use votable::error_document;

/// Errors of the result writers.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// `RESPONSEFORMAT` names no format this service writes (the caller's mistake).
    #[error("unknown result format `{given}`; supported formats: {supported}")]
    UnknownFormat {
        /// The value as given.
        given: String,
        /// The accepted values, comma-separated.
        supported: String,
    },
    /// A value has no representation in the output (an unsigned 64-bit integer above
    /// 2⁶³ − 1, an Arrow type without a display form).
    #[error("column `{column}` cannot be written: {message}")]
    Unrepresentable {
        /// The result column.
        column: String,
        /// What went wrong.
        message: String,
    },
    /// Writing to the output or to the FITS spool file failed.
    #[error("writing the result: {0}")]
    Io(#[from] std::io::Error),
    /// Arrow failed (spooling batches for FITS).
    #[error("encoding the result: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The Parquet writer failed.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    /// A bug: batches that do not match the schema the writer was made for.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A result format with its serialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// VOTable 1.4, BINARY2 serialisation (the default).
    #[default]
    VoTableBinary2,
    /// VOTable 1.4, TABLEDATA serialisation.
    VoTableTabledata,
    /// Comma-separated values with a header line (RFC 4180).
    Csv,
    /// Tab-separated values with a header line.
    Tsv,
    /// JSON, see [`json`].
    Json,
    /// FITS binary table.
    Fits,
    /// VOParquet.
    Parquet,
}

/// The values [`Format::parse`] accepts, per format (case-insensitive; MIME parameters other
/// than `serialization` are ignored).
const NAMES: &[(Format, &[&str])] = &[
    (
        Format::VoTableBinary2,
        &[
            "votable",
            "application/x-votable+xml",
            "text/xml",
            "votable/b2",
            "application/x-votable+xml;serialization=binary2",
        ],
    ),
    (
        Format::VoTableTabledata,
        &[
            "votable/td",
            "application/x-votable+xml;serialization=tabledata",
        ],
    ),
    (Format::Csv, &["csv", "text/csv"]),
    (Format::Tsv, &["tsv", "text/tab-separated-values"]),
    (Format::Json, &["json", "application/json"]),
    (Format::Fits, &["fits", "application/fits"]),
    (
        Format::Parquet,
        &["parquet", "application/vnd.apache.parquet"],
    ),
];

impl Format {
    /// Every format, the default first.
    pub const ALL: [Format; 7] = [
        Format::VoTableBinary2,
        Format::VoTableTabledata,
        Format::Csv,
        Format::Tsv,
        Format::Json,
        Format::Fits,
        Format::Parquet,
    ];

    /// Parses a TAP `RESPONSEFORMAT` (or `FORMAT`) value: a short name (`votable`, `votable/td`,
    /// `csv`, `fits`, …) or a MIME type, with an optional `serialization=` parameter for
    /// VOTable (`binary2` or `tabledata`). Plain `votable`, `application/x-votable+xml` and
    /// `text/xml` mean the default, BINARY2.
    pub fn parse(value: &str) -> Result<Format, FormatError> {
        let mut parts = value.split(';');
        let main = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut serialization = None;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("serialization") {
                serialization = Some(v.trim().trim_matches('"').to_ascii_lowercase());
            }
        }
        let key = match &serialization {
            Some(s) => format!("{main};serialization={s}"),
            None => main,
        };
        NAMES
            .iter()
            .find(|(_, names)| names.contains(&key.as_str()))
            .map(|(f, _)| *f)
            .ok_or_else(|| FormatError::UnknownFormat {
                given: value.to_string(),
                supported: Format::supported().join(", "),
            })
    }

    /// Every value [`Format::parse`] accepts.
    pub fn supported() -> Vec<&'static str> {
        NAMES.iter().flat_map(|(_, n)| n.iter().copied()).collect()
    }

    /// The short name (the first alias, e.g. `votable/td`, `csv`).
    pub fn short_name(self) -> &'static str {
        match self {
            Format::VoTableBinary2 => "votable/b2",
            Format::VoTableTabledata => "votable/td",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Fits => "fits",
            Format::Parquet => "parquet",
        }
    }

    /// The MIME type that identifies the format exactly, as TAPRegExt `outputFormat/mime`
    /// lists it (with `serialization=` for VOTable).
    pub fn mime(self) -> &'static str {
        match self {
            Format::VoTableBinary2 => "application/x-votable+xml;serialization=BINARY2",
            Format::VoTableTabledata => "application/x-votable+xml;serialization=TABLEDATA",
            other => other.content_type(),
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::VoTableBinary2 | Format::VoTableTabledata => "application/x-votable+xml",
            Format::Csv => "text/csv;header=present",
            Format::Tsv => "text/tab-separated-values",
            Format::Json => "application/json",
            Format::Fits => "application/fits",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// A file name extension for results in this format (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Format::VoTableBinary2 | Format::VoTableTabledata => "vot",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Fits => "fits",
            Format::Parquet => "parquet",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// Settings of a result writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Name of the result table (VOTable `TABLE name`, FITS `EXTNAME`, VOParquet content).
    pub table_name: String,
    /// Extra `INFO name="…" value="…"` elements written after `QUERY_STATUS` in VOTables
    /// (e.g. the query text, the service version).
    pub infos: Vec<(String, String)>,
    /// Directory of the FITS spool file; `None` uses the system's temporary directory.
    pub spool_dir: Option<PathBuf>,
    /// Complete `RESOURCE` elements a VOTable carries after its results (DataLink service
    /// descriptors, DataLink 1.1 §4); other formats ignore them.
    pub resources: Vec<String>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            table_name: "result".into(),
            infos: Vec::new(),
            spool_dir: None,
            resources: Vec::new(),
        }
    }
}

/// A streaming writer of one result.
pub trait ResultWriter<W: Write>: Send {
    /// Encodes one batch (its columns must match the schema the writer was made for) and
    /// passes the bytes to the output (FITS: to its spool file).
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), FormatError>;

    /// Writes the trailer — for VOTable the `QUERY_STATUS` `OVERFLOW` INFO after the table when
    /// `overflow` is set, for JSON the `overflow` member — flushes, and returns the output.
    /// CSV, TSV, FITS and Parquet cannot say that rows were cut; the HTTP layer must use a
    /// header for them.
    fn finish(self: Box<Self>, overflow: bool) -> Result<W, FormatError>;

    /// Ends the output after the query failed midway. VOTable closes the table and appends
    /// `INFO name="QUERY_STATUS" value="ERROR"` with `message` (DALI); JSON ends with an
    /// `"error"` member; the other formats end as after the rows written so far (a client
    /// must rely on the HTTP layer, e.g. an aborted chunked transfer).
    fn finish_error(self: Box<Self>, message: &str) -> Result<W, FormatError>;
}

/// Makes a writer of `format` for results of `schema`, writing to `out`. Streaming formats
/// write their header now.
pub fn writer<W: Write + Send + 'static>(
    format: Format,
    schema: &SchemaRef,
    out: W,
    options: &WriterOptions,
) -> Result<Box<dyn ResultWriter<W>>, FormatError> {
    Ok(match format {
        Format::VoTableBinary2 => Box::new(votable::VoTableWriter::new(
            out,
            schema,
            votable::Serialization::Binary2,
            options,
        )?),
        Format::VoTableTabledata => Box::new(votable::VoTableWriter::new(
            out,
            schema,
            votable::Serialization::Tabledata,
            options,
        )?),
        Format::Csv => Box::new(csv::DelimitedWriter::new(out, schema, csv::Dialect::Csv)?),
        Format::Tsv => Box::new(csv::DelimitedWriter::new(out, schema, csv::Dialect::Tsv)?),
        Format::Json => Box::new(json::JsonWriter::new(out, schema)?),
        Format::Fits => Box::new(fits::FitsWriter::new(out, schema, options)?),
        Format::Parquet => Box::new(parquet::ParquetWriter::new(out, schema, options)?),
    })
}

/// Writes a whole result held in memory (tests, small documents).
pub fn write_all<W: Write + Send + 'static>(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    overflow: bool,
    out: W,
    options: &WriterOptions,
) -> Result<W, FormatError> {
    let mut w = writer(format, schema, out, options)?;
    for b in batches {
        w.write_batch(b)?;
    }
    w.finish(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_names_and_mime_types() {
        use Format::*;
        for (v, f) in [
            ("votable", VoTableBinary2),
            ("VOTable", VoTableBinary2),
            ("application/x-votable+xml", VoTableBinary2),
            ("text/xml", VoTableBinary2),
            (
                "application/x-votable+xml;serialization=binary2",
                VoTableBinary2,
            ),
            (
                "application/x-votable+xml; serialization=BINARY2",
                VoTableBinary2,
            ),
            ("votable/b2", VoTableBinary2),
            ("votable/td", VoTableTabledata),
            (
                "application/x-votable+xml;serialization=TABLEDATA",
                VoTableTabledata,
            ),
            ("csv", Csv),
            ("text/csv", Csv),
            ("text/csv;header=present", Csv),
            ("tsv", Tsv),
            ("text/tab-separated-values", Tsv),
            ("fits", Fits),
            ("application/fits", Fits),
            ("json", Json),
            ("application/json", Json),
            ("parquet", Parquet),
            ("application/vnd.apache.parquet", Parquet),
        ] {
            assert_eq!(Format::parse(v).unwrap(), f, "{v}");
        }
        for f in Format::ALL {
            assert_eq!(Format::parse(f.short_name()).unwrap(), f);
            assert_eq!(Format::parse(f.mime()).unwrap(), f);
            assert!(Format::parse(f.content_type()).is_ok());
        }
        assert_eq!(Format::default(), VoTableBinary2);
    }

    #[test]
    fn unknown_format_lists_the_supported_ones() {
        let e = Format::parse("application/x-votable+xml;serialization=binary").unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("unknown result format `application/x-votable+xml;serialization=binary`"),
            "{m}"
        );
        for n in [
            "votable/td",
            "csv",
            "fits",
            "application/vnd.apache.parquet",
        ] {
            assert!(m.contains(n), "{m}");
        }
        assert!(Format::parse("").is_err());
        assert!(Format::parse("xml/html").is_err());
    }
}
