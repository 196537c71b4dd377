//! SODA 1.0 sync cutouts (<https://www.ivoa.net/documents/SODA/>): `GET|POST /soda/sync` with
//! `ID` and one of `CIRCLE`, `POLYGON` or `POS`, plus `BAND` (metres) for cubes.
//!
//! The cutout is planned from the image's WCS and written by
//! `tessera_storage::image::write_cutout` from the memory-mapped file (only the pixel rows
//! needed are touched) into the response as it is produced: memory does not depend on the
//! image size. Errors are DALI error documents: unknown ID → 404 (`NotFoundFault`), bad or
//! missing parameters → 400 (`UsageFault`), a region that misses the data → 400
//! (`NoOverlap`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tessera_engine::image::{
    CutoutPlan, CutoutRegion, ImageHdu, ImageWcs, plan_cutout, read_image_hdus, write_cutout,
};

use crate::tap::TapService;
use crate::tap::error::TapError;
use crate::tap::params::{TapParams, read_params};

/// The `/soda` routes.
pub fn router(svc: Arc<TapService>) -> axum::Router {
    axum::Router::new()
        .route("/soda/sync", axum::routing::get(sync).post(sync))
        .with_state(svc)
}

fn usage(m: impl Into<String>) -> TapError {
    TapError::bad_request(format!("UsageFault: {}", m.into()))
}

fn numbers(v: &str, name: &str) -> Result<Vec<f64>, TapError> {
    v.split_whitespace()
        .map(|x| match x.to_ascii_lowercase().as_str() {
            "-inf" => Ok(f64::NEG_INFINITY),
            "+inf" | "inf" => Ok(f64::INFINITY),
            t => t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| usage(format!("{name}={v}: `{x}` is not a number"))),
        })
        .collect()
}

fn circle(n: &[f64], name: &str, v: &str) -> Result<CutoutRegion, TapError> {
    match n {
        [ra, dec, r]
            if n.iter().all(|x| x.is_finite())
                && (-90.0..=90.0).contains(dec)
                && *r > 0.0
                && *r <= 180.0 =>
        {
            Ok(CutoutRegion::Circle {
                ra: *ra,
                dec: *dec,
                radius: *r,
            })
        }
        _ => Err(usage(format!(
            "{name}={v}: expected `ra dec radius` in degrees, Dec within [-90, 90], radius in (0, 180]"
        ))),
    }
}

fn polygon(n: &[f64], name: &str, v: &str) -> Result<CutoutRegion, TapError> {
    if n.len() < 6 || !n.len().is_multiple_of(2) || !n.iter().all(|x| x.is_finite()) {
        return Err(usage(format!(
            "{name}={v}: expected at least 3 vertices `ra1 dec1 ra2 dec2 ra3 dec3 …` in degrees"
        )));
    }
    Ok(CutoutRegion::Polygon(
        n.chunks(2).map(|c| (c[0], c[1])).collect(),
    ))
}

/// The spatial region of a request (exactly one of CIRCLE, POLYGON, POS).
pub fn region(p: &TapParams) -> Result<CutoutRegion, TapError> {
    let mut found = Vec::new();
    for name in ["CIRCLE", "POLYGON", "POS"] {
        for v in p.get_all(name) {
            found.push((name, v));
        }
    }
    let (name, v) = match found.as_slice() {
        [one] => *one,
        [] => return Err(usage("give the cutout region as CIRCLE, POLYGON or POS")),
        _ => {
            return Err(usage(
                "this service cuts one region per request: give one CIRCLE, POLYGON or POS",
            ));
        }
    };
    match name {
        "CIRCLE" => circle(&numbers(v, name)?, name, v),
        "POLYGON" => polygon(&numbers(v, name)?, name, v),
        _ => {
            let mut it = v.trim().splitn(2, char::is_whitespace);
            let shape = it.next().unwrap_or("").to_ascii_uppercase();
            let rest = it.next().unwrap_or("");
            let n = numbers(rest, "POS")?;
            match shape.as_str() {
                "CIRCLE" => circle(&n, "POS", v),
                "POLYGON" => polygon(&n, "POS", v),
                "RANGE" if n.len() == 4 => {
                    if n[2] > n[3] {
                        return Err(usage(format!("POS={v}: the Dec bounds are reversed")));
                    }
                    Ok(CutoutRegion::Range {
                        ra: (n[0], n[1]),
                        dec: (n[2], n[3]),
                    })
                }
                _ => Err(usage(format!(
                    "POS={v}: expected CIRCLE ra dec r, RANGE ra1 ra2 dec1 dec2 or POLYGON ra1 dec1 …"
                ))),
            }
        }
    }
}

