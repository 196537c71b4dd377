//! `tessera load-images`: registers FITS images and cubes in the data root's ObsCore
//! registry ([`crate::obscore`]).
//!
//! Every image HDU (primary or extension, NAXIS ≥ 2) with a celestial WCS becomes one
//! dataset: footprint polygon, centre, field of view and pixel scale from the WCS
//! (`tessera_storage::image`), spectral coverage from a WAVE/AWAV/FREQ/VRAD/VOPT axis,
//! time from `MJD-OBS` or `DATE-OBS` plus `EXPTIME`, target/facility/instrument from
//! `OBJECT`/`TELESCOP`/`INSTRUME`. The files are copied (hard-linked when possible) into
//! `ROOT/images/<collection>/` so that the data root is self-contained and SODA reads only
//! files under it.
//!
//! Every file is checked before anything is registered. A bad file (broken header, unknown
//! projection, data shorter than the header says) is an error naming it; with
//! `skip_bad` it is reported in [`ImageLoadReport::skipped`] and the others are registered.
//! An HDU without celestial WCS in a file with other, usable HDUs is skipped with a note.

use std::path::{Path, PathBuf};

use tessera_storage::image::{self, ImageHdu, ImageWcs, SpectralKind};

use crate::error::{Error, Result};
use crate::obscore::{self, ObsRow};

/// What to register.
#[derive(Debug, Clone)]
pub struct ImageLoadOptions {
    /// Files or directories (searched recursively for `.fits`, `.fit`, `.fts`).
    pub inputs: Vec<PathBuf>,
    /// The data root (local directory).
    pub root: PathBuf,
    /// ObsCore `obs_collection`.
    pub collection: String,
    /// Report bad files and go on instead of failing.
    pub skip_bad: bool,
    /// ObsCore `calib_level` of the datasets.
    pub calib_level: i32,
}

/// What a registration did.
#[derive(Debug, Clone, Default)]
pub struct ImageLoadReport {
    /// Datasets registered (image HDUs).
    pub registered: usize,
    /// Files or HDUs left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Rows in the registry afterwards.
    pub total: usize,
}

fn collect(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
                    .map_err(|e| Error::io(&d, e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                entries.sort();
                for e in entries {
                    if e.is_dir() {
                        stack.push(e);
                    } else if e.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                        matches!(x.to_ascii_lowercase().as_str(), "fits" | "fit" | "fts")
                    }) {
                        out.push(e);
                    }
                }
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::Usage(format!("{} does not exist", p.display())));
        }
    }
    Ok(out)
}

/// Days since MJD 0 of a FITS `DATE-OBS` (`YYYY-MM-DD[Thh:mm:ss[.sss]]`).
pub fn iso_to_mjd(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), then MJD 0 = 1858-11-17.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days_since_1970 = era * 146_097 + doe - 719_468;
    let mut mjd = days_since_1970 as f64 + 40_587.0;
    if let Some(t) = time {
        let t = t.trim_end_matches('Z');
        let mut parts = t.split(':');
        let h: f64 = parts.next()?.parse().ok()?;
        let mi: f64 = parts.next().unwrap_or("0").parse().ok()?;
        let se: f64 = parts.next().unwrap_or("0").parse().ok()?;
        mjd += (h * 3600.0 + mi * 60.0 + se) / 86_400.0;
    }
    Some(mjd)
}

