//! HiPS tile geometry: which HEALPix cell a tile pixel is, where it is on the sky, the
//! deepest order for a pixel scale, and the numbers of a tile's HPX FITS WCS.
//!
//! A tile (K, N) is W×W pixels (W = 2^[`TILE_ORDER`] = 512); pixel `h` of the tile is the
//! NESTED cell `N·W² + h` at order K + 9. With `interleave(a, b)` putting the bits of `a` at
//! the even and those of `b` at the odd positions (FORMATS.md §3.3):
//!
//! * in memory, and in PNG/JPEG, row `r` from the top and column `c` from the left hold
//!   `h = interleave(r, c)`;
//! * in a FITS tile, stored row `y` (0 = the first row in the file) and column `x` hold
//!   `h = interleave(W − 1 − y, x)`: the PNG rows written bottom-up.
//!
//! `r` is the NESTED "x" coordinate (from the tile's south vertex towards its east vertex)
//! and `c` the "y" coordinate (towards the west vertex), so a pixel centre is at offset
//! `((r + ½)/W, (c + ½)/W)` from the south vertex: cdshealpix's `sph_coo`. We work in its
//! projection plane (x ∈ [0, 8), y ∈ [−2, 2], the HEALPix projection of Calabretta & Roukema
//! scaled by 1/45°), where a tile is a square rotated by 45° and pixel centres lie on a
//! regular grid, and deproject with `cdshealpix::unproj`.

use cdshealpix::nested;

/// log2 of the tile width.
pub const TILE_ORDER: u8 = 9;
/// The tile width W in pixels.
pub const TILE_WIDTH: usize = 1 << TILE_ORDER;
/// Pixels per tile.
pub const TILE_PIXELS: usize = TILE_WIDTH * TILE_WIDTH;
/// The lowest deepest order Hipsgen chooses (FORMATS.md §5).
pub const MIN_ORDER: u8 = 3;
/// The deepest order possible with 512-pixel tiles (HEALPix stops at order 29).
pub const MAX_ORDER: u8 = 29 - TILE_ORDER;

/// Puts the bits of `a` at the even and those of `b` at the odd positions.
pub fn interleave(a: u32, b: u32) -> u64 {
    spread(a) | (spread(b) << 1)
}

/// The inverse of [`interleave`]: `(even bits, odd bits)`.
pub fn deinterleave(h: u64) -> (u32, u32) {
    (compact(h), compact(h >> 1))
}

fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

