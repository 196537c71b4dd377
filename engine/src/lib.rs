//! Tessera's query engine façade: what the server and the CLI ask of the archive.
//!
//! [`Archive`] opens a data root and describes its catalogs (rows, partitions, columns with
//! metadata). [`Engine`] runs ADQL 2.1 over them on DataFusion: it takes query text plus
//! [`Limits`] and returns a stream of Arrow record batches whose fields carry the column
//! metadata (unit, UCD, description, DALI xtype). The engine re-exports the storage types the
//! server needs, so the server never depends on `tessera-storage` directly.
#![deny(missing_docs)]

use tessera_storage::columns::ColumnMeta;

/// FITS images: headers, WCS, footprints and cutouts (for SODA and DataLink).
pub use tessera_storage::image;
pub use tessera_storage::{Catalog, Location, Pixel, Properties, StoreOptions};

pub mod adql;
mod cone;
mod error;
mod functions;
pub mod geom;
mod hats;
mod query;
mod runtime;
mod session;
mod tap_schema;
mod translate;
mod units;

pub use error::{Error, ErrorKind, Result};
pub use query::{
    Engine, EngineOptions, ExtraTable, FunctionDecl, Limits, QueryResult, UploadTable,
};

/// A column as the archive exposes it.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Arrow data type, as text.
    pub data_type: String,
    /// Arrow data type.
    pub arrow_type: arrow::datatypes::DataType,
    /// Unit, UCD, description, …
    pub meta: ColumnMeta,
}

/// A catalog as the archive exposes it.
#[derive(Debug, Clone)]
pub struct CatalogInfo {
    /// Where the catalog lives.
    pub location: Location,
    /// Schema name (first folder level under the root).
    pub schema: String,
    /// Table name (second level).
    pub table: String,
    /// Rows (`hats_nrows`).
    pub rows: u64,
    /// Number of partitions.
    pub partitions: usize,
    /// The partitions, in `partition_info.csv` order.
    pub pixels: Vec<Pixel>,
    /// Partitions per order, `(order, count)`, ascending.
    pub orders: Vec<(u8, usize)>,
    /// Columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// RA and Dec column names.
    pub ra_dec: (Option<String>, Option<String>),
}

impl CatalogInfo {
    /// Describes an opened catalog.
    pub fn describe(schema: &str, table: &str, c: &Catalog) -> CatalogInfo {
        let mut orders: Vec<(u8, usize)> = Vec::new();
        for p in &c.partitions {
            match orders.iter_mut().find(|(o, _)| *o == p.order) {
                Some(e) => e.1 += 1,
                None => orders.push((p.order, 1)),
            }
        }
        orders.sort();
        CatalogInfo {
            location: c.location.clone(),
            schema: schema.to_string(),
            table: table.to_string(),
            rows: c.nrows().unwrap_or(0),
            partitions: c.partitions.len(),
            pixels: c.partitions.clone(),
            orders,
            columns: c
                .schema
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    arrow_type: f.data_type().clone(),
                    meta: ColumnMeta::of(f),
                })
                .collect(),
            ra_dec: (
                c.ra_column().map(str::to_string),
                c.dec_column().map(str::to_string),
            ),
        }
    }

    /// The TAP name, `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// An archive: the catalogs under one data root, with their metadata loaded once.
#[derive(Debug, Clone)]
pub struct Archive {
    root: Location,
    catalogs: Vec<CatalogInfo>,
}

impl Archive {
    /// Opens the data root and loads the metadata of every catalog under it. A catalog that
    /// cannot be opened is skipped with a warning rather than taking the archive down.
    pub async fn open(root: Location) -> Result<Archive> {
        let mut catalogs = Vec::new();
        for e in tessera_storage::list_catalogs(&root).await? {
            match Catalog::open(&e.location).await {
                Ok(c) => catalogs.push(CatalogInfo::describe(&e.schema, &e.table, &c)),
                Err(err) => tracing::warn!(catalog = %e.location.url, "skipping catalog: {err}"),
            }
        }
        Ok(Archive { root, catalogs })
    }

    /// The data root.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The catalogs, sorted by schema then table.
    pub fn catalogs(&self) -> &[CatalogInfo] {
        &self.catalogs
    }
}
