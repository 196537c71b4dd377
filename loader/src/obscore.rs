//! The ObsCore 1.1 registry of a data root: one row per registered image or cube, kept in
//! `ROOT/.tessera/obscore.parquet` and exposed by the server as `ivoa.obscore`.
//!
//! The file holds every mandatory ObsCore 1.1 column (names, types, units, UCDs and utypes of
//! the standard's table of columns; `s_region` a polygon in the engine's geometry form, a
//! list of doubles, with xtype `adql:REGION` so that results write it as STC-S text) plus two internal columns the server keeps to
//! itself: `_path` (the FITS file, relative to the data root) and `_hdu` (its HDU index).
//! `access_url` is stored relative (`/datalink/links?ID=…`): the server prefixes its public
//! URL when it loads the registry, so a data root can be served under any address.
//!
//! Registrations replace rows with the same `obs_publisher_did` and the file is written to a
//! temporary name and renamed, so a crash never leaves a half-written registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Float64Builder, Int32Array, Int64Array, ListBuilder, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tessera_storage::columns::ColumnMeta;

use crate::error::{Error, Result};

/// Where the registry lives under a data root.
pub const REGISTRY: &str = ".tessera/obscore.parquet";

/// Internal columns (not exposed).
pub const PATH_COLUMN: &str = "_path";
/// The HDU index column (internal).
pub const HDU_COLUMN: &str = "_hdu";

