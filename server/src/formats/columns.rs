//! What every writer needs to know about the result columns: the VOTable view of each Arrow
//! field ([`ColSpec`]: unique name and XML ID, datatype, arraysize, unit, UCD, utype, xtype,
//! description) and each batch column normalised to a handful of array types ([`Col`]), so
//! that a format handles nine shapes of data instead of every Arrow type.
//!
//! Normalisation (the same for every format, so that the formats agree with each other and
//! with the TAP_SCHEMA datatypes the engine declares):
//!
//! | Arrow | VOTable | [`Col`] |
//! |---|---|---|
//! | Boolean | `boolean` | `Bool` |
//! | Int8, Int16, UInt8 | `short` | `I16` |
//! | Int32, UInt16 | `int` | `I32` |
//! | Int64, UInt32, UInt64 (error above 2⁶³−1) | `long` | `I64` |
//! | Float16, Float32 | `float` | `F32` |
//! | Float64, Decimal | `double` | `F64` |
//! | Utf8, LargeUtf8, Utf8View, Dictionary | `unicodeChar`, `arraysize="*"` | `Str` |
//! | Timestamp, Date32, Date64 | `char`, `arraysize="*"`, `xtype="timestamp"` (ISO 8601, UTC) | `Str` |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | `unsignedByte`, `arraysize="*"` | `Bin` |
//! | List/LargeList/FixedSizeList of numbers (regions) | `double`, `arraysize` 2 (point), 3 (circle), else `*` | `List` |
//! | anything else | `unicodeChar`, `arraysize="*"` (Arrow's display form) | `Str` |
//!
//! Text is `unicodeChar`, not `char`: VOTable 1.4 `char` is 7-bit ASCII, and astropy (so pyvo)
//! fails on a non-ASCII byte in a BINARY2 `char` value (`UnicodeDecodeError`), while
//! `unicodeChar` (UTF-16 in BINARY2, plain XML text in TABLEDATA) reads everywhere. TAP_SCHEMA
//! declares text columns `unicodeChar` too (taplint's MDQ stage requires declared and result
//! types to be equal). Timestamps, always ASCII, stay `char`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, LargeStringArray, ListArray, StringArray, StringBuilder,
    StringViewArray,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::FormatError;

/// Arrow field metadata keys of column metadata; the same strings as
/// `tessera_storage::columns::{UNIT, UCD, DESCRIPTION, UTYPE, XTYPE}`, which the engine does
/// not re-export (the server reaches storage only through the engine).
pub(crate) mod keys {
    pub(crate) const UNIT: &str = "unit";
    pub(crate) const UCD: &str = "ucd";
    pub(crate) const DESCRIPTION: &str = "description";
    pub(crate) const UTYPE: &str = "utype";
    pub(crate) const XTYPE: &str = "xtype";
}

/// The normalised kind of a column, fixed by its Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Short,
    Int,
    Long,
    Float,
    Double,
    /// Text that may hold any character (`unicodeChar`).
    Text,
    /// ASCII text: formatted timestamps and dates (`char`).
    Char,
    Bytes,
    /// A list of doubles; `Some(n)` when every value has exactly `n` items (points, circles,
    /// fixed-size lists).
    Doubles(Option<usize>),
}

