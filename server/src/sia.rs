//! SIAv2 (<https://www.ivoa.net/documents/SIA/>) over `ivoa.ObsCore`: `GET|POST /sia/query`
//! (also `/sia2/query`), with `/sia/capabilities` and `/sia/availability`.
//!
//! The parameters become one ADQL query over the ObsCore table, answered by the TAP path
//! and streamed as VOTable with a DataLink service descriptor. A parameter given several
//! times matches any of its values (OR); different parameters must all match (AND).
//! Intervals (`BAND`, `TIME`, `FOV`, `SPATRES`, `EXPTIME`) are `lo hi` with `-Inf`/`+Inf`
//! (or one value for a point); an interval matches a dataset whose coverage overlaps it.
//! `POS` is `CIRCLE ra dec r`, `RANGE ra1 ra2 dec1 dec2` or `POLYGON ra1 dec1 …` (ICRS
//! degrees) and matches datasets whose footprint (`s_region`) intersects it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::formats::Format;
use crate::tap::TapService;
use crate::tap::error::TapError;
use crate::tap::params::read_params;
use crate::tap::sync::QuerySpec;

/// The `/sia` routes.
pub fn router(svc: Arc<TapService>) -> axum::Router {
    axum::Router::new()
        .route("/sia/query", axum::routing::get(query).post(query))
        .route("/sia2/query", axum::routing::get(query).post(query))
        .route("/sia/capabilities", axum::routing::get(capabilities))
        .route("/sia2/capabilities", axum::routing::get(capabilities))
        .route("/sia/availability", axum::routing::get(availability))
        .route("/sia2/availability", axum::routing::get(availability))
        .with_state(svc)
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn num(s: &str, what: &str) -> Result<f64, TapError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "-inf" => Ok(f64::NEG_INFINITY),
        "+inf" | "inf" => Ok(f64::INFINITY),
        t => t
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| TapError::bad_request(format!("{what}: `{s}` is not a number"))),
    }
}

/// `lo hi` (or one value) as an interval.
fn interval(v: &str, name: &str) -> Result<(f64, f64), TapError> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let (lo, hi) = match parts.as_slice() {
        [x] => {
            let x = num(x, name)?;
            (x, x)
        }
        [a, b] => (num(a, name)?, num(b, name)?),
        _ => {
            return Err(TapError::bad_request(format!(
                "{name}={v} is not an interval: give `lo hi` (or one value); -Inf and +Inf are allowed"
            )));
        }
    };
    if lo > hi {
        return Err(TapError::bad_request(format!(
            "{name}={v}: the lower bound exceeds the upper bound"
        )));
    }
    Ok((lo, hi))
}

fn lit(x: f64) -> String {
    format!("{x:?}")
}

/// Overlap of `[lo, hi]` with the column pair `[min_col, max_col]`.
fn overlap(lo: f64, hi: f64, min_col: &str, max_col: &str) -> String {
    let mut c = Vec::new();
    if hi.is_finite() {
        c.push(format!("{min_col} <= {}", lit(hi)));
    }
    if lo.is_finite() {
        c.push(format!("{max_col} >= {}", lit(lo)));
    }
    if c.is_empty() {
        c.push(format!("{min_col} IS NOT NULL"));
    }
    format!("({})", c.join(" AND "))
}

fn within(lo: f64, hi: f64, col: &str) -> String {
    let mut c = Vec::new();
    if lo.is_finite() {
        c.push(format!("{col} >= {}", lit(lo)));
    }
    if hi.is_finite() {
        c.push(format!("{col} <= {}", lit(hi)));
    }
    if c.is_empty() {
        c.push(format!("{col} IS NOT NULL"));
    }
    format!("({})", c.join(" AND "))
}

