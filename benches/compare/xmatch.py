#!/usr/bin/env python3
"""Crossmatch: Tessera vs PostgreSQL q3c_join / pgSphere vs DuckDB, same rows, same pairs.

    benches/compare/xmatch.py                       # both pairs below
    benches/compare/xmatch.py --pairs hip-gaia      # only Hipparcos × Gaia-bright

Pairs of catalogs (every row of the left one against the right one):

* `hip-gaia`: hip2 (117,955 rows) × gaia-bright (482,176 rows) at 2″;
* `list-synth20m` (or `list-synth100m`): a 200,000-row list × the synthetic catalog at 1″.
  The list (seed 42): 150,000 rows drawn from the catalog and moved by a random offset of
  0–1.5″ (about half end up inside 1″), plus 50,000 positions uniform on the sphere. It is
  written as Parquet and loaded with `tessera load` as `xmatch.list200k_<catalog>`, so every
  system reads the same rows.

Systems (pairs returned to the client: left id, right id):

* **Tessera**: `SELECT l.<id>, r.<id> FROM <left> AS l JOIN <right> AS r ON
  DISTANCE(POINT('ICRS', l.ra, l.dec), POINT('ICRS', r.ra, r.dec)) < <radius>` through
  `Engine::query` (`query_latency --adql`) with a time limit (`--timeout`, default 300 s):
  a run that exceeds it is recorded as "timeout"; and the same with the tables in the other
  order (`FROM <right> AS r JOIN <left> AS l`), since the translator treats the two sides of
  the join differently (the ratios use the first form);
* **q3c**: `q3c_join(l.ra, l.dec, r.ra, r.dec, radius)` (index on the right table's
  `q3c_ang2ipix(ra, dec)`, clustered, analyzed);
* **pgSphere**: `r.pos <@ scircle(l.pos, radians(radius))` (GiST on the right table's `pos`);
* **DuckDB**: a zones join over the same Parquet files — declination zones of height = radius,
  each left row joined to the right rows of its own and the two adjacent zones with an RA
  window of radius / cos(|dec| + radius) (rows within 1° of RA 0/360 duplicated with RA ∓ 360;
  within 1° of a pole the window is dropped) and the exact haversine distance test.

Timings: one warm-up run, then `--repeat` (3) timed runs; p50. Pair counts and a hash of the
sorted (left id, right id) pairs are compared between systems. Writes
~/.cache/tessera-bench/results/xmatch-<UTC>.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from compare_common import BENCH, DATASETS, log, stats  # noqa: E402

PAIRS = {
    "hip-gaia": {"left": "hip2", "right": "gaia-bright", "radius_arcsec": 2.0},
    "list-synth20m": {"left": ("list", "synth20m"), "right": "synth20m", "radius_arcsec": 1.0},
    "list-synth100m": {"left": ("list", "synth100m"), "right": "synth100m", "radius_arcsec": 1.0},
}

LIST_ROWS = 200_000
LIST_FROM_CATALOG = 150_000


def make_list(root: Path, right: str, right_cat: Path, reload: bool) -> dict:
    """The 200k-row list for `right`, loaded as xmatch.list200k_<right>; returns its spec."""
    table = f"list200k_{right}"
    spec = {"catalog": f"xmatch/{table}", "table": f"xmatch.{table}", "id": "id", "cheap": False}
    cat = root / spec["catalog"]
    if (cat / "hats.properties").exists() and not reload:
        at = cc._loaded_at(cat)
        rat = cc._loaded_at(right_cat)
        if at and rat and at >= rat:
            log(f"list {cat} present")
            return spec
    rng = np.random.default_rng(42)
    t = cc.read_columns(right_cat, ["ra", "dec"], sort_hpx=False)
    idx = rng.choice(t.num_rows, LIST_FROM_CATALOG, replace=False)
    ra = t.column("ra").to_numpy()[idx]
    dec = t.column("dec").to_numpy()[idx]
    # offset: uniform direction, separation 0..1.5″ (uniform in the disk)
    sep = np.radians(1.5 / 3600) * np.sqrt(rng.uniform(0, 1, idx.size))
    pa_ = rng.uniform(0, 2 * np.pi, idx.size)
    d1 = np.radians(dec)
    d2 = np.arcsin(np.sin(d1) * np.cos(sep) + np.cos(d1) * np.sin(sep) * np.cos(pa_))
    ra2 = np.radians(ra) + np.arctan2(np.sin(pa_) * np.sin(sep) * np.cos(d1), np.cos(sep) - np.sin(d1) * np.sin(d2))
    n_rand = LIST_ROWS - LIST_FROM_CATALOG
    rra = rng.uniform(0, 360, n_rand)
    rdec = np.degrees(np.arcsin(rng.uniform(-1, 1, n_rand)))
    out = pa.table({
        "id": pa.array(np.arange(LIST_ROWS, dtype=np.int64)),
        "ra": pa.array(np.concatenate([np.degrees(ra2) % 360.0, rra])),
        "dec": pa.array(np.concatenate([np.degrees(d2), rdec])),
    })
    src = BENCH / "xmatch" / f"{table}.parquet"
    src.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, src)
    import shutil

    if cat.exists():
        shutil.rmtree(cat)
    cat.parent.mkdir(parents=True, exist_ok=True)
    cc.run([cc.TARGET / "release" / "tessera", "load", src, "--catalog", cat, "--no-progress"], stdout=cc.subprocess.DEVNULL, stderr=cc.subprocess.PIPE, text=True)
    log(f"list: {LIST_ROWS:,} rows ({LIST_FROM_CATALOG:,} from {right} moved by ≤ 1.5″) loaded into {cat}")
    return spec


def side(root: Path, ref, reload: bool) -> tuple[dict, Path]:
    if isinstance(ref, tuple):
        right = ref[1]
        rspec = DATASETS[right]
        rcat = cc.ensure_catalog(rspec, root, reload)
        spec = make_list(root, right, rcat, reload)
        return spec, root / spec["catalog"]
    spec = DATASETS[ref]
    return spec, cc.ensure_catalog(spec, root, reload)


def pg_table(spec: dict) -> str:
    return spec["table"].split(".")[1]


PAIR_SETS: dict[int, set] = {}


def pairs_digest(rows) -> tuple[int, str]:
    """(count, hash of the sorted pairs); the set itself is kept in PAIR_SETS for diffs."""
    a = np.asarray(rows, dtype=np.int64).reshape(-1, 2) if len(rows) else np.zeros((0, 2), dtype=np.int64)
    order = np.lexsort((a[:, 1], a[:, 0]))
    digest = (int(a.shape[0]), hashlib.sha256(np.ascontiguousarray(a[order]).tobytes()).hexdigest()[:16])
    PAIR_SETS[hash(digest)] = set(map(tuple, a.tolist()))
    return digest


def pgsphere_max_sep(port: int, lt: str, rt: str, pairs: list) -> float | None:
    """Largest separation (degrees) of the given (left id, right id) pairs, from the sphere db."""
    if not pairs:
        return None
    with cc.pg_connect(port, "sphere") as conn:
        row = conn.execute(
            f"SELECT max(degrees(l.pos <-> r.pos)) FROM unnest(%s::bigint[], %s::bigint[]) AS p(a, b) "
            f"JOIN {lt} AS l ON l.id = p.a JOIN {rt} AS r ON r.id = p.b",
            ([int(a) for a, _ in pairs], [int(b) for _, b in pairs]),
        ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def duck_sql(lglob: str, rglob: str, lid: str, rid: str, r: float) -> str:
    """Zones join: zone height r; the left side probes its own and both adjacent zones."""
    hav = ("2 * asin(sqrt(pow(sin(radians(b.dec - a.dec) / 2), 2) + cos(radians(a.dec)) * cos(radians(b.dec)) "
           "* pow(sin(radians(b.ra0 - a.ra) / 2), 2)))")
    return f"""
