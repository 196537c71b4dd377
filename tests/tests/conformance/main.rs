//! ADQL conformance suite: the golden cases of `tests/conformance/cases/*.adql` (format in
//! `tests/conformance/README.md`) run against `tessera_engine::Engine` over the real
//! Hipparcos catalogue and small fixture tables.
//!
//! * `conformance` runs every case and fails with the list of all failing cases.
//! * `conformance_parser` runs `Engine::check` on every case: valid ADQL must parse, syntax
//!   errors must be reported at the expected position.
//! * `golden_files_are_well_formed` checks the files themselves (no engine involved).
//!
//! Environment: `CONFORMANCE_FILTER=substr` runs only cases whose `file:case` contains it;
//! `CONFORMANCE_ROOT=dir` keeps the loaded data root in `dir` for later runs.
#![allow(clippy::print_stderr)]

mod data;
mod golden;
mod values;

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_engine::adql::ParseLimits;
use tessera_engine::{Engine, Limits, Location, StoreOptions};

use golden::{Case, Cell, Expect};
use values::{Value, matches, show, type_matches};

/// Cases the suite must hold at least.
const MIN_CASES: usize = 300;
/// A case that takes longer than this is reported as hung.
const CASE_DEADLINE: Duration = Duration::from_secs(180);

fn selected(cases: Vec<Case>) -> Vec<Case> {
    match std::env::var("CONFORMANCE_FILTER") {
        Ok(f) if !f.is_empty() => cases.into_iter().filter(|c| c.id().contains(&f)).collect(),
        _ => cases,
    }
}

/// What one case did, in text for the report; `None` when it passed.
async fn run_case(engine: Engine, case: Case) -> Option<String> {
    let limits = Limits {
        max_rows: case.max_rows,
        timeout: case.timeout_ms.map(Duration::from_millis),
        ..Default::default()
    };
    let outcome = async {
        let res = engine.query(&case.query, &limits).await?;
        let schema = res.schema();
        let (batches, overflowed) = res.collect().await?;
        Ok::<_, tessera_engine::Error>((schema, batches, overflowed))
    }
    .await;
    match (&case.expect, outcome) {
        (Expect::Error { kinds, position }, Err(e)) => {
            let kind = e.kind().as_str();
            let msg = e.to_string();
            let mut problems = Vec::new();
            if !kinds.iter().any(|k| k == kind) {
                problems.push(format!("error kind {kind}, expected {}", kinds.join("|")));
            }
            if let Some(p) = position
                && e.position() != Some(*p)
            {
                problems.push(format!(
                    "error position {}, expected {}:{}",
                    e.position()
                        .map(|(l, c)| format!("{l}:{c}"))
                        .unwrap_or_else(|| "none".into()),
                    p.0,
                    p.1
                ));
            }
            for m in &case.message_contains {
                if !msg.to_lowercase().contains(&m.to_lowercase()) {
                    problems.push(format!("message does not contain `{m}`"));
                }
            }
            if problems.is_empty() {
                None
            } else {
                Some(format!(
                    "{}\n  got error [{kind}]: {msg}",
                    problems.join("; ")
                ))
            }
        }
        (Expect::Error { kinds, .. }, Ok((schema, batches, _))) => {
            let rows = values::rows(&batches);
            Some(format!(
                "expected error {}, got {} rows:\n{}",
                kinds.join("|"),
                rows.len(),
                render(&schema, &rows, 10)
            ))
        }
        (_, Err(e)) => Some(format!(
            "unexpected error [{}]: {e}{}",
            e.kind().as_str(),
            e.position()
                .map(|(l, c)| format!(" (position {l}:{c})"))
                .unwrap_or_default()
        )),
        (Expect::Count(n), Ok((schema, batches, overflowed))) => {
            let rows = values::rows(&batches);
            let mut problems = Vec::new();
            if rows.len() as u64 != *n {
                problems.push(format!("{} rows, expected {n}", rows.len()));
            }
            if let Some(o) = case.overflow
                && o != overflowed
            {
                problems.push(format!("overflow flag {overflowed}, expected {o}"));
            }
            if problems.is_empty() {
                None
            } else {
                Some(format!(
                    "{}\n  got:\n{}",
                    problems.join("; "),
                    render(&schema, &rows, 10)
                ))
            }
        }
        (
            Expect::Rows {
                ordered,
                header,
                rows: want,
            },
            Ok((schema, batches, overflowed)),
        ) => {
            let got = values::rows(&batches);
            let mut problems = Vec::new();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            if names.len() != header.len()
                || names
                    .iter()
                    .zip(header)
                    .any(|(a, b)| !a.eq_ignore_ascii_case(b))
            {
                problems.push(format!(
                    "columns [{}], expected [{}]",
                    names.join(", "),
                    header.join(", ")
                ));
            }
            if let Some(types) = &case.types {
                for (i, t) in types.iter().enumerate() {
                    if let Some(f) = schema.fields().get(i)
                        && !type_matches(f, t)
                    {
                        problems.push(format!(
                            "column {} has type {}, expected {t}",
                            f.name(),
                            f.data_type()
                        ));
                    }
                }
            }
            if let Some(o) = case.overflow
                && o != overflowed
            {
                problems.push(format!("overflow flag {overflowed}, expected {o}"));
            }
            if got.len() != want.len() {
                problems.push(format!("{} rows, expected {}", got.len(), want.len()));
            } else if *ordered {
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    if !row_matches(g, w, case.tolerance) {
                        problems.push(format!(
                            "row {} is `{}`, expected `{}`",
                            i + 1,
                            show_row(g),
                            show_cells(w)
                        ));
                        break;
                    }
                }
            } else {
                let mut used = vec![false; got.len()];
                for w in want {
                    match (0..got.len())
                        .find(|&j| !used[j] && row_matches(&got[j], w, case.tolerance))
                    {
                        Some(j) => used[j] = true,
                        None => {
                            problems.push(format!("no row matches `{}`", show_cells(w)));
                            break;
                        }
                    }
                }
            }
            if problems.is_empty() {
                None
            } else {
                Some(format!(
                    "{}\n  expected:\n{}\n  got:\n{}",
                    problems.join("; "),
                    indent(
                        &std::iter::once(header.join(" | "))
                            .chain(want.iter().take(40).map(|r| show_cells(r)))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                    render(&schema, &got, 40)
                ))
            }
        }
    }
}

