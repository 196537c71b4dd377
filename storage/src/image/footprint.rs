//! The sky footprint of an image, for ObsCore (`s_region`, `s_ra`, `s_dec`, `s_fov`).

use super::hdu::ImageHdu;
use super::wcs::ImageWcs;
use super::{ImageError, angular_distance_deg, radec_to_vec, vec_to_radec};

/// The outline of an image on the sky.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// Vertices (RA, Dec) in ICRS degrees, counter-clockwise as seen from inside the sphere
    /// (DALI/ADQL: with RA increasing to the left, as on the sky).
    pub polygon: Vec<(f64, f64)>,
    /// The sky position of the image centre, `((N1+1)/2, (N2+1)/2)`.
    pub center: (f64, f64),
    /// The diameter (deg) of the smallest circle about `center` holding every vertex.
    pub fov_deg: f64,
    /// The geometric-mean pixel scale `sqrt(|det CD|)` (deg).
    pub pixel_scale_deg: f64,
}

/// The footprint of an image: the corners of its outer pixel edges (pixel coordinates 0.5
/// and N + 0.5), plus points along the edges where the edge, mapped to the sky, departs from
/// the great-circle arc between its end points by more than a quarter pixel (never for TAN
/// without SIP, whose straight pixel lines are great circles). Errors when a corner is
/// outside the projection's valid region (an all-sky image has no polygon outline).
pub fn footprint(hdu: &ImageHdu, wcs: &ImageWcs) -> Result<Footprint, ImageError> {
    let (a, b) = wcs.celestial_axes();
    if b >= hdu.shape.len() {
        return Err(ImageError::Footprint {
            file: hdu.file().to_path_buf(),
            hdu: hdu.index,
            message: format!(
                "the WCS's celestial axes ({}, {}) are beyond NAXIS = {}",
                a + 1,
                b + 1,
                hdu.shape.len()
            ),
        });
    }
    let (na, nb) = (hdu.shape[a] as f64, hdu.shape[b] as f64);
    let corners = [
        (0.5, 0.5),
        (na + 0.5, 0.5),
        (na + 0.5, nb + 0.5),
        (0.5, nb + 0.5),
    ];
    let sky = |x: f64, y: f64| -> Result<(f64, f64), ImageError> {
        wcs.pixel_to_sky(x, y).ok_or_else(|| ImageError::Footprint {
            file: hdu.file().to_path_buf(),
            hdu: hdu.index,
            message: format!(
                "pixel ({x}, {y}) has no sky position in projection {} (all-sky image?)",
                wcs.projection()
            ),
        })
    };
    let scale = wcs.pixel_scale_deg();
    let tol = 0.25 * scale;
    let mut polygon = Vec::new();
    for i in 0..4 {
        let p0 = corners[i];
        let p1 = corners[(i + 1) % 4];
        let s0 = sky(p0.0, p0.1)?;
        let s1 = sky(p1.0, p1.1)?;
        polygon.push(s0);
        subdivide(&sky, p0, p1, s0, s1, tol, 0, &mut polygon)?;
    }
    let center = sky((na + 1.0) / 2.0, (nb + 1.0) / 2.0)?;
    // Orientation: counter-clockwise seen from inside means the sum of the edge cross
    // products points away from the centre.
    let c = radec_to_vec(center.0, center.1);
    let mut turn = 0.0;
    for i in 0..polygon.len() {
        let u = radec_to_vec(polygon[i].0, polygon[i].1);
        let v = radec_to_vec(
            polygon[(i + 1) % polygon.len()].0,
            polygon[(i + 1) % polygon.len()].1,
        );
        let w = [
            u[1] * v[2] - u[2] * v[1],
            u[2] * v[0] - u[0] * v[2],
            u[0] * v[1] - u[1] * v[0],
        ];
        turn += w[0] * c[0] + w[1] * c[1] + w[2] * c[2];
    }
    if turn > 0.0 {
        polygon.reverse();
    }
    let radius = polygon
        .iter()
        .map(|&(ra, dec)| angular_distance_deg(center, (ra, dec)))
        .fold(0.0, f64::max);
    Ok(Footprint {
        polygon,
        center,
        fov_deg: 2.0 * radius,
        pixel_scale_deg: scale,
    })
}

/// Adds interior points of the pixel edge p0→p1 (excluding both ends) where needed.
#[allow(clippy::too_many_arguments)]
fn subdivide(
    sky: &dyn Fn(f64, f64) -> Result<(f64, f64), ImageError>,
    p0: (f64, f64),
    p1: (f64, f64),
    s0: (f64, f64),
    s1: (f64, f64),
    tol: f64,
    depth: u32,
    out: &mut Vec<(f64, f64)>,
) -> Result<(), ImageError> {
    if depth >= 6 {
        return Ok(());
    }
    let pm = ((p0.0 + p1.0) / 2.0, (p0.1 + p1.1) / 2.0);
    let sm = sky(pm.0, pm.1)?;
    let (u, v) = (radec_to_vec(s0.0, s0.1), radec_to_vec(s1.0, s1.1));
    let mid = vec_to_radec([u[0] + v[0], u[1] + v[1], u[2] + v[2]]);
    if angular_distance_deg(mid, sm) <= tol {
        return Ok(());
    }
    subdivide(sky, p0, pm, s0, sm, tol, depth + 1, out)?;
    out.push(sm);
    subdivide(sky, pm, p1, sm, s1, tol, depth + 1, out)
}
