//! FITS binary-table reader (the first `BINTABLE` extension of a FITS file).
//!
//! The reader is hand-written: no pure-Rust crate reads every BINTABLE feature (variable-length
//! `P`/`Q` arrays from the heap, bit arrays, complex columns, the `TZEROn` unsigned-integer
//! conventions, `TNULLn`) and `fitsio` needs the cfitsio C library. The format is simple enough:
//! headers are 2880-byte blocks of 80-character cards, the table is `NAXIS2` rows of `NAXIS1`
//! bytes, big-endian, followed by the heap.
//!
//! # What is read
//!
//! * The primary header is checked (`SIMPLE = T`) and every HDU before the first `BINTABLE`
//!   extension (images, ASCII tables, random groups) is skipped by size. HDUs are numbered from
//!   0 (the primary HDU) in error messages, as astropy does: the first extension is `HDU 1`.
//! * Header cards: `KEYWORD = value / comment`, quoted strings with `''` escapes, the `CONTINUE`
//!   long-string convention. Integer, float (including `D` exponents) and logical values.
//! * Columns from `TTYPEn`/`TFORMn` (a missing `TTYPEn` gives the name `col{n}`; a repeated name
//!   gets a `_{n}` suffix). `TUNITn` → `unit`, `TUCDn` → `ucd`, `TUTYPn` → `utype`, `TCOMMn` →
//!   `description` (the comment of the `TTYPEn` card is used when `TCOMMn` is absent).
//! * Rows are streamed `batch_rows` at a time through a buffered reader; only one row buffer is
//!   held. For `P`/`Q` columns the heap is read on demand through a second file handle with a
//!   1 MiB read-ahead window, so heaps written in row order are read sequentially.
//! * `.zst`-compressed files are read as a stream, except that `P`/`Q` columns need a seekable
//!   (uncompressed) file.
//!
//! # Arrow type mapping
//!
//! | TFORM | Arrow type (repeat 1) | repeat r > 1 |
//! |-------|-----------------------|--------------|
//! | `L` | Boolean (`T`/`F`; `0` and any other byte → null) | FixedSizeList\<Boolean, r> |
//! | `X` | Boolean (the bit) | FixedSizeList\<Boolean, r> (bits, most significant first) |
//! | `B` | UInt8; Int8 with `TZERO = -128` | FixedSizeList |
//! | `I` | Int16; UInt16 with `TZERO = 32768` | FixedSizeList |
//! | `J` | Int32; UInt32 with `TZERO = 2147483648` | FixedSizeList |
//! | `K` | Int64; UInt64 with `TZERO = 9223372036854775808` | FixedSizeList |
//! | `A` | Utf8 (the `r` bytes up to the first NUL, trailing spaces trimmed) | — |
//! | `E` | Float32 | FixedSizeList |
//! | `D` | Float64 | FixedSizeList |
//! | `C` / `M` | FixedSizeList\<Float32 / Float64, 2> (re, im) | FixedSizeList of those |
//! | `P`t / `Q`t | List\<element type of t>; `PA`/`QA` → Utf8 | — |
//!
//! Any other non-trivial `TSCALn`/`TZEROn` on `B`/`I`/`J`/`K`/`E`/`D` (and on the elements of a
//! `P`/`Q` array) gives Float64 physical values `TZERO + TSCAL × stored`. `TNULLn` on an integer
//! column makes the matching *stored* values null (compared before scaling). Float NaN stays NaN.
//! Scaling of complex columns is ignored.
//!
//! # Not supported (yet)
//!
//! * `TDIMn` is ignored: multi-dimensional cells become flat FixedSizeLists, and an `A` column
//!   with a `TDIM` (an array of strings) is read as one string.
//! * Columns with repeat 0 hold no data and are left out of the schema.
//! * Only the first BINTABLE is read; ASCII `TABLE` extensions are skipped, not read.
//!
//! This module also holds `colbuf`, the column accumulator the VOTable reader shares.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use tessera_storage::columns::{DESCRIPTION, UCD, UNIT, UTYPE};

use self::colbuf::{ColumnBuf, Kind, Prim, Shape, Val};
use crate::error::{Error, Result};
use crate::source::{ReadOptions, RowLoc, RowSource, SourceBatch};

const BLOCK: usize = 2880;
const CARD: usize = 80;
/// A header longer than this many cards is taken as garbage (8 MB of header).
const MAX_CARDS: usize = 100_000;
/// Read-ahead window of the heap reader.
const HEAP_WINDOW: u64 = 1 << 20;

