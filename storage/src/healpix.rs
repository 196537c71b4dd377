//! HEALPix helpers on `cdshealpix`: positions to `_healpix_29`, pixels to `_healpix_29` ranges,
//! cones and polygons to range sets.
//!
//! Everything is NESTED. Angles are ICRS degrees at the API; `cdshealpix` works in radians.
//! A `_healpix_29` value is the order-29 NESTED index as a signed 64-bit integer
//! (`12·4^29 < 2^63`, so it is never negative). Cell `(k, n)` covers the half-open range
//! `[n·4^(29−k), (n+1)·4^(29−k))`.

use std::ops::Range;

use cdshealpix::nested;

use crate::error::{Error, Result};

/// The order of the `_healpix_29` column.
pub const ORDER_29: u8 = 29;

/// Number of cells at `order` (`12·4^order`).
pub const fn n_cells(order: u8) -> u64 {
    12u64 << (2 * order as u32)
}

/// Checks a position: finite, `dec_deg` in [-90, 90]. RA may be any finite value (it is taken
/// modulo 360).
pub fn check_position(ra_deg: f64, dec_deg: f64) -> Result<()> {
    if !ra_deg.is_finite() || !dec_deg.is_finite() {
        return Err(Error::Position(format!(
            "coordinates must be finite numbers, got RA={ra_deg}, Dec={dec_deg}"
        )));
    }
    if !(-90.0..=90.0).contains(&dec_deg) {
        return Err(Error::Position(format!(
            "Dec={dec_deg} is outside [-90, 90] degrees"
        )));
    }
    Ok(())
}

/// Returns the `_healpix_29` index of a position, after [`check_position`].
///
/// `ra_deg`, `dec_deg`: ICRS degrees; `dec_deg` in [-90, 90].
pub fn hash29(ra_deg: f64, dec_deg: f64) -> Result<i64> {
    check_position(ra_deg, dec_deg)?;
    Ok(hash29_unchecked(ra_deg, dec_deg))
}

/// Returns the `_healpix_29` index of a position the caller has already checked.
///
/// `dec_deg` must be finite and in [-90, 90]; `ra_deg` finite.
#[inline]
pub fn hash29_unchecked(ra_deg: f64, dec_deg: f64) -> i64 {
    let layer = nested::get(ORDER_29);
    layer.hash(
        ra_deg.rem_euclid(360.0).to_radians(),
        dec_deg
            .to_radians()
            .clamp(-std::f64::consts::FRAC_PI_2, std::f64::consts::FRAC_PI_2),
    ) as i64
}

/// The pixel at `order` that contains the order-29 index `h29`.
#[inline]
pub fn pixel_at(h29: i64, order: u8) -> u64 {
    (h29 as u64) >> (2 * (ORDER_29 - order) as u32)
}

/// The `_healpix_29` range `[start, end)` covered by cell `(order, npix)`.
#[inline]
pub fn cell_range29(order: u8, npix: u64) -> Range<i64> {
    let shift = 2 * (ORDER_29 - order) as u32;
    ((npix << shift) as i64)..(((npix + 1) << shift) as i64)
}

/// A sorted set of disjoint, non-adjacent half-open `_healpix_29` ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<i64>>,
}

impl RangeSet {
    /// Builds a set from arbitrary ranges (sorted and merged here; empty ranges dropped).
    pub fn from_ranges(mut ranges: Vec<Range<i64>>) -> RangeSet {
        ranges.retain(|r| r.start < r.end);
        ranges.sort_by_key(|r| r.start);
        let mut out: Vec<Range<i64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        RangeSet { ranges: out }
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[Range<i64>] {
        &self.ranges
    }

    /// Whether `h29` lies in the set.
    pub fn contains(&self, h29: i64) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= h29);
        self.ranges.get(i).is_some_and(|r| r.start <= h29)
    }

    /// Whether any value of `[start, end)` lies in the set.
    pub fn overlaps(&self, range: &Range<i64>) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= range.start);
        self.ranges.get(i).is_some_and(|r| r.start < range.end)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// The deepest order whose cells are at most about `size_rad / 8` across, clamped to [0, 29]:
/// coverages computed at this order hug a region of that size with a few dozen border cells.
fn coverage_order(size_rad: f64) -> u8 {
    // Mean cell size at order 0 is sqrt(4π/12) = sqrt(π/3) rad, halved at each order.
    let order = (8.0 * (std::f64::consts::PI / 3.0).sqrt() / size_rad.max(1e-12)).log2();
    order.floor().clamp(0.0, ORDER_29 as f64) as u8
}