impl Kind {
    /// The VOTable `datatype`.
    pub(crate) fn datatype(self) -> &'static str {
        match self {
            Kind::Bool => "boolean",
            Kind::Short => "short",
            Kind::Int => "int",
            Kind::Long => "long",
            Kind::Float => "float",
            Kind::Double | Kind::Doubles(_) => "double",
            Kind::Text => "unicodeChar",
            Kind::Char => "char",
            Kind::Bytes => "unsignedByte",
        }
    }

    /// The VOTable `arraysize`, absent for scalars.
    pub(crate) fn arraysize(self) -> Option<String> {
        match self {
            Kind::Text | Kind::Char | Kind::Bytes | Kind::Doubles(None) => Some("*".into()),
            Kind::Doubles(Some(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// One result column as the writers describe it.
#[derive(Debug, Clone)]
pub(crate) struct ColSpec {
    /// Column name, made unique within the result (`ra`, `ra_2`, …).
    pub(crate) name: String,
    /// XML ID: an NCName derived from the name, unique within the document.
    pub(crate) id: String,
    pub(crate) kind: Kind,
    /// The Arrow type of the incoming batches.
    pub(crate) arrow: DataType,
    pub(crate) unit: Option<String>,
    pub(crate) ucd: Option<String>,
    pub(crate) utype: Option<String>,
    pub(crate) xtype: Option<String>,
    pub(crate) description: Option<String>,
}

/// Builds the column descriptions of a result schema.
pub(crate) fn col_specs(schema: &Schema) -> Vec<ColSpec> {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    schema
        .fields()
        .iter()
        .map(|f| {
            let name = unique(f.name().clone(), &mut names);
            let id = unique(ncname(&name), &mut ids);
            spec(f, name, id)
        })
        .collect()
}

fn spec(f: &Field, name: String, id: String) -> ColSpec {
    let md = f.metadata();
    let get = |k: &str| md.get(k).filter(|v| !v.is_empty()).cloned();
    let xtype = get(keys::XTYPE);
    let kind = kind_of(f.data_type(), xtype.as_deref());
    let xtype = match f.data_type() {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            xtype.or_else(|| Some("timestamp".into()))
        }
        _ => xtype,
    };
    ColSpec {
        name,
        id,
        kind,
        arrow: f.data_type().clone(),
        unit: get(keys::UNIT),
        ucd: get(keys::UCD),
        utype: get(keys::UTYPE),
        xtype,
        description: get(keys::DESCRIPTION),
    }
}

fn kind_of(dt: &DataType, xtype: Option<&str>) -> Kind {
    match dt {
        DataType::Boolean => Kind::Bool,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Kind::Short,
        DataType::Int32 | DataType::UInt16 => Kind::Int,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Kind::Long,
        DataType::Float16 | DataType::Float32 => Kind::Float,
        DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Kind::Double,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Kind::Bytes,
        // A TAP 1.0-style region column (ObsCore's s_region): written as STC-S text.
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
            if f.data_type().is_numeric() && xtype == Some(REGION_XTYPE) =>
        {
            Kind::Char
        }
        DataType::List(f) | DataType::LargeList(f) if f.data_type().is_numeric() => {
            Kind::Doubles(match xtype {
                Some("point") => Some(2),
                Some("circle") => Some(3),
                _ => None,
            })
        }
        DataType::FixedSizeList(f, n) if f.data_type().is_numeric() => {
            Kind::Doubles(Some(*n as usize))
        }
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => Kind::Char,
        // DALI timestamps are `char` (STILTS rejects xtype="timestamp" on anything else),
        // e.g. an uploaded VOTable column kept as text.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if xtype == Some("timestamp") => {
            Kind::Char
        }
        _ => Kind::Text,
    }
}

/// `base`, or `base_2`, `base_3`, … if already taken.
fn unique(base: String, taken: &mut HashSet<String>) -> String {
    let mut name = base.clone();
    let mut n = 1;
    while !taken.insert(name.clone()) {
        n += 1;
        name = format!("{base}_{n}");
    }
    name
}

/// An XML NCName made from `name`: letters, digits, `_`, `-`, `.` kept (ASCII only), anything
/// else becomes `_`; a name not starting with a letter or `_` gets a `_` prefix.
fn ncname(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    s
}

/// Text columns, whichever of the three Arrow string layouts they arrive in.
#[derive(Debug)]
pub(crate) enum Strs {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl Strs {
    #[inline]
    pub(crate) fn value(&self, i: usize) -> &str {
        match self {
            Strs::Utf8(a) => a.value(i),
            Strs::Large(a) => a.value(i),
            Strs::View(a) => a.value(i),
        }
    }
}

/// One batch column, normalised (see the module table).
#[derive(Debug)]
pub(crate) enum Col {
    Bool(BooleanArray),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Str(Strs),
    Bin(BinaryArray),
    /// Lists of doubles with their flattened values.
    List(ListArray, Float64Array),
}

/// A normalised column together with its null flags.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) col: Col,
    /// The null rows.
    pub(crate) nulls: Option<NullBuffer>,
}

impl Prepared {
    #[inline]
    pub(crate) fn is_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }

    /// The column as an Arrow array (for spooling).
    pub(crate) fn array(&self) -> ArrayRef {
        match &self.col {
            Col::Bool(x) => Arc::new(x.clone()),
            Col::I16(x) => Arc::new(x.clone()),
            Col::I32(x) => Arc::new(x.clone()),
            Col::I64(x) => Arc::new(x.clone()),
            Col::F32(x) => Arc::new(x.clone()),
            Col::F64(x) => Arc::new(x.clone()),
            Col::Str(Strs::Utf8(x)) => Arc::new(x.clone()),
            Col::Str(Strs::Large(x)) => Arc::new(x.clone()),
            Col::Str(Strs::View(x)) => Arc::new(x.clone()),
            Col::Bin(x) => Arc::new(x.clone()),
            Col::List(x, _) => Arc::new(x.clone()),
        }
    }
}

/// Normalises every column of `batch`; fails when the batch does not match the schema the
/// writer was created with, or when a value cannot be represented (UInt64 above 2⁶³−1).
pub(crate) fn prepare(
    specs: &[ColSpec],
    batch: &arrow::array::RecordBatch,
) -> Result<Vec<Prepared>, FormatError> {
    if batch.num_columns() != specs.len() {
        return Err(FormatError::Internal(format!(
            "batch has {} columns, the result schema {}",
            batch.num_columns(),
            specs.len()
        )));
    }
    specs
        .iter()
        .zip(batch.columns())
        .map(|(s, a)| {
            if a.data_type() != &s.arrow {
                return Err(FormatError::Internal(format!(
                    "column `{}` arrives as {}, declared {}",
                    s.name,
                    a.data_type(),
                    s.arrow
                )));
            }
            prepare_column(s, a)
        })
        .collect()
}

fn cast_to(s: &ColSpec, a: &ArrayRef, to: &DataType) -> Result<ArrayRef, FormatError> {
    let opts = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(a, to, &opts).map_err(|e| FormatError::Unrepresentable {
        column: s.name.clone(),
        message: e.to_string(),
    })
}

fn prepare_column(s: &ColSpec, a: &ArrayRef) -> Result<Prepared, FormatError> {
    let a = match a.data_type() {
        DataType::Dictionary(_, v) => cast_to(s, a, v)?,
        _ => a.clone(),
    };
    let dt = a.data_type().clone();
    let col = match s.kind {
        Kind::Bool => Col::Bool(a.as_boolean().clone()),
        Kind::Short => Col::I16(cast_to(s, &a, &DataType::Int16)?.as_primitive().clone()),
        Kind::Int => Col::I32(cast_to(s, &a, &DataType::Int32)?.as_primitive().clone()),
        Kind::Long => Col::I64(cast_to(s, &a, &DataType::Int64)?.as_primitive().clone()),
        Kind::Float => Col::F32(cast_to(s, &a, &DataType::Float32)?.as_primitive().clone()),
        Kind::Double => Col::F64(cast_to(s, &a, &DataType::Float64)?.as_primitive().clone()),
        Kind::Bytes => Col::Bin(cast_to(s, &a, &DataType::Binary)?.as_binary().clone()),
        Kind::Doubles(_) => {
            let to = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
            let l = cast_to(s, &a, &to)?.as_list::<i32>().clone();
            let v = l.values().as_primitive().clone();
            Col::List(l, v)
        }
        Kind::Char | Kind::Text => match dt {
            DataType::Utf8 => Col::Str(Strs::Utf8(a.as_string().clone())),
            DataType::LargeUtf8 => Col::Str(Strs::Large(a.as_string().clone())),
            DataType::Utf8View => Col::Str(Strs::View(a.as_string_view().clone())),
            DataType::Timestamp(unit, ref tz) => {
                Col::Str(Strs::Utf8(timestamps(&a, unit, tz.is_some())))
            }
            DataType::Date32 => {
                let d = a.as_primitive::<arrow::datatypes::Date32Type>();
                Col::Str(Strs::Utf8(format_each(d, |b, i| {
                    write_date(b, d.value(i) as i64)
                })))
            }
            DataType::Date64 => {
                let d = a.as_primitive::<arrow::datatypes::Date64Type>();
                Col::Str(Strs::Utf8(format_each(d, |b, i| {
                    write_date(b, d.value(i).div_euclid(86_400_000))
                })))
            }
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                let to = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
                let l = cast_to(s, &a, &to)?.as_list::<i32>().clone();
                Col::Str(Strs::Utf8(stcs(&l)))
            }
            _ => Col::Str(Strs::Utf8(display(s, &a)?)),
        },
    };
    let mut p = Prepared { col, nulls: None };
    p.nulls = p.array().logical_nulls();
    Ok(p)
}

