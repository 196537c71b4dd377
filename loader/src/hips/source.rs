//! The input images of a HiPS build: the collection's rows of the ObsCore registry, each
//! opened as a memory-mapped pixel plane with its WCS and footprint.
//!
//! Pixels are read straight from the map (big-endian, converted per read: `BSCALE`/`BZERO`
//! applied, `BLANK` and NaN → NaN), so a build's memory does not grow with the input and no
//! image is decoded twice. A cube contributes its first plane: index 0 on every axis that is
//! not celestial.

use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, Int32Array, RecordBatch, StringArray};
use memmap2::Mmap;
use tessera_storage::image::{self, Footprint, ImageHdu, ImageWcs};

use crate::error::{Error, Result};
use crate::obscore;

/// One registered image HDU, ready to sample.
pub(crate) struct Source {
    /// The FITS file.
    pub(crate) file: PathBuf,
    /// The HDU index in it.
    pub(crate) hdu: usize,
    /// Its WCS (pixel coordinates along the two celestial axes).
    pub(crate) wcs: ImageWcs,
    /// The celestial plane (first plane of a cube).
    pub(crate) plane: Plane,
    /// The sky outline, when the WCS gives one (not for all-sky projections).
    pub(crate) footprint: Option<Footprint>,
    /// Whether the HDU has more than one plane (a cube: only the first is used).
    pub(crate) cube: bool,
    /// `BITPIX` of the input.
    pub(crate) bitpix: i32,
    /// `BUNIT`, if any.
    pub(crate) bunit: Option<String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file)
            .field("hdu", &self.hdu)
            .field("na", &self.plane.na)
            .field("nb", &self.plane.nb)
            .finish()
    }
}

impl Source {
    /// `file, HDU n` for messages.
    pub(crate) fn name(&self) -> String {
        format!("{}, HDU {}", self.file.display(), self.hdu)
    }
}

/// What the registry says about the collection (for `properties`).
#[derive(Debug, Clone, Default)]
pub(crate) struct CollectionInfo {
    /// Earliest `t_min` (MJD).
    pub(crate) t_min: Option<f64>,
    /// Latest `t_max` (MJD).
    pub(crate) t_max: Option<f64>,
    /// Smallest `em_min` (m).
    pub(crate) em_min: Option<f64>,
    /// Largest `em_max` (m).
    pub(crate) em_max: Option<f64>,
}

/// The pixel encodings of FITS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    U8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

/// The celestial plane of an image HDU, memory-mapped.
pub(crate) struct Plane {
    map: Mmap,
    /// Byte offset of the data unit in the map.
    offset: usize,
    /// Bytes of the data unit.
    len: usize,
    pub(crate) kind: Kind,
    /// Pixels along the first and second celestial axes.
    pub(crate) na: usize,
    pub(crate) nb: usize,
    /// Element strides of the two celestial axes.
    sa: usize,
    sb: usize,
    scale: Scaling,
}

/// `BSCALE`, `BZERO` and `BLANK` of an integer image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scaling {
    bscale: f64,
    bzero: f64,
    blank: Option<i64>,
}

/// Decoding one pixel of a given encoding (monomorphised per encoding so that the sampling
/// loops carry no per-pixel dispatch).
pub(crate) trait Decode {
    /// The physical value of element `idx` of `data` (NaN for blank pixels and for an index
    /// outside the data, which the callers never pass).
    fn value(data: &[u8], idx: usize, s: &Scaling) -> f64;
}

macro_rules! int_decoder {
    ($name:ident, $t:ty, $n:expr) => {
        pub(crate) struct $name;
        impl Decode for $name {
            #[inline(always)]
            fn value(data: &[u8], idx: usize, s: &Scaling) -> f64 {
                let Some(b) = data.get(idx * $n..idx * $n + $n) else {
                    return f64::NAN;
                };
                let mut a = [0u8; $n];
                a.copy_from_slice(b);
                let raw = <$t>::from_be_bytes(a);
                if s.blank == Some(raw as i64) {
                    return f64::NAN;
                }
                s.bzero + s.bscale * raw as f64
            }
        }
    };
}

