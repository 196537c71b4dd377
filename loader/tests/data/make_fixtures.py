#!/usr/bin/env python3
"""Generates the FITS and VOTable test fixtures of the Tessera loader readers.

The fixtures are written by real tools (astropy), so the readers are tested against what
astronomers' software actually produces. Regenerate with pinned versions:

    python3 -m venv /tmp/fixvenv
    /tmp/fixvenv/bin/pip install astropy==8.0.2 numpy==2.4.6
    /tmp/fixvenv/bin/python loader/tests/data/make_fixtures.py

(run from the workspace root, or pass the output directory as the first argument). The output
is deterministic for those versions. The expected values asserted by the Rust unit tests in
loader/src/read/fits.rs and loader/src/read/votable.rs are the ones written here; change both
together.

Files:

fits_types.fits       every TFORM type, TSCAL/TZERO (unsigned and linear), TNULL, P/Q arrays,
                      TUNIT/TUCD/TCOMM, a TTYPE comment, a CONTINUE long string; 4 rows.
                      Row 3 (1-based) of the L column is patched to byte 0 (FITS null logical).
fits_many.fits        2000 rows (id K, ra D, PJ arrays) for multi-batch streaming and the heap.
fits_after_image.fits a primary image, an IMAGE extension and an ASCII TABLE before the
                      BINTABLE, which the reader must skip.
votable_tabledata.xml, votable_binary2.xml, votable_binary.xml
                      the same 4-row table in the three serialisations (values below).
"""

import os
import sys

import numpy as np
from astropy.io import fits
from astropy.io.votable import parse
from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("loader", "tests", "data")


def fits_types(path):
    n = 4
    cols = [
        fits.Column(name="flag", format="L", array=np.array([True, False, True, True])),
        fits.Column(name="flags3", format="3L", array=np.array([[True, False, True]] * n)),
        fits.Column(name="bit", format="X", array=np.array([[1], [0], [1], [0]], dtype=bool)),
        fits.Column(
            name="bits10",
            format="10X",
            array=np.array([[i % 2 == 0 for i in range(10)], [i < 3 for i in range(10)]] * 2),
        ),
        fits.Column(name="u8", format="B", array=np.array([0, 1, 200, 255], dtype=np.uint8), null=255),
        fits.Column(name="u8x3", format="3B", array=np.array([[1, 2, 3]] * n, dtype=np.uint8)),
        fits.Column(name="i8", format="B", bzero=-128, array=np.array([-128, -1, 0, 127], dtype=np.int8)),
        fits.Column(name="i16", format="I", array=np.array([-32768, -1, 0, 32767], dtype=np.int16)),
        fits.Column(name="u16", format="I", bzero=32768, null=-32768,
                    array=np.array([0, 1, 40000, 65535], dtype=np.uint16)),
        fits.Column(name="i32", format="J", null=-999, array=np.array([1, -999, 123456, -2147483648], dtype=np.int32)),
        fits.Column(name="u32", format="J", bzero=2147483648, array=np.array([0, 1, 3000000000, 4294967295], dtype=np.uint32)),
        fits.Column(name="i64", format="K", array=np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64)),
        fits.Column(name="u64", format="K", bzero=2**63,
                    array=np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)),
        # Stored 0, 1, -20, 20; TSCAL/TZERO are added to the header below (astropy 8 cannot
        # scale a float array back into J on write), giving physical 10, 10.5, 0, 20.
        fits.Column(name="scaled", format="J", array=np.array([0, 1, -20, 20], dtype=np.int32)),
        fits.Column(name="name", format="8A", array=np.array(["alpha", "b", "", "12345678"])),
        fits.Column(name="e", format="E", unit="mag", array=np.array([1.5, np.nan, -2.25, 3.0e10], dtype=np.float32)),
        fits.Column(name="ra", format="D", unit="deg", array=np.array([10.0, 20.5, 359.999999, 0.0])),
        fits.Column(name="e2", format="2E", array=np.array([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=np.float32)),
        fits.Column(name="j2", format="2J", array=np.array([[1, -1], [2, -2], [3, -3], [4, -4]], dtype=np.int32)),
        fits.Column(name="c", format="C", array=np.array([1 + 2j, -1.5j, 0, 3], dtype=np.complex64)),
        fits.Column(name="m", format="M", array=np.array([1 + 2j, -1.5j, 0, 3], dtype=np.complex128)),
        fits.Column(
            name="pj",
            format="PJ()",
            array=np.array([np.array([1, 2, 3]), np.array([], dtype=np.int32), np.array([42]), np.array([-7, 8])],
                           dtype=object),
        ),
        fits.Column(
            name="qd",
            format="QD()",
            array=np.array([np.array([0.5]), np.array([1.0, 2.0]), np.array([], dtype=np.float64), np.array([np.nan])],
                           dtype=object),
        ),
        fits.Column(name="pa", format="PA()", array=np.array(["var", "", "longer string", "x"], dtype=object)),
    ]
    hdu = fits.BinTableHDU.from_columns(cols)
    h = hdu.header
    # Metadata beyond what astropy's Column writes.
    idx = {c.name: i + 1 for i, c in enumerate(cols)}
    ra = idx["ra"]
    h[f"TSCAL{idx['scaled']}"] = 0.5
    h[f"TZERO{idx['scaled']}"] = 10.0
    h[f"TUCD{ra}"] = "pos.eq.ra;meta.main"
    h[f"TCOMM{ra}"] = "Right ascension (ICRS)"
    h.comments[f"TTYPE{idx['e']}"] = "magnitude from TTYPE comment"
    h[f"TCOMM{idx['name']}"] = (
        "A description long enough that astropy has to split it over CONTINUE cards, "
        "with a quote ' inside"
    )
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
    # Patch row 3 of `flag` to 0: the FITS null logical, which astropy cannot write.
    with fits.open(path) as hl:
        data_loc = hl.fileinfo(1)["datLoc"]
        row_len = hl[1].header["NAXIS1"]
    with open(path, "r+b") as f:
        f.seek(data_loc + 2 * row_len + 0)  # `flag` is the first column
        f.write(b"\0")


