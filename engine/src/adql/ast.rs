//! The ADQL 2.1 syntax tree: what the parser produces and the translator consumes.
//!
//! It keeps ADQL's own distinctions that SQL dialects blur: regular versus delimited
//! identifiers (case rules differ), TOP inside the select clause, and functions by name
//! (geometry, math, user-defined) so that the translator decides their meaning. Every node
//! that can be at fault in a later error carries its [`Span`].

/// Where a node sits in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the last character.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: u32,
    /// 1-based column (in characters) of `start`.
    pub column: u32,
}

/// An identifier. Regular identifiers compare case-insensitively; delimited (double-quoted)
/// ones are case-sensitive and may be reserved words.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name: as written for regular identifiers, unescaped (`""` → `"`) for delimited.
    pub name: String,
    /// Whether it was written between double quotes.
    pub delimited: bool,
    /// Where.
    pub span: Span,
}

/// A complete query expression: `[WITH …] body [ORDER BY …] [OFFSET n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Common table expressions.
    pub with: Vec<Cte>,
    /// The select or set operation.
    pub body: SetExpr,
    /// ORDER BY items (apply to the whole body).
    pub order_by: Vec<OrderItem>,
    /// OFFSET n (rows skipped before TOP applies).
    pub offset: Option<u64>,
    /// Where.
    pub span: Span,
}

/// `name [(col, …)] AS (query)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cte {
    /// Name of the common table expression.
    pub name: Ident,
    /// Optional column names.
    pub columns: Vec<Ident>,
    /// Its query.
    pub query: Box<Query>,
}

/// A select or a set operation of them.
#[derive(Debug, Clone, PartialEq)]
pub enum SetExpr {
    /// A single query specification.
    Select(Box<Select>),
    /// `left UNION|EXCEPT|INTERSECT [ALL] right`.
    SetOp {
        /// Which operation.
        op: SetOp,
        /// ALL (keep duplicates).
        all: bool,
        /// Left operand.
        left: Box<SetExpr>,
        /// Right operand.
        right: Box<SetExpr>,
    },
    /// A parenthesised query (may carry its own ORDER BY/OFFSET/WITH).
    Query(Box<Query>),
}

/// Set operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// UNION
    Union,
    /// EXCEPT
    Except,
    /// INTERSECT
    Intersect,
}

/// `SELECT [ALL|DISTINCT] [TOP n] items FROM … [WHERE] [GROUP BY] [HAVING]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// DISTINCT given.
    pub distinct: bool,
    /// TOP n.
    pub top: Option<u64>,
    /// The select list.
    pub items: Vec<SelectItem>,
    /// FROM: comma-separated table references (a cross join).
    pub from: Vec<TableRef>,
    /// WHERE.
    pub selection: Option<Expr>,
    /// GROUP BY.
    pub group_by: Vec<Expr>,
    /// HAVING.
    pub having: Option<Expr>,
    /// Where (the whole query specification).
    pub span: Span,
}

/// One entry of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`
    Wildcard(Span),
    /// `t.*` or `s.t.*` (the qualifier parts).
    QualifiedWildcard(Vec<Ident>, Span),
    /// `expr [[AS] alias]`.
    Expr {
        /// The value.
        expr: Expr,
        /// The alias.
        alias: Option<Ident>,
    },
}

/// An item of the FROM clause.
#[derive(Debug, Clone, PartialEq)]
pub enum TableRef {
    /// `[catalog.][schema.]table [[AS] alias]`.
    Table {
        /// Name parts, 1 to 3.
        name: Vec<Ident>,
        /// Correlation name.
        alias: Option<Ident>,
        /// Where.
        span: Span,
    },
    /// `(query) [AS] alias [(col, …)]`.
    Derived {
        /// The subquery.
        query: Box<Query>,
        /// Its (mandatory) correlation name.
        alias: Ident,
        /// Optional derived column list.
        columns: Vec<Ident>,
        /// Where.
        span: Span,
    },
    /// A join of two references.
    Join {
        /// Left side.
        left: Box<TableRef>,
        /// Right side.
        right: Box<TableRef>,
        /// Kind.
        kind: JoinKind,
        /// NATURAL given.
        natural: bool,
        /// ON / USING / none.
        constraint: JoinConstraint,
        /// Where.
        span: Span,
    },
}

/// Join kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// `[INNER] JOIN`
    Inner,
    /// `LEFT [OUTER] JOIN`
    Left,
    /// `RIGHT [OUTER] JOIN`
    Right,
    /// `FULL [OUTER] JOIN`
    Full,
    /// `CROSS JOIN`
    Cross,
}

/// Join condition.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinConstraint {
    /// None (CROSS or NATURAL).
    None,
    /// `ON expr`
    On(Expr),
    /// `USING (a, b)`
    Using(Vec<Ident>),
}

