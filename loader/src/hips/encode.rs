//! Tile encodings: FITS (BITPIX −32, NaN blank), PNG (grey + alpha, blank transparent) and
//! JPEG (grey, blank black), the display stretch, and the 2×2 mean that makes a parent tile.
//!
//! FITS is written by hand: a tile is 26 header cards and a big-endian float array, and
//! the workspace has no FITS writer (the pure-Rust FITS crates read only or pull in
//! cfitsio). PNG and JPEG go through the `png` and `jpeg-encoder` crates.

use super::geom::{TILE_WIDTH, TileGeom};

/// FITS block length.
const BLOCK: usize = 2880;

/// The transfer function from the pixel cut to grey levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stretch {
    /// `t`.
    #[default]
    Linear,
    /// `sqrt(t)`.
    Sqrt,
    /// `log10(1000·t + 1) / log10(1001)` (DS9's log with exponent 1000).
    Log,
    /// `asinh(10·t) / asinh(10)`.
    Asinh,
}

impl Stretch {
    /// Parses `linear`, `sqrt`, `log` or `asinh`.
    pub fn parse(s: &str) -> Option<Stretch> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linear" => Some(Stretch::Linear),
            "sqrt" => Some(Stretch::Sqrt),
            "log" => Some(Stretch::Log),
            "asinh" => Some(Stretch::Asinh),
            _ => None,
        }
    }

    /// The name, as `parse` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Stretch::Linear => "linear",
            Stretch::Sqrt => "sqrt",
            Stretch::Log => "log",
            Stretch::Asinh => "asinh",
        }
    }
}

/// Maps physical values to grey levels 1…255 (0 is kept for blank pixels).
#[derive(Debug, Clone)]
pub(crate) struct GreyMap {
    lo: f64,
    scale: f64,
    /// Grey level of `t = k/4095`, k = 0…4095: the stretch tabulated once.
    table: Vec<u8>,
}

const TABLE_STEPS: usize = 4096;

impl GreyMap {
    /// The map of the cut `[lo, hi]` through `stretch`.
    pub(crate) fn new(lo: f64, hi: f64, stretch: Stretch) -> GreyMap {
        let span = if hi > lo { hi - lo } else { 1.0 };
        let table = (0..TABLE_STEPS)
            .map(|k| {
                let t = k as f64 / (TABLE_STEPS - 1) as f64;
                let f = match stretch {
                    Stretch::Linear => t,
                    Stretch::Sqrt => t.sqrt(),
                    Stretch::Log => (1000.0 * t + 1.0).log10() / 1001f64.log10(),
                    Stretch::Asinh => (10.0 * t).asinh() / 10f64.asinh(),
                };
                1 + (f.clamp(0.0, 1.0) * 254.0).round() as u8
            })
            .collect();
        GreyMap {
            lo,
            scale: (TABLE_STEPS - 1) as f64 / span,
            table,
        }
    }

    /// The grey level of `v`: 0 for NaN, else 1…255.
    #[inline]
    pub(crate) fn grey(&self, v: f32) -> u8 {
        if v.is_nan() {
            return 0;
        }
        let k = ((f64::from(v) - self.lo) * self.scale)
            .round()
            .clamp(0.0, (TABLE_STEPS - 1) as f64) as usize;
        self.table.get(k).copied().unwrap_or(255)
    }
}

/// One FITS header card from its text (cut or padded to 80 bytes).
fn card(out: &mut Vec<u8>, text: &str) {
    let mut raw = [b' '; 80];
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| (32..127).contains(b))
        .take(80)
        .collect();
    raw[..bytes.len()].copy_from_slice(&bytes);
    out.extend_from_slice(&raw);
}

/// A value card with the value right-justified to column 30.
fn value_card(out: &mut Vec<u8>, key: &str, value: &str) {
    card(out, &format!("{key:<8}= {value:>20}"));
}

/// A string value card.
fn string_card(out: &mut Vec<u8>, key: &str, value: &str) {
    let v = value.replace('\'', "''");
    card(out, &format!("{key:<8}= '{v:<8}'"));
}

/// A real in FITS form (shortest round trip, `E` exponent, always a decimal point).
fn real(v: f64) -> String {
    let s = format!("{v:?}");
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => format!("{m}E{e}"),
        Some((m, e)) => format!("{m}.0E{e}"),
        None if s.contains('.') => s,
        None => format!("{s}.0"),
    }
}

fn end_header(out: &mut Vec<u8>) {
    card(out, "END");
    let pad = out.len().div_ceil(BLOCK) * BLOCK;
    out.resize(pad, b' ');
}

