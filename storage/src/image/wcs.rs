//! World coordinates of an image: celestial axes (projections in [`super::proj`]), SIP
//! distortion, the Galactic→ICRS rotation, and linear spectral axes.
//!
//! What the header may say, and what we do with it:
//!
//! * **Linear part**, following WCSLIB's precedence: `PCi_j` (with `CDELTi`) if any `PCi_j`
//!   is present or if neither `CDi_j` nor `CROTAi` is; else `CDi_j` (missing elements 0,
//!   `CDELTi` ignored); else `CDELTi` + `CROTAn` of the latitude axis (the AIPS convention;
//!   `CROTA` of the longitude axis is ignored, as WCSLIB does). The celestial and spectral
//!   axes must not be coupled to other axes by the matrix.
//! * **Celestial axes** may be any two axes (`RA--`/`DEC-` or `GLON`/`GLAT`, in either
//!   order); `CUNITn` deg (default), arcmin, arcsec, mas or rad. Projections: AZP SZP TAN
//!   STG SIN (with slant `PV2_1`/`PV2_2`) NCP ARC ZPN ZEA AIR CYP CEA CAR MER SFL PAR MOL
//!   AIT COP COD COE COO HPX, with their `PVi_m`, and `LONPOLE`/`LATPOLE` (or `PV1_3`/
//!   `PV1_4`). Not supported (clear error): BON PCO TSC CSC QSC XPH, the non-standard
//!   TPV/TNX/ZPX/GLS, and a non-default native fiducial point (`PV1_1`/`PV1_2`).
//! * **SIP** (`-SIP` suffix, axes 1 and 2): the forward polynomials `A`/`B` applied here;
//!   sky→pixel inverts them by Newton iteration to 10⁻¹² pixel like astropy's
//!   `all_world2pix` (`AP`/`BP` only seed the iteration).
//! * **Frames**: `RADESYS` ICRS, or FK5 with equinox 2000 (or no `RADESYS` with
//!   `EQUINOX` ≥ 1984 or absent), are taken as ICRS (the ≈ 20 mas FK5 frame bias is
//!   ignored). Galactic axes are rotated to ICRS with the matrix astropy uses (Galactic →
//!   FK5 J2000 → ICRS), so ICRS positions agree with astropy's to ≈ 10⁻¹² deg. FK4, GAPPT,
//!   ecliptic, supergalactic and helioprojective axes are errors.
//! * **Spectral axis**: the first axis whose `CTYPE` is `WAVE`, `AWAV`, `FREQ`, `VRAD` or
//!   `VOPT` without an algorithm code (the AIPS frame suffixes `-LSR`, `-LSRK`, `-HEL`,
//!   `-BAR`, `-OBS`, `-GEO`, `-TOP` are accepted): linear in its own variable. Axes with a
//!   non-linear algorithm (`-LOG`, `-F2W`, `-TAB`, …) are not reported. Wavelengths of
//!   `AWAV` axes are air wavelengths, used as they are (not converted to vacuum).

use std::path::PathBuf;
use std::sync::Arc;

use super::ImageError;
use super::header::Header;

/// Speed of light, m/s.
pub const C_M_PER_S: f64 = 299_792_458.0;

pub use super::proj::SUPPORTED_PROJECTIONS;
use super::proj::{ProjParams, Projection, Rotation};

/// Galactic → ICRS rotation (rows: ICRS x, y, z), as astropy composes it (Galactic → FK5
/// J2000 → ICRS, with the frame bias).
const GAL_TO_ICRS: [[f64; 3]; 3] = [
    [
        -0.054875657712591654,
        0.49410943719272693,
        -0.8676661375596585,
    ],
    [
        -0.8734370519556163,
        -0.4448297212232954,
        -0.19807633727300078,
    ],
    [-0.4838350736167156, 0.7469821839866677, 0.455983813687302],
];

/// The celestial reference frame of the image axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// ICRS (or FK5 J2000, taken as ICRS).
    Icrs,
    /// Galactic (`GLON`/`GLAT`).
    Galactic,
}

/// The kind of a linear spectral axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpectralKind {
    /// Vacuum wavelength.
    Wave,
    /// Air wavelength.
    Awav,
    /// Frequency.
    Freq,
    /// Radio velocity.
    Vrad,
    /// Optical velocity.
    Vopt,
}

/// A linear spectral axis.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralAxis {
    /// FITS axis number (1-based).
    pub axis: usize,
    /// `CTYPEn` as written.
    pub ctype: String,
    /// What the axis measures.
    pub kind: SpectralKind,
    /// `CUNITn` as written (empty when absent: m, Hz or m/s).
    pub unit: String,
    /// `CRVALn`, in `unit`.
    pub crval: f64,
    /// The increment per pixel (`CDn_n` or `CDELTn·PCn_n`), in `unit`.
    pub cdelt: f64,
    /// `CRPIXn`.
    pub crpix: f64,
    /// Number of pixels along the axis (1 for an axis beyond `NAXIS`).
    pub len: usize,
    /// Factor from `unit` to SI (m, Hz or m/s).
    pub to_si: f64,
    /// Rest frequency (Hz) from `RESTFRQ`/`RESTFREQ` or `RESTWAV`, needed for velocities.
    pub rest_frequency_hz: Option<f64>,
}