/// Checks a cutout request and plans it: the HDU and the pixel ranges to write.
pub async fn plan_request(
    svc: &TapService,
    p: &TapParams,
) -> Result<(ImageHdu, CutoutPlan), TapError> {
    let ids = p.get_all("ID");
    let id = match ids.as_slice() {
        [one] => one.trim().to_string(),
        [] => return Err(usage("the ID parameter is missing")),
        _ => return Err(usage("one ID per request")),
    };
    let entry =
        svc.images.by_did.get(&id).cloned().ok_or_else(|| {
            TapError::not_found(format!("NotFoundFault: no dataset with ID {id}"))
        })?;
    let region = region(p)?;
    let band = band(p)?;
    if !p.get_all("TIME").is_empty() || !p.get_all("POL").is_empty() {
        // Our images have no time or polarisation axis: a constraint cannot select part
        // of one, so it is refused rather than silently ignored.
        return Err(usage(
            "TIME and POL cutouts are not supported: the registered images have no time or polarization axis",
        ));
    }
    let (hdu, plan) = tokio::task::spawn_blocking(move || {
        let hdus = read_image_hdus(&entry.path).map_err(|e| TapError::internal(e.to_string()))?;
        let hdu = hdus
            .into_iter()
            .find(|h| h.index == entry.hdu)
            .ok_or_else(|| {
                TapError::internal(format!(
                    "{}: HDU {} is gone",
                    entry.path.display(),
                    entry.hdu
                ))
            })?;
        let wcs =
            ImageWcs::from_header(&hdu.header).map_err(|e| TapError::internal(e.to_string()))?;
        let plan = plan_cutout(&hdu, &wcs, &region, band).map_err(|e| usage(e.to_string()))?;
        Ok::<_, TapError>((hdu, plan))
    })
    .await
    .map_err(TapError::internal)??;
    match plan {
        Some(plan) => Ok((hdu, plan)),
        None => Err(TapError::bad_request(format!(
            "NoOverlap: the region{} does not overlap dataset {id}",
            if band.is_some() { " and band" } else { "" }
        ))),
    }
}

/// The bytes of a planned cutout, as they are written.
pub fn cutout_body(
    hdu: ImageHdu,
    plan: CutoutPlan,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send>> {
    let path = hdu.file().to_path_buf();
    crate::tap::stream::blocking_body(move |out| {
        write_cutout(&path, &hdu, &plan, out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

fn band(p: &TapParams) -> Result<Option<(f64, f64)>, TapError> {
    let vals = p.get_all("BAND");
    match vals.as_slice() {
        [] => Ok(None),
        [v] => {
            let n = numbers(v, "BAND")?;
            match n.as_slice() {
                [x] => Ok(Some((*x, *x))),
                [a, b] if a <= b => Ok(Some((*a, *b))),
                _ => Err(usage(format!("BAND={v}: expected `lo hi` in metres"))),
            }
        }
        _ => Err(usage("one BAND per request")),
    }
}

async fn sync(State(svc): State<Arc<TapService>>, req: Request) -> Response {
    match run(&svc, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(svc: &Arc<TapService>, req: Request) -> Result<Response, TapError> {
    let p = read_params(req, &svc.config.params).await?;
    let (hdu, plan) = plan_request(svc, &p).await?;
    let mut r = Response::new(Body::from_stream(cutout_body(hdu, plan)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fits"),
    );
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"cutout.fits\""),
    );
    Ok(r)
}
