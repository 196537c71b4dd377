//! Unit-sphere vector arithmetic and the numerically careful primitives the regions are
//! built on: conversions between (RA, Dec) in degrees and unit 3-vectors, angular
//! separations that stay accurate from 0 to 180°, and the great-circle normal of two points.

use std::f64::consts::PI;

/// Degrees → radians.
pub const D2R: f64 = PI / 180.0;
/// Radians → degrees.
pub const R2D: f64 = 180.0 / PI;
/// Square degrees per steradian, (180/π)².
pub const DEG2_PER_SR: f64 = R2D * R2D;

/// A 3-vector; points on the sky are unit vectors, x towards (0°, 0°), y towards (90°, 0°),
/// z towards the north pole.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct V3 {
    /// x component.
    pub x: f64,
    /// y component.
    pub y: f64,
    /// z component.
    pub z: f64,
}

impl V3 {
    /// A vector from its components.
    #[inline]
    pub const fn new(x: f64, y: f64, z: f64) -> V3 {
        V3 { x, y, z }
    }

    /// Dot product.
    #[inline]
    pub fn dot(self, o: V3) -> f64 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    /// Cross product.
    #[inline]
    pub fn cross(self, o: V3) -> V3 {
        V3 {
            x: self.y * o.z - self.z * o.y,
            y: self.z * o.x - self.x * o.z,
            z: self.x * o.y - self.y * o.x,
        }
    }

    /// Sum.
    #[inline]
    pub fn plus(self, o: V3) -> V3 {
        V3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }

    /// Difference.
    #[inline]
    pub fn minus(self, o: V3) -> V3 {
        V3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }

    /// Scaled by `k`.
    #[inline]
    pub fn scale(self, k: f64) -> V3 {
        V3::new(self.x * k, self.y * k, self.z * k)
    }

    /// The opposite vector (the antipode of a point).
    #[inline]
    pub fn opposite(self) -> V3 {
        V3::new(-self.x, -self.y, -self.z)
    }

    /// Squared Euclidean norm.
    #[inline]
    pub fn norm2(self) -> f64 {
        self.dot(self)
    }

    /// Euclidean norm.
    #[inline]
    pub fn norm(self) -> f64 {
        self.norm2().sqrt()
    }

    /// The unit vector along `self`; the zero vector stays zero.
    #[inline]
    pub fn normalized(self) -> V3 {
        let n = self.norm();
        if n > 0.0 { self.scale(1.0 / n) } else { self }
    }

    /// The unit vector of a position given in degrees. RA may be any finite value (it is
    /// periodic); Dec must be in [-90, 90].
    #[inline]
    pub fn from_radec(ra_deg: f64, dec_deg: f64) -> V3 {
        let (sr, cr) = (ra_deg * D2R).sin_cos();
        let (sd, cd) = (dec_deg * D2R).sin_cos();
        V3::new(cd * cr, cd * sr, sd)
    }

    /// The position of a (not necessarily unit) non-zero vector: RA in [0, 360), Dec in
    /// [-90, 90], both in degrees. At the poles RA is 0.
    pub fn to_radec(self) -> (f64, f64) {
        let rxy = self.x.hypot(self.y);
        let dec = self.z.atan2(rxy) * R2D;
        let ra = if rxy == 0.0 {
            0.0
        } else {
            norm_ra(self.y.atan2(self.x) * R2D)
        };
        (ra, dec)
    }
}

/// RA reduced to [0, 360).
#[inline]
pub fn norm_ra(ra: f64) -> f64 {
    if (0.0..360.0).contains(&ra) {
        return ra;
    }
    let r = ra.rem_euclid(360.0);
    // rem_euclid of a tiny negative number rounds up to 360 itself.
    if r >= 360.0 { 0.0 } else { r }
}

/// |Δα| reduced to [0, 180] degrees, the RA difference the short way round.
#[inline]
pub fn ra_gap(d: f64) -> f64 {
    let a = d.abs();
    if a <= 180.0 {
        a
    } else if a <= 540.0 {
        (360.0 - a).abs()
    } else {
        let m = a % 360.0;
        m.min(360.0 - m)
    }
}

/// The angle between two vectors in radians, atan2(|a×b|, a·b): accurate at every
/// separation, unlike acos (bad near 0 and 180°) or asin (bad near 90°).
#[inline]
pub fn angle(a: V3, b: V3) -> f64 {
    a.cross(b).norm().atan2(a.dot(b))
}

/// The angular distance in degrees between two positions given in degrees, by the
/// Vincenty (atan2) form of the great-circle distance, well-conditioned at every separation.
#[inline]
pub fn distance_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (s2, c2) = (dec2 * D2R).sin_cos();
    distance_deg_to(ra1, dec1, ra2, s2, c2)
}