WITH l AS (SELECT "{lid}" AS id, ra, dec FROM read_parquet('{lglob}')),
     r0 AS (SELECT "{rid}" AS id, ra, dec, CAST(floor((dec + 90) / {r!r}) AS BIGINT) AS zone FROM read_parquet('{rglob}')),
     b AS (SELECT id, ra AS ra0, ra, dec, zone FROM r0
           UNION ALL SELECT id, ra, ra - 360, dec, zone FROM r0 WHERE ra >= 359
           UNION ALL SELECT id, ra, ra + 360, dec, zone FROM r0 WHERE ra < 1),
     a AS (SELECT id, ra, dec, CAST(floor((dec + 90) / {r!r}) AS BIGINT) + dz AS zone,
                  CASE WHEN abs(dec) + {r!r} >= 89 THEN 400.0 ELSE {r!r} / cos(radians(abs(dec) + {r!r})) + 1e-9 END AS alpha
           FROM l CROSS JOIN (VALUES (-1), (0), (1)) v(dz))
SELECT a.id, b.id FROM a JOIN b ON b.zone = a.zone
 AND ((a.alpha > 1 AND b.ra = b.ra0) OR (a.alpha <= 1 AND b.ra BETWEEN a.ra - a.alpha AND a.ra + a.alpha))
 AND {hav} < radians({r!r})
