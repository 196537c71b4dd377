#!/usr/bin/env python3
"""FITS cutout latency (issue 6): Tessera vs astropy `Cutout2D` on a memory-mapped file, and
`/soda/sync` through HTTP, on an 8192×8192 float32 image with a real TAN WCS.

One command (results in docs/benchmarks.md, "Images: cutouts and cone search (issue 6)"):

    benches/compare/cutouts.py                  # --n 100 --repeat 2 --cold 10 --sizes 100,1000

1. builds the release `tessera` binary and the `cutout_latency` example (skip with --no-build);
2. generates once ~/.cache/tessera-bench/images-bench/big8k.fits (268 MB): 8192×8192 float32,
   pixels N(0, 1) from numpy's default_rng(--seed), the WCS of datasets/images/m13.fits
   (RA---TAN/DEC--TAN at CRVAL 250.4226 36.4602) with CDELT rescaled to ∓2°/8192 (the image
   spans 2°), CRPIX at the centre (4096.5), RADESYS = 'ICRS';
3. makes the data root ~/.cache/tessera-bench/images-bench/root: `tessera load-images big8k.fits
   --collection bench` (hard link, same file system) and the Hipparcos demo catalogue
   (`tessera load` of datasets/hipparcos, as compare_common.ensure_catalog) for scs.py;
4. starts `tessera serve --data ROOT --listen 127.0.0.1:0` (or uses --url / --server-pid);
5. per size S (pixels), --n centres drawn (default_rng(--seed + S)) uniform over the pixel
   positions whose S×S box lies inside the image, turned into (RA, Dec) with astropy's WCS;
   radius r = S/2 · pixel scale, which both systems turn into the same S×S box (checked);
6. warm: one warm-up pass, then --repeat timed passes; for every centre, back to back:
   * Tessera (`cutout_latency --stdin`, a long-lived process): open (read_image_hdus +
     ImageWcs::from_header) + plan_cutout + write_cutout into a file on the same disk, and
     again into a reused in-memory buffer;
   * astropy, file opened once (`fits.open(path, memmap=True)`, `WCS(header)` once):
     `Cutout2D(hdu.data, SkyCoord, 2r deg, wcs, mode='trim')` then
     `fits.PrimaryHDU(c.data, c.wcs.to_header()).writeto(tmpfile, overwrite=True)`;
     and per request: fits.open + WCS + Cutout2D + writeto + close;
   * HTTP: `GET /soda/sync?ID=ivo://tessera/bench?big8k&CIRCLE=ra dec r` on a new connection
     (`Connection: close`; a plain-socket client, TCP_NODELAY, the timer started before
     connect and stopped when the server closes after the last body byte), then `GET /health`
     the same way (the floor of client + HTTP);
7. cold: for the first --cold centres of each size, for each system in turn: `sync; echo 3 >
   /proc/sys/vm/drop_caches`, then one timed request (Tessera open + plan + write into a file;
   astropy fits.open + WCS + Cutout2D + writeto; HTTP GET);
8. memory: the Tessera process's VmRSS / VmHWM (HWM reset to the current RSS before the
   timed passes of each size, read after them: the peak growth over those cutouts), the
   server's VmRSS / VmHWM before and after, the Python (astropy) process's;
9. checks: every Tessera box equals astropy's bbox_original; for the first 3 centres of each
   size the pixels Tessera wrote equal astropy's and the HTTP body equals Tessera's file;
10. writes ~/.cache/tessera-bench/results/cutouts-<UTC>.{json,md} and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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

from compare_common import BENCH, DATASETS, REPO, TARGET, fail, log, stats  # noqa: E402

IMAGES_BENCH = BENCH / "images-bench"
IMAGE = IMAGES_BENCH / "big8k.fits"
ROOT = IMAGES_BENCH / "root"
SIDE = 8192
COLLECTION = "bench"
DATASET_ID = "ivo://tessera/bench?big8k"


# ---------------------------------------------------------------------------------------------
# image, data root, server (scs.py imports these)


def ensure_image(path: Path = IMAGE, seed: int = 42) -> Path:
    """The 8192² float32 test image (generated once)."""
    if path.exists():
        return path
    from astropy.io import fits

    path.parent.mkdir(parents=True, exist_ok=True)
    m13 = fits.getheader(REPO / "datasets" / "images" / "m13.fits")
    hdr = fits.Header()
    for k in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "EQUINOX"):
        hdr[k] = (m13[k], m13.comments[k])
    hdr["RADESYS"] = ("ICRS", "so that astropy and Tessera agree on the frame")
    scale = 2.0 / SIDE
    hdr["CDELT1"] = (-scale, "deg/pixel: m13.fits rescaled, image spans 2 deg")
    hdr["CDELT2"] = (scale, "deg/pixel")
    hdr["CRPIX1"] = ((SIDE + 1) / 2, "reference pixel: the centre")
    hdr["CRPIX2"] = ((SIDE + 1) / 2, "reference pixel: the centre")
    hdr["COMMENT"] = f"Tessera cutout benchmark: N(0,1) float32 pixels, numpy default_rng({seed})"
    log(f"generating {path} ({SIDE}x{SIDE} float32, seed {seed})")
    data = np.random.default_rng(seed).standard_normal((SIDE, SIDE), dtype=np.float32)
    tmp = path.with_suffix(".fits.tmp")
    fits.PrimaryHDU(data, hdr).writeto(tmp, overwrite=True)
    del data
    os.replace(tmp, path)
    log(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return path


def ensure_root(root: Path = ROOT, image: Path = IMAGE, with_images: bool = True, with_hip: bool = True) -> Path:
    """The data root: the big image in collection `bench`, and hipparcos/hip2."""
    tessera = TARGET / "release" / "tessera"
    root.mkdir(parents=True, exist_ok=True)
    if with_images:
        registered = root / "images" / COLLECTION / image.name
        if not registered.exists():
            cc.run([tessera, "load-images", image, "--data", root, "--collection", COLLECTION])
        if registered.exists() and registered.stat().st_ino != image.stat().st_ino:
            log(f"note: {registered} is a copy, not a hard link of {image}")
    if with_hip:
        spec = dict(DATASETS["hip2"], cheap=False)  # loaded once: a running server reads it
        if not (root / spec["catalog"] / "hats.properties").exists():
            cc.ensure_catalog(spec, root)
    return root


class Server:
    """`tessera serve --data ROOT --listen 127.0.0.1:0`, or one already running (`url`)."""

    def __init__(self, root: Path | None = None, url: str | None = None, pid: int | None = None):
        self.proc = None
        self.state = None
        self.pid = pid
        if url:
            self.host, self.port = _hostport(url)
            return
        IMAGES_BENCH.mkdir(parents=True, exist_ok=True)
        self.state = tempfile.mkdtemp(prefix="serve-state-", dir=IMAGES_BENCH)
        log_file = open(os.path.join(self.state, "server.log"), "w")
        cmd = [str(TARGET / "release" / "tessera"), "serve", "--data", str(root), "--listen", "127.0.0.1:0", "--state-dir", self.state]
        log("$ " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, text=True)
        self.pid = self.proc.pid
        addr = None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("home:"):
                addr = line.split(None, 1)[1]
                break
        if addr is None:
            self.close()
            fail(f"the server exited before printing its address (log: {self.state}/server.log)")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.host, self.port = _hostport(addr)
        t0 = time.monotonic()
        while True:
            try:
                if get(self, "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 60:
                self.close()
                fail("the server did not answer /health within 60 s")
            time.sleep(0.05)
        log(f"server pid {self.pid} at http://{self.host}:{self.port}/")

    def mem(self) -> dict:
        return proc_mem(self.pid) if self.pid else {}

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


def _hostport(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    return u.hostname or "127.0.0.1", u.port or 80


def get(srv: Server, target: str) -> tuple[int, bytes, float]:
    """GET on a new connection with `Connection: close`: (status, body, ms from before connect
    to the server's close after the last body byte). A plain socket client (TCP_NODELAY, 1 MiB
    reads, nothing decoded while the clock runs); the response is parsed afterwards."""
    req = f"GET {target} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\nConnection: close\r\n\r\n".encode()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    parts = []
    t0 = time.perf_counter()
    with socket.create_connection((srv.host, srv.port), timeout=120) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        while True:
            n = s.recv_into(buf)
            if n == 0:
                break
            parts.append(bytes(view[:n]))
    ms = (time.perf_counter() - t0) * 1e3
    raw = b"".join(parts)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        out, pos = bytearray(), 0
        while True:
            eol = body.index(b"\r\n", pos)
            size = int(body[pos:eol].split(b";")[0], 16)
            if size == 0:
                break
            out += body[eol + 2 : eol + 2 + size]
            pos = eol + 2 + size + 2
        body = bytes(out)
    return status, body, ms


def proc_mem(pid: int | str = "self") -> dict:
    """VmRSS, VmHWM, RssAnon, RssFile of a process, in MB (10⁶ bytes)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[k] = round(int(v.split()[0]) * 1024 / 1e6, 1)
    except OSError:
        pass
    return out


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# ---------------------------------------------------------------------------------------------
# the systems