/// `expr [ASC|DESC]`; an unsigned integer expression means a select-list position.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    /// Sort key: a column name, an alias, a position (`Literal::Integer`) or an expression.
    pub expr: Expr,
    /// DESC given.
    pub desc: bool,
}

/// An expression with its place in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// Literals.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Exact integer (decimal digits without point or exponent), or a hex literal `0x1F`.
    Integer(i64),
    /// Approximate or decimal number, with its text as written.
    Float(f64, String),
    /// `'text'` with `''` unescaped.
    String(String),
    /// NULL.
    Null,
    /// TRUE / FALSE (ADQL 2.1 optional boolean literals).
    Boolean(bool),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x`
    Plus,
    /// `~x` (bitwise not)
    BitNot,
    /// `NOT x`
    Not,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `||`
    Concat,
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
    /// `AND`
    And,
    /// `OR`
    Or,
    /// `=`
    Eq,
    /// `<>` or `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// ANY / SOME / ALL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// ANY or SOME
    Any,
    /// ALL
    All,
}

/// Target types of CAST (ADQL 2.1 §2.3.2 and the geometric types).
#[derive(Debug, Clone, PartialEq)]
pub enum CastType {
    /// SMALLINT
    SmallInt,
    /// INTEGER
    Integer,
    /// BIGINT
    BigInt,
    /// REAL
    Real,
    /// DOUBLE PRECISION
    Double,
    /// CHAR[(n)]
    Char(Option<u32>),
    /// VARCHAR[(n)]
    VarChar(Option<u32>),
    /// TIMESTAMP
    Timestamp,
    /// POINT
    Point,
    /// CIRCLE
    Circle,
    /// POLYGON
    Polygon,
}

/// Expression kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// Column reference: `a`, `t.a`, `s.t.a`, `c.s.t.a`.
    Column(Vec<Ident>),
    /// A literal.
    Literal(Literal),
    /// Unary operator.
    Unary {
        /// Operator.
        op: UnaryOp,
        /// Operand.
        expr: Box<Expr>,
    },
    /// Binary operator.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `expr IS [NOT] NULL`.
    IsNull {
        /// Operand.
        expr: Box<Expr>,
        /// IS NOT NULL.
        negated: bool,
    },
    /// `expr [NOT] BETWEEN low AND high`.
    Between {
        /// Operand.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// NOT BETWEEN.
        negated: bool,
    },
    /// `expr [NOT] LIKE|ILIKE pattern`.
    Like {
        /// Operand.
        expr: Box<Expr>,
        /// Pattern.
        pattern: Box<Expr>,
        /// NOT LIKE.
        negated: bool,
        /// ILIKE.
        case_insensitive: bool,
    },
    /// `expr [NOT] IN (a, b, …)`.
    InList {
        /// Operand.
        expr: Box<Expr>,
        /// Values.
        list: Vec<Expr>,
        /// NOT IN.
        negated: bool,
    },
    /// `expr [NOT] IN (subquery)`.
    InSubquery {
        /// Operand.
        expr: Box<Expr>,
        /// The subquery.
        query: Box<Query>,
        /// NOT IN.
        negated: bool,
    },
    /// `[NOT] EXISTS (subquery)` (NOT is a `Unary` around it).
    Exists(Box<Query>),
    /// Scalar subquery `(SELECT …)`.
    Subquery(Box<Query>),
    /// `expr op ANY|SOME|ALL (subquery)`.
    Quantified {
        /// Left operand.
        expr: Box<Expr>,
        /// Comparison operator (one of Eq, NotEq, Lt, LtEq, Gt, GtEq).
        op: BinaryOp,
        /// ANY/SOME or ALL.
        quantifier: Quantifier,
        /// The subquery.
        query: Box<Query>,
    },
    /// `CASE [operand] WHEN … THEN … [ELSE …] END`.
    Case {
        /// Simple CASE operand.
        operand: Option<Box<Expr>>,
        /// WHEN/THEN pairs.
        whens: Vec<(Expr, Expr)>,
        /// ELSE.
        else_result: Option<Box<Expr>>,
    },
    /// `CAST(expr AS type)`.
    Cast {
        /// Operand.
        expr: Box<Expr>,
        /// Target type.
        to: CastType,
    },
    /// A function call by name: math, string, geometry, COALESCE, aggregates, user-defined.
    /// The name keeps its spelling; compare case-insensitively.
    Function {
        /// Function name (regular identifier).
        name: Ident,
        /// Arguments.
        args: Vec<Expr>,
        /// `agg(DISTINCT x)`.
        distinct: bool,
    },
    /// `COUNT(*)`.
    CountStar,
    /// `( expr )`, kept so that positions and printing stay faithful.
    Nested(Box<Expr>),
}
