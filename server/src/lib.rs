//! Tessera's server and command-line interface: the only crate that knows HTTP and wire
//! formats. Issue 2 serves `/` (an HTML page listing the catalogs) and `/health`; the IVOA
//! protocols arrive with later issues.

pub mod cli;
pub mod config;
pub mod datalink;
pub mod demo;
pub mod formats;
pub mod hips;
pub mod images;
pub mod query_cli;
pub mod routes;
pub mod scs;
pub mod sia;
pub mod soda;
pub mod tap;
pub mod viewer;
