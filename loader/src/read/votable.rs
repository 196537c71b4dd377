//! IVOA VOTable reader (versions 1.1–1.5): the first `TABLE` of the document, streamed with
//! `quick_xml`.
//!
//! Elements and attributes are matched by local name, so any namespace prefix (or none) works.
//! The reader parses the `FIELD`s of the first `TABLE` (`name`, falling back to `ID`;
//! `datatype`, `arraysize`, `unit`, `ucd`, `utype`, `xtype`, the `DESCRIPTION` child and
//! `VALUES null`), then streams the rows of its `DATA`:
//!
//! * `TABLEDATA`: one `TR` per row. An empty `TD` is null (for every type, including strings
//!   and variable-length arrays, which TABLEDATA cannot tell apart from empty ones); `NaN` in a
//!   float cell is NaN; booleans are `T`/`F`/`true`/`false`/`1`/`0` (case-insensitive) and `?`
//!   (null); integers may be hexadecimal (`0x…`); array elements are separated by whitespace
//!   (or commas); bit arrays are strings of `0`/`1`. A bad cell is an [`Error::BadInput`] naming
//!   the row (1-based `TR` number) and column, unless `--skip-bad-rows` has budget left, in which
//!   case the row is dropped. A batch never spans a skipped row, so [`RowLoc::Rows`] stays exact.
//! * `BINARY2` and `BINARY` with `STREAM encoding="base64"`: per row a null-flag bitmask of
//!   ⌈fields/8⌉ bytes (BINARY2 only), then each value big-endian; variable-length arrays are
//!   preceded by a 4-byte element count. The base64 text is read straight from the XML input in
//!   chunks and decoded incrementally, so a stream of any size is never held in memory. Bad
//!   binary data is fatal (the stream cannot be resynchronised).
//! * `FITS` serialisation, external (`href`) streams and non-base64 encodings are rejected with
//!   a clear [`Error::BadInput`].
//!
//! `VALUES null="…"` makes matching values of integer fields null (array elements too). Batches
//! of `batch_rows` rows are produced as the document is parsed; the reader stops at the end of
//! the first table's data. `.zst` files are decompressed on the fly.
//!
//! # Arrow type mapping
//!
//! | datatype | scalar | `arraysize="n"` (or `nxm`) | `arraysize="*"` / `n*` / `nx*` |
//! |----------|--------|--------------------------|------------------------------|
//! | `boolean`, `bit` | Boolean | FixedSizeList\<Boolean, n> | List\<Boolean> |
//! | `unsignedByte` | UInt8 | FixedSizeList | List |
//! | `short` / `int` / `long` | Int16 / Int32 / Int64 | FixedSizeList | List |
//! | `float` / `double` | Float32 / Float64 | FixedSizeList | List |
//! | `floatComplex` / `doubleComplex` | FixedSizeList\<Float32 / Float64, 2> | FixedSizeList of those | List of those |
//! | `char`, `unicodeChar` | Utf8 | Utf8 | Utf8 |
//!
//! Multi-dimensional arrays are flattened (`3x4` → FixedSizeList of 12); `arraysize="1"` is a
//! scalar. Fixed-size `char` cells in binary streams are cut at the first NUL; `unicodeChar` is
//! UCS-2 (UTF-16) big-endian there.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use tessera_storage::columns::{DESCRIPTION, UCD, UNIT, UTYPE, XTYPE};

use super::fits::colbuf::{ColumnBuf, Kind, Mark, Prim, Shape, Val};
use crate::error::{Error, Result};
use crate::source::{BadRow, BadRows, ReadOptions, RowLoc, RowSource, SourceBatch};

/// A variable-length binary array claiming more bytes than this is taken as corrupt data.
const MAX_CELL_BYTES: u64 = 1 << 28;

/// Base64 decoding that accepts padded and unpadded ends.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A VOTable primitive datatype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dt {
    Boolean,
    Bit,
    UByte,
    Short,
    Int,
    Long,
    Char,
    UChar,
    Float,
    Double,
    FComplex,
    DComplex,
}

const DATATYPES: &str = "boolean, bit, unsignedByte, short, int, long, char, unicodeChar, float, double, floatComplex or doubleComplex";

