//! Recursive-descent ADQL 2.1 parser.
//!
//! [`parse`] checks the length limit, tokenizes the whole text (see the lexer) and descends
//! over the token vector. The first error stops the parse; it carries the line and column of
//! the offending token and, where the grammar offered a choice, what would have been accepted
//! there (`unexpected end of query; expected one of FROM, ","`).
//!
//! # What is accepted
//!
//! `[WITH name [(cols)] AS (query), …] select_or_set_operation [ORDER BY …] [OFFSET n] [;]`
//!
//! - `SELECT [ALL|DISTINCT] [TOP n] list FROM … [WHERE …] [GROUP BY …] [HAVING …]`; the list
//!   holds `*`, `t.*`, `s.t.*`, `c.s.t.*` and `expression [[AS] alias]` items (a `*` may be mixed
//!   with other items, a lenient extension). FROM is mandatory, as in ADQL.
//! - FROM: comma lists of table references; `[catalog.][schema.]table [[AS] alias]`; derived
//!   tables `(query) [AS] alias [(cols)]` (the alias is mandatory); joins `[NATURAL] [INNER |
//!   LEFT|RIGHT|FULL [OUTER]] JOIN … [ON cond | USING (cols)]` and `CROSS JOIN`, left-deep;
//!   parenthesised joins. As in the ADQL BNF, the join specification of a non-natural join may
//!   be omitted.
//! - `UNION|EXCEPT|INTERSECT [ALL]`; INTERSECT binds tighter, all are left-associative;
//!   operands may be parenthesised queries with their own WITH/ORDER BY/OFFSET. ORDER BY and
//!   OFFSET (ADQL 2.1 puts OFFSET after ORDER BY) apply to the whole query expression.
//! - Subqueries: `IN (query)`, `EXISTS (query)`, scalar `(query)` anywhere an operand may be,
//!   `op ANY|SOME|ALL (query)`. `((SELECT …) UNION (SELECT …))` works in every position.
//! - Expressions: see the precedence table below; `CASE` (simple and searched),
//!   `CAST(x AS type)`, `COUNT(*)`, and every other call `name(args)` as
//!   [`ExprKind::Function`]: ADQL's reserved function names (math, trigonometry, geometry,
//!   LOWER, UPPER, COALESCE, IN_UNIT, aggregates with `DISTINCT|ALL`, the BIT_* functions) and
//!   user-defined functions, i.e. any non-reserved regular identifier followed by `(`.
//!   Geometry arguments are plain expressions (the coordinate system is the first argument).
//! - Literals: integers (falling back to [`Literal::Float`] past `i64`), decimals and exponents,
//!   hexadecimal `0x…` (up to 64 bits, taken as the two's-complement `i64`: `0xFFFFFFFFFFFFFFFF`
//!   is -1), strings (adjacent literals concatenated), `NULL`, `TRUE`, `FALSE`. A minus sign is
//!   a [`UnaryOp::Neg`] around the literal.
//!
//! Anything that is not a query (INSERT, DELETE, CREATE, SET, DROP, EXPLAIN, COPY, …) is
//! refused with "only SELECT queries are allowed". One `;` may end the query; nothing may
//! follow. `LIMIT n` gets a hint towards `TOP n`.
//!
//! # Identifiers
//!
//! Regular identifiers are kept as written ([`Ident::delimited`] false; compare them
//! case-insensitively); delimited ones are unescaped. A reserved word (see the lexer's list:
//! SQL-92's plus ADQL's) may not be a table, column, alias, query or function name unless
//! delimited: `reserved word "SIZE" cannot be a column name; write it as the delimited
//! identifier "size"`. The allow-list exception is `DEC`, which ADQL's list leaves out. ADQL's
//! built-in function names are reserved too: `area(…)` is a call, while a column named `area`
//! must be written `"area"`.
//!
//! # Operator precedence, lowest first
//!
//! | level | operators                                                        | associativity |
//! |-------|------------------------------------------------------------------|---------------|
//! | 1     | `OR`                                                             | left          |
//! | 2     | `AND`                                                            | left          |
//! | 3     | `NOT` (prefix)                                                   | right         |
//! | 4     | `= <> != < <= > >=`, `op ANY/SOME/ALL`, `IS [NOT] NULL`, `[NOT] BETWEEN … AND …`, `[NOT] LIKE`, `[NOT] ILIKE`, `[NOT] IN` | none (one per operand) |
//! | 5     | `\|` (bitwise or)                                                | left          |
//! | 6     | `^` (bitwise xor)                                                | left          |
//! | 7     | `&` (bitwise and)                                                | left          |
//! | 8     | `+ -` and `\|\|` (concatenation)                                 | left          |
//! | 9     | `* /`                                                            | left          |
//! | 10    | unary `- + ~` (prefix)                                           | right         |
//!
//! # Tree shape and limits
//!
//! Operator chains are parsed with loops, never by recursing per operand. A run of the same
//! associative operator (`OR`, `AND`, `||`, `|`, `^`, `&`) becomes a *balanced* tree, so that
//! `id=1 OR id=2 OR …` with any number of terms has a logarithmic height; the grouping
//! differs from the left-to-right one only where the operator makes it irrelevant. The other
//! operators (`+ - * /`) build the usual left-deep tree.
//!
//! Two limits keep parsing, and whatever later walks or drops the tree, off the end of the
//! stack. Both are reported with `limit: Some("depth")`:
//! - nesting: parentheses, subqueries, function-call and CAST argument lists, CASE, and
//!   prefix operators (`NOT`, unary minus…) may nest at most `ParseLimits::max_depth` deep
//!   (and never more than [`NESTING_CAP`]); the counter is checked before each descent;
//! - height: no syntax tree may be more than [`MAX_HEIGHT`] levels tall. This is what stops a
//!   left-deep chain of, say, 200 000 additions: parsing it is no problem, but a tree that tall
//!   would overflow the stack of any recursive walk over it, dropping included.

use super::ast::{
    BinaryOp, CastType, Cte, Expr, ExprKind, Ident, JoinConstraint, JoinKind, Literal, OrderItem,
    Quantifier, Query, Select, SelectItem, SetExpr, SetOp, Span, TableRef, UnaryOp,
};
use super::lexer::{self, Kw, Tk, Token};
use super::{ParseLimits, SyntaxError};

type PResult<T> = Result<T, Box<SyntaxError>>;

/// Nesting never goes deeper than this, whatever `ParseLimits::max_depth` says. The costliest
/// level (a scalar subquery in a select list) takes about 9 KiB of stack in a debug build and
/// far less in a release build, so this keeps parsing within 1.2 MiB, inside the 2 MiB of a
/// spawned thread (test threads, tokio workers).
pub(crate) const NESTING_CAP: usize = 128;

/// Tallest syntax tree accepted (levels of nodes).
pub(crate) const MAX_HEIGHT: u32 = 1000;

/// Parses one ADQL query.
pub fn parse(text: &str, limits: &ParseLimits) -> Result<Query, SyntaxError> {
    if text.len() > limits.max_len {
        return Err(SyntaxError {
            message: format!(
                "query too long: {} bytes, the limit is {} bytes",
                text.len(),
                limits.max_len
            ),
            line: 1,
            column: 1,
            offset: 0,
            expected: Vec::new(),
            limit: Some("length"),
        });
    }
    let toks = lexer::tokenize(text).map_err(|e| *e)?;
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        depth: 0,
        max_depth: limits.max_depth.min(NESTING_CAP),
        expected: Vec::new(),
        expected_at: usize::MAX,
    };
    p.statement().map_err(|e| *e)
}

/// An expression with the height of its tree.
struct Ex {
    e: Box<Expr>,
    h: u32,
}

/// What a parenthesis opened where an expression may start turned out to hold.
enum PExpr {
    /// A query expression.
    Query(Box<Query>, u32),
    /// One expression (not yet wrapped in `Nested`) and the span of the parentheses.
    Expr(Ex, Span),
    /// A list of expressions (only where a list is allowed: after IN).
    List(Vec<Expr>, u32),
}

/// What a parenthesis opened in FROM turned out to hold.
enum PTable {
    /// A query expression (becomes a derived table).
    Query(Box<Query>, u32),
    /// A (joined) table reference.
    Table(Box<TableRef>, u32),
}

/// The role of an identifier, for error messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Column,
    Table,
    Schema,
    Catalog,
    Alias,
    Query,
    Function,
}

impl Role {
    /// With its article: "a column name".
    fn noun(self) -> &'static str {
        match self {
            Role::Column => "a column name",
            Role::Table => "a table name",
            Role::Schema => "a schema name",
            Role::Catalog => "a catalog name",
            Role::Alias => "an alias",
            Role::Query => "a query name",
            Role::Function => "a function name",
        }
    }

    /// Without the article, for "expected" lists.
    fn label(self) -> &'static str {
        let n = self.noun();
        n.split_once(' ').map_or(n, |(_, rest)| rest)
    }

    /// Role of part `i` of an `n`-part dotted name whose last part has role `last`.
    fn part(last: Role, n: usize, i: usize) -> Role {
        const ORDER: [Role; 4] = [Role::Catalog, Role::Schema, Role::Table, Role::Column];
        let last_at = if last == Role::Column { 3 } else { 2 };
        ORDER[last_at + 1 + i - n]
    }
}

/// Statements other than queries, recognised to say that only SELECT is allowed.
const STATEMENTS: &[&str] = &[
    "ALTER",
    "ANALYZE",
    "ATTACH",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "CLUSTER",
    "COMMENT",
    "COMMIT",
    "COPY",
    "CREATE",
    "DEALLOCATE",
    "DECLARE",
    "DELETE",
    "DESCRIBE",
    "DETACH",
    "DISCARD",
    "DO",
    "DROP",
    "EXEC",
    "EXECUTE",
    "EXPLAIN",
    "GRANT",
    "IMPORT",
    "INSERT",
    "INSTALL",
    "LISTEN",
    "LOAD",
    "LOCK",
    "MERGE",
    "NOTIFY",
    "PRAGMA",
    "PREPARE",
    "REFRESH",
    "REINDEX",
    "RELEASE",
    "REPLACE",
    "RESET",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SET",
    "SHOW",
    "START",
    "TABLE",
    "TRUNCATE",
    "UPDATE",
    "UPSERT",
    "USE",
    "VACUUM",
    "VALUES",
];

// Binding powers, as in the module's table.
const P_OR: u8 = 1;
const P_AND: u8 = 2;
const P_NOT: u8 = 3;
const P_CMP: u8 = 4;
const P_BITOR: u8 = 5;
const P_BITXOR: u8 = 6;
const P_BITAND: u8 = 7;
const P_ADD: u8 = 8;
const P_MUL: u8 = 9;
const P_UNARY: u8 = 10;

/// An operator after an operand.
#[derive(Clone, Copy)]
enum Infix {
    Bin(BinaryOp),
    /// A comparison or predicate (`=`, `IS`, `[NOT] BETWEEN|LIKE|ILIKE|IN`).
    Pred,
}

/// Operators whose chains may be regrouped (balanced) without changing the result.
fn associative(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Or
            | BinaryOp::And
            | BinaryOp::Concat
            | BinaryOp::BitOr
            | BinaryOp::BitXor
            | BinaryOp::BitAnd
    )
}

fn span_of(t: Token) -> Span {
    Span {
        start: t.start,
        end: t.end,
        line: t.line,
        column: t.column,
    }
}

/// From the start of `a` to the end of `b`.
fn cover(a: Span, b: Span) -> Span {
    Span {
        start: a.start,
        end: b.end,
        line: a.line,
        column: a.column,
    }
}

fn table_span(t: &TableRef) -> Span {
    match t {
        TableRef::Table { span, .. }
        | TableRef::Derived { span, .. }
        | TableRef::Join { span, .. } => *span,
    }
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    max_depth: usize,
    /// What was tried and not found at token `expected_at`.
    expected: Vec<&'static str>,
    expected_at: usize,
}

// The functions on the recursive paths (expressions, queries, FROM) are kept small and free of
// error formatting: in a debug build every local of a function occupies its frame, and the
// frames of one nesting level add up.
impl<'a> Parser<'a> {
    // ----- token access -----------------------------------------------------------------

    fn tok(&self) -> Token {
        self.toks[self.pos]
    }

    fn kind(&self) -> Tk {
        self.toks[self.pos].kind
    }

    fn nth(&self, n: usize) -> Tk {
        self.toks.get(self.pos + n).map_or(Tk::Eof, |t| t.kind)
    }

    fn advance(&mut self) -> Token {
        let t = self.toks[self.pos];
        if t.kind != Tk::Eof {
            self.pos += 1;
        }
        t
    }

