#!/usr/bin/env python3
"""HATS interoperability checks for Tessera, run with the venv from tools/python-env.

    hats_compat.py validate CATALOG_DIR [--no-extra]
    hats_compat.py cone     CATALOG_DIR RA DEC RADIUS_ARCSEC [--id COL] [--eps-arcsec X]
    hats_compat.py import   CSV OUT_DIR NAME --ra COL --dec COL [--threshold N]
                            [--highest-order K] [--lowest-order K] [--sort-columns A,B]
                            [--workers 1|2] [--overwrite]
    hats_compat.py dump     CATALOG_DIR OUT_CSV [--reader pyarrow|lsdb]
    hats_compat.py selftest [--rows N] [--workdir DIR]

Contract (see README.md next to this file):
  * exit 0 = pass; 1 = check failed (the catalog is wrong); 2 = bad usage;
    3 = unexpected error (exception, unreadable input, tool failure).
  * stdout carries exactly one line: a JSON object with at least "ok" and "command".
    Everything else (library logs, dask, progress, diagnostics) goes to stderr;
    a failure is explained on stderr by lines starting with "hats_compat: FAIL:".

Written against hats / lsdb / hats-import 0.11.1 (pinned in tools/requirements.lock).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3

# --- stdout discipline --------------------------------------------------------------------
# Library code (dask workers, tqdm, print() calls in hats-import) may write to fd 1. Keep a
# private copy of the real stdout for the JSON summary and point fd 1 at stderr, so the
# summary is the only thing a caller sees on stdout. Worker processes inherit this.
_JSON_OUT = None


def _redirect_stdout_to_stderr():
    global _JSON_OUT  # pylint: disable=global-statement
    if _JSON_OUT is not None:
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    _JSON_OUT = os.fdopen(saved, "w", buffering=1)
    sys.stdout = sys.stderr


def emit(summary: dict) -> None:
    out = _JSON_OUT if _JSON_OUT is not None else sys.stdout
    out.write(json.dumps(summary, sort_keys=False, default=str) + "\n")
    out.flush()


def note(msg: str) -> None:
    print(f"hats_compat: {msg}", file=sys.stderr, flush=True)


def fail_msg(msg: str) -> None:
    print(f"hats_compat: FAIL: {msg}", file=sys.stderr, flush=True)


class CheckFailed(Exception):
    """The catalog under test is wrong (exit 1)."""


class _Collect(logging.Handler):
    """Keeps WARNING+ log records so that validator complaints end up in the summary."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        try:
            self.messages.append(f"{record.levelname}: {record.getMessage()}")
        except Exception:  # pylint: disable=broad-exception-caught
            pass


def _setup_logging(level=logging.WARNING) -> _Collect:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(stream)
    collect = _Collect()
    root.addHandler(collect)
    root.setLevel(level)
    _quiet_libraries()
    return collect


_NOISY = ("distributed", "bokeh", "tornado", "asyncio", "fsspec", "numba")


def _quiet_libraries():
    """dask/distributed set their own logger levels when imported: call again after import."""
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in _NOISY:
            logging.getLogger(name).setLevel(logging.ERROR)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)


# --- catalog helpers ----------------------------------------------------------------------
PIXEL_RE = re.compile(r"Norder=(\d+)/Dir=(\d+)/Npix=(\d+)")


def _dataset_leaves(catalog_dir: Path) -> list[tuple[int, int, Path]]:
    """Every data file under CATALOG/dataset that belongs to a partition, found by listing.

    A partition is `Norder=k/Dir=D/Npix=n<suffix>`; with `hats_npix_suffix=/` it is a
    directory whose files together form the partition. `_metadata`, `_common_metadata`,
    `data_thumbnail*` and anything else not under a Norder/Dir/Npix path are ignored.
    """
    dataset = catalog_dir / "dataset"
    if not dataset.is_dir():
        raise CheckFailed(f"{dataset} does not exist or is not a directory")
    leaves = []
    for root, _dirs, files in os.walk(dataset):
        for f in files:
            p = Path(root) / f
            rel = p.relative_to(dataset).as_posix()
            m = PIXEL_RE.search(rel)
            if not m or f.startswith((".", "_")):
                continue
            leaves.append((int(m.group(1)), int(m.group(3)), p))
    leaves.sort(key=lambda t: (t[0], t[1], str(t[2])))
    return leaves


