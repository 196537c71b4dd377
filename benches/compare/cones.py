#!/usr/bin/env python3
"""Side-by-side cone-search comparison: Tessera vs PostgreSQL 15 + q3c / pgSphere vs DuckDB.

One command (see benches/compare/README.md):

    benches/compare/cones.py --data hip2

1. builds the release `tessera` binary and the `cone_latency` example, loads the demo catalog
   with `tessera load` into ROOT (default ~/.cache/tessera-bench/data);
2. exports the identical rows (id, ra, dec, read from the catalog's Parquet leaves with pyarrow)
   into PostgreSQL (tools/pg-baseline): database "q3c" with a q3c_ang2ipix index + CLUSTER +
   ANALYZE, database "sphere" with a pgSphere spoint column + GiST index; DuckDB reads the very
   Parquet files Tessera serves (sorted by _healpix_29), with HEALPix range prefilters computed
   with cdshealpix;
3. draws N random cone centres (fixed seed, uniform on the sphere) and runs each at every radius
   on every system: a warm-up pass over all centres, then a timed pass (p50 / p95 / mean);
   cold timings (OS page cache dropped, fresh server / connection / engine) on a subset;
4. checks that every system returns the same row count per cone as a brute-force numpy count;
5. writes ~/.cache/tessera-bench/results/cones-<UTC>.{json,md} and prints the markdown.

Exit status: 0 on success, 3 when any row count disagrees (results are still written), 1 on
errors, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import duckdb  # noqa: E402
import psycopg  # noqa: E402

from compare_common import BENCH, DATASETS, REPO, T0, TARGET, fail, log, run, stats  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------
# radii and statistics


def parse_radius(s: str) -> float:
    """'1arcmin', '6arcmin', '30arcsec', '1deg' or a bare number of degrees -> degrees."""
    s = s.strip()
    for suffix, scale in (("arcsec", 1 / 3600), ("arcmin", 1 / 60), ("deg", 1.0), ('"', 1 / 3600), ("'", 1 / 60), ("′", 1 / 60), ("″", 1 / 3600), ("°", 1.0)):
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * scale
    return float(s)


def radius_label(r: float) -> str:
    if r >= 1 and abs(r - round(r)) < 1e-9:
        return f"{round(r)}°"
    if r * 60 >= 1 and abs(r * 60 - round(r * 60)) < 1e-6:
        return f"{round(r * 60)}′"
    return f"{r * 3600:g}″"


def random_centres(n: int, seed: int) -> np.ndarray:
    """n points uniform on the sphere: (ra, dec) in degrees."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return np.column_stack([ra, dec])