/// `(name, type, unit, ucd, utype suffix, description)` of the ObsCore 1.1 columns.
const COLUMNS: &[(&str, char, &str, &str, &str, &str)] = &[
    (
        "dataproduct_type",
        's',
        "",
        "meta.code.class",
        "ObsDataset.dataProductType",
        "Data product (file content) primary type",
    ),
    (
        "dataproduct_subtype",
        's',
        "",
        "meta.code.class",
        "ObsDataset.dataProductSubtype",
        "Data product specific type",
    ),
    (
        "calib_level",
        'i',
        "",
        "meta.code;obs.calib",
        "ObsDataset.calibLevel",
        "Calibration level of the observation: in {0, 1, 2, 3, 4}",
    ),
    (
        "obs_collection",
        's',
        "",
        "meta.id",
        "DataID.Collection",
        "Name of the data collection",
    ),
    (
        "obs_id",
        's',
        "",
        "meta.id",
        "DataID.observationID",
        "Internal ID given by the ObsTAP service",
    ),
    (
        "obs_publisher_did",
        's',
        "",
        "meta.ref.ivoid",
        "Curation.PublisherDID",
        "ID for the Dataset given by the publisher",
    ),
    (
        "access_url",
        's',
        "",
        "meta.ref.url",
        "Access.Reference",
        "URL used to access dataset",
    ),
    (
        "access_format",
        's',
        "",
        "meta.code.mime",
        "Access.Format",
        "Content format of the dataset",
    ),
    (
        "access_estsize",
        'l',
        "kbyte",
        "phys.size;meta.file",
        "Access.Size",
        "Estimated size of dataset: in kilobytes",
    ),
    (
        "target_name",
        's',
        "",
        "meta.id;src",
        "Target.Name",
        "Object of interest",
    ),
    (
        "s_ra",
        'd',
        "deg",
        "pos.eq.ra",
        "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
        "Central Spatial Position in ICRS Right ascension",
    ),
    (
        "s_dec",
        'd',
        "deg",
        "pos.eq.dec",
        "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
        "Central Spatial Position in ICRS Declination",
    ),
    (
        "s_fov",
        'd',
        "deg",
        "phys.angSize;instr.fov",
        "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
        "Estimated size of the covered region as the diameter of a containing circle",
    ),
    (
        "s_region",
        'p',
        "",
        "pos.outline;obs.field",
        "Char.SpatialAxis.Coverage.Support.Area",
        "Sky region covered by the data product (expressed in ICRS frame)",
    ),
    (
        "s_resolution",
        'd',
        "arcsec",
        "pos.angResolution",
        "Char.SpatialAxis.Resolution.Refval.value",
        "Spatial resolution of data as FWHM of PSF",
    ),
    (
        "s_xel1",
        'l',
        "",
        "meta.number",
        "Char.SpatialAxis.numBins1",
        "Number of elements along the first coordinate of the spatial axis",
    ),
    (
        "s_xel2",
        'l',
        "",
        "meta.number",
        "Char.SpatialAxis.numBins2",
        "Number of elements along the second coordinate of the spatial axis",
    ),
    (
        "t_min",
        'd',
        "d",
        "time.start;obs.exposure",
        "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
        "Start time in MJD",
    ),
    (
        "t_max",
        'd',
        "d",
        "time.end;obs.exposure",
        "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
        "Stop time in MJD",
    ),
    (
        "t_exptime",
        'd',
        "s",
        "time.duration;obs.exposure",
        "Char.TimeAxis.Coverage.Support.Extent",
        "Total exposure time",
    ),
    (
        "t_resolution",
        'd',
        "s",
        "time.resolution",
        "Char.TimeAxis.Resolution.Refval.value",
        "Temporal resolution FWHM",
    ),
    (
        "t_xel",
        'l',
        "",
        "meta.number",
        "Char.TimeAxis.numBins",
        "Number of elements along the time axis",
    ),
    (
        "em_min",
        'd',
        "m",
        "em.wl;stat.min",
        "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
        "Start in spectral coordinates",
    ),
    (
        "em_max",
        'd',
        "m",
        "em.wl;stat.max",
        "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
        "Stop in spectral coordinates",
    ),
    (
        "em_res_power",
        'd',
        "",
        "spect.resolution",
        "Char.SpectralAxis.Resolution.ResolPower.refVal",
        "Value of the resolving power",
    ),
    (
        "em_xel",
        'l',
        "",
        "meta.number",
        "Char.SpectralAxis.numBins",
        "Number of elements along the spectral axis",
    ),
    (
        "em_ucd",
        's',
        "",
        "meta.ucd",
        "Char.SpectralAxis.ucd",
        "Nature of the spectral axis",
    ),
    (
        "o_ucd",
        's',
        "",
        "meta.ucd",
        "Char.ObservableAxis.ucd",
        "Nature of the observable axis",
    ),
    (
        "pol_states",
        's',
        "",
        "meta.code;phys.polarization",
        "Char.PolarizationAxis.stateList",
        "List of polarization states or NULL if not applicable",
    ),
    (
        "pol_xel",
        'l',
        "",
        "meta.number",
        "Char.PolarizationAxis.numBins",
        "Number of polarization samples",
    ),
    (
        "facility_name",
        's',
        "",
        "meta.id;instr.tel",
        "Provenance.ObsConfig.Facility.name",
        "Name of the facility used for this observation",
    ),
    (
        "instrument_name",
        's',
        "",
        "meta.id;instr",
        "Provenance.ObsConfig.Instrument.name",
        "Name of the instrument used for this observation",
    ),
];