impl Dt {
    fn parse(s: &str) -> Option<Dt> {
        Some(match s.trim() {
            "boolean" => Dt::Boolean,
            "bit" => Dt::Bit,
            "unsignedByte" => Dt::UByte,
            "short" => Dt::Short,
            "int" => Dt::Int,
            "long" => Dt::Long,
            "char" => Dt::Char,
            "unicodeChar" => Dt::UChar,
            "float" => Dt::Float,
            "double" => Dt::Double,
            "floatComplex" => Dt::FComplex,
            "doubleComplex" => Dt::DComplex,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Dt::Boolean => "boolean",
            Dt::Bit => "bit",
            Dt::UByte => "unsignedByte",
            Dt::Short => "short",
            Dt::Int => "int",
            Dt::Long => "long",
            Dt::Char => "char",
            Dt::UChar => "unicodeChar",
            Dt::Float => "float",
            Dt::Double => "double",
            Dt::FComplex => "floatComplex",
            Dt::DComplex => "doubleComplex",
        }
    }

    /// Bytes per element in a binary stream (bits: see [`Size`] handling).
    fn size(self) -> u64 {
        match self {
            Dt::Boolean | Dt::Bit | Dt::UByte | Dt::Char => 1,
            Dt::Short | Dt::UChar => 2,
            Dt::Int | Dt::Float => 4,
            Dt::Long | Dt::Double | Dt::FComplex => 8,
            Dt::DComplex => 16,
        }
    }

    /// Bytes of `n` elements in a binary stream.
    fn bytes(self, n: u64) -> Option<u64> {
        match self {
            Dt::Bit => Some(n.div_ceil(8)),
            _ => n.checked_mul(self.size()),
        }
    }

    fn kind(self) -> Kind {
        match self {
            Dt::Boolean | Dt::Bit => Kind::Prim(Prim::Bool),
            Dt::UByte => Kind::Prim(Prim::U8),
            Dt::Short => Kind::Prim(Prim::I16),
            Dt::Int => Kind::Prim(Prim::I32),
            Dt::Long => Kind::Prim(Prim::I64),
            Dt::Float => Kind::Prim(Prim::F32),
            Dt::Double => Kind::Prim(Prim::F64),
            Dt::FComplex => Kind::Complex(Prim::F32),
            Dt::DComplex => Kind::Complex(Prim::F64),
            Dt::Char | Dt::UChar => Kind::Text,
        }
    }

    /// The inclusive range of an integer type.
    fn int_range(self) -> Option<(i64, i64)> {
        match self {
            Dt::UByte => Some((0, 255)),
            Dt::Short => Some((i16::MIN as i64, i16::MAX as i64)),
            Dt::Int => Some((i32::MIN as i64, i32::MAX as i64)),
            Dt::Long => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }
}

/// A parsed `arraysize`, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Scalar,
    Fixed(u64),
    /// Variable: the count in a binary stream is multiplied by `unit` (the product of the fixed
    /// leading dimensions of `nxm*`).
    Var {
        unit: u64,
    },
}

fn parse_arraysize(s: &str) -> Option<Size> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Size::Scalar);
    }
    let dims: Vec<&str> = s.split('x').collect();
    let mut prod: u64 = 1;
    for (i, d) in dims.iter().enumerate() {
        let last = i + 1 == dims.len();
        if last && let Some(n) = d.strip_suffix('*') {
            if !n.is_empty() {
                n.parse::<u64>().ok()?;
            }
            return Some(Size::Var { unit: prod });
        }
        prod = prod.checked_mul(d.parse::<u64>().ok()?)?;
    }
    Some(Size::Fixed(prod))
}

/// One FIELD.
#[derive(Debug, Clone)]
struct VoField {
    name: String,
    dt: Dt,
    size: Size,
    /// `VALUES null` of an integer field.
    null: Option<i64>,
    shape: Shape,
}

impl VoField {
    fn is_null(&self, v: i64) -> bool {
        self.null == Some(v)
    }
}

/// A column buffer, or nothing for a column left out by the projection (values are still
/// parsed, so a bad value is found whatever the projection).
struct Sink<'a>(Option<&'a mut ColumnBuf>);

impl Sink<'_> {
    fn push(&mut self, v: Val) {
        if let Some(b) = self.0.as_deref_mut() {
            b.push(v);
        }
    }
    fn push_complex(&mut self, v: Option<(f64, f64)>) {
        if let Some(b) = self.0.as_deref_mut() {
            b.push_complex(v);
        }
    }
    fn push_str(&mut self, s: &str) {
        if let Some(b) = self.0.as_deref_mut() {
            b.push_str(s);
        }
    }
    fn end_row(&mut self, ok: bool) {
        if let Some(b) = self.0.as_deref_mut() {
            b.end_row(ok);
        }
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let v = u64::from_str_radix(hex, 16).ok()?;
        // Hex literals are bit patterns: 0xFFFF in a short is -1, as in VOTable writers.
        let v = v as i64;
        return Some(if neg { v.wrapping_neg() } else { v });
    }
    s.strip_prefix('+').unwrap_or(s).parse::<i64>().ok()
}

