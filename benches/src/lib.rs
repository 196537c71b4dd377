//! Shared code of Tessera's benchmarks: the synthetic sky used by `tools/gen-synthetic`
//! (binary `gen_synthetic`), `tools/bench-load` and the criterion benches in `benches/`.
//!
//! The synthetic catalog has the columns
//! `id, ra, dec, u, u_err, g, g_err, r, r_err, i, i_err, z, z_err, flags`:
//!
//! * positions (ICRS degrees): [`DISK_FRACTION`] of the rows in a thin galactic disk (|b|
//!   exponential with scale height [`DISK_SCALE_HEIGHT_DEG`], longitude half uniform, half
//!   concentrated toward the galactic centre), [`BULGE_FRACTION`] in a Gaussian bulge around
//!   the galactic centre, the rest isotropic. Galactic coordinates are rotated to ICRS with the
//!   Hipparcos matrix (the one astropy uses), so the plane and bulge land where they are on
//!   the real sky (centre at RA 266.4°, Dec −28.9°);
//! * magnitudes: `r` from number counts rising as 10^(0.35 m) up to r = 23.5, colours from
//!   Gaussians; errors `0.2·10^(0.4(m − m5))` with a 0.003 floor (m5 = 5σ depth per band);
//!   `u` (and `u_err`) empty when fainter than 26 (a few per cent of rows);
//! * `flags`: a small bitmask (saturated, blended, edge, bad pixel, low S/N).
//!
//! Generation is chunked: chunk `c` ([`CHUNK_ROWS`] rows) draws from its own RNG seeded from
//! `(seed, c)`, so the output is identical for a seed whatever the number of threads.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_storage::{HEALPIX_COLUMN, Pixel};

/// Fraction of rows in the galactic disk.
pub const DISK_FRACTION: f64 = 0.48;
/// Fraction of rows in the bulge (disk + bulge ≈ 60 %).
pub const BULGE_FRACTION: f64 = 0.12;
/// Exponential scale of |b| in the disk, degrees.
pub const DISK_SCALE_HEIGHT_DEG: f64 = 3.0;
/// Rows per generation chunk (the unit of RNG seeding and of parallel work).
pub const CHUNK_ROWS: u64 = 1 << 16;

/// Band names, in column order.
pub const BANDS: [&str; 5] = ["u", "g", "r", "i", "z"];
/// 5σ depths per band (magnitude at which the error is 0.2 mag).
const DEPTH5: [f64; 5] = [23.9, 25.0, 24.7, 24.0, 23.3];
/// `u` fainter than this is a non-detection (empty `u` and `u_err`).
const U_LIMIT: f64 = 26.0;

/// Galactic → ICRS rotation: the transpose of the ICRS → galactic matrix of Hipparcos
/// (ESA 1997, vol. 1 §1.5.3), as used by astropy. Rows of the ICRS → galactic matrix:
const ICRS_TO_GAL: [[f64; 3]; 3] = [
    [
        -0.054_875_560_416_215_4,
        -0.873_437_090_234_885,
        -0.483_835_015_548_713_2,
    ],
    [
        0.494_109_427_875_583_7,
        -0.444_829_629_960_011_2,
        0.746_982_244_497_219,
    ],
    [
        -0.867_666_149_019_004_7,
        -0.198_076_373_431_201_5,
        0.455_983_776_175_066_9,
    ],
];

/// Converts galactic (l, b) in degrees to ICRS (ra, dec) in degrees, ra in [0, 360).
pub fn galactic_to_icrs(l_deg: f64, b_deg: f64) -> (f64, f64) {
    let (l, b) = (l_deg.to_radians(), b_deg.to_radians());
    let g = [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()];
    // x_icrs = Mᵀ · x_gal
    let m = &ICRS_TO_GAL;
    let x = m[0][0] * g[0] + m[1][0] * g[1] + m[2][0] * g[2];
    let y = m[0][1] * g[0] + m[1][1] * g[1] + m[2][1] * g[2];
    let z = m[0][2] * g[0] + m[1][2] * g[1] + m[2][2] * g[2];
    let ra = y.atan2(x).to_degrees().rem_euclid(360.0);
    let dec = z.clamp(-1.0, 1.0).asin().to_degrees();
    // rem_euclid can round up to exactly 360.0 for tiny negative angles.
    (if ra >= 360.0 { 0.0 } else { ra }, dec)
}

