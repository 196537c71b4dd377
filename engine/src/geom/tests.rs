//! Property tests against brute force, and UDF-level tests.
//!
//! The brute-force references are written independently of the implementation: plain
//! `[f64; 3]` vectors, angular distance by atan2(|a×b|, a·b), point-in-polygon by an
//! even-odd ray cast in the gnomonic projection about the polygon's generating centre (all
//! generated polygons lie within 60° of it), and region relations from densely sampled
//! boundaries, deciding only when the sampling resolution makes the answer certain.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::kernels::geometry_type;
use super::region::{Cap, Point, Polygon, Shape, contains, intersects};

// ---------- independent reference maths ----------

type V = [f64; 3];

fn vec_of(ra: f64, dec: f64) -> V {
    let (a, d) = (ra.to_radians(), dec.to_radians());
    [d.cos() * a.cos(), d.cos() * a.sin(), d.sin()]
}

fn radec_of(v: V) -> (f64, f64) {
    let ra = v[1].atan2(v[0]).to_degrees();
    let ra = if ra < 0.0 { ra + 360.0 } else { ra };
    (
        if ra >= 360.0 { 0.0 } else { ra },
        v[2].atan2(v[0].hypot(v[1])).to_degrees(),
    )
}

fn dot(a: V, b: V) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: V, b: V) -> V {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn unit(a: V) -> V {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

fn sep(a: V, b: V) -> f64 {
    let c = cross(a, b);
    dot(c, c).sqrt().atan2(dot(a, b)).to_degrees()
}

/// East and north unit vectors at `c` (anything orthogonal at a pole).
fn basis(c: V) -> (V, V) {
    let e = if c[0].abs() < 1e-9 && c[1].abs() < 1e-9 {
        [1.0, 0.0, 0.0]
    } else {
        unit([-c[1], c[0], 0.0])
    };
    (e, cross(c, e))
}

/// The point at `dist` degrees from `c` at position angle `pa` (radians, from north).
fn offset(c: V, dist: f64, pa: f64) -> V {
    let (e, n) = basis(c);
    let (s, k) = dist.to_radians().sin_cos();
    let (sp, cp) = pa.sin_cos();
    unit([
        k * c[0] + s * (cp * n[0] + sp * e[0]),
        k * c[1] + s * (cp * n[1] + sp * e[1]),
        k * c[2] + s * (cp * n[2] + sp * e[2]),
    ])
}

fn gnomonic(c: V, v: V) -> (f64, f64) {
    let (e, n) = basis(c);
    let w = dot(v, c);
    (dot(v, e) / w, dot(v, n) / w)
}

fn seg_dist(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let l2 = dx * dx + dy * dy;
    let t = if l2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / l2).clamp(0.0, 1.0)
    };
    (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
}

/// A generated polygon: its generating centre (all vertices within 60° of it) and vertices.
#[derive(Debug, Clone)]
struct StarPoly {
    center: V,
    verts: Vec<V>,
    size: f64,
}

impl StarPoly {
    fn coords(&self) -> Vec<f64> {
        self.verts
            .iter()
            .flat_map(|&v| {
                let (ra, dec) = radec_of(v);
                [ra, dec]
            })
            .collect()
    }

    /// Brute-force membership; `None` when within 1e-9 (relative to the size) of an edge.
    fn brute_contains(&self, p: V) -> Option<bool> {
        if dot(p, self.center) < 0.3 {
            return Some(false);
        }
        let q = gnomonic(self.center, p);
        let pts: Vec<(f64, f64)> = self
            .verts
            .iter()
            .map(|&v| gnomonic(self.center, v))
            .collect();
        let n = pts.len();
        let tol = (self.size.to_radians() * 1e-9).max(1e-12);
        let mut inside = false;
        for i in 0..n {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            if seg_dist(q, a, b) < tol {
                return None;
            }
            if (a.1 > q.1) != (b.1 > q.1) {
                let x = a.0 + (q.1 - a.1) / (b.1 - a.1) * (b.0 - a.0);
                if q.0 < x {
                    inside = !inside;
                }
            }
        }
        Some(inside)
    }

    /// Boundary samples (k per edge, great-circle interpolation) and the largest gap
    /// between consecutive samples, in degrees.
    fn boundary(&self, k: usize) -> (Vec<V>, f64) {
        let n = self.verts.len();
        let mut s = Vec::with_capacity(n * k);
        for i in 0..n {
            let (a, b) = (self.verts[i], self.verts[(i + 1) % n]);
            for j in 0..k {
                let t = j as f64 / k as f64;
                s.push(unit([
                    (1.0 - t) * a[0] + t * b[0],
                    (1.0 - t) * a[1] + t * b[1],
                    (1.0 - t) * a[2] + t * b[2],
                ]));
            }
        }
        let gap = (0..s.len())
            .map(|i| sep(s[i], s[(i + 1) % s.len()]))
            .fold(0.0, f64::max);
        (s, gap)
    }

    fn build(&self) -> Polygon {
        Polygon::new(&self.coords()).unwrap_or_else(|e| panic!("{e}: {:?}", self.coords()))
    }
}

/// A star-shaped (convex when `convex`) polygon of `n` vertices around (ra, dec) of
/// outer radius `size` degrees, in either winding.
fn star(ra: f64, dec: f64, size: f64, jit: &[(f64, f64)], convex: bool, reverse: bool) -> StarPoly {
    let c = vec_of(ra, dec);
    let n = jit.len();
    let rot = jit[0].0 * 7.0;
    let mut verts: Vec<V> = jit
        .iter()
        .enumerate()
        .map(|(k, &(j, f))| {
            let pa = rot + 2.0 * std::f64::consts::PI * (k as f64 + 0.2 * j) / n as f64;
            let rho = if convex { size } else { size * (0.3 + 0.7 * f) };
            offset(c, rho, pa)
        })
        .collect();
    if reverse {
        verts.reverse();
    }
    StarPoly {
        center: c,
        verts,
        size,
    }
}

fn circle_samples(c: V, r: f64, k: usize) -> (Vec<V>, f64) {
    let s: Vec<V> = (0..k)
        .map(|j| offset(c, r, 2.0 * std::f64::consts::PI * j as f64 / k as f64))
        .collect();
    let gap = if k > 1 { sep(s[0], s[1]) } else { 0.0 };
    (s, gap)
}

// ---------- strategies ----------

fn ra_s() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..360.0f64,
        -0.5..0.5f64,
        359.5..360.0f64,
        Just(0.0),
        -720.0..720.0f64
    ]
}

