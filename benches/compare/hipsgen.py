#!/usr/bin/env python3
"""Image HiPS generation throughput (issue 7, item 6): `tessera hips build` against Aladin's
Hipsgen 12.001 (Debian `aladin`) on the same input, the 8192×8192 float32 image of the cutout
benchmark.

One command (results in docs/benchmarks.md, "Image HiPS generation (issue 7)"):

    benches/compare/hipsgen.py                  # --rounds 2

1. builds the release `tessera` binary (skip with --no-build);
2. reuses (or generates once, as cutouts.py does) ~/.cache/tessera-bench/images-bench/big8k.fits
   (268 MB: 8192×8192 float32, N(0, 1) pixels, TAN at 250.4226 +36.4602, 0.879″ pixels, 2°
   across) and the data root ~/.cache/tessera-bench/images-bench/root where it is registered
   as collection `bench` (`tessera load-images`, a hard link);
3. per round, each system in turn (order alternating between rounds), after `sync` so that
   neither pays for the other's dirty pages, the input in the page cache (read once before):
   * Tessera: `tessera hips build --data ROOT --collection bench --out SCRATCH/tessera/bench
     --format fits,png --quiet` (rayon, one thread per core);
   * Hipsgen: `java -Djava.awt.headless=true -jar /usr/share/java/aladin.jar -hipsgen
     in=DIR out=SCRATCH/hipsgen creator_did=ivo://tessera/bench/big8k hips_pixel_bitpix=-32
     INDEX TILES PNG` (DIR holds only a hard link to big8k.fits; its own thread count, one per
     core): the same products — FITS tiles (BITPIX −32) and PNG tiles at every order,
     Allsky.fits/png, Moc.fits, properties — plus its HpxFinder index, which its TILES step
     needs;
   wall time (time.monotonic around the process), CPU time (utime + stime of the process and
   its threads, from wait4) and peak RSS;
4. checks after the first round: both chose order 9 and wrote the same deepest tiles; 24 of
   them (evenly spread) compared pixel by pixel (|Δ| max, p99; the pixels on Hipsgen's
   1024-pixel partition seams, where it interpolates each block of the image on its own,
   apart), and the tile counts per order; then deletes both outputs (~700 MB each);
5. reports input Mpixel/s (wall) and input Mpixel per CPU second ("per core"), medians over
   the rounds, and the ratios Tessera / Hipsgen (target ≥ 2×);
6. writes ~/.cache/tessera-bench/results/hipsgen-<UTC>.{json,md} and prints the markdown.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import numpy as np  # noqa: E402

import cutouts  # noqa: E402  (the bench image and data root)
from compare_common import BENCH, TARGET, fail, log  # noqa: E402

JAR = Path("/usr/share/java/aladin.jar")
COLLECTION = cutouts.COLLECTION  # "bench"
SIDE = cutouts.SIDE


def timed(cmd: list, log_path: Path) -> dict:
    """Runs cmd; wall seconds, CPU seconds (self + threads, via wait4), peak RSS (MB)."""
    log("$ " + " ".join(str(c) for c in cmd))
    with open(log_path, "w") as out:
        t0 = time.monotonic()
        p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        fail(f"{cmd[0]} exited with {p.returncode}; log: {log_path}\n{log_path.read_text()[-3000:]}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "max_rss_mb": ru.ru_maxrss / 1000}


def deepest_tiles(hips: Path, order: int) -> dict[int, Path]:
    out = {}
    for d in (hips / f"Norder{order}").glob("Dir*"):
        for f in d.glob("Npix*.fits"):
            out[int(f.stem[4:])] = f
    return out


def tile_counts(hips: Path) -> dict[int, int]:
    counts = {}
    for d in hips.glob("Norder*"):
        k = int(d.name[6:])
        counts[k] = sum(1 for _ in d.glob("Dir*/Npix*.fits"))
    return dict(sorted(counts.items()))


def props(hips: Path) -> dict:
    out = {}
    for line in (hips / "properties").read_text().splitlines():
        if line.strip().startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def check(ours: Path, theirs: Path, image: Path) -> dict:
    """Same order, same deepest tiles, pixels of 24 of them compared. Hipsgen cuts an image
    larger than 1024² into 1024×1024 blocks ("partitioning", its default) and interpolates
    each block on its own, so where the bilinear neighbourhood straddles a block boundary
    (image column or row ≡ 1023 mod 1024) its values differ from the true interpolation:
    those "seam" pixels are reported apart."""
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS

    warnings.simplefilter("ignore")
    po, pt = props(ours), props(theirs)
    if po["hips_order"] != pt["hips_order"]:
        fail(f"orders differ: Tessera {po['hips_order']}, Hipsgen {pt['hips_order']}")
    k = int(po["hips_order"])
    to, tt = deepest_tiles(ours, k), deepest_tiles(theirs, k)
    if sorted(to) != sorted(tt):
        fail(f"order {k}: Tessera wrote {len(to)} tiles, Hipsgen {len(tt)}; {len(set(to) ^ set(tt))} differ")
    iw = WCS(fits.getheader(image)).celestial
    names = sorted(to)
    pick = [names[i] for i in np.linspace(0, len(names) - 1, min(24, len(names))).astype(int)]
    off, on, only = [], [], 0
    for n in pick:
        a = fits.getdata(to[n]).astype(float)
        b = fits.getdata(tt[n]).astype(float)
        fa, fb = np.isfinite(a), np.isfinite(b)
        only += int((fa ^ fb).sum())
        ys, xs = np.nonzero(fa & fb)
        u, v = iw.world_to_pixel_values(*WCS(fits.getheader(tt[n])).pixel_to_world_values(xs, ys))
        seam = (np.floor(u) % 1024 == 1023) | (np.floor(v) % 1024 == 1023)
        d = np.abs(a[ys, xs] - b[ys, xs])
        off.append(d[~seam])
        on.append(d[seam])
    off, on = np.concatenate(off), np.concatenate(on)
    return {
        "order": k,
        "deepest_tiles": len(to),
        "tiles_compared": len(pick),
        "pixels_compared": int(off.size + on.size),
        "blank_mismatches": only,
        "max_abs_diff": float(off.max()),
        "p99_abs_diff": float(np.percentile(off, 99)),
        "seam_pixels": int(on.size),
        "seam_max_abs_diff": float(on.max()) if on.size else 0.0,
        "tile_counts_tessera": tile_counts(ours),
        "tile_counts_hipsgen": tile_counts(theirs),
    }


def du_mb(path: Path) -> float:
    r = subprocess.run(["du", "-sb", str(path)], stdout=subprocess.PIPE, text=True)
    return int(r.stdout.split()[0]) / 1e6 if r.returncode == 0 else float("nan")


def markdown(res: dict) -> str:
    p = res["provenance"]
    mpix = res["input_mpixel"]
    lines = [
        f"Run {p['started_utc']} UTC, commit `{p['commit']}`, {p['machine']}, load average {p['loadavg_start']} → {res['loadavg_end']}; "
        f"input {res['image']} ({SIDE}×{SIDE} float32, {mpix:.1f} Mpixel), deepest order {res['check']['order']} "
        f"({res['check']['deepest_tiles']} deepest tiles); {res['rounds']} round(s), systems alternating; Hipsgen {res['hipsgen']}; total {res['elapsed_s']:.0f} s.",
        "",
        "| system | wall s (median) | CPU s (median) | peak RSS MB | input Mpixel/s | input Mpixel/s/core (per CPU s) | output MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("tessera", "hipsgen"):
        s = res["summary"][name]
        lines.append(
            f"| {res['labels'][name]} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | {s['max_rss_mb']:.0f} | {mpix / s['wall_s']:.1f} | {mpix / s['cpu_s']:.2f} | {s['output_mb']:.0f} |"
        )
    r = res["ratios"]
    c = res["check"]
    lines += [
        "",
        f"Ratios Tessera / Hipsgen: **{r['wall']:.1f}× the wall-clock throughput**, {r['cpu']:.1f}× per CPU second (target ≥ 2×).",
        "",
        f"Check: same order and the same {c['deepest_tiles']} deepest tiles; {c['tiles_compared']} of them compared "
        f"({c['pixels_compared']:,} pixels): {c['blank_mismatches']} blank mismatches, |Δ| max {c['max_abs_diff']:.2e}, p99 {c['p99_abs_diff']:.2e} "
        f"(pixels N(0, 1)) away from Hipsgen's 1024-pixel partition seams; on the {c['seam_pixels']:,} seam pixels, where Hipsgen interpolates "
        f"each block on its own, |Δ| up to {c['seam_max_abs_diff']:.2f}. Tiles per order Tessera {c['tile_counts_tessera']}, Hipsgen {c['tile_counts_hipsgen']}.",
        "",
        "Per round (wall s / CPU s): "
        + "; ".join(
            f"{res['labels'][name]} " + ", ".join(f"{x['wall_s']:.2f}/{x['cpu_s']:.2f}" for x in res["runs"][name]) for name in ("tessera", "hipsgen")
        )
        + ".",
    ]
    if res["notes"]:
        lines += [""] + [f"* {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=cutouts.IMAGE)
    ap.add_argument("--root", type=Path, default=cutouts.ROOT)
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per system (default 2)")
    ap.add_argument("--seed", type=int, default=42, help="seed of the generated image (as cutouts.py)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--scratch", type=Path, default=BENCH / "images-bench" / "hipsgen-scratch",
                    help="where both write their HiPS (deleted after each run; ~700 MB each)")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args()

    if not JAR.is_file():
        fail(f"{JAR} missing: install the Debian package aladin (tools/install-test-deps)")
    cc.build([], args.no_build)
    prov = cc.provenance()
    image = cutouts.ensure_image(args.image.resolve(), args.seed)
    root = cutouts.ensure_root(args.root.resolve(), image, with_images=True, with_hip=False)
    tessera = TARGET / "release" / "tessera"
    scratch = args.scratch.resolve()
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    hg_in = scratch / "in"
    hg_in.mkdir()
    os.link(image, hg_in / image.name)
    # The input in the page cache for both.
    with open(image, "rb") as f:
        while f.read(1 << 24):
            pass
    java = subprocess.run(["java", "-version"], stderr=subprocess.PIPE, text=True).stderr.splitlines()[0]
    hipsgen_version = "Aladin/HipsGen v12.001 (Debian aladin 12.001+dfsg), " + java

    def run_tessera(i: int) -> tuple[dict, Path]:
        out = scratch / "tessera" / "bench"
        r = timed([tessera, "hips", "build", "--data", root, "--collection", COLLECTION, "--out", out, "--format", "fits,png", "--quiet"],
                  scratch / f"tessera-{i}.log")
        return r, out

    def run_hipsgen(i: int) -> tuple[dict, Path]:
        out = scratch / "hipsgen"
        r = timed(["java", "-Djava.awt.headless=true", "-jar", JAR, "-hipsgen", f"in={hg_in}", f"out={out}",
                   "creator_did=ivo://tessera/bench/big8k", "hips_pixel_bitpix=-32", "INDEX", "TILES", "PNG"],
                  scratch / f"hipsgen-{i}.log")
        text = (scratch / f"hipsgen-{i}.log").read_text()
        if "ABORT" in text or not (out / "properties").is_file():
            fail(f"Hipsgen failed: {scratch / f'hipsgen-{i}.log'}")
        return r, out

    runners = {"tessera": run_tessera, "hipsgen": run_hipsgen}
    runs: dict[str, list] = {"tessera": [], "hipsgen": []}
    result_check = None
    for i in range(args.rounds):
        order = ["tessera", "hipsgen"] if i % 2 == 0 else ["hipsgen", "tessera"]
        outs = {}
        for name in order:
            subprocess.run(["sync"], check=True)
            r, out = runners[name](i)
            r["output_mb"] = du_mb(out)
            log(f"round {i + 1} {name}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU, {r['max_rss_mb']:.0f} MB RSS, {r['output_mb']:.0f} MB written")
            runs[name].append(r)
            outs[name] = out
        if result_check is None:
            result_check = check(outs["tessera"], outs["hipsgen"], image)
            log(f"check: {result_check}")
        for out in outs.values():
            shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return float(np.median([r[key] for r in runs[name]]))

    summary = {n: {k: med(n, k) for k in ("wall_s", "cpu_s", "max_rss_mb", "output_mb")} for n in runs}
    res = {
        "provenance": prov,
        "image": str(image),
        "input_mpixel": SIDE * SIDE / 1e6,
        "rounds": args.rounds,
        "hipsgen": hipsgen_version,
        "labels": {"tessera": "`tessera hips build` (FITS + PNG)", "hipsgen": "Hipsgen `INDEX TILES PNG`"},
        "runs": runs,
        "summary": summary,
        "ratios": {
            "wall": summary["hipsgen"]["wall_s"] / summary["tessera"]["wall_s"],
            "cpu": summary["hipsgen"]["cpu_s"] / summary["tessera"]["cpu_s"],
        },
        "check": result_check,
        "notes": [
            "both write to the same local disk; `sync` before each run; the input read once into the page cache before the first",
            "per-core throughput = input Mpixel / CPU seconds of the process (all threads, user + system)",
        ],
        "loadavg_end": f"{os.getloadavg()[0]:.1f}",
        "elapsed_s": time.monotonic() - cc.T0,
    }
    md = markdown(res)
    jpath, mpath = cc.write_results(args.out, "hipsgen", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    return 0 if res["ratios"]["wall"] >= 2.0 else 3


if __name__ == "__main__":
    sys.exit(main())
