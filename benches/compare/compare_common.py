"""Shared parts of the comparison runners (cones.py, aggregates.py, xmatch.py).

Catalogs: how each benchmark catalog is fetched or generated, loaded with `tessera load`, and
read back (the identical rows every system gets); the PostgreSQL loader (q3c and pgSphere
databases); the venv re-exec; logging and statistics. Imported after `ensure_venv()` has run,
so numpy / pyarrow / duckdb / psycopg are available.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOME = Path.home()
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or HOME / ".cache" / "tessera-target")
BENCH = HOME / ".cache" / "tessera-bench"

T0 = time.monotonic()


def ensure_venv(script: str) -> None:
    """Re-executes `script` under the project venv (tools/python-env) unless already inside it."""
    try:
        import duckdb  # noqa: F401
        import psycopg  # noqa: F401
        import pyarrow  # noqa: F401
        import cdshealpix  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("TESSERA_CONES_REEXEC"):
        sys.exit(f"{Path(script).name}: the project venv lacks duckdb/psycopg/pyarrow/cdshealpix (tools/requirements.lock)")
    out = subprocess.run([str(REPO / "tools" / "python-env")], check=True, stdout=subprocess.PIPE, text=True)
    venv = out.stdout.strip().splitlines()[-1]
    os.environ["TESSERA_CONES_REEXEC"] = "1"
    py = os.path.join(venv, "bin", "python")
    os.execv(py, [py, str(Path(script).resolve()), *sys.argv[1:]])


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    print(f"{Path(sys.argv[0]).name}: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list, quiet: bool = False, **kw) -> subprocess.CompletedProcess:
    if not quiet:
        log("$ " + " ".join(str(c) for c in cmd))
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    r = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, **kw)
    if r.returncode != 0:
        err = r.stderr if isinstance(r.stderr, str) else ""
        fail(f"{cmd[0]} exited with {r.returncode}\n{err[-3000:]}")
    return r


def stats(ms: list[float]) -> dict:
    import numpy as np

    a = np.asarray(ms, dtype=float)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "n": int(a.size),
    }


# ---------------------------------------------------------------------------------------------
# catalogs

def _synth_csv(rows: int) -> Path:
    return BENCH / f"synthetic-{rows}-seed42.csv"


# `source`: how the input file is obtained ("committed", "gaia", or ("synthetic", rows));
# `load`: extra `tessera load` arguments; `cheap`: reloaded on every run, so the layout always
# matches the current loader (the others are reloaded with --reload, or when older than the
# tessera binary's last leaf-layout change, see LAYOUT_EPOCH); `mag`: the magnitude column
# used by the aggregates (Parquet name); `adql_*`: names as ADQL sees them.
DATASETS = {
    "hip2": {
        "source": "committed",
        "input": "datasets/hipparcos/hip2.dat.zst",
        "load": ["--readme", "datasets/hipparcos/ReadMe"],
        "catalog": "hipparcos/hip2",
        "table": "hipparcos.hip2",
        "id": "HIP",
        "mag": "Hpmag",
        "cheap": True,
    },
    "gaia-bright": {
        "source": "gaia",
        "load": ["--column-types", "source_id=int64"],
        "catalog": "gaia/gaia_bright",
        "table": "gaia.gaia_bright",
        "id": "source_id",
        "mag": "phot_g_mean_mag",
        "cheap": True,
    },
    "synth20m": {
        "source": ("synthetic", 20_000_000),
        "load": ["--column-types", "id=int64", "--memory-limit", "2G"],
        "catalog": "synthetic/synth20m",
        "table": "synthetic.synth20m",
        "id": "id",
        "mag": "g",
        "cheap": False,
    },
    "synth100m": {
        "source": ("synthetic", 100_000_000),
        "load": ["--column-types", "id=int64", "--memory-limit", "2G"],
        "catalog": "synthetic/synth100m",
        "table": "synthetic.synth100m",
        "id": "id",
        "mag": "g",
        "cheap": False,
    },
}

# Catalogs loaded before this time (UTC) have an old leaf layout (last change: d06739e, LZ4
# leaves; before it 235aa61, data pages of at most 1024 rows) and are reloaded.
LAYOUT_EPOCH = dt.datetime(2026, 11, 21, 15, 25, tzinfo=dt.timezone.utc)  # d06739e: LZ4 leaves


def dataset_input(spec: dict) -> Path:
    src = spec["source"]
    if src == "committed":
        return REPO / spec["input"]
    if src == "gaia":
        out = run([REPO / "tools" / "fetch-datasets", "gaia-bright"], stdout=subprocess.PIPE, text=True)
        return Path(out.stdout.strip().splitlines()[-1])
    kind, rows = src
    csv = _synth_csv(rows)
    if not csv.exists():
        log(f"generating {csv} ({rows:,} rows)")
        run([REPO / "tools" / "gen-synthetic", "--rows", str(rows), "--seed", "42", str(csv) + ".tmp"])
        os.replace(str(csv) + ".tmp", csv)
    return csv


def _loaded_at(cat: Path) -> dt.datetime | None:
    p = cat / "hats.properties"
    if not p.exists():
        return None
    return dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc)


def ensure_catalog(spec: dict, root: Path, reload: bool = False) -> Path:
    """Loads the catalog with `tessera load` unless a current one is there; returns its path."""
    cat = root / spec["catalog"]
    at = _loaded_at(cat)
    if at is not None and not (spec["cheap"] or reload) and at >= LAYOUT_EPOCH:
        log(f"catalog {cat} present, loaded {at:%Y-%m-%d %H:%M} UTC (use --reload to rebuild)")
        return cat
    inp = dataset_input(spec)
    if cat.exists():
        shutil.rmtree(cat)
    cat.parent.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    scratch = ["--scratch", "/var/tmp"] if Path("/var/tmp").is_dir() else []
    run([TARGET / "release" / "tessera", "load", inp, *spec["load"], *scratch, "--catalog", cat, "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log(f"loaded {cat} in {time.monotonic() - t:.1f} s")
    return cat


def leaf_files(cat: Path) -> list[str]:
    files = sorted(glob.glob(str(cat / "dataset" / "**" / "*.parquet"), recursive=True))
    if not files:
        fail(f"no Parquet leaves under {cat}/dataset")
    return files


def read_columns(cat: Path, cols: list[str], sort_hpx: bool = True):
    """The given columns of every leaf, concatenated (sorted by _healpix_29 when asked)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    want = list(cols)
    if sort_hpx and "_healpix_29" not in want:
        want.append("_healpix_29")
    t = pa.concat_tables([pq.read_table(f, columns=want) for f in leaf_files(cat)])
    if sort_hpx:
        t = t.take(pc.sort_indices(t, sort_keys=[("_healpix_29", "ascending")]))
    return t


