//! Tessera's on-disk format: HATS v1.0 catalogs (byte-compatible with hats/LSDB 0.11), HEALPix
//! helpers on `cdshealpix`, and object-store access (local paths, `file://`, `s3://`,
//! `memory://`).
//!
//! This crate knows neither DataFusion nor HTTP and starts no runtime: its I/O functions are
//! `async` and run on the caller's runtime; [`writer::CatalogBuilder::write_leaf`] is
//! synchronous and meant for the loader's rayon threads.
//!
//! ```
//! use tessera_storage::healpix::{hash29, pixel_at};
//! let h = hash29(101.28854, -16.71314).unwrap(); // Sirius
//! assert_eq!(pixel_at(h, 0), 5); // equatorial base cell centred on RA 90°
//! ```
#![deny(missing_docs)]

pub mod columns;
pub mod error;
pub mod healpix;
pub mod image;
pub mod pixel;
pub mod properties;
pub mod reader;
pub mod skymap;
pub mod store;
pub mod writer;

pub use error::{Error, Result};
pub use pixel::Pixel;
pub use properties::Properties;
pub use reader::{Catalog, CatalogEntry, list_catalogs};
pub use skymap::Skymap;
pub use store::{Location, StoreOptions};
pub use writer::{
    CatalogBuilder, HEALPIX_COLUMN, LeafCodec, LeafSettings, LeafWriter, StagedCatalog,
};