macro_rules! float_decoder {
    ($name:ident, $t:ty, $n:expr) => {
        pub(crate) struct $name;
        impl Decode for $name {
            #[inline(always)]
            fn value(data: &[u8], idx: usize, s: &Scaling) -> f64 {
                let Some(b) = data.get(idx * $n..idx * $n + $n) else {
                    return f64::NAN;
                };
                let mut a = [0u8; $n];
                a.copy_from_slice(b);
                // NaN stays NaN through the scaling.
                s.bzero + s.bscale * f64::from(<$t>::from_be_bytes(a))
            }
        }
    };
}

int_decoder!(DecU8, u8, 1);
int_decoder!(DecI16, i16, 2);
int_decoder!(DecI32, i32, 4);
int_decoder!(DecI64, i64, 8);
float_decoder!(DecF32, f32, 4);
float_decoder!(DecF64, f64, 8);

impl Plane {
    /// The data unit.
    #[inline(always)]
    pub(crate) fn data(&self) -> &[u8] {
        self.map
            .get(self.offset..self.offset + self.len)
            .unwrap_or(&[])
    }

    /// The scaling of the raw values.
    #[inline(always)]
    pub(crate) fn scaling(&self) -> &Scaling {
        &self.scale
    }

    /// Element index of 0-based pixel `(i, j)` along the celestial axes.
    #[inline(always)]
    pub(crate) fn index(&self, i: usize, j: usize) -> usize {
        i * self.sa + j * self.sb
    }

    /// The physical value of 0-based pixel `(i, j)` (NaN when blank).
    pub(crate) fn value(&self, i: usize, j: usize) -> f64 {
        let d = self.data();
        let k = self.index(i, j);
        match self.kind {
            Kind::U8 => DecU8::value(d, k, &self.scale),
            Kind::I16 => DecI16::value(d, k, &self.scale),
            Kind::I32 => DecI32::value(d, k, &self.scale),
            Kind::I64 => DecI64::value(d, k, &self.scale),
            Kind::F32 => DecF32::value(d, k, &self.scale),
            Kind::F64 => DecF64::value(d, k, &self.scale),
        }
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            Error::Internal(format!(
                "{}: column {name} missing or of the wrong type",
                obscore::REGISTRY
            ))
        })
}

fn opt_f64(a: &Float64Array, i: usize) -> Option<f64> {
    (!a.is_null(i))
        .then(|| a.value(i))
        .filter(|v| v.is_finite())
}

/// The image HDUs registered in `collection` under the data root `root`, in registry order,
/// and what the registry knows about their times and wavelengths.
pub(crate) fn registered(
    root: &Path,
    collection: &str,
) -> Result<(Vec<(PathBuf, usize)>, CollectionInfo)> {
    let Some(batch) = obscore::read_registry(root)? else {
        return Err(Error::Usage(format!(
            "{} has no image registry ({}): register images with `tessera load-images` first",
            root.display(),
            obscore::REGISTRY
        )));
    };
    let coll = column::<StringArray>(&batch, "obs_collection")?;
    let path = column::<StringArray>(&batch, obscore::PATH_COLUMN)?;
    let hdu = column::<Int32Array>(&batch, obscore::HDU_COLUMN)?;
    let t_min = column::<Float64Array>(&batch, "t_min")?;
    let t_max = column::<Float64Array>(&batch, "t_max")?;
    let em_min = column::<Float64Array>(&batch, "em_min")?;
    let em_max = column::<Float64Array>(&batch, "em_max")?;
    let mut out = Vec::new();
    let mut info = CollectionInfo::default();
    let mut known = std::collections::BTreeSet::new();
    let fold = |acc: &mut Option<f64>, v: Option<f64>, min: bool| {
        if let Some(v) = v {
            *acc = Some(match *acc {
                Some(a) if min => a.min(v),
                Some(a) => a.max(v),
                None => v,
            });
        }
    };
    for i in 0..batch.num_rows() {
        let c = if coll.is_null(i) { "" } else { coll.value(i) };
        known.insert(c.to_string());
        if c != collection {
            continue;
        }
        out.push((root.join(path.value(i)), hdu.value(i).max(0) as usize));
        fold(&mut info.t_min, opt_f64(t_min, i), true);
        fold(&mut info.t_max, opt_f64(t_max, i), false);
        fold(&mut info.em_min, opt_f64(em_min, i), true);
        fold(&mut info.em_max, opt_f64(em_max, i), false);
    }
    if out.is_empty() {
        let list: Vec<String> = known.into_iter().collect();
        return Err(Error::Usage(format!(
            "no images registered in collection `{collection}` of {} (collections: {})",
            root.display(),
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        )));
    }
    Ok((out, info))
}

