//! Tessera's offline catalog loader: input readers, the HATS partition planner and the
//! parallel partition writer.
//!
//! [`load`] reads every input twice: pass 1 builds a HEALPix histogram from the RA/Dec columns,
//! the planner turns it into partitions as hats-import does, pass 2 scatters full rows to
//! per-partition buffers (spilling to scratch files beyond `--memory-limit`), and the
//! partitions are sorted by `_healpix_29` and written in parallel. The catalog becomes visible
//! only when complete (see `tessera_storage::writer`).
#![warn(missing_docs)]

pub mod checksum;
pub mod error;
pub mod hips;
pub mod images;
pub mod obscore;
pub mod pipeline;
pub mod plan;
mod progress;
pub mod read;
pub mod source;

pub use error::{Error, Result};
pub use pipeline::{LoadOptions, LoadReport, load};
pub use plan::PlanSettings;
pub use source::{BadRow, BadRows, Format, ReadOptions};
pub use tessera_storage::{LeafCodec, LeafSettings, StoreOptions};
