//! ADQL regions on the unit sphere: points, circles (spherical caps) and polygons with
//! great-circle edges, their validation, and the CONTAINS / INTERSECTS predicates, AREA and
//! CENTROID. See the [module documentation](super) for the rules.

use std::f64::consts::PI;

use super::sphere::{D2R, DEG2_PER_SR, R2D, V3, angle, norm_ra, robust_cross, tangent_basis};

/// Boundary tolerance in radians (≈ 2·10⁻⁸ arcsec): a point this close to a region's
/// boundary counts as inside (boundaries are inclusive), so that points lying on an edge by
/// construction are not lost to rounding.
pub const TOL_RAD: f64 = 1e-13;

/// Consecutive polygon vertices closer than this (degrees, ≈ 3.6·10⁻⁷ arcsec) are duplicates.
pub const MIN_SEP_DEG: f64 = 1e-10;

/// Consecutive polygon vertices farther apart than this (degrees) are (nearly) antipodal:
/// the great circle through them is undefined.
pub const MAX_EDGE_DEG: f64 = 180.0 - 1e-7;

/// Checks a position: both numbers finite, |Dec| ≤ 90.
pub fn check_position(what: &str, ra: f64, dec: f64) -> Result<(), String> {
    if !ra.is_finite() || !dec.is_finite() {
        return Err(format!(
            "{what} has a non-finite coordinate (ra={ra}, dec={dec})"
        ));
    }
    if dec.abs() > 90.0 {
        return Err(format!("{what} has Dec {dec} outside [-90, 90]"));
    }
    Ok(())
}

/// A point, as given (its unit vector is computed on demand: point-in-circle tests work on
/// RA/Dec directly).
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    /// RA in degrees, as given.
    pub ra: f64,
    /// Dec in degrees.
    pub dec: f64,
}

impl Point {
    /// A validated point.
    pub fn new(ra: f64, dec: f64) -> Result<Point, String> {
        check_position("POINT", ra, dec)?;
        Ok(Point { ra, dec })
    }

    /// The unit vector.
    #[inline]
    pub fn vec(&self) -> V3 {
        V3::from_radec(self.ra, self.dec)
    }
}

/// A circle: the closed spherical cap of angular radius `radius` around a centre, with the
/// constants of its point-membership test precomputed.
///
/// Membership uses the haversine form, hav(θ) = sin²(Δδ/2) + cos δ₁ cos δ₂ sin²(Δα/2)
/// compared with sin²((r + tol)/2): no cancellation at tiny separations, monotonic on
/// [0, 180°], periodic in Δα (RA wrap needs no reduction). Before any trigonometry a
/// conservative Dec band and, for caps that contain no pole, an RA half-width reject most
/// points of a small cone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cap {
    /// Centre RA in degrees, as given.
    pub ra: f64,
    /// Centre Dec in degrees.
    pub dec: f64,
    /// Radius in degrees.
    pub radius: f64,
    /// Centre unit vector.
    pub center: V3,
    r_rad: f64,
    cos_dec: f64,
    hav_thr: f64,
    chord2_thr: f64,
    full: bool,
    dec_lo: f64,
    dec_hi: f64,
    ra_half: f64,
    // For caps wider than a hemisphere: the enlarged antipodal hole (Dec band, centre RA,
    // RA half-width); a point outside it is certainly inside the cap.
    hole: bool,
    hole_lo: f64,
    hole_hi: f64,
    hole_ra: f64,
    hole_half: f64,
}

/// RA half-width (degrees) of a cap of radius `r_deg` centred at Dec `dec`, padded; infinite
/// when the cap reaches a pole.
fn ra_half_width(dec: f64, r_deg: f64) -> f64 {
    if dec.abs() + r_deg >= 90.0 - 1e-9 {
        return f64::INFINITY;
    }
    let s = (r_deg * D2R).sin() / (dec * D2R).cos();
    if s >= 1.0 {
        f64::INFINITY
    } else {
        s.asin() * R2D * (1.0 + 1e-9) + 1e-9
    }
}

impl Cap {
    /// A validated circle: finite centre with |Dec| ≤ 90 and a radius in [0, 180] degrees.
    pub fn new(ra: f64, dec: f64, radius: f64) -> Result<Cap, String> {
        check_position("CIRCLE centre", ra, dec)?;
        if !radius.is_finite() {
            return Err(format!("CIRCLE has a non-finite radius ({radius})"));
        }
        if radius < 0.0 {
            return Err(format!("CIRCLE radius {radius} is negative"));
        }
        if radius > 180.0 {
            return Err(format!("CIRCLE radius {radius} exceeds 180 degrees"));
        }
        Ok(Cap::build(ra, dec, radius))
    }

    /// A cap from already validated numbers.
    pub(crate) fn build(ra: f64, dec: f64, radius: f64) -> Cap {
        let r_rad = radius * D2R;
        let eff = r_rad + TOL_RAD;
        let full = eff >= PI;
        let hav_thr = if full {
            1.0
        } else {
            let s = (0.5 * eff).sin();
            s * s
        };
        // Prefilters, slightly wider than the tolerant cap so that they never reject a
        // point the exact test would accept.
        let m_deg = (eff + 1e-12) * R2D * (1.0 + 1e-12);
        let (dec_lo, dec_hi, ra_half) = if full {
            (f64::NEG_INFINITY, f64::INFINITY, f64::INFINITY)
        } else {
            (dec - m_deg, dec + m_deg, ra_half_width(dec, m_deg))
        };
        // Caps wider than a hemisphere: the antipodal hole, enlarged by a margin well above
        // rounding, so that "outside the hole" implies the exact test would say inside.
        let hole = !full && eff > PI / 2.0;
        let h_deg = ((PI - eff) * R2D + 1e-9) * (1.0 + 1e-9);
        let (hole_lo, hole_hi, hole_half) = if hole {
            (-dec - h_deg, -dec + h_deg, ra_half_width(dec, h_deg))
        } else {
            (0.0, 0.0, 0.0)
        };
        Cap {
            ra,
            dec,
            radius,
            center: V3::from_radec(ra, dec),
            r_rad,
            cos_dec: (dec * D2R).cos(),
            hav_thr,
            chord2_thr: 4.0 * hav_thr,
            full,
            dec_lo,
            dec_hi,
            ra_half,
            hole,
            hole_lo,
            hole_hi,
            hole_ra: ra + 180.0,
            hole_half,
        }
    }

    /// Radius in radians.
    pub fn radius_rad(&self) -> f64 {
        self.r_rad
    }

    /// Whether the cap (with its tolerance) covers the whole sphere.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The cheap part of [`Cap::contains_radec`]: false means certainly outside.
    #[inline(always)]
    pub fn maybe_radec(&self, ra: f64, dec: f64) -> bool {
        if dec < self.dec_lo || dec > self.dec_hi {
            return false;
        }
        self.ra_half == f64::INFINITY || super::sphere::ra_gap(ra - self.ra) <= self.ra_half
    }

