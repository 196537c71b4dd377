//! FITS results: an empty primary HDU and one BINTABLE extension (FITS 4.0 §7.3).
//!
//! A binary table's header holds the row count (`NAXIS2`) and fixed column widths (`nA` for
//! text), which are known only after the last row. The writer therefore **spools**: each
//! batch is normalised ([`super::columns`]) and appended to an anonymous temporary file as
//! Arrow IPC while the writer tracks the row count, the longest text/array of each column and
//! which integer values occur; [`ResultWriter::finish`] then writes the headers and streams the
//! spooled batches back as table rows. Memory stays one batch; the spool file takes about as
//! much disk as the result in Arrow form (in [`WriterOptions::spool_dir`], else the system's
//! temporary directory) and disappears when the writer is dropped.
//!
//! Columns (`TTYPEn` name, `TFORMn`, `TUNITn`, `TUCDn`, `TUTYPn`, `TCOMMn` description — the
//! last three as STILTS writes them):
//!
//! | VOTable type | TFORM | null |
//! |---|---|---|
//! | boolean | `L` | byte 0 |
//! | short / int / long | `I` / `J` / `K` | `TNULLn`: the type's minimum, or its maximum if the minimum occurs in the data; if both occur the column is widened (`I`→`J`→`K`); a `long` column holding both extremes and nulls keeps the minimum (the only lossy case) |
//! | float / double | `E` / `D` | NaN |
//! | unicodeChar, char (text, timestamps) | `nA`, n = longest value in UTF-8 bytes (at least 1), NUL-padded | all NUL (same as the empty string) |
//! | unsignedByte array | `nB`, zero-padded | all zero |
//! | double array (regions) | `nD`, n = declared size or longest value, NaN-padded | all NaN |
//!
//! Text is written as UTF-8 bytes; FITS asks for ASCII, so readers may need to decode
//! non-ASCII text themselves (astropy gives bytes or replaces). Header strings are ASCII,
//! other characters become `?`, and values longer than 68 characters are cut.
//!
//! The header says `OVERFLOW = T` when the result was cut at MAXREC (a Tessera keyword; FITS
//! has no standard one).

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, Write};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use super::columns::{Col, ColSpec, Kind, Prepared, col_specs, prepare};
use super::{FormatError, ResultWriter, WriterOptions};

const BLOCK: usize = 2880;

/// What the writer learnt about one column while spooling.
#[derive(Debug, Clone, Default)]
struct Stats {
    /// Longest text (bytes), binary value (bytes) or list (items).
    width: usize,
    has_null: bool,
    has_min: bool,
    has_max: bool,
}

/// How a column is laid out in a row.
#[derive(Debug, Clone, Copy)]
enum Layout {
    L,
    /// Integer of `bytes` bytes (2, 4, 8) with its TNULL.
    Int(usize, Option<i64>),
    E,
    D,
    A(usize),
    B(usize),
    Dn(usize),
}

impl Layout {
    fn of(kind: Kind, st: &Stats) -> Layout {
        let int = |bytes: usize, min: i64, max: i64| {
            if !st.has_null {
                Layout::Int(bytes, None)
            } else if !st.has_min {
                Layout::Int(bytes, Some(min))
            } else if !st.has_max {
                Layout::Int(bytes, Some(max))
            } else if bytes == 2 {
                Layout::Int(4, Some(i32::MIN.into()))
            } else {
                Layout::Int(8, Some(i64::MIN))
            }
        };
        match kind {
            Kind::Bool => Layout::L,
            Kind::Short => int(2, i16::MIN.into(), i16::MAX.into()),
            Kind::Int => int(4, i32::MIN.into(), i32::MAX.into()),
            Kind::Long => int(8, i64::MIN, i64::MAX),
            Kind::Float => Layout::E,
            Kind::Double => Layout::D,
            Kind::Char | Kind::Text => Layout::A(st.width.max(1)),
            Kind::Bytes => Layout::B(st.width.max(1)),
            Kind::Doubles(Some(n)) => Layout::Dn(n.max(1)),
            Kind::Doubles(None) => Layout::Dn(st.width.max(1)),
        }
    }

