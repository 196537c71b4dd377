//! SODA cutouts: which pixels a region selects, and writing them as a new FITS file.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use super::hdu::ImageHdu;
use super::header::{BLOCK_LEN, CARD_LEN, Card, Header, Value, format_real, value_card};
use super::wcs::ImageWcs;
use super::{ImageError, angular_distance_deg, radec_to_vec, vec_to_radec};

/// A SODA spatial region (ICRS degrees).
#[derive(Debug, Clone, PartialEq)]
pub enum CutoutRegion {
    /// `CIRCLE ra dec radius`.
    Circle {
        /// Centre RA.
        ra: f64,
        /// Centre Dec.
        dec: f64,
        /// Radius.
        radius: f64,
    },
    /// `POLYGON ra1 dec1 ra2 dec2 …`: edges are great-circle arcs; either winding.
    Polygon(Vec<(f64, f64)>),
    /// `POS=RANGE ra1 ra2 dec1 dec2`: RA from `ra.0` eastwards to `ra.1` (wrapping through
    /// 0 when `ra.0 > ra.1`; infinite bounds mean the whole circle), Dec between the two.
    Range {
        /// RA bounds.
        ra: (f64, f64),
        /// Dec bounds.
        dec: (f64, f64),
    },
}

/// What to cut: one HDU, a pixel range per axis, and the header to write.
#[derive(Debug, Clone)]
pub struct CutoutPlan {
    /// HDU number in the source file.
    pub hdu: usize,
    /// Per axis (FITS order), the first and last pixel kept, 1-based, inclusive.
    pub ranges: Vec<(usize, usize)>,
    /// The header of the cutout (a primary HDU, `END` not included).
    pub header: Vec<Card>,
}

impl CutoutPlan {
    /// The shape of the cutout (`NAXIS1, NAXIS2, …`).
    pub fn shape(&self) -> Vec<usize> {
        self.ranges.iter().map(|&(a, b)| b + 1 - a).collect()
    }

    /// The size of the file [`write_cutout`] writes, in bytes.
    pub fn file_len(&self, bytes_per_pixel: usize) -> u64 {
        let header = (self.header.len() as u64 + 1) * CARD_LEN as u64;
        let data = self
            .shape()
            .iter()
            .fold(bytes_per_pixel as u64, |acc, &n| acc * n as u64);
        header.div_ceil(BLOCK_LEN as u64) * BLOCK_LEN as u64
            + data.div_ceil(BLOCK_LEN as u64) * BLOCK_LEN as u64
    }
}

fn request(hdu: &ImageHdu, message: impl Into<String>) -> ImageError {
    ImageError::Request {
        file: hdu.file().to_path_buf(),
        hdu: hdu.index,
        message: message.into(),
    }
}

