//! The golden-file format (see `tests/conformance/README.md`): parsing `cases/*.adql` into
//! [`Case`]s and building the generated query texts.

use std::path::{Path, PathBuf};

/// What a case expects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expect {
    /// These rows, with this header, in this order (`ordered`) or in any order.
    Rows {
        ordered: bool,
        header: Vec<String>,
        rows: Vec<Vec<Cell>>,
    },
    /// Only the number of rows.
    Count(u64),
    /// An error of one of these kinds, optionally at `(line, column)`.
    Error {
        kinds: Vec<String>,
        position: Option<(u32, u32)>,
    },
}

/// An expected value as written in a golden file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// `NULL`.
    Null,
    /// `'text'`: exactly this string (`''` stands for one quote).
    Quoted(String),
    /// Anything else, interpreted according to the actual value's type.
    Bare(String),
}

/// One case of a golden file.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// File stem, e.g. `joins`.
    pub(crate) file: String,
    /// Case name, unique in its file.
    pub(crate) name: String,
    /// Line of `-- case:` in the file.
    pub(crate) line: usize,
    /// The query text (generated when `generate` is given).
    pub(crate) query: String,
    /// `-- generate: KIND N`.
    pub(crate) generate: Option<(String, usize)>,
    /// `-- max_rows: N`.
    pub(crate) max_rows: Option<u64>,
    /// `-- timeout_ms: N`.
    pub(crate) timeout_ms: Option<u64>,
    /// `-- tolerance: X` (relative and absolute float tolerance; default 1e-9).
    pub(crate) tolerance: f64,
    /// `-- types: t1, t2, …`.
    pub(crate) types: Option<Vec<String>>,
    /// `-- overflow: true|false`.
    pub(crate) overflow: Option<bool>,
    /// `-- message contains: …` (case-insensitive; all must match).
    pub(crate) message_contains: Vec<String>,
    /// The expectation.
    pub(crate) expect: Expect,
}

impl Case {
    /// `file:name`, as printed in reports and matched by `CONFORMANCE_FILTER`.
    pub(crate) fn id(&self) -> String {
        format!("{}:{}", self.file, self.name)
    }

    /// Whether the expectation is an error of syntax kind only.
    pub(crate) fn expects_only(&self, kind: &str) -> bool {
        matches!(&self.expect, Expect::Error { kinds, .. } if kinds.iter().all(|k| k == kind))
    }

    /// Whether `kind` is among the accepted error kinds.
    pub(crate) fn accepts_error(&self, kind: &str) -> bool {
        matches!(&self.expect, Expect::Error { kinds, .. } if kinds.iter().any(|k| k == kind))
    }
}

/// The error kinds a golden file may name (`tessera_engine::ErrorKind::as_str`).
pub(crate) const KINDS: &[&str] = &[
    "syntax",
    "unknown_table",
    "unknown_column",
    "unknown_function",
    "semantic",
    "geometry",
    "unsupported",
    "limit",
    "timeout",
    "storage",
    "internal",
];

/// Type names accepted by `-- types:`.
pub(crate) const TYPES: &[&str] = &[
    "any", "smallint", "integer", "bigint", "real", "double", "int", "float", "number", "string",
    "bool", "list",
];

/// `tests/conformance`.
pub(crate) fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// Every case of every `cases/*.adql` file, files in name order.
pub(crate) fn load_all() -> Vec<Case> {
    let dir = conformance_dir().join("cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "adql"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        match parse_file(&stem, &text) {
            Ok(cases) => out.extend(cases),
            Err(e) => panic!("{}: {e}", f.display()),
        }
    }
    out
}

