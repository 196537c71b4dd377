//! Reader placeholder; replaced by the real reader in this session.

use std::path::Path;

use crate::error::{Error, Result};
use crate::source::{ReadOptions, RowSource, SourceBatch};

/// Placeholder source.
#[derive(Debug)]
pub struct ParquetSource;

impl ParquetSource {
    /// Opens the input.
    pub fn open(path: &Path, _opts: &ReadOptions) -> Result<Self> {
        Err(Error::Usage(format!("{}: reader not available yet", path.display())))
    }
}

impl RowSource for ParquetSource {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        std::sync::Arc::new(arrow::datatypes::Schema::empty())
    }
    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        Ok(None)
    }
}
