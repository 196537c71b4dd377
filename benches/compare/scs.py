#!/usr/bin/env python3
"""Simple Cone Search latency (issue 6): `GET /scs/<table>` against the engine-level cone and
the `/tap/sync` cone, same centres, same run.

One command (results in docs/benchmarks.md, "Images: cutouts and cone search (issue 6)"):

    benches/compare/scs.py                      # hipparcos.hip2, 200 cones at SR = 1′

1. builds the release `tessera` binary and the `cone_latency` example (skip with --no-build);
2. uses the data root of cutouts.py (~/.cache/tessera-bench/images-bench/root: the 8k test
   image in collection `bench` and `hipparcos/hip2`, loaded once with `tessera load` as
   compare_common.ensure_catalog does), and starts `tessera serve` on it (or --url / --server-pid
   for one already running);
3. draws the --cones centres of cones.py (numpy default_rng(--seed), uniform on the sphere);
4. engine: `cone_latency --root ROOT --table hipparcos.hip2 --id hip --cones FILE --repeat R`
   (one warm-up pass, R timed passes; `SELECT hip, ra, dec … CONTAINS(POINT, CIRCLE(…, SR))`
   through `engine.query(..).collect()`, in process, no HTTP);
5. HTTP, from this Python process (http.client, a new connection per request with
   `Connection: close`, timer from before connect to the last body byte): one warm-up pass, then
   R timed passes in which every centre does, back to back,
   * `GET /scs/hipparcos.hip2?RA=&DEC=&SR=` (VERB 2, the default: BINARY2 VOTable);
   * `GET /tap/sync?LANG=ADQL&QUERY=<the ADQL of cone_latency>` (VOTable);
   * `GET /health` (the floor of this client and HTTP);
6. checks that SCS and TAP return, for every cone, the engine's row count (VOTables parsed with
   astropy, on the warm-up pass);
7. writes ~/.cache/tessera-bench/results/scs-<UTC>.{json,md} and prints the markdown.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import numpy as np  # noqa: E402

import cutouts  # noqa: E402
from compare_common import BENCH, DATASETS, TARGET, fail, log, stats  # noqa: E402


def random_centres(n: int, seed: int) -> np.ndarray:
    """The centres of cones.py: n points uniform on the sphere, (ra, dec) in degrees."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return np.column_stack([ra, dec])


def votable_rows(body: bytes) -> int:
    from astropy.io.votable import parse_single_table

    return len(parse_single_table(io.BytesIO(body)).array)