/// The xtype of region columns written as STC-S text (TAP 1.0, ObsCore `s_region`).
pub(crate) const REGION_XTYPE: &str = "adql:REGION";

/// Geometry values (`[ra, dec]`, `[ra, dec, r]`, `[ra1, dec1, …]`) as STC-S:
/// `POSITION ICRS ra dec`, `CIRCLE ICRS ra dec r`, `POLYGON ICRS ra1 dec1 …`.
fn stcs(l: &ListArray) -> StringArray {
    let v = l
        .values()
        .as_primitive::<arrow::datatypes::Float64Type>()
        .clone();
    format_each(l, |b, i| {
        let (start, end) = (
            l.value_offsets()[i] as usize,
            l.value_offsets()[i + 1] as usize,
        );
        let n = end - start;
        b.push_str(match n {
            2 => "POSITION ICRS",
            3 => "CIRCLE ICRS",
            _ => "POLYGON ICRS",
        });
        let mut f = ryu::Buffer::new();
        for k in start..end {
            b.push(' ');
            b.push_str(f.format(v.value(k)));
        }
    })
}

/// A string array with `f` writing each valid row's text, nulls kept.
fn format_each(a: &dyn Array, mut f: impl FnMut(&mut String, usize)) -> StringArray {
    let mut b = StringBuilder::with_capacity(a.len(), a.len() * 24);
    let mut s = String::with_capacity(32);
    let nulls = a.logical_nulls();
    for i in 0..a.len() {
        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            b.append_null();
        } else {
            s.clear();
            f(&mut s, i);
            b.append_value(&s);
        }
    }
    b.finish()
}