def fingerprint(t, names: list[str]) -> str:
    """Hash of the given columns' values (nulls as NaN)."""
    import numpy as np

    h = hashlib.sha256()
    for name in names:
        h.update(np.ascontiguousarray(t.column(name).to_numpy(zero_copy_only=False)).tobytes())
    return h.hexdigest()[:16]


def catalog_rows(cat: Path, spec: dict):
    """(id, ra, dec, mag, hpx29) of every row, sorted by _healpix_29: what PostgreSQL gets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = read_columns(cat, [spec["id"], "ra", "dec", spec["mag"], "_healpix_29"])
    t = t.select([spec["id"], "ra", "dec", spec["mag"], "_healpix_29"]).rename_columns(["id", "ra", "dec", "mag", "hpx29"])
    t = t.set_column(0, "id", pc.cast(t.column("id"), pa.int64()))
    t = t.set_column(3, "mag", pc.cast(t.column("mag"), pa.float64()))
    return t


# PostgreSQL columns beyond (id, ra, dec): the magnitude and the catalog's _healpix_29.
PG_EXTRA = [("mag", "float8"), ("hpx29", "bigint")]


def build(examples: list[str], no_build: bool) -> None:
    if no_build:
        return
    run(["cargo", "build", "--release", "-p", "tessera-server"])
    for ex in examples:
        run(["cargo", "build", "--release", "-p", "tessera-benches", "--example", ex])


def provenance() -> dict:
    """Commit (+dirty when what the binaries are built from has uncommitted changes), machine."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip()
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], stdout=subprocess.PIPE, text=True).stdout
    changed = [line[3:] for line in status.splitlines() if len(line) > 3]
    built_from = ("Cargo.", "engine/", "storage/", "loader/", "server/", "benches/src/", "benches/examples/", "benches/Cargo.toml")
    if any(p.startswith(built_from) for p in changed):
        commit += "+dirty"
    return {
        "commit": commit,
        "uncommitted": changed,
        "started_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "loadavg_start": f"{os.getloadavg()[0]:.1f}",
    }


# ---------------------------------------------------------------------------------------------
# PostgreSQL (tools/pg-baseline)


def pg_connect(port: int, db: str):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db, autocommit=True)