def unit(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    c = np.cos(dec)
    return np.column_stack([c * np.cos(ra), c * np.sin(ra), np.sin(dec)])


def brute_force_counts(xyz: np.ndarray, centres: np.ndarray, r: float) -> list[int]:
    """Rows within r degrees (chord test: exact enough at 1′, unlike a cosine test).

    `xyz` must be sorted by z (see `sort_by_z`): only the band |z - z_c| ≤ chord is tested."""
    chord = 2 * math.sin(math.radians(r) / 2)
    chord2 = chord**2
    cxyz = unit(centres[:, 0], centres[:, 1])
    z = xyz[:, 2]
    out = []
    for c in cxyz:
        lo, hi = np.searchsorted(z, [c[2] - chord - 1e-12, c[2] + chord + 1e-12])
        d = xyz[lo:hi] - c
        out.append(int(np.count_nonzero(np.einsum("ij,ij->i", d, d) <= chord2)))
    return out


def sort_by_z(xyz: np.ndarray) -> np.ndarray:
    return xyz[np.argsort(xyz[:, 2], kind="stable")]


# ---------------------------------------------------------------------------------------------
# HEALPix ranges for the DuckDB prefilter


def hpx_ranges(ra: float, dec: float, r: float, max_ranges: int) -> list[tuple[int, int]]:
    """Inclusive _healpix_29 ranges covering the cone (cdshealpix cone coverage, merged)."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    depth = int(max(0, min(29, math.floor(math.log2(58.6 / max(r, 1e-9))))))
    while True:
        ipix, _, _ = nested.cone_search(Longitude(ra * u.deg), Latitude(dec * u.deg), r * u.deg, depth=depth, depth_delta=2, flat=True)
        shift = 2 * (29 - depth)
        ranges: list[tuple[int, int]] = []
        for p in sorted(int(x) for x in ipix):
            lo, hi = p << shift, ((p + 1) << shift) - 1
            if ranges and ranges[-1][1] + 1 == lo:
                ranges[-1] = (ranges[-1][0], hi)
            else:
                ranges.append((lo, hi))
        if len(ranges) <= max_ranges or depth == 0:
            return ranges
        depth -= 1


# ---------------------------------------------------------------------------------------------
# data


def ensure_catalog(args, spec: dict, root: Path) -> Path:
    if args.catalog:
        return root / spec["catalog"]
    return cc.ensure_catalog(spec, root, args.reload)


def read_rows(cat: Path, spec: dict) -> tuple[pa.Table, list[str]]:
    """(id, ra, dec, mag, hpx29) sorted by _healpix_29, and the leaf files."""
    if "mag" not in spec:
        t = cc.read_columns(cat, [spec["id"], "ra", "dec", "_healpix_29"]).select([spec["id"], "ra", "dec", "_healpix_29"])
        import pyarrow.compute as pc
        t = t.rename_columns(["id", "ra", "dec", "hpx29"])
        t = t.set_column(0, "id", pc.cast(t.column("id"), pa.int64()))
        return t, cc.leaf_files(cat)
    return cc.catalog_rows(cat, spec), cc.leaf_files(cat)


def fingerprint(t: pa.Table) -> str:
    return cc.fingerprint(t, [c for c in ("id", "ra", "dec", "mag") if c in t.column_names])


# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_connect = cc.pg_connect


def pg_start(args) -> None:
    cc.pg_start(args.pg_dir, args.pg_port)


def pg_load(args, name: str, t: pa.Table, fp: str) -> dict:
    extra = [e for e in cc.PG_EXTRA if e[0] in t.column_names]
    return cc.pg_load(args.pg_dir, args.pg_port, name, t, fp, args.reload, extra=extra)


Q3C_SQL = "SELECT id, ra, dec FROM {t} WHERE q3c_radial_query(ra, dec, %s::float8, %s::float8, %s::float8)"
SPHERE_SQL = "SELECT id, ra, dec FROM {t} WHERE pos <@ scircle(spoint(radians(%s::float8), radians(%s::float8)), radians(%s::float8))"


def pg_warm(port: int, db: str, sql: str, centres: np.ndarray, r: float, settings: list[str]) -> tuple[list[float], list[int]]:
    """Warm-up pass, then a timed pass, with one server-side prepared statement."""
    with pg_connect(port, db) as conn:
        for s in settings:
            conn.execute(s)
        cur = conn.cursor()
        params = [(float(ra), float(dec), r) for ra, dec in centres]
        for p in params:
            cur.execute(sql, p, prepare=True)
            cur.fetchall()
        times, rows = [], []
        for p in params:
            t = time.perf_counter_ns()
            cur.execute(sql, p, prepare=True)
            n = len(cur.fetchall())
            times.append((time.perf_counter_ns() - t) / 1e6)
            rows.append(n)
        return times, rows


def pg_floor(port: int) -> list[float]:
    """Round trip of a prepared `SELECT 1` through psycopg: the client's share of each timing."""
    with pg_connect(port, "q3c") as conn:
        cur = conn.cursor()
        out = []
        for i in range(400):
            t = time.perf_counter_ns()
            cur.execute("SELECT %s::int", (i,), prepare=True)
            cur.fetchall()
            if i >= 200:
                out.append((time.perf_counter_ns() - t) / 1e6)
        return out


# ---------------------------------------------------------------------------------------------
# DuckDB

DUCK_MAX_RANGES = 8


def duck_open(files_glob: str):
    con = duckdb.connect()
    con.execute("SET parquet_metadata_cache = true")
    con.execute(f"CREATE VIEW cat AS SELECT * FROM read_parquet('{files_glob}', hive_partitioning = false)")
    return con


def duck_sql(id_col: str, k: int, use_ranges: bool) -> str:
    """Cone query; parameters $1 ra, $2 dec, $3 r, then k (lo, hi) HEALPix-29 ranges."""
    dist = "2 * asin(sqrt(pow(sin(radians(dec - $2) / 2), 2) + cos(radians(dec)) * cos(radians($2)) * pow(sin(radians(ra - $1) / 2), 2))) <= radians($3)"
    where = dist
    if use_ranges:
        ors = " OR ".join(f"(_healpix_29 BETWEEN ${4 + 2 * i} AND ${5 + 2 * i})" for i in range(k))
        # The overall [min, max] as a plain conjunct is always pushed to row-group statistics.
        where = f"_healpix_29 BETWEEN ${4 + 2 * k} AND ${5 + 2 * k} AND ({ors}) AND {dist}"
    return f'SELECT "{id_col}", ra, dec FROM cat WHERE {where}'


def duck_args(ra: float, dec: float, r: float, ranges: list[tuple[int, int]] | None, k: int) -> str:
    vals = [repr(float(ra)), repr(float(dec)), repr(float(r))]
    if ranges is not None:
        padded = list(ranges) + [(1, 0)] * (k - len(ranges))  # (1, 0) is an empty range
        for lo, hi in padded:
            vals += [str(lo), str(hi)]
        vals += [str(ranges[0][0]), str(ranges[-1][1])]
    return ", ".join(vals)


def duck_warm(files_glob: str, id_col: str, centres: np.ndarray, r: float, ranges: list | None) -> tuple[list[float], list[int]]:
    con = duck_open(files_glob)
    k = max(len(x) for x in ranges) if ranges is not None else 0
    con.execute("PREPARE cone AS " + duck_sql(id_col, k, ranges is not None))
    calls = [f"EXECUTE cone({duck_args(ra, dec, r, ranges[i] if ranges is not None else None, k)})" for i, (ra, dec) in enumerate(centres)]
    for c in calls:
        con.execute(c).fetchall()
    times, rows = [], []
    for c in calls:
        t = time.perf_counter_ns()
        n = len(con.execute(c).fetchall())
        times.append((time.perf_counter_ns() - t) / 1e6)
        rows.append(n)
    con.close()
    return times, rows


def duck_floor() -> list[float]:
    con = duckdb.connect()
    con.execute("PREPARE one AS SELECT $1::int")
    out = []
    for i in range(400):
        t = time.perf_counter_ns()
        con.execute(f"EXECUTE one({i})").fetchall()
        if i >= 200:
            out.append((time.perf_counter_ns() - t) / 1e6)
    return out


# ---------------------------------------------------------------------------------------------
# Tessera


def tessera_run(args, root: Path, table: str, id_col: str, centres: np.ndarray, r: float, extra: list[str]) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".cones", delete=False) as f:
        for ra, dec in centres:
            f.write(f"{float(ra)!r} {float(dec)!r} {float(r)!r}\n")
        path = f.name
    try:
        exe = TARGET / "release" / "examples" / "cone_latency"
        cmd = [str(exe), "--root", str(root), "--table", table, "--id", id_col, "--cones", path, *extra]
        r_ = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r_.returncode != 0:
            fail(f"cone_latency failed ({r_.returncode}): {r_.stderr[-3000:]}")
        return json.loads(r_.stdout)
    finally:
        os.unlink(path)


