//! Catalogue HiPS (IVOA HiPS 1.0, FORMATS.md §3) for every catalog, at
//! `/hips/<schema>.<table>/`: `properties`, `Metadata.xml` (and `metadata.xml`), `Moc.fits`,
//! `index.html`, `NorderK/Allsky.tsv` (K = 1…3) and `NorderK/DirD/NpixN.tsv`; `/hips/list`
//! is the node's HiPS list (§3.8).
//!
//! **How rows are distributed.** Each row appears in exactly one tile of the hierarchy. Rows
//! are ranked by a magnitude column (a `phot.mag*` UCD, else a numeric column named like
//! `*mag*` that is not an error; brightest first, NULL/NaN last), or, without one, in a
//! stable pseudo-random order (a hash of `_healpix_29`). In rank order each row goes to the
//! shallowest order k ≥ 1 whose tile containing it still holds fewer rows than its quota —
//! 60 per tile at order 1, 45 at order 2 (so the two Allsky files Aladin loads first hold at
//! most 2,880 and 8,640 rows), 100 from order 3 — down to order 11, where the remaining rows
//! all go whatever the quota. `hips_order` is the deepest order holding rows. Order 0 holds
//! no rows (Aladin Lite never requests order-0 catalogue tiles, nor single order-1/2 tiles,
//! only the two Allsky files), yet `hips_order_min = 0` and the order-0 tiles of covered
//! cells are served without rows: with `hips_order_min = 1`, Aladin 12.001's Hipsgen LINT
//! reports the error "min order found in the tile hierarchy [0] not conform" (a tile its
//! random probes already tried counts as found even after a 404, and on a remote HiPS its
//! probe pixels are out of range, so every probe repeats down to order 0); with
//! `hips_order_min = 0` a correct prober wants order-0 tiles to exist. A tile starts with
//! the one comment line
//! `# Completeness = <rows of its cell delivered by it and its ancestors>/<rows in its cell>`
//! and the header line. Tiles without rows are 404 with a short tab-free body (Aladin Lite
//! parses 404 bodies as tiles).
//!
//! **Columns.** Identifier, RA, Dec, the ranking magnitude, then the catalog's principal
//! columns; `Metadata.xml` describes them, with RA/Dec carrying `pos.eq.ra;meta.main` and
//! `pos.eq.dec;meta.main`.
//!
//! **How it is built.** A catalogue's tiles live in an on-disk tile store
//! ([`store`]: zstd-compressed tiles and a NUNIQ-sorted index, memory-mapped), built from the
//! HATS partitions two at a time ([`build`], with the assignment rule computed per partition,
//! [`assign`]), so any tile of a 100-million-row catalogue is a binary search and one small
//! decompression, and no request ever scans the catalogue. `tessera load` builds the store
//! after publishing a catalog (`ROOT/.tessera/hips/<schema>.<table>/`), and
//! `tessera hips index` rebuilds it; a server that finds none (or one built from another
//! version of the catalogue) builds it on the first request into its state directory
//! (`<state dir>/hips/`), for catalogues of up to `tessera serve --hips-max-rows` rows
//! (default 5,000,000); larger ones answer 404 naming the command to run.
//!
//! `Moc.fits` is the coverage of the rows at order `hips_order` clamped to 3…10, NUNIQ (§4.2).

mod assign;
pub(crate) mod build;
pub(crate) mod files;
mod moc;
mod store;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tessera_engine::{Catalog, CatalogInfo};
use tokio::sync::OnceCell;

use crate::tap::{TapService, request_origin};
use store::Store as Hierarchy;

/// Catalogues with more rows get no tile store built on the first request (default of
/// `tessera serve --hips-max-rows`).
pub const DEFAULT_MAX_ROWS: u64 = 5_000_000;

type Slot = Arc<OnceCell<Result<Arc<Hierarchy>, String>>>;

/// The HiPS service: the engine and the hierarchies built so far.
#[derive(Debug)]
pub struct HipsService {
    svc: Arc<TapService>,
    max_rows: u64,
    /// Where tile stores are built (`<state dir>/hips`).
    hips_dir: PathBuf,
    cache: Mutex<HashMap<String, Slot>>,
}

impl HipsService {
    fn catalog(&self, name: &str) -> Option<&CatalogInfo> {
        self.svc
            .engine
            .archive()
            .catalogs()
            .iter()
            .find(|c| c.qualified_name().eq_ignore_ascii_case(name))
    }

