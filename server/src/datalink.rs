//! DataLink 1.1 (<https://www.ivoa.net/documents/DataLink/>): `GET|POST /datalink/links?ID=…`
//! (several IDs allowed) for the registered images, the whole files at `/datalink/file?ID=…`,
//! and the service descriptors that results carry so that clients (pyvo, TOPCAT) can follow
//! them.
//!
//! A links document lists per ID: `#this` (the FITS file), `#cutout` (the SODA sync service,
//! described by a `RESOURCE type="meta" utype="adhoc:service"` with the ID fixed and the
//! ranges of that dataset), or one error row (`NotFoundFault: …`) for an unknown ID. The
//! FIELDs carry the UCDs DataLink prescribes (`stilts datalinklint` checks them).

use std::sync::Arc;

use arrow::datatypes::Schema;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::images::ImageEntry;
use crate::tap::TapService;
use crate::tap::error::TapError;
use crate::tap::params::read_params;

/// The DataLink content type.
pub const CONTENT_TYPE: &str = "application/x-votable+xml;content=datalink";

/// The `/datalink` routes.
pub fn router(svc: Arc<TapService>) -> axum::Router {
    axum::Router::new()
        .route("/datalink/links", axum::routing::get(links).post(links))
        .route("/datalink/file", axum::routing::get(file))
        .route(
            "/datalink/cat/{table}",
            axum::routing::get(catalog_links).post(catalog_links),
        )
        .with_state(svc)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Service descriptors for a result: a DataLink descriptor when the result has an ObsCore
/// `obs_publisher_did` column and the archive has registered images, and one per catalog
/// whose identifier column (its `meta.id;meta.main` column, else its first data column) is
/// in the result under the same name — the links of a catalogue row (`/datalink/cat/…`).
pub fn descriptors_for(schema: &Schema, svc: &TapService) -> Vec<String> {
    let mut out = Vec::new();
    for (n, c) in svc.engine.archive().catalogs().iter().enumerate() {
        let Some(id) = crate::scs::id_column(c) else {
            continue;
        };
        if schema.field_with_name(id).is_err() {
            continue;
        }
        out.push(format!(
            "<RESOURCE type=\"meta\" utype=\"adhoc:service\" ID=\"catlinks_{n}\">\n\
<DESCRIPTION>Links of a row of {table}: the row, its neighbours, related queries</DESCRIPTION>\n\
<PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
<PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{base}/datalink/cat/{table}\"/>\n\
<PARAM name=\"contentType\" datatype=\"char\" arraysize=\"*\" value=\"{ct}\"/>\n\
<GROUP name=\"inputParams\">\n\
<PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" value=\"\" ref=\"{field}\"/>\n\
<PARAM name=\"detail\" datatype=\"char\" arraysize=\"*\" value=\"full\"><DESCRIPTION>Columns of the row link: full, principal or minimal</DESCRIPTION><VALUES><OPTION value=\"full\"/><OPTION value=\"principal\"/><OPTION value=\"minimal\"/></VALUES></PARAM>\n\
</GROUP>\n</RESOURCE>\n",
            table = esc(&c.qualified_name()),
            base = esc(&svc.images.public_url),
            ct = esc(CONTENT_TYPE),
            field = esc(id),
        ));
    }
    if svc.images.by_did.is_empty() || schema.field_with_name("obs_publisher_did").is_err() {
        return out;
    }
    out.push(format!(
        "<RESOURCE type=\"meta\" utype=\"adhoc:service\" ID=\"datalink_svc\">\n\
<PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
<PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/datalink/links\"/>\n\
<PARAM name=\"contentType\" datatype=\"char\" arraysize=\"*\" value=\"{}\"/>\n\
<GROUP name=\"inputParams\">\n\
<PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" value=\"\" ref=\"obs_publisher_did\" ucd=\"meta.id;meta.main\"/>\n\
</GROUP>\n</RESOURCE>\n",
        esc(&svc.images.public_url),
        esc(CONTENT_TYPE)
    ));
    out
}

/// The SODA descriptor of one dataset (its ID fixed, its ranges as VALUES).
fn soda_descriptor(svc: &TapService, e: &ImageEntry, n: usize) -> String {
    let mut s = format!(
        "<RESOURCE type=\"meta\" utype=\"adhoc:service\" ID=\"soda_{n}\">\n\
<PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/SODA#sync-1.0\"/>\n\
<PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/soda/sync\"/>\n\
<GROUP name=\"inputParams\">\n\
<PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" value=\"{}\" ucd=\"meta.id;meta.dataset\"/>\n\
<PARAM name=\"CIRCLE\" datatype=\"double\" arraysize=\"3\" xtype=\"circle\" unit=\"deg\" ucd=\"obs.field\" value=\"\"><DESCRIPTION>The cutout's circle (ra dec radius)</DESCRIPTION></PARAM>\n\
<PARAM name=\"POLYGON\" datatype=\"double\" arraysize=\"*\" xtype=\"polygon\" unit=\"deg\" ucd=\"obs.field\" value=\"\"><DESCRIPTION>The cutout's polygon (ra dec ...)</DESCRIPTION></PARAM>\n\
<PARAM name=\"POS\" datatype=\"char\" arraysize=\"*\" ucd=\"obs.field\" value=\"\"><DESCRIPTION>CIRCLE, RANGE or POLYGON shape</DESCRIPTION></PARAM>\n",
        esc(&svc.images.public_url),
        esc(&e.did)
    );
    if let Some((lo, hi)) = e.em {
        s.push_str(&format!(
            "<PARAM name=\"BAND\" datatype=\"double\" arraysize=\"2\" xtype=\"interval\" unit=\"m\" ucd=\"em.wl;stat.interval\" value=\"\"><DESCRIPTION>Wavelength interval (vacuum or air as the cube's axis)</DESCRIPTION><VALUES><MIN value=\"{lo:?}\"/><MAX value=\"{hi:?}\"/></VALUES></PARAM>\n"
        ));
    }
    s.push_str("</GROUP>\n</RESOURCE>\n");
    s
}

const FIELDS: &str = "<FIELD name=\"ID\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.id;meta.main\"/>\n\
<FIELD name=\"access_url\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.ref.url\"/>\n\
<FIELD name=\"service_def\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.ref\"/>\n\
<FIELD name=\"error_message\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.code.error\"/>\n\
<FIELD name=\"description\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.note\"/>\n\
<FIELD name=\"semantics\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.code\"/>\n\
<FIELD name=\"content_type\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.code.mime\"/>\n\
<FIELD name=\"content_length\" datatype=\"long\" unit=\"byte\" ucd=\"phys.size;meta.file\"/>\n";

fn row(cells: [&str; 7], length: Option<u64>) -> String {
    let mut s = String::from("<TR>");
    for c in cells {
        if c.is_empty() {
            s.push_str("<TD/>");
        } else {
            s.push_str(&format!("<TD>{}</TD>", esc(c)));
        }
    }
    match length {
        Some(n) => s.push_str(&format!("<TD>{n}</TD>")),
        None => s.push_str("<TD/>"),
    }
    s.push_str("</TR>\n");
    s
}

/// The links document of `ids`.
pub fn links_document(svc: &TapService, ids: &[&str]) -> String {
    let mut rows = String::new();
    let mut services = String::new();
    for (n, id) in ids.iter().enumerate() {
        match svc.images.by_did.get(*id) {
            None => rows.push_str(&row(
                [
                    id,
                    "",
                    "",
                    &format!("NotFoundFault: no dataset with ID {id}"),
                    "",
                    "#this",
                    "",
                ],
                None,
            )),
            Some(e) => {
                let enc: String = form_urlencoded::byte_serialize(e.did.as_bytes()).collect();
                let size = std::fs::metadata(&e.path).ok().map(|m| m.len());
                rows.push_str(&row(
                    [
                        id,
                        &format!("{}/datalink/file?ID={enc}", svc.images.public_url),
                        "",
                        "",
                        &format!("the whole FITS file ({})", e.dataproduct_type),
                        "#this",
                        "application/fits",
                    ],
                    size,
                ));
                rows.push_str(&row(
                    [
                        id,
                        "",
                        &format!("soda_{n}"),
                        "",
                        "SODA cutout: a region (CIRCLE, POLYGON, POS) and, for cubes, a BAND",
                        "#cutout",
                        "application/fits",
                    ],
                    None,
                ));
                services.push_str(&soda_descriptor(svc, e, n));
            }
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n\
<RESOURCE type=\"results\">\n<INFO name=\"standardID\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
<TABLE>\n{FIELDS}<DATA><TABLEDATA>\n{rows}</TABLEDATA></DATA>\n</TABLE>\n</RESOURCE>\n{services}</VOTABLE>\n"
    )
}

async fn links(State(svc): State<Arc<TapService>>, req: Request) -> Response {
    let p = match read_params(req, &svc.config.params).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ids: Vec<&str> = p.get_all("ID");
    if ids.is_empty() {
        return TapError::bad_request(
            "the ID parameter is missing: /datalink/links?ID=<obs_publisher_did>",
        )
        .into_response();
    }
    if ids.len() > 1000 {
        return TapError::bad_request(format!("{} IDs in one request; at most 1000", ids.len()))
            .into_response();
    }
    let mut r = Response::new(Body::from(links_document(&svc, &ids)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

fn tap_url(svc: &TapService, adql: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("LANG", "ADQL")
        .append_pair("QUERY", adql)
        .finish();
    format!("{}/tap/sync?{q}", svc.images.public_url)
}

fn adql_literal(id: &str, numeric: bool) -> String {
    if numeric {
        id.to_string()
    } else {
        format!("'{}'", id.replace('\'', "''"))
    }
}

/// `/datalink/cat/<schema>.<table>?ID=…[&detail=full|principal|minimal]`: the links of
/// catalogue rows: `#this` (the row, as a TAP query; `detail` chooses all columns, the
/// principal ones, or identifier and position), `#auxiliary` (the sources within 1′), and
/// the related queries configured for the catalogue (`.tessera/datalink.json`).
async fn catalog_links(
    State(svc): State<Arc<TapService>>,
    axum::extract::Path(table): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let p = match read_params(req, &svc.config.params).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let cats = svc.engine.archive().catalogs();
    let Some(c) = cats
        .iter()
        .find(|c| c.qualified_name().eq_ignore_ascii_case(&table))
    else {
        return TapError::not_found(format!("NotFoundFault: no catalog {table}")).into_response();
    };
    let ids = p.get_all("ID");
    if ids.is_empty() || ids.len() > 1000 {
        return TapError::bad_request("give 1 to 1000 ID parameters").into_response();
    }
    let detail = p
        .get_nonempty("DETAIL")
        .unwrap_or("full")
        .to_ascii_lowercase();
    if !matches!(detail.as_str(), "full" | "principal" | "minimal") {
        return TapError::bad_request(format!("detail={detail}: use full, principal or minimal"))
            .into_response();
    }
    let (Some(id_col), Some(ra), Some(dec)) = (
        crate::scs::id_column(c),
        c.ra_dec.0.as_deref(),
        c.ra_dec.1.as_deref(),
    ) else {
        return TapError::bad_request(format!("catalog {table} has no identifier or position"))
            .into_response();
    };
    let numeric = c
        .columns
        .iter()
        .find(|col| col.name == id_col)
        .is_some_and(|col| col.arrow_type.is_numeric());
    let q = crate::scs::quote;
    let from = format!("{}.{}", q(&c.schema), q(&c.table));
    let cols: Vec<String> = match detail.as_str() {
        "minimal" => vec![q(id_col), q(ra), q(dec)],
        "principal" => {
            let mut v = vec![q(id_col), q(ra), q(dec)];
            v.extend(
                c.columns
                    .iter()
                    .filter(|col| {
                        col.meta.principal && ![id_col, ra, dec].contains(&col.name.as_str())
                    })
                    .map(|col| q(&col.name)),
            );
            v
        }
        _ => c
            .columns
            .iter()
            .filter(|col| col.name != "_healpix_29")
            .map(|col| q(&col.name))
            .collect(),
    };
    let mut rows = String::new();
    for id in ids {
        let valid = !numeric || id.trim().parse::<f64>().is_ok();
        let lit = adql_literal(id.trim(), numeric);
        // The row's position, for the neighbours and the related queries.
        let pos = if valid {
            let adql = format!(
                "SELECT {}, {} FROM {from} WHERE {} = {lit}",
                q(ra),
                q(dec),
                q(id_col)
            );
            match svc
                .engine
                .query(&adql, &tessera_engine::Limits::default())
                .await
            {
                Ok(r) => r.collect().await.ok().and_then(|(b, _)| {
                    let b = b.into_iter().find(|b| b.num_rows() > 0)?;
                    let ra =
                        arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Float64)
                            .ok()?;
                    let dec =
                        arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Float64)
                            .ok()?;
                    use arrow::array::AsArray;
                    Some((
                        ra.as_primitive::<arrow::datatypes::Float64Type>().value(0),
                        dec.as_primitive::<arrow::datatypes::Float64Type>().value(0),
                    ))
                }),
                Err(_) => None,
            }
        } else {
            None
        };
        let Some((ra0, dec0)) = pos else {
            rows.push_str(&row(
                [
                    id,
                    "",
                    "",
                    &format!("NotFoundFault: no row of {table} with {id_col} = {id}"),
                    "",
                    "#this",
                    "",
                ],
                None,
            ));
            continue;
        };
        let this = format!(
            "SELECT {} FROM {from} WHERE {} = {lit}",
            cols.join(", "),
            q(id_col)
        );
        rows.push_str(&row(
            [
                id,
                &tap_url(&svc, &this),
                "",
                "",
                &format!("this row of {table} ({detail} columns)"),
                "#this",
                "application/x-votable+xml",
            ],
            None,
        ));
        let near = format!(
            "SELECT {}, {}, {}, DISTANCE(POINT('ICRS', {}, {}), POINT('ICRS', {ra0:?}, {dec0:?})) AS dist FROM {from} WHERE 1 = CONTAINS(POINT('ICRS', {}, {}), CIRCLE('ICRS', {ra0:?}, {dec0:?}, 0.0166666667)) ORDER BY dist",
            q(id_col),
            q(ra),
            q(dec),
            q(ra),
            q(dec),
            q(ra),
            q(dec)
        );
        rows.push_str(&row(
            [
                id,
                &tap_url(&svc, &near),
                "",
                "",
                &format!("sources of {table} within 1 arcmin"),
                "#auxiliary",
                "application/x-votable+xml",
            ],
            None,
        ));
        for r in svc
            .images
            .related
            .iter()
            .filter(|r| r.catalog.eq_ignore_ascii_case(&table))
        {
            let adql = r
                .query
                .replace("{id}", &lit)
                .replace("{ra}", &format!("{ra0:?}"))
                .replace("{dec}", &format!("{dec0:?}"));
            rows.push_str(&row(
                [
                    id,
                    &tap_url(&svc, &adql),
                    "",
                    "",
                    &r.description,
                    &r.semantics,
                    "application/x-votable+xml",
                ],
                None,
            ));
        }
    }
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n\
<RESOURCE type=\"results\">\n<INFO name=\"standardID\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
<TABLE>\n{FIELDS}<DATA><TABLEDATA>\n{rows}</TABLEDATA></DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n"
    );
    let mut r = Response::new(Body::from(doc));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// `GET /datalink/file?ID=…`: the whole registered file, streamed.
async fn file(State(svc): State<Arc<TapService>>, req: Request) -> Response {
    let p = match read_params(req, &svc.config.params).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(id) = p.get_nonempty("ID") else {
        return TapError::bad_request("the ID parameter is missing").into_response();
    };
    let Some(e) = svc.images.by_did.get(id) else {
        return TapError::not_found(format!("NotFoundFault: no dataset with ID {id}"))
            .into_response();
    };
    let f = match tokio::fs::File::open(&e.path).await {
        Ok(f) => f,
        Err(err) => {
            return TapError::internal(format!("{}: {err}", e.path.display())).into_response();
        }
    };
    let len = f.metadata().await.ok().map(|m| m.len());
    let stream = futures::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fits"),
    );
    if let Some(n) = len
        && let Ok(v) = HeaderValue::from_str(&n.to_string())
    {
        r.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    r
}
