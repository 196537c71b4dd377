//! CSV (RFC 4180) and TSV (IANA `text/tab-separated-values`) results, one header line with the
//! column names, then one line per row.
//!
//! Values: integers in decimal, floating point in the shortest form that reads back to the
//! same value (`NaN`, `+Inf`, `-Inf` for the special values), booleans `true`/`false`,
//! timestamps ISO 8601, regions (lists of doubles) as their numbers separated by single
//! spaces (DALI), binary values in hexadecimal. A null is an empty field.
//!
//! * **CSV**: lines end with CRLF; a field is quoted (`"…"`, inner quotes doubled) when it
//!   contains a comma, a quote, CR or LF, and an empty string is written `""` so that it
//!   differs from a null.
//! * **TSV**: lines end with LF; backslash, tab, LF and CR inside a value are written `\\`,
//!   `\t`, `\n`, `\r`. An empty string and a null are both an empty field.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::columns::{
    Col, ColSpec, Prepared, col_specs, prepare, push_f32, push_f64, push_hex, push_int, push_list,
};
use super::{FormatError, ResultWriter};

/// Which of the two delimited formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Comma-separated, RFC 4180.
    Csv,
    /// Tab-separated with backslash escapes.
    Tsv,
}

impl Dialect {
    fn sep(self) -> u8 {
        match self {
            Dialect::Csv => b',',
            Dialect::Tsv => b'\t',
        }
    }

    fn eol(self) -> &'static [u8] {
        match self {
            Dialect::Csv => b"\r\n",
            Dialect::Tsv => b"\n",
        }
    }

    /// Appends one text value.
    fn text(self, out: &mut Vec<u8>, s: &str) {
        match self {
            Dialect::Csv => {
                if s.is_empty() {
                    out.extend_from_slice(b"\"\"");
                } else if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
                    out.push(b'"');
                    for b in s.bytes() {
                        if b == b'"' {
                            out.push(b'"');
                        }
                        out.push(b);
                    }
                    out.push(b'"');
                } else {
                    out.extend_from_slice(s.as_bytes());
                }
            }
            Dialect::Tsv => {
                for b in s.bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
}

/// Streaming CSV/TSV writer.
#[derive(Debug)]
pub struct DelimitedWriter<W> {
    out: W,
    specs: Vec<ColSpec>,
    dialect: Dialect,
    buf: Vec<u8>,
}

impl<W: Write + Send> DelimitedWriter<W> {
    /// Writes the header line.
    pub fn new(mut out: W, schema: &SchemaRef, dialect: Dialect) -> Result<Self, FormatError> {
        let specs = col_specs(schema);
        let mut buf = Vec::with_capacity(1 << 16);
        for (c, s) in specs.iter().enumerate() {
            if c > 0 {
                buf.push(dialect.sep());
            }
            dialect.text(&mut buf, &s.name);
        }
        buf.extend_from_slice(dialect.eol());
        out.write_all(&buf)?;
        buf.clear();
        Ok(DelimitedWriter {
            out,
            specs,
            dialect,
            buf,
        })
    }

    fn rows(&mut self, cols: &[Prepared], rows: usize) {
        let d = self.dialect;
        let out = &mut self.buf;
        for i in 0..rows {
            for (c, p) in cols.iter().enumerate() {
                if c > 0 {
                    out.push(d.sep());
                }
                if p.is_null(i) {
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
                    Col::F32(a) => push_f32(out, a.value(i)),
                    Col::F64(a) => push_f64(out, a.value(i)),
                    Col::Str(a) => d.text(out, a.value(i)),
                    Col::Bin(a) => push_hex(out, a.value(i)),
                    Col::List(l, v) => push_list(out, l, v, i, b' '),
                }
            }
            out.extend_from_slice(d.eol());
        }
    }
}

impl<W: Write + Send> ResultWriter<W> for DelimitedWriter<W> {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let cols = prepare(&self.specs, batch)?;
        self.rows(&cols, batch.num_rows());
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self: Box<Self>, _overflow: bool) -> Result<W, FormatError> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn finish_error(self: Box<Self>, _message: &str) -> Result<W, FormatError> {
        self.finish(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(d: Dialect, s: &str) -> String {
        let mut v = Vec::new();
        d.text(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(text(Dialect::Csv, "plain é"), "plain é");
        assert_eq!(text(Dialect::Csv, ""), "\"\"");
        assert_eq!(text(Dialect::Csv, "a,b"), "\"a,b\"");
        assert_eq!(
            text(Dialect::Csv, "say \"hi\"\r\n"),
            "\"say \"\"hi\"\"\r\n\""
        );
    }

    #[test]
    fn tsv_escapes_separators() {
        assert_eq!(text(Dialect::Tsv, "a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(text(Dialect::Tsv, "x,\"y\""), "x,\"y\"");
    }
}