impl SpectralAxis {
    /// The axis value (in `unit`) at a 1-based pixel coordinate.
    pub fn value_at(&self, pixel: f64) -> f64 {
        self.crval + self.cdelt * (pixel - self.crpix)
    }

    /// The 1-based pixel coordinate of an axis value (in `unit`).
    pub fn pixel_of(&self, value: f64) -> f64 {
        self.crpix + (value - self.crval) / self.cdelt
    }

    /// The value in SI units (m, Hz, m/s) at a pixel coordinate.
    pub fn si_at(&self, pixel: f64) -> f64 {
        self.value_at(pixel) * self.to_si
    }

    /// The wavelength in metres at a pixel coordinate (`None` for a velocity axis without
    /// rest frequency, or a non-positive frequency/wavelength).
    pub fn wavelength_m_at(&self, pixel: f64) -> Option<f64> {
        let v = self.si_at(pixel);
        let w = match self.kind {
            SpectralKind::Wave | SpectralKind::Awav => v,
            SpectralKind::Freq => C_M_PER_S / v,
            SpectralKind::Vrad => {
                let nu0 = self.rest_frequency_hz?;
                C_M_PER_S / (nu0 * (1.0 - v / C_M_PER_S))
            }
            SpectralKind::Vopt => {
                let lambda0 = C_M_PER_S / self.rest_frequency_hz?;
                lambda0 * (1.0 + v / C_M_PER_S)
            }
        };
        (w.is_finite() && w > 0.0).then_some(w)
    }

    /// The wavelengths (m) spanned by plane `k` (1-based): its edges at `k ± 0.5`, sorted.
    pub fn plane_span_m(&self, k: usize) -> Option<(f64, f64)> {
        let a = self.wavelength_m_at(k as f64 - 0.5)?;
        let b = self.wavelength_m_at(k as f64 + 0.5)?;
        Some((a.min(b), a.max(b)))
    }

    /// The spectral coverage in metres, `(em_min, em_max)` for ObsCore: the wavelengths at
    /// the outer edges of the first and last planes.
    pub fn coverage_m(&self) -> Option<(f64, f64)> {
        let a = self.wavelength_m_at(0.5)?;
        let b = self.wavelength_m_at(self.len as f64 + 0.5)?;
        Some((a.min(b), a.max(b)))
    }

    /// The planes (1-based, inclusive) whose span overlaps the band `[lo, hi]` (metres,
    /// boundaries inclusive); `None` when no plane does.
    pub fn planes_in_band(&self, lo: f64, hi: f64) -> Option<(usize, usize)> {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let mut found: Option<(usize, usize)> = None;
        for k in 1..=self.len {
            if let Some((a, b)) = self.plane_span_m(k)
                && b >= lo
                && a <= hi
            {
                found = Some(match found {
                    None => (k, k),
                    Some((first, _)) => (first, k),
                });
            }
        }
        found
    }
}

/// SIP forward (and optional inverse) polynomials.
#[derive(Debug, Clone)]
struct Sip {
    a: Vec<(u32, u32, f64)>,
    b: Vec<(u32, u32, f64)>,
    ap: Vec<(u32, u32, f64)>,
    bp: Vec<(u32, u32, f64)>,
}

fn poly(c: &[(u32, u32, f64)], u: f64, v: f64) -> f64 {
    c.iter()
        .map(|&(p, q, k)| k * u.powi(p as i32) * v.powi(q as i32))
        .sum()
}

fn dpoly_du(c: &[(u32, u32, f64)], u: f64, v: f64) -> f64 {
    c.iter()
        .filter(|t| t.0 > 0)
        .map(|&(p, q, k)| k * p as f64 * u.powi(p as i32 - 1) * v.powi(q as i32))
        .sum()
}

fn dpoly_dv(c: &[(u32, u32, f64)], u: f64, v: f64) -> f64 {
    c.iter()
        .filter(|t| t.1 > 0)
        .map(|&(p, q, k)| k * q as f64 * u.powi(p as i32) * v.powi(q as i32 - 1))
        .sum()
}

impl Sip {
    fn forward(&self, u: f64, v: f64) -> (f64, f64) {
        (u + poly(&self.a, u, v), v + poly(&self.b, u, v))
    }