fn dec_s() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-1.0..1.0f64).prop_map(|z: f64| z.asin().to_degrees()),
        1 => Just(90.0),
        1 => Just(-90.0),
        1 => 89.0..90.0f64,
        1 => -90.0..-89.0f64,
    ]
}

fn radius_s() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-6.0..2.255f64).prop_map(|e| 10f64.powf(e)),
        1 => 90.0..179.9f64,
        1 => Just(179.9),
        1 => Just(1e-6),
    ]
}

fn poly_s() -> impl Strategy<Value = StarPoly> {
    (
        ra_s(),
        dec_s(),
        (-4.0..1.78f64).prop_map(|e| 10f64.powf(e)),
        prop::collection::vec((-1.0..1.0f64, 0.0..1.0f64), 3..16),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ra, dec, size, jit, convex, rev)| star(ra, dec, size, &jit, convex, rev))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Point in circle equals `distance <= r` for points spread over the sky and packed
    /// around the boundary, for every centre (poles, RA wrap) and radius from 1e-6° to 179.9°.
    #[test]
    fn point_in_circle_matches_brute_force(
        cra in ra_s(), cdec in dec_s(), r in radius_s(),
        pts in prop::collection::vec((0.0..1.0f64, 0.0..1.0f64, -0.02..0.02f64, 0..4u8, -2i32..3), 64),
    ) {
        let cap = Cap::new(cra, cdec, r).unwrap();
        let c = vec_of(cra, cdec);
        for &(u, w, d, mode, wrap) in &pts {
            let v = match mode {
                0 => vec_of(360.0 * u, (2.0 * w - 1.0).asin().to_degrees()),
                // Near the boundary, just inside or outside.
                1 | 2 => offset(c, (r * (1.0 + d)).min(180.0), 2.0 * std::f64::consts::PI * u),
                _ => offset(c, (r + d * 1e-3).clamp(0.0, 180.0), 2.0 * std::f64::consts::PI * u),
            };
            let (ra, dec) = radec_of(v);
            let ra = ra + 360.0 * wrap as f64;
            let dist = sep(vec_of(ra, dec), c);
            if (dist - r).abs() < 1e-9 {
                continue;
            }
            let got = cap.contains_radec(ra, dec);
            prop_assert_eq!(got, dist <= r, "ra={} dec={} dist={} r={}", ra, dec, dist, r);
            prop_assert_eq!(cap.contains_vec(super::sphere::V3::from_radec(ra, dec)), got);
            let p = Point::new(ra, dec).unwrap();
            prop_assert_eq!(contains(Shape::Point(&p), Shape::Circle(&cap)), got);
        }
    }

    /// Point in polygon equals a gnomonic ray cast, for convex and star-shaped polygons of
    /// 3–15 vertices from 1e-4° to 60° anywhere (poles, RA wrap), in both windings; the
    /// reversed polygon gives the same answers and area.
    #[test]
    fn point_in_polygon_matches_brute_force(
        sp in poly_s(),
        pts in prop::collection::vec((0.0..1.0f64, 0.0..1.0f64, 0..3u8), 96),
    ) {
        let g = sp.build();
        let mut rev = sp.clone();
        rev.verts.reverse();
        let gr = rev.build();
        prop_assert!((g.area_sr() - gr.area_sr()).abs() <= 1e-12 * g.area_sr().max(1e-300) + 1e-15);
        prop_assert!(g.area_sr() < 2.0 * std::f64::consts::PI);
        for &(u, w, mode) in &pts {
            let v = match mode {
                0 => offset(sp.center, sp.size * 1.3 * u, 2.0 * std::f64::consts::PI * w),
                1 => {
                    // Close to an edge.
                    let n = sp.verts.len();
                    let i = ((u * n as f64) as usize).min(n - 1);
                    let (a, b) = (sp.verts[i], sp.verts[(i + 1) % n]);
                    let m = unit([a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1]), a[2] + w * (b[2] - a[2])]);
                    offset(m, sp.size * 1e-3 * (u - 0.5).abs().max(1e-3), 2.0 * std::f64::consts::PI * u * 17.0)
                }
                _ => vec_of(360.0 * u, (2.0 * w - 1.0).asin().to_degrees()),
            };
            let (ra, dec) = radec_of(v);
            let v = vec_of(ra, dec);
            let Some(expect) = sp.brute_contains(v) else { continue };
            prop_assert_eq!(g.contains_radec(ra, dec), expect, "ra={} dec={} poly={:?}", ra, dec, sp.coords());
            prop_assert_eq!(gr.contains_radec(ra, dec), expect);
            prop_assert_eq!(g.contains_vec(super::sphere::V3::from_radec(ra + 360.0, dec)), expect);
        }
    }

    /// Circle–circle CONTAINS and INTERSECTS against boundary sampling.
    #[test]
    fn circle_circle_matches_sampling(
        cra in ra_s(), cdec in dec_s(), ra_ in radius_s(), rb in radius_s(),
        d in 0.0..1.0f64, pa in 0.0..6.3f64,
    ) {
        let a = vec_of(cra, cdec);
        let b = offset(a, d * (ra_ + rb).min(180.0) * 1.2, pa);
        let ((ar, ad), (br, bd)) = (radec_of(a), radec_of(b));
        let (ca, cb) = (Cap::new(ar, ad, ra_).unwrap(), Cap::new(br, bd, rb).unwrap());
        let (a, b) = (vec_of(ar, ad), vec_of(br, bd));
        let (sa, ga) = circle_samples(a, ra_, 720);
        let ds: Vec<f64> = sa.iter().map(|&y| sep(y, b) - rb).collect();
        let max = ds.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let min = ds.iter().cloned().fold(f64::INFINITY, f64::min);
        let anti = [-b[0], -b[1], -b[2]];
        // CONTAINS(a, b)
        let want = if rb >= 180.0 {
            Some(true)
        } else if max > 1e-9 {
            Some(false)
        } else if max < -ga / 2.0 - 1e-9 && (sep(anti, a) - ra_).abs() > 1e-9 {
            Some(sep(anti, a) > ra_)
        } else {
            None
        };
        if let Some(w) = want {
            prop_assert_eq!(contains(Shape::Circle(&ca), Shape::Circle(&cb)), w, "{:?} {:?}", ca, cb);
        }
        // INTERSECTS(a, b)
        let cin = sep(b, a) - ra_;
        let want = if min < -1e-9 || cin < -1e-9 {
            Some(true)
        } else if min > ga / 2.0 + 1e-9 && cin.abs() > 1e-9 {
            Some(cin <= 0.0)
        } else {
            None
        };
        if let Some(w) = want {
            prop_assert_eq!(intersects(Shape::Circle(&ca), Shape::Circle(&cb)), w);
            prop_assert_eq!(intersects(Shape::Circle(&cb), Shape::Circle(&ca)), w);
        }
    }
}

