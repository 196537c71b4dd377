#!/usr/bin/env python3
"""Reads a Tessera result file with the community readers and prints what they see as JSON.

    formats_check.py FORMAT PATH

FORMAT is one of votable, fits, parquet, csv, tsv, json. The readers are astropy
(VOTable with verify="exception", so any astropy warning about the document fails the read;
FITS through Table.read, so TNULL values come back masked), pyarrow (Parquet, with the
VOParquet metadata parsed by astropy), Python's csv module (CSV, RFC 4180) and json.

Output, one JSON object on stdout:

    {"names": [...], "fields": [{"name", "datatype", "arraysize", "unit", "ucd", "utype",
     "xtype", "description"}, ...] (VOTable and VOParquet), "rows": [[...], ...],
     "status": [...QUERY_STATUS values...] (VOTable), "overflow": bool (FITS, JSON),
     "extra": {...}}

Values are canonical: null for masked/None, floats as numbers except "NaN", "+Inf", "-Inf",
byte strings of text columns decoded as UTF-8 (FITS `A` columns with trailing NULs removed),
other byte strings and arrays as lists. CSV and TSV values are the field strings (TSV
backslash escapes undone); the caller interprets them.
"""

import json
import math
import sys
import warnings


def canon(v):
    import numpy as np

    if v is None or v is np.ma.masked:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "+Inf" if f > 0 else "-Inf"
        return f
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return list(v)
    if isinstance(v, np.ma.MaskedArray):
        return [None if m else canon(x) for x, m in zip(v.data.tolist(), np.ma.getmaskarray(v))]
    if isinstance(v, (np.ndarray, list, tuple)):
        return [canon(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    return str(v)


def field_meta(f):
    return {
        "name": f.name,
        "ID": f.ID,
        "datatype": f.datatype,
        "arraysize": f.arraysize,
        "unit": None if f.unit is None else str(f.unit),
        "ucd": f.ucd,
        "utype": f.utype,
        "xtype": f.xtype,
        "description": f.description,
    }


def read_votable(path):
    from astropy.io.votable import parse

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vot = parse(path, verify="exception")
    res = vot.resources[0]
    status = [i.value for i in res.infos if i.name == "QUERY_STATUS"]
    status_text = [i.content for i in res.infos if i.name == "QUERY_STATUS"]
    if not res.tables:
        return {"names": [], "rows": [], "status": status, "status_text": status_text}
    table = res.tables[0]
    arr = table.array
    names = [f.name for f in table.fields]
    rows = []
    for r in range(len(arr)):
        row = []
        for k, f in enumerate(table.fields):
            col = arr[f.ID or f.name]
            masked = bool(np.ma.getmaskarray(col)[r]) if col.ndim == 1 else False
            if masked:
                row.append(None)
                continue
            v = col[r]
            if isinstance(v, np.ma.MaskedArray) and v.mask is not np.ma.nomask and np.all(v.mask) and f.datatype != "char":
                row.append(None)
                continue
            row.append(canon(v))
        rows.append(row)
    return {
        "names": names,
        "fields": [field_meta(f) for f in table.fields],
        "rows": rows,
        "status": status,
        "status_text": status_text,
        "table_name": table.name,
        "version": vot.version,
    }


def read_fits(path):
    from astropy.io import fits
    from astropy.table import Table

    with fits.open(path) as hdul:
        hdul.verify("exception")
        hdr = dict(hdul[1].header)
    t = Table.read(path, hdu=1, character_as_bytes=True)
    names = list(t.colnames)
    rows = []
    for r in range(len(t)):
        row = []
        for n in names:
            col = t[n]
            v = col[r]
            if col.dtype.kind == "S":
                if hasattr(col, "mask") and np.ma.getmaskarray(col)[r]:
                    row.append(None)
                else:
                    raw = col.data[r]
                    row.append(bytes(raw).rstrip(b"\0").decode("utf-8"))
                continue
            if hasattr(col, "mask") and col.ndim == 1 and np.ma.getmaskarray(col)[r]:
                row.append(None)
                continue
            row.append(canon(v))
        rows.append(row)
    keys = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hdr.items()}
    return {"names": names, "rows": rows, "overflow": bool(hdr.get("OVERFLOW", False)), "extra": keys}


def read_parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.io.votable import parse
    import io

    t = pq.read_table(path)
    kv = pq.read_metadata(path).metadata or {}
    version = kv.get(b"IVOA.VOTable-Parquet.version", b"").decode()
    content = kv.get(b"IVOA.VOTable-Parquet.content", b"").decode()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vot = parse(io.BytesIO(content.encode()), verify="exception")
    fields = [field_meta(f) for f in vot.get_first_table().fields]
    cols = []
    for i, f in enumerate(t.schema):
        c = t.column(i)
        if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type):
            c = c.cast(pa.int64() if pa.types.is_timestamp(f.type) else pa.int32())
        cols.append(c.to_pylist())
    rows = [[canon(c[r]) for c in cols] for r in range(t.num_rows)]
    return {
        "names": t.schema.names,
        "fields": fields,
        "rows": rows,
        "extra": {"version": version, "types": [str(f.type) for f in t.schema]},
    }


def read_csv(path):
    import csv
    from astropy.io import ascii

    with open(path, newline="", encoding="utf-8") as fh:
        data = list(csv.reader(fh, strict=True))
    # astropy must read the file too (same row count).
    t = ascii.read(path, format="csv")
    assert len(t) == len(data) - 1, (len(t), len(data))
    return {"names": data[0], "rows": data[1:]}


def unescape_tsv(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    rows = [[unescape_tsv(x) for x in line.split("\t")] for line in lines]
    return {"names": rows[0], "rows": rows[1:]}


def read_json(path):
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    return {
        "names": [m["name"] for m in doc["metadata"]],
        "fields": doc["metadata"],
        "rows": doc["data"],
        "overflow": doc["overflow"],
        "extra": {k: v for k, v in doc.items() if k not in ("metadata", "data")},
    }


if __name__ == "__main__":
    import numpy as np  # noqa: F401  (used by the readers)

    fmt, path = sys.argv[1], sys.argv[2]
    reader = {
        "votable": read_votable,
        "fits": read_fits,
        "parquet": read_parquet,
        "csv": read_csv,
        "tsv": read_tsv,
        "json": read_json,
    }[fmt]
    print(json.dumps(reader(path), allow_nan=False))
