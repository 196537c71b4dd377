//! Geometry kernels of `tessera_engine::geom`, in rows per second (single-threaded), on 1M
//! positions uniform on the sphere (fixed seed):
//!
//! * `point_in_circle/<r>`: the `adql_point_in_circle` kernel with a constant circle of
//!   radius 1″, 1°, 10° and 60° over RA/Dec columns.
//! * `point_in_polygon/<shape>`: the `adql_point_in_polygon` kernel with a constant 4-vertex
//!   polygon (a 10° box), a convex 20-vertex polygon and a non-convex 20-vertex star, all of
//!   about 10° radius.
//! * `distance`: `adql_distance` from every row to a fixed position.
//! * `contains_generic`: `adql_contains(point column, constant circle of 10°)`, the generic
//!   region path on List<Float64> values.
//!
//! Run: `cargo bench -p tessera-benches --bench geometry`
use std::hint::black_box;
use std::time::Duration;

use arrow::array::Float64Array;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_engine::geom::kernels::{self, Geom, Num};

const POINTS: usize = 1_000_000;

fn random_positions(n: usize, seed: u64) -> (Float64Array, Float64Array) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (ra, dec): (Vec<f64>, Vec<f64>) = (0..n)
        .map(|_| {
            let ra = rng.random::<f64>() * 360.0;
            let dec = (2.0 * rng.random::<f64>() - 1.0).asin().to_degrees();
            (ra, dec)
        })
        .unzip();
    (Float64Array::from(ra), Float64Array::from(dec))
}

/// A polygon of `n` vertices around (ra, dec): radius `r` degrees, alternating with `r2`
/// (equal radii give a convex polygon).
fn ring(ra: f64, dec: f64, n: usize, r: f64, r2: f64) -> Vec<f64> {
    let (a, d) = (ra.to_radians(), dec.to_radians());
    let c = [d.cos() * a.cos(), d.cos() * a.sin(), d.sin()];
    let e = [-a.sin(), a.cos(), 0.0];
    let no = [
        c[1] * e[2] - c[2] * e[1],
        c[2] * e[0] - c[0] * e[2],
        c[0] * e[1] - c[1] * e[0],
    ];
    let mut out = Vec::new();
    for k in 0..n {
        let rho = if k % 2 == 0 { r } else { r2 }.to_radians();
        let pa = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
        let v: Vec<f64> = (0..3)
            .map(|i| rho.cos() * c[i] + rho.sin() * (pa.cos() * no[i] + pa.sin() * e[i]))
            .collect();
        let ra = v[1].atan2(v[0]).to_degrees().rem_euclid(360.0);
        let dec = v[2].atan2(v[0].hypot(v[1])).to_degrees();
        out.extend([ra, dec]);
    }
    out
}

fn point_in_circle(c: &mut Criterion) {
    let (ra, dec) = random_positions(POINTS, 1);
    let mut g = c.benchmark_group("point_in_circle");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.sample_size(20);
    for (label, r) in [
        ("1arcsec", 1.0 / 3600.0),
        ("1deg", 1.0),
        ("10deg", 10.0),
        ("60deg", 60.0),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(label), &r, |b, &r| {
            b.iter(|| {
                kernels::point_in_circle(
                    Num::Array(black_box(&ra)),
                    Num::Array(black_box(&dec)),
                    Num::Scalar(Some(150.0)),
                    Num::Scalar(Some(20.0)),
                    Num::Scalar(Some(r)),
                    POINTS,
                )
                .expect("valid")
            })
        });
    }
    g.finish();
}

fn point_in_polygon(c: &mut Criterion) {
    let (ra, dec) = random_positions(POINTS, 2);
    let mut g = c.benchmark_group("point_in_polygon");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.sample_size(20);
    let shapes = [
        (
            "box4",
            vec![145.0, 15.0, 155.0, 15.0, 155.0, 25.0, 145.0, 25.0],
        ),
        ("convex20", ring(150.0, 20.0, 20, 10.0, 10.0)),
        ("star20", ring(150.0, 20.0, 20, 10.0, 5.0)),
    ];
    for (label, poly) in &shapes {
        g.bench_with_input(BenchmarkId::from_parameter(label), poly, |b, poly| {
            b.iter(|| {
                kernels::point_in_polygon(
                    Num::Array(black_box(&ra)),
                    Num::Array(black_box(&dec)),
                    Geom::Scalar(Some(poly)),
                    POINTS,
                )
                .expect("valid")
            })
        });
    }
    g.finish();
}

fn distance(c: &mut Criterion) {
    let (ra, dec) = random_positions(POINTS, 3);
    let mut g = c.benchmark_group("distance");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.sample_size(20);
    g.bench_function("to_fixed_point", |b| {
        b.iter(|| {
            kernels::distance(
                Num::Array(black_box(&ra)),
                Num::Array(black_box(&dec)),
                Num::Scalar(Some(150.0)),
                Num::Scalar(Some(20.0)),
                POINTS,
            )
            .expect("valid")
        })
    });
    g.finish();
}

fn contains_generic(c: &mut Criterion) {
    let (ra, dec) = random_positions(POINTS, 4);
    let points = kernels::make_point(Num::Array(&ra), Num::Array(&dec), POINTS).expect("valid");
    let circle = [150.0, 20.0, 10.0];
    let mut g = c.benchmark_group("contains_generic");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("point_list_in_circle_10deg", |b| {
        b.iter(|| {
            kernels::contains(
                Geom::Array(black_box(&points)),
                Geom::Scalar(Some(&circle)),
                POINTS,
            )
            .expect("valid")
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    point_in_circle,
    point_in_polygon,
    distance,
    contains_generic
);
criterion_main!(benches);