/// [`distance_deg`] with the second position's sin δ₂ and cos δ₂ precomputed.
#[inline]
pub fn distance_deg_to(ra1: f64, dec1: f64, ra2: f64, s2: f64, c2: f64) -> f64 {
    let (s1, c1) = (dec1 * D2R).sin_cos();
    let (sl, cl) = ((ra2 - ra1) * D2R).sin_cos();
    let x = c2 * sl;
    let y = c1 * s2 - s1 * c2 * cl;
    // |x|, |y| ≤ 1: no overflow, so no need for the slower hypot.
    let num = (x * x + y * y).sqrt();
    let den = s1 * s2 + c1 * c2 * cl;
    num.atan2(den) * R2D
}

/// a × b computed as ½ (a+b) × (b−a): the same vector, but with full relative precision
/// when a and b are very close (the difference is then exact to rounding).
#[inline]
pub fn robust_cross(a: V3, b: V3) -> V3 {
    a.plus(b).cross(b.minus(a)).scale(0.5)
}

/// Two unit vectors orthogonal to `c` and to each other, (east, north) at `c` where that is
/// defined (anything orthogonal at the poles).
pub fn tangent_basis(c: V3) -> (V3, V3) {
    let e = if c.x.abs() < 1e-12 && c.y.abs() < 1e-12 {
        V3::new(0.0, 1.0, 0.0)
    } else {
        V3::new(-c.y, c.x, 0.0).normalized()
    };
    let n = c.cross(e).normalized();
    (e, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radec_round_trip() {
        for &(ra, dec) in &[(0.0, 0.0), (359.999, -45.0), (180.0, 89.0), (12.5, -89.99)] {
            let (r2, d2) = V3::from_radec(ra, dec).to_radec();
            assert!(
                (r2 - ra).abs() < 1e-9 && (d2 - dec).abs() < 1e-9,
                "{ra} {dec} {r2} {d2}"
            );
        }
        let (ra, dec) = V3::from_radec(123.0, 90.0).to_radec();
        assert!((dec - 90.0).abs() < 1e-12 && (0.0..360.0).contains(&ra));
        assert_eq!(norm_ra(-1e-300), 0.0);
        assert_eq!(norm_ra(-90.0), 270.0);
        assert_eq!(norm_ra(720.5), 0.5);
        assert_eq!(ra_gap(350.0), 10.0);
        assert_eq!(ra_gap(-350.0), 10.0);
        assert_eq!(ra_gap(190.0), 170.0);
        assert_eq!(ra_gap(720.0 + 10.0), 10.0);
    }

    #[test]
    fn distances() {
        // Sirius (101.287155, -16.716116) – Canopus (95.987958, -52.695661): 36.2208°.
        let d = distance_deg(101.287155, -16.716116, 95.987958, -52.695661);
        assert!((d - 36.220786647).abs() < 1e-8, "{d}");
        assert!((distance_deg(0.0, 0.0, 180.0, 0.0) - 180.0).abs() < 1e-12);
        assert!((distance_deg(10.0, 90.0, 250.0, -90.0) - 180.0).abs() < 1e-12);
        assert!((distance_deg(0.0, 89.0, 180.0, 89.0) - 2.0).abs() < 1e-12);
        assert!((distance_deg(359.5, 0.0, 0.5, 0.0) - 1.0).abs() < 1e-12);
        // Tiny separations keep their relative precision.
        let d = distance_deg(10.0, 20.0, 10.0, 20.0 + 1e-9);
        assert!((d / 1e-9 - 1.0).abs() < 1e-5, "{d}");
        let a = V3::from_radec(10.0, 20.0);
        let b = V3::from_radec(10.0, 20.0 + 1e-9);
        assert!((angle(a, b) * R2D / 1e-9 - 1.0).abs() < 1e-5);
        assert!((angle(a, a.opposite()) - PI).abs() < 1e-15);
    }

    #[test]
    fn cross_forms_agree() {
        let a = V3::from_radec(10.0, 20.0);
        let b = V3::from_radec(11.0, 21.0);
        let (c1, c2) = (a.cross(b), robust_cross(a, b));
        assert!(c1.minus(c2).norm() < 1e-16);
        let (e, n) = tangent_basis(a);
        assert!(e.dot(a).abs() < 1e-15 && n.dot(a).abs() < 1e-15 && e.dot(n).abs() < 1e-15);
        assert!(n.z > 0.0 && e.y > 0.0);
        let (e, n) = tangent_basis(V3::new(0.0, 0.0, 1.0));
        assert!(e.dot(n).abs() < 1e-15 && (e.norm() - 1.0).abs() < 1e-15);
    }
}