fn parse_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// Parses one TABLEDATA cell of `f` into `sink` and ends the row.
fn parse_td(f: &VoField, text: &str, mut sink: Sink<'_>) -> std::result::Result<(), String> {
    if matches!(f.dt, Dt::Char | Dt::UChar) {
        if text.is_empty() {
            sink.end_row(false);
        } else {
            sink.push_str(text);
            sink.end_row(true);
        }
        return Ok(());
    }
    let t = text.trim();
    if t.is_empty() {
        sink.end_row(false);
        return Ok(());
    }
    let expect = |n: u64| -> std::result::Result<(), String> {
        match f.size {
            Size::Scalar if n != 1 => Err(format!(
                "expected one {} value, found {n} values",
                f.dt.name()
            )),
            Size::Fixed(m) if n != m => Err(format!(
                "expected {m} {} values (arraysize), found {n}",
                f.dt.name()
            )),
            _ => Ok(()),
        }
    };
    let is_sep = |c: char| c.is_whitespace() || c == ',';
    match f.dt {
        Dt::Bit => {
            let bits: Vec<char> = t.chars().filter(|&c| !is_sep(c)).collect();
            expect(bits.len() as u64)?;
            for c in bits {
                match c {
                    '0' => sink.push(Val::Bool(false)),
                    '1' => sink.push(Val::Bool(true)),
                    _ => return Err(format!("expected bits 0 or 1, found '{t}'")),
                }
            }
        }
        Dt::Boolean => {
            let mut toks: Vec<&str> = t.split(is_sep).filter(|s| !s.is_empty()).collect();
            // `TFT` for a fixed boolean array.
            if let (Size::Fixed(n), [one]) = (f.size, toks.as_slice())
                && n > 1
                && one.len() as u64 == n
                && one.chars().all(|c| "TtFf10?".contains(c))
            {
                toks = one.split("").filter(|s| !s.is_empty()).collect();
            }
            expect(toks.len() as u64)?;
            for tok in toks {
                let v = match tok.to_ascii_lowercase().as_str() {
                    "t" | "true" | "1" => Val::Bool(true),
                    "f" | "false" | "0" => Val::Bool(false),
                    "?" => Val::Null,
                    _ => {
                        return Err(format!(
                            "expected a boolean (T, F, true, false, 1, 0 or ?), found '{tok}'"
                        ));
                    }
                };
                sink.push(v);
            }
        }
        Dt::UByte | Dt::Short | Dt::Int | Dt::Long => {
            let (lo, hi) = f.dt.int_range().unwrap_or((i64::MIN, i64::MAX));
            let toks: Vec<&str> = t.split(is_sep).filter(|s| !s.is_empty()).collect();
            expect(toks.len() as u64)?;
            for tok in toks {
                let v = parse_int(tok)
                    .filter(|v| (lo..=hi).contains(v) || tok.contains(['x', 'X']))
                    .ok_or_else(|| {
                        format!(
                            "expected an integer of type {} ({lo} to {hi}), found '{tok}'",
                            f.dt.name()
                        )
                    })?;
                sink.push(if f.is_null(v) { Val::Null } else { Val::I(v) });
            }
        }
        Dt::Float | Dt::Double => {
            let toks: Vec<&str> = t.split(is_sep).filter(|s| !s.is_empty()).collect();
            expect(toks.len() as u64)?;
            for tok in toks {
                let v = parse_float(tok)
                    .ok_or_else(|| format!("expected a number ({}), found '{tok}'", f.dt.name()))?;
                sink.push(Val::F(v));
            }
        }
        Dt::FComplex | Dt::DComplex => {
            let toks: Vec<&str> = t.split(is_sep).filter(|s| !s.is_empty()).collect();
            if toks.len() % 2 != 0 {
                return Err(format!(
                    "expected pairs of numbers (real imaginary) for {}, found {} numbers",
                    f.dt.name(),
                    toks.len()
                ));
            }
            expect(toks.len() as u64 / 2)?;
            for pair in toks.chunks_exact(2) {
                let re = parse_float(pair[0]);
                let im = parse_float(pair[1]);
                match (re, im) {
                    (Some(re), Some(im)) => sink.push_complex(Some((re, im))),
                    _ => {
                        return Err(format!(
                            "expected a complex number, found '{} {}'",
                            pair[0], pair[1]
                        ));
                    }
                }
            }
        }
        Dt::Char | Dt::UChar => {}
    }
    sink.end_row(true);
    Ok(())
}

/// Reads a big-endian value of N bytes at `p` (the caller has checked the length).
fn be<const N: usize>(b: &[u8], p: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(p..p + N) {
        a.copy_from_slice(s);
    }
    a
}

