#!/usr/bin/env python3
"""HiPS tile serving rate (issue 7, item 6): tiles/s/core and latency percentiles of
`GET /hips/<id>/NorderK/DirD/NpixN.<ext>` from the page cache, for image HiPS (files under
ROOT/hips/<id>/) and, with --catalog, catalogue HiPS (tiles cut from the tile store) by order.

One command (results in docs/benchmarks.md, "HiPS tiles (issue 7)"):

    benches/compare/hips_tiles.py                 # image tiles of the synthetic bench HiPS
    benches/compare/hips_tiles.py --catalog synthetic.synth100m --orders 3,6,9 \\
        --root ~/.cache/tessera-bench/data        # catalogue tiles by order

1. builds the release `tessera` binary (skip with --no-build);
2. image tiles (default): the data root ~/.cache/tessera-bench/hips-bench/root holds, made
   once, `hips/bench/`: a HiPS of --tiles (500) real 512×512 grey PNG tiles at order 8
   (a smooth sky + Gaussian noise + stars from numpy default_rng(--seed), encoded by Pillow:
   ~150 KB each, the size of a filled survey tile) with `properties` and `Moc.fits`; or any
   HiPS with --root/--hips (all its tiles of --format at --orders, read from disk);
3. catalogue tiles (--catalog NAME --orders K,…): per order, --tiles distinct tiles that
   exist, found by drawing positions uniform on the sphere (default_rng(--seed)), turning them
   into order-K cells (cdshealpix) and keeping those answering 200 (a catalogue's first
   request builds its tile store if the server has to: run `tessera hips index` first for a
   large catalogue);
4. starts `tessera serve --data ROOT --listen 127.0.0.1:0` pinned to CPU --server-cpus
   (default 0, i.e. one core) with taskset (or uses --url/--server-pid for a running one);
5. checks every tile once (status 200, content type, and for files the exact size), then per
   group (the image tiles; each catalogue order): a warm-up (--warmup s) and a timed run
   (--duration s) of `wrk` (Debian `wrk`; keep-alive HTTP/1.1, --connections connections, one
   thread pinned to CPU --client-cpus) cycling through the tile list, each connection from
   its own offset (wrk counts answers outside 2xx/3xx; its latency histogram gives the percentiles);
6. reports per group: requests/s, the server's CPU seconds over the run (utime + stime of
   all its threads, /proc/PID/stat) and tiles/s per core = requests / server CPU seconds,
   latency p50/p90/p99/p99.9/max, non-200 answers, MB/s;
7. writes ~/.cache/tessera-bench/results/hips-tiles-<UTC>.{json,md} and prints the markdown.

Targets (issue 7): image tiles ≥ 5,000 tiles/s/core with p99 ≤ 5 ms; catalogue tiles p99 ≤ 20 ms
at any order.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import numpy as np  # noqa: E402

from compare_common import BENCH, TARGET, fail, log  # noqa: E402

HIPS_BENCH = BENCH / "hips-bench"
ROOT = HIPS_BENCH / "root"
BENCH_ID = "bench"
BENCH_ORDER = 8

LUA = r"""
local paths = {}
for line in io.lines(os.getenv("HIPS_TILES")) do paths[#paths + 1] = line end
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
local i = 0
function init(args)
  i = ((tid or 1) - 1) * 7919 % #paths
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local p = {}
  for _, q in ipairs({50, 90, 99, 99.9}) do p[tostring(q)] = latency:percentile(q) end
  io.write(string.format(
    'JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "lat_mean_us": %f, "lat_max_us": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency.mean, latency.max,
    p["50"], p["90"], p["99"], p["99.9"]))
end
"""


# ---------------------------------------------------------------------------------------------
# the synthetic image HiPS


def nest_children(n: int, levels: int) -> range:
    return range(n << (2 * levels), (n + 1) << (2 * levels))


def ensure_bench_hips(root: Path, tiles: int, seed: int) -> Path:
    """ROOT/hips/bench: `tiles` real 512×512 grey PNG tiles at order 8 (the cells under order-3
    cell 147, which holds M13), `properties` and a `Moc.fits` of those cells. Made once."""
    from PIL import Image

    hips = root / "hips" / BENCH_ID
    stamp = hips / ".bench-tiles"
    if stamp.exists() and stamp.read_text().strip() == f"{tiles} {seed}":
        return hips
    if hips.exists():
        shutil.rmtree(hips)
    log(f"making the bench image HiPS: {tiles} PNG tiles at order {BENCH_ORDER} in {hips}")
    rng = np.random.default_rng(seed)
    cells = list(nest_children(147, BENCH_ORDER - 3))[:tiles]
    if len(cells) < tiles:
        fail(f"--tiles at most {len(list(nest_children(147, BENCH_ORDER - 3)))}")
    yy, xx = np.mgrid[0:512, 0:512]
    py, px = np.mgrid[-6:7, -6:7]
    for n in cells:
        sky = 40 + 20 * np.sin(xx / 97.0 + n) * np.cos(yy / 83.0 - n)
        img = sky + rng.normal(0.0, 6.0, (512, 512))
        for _ in range(40):
            x0, y0, a = rng.integers(6, 506), rng.integers(6, 506), rng.uniform(20, 200)
            img[y0 - 6:y0 + 7, x0 - 6:x0 + 7] += a * np.exp(-(px**2 + py**2) / 8.0)
        d = hips / f"Norder{BENCH_ORDER}" / f"Dir{n // 10000 * 10000}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 1, 255).astype(np.uint8), "L").save(d / f"Npix{n}.png")
    (hips / "properties").write_text(
        "creator_did          = ivo://tessera/bench/hips-tiles\n"
        "obs_title            = Synthetic tiles for benches/compare/hips_tiles.py\n"
        "dataproduct_type     = image\n"
        "hips_version         = 1.4\n"
        "hips_release_date    = 2026-11-21T00:00Z\n"
        "hips_status          = public master clonableOnce\n"
        "hips_tile_format     = png\n"
        f"hips_order           = {BENCH_ORDER}\n"
        f"hips_order_min       = {BENCH_ORDER}\n"
        "hips_tile_width      = 512\n"
        "hips_frame           = equatorial\n"
        "hips_initial_ra      = 250.4226\n"
        "hips_initial_dec     = +36.4602\n"
        "hips_initial_fov     = 2\n"
    )
    stamp.write_text(f"{tiles} {seed}\n")
    return hips


# ---------------------------------------------------------------------------------------------
# server


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, root: Path, cpus: str | None, url: str | None, pid: int | None, binary: Path):
        self.proc = None
        self.state = None
        self.pid = pid
        if url:
            u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
            self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
            return
        HIPS_BENCH.mkdir(parents=True, exist_ok=True)
        self.state = tempfile.mkdtemp(prefix="serve-state-", dir=HIPS_BENCH)
        cmd = [str(binary), "serve", "--data", str(root), "--listen", "127.0.0.1:0", "--state-dir", self.state]
        if cpus:
            cmd = ["taskset", "-c", cpus] + cmd
        log("$ " + " ".join(cmd))
        env = dict(os.environ, RUST_LOG="warn")
        self.log_file = open(os.path.join(self.state, "server.log"), "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log_file, text=True, env=env)
        self.pid = self.proc.pid
        addr = None
        for line in self.proc.stdout:
            if line.strip().startswith("home:"):
                addr = line.split(None, 1)[1].strip()
                break
        if addr is None:
            self.close()
            fail(f"the server exited before printing its address (log: {self.state}/server.log)")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        u = urllib.parse.urlsplit(addr)
        self.host, self.port = u.hostname, u.port
        log(f"server pid {self.pid} at http://{self.host}:{self.port}/")

    def cpu(self) -> float:
        return cpu_seconds(self.pid) if self.pid else float("nan")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.state:
            shutil.rmtree(self.state, ignore_errors=True)
            self.state = None


# ---------------------------------------------------------------------------------------------
# tile lists


def image_tiles(hips: Path, fmt: str | None, orders: list[int] | None) -> list[tuple[str, int]]:
    """(URL path, size) of every tile file of the HiPS, filtered by format and order."""
    out = []
    for d in sorted(hips.glob("Norder*")):
        try:
            k = int(d.name[6:])
        except ValueError:
            continue
        if orders and k not in orders:
            continue
        for f in sorted(d.glob("Dir*/Npix*")):
            if fmt and f.suffix != "." + fmt:
                continue
            out.append((f"/hips/{hips.name}/{f.relative_to(hips).as_posix()}", f.stat().st_size))
    return out


def catalogue_tiles(srv: Server, name: str, order: int, n: int, seed: int) -> list[tuple[str, int]]:
    """Up to n distinct order-`order` tiles of catalogue `name` that exist (200)."""
    import astropy.units as u
    from cdshealpix.nested import lonlat_to_healpix

    rng = np.random.default_rng(seed + order)
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=3600)
    seen: set[int] = set()
    out = []
    tries = 0
    ncells = 12 * 4**order
    while len(out) < n and tries < 20 * n and len(seen) < ncells:
        m = max(4 * n, 1000)
        ra = rng.uniform(0.0, 360.0, m)
        dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, m)))
        cells = lonlat_to_healpix(ra * u.deg, dec * u.deg, order)
        for c in (int(x) for x in cells):
            if c in seen:
                continue
            seen.add(c)
            tries += 1
            p = f"/hips/{name}/Norder{order}/Dir{c // 10000 * 10000}/Npix{c}.tsv"
            conn.request("GET", p)
            r = conn.getresponse()
            body = r.read()
            if r.status == 200:
                out.append((p, len(body)))
                if len(out) >= n:
                    break
            elif r.status != 404:
                fail(f"{p}: HTTP {r.status}: {body[:300]!r}")
    conn.close()
    return out


def check(srv: Server, tiles: list[tuple[str, int]], exact_size: bool) -> None:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=600)
    for p, size in tiles:
        conn.request("GET", p)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            fail(f"{p}: HTTP {r.status}")
        if exact_size and len(body) != size:
            fail(f"{p}: {len(body)} bytes, the file has {size}")
        if r.getheader("Access-Control-Allow-Origin") != "*":
            fail(f"{p}: no CORS header")
    conn.close()


# ---------------------------------------------------------------------------------------------
# wrk


def run_wrk(srv: Server, tiles: list[tuple[str, int]], seconds: float, conns: int, cpus: str | None, scratch: Path) -> dict:
    lst = scratch / "tiles.txt"
    lst.write_text("".join(p + "\n" for p, _ in tiles))
    lua = scratch / "tiles.lua"
    lua.write_text(LUA)
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s", "-s", str(lua), f"http://{srv.host}:{srv.port}"]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    env = dict(os.environ, HIPS_TILES=str(lst))
    c0 = srv.cpu()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=seconds + 120)
    c1 = srv.cpu()
    if r.returncode != 0:
        fail(f"wrk exited with {r.returncode}: {r.stderr[-2000:]}")
    line = next((x for x in r.stdout.splitlines() if x.startswith("JSON ")), None)
    if line is None:
        fail(f"no JSON line from wrk's script:\n{r.stdout[-3000:]}")
    res = json.loads(line[5:])
    res["server_cpu_s"] = c1 - c0
    res["wrk_stdout"] = r.stdout
    return res


def summarise(res: dict, tiles: list[tuple[str, int]]) -> dict:
    secs = res["duration_us"] / 1e6
    cpu = res["server_cpu_s"]
    sizes = [s for _, s in tiles]
    return {
        "tiles": len(tiles),
        "tile_bytes_mean": float(np.mean(sizes)),
        "requests": res["requests"],
        # wrk counts answers outside 2xx/3xx as status errors (the tiles were checked to be 200).
        "non_200": res["errors_status"],
        "errors": {k: res[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout")},
        "seconds": secs,
        "req_per_s": res["requests"] / secs,
        "server_cpu_s": cpu,
        "server_cores_busy": cpu / secs,
        "tiles_per_s_per_core": res["requests"] / cpu if cpu > 0 else float("nan"),
        "mb_per_s": res["bytes"] / secs / 1e6,
        "p50_ms": res["p50_us"] / 1e3,
        "p90_ms": res["p90_us"] / 1e3,
        "p99_ms": res["p99_us"] / 1e3,
        "p999_ms": res["p999_us"] / 1e3,
        "max_ms": res["lat_max_us"] / 1e3,
        "mean_ms": res["lat_mean_us"] / 1e3,
    }


def markdown(res: dict) -> str:
    p = res["provenance"]
    a = res["args"]
    lines = [
        f"Run {p['started_utc']} UTC, commit `{p['commit']}`, {p['machine']}, load average {p['loadavg_start']} → {res['loadavg_end']}; "
        f"server pinned to CPU {a['server_cpus'] or 'any'}, wrk (1 thread, {a['connections']} keep-alive connections) to CPU {a['client_cpus'] or 'any'}; "
        f"{a['warmup']} s warm-up + {a['duration']} s per group; data root `{res['root']}`.",
        "",
        "| tiles | distinct | mean size | req/s | server cores busy | **tiles/s/core** | p50 ms | p90 ms | **p99 ms** | p99.9 ms | max ms | non-200 | MB/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in res["groups"]:
        s = g["stats"]
        lines.append(
            f"| {g['label']} | {s['tiles']} | {s['tile_bytes_mean'] / 1e3:.1f} KB | {s['req_per_s']:,.0f} | {s['server_cores_busy']:.2f} | "
            f"**{s['tiles_per_s_per_core']:,.0f}** | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | **{s['p99_ms']:.2f}** | {s['p999_ms']:.2f} | "
            f"{s['max_ms']:.1f} | {s['non_200']} | {s['mb_per_s']:,.0f} |"
        )
    lines += ["", "tiles/s/core = requests ÷ the server process's CPU seconds (user + system, all threads) over the timed run."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="data root (default: the bench root with the synthetic image HiPS)")
    ap.add_argument("--hips", help="image HiPS id under ROOT/hips/ (default: the synthetic bench HiPS in the default root, else the first)")
    ap.add_argument("--format", default=None, help="image tile extension (default: png for the bench HiPS, else every tile file)")
    ap.add_argument("--catalog", help="catalogue HiPS name (schema.table): catalogue tiles by --orders instead of image tiles")
    ap.add_argument("--orders", default=None, help="comma-separated orders (catalogue: default 3,6,9; image: all)")
    ap.add_argument("--tiles", type=int, default=500, help="distinct tiles per group (default 500)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of each timed run (default 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of each warm-up run (default 3)")
    ap.add_argument("--connections", type=int, default=4, help="wrk keep-alive connections (default 4)")
    ap.add_argument("--server-cpus", default="0", help="taskset CPU list of the server (default 0; '' for none)")
    ap.add_argument("--client-cpus", default="1", help="taskset CPU list of wrk (default 1; '' for none)")
    ap.add_argument("--url", help="a running `tessera serve` on --root (default: start one)")
    ap.add_argument("--server-pid", type=int, help="its pid, for the CPU figures")
    ap.add_argument("--binary", type=Path, default=TARGET / "release" / "tessera", help="the tessera binary (default: the release build)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()

    if shutil.which("wrk") is None:
        fail("wrk not found: apt-get install wrk")
    if (args.server_cpus or args.client_cpus) and shutil.which("taskset") is None:
        fail("taskset not found (util-linux); or pass --server-cpus '' --client-cpus ''")
    cc.build([], args.no_build)
    prov = cc.provenance()
    root = args.root.resolve()
    orders = [int(x) for x in args.orders.split(",")] if args.orders else None
    groups: list[tuple[str, list[tuple[str, int]], bool]] = []
    srv = None
    if args.catalog is None:
        if args.hips is None and root == ROOT.resolve():
            hips = ensure_bench_hips(root, args.tiles, args.seed)
            fmt = args.format or "png"
        else:
            ids = [args.hips] if args.hips else sorted(p.parent.name for p in (root / "hips").glob("*/properties"))
            if not ids:
                fail(f"no image HiPS under {root}/hips (give --hips, or --catalog)")
            hips = root / "hips" / ids[0]
            fmt = args.format
        tiles = image_tiles(hips, fmt, orders)
        if not tiles:
            fail(f"no tiles of format {fmt} at orders {orders} in {hips}")
        groups.append((f"image `{hips.name}` {fmt or 'all formats'} tiles", tiles, True))
    srv = Server(root, args.server_cpus or None, args.url, args.server_pid, args.binary)
    res: dict = {"provenance": prov, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "root": str(root), "groups": []}
    scratch = Path(tempfile.mkdtemp(prefix="hips-tiles-", dir=HIPS_BENCH if HIPS_BENCH.exists() else None))
    try:
        if args.catalog is not None:
            for k in orders or [3, 6, 9]:
                log(f"finding {args.tiles} tiles of {args.catalog} at order {k}")
                t = catalogue_tiles(srv, args.catalog, k, args.tiles, args.seed)
                if not t:
                    log(f"order {k}: no tile answers 200, skipped")
                    continue
                groups.append((f"catalogue `{args.catalog}` order {k}", t, False))
        for label, tiles, exact in groups:
            log(f"{label}: {len(tiles)} tiles, checking each once")
            check(srv, tiles, exact)
            if args.warmup > 0:
                run_wrk(srv, tiles, args.warmup, args.connections, args.client_cpus or None, scratch)
            r = run_wrk(srv, tiles, args.duration, args.connections, args.client_cpus or None, scratch)
            s = summarise(r, tiles)
            log(f"{label}: {s['req_per_s']:,.0f} req/s, {s['tiles_per_s_per_core']:,.0f} tiles/s/core, "
                f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, non-200 {s['non_200']}")
            res["groups"].append({"label": label, "stats": s, "wrk": r})
    finally:
        srv.close()
        shutil.rmtree(scratch, ignore_errors=True)
    res["loadavg_end"] = f"{os.getloadavg()[0]:.1f}"
    md = markdown(res)
    jpath, mpath = cc.write_results(args.out, "hips-tiles", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
