//! `tessera hips build`: an image HiPS (HiPS 1.0) from the FITS images registered in one
//! collection of a data root, computed as Aladin's Hipsgen computes it (FORMATS.md §3, §5).
//!
//! # What is built
//!
//! * **Order.** The deepest order K follows Hipsgen's rule from the input pixel scale θ
//!   ([`geom::order_for_scale`]: the first HEALPix order whose cells are smaller than the
//!   input pixels, less 9, at least 3). With several images θ is the **finest** of them (so
//!   no input is undersampled; Hipsgen takes one reference image); `order` overrides it.
//! * **Deepest tiles** (512×512, module `sample`): each tile pixel is the centre of its HEALPix
//!   cell at order K + 9, projected into every overlapping image (their WCS: SIP, ZPN,
//!   Galactic axes …) and sampled bilinearly; overlapping images are averaged; NaN where no
//!   image covers a pixel. The tiles to compute come from the images' footprint polygons
//!   (cdshealpix polygon coverage), or, for an image without a polygon outline (all-sky
//!   projections), from its pixel grid hashed at order K plus the neighbouring tiles.
//! * **Lower orders**: each pixel the mean of the non-blank pixels of its 2×2 block in the
//!   four children (Hipsgen's default for numeric data), down to order 0.
//! * **Tile files** (`NorderK/DirD/NpixN.ext`): FITS (`BITPIX = −32`, NaN blank, an HPX WCS
//!   in the header, rows bottom-up), PNG (grey + alpha, blank transparent) and JPEG (grey,
//!   quality 95, blank black), as asked; pixel layout in [`geom`], encodings in [`encode`].
//!   PNG and JPEG map the pixel cut through the chosen [`Stretch`] to grey levels 1…255.
//!   The cut is `cut` or the 0.5 and 99.9 percentiles of (a row sample of) the input
//!   pixels, close to what Hipsgen picks automatically on the test images.
//! * **`Norder3/Allsky.{fits,png,jpg}`**: the 768 tiles of order 3 in a 27 × 29 mosaic,
//!   each reduced to 64×64 by taking every 8th pixel (as Hipsgen does).
//! * **`Moc.fits`**: the coverage (non-blank pixels of the deepest tiles) at order
//!   `max(K, 7)` as a NUNIQ MOC.
//! * **`properties`**: every mandatory HiPS 1.0 key, and the cut, data range, initial view,
//!   sky fraction, times and wavelengths the registry knows.
//!
//! **Cubes** contribute their first plane (index 0 on every non-celestial axis); the
//! `obs_description` of `properties` says so.
//!
//! # Publishing
//!
//! Everything is written into a hidden sibling of the output directory
//! (`.<id>.tessera-staging-<pid>`), `properties` last; the staging directory then replaces
//! the output with one `renameat2(RENAME_EXCHANGE)` (two renames where the file system
//! lacks it) and the previous version is deleted. An interrupted build leaves the previous
//! HiPS intact; its staging directory is removed by the next build of the same id.
//!
//! # Parallelism and memory
//!
//! The tile tree is built depth-first on rayon's pool: a tile's four children are computed
//! in parallel, written, averaged into their parent and dropped, so memory holds a few tiles
//! per thread and level, whatever the input size. Input pixels are read from memory maps
//! (module `source`).
//!
//! # Written by hand
//!
//! The FITS tiles (26 cards and a float array; the workspace has no FITS writer), the
//! tile geometry on top of cdshealpix's projection plane, and the resampling. cdshealpix
//! (hashing, polygon coverage, deprojection), `moc` (MOC FITS), `png` and `jpeg-encoder` do
//! the rest.

pub mod encode;
pub mod geom;
mod moc;
pub(crate) mod sample;
pub(crate) mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use cdshealpix::nested;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use encode::GreyMap;
pub use encode::Stretch;
use geom::{MAX_ORDER, MIN_ORDER, TILE_WIDTH, TileGeom};
use source::{CollectionInfo, Source};

use crate::error::{Error, Result};

/// The tile encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TileFormat {
    /// PNG, grey + alpha.
    Png,
    /// JPEG, grey.
    Jpeg,
    /// FITS, BITPIX −32.
    Fits,
}

