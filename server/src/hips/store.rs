//! The on-disk tile store of a catalogue HiPS: what makes any tile of a 100-million-row
//! catalogue a binary search and one small decompression.
//!
//! A store is a directory (`<state dir>/hips/<schema>.<table>/`, by default
//! `ROOT/.tessera/hips/…`), written by [`super::build`] and published by renaming a
//! temporary sibling, so a reader sees a whole store or none:
//!
//! * `tiles.bin` — the tiles' own rows as TSV lines in rank order, each tile one zstd frame;
//! * `tiles.idx` — one 48-byte little-endian record per tile, sorted by NUNIQ
//!   (`4·4^order + npix`): NUNIQ, offset and length of its frame, its uncompressed length,
//!   its row count, and the `Completeness` numbers (rows of its cell delivered by it and its
//!   ancestors, rows in its cell). Order-0 cells holding rows have a record without rows;
//! * `Moc.fits` — the coverage;
//! * `meta.json` — the header line, `Metadata.xml`, the `properties` values, tiles per order,
//!   and the fingerprint of the catalogue version it was built from (a store whose fingerprint
//!   differs from the catalogue's is rebuilt, never served).
//!
//! Both data files are memory-mapped: the page cache holds the hot tiles, the process only
//! the mapping. A hand-written layout rather than Parquet: a tile is a few hundred rows whose
//! exact bytes are the answer, and a Parquet page decode plus TSV rendering per request would
//! cost more than the whole request budget.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;
use serde_json::{Value, json};

/// Bumped when the layout or the assignment rule changes: older stores are then rebuilt.
pub(crate) const FORMAT_VERSION: u32 = 1;

const RECORD: usize = 48;

/// One tile's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TileRecord {
    pub(crate) nuniq: u64,
    pub(crate) offset: u64,
    pub(crate) clen: u32,
    pub(crate) ulen: u32,
    pub(crate) nrows: u32,
    pub(crate) loaded: u64,
    pub(crate) total: u64,
}

impl TileRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.nuniq.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.clen.to_le_bytes());
        out.extend_from_slice(&self.ulen.to_le_bytes());
        out.extend_from_slice(&self.nrows.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.loaded.to_le_bytes());
        out.extend_from_slice(&self.total.to_le_bytes());
    }

    fn decode(b: &[u8]) -> TileRecord {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |i: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[i..i + 4]);
            u32::from_le_bytes(a)
        };
        TileRecord {
            nuniq: u64_at(0),
            offset: u64_at(8),
            clen: u32_at(16),
            ulen: u32_at(20),
            nrows: u32_at(24),
            loaded: u64_at(32),
            total: u64_at(40),
        }
    }

    /// `(order, npix)` of a NUNIQ value.
    pub(crate) fn cell(&self) -> (u8, u64) {
        let order = ((63 - self.nuniq.leading_zeros()) / 2 - 1) as u8;
        (order, self.nuniq - (4u64 << (2 * u32::from(order))))
    }
}

/// The values `properties`, `index.html` and `/hips/list` need.
#[derive(Debug, Clone)]
pub(crate) struct StoreMeta {
    pub(crate) fingerprint: String,
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) release_date: String,
    /// The TSV header line, with its LF.
    pub(crate) header: String,
    pub(crate) metadata_xml: String,
    pub(crate) rank_column: Option<String>,
    /// Rows placed (`hips_cat_nrows`).
    pub(crate) rows: u64,
    /// Deepest order holding rows (`hips_order`).
    pub(crate) max_order: u8,
    pub(crate) moc_order: u8,
    pub(crate) sky_fraction: f64,
    /// `hips_initial_ra`, `hips_initial_dec`, `hips_initial_fov`.
    pub(crate) initial: (f64, f64, f64),
    /// Tiles holding rows, per order (index = order).
    pub(crate) tiles_per_order: Vec<u64>,
}

