//! Reader for CDS fixed-width ASCII tables described by a "byte-by-byte" ReadMe.
//!
//! The CDS (Strasbourg astronomical Data Centre) distributes catalogues as plain-text files of
//! fixed-width records plus a `ReadMe` whose `Byte-by-byte Description of file: …` sections
//! give, for every column, its byte range, Fortran-like format, unit, label and explanation.
//! No Rust crate parses these ReadMe files, so the parser here is hand-written; it covers the
//! parts of the ReadMe standard a loader needs:
//!
//! * the ReadMe is `ReadOptions::readme`, else `ReadMe` (or `README`) next to the input;
//! * the section is the one whose file list (names separated by spaces or commas, wildcards `*`
//!   and `?` allowed, case ignored) matches the input's name without `.gz`/`.zst`;
//! * column lines `  1-  6  I6  ---  HIP  Explanation` or single-byte ` 12  I1 …`, and the
//!   repeat form `172-276 15F7.2 --- UW …`, which becomes columns `UW1` … `UW15`;
//! * explanations continue on the following, deeply indented lines;
//! * explanation flags: leading `[min,max]` limits (informational, dropped from the
//!   description), `?` (blank field → null), `?=VALUE` (that value → null); trailing note
//!   references such as `(1)` or `(G1)` are dropped from the description.
//!
//! Types: `I` → Int32 (Int64 when wider than 9 bytes), `F`/`E`/`D` → Float64 (Fortran `D`
//! exponents accepted), `A` → Utf8 with trailing spaces trimmed (invalid UTF-8 replaced by
//! U+FFFD). The unit (`---` means none) goes to the `unit` field metadata and the explanation to
//! `description`; CDS ReadMes carry no UCDs, so `ucd` stays unset.
//!
//! Data lines are read streaming and parsed as bytes, without allocating per field; only the
//! projected columns are parsed. A line shorter than the layout has blank fields beyond its end.
//! Lines that are empty or all blank are skipped. A blank field in a column not marked `?`, or a
//! value that does not parse, is an [`Error::BadInput`] naming the file, the line, the column
//! and the byte range, unless [`ReadOptions::bad_rows`] allows skipping the row.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use tessera_storage::columns::{DESCRIPTION, UNIT};

use crate::error::{Error, Result};
use crate::source::{BadRow, ReadOptions, RowLoc, RowSource, SourceBatch, open_maybe_compressed};

/// Names tried, in order, for the ReadMe next to the input.
const README_NAMES: [&str; 4] = ["ReadMe", "README", "Readme", "readme"];

/// The value type of a CDS column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `I` of width ≤ 9.
    Int32,
    /// `I` wider than 9 bytes.
    Int64,
    /// `F`, `E` or `D`.
    Float,
    /// `A`.
    Str,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Str => DataType::Utf8,
        }
    }
}

/// A `?=VALUE` null marker.
#[derive(Debug, Clone, PartialEq)]
struct NullValue {
    /// The value as written (trimmed).
    text: Vec<u8>,
    /// The value as a number, when it is one (so `?=-99.9` also matches `-99.90`).
    number: Option<f64>,
}

/// One column of a byte-by-byte description.
#[derive(Debug, Clone, PartialEq)]
struct CdsColumn {
    label: String,
    /// 0-based first byte.
    start: usize,
    /// 0-based end, exclusive.
    end: usize,
    /// The format as written, e.g. `F13.10` (for messages).
    format: String,
    kind: Kind,
    /// Fortran `D` exponent (`1.5D+03`) may occur.
    d_exponent: bool,
    /// `?`: a blank field is null.
    nullable: bool,
    /// `?=VALUE`: this value is null.
    null_value: Option<NullValue>,
    unit: Option<String>,
    description: String,
}

impl CdsColumn {
    fn field(&self) -> Field {
        let mut meta = std::collections::HashMap::new();
        if let Some(u) = &self.unit {
            meta.insert(UNIT.to_string(), u.clone());
        }
        if !self.description.is_empty() {
            meta.insert(DESCRIPTION.to_string(), self.description.clone());
        }
        Field::new(&self.label, self.kind.data_type(), self.is_nullable()).with_metadata(meta)
    }

    fn is_nullable(&self) -> bool {
        self.nullable || self.null_value.is_some()
    }

    /// `bytes 16-28 (F13.10)`, 1-based inclusive as in the ReadMe.
    fn place(&self) -> String {
        if self.end - self.start == 1 {
            format!("byte {} ({})", self.start + 1, self.format)
        } else {
            format!("bytes {}-{} ({})", self.start + 1, self.end, self.format)
        }
    }
}

/// Counts the bytes read from the underlying file, for [`RowSource::progress`].
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// One parsed field of the current row.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    /// Byte range of the (trailing-trimmed) text in the line.
    Str(usize, usize),
}

/// An Arrow builder for one output column.
#[derive(Debug)]
enum ColBuilder {
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Str(StringBuilder),
}

impl ColBuilder {
    fn new(kind: Kind, rows: usize, width: usize) -> Self {
        match kind {
            Kind::Int32 => ColBuilder::I32(Int32Builder::with_capacity(rows)),
            Kind::Int64 => ColBuilder::I64(Int64Builder::with_capacity(rows)),
            Kind::Float => ColBuilder::F64(Float64Builder::with_capacity(rows)),
            Kind::Str => ColBuilder::Str(StringBuilder::with_capacity(rows, rows * width.min(64))),
        }
    }

