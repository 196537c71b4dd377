//! FITS images: the core that image registration (ObsCore) and SODA cutouts use.
//!
//! * [`read_image_hdus`] lists the image HDUs of a file (headers read, data skipped) and
//!   checks that every declared data unit is present.
//! * [`Header`] holds the cards of one HDU; see [`header`] for what is tolerated and what is
//!   an error.
//! * [`ImageWcs`] maps pixels to ICRS and back (23 projections, SIP, Galactic axes, linear
//!   spectral axes); see [`wcs`] for the supported conventions and [`proj`] for why the
//!   projections are done here and in CDS's `mapproj` rather than through the `wcs` crate.
//! * [`footprint`] gives the sky outline, centre, field of view and pixel scale.
//! * [`plan_cutout`] and [`write_cutout`] cut a region (SODA `CIRCLE`, `POLYGON`, `POS
//!   RANGE`, and `BAND` on cubes) out of a memory-mapped file into a new FITS file.
//!
//! Every error names the file, the HDU and, where there is one, the card or keyword at
//! fault; nothing here panics on a malformed file.
//!
//! # Circle cutouts are astropy's `Cutout2D`
//!
//! A `CIRCLE ra dec r` selects exactly the pixels of
//! `Cutout2D(data, SkyCoord(ra, dec), size=2*r*u.deg, wcs=WCS(header), mode='trim')`:
//!
//! 1. the centre `(x, y)` is `sky_to_pixel(ra, dec)` (all distortions included, as
//!    `skycoord_to_pixel(mode='all')` does), made 0-based: `x0 = x − 1`, `y0 = y − 1`;
//! 2. the pixel scales `(sx, sy)` are the norms of the columns of the celestial linear
//!    matrix (`proj_plane_pixel_scales`, at the reference pixel, distortions ignored);
//! 3. the size in pixels is `ny = round(2r / sx)`, `nx = round(2r / sy)` with NumPy's
//!    rounding (half to even). (Cutout2D pairs the `(ny, nx)` size with the `(x, y)`
//!    scales; we do the same so non-square pixels cut identically. A size of 0 is raised
//!    to 1 pixel, where Cutout2D would return nothing);
//! 4. per axis, `lo = ceil(x0 − nx/2)`, `hi = lo + nx` (exclusive, 0-based); no overlap
//!    when `hi ≤ 0` or `lo ≥ NAXIS1` on either axis (→ `Ok(None)`); otherwise the kept
//!    pixels are `max(lo, 0) + 1 ..= min(hi, NAXIS1)` (1-based), and likewise for `y`;
//! 5. the cutout's `CRPIXn` is the original minus the number of pixels cut before the
//!    first kept one, exactly as Cutout2D shifts `wcs.wcs.crpix`.
//!
//! The boxes are identical except at knife edges, where `x0 − nx/2` is within rounding of
//! an integer: there the result depends on the last bits of the centre, and with SIP
//! astropy's `all_world2pix` itself stops at 10⁻⁴ pixel. FK5 (J2000) positions are taken
//! as ICRS; astropy would apply the ≈ 20 mas frame bias when given an ICRS `SkyCoord`.
//!
//! On a cube the same box is cut on the two celestial axes; `BAND` selects the planes.

pub mod cutout;
pub mod footprint;
pub mod hdu;
pub mod header;
pub mod proj;
pub mod wcs;

use std::path::PathBuf;

pub use cutout::{CutoutPlan, CutoutRegion, plan_cutout, write_cutout};
pub use footprint::{Footprint, footprint};
pub use hdu::{ImageHdu, read_image_hdus};
pub use header::{Card, Header, Value};
pub use wcs::{Frame, ImageWcs, SpectralAxis, SpectralKind};

/// Errors of the FITS image layer. Each names the file and HDU (0 = primary).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A card is malformed, or its value has the wrong type.
    #[error("{}: HDU {hdu}: card {card} ({keyword}): {message}", file.display())]
    Card {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// Card number in the header, 1-based.
        card: usize,
        /// The card's keyword.
        keyword: String,
        /// What is wrong.
        message: String,
    },
    /// A mandatory keyword is absent.
    #[error("{}: HDU {hdu}: missing mandatory keyword {keyword}", file.display())]
    MissingKeyword {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// The keyword.
        keyword: String,
    },
    /// The file is not FITS, or a header has no `END`.
    #[error("{}: HDU {hdu}: {message}", file.display())]
    Structure {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// What is wrong.
        message: String,
    },
    /// The data unit is shorter than the header declares.
    #[error(
        "{}: HDU {hdu}: data truncated: the header (BITPIX, NAXISn) declares {declared} bytes of data from byte {offset}, the file holds {available}",
        file.display()
    )]
    Truncated {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// Offset of the data unit.
        offset: u64,
        /// Declared data length.
        declared: u64,
        /// Bytes present from the offset.
        available: u64,
    },
    /// A WCS keyword is missing, inconsistent or unsupported.
    #[error("{}: HDU {hdu}: WCS keyword {keyword}: {message}", file.display())]
    Wcs {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// The keyword at fault.
        keyword: String,
        /// What is wrong.
        message: String,
    },
    /// A projection code this reader does not support (the message lists those it does).
    #[error(
        "{}: HDU {hdu}: {keyword} = '{ctype}': unsupported projection {code} (supported: {})",
        file.display(),
        wcs::SUPPORTED_PROJECTIONS.join(" ")
    )]
    UnsupportedProjection {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// The `CTYPEn` keyword.
        keyword: String,
        /// Its value.
        ctype: String,
        /// The projection code.
        code: String,
    },
    /// The footprint cannot be computed.
    #[error("{}: HDU {hdu}: footprint: {message}", file.display())]
    Footprint {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// What is wrong.
        message: String,
    },
    /// The cutout request is invalid (caller at fault).
    #[error("{}: HDU {hdu}: invalid cutout request: {message}", file.display())]
    Request {
        /// The file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// What is wrong.
        message: String,
    },
    /// Writing the cutout failed.
    #[error("{}: HDU {hdu}: writing the cutout: {source}", file.display())]
    Write {
        /// The source file.
        file: PathBuf,
        /// The HDU.
        hdu: usize,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Unit vector of (RA, Dec) in degrees.
pub(crate) fn radec_to_vec(ra: f64, dec: f64) -> [f64; 3] {
    let (sa, ca) = ra.to_radians().sin_cos();
    let (sd, cd) = dec.to_radians().sin_cos();
    [cd * ca, cd * sa, sd]
}

/// (RA, Dec) in degrees of a (not necessarily unit) vector; RA in [0, 360).
pub(crate) fn vec_to_radec(v: [f64; 3]) -> (f64, f64) {
    let ra = v[1].atan2(v[0]).to_degrees().rem_euclid(360.0);
    let dec = v[2].atan2(v[0].hypot(v[1])).to_degrees();
    (ra, dec)
}

/// Great-circle distance in degrees.
pub(crate) fn angular_distance_deg(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (u, v) = (radec_to_vec(a.0, a.1), radec_to_vec(b.0, b.1));
    let c = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    let s = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
    let d = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
    s.atan2(d).to_degrees()
}