/// Plans a cutout. `Ok(None)` when the region (or the band) does not overlap the image.
///
/// * **Circle**: the bounding box astropy's `Cutout2D(data, SkyCoord(ra, dec),
///   size=2·radius, wcs, mode='trim')` extracts — see the module documentation for the rule.
///   A centre with no pixel position (e.g. on the far side of a TAN image) is no overlap.
/// * **Polygon, Range**: the bounding box of the pixels (i − 0.5 ≤ p < i + 0.5) holding a
///   point of the region: the region's edges sampled at half a pixel near the image, and the
///   image's border pixels whose centres lie inside the region; clipped to the image.
/// * **band_m** `(lo, hi)` in metres: the spectral planes whose span overlaps it
///   ([`super::SpectralAxis::planes_in_band`]); an error if the image has no spectral axis.
///
/// All other axes are kept whole.
pub fn plan_cutout(
    hdu: &ImageHdu,
    wcs: &ImageWcs,
    region: &CutoutRegion,
    band_m: Option<(f64, f64)>,
) -> Result<Option<CutoutPlan>, ImageError> {
    let (a, b) = wcs.celestial_axes();
    if a >= hdu.shape.len() || b >= hdu.shape.len() {
        return Err(request(hdu, "the celestial axes are beyond NAXIS"));
    }
    let (na, nb) = (hdu.shape[a], hdu.shape[b]);
    let spatial = match region {
        CutoutRegion::Circle { ra, dec, radius } => {
            check_point(hdu, *ra, *dec)?;
            if !(radius.is_finite() && *radius > 0.0 && *radius <= 180.0) {
                return Err(request(
                    hdu,
                    format!("circle radius {radius} must be in (0, 180] degrees"),
                ));
            }
            circle_box(wcs, *ra, *dec, *radius, na, nb)
        }
        CutoutRegion::Polygon(vertices) => {
            if vertices.len() < 3 {
                return Err(request(hdu, "a polygon needs at least 3 vertices"));
            }
            for &(ra, dec) in vertices {
                check_point(hdu, ra, dec)?;
            }
            let poly = SphPolygon::new(vertices);
            let n = vertices.len();
            let edges: Vec<Edge> = (0..n)
                .map(|i| {
                    let (u, v) = (
                        radec_to_vec(vertices[i].0, vertices[i].1),
                        radec_to_vec(vertices[(i + 1) % n].0, vertices[(i + 1) % n].1),
                    );
                    Edge::Arc(u, v)
                })
                .collect();
            region_box(wcs, na, nb, &edges, &|ra, dec| poly.contains(ra, dec))
        }
        CutoutRegion::Range { ra, dec } => {
            let (d0, d1) = (clamp_dec(dec.0), clamp_dec(dec.1));
            if d0.is_nan() || d1.is_nan() || ra.0.is_nan() || ra.1.is_nan() {
                return Err(request(hdu, "RANGE bounds must be numbers"));
            }
            let (d0, d1) = (d0.min(d1), d0.max(d1));
            let full = !(ra.0.is_finite() && ra.1.is_finite()) || (ra.1 - ra.0) >= 360.0;
            let (r0, r1) = if full {
                (0.0, 360.0)
            } else {
                (ra.0.rem_euclid(360.0), ra.1.rem_euclid(360.0))
            };
            let width = if full {
                360.0
            } else if r1 >= r0 {
                r1 - r0
            } else {
                r1 + 360.0 - r0
            };
            let inside = move |r: f64, d: f64| {
                d >= d0 && d <= d1 && (full || (r - r0).rem_euclid(360.0) <= width)
            };
            let edges = vec![
                Edge::Parallel {
                    dec: d0,
                    ra0: r0,
                    width,
                },
                Edge::Parallel {
                    dec: d1,
                    ra0: r0,
                    width,
                },
                Edge::Meridian {
                    ra: r0,
                    dec0: d0,
                    dec1: d1,
                },
                Edge::Meridian {
                    ra: r0 + width,
                    dec0: d0,
                    dec1: d1,
                },
            ];
            region_box(wcs, na, nb, &edges, &inside)
        }
    };
    let Some(((a0, a1), (b0, b1))) = spatial else {
        return Ok(None);
    };
    let mut ranges: Vec<(usize, usize)> = hdu.shape.iter().map(|&n| (1, n)).collect();
    ranges[a] = (a0, a1);
    ranges[b] = (b0, b1);
    if let Some((lo, hi)) = band_m {
        if lo.is_nan() || hi.is_nan() {
            return Err(request(hdu, "BAND bounds must be numbers (±∞ allowed)"));
        }
        let spec = wcs
            .spectral()
            .ok_or_else(|| request(hdu, "BAND given but the image has no linear spectral axis"))?;
        let s = spec.axis - 1;
        if s >= hdu.shape.len() {
            // A degenerate spectral axis beyond NAXIS: the whole image is one plane.
            if spec.planes_in_band(lo, hi).is_none() {
                return Ok(None);
            }
        } else {
            match spec.planes_in_band(lo, hi) {
                Some(r) => ranges[s] = r,
                None => return Ok(None),
            }
        }
    }
    let header = cutout_header(&hdu.header, &ranges)?;
    Ok(Some(CutoutPlan {
        hdu: hdu.index,
        ranges,
        header,
    }))
}

fn clamp_dec(d: f64) -> f64 {
    if d.is_nan() { d } else { d.clamp(-90.0, 90.0) }
}

fn check_point(hdu: &ImageHdu, ra: f64, dec: f64) -> Result<(), ImageError> {
    if !(ra.is_finite() && dec.is_finite() && dec.abs() <= 90.0) {
        return Err(request(hdu, format!("invalid position ({ra}, {dec})")));
    }
    Ok(())
}

