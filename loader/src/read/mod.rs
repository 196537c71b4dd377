//! Input readers, one module per format. Each implements [`crate::source::RowSource`].

pub mod cds;
pub mod csv;
pub mod fits;
pub mod parquet;
pub mod votable;
