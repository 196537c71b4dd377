//! The loader's error type, classified by who is at fault.

use std::path::Path;

/// Errors raised while loading a catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is malformed at a known place (user's data at fault).
    #[error("{file}: {place}{}: {message}", column.as_ref().map(|c| format!(", column {c}")).unwrap_or_default())]
    BadInput {
        /// The input file.
        file: String,
        /// `line N`, `row N`, `header`, `byte N` …
        place: String,
        /// The column at fault, when known.
        column: Option<String>,
        /// What is wrong and, where possible, what was expected.
        message: String,
    },
    /// The command line or options are inconsistent (user at fault).
    #[error("{0}")]
    Usage(String),
    /// Reading an input or writing spill files failed (environment at fault).
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The load needs more memory than `--memory-limit` allows.
    #[error("resources exhausted: {0}")]
    ResourcesExhausted(String),
    /// The catalog store rejected an operation.
    #[error(transparent)]
    Storage(#[from] tessera_storage::Error),
    /// A FITS image could not be used (its message names the file, the HDU and the card).
    #[error(transparent)]
    Image(#[from] tessera_storage::image::ImageError),
    /// Arrow failed on data the loader built (a bug unless the message says otherwise).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet input could not be read.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A bug in Tessera; please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A malformed-input error.
    pub fn bad(
        file: impl Into<String>,
        place: impl Into<String>,
        column: Option<&str>,
        message: impl Into<String>,
    ) -> Error {
        Error::BadInput {
            file: file.into(),
            place: place.into(),
            column: column.map(str::to_string),
            message: message.into(),
        }
    }
}

/// Result alias of the loader.
pub type Result<T, E = Error> = std::result::Result<T, E>;
