#!/usr/bin/env python3
"""`/tap/sync` end to end over loopback (issue 5): large-result throughput with the server's
memory, and small-cone latency through HTTP against the same cones in the engine.

One command (results in docs/benchmarks.md, "TAP /tap/sync end to end (issue 5)"):

    benches/compare/tap_sync.py                     # synth20m: cones, then the whole table

1. builds the release `tessera` binary and the `tap_sync` example (skip with --no-build);
   makes sure the `--data` catalogue is loaded (compare_common.ensure_catalog);
2. cones: the 200 centres of cones.py (numpy, seed 42, uniform on the sphere) at each
   `--radius` (default 1′ and 6′) go to `tap_sync cones`, which starts `tessera serve`,
   opens the engine in process, and times each cone in the engine, through `/tap/sync` on a
   new connection, on a keep-alive connection, and on a keep-alive connection whose client
   sets TCP_QUICKACK (warm-up pass, then `--repeat` passes); once per `--schedules` entry
   (`blocks`: engine passes back to back as cone_latency, then each HTTP way; `interleaved`:
   every way per cone before the next cone);
3. big: `tap_sync big` with `SELECT * FROM <table>` and MAXREC above the row count, once per
   `--big-format` (default BINARY2 then CSV), each on a freshly started server, `--big-repeat`
   runs, the server's VmRSS sampled every 100 ms;
4. writes ~/.cache/tessera-bench/results/tap_sync-<UTC>.{json,md} and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import numpy as np  # noqa: E402

from compare_common import BENCH, DATASETS, TARGET, fail, log  # noqa: E402


def parse_radius(s: str) -> float:
    s = s.strip()
    for suffix, scale in (("arcsec", 1 / 3600), ("arcmin", 1 / 60), ("deg", 1.0), ("′", 1 / 60), ("″", 1 / 3600), ("°", 1.0)):
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
    """The centres of cones.py: n points uniform on the sphere, (ra, dec) in degrees."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return np.column_stack([ra, dec])