fn bmoc_to_ranges(bmoc: &nested::bmoc::BMOC) -> RangeSet {
    let shift = 2 * (ORDER_29 - bmoc.get_depth_max()) as u32;
    RangeSet::from_ranges(
        bmoc.to_ranges()
            .iter()
            .map(|r| ((r.start << shift) as i64)..((r.end << shift) as i64))
            .collect(),
    )
}

/// Returns `_healpix_29` ranges covering a cone (approximate: may include values outside the
/// cone, never omits one inside it). Built from each covering cell at its own depth.
///
/// `ra_deg`, `dec_deg`: ICRS degrees, `dec_deg` in [-90, 90]; `radius_deg` in (0, 180].
pub fn cone_ranges(ra_deg: f64, dec_deg: f64, radius_deg: f64) -> Result<RangeSet> {
    check_position(ra_deg, dec_deg)?;
    if !(radius_deg > 0.0 && radius_deg.is_finite()) {
        return Err(Error::Position(format!(
            "cone radius must be a positive number of degrees, got {radius_deg}"
        )));
    }
    if radius_deg >= 180.0 {
        return Ok(RangeSet::from_ranges(
            std::iter::once(0..n_cells(ORDER_29) as i64).collect(),
        ));
    }
    let r = radius_deg.to_radians();
    if radius_deg > 90.0 {
        // cdshealpix's approximate cone coverage misses cells for cones wider than a
        // hemisphere. Such a cone is the sky minus the complementary cone around the antipode,
        // so take the complement of the cells flagged as lying fully inside that smaller cone
        // (shrunk by 1e-9 rad so that rounding cannot make a border cell "full").
        let small = (std::f64::consts::PI - r - 1e-9).max(1e-9);
        let bmoc = nested::cone_coverage_approx(
            coverage_order(small),
            (ra_deg + 180.0).rem_euclid(360.0).to_radians(),
            -dec_deg.to_radians(),
            small,
        );
        let shift = 2 * (ORDER_29 - bmoc.get_depth_max()) as u32;
        let mut out = Vec::new();
        let mut next = 0i64;
        for (range, full) in bmoc.to_flagged_ranges() {
            if full {
                let (s, e) = ((range.start << shift) as i64, (range.end << shift) as i64);
                out.push(next..s);
                next = e;
            }
        }
        out.push(next..n_cells(ORDER_29) as i64);
        return Ok(RangeSet::from_ranges(out));
    }
    let order = coverage_order(r);
    let lat = dec_deg.to_radians();
    let bmoc = nested::cone_coverage_approx(order, ra_deg.rem_euclid(360.0).to_radians(), lat, r);
    let mut set = bmoc_to_ranges(&bmoc);
    if let Some(cap) = polar_cap_cells(order, lat, r) {
        let shift = 2 * (ORDER_29 - order) as u32;
        let mut all = set.ranges().to_vec();
        all.extend(
            cap.into_iter()
                .map(|h| ((h << shift) as i64)..(((h + 1) << shift) as i64)),
        );
        set = RangeSet::from_ranges(all);
    }
    Ok(set)
}

/// The cells (NESTED, at `order`) a cone centred at latitude `lat_rad` with radius `r_rad`
/// may reach across the nearer pole, when it comes within a few cells of it; `None` when it
/// does not.
///
/// `cdshealpix::nested::cone_coverage_approx` takes the 3×3 neighbourhood of the centre's cell
/// when the radius is below the cells' width. At a pole four base cells meet, and a small cone
/// around a point near the pole reaches cells of the opposite base cells that are not
/// neighbours, which that neighbourhood misses (e.g. centre (228.418°, −89.99956°), 2″: a
/// point 1.9999996″ away was outside the coverage). So every cell of the polar rings the cone
/// may reach is added (rings counted in the RING scheme, converted to NESTED).
pub fn polar_cap_cells(order: u8, lat_rad: f64, r_rad: f64) -> Option<Vec<u64>> {
    use std::f64::consts::{FRAC_PI_2, PI};
    let layer = nested::get(order);
    let nside = 1u64 << order;
    let size = (4.0 * PI / layer.n_hash() as f64).sqrt();
    // Farthest reach of the cone from the nearer pole.
    let reach = (FRAC_PI_2 - lat_rad.abs()) + r_rad;
    if reach > r_rad + 4.0 * size {
        return None;
    }
    // Rings 1..=m of the polar cap (ring i holds 4i cells, centres at z = 1 − i²/(3·nside²))
    // hold every point within `reach` of the pole when ring m−1's centres are beyond it.
    let n = nside as f64;
    let colat = |i: u64| {
        (1.0 - (i * i) as f64 / (3.0 * n * n))
            .clamp(-1.0, 1.0)
            .acos()
    };
    let mut m = 1u64;
    while m < nside && colat(m - 1) <= reach {
        m += 1;
    }
    m += 1;
    if m >= nside {
        return Some((0..layer.n_hash()).collect());
    }
    let in_cap = 2 * m * (m + 1);
    let ring = if lat_rad > 0.0 {
        0..in_cap
    } else {
        layer.n_hash() - in_cap..layer.n_hash()
    };
    Some(ring.map(|h| layer.from_ring(h)).collect())
}