/// Decodes the `n` elements of one binary cell from `b` into `sink` (not ending the row).
fn decode_binary(f: &VoField, b: &[u8], n: usize, sink: &mut Sink<'_>) {
    let int = |v: i64| if f.is_null(v) { Val::Null } else { Val::I(v) };
    match f.dt {
        Dt::Boolean => {
            for &c in b.iter().take(n) {
                sink.push(match c {
                    b'T' | b't' | b'1' => Val::Bool(true),
                    b'F' | b'f' | b'0' => Val::Bool(false),
                    _ => Val::Null,
                });
            }
        }
        Dt::Bit => {
            if f.size == Size::Scalar {
                // Writers disagree on which bit of the byte holds a lone bit: any set bit is 1.
                sink.push(Val::Bool(b.first().is_some_and(|&c| c != 0)));
            } else {
                for i in 0..n {
                    let byte = b.get(i / 8).copied().unwrap_or(0);
                    sink.push(Val::Bool((byte >> (7 - i % 8)) & 1 == 1));
                }
            }
        }
        Dt::UByte => b.iter().take(n).for_each(|&c| sink.push(int(c as i64))),
        Dt::Short => (0..n).for_each(|i| sink.push(int(i16::from_be_bytes(be(b, 2 * i)) as i64))),
        Dt::Int => (0..n).for_each(|i| sink.push(int(i32::from_be_bytes(be(b, 4 * i)) as i64))),
        Dt::Long => (0..n).for_each(|i| sink.push(int(i64::from_be_bytes(be(b, 8 * i))))),
        Dt::Float => {
            (0..n).for_each(|i| sink.push(Val::F(f32::from_be_bytes(be(b, 4 * i)) as f64)))
        }
        Dt::Double => (0..n).for_each(|i| sink.push(Val::F(f64::from_be_bytes(be(b, 8 * i))))),
        Dt::FComplex => (0..n).for_each(|i| {
            let re = f32::from_be_bytes(be(b, 8 * i)) as f64;
            let im = f32::from_be_bytes(be(b, 8 * i + 4)) as f64;
            sink.push_complex(Some((re, im)));
        }),
        Dt::DComplex => (0..n).for_each(|i| {
            let re = f64::from_be_bytes(be(b, 16 * i));
            let im = f64::from_be_bytes(be(b, 16 * i + 8));
            sink.push_complex(Some((re, im)));
        }),
        Dt::Char => {
            let b = &b[..n.min(b.len())];
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            sink.push_str(&String::from_utf8_lossy(&b[..end]));
        }
        Dt::UChar => {
            let units = (0..n.min(b.len() / 2)).map(|i| u16::from_be_bytes(be(b, 2 * i)));
            let s: String = char::decode_utf16(units.take_while(|&u| u != 0))
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            sink.push_str(&s);
        }
    }
}

/// How the table data is serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The table has no data (or no more data).
    Done,
    TableData,
    /// BINARY (`false`) or BINARY2 (`true`).
    Binary {
        flags: bool,
    },
}

type XmlReader = Reader<BufReader<Box<dyn Read + Send>>>;

/// An element event reduced to what the reader needs.
enum Step {
    Start(String, Vec<(String, String)>),
    Empty(String, Vec<(String, String)>),
    End(String),
    Text(String),
    Eof,
    Other,
}

/// Reads a VOTable's first TABLE as Arrow batches.
pub struct VoTableSource {
    file: String,
    schema: SchemaRef,
    reader: XmlReader,
    buf: Vec<u8>,
    fields: Vec<VoField>,
    /// One buffer per field; `None` for fields left out by the projection.
    bufs: Vec<Option<ColumnBuf>>,
    mode: Mode,
    /// Rows consumed so far (including skipped ones): the 1-based number of the last row.
    rows_seen: u64,
    nrows: Option<u64>,
    file_len: Option<u64>,
    batch_rows: usize,
    bad_rows: BadRows,
    /// TABLEDATA state: the text of the open TD.
    td: String,
    in_td: bool,
    /// Binary state: base64 characters not yet decoded, decoded bytes and read position.
    chars: Vec<u8>,
    bytes: Vec<u8>,
    pos: usize,
    stream_done: bool,
    /// Rows in the column buffers (also counted when no column is kept).
    pending_rows: usize,
    /// Column marks at the start of the current TABLEDATA row, to roll a bad row back.
    marks: Vec<Option<Mark>>,
}

impl fmt::Debug for VoTableSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoTableSource")
            .field("file", &self.file)
            .field("schema", &self.schema)
            .field("mode", &self.mode)
            .field("rows_seen", &self.rows_seen)
            .finish_non_exhaustive()
    }
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn attrs(e: &BytesStart<'_>) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
        let v = a
            .unescape_value()
            .map_err(|e| format!("malformed attribute value: {e}"))?;
        out.push((local(a.key.local_name().as_ref()), v.into_owned()));
    }
    Ok(out)
}

fn attr<'a>(a: &'a [(String, String)], key: &str) -> Option<&'a str> {
    a.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

