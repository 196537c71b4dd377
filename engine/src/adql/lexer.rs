//! ADQL tokens: a hand-written scanner over the query text.
//!
//! The scanner turns the text into a vector of [`Token`]s that point into the text by byte
//! range; it allocates nothing per token. It records for every token its line and its column
//! in characters (not bytes), so that errors can point at the place in an editor.
//!
//! Lexical rules (ADQL 2.1 §2.1):
//! - Regular identifiers: an ASCII letter, then letters, digits or underscores. Case-insensitive.
//!   Every word is classified once, here: the grammar keyword it is ([`Tk::Word`] carries the
//!   [`Kw`]), whether it is reserved ([`Token::reserved`]) and whether it names an ADQL function
//!   ([`Token::function`]). Lookups compare words packed into integers, not strings.
//! - Delimited identifiers: `"…"`, `""` stands for one `"`; may not be empty.
//! - String literals: `'…'`, `''` stands for one `'`. As in SQL, literals separated only by
//!   whitespace or comments are one literal (`'ab' 'cd'` is `'abcd'`); the token spans all
//!   the pieces and [`string_value`] joins them.
//! - Numbers: `12`, `12.`, `12.5`, `.5`, `1e10`, `1.5E-3` and hexadecimal `0x1F`. A number may
//!   not run straight into a letter (`12abc` is an error, not `12 AS abc`).
//! - Comments: `-- …` to the end of the line (ADQL's form) and, as an extension, `/* … */`
//!   (not nested).
//! - Whitespace: ASCII whitespace and, leniently, any Unicode whitespace (non-breaking spaces
//!   pasted from web pages are common).

use super::SyntaxError;

macro_rules! keywords {
    ($($v:ident = $s:literal,)*) => {
        /// The words the grammar itself uses. All of them are ADQL reserved words.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Kw { $($v,)* }

        impl Kw {
            /// The keyword in upper case.
            pub(crate) fn name(self) -> &'static str {
                match self { $(Kw::$v => $s,)* }
            }

        }

        /// The keywords' packed names (see [`pack`]), in alphabetical order.
        const KW_KEYS: &[u128] = &[$(pack($s.as_bytes()),)*];
        /// The keywords, in the order of [`KW_KEYS`].
        const KW_VALUES: &[Kw] = &[$(Kw::$v,)*];
    };
}

keywords! {
    All = "ALL", And = "AND", Any = "ANY", As = "AS", Asc = "ASC", Between = "BETWEEN",
    By = "BY", Case = "CASE", Cast = "CAST", Count = "COUNT", Cross = "CROSS", Desc = "DESC",
    Distinct = "DISTINCT", Else = "ELSE", End = "END", Except = "EXCEPT", Exists = "EXISTS",
    False = "FALSE", From = "FROM", Full = "FULL", Group = "GROUP", Having = "HAVING",
    Ilike = "ILIKE", In = "IN", Inner = "INNER", Intersect = "INTERSECT", Is = "IS",
    Join = "JOIN", Left = "LEFT", Like = "LIKE", Natural = "NATURAL", Not = "NOT",
    Null = "NULL", Offset = "OFFSET", On = "ON", Or = "OR", Order = "ORDER", Outer = "OUTER",
    Right = "RIGHT", Select = "SELECT", Some = "SOME", Then = "THEN", Top = "TOP",
    True = "TRUE", Union = "UNION", Using = "USING", When = "WHEN", Where = "WHERE",
    With = "WITH",
}

/// A word of at most 16 ASCII bytes, upper-cased, as a big-endian integer padded with zeros:
/// integer order is then the words' alphabetical order, and lookups compare integers.
const fn pack(word: &[u8]) -> u128 {
    let mut v: u128 = 0;
    let mut i = 0;
    while i < word.len() {
        v = (v << 8) | word[i].to_ascii_uppercase() as u128;
        i += 1;
    }
    if word.is_empty() {
        0
    } else {
        v << (8 * (16 - word.len()))
    }
}

const fn pack_all<const N: usize>(words: &[&str]) -> [u128; N] {
    let mut out = [0u128; N];
    let mut i = 0;
    while i < N {
        out[i] = pack(words[i].as_bytes());
        i += 1;
    }
    out
}