/// The directive prefix of a line, `-- key:`, when `key` is one of `keys`.
fn directive<'a>(line: &'a str, keys: &[&str]) -> Option<(&'static str, &'a str)> {
    let rest = line.trim_start().strip_prefix("--")?.trim_start();
    for k in keys {
        if let Some(v) = rest.strip_prefix(k)
            && let Some(v) = v.strip_prefix(':')
        {
            // `keys` holds 'static strings; find the same one to return it.
            let key: &'static str = match *k {
                "case" => "case",
                "expect" => "expect",
                "generate" => "generate",
                "max_rows" => "max_rows",
                "timeout_ms" => "timeout_ms",
                "tolerance" => "tolerance",
                "types" => "types",
                "overflow" => "overflow",
                "message contains" => "message contains",
                _ => unreachable!(),
            };
            return Some((key, v.trim()));
        }
    }
    None
}

const QUERY_KEYS: &[&str] = &["case", "expect", "generate", "max_rows", "timeout_ms"];
const AFTER_KEYS: &[&str] = &["case", "tolerance", "types", "overflow", "message contains"];

/// Parses one golden file.
pub(crate) fn parse_file(stem: &str, text: &str) -> Result<Vec<Case>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cases: Vec<Case> = Vec::new();
    let mut i = 0;
    // Lines before the first case are commentary.
    while i < lines.len() && directive(lines[i], &["case"]).is_none() {
        i += 1;
    }
    while i < lines.len() {
        let (_, name) = directive(lines[i], &["case"]).unwrap();
        let case_line = i + 1;
        let err = |m: String| format!("line {case_line} (case {name}): {m}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err("case names are [A-Za-z0-9_]+".into()));
        }
        if cases.iter().any(|c| c.name == name) {
            return Err(err("duplicate case name".into()));
        }
        i += 1;
        // Query part.
        let mut query_lines: Vec<&str> = Vec::new();
        let mut generate = None;
        let mut max_rows = None;
        let mut timeout_ms = None;
        let expect_text = loop {
            if i >= lines.len() {
                return Err(err("no `-- expect:` line".into()));
            }
            match directive(lines[i], QUERY_KEYS) {
                Some(("case", _)) => return Err(err("no `-- expect:` line".into())),
                Some(("expect", v)) => {
                    i += 1;
                    break v.to_string();
                }
                Some(("generate", v)) => {
                    let mut it = v.split_whitespace();
                    let kind = it.next().unwrap_or("").to_string();
                    let n: usize = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| err(format!("bad generate `{v}`")))?;
                    generate = Some((kind, n));
                }
                Some(("max_rows", v)) => {
                    max_rows = Some(v.parse().map_err(|_| err(format!("bad max_rows `{v}`")))?)
                }
                Some(("timeout_ms", v)) => {
                    timeout_ms = Some(v.parse().map_err(|_| err(format!("bad timeout `{v}`")))?)
                }
                _ => query_lines.push(lines[i]),
            }
            i += 1;
        };
        while query_lines.first().is_some_and(|l| l.trim().is_empty()) {
            query_lines.remove(0);
        }
        while query_lines.last().is_some_and(|l| l.trim().is_empty()) {
            query_lines.pop();
        }
        let query = match &generate {
            Some((kind, n)) => {
                if !query_lines.is_empty() {
                    return Err(err("a generated case has no query text".into()));
                }
                generate_query(kind, *n).map_err(err)?
            }
            None => {
                if query_lines.is_empty() {
                    return Err(err("empty query".into()));
                }
                query_lines
                    .iter()
                    .map(|l| l.trim_end())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        // Expectation.
        let mut words = expect_text.split_whitespace();
        let mut expect = match (words.next(), words.next()) {
            (Some("rows"), Some(order @ ("ordered" | "unordered"))) => Expect::Rows {
                ordered: order == "ordered",
                header: Vec::new(),
                rows: Vec::new(),
            },
            (Some("count"), Some(n)) => {
                Expect::Count(n.parse().map_err(|_| err(format!("bad count `{n}`")))?)
            }
            (Some("error"), Some(kinds)) => {
                let kinds: Vec<String> = kinds.split('|').map(str::to_string).collect();
                for k in &kinds {
                    if !KINDS.contains(&k.as_str()) {
                        return Err(err(format!("unknown error kind `{k}`")));
                    }
                }
                let position = match words.next() {
                    None => None,
                    Some(p) => {
                        let (l, c) = p
                            .split_once(':')
                            .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
                            .ok_or_else(|| err(format!("bad position `{p}` (line:column)")))?;
                        Some((l, c))
                    }
                };
                Expect::Error { kinds, position }
            }
            _ => return Err(err(format!("bad expectation `{expect_text}`"))),
        };
        if words.next().is_some() {
            return Err(err(format!("trailing words in `-- expect: {expect_text}`")));
        }
        let mut tolerance = 1e-9;
        let mut types = None;
        let mut overflow = None;
        let mut message_contains = Vec::new();
        // Directives after the expectation.
        while i < lines.len() {
            match directive(lines[i], AFTER_KEYS) {
                Some(("tolerance", v)) => {
                    tolerance = v.parse().map_err(|_| err(format!("bad tolerance `{v}`")))?
                }
                Some(("types", v)) => {
                    let t: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                    for x in &t {
                        if !TYPES.contains(&x.as_str()) {
                            return Err(err(format!("unknown type `{x}` (one of {TYPES:?})")));
                        }
                    }
                    types = Some(t);
                }
                Some(("overflow", v)) => {
                    overflow = Some(match v {
                        "true" => true,
                        "false" => false,
                        _ => return Err(err(format!("bad overflow `{v}`"))),
                    })
                }
                Some(("message contains", v)) => {
                    if !matches!(expect, Expect::Error { .. }) {
                        return Err(err("`message contains` needs an error expectation".into()));
                    }
                    message_contains.push(v.to_string())
                }
                _ => break,
            }
            i += 1;
        }
        // Header and rows.
        if let Expect::Rows { header, rows, .. } = &mut expect {
            if i >= lines.len()
                || lines[i].trim().is_empty()
                || lines[i].trim_start().starts_with("--")
            {
                return Err(err("rows expectation without a header line".into()));
            }
            *header = split_cells(lines[i])
                .map_err(err)?
                .into_iter()
                .map(|c| match c {
                    Cell::Bare(s) | Cell::Quoted(s) => s,
                    Cell::Null => "NULL".into(),
                })
                .collect();
            i += 1;
            while i < lines.len()
                && !lines[i].trim().is_empty()
                && directive(lines[i], &["case"]).is_none()
            {
                let row = split_cells(lines[i]).map_err(|m| format!("line {}: {m}", i + 1))?;
                if row.len() != header.len() {
                    return Err(format!(
                        "line {}: {} values for {} columns",
                        i + 1,
                        row.len(),
                        header.len()
                    ));
                }
                rows.push(row);
                i += 1;
            }
        }
        if let Some(t) = &types {
            let n = match &expect {
                Expect::Rows { header, .. } => header.len(),
                _ => return Err(err("`types` needs a rows expectation".into())),
            };
            if t.len() != n {
                return Err(err(format!("{} types for {n} columns", t.len())));
            }
        }
        // Only blank lines (and file commentary starting with `--` that is no directive) until
        // the next case.
        while i < lines.len() && directive(lines[i], &["case"]).is_none() {
            let l = lines[i].trim();
            if !l.is_empty() && !l.starts_with("--") {
                return Err(format!(
                    "line {}: unexpected text after case {name} (a blank line ends the rows)",
                    i + 1
                ));
            }
            i += 1;
        }
        cases.push(Case {
            file: stem.to_string(),
            name: name.to_string(),
            line: case_line,
            query,
            generate,
            max_rows,
            timeout_ms,
            tolerance,
            types,
            overflow,
            message_contains,
            expect,
        });
    }
    Ok(cases)
}

