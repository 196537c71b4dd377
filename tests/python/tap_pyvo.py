"""pyvo (and astropy/pyarrow) against a running Tessera TAP service.

Usage: python tap_pyvo.py http://127.0.0.1:PORT/tap

Runs what an astronomer's script does: capabilities, tables, sync queries with MAXREC
overflow, error reporting, the async lifecycle (submit, run, wait, fetch, delete), an
inline upload joined and crossmatched with a catalogue, the DALI examples, and every
RESPONSEFORMAT read back with astropy/pyarrow and compared value by value. Prints one JSON
line {"ok": true, "checks": [...]} or exits non-zero with the failed check.
"""

import io
import json
import sys

import numpy as np
import pyarrow.parquet as pq
import pyvo
import requests
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.table import Table

base = sys.argv[1].rstrip("/")
tap = pyvo.dal.TAPService(base)
checks = []


def check(name, cond, detail=""):
    if not cond:
        print(json.dumps({"ok": False, "failed": name, "detail": str(detail)[:2000]}))
        sys.exit(1)
    checks.append(name)


# --- capabilities -------------------------------------------------------------------------
caps = tap.capabilities
check("capabilities", len(caps) > 0)
langs = [lang for c in caps if getattr(c, "languages", None) for lang in c.languages]
adql = [lang for lang in langs if lang.name.upper() == "ADQL"]
check("adql language", adql, langs)
versions = {v.ivo_id for v in adql[0].versions}
check("adql versions", "ivo://ivoa.net/std/ADQL#v2.0" in versions, versions)
check("maxrec", tap.maxrec and tap.maxrec > 0, tap.maxrec)
check("hardlimit", tap.hardlimit and tap.hardlimit >= tap.maxrec, tap.hardlimit)
methods = [m.ivo_id for m in tap.upload_methods]
check("upload methods", "ivo://ivoa.net/std/TAPRegExt#upload-inline" in methods, methods)

# --- tables ----------------------------------------------------------------------------------
names = [t.name for t in tap.tables]
check("tables list", "hipparcos.hip2" in names and "TAP_SCHEMA.tables" in names, names)
hip = tap.tables["hipparcos.hip2"]
cols = [c.name for c in hip.columns]
check("table columns", "ra" in cols and "dec" in cols and "HIP" in cols, cols)
ts = tap.run_sync("SELECT table_name FROM TAP_SCHEMA.tables").to_table()
check("TAP_SCHEMA.tables", set(ts["table_name"]) == set(names), (list(ts["table_name"]), names))

# --- sync ------------------------------------------------------------------------------------
r = tap.run_sync("SELECT TOP 10 HIP, ra, dec FROM hipparcos.hip2 ORDER BY HIP", maxrec=3)
check("maxrec rows", len(r) == 3, len(r))
check("overflow flagged", r.query_status == "OVERFLOW", r.query_status)
r = tap.run_sync("SELECT TOP 3 HIP FROM hipparcos.hip2 ORDER BY HIP")
check("no overflow", r.query_status == "OK" and list(r.to_table()["HIP"]) == [1, 2, 3], r.to_table())
cone = tap.run_sync(
    "SELECT HIP, ra, dec FROM hipparcos.hip2 "
    "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 1.0))"
).to_table()
check("cone", 10 < len(cone) < 500, len(cone))
ra, dec = np.radians(cone["ra"]), np.radians(cone["dec"])
d = np.degrees(np.arccos(np.clip(np.sin(dec) * np.sin(np.radians(24.12))
                                 + np.cos(dec) * np.cos(np.radians(24.12)) * np.cos(ra - np.radians(56.75)), -1, 1)))
check("cone inside", bool(np.all(d <= 1.0 + 1e-9)), d.max())

try:
    tap.run_sync("SELEC ra FROM hipparcos.hip2")
    check("syntax error raises", False)
except pyvo.dal.DALQueryError as e:
    check("syntax error raises", "syntax" in str(e).lower(), e)
try:
    tap.run_sync("SELECT ra FROM hipparcos.nosuch")
    check("unknown table raises", False)
except pyvo.dal.DALQueryError as e:
    check("unknown table raises", "unknown table" in str(e).lower(), e)

# --- async -----------------------------------------------------------------------------------
job = tap.submit_job("SELECT TOP 7 HIP, ra FROM hipparcos.hip2 ORDER BY HIP", maxrec=5)
check("async pending", job.phase == "PENDING", job.phase)
job.run()
job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
job.raise_if_error()
check("async completed", job.phase == "COMPLETED", job.phase)
tbl = job.fetch_result().to_table()
check("async rows", list(tbl["HIP"]) == [1, 2, 3, 4, 5], tbl)
url = job.url
listed = requests.get(base + "/async", timeout=30).text
check("async listed", job.job_id in listed, listed[:500])
job.delete()
check("async deleted", requests.get(url, timeout=30).status_code == 404)
bad = tap.submit_job("SELECT nosuchcolumn FROM hipparcos.hip2")
bad.run()
bad.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
check("async error phase", bad.phase == "ERROR", bad.phase)
try:
    bad.raise_if_error()
    check("async error raised", False)
except pyvo.dal.DALQueryError as e:
    check("async error raised", "nosuchcolumn" in str(e), e)
bad.delete()

