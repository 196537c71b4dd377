//! VOTable 1.4 results: TABLEDATA and BINARY2, and the DALI error document.
//!
//! Document shape (TAP 1.1 §5, DALI 1.1 §4.4):
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
//! <RESOURCE type="results">
//! <INFO name="QUERY_STATUS" value="OK"/>
//! <TABLE name="result">
//! <FIELD name="ra" ID="ra" datatype="double" unit="deg" ucd="pos.eq.ra">
//! <DESCRIPTION>Right ascension</DESCRIPTION>
//! </FIELD>
//! <DATA><BINARY2><STREAM encoding="base64">…</STREAM></BINARY2></DATA>
//! </TABLE>
//! <INFO name="QUERY_STATUS" value="OVERFLOW"/>      <!-- only when rows were cut -->
//! </RESOURCE>
//! </VOTABLE>
//! ```
//!
//! The namespace is the 1.3 one and there is no `xsi:schemaLocation`: STILTS 3.4 and astropy
//! validate against their bundled schemas (`../shared/spec/CLIENTS.md` §0).
//!
//! Nulls: TABLEDATA writes an empty `<TD/>`, except for fixed-size arrays (points, circles),
//! written all NaN because `stilts votlint` 3.4.7 rejects an empty TD for those xtypes; BINARY2 sets the row's null-mask bit and writes
//! NaN for floating-point values (and as items of null arrays), zero for integers, `?` for
//! booleans and an empty array for variable-length values. Fixed-size arrays (points,
//! circles) whose value has another length are padded with NaN or cut to the declared size.
//!
//! Text columns are `unicodeChar` (see [`super::columns`]): UTF-16 in BINARY2, XML text in
//! TABLEDATA; timestamps are ASCII `char`. In XML, characters
//! XML 1.0 forbids (control characters other than tab, newline and carriage return,
//! U+FFFE/U+FFFF) are replaced by U+FFFD, while BINARY2 carries the bytes unchanged.

use std::io::Write;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::columns::{
    Col, ColSpec, Kind, Prepared, col_specs, prepare, push_f32, push_f64, push_int, push_list,
};
use super::{FormatError, ResultWriter, WriterOptions};

/// The VOTable serialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serialization {
    /// `<TABLEDATA>` rows of `<TD>` text.
    Tabledata,
    /// `<BINARY2><STREAM encoding="base64">` with a null mask per row.
    Binary2,
}

const PROLOGUE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n";

/// Bytes encoded per base64 line (76 characters, the MIME line length).
const B64_LINE: usize = 57;

/// Appends `s` escaped for XML text and attribute values (`&`, `<`, `>`, `"`, and in
/// attributes tab/newline/return as character references so they survive attribute-value
/// normalisation); characters XML 1.0 forbids become U+FFFD.
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str, attribute: bool) {
    let b = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let rep: Option<&[u8]> = match c {
            b'&' => Some(b"&amp;"),
            b'<' => Some(b"&lt;"),
            b'>' => Some(b"&gt;"),
            b'"' => Some(b"&quot;"),
            b'\t' if attribute => Some(b"&#9;"),
            b'\n' if attribute => Some(b"&#10;"),
            b'\r' => Some(b"&#13;"),
            b'\t' | b'\n' => None,
            0..=0x1f => Some("\u{FFFD}".as_bytes()),
            // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters either.
            0xEF if b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)) => {
                out.extend_from_slice(&b[start..i]);
                out.extend_from_slice("\u{FFFD}".as_bytes());
                i += 3;
                start = i;
                continue;
            }
            _ => None,
        };
        if let Some(r) = rep {
            out.extend_from_slice(&b[start..i]);
            out.extend_from_slice(r);
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&b[start..]);
}

fn attr(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    escape_into(out, value, true);
    out.push(b'"');
}

fn info(out: &mut Vec<u8>, name: &str, value: &str, content: Option<&str>) {
    out.extend_from_slice(b"<INFO");
    attr(out, "name", name);
    attr(out, "value", value);
    match content {
        Some(c) => {
            out.push(b'>');
            escape_into(out, c, false);
            out.extend_from_slice(b"</INFO>\n");
        }
        None => out.extend_from_slice(b"/>\n"),
    }
}