impl TileFormat {
    /// Parses a comma-separated list (`fits,png,jpeg`; `jpg` is accepted).
    pub fn parse_list(s: &str) -> Result<Vec<TileFormat>> {
        let mut out = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let f = match w.to_ascii_lowercase().as_str() {
                "fits" => TileFormat::Fits,
                "png" => TileFormat::Png,
                "jpeg" | "jpg" => TileFormat::Jpeg,
                _ => {
                    return Err(Error::Usage(format!(
                        "unknown tile format `{w}` (expected fits, png or jpeg)"
                    )));
                }
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if out.is_empty() {
            return Err(Error::Usage("no tile format given".into()));
        }
        Ok(out)
    }

    /// The word of `hips_tile_format`.
    pub fn word(self) -> &'static str {
        match self {
            TileFormat::Png => "png",
            TileFormat::Jpeg => "jpeg",
            TileFormat::Fits => "fits",
        }
    }

    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            TileFormat::Png => "png",
            TileFormat::Jpeg => "jpg",
            TileFormat::Fits => "fits",
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct HipsBuildOptions {
    /// The data root holding the image registry.
    pub root: PathBuf,
    /// The ObsCore collection whose images make the HiPS.
    pub collection: String,
    /// The HiPS directory (usually `ROOT/hips/<id>`); its name is the HiPS id.
    pub out: PathBuf,
    /// Tile encodings (at least one).
    pub formats: Vec<TileFormat>,
    /// PNG/JPEG transfer function.
    pub stretch: Stretch,
    /// PNG/JPEG pixel cut `(min, max)`; default: percentiles of the input pixels.
    pub cut: Option<(f64, f64)>,
    /// Deepest order (3…20); default: from the finest input pixel scale.
    pub order: Option<u8>,
    /// `obs_title`; default from the collection.
    pub title: Option<String>,
    /// `creator_did`; default `ivo://tessera/P/<id>`.
    pub creator_did: Option<String>,
    /// Draw a progress bar on stderr (only on a terminal).
    pub progress: bool,
}

impl HipsBuildOptions {
    /// Options with the defaults: FITS and PNG tiles, linear stretch, automatic cut and
    /// order.
    pub fn new(root: impl Into<PathBuf>, collection: &str, out: impl Into<PathBuf>) -> Self {
        HipsBuildOptions {
            root: root.into(),
            collection: collection.to_string(),
            out: out.into(),
            formats: vec![TileFormat::Fits, TileFormat::Png],
            stretch: Stretch::Linear,
            cut: None,
            order: None,
            title: None,
            creator_did: None,
            progress: false,
        }
    }
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct HipsReport {
    /// The published HiPS directory.
    pub out: PathBuf,
    /// The deepest order.
    pub order: u8,
    /// Image HDUs used.
    pub images: usize,
    /// Input pixels (celestial plane of each image).
    pub input_pixels: u64,
    /// Tiles written per order, 0…K.
    pub tiles: Vec<usize>,
    /// The PNG/JPEG pixel cut.
    pub cut: (f64, f64),
    /// Smallest and largest value of the deepest tiles.
    pub data_range: (f64, f64),
    /// `moc_sky_fraction`.
    pub sky_fraction: f64,
    /// Notes for the user (order override, cubes …).
    pub warnings: Vec<String>,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// The fractions of the sorted sample used for the automatic cut.
const CUT_PERCENTILES: (f64, f64) = (0.5, 99.9);
/// Input pixels sampled for the automatic cut.
const CUT_SAMPLE: usize = 1 << 20;
/// The order of the Allsky files.
const ALLSKY_ORDER: u8 = 3;
/// Allsky thumbnail width.
const THUMB: usize = 64;
/// The MOC is written at `max(K, MOC_MIN_ORDER)`.
const MOC_MIN_ORDER: u8 = 7;

/// Builds the image HiPS of `opts.collection` into `opts.out`.
pub fn build_image_hips(opts: &HipsBuildOptions) -> Result<HipsReport> {
    let t0 = Instant::now();
    let id = hips_id(&opts.out)?;
    if opts.formats.is_empty() {
        return Err(Error::Usage("no tile format given".into()));
    }
    if let Some((lo, hi)) = opts.cut
        && !(lo.is_finite() && hi.is_finite() && lo < hi)
    {
        return Err(Error::Usage(format!(
            "--cut {lo},{hi}: MIN must be below MAX, both finite"
        )));
    }
    if let Some(k) = opts.order
        && !(MIN_ORDER..=MAX_ORDER).contains(&k)
    {
        return Err(Error::Usage(format!(
            "--order {k}: must be between {MIN_ORDER} and {MAX_ORDER}"
        )));
    }
    let (entries, info) = source::registered(&opts.root, &opts.collection)?;
    let sources = entries
        .par_iter()
        .map(|(file, hdu)| source::open(file, *hdu))
        .collect::<Result<Vec<Source>>>()?;
    let mut warnings = Vec::new();

    // Order from the finest pixel scale.
    let finest = sources
        .iter()
        .map(|s| s.wcs.pixel_scale_deg())
        .filter(|s| s.is_finite() && *s > 0.0)
        .fold(f64::INFINITY, f64::min);
    let natural = if finest.is_finite() {
        geom::order_for_scale(finest)
    } else {
        MIN_ORDER
    };
    let order = match opts.order {
        Some(k) if k > natural => {
            warnings.push(format!(
                "order {k} oversamples the input (its pixel scale gives order {natural})"
            ));
            k
        }
        Some(k) if k < natural => {
            warnings.push(format!(
                "order {k} undersamples the input (its pixel scale gives order {natural})"
            ));
            k
        }
        Some(k) => k,
        None => natural,
    };
    let cubes = sources.iter().filter(|s| s.cube).count();
    if cubes > 0 {
        warnings.push(format!(
            "{cubes} cube(s): only the first plane of each is used"
        ));
    }

    // The display cut.
    let cut = match opts.cut {
        Some(c) => c,
        None => auto_cut(&sources)?,
    };

    // Which deepest tiles each image touches.
    let mut per_tile: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let coverages: Vec<Vec<u64>> = sources.par_iter().map(|s| coverage(s, order)).collect();
    for (i, tiles) in coverages.into_iter().enumerate() {
        for t in tiles {
            per_tile.entry(t).or_default().push(i);
        }
    }
    let deep: Vec<u64> = per_tile.keys().copied().collect();
    let deep_sources: Vec<Vec<usize>> = per_tile.into_values().collect();

    let staging = Staging::new(&opts.out, &id)?;
    let progress = TileProgress::new(opts.progress, deep.len() as u64);
    let bunit = sources.iter().find_map(|s| s.bunit.clone());
    let ctx = Ctx {
        order,
        moc_order: order.max(MOC_MIN_ORDER),
        deep,
        deep_sources,
        sources: &sources,
        dir: staging.path.clone(),
        formats: opts.formats.clone(),
        grey: GreyMap::new(cut.0, cut.1, opts.stretch),
        bunit,
        counts: (0..=order).map(|_| AtomicUsize::new(0)).collect(),
        bytes: AtomicU64::new(0),
        shared: Mutex::new(Shared {
            range: (f64::INFINITY, f64::NEG_INFINITY),
            moc: Vec::new(),
            thumbs: BTreeMap::new(),
        }),
        progress,
    };
    let roots: Vec<u64> = {
        let mut r: Vec<u64> = ctx
            .deep
            .iter()
            .map(|&n| n >> (2 * u32::from(order)))
            .collect();
        r.dedup();
        r
    };
    roots
        .par_iter()
        .map(|&n| ctx.node(0, n).map(|_| ()))
        .collect::<Result<Vec<()>>>()?;
    ctx.progress.finish();

    let shared = ctx.shared.into_inner().unwrap_or_else(|p| p.into_inner());
    if shared.moc.is_empty() {
        return Err(Error::Usage(format!(
            "the images of collection `{}` cover no HiPS pixel (every sampled pixel is blank)",
            opts.collection
        )));
    }
    // Allsky of order 3.
    let thumbs = shared.thumbs;
    write_allsky(&staging.path, &thumbs, &opts.formats, &ctx.grey, &ctx.bytes)?;
    // MOC.
    let (moc_bytes, sky_fraction) = moc::moc_fits(ctx.moc_order, &shared.moc, &id)
        .map_err(|e| Error::Internal(format!("writing Moc.fits: {e}")))?;
    write_file(&staging.path.join("Moc.fits"), &moc_bytes)?;

    let tiles: Vec<usize> = ctx
        .counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let report = HipsReport {
        out: opts.out.clone(),
        order,
        images: sources.len(),
        input_pixels: sources
            .iter()
            .map(|s| (s.plane.na * s.plane.nb) as u64)
            .sum(),
        tiles,
        cut,
        data_range: shared.range,
        sky_fraction,
        warnings,
        seconds: 0.0,
    };
    let props = properties(
        opts,
        &id,
        &report,
        &sources,
        &info,
        finest,
        ctx.bytes.load(Ordering::Relaxed),
    );
    write_file(&staging.path.join("properties"), props.as_bytes())?;
    staging.publish(&opts.out)?;
    Ok(HipsReport {
        seconds: t0.elapsed().as_secs_f64(),
        ..report
    })
}

/// The HiPS id: the output directory's name.
fn hips_id(out: &Path) -> Result<String> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::Usage(format!(
            "--out {}: the HiPS directory's name (its id) must be letters, digits, '-', '_' or '.', not starting with '.'",
            out.display()
        )));
    }
    Ok(name)
}