/// Column accumulators that build Arrow arrays of scalars, fixed-size lists, lists, complex
/// pairs and strings from element values, with row marks so that a half-appended row can be
/// rolled back. Shared by the FITS and VOTable readers.
pub(crate) mod colbuf {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, FixedSizeListArray, ListArray, PrimitiveArray, StringArray,
    };
    use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
    use arrow::datatypes::{
        DataType, Field, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
        UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    };
    use arrow::error::ArrowError;

    /// The primitive type of one element.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Prim {
        Bool,
        I8,
        U8,
        I16,
        U16,
        I32,
        U32,
        I64,
        U64,
        F32,
        F64,
    }

    impl Prim {
        pub(crate) fn data_type(self) -> DataType {
            match self {
                Prim::Bool => DataType::Boolean,
                Prim::I8 => DataType::Int8,
                Prim::U8 => DataType::UInt8,
                Prim::I16 => DataType::Int16,
                Prim::U16 => DataType::UInt16,
                Prim::I32 => DataType::Int32,
                Prim::U32 => DataType::UInt32,
                Prim::I64 => DataType::Int64,
                Prim::U64 => DataType::UInt64,
                Prim::F32 => DataType::Float32,
                Prim::F64 => DataType::Float64,
            }
        }
    }

    /// What one element is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Kind {
        /// A primitive value.
        Prim(Prim),
        /// A complex number: FixedSizeList of 2 (re, im) of the primitive (F32 or F64).
        Complex(Prim),
        /// A string: one per cell, whatever the shape.
        Text,
    }

    /// How many elements a cell holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Shape {
        /// One element.
        Scalar,
        /// Exactly n elements (FixedSizeList).
        Fixed(usize),
        /// Any number of elements (List).
        Var,
    }

    /// One element value, converted to the column's primitive type with `as` when pushed.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub(crate) enum Val {
        Null,
        Bool(bool),
        I(i64),
        U(u64),
        F(f64),
    }

    impl Val {
        fn as_i64(self) -> i64 {
            match self {
                Val::Null => 0,
                Val::Bool(b) => b as i64,
                Val::I(v) => v,
                Val::U(v) => v as i64,
                Val::F(v) => v as i64,
            }
        }
        fn as_u64(self) -> u64 {
            match self {
                Val::U(v) => v,
                other => other.as_i64() as u64,
            }
        }
        fn as_f64(self) -> f64 {
            match self {
                Val::Null => 0.0,
                Val::Bool(b) => b as i64 as f64,
                Val::I(v) => v as f64,
                Val::U(v) => v as f64,
                Val::F(v) => v,
            }
        }
        fn as_bool(self) -> bool {
            match self {
                Val::Bool(b) => b,
                other => other.as_f64() != 0.0,
            }
        }
    }

    #[derive(Debug)]
    enum Store {
        Bool(Vec<bool>),
        I8(Vec<i8>),
        U8(Vec<u8>),
        I16(Vec<i16>),
        U16(Vec<u16>),
        I32(Vec<i32>),
        U32(Vec<u32>),
        I64(Vec<i64>),
        U64(Vec<u64>),
        F32(Vec<f32>),
        F64(Vec<f64>),
        Text(String),
    }

    macro_rules! each_store {
        ($s:expr, $v:ident => $e:expr, $t:ident => $te:expr) => {
            match $s {
                Store::Bool($v) => $e,
                Store::I8($v) => $e,
                Store::U8($v) => $e,
                Store::I16($v) => $e,
                Store::U16($v) => $e,
                Store::I32($v) => $e,
                Store::U32($v) => $e,
                Store::I64($v) => $e,
                Store::U64($v) => $e,
                Store::F32($v) => $e,
                Store::F64($v) => $e,
                Store::Text($t) => $te,
            }
        };
    }

    impl Store {
        fn new(kind: Kind) -> Store {
            let p = match kind {
                Kind::Text => return Store::Text(String::new()),
                Kind::Prim(p) | Kind::Complex(p) => p,
            };
            match p {
                Prim::Bool => Store::Bool(Vec::new()),
                Prim::I8 => Store::I8(Vec::new()),
                Prim::U8 => Store::U8(Vec::new()),
                Prim::I16 => Store::I16(Vec::new()),
                Prim::U16 => Store::U16(Vec::new()),
                Prim::I32 => Store::I32(Vec::new()),
                Prim::U32 => Store::U32(Vec::new()),
                Prim::I64 => Store::I64(Vec::new()),
                Prim::U64 => Store::U64(Vec::new()),
                Prim::F32 => Store::F32(Vec::new()),
                Prim::F64 => Store::F64(Vec::new()),
            }
        }

        fn len(&self) -> usize {
            each_store!(self, v => v.len(), t => t.len())
        }

        fn truncate(&mut self, n: usize) {
            each_store!(self, v => v.truncate(n), t => {
                // Marks are taken at char boundaries, so this cannot split a char; stay safe
                // anyway.
                let mut n = n.min(t.len());
                while !t.is_char_boundary(n) {
                    n -= 1;
                }
                t.truncate(n)
            })
        }

        fn push(&mut self, v: Val) {
            match self {
                Store::Bool(s) => s.push(v.as_bool()),
                Store::I8(s) => s.push(v.as_i64() as i8),
                Store::U8(s) => s.push(v.as_i64() as u8),
                Store::I16(s) => s.push(v.as_i64() as i16),
                Store::U16(s) => s.push(v.as_i64() as u16),
                Store::I32(s) => s.push(v.as_i64() as i32),
                Store::U32(s) => s.push(v.as_i64() as u32),
                Store::I64(s) => s.push(v.as_i64()),
                Store::U64(s) => s.push(v.as_u64()),
                Store::F32(s) => s.push(v.as_f64() as f32),
                Store::F64(s) => s.push(v.as_f64()),
                Store::Text(_) => {}
            }
        }

        fn take(&mut self) -> Store {
            let empty = match self {
                Store::Bool(_) => Store::Bool(Vec::new()),
                Store::I8(_) => Store::I8(Vec::new()),
                Store::U8(_) => Store::U8(Vec::new()),
                Store::I16(_) => Store::I16(Vec::new()),
                Store::U16(_) => Store::U16(Vec::new()),
                Store::I32(_) => Store::I32(Vec::new()),
                Store::U32(_) => Store::U32(Vec::new()),
                Store::I64(_) => Store::I64(Vec::new()),
                Store::U64(_) => Store::U64(Vec::new()),
                Store::F32(_) => Store::F32(Vec::new()),
                Store::F64(_) => Store::F64(Vec::new()),
                Store::Text(_) => Store::Text(String::new()),
            };
            std::mem::replace(self, empty)
        }
    }

    /// The Arrow type of a column of `kind` elements in cells of `shape`.
    pub(crate) fn data_type(kind: Kind, shape: Shape) -> DataType {
        let elem = match kind {
            Kind::Text => return DataType::Utf8,
            Kind::Prim(p) => p.data_type(),
            Kind::Complex(p) => {
                DataType::FixedSizeList(Arc::new(Field::new_list_field(p.data_type(), true)), 2)
            }
        };
        match shape {
            Shape::Scalar => elem,
            Shape::Fixed(n) => DataType::FixedSizeList(
                Arc::new(Field::new_list_field(elem, true)),
                i32::try_from(n).unwrap_or(i32::MAX),
            ),
            Shape::Var => DataType::List(Arc::new(Field::new_list_field(elem, true))),
        }
    }

    /// Where a column stood before a row, to roll the row back.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Mark {
        rows: usize,
        elems: usize,
        flat: usize,
    }

    /// Accumulates the cells of one column for one batch.
    #[derive(Debug)]
    pub(crate) struct ColumnBuf {
        kind: Kind,
        shape: Shape,
        /// Flat primitive values (2 per complex element) or the concatenated strings.
        store: Store,
        /// Validity per element (per complex pair). Unused for text.
        valid: Vec<bool>,
        /// Validity per row.
        row_valid: Vec<bool>,
        /// End offsets per row: elements (Var) or bytes (Text), starting with 0.
        offsets: Vec<usize>,
    }

    impl ColumnBuf {
        pub(crate) fn new(kind: Kind, shape: Shape) -> ColumnBuf {
            ColumnBuf {
                kind,
                shape,
                store: Store::new(kind),
                valid: Vec::new(),
                row_valid: Vec::new(),
                offsets: vec![0],
            }
        }

        /// Rows completed so far.
        pub(crate) fn rows(&self) -> usize {
            self.row_valid.len()
        }

        /// Elements pushed so far in the current (unfinished) row.
        pub(crate) fn row_elems(&self) -> usize {
            let before = match self.shape {
                Shape::Scalar => self.rows(),
                Shape::Fixed(n) => self.rows().saturating_mul(n),
                Shape::Var => self.offsets.last().copied().unwrap_or(0),
            };
            self.valid.len().saturating_sub(before)
        }

        /// Appends one element (`Val::Null` for a null element).
        pub(crate) fn push(&mut self, v: Val) {
            let ok = !matches!(v, Val::Null);
            match self.kind {
                Kind::Text => {}
                Kind::Complex(_) => {
                    self.store.push(v);
                    self.store.push(Val::F(0.0));
                    self.valid.push(ok);
                }
                Kind::Prim(_) => {
                    self.store.push(v);
                    self.valid.push(ok);
                }
            }
        }

        /// Appends one complex element (`None` for null).
        pub(crate) fn push_complex(&mut self, v: Option<(f64, f64)>) {
            let (re, im) = v.unwrap_or((0.0, 0.0));
            self.store.push(Val::F(re));
            self.store.push(Val::F(im));
            self.valid.push(v.is_some());
        }

        /// Appends text to the current cell of a text column.
        pub(crate) fn push_str(&mut self, s: &str) {
            if let Store::Text(t) = &mut self.store {
                t.push_str(s);
            }
        }

        /// Ends the current row. Fixed-shape cells are padded with null elements (or cut) to
        /// their size; an invalid row is null whatever was pushed.
        pub(crate) fn end_row(&mut self, row_ok: bool) {
            let rows = self.rows() + 1;
            match (self.kind, self.shape) {
                (Kind::Text, _) => {
                    if !row_ok {
                        let start = self.offsets.last().copied().unwrap_or(0);
                        self.store.truncate(start);
                    }
                    self.offsets.push(self.store.len());
                }
                (_, Shape::Var) => self.offsets.push(self.valid.len()),
                (_, Shape::Scalar) => {
                    self.fit(rows);
                    if !row_ok && let Some(last) = self.valid.last_mut() {
                        *last = false;
                    }
                }
                (_, Shape::Fixed(n)) => self.fit(rows.saturating_mul(n)),
            }
            self.row_valid.push(row_ok);
        }

        /// Pads with nulls or cuts the elements to `n`.
        fn fit(&mut self, n: usize) {
            while self.valid.len() < n {
                self.push(Val::Null);
            }
            if self.valid.len() > n {
                self.valid.truncate(n);
                let per = if matches!(self.kind, Kind::Complex(_)) {
                    2
                } else {
                    1
                };
                self.store.truncate(n * per);
            }
        }

        /// The state before the current row.
        pub(crate) fn mark(&self) -> Mark {
            Mark {
                rows: self.rows(),
                elems: self.valid.len() - self.row_elems(),
                flat: match self.kind {
                    Kind::Text => self.offsets.last().copied().unwrap_or(0),
                    Kind::Complex(_) => 2 * (self.valid.len() - self.row_elems()),
                    Kind::Prim(_) => self.valid.len() - self.row_elems(),
                },
            }
        }

        /// Rolls back to a mark taken with [`ColumnBuf::mark`].
        pub(crate) fn reset(&mut self, m: Mark) {
            self.row_valid.truncate(m.rows);
            self.offsets.truncate(m.rows + 1);
            self.valid.truncate(m.elems);
            self.store.truncate(m.flat);
        }

        /// Builds the array of the rows so far and empties the buffer.
        pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
            let store = self.store.take();
            let valid = std::mem::take(&mut self.valid);
            let row_valid = std::mem::take(&mut self.row_valid);
            let offsets = std::mem::replace(&mut self.offsets, vec![0]);
            if let Store::Text(s) = store {
                let offsets = offsets_i32(offsets)?;
                let arr =
                    StringArray::try_new(offsets, Buffer::from(s.into_bytes()), nulls(row_valid))?;
                return Ok(Arc::new(arr));
            }
            let elems: ArrayRef = match self.kind {
                Kind::Complex(p) => {
                    let child = prim_array(store, None);
                    let field = Arc::new(Field::new_list_field(p.data_type(), true));
                    Arc::new(FixedSizeListArray::try_new(field, 2, child, nulls(valid))?)
                }
                _ => prim_array(store, nulls(valid)),
            };
            let item = || Arc::new(Field::new_list_field(elems.data_type().clone(), true));
            Ok(match self.shape {
                Shape::Scalar => elems,
                Shape::Fixed(n) => {
                    let n = i32::try_from(n).map_err(|_| {
                        ArrowError::InvalidArgumentError(format!("array size {n} is too large"))
                    })?;
                    Arc::new(FixedSizeListArray::try_new(
                        item(),
                        n,
                        elems,
                        nulls(row_valid),
                    )?)
                }
                Shape::Var => {
                    let offsets = offsets_i32(offsets)?;
                    Arc::new(ListArray::try_new(
                        item(),
                        offsets,
                        elems,
                        nulls(row_valid),
                    )?)
                }
            })
        }
    }

    fn offsets_i32(v: Vec<usize>) -> Result<OffsetBuffer<i32>, ArrowError> {
        let v = v
            .into_iter()
            .map(|o| {
                i32::try_from(o).map_err(|_| {
                    ArrowError::InvalidArgumentError(
                        "a batch holds more than 2^31 elements or bytes in one column; use a smaller batch"
                            .into(),
                    )
                })
            })
            .collect::<Result<Vec<i32>, _>>()?;
        // Offsets are pushed in increasing order starting at 0, so they are valid.
        Ok(OffsetBuffer::new(ScalarBuffer::from(v)))
    }

    fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
        if valid.iter().all(|&v| v) {
            None
        } else {
            Some(NullBuffer::from(valid))
        }
    }

    fn prim_array(store: Store, nulls: Option<NullBuffer>) -> ArrayRef {
        match store {
            Store::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
            Store::I8(v) => Arc::new(PrimitiveArray::<Int8Type>::new(v.into(), nulls)),
            Store::U8(v) => Arc::new(PrimitiveArray::<UInt8Type>::new(v.into(), nulls)),
            Store::I16(v) => Arc::new(PrimitiveArray::<Int16Type>::new(v.into(), nulls)),
            Store::U16(v) => Arc::new(PrimitiveArray::<UInt16Type>::new(v.into(), nulls)),
            Store::I32(v) => Arc::new(PrimitiveArray::<Int32Type>::new(v.into(), nulls)),
            Store::U32(v) => Arc::new(PrimitiveArray::<UInt32Type>::new(v.into(), nulls)),
            Store::I64(v) => Arc::new(PrimitiveArray::<Int64Type>::new(v.into(), nulls)),
            Store::U64(v) => Arc::new(PrimitiveArray::<UInt64Type>::new(v.into(), nulls)),
            Store::F32(v) => Arc::new(PrimitiveArray::<Float32Type>::new(v.into(), nulls)),
            Store::F64(v) => Arc::new(PrimitiveArray::<Float64Type>::new(v.into(), nulls)),
            Store::Text(s) => Arc::new(StringArray::from(vec![s])),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input

/// The byte stream of the file: a seekable plain file, or a decompressing stream.
enum Input {
    Plain(BufReader<File>),
    Stream(Box<dyn Read + Send>),
}

impl Input {
    /// Reads until `buf` is full or the input ends; returns the bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let r = match self {
                Input::Plain(r) => r.read(&mut buf[n..]),
                Input::Stream(r) => r.read(&mut buf[n..]),
            };
            match r {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Skips `n` bytes (possibly past the end of a plain file).
    fn skip(&mut self, n: u64) -> io::Result<()> {
        match self {
            Input::Plain(r) => {
                let n = i64::try_from(n).map_err(|_| io::Error::other("HDU too large to skip"))?;
                r.seek_relative(n)
            }
            Input::Stream(r) => io::copy(&mut r.take(n), &mut io::sink()).map(|_| ()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headers

/// One header card.
#[derive(Debug, Clone)]
struct Card {
    key: String,
    /// The value: the text of a quoted string, or the raw trimmed text of other values.
    value: Option<String>,
    is_str: bool,
    comment: String,
    /// 1-based card number within its header.
    num: usize,
}

/// One HDU header.
#[derive(Debug)]
struct Header {
    hdu: usize,
    cards: Vec<Card>,
}

/// The value field of a card (bytes 10..80, or 8..80 for CONTINUE): `(value, is_str, comment)`.
fn parse_value(field: &str) -> std::result::Result<(Option<String>, bool, String), String> {
    let s = field.trim_start();
    if let Some(rest) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if matches!(chars.peek(), Some((_, '\''))) {
                    out.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                out.push(c);
            }
        }
        let Some(end) = end else {
            return Err("unterminated quoted string (expected a closing ')".into());
        };
        let after = &rest[end..];
        let comment = match after.find('/') {
            Some(p) => after[p + 1..].trim().to_string(),
            None => String::new(),
        };
        Ok((Some(out.trim_end().to_string()), true, comment))
    } else {
        let (v, c) = match s.find('/') {
            Some(p) => (&s[..p], s[p + 1..].trim()),
            None => (s, ""),
        };
        let v = v.trim();
        Ok(((!v.is_empty()).then(|| v.to_string()), false, c.to_string()))
    }
}

impl Header {
    fn get(&self, key: &str) -> Option<&Card> {
        self.cards.iter().find(|c| c.key == key)
    }

    fn place(&self, card: Option<&Card>) -> String {
        match card {
            Some(c) => format!("HDU {} header card {}", self.hdu, c.num),
            None => format!("HDU {} header", self.hdu),
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|c| c.value.as_deref())
    }

    /// An integer keyword; `Ok(None)` when absent.
    fn int(&self, file: &str, key: &str) -> Result<Option<i64>> {
        let Some(card) = self.get(key) else {
            return Ok(None);
        };
        let raw = card.value.as_deref().unwrap_or("");
        let parsed = if card.is_str { None } else { parse_int(raw) };
        match parsed {
            Some(v) => Ok(Some(v)),
            None => Err(Error::bad(
                file,
                self.place(Some(card)),
                None,
                format!("{key} = '{raw}': expected an integer value"),
            )),
        }
    }

    /// A required integer keyword within `min..=max`.
    fn req_int(&self, file: &str, key: &str, min: i64, max: i64) -> Result<i64> {
        match self.int(file, key)? {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            Some(v) => Err(Error::bad(
                file,
                self.place(self.get(key)),
                None,
                format!("{key} = {v}: expected a value between {min} and {max}"),
            )),
            None => Err(Error::bad(
                file,
                self.place(None),
                None,
                format!("missing required keyword {key}"),
            )),
        }
    }

    /// An optional integer keyword within `min..=max`, `default` when absent.
    fn opt_int(&self, file: &str, key: &str, default: i64, min: i64, max: i64) -> Result<i64> {
        if self.get(key).is_none() {
            return Ok(default);
        }
        self.req_int(file, key, min, max)
    }

    /// A real keyword; `Ok(None)` when absent.
    fn float(&self, file: &str, key: &str) -> Result<Option<f64>> {
        let Some(card) = self.get(key) else {
            return Ok(None);
        };
        let raw = card.value.as_deref().unwrap_or("");
        let parsed = if card.is_str { None } else { parse_float(raw) };
        match parsed {
            Some(v) => Ok(Some(v)),
            None => Err(Error::bad(
                file,
                self.place(Some(card)),
                None,
                format!("{key} = '{raw}': expected a number"),
            )),
        }
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    s.parse::<i64>().ok()
}

fn parse_float(s: &str) -> Option<f64> {
    let s = s.trim().replace(['D', 'd'], "E");
    let v = s.parse::<f64>().ok()?;
    v.is_finite().then_some(v)
}

/// Reads one header. `Ok(None)` at a clean end of file (no more HDUs).
fn read_header(
    input: &mut Input,
    file: &str,
    path: &Path,
    hdu: usize,
    pos: &mut u64,
) -> Result<Option<Header>> {
    let mut cards: Vec<Card> = Vec::new();
    let mut block = vec![0u8; BLOCK];
    let mut first = true;
    loop {
        let n = input
            .read_full(&mut block)
            .map_err(|e| Error::io(path, e))?;
        *pos += n as u64;
        if n == 0 && first {
            return Ok(None);
        }
        if first && hdu == 0 && !block[..n].starts_with(b"SIMPLE  =") {
            return Err(not_fits(file));
        }
        if n < BLOCK {
            return Err(Error::bad(
                file,
                format!("HDU {hdu} header"),
                None,
                format!(
                    "the file ends inside the header (at byte {pos}); expected 2880-byte header blocks ending with an END card"
                ),
            ));
        }
        first = false;
        for raw in block.chunks_exact(CARD) {
            let num = cards.len() + 1;
            let text = String::from_utf8_lossy(raw);
            let key = text.get(..8).unwrap_or(&text).trim_end().to_string();
            if key == "END" {
                return Ok(Some(Header { hdu, cards }));
            }
            let place = || format!("HDU {hdu} header card {num}");
            let (value, is_str, comment) = if key == "CONTINUE" {
                parse_value(text.get(8..).unwrap_or(""))
                    .map_err(|m| Error::bad(file, place(), None, m))?
            } else if text.get(8..10) == Some("= ") {
                parse_value(text.get(10..).unwrap_or(""))
                    .map_err(|m| Error::bad(file, place(), None, m))?
            } else {
                (None, false, String::new())
            };
            if key == "CONTINUE"
                && is_str
                && let Some(prev) = cards.iter_mut().rev().find(|c| c.value.is_some())
                && prev.is_str
                && let Some(v) = prev.value.as_mut()
                && v.ends_with('&')
            {
                v.pop();
                v.push_str(value.as_deref().unwrap_or(""));
                continue;
            }
            cards.push(Card {
                key,
                value,
                is_str,
                comment,
                num,
            });
        }
        if cards.len() > MAX_CARDS {
            return Err(Error::bad(
                file,
                format!("HDU {hdu} header"),
                None,
                format!("no END card in the first {MAX_CARDS} cards; this is not a FITS header"),
            ));
        }
    }
}

fn not_fits(file: &str) -> Error {
    Error::bad(
        file,
        "HDU 0 header card 1",
        None,
        "not a FITS file: expected the first card to be 'SIMPLE  =                    T'",
    )
}

/// Size in bytes of the data of an HDU, padded to whole blocks.
fn data_size(h: &Header, file: &str) -> Result<u64> {
    let bitpix = h.req_int(file, "BITPIX", -64, 64)?;
    if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
        return Err(Error::bad(
            file,
            h.place(h.get("BITPIX")),
            None,
            format!("BITPIX = {bitpix}: expected 8, 16, 32, 64, -32 or -64"),
        ));
    }
    let naxis = h.req_int(file, "NAXIS", 0, 999)?;
    if naxis == 0 {
        return Ok(0);
    }
    let mut dims = Vec::new();
    for i in 1..=naxis {
        dims.push(h.req_int(file, &format!("NAXIS{i}"), 0, i64::MAX)? as u64);
    }
    let groups = h.cards.first().is_some_and(|c| c.key == "SIMPLE")
        && h.get("GROUPS").and_then(|c| c.value.as_deref()) == Some("T")
        && dims.first() == Some(&0);
    let dims = if groups { &dims[1..] } else { &dims[..] };
    let overflow = || Error::bad(file, h.place(None), None, "the data size overflows 64 bits");
    let prod = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    let pcount = h.opt_int(file, "PCOUNT", 0, 0, i64::MAX)? as u64;
    let gcount = h.opt_int(file, "GCOUNT", 1, 0, i64::MAX)? as u64;
    let bits = prod
        .checked_add(pcount)
        .and_then(|v| v.checked_mul(gcount))
        .and_then(|v| v.checked_mul(bitpix.unsigned_abs() / 8))
        .ok_or_else(overflow)?;
    bits.div_ceil(BLOCK as u64)
        .checked_mul(BLOCK as u64)
        .ok_or_else(overflow)
}

// ---------------------------------------------------------------------------------------------
// Columns

/// The element type letter of a TFORM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    L,
    X,
    B,
    I,
    J,
    K,
    A,
    E,
    D,
    C,
    M,
}

impl Elem {
    fn from_letter(c: char) -> Option<Elem> {
        Some(match c {
            'L' => Elem::L,
            'X' => Elem::X,
            'B' => Elem::B,
            'I' => Elem::I,
            'J' => Elem::J,
            'K' => Elem::K,
            'A' => Elem::A,
            'E' => Elem::E,
            'D' => Elem::D,
            'C' => Elem::C,
            'M' => Elem::M,
            _ => return None,
        })
    }

    /// Bytes per element (X is handled by bit count).
    fn size(self) -> usize {
        match self {
            Elem::L | Elem::X | Elem::B | Elem::A => 1,
            Elem::I => 2,
            Elem::J | Elem::E => 4,
            Elem::K | Elem::D | Elem::C => 8,
            Elem::M => 16,
        }
    }

    /// Bytes for `n` elements.
    fn bytes(self, n: u64) -> Option<u64> {
        match self {
            Elem::X => Some(n.div_ceil(8)),
            e => n.checked_mul(e.size() as u64),
        }
    }

    fn is_int(self) -> bool {
        matches!(self, Elem::B | Elem::I | Elem::J | Elem::K)
    }
}

/// A parsed TFORM: `repeat`, the element type, and for `P`/`Q` descriptors `Some(is_q)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tform {
    repeat: u64,
    elem: Elem,
    var: Option<bool>,
}

const TFORM_HELP: &str =
    "expected [repeat]L|X|B|I|J|K|A|E|D|C|M or [0|1]P<type>[(max)] / [0|1]Q<type>[(max)]";

fn parse_tform(s: &str) -> std::result::Result<Tform, String> {
    let t = s.trim().to_ascii_uppercase();
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    let repeat = if digits == 0 {
        1
    } else {
        t[..digits]
            .parse::<u64>()
            .map_err(|_| format!("repeat count too large; {TFORM_HELP}"))?
    };
    let mut rest = t[digits..].chars();
    let Some(letter) = rest.next() else {
        return Err(format!("no type letter; {TFORM_HELP}"));
    };
    let tail: String = rest.collect();
    if letter == 'P' || letter == 'Q' {
        let mut tc = tail.chars();
        let elem = tc.next().and_then(Elem::from_letter).ok_or_else(|| {
            format!("missing or unknown array element type after {letter}; {TFORM_HELP}")
        })?;
        let after: String = tc.collect();
        let ok_tail = after.is_empty()
            || (after.starts_with('(')
                && after.ends_with(')')
                && after.len() > 2
                && after[1..after.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_digit()));
        if !ok_tail {
            return Err(format!(
                "unexpected '{after}' after {letter}{elem:?}; {TFORM_HELP}"
            ));
        }
        if repeat > 1 {
            return Err(format!(
                "repeat {repeat} of a {letter} descriptor; {TFORM_HELP}"
            ));
        }
        return Ok(Tform {
            repeat,
            elem,
            var: Some(letter == 'Q'),
        });
    }
    let elem = Elem::from_letter(letter)
        .ok_or_else(|| format!("unknown type '{letter}'; {TFORM_HELP}"))?;
    // `rAw` (fixed-width substrings) is allowed; nothing else may follow the letter.
    let substring_width = elem == Elem::A && tail.chars().all(|c| c.is_ascii_digit());
    if !tail.is_empty() && !substring_width {
        return Err(format!(
            "unexpected '{tail}' after the type letter; {TFORM_HELP}"
        ));
    }
    Ok(Tform {
        repeat,
        elem,
        var: None,
    })
}

/// How stored integers become values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    /// Stored values as they are.
    None,
    /// The TZERO unsigned (or for B, signed) convention: flip the sign bit.
    Flip,
    /// Physical value `zero + scale × stored` as Float64.
    Linear { scale: f64, zero: f64 },
}

/// A table column.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// Byte offset in the row and width in bytes.
    offset: usize,
    width: usize,
    tform: Tform,
    scale: Scale,
    tnull: Option<i64>,
    kind: Kind,
    shape: Shape,
}