# --- upload ----------------------------------------------------------------------------------
stars = tap.run_sync("SELECT TOP 4 HIP, ra, dec FROM hipparcos.hip2 ORDER BY HIP").to_table()
up = Table({"id": [10, 20, 30, 40], "ra": list(stars["ra"]), "dec": list(stars["dec"])})
res = tap.run_sync(
    "SELECT u.id, h.HIP FROM TAP_UPLOAD.mine AS u JOIN hipparcos.hip2 AS h "
    "ON 1 = CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600)) ORDER BY u.id",
    uploads={"mine": up},
).to_table()
check("upload crossmatch", list(res["id"]) == [10, 20, 30, 40] and list(res["HIP"]) == [1, 2, 3, 4], res)
res = tap.run_sync("SELECT COUNT(*) AS n FROM TAP_UPLOAD.t", uploads={"t": up}).to_table()
check("upload count", int(res["n"][0]) == 4, res)
job = tap.submit_job("SELECT id FROM TAP_UPLOAD.t ORDER BY id", uploads={"t": up})
job.run()
job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
job.raise_if_error()
check("async upload", list(job.fetch_result().to_table()["id"]) == [10, 20, 30, 40])
job.delete()

# CSV and VOParquet uploads (multipart, as any HTTP client sends them) and an upload by URL
# from a server on 127.0.0.1 (the service fetches it).
import http.server
import threading

import pyarrow as pa

csv_bytes = b"id,ra,dec\n" + b"".join(
    f"{i},{r},{d}\n".encode() for i, r, d in zip(up["id"], up["ra"], up["dec"]))
pq_buf = io.BytesIO()
pq.write_table(pa.table({"id": list(up["id"]), "ra": list(up["ra"]), "dec": list(up["dec"])}), pq_buf)
xq = ("SELECT u.id, h.HIP FROM TAP_UPLOAD.t AS u JOIN hipparcos.hip2 AS h "
      "ON 1 = CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600)) ORDER BY u.id")
for label, payload, ctype in [("csv", csv_bytes, "text/csv"),
                              ("parquet", pq_buf.getvalue(), "application/vnd.apache.parquet")]:
    resp = requests.post(base + "/sync", data={"LANG": "ADQL", "QUERY": xq, "UPLOAD": "t,param:tab",
                                               "RESPONSEFORMAT": "csv"},
                         files={"tab": ("t." + label, payload, ctype)}, timeout=60)
    check("upload " + label, resp.status_code == 200
          and resp.text.splitlines() == ["id,HIP", "10,1", "20,2", "30,3", "40,4"], resp.text[:500])


class Csv(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(csv_bytes)))
        self.end_headers()
        self.wfile.write(csv_bytes)

    def log_message(self, *a):
        pass


httpd = http.server.HTTPServer(("127.0.0.1", 0), Csv)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
resp = requests.get(base + "/sync", params={
    "LANG": "ADQL", "QUERY": xq, "RESPONSEFORMAT": "csv",
    "UPLOAD": f"t,http://127.0.0.1:{httpd.server_port}/t.csv"}, timeout=60)
check("upload url", resp.status_code == 200 and resp.text.splitlines()[1:] == ["10,1", "20,2", "30,3", "40,4"],
      resp.text[:500])
httpd.shutdown()
resp = requests.post(base + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                           "UPLOAD": "t,param:missing"}, timeout=60)
check("upload missing part", resp.status_code == 400 and "missing" in resp.text, resp.text[:300])
resp = requests.post(base + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "t,param:tab"},
                     files={"tab": ("t.vot", b"<VOTABLE><RESOURCE><TABLE><FIELD name='a' datatype='int'/><DATA><TABLEDATA><TR><TD>x</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>", "text/xml")},
                     timeout=60)
check("upload malformed", resp.status_code == 400 and "QUERY_STATUS" in resp.text and "UPLOAD table `t`" in resp.text,
      resp.text[:500])

# --- examples --------------------------------------------------------------------------------
ex = tap.examples
check("examples", len(ex) >= 3, len(ex))
for e in ex:
    out = e.execute()
    check("example runs: " + e["QUERY"][:40], len(out) > 0, e["QUERY"])

# --- every format, same values -----------------------------------------------------------
q = ("SELECT TOP 50 HIP, ra, dec, Hpmag, e_Plx FROM hipparcos.hip2 ORDER BY HIP")
ref = tap.run_sync(q).to_table()


def fetch(fmt):
    resp = requests.post(base + "/sync", data={"LANG": "ADQL", "QUERY": q, "RESPONSEFORMAT": fmt}, timeout=60)
    check("format status " + fmt, resp.status_code == 200, resp.text[:300])
    return resp


def same(name, got):
    for c in ["HIP", "ra", "dec", "Hpmag", "e_Plx"]:
        a = np.asarray(ref[c], dtype=float)
        b = np.asarray(got[c], dtype=float)
        check(f"{name} {c}", np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True), (a[:3], b[:3]))


same("votable/td", parse_single_table(io.BytesIO(fetch("votable/td").content)).to_table())
same("binary2", parse_single_table(io.BytesIO(
    fetch("application/x-votable+xml;serialization=BINARY2").content)).to_table())
same("csv", Table.read(fetch("csv").text, format="ascii.csv"))
same("tsv", Table.read(fetch("tsv").text, format="ascii.tab"))
js = fetch("json").json()
names_js = [m["name"] for m in js["metadata"]]
same("json", {n: [row[i] for row in js["data"]] for i, n in enumerate(names_js)})
with fits.open(io.BytesIO(fetch("fits").content)) as hdul:
    same("fits", Table(hdul[1].data))
same("parquet", pq.read_table(io.BytesIO(fetch("parquet").content)).to_pydict())

print(json.dumps({"ok": True, "checks": checks}))