    fn tform(self) -> String {
        match self {
            Layout::L => "L".into(),
            Layout::Int(2, _) => "I".into(),
            Layout::Int(4, _) => "J".into(),
            Layout::Int(_, _) => "K".into(),
            Layout::E => "E".into(),
            Layout::D => "D".into(),
            Layout::A(n) => format!("{n}A"),
            Layout::B(n) => format!("{n}B"),
            Layout::Dn(n) => format!("{n}D"),
        }
    }

    fn bytes(self) -> usize {
        match self {
            Layout::L => 1,
            Layout::Int(b, _) => b,
            Layout::E => 4,
            Layout::D => 8,
            Layout::A(n) | Layout::B(n) => n,
            Layout::Dn(n) => 8 * n,
        }
    }
}

/// The spool file and its Arrow IPC writer.
struct Spool {
    writer: StreamWriter<BufWriter<File>>,
    schema: SchemaRef,
    specs: Vec<ColSpec>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").finish_non_exhaustive()
    }
}

/// FITS writer (spooling, see the module documentation).
#[derive(Debug)]
pub struct FitsWriter<W> {
    out: W,
    specs: Vec<ColSpec>,
    stats: Vec<Stats>,
    rows: u64,
    spool: Option<Spool>,
    options: WriterOptions,
}

impl<W: Write + Send> FitsWriter<W> {
    /// Makes the writer; nothing is written before [`ResultWriter::finish`].
    pub fn new(out: W, schema: &SchemaRef, options: &WriterOptions) -> Result<Self, FormatError> {
        let specs = col_specs(schema);
        Ok(FitsWriter {
            out,
            stats: vec![Stats::default(); specs.len()],
            specs,
            rows: 0,
            spool: None,
            options: options.clone(),
        })
    }

    fn observe(&mut self, cols: &[Prepared], n: usize) {
        for (st, p) in self.stats.iter_mut().zip(cols) {
            st.has_null |= (0..n).any(|i| p.is_null(i));
            let valid = |i: &usize| !p.is_null(*i);
            match &p.col {
                Col::I16(a) => extremes(
                    st,
                    (0..n).filter(valid).map(|i| a.value(i)),
                    i16::MIN,
                    i16::MAX,
                ),
                Col::I32(a) => extremes(
                    st,
                    (0..n).filter(valid).map(|i| a.value(i)),
                    i32::MIN,
                    i32::MAX,
                ),
                Col::I64(a) => extremes(
                    st,
                    (0..n).filter(valid).map(|i| a.value(i)),
                    i64::MIN,
                    i64::MAX,
                ),
                Col::Str(a) => {
                    for i in (0..n).filter(valid) {
                        st.width = st.width.max(a.value(i).len());
                    }
                }
                Col::Bin(a) => {
                    for i in (0..n).filter(valid) {
                        st.width = st.width.max(a.value(i).len());
                    }
                }
                Col::List(l, _) => {
                    let o = l.value_offsets();
                    for i in (0..n).filter(valid) {
                        st.width = st.width.max((o[i + 1] - o[i]) as usize);
                    }
                }
                Col::Bool(_) | Col::F32(_) | Col::F64(_) => {}
            }
        }
    }