def pg_start(pg_dir: str, port: int) -> None:
    run([REPO / "tools" / "pg-baseline", "start", pg_dir, str(port)], stdout=subprocess.DEVNULL)


def pg_load(pg_dir: str, port: int, name: str, t, fp: str, reload: bool = False, dbs=("q3c", "sphere"), extra: list[tuple[str, str]] | None = None) -> dict:
    """Loads `t` (columns id, ra, dec, then the `extra` (name, SQL type) columns) into the q3c and sphere
    databases unless the same rows are there (fingerprint in bench_meta).

    q3c: PRIMARY KEY (id), index on q3c_ang2ipix(ra, dec), CLUSTER, ANALYZE. sphere: the same
    columns plus `pos spoint`, GiST index, VACUUM ANALYZE (heap in the CSV's order, which is
    _healpix_29 order for catalog rows)."""
    import pyarrow.csv as pacsv

    extra = PG_EXTRA if extra is None else extra
    timings = {}
    csv = Path(pg_dir) / f"{name}.csv"
    wrote_csv = False
    cols_sql = "id bigint, ra float8 NOT NULL, dec float8 NOT NULL" + "".join(f", {c} {ty}" for c, ty in extra)
    names = ", ".join(["id", "ra", "dec", *(c for c, _ in extra)])
    for db in dbs:
        with pg_connect(port, db) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (name text PRIMARY KEY, fingerprint text NOT NULL)")
            row = conn.execute("SELECT fingerprint FROM bench_meta WHERE name = %s", (name,)).fetchone()
            if row and row[0] == fp and not reload:
                log(f"postgres {db}.{name}: same rows already loaded ({fp})")
                continue
            if not wrote_csv:
                pacsv.write_csv(t.select(["id", "ra", "dec", *(c for c, _ in extra)]), csv, pacsv.WriteOptions(include_header=False))
                os.chmod(csv, 0o644)
                wrote_csv = True
            t0 = time.monotonic()
            conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.execute("DELETE FROM bench_meta WHERE name = %s", (name,))
            if db == "q3c":
                conn.execute(f"CREATE TABLE {name} ({cols_sql.replace('id bigint', 'id bigint PRIMARY KEY')})")
                conn.execute(f"COPY {name} ({names}) FROM '{csv}' (FORMAT csv)")
                t1 = time.monotonic()
                conn.execute(f"CREATE INDEX {name}_q3c ON {name} (q3c_ang2ipix(ra, dec))")
                conn.execute(f"CLUSTER {name} USING {name}_q3c")
                conn.execute(f"ANALYZE {name}")
            else:
                conn.execute(f"CREATE UNLOGGED TABLE {name}_stage ({cols_sql})")
                conn.execute(f"COPY {name}_stage ({names}) FROM '{csv}' (FORMAT csv)")
                t1 = time.monotonic()
                conn.execute(f"CREATE TABLE {name} AS SELECT {names}, spoint(radians(ra), radians(dec)) AS pos FROM {name}_stage")
                conn.execute(f"DROP TABLE {name}_stage")
                conn.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
                conn.execute(f"CREATE INDEX {name}_pos ON {name} USING gist (pos)")
                conn.execute(f"VACUUM ANALYZE {name}")
            t2 = time.monotonic()
            conn.execute("INSERT INTO bench_meta VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint", (name, fp))
            timings[db] = {"copy_s": round(t1 - t0, 3), "index_s": round(t2 - t1, 3)}
            log(f"postgres {db}.{name}: COPY {t1 - t0:.2f} s, index/cluster/analyze {t2 - t1:.2f} s")
    if wrote_csv:
        csv.unlink()
    return timings


def query_latency(args: list[str], timeout_s: float | None = None) -> dict:
    """Runs the query_latency example; returns its JSON (with "timeout": true when it ran out
    of time — the example's own --timeout, or a hard kill at timeout_s + 60 s)."""
    exe = TARGET / "release" / "examples" / "query_latency"
    cmd = [str(exe), *args]
    if timeout_s:
        cmd += ["--timeout", str(timeout_s)]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=(timeout_s + 60) if timeout_s else None)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "killed": True, "rows": 0, "ms": [], "result": []}
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-2000:], "rows": 0, "ms": [], "result": []}
    return json.loads(r.stdout)


def write_results(out_dir: Path, kind: str, res: dict, md: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    jpath = out_dir / f"{kind}-{stamp}.json"
    mpath = out_dir / f"{kind}-{stamp}.md"
    jpath.write_text(json.dumps(res, indent=1, default=str) + "\n")
    mpath.write_text(md)
    return jpath, mpath