/// A standard normal deviate (Box–Muller, one of the pair).
fn normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Laplace deviate with the given scale (symmetric exponential).
fn laplace<R: Rng>(rng: &mut R, scale: f64) -> f64 {
    let e = -(1.0 - rng.random::<f64>()).ln() * scale;
    if rng.random::<bool>() { e } else { -e }
}

/// Draws one position (ra, dec) in ICRS degrees from the synthetic sky.
pub fn sky_position<R: Rng>(rng: &mut R) -> (f64, f64) {
    let u: f64 = rng.random();
    if u < DISK_FRACTION {
        let l = if rng.random::<bool>() {
            rng.random::<f64>() * 360.0
        } else {
            laplace(rng, 50.0)
        };
        let b = loop {
            let b = laplace(rng, DISK_SCALE_HEIGHT_DEG);
            if b.abs() <= 90.0 {
                break b;
            }
        };
        galactic_to_icrs(l, b)
    } else if u < DISK_FRACTION + BULGE_FRACTION {
        let l = 6.0 * normal(rng);
        let b = loop {
            let b = 4.5 * normal(rng);
            if b.abs() <= 90.0 {
                break b;
            }
        };
        galactic_to_icrs(l, b)
    } else {
        let ra = rng.random::<f64>() * 360.0;
        let dec = (2.0 * rng.random::<f64>() - 1.0)
            .clamp(-1.0, 1.0)
            .asin()
            .to_degrees();
        (ra, dec)
    }
}

/// Photometry of one source: magnitudes and errors in `BANDS` order (`None` = not detected),
/// and the flags bitmask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Photometry {
    /// Magnitudes u, g, r, i, z.
    pub mag: [Option<f64>; 5],
    /// Their 1σ errors.
    pub err: [Option<f64>; 5],
    /// Bitmask: 1 saturated, 2 blended, 4 edge, 8 bad pixel, 16 low S/N in r.
    pub flags: i64,
}

/// Draws the photometry of one source.
pub fn photometry<R: Rng>(rng: &mut R) -> Photometry {
    let r = loop {
        // N(<m) ∝ 10^(0.35 m) up to 23.5.
        let u = 1.0 - rng.random::<f64>();
        let r = 23.5 + u.log10() / 0.35;
        if r >= 11.0 {
            break r;
        }
    };
    let g = r + 0.55 + 0.35 * normal(rng);
    let u = g + 1.3 + 0.5 * normal(rng);
    let i = r - 0.25 - 0.15 * normal(rng);
    let z = i - 0.12 - 0.12 * normal(rng);
    let m = [u, g, r, i, z];
    let mut mag = [None; 5];
    let mut err = [None; 5];
    for b in 0..5 {
        if b == 0 && u > U_LIMIT {
            continue;
        }
        let e = (0.003f64.powi(2) + (0.2 * 10f64.powf(0.4 * (m[b] - DEPTH5[b]))).powi(2)).sqrt();
        mag[b] = Some(m[b]);
        err[b] = Some(e.min(9.999));
    }
    let mut flags = 0i64;
    if r < 14.0 {
        flags |= 1;
    }
    if rng.random::<f64>() < 0.08 {
        flags |= 2;
    }
    if rng.random::<f64>() < 0.02 {
        flags |= 4;
    }
    if rng.random::<f64>() < 0.01 {
        flags |= 8;
    }
    if err[2].is_some_and(|e| e > 0.1) {
        flags |= 16;
    }
    Photometry { mag, err, flags }
}

