//! Result encoding rate of the TAP formats: a 10⁶-row, 10-column catalogue-like table (ids,
//! positions, proper motions, magnitudes with nulls, a flag, a short name) in 8192-row batches,
//! as DataFusion delivers them, encoded to a sink on one thread. Throughput is in bytes of
//! *output* per second. Target from issue 5: BINARY2 ≥ 300 MB/s/core.
//!
//! Run: `cargo bench -p tessera-benches --bench votable`

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringViewArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_server::formats::{self, Format, WriterOptions};

const ROWS: usize = 1_000_000;
const BATCH: usize = 8192;

fn table() -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
        Field::new("pmra", DataType::Float32, true),
        Field::new("pmdec", DataType::Float32, true),
        Field::new("parallax", DataType::Float64, true),
        Field::new("g_mag", DataType::Float32, true),
        Field::new("flags", DataType::Int16, true),
        Field::new("n_obs", DataType::Int32, false),
        Field::new("name", DataType::Utf8View, true),
    ]));
    let mut rng = StdRng::seed_from_u64(5);
    let mut batches = Vec::new();
    let mut start = 0;
    while start < ROWS {
        let n = BATCH.min(ROWS - start);
        let mut f64s = |lo: f64, hi: f64, null: f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter((0..n).map(|_| {
                (rng.random::<f64>() >= null).then(|| rng.random_range(lo..hi))
            })))
        };
        let ra = f64s(0.0, 360.0, 0.0);
        let dec = f64s(-90.0, 90.0, 0.0);
        let plx = f64s(-1.0, 50.0, 0.2);
        let mut f32s = |lo: f32, hi: f32, null: f64| -> ArrayRef {
            Arc::new(Float32Array::from_iter((0..n).map(|_| {
                (rng.random::<f64>() >= null).then(|| rng.random_range(lo..hi))
            })))
        };
        let pmra = f32s(-100.0, 100.0, 0.2);
        let pmdec = f32s(-100.0, 100.0, 0.2);
        let g = f32s(3.0, 21.0, 0.01);
        let flags: ArrayRef =
            Arc::new(Int16Array::from_iter((0..n).map(|_| {
                (rng.random::<f64>() >= 0.3).then(|| rng.random_range(0..512))
            })));
        let nobs: ArrayRef = Arc::new(Int32Array::from_iter_values(
            (0..n).map(|_| rng.random_range(1..400)),
        ));
        let names: ArrayRef =
            Arc::new(StringViewArray::from_iter((0..n).map(|i| {
                (i % 10 != 0).then(|| format!("TYC {}-{}-1", (start + i) % 9537, i % 1000))
            })));
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (start..start + n).map(|i| i as i64 * 1_000_003),
        ));
        batches.push(
            RecordBatch::try_new(
                schema.clone(),
                vec![ids, ra, dec, pmra, pmdec, plx, g, flags, nobs, names],
            )
            .unwrap(),
        );
        start += n;
    }
    (schema, batches)
}

/// A `Write` that only counts.
#[derive(Debug, Default)]
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encode(fmt: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> u64 {
    formats::write_all(
        fmt,
        schema,
        batches,
        false,
        Count::default(),
        &WriterOptions::default(),
    )
    .unwrap()
    .0
}

fn bench(c: &mut Criterion) {
    let (schema, batches) = table();
    let mut g = c.benchmark_group("encode_1e6x10");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for fmt in [
        Format::VoTableBinary2,
        Format::VoTableTabledata,
        Format::Csv,
        Format::Json,
        Format::Fits,
        Format::Parquet,
    ] {
        let bytes = encode(fmt, &schema, &batches);
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(fmt.short_name().replace('/', "_"), |b| {
            b.iter(|| std::hint::black_box(encode(fmt, &schema, &batches)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