impl Column {
    /// Decodes `count` elements from `bytes` into `buf` (not ending the row).
    fn decode(&self, bytes: &[u8], count: usize, buf: &mut ColumnBuf) {
        let tnull = self.tnull;
        let int = |raw: i64| -> Val {
            if tnull == Some(raw) {
                return Val::Null;
            }
            match self.scale {
                Scale::None => Val::I(raw),
                Scale::Flip => match self.tform.elem {
                    Elem::B => Val::I(raw - 128),
                    Elem::I => Val::I(raw + 32768),
                    Elem::J => Val::I(raw + 2_147_483_648),
                    _ => Val::U((raw as u64) ^ (1 << 63)),
                },
                Scale::Linear { scale, zero } => Val::F(zero + scale * raw as f64),
            }
        };
        let float = |v: f64| -> Val {
            match self.scale {
                Scale::Linear { scale, zero } => Val::F(zero + scale * v),
                _ => Val::F(v),
            }
        };
        match self.tform.elem {
            Elem::L => {
                for &b in bytes.iter().take(count) {
                    buf.push(match b {
                        b'T' => Val::Bool(true),
                        b'F' => Val::Bool(false),
                        _ => Val::Null,
                    });
                }
            }
            Elem::X => {
                for i in 0..count {
                    let byte = bytes.get(i / 8).copied().unwrap_or(0);
                    buf.push(Val::Bool((byte >> (7 - i % 8)) & 1 == 1));
                }
            }
            Elem::A => {
                let bytes = &bytes[..count.min(bytes.len())];
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                let s = String::from_utf8_lossy(&bytes[..end]);
                buf.push_str(s.trim_end_matches(' '));
            }
            Elem::B => bytes
                .iter()
                .take(count)
                .for_each(|&b| buf.push(int(b as i64))),
            Elem::I => {
                for c in bytes.chunks_exact(2).take(count) {
                    buf.push(int(i16::from_be_bytes([c[0], c[1]]) as i64));
                }
            }
            Elem::J => {
                for c in bytes.chunks_exact(4).take(count) {
                    buf.push(int(i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as i64));
                }
            }
            Elem::K => {
                for c in bytes.chunks_exact(8).take(count) {
                    buf.push(int(i64::from_be_bytes(be8(c))));
                }
            }
            Elem::E => {
                for c in bytes.chunks_exact(4).take(count) {
                    buf.push(float(f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64));
                }
            }
            Elem::D => {
                for c in bytes.chunks_exact(8).take(count) {
                    buf.push(float(f64::from_be_bytes(be8(c))));
                }
            }
            Elem::C => {
                for c in bytes.chunks_exact(8).take(count) {
                    let re = f32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                    let im = f32::from_be_bytes([c[4], c[5], c[6], c[7]]);
                    buf.push_complex(Some((re as f64, im as f64)));
                }
            }
            Elem::M => {
                for c in bytes.chunks_exact(16).take(count) {
                    let re = f64::from_be_bytes(be8(&c[..8]));
                    let im = f64::from_be_bytes(be8(&c[8..]));
                    buf.push_complex(Some((re, im)));
                }
            }
        }
    }
}