fn display(s: &ColSpec, a: &ArrayRef) -> Result<StringArray, FormatError> {
    let fmt = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()).map_err(|e| {
        FormatError::Unrepresentable {
            column: s.name.clone(),
            message: e.to_string(),
        }
    })?;
    Ok(format_each(a.as_ref(), |b, i| {
        let _ = write!(b, "{}", fmt.value(i));
    }))
}

/// ISO 8601 timestamps in UTC without a zone suffix (DALI `timestamp`), with as many
/// fractional digits as the unit has (none for seconds, 3, 6 or 9).
fn timestamps(a: &ArrayRef, unit: TimeUnit, _has_tz: bool) -> StringArray {
    use arrow::datatypes::*;
    let (per_sec, digits): (i64, usize) = match unit {
        TimeUnit::Second => (1, 0),
        TimeUnit::Millisecond => (1_000, 3),
        TimeUnit::Microsecond => (1_000_000, 6),
        TimeUnit::Nanosecond => (1_000_000_000, 9),
    };
    let v: &[i64] = match unit {
        TimeUnit::Second => a.as_primitive::<TimestampSecondType>().values(),
        TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().values(),
        TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().values(),
        TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().values(),
    };
    format_each(a.as_ref(), |b, i| {
        let t = v[i];
        let secs = t.div_euclid(per_sec);
        let frac = t.rem_euclid(per_sec);
        write_date(b, secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let _ = write!(b, "T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
        if digits > 0 {
            let _ = write!(b, ".{frac:0digits$}");
        }
    })
}

/// Writes the proleptic Gregorian date `days` after 1970-01-01 as `YYYY-MM-DD`.
fn write_date(b: &mut String, days: i64) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(b, "{y:04}-{m:02}-{d:02}");
}

// ---- text forms shared by TABLEDATA, CSV, TSV and JSON ------------------------------------

/// Appends a double in its shortest round-trip form; NaN and infinities as VOTable spells
/// them (`NaN`, `+Inf`, `-Inf`).
#[inline]
pub(crate) fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        push_nonfinite(out, v.is_nan(), v > 0.0);
    }
}

