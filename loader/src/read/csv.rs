//! Delimited text (CSV/TSV) with a header line.
//!
//! Records are split by `csv-core` (RFC 4180 quoting, CR/LF/CRLF line ends, `#` comment
//! lines); the file is read in chunks cut at record boundaries (a newline preceded by an even
//! number of quote characters), and the chunks of a group are parsed in parallel on rayon.
//! Arrow's own CSV reader is not used because it cannot skip bad rows, report the absolute
//! line of a bad value, or parse chunks in parallel.
//!
//! Types are inferred from the first [`INFER_ROWS`] records (Int64, then Float64, then Boolean,
//! else Utf8; empty fields are null) unless given with `--column-types name=type`.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::source::{BadRow, BadRows, ReadOptions, RowLoc, RowSource, SourceBatch};

/// Records sampled to infer column types.
pub const INFER_ROWS: usize = 10_000;
const CHUNK_BYTES: usize = 4 << 20;

/// A CSV/TSV file opened for reading.
pub struct CsvSource {
    file: String,
    /// Record-aligned chunks `(bytes, first line)` from the reader thread.
    chunks: std::sync::mpsc::Receiver<Result<(Vec<u8>, u64)>>,
    /// The reader thread has finished (end of input or error delivered).
    done: bool,
    read_bytes: Arc<AtomicU64>,
    total_bytes: u64,
    delimiter: u8,
    full_schema: SchemaRef,
    schema: SchemaRef,
    /// Index in the record of each output column.
    projection: Vec<usize>,
    ncols: usize,
    ready: VecDeque<SourceBatch>,
    bad_rows: BadRows,
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource")
            .field("file", &self.file)
            .finish()
    }
}

struct CountingRead<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Parses a `--column-types` type name.
pub fn parse_type_name(s: &str) -> Option<DataType> {
    Some(match s.to_ascii_lowercase().as_str() {
        "int" | "int64" | "long" | "bigint" | "integer" => DataType::Int64,
        "double" | "float64" | "float" | "real" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "string" | "str" | "text" | "utf8" | "char" => DataType::Utf8,
        _ => return None,
    })
}

impl CsvSource {
    /// Opens `path`, reads the header and infers the column types.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let file = path.display().to_string();
        let read_bytes = Arc::new(AtomicU64::new(0));
        let total_bytes = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        let raw = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let counted = CountingRead {
            inner: raw,
            count: read_bytes.clone(),
        };
        let mut input: Box<dyn Read + Send> = if file.ends_with(".zst") {
            Box::new(zstd::stream::read::Decoder::new(counted).map_err(|e| Error::io(path, e))?)
        } else {
            Box::new(std::io::BufReader::with_capacity(1 << 20, counted))
        };