"""


def time_python(fn, warmup: int, repeat: int) -> tuple[list[float], list]:
    rows = None
    for _ in range(warmup):
        rows = fn()
    ms = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        rows = fn()
        ms.append((time.perf_counter_ns() - t) / 1e6)
    return ms, rows


SYSTEMS = [
    ("tessera", "Tessera (ADQL JOIN … DISTANCE)"),
    ("tessera_swapped", "Tessera, FROM right JOIN left"),
    ("q3c", "PostgreSQL q3c_join"),
    ("pgsphere", "PostgreSQL pgSphere `<@ scircle`"),
    ("duckdb", "DuckDB zones join"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="hip-gaia,list-synth20m", help=f"comma-separated: {', '.join(PAIRS)}")
    ap.add_argument("--root", type=Path, default=BENCH / "data")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds for each Tessera run (default 300)")
    ap.add_argument("--systems", default="tessera,q3c,pgsphere,duckdb")
    ap.add_argument("--pg-dir", default="/var/tmp/tessera-pg")
    ap.add_argument("--pg-port", type=int, default=5440)
    ap.add_argument("--reload", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    systems = set(args.systems.split(","))
    root = args.root.resolve()
    prov = cc.provenance()
    cc.build(["query_latency"], args.no_build)
    if systems & {"q3c", "pgsphere"}:
        cc.pg_start(args.pg_dir, args.pg_port)
    res = {**prov, "repeat": args.repeat, "warmup": args.warmup, "timeout_s": args.timeout, "pairs": {}, "notes": []}
    mismatches = []
    for pname in args.pairs.split(","):
        p = PAIRS[pname]
        lspec, lcat = side(root, p["left"], args.reload)
        rspec, rcat = side(root, p["right"], args.reload)
        r = p["radius_arcsec"] / 3600
        lt, rt = pg_table(lspec), pg_table(rspec)
        d = {"left": lspec["table"], "right": rspec["table"], "radius_arcsec": p["radius_arcsec"], "timings": {}}
        # PostgreSQL: same rows (both tables, both databases)
        if systems & {"q3c", "pgsphere"}:
            for spec, cat, tname in ((lspec, lcat, lt), (rspec, rcat, rt)):
                if "mag" in spec:
                    t = cc.catalog_rows(cat, spec)
                    fp = cc.fingerprint(t, ["id", "ra", "dec", "mag"])
                    cc.pg_load(args.pg_dir, args.pg_port, tname, t, fp, args.reload)
                else:
                    t = cc.read_columns(cat, [spec["id"], "ra", "dec"]).select([spec["id"], "ra", "dec"]).rename_columns(["id", "ra", "dec"])
                    fp = cc.fingerprint(t, ["id", "ra", "dec"])
                    cc.pg_load(args.pg_dir, args.pg_port, tname, t, fp, args.reload, extra=[])
                del t
        d["left_rows"] = pq.ParquetDataset(cc.leaf_files(lcat)).count_rows() if hasattr(pq.ParquetDataset, "count_rows") else sum(pq.ParquetFile(f).metadata.num_rows for f in cc.leaf_files(lcat))
        d["right_rows"] = sum(pq.ParquetFile(f).metadata.num_rows for f in cc.leaf_files(rcat))
        out = {}
        if "q3c" in systems:
            sql = f"SELECT l.id, r.id FROM {lt} AS l JOIN {rt} AS r ON q3c_join(l.ra, l.dec, r.ra, r.dec, {r!r})"
            with cc.pg_connect(args.pg_port, "q3c") as conn:
                ms, rows = time_python(lambda: conn.execute(sql).fetchall(), args.warmup, args.repeat)
            out["q3c"] = {**stats(ms), "text": sql, "pairs": pairs_digest(rows)}
        if "pgsphere" in systems:
            sql = f"SELECT l.id, r.id FROM {lt} AS l JOIN {rt} AS r ON r.pos <@ scircle(l.pos, radians({r!r}))"
            with cc.pg_connect(args.pg_port, "sphere") as conn:
                ms, rows = time_python(lambda: conn.execute(sql).fetchall(), args.warmup, args.repeat)
            out["pgsphere"] = {**stats(ms), "text": sql, "pairs": pairs_digest(rows)}
        if "duckdb" in systems:
            sql = duck_sql(str(lcat / "dataset" / "**" / "*.parquet"), str(rcat / "dataset" / "**" / "*.parquet"), lspec["id"], rspec["id"], r)
            con = duckdb.connect()
            con.execute("SET parquet_metadata_cache = true")
            ms, rows = time_python(lambda: con.execute(sql).fetchall(), args.warmup, args.repeat)
            con.close()
            out["duckdb"] = {**stats(ms), "text": sql, "pairs": pairs_digest(rows)}
        if "tessera" in systems:
            lid, rid = lspec["id"].lower(), rspec["id"].lower()
            adql = (f"SELECT l.{lid}, r.{rid} FROM {lspec['table']} AS l JOIN {rspec['table']} AS r "
                    f"ON DISTANCE(POINT('ICRS', l.ra, l.dec), POINT('ICRS', r.ra, r.dec)) < {p['radius_arcsec']!r}/3600")
            # The same join with the two tables in the other order in FROM (the translator
            # treats the sides differently: it expands the second table's rows into cells).
            swapped = (f"SELECT l.{lid}, r.{rid} FROM {rspec['table']} AS r JOIN {lspec['table']} AS l "
                       f"ON DISTANCE(POINT('ICRS', l.ra, l.dec), POINT('ICRS', r.ra, r.dec)) < {p['radius_arcsec']!r}/3600")
            for key, text in (("tessera", adql), ("tessera_swapped", swapped)):
                j = cc.query_latency(["--adql", text, "--root", str(root), "--warmup", str(args.warmup), "--repeat", str(args.repeat), "--dump", "100000000", "--explain"], args.timeout)
                if j.get("error"):
                    out[key] = {"error": j["error"], "text": text}
                elif j.get("timeout"):
                    out[key] = {"timeout": True, "text": text, "elapsed_ms": j.get("ms")}
                else:
                    rows = [(int(a), int(b)) for a, b in j["result"]]
                    out[key] = {**stats(j["ms"]), "text": text, "translated": j.get("explain"), "pairs": pairs_digest(rows)}
        for key, s in out.items():
            if "p50_ms" in s:
                log(f"{pname:14} {key:9} p50 {s['p50_ms']:10.1f} ms  pairs {s['pairs'][0]:,} ({s['pairs'][1]})")
            else:
                log(f"{pname:14} {key:9} {'timeout' if s.get('timeout') else 'error: ' + s.get('error', '')[:400]}")
        ref = next((out[k]["pairs"] for k in ("q3c", "duckdb", "pgsphere", "tessera", "tessera_swapped") if "pairs" in out.get(k, {})), None)
        for key, s in out.items():
            if "pairs" in s and s["pairs"] != ref:
                mine, want = PAIR_SETS[hash(s["pairs"])], PAIR_SETS[hash(ref)]
                extra, missing = sorted(mine - want), sorted(want - mine)
                s["extra_pairs"], s["missing_pairs"] = [list(x) for x in extra[:100]], [list(x) for x in missing[:100]]
                msg = f"{pname}: {key} has {s['pairs'][0]:,} pairs, the reference {ref[0]:,}: {len(extra)} extra {extra[:3]}, {len(missing)} missing {missing[:3]}"
                worst = pgsphere_max_sep(args.pg_port, lt, rt, extra) if key == "pgsphere" and extra and not missing else None
                if worst is not None and worst <= r + math.degrees(1e-9) * 1.01:
                    # pgSphere compares with a tolerance of 1e-9 rad (0.2 mas): pairs just outside the radius
                    s["extra_max_sep_arcsec"] = worst * 3600
                    res["notes"].append(msg + f" — all of them at most {worst * 3600:.7f}″ apart: pgSphere's `<@` compares with a 1e-9 rad (0.2 mas) tolerance, so pairs within 0.2 mas outside the radius are included")
                else:
                    mismatches.append(msg)
        PAIR_SETS.clear()
        d["timings"] = out
        res["pairs"][pname] = d
    res["mismatches"] = mismatches
    res["elapsed_s"] = time.monotonic() - cc.T0
    md = markdown(res)
    jpath, mpath = cc.write_results(args.out, "xmatch", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    if mismatches:
        print(f"\n!!! {len(mismatches)} PAIR MISMATCHES !!!", file=sys.stderr)
        for m in mismatches:
            print("  " + m, file=sys.stderr)
        return 3
    return 0


def fmt(s: dict | None) -> str:
    if not s:
        return "—"
    if s.get("timeout"):
        return f"timeout (> {s.get('timeout_s', '')} s)" if s.get("timeout_s") else "timeout"
    if s.get("error"):
        return "error"
    x = s["p50_ms"] / 1000
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def markdown(res: dict) -> str:
    L = [f"### Crossmatch, p50 of {res['repeat']} warm runs (seconds; pairs returned to the client)", ""]
    L.append(f"Run {res['started_utc']} UTC, commit `{res['commit']}`, {res['machine']}, load average at start {res['loadavg_start']}; Tessera time limit {res['timeout_s']:.0f} s per run; total {res['elapsed_s']:.0f} s.")
    L.append("")
    L.append("| pair | radius | " + " | ".join(t for _, t in SYSTEMS) + " | pairs | q3c ÷ Tessera (target ≥ 5×) | DuckDB ÷ Tessera (target ≥ 2×) |")
    L.append("|---|---:|" + "---:|" * len(SYSTEMS) + "---:|---:|---:|")
    for pname, d in res["pairs"].items():
        t = d["timings"]
        counts = sorted({s["pairs"][0] for s in t.values() if "pairs" in s})
        tess = t.get("tessera", {})  # the query as written: FROM left JOIN right

        def r(k):
            b = t.get(k, {})
            if "p50_ms" in tess and "p50_ms" in b:
                return f"{b['p50_ms'] / tess['p50_ms']:.2f}×"
            return "—"

        L.append(f"| {d['left']} ({d['left_rows']:,}) × {d['right']} ({d['right_rows']:,}) | {d['radius_arcsec']:g}″ | "
                 + " | ".join(fmt(t.get(k)) for k, _ in SYSTEMS) + f" | {'/'.join(f'{c:,}' for c in counts)} | {r('q3c')} | {r('duckdb')} |")
    L.append("")
    if res["mismatches"]:
        L.append(f"**PAIR MISMATCHES: {len(res['mismatches'])}**")
        L.append("")
        for m in res["mismatches"]:
            L.append(f"* {m}")
    else:
        L.append("Pairs: every system that finished returned the same set of (left id, right id) pairs (count and SHA-256 of the sorted pairs), except as noted below.")
    L.append("")
    for n in res.get("notes", []):
        L.append(f"* {n}")
    L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
