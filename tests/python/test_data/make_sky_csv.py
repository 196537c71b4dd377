#!/usr/bin/env python3
"""Deterministic synthetic sky for the HATS compatibility self-test.

    make_sky_csv.py OUT.csv [--rows 50000] [--seed 20261121]

Columns: id (int, unique, 1..N), ra, dec (degrees, float64 written with 17 significant
digits so they round-trip), mag (float64), name (string).
Content (fractions of --rows):
  * ~80 % uniform on the sphere
  * ~10 % a dense clump within 1 deg of (45, 20)
  * ~3 % each within 1 deg of the north and south poles (plus exact +-90 points)
  * ~3 % within 0.5 deg of RA 0/360 on the equator band (plus RA exactly 0)
  * a few points at known offsets (0.3"-1.5") from (45.01, 20.01) for 1" cones
Uses only numpy (present in the test venv) and the standard library.
"""

import argparse
import math

import numpy as np


def uniform_sphere(rng, n):
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return ra, dec


def cap(rng, n, ra0, dec0, radius_deg):
    """Uniform points in a spherical cap around (ra0, dec0)."""
    cos_r = math.cos(math.radians(radius_deg))
    z = rng.uniform(cos_r, 1.0, n)  # cos(angle from centre)
    phi = rng.uniform(0.0, 2 * math.pi, n)
    s = np.sqrt(1 - z * z)
    # local frame: centre on +z, then rotate to (ra0, dec0)
    x, y = s * np.cos(phi), s * np.sin(phi)
    a, d = math.radians(ra0), math.radians(dec0)
    # rotate about y by (90-dec0), then about z by ra0
    t = math.pi / 2 - d
    x1 = x * math.cos(t) + z * math.sin(t)
    z1 = -x * math.sin(t) + z * math.cos(t)
    x2 = x1 * math.cos(a) - y * math.sin(a)
    y2 = x1 * math.sin(a) + y * math.cos(a)
    ra = np.degrees(np.arctan2(y2, x2)) % 360.0
    dec = np.degrees(np.arcsin(np.clip(z1, -1, 1)))
    return ra, dec


def offset_points(ra0, dec0, seps_arcsec, pa_deg):
    """Points at exact separations/position angles from (ra0, dec0)."""
    out_ra, out_dec = [], []
    a0, d0 = math.radians(ra0), math.radians(dec0)
    for s, pa in zip(seps_arcsec, pa_deg):
        r, p = math.radians(s / 3600.0), math.radians(pa)
        d = math.asin(math.sin(d0) * math.cos(r) + math.cos(d0) * math.sin(r) * math.cos(p))
        a = a0 + math.atan2(math.sin(p) * math.sin(r) * math.cos(d0), math.cos(r) - math.sin(d0) * math.sin(d))
        out_ra.append(math.degrees(a) % 360.0)
        out_dec.append(math.degrees(d))
    return np.array(out_ra), np.array(out_dec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=20261121)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.rows
    n_clump, n_pole, n_wrap = n // 10, max(n * 3 // 100, 4), max(n * 3 // 100, 4)
    special_ra = np.array([0.0, 0.0, 123.0, 359.99999999, 180.0, 0.0])
    special_dec = np.array([90.0, -90.0, -90.0, 0.0, 89.999999, -45.0])
    near_ra, near_dec = offset_points(45.01, 20.01, [0.3, 0.6, 0.9, 0.99, 1.01, 1.5], [0, 60, 120, 180, 240, 300])
    n_uniform = n - n_clump - 2 * n_pole - n_wrap - len(special_ra) - len(near_ra)
    if n_uniform < 0:
        raise SystemExit("--rows too small")

    parts = [
        uniform_sphere(rng, n_uniform),
        cap(rng, n_clump, 45.0, 20.0, 1.0),
        cap(rng, n_pole, 0.0, 90.0, 1.0),
        cap(rng, n_pole, 0.0, -90.0, 1.0),
        (rng.uniform(-0.5, 0.5, n_wrap) % 360.0, rng.uniform(-10.0, 10.0, n_wrap)),
        (special_ra, special_dec),
        (near_ra, near_dec),
    ]
    ra = np.concatenate([p[0] for p in parts])
    dec = np.concatenate([p[1] for p in parts])
    ra = np.where(ra >= 360.0, ra - 360.0, ra)
    order = rng.permutation(len(ra))  # shuffle so the CSV is not spatially ordered
    ra, dec = ra[order], dec[order]
    mag = np.round(rng.uniform(10.0, 22.0, len(ra)), 3)
    ra_l, dec_l, mag_l = ra.tolist(), dec.tolist(), mag.tolist()  # Python floats: repr round-trips
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("id,ra,dec,mag,name\n")
        for i in range(len(ra_l)):
            f.write(f"{i + 1},{ra_l[i]!r},{dec_l[i]!r},{mag_l[i]!r},src_{i + 1:07d}\n")
    print(f"wrote {len(ra)} rows to {args.out}")


if __name__ == "__main__":
    main()