    fn append(&mut self, cell: Cell, line: &[u8]) {
        match (self, cell) {
            (ColBuilder::I32(b), Cell::Int(v)) => b.append_value(v as i32),
            (ColBuilder::I64(b), Cell::Int(v)) => b.append_value(v),
            (ColBuilder::F64(b), Cell::Float(v)) => b.append_value(v),
            (ColBuilder::Str(b), Cell::Str(s, e)) => match std::str::from_utf8(&line[s..e]) {
                Ok(t) => b.append_value(t),
                Err(_) => b.append_value(String::from_utf8_lossy(&line[s..e])),
            },
            (ColBuilder::I32(b), _) => b.append_null(),
            (ColBuilder::I64(b), _) => b.append_null(),
            (ColBuilder::F64(b), _) => b.append_null(),
            (ColBuilder::Str(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColBuilder::I32(b) => Arc::new(b.finish()),
            ColBuilder::I64(b) => Arc::new(b.finish()),
            ColBuilder::F64(b) => Arc::new(b.finish()),
            ColBuilder::Str(b) => Arc::new(b.finish()),
        }
    }
}

/// A CDS fixed-width table opened for reading.
pub struct CdsSource {
    /// The input, for messages.
    file: String,
    reader: Box<dyn BufRead + Send>,
    /// Bytes read from the file (compressed bytes for `.zst`), when counted.
    read_bytes: Option<Arc<AtomicU64>>,
    file_size: u64,
    /// All columns of the description.
    schema: SchemaRef,
    /// The projected columns, in schema order, and their schema.
    columns: Vec<CdsColumn>,
    out_schema: SchemaRef,
    batch_rows: usize,
    bad_rows: crate::source::BadRows,
    /// Number of the last line read (1-based).
    line_no: u64,
    line: Vec<u8>,
    cells: Vec<Cell>,
    done: bool,
}

impl std::fmt::Debug for CdsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdsSource")
            .field("file", &self.file)
            .field("columns", &self.columns.len())
            .field("line_no", &self.line_no)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl CdsSource {
    /// Opens `path`, reading its layout from the CDS ReadMe (`opts.readme`, or `ReadMe` /
    /// `README` in the same directory).
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let file = path.display().to_string();
        let readme = match &opts.readme {
            Some(r) => r.clone(),
            None => find_readme(path)?,
        };
        let text = std::fs::read(&readme).map_err(|e| Error::io(&readme, e))?;
        let text = String::from_utf8_lossy(&text);
        let name = data_file_name(path);
        let all = parse_readme(&text, &name, &readme.display().to_string())?;

        let schema: SchemaRef = Arc::new(Schema::new(
            all.iter().map(CdsColumn::field).collect::<Vec<_>>(),
        ));
        let columns: Vec<CdsColumn> = match &opts.projection {
            None => all,
            Some(p) => all
                .into_iter()
                .filter(|c| p.iter().any(|n| n == &c.label))
                .collect(),
        };
        let out_schema: SchemaRef = Arc::new(Schema::new(
            columns.iter().map(CdsColumn::field).collect::<Vec<_>>(),
        ));

        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let lower = path.to_string_lossy().to_ascii_lowercase();
        let (reader, read_bytes): (Box<dyn BufRead + Send>, _) = if lower.ends_with(".zst") {
            let count = Arc::new(AtomicU64::new(0));
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let counting = Counting {
                inner: f,
                count: count.clone(),
            };
            let dec = zstd::stream::read::Decoder::new(counting).map_err(|e| Error::io(path, e))?;
            (
                Box::new(BufReader::with_capacity(1 << 20, dec)),
                Some(count),
            )
        } else if lower.ends_with(".gz") {
            // Whatever the shared opener does with gzip (currently: a clear error).
            let r = open_maybe_compressed(path)?;
            (Box::new(BufReader::with_capacity(1 << 20, r)), None)
        } else {
            let count = Arc::new(AtomicU64::new(0));
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let counting = Counting {
                inner: f,
                count: count.clone(),
            };
            (
                Box::new(BufReader::with_capacity(1 << 20, counting)),
                Some(count),
            )
        };

        Ok(CdsSource {
            file,
            reader,
            read_bytes,
            file_size: meta.len(),
            schema,
            cells: vec![Cell::Null; columns.len()],
            columns,
            out_schema,
            batch_rows: opts.batch_rows.max(1),
            bad_rows: opts.bad_rows.clone(),
            line_no: 0,
            line: Vec::with_capacity(512),
            done: false,
        })
    }

    /// Reads the next line into `self.line` (without its end of line); false at the end.
    fn read_line(&mut self) -> Result<bool> {
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .map_err(|e| Error::Io {
                path: self.file.clone(),
                source: e,
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(true)
    }

    /// Parses the projected fields of `self.line` into `self.cells`; on failure returns the
    /// column index and the message.
    fn parse_line(&mut self) -> std::result::Result<(), (usize, String)> {
        let line = &self.line[..];
        for (i, col) in self.columns.iter().enumerate() {
            self.cells[i] = parse_field(col, line).map_err(|m| (i, m))?;
        }
        Ok(())
    }
}

impl RowSource for CdsSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.done {
            return Ok(None);
        }
        let cap = self.batch_rows;
        let mut builders: Vec<ColBuilder> = self
            .columns
            .iter()
            .map(|c| ColBuilder::new(c.kind, cap, c.end - c.start))
            .collect();
        let mut lines: Vec<u64> = Vec::with_capacity(cap);
        while lines.len() < cap {
            if !self.read_line()? {
                self.done = true;
                break;
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.parse_line() {
                Ok(()) => {
                    for (b, &cell) in builders.iter_mut().zip(&self.cells) {
                        b.append(cell, &self.line);
                    }
                    lines.push(self.line_no);
                }
                Err((i, message)) => {
                    self.bad_rows.skip(BadRow {
                        file: self.file.clone(),
                        place: format!("line {}", self.line_no),
                        column: Some(self.columns[i].label.clone()),
                        message,
                    })?;
                }
            }
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(ColBuilder::finish).collect();
        let batch = RecordBatch::try_new_with_options(
            self.out_schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(lines.len())),
        )?;
        Ok(Some(SourceBatch {
            batch,
            loc: RowLoc::Lines(lines),
        }))
    }

    fn progress(&self) -> Option<f64> {
        let read = self.read_bytes.as_ref()?.load(Ordering::Relaxed);
        if self.file_size == 0 {
            return None;
        }
        Some((read as f64 / self.file_size as f64).clamp(0.0, 1.0))
    }
}

/// The ReadMe next to `path`.
fn find_readme(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for name in README_NAMES {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Usage(format!(
        "{}: CDS fixed-width input needs its ReadMe (the byte-by-byte description), but there is \
         no ReadMe or README in {}; give the ReadMe's path explicitly",
        path.display(),
        dir.display()
    )))
}

/// The input's file name without a `.gz`/`.zst` suffix.
fn data_file_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for suffix in [".gz", ".zst"] {
        if lower.ends_with(suffix) {
            return name[..name.len() - suffix.len()].to_string();
        }
    }
    name
}

/// Case-insensitive glob match with `*` and `?`.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&name[n])) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether a ReadMe line is a dashed rule.
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 10 && t.bytes().all(|c| c == b'-' || c == b'=')
}