def f3(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


ROWS = [
    ("engine", "engine (`cone_latency`, in process)"),
    ("scs", "`GET /scs/hipparcos.hip2` (new connection)"),
    ("tap", "`GET /tap/sync` same ADQL (new connection)"),
    ("health", "`GET /health` (client + HTTP floor)"),
]


def markdown(res: dict) -> str:
    p = res["provenance"]
    lines = [
        f"Run {p['started_utc']} UTC, commit `{p['commit']}`, {p['machine']}, load average {p['loadavg_start']} → {res['loadavg_end']}; "
        f"{res['table']}, {res['cones']} centres (seed {res['seed']}), SR = {res['sr']!r}°, warm-up + {res['repeat']} timed passes; "
        f"{res['rows']} rows over one pass; total {res['elapsed_s']:.0f} s.",
        "",
        "| what | p50 ms | p95 ms | mean ms | p50 / engine p50 |",
        "|---|---|---|---|---|",
    ]
    e = res["stats"]["engine"]["p50_ms"]
    for key, label in ROWS:
        s = res["stats"].get(key)
        if not s:
            continue
        lines.append(f"| {label} | {f3(s['p50_ms'])} | {f3(s['p95_ms'])} | {f3(s['mean_ms'])} | {s['p50_ms'] / e:.1f}× |")
    d = res["derived"]
    lines += [
        "",
        f"SCS − health floor (p50 of the per-request differences): {d['scs_minus_health_p50_ms']:.3f} ms; "
        f"TAP − health floor: {d['tap_minus_health_p50_ms']:.3f} ms; SCS p50 / TAP p50: {d['scs_over_tap_p50']:.2f}×. "
        f"Row-count mismatches against the engine: {res['row_mismatches']}. "
        f"Server VmRSS {res['server_mem_start'].get('VmRSS', '?')} → {res['server_mem_end'].get('VmRSS', '?')} MB.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=cutouts.ROOT)
    ap.add_argument("--cones", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sr", type=float, default=0.0166667, help="cone radius in degrees (default 0.0166667 = 1′)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes (default 3)")
    ap.add_argument("--url", help="a running `tessera serve` on --root (default: start one)")
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()

    spec = DATASETS["hip2"]
    table, idc = spec["table"], spec["id"].lower()
    cc.build(["cone_latency"], args.no_build)
    prov = cc.provenance()
    root = cutouts.ensure_root(args.root.resolve(), cutouts.ensure_image())
    centres = [(float(a), float(b)) for a, b in random_centres(args.cones, args.seed)]
    sr = args.sr

    scratch = Path(tempfile.mkdtemp(prefix="scs-", dir=cutouts.IMAGES_BENCH))
    cones_file = scratch / "cones.txt"
    cones_file.write_text("".join(f"{ra!r} {dec!r} {sr!r}\n" for ra, dec in centres))

    srv = cutouts.Server(root=root, url=args.url, pid=args.server_pid)
    res: dict = {"provenance": prov, "table": table, "cones": len(centres), "seed": args.seed, "sr": sr, "repeat": args.repeat, "root": str(root)}
    res["server_mem_start"] = srv.mem()
    try:
        # engine
        cmd = [str(TARGET / "release" / "examples" / "cone_latency"), "--root", str(root), "--table", table, "--id", idc,
               "--cones", str(cones_file), "--repeat", str(args.repeat)]
        log("$ " + " ".join(cmd))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            fail(f"cone_latency exited with {r.returncode}\n{r.stderr[-3000:]}")
        ej = json.loads(r.stdout)
        engine_rows = [q["rows"] for q in ej["queries"]]
        engine_ms = [t for q in ej["queries"] for t in q["ms"]]
        log(f"engine: p50 {ej['p50_ms']:.3f} ms, p95 {ej['p95_ms']:.3f} ms, {ej['rows']} rows")

        def scs_target(ra: float, dec: float) -> str:
            return f"/scs/{table}?" + urllib.parse.urlencode({"RA": repr(ra), "DEC": repr(dec), "SR": repr(sr)})

        def tap_target(ra: float, dec: float) -> str:
            q = (f"SELECT {idc}, ra, dec FROM {table} WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
                 f"CIRCLE('ICRS', {ra!r}, {dec!r}, {sr!r}))")
            return "/tap/sync?" + urllib.parse.urlencode({"LANG": "ADQL", "QUERY": q}, quote_via=urllib.parse.quote)

        # warm-up + checks
        mismatches = []
        for i, (ra, dec) in enumerate(centres):
            for what, target in (("scs", scs_target(ra, dec)), ("tap", tap_target(ra, dec))):
                st, body, _ = cutouts.get(srv, target)
                if st != 200:
                    fail(f"{target}: HTTP {st}: {body[:300]!r}")
                n = votable_rows(body)
                if n != engine_rows[i]:
                    mismatches.append(f"{what} cone #{i} ({ra!r}, {dec!r}): {n} rows, engine {engine_rows[i]}")
            cutouts.get(srv, "/health")

        t: dict[str, list[float]] = {"scs": [], "tap": [], "health": []}
        for _ in range(args.repeat):
            for ra, dec in centres:
                t["scs"].append(cutouts.get(srv, scs_target(ra, dec))[2])
                t["tap"].append(cutouts.get(srv, tap_target(ra, dec))[2])
                t["health"].append(cutouts.get(srv, "/health")[2])
        res["server_mem_end"] = srv.mem()
    finally:
        srv.close()
        cones_file.unlink(missing_ok=True)
        scratch.rmdir()

    res["stats"] = {"engine": stats(engine_ms), **{k: stats(v) for k, v in t.items()}}
    res["engine_reported"] = {k: ej[k] for k in ("p50_ms", "p95_ms", "mean_ms", "rows")}
    h = np.asarray(t["health"])
    res["derived"] = {
        "scs_minus_health_p50_ms": float(np.percentile(np.asarray(t["scs"]) - h, 50)),
        "tap_minus_health_p50_ms": float(np.percentile(np.asarray(t["tap"]) - h, 50)),
        "scs_over_engine_p50": res["stats"]["scs"]["p50_ms"] / res["stats"]["engine"]["p50_ms"],
        "tap_over_engine_p50": res["stats"]["tap"]["p50_ms"] / res["stats"]["engine"]["p50_ms"],
        "scs_over_tap_p50": res["stats"]["scs"]["p50_ms"] / res["stats"]["tap"]["p50_ms"],
    }
    res["rows"] = int(sum(engine_rows))
    res["row_mismatches"] = len(mismatches)
    res["mismatch_list"] = mismatches[:50]
    res["ms"] = {"engine": [round(x, 4) for x in engine_ms], **{k: [round(x, 4) for x in v] for k, v in t.items()}}
    res["centres"] = centres
    res["loadavg_end"] = f"{os.getloadavg()[0]:.1f}"
    res["elapsed_s"] = time.monotonic() - cc.T0
    for k, _ in ROWS:
        s = res["stats"][k]
        log(f"{k:7}: p50 {s['p50_ms']:.3f} ms, p95 {s['p95_ms']:.3f} ms")
    md = markdown(res)
    jpath, mpath = cc.write_results(args.out, "scs", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    return 3 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
