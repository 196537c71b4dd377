#!/usr/bin/env python3
"""VOTable encoding rate: Tessera's result writers vs STILTS (`stilts tcopy`) vs astropy (issue 5).

One command (see benches/compare/README.md and docs/benchmarks.md, "VOTable encoding"):

    benches/compare/votable.py            # 10^7 rows, 3 rounds: ~1 h on the 2-core VM (astropy: ~15 min a round)

1. builds the `votable_encode` example (release) unless --no-build;
2. generates, once, a deterministic catalogue-like table (numpy seed 42) of --rows rows:
   source_id int64, ra/dec float64, parallax float32 (5 % null), phot_g_mean_mag float32,
   flag int16 (10 % null), name string "JHHMMSS.ss+DDMMSS.s" (2 % null), written with pyarrow
   to ~/.cache/tessera-bench/votable/t1e7.parquet and with astropy to t1e7.fits (STILTS 3.4 as
   packaged by Debian reads no Parquet; in FITS, null floats are NaN, null flags TNULL, null
   names empty strings);
3. checks Tessera's output: writes the whole table once as BINARY2 and as TABLEDATA (to --scratch,
   default /dev/shm: RAM, the files are deleted after the check), parses both
   with astropy.io.votable.parse and compares every value with the Parquet file (and the row
   count); any difference is printed and the exit status is 3;
4. measures STILTS' output sizes once (untimed: it writes a file in --scratch, deleted at once);
5. runs --rounds rounds, the three systems interleaved within each round, every process pinned
   to one CPU (`taskset -c CPU`), output to a byte counter (Tessera), /dev/null (STILTS) or a file
   (astropy):
   * Tessera: `votable_encode --format b2,td --repeat K` (Parquet read into 8192-row batches,
     untimed; then one thread encodes the whole document per timed run);
   * STILTS: `stilts tcopy in=t1e7.fits out=/dev/null ofmt=votable-binary2-inline` and
     `ofmt=votable-tabledata`, wall time of the whole JVM; and `stilts tpipe in=t1e7.fits
     omode=discard` (JVM start + reading every cell, no output). Encode time = tcopy − discard
     (medians);
   * astropy: in a worker process, the table is built from the Parquet file (untimed), then
     `votable.from_table(t)` + `votable.writeto(vot, FILE, tabledata_format=…)` is timed (FILE in
     --scratch, default /dev/shm, deleted after each run);
6. writes ~/.cache/tessera-bench/results/votable-<UTC>.{json,md} and prints the markdown.

MB = 10^6 bytes of each system's own output. The three write different documents for the same
rows (Tessera: `unicodeChar arraysize="*"` names; STILTS from FITS: `char arraysize="19"`;
astropy: `unicodeChar arraysize="19"`; TABLEDATA indentation differs), so the table gives both
MB/s and rows/s, and ratios of both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_common as cc  # noqa: E402

cc.ensure_venv(__file__)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from compare_common import BENCH, REPO, TARGET, fail, log, run  # noqa: E402,F401

DATA = BENCH / "votable"
EXAMPLE = TARGET / "release" / "examples" / "votable_encode"
FORMATS = {"b2": ("BINARY2", "votable-binary2-inline", "binary2"), "td": ("TABLEDATA", "votable-tabledata", "tabledata")}


# ---------------------------------------------------------------------------------------------
# the table


def stem(rows: int) -> str:
    k = len(str(rows)) - 1
    return f"t1e{k}" if rows == 10**k else f"t{rows}"


def generate(rows: int, seed: int = 42) -> pa.Table:
    """The benchmark table: deterministic for (rows, seed)."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, rows)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, rows)))
    source_id = np.sort(rng.integers(0, 2**62, rows, dtype=np.int64))
    parallax = rng.normal(1.0, 2.0, rows).astype(np.float32)
    parallax_null = rng.random(rows) < 0.05
    gmag = rng.uniform(3.0, 21.0, rows).astype(np.float32)
    flag = rng.integers(0, 1024, rows).astype(np.int16)
    flag_null = rng.random(rows) < 0.10
    name_null = rng.random(rows) < 0.02
    # "JHHMMSS.ss+DDMMSS.s" built digit by digit (19 ASCII bytes per row).
    cs = np.floor(ra / 15.0 * 360000.0).astype(np.int64)  # centiseconds of time
    ds = np.floor(np.abs(dec) * 36000.0).astype(np.int64)  # deci-arcseconds
    b = np.empty((rows, 19), dtype=np.uint8)
    b[:, 0] = ord("J")

    def digits(col: int, v: np.ndarray, n: int) -> None:
        for k in range(n - 1, -1, -1):
            b[:, col + k] = ord("0") + v % 10
            v = v // 10

    digits(1, cs // 360000, 2)
    digits(3, cs // 6000 % 60, 2)
    digits(5, cs // 100 % 60, 2)
    b[:, 7] = ord(".")
    digits(8, cs % 100, 2)
    b[:, 10] = np.where(dec < 0, ord("-"), ord("+"))
    digits(11, ds // 36000, 2)
    digits(13, ds // 600 % 60, 2)
    digits(15, ds // 10 % 60, 2)
    b[:, 17] = ord(".")
    digits(18, ds % 10, 1)
    names = pa.array(b.view("S19").ravel(), type=pa.binary()).cast(pa.string())
    names = pc.if_else(pa.array(name_null), pa.scalar(None, pa.string()), names)
    return pa.table({
        "source_id": pa.array(source_id),
        "ra": pa.array(ra),
        "dec": pa.array(dec),
        "parallax": pa.array(parallax, mask=parallax_null),
        "phot_g_mean_mag": pa.array(gmag),
        "flag": pa.array(flag, mask=flag_null),
        "name": names,
    })


def to_astropy(t: pa.Table):
    """An astropy Table of `t`: masked columns where there are nulls, names as fixed-width str.
    (`Table.read(parquet)` fails on null strings in astropy 8.0.2 and converts strings row by
    row in Python.)"""
    from astropy.table import Column, MaskedColumn, Table

    cols = []
    for name in t.column_names:
        c = t.column(name)
        mask = pc.is_null(c).to_numpy(zero_copy_only=False)
        if pa.types.is_string(c.type) or pa.types.is_large_string(c.type):
            vals = pc.fill_null(c, "").to_numpy(zero_copy_only=False).astype(str)
        else:
            vals = pc.fill_null(c, pa.scalar(0, c.type)).to_numpy(zero_copy_only=False)
        cols.append(MaskedColumn(vals, name=name, mask=mask) if mask.any() else Column(vals, name=name))
    return Table(cols)


def ensure_data(rows: int, regen: bool) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    parquet = DATA / f"{stem(rows)}.parquet"
    fits = DATA / f"{stem(rows)}.fits"
    if regen or not parquet.exists():
        t0 = time.monotonic()
        t = generate(rows)
        pq.write_table(t, str(parquet) + ".tmp", row_group_size=1 << 20)
        os.replace(str(parquet) + ".tmp", parquet)
        log(f"wrote {parquet} ({parquet.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - t0:.1f} s")
        fits.unlink(missing_ok=True)
    if not fits.exists():
        t0 = time.monotonic()
        at = to_astropy(pq.read_table(parquet))
        at.write(str(fits) + ".tmp", format="fits", overwrite=True)
        os.replace(str(fits) + ".tmp", fits)
        log(f"wrote {fits} ({fits.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - t0:.1f} s")
    return parquet, fits


# ---------------------------------------------------------------------------------------------
# validation


def check_votable(path: Path, ref: pa.Table) -> list[str]:
    """Parses `path` with astropy and compares it with `ref`; returns the differences."""
    from astropy.io import votable

    t0 = time.monotonic()
    vt = votable.parse_single_table(str(path)).array
    log(f"astropy parsed {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - t0:.1f} s")
    errs = []
    if len(vt) != ref.num_rows:
        return [f"{path.name}: {len(vt)} rows, expected {ref.num_rows}"]
    for name in ref.column_names:
        c = ref.column(name)
        want_null = pc.is_null(c).to_numpy(zero_copy_only=False)
        got = vt[name]
        got_mask = np.ma.getmaskarray(got)
        gd = np.ma.getdata(got)
        if pa.types.is_floating(c.type):
            # a null float is NaN in BINARY2 (and its mask bit); astropy masks NaN in both forms
            got_null = got_mask | np.isnan(gd)
        elif pa.types.is_string(c.type):
            # astropy does not mask text: a null name reads as "" (the table has no empty names)
            got_null = got_mask | (np.asarray(gd, dtype=str) == "")
        else:
            got_null = got_mask
        if not np.array_equal(got_null, want_null):
            errs.append(f"{path.name}: column {name}: {int((got_null != want_null).sum())} rows differ in nullness")
            continue
        ok = ~want_null
        if pa.types.is_string(c.type):
            want = pc.fill_null(c, "").to_numpy(zero_copy_only=False)
            diff = np.flatnonzero(np.asarray(gd, dtype=object)[ok] != want[ok])
        else:
            want = pc.fill_null(c, pa.scalar(0, c.type)).to_numpy(zero_copy_only=False)
            if gd.dtype != want.dtype:
                errs.append(f"{path.name}: column {name}: dtype {gd.dtype}, expected {want.dtype}")
                continue
            diff = np.flatnonzero(gd[ok] != want[ok])  # exact: BINARY2 bits; TABLEDATA shortest round-trip text
        if diff.size:
            i = np.flatnonzero(ok)[diff[0]]
            errs.append(f"{path.name}: column {name}: {diff.size} values differ (first: row {i}: {gd[i]!r} != {want[i]!r})")
    return errs


# ---------------------------------------------------------------------------------------------
# the three systems


def pinned(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu]


def tessera(parquet: Path, fmts: list[str], cpu: str, repeat: int, warmup: int, extra: list[str] | None = None) -> dict:
    cmd = [*pinned(cpu), str(EXAMPLE), "--parquet", str(parquet), "--format", ",".join(fmts), "--repeat", str(repeat), "--warmup", str(warmup), *(extra or [])]
    r = run(cmd, quiet=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return json.loads(r.stdout)


def stilts_cmd(fits: Path, fmt: str | None, out: str, jvm: list[str]) -> list[str]:
    if fmt is None:
        return ["stilts", *jvm, "tpipe", f"in={fits}", "omode=discard"]
    return ["stilts", *jvm, "tcopy", f"in={fits}", f"out={out}", f"ofmt={FORMATS[fmt][1]}"]


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a child process: the CPU time is user + system of every
    thread (for a JVM: JIT compiler and GC threads too), from RUSAGE_CHILDREN."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    run(cmd, quiet=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def astropy_worker(args) -> int:
    """`--astropy-worker`: builds the table (untimed), then times from_table + writeto."""
    from astropy.io import votable

    t = to_astropy(pq.read_table(args.parquet))
    res = {"rows": len(t), "s": [], "cpu_s": [], "from_table_s": []}
    for _ in range(args.repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        vot = votable.from_table(t)
        t1 = time.perf_counter()
        votable.writeto(vot, args.worker_out, tabledata_format=FORMATS[args.format][2])
        res["s"].append(time.perf_counter() - t0)
        res["cpu_s"].append(time.process_time() - c0)
        res["from_table_s"].append(t1 - t0)
    if args.worker_out != "/dev/null":
        res["bytes"] = os.path.getsize(args.worker_out)
    print(json.dumps(res))
    return 0


def astropy_run(parquet: Path, fmt: str, out: str, cpu: str) -> dict:
    cmd = [*pinned(cpu), sys.executable, str(Path(__file__).resolve()), "--astropy-worker", "--parquet", str(parquet), "--format", fmt, "--worker-out", out, "--repeat", "1"]
    r = run(cmd, quiet=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# report


def med(v: list[float]) -> float:
    return float(np.median(np.asarray(v, dtype=float)))


def fmt_s(s: float) -> str:
    return f"{s:.2f}" if s < 100 else f"{s:.0f}"


def markdown(res: dict) -> str:
    rows = res["rows"]
    L = []
    L.append(f"VOTable encoding of the same {rows:,}-row table, one core (`taskset -c {res['cpu']}`), commit {res['commit']}, {res['machine']}, started {res['started_utc']} UTC, load average {res['loadavg_start']} → {res['loadavg_end']}; "
             f"{res['rounds']} interleaved rounds (Tessera {res['tessera_repeat']} timed runs per round); medians. MB = 10⁶ bytes of the system's own output. "
             "MB/s/core and Mrows/s are over wall-clock time on the pinned core; \"MB per CPU s\" over the CPU time the process actually got (all its threads), which other jobs on the shared core do not inflate.")
    L.append("")
    L.append("| system | serialisation | output bytes | median s | MB/s/core | Mrows/s | median CPU s | MB per CPU s | runs |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")

    def line(title: str, f: str | None, b: int | None, wall: float, cpu_s: float, n: int) -> str:
        ser = FORMATS[f][0] if f else "—"
        if b is None:
            return f"| {title} | {ser} | — | {fmt_s(wall)} | — | — | {fmt_s(cpu_s)} | — | {n} |"
        return f"| {title} | {ser} | {b:,} | {fmt_s(wall)} | {b / wall / 1e6:.1f} | {rows / wall / 1e6:.3f} | {fmt_s(cpu_s)} | {b / cpu_s / 1e6:.1f} | {n} |"

    summ = res["summary"]
    for f in res["formats"]:
        if e := summ.get("tessera", {}).get(f):
            L.append(line("Tessera `formats::writer`", f, e["bytes"], e["median_s"], e["median_cpu_s"], e["n"]))
    for f in res["formats"]:
        if e := summ.get("stilts", {}).get(f):
            L.append(line("STILTS, encode only (tcopy − discard)", f, e["bytes"], e["median_s"], e["median_cpu_s"], e["n"]))
    for f in res["formats"]:
        if e := summ.get("stilts", {}).get(f):
            L.append(line("STILTS `tcopy`, whole process (JVM + FITS read + encode)", f, e["bytes"], e["tcopy_median_s"], e["tcopy_median_cpu_s"], e["n"]))
    if d := summ.get("stilts", {}).get("discard"):
        L.append(line("STILTS `tpipe omode=discard` (JVM + FITS read)", None, None, d["median_s"], d["median_cpu_s"], d["n"]))
    for f in res["formats"]:
        if e := summ.get("astropy", {}).get(f):
            L.append(line(f"astropy `from_table` + `writeto` (from_table: {fmt_s(e['from_table_median_s'])} s)", f, e["bytes"], e["median_s"], e["median_cpu_s"], e["n"]))
    L.append("")
    L.append("Tessera ÷ baseline (> 1: Tessera faster). \"MB/s\": each system's rate over its own output bytes; \"rows/s\": the time to encode the same rows (wall clock); \"rows/CPU s\": the same with CPU time:")
    L.append("")
    L.append("| baseline | " + " | ".join(f"{FORMATS[f][0]} MB/s | {FORMATS[f][0]} rows/s | {FORMATS[f][0]} rows/CPU s" for f in res["formats"]) + " |")
    L.append("|---|" + "---:|---:|---:|" * len(res["formats"]))
    tess = summ.get("tessera", {})
    for key, title, wall, cpu_key in (("stilts", "STILTS, encode only (tcopy − discard)", "median_s", "median_cpu_s"), ("stilts", "STILTS, whole tcopy", "tcopy_median_s", "tcopy_median_cpu_s"), ("astropy", "astropy", "median_s", "median_cpu_s")):
        base = summ.get(key)
        if not base:
            continue
        cells = []
        for f in res["formats"]:
            t, b = tess.get(f), base.get(f)
            if not t or not b or b.get(wall, 0) <= 0:
                cells += ["—", "—", "—"]
                continue
            cells.append(f"{t['mb_per_s'] / (b['bytes'] / b[wall] / 1e6):.1f}×")
            cells.append(f"{b[wall] / t['median_s']:.1f}×")
            cells.append(f"{b[cpu_key] / t['median_cpu_s']:.1f}×" if b.get(cpu_key, 0) > 0 and t.get("median_cpu_s", 0) > 0 else "—")
        L.append(f"| {title} | " + " | ".join(cells) + " |")
    L.append("")
    if res.get("validation"):
        v = res["validation"]
        if v["errors"]:
            L.append(f"**VALIDATION FAILED** ({len(v['errors'])}):")
            L.append("")
            L += [f"* {e}" for e in v["errors"][:20]]
        else:
            L.append(f"Validation: Tessera's {' and '.join(FORMATS[f][0] for f in v['formats'])} output parsed by astropy {v['astropy']}: {rows:,} rows, every value equal to the Parquet file (floats bit for bit, nulls where the Parquet has nulls).")
        L.append("")
    for n in res.get("notes", []):
        L.append(f"* {n}")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the table (default 10^7)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--tessera-repeat", type=int, default=2, help="Tessera timed runs per format per round (default 2)")
    ap.add_argument("--systems", default="tessera,stilts,astropy")
    ap.add_argument("--formats", default="b2,td", help="b2, td or b2,td (default)")
    ap.add_argument("--cpu", default="0", help="the CPU every timed process is pinned to (default 0)")
    ap.add_argument("--stilts-jvm", default="-J-Xmx4g", help="JVM options for stilts, space-separated (default -J-Xmx4g)")
    ap.add_argument("--no-validate", action="store_true", help="skip parsing Tessera's output with astropy")
    ap.add_argument("--regen", action="store_true", help="regenerate the Parquet and FITS files")
    ap.add_argument("--scratch", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else DATA,
                    help="directory of the transient output files (validation, STILTS sizes, astropy's output; each deleted at once): "
                         "default /dev/shm (RAM, so no disk space and no disk I/O in astropy's timing), else ~/.cache/tessera-bench/votable")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    # worker mode (internal)
    ap.add_argument("--astropy-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--parquet", help=argparse.SUPPRESS)
    ap.add_argument("--format", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.astropy_worker:
        return astropy_worker(args)

    systems = [s for s in args.systems.split(",") if s]
    fmts = [f for f in args.formats.split(",") if f]
    if set(systems) - {"tessera", "stilts", "astropy"} or set(fmts) - set(FORMATS):
        ap.error("unknown system or format")
    jvm = args.stilts_jvm.split()
    scratch = args.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    res = {**cc.provenance(), "rows": args.rows, "rounds": args.rounds, "tessera_repeat": args.tessera_repeat, "cpu": args.cpu, "formats": fmts, "systems": systems, "notes": []}
    res["stilts_version"] = subprocess.run(["stilts", "-version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.split("STILTS version")[-1].split()[0] if "stilts" in systems else None
    import astropy

    res["astropy_version"] = astropy.__version__
    res["java"] = subprocess.run(["java", "-version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.splitlines()[0] if "stilts" in systems else None

    if not args.no_build:
        run(["cargo", "build", "--release", "-p", "tessera-benches", "--example", "votable_encode"])
    parquet, fits = ensure_data(args.rows, args.regen)
    res["parquet"] = str(parquet)
    res["fits"] = str(fits)

    # 3. validation of Tessera's output
    errors: list[str] = []
    if not args.no_validate and "tessera" in systems:
        ref = pq.read_table(parquet)
        for f in fmts:
            p = scratch / f"tessera-check.{f}.vot"
            try:
                tessera(parquet, [f], args.cpu, 1, 0, ["--save", str(p)])
                errors += check_votable(p, ref)
            finally:
                p.unlink(missing_ok=True)
        del ref
        res["validation"] = {"formats": fmts, "astropy": astropy.__version__, "errors": errors}
        for e in errors:
            log("VALIDATION: " + e)

    # 4. STILTS output sizes (untimed; also warms the page cache with the input). astropy's timed
    # runs write a real file, whose size is taken then.
    sizes: dict = {"stilts": {}, "astropy": {}}
    if "stilts" in systems:
        for f in fmts:
            p = scratch / f"stilts-size.{f}.vot"
            try:
                run(stilts_cmd(fits, f, str(p), jvm), quiet=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                sizes["stilts"][f] = p.stat().st_size
            finally:
                p.unlink(missing_ok=True)
            log(f"STILTS {f}: {sizes['stilts'][f]:,} bytes")

    # 5. interleaved rounds
    raw: dict = {"tessera": {f: [] for f in fmts}, "stilts": {f: [] for f in fmts}, "stilts_discard": [], "astropy": {f: [] for f in fmts}}
    cpu: dict = {"tessera": {f: [] for f in fmts}, "stilts": {f: [] for f in fmts}, "stilts_discard": [], "astropy": {f: [] for f in fmts}}
    from_table: dict = {f: [] for f in fmts}
    tbytes: dict = {}
    for rnd in range(args.rounds):
        if "tessera" in systems:
            j = tessera(parquet, fmts, args.cpu, args.tessera_repeat, 1)
            for e, f in zip(j["results"], fmts):
                raw["tessera"][f] += e["s"]
                cpu["tessera"][f] += e["cpu_s"]
                tbytes[f] = e["bytes"]
            log(f"round {rnd + 1}: tessera " + ", ".join(f"{f} {med(e['s']):.3f} s" for e, f in zip(j["results"], fmts)))
        if "stilts" in systems:
            s, c = timed([*pinned(args.cpu), *stilts_cmd(fits, None, "", jvm)])
            raw["stilts_discard"].append(s)
            cpu["stilts_discard"].append(c)
            msg = [f"discard {s:.2f} s (CPU {c:.2f} s)"]
            for f in fmts:
                s, c = timed([*pinned(args.cpu), *stilts_cmd(fits, f, "/dev/null", jvm)])
                raw["stilts"][f].append(s)
                cpu["stilts"][f].append(c)
                msg.append(f"{f} {s:.2f} s (CPU {c:.2f} s)")
            log(f"round {rnd + 1}: stilts " + ", ".join(msg))
        if "astropy" in systems:
            msg = []
            for f in fmts:
                p = scratch / f"astropy-out.{f}.vot"
                try:
                    j = astropy_run(parquet, f, str(p), args.cpu)
                finally:
                    p.unlink(missing_ok=True)
                raw["astropy"][f] += j["s"]
                cpu["astropy"][f] += j["cpu_s"]
                from_table[f] += j["from_table_s"]
                sizes["astropy"][f] = j["bytes"]
                msg.append(f"{f} {j['s'][0]:.2f} s")
            log(f"round {rnd + 1}: astropy " + ", ".join(msg))

    # summary: rates from wall-clock medians; CPU-time medians alongside
    rows = args.rows

    def entry(b: int, wall: float, cpu_s: float, n: int) -> dict:
        ok = wall > 0
        return {"bytes": b, "median_s": wall, "median_cpu_s": cpu_s, "mb_per_s": b / wall / 1e6 if ok else float("nan"),
                "mb_per_cpu_s": b / cpu_s / 1e6 if cpu_s > 0 else float("nan"), "mrows_per_s": rows / wall / 1e6 if ok else float("nan"), "n": n}

    summ: dict = {}
    for f in fmts:
        if raw["tessera"][f]:
            summ.setdefault("tessera", {})[f] = entry(tbytes[f], med(raw["tessera"][f]), med(cpu["tessera"][f]) if cpu["tessera"][f] else float("nan"), len(raw["tessera"][f]))
        if raw["stilts"][f]:
            e = entry(sizes["stilts"].get(f, 0), med(raw["stilts"][f]) - med(raw["stilts_discard"]), med(cpu["stilts"][f]) - med(cpu["stilts_discard"]), len(raw["stilts"][f]))
            e["tcopy_median_s"] = med(raw["stilts"][f])
            e["tcopy_median_cpu_s"] = med(cpu["stilts"][f])
            summ.setdefault("stilts", {})[f] = e
        if raw["astropy"][f]:
            e = entry(sizes["astropy"].get(f, 0), med(raw["astropy"][f]), med(cpu["astropy"][f]), len(raw["astropy"][f]))
            e["from_table_median_s"] = med(from_table[f])
            summ.setdefault("astropy", {})[f] = e
    if raw["stilts_discard"]:
        summ.setdefault("stilts", {})["discard"] = {"median_s": med(raw["stilts_discard"]), "median_cpu_s": med(cpu["stilts_discard"]), "n": len(raw["stilts_discard"])}
    res["summary"] = summ
    res["raw_s"] = raw
    res["raw_cpu_s"] = cpu
    res["sizes"] = sizes
    res["loadavg_end"] = f"{os.getloadavg()[0]:.1f}"
    res["elapsed_s"] = round(time.monotonic() - cc.T0, 1)
    notes = {
        "tessera": "Tessera: `votable_encode` (release), Parquet read untimed into 8192-row batches with names as Utf8View (as DataFusion delivers them), "
        "`formats::writer(Format::VoTableBinary2 | VoTableTabledata, …)` + `write_batch` per batch + `finish(false)` into a byte counter, on one thread.",
        "stilts": f"STILTS {res['stilts_version']} ({res['java']}), `stilts {args.stilts_jvm} tcopy in={fits.name} out=/dev/null ofmt=votable-binary2-inline | votable-tabledata`, and "
        f"`tpipe in={fits.name} omode=discard`; wall time of the process, so JVM start-up is in both and cancels in the difference; output sizes from one untimed run writing a file in {scratch}.",
        "astropy": f"astropy {astropy.__version__}: table built from the Parquet file with pyarrow (untimed), timed `votable.from_table(t)` + `writeto(FILE, tabledata_format=…)` to a file in {scratch} (deleted after each run).",
    }
    res["notes"] += [notes[k] for k in ("tessera", "stilts", "astropy") if k in systems]

    md = markdown(res)
    jpath, mpath = cc.write_results(args.out, "votable", res, md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    if errors:
        print(f"\n!!! {len(errors)} VALIDATION ERRORS (see above) !!!", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