impl VoTableSource {
    /// Opens `path` and reads the document up to the start of the first table's data.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let file = path.display().to_string();
        let input = crate::source::open_maybe_compressed(path)?;
        let file_len = if path.to_string_lossy().ends_with(".zst") {
            None
        } else {
            std::fs::metadata(path).ok().map(|m| m.len())
        };
        let reader = Reader::from_reader(BufReader::with_capacity(1 << 16, input));
        let mut src = VoTableSource {
            file,
            schema: Arc::new(Schema::empty()),
            reader,
            buf: Vec::new(),
            fields: Vec::new(),
            bufs: Vec::new(),
            mode: Mode::Done,
            rows_seen: 0,
            nrows: None,
            file_len,
            batch_rows: opts.batch_rows.max(1),
            bad_rows: opts.bad_rows.clone(),
            td: String::new(),
            in_td: false,
            chars: Vec::new(),
            bytes: Vec::new(),
            pos: 0,
            stream_done: false,
            pending_rows: 0,
            marks: Vec::new(),
        };
        let fields = src.read_header()?;
        // Output schema and buffers (projection applied).
        let mut out_fields = Vec::new();
        for (f, field) in src.fields.iter().zip(fields) {
            let keep = opts
                .projection
                .as_ref()
                .is_none_or(|p| p.iter().any(|n| *n == f.name));
            if keep {
                src.bufs.push(Some(ColumnBuf::new(f.dt.kind(), f.shape)));
                out_fields.push(field);
            } else {
                src.bufs.push(None);
            }
        }
        src.schema = Arc::new(Schema::new(out_fields));
        Ok(src)
    }

    fn byte_place(&self) -> String {
        format!("byte {}", self.reader.buffer_position())
    }

    /// Reads the next event as a [`Step`].
    fn step(&mut self) -> Result<Step> {
        self.buf.clear();
        let ev = self.reader.read_event_into(&mut self.buf);
        let step = match ev {
            Ok(Event::Start(e)) => {
                attrs(&e).map(|a| Step::Start(local(e.local_name().as_ref()), a))
            }
            Ok(Event::Empty(e)) => {
                attrs(&e).map(|a| Step::Empty(local(e.local_name().as_ref()), a))
            }
            Ok(Event::End(e)) => Ok(Step::End(local(e.local_name().as_ref()))),
            Ok(Event::Text(t)) => t
                .decode()
                .map(|s| Step::Text(s.into_owned()))
                .map_err(|e| format!("bad text encoding: {e}")),
            Ok(Event::CData(t)) => t
                .decode()
                .map(|s| Step::Text(s.into_owned()))
                .map_err(|e| format!("bad text encoding: {e}")),
            Ok(Event::GeneralRef(r)) => match r.resolve_char_ref() {
                Ok(Some(c)) => Ok(Step::Text(c.to_string())),
                Ok(None) => {
                    let name = String::from_utf8_lossy(&r).into_owned();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => Ok(Step::Text(s.to_string())),
                        None => Err(format!("unknown entity &{name};")),
                    }
                }
                Err(e) => Err(format!("bad character reference: {e}")),
            },
            Ok(Event::Eof) => Ok(Step::Eof),
            Ok(_) => Ok(Step::Other),
            Err(e) => {
                let at = self.reader.error_position();
                return Err(Error::bad(
                    &self.file,
                    format!("byte {at}"),
                    None,
                    format!("malformed XML: {e}"),
                ));
            }
        };
        step.map_err(|m| Error::bad(&self.file, self.byte_place(), None, m))
    }

    /// Parses up to the data of the first TABLE; returns the Arrow fields of all FIELDs.
    fn read_header(&mut self) -> Result<Vec<Field>> {
        let mut in_table = false;
        let mut depth_in_field = false;
        let mut in_desc = false;
        let mut fields: Vec<Field> = Vec::new();
        let mut names = std::collections::HashSet::new();
        // The FIELD being read: its attributes, description, null value.
        let mut cur: Option<(Vec<(String, String)>, String, Option<String>)> = None;
        loop {
            let step = self.step()?;
            let (name, a, empty) = match step {
                Step::Start(n, a) => (n, a, false),
                Step::Empty(n, a) => (n, a, true),
                Step::Text(t) => {
                    if in_desc && let Some(c) = cur.as_mut() {
                        c.1.push_str(&t);
                    }
                    continue;
                }
                Step::End(n) => {
                    match n.as_str() {
                        "DESCRIPTION" => in_desc = false,
                        "FIELD" if depth_in_field => {
                            depth_in_field = false;
                            if let Some(c) = cur.take() {
                                fields.push(self.add_field(c, &mut names)?);
                            }
                        }
                        "TABLE" if in_table => {
                            // A table without DATA: no rows.
                            self.mode = Mode::Done;
                            return Ok(fields);
                        }
                        _ => {}
                    }
                    continue;
                }
                Step::Eof => {
                    let msg = if in_table {
                        "the document ends inside the first TABLE (file truncated?)"
                    } else {
                        "no TABLE element found: expected a VOTable document with a RESOURCE/TABLE"
                    };
                    return Err(Error::bad(&self.file, self.byte_place(), None, msg));
                }
                Step::Other => continue,
            };
            if !in_table {
                if name == "TABLE" {
                    in_table = true;
                    self.nrows = attr(&a, "nrows").and_then(|v| v.trim().parse().ok());
                    if empty {
                        self.mode = Mode::Done;
                        return Ok(fields);
                    }
                }
                continue;
            }
            match name.as_str() {
                "FIELD" => {
                    let c = (a, String::new(), None);
                    if empty {
                        fields.push(self.add_field(c, &mut names)?);
                    } else {
                        cur = Some(c);
                        depth_in_field = true;
                    }
                }
                "DESCRIPTION" if cur.is_some() && !empty => in_desc = true,
                "VALUES" => {
                    if let Some(c) = cur.as_mut() {
                        c.2 = attr(&a, "null").map(str::to_string);
                    }
                }
                "TABLEDATA" => {
                    self.mode = if empty { Mode::Done } else { Mode::TableData };
                    return Ok(fields);
                }
                "BINARY" | "BINARY2" => {
                    self.mode = Mode::Binary {
                        flags: name == "BINARY2",
                    };
                    if empty {
                        self.mode = Mode::Done;
                        return Ok(fields);
                    }
                }
                "STREAM" if matches!(self.mode, Mode::Binary { .. }) => {
                    if let Some(href) = attr(&a, "href") {
                        return Err(Error::bad(
                            &self.file,
                            self.byte_place(),
                            None,
                            format!(
                                "external STREAM href='{href}' is not supported: expected the data inline (encoding=\"base64\")"
                            ),
                        ));
                    }
                    let enc = attr(&a, "encoding").unwrap_or("none");
                    if enc != "base64" {
                        return Err(Error::bad(
                            &self.file,
                            self.byte_place(),
                            None,
                            format!(
                                "STREAM encoding='{enc}' is not supported: expected encoding=\"base64\""
                            ),
                        ));
                    }
                    if empty {
                        self.mode = Mode::Done;
                    }
                    return Ok(fields);
                }
                "FITS" => {
                    return Err(Error::bad(
                        &self.file,
                        self.byte_place(),
                        None,
                        "FITS serialisation inside a VOTable is not supported: expected TABLEDATA, BINARY or BINARY2 (convert the table, e.g. with STILTS votcopy format=binary2)",
                    ));
                }
                _ => {}
            }
        }
    }

    /// Turns a FIELD's attributes into a [`VoField`] and its Arrow field.
    fn add_field(
        &mut self,
        (a, desc, null): (Vec<(String, String)>, String, Option<String>),
        names: &mut std::collections::HashSet<String>,
    ) -> Result<Field> {
        let n = self.fields.len() + 1;
        let mut name = attr(&a, "name")
            .or_else(|| attr(&a, "ID"))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("col{n}"), str::to_string);
        if !names.insert(name.clone()) {
            let unique = format!("{name}_{n}");
            tracing::warn!(
                "{}: FIELD {n} repeats the name {name}; renamed {unique}",
                self.file
            );
            name = unique;
            names.insert(name.clone());
        }
        let place = self.byte_place();
        let dt_raw = attr(&a, "datatype").ok_or_else(|| {
            Error::bad(
                &self.file,
                &place,
                Some(&name),
                format!("FIELD without a datatype: expected one of {DATATYPES}"),
            )
        })?;
        let dt = Dt::parse(dt_raw).ok_or_else(|| {
            Error::bad(
                &self.file,
                &place,
                Some(&name),
                format!("datatype='{dt_raw}': expected one of {DATATYPES}"),
            )
        })?;
        let size_raw = attr(&a, "arraysize").unwrap_or("");
        let size = parse_arraysize(size_raw).ok_or_else(|| {
            Error::bad(
                &self.file,
                &place,
                Some(&name),
                format!(
                    "arraysize='{size_raw}': expected N, N*, * or dimensions such as 3x4 or 3x*"
                ),
            )
        })?;
        let null = match (null, dt.int_range()) {
            (Some(v), Some(_)) => match parse_int(v.trim()) {
                Some(i) => Some(i),
                None => {
                    tracing::warn!(
                        "{}: FIELD {name}: VALUES null='{v}' is not an integer; ignored",
                        self.file
                    );
                    None
                }
            },
            _ => None,
        };
        let shape = match (dt, size) {
            (Dt::Char | Dt::UChar, _) => Shape::Scalar,
            (_, Size::Scalar | Size::Fixed(1)) => Shape::Scalar,
            (_, Size::Fixed(k)) => Shape::Fixed(usize::try_from(k).map_err(|_| {
                Error::bad(
                    &self.file,
                    &place,
                    Some(&name),
                    format!("arraysize='{size_raw}' is too large"),
                )
            })?),
            (_, Size::Var { .. }) => Shape::Var,
        };
        let mut meta = std::collections::HashMap::new();
        for (key, attr_name) in [
            (UNIT, "unit"),
            (UCD, "ucd"),
            (UTYPE, "utype"),
            (XTYPE, "xtype"),
        ] {
            if let Some(v) = attr(&a, attr_name).map(str::trim).filter(|v| !v.is_empty()) {
                meta.insert(key.to_string(), v.to_string());
            }
        }
        let desc = desc.split_whitespace().collect::<Vec<_>>().join(" ");
        if !desc.is_empty() {
            meta.insert(DESCRIPTION.to_string(), desc);
        }
        let field = Field::new(
            &name,
            super::fits::colbuf::data_type(dt.kind(), shape),
            true,
        )
        .with_metadata(meta);
        self.fields.push(VoField {
            name,
            dt,
            size,
            null,
            shape,
        });
        Ok(field)
    }

    /// Builds a batch of the buffered rows, the last of which is row `rows_seen`; `None` when
    /// empty.
    fn flush(&mut self) -> Result<Option<SourceBatch>> {
        let n = self.pending_rows;
        if n == 0 {
            return Ok(None);
        }
        let arrays = self
            .bufs
            .iter_mut()
            .flatten()
            .map(ColumnBuf::finish)
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        self.pending_rows = 0;
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(Some(SourceBatch {
            batch,
            loc: RowLoc::Rows {
                first: self.rows_seen - n as u64 + 1,
            },
        }))
    }
}