# ---------------------------------------------------------------------------------------------
# cold


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def pg_cold(args, centres: np.ndarray, r: float, name: str) -> dict:
    """Per cone: restart PostgreSQL (empty shared_buffers), connect, drop the OS page cache,
    time the first, unprepared query (q3c, then again for pgSphere in the other database)."""
    out = {"q3c": ([], []), "pgsphere": ([], [])}
    for ra, dec in centres:
        run([REPO / "tools" / "pg-baseline", "stop", args.pg_dir], quiet=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        run([REPO / "tools" / "pg-baseline", "start", args.pg_dir, str(args.pg_port)], quiet=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for label, db, sql in (("q3c", "q3c", Q3C_SQL), ("pgsphere", "sphere", SPHERE_SQL)):
            with pg_connect(args.pg_port, db) as conn:
                conn.execute("SELECT 1")
                drop_caches()
                t = time.perf_counter_ns()
                n = len(conn.execute(sql.format(t=name), (float(ra), float(dec), r)).fetchall())
                out[label][0].append((time.perf_counter_ns() - t) / 1e6)
                out[label][1].append(n)
    return out


def duck_cold(files_glob: str, id_col: str, centres: np.ndarray, r: float, ranges: list | None) -> tuple[list[float], list[int]]:
    times, rows = [], []
    k = max(len(x) for x in ranges) if ranges is not None else 0
    sql = duck_sql(id_col, k, ranges is not None)
    for i, (ra, dec) in enumerate(centres):
        con = duck_open(files_glob)
        drop_caches()
        t = time.perf_counter_ns()
        con.execute("PREPARE cone AS " + sql)
        n = len(con.execute(f"EXECUTE cone({duck_args(ra, dec, r, ranges[i] if ranges is not None else None, k)})").fetchall())
        times.append((time.perf_counter_ns() - t) / 1e6)
        rows.append(n)
        con.close()
    return times, rows


# ---------------------------------------------------------------------------------------------
# report


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "—"
    if x < 1:
        return f"{x:.3f}"
    if x < 100:
        return f"{x:.2f}"
    return f"{x:.0f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def markdown(res: dict) -> str:
    systems = [(k, "DuckDB, sorted Parquet, no HEALPix prefilter" if k == "duckdb" and not res.get("duck_ranges", True) else t) for k, t in SYSTEMS]
    radii = res["radii_deg"]
    labels = [radius_label(r) for r in radii]
    warm = res["warm"]
    L = []
    L.append(f"### Cone search on `{res['dataset']}` ({res['rows']:,} rows), {res['cones']} random centres (seed {res['seed']})")
    L.append("")
    L.append(f"Run {res['started_utc']} UTC, commit `{res['commit']}`, {res['machine']}, load average {res['loadavg_start']} → {res['loadavg_end']}; total {res['elapsed_s']:.0f} s.")
    L.append("")
    L.append("Warm latency in ms (every centre run once to warm up, then one timed pass); rows = total over all centres:")
    L.append("")
    head = "| system | " + " | ".join(f"{lb} p50 | {lb} p95" for lb in labels) + " | rows " + "/".join(labels) + " |"
    L.append(head)
    L.append("|---|" + "---:|---:|" * len(radii) + "---:|")
    for key, title in systems:
        per = warm.get(key)
        if not per:
            continue
        cells = []
        rows = []
        for lb in labels:
            s = per.get(lb)
            cells += [fmt_ms(s["p50_ms"]) if s else "—", fmt_ms(s["p95_ms"]) if s else "—"]
            rows.append(f"{s['rows']:,}" if s and key != "tessera_plan" else "—")
        L.append(f"| {title} | " + " | ".join(cells) + " | " + "/".join(rows) + " |")
    for key, title in (("pg_floor", "client floor: psycopg prepared `SELECT $1`"), ("duck_floor", "client floor: DuckDB `EXECUTE` of `SELECT $1`")):
        if key in res:
            s = res[key]
            L.append(f"| {title} | " + " | ".join([fmt_ms(s["p50_ms"]), fmt_ms(s["p95_ms"])] * len(radii)) + " | — |")
    L.append("")
    if res.get("cold"):
        L.append(f"Cold latency in ms ({res['cold_cones']} centres per radius; before each query: OS page cache dropped, and a freshly started PostgreSQL / new DuckDB connection / new Tessera engine):")
        L.append("")
        L.append("| system | " + " | ".join(f"{lb} p50 | {lb} p95" for lb in labels) + " |")
        L.append("|---|" + "---:|---:|" * len(radii))
        for key, title in systems:
            per = res["cold"].get(key)
            if not per:
                continue
            cells = []
            for lb in labels:
                s = per.get(lb)
                cells += [fmt_ms(s["p50_ms"]) if s else "—", fmt_ms(s["p95_ms"]) if s else "—"]
            L.append(f"| {title} | " + " | ".join(cells) + " |")
        L.append("")
    # ratios
    L.append("Tessera ÷ baseline (warm p50; < 1 means Tessera is faster):")
    L.append("")
    L.append("| baseline | " + " | ".join(labels) + " |")
    L.append("|---|" + "---:|" * len(radii))
    tess = warm.get("tessera", {})
    for key, title in systems:
        if key in ("tessera", "tessera_plan") or key not in warm:
            continue
        cells = [ratio(tess.get(lb, {}).get("p50_ms"), warm[key].get(lb, {}).get("p50_ms")) for lb in labels]
        L.append(f"| {title} | " + " | ".join(cells) + " |")
    if "q3c_generic" in warm and "q3c_auto" in warm:
        cells = []
        for lb in labels:
            best = min(warm["q3c_generic"].get(lb, {}).get("p50_ms", math.inf), warm["q3c_auto"].get(lb, {}).get("p50_ms", math.inf))
            cells.append(ratio(tess.get(lb, {}).get("p50_ms"), best if best < math.inf else None))
        L.append("| q3c, the faster of the two (the target) | " + " | ".join(cells) + " |")
    if res.get("cold") and "tessera" in res["cold"] and "q3c_cold" in res["cold"]:
        cells = [ratio(res["cold"]["tessera"].get(lb, {}).get("p95_ms"), res["cold"]["q3c_cold"].get(lb, {}).get("p95_ms")) for lb in labels]
        L.append("| cold p95: Tessera ÷ q3c | " + " | ".join(cells) + " |")
    L.append("")
    mm = res["mismatches"]
    if mm:
        L.append(f"**ROW-COUNT MISMATCHES: {len(mm)}** (first 10):")
        L.append("")
        for m in mm[:10]:
            L.append(f"* {m}")
    else:
        L.append(f"Row counts: every system returned the brute-force count for every cone ({res['cones']} × {len(radii)} cones).")
    L.append("")
    for n in res.get("notes", []):
        L.append(f"* {n}")
    return "\n".join(L) + "\n"


SYSTEMS = [
    ("tessera", "Tessera (ADQL engine, `cone_latency`)"),
    ("tessera_plan", "Tessera, planning only (`engine.plan`)"),
    ("q3c_generic", "q3c, prepared, `plan_cache_mode = force_generic_plan`"),
    ("q3c_auto", "q3c, prepared, default `plan_cache_mode` (auto)"),
    ("q3c_cold", "q3c (first query)"),
    ("pgsphere", "pgSphere `spoint <@ scircle`, GiST"),
    ("pgsphere_cold", "pgSphere (first query)"),
    ("duckdb", "DuckDB, sorted Parquet + HEALPix ranges"),
    ("duckdb_cold", "DuckDB (first query)"),
]


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="hip2", help=f"catalog to compare: {', '.join(DATASETS)} (default hip2)")
    ap.add_argument("--catalog", help="an already loaded catalog ROOT/<schema>/<table> instead of --data (with --id)")
    ap.add_argument("--id", help="id column of --catalog (Parquet name)")
    ap.add_argument("--root", type=Path, default=BENCH / "data", help="Tessera data root for --data (default ~/.cache/tessera-bench/data)")
    ap.add_argument("--cones", type=int, default=200, help="random centres (default 200)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--radii", default="1arcmin,6arcmin,1deg", help="comma-separated radii (default 1arcmin,6arcmin,1deg)")
    ap.add_argument("--cold", type=int, default=200, help="centres per radius for cold timings, the first N of --cones (needs root; 0: skip; default 200)")
    ap.add_argument("--systems", default="tessera,q3c,pgsphere,duckdb", help="subset of tessera,q3c,pgsphere,duckdb")
    ap.add_argument("--pg-dir", default="/var/tmp/tessera-pg", help="PostgreSQL cluster directory (default /var/tmp/tessera-pg)")
    ap.add_argument("--pg-port", type=int, default=5440)
    ap.add_argument("--stop-pg", action="store_true", help="stop PostgreSQL at the end (default: leave it running for the next run)")
    ap.add_argument("--no-duck-ranges", action="store_true", help="DuckDB without the HEALPix range prefilter")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--reload", action="store_true", help="reload the catalog and the PostgreSQL tables")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()

    systems = set(args.systems.split(","))
    unknown = systems - {"tessera", "q3c", "pgsphere", "duckdb"}
    if unknown:
        ap.error(f"unknown systems: {', '.join(sorted(unknown))}")
    radii = [parse_radius(s) for s in args.radii.split(",") if s.strip()]
    if args.catalog:
        cat = Path(args.catalog).resolve()
        if not args.id:
            ap.error("--catalog needs --id")
        spec = {"catalog": f"{cat.parent.name}/{cat.name}", "table": f"{cat.parent.name}.{cat.name}", "id": args.id, "cheap": False}
        # A known catalogue keeps its magnitude column, so that its PostgreSQL table stays the
        # one aggregates.py and xmatch.py load (same fingerprint, no reload).
        known = next((d for d in DATASETS.values() if d["catalog"] == spec["catalog"] and d["id"] == args.id), None)
        if known is not None:
            spec["mag"] = known["mag"]
        root = cat.parent.parent
        name = cat.name
    else:
        if args.data not in DATASETS:
            ap.error(f"unknown --data {args.data} (known: {', '.join(DATASETS)})")
        spec = DATASETS[args.data]
        root = args.root.resolve()
        name = args.data.replace("-", "_")
    cold_n = min(args.cold, args.cones)
    notes: list[str] = []
    if cold_n and not can_drop_caches():
        notes.append("cold timings skipped: dropping the page cache needs root")
        log(notes[-1])
        cold_n = 0

    started = dt.datetime.now(dt.timezone.utc)
    load_start = os.getloadavg()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip()
    # Uncommitted changes to what the measured binaries are built from mark the commit "+dirty".
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], stdout=subprocess.PIPE, text=True).stdout
    changed = [line[3:] for line in status.splitlines() if len(line) > 3]
    built_from = ("Cargo.", "engine/", "storage/", "loader/", "server/", "benches/src/", "benches/examples/", "benches/Cargo.toml")
    dirty = [p for p in changed if p.startswith(built_from)]
    if dirty:
        commit += "+dirty"

    # 1. binaries and catalog
    if not args.no_build:
        run(["cargo", "build", "--release", "-p", "tessera-server"])
        run(["cargo", "build", "--release", "-p", "tessera-benches", "--example", "cone_latency"])
    cat = ensure_catalog(args, spec, root)
    t, files = read_rows(cat, spec)
    nrows = t.num_rows
    fp = fingerprint(t)
    log(f"{nrows:,} rows in {len(files)} Parquet files, fingerprint {fp}")
    xyz = sort_by_z(unit(t.column("ra").to_numpy(), t.column("dec").to_numpy()))
    centres = random_centres(args.cones, args.seed)
    files_glob = str(cat / "dataset" / "**" / "*.parquet")
    adql_id = spec["id"].lower()

    res: dict = {
        "dataset": name,
        "catalog": str(cat),
        "rows": nrows,
        "fingerprint": fp,
        "cones": args.cones,
        "seed": args.seed,
        "radii_deg": radii,
        "started_utc": started.strftime("%Y-%m-%d %H:%M"),
        "commit": commit,
        "uncommitted": changed,
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "loadavg_start": f"{load_start[0]:.1f}",
        "warm": {},
        "cold": {},
        "cold_cones": cold_n,
        "notes": notes,
        "centres": centres.tolist(),
    }

    # 2. PostgreSQL
    if systems & {"q3c", "pgsphere"}:
        pg_start(args)
        res["pg_load"] = pg_load(args, name, t, fp)
        res["pg_floor"] = stats(pg_floor(args.pg_port))

    # ranges for DuckDB
    ranges_by_r: dict[float, list | None] = {}
    res["duck_ranges"] = not args.no_duck_ranges
    if "duckdb" in systems:
        if args.no_duck_ranges:
            notes.append("DuckDB ran without the HEALPix range prefilter (--no-duck-ranges)")
        else:
            t0 = time.monotonic()
            for r in radii:
                ranges_by_r[r] = [hpx_ranges(ra, dec, r, DUCK_MAX_RANGES) for ra, dec in centres]
            log(f"HEALPix ranges for DuckDB: {time.monotonic() - t0:.1f} s (cdshealpix, not timed)")
            notes.append(f"DuckDB prefilter: ≤ {DUCK_MAX_RANGES} `_healpix_29` ranges per cone from cdshealpix cone coverage (computed in Python outside the timings) plus their overall [min, max]; `parquet_metadata_cache = true`")
        res["duck_floor"] = stats(duck_floor())

    truth = {radius_label(r): brute_force_counts(xyz, centres, r) for r in radii}
    per_cone: dict = {}

    def record(section: str, key: str, lb: str, times: list[float], rows: list[int], extra: dict | None = None):
        s = stats(times)
        s["rows"] = int(sum(rows))
        if extra:
            s.update(extra)
        res[section].setdefault(key, {})[lb] = s
        per_cone.setdefault(section, {}).setdefault(key, {})[lb] = {"ms": [round(x, 4) for x in times], "rows": rows}
        log(f"{section:4} {key:14} {lb:>4}: p50 {s['p50_ms']:.3f} ms, p95 {s['p95_ms']:.3f} ms, rows {s['rows']}")

    # 3. warm
    for r in radii:
        lb = radius_label(r)
        if "tessera" in systems:
            j = tessera_run(args, root, spec["table"], adql_id, centres, r, ["--repeat", "1"])
            record("warm", "tessera", lb, [q["ms"][0] for q in j["queries"]], [q["rows"] for q in j["queries"]])
            j = tessera_run(args, root, spec["table"], adql_id, centres, r, ["--repeat", "1", "--plan-only"])
            record("warm", "tessera_plan", lb, [q["ms"][0] for q in j["queries"]], [0] * len(centres))
        if "q3c" in systems:
            tm, rw = pg_warm(args.pg_port, "q3c", Q3C_SQL.format(t=name), centres, r, ["SET plan_cache_mode = force_generic_plan"])
            record("warm", "q3c_generic", lb, tm, rw)
            tm, rw = pg_warm(args.pg_port, "q3c", Q3C_SQL.format(t=name), centres, r, ["SET plan_cache_mode = auto"])
            record("warm", "q3c_auto", lb, tm, rw)
        if "pgsphere" in systems:
            tm, rw = pg_warm(args.pg_port, "sphere", SPHERE_SQL.format(t=name), centres, r, [])
            record("warm", "pgsphere", lb, tm, rw)
        if "duckdb" in systems:
            tm, rw = duck_warm(files_glob, spec["id"], centres, r, ranges_by_r.get(r))
            record("warm", "duckdb", lb, tm, rw)

    # cold
    if cold_n:
        sub = centres[:cold_n]
        for r in radii:
            lb = radius_label(r)
            if "tessera" in systems:
                j = tessera_run(args, root, spec["table"], adql_id, sub, r, ["--cold"])
                record("cold", "tessera", lb, [q["ms"][0] for q in j["queries"]], [q["rows"] for q in j["queries"]])
            if systems & {"q3c", "pgsphere"}:
                out = pg_cold(args, sub, r, name)
                if "q3c" in systems:
                    record("cold", "q3c_cold", lb, *out["q3c"])
                if "pgsphere" in systems:
                    record("cold", "pgsphere_cold", lb, *out["pgsphere"])
            if "duckdb" in systems:
                rg = ranges_by_r.get(r)
                tm, rw = duck_cold(files_glob, spec["id"], sub, r, rg[:cold_n] if rg is not None else None)
                record("cold", "duckdb_cold", lb, tm, rw)

    if args.stop_pg and systems & {"q3c", "pgsphere"}:
        run([REPO / "tools" / "pg-baseline", "stop", args.pg_dir])

    # 4. row counts against brute force
    mismatches = []
    for section, by_key in per_cone.items():
        for key, by_r in by_key.items():
            if key == "tessera_plan":
                continue
            for lb, d in by_r.items():
                want = truth[lb]
                for i, n in enumerate(d["rows"]):
                    if n != want[i]:
                        ra, dec = centres[i]
                        mismatches.append(f"{section} {key} r={lb} cone #{i} ({ra:.6f}, {dec:.6f}): {n} rows, brute force {want[i]}")
    res["mismatches"] = mismatches
    res["truth_rows"] = {lb: int(sum(v)) for lb, v in truth.items()}
    res["per_cone"] = per_cone
    res["loadavg_end"] = f"{os.getloadavg()[0]:.1f}"
    res["elapsed_s"] = time.monotonic() - T0
    notes.append("PostgreSQL and DuckDB timings are taken in this Python process (psycopg 3 / duckdb module) and include the client round trip (see the client-floor rows); Tessera's are taken inside the `cone_latency` example process (no client, no HTTP)")

    md = markdown(res)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    jpath = args.out / f"cones-{stamp}.json"
    mpath = args.out / f"cones-{stamp}.md"
    jpath.write_text(json.dumps(res, indent=1) + "\n")
    mpath.write_text(md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    if mismatches:
        print(f"\n!!! {len(mismatches)} ROW-COUNT MISMATCHES (see above and {jpath}) !!!", file=sys.stderr)
        for m in mismatches[:20]:
            print("  " + m, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