/// The first 8 bytes of `c` (zero-padded if shorter).
fn be8(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    for (d, s) in a.iter_mut().zip(c) {
        *d = *s;
    }
    a
}

/// The Arrow element kind of a column's elements.
fn element_kind(elem: Elem, scale: Scale) -> Kind {
    let linear = matches!(scale, Scale::Linear { .. });
    let flip = scale == Scale::Flip;
    Kind::Prim(match elem {
        Elem::L | Elem::X => Prim::Bool,
        Elem::A => return Kind::Text,
        Elem::C => return Kind::Complex(Prim::F32),
        Elem::M => return Kind::Complex(Prim::F64),
        _ if linear => Prim::F64,
        Elem::B if flip => Prim::I8,
        Elem::B => Prim::U8,
        Elem::I if flip => Prim::U16,
        Elem::I => Prim::I16,
        Elem::J if flip => Prim::U32,
        Elem::J => Prim::I32,
        Elem::K if flip => Prim::U64,
        Elem::K => Prim::I64,
        Elem::E => Prim::F32,
        Elem::D => Prim::F64,
    })
}

/// The scaling of a column from its TSCAL/TZERO (raw TZERO text kept for the exact 2^63 test).
fn scaling(elem: Elem, tscal: f64, tzero: f64, tzero_raw: Option<&str>) -> Scale {
    if tscal == 1.0 && tzero == 0.0 {
        return Scale::None;
    }
    if matches!(elem, Elem::L | Elem::X | Elem::A | Elem::C | Elem::M) {
        return Scale::None;
    }
    if tscal == 1.0 {
        let exact = tzero_raw.and_then(|r| r.trim().trim_start_matches('+').parse::<i128>().ok());
        let flip = match elem {
            Elem::B => tzero == -128.0,
            Elem::I => tzero == 32768.0,
            Elem::J => tzero == 2_147_483_648.0,
            // 2^63 is not exact in f64 neighbourhoods, so insist on the exact integer text
            // when the value is written as an integer.
            Elem::K => exact.map_or(tzero == 9_223_372_036_854_775_808.0, |v| v == 1i128 << 63),
            _ => false,
        };
        if flip {
            return Scale::Flip;
        }
    }
    Scale::Linear {
        scale: tscal,
        zero: tzero,
    }
}