/// The file list of a `Byte-by-byte Description of file:` header line, if it is one.
fn section_header(line: &str) -> Option<&str> {
    const KEY: &str = "byte-by-byte description of file";
    let t = line.trim_start();
    if t.len() >= KEY.len() && t.as_bytes()[..KEY.len()].eq_ignore_ascii_case(KEY.as_bytes()) {
        let rest = &t[KEY.len()..];
        let rest = rest.trim_start_matches(['s', 'S']);
        Some(rest.trim_start().trim_start_matches(':'))
    } else {
        None
    }
}

/// Parses the byte-by-byte section of `readme` describing `name`.
fn parse_readme(readme: &str, name: &str, readme_file: &str) -> Result<Vec<CdsColumn>> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut seen: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(list) = section_header(lines[i]) else {
            i += 1;
            continue;
        };
        let header_line = i;
        let mut files: Vec<String> = split_files(list);
        i += 1;
        // The file list may continue on the next lines, up to the first rule.
        while i < lines.len() && !is_rule(lines[i]) && !lines[i].trim().is_empty() {
            if lines[i].contains("Bytes") || section_header(lines[i]).is_some() {
                break;
            }
            files.extend(split_files(lines[i]));
            i += 1;
        }
        let matches = files.iter().any(|f| {
            let f = f
                .strip_suffix(".gz")
                .or_else(|| f.strip_suffix(".zst"))
                .unwrap_or(f);
            glob_match(f.as_bytes(), name.as_bytes())
        });
        if !matches {
            seen.extend(files);
            continue;
        }
        return parse_section(&lines, i, header_line, readme_file);
    }
    let found = if seen.is_empty() {
        "the ReadMe has no such sections".to_string()
    } else {
        format!("it describes only: {}", seen.join(", "))
    };
    Err(Error::bad(
        readme_file,
        "ReadMe",
        None,
        format!("no \"Byte-by-byte Description of file:\" section lists {name}; {found}"),
    ))
}

fn split_files(list: &str) -> Vec<String> {
    list.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses the column lines of a section starting at line `i` (after the header line).
fn parse_section(
    lines: &[&str],
    mut i: usize,
    header_line: usize,
    readme_file: &str,
) -> Result<Vec<CdsColumn>> {
    let place = |n: usize| format!("ReadMe line {}", n + 1);
    // Skip the rule and the `Bytes Format Units Label Explanations` header.
    while i < lines.len() && (is_rule(lines[i]) || lines[i].trim().is_empty()) {
        i += 1;
    }
    if i < lines.len() && lines[i].contains("Bytes") && lines[i].contains("Format") {
        i += 1;
    }
    while i < lines.len() && (is_rule(lines[i]) || lines[i].trim().is_empty()) {
        i += 1;
    }
    let mut raw: Vec<(usize, RawColumn)> = Vec::new();
    while i < lines.len() && !is_rule(lines[i]) && section_header(lines[i]).is_none() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        match (indent < 10).then(|| parse_column_line(line)).flatten() {
            Some(c) => raw.push((i, c)),
            None => match raw.last_mut() {
                Some((_, prev)) => {
                    prev.explanation.push(' ');
                    prev.explanation.push_str(line.trim());
                }
                None => {
                    return Err(Error::bad(
                        readme_file,
                        place(i),
                        None,
                        format!(
                            "cannot read a column description (expected `Bytes Format Units \
                             Label Explanations`), found {:?}",
                            line.trim()
                        ),
                    ));
                }
            },
        }
        i += 1;
    }
    if raw.is_empty() {
        return Err(Error::bad(
            readme_file,
            place(header_line),
            None,
            "the byte-by-byte description lists no columns",
        ));
    }
    let mut out: Vec<CdsColumn> = Vec::new();
    for (n, r) in raw {
        for col in r
            .into_columns()
            .map_err(|m| Error::bad(readme_file, place(n), None, m))?
        {
            out.push(col);
        }
    }
    // Labels must be unique to be column names.
    for k in 0..out.len() {
        if out[..k].iter().any(|c| c.label == out[k].label) {
            let base = out[k].label.clone();
            let mut j = 2;
            while out.iter().any(|c| c.label == format!("{base}_{j}")) {
                j += 1;
            }
            tracing::warn!("{readme_file}: duplicate column label {base}, renamed {base}_{j}");
            out[k].label = format!("{base}_{j}");
        }
    }
    Ok(out)
}

