//! Memory limits over the real Hipparcos catalogue (hip2: 117,955 rows, 45 MB of Arrow
//! data over all columns): a sort and a grouped aggregate several times the pool spill and
//! give exactly the unlimited result; a query that cannot fit fails with a limit error
//! naming the limit while other queries on the same engine go on. (The process RSS bound is
//! `server/tests/memory.rs`, which runs the binary.)
#![allow(clippy::print_stderr)] // spill counts, for the record

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use tessera_engine::{Engine, EngineOptions, ErrorKind, Limits, Location};

use crate::engine::root;

/// The pool of the spilling tests: well under the 45 MB sort and the ~100 MB aggregate.
const POOL: usize = 32 << 20;

/// All of hip2 sorted on a key with ties (Plx) and a tiebreaker (hip): one exact order.
const SORT: &str = "SELECT * FROM hipparcos.hip2 ORDER BY Plx, hip";

/// 117,955 stars × the 30 lowest HIP numbers: 3,538,650 groups of one row each.
const GROUP_BY: &str = "SELECT COUNT(*) AS g, SUM(n) AS s, SUM(h1) AS s1, SUM(h2) AS s2, \
     MIN(p) AS lo, MAX(p) AS hi FROM (SELECT a.hip AS h1, b.hip AS h2, COUNT(*) AS n, \
     MAX(a.hip * 1000 + b.hip) AS p FROM hipparcos.hip2 AS a, \
     (SELECT TOP 30 hip FROM hipparcos.hip2 ORDER BY hip) AS b GROUP BY a.hip, b.hip) AS t";

async fn engine_with(limit: Option<usize>, spill: &std::path::Path) -> Engine {
    Engine::open_with(
        Location::local(root()).unwrap(),
        &EngineOptions {
            memory_limit: limit,
            spill_dir: Some(spill.to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn run(e: &Engine, q: &str) -> tessera_engine::Result<RecordBatch> {
    let r = e.query(q, &Limits::default()).await?;
    let schema = r.schema();
    let (batches, _) = r.collect().await?;
    Ok(arrow::compute::concat_batches(&schema, &batches).unwrap())
}

/// Spill files written by the operators whose plan line contains `op`, from EXPLAIN ANALYZE.
async fn spills(e: &Engine, q: &str, op: &str) -> usize {
    let plan = e.explain_analyze(q, &Limits::default()).await.unwrap();
    plan.lines()
        .filter(|l| l.contains(op))
        .filter_map(|l| l.split("spill_count=").nth(1))
        .filter_map(|m| {
            m.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// Regular files under `dir`, recursively (spill files left behind).
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn int(b: &RecordBatch, col: usize) -> i64 {
    b.column(col).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_larger_than_the_pool_spills_and_equals_the_unlimited_sort() {
    let spill = tempfile::tempdir().unwrap();
    let want = run(&engine_with(None, spill.path()).await, SORT)
        .await
        .unwrap();
    let e = engine_with(Some(POOL), spill.path()).await;
    let got = run(&e, SORT).await.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(got.num_rows(), 117_955);
    // Same rows in the same order, every column (schemas differ only in metadata-free ways
    // if at all: compare the columns).
    assert_eq!(got.columns(), want.columns());
    let n = spills(&e, SORT, "SortExec").await;
    eprintln!("sort under {} MiB: {n} spill files", POOL >> 20);
    assert!(n > 0, "the sort fit in the pool: not a spill test");
    assert!(files(spill.path()).is_empty(), "spill files left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_by_larger_than_the_pool_spills_and_equals_the_unlimited_one() {
    let spill = tempfile::tempdir().unwrap();
    let want = run(&engine_with(None, spill.path()).await, GROUP_BY)
        .await
        .unwrap();
    let e = engine_with(Some(POOL), spill.path()).await;
    let got = run(&e, GROUP_BY)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(got.columns(), want.columns());
    assert_eq!(int(&got, 0), 117_955 * 30);
    assert_eq!(int(&got, 1), 117_955 * 30);
    let n = spills(&e, GROUP_BY, "AggregateExec").await;
    eprintln!("GROUP BY under {} MiB: {n} spill files", POOL >> 20);
    assert!(n > 0, "the aggregate fit in the pool: not a spill test");
    assert!(files(spill.path()).is_empty(), "spill files left behind");
}

/// A hash join's build side cannot spill: the full self-join of hip2 (both sides 45 MB)
/// fails with a limit error naming the limit once it holds half the pool (a query's cap),
/// while a sort needing the other half, spilling, and a small query running beside it on
/// the same engine both answer. Three rounds, as who grabs memory first varies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_cannot_fit_fails_alone_naming_the_limit() {
    let spill = tempfile::tempdir().unwrap();
    let e = engine_with(Some(POOL), spill.path()).await;
    let join = "SELECT a.*, b.* FROM hipparcos.hip2 AS a JOIN hipparcos.hip2 AS b ON a.hip = b.hip";
    let small = "SELECT COUNT(*) AS n, SUM(hip) AS s FROM hipparcos.hip2 WHERE Plx > 10";
    let want = run(&engine_with(None, spill.path()).await, small)
        .await
        .unwrap();
    for _ in 0..3 {
        let spawn = |q: &'static str| {
            let e = e.clone();
            tokio::spawn(async move { run(&e, q).await })
        };
        let (failing, sort, beside) = (spawn(join), spawn(SORT), spawn(small));
        let err = failing
            .await
            .unwrap()
            .expect_err("half of a 32 MiB pool cannot hold a 45 MB build side");
        assert_eq!(err.kind(), ErrorKind::Limit, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("memory limit (32 MiB"), "{msg}");
        let sorted = sort
            .await
            .unwrap()
            .unwrap_or_else(|err| panic!("the sort beside failed: {err}"));
        assert_eq!(sorted.num_rows(), 117_955);
        let got = beside
            .await
            .unwrap()
            .unwrap_or_else(|err| panic!("the query beside failed: {err}"));
        assert_eq!(got.columns(), want.columns());
    }
    assert!(files(spill.path()).is_empty(), "spill files left behind");
}

/// A pool too small for a sort's merge buffers or a hash join's build side: a clean limit
/// error naming the limit, then the engine answers queries that need no pool. (The GROUP BY
/// is not used here: DataFusion's aggregate can sometimes spill its way through even 256 KiB,
/// one batch at a time, which is correct but not an impossible limit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_limit_fails_cleanly() {
    let spill = tempfile::tempdir().unwrap();
    let e = engine_with(Some(256 << 10), spill.path()).await;
    let join = "SELECT a.*, b.* FROM hipparcos.hip2 AS a JOIN hipparcos.hip2 AS b ON a.hip = b.hip";
    for q in [SORT, join] {
        let err = run(&e, q).await.expect_err("256 KiB cannot hold a batch");
        assert_eq!(err.kind(), ErrorKind::Limit, "{q}: {err}");
        assert!(err.to_string().contains("memory limit (256 KiB"), "{err}");
    }
    let top = run(&e, "SELECT TOP 3 hip FROM hipparcos.hip2")
        .await
        .unwrap();
    assert_eq!(top.num_rows(), 3);
    assert!(files(spill.path()).is_empty(), "spill files left behind");
}
