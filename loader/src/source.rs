//! The interface every input reader implements, and the column-metadata conventions they share.
//!
//! A reader turns one input file into a sequence of Arrow [`RecordBatch`]es with one fixed
//! schema. Column metadata (unit, UCD, description, utype) travels as Arrow field metadata under
//! the keys of [`tessera_storage::columns`] (`unit`, `ucd`, `description`, `utype`, `xtype`);
//! the loader turns it into VOParquet metadata when it writes the catalog.
//!
//! Readers are opened twice by the loader (pass 1 builds the HEALPix histogram from the RA/Dec
//! columns only, pass 2 scatters the full rows), so [`open`] must be cheap and a reader must
//! produce the same rows, in the same order, every time it is opened.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// Where a row came from, for error messages: a line of a text file or a row of a table.
#[derive(Debug, Clone)]
pub enum RowLoc {
    /// Rows `first`, `first + 1`, … (1-based data row numbers, header excluded).
    Rows {
        /// 1-based number of the batch's first row in its file.
        first: u64,
    },
    /// One 1-based line number per row (text formats, where skipped rows or quoted newlines
    /// make lines and rows differ).
    Lines(Vec<u64>),
}

impl RowLoc {
    /// Describes row `i` of the batch, e.g. `line 17` or `row 5`.
    pub fn describe(&self, i: usize) -> String {
        match self {
            RowLoc::Rows { first } => format!("row {}", first + i as u64),
            RowLoc::Lines(lines) => match lines.get(i) {
                Some(l) => format!("line {l}"),
                None => format!("row {}", i + 1),
            },
        }
    }

    /// The same locations restricted to the rows whose `keep` flag is set.
    pub fn filter(&self, keep: &[bool]) -> RowLoc {
        let lines: Vec<u64> = match self {
            RowLoc::Rows { first } => (0..keep.len() as u64).map(|i| first + i).collect(),
            RowLoc::Lines(l) => l.clone(),
        };
        RowLoc::Lines(
            lines
                .into_iter()
                .zip(keep)
                .filter_map(|(l, k)| k.then_some(l))
                .collect(),
        )
    }
}

/// A batch of rows read from an input, with the locations of its rows.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows, with the reader's schema.
    pub batch: RecordBatch,
    /// Where each row came from (same length as the batch).
    pub loc: RowLoc,
}

/// One input opened for reading. Implementations are `Send` so the loader may move them to a
/// worker thread; they need not be `Sync`.
pub trait RowSource: Send {
    /// The schema of every batch this source yields, with column metadata in the fields.
    fn schema(&self) -> SchemaRef;

    /// The next batch, or `None` at the end of the input. Malformed input returns
    /// [`Error::BadInput`] naming the file, the line or row, and the column; when
    /// [`ReadOptions::bad_rows`] still has budget the reader instead records the row there and
    /// skips it.
    fn next_batch(&mut self) -> Result<Option<SourceBatch>>;

    /// Fraction of the input consumed so far, in `[0, 1]`, for the progress bar; `None` when
    /// unknown.
    fn progress(&self) -> Option<f64> {
        None
    }
}

/// Options shared by all readers.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Preferred number of rows per batch (a hint; readers may return smaller batches).
    pub batch_rows: usize,
    /// Column names the caller needs; `None` means all. A hint: readers that can skip parsing
    /// other columns should, but they may return all columns. Returned batches always use
    /// [`RowSource::schema`] restricted to these columns, in schema order, when honoured.
    pub projection: Option<Vec<String>>,
    /// Where malformed rows go when skipping is allowed.
    pub bad_rows: BadRows,
    /// Explicit column types for text formats (`name` → type), overriding inference.
    pub column_types: Vec<(String, arrow::datatypes::DataType)>,
    /// Field delimiter for delimited text; `None` picks `,` for `.csv` and TAB for `.tsv`.
    pub delimiter: Option<u8>,
    /// A CDS ReadMe describing the input (for the fixed-width CDS format); `None` looks for a
    /// `ReadMe` next to the input.
    pub readme: Option<PathBuf>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            batch_rows: 65_536,
            projection: None,
            bad_rows: BadRows::new(0),
            column_types: Vec::new(),
            delimiter: None,
            readme: None,
        }
    }
}

/// A malformed row that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The input file.
    pub file: String,
    /// `line N` or `row N`.
    pub place: String,
    /// The column at fault, when known.
    pub column: Option<String>,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.place)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Shared record of skipped rows with a budget (`--skip-bad-rows N`). Cloning shares the