fn compact(h: u64) -> u32 {
    let mut x = h & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Hipsgen's deepest order for input pixels of `pixel_deg` degrees (FORMATS.md §5):
/// the first pixel order whose cells are smaller than the input pixels,
/// `1 + floor(log2(sqrt(π/3) / θ))`, less the tile order, at least [`MIN_ORDER`].
pub fn order_for_scale(pixel_deg: f64) -> u8 {
    let theta = pixel_deg.to_radians();
    let ratio = (std::f64::consts::PI / 3.0).sqrt() / theta;
    let pix_order = if ratio.is_finite() && ratio > 0.0 {
        (1.0 + ratio.log2().floor()).clamp(0.0, 29.0) as u8
    } else {
        29
    };
    pix_order.saturating_sub(TILE_ORDER).max(MIN_ORDER)
}

/// The angular size (deg) of a tile pixel at tile order `order`: `sqrt(π/3)·(180/π)/2^(K+9)`.
pub fn tile_pixel_deg(order: u8) -> f64 {
    (std::f64::consts::PI / 3.0).sqrt().to_degrees()
        / 2f64.powi(i32::from(order) + i32::from(TILE_ORDER))
}

/// The `DirD` directory number of tile `npix`.
pub fn dir_of(npix: u64) -> u64 {
    npix / 10_000 * 10_000
}

/// One tile in cdshealpix's projection plane.
#[derive(Debug, Clone, Copy)]
pub struct TileGeom {
    /// Tile order K.
    pub order: u8,
    /// Tile index at order K.
    pub npix: u64,
    /// Plane coordinates of the tile's south vertex.
    x0: f64,
    y0: f64,
    /// Plane units per tile pixel along the r and c axes (the half-diagonal of a pixel).
    step: f64,
}

impl TileGeom {
    /// The geometry of tile `npix` at order `order` (`npix < 12·4^order`).
    pub fn new(order: u8, npix: u64) -> TileGeom {
        let layer = nested::get(order);
        let (xc, yc) = layer.center_of_projected_cell(npix);
        let one_over_nside = 1.0 / f64::from(1u32 << order);
        TileGeom {
            order,
            npix,
            x0: xc,
            y0: yc - one_over_nside,
            step: one_over_nside / TILE_WIDTH as f64,
        }
    }

    /// Plane coordinates of the point at continuous tile coordinates `(tr, tc)`: pixel
    /// `(r, c)` spans `[r, r+1) × [c, c+1)`, its centre is `(r + ½, c + ½)`.
    pub fn plane(&self, tr: f64, tc: f64) -> (f64, f64) {
        (
            self.x0 + (tr - tc) * self.step,
            self.y0 + (tr + tc) * self.step,
        )
    }

    /// ICRS (RA, Dec) in degrees of the point at continuous tile coordinates `(tr, tc)`,
    /// RA in [0, 360).
    pub fn radec(&self, tr: f64, tc: f64) -> (f64, f64) {
        let (x, y) = self.plane(tr, tc);
        let (lon, lat) = cdshealpix::unproj(x, y.clamp(-2.0, 2.0));
        (lon.to_degrees().rem_euclid(360.0), lat.to_degrees())
    }

    /// `CRPIX1, CRPIX2, s` of the tile's FITS HPX WCS (`CTYPE = RA---HPX/DEC--HPX`,
    /// `CRVAL = 0 0`, `PV2_1 = 4`, `PV2_2 = 3`, `CD = s·[[−1, −1], [1, −1]]` in degrees):
    /// the FITS pixel (1-based) of the projection plane's origin, as Hipsgen writes them
    /// (the plane's x taken in (−180°, 180°]).
    pub fn hpx_wcs(&self) -> (f64, f64, f64) {
        // Plane degrees are 45 × cdshealpix's units.
        let s = 45.0 * self.step;
        let mut xs = 45.0 * self.x0;
        if xs > 180.0 {
            xs -= 360.0;
        }
        let ys = 45.0 * self.y0;
        // The south vertex is the bottom-left corner of FITS pixel (1, W), i.e. FITS pixel
        // coordinates (0.5, W + 0.5); the plane is CD·(p − CRPIX).
        let du = (-xs + ys) / (2.0 * s);
        let dv = (-xs - ys) / (2.0 * s);
        (0.5 - du, TILE_WIDTH as f64 + 0.5 - dv, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        assert_eq!(interleave(0b11, 0), 0b0101);
        assert_eq!(interleave(0, 0b11), 0b1010);
        for (a, b) in [(0u32, 0u32), (511, 0), (0, 511), (123, 456), (511, 511)] {
            assert_eq!(deinterleave(interleave(a, b)), (a, b));
        }
    }

    #[test]
    fn order_rule_matches_hipsgen() {
        // 1″ pixels → order 9; m13.fits (0.9997″) → 9 (Hipsgen 12.001 chose 9).
        assert_eq!(order_for_scale(1.0 / 3600.0), 9);
        assert_eq!(order_for_scale(0.000_277_700_02), 9);
        // 0.2006″ (UKIDSS) → 12; 0.558″ → 10; very coarse → 3.
        assert_eq!(order_for_scale(0.200_56 / 3600.0), 12);
        assert_eq!(order_for_scale(0.558 / 3600.0), 10);
        assert_eq!(order_for_scale(0.5), 3);
        assert!((tile_pixel_deg(9) * 3600.0 - 0.805).abs() < 1e-3);
    }

    #[test]
    fn pixel_centres_are_the_nested_cells() {
        // Pixel (r, c) of tile (K, N) is cell N·W² + interleave(r, c) at order K + 9.
        for (order, npix) in [
            (3u8, 147u64),
            (9, 603_930),
            (5, 3000),
            (4, 2500),
            (6, 20_000),
        ] {
            let g = TileGeom::new(order, npix);
            let deep = nested::get(order + TILE_ORDER);
            for (r, c) in [(0u32, 0u32), (511, 0), (0, 511), (300, 17), (511, 511)] {
                let h = npix * TILE_PIXELS as u64 + interleave(r, c);
                let (ra, dec) = g.radec(f64::from(r) + 0.5, f64::from(c) + 0.5);
                let got = deep.hash(ra.to_radians(), dec.to_radians());
                assert_eq!(got, h, "tile {order}/{npix} pixel ({r}, {c})");
            }
        }
    }

    #[test]
    fn hpx_wcs_matches_hipsgen() {
        // Norder9/Dir600000/Npix603930.fits written by Hipsgen 12.001 for m13.fits:
        // CRPIX1 = -435711.5, CRPIX2 = -202239.5, |CDi_j| = 1.7166137695313E-04.
        let (c1, c2, s) = TileGeom::new(9, 603_930).hpx_wcs();
        assert!((c1 + 435_711.5).abs() < 1e-6, "{c1}");
        assert!((c2 + 202_239.5).abs() < 1e-6, "{c2}");
        assert!((s - 1.716_613_769_531_3e-4).abs() < 1e-15, "{s}");
    }
}