    fn servable(&self, c: &CatalogInfo) -> Result<(), String> {
        build::Source::of(c, None).map(|_| ())
    }

    /// Where a catalogue's tile store may be: the state directory's, then the data root's
    /// (written by `tessera load`).
    fn store_dirs(&self, name: &str) -> Vec<PathBuf> {
        let mut v = vec![self.hips_dir.join(name)];
        if let Some(root) = &self.svc.engine.archive().root().local_dir {
            let d = root.join(".tessera").join("hips").join(name);
            if !v.contains(&d) {
                v.push(d);
            }
        }
        v
    }

    async fn open_or_build(&self, c: &CatalogInfo) -> Result<Hierarchy, String> {
        let name = c.qualified_name();
        let src = build::Source::of(c, None)?;
        let cat = Catalog::open(&c.location)
            .await
            .map_err(|e| format!("opening {name}: {e}"))?;
        let fingerprint = src.fingerprint(&cat);
        let dirs = self.store_dirs(&name);
        for d in &dirs {
            if let Some(s) = store::Store::open(d, &fingerprint)? {
                return Ok(s);
            }
        }
        if c.rows > self.max_rows {
            return Err(format!(
                "catalog {name} has {} rows, over this server's limit for building its HiPS on \
                 the first request ({}, tessera serve --hips-max-rows): build it with \
                 `tessera hips index --data ROOT --catalog {name}`",
                c.rows, self.max_rows
            ));
        }
        let t = std::time::Instant::now();
        let summary = build::build(c, None, &dirs[0]).await?;
        tracing::info!(
            catalog = %name,
            rows = summary.rows,
            tiles = summary.tiles,
            hips_order = summary.max_order,
            bytes = summary.bytes,
            "HiPS tile store built in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        store::Store::open(&dirs[0], &fingerprint)?
            .ok_or_else(|| format!("the HiPS tile store of {name} just built does not open"))
    }

    async fn hierarchy(&self, c: &CatalogInfo) -> Result<Arc<Hierarchy>, String> {
        self.servable(c)?;
        let slot = {
            let mut m = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(c.qualified_name()).or_default().clone()
        };
        slot.get_or_init(|| async {
            let r = self.open_or_build(c).await.map(Arc::new);
            if let Err(e) = &r {
                tracing::warn!(catalog = %c.qualified_name(), "HiPS: {e}");
            }
            r
        })
        .await
        .clone()
    }
}

/// The tile-store directory of catalog `schema.table` under a local data root, where
/// `tessera load` and `tessera hips index` write it: `ROOT/.tessera/hips/<schema>.<table>`
/// (the server's own default state directory is `ROOT/.tessera`, so it finds it there).
pub fn root_store_dir(root: &std::path::Path, schema: &str, table: &str) -> PathBuf {
    root.join(".tessera")
        .join("hips")
        .join(format!("{schema}.{table}"))
}

/// Builds the catalogue HiPS tile store of catalog `schema.table` at `location` into `dir`,
/// replacing a previous one, with its rows ranked by column `rank` (default: the catalog's
/// magnitude column, else a stable pseudo-random order); returns a one-line summary.
pub async fn build_store(
    location: &tessera_engine::Location,
    schema: &str,
    table: &str,
    rank: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<String> {
    let cat = Catalog::open(location).await?;
    let info = CatalogInfo::describe(schema, table, &cat);
    let t = std::time::Instant::now();
    let s = build::build(&info, rank, dir)
        .await
        .map_err(|e| anyhow::anyhow!("building the HiPS tile store of {schema}.{table}: {e}"))?;
    Ok(format!(
        "HiPS tile store of {} rows in {} tiles down to order {} ({:.1} MiB) written to {} in {:.2} s",
        s.rows,
        s.tiles,
        s.max_order,
        s.bytes as f64 / (1u64 << 20) as f64,
        dir.display(),
        t.elapsed().as_secs_f64()
    ))
}

/// The `/hips` routes.
pub fn router(svc: Arc<TapService>) -> axum::Router {
    let max_rows = svc.config.hips_max_rows;
    let hips_dir = svc.config.hips_dir.clone();
    let state = Arc::new(HipsService {
        svc,
        max_rows,
        hips_dir,
        cache: Mutex::new(HashMap::new()),
    });
    axum::Router::new()
        .route("/hips/list", get(list))
        .route("/hips/{name}", get(redirect))
        .route("/hips/{name}/", get(index).head(files::head_index))
        .route("/hips/{name}/{*path}", get(file).head(files::head))
        .with_state(state)
        .layer(axum::middleware::map_response(files::cors))
}

/// A 404 with a short plain-text body without tabs (Aladin Lite reads 404 bodies as tiles).
fn missing(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", message.replace('\t', " ")),
    )
        .into_response()
}

fn etag(parts: &[&str]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut h);
    for p in parts {
        p.hash(&mut h);
    }
    format!("\"{:016x}\"", h.finish())
}