// ---------------------------------------------------------------------------------------------
// Heap

/// Reads `P`/`Q` array data from the heap through its own file handle, with a read-ahead window.
#[derive(Debug)]
struct Heap {
    file: File,
    /// Absolute file offsets of the heap start (THEAP) and of the end of the data.
    start: u64,
    end: u64,
    win_start: u64,
    win: Vec<u8>,
}

impl Heap {
    /// The `len` bytes at heap offset `off`, or a message saying why not.
    fn fetch(&mut self, off: u64, len: u64) -> std::result::Result<&[u8], String> {
        let abs = self.start.checked_add(off).ok_or("heap offset overflows")?;
        let abs_end = abs.checked_add(len).ok_or("heap offset overflows")?;
        if abs_end > self.end {
            return Err(format!(
                "array descriptor ({len} bytes at heap offset {off}) points past the end of the heap ({} bytes)",
                self.end.saturating_sub(self.start)
            ));
        }
        let win_end = self.win_start + self.win.len() as u64;
        if abs < self.win_start || abs_end > win_end {
            let want = len.max(HEAP_WINDOW).min(self.end - abs);
            let want = usize::try_from(want).map_err(|_| "heap array too large")?;
            self.win.resize(want, 0);
            let r = self
                .file
                .seek(SeekFrom::Start(abs))
                .and_then(|_| self.file.read_exact(&mut self.win));
            if let Err(e) = r {
                self.win.clear();
                return Err(format!(
                    "cannot read heap bytes at file offset {abs}: {e} (file truncated?)"
                ));
            }
            self.win_start = abs;
        }
        let a = (abs - self.win_start) as usize;
        let b = a + len as usize;
        self.win
            .get(a..b)
            .ok_or_else(|| "heap window error".to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// The source

/// Reads the first BINTABLE extension of a FITS file as Arrow batches.
pub struct FitsSource {
    file: String,
    schema: SchemaRef,
    /// The columns produced (projection applied), each with its buffer.
    out: Vec<(Column, ColumnBuf)>,
    input: Input,
    heap: Option<Heap>,
    row_len: usize,
    nrows: u64,
    rows_read: u64,
    row_buf: Vec<u8>,
    batch_rows: usize,
    /// Absolute offset of the table data.
    data_start: u64,
}

impl fmt::Debug for FitsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FitsSource")
            .field("file", &self.file)
            .field("schema", &self.schema)
            .field("rows", &self.nrows)
            .field("rows_read", &self.rows_read)
            .finish_non_exhaustive()
    }
}

impl FitsSource {
    /// Opens `path` and reads the headers up to the first BINTABLE extension.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let file = path.display().to_string();
        let name = path.to_string_lossy();
        let compressed = name.ends_with(".zst") || name.ends_with(".gz");
        let (mut input, file_len) = if compressed {
            (
                Input::Stream(crate::source::open_maybe_compressed(path)?),
                None,
            )
        } else {
            let f = File::open(path).map_err(|e| Error::io(path, e))?;
            let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
            (
                Input::Plain(BufReader::with_capacity(1 << 20, f)),
                Some(len),
            )
        };

        let mut pos = 0u64;
        let primary = read_header(&mut input, &file, path, 0, &mut pos)?;
        let primary = match primary {
            Some(h)
                if h.cards
                    .first()
                    .is_some_and(|c| c.key == "SIMPLE" && c.value.as_deref() == Some("T")) =>
            {
                h
            }
            _ => return Err(not_fits(&file)),
        };
        let mut skip = data_size(&primary, &file)?;
        let mut seen = vec!["primary".to_string()];
        let mut hdu = 0;
        let header = loop {
            input.skip(skip).map_err(|e| Error::io(path, e))?;
            pos += skip;
            hdu += 1;
            let Some(h) = read_header(&mut input, &file, path, hdu, &mut pos)? else {
                return Err(Error::bad(
                    &file,
                    format!("HDU {hdu}"),
                    None,
                    format!(
                        "no BINTABLE extension found: expected a binary table, the file holds {} ({})",
                        if seen.len() == 1 {
                            "only a primary HDU".to_string()
                        } else {
                            format!("{} HDUs", seen.len())
                        },
                        seen.join(", ")
                    ),
                ));
            };
            let xt = h.str("XTENSION").unwrap_or("").trim().to_string();
            if h.cards.first().map(|c| c.key.as_str()) != Some("XTENSION") {
                return Err(Error::bad(
                    &file,
                    format!("HDU {hdu} header card 1"),
                    None,
                    "expected an XTENSION card at the start of an extension header",
                ));
            }
            if xt == "BINTABLE" || xt == "A3DTABLE" {
                break h;
            }
            seen.push(format!(
                "{} extension",
                if xt.is_empty() { "unnamed" } else { &xt }
            ));
            skip = data_size(&h, &file)?;
        };
        let data_start = pos;

        let h = &header;
        let f = file.as_str();
        let bitpix = h.req_int(f, "BITPIX", -64, 64)?;
        if bitpix != 8 {
            return Err(Error::bad(
                f,
                h.place(h.get("BITPIX")),
                None,
                format!("BITPIX = {bitpix}: a BINTABLE needs 8"),
            ));
        }
        let naxis = h.req_int(f, "NAXIS", 0, 999)?;
        if naxis != 2 {
            return Err(Error::bad(
                f,
                h.place(h.get("NAXIS")),
                None,
                format!("NAXIS = {naxis}: a BINTABLE needs 2"),
            ));
        }
        let naxis1 = h.req_int(f, "NAXIS1", 0, i32::MAX as i64)? as u64;
        let naxis2 = h.req_int(f, "NAXIS2", 0, i64::MAX)? as u64;
        let pcount = h.opt_int(f, "PCOUNT", 0, 0, i64::MAX)? as u64;
        h.opt_int(f, "GCOUNT", 1, 1, 1)?;
        let tfields = h.req_int(f, "TFIELDS", 0, 999)? as usize;
        let overflow = || {
            Error::bad(
                f,
                h.place(None),
                None,
                "NAXIS1 × NAXIS2 + PCOUNT overflows 64 bits",
            )
        };
        let main = naxis1.checked_mul(naxis2).ok_or_else(overflow)?;
        let total = main.checked_add(pcount).ok_or_else(overflow)?;
        let theap = h.opt_int(f, "THEAP", main as i64, 0, i64::MAX)? as u64;
        if theap < main || theap > total {
            return Err(Error::bad(
                f,
                h.place(h.get("THEAP")),
                None,
                format!(
                    "THEAP = {theap}: expected a value between NAXIS1 × NAXIS2 = {main} and NAXIS1 × NAXIS2 + PCOUNT = {total}"
                ),
            ));
        }

