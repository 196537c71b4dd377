//! The sky viewer at `/viewer`: Aladin Lite 3.8.2 showing the image HiPS of this server as the
//! base layer and its catalogue HiPS overlaid as markers, with a side list (from `/hips/list`)
//! to switch images and toggle catalogues.
//!
//! Aladin Lite is the npm package `aladin-lite` (GPL-3), never copied into our sources: the
//! server serves the ES module `dist/aladin.js` at `/static/aladin-lite/aladin.js` from where
//! a setup step installed it (`tessera serve --aladin-lite DIR`, default
//! `~/.cache/tessera-web`, where `tools/install-test-deps` puts it, see
//! `config::aladin_lite_script`). When it is absent the page loads the CDS-hosted build of
//! the same version instead (a classic script defining `window.A`), so a user who only ran
//! `tessera serve` still gets a viewer when online.
//!
//! Query parameters: `image=<id>` (the image HiPS shown first; default the first listed),
//! `cats=<id>,<id>` (catalogues shown; default the first three), `target=<ra> <dec>` (degrees)
//! and `fov=<degrees>` (default: the image's `hips_initial_ra/dec/fov`). HiPS URLs handed to
//! Aladin Lite are the absolute `hips_service_url`s of the list (it resolves anything else as
//! a CDS HiPS identifier). `hipsList: []` and no Simbad pointer keep the page from calling
//! CDS services when the script is local.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Where the page loads Aladin Lite from when it is not installed locally.
pub const ALADIN_LITE_CDS: &str = "https://aladin.cds.unistra.fr/AladinLite/api/v3/3.8.2/aladin.js";

/// The path the local Aladin Lite module is served at.
pub const ALADIN_LITE_PATH: &str = "/static/aladin-lite/aladin.js";

#[derive(Debug)]
struct Viewer {
    /// The local `aladin.js` (ES module), if installed.
    script: Option<PathBuf>,
}

/// The `/viewer` and `/static/aladin-lite/aladin.js` routes; `script` is the local Aladin
/// Lite module (`None`: the page uses the CDS-hosted one).
pub fn router(script: Option<PathBuf>) -> Router {
    Router::new()
        .route("/viewer", get(page))
        .route(ALADIN_LITE_PATH, get(aladin_js))
        .with_state(Arc::new(Viewer { script }))
}

async fn aladin_js(State(v): State<Arc<Viewer>>, method: Method, headers: HeaderMap) -> Response {
    match &v.script {
        Some(p) => {
            crate::hips::files::send_file(
                p.clone(),
                "text/javascript; charset=utf-8",
                &headers,
                method != Method::HEAD,
            )
            .await
        }
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "Aladin Lite is not installed on this server (tessera serve --aladin-lite DIR)\n",
        )
            .into_response(),
    }
}