fn pos(v: &str) -> Result<String, TapError> {
    let mut it = v.split_whitespace();
    let shape = it.next().unwrap_or("").to_ascii_uppercase();
    let nums: Vec<f64> = it.map(|x| num(x, "POS")).collect::<Result<_, _>>()?;
    let finite = |xs: &[f64]| xs.iter().all(|x| x.is_finite());
    match shape.as_str() {
        "CIRCLE" if nums.len() == 3 && finite(&nums) => {
            if !(-90.0..=90.0).contains(&nums[1]) || !(0.0..=180.0).contains(&nums[2]) {
                return Err(TapError::bad_request(format!(
                    "POS={v}: Dec must be within [-90, 90] and the radius within [0, 180]"
                )));
            }
            Ok(format!(
                "1 = INTERSECTS(s_region, CIRCLE('ICRS', {}, {}, {}))",
                lit(nums[0]),
                lit(nums[1]),
                lit(nums[2])
            ))
        }
        "RANGE" if nums.len() == 4 => {
            let (ra1, ra2, de1, de2) = (nums[0], nums[1], nums[2], nums[3]);
            if finite(&nums)
                && ra2 > ra1
                && ra2 - ra1 < 180.0
                && de1 < de2
                && de1 > -90.0
                && de2 < 90.0
            {
                Ok(format!(
                    "1 = INTERSECTS(s_region, POLYGON('ICRS', {a}, {c}, {b}, {c}, {b}, {d}, {a}, {d}))",
                    a = lit(ra1),
                    b = lit(ra2),
                    c = lit(de1),
                    d = lit(de2)
                ))
            } else {
                // Unbounded or wide ranges: on the dataset centre.
                Ok(format!(
                    "({} AND {})",
                    within(ra1, ra2, "s_ra"),
                    within(de1, de2, "s_dec")
                ))
            }
        }
        "POLYGON" if nums.len() >= 6 && nums.len().is_multiple_of(2) && finite(&nums) => {
            let list: Vec<String> = nums.iter().map(|x| lit(*x)).collect();
            Ok(format!(
                "1 = INTERSECTS(s_region, POLYGON('ICRS', {}))",
                list.join(", ")
            ))
        }
        _ => Err(TapError::bad_request(format!(
            "POS={v} is not `CIRCLE ra dec radius`, `RANGE ra1 ra2 dec1 dec2` or `POLYGON ra1 dec1 ra2 dec2 ra3 dec3 …` (ICRS degrees)"
        ))),
    }
}

/// The ADQL query of a SIAv2 request.
pub fn adql(p: &crate::tap::params::TapParams) -> Result<String, TapError> {
    let mut and: Vec<String> = Vec::new();
    let mut any =
        |name: &str, f: &dyn Fn(&str) -> Result<String, TapError>| -> Result<(), TapError> {
            let vals = p.get_all(name);
            if vals.is_empty() {
                return Ok(());
            }
            let ors: Vec<String> = vals.iter().map(|v| f(v)).collect::<Result<_, _>>()?;
            and.push(format!("({})", ors.join(" OR ")));
            Ok(())
        };
    any("POS", &pos)?;
    any("BAND", &|v| {
        let (lo, hi) = interval(v, "BAND")?;
        Ok(overlap(lo, hi, "em_min", "em_max"))
    })?;
    any("TIME", &|v| {
        let (lo, hi) = interval(v, "TIME")?;
        Ok(overlap(lo, hi, "t_min", "t_max"))
    })?;
    any("FOV", &|v| {
        let (lo, hi) = interval(v, "FOV")?;
        Ok(within(lo, hi, "s_fov"))
    })?;
    any("SPATRES", &|v| {
        let (lo, hi) = interval(v, "SPATRES")?;
        Ok(within(lo, hi, "s_resolution"))
    })?;
    any("EXPTIME", &|v| {
        let (lo, hi) = interval(v, "EXPTIME")?;
        Ok(within(lo, hi, "t_exptime"))
    })?;
    any("POL", &|v| {
        Ok(format!(
            "pol_states LIKE {}",
            quote_str(&format!("%/{}/%", v.trim()))
        ))
    })?;
    for (param, col) in [
        ("ID", "obs_publisher_did"),
        ("COLLECTION", "obs_collection"),
        ("FACILITY", "facility_name"),
        ("INSTRUMENT", "instrument_name"),
        ("DPTYPE", "dataproduct_type"),
        ("TARGET", "target_name"),
        ("FORMAT", "access_format"),
    ] {
        any(param, &|v| Ok(format!("{col} = {}", quote_str(v))))?;
    }
    any("CALIB", &|v| {
        let n: i32 = v
            .trim()
            .parse()
            .map_err(|_| TapError::bad_request(format!("CALIB={v} is not an integer")))?;
        Ok(format!("calib_level = {n}"))
    })?;
    let mut q = String::from("SELECT * FROM ivoa.ObsCore");
    if !and.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&and.join(" AND "));
    }
    Ok(q)
}

