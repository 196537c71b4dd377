//! `CatalogBuilder::write_leaf` of one 1M-row partition like the synthetic catalog's
//! (`_healpix_29` sorted, id, ra, dec, 5 magnitudes with errors, flags: 15 columns), at
//! ZSTD level 3 (Tessera's default) and 15 (what hats-import writes), each into a fresh staging
//! directory in a tempdir. Also prints the leaf size at each level once.
//!
//! Run: `cargo bench -p tessera-benches --bench partition_write`
#![allow(clippy::print_stderr)]

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tessera_benches::{catalog_schema, partition_batch};
use tessera_storage::healpix::{hash29, pixel_at};
use tessera_storage::{CatalogBuilder, LeafCodec, LeafSettings, Location, Pixel};

const ROWS: usize = 1_000_000;

fn write_leaf(c: &mut Criterion) {
    // An order-6 partition at the galactic centre (~0.84 deg², ~1M rows in a dense region).
    let pixel =
        Pixel::new(6, pixel_at(hash29(266.405, -28.936).expect("valid"), 6)).expect("pixel");
    let batch = partition_batch(pixel, ROWS, 20_000_000, 42);
    let schema = catalog_schema();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("write_leaf_1M");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(6));
    g.warm_up_time(Duration::from_secs(1));
    for (name, codec, level) in [
        ("lz4", LeafCodec::Lz4, 0),
        ("zstd3", LeafCodec::Zstd, 3),
        ("zstd15", LeafCodec::Zstd, 15),
    ] {
        let settings = LeafSettings {
            codec,
            zstd_level: level,
            ..LeafSettings::default()
        };
        let mut n = 0u64;
        let builder = |n: &mut u64| {
            *n += 1;
            let loc = Location::local(&dir.path().join(format!("{name}/cat{n}"))).expect("loc");
            CatalogBuilder::new(&loc, schema.clone(), &settings, dir.path()).expect("builder")
        };
        let b0 = builder(&mut n);
        let info = b0
            .write_leaf(pixel, std::slice::from_ref(&batch))
            .expect("write");
        eprintln!(
            "write_leaf_1M/{name}: leaf {:.1} MiB ({:.1} bytes/row, {} row groups)",
            info.bytes as f64 / (1 << 20) as f64,
            info.bytes as f64 / ROWS as f64,
            info.metadata.num_row_groups()
        );
        drop(b0);
        g.bench_with_input(BenchmarkId::new("codec", name), &name, |b, _| {
            b.iter_batched(
                || builder(&mut n),
                |cb| {
                    cb.write_leaf(pixel, std::slice::from_ref(&batch))
                        .expect("write");
                    cb // dropped (staging removed) outside the timed section
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, write_leaf);
criterion_main!(benches);
