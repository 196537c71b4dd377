//! HEALPix hashing and cone coverage.
//!
//! * `hash29_1M`: the `_healpix_29` of 1M random positions (uniform on the sphere, fixed
//!   seed), through `tessera_storage::healpix::hash29_unchecked` (degrees in; wraps RA, clamps
//!   Dec, looks the layer up) and through a direct `cdshealpix::nested::get(29).hash` loop on
//!   the same degrees (converted to radians in the loop).
//! * `cone_ranges`: `_healpix_29` range sets of cones of radius 1″, 1′, 1° and 10°, cycling
//!   through 64 random centres.
//!
//! Run: `cargo bench -p tessera-benches --bench healpix`
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_storage::healpix::{cone_ranges, hash29_unchecked};

const POINTS: usize = 1_000_000;

fn random_positions(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let ra = rng.random::<f64>() * 360.0;
            let dec = (2.0 * rng.random::<f64>() - 1.0).asin().to_degrees();
            (ra, dec)
        })
        .unzip()
}

fn hash29(c: &mut Criterion) {
    let (ra, dec) = random_positions(POINTS, 29);
    let mut g = c.benchmark_group("hash29_1M");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("tessera_hash29_unchecked", |b| {
        b.iter(|| {
            let (ra, dec) = (black_box(&ra), black_box(&dec));
            let mut acc = 0i64;
            for i in 0..ra.len() {
                acc ^= black_box(hash29_unchecked(ra[i], dec[i]));
            }
            acc
        })
    });
    g.bench_function("cdshealpix_nested_get29_hash", |b| {
        b.iter(|| {
            let (ra, dec) = (black_box(&ra), black_box(&dec));
            let layer = cdshealpix::nested::get(29);
            let mut acc = 0u64;
            for i in 0..ra.len() {
                acc ^= black_box(layer.hash(ra[i].to_radians(), dec[i].to_radians()));
            }
            acc
        })
    });
    g.finish();
}

fn cones(c: &mut Criterion) {
    let (ra, dec) = random_positions(64, 7);
    let mut g = c.benchmark_group("cone_ranges");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(3));
    for (label, radius_deg) in [
        ("1arcsec", 1.0 / 3600.0),
        ("1arcmin", 1.0 / 60.0),
        ("1deg", 1.0),
        ("10deg", 10.0),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(label), &radius_deg, |b, &r| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % ra.len();
                let set = cone_ranges(black_box(ra[i]), black_box(dec[i]), black_box(r))
                    .expect("valid cone");
                set.ranges().len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, hash29, cones);
criterion_main!(benches);
