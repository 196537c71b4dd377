//! Spherical geometry for ADQL 2.1 regions (ICRS, degrees), exact on the unit sphere and
//! vectorised over Arrow, with the DataFusion UDFs the translator calls.
//!
//! # Representation
//!
//! A geometry value is an Arrow `List<Float64>` (item field `item`, nullable); its length
//! tells the kind: `[ra, dec]` is a point, `[ra, dec, radius]` a circle, and
//! `[ra1, dec1, ra2, dec2, …]` (an even number ≥ 6) a polygon. All numbers are degrees.
//! The constructors store RA reduced to [0, 360); everywhere else RA is read modulo 360
//! (a position with RA −10 is the position with RA 350). Internally points are unit
//! 3-vectors (x → (0°, 0°), y → (90°, 0°), z → north pole), so the RA wrap and the poles are
//! not special cases.
//!
//! # Rules
//!
//! * **Validity.** Non-finite numbers, |Dec| > 90 and circle radii outside [0, 180] are
//!   errors. A polygon needs ≥ 3 distinct vertices, no two consecutive vertices equal
//!   (closer than [`region::MIN_SEP_DEG`]) or antipodal (the edge's great circle would be
//!   undefined), no edges doubling back at a vertex, and no two non-adjacent edges that
//!   cross or touch (so only simple polygons are accepted: bow ties, figure-eights and
//!   repeated vertices are rejected; the test is exhaustive, O(n²) per polygon). Edges are
//!   the minor great-circle arcs between consecutive vertices, the last joined to the first.
//! * **Winding.** A polygon may be given in either winding: it denotes the *smaller* of the
//!   two regions its boundary bounds (area ≤ 2π sr). When both halves are equal (an exact
//!   hemisphere) it is the region to the left of the edges as given, i.e. counter-clockwise
//!   seen from outside the sphere (east-then-north in a RA/Dec plot), as in STC.
//!   Internally the vertices are reordered so the interior is always on the left.
//! * **Boundaries** are inclusive, with a tolerance of [`region::TOL_RAD`] = 10⁻¹³ rad
//!   (≈ 2·10⁻⁸ arcsec) so that points on an edge or circle by construction stay inside.
//! * **CONTAINS(a, b)** is "a lies inside b" (ADQL's order); **INTERSECTS(a, b)** "a and b
//!   share a point"; either with a point argument reduces to point-in-region.
//! * **Point in circle** compares haversines, sin²(Δδ/2) + cos δ₁ cos δ₂ sin²(Δα/2) ≤
//!   sin²((r + tol)/2): accurate for radii from 10⁻⁶° to 180°. Every path (fast kernel and
//!   generic CONTAINS) uses the same [`region::Cap::contains_radec`].
//! * **Point in polygon**: for a convex polygon, inside every edge's hemisphere; otherwise
//!   the parity of crossings of an arc to a reference point on the boundary (see
//!   [`region::Polygon::contains_vec`]). Works for polygons that fit in no hemisphere.
//! * **DISTANCE** is the Vincenty (atan2) great-circle formula, accurate at all separations.
//! * **AREA** in square degrees: circle 4π sin²(r/2) sr (= 2π(1 − cos r)), polygon by its
//!   spherical excess (Gauss–Bonnet, or a fan of Oosterom–Strackee triangles for small
//!   polygons where that cancels), point 0.
//! * **CENTROID**: point → itself; circle → centre; polygon → the *area-weighted* centroid
//!   (the direction of ∫x dA over the region), not the mean of its vertices.
//! * **BOX(ra, dec, w, h)** is the polygon with corners (ra ∓ w/2, dec ∓ h/2) — RA offsets
//!   in RA degrees, not arc lengths — joined by great-circle arcs (as DaCHS does). So the
//!   vertical sides lie on meridians while the top and bottom sides bulge slightly
//!   poleward. It needs 0 < w < 180 and |dec| + h/2 < 90 (a box reaching a pole would have
//!   coincident corners).
//! * **HEALPix**: `ivo_healpix_index(order, ra, dec)` is the NESTED index (orders 0..=29)
//!   from `cdshealpix`; `ivo_healpix_center(order, ipix)` the cell centre as a point.
//!
//! # Why hand-written
//!
//! No crate does exact spherical polygons with ADQL's semantics (either winding, smaller
//! region, inclusive boundaries, region–region containment) vectorised over Arrow columns;
//! planar geometry crates get the RA wrap, the poles and great-circle edges wrong, and
//! HEALPix coverage (MOC) is approximate. `cdshealpix` is used only for the HEALPix
//! functions.
//!
//! # Layout
//!
//! [`sphere`] vector maths, [`region`] shapes and predicates, [`kernels`] Arrow loops,
//! and the UDFs ([`udfs`], [`GeomUdf`]). The `validate_*` functions let the translator
//! reject literal shapes at plan time with the same messages the UDFs give at run time
//! (the UDFs prefix them with `geometry: `).

pub mod kernels;
pub mod region;
pub mod sphere;
mod udf;

#[cfg(test)]
mod tests;

pub use region::{
    Cap, Point, Polygon, Region, Shape, area_deg2, box_coords, centroid, contains, intersects,
};
pub use sphere::distance_deg;
pub use udf::{GeomUdf, udfs};

/// Checks a point: finite numbers, |dec| ≤ 90.
pub fn validate_point(ra: f64, dec: f64) -> Result<(), String> {
    region::check_position("POINT", ra, dec)
}

/// Checks a circle: valid centre, finite radius in [0, 180] degrees.
pub fn validate_circle(ra: f64, dec: f64, r: f64) -> Result<(), String> {
    Cap::new(ra, dec, r).map(|_| ())
}

/// Checks a polygon given as `[ra1, dec1, ra2, dec2, …]`: see the rules in the module
/// documentation.
pub fn validate_polygon(coords: &[f64]) -> Result<(), String> {
    Polygon::new(coords).map(|_| ())
}

/// Checks the arguments of BOX(ra, dec, width, height) and the polygon they make.
pub fn validate_box(ra: f64, dec: f64, w: f64, h: f64) -> Result<(), String> {
    validate_polygon(&box_coords(ra, dec, w, h)?)
}

/// HEALPix NESTED index of a position (degrees) at `order` in 0..=29.
pub fn healpix_index(order: i64, ra: f64, dec: f64) -> Result<i64, String> {
    kernels::healpix_index_one(order, ra, dec)
}

/// Centre (RA, Dec in degrees) of the NESTED HEALPix cell `ipix` at `order`.
pub fn healpix_center(order: i64, ipix: i64) -> Result<(f64, f64), String> {
    kernels::healpix_center_one(order, ipix)
}