/// Appends the rows of a `width × height` image held top row first as FITS data (rows
/// bottom-up, big-endian float32), padded to a block.
fn push_data(out: &mut Vec<u8>, pixels: &[f32], width: usize) {
    out.reserve(pixels.len() * 4 + BLOCK);
    for row in pixels.chunks_exact(width).rev() {
        for v in row {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    let pad = out.len().div_ceil(BLOCK) * BLOCK;
    out.resize(pad, 0);
}

/// The FITS file of a tile (`pixels` in memory order, W×W).
pub(crate) fn fits_tile(geom: &TileGeom, pixels: &[f32], bunit: Option<&str>) -> Vec<u8> {
    let (crpix1, crpix2, s) = geom.hpx_wcs();
    let mut out = Vec::with_capacity(BLOCK + pixels.len() * 4 + BLOCK);
    value_card(&mut out, "SIMPLE", "T");
    value_card(&mut out, "BITPIX", "-32");
    value_card(&mut out, "NAXIS", "2");
    value_card(&mut out, "NAXIS1", &TILE_WIDTH.to_string());
    value_card(&mut out, "NAXIS2", &TILE_WIDTH.to_string());
    string_card(&mut out, "CPYRIGHT", "See HiPS properties file");
    card(
        &mut out,
        &format!(
            "COMMENT HiPS FITS tile generated by Tessera {}",
            env!("CARGO_PKG_VERSION")
        ),
    );
    value_card(&mut out, "ORDER", &geom.order.to_string());
    value_card(&mut out, "NPIX", &geom.npix.to_string());
    value_card(&mut out, "CRPIX1", &real(crpix1));
    value_card(&mut out, "CRPIX2", &real(crpix2));
    value_card(&mut out, "CD1_1", &real(-s));
    value_card(&mut out, "CD1_2", &real(-s));
    value_card(&mut out, "CD2_1", &real(s));
    value_card(&mut out, "CD2_2", &real(-s));
    string_card(&mut out, "CTYPE1", "RA---HPX");
    string_card(&mut out, "CTYPE2", "DEC--HPX");
    value_card(&mut out, "CRVAL1", "0.0");
    value_card(&mut out, "CRVAL2", "0.0");
    value_card(&mut out, "PV2_1", "4");
    value_card(&mut out, "PV2_2", "3");
    if let Some(u) = bunit {
        string_card(&mut out, "BUNIT", u);
    }
    end_header(&mut out);
    push_data(&mut out, pixels, TILE_WIDTH);
    out
}

/// The FITS file of an Allsky mosaic (`pixels` top row first, `width × height`).
pub(crate) fn fits_image(pixels: &[f32], width: usize, height: usize, order: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK + pixels.len() * 4 + BLOCK);
    value_card(&mut out, "SIMPLE", "T");
    value_card(&mut out, "BITPIX", "-32");
    value_card(&mut out, "NAXIS", "2");
    value_card(&mut out, "NAXIS1", &width.to_string());
    value_card(&mut out, "NAXIS2", &height.to_string());
    string_card(&mut out, "CPYRIGHT", "See HiPS properties file");
    card(
        &mut out,
        &format!(
            "COMMENT HiPS Allsky of order {order} generated by Tessera {}",
            env!("CARGO_PKG_VERSION")
        ),
    );
    end_header(&mut out);
    push_data(&mut out, pixels, width);
    out
}

/// A PNG (grey + alpha: blank pixels grey 0, transparent) of `pixels`, top row first.
pub(crate) fn png(
    pixels: &[f32],
    width: usize,
    height: usize,
    map: &GreyMap,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut raw = Vec::with_capacity(pixels.len() * 2);
    for &v in pixels {
        let g = map.grey(v);
        raw.push(g);
        raw.push(if g == 0 { 0 } else { 255 });
    }
    let mut out = Vec::with_capacity(pixels.len());
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::GrayscaleAlpha);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header()?;
        w.write_image_data(&raw)?;
        w.finish()?;
    }
    Ok(out)
}

/// A JPEG (grey, quality 95: blank pixels black) of `pixels`, top row first.
pub(crate) fn jpeg(
    pixels: &[f32],
    width: usize,
    height: usize,
    map: &GreyMap,
) -> Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let raw: Vec<u8> = pixels.iter().map(|&v| map.grey(v)).collect();
    let mut out = Vec::with_capacity(pixels.len() / 4);
    let (w, h) = (
        u16::try_from(width).unwrap_or(u16::MAX),
        u16::try_from(height).unwrap_or(u16::MAX),
    );
    jpeg_encoder::Encoder::new(&mut out, 95).encode(&raw, w, h, jpeg_encoder::ColorType::Luma)?;
    Ok(out)
}