def fits_many(path):
    n = 2000
    ids = np.arange(1, n + 1, dtype=np.int64)
    ra = ids * 0.1
    arrs = np.array([np.arange(i % 5, dtype=np.int32) + int(i) for i in ids], dtype=object)
    cols = [
        fits.Column(name="id", format="K", array=ids),
        fits.Column(name="ra", format="D", array=ra),
        fits.Column(name="arr", format="PJ()", array=arrs),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path, overwrite=True)


def fits_after_image(path):
    primary = fits.PrimaryHDU(np.arange(100, dtype=np.int16).reshape(10, 10))
    image = fits.ImageHDU(np.ones((3, 7), dtype=np.float64), name="IMG")
    ascii_tab = fits.TableHDU.from_columns([fits.Column(name="x", format="I5", array=np.array([1, 2]))])
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="id", format="J", array=np.array([7, 8, 9], dtype=np.int32))]
    )
    fits.HDUList([primary, image, ascii_tab, table]).writeto(path, overwrite=True)


def votables(out):
    vot = VOTableFile()
    res = Resource()
    vot.resources.append(res)
    t = TableElement(vot, name="sample")
    res.tables.append(t)
    F = lambda **kw: Field(vot, **kw)  # noqa: E731
    t.fields.extend(
        [
            F(name="ra", datatype="double", unit="deg", ucd="pos.eq.ra;meta.main", utype="stc:Pos.ra"),
            F(name="dec", datatype="double", unit="deg", ucd="pos.eq.dec;meta.main"),
            F(name="flag", datatype="boolean"),
            F(name="u8", datatype="unsignedByte"),
            F(name="i16", datatype="short"),
            F(name="i32", datatype="int"),
            F(name="i64", datatype="long"),
            F(name="mag", datatype="float", unit="mag"),
            F(name="name", datatype="char", arraysize="*"),
            F(name="uname", datatype="unicodeChar", arraysize="*"),
            F(name="code", datatype="char", arraysize="4"),
            F(name="vec3", datatype="int", arraysize="3"),
            F(name="var", datatype="double", arraysize="*"),
            F(name="cf", datatype="floatComplex"),
            F(name="cd", datatype="doubleComplex"),
            F(name="bits", datatype="bit", arraysize="5"),
        ]
    )
    t.fields[0].description = "Right ascension"
    t.fields[5].values.null = -999
    t.create_arrays(4)
    a = t.array
    rows = [
        (10.0, -5.5, True, 0, -32768, 1, -(2**63), 1.5, "alpha", "\u00e9t\u00e9", "AB", [1, 2, 3], [0.5, 1.5],
         1 + 2j, 3 - 4j, [True, False, True, False, True]),
        (20.5, 0.0, False, 255, 32767, -999, 2**63 - 1, np.nan, "", "x", "ABCD", [4, 5, 6], [],
         0j, -1j, [False] * 5),
        (30.25, 89.9, False, 7, -1, 123456, 0, -2.25, "b & <c>", "\u4e2d\u6587", "", [7, 8, 9], [np.nan],
         -1.5 + 0j, 2.5 + 2.5j, [True] * 5),
        (0.0, -89.9, True, 1, 0, 2, 5, 3.0e10, "last", "", "Z", [-1, 0, 1], [1.0, 2.0, 3.0],
         0.25 + 0.5j, 1e100 + 0j, [False, True, False, True, False]),
    ]
    for i, r in enumerate(rows):
        a[i] = r
    # Nulls: row 2 flag, row 3 u8 (masked), row 4 i16, row 2 i32 (VALUES null), row 4 name.
    a.mask["flag"][1] = True
    a.mask["u8"][2] = True
    a.mask["i16"][3] = True
    a.mask["i32"][1] = True
    a.mask["name"][3] = True
    a.mask["mag"][1] = True
    td = os.path.join(out, "votable_tabledata.xml")
    vot.to_xml(td, tabledata_format="tabledata")
    # astropy's binary writers need variable-length cells as masked arrays, which is what its
    # parser produces: write the binary forms from the parsed TABLEDATA document.
    parsed = parse(td)
    parsed.to_xml(os.path.join(out, "votable_binary2.xml"), tabledata_format="binary2")
    # BINARY has no null flags: masked integers need VALUES null values there.
    fields = parsed.get_first_table().fields
    fields[3].values.null = 99  # u8
    fields[4].values.null = -99  # i16
    parsed.to_xml(os.path.join(out, "votable_binary.xml"), tabledata_format="binary")


def main():
    os.makedirs(OUT, exist_ok=True)
    fits_types(os.path.join(OUT, "fits_types.fits"))
    fits_many(os.path.join(OUT, "fits_many.fits"))
    fits_after_image(os.path.join(OUT, "fits_after_image.fits"))
    votables(OUT)


if __name__ == "__main__":
    main()
