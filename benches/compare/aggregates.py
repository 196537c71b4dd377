#!/usr/bin/env python3
"""Full-scan aggregates: Tessera vs plain DataFusion SQL vs DuckDB vs PostgreSQL, same rows.

    benches/compare/aggregates.py --data hip2,gaia-bright,synth20m

For every catalog (loaded with `tessera load`, see compare_common.DATASETS) and every query:

* count(*);
* a magnitude histogram, bins of 0.5 mag: floor(mag * 2) / 2;
* counts per HEALPix order-5 pixel, from the catalog's `_healpix_29` (>> 48, or integer
  division by 4^24 where the operator is not available) — every system has `_healpix_29`
  (PostgreSQL gets it as a column `hpx29` of the same rows);

it times, after one warm-up run, `--repeat` (7) runs on:

* **Tessera**: the ADQL text through `tessera_engine::Engine::query` + collect
  (`query_latency --adql`);
* **DataFusion**: plain DataFusion 55.2 SQL over the same Parquet files (a default
  `SessionContext`, each catalog's `dataset/` directory registered with `register_listing_table`;
  `query_latency --sql`), twice: the hand-written SQL, and the very SQL Tessera's translator
  produces for the ADQL (from `Engine::translate`), when it runs without Tessera's UDFs;
* **DuckDB** 1.5.6: `read_parquet('<catalog>/dataset/**/*.parquet')`, timed in Python
  (execute + fetchall);
* **PostgreSQL** 15 (database q3c of tools/pg-baseline: the table clustered on its q3c index,
  analyzed; default parallel settings), timed in Python (execute + fetchall).

Results are compared between systems (counts per bin / pixel) and mismatches are reported
(exit status 3). Writes ~/.cache/tessera-bench/results/aggregates-<UTC>.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import duckdb  # noqa: E402

from compare_common import BENCH, DATASETS, log, stats  # noqa: E402

HPX5_DIV = 4**24  # _healpix_29 // 4^24 = the order-5 pixel


def queries(spec: dict) -> dict[str, dict[str, str]]:
    """Per query: the text for each system. {t} is the table name for that system."""
    mag = spec["mag"]
    amag = mag.lower()  # ADQL: case-insensitive names (the engine folds them)
    return {
        "count": {
            "adql": "SELECT COUNT(*) AS n FROM {t}",
            "sql": "SELECT COUNT(*) AS n FROM {t}",
            "duckdb": "SELECT count(*) AS n FROM {t}",
            "pg": "SELECT count(*) AS n FROM {t}",
        },
        "mag_hist": {
            "adql": f"SELECT FLOOR({amag} * 2) / 2 AS bin, COUNT(*) AS n FROM {{t}} GROUP BY FLOOR({amag} * 2) / 2 ORDER BY bin",
            "sql": f'SELECT floor("{mag}" * 2) / 2 AS bin, count(*) AS n FROM {{t}} GROUP BY floor("{mag}" * 2) / 2 ORDER BY bin',
            "duckdb": f'SELECT floor("{mag}" * 2) / 2 AS bin, count(*) AS n FROM {{t}} GROUP BY ALL ORDER BY bin',
            "pg": "SELECT floor(mag * 2) / 2 AS bin, count(*) AS n FROM {t} GROUP BY 1 ORDER BY bin",
        },
        "hpx5": {
            "adql": f'SELECT "_healpix_29" / {HPX5_DIV} AS pix, COUNT(*) AS n FROM {{t}} GROUP BY "_healpix_29" / {HPX5_DIV} ORDER BY pix',
            "sql": 'SELECT "_healpix_29" >> 48 AS pix, count(*) AS n FROM {t} GROUP BY "_healpix_29" >> 48 ORDER BY pix',
            "duckdb": 'SELECT "_healpix_29" >> 48 AS pix, count(*) AS n FROM {t} GROUP BY ALL ORDER BY pix',
            "pg": "SELECT hpx29 >> 48 AS pix, count(*) AS n FROM {t} GROUP BY 1 ORDER BY pix",
        },
    }


QUERY_TITLES = {
    "count": "count(*)",
    "mag_hist": "histogram by magnitude (0.5 mag bins)",
    "hpx5": "count by HEALPix order-5 pixel",
}

SYSTEMS = [
    ("tessera", "Tessera (ADQL → engine)"),
    ("datafusion", "plain DataFusion SQL (hand-written)"),
    ("datafusion_translated", "plain DataFusion, Tessera's translated SQL"),
    ("duckdb", "DuckDB read_parquet"),
    ("pg", "PostgreSQL 15 (q3c table)"),
]


def norm(rows: list) -> dict:
    """{key: count} with keys as rounded floats (None for null), for cross-checks."""
    out = {}
    for r in rows:
        if len(r) == 1:
            out["n"] = int(float(r[0]))
            continue
        k = r[0]
        if k is None or k == "":
            key = None
        else:
            key = round(float(k), 6)
        out[key] = out.get(key, 0) + int(float(r[1]))
    return out


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="hip2,gaia-bright,synth20m", help=f"comma-separated: {', '.join(DATASETS)}")
    ap.add_argument("--root", type=Path, default=BENCH / "data")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per Tessera / DataFusion run (default 300)")
    ap.add_argument("--systems", default="tessera,datafusion,duckdb,pg")
    ap.add_argument("--queries", default="count,mag_hist,hpx5")
    ap.add_argument("--pg-dir", default="/var/tmp/tessera-pg")
    ap.add_argument("--pg-port", type=int, default=5440)
    ap.add_argument("--reload", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    systems = set(args.systems.split(","))
    qnames = args.queries.split(",")
    names = args.data.split(",")
    for n in names:
        if n not in DATASETS:
            ap.error(f"unknown --data {n}")

    prov = cc.provenance()
    cc.build(["query_latency"], args.no_build)
    root = args.root.resolve()
    res = {**prov, "repeat": args.repeat, "warmup": args.warmup, "datasets": {}, "notes": []}
    mismatches = []
    if "pg" in systems:
        cc.pg_start(args.pg_dir, args.pg_port)

    for name in names:
        spec = DATASETS[name]
        cat = cc.ensure_catalog(spec, root, args.reload)
        files_glob = str(cat / "dataset" / "**" / "*.parquet")
        pgname = name.replace("-", "_")
        d = {"catalog": str(cat), "table": spec["table"], "results": {}, "timings": {}}
        if "pg" in systems:
            t = cc.catalog_rows(cat, spec)
            d["rows"] = t.num_rows
            fp = cc.fingerprint(t, ["id", "ra", "dec", "mag"])
            d["pg_load"] = cc.pg_load(args.pg_dir, args.pg_port, pgname, t, fp, args.reload)
            del t
        qs = queries(spec)
        duck = duckdb.connect() if "duckdb" in systems else None
        if duck is not None:
            duck.execute("SET parquet_metadata_cache = true")
            duck.execute(f"CREATE VIEW cat AS SELECT * FROM read_parquet('{files_glob}', hive_partitioning = false)")
        pg = cc.pg_connect(args.pg_port, "q3c") if "pg" in systems else None
        for q in qnames:
            texts = qs[q]
            per = {}
            out = {}
            if "tessera" in systems:
                adql = texts["adql"].format(t=spec["table"])
                j = cc.query_latency(["--adql", adql, "--root", str(root), "--warmup", str(args.warmup), "--repeat", str(args.repeat), "--dump", "100000", "--explain"], args.timeout)
                per["tessera"] = j
                translated = j.get("explain")
                if "datafusion" in systems and translated:
                    jt = cc.query_latency(["--sql", translated, "--parquet", f"{spec['table']}={cat / 'dataset'}", "--warmup", str(args.warmup), "--repeat", str(args.repeat), "--dump", "100000"], args.timeout)
                    per["datafusion_translated"] = jt
            if "datafusion" in systems:
                sql = texts["sql"].format(t=spec["table"])
                per["datafusion"] = cc.query_latency(["--sql", sql, "--parquet", f"{spec['table']}={cat / 'dataset'}", "--warmup", str(args.warmup), "--repeat", str(args.repeat), "--dump", "100000", "--explain"], args.timeout)
            for key, j in per.items():
                if j.get("error"):
                    out[key] = {"error": j["error"]}
                    log(f"{name} {q} {key}: error: {j['error'][:300]}")
                elif j.get("timeout"):
                    out[key] = {"timeout": True}
                    log(f"{name} {q} {key}: timeout")
                else:
                    out[key] = {**stats(j["ms"]), "result": norm(j["result"]), "text": j.get("query"), "plan": j.get("explain")}
            if duck is not None:
                sql = texts["duckdb"].format(t="cat")
                ms, rows = time_python(lambda: duck.execute(sql).fetchall(), args.warmup, args.repeat)
                out["duckdb"] = {**stats(ms), "result": norm(rows), "text": sql}
            if pg is not None:
                sql = texts["pg"].format(t=pgname)
                ms, rows = time_python(lambda: pg.execute(sql).fetchall(), args.warmup, args.repeat)
                out["pg"] = {**stats(ms), "result": norm(rows), "text": sql}
            for key, s in out.items():
                if "p50_ms" in s:
                    log(f"{name:12} {q:9} {key:22} p50 {s['p50_ms']:9.2f} ms  p95 {s['p95_ms']:9.2f} ms  ({len(s['result'])} groups)")
            # cross-check against DuckDB (or the first system with a result)
            ref_key = "duckdb" if "result" in out.get("duckdb", {}) else next((k for k, s in out.items() if "result" in s), None)
            if ref_key:
                ref = out[ref_key]["result"]
                for key, s in out.items():
                    if "result" in s and s["result"] != ref:
                        diff = [k for k in set(ref) | set(s["result"]) if ref.get(k) != s["result"].get(k)]
                        mismatches.append(f"{name} {q}: {key} differs from {ref_key} in {len(diff)} groups (e.g. {sorted(map(str, diff))[:3]})")
            d["timings"][q] = {k: {kk: vv for kk, vv in s.items() if kk != "result"} for k, s in out.items()}
            d["results"][q] = out.get(ref_key, {}).get("result") if ref_key else None
        if duck is not None:
            duck.close()
        if pg is not None:
            pg.close()
        res["datasets"][name] = d
    res["mismatches"] = mismatches
    res["elapsed_s"] = time.monotonic() - cc.T0
    md = markdown(res, qnames)
    jpath, mpath = cc.write_results(args.out, "aggregates", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    if mismatches:
        print(f"\n!!! {len(mismatches)} RESULT MISMATCHES !!!", file=sys.stderr)
        for m in mismatches:
            print("  " + m, file=sys.stderr)
        return 3
    return 0


def fmt(s: dict | None) -> str:
    if not s:
        return "—"
    if s.get("timeout"):
        return "timeout"
    if s.get("error"):
        return "error"
    x = s["p50_ms"]
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or "p50_ms" not in a or "p50_ms" not in b or b["p50_ms"] == 0:
        return "—"
    return f"{a['p50_ms'] / b['p50_ms']:.2f}×"


def markdown(res: dict, qnames: list[str]) -> str:
    L = [f"### Full-scan aggregates, p50 of {res['repeat']} warm runs (ms)", ""]
    L.append(f"Run {res['started_utc']} UTC, commit `{res['commit']}`, {res['machine']}, load average at start {res['loadavg_start']}; total {res['elapsed_s']:.0f} s.")
    L.append("")
    L.append("| catalog | query | " + " | ".join(t for _, t in SYSTEMS) + " | Tessera ÷ DuckDB (target ≤ 1.2×) | Tessera ÷ DataFusion (target ≤ 1.05×) |")
    L.append("|---|---|" + "---:|" * len(SYSTEMS) + "---:|---:|")
    for name, d in res["datasets"].items():
        rows = f" ({d['rows']:,} rows)" if "rows" in d else ""
        for q in qnames:
            t = d["timings"].get(q, {})
            cells = [fmt(t.get(k)) for k, _ in SYSTEMS]
            L.append(f"| {name}{rows} | {QUERY_TITLES[q]} | " + " | ".join(cells) + f" | {ratio(t.get('tessera'), t.get('duckdb'))} | {ratio(t.get('tessera'), t.get('datafusion'))} |")
    L.append("")
    if res["mismatches"]:
        L.append(f"**RESULT MISMATCHES: {len(res['mismatches'])}**")
        L.append("")
        for m in res["mismatches"]:
            L.append(f"* {m}")
    else:
        L.append("Results: every system returned the same counts per group (checked against DuckDB).")
    L.append("")
    for n in res.get("notes", []):
        L.append(f"* {n}")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