/// The registry's schema: the ObsCore columns with their metadata, then `_path`, `_hdu`.
pub fn schema() -> SchemaRef {
    let mut fields: Vec<Field> = COLUMNS
        .iter()
        .map(|(name, ty, unit, ucd, utype, desc)| {
            let dt = match ty {
                's' => DataType::Utf8,
                'i' => DataType::Int32,
                'l' => DataType::Int64,
                'd' => DataType::Float64,
                _ => DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            };
            let meta = ColumnMeta {
                unit: (!unit.is_empty()).then(|| unit.to_string()),
                ucd: Some(ucd.to_string()),
                description: Some(desc.to_string()),
                utype: Some(format!("obscore:{utype}")),
                // Held as a polygon (so INTERSECTS/CONTAINS work on it) and written as STC-S
                // text, the ObsCore 1.1 type (adql:REGION, char).
                xtype: (*ty == 'p').then(|| "adql:REGION".to_string()),
                principal: true,
            };
            Field::new(*name, dt, true).with_metadata(meta.to_map())
        })
        .collect();
    fields.push(Field::new(PATH_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(HDU_COLUMN, DataType::Int32, false));
    Arc::new(Schema::new(fields))
}

/// One registered dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObsRow {
    /// `image` or `cube`.
    pub dataproduct_type: String,
    /// ObsCore calib_level.
    pub calib_level: i32,
    /// Collection name.
    pub obs_collection: String,
    /// Observation id within the collection.
    pub obs_id: String,
    /// `ivo://…` publisher DID.
    pub obs_publisher_did: String,
    /// Relative DataLink URL (the server makes it absolute).
    pub access_url: String,
    /// MIME type of what `access_url` gives.
    pub access_format: String,
    /// Size in kB.
    pub access_estsize: i64,
    /// OBJECT keyword, if any.
    pub target_name: Option<String>,
    /// Centre, degrees.
    pub s_ra: f64,
    /// Centre, degrees.
    pub s_dec: f64,
    /// Diameter of the enclosing circle, degrees.
    pub s_fov: f64,
    /// Footprint polygon `[ra1, dec1, ra2, dec2, …]`, degrees.
    pub s_region: Vec<f64>,
    /// Pixel scale in arcsec (an upper bound on resolution without a PSF).
    pub s_resolution: Option<f64>,
    /// Pixels along axis 1.
    pub s_xel1: i64,
    /// Pixels along axis 2.
    pub s_xel2: i64,
    /// Start, MJD.
    pub t_min: Option<f64>,
    /// End, MJD.
    pub t_max: Option<f64>,
    /// Exposure, s.
    pub t_exptime: Option<f64>,
    /// Spectral coverage, metres.
    pub em_min: Option<f64>,
    /// Spectral coverage, metres.
    pub em_max: Option<f64>,
    /// Spectral pixels (1 for images).
    pub em_xel: Option<i64>,
    /// `em.wl` etc.
    pub em_ucd: Option<String>,
    /// `phot.count`, `phot.flux`, …
    pub o_ucd: Option<String>,
    /// TELESCOP.
    pub facility_name: Option<String>,
    /// INSTRUME.
    pub instrument_name: Option<String>,
    /// The FITS file, relative to the data root.
    pub path: String,
    /// The HDU index in it.
    pub hdu: i32,
}

fn strs<'a>(rows: &'a [ObsRow], f: impl Fn(&'a ObsRow) -> Option<&'a str>) -> ArrayRef {
    Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
}
fn f64s(rows: &[ObsRow], f: impl Fn(&ObsRow) -> Option<f64>) -> ArrayRef {
    Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
}
fn i64s(rows: &[ObsRow], f: impl Fn(&ObsRow) -> Option<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
}

/// The rows as a batch of [`schema`].
pub fn to_batch(rows: &[ObsRow]) -> Result<RecordBatch> {
    let mut region = ListBuilder::new(Float64Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Float64,
        true,
    )));
    for r in rows {
        region.values().append_slice(&r.s_region);
        region.append(true);
    }
    let region = region.finish();
    let cols: Vec<ArrayRef> = vec![
        strs(rows, |r| Some(r.dataproduct_type.as_str())),
        strs(rows, |_| None),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| Some(r.calib_level)).collect::<Vec<_>>(),
        )),
        strs(rows, |r| Some(r.obs_collection.as_str())),
        strs(rows, |r| Some(r.obs_id.as_str())),
        strs(rows, |r| Some(r.obs_publisher_did.as_str())),
        strs(rows, |r| Some(r.access_url.as_str())),
        strs(rows, |r| Some(r.access_format.as_str())),
        i64s(rows, |r| Some(r.access_estsize)),
        strs(rows, |r| r.target_name.as_deref()),
        f64s(rows, |r| Some(r.s_ra)),
        f64s(rows, |r| Some(r.s_dec)),
        f64s(rows, |r| Some(r.s_fov)),
        Arc::new(region),
        f64s(rows, |r| r.s_resolution),
        i64s(rows, |r| Some(r.s_xel1)),
        i64s(rows, |r| Some(r.s_xel2)),
        f64s(rows, |r| r.t_min),
        f64s(rows, |r| r.t_max),
        f64s(rows, |r| r.t_exptime),
        f64s(rows, |_| None),
        i64s(rows, |r| r.t_min.map(|_| 1)),
        f64s(rows, |r| r.em_min),
        f64s(rows, |r| r.em_max),
        f64s(rows, |_| None),
        i64s(rows, |r| r.em_xel),
        strs(rows, |r| r.em_ucd.as_deref()),
        strs(rows, |r| r.o_ucd.as_deref()),
        strs(rows, |_| None),
        i64s(rows, |_| None),
        strs(rows, |r| r.facility_name.as_deref()),
        strs(rows, |r| r.instrument_name.as_deref()),
        strs(rows, |r| Some(r.path.as_str())),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.hdu).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema(), cols).map_err(|e| Error::Internal(e.to_string()))
}