        // Columns.
        let mut columns: Vec<Column> = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        let mut offset = 0usize;
        let mut names = std::collections::HashSet::new();
        for n in 1..=tfields {
            let key = |k: &str| format!("{k}{n}");
            let ttype = h.get(&key("TTYPE"));
            let mut name = ttype
                .and_then(|c| c.value.as_deref())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map_or_else(|| format!("col{n}"), str::to_string);
            if !names.insert(name.clone()) {
                let unique = format!("{name}_{n}");
                tracing::warn!("{file}: column {n} repeats the name {name}; renamed {unique}");
                name = unique;
                names.insert(name.clone());
            }
            let tform_card = h.get(&key("TFORM"));
            let Some(tform_raw) = tform_card.and_then(|c| c.value.as_deref()) else {
                return Err(Error::bad(
                    f,
                    h.place(None),
                    Some(&name),
                    format!("missing TFORM{n} (TFIELDS = {tfields})"),
                ));
            };
            let tform = parse_tform(tform_raw).map_err(|m| {
                Error::bad(
                    f,
                    h.place(tform_card),
                    Some(&name),
                    format!("bad TFORM{n} = '{tform_raw}': {m}"),
                )
            })?;
            let width = match tform.var {
                Some(false) => 8 * tform.repeat,
                Some(true) => 16 * tform.repeat,
                None => tform.elem.bytes(tform.repeat).unwrap_or(u64::MAX),
            };
            let width = usize::try_from(width)
                .ok()
                .filter(|&w| w <= naxis1 as usize)
                .ok_or_else(|| {
                    Error::bad(
                        f,
                        h.place(tform_card),
                        Some(&name),
                        format!(
                            "TFORM{n} = '{tform_raw}' is wider than the row (NAXIS1 = {naxis1})"
                        ),
                    )
                })?;
            let tscal = h.float(f, &key("TSCAL"))?.unwrap_or(1.0);
            let tzero = h.float(f, &key("TZERO"))?.unwrap_or(0.0);
            let scale = scaling(tform.elem, tscal, tzero, h.str(&key("TZERO")));
            let tnull = if tform.elem.is_int() {
                h.int(f, &key("TNULL"))?
            } else {
                None
            };
            let kind = element_kind(tform.elem, scale);
            let shape = match (tform.var, tform.elem) {
                (Some(_), Elem::A) => Shape::Scalar,
                (Some(_), _) => Shape::Var,
                (None, Elem::A) => Shape::Scalar,
                (None, _) if tform.repeat == 1 => Shape::Scalar,
                (None, _) => Shape::Fixed(tform.repeat as usize),
            };
            let col = Column {
                name: name.clone(),
                offset,
                width,
                tform,
                scale,
                tnull,
                kind,
                shape,
            };
            offset = offset.checked_add(width).ok_or_else(overflow)?;
            if tform.repeat == 0 {
                continue;
            }
            let mut meta = std::collections::HashMap::new();
            let mut put = |k: &str, v: Option<&str>| {
                if let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) {
                    meta.insert(k.to_string(), v.to_string());
                }
            };
            put(UNIT, h.str(&key("TUNIT")));
            put(UCD, h.str(&key("TUCD")));
            put(UTYPE, h.str(&key("TUTYP")));
            put(
                DESCRIPTION,
                h.str(&key("TCOMM")).or(ttype.map(|c| c.comment.as_str())),
            );
            let field = Field::new(&name, colbuf::data_type(kind, shape), true).with_metadata(meta);
            columns.push(col);
            fields.push(field);
        }
        if offset as u64 != naxis1 {
            return Err(Error::bad(
                f,
                h.place(h.get("NAXIS1")),
                None,
                format!("NAXIS1 = {naxis1} but the column TFORMs add up to {offset} bytes per row"),
            ));
        }

        // Projection.
        let keep: Vec<bool> = match &opts.projection {
            Some(p) => columns.iter().map(|c| p.contains(&c.name)).collect(),
            None => vec![true; columns.len()],
        };
        let mut out = Vec::new();
        let mut out_fields = Vec::new();
        for ((col, field), k) in columns.into_iter().zip(fields).zip(keep) {
            if k {
                out.push((col.clone(), ColumnBuf::new(col.kind, col.shape)));
                out_fields.push(field);
            }
        }

        // Truncation and heap.
        if let Some(len) = file_len {
            let have = len.saturating_sub(data_start);
            if have < main {
                let row = have / naxis1.max(1) + 1;
                return Err(Error::bad(
                    f,
                    format!("row {row}"),
                    None,
                    format!(
                        "file truncated: the table needs NAXIS1 × NAXIS2 = {naxis1} × {naxis2} = {main} bytes after byte {data_start}, but the file is {len} bytes long; rows from {row} on are missing"
                    ),
                ));
            }
        }
        let has_var = out.iter().any(|(c, _)| c.tform.var.is_some());
        let heap = if has_var {
            let Some(len) = file_len else {
                return Err(Error::Usage(format!(
                    "{file}: variable-length (P/Q) columns cannot be read from a compressed FITS file; decompress it first"
                )));
            };
            let end = data_start + total;
            if len < end {
                return Err(Error::bad(
                    f,
                    format!("HDU {} heap", header.hdu),
                    None,
                    format!(
                        "file truncated: the heap needs PCOUNT = {pcount} bytes after the table (up to byte {end}) but the file is {len} bytes long"
                    ),
                ));
            }
            Some(Heap {
                file: File::open(path).map_err(|e| Error::io(path, e))?,
                start: data_start + theap,
                end,
                win_start: 0,
                win: Vec::new(),
            })
        } else {
            None
        };

        Ok(FitsSource {
            file,
            schema: Arc::new(Schema::new(out_fields)),
            out,
            input,
            heap,
            row_len: naxis1 as usize,
            nrows: naxis2,
            rows_read: 0,
            row_buf: vec![0; naxis1 as usize],
            batch_rows: opts.batch_rows.max(1),
            data_start,
        })
    }

    /// Decodes the row in `row_buf` into the column buffers.
    fn decode_row(&mut self) -> Result<()> {
        let rownum = self.rows_read + 1;
        for (col, buf) in &mut self.out {
            let Some(cell) = self.row_buf.get(col.offset..col.offset + col.width) else {
                return Err(Error::Internal(format!(
                    "column {} outside the row",
                    col.name
                )));
            };
            match col.tform.var {
                None => col.decode(cell, col.tform.repeat as usize, buf),
                Some(is_q) => {
                    let (count, off) = if is_q {
                        (
                            i64::from_be_bytes(be8(cell)),
                            i64::from_be_bytes(be8(cell.get(8..).unwrap_or(&[]))),
                        )
                    } else {
                        let w = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64;
                        match (cell.get(..4), cell.get(4..8)) {
                            (Some(a), Some(b)) => (w(a), w(b)),
                            _ => (0, 0),
                        }
                    };
                    if col.tform.repeat > 0 {
                        let bad = |m: String| {
                            Error::bad(&self.file, format!("row {rownum}"), Some(&col.name), m)
                        };
                        if count < 0 || off < 0 {
                            return Err(bad(format!(
                                "array descriptor (count {count}, offset {off}): expected non-negative values"
                            )));
                        }
                        let len = col
                            .tform
                            .elem
                            .bytes(count as u64)
                            .ok_or_else(|| bad("array too large".into()))?;
                        let heap = self
                            .heap
                            .as_mut()
                            .ok_or_else(|| Error::Internal("heap not opened".into()))?;
                        let bytes = heap.fetch(off as u64, len).map_err(bad)?;
                        let count =
                            usize::try_from(count).map_err(|_| bad("array too large".into()))?;
                        col.decode(bytes, count, buf);
                    }
                }
            }
            buf.end_row(true);
        }
        Ok(())
    }
}