    /// Solves `forward(u, v) = (uu, vv)`.
    fn inverse(&self, uu: f64, vv: f64) -> Option<(f64, f64)> {
        let (mut u, mut v) = if self.ap.is_empty() && self.bp.is_empty() {
            (uu, vv)
        } else {
            (uu + poly(&self.ap, uu, vv), vv + poly(&self.bp, uu, vv))
        };
        for _ in 0..100 {
            let (fu, fv) = self.forward(u, v);
            let (ru, rv) = (fu - uu, fv - vv);
            if ru.abs() < 1e-12 && rv.abs() < 1e-12 {
                return Some((u, v));
            }
            let j11 = 1.0 + dpoly_du(&self.a, u, v);
            let j12 = dpoly_dv(&self.a, u, v);
            let j21 = dpoly_du(&self.b, u, v);
            let j22 = 1.0 + dpoly_dv(&self.b, u, v);
            let det = j11 * j22 - j12 * j21;
            if !det.is_finite() || det == 0.0 {
                return None;
            }
            u -= (j22 * ru - j12 * rv) / det;
            v -= (j11 * rv - j21 * ru) / det;
            if !(u.is_finite() && v.is_finite()) {
                return None;
            }
        }
        let (fu, fv) = self.forward(u, v);
        ((fu - uu).abs() < 1e-9 && (fv - vv).abs() < 1e-9).then_some((u, v))
    }
}

/// The world coordinate system of an image.
pub struct ImageWcs {
    file: Arc<PathBuf>,
    hdu: usize,
    /// 0-based indices of the longitude and latitude axes.
    lon_axis: usize,
    lat_axis: usize,
    frame: Frame,
    ctypes: (String, String),
    proj: Projection,
    rot: Rotation,
    sip: Option<Sip>,
    /// CRPIX of the longitude and latitude axes.
    crpix: (f64, f64),
    /// Linear matrix (deg/pixel): rows world lon, lat; columns pixel axes lon, lat.
    cd: [[f64; 2]; 2],
    /// Its inverse.
    cd_inv: [[f64; 2]; 2],
    spectral: Option<SpectralAxis>,
}

impl std::fmt::Debug for ImageWcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageWcs")
            .field("file", &self.file)
            .field("hdu", &self.hdu)
            .field("ctypes", &self.ctypes)
            .field("frame", &self.frame)
            .field("sip", &self.sip.is_some())
            .field("crpix", &self.crpix)
            .field("cd", &self.cd)
            .field("spectral", &self.spectral)
            .finish()
    }
}

/// Reads the WCS keywords of one header, remembering which card each came from.
struct Keys<'a> {
    h: &'a Header,
}

impl Keys<'_> {
    fn f64(&self, key: &str) -> Result<Option<f64>, ImageError> {
        let v = self.h.get_f64(key)?;
        if let Some(x) = v
            && !x.is_finite()
        {
            return Err(self.err(key, "value is not finite"));
        }
        Ok(v)
    }

    fn str(&self, key: &str) -> Result<Option<String>, ImageError> {
        self.h.get_str(key)
    }

    fn err(&self, key: &str, message: impl Into<String>) -> ImageError {
        ImageError::Wcs {
            file: self.h.file().to_path_buf(),
            hdu: self.h.hdu(),
            keyword: key.to_string(),
            message: message.into(),
        }
    }
}

/// Number of WCS axes: `WCSAXES`, else the largest of `NAXIS` and the highest axis number
/// in a WCS keyword (as WCSLIB does).
fn wcs_axis_count(h: &Header) -> Result<usize, ImageError> {
    if let Some(n) = h.get_i64("WCSAXES")?
        && (1..=99).contains(&n)
    {
        return Ok(n as usize);
    }
    let mut n = h.get_i64("NAXIS")?.unwrap_or(0).clamp(0, 99) as usize;
    for card in h.cards() {
        let k = card.keyword();
        let idx = ["CTYPE", "CRPIX", "CRVAL", "CDELT", "CUNIT", "CROTA"]
            .iter()
            .find_map(|p| k.strip_prefix(p))
            .and_then(|rest| rest.parse::<usize>().ok())
            .or_else(|| {
                let rest = k.strip_prefix("PC").or_else(|| k.strip_prefix("CD"))?;
                let (i, j) = rest.split_once('_')?;
                Some(i.parse::<usize>().ok()?.max(j.parse::<usize>().ok()?))
            });
        if let Some(i) = idx.filter(|&i| i <= 99) {
            n = n.max(i);
        }
    }
    Ok(n.max(2))
}