/// Appends a float in its shortest round-trip form (see [`push_f64`]).
#[inline]
pub(crate) fn push_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        push_nonfinite(out, v.is_nan(), v > 0.0);
    }
}

fn push_nonfinite(out: &mut Vec<u8>, nan: bool, positive: bool) {
    out.extend_from_slice(match (nan, positive) {
        (true, _) => b"NaN",
        (false, true) => b"+Inf",
        (false, false) => b"-Inf",
    });
}

/// Appends an integer.
#[inline]
pub(crate) fn push_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends bytes as lowercase hexadecimal.
pub(crate) fn push_hex(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in v {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Appends the items of list row `i` separated by `sep` (DALI form: `10.0 20.0` for a point).
pub(crate) fn push_list(out: &mut Vec<u8>, l: &ListArray, v: &Float64Array, i: usize, sep: u8) {
    let (a, b) = (
        l.value_offsets()[i] as usize,
        l.value_offsets()[i + 1] as usize,
    );
    for (k, j) in (a..b).enumerate() {
        if k > 0 {
            out.push(sep);
        }
        if v.is_null(j) {
            out.extend_from_slice(b"NaN");
        } else {
            push_f64(out, v.value(j));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_and_ids_are_unique_and_valid() {
        let schema = Schema::new(vec![
            Field::new("ra", DataType::Float64, true),
            Field::new("ra", DataType::Float64, true),
            Field::new("1st col", DataType::Int32, true),
            Field::new("1st_col", DataType::Int32, true),
            Field::new("é<x>", DataType::Utf8, true),
        ]);
        let specs = col_specs(&schema);
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        let ids: Vec<_> = specs.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(names, ["ra", "ra_2", "1st col", "1st_col", "é<x>"]);
        assert_eq!(ids, ["ra", "ra_2", "_1st_col", "_1st_col_2", "__x_"]);
    }

    #[test]
    fn kinds_follow_tap_schema_types() {
        let region = |x: &str| {
            Field::new(
                "g",
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                true,
            )
            .with_metadata(HashMap::from([("xtype".to_string(), x.to_string())]))
        };
        let schema = Schema::new(vec![
            Field::new("a", DataType::UInt8, true),
            Field::new("b", DataType::UInt32, true),
            Field::new("c", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            region("point"),
            region("circle"),
            region("polygon"),
        ]);
        let s = col_specs(&schema);
        assert_eq!(s[0].kind, Kind::Short);
        assert_eq!(s[1].kind, Kind::Long);
        assert_eq!(s[2].kind, Kind::Char);
        assert_eq!(s[2].xtype.as_deref(), Some("timestamp"));
        assert_eq!(s[3].kind.arraysize().as_deref(), Some("2"));
        assert_eq!(s[4].kind.arraysize().as_deref(), Some("3"));
        assert_eq!(s[5].kind.arraysize().as_deref(), Some("*"));
    }

    #[test]
    fn dates_are_proleptic_gregorian() {
        let mut s = String::new();
        for d in [0, -1, 11_016, 19_782, -719_468] {
            write_date(&mut s, d);
            s.push(' ');
        }
        assert_eq!(s, "1970-01-01 1969-12-31 2000-02-29 2024-02-29 0000-03-01 ");
    }

    #[test]
    fn float_text_round_trips() {
        let mut b = Vec::new();
        for v in [
            0.1,
            1e300,
            -2.5e-8,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            push_f64(&mut b, v);
            b.push(b' ');
        }
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "0.1 1e300 -2.5e-8 NaN +Inf -Inf "
        );
    }
}