/// Token kinds. Literal values and names are read from the text by the token's byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tk {
    /// A regular identifier or keyword.
    Word(Option<Kw>),
    /// A delimited identifier `"…"` (range includes the quotes).
    Quoted,
    /// One or more adjacent string literals (range includes the quotes).
    Str,
    /// Unsigned decimal integer.
    Int,
    /// Unsigned number with a point or an exponent.
    Decimal,
    /// `0x…`
    Hex,
    LParen,
    RParen,
    Comma,
    Dot,
    Semicolon,
    Star,
    Plus,
    Minus,
    Slash,
    /// `||`
    Concat,
    /// `|`
    Pipe,
    /// `&`
    Amp,
    /// `^`
    Caret,
    /// `~`
    Tilde,
    Eq,
    /// `<>` or `!=`
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// End of the text.
    Eof,
}

impl Tk {
    /// How the token kind is named in an "expected …" list.
    pub(crate) fn expected_name(self) -> &'static str {
        match self {
            Tk::Word(Some(k)) => k.name(),
            Tk::Word(None) | Tk::Quoted => "identifier",
            Tk::Str => "string",
            Tk::Int | Tk::Decimal | Tk::Hex => "number",
            Tk::LParen => "\"(\"",
            Tk::RParen => "\")\"",
            Tk::Comma => "\",\"",
            Tk::Dot => "\".\"",
            Tk::Semicolon => "\";\"",
            Tk::Star => "\"*\"",
            Tk::Plus => "\"+\"",
            Tk::Minus => "\"-\"",
            Tk::Slash => "\"/\"",
            Tk::Concat => "\"||\"",
            Tk::Pipe => "\"|\"",
            Tk::Amp => "\"&\"",
            Tk::Caret => "\"^\"",
            Tk::Tilde => "\"~\"",
            Tk::Eq => "\"=\"",
            Tk::NotEq => "\"<>\"",
            Tk::Lt => "\"<\"",
            Tk::LtEq => "\"<=\"",
            Tk::Gt => "\">\"",
            Tk::GtEq => "\">=\"",
            Tk::Eof => "end of query",
        }
    }
}

/// A token: its kind and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    /// Kind.
    pub(crate) kind: Tk,
    /// For a word: it is a reserved word (grammar keywords included), so it may not be a
    /// regular identifier (see [`ALLOWED`] for the exception).
    pub(crate) reserved: bool,
    /// For a word: it names an ADQL function, so `word(` is a call although it is reserved.
    pub(crate) function: bool,
    /// Byte offset of the first byte.
    pub(crate) start: usize,
    /// Byte offset just past the token.
    pub(crate) end: usize,
    /// 1-based line of `start`.
    pub(crate) line: u32,
    /// 1-based column of `start`, in characters.
    pub(crate) column: u32,
}

/// Splits the text into tokens; the last one is always [`Tk::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, Box<SyntaxError>> {
    let mut lx = Lexer {
        text,
        src: text.as_bytes(),
        pos: 0,
        line: 1,
        col: 1,
        toks: Vec::with_capacity((text.len() / 4 + 2).min(4096)),
    };
    lx.run()?;
    Ok(lx.toks)
}

struct Lexer<'a> {
    text: &'a str,
    src: &'a [u8],
    pos: usize,
    line: u32,
    col: u32,
    toks: Vec<Token>,
}