/// Splits a header or row line at `|` outside single quotes.
pub(crate) fn split_cells(line: &str) -> Result<Vec<Cell>, String> {
    let mut cells = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    loop {
        // Skip leading blanks of the cell.
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        if i < chars.len() && chars[i] == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                if i >= chars.len() {
                    return Err(format!("unterminated quoted value in `{line}`"));
                }
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        s.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                s.push(chars[i]);
                i += 1;
            }
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            if i < chars.len() && chars[i] != '|' {
                return Err(format!("text after a quoted value in `{line}`"));
            }
            cells.push(Cell::Quoted(s));
        } else {
            let start = i;
            let mut depth = 0i32;
            while i < chars.len() && !(chars[i] == '|' && depth == 0) {
                match chars[i] {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                i += 1;
            }
            let s: String = chars[start..i]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
            cells.push(if s == "NULL" {
                Cell::Null
            } else {
                Cell::Bare(s)
            });
        }
        if i >= chars.len() {
            break;
        }
        i += 1; // the `|`
    }
    Ok(cells)
}

/// Builds the text of a `-- generate: KIND N` case.
pub(crate) fn generate_query(kind: &str, n: usize) -> Result<String, String> {
    Ok(match kind {
        // SELECT ((…(1)…)) AS x FROM fix.nums WHERE id = 1
        "nested_parens" => format!(
            "SELECT {}1{} AS x FROM fix.nums WHERE id = 1",
            "(".repeat(n),
            ")".repeat(n)
        ),
        // SELECT ABS(ABS(…ABS(-1)…)) AS x FROM fix.nums WHERE id = 1
        "nested_functions" => format!(
            "SELECT {}-1{} AS x FROM fix.nums WHERE id = 1",
            "ABS(".repeat(n),
            ")".repeat(n)
        ),
        // SELECT - - - … 1 AS x FROM fix.nums WHERE id = 1 (spaced: `--` starts a comment)
        "unary_minus" => format!("SELECT {}1 AS x FROM fix.nums WHERE id = 1", "- ".repeat(n)),
        // SELECT id FROM fix.nums WHERE NOT NOT … id = 1
        "not_chain" => format!("SELECT id FROM fix.nums WHERE {}id = 1", "NOT ".repeat(n)),
        // SELECT x FROM (SELECT x FROM (… (SELECT 1 AS x FROM fix.nums WHERE id = 1) AS t …) AS t) AS t
        "nested_subqueries" => {
            let mut q = "SELECT 1 AS x FROM fix.nums WHERE id = 1".to_string();
            for _ in 0..n {
                q = format!("SELECT x FROM ({q}) AS t");
            }
            q
        }
        // SELECT id FROM fix.nums WHERE id IN (1, 1, 1, …) padded to at least N bytes
        "long_in_list" => {
            let mut q = String::from("SELECT id FROM fix.nums WHERE id IN (1");
            while q.len() + 1 < n {
                q.push_str(", 1");
            }
            q.push(')');
            q
        }
        // SELECT id FROM fix.nums WHERE id = 1 followed by a comment: N bytes in all
        "long_comment" => {
            let mut q = String::from("SELECT id FROM fix.nums WHERE id = 1\n-- ");
            while q.len() < n {
                q.push('x');
            }
            q
        }
        _ => return Err(format!("unknown generator `{kind}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_split_with_quotes_lists_and_nulls() {
        let c = split_cells("1 | 'a|b' | NULL | [1, 2] | 'it''s' | x y").unwrap();
        assert_eq!(
            c,
            vec![
                Cell::Bare("1".into()),
                Cell::Quoted("a|b".into()),
                Cell::Null,
                Cell::Bare("[1, 2]".into()),
                Cell::Quoted("it's".into()),
                Cell::Bare("x y".into()),
            ]
        );
    }

    #[test]
    fn a_small_file_parses() {
        let text = "-- commentary\n\n-- case: a\nSELECT 1 AS x\n-- inline comment kept\nFROM fix.nums\n-- expect: rows ordered\nx\n1\n\n-- case: b\nSELECT\n-- expect: error syntax|limit 1:7\n-- message contains: expected\n";
        let cases = parse_file("f", text).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(
            cases[0].query,
            "SELECT 1 AS x\n-- inline comment kept\nFROM fix.nums"
        );
        assert_eq!(
            cases[1].expect,
            Expect::Error {
                kinds: vec!["syntax".into(), "limit".into()],
                position: Some((1, 7))
            }
        );
        assert_eq!(cases[1].message_contains, vec!["expected".to_string()]);
    }
}