/// The automatic cut: percentiles of a row sample of every image.
fn auto_cut(sources: &[Source]) -> Result<(f64, f64)> {
    let per = (CUT_SAMPLE / sources.len().max(1)).max(4096);
    let mut values: Vec<f32> = sources
        .par_iter()
        .map(|s| {
            let mut v = Vec::new();
            source::sample_values(&s.plane, per, &mut v);
            v
        })
        .flatten()
        .collect();
    if values.is_empty() {
        return Err(Error::Usage(format!(
            "every pixel of the images is blank ({} …)",
            sources.first().map(Source::name).unwrap_or_default()
        )));
    }
    values.sort_unstable_by(f32::total_cmp);
    let at = |p: f64| {
        let k = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
        f64::from(values[k.min(values.len() - 1)])
    };
    let (lo, hi) = (at(CUT_PERCENTILES.0), at(CUT_PERCENTILES.1));
    Ok(if hi > lo {
        (round7(lo), round7(hi))
    } else {
        (lo, lo + 1.0)
    })
}

/// `v` rounded to 7 significant digits (for readable `properties`).
fn round7(v: f64) -> f64 {
    format!("{v:.6e}").parse().unwrap_or(v)
}

/// The deepest-order tiles that image `s` may touch.
fn coverage(s: &Source, order: u8) -> Vec<u64> {
    let layer = nested::get(order);
    if let Some(fp) = &s.footprint {
        let verts: Vec<(f64, f64)> = fp
            .polygon
            .iter()
            .map(|&(ra, dec)| (ra.to_radians(), dec.to_radians()))
            .collect();
        if verts.len() >= 3 {
            return layer.polygon_coverage(&verts, true).flat_iter().collect();
        }
    }
    // No polygon outline: hash a grid of pixels (a quarter of a tile apart at most) and add
    // the neighbours of every tile hit.
    let scale = s.wcs.pixel_scale_deg().max(1e-12);
    let tile_deg = geom::tile_pixel_deg(order) * TILE_WIDTH as f64;
    let step = ((tile_deg / scale) / 4.0).clamp(1.0, 1e6);
    let mut hit = std::collections::BTreeSet::new();
    let (na, nb) = (s.plane.na as f64, s.plane.nb as f64);
    let mut y = 0.5;
    while y <= nb + 0.5 {
        let mut x = 0.5;
        while x <= na + 0.5 {
            if let Some((ra, dec)) = s.wcs.pixel_to_sky(x, y) {
                hit.insert(layer.hash(ra.to_radians(), dec.to_radians()));
            }
            x = if x < na + 0.5 {
                (x + step).min(na + 0.5)
            } else {
                x + 1.0
            };
        }
        y = if y < nb + 0.5 {
            (y + step).min(nb + 0.5)
        } else {
            y + 1.0
        };
    }
    let mut out = std::collections::BTreeSet::new();
    for h in hit {
        out.extend(layer.neighbours(h, true).values_vec());
    }
    out.into_iter().collect()
}