/// The full linear matrix (rows: world axes, columns: pixel axes), in header units.
/// `celestial` = (longitude axis, latitude axis), 0-based, for the `CROTA` convention.
fn linear_matrix(
    k: &Keys<'_>,
    n: usize,
    celestial: Option<(usize, usize)>,
) -> Result<Vec<Vec<f64>>, ImageError> {
    let mut has_pc = false;
    let mut has_cd = false;
    let mut has_crota = false;
    for card in k.h.cards() {
        let key = card.keyword();
        let matrix_key = |prefix: &str| {
            key.strip_prefix(prefix)
                .and_then(|r| r.split_once('_'))
                .is_some_and(|(i, j)| i.parse::<usize>().is_ok() && j.parse::<usize>().is_ok())
        };
        has_pc |= matrix_key("PC");
        has_cd |= matrix_key("CD");
        has_crota |= key
            .strip_prefix("CROTA")
            .is_some_and(|r| r.parse::<usize>().is_ok());
    }
    let mut m = vec![vec![0.0; n]; n];
    if has_pc || (!has_cd && !has_crota) {
        for (i, row) in m.iter_mut().enumerate() {
            let cdelt = k.f64(&format!("CDELT{}", i + 1))?.unwrap_or(1.0);
            for (j, x) in row.iter_mut().enumerate() {
                let pc = k
                    .f64(&format!("PC{}_{}", i + 1, j + 1))?
                    .unwrap_or(if i == j { 1.0 } else { 0.0 });
                *x = cdelt * pc;
            }
        }
    } else if has_cd {
        for (i, row) in m.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = k.f64(&format!("CD{}_{}", i + 1, j + 1))?.unwrap_or(0.0);
            }
        }
    } else {
        for (i, row) in m.iter_mut().enumerate() {
            row[i] = k.f64(&format!("CDELT{}", i + 1))?.unwrap_or(1.0);
        }
        if let Some((lon, lat)) = celestial {
            let rho = k
                .f64(&format!("CROTA{}", lat + 1))?
                .unwrap_or(0.0)
                .to_radians();
            let (s, c) = rho.sin_cos();
            let (dl, dt) = (m[lon][lon], m[lat][lat]);
            m[lon][lon] = dl * c;
            m[lon][lat] = -dt * s;
            m[lat][lon] = dl * s;
            m[lat][lat] = dt * c;
        }
    }
    Ok(m)
}

/// The factor from a celestial `CUNITn` to degrees.
fn angle_unit(unit: &str) -> Option<f64> {
    match unit.trim() {
        "" | "deg" | "DEG" | "degree" | "degrees" | "DEGREE" | "DEGREES" | "Deg" => Some(1.0),
        "arcmin" | "ARCMIN" => Some(1.0 / 60.0),
        "arcsec" | "ARCSEC" => Some(1.0 / 3600.0),
        "mas" => Some(1.0 / 3_600_000.0),
        "rad" | "RAD" => Some(180.0 / std::f64::consts::PI),
        _ => None,
    }
}

/// The factor from a spectral `CUNITn` to SI for an axis kind (empty unit: SI).
fn spectral_unit(kind: SpectralKind, unit: &str) -> Option<f64> {
    let u = unit.trim();
    match kind {
        SpectralKind::Wave | SpectralKind::Awav => match u {
            "" | "m" | "M" => Some(1.0),
            "cm" => Some(1e-2),
            "mm" => Some(1e-3),
            "um" | "micron" | "microns" | "UM" => Some(1e-6),
            "nm" | "NM" => Some(1e-9),
            "Angstrom" | "angstrom" | "ANGSTROM" | "Angstroms" | "angstroms" | "0.1nm" => {
                Some(1e-10)
            }
            _ => None,
        },
        SpectralKind::Freq => match u {
            "" | "Hz" | "HZ" | "hz" => Some(1.0),
            "kHz" | "KHZ" | "KHz" => Some(1e3),
            "MHz" | "MHZ" => Some(1e6),
            "GHz" | "GHZ" => Some(1e9),
            "THz" | "THZ" => Some(1e12),
            _ => None,
        },
        SpectralKind::Vrad | SpectralKind::Vopt => match u {
            "" | "m/s" | "M/S" | "m s-1" | "m.s-1" => Some(1.0),
            "km/s" | "KM/S" | "km s-1" | "km.s-1" => Some(1e3),
            _ => None,
        },
    }
}

fn spectral_kind(ctype: &str) -> Option<SpectralKind> {
    let (head, rest) = if ctype.len() >= 4 && ctype.is_char_boundary(4) {
        ctype.split_at(4)
    } else {
        return None;
    };
    let kind = match head {
        "WAVE" => SpectralKind::Wave,
        "AWAV" => SpectralKind::Awav,
        "FREQ" => SpectralKind::Freq,
        "VRAD" => SpectralKind::Vrad,
        "VOPT" => SpectralKind::Vopt,
        _ => return None,
    };
    let suffix = rest.trim_start_matches('-').trim();
    matches!(
        suffix,
        "" | "LSR" | "LSRK" | "LSRD" | "HEL" | "BAR" | "OBS" | "GEO" | "TOP"
    )
    .then_some(kind)
}

/// Whether a `CTYPE` is a celestial longitude (`Some(true)`), latitude (`Some(false)`) and
/// of which family.
fn celestial_role(ctype: &str) -> Option<(bool, &'static str)> {
    let head = ctype.get(..4)?;
    Some(match head {
        "RA--" => (true, "EQ"),
        "DEC-" => (false, "EQ"),
        "GLON" => (true, "GAL"),
        "GLAT" => (false, "GAL"),
        "ELON" => (true, "ECL"),
        "ELAT" => (false, "ECL"),
        "SLON" => (true, "SGAL"),
        "SLAT" => (false, "SGAL"),
        "HPLN" => (true, "HP"),
        "HPLT" => (false, "HP"),
        _ => {
            if head.ends_with("LN") || head.ends_with("LON") {
                (true, "OTHER")
            } else if head.ends_with("LT") || head.ends_with("LAT") {
                (false, "OTHER")
            } else {
                return None;
            }
        }
    })
}