/// Appends the `FIELD` elements of the columns.
pub(crate) fn fields(out: &mut Vec<u8>, specs: &[ColSpec]) {
    for s in specs {
        out.extend_from_slice(b"<FIELD");
        attr(out, "name", &s.name);
        attr(out, "ID", &s.id);
        attr(out, "datatype", s.kind.datatype());
        if let Some(a) = s.kind.arraysize() {
            attr(out, "arraysize", &a);
        }
        for (k, v) in [
            ("unit", &s.unit),
            ("ucd", &s.ucd),
            ("utype", &s.utype),
            ("xtype", &s.xtype),
        ] {
            if let Some(v) = v {
                attr(out, k, v);
            }
        }
        match &s.description {
            Some(d) => {
                out.extend_from_slice(b">\n<DESCRIPTION>");
                escape_into(out, d, false);
                out.extend_from_slice(b"</DESCRIPTION>\n</FIELD>\n");
            }
            None => out.extend_from_slice(b"/>\n"),
        }
    }
}

/// The VOTable describing `schema` without data, as VOParquet stores it in
/// `IVOA.VOTable-Parquet.content`.
pub(crate) fn metadata_document(schema: &Schema, table_name: &str) -> String {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(PROLOGUE.as_bytes());
    out.extend_from_slice(b"<RESOURCE type=\"results\">\n<TABLE");
    attr(&mut out, "name", table_name);
    out.extend_from_slice(b">\n");
    fields(&mut out, &col_specs(schema));
    out.extend_from_slice(b"</TABLE>\n</RESOURCE>\n</VOTABLE>\n");
    String::from_utf8_lossy(&out).into_owned()
}

/// A complete VOTable error document (DALI): a `results` RESOURCE holding only
/// `<INFO name="QUERY_STATUS" value="ERROR">message</INFO>`. Its content type is
/// `application/x-votable+xml`.
pub fn error_document(message: &str) -> String {
    let mut out = Vec::with_capacity(256 + message.len());
    out.extend_from_slice(PROLOGUE.as_bytes());
    out.extend_from_slice(b"<RESOURCE type=\"results\">\n");
    info(&mut out, "QUERY_STATUS", "ERROR", Some(message));
    out.extend_from_slice(b"</RESOURCE>\n</VOTABLE>\n");
    String::from_utf8_lossy(&out).into_owned()
}

/// Streaming VOTable writer (see the module documentation).
#[derive(Debug)]
pub struct VoTableWriter<W> {
    out: W,
    specs: Vec<ColSpec>,
    ser: Serialization,
    /// Encoded text waiting for the output.
    buf: Vec<u8>,
    /// BINARY2 bytes not yet base64-encoded (fewer than one line's worth between batches).
    raw: Vec<u8>,
    /// RESOURCE elements written after the results (DataLink service descriptors).
    resources: Vec<String>,
}

impl<W: Write + Send> VoTableWriter<W> {
    /// Writes the document header up to the opening of the data.
    pub fn new(
        out: W,
        schema: &SchemaRef,
        ser: Serialization,
        options: &WriterOptions,
    ) -> Result<Self, FormatError> {
        let specs = col_specs(schema);
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(PROLOGUE.as_bytes());
        buf.extend_from_slice(b"<RESOURCE type=\"results\">\n");
        info(&mut buf, "QUERY_STATUS", "OK", None);
        for (k, v) in &options.infos {
            info(&mut buf, k, v, None);
        }
        buf.extend_from_slice(b"<TABLE");
        attr(&mut buf, "name", &options.table_name);
        buf.extend_from_slice(b">\n");
        fields(&mut buf, &specs);
        buf.extend_from_slice(match ser {
            Serialization::Tabledata => b"<DATA>\n<TABLEDATA>\n".as_slice(),
            Serialization::Binary2 => b"<DATA>\n<BINARY2>\n<STREAM encoding=\"base64\">\n",
        });
        let mut w = VoTableWriter {
            out,
            specs,
            ser,
            buf,
            raw: Vec::new(),
            resources: options.resources.clone(),
        };
        w.flush_buf()?;
        Ok(w)
    }