type Box2 = ((usize, usize), (usize, usize));

/// astropy `Cutout2D` (mode='trim') with an angular size of 2·radius centred on (ra, dec).
fn circle_box(
    wcs: &ImageWcs,
    ra: f64,
    dec: f64,
    radius: f64,
    na: usize,
    nb: usize,
) -> Option<Box2> {
    let (px, py) = wcs.sky_to_pixel(ra, dec)?;
    let (sa, sb) = wcs.pixel_scales();
    let size = 2.0 * radius;
    // Cutout2D builds shape = (ny, nx) from size = (ny, nx) but divides by
    // proj_plane_pixel_scales in (x, y) order: ny uses the x scale, nx the y scale.
    let nb_cut = ((size / sa).round_ties_even() as i64).max(1);
    let na_cut = ((size / sb).round_ties_even() as i64).max(1);
    let axis = |pos0: f64, n: i64, len: usize| -> Option<(usize, usize)> {
        let lo = (pos0 - n as f64 / 2.0).ceil();
        if !lo.is_finite() {
            return None;
        }
        let lo = lo as i64;
        let hi = lo + n; // exclusive, 0-based
        if hi <= 0 || lo >= len as i64 {
            return None;
        }
        let start = lo.max(0);
        let stop = hi.min(len as i64);
        Some((start as usize + 1, stop as usize))
    };
    let ra_ = axis(px - 1.0, na_cut, na)?;
    let rb_ = axis(py - 1.0, nb_cut, nb)?;
    Some((ra_, rb_))
}

/// An edge of a region, parametrised over t ∈ [0, 1].
enum Edge {
    /// Minor great-circle arc between two unit vectors.
    Arc([f64; 3], [f64; 3]),
    /// Constant Dec from ra0 eastwards over `width` degrees.
    Parallel { dec: f64, ra0: f64, width: f64 },
    /// Constant RA from dec0 to dec1.
    Meridian { ra: f64, dec0: f64, dec1: f64 },
}

impl Edge {
    fn at(&self, t: f64) -> (f64, f64) {
        match *self {
            Edge::Arc(u, v) => {
                let omega = angle_between(u, v);
                if omega < 1e-15 {
                    return vec_to_radec(u);
                }
                let s = omega.sin();
                let (ku, kv) = (((1.0 - t) * omega).sin() / s, (t * omega).sin() / s);
                vec_to_radec([
                    ku * u[0] + kv * v[0],
                    ku * u[1] + kv * v[1],
                    ku * u[2] + kv * v[2],
                ])
            }
            Edge::Parallel { dec, ra0, width } => ((ra0 + t * width).rem_euclid(360.0), dec),
            Edge::Meridian { ra, dec0, dec1 } => (ra.rem_euclid(360.0), dec0 + t * (dec1 - dec0)),
        }
    }

    /// Length in degrees.
    fn len_deg(&self) -> f64 {
        match *self {
            Edge::Arc(u, v) => angle_between(u, v).to_degrees(),
            Edge::Parallel { dec, width, .. } => width * dec.to_radians().cos().abs(),
            Edge::Meridian { dec0, dec1, .. } => (dec1 - dec0).abs(),
        }
    }
}

fn angle_between(u: [f64; 3], v: [f64; 3]) -> f64 {
    let c = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    let s = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
    let d = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
    s.atan2(d)
}

/// A spherical polygon for point-in-polygon tests (winding number; either orientation).
struct SphPolygon {
    v: Vec<[f64; 3]>,
}

impl SphPolygon {
    fn new(vertices: &[(f64, f64)]) -> SphPolygon {
        SphPolygon {
            v: vertices.iter().map(|&(r, d)| radec_to_vec(r, d)).collect(),
        }
    }

    fn contains(&self, ra: f64, dec: f64) -> bool {
        let p = radec_to_vec(ra, dec);
        let n = self.v.len();
        let mut total = 0.0;
        for i in 0..n {
            let (u, v) = (self.v[i], self.v[(i + 1) % n]);
            let c = [
                u[1] * v[2] - u[2] * v[1],
                u[2] * v[0] - u[0] * v[2],
                u[0] * v[1] - u[1] * v[0],
            ];
            let y = p[0] * c[0] + p[1] * c[1] + p[2] * c[2];
            let pu = p[0] * u[0] + p[1] * u[1] + p[2] * u[2];
            let pv = p[0] * v[0] + p[1] * v[1] + p[2] * v[2];
            let uv = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
            total += y.atan2(uv - pu * pv);
        }
        total.abs() > std::f64::consts::PI
    }
}

