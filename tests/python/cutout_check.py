#!/usr/bin/env python3
"""The astropy side of the FITS image tests (storage/tests/image.rs).

    cutout_check.py < tasks.json

stdin holds a JSON list of tasks; stdout gets a JSON list with one result per task, in the
same order. A task that raises gives {"error": "..."} instead of failing the whole run.

Tasks:

* {"op": "wcs", "file", "hdu", "pixels": [[x, y], ...], "sky": [[lon, lat], ...]}
  Pixels are 1-based FITS coordinates along the two celestial axes; sky positions are in the
  image's own frame (RA/Dec, or l/b for Galactic axes). Uses the celestial WCS of the HDU
  (`WCS(header).celestial`, or the full WCS for a 2-D image so SIP is kept).
  -> {"world": all_pix2world(pixels, 1), "icrs": the same converted to ICRS,
      "pix": all_world2pix(sky, 1, tolerance=1e-12), "scales": proj_plane_pixel_scales,
      "frame": name of the celestial frame}

* {"op": "cutout", "file", "hdu", "ra", "dec", "radius", "out": path or null,
   "plane": k (0-based) for cubes}
  Cutout2D(data, SkyCoord(ra, dec), size=2*radius deg, wcs, mode='trim'). The position is
  taken as ICRS, except that for an FK5 image the numbers are used in the image frame (Tessera
  takes FK5 J2000 as ICRS). -> {"no_overlap": bool, "bbox": [[ymin, ymax], [xmin, xmax]]
  (0-based, inclusive), "shape": [ny, nx], and when "out" is given: "equal": the cutout file's
  pixels (plane k of a cube) equal Cutout2D's data, "dpix": max |pixel of (ra, dec) in the
  out file's own WCS - the same in Cutout2D's WCS|}

* {"op": "band", "file", "hdu", "lo", "hi"}
  The planes (1-based, inclusive) whose span [w(k-0.5), w(k+0.5)] overlaps [lo, hi] (metres),
  from astropy's spectral WCS (SI units after wcsset; FREQ converted with c / nu).
  -> {"planes": [first, last] or null, "world": [w(1), w(N)] in SI units}
"""

import json
import sys
import warnings

import numpy as np


def celestial_wcs(header):
    from astropy.wcs import WCS

    w = WCS(header)
    if w.naxis == 2:
        return w
    return w.celestial


def frame_of(w):
    from astropy.wcs.utils import wcs_to_celestial_frame

    return wcs_to_celestial_frame(w)


def op_wcs(t):
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs.utils import proj_plane_pixel_scales
    import astropy.units as u

    with fits.open(t["file"]) as hl:
        header = hl[t["hdu"]].header
    w = celestial_wcs(header)
    out = {}
    px = np.array(t.get("pixels") or [[1.0, 1.0]], dtype=float)
    world = w.all_pix2world(px[:, 0], px[:, 1], 1)
    out["world"] = np.column_stack(world).tolist()
    frame = frame_of(w)
    out["frame"] = frame.name
    c = SkyCoord(world[0] * u.deg, world[1] * u.deg, frame=frame)
    if frame.name == "fk5":
        out["icrs"] = out["world"]
    else:
        ic = c.icrs
        out["icrs"] = np.column_stack([ic.ra.deg, ic.dec.deg]).tolist()
    sky = t.get("sky") or []
    if sky:
        s = np.array(sky, dtype=float)
        pix = w.all_world2pix(s[:, 0], s[:, 1], 1, tolerance=1e-12, maxiter=200)
        out["pix"] = np.column_stack(pix).tolist()
    out["scales"] = [float(v) for v in proj_plane_pixel_scales(w)]
    return out