/// The parent tile of four children (`children[q]` is child `4N + q`; `None` when absent):
/// each parent pixel the mean of the non-blank pixels of its 2×2 block.
///
/// Child `q` holds the parent's rows `(q & 1)·W/2 …` and columns `(q >> 1)·W/2 …`: its two
/// index bits are the top bits of the parent pixel's r (even) and c (odd) coordinates.
pub(crate) fn parent_tile(children: &[Option<Vec<f32>>; 4]) -> Vec<f32> {
    const H: usize = TILE_WIDTH / 2;
    let mut out = vec![f32::NAN; TILE_WIDTH * TILE_WIDTH];
    for (q, child) in children.iter().enumerate() {
        let Some(ch) = child else { continue };
        let (r_off, c_off) = ((q & 1) * H, (q >> 1) * H);
        for pr in 0..H {
            let top = &ch[2 * pr * TILE_WIDTH..(2 * pr + 1) * TILE_WIDTH];
            let bottom = &ch[(2 * pr + 1) * TILE_WIDTH..(2 * pr + 2) * TILE_WIDTH];
            let row = &mut out[(r_off + pr) * TILE_WIDTH + c_off..][..H];
            for (pc, dst) in row.iter_mut().enumerate() {
                let vals = [
                    top[2 * pc],
                    top[2 * pc + 1],
                    bottom[2 * pc],
                    bottom[2 * pc + 1],
                ];
                let (mut s, mut n) = (0f64, 0u32);
                for v in vals {
                    if !v.is_nan() {
                        s += f64::from(v);
                        n += 1;
                    }
                }
                if n > 0 {
                    *dst = (s / f64::from(n)) as f32;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hips::geom::TILE_PIXELS;

    #[test]
    fn reals_are_fits_reals() {
        assert_eq!(real(1.0), "1.0");
        assert_eq!(real(-0.000_171_661_376_953_125), "-0.000171661376953125");
        assert_eq!(real(1e-20), "1.0E-20");
        assert_eq!(real(-435_711.5), "-435711.5");
    }

    #[test]
    fn grey_levels() {
        let m = GreyMap::new(0.0, 10.0, Stretch::Linear);
        assert_eq!(m.grey(f32::NAN), 0);
        assert_eq!(m.grey(-5.0), 1);
        assert_eq!(m.grey(0.0), 1);
        assert_eq!(m.grey(10.0), 255);
        assert_eq!(m.grey(1e30), 255);
        assert_eq!(m.grey(5.0), 128);
        let s = GreyMap::new(0.0, 10.0, Stretch::Sqrt);
        assert!(s.grey(2.5) > m.grey(2.5));
        let l = GreyMap::new(0.0, 10.0, Stretch::Log);
        let a = GreyMap::new(0.0, 10.0, Stretch::Asinh);
        assert!(l.grey(1.0) > m.grey(1.0) && a.grey(1.0) > m.grey(1.0));
        assert_eq!(l.grey(10.0), 255);
        assert_eq!(a.grey(10.0), 255);
    }

    #[test]
    fn parent_is_the_mean_of_children_ignoring_blanks() {
        let mut c0 = vec![f32::NAN; TILE_PIXELS];
        // Block (0, 0) of child 0: 1, 2, 3, NaN → 2.
        c0[0] = 1.0;
        c0[1] = 2.0;
        c0[TILE_WIDTH] = 3.0;
        let mut c3 = vec![4.0f32; TILE_PIXELS];
        c3[0] = 8.0;
        let p = parent_tile(&[Some(c0), None, None, Some(c3)]);
        assert_eq!(p[0], 2.0);
        assert!(p[1].is_nan());
        // Child 3 → rows and columns from W/2; its first block (8, 4, 4, 4) → 5.
        let h = TILE_WIDTH / 2;
        assert_eq!(p[h * TILE_WIDTH + h], 5.0);
        assert_eq!(p[(TILE_WIDTH - 1) * TILE_WIDTH + TILE_WIDTH - 1], 4.0);
        // Child 1 (absent) covers rows from W/2, columns < W/2.
        assert!(p[h * TILE_WIDTH].is_nan());
    }

    #[test]
    fn fits_rows_are_bottom_up() {
        let mut px = vec![0f32; TILE_PIXELS];
        px[0] = 7.0; // r = 0, c = 0: the top-left pixel in display order
        let f = fits_tile(&TileGeom::new(3, 0), &px, None);
        assert_eq!(f.len() % BLOCK, 0);
        let header_len = BLOCK;
        // Stored row W−1, column 0.
        let off = header_len + (TILE_WIDTH - 1) * TILE_WIDTH * 4;
        assert_eq!(f32::from_be_bytes(f[off..off + 4].try_into().unwrap()), 7.0);
        let text = String::from_utf8_lossy(&f[..header_len]);
        assert!(text.starts_with("SIMPLE  =                    T"));
        assert!(text.contains("CTYPE1  = 'RA---HPX'"));
    }
}
