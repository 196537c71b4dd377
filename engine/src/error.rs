//! The engine's one error type, classified by who is at fault.

use crate::adql::SyntaxError;

/// What kind of fault an [`Error`] is; the conformance suite and the server's protocol
/// errors key on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not ADQL (caller).
    Syntax,
    /// A table that is not exposed (caller).
    UnknownTable,
    /// A column that no table in scope has, or an ambiguous one (caller).
    UnknownColumn,
    /// A function ADQL and this service do not define (caller).
    UnknownFunction,
    /// Valid syntax with no meaning: wrong argument types or counts, bad ORDER BY position,
    /// GROUP BY violations, … (caller).
    Semantic,
    /// A degenerate or invalid region, or a coordinate system other than ICRS (caller).
    Geometry,
    /// Valid ADQL this service declares unsupported (caller).
    Unsupported,
    /// A limit was exceeded: query length, nesting depth, memory (caller).
    Limit,
    /// The query ran longer than allowed (caller).
    Timeout,
    /// The archive could not be read (operator or environment).
    Storage,
    /// A bug (us).
    Internal,
}

impl ErrorKind {
    /// Snake-case name, as used in golden files.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::UnknownTable => "unknown_table",
            ErrorKind::UnknownColumn => "unknown_column",
            ErrorKind::UnknownFunction => "unknown_function",
            ErrorKind::Semantic => "semantic",
            ErrorKind::Geometry => "geometry",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Limit => "limit",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Storage => "storage",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether the caller is at fault (a 4xx-like error) rather than the service.
    pub fn is_user_error(self) -> bool {
        !matches!(self, ErrorKind::Storage | ErrorKind::Internal)
    }
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive could not be read.
    #[error(transparent)]
    Storage(#[from] tessera_storage::Error),
    /// A catalog was asked for that does not exist.
    #[error("no catalog {0}")]
    NotFound(String),
    /// The query text is not ADQL.
    #[error("syntax error: {0}")]
    Syntax(#[from] SyntaxError),
    /// The query is rejected or failed; `line`/`column` point at the fault when known.
    #[error("{message}{}", position_suffix(*.line, *.column))]
    Query {
        /// Classification.
        kind: ErrorKind,
        /// What is wrong, naming the table, column, function or value at fault.
        message: String,
        /// 1-based line of the fault, 0 when unknown.
        line: u32,
        /// 1-based column of the fault, 0 when unknown.
        column: u32,
    },
}

fn position_suffix(line: u32, column: u32) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (at line {line}, column {column})")
    }
}

impl Error {
    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Storage(_) => ErrorKind::Storage,
            Error::NotFound(_) => ErrorKind::UnknownTable,
            Error::Syntax(e) if e.limit.is_some() => ErrorKind::Limit,
            Error::Syntax(_) => ErrorKind::Syntax,
            Error::Query { kind, .. } => *kind,
        }
    }

    /// `(line, column)` of the fault in the query text, when known.
    pub fn position(&self) -> Option<(u32, u32)> {
        match self {
            Error::Syntax(e) => Some((e.line, e.column)),
            Error::Query { line, column, .. } if *line > 0 => Some((*line, *column)),
            _ => None,
        }
    }

    pub(crate) fn query(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::Query {
            kind,
            message: message.into(),
            line: 0,
            column: 0,
        }
    }

    pub(crate) fn at(
        kind: ErrorKind,
        span: crate::adql::ast::Span,
        message: impl Into<String>,
    ) -> Error {
        Error::Query {
            kind,
            message: message.into(),
            line: span.line,
            column: span.column,
        }
    }
}

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;
