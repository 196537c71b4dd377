//! `tessera query`: ADQL at the terminal and in scripts, and `--check` as a query linter.
#![allow(clippy::print_stdout, clippy::print_stderr)] // The CLI's output is its product.

use std::io::Write;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// RFC 4180 CSV with a header line; regions as DALI space-separated numbers.
    Csv,
    /// `{"columns": [...], "rows": [[...]], "overflow": bool}`.
    Json,
}

/// A cell as text; `None` for null. Regions (lists of doubles) print in DALI form.
fn cell(col: &dyn Array, fmt: &ArrayFormatter<'_>, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    if let DataType::List(f) = col.data_type()
        && f.data_type() == &DataType::Float64
    {
        let l = col.as_list::<i32>().value(row);
        let v = l.as_primitive::<Float64Type>();
        let parts: Vec<String> = v.values().iter().map(|x| x.to_string()).collect();
        return Some(parts.join(" "));
    }
    Some(fmt.value(row).to_string())
}

fn rows(schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter<'_>> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<_, _>>()?;
        for r in 0..b.num_rows() {
            out.push(
                (0..schema.fields().len())
                    .map(|c| cell(b.column(c).as_ref(), &fmts[c], r))
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_value(dt: &DataType, v: &Option<String>) -> String {
    match v {
        None => "null".into(),
        Some(s) => match dt {
            DataType::Boolean => s.clone(),
            d if d.is_numeric() => {
                if s.parse::<f64>().is_ok_and(f64::is_finite) {
                    s.clone()
                } else {
                    "null".into()
                }
            }
            DataType::List(_) => format!("[{}]", s.split(' ').collect::<Vec<_>>().join(", ")),
            _ => json_string(s),
        },
    }
}

/// Prints a result in the chosen format.
pub fn print(
    out: &mut dyn Write,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    overflow: bool,
) -> anyhow::Result<()> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let rows = rows(schema, batches)?;
    match format {
        OutputFormat::Csv => {
            let h: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
            writeln!(out, "{}", h.join(","))?;
            for r in &rows {
                let cells: Vec<String> = r
                    .iter()
                    .map(|c| c.as_deref().map(csv_field).unwrap_or_default())
                    .collect();
                writeln!(out, "{}", cells.join(","))?;
            }
        }
        OutputFormat::Json => {
            let cols: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| {
                    let mut s = format!(
                        "{{\"name\": {}, \"datatype\": {}",
                        json_string(f.name()),
                        json_string(&f.data_type().to_string())
                    );
                    for k in ["unit", "ucd", "xtype"] {
                        if let Some(v) = f.metadata().get(k) {
                            s.push_str(&format!(", \"{k}\": {}", json_string(v)));
                        }
                    }
                    s.push('}');
                    s
                })
                .collect();
            writeln!(out, "{{\"columns\": [{}],", cols.join(", "))?;
            writeln!(out, " \"rows\": [")?;
            for (i, r) in rows.iter().enumerate() {
                let cells: Vec<String> = r
                    .iter()
                    .zip(schema.fields())
                    .map(|(c, f)| json_value(f.data_type(), c))
                    .collect();
                let sep = if i + 1 < rows.len() { "," } else { "" };
                writeln!(out, "  [{}]{sep}", cells.join(", "))?;
            }
            writeln!(out, " ],\n \"overflow\": {overflow}}}")?;
        }
        OutputFormat::Table => {
            let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.as_deref().map_or(4, |s| s.chars().count()));
                }
            }
            let numeric: Vec<bool> = schema
                .fields()
                .iter()
                .map(|f| f.data_type().is_numeric())
                .collect();
            let line = |cells: Vec<String>| -> String {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if numeric[i] {
                            format!("{c:>w$}", w = widths[i])
                        } else {
                            format!("{c:<w$}", w = widths[i])
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
                    .trim_end()
                    .to_string()
            };
            writeln!(
                out,
                "{}",
                line(names.iter().map(|s| s.to_string()).collect())
            )?;
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            writeln!(out, "{}", rule.join("-+-"))?;
            for r in &rows {
                writeln!(
                    out,
                    "{}",
                    line(
                        r.iter()
                            .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
                            .collect()
                    )
                )?;
            }
            let n = rows.len();
            writeln!(
                out,
                "({n} row{}{})",
                if n == 1 { "" } else { "s" },
                if overflow {
                    ", more rows exist: raise --max-rows"
                } else {
                    ""
                }
            )?;
        }
    }
    Ok(())
}