impl StoreMeta {
    fn to_json(&self) -> Value {
        json!({
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "name": self.name,
            "title": self.title,
            "release_date": self.release_date,
            "header": self.header,
            "metadata_xml": self.metadata_xml,
            "rank_column": self.rank_column,
            "rows": self.rows,
            "max_order": self.max_order,
            "moc_order": self.moc_order,
            "sky_fraction": self.sky_fraction,
            "initial": [self.initial.0, self.initial.1, self.initial.2],
            "tiles_per_order": self.tiles_per_order,
        })
    }

    fn from_json(v: &Value) -> Result<StoreMeta, String> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("meta.json: no string `{k}`"))
        };
        let u = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("meta.json: no integer `{k}`"))
        };
        let f = |x: Option<&Value>| x.and_then(Value::as_f64).unwrap_or(0.0);
        if u("format_version")? != u64::from(FORMAT_VERSION) {
            return Err("meta.json: another format version".into());
        }
        let initial = v.get("initial").and_then(Value::as_array);
        let at = |i: usize| f(initial.and_then(|a| a.get(i)));
        Ok(StoreMeta {
            fingerprint: s("fingerprint")?,
            name: s("name")?,
            title: s("title")?,
            release_date: s("release_date")?,
            header: s("header")?,
            metadata_xml: s("metadata_xml")?,
            rank_column: v
                .get("rank_column")
                .and_then(Value::as_str)
                .map(str::to_string),
            rows: u("rows")?,
            max_order: u8::try_from(u("max_order")?).map_err(|e| e.to_string())?,
            moc_order: u8::try_from(u("moc_order")?).map_err(|e| e.to_string())?,
            sky_fraction: f(v.get("sky_fraction")),
            initial: (at(0), at(1), at(2)),
            tiles_per_order: v
                .get("tiles_per_order")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
        })
    }
}

/// Writes a store into a fresh directory.
#[derive(Debug)]
pub(crate) struct StoreWriter {
    dir: PathBuf,
    bin: std::io::BufWriter<File>,
    offset: u64,
    records: Vec<TileRecord>,
}

impl StoreWriter {
    pub(crate) fn create(dir: &Path) -> Result<StoreWriter, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let path = dir.join("tiles.bin");
        let f = File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(StoreWriter {
            dir: dir.to_path_buf(),
            bin: std::io::BufWriter::with_capacity(1 << 20, f),
            offset: 0,
            records: Vec::new(),
        })
    }

    /// Bytes of tile frames written so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.offset
    }

    /// Adds a tile: its record (offset and lengths are filled in) and compressed frame.
    pub(crate) fn add(&mut self, mut rec: TileRecord, frame: &[u8]) -> Result<(), String> {
        rec.offset = self.offset;
        rec.clen = u32::try_from(frame.len()).map_err(|_| "tile over 4 GiB".to_string())?;
        self.bin
            .write_all(frame)
            .map_err(|e| format!("writing {}: {e}", self.dir.join("tiles.bin").display()))?;
        self.offset += frame.len() as u64;
        self.records.push(rec);
        Ok(())
    }

    /// Writes the index, the MOC and the metadata, and syncs everything.
    pub(crate) fn finish(mut self, mut meta: StoreMeta, moc_fits: &[u8]) -> Result<(), String> {
        let ctx = |what: &str, e: std::io::Error| format!("writing {what}: {e}");
        self.bin.flush().map_err(|e| ctx("tiles.bin", e))?;
        self.bin
            .get_ref()
            .sync_all()
            .map_err(|e| ctx("tiles.bin", e))?;
        self.records.sort_unstable_by_key(|r| r.nuniq);
        if let Some(w) = self.records.windows(2).find(|w| w[0].nuniq == w[1].nuniq) {
            return Err(format!("tile {:?} written twice", w[0].cell()));
        }
        let mut per_order = vec![0u64; usize::from(meta.max_order) + 1];
        let mut idx = Vec::with_capacity(self.records.len() * RECORD);
        for r in &self.records {
            r.encode(&mut idx);
            let (k, _) = r.cell();
            if r.nrows > 0
                && let Some(n) = per_order.get_mut(usize::from(k))
            {
                *n += 1;
            }
        }
        meta.tiles_per_order = per_order;
        let write = |name: &str, bytes: &[u8]| -> Result<(), String> {
            let path = self.dir.join(name);
            let mut f = File::create(&path).map_err(|e| ctx(name, e))?;
            f.write_all(bytes).map_err(|e| ctx(name, e))?;
            f.sync_all().map_err(|e| ctx(name, e))
        };
        write("tiles.idx", &idx)?;
        write("Moc.fits", moc_fits)?;
        let json = serde_json::to_vec_pretty(&meta.to_json()).map_err(|e| e.to_string())?;
        write("meta.json", &json)
    }
}