/// A column line as written, before flags are interpreted and repeats expanded.
#[derive(Debug)]
struct RawColumn {
    first: usize,
    last: usize,
    repeat: usize,
    letter: u8,
    width: usize,
    format: String,
    unit: String,
    label: String,
    explanation: String,
}

/// Splits off the next whitespace-delimited token.
fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Parses `  1-  6  I6  ---  HIP  Explanation` (or a single byte `  12`); `None` if the line
/// is not a column line.
fn parse_column_line(line: &str) -> Option<RawColumn> {
    let b = line.as_bytes();
    let mut p = 0;
    let skip_spaces = |p: &mut usize| {
        while *p < b.len() && b[*p] == b' ' {
            *p += 1;
        }
    };
    let digits = |p: &mut usize| -> Option<usize> {
        let s = *p;
        while *p < b.len() && b[*p].is_ascii_digit() {
            *p += 1;
        }
        line[s..*p].parse().ok()
    };
    skip_spaces(&mut p);
    let first = digits(&mut p)?;
    let save = p;
    skip_spaces(&mut p);
    let last = if p < b.len() && b[p] == b'-' {
        p += 1;
        skip_spaces(&mut p);
        digits(&mut p)?
    } else {
        p = save;
        first
    };
    if p < b.len() && !b[p].is_ascii_whitespace() {
        return None;
    }
    let rest = &line[p..];
    let (format, rest) = next_token(rest)?;
    let (repeat, letter, width) = parse_format(format)?;
    let (unit, rest) = next_token(rest)?;
    let (label, rest) = next_token(rest)?;
    Some(RawColumn {
        first,
        last,
        repeat,
        letter,
        width,
        format: format.to_string(),
        unit: unit.to_string(),
        label: label.to_string(),
        explanation: rest.trim().to_string(),
    })
}

/// Parses a format `[n]Xw[.d]` into (repeat, letter, width).
fn parse_format(f: &str) -> Option<(usize, u8, usize)> {
    let b = f.as_bytes();
    let lead = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let repeat = if lead == 0 {
        1
    } else {
        f[..lead].parse().ok()?
    };
    let letter = b.get(lead)?.to_ascii_uppercase();
    if !matches!(letter, b'A' | b'I' | b'F' | b'E' | b'D') {
        return None;
    }
    let rest = &f[lead + 1..];
    let (w, d) = match rest.split_once('.') {
        Some((w, d)) => (w, Some(d)),
        None => (rest, None),
    };
    let width: usize = w.parse().ok()?;
    if let Some(d) = d
        && d.parse::<usize>().is_err()
    {
        return None;
    }
    (width > 0 && repeat > 0).then_some((repeat, letter, width))
}

/// Interpreted explanation: flags and the cleaned description.
#[derive(Debug, Default, PartialEq)]
struct Explanation {
    nullable: bool,
    null_value: Option<String>,
    description: String,
}

/// Interprets leading `[limits]`, `?` and `?=VALUE` flags and trailing note references.
fn parse_explanation(text: &str) -> Explanation {
    let mut e = Explanation::default();
    let mut s = text.trim_start();
    loop {
        if s.starts_with('[') {
            match s.find(']') {
                Some(k) => s = s[k + 1..].trim_start(),
                None => break,
            }
        } else if let Some(r) = s.strip_prefix('?') {
            e.nullable = true;
            if let Some(r) = r.strip_prefix('=') {
                let end = r.find(char::is_whitespace).unwrap_or(r.len());
                if end > 0 {
                    e.null_value = Some(r[..end].to_string());
                }
                s = r[end..].trim_start();
            } else {
                // Other CDS flags after `?` (`?-`, `?+`, …) are ignored.
                let end = r
                    .find(|c: char| c.is_whitespace() || c == '[')
                    .unwrap_or(r.len());
                let flag = &r[..end];
                s = if flag.chars().all(|c| "-+:".contains(c)) {
                    r[end..].trim_start()
                } else {
                    r.trim_start()
                };
            }
        } else {
            break;
        }
    }
    let mut d = s.trim_end();
    // Trailing note references: `(1)`, `(G1)`, `(n2)`.
    while let Some(open) = d.strip_suffix(')').and_then(|x| x.rfind('(')) {
        let inner = &d[open + 1..d.len() - 1];
        let letters = inner.chars().take_while(char::is_ascii_alphabetic).count();
        let digits = &inner[letters..];
        if letters <= 1
            && !digits.is_empty()
            && digits.len() <= 3
            && digits.chars().all(|c| c.is_ascii_digit())
        {
            d = d[..open].trim_end();
        } else {
            break;
        }
    }
    e.description = d.to_string();
    e
}

impl RawColumn {
    fn into_columns(self) -> std::result::Result<Vec<CdsColumn>, String> {
        if self.first == 0 || self.last < self.first {
            return Err(format!(
                "column {}: invalid byte range {}-{} (bytes are numbered from 1)",
                self.label, self.first, self.last
            ));
        }
        let span = self.last - self.first + 1;
        let width = if self.repeat == 1 {
            span
        } else if self.repeat * self.width == span {
            self.width
        } else {
            return Err(format!(
                "column {}: format {} covers {} bytes but the range {}-{} has {}",
                self.label,
                self.format,
                self.repeat * self.width,
                self.first,
                self.last,
                span
            ));
        };
        let kind = match self.letter {
            b'I' if width > 9 => Kind::Int64,
            b'I' => Kind::Int32,
            b'A' => Kind::Str,
            _ => Kind::Float,
        };
        let e = parse_explanation(&self.explanation);
        let null_value = e.null_value.map(|t| NullValue {
            number: parse_float(t.as_bytes(), true),
            text: t.into_bytes(),
        });
        let unit = match self.unit.as_str() {
            "---" | "-" | "" => None,
            u => Some(u.to_string()),
        };
        // For messages, the format of one element (`F7.2` of `15F7.2`).
        let format = self
            .format
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .to_string();
        Ok((0..self.repeat)
            .map(|k| CdsColumn {
                label: if self.repeat == 1 {
                    self.label.clone()
                } else {
                    format!("{}{}", self.label, k + 1)
                },
                start: self.first - 1 + k * width,
                end: self.first - 1 + (k + 1) * width,
                format: format.clone(),
                kind,
                d_exponent: self.letter == b'D',
                nullable: e.nullable,
                null_value: null_value.clone(),
                unit: unit.clone(),
                description: e.description.clone(),
            })
            .collect())
    }
}