/// Projection code and whether `-SIP` follows, from a celestial `CTYPE`.
fn projection_code(ctype: &str) -> Option<(&str, bool)> {
    if !ctype.is_ascii() || ctype.len() < 8 || ctype.as_bytes()[4] != b'-' {
        return None;
    }
    let code = ctype[5..8].trim_end_matches('-');
    match ctype[8..].trim_end() {
        "" => Some((code, false)),
        "-SIP" => Some((code, true)),
        _ => None,
    }
}

impl ImageWcs {
    /// Builds the WCS from a header (primary WCS only, not the alternates `A`–`Z`).
    pub fn from_header(h: &Header) -> Result<ImageWcs, ImageError> {
        let k = Keys { h };
        let n = wcs_axis_count(h)?;
        let naxis = h.get_i64("NAXIS")?.unwrap_or(0).max(0) as usize;
        let mut shape = Vec::with_capacity(n);
        for i in 0..n {
            let len = if i < naxis {
                h.get_i64(&format!("NAXIS{}", i + 1))?.unwrap_or(1)
            } else {
                1
            };
            shape.push(len.max(1) as usize);
        }
        let mut ctypes = Vec::with_capacity(n);
        for i in 0..n {
            ctypes.push(
                k.str(&format!("CTYPE{}", i + 1))?
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            );
        }

        // Celestial axes.
        let mut lon = None;
        let mut lat = None;
        for (i, ct) in ctypes.iter().enumerate() {
            if let Some((is_lon, family)) = celestial_role(ct) {
                let slot = if is_lon { &mut lon } else { &mut lat };
                if let Some((j, _)) = *slot {
                    let key = format!("CTYPE{}", i + 1);
                    return Err(k.err(
                        &key,
                        format!(
                            "'{ct}': a second celestial {} axis (CTYPE{} is one too)",
                            if is_lon { "longitude" } else { "latitude" },
                            j + 1
                        ),
                    ));
                }
                *slot = Some((i, family));
            }
        }
        let ((lon, lon_family), (lat, lat_family)) = match (lon, lat) {
            (Some(a), Some(b)) => (a, b),
            (Some((i, _)), None) | (None, Some((i, _))) => {
                let key = format!("CTYPE{}", i + 1);
                return Err(k.err(
                    &key,
                    format!("'{}' has no matching celestial axis", ctypes[i]),
                ));
            }
            (None, None) => {
                return Err(k.err(
                    "CTYPE1",
                    "no celestial axes (RA/DEC or GLON/GLAT) in the header",
                ));
            }
        };
        let lon_key = format!("CTYPE{}", lon + 1);
        let lat_key = format!("CTYPE{}", lat + 1);
        if lon_family != lat_family {
            return Err(k.err(
                &lat_key,
                format!(
                    "'{}' does not pair with {lon_key} = '{}'",
                    ctypes[lat], ctypes[lon]
                ),
            ));
        }
        if lon >= naxis || lat >= naxis {
            let key = if lon >= naxis { &lon_key } else { &lat_key };
            return Err(k.err(key, format!("celestial axis beyond NAXIS = {naxis}")));
        }
        let frame = match lon_family {
            "EQ" => {
                equatorial_frame(&k)?;
                Frame::Icrs
            }
            "GAL" => Frame::Galactic,
            _ => {
                return Err(k.err(&lon_key, format!(
                    "'{}': only equatorial (RA/DEC) and Galactic (GLON/GLAT) axes are supported",
                    ctypes[lon]
                )));
            }
        };
        let (code, sip) = projection_code(&ctypes[lon]).ok_or_else(|| {
            k.err(
                &lon_key,
                format!("'{}' is not of the form XXXX-PPP[-SIP]", ctypes[lon]),
            )
        })?;
        let (lat_code, lat_sip) = projection_code(&ctypes[lat]).ok_or_else(|| {
            k.err(
                &lat_key,
                format!("'{}' is not of the form XXXX-PPP[-SIP]", ctypes[lat]),
            )
        })?;
        if code != lat_code || sip != lat_sip {
            return Err(k.err(
                &lat_key,
                format!(
                    "'{}' does not match {lon_key} = '{}'",
                    ctypes[lat], ctypes[lon]
                ),
            ));
        }
        if !SUPPORTED_PROJECTIONS.contains(&code) {
            return Err(ImageError::UnsupportedProjection {
                file: h.file().to_path_buf(),
                hdu: h.hdu(),
                keyword: lon_key,
                ctype: ctypes[lon].clone(),
                code: code.to_string(),
            });
        }
        if sip && (lon, lat) != (0, 1) {
            return Err(k.err(
                &lon_key,
                "SIP distortion needs the celestial axes to be axes 1 and 2",
            ));
        }

        // Linear part, and no coupling of the celestial axes with the others.
        let m = linear_matrix(&k, n, Some((lon, lat)))?;
        for (i, row) in m.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                let cel_i = i == lon || i == lat;
                let cel_j = j == lon || j == lat;
                if cel_i != cel_j && x != 0.0 {
                    return Err(k.err(
                        &format!("PC{}_{}", i + 1, j + 1),
                        "the celestial axes are coupled to a non-celestial axis (PCi_j/CDi_j ≠ 0)",
                    ));
                }
            }
        }
        let unit = |axis: usize| -> Result<f64, ImageError> {
            let key = format!("CUNIT{}", axis + 1);
            let u = k.str(&key)?.unwrap_or_default();
            angle_unit(&u).ok_or_else(|| k.err(&key, format!("unsupported celestial unit '{u}'")))
        };
        let (ul, ut) = (unit(lon)?, unit(lat)?);
        let cd = [
            [m[lon][lon] * ul, m[lon][lat] * ul],
            [m[lat][lon] * ut, m[lat][lat] * ut],
        ];
        let det = cd[0][0] * cd[1][1] - cd[0][1] * cd[1][0];
        if !(det.is_finite() && det != 0.0) {
            return Err(k.err(
                &format!("CDELT{}", lon + 1),
                "the celestial linear transformation is singular",
            ));
        }
        let crpix = (
            k.f64(&format!("CRPIX{}", lon + 1))?.unwrap_or(0.0),
            k.f64(&format!("CRPIX{}", lat + 1))?.unwrap_or(0.0),
        );
        let crval = (
            k.f64(&format!("CRVAL{}", lon + 1))?.unwrap_or(0.0) * ul,
            k.f64(&format!("CRVAL{}", lat + 1))?.unwrap_or(0.0) * ut,
        );

        let pv_lon = |m: usize| k.f64(&format!("PV{}_{m}", lon + 1));
        let lonpole = match k.f64("LONPOLE")? {
            Some(v) => Some(v),
            None => pv_lon(3)?,
        };
        let latpole = match k.f64("LATPOLE")? {
            Some(v) => Some(v),
            None => pv_lon(4)?,
        };
        for m in 1..=2 {
            if let Some(v) = pv_lon(m)? {
                let default = if m == 1 { 0.0 } else { f64::NAN };
                if v != default {
                    return Err(k.err(
                        &format!("PV{}_{m}", lon + 1),
                        "a non-default native fiducial point (PVi_1/PVi_2 of the longitude axis) is not supported",
                    ));
                }
            }
        }
        let mut pv = [None; 21];
        for (m, slot) in pv.iter_mut().enumerate() {
            *slot = k.f64(&format!("PV{}_{m}", lat + 1))?;
        }
        let pv_key = |m: usize| format!("PV{}_{m}", lat + 1);
        let pp = ProjParams {
            pv: &pv,
            pv_key: &pv_key,
            crval_lat: crval.1,
        };
        let proj = Projection::new(code, &pp).map_err(|(key, msg)| {
            let key = if key == "CRVAL2" {
                format!("CRVAL{}", lat + 1)
            } else {
                key
            };
            k.err(&key, msg)
        })?;
        let rot = Rotation::new(&proj, pv[1], crval, lonpole, latpole)
            .map_err(|m| k.err(&format!("CRVAL{}", lat + 1), m))?;
        let cd_inv = [
            [cd[1][1] / det, -cd[0][1] / det],
            [-cd[1][0] / det, cd[0][0] / det],
        ];

        let sip = if sip { Some(read_sip(&k)?) } else { None };
        let spectral = spectral_axis(&k, &ctypes, &m, &shape, (lon, lat))?;

        let wcs = ImageWcs {
            file: h.file_arc(),
            hdu: h.hdu(),
            lon_axis: lon,
            lat_axis: lat,
            frame,
            ctypes: (ctypes[lon].clone(), ctypes[lat].clone()),
            proj,
            rot,
            sip,
            crpix,
            cd,
            cd_inv,
            spectral,
        };
        Ok(wcs)
    }

    /// 0-based indices of the two celestial axes in file order: `(first, second)`; the
    /// pixel coordinates of [`ImageWcs::pixel_to_sky`] are along these axes.
    pub fn celestial_axes(&self) -> (usize, usize) {
        (
            self.lon_axis.min(self.lat_axis),
            self.lon_axis.max(self.lat_axis),
        )
    }

    /// 0-based indices of the longitude and the latitude axis.
    pub fn lon_lat_axes(&self) -> (usize, usize) {
        (self.lon_axis, self.lat_axis)
    }

    /// The frame of the celestial axes.
    pub fn frame(&self) -> Frame {
        self.frame
    }

    /// The projection code (`TAN`, `SIN`, …).
    pub fn projection(&self) -> &str {
        self.proj.code()
    }

    /// `CTYPE` of the longitude and latitude axes.
    pub fn celestial_ctypes(&self) -> (&str, &str) {
        (&self.ctypes.0, &self.ctypes.1)
    }

    /// Whether SIP distortion is applied.
    pub fn has_sip(&self) -> bool {
        self.sip.is_some()
    }

    /// The linear spectral axis, if any.
    pub fn spectral(&self) -> Option<&SpectralAxis> {
        self.spectral.as_ref()
    }

    /// Pixel scales (deg) along the first and second celestial pixel axes: the norms of the
    /// columns of the linear matrix, i.e. astropy's `proj_plane_pixel_scales` of the
    /// celestial WCS.
    pub fn pixel_scales(&self) -> (f64, f64) {
        let col = |j: usize| (self.cd[0][j].powi(2) + self.cd[1][j].powi(2)).sqrt();
        let (s_lon, s_lat) = (col(0), col(1));
        if self.lon_axis < self.lat_axis {
            (s_lon, s_lat)
        } else {
            (s_lat, s_lon)
        }
    }

    /// The geometric-mean pixel scale (deg): `sqrt(|det CD|)`.
    pub fn pixel_scale_deg(&self) -> f64 {
        (self.cd[0][0] * self.cd[1][1] - self.cd[0][1] * self.cd[1][0])
            .abs()
            .sqrt()
    }

    fn to_lonlat_order(&self, x: f64, y: f64) -> (f64, f64) {
        if self.lon_axis < self.lat_axis {
            (x, y)
        } else {
            (y, x)
        }
    }

    fn native_of_lonlat_pixel(&self, pl: f64, pt: f64) -> Option<(f64, f64)> {
        if !(pl.is_finite() && pt.is_finite()) {
            return None;
        }
        let (pl, pt) = match &self.sip {
            Some(sip) => {
                let (u, v) = sip.forward(pl - self.crpix.0, pt - self.crpix.1);
                (u + self.crpix.0, v + self.crpix.1)
            }
            None => (pl, pt),
        };
        let (u, v) = (pl - self.crpix.0, pt - self.crpix.1);
        let x = self.cd[0][0] * u + self.cd[0][1] * v;
        let y = self.cd[1][0] * u + self.cd[1][1] * v;
        let (phi, theta) = self.proj.x2s(x, y)?;
        let (lon, lat) = self.rot.to_celestial(phi, theta);
        (lon.is_finite() && lat.is_finite()).then_some((lon, lat))
    }

    /// Pixel (1-based FITS coordinates along the first and second celestial axes) →
    /// coordinates in the image's own frame (degrees; Galactic l, b for GLON/GLAT axes).
    pub fn pixel_to_native(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (pl, pt) = self.to_lonlat_order(x, y);
        self.native_of_lonlat_pixel(pl, pt)
    }

    /// Coordinates in the image's own frame (degrees) → pixel (1-based, along the first and
    /// second celestial axes).
    pub fn native_to_pixel(&self, lon: f64, lat: f64) -> Option<(f64, f64)> {
        if !(lon.is_finite() && lat.is_finite()) || lat.abs() > 90.0 {
            return None;
        }
        let (phi, theta) = self.rot.to_native(lon, lat);
        let (x, y) = self.proj.s2x(phi, theta)?;
        let mut pl = self.cd_inv[0][0] * x + self.cd_inv[0][1] * y + self.crpix.0;
        let mut pt = self.cd_inv[1][0] * x + self.cd_inv[1][1] * y + self.crpix.1;
        if let Some(sip) = &self.sip {
            let (u, v) = sip.inverse(pl - self.crpix.0, pt - self.crpix.1)?;
            pl = u + self.crpix.0;
            pt = v + self.crpix.1;
        }
        if !(pl.is_finite() && pt.is_finite()) {
            return None;
        }
        Some(self.to_lonlat_order(pl, pt))
    }

    /// Pixel (1-based FITS coordinates along the first and second celestial axes, i.e.
    /// usually `NAXIS1`, `NAXIS2`) → ICRS (RA, Dec) in degrees, RA in [0, 360).
    /// `None` where the projection is undefined.
    pub fn pixel_to_sky(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (lon, lat) = self.pixel_to_native(x, y)?;
        Some(match self.frame {
            Frame::Icrs => (lon, lat),
            Frame::Galactic => rotate(&GAL_TO_ICRS, lon, lat, false),
        })
    }

    /// ICRS (RA, Dec) in degrees → pixel (1-based, along the first and second celestial
    /// axes). `None` where the projection is undefined (e.g. the far side for TAN).
    pub fn sky_to_pixel(&self, ra: f64, dec: f64) -> Option<(f64, f64)> {
        if !(ra.is_finite() && dec.is_finite()) || dec.abs() > 90.0 {
            return None;
        }
        let (lon, lat) = match self.frame {
            Frame::Icrs => (ra, dec),
            Frame::Galactic => rotate(&GAL_TO_ICRS, ra, dec, true),
        };
        self.native_to_pixel(lon, lat)
    }

    /// The file the WCS was read from.
    pub fn file(&self) -> &std::path::Path {
        &self.file
    }

    /// The HDU the WCS was read from.
    pub fn hdu(&self) -> usize {
        self.hdu
    }
}