/// Circle–polygon relations against boundary sampling; returns how many of the three
/// predicates could be decided by the sampling.
fn check_circle_polygon(sp: &StarPoly, c: V, r: f64) -> usize {
    let g = sp.build();
    let (cra, cdec) = radec_of(c);
    let cap = Cap::new(cra, cdec, r).unwrap();
    let c = vec_of(cra, cdec);
    let (s, gap) = sp.boundary(48);
    let ds: Vec<f64> = s.iter().map(|&y| sep(y, c) - r).collect();
    let max = ds.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = ds.iter().cloned().fold(f64::INFINITY, f64::min);
    let (gs, cs) = (Shape::Polygon(&g), Shape::Circle(&cap));
    let mut decided = 0;
    // Polygon inside circle.
    let want = if r >= 180.0 {
        Some(true)
    } else if max > 1e-9 {
        Some(false)
    } else if max < -gap / 2.0 - 1e-9 {
        sp.brute_contains([-c[0], -c[1], -c[2]]).map(|x| !x)
    } else {
        None
    };
    if let Some(w) = want {
        assert_eq!(
            contains(gs, cs),
            w,
            "poly in circle {:?} {cra} {cdec} {r}",
            sp.coords()
        );
        decided += 1;
    }
    // Circle inside polygon, and intersection.
    let center_in = sp.brute_contains(c);
    let want_in = if min < -1e-9 {
        Some(false)
    } else if min > gap / 2.0 + 1e-9 {
        center_in
    } else {
        None
    };
    if let Some(w) = want_in {
        assert_eq!(
            contains(cs, gs),
            w,
            "circle in poly {:?} {cra} {cdec} {r}",
            sp.coords()
        );
        decided += 1;
    }
    let want_x = if min < -1e-9 {
        Some(true)
    } else if min > gap / 2.0 + 1e-9 {
        center_in
    } else {
        None
    };
    if let Some(w) = want_x {
        assert_eq!(
            intersects(cs, gs),
            w,
            "intersects {:?} {cra} {cdec} {r}",
            sp.coords()
        );
        assert_eq!(intersects(gs, cs), w);
        decided += 1;
    }
    decided
}

