//! ADQL front-end cost: parse only, parse + translate, and parse + translate + DataFusion
//! logical plan, for typical queries over the demo Hipparcos catalogue (loaded once into a
//! tempdir). Target from issue 3: well under a millisecond for a cone query.
//!
//! Run: `cargo bench -p tessera-benches --bench adql`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_engine::adql::ParseLimits;
use tessera_engine::{Engine, Limits, Location};

const QUERIES: &[(&str, &str)] = &[
    (
        "cone",
        "SELECT TOP 10 hip, ra, dec FROM hipparcos.hip2 WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 101.287, -16.716, 1)) ORDER BY hip",
    ),
    (
        "polygon_distance",
        "SELECT hip, DISTANCE(POINT(ra, dec), POINT(101.287, -16.716)) AS d FROM hipparcos.hip2 WHERE 1=CONTAINS(POINT(ra, dec), POLYGON(100, -18, 103, -18, 103, -15, 100, -15)) AND Hpmag < 8 ORDER BY d",
    ),
    (
        "aggregate",
        "SELECT ROUND(Hpmag) AS m, COUNT(*) AS n, AVG(Plx) AS plx FROM hipparcos.hip2 WHERE Plx > 10 GROUP BY ROUND(Hpmag) HAVING COUNT(*) > 5 ORDER BY m",
    ),
    (
        "join_subquery",
        "WITH bright AS (SELECT hip, ra, dec FROM hipparcos.hip2 WHERE Hpmag < 4) SELECT a.hip, b.hip FROM bright AS a JOIN bright AS b ON a.hip < b.hip WHERE 1=CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 5)) AND a.hip IN (SELECT hip FROM hipparcos.hip2 WHERE Plx > 20)",
    ),
];

fn demo_engine(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Engine {
    let ds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/hipparcos");
    let target = dir.join("hipparcos/hip2");
    let opts = tessera_loader::LoadOptions {
        inputs: vec![ds.join("hip2.dat.zst")],
        catalog: target.display().to_string(),
        format: Some(tessera_loader::Format::Cds),
        read: tessera_loader::ReadOptions {
            readme: Some(ds.join("ReadMe")),
            ..Default::default()
        },
        plan: tessera_loader::PlanSettings {
            threshold: 20_000,
            lowest_order: 0,
            drop_empty_siblings: true,
        },
        highest_order: 7,
        ..Default::default()
    };
    tessera_loader::load(&opts).expect("loading hip2");
    let root = Location::local(dir).expect("root");
    rt.block_on(Engine::open(root)).expect("engine")
}

fn front_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = demo_engine(&rt, dir.path());
    let limits = Limits::default();
    let parse = ParseLimits::default();
    let mut g = c.benchmark_group("adql");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (name, q) in QUERIES {
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| tessera_engine::adql::parse(q, &parse).expect("parses"))
        });
        g.bench_function(format!("translate/{name}"), |b| {
            b.iter(|| engine.translate(q, &parse).expect("translates"))
        });
        g.bench_function(format!("parse_plan/{name}"), |b| {
            b.iter(|| rt.block_on(engine.plan(q, &limits)).expect("plans"))
        });
    }
    g.finish();
}

criterion_group!(benches, front_end);
criterion_main!(benches);