/// A HiPS file with its content type, `ETag` and `Cache-Control`; 304 when the client's
/// `If-None-Match` matches.
fn send(headers: &HeaderMap, tag: String, content_type: &'static str, body: Vec<u8>) -> Response {
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

async fn redirect(Path(name): Path<String>) -> Redirect {
    Redirect::permanent(&format!("/hips/{name}/"))
}

fn fmt(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// The `properties` record; `url` is the HiPS's absolute URL (without the final slash).
fn properties(h: &Hierarchy, url: &str) -> String {
    let name = &h.name;
    let (ra, dec, fov) = h.initial;
    let mut p: Vec<(&str, String)> = vec![
        ("creator_did", format!("ivo://tessera/hips/{name}")),
        ("obs_title", h.title.replace(['\n', '\r'], " ")),
        (
            "obs_description",
            format!(
                "Catalogue HiPS of {name} served by Tessera: each row in exactly one tile, {}",
                match &h.rank_column {
                    Some(m) => format!("brightest {m} first"),
                    None => "in a stable pseudo-random order".into(),
                }
            ),
        ),
        ("dataproduct_type", "catalog".into()),
        ("hips_version", "1.4".into()),
        ("hips_release_date", h.release_date.clone()),
        ("hips_creation_date", h.release_date.clone()),
        ("hips_status", "public master clonableOnce".into()),
        ("hips_frame", "equatorial".into()),
        ("hips_order", h.max_order.to_string()),
        ("hips_order_min", "0".into()),
        ("hips_tile_format", "tsv".into()),
        ("hips_cat_nrows", h.rows().to_string()),
        ("hips_service_url", url.to_string()),
        (
            "hips_builder",
            concat!("Tessera ", env!("CARGO_PKG_VERSION")).into(),
        ),
        ("moc_sky_fraction", format!("{:.5}", h.sky_fraction)),
        ("hips_initial_ra", fmt(ra)),
        ("hips_initial_dec", fmt(dec)),
        ("hips_initial_fov", fmt(fov)),
    ];
    let tiles: u64 = (1..=h.max_order).map(|k| h.tile_count(k)).sum();
    p.push(("hips_nb_tiles", tiles.to_string()));
    let mut out = String::new();
    for (k, v) in p {
        out.push_str(&format!("{k:<20}= {v}\n"));
    }
    out
}

fn base_url(headers: &HeaderMap, name: &str) -> String {
    format!("{}/hips/{name}", request_origin(headers))
}

async fn list(State(s): State<Arc<HipsService>>, headers: HeaderMap) -> Response {
    let mut out = String::from("# HiPS list of this Tessera node (IVOA HiPS 1.0 §4.4)\n");
    for c in s.svc.engine.archive().catalogs() {
        if s.servable(c).is_err() {
            continue;
        }
        match s.hierarchy(c).await {
            Ok(h) => {
                out.push('\n');
                out.push_str(&properties(&h, &base_url(&headers, &h.name)));
            }
            Err(e) => tracing::warn!(catalog = %c.qualified_name(), "HiPS list: {e}"),
        }
    }
    // The image HiPS of ROOT/hips/ (files.rs); a catalogue of the same name shadows one.
    let catalogs = s.svc.engine.archive().catalogs();
    let shadowed = catalogs
        .iter()
        .map(|c| c.qualified_name().to_ascii_lowercase())
        .collect();
    for record in files::list_records(&s, &headers, shadowed).await {
        out.push('\n');
        out.push_str(&record);
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response()
}

async fn index(
    State(s): State<Arc<HipsService>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&s, &name, "index.html", &headers).await
}

async fn file(
    State(s): State<Arc<HipsService>>,
    Path((name, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    serve(&s, &name, &path, &headers).await
}

/// `NorderK/DirD/NpixN.tsv` → (K, N); `NorderK/Allsky.tsv` → (K, None).
fn parse_tile(path: &str) -> Option<(u8, Option<u64>)> {
    let rest = path.strip_prefix("Norder")?;
    let (k, rest) = rest.split_once('/')?;
    let k: u8 = k.parse().ok().filter(|&k| k <= 29)?;
    if rest == "Allsky.tsv" {
        return Some((k, None));
    }
    let (d, rest) = rest.strip_prefix("Dir")?.split_once('/')?;
    let n: u64 = rest
        .strip_prefix("Npix")?
        .strip_suffix(".tsv")?
        .parse()
        .ok()?;
    let d: u64 = d.parse().ok()?;
    (n < 12u64 << (2 * u32::from(k)) && d == n / 10000 * 10000).then_some((k, Some(n)))
}

async fn serve(s: &HipsService, name: &str, path: &str, headers: &HeaderMap) -> Response {
    let Some(c) = s.catalog(name) else {
        // Not a catalogue: an image HiPS directory ROOT/hips/<name>/ (files.rs), if any.
        if let Some(r) = files::serve(s, name, path, headers, true).await {
            return r;
        }
        return missing(&format!(
            "no catalogue or image HiPS {name}; see /hips/list"
        ));
    };
    let h = match s.hierarchy(c).await {
        Ok(h) => h,
        Err(e) => return missing(&e),
    };
    let tag = |extra: &str| etag(&[&h.name, &h.rows().to_string(), &h.release_date, extra]);
    let url = base_url(headers, &h.name);
    match path {
        "properties" => send(
            headers,
            tag(&format!("properties {url}")),
            "text/plain; charset=utf-8",
            properties(&h, &url).into_bytes(),
        ),
        p if p.eq_ignore_ascii_case("metadata.xml") => send(
            headers,
            tag("metadata"),
            "text/xml; charset=utf-8",
            h.metadata_xml.clone().into_bytes(),
        ),
        "Moc.fits" => send(
            headers,
            tag("moc"),
            "application/fits",
            h.moc_fits().to_vec(),
        ),
        "index.html" => send(
            headers,
            tag(&format!("index {url}")),
            "text/html; charset=utf-8",
            index_html(&h, &url).into_bytes(),
        ),
        p => match parse_tile(p) {
            Some((k, None)) => match h.allsky(k) {
                Some(b) => send(
                    headers,
                    tag(p),
                    "text/tab-separated-values; charset=utf-8",
                    b,
                ),
                None => missing("no such Allsky file"),
            },
            Some((k, Some(n))) => match h.tile(k, n) {
                Some(b) => send(
                    headers,
                    tag(p),
                    "text/tab-separated-values; charset=utf-8",
                    b,
                ),
                None => missing("empty tile"),
            },
            None => missing("not a file of this HiPS"),
        },
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn index_html(h: &Hierarchy, url: &str) -> String {
    let mut orders = String::new();
    for k in 1..=h.max_order {
        orders.push_str(&format!(
            "<li>order {k}: {} tiles{}</li>\n",
            h.tile_count(k),
            if k <= 3 {
                format!(" (<a href=\"Norder{k}/Allsky.tsv\">Allsky.tsv</a>)")
            } else {
                String::new()
            }
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body>\n<h1>{t}</h1>\n<p>Catalogue HiPS of <code>{n}</code>: {rows} rows, orders 1 to {o}. \
         Add it to Aladin Lite with <code>A.catalogHiPS('{u}')</code>.</p>\n\
         <ul><li><a href=\"properties\">properties</a></li><li><a href=\"Metadata.xml\">Metadata.xml</a></li>\
         <li><a href=\"Moc.fits\">Moc.fits</a></li></ul>\n<ul>\n{orders}</ul>\n</body></html>\n",
        t = esc(&h.title),
        n = esc(&h.name),
        rows = h.rows(),
        o = h.max_order,
        u = esc(url),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths() {
        assert_eq!(parse_tile("Norder3/Dir0/Npix496.tsv"), Some((3, Some(496))));
        assert_eq!(
            parse_tile("Norder6/Dir10000/Npix10302.tsv"),
            Some((6, Some(10302)))
        );
        assert_eq!(parse_tile("Norder6/Dir0/Npix10302.tsv"), None);
        assert_eq!(parse_tile("Norder1/Dir0/Npix48.tsv"), None);
        assert_eq!(parse_tile("Norder2/Allsky.tsv"), Some((2, None)));
        assert_eq!(parse_tile("Norder3/Dir0/Npix1.png"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt(180.0), "180");
        assert_eq!(fmt(-0.0000001), "0");
        assert_eq!(fmt(56.75), "56.75");
    }
}