def _read_leaf(path: Path, columns=None):
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel

    # ParquetFile, not pq.read_table: read_table would apply hive partitioning to the
    # Norder=/Dir=/Npix= path components and add columns that are not in the file.
    return pq.ParquetFile(path).read(columns=columns)


def _properties(catalog_dir: Path):
    from hats.catalog import TableProperties  # pylint: disable=import-outside-toplevel

    return TableProperties.read_from_dir(catalog_dir)


def _angular_sep_arcsec(ra_deg, dec_deg, ra0_deg, dec0_deg):
    """Great-circle distance in arcsec, float64, vector (atan2) form: accurate for tiny
    and large separations alike, no problem at the poles or across RA 0/360."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    ra = np.radians(np.asarray(ra_deg, dtype=np.float64))
    dec = np.radians(np.asarray(dec_deg, dtype=np.float64))
    ra0, dec0 = math.radians(float(ra0_deg)), math.radians(float(dec0_deg))
    cd = np.cos(dec)
    x, y, z = cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)
    cx, cy, cz = math.cos(dec0) * math.cos(ra0), math.cos(dec0) * math.sin(ra0), math.sin(dec0)
    crx = y * cz - z * cy
    cry = z * cx - x * cz
    crz = x * cy - y * cx
    sin_t = np.sqrt(crx * crx + cry * cry + crz * crz)
    cos_t = x * cx + y * cy + z * cz
    return np.degrees(np.arctan2(sin_t, cos_t)) * 3600.0


def _py_values(arr) -> list:
    """Column values (pyarrow or numpy/pandas) as plain Python objects."""
    if hasattr(arr, "to_pylist"):
        return arr.to_pylist()
    return list(arr.tolist())


# --- validate -----------------------------------------------------------------------------
def cmd_validate(args) -> dict:
    import numpy as np  # pylint: disable=import-outside-toplevel
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel

    collect = _setup_logging(logging.INFO)
    import hats  # pylint: disable=import-outside-toplevel
    from hats.io.validation import is_valid_catalog  # pylint: disable=import-outside-toplevel

    path = Path(args.catalog).resolve()
    summary = {"ok": False, "command": "validate", "catalog": str(path)}
    errors: list[str] = []
    if not path.is_dir():
        raise CheckFailed(f"catalog directory {path} does not exist")

    try:
        valid = bool(is_valid_catalog(str(path), strict=True, verbose=True))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # 0.11.1 lets read_hats() exceptions escape from the strict validator.
        valid = False
        errors.append(f"is_valid_catalog raised {type(exc).__name__}: {exc}")
    summary["is_valid_catalog"] = valid
    if not valid:
        errors.append("hats.io.validation.is_valid_catalog(strict=True) returned False")

    cat = None
    try:
        cat = hats.read_hats(str(path))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        errors.append(f"hats.read_hats raised {type(exc).__name__}: {exc}")
    if cat is not None:
        summary["catalog_type"] = str(cat.catalog_info.catalog_type)
        if not hasattr(cat, "get_healpix_pixels"):
            errors.append(f"not a HEALPix-partitioned catalog ({type(cat).__name__})")
        else:
            pixels = cat.get_healpix_pixels()
            summary["partitions"] = len(pixels)
            summary["total_rows"] = cat.catalog_info.total_rows
            summary["max_order"] = max((p.order for p in pixels), default=None)
            summary["has_moc"] = getattr(cat, "moc", None) is not None
            summary["columns"] = list(cat.schema.names) if cat.schema is not None else None

    if cat is not None and hasattr(cat, "get_healpix_pixels") and not args.no_extra:
        extra = _extra_checks(path, cat, np, pq)
        summary["extra_checks"] = extra["done"]
        errors.extend(extra["errors"])
        summary["leaf_rows"] = extra.get("leaf_rows")

    warnings_seen = [m for m in collect.messages if not m.startswith("INFO")]
    if warnings_seen:
        summary["validator_messages"] = warnings_seen[:50]
    if errors:
        summary["errors"] = errors
        raise CheckFailed("; ".join(errors), summary)
    summary["ok"] = True
    note(
        f"PASS: {path} is a valid HATS catalog: {summary['partitions']} partitions, "
        f"{summary['total_rows']} rows"
    )
    return summary


def _extra_checks(path: Path, cat, np, pq) -> dict:
    """Checks beyond hats' validator that matter for Tessera (FORMATS.md §1.2-1.6)."""
    from hats.io import file_io  # pylint: disable=import-outside-toplevel
    from hats.pixel_math.spatial_index import compute_spatial_index  # pylint: disable=import-outside-toplevel

    info = cat.catalog_info
    done, errors = [], []
    hp_col = info.healpix_column or "_healpix_29"
    hp_order = info.healpix_order if info.healpix_order is not None else 29
    leaves = _dataset_leaves(path)
    common = pq.read_schema(path / "dataset" / "_common_metadata")

    total = 0
    bad_schema, bad_range, bad_sort, bad_hp = [], [], [], []
    hp_hist_order = info.skymap_order
    hist = Counter()
    for order, npix, leaf in leaves:
        pf = pq.ParquetFile(leaf)
        total += pf.metadata.num_rows
        if not pf.schema_arrow.remove_metadata().equals(common.remove_metadata()):
            bad_schema.append(str(leaf.relative_to(path)))
            continue
        if hp_col not in pf.schema_arrow.names:
            continue
        cols = [hp_col] + [c for c in (info.ra_column, info.dec_column) if c]
        t = pf.read(columns=cols)
        hp = t.column(hp_col).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        shift = 2 * (hp_order - order)
        lo, hi = npix << shift, (npix + 1) << shift
        if len(hp) and (hp.min() < lo or hp.max() >= hi):
            bad_range.append(str(leaf.relative_to(path)))
        if len(hp) > 1 and np.any(np.diff(hp) < 0):
            bad_sort.append(str(leaf.relative_to(path)))
        if info.ra_column and info.dec_column and hp_order == 29 and len(hp):
            ra = t.column(info.ra_column).to_numpy(zero_copy_only=False).astype(np.float64)
            dec = t.column(info.dec_column).to_numpy(zero_copy_only=False).astype(np.float64)
            expect = compute_spatial_index(ra, dec)
            n_bad = int(np.count_nonzero(expect != hp))
            if n_bad:
                bad_hp.append(f"{leaf.relative_to(path)} ({n_bad} rows)")
        if hp_hist_order is not None and len(hp):
            u, c = np.unique(hp >> (2 * (hp_order - hp_hist_order)), return_counts=True)
            hist.update(dict(zip(u.tolist(), c.tolist())))

    done.append("leaf_schema_equals_common_metadata")
    if bad_schema:
        errors.append(f"leaf schema differs from dataset/_common_metadata: {bad_schema[:10]}")
    done.append("hats_nrows_equals_leaf_rows")
    if info.total_rows is not None and info.total_rows != total:
        errors.append(f"hats_nrows={info.total_rows} but the leaves hold {total} rows")
    done.append(f"{hp_col}_within_partition_pixel")
    if bad_range:
        errors.append(f"{hp_col} values outside the leaf's pixel in: {bad_range[:10]}")
    done.append(f"{hp_col}_sorted_ascending")
    if bad_sort:
        errors.append(f"leaves not sorted by {hp_col}: {bad_sort[:10]}")
    if hp_order == 29:
        done.append(f"{hp_col}_equals_cdshealpix(ra,dec)")
        if bad_hp:
            errors.append(f"{hp_col} differs from cdshealpix lonlat_to_healpix(ra, dec, 29): {bad_hp[:10]}")

    metadata_file = path / "dataset" / "_metadata"
    if metadata_file.exists():
        done.append("_metadata_rows_equal_leaf_rows")
        md_rows = pq.read_metadata(metadata_file).num_rows
        if md_rows != total:
            errors.append(f"dataset/_metadata counts {md_rows} rows but the leaves hold {total}")

    point_map = path / "point_map.fits"
    done.append("point_map_matches_rows")
    if not point_map.exists():
        errors.append("point_map.fits is missing (LSDB builds the catalog MOC only from it)")
    else:
        try:
            pm = np.asarray(file_io.read_fits_image(point_map))
            pm_order = int(round(math.log(len(pm) / 12, 4)))
            if hp_hist_order is not None and pm_order != hp_hist_order:
                errors.append(f"point_map.fits is order {pm_order} but hats_skymap_order={hp_hist_order}")
            elif int(pm.sum()) != total:
                errors.append(f"point_map.fits sums to {int(pm.sum())}, leaves hold {total} rows")
            elif hist:
                nz = np.nonzero(pm)[0]
                got = dict(zip(nz.tolist(), pm[nz].astype(np.int64).tolist()))
                if got != dict(hist):
                    diff = sorted(set(got.items()) ^ set(hist.items()))[:10]
                    errors.append(f"point_map.fits counts differ from the rows' {hp_col} histogram, e.g. {diff}")
        except Exception as exc:  # pylint: disable=broad-exception-caught
            errors.append(f"cannot read point_map.fits: {type(exc).__name__}: {exc}")
    return {"done": done, "errors": errors, "leaf_rows": total}


