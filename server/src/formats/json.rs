//! JSON results, streamed one row per line:
//!
//! ```json
//! {"metadata":[
//! {"name":"ra","datatype":"double","unit":"deg","ucd":"pos.eq.ra;meta.main","description":"…"},
//! {"name":"pos","datatype":"double","arraysize":"2","xtype":"point"}
//! ],
//! "data":[
//! [10.5,[10.5,-3.25]],
//! [null,null]
//! ],
//! "overflow":false}
//! ```
//!
//! `metadata` has one object per column with `name` and `datatype` (the VOTable datatype),
//! and `arraysize`, `unit`, `ucd`, `utype`, `xtype`, `description` when present. `data` has
//! one array per row. Numbers are JSON numbers (64-bit integers exactly as digits; readers
//! that parse numbers as doubles lose precision above 2⁵³), booleans `true`/`false`, text and
//! timestamps strings, regions arrays of numbers, binary values hexadecimal strings. JSON has
//! no NaN or infinity: those are written `null`, like a null. `overflow` is `true` when the
//! result was cut at MAXREC. A query that fails after rows were sent ends with
//! `"overflow":false,"error":"message"`.

use std::io::Write;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;

use super::columns::{Col, ColSpec, col_specs, prepare, push_hex, push_int};
use super::{FormatError, ResultWriter};

/// Appends `s` as a JSON string.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&b[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

#[inline]
fn push_num(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Streaming JSON writer.
#[derive(Debug)]
pub struct JsonWriter<W> {
    out: W,
    specs: Vec<ColSpec>,
    buf: Vec<u8>,
    first_row: bool,
}

impl<W: Write + Send> JsonWriter<W> {
    /// Writes the metadata and opens `data`.
    pub fn new(mut out: W, schema: &SchemaRef) -> Result<Self, FormatError> {
        let specs = col_specs(schema);
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(b"{\"metadata\":[");
        for (c, s) in specs.iter().enumerate() {
            buf.extend_from_slice(if c > 0 { b",\n{" } else { b"\n{" });
            buf.extend_from_slice(b"\"name\":");
            push_str(&mut buf, &s.name);
            buf.extend_from_slice(b",\"datatype\":");
            push_str(&mut buf, s.kind.datatype());
            let arraysize = s.kind.arraysize();
            for (k, v) in [
                ("arraysize", &arraysize),
                ("unit", &s.unit),
                ("ucd", &s.ucd),
                ("utype", &s.utype),
                ("xtype", &s.xtype),
                ("description", &s.description),
            ] {
                if let Some(v) = v {
                    buf.push(b',');
                    push_str(&mut buf, k);
                    buf.push(b':');
                    push_str(&mut buf, v);
                }
            }
            buf.push(b'}');
        }
        buf.extend_from_slice(b"\n],\n\"data\":[");
        out.write_all(&buf)?;
        buf.clear();
        Ok(JsonWriter {
            out,
            specs,
            buf,
            first_row: true,
        })
    }

    fn end(mut self, overflow: bool, error: Option<&str>) -> Result<W, FormatError> {
        self.buf.extend_from_slice(if self.first_row {
            b"],\n\"overflow\":".as_slice()
        } else {
            b"\n],\n\"overflow\":"
        });
        self.buf.extend_from_slice(if overflow {
            b"true".as_slice()
        } else {
            b"false"
        });
        if let Some(e) = error {
            self.buf.extend_from_slice(b",\"error\":");
            push_str(&mut self.buf, e);
        }
        self.buf.extend_from_slice(b"}\n");
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write + Send> ResultWriter<W> for JsonWriter<W> {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let cols = prepare(&self.specs, batch)?;
        let out = &mut self.buf;
        for i in 0..batch.num_rows() {
            out.extend_from_slice(if self.first_row { b"\n[" } else { b",\n[" });
            self.first_row = false;
            for (c, p) in cols.iter().enumerate() {
                if c > 0 {
                    out.push(b',');
                }
                if p.is_null(i) {
                    out.extend_from_slice(b"null");
                    continue;
                }
                match &p.col {
                    Col::Bool(a) => out.extend_from_slice(if a.value(i) {
                        b"true".as_slice()
                    } else {
                        b"false"
                    }),
                    Col::I16(a) => push_int(out, a.value(i)),
                    Col::I32(a) => push_int(out, a.value(i)),
                    Col::I64(a) => push_int(out, a.value(i)),
                    Col::F32(a) => {
                        let v = a.value(i);
                        if v.is_finite() {
                            out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
                        } else {
                            out.extend_from_slice(b"null");
                        }
                    }
                    Col::F64(a) => push_num(out, a.value(i)),
                    Col::Str(a) => push_str(out, a.value(i)),
                    Col::Bin(a) => {
                        out.push(b'"');
                        push_hex(out, a.value(i));
                        out.push(b'"');
                    }
                    Col::List(l, v) => {
                        let o = l.value_offsets();
                        out.push(b'[');
                        for j in o[i] as usize..o[i + 1] as usize {
                            if j > o[i] as usize {
                                out.push(b',');
                            }
                            if v.is_null(j) {
                                out.extend_from_slice(b"null");
                            } else {
                                push_num(out, v.value(j));
                            }
                        }
                        out.push(b']');
                    }
                }
            }
            out.push(b']');
        }
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(self: Box<Self>, overflow: bool) -> Result<W, FormatError> {
        self.end(overflow, None)
    }

    fn finish_error(self: Box<Self>, message: &str) -> Result<W, FormatError> {
        self.end(false, Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut v = Vec::new();
        push_str(&mut v, "a\"b\\c\nd\u{1}é");
        assert_eq!(String::from_utf8(v).unwrap(), "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }
}