/// Bounding box of the pixels holding a point of the region, clipped to the image.
fn region_box(
    wcs: &ImageWcs,
    na: usize,
    nb: usize,
    edges: &[Edge],
    inside: &dyn Fn(f64, f64) -> bool,
) -> Option<Box2> {
    let mut bx: Option<((i64, i64), (i64, i64))> = None;
    let mut add = |ia: i64, ib: i64| {
        bx = Some(match bx {
            None => ((ia, ia), (ib, ib)),
            Some(((a0, a1), (b0, b1))) => ((a0.min(ia), a1.max(ia)), (b0.min(ib), b1.max(ib))),
        });
    };
    let (fa, fb) = (na as f64, nb as f64);
    // The image: its centre and the radius of a circle around it holding all of it.
    let centre = wcs.pixel_to_sky((fa + 1.0) / 2.0, (fb + 1.0) / 2.0);
    let radius = match centre {
        Some(c) => {
            let corners = [
                (0.5, 0.5),
                (fa + 0.5, 0.5),
                (fa + 0.5, fb + 0.5),
                (0.5, fb + 0.5),
            ];
            let mut r: f64 = 0.0;
            let mut all = true;
            for (x, y) in corners {
                match wcs.pixel_to_sky(x, y) {
                    Some(s) => r = r.max(angular_distance_deg(c, s)),
                    None => all = false,
                }
            }
            if all {
                r * 1.05 + 4.0 * wcs.pixel_scale_deg()
            } else {
                180.0
            }
        }
        None => 180.0,
    };
    let step = (wcs.pixel_scale_deg() * 0.5).max(1e-12);
    let mut visit = |ra: f64, dec: f64| {
        if let Some((x, y)) = wcs.sky_to_pixel(ra, dec)
            && x >= 0.5
            && x < fa + 0.5
            && y >= 0.5
            && y < fb + 0.5
        {
            add((x + 0.5).floor() as i64, (y + 0.5).floor() as i64);
        }
    };
    const COARSE: usize = 1024;
    for e in edges {
        let len = e.len_deg();
        let near = |p: (f64, f64)| match centre {
            Some(c) => angular_distance_deg(c, p) <= radius + len / COARSE as f64,
            None => true,
        };
        let mut prev = e.at(0.0);
        let mut prev_near = near(prev);
        for i in 1..=COARSE {
            let t1 = i as f64 / COARSE as f64;
            let cur = e.at(t1);
            let cur_near = near(cur);
            if prev_near || cur_near {
                // At most 2048 points per coarse step: bounded work whatever the request.
                let n = ((len / COARSE as f64) / step).ceil().clamp(1.0, 2048.0) as usize;
                let t0 = (i - 1) as f64 / COARSE as f64;
                for j in 0..n {
                    let p = e.at(t0 + (t1 - t0) * j as f64 / n as f64);
                    visit(p.0, p.1);
                }
            }
            prev = cur;
            prev_near = cur_near;
        }
        visit(prev.0, prev.1);
    }
    // Border pixels of the image inside the region.
    let border = |n: usize| -> Vec<i64> {
        let stride = (n / 8192).max(1);
        let mut v: Vec<i64> = (1..=n as i64).step_by(stride).collect();
        if v.last() != Some(&(n as i64)) {
            v.push(n as i64);
        }
        v
    };
    let (ba, bb) = (border(na), border(nb));
    let mut check = |ia: i64, ib: i64| {
        if let Some((ra, dec)) = wcs.pixel_to_sky(ia as f64, ib as f64)
            && inside(ra, dec)
        {
            add(ia, ib);
        }
    };
    for &ia in &ba {
        check(ia, 1);
        check(ia, nb as i64);
    }
    for &ib in &bb {
        check(1, ib);
        check(na as i64, ib);
    }
    let ((a0, a1), (b0, b1)) = bx?;
    let clip = |v: i64, n: usize| v.clamp(1, n as i64) as usize;
    Some(((clip(a0, na), clip(a1, na)), (clip(b0, nb), clip(b1, nb))))
}