    fn text_of(&self, t: Token) -> &'a str {
        &self.text[t.start..t.end]
    }

    fn at_kw(&self, k: Kw) -> bool {
        self.kind() == Tk::Word(Some(k))
    }

    /// Consumes keyword `k` if it is next, without noting it as expected otherwise.
    fn skip_kw(&mut self, k: Kw) -> bool {
        let at = self.at_kw(k);
        if at {
            self.pos += 1;
        }
        at
    }

    /// Notes that `what` would have been accepted at the current token.
    fn record(&mut self, what: &'static str) {
        if self.expected_at != self.pos {
            self.expected.clear();
            self.expected_at = self.pos;
        }
        if !self.expected.contains(&what) {
            self.expected.push(what);
        }
    }

    fn eat_kw(&mut self, k: Kw) -> bool {
        if self.skip_kw(k) {
            true
        } else {
            self.record(k.name());
            false
        }
    }

    fn expect_kw(&mut self, k: Kw) -> PResult<Token> {
        if self.at_kw(k) {
            Ok(self.advance())
        } else {
            self.record(k.name());
            Err(self.unexpected(""))
        }
    }

    fn eat(&mut self, tk: Tk) -> bool {
        if self.kind() == tk {
            self.advance();
            true
        } else {
            self.record(tk.expected_name());
            false
        }
    }

    fn expect(&mut self, tk: Tk) -> PResult<Token> {
        if self.kind() == tk {
            Ok(self.advance())
        } else {
            self.record(tk.expected_name());
            Err(self.unexpected(""))
        }
    }

    /// Byte offset just past the last consumed token.
    fn prev_end(&self) -> usize {
        self.toks[self.pos.saturating_sub(1)].end
    }

    /// Span from token `first` to the last consumed token.
    fn span_from(&self, first: Token) -> Span {
        Span {
            start: first.start,
            end: self.prev_end().max(first.end),
            line: first.line,
            column: first.column,
        }
    }

    /// `s` extended to the last consumed token.
    fn extend(&self, s: Span) -> Span {
        Span {
            end: self.prev_end().max(s.end),
            ..s
        }
    }

    // ----- errors (kept out of the recursive functions) -----------------------------------

    fn describe(&self, t: Token) -> String {
        let s = self.text_of(t);
        let short = |s: &str| -> String {
            if s.chars().count() > 40 {
                format!("{}…", s.chars().take(40).collect::<String>())
            } else {
                s.to_string()
            }
        };
        match t.kind {
            Tk::Eof => "end of query".to_string(),
            Tk::Word(Some(k)) => format!("\"{}\"", k.name()),
            Tk::Word(None) => format!("\"{}\"", short(s)),
            Tk::Quoted => format!("identifier {}", short(s)),
            Tk::Str => format!("string {}", short(s)),
            Tk::Int | Tk::Decimal | Tk::Hex => format!("number {}", short(s)),
            _ => format!("\"{s}\""),
        }
    }

    fn error_at(&self, t: Token, message: String, expected: &[&str]) -> Box<SyntaxError> {
        Box::new(SyntaxError {
            message,
            line: t.line,
            column: t.column,
            offset: t.start,
            expected: expected.iter().map(|s| s.to_string()).collect(),
            limit: None,
        })
    }

    /// `unexpected X<context>`, with what was noted as expected here.
    fn unexpected(&self, context: &str) -> Box<SyntaxError> {
        let t = self.tok();
        let mut message = format!("unexpected {}{context}", self.describe(t));
        if t.kind == Tk::Word(None) && self.text_of(t).eq_ignore_ascii_case("LIMIT") {
            message.push_str(": ADQL has no LIMIT clause; write SELECT TOP n");
        }
        let expected: &[&str] = if self.expected_at == self.pos {
            &self.expected
        } else {
            &[]
        };
        self.error_at(t, message, expected)
    }

    /// `unexpected X`, expecting `what`.
    fn expected_here(&mut self, what: &[&'static str], context: &str) -> Box<SyntaxError> {
        for w in what {
            self.record(w);
        }
        self.unexpected(context)
    }

    fn reserved_error(&self, t: Token, role: Role) -> Box<SyntaxError> {
        let s = self.text_of(t);
        self.error_at(
            t,
            format!(
                "reserved word \"{}\" cannot be {}; write it as the delimited identifier \"{}\"",
                s.to_ascii_uppercase(),
                role.noun(),
                s.to_ascii_lowercase()
            ),
            &[],
        )
    }

    /// Whether the current keyword stands where a name would: followed by what may follow a
    /// name (`.`, `,`, `)`, an operator, a clause keyword, the end), so that the error should
    /// say that it is reserved rather than merely unexpected.
    fn keyword_used_as_name(&self) -> bool {
        match self.nth(1) {
            Tk::Word(Some(k)) => !matches!(k, Kw::By | Kw::Select | Kw::Distinct | Kw::All),
            Tk::Word(None) | Tk::Quoted | Tk::Str | Tk::Int | Tk::Decimal | Tk::Hex => false,
            Tk::LParen | Tk::Tilde => false,
            _ => true,
        }
    }

    fn depth_error(&self) -> Box<SyntaxError> {
        let mut e = self.error_at(
            self.tok(),
            format!(
                "query nested too deeply: more than {} levels of parentheses, subqueries, \
                 function calls or prefix operators",
                self.max_depth
            ),
            &[],
        );
        e.limit = Some("depth");
        e
    }

    fn height_error(&self) -> Box<SyntaxError> {
        let mut e = self.error_at(
            self.tok(),
            format!(
                "query too complex: its syntax tree would be more than {MAX_HEIGHT} levels deep \
                 (e.g. a chain of more than {MAX_HEIGHT} arithmetic operators)"
            ),
            &[],
        );
        e.limit = Some("depth");
        e
    }

    /// The error where a query should start: refuses other statements by name.
    fn not_a_query(&mut self, what: &[&'static str]) -> Box<SyntaxError> {
        let t = self.tok();
        if matches!(t.kind, Tk::Word(_)) {
            let w = self.text_of(t);
            if STATEMENTS.iter().any(|s| s.eq_ignore_ascii_case(w)) {
                return self.error_at(
                    t,
                    format!(
                        "only SELECT queries are allowed; found \"{}\"",
                        w.to_ascii_uppercase()
                    ),
                    &["SELECT"],
                );
            }
        }
        self.expected_here(what, "")
    }

    /// The error after a select item that is followed by neither "," nor FROM.
    fn select_list_end(&self) -> Box<SyntaxError> {
        let t = self.tok();
        match t.kind {
            Tk::Eof => self.error_at(t, "unexpected end of query".to_string(), &["FROM", "\",\""]),
            Tk::Word(Some(
                Kw::Where
                | Kw::Group
                | Kw::Having
                | Kw::Order
                | Kw::Offset
                | Kw::Union
                | Kw::Except
                | Kw::Intersect,
            )) => self.error_at(
                t,
                format!("unexpected {} after SELECT list", self.describe(t)),
                &["FROM"],
            ),
            _ => {
                let mut e = self.unexpected(" after SELECT list");
                e.expected = vec!["FROM".to_string(), "\",\"".to_string()];
                e
            }
        }
    }

    fn distinct_after_top(&self) -> Box<SyntaxError> {
        let t = self.tok();
        self.error_at(
            t,
            format!(
                "{} must come before TOP: write SELECT {} TOP n",
                self.describe(t),
                self.text_of(t).to_ascii_uppercase()
            ),
            &[],
        )
    }

    fn no_derived_alias(&self) -> Box<SyntaxError> {
        let t = self.tok();
        self.error_at(
            t,
            format!(
                "unexpected {}: a subquery in FROM needs a name, as in (SELECT …) AS name",
                self.describe(t)
            ),
            &["AS", "alias"],
        )
    }

    fn join_condition_not_allowed(&self, natural: bool) -> Box<SyntaxError> {
        let t = self.tok();
        self.error_at(
            t,
            format!(
                "a {} JOIN takes no {} condition",
                if natural { "NATURAL" } else { "CROSS" },
                self.describe(t)
            ),
            &[],
        )
    }

    fn chained_predicate(&self) -> Box<SyntaxError> {
        let mut e = self.unexpected("");
        e.message
            .push_str(": comparisons and predicates do not chain; use parentheses");
        e
    }

    // ----- nesting and height ---------------------------------------------------------------

    /// One level deeper; call with the opening token current.
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.depth_error());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn height(&self, h: u32) -> PResult<u32> {
        if h > MAX_HEIGHT {
            return Err(self.height_error());
        }
        Ok(h)
    }

    fn ex(&self, kind: ExprKind, span: Span, h: u32) -> PResult<Ex> {
        Ok(Ex {
            e: Box::new(Expr { kind, span }),
            h: self.height(h)?,
        })
    }

    // ----- statement and query ------------------------------------------------------------

    fn statement(&mut self) -> PResult<Query> {
        let t = self.tok();
        match t.kind {
            Tk::Eof => return Err(self.error_at(t, "empty query".to_string(), &["SELECT"])),
            Tk::Word(Some(Kw::Select | Kw::With)) | Tk::LParen => {}
            _ => return Err(self.not_a_query(&["SELECT", "WITH", "\"(\""])),
        }
        let (q, _) = self.query()?;
        let q = *q;
        if self.kind() == Tk::Semicolon {
            self.advance();
            if self.kind() != Tk::Eof {
                let t = self.tok();
                return Err(self.error_at(
                    t,
                    format!(
                        "unexpected {} after \";\": only one query is allowed",
                        self.describe(t)
                    ),
                    &["end of query"],
                ));
            }
        } else if self.kind() != Tk::Eof {
            return Err(self.expected_here(&["\";\"", "end of query"], ""));
        }
        Ok(q)
    }

    /// `[WITH …] set_expression [ORDER BY …] [OFFSET n]`.
    fn query(&mut self) -> PResult<(Box<Query>, u32)> {
        let first = self.tok();
        let (with, wh) = if self.at_kw(Kw::With) {
            self.with_clause()?
        } else {
            (Vec::new(), 0)
        };
        let (body, bh) = self.set_expr(None)?;
        self.query_tail(first, with, body, wh.max(bh))
    }

    /// `WITH name [(cols)] AS (query), …`.
    fn with_clause(&mut self) -> PResult<(Vec<Cte>, u32)> {
        self.advance();
        let mut with = Vec::new();
        let mut h = 0;
        loop {
            let name = self.ident(Role::Query)?;
            let columns = if self.kind() == Tk::LParen {
                self.ident_list(Role::Column)?
            } else {
                Vec::new()
            };
            self.expect_kw(Kw::As)?;
            let (query, qh) = self.subquery_parens()?;
            h = h.max(qh);
            with.push(Cte {
                name,
                columns,
                query,
            });
            if !self.eat(Tk::Comma) {
                return Ok((with, h));
            }
        }
    }

    /// A query whose first operand, a parenthesised query starting at `first`, is parsed.
    fn query_continue(
        &mut self,
        first: Token,
        operand: (SetExpr, u32),
    ) -> PResult<(Box<Query>, u32)> {
        let (body, h) = self.set_expr(Some(operand))?;
        self.query_tail(first, Vec::new(), body, h)
    }

    fn query_tail(
        &mut self,
        first: Token,
        with: Vec<Cte>,
        body: SetExpr,
        h: u32,
    ) -> PResult<(Box<Query>, u32)> {
        let (order_by, oh) = if self.skip_kw(Kw::Order) {
            self.order_by()?
        } else {
            self.record("ORDER BY");
            (Vec::new(), 0)
        };
        let offset = if self.eat_kw(Kw::Offset) {
            Some(self.unsigned("OFFSET")?)
        } else {
            None
        };
        let h = self.height(h.max(oh) + 1)?;
        let span = self.span_from(first);
        Ok((
            Box::new(Query {
                with,
                body,
                order_by,
                offset,
                span,
            }),
            h,
        ))
    }

    /// `BY item [ASC|DESC], …` after ORDER.
    fn order_by(&mut self) -> PResult<(Vec<OrderItem>, u32)> {
        self.expect_kw(Kw::By)?;
        let mut items = Vec::new();
        let mut h = 0;
        loop {
            let e = self.expr()?;
            h = h.max(e.h);
            let desc = if self.eat_kw(Kw::Asc) {
                false
            } else {
                self.eat_kw(Kw::Desc)
            };
            items.push(OrderItem { expr: *e.e, desc });
            if !self.eat(Tk::Comma) {
                return Ok((items, h));
            }
        }
    }

    fn at_query_continuation(&self) -> bool {
        matches!(
            self.kind(),
            Tk::Word(Some(
                Kw::Union | Kw::Except | Kw::Intersect | Kw::Order | Kw::Offset
            ))
        )
    }

    /// `term {UNION|EXCEPT [ALL] term}`.
    fn set_expr(&mut self, first: Option<(SetExpr, u32)>) -> PResult<(SetExpr, u32)> {
        let (mut left, mut h) = self.intersect_term(first)?;
        loop {
            let op = match self.kind() {
                Tk::Word(Some(Kw::Union)) => SetOp::Union,
                Tk::Word(Some(Kw::Except)) => SetOp::Except,
                _ => {
                    self.record("UNION");
                    self.record("EXCEPT");
                    return Ok((left, h));
                }
            };
            self.advance();
            let all = self.skip_kw(Kw::All);
            let (right, rh) = self.intersect_term(None)?;
            h = self.height(h.max(rh) + 1)?;
            left = SetExpr::SetOp {
                op,
                all,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    /// `primary {INTERSECT [ALL] primary}`.
    fn intersect_term(&mut self, first: Option<(SetExpr, u32)>) -> PResult<(SetExpr, u32)> {
        let (mut left, mut h) = match first {
            Some(f) => f,
            None => self.set_primary()?,
        };
        loop {
            if !self.eat_kw(Kw::Intersect) {
                return Ok((left, h));
            }
            let all = self.skip_kw(Kw::All);
            let (right, rh) = self.set_primary()?;
            h = self.height(h.max(rh) + 1)?;
            left = SetExpr::SetOp {
                op: SetOp::Intersect,
                all,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    /// `SELECT …` or `(query)`.
    fn set_primary(&mut self) -> PResult<(SetExpr, u32)> {
        match self.kind() {
            Tk::Word(Some(Kw::Select)) => {
                let (s, h) = self.select()?;
                Ok((SetExpr::Select(s), h))
            }
            Tk::LParen => {
                let (q, h) = self.subquery_parens()?;
                Ok((SetExpr::Query(q), self.height(h + 1)?))
            }
            _ => Err(self.not_a_query(&["SELECT", "\"(\""])),
        }
    }

    /// `( query )`.
    fn subquery_parens(&mut self) -> PResult<(Box<Query>, u32)> {
        if self.kind() != Tk::LParen {
            return Err(self.expected_here(&["\"(\""], ""));
        }
        self.enter()?;
        self.advance();
        if !matches!(
            self.kind(),
            Tk::Word(Some(Kw::Select | Kw::With)) | Tk::LParen
        ) {
            return Err(self.not_a_query(&["SELECT", "WITH", "\"(\""]));
        }
        let (q, h) = self.query()?;
        self.expect(Tk::RParen)?;
        self.leave();
        Ok((q, h))
    }

    fn select(&mut self) -> PResult<(Box<Select>, u32)> {
        let first = self.advance(); // SELECT
        // Filled in place: a `Select` is large, and frames on the recursive path stay small.
        let mut s = Box::new(Select {
            distinct: false,
            top: None,
            items: Vec::new(),
            from: Vec::new(),
            selection: None,
            group_by: Vec::new(),
            having: None,
            span: span_of(first),
        });
        self.select_head(&mut s)?;
        let mut h = self.select_list(&mut s.items)?;
        h = h.max(self.table_list(&mut s.from)?);
        h = h.max(self.select_tail(&mut s)?);
        s.span = self.span_from(first);
        Ok((s, self.height(h + 1)?))
    }

    /// `[ALL|DISTINCT] [TOP n]`.
    fn select_head(&mut self, s: &mut Select) -> PResult<()> {
        s.distinct = self.skip_kw(Kw::Distinct);
        if !s.distinct {
            self.skip_kw(Kw::All);
        }
        if self.skip_kw(Kw::Top) {
            if self.at_kw(Kw::Distinct) || self.at_kw(Kw::All) {
                return Err(self.distinct_after_top());
            }
            s.top = Some(self.unsigned("TOP")?);
            if self.at_kw(Kw::Distinct) || self.at_kw(Kw::All) {
                return Err(self.distinct_after_top());
            }
        }
        Ok(())
    }

    /// `[WHERE …] [GROUP BY …] [HAVING …]`; returns the height.
    fn select_tail(&mut self, s: &mut Select) -> PResult<u32> {
        let mut h = 0;
        if self.eat_kw(Kw::Where) {
            let e = self.expr()?;
            h = e.h;
            s.selection = Some(*e.e);
        }
        if self.skip_kw(Kw::Group) {
            self.expect_kw(Kw::By)?;
            loop {
                let e = self.expr()?;
                h = h.max(e.h);
                s.group_by.push(*e.e);
                if !self.eat(Tk::Comma) {
                    break;
                }
            }
        } else {
            self.record("GROUP BY");
        }
        if self.eat_kw(Kw::Having) {
            let e = self.expr()?;
            h = h.max(e.h);
            s.having = Some(*e.e);
        }
        Ok(h)
    }

    /// The select list, up to and including FROM; returns the height.
    fn select_list(&mut self, items: &mut Vec<SelectItem>) -> PResult<u32> {
        let mut h = 0;
        loop {
            h = h.max(self.select_item(items)?);
            if self.kind() == Tk::Comma {
                self.advance();
            } else if self.skip_kw(Kw::From) {
                return Ok(h);
            } else {
                return Err(self.select_list_end());
            }
        }
    }

    /// One select item, pushed onto `items`; returns its height.
    fn select_item(&mut self, items: &mut Vec<SelectItem>) -> PResult<u32> {
        let t = self.tok();
        if t.kind == Tk::Star {
            self.advance();
            items.push(SelectItem::Wildcard(span_of(t)));
            return Ok(1);
        }
        if let Some(n) = self.qualified_wildcard() {
            return self.qualified_wildcard_item(n, items);
        }
        let e = self.expr()?;
        let alias = self.alias()?;
        items.push(SelectItem::Expr { expr: *e.e, alias });
        Ok(e.h)
    }

    /// `Some(n)` when the tokens ahead are `name(.name){n-1} . *`.
    fn qualified_wildcard(&self) -> Option<usize> {
        let mut i = self.pos;
        let mut n = 0;
        loop {
            if !matches!(self.toks[i].kind, Tk::Word(None) | Tk::Quoted) {
                return None;
            }
            if self.toks[i + 1].kind != Tk::Dot {
                return None;
            }
            n += 1;
            match self.toks[i + 2].kind {
                Tk::Star => return Some(n),
                _ => i += 2,
            }
        }
    }

    fn qualified_wildcard_item(&mut self, n: usize, items: &mut Vec<SelectItem>) -> PResult<u32> {
        let t = self.tok();
        if n > 3 {
            return Err(self.error_at(
                t,
                "a qualified \"*\" takes at most 3 name parts (catalog.schema.table.*)".to_string(),
                &[],
            ));
        }
        let mut parts = Vec::with_capacity(n);
        for i in 0..n {
            let pt = self.advance();
            parts.push(self.make_ident(pt, Role::part(Role::Table, n, i))?);
            self.advance(); // "."
        }
        self.advance(); // "*"
        items.push(SelectItem::QualifiedWildcard(parts, self.span_from(t)));
        Ok(1)
    }

    /// `[AS] alias`, where a bare alias is a delimited or a non-reserved identifier.
    fn alias(&mut self) -> PResult<Option<Ident>> {
        if self.skip_kw(Kw::As) {
            return Ok(Some(self.ident(Role::Alias)?));
        }
        let t = self.tok();
        match t.kind {
            Tk::Quoted => Ok(Some(self.ident(Role::Alias)?)),
            Tk::Word(None) if !t.reserved => {
                if self.text_of(t).eq_ignore_ascii_case("LIMIT") && self.nth(1) == Tk::Int {
                    return Err(self.unexpected(""));
                }
                Ok(Some(self.ident(Role::Alias)?))
            }
            _ => Ok(None),
        }
    }

    fn unsigned(&mut self, after: &str) -> PResult<u64> {
        let t = self.tok();
        if t.kind != Tk::Int {
            return Err(self.error_at(
                t,
                format!("unexpected {} after {after}", self.describe(t)),
                &["unsigned integer"],
            ));
        }
        self.advance();
        self.text_of(t).parse::<u64>().map_err(|_| {
            self.error_at(
                t,
                format!("{after} value {} is too large", self.text_of(t)),
                &[],
            )
        })
    }

    // ----- identifiers --------------------------------------------------------------------

    /// An identifier from a word or delimited-identifier token, refusing reserved words.
    fn make_ident(&self, t: Token, role: Role) -> PResult<Ident> {
        let s = self.text_of(t);
        match t.kind {
            Tk::Quoted => Ok(Ident {
                name: lexer::quoted_name(s),
                delimited: true,
                span: span_of(t),
            }),
            Tk::Word(None) if !t.reserved => Ok(Ident {
                name: s.to_string(),
                delimited: false,
                span: span_of(t),
            }),
            Tk::Word(_) => Err(self.reserved_error(t, role)),
            _ => Err(self.unexpected("")),
        }
    }

    fn ident(&mut self, role: Role) -> PResult<Ident> {
        let t = self.tok();
        if matches!(t.kind, Tk::Word(_) | Tk::Quoted) {
            let i = self.make_ident(t, role)?;
            self.advance();
            Ok(i)
        } else {
            Err(self.expected_here(&[role.label()], ""))
        }
    }

    /// `( name, … )`.
    fn ident_list(&mut self, role: Role) -> PResult<Vec<Ident>> {
        self.expect(Tk::LParen)?;
        let mut v = Vec::new();
        loop {
            v.push(self.ident(role)?);
            if !self.eat(Tk::Comma) {
                break;
            }
        }
        self.expect(Tk::RParen)?;
        Ok(v)
    }

    /// A dotted name `a.b.c` of at most `max` parts whose last part has role `last`.
    fn dotted_name(&mut self, max: usize, last: Role) -> PResult<Vec<Ident>> {
        let mut toks = [self.advance(); 4];
        let mut n = 1;
        while self.kind() == Tk::Dot {
            self.advance(); // "."
            let t = self.tok();
            match t.kind {
                Tk::Word(_) | Tk::Quoted => {}
                Tk::Star => {
                    return Err(self.error_at(
                        t,
                        "\"*\" after a qualifier is only allowed in the SELECT list".to_string(),
                        &[],
                    ));
                }
                _ => return Err(self.expected_here(&["identifier"], " after \".\"")),
            }
            if n == max {
                return Err(self.error_at(
                    t,
                    format!("{} has too many parts: at most {max}", last.noun()),
                    &[],
                ));
            }
            toks[n] = self.advance();
            n += 1;
        }
        let mut parts = Vec::with_capacity(n);
        for (i, t) in toks[..n].iter().enumerate() {
            parts.push(self.make_ident(*t, Role::part(last, n, i))?);
        }
        Ok(parts)
    }

    // ----- FROM ---------------------------------------------------------------------------

    fn table_list(&mut self, from: &mut Vec<TableRef>) -> PResult<u32> {
        let mut h = 0;
        loop {
            let (t, th) = self.table_ref()?;
            h = h.max(th);
            from.push(*t);
            if !self.eat(Tk::Comma) {
                return Ok(h);
            }
        }
    }

    fn table_ref(&mut self) -> PResult<(Box<TableRef>, u32)> {
        let t = self.table_primary()?;
        self.join_loop(t)
    }

    /// `[NATURAL] [INNER | LEFT|RIGHT|FULL [OUTER] | CROSS]` before JOIN, if a join follows.
    fn join_kind(&mut self) -> PResult<Option<(bool, JoinKind)>> {
        let natural = self.skip_kw(Kw::Natural);
        let kind = match self.kind() {
            Tk::Word(Some(Kw::Join)) => JoinKind::Inner,
            Tk::Word(Some(Kw::Inner)) => {
                self.advance();
                JoinKind::Inner
            }
            Tk::Word(Some(k @ (Kw::Left | Kw::Right | Kw::Full))) => {
                self.advance();
                self.skip_kw(Kw::Outer);
                match k {
                    Kw::Left => JoinKind::Left,
                    Kw::Right => JoinKind::Right,
                    _ => JoinKind::Full,
                }
            }
            Tk::Word(Some(Kw::Cross)) if !natural => {
                self.advance();
                JoinKind::Cross
            }
            _ if natural => {
                return Err(self.expected_here(
                    &["JOIN", "INNER", "LEFT", "RIGHT", "FULL"],
                    " after NATURAL",
                ));
            }
            _ => {
                self.record("JOIN");
                return Ok(None);
            }
        };
        self.expect_kw(Kw::Join)?;
        Ok(Some((natural, kind)))
    }

    /// `ON condition`, `USING (cols)` or nothing, after the right side of a join.
    fn join_constraint(&mut self, natural: bool, kind: JoinKind) -> PResult<(JoinConstraint, u32)> {
        if natural || kind == JoinKind::Cross {
            if self.at_kw(Kw::On) || self.at_kw(Kw::Using) {
                return Err(self.join_condition_not_allowed(natural));
            }
            return Ok((JoinConstraint::None, 0));
        }
        if self.skip_kw(Kw::On) {
            let e = self.expr()?;
            return Ok((JoinConstraint::On(*e.e), e.h));
        }
        if self.skip_kw(Kw::Using) {
            return Ok((JoinConstraint::Using(self.ident_list(Role::Column)?), 1));
        }
        self.record("ON");
        self.record("USING");
        Ok((JoinConstraint::None, 0))
    }

    fn join_loop(
        &mut self,
        (mut left, mut h): (Box<TableRef>, u32),
    ) -> PResult<(Box<TableRef>, u32)> {
        while let Some((natural, kind)) = self.join_kind()? {
            let (right, rh) = self.table_primary()?;
            let (constraint, ch) = self.join_constraint(natural, kind)?;
            h = self.height(h.max(rh).max(ch) + 1)?;
            let span = self.extend(table_span(&left));
            left = Box::new(TableRef::Join {
                left,
                right,
                kind,
                natural,
                constraint,
                span,
            });
        }
        Ok((left, h))
    }

    fn table_primary(&mut self) -> PResult<(Box<TableRef>, u32)> {
        let first = self.tok();
        match first.kind {
            Tk::LParen => match self.paren_table()? {
                PTable::Query(q, qh) => self.derived(q, qh, first),
                PTable::Table(t, th) => Ok((t, th)),
            },
            Tk::Word(None) | Tk::Quoted => {
                let name = self.dotted_name(3, Role::Table)?;
                let alias = self.alias()?;
                let span = self.span_from(first);
                Ok((Box::new(TableRef::Table { name, alias, span }), 1))
            }
            Tk::Word(Some(_)) if self.keyword_used_as_name() => {
                Err(self.reserved_error(first, Role::Table))
            }
            _ => Err(self.expected_here(&["table name", "\"(\""], "")),
        }
    }

    /// `[AS] alias [(cols)]` after a subquery in FROM that started at `open`.
    fn derived(
        &mut self,
        query: Box<Query>,
        qh: u32,
        open: Token,
    ) -> PResult<(Box<TableRef>, u32)> {
        let alias = if self.skip_kw(Kw::As) || matches!(self.kind(), Tk::Word(None) | Tk::Quoted) {
            self.ident(Role::Alias)?
        } else {
            return Err(self.no_derived_alias());
        };
        let columns = if self.kind() == Tk::LParen {
            self.ident_list(Role::Column)?
        } else {
            Vec::new()
        };
        let h = self.height(qh + 1)?;
        let span = self.span_from(open);
        Ok((
            Box::new(TableRef::Derived {
                query,
                alias,
                columns,
                span,
            }),
            h,
        ))
    }

    /// After `(` in FROM: a query, or a parenthesised (joined) table reference.
    fn paren_table(&mut self) -> PResult<PTable> {
        self.enter()?;
        self.advance();
        let res = match self.kind() {
            Tk::Word(Some(Kw::Select | Kw::With)) => {
                let (q, h) = self.query()?;
                PTable::Query(q, h)
            }
            Tk::LParen => {
                let inner_open = self.tok();
                match self.paren_table()? {
                    PTable::Query(q, qh) => self.paren_table_after_query(inner_open, q, qh)?,
                    PTable::Table(t, th) => {
                        let (t, h) = self.join_loop((t, th))?;
                        PTable::Table(t, h)
                    }
                }
            }
            _ => {
                let (t, h) = self.table_ref()?;
                PTable::Table(t, h)
            }
        };
        self.expect(Tk::RParen)?;
        self.leave();
        Ok(res)
    }

    /// Inside `(` in FROM, after a parenthesised query that opened at `open`.
    fn paren_table_after_query(&mut self, open: Token, q: Box<Query>, qh: u32) -> PResult<PTable> {
        if self.at_query_continuation() {
            let operand = (SetExpr::Query(q), self.height(qh + 1)?);
            let (q, h) = self.query_continue(open, operand)?;
            Ok(PTable::Query(q, h))
        } else if self.kind() == Tk::RParen {
            Ok(PTable::Query(q, qh))
        } else {
            let d = self.derived(q, qh, open)?;
            let (t, h) = self.join_loop(d)?;
            Ok(PTable::Table(t, h))
        }
    }

    // ----- expressions --------------------------------------------------------------------

    fn expr(&mut self) -> PResult<Ex> {
        self.expr_bp(0, None)
    }

    /// The operator at the current token, with its binding power.
    fn infix(&self) -> Option<(u8, Infix)> {
        Some(match self.kind() {
            Tk::Word(Some(Kw::Or)) => (P_OR, Infix::Bin(BinaryOp::Or)),
            Tk::Word(Some(Kw::And)) => (P_AND, Infix::Bin(BinaryOp::And)),
            Tk::Eq
            | Tk::NotEq
            | Tk::Lt
            | Tk::LtEq
            | Tk::Gt
            | Tk::GtEq
            | Tk::Word(Some(Kw::Is | Kw::Not | Kw::Between | Kw::Like | Kw::Ilike | Kw::In)) => {
                (P_CMP, Infix::Pred)
            }
            Tk::Pipe => (P_BITOR, Infix::Bin(BinaryOp::BitOr)),
            Tk::Caret => (P_BITXOR, Infix::Bin(BinaryOp::BitXor)),
            Tk::Amp => (P_BITAND, Infix::Bin(BinaryOp::BitAnd)),
            Tk::Plus => (P_ADD, Infix::Bin(BinaryOp::Add)),
            Tk::Minus => (P_ADD, Infix::Bin(BinaryOp::Sub)),
            Tk::Concat => (P_ADD, Infix::Bin(BinaryOp::Concat)),
            Tk::Star => (P_MUL, Infix::Bin(BinaryOp::Mul)),
            Tk::Slash => (P_MUL, Infix::Bin(BinaryOp::Div)),
            _ => return None,
        })
    }

    /// Precedence climbing over operators binding at least as tight as `min`. The loop takes
    /// any number of operators; recursion is only for the right operand of a tighter operator
    /// (bounded by the number of levels) and for prefix operators and parentheses (counted).
    /// `first`, when given, is an already parsed first operand.
    fn expr_bp(&mut self, min: u8, first: Option<Ex>) -> PResult<Ex> {
        let mut left = match first {
            Some(e) => e,
            None => self.prefix(min)?,
        };
        // Operands of a run of the associative operator `run_op` that follow `left`.
        let mut run: Vec<Ex> = Vec::new();
        let mut run_op = BinaryOp::Or;
        let mut had_pred = false;
        while let Some((prec, infix)) = self.infix() {
            if prec < min {
                break;
            }
            let same_run = matches!(infix, Infix::Bin(op) if op == run_op);
            if !run.is_empty() && !same_run {
                left = self.balanced(run_op, left, std::mem::take(&mut run))?;
            }
            match infix {
                Infix::Pred => {
                    if had_pred {
                        return Err(self.chained_predicate());
                    }
                    left = self.predicate(left)?;
                    had_pred = true;
                }
                Infix::Bin(op) => {
                    self.advance();
                    let right = self.expr_bp(prec + 1, None)?;
                    if associative(op) {
                        run_op = op;
                        run.push(right);
                    } else {
                        left = self.bin(op, left, right)?;
                    }
                }
            }
        }
        if !run.is_empty() {
            left = self.balanced(run_op, left, run)?;
        }
        Ok(left)
    }

    fn bin(&self, op: BinaryOp, l: Ex, r: Ex) -> PResult<Ex> {
        let span = cover(l.e.span, r.e.span);
        let h = l.h.max(r.h) + 1;
        self.ex(
            ExprKind::Binary {
                op,
                left: l.e,
                right: r.e,
            },
            span,
            h,
        )
    }

    /// Joins `first` and `rest` (in order) with `op` into a balanced tree.
    fn balanced(&self, op: BinaryOp, first: Ex, rest: Vec<Ex>) -> PResult<Ex> {
        let mut v = Vec::with_capacity(rest.len() + 1);
        v.push(first);
        v.extend(rest);
        while v.len() > 1 {
            let mut next = Vec::with_capacity(v.len().div_ceil(2));
            let mut it = v.into_iter();
            while let Some(a) = it.next() {
                match it.next() {
                    Some(b) => next.push(self.bin(op, a, b)?),
                    None => next.push(a),
                }
            }
            v = next;
        }
        Ok(v.pop().expect("one operand at least"))
    }

    /// A prefix operator and its operand, or a primary.
    fn prefix(&mut self, min: u8) -> PResult<Ex> {
        let t = self.tok();
        let (op, prec) = match t.kind {
            Tk::Word(Some(Kw::Not)) if min <= P_NOT => (UnaryOp::Not, P_NOT),
            Tk::Minus => (UnaryOp::Neg, P_UNARY),
            Tk::Plus => (UnaryOp::Plus, P_UNARY),
            Tk::Tilde => (UnaryOp::BitNot, P_UNARY),
            _ => return self.primary(),
        };
        self.enter()?;
        self.advance();
        let inner = self.expr_bp(prec, None)?;
        self.leave();
        let span = cover(span_of(t), inner.e.span);
        let h = inner.h + 1;
        self.ex(ExprKind::Unary { op, expr: inner.e }, span, h)
    }

    /// A comparison or predicate with `left` as its first operand.
    fn predicate(&mut self, left: Ex) -> PResult<Ex> {
        let negated = self.skip_kw(Kw::Not);
        match self.kind() {
            Tk::Word(Some(Kw::Is)) if !negated => self.pred_is(left),
            Tk::Word(Some(Kw::Between)) => self.pred_between(left, negated),
            Tk::Word(Some(k @ (Kw::Like | Kw::Ilike))) => self.pred_like(left, negated, k),
            Tk::Word(Some(Kw::In)) => self.pred_in(left, negated),
            _ if negated => {
                Err(self.expected_here(&["BETWEEN", "LIKE", "ILIKE", "IN"], " after NOT"))
            }
            _ => self.pred_compare(left),
        }
    }

    fn pred_compare(&mut self, left: Ex) -> PResult<Ex> {
        let op = match self.advance().kind {
            Tk::Eq => BinaryOp::Eq,
            Tk::NotEq => BinaryOp::NotEq,
            Tk::Lt => BinaryOp::Lt,
            Tk::LtEq => BinaryOp::LtEq,
            Tk::Gt => BinaryOp::Gt,
            _ => BinaryOp::GtEq,
        };
        let quantifier = match self.kind() {
            Tk::Word(Some(Kw::Any | Kw::Some)) => Quantifier::Any,
            Tk::Word(Some(Kw::All)) => Quantifier::All,
            _ => {
                let right = self.expr_bp(P_BITOR, None)?;
                return self.bin(op, left, right);
            }
        };
        self.advance();
        let (q, qh) = self.subquery_parens()?;
        let span = self.extend(left.e.span);
        let h = left.h.max(qh + 1) + 1;
        self.ex(
            ExprKind::Quantified {
                expr: left.e,
                op,
                quantifier,
                query: q,
            },
            span,
            h,
        )
    }

    fn pred_is(&mut self, left: Ex) -> PResult<Ex> {
        self.advance();
        let negated = self.skip_kw(Kw::Not);
        self.expect_kw(Kw::Null)?;
        let span = self.extend(left.e.span);
        let h = left.h + 1;
        self.ex(
            ExprKind::IsNull {
                expr: left.e,
                negated,
            },
            span,
            h,
        )
    }

    fn pred_between(&mut self, left: Ex, negated: bool) -> PResult<Ex> {
        self.advance();
        let low = self.expr_bp(P_BITOR, None)?;
        self.expect_kw(Kw::And)?;
        let high = self.expr_bp(P_BITOR, None)?;
        let span = cover(left.e.span, high.e.span);
        let h = left.h.max(low.h).max(high.h) + 1;
        self.ex(
            ExprKind::Between {
                expr: left.e,
                low: low.e,
                high: high.e,
                negated,
            },
            span,
            h,
        )
    }

    fn pred_like(&mut self, left: Ex, negated: bool, k: Kw) -> PResult<Ex> {
        self.advance();
        let pattern = self.expr_bp(P_BITOR, None)?;
        let span = cover(left.e.span, pattern.e.span);
        let h = left.h.max(pattern.h) + 1;
        self.ex(
            ExprKind::Like {
                expr: left.e,
                pattern: pattern.e,
                negated,
                case_insensitive: k == Kw::Ilike,
            },
            span,
            h,
        )
    }

    fn pred_in(&mut self, left: Ex, negated: bool) -> PResult<Ex> {
        self.advance();
        if self.kind() != Tk::LParen {
            return Err(self.expected_here(&["\"(\""], " after IN"));
        }
        let lspan = left.e.span;
        let (kind, h) = match self.paren_expr(true)? {
            PExpr::Query(q, qh) => (
                ExprKind::InSubquery {
                    expr: left.e,
                    query: q,
                    negated,
                },
                left.h.max(qh + 1),
            ),
            PExpr::List(list, lh) => (
                ExprKind::InList {
                    expr: left.e,
                    list,
                    negated,
                },
                left.h.max(lh),
            ),
            // Not produced when lists are allowed; a one-item list all the same.
            PExpr::Expr(e, _) => (
                ExprKind::InList {
                    expr: left.e,
                    list: vec![*e.e],
                    negated,
                },
                left.h.max(e.h),
            ),
        };
        let span = self.extend(lspan);
        self.ex(kind, span, h + 1)
    }

    fn primary(&mut self) -> PResult<Ex> {
        let t = self.tok();
        match t.kind {
            Tk::Int | Tk::Decimal | Tk::Hex | Tk::Str => self.literal(t),
            Tk::LParen => self.paren_primary(t),
            Tk::Word(None) if self.nth(1) == Tk::LParen => self.function_call(),
            Tk::Word(None) | Tk::Quoted => self.column_ref(),
            Tk::Word(Some(kw)) => self.keyword_primary(t, kw),
            _ => Err(self.expected_here(&["expression"], "")),
        }
    }

    fn literal(&mut self, t: Token) -> PResult<Ex> {
        self.advance();
        let s = self.text_of(t);
        let l = match t.kind {
            Tk::Int => match s.parse::<i64>() {
                Ok(v) => Literal::Integer(v),
                Err(_) => Literal::Float(s.parse().unwrap_or(f64::INFINITY), s.to_string()),
            },
            Tk::Hex => match u64::from_str_radix(&s[2..], 16) {
                // Two's complement: 0xFFFFFFFFFFFFFFFF is -1.
                Ok(v) => Literal::Integer(v as i64),
                Err(_) => {
                    return Err(self.error_at(
                        t,
                        format!("hexadecimal literal {s} does not fit in 64 bits"),
                        &[],
                    ));
                }
            },
            Tk::Str => Literal::String(lexer::string_value(s)),
            _ => Literal::Float(s.parse().unwrap_or(f64::NAN), s.to_string()),
        };
        self.ex(ExprKind::Literal(l), span_of(t), 1)
    }

    fn keyword_primary(&mut self, t: Token, kw: Kw) -> PResult<Ex> {
        let lit = match kw {
            Kw::Null => Literal::Null,
            Kw::True => Literal::Boolean(true),
            Kw::False => Literal::Boolean(false),
            Kw::Case => return self.case_expr(),
            Kw::Cast => return self.cast_expr(),
            Kw::Exists => return self.exists(),
            Kw::Count if self.nth(1) == Tk::LParen => return self.function_call(),
            // e.g. LEFT( … ): a reserved word that is no ADQL function.
            _ if self.nth(1) == Tk::LParen => return Err(self.reserved_error(t, Role::Function)),
            _ if self.keyword_used_as_name() => return Err(self.reserved_error(t, Role::Column)),
            _ => return Err(self.expected_here(&["expression"], "")),
        };
        self.advance();
        self.ex(ExprKind::Literal(lit), span_of(t), 1)
    }

    fn exists(&mut self) -> PResult<Ex> {
        let t = self.advance();
        let (q, qh) = self.subquery_parens()?;
        let span = self.span_from(t);
        self.ex(ExprKind::Exists(q), span, qh + 1)
    }

    /// `(` where an operand starts: a scalar subquery or a parenthesised expression.
    fn paren_primary(&mut self, open: Token) -> PResult<Ex> {
        let (kind, span, h) = match self.paren_expr(false)? {
            PExpr::Query(q, qh) => (ExprKind::Subquery(q), self.span_from(open), qh),
            PExpr::Expr(inner, span) => (ExprKind::Nested(inner.e), span, inner.h),
            // Not produced without lists; the single expression all the same.
            PExpr::List(mut list, h) => {
                let e = list.pop().expect("one item at least");
                (ExprKind::Nested(Box::new(e)), self.span_from(open), h)
            }
        };
        self.ex(kind, span, h + 1)
    }

    /// After `(` where an expression may start: a query, an expression, or (after IN, when
    /// `allow_list`) a list of expressions; up to and including `)`.
    fn paren_expr(&mut self, allow_list: bool) -> PResult<PExpr> {
        let open = self.tok();
        self.enter()?;
        self.advance();
        let res = match self.kind() {
            Tk::Word(Some(Kw::Select | Kw::With)) => self.paren_query(),
            Tk::LParen => {
                let inner_open = self.tok();
                match self.paren_expr(false) {
                    Ok(inner) => self.paren_expr_after_paren(open, inner_open, inner, allow_list),
                    Err(e) => Err(e),
                }
            }
            _ => self.paren_expr_rest(open, None, allow_list),
        };
        self.leave();
        res
    }

    /// `query )` inside parentheses.
    fn paren_query(&mut self) -> PResult<PExpr> {
        let (q, h) = self.query()?;
        self.expect(Tk::RParen)?;
        Ok(PExpr::Query(q, h))
    }

    /// Inside `(` (opened at `open`) after a parenthesised `inner` that opened at `inner_open`.
    fn paren_expr_after_paren(
        &mut self,
        open: Token,
        inner_open: Token,
        inner: PExpr,
        allow_list: bool,
    ) -> PResult<PExpr> {
        let first = match inner {
            PExpr::Query(q, qh) => {
                if self.at_query_continuation() {
                    let operand = (SetExpr::Query(q), self.height(qh + 1)?);
                    let (q, h) = self.query_continue(inner_open, operand)?;
                    self.expect(Tk::RParen)?;
                    return Ok(PExpr::Query(q, h));
                }
                if self.kind() == Tk::RParen {
                    self.advance();
                    return Ok(PExpr::Query(q, qh));
                }
                let span = self.span_from(inner_open);
                self.ex(ExprKind::Subquery(q), span, qh + 1)?
            }
            PExpr::Expr(e, span) => self.ex(ExprKind::Nested(e.e), span, e.h + 1)?,
            PExpr::List(mut list, h) => {
                let e = list.pop().expect("one item at least");
                let span = self.span_from(inner_open);
                self.ex(ExprKind::Nested(Box::new(e)), span, h + 1)?
            }
        };
        self.paren_expr_rest(open, Some(first), allow_list)
    }

    /// The rest of a parenthesised expression (or list) up to and including `)`.
    fn paren_expr_rest(
        &mut self,
        open: Token,
        first: Option<Ex>,
        allow_list: bool,
    ) -> PResult<PExpr> {
        let e = self.expr_bp(0, first)?;
        if !allow_list {
            self.expect(Tk::RParen)?;
            return Ok(PExpr::Expr(e, self.span_from(open)));
        }
        let mut h = e.h;
        let mut list = vec![*e.e];
        while self.eat(Tk::Comma) {
            let e = self.expr()?;
            h = h.max(e.h);
            list.push(*e.e);
        }
        self.expect(Tk::RParen)?;
        Ok(PExpr::List(list, h))
    }

    /// `name(args)`; the name is a non-reserved identifier or an ADQL function.
    fn function_call(&mut self) -> PResult<Ex> {
        let name_tok = self.tok();
        let name = self.text_of(name_tok);
        if name_tok.reserved && !name_tok.function {
            return Err(self.reserved_error(name_tok, Role::Function));
        }
        self.advance();
        self.enter()?;
        self.advance(); // "("
        if name_tok.kind == Tk::Word(Some(Kw::Count)) && self.kind() == Tk::Star {
            self.advance();
            self.expect(Tk::RParen)?;
            self.leave();
            let span = self.span_from(name_tok);
            return self.ex(ExprKind::CountStar, span, 1);
        }
        let aggregate = lexer::is_aggregate(name);
        let distinct = aggregate && self.skip_kw(Kw::Distinct);
        if aggregate && !distinct {
            self.skip_kw(Kw::All);
        }
        let (args, h) = if self.kind() != Tk::RParen || aggregate {
            self.arguments()?
        } else {
            (Vec::new(), 0)
        };
        self.expect(Tk::RParen)?;
        self.leave();
        let span = self.span_from(name_tok);
        let name = Ident {
            name: name.to_string(),
            delimited: false,
            span: span_of(name_tok),
        };
        self.ex(
            ExprKind::Function {
                name,
                args,
                distinct,
            },
            span,
            h + 1,
        )
    }

    /// `expression, …`.
    fn arguments(&mut self) -> PResult<(Vec<Expr>, u32)> {
        let mut args = Vec::new();
        let mut h = 0;
        loop {
            let e = self.expr()?;
            h = h.max(e.h);
            args.push(*e.e);
            if !self.eat(Tk::Comma) {
                return Ok((args, h));
            }
        }
    }

    fn column_ref(&mut self) -> PResult<Ex> {
        let first = self.tok();
        let parts = self.dotted_name(4, Role::Column)?;
        let span = self.span_from(first);
        self.ex(ExprKind::Column(parts), span, 1)
    }

    fn case_expr(&mut self) -> PResult<Ex> {
        let first = self.tok();
        self.enter()?;
        self.advance();
        let mut h = 0;
        let operand = if self.at_kw(Kw::When) {
            None
        } else {
            let e = self.expr()?;
            h = e.h;
            Some(e.e)
        };
        let mut whens = Vec::new();
        while self.eat_kw(Kw::When) {
            let c = self.expr()?;
            self.expect_kw(Kw::Then)?;
            let r = self.expr()?;
            h = h.max(c.h).max(r.h);
            whens.push((*c.e, *r.e));
        }
        if whens.is_empty() {
            return Err(self.unexpected(" in CASE"));
        }
        let else_result = if self.eat_kw(Kw::Else) {
            let e = self.expr()?;
            h = h.max(e.h);
            Some(e.e)
        } else {
            None
        };
        self.expect_kw(Kw::End)?;
        self.leave();
        let span = self.span_from(first);
        self.ex(
            ExprKind::Case {
                operand,
                whens,
                else_result,
            },
            span,
            h + 1,
        )
    }

    fn cast_expr(&mut self) -> PResult<Ex> {
        let first = self.tok();
        self.enter()?;
        self.advance();
        self.expect(Tk::LParen)?;
        let e = self.expr()?;
        self.expect_kw(Kw::As)?;
        let to = self.cast_type()?;
        self.expect(Tk::RParen)?;
        self.leave();
        let span = self.span_from(first);
        let h = e.h + 1;
        self.ex(ExprKind::Cast { expr: e.e, to }, span, h)
    }

    fn cast_type(&mut self) -> PResult<CastType> {
        const TYPES: [&str; 11] = [
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "REAL",
            "DOUBLE PRECISION",
            "CHAR",
            "VARCHAR",
            "TIMESTAMP",
            "POINT",
            "CIRCLE",
            "POLYGON",
        ];
        let t = self.tok();
        let word = if matches!(t.kind, Tk::Word(_)) {
            self.text_of(t)
        } else {
            ""
        };
        let is = |w: &str| word.eq_ignore_ascii_case(w);
        let ty = if is("SMALLINT") {
            CastType::SmallInt
        } else if is("INTEGER") {
            CastType::Integer
        } else if is("BIGINT") {
            CastType::BigInt
        } else if is("REAL") {
            CastType::Real
        } else if is("DOUBLE") {
            self.advance();
            let p = self.tok();
            if !(matches!(p.kind, Tk::Word(_)) && self.text_of(p).eq_ignore_ascii_case("PRECISION"))
            {
                return Err(self.error_at(
                    p,
                    format!("unexpected {} after DOUBLE", self.describe(p)),
                    &["PRECISION"],
                ));
            }
            CastType::Double
        } else if is("CHAR") || is("VARCHAR") {
            self.advance();
            let len = if self.kind() == Tk::LParen {
                Some(self.char_length(is("VARCHAR"))?)
            } else {
                None
            };
            return Ok(if is("VARCHAR") {
                CastType::VarChar(len)
            } else {
                CastType::Char(len)
            });
        } else if is("TIMESTAMP") {
            CastType::Timestamp
        } else if is("POINT") {
            CastType::Point
        } else if is("CIRCLE") {
            CastType::Circle
        } else if is("POLYGON") {
            CastType::Polygon
        } else {
            return Err(self.error_at(
                t,
                format!("unexpected {}: not a CAST target type", self.describe(t)),
                &TYPES,
            ));
        };
        self.advance();
        Ok(ty)
    }

    /// `(n)` after CHAR or VARCHAR.
    fn char_length(&mut self, var: bool) -> PResult<u32> {
        self.advance();
        let n = self.tok();
        let v = if n.kind == Tk::Int {
            self.text_of(n).parse::<u32>().ok()
        } else {
            None
        };
        match v {
            Some(v) if v > 0 => {
                self.advance();
                self.expect(Tk::RParen)?;
                Ok(v)
            }
            _ => Err(self.error_at(
                n,
                format!(
                    "unexpected {}: a {} length is a positive integer",
                    self.describe(n),
                    if var { "VARCHAR" } else { "CHAR" }
                ),
                &["length"],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_parse(text: &str) -> Result<Query, SyntaxError> {
        parse(text, &ParseLimits::default())
    }

    #[track_caller]
    fn p(text: &str) -> Query {
        try_parse(text).unwrap_or_else(|e| panic!("{text}\n{e}"))
    }

    #[track_caller]
    fn err(text: &str) -> SyntaxError {
        match try_parse(text) {
            Ok(q) => panic!("{text} parsed: {q:?}"),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn sel(q: &Query) -> &Select {
        match &q.body {
            SetExpr::Select(s) => s,
            other => panic!("not a select: {other:?}"),
        }
    }

    /// The WHERE condition of `SELECT a FROM t WHERE <cond>`, printed.
    #[track_caller]
    fn cond(c: &str) -> String {
        let q = p(&format!("SELECT a FROM t WHERE {c}"));
        show(sel(&q).selection.as_ref().expect("where"))
    }

    /// The first select item of `SELECT <item> FROM t`, printed.
    #[track_caller]
    fn item(i: &str) -> String {
        let q = p(&format!("SELECT {i} FROM t"));
        match &sel(&q).items[0] {
            SelectItem::Expr { expr, .. } => show(expr),
            other => panic!("{other:?}"),
        }
    }

    fn names(parts: &[Ident]) -> String {
        parts
            .iter()
            .map(|i| {
                if i.delimited {
                    format!("\"{}\"", i.name)
                } else {
                    i.name.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    fn show_query(q: &Query) -> String {
        let mut s = String::new();
        if !q.with.is_empty() {
            s.push_str("WITH ");
            for c in &q.with {
                s.push_str(&format!("{} AS {} ", c.name.name, show_query(&c.query)));
            }
        }
        s.push_str(&show_set(&q.body));
        if !q.order_by.is_empty() {
            let items: Vec<String> = q
                .order_by
                .iter()
                .map(|o| format!("{}{}", show(&o.expr), if o.desc { " DESC" } else { "" }))
                .collect();
            s.push_str(&format!(" ORDER BY {}", items.join(", ")));
        }
        if let Some(o) = q.offset {
            s.push_str(&format!(" OFFSET {o}"));
        }
        format!("{{{s}}}")
    }

    fn show_set(b: &SetExpr) -> String {
        match b {
            SetExpr::Select(s) => {
                let items: Vec<String> = s
                    .items
                    .iter()
                    .map(|i| match i {
                        SelectItem::Wildcard(_) => "*".to_string(),
                        SelectItem::QualifiedWildcard(p, _) => format!("{}.*", names(p)),
                        SelectItem::Expr { expr, alias } => match alias {
                            Some(a) => {
                                format!("{} AS {}", show(expr), names(std::slice::from_ref(a)))
                            }
                            None => show(expr),
                        },
                    })
                    .collect();
                let from: Vec<String> = s.from.iter().map(show_table).collect();
                let mut out = format!("SELECT {} FROM {}", items.join(", "), from.join(", "));
                if let Some(w) = &s.selection {
                    out.push_str(&format!(" WHERE {}", show(w)));
                }
                out
            }
            SetExpr::SetOp {
                op,
                all,
                left,
                right,
            } => format!(
                "({} {:?}{} {})",
                show_set(left),
                op,
                if *all { " ALL" } else { "" },
                show_set(right)
            ),
            SetExpr::Query(q) => show_query(q),
        }
    }

    fn show_table(t: &TableRef) -> String {
        match t {
            TableRef::Table { name, alias, .. } => match alias {
                Some(a) => format!("{} {}", names(name), a.name),
                None => names(name),
            },
            TableRef::Derived {
                query,
                alias,
                columns,
                ..
            } => {
                format!(
                    "{} {}{}",
                    show_query(query),
                    alias.name,
                    if columns.is_empty() {
                        String::new()
                    } else {
                        format!("({})", names(columns).replace('.', ","))
                    }
                )
            }
            TableRef::Join {
                left,
                right,
                kind,
                natural,
                constraint,
                ..
            } => {
                let c = match constraint {
                    JoinConstraint::None => String::new(),
                    JoinConstraint::On(e) => format!(" ON {}", show(e)),
                    JoinConstraint::Using(cols) => {
                        format!(" USING {}", names(cols).replace('.', ","))
                    }
                };
                format!(
                    "({} {}{:?} {}{c})",
                    show_table(left),
                    if *natural { "NATURAL " } else { "" },
                    kind,
                    show_table(right)
                )
            }
        }
    }

    fn show(e: &Expr) -> String {
        let op = |o: &BinaryOp| match o {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Concat => "||",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
        };
        let not = |n: bool| if n { "NOT " } else { "" };
        let list = |v: &[Expr]| v.iter().map(show).collect::<Vec<_>>().join(", ");
        match &e.kind {
            ExprKind::Column(p) => names(p),
            ExprKind::Literal(l) => match l {
                Literal::Integer(i) => i.to_string(),
                Literal::Float(_, t) => format!("{t}f"),
                Literal::String(s) => format!("'{s}'"),
                Literal::Null => "NULL".into(),
                Literal::Boolean(b) => b.to_string().to_uppercase(),
            },
            ExprKind::Unary { op, expr } => {
                let o = match op {
                    UnaryOp::Neg => "-",
                    UnaryOp::Plus => "+",
                    UnaryOp::BitNot => "~",
                    UnaryOp::Not => "NOT ",
                };
                format!("({o}{})", show(expr))
            }
            ExprKind::Binary { op: o, left, right } => {
                format!("({} {} {})", show(left), op(o), show(right))
            }
            ExprKind::IsNull { expr, negated } => {
                format!("({} IS {}NULL)", show(expr), not(*negated))
            }
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => format!(
                "({} {}BETWEEN {} AND {})",
                show(expr),
                not(*negated),
                show(low),
                show(high)
            ),
            ExprKind::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => format!(
                "({} {}{} {})",
                show(expr),
                not(*negated),
                if *case_insensitive { "ILIKE" } else { "LIKE" },
                show(pattern)
            ),
            ExprKind::InList {
                expr,
                list: l,
                negated,
            } => {
                format!("({} {}IN [{}])", show(expr), not(*negated), list(l))
            }
            ExprKind::InSubquery {
                expr,
                query,
                negated,
            } => {
                format!("({} {}IN {})", show(expr), not(*negated), show_query(query))
            }
            ExprKind::Exists(q) => format!("EXISTS {}", show_query(q)),
            ExprKind::Subquery(q) => show_query(q),
            ExprKind::Quantified {
                expr,
                op: o,
                quantifier,
                query,
            } => format!(
                "({} {} {:?} {})",
                show(expr),
                op(o),
                quantifier,
                show_query(query)
            ),
            ExprKind::Case {
                operand,
                whens,
                else_result,
            } => {
                let mut s = "CASE".to_string();
                if let Some(o) = operand {
                    s.push_str(&format!(" {}", show(o)));
                }
                for (w, t) in whens {
                    s.push_str(&format!(" WHEN {} THEN {}", show(w), show(t)));
                }
                if let Some(e) = else_result {
                    s.push_str(&format!(" ELSE {}", show(e)));
                }
                s + " END"
            }
            ExprKind::Cast { expr, to } => format!("CAST({} AS {to:?})", show(expr)),
            ExprKind::Function {
                name,
                args,
                distinct,
            } => format!(
                "{}({}{})",
                name.name,
                if *distinct { "DISTINCT " } else { "" },
                list(args)
            ),
            ExprKind::CountStar => "COUNT(*)".into(),
            ExprKind::Nested(e) => format!("[{}]", show(e)),
        }
    }

    const CONE: &str = "SELECT TOP 10 hip, ra, dec FROM hipparcos.hip2 WHERE 1=CONTAINS(POINT('ICRS', \
                        ra, dec), CIRCLE('ICRS', 101.287, -16.716, 1)) ORDER BY hip";

    // ----- whole queries ------------------------------------------------------------------

    #[test]
    fn cone_query() {
        let q = p(CONE);
        assert_eq!(
            show_query(&q),
            "{SELECT hip, ra, dec FROM hipparcos.hip2 WHERE (1 = CONTAINS(POINT('ICRS', ra, dec), \
             CIRCLE('ICRS', 101.287f, (-16.716f), 1))) ORDER BY hip}"
        );
        let s = sel(&q);
        assert_eq!(s.top, Some(10));
        assert!(!s.distinct);
        assert_eq!(
            q.span,
            Span {
                start: 0,
                end: CONE.len(),
                line: 1,
                column: 1
            }
        );
        assert_eq!(s.span.end, CONE.find(" ORDER").unwrap());
        let TableRef::Table { name, alias, span } = &s.from[0] else {
            panic!()
        };
        assert_eq!(names(name), "hipparcos.hip2");
        assert!(alias.is_none());
        assert_eq!(&CONE[span.start..span.end], "hipparcos.hip2");
        // Function names keep their spelling and are not delimited.
        let Some(Expr {
            kind: ExprKind::Binary { right, .. },
            ..
        }) = &s.selection
        else {
            panic!()
        };
        let ExprKind::Function {
            name,
            args,
            distinct,
        } = &right.kind
        else {
            panic!()
        };
        assert_eq!(
            (name.name.as_str(), name.delimited, args.len(), *distinct),
            ("CONTAINS", false, 2, false)
        );
        assert_eq!(
            &CONE[right.span.start..right.span.end],
            &CONE[CONE.find("CONTAINS").unwrap()..CONE.find(" ORDER").unwrap()]
        );
    }

    #[test]
    fn select_clause_forms() {
        let q = p("SELECT DISTINCT TOP 5 * FROM t");
        assert!(sel(&q).distinct);
        assert_eq!(sel(&q).top, Some(5));
        assert!(matches!(
            sel(&q).items[..],
            [SelectItem::Wildcard(Span {
                start: 22,
                end: 23,
                ..
            })]
        ));
        assert!(!sel(&p("SELECT ALL a FROM t")).distinct);
        assert_eq!(
            show_query(&p(
                "SELECT t.*, s.t.*, c.s.t.*, \"T\".* , a x, b AS y, c \"Z z\" FROM t"
            )),
            "{SELECT t.*, s.t.*, c.s.t.*, \"T\".*, a AS x, b AS y, c AS \"Z z\" FROM t}"
        );
        // A bare `*` mixed with items is accepted.
        assert_eq!(show_query(&p("select *, a from t")), "{SELECT *, a FROM t}");
        let e = err("SELECT TOP 5 DISTINCT a FROM t");
        assert!(e.message.contains("must come before TOP"), "{}", e.message);
        assert_eq!(e.column, 14);
        let e = err("SELECT TOP x FROM t");
        assert!(e.message.contains("after TOP"), "{}", e.message);
        assert_eq!(e.expected, vec!["unsigned integer"]);
        let e = err("SELECT TOP 99999999999999999999 a FROM t");
        assert!(e.message.contains("too large"), "{}", e.message);
        let e = err("SELECT a.b.c.d.* FROM t");
        assert!(e.message.contains("at most 3"), "{}", e.message);
        let e = err("SELECT a FROM t WHERE t.* = 1");
        assert!(
            e.message.contains("only allowed in the SELECT list"),
            "{}",
            e.message
        );
    }

    #[test]
    fn from_tables_and_aliases() {
        assert_eq!(
            show_query(&p("SELECT a FROM t, s.u AS x, c.s.v y, \"Odd\".\"T\" z")),
            "{SELECT a FROM t, s.u x, c.s.v y, \"Odd\".\"T\" z}"
        );
        let e = err("SELECT a FROM a.b.c.d");
        assert!(e.message.contains("too many parts"), "{}", e.message);
        assert_eq!(e.column, 21);
        let e = err("SELECT a FROM");
        assert_eq!(e.message, "unexpected end of query");
        assert_eq!(e.expected, vec!["table name", "\"(\""]);
        let e = err("SELECT a FROM t AS");
        assert_eq!(e.expected, vec!["alias"]);
        let e = err("SELECT a FROM t AS WHERE");
        assert!(
            e.message
                .starts_with("reserved word \"WHERE\" cannot be an alias"),
            "{}",
            e.message
        );
    }

    #[test]
    fn joins() {
        let j = |from: &str| {
            let q = p(&format!("SELECT a FROM {from}"));
            show_table(&sel(&q).from[0])
        };
        assert_eq!(j("a JOIN b ON a.x = b.x"), "(a Inner b ON (a.x = b.x))");
        assert_eq!(j("a INNER JOIN b USING (x, y)"), "(a Inner b USING x,y)");
        assert_eq!(j("a LEFT JOIN b ON p"), "(a Left b ON p)");
        assert_eq!(j("a LEFT OUTER JOIN b ON p"), "(a Left b ON p)");
        assert_eq!(j("a RIGHT OUTER JOIN b ON p"), "(a Right b ON p)");
        assert_eq!(j("a FULL JOIN b ON p"), "(a Full b ON p)");
        assert_eq!(j("a CROSS JOIN b"), "(a Cross b)");
        assert_eq!(j("a NATURAL JOIN b"), "(a NATURAL Inner b)");
        assert_eq!(j("a NATURAL LEFT OUTER JOIN b"), "(a NATURAL Left b)");
        // The ADQL BNF makes the join specification optional.
        assert_eq!(j("a JOIN b"), "(a Inner b)");
        // Left-deep chains and parentheses.
        assert_eq!(
            j("a x JOIN b y ON p JOIN c z USING (k)"),
            "((a x Inner b y ON p) Inner c z USING k)"
        );
        assert_eq!(
            j("a JOIN (b JOIN c ON q) ON p"),
            "(a Inner (b Inner c ON q) ON p)"
        );
        assert_eq!(
            j("(a JOIN b ON p) JOIN c ON q"),
            "((a Inner b ON p) Inner c ON q)"
        );
        assert_eq!(
            j("((a JOIN b ON p)) CROSS JOIN c"),
            "((a Inner b ON p) Cross c)"
        );
        let e = err("SELECT a FROM a NATURAL JOIN b ON p");
        assert!(e.message.contains("NATURAL JOIN takes no"), "{}", e.message);
        let e = err("SELECT a FROM a CROSS JOIN b USING (x)");
        assert!(e.message.contains("CROSS JOIN takes no"), "{}", e.message);
        let e = err("SELECT a FROM a NATURAL b");
        assert_eq!(e.expected, vec!["JOIN", "INNER", "LEFT", "RIGHT", "FULL"]);
        let e = err("SELECT a FROM a LEFT b");
        assert_eq!(e.expected, vec!["JOIN"]);

        let text = "SELECT a FROM t1 AS x\n  JOIN t2 AS y ON x.id = y.id";
        let q = p(text);
        let TableRef::Join {
            span, left, right, ..
        } = &sel(&q).from[0]
        else {
            panic!()
        };
        assert_eq!(
            (span.start, span.end, span.line, span.column),
            (14, text.len(), 1, 15)
        );
        assert_eq!(table_span(right).line, 2);
        assert_eq!(table_span(left).end, 21);
    }

    #[test]
    fn derived_tables() {
        let j = |from: &str| {
            let q = p(&format!("SELECT a FROM {from}"));
            show_table(&sel(&q).from[0])
        };
        assert_eq!(j("(SELECT a FROM t) AS s"), "{SELECT a FROM t} s");
        assert_eq!(
            j("(SELECT a, b FROM t) s (x, y)"),
            "{SELECT a, b FROM t} s(x,y)"
        );
        assert_eq!(
            j("((SELECT a FROM t) UNION (SELECT b FROM u)) AS s"),
            "{({SELECT a FROM t} Union {SELECT b FROM u})} s"
        );
        assert_eq!(j("((SELECT a FROM t)) s"), "{SELECT a FROM t} s");
        assert_eq!(
            j("((SELECT a FROM t) AS s JOIN u ON p)"),
            "({SELECT a FROM t} s Inner u ON p)"
        );
        assert_eq!(
            j(
                "(SELECT a FROM t ORDER BY a OFFSET 3) s JOIN (WITH w AS (SELECT 1 FROM v) SELECT * FROM w) r ON p"
            ),
            "({SELECT a FROM t ORDER BY a OFFSET 3} s Inner {WITH w AS {SELECT 1 FROM v} SELECT * FROM w} r ON p)"
        );
        let e = err("SELECT a FROM (SELECT a FROM t) WHERE a > 1");
        assert!(e.message.contains("needs a name"), "{}", e.message);
        assert_eq!(e.column, 33);
        let q = p("SELECT a FROM (SELECT a FROM t) AS s");
        let TableRef::Derived { span, query, .. } = &sel(&q).from[0] else {
            panic!()
        };
        assert_eq!((span.start, span.end), (14, 36));
        assert_eq!((query.span.start, query.span.end), (15, 30));
    }

    #[test]
    fn clauses_and_offset() {
        let q = p(
            "SELECT a, COUNT(*) AS n FROM t WHERE b > 0 GROUP BY a, c + 1 HAVING COUNT(*) > 2 \
                   ORDER BY n DESC, 1, a ASC OFFSET 20",
        );
        let s = sel(&q);
        assert_eq!(
            s.group_by.iter().map(show).collect::<Vec<_>>(),
            ["a", "(c + 1)"]
        );
        assert_eq!(show(s.having.as_ref().unwrap()), "(COUNT(*) > 2)");
        assert_eq!(
            q.order_by
                .iter()
                .map(|o| (show(&o.expr), o.desc))
                .collect::<Vec<_>>(),
            [
                ("n".to_string(), true),
                ("1".to_string(), false),
                ("a".to_string(), false)
            ]
        );
        assert!(matches!(
            q.order_by[1].expr.kind,
            ExprKind::Literal(Literal::Integer(1))
        ));
        assert_eq!(q.offset, Some(20));
        assert_eq!(p("SELECT a FROM t OFFSET 0").offset, Some(0));
        let e = err("SELECT a FROM t OFFSET 5 ORDER BY a");
        assert_eq!(e.message, "unexpected \"ORDER\"");
        let e = err("SELECT a FROM t ORDER BY a WHERE b = 1");
        assert_eq!(e.message, "unexpected \"WHERE\"");
        assert_eq!(
            e.expected,
            vec!["ASC", "DESC", "\",\"", "OFFSET", "\";\"", "end of query"]
        );
        let e = err("SELECT a FROM t GROUP a");
        assert_eq!(e.expected, vec!["BY"]);
    }

    #[test]
    fn set_operations() {
        let s = |t: &str| show_query(&p(t));
        assert_eq!(
            s("SELECT a FROM t UNION SELECT b FROM u INTERSECT SELECT c FROM v"),
            "{({SELECT a FROM t} Union ({SELECT b FROM u} Intersect {SELECT c FROM v}))}"
                .replace("{SELECT", "SELECT")
                .replace("t}", "t")
                .replace("u}", "u")
                .replace("v}", "v")
        );
        assert_eq!(
            s("SELECT a FROM t EXCEPT ALL SELECT b FROM u UNION SELECT c FROM v"),
            "{((SELECT a FROM t Except ALL SELECT b FROM u) Union SELECT c FROM v)}"
        );
        assert_eq!(
            s("SELECT a FROM t INTERSECT SELECT b FROM u INTERSECT ALL SELECT c FROM v"),
            "{((SELECT a FROM t Intersect SELECT b FROM u) Intersect ALL SELECT c FROM v)}"
        );
        assert_eq!(
            s(
                "(SELECT a FROM t UNION SELECT b FROM u) INTERSECT SELECT c FROM v ORDER BY 1 OFFSET 2"
            ),
            "{({(SELECT a FROM t Union SELECT b FROM u)} Intersect SELECT c FROM v) ORDER BY 1 OFFSET 2}"
        );
        assert_eq!(
            s("(SELECT TOP 1 a FROM t ORDER BY a) UNION ALL (SELECT b FROM u OFFSET 1)"),
            "{({SELECT a FROM t ORDER BY a} Union ALL {SELECT b FROM u OFFSET 1})}"
        );
        assert_eq!(s("(SELECT a FROM t)"), "{{SELECT a FROM t}}");
        let e = err("SELECT a FROM t ORDER BY a UNION SELECT b FROM u");
        assert_eq!(e.message, "unexpected \"UNION\"");
        let e = err("SELECT a FROM t UNION");
        assert_eq!(e.message, "unexpected end of query");
        assert_eq!(e.expected, vec!["SELECT", "\"(\""]);
    }

    #[test]
    fn with_clause() {
        assert_eq!(
            show_query(&p(
                "WITH a AS (SELECT x FROM t), b (y) AS (SELECT x FROM a) SELECT y FROM b"
            )),
            "{WITH a AS {SELECT x FROM t} b AS {SELECT x FROM a} SELECT y FROM b}"
        );
        let q = p("WITH b (y, z) AS (SELECT x, w FROM a) SELECT y FROM b");
        assert_eq!(names(&q.with[0].columns), "y.z");
        let e = err("WITH a AS SELECT x FROM t SELECT 1 FROM a");
        assert_eq!(e.expected, vec!["\"(\""]);
        let e = err("WITH a AS (SELECT x FROM t) INSERT INTO b VALUES (1)");
        assert_eq!(
            e.message,
            "only SELECT queries are allowed; found \"INSERT\""
        );
    }

    #[test]
    fn subqueries() {
        assert_eq!(cond("a IN (SELECT b FROM u)"), "(a IN {SELECT b FROM u})");
        assert_eq!(
            cond("a NOT IN (SELECT b FROM u)"),
            "(a NOT IN {SELECT b FROM u})"
        );
        assert_eq!(cond("EXISTS (SELECT 1 FROM u)"), "EXISTS {SELECT 1 FROM u}");
        assert_eq!(
            cond("NOT EXISTS (SELECT 1 FROM u)"),
            "(NOT EXISTS {SELECT 1 FROM u})"
        );
        assert_eq!(
            cond("a = ANY (SELECT b FROM u)"),
            "(a = Any {SELECT b FROM u})"
        );
        assert_eq!(
            cond("a < SOME (SELECT b FROM u)"),
            "(a < Any {SELECT b FROM u})"
        );
        assert_eq!(
            cond("a >= ALL (SELECT b FROM u)"),
            "(a >= All {SELECT b FROM u})"
        );
        assert_eq!(
            cond("a > (SELECT AVG(b) FROM u)"),
            "(a > {SELECT AVG(b) FROM u})"
        );
        assert_eq!(
            item("(SELECT MAX(b) FROM u) AS m"),
            "{SELECT MAX(b) FROM u}"
        );
        assert_eq!(
            cond("a IN ((SELECT b FROM u) UNION (SELECT c FROM v))"),
            "(a IN {({SELECT b FROM u} Union {SELECT c FROM v})})"
        );
        assert_eq!(
            cond("a IN ((SELECT MAX(b) FROM u), 2)"),
            "(a IN [{SELECT MAX(b) FROM u}, 2])"
        );
        assert_eq!(cond("a IN ((SELECT b FROM u))"), "(a IN {SELECT b FROM u})");
        assert_eq!(
            cond("((SELECT b FROM u) + 1) = a"),
            "([({SELECT b FROM u} + 1)] = a)"
        );
        assert_eq!(cond("a IN (1, (2), 'x')"), "(a IN [1, [2], 'x'])");
        assert_eq!(cond("a NOT IN (1)"), "(a NOT IN [1])");
        // Correlated and nested.
        assert_eq!(
            cond("EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v IN (SELECT v FROM w))"),
            "EXISTS {SELECT 1 FROM u WHERE ((u.k = t.k) AND (u.v IN {SELECT v FROM w}))}"
        );
        let e = err("SELECT a FROM t WHERE a = ANY (1, 2)");
        assert_eq!(e.message, "unexpected number 1");
        assert_eq!(e.expected, vec!["SELECT", "WITH", "\"(\""]);
        let e = err("SELECT a FROM t WHERE a IN 1");
        assert_eq!(e.expected, vec!["\"(\""]);
        let text = "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u)";
        let q = p(text);
        let span = sel(&q).selection.as_ref().unwrap().span;
        assert_eq!((span.start, span.end), (22, text.len()));
    }

    // ----- expressions --------------------------------------------------------------------

    #[test]
    fn boolean_precedence() {
        assert_eq!(cond("a OR b AND c"), "(a OR (b AND c))");
        assert_eq!(cond("a AND b OR c"), "((a AND b) OR c)");
        assert_eq!(cond("NOT a = b AND c"), "((NOT (a = b)) AND c)");
        assert_eq!(cond("NOT NOT a"), "(NOT (NOT a))");
        assert_eq!(cond("(a OR b) AND c"), "([(a OR b)] AND c)");
        assert_eq!(
            cond("a = 1 OR NOT b IS NULL"),
            "((a = 1) OR (NOT (b IS NULL)))"
        );
        assert_eq!(
            cond("a BETWEEN b + 1 AND c OR d"),
            "((a BETWEEN (b + 1) AND c) OR d)"
        );
        assert_eq!(
            cond("a NOT BETWEEN 1 AND 2 AND b"),
            "((a NOT BETWEEN 1 AND 2) AND b)"
        );
        assert_eq!(
            cond("a NOT LIKE 'x%' AND b ILIKE 'y' || c"),
            "((a NOT LIKE 'x%') AND (b ILIKE ('y' || c)))"
        );
        assert_eq!(cond("a NOT ILIKE 'x'"), "(a NOT ILIKE 'x')");
        assert_eq!(cond("a IS NOT NULL"), "(a IS NOT NULL)");
        assert_eq!(cond("a + 1 IS NULL OR b"), "(((a + 1) IS NULL) OR b)");
        assert_eq!(cond("a <> b AND a != c"), "((a <> b) AND (a <> c))");
        assert_eq!(cond("a<=b"), "(a <= b)");
        assert_eq!(cond("a >= -b"), "(a >= (-b))");
        assert_eq!(cond("TRUE"), "TRUE");
        // Comparisons do not chain.
        let e = err("SELECT a FROM t WHERE a = b = c");
        assert_eq!(
            e.message,
            "unexpected \"=\": comparisons and predicates do not chain; use parentheses"
        );
        assert_eq!(e.column, 29);
        let e = err("SELECT a FROM t WHERE NOT a = b IS NULL");
        assert!(e.message.contains("do not chain"), "{}", e.message);
        let e = err("SELECT a FROM t WHERE a = NOT b");
        assert_eq!(e.message, "unexpected \"NOT\"");
        assert_eq!(e.expected, vec!["expression"]);
        let e = err("SELECT a FROM t WHERE a NOT b");
        assert_eq!(e.expected, vec!["BETWEEN", "LIKE", "ILIKE", "IN"]);
        let e = err("SELECT a FROM t WHERE a IS 1");
        assert_eq!(e.expected, vec!["NULL"]);
        let e = err("SELECT a FROM t WHERE a BETWEEN 1 OR 2");
        assert_eq!(e.expected, vec!["AND"]);
    }

    #[test]
    fn arithmetic_and_bitwise_precedence() {
        assert_eq!(item("a = b + c * d"), "(a = (b + (c * d)))");
        assert_eq!(item("a - b - c"), "((a - b) - c)");
        assert_eq!(item("a / b * c"), "((a / b) * c)");
        assert_eq!(item("a + b * c - d / e"), "((a + (b * c)) - (d / e))");
        assert_eq!(item("-a * b"), "((-a) * b)");
        assert_eq!(item("- - a"), "(-(-a))");
        assert_eq!(item("+a - ~b"), "((+a) - (~b))");
        assert_eq!(item("a || b + c"), "((a || b) + c)");
        assert_eq!(item("a + b || c"), "((a + b) || c)");
        assert_eq!(item("a | b ^ c & d + e"), "(a | (b ^ (c & (d + e))))");
        assert_eq!(item("a & b | c"), "((a & b) | c)");
        assert_eq!(item("~a & b"), "((~a) & b)");
        assert_eq!(item("a ^ b ^ c"), "((a ^ b) ^ c)");
        assert_eq!(item("(a + b) * c"), "([(a + b)] * c)");
        assert_eq!(item("a * (b)"), "(a * [b])");
        assert_eq!(item("2 - -3"), "(2 - (-3))");
        // Runs of one associative operator are balanced; others stay left-deep.
        assert_eq!(
            cond("a OR b OR c OR d OR e"),
            "(((a OR b) OR (c OR d)) OR e)"
        );
        assert_eq!(cond("a AND b AND c AND d"), "((a AND b) AND (c AND d))");
        assert_eq!(item("a || b || c || d"), "((a || b) || (c || d))");
        assert_eq!(item("a + b + c + d"), "(((a + b) + c) + d)");
        assert_eq!(
            item("a + b || c || d || e - f"),
            "((((a + b) || c) || (d || e)) - f)"
        );
    }

    #[test]
    fn expression_spans() {
        let text = "SELECT\n  -(a + b) * 2 AS x\nFROM t";
        let q = p(text);
        let SelectItem::Expr { expr, alias } = &sel(&q).items[0] else {
            panic!()
        };
        assert_eq!(&text[expr.span.start..expr.span.end], "-(a + b) * 2");
        assert_eq!((expr.span.line, expr.span.column), (2, 3));
        let ExprKind::Binary { left, .. } = &expr.kind else {
            panic!()
        };
        assert_eq!(&text[left.span.start..left.span.end], "-(a + b)");
        let ExprKind::Unary { expr: nested, .. } = &left.kind else {
            panic!()
        };
        assert_eq!(&text[nested.span.start..nested.span.end], "(a + b)");
        assert!(matches!(nested.kind, ExprKind::Nested(_)));
        let a = alias.as_ref().unwrap();
        assert_eq!((a.name.as_str(), a.span.line, a.span.column), ("x", 2, 19));
        assert_eq!(
            sel(&q).span,
            Span {
                start: 0,
                end: text.len(),
                line: 1,
                column: 1
            }
        );

        let text = "SELECT a FROM t WHERE a IS NOT NULL AND b BETWEEN 1 AND 2 AND c NOT IN (1, 2) \
                    AND t.d LIKE 'x' AND CAST(e AS REAL) > 0 AND CASE WHEN f THEN 1 END = 1";
        let q = p(text);
        let mut spans = Vec::new();
        fn conj<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
            match &e.kind {
                ExprKind::Binary {
                    op: BinaryOp::And,
                    left,
                    right,
                } => {
                    conj(left, out);
                    conj(right, out);
                }
                _ => out.push(e),
            }
        }
        conj(sel(&q).selection.as_ref().unwrap(), &mut spans);
        let got: Vec<&str> = spans
            .iter()
            .map(|e| &text[e.span.start..e.span.end])
            .collect();
        assert_eq!(
            got,
            [
                "a IS NOT NULL",
                "b BETWEEN 1 AND 2",
                "c NOT IN (1, 2)",
                "t.d LIKE 'x'",
                "CAST(e AS REAL) > 0",
                "CASE WHEN f THEN 1 END = 1"
            ]
        );
        // The whole condition spans from its first to its last token.
        let w = sel(&q).selection.as_ref().unwrap();
        assert_eq!(&text[w.span.start..w.span.end], &text[22..]);
    }

    #[test]
    fn case_and_cast() {
        assert_eq!(
            item("CASE WHEN a > 1 THEN 'big' WHEN a IS NULL THEN NULL ELSE 'small' END"),
            "CASE WHEN (a > 1) THEN 'big' WHEN (a IS NULL) THEN NULL ELSE 'small' END"
        );
        assert_eq!(
            item("CASE a WHEN 1 THEN 'x' END"),
            "CASE a WHEN 1 THEN 'x' END"
        );
        assert_eq!(
            item("CASE a + 1 WHEN 2 THEN b ELSE c END * 2"),
            "(CASE (a + 1) WHEN 2 THEN b ELSE c END * 2)"
        );
        let e = err("SELECT CASE a END FROM t");
        assert_eq!(e.expected, vec!["WHEN"]);
        let e = err("SELECT CASE WHEN a THEN b FROM t");
        assert_eq!(e.expected, vec!["WHEN", "ELSE", "END"]);
        for (ty, want) in [
            ("SMALLINT", CastType::SmallInt),
            ("integer", CastType::Integer),
            ("BIGINT", CastType::BigInt),
            ("REAL", CastType::Real),
            ("DOUBLE PRECISION", CastType::Double),
            ("CHAR", CastType::Char(None)),
            ("CHAR(10)", CastType::Char(Some(10))),
            ("VARCHAR", CastType::VarChar(None)),
            ("varchar ( 255 )", CastType::VarChar(Some(255))),
            ("TIMESTAMP", CastType::Timestamp),
            ("POINT", CastType::Point),
            ("CIRCLE", CastType::Circle),
            ("POLYGON", CastType::Polygon),
        ] {
            let q = p(&format!("SELECT CAST(a AS {ty}) FROM t"));
            let SelectItem::Expr { expr, .. } = &sel(&q).items[0] else {
                panic!()
            };
            let ExprKind::Cast { to, .. } = &expr.kind else {
                panic!("{ty}")
            };
            assert_eq!(to, &want, "{ty}");
        }
        let e = err("SELECT CAST(a AS INT) FROM t");
        assert!(
            e.message.contains("not a CAST target type"),
            "{}",
            e.message
        );
        assert_eq!(e.expected.len(), 11);
        assert!(e.expected.contains(&"DOUBLE PRECISION".to_string()));
        let e = err("SELECT CAST(a AS DOUBLE) FROM t");
        assert_eq!(e.expected, vec!["PRECISION"]);
        let e = err("SELECT CAST(a AS CHAR(0)) FROM t");
        assert!(e.message.contains("positive integer"), "{}", e.message);
        let e = err("SELECT CAST(a, REAL) FROM t");
        assert_eq!(e.expected, vec!["AS"]);
    }

    #[test]
    fn functions() {
        assert_eq!(
            item("ROUND(SQRT(POWER(a, 2) + PI()), 3)"),
            "ROUND(SQRT((POWER(a, 2) + PI())), 3)"
        );
        assert_eq!(
            item("DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10, -5))"),
            "DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10, (-5)))"
        );
        assert_eq!(
            item("POLYGON('ICRS', 1, 2, 3, 4, 5, 6)"),
            "POLYGON('ICRS', 1, 2, 3, 4, 5, 6)"
        );
        assert_eq!(item("box('', 1, 2, 3, 4)"), "box('', 1, 2, 3, 4)");
        assert_eq!(item("COORD1(CENTROID(c))"), "COORD1(CENTROID(c))");
        assert_eq!(
            item("INTERSECTS(c, REGION('Circle ICRS 1 2 3'))"),
            "INTERSECTS(c, REGION('Circle ICRS 1 2 3'))"
        );
        assert_eq!(item("AREA(c) + COORDSYS(c)"), "(AREA(c) + COORDSYS(c))");
        assert_eq!(item("lower(a) || UPPER(b)"), "(lower(a) || UPPER(b))");
        assert_eq!(item("COALESCE(a, b, 0)"), "COALESCE(a, b, 0)");
        assert_eq!(item("IN_UNIT(a, 'km')"), "IN_UNIT(a, 'km')");
        assert_eq!(item("MOD(a, 2)"), "MOD(a, 2)");
        assert_eq!(item("RAND()"), "RAND()");
        assert_eq!(item("COUNT(*)"), "COUNT(*)");
        assert_eq!(item("count(DISTINCT a)"), "count(DISTINCT a)");
        assert_eq!(item("COUNT(ALL a)"), "COUNT(a)");
        assert_eq!(
            item("SUM(DISTINCT a + 1) / AVG(b)"),
            "(SUM(DISTINCT (a + 1)) / AVG(b))"
        );
        assert_eq!(item("MIN(a) - MAX(a)"), "(MIN(a) - MAX(a))");
        assert_eq!(
            item("ivo_healpix_index(10, ra, dec)"),
            "ivo_healpix_index(10, ra, dec)"
        );
        assert_eq!(item("gavo_ipix(ra, dec)"), "gavo_ipix(ra, dec)");
        assert_eq!(item("BIT_AND(a, 3)"), "BIT_AND(a, 3)");
        for f in [
            "ABS", "CEILING", "DEGREES", "EXP", "FLOOR", "LOG", "LOG10", "RADIANS", "TRUNCATE",
            "ACOS", "ASIN", "ATAN", "COS", "COT", "SIN", "TAN",
        ] {
            assert_eq!(item(&format!("{f}(x)")), format!("{f}(x)"));
        }
        assert_eq!(item("ATAN2(y, x)"), "ATAN2(y, x)");
        let e = err("SELECT SIZE(a) FROM t");
        assert_eq!(
            e.message,
            "reserved word \"SIZE\" cannot be a function name; write it as the delimited identifier \"size\""
        );
        let e = err("SELECT LEFT(a, 2) FROM t");
        assert!(
            e.message.contains("cannot be a function name"),
            "{}",
            e.message
        );
        let e = err("SELECT COUNT() FROM t");
        assert_eq!(e.expected, vec!["expression"]);
        let e = err("SELECT f(DISTINCT a) FROM t");
        assert_eq!(e.message, "unexpected \"DISTINCT\"");
        let e = err("SELECT ABS(a FROM t");
        assert_eq!(e.expected, vec!["\",\"", "\")\""]);
        // A function call's span and depth.
        let q = p("SELECT ABS(a) FROM t");
        let SelectItem::Expr { expr, .. } = &sel(&q).items[0] else {
            panic!()
        };
        assert_eq!((expr.span.start, expr.span.end), (7, 13));
    }

    #[test]
    fn literals() {
        let lit = |s: &str| {
            let q = p(&format!("SELECT {s} FROM t"));
            let SelectItem::Expr { expr, .. } = &sel(&q).items[0] else {
                panic!()
            };
            match &expr.kind {
                ExprKind::Literal(l) => l.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(lit("42"), Literal::Integer(42));
        assert_eq!(lit("9223372036854775807"), Literal::Integer(i64::MAX));
        assert_eq!(
            lit("9223372036854775808"),
            Literal::Float(9223372036854775808.0, "9223372036854775808".into())
        );
        assert_eq!(lit("1.5"), Literal::Float(1.5, "1.5".into()));
        assert_eq!(lit("1."), Literal::Float(1.0, "1.".into()));
        assert_eq!(lit(".25"), Literal::Float(0.25, ".25".into()));
        assert_eq!(lit("1e3"), Literal::Float(1000.0, "1e3".into()));
        assert_eq!(lit("2.5E-2"), Literal::Float(0.025, "2.5E-2".into()));
        assert_eq!(lit("0x1F"), Literal::Integer(31));
        assert_eq!(lit("0xff"), Literal::Integer(255));
        assert_eq!(lit("0xFFFFFFFFFFFFFFFF"), Literal::Integer(-1));
        assert_eq!(lit("0x8000000000000000"), Literal::Integer(i64::MIN));
        let e = err("SELECT 0x10000000000000000 FROM t");
        assert!(
            e.message.contains("does not fit in 64 bits"),
            "{}",
            e.message
        );
        assert_eq!(lit("'it''s'"), Literal::String("it's".into()));
        assert_eq!(lit("''"), Literal::String(String::new()));
        assert_eq!(
            lit("'ab'\n  'cd' -- joined\n 'ef'"),
            Literal::String("abcdef".into())
        );
        assert_eq!(lit("'é ü'"), Literal::String("é ü".into()));
        assert_eq!(lit("NULL"), Literal::Null);
        assert_eq!(lit("true"), Literal::Boolean(true));
        assert_eq!(lit("FALSE"), Literal::Boolean(false));
        assert_eq!(item("-1"), "(-1)");
    }

    #[test]
    fn comments() {
        let q = p(
            "-- leading comment\nSELECT a -- the a column\n, /* block\ncomment */ b\nFROM t -- end",
        );
        assert_eq!(show_query(&q), "{SELECT a, b FROM t}");
        let q = p("SELECT a FROM t WHERE b = 'x -- not a comment' /* c */");
        assert_eq!(
            show(sel(&q).selection.as_ref().unwrap()),
            "(b = 'x -- not a comment')"
        );
        let e = err("SELECT a FROM t /* never closed");
        assert!(e.message.contains("unterminated comment"), "{}", e.message);
        assert_eq!(e.column, 17);
    }

    // ----- identifiers --------------------------------------------------------------------

    #[test]
    fn identifiers() {
        let q = p(
            "SELECT \"Size\", \"a\"\"b\", \"select\", MixedCase, t.\"From\" FROM \"My Table\" AS \"T\"",
        );
        let cols: Vec<(String, bool)> = sel(&q)
            .items
            .iter()
            .map(|i| match i {
                SelectItem::Expr {
                    expr:
                        Expr {
                            kind: ExprKind::Column(p),
                            ..
                        },
                    ..
                } => {
                    let l = p.last().unwrap();
                    (l.name.clone(), l.delimited)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            cols,
            [
                ("Size".to_string(), true),
                ("a\"b".to_string(), true),
                ("select".to_string(), true),
                ("MixedCase".to_string(), false),
                ("From".to_string(), true)
            ]
        );
        let TableRef::Table { name, alias, .. } = &sel(&q).from[0] else {
            panic!()
        };
        assert_eq!(
            (name[0].name.as_str(), name[0].delimited),
            ("My Table", true)
        );
        assert_eq!(alias.as_ref().unwrap().name, "T");
        // Four-part column references.
        assert_eq!(item("c.s.t.a"), "c.s.t.a");
        let e = err("SELECT c.s.t.a.b FROM t");
        assert!(e.message.contains("too many parts"), "{}", e.message);
    }

    #[test]
    fn reserved_words() {
        let e = err("SELECT ra,\n  size\nFROM t");
        assert_eq!(
            e.message,
            "reserved word \"SIZE\" cannot be a column name; write it as the delimited identifier \"size\""
        );
        assert_eq!((e.line, e.column, e.offset), (2, 3, 13));
        assert_eq!(e.limit, None);
        assert_eq!(
            e.to_string(),
            "reserved word \"SIZE\" cannot be a column name; write it as the delimited identifier \
             \"size\" at line 2, column 3"
        );
        let e = err("SELECT a FROM size");
        assert!(
            e.message.contains("cannot be a table name"),
            "{}",
            e.message
        );
        let e = err("SELECT a FROM value.t");
        assert!(
            e.message.contains("\"VALUE\" cannot be a schema name"),
            "{}",
            e.message
        );
        let e = err("SELECT a FROM t AS date");
        assert!(
            e.message.contains("\"DATE\" cannot be an alias"),
            "{}",
            e.message
        );
        let e = err("SELECT a AS top FROM t");
        assert!(
            e.message.contains("\"TOP\" cannot be an alias"),
            "{}",
            e.message
        );
        let e = err("SELECT t.first FROM t");
        assert!(
            e.message.contains("\"FIRST\" cannot be a column name"),
            "{}",
            e.message
        );
        let e = err("SELECT a FROM t WHERE Point > 1");
        assert!(
            e.message.contains("\"POINT\" cannot be a column name"),
            "{}",
            e.message
        );
        let e = err("SELECT order FROM t");
        assert!(
            e.message.contains("\"ORDER\" cannot be a column name"),
            "{}",
            e.message
        );
        let e = err("SELECT a FROM t WHERE b = value");
        assert!(
            e.message.contains("\"VALUE\" cannot be a column name"),
            "{}",
            e.message
        );
        let e = err("SELECT a FROM t WHERE offset > 1");
        assert!(
            e.message.contains("\"OFFSET\" cannot be a column name"),
            "{}",
            e.message
        );
        let e = err("WITH user AS (SELECT 1 FROM t) SELECT * FROM user");
        assert!(
            e.message.contains("\"USER\" cannot be a query name"),
            "{}",
            e.message
        );
        let e = err("SELECT a FROM t JOIN u USING (key)");
        assert!(
            e.message.contains("\"KEY\" cannot be a column name"),
            "{}",
            e.message
        );
        // A reserved word right after a value is not taken as a bare alias.
        assert_eq!(
            show_query(&p("SELECT a FROM t ORDER BY a")),
            "{SELECT a FROM t ORDER BY a}"
        );
        // Delimited, they are fine.
        assert_eq!(item("\"size\" + \"point\""), "(\"size\" + \"point\")");
    }

    #[test]
    fn dec_is_a_regular_identifier() {
        let q = p("SELECT ra, dec, t.DEC, Dec AS d FROM t AS dec WHERE dec > 0 ORDER BY dec");
        assert_eq!(
            show_query(&q),
            "{SELECT ra, dec, t.DEC, Dec AS d FROM t dec WHERE (dec > 0) ORDER BY dec}"
        );
        // As a bare alias too (SELECT ra dec = SELECT ra AS dec).
        assert_eq!(
            show_query(&p("SELECT ra dec FROM t")),
            "{SELECT ra AS dec FROM t}"
        );
    }

    // ----- errors ---------------------------------------------------------------------------

    #[test]
    fn select_list_errors() {
        let e = err("SELECT a, b");
        assert_eq!(e.message, "unexpected end of query");
        assert_eq!(e.expected, vec!["FROM", "\",\""]);
        assert_eq!(
            e.to_string(),
            "unexpected end of query at line 1, column 12; expected one of FROM, \",\""
        );
        assert_eq!((e.offset, e.column), (11, 12));
        let e = err("SELECT a WHERE b = 1");
        assert_eq!(e.message, "unexpected \"WHERE\" after SELECT list");
        assert_eq!(e.expected, vec!["FROM"]);
        assert_eq!(
            e.to_string(),
            "unexpected \"WHERE\" after SELECT list at line 1, column 10; expected FROM"
        );
        let e = err("SELECT a b c FROM t");
        assert_eq!(e.message, "unexpected \"c\" after SELECT list");
        let e = err("SELECT FROM t");
        assert_eq!(e.message, "unexpected \"FROM\"");
        assert_eq!(e.expected, vec!["expression"]);
        let e = err("SELECT a, FROM t");
        assert_eq!(e.expected, vec!["expression"]);
        assert_eq!(e.column, 11);
    }

    #[test]
    fn multiline_error_positions() {
        let text = "SELECT TOP 10\n    ra,\n    'déc_é',\n    (ra +\n FROM t";
        let e = err(text);
        assert_eq!(e.message, "unexpected \"FROM\"");
        assert_eq!((e.line, e.column), (5, 2));
        assert_eq!(e.offset, text.find("FROM").unwrap());
        assert_eq!(e.expected, vec!["expression"]);
        // Columns count characters, not bytes.
        let text = "SELECT 'é', 'ü' , ) FROM t";
        let e = err(text);
        assert_eq!(
            (e.line, e.column, e.offset),
            (1, 19, text.find(')').unwrap())
        );
        let text = "SELECT a\nFROM t\nWHERE a > 1\n  AND (b < 2\nORDER BY a";
        let e = err(text);
        assert_eq!(e.message, "unexpected \"ORDER\"");
        assert_eq!((e.line, e.column), (5, 1));
        assert!(
            e.expected.contains(&"\")\"".to_string()),
            "{:?}",
            e.expected
        );
        let e = err("SELECT a\nFROM t\nWHERE b = 'open");
        assert!(
            e.message.starts_with("unterminated string literal"),
            "{}",
            e.message
        );
        assert_eq!((e.line, e.column), (3, 11));
        let e = err("SELECT \"open FROM t");
        assert!(
            e.message.starts_with("unterminated delimited identifier"),
            "{}",
            e.message
        );
        assert_eq!((e.line, e.column), (1, 8));
    }

    #[test]
    fn only_select_statements() {
        for (text, word) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("delete from t", "DELETE"),
            ("CREATE TABLE t (a INT)", "CREATE"),
            ("SET search_path = x", "SET"),
            ("DROP TABLE t", "DROP"),
            ("EXPLAIN SELECT a FROM t", "EXPLAIN"),
            ("COPY t TO '/tmp/x'", "COPY"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("  -- comment\n  Alter table t", "ALTER"),
        ] {
            let e = err(text);
            assert_eq!(
                e.message,
                format!("only SELECT queries are allowed; found \"{word}\"")
            );
            assert_eq!(e.expected, vec!["SELECT"]);
        }
        let e = err("SELEC a FROM t");
        assert_eq!(e.message, "unexpected \"SELEC\"");
        assert_eq!(e.expected, vec!["SELECT", "WITH", "\"(\""]);
        let e = err("   -- nothing\n");
        assert_eq!(e.message, "empty query");
        assert_eq!((e.line, e.column), (2, 1));
        let e = err("");
        assert_eq!(e.message, "empty query");
    }

    #[test]
    fn semicolon_and_trailing_text() {
        assert_eq!(show_query(&p("SELECT a FROM t;")), "{SELECT a FROM t}");
        assert_eq!(
            show_query(&p("SELECT a FROM t ; -- done\n")),
            "{SELECT a FROM t}"
        );
        let e = err("SELECT a FROM t;;");
        assert_eq!(
            e.message,
            "unexpected \";\" after \";\": only one query is allowed"
        );
        let e = err("SELECT a FROM t; DROP TABLE t");
        assert_eq!(
            e.message,
            "unexpected \"DROP\" after \";\": only one query is allowed"
        );
        assert_eq!(e.column, 18);
        let e = err("SELECT a FROM t x y");
        assert_eq!(e.message, "unexpected \"y\"");
        assert_eq!(
            e.expected,
            vec![
                "JOIN",
                "\",\"",
                "WHERE",
                "GROUP BY",
                "HAVING",
                "INTERSECT",
                "UNION",
                "EXCEPT",
                "ORDER BY",
                "OFFSET",
                "\";\"",
                "end of query"
            ]
        );
        let e = err("SELECT a FROM t)");
        assert_eq!(e.message, "unexpected \")\"");
        let e = err("SELECT a FROM t WHERE a > 1 LIMIT 10");
        assert_eq!(
            e.message,
            "unexpected \"LIMIT\": ADQL has no LIMIT clause; write SELECT TOP n"
        );
        let e = err("SELECT a FROM t LIMIT 10");
        assert_eq!(
            e.message,
            "unexpected \"LIMIT\": ADQL has no LIMIT clause; write SELECT TOP n"
        );
        // LIMIT is not reserved: as an alias it is fine.
        assert_eq!(
            show_query(&p("SELECT a FROM t limit")),
            "{SELECT a FROM t limit}"
        );
    }

    // ----- limits ---------------------------------------------------------------------------

    #[test]
    fn length_limit() {
        let limits = ParseLimits {
            max_len: 20,
            max_depth: 64,
        };
        assert!(parse("SELECT a FROM t", &limits).is_ok());
        let e = parse("SELECT a, b, c, d FROM t", &limits).unwrap_err();
        assert_eq!(e.limit, Some("length"));
        assert!(e.message.contains("24 bytes"), "{}", e.message);
        // Checked before anything else: an unterminated string past the limit is not lexed.
        let e = parse(&format!("SELECT '{}", "x".repeat(100)), &limits).unwrap_err();
        assert_eq!(e.limit, Some("length"));
    }

    fn depth_err(text: &str, limits: &ParseLimits) -> SyntaxError {
        let e = parse(text, limits).expect_err("too deep");
        assert_eq!(e.limit, Some("depth"), "{}", e.message);
        e
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let limits = ParseLimits {
            max_len: 1 << 24,
            max_depth: 64,
        };
        let n = 100_000;
        let parens = format!("SELECT {}a{} FROM t", "(".repeat(n), ")".repeat(n));
        let e = depth_err(&parens, &limits);
        assert_eq!(e.column, 7 + 65);
        assert!(e.message.contains("more than 64 levels"), "{}", e.message);
        depth_err(
            &format!("SELECT a FROM t WHERE {}a = 1", "NOT ".repeat(n)),
            &limits,
        );
        depth_err(&format!("SELECT {}1 FROM t", "- ".repeat(n)), &limits);
        depth_err(&format!("SELECT {}1 FROM t", "~".repeat(n)), &limits);
        depth_err(
            &format!("SELECT {}a{} FROM t", "ABS(".repeat(n), ")".repeat(n)),
            &limits,
        );
        depth_err(
            &format!("SELECT {}a{} FROM t", "1+(".repeat(n), ")".repeat(n)),
            &limits,
        );
        depth_err(
            &format!(
                "SELECT a FROM t WHERE a IN {}SELECT a FROM t{}",
                "(".repeat(n),
                ")".repeat(n)
            ),
            &limits,
        );
        depth_err(
            &format!(
                "SELECT {}SELECT 1 FROM t{} FROM t",
                "(".repeat(n),
                ")".repeat(n)
            ),
            &limits,
        );
        depth_err(&format!("SELECT {} FROM t", "(SELECT ".repeat(n)), &limits);
        depth_err(
            &format!("SELECT * FROM {}t{}", "(".repeat(n), ")".repeat(n)),
            &limits,
        );
        depth_err(
            &format!("SELECT * FROM {}", "(SELECT * FROM ".repeat(n)),
            &limits,
        );
        depth_err(
            &format!("{}SELECT a FROM t{}", "(".repeat(n), ")".repeat(n)),
            &limits,
        );
        depth_err(
            &format!("SELECT {} FROM t", "CASE WHEN a THEN ".repeat(n)),
            &limits,
        );
        depth_err(&format!("SELECT {} FROM t", "CAST(".repeat(n)), &limits);
        depth_err(
            &format!(
                "SELECT a FROM t WHERE {}",
                "EXISTS (SELECT a FROM t WHERE ".repeat(n)
            ),
            &limits,
        );
    }

    #[test]
    fn max_depth_is_exact() {
        let limits = ParseLimits {
            max_len: 1 << 20,
            max_depth: 10,
        };
        let nest = |k: usize| format!("SELECT {}a{} FROM t", "(".repeat(k), ")".repeat(k));
        assert!(parse(&nest(10), &limits).is_ok());
        depth_err(&nest(11), &limits);
        let nots = |k: usize| format!("SELECT a FROM t WHERE {}a", "NOT ".repeat(k));
        assert!(parse(&nots(10), &limits).is_ok());
        depth_err(&nots(11), &limits);
        // Flat operators do not count, however many.
        let flat = format!(
            "SELECT a FROM t WHERE {}",
            vec!["(a = 1)"; 1000].join(" OR ")
        );
        assert!(parse(&flat, &limits).is_ok());
    }

    #[test]
    fn deepest_accepted_nesting_fits_the_stack() {
        // The cap holds even when the configured limit is larger; every shape up to it must
        // parse, and drop, within this ordinary 2 MiB test thread in a debug build.
        let limits = ParseLimits {
            max_len: 1 << 20,
            max_depth: usize::MAX,
        };
        let k = NESTING_CAP;
        let r = |s: &str, n: usize| s.repeat(n);
        let shapes = [
            format!("SELECT {}a{} FROM t", r("(", k), r(")", k)),
            format!("SELECT {}a{} FROM t", r("1+(", k), r(")", k)),
            format!("SELECT {}a{} FROM t", r("ABS(", k), r(")", k)),
            format!("SELECT a FROM t WHERE {}a", r("NOT ", k)),
            format!("SELECT {}1 FROM t", r("- ", k)),
            format!(
                "SELECT {}1{} FROM t",
                r("(SELECT ", k - 1),
                r(" FROM t)", k - 1)
            ),
            format!(
                "SELECT * FROM {}t{}",
                r("(SELECT * FROM ", k - 1),
                r(") AS s", k - 1)
            ),
            format!(
                "SELECT * FROM t JOIN {}u ON p{}",
                r("(SELECT * FROM t JOIN ", k - 1),
                r(") AS s ON p", k - 1)
            ),
            format!(
                "SELECT a FROM t WHERE {}a = 1{}",
                r("EXISTS (SELECT a FROM t WHERE ", k - 1),
                r(")", k - 1)
            ),
            format!(
                "SELECT a FROM t WHERE a IN {}1{}",
                r("(SELECT a FROM t WHERE a IN (", k / 2),
                r("))", k / 2)
            ),
            format!(
                "SELECT a FROM t WHERE a = ANY {}SELECT 1 FROM t){}",
                r("(SELECT a FROM t WHERE a = ANY ", k - 1).replacen("ANY (", "ANY ((", 0),
                r(")", k - 1)
            )
            .replace("ANY SELECT", "ANY (SELECT"),
            format!(
                "{}SELECT 1 FROM t{}",
                r("WITH a AS (", k - 1),
                r(") SELECT 1 FROM a", k - 1)
            ),
            format!(
                "SELECT {}1{} FROM t",
                r("CASE WHEN a THEN (", k / 2),
                r(") END", k / 2)
            ),
            format!(
                "SELECT {}1{} FROM t",
                r("((SELECT ", k / 2),
                r(" FROM t) UNION (SELECT 2 FROM t))", k / 2)
            ),
            format!("SELECT {}1{} FROM t", r("CAST(", k), r(" AS REAL)", k)),
            format!(
                "SELECT a FROM t WHERE {}a{}",
                r("a BETWEEN (", k),
                r(") AND 1", k)
            ),
        ];
        for s in &shapes {
            if let Err(e) = parse(s, &limits) {
                panic!("{}…: {e}", &s[..80.min(s.len())]);
            }
        }
        let over = format!("SELECT {}a{} FROM t", r("(", k + 1), r(")", k + 1));
        let e = depth_err(&over, &limits);
        assert!(
            e.message.contains(&format!("more than {k} levels")),
            "{}",
            e.message
        );
    }

    #[test]
    fn long_flat_chains() {
        let limits = ParseLimits {
            max_len: 1 << 24,
            max_depth: 64,
        };
        let n = 200_000;
        // Associative chains become balanced trees: any length parses and drops safely.
        let or = format!("SELECT a FROM t WHERE {}", vec!["a = 1"; n].join(" OR "));
        let q = parse(&or, &limits).expect("long OR chain");
        fn height(e: &Expr) -> usize {
            match &e.kind {
                ExprKind::Binary { left, right, .. } => 1 + height(left).max(height(right)),
                _ => 1,
            }
        }
        let w = sel(&q).selection.as_ref().unwrap();
        assert_eq!(height(w), 18 + 1 + 1); // ceil(log2(200000)) OR levels, "=", leaf
        assert_eq!((w.span.start, w.span.end), (22, or.len()));
        let and = format!("SELECT a FROM t WHERE {}", vec!["a"; n].join(" AND "));
        assert!(parse(&and, &limits).is_ok());
        let cat = format!("SELECT {} FROM t", vec!["'x'"; n].join(" || "));
        assert!(parse(&cat, &limits).is_ok());
        let bits = format!("SELECT {} FROM t", vec!["a"; n].join(" | "));
        assert!(parse(&bits, &limits).is_ok());
        // A left-deep chain is parsed in a loop, but its tree would be 200 000 levels tall:
        // refused with the depth limit rather than left to overflow a later walk or drop.
        let sum = format!("SELECT {} FROM t", vec!["a"; n].join("+"));
        let e = depth_err(&sum, &limits);
        assert!(e.message.contains("more than 1000 levels"), "{}", e.message);
        // Up to the height limit it is accepted.
        let sum = format!("SELECT {} FROM t", vec!["a"; 900].join(" - "));
        assert!(parse(&sum, &limits).is_ok());
        // Long lists are not chains at all.
        let list = format!("SELECT a FROM t WHERE a IN ({})", vec!["1"; n].join(", "));
        assert!(parse(&list, &limits).is_ok());
        let items = format!("SELECT {} FROM t", vec!["a"; 20_000].join(", "));
        assert_eq!(sel(&parse(&items, &limits).unwrap()).items.len(), 20_000);
        // Long UNION and JOIN chains are left-deep and limited the same way.
        let unions = vec!["SELECT a FROM t"; 2000].join(" UNION ");
        depth_err(&unions, &limits);
        let unions = vec!["SELECT a FROM t"; 500].join(" UNION ");
        assert!(parse(&unions, &limits).is_ok());
        let joins = format!("SELECT a FROM t{}", " JOIN u ON p".repeat(2000));
        depth_err(&joins, &limits);
    }

    #[test]
    fn tall_trees_within_the_limit_drop_safely() {
        // The tallest accepted tree, built from the most nesting and the longest chains.
        let limits = ParseLimits {
            max_len: 1 << 20,
            max_depth: usize::MAX,
        };
        let chain = vec!["a"; 990].join("*");
        let q = parse(&format!("SELECT {chain} FROM t"), &limits).unwrap();
        drop(q);
        let inner = format!("{}{chain}{}", "(".repeat(100), ")".repeat(100));
        let e = parse(&format!("SELECT {inner} FROM t"), &limits).unwrap_err();
        assert_eq!(e.limit, Some("depth"));
    }
}
