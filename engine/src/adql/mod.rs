//! ADQL 2.1: lexer, syntax tree and parser.
//!
//! Written by hand: no crate parses ADQL, and `sqlparser`'s dialect hooks cannot express
//! ADQL's reserved words, its identifier rules or TOP-inside-SELECT without also accepting
//! much that ADQL forbids. The parser is a recursive descent over a token vector; it reports
//! the first error with line, column and the tokens it expected there.

pub mod ast;
pub(crate) mod lexer;
mod parser;

pub use parser::parse;

/// Limits the parser enforces before anything else looks at the text.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Longest accepted query text, in bytes.
    pub max_len: usize,
    /// Deepest accepted nesting of expressions and subqueries.
    pub max_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_len: 1 << 20,
            max_depth: 64,
        }
    }
}

/// A query the parser rejects.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at line {line}, column {column}{}", expected_suffix(.expected))]
pub struct SyntaxError {
    /// What is wrong, e.g. `unexpected FROM` or `reserved word "SIZE" used as an identifier`.
    pub message: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub column: u32,
    /// Byte offset.
    pub offset: usize,
    /// What would have been accepted there (tokens or categories such as `identifier`).
    pub expected: Vec<String>,
    /// Which limit was exceeded, when that is the fault (`length` or `depth`).
    pub limit: Option<&'static str>,
}

fn expected_suffix(expected: &[String]) -> String {
    match expected.len() {
        0 => String::new(),
        1 => format!("; expected {}", expected[0]),
        _ => format!("; expected one of {}", expected.join(", ")),
    }
}