/// Moves the finished store `tmp` to `dir`, replacing a previous one. When another process
/// publishes the same store at the same moment, its copy is kept and ours dropped.
pub(crate) fn publish(tmp: &Path, dir: &Path) -> Result<(), String> {
    let ctx = |e: std::io::Error| format!("publishing {}: {e}", dir.display());
    let old = dir.with_extension(format!("old-{}", std::process::id()));
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(ctx)?;
    }
    let r = std::fs::rename(tmp, dir);
    let _ = std::fs::remove_dir_all(&old);
    match r {
        Ok(()) => Ok(()),
        Err(_) if dir.join("meta.json").exists() => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => Err(ctx(e)),
    }
}

/// An opened store.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) meta: StoreMeta,
    idx: Mmap,
    bin: Option<Mmap>,
    moc_fits: Vec<u8>,
    allsky: [OnceLock<Option<Vec<u8>>>; 4],
}

fn map(path: &Path) -> Result<Option<Mmap>, String> {
    let f = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let len = f
        .metadata()
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: store files are written once into a temporary directory and published by a
    // rename; they are never modified in place, so the mapping never changes under us (a
    // rebuild replaces the directory, and the old inode lives as long as the mapping).
    unsafe { Mmap::map(&f) }
        .map(Some)
        .map_err(|e| format!("mapping {}: {e}", path.display()))
}

impl Store {
    /// Opens the store in `dir`; `Ok(None)` when there is none or it was built from another
    /// version of the catalogue (`fingerprint`).
    pub(crate) fn open(dir: &Path, fingerprint: &str) -> Result<Option<Store>, String> {
        let meta_path = dir.join("meta.json");
        let text = match std::fs::read(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", meta_path.display())),
        };
        let Ok(v) = serde_json::from_slice::<Value>(&text) else {
            return Ok(None);
        };
        let Ok(meta) = StoreMeta::from_json(&v) else {
            return Ok(None);
        };
        if meta.fingerprint != fingerprint {
            return Ok(None);
        }
        let idx = map(&dir.join("tiles.idx"))?.ok_or("empty tiles.idx")?;
        if idx.len() % RECORD != 0 {
            return Err(format!("{}: truncated", dir.join("tiles.idx").display()));
        }
        let bin = map(&dir.join("tiles.bin"))?;
        let moc_path = dir.join("Moc.fits");
        let moc_fits =
            std::fs::read(&moc_path).map_err(|e| format!("reading {}: {e}", moc_path.display()))?;
        Ok(Some(Store {
            meta,
            idx,
            bin,
            moc_fits,
            allsky: Default::default(),
        }))
    }

    fn len(&self) -> usize {
        self.idx.len() / RECORD
    }

    fn record(&self, i: usize) -> TileRecord {
        TileRecord::decode(&self.idx[i * RECORD..(i + 1) * RECORD])
    }