fn random_star(rng: &mut StdRng, center: V, size: f64) -> StarPoly {
    let n = rng.random_range(3..13);
    let jit: Vec<(f64, f64)> = (0..n)
        .map(|_| (rng.random_range(-1.0..1.0), rng.random::<f64>()))
        .collect();
    let (ra, dec) = radec_of(center);
    star(
        ra,
        dec,
        size,
        &jit,
        rng.random_bool(0.4),
        rng.random_bool(0.5),
    )
}

fn random_center(rng: &mut StdRng) -> V {
    match rng.random_range(0..4) {
        0 => vec_of(
            rng.random_range(0.0..360.0),
            90.0 - rng.random_range(0.0..3.0),
        ),
        1 => vec_of(rng.random_range(-2.0..2.0), rng.random_range(-60.0..60.0)),
        _ => vec_of(
            rng.random_range(0.0..360.0),
            (rng.random_range(-1.0..1.0f64)).asin().to_degrees(),
        ),
    }
}

#[test]
fn circle_polygon_relations_match_sampling() {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut decided, mut total) = (0, 0);
    for _ in 0..600 {
        let c0 = random_center(&mut rng);
        let size = 10f64.powf(rng.random_range(-3.0..1.7));
        let sp = random_star(&mut rng, c0, size);
        let (c, r) = match rng.random_range(0..6) {
            // A large circle anywhere (exercises the > 90° complement logic).
            0 => (random_center(&mut rng), rng.random_range(90.0..180.0)),
            // A large circle whose small antipodal hole sits on or near the polygon.
            1 => {
                let h = offset(
                    c0,
                    size * rng.random_range(0.0..1.5),
                    rng.random_range(0.0..6.3),
                );
                (
                    [-h[0], -h[1], -h[2]],
                    180.0 - size * rng.random_range(0.05..1.5),
                )
            }
            _ => (
                offset(
                    c0,
                    size * rng.random_range(0.0..2.5),
                    rng.random_range(0.0..6.3),
                ),
                size * rng.random_range(0.05..2.5),
            ),
        };
        decided += check_circle_polygon(&sp, c, r);
        total += 3;
    }
    assert!(
        decided * 10 > total * 8,
        "only {decided} of {total} decided"
    );
}