# --- cone ---------------------------------------------------------------------------------
def cmd_cone(args) -> dict:
    import numpy as np  # pylint: disable=import-outside-toplevel

    _setup_logging(logging.WARNING)
    import dask  # pylint: disable=import-outside-toplevel
    import lsdb  # pylint: disable=import-outside-toplevel

    path = Path(args.catalog).resolve()
    ra0, dec0, radius = float(args.ra), float(args.dec), float(args.radius_arcsec)
    if not -90.0 <= dec0 <= 90.0:
        raise UsageError(f"DEC must be within [-90, 90], got {dec0}")
    if not radius > 0:
        raise UsageError(f"RADIUS_ARCSEC must be > 0, got {radius}")
    summary = {
        "ok": False,
        "command": "cone",
        "catalog": str(path),
        "ra": ra0,
        "dec": dec0,
        "radius_arcsec": radius,
    }
    props = _properties(path)
    ra_col, dec_col = props.ra_column, props.dec_column
    if not ra_col or not dec_col:
        raise CheckFailed("hats.properties lacks hats_col_ra / hats_col_dec")
    hp_col = props.healpix_column or "_healpix_29"

    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel

    schema = pq.read_schema(path / "dataset" / "_common_metadata")
    id_col = args.id
    if id_col is None:
        candidates = [n for n in schema.names if n != hp_col]
        if not candidates:
            raise CheckFailed("no column besides the HEALPix index to use as id")
        id_col = candidates[0]
    for c in (id_col, ra_col, dec_col):
        if c not in schema.names:
            raise CheckFailed(f"column {c!r} is not in the catalog schema {schema.names}")
    summary["id_column"] = id_col
    columns = list(dict.fromkeys([id_col, ra_col, dec_col]))

    # 1. LSDB.
    t0 = time.monotonic()
    try:
        with dask.config.set({"scheduler": "threads", "num_workers": 2}):
            lcat = lsdb.open_catalog(str(path), columns=columns).cone_search(ra0, dec0, radius)
            summary["partitions_searched"] = len(lcat.get_healpix_pixels())
            df = lcat.compute()
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A catalog LSDB cannot read is a failed check, not a tool error.
        traceback.print_exc(file=sys.stderr)
        raise CheckFailed(f"LSDB cone search raised {type(exc).__name__}: {exc}", summary) from exc
    summary["lsdb_seconds"] = round(time.monotonic() - t0, 3)
    lsdb_ids = _py_values(df[id_col].to_numpy())
    lsdb_sep = _angular_sep_arcsec(df[ra_col].to_numpy(np.float64), df[dec_col].to_numpy(np.float64), ra0, dec0)

    # 2. Brute force over every leaf on disk.
    t0 = time.monotonic()
    brute_ids: list = []
    near_ids: dict = {}  # id -> sep for rows just outside the radius (boundary diagnostics)
    rows_scanned = 0
    leaves = _dataset_leaves(path)
    eps = float(args.eps_arcsec)
    for _order, _npix, leaf in leaves:
        t = _read_leaf(leaf, columns=columns)
        rows_scanned += t.num_rows
        if t.num_rows == 0:
            continue
        sep = _angular_sep_arcsec(
            t.column(ra_col).to_numpy(zero_copy_only=False).astype(np.float64),
            t.column(dec_col).to_numpy(zero_copy_only=False).astype(np.float64),
            ra0,
            dec0,
        )
        inside = np.nonzero(sep <= radius)[0]
        if len(inside):
            brute_ids.extend(_py_values(t.column(id_col).take(inside)))
        near = np.nonzero((sep > radius) & (sep <= radius + max(eps, 0.0)))[0]
        if len(near):
            for i, s in zip(_py_values(t.column(id_col).take(near)), sep[near].tolist()):
                near_ids[i] = s
    summary["brute_seconds"] = round(time.monotonic() - t0, 3)
    summary["leaves_read"] = len(leaves)
    summary["rows_scanned"] = rows_scanned
    summary["lsdb_count"] = len(lsdb_ids)
    summary["brute_count"] = len(brute_ids)

    # 3. Compare (as multisets, so duplicated rows are noticed too).
    c_lsdb, c_brute = Counter(lsdb_ids), Counter(brute_ids)
    missing = c_brute - c_lsdb  # brute force has it, LSDB does not
    extra = c_lsdb - c_brute  # LSDB returned it, brute force does not
    lsdb_sep_by_id = dict(zip(lsdb_ids, lsdb_sep.tolist()))
    brute_sep_by_id = {}
    if missing:
        # recompute separations of the missing rows for the report
        missing_set = set(missing)
        for _order, _npix, leaf in leaves:
            t = _read_leaf(leaf, columns=columns)
            ids = _py_values(t.column(id_col))
            idx = [i for i, v in enumerate(ids) if v in missing_set]
            if idx:
                s = _angular_sep_arcsec(
                    t.column(ra_col).to_numpy(zero_copy_only=False)[idx],
                    t.column(dec_col).to_numpy(zero_copy_only=False)[idx],
                    ra0,
                    dec0,
                )
                brute_sep_by_id.update({ids[i]: v for i, v in zip(idx, s.tolist())})
    boundary, hard_missing, hard_extra = [], [], []
    for i in missing:
        s = brute_sep_by_id.get(i, float("nan"))
        (boundary if radius - s <= eps else hard_missing).append((i, s))
    for i in extra:
        s = lsdb_sep_by_id.get(i, float("nan"))
        (boundary if s - radius <= eps else hard_extra).append((i, s))
    summary["missing_in_lsdb"] = len(hard_missing)
    summary["extra_in_lsdb"] = len(hard_extra)
    summary["boundary_ambiguous"] = len(boundary)
    summary["duplicate_ids_in_lsdb"] = sum(1 for v in c_lsdb.values() if v > 1)
    summary["duplicate_ids_in_brute"] = sum(1 for v in c_brute.values() if v > 1)
    if boundary:
        note(
            f"{len(boundary)} row(s) within {eps} arcsec of the radius disagree (rounding), "
            f"ignored: {[(i, round(s, 9)) for i, s in boundary[:5]]}"
        )
    note(
        f"cone ({ra0}, {dec0}, {radius}\"): lsdb={len(lsdb_ids)} brute={len(brute_ids)} "
        f"missing_in_lsdb={len(hard_missing)} extra_in_lsdb={len(hard_extra)} "
        f"partitions_searched={summary['partitions_searched']} leaves={len(leaves)} rows={rows_scanned}"
    )
    if hard_missing or hard_extra:
        if hard_missing:
            summary["missing_examples"] = [[i, s] for i, s in hard_missing[:10]]
        if hard_extra:
            summary["extra_examples"] = [[i, s] for i, s in hard_extra[:10]]
        raise CheckFailed(
            f"LSDB cone search differs from brute force: {len(hard_missing)} row(s) missing from LSDB "
            f"(e.g. {id_col}, sep\" = {hard_missing[:5]}), {len(hard_extra)} unexpected row(s) "
            f"(e.g. {hard_extra[:5]})",
            summary,
        )
    summary["ok"] = True
    return summary


