//! Workspace integration tests: one binary, one module per concern.

/// Bad input and interrupted loads: clear errors, nothing half-written, previous versions kept.
mod bad_input;
mod common;
/// Compatibility with the Python HATS stack (hats validator, LSDB cones, hats-import output).
mod compat;
/// The ADQL engine's limits and safety over real data.
mod engine;
/// Memory limits: spilling under a small pool, clean failure, bounded process RSS.
mod memory;
/// Loading and reading back: row counts and value checksums preserved.
mod roundtrip;
/// Catalogs on a real S3-compatible server (moto, started by the test).
mod s3;
/// Spatial queries against brute force on random data; pruning shown by the metrics.
mod spatial;
/// Crossmatch joins against brute force.
mod xmatch;