#[test]
fn polygon_polygon_relations_match_sampling() {
    let mut rng = StdRng::seed_from_u64(11);
    let (mut decided, mut total) = (0, 0);
    for _ in 0..300 {
        let c1 = random_center(&mut rng);
        let s1 = 10f64.powf(rng.random_range(-2.0..1.5));
        let p1 = random_star(&mut rng, c1, s1);
        let c2 = offset(
            c1,
            s1 * rng.random_range(0.0..2.0),
            rng.random_range(0.0..6.3),
        );
        let s2 = s1 * rng.random_range(0.2..2.5);
        let p2 = random_star(&mut rng, c2, s2);
        let (g1, g2) = (p1.build(), p2.build());
        let (b1, gap1) = p1.boundary(24);
        let (b2, gap2) = p2.boundary(24);
        let in2: Option<Vec<bool>> = b1.iter().map(|&y| p2.brute_contains(y)).collect();
        let v2_in1: Option<Vec<bool>> = p2.verts.iter().map(|&y| p1.brute_contains(y)).collect();
        let (Some(in2), Some(v2_in1)) = (in2, v2_in1) else {
            total += 2;
            continue;
        };
        let dmin = b1
            .iter()
            .map(|&y| b2.iter().map(|&z| sep(y, z)).fold(f64::INFINITY, f64::min))
            .fold(f64::INFINITY, f64::min);
        let clear = dmin > (gap1 + gap2) / 2.0 + 1e-9;
        let (s1, s2) = (Shape::Polygon(&g1), Shape::Polygon(&g2));
        // CONTAINS(p1, p2)
        let want = if in2.iter().any(|&x| !x) {
            Some(false)
        } else if clear {
            Some(true)
        } else {
            None
        };
        if let Some(w) = want {
            assert_eq!(
                contains(s1, s2),
                w,
                "{:?} in {:?}",
                p1.coords(),
                p2.coords()
            );
            decided += 1;
        }
        // INTERSECTS
        let want = if in2.iter().any(|&x| x) || v2_in1.iter().any(|&x| x) {
            Some(true)
        } else if clear {
            Some(false)
        } else {
            None
        };
        if let Some(w) = want {
            assert_eq!(
                intersects(s1, s2),
                w,
                "{:?} x {:?}",
                p1.coords(),
                p2.coords()
            );
            assert_eq!(intersects(s2, s1), w);
            decided += 1;
        }
        total += 2;
    }
    assert!(
        decided * 10 > total * 8,
        "only {decided} of {total} decided"
    );
}

