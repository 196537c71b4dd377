//! Tessera's offline catalog loader: input readers, the HATS partition planner and the
//! parallel partition writer.
#![warn(missing_docs)]

pub mod error;
pub mod read;
pub mod source;

pub use error::{Error, Result};