async fn query(State(svc): State<Arc<TapService>>, req: Request) -> Response {
    match run(&svc, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(svc: &Arc<TapService>, req: Request) -> Result<Response, TapError> {
    let p = read_params(req, &svc.config.params).await?;
    if !svc
        .tables
        .tables()
        .any(|t| t.name.eq_ignore_ascii_case("ivoa.ObsCore"))
    {
        return Err(TapError::not_found(
            "this archive has no registered images (ivoa.ObsCore is empty): register some with tessera load-images",
        ));
    }
    let adql = adql(&p)?;
    let maxrec = match p.get_nonempty("MAXREC") {
        None => svc.config.max_rec_default,
        Some(m) => m
            .parse::<u64>()
            .map_err(|_| {
                TapError::bad_request(format!("MAXREC={m} is not a non-negative integer"))
            })?
            .min(svc.config.max_rec_hard),
    };
    let format = match p.get_nonempty("RESPONSEFORMAT") {
        None => Format::VoTableBinary2,
        Some(f) => Format::parse(f).map_err(|e| TapError::bad_request(e.to_string()))?,
    };
    let spec = QuerySpec {
        adql,
        format,
        maxrec,
        runid: p.get("RUNID").map(str::to_string),
        uploads: Vec::new(),
    };
    crate::tap::sync::respond(svc, &spec, Vec::new()).await
}

async fn capabilities(
    State(svc): State<Arc<TapService>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let base = crate::tap::request_origin(&headers);
    let _ = &svc;
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<vosi:capabilities xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\">\n\
  <capability standardID=\"ivo://ivoa.net/std/SIA#query-2.0\">\n\
    <interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"2.0\">\n\
      <accessURL use=\"base\">{base}/sia/query</accessURL>\n\
    </interface>\n\
  </capability>\n\
  <capability standardID=\"ivo://ivoa.net/std/VOSI#capabilities\">\n\
    <interface xsi:type=\"vs:ParamHTTP\"><accessURL use=\"full\">{base}/sia/capabilities</accessURL></interface>\n\
  </capability>\n\
  <capability standardID=\"ivo://ivoa.net/std/VOSI#availability\">\n\
    <interface xsi:type=\"vs:ParamHTTP\"><accessURL use=\"full\">{base}/sia/availability</accessURL></interface>\n\
  </capability>\n\
</vosi:capabilities>\n"
    );
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

async fn availability(State(svc): State<Arc<TapService>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        crate::tap::vosi::availability(svc.up_since, "Tessera SIAv2 is accepting queries"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tap::params::TapParams;

    fn p(pairs: &[(&str, &str)]) -> TapParams {
        TapParams {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files: Vec::new(),
        }
    }

    #[test]
    fn parameters_become_adql() {
        let q = adql(&p(&[("POS", "CIRCLE 10 20 0.5"), ("BAND", "5e-7 6e-7")])).unwrap();
        assert!(
            q.contains("INTERSECTS(s_region, CIRCLE('ICRS', 10.0, 20.0, 0.5))"),
            "{q}"
        );
        assert!(q.contains("(em_min <= 6e-7 AND em_max >= 5e-7)"), "{q}");
        let q = adql(&p(&[
            ("COLLECTION", "a'b"),
            ("COLLECTION", "c"),
            ("TIME", "-Inf 60000"),
        ]))
        .unwrap();
        assert!(
            q.contains("(obs_collection = 'a''b' OR obs_collection = 'c')"),
            "{q}"
        );
        assert!(q.contains("(t_min <= 60000.0)"), "{q}");
        assert!(adql(&p(&[("POS", "CIRCLE 10 20")])).is_err());
        assert!(adql(&p(&[("BAND", "7 6")])).is_err());
        assert!(adql(&p(&[("CALIB", "x")])).is_err());
        let q = adql(&p(&[("POS", "RANGE 10 11 -1 1")])).unwrap();
        assert!(
            q.contains("POLYGON('ICRS', 10.0, -1.0, 11.0, -1.0, 11.0, 1.0, 10.0, 1.0)"),
            "{q}"
        );
        assert_eq!(adql(&p(&[])).unwrap(), "SELECT * FROM ivoa.ObsCore");
    }
}