impl VoTableSource {
    /// Parses one TD of the current row into its column; records the row's first error.
    fn cell(&mut self, col: usize, text: &str, row_err: &mut Option<(Option<usize>, String)>) {
        if row_err.is_some() {
            return;
        }
        let Some(f) = self.fields.get(col) else {
            *row_err = Some((
                None,
                format!("more TD cells than the {} FIELDs", self.fields.len()),
            ));
            return;
        };
        let sink = Sink(self.bufs.get_mut(col).and_then(Option::as_mut));
        if let Err(m) = parse_td(f, text, sink) {
            *row_err = Some((Some(col), m));
        }
    }

    fn next_tabledata(&mut self) -> Result<Option<SourceBatch>> {
        let mut col = 0usize;
        let mut row_err: Option<(Option<usize>, String)> = None;
        loop {
            match self.step()? {
                Step::Start(n, _) if n == "TR" => {
                    col = 0;
                    row_err = None;
                    self.marks.clear();
                    self.marks
                        .extend(self.bufs.iter().map(|b| b.as_ref().map(ColumnBuf::mark)));
                }
                Step::Start(n, _) if n == "TD" => {
                    self.td.clear();
                    self.in_td = true;
                }
                Step::Empty(n, _) if n == "TD" => {
                    self.cell(col, "", &mut row_err);
                    col += 1;
                }
                Step::Text(t) if self.in_td => self.td.push_str(&t),
                Step::End(n) if n == "TD" => {
                    self.in_td = false;
                    let text = std::mem::take(&mut self.td);
                    self.cell(col, &text, &mut row_err);
                    self.td = text;
                    col += 1;
                }
                Step::End(n) if n == "TR" => {
                    if let Some(out) = self.end_tr(col, row_err.take())? {
                        return Ok(Some(out));
                    }
                }
                Step::Empty(n, _) if n == "TR" => {
                    self.marks.clear();
                    self.marks
                        .extend(self.bufs.iter().map(|b| b.as_ref().map(ColumnBuf::mark)));
                    if let Some(out) = self.end_tr(0, None)? {
                        return Ok(Some(out));
                    }
                }
                Step::End(n) if n == "TABLEDATA" => {
                    self.mode = Mode::Done;
                    return self.flush();
                }
                Step::Eof => {
                    return Err(Error::bad(
                        &self.file,
                        format!("row {}", self.rows_seen + 1),
                        None,
                        "the document ends inside TABLEDATA: expected </TABLEDATA> (file truncated?)",
                    ));
                }
                _ => {}
            }
        }
    }