# --- import -------------------------------------------------------------------------------
def cmd_import(args) -> dict:
    _setup_logging(logging.WARNING)
    csv = Path(args.csv).resolve()
    out_dir = Path(args.out_dir).resolve()
    name = args.name
    if not csv.is_file():
        raise UsageError(f"CSV file {csv} does not exist")
    if not 1 <= args.workers <= 2:
        raise UsageError("--workers must be 1 or 2 (2 shared cores)")
    if not re.fullmatch(r"[A-Za-z0-9._\-]+", name):
        raise UsageError("NAME may contain only letters, digits, '.', '_' and '-'")
    target = out_dir / name
    if target.exists():
        if args.overwrite:
            shutil.rmtree(target)
        elif any(target.iterdir()):
            raise UsageError(f"{target} already exists and is not empty (use --overwrite)")
    import csv as csvmod  # pylint: disable=import-outside-toplevel

    with open(csv, newline="", encoding="utf-8") as f:
        header = next(csvmod.reader(f), [])
    for role, col in (("--ra", args.ra), ("--dec", args.dec)):
        if col not in header:
            raise UsageError(f"{role} column {col!r} is not in the CSV header {header}")
    for col in (args.sort_columns or "").split(","):
        if col and col not in header:
            raise UsageError(f"--sort-columns column {col!r} is not in the CSV header {header}")
    out_dir.mkdir(parents=True, exist_ok=True)

    from dask.distributed import Client, LocalCluster  # pylint: disable=import-outside-toplevel
    from hats_import.catalog.arguments import ImportArguments  # pylint: disable=import-outside-toplevel
    from hats_import.pipeline import pipeline_with_client  # pylint: disable=import-outside-toplevel

    _quiet_libraries()

    kwargs = {}
    if args.threshold is not None:
        kwargs["pixel_threshold"] = int(args.threshold)
    if args.highest_order is not None:
        kwargs["highest_healpix_order"] = int(args.highest_order)
    if args.lowest_order is not None:
        kwargs["lowest_healpix_order"] = int(args.lowest_order)
    if args.sort_columns:
        kwargs["sort_columns"] = args.sort_columns

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hats-import-") as tmp:
        import_args = ImportArguments(
            output_artifact_name=name,
            output_path=str(out_dir),
            input_file_list=[str(csv)],
            file_reader="csv",
            ra_column=args.ra,
            dec_column=args.dec,
            tmp_dir=tmp,
            dask_tmp=tmp,
            resume=False,
            progress_bar=False,
            **kwargs,
        )
        try:
            with LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                local_directory=tmp,
                silence_logs=logging.ERROR,
            ) as cluster, Client(cluster) as client:
                pipeline_with_client(import_args, client)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)  # a half-written catalog is useless
            raise
    seconds = round(time.monotonic() - t0, 3)

    import hats  # pylint: disable=import-outside-toplevel

    cat = hats.read_hats(str(target))
    pixels = cat.get_healpix_pixels()
    summary = {
        "ok": True,
        "command": "import",
        "catalog": str(target),
        "rows": cat.catalog_info.total_rows,
        "partitions": len(pixels),
        "max_order": max((p.order for p in pixels), default=None),
        "seconds": seconds,
    }
    note(f"hats-import wrote {target} ({summary['rows']} rows, {summary['partitions']} partitions)")
    return summary