    /// Whether the position (degrees; Dec assumed in [-90, 90]) lies in the closed cap.
    /// This is the one point-in-circle test used everywhere, so the fast path and the
    /// generic CONTAINS agree bit for bit.
    #[inline(always)]
    pub fn contains_radec(&self, ra: f64, dec: f64) -> bool {
        if !self.maybe_radec(ra, dec) {
            return false;
        }
        if self.full {
            return true;
        }
        if self.hole
            && (dec < self.hole_lo
                || dec > self.hole_hi
                || super::sphere::ra_gap(ra - self.hole_ra) > self.hole_half)
        {
            return true;
        }
        const H: f64 = 0.5 * D2R;
        let sd = ((dec - self.dec) * H).sin();
        let sa = ((ra - self.ra) * H).sin();
        let h = sd * sd + self.cos_dec * (dec * D2R).cos() * (sa * sa);
        h <= self.hav_thr
    }

    /// Whether the unit vector lies in the closed cap (chord form, |v − c|² ≤ 4 sin²(r/2)).
    #[inline]
    pub fn contains_vec(&self, v: V3) -> bool {
        self.full || v.minus(self.center).norm2() <= self.chord2_thr
    }

    /// Area in steradians, 2π(1 − cos r) written as 4π sin²(r/2) (exact at tiny radii).
    pub fn area_sr(&self) -> f64 {
        let s = (0.5 * self.r_rad).sin();
        4.0 * PI * s * s
    }
}

/// One of the three reference points of the crossing test: the midpoint of an edge.
#[derive(Debug, Clone, Copy, Default)]
struct RefEdge {
    edge: usize,
}

/// A validated polygon, oriented so that its interior (the smaller of the two regions its
/// boundary bounds) lies to the left of every edge, i.e. counter-clockwise seen from
/// outside the sphere, with what its membership tests need precomputed.
///
/// The buffers are reused by [`Polygon::rebuild`], so evaluating a column of polygons does
/// not allocate per row once the buffers have grown.
#[derive(Debug, Clone, Default)]
pub struct Polygon {
    v: Vec<V3>,
    n: Vec<V3>,
    convex: bool,
    area: f64,
    /// Bounding cap (centre, radius in radians, cos of the padded radius) when the polygon
    /// fits in a cap smaller than a hemisphere.
    bound: Option<(V3, f64, f64)>,
    bcap: Option<Cap>,
    refs: [RefEdge; 3],
    nrefs: usize,
    q: Vec<V3>,
    cm: Vec<f64>,
    /// Edge midpoints and half-lengths, scratch space of the simplicity check.
    mids: Vec<(V3, f64)>,
}

/// Signed turning angle at `v` from the edge with normal `n0` to the edge with normal `n1`
/// (positive = left turn seen from outside the sphere).
#[inline]
fn turn(n0: V3, n1: V3, v: V3) -> f64 {
    n0.cross(n1).dot(v).atan2(n0.dot(n1))
}

/// Angular distance (radians) from `p` to the minor arc a→b whose unit normal is `n`.
pub(crate) fn dist_point_arc(p: V3, a: V3, b: V3, n: V3) -> f64 {
    let t = n.dot(p);
    let proj = p.minus(n.scale(t));
    let pn = proj.norm();
    if pn < 1e-300 {
        return PI / 2.0;
    }
    if a.cross(proj).dot(n) >= 0.0 && proj.cross(b).dot(n) >= 0.0 {
        t.abs().atan2(pn)
    } else {
        angle(p, a).min(angle(p, b))
    }
}

/// Whether the arcs a→b (unit normal `nab`) and c→d (unit normal `ncd`) cross at a point
/// interior to both, every orientation clearing `thr` (the four-orientation test of S2's
/// `CrossingSign`: ACB, BDA, CBD and DAC all turn the same way).
#[inline]
fn proper_cross(a: V3, b: V3, nab: V3, c: V3, d: V3, ncd: V3, thr: f64) -> bool {
    let s_c = nab.dot(c);
    let s_d = nab.dot(d);
    let s_a = ncd.dot(a);
    let s_b = ncd.dot(b);
    (s_d > thr && s_c < -thr && s_b < -thr && s_a > thr)
        || (s_d < -thr && s_c > thr && s_b > thr && s_a < -thr)
}

impl Polygon {
    /// A validated polygon from `[ra1, dec1, ra2, dec2, …]` in degrees.
    pub fn new(coords: &[f64]) -> Result<Polygon, String> {
        let mut p = Polygon::default();
        p.rebuild(coords)?;
        Ok(p)
    }