/// Rotates (lon, lat) by `m` (or its transpose when `inverse`).
fn rotate(m: &[[f64; 3]; 3], lon: f64, lat: f64, inverse: bool) -> (f64, f64) {
    let (sl, cl) = lon.to_radians().sin_cos();
    let (sb, cb) = lat.to_radians().sin_cos();
    let v = [cb * cl, cb * sl, sb];
    let mut r = [0.0; 3];
    for (i, ri) in r.iter_mut().enumerate() {
        for (j, vj) in v.iter().enumerate() {
            *ri += if inverse { m[j][i] } else { m[i][j] } * vj;
        }
    }
    let lon = r[1].atan2(r[0]).to_degrees().rem_euclid(360.0);
    let lat = r[2].atan2(r[0].hypot(r[1])).to_degrees();
    (lon, lat)
}

/// Checks `RADESYS`/`EQUINOX` of equatorial axes: ICRS or FK5 J2000 only.
fn equatorial_frame(k: &Keys<'_>) -> Result<(), ImageError> {
    let radesys = k.str("RADESYS")?.or(k.str("RADECSYS")?);
    let equinox = match k.f64("EQUINOX")? {
        Some(e) => Some(("EQUINOX", e)),
        None => k.f64("EPOCH")?.map(|e| ("EPOCH", e)),
    };
    let radesys = match radesys.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => r.to_ascii_uppercase(),
        _ => match equinox {
            None => "ICRS".to_string(),
            Some((_, e)) if e < 1984.0 => "FK4".to_string(),
            Some(_) => "FK5".to_string(),
        },
    };
    match radesys.as_str() {
        "ICRS" => Ok(()),
        "FK5" => match equinox {
            Some((key, e)) if (e - 2000.0).abs() > 1e-6 => Err(k.err(
                key,
                format!("FK5 with equinox {e} is not supported (only J2000)"),
            )),
            _ => Ok(()),
        },
        other => Err(k.err(
            if k.h.contains("RADESYS") {
                "RADESYS"
            } else {
                equinox.map_or("RADESYS", |e| e.0)
            },
            format!("reference system {other} is not supported (only ICRS and FK5 J2000)"),
        )),
    }
}