# --- dump ---------------------------------------------------------------------------------
def cmd_dump(args) -> dict:
    _setup_logging(logging.WARNING)
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    import pyarrow.csv as pacsv  # pylint: disable=import-outside-toplevel

    path = Path(args.catalog).resolve()
    out = Path(args.out_csv)
    props = _properties(path)
    hp_col = props.healpix_column or "_healpix_29"

    if args.reader == "lsdb":
        import lsdb  # pylint: disable=import-outside-toplevel

        df = lsdb.open_catalog(str(path), columns="all").compute()
        df = df.reset_index()
        df = df[[c for c in df.columns if c != hp_col]]
        table = pa.Table.from_pandas(df, preserve_index=False)
        n_leaves = None
    else:
        leaves = _dataset_leaves(path)
        tables = [_read_leaf(p) for _o, _n, p in leaves]
        if not tables:
            raise CheckFailed(f"no partition files under {path}/dataset")
        table = pa.concat_tables(tables, promote_options="default")
        n_leaves = len(leaves)
    cols = [c for c in table.column_names if c != hp_col]
    table = table.select(cols).replace_schema_metadata(None)
    try:
        table = table.sort_by([(c, "ascending") for c in cols])
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise RuntimeError(f"cannot sort by all columns {cols}: {exc}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, out)
    summary = {
        "ok": True,
        "command": "dump",
        "catalog": str(path),
        "out_csv": str(out.resolve()),
        "rows": table.num_rows,
        "columns": cols,
        "types": [str(t) for t in table.schema.types],
        "leaves": n_leaves,
        "reader": args.reader,
    }
    note(f"wrote {table.num_rows} rows x {len(cols)} columns to {out}")
    return summary


# --- selftest -----------------------------------------------------------------------------
def cmd_selftest(args) -> dict:
    """Build a catalog with hats-import from a generated CSV and exercise every command,
    plus deliberately broken copies that `cone` and `validate` must reject (exit 1)."""
    _setup_logging(logging.WARNING)
    here = Path(__file__).resolve().parent
    work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="hats-selftest-"))
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    me = str(Path(__file__).resolve())
    results = []

    def run(cmd_args, expect_rc):
        t0 = time.monotonic()
        p = subprocess.run([py, me, *cmd_args], capture_output=True, text=True, check=False)
        lines = p.stdout.strip().splitlines()
        try:
            js = json.loads(lines[-1]) if len(lines) == 1 else None
        except json.JSONDecodeError:
            js = None
        good = p.returncode == expect_rc and js is not None
        results.append(
            {
                "args": cmd_args,
                "rc": p.returncode,
                "expected_rc": expect_rc,
                "ok": good,
                "seconds": round(time.monotonic() - t0, 1),
            }
        )
        note(f"{'ok ' if good else 'BAD'} rc={p.returncode} (want {expect_rc}) {' '.join(cmd_args)}")
        if not good:
            sys.stderr.write(p.stderr[-4000:])
            sys.stderr.write(f"stdout: {p.stdout[-2000:]}\n")
        return js

    csv = work / "sky.csv"
    subprocess.run(
        [py, str(here / "test_data" / "make_sky_csv.py"), str(csv), "--rows", str(args.rows)], check=True
    )
    run(["import", str(csv), str(work), "sky", "--ra", "ra", "--dec", "dec", "--threshold", "1000",
         "--highest-order", "7", "--sort-columns", "id", "--overwrite"], 0)
    cat = str(work / "sky")
    run(["validate", cat], 0)
    cones = [
        ("45.0", "20.0", "3600"),  # the clump
        ("45.01", "20.01", "1"),  # 1 arcsec
        ("0.0", "90.0", "7200"),  # north pole
        ("123.0", "-90.0", "5400"),  # south pole
        ("0.0", "0.0", "10800"),  # across RA 0/360
        ("359.9", "5.0", "1800"),  # across RA 0/360, other side
        ("200.0", "10.0", "108000"),  # 30 degrees
        ("0.0", "89.99", "108000"),  # 30 degrees around the pole
    ]
    for ra, dec, r in cones:
        run(["cone", cat, ra, dec, r, "--id", "id"], 0)
    run(["dump", cat, str(work / "dump.csv")], 0)
    run(["dump", cat, str(work / "dump_lsdb.csv"), "--reader", "lsdb"], 0)
    same = (work / "dump.csv").read_bytes() == (work / "dump_lsdb.csv").read_bytes()
    results.append({"args": ["compare dump pyarrow vs lsdb"], "ok": same})

    # Broken copies, made from the good catalog; cone and validate must reject them (exit 1).
    from hats.pixel_math.spatial_index import compute_spatial_index  # pylint: disable=import-outside-toplevel

    hp = int(compute_spatial_index([45.01], [20.01])[0])

    def clump_leaf(root: Path):
        return [(o, n, p) for o, n, p in _dataset_leaves(root) if hp >> (2 * (29 - o)) == n][0]

    # (a) a leaf listed in partition_info.csv is missing on disk -> LSDB cannot read it.
    broken = work / "sky_missing_leaf"
    if broken.exists():
        shutil.rmtree(broken)
    shutil.copytree(cat, broken)
    victim = clump_leaf(broken)[2]
    victim.unlink()
    note(f"(a) deleted {victim.relative_to(broken)}")
    run(["cone", str(broken), "45.0", "20.0", "3600", "--id", "id"], 1)
    run(["validate", str(broken)], 1)

    # (b) a partition is left out of partition_info.csv (leaf still on disk) -> LSDB never
    #     reads it, brute force does -> the id sets differ.
    broken = work / "sky_unlisted_leaf"
    if broken.exists():
        shutil.rmtree(broken)
    shutil.copytree(cat, broken)
    order, npix, _ = clump_leaf(broken)
    pinfo = broken / "partition_info.csv"
    lines = pinfo.read_text().splitlines()
    pinfo.write_text("\n".join(l for l in lines if l != f"{order},{npix}") + "\n")
    note(f"(b) removed {order},{npix} from partition_info.csv")
    js = run(["cone", str(broken), "45.0", "20.0", "3600", "--id", "id"], 1)
    results.append({"args": ["(b) reports missing_in_lsdb > 0"], "ok": bool(js and js.get("missing_in_lsdb", 0) > 0)})
    run(["validate", str(broken)], 1)
    run(["cone", cat, "45.0", "95.0", "10"], 2)  # bad usage

    ok = all(r["ok"] for r in results)
    summary = {"ok": ok, "command": "selftest", "workdir": str(work), "results": results}
    if not ok:
        raise CheckFailed("self-test failed: " + ", ".join(" ".join(r["args"]) for r in results if not r["ok"]), summary)
    return summary


