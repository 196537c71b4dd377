//! Crossmatch timings through the ADQL engine: hip2 with itself and hip2 with a uniform random
//! catalog, at a given radius.
//!
//! ```text
//! xmatch_time --hip2 DIR [--random N] [--radius ARCSEC] [--repeat N]
//! ```
//!
//! `DIR` is a hip2 HATS catalog (e.g. `~/.cache/tessera-bench/data/hipparcos/hip2`); it is
//! copied with a random catalog of N rows (default 500000, loaded first) into a temporary
//! data root. Each query runs once to warm up, then `--repeat` times (default 3); prints the
//! pair count and the wall times in seconds.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use tessera_engine::{Engine, Limits, Location};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn main() {
    let mut hip2: Option<PathBuf> = None;
    let (mut n, mut radius, mut repeat) = (500_000usize, 2.0f64, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().expect("a value after each flag");
        match a.as_str() {
            "--hip2" => hip2 = Some(PathBuf::from(v)),
            "--random" => n = v.parse().unwrap(),
            "--radius" => radius = v.parse().unwrap(),
            "--repeat" => repeat = v.parse().unwrap(),
            _ => panic!("unknown flag {a}"),
        }
    }
    let hip2 = hip2.expect("--hip2 DIR");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&hip2, &dir.path().join("hipparcos/hip2"));
    let csv = dir.path().join("random.csv");
    {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(w, "id,ra,dec").unwrap();
        for i in 0..n {
            let ra: f64 = rng.random_range(0.0..360.0);
            let dec = rng.random_range(-1.0f64..1.0).asin().to_degrees();
            writeln!(w, "{i},{ra:.9},{dec:.9}").unwrap();
        }
    }
    let t = Instant::now();
    tessera_loader::load(&tessera_loader::LoadOptions {
        inputs: vec![csv.clone()],
        catalog: dir
            .path()
            .join("synth/random")
            .to_str()
            .unwrap()
            .to_string(),
        ..Default::default()
    })
    .unwrap();
    eprintln!(
        "loaded {n} random rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = Engine::open(Location::local(dir.path()).unwrap())
            .await
            .unwrap();
        let r = format!("{radius}/3600.");
        let d = |a: &str, b: &str| {
            format!("DISTANCE(POINT({a}.ra, {a}.dec), POINT({b}.ra, {b}.dec)) < {r}")
        };
        for (name, q) in [
            (
                "hip2 x hip2",
                format!(
                    "SELECT a.hip, b.hip FROM hipparcos.hip2 AS a JOIN hipparcos.hip2 AS b ON {}",
                    d("a", "b")
                ),
            ),
            (
                "random x hip2",
                format!(
                    "SELECT s.id, h.hip FROM synth.random AS s JOIN hipparcos.hip2 AS h ON {}",
                    d("s", "h")
                ),
            ),
            (
                "hip2 x random",
                format!(
                    "SELECT h.hip, s.id FROM hipparcos.hip2 AS h JOIN synth.random AS s ON {}",
                    d("h", "s")
                ),
            ),
            (
                "random LEFT JOIN hip2",
                format!(
                    "SELECT s.id, h.hip FROM synth.random AS s LEFT JOIN hipparcos.hip2 AS h ON {}",
                    d("s", "h")
                ),
            ),
        ] {
            let mut times = Vec::new();
            let mut rows = 0;
            for i in 0..=repeat {
                let t = Instant::now();
                let (b, _) = e
                    .query(&q, &Limits::default())
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                rows = b.iter().map(|b| b.num_rows()).sum::<usize>();
                if i > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{name} at {radius}\": {rows} rows, median {:.3} s (min {:.3} s, {} runs)",
                times[times.len() / 2],
                times[0],
                times.len()
            );
        }
    });
}