/// Parses `CRPIXn` / `CRPIXna` (alternate WCS letter) and `LTVn` keywords: the axis number.
fn shifted_axis(keyword: &str) -> Option<usize> {
    let rest = keyword
        .strip_prefix("CRPIX")
        .or_else(|| keyword.strip_prefix("LTV"))?;
    let digits = rest.trim_end_matches(|c: char| c.is_ascii_uppercase());
    if rest.len() - digits.len() > 1 || keyword.starts_with("LTV") && rest.len() != digits.len() {
        return None;
    }
    digits.parse::<usize>().ok().filter(|&n| n >= 1)
}

/// The header of a cutout: the source header as a primary HDU, `NAXISn` set to the new
/// lengths, `CRPIXn[a]` (and IRAF `LTVn`) shifted by the offset of the first kept pixel,
/// `CHECKSUM`/`DATASUM` dropped (they no longer hold); for an extension, `XTENSION` becomes
/// `SIMPLE = T` and `PCOUNT`, `GCOUNT`, `INHERIT` are dropped. Every other card is copied
/// byte for byte.
fn cutout_header(h: &Header, ranges: &[(usize, usize)]) -> Result<Vec<Card>, ImageError> {
    let from_extension = h.hdu() > 0;
    let mut out = Vec::with_capacity(h.len() + 1);
    let mut crpix_seen = vec![false; ranges.len()];
    for (i, card) in h.cards().iter().enumerate() {
        let kw = card.keyword();
        if i == 0 && kw == "XTENSION" {
            out.push(value_card("SIMPLE", "T", Some("conforms to FITS standard")));
            continue;
        }
        if matches!(kw, "CHECKSUM" | "DATASUM") {
            continue;
        }
        if from_extension && matches!(kw, "PCOUNT" | "GCOUNT" | "INHERIT") {
            continue;
        }
        if let Some(n) = kw
            .strip_prefix("NAXIS")
            .and_then(|r| r.parse::<usize>().ok())
            && (1..=ranges.len()).contains(&n)
        {
            let (a, b) = ranges[n - 1];
            out.push(value_card(
                kw,
                &(b + 1 - a).to_string(),
                card.comment().as_deref(),
            ));
            continue;
        }
        if let Some(n) = shifted_axis(kw)
            && (1..=ranges.len()).contains(&n)
            && ranges[n - 1].0 > 1
        {
            let off = (ranges[n - 1].0 - 1) as f64;
            let v = match card.value() {
                Value::Float(f) => *f,
                Value::Int(i) => *i as f64,
                Value::Malformed(m) => return Err(h.card_error(i, m.clone())),
                other => return Err(h.card_error(i, format!("expected a number, found {other:?}"))),
            };
            if kw.starts_with("CRPIX") && kw.len() == 5 + n.to_string().len() {
                crpix_seen[n - 1] = true;
            }
            out.push(value_card(
                kw,
                &format_real(v - off),
                card.comment().as_deref(),
            ));
            continue;
        }
        out.push(card.clone());
    }
    // An axis cut with an offset but no CRPIXn (default 0) needs one to stay right.
    for (n, seen) in crpix_seen.iter().enumerate() {
        let (a, _) = ranges[n];
        if !seen
            && a > 1
            && h.contains(&format!("CTYPE{}", n + 1))
            && !h.contains(&format!("CRPIX{}", n + 1))
        {
            out.push(value_card(
                &format!("CRPIX{}", n + 1),
                &format_real(-((a - 1) as f64)),
                Some("reference pixel (cutout)"),
            ));
        }
    }
    Ok(out)
}

/// Window of the file mapped at a time: bounds the resident memory of a cutout.
const WINDOW: u64 = 8 * 1024 * 1024;