    fn flush_buf(&mut self) -> Result<(), FormatError> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Base64-encodes whole lines of `raw` (all of it, padded, when `last`).
    fn encode_raw(&mut self, last: bool) -> Result<(), FormatError> {
        let full = self.raw.len() / B64_LINE * B64_LINE;
        let lines = full / B64_LINE;
        let mut at = self.buf.len();
        self.buf.resize(at + lines * 77, 0);
        for chunk in self.raw[..full].chunks_exact(B64_LINE) {
            let n = STANDARD
                .encode_slice(chunk, &mut self.buf[at..at + 76])
                .map_err(std::io::Error::other)?;
            debug_assert_eq!(n, 76);
            self.buf[at + 76] = b'\n';
            at += 77;
        }
        self.raw.drain(..full);
        if last && !self.raw.is_empty() {
            let s = STANDARD.encode(&self.raw);
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'\n');
            self.raw.clear();
        }
        Ok(())
    }

    /// Closes the data and the table.
    fn close_table(&mut self) -> Result<(), FormatError> {
        match self.ser {
            Serialization::Tabledata => self.buf.extend_from_slice(b"</TABLEDATA>\n"),
            Serialization::Binary2 => {
                self.encode_raw(true)?;
                self.buf.extend_from_slice(b"</STREAM>\n</BINARY2>\n");
            }
        }
        self.buf.extend_from_slice(b"</DATA>\n</TABLE>\n");
        Ok(())
    }

    fn end(mut self, status: Option<(&str, Option<&str>)>) -> Result<W, FormatError> {
        self.close_table()?;
        if let Some((value, message)) = status {
            info(&mut self.buf, "QUERY_STATUS", value, message);
        }
        self.buf.extend_from_slice(b"</RESOURCE>\n");
        for r in &self.resources {
            self.buf.extend_from_slice(r.as_bytes());
        }
        self.buf.extend_from_slice(b"</VOTABLE>\n");
        self.flush_buf()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write + Send> ResultWriter<W> for VoTableWriter<W> {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let cols = prepare(&self.specs, batch)?;
        match self.ser {
            Serialization::Tabledata => {
                tabledata(&mut self.buf, &self.specs, &cols, batch.num_rows())
            }
            Serialization::Binary2 => {
                binary2(&mut self.raw, &self.specs, &cols, batch.num_rows());
                self.encode_raw(false)?;
            }
        }
        self.flush_buf()
    }

    fn finish(self: Box<Self>, overflow: bool) -> Result<W, FormatError> {
        self.end(overflow.then_some(("OVERFLOW", None)))
    }

    fn finish_error(self: Box<Self>, message: &str) -> Result<W, FormatError> {
        self.end(Some(("ERROR", Some(message))))
    }
}

/// Appends `<TR>` rows.
fn tabledata(out: &mut Vec<u8>, specs: &[ColSpec], cols: &[Prepared], rows: usize) {
    for i in 0..rows {
        out.extend_from_slice(b"<TR>");
        for (s, p) in specs.iter().zip(cols) {
            if p.is_null(i) {
                match s.kind {
                    // votlint 3.4.7 rejects an empty TD for point/circle xtypes.
                    Kind::Doubles(Some(n)) => {
                        out.extend_from_slice(b"<TD>NaN");
                        for _ in 1..n {
                            out.extend_from_slice(b" NaN");
                        }
                        out.extend_from_slice(b"</TD>");
                    }
                    _ => out.extend_from_slice(b"<TD/>"),
                }
                continue;
            }
            out.extend_from_slice(b"<TD>");
            match &p.col {
                Col::Bool(a) => out.push(if a.value(i) { b'T' } else { b'F' }),
                Col::I16(a) => push_int(out, a.value(i)),
                Col::I32(a) => push_int(out, a.value(i)),
                Col::I64(a) => push_int(out, a.value(i)),
                Col::F32(a) => push_f32(out, a.value(i)),
                Col::F64(a) => push_f64(out, a.value(i)),
                Col::Str(a) => escape_into(out, a.value(i), false),
                Col::Bin(a) => {
                    for (k, b) in a.value(i).iter().enumerate() {
                        if k > 0 {
                            out.push(b' ');
                        }
                        push_int(out, *b);
                    }
                }
                Col::List(l, v) => match s.kind {
                    Kind::Doubles(Some(n)) => {
                        let (a, b) = bounds(l, i);
                        for k in 0..n {
                            if k > 0 {
                                out.push(b' ');
                            }
                            let j = a + k;
                            if j < b && !v.is_null(j) {
                                push_f64(out, v.value(j));
                            } else {
                                out.extend_from_slice(b"NaN");
                            }
                        }
                    }
                    _ => push_list(out, l, v, i, b' '),
                },
            }
            out.extend_from_slice(b"</TD>");
        }
        out.extend_from_slice(b"</TR>\n");
    }
}

#[inline]
fn bounds(l: &arrow::array::ListArray, i: usize) -> (usize, usize) {
    let o = l.value_offsets();
    (o[i] as usize, o[i + 1] as usize)
}