#[test]
fn polygon_area_matches_triangle_fan() {
    // Area by an independent formula: L'Huilier on the fan from the generating centre.
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..300 {
        let c = random_center(&mut rng);
        let size = 10f64.powf(rng.random_range(-3.0..1.78));
        let sp = random_star(&mut rng, c, size);
        let n = sp.verts.len();
        let mut a = 0.0;
        for i in 0..n {
            let (p, q) = (sp.verts[i], sp.verts[(i + 1) % n]);
            let (x, y, z) = (
                sep(c, p).to_radians(),
                sep(p, q).to_radians(),
                sep(q, c).to_radians(),
            );
            let s = (x + y + z) / 2.0;
            let t = ((s / 2.0).tan()
                * ((s - x) / 2.0).tan()
                * ((s - y) / 2.0).tan()
                * ((s - z) / 2.0).tan())
            .max(0.0);
            a += 4.0 * t.sqrt().atan();
        }
        let got = sp.build().area_sr();
        assert!((got / a - 1.0).abs() < 1e-6, "{got} vs {a} size {size}");
    }
}

// ---------- UDF level ----------

fn udf(name: &str) -> ScalarUDF {
    super::udfs()
        .into_iter()
        .find(|u| u.name() == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn invoke(
    name: &str,
    args: Vec<ColumnarValue>,
    rows: usize,
) -> datafusion::common::Result<ColumnarValue> {
    let u = udf(name);
    let arg_fields: Vec<_> = args
        .iter()
        .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
        .collect();
    let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
    let ret = u.return_type(&types)?;
    u.invoke_with_args(ScalarFunctionArgs {
        args,
        arg_fields,
        number_rows: rows,
        return_field: Arc::new(Field::new(name, ret, true)),
        config_options: Arc::new(ConfigOptions::default()),
    })
}

fn col(v: Vec<Option<f64>>) -> ColumnarValue {
    ColumnarValue::Array(Arc::new(Float64Array::from(v)))
}

fn lit(x: f64) -> ColumnarValue {
    ColumnarValue::Scalar(ScalarValue::Float64(Some(x)))
}

fn int32s(v: ColumnarValue, rows: usize) -> Vec<Option<i32>> {
    let a = v.into_array(rows).unwrap();
    a.as_primitive::<arrow::datatypes::Int32Type>()
        .iter()
        .collect()
}

#[test]
fn fast_paths_agree_with_generic_contains() {
    let mut rng = StdRng::seed_from_u64(99);
    let rows = 2000;
    for round in 0..12 {
        let cra = rng.random_range(-10.0..370.0);
        let cdec = if round % 4 == 0 {
            90.0
        } else {
            (rng.random_range(-1.0..1.0f64)).asin().to_degrees()
        };
        let r = 10f64.powf(rng.random_range(-6.0..2.25));
        let c = vec_of(cra, cdec);
        let (ra, dec): (Vec<Option<f64>>, Vec<Option<f64>>) = (0..rows)
            .map(|i| {
                if i % 97 == 5 {
                    return (None, Some(0.0));
                }
                let v = if i % 2 == 0 {
                    offset(
                        c,
                        r * rng.random_range(0.0..2.0),
                        rng.random_range(0.0..6.3),
                    )
                } else {
                    vec_of(
                        rng.random_range(0.0..360.0),
                        (rng.random_range(-1.0..1.0f64)).asin().to_degrees(),
                    )
                };
                let (a, d) = radec_of(v);
                (Some(a), Some(d))
            })
            .unzip();
        let fast = invoke(
            "adql_point_in_circle",
            vec![
                col(ra.clone()),
                col(dec.clone()),
                lit(cra),
                lit(cdec),
                lit(r),
            ],
            rows,
        )
        .unwrap();
        let p = invoke("adql_point", vec![col(ra.clone()), col(dec.clone())], rows).unwrap();
        let circle = invoke("adql_circle", vec![lit(cra), lit(cdec), lit(r)], rows).unwrap();
        assert!(matches!(circle, ColumnarValue::Scalar(_)));
        let generic = invoke("adql_contains", vec![p.clone(), circle.clone()], rows).unwrap();
        let (fast, generic) = (int32s(fast, rows), int32s(generic, rows));
        assert_eq!(fast, generic);
        assert_eq!(
            fast.iter().filter(|x| x.is_none()).count(),
            (0..rows).filter(|i| i % 97 == 5).count()
        );
        assert!(fast.contains(&Some(1)) && fast.contains(&Some(0)));
        let isect = int32s(
            invoke("adql_intersects", vec![circle, p.clone()], rows).unwrap(),
            rows,
        );
        assert_eq!(fast, isect);
        // The polygon fast path against the generic one, on a star polygon around the centre.
        let jit: Vec<(f64, f64)> = (0..7)
            .map(|_| (rng.random_range(-1.0..1.0), rng.random::<f64>()))
            .collect();
        let sp = star(cra, cdec, r.min(60.0), &jit, round % 2 == 0, round % 3 == 0);
        let coords: Vec<ColumnarValue> = sp.coords().into_iter().map(lit).collect();
        let poly = invoke("adql_polygon", coords, rows).unwrap();
        let fast = invoke(
            "adql_point_in_polygon",
            vec![col(ra.clone()), col(dec.clone()), poly.clone()],
            rows,
        )
        .unwrap();
        let generic = invoke("adql_contains", vec![p, poly], rows).unwrap();
        assert_eq!(int32s(fast, rows), int32s(generic, rows));
    }
}

#[test]
fn udf_errors_and_scalars() {
    let e = invoke("adql_circle", vec![lit(0.0), lit(0.0), lit(-1.0)], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("geometry: CIRCLE radius -1 is negative"), "{e}");
    let e = invoke(
        "adql_point_in_circle",
        vec![
            col(vec![Some(0.0)]),
            col(vec![Some(91.0)]),
            lit(0.0),
            lit(0.0),
            lit(1.0),
        ],
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("geometry: POINT has Dec 91"), "{e}");
    let coords: Vec<ColumnarValue> = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
        .into_iter()
        .map(lit)
        .collect();
    let e = invoke("adql_polygon", coords, 1).unwrap_err().to_string();
    assert!(e.contains("geometry: POLYGON is self-intersecting"), "{e}");
    let e = invoke(
        "ivo_healpix_index",
        vec![
            ColumnarValue::Scalar(ScalarValue::Int64(Some(30))),
            lit(0.0),
            lit(0.0),
        ],
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("geometry: HEALPix order 30"), "{e}");
    // Scalars in → scalar out; null in → null out.
    let d = invoke(
        "adql_distance",
        vec![lit(0.0), lit(0.0), lit(3.0), lit(4.0)],
        10,
    )
    .unwrap();
    let ColumnarValue::Scalar(ScalarValue::Float64(Some(d))) = d else {
        panic!("{d:?}")
    };
    assert!((d - 4.998536879937023).abs() < 1e-9, "{d}");
    let n = invoke(
        "adql_distance",
        vec![
            ColumnarValue::Scalar(ScalarValue::Float64(None)),
            lit(0.0),
            lit(3.0),
            lit(4.0),
        ],
        1,
    )
    .unwrap();
    assert!(matches!(
        n,
        ColumnarValue::Scalar(ScalarValue::Float64(None))
    ));
    let g = invoke(
        "adql_point",
        vec![lit(1.0), ColumnarValue::Scalar(ScalarValue::Float64(None))],
        1,
    )
    .unwrap();
    let ColumnarValue::Scalar(ScalarValue::List(l)) = g else {
        panic!()
    };
    assert!(l.is_null(0));
    // Coercion: integers, and integer lists for geometry.
    let u = udf("adql_contains");
    let t = u
        .coerce_types(&[DataType::new_list(DataType::Int64, true), DataType::Null])
        .unwrap();
    assert_eq!(t, vec![geometry_type(), geometry_type()]);
    assert!(u.coerce_types(&[DataType::Utf8, geometry_type()]).is_err());
    let u = udf("adql_polygon");
    assert!(u.coerce_types(&vec![DataType::Int32; 5]).is_err());
    assert_eq!(
        u.coerce_types(&vec![DataType::Int32; 6]).unwrap(),
        vec![DataType::Float64; 6]
    );
    assert_eq!(super::udfs().len(), 17);
}

#[tokio::test]
async fn sql_through_datafusion() {
    let ctx = SessionContext::new();
    for u in super::udfs() {
        ctx.register_udf(u);
    }
    let mut rng = StdRng::seed_from_u64(5);
    let n = 5000;
    let ra: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..360.0)).collect();
    let dec: Vec<f64> = (0..n)
        .map(|_| (rng.random_range(-1.0..1.0f64)).asin().to_degrees())
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(ra)) as ArrayRef,
            Arc::new(Float64Array::from(dec)),
        ],
    )
    .unwrap();
    ctx.register_batch("t", batch).unwrap();
    let df = ctx
        .sql(
            "select adql_point_in_circle(ra, dec, 10, 20, 30) as a, \
                    adql_contains(adql_point(ra, dec), adql_circle(10, 20, 30)) as b, \
                    adql_point_in_polygon(ra, dec, adql_box(10, 20, 40, 30)) as c, \
                    adql_intersects(adql_box(10, 20, 40, 30), adql_point(ra, dec)) as d, \
                    adql_distance(ra, dec, 10, 20) as e, \
                    adql_distance_geom(adql_point(ra, dec), adql_point(10, 20)) as f, \
                    ivo_healpix_index(8, ra, dec) as h, \
                    adql_coord1(ivo_healpix_center(8, ivo_healpix_index(8, ra, dec))) as hc \
             from t",
        )
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    let (mut seen, mut inside) = (0, 0);
    for b in &batches {
        let a = b.column(0).as_primitive::<arrow::datatypes::Int32Type>();
        let bb = b.column(1).as_primitive::<arrow::datatypes::Int32Type>();
        let c = b.column(2).as_primitive::<arrow::datatypes::Int32Type>();
        let d = b.column(3).as_primitive::<arrow::datatypes::Int32Type>();
        let e = b.column(4).as_primitive::<Float64Type>();
        let f = b.column(5).as_primitive::<Float64Type>();
        assert_eq!(b.column(6).data_type(), &DataType::Int64);
        assert_eq!(b.column(7).data_type(), &DataType::Float64);
        for i in 0..b.num_rows() {
            assert_eq!(a.value(i), bb.value(i));
            assert_eq!(c.value(i), d.value(i));
            assert_eq!(a.value(i), (e.value(i) <= 30.0) as i32);
            assert_eq!(e.value(i), f.value(i));
            inside += a.value(i);
            seen += 1;
        }
    }
    assert_eq!(seen, n);
    assert!(inside > 100);
    // Literal folding, AREA / CENTROID, and a runtime geometry error.
    let b = ctx
        .sql("select adql_area(adql_circle(0, 90, 90)) as a, adql_coord2(adql_centroid(adql_polygon(0, 0, 90, 0, 0, 90))) as c")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let a = b[0].column(0).as_primitive::<Float64Type>().value(0);
    assert!((a - 41252.96124941928 / 2.0).abs() < 1e-9);
    let c = b[0].column(1).as_primitive::<Float64Type>().value(0);
    assert!((c - 35.264389682754654).abs() < 1e-9);
    let e = match ctx
        .sql("select adql_area(adql_circle(0, 0, 200)) from t")
        .await
    {
        Ok(df) => df.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("geometry: CIRCLE radius 200 exceeds 180 degrees"),
        "{e}"
    );
}