fn header_str(h: &image::Header, k: &str) -> Option<String> {
    h.get_str(k)
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn header_f64(h: &image::Header, k: &str) -> Option<f64> {
    h.get_f64(k).ok().flatten().filter(|v| v.is_finite())
}

/// The ObsCore row of one image HDU (`path` relative to the data root).
fn row(
    hdu: &ImageHdu,
    wcs: &ImageWcs,
    opts: &ImageLoadOptions,
    rel: &str,
    obs_id: String,
    size: u64,
) -> std::result::Result<ObsRow, String> {
    let fp = image::footprint(hdu, wcs).map_err(|e| e.to_string())?;
    let h = &hdu.header;
    let (a, b) = wcs.celestial_axes();
    let spec = wcs.spectral();
    let cube = spec.is_some_and(|s| s.len > 1);
    let (em_min, em_max) = match spec.and_then(|s| s.coverage_m()) {
        Some((lo, hi)) => (Some(lo), Some(hi)),
        None => (None, None),
    };
    let t_min =
        header_f64(h, "MJD-OBS").or_else(|| header_str(h, "DATE-OBS").and_then(|d| iso_to_mjd(&d)));
    let t_exptime = header_f64(h, "EXPTIME").or_else(|| header_f64(h, "EXPOSURE"));
    let t_max = t_min.map(|t| t + t_exptime.unwrap_or(0.0) / 86_400.0);
    let did = format!("ivo://tessera/{}?{}", opts.collection, obs_id);
    let enc: String = url_encode(&did);
    Ok(ObsRow {
        dataproduct_type: if cube { "cube" } else { "image" }.into(),
        calib_level: opts.calib_level,
        obs_collection: opts.collection.clone(),
        obs_id,
        obs_publisher_did: did,
        access_url: format!("/datalink/links?ID={enc}"),
        access_format: "application/x-votable+xml;content=datalink".into(),
        access_estsize: (size / 1024) as i64,
        target_name: header_str(h, "OBJECT"),
        s_ra: fp.center.0,
        s_dec: fp.center.1,
        s_fov: fp.fov_deg,
        s_region: fp.polygon.iter().flat_map(|(r, d)| [*r, *d]).collect(),
        s_resolution: Some(fp.pixel_scale_deg * 3600.0),
        s_xel1: hdu.shape[a] as i64,
        s_xel2: hdu.shape[b] as i64,
        t_min,
        t_max,
        t_exptime,
        em_min,
        em_max,
        em_xel: Some(spec.map_or(1, |s| s.len as i64)),
        em_ucd: spec.map(|s| {
            match s.kind {
                SpectralKind::Freq => "em.freq",
                SpectralKind::Vrad | SpectralKind::Vopt => "spect.dopplerVeloc",
                SpectralKind::Wave | SpectralKind::Awav => "em.wl",
            }
            .to_string()
        }),
        o_ucd: Some("phot.count".into()),
        facility_name: header_str(h, "TELESCOP"),
        instrument_name: header_str(h, "INSTRUME"),
        path: rel.to_string(),
        hdu: hdu.index as i32,
    })
}

fn url_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Reads one file into rows (path relative to the root given as `rel`).
fn file_rows(
    path: &Path,
    rel: &str,
    opts: &ImageLoadOptions,
    skipped: &mut Vec<(PathBuf, String)>,
) -> std::result::Result<Vec<ObsRow>, String> {
    let hdus = image::read_image_hdus(path).map_err(|e| e.to_string())?;
    if hdus.is_empty() {
        return Err(format!("{}: no image HDU (NAXIS ≥ 2)", path.display()));
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    let many = hdus.len() > 1;
    let mut rows = Vec::new();
    let mut first_err = None;
    for hdu in &hdus {
        let obs_id = if many {
            format!("{stem}#{}", hdu.index)
        } else {
            stem.clone()
        };
        let r = ImageWcs::from_header(&hdu.header)
            .map_err(|e| e.to_string())
            .and_then(|w| row(hdu, &w, opts, rel, obs_id, size));
        match r {
            Ok(r) => rows.push(r),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e.clone());
                }
                if many {
                    skipped.push((path.to_path_buf(), format!("HDU {}: {e}", hdu.index)));
                }
            }
        }
    }
    if rows.is_empty() {
        return Err(first_err.unwrap_or_else(|| format!("{}: no usable image HDU", path.display())));
    }
    Ok(rows)
}

/// Registers the images.
pub fn load_images(opts: &ImageLoadOptions) -> Result<ImageLoadReport> {
    if !opts
        .collection
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || opts.collection.is_empty()
    {
        return Err(Error::Usage(format!(
            "collection name `{}` must be letters, digits, - or _",
            opts.collection
        )));
    }
    std::fs::create_dir_all(&opts.root).map_err(|e| Error::io(&opts.root, e))?;
    let root = opts
        .root
        .canonicalize()
        .map_err(|e| Error::io(&opts.root, e))?;
    let files = collect(&opts.inputs)?;
    if files.is_empty() {
        return Err(Error::Usage("no FITS files among the inputs".into()));
    }
    let dest_dir = root.join("images").join(&opts.collection);
    let mut report = ImageLoadReport::default();
    let mut rows = Vec::new();
    let mut plan: Vec<(PathBuf, PathBuf)> = Vec::new();
    for f in &files {
        let canon = f.canonicalize().map_err(|e| Error::io(f, e))?;
        let name = canon
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "image.fits".into());
        let (dest, rel) = if canon.starts_with(&root) {
            let rel = canon
                .strip_prefix(&root)
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or(name.clone());
            (canon.clone(), rel)
        } else {
            (
                dest_dir.join(&name),
                format!("images/{}/{name}", opts.collection),
            )
        };
        match file_rows(&canon, &rel, opts, &mut report.skipped) {
            Ok(r) => {
                rows.extend(r);
                if dest != canon {
                    plan.push((canon, dest));
                }
            }
            Err(e) => {
                if opts.skip_bad {
                    tracing::warn!("skipping {}: {e}", f.display());
                    report.skipped.push((f.clone(), e));
                } else {
                    return Err(Error::BadInput {
                        file: f.display().to_string(),
                        place: "header".into(),
                        column: None,
                        message: format!(
                            "{e} (nothing was registered; pass --skip-bad to register the other files)"
                        ),
                    });
                }
            }
        }
    }
    // Files first, then the registry: a crash in between leaves unregistered copies, never
    // rows without files.
    if !plan.is_empty() {
        std::fs::create_dir_all(&dest_dir).map_err(|e| Error::io(&dest_dir, e))?;
    }
    for (src, dest) in &plan {
        let tmp = dest.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(src, &tmp).is_err() {
            std::fs::copy(src, &tmp).map_err(|e| Error::io(dest, e))?;
        }
        std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
    }
    report.registered = rows.len();
    report.total = obscore::register(&root, &rows)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mjd_of_dates() {
        assert_eq!(iso_to_mjd("1858-11-17"), Some(0.0));
        assert_eq!(iso_to_mjd("2000-01-01T12:00:00"), Some(51_544.5));
        let v = iso_to_mjd("2006-04-13T06:32:38.944").unwrap();
        assert!((v - 53_838.272_673_4).abs() < 1e-6, "{v}");
        assert_eq!(iso_to_mjd("13/04/06"), None);
    }
}
