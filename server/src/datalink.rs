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
        .with_state(svc)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Service descriptors for a result: a DataLink descriptor when the result has an ObsCore
/// `obs_publisher_did` column and the archive has registered images.
pub fn descriptors_for(schema: &Schema, svc: &TapService) -> Vec<String> {
    if svc.images.by_did.is_empty() || schema.field_with_name("obs_publisher_did").is_err() {
        return Vec::new();
    }
    vec![format!(
        "<RESOURCE type=\"meta\" utype=\"adhoc:service\" ID=\"datalink_svc\">\n\
<PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
<PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/datalink/links\"/>\n\
<PARAM name=\"contentType\" datatype=\"char\" arraysize=\"*\" value=\"{}\"/>\n\
<GROUP name=\"inputParams\">\n\
<PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" value=\"\" ref=\"obs_publisher_did\" ucd=\"meta.id;meta.main\"/>\n\
</GROUP>\n</RESOURCE>\n",
        esc(&svc.images.public_url),
        esc(CONTENT_TYPE)
    )]
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
