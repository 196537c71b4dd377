//! The registered images of a data root (`tessera load-images`): the ObsCore registry
//! loaded at start-up, exposed as the TAP table `ivoa.obscore` (with absolute DataLink
//! `access_url`s under this server's public URL) and indexed by `obs_publisher_did` for
//! DataLink and SODA.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, Schema};
use tessera_engine::ExtraTable;
use tessera_loader::obscore;

/// One registered dataset, as DataLink and SODA need it.
#[derive(Debug, Clone)]
pub struct ImageEntry {
    /// The publisher DID (the DataLink/SODA `ID`).
    pub did: String,
    /// The FITS file (inside the data root).
    pub path: PathBuf,
    /// Its HDU index.
    pub hdu: usize,
    /// `image` or `cube`.
    pub dataproduct_type: String,
    /// Size of the whole file, kB.
    pub estsize_kb: i64,
    /// Footprint `[ra1, dec1, …]`.
    pub region: Vec<f64>,
    /// Spectral coverage in metres, for cubes.
    pub em: Option<(f64, f64)>,
}

/// A related query offered in the DataLink document of a catalogue row (configured in
/// `ROOT/.tessera/datalink.json` as `[{"catalog": "schema.table", "semantics": "#…",
/// "description": "…", "query": "SELECT … {id} … {ra} … {dec}"}]`; `{id}` is the row's
/// identifier as an ADQL literal, `{ra}`/`{dec}` its position).
#[derive(Debug, Clone)]
pub struct RelatedQuery {
    /// `schema.table` whose rows get the link.
    pub catalog: String,
    /// DataLink semantics (`#auxiliary`, `#derivation`, …).
    pub semantics: String,
    /// What the link gives.
    pub description: String,
    /// ADQL with `{id}`, `{ra}`, `{dec}`.
    pub query: String,
}

/// The images of the data root.
#[derive(Debug, Default)]
pub struct ImageIndex {
    /// The server's public URL (`http://host:port`).
    pub public_url: String,
    /// By DID.
    pub by_did: HashMap<String, ImageEntry>,
    /// Related queries of catalogue rows (DataLink).
    pub related: Vec<RelatedQuery>,
}

/// Reads `ROOT/.tessera/datalink.json` (absent: none).
fn related_queries(root: &Path) -> anyhow::Result<Vec<RelatedQuery>> {
    let path = root.join(".tessera/datalink.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let items = v
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{}: expected a JSON array", path.display()))?;
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let get = |k: &str| -> anyhow::Result<String> {
            it.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("{}: entry {i} has no string `{k}`", path.display()))
        };
        out.push(RelatedQuery {
            catalog: get("catalog")?,
            semantics: get("semantics")?,
            description: get("description")?,
            query: get("query")?,
        });
    }
    Ok(out)
}

impl ImageIndex {
    /// Reads the registry of a local data root: the index and the `ivoa.obscore` table.
    /// A registry row whose file lies outside the data root is refused (a registry edited by
    /// hand must not let requests read arbitrary files).
    pub fn load(
        root: Option<&Path>,
        public_url: &str,
    ) -> anyhow::Result<(ImageIndex, Option<ExtraTable>)> {
        let mut index = ImageIndex {
            public_url: public_url.trim_end_matches('/').to_string(),
            by_did: HashMap::new(),
            related: Vec::new(),
        };
        let Some(root) = root else {
            return Ok((index, None));
        };
        index.related = related_queries(root)?;
        let Some(batch) = obscore::read_registry(root)? else {
            return Ok((index, None));
        };
        let canon_root = root.canonicalize()?;
        let col = |name: &str| -> anyhow::Result<&Arc<dyn Array>> {
            batch
                .column_by_name(name)
                .ok_or_else(|| anyhow::anyhow!("ObsCore registry has no column {name}"))
        };
        let did = col("obs_publisher_did")?.as_string::<i32>().clone();
        let path = col(obscore::PATH_COLUMN)?.as_string::<i32>().clone();
        let hdu = col(obscore::HDU_COLUMN)?
            .as_primitive::<Int32Type>()
            .clone();
        let dpt = col("dataproduct_type")?.as_string::<i32>().clone();
        let size = col("access_estsize")?.as_primitive::<Int64Type>().clone();
        let region = col("s_region")?.as_list::<i32>().clone();
        let em_min = col("em_min")?.as_primitive::<Float64Type>().clone();
        let em_max = col("em_max")?.as_primitive::<Float64Type>().clone();
        let access = col("access_url")?.as_string::<i32>().clone();
        for i in 0..batch.num_rows() {
            let p = root.join(path.value(i));
            let Ok(canon) = p.canonicalize() else {
                tracing::warn!(
                    "registered image {} is missing; its row is served without data",
                    p.display()
                );
                continue;
            };
            if !canon.starts_with(&canon_root) {
                anyhow::bail!(
                    "ObsCore registry row {} points outside the data root: {}",
                    did.value(i),
                    p.display()
                );
            }
            let em = (!em_min.is_null(i) && !em_max.is_null(i))
                .then(|| (em_min.value(i), em_max.value(i)));
            index.by_did.insert(
                did.value(i).to_string(),
                ImageEntry {
                    did: did.value(i).to_string(),
                    path: canon,
                    hdu: hdu.value(i).max(0) as usize,
                    dataproduct_type: dpt.value(i).to_string(),
                    estsize_kb: if size.is_null(i) { 0 } else { size.value(i) },
                    region: region
                        .value(i)
                        .as_primitive::<Float64Type>()
                        .values()
                        .to_vec(),
                    em,
                },
            );
        }
        // The exposed table: without the internal columns, access_url made absolute.
        let absolute: StringArray = (0..batch.num_rows())
            .map(|i| Some(format!("{}{}", index.public_url, access.value(i))))
            .collect();
        let schema = batch.schema();
        let mut fields = Vec::new();
        let mut cols = Vec::new();
        for (f, c) in schema.fields().iter().zip(batch.columns()) {
            if f.name() == obscore::PATH_COLUMN || f.name() == obscore::HDU_COLUMN {
                continue;
            }
            fields.push(f.as_ref().clone());
            cols.push(if f.name() == "access_url" {
                Arc::new(absolute.clone()) as Arc<dyn Array>
            } else {
                c.clone()
            });
        }
        let exposed = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
        Ok((
            index,
            Some(ExtraTable {
                schema: "ivoa".into(),
                table: "ObsCore".into(),
                description:
                    "ObsCore 1.1: the images and cubes registered with tessera load-images".into(),
                batch: exposed,
            }),
        ))
    }

    /// The DataLink URL of a dataset.
    pub fn links_url(&self, did: &str) -> String {
        let enc: String = form_urlencoded::byte_serialize(did.as_bytes()).collect();
        format!("{}/datalink/links?ID={enc}", self.public_url)
    }
}
