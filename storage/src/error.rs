//! The storage error type, classified by who is at fault.

/// Errors raised while reading or writing catalogs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A catalog URL or option is malformed (caller at fault).
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was being parsed, e.g. `catalog URL`.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A coordinate is outside its range or not finite (data at fault).
    #[error("invalid position: {0}")]
    Position(String),
    /// A file the catalog requires is absent.
    #[error("missing {what} in catalog at {root}")]
    Missing {
        /// The catalog location.
        root: String,
        /// The file that is missing, e.g. `partition_info.csv`.
        what: String,
    },
    /// A catalog file is present but malformed (whoever wrote it is at fault).
    #[error("{file}: {message}")]
    Malformed {
        /// The file.
        file: String,
        /// What is wrong, with line numbers where they apply.
        message: String,
    },
    /// The object store failed (environment at fault).
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A bug in Tessera; please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Result alias of the storage crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
