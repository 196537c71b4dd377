//! ADQL syntax tree → DataFusion SQL text with ADQL's meaning.
//!
//! The translator is where ADQL semantics live; DataFusion then plans and type-checks the
//! result. Emitting SQL text (rather than building `sqlparser` nodes by hand) keeps this module
//! readable; the text is generated from our own tree only, so it can name nothing but the
//! exposed tables and the functions in [`FUNCTIONS`], and every identifier is emitted
//! quoted. The extra parse costs a few microseconds.
//!
//! Recursion: the walkers grow their stack on demand (`recursive`, as DataFusion's planner
//! does), so the parser's height cap (1000 levels) is safe on any thread.
//!
//! Identifiers: ADQL regular identifiers are case-insensitive, delimited ones are not. The
//! translator collects every name the query can see (columns of the tables it reads, table
//! and column aliases, CTE names) and maps each regular identifier to the stored spelling
//! that matches it case-insensitively, preferring an exact match. Delimited identifiers are
//! passed through unchanged.
//!
//! Geometry: region constructors are kept decomposed (`Geo::Point { ra, dec }` …) while the
//! translator can see their parts, so `CONTAINS(POINT(ra, dec), CIRCLE(…))` becomes the fast
//! `adql_point_in_circle(ra, dec, …)` kernel, which spatial pruning recognises. Regions that
//! must become values (SELECT items, CENTROID results) are `List<Float64>` built by the
//! geometry UDFs; their DALI xtype is reported in [`Output`].

use std::collections::HashMap;
use std::fmt::Write;

use crate::adql::ast::*;
use crate::error::{Error, ErrorKind, Result};

/// Crossmatch joins (a child module: it extends the translator).
#[path = "xmatch.rs"]
pub(crate) mod xmatch;

/// A table the query may read.
#[derive(Debug, Clone)]
pub(crate) struct ExposedTable {
    pub schema: String,
    pub table: String,
    /// Column names and units.
    pub columns: Vec<(String, Option<String>)>,
    /// Rows, for a catalog (the crossmatch expands the smaller side).
    pub rows: Option<u64>,
    /// The declared position columns of a catalog (`hats_col_ra`, `hats_col_dec`) when they
    /// are Float64: the values `_healpix_29` was hashed from, so their cell at any order is
    /// `_healpix_29` shifted.
    pub ra_dec: Option<(String, String)>,
}

/// What the translator knows of one output column.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    /// DALI xtype of a region value.
    pub xtype: Option<&'static str>,
    /// Unit set by IN_UNIT.
    pub unit: Option<String>,
}

/// The result of translation.
#[derive(Debug, Clone)]
pub(crate) struct Translation {
    pub sql: String,
    /// Output column name → what the translator adds to its metadata.
    pub outputs: HashMap<String, Output>,
    /// Every column-like identifier of the query, for locating "no field named" errors.
    pub idents: Vec<Ident>,
    /// Every visible name, for suggestions.
    pub visible: Vec<String>,
}

/// ADQL functions with a direct DataFusion counterpart: (ADQL name, min args, max args,
/// DataFusion name). `MOD`, `RAND`, geometry and IN_UNIT are handled separately.
const SIMPLE_FUNCTIONS: &[(&str, usize, usize, &str)] = &[
    ("ABS", 1, 1, "abs"),
    ("CEILING", 1, 1, "ceil"),
    ("DEGREES", 1, 1, "degrees"),
    ("EXP", 1, 1, "exp"),
    ("FLOOR", 1, 1, "floor"),
    ("LOG", 1, 1, "ln"),
    ("LOG10", 1, 1, "log10"),
    ("PI", 0, 0, "pi"),
    ("POWER", 2, 2, "power"),
    ("RADIANS", 1, 1, "radians"),
    ("ROUND", 1, 2, "round"),
    ("SQRT", 1, 1, "sqrt"),
    ("TRUNCATE", 1, 2, "trunc"),
    ("ACOS", 1, 1, "acos"),
    ("ASIN", 1, 1, "asin"),
    ("ATAN", 1, 1, "atan"),
    ("ATAN2", 2, 2, "atan2"),
    ("COS", 1, 1, "cos"),
    ("COT", 1, 1, "cot"),
    ("SIN", 1, 1, "sin"),
    ("TAN", 1, 1, "tan"),
    ("LOWER", 1, 1, "lower"),
    ("UPPER", 1, 1, "upper"),
    ("COALESCE", 1, usize::MAX, "coalesce"),
    ("COUNT", 1, 1, "count"),
    ("AVG", 1, 1, "avg"),
    ("MIN", 1, 1, "min"),
    ("MAX", 1, 1, "max"),
    ("SUM", 1, 1, "sum"),
];

/// Every function name a query may call (for suggestions).
pub(crate) const FUNCTIONS: &[&str] = &[
    "ABS",
    "CEILING",
    "DEGREES",
    "EXP",
    "FLOOR",
    "LOG",
    "LOG10",
    "MOD",
    "PI",
    "POWER",
    "RADIANS",
    "RAND",
    "ROUND",
    "SQRT",
    "TRUNCATE",
    "ACOS",
    "ASIN",
    "ATAN",
    "ATAN2",
    "COS",
    "COT",
    "SIN",
    "TAN",
    "LOWER",
    "UPPER",
    "COALESCE",
    "IN_UNIT",
    "COUNT",
    "AVG",
    "MIN",
    "MAX",
    "SUM",
    "POINT",
    "CIRCLE",
    "BOX",
    "POLYGON",
    "CONTAINS",
    "INTERSECTS",
    "DISTANCE",
    "AREA",
    "CENTROID",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "REGION",
    "ivo_healpix_index",
    "ivo_healpix_center",
];

const AGGREGATES: &[&str] = &["COUNT", "AVG", "MIN", "MAX", "SUM"];

/// A region while its parts are still visible, or a region value.
#[derive(Debug, Clone)]
enum Geo {
    Point {
        ra: String,
        dec: String,
    },
    Circle {
        ra: String,
        dec: String,
        r: String,
    },
    Polygon(Vec<(String, String)>),
    /// A `List<Float64>` value of known or unknown kind.
    Value {
        sql: String,
        kind: Option<Kind>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Point,
    Circle,
    Polygon,
}

impl Kind {
    fn xtype(self) -> &'static str {
        match self {
            Kind::Point => "point",
            Kind::Circle => "circle",
            Kind::Polygon => "polygon",
        }
    }
}

impl Geo {
    fn kind(&self) -> Option<Kind> {
        match self {
            Geo::Point { .. } => Some(Kind::Point),
            Geo::Circle { .. } => Some(Kind::Circle),
            Geo::Polygon(_) => Some(Kind::Polygon),
            Geo::Value { kind, .. } => *kind,
        }
    }