# --- main ---------------------------------------------------------------------------------
class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hats_compat.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    v = sub.add_parser("validate", help="hats strict validation + read_hats + extra checks")
    v.add_argument("catalog")
    v.add_argument("--no-extra", action="store_true", help="only run hats' own validator and read_hats")

    c = sub.add_parser("cone", help="LSDB cone search vs brute force")
    c.add_argument("catalog")
    c.add_argument("ra", type=float)
    c.add_argument("dec", type=float)
    c.add_argument("radius_arcsec", type=float)
    c.add_argument("--id", default=None, help="id column (default: first column that is not _healpix_29)")
    c.add_argument(
        "--eps-arcsec",
        type=float,
        default=1e-6,
        help="rows whose distance is within this of the radius may disagree (float rounding); "
        "0 = strict (default 1e-6)",
    )

    i = sub.add_parser("import", help="build a catalog from a CSV with hats-import")
    i.add_argument("csv")
    i.add_argument("out_dir")
    i.add_argument("name")
    i.add_argument("--ra", required=True)
    i.add_argument("--dec", required=True)
    i.add_argument("--threshold", type=int, default=None, help="pixel_threshold (rows per partition)")
    i.add_argument("--highest-order", type=int, default=None, help="highest_healpix_order (mapping order)")
    i.add_argument("--lowest-order", type=int, default=None, help="lowest_healpix_order")
    i.add_argument("--sort-columns", default=None, help="comma-separated secondary sort columns")
    i.add_argument("--workers", type=int, default=1, help="dask workers (1 or 2)")
    i.add_argument("--overwrite", action="store_true", help="delete OUT_DIR/NAME first")

    d = sub.add_parser("dump", help="all rows, sorted by all columns, as CSV")
    d.add_argument("catalog")
    d.add_argument("out_csv")
    d.add_argument("--reader", choices=["pyarrow", "lsdb"], default="pyarrow")

    s = sub.add_parser("selftest", help="build a test catalog and exercise every command")
    s.add_argument("--rows", type=int, default=50_000)
    s.add_argument("--workdir", default=None)
    return p


COMMANDS = {
    "validate": cmd_validate,
    "cone": cmd_cone,
    "import": cmd_import,
    "dump": cmd_dump,
    "selftest": cmd_selftest,
}


def main(argv=None) -> int:
    _redirect_stdout_to_stderr()
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        summary = COMMANDS[command](args)
        emit(summary)
        return EXIT_OK
    except UsageError as exc:
        fail_msg(f"usage: {exc}")
        emit({"ok": False, "command": command, "error": f"usage: {exc}"})
        return EXIT_USAGE
    except CheckFailed as exc:
        msg = exc.args[0] if exc.args else "check failed"
        summary = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        summary.update({"ok": False, "command": command, "error": msg})
        fail_msg(msg)
        emit(summary)
        return EXIT_FAIL
    except Exception as exc:  # pylint: disable=broad-exception-caught
        traceback.print_exc(file=sys.stderr)
        msg = f"{type(exc).__name__}: {exc}"
        fail_msg(f"error: {msg}")
        emit({"ok": False, "command": command, "error": msg})
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