/// Returns `_healpix_29` ranges covering a spherical polygon with great-circle edges
/// (approximate: may include values outside it, never omits one inside). Either winding.
///
/// `vertices_deg`: at least 3 (RA, Dec) pairs in ICRS degrees.
pub fn polygon_ranges(vertices_deg: &[(f64, f64)]) -> Result<RangeSet> {
    if vertices_deg.len() < 3 {
        return Err(Error::Position(format!(
            "a polygon needs at least 3 vertices, got {}",
            vertices_deg.len()
        )));
    }
    for &(ra, dec) in vertices_deg {
        check_position(ra, dec)?;
    }
    let rad: Vec<(f64, f64)> = vertices_deg
        .iter()
        .map(|&(ra, dec)| (ra.rem_euclid(360.0).to_radians(), dec.to_radians()))
        .collect();
    // Size: the largest distance from the first vertex.
    let size = rad
        .iter()
        .map(|&(l, b)| angular_distance_rad(rad[0].0, rad[0].1, l, b))
        .fold(0.0, f64::max);
    let bmoc = nested::polygon_coverage(coverage_order(size), &rad, true);
    Ok(bmoc_to_ranges(&bmoc))
}

/// Great-circle distance in radians between two positions given in radians (haversine form,
/// accurate at all separations).
pub fn angular_distance_rad(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let s_dec = ((dec2 - dec1) / 2.0).sin();
    let s_ra = ((ra2 - ra1) / 2.0).sin();
    let h = s_dec * s_dec + dec1.cos() * dec2.cos() * s_ra * s_ra;
    2.0 * h.sqrt().min(1.0).asin()
}