    fn open_spool(&self, cols: &[Prepared]) -> Result<Spool, FormatError> {
        let file = match &self.options.spool_dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        let arrays: Vec<_> = cols.iter().map(Prepared::array).collect();
        let fields: Vec<Field> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
            .collect();
        let specs = self
            .specs
            .iter()
            .zip(&arrays)
            .map(|(s, a)| ColSpec {
                arrow: a.data_type().clone(),
                ..s.clone()
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let writer = StreamWriter::try_new(BufWriter::new(file), &schema)?;
        Ok(Spool {
            writer,
            schema,
            specs,
        })
    }

    fn header(&self, layouts: &[Layout], overflow: bool) -> Vec<u8> {
        let mut h = Vec::with_capacity(BLOCK * 4);
        card_logical(&mut h, "SIMPLE", true);
        card_int(&mut h, "BITPIX", 8);
        card_int(&mut h, "NAXIS", 0);
        card_logical(&mut h, "EXTEND", true);
        end_header(&mut h);
        card_str(&mut h, "XTENSION", "BINTABLE");
        card_int(&mut h, "BITPIX", 8);
        card_int(&mut h, "NAXIS", 2);
        card_int(
            &mut h,
            "NAXIS1",
            layouts.iter().map(|l| l.bytes() as i64).sum(),
        );
        card_int(&mut h, "NAXIS2", self.rows as i64);
        card_int(&mut h, "PCOUNT", 0);
        card_int(&mut h, "GCOUNT", 1);
        card_int(&mut h, "TFIELDS", self.specs.len() as i64);
        card_str(&mut h, "EXTNAME", &self.options.table_name);
        for (k, (s, l)) in self.specs.iter().zip(layouts).enumerate() {
            let n = k + 1;
            card_str(&mut h, &format!("TTYPE{n}"), &s.name);
            card_str(&mut h, &format!("TFORM{n}"), &l.tform());
            if let Layout::Int(_, Some(null)) = l {
                card_int(&mut h, &format!("TNULL{n}"), *null);
            }
            for (key, v) in [
                ("TUNIT", &s.unit),
                ("TUCD", &s.ucd),
                ("TUTYP", &s.utype),
                ("TCOMM", &s.description),
            ] {
                if let Some(v) = v {
                    card_str(&mut h, &format!("{key}{n}"), v);
                }
            }
        }
        if overflow {
            card_logical(&mut h, "OVERFLOW", true);
        }
        end_header(&mut h);
        h
    }
}

fn extremes<T: PartialEq + Copy>(st: &mut Stats, it: impl Iterator<Item = T>, min: T, max: T) {
    for v in it {
        st.has_min |= v == min;
        st.has_max |= v == max;
    }
}

impl<W: Write + Send> ResultWriter<W> for FitsWriter<W> {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let cols = prepare(&self.specs, batch)?;
        self.observe(&cols, batch.num_rows());
        let spool = match self.spool.take() {
            Some(s) => s,
            None => self.open_spool(&cols)?,
        };
        let spool = self.spool.insert(spool);
        let arrays = cols.iter().map(Prepared::array).collect();
        let b = RecordBatch::try_new(spool.schema.clone(), arrays)?;
        spool.writer.write(&b)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>, overflow: bool) -> Result<W, FormatError> {
        let layouts: Vec<Layout> = self
            .specs
            .iter()
            .zip(&self.stats)
            .map(|(s, st)| Layout::of(s.kind, st))
            .collect();
        let header = self.header(&layouts, overflow);
        self.out.write_all(&header)?;
        let row_bytes: usize = layouts.iter().map(|l| l.bytes()).sum();
        if let Some(mut spool) = self.spool.take() {
            spool.writer.finish()?;
            let mut file = spool
                .writer
                .into_inner()?
                .into_inner()
                .map_err(|e| e.into_error())?;
            file.rewind()?;
            let reader = StreamReader::try_new(BufReader::new(file), None)?;
            let mut buf = Vec::with_capacity(1 << 16);
            for b in reader {
                let b = b?;
                let cols = prepare(&spool.specs, &b)?;
                rows(&mut buf, &layouts, &cols, b.num_rows());
                self.out.write_all(&buf)?;
                buf.clear();
            }
        }
        let data = row_bytes as u64 * self.rows;
        let pad = (BLOCK as u64 - data % BLOCK as u64) % BLOCK as u64;
        self.out.write_all(&vec![0u8; pad as usize])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn finish_error(self: Box<Self>, _message: &str) -> Result<W, FormatError> {
        self.finish(false)
    }
}

/// Appends table rows.
fn rows(out: &mut Vec<u8>, layouts: &[Layout], cols: &[Prepared], n: usize) {
    for i in 0..n {
        for (l, p) in layouts.iter().zip(cols) {
            let null = p.is_null(i);
            match (&p.col, *l) {
                (Col::Bool(a), _) => out.push(match (null, !null && a.value(i)) {
                    (true, _) => 0,
                    (false, true) => b'T',
                    (false, false) => b'F',
                }),
                (Col::I16(a), Layout::Int(b, t)) => int(out, b, t, null, a.value(i).into()),
                (Col::I32(a), Layout::Int(b, t)) => int(out, b, t, null, a.value(i).into()),
                (Col::I64(a), Layout::Int(b, t)) => int(out, b, t, null, a.value(i)),
                (Col::F32(a), _) => {
                    let v = if null { f32::NAN } else { a.value(i) };
                    out.extend_from_slice(&v.to_be_bytes());
                }
                (Col::F64(a), _) => {
                    let v = if null { f64::NAN } else { a.value(i) };
                    out.extend_from_slice(&v.to_be_bytes());
                }
                (Col::Str(a), Layout::A(w)) => {
                    let v = if null { &[][..] } else { a.value(i).as_bytes() };
                    out.extend_from_slice(v);
                    out.resize(out.len() + w - v.len(), 0);
                }
                (Col::Bin(a), Layout::B(w)) => {
                    let v = if null { &[][..] } else { a.value(i) };
                    out.extend_from_slice(v);
                    out.resize(out.len() + w - v.len(), 0);
                }
                (Col::List(lst, v), Layout::Dn(w)) => {
                    let o = lst.value_offsets();
                    let (s, e) = if null {
                        (0, 0)
                    } else {
                        (o[i] as usize, o[i + 1] as usize)
                    };
                    for k in 0..w {
                        let j = s + k;
                        let x = if j < e && !v.is_null(j) {
                            v.value(j)
                        } else {
                            f64::NAN
                        };
                        out.extend_from_slice(&x.to_be_bytes());
                    }
                }
                (c, l) => unreachable!("column {c:?} laid out as {l:?}"),
            }
        }
    }
}

#[inline]
fn int(out: &mut Vec<u8>, bytes: usize, tnull: Option<i64>, null: bool, v: i64) {
    let v = if null { tnull.unwrap_or(0) } else { v };
    match bytes {
        2 => out.extend_from_slice(&(v as i16).to_be_bytes()),
        4 => out.extend_from_slice(&(v as i32).to_be_bytes()),
        _ => out.extend_from_slice(&v.to_be_bytes()),
    }
}

// ---- header cards -------------------------------------------------------------------------

fn card(h: &mut Vec<u8>, text: &str) {
    let start = h.len();
    h.extend(text.bytes().take(80));
    h.resize(start + 80, b' ');
}

fn card_int(h: &mut Vec<u8>, key: &str, v: i64) {
    card(h, &format!("{key:<8}= {v:>20}"));
}

fn card_logical(h: &mut Vec<u8>, key: &str, v: bool) {
    card(h, &format!("{key:<8}= {:>20}", if v { "T" } else { "F" }));
}

/// A string card: ASCII only (others become `?`), quotes doubled, at most 68 characters.
fn card_str(h: &mut Vec<u8>, key: &str, v: &str) {
    let mut s = String::with_capacity(70);
    for c in v.chars() {
        let c = if (' '..='~').contains(&c) { c } else { '?' };
        let add = if c == '\'' { 2 } else { 1 };
        if s.len() + add > 68 {
            break;
        }
        s.push(c);
        if c == '\'' {
            s.push('\'');
        }
    }
    // Fixed format: the closing quote not before column 20, trailing spaces not significant.
    card(h, &format!("{key:<8}= '{s:<8}'"));
}

fn end_header(h: &mut Vec<u8>) {
    card(h, "END");
    let pad = (BLOCK - h.len() % BLOCK) % BLOCK;
    h.resize(h.len() + pad, b' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_80_columns() {
        let mut h = Vec::new();
        card_str(&mut h, "TTYPE1", "it's");
        card_int(&mut h, "NAXIS2", 12);
        card_str(&mut h, "TCOMM1", &"é".repeat(100));
        assert_eq!(h.len(), 240);
        let s = String::from_utf8(h).unwrap();
        assert_eq!(&s[..80].trim_end(), &"TTYPE1  = 'it''s   '");
        assert_eq!(&s[80..160].trim_end(), &"NAXIS2  =                   12");
        assert_eq!(s[160..240].trim_end().len(), 80);
    }

    #[test]
    fn tnull_avoids_values_in_the_data() {
        let st = |has_min, has_max| Stats {
            width: 0,
            has_null: true,
            has_min,
            has_max,
        };
        assert!(matches!(
            Layout::of(Kind::Short, &st(false, false)),
            Layout::Int(2, Some(-32768))
        ));
        assert!(matches!(
            Layout::of(Kind::Short, &st(true, false)),
            Layout::Int(2, Some(32767))
        ));
        assert!(
            matches!(Layout::of(Kind::Short, &st(true, true)), Layout::Int(4, Some(v)) if v == i32::MIN as i64)
        );
        let no_null = Stats::default();
        assert!(matches!(
            Layout::of(Kind::Long, &no_null),
            Layout::Int(8, None)
        ));
    }
}