    /// Index of the first record with NUNIQ ≥ `u`.
    fn lower_bound(&self, u: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.record(mid).nuniq < u {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn rows_of(&self, r: &TileRecord) -> Result<Vec<u8>, String> {
        if r.nrows == 0 {
            return Ok(Vec::new());
        }
        let bin = self.bin.as_ref().ok_or("tiles.bin is empty")?;
        let start = usize::try_from(r.offset).map_err(|e| e.to_string())?;
        let frame = bin
            .get(start..start + r.clen as usize)
            .ok_or("tiles.bin is truncated")?;
        zstd::bulk::decompress(frame, r.ulen as usize).map_err(|e| format!("tiles.bin: {e}"))
    }

    fn completeness(&self, loaded: u64, total: u64) -> Vec<u8> {
        format!("# Completeness = {loaded}/{total}\n{}", self.meta.header).into_bytes()
    }

    /// The tile (order, npix) as TSV, `None` when it holds no rows (order-0 cells holding
    /// rows are served without rows: see the module documentation of `hips`).
    pub(crate) fn tile(&self, order: u8, npix: u64) -> Option<Vec<u8>> {
        self.try_tile(order, npix).unwrap_or_else(|e| {
            tracing::error!(hips = %self.meta.name, order, npix, "reading a tile: {e}");
            None
        })
    }

    fn try_tile(&self, order: u8, npix: u64) -> Result<Option<Vec<u8>>, String> {
        if order > self.meta.max_order {
            return Ok(None);
        }
        let u = (4u64 << (2 * u32::from(order))) + npix;
        let i = self.lower_bound(u);
        if i >= self.len() {
            return Ok(None);
        }
        let r = self.record(i);
        if r.nuniq != u || (r.nrows == 0 && order > 0) {
            return Ok(None);
        }
        let mut out = self.completeness(r.loaded, r.total);
        out.extend_from_slice(&self.rows_of(&r)?);
        Ok(Some(out))
    }

    /// Tiles holding rows at `order`.
    pub(crate) fn tile_count(&self, order: u8) -> u64 {
        self.meta
            .tiles_per_order
            .get(usize::from(order))
            .copied()
            .unwrap_or(0)
    }

    /// `NorderK/Allsky.tsv` (K = 1…3): every row of every tile at `order`, tile by tile.
    pub(crate) fn allsky(&self, order: u8) -> Option<Vec<u8>> {
        self.try_allsky(order).unwrap_or_else(|e| {
            tracing::error!(hips = %self.meta.name, order, "reading an Allsky file: {e}");
            None
        })
    }

    fn try_allsky(&self, order: u8) -> Result<Option<Vec<u8>>, String> {
        if order == 0 || order > 3 || order > self.meta.max_order {
            return Ok(None);
        }
        let slot = &self.allsky[usize::from(order)];
        if let Some(v) = slot.get() {
            return Ok(v.clone());
        }
        let lo = 4u64 << (2 * u32::from(order));
        let (a, b) = (self.lower_bound(lo), self.lower_bound(lo * 4));
        let mut loaded = 0;
        for i in 0..b {
            loaded += u64::from(self.record(i).nrows);
        }
        let mut out = self.completeness(loaded, self.meta.rows);
        for i in a..b {
            out.extend_from_slice(&self.rows_of(&self.record(i))?);
        }
        let _ = slot.set(Some(out.clone()));
        Ok(Some(out))
    }

    /// Rows placed (`hips_cat_nrows`).
    pub(crate) fn rows(&self) -> u64 {
        self.meta.rows
    }

    /// `Moc.fits`.
    pub(crate) fn moc_fits(&self) -> &[u8] {
        &self.moc_fits
    }
}

impl std::ops::Deref for Store {
    type Target = StoreMeta;

    fn deref(&self) -> &StoreMeta {
        &self.meta
    }
}

/// FNV-1a, 64 bits, over the parts (with separators): a fingerprint stable across Rust
/// versions and platforms, which `std`'s hashers do not promise.
pub(crate) fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{FORMAT_VERSION}-{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = TileRecord {
            nuniq: (4 << 12) + 1234,
            offset: 99,
            clen: 7,
            ulen: 70,
            nrows: 3,
            loaded: 10,
            total: 20,
        };
        let mut b = Vec::new();
        r.encode(&mut b);
        assert_eq!(b.len(), RECORD);
        assert_eq!(TileRecord::decode(&b), r);
        assert_eq!(r.cell(), (6, 1234));
        let base = TileRecord { nuniq: 4 + 11, ..r };
        assert_eq!(base.cell(), (0, 11));
    }

    #[test]
    fn fingerprints_differ() {
        assert_ne!(fingerprint(["a", "bc"]), fingerprint(["ab", "c"]));
        assert_eq!(fingerprint(["x"]), fingerprint(["x"]));
    }
}