def op_cutout(t):
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.nddata import Cutout2D, NoOverlapError
    import astropy.units as u

    with fits.open(t["file"]) as hl:
        hdu = hl[t["hdu"]]
        header = hdu.header
        data = hdu.data
        while data.ndim > 2:  # a cube: the requested plane of the first non-celestial axis
            data = data[t.get("plane") or 0] if data.ndim == 3 else data[0]
        data = np.array(data)
    w = celestial_wcs(header)
    frame = frame_of(w)
    if frame.name == "fk5":
        pos = SkyCoord(t["ra"] * u.deg, t["dec"] * u.deg, frame=frame)
    else:
        pos = SkyCoord(t["ra"] * u.deg, t["dec"] * u.deg, frame="icrs")
    size = 2.0 * t["radius"] * u.deg
    try:
        c = Cutout2D(data, pos, size, wcs=w, mode="trim")
    except NoOverlapError:
        return {"no_overlap": True}
    out = {
        "no_overlap": False,
        "bbox": [list(map(int, c.bbox_original[0])), list(map(int, c.bbox_original[1]))],
        "shape": list(map(int, c.data.shape)),
    }
    if t.get("out"):
        with fits.open(t["out"]) as hl:
            mine = hl[0].data
            mh = hl[0].header
            if mine.ndim > 2:
                k = t.get("plane_in_out") or 0
                mine = mine[k]
            mine = np.array(mine)
        same_shape = mine.shape == c.data.shape
        eq = bool(same_shape and np.array_equal(mine, c.data, equal_nan=True))
        out["equal"] = eq
        out["out_shape"] = list(map(int, mine.shape))
        mw = celestial_wcs(mh)
        native = pos.transform_to(frame).spherical
        lon, lat = [native.lon.deg], [native.lat.deg]
        p_mine = np.array(mw.all_world2pix(lon, lat, 1, tolerance=1e-12))
        p_c2d = np.array(c.wcs.all_world2pix(lon, lat, 1, tolerance=1e-12))
        out["dpix"] = float(np.max(np.abs(p_mine - p_c2d)))
        # A grid of pixels of the cutout must map to the same sky as the original pixels.
        ny, nx = c.data.shape
        xs, ys = np.meshgrid(np.linspace(1, nx, 5), np.linspace(1, ny, 5))
        wm = mw.all_pix2world(xs.ravel(), ys.ravel(), 1)
        x0, y0 = c.origin_original
        po = w.all_world2pix(wm[0], wm[1], 1, tolerance=1e-12)
        out["dpix_grid"] = float(max(np.max(np.abs(po[0] - (xs.ravel() + x0))), np.max(np.abs(po[1] - (ys.ravel() + y0)))))
    return out


def op_band(t):
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(t["file"]) as hl:
        header = hl[t["hdu"]].header
    w = WCS(header)
    s = w.spectral
    n = header.get(f"NAXIS{w.wcs.spec + 1}", 1)
    ctype = s.wcs.ctype[0][:4]
    k = np.arange(1, n + 1, dtype=float)
    lo_edge = s.all_pix2world(k - 0.5, 1)[0]
    hi_edge = s.all_pix2world(k + 0.5, 1)[0]
    if ctype == "FREQ":
        lo_edge, hi_edge = 299792458.0 / lo_edge, 299792458.0 / hi_edge
    a = np.minimum(lo_edge, hi_edge)
    b = np.maximum(lo_edge, hi_edge)
    sel = np.nonzero((b >= t["lo"]) & (a <= t["hi"]))[0]
    planes = None if len(sel) == 0 else [int(sel[0]) + 1, int(sel[-1]) + 1]
    centre = s.all_pix2world(np.array([1.0, float(n)]), 1)[0]
    return {"planes": planes, "world": [float(v) for v in centre], "unit": str(s.wcs.cunit[0])}


OPS = {"wcs": op_wcs, "cutout": op_cutout, "band": op_band}


def main():
    tasks = json.load(sys.stdin)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in tasks:
            try:
                results.append(OPS[t["op"]](t))
            except Exception as e:  # reported to the Rust side, which fails the test
                results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