/// Parses an optionally signed decimal integer.
fn parse_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

/// Parses a floating-point number, accepting a Fortran `D` exponent when `d_exponent`.
fn parse_float(b: &[u8], d_exponent: bool) -> Option<f64> {
    // Only decimal numbers: Rust also accepts `inf`/`nan`, which CDS data never write.
    let numeric = |c: &u8| {
        matches!(
            c,
            b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E' | b'd' | b'D'
        )
    };
    if b.is_empty() || !b.iter().all(numeric) {
        return None;
    }
    if d_exponent && b.iter().any(|&c| c == b'D' || c == b'd') {
        let mut buf = [0u8; 64];
        if b.len() > buf.len() {
            return None;
        }
        for (o, &c) in buf.iter_mut().zip(b) {
            *o = if c == b'D' || c == b'd' { b'E' } else { c };
        }
        return std::str::from_utf8(&buf[..b.len()]).ok()?.parse().ok();
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses one field of `line`.
fn parse_field(col: &CdsColumn, line: &[u8]) -> std::result::Result<Cell, String> {
    let s = col.start.min(line.len());
    let e = col.end.min(line.len());
    let raw = &line[s..e];
    if col.kind == Kind::Str {
        let len = raw.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 1);
        let text = &raw[..len];
        if col.nullable && text.trim_ascii().is_empty() {
            return Ok(Cell::Null);
        }
        if let Some(nv) = &col.null_value
            && text.trim_ascii() == nv.text.as_slice()
        {
            return Ok(Cell::Null);
        }
        return Ok(Cell::Str(s, s + len));
    }
    let t = raw.trim_ascii();
    if t.is_empty() {
        if col.nullable {
            return Ok(Cell::Null);
        }
        let why = if col.end > line.len() {
            format!(" (the line is only {} bytes long)", line.len())
        } else {
            String::new()
        };
        return Err(format!(
            "{}: blank value{why}, but the ReadMe does not mark the column as nullable ('?')",
            col.place()
        ));
    }
    if let Some(nv) = &col.null_value
        && t == nv.text.as_slice()
    {
        return Ok(Cell::Null);
    }
    let cell = match col.kind {
        Kind::Int32 | Kind::Int64 => {
            let v = parse_int(t).filter(|&v| col.kind == Kind::Int64 || i32::try_from(v).is_ok());
            match v {
                Some(v) => Cell::Int(v),
                None => return Err(bad_value(col, t, "an integer")),
            }
        }
        _ => match parse_float(t, col.d_exponent) {
            Some(v) => Cell::Float(v),
            None => return Err(bad_value(col, t, "a number")),
        },
    };
    if let Some(NullValue {
        number: Some(n), ..
    }) = &col.null_value
    {
        let v = match cell {
            Cell::Int(v) => v as f64,
            Cell::Float(v) => v,
            _ => f64::NAN,
        };
        if v == *n {
            return Ok(Cell::Null);
        }
    }
    Ok(cell)
}

fn bad_value(col: &CdsColumn, found: &[u8], expected: &str) -> String {
    format!(
        "{}: expected {expected}, found {:?}",
        col.place(),
        String::from_utf8_lossy(found)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, Int32Array, Int64Array, StringArray};
    use std::io::Write;

    use crate::source::BadRows;

    const README: &str = "\
J/XX/1     A test catalogue                                  (Nobody, 2024)
================================================================================
File Summary:
--------------------------------------------------------------------------------
 FileName   Lrecl  Records    Explanations
--------------------------------------------------------------------------------
ReadMe         80        .    This file
stars.dat      69        4    The stars
--------------------------------------------------------------------------------

Byte-by-byte Description of file: stars.dat, more*.dat
--------------------------------------------------------------------------------
   Bytes Format Units   Label     Explanations
--------------------------------------------------------------------------------
   1-  5  I5    ---     ID        [1,99999] Identifier (1)
   7- 16 F10.6  deg     RAdeg     Right ascension (ICRS) at
                                  epoch J2000
  18- 27 F10.6  deg     DEdeg     ? Declination (ICRS)
  29- 33  F5.1  mag     Vmag      ?=-99.9 Visual magnitude (G1)
  35- 46  A12   ---     Name      ? Star name
  48- 57  I10   ---     Big       Big integer
  59- 67  E9.3  W/m2    Flux      [0/1]? Flux
      69  A1    ---     Flag      [ab] Flag
--------------------------------------------------------------------------------
Note (1): nothing to say.
--------------------------------------------------------------------------------

Byte-by-byte Description of file: other.dat
--------------------------------------------------------------------------------
   Bytes Format Units   Label     Explanations
--------------------------------------------------------------------------------
   1-  3  A3    ---     Code      Code
   5- 16 3F4.1  ---     W         Weights
  18- 26  D9.2  s       T         Time
--------------------------------------------------------------------------------
";

    /// Builds a data line from (1-based first byte, text) pieces.
    fn line(pieces: &[(usize, &str)]) -> String {
        let mut b = vec![b' '; 69];
        for (first, text) in pieces {
            let s = first - 1;
            if b.len() < s + text.len() {
                b.resize(s + text.len(), b' ');
            }
            b[s..s + text.len()].copy_from_slice(text.as_bytes());
        }
        String::from_utf8(b).unwrap()
    }

    fn star(id: &str, ra: &str, de: &str, v: &str, name: &str, big: &str, flux: &str) -> String {
        line(&[
            (1, id),
            (7, ra),
            (18, de),
            (29, v),
            (35, name),
            (48, big),
            (59, flux),
            (69, "a"),
        ])
    }

    fn stars() -> Vec<String> {
        vec![
            star(
                "    1",
                " 10.500000",
                "-20.250000",
                " 12.3",
                "Alpha",
                "9876543210",
                "1.500E-03",
            ),
            star(
                "   22",
                "359.999999",
                "          ",
                "-99.9",
                "",
                "        -1",
                "         ",
            ),
            star(
                "99999",
                "  0.000001",
                " 89.999999",
                "     ",
                "Gamma Star",
                "         0",
                " 2.0e+01 ",
            ),
            star(
                "  333",
                "180.000000",
                "  0.000000",
                "  0.0",
                "x",
                "        42",
                "2.000E+00",
            ),
        ]
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read_all(src: &mut dyn RowSource) -> Result<Vec<SourceBatch>> {
        let mut out = Vec::new();
        while let Some(b) = src.next_batch()? {
            out.push(b);
        }
        Ok(out)
    }

    fn concat(batches: &[SourceBatch]) -> RecordBatch {
        let schema = batches[0].batch.schema();
        arrow::compute::concat_batches(&schema, batches.iter().map(|b| &b.batch)).unwrap()
    }

    fn f64s(b: &RecordBatch, name: &str) -> Float64Array {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone()
    }

    #[test]
    fn reads_types_nulls_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ReadMe", README);
        let p = write(dir.path(), "stars.dat", &(stars().join("\n") + "\n"));
        let mut src = CdsSource::open(&p, &ReadOptions::default()).unwrap();
        let schema = src.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "ID", "RAdeg", "DEdeg", "Vmag", "Name", "Big", "Flux", "Flag"
            ]
        );
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        use DataType::*;
        assert_eq!(
            types,
            [Int32, Float64, Float64, Float64, Utf8, Int64, Float64, Utf8]
        );
        let meta = |n: &str, k: &str| {
            schema
                .field_with_name(n)
                .unwrap()
                .metadata()
                .get(k)
                .cloned()
        };
        assert_eq!(meta("RAdeg", UNIT).as_deref(), Some("deg"));
        assert_eq!(meta("Flux", UNIT).as_deref(), Some("W/m2"));
        assert_eq!(meta("ID", UNIT), None);
        assert_eq!(meta("ID", DESCRIPTION).as_deref(), Some("Identifier"));
        assert_eq!(
            meta("RAdeg", DESCRIPTION).as_deref(),
            Some("Right ascension (ICRS) at epoch J2000")
        );
        assert_eq!(
            meta("DEdeg", DESCRIPTION).as_deref(),
            Some("Declination (ICRS)")
        );
        assert_eq!(
            meta("Vmag", DESCRIPTION).as_deref(),
            Some("Visual magnitude")
        );
        assert_eq!(meta("Flux", DESCRIPTION).as_deref(), Some("Flux"));
        assert_eq!(meta("Flag", DESCRIPTION).as_deref(), Some("Flag"));
        assert!(meta("ID", tessera_storage::columns::UCD).is_none());
        assert!(!schema.field_with_name("ID").unwrap().is_nullable());
        assert!(schema.field_with_name("DEdeg").unwrap().is_nullable());
        assert!(schema.field_with_name("Vmag").unwrap().is_nullable());

        let batches = read_all(&mut src).unwrap();
        assert_eq!(src.progress(), Some(1.0));
        let b = concat(&batches);
        assert_eq!(b.num_rows(), 4);
        assert_eq!(b.schema(), schema);
        let id = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(id.values().to_vec(), vec![1, 22, 99999, 333]);
        let ra = f64s(&b, "RAdeg");
        assert_eq!(ra.value(1), 359.999999);
        let de = f64s(&b, "DEdeg");
        assert!(de.is_null(1) && de.is_valid(0) && de.value(0) == -20.25);
        let v = f64s(&b, "Vmag");
        assert_eq!(v.value(0), 12.3);
        assert!(v.is_null(1), "?=-99.9 is null");
        assert!(v.is_null(2), "blank is null with ?=");
        assert_eq!(v.value(3), 0.0);
        let name = b.column(4).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(name.value(0), "Alpha");
        assert!(name.is_null(1));
        assert_eq!(name.value(2), "Gamma Star");
        let big = b.column(5).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(big.values().to_vec(), vec![9_876_543_210, -1, 0, 42]);
        let flux = f64s(&b, "Flux");
        assert_eq!(flux.value(0), 1.5e-3);
        assert!(flux.is_null(1));
        assert_eq!(flux.value(2), 20.0);
        let flag = b.column(7).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(flag.value(3), "a");
    }

    #[test]
    fn batches_lines_and_projection() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ReadMe", README);
        // Blank lines are skipped; line numbers stay those of the file.
        let text = format!(
            "{}\n\n{}\n{}\n   \n{}\n",
            stars()[0],
            stars()[1],
            stars()[2],
            stars()[3]
        );
        let p = write(dir.path(), "stars.dat", &text);
        let opts = ReadOptions {
            batch_rows: 3,
            projection: Some(vec!["DEdeg".into(), "RAdeg".into(), "nope".into()]),
            ..ReadOptions::default()
        };
        let mut src = CdsSource::open(&p, &opts).unwrap();
        assert_eq!(
            src.schema().fields().len(),
            8,
            "schema() is the full schema"
        );
        let batches = read_all(&mut src).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].batch.num_rows(), 3);
        assert_eq!(batches[1].batch.num_rows(), 1);
        let names: Vec<String> = batches[0]
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["RAdeg", "DEdeg"], "schema order");
        match (&batches[0].loc, &batches[1].loc) {
            (RowLoc::Lines(a), RowLoc::Lines(b)) => {
                assert_eq!(a, &[1, 3, 4]);
                assert_eq!(b, &[6]);
            }
            other => panic!("unexpected locations {other:?}"),
        }
        assert_eq!(f64s(&batches[1].batch, "RAdeg").value(0), 180.0);
        // Reopening yields the same rows.
        let again = read_all(&mut CdsSource::open(&p, &opts).unwrap()).unwrap();
        assert_eq!(concat(&again), concat(&batches));
    }

    #[test]
    fn wildcard_files_compression_and_other_sections() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "README", README);
        // `more2.dat.zst` matches `more*.dat` once `.zst` is stripped.
        let zst = dir.path().join("more2.dat.zst");
        let mut enc =
            zstd::stream::write::Encoder::new(std::fs::File::create(&zst).unwrap(), 3).unwrap();
        enc.write_all(stars().join("\r\n").as_bytes()).unwrap();
        enc.finish().unwrap();
        let b = concat(
            &read_all(&mut CdsSource::open(&zst, &ReadOptions::default()).unwrap()).unwrap(),
        );
        assert_eq!(b.num_rows(), 4);
        assert_eq!(
            f64s(&b, "Flux").value(3),
            2.0,
            "CRLF stripped, last line without newline"
        );

        // The other section: repeat format expands to W1..W3; D exponent; explicit ReadMe path.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let p = write(
            &sub,
            "other.dat",
            "abc  1.5-2.0 3.0  1.50D+03\nxy   0.0 0.0 0.0 -2.5d-01\n",
        );
        let opts = ReadOptions {
            readme: Some(dir.path().join("README")),
            ..ReadOptions::default()
        };
        let mut src = CdsSource::open(&p, &opts).unwrap();
        let names: Vec<String> = src
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["Code", "W1", "W2", "W3", "T"]);
        let b = concat(&read_all(&mut src).unwrap());
        assert_eq!(f64s(&b, "W1").value(0), 1.5);
        assert_eq!(f64s(&b, "W2").value(0), -2.0);
        assert_eq!(f64s(&b, "W3").value(0), 3.0);
        assert_eq!(f64s(&b, "T").value(0), 1500.0);
        assert_eq!(f64s(&b, "T").value(1), -0.25);
        let code = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(code.value(1), "xy");
        assert_eq!(
            src.schema()
                .field_with_name("T")
                .unwrap()
                .metadata()
                .get(UNIT)
                .map(String::as_str),
            Some("s")
        );

        // No section for the file, and no ReadMe at all.
        let p = write(dir.path(), "table9.dat", "x\n");
        let err = CdsSource::open(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("table9.dat") && err.contains("other.dat"),
            "{err}"
        );
        let lonely = tempfile::tempdir().unwrap();
        let p = write(lonely.path(), "t.dat", "x\n");
        let err = CdsSource::open(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ReadMe"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ReadMe", README);
        let mut rows = stars();
        rows[1].replace_range(0..5, "  2x2");
        let p = write(dir.path(), "stars.dat", &(rows.join("\n") + "\n"));

        let err = read_all(&mut CdsSource::open(&p, &ReadOptions::default()).unwrap()).unwrap_err();
        match &err {
            Error::BadInput {
                file,
                place,
                column,
                message,
            } => {
                assert!(file.ends_with("stars.dat"), "{file}");
                assert_eq!(place, "line 2");
                assert_eq!(column.as_deref(), Some("ID"));
                assert!(
                    message.contains("bytes 1-5") && message.contains("2x2"),
                    "{message}"
                );
            }
            other => panic!("unexpected error {other}"),
        }

        let bad = BadRows::new(1);
        let opts = ReadOptions {
            bad_rows: bad.clone(),
            ..ReadOptions::default()
        };
        let batches = read_all(&mut CdsSource::open(&p, &opts).unwrap()).unwrap();
        let b = concat(&batches);
        assert_eq!(b.num_rows(), 3);
        let id = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(id.values().to_vec(), vec![1, 99999, 333]);
        match &batches[0].loc {
            RowLoc::Lines(l) => assert_eq!(l, &[1, 3, 4]),
            other => panic!("unexpected locations {other:?}"),
        }
        let skipped = bad.rows();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].place, "line 2");
        assert_eq!(skipped[0].column.as_deref(), Some("ID"));

        // A second bad row exceeds the budget of one.
        rows[2].replace_range(6..16, "  12.3.4  ");
        let p = write(dir.path(), "stars.dat", &(rows.join("\n") + "\n"));
        let opts = ReadOptions {
            bad_rows: BadRows::new(1),
            ..ReadOptions::default()
        };
        let err = read_all(&mut CdsSource::open(&p, &opts).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("RAdeg"), "{err}");
    }

    #[test]
    fn short_lines_and_non_ascii_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ReadMe", README);
        // Short line: Name..Flag are beyond its end; Big is not nullable.
        let short = &stars()[0][..33];
        let p = write(dir.path(), "stars.dat", &format!("{short}\n"));
        let err = read_all(&mut CdsSource::open(&p, &ReadOptions::default()).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("Big") && err.contains("33 bytes"),
            "{err}"
        );
        // With Big and Flag projected away, the short line reads, Name is null.
        let opts = ReadOptions {
            projection: Some(vec!["ID".into(), "Vmag".into(), "Name".into()]),
            ..ReadOptions::default()
        };
        let b = concat(&read_all(&mut CdsSource::open(&p, &opts).unwrap()).unwrap());
        assert_eq!(b.num_rows(), 1);
        assert!(b.column(2).is_null(0));

        // Non-ASCII bytes: in a text column they are kept (lossy); in a number, an error.
        let mut row = stars()[0].clone().into_bytes();
        row[34..41].copy_from_slice(b"R\xc3\xa9\xc3\xa9\xff\xfe");
        let mut bytes = row.clone();
        bytes.push(b'\n');
        let mut numeric = row.clone();
        numeric[8..11].copy_from_slice(b"\xc3\xa9\x01");
        bytes.extend_from_slice(&numeric);
        bytes.extend_from_slice(b"\n\xff\xff\xff\n");
        std::fs::write(&p, &bytes).unwrap();
        let bad = BadRows::new(5);
        let opts = ReadOptions {
            bad_rows: bad.clone(),
            ..ReadOptions::default()
        };
        let b = concat(&read_all(&mut CdsSource::open(&p, &opts).unwrap()).unwrap());
        assert_eq!(b.num_rows(), 1);
        let name = b.column(4).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(name.value(0).starts_with("Réé"), "{}", name.value(0));
        let skipped = bad.rows();
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0].column.as_deref(), Some("RAdeg"));
        assert_eq!(skipped[1].place, "line 3");
    }

    #[test]
    fn explanation_flags() {
        let e = parse_explanation("[0,159]? Solution type (1)");
        assert!(e.nullable && e.null_value.is_none());
        assert_eq!(e.description, "Solution type");
        let e = parse_explanation("?=-99.9 Visual magnitude (G2)");
        assert_eq!(e.null_value.as_deref(), Some("-99.9"));
        assert_eq!(e.description, "Visual magnitude");
        let e = parse_explanation("Epoch (J2000)");
        assert!(!e.nullable);
        assert_eq!(e.description, "Epoch (J2000)");
        assert!(glob_match(b"*.dat", b"hip2.dat"));
        assert!(glob_match(b"t?b*e.DAT", b"table.dat"));
        assert!(!glob_match(b"*.dat", b"hip2.dat.bak"));
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"+7"), Some(7));
        assert_eq!(parse_int(b"1 2"), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_float(b"nan", false), None);
        assert_eq!(parse_float(b"1.0D2", true), Some(100.0));
        assert_eq!(parse_float(b"1.0D2", false), None);
        assert_eq!(data_file_name(Path::new("/a/b/hip2.dat.zst")), "hip2.dat");
    }

    /// The committed Hipparcos dataset with its hand-written ReadMe (DATA.md §2.1 check values).
    #[test]
    fn hipparcos_dataset() {
        let ds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/hipparcos");
        let opts = ReadOptions {
            readme: Some(ds.join("ReadMe")),
            ..ReadOptions::default()
        };
        let mut src = CdsSource::open(&ds.join("hip2.dat.zst"), &opts).unwrap();
        let schema = src.schema();
        assert_eq!(schema.fields().len(), 26 + 15);
        let ra_field = schema.field_with_name("RArad").unwrap();
        assert_eq!(
            ra_field.metadata().get(UNIT).map(String::as_str),
            Some("rad")
        );
        assert_eq!(
            schema
                .field_with_name("pmDE")
                .unwrap()
                .metadata()
                .get(UNIT)
                .map(String::as_str),
            Some("mas/yr")
        );
        assert_eq!(
            schema.field_with_name("HIP").unwrap().data_type(),
            &DataType::Int32
        );
        assert!(schema.field_with_name("UW15").is_ok());

        let mut rows = 0usize;
        let mut found = 0;
        while let Some(sb) = src.next_batch().unwrap() {
            let b = &sb.batch;
            let hip = b
                .column_by_name("HIP")
                .unwrap()
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap();
            let (ra, de, plx) = (f64s(b, "RArad"), f64s(b, "DErad"), f64s(b, "Plx"));
            let (pmra, pmde, hp) = (f64s(b, "pmRA"), f64s(b, "pmDE"), f64s(b, "Hpmag"));
            assert_eq!(b.num_rows(), hip.len());
            assert_eq!(hip.null_count(), 0);
            for i in 0..b.num_rows() {
                let (ra_deg, de_deg) = (ra.value(i).to_degrees(), de.value(i).to_degrees());
                match hip.value(i) {
                    1 => {
                        assert!((ra_deg - 0.000911851).abs() < 1e-9, "{ra_deg}");
                        assert!((de_deg - 1.089013).abs() < 1e-6, "{de_deg}");
                        assert_eq!(plx.value(i), 4.55);
                        assert_eq!(hp.value(i), 9.2043);
                        assert_eq!(rows + i, 0);
                        found += 1;
                    }
                    32349 => {
                        assert!((ra_deg - 101.28854).abs() < 1e-5, "{ra_deg}");
                        assert!((de_deg + 16.71314).abs() < 1e-5, "{de_deg}");
                        assert_eq!(plx.value(i), 379.21);
                        assert_eq!((pmra.value(i), pmde.value(i)), (-546.01, -1223.07));
                        assert_eq!(hp.value(i), -1.0876);
                        found += 1;
                    }
                    87937 => {
                        assert_eq!(plx.value(i), 548.31);
                        assert_eq!((pmra.value(i), pmde.value(i)), (-798.58, 10328.12));
                        found += 1;
                    }
                    _ => {}
                }
            }
            rows += b.num_rows();
            let p = src.progress().unwrap();
            assert!((0.0..=1.0).contains(&p));
        }
        assert_eq!(rows, 117_955);
        assert_eq!(found, 3);
        assert_eq!(src.progress(), Some(1.0));
    }
}