/// SplitMix64 finaliser: spreads `(seed, chunk)` into independent RNG seeds.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The RNG of chunk `chunk` for `seed`.
pub fn chunk_rng(seed: u64, chunk: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(chunk.wrapping_add(1))))
}

/// The CSV header line (with newline).
pub const CSV_HEADER: &str = "id,ra,dec,u,u_err,g,g_err,r,r_err,i,i_err,z,z_err,flags\n";

/// Appends the decimal text of `v`.
fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

const POW10: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Appends `v` (finite, |v|·10^decimals < 2^63) in fixed-point notation with `decimals`
/// digits after the point, rounded to nearest.
pub fn put_fixed(out: &mut Vec<u8>, v: f64, decimals: usize) {
    let scale = POW10[decimals];
    let n = (v * scale as f64).round() as i64;
    if n < 0 {
        out.push(b'-');
    }
    let a = n.unsigned_abs();
    put_u64(out, a / scale);
    if decimals > 0 {
        out.push(b'.');
        let mut frac = a % scale;
        let start = out.len();
        out.resize(start + decimals, b'0');
        for k in (0..decimals).rev() {
            out[start + k] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
    }
}

/// Decimal places of RA/Dec in the CSV (1e-8° ≈ 36 µas, finer than any survey's astrometry).
pub const POSITION_DECIMALS: usize = 8;

/// Appends chunk `chunk` (rows `[chunk·CHUNK_ROWS, min((chunk+1)·CHUNK_ROWS, total))`) as CSV
/// lines to `out`. Deterministic for `(seed, chunk, total)`.
pub fn write_chunk_csv(out: &mut Vec<u8>, seed: u64, chunk: u64, total: u64) {
    let mut rng = chunk_rng(seed, chunk);
    let start = chunk * CHUNK_ROWS;
    let end = (start + CHUNK_ROWS).min(total);
    for id in start..end {
        let (ra, dec) = sky_position(&mut rng);
        let p = photometry(&mut rng);
        put_u64(out, id);
        out.push(b',');
        put_fixed(out, ra, POSITION_DECIMALS);
        out.push(b',');
        put_fixed(out, dec, POSITION_DECIMALS);
        for b in 0..5 {
            out.push(b',');
            if let Some(m) = p.mag[b] {
                put_fixed(out, m, 3);
            }
            out.push(b',');
            if let Some(e) = p.err[b] {
                put_fixed(out, e, 3);
            }
        }
        out.push(b',');
        put_u64(out, p.flags as u64);
        out.push(b'\n');
    }
}

/// The catalog schema Tessera produces for the synthetic CSV: `_healpix_29` then the CSV
/// columns (`id`, `flags` Int64, the rest Float64).
pub fn catalog_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new(HEALPIX_COLUMN, DataType::Int64, false),
        Field::new("id", DataType::Int64, true),
        Field::new("ra", DataType::Float64, true),
        Field::new("dec", DataType::Float64, true),
    ];
    for b in BANDS {
        fields.push(Field::new(b, DataType::Float64, true));
        fields.push(Field::new(format!("{b}_err"), DataType::Float64, true));
    }
    fields.push(Field::new("flags", DataType::Int64, true));
    Arc::new(Schema::new(fields))
}

fn round_to(v: f64, decimals: usize) -> f64 {
    let s = POW10[decimals] as f64;
    (v * s).round() / s
}