        // Read until we have the header and enough records to infer types.
        let mut pending = Vec::with_capacity(CHUNK_BYTES);
        let mut eof = false;
        while !eof && pending.len() < CHUNK_BYTES {
            eof = fill(&mut input, &mut pending, CHUNK_BYTES, path)?;
        }
        // Header: the first non-comment line.
        let mut line = 1u64;
        let mut start = 0usize;
        loop {
            let end = match pending[start..].iter().position(|&b| b == b'\n') {
                Some(i) => start + i,
                None if start < pending.len() => pending.len(),
                None => {
                    return Err(Error::bad(
                        &file,
                        "line 1",
                        None,
                        "empty file: expected a header line",
                    ));
                }
            };
            let text = &pending[start..end];
            if text.first() == Some(&b'#') || text.iter().all(|b| b.is_ascii_whitespace()) {
                start = (end + 1).min(pending.len());
                line += 1;
                if start >= pending.len() {
                    return Err(Error::bad(
                        &file,
                        format!("line {line}"),
                        None,
                        "no header line found",
                    ));
                }
                continue;
            }
            break;
        }
        let header_end = pending[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| start + i)
            .unwrap_or(pending.len());
        let header_line = &pending[start..header_end];
        let delimiter = opts.delimiter.unwrap_or_else(|| {
            let lower = file.to_ascii_lowercase();
            if lower.ends_with(".tsv")
                || lower.ends_with(".tsv.zst")
                || (!header_line.contains(&b',') && header_line.contains(&b'\t'))
            {
                b'\t'
            } else {
                b','
            }
        });
        let mut names = split_records(header_line, delimiter)
            .into_iter()
            .next()
            .unwrap_or_default();
        for (i, n) in names.iter_mut().enumerate() {
            let t = n.trim().trim_start_matches('\u{feff}').to_string();
            *n = if t.is_empty() {
                format!("col{}", i + 1)
            } else {
                t
            };
        }
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n.clone()) {
                return Err(Error::bad(
                    &file,
                    format!("line {line}"),
                    Some(n),
                    "column name appears twice in the header",
                ));
            }
        }
        let body_start = (header_end + 1).min(pending.len());
        pending.drain(..body_start);
        let pending_line = line + 1;

        // Infer types from the first records.
        let sample = split_records(&pending[..sample_end(&pending, eof)], delimiter);
        let mut types = Vec::with_capacity(names.len());
        for (ci, name) in names.iter().enumerate() {
            if let Some((_, t)) = opts.column_types.iter().find(|(n, _)| n == name) {
                types.push(t.clone());
                continue;
            }
            types.push(infer(
                sample
                    .iter()
                    .take(INFER_ROWS)
                    .filter_map(|r| r.get(ci))
                    .map(String::as_str),
            ));
        }
        for (n, _) in &opts.column_types {
            if !names.contains(n) {
                return Err(Error::Usage(format!(
                    "--column-types names `{n}`, which is not a column of {file}"
                )));
            }
        }
        let full_schema = Arc::new(Schema::new(
            names
                .iter()
                .zip(&types)
                .map(|(n, t)| Field::new(n, t.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let projection: Vec<usize> = match &opts.projection {
            Some(cols) => (0..names.len())
                .filter(|&i| cols.contains(&names[i]))
                .collect(),
            None => (0..names.len()).collect(),
        };
        let schema = Arc::new(full_schema.project(&projection)?);
        // A reader thread cuts the input into record-aligned chunks while the rayon threads
        // parse the previous ones: reading and line counting overlap parsing.
        let mut chunker = Chunker {
            file: file.clone(),
            input,
            pending,
            pending_line,
            eof,
        };
        let (tx, chunks) = std::sync::mpsc::sync_channel(rayon::current_num_threads().max(1) * 2);
        std::thread::Builder::new()
            .name("tessera-csv-reader".into())
            .spawn(move || {
                loop {
                    match chunker.next_chunk() {
                        Ok(Some(c)) => {
                            if tx.send(Ok(c)).is_err() {
                                break; // the source was dropped
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
            })
            .map_err(|e| Error::io(path, e))?;
        Ok(CsvSource {
            file,
            chunks,
            done: false,
            read_bytes,
            total_bytes,
            delimiter,
            full_schema,
            schema,
            projection,
            ncols: names.len(),
            ready: VecDeque::new(),
            bad_rows: opts.bad_rows.clone(),
        })
    }

    /// The schema of all columns (before projection).
    pub fn full_schema(&self) -> SchemaRef {
        self.full_schema.clone()
    }

    /// Reads and parses the next group of chunks in parallel.
    fn parse_group(&mut self) -> Result<()> {
        let nchunks = rayon::current_num_threads().max(1) * 2;
        let mut chunks: Vec<(Vec<u8>, u64)> = Vec::with_capacity(nchunks);
        while chunks.len() < nchunks && !self.done {
            match self.chunks.recv() {
                Ok(c) => chunks.push(c?),
                Err(_) => self.done = true,
            }
        }
        let ctx = ChunkCtx {
            file: &self.file,
            delimiter: self.delimiter,
            full_schema: &self.full_schema,
            schema: &self.schema,
            projection: &self.projection,
            ncols: self.ncols,
            bad_rows: &self.bad_rows,
        };
        let parsed: Vec<Result<SourceBatch>> = chunks
            .par_iter()
            .map(|(bytes, first_line)| parse_chunk(&ctx, bytes, *first_line))
            .collect();
        for p in parsed {
            let b = p?;
            if b.batch.num_rows() > 0 {
                self.ready.push_back(b);
            }
        }
        Ok(())
    }
}

/// Cuts the input into chunks of about [`CHUNK_BYTES`] that end at record boundaries.
struct Chunker {
    file: String,
    input: Box<dyn Read + Send>,
    /// Bytes read but not yet cut (start at a record boundary).
    pending: Vec<u8>,
    /// 1-based line number of the first line of `pending`.
    pending_line: u64,
    eof: bool,
}

impl Chunker {
    fn next_chunk(&mut self) -> Result<Option<(Vec<u8>, u64)>> {
        let path = std::path::PathBuf::from(&self.file);
        loop {
            while !self.eof && self.pending.len() < CHUNK_BYTES {
                self.eof = fill(&mut self.input, &mut self.pending, CHUNK_BYTES, &path)?;
            }
            if self.pending.is_empty() {
                return Ok(None);
            }
            let cut = if self.eof && self.pending.len() <= CHUNK_BYTES {
                self.pending.len()
            } else {
                match record_boundary(&self.pending[..self.pending.len().min(CHUNK_BYTES)]) {
                    Some(c) => c,
                    None if self.eof => self.pending.len(),
                    None => {
                        // A record longer than a chunk: read more.
                        let want = self.pending.len() * 2;
                        self.eof = fill(&mut self.input, &mut self.pending, want, &path)?;
                        match record_boundary(&self.pending) {
                            Some(c) => c,
                            None if self.eof => self.pending.len(),
                            None => continue,
                        }
                    }
                }
            };
            let rest = self.pending.split_off(cut);
            let chunk = std::mem::replace(&mut self.pending, rest);
            let first = self.pending_line;
            self.pending_line += memchr::memchr_iter(b'\n', &chunk).count() as u64;
            return Ok(Some((chunk, first)));
        }
    }
}

/// Reads into `buf` until it holds `want` bytes or the input ends; returns whether it ended.
fn fill(
    input: &mut Box<dyn Read + Send>,
    buf: &mut Vec<u8>,
    want: usize,
    path: &Path,
) -> Result<bool> {
    // Read straight into the buffer's tail (no bounce buffer).
    while buf.len() < want {
        let len = buf.len();
        buf.resize(want.max(len + (1 << 16)), 0);
        let n = match input.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(len);
                return Err(Error::io(path, e));
            }
        };
        buf.truncate(len + n);
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// End of the last complete record in `buf`: just after the last newline that is preceded by
/// an even number of quote characters.
fn record_boundary(buf: &[u8]) -> Option<usize> {
    let total_quotes = memchr::memchr_iter(b'"', buf).count();
    if total_quotes == 0 {
        return memchr::memrchr(b'\n', buf).map(|i| i + 1);
    }
    let mut quotes_after = 0usize;
    for i in (0..buf.len()).rev() {
        match buf[i] {
            b'"' => quotes_after += 1,
            b'\n' if (total_quotes - quotes_after).is_multiple_of(2) => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn sample_end(buf: &[u8], eof: bool) -> usize {
    if eof {
        buf.len()
    } else {
        record_boundary(buf).unwrap_or(0)
    }
}

/// Splits complete records into owned fields (used for the header and type inference; stops
/// after [`INFER_ROWS`] records).
fn split_records(bytes: &[u8], delimiter: u8) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut it = RecordIter::new(bytes, delimiter);
    while let Some((_, rec)) = it.next_record() {
        out.push(
            rec.fields()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect(),
        );
        if out.len() > INFER_ROWS {
            break;
        }
    }
    out
}

/// Iterates over the records of complete CSV text with growable buffers.
struct RecordIter<'a> {
    rdr: csv_core::Reader,
    input: &'a [u8],
    field: Vec<u8>,
    ends: Vec<usize>,
    nend: usize,
    /// Newlines consumed before the current record started.
    lines_before: u64,
    lines_consumed: u64,
    done: bool,
}

struct Record<'b> {
    field: &'b [u8],
    ends: &'b [usize],
}

impl<'b> Record<'b> {
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn get(&self, i: usize) -> &'b [u8] {
        let s = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.field[s..self.ends[i]]
    }
    fn fields(&self) -> impl Iterator<Item = &'b [u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl<'a> RecordIter<'a> {
    /// At a record start, skips empty lines and `#` comment lines, counting them.
    fn skip_blank_and_comment_lines(&mut self) {
        loop {
            match self.input.first() {
                Some(b'\n') => {
                    self.lines_consumed += 1;
                    self.input = &self.input[1..];
                }
                Some(b'\r') => self.input = &self.input[1..],
                Some(b'#') => {
                    let end = self.input.iter().position(|&b| b == b'\n');
                    match end {
                        Some(i) => {
                            self.lines_consumed += 1;
                            self.input = &self.input[i + 1..];
                        }
                        None => self.input = &[],
                    }
                }
                _ => return,
            }
        }
    }

    fn new(input: &'a [u8], delimiter: u8) -> Self {
        RecordIter {
            rdr: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            input,
            field: vec![0u8; 1024],
            ends: vec![0usize; 64],
            nend: 0,
            lines_before: 0,
            lines_consumed: 0,
            done: false,
        }
    }

    fn next_record(&mut self) -> Option<(u64, Record<'_>)> {
        if self.done {
            return None;
        }
        let mut nout_total = 0usize;
        let mut nend_total = 0usize;
        self.skip_blank_and_comment_lines();
        self.lines_before = self.lines_consumed;
        loop {
            let (res, nin, nout, nend) = self.rdr.read_record(
                self.input,
                &mut self.field[nout_total..],
                &mut self.ends[nend_total..],
            );
            self.lines_consumed += self.input[..nin].iter().filter(|&&b| b == b'\n').count() as u64;
            self.input = &self.input[nin..];
            // csv-core keeps field ends relative to the start of the record across calls.
            nout_total += nout;
            nend_total += nend;
            match res {
                csv_core::ReadRecordResult::OutputFull => {
                    let n = self.field.len() * 2;
                    self.field.resize(n, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    self.nend = nend_total;
                    // A line of blanks gives a single empty field: skip it.
                    if nend_total == 1 && self.ends[0] == 0 {
                        nout_total = 0;
                        nend_total = 0;
                        self.skip_blank_and_comment_lines();
                        self.lines_before = self.lines_consumed;
                        continue;
                    }
                    return Some((
                        self.lines_before,
                        Record {
                            field: &self.field[..nout_total],
                            ends: &self.ends[..self.nend],
                        },
                    ));
                }
                csv_core::ReadRecordResult::InputEmpty => {
                    if self.input.is_empty() {
                        // Signal end of input to flush a final record without newline.
                        let (res, _, nout, nend) = self.rdr.read_record(
                            &[],
                            &mut self.field[nout_total..],
                            &mut self.ends[nend_total..],
                        );
                        nout_total += nout;
                        nend_total += nend;
                        self.done = true;
                        if res == csv_core::ReadRecordResult::Record
                            && !(nend_total == 1 && self.ends[0] == 0)
                        {
                            self.nend = nend_total;
                            return Some((
                                self.lines_before,
                                Record {
                                    field: &self.field[..nout_total],
                                    ends: &self.ends[..self.nend],
                                },
                            ));
                        }
                        return None;
                    }
                }
                csv_core::ReadRecordResult::End => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

fn infer<'a>(values: impl Iterator<Item = &'a str>) -> DataType {
    let (mut int, mut float, mut boolean, mut any) = (true, true, true, false);
    for v in values {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        any = true;
        if int && v.parse::<i64>().is_err() {
            int = false;
        }
        if float && parse_f64(v.as_bytes()).is_none() {
            float = false;
        }
        if boolean && parse_bool(v.as_bytes()).is_none() {
            boolean = false;
        }
        if !int && !float && !boolean {
            break;
        }
    }
    if !any {
        DataType::Utf8
    } else if int {
        DataType::Int64
    } else if float {
        DataType::Float64
    } else if boolean {
        DataType::Boolean
    } else {
        DataType::Utf8
    }
}

/// Parses a decimal number: lexical-core's fast path first (the parser arrow-cast uses), the
/// standard library for what it does not take (`nan`, `inf`, `Infinity`, a leading `+`).
fn parse_f64(b: &[u8]) -> Option<f64> {
    lexical_core::parse::<f64>(b)
        .ok()
        .or_else(|| std::str::from_utf8(b).ok()?.parse::<f64>().ok())
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    lexical_core::parse::<i64>(b)
        .ok()
        .or_else(|| std::str::from_utf8(b).ok()?.parse::<i64>().ok())
}

fn parse_bool(b: &[u8]) -> Option<bool> {
    match b {
        b"true" | b"True" | b"TRUE" | b"t" | b"T" => Some(true),
        b"false" | b"False" | b"FALSE" | b"f" | b"F" => Some(false),
        _ => None,
    }
}

struct ChunkCtx<'a> {
    file: &'a str,
    delimiter: u8,
    full_schema: &'a Schema,
    schema: &'a SchemaRef,
    projection: &'a [usize],
    ncols: usize,
    bad_rows: &'a BadRows,
}

enum Builder {
    I(Int64Builder),
    F(Float64Builder),
    B(BooleanBuilder),
    S(StringBuilder),
}

enum Val {
    Null,
    I(i64),
    F(f64),
    B(bool),
    /// A string: the index of its field in the record.
    S(usize),
}

fn parse_chunk(ctx: &ChunkCtx<'_>, bytes: &[u8], first_line: u64) -> Result<SourceBatch> {
    let mut out = ChunkBuilder::new(ctx, bytes);
    if memchr::memchr(b'"', bytes).is_none() {
        // No quoting anywhere in the chunk (the usual case): split lines and fields with
        // memchr, and stop splitting a line after the last column we need.
        let need = ctx.projection.iter().copied().max().map_or(0, |m| m + 1);
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(need);
        let mut pos = 0usize;
        let mut line_no = first_line;
        while pos < bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
            let mut line = &bytes[pos..end];
            pos = end + 1;
            let this = line_no;
            line_no += 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let nfields = memchr::memchr_iter(ctx.delimiter, line).count() + 1;
            spans.clear();
            if nfields == ctx.ncols {
                let mut start = 0usize;
                for _ in 0..need {
                    let stop = memchr::memchr(ctx.delimiter, &line[start..])
                        .map_or(line.len(), |i| start + i);
                    spans.push((start, stop));
                    start = stop + 1;
                }
            }
            out.record(ctx, this, nfields, |i| &line[spans[i].0..spans[i].1])?;
        }
    } else {
        let mut it = RecordIter::new(bytes, ctx.delimiter);
        while let Some((offset, rec)) = it.next_record() {
            out.record(ctx, first_line + offset, rec.len(), |i| rec.get(i))?;
        }
    }
    out.finish(ctx)
}

/// Column builders of one chunk.
struct ChunkBuilder {
    builders: Vec<Builder>,
    lines: Vec<u64>,
    vals: Vec<Val>,
}

impl ChunkBuilder {
    /// Builders sized for the lines of `chunk` (an upper bound on its records), so that the
    /// finished arrays carry little spare capacity.
    fn new(ctx: &ChunkCtx<'_>, chunk: &[u8]) -> ChunkBuilder {
        let est_rows = memchr::memchr_iter(b'\n', chunk).count() + 1;
        ChunkBuilder {
            builders: ctx
                .projection
                .iter()
                .map(|&i| match ctx.full_schema.field(i).data_type() {
                    DataType::Int64 => Builder::I(Int64Builder::with_capacity(est_rows)),
                    DataType::Float64 => Builder::F(Float64Builder::with_capacity(est_rows)),
                    DataType::Boolean => Builder::B(BooleanBuilder::with_capacity(est_rows)),
                    _ => Builder::S(StringBuilder::with_capacity(est_rows, est_rows * 8)),
                })
                .collect(),
            lines: Vec::with_capacity(est_rows),
            vals: Vec::with_capacity(ctx.projection.len()),
        }
    }

    /// Adds one record of `nfields` fields; `field(i)` returns field `i` (only called for
    /// projected columns, and only when `nfields` is right). A malformed record is offered to
    /// the bad-row budget and skipped, or returned as the error.
    fn record<'r>(
        &mut self,
        ctx: &ChunkCtx<'_>,
        line: u64,
        nfields: usize,
        field: impl Fn(usize) -> &'r [u8],
    ) -> Result<()> {
        let mut fault: Option<(Option<String>, String)> = None;
        if nfields != ctx.ncols {
            fault = Some((
                None,
                format!("expected {} fields, found {nfields}", ctx.ncols),
            ));
        }
        self.vals.clear();
        if fault.is_none() {
            for (oi, &ci) in ctx.projection.iter().enumerate() {
                let t = field(ci).trim_ascii();
                let v = if t.is_empty() {
                    Val::Null
                } else {
                    match &self.builders[oi] {
                        Builder::I(_) => match parse_i64(t) {
                            Some(x) => Val::I(x),
                            None => {
                                fault = Some(bad_value(ctx, ci, "an integer", t));
                                break;
                            }
                        },
                        Builder::F(_) => match parse_f64(t) {
                            Some(x) => Val::F(x),
                            None => {
                                fault = Some(bad_value(ctx, ci, "a number", t));
                                break;
                            }
                        },
                        Builder::B(_) => match parse_bool(t) {
                            Some(x) => Val::B(x),
                            None => {
                                fault = Some(bad_value(ctx, ci, "a boolean (true/false)", t));
                                break;
                            }
                        },
                        Builder::S(_) => Val::S(ci),
                    }
                };
                self.vals.push(v);
            }
        }
        if let Some((column, message)) = fault {
            return ctx.bad_rows.skip(BadRow {
                file: ctx.file.to_string(),
                place: format!("line {line}"),
                column,
                message,
            });
        }
        for (b, v) in self.builders.iter_mut().zip(self.vals.drain(..)) {
            match (b, v) {
                (Builder::I(b), Val::I(x)) => b.append_value(x),
                (Builder::F(b), Val::F(x)) => b.append_value(x),
                (Builder::B(b), Val::B(x)) => b.append_value(x),
                (Builder::S(b), Val::S(ci)) => match std::str::from_utf8(field(ci)) {
                    Ok(s) => b.append_value(s),
                    Err(_) => b.append_value(String::from_utf8_lossy(field(ci))),
                },
                (Builder::I(b), _) => b.append_null(),
                (Builder::F(b), _) => b.append_null(),
                (Builder::B(b), _) => b.append_null(),
                (Builder::S(b), _) => b.append_null(),
            }
        }
        self.lines.push(line);
        Ok(())
    }

    fn finish(self, ctx: &ChunkCtx<'_>) -> Result<SourceBatch> {
        let columns: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::I(mut b) => Arc::new(b.finish()),
                    Builder::F(mut b) => Arc::new(b.finish()),
                    Builder::B(mut b) => Arc::new(b.finish()),
                    Builder::S(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let batch = if columns.is_empty() {
            RecordBatch::try_new_with_options(
                ctx.schema.clone(),
                columns,
                &arrow::record_batch::RecordBatchOptions::new()
                    .with_row_count(Some(self.lines.len())),
            )?
        } else {
            RecordBatch::try_new(ctx.schema.clone(), columns)?
        };
        Ok(SourceBatch {
            batch,
            loc: RowLoc::Lines(self.lines),
        })
    }
}

fn bad_value(
    ctx: &ChunkCtx<'_>,
    ci: usize,
    expected: &str,
    found: &[u8],
) -> (Option<String>, String) {
    let name = ctx.full_schema.field(ci).name().clone();
    let shown: String = String::from_utf8_lossy(found).chars().take(60).collect();
    (
        Some(name),
        format!(
            "expected {expected}, found `{shown}` (types are inferred from the first {INFER_ROWS} rows; override with --column-types)"
        ),
    )
}

impl RowSource for CsvSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        while self.ready.is_empty() {
            if self.done {
                return Ok(None);
            }
            self.parse_group()?;
        }
        Ok(self.ready.pop_front())
    }

    fn progress(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| {
            (self.read_bytes.load(Ordering::Relaxed) as f64 / self.total_bytes as f64).min(1.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read_all(src: &mut dyn RowSource) -> Result<Vec<SourceBatch>> {
        let mut out = vec![];
        while let Some(b) = src.next_batch()? {
            out.push(b);
        }
        Ok(out)
    }

    #[test]
    fn infers_types_reads_nulls_quotes_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "t.csv",
            "# a comment\nid,ra,dec,name,flag\n1,10.5,-3,\"a, b\",true\n\n2,11,4.25,\"multi\nline\",false\n3,,5,,\n",
        );
        let mut src = CsvSource::open(&p, &ReadOptions::default()).unwrap();
        let s = src.schema();
        assert_eq!(s.field(0).data_type(), &DataType::Int64);
        assert_eq!(s.field(1).data_type(), &DataType::Float64);
        assert_eq!(s.field(2).data_type(), &DataType::Float64);
        assert_eq!(s.field(3).data_type(), &DataType::Utf8);
        assert_eq!(s.field(4).data_type(), &DataType::Boolean);
        let batches = read_all(&mut src).unwrap();
        let b = &batches[0].batch;
        assert_eq!(b.num_rows(), 3);
        assert_eq!(b.column(3).as_string::<i32>().value(0), "a, b");
        assert_eq!(b.column(3).as_string::<i32>().value(1), "multi\nline");
        assert!(b.column(1).is_null(2));
        assert_eq!(b.column(2).as_primitive::<Float64Type>().value(0), -3.0);
        match &batches[0].loc {
            RowLoc::Lines(l) => assert_eq!(l, &vec![3, 5, 7]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_value_names_file_line_and_column_or_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "bad.csv", "id,ra\n1,2.0\n2,abc\n3,4\n");
        let typed = ReadOptions {
            column_types: vec![("ra".into(), DataType::Float64)],
            ..Default::default()
        };
        let mut src = CsvSource::open(&p, &typed).unwrap_err_or_read();
        let e = read_all(src.as_mut()).unwrap_err().to_string();
        assert!(e.contains("bad.csv: line 3, column ra"), "{e}");
        assert!(e.contains("expected a number, found `abc`"), "{e}");

        let opts = ReadOptions {
            bad_rows: BadRows::new(1),
            ..typed
        };
        let mut src = CsvSource::open(&p, &opts).unwrap();
        let b = read_all(&mut src).unwrap();
        let ids = b[0].batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 3]);
        let bad = opts.bad_rows.rows();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].place, "line 3");
    }

    trait OpenExt {
        fn unwrap_err_or_read(self) -> Box<dyn RowSource>;
    }
    impl OpenExt for Result<CsvSource> {
        fn unwrap_err_or_read(self) -> Box<dyn RowSource> {
            Box::new(self.unwrap())
        }
    }

    #[test]
    fn quote_free_fast_path_matches_the_general_parser() {
        let dir = tempfile::tempdir().unwrap();
        let body =
            "id,ra,dec,name\r\n# comment\r\n1,10.5,-3,a b\r\n\r\n2, 11 ,4.25,\r\n3,NaN,+5,x\n";
        // Same content with a quoted field forces the csv-core path.
        let quoted = body.replace("a b", "\"a b\"");
        let mut results = vec![];
        for (name, text) in [("fast.csv", body.to_string()), ("slow.csv", quoted)] {
            let p = write(&dir, name, &text);
            let mut src = CsvSource::open(&p, &ReadOptions::default()).unwrap();
            let b = read_all(&mut src).unwrap().remove(0);
            let RowLoc::Lines(lines) = &b.loc else {
                panic!()
            };
            assert_eq!(lines, &vec![3, 5, 6], "{name}");
            results.push(b.batch);
        }
        assert_eq!(results[0], results[1]);
        let ra = results[0].column(1).as_primitive::<Float64Type>();
        assert_eq!(ra.value(1), 11.0);
        assert!(ra.value(2).is_nan());
        assert!(results[0].column(3).is_null(1));
        // Projection on the fast path, and a short line detected there.
        let p = write(&dir, "short.csv", "id,ra,dec\n1,2,3\n4,5\n");
        let opts = ReadOptions {
            projection: Some(vec!["ra".into()]),
            ..Default::default()
        };
        let mut src = CsvSource::open(&p, &opts).unwrap();
        let e = read_all(&mut src).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("expected 3 fields, found 2"),
            "{e}"
        );
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "f.csv", "a,b\n1,2\n3\n");
        let mut src = CsvSource::open(&p, &ReadOptions::default()).unwrap();
        let e = read_all(&mut src).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("expected 2 fields, found 1"),
            "{e}"
        );
    }

    #[test]
    fn large_file_in_many_chunks_keeps_every_row_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("id\tx\tnote\n");
        let n = 400_000;
        for i in 0..n {
            text.push_str(&format!("{i}\t{}.5\t\"q{i}\"\n", i % 1000));
        }
        let p = write(&dir, "big.tsv", &text);
        let opts = ReadOptions {
            projection: Some(vec!["id".into()]),
            ..Default::default()
        };
        let mut src = CsvSource::open(&p, &opts).unwrap();
        assert_eq!(src.schema().fields().len(), 1);
        let mut next = 0i64;
        for b in read_all(&mut src).unwrap() {
            let ids = b.batch.column(0).as_primitive::<Int64Type>();
            let RowLoc::Lines(lines) = &b.loc else {
                panic!()
            };
            for (i, id) in ids.values().iter().enumerate() {
                assert_eq!(*id, next);
                assert_eq!(lines[i], next as u64 + 2);
                next += 1;
            }
        }
        assert_eq!(next, n);
        assert!(src.progress().unwrap() > 0.99);
    }

    #[test]
    fn explicit_types_override_inference_and_empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "t.csv", "id,v\n1,2\n");
        let opts = ReadOptions {
            column_types: vec![
                ("v".into(), DataType::Float64),
                ("id".into(), DataType::Utf8),
            ],
            ..Default::default()
        };
        let src = CsvSource::open(&p, &opts).unwrap();
        assert_eq!(src.schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(src.schema().field(1).data_type(), &DataType::Float64);
        let p = write(&dir, "e.csv", "");
        assert!(CsvSource::open(&p, &ReadOptions::default()).is_err());
        let p = write(&dir, "d.csv", "a,a\n1,2\n");
        let e = CsvSource::open(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
    }
}