    fn value_sql(&self) -> String {
        match self {
            Geo::Point { ra, dec } => format!("adql_point({ra}, {dec})"),
            Geo::Circle { ra, dec, r } => format!("adql_circle({ra}, {dec}, {r})"),
            Geo::Polygon(v) => {
                let parts: Vec<String> = v.iter().map(|(a, b)| format!("{a}, {b}")).collect();
                format!("adql_polygon({})", parts.join(", "))
            }
            Geo::Value { sql, .. } => sql.clone(),
        }
    }
}

/// A translated expression: SQL text, or a region.
#[derive(Debug, Clone)]
enum Val {
    Sql(String),
    Geo(Geo),
}

impl Val {
    fn sql(self) -> String {
        match self {
            Val::Sql(s) => s,
            Val::Geo(g) => g.value_sql(),
        }
    }
}

/// Translates a parsed query over the exposed tables.
pub(crate) fn translate(q: &Query, tables: &[ExposedTable]) -> Result<Translation> {
    let mut t = Translator {
        tables,
        fold: HashMap::new(),
        ctes: Vec::new(),
        idents: Vec::new(),
        outputs: HashMap::new(),
        units: HashMap::new(),
        anon: 0,
        using_scope: Vec::new(),
        xm_keys: Vec::new(),
        xm_schema_qualified: Vec::new(),
    };
    t.collect_query(q)?;
    let sql = t.query(q, true)?;
    let mut visible: Vec<String> = t.fold.values().flatten().cloned().collect();
    visible.sort();
    visible.dedup();
    Ok(Translation {
        sql,
        outputs: t.outputs,
        idents: t.idents,
        visible,
    })
}

struct Translator<'a> {
    tables: &'a [ExposedTable],
    /// lower-case name → spellings visible somewhere in the query.
    fold: HashMap<String, Vec<String>>,
    /// CTE names (lower-case for regular, as written for delimited) → emitted spelling.
    ctes: Vec<(Ident, String)>,
    idents: Vec<Ident>,
    outputs: HashMap<String, Output>,
    /// column name (lower-case) → units of the tables read.
    units: HashMap<String, Vec<Option<String>>>,
    anon: usize,
    /// Per SELECT being emitted: USING columns of FULL/RIGHT joins (lower-case name → the
    /// two qualifiers), which ADQL/SQL define as COALESCE(left, right).
    using_scope: Vec<HashMap<String, (String, String)>>,
    /// Per SELECT being emitted: tables expanded for a crossmatch (emitted alias, key
    /// column), which wildcards leave out.
    xm_keys: Vec<Vec<(String, String)>>,
    /// Tables some column reference names as schema.table.column (lower-case table names):
    /// a crossmatch cannot wrap them under a one-part name.
    xm_schema_qualified: Vec<String>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn eq_ident(id: &Ident, name: &str) -> bool {
    if id.delimited {
        id.name == name
    } else {
        id.name.eq_ignore_ascii_case(name)
    }
}