fn read_sip(k: &Keys<'_>) -> Result<Sip, ImageError> {
    let read = |name: &str, required: bool| -> Result<Vec<(u32, u32, f64)>, ImageError> {
        let order_key = format!("{name}_ORDER");
        let order = match k.h.get_i64(&order_key)? {
            Some(o) if (0..=9).contains(&o) => o as u32,
            Some(o) => return Err(k.err(&order_key, format!("SIP order {o} out of range 0..9"))),
            None if required => return Err(k.err(&order_key, "missing for a -SIP projection")),
            None => return Ok(Vec::new()),
        };
        let mut terms = Vec::new();
        for p in 0..=order {
            for q in 0..=(order - p) {
                if let Some(c) = k.f64(&format!("{name}_{p}_{q}"))?
                    && c != 0.0
                {
                    terms.push((p, q, c));
                }
            }
        }
        Ok(terms)
    };
    Ok(Sip {
        a: read("A", true)?,
        b: read("B", true)?,
        ap: read("AP", false)?,
        bp: read("BP", false)?,
    })
}

fn spectral_axis(
    k: &Keys<'_>,
    ctypes: &[String],
    m: &[Vec<f64>],
    shape: &[usize],
    celestial: (usize, usize),
) -> Result<Option<SpectralAxis>, ImageError> {
    for (s, ct) in ctypes.iter().enumerate() {
        if s == celestial.0 || s == celestial.1 {
            continue;
        }
        let Some(kind) = spectral_kind(ct) else {
            continue;
        };
        for (j, row) in m.iter().enumerate() {
            if j != s && (m[s][j] != 0.0 || row[s] != 0.0) {
                let (a, b) = if m[s][j] != 0.0 { (s, j) } else { (j, s) };
                return Err(k.err(
                    &format!("PC{}_{}", a + 1, b + 1),
                    format!("the spectral axis {} is coupled to axis {}", s + 1, j + 1),
                ));
            }
        }
        let unit_key = format!("CUNIT{}", s + 1);
        let unit = k.str(&unit_key)?.unwrap_or_default().trim().to_string();
        let to_si = spectral_unit(kind, &unit).ok_or_else(|| {
            k.err(
                &unit_key,
                format!("unsupported unit '{unit}' for a {ct} axis"),
            )
        })?;
        let cdelt = m[s][s];
        if !(cdelt.is_finite() && cdelt != 0.0) {
            return Err(k.err(&format!("CDELT{}", s + 1), "the spectral increment is zero"));
        }
        let rest_frequency_hz = match k.f64("RESTFRQ")?.or(k.f64("RESTFREQ")?) {
            Some(f) if f > 0.0 => Some(f),
            _ => k
                .f64("RESTWAV")?
                .filter(|w| *w > 0.0)
                .map(|w| C_M_PER_S / w),
        };
        return Ok(Some(SpectralAxis {
            axis: s + 1,
            ctype: ct.clone(),
            kind,
            unit,
            crval: k.f64(&format!("CRVAL{}", s + 1))?.unwrap_or(0.0),
            cdelt,
            crpix: k.f64(&format!("CRPIX{}", s + 1))?.unwrap_or(0.0),
            len: shape.get(s).copied().unwrap_or(1),
            to_si,
            rest_frequency_hz,
        }));
    }
    Ok(None)
}