    /// Validates `coords` and rebuilds `self` from them, reusing the buffers. On error
    /// `self` is left in an unspecified (but safe) state.
    pub fn rebuild(&mut self, coords: &[f64]) -> Result<(), String> {
        if coords.len() < 6 || !coords.len().is_multiple_of(2) {
            return Err(format!(
                "POLYGON needs at least 3 vertices given as ra, dec pairs (an even number ≥ 6 of coordinates), got {} coordinates",
                coords.len()
            ));
        }
        let nv = coords.len() / 2;
        self.v.clear();
        for (k, c) in coords.chunks_exact(2).enumerate() {
            if !c[0].is_finite() || !c[1].is_finite() || c[1].abs() > 90.0 {
                // Format the vertex number only on failure: no allocation per valid row.
                check_position(&format!("POLYGON vertex {}", k + 1), c[0], c[1])?;
            }
            self.v.push(V3::from_radec(c[0], c[1]));
        }
        // At least three distinct vertices.
        let v = &self.v;
        let distinct = |a: V3, b: V3| angle(a, b) * R2D >= MIN_SEP_DEG;
        let i1 = (1..nv).find(|&i| distinct(v[0], v[i]));
        let enough =
            i1.is_some_and(|i1| (1..nv).any(|i| distinct(v[0], v[i]) && distinct(v[i1], v[i])));
        if !enough {
            return Err("POLYGON has fewer than 3 distinct vertices".to_string());
        }
        // Consecutive vertices: neither equal nor antipodal.
        for i in 0..nv {
            let j = (i + 1) % nv;
            let sep = angle(v[i], v[j]) * R2D;
            if sep < MIN_SEP_DEG {
                return Err(format!(
                    "POLYGON has consecutive duplicate vertices ({} and {})",
                    i + 1,
                    j + 1
                ));
            }
            if sep > MAX_EDGE_DEG {
                return Err(format!(
                    "POLYGON vertices {} and {} are antipodal: the great-circle edge between them is undefined",
                    i + 1,
                    j + 1
                ));
            }
        }
        self.compute_normals();
        // Edges folding back on themselves at a vertex (zero-width spikes, collinear
        // back-and-forth): the turning angle there is ±180°.
        let mut turning = 0.0;
        let mut convex = true;
        for i in 0..nv {
            let k = turn(self.n[(i + nv - 1) % nv], self.n[i], self.v[i]);
            if PI - k.abs() <= 1e-10 {
                return Err(format!(
                    "POLYGON edges double back on themselves at vertex {} (the polygon is degenerate)",
                    i + 1
                ));
            }
            convex &= k >= -1e-12;
            turning += k;
        }
        self.check_simple()?;
        // Gauss–Bonnet: the region to the left of the boundary has area 2π − Σ turning.
        // Keep the smaller region; on an exact tie (a hemisphere) keep the left one.
        let left = 2.0 * PI - turning;
        let area_gb = if left > 2.0 * PI + 1e-12 {
            self.v.reverse();
            self.compute_normals();
            // Reversal negates every turning angle.
            convex =
                (0..nv).all(|i| turn(self.n[(i + nv - 1) % nv], self.n[i], self.v[i]) >= -1e-12);
            4.0 * PI - left
        } else {
            left
        };
        self.convex = convex;
        self.area = area_gb.max(0.0);
        let sum = self.v.iter().fold(V3::default(), |s, &x| s.plus(x));
        let c = sum.normalized();
        if area_gb < 1e-2 && sum.norm() > 1e-6 {
            // Small polygon: Gauss–Bonnet cancels; sum the signed excesses of the fan from
            // the vertex mean (Oosterom–Strackee), each small and accurate.
            let mut s = 0.0;
            for i in 0..nv {
                let (a, b) = (self.v[i], self.v[(i + 1) % nv]);
                let num = c.minus(a).dot(robust_cross(a, b));
                let den = 1.0 + c.dot(a) + a.dot(b) + b.dot(c);
                s += 2.0 * num.atan2(den);
            }
            if s > 0.0 && s.is_finite() {
                self.area = s;
            }
        }
        // Bounding cap: the region lies inside any cap smaller than a hemisphere that holds
        // the boundary (the cap's complement, larger than 2π, is on the other side).
        self.bound = None;
        self.bcap = None;
        if sum.norm() > 1e-6 {
            let r = self.v.iter().map(|&x| angle(c, x)).fold(0.0, f64::max);
            if r < PI / 2.0 - 1e-6 {
                let rp = r * (1.0 + 1e-9) + 1e-12 + TOL_RAD;
                self.bound = Some((c, r, rp.cos()));
                let (cra, cdec) = c.to_radec();
                self.bcap = Some(Cap::build(cra, cdec, rp * R2D * (1.0 + 1e-9) + 1e-9));
            }
        }
        if !self.convex {
            self.prepare_refs();
        }
        Ok(())
    }

    fn compute_normals(&mut self) {
        let nv = self.v.len();
        self.n.clear();
        for i in 0..nv {
            let (a, b) = (self.v[i], self.v[(i + 1) % nv]);
            self.n.push(robust_cross(a, b).normalized());
        }
    }