/// Writes a cutout as a FITS file (one primary HDU) and returns the number of bytes written.
/// The pixels are copied as stored (no scaling), one run of consecutive pixels along axis 1
/// at a time, from windows of at most 8 MiB of the memory-mapped file: memory does not grow
/// with the image, and only the pages holding kept pixels are touched.
pub fn write_cutout(
    path: &Path,
    hdu: &ImageHdu,
    plan: &CutoutPlan,
    out: &mut dyn Write,
) -> Result<u64, ImageError> {
    if plan.hdu != hdu.index {
        return Err(request(
            hdu,
            format!("the plan is for HDU {}, not this one", plan.hdu),
        ));
    }
    if plan.ranges.len() != hdu.shape.len()
        || plan
            .ranges
            .iter()
            .zip(&hdu.shape)
            .any(|(&(a, b), &n)| a < 1 || a > b || b > n)
    {
        return Err(request(
            hdu,
            format!(
                "pixel ranges {:?} do not fit the shape {:?}",
                plan.ranges, hdu.shape
            ),
        ));
    }
    let io = |e: std::io::Error| ImageError::Io {
        file: path.to_path_buf(),
        source: e,
    };
    let wr = |e: std::io::Error| ImageError::Write {
        file: path.to_path_buf(),
        hdu: hdu.index,
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    if hdu.data_offset + hdu.data_len > file_len {
        return Err(ImageError::Truncated {
            file: path.to_path_buf(),
            hdu: hdu.index,
            offset: hdu.data_offset,
            declared: hdu.data_len,
            available: file_len.saturating_sub(hdu.data_offset),
        });
    }

    let mut written = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    // Header.
    for card in &plan.header {
        buf.extend_from_slice(card.raw());
    }
    let mut end = [b' '; CARD_LEN];
    end[..3].copy_from_slice(b"END");
    buf.extend_from_slice(&end);
    let pad = (BLOCK_LEN - buf.len() % BLOCK_LEN) % BLOCK_LEN;
    buf.resize(buf.len() + pad, b' ');
    out.write_all(&buf).map_err(wr)?;
    written += buf.len() as u64;
    buf.clear();

    // Data: iterate over every combination of the indices of axes 2..n (axis 2 fastest).
    let bpp = hdu.bytes_per_pixel() as u64;
    let mut strides = Vec::with_capacity(hdu.shape.len());
    let mut s = 1u64;
    for &n in &hdu.shape {
        strides.push(s);
        s *= n as u64;
    }
    let run = (plan.ranges[0].1 + 1 - plan.ranges[0].0) as u64 * bpp;
    let mut idx: Vec<usize> = plan.ranges.iter().map(|r| r.0).collect();
    let mut window: Option<(u64, u64, Mmap)> = None;
    let mut data_written = 0u64;
    loop {
        let pixel: u64 = idx
            .iter()
            .zip(&strides)
            .map(|(&i, &st)| (i as u64 - 1) * st)
            .sum();
        let mut off = hdu.data_offset + pixel * bpp;
        let mut left = run;
        while left > 0 {
            let covered = matches!(&window, Some((ws, we, _)) if off >= *ws && off < *we);
            if !covered {
                drop(window.take());
                let len = WINDOW.min(file_len - off);
                // SAFETY: the map is read-only and private to this call; a file truncated
                // by another process while mapped would raise SIGBUS, as with any reader of
                // memory-mapped archives (files under the archive root are never rewritten
                // in place).
                let map = unsafe { MmapOptions::new().offset(off).len(len as usize).map(&file) }
                    .map_err(io)?;
                window = Some((off, off + len, map));
            }
            let Some((ws, we, map)) = &window else { break };
            let take = left.min(we - off);
            let start = (off - ws) as usize;
            buf.extend_from_slice(&map[start..start + take as usize]);
            if buf.len() >= 256 * 1024 {
                out.write_all(&buf).map_err(wr)?;
                written += buf.len() as u64;
                buf.clear();
            }
            off += take;
            left -= take;
            data_written += take;
        }
        // Next index combination.
        let mut axis = 1;
        loop {
            if axis >= idx.len() {
                break;
            }
            if idx[axis] < plan.ranges[axis].1 {
                idx[axis] += 1;
                break;
            }
            idx[axis] = plan.ranges[axis].0;
            axis += 1;
        }
        if axis >= idx.len() {
            break;
        }
    }
    drop(window);
    let pad = ((BLOCK_LEN as u64 - data_written % BLOCK_LEN as u64) % BLOCK_LEN as u64) as usize;
    buf.resize(buf.len() + pad, 0);
    out.write_all(&buf).map_err(wr)?;
    written += buf.len() as u64;
    out.flush().map_err(wr)?;
    Ok(written)
}