async fn page(State(v): State<Arc<Viewer>>) -> Response {
    let loader = if v.script.is_some() {
        format!(
            "<script type=\"module\">import A from '{ALADIN_LITE_PATH}'; tesseraViewer(A);</script>"
        )
    } else {
        format!(
            "<script src=\"{ALADIN_LITE_CDS}\" charset=\"utf-8\"></script>\n\
             <script>tesseraViewer(window.A);</script>"
        )
    };
    let html = PAGE.replace("<!--LOADER-->", &loader);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, height=device-height, initial-scale=1.0, user-scalable=no">
<title>Tessera viewer</title>
<style>
html,body{margin:0;height:100%;font-family:sans-serif;font-size:13px}
#side{position:absolute;left:0;top:0;bottom:0;width:220px;overflow:auto;padding:8px 10px;
 box-sizing:border-box;background:#f3f3f3;border-right:1px solid #bbb}
#side h1{font-size:15px;margin:2px 0 8px}#side h2{font-size:13px;margin:12px 0 4px}
#side label{display:block;margin:3px 0;cursor:pointer;word-break:break-all}
.sw{display:inline-block;width:10px;height:10px;border:1px solid #333;margin:0 4px 0 2px;vertical-align:middle}
#status{color:#555;margin-top:12px}
#al{position:absolute;left:220px;right:0;top:0;bottom:0;background:#000}
</style></head><body>
<div id="side"><h1><a href="/">Tessera</a> sky viewer</h1>
<h2>Images</h2><div id="images">loading…</div>
<h2>Catalogues</h2><div id="cats"></div>
<p id="status"></p></div>
<div id="al"></div>
<script>
"use strict";
// One colour per catalogue overlay, chosen to stand out on grey-scale images.
const COLOURS = ["#00ff00", "#ff8c00", "#00e5ff", "#ff40ff", "#ffff00", "#ff3030"];
function setStatus(t) { document.getElementById("status").textContent = t; }
// The HiPS list (IVOA HiPS 1.0 §4.4): properties records separated by blank lines.
function parseList(text) {
  const out = [];
  for (const rec of text.split(/\r?\n[ \t]*\r?\n/)) {
    const p = {};
    for (const line of rec.split(/\r?\n/)) {
      if (/^\s*#/.test(line)) continue;
      const i = line.indexOf("=");
      if (i > 0) { const k = line.slice(0, i).trim(); if (!(k in p)) p[k] = line.slice(i + 1).trim(); }
    }
    if (p.hips_service_url) {
      p.id = decodeURIComponent(p.hips_service_url.replace(/\/+$/, "").split("/").pop());
      out.push(p);
    }
  }
  return out;
}
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}
function num(x) { const v = parseFloat(x); return Number.isFinite(v) ? v : null; }
async function tesseraViewer(A) {
  const q = new URLSearchParams(location.search);
  if (!A) { setStatus("Aladin Lite could not be loaded."); document.title = "Tessera viewer: failed"; return; }
  let list = [];
  try {
    const r = await fetch("/hips/list");
    list = parseList(await r.text());
  } catch (e) { setStatus("cannot read /hips/list: " + e); }
  const images = list.filter((p) => (p.dataproduct_type || "image") === "image");
  const cats = list.filter((p) => p.dataproduct_type === "catalog");
  const wanted = q.get("image");
  let img = images.find((p) => p.id === wanted) || images[0] || null;
  const shownCats = q.has("cats") ? q.get("cats").split(",").filter(Boolean) : cats.slice(0, 3).map((p) => p.id);
  try { await A.init; } catch (e) {
    setStatus("Aladin Lite cannot start (WebGL2 needed): " + e); document.title = "Tessera viewer: failed"; return;
  }
  const opts = { hipsList: [], showReticle: false, showSimbadPointerControl: false, showContextMenu: true,
                 showCooGridControl: true, showSettingsControl: true, cooFrame: "equatorial" };
  // Tile format: the page's `format` parameter (png, jpeg, fits), else Aladin Lite's choice.
  const hips = (p) => {
    const o = { name: p.obs_title || p.id };
    if (q.get("format")) o.imgFormat = q.get("format");
    return A.HiPS(p.hips_service_url, o);
  };
  if (img) opts.survey = hips(img);
  const al = A.aladin("#al", opts);
  function view(p) {
    const t = q.get("target");
    let ra = null, dec = null;
    if (t) { const m = t.trim().split(/[\s,]+/); ra = num(m[0]); dec = num(m[1]); }
    if (ra === null || dec === null) { ra = num(p && p.hips_initial_ra); dec = num(p && p.hips_initial_dec); }
    const fov = num(q.get("fov")) || num(p && p.hips_initial_fov);
    if (ra !== null && dec !== null) al.gotoRaDec(ra, dec);
    if (fov) al.setFoV(fov);
  }
  view(img || cats[0]);
  // Images: radio buttons switch the base layer.
  const ib = document.getElementById("images");
  ib.textContent = images.length ? "" : "none on this server";
  for (const p of images) {
    const r = el("input", { type: "radio", name: "image", value: p.id });
    r.checked = p === img;
    r.addEventListener("change", () => {
      img = p;
      al.setBaseImageLayer(hips(p));
      q.delete("target"); q.delete("fov"); view(p);
    });
    const l = el("label", { title: p.obs_title || p.id });
    l.append(r, " " + p.id);
    ib.append(l);
  }
  // Catalogues: check boxes toggle overlays, each in its own colour.
  const cb = document.getElementById("cats");
  cb.textContent = cats.length ? "" : "none on this server";
  const layers = {};
  cats.forEach((p, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const c = el("input", { type: "checkbox", value: p.id });
    const sw = el("span", { class: "sw", style: "background:" + colour });
    const l = el("label", { title: p.obs_title || p.id });
    l.append(c, sw, p.id);
    cb.append(l);
    function show(on) {
      if (on && !layers[p.id]) {
        layers[p.id] = A.catalogHiPS(p.hips_service_url, { name: p.id, color: colour, sourceSize: 12, shape: "square", onClick: "showTable" });
        al.addCatalog(layers[p.id]);
      } else if (layers[p.id]) {
        on ? layers[p.id].show() : layers[p.id].hide();
      }
    }
    c.checked = shownCats.includes(p.id);
    c.addEventListener("change", () => show(c.checked));
    if (c.checked) show(true);
  });
  window.tessera = { aladin: al, images, cats, layers };
  setStatus(images.length + " image and " + cats.length + " catalogue HiPS");
  document.title = "Tessera viewer: ready";
}
</script>
<!--LOADER-->
</body></html>
"##;