impl RowSource for FitsSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.rows_read >= self.nrows {
            return Ok(None);
        }
        let first = self.rows_read + 1;
        let n = (self.nrows - self.rows_read).min(self.batch_rows as u64) as usize;
        for _ in 0..n {
            let got = self
                .input
                .read_full(&mut self.row_buf)
                .map_err(|e| Error::io(Path::new(&self.file), e))?;
            if got < self.row_len {
                let row = self.rows_read + 1;
                return Err(Error::bad(
                    &self.file,
                    format!("row {row}"),
                    None,
                    format!(
                        "file truncated: expected NAXIS2 = {} rows of NAXIS1 = {} bytes after byte {}, the data ends inside row {row}",
                        self.nrows, self.row_len, self.data_start
                    ),
                ));
            }
            self.decode_row()?;
            self.rows_read += 1;
        }
        let arrays = self
            .out
            .iter_mut()
            .map(|(_, b)| b.finish())
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(Some(SourceBatch {
            batch,
            loc: RowLoc::Rows { first },
        }))
    }

    fn progress(&self) -> Option<f64> {
        if self.nrows == 0 {
            return Some(1.0);
        }
        Some(self.rows_read as f64 / self.nrows as f64)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use arrow::array::{
        Array, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int8Array,
        Int16Array, Int32Array, Int64Array, ListArray, StringArray, UInt8Array, UInt16Array,
        UInt32Array, UInt64Array,
    };
    use arrow::compute::concat_batches;
    use arrow::datatypes::DataType;

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

    /// Reads every batch; returns them with their first-row numbers.
    fn read_all(src: &mut FitsSource) -> (Vec<RecordBatch>, Vec<u64>) {
        let mut batches = Vec::new();
        let mut firsts = Vec::new();
        while let Some(b) = src.next_batch().expect("batch") {
            let RowLoc::Rows { first } = b.loc else {
                panic!("row locations expected")
            };
            assert_eq!(b.batch.schema(), src.schema());
            firsts.push(first);
            batches.push(b.batch);
        }
        (batches, firsts)
    }

    fn read_one(path: &Path, o: &ReadOptions) -> RecordBatch {
        let mut src = FitsSource::open(path, o).expect("open");
        let (batches, _) = read_all(&mut src);
        concat_batches(&src.schema(), &batches).expect("concat")
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

    fn opt<T: Array>(a: &T, f: impl Fn(usize) -> String) -> Vec<Option<String>> {
        (0..a.len()).map(|i| a.is_valid(i).then(|| f(i))).collect()
    }

    fn list_i32(a: &ListArray) -> Vec<Vec<i32>> {
        (0..a.len())
            .map(|i| {
                a.value(i)
                    .as_primitive::<arrow::datatypes::Int32Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    fn meta<'a>(b: &'a RecordBatch, name: &str, key: &str) -> Option<&'a str> {
        let schema = b.schema_ref();
        let f = schema.field_with_name(name).expect("field");
        f.metadata().get(key).map(String::as_str)
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

    #[test]
    fn every_tform_type() {
        let b = read_one(&fixture("fits_types.fits"), &ReadOptions::default());
        assert_eq!(b.num_rows(), 4);
        let s = |v: &[Option<&str>]| v.iter().map(|o| o.map(str::to_string)).collect::<Vec<_>>();

        let flag = col::<BooleanArray>(&b, "flag");
        assert_eq!(
            flag.iter().collect::<Vec<_>>(),
            [Some(true), Some(false), None, Some(true)]
        );
        let flags3 = col::<FixedSizeListArray>(&b, "flags3");
        assert_eq!(flags3.value_length(), 3);
        assert_eq!(
            flags3.value(2).as_boolean().iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(true)]
        );
        let bit = col::<BooleanArray>(&b, "bit");
        assert_eq!(
            bit.iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(true), Some(false)]
        );
        let bits10 = col::<FixedSizeListArray>(&b, "bits10");
        assert_eq!(bits10.value_length(), 10);
        let bits = |i: usize| {
            bits10
                .value(i)
                .as_boolean()
                .iter()
                .map(|v| v.unwrap_or(false))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(0), (0..10).map(|i| i % 2 == 0).collect::<Vec<_>>());
        assert_eq!(bits(1), (0..10).map(|i| i < 3).collect::<Vec<_>>());

        assert_eq!(
            col::<UInt8Array>(&b, "u8").iter().collect::<Vec<_>>(),
            [Some(0), Some(1), Some(200), None]
        );
        let u8x3 = col::<FixedSizeListArray>(&b, "u8x3");
        assert_eq!(
            u8x3.value(3)
                .as_primitive::<arrow::datatypes::UInt8Type>()
                .values()
                .to_vec(),
            [1, 2, 3]
        );
        assert_eq!(
            col::<Int8Array>(&b, "i8").values().to_vec(),
            [-128, -1, 0, 127]
        );
        assert_eq!(
            col::<Int16Array>(&b, "i16").values().to_vec(),
            [-32768, -1, 0, 32767]
        );
        // TNULL = -32768 is compared with the stored value: physical 0 is null.
        assert_eq!(
            col::<UInt16Array>(&b, "u16").iter().collect::<Vec<_>>(),
            [None, Some(1), Some(40000), Some(65535)]
        );
        assert_eq!(
            col::<Int32Array>(&b, "i32").iter().collect::<Vec<_>>(),
            [Some(1), None, Some(123456), Some(i32::MIN)]
        );
        assert_eq!(
            col::<UInt32Array>(&b, "u32").values().to_vec(),
            [0, 1, 3_000_000_000, u32::MAX]
        );
        assert_eq!(
            col::<Int64Array>(&b, "i64").values().to_vec(),
            [i64::MIN, -1, 0, i64::MAX]
        );
        assert_eq!(
            col::<UInt64Array>(&b, "u64").values().to_vec(),
            [0, 1, 1 << 63, u64::MAX]
        );
        assert_eq!(
            col::<Float64Array>(&b, "scaled").values().to_vec(),
            [10.0, 10.5, 0.0, 20.0]
        );
        assert_eq!(
            opt(col::<StringArray>(&b, "name"), |i| col::<StringArray>(
                &b, "name"
            )
            .value(i)
            .to_string()),
            s(&[Some("alpha"), Some("b"), Some(""), Some("12345678")])
        );
        let e = col::<Float32Array>(&b, "e");
        assert_eq!(e.value(0), 1.5);
        assert!(e.value(1).is_nan() && e.is_valid(1));
        assert_eq!((e.value(2), e.value(3)), (-2.25, 3.0e10));
        assert_eq!(
            col::<Float64Array>(&b, "ra").values().to_vec(),
            [10.0, 20.5, 359.999999, 0.0]
        );
        let e2 = col::<FixedSizeListArray>(&b, "e2");
        assert_eq!(
            e2.value(1)
                .as_primitive::<arrow::datatypes::Float32Type>()
                .values()
                .to_vec(),
            [3.0, 4.0]
        );
        let j2 = col::<FixedSizeListArray>(&b, "j2");
        assert_eq!(
            j2.value(3)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .values()
                .to_vec(),
            [4, -4]
        );
        let c = col::<FixedSizeListArray>(&b, "c");
        assert_eq!(
            c.data_type(),
            &colbuf::data_type(Kind::Complex(Prim::F32), Shape::Scalar)
        );
        let cv = |i: usize| {
            c.value(i)
                .as_primitive::<arrow::datatypes::Float32Type>()
                .values()
                .to_vec()
        };
        assert_eq!(
            (cv(0), cv(1), cv(3)),
            (vec![1.0, 2.0], vec![0.0, -1.5], vec![3.0, 0.0])
        );
        let m = col::<FixedSizeListArray>(&b, "m");
        assert_eq!(
            m.value(0)
                .as_primitive::<arrow::datatypes::Float64Type>()
                .values()
                .to_vec(),
            [1.0, 2.0]
        );

        assert_eq!(
            list_i32(col::<ListArray>(&b, "pj")),
            [vec![1, 2, 3], vec![], vec![42], vec![-7, 8]]
        );
        let qd = col::<ListArray>(&b, "qd");
        let qv = |i: usize| {
            qd.value(i)
                .as_primitive::<arrow::datatypes::Float64Type>()
                .values()
                .to_vec()
        };
        assert_eq!((qv(0), qv(1), qv(2)), (vec![0.5], vec![1.0, 2.0], vec![]));
        assert!(qv(3)[0].is_nan());
        let pa = col::<StringArray>(&b, "pa");
        assert_eq!(
            pa.iter().collect::<Vec<_>>(),
            [Some("var"), Some(""), Some("longer string"), Some("x")]
        );
    }

    #[test]
    fn arrow_types_and_metadata() {
        let src =
            FitsSource::open(&fixture("fits_types.fits"), &ReadOptions::default()).expect("open");
        let schema = src.schema();
        let ty = |n: &str| {
            schema
                .field_with_name(n)
                .expect("field")
                .data_type()
                .clone()
        };
        assert_eq!(ty("flag"), DataType::Boolean);
        assert_eq!(ty("u8"), DataType::UInt8);
        assert_eq!(ty("i8"), DataType::Int8);
        assert_eq!(ty("u16"), DataType::UInt16);
        assert_eq!(ty("u32"), DataType::UInt32);
        assert_eq!(ty("u64"), DataType::UInt64);
        assert_eq!(ty("scaled"), DataType::Float64);
        assert_eq!(ty("name"), DataType::Utf8);
        assert_eq!(ty("pa"), DataType::Utf8);
        assert!(matches!(ty("pj"), DataType::List(f) if f.data_type() == &DataType::Int32));
        assert!(
            matches!(ty("j2"), DataType::FixedSizeList(f, 2) if f.data_type() == &DataType::Int32)
        );
        assert!(
            matches!(ty("bits10"), DataType::FixedSizeList(f, 10) if f.data_type() == &DataType::Boolean)
        );

        let b = read_one(&fixture("fits_types.fits"), &ReadOptions::default());
        assert_eq!(meta(&b, "ra", UNIT), Some("deg"));
        assert_eq!(meta(&b, "ra", UCD), Some("pos.eq.ra;meta.main"));
        assert_eq!(meta(&b, "ra", DESCRIPTION), Some("Right ascension (ICRS)"));
        assert_eq!(meta(&b, "e", UNIT), Some("mag"));
        assert_eq!(
            meta(&b, "e", DESCRIPTION),
            Some("magnitude from TTYPE comment")
        );
        // A CONTINUE long string with a '' escape.
        assert_eq!(
            meta(&b, "name", DESCRIPTION),
            Some(
                "A description long enough that astropy has to split it over CONTINUE cards, with a quote ' inside"
            )
        );
        assert_eq!(meta(&b, "i16", UNIT), None);
    }

    #[test]
    fn streams_in_batches() {
        let path = fixture("fits_many.fits");
        let mut src = FitsSource::open(&path, &opts(300)).expect("open");
        assert_eq!(src.progress(), Some(0.0));
        let mut firsts = Vec::new();
        let mut ids = Vec::new();
        let mut arrs = Vec::new();
        while let Some(b) = src.next_batch().expect("batch") {
            let RowLoc::Rows { first } = b.loc else {
                panic!()
            };
            firsts.push(first);
            assert!(b.batch.num_rows() <= 300);
            ids.extend(col::<Int64Array>(&b.batch, "id").values().iter().copied());
            arrs.extend(list_i32(col::<ListArray>(&b.batch, "arr")));
            let p = src.progress().expect("progress");
            assert!((p - ids.len() as f64 / 2000.0).abs() < 1e-12);
        }
        assert_eq!(firsts, [1, 301, 601, 901, 1201, 1501, 1801]);
        assert_eq!(ids, (1..=2000).collect::<Vec<i64>>());
        for (i, a) in (1..=2000i32).zip(&arrs) {
            assert_eq!(*a, (0..i % 5).map(|k| i + k).collect::<Vec<_>>(), "row {i}");
        }
        // Same rows, whatever the batch size.
        let one = read_one(&path, &opts(1 << 20));
        let small = read_one(&path, &opts(7));
        assert_eq!(one, small);
        let (_, firsts) =
            read_all(&mut FitsSource::open(&fixture("fits_types.fits"), &opts(1)).expect("open"));
        assert_eq!(firsts, [1, 2, 3, 4]);
    }

    #[test]
    fn projection_and_skipped_hdus() {
        let o = ReadOptions {
            projection: Some(vec!["pj".into(), "ra".into(), "nope".into()]),
            ..ReadOptions::default()
        };
        let b = read_one(&fixture("fits_types.fits"), &o);
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["ra", "pj"]);
        assert_eq!(list_i32(col::<ListArray>(&b, "pj"))[3], [-7, 8]);

        // A primary image, an IMAGE and an ASCII TABLE come before the BINTABLE.
        let b = read_one(&fixture("fits_after_image.fits"), &ReadOptions::default());
        assert_eq!(col::<Int32Array>(&b, "id").values().to_vec(), [7, 8, 9]);
    }

    #[test]
    fn compressed_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = std::fs::read(fixture("fits_after_image.fits")).expect("read");
        let path = dir.path().join("t.fits.zst");
        std::fs::write(&path, zstd::encode_all(&raw[..], 3).expect("zstd")).expect("write");
        let b = read_one(&path, &ReadOptions::default());
        assert_eq!(col::<Int32Array>(&b, "id").values().to_vec(), [7, 8, 9]);
        // P columns need a seekable file.
        let raw = std::fs::read(fixture("fits_many.fits")).expect("read");
        let path = dir.path().join("m.fits.zst");
        std::fs::write(&path, zstd::encode_all(&raw[..], 3).expect("zstd")).expect("write");
        assert!(
            matches!(FitsSource::open(&path, &ReadOptions::default()), Err(Error::Usage(m)) if m.contains("P/Q"))
        );
    }

    /// A FITS file: an empty primary HDU and a BINTABLE with `cards` and `data`.
    fn fits_bytes(cards: &[String], data: &[u8]) -> Vec<u8> {
        let header = |cards: &[String]| {
            let mut h: Vec<u8> = Vec::new();
            for c in cards.iter().map(String::as_str).chain(["END"]) {
                h.extend(format!("{c:<80}").bytes());
            }
            h.resize(h.len().div_ceil(BLOCK) * BLOCK, b' ');
            h
        };
        let mut out = header(&[
            "SIMPLE  =                    T".into(),
            "BITPIX  =                    8".into(),
            "NAXIS   =                    0".into(),
        ]);
        out.extend(header(cards));
        out.extend(data);
        out
    }

    fn card(k: &str, v: &str) -> String {
        format!("{k:<8}= {v:>20}")
    }

    fn table_cards(naxis1: &str, naxis2: &str, forms: &[(&str, &str)]) -> Vec<String> {
        let mut c = vec![
            card("XTENSION", "'BINTABLE'"),
            card("BITPIX", "8"),
            card("NAXIS", "2"),
            card("NAXIS1", naxis1),
            card("NAXIS2", naxis2),
            card("PCOUNT", "0"),
            card("GCOUNT", "1"),
            card("TFIELDS", &forms.len().to_string()),
        ];
        for (i, (name, form)) in forms.iter().enumerate() {
            c.push(card(&format!("TTYPE{}", i + 1), &format!("'{name}'")));
            c.push(card(&format!("TFORM{}", i + 1), &format!("'{form}'")));
        }
        c
    }

    fn open_bytes(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.fits");
        std::fs::write(&path, bytes).expect("write");
        let mut src = FitsSource::open(&path, &opts(2))?;
        let mut out = Vec::new();
        while let Some(b) = src.next_batch()? {
            out.push(b.batch);
        }
        Ok(out)
    }

    #[test]
    fn hand_written_table() {
        // Two J values and a 3A string per row, big-endian.
        let cards = table_cards("7", "2", &[("x", "J"), ("s", "3A")]);
        let mut data = Vec::new();
        data.extend(5i32.to_be_bytes());
        data.extend(b"ab ");
        data.extend((-6i32).to_be_bytes());
        data.extend(b"c\0z");
        let batches = open_bytes(&fits_bytes(&cards, &data)).expect("read");
        assert_eq!(batches.len(), 1);
        assert_eq!(
            col::<Int32Array>(&batches[0], "x").values().to_vec(),
            [5, -6]
        );
        assert_eq!(
            col::<StringArray>(&batches[0], "s")
                .iter()
                .collect::<Vec<_>>(),
            [Some("ab"), Some("c")]
        );
    }

    #[test]
    fn malformed_inputs_name_the_place() {
        // Not FITS at all.
        let (place, _, msg) = bad(open_bytes(b"hello world").unwrap_err());
        assert!(
            place.contains("HDU 0") && msg.contains("not a FITS file"),
            "{place}: {msg}"
        );

        // Only a primary HDU.
        let mut only = Vec::new();
        for c in [
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    0",
            "END",
        ] {
            only.extend(format!("{c:<80}").bytes());
        }
        only.resize(BLOCK, b' ');
        let (_, _, msg) = bad(open_bytes(&only).unwrap_err());
        assert!(msg.contains("no BINTABLE"), "{msg}");

        // Bad TFORM.
        let cards = table_cards("4", "1", &[("x", "Z")]);
        let (place, column, msg) = bad(open_bytes(&fits_bytes(&cards, &[0; 4])).unwrap_err());
        assert_eq!(place, "HDU 1 header card 10");
        assert_eq!(column.as_deref(), Some("x"));
        assert!(
            msg.contains("bad TFORM1 = 'Z'") && msg.contains("expected"),
            "{msg}"
        );

        // Non-numeric keyword.
        let cards = table_cards("4", "'many'", &[("x", "J")]);
        let (place, _, msg) = bad(open_bytes(&fits_bytes(&cards, &[0; 4])).unwrap_err());
        assert_eq!(place, "HDU 1 header card 5");
        assert!(
            msg.contains("NAXIS2") && msg.contains("expected an integer"),
            "{msg}"
        );

        // NAXIS1 does not match the columns.
        let cards = table_cards("6", "1", &[("x", "J")]);
        let (_, _, msg) = bad(open_bytes(&fits_bytes(&cards, &[0; 6])).unwrap_err());
        assert!(
            msg.contains("NAXIS1 = 6") && msg.contains("4 bytes"),
            "{msg}"
        );

        // Truncated data: 3 rows of 4 bytes declared, 2.5 present.
        let cards = table_cards("4", "3", &[("x", "J")]);
        let (place, _, msg) = bad(open_bytes(&fits_bytes(&cards, &[0; 10])).unwrap_err());
        assert_eq!(place, "row 3");
        assert!(msg.contains("truncated"), "{msg}");

        // Header without END.
        let mut no_end = fits_bytes(&table_cards("4", "1", &[("x", "J")]), &[]);
        no_end.truncate(BLOCK + 800);
        let (place, _, msg) = bad(open_bytes(&no_end).unwrap_err());
        assert_eq!(place, "HDU 1 header");
        assert!(msg.contains("END"), "{msg}");

        // A P descriptor pointing outside the heap.
        let mut cards = table_cards("8", "1", &[("v", "PJ")]);
        cards[5] = card("PCOUNT", "8");
        let mut data = Vec::new();
        data.extend(3i32.to_be_bytes());
        data.extend(4i32.to_be_bytes());
        data.extend([0u8; 8]);
        let (place, column, msg) = bad(open_bytes(&fits_bytes(&cards, &data)).unwrap_err());
        assert_eq!((place.as_str(), column.as_deref()), ("row 1", Some("v")));
        assert!(msg.contains("past the end of the heap"), "{msg}");
    }

    #[test]
    fn truncated_fixture_names_first_missing_row() {
        let raw = std::fs::read(fixture("fits_many.fits")).expect("read");
        // Data starts after two 2880-byte header blocks... find it from the reader.
        let src =
            FitsSource::open(&fixture("fits_many.fits"), &ReadOptions::default()).expect("open");
        let start = src.data_start as usize;
        let cut = start + 24 * 1000 + 5; // rows are 24 bytes: row 1001 is partial
        let (place, _, msg) = bad(open_bytes(&raw[..cut]).unwrap_err());
        assert_eq!(place, "row 1001", "{msg}");
    }

    #[test]
    fn header_values() {
        assert_eq!(
            parse_value(" 'it''s ok'   / comment"),
            Ok((Some("it's ok".into()), true, "comment".into()))
        );
        assert_eq!(
            parse_value("  1.5D3 / x"),
            Ok((Some("1.5D3".into()), false, "x".into()))
        );
        assert_eq!(parse_float("1.5D3"), Some(1500.0));
        assert!(parse_value(" 'open").is_err());
        assert_eq!(
            parse_tform("1PE(12)").map(|t| (t.elem, t.var)),
            Ok((Elem::E, Some(false)))
        );
        assert_eq!(
            parse_tform("QD").map(|t| (t.elem, t.var)),
            Ok((Elem::D, Some(true)))
        );
        assert_eq!(
            parse_tform("20A8").map(|t| (t.repeat, t.elem)),
            Ok((20, Elem::A))
        );
        assert!(parse_tform("2PJ").is_err());
        assert!(parse_tform("3JX").is_err());
        assert!(parse_tform("").is_err());
    }

    /// Corrupted bytes anywhere must give errors, never panics.
    #[test]
    fn corrupted_files_never_panic() {
        let raw = std::fs::read(fixture("fits_types.fits")).expect("read");
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.fits");
        for round in 0..300 {
            let mut b = raw.clone();
            for _ in 0..1 + round % 8 {
                let i = (next() % b.len() as u64) as usize;
                b[i] = next() as u8;
            }
            if round % 5 == 0 {
                b.truncate((next() % b.len() as u64) as usize);
            }
            std::fs::write(&path, &b).expect("write");
            if let Ok(mut src) = FitsSource::open(&path, &opts(3)) {
                while let Ok(Some(_)) = src.next_batch() {}
            }
        }
    }
}