/// State shared by the tile workers.
struct Shared {
    /// Smallest and largest deepest-tile value.
    range: (f64, f64),
    /// MOC cells at `moc_order`.
    moc: Vec<u64>,
    /// The order-3 tiles reduced to 64×64.
    thumbs: BTreeMap<u64, Vec<f32>>,
}

struct Ctx<'a> {
    order: u8,
    moc_order: u8,
    /// The candidate deepest tiles, sorted, and the sources of each.
    deep: Vec<u64>,
    deep_sources: Vec<Vec<usize>>,
    sources: &'a [Source],
    dir: PathBuf,
    formats: Vec<TileFormat>,
    grey: GreyMap,
    bunit: Option<String>,
    counts: Vec<AtomicUsize>,
    bytes: AtomicU64,
    shared: Mutex<Shared>,
    progress: TileProgress,
}

impl Ctx<'_> {
    /// Whether tile `n` of order `k` has a candidate deepest tile below it.
    fn covers(&self, k: u8, n: u64) -> bool {
        let shift = 2 * u32::from(self.order - k);
        let (lo, hi) = (n << shift, (n + 1) << shift);
        let i = self.deep.partition_point(|&d| d < lo);
        i < self.deep.len() && self.deep[i] < hi
    }

    /// Computes and writes tile `n` of order `k` and everything below it; returns its
    /// pixels (`None` when all blank).
    fn node(&self, k: u8, n: u64) -> Result<Option<Vec<f32>>> {
        let tile = if k == self.order {
            let Ok(i) = self.deep.binary_search(&n) else {
                return Ok(None);
            };
            let srcs: Vec<&Source> = self.deep_sources[i]
                .iter()
                .map(|&j| &self.sources[j])
                .collect();
            let t = sample::sample_tile(&TileGeom::new(k, n), &srcs);
            self.progress.tick();
            t
        } else {
            let results: Vec<Result<Option<Vec<f32>>>> = (0..4u64)
                .into_par_iter()
                .map(|q| {
                    let c = 4 * n + q;
                    if self.covers(k + 1, c) {
                        self.node(k + 1, c)
                    } else {
                        Ok(None)
                    }
                })
                .collect();
            let mut children: [Option<Vec<f32>>; 4] = [None, None, None, None];
            for (slot, r) in children.iter_mut().zip(results) {
                *slot = r?;
            }
            children
                .iter()
                .any(Option::is_some)
                .then(|| encode::parent_tile(&children))
        };
        if let Some(t) = &tile {
            self.write_tile(k, n, t)?;
        }
        Ok(tile)
    }

    fn write_tile(&self, k: u8, n: u64, t: &[f32]) -> Result<()> {
        let geom = TileGeom::new(k, n);
        if k == self.order {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &v in t.iter().filter(|v| !v.is_nan()) {
                lo = lo.min(f64::from(v));
                hi = hi.max(f64::from(v));
            }
            let cells = moc_cells(t, k, n, self.moc_order);
            let mut sh = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            sh.range = (sh.range.0.min(lo), sh.range.1.max(hi));
            sh.moc.extend(cells);
        }
        if k == ALLSKY_ORDER {
            let step = TILE_WIDTH / THUMB;
            let thumb: Vec<f32> = (0..THUMB)
                .flat_map(|r| (0..THUMB).map(move |c| t[r * step * TILE_WIDTH + c * step]))
                .collect();
            let mut sh = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            sh.thumbs.insert(n, thumb);
        }
        let dir = self
            .dir
            .join(format!("Norder{k}"))
            .join(format!("Dir{}", geom::dir_of(n)));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for f in &self.formats {
            let path = dir.join(format!("Npix{n}.{}", f.ext()));
            let bytes = match f {
                TileFormat::Fits => encode::fits_tile(&geom, t, self.bunit.as_deref()),
                TileFormat::Png => encode::png(t, TILE_WIDTH, TILE_WIDTH, &self.grey)
                    .map_err(|e| Error::Internal(format!("{}: PNG: {e}", path.display())))?,
                TileFormat::Jpeg => encode::jpeg(t, TILE_WIDTH, TILE_WIDTH, &self.grey)
                    .map_err(|e| Error::Internal(format!("{}: JPEG: {e}", path.display())))?,
            };
            self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            write_file(&path, &bytes)?;
        }
        if let Some(c) = self.counts.get(usize::from(k)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The MOC cells (order `moc_order` ≥ `k`) of the non-blank pixels of tile `n` of order `k`.
fn moc_cells(t: &[f32], k: u8, n: u64, moc_order: u8) -> Vec<u64> {
    let d = u32::from(moc_order - k);
    let per_side = 1usize << d;
    let block = TILE_WIDTH / per_side;
    let mut out = Vec::new();
    for s in 0..(per_side * per_side) as u64 {
        let (bx, by) = geom::deinterleave(s);
        let (r0, c0) = (bx as usize * block, by as usize * block);
        let any = (r0..r0 + block).any(|r| {
            t[r * TILE_WIDTH + c0..r * TILE_WIDTH + c0 + block]
                .iter()
                .any(|v| !v.is_nan())
        });
        if any {
            out.push((n << (2 * d)) + s);
        }
    }
    out
}

/// `Norder3/Allsky.*`: the order-3 tiles, every 8th pixel, in a 27-column mosaic.
fn write_allsky(
    dir: &Path,
    thumbs: &BTreeMap<u64, Vec<f32>>,
    formats: &[TileFormat],
    grey: &GreyMap,
    bytes: &AtomicU64,
) -> Result<()> {
    let n_tiles = 12usize << (2 * ALLSKY_ORDER);
    let cols = (n_tiles as f64).sqrt().floor() as usize;
    let rows = n_tiles.div_ceil(cols);
    let (w, h) = (cols * THUMB, rows * THUMB);
    let mut px = vec![f32::NAN; w * h];
    for (&n, t) in thumbs {
        let (row, col) = (n as usize / cols, n as usize % cols);
        for r in 0..THUMB {
            let dst = (row * THUMB + r) * w + col * THUMB;
            px[dst..dst + THUMB].copy_from_slice(&t[r * THUMB..(r + 1) * THUMB]);
        }
    }
    let d = dir.join(format!("Norder{ALLSKY_ORDER}"));
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    for f in formats {
        let path = d.join(format!("Allsky.{}", f.ext()));
        let data = match f {
            TileFormat::Fits => encode::fits_image(&px, w, h, ALLSKY_ORDER),
            TileFormat::Png => encode::png(&px, w, h, grey)
                .map_err(|e| Error::Internal(format!("{}: PNG: {e}", path.display())))?,
            TileFormat::Jpeg => encode::jpeg(&px, w, h, grey)
                .map_err(|e| Error::Internal(format!("{}: JPEG: {e}", path.display())))?,
        };
        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        write_file(&path, &data)?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// A number for `properties`: shortest text of `v` at 7 significant digits.
fn num(v: f64) -> String {
    format!("{}", round7(v))
}

/// The initial view: the centre and diameter (deg) of a circle about the images; when they
/// are scattered over more than 90°, the circle about the widest image instead (a view of
/// the whole sky would show nothing).
fn initial_view(sources: &[Source]) -> (f64, f64, f64) {
    let circle = |pts: &[[f64; 3]]| -> Option<([f64; 3], f64)> {
        let sum = pts
            .iter()
            .fold([0.0; 3], |a, p| [a[0] + p[0], a[1] + p[1], a[2] + p[2]]);
        let norm = (sum[0] * sum[0] + sum[1] * sum[1] + sum[2] * sum[2]).sqrt();
        if norm < 1e-12 {
            return None;
        }
        let c = [sum[0] / norm, sum[1] / norm, sum[2] / norm];
        let radius = pts
            .iter()
            .map(|p| {
                (p[0] * c[0] + p[1] * c[1] + p[2] * c[2])
                    .clamp(-1.0, 1.0)
                    .acos()
            })
            .fold(0.0, f64::max)
            .to_degrees();
        Some((c, radius))
    };
    let to_vec = |(ra, dec): (f64, f64)| {
        let (sa, ca) = ra.to_radians().sin_cos();
        let (sd, cd) = dec.to_radians().sin_cos();
        [cd * ca, cd * sa, sd]
    };
    let outline = |s: &Source| -> (Vec<[f64; 3]>, bool) {
        match &s.footprint {
            Some(fp) => (fp.polygon.iter().map(|&p| to_vec(p)).collect(), false),
            None => {
                let (na, nb) = (s.plane.na as f64, s.plane.nb as f64);
                let c = s.wcs.pixel_to_sky((na + 1.0) / 2.0, (nb + 1.0) / 2.0);
                (c.map(to_vec).into_iter().collect(), true)
            }
        }
    };
    let view = |c: [f64; 3], radius: f64, unbounded: bool| {
        let ra = c[1].atan2(c[0]).to_degrees().rem_euclid(360.0);
        let dec = c[2].clamp(-1.0, 1.0).asin().to_degrees();
        let fov = if unbounded {
            180.0
        } else {
            (2.0 * radius).clamp(1e-4, 180.0)
        };
        (ra, dec, fov)
    };
    let mut all = Vec::new();
    let mut unbounded = false;
    for s in sources {
        let (pts, u) = outline(s);
        all.extend(pts);
        unbounded |= u;
    }
    match circle(&all) {
        Some((c, r)) if r <= 45.0 || unbounded => view(c, r, unbounded),
        _ => {
            // The widest single image (the first of equals).
            let mut best: Option<([f64; 3], f64, bool)> = None;
            for s in sources {
                let (pts, u) = outline(s);
                if let Some((c, r)) = circle(&pts)
                    && best.is_none_or(|b| r > b.1)
                {
                    best = Some((c, r, u));
                }
            }
            match best {
                Some((c, r, u)) => view(c, r, u),
                None => (0.0, 0.0, 180.0),
            }
        }
    }
}

/// The `properties` text.
fn properties(
    opts: &HipsBuildOptions,
    id: &str,
    r: &HipsReport,
    sources: &[Source],
    info: &CollectionInfo,
    finest_deg: f64,
    bytes: u64,
) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%MZ").to_string();
    let mut formats = opts.formats.clone();
    formats.sort();
    let (ra, dec, fov) = initial_view(sources);
    let cubes = sources.iter().filter(|s| s.cube).count();
    let mut desc = format!(
        "Image HiPS of the {} image(s) of Tessera collection {}: deepest order {} from the finest input pixel scale, bilinear resampling, overlapping images averaged, lower orders the mean of their four children; PNG/JPEG tiles: {} stretch of hips_pixel_cut.",
        sources.len(),
        opts.collection,
        r.order,
        opts.stretch.name()
    );
    if cubes > 0 {
        desc.push_str(&format!(
            " Cubes ({cubes}) contribute their first plane only."
        ));
    }
    let mut kv: Vec<(&str, String)> = vec![
        (
            "creator_did",
            opts.creator_did
                .clone()
                .unwrap_or_else(|| format!("ivo://tessera/P/{id}")),
        ),
        (
            "obs_title",
            opts.title
                .clone()
                .unwrap_or_else(|| format!("{} (Tessera image HiPS)", opts.collection)),
        ),
        ("obs_collection", opts.collection.clone()),
        ("obs_description", desc),
        (
            "prov_progenitor",
            format!(
                "{} FITS image(s) of Tessera collection {}",
                sources.len(),
                opts.collection
            ),
        ),
        ("dataproduct_type", "image".into()),
        ("hips_version", "1.4".into()),
        (
            "hips_builder",
            format!("Tessera {}", env!("CARGO_PKG_VERSION")),
        ),
        ("hips_creation_date", now.clone()),
        ("hips_release_date", now),
        ("hips_status", "public master clonableOnce".into()),
        (
            "hips_tile_format",
            formats
                .iter()
                .map(|f| f.word())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("hips_order", r.order.to_string()),
        ("hips_order_min", "0".into()),
        ("hips_tile_width", TILE_WIDTH.to_string()),
        ("hips_frame", "equatorial".into()),
    ];
    if formats.contains(&TileFormat::Fits) {
        kv.push(("hips_pixel_bitpix", "-32".into()));
    }
    if let Some(s) = sources.first() {
        kv.push(("data_pixel_bitpix", s.bitpix.to_string()));
    }
    kv.extend([
        (
            "hips_pixel_cut",
            format!("{} {}", num(r.cut.0), num(r.cut.1)),
        ),
        (
            "hips_data_range",
            format!("{} {}", num(r.data_range.0), num(r.data_range.1)),
        ),
        ("hips_sampling", "bilinear".into()),
        ("hips_overlay", "mean".into()),
        ("hips_hierarchy", "mean".into()),
        ("hips_pixel_scale", num(geom::tile_pixel_deg(r.order))),
    ]);
    if finest_deg.is_finite() {
        kv.push(("s_pixel_scale", num(finest_deg)));
    }
    if let Some(u) = sources.iter().find_map(|s| s.bunit.clone()) {
        kv.push(("hips_bunit", u));
    }
    kv.extend([
        ("hips_initial_ra", num(ra)),
        ("hips_initial_dec", num(dec)),
        ("hips_initial_fov", num(fov)),
        ("moc_sky_fraction", num(r.sky_fraction)),
        ("hips_estsize", (bytes / 1024).to_string()),
        ("hips_nb_tiles", r.tiles.iter().sum::<usize>().to_string()),
    ]);
    for (key, v) in [
        ("t_min", info.t_min),
        ("t_max", info.t_max),
        ("em_min", info.em_min),
        ("em_max", info.em_max),
    ] {
        if let Some(v) = v {
            kv.push((key, num(v)));
        }
    }
    let mut out = String::from("# HiPS properties written by Tessera\n");
    for (k, v) in kv {
        // One property per line: no line breaks inside values.
        let v: String = v
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.push_str(&format!("{k:<20} = {v}\n"));
    }
    out
}

/// The hidden staging directory beside the output, removed unless published.
struct Staging {
    path: PathBuf,
    published: bool,
}

impl Staging {
    fn new(out: &Path, id: &str) -> Result<Staging> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        if let Ok(m) = std::fs::symlink_metadata(out)
            && !m.is_dir()
        {
            return Err(Error::Usage(format!(
                "--out {}: exists and is not a directory",
                out.display()
            )));
        }
        let prefix = format!(".{id}.tessera-staging-");
        if let Ok(rd) = std::fs::read_dir(&parent) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(pid) = name.strip_prefix(&prefix) else {
                    continue;
                };
                let alive = pid.parse::<u32>().is_ok_and(|p| {
                    p != std::process::id() && Path::new(&format!("/proc/{p}")).exists()
                });
                if !alive {
                    tracing::info!("removing stale staging directory {}", e.path().display());
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let path = parent.join(format!("{prefix}{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Staging {
            path,
            published: false,
        })
    }

    /// Replaces `out` by the staging directory.
    fn publish(mut self, out: &Path) -> Result<()> {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match std::fs::symlink_metadata(out) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::rename(&self.path, out).map_err(|e| Error::io(out, e))?;
            }
            Err(e) => return Err(Error::io(out, e)),
            Ok(_) => {
                if let Err(e) = renameat_with(CWD, &self.path, CWD, out, RenameFlags::EXCHANGE) {
                    // No RENAME_EXCHANGE on this file system: move the old version aside
                    // first (a crash in between leaves it under the staging name).
                    tracing::warn!("atomic exchange unavailable ({e}); replacing in two renames");
                    let old = self.path.with_extension("old");
                    std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
                    std::fs::rename(&self.path, out).map_err(|e| Error::io(out, e))?;
                    std::fs::rename(&old, &self.path).map_err(|e| Error::io(&old, e))?;
                }
                // The staging path now holds the previous version.
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
        self.published = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Tiles done, tiles/s and ETA on stderr (drawn only on a terminal).
struct TileProgress {
    bar: Option<ProgressBar>,
    done: AtomicU64,
    start: Instant,
}

impl TileProgress {
    fn new(enabled: bool, total: u64) -> TileProgress {
        let bar = enabled.then(|| {
            let b =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:<12} [{bar:30}] {pos}/{len} tiles  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix("hips tiles");
            b
        });
        TileProgress {
            bar,
            done: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    fn tick(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = &self.bar {
            b.set_position(n);
            let secs = self.start.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!("{:.1} tiles/s", n as f64 / secs));
        }
    }

    /// Removes the bar (the caller prints the summary).
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geom::TILE_PIXELS;

    #[test]
    fn formats_parse() {
        assert_eq!(
            TileFormat::parse_list("fits,png,jpg").unwrap(),
            vec![TileFormat::Fits, TileFormat::Png, TileFormat::Jpeg]
        );
        assert!(TileFormat::parse_list("gif").is_err());
        assert!(TileFormat::parse_list("").is_err());
    }

    #[test]
    fn moc_cells_of_a_tile() {
        let mut t = vec![f32::NAN; TILE_PIXELS];
        // Pixel (r, c) = (0, 511) lies in sub-cell (bx, by) = (0, 3) of 4×4 → s = interleave(0, 3).
        t[511] = 1.0;
        let cells = moc_cells(&t, 5, 10, 7);
        assert_eq!(cells, vec![(10 << 4) + geom::interleave(0, 3)]);
        assert_eq!(moc_cells(&t, 7, 10, 7), vec![10]);
    }

    /// A 400×300 float image at (ra, dec) with 2″ pixels, written to `dir`.
    fn small_image(dir: &Path, ra: f64, dec: f64) -> PathBuf {
        let mut out = Vec::new();
        let cards = [
            "SIMPLE  =                    T".to_string(),
            "BITPIX  =                  -32".into(),
            "NAXIS   =                    2".into(),
            "NAXIS1  =                  400".into(),
            "NAXIS2  =                  300".into(),
            "CTYPE1  = 'RA---TAN'".into(),
            "CTYPE2  = 'DEC--TAN'".into(),
            format!("CRVAL1  = {ra:>20}"),
            format!("CRVAL2  = {dec:>20}"),
            "CRPIX1  =                200.5".into(),
            "CRPIX2  =                150.5".into(),
            "CDELT1  = -0.00055555555555556".into(),
            "CDELT2  =  0.00055555555555556".into(),
            "END".into(),
        ];
        for c in cards {
            out.extend_from_slice(format!("{c:<80}").as_bytes());
        }
        out.resize(2880, b' ');
        out.extend(std::iter::repeat_n(0u8, 400 * 300 * 4));
        out.resize(out.len().div_ceil(2880) * 2880, 0);
        let path = dir.join(format!("img-{ra}-{dec}.fits"));
        std::fs::write(&path, out).unwrap();
        path
    }

    #[test]
    fn grid_coverage_contains_the_polygon_coverage() {
        // The fallback for images without a polygon outline (all-sky projections) must not
        // miss a tile the footprint polygon touches, also across RA 0 and near the pole.
        let dir = tempfile::tempdir().unwrap();
        for (ra, dec) in [(250.0, 36.0), (0.02, -10.0), (100.0, 89.9)] {
            let mut s = source::open(&small_image(dir.path(), ra, dec), 0).unwrap();
            assert!(s.footprint.is_some());
            for order in [3u8, 6, 9] {
                let poly = coverage(&s, order);
                let fp = s.footprint.take();
                let grid = coverage(&s, order);
                s.footprint = fp;
                assert!(!poly.is_empty());
                for t in &poly {
                    assert!(grid.contains(t), "({ra}, {dec}) order {order}: tile {t}");
                }
            }
        }
    }

    #[test]
    fn initial_view_centres_the_images() {
        let dir = tempfile::tempdir().unwrap();
        let a = source::open(&small_image(dir.path(), 250.0, 36.0), 0).unwrap();
        let (ra, dec, fov) = initial_view(std::slice::from_ref(&a));
        assert!(
            (ra - 250.0).abs() < 1e-3 && (dec - 36.0).abs() < 1e-3,
            "{ra} {dec}"
        );
        // 400×300 pixels of 2″: a diagonal of 1000″.
        assert!((fov - 1000.0 / 3600.0).abs() < 2e-3, "{fov}");
        // Scattered over the sky: the widest image, not the whole sky.
        let b = source::open(&small_image(dir.path(), 10.0, -60.0), 0).unwrap();
        let (ra, _, fov) = initial_view(&[a, b]);
        assert!(fov < 1.0 && (ra - 250.0).abs() < 1e-3, "{ra} {fov}");
    }

    #[test]
    fn ids() {
        assert!(hips_id(Path::new("/r/hips/demo-images")).is_ok());
        assert!(hips_id(Path::new("/r/hips/.hidden")).is_err());
        assert!(hips_id(Path::new("/r/hips/a b")).is_err());
    }
}