impl Lexer<'_> {
    fn run(&mut self) -> Result<(), Box<SyntaxError>> {
        loop {
            self.skip_trivia()?;
            let (start, line, column) = (self.pos, self.line, self.col);
            let Some(&b) = self.src.get(self.pos) else {
                self.toks.push(Token {
                    kind: Tk::Eof,
                    reserved: false,
                    function: false,
                    start,
                    end: start,
                    line,
                    column,
                });
                return Ok(());
            };
            let next = self.src.get(self.pos + 1).copied().unwrap_or(0);
            let (mut reserved, mut function) = (false, false);
            let kind = match b {
                b'a'..=b'z' | b'A'..=b'Z' => {
                    self.ascii_run(|c| c.is_ascii_alphanumeric() || c == b'_');
                    let (kw, r, f) = classify(&self.src[start..self.pos]);
                    (reserved, function) = (r, f);
                    Tk::Word(kw)
                }
                b'0'..=b'9' => self.number(start, line, column)?,
                b'.' if next.is_ascii_digit() => self.number(start, line, column)?,
                b'"' => {
                    self.quoted(b'"', start, line, column)?;
                    if self.pos - start == 2 {
                        return Err(error_at(
                            "empty delimited identifier \"\"",
                            start,
                            line,
                            column,
                        ));
                    }
                    Tk::Quoted
                }
                b'\'' => {
                    self.quoted(b'\'', start, line, column)?;
                    // Adjacent literals separated by whitespace or comments are one literal.
                    loop {
                        let (p, l, c) = (self.pos, self.line, self.col);
                        self.skip_trivia()?;
                        if self.src.get(self.pos) == Some(&b'\'') {
                            let (s, l2, c2) = (self.pos, self.line, self.col);
                            self.quoted(b'\'', s, l2, c2)?;
                        } else {
                            (self.pos, self.line, self.col) = (p, l, c);
                            break;
                        }
                    }
                    Tk::Str
                }
                _ => {
                    let (kind, len) = match (b, next) {
                        (b'|', b'|') => (Tk::Concat, 2),
                        (b'<', b'>') | (b'!', b'=') => (Tk::NotEq, 2),
                        (b'<', b'=') => (Tk::LtEq, 2),
                        (b'>', b'=') => (Tk::GtEq, 2),
                        (b'(', _) => (Tk::LParen, 1),
                        (b')', _) => (Tk::RParen, 1),
                        (b',', _) => (Tk::Comma, 1),
                        (b'.', _) => (Tk::Dot, 1),
                        (b';', _) => (Tk::Semicolon, 1),
                        (b'*', _) => (Tk::Star, 1),
                        (b'+', _) => (Tk::Plus, 1),
                        (b'-', _) => (Tk::Minus, 1),
                        (b'/', _) => (Tk::Slash, 1),
                        (b'|', _) => (Tk::Pipe, 1),
                        (b'&', _) => (Tk::Amp, 1),
                        (b'^', _) => (Tk::Caret, 1),
                        (b'~', _) => (Tk::Tilde, 1),
                        (b'=', _) => (Tk::Eq, 1),
                        (b'<', _) => (Tk::Lt, 1),
                        (b'>', _) => (Tk::Gt, 1),
                        _ => {
                            let ch = self.text[start..].chars().next().unwrap_or('?');
                            let msg = if ch.is_ascii_graphic() {
                                format!("unexpected character '{ch}'")
                            } else if ch.is_alphabetic() {
                                format!(
                                    "unexpected character '{ch}': regular identifiers take ASCII \
                                     letters, digits and underscores only; write a delimited \
                                     identifier (\"…\") for other names"
                                )
                            } else {
                                format!("unexpected character U+{:04X}", ch as u32)
                            };
                            return Err(error_at(msg, start, line, column));
                        }
                    };
                    self.pos += len;
                    self.col += len as u32;
                    kind
                }
            };
            self.toks.push(Token {
                kind,
                reserved,
                function,
                start,
                end: self.pos,
                line,
                column,
            });
        }
    }

    /// Advances over ASCII bytes matching `f` (no newlines among them).
    fn ascii_run(&mut self, f: impl Fn(u8) -> bool) {
        let n = self.src[self.pos..].iter().take_while(|&&c| f(c)).count();
        self.pos += n;
        self.col += n as u32;
    }

    /// Advances one byte, keeping line and column (in characters) right.
    fn bump(&mut self) {
        let b = self.src[self.pos];
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            self.col += 1;
        }
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), Box<SyntaxError>> {
        while let Some(&b) = self.src.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => self.bump(),
                b'-' if self.src.get(self.pos + 1) == Some(&b'-') => {
                    while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                        self.bump();
                    }
                }
                b'/' if self.src.get(self.pos + 1) == Some(&b'*') => {
                    let (start, line, column) = (self.pos, self.line, self.col);
                    self.bump();
                    self.bump();
                    loop {
                        if self.pos + 1 >= self.src.len() {
                            return Err(error_at(
                                "unterminated comment: \"/*\" without \"*/\"",
                                start,
                                line,
                                column,
                            ));
                        }
                        if self.src[self.pos] == b'*' && self.src[self.pos + 1] == b'/' {
                            self.bump();
                            self.bump();
                            break;
                        }
                        self.bump();
                    }
                }
                0x80.. => {
                    let ch = self.text[self.pos..].chars().next().unwrap_or('x');
                    if !ch.is_whitespace() {
                        break;
                    }
                    for _ in 0..ch.len_utf8() {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Scans `q…q` with `qq` as an escaped quote; the opening quote is at `self.pos`.
    fn quoted(
        &mut self,
        q: u8,
        start: usize,
        line: u32,
        column: u32,
    ) -> Result<(), Box<SyntaxError>> {
        self.bump();
        loop {
            match self.src.get(self.pos) {
                None => {
                    let what = if q == b'"' {
                        "unterminated delimited identifier: the opening '\"' has no closing '\"'"
                    } else {
                        "unterminated string literal: the opening quote has no closing quote"
                    };
                    return Err(error_at(what, start, line, column));
                }
                Some(&c) if c == q => {
                    self.bump();
                    if self.src.get(self.pos) == Some(&q) {
                        self.bump();
                    } else {
                        return Ok(());
                    }
                }
                Some(_) => self.bump(),
            }
        }
    }

    fn number(&mut self, start: usize, line: u32, column: u32) -> Result<Tk, Box<SyntaxError>> {
        let src = self.src;
        let kind = if src[self.pos] == b'0'
            && matches!(src.get(self.pos + 1), Some(b'x' | b'X'))
            && src.get(self.pos + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            self.pos += 2;
            self.col += 2;
            self.ascii_run(|c| c.is_ascii_hexdigit());
            Tk::Hex
        } else {
            let mut kind = Tk::Int;
            self.ascii_run(|c| c.is_ascii_digit());
            if src.get(self.pos) == Some(&b'.') {
                kind = Tk::Decimal;
                self.pos += 1;
                self.col += 1;
                self.ascii_run(|c| c.is_ascii_digit());
            }
            if matches!(src.get(self.pos), Some(b'e' | b'E')) {
                let sign = matches!(src.get(self.pos + 1), Some(b'+' | b'-')) as usize;
                if !src.get(self.pos + 1 + sign).is_some_and(u8::is_ascii_digit) {
                    return Err(error_at(
                        format!(
                            "malformed number \"{}\": the exponent has no digits",
                            &self.text[start..self.pos + 1 + sign]
                        ),
                        start,
                        line,
                        column,
                    ));
                }
                kind = Tk::Decimal;
                self.pos += 1 + sign;
                self.col += 1 + sign as u32;
                self.ascii_run(|c| c.is_ascii_digit());
            }
            kind
        };
        if src
            .get(self.pos)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
        {
            let mut end = self.pos;
            while src
                .get(end)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
            {
                end += 1;
            }
            return Err(error_at(
                format!(
                    "malformed number \"{}\": a number may not run into a name",
                    &self.text[start..end]
                ),
                start,
                line,
                column,
            ));
        }
        Ok(kind)
    }
}

fn error_at(message: impl Into<String>, offset: usize, line: u32, column: u32) -> Box<SyntaxError> {
    Box::new(SyntaxError {
        message: message.into(),
        line,
        column,
        offset,
        expected: Vec::new(),
        limit: None,
    })
}

/// What a word is: the grammar keyword, whether it is reserved, whether it is an ADQL
/// function name. Case-insensitive.
fn classify(word: &[u8]) -> (Option<Kw>, bool, bool) {
    if word.len() > 16 {
        // The only longer reserved word.
        return (None, word.eq_ignore_ascii_case(b"CURRENT_TIMESTAMP"), false);
    }
    let key = pack(word);
    if let Ok(i) = KW_KEYS.binary_search(&key) {
        return (Some(KW_VALUES[i]), true, KW_VALUES[i] == Kw::Count);
    }
    if RESERVED_KEYS.binary_search(&key).is_err() || ALLOWED_KEYS.contains(&key) {
        return (None, false, false);
    }
    (None, true, BUILTIN_KEYS.binary_search(&key).is_ok())
}

/// Whether a column or table name must be written as a delimited identifier in ADQL: it is
/// not a regular identifier (a letter, then letters, digits and `_`) or it is a reserved
/// word (`size`, `distance`, …).
pub(crate) fn needs_delimiting(name: &str) -> bool {
    let b = name.as_bytes();
    let regular = b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    !regular || classify(b).1
}

/// Whether a word names an aggregate (set function) that takes `DISTINCT`/`ALL`.
pub(crate) fn is_aggregate(word: &str) -> bool {
    ["AVG", "COUNT", "MAX", "MIN", "SUM"]
        .iter()
        .any(|a| a.eq_ignore_ascii_case(word))
}

/// Words that the reserved list below contains but that are accepted as regular identifiers.
///
/// - `DEC`: SQL-92 reserves it (short for DECIMAL), but ADQL's own reproduction of the SQL
///   reserved words (ADQL 2.0 §2.1.2, ADQL 2.1 §2.1.2) leaves it out, the ADQL grammar never
///   uses it, and every astronomical catalogue has a `dec` column. The Gaia archive and other
///   TAP services accept it unquoted.
///
/// Nothing else is allowed: ADQL itself gives `SIZE` as the example of a name that must be
/// written `"size"`, so widening the list would accept queries that other services reject.
const ALLOWED: &[&str] = &["DEC"];
const ALLOWED_KEYS: [u128; ALLOWED.len()] = pack_all(ALLOWED);

/// Reserved words, sorted: the SQL-92 reserved words as ADQL 2.1 §2.1.2 lists them (plus
/// SQL-92's `DEC`, see [`ALLOWED`]), and ADQL's own (§2.1.3 of ADQL 2.1: the mathematical,
/// trigonometric and geometric function names, TOP, OFFSET, ILIKE, IN_UNIT, BIGINT, and the
/// bit functions BIT_AND, BIT_NOT, BIT_OR, BIT_XOR). `END-EXEC` cannot be written as an
/// identifier anyway and is left out; `CURRENT_TIMESTAMP`, longer than 16 bytes, is checked
/// apart (see [`classify`]).
const RESERVED: &[&str] = &[
    "ABS",
    "ABSOLUTE",
    "ACOS",
    "ACTION",
    "ADD",
    "ALL",
    "ALLOCATE",
    "ALTER",
    "AND",
    "ANY",
    "ARE",
    "AREA",
    "AS",
    "ASC",
    "ASIN",
    "ASSERTION",
    "AT",
    "ATAN",
    "ATAN2",
    "AUTHORIZATION",
    "AVG",
    "BEGIN",
    "BETWEEN",
    "BIGINT",
    "BIT",
    "BIT_AND",
    "BIT_LENGTH",
    "BIT_NOT",
    "BIT_OR",
    "BIT_XOR",
    "BOTH",
    "BOX",
    "BY",
    "CASCADE",
    "CASCADED",
    "CASE",
    "CAST",
    "CATALOG",
    "CEILING",
    "CENTROID",
    "CHAR",
    "CHARACTER",
    "CHARACTER_LENGTH",
    "CHAR_LENGTH",
    "CHECK",
    "CIRCLE",
    "CLOSE",
    "COALESCE",
    "COLLATE",
    "COLLATION",
    "COLUMN",
    "COMMIT",
    "CONNECT",
    "CONNECTION",
    "CONSTRAINT",
    "CONSTRAINTS",
    "CONTAINS",
    "CONTINUE",
    "CONVERT",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "CORRESPONDING",
    "COS",
    "COT",
    "COUNT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_USER",
    "CURSOR",
    "DATE",
    "DAY",
    "DEALLOCATE",
    "DEC",
    "DECIMAL",
    "DECLARE",
    "DEFAULT",
    "DEFERRABLE",
    "DEFERRED",
    "DEGREES",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DESCRIPTOR",
    "DIAGNOSTICS",
    "DISCONNECT",
    "DISTANCE",
    "DISTINCT",
    "DOMAIN",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXCEPTION",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXP",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FIRST",
    "FLOAT",
    "FLOOR",
    "FOR",
    "FOREIGN",
    "FOUND",
    "FROM",
    "FULL",
    "GET",
    "GLOBAL",
    "GO",
    "GOTO",
    "GRANT",
    "GROUP",
    "HAVING",
    "HOUR",
    "IDENTITY",
    "ILIKE",
    "IMMEDIATE",
    "IN",
    "INDICATOR",
    "INITIALLY",
    "INNER",
    "INPUT",
    "INSENSITIVE",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERSECTS",
    "INTERVAL",
    "INTO",
    "IN_UNIT",
    "IS",
    "ISOLATION",
    "JOIN",
    "KEY",
    "LANGUAGE",
    "LAST",
    "LEADING",
    "LEFT",
    "LEVEL",
    "LIKE",
    "LOCAL",
    "LOG",
    "LOG10",
    "LOWER",
    "MATCH",
    "MAX",
    "MIN",
    "MINUTE",
    "MOD",
    "MODULE",
    "MONTH",
    "NAMES",
    "NATIONAL",
    "NATURAL",
    "NCHAR",
    "NEXT",
    "NO",
    "NOT",
    "NULL",
    "NULLIF",
    "NUMERIC",
    "OCTET_LENGTH",
    "OF",
    "OFFSET",
    "ON",
    "ONLY",
    "OPEN",
    "OPTION",
    "OR",
    "ORDER",
    "OUTER",
    "OUTPUT",
    "OVERLAPS",
    "PAD",
    "PARTIAL",
    "PI",
    "POINT",
    "POLYGON",
    "POSITION",
    "POWER",
    "PRECISION",
    "PREPARE",
    "PRESERVE",
    "PRIMARY",
    "PRIOR",
    "PRIVILEGES",
    "PROCEDURE",
    "PUBLIC",
    "RADIANS",
    "RAND",
    "READ",
    "REAL",
    "REFERENCES",
    "REGION",
    "RELATIVE",
    "RESTRICT",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROUND",
    "ROWS",
    "SCHEMA",
    "SCROLL",
    "SECOND",
    "SECTION",
    "SELECT",
    "SESSION",
    "SESSION_USER",
    "SET",
    "SIN",
    "SIZE",
    "SMALLINT",
    "SOME",
    "SPACE",
    "SQL",
    "SQLCODE",
    "SQLERROR",
    "SQLSTATE",
    "SQRT",
    "SUBSTRING",
    "SUM",
    "SYSTEM_USER",
    "TABLE",
    "TAN",
    "TEMPORARY",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMEZONE_HOUR",
    "TIMEZONE_MINUTE",
    "TO",
    "TOP",
    "TRAILING",
    "TRANSACTION",
    "TRANSLATE",
    "TRANSLATION",
    "TRIM",
    "TRUE",
    "TRUNCATE",
    "UNION",
    "UNIQUE",
    "UNKNOWN",
    "UPDATE",
    "UPPER",
    "USAGE",
    "USER",
    "USING",
    "VALUE",
    "VALUES",
    "VARCHAR",
    "VARYING",
    "VIEW",
    "WHEN",
    "WHENEVER",
    "WHERE",
    "WITH",
    "WORK",
    "WRITE",
    "YEAR",
    "ZONE",
];
const RESERVED_KEYS: [u128; RESERVED.len()] = pack_all(RESERVED);

/// Reserved words that are ADQL functions, sorted. `COUNT` is handled by the parser itself.
const BUILTIN_FUNCTIONS: &[&str] = &[
    "ABS",
    "ACOS",
    "AREA",
    "ASIN",
    "ATAN",
    "ATAN2",
    "AVG",
    "BIT_AND",
    "BIT_NOT",
    "BIT_OR",
    "BIT_XOR",
    "BOX",
    "CEILING",
    "CENTROID",
    "CIRCLE",
    "COALESCE",
    "CONTAINS",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "COS",
    "COT",
    "COUNT",
    "DEGREES",
    "DISTANCE",
    "EXP",
    "FLOOR",
    "INTERSECTS",
    "IN_UNIT",
    "LOG",
    "LOG10",
    "LOWER",
    "MAX",
    "MIN",
    "MOD",
    "PI",
    "POINT",
    "POLYGON",
    "POWER",
    "RADIANS",
    "RAND",
    "REGION",
    "ROUND",
    "SIN",
    "SQRT",
    "SUM",
    "TAN",
    "TRUNCATE",
    "UPPER",
];
const BUILTIN_KEYS: [u128; BUILTIN_FUNCTIONS.len()] = pack_all(BUILTIN_FUNCTIONS);

/// The value of a [`Tk::Str`] token's text: the pieces joined, `''` unescaped.
pub(crate) fn string_value(token_text: &str) -> String {
    let b = token_text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                // One piece: from after the quote to the closing quote.
                i += 1;
                let mut run = i;
                loop {
                    // The lexer guarantees the closing quote exists.
                    let q = run
                        + b[run..]
                            .iter()
                            .position(|&c| c == b'\'')
                            .unwrap_or(b.len() - run);
                    out.push_str(&token_text[i..q]);
                    if b.get(q + 1) == Some(&b'\'') {
                        out.push('\'');
                        i = q + 2;
                        run = i;
                    } else {
                        i = q + 1;
                        break;
                    }
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            _ => i += 1, // whitespace between pieces
        }
    }
    out
}

