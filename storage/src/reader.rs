//! Reading HATS catalogs written by Tessera or by hats-import: properties, partition list,
//! schema with column metadata, and leaf data.
//!
//! Leaves are read with parquet's `ParquetObjectReader`, deprecated in parquet 59 in favour of
//! a hand-written `AsyncFileReader`; it still works and is what DataFusion 55 builds on. The
//! engine's table provider (issue 4) brings its own cached reader and replaces this use.
#![allow(deprecated)] // TODO(parquet 60): replace ParquetObjectReader, see the module doc.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use crate::error::{Error, Result};
use crate::pixel::{Pixel, parse_partition_info};
use crate::properties::{FILE_NAME, LEGACY_FILE_NAME, Properties};
use crate::store::Location;

/// An opened catalog: its metadata, loaded once.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Where it lives.
    pub location: Location,
    /// `hats.properties` (or the legacy `properties`).
    pub properties: Properties,
    /// Partitions in curve order.
    pub partitions: Vec<Pixel>,
    /// The Arrow schema, with column metadata in the fields.
    pub schema: SchemaRef,
}

impl Catalog {
    /// Opens the catalog at `location`. Reads `hats.properties` (falling back to
    /// `properties`), `partition_info.csv` (falling back to listing `dataset/`), and the schema
    /// from `dataset/_common_metadata` (falling back to the first leaf).
    pub async fn open(location: &Location) -> Result<Catalog> {
        let props_text = match read_text(location, FILE_NAME).await? {
            Some(t) => t,
            None => read_text(location, LEGACY_FILE_NAME)
                .await?
                .ok_or_else(|| Error::Missing {
                    root: location.url.clone(),
                    what: FILE_NAME.into(),
                })?,
        };
        let properties = Properties::parse(&props_text, &format!("{}/{FILE_NAME}", location.url))?;
        let partitions = match read_text(location, "partition_info.csv").await? {
            Some(t) => parse_partition_info(&t, &format!("{}/partition_info.csv", location.url))?,
            None => list_partitions(location).await?,
        };
        let schema_src = match location
            .store
            .head(&location.path("dataset/_common_metadata"))
            .await
        {
            Ok(m) => (m.location, m.size),
            Err(object_store::Error::NotFound { .. }) => {
                let p = partitions.first().ok_or_else(|| Error::Missing {
                    root: location.url.clone(),
                    what: "dataset/_common_metadata (and no partitions)".into(),
                })?;
                let m = location.store.head(&location.path(&p.leaf_path())).await?;
                (m.location, m.size)
            }
            Err(e) => return Err(e.into()),
        };
        let reader = ParquetObjectReader::new(location.store.clone(), schema_src.0)
            .with_file_size(schema_src.1);
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
        let schema = builder.schema().clone();
        Ok(Catalog {
            location: location.clone(),
            properties,
            partitions,
            schema,
        })
    }

    /// Total rows, from `hats_nrows`.
    pub fn nrows(&self) -> Option<u64> {
        self.properties.nrows()
    }

    /// The RA column name (`hats_col_ra`).
    pub fn ra_column(&self) -> Option<&str> {
        self.properties.get("hats_col_ra")
    }

    /// The Dec column name (`hats_col_dec`).
    pub fn dec_column(&self) -> Option<&str> {
        self.properties.get("hats_col_dec")
    }

    /// Reads one partition, optionally only the named columns (in the order given).
    pub async fn read_partition(
        &self,
        pixel: Pixel,
        columns: Option<&[&str]>,
    ) -> Result<Vec<RecordBatch>> {
        let path = self.location.path(&pixel.leaf_path());
        let meta = self.location.store.head(&path).await?;
        let reader =
            ParquetObjectReader::new(self.location.store.clone(), path).with_file_size(meta.size);
        let mut builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
        if let Some(cols) = columns {
            let pq = builder.parquet_schema();
            let mut idx = Vec::new();
            for c in cols {
                let i = builder.schema().index_of(c).map_err(|_| Error::Invalid {
                    what: "column",
                    message: format!("no column `{c}` in {}", self.location.url),
                })?;
                idx.push(i);
            }
            let mask = ProjectionMask::roots(pq, idx);
            builder = builder.with_projection(mask);
        }
        let stream = builder.with_batch_size(65_536).build()?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        match columns {
            // The projection mask yields file order; return the order asked for.
            Some(cols) => batches
                .iter()
                .map(|b| {
                    let idx = cols
                        .iter()
                        .map(|c| b.schema().index_of(c))
                        .collect::<Result<Vec<_>, _>>()?;
                    b.project(&idx)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::from),
            None => Ok(batches),
        }
    }
}

async fn read_text(location: &Location, rel: &str) -> Result<Option<String>> {
    let path = location.path(rel);
    match location.store.get(&path).await {
        Ok(r) => {
            let bytes = r.bytes().await?;
            String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| Error::Malformed {
                    file: format!("{}/{rel}", location.url),
                    message: "not UTF-8 text".into(),
                })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn list_partitions(location: &Location) -> Result<Vec<Pixel>> {
    let prefix = location.path("dataset");
    let mut pixels: Vec<Pixel> = location
        .store
        .list(Some(&prefix))
        .try_filter_map(|m| async move { Ok(Pixel::from_leaf_path(m.location.as_ref())) })
        .try_collect()
        .await?;
    pixels.sort();
    pixels.dedup();
    Ok(pixels)
}

/// A catalog found under a data root: `ROOT/<schema>/<table>/`.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The schema (first folder level).
    pub schema: String,
    /// The table (second folder level).
    pub table: String,
    /// Its location.
    pub location: Location,
}

/// Lists the catalogs under a data root: every `<schema>/<table>/` holding a
/// `hats.properties` (or legacy `properties` with a `dataset/` beside it). Hidden
/// directories (staging areas) are skipped. Sorted by schema then table.
pub async fn list_catalogs(root: &Location) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    let top = root.store.list_with_delimiter(Some(&root.prefix)).await?;
    for schema_dir in top.common_prefixes {
        let Some(schema) = schema_dir.filename().map(str::to_string) else {
            continue;
        };
        if schema.starts_with('.') {
            continue;
        }
        let tables = root.store.list_with_delimiter(Some(&schema_dir)).await?;
        for table_dir in tables.common_prefixes {
            let Some(table) = table_dir.filename().map(str::to_string) else {
                continue;
            };
            if table.starts_with('.') {
                continue;
            }
            let loc = root.child(&format!("{schema}/{table}"));
            let has = |name: &str| {
                let store = root.store.clone();
                let p = loc.path(name);
                async move { store.head(&p).await.is_ok() }
            };
            if has(FILE_NAME).await {
                out.push(CatalogEntry {
                    schema: schema.clone(),
                    table,
                    location: loc,
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    Ok(out)
}