/// A partition of `rows` synthetic sources spread uniformly over `pixel`, sorted by
/// `_healpix_29`, with the [`catalog_schema`] columns (values rounded as in the CSV; ids random
/// in `[0, id_space)` as in a real partition, where neighbours on the sky have unrelated ids).
pub fn partition_batch(pixel: Pixel, rows: usize, id_space: u64, seed: u64) -> RecordBatch {
    let mut rng = chunk_rng(seed, u64::MAX);
    let range = pixel.range29();
    let mut h: Vec<i64> = (0..rows)
        .map(|_| rng.random_range(range.start..range.end))
        .collect();
    h.sort_unstable();
    let layer = cdshealpix::nested::get(29);
    let mut ra = Vec::with_capacity(rows);
    let mut dec = Vec::with_capacity(rows);
    for &v in &h {
        let (lon, lat) = layer.center(v as u64);
        ra.push(round_to(lon.to_degrees(), POSITION_DECIMALS));
        dec.push(round_to(lat.to_degrees(), POSITION_DECIMALS));
    }
    let ids: Vec<i64> = (0..rows)
        .map(|_| rng.random_range(0..id_space.max(1)) as i64)
        .collect();
    let mut mags: Vec<Vec<Option<f64>>> = (0..10).map(|_| Vec::with_capacity(rows)).collect();
    let mut flags = Vec::with_capacity(rows);
    for _ in 0..rows {
        let p = photometry(&mut rng);
        for b in 0..5 {
            mags[2 * b].push(p.mag[b].map(|m| round_to(m, 3)));
            mags[2 * b + 1].push(p.err[b].map(|e| round_to(e, 3)));
        }
        flags.push(p.flags);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(h)),
        Arc::new(Int64Array::from(ids)),
        Arc::new(Float64Array::from(ra)),
        Arc::new(Float64Array::from(dec)),
    ];
    for m in mags {
        columns.push(Arc::new(Float64Array::from(m)));
    }
    columns.push(Arc::new(Int64Array::from(flags)));
    RecordBatch::try_new(catalog_schema(), columns).expect("schema matches columns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn galactic_centre_and_pole_land_where_they_should() {
        let (ra, dec) = galactic_to_icrs(0.0, 0.0);
        assert!(
            (ra - 266.405).abs() < 0.01 && (dec + 28.936).abs() < 0.01,
            "{ra} {dec}"
        );
        let (ra, dec) = galactic_to_icrs(0.0, 90.0);
        assert!(
            (ra - 192.859).abs() < 0.01 && (dec - 27.128).abs() < 0.01,
            "{ra} {dec}"
        );
    }

    #[test]
    fn fixed_point_formatting() {
        let f = |v: f64, d: usize| {
            let mut o = Vec::new();
            put_fixed(&mut o, v, d);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(f(-0.5, 8), "-0.50000000");
        assert_eq!(f(-0.0000000001, 8), "0.00000000");
        assert_eq!(f(359.123456789, 8), "359.12345679");
        assert_eq!(f(21.0005, 3), "21.001");
        assert_eq!(f(0.003, 3), "0.003");
        assert_eq!(f(7.0, 0), "7");
    }

    #[test]
    fn chunks_are_deterministic_and_well_formed() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_chunk_csv(&mut a, 42, 3, 1_000_000);
        write_chunk_csv(&mut b, 42, 3, 1_000_000);
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, CHUNK_ROWS);
        assert!(lines[0].starts_with(&format!("{},", 3 * CHUNK_ROWS)));
        let mut plane = 0;
        for l in &lines {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 14, "{l}");
            let ra: f64 = f[1].parse().unwrap();
            let dec: f64 = f[2].parse().unwrap();
            assert!((0.0..360.0).contains(&ra) && (-90.0..=90.0).contains(&dec));
            // Distance to the galactic plane: |b| from the galactic pole (192.859, 27.128).
            let b = 90.0 - tessera_storage::healpix::angular_distance_deg(ra, dec, 192.859, 27.128);
            if b.abs() < 10.0 {
                plane += 1;
            }
        }
        // Isotropic alone puts 17 % within |b| < 10°; the disk and bulge add ~55 %.
        let frac = plane as f64 / lines.len() as f64;
        assert!((0.6..0.8).contains(&frac), "{frac}");
        // The last, short chunk.
        let mut c = Vec::new();
        write_chunk_csv(&mut c, 42, 15, 15 * CHUNK_ROWS + 10);
        assert_eq!(c.iter().filter(|&&x| x == b'\n').count(), 10);
    }
}