    /// Ends a TABLEDATA row of `cells` cells; returns a batch when one is complete.
    fn end_tr(
        &mut self,
        cells: usize,
        mut err: Option<(Option<usize>, String)>,
    ) -> Result<Option<SourceBatch>> {
        if err.is_none() && cells != self.fields.len() {
            err = Some((
                None,
                format!(
                    "expected {} TD cells (one per FIELD), found {cells}",
                    self.fields.len()
                ),
            ));
        }
        let Some((col, message)) = err else {
            self.rows_seen += 1;
            self.pending_rows += 1;
            if self.pending_rows >= self.batch_rows {
                return self.flush();
            }
            return Ok(None);
        };
        for (b, m) in self.bufs.iter_mut().zip(&self.marks) {
            if let (Some(b), Some(m)) = (b.as_mut(), m) {
                b.reset(*m);
            }
        }
        self.bad_rows.skip(BadRow {
            file: self.file.clone(),
            place: format!("row {}", self.rows_seen + 1),
            column: col.and_then(|c| self.fields.get(c)).map(|f| f.name.clone()),
            message,
        })?;
        // The rows before the skipped one go out now, so that a batch is always consecutive.
        let out = self.flush()?;
        self.rows_seen += 1;
        Ok(out)
    }

    /// The byte length of the next binary row if it is complete in `bytes[pos..]`.
    fn binary_row_len(&self, flags: bool) -> Result<Option<usize>> {
        let avail = &self.bytes[self.pos..];
        let mut p: u64 = if flags {
            self.fields.len().div_ceil(8) as u64
        } else {
            0
        };
        for f in &self.fields {
            let len = match f.size {
                Size::Scalar => f.dt.bytes(1),
                Size::Fixed(n) => f.dt.bytes(n),
                Size::Var { unit } => {
                    let Some(c) = avail.get(p as usize..p as usize + 4) else {
                        return Ok(None);
                    };
                    let count = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
                    f.dt.bytes(count.saturating_mul(unit)).map(|b| b + 4)
                }
            };
            let len = len.filter(|&l| l <= MAX_CELL_BYTES).ok_or_else(|| {
                Error::bad(
                    &self.file,
                    format!("row {}", self.rows_seen + 1),
                    Some(&f.name),
                    format!("array size over {MAX_CELL_BYTES} bytes in the binary stream (corrupt data?)"),
                )
            })?;
            p += len;
            if p > avail.len() as u64 {
                return Ok(None);
            }
        }
        Ok(Some(p as usize))
    }