/// record. The loader reads each input twice; a row offered again (same file and place) is
/// skipped without being counted twice.
#[derive(Debug, Clone)]
pub struct BadRows {
    inner: Arc<Mutex<BadRowsInner>>,
}

#[derive(Debug)]
struct BadRowsInner {
    budget: u64,
    rows: Vec<BadRow>,
    seen: std::collections::HashSet<(String, String)>,
}

impl BadRows {
    /// A record that allows up to `budget` skipped rows (0: every bad row is an error).
    pub fn new(budget: u64) -> Self {
        BadRows {
            inner: Arc::new(Mutex::new(BadRowsInner {
                budget,
                rows: Vec::new(),
                seen: std::collections::HashSet::new(),
            })),
        }
    }

    /// Offers a bad row. Returns `Ok(())` when it may be skipped (and records it), or the
    /// [`Error::BadInput`] to raise when the budget is exhausted.
    pub fn skip(&self, row: BadRow) -> Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.seen.contains(&(row.file.clone(), row.place.clone())) {
            return Ok(());
        }
        if (g.rows.len() as u64) < g.budget {
            tracing::warn!("skipping bad row: {row}");
            g.seen.insert((row.file.clone(), row.place.clone()));
            g.rows.push(row);
            Ok(())
        } else {
            let skipped = g.rows.len();
            drop(g);
            Err(Error::BadInput {
                file: row.file,
                place: row.place,
                column: row.column,
                message: if skipped > 0 {
                    format!(
                        "{} (after skipping {skipped} bad rows, the --skip-bad-rows limit)",
                        row.message
                    )
                } else {
                    row.message
                },
            })
        }
    }

    /// The rows skipped so far.
    pub fn rows(&self) -> Vec<BadRow> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows
            .clone()
    }
}

/// Input formats the loader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma- or tab-separated text with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// FITS binary table (first BINTABLE extension).
    Fits,
    /// IVOA VOTable (TABLEDATA or BINARY2).
    VoTable,
    /// CDS fixed-width ASCII described by a byte-by-byte ReadMe.
    Cds,
}

impl Format {
    /// Guesses the format from the file name (compression suffixes `.gz`/`.zst` ignored).
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(&name);
        let ext = name.rsplit('.').next()?;
        Some(match ext {
            "csv" | "tsv" | "txt" => Format::Csv,
            "parquet" | "pq" => Format::Parquet,
            "fits" | "fit" | "fts" => Format::Fits,
            "vot" | "votable" | "xml" => Format::VoTable,
            "dat" => Format::Cds,
            _ => return None,
        })
    }

    /// Parses a `--format` value.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "csv" | "tsv" => Format::Csv,
            "parquet" => Format::Parquet,
            "fits" => Format::Fits,
            "votable" | "vot" | "xml" => Format::VoTable,
            "cds" => Format::Cds,
            _ => return None,
        })
    }
}

/// Opens `path` with the reader for `format` (guessed from the name when `None`).
pub fn open(path: &Path, format: Option<Format>, opts: &ReadOptions) -> Result<Box<dyn RowSource>> {
    let format = match format.or_else(|| Format::from_path(path)) {
        Some(f) => f,
        None => {
            return Err(Error::Usage(format!(
                "cannot tell the format of {} from its name; pass --format csv|tsv|parquet|fits|votable|cds",
                path.display()
            )));
        }
    };
    match format {
        Format::Csv => Ok(Box::new(crate::read::csv::CsvSource::open(path, opts)?)),
        Format::Parquet => Ok(Box::new(crate::read::parquet::ParquetSource::open(
            path, opts,
        )?)),
        Format::Fits => Ok(Box::new(crate::read::fits::FitsSource::open(path, opts)?)),
        Format::VoTable => Ok(Box::new(crate::read::votable::VoTableSource::open(
            path, opts,
        )?)),
        Format::Cds => Ok(Box::new(crate::read::cds::CdsSource::open(path, opts)?)),
    }
}

/// Opens a file for reading, transparently decompressing `.gz` and `.zst` names.
pub fn open_maybe_compressed(path: &Path) -> Result<Box<dyn std::io::Read + Send>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let name = path.to_string_lossy();
    if name.ends_with(".zst") {
        let dec = zstd::stream::read::Decoder::new(file).map_err(|e| Error::io(path, e))?;
        Ok(Box::new(dec))
    } else if name.ends_with(".gz") {
        Err(Error::Usage(format!(
            "{}: gzip input is not supported; decompress it or recompress with zstd (.zst)",
            path.display()
        )))
    } else {
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
    }
}
