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
//! Documents must be UTF-8 (or ASCII); other declared encodings are not converted.
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

/// An integer of type `dt`: decimal within the type's range, or hexadecimal `0x…` read as the
/// type's bit pattern (`0xFFFF` in a short is -1).
fn parse_int(s: &str, dt: Dt) -> Option<i64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        let u = u64::from_str_radix(hex, 16).ok()?;
        let bits = match dt {
            Dt::UByte => 8,
            Dt::Short => 16,
            Dt::Int => 32,
            _ => 64,
        };
        if bits < 64 && u >> bits != 0 {
            return None;
        }
        return Some(match dt {
            Dt::Short => u as u16 as i16 as i64,
            Dt::Int => u as u32 as i32 as i64,
            _ => u as i64,
        });
    }
    let v = s.strip_prefix('+').unwrap_or(s).parse::<i64>().ok()?;
    let (lo, hi) = dt.int_range().unwrap_or((i64::MIN, i64::MAX));
    (lo..=hi).contains(&v).then_some(v)
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
            // Iterators, not vectors: no allocation per cell.
            let toks = t.split(is_sep).filter(|s| !s.is_empty());
            expect(toks.clone().count() as u64)?;
            for tok in toks {
                let v = parse_int(tok, f.dt).ok_or_else(|| {
                    format!(
                        "expected an integer of type {} ({lo} to {hi}), found '{tok}'",
                        f.dt.name()
                    )
                })?;
                sink.push(if f.is_null(v) { Val::Null } else { Val::I(v) });
            }
        }
        Dt::Float | Dt::Double => {
            let toks = t.split(is_sep).filter(|s| !s.is_empty());
            expect(toks.clone().count() as u64)?;
            for tok in toks {
                let v = parse_float(tok)
                    .ok_or_else(|| format!("expected a number ({}), found '{tok}'", f.dt.name()))?;
                sink.push(Val::F(v));
            }
        }
        Dt::FComplex | Dt::DComplex => {
            let toks: Vec<&str> = t.split(is_sep).filter(|s| !s.is_empty()).collect();
            if !toks.len().is_multiple_of(2) {
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

/// A FIELD being read: its attributes, DESCRIPTION text and `VALUES null`.
type PendingField = (Vec<(String, String)>, String, Option<String>);

/// An element event reduced to what the reader needs.
enum Step {
    Start(&'static str, Vec<(String, String)>),
    Empty(&'static str, Vec<(String, String)>),
    End(&'static str),
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
    /// Whether text outside TDs is wanted (FIELD descriptions, while the header is read).
    want_text: bool,
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

/// The elements the reader looks at; any other element is `""`.
const TAGS: [&str; 12] = [
    "TABLE",
    "FIELD",
    "DESCRIPTION",
    "VALUES",
    "DATA",
    "TABLEDATA",
    "BINARY",
    "BINARY2",
    "STREAM",
    "FITS",
    "TR",
    "TD",
];

fn tag(local_name: &[u8]) -> &'static str {
    TAGS.iter()
        .find(|t| t.as_bytes() == local_name)
        .copied()
        .unwrap_or("")
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The attributes of the elements whose attributes matter.
fn attrs_of(tag: &str, e: &BytesStart<'_>) -> std::result::Result<Vec<(String, String)>, String> {
    match tag {
        "TABLE" | "FIELD" | "VALUES" | "STREAM" => attrs(e),
        _ => Ok(Vec::new()),
    }
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
            want_text: true,
            chars: Vec::new(),
            bytes: Vec::new(),
            pos: 0,
            stream_done: false,
            pending_rows: 0,
            marks: Vec::new(),
        };
        let fields = src.read_header()?;
        src.want_text = false;
        // Output schema and buffers (projection applied).
        let mut out_fields = Vec::new();
        for (f, field) in src.fields.iter().zip(fields) {
            let keep = opts.projection.as_ref().is_none_or(|p| p.contains(&f.name));
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

    /// Reads the next event as a [`Step`]. Text inside a TD goes straight to `td`; other text
    /// is only returned while the header is read.
    fn step(&mut self) -> Result<Step> {
        self.buf.clear();
        let ev = self.reader.read_event_into(&mut self.buf);
        let text: std::result::Result<Option<std::borrow::Cow<'_, str>>, String> = match &ev {
            Ok(Event::Text(t)) if self.in_td || self.want_text => t
                .decode()
                .map(Some)
                .map_err(|e| format!("bad text encoding: {e}")),
            Ok(Event::CData(t)) if self.in_td || self.want_text => t
                .decode()
                .map(Some)
                .map_err(|e| format!("bad text encoding: {e}")),
            Ok(Event::GeneralRef(r)) if self.in_td || self.want_text => {
                match r.resolve_char_ref() {
                    Ok(Some(c)) => Ok(Some(c.to_string().into())),
                    Ok(None) => {
                        let name = String::from_utf8_lossy(r).into_owned();
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => Ok(Some(s.into())),
                            None => Err(format!("unknown entity &{name};")),
                        }
                    }
                    Err(e) => Err(format!("bad character reference: {e}")),
                }
            }
            _ => Ok(None),
        };
        let step = match (text, ev) {
            (Err(m), _) => Err(m),
            (Ok(Some(t)), _) if self.in_td => {
                self.td.push_str(&t);
                Ok(Step::Other)
            }
            (Ok(Some(t)), _) => Ok(Step::Text(t.into_owned())),
            (Ok(None), Ok(Event::Start(e))) => {
                let t = tag(e.local_name().as_ref());
                attrs_of(t, &e).map(|a| Step::Start(t, a))
            }
            (Ok(None), Ok(Event::Empty(e))) => {
                let t = tag(e.local_name().as_ref());
                attrs_of(t, &e).map(|a| Step::Empty(t, a))
            }
            (Ok(None), Ok(Event::End(e))) => Ok(Step::End(tag(e.local_name().as_ref()))),
            (Ok(None), Ok(Event::Eof)) => Ok(Step::Eof),
            (Ok(None), Ok(_)) => Ok(Step::Other),
            (Ok(None), Err(e)) => {
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
        let mut cur: Option<PendingField> = None;
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
                    match n {
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
            match name {
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
        (a, desc, null): PendingField,
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
            (Some(v), Some(_)) => match parse_int(v.trim(), dt) {
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
                Step::Start("TR", _) => {
                    col = 0;
                    row_err = None;
                    self.marks.clear();
                    self.marks
                        .extend(self.bufs.iter().map(|b| b.as_ref().map(ColumnBuf::mark)));
                }
                Step::Start("TD", _) => {
                    self.td.clear();
                    self.in_td = true;
                }
                Step::Empty("TD", _) => {
                    self.cell(col, "", &mut row_err);
                    col += 1;
                }
                Step::End("TD") => {
                    self.in_td = false;
                    let text = std::mem::take(&mut self.td);
                    self.cell(col, &text, &mut row_err);
                    self.td = text;
                    col += 1;
                }
                Step::End("TR") => {
                    if let Some(out) = self.end_tr(col, row_err.take())? {
                        return Ok(Some(out));
                    }
                }
                Step::Empty("TR", _) => {
                    self.marks.clear();
                    self.marks
                        .extend(self.bufs.iter().map(|b| b.as_ref().map(ColumnBuf::mark)));
                    if let Some(out) = self.end_tr(0, None)? {
                        return Ok(Some(out));
                    }
                }
                Step::End("TABLEDATA") => {
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
                Step::End("STREAM") => self.stream_done = true,
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use arrow::array::{
        Array, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int16Array,
        Int32Array, Int64Array, ListArray, StringArray, UInt8Array,
    };
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type};
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    fn opts(batch_rows: usize) -> ReadOptions {
        ReadOptions {
            batch_rows,
            ..ReadOptions::default()
        }
    }

    fn read_path(path: &Path, o: &ReadOptions) -> Result<(RecordBatch, Vec<u64>)> {
        let mut src = VoTableSource::open(path, o)?;
        let mut batches = Vec::new();
        let mut firsts = Vec::new();
        while let Some(b) = src.next_batch()? {
            let RowLoc::Rows { first } = b.loc else {
                panic!("row locations expected")
            };
            assert_eq!(b.batch.schema(), src.schema());
            firsts.push(first);
            batches.push(b.batch);
        }
        assert_eq!(src.progress(), Some(1.0));
        Ok((
            concat_batches(&src.schema(), &batches).expect("concat"),
            firsts,
        ))
    }

    fn read_str(xml: &str, o: &ReadOptions) -> Result<(RecordBatch, Vec<u64>)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.vot");
        std::fs::write(&path, xml).expect("write");
        read_path(&path, o)
    }

    fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .as_any()
            .downcast_ref::<T>()
            .unwrap_or_else(|| {
                panic!(
                    "column {name} has type {:?}",
                    b.column_by_name(name).map(|c| c.data_type().clone())
                )
            })
    }

    fn bad(e: Error) -> (String, Option<String>, String) {
        match e {
            Error::BadInput {
                place,
                column,
                message,
                ..
            } => (place, column, message),
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ser {
        TableData,
        Binary2,
        Binary,
    }

    /// The values every serialisation of the fixture table shares, and the differences
    /// (TABLEDATA reads empty cells as null; BINARY has no null flags).
    fn check_fixture(b: &RecordBatch, ser: Ser) {
        let td = ser == Ser::TableData;
        assert_eq!(b.num_rows(), 4);
        assert_eq!(
            col::<Float64Array>(b, "ra").values().to_vec(),
            [10.0, 20.5, 30.25, 0.0]
        );
        assert_eq!(
            col::<Float64Array>(b, "dec").values().to_vec(),
            [-5.5, 0.0, 89.9, -89.9]
        );
        assert_eq!(
            col::<BooleanArray>(b, "flag").iter().collect::<Vec<_>>(),
            [Some(true), None, Some(false), Some(true)]
        );
        let u8s = col::<UInt8Array>(b, "u8").iter().collect::<Vec<_>>();
        assert_eq!(u8s, [Some(0), Some(255), None, Some(1)]);
        let i16s = col::<Int16Array>(b, "i16").iter().collect::<Vec<_>>();
        assert_eq!(i16s, [Some(-32768), Some(32767), Some(-1), None]);
        assert_eq!(
            col::<Int32Array>(b, "i32").iter().collect::<Vec<_>>(),
            [Some(1), None, Some(123456), Some(2)]
        );
        assert_eq!(
            col::<Int64Array>(b, "i64").values().to_vec(),
            [i64::MIN, i64::MAX, 0, 5]
        );
        let mag = col::<Float32Array>(b, "mag");
        assert_eq!(
            (mag.value(0), mag.value(2), mag.value(3)),
            (1.5, -2.25, 3.0e10)
        );
        if ser == Ser::Binary {
            assert!(mag.is_valid(1) && mag.value(1).is_nan());
        } else {
            assert!(mag.is_null(1));
        }
        let name = col::<StringArray>(b, "name").iter().collect::<Vec<_>>();
        match ser {
            Ser::TableData => assert_eq!(name, [Some("alpha"), None, Some("b & <c>"), None]),
            // The binary fixtures are written by astropy from the parsed TABLEDATA, where an
            // empty char cell is the empty string, not a null.
            Ser::Binary2 | Ser::Binary => {
                assert_eq!(name, [Some("alpha"), Some(""), Some("b & <c>"), Some("")])
            }
        }
        let uname = col::<StringArray>(b, "uname").iter().collect::<Vec<_>>();
        let last = if td { None } else { Some("") };
        assert_eq!(uname, [Some("été"), Some("x"), Some("中文"), last]);
        let code = col::<StringArray>(b, "code").iter().collect::<Vec<_>>();
        let third = if td { None } else { Some("") };
        assert_eq!(code, [Some("AB"), Some("ABCD"), third, Some("Z")]);

        let vec3 = col::<FixedSizeListArray>(b, "vec3");
        let v = |i: usize| vec3.value(i).as_primitive::<Int32Type>().values().to_vec();
        assert_eq!(
            [v(0), v(1), v(2), v(3)],
            [[1, 2, 3], [4, 5, 6], [7, 8, 9], [-1, 0, 1]]
        );

        let var = col::<ListArray>(b, "var");
        let v = |i: usize| var.value(i).as_primitive::<Float64Type>().values().to_vec();
        assert_eq!((v(0), v(3)), (vec![0.5, 1.5], vec![1.0, 2.0, 3.0]));
        if td {
            assert!(var.is_null(1));
        } else {
            assert!(var.is_valid(1) && v(1).is_empty());
        }
        assert!(v(2).len() == 1 && v(2)[0].is_nan());

        let cf = col::<FixedSizeListArray>(b, "cf");
        let c = |i: usize| cf.value(i).as_primitive::<Float32Type>().values().to_vec();
        assert_eq!(
            [c(0), c(1), c(2), c(3)],
            [[1.0, 2.0], [0.0, 0.0], [-1.5, 0.0], [0.25, 0.5]]
        );
        let cd = col::<FixedSizeListArray>(b, "cd");
        let c = |i: usize| cd.value(i).as_primitive::<Float64Type>().values().to_vec();
        assert_eq!(
            [c(0), c(1), c(2), c(3)],
            [[3.0, -4.0], [-0.0, -1.0], [2.5, 2.5], [1e100, 0.0]]
        );

        let bits = col::<FixedSizeListArray>(b, "bits");
        let bv = |i: usize| {
            bits.value(i)
                .as_boolean()
                .iter()
                .map(|x| x.unwrap_or(false))
                .collect::<Vec<_>>()
        };
        assert_eq!(bv(0), [true, false, true, false, true]);
        assert_eq!(bv(1), [false; 5]);
        assert_eq!(bv(2), [true; 5]);
        assert_eq!(bv(3), [false, true, false, true, false]);
    }

    #[test]
    fn tabledata_fixture() {
        let (b, firsts) =
            read_path(&fixture("votable_tabledata.xml"), &ReadOptions::default()).expect("read");
        check_fixture(&b, Ser::TableData);
        assert_eq!(firsts, [1]);
    }

    #[test]
    fn binary2_fixture() {
        let (b, _) =
            read_path(&fixture("votable_binary2.xml"), &ReadOptions::default()).expect("read");
        check_fixture(&b, Ser::Binary2);
    }

    #[test]
    fn binary_fixture() {
        let (b, _) =
            read_path(&fixture("votable_binary.xml"), &ReadOptions::default()).expect("read");
        check_fixture(&b, Ser::Binary);
    }

    #[test]
    fn types_and_metadata() {
        let src = VoTableSource::open(&fixture("votable_binary2.xml"), &ReadOptions::default())
            .expect("open");
        let schema = src.schema();
        let f = |n: &str| schema.field_with_name(n).expect("field").clone();
        assert_eq!(
            f("ra").metadata().get(UNIT).map(String::as_str),
            Some("deg")
        );
        assert_eq!(
            f("ra").metadata().get(UCD).map(String::as_str),
            Some("pos.eq.ra;meta.main")
        );
        assert_eq!(
            f("ra").metadata().get(UTYPE).map(String::as_str),
            Some("stc:Pos.ra")
        );
        assert_eq!(
            f("ra").metadata().get(DESCRIPTION).map(String::as_str),
            Some("Right ascension")
        );
        assert_eq!(
            f("mag").metadata().get(UNIT).map(String::as_str),
            Some("mag")
        );
        assert!(f("i16").metadata().is_empty());
        assert_eq!(f("u8").data_type(), &DataType::UInt8);
        assert_eq!(f("i64").data_type(), &DataType::Int64);
        assert_eq!(f("uname").data_type(), &DataType::Utf8);
        assert_eq!(f("code").data_type(), &DataType::Utf8);
        assert!(
            matches!(f("vec3").data_type(), DataType::FixedSizeList(i, 3) if i.data_type() == &DataType::Int32)
        );
        assert!(
            matches!(f("var").data_type(), DataType::List(i) if i.data_type() == &DataType::Float64)
        );
        assert!(
            matches!(f("cd").data_type(), DataType::FixedSizeList(i, 2) if i.data_type() == &DataType::Float64)
        );
        assert!(
            matches!(f("bits").data_type(), DataType::FixedSizeList(i, 5) if i.data_type() == &DataType::Boolean)
        );
    }

    #[test]
    fn batches_projection_and_zst() {
        for name in ["votable_tabledata.xml", "votable_binary2.xml"] {
            let (b, firsts) = read_path(&fixture(name), &opts(1)).expect("read");
            assert_eq!(firsts, [1, 2, 3, 4], "{name}");
            assert_eq!(
                col::<Int32Array>(&b, "i32").iter().collect::<Vec<_>>(),
                [Some(1), None, Some(123456), Some(2)]
            );

            let o = ReadOptions {
                projection: Some(vec!["dec".into(), "ra".into()]),
                batch_rows: 3,
                ..ReadOptions::default()
            };
            let (b, firsts) = read_path(&fixture(name), &o).expect("read");
            assert_eq!(firsts, [1, 4]);
            let names: Vec<_> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(names, ["ra", "dec"]);
            assert_eq!(
                col::<Float64Array>(&b, "dec").values().to_vec(),
                [-5.5, 0.0, 89.9, -89.9]
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.vot.zst");
        let raw = std::fs::read(fixture("votable_binary2.xml")).expect("read");
        std::fs::write(&path, zstd::encode_all(&raw[..], 3).expect("zstd")).expect("write");
        let (b, _) = read_path(&path, &ReadOptions::default()).expect("read");
        check_fixture(&b, Ser::Binary2);
    }

    fn doc(fields: &str, data: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE><TABLE>{fields}<DATA>{data}</DATA></TABLE></RESOURCE></VOTABLE>"#
        )
    }

    /// A large BINARY2 stream, wrapped at 76 characters, read across many input chunks.
    #[test]
    fn large_binary2_stream() {
        let n = 12_000i32;
        let mut raw = Vec::new();
        for i in 1..=n {
            let null_ra = i % 7 == 0;
            raw.push(if null_ra { 0b0100_0000 } else { 0 });
            raw.extend(i.to_be_bytes());
            raw.extend((i as f64 * 0.5).to_be_bytes());
            let len = (i % 4) as u32;
            raw.extend(len.to_be_bytes());
            for k in 0..len as i16 {
                raw.extend((i as i16).wrapping_add(k).to_be_bytes());
            }
        }
        let b64 = STANDARD.encode(&raw);
        let wrapped: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        let fields = r#"<FIELD name="id" datatype="int"/><FIELD name="ra" datatype="double"/><FIELD name="a" datatype="short" arraysize="*"/>"#;
        let xml = doc(
            fields,
            &format!(
                "<BINARY2><STREAM encoding='base64'>\n{}\n</STREAM></BINARY2>",
                wrapped.join("\n")
            ),
        );
        // Several times the 64 KiB input buffer, so the stream arrives in many chunks.
        assert!(xml.len() > 3 * 65_536);
        let (b, firsts) = read_str(&xml, &opts(1000)).expect("read");
        assert_eq!(firsts, (0..12).map(|k| k * 1000 + 1).collect::<Vec<u64>>());
        assert_eq!(
            col::<Int32Array>(&b, "id").values().to_vec(),
            (1..=n).collect::<Vec<_>>()
        );
        let ra = col::<Float64Array>(&b, "ra");
        for i in 1..=n {
            let r = (i - 1) as usize;
            assert_eq!(ra.is_null(r), i % 7 == 0, "row {i}");
            if i % 7 != 0 {
                assert_eq!(ra.value(r), i as f64 * 0.5);
            }
            let a = col::<ListArray>(&b, "a").value(r);
            let want: Vec<i16> = (0..(i % 4) as i16)
                .map(|k| (i as i16).wrapping_add(k))
                .collect();
            assert_eq!(
                a.as_primitive::<arrow::datatypes::Int16Type>()
                    .values()
                    .to_vec(),
                want
            );
        }
    }

    #[test]
    fn namespaces_and_versions() {
        // A prefixed namespace (VOTable 1.5 style) and a VOTable 1.1 without namespace.
        let prefixed = r#"<?xml version="1.0"?>
<v:VOTABLE version="1.5" xmlns:v="http://www.ivoa.net/xml/VOTable/v1.3">
 <v:RESOURCE><v:TABLE nrows="2">
  <v:FIELD name="x" datatype="int"><v:DESCRIPTION>the &lt;x&gt; &#233;</v:DESCRIPTION><v:VALUES null="-1"/></v:FIELD>
  <v:FIELD ID="flag" datatype="boolean" arraysize="3"/>
  <v:DATA><v:TABLEDATA>
   <v:TR><v:TD>0x10</v:TD><v:TD>T ? false</v:TD></v:TR>
   <v:TR><v:TD> -1 </v:TD><v:TD>TF1</v:TD></v:TR>
  </v:TABLEDATA></v:DATA></v:TABLE></v:RESOURCE></v:VOTABLE>"#;
        let (b, _) = read_str(prefixed, &ReadOptions::default()).expect("read");
        assert_eq!(
            col::<Int32Array>(&b, "x").iter().collect::<Vec<_>>(),
            [Some(16), None]
        );
        let fl = col::<FixedSizeListArray>(&b, "flag");
        assert_eq!(
            fl.value(0).as_boolean().iter().collect::<Vec<_>>(),
            [Some(true), None, Some(false)]
        );
        assert_eq!(
            fl.value(1).as_boolean().iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(true)]
        );
        let schema = b.schema();
        let x = schema.field_with_name("x").expect("x");
        assert_eq!(
            x.metadata().get(DESCRIPTION).map(String::as_str),
            Some("the <x> é")
        );

        let v11 = r#"<VOTABLE version="1.1"><RESOURCE><TABLE><FIELD name="s" datatype="char" arraysize="*"/>
            <FIELD name="c" datatype="floatComplex" arraysize="2"/>
            <DATA><TABLEDATA><TR><TD><![CDATA[a<b]]></TD><TD>1 2 3 4</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"#;
        let (b, _) = read_str(v11, &ReadOptions::default()).expect("read");
        assert_eq!(col::<StringArray>(&b, "s").value(0), "a<b");
        let c = col::<FixedSizeListArray>(&b, "c").value(0);
        let c = c.as_fixed_size_list();
        assert_eq!(
            c.value(1).as_primitive::<Float32Type>().values().to_vec(),
            [3.0, 4.0]
        );

        // A table without DATA has a schema and no rows; only the first table is read.
        let two = r#"<VOTABLE><RESOURCE><TABLE><FIELD name="a" datatype="int"/></TABLE>
            <TABLE><FIELD name="b" datatype="int"/><DATA><TABLEDATA><TR><TD>1</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("two.xml");
        std::fs::write(&path, two).expect("write");
        let mut src = VoTableSource::open(&path, &ReadOptions::default()).expect("open");
        assert_eq!(src.schema().field(0).name(), "a");
        assert!(src.next_batch().expect("next").is_none());
    }

    const TD_FIELDS: &str =
        r#"<FIELD name="id" datatype="int"/><FIELD name="mag" datatype="float"/>"#;

    fn td_rows(rows: &[(&str, &str)]) -> String {
        let trs: String = rows
            .iter()
            .map(|(a, b)| format!("<TR><TD>{a}</TD><TD>{b}</TD></TR>\n"))
            .collect();
        doc(TD_FIELDS, &format!("<TABLEDATA>{trs}</TABLEDATA>"))
    }

    #[test]
    fn bad_cells_name_row_and_column() {
        let xml = td_rows(&[("1", "1.5"), ("2", "abc"), ("3", "NaN"), ("x4", "")]);
        let (place, column, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert_eq!((place.as_str(), column.as_deref()), ("row 2", Some("mag")));
        assert!(
            msg.contains("expected a number") && msg.contains("abc"),
            "{msg}"
        );

        // With a budget of 2 bad rows, rows 2 and 4 are skipped and recorded, and every batch
        // is a run of consecutive rows.
        let o = ReadOptions {
            batch_rows: 10,
            bad_rows: BadRows::new(2),
            ..ReadOptions::default()
        };
        let (b, firsts) = read_str(&xml, &o).expect("read");
        assert_eq!(col::<Int32Array>(&b, "id").values().to_vec(), [1, 3]);
        assert!(col::<Float32Array>(&b, "mag").value(1).is_nan());
        assert_eq!(firsts, [1, 3]);
        let skipped = o.bad_rows.rows();
        assert_eq!(skipped.len(), 2);
        assert_eq!(
            (skipped[0].place.as_str(), skipped[0].column.as_deref()),
            ("row 2", Some("mag"))
        );
        assert_eq!(
            (skipped[1].place.as_str(), skipped[1].column.as_deref()),
            ("row 4", Some("id"))
        );

        // Out-of-range integers and a wrong number of cells.
        let xml = doc(
            r#"<FIELD name="s" datatype="short"/>"#,
            "<TABLEDATA><TR><TD>40000</TD></TR></TABLEDATA>",
        );
        let (place, column, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert_eq!((place.as_str(), column.as_deref()), ("row 1", Some("s")));
        assert!(msg.contains("short"), "{msg}");
        let xml = td_rows(&[("1", "2")]).replace("<TD>2</TD>", "");
        let (place, _, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert_eq!(place, "row 1");
        assert!(msg.contains("expected 2 TD cells"), "{msg}");
        let xml = doc(
            r#"<FIELD name="v" datatype="int" arraysize="3"/>"#,
            "<TABLEDATA><TR><TD>1 2</TD></TR></TABLEDATA>",
        );
        let (_, column, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert_eq!(column.as_deref(), Some("v"));
        assert!(msg.contains("expected 3"), "{msg}");
    }

    #[test]
    fn malformed_documents() {
        // XML error: mismatched end tag.
        let xml = td_rows(&[("1", "1.5")]).replace("</TD></TR>", "</TX></TR>");
        let (place, _, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert!(place.starts_with("byte "), "{place}");
        assert!(msg.contains("malformed XML"), "{msg}");

        // Truncated document.
        let xml = td_rows(&[("1", "1.5"), ("2", "2.5")]);
        let cut = &xml[..xml.find("<TR><TD>2").expect("row 2")];
        let (place, _, msg) = bad(read_str(cut, &ReadOptions::default()).unwrap_err());
        assert_eq!(place, "row 2");
        assert!(msg.contains("truncated"), "{msg}");

        // No TABLE.
        let (_, _, msg) =
            bad(read_str("<VOTABLE><RESOURCE/></VOTABLE>", &ReadOptions::default()).unwrap_err());
        assert!(msg.contains("no TABLE"), "{msg}");

        // FITS serialisation, external streams, unknown datatype.
        let xml = doc(TD_FIELDS, "<FITS><STREAM href='x.fits'/></FITS>");
        let (_, _, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert!(
            msg.contains("FITS serialisation") && msg.contains("not supported"),
            "{msg}"
        );
        let xml = doc(TD_FIELDS, "<BINARY2><STREAM href='http://x/y'/></BINARY2>");
        let (_, _, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert!(msg.contains("href"), "{msg}");
        let xml = doc(r#"<FIELD name="q" datatype="quad"/>"#, "<TABLEDATA/>");
        let (_, column, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert_eq!(column.as_deref(), Some("q"));
        assert!(msg.contains("datatype='quad'"), "{msg}");

        // BINARY2 stream cut inside row 2; bad base64.
        let mut raw = vec![0u8];
        raw.extend(1i32.to_be_bytes());
        raw.extend(1.5f32.to_be_bytes());
        raw.extend([0u8, 0, 0]);
        let xml = doc(
            TD_FIELDS,
            &format!(
                "<BINARY2><STREAM encoding='base64'>{}</STREAM></BINARY2>",
                STANDARD.encode(&raw)
            ),
        );
        let (place, _, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert_eq!(place, "row 2");
        assert!(msg.contains("ends inside a row"), "{msg}");
        let xml = doc(
            TD_FIELDS,
            "<BINARY2><STREAM encoding='base64'>AAAA*AAA</STREAM></BINARY2>",
        );
        let (_, _, msg) = bad(read_str(&xml, &ReadOptions::default()).unwrap_err());
        assert!(msg.contains("base64"), "{msg}");
    }

    /// Corrupted documents give errors, never panics.
    #[test]
    fn corrupted_documents_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.xml");
        for name in [
            "votable_tabledata.xml",
            "votable_binary2.xml",
            "votable_binary.xml",
        ] {
            let raw = std::fs::read(fixture(name)).expect("read");
            let data_at = raw.windows(6).position(|w| w == b"<DATA>").unwrap_or(0);
            for round in 0..150 {
                let mut b = raw.clone();
                for _ in 0..1 + round % 4 {
                    // Mostly in the data, sometimes in the header.
                    let from = if round % 3 == 0 { 0 } else { data_at };
                    let i = from + (next() % (b.len() - from) as u64) as usize;
                    b[i] = if round % 2 == 0 {
                        next() as u8
                    } else {
                        b"AZaz09+/= <>&"[(next() % 13) as usize]
                    };
                }
                std::fs::write(&path, &b).expect("write");
                if let Ok(mut src) = VoTableSource::open(&path, &opts(2)) {
                    while let Ok(Some(_)) = src.next_batch() {}
                }
            }
        }
    }

    #[test]
    fn arraysize_parsing() {
        assert_eq!(parse_arraysize(""), Some(Size::Scalar));
        assert_eq!(parse_arraysize("12"), Some(Size::Fixed(12)));
        assert_eq!(parse_arraysize("3x4"), Some(Size::Fixed(12)));
        assert_eq!(parse_arraysize("*"), Some(Size::Var { unit: 1 }));
        assert_eq!(parse_arraysize("10*"), Some(Size::Var { unit: 1 }));
        assert_eq!(parse_arraysize("2x3x*"), Some(Size::Var { unit: 6 }));
        assert_eq!(parse_arraysize("x"), None);
        assert_eq!(parse_arraysize("*x2"), None);
        assert_eq!(parse_int("0xff", Dt::UByte), Some(255));
        assert_eq!(parse_int("0x1ff", Dt::UByte), None);
        assert_eq!(parse_int("256", Dt::UByte), None);
        assert_eq!(parse_int("0xFFFF", Dt::Short), Some(-1));
        assert_eq!(parse_int("0xFFFFFFFFFFFFFFFF", Dt::Long), Some(-1));
        assert_eq!(parse_int("+7", Dt::Int), Some(7));
        assert_eq!(parse_int("-2147483649", Dt::Int), None);
        assert_eq!(parse_int("1.0", Dt::Long), None);
    }
}