    /// Decodes the complete binary row at `bytes[pos..pos + len]`.
    fn decode_binary_row(&mut self, flags: bool, len: usize) {
        let row = &self.bytes[self.pos..self.pos + len];
        let nflag = if flags {
            self.fields.len().div_ceil(8)
        } else {
            0
        };
        let mut p = nflag;
        for (i, (f, b)) in self.fields.iter().zip(self.bufs.iter_mut()).enumerate() {
            let null = flags && row.get(i / 8).is_some_and(|&m| (m >> (7 - i % 8)) & 1 == 1);
            let (n, start) = match f.size {
                Size::Scalar => (1u64, p),
                Size::Fixed(n) => (n, p),
                Size::Var { unit } => {
                    let c = be::<4>(row, p);
                    ((u32::from_be_bytes(c) as u64).saturating_mul(unit), p + 4)
                }
            };
            let bytes = f.dt.bytes(n).unwrap_or(0) as usize;
            let end = (start + bytes).min(row.len());
            let cell = row.get(start..end).unwrap_or(&[]);
            p = end;
            let mut sink = Sink(b.as_mut());
            if sink.0.is_none() {
                continue;
            }
            if null {
                sink.end_row(false);
            } else {
                decode_binary(f, cell, n as usize, &mut sink);
                sink.end_row(true);
            }
        }
    }

    /// Reads more base64 text of the STREAM (up to the next markup) and decodes it.
    fn fill_stream(&mut self) -> Result<()> {
        if self.pos > 0 {
            self.bytes.drain(..self.pos);
            self.pos = 0;
        }
        let hit_markup = {
            let mut s = self.reader.stream();
            let at = s.offset();
            let avail = s
                .fill_buf()
                .map_err(|e| Error::io(Path::new(&self.file), e))?;
            if avail.is_empty() {
                return Err(Error::bad(
                    &self.file,
                    format!("row {}", self.rows_seen + 1),
                    None,
                    "the document ends inside the binary STREAM: expected </STREAM> (file truncated?)",
                ));
            }
            let end = avail.iter().position(|&b| b == b'<');
            let take = end.unwrap_or(avail.len());
            for (k, &c) in avail[..take].iter().enumerate() {
                if c.is_ascii_whitespace() {
                    continue;
                }
                if !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=') {
                    return Err(Error::bad(
                        &self.file,
                        format!("byte {}", at + k as u64),
                        None,
                        format!(
                            "unexpected character '{}' in the base64 STREAM",
                            c.escape_ascii()
                        ),
                    ));
                }
                self.chars.push(c);
            }
            s.consume(take);
            end.is_some()
        };
        let whole = self.chars.len() / 4 * 4;
        let upto = if hit_markup { self.chars.len() } else { whole };
        if upto > 0 {
            B64.decode_vec(&self.chars[..upto], &mut self.bytes)
                .map_err(|e| {
                    Error::bad(
                        &self.file,
                        format!("row {}", self.rows_seen + 1),
                        None,
                        format!("invalid base64 in the STREAM: {e}"),
                    )
                })?;
            self.chars.drain(..upto);
        }
        if hit_markup {
            match self.step()? {
                Step::End(n) if n == "STREAM" => self.stream_done = true,
                // A comment or processing instruction inside the stream: keep reading.
                Step::Other => {}
                _ => {
                    return Err(Error::bad(
                        &self.file,
                        self.byte_place(),
                        None,
                        "unexpected markup inside the binary STREAM: expected base64 text and </STREAM>",
                    ));
                }
            }
        }
        Ok(())
    }

    fn next_binary(&mut self, flags: bool) -> Result<Option<SourceBatch>> {
        loop {
            while self.pending_rows < self.batch_rows {
                let Some(len) = self.binary_row_len(flags)? else {
                    break;
                };
                self.decode_binary_row(flags, len);
                self.pos += len;
                self.rows_seen += 1;
                self.pending_rows += 1;
            }
            if self.pending_rows >= self.batch_rows {
                return self.flush();
            }
            if self.stream_done {
                let left = self.bytes.len() - self.pos;
                if left > 0 {
                    return Err(Error::bad(
                        &self.file,
                        format!("row {}", self.rows_seen + 1),
                        None,
                        format!(
                            "the binary STREAM ends inside a row ({left} bytes left, a complete row needs more)"
                        ),
                    ));
                }
                self.mode = Mode::Done;
                return self.flush();
            }
            self.fill_stream()?;
        }
    }
}

impl RowSource for VoTableSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        match self.mode {
            Mode::Done => Ok(None),
            Mode::TableData => self.next_tabledata(),
            Mode::Binary { flags } => self.next_binary(flags),
        }
    }

    fn progress(&self) -> Option<f64> {
        if self.mode == Mode::Done {
            return Some(1.0);
        }
        if let Some(n) = self.nrows.filter(|&n| n > 0) {
            return Some((self.rows_seen as f64 / n as f64).min(1.0));
        }
        self.file_len
            .filter(|&l| l > 0)
            .map(|l| (self.reader.buffer_position() as f64 / l as f64).min(1.0))
    }
}