    /// Rejects polygons whose non-adjacent edges cross or touch (figure-eights, repeated
    /// vertices, loops). O(n²) with a bounding-cap reject per pair.
    fn check_simple(&mut self) -> Result<(), String> {
        let nv = self.v.len();
        if nv < 4 {
            return Ok(());
        }
        self.mids.clear();
        for i in 0..nv {
            let (a, b) = (self.v[i], self.v[(i + 1) % nv]);
            self.mids.push((a.plus(b).normalized(), 0.5 * angle(a, b)));
        }
        let mids = &self.mids;
        for i in 0..nv {
            for j in i + 2..nv {
                if i == 0 && j == nv - 1 {
                    continue;
                }
                let reach = mids[i].1 + mids[j].1 + 1e-9;
                if reach < PI && mids[i].0.dot(mids[j].0) < reach.cos() {
                    continue;
                }
                let (a, b, nab) = (self.v[i], self.v[(i + 1) % nv], self.n[i]);
                let (c, d, ncd) = (self.v[j], self.v[(j + 1) % nv], self.n[j]);
                if proper_cross(a, b, nab, c, d, ncd, 0.0)
                    || dist_point_arc(c, a, b, nab) <= TOL_RAD
                    || dist_point_arc(d, a, b, nab) <= TOL_RAD
                    || dist_point_arc(a, c, d, ncd) <= TOL_RAD
                    || dist_point_arc(b, c, d, ncd) <= TOL_RAD
                {
                    return Err(format!(
                        "POLYGON is self-intersecting: edge {}–{} meets edge {}–{}",
                        i + 1,
                        (i + 1) % nv + 1,
                        j + 1,
                        (j + 1) % nv + 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// Chooses three reference edges whose great circles have no common point, and
    /// precomputes M×vᵢ and nᵢ·M for each reference midpoint M.
    fn prepare_refs(&mut self) {
        let nv = self.v.len();
        let len = |i: usize| angle(self.v[i], self.v[(i + 1) % nv]);
        let a = (0..nv)
            .max_by(|&x, &y| len(x).total_cmp(&len(y)))
            .unwrap_or(0);
        let na = self.n[a];
        let b = (0..nv)
            .max_by(|&x, &y| {
                na.cross(self.n[x])
                    .norm()
                    .total_cmp(&na.cross(self.n[y]).norm())
            })
            .unwrap_or(0);
        let nab = na.cross(self.n[b]);
        let c = (0..nv)
            .max_by(|&x, &y| {
                nab.dot(self.n[x])
                    .abs()
                    .total_cmp(&nab.dot(self.n[y]).abs())
            })
            .unwrap_or(0);
        self.refs = [
            RefEdge { edge: a },
            RefEdge { edge: b },
            RefEdge { edge: c },
        ];
        self.nrefs = 3;
        self.q.clear();
        self.cm.clear();
        for r in 0..self.nrefs {
            let e = self.refs[r].edge;
            let m = self.v[e].plus(self.v[(e + 1) % nv]).normalized();
            for i in 0..nv {
                self.q.push(m.cross(self.v[i]));
                self.cm.push(self.n[i].dot(m));
            }
        }
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// Always false: a validated polygon has at least three vertices.
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    /// The vertices, counter-clockwise seen from outside the sphere (interior on the left).
    pub fn vertices(&self) -> &[V3] {
        &self.v
    }

    /// Whether every vertex turns left, so that the region is the intersection of the
    /// hemispheres left of its edges.
    pub fn is_convex(&self) -> bool {
        self.convex
    }

    /// Area in steradians (of the smaller region).
    pub fn area_sr(&self) -> f64 {
        self.area
    }

    #[inline]
    fn edge(&self, i: usize) -> (V3, V3, V3) {
        let j = if i + 1 == self.v.len() { 0 } else { i + 1 };
        (self.v[i], self.v[j], self.n[i])
    }

    /// The cheap prefilter of [`Polygon::contains_radec`]: false means certainly outside.
    #[inline(always)]
    pub fn maybe_radec(&self, ra: f64, dec: f64) -> bool {
        match &self.bcap {
            Some(c) => c.maybe_radec(ra, dec),
            None => true,
        }
    }

    /// Whether the position (degrees) lies in the closed polygon.
    #[inline]
    pub fn contains_radec(&self, ra: f64, dec: f64) -> bool {
        self.maybe_radec(ra, dec) && self.contains_vec(V3::from_radec(ra, dec))
    }

    /// Whether the unit vector lies in the closed polygon (boundary inclusive within
    /// [`TOL_RAD`]).
    ///
    /// Convex polygons: every edge normal has n·p ≥ −tol. Otherwise: p on the boundary is
    /// inside; else the arc from p to the midpoint M of a reference edge is walked and its
    /// crossings with the other edges counted; p is inside iff (p is on the inner side of
    /// the reference edge) XOR (odd number of crossings). Vertices lying exactly on the
    /// arc are perturbed symbolically to one side (a zero orientation counts as positive)
    /// the same way for both edges that share them, so the parity stays consistent. Of
    /// the three reference edges the one whose great circle is farthest from p is used,
    /// so the arc is never degenerate.
    #[allow(clippy::needless_range_loop)] // i and i + 1 index three parallel slices
    pub fn contains_vec(&self, p: V3) -> bool {
        if let Some((c, _, cosr)) = self.bound
            && p.dot(c) < cosr
        {
            return false;
        }
        let nv = self.v.len();
        if self.convex {
            return self.n.iter().all(|n| n.dot(p) >= -TOL_RAD);
        }
        for i in 0..nv {
            let (a, b, n) = self.edge(i);
            if n.dot(p).abs() <= TOL_RAD
                && ((a.cross(p).dot(n) >= 0.0 && p.cross(b).dot(n) >= 0.0)
                    || p.minus(a).norm2() <= TOL_RAD * TOL_RAD
                    || p.minus(b).norm2() <= TOL_RAD * TOL_RAD)
            {
                return true;
            }
        }
        let mut best = 0;
        let mut best_t = -1.0;
        for r in 0..self.nrefs {
            let t = self.n[self.refs[r].edge].dot(p).abs();
            if t > best_t {
                best_t = t;
                best = r;
            }
        }
        let e0 = self.refs[best].edge;
        let q = &self.q[best * nv..(best + 1) * nv];
        let cm = &self.cm[best * nv..(best + 1) * nv];
        let mut odd = false;
        let mut s_a = p.dot(q[0]);
        for i in 0..nv {
            let j = if i + 1 == nv { 0 } else { i + 1 };
            let s_b = p.dot(q[j]);
            if i != e0 && ((s_a < 0.0) != (s_b < 0.0)) {
                let c = cm[i];
                let t = self.n[i].dot(p);
                let pos = s_a >= 0.0;
                if c != 0.0 && t != 0.0 && (c > 0.0) == pos && (t > 0.0) != pos {
                    odd = !odd;
                }
            }
            s_a = s_b;
        }
        (self.n[e0].dot(p) > 0.0) != odd
    }

    /// Angular distance (radians) from `p` to the polygon's boundary.
    pub fn boundary_distance(&self, p: V3) -> f64 {
        (0..self.v.len())
            .map(|i| {
                let (a, b, n) = self.edge(i);
                dist_point_arc(p, a, b, n)
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Whether `p` is inside and farther than the tolerance from the boundary.
    fn strictly_contains(&self, p: V3) -> bool {
        self.contains_vec(p) && self.boundary_distance(p) > TOL_RAD
    }

    /// The area-weighted centroid, as a unit vector: the direction of ∫ x dA over the
    /// region, by Stokes ½ Σ θᵢ n̂ᵢ (edge lengths θᵢ, unit edge normals n̂ᵢ); for polygons
    /// under 10⁻⁸ sr, where that sum cancels, the planar area centroid in the gnomonic
    /// projection about the vertex mean (exact to O(size³)).
    pub fn centroid(&self) -> Result<V3, String> {
        let nv = self.v.len();
        if self.area >= 1e-8 {
            let mut s = V3::default();
            for i in 0..nv {
                let (a, b, n) = self.edge(i);
                s = s.plus(n.scale(angle(a, b)));
            }
            if s.norm() < 1e-12 {
                return Err("CENTROID is undefined for this polygon (its moment vanishes)".into());
            }
            return Ok(s.normalized());
        }
        let c = self
            .v
            .iter()
            .fold(V3::default(), |s, &x| s.plus(x))
            .normalized();
        let (e1, e2) = tangent_basis(c);
        let proj = |x: V3| {
            let w = x.dot(c);
            (x.dot(e1) / w, x.dot(e2) / w)
        };
        let (x0, y0) = proj(self.v[0]);
        let (mut a2, mut cx, mut cy) = (0.0, 0.0, 0.0);
        for i in 1..nv - 1 {
            let (x1, y1) = proj(self.v[i]);
            let (x2, y2) = proj(self.v[i + 1]);
            let (x1, y1, x2, y2) = (x1 - x0, y1 - y0, x2 - x0, y2 - y0);
            let cr = x1 * y2 - x2 * y1;
            a2 += cr;
            cx += (x1 + x2) * cr;
            cy += (y1 + y2) * cr;
        }
        if a2 == 0.0 {
            return Ok(c);
        }
        let (gx, gy) = (x0 + cx / (3.0 * a2), y0 + cy / (3.0 * a2));
        Ok(c.plus(e1.scale(gx)).plus(e2.scale(gy)).normalized())
    }

    fn bound_angle(&self) -> Option<(V3, f64)> {
        self.bound.map(|(c, r, _)| (c, r))
    }
}

/// A borrowed region, what the predicates take.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    /// A point.
    Point(&'a Point),
    /// A circle.
    Circle(&'a Cap),
    /// A polygon.
    Polygon(&'a Polygon),
}

/// An owned region.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // Regions are built one at a time; boxing would allocate.
pub enum Region {
    /// A point.
    Point(Point),
    /// A circle.
    Circle(Cap),
    /// A polygon.
    Polygon(Polygon),
}

impl Region {
    /// A region from its list value: 2 numbers = point, 3 = circle, an even number ≥ 6 =
    /// polygon; validated.
    pub fn from_coords(c: &[f64]) -> Result<Region, String> {
        match c.len() {
            2 => Ok(Region::Point(Point::new(c[0], c[1])?)),
            3 => Ok(Region::Circle(Cap::new(c[0], c[1], c[2])?)),
            _ => Ok(Region::Polygon(Polygon::new(c)?)),
        }
    }

    /// The borrowed form.
    pub fn shape(&self) -> Shape<'_> {
        match self {
            Region::Point(p) => Shape::Point(p),
            Region::Circle(c) => Shape::Circle(c),
            Region::Polygon(g) => Shape::Polygon(g),
        }
    }
}

/// Reusable storage for decoding one region per row without allocating.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    kind: u8,
    point: Point,
    cap: Cap,
    poly: Polygon,
}

impl Scratch {
    /// Decodes and validates a list value into the scratch space.
    pub fn load(&mut self, c: &[f64]) -> Result<Shape<'_>, String> {
        match c.len() {
            2 => {
                self.point = Point::new(c[0], c[1])?;
                self.kind = 0;
            }
            3 => {
                self.cap = Cap::new(c[0], c[1], c[2])?;
                self.kind = 1;
            }
            _ => {
                self.poly.rebuild(c)?;
                self.kind = 2;
            }
        }
        Ok(self.shape())
    }

    /// The region loaded last.
    pub fn shape(&self) -> Shape<'_> {
        match self.kind {
            0 => Shape::Point(&self.point),
            1 => Shape::Circle(&self.cap),
            _ => Shape::Polygon(&self.poly),
        }
    }
}

/// CONTAINS(a, b): whether region `a` lies inside region `b` (ADQL's argument order),
/// boundaries inclusive.
pub fn contains(a: Shape<'_>, b: Shape<'_>) -> bool {
    match (a, b) {
        (Shape::Point(p), Shape::Point(q)) => angle(p.vec(), q.vec()) <= TOL_RAD,
        (Shape::Point(p), Shape::Circle(c)) => c.contains_radec(p.ra, p.dec),
        (Shape::Point(p), Shape::Polygon(g)) => g.contains_radec(p.ra, p.dec),
        (Shape::Circle(c), Shape::Point(q)) => {
            c.r_rad <= TOL_RAD && angle(c.center, q.vec()) <= TOL_RAD
        }
        (Shape::Circle(c), Shape::Circle(d)) => {
            d.full || angle(c.center, d.center) + c.r_rad <= d.r_rad + TOL_RAD
        }
        (Shape::Circle(c), Shape::Polygon(g)) => circle_in_polygon(c, g),
        (Shape::Polygon(_), Shape::Point(_)) => false,
        (Shape::Polygon(g), Shape::Circle(c)) => polygon_in_cap(g, c),
        (Shape::Polygon(g), Shape::Polygon(h)) => polygon_in_polygon(g, h),
    }
}

/// INTERSECTS(a, b): whether the regions share at least one point (with a point it is
/// CONTAINS).
pub fn intersects(a: Shape<'_>, b: Shape<'_>) -> bool {
    match (a, b) {
        (Shape::Point(p), x) | (x, Shape::Point(p)) => contains(Shape::Point(p), x),
        (Shape::Circle(c), Shape::Circle(d)) => {
            angle(c.center, d.center) <= c.r_rad + d.r_rad + TOL_RAD
        }
        (Shape::Circle(c), Shape::Polygon(g)) | (Shape::Polygon(g), Shape::Circle(c)) => {
            circle_intersects_polygon(c, g)
        }
        (Shape::Polygon(g), Shape::Polygon(h)) => polygon_intersects_polygon(g, h),
    }
}

/// Cap ⊆ polygon: the centre is inside and no boundary point is closer than the radius
/// (then the open cap, connected, misses the boundary and sits on the centre's side).
fn circle_in_polygon(c: &Cap, g: &Polygon) -> bool {
    if c.full {
        return false;
    }
    g.contains_vec(c.center)
        && (c.r_rad <= TOL_RAD || g.boundary_distance(c.center) >= c.r_rad - TOL_RAD)
}

/// Polygon ⊆ cap. A cap of radius ≤ 90° is convex: the vertices decide. A larger cap is
/// the complement of an open small cap K around the antipode; the polygon must miss K.
fn polygon_in_cap(g: &Polygon, c: &Cap) -> bool {
    if c.full {
        return true;
    }
    if c.r_rad <= PI / 2.0 {
        return g.v.iter().all(|&v| c.contains_vec(v));
    }
    let anti = c.center.opposite();
    let rk = PI - c.r_rad;
    !(g.contains_vec(anti) || g.boundary_distance(anti) < rk - TOL_RAD)
}

fn circle_intersects_polygon(c: &Cap, g: &Polygon) -> bool {
    if c.full {
        return true;
    }
    if let Some((bc, br)) = g.bound_angle()
        && angle(c.center, bc) > c.r_rad + br + 1e-9
    {
        return false;
    }
    g.contains_vec(c.center) || g.boundary_distance(c.center) <= c.r_rad + TOL_RAD
}

/// Polygon g ⊆ polygon h: every vertex of g in h, no edge of g properly crossing an edge
/// of h, no vertex of h strictly inside g, and every edge midpoint of g in h. (Then ∂g ⊆ h,
/// and since both are the smaller regions of their boundaries, g ⊆ h.)
fn polygon_in_polygon(g: &Polygon, h: &Polygon) -> bool {
    if !g.v.iter().all(|&v| h.contains_vec(v)) {
        return false;
    }
    for i in 0..g.len() {
        let (a, b, nab) = g.edge(i);
        for j in 0..h.len() {
            let (c, d, ncd) = h.edge(j);
            if proper_cross(a, b, nab, c, d, ncd, TOL_RAD) {
                return false;
            }
        }
    }
    if h.v.iter().any(|&w| g.strictly_contains(w)) {
        return false;
    }
    (0..g.len()).all(|i| {
        let (a, b, _) = g.edge(i);
        h.contains_vec(a.plus(b).normalized())
    })
}

/// Two polygons meet iff two edges cross, or a vertex of one lies in the other (this also
/// covers touching and overlapping edges, which always put a vertex on the other boundary).
fn polygon_intersects_polygon(g: &Polygon, h: &Polygon) -> bool {
    if let (Some((cg, rg)), Some((ch, rh))) = (g.bound_angle(), h.bound_angle())
        && angle(cg, ch) > rg + rh + 1e-9
    {
        return false;
    }
    for i in 0..g.len() {
        let (a, b, nab) = g.edge(i);
        for j in 0..h.len() {
            let (c, d, ncd) = h.edge(j);
            if proper_cross(a, b, nab, c, d, ncd, 0.0) {
                return true;
            }
        }
    }
    g.v.iter().any(|&v| h.contains_vec(v)) || h.v.iter().any(|&v| g.contains_vec(v))
}

/// AREA in square degrees: 0 for a point, 4π sin²(r/2) sr for a circle, the spherical
/// excess for a polygon.
pub fn area_deg2(s: Shape<'_>) -> f64 {
    match s {
        Shape::Point(_) => 0.0,
        Shape::Circle(c) => c.area_sr() * DEG2_PER_SR,
        Shape::Polygon(g) => g.area_sr() * DEG2_PER_SR,
    }
}

/// CENTROID as (RA in [0, 360), Dec) in degrees: a point itself, a circle's centre, a
/// polygon's area-weighted centroid.
pub fn centroid(s: Shape<'_>) -> Result<(f64, f64), String> {
    match s {
        Shape::Point(p) => Ok((norm_ra(p.ra), p.dec)),
        Shape::Circle(c) => Ok((norm_ra(c.ra), c.dec)),
        Shape::Polygon(g) => Ok(g.centroid()?.to_radec()),
    }
}

/// The polygon of BOX(ra, dec, width, height): corners (ra ∓ w/2, dec ∓ h/2) joined by
/// great-circle arcs, counter-clockwise, RA reduced to [0, 360).
pub fn box_coords(ra: f64, dec: f64, w: f64, h: f64) -> Result<[f64; 8], String> {
    check_position("BOX centre", ra, dec)?;
    if !w.is_finite() || !h.is_finite() {
        return Err(format!("BOX has a non-finite size (width={w}, height={h})"));
    }
    if w <= 0.0 || w >= 180.0 {
        return Err(format!(
            "BOX width {w} must be in (0, 180) degrees (its corners are joined by great-circle arcs)"
        ));
    }
    if h <= 0.0 {
        return Err(format!("BOX height {h} must be positive"));
    }
    if dec.abs() + h / 2.0 >= 90.0 {
        return Err(format!(
            "BOX centred at Dec {dec} with height {h} reaches or passes a pole"
        ));
    }
    let (r0, r1) = (norm_ra(ra - w / 2.0), norm_ra(ra + w / 2.0));
    let (d0, d1) = (dec - h / 2.0, dec + h / 2.0);
    Ok([r0, d0, r1, d0, r1, d1, r0, d1])
}

#[cfg(test)]
mod tests {
    use super::super::sphere::distance_deg;
    use super::*;

    fn poly(c: &[f64]) -> Polygon {
        Polygon::new(c).unwrap()
    }

    fn pt(ra: f64, dec: f64) -> Point {
        Point::new(ra, dec).unwrap()
    }

    #[test]
    fn point_in_circle_boundaries() {
        let c = Cap::new(0.0, 0.0, 1.0).unwrap();
        assert!(c.contains_radec(0.0, 1.0));
        assert!(c.contains_radec(1.0, 0.0));
        assert!(c.contains_radec(360.0, 0.0));
        assert!(c.contains_radec(-1.0, 0.0));
        assert!(c.contains_radec(359.3, 0.3));
        assert!(!c.contains_radec(0.0, 1.0 + 1e-9));
        assert!(!c.contains_radec(180.0, 0.0));
        // Tiny and huge radii.
        let c = Cap::new(123.0, -45.0, 1e-6).unwrap();
        assert!(c.contains_radec(123.0, -45.0 + 0.999e-6));
        assert!(!c.contains_radec(123.0, -45.0 + 1.001e-6));
        let dra = 0.999e-6 / (45.0f64 * D2R).cos();
        assert!(c.contains_radec(123.0 + dra, -45.0));
        assert!(!c.contains_radec(123.0 + dra * 1.002, -45.0));
        let c = Cap::new(10.0, 20.0, 179.9).unwrap();
        assert!(c.contains_radec(190.0, -19.85));
        assert!(!c.contains_radec(190.0, -20.0));
        assert!(!c.contains_radec(190.0, -19.95));
        // Polar caps and RA wrap.
        let c = Cap::new(77.0, 90.0, 5.0).unwrap();
        assert!(c.contains_radec(200.0, 85.0));
        assert!(c.contains_radec(-10.0, 85.5));
        assert!(!c.contains_radec(200.0, 84.99));
        let c = Cap::new(359.9, 89.0, 2.0).unwrap();
        assert!(c.contains_radec(180.0, 89.5));
        assert!(c.contains_radec(0.1, 88.0));
        let full = Cap::new(0.0, 0.0, 180.0).unwrap();
        assert!(full.contains_radec(180.0, 0.0) && full.is_full());
        let zero = Cap::new(5.0, 5.0, 0.0).unwrap();
        assert!(zero.contains_radec(5.0, 5.0) && !zero.contains_radec(5.0, 5.0 + 1e-9));
        assert!(zero.contains_radec(365.0, 5.0));
    }

    #[test]
    fn validation_messages() {
        assert!(Cap::new(0.0, 0.0, -1.0).unwrap_err().contains("negative"));
        assert!(Cap::new(0.0, 0.0, 180.1).unwrap_err().contains("180"));
        assert!(Cap::new(0.0, 91.0, 1.0).unwrap_err().contains("Dec"));
        assert!(
            Cap::new(f64::NAN, 0.0, 1.0)
                .unwrap_err()
                .contains("non-finite")
        );
        assert!(Point::new(0.0, -90.5).is_err());
        assert!(Point::new(f64::INFINITY, 0.0).is_err());
        let e = |c: &[f64]| Polygon::new(c).unwrap_err();
        assert!(e(&[0.0, 0.0, 1.0, 0.0]).contains("at least 3"));
        assert!(e(&[0.0, 0.0, 1.0, 0.0, 1.0]).contains("at least 3"));
        assert!(e(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).contains("fewer than 3 distinct"));
        assert!(e(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).contains("fewer than 3 distinct"));
        assert!(e(&[0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]).contains("consecutive duplicate"));
        assert!(e(&[0.0, 0.0, 180.0, 0.0, 90.0, 45.0]).contains("antipodal"));
        assert!(e(&[0.0, 0.0, 2.0, 0.0, 1.0, 0.0]).contains("double back"));
        // Bow tie.
        assert!(e(&[0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]).contains("self-intersecting"));
        // Figure eight through a repeated vertex.
        assert!(
            e(&[0.0, 0.0, 1.0, 1.0, 2.0, 0.0, 2.0, 2.0, 1.0, 1.0, 0.0, 2.0])
                .contains("self-intersecting")
        );
        assert!(e(&[0.0, 0.0, 1.0, 0.0, 1.0, 91.0]).contains("vertex 3"));
        assert!(e(&[0.0, 0.0, 1.0, f64::NAN, 1.0, 1.0]).contains("non-finite"));
        // The antipode check is about consecutive vertices only.
        Polygon::new(&[0.0, 0.0, 90.0, 0.0, 180.0, 0.0, 270.0, 10.0]).unwrap();
    }

    #[test]
    fn polygon_winding_and_area() {
        let ccw = poly(&[0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]);
        let cw = poly(&[0.0, 10.0, 10.0, 10.0, 10.0, 0.0, 0.0, 0.0]);
        // Exact area of the lat/lon-cornered great-circle box via its angles.
        assert!((ccw.area_sr() - cw.area_sr()).abs() < 1e-15);
        assert!(ccw.area_sr() * DEG2_PER_SR > 95.0 && ccw.area_sr() * DEG2_PER_SR < 100.0);
        for g in [&ccw, &cw] {
            assert!(g.is_convex());
            assert!(g.contains_radec(5.0, 5.0));
            assert!(!g.contains_radec(185.0, -5.0));
            assert!(!g.contains_radec(15.0, 5.0));
            // On the boundary (equator edge and meridian edge): inclusive.
            assert!(g.contains_radec(5.0, 0.0));
            assert!(g.contains_radec(10.0, 3.0));
            assert!(g.contains_radec(0.0, 0.0));
        }
        // Octant: area 4π/8 sr = 5156.62 deg².
        let oct = poly(&[0.0, 0.0, 90.0, 0.0, 0.0, 90.0]);
        assert!((area_deg2(Shape::Polygon(&oct)) - 41252.96124941928 / 8.0).abs() < 1e-9);
        let oct_cw = poly(&[0.0, 90.0, 90.0, 0.0, 0.0, 0.0]);
        assert!((oct_cw.area_sr() - PI / 2.0).abs() < 1e-12);
        assert!(oct_cw.contains_radec(45.0, 45.0) && !oct_cw.contains_radec(225.0, -45.0));
        // Hemisphere: three vertices on the equator; the left side (north) is kept.
        let hemi = poly(&[0.0, 0.0, 120.0, 0.0, 240.0, 0.0]);
        assert!((hemi.area_sr() - 2.0 * PI).abs() < 1e-12);
        assert!(hemi.contains_radec(33.0, 10.0) && !hemi.contains_radec(33.0, -10.0));
        let hemi_s = poly(&[0.0, 0.0, 240.0, 0.0, 120.0, 0.0]);
        assert!(hemi_s.contains_radec(33.0, -10.0) && !hemi_s.contains_radec(33.0, 10.0));
        // Tiny polygon: relative accuracy of the area.
        let s = 1e-6;
        let tiny = poly(&[
            50.0,
            30.0,
            50.0 + s,
            30.0,
            50.0 + s,
            30.0 + s,
            50.0,
            30.0 + s,
        ]);
        let expect = s * s * (30.0f64 * D2R).cos();
        assert!(
            (tiny.area_sr() * DEG2_PER_SR / expect - 1.0).abs() < 1e-6,
            "{}",
            tiny.area_sr()
        );
    }

    #[test]
    fn polygon_across_ra_zero_and_pole() {
        let g = poly(&[350.0, -5.0, 10.0, -5.0, 10.0, 5.0, 350.0, 5.0]);
        assert!(
            g.contains_radec(0.0, 0.0)
                && g.contains_radec(359.0, 1.0)
                && g.contains_radec(-1.0, 1.0)
        );
        assert!(!g.contains_radec(180.0, 0.0) && !g.contains_radec(20.0, 0.0));
        // Around the north pole, non-convex star (alternating radii).
        let mut c = Vec::new();
        for k in 0..8 {
            let dec = if k % 2 == 0 { 80.0 } else { 85.0 };
            c.extend([k as f64 * 45.0, dec]);
        }
        let star = poly(&c);
        assert!(!star.is_convex());
        assert!(star.contains_radec(123.0, 89.9));
        assert!(star.contains_radec(0.0, 81.0));
        assert!(!star.contains_radec(45.0, 81.0));
        assert!(star.contains_radec(45.0, 86.0));
        assert!(!star.contains_radec(45.0, 84.0));
        assert!(!star.contains_radec(0.0, 79.0));
        assert!(!star.contains_radec(0.0, -89.0));
    }

    #[test]
    fn large_non_hemispherical_polygon() {
        // A "C" band along the equator covering 300° of longitude: it fits in no
        // hemisphere, its area is small, and its crossing test must still work.
        let mut c = Vec::new();
        for k in 0..=6 {
            c.extend([k as f64 * 50.0, -5.0]);
        }
        for k in (0..=6).rev() {
            c.extend([k as f64 * 50.0, 5.0]);
        }
        let band = poly(&c);
        assert!(band.area_sr() < 2.0 * PI);
        for ra in [1.0, 25.0, 100.0, 175.0, 250.0, 299.0] {
            assert!(band.contains_radec(ra, 0.0), "{ra}");
            assert!(!band.contains_radec(ra, 30.0), "{ra}");
            assert!(!band.contains_radec(ra, -30.0), "{ra}");
        }
        assert!(!band.contains_radec(330.0, 0.0));
        assert!(!band.contains_radec(0.0, 90.0));
        // Reversed winding: same region.
        let mut r: Vec<f64> = Vec::new();
        for p in c.chunks(2).rev() {
            r.extend(p);
        }
        let band_r = poly(&r);
        assert!((band.area_sr() - band_r.area_sr()).abs() < 1e-12);
        for ra in [1.0, 100.0, 299.0, 330.0] {
            assert_eq!(band.contains_radec(ra, 0.0), band_r.contains_radec(ra, 0.0));
        }
    }

    #[test]
    fn region_predicates() {
        let c1 = Cap::new(10.0, 10.0, 1.0).unwrap();
        let c2 = Cap::new(10.5, 10.0, 3.0).unwrap();
        let c3 = Cap::new(185.0, -5.0, 5.0).unwrap();
        let (s1, s2, s3) = (Shape::Circle(&c1), Shape::Circle(&c2), Shape::Circle(&c3));
        assert!(contains(s1, s2) && !contains(s2, s1));
        assert!(intersects(s1, s2) && !intersects(s1, s3));
        assert!(contains(s1, s1));
        let big = Cap::new(0.0, 0.0, 170.0).unwrap();
        assert!(contains(s1, Shape::Circle(&big)) && !contains(s3, Shape::Circle(&big)));
        assert!(intersects(s3, Shape::Circle(&big)));
        let g = poly(&[8.0, 8.0, 13.0, 8.0, 13.0, 12.0, 8.0, 12.0]);
        let sg = Shape::Polygon(&g);
        assert!(contains(s1, sg) && !contains(sg, s1));
        assert!(!contains(s2, sg) && intersects(s2, sg));
        assert!(contains(
            sg,
            Shape::Circle(&Cap::new(10.5, 10.0, 5.0).unwrap())
        ));
        assert!(!intersects(s3, sg));
        assert!(contains(sg, Shape::Circle(&big)));
        // Polygon in a > 90° cap whose antipodal hole sits inside / outside the polygon.
        let hole_in = Cap::new(190.5, -10.0, 179.0).unwrap();
        assert!(!contains(sg, Shape::Circle(&hole_in)));
        let hole_out = Cap::new(100.0, 0.0, 100.0).unwrap();
        assert!(contains(sg, Shape::Circle(&hole_out)));
        let inner = poly(&[9.0, 9.0, 11.0, 9.0, 10.0, 11.0]);
        let si = Shape::Polygon(&inner);
        assert!(contains(si, sg) && !contains(sg, si) && intersects(si, sg) && intersects(sg, si));
        assert!(contains(sg, sg));
        let far = poly(&[100.0, 0.0, 101.0, 0.0, 100.0, 1.0]);
        assert!(!intersects(sg, Shape::Polygon(&far)));
        // Crossing polygons: a plus sign.
        let h = poly(&[5.0, 9.0, 15.0, 9.0, 15.0, 11.0, 5.0, 11.0]);
        let v = poly(&[9.0, 5.0, 11.0, 5.0, 11.0, 15.0, 9.0, 15.0]);
        assert!(intersects(Shape::Polygon(&h), Shape::Polygon(&v)));
        assert!(!contains(Shape::Polygon(&h), Shape::Polygon(&v)));
        // Points.
        let p = pt(10.0, 10.0);
        let sp = Shape::Point(&p);
        assert!(contains(sp, s1) && contains(sp, sg) && intersects(sg, sp) && intersects(sp, s1));
        assert!(!contains(s1, sp) && !contains(sg, sp));
        assert!(contains(sp, Shape::Point(&pt(370.0, 10.0))));
        assert!(intersects(sp, sp));
        let z = Cap::new(10.0, 10.0, 0.0).unwrap();
        assert!(contains(Shape::Circle(&z), sp));
        // Touching circles intersect, boundary inclusive.
        let a = Cap::new(0.0, 0.0, 1.0).unwrap();
        let b = Cap::new(2.0, 0.0, 1.0).unwrap();
        assert!(intersects(Shape::Circle(&a), Shape::Circle(&b)));
        let b = Cap::new(2.0 + 1e-9, 0.0, 1.0).unwrap();
        assert!(!intersects(Shape::Circle(&a), Shape::Circle(&b)));
    }

    #[test]
    fn areas_and_centroids() {
        let full_sky = 41252.96124941928;
        let hemi = Cap::new(0.0, 90.0, 90.0).unwrap();
        assert!((area_deg2(Shape::Circle(&hemi)) - full_sky / 2.0).abs() < 1e-9);
        let all = Cap::new(0.0, 90.0, 180.0).unwrap();
        assert!((area_deg2(Shape::Circle(&all)) - full_sky).abs() < 1e-9);
        for r in [1e-6, 1e-3, 0.1, 1.0] {
            let c = Cap::new(0.0, 0.0, r).unwrap();
            let flat = PI * r * r;
            let a = area_deg2(Shape::Circle(&c));
            assert!((a / flat - 1.0).abs() < 1e-4 * r + 1e-12, "{r} {a} {flat}");
        }
        assert_eq!(area_deg2(Shape::Point(&pt(1.0, 2.0))), 0.0);
        let g = poly(&[-10.0, -10.0, 10.0, -10.0, 10.0, 10.0, -10.0, 10.0]);
        let (ra, dec) = centroid(Shape::Polygon(&g)).unwrap();
        assert!(ra.min(360.0 - ra) < 1e-9 && dec.abs() < 1e-9, "{ra} {dec}");
        // A right triangle's centroid is not its vertex mean; small ones match the planar
        // centroid (mean of vertices for a triangle).
        let t = poly(&[0.0, 0.0, 1e-5, 0.0, 0.0, 1e-5]);
        let (ra, dec) = centroid(Shape::Polygon(&t)).unwrap();
        assert!(
            (ra - 1e-5 / 3.0).abs() < 1e-13 && (dec - 1e-5 / 3.0).abs() < 1e-13,
            "{ra} {dec}"
        );
        let t = poly(&[0.0, 0.0, 0.1, 0.0, 0.0, 0.1]);
        let (ra, dec) = centroid(Shape::Polygon(&t)).unwrap();
        assert!(
            (ra - 0.1 / 3.0).abs() < 1e-5 && (dec - 0.1 / 3.0).abs() < 1e-5,
            "{ra} {dec}"
        );
        // An octant's centroid is on its symmetry axis.
        let oct = poly(&[0.0, 0.0, 90.0, 0.0, 0.0, 90.0]);
        let (ra, dec) = centroid(Shape::Polygon(&oct)).unwrap();
        assert!((ra - 45.0).abs() < 1e-9 && (dec - 35.264389682754654).abs() < 1e-9);
        let c = Cap::new(-30.0, 5.0, 3.0).unwrap();
        assert_eq!(centroid(Shape::Circle(&c)).unwrap(), (330.0, 5.0));
    }

    #[test]
    fn boxes() {
        let b = box_coords(0.0, 0.0, 10.0, 4.0).unwrap();
        assert_eq!(b, [355.0, -2.0, 5.0, -2.0, 5.0, 2.0, 355.0, 2.0]);
        let g = poly(&b);
        assert!(
            g.contains_radec(0.0, 0.0)
                && g.contains_radec(359.0, 1.9)
                && !g.contains_radec(6.0, 0.0)
        );
        assert!(box_coords(0.0, 0.0, 180.0, 4.0).is_err());
        assert!(box_coords(0.0, 0.0, 0.0, 4.0).is_err());
        assert!(box_coords(0.0, 88.0, 1.0, 4.0).is_err());
        assert!(box_coords(0.0, 0.0, 1.0, -4.0).is_err());
        assert!(box_coords(0.0, 0.0, f64::NAN, 4.0).is_err());
        let b = box_coords(100.0, -80.0, 170.0, 19.0).unwrap();
        poly(&b);
    }

    #[test]
    fn distance_point_arc() {
        let (a, b) = (V3::from_radec(0.0, 0.0), V3::from_radec(10.0, 0.0));
        let n = robust_cross(a, b).normalized();
        let d = |ra, dec| dist_point_arc(V3::from_radec(ra, dec), a, b, n) * R2D;
        assert!((d(5.0, 3.0) - 3.0).abs() < 1e-12);
        assert!((d(-3.0, 0.0) - 3.0).abs() < 1e-12);
        assert!((d(13.0, 4.0) - distance_deg(13.0, 4.0, 10.0, 0.0)).abs() < 1e-12);
        assert!((d(185.0, 0.0) - 175.0).abs() < 1e-9);
        assert!((d(185.0, 10.0) - distance_deg(185.0, 10.0, 10.0, 0.0)).abs() < 1e-9);
        assert!((d(0.0, 90.0) - 90.0).abs() < 1e-12);
    }
}