/// Great-circle distance in degrees between two ICRS positions in degrees.
pub fn angular_distance_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    angular_distance_rad(
        ra1.to_radians(),
        dec1.to_radians(),
        ra2.to_radians(),
        dec2.to_radians(),
    )
    .to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hash_matches_known_cells() {
        // The north pole lies in base cell 0..3 boundary region; (0, +90) hashes into cell 3
        // at order 0 in cdshealpix's convention for lon = 0 (checked against cdshealpix::hash).
        let h = hash29(45.0, 89.999).unwrap();
        assert_eq!(pixel_at(h, 0), 0);
        let h = hash29(45.0, -89.999).unwrap();
        assert_eq!(pixel_at(h, 0), 8);
        // Same cell as cdshealpix computes directly at order 10.
        let h = hash29(101.28854, -16.71314).unwrap();
        assert_eq!(
            pixel_at(h, 10),
            nested::hash(10, 101.28854f64.to_radians(), (-16.71314f64).to_radians())
        );
        // RA wraps.
        assert_eq!(hash29(-10.0, 5.0).unwrap(), hash29(350.0, 5.0).unwrap());
    }

    /// Points within the radius of cones near the poles (where cdshealpix's small-cone
    /// coverage misses cells across the pole) are inside the ranges.
    #[test]
    fn polar_cones_cover_every_point_within_the_radius() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // The case found by the crossmatch tests.
        let set = cone_ranges(228.41830348574837, -89.99956478234276, 2.0 / 3600.0).unwrap();
        assert!(set.contains(hash29(179.1241212674492, -89.99926918122898).unwrap()));
        for &r in &[
            0.1 / 3600.0,
            1.0 / 3600.0,
            2.0 / 3600.0,
            1.0 / 60.0,
            0.5,
            3.0,
        ] {
            for n in 0..400 {
                let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
                let dec = sign * (90.0 - rng.random_range(0.0..3.0 * r));
                let ra = rng.random_range(0.0..360.0);
                let set = cone_ranges(ra, dec, r).unwrap();
                let c = unit(ra, dec);
                for _ in 0..50 {
                    // A random point within r of the centre, by rejection from a box.
                    let (pra, pdec) = loop {
                        let pdec: f64 = (dec + rng.random_range(-r..r)).clamp(-90.0, 90.0);
                        let pra = rng.random_range(0.0..360.0);
                        let p = unit(pra, pdec);
                        let d = (p[0] * c[0] + p[1] * c[1] + p[2] * c[2]).clamp(-1.0, 1.0);
                        if d.acos().to_degrees() < r * (1.0 - 1e-9) {
                            break (pra, pdec);
                        }
                    };
                    assert!(
                        set.contains(hash29(pra, pdec).unwrap()),
                        "cone ({ra}, {dec}, {r}) misses ({pra}, {pdec})"
                    );
                }
            }
        }
    }

    fn unit(ra: f64, dec: f64) -> [f64; 3] {
        let (r, d) = (ra.to_radians(), dec.to_radians());
        [d.cos() * r.cos(), d.cos() * r.sin(), d.sin()]
    }

    #[test]
    fn bad_positions_are_errors() {
        assert!(hash29(f64::NAN, 0.0).is_err());
        assert!(hash29(0.0, 90.5).is_err());
        assert!(hash29(f64::INFINITY, 0.0).is_err());
        assert!(cone_ranges(0.0, 0.0, 0.0).is_err());
        assert!(polygon_ranges(&[(0.0, 0.0), (1.0, 0.0)]).is_err());
    }

    #[test]
    fn cell_ranges_nest() {
        let r = cell_range29(5, 192);
        assert_eq!(r.start, 192i64 << 48);
        assert_eq!(pixel_at(r.start, 5), 192);
        assert_eq!(pixel_at(r.end - 1, 5), 192);
        assert_eq!(n_cells(29) as i64, cell_range29(0, 11).end);
    }

    fn brute_cone_check(ra: f64, dec: f64, radius: f64, seed: u64) {
        use rand::{Rng, SeedableRng};
        let set = cone_ranges(ra, dec, radius).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Points inside the cone, sampled near the centre and near the rim.
        for _ in 0..2000 {
            let d = radius * rng.random::<f64>().sqrt();
            let pa = rng.random::<f64>() * std::f64::consts::TAU;
            let (pra, pdec) = offset(ra, dec, d, pa);
            if angular_distance_deg(ra, dec, pra, pdec) <= radius {
                let h = hash29(pra, pdec).unwrap();
                assert!(
                    set.contains(h),
                    "cone ({ra},{dec},{radius}) misses ({pra},{pdec})"
                );
            }
        }
    }

    /// The point at distance `d_deg` and position angle `pa` from (ra, dec).
    fn offset(ra: f64, dec: f64, d_deg: f64, pa: f64) -> (f64, f64) {
        let (ra, dec, d) = (ra.to_radians(), dec.to_radians(), d_deg.to_radians());
        let sin_dec2 = dec.sin() * d.cos() + dec.cos() * d.sin() * pa.cos();
        let dec2 = sin_dec2.clamp(-1.0, 1.0).asin();
        let ra2 = ra + (pa.sin() * d.sin() * dec.cos()).atan2(d.cos() - dec.sin() * sin_dec2);
        (ra2.to_degrees().rem_euclid(360.0), dec2.to_degrees())
    }

    #[test]
    fn cones_at_poles_seam_and_extreme_radii_never_miss() {
        for (i, &(ra, dec, r)) in [
            (0.0, 90.0, 2.0),
            (123.0, -90.0, 0.5),
            (359.9, 0.0, 2.0),
            (0.05, -30.0, 1.0 / 3600.0),
            (200.0, 10.0, 60.0),
            (300.0, -60.0, 95.0),
            (0.0, 90.0, 150.0),
            (10.0, 45.0, 179.0),
        ]
        .iter()
        .enumerate()
        {
            brute_cone_check(ra, dec, r, i as u64);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_cones_never_miss(ra in 0.0f64..360.0, dec in -90.0f64..=90.0,
                                   logr in -4.0f64..2.25, seed in 0u64..1000) {
            brute_cone_check(ra, dec, 10f64.powf(logr).min(179.9), seed);
        }
    }

    #[test]
    fn polygon_covers_its_inside_in_both_windings() {
        let square = [(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)];
        let mut rev = square;
        rev.reverse();
        for poly in [&square[..], &rev[..]] {
            let set = polygon_ranges(poly).unwrap();
            for i in 0..50 {
                for j in 0..50 {
                    let (ra, dec) = (10.1 + i as f64 * 0.196, 10.1 + j as f64 * 0.196);
                    assert!(set.contains(hash29(ra, dec).unwrap()));
                }
            }
            assert!(!set.contains(hash29(200.0, -40.0).unwrap()));
        }
    }

    #[test]
    fn range_set_merges_and_queries() {
        let s = RangeSet::from_ranges(vec![10..20, 0..5, 18..30, 40..40, 5..6]);
        assert_eq!(s.ranges(), &[0..6, 10..30]);
        assert!(s.contains(0) && s.contains(29) && !s.contains(6) && !s.contains(30));
        assert!(s.overlaps(&(6..11)) && !s.overlaps(&(6..10)) && !s.overlaps(&(30..100)));
    }
}