/// Suggestions: the names closest to `wanted`, best first.
pub(crate) fn nearest<'n>(wanted: &str, names: impl IntoIterator<Item = &'n str>) -> Vec<String> {
    let w = wanted.to_ascii_lowercase();
    let mut scored: Vec<(f64, String)> = names
        .into_iter()
        .map(|n| {
            (
                strsim::jaro_winkler(&w, &n.to_ascii_lowercase()),
                n.to_string(),
            )
        })
        .filter(|(s, _)| *s > 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

pub(crate) fn did_you_mean(s: &[String]) -> String {
    match s.len() {
        0 => String::new(),
        1 => format!("; did you mean {}?", s[0]),
        _ => format!("; did you mean one of {}?", s.join(", ")),
    }
}

fn literal_f64(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Literal(Literal::Integer(i)) => Some(*i as f64),
        ExprKind::Literal(Literal::Float(f, _)) => Some(*f),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => literal_f64(expr).map(|v| -v),
        ExprKind::Unary {
            op: UnaryOp::Plus,
            expr,
        } => literal_f64(expr),
        ExprKind::Nested(e) => literal_f64(e),
        _ => None,
    }
}

impl<'a> Translator<'a> {
    fn add_visible(&mut self, name: &str) {
        let v = self.fold.entry(name.to_ascii_lowercase()).or_default();
        if !v.iter().any(|n| n == name) {
            v.push(name.to_string());
        }
    }

    /// The spelling to emit for an identifier.
    fn resolve(&self, id: &Ident) -> String {
        if id.delimited {
            return id.name.clone();
        }
        match self.fold.get(&id.name.to_ascii_lowercase()) {
            Some(v) if v.contains(&id.name) => id.name.clone(),
            Some(v) if !v.is_empty() => v[0].clone(),
            _ => id.name.clone(),
        }
    }

    fn find_table(&self, name: &[Ident], span: Span) -> Result<&'a ExposedTable> {
        let (schema, table) = match name {
            [t] => (None, t),
            [s, t] => (Some(s), t),
            [c, s, t] => {
                return Err(Error::at(
                    ErrorKind::UnknownTable,
                    c.span,
                    format!(
                        "unknown catalog \"{}\" in {}.{}.{}: this service names tables schema.table",
                        c.name, c.name, s.name, t.name
                    ),
                ));
            }
            _ => unreachable!("the parser gives 1 to 3 name parts"),
        };
        let hits: Vec<&ExposedTable> = self
            .tables
            .iter()
            .filter(|x| eq_ident(table, &x.table) && schema.is_none_or(|s| eq_ident(s, &x.schema)))
            .collect();
        match hits.len() {
            1 => Ok(hits[0]),
            0 => {
                let written = match schema {
                    Some(s) => format!("{}.{}", s.name, table.name),
                    None => table.name.clone(),
                };
                let all: Vec<String> = self
                    .tables
                    .iter()
                    .map(|x| format!("{}.{}", x.schema, x.table))
                    .collect();
                let mut near = nearest(&written, all.iter().map(String::as_str));
                if near.is_empty() {
                    near = nearest(&table.name, self.tables.iter().map(|x| x.table.as_str()))
                        .into_iter()
                        .filter_map(|n| {
                            self.tables
                                .iter()
                                .find(|x| x.table == n)
                                .map(|x| format!("{}.{}", x.schema, x.table))
                        })
                        .collect();
                }
                Err(Error::at(
                    ErrorKind::UnknownTable,
                    span,
                    format!("unknown table {written}{}", did_you_mean(&near)),
                ))
            }
            _ => Err(Error::at(
                ErrorKind::UnknownTable,
                span,
                format!(
                    "table name {} is ambiguous: {}; qualify it with its schema",
                    table.name,
                    hits.iter()
                        .map(|x| format!("{}.{}", x.schema, x.table))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    // ---- pass 1: collect names -------------------------------------------------------

    #[recursive::recursive]
    fn collect_query(&mut self, q: &Query) -> Result<()> {
        for c in &q.with {
            self.add_visible(&c.name.name);
            for col in &c.columns {
                self.add_visible(&col.name);
            }
            self.ctes.push((c.name.clone(), c.name.name.clone()));
            self.collect_query(&c.query)?;
        }
        self.collect_set(&q.body)?;
        for o in &q.order_by {
            self.collect_expr(&o.expr)?;
        }
        Ok(())
    }

    fn collect_set(&mut self, s: &SetExpr) -> Result<()> {
        match s {
            SetExpr::Select(sel) => self.collect_select(sel),
            SetExpr::SetOp { left, right, .. } => {
                self.collect_set(left)?;
                self.collect_set(right)
            }
            SetExpr::Query(q) => self.collect_query(q),
        }
    }

    fn collect_select(&mut self, s: &Select) -> Result<()> {
        for f in &s.from {
            self.collect_table(f)?;
        }
        for it in &s.items {
            match it {
                SelectItem::Expr { expr, alias } => {
                    if let Some(a) = alias {
                        self.add_visible(&a.name);
                    }
                    self.collect_expr(expr)?;
                }
                SelectItem::QualifiedWildcard(parts, _) => {
                    if let [_, t] = parts.as_slice() {
                        self.xm_schema_qualified.push(t.name.to_ascii_lowercase());
                    }
                }
                SelectItem::Wildcard(_) => {}
            }
        }
        for e in s
            .selection
            .iter()
            .chain(s.group_by.iter())
            .chain(s.having.iter())
        {
            self.collect_expr(e)?;
        }
        Ok(())
    }

    fn is_cte(&self, name: &[Ident]) -> bool {
        name.len() == 1
            && self.ctes.iter().any(|(c, _)| {
                eq_ident(&name[0], &c.name)
                    || (c.delimited && name[0].delimited && c.name == name[0].name)
            })
    }

    #[recursive::recursive]
    fn collect_table(&mut self, t: &TableRef) -> Result<()> {
        match t {
            TableRef::Table { name, alias, span } => {
                if let Some(a) = alias {
                    self.add_visible(&a.name);
                }
                if self.is_cte(name) {
                    return Ok(());
                }
                let x = self.find_table(name, *span)?;
                self.add_visible(&x.schema);
                self.add_visible(&x.table);
                for (c, unit) in &x.columns {
                    self.add_visible(c);
                    self.units
                        .entry(c.to_ascii_lowercase())
                        .or_default()
                        .push(unit.clone());
                }
                Ok(())
            }
            TableRef::Derived {
                query,
                alias,
                columns,
                ..
            } => {
                self.add_visible(&alias.name);
                for c in columns {
                    self.add_visible(&c.name);
                }
                self.collect_query(query)
            }
            TableRef::Join {
                left,
                right,
                constraint,
                ..
            } => {
                self.collect_table(left)?;
                self.collect_table(right)?;
                match constraint {
                    JoinConstraint::On(e) => self.collect_expr(e),
                    JoinConstraint::Using(cols) => {
                        self.idents.extend(cols.iter().cloned());
                        Ok(())
                    }
                    JoinConstraint::None => Ok(()),
                }
            }
        }
    }

    #[recursive::recursive]
    fn collect_expr(&mut self, e: &Expr) -> Result<()> {
        match &e.kind {
            ExprKind::Column(parts) => {
                if let Some(last) = parts.last() {
                    self.idents.push(last.clone());
                }
                if let [_, t, _] = parts.as_slice() {
                    self.xm_schema_qualified.push(t.name.to_ascii_lowercase());
                }
            }
            ExprKind::Literal(_) | ExprKind::CountStar => {}
            ExprKind::Unary { expr, .. } | ExprKind::Nested(expr) => self.collect_expr(expr)?,
            ExprKind::IsNull { expr, .. } | ExprKind::Cast { expr, .. } => {
                self.collect_expr(expr)?
            }
            ExprKind::Binary { left, right, .. } => {
                self.collect_expr(left)?;
                self.collect_expr(right)?;
            }
            ExprKind::Between {
                expr, low, high, ..
            } => {
                self.collect_expr(expr)?;
                self.collect_expr(low)?;
                self.collect_expr(high)?;
            }
            ExprKind::Like { expr, pattern, .. } => {
                self.collect_expr(expr)?;
                self.collect_expr(pattern)?;
            }
            ExprKind::InList { expr, list, .. } => {
                self.collect_expr(expr)?;
                for x in list {
                    self.collect_expr(x)?;
                }
            }
            ExprKind::InSubquery { expr, query, .. } | ExprKind::Quantified { expr, query, .. } => {
                self.collect_expr(expr)?;
                self.collect_query(query)?;
            }
            ExprKind::Exists(q) | ExprKind::Subquery(q) => self.collect_query(q)?,
            ExprKind::Case {
                operand,
                whens,
                else_result,
            } => {
                if let Some(o) = operand {
                    self.collect_expr(o)?;
                }
                for (w, t) in whens {
                    self.collect_expr(w)?;
                    self.collect_expr(t)?;
                }
                if let Some(e) = else_result {
                    self.collect_expr(e)?;
                }
            }
            ExprKind::Function { args, .. } => {
                for a in args {
                    self.collect_expr(a)?;
                }
            }
        }
        Ok(())
    }

    // ---- pass 2: emit ----------------------------------------------------------------

    #[recursive::recursive]
    fn query(&mut self, q: &Query, top_level: bool) -> Result<String> {
        let mut out = String::new();
        if !q.with.is_empty() {
            out.push_str("WITH ");
            for (i, c) in q.with.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(&c.name.name));
                if !c.columns.is_empty() {
                    let cols: Vec<String> = c.columns.iter().map(|x| quote(&x.name)).collect();
                    let _ = write!(out, "({})", cols.join(", "));
                }
                let inner = self.query(&c.query, false)?;
                let _ = write!(out, " AS ({inner}) ");
            }
        }
        let top = match &q.body {
            SetExpr::Select(s) => {
                out.push_str(&self.select(s, top_level)?);
                s.top
            }
            other => {
                out.push_str(&self.set_expr(other, top_level)?);
                None
            }
        };
        if !q.order_by.is_empty() {
            out.push_str(" ORDER BY ");
            for (i, o) in q.order_by.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let key = match &o.expr.kind {
                    ExprKind::Literal(Literal::Integer(n)) => n.to_string(),
                    _ => self.scalar(&o.expr)?,
                };
                out.push_str(&key);
                out.push_str(if o.desc { " DESC" } else { " ASC" });
            }
        }
        match top {
            Some(n) => {
                let _ = write!(out, " LIMIT {n}");
            }
            // DataFusion drops an ORDER BY in a subquery that has no LIMIT, even when an
            // OFFSET makes the order matter; an explicit unbounded LIMIT keeps it.
            // (2^53: big enough to mean "all", small enough not to overflow DataFusion's
            // arithmetic on fetch counts.)
            None if q.offset.is_some() && !top_level => out.push_str(" LIMIT 9007199254740992"),
            None => {}
        }
        if let Some(n) = q.offset {
            let _ = write!(out, " OFFSET {n}");
        }
        Ok(out)
    }

    fn set_expr(&mut self, s: &SetExpr, top_level: bool) -> Result<String> {
        match s {
            SetExpr::Select(sel) => {
                let body = self.select(sel, top_level)?;
                match sel.top {
                    Some(n) => {
                        self.anon += 1;
                        Ok(format!(
                            "SELECT * FROM ({body} LIMIT {n}) AS \"_top{}\"",
                            self.anon
                        ))
                    }
                    None => Ok(body),
                }
            }
            SetExpr::SetOp {
                op,
                all,
                left,
                right,
            } => {
                let l = self.set_expr(left, top_level)?;
                let r = self.set_expr(right, false)?;
                if *all && matches!(op, SetOp::Except | SetOp::Intersect) {
                    return self.multiset_op(*op, left, &l, &r);
                }
                let op = match op {
                    SetOp::Union => "UNION",
                    SetOp::Except => "EXCEPT",
                    SetOp::Intersect => "INTERSECT",
                };
                let all = if *all { " ALL" } else { "" };
                Ok(format!("({l}) {op}{all} ({r})"))
            }
            SetExpr::Query(q) => {
                let inner = self.query(q, top_level)?;
                self.anon += 1;
                Ok(format!("SELECT * FROM ({inner}) AS \"_q{}\"", self.anon))
            }
        }
    }

    /// EXCEPT ALL and INTERSECT ALL with SQL's multiset meaning (DataFusion 55 treats them
    /// as anti- and semi-joins): numbering the copies of each row on both sides makes every
    /// row distinct, so the plain operator then keeps min(m, n) or max(m − n, 0) copies.
    fn multiset_op(&mut self, op: SetOp, left: &SetExpr, l: &str, r: &str) -> Result<String> {
        let mut first = left;
        let names = loop {
            match first {
                SetExpr::SetOp { left, .. } => first = left,
                SetExpr::Query(q) => first = &q.body,
                SetExpr::Select(sel) => break self.item_names(sel),
            }
        };
        let Some(names) = names else {
            return Err(Error::query(
                ErrorKind::Unsupported,
                "EXCEPT ALL and INTERSECT ALL need an explicit select list (no *) on their left side",
            ));
        };
        self.anon += 1;
        let a = self.anon;
        let cols: Vec<String> = (1..=names.len()).map(|i| format!("\"_c{i}\"")).collect();
        let cols = cols.join(", ");
        let side = |sql: &str, tag: &str| {
            format!(
                "(SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY {cols}) AS \"_rn\" FROM ({sql}) AS \"_{tag}{a}\"({cols}))"
            )
        };
        let op = if op == SetOp::Except {
            "EXCEPT"
        } else {
            "INTERSECT"
        };
        let outs: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("\"_c{}\" AS {}", i + 1, quote(n)))
            .collect();
        Ok(format!(
            "SELECT {} FROM ({} {op} {}) AS \"_m{a}\"",
            outs.join(", "),
            side(l, "l"),
            side(r, "r")
        ))
    }

    /// Output names of a select list, or `None` when it has wildcards.
    fn item_names(&self, s: &Select) -> Option<Vec<String>> {
        let mut used: HashMap<String, usize> = HashMap::new();
        let mut names = Vec::new();
        for it in &s.items {
            let SelectItem::Expr { expr, alias } = it else {
                return None;
            };
            let base = match alias {
                Some(a) => a.name.clone(),
                None => default_name(expr, |id| self.resolve(id)),
            };
            let n = used.entry(base.to_ascii_lowercase()).or_insert(0);
            *n += 1;
            names.push(if *n == 1 || alias.is_some() {
                base
            } else {
                format!("{base}_{n}")
            });
        }
        Some(names)
    }

    /// The SQL qualifier of a simple FROM item (a table or derived table).
    fn qualifier(&self, t: &TableRef) -> Option<String> {
        match t {
            TableRef::Table { alias: Some(a), .. } | TableRef::Derived { alias: a, .. } => {
                Some(quote(&a.name))
            }
            TableRef::Table { name, span, .. } => {
                if self.is_cte(name) {
                    Some(quote(&self.resolve(&name[0])))
                } else {
                    let x = self.find_table(name, *span).ok()?;
                    Some(format!("{}.{}", quote(&x.schema), quote(&x.table)))
                }
            }
            TableRef::Join { .. } => None,
        }
    }

    fn collect_using(&self, t: &TableRef, out: &mut HashMap<String, (String, String)>) {
        if let TableRef::Join {
            left,
            right,
            kind,
            constraint,
            ..
        } = t
        {
            self.collect_using(left, out);
            self.collect_using(right, out);
            if let (JoinKind::Full | JoinKind::Right, JoinConstraint::Using(cols)) =
                (kind, constraint)
                && let (Some(l), Some(r)) = (self.qualifier(left), self.qualifier(right))
            {
                for c in cols {
                    out.insert(c.name.to_ascii_lowercase(), (l.clone(), r.clone()));
                }
            }
        }
    }

    fn select(&mut self, s: &Select, top_level: bool) -> Result<String> {
        let mut scope = HashMap::new();
        for f in &s.from {
            self.collect_using(f, &mut scope);
        }
        self.using_scope.push(scope);
        self.xm_keys.push(Vec::new());
        let r = self.select_inner(s, top_level);
        self.xm_keys.pop();
        self.using_scope.pop();
        r
    }

    fn select_inner(&mut self, s: &Select, top_level: bool) -> Result<String> {
        let mut out = String::from("SELECT ");
        if s.distinct {
            out.push_str("DISTINCT ");
        }
        // FROM first: crossmatch expansions add key columns that wildcards must leave out.
        let (from, xm_conds) = self.xmatch_from(&s.from, s.selection.as_ref())?;
        let mut used: HashMap<String, usize> = HashMap::new();
        for (i, it) in s.items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match it {
                SelectItem::Wildcard(_) => out.push_str(&self.xm_wildcard(None)),
                SelectItem::QualifiedWildcard(parts, _) => {
                    let q: Vec<String> = parts.iter().map(|p| quote(&self.resolve(p))).collect();
                    out.push_str(&self.xm_wildcard(Some(&q.join("."))));
                }
                SelectItem::Expr { expr, alias } => {
                    let (val, unit) = self.select_value(expr)?;
                    let base = match alias {
                        Some(a) => a.name.clone(),
                        None => default_name(expr, |id| self.resolve(id)),
                    };
                    let n = used.entry(base.to_ascii_lowercase()).or_insert(0);
                    *n += 1;
                    let name = if *n == 1 || alias.is_some() {
                        base
                    } else {
                        format!("{base}_{n}")
                    };
                    let xtype = match &val {
                        Val::Geo(g) => g.kind().map(Kind::xtype),
                        Val::Sql(_) => None,
                    };
                    if top_level && (xtype.is_some() || unit.is_some()) {
                        self.outputs.insert(name.clone(), Output { xtype, unit });
                    }
                    let _ = write!(out, "{} AS {}", val.sql(), quote(&name));
                }
            }
        }
        if !s.from.is_empty() {
            let _ = write!(out, " FROM {from}");
        }
        if let Some(w) = &s.selection {
            let w = self.scalar(w)?;
            if xm_conds.is_empty() {
                let _ = write!(out, " WHERE {w}");
            } else {
                let _ = write!(out, " WHERE {} AND ({w})", xm_conds.join(" AND "));
            }
        }
        if !s.group_by.is_empty() {
            out.push_str(" GROUP BY ");
            for (i, g) in s.group_by.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&self.scalar(g)?);
            }
        }
        if let Some(h) = &s.having {
            let _ = write!(out, " HAVING {}", self.scalar(h)?);
        }
        Ok(out)
    }

    /// A select item's value and, for IN_UNIT, its new unit.
    fn select_value(&mut self, e: &Expr) -> Result<(Val, Option<String>)> {
        if let ExprKind::Function { name, args, .. } = &e.kind
            && name.name.eq_ignore_ascii_case("IN_UNIT")
            && args.len() == 2
            && let ExprKind::Literal(Literal::String(u)) = &args[1].kind
        {
            return Ok((self.expr(e)?, Some(u.clone())));
        }
        if let ExprKind::Nested(inner) = &e.kind {
            return self.select_value(inner);
        }
        Ok((self.expr(e)?, None))
    }

    #[recursive::recursive]
    fn table_ref(&mut self, t: &TableRef) -> Result<String> {
        match t {
            TableRef::Table { name, alias, span } => {
                let base = if self.is_cte(name) {
                    let c = self
                        .ctes
                        .iter()
                        .find(|(c, _)| eq_ident(&name[0], &c.name))
                        .map(|(_, s)| s.clone())
                        .unwrap_or_else(|| name[0].name.clone());
                    quote(&c)
                } else {
                    let x = self.find_table(name, *span)?;
                    format!("{}.{}", quote(&x.schema), quote(&x.table))
                };
                Ok(match alias {
                    Some(a) => format!("{base} AS {}", quote(&a.name)),
                    None => base,
                })
            }
            TableRef::Derived {
                query,
                alias,
                columns,
                ..
            } => {
                let inner = self.query(query, false)?;
                let mut s = format!("({inner}) AS {}", quote(&alias.name));
                if !columns.is_empty() {
                    let cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
                    let _ = write!(s, "({})", cols.join(", "));
                }
                Ok(s)
            }
            TableRef::Join {
                left,
                right,
                kind,
                natural,
                constraint,
                ..
            } => {
                if let (JoinConstraint::On(on), false) = (constraint, natural)
                    && let Some(sql) = self.xmatch_join(left, right, *kind, on)?
                {
                    return Ok(sql);
                }
                let l = self.table_ref(left)?;
                let r = self.table_ref(right)?;
                let k = match kind {
                    JoinKind::Inner => "INNER JOIN",
                    JoinKind::Left => "LEFT OUTER JOIN",
                    JoinKind::Right => "RIGHT OUTER JOIN",
                    JoinKind::Full => "FULL OUTER JOIN",
                    JoinKind::Cross => "CROSS JOIN",
                };
                let nat = if *natural { "NATURAL " } else { "" };
                let c = match constraint {
                    JoinConstraint::None => String::new(),
                    JoinConstraint::On(e) => format!(" ON {}", self.scalar(e)?),
                    JoinConstraint::Using(cols) => {
                        let cs: Vec<String> =
                            cols.iter().map(|c| quote(&self.resolve(c))).collect();
                        format!(" USING ({})", cs.join(", "))
                    }
                };
                Ok(format!("({l} {nat}{k} {r}{c})"))
            }
        }
    }

    /// A non-region expression.
    fn scalar(&mut self, e: &Expr) -> Result<String> {
        match self.expr(e)? {
            Val::Sql(s) => Ok(s),
            Val::Geo(g) => Ok(g.value_sql()),
        }
    }

    #[recursive::recursive]
    fn expr(&mut self, e: &Expr) -> Result<Val> {
        let s = match &e.kind {
            ExprKind::Column(parts) => {
                if let [c] = parts.as_slice()
                    && let Some((l, r)) = self
                        .using_scope
                        .last()
                        .and_then(|m| m.get(&c.name.to_ascii_lowercase()))
                {
                    let name = quote(&self.resolve(c));
                    return Ok(Val::Sql(format!("COALESCE({l}.{name}, {r}.{name})")));
                }
                let q: Vec<String> = parts.iter().map(|p| quote(&self.resolve(p))).collect();
                q.join(".")
            }
            ExprKind::Literal(l) => match l {
                Literal::Integer(i) => {
                    if *i < 0 {
                        format!("({i})")
                    } else {
                        i.to_string()
                    }
                }
                Literal::Float(f, text) => {
                    if text.is_empty() {
                        format!("{f:?}")
                    } else {
                        text.clone()
                    }
                }
                Literal::String(s) => format!("'{}'", s.replace('\'', "''")),
                Literal::Null => "NULL".into(),
                Literal::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            },
            ExprKind::Unary { op, expr } => {
                let x = self.scalar(expr)?;
                match op {
                    UnaryOp::Neg => format!("(-{x})"),
                    UnaryOp::Plus => x,
                    UnaryOp::BitNot => format!("((-{x}) - 1)"),
                    UnaryOp::Not => format!("(NOT {x})"),
                }
            }
            ExprKind::Binary { op, left, right } => {
                if let Some(sql) = self.distance_bound(*op, left, right)? {
                    return Ok(Val::Sql(sql));
                }
                let l = self.scalar(left)?;
                let r = self.scalar(right)?;
                let o = match op {
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
                format!("({l} {o} {r})")
            }
            ExprKind::IsNull { expr, negated } => {
                let x = self.scalar(expr)?;
                format!("({x} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let x = self.scalar(expr)?;
                let l = self.scalar(low)?;
                let h = self.scalar(high)?;
                format!(
                    "({x} {}BETWEEN {l} AND {h})",
                    if *negated { "NOT " } else { "" }
                )
            }
            ExprKind::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let x = self.scalar(expr)?;
                let p = self.scalar(pattern)?;
                let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
                format!("({x} {}{op} {p})", if *negated { "NOT " } else { "" })
            }
            ExprKind::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.scalar(expr)?;
                let mut items = Vec::with_capacity(list.len());
                for v in list {
                    items.push(self.scalar(v)?);
                }
                format!(
                    "({x} {}IN ({}))",
                    if *negated { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            ExprKind::InSubquery {
                expr,
                query,
                negated,
            } => {
                let x = self.scalar(expr)?;
                let q = self.query(query, false)?;
                format!("({x} {}IN ({q}))", if *negated { "NOT " } else { "" })
            }
            ExprKind::Exists(q) => format!("(EXISTS ({}))", self.query(q, false)?),
            ExprKind::Subquery(q) => format!("({})", self.query(q, false)?),
            ExprKind::Quantified {
                expr,
                op,
                quantifier,
                query,
            } => {
                // x op ANY (S) ≡ EXISTS (SELECT 1 FROM (S) q(v) WHERE x op v);
                // x op ALL (S) ≡ NOT EXISTS (… WHERE NOT (x op v) OR v IS NULL OR x IS NULL).
                // Exact in WHERE/HAVING, where unknown and false both reject the row.
                let x = self.scalar(expr)?;
                let q = self.query(query, false)?;
                let o = match op {
                    BinaryOp::Eq => "=",
                    BinaryOp::NotEq => "<>",
                    BinaryOp::Lt => "<",
                    BinaryOp::LtEq => "<=",
                    BinaryOp::Gt => ">",
                    BinaryOp::GtEq => ">=",
                    _ => {
                        return Err(Error::at(
                            ErrorKind::Semantic,
                            e.span,
                            "ANY/SOME/ALL need a comparison operator",
                        ));
                    }
                };
                self.anon += 1;
                let a = self.anon;
                match quantifier {
                    Quantifier::Any => format!(
                        "(EXISTS (SELECT 1 FROM ({q}) AS \"_qa{a}\"(\"_v\") WHERE {x} {o} \"_qa{a}\".\"_v\"))"
                    ),
                    Quantifier::All => format!(
                        "(NOT EXISTS (SELECT 1 FROM ({q}) AS \"_qa{a}\"(\"_v\") WHERE (NOT ({x} {o} \"_qa{a}\".\"_v\")) OR \"_qa{a}\".\"_v\" IS NULL OR {x} IS NULL))"
                    ),
                }
            }
            ExprKind::Case {
                operand,
                whens,
                else_result,
            } => {
                let mut s = String::from("(CASE");
                if let Some(o) = operand {
                    let _ = write!(s, " {}", self.scalar(o)?);
                }
                for (w, t) in whens {
                    let w = self.scalar(w)?;
                    let t = self.scalar(t)?;
                    let _ = write!(s, " WHEN {w} THEN {t}");
                }
                if let Some(x) = else_result {
                    let _ = write!(s, " ELSE {}", self.scalar(x)?);
                }
                s.push_str(" END)");
                s
            }
            ExprKind::Cast { expr, to } => {
                let ty = match to {
                    CastType::SmallInt => "SMALLINT",
                    CastType::Integer => "INTEGER",
                    CastType::BigInt => "BIGINT",
                    CastType::Real => "REAL",
                    CastType::Double => "DOUBLE",
                    CastType::Char(_) | CastType::VarChar(_) => "VARCHAR",
                    CastType::Timestamp => "TIMESTAMP",
                    CastType::Point | CastType::Circle | CastType::Polygon => {
                        return Err(Error::at(
                            ErrorKind::Unsupported,
                            e.span,
                            "CAST to a geometric type is not supported; use POINT, CIRCLE or POLYGON",
                        ));
                    }
                };
                let x = self.scalar(expr)?;
                match to {
                    // CHAR(n) pads to n characters, VARCHAR(n) cuts at n.
                    CastType::Char(Some(n)) => format!("rpad(CAST({x} AS VARCHAR), {n})"),
                    CastType::VarChar(Some(n)) => format!("substr(CAST({x} AS VARCHAR), 1, {n})"),
                    _ => format!("CAST({x} AS {ty})"),
                }
            }
            ExprKind::CountStar => "count(*)".into(),
            ExprKind::Nested(inner) => {
                return match self.expr(inner)? {
                    Val::Sql(s) => Ok(Val::Sql(format!("({s})"))),
                    g => Ok(g),
                };
            }
            ExprKind::Function {
                name,
                args,
                distinct,
            } => return self.function(e, name, args, *distinct),
        };
        Ok(Val::Sql(s))
    }

    fn function(&mut self, e: &Expr, name: &Ident, args: &[Expr], distinct: bool) -> Result<Val> {
        let upper = name.name.to_ascii_uppercase();
        let arity = |min: usize, max: usize| -> Result<()> {
            if args.len() < min || args.len() > max {
                let want = if min == max {
                    format!("{min}")
                } else if max == usize::MAX {
                    format!("at least {min}")
                } else {
                    format!("{min} or {max}")
                };
                Err(Error::at(
                    ErrorKind::Semantic,
                    e.span,
                    format!(
                        "{upper} takes {want} argument{}, not {}",
                        if want == "1" { "" } else { "s" },
                        args.len()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        if distinct && !AGGREGATES.contains(&upper.as_str()) {
            return Err(Error::at(
                ErrorKind::Syntax,
                e.span,
                format!("DISTINCT is only allowed in aggregate functions, not in {upper}"),
            ));
        }
        if let Some(&(_, min, max, df)) = SIMPLE_FUNCTIONS.iter().find(|f| f.0 == upper) {
            arity(min, max)?;
            let mut a = Vec::with_capacity(args.len());
            for x in args {
                a.push(self.scalar(x)?);
            }
            let d = if distinct { "DISTINCT " } else { "" };
            return Ok(Val::Sql(format!("{df}({d}{})", a.join(", "))));
        }
        match upper.as_str() {
            "MOD" => {
                arity(2, 2)?;
                let a = self.scalar(&args[0])?;
                let b = self.scalar(&args[1])?;
                Ok(Val::Sql(format!("({a} % {b})")))
            }
            "RAND" => {
                arity(0, 1)?;
                if let Some(seed) = args.first() {
                    let s = self.scalar(seed)?;
                    return Ok(Val::Sql(format!("adql_rand(CAST({s} AS BIGINT))")));
                }
                Ok(Val::Sql("random()".into()))
            }
            "IN_UNIT" => {
                arity(2, 2)?;
                let ExprKind::Literal(Literal::String(to)) = &args[1].kind else {
                    return Err(Error::at(
                        ErrorKind::Semantic,
                        args[1].span,
                        "IN_UNIT needs the target unit as a string literal",
                    ));
                };
                let from = self.unit_of(&args[0])?;
                let factor = crate::units::factor(&from, to)
                    .map_err(|m| Error::at(ErrorKind::Semantic, e.span, format!("IN_UNIT: {m}")))?;
                let x = self.scalar(&args[0])?;
                Ok(Val::Sql(format!("(CAST({x} AS DOUBLE) * {factor:?})")))
            }
            "POINT" | "CIRCLE" | "BOX" | "POLYGON" => self.region(e, &upper, args),
            "CONTAINS" | "INTERSECTS" => {
                arity(2, 2)?;
                let a = self.geo(&args[0])?;
                let b = self.geo(&args[1])?;
                let contains = upper == "CONTAINS";
                // Fast kernels for a point against a circle or polygon: CONTAINS(point, r)
                // and INTERSECTS in either order (a point intersects what contains it).
                let (p, r) = match (&a, &b) {
                    (Geo::Point { .. }, _) => (Some(&a), &b),
                    (_, Geo::Point { .. }) if !contains => (Some(&b), &a),
                    _ => (None, &b),
                };
                Ok(Val::Sql(match (p, r) {
                    (
                        Some(Geo::Point { ra, dec }),
                        Geo::Circle {
                            ra: cra,
                            dec: cdec,
                            r,
                        },
                    ) => {
                        format!("adql_point_in_circle({ra}, {dec}, {cra}, {cdec}, {r})")
                    }
                    (Some(Geo::Point { ra, dec }), poly @ Geo::Polygon(_)) => {
                        format!("adql_point_in_polygon({ra}, {dec}, {})", poly.value_sql())
                    }
                    _ => {
                        let f = if contains {
                            "adql_contains"
                        } else {
                            "adql_intersects"
                        };
                        format!("{f}({}, {})", a.value_sql(), b.value_sql())
                    }
                }))
            }
            "DISTANCE" => {
                arity(2, 4)?;
                if args.len() == 4 {
                    let mut a = Vec::new();
                    for x in args {
                        a.push(self.scalar(x)?);
                    }
                    return Ok(Val::Sql(format!("adql_distance({})", a.join(", "))));
                }
                if args.len() != 2 {
                    return arity(2, 2).map(|_| unreachable!());
                }
                let a = self.geo(&args[0])?;
                let b = self.geo(&args[1])?;
                for (g, x) in [(&a, &args[0]), (&b, &args[1])] {
                    if g.kind().is_some_and(|k| k != Kind::Point) {
                        return Err(Error::at(
                            ErrorKind::Semantic,
                            x.span,
                            "DISTANCE takes two points (or four numbers)",
                        ));
                    }
                }
                Ok(Val::Sql(match (&a, &b) {
                    (Geo::Point { ra, dec }, Geo::Point { ra: r2, dec: d2 }) => {
                        format!("adql_distance({ra}, {dec}, {r2}, {d2})")
                    }
                    _ => format!("adql_distance_geom({}, {})", a.value_sql(), b.value_sql()),
                }))
            }
            "AREA" => {
                arity(1, 1)?;
                let g = self.geo(&args[0])?;
                Ok(Val::Sql(format!("adql_area({})", g.value_sql())))
            }
            "CENTROID" => {
                arity(1, 1)?;
                let g = self.geo(&args[0])?;
                Ok(Val::Geo(match g {
                    p @ Geo::Point { .. } => p,
                    Geo::Circle { ra, dec, .. } => Geo::Point { ra, dec },
                    other => Geo::Value {
                        sql: format!("adql_centroid({})", other.value_sql()),
                        kind: Some(Kind::Point),
                    },
                }))
            }
            "COORD1" | "COORD2" => {
                arity(1, 1)?;
                let g = self.geo(&args[0])?;
                if g.kind().is_some_and(|k| k != Kind::Point) {
                    return Err(Error::at(
                        ErrorKind::Semantic,
                        args[0].span,
                        format!("{upper} takes a point"),
                    ));
                }
                Ok(Val::Sql(match (g, upper.as_str()) {
                    (Geo::Point { ra, .. }, "COORD1") => format!("CAST({ra} AS DOUBLE)"),
                    (Geo::Point { dec, .. }, _) => format!("CAST({dec} AS DOUBLE)"),
                    (g, "COORD1") => format!("adql_coord1({})", g.value_sql()),
                    (g, _) => format!("adql_coord2({})", g.value_sql()),
                }))
            }
            "COORDSYS" => {
                arity(1, 1)?;
                self.geo(&args[0])?;
                Ok(Val::Sql("'ICRS'".into()))
            }
            "REGION" => Err(Error::at(
                ErrorKind::Unsupported,
                e.span,
                "REGION (STC-S strings) is not supported; use POINT, CIRCLE or POLYGON",
            )),
            _ if upper == "IVO_HEALPIX_INDEX" => {
                arity(3, 3)?;
                let mut a = Vec::new();
                for x in args {
                    a.push(self.scalar(x)?);
                }
                Ok(Val::Sql(format!("ivo_healpix_index({})", a.join(", "))))
            }
            _ if upper == "IVO_HEALPIX_CENTER" => {
                arity(2, 2)?;
                let a = self.scalar(&args[0])?;
                let b = self.scalar(&args[1])?;
                Ok(Val::Geo(Geo::Value {
                    sql: format!("ivo_healpix_center({a}, {b})"),
                    kind: Some(Kind::Point),
                }))
            }
            _ => {
                let near = nearest(&name.name, FUNCTIONS.iter().copied());
                Err(Error::at(
                    ErrorKind::UnknownFunction,
                    name.span,
                    format!("unknown function {}{}", name.name, did_you_mean(&near)),
                ))
            }
        }
    }

    /// `DISTANCE(p, q) < r` (or `<=`, or `r > DISTANCE(…)`) with a literal radius: the exact
    /// comparison AND-ed with the point-in-circle kernel, which spatial pruning recognises
    /// and which rejects most rows cheaply. The point made of column references goes first.
    fn distance_bound(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
    ) -> Result<Option<String>> {
        let (dist, radius, o) = match op {
            BinaryOp::Lt | BinaryOp::LtEq => {
                (left, right, if op == BinaryOp::Lt { "<" } else { "<=" })
            }
            BinaryOp::Gt | BinaryOp::GtEq => {
                (right, left, if op == BinaryOp::Gt { "<" } else { "<=" })
            }
            _ => return Ok(None),
        };
        let mut d = dist;
        while let ExprKind::Nested(x) = &d.kind {
            d = x;
        }
        let ExprKind::Function { name, args, .. } = &d.kind else {
            return Ok(None);
        };
        if !name.name.eq_ignore_ascii_case("DISTANCE")
            || !literal_f64(radius).is_some_and(|r| (0.0..=180.0).contains(&r))
        {
            return Ok(None);
        }
        let points: Vec<(String, String, bool)> = match args.len() {
            4 => vec![
                (
                    self.scalar(&args[0])?,
                    self.scalar(&args[1])?,
                    is_column(&args[0]),
                ),
                (
                    self.scalar(&args[2])?,
                    self.scalar(&args[3])?,
                    is_column(&args[2]),
                ),
            ],
            2 => {
                let mut v = Vec::new();
                for a in args {
                    match self.geo(a)? {
                        Geo::Point { ra, dec } => {
                            let col = matches!(&a.kind, ExprKind::Function { args, .. } if args.iter().any(is_column));
                            v.push((ra, dec, col));
                        }
                        _ => return Ok(None),
                    }
                }
                v
            }
            _ => return Ok(None),
        };
        let (p, q) = if !points[0].2 && points[1].2 {
            (&points[1], &points[0])
        } else {
            (&points[0], &points[1])
        };
        let r = self.scalar(radius)?;
        Ok(Some(format!(
            "(adql_point_in_circle({}, {}, {}, {}, {r}) = 1 AND adql_distance({}, {}, {}, {}) {o} {r})",
            p.0, p.1, q.0, q.1, p.0, p.1, q.0, q.1
        )))
    }

    /// The unit of a column reference, for IN_UNIT.
    fn unit_of(&self, e: &Expr) -> Result<String> {
        let inner = match &e.kind {
            ExprKind::Nested(x) => return self.unit_of(x),
            ExprKind::Column(parts) => parts.last(),
            _ => None,
        };
        let Some(col) = inner else {
            return Err(Error::at(
                ErrorKind::Semantic,
                e.span,
                "IN_UNIT needs a column with a declared unit as its first argument",
            ));
        };
        let units: Vec<&String> = self
            .units
            .get(&col.name.to_ascii_lowercase())
            .map(|v| v.iter().flatten().collect())
            .unwrap_or_default();
        match units.first() {
            Some(u) if units.iter().all(|x| x == u) => Ok((*u).clone()),
            Some(_) => Err(Error::at(
                ErrorKind::Semantic,
                e.span,
                format!(
                    "IN_UNIT: column {} has different units in the tables read",
                    col.name
                ),
            )),
            None => Err(Error::at(
                ErrorKind::Semantic,
                e.span,
                format!("IN_UNIT: column {} has no declared unit", col.name),
            )),
        }
    }

    /// A region constructor.
    fn region(&mut self, e: &Expr, upper: &str, args: &[Expr]) -> Result<Val> {
        // ADQL 2.1: the coordinate system argument is optional and deprecated.
        let mut args = args;
        if let Some(first) = args.first()
            && let Some(sys) = self.coord_sys(first)?
        {
            let s = sys.trim().to_ascii_uppercase();
            if !(s.is_empty() || s == "ICRS" || s.starts_with("ICRS ")) {
                return Err(Error::at(
                    ErrorKind::Geometry,
                    first.span,
                    format!(
                        "coordinate system '{sys}' is not supported: this service holds ICRS positions only (use 'ICRS' or '')"
                    ),
                ));
            }
            args = &args[1..];
        }
        let lits: Option<Vec<f64>> = args.iter().map(literal_f64).collect();
        let geo = match upper {
            "POINT" => {
                if args.len() != 2 {
                    return Err(arg_count(e, "POINT", "[coordsys,] ra, dec", args.len()));
                }
                if let Some(v) = &lits {
                    crate::geom::validate_point(v[0], v[1])
                        .map_err(|m| Error::at(ErrorKind::Geometry, e.span, m))?;
                }
                Geo::Point {
                    ra: self.scalar(&args[0])?,
                    dec: self.scalar(&args[1])?,
                }
            }
            "CIRCLE" => {
                let (ra, dec, r) = match args.len() {
                    3 => (
                        self.scalar(&args[0])?,
                        self.scalar(&args[1])?,
                        self.scalar(&args[2])?,
                    ),
                    2 => match self.geo(&args[0])? {
                        Geo::Point { ra, dec } => (ra, dec, self.scalar(&args[1])?),
                        _ => {
                            return Err(Error::at(
                                ErrorKind::Semantic,
                                args[0].span,
                                "CIRCLE(center, radius) needs a POINT as center",
                            ));
                        }
                    },
                    n => return Err(arg_count(e, "CIRCLE", "[coordsys,] ra, dec, radius", n)),
                };
                if let Some(v) = &lits
                    && v.len() == 3
                {
                    crate::geom::validate_circle(v[0], v[1], v[2])
                        .map_err(|m| Error::at(ErrorKind::Geometry, e.span, m))?;
                }
                Geo::Circle { ra, dec, r }
            }
            "BOX" => {
                if args.len() != 4 {
                    return Err(arg_count(
                        e,
                        "BOX",
                        "[coordsys,] ra, dec, width, height",
                        args.len(),
                    ));
                }
                let mut a = Vec::new();
                for x in args {
                    a.push(self.scalar(x)?);
                }
                if let Some(v) = &lits {
                    crate::geom::validate_box(v[0], v[1], v[2], v[3])
                        .map_err(|m| Error::at(ErrorKind::Geometry, e.span, m))?;
                }
                Geo::Value {
                    sql: format!("adql_box({})", a.join(", ")),
                    kind: Some(Kind::Polygon),
                }
            }
            _ => {
                // POLYGON(ra1, dec1, …) or POLYGON(point, point, point, …).
                let mut verts = Vec::new();
                let all_points = args.len() >= 3
                    && args.iter().all(|a| {
                        matches!(&a.kind, ExprKind::Function { name, .. } if name.name.eq_ignore_ascii_case("POINT"))
                    });
                if all_points {
                    for a in args {
                        match self.geo(a)? {
                            Geo::Point { ra, dec } => verts.push((ra, dec)),
                            _ => unreachable!("POINT gives a point"),
                        }
                    }
                } else {
                    if args.len() < 6 || !args.len().is_multiple_of(2) {
                        return Err(Error::at(
                            ErrorKind::Geometry,
                            e.span,
                            format!(
                                "POLYGON needs at least 3 vertices as ra, dec pairs (an even number ≥ 6 of coordinates), got {} coordinate{}",
                                args.len(),
                                if args.len() == 1 { "" } else { "s" }
                            ),
                        ));
                    }
                    for p in args.chunks(2) {
                        verts.push((self.scalar(&p[0])?, self.scalar(&p[1])?));
                    }
                    if let Some(v) = &lits {
                        crate::geom::validate_polygon(v)
                            .map_err(|m| Error::at(ErrorKind::Geometry, e.span, m))?;
                    }
                }
                Geo::Polygon(verts)
            }
        };
        Ok(Val::Geo(geo))
    }

    /// The coordinate-system argument, when `e` is one (a string literal).
    fn coord_sys(&self, e: &Expr) -> Result<Option<String>> {
        match &e.kind {
            ExprKind::Literal(Literal::String(s)) => Ok(Some(s.clone())),
            ExprKind::Nested(x) => self.coord_sys(x),
            _ => Ok(None),
        }
    }

    /// An expression that must be a region.
    fn geo(&mut self, e: &Expr) -> Result<Geo> {
        match self.expr(e)? {
            Val::Geo(g) => Ok(g),
            Val::Sql(s) => {
                // A column or expression holding a region value (List<Float64>).
                if matches!(e.kind, ExprKind::Literal(_)) {
                    return Err(Error::at(
                        ErrorKind::Semantic,
                        e.span,
                        "a region (POINT, CIRCLE, BOX or POLYGON) is needed here",
                    ));
                }
                Ok(Geo::Value { sql: s, kind: None })
            }
        }
    }
}

fn is_column(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Column(_) => true,
        ExprKind::Nested(x) => is_column(x),
        _ => false,
    }
}

fn arg_count(e: &Expr, f: &str, form: &str, n: usize) -> Error {
    Error::at(
        ErrorKind::Semantic,
        e.span,
        format!(
            "{f}({form}) called with {n} argument{}",
            if n == 1 { "" } else { "s" }
        ),
    )
}

/// The output name of an unaliased select item.
fn default_name(e: &Expr, resolve: impl Fn(&Ident) -> String) -> String {
    match &e.kind {
        ExprKind::Column(parts) => parts.last().map(resolve).unwrap_or_else(|| "expr".into()),
        ExprKind::Function { name, .. } => name.name.to_ascii_lowercase(),
        ExprKind::CountStar => "count".into(),
        ExprKind::Nested(x) => default_name(x, resolve),
        ExprKind::Cast { expr, .. } => default_name(expr, resolve),
        _ => "expr".into(),
    }
}
