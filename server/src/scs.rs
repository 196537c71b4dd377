//! Simple Cone Search 1.03 (<https://www.ivoa.net/documents/latest/ConeSearch.html>) for every
//! catalog: `GET /scs/<schema>.<table>?RA=&DEC=&SR=[&VERB=]`, and `GET /scs` for the first
//! catalog of the data root (or the one named by `TABLE=`).
//!
//! The cone becomes the ADQL `CONTAINS(POINT, CIRCLE)` query that the engine's small-cone fast
//! path answers, and the result streams through the TAP result path as VOTable. SCS 1.03
//! requires exactly one field with each of the UCD1 `ID_MAIN`, `POS_EQ_RA_MAIN` and
//! `POS_EQ_DEC_MAIN`: the catalogue's identifier (its `meta.id;meta.main` column, else its
//! first data column) and position columns carry them in the output (their UCD1+ is kept
//! in the description). VERB=1 gives those three columns, VERB=2 (default) the principal
//! columns, VERB=3 all of them. Errors are answered as SCS prescribes: HTTP 200 with a
//! VOTable holding `INFO name="Error"`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_engine::{CatalogInfo, Limits};

use crate::formats::{Format, WriterOptions};
use crate::tap::TapService;

/// The `/scs` routes.
pub fn router(svc: Arc<TapService>) -> axum::Router {
    axum::Router::new()
        .route("/scs", axum::routing::get(scs_default))
        .route("/scs/{table}", axum::routing::get(scs_table))
        .with_state(svc)
}

/// An SCS error document (SCS 1.03 §3.3): HTTP 200, `INFO name="Error"`.
fn error(message: &str) -> Response {
    let esc = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n\
         <DESCRIPTION>Simple Cone Search error</DESCRIPTION>\n\
         <INFO ID=\"Error\" name=\"Error\" value=\"{esc}\"/>\n\
         <RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"ERROR\">{esc}</INFO>\n</RESOURCE>\n\
         </VOTABLE>\n"
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn params(q: Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.to_ascii_uppercase(), v.into_owned()))
        .collect()
}

async fn scs_default(State(svc): State<Arc<TapService>>, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let cats = svc.engine.archive().catalogs();
    let cat = match p.get("TABLE") {
        Some(t) => cats
            .iter()
            .find(|c| c.qualified_name().eq_ignore_ascii_case(t)),
        None => cats.first(),
    };
    match cat {
        Some(c) => cone(&svc, c, &p).await,
        None => error(&format!(
            "no catalog {}; the cone search services are /scs/<schema>.<table> for: {}",
            p.get("TABLE")
                .map(String::as_str)
                .unwrap_or("(this data root has none)"),
            names(cats)
        )),
    }
}

fn names(cats: &[CatalogInfo]) -> String {
    cats.iter()
        .map(|c| c.qualified_name())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn scs_table(
    State(svc): State<Arc<TapService>>,
    Path(table): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q);
    let cats = svc.engine.archive().catalogs();
    match cats
        .iter()
        .find(|c| c.qualified_name().eq_ignore_ascii_case(&table))
    {
        Some(c) => cone(&svc, c, &p).await,
        None => {
            let mut r = error(&format!(
                "no catalog {table}; cone search is offered for: {}",
                names(cats)
            ));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

fn number(p: &HashMap<String, String>, name: &str) -> Result<f64, String> {
    let v = p
        .get(name)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!("the {name} parameter is missing (RA, DEC and SR are required, in degrees)")
        })?;
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("{name}={v} is not a number"))
}

/// The identifier column of a catalog: `meta.id;meta.main`, else the first data column.
pub(crate) fn id_column(c: &CatalogInfo) -> Option<&str> {
    c.columns
        .iter()
        .find(|col| {
            col.meta
                .ucd
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case("meta.id;meta.main"))
        })
        .or_else(|| c.columns.iter().find(|col| col.name != "_healpix_29"))
        .map(|col| col.name.as_str())
}

pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn cone(svc: &TapService, c: &CatalogInfo, p: &HashMap<String, String>) -> Response {
    let (ra, dec, sr) = match (number(p, "RA"), number(p, "DEC"), number(p, "SR")) {
        (Ok(a), Ok(b), Ok(r)) => (a, b, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error(&e),
    };
    if !(-90.0..=90.0).contains(&dec) {
        return error(&format!("DEC={dec} is outside [-90, 90]"));
    }
    if !(0.0..=180.0).contains(&sr) {
        return error(&format!("SR={sr} must be between 0 and 180 degrees"));
    }
    let verb = match p.get("VERB").map(|v| v.trim()) {
        None | Some("") => 2,
        Some(v) => match v.parse::<u8>() {
            Ok(n @ 1..=3) => n,
            _ => return error(&format!("VERB={v} must be 1, 2 or 3")),
        },
    };
    let (Some(ra_col), Some(dec_col)) = (c.ra_dec.0.as_deref(), c.ra_dec.1.as_deref()) else {
        return error(&format!(
            "catalog {} declares no position columns",
            c.qualified_name()
        ));
    };
    let Some(id_col) = id_column(c) else {
        return error(&format!("catalog {} has no columns", c.qualified_name()));
    };
    let mut cols: Vec<&str> = vec![id_col, ra_col, dec_col];
    let base = cols.clone();
    let extra: Vec<&tessera_engine::ColumnInfo> = c
        .columns
        .iter()
        .filter(|col| col.name != "_healpix_29" && !base.contains(&col.name.as_str()))
        .collect();
    match verb {
        1 => {}
        2 => cols.extend(
            extra
                .iter()
                .filter(|col| col.meta.principal)
                .map(|col| col.name.as_str()),
        ),
        _ => cols.extend(extra.iter().map(|col| col.name.as_str())),
    }
    let select: Vec<String> = cols.iter().map(|n| quote(n)).collect();
    let ra = ra.rem_euclid(360.0);
    let adql = format!(
        "SELECT {} FROM {}.{} WHERE 1 = CONTAINS(POINT('ICRS', {}, {}), CIRCLE('ICRS', {ra:?}, {dec:?}, {sr:?}))",
        select.join(", "),
        quote(&c.schema),
        quote(&c.table),
        quote(ra_col),
        quote(dec_col),
    );
    let limits = Limits {
        max_rows: Some(svc.config.max_rec_hard),
        timeout: Some(svc.config.sync_timeout),
        ..Default::default()
    };
    let mut result = match svc.engine.query(&adql, &limits).await {
        Ok(r) => r,
        Err(e) => return error(&e.to_string()),
    };
    let first = match result.next().await {
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => return error(&e.to_string()),
        None => None,
    };
    let schema = scs_schema(&result.schema(), id_col, ra_col, dec_col);
    let enc = crate::tap::stream::encode_with_schema(
        first,
        result,
        schema,
        Format::VoTableBinary2,
        WriterOptions {
            table_name: c.qualified_name(),
            infos: vec![("QUERY".into(), adql)],
            ..Default::default()
        },
    );
    let mut resp = Response::new(Body::from_stream(enc.body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    resp
}

/// The result schema with the SCS 1.03 UCD1s on the identifier and position fields (their
/// UCD1+ moves into the description).
fn scs_schema(s: &SchemaRef, id: &str, ra: &str, dec: &str) -> SchemaRef {
    let fields: Vec<Field> = s
        .fields()
        .iter()
        .map(|f| {
            let ucd1 = if f.name() == id {
                Some("ID_MAIN")
            } else if f.name() == ra {
                Some("POS_EQ_RA_MAIN")
            } else if f.name() == dec {
                Some("POS_EQ_DEC_MAIN")
            } else {
                None
            };
            match ucd1 {
                None => f.as_ref().clone(),
                Some(u) => {
                    let mut md = f.metadata().clone();
                    if let Some(old) = md.insert("ucd".into(), u.into()) {
                        let d = md.get("description").cloned().unwrap_or_default();
                        let sep = if d.is_empty() { "" } else { " " };
                        md.insert("description".into(), format!("{d}{sep}(UCD1+ {old})"));
                    }
                    f.as_ref().clone().with_metadata(md)
                }
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}