def tap_sync(args: list[str]) -> dict:
    exe = TARGET / "release" / "examples" / "tap_sync"
    cmd = [str(exe), *args]
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail(f"tap_sync exited with {r.returncode}\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def f3(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def markdown(res: dict) -> str:
    p = res["provenance"]
    out = [
        f"Run {p['started_utc']} UTC, commit `{p['commit']}`, {p['machine']}, load average {p['loadavg_start']} → {res.get('loadavg_end', '?')}.",
        "",
    ]
    runs = res.get("cones") or []
    if runs:
        c0 = runs[0]
        out += [
            f"Small cones on `{c0['table']}` ({c0['radii'][0]['cones']} centres per radius, {c0['repeat']} timed passes after a warm-up pass, "
            f"RESPONSEFORMAT={c0['format']}, ms). *blocks*: per pass all cones in the engine back to back (as `cone_latency`), then all through HTTP "
            "one way after the other; *interleaved*: each cone engine → HTTP ways before the next. HTTP total = last body byte, timer started before `connect` "
            "for new connections; \"+QUICKACK\" = keep-alive with the client setting TCP_QUICKACK after each request:",
            "",
            "| schedule | radius | rows | engine p50 | engine p95 | new conn TTFB p50 | new conn total p50 | p95 | keep-alive total p50 | p95 | keep-alive +QUICKACK total p50 | p95 | sync ÷ engine p50: new / keep-alive / +QUICKACK |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in runs:
            for r in c["radii"]:
                e, n, k, q = r["engine"], r["new_conn"], r["keep_alive"], r["keep_alive_quickack"]
                out.append(
                    f"| {c['schedule']} | {radius_label(r['r'])} | {r['rows']:,} | {f3(e['p50_ms'])} | {f3(e['p95_ms'])} | "
                    f"{f3(n['ttfb']['p50_ms'])} | {f3(n['total']['p50_ms'])} | {f3(n['total']['p95_ms'])} | "
                    f"{f3(k['total']['p50_ms'])} | {f3(k['total']['p95_ms'])} | {f3(q['total']['p50_ms'])} | {f3(q['total']['p95_ms'])} | "
                    f"{r['ratio_p50_new_conn']:.2f}× / {r['ratio_p50_keep_alive']:.1f}× / {r['ratio_p50_keep_alive_quickack']:.2f}× |"
                )
        out.append("")
        for c in runs:
            h = c["health"]
            out.append(
                f"* {c['schedule']}: HTTP floor `GET /health`: new connection p50 {f3(h['new_conn']['p50_ms'])} ms, keep-alive {f3(h['keep_alive']['p50_ms'])} ms, "
                f"+QUICKACK {f3(h['keep_alive_quickack']['p50_ms'])} ms; HTTP/engine row-count mismatches: {sum(r['row_mismatches'] for r in c['radii'])}; "
                f"server RSS after: {c['rss_mb']:.0f} MB"
            )
        out.append("")
    big = res.get("big") or []
    if big:
        out += [
            "Large result (`SELECT *`, whole table, one new connection per run, body read and discarded; MB = 10⁶ bytes of body; RSS = server VmRSS sampled every 100 ms):",
            "",
            "| format | body bytes | rows | runs | s (median) | MB/s median (min–max) | TTFB ms | RSS idle MB | RSS start → peak → end MB (worst run) | VmHWM MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for b in big:
            runs = b["runs"]
            rates = [x["mb_per_s"] for x in runs]
            worst = max(runs, key=lambda x: x["rss_peak_mb"])
            rows = runs[0]["rows"]
            out.append(
                f"| {b['format']} | {runs[0]['bytes']:,} | {rows:,} | {len(runs)} | {b['median_s']:.1f} | "
                f"{b['median_mb_per_s']:.0f} ({min(rates):.0f}–{max(rates):.0f}) | {np.median([x['ttfb_ms'] for x in runs]):.0f} | "
                f"{b['rss_idle_mb']:.0f} | {worst['rss_start_mb']:.0f} → {worst['rss_peak_mb']:.0f} → {worst['rss_end_mb']:.0f} | "
                f"{max(x['hwm_mb'] for x in runs):.0f} |"
                if rows is not None
                else f"| {b['format']} | {runs[0]['bytes']:,} | ? | {len(runs)} | {b['median_s']:.1f} | {b['median_mb_per_s']:.0f} | — | {b['rss_idle_mb']:.0f} | "
                f"{worst['rss_start_mb']:.0f} → {worst['rss_peak_mb']:.0f} → {worst['rss_end_mb']:.0f} | {max(x['hwm_mb'] for x in runs):.0f} |"
            )
        out.append("")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synth20m", choices=sorted(DATASETS))
    ap.add_argument("--root", type=Path, default=BENCH / "data", help="data root (default ~/.cache/tessera-bench/data)")
    ap.add_argument("--cones", type=int, default=200, help="centres per radius (default 200; 0 skips the cones)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--radius", default="1arcmin,6arcmin")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the cones (default 3)")
    ap.add_argument("--schedules", default="blocks,interleaved", help="tap_sync cones schedules to run (blocks, interleaved)")
    ap.add_argument("--big-format", default="votable,csv", help="formats of the large result ('' skips it)")
    ap.add_argument("--big-repeat", type=int, default=3)
    ap.add_argument("--big-query", help="default: SELECT * FROM <table>")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()

    spec = DATASETS[args.data]
    cc.build(["tap_sync"], args.no_build)
    prov = cc.provenance()
    cc.ensure_catalog(spec, args.root)
    tessera = TARGET / "release" / "tessera"
    server = ["--tessera", str(tessera), "--root", str(args.root)]
    res: dict = {"provenance": prov, "data": args.data, "table": spec["table"]}

    if args.cones > 0:
        radii = [parse_radius(r) for r in args.radius.split(",") if r.strip()]
        centres = random_centres(args.cones, args.seed)
        cones_file = BENCH / "tmp" / f"tap_sync-cones-{os.getpid()}.txt"
        cones_file.parent.mkdir(parents=True, exist_ok=True)
        with open(cones_file, "w") as f:
            for r in radii:
                for ra, dec in centres:
                    f.write(f"{float(ra)!r} {float(dec)!r} {float(r)!r}\n")
        res["cones"] = []
        try:
            for sched in [x.strip() for x in args.schedules.split(",") if x.strip()]:
                extra = ["--interleave"] if sched == "interleaved" else []
                j = tap_sync(["cones", *server, "--table", spec["table"], "--id", spec["id"], "--cones", str(cones_file), "--repeat", str(args.repeat), *extra])
                res["cones"].append(j)
                for r in j["radii"]:
                    log(f"cones {sched} {radius_label(r['r'])}: engine p50 {r['engine']['p50_ms']:.3f} ms, sync total p50 {r['new_conn']['total']['p50_ms']:.3f} ms (new conn), "
                        f"{r['keep_alive']['total']['p50_ms']:.3f} ms (keep-alive), {r['keep_alive_quickack']['total']['p50_ms']:.3f} ms (+QUICKACK); "
                        f"ratio {r['ratio_p50_new_conn']:.2f}× / {r['ratio_p50_keep_alive']:.1f}× / {r['ratio_p50_keep_alive_quickack']:.2f}×")
        finally:
            cones_file.unlink(missing_ok=True)

    query = args.big_query or f"SELECT * FROM {spec['table']}"
    res["big"] = []
    for fmt in [f for f in args.big_format.split(",") if f.strip()]:
        j = tap_sync(["big", *server, "--query", query, "--format", fmt, "--maxrec", "1000000000", "--repeat", str(args.big_repeat)])
        res["big"].append(j)
        log(f"big {fmt}: {j['runs'][0]['bytes']:,} bytes, median {j['median_s']:.1f} s, {j['median_mb_per_s']:.0f} MB/s, peak RSS {j['max_rss_peak_mb']:.0f} MB")

    res["loadavg_end"] = f"{os.getloadavg()[0]:.1f}"
    res["elapsed_s"] = time.monotonic() - cc.T0
    md = markdown(res)
    jpath, mpath = cc.write_results(args.out, "tap_sync", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    mism = sum(r["row_mismatches"] for c in res.get("cones") or [] for r in c["radii"])
    return 3 if mism else 0


if __name__ == "__main__":
    sys.exit(main())
