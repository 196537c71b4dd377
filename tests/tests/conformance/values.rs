//! Result values: Arrow cells to [`Value`], printing in golden-file form, and comparison
//! with expected [`Cell`]s.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, *};

use crate::golden::Cell;

/// A result value, normalised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<Value>),
    /// Any other type, as Arrow displays it.
    Other(String),
}

/// The rows of a result, as values.
pub(crate) fn rows(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(b.columns().iter().map(|c| value(c, r)).collect());
        }
    }
    out
}

/// One cell of an array.
pub(crate) fn value(a: &ArrayRef, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Value::Int(a.as_primitive::<$t>().value(i) as i128)
        };
    }
    match a.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float16 => Value::Float(a.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Float32 => Value::Float(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Value::Float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, scale) => {
            let v = a.as_primitive::<Decimal128Type>().value(i);
            Value::Float(v as f64 / 10f64.powi(*scale as i32))
        }
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Utf8 => Value::Str(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::Str(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::Str(a.as_string_view().value(i).to_string()),
        DataType::List(_) => list(&a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list(&a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(_, _) => list(&a.as_fixed_size_list().value(i)),
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let k = d.normalized_keys()[i];
            value(d.values(), k)
        }
        _ => Value::Other(
            arrow::util::display::array_value_to_string(a, i).unwrap_or_else(|e| e.to_string()),
        ),
    }
}

fn list(a: &ArrayRef) -> Value {
    Value::List((0..a.len()).map(|j| value(a, j)).collect())
}

/// Prints a value as a golden file would write it.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => show_float(*f),
        Value::Str(s) => {
            if s.is_empty()
                || s.contains('|')
                || s.starts_with('\'')
                || s.starts_with('[')
                || s.trim() != s
                || s == "NULL"
            {
                format!("'{}'", s.replace('\'', "''"))
            } else {
                s.clone()
            }
        }
        Value::Bool(b) => b.to_string(),
        Value::List(l) => format!("[{}]", l.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Other(s) => s.clone(),
    }
}

fn show_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{f:?}")
    }
}

/// Parses a number as golden files write it.
fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn floats_match(a: f64, e: f64, tol: f64) -> bool {
    if a.is_nan() || e.is_nan() {
        return a.is_nan() && e.is_nan();
    }
    if a.is_infinite() || e.is_infinite() {
        return a == e;
    }
    (a - e).abs() <= tol.max(tol * a.abs().max(e.abs()))
}

/// Whether an actual value matches an expected cell.
pub(crate) fn matches(actual: &Value, expected: &Cell, tol: f64) -> bool {
    match (actual, expected) {
        (Value::Null, Cell::Null) => true,
        (Value::Null, _) | (_, Cell::Null) => false,
        (Value::Str(s), Cell::Quoted(e)) => s == e,
        (_, Cell::Quoted(_)) => false,
        (Value::Str(s), Cell::Bare(e)) => s == e,
        (Value::Int(i), Cell::Bare(e)) => match e.parse::<i128>() {
            Ok(x) => *i == x,
            Err(_) => parse_float(e).is_some_and(|x| floats_match(*i as f64, x, tol)),
        },
        (Value::Float(f), Cell::Bare(e)) => {
            parse_float(e).is_some_and(|x| floats_match(*f, x, tol))
        }
        (Value::Bool(b), Cell::Bare(e)) => {
            e.eq_ignore_ascii_case(if *b { "true" } else { "false" })
        }
        (Value::List(l), Cell::Bare(e)) => {
            let Some(inner) = e.strip_prefix('[').and_then(|x| x.strip_suffix(']')) else {
                return false;
            };
            let items: Vec<&str> = if inner.trim().is_empty() {
                Vec::new()
            } else {
                inner.split(',').map(str::trim).collect()
            };
            items.len() == l.len()
                && l.iter().zip(&items).all(|(v, x)| {
                    let c = if *x == "NULL" {
                        Cell::Null
                    } else {
                        Cell::Bare(x.to_string())
                    };
                    matches(v, &c, tol)
                })
        }
        (Value::Other(s), Cell::Bare(e)) => s == e,
    }
}

/// Whether a result field has the type a `-- types:` name asks for.
pub(crate) fn type_matches(f: &Field, want: &str) -> bool {
    let t = f.data_type();
    match want {
        "any" => true,
        "smallint" => *t == DataType::Int16,
        "integer" => *t == DataType::Int32,
        "bigint" => *t == DataType::Int64,
        "real" => *t == DataType::Float32,
        "double" => *t == DataType::Float64,
        "int" => t.is_integer(),
        "float" => {
            t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
        }
        "number" => t.is_numeric(),
        "string" => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        "bool" => *t == DataType::Boolean,
        "list" => matches!(
            t,
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_rules() {
        let b = |s: &str| Cell::Bare(s.into());
        assert!(matches(&Value::Int(3), &b("3"), 1e-9));
        assert!(!matches(&Value::Float(3.5), &b("3"), 1e-9));
        assert!(matches(&Value::Float(0.1 + 0.2), &b("0.3"), 1e-9));
        assert!(matches(&Value::Float(6.1e-17), &b("0"), 1e-9));
        assert!(!matches(&Value::Float(1.0001), &b("1"), 1e-9));
        assert!(matches(&Value::Str("a b".into()), &b("a b"), 1e-9));
        assert!(matches(
            &Value::Str("NULL".into()),
            &Cell::Quoted("NULL".into()),
            1e-9
        ));
        assert!(!matches(&Value::Null, &b("0"), 1e-9));
        assert!(matches(
            &Value::List(vec![Value::Float(1.0), Value::Float(2.5)]),
            &b("[1, 2.5]"),
            1e-9
        ));
        assert!(matches(&Value::Bool(true), &b("true"), 1e-9));
        assert_eq!(show(&Value::Str("a|b".into())), "'a|b'");
        assert_eq!(show(&Value::Float(1.0)), "1.0");
    }
}