/// Opens one registered image HDU: header, WCS, footprint and the memory map of its data.
pub(crate) fn open(file: &Path, hdu_index: usize) -> Result<Source> {
    let hdus = image::read_image_hdus(file)?;
    let Some(hdu) = hdus.into_iter().find(|h| h.index == hdu_index) else {
        return Err(Error::bad(
            file.display().to_string(),
            format!("HDU {hdu_index}"),
            None,
            "no image HDU with this index (was the file replaced after it was registered?)",
        ));
    };
    let wcs = ImageWcs::from_header(&hdu.header)?;
    let plane = map_plane(&hdu, &wcs)?;
    let footprint = image::footprint(&hdu, &wcs).ok();
    let cube = hdu
        .shape
        .iter()
        .enumerate()
        .any(|(k, &n)| n > 1 && !matches!(wcs.celestial_axes(), (a, b) if a == k || b == k));
    let bunit = hdu
        .header
        .get_str("BUNIT")
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Ok(Source {
        file: file.to_path_buf(),
        hdu: hdu.index,
        bitpix: hdu.bitpix,
        wcs,
        plane,
        footprint,
        cube,
        bunit,
    })
}

fn map_plane(hdu: &ImageHdu, wcs: &ImageWcs) -> Result<Plane> {
    let file = hdu.file();
    let (a, b) = wcs.celestial_axes();
    if b >= hdu.shape.len() {
        return Err(Error::bad(
            file.display().to_string(),
            format!("HDU {}", hdu.index),
            None,
            format!(
                "the WCS's celestial axes ({}, {}) are beyond NAXIS = {}",
                a + 1,
                b + 1,
                hdu.shape.len()
            ),
        ));
    }
    let stride = |axis: usize| hdu.shape[..axis].iter().product::<usize>();
    let kind = match hdu.bitpix {
        8 => Kind::U8,
        16 => Kind::I16,
        32 => Kind::I32,
        64 => Kind::I64,
        -32 => Kind::F32,
        _ => Kind::F64,
    };
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    // SAFETY: the map is read-only. Image files under the data root are not modified in
    // place (load-images replaces them by rename); a file truncated by someone else while
    // the build runs would fault, as for any memory-mapped reader.
    let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(file, e))?;
    let offset = usize::try_from(hdu.data_offset).unwrap_or(usize::MAX);
    let len = usize::try_from(hdu.data_len).unwrap_or(usize::MAX);
    if offset.checked_add(len).is_none_or(|end| end > map.len()) {
        return Err(Error::bad(
            file.display().to_string(),
            format!("HDU {}", hdu.index),
            None,
            "the data unit is shorter than the header declares (the file changed?)",
        ));
    }
    Ok(Plane {
        map,
        offset,
        len,
        kind,
        na: hdu.shape[a],
        nb: hdu.shape[b],
        sa: stride(a),
        sb: stride(b),
        scale: Scaling {
            bscale: hdu.bscale,
            bzero: hdu.bzero,
            blank: hdu.blank,
        },
    })
}

/// Up to `budget` finite pixel values of the plane, from whole rows spread evenly over it
/// (whole rows touch few pages of the map).
pub(crate) fn sample_values(plane: &Plane, budget: usize, out: &mut Vec<f32>) {
    let rows = (budget / plane.na.max(1)).clamp(1, plane.nb);
    let step = (plane.nb / rows).max(1);
    let mut j = step / 2;
    while j < plane.nb {
        for i in 0..plane.na {
            let v = plane.value(i, j);
            if v.is_finite() {
                out.push(v as f32);
            }
        }
        j += step;
    }
}