fn row_matches(got: &[Value], want: &[Cell], tol: f64) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| matches(g, w, tol))
}

fn show_row(r: &[Value]) -> String {
    r.iter().map(show).collect::<Vec<_>>().join(" | ")
}

fn show_cells(r: &[Cell]) -> String {
    r.iter()
        .map(|c| match c {
            Cell::Null => "NULL".to_string(),
            Cell::Bare(s) => s.clone(),
            Cell::Quoted(s) => format!("'{}'", s.replace('\'', "''")),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Header and up to `max` rows, in golden form, indented.
fn render(schema: &arrow::datatypes::SchemaRef, rows: &[Vec<Value>], max: usize) -> String {
    let mut out = vec![
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(" | "),
    ];
    out.extend(rows.iter().take(max).map(|r| show_row(r)));
    if rows.len() > max {
        out.push(format!("… {} more rows", rows.len() - max));
    }
    indent(&out.join("\n"))
}

/// The query as shown in reports: generated texts by their recipe, long ones cut.
fn shown_query(case: &Case) -> String {
    match &case.generate {
        Some((kind, n)) => format!(
            "(generate: {kind} {n}) {}",
            short_query(&case.query[..case.query.len().min(120)])
        ),
        None => short_query(&case.query),
    }
}

fn short_query(q: &str) -> String {
    if q.len() > 600 {
        let cut = (0..=600).rev().find(|&i| q.is_char_boundary(i)).unwrap();
        format!("{} … ({} bytes in all)", &q[..cut], q.len())
    } else {
        q.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let all = golden::load_all();
    assert!(
        all.len() >= MIN_CASES,
        "only {} cases, expected at least {MIN_CASES}",
        all.len()
    );
    let cases = selected(all);
    let root = tokio::task::spawn_blocking(data::build).await.unwrap();
    let location = Location::parse(&root.path.to_string_lossy(), &StoreOptions::default())
        .expect("data root location");
    let engine = Engine::open(location).await.expect("opening the engine");

    let mut failures: Vec<(String, String, String)> = Vec::new();
    let mut per_file: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for case in &cases {
        let handle = tokio::spawn(run_case(engine.clone(), case.clone()));
        let result = match tokio::time::timeout(CASE_DEADLINE, handle).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Some(format!("the engine panicked: {join}")),
            Err(_) => Some(format!("no answer within {CASE_DEADLINE:?}")),
        };
        let e = per_file.entry(case.file.clone()).or_default();
        e.0 += 1;
        if let Some(problem) = result {
            e.1 += 1;
            failures.push((
                format!("{}.adql:{} {}", case.file, case.line, case.name),
                shown_query(case),
                problem,
            ));
        }
    }
    drop(root);

    let summary = per_file
        .iter()
        .map(|(f, (n, bad))| format!("  {f:<18} {:>4} run {:>4} failed", n, bad))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "conformance: {} cases run, {} failed\n{summary}",
        cases.len(),
        failures.len()
    );
    if !failures.is_empty() {
        let list = failures
            .iter()
            .map(|(id, q, p)| {
                format!(
                    "--- {id}\n  query: {}\n  {p}",
                    q.replace('\n', "\n         ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        panic!(
            "{} of {} conformance cases failed:\n\n{list}\n\n{} cases run, {} failed\n{summary}",
            failures.len(),
            cases.len(),
            cases.len(),
            failures.len()
        );
    }
}

/// `Engine::check` (parser only): every case that is not expected to be a syntax or limit
/// error parses; syntax errors are reported at their expected position.
#[test]
fn conformance_parser() {
    let cases = selected(golden::load_all());
    let limits = ParseLimits::default();
    let mut failures = Vec::new();
    for case in &cases {
        // Deep-nesting cases run on a big stack: a parser without a depth limit should fail
        // the case, not take the test binary down with it before the report.
        let query = case.query.clone();
        let result = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || Engine::check(&query, &limits))
            .unwrap()
            .join();
        let result = match result {
            Ok(r) => r,
            Err(_) => {
                failures.push(format!("{}: Engine::check panicked", case.id()));
                continue;
            }
        };
        let problem = match (&case.expect, result) {
            (Expect::Error { position, .. }, Err(e)) if case.expects_only("syntax") => {
                if e.kind().as_str() != "syntax" {
                    Some(format!(
                        "parser error kind {}, expected syntax: {e}",
                        e.kind().as_str()
                    ))
                } else if position.is_some() && e.position() != *position {
                    let (l, c) = position.unwrap();
                    Some(format!(
                        "syntax error at {:?}, expected {l}:{c}: {e}",
                        e.position()
                    ))
                } else {
                    None
                }
            }
            (Expect::Error { .. }, Ok(())) if case.expects_only("syntax") => {
                Some("parses, expected a syntax error".to_string())
            }
            (Expect::Error { .. }, Err(e)) if case.expects_only("limit") => {
                (e.kind().as_str() != "limit").then(|| {
                    format!(
                        "parser error kind {}, expected limit: {e}",
                        e.kind().as_str()
                    )
                })
            }
            (Expect::Error { .. }, Ok(())) if case.expects_only("limit") => {
                Some("parses, expected a limit error from the parser".to_string())
            }
            // Either outcome is fine when syntax is one of several accepted kinds, as long
            // as a parser error is one of them.
            (Expect::Error { .. }, Err(e)) if case.accepts_error(e.kind().as_str()) => None,
            (Expect::Error { .. }, Ok(())) if case.accepts_error("syntax") => None,
            (_, Ok(())) => None,
            (_, Err(e)) => Some(format!("does not parse: [{}] {e}", e.kind().as_str())),
        };
        if let Some(p) = problem {
            failures.push(format!(
                "{}.adql:{} {}: {p}\n  query: {}",
                case.file,
                case.line,
                case.name,
                shown_query(case)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail the parser check:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// The golden files parse, name known fixture tables only, and hold enough cases.
#[test]
fn golden_files_are_well_formed() {
    let cases = golden::load_all();
    assert!(cases.len() >= MIN_CASES, "only {} cases", cases.len());
    let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cases {
        *per_file.entry(&c.file).or_default() += 1;
    }
    // Every fixture has ra and dec columns (the loader needs them).
    for (schema, table, csv) in data::fixtures() {
        let text = std::fs::read_to_string(&csv).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        assert!(
            header.contains(&"ra") && header.contains(&"dec"),
            "{schema}.{table}: no ra/dec columns"
        );
    }
    assert!(per_file.len() >= 10, "{per_file:?}");
}