/// The name of a [`Tk::Quoted`] token's text: quotes removed, `""` unescaped.
pub(crate) fn quoted_name(token_text: &str) -> String {
    token_text[1..token_text.len() - 1].replace("\"\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tk> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn reserved(w: &str) -> bool {
        classify(w.as_bytes()).1
    }

    #[test]
    fn word_lists_are_sorted_upper_case_identifiers() {
        for list in [RESERVED, BUILTIN_FUNCTIONS, ALLOWED] {
            for w in list.windows(2) {
                assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
            }
            for w in list {
                assert!(
                    w.bytes()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
                );
                assert!(w.len() <= 16, "{w}");
            }
        }
        // Packing keeps the order, so binary searches over the keys are right.
        for keys in [&RESERVED_KEYS[..], &BUILTIN_KEYS[..], KW_KEYS] {
            assert!(keys.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(KW_KEYS.len(), KW_VALUES.len());
        for (k, v) in KW_KEYS.iter().zip(KW_VALUES) {
            assert_eq!(*k, pack(v.name().as_bytes()));
            // Every grammar keyword is an ADQL reserved word.
            assert!(RESERVED.contains(&v.name()), "{}", v.name());
        }
        // Every function name is reserved.
        for f in BUILTIN_FUNCTIONS {
            assert!(RESERVED.contains(f), "{f}");
        }
        // ADQL 2.1 BNF: 226 SQL words less END-EXEC and CURRENT_TIMESTAMP, 41 ADQL words,
        // SQL-92's DEC and the four BIT_* functions.
        assert_eq!(RESERVED.len(), 224 + 41 + 1 + 4);
    }

    #[test]
    fn reserved_words_are_case_insensitive_and_dec_is_allowed() {
        assert!(reserved("size"));
        assert!(reserved("Size"));
        assert!(reserved("point"));
        assert!(reserved("in_unit"));
        assert!(reserved("offset"));
        assert!(reserved("current_timestamp"));
        assert!(reserved("CHARACTER_LENGTH"));
        assert!(!reserved("dec"));
        assert!(!reserved("DEC"));
        assert!(!reserved("ra"));
        assert!(!reserved("ivo_healpix_index"));
        assert!(!reserved("a_very_long_column_name"));
        assert!(!reserved("selects"));
        assert_eq!(classify(b"select"), (Some(Kw::Select), true, false));
        assert_eq!(classify(b"Count"), (Some(Kw::Count), true, true));
        assert_eq!(classify(b"contains"), (None, true, true));
        assert_eq!(classify(b"size"), (None, true, false));
        assert_eq!(classify(b"ivo_x"), (None, false, false));
        let t = tokenize("SIZE dec point x").unwrap();
        let flags: Vec<(bool, bool)> = t.iter().map(|t| (t.reserved, t.function)).collect();
        assert_eq!(
            flags,
            [
                (true, false),
                (false, false),
                (true, true),
                (false, false),
                (false, false)
            ]
        );
    }

    #[test]
    fn keywords_and_words() {
        assert_eq!(
            kinds("select Ra FROM x"),
            vec![
                Tk::Word(Some(Kw::Select)),
                Tk::Word(None),
                Tk::Word(Some(Kw::From)),
                Tk::Word(None),
                Tk::Eof
            ]
        );
        assert_eq!(kinds("selects"), vec![Tk::Word(None), Tk::Eof]);
    }

    #[test]
    fn operators() {
        assert_eq!(
            kinds("|| | & ^ ~ <> != <= >= < > = ( ) , . ; * + - /"),
            vec![
                Tk::Concat,
                Tk::Pipe,
                Tk::Amp,
                Tk::Caret,
                Tk::Tilde,
                Tk::NotEq,
                Tk::NotEq,
                Tk::LtEq,
                Tk::GtEq,
                Tk::Lt,
                Tk::Gt,
                Tk::Eq,
                Tk::LParen,
                Tk::RParen,
                Tk::Comma,
                Tk::Dot,
                Tk::Semicolon,
                Tk::Star,
                Tk::Plus,
                Tk::Minus,
                Tk::Slash,
                Tk::Eof
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("12 12. 12.5 .5 1e10 1.5E-3 2e+4 0x1F 0XaB"),
            vec![
                Tk::Int,
                Tk::Decimal,
                Tk::Decimal,
                Tk::Decimal,
                Tk::Decimal,
                Tk::Decimal,
                Tk::Decimal,
                Tk::Hex,
                Tk::Hex,
                Tk::Eof
            ]
        );
        let e = tokenize("1e+").unwrap_err();
        assert!(e.message.contains("exponent"), "{}", e.message);
        let e = tokenize("select 12abc").unwrap_err();
        assert!(e.message.contains("12abc"), "{}", e.message);
        assert_eq!((e.line, e.column, e.offset), (1, 8, 7));
        // `0x` without digits is a zero running into a name.
        assert!(tokenize("0x").is_err());
        assert!(tokenize("0xG1").is_err());
    }

    #[test]
    fn positions_count_characters_and_lines() {
        let t = tokenize("'é'  x\n  -- c\n\t\"ü\" y").unwrap();
        assert_eq!((t[0].line, t[0].column, t[0].start, t[0].end), (1, 1, 0, 4));
        assert_eq!((t[1].line, t[1].column, t[1].start), (1, 6, 6));
        assert_eq!((t[2].line, t[2].column), (3, 2));
        assert_eq!((t[3].line, t[3].column), (3, 6));
        assert_eq!(t[4].kind, Tk::Eof);
        assert_eq!((t[4].line, t[4].column, t[4].start), (3, 7, 22));
    }

    #[test]
    fn strings_join_across_whitespace_and_comments() {
        let text = "'a''b'  \n 'c' -- x\n /* y */ 'd' e";
        let t = tokenize(text).unwrap();
        assert_eq!(t[0].kind, Tk::Str);
        assert_eq!(string_value(&text[t[0].start..t[0].end]), "a'bcd");
        assert_eq!(&text[t[1].start..t[1].end], "e");
        assert_eq!(string_value("''"), "");
        assert_eq!(string_value("'it''s' ''''"), "it's'");
    }

    #[test]
    fn quoted_identifiers() {
        let text = r#""a""b" "SELECT""#;
        let t = tokenize(text).unwrap();
        assert_eq!(t[0].kind, Tk::Quoted);
        assert_eq!(quoted_name(&text[t[0].start..t[0].end]), "a\"b");
        assert_eq!(quoted_name(&text[t[1].start..t[1].end]), "SELECT");
        let e = tokenize("x \"\" y").unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }

    #[test]
    fn unterminated_things_point_at_their_start() {
        let e = tokenize("select\n  'abc").unwrap_err();
        assert!(e.message.contains("unterminated string"), "{}", e.message);
        assert_eq!((e.line, e.column, e.offset), (2, 3, 9));
        let e = tokenize("a \"b").unwrap_err();
        assert!(
            e.message.contains("unterminated delimited identifier"),
            "{}",
            e.message
        );
        assert_eq!((e.line, e.column), (1, 3));
        let e = tokenize("a /* b").unwrap_err();
        assert!(e.message.contains("unterminated comment"), "{}", e.message);
        assert_eq!((e.line, e.column), (1, 3));
        // An unterminated piece after a complete literal is reported at the piece.
        let e = tokenize("'a' 'b").unwrap_err();
        assert_eq!(e.column, 5);
    }

    #[test]
    fn comments_and_unicode_whitespace() {
        assert_eq!(
            kinds("a -- x\nb/* c\n */c"),
            vec![Tk::Word(None); 3]
                .into_iter()
                .chain([Tk::Eof])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            kinds("a\u{a0}b"),
            vec![Tk::Word(None), Tk::Word(None), Tk::Eof]
        );
        assert_eq!(kinds("-- only a comment"), vec![Tk::Eof]);
        let e = tokenize("a ? b").unwrap_err();
        assert_eq!(e.message, "unexpected character '?'");
        assert_eq!(e.column, 3);
        let e = tokenize("SELECT d\u{e9}c").unwrap_err();
        assert!(
            e.message
                .starts_with("unexpected character '\u{e9}': regular identifiers"),
            "{}",
            e.message
        );
        assert_eq!((e.column, e.offset), (9, 8));
        let e = tokenize("a \u{2192} b").unwrap_err();
        assert!(e.message.contains("U+2192"), "{}", e.message);
        let e = tokenize("a ! b").unwrap_err();
        assert_eq!(e.message, "unexpected character '!'");
    }
}