class Tessera:
    """The `cutout_latency --stdin` process."""

    def __init__(self, image: Path, scratch: Path):
        exe = TARGET / "release" / "examples" / "cutout_latency"
        cmd = [str(exe), "--image", str(image), "--stdin", "--dir", str(scratch)]
        log("$ " + " ".join(cmd))
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.out_file = scratch / f"cutout-tessera-{self.p.pid}.fits"

    def cmd(self, line: str) -> dict:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = json.loads(self.p.stdout.readline())
        if not reply.get("ok"):
            fail(f"cutout_latency: {line}: {reply.get('error')}")
        return reply

    def cut(self, sink: str, ra: float, dec: float, r: float) -> dict:
        return self.cmd(f"cut {sink} {ra!r} {dec!r} {r!r}")

    def close(self) -> None:
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()


class Astropy:
    def __init__(self, image: Path, scratch: Path):
        import astropy
        from astropy.io import fits
        from astropy.wcs import WCS

        self.version = astropy.__version__
        self.image = image
        self.out = scratch / f"cutout-astropy-{os.getpid()}.fits"
        self.hdul = fits.open(image, memmap=True)
        self.hdu = self.hdul[0]
        self.data = self.hdu.data  # the memory map
        self.wcs = WCS(self.hdu.header)

    @staticmethod
    def _cut(data, wcs, ra, dec, r, out):
        import astropy.units as u
        from astropy.coordinates import SkyCoord
        from astropy.io import fits
        from astropy.nddata import Cutout2D

        t0 = time.perf_counter()
        c = Cutout2D(data, SkyCoord(ra, dec, unit="deg", frame="icrs"), 2 * r * u.deg, wcs=wcs, mode="trim")
        t1 = time.perf_counter()
        fits.PrimaryHDU(c.data, c.wcs.to_header()).writeto(out, overwrite=True)
        t2 = time.perf_counter()
        return c, (t1 - t0) * 1e3, (t2 - t0) * 1e3

    def cut(self, ra: float, dec: float, r: float) -> dict:
        """File open once: Cutout2D, then Cutout2D + writeto."""
        c, cut_ms, both_ms = self._cut(self.data, self.wcs, ra, dec, r, self.out)
        (y0, y1), (x0, x1) = c.bbox_original
        return {"cutout2d_ms": cut_ms, "cutout2d_write_ms": both_ms, "box": [[x0 + 1, x1 + 1], [y0 + 1, y1 + 1]]}

    def cut_request(self, ra: float, dec: float, r: float) -> dict:
        """Per request: fits.open(memmap) + WCS(header) + Cutout2D + writeto + close."""
        from astropy.io import fits
        from astropy.wcs import WCS

        t0 = time.perf_counter()
        with fits.open(self.image, memmap=True) as hdul:
            hdu = hdul[0]
            wcs = WCS(hdu.header)
            _, cut_ms, both_ms = self._cut(hdu.data, wcs, ra, dec, r, self.out)
        total = (time.perf_counter() - t0) * 1e3
        return {"total_ms": total, "cutout2d_write_ms": both_ms}

    def close(self) -> None:
        self.hdul.close()
        self.out.unlink(missing_ok=True)