/// Appends BINARY2 rows (unencoded): null mask, then each value big-endian.
fn binary2(out: &mut Vec<u8>, specs: &[ColSpec], cols: &[Prepared], rows: usize) {
    let mask_len = specs.len().div_ceil(8);
    for i in 0..rows {
        let m = out.len();
        out.resize(m + mask_len, 0);
        for (c, (s, p)) in specs.iter().zip(cols).enumerate() {
            let null = p.is_null(i);
            if null {
                out[m + c / 8] |= 0x80 >> (c % 8);
            }
            match &p.col {
                Col::Bool(a) => out.push(if null {
                    b'?'
                } else if a.value(i) {
                    b'T'
                } else {
                    b'F'
                }),
                Col::I16(a) => out.extend_from_slice(&a.values()[i].to_be_bytes()),
                Col::I32(a) => out.extend_from_slice(&a.values()[i].to_be_bytes()),
                Col::I64(a) => out.extend_from_slice(&a.values()[i].to_be_bytes()),
                Col::F32(a) => {
                    let v = if null { f32::NAN } else { a.values()[i] };
                    out.extend_from_slice(&v.to_be_bytes())
                }
                Col::F64(a) => {
                    let v = if null { f64::NAN } else { a.values()[i] };
                    out.extend_from_slice(&v.to_be_bytes())
                }
                Col::Str(a) => {
                    let v = if null { "" } else { a.value(i) };
                    if s.kind == Kind::Text {
                        push_utf16(out, v);
                    } else {
                        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                        out.extend_from_slice(v.as_bytes());
                    }
                }
                Col::Bin(a) => {
                    let v = if null { &[][..] } else { a.value(i) };
                    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    out.extend_from_slice(v);
                }
                Col::List(l, v) => {
                    let (a, b) = if null { (0, 0) } else { bounds(l, i) };
                    let n = match s.kind {
                        Kind::Doubles(Some(n)) => n,
                        _ => {
                            out.extend_from_slice(&((b - a) as u32).to_be_bytes());
                            b - a
                        }
                    };
                    for k in 0..n {
                        let j = a + k;
                        let x = if j < b && !v.is_null(j) {
                            v.value(j)
                        } else {
                            f64::NAN
                        };
                        out.extend_from_slice(&x.to_be_bytes());
                    }
                }
            }
        }
    }
}

/// Appends a BINARY2 `unicodeChar` array: the count of UTF-16 code units, then the units
/// big-endian (characters beyond U+FFFF as surrogate pairs, which STIL and astropy decode).
#[inline]
fn push_utf16(out: &mut Vec<u8>, v: &str) {
    if v.is_ascii() {
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        let at = out.len();
        out.resize(at + 2 * v.len(), 0);
        for (d, &b) in out[at..].chunks_exact_mut(2).zip(v.as_bytes()) {
            d[1] = b;
        }
    } else {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut n = 0u32;
        for u in v.encode_utf16() {
            out.extend_from_slice(&u.to_be_bytes());
            n += 1;
        }
        out[at..at + 4].copy_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str, attribute: bool) -> String {
        let mut v = Vec::new();
        escape_into(&mut v, s, attribute);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_markup_and_forbidden_characters() {
        assert_eq!(esc("a<b>&\"c\"", false), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(esc("x\ty\nz\r", false), "x\ty\nz&#13;");
        assert_eq!(esc("x\ty\nz", true), "x&#9;y&#10;z");
        assert_eq!(
            esc("a\u{1}b\u{FFFE}c\u{FFFF}é", false),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}é"
        );
        assert_eq!(esc("plain ünïcödé ✓", false), "plain ünïcödé ✓");
    }

    #[test]
    fn unicode_char_is_utf16_with_its_unit_count() {
        let mut v = Vec::new();
        push_utf16(&mut v, "ab");
        push_utf16(&mut v, "é🔭");
        assert_eq!(
            v,
            [
                0, 0, 0, 2, 0, b'a', 0, b'b', // ASCII
                0, 0, 0, 3, 0x00, 0xE9, 0xD8, 0x3D, 0xDD, 0x2D, // é, then a surrogate pair
            ]
        );
    }

    #[test]
    fn error_document_carries_the_message() {
        let d = error_document("syntax error at line 1, column 8: unexpected `<`");
        assert!(d.contains(
            "<INFO name=\"QUERY_STATUS\" value=\"ERROR\">syntax error at line 1, column 8: unexpected `&lt;`</INFO>"
        ));
        assert!(d.contains("version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\""));
        assert!(!d.contains("schemaLocation"));
    }
}