/// The registry of `root`, if there is one.
pub fn read_registry(root: &Path) -> Result<Option<RecordBatch>> {
    let path = root.join(REGISTRY);
    if !path.is_file() {
        return Ok(None);
    }
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?);
    }
    let schema = schema();
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Internal(format!("{}: not an ObsCore registry: {e}", path.display()))
        })?;
    arrow::compute::concat_batches(&schema, &batches)
        .map(Some)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Writes `rows` into the registry of `root`, replacing rows with the same
/// `obs_publisher_did`; returns the number of rows the registry now holds.
pub fn register(root: &Path, rows: &[ObsRow]) -> Result<usize> {
    let new = to_batch(rows)?;
    let dids: std::collections::HashSet<&str> =
        rows.iter().map(|r| r.obs_publisher_did.as_str()).collect();
    let mut parts = Vec::new();
    if let Some(old) = read_registry(root)? {
        let did = old
            .column(5)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Internal("registry: obs_publisher_did is not text".into()))?;
        let keep = arrow::array::BooleanArray::from(
            (0..old.num_rows())
                .map(|i| !dids.contains(did.value(i)))
                .collect::<Vec<_>>(),
        );
        parts.push(
            arrow::compute::filter_record_batch(&old, &keep)
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
    }
    parts.push(new);
    let all = arrow::compute::concat_batches(&schema(), &parts)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let path = root.join(REGISTRY);
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
    {
        let mut w = parquet::arrow::ArrowWriter::try_new(tmp.as_file(), all.schema(), None)
            .map_err(|e| Error::Internal(e.to_string()))?;
        w.write(&all).map_err(|e| Error::Internal(e.to_string()))?;
        w.close().map_err(|e| Error::Internal(e.to_string()))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(all.num_rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(did: &str, ra: f64) -> ObsRow {
        ObsRow {
            dataproduct_type: "image".into(),
            calib_level: 2,
            obs_collection: "demo".into(),
            obs_id: did.into(),
            obs_publisher_did: format!("ivo://tessera/demo?{did}"),
            access_url: format!("/datalink/links?ID={did}"),
            access_format: "application/x-votable+xml;content=datalink".into(),
            s_ra: ra,
            s_dec: 1.0,
            s_fov: 0.1,
            s_region: vec![ra, 1.0, ra + 0.1, 1.0, ra + 0.1, 1.1],
            s_xel1: 10,
            s_xel2: 10,
            path: format!("images/{did}.fits"),
            ..Default::default()
        }
    }

    #[test]
    fn registers_replaces_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_registry(dir.path()).unwrap().is_none());
        assert_eq!(
            register(dir.path(), &[row("a", 1.0), row("b", 2.0)]).unwrap(),
            2
        );
        assert_eq!(
            register(dir.path(), &[row("b", 3.0), row("c", 4.0)]).unwrap(),
            3
        );
        let b = read_registry(dir.path()).unwrap().unwrap();
        assert_eq!(b.num_rows(), 3);
        let ra = b
            .column(10)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let mut v: Vec<f64> = ra.values().to_vec();
        v.sort_by(f64::total_cmp);
        assert_eq!(v, vec![1.0, 3.0, 4.0]);
        let f = b.schema().field_with_name("s_region").unwrap().clone();
        assert_eq!(ColumnMeta::of(&f).xtype.as_deref(), Some("adql:REGION"));
    }
}