def soda_target(ra: float, dec: float, r: float) -> str:
    return "/soda/sync?" + urllib.parse.urlencode({"ID": DATASET_ID, "CIRCLE": f"{ra!r} {dec!r} {r!r}"}, quote_via=urllib.parse.quote)


# ---------------------------------------------------------------------------------------------
# the run


def centres_for(size: int, n: int, seed: int, wcs) -> tuple[list[tuple[float, float]], float]:
    """n centres whose size×size box lies inside the image, and the radius (deg)."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    rng = np.random.default_rng(seed + size)
    margin = size / 2 + 2
    px = rng.uniform(margin - 1, SIDE - margin, (n, 2))  # 0-based pixel positions
    sky = [(float(ra), float(dec)) for ra, dec in wcs.all_pix2world(px, 0)]
    scale = float(proj_plane_pixel_scales(wcs.celestial)[0])
    return sky, size / 2 * scale


def f3(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def markdown(res: dict) -> str:
    p = res["provenance"]
    lines = [
        f"Run {p['started_utc']} UTC, commit `{p['commit']}`, {p['machine']}, load average {p['loadavg_start']} → {res['loadavg_end']}; "
        f"image {res['image']} ({res['image_bytes']:,} bytes, {SIDE}×{SIDE} float32); astropy {res['astropy']}, numpy {res['numpy']}; "
        f"{res['n']} centres per size, warm-up + {res['repeat']} timed pass(es); cold: {res['cold_n']} centres per size per system; total {res['elapsed_s']:.0f} s.",
        "",
        "| what (ms) | size | warm p50 | warm p95 | cold p50 | cold p95 |",
        "|---|---|---|---|---|---|",
    ]
    for sz in res["sizes"]:
        s = res["results"][str(sz)]
        for key, label in ROWS:
            w = s["warm"].get(key)
            c = s["cold"].get(key)
            if not w and not c:
                continue
            wp = (f3(w["p50_ms"]), f3(w["p95_ms"])) if w else ("–", "–")
            cp = (f3(c["p50_ms"]), f3(c["p95_ms"])) if c else ("–", "–")
            lines.append(f"| {label} | {sz}² | {wp[0]} | {wp[1]} | {cp[0]} | {cp[1]} |")
    lines += ["", "| ratio (p50) | size | warm | cold |", "|---|---|---|---|"]
    for sz in res["sizes"]:
        for label, w, c in res["results"][str(sz)]["ratios"]:
            lines.append(f"| {label} | {sz}² | {w} | {c} |")
    m = res["memory"]
    lines += [
        "",
        f"Memory (MB = 10⁶ bytes): Tessera cutout process VmRSS {m['tessera_start']['rss_kb'] / 1000:.1f} at start, "
        f"{m['tessera_after_warmup']['rss_kb'] / 1000:.1f} after the warm-up, {m['tessera_end']['rss_kb'] / 1000:.1f} at the end; "
        "peak growth over the timed cutouts (VmHWM after them − VmRSS when the HWM was reset before them): "
        + ", ".join(f"{k} +{(m['tessera_after'][k]['hwm_kb'] - v['rss_kb']) / 1000:.1f} ({v['rss_kb'] / 1000:.1f} → HWM {m['tessera_after'][k]['hwm_kb'] / 1000:.1f})"
                    for k, v in m["tessera_reset"].items())
        + ". "
        f"Server VmRSS {m['server_start'].get('VmRSS', '?')} → {m['server_end'].get('VmRSS', '?')} (VmHWM {m['server_end'].get('VmHWM', '?')}). "
        f"Python (astropy) VmRSS {m['python_start'].get('VmRSS', '?')} → {m['python_end'].get('VmRSS', '?')} (RssFile {m['python_end'].get('RssFile', '?')}).",
        "",
        f"Checks: {res['box_mismatches']} box mismatches (Tessera vs Cutout2D bbox_original) over {res['boxes_checked']} cutouts; "
        f"pixels equal on {res['pixels_checked']} cutouts, HTTP body = Tessera file on {res['http_checked']}.",
    ]
    if res["notes"]:
        lines += [""] + [f"* {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


ROWS = [
    ("tessera_lib_file", "Tessera plan + write (file)"),
    ("tessera_lib_buffer", "Tessera plan + write (buffer)"),
    ("tessera_write_buffer", "  of which write_cutout (buffer)"),
    ("tessera_total_file", "Tessera open + plan + write (file)"),
    ("astropy_cutout2d", "astropy Cutout2D alone"),
    ("astropy_cutout2d_write", "astropy Cutout2D + writeto"),
    ("astropy_total", "astropy open + WCS + Cutout2D + writeto"),
    ("http", "GET /soda/sync (new connection)"),
    ("health", "GET /health (client floor)"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=IMAGE)
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--sizes", default="100,1000", help="cutout sides in pixels")
    ap.add_argument("--n", type=int, default=100, help="centres per size (default 100)")
    ap.add_argument("--repeat", type=int, default=2, help="timed warm passes (default 2)")
    ap.add_argument("--cold", type=int, default=10, help="cold centres per size and system (default 10; 0: none)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--url", help="a running `tessera serve` on --root (default: start one)")
    ap.add_argument("--server-pid", type=int, help="its pid, for its memory")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()

    import astropy
    from astropy.io import fits

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    cc.build(["cutout_latency"], args.no_build)
    prov = cc.provenance()
    image = ensure_image(args.image.resolve(), args.seed)
    notes: list[str] = []
    cold_n = min(args.cold, args.n)
    if cold_n and not can_drop_caches():
        notes.append("cold timings skipped: dropping the page cache needs root")
        cold_n = 0
    srv = None
    if not args.no_http:
        root = ensure_root(args.root.resolve(), image)
        srv = Server(root=root, url=args.url, pid=args.server_pid)
        # The registered file is the one the server reads (a hard link of `image`).
        st, body, _ = get(srv, "/soda/sync?" + urllib.parse.urlencode({"ID": DATASET_ID, "CIRCLE": "250.4226 36.4602 0.001"}))
        if st != 200 or not body.startswith(b"SIMPLE"):
            fail(f"/soda/sync for {DATASET_ID}: HTTP {st}: {body[:300]!r}")
    scratch = Path(tempfile.mkdtemp(prefix="cutouts-", dir=IMAGES_BENCH))
    tess = Tessera(image, scratch)
    astro = Astropy(image, scratch)
    res: dict = {
        "provenance": prov,
        "image": str(image),
        "image_bytes": image.stat().st_size,
        "astropy": astropy.__version__,
        "numpy": np.__version__,
        "sizes": sizes,
        "n": args.n,
        "repeat": args.repeat,
        "cold_n": cold_n,
        "seed": args.seed,
        "notes": notes,
        "results": {},
        "memory": {},
    }
    mem = res["memory"]
    mem["tessera_start"] = tess.cmd("status")
    mem["python_start"] = proc_mem()
    mem["server_start"] = srv.mem() if srv else {}
    box_mismatches: list[str] = []
    boxes = pixels = http_ok = 0

    try:
        plan = {sz: centres_for(sz, args.n, args.seed, astro.wcs) for sz in sizes}

        # warm-up pass (and the checks)
        for sz in sizes:
            sky, r = plan[sz]
            for i, (ra, dec) in enumerate(sky):
                t = tess.cut("file", ra, dec, r)
                a = astro.cut(ra, dec, r)
                if i < 3:
                    mine = fits.getdata(tess.out_file)
                    theirs = fits.getdata(astro.out)
                    if mine.shape != (sz, sz) or not np.array_equal(mine, theirs):
                        fail(f"size {sz} centre {i}: Tessera's pixels differ from astropy's ({mine.shape} vs {theirs.shape})")
                    pixels += 1
                    if srv:
                        st, body, _ = get(srv, soda_target(ra, dec, r))
                        if st != 200 or body != tess.out_file.read_bytes():
                            fail(f"size {sz} centre {i}: the /soda/sync body differs from Tessera's file (HTTP {st}, {len(body)} bytes)")
                        http_ok += 1
                tess.cut("buffer", ra, dec, r)
                astro.cut_request(ra, dec, r)
                if srv:
                    get(srv, soda_target(ra, dec, r))
                    get(srv, "/health")
        mem["tessera_after_warmup"] = tess.cmd("status")
        mem["tessera_reset"] = {}
        mem["tessera_after"] = {}

        # warm timed passes, interleaved per centre
        for sz in sizes:
            sky, r = plan[sz]
            w: dict[str, list[float]] = {k: [] for k, _ in ROWS}
            mem["tessera_reset"][f"{sz}²"] = tess.cmd("reset-hwm")
            for _ in range(args.repeat):
                for ra, dec in sky:
                    t = tess.cut("file", ra, dec, r)
                    w["tessera_lib_file"].append(t["lib_ms"])
                    w["tessera_total_file"].append(t["total_ms"])
                    a = astro.cut(ra, dec, r)
                    w["astropy_cutout2d"].append(a["cutout2d_ms"])
                    w["astropy_cutout2d_write"].append(a["cutout2d_write_ms"])
                    tb = tess.cut("buffer", ra, dec, r)
                    w["tessera_lib_buffer"].append(tb["lib_ms"])
                    w["tessera_write_buffer"].append(tb["write_ms"])
                    w["astropy_total"].append(astro.cut_request(ra, dec, r)["total_ms"])
                    if srv:
                        st, body, ms = get(srv, soda_target(ra, dec, r))
                        if st != 200:
                            fail(f"/soda/sync: HTTP {st}: {body[:300]!r}")
                        w["http"].append(ms)
                        w["health"].append(get(srv, "/health")[2])
                    boxes += 1
                    if t["ranges"] != a["box"]:
                        box_mismatches.append(f"{sz} ({ra!r}, {dec!r}): Tessera {t['ranges']}, astropy {a['box']}")
            mem["tessera_after"][f"{sz}²"] = tess.cmd("status")
            res["results"][str(sz)] = {"radius_deg": r, "warm": {k: stats(v) for k, v in w.items() if v}, "cold": {}, "warm_ms": {k: [round(x, 4) for x in v] for k, v in w.items() if v}}
            log(f"warm {sz}²: Tessera lib {stats(w['tessera_lib_file'])['p50_ms']:.3f} ms (file) / {stats(w['tessera_lib_buffer'])['p50_ms']:.3f} ms (buffer), "
                f"astropy Cutout2D+write {stats(w['astropy_cutout2d_write'])['p50_ms']:.3f} ms" + (f", HTTP {stats(w['http'])['p50_ms']:.3f} ms" if w["http"] else ""))

        # cold
        for sz in sizes:
            if not cold_n:
                break
            sky, r = plan[sz]
            c: dict[str, list[float]] = {"tessera_total_file": [], "tessera_lib_file": [], "astropy_total": [], "http": []}
            for ra, dec in sky[:cold_n]:
                drop_caches()
                t = tess.cut("file", ra, dec, r)
                c["tessera_total_file"].append(t["total_ms"])
                c["tessera_lib_file"].append(t["lib_ms"])
                drop_caches()
                c["astropy_total"].append(astro.cut_request(ra, dec, r)["total_ms"])
                if srv:
                    drop_caches()
                    st, body, ms = get(srv, soda_target(ra, dec, r))
                    if st != 200:
                        fail(f"/soda/sync: HTTP {st}: {body[:300]!r}")
                    c["http"].append(ms)
            res["results"][str(sz)]["cold"] = {k: stats(v) for k, v in c.items() if v}
            res["results"][str(sz)]["cold_ms"] = {k: [round(x, 4) for x in v] for k, v in c.items() if v}
            log(f"cold {sz}²: Tessera {stats(c['tessera_total_file'])['p50_ms']:.2f} ms, astropy {stats(c['astropy_total'])['p50_ms']:.2f} ms"
                + (f", HTTP {stats(c['http'])['p50_ms']:.2f} ms" if c["http"] else ""))
        if cold_n:
            notes.append(f"cold: {cold_n} centres per size; before each timed request (each system in turn) `sync; echo 3 > /proc/sys/vm/drop_caches`; "
                         "Tessera's figure is open + plan + write, astropy's fits.open + WCS + Cutout2D + writeto, the server's whole request")
        mem["tessera_end"] = tess.cmd("status")
        mem["python_end"] = proc_mem()
        mem["server_end"] = srv.mem() if srv else {}
    finally:
        tess.close()
        astro.close()
        if srv:
            srv.close()
        shutil.rmtree(scratch, ignore_errors=True)

    for sz in sizes:
        s = res["results"][str(sz)]

        def ratio(a: str, b: str, sec: str) -> str:
            x, y = s[sec].get(a), s[sec].get(b)
            return f"{x['p50_ms'] / y['p50_ms']:.2f}×" if x and y else "–"

        s["ratios"] = [
            ("Tessera plan+write (file) / astropy Cutout2D+writeto", ratio("tessera_lib_file", "astropy_cutout2d_write", "warm"), "–"),
            ("Tessera open+plan+write / astropy open+…+writeto", ratio("tessera_total_file", "astropy_total", "warm"), ratio("tessera_total_file", "astropy_total", "cold")),
            ("/soda/sync / Tessera open+plan+write", ratio("http", "tessera_total_file", "warm"), ratio("http", "tessera_total_file", "cold")),
        ]
    res["box_mismatches"] = len(box_mismatches)
    res["box_mismatch_list"] = box_mismatches[:50]
    res["boxes_checked"] = boxes
    res["pixels_checked"] = pixels
    res["http_checked"] = http_ok
    res["loadavg_end"] = f"{os.getloadavg()[0]:.1f}"
    res["elapsed_s"] = time.monotonic() - cc.T0
    md = markdown(res)
    jpath, mpath = cc.write_results(args.out, "cutouts", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    return 3 if box_mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
