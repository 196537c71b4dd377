//! Crossmatch: positional joins as HEALPix-bucketed equi-joins.
//!
//! A join (or a comma join with a WHERE) between two table expressions whose condition has,
//! as one of its AND-ed terms, a positional predicate with a constant radius `r` (degrees)
//!
//! * `DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < r` (also `<=`, `r >`, `r >=`, the
//!   four-number form of DISTANCE),
//! * `1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, r))` (or `= 1`, either point inside
//!   the circle, `CIRCLE(POINT(…), r)`),
//! * `1 = INTERSECTS(POINT(…), CIRCLE(…))` in either order,
//!
//! where one point is computed from one side only and the other point from the other side
//! only, is rewritten into an equi-join on a HEALPix cell (NESTED, order `k`):
//!
//! * the *keyed* side contributes the cell of its own point, `ivo_healpix_index(k, ra, dec)`;
//! * the *expanded* side becomes `(SELECT t.*, unnest(adql_cone_cells(k, ra, dec, r)) AS _xkN
//!   FROM t) AS t`: one copy of each row per cell at order `k` that its circle of radius `r`
//!   touches (`cdshealpix` cone coverage: conservative, exact at the poles and across RA 0/360,
//!   with the radius widened by 10⁻⁹ rad so that rounding cannot drop a border cell);
//! * the join condition becomes `key = _xkN AND <the original condition>`, so the original
//!   exact predicate is still the filter and the result is the same as the nested loop's.
//!
//! **Exactly once.** If `DISTANCE(p, q) ≤ r` then `p`'s cell is one of the cells `q`'s circle
//! touches, so every pair is found; the cells of one circle are distinct, so a pair meets only
//! at `p`'s one cell: each pair is produced once. A LEFT (RIGHT) join keeps its preserved side
//! keyed (never expanded), so a preserved row gets its matches once each, or one null-extended
//! row when the exact condition rejects every candidate. FULL joins are not rewritten.
//!
//! **Order.** `k` is the deepest order at which a circle of radius `r` meets at most the cell
//! of its centre and that cell's 8 neighbours (`cdshealpix::best_starting_depth`: the cells'
//! smallest edge-to-opposite-edge width exceeds `r`), so each row is copied at most 9 times
//! (about 4–9 in practice) and buckets are as small as that allows; cone coverage at that
//! order takes cdshealpix's fast neighbour path. Radii ≥ 48° use order 0. Correctness does
//! not depend on `k` (the coverage is complete at every order); only the work does. (That
//! fast path misses cells across a pole; [`cone_cells`] adds the polar rings there.)
//!
//! **Which side is expanded.** An outer join's non-preserved side. Otherwise a derived table,
//! a CTE or a non-catalog table (typically a small upload or a selection) rather than a
//! catalog, else the right-hand (later) one. (Row counts would choose better between two
//! catalogs; the translator does not see them.) The expanded side must be a single table,
//! derived table or CTE reference: it is wrapped in a derived table under its alias, or under
//! its table name when unaliased — unless the query names its columns as
//! `schema.table.column`, which a one-part name cannot serve. The keyed
//! side may be anything, including a join. The keyed side's cell is computed from the
//! predicate's own coordinates (not from `_healpix_29`, which belongs to the catalog's
//! declared position columns only; the hash costs tens of nanoseconds a row).
//!
//! **Scope.** In an ON clause the first positional term of the top-level AND is used. In the
//! comma form each positional WHERE term between two FROM items expands one item (each item at
//! most once); further terms stay plain filters. Wildcards (`*`, `t.*`) leave the `_xkN`
//! columns out (`EXCLUDE`).
//!
//! **Not rewritten** (the plain join plan, as before): a radius that is not a constant (a
//! column per row), a predicate under OR or NOT, FULL joins, NATURAL joins, points whose
//! columns cannot be attributed to one side (unqualified names where a side's columns are not
//! known, columns of an outer query), and joins where no allowed side can be expanded.
//!
//! The hash join builds its table from one whole input: memory is that of a hash join over the
//! expanded rows (DataFusion's pool limits and spills it), not partition by partition.

use super::*;

/// Radius added, in radians, before covering a circle with cells: far above the rounding of
/// the exact tests (whose own tolerance is 10⁻¹³ rad), far below any useful radius.
const COVER_MARGIN_RAD: f64 = 1e-9;

/// The radius actually covered, in radians.
fn cover_radius_rad(r_deg: f64) -> f64 {
    r_deg.to_radians() * (1.0 + 1e-9) + COVER_MARGIN_RAD
}

/// The HEALPix order of the buckets for radius `r_deg` (degrees).
pub(crate) fn order_for(r_deg: f64) -> u8 {
    let r = cover_radius_rad(r_deg);
    if cdshealpix::has_best_starting_depth(r) {
        cdshealpix::best_starting_depth(r)
    } else {
        0
    }
}

/// The NESTED cells at `order` that the circle of radius `r_deg` around (`ra`, `dec`) touches
/// (a superset: may hold a cell the circle only nears, never misses one it touches), appended
/// to `out` in increasing order. The caller has validated the numbers.
///
/// `cdshealpix::nested::cone_coverage_approx` takes the cells of the 3×3 neighbourhood of the
/// centre's cell when the radius is below the cells' width, which misses cells across a pole
/// (four base cells meet there, and a small cone around a point near the pole reaches cells of
/// the opposite base cell that are not neighbours). So when the circle comes within a few cells
/// of a pole, every cell of the polar rings it may reach is added (RING indices, converted).
pub(crate) fn cone_cells(order: u8, ra: f64, dec: f64, r_deg: f64, out: &mut Vec<i64>) {
    use std::f64::consts::FRAC_PI_2;
    let r = cover_radius_rad(r_deg);
    let layer = cdshealpix::nested::get(order);
    // cdshealpix's approximate coverage is not meant for cones wider than a hemisphere.
    if r >= FRAC_PI_2 {
        out.extend(0..layer.n_hash() as i64);
        return;
    }
    let start = out.len();
    let lon = ra.rem_euclid(360.0).to_radians();
    let lat = dec.to_radians().clamp(-FRAC_PI_2, FRAC_PI_2);
    let bmoc = cdshealpix::nested::cone_coverage_approx(order, lon, lat, r);
    out.extend(bmoc.flat_iter().map(|h| h as i64));
    // Near a pole the small-cone coverage misses cells across it: add the polar rings.
    if let Some(cap) = tessera_storage::healpix::polar_cap_cells(order, lat, r) {
        out.extend(cap.into_iter().map(|h| h as i64));
        out[start..].sort_unstable();
        let mut v = out.split_off(start);
        v.dedup();
        out.extend(v);
    }
}

/// Whether `e` is a reference to the column `name` (regular identifiers case-insensitively).
fn column_named(e: &Expr, name: &str) -> bool {
    let mut e = e;
    while let ExprKind::Nested(x) = &e.kind {
        e = x;
    }
    match &e.kind {
        ExprKind::Column(parts) => parts.last().is_some_and(|c| {
            if c.delimited {
                c.name == name
            } else {
                c.name.eq_ignore_ascii_case(name)
            }
        }),
        _ => false,
    }
}

/// A FROM item's crossmatch plan in a comma join: its expansion, the point that keys the
/// other side, and that side's index.
type Planned<'q> = (Expansion<'q>, (&'q Expr, &'q Expr), usize);

/// The two points and the radius of a positional predicate.
struct Pred<'q> {
    p: (&'q Expr, &'q Expr),
    q: (&'q Expr, &'q Expr),
    r: f64,
}

/// What a FROM item (or a side of a join) lets a column reference name.
struct Scope {
    /// (schema for an unaliased catalog, qualifier name).
    quals: Vec<(Option<String>, String)>,
    /// Column names, when all are known.
    cols: Option<Vec<String>>,
}

/// An expansion decided for one table reference.
struct Expansion<'q> {
    point: (&'q Expr, &'q Expr),
    order: u8,
    r: f64,
}

fn strip(mut e: &Expr) -> &Expr {
    while let ExprKind::Nested(x) = &e.kind {
        e = x;
    }
    e
}

/// The top-level AND terms of a condition.
fn conjuncts<'q>(e: &'q Expr, out: &mut Vec<&'q Expr>) {
    match &strip(e).kind {
        ExprKind::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        _ => out.push(e),
    }
}

/// A constant number: literals and arithmetic on them (`2.0/3600`).
fn const_f64(e: &Expr) -> Option<f64> {
    match &strip(e).kind {
        ExprKind::Literal(Literal::Integer(i)) => Some(*i as f64),
        ExprKind::Literal(Literal::Float(f, _)) => Some(*f),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => const_f64(expr).map(|v| -v),
        ExprKind::Unary {
            op: UnaryOp::Plus,
            expr,
        } => const_f64(expr),
        ExprKind::Binary { op, left, right } => {
            let (a, b) = (const_f64(left)?, const_f64(right)?);
            let v = match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                _ => return None,
            };
            v.is_finite().then_some(v)
        }
        _ => None,
    }
}

fn is_fn<'q>(e: &'q Expr, name: &str) -> Option<&'q [Expr]> {
    match &strip(e).kind {
        ExprKind::Function {
            name: n,
            args,
            distinct: false,
        } if n.name.eq_ignore_ascii_case(name) => Some(args),
        _ => None,
    }
}

/// Drops the deprecated coordinate-system argument.
fn no_sys(args: &[Expr]) -> &[Expr] {
    match args.first().map(|a| &strip(a).kind) {
        Some(ExprKind::Literal(Literal::String(_))) => &args[1..],
        _ => args,
    }
}

fn point(e: &Expr) -> Option<(&Expr, &Expr)> {
    match no_sys(is_fn(e, "POINT")?) {
        [ra, dec] => Some((ra, dec)),
        _ => None,
    }
}

fn circle(e: &Expr) -> Option<((&Expr, &Expr), f64)> {
    match no_sys(is_fn(e, "CIRCLE")?) {
        [ra, dec, r] => Some(((ra, dec), const_f64(r)?)),
        [c, r] => Some((point(c)?, const_f64(r)?)),
        _ => None,
    }
}

fn radius_ok(r: f64) -> bool {
    r.is_finite() && (0.0..=180.0).contains(&r)
}

/// Recognises a positional predicate with a constant radius.
fn predicate(e: &Expr) -> Option<Pred<'_>> {
    let ExprKind::Binary { op, left, right } = &strip(e).kind else {
        return None;
    };
    let pred = match op {
        BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
            let (d, r) = if matches!(op, BinaryOp::Lt | BinaryOp::LtEq) {
                (left, right)
            } else {
                (right, left)
            };
            let args = is_fn(d, "DISTANCE")?;
            let (p, q) = match args {
                [a, b] => (point(a)?, point(b)?),
                [a, b, c, d] => ((a, b), (c, d)),
                _ => return None,
            };
            Pred {
                p,
                q,
                r: const_f64(r)?,
            }
        }
        BinaryOp::Eq => {
            let test = if const_f64(left) == Some(1.0) {
                right
            } else if const_f64(right) == Some(1.0) {
                left
            } else {
                return None;
            };
            let (p, (q, r)) = if let Some(args) = is_fn(test, "CONTAINS") {
                match args {
                    [a, b] => (point(a)?, circle(b)?),
                    _ => return None,
                }
            } else {
                match is_fn(test, "INTERSECTS")? {
                    [a, b] => match (point(a), point(b)) {
                        (Some(p), _) => (p, circle(b)?),
                        (None, Some(p)) => (p, circle(a)?),
                        _ => return None,
                    },
                    _ => return None,
                }
            };
            Pred { p, q, r }
        }
        _ => return None,
    };
    radius_ok(pred.r).then_some(pred)
}

impl<'a> Translator<'a> {
    /// The names a table expression makes visible.
    fn xm_scope(&self, t: &TableRef) -> Scope {
        match t {
            TableRef::Table { name, alias, span } => {
                let cte = self.is_cte(name);
                let cols = if cte {
                    None
                } else {
                    self.find_table(name, *span)
                        .ok()
                        .map(|x| x.columns.iter().map(|c| c.0.clone()).collect())
                };
                let quals = match alias {
                    Some(a) => vec![(None, a.name.clone())],
                    None if cte => vec![(None, self.resolve(&name[0]))],
                    None => match self.find_table(name, *span) {
                        Ok(x) => vec![(Some(x.schema.clone()), x.table.clone())],
                        Err(_) => Vec::new(),
                    },
                };
                Scope { quals, cols }
            }
            TableRef::Derived { alias, columns, .. } => Scope {
                quals: vec![(None, alias.name.clone())],
                cols: (!columns.is_empty())
                    .then(|| columns.iter().map(|c| c.name.clone()).collect()),
            },
            TableRef::Join { left, right, .. } => {
                let (l, r) = (self.xm_scope(left), self.xm_scope(right));
                Scope {
                    quals: l.quals.into_iter().chain(r.quals).collect(),
                    cols: match (l.cols, r.cols) {
                        (Some(a), Some(b)) => Some(a.into_iter().chain(b).collect()),
                        _ => None,
                    },
                }
            }
        }
    }

    /// The one scope every column of `e` belongs to; `None` when there is none, more than one,
    /// or a reference that cannot be attributed with certainty.
    fn xm_side(&self, e: &Expr, scopes: &[Scope]) -> Option<usize> {
        let mut seen = Vec::new();
        if !self.xm_refs(e, scopes, &mut seen) {
            return None;
        }
        seen.sort();
        seen.dedup();
        match seen.as_slice() {
            [s] => Some(*s),
            _ => None,
        }
    }

    fn xm_refs(&self, e: &Expr, scopes: &[Scope], seen: &mut Vec<usize>) -> bool {
        match &e.kind {
            ExprKind::Column(parts) => {
                let hits: Vec<usize> = match parts.as_slice() {
                    [c] => {
                        if scopes.iter().any(|s| s.cols.is_none()) {
                            return false;
                        }
                        (0..scopes.len())
                            .filter(|&i| {
                                scopes[i]
                                    .cols
                                    .as_ref()
                                    .is_some_and(|v| v.iter().any(|n| eq_ident(c, n)))
                            })
                            .collect()
                    }
                    [q, _] => (0..scopes.len())
                        .filter(|&i| scopes[i].quals.iter().any(|(_, n)| eq_ident(q, n)))
                        .collect(),
                    [s, t, _] => (0..scopes.len())
                        .filter(|&i| {
                            scopes[i].quals.iter().any(|(sc, n)| {
                                sc.as_ref().is_some_and(|sc| eq_ident(s, sc)) && eq_ident(t, n)
                            })
                        })
                        .collect(),
                    _ => return false,
                };
                if hits.len() != 1 {
                    return false;
                }
                seen.push(hits[0]);
                true
            }
            ExprKind::Literal(_) => true,
            ExprKind::Unary { expr, .. }
            | ExprKind::Nested(expr)
            | ExprKind::IsNull { expr, .. }
            | ExprKind::Cast { expr, .. } => self.xm_refs(expr, scopes, seen),
            ExprKind::Binary { left, right, .. } => {
                self.xm_refs(left, scopes, seen) && self.xm_refs(right, scopes, seen)
            }
            ExprKind::Case {
                operand,
                whens,
                else_result,
            } => {
                operand
                    .iter()
                    .chain(else_result.iter())
                    .all(|x| self.xm_refs(x, scopes, seen))
                    && whens.iter().all(|(w, t)| {
                        self.xm_refs(w, scopes, seen) && self.xm_refs(t, scopes, seen)
                    })
            }
            ExprKind::Function {
                name,
                args,
                distinct,
            } => {
                let upper = name.name.to_ascii_uppercase();
                !*distinct
                    && upper != "RAND"
                    && !AGGREGATES.contains(&upper.as_str())
                    && args.iter().all(|a| self.xm_refs(a, scopes, seen))
            }
            // Subqueries, lists, patterns: not worth attributing.
            _ => false,
        }
    }

    /// The first positional term among `terms` between two different scopes: (the scope of
    /// its point `p`, the scope of its point `q`, the term).
    fn xm_find<'q>(
        &self,
        terms: &[&'q Expr],
        scopes: &[Scope],
        usable: impl Fn(usize, usize) -> bool,
    ) -> Option<(usize, usize, Pred<'q>)> {
        for t in terms {
            let Some(p) = predicate(t) else { continue };
            let side = |pt: (&Expr, &Expr)| -> Option<usize> {
                let a = self.xm_side(pt.0, scopes)?;
                let b = self.xm_side(pt.1, scopes)?;
                (a == b).then_some(a)
            };
            let (Some(i), Some(j)) = (side(p.p), side(p.q)) else {
                continue;
            };
            if i != j && usable(i, j) {
                return Some((i, j, p));
            }
        }
        None
    }

    /// Whether a table reference can be expanded (wrapped under its own name).
    fn xm_simple(&self, t: &TableRef) -> bool {
        match t {
            TableRef::Table { alias: Some(_), .. } => true,
            TableRef::Table { name, .. } => {
                let t = name[name.len() - 1].name.to_ascii_lowercase();
                !self.xm_schema_qualified.contains(&t)
            }
            TableRef::Derived { .. } => true,
            TableRef::Join { .. } => false,
        }
    }

    /// Whether a table reference is a catalog (large, so rather keyed than expanded).
    fn xm_catalog(&self, t: &TableRef) -> bool {
        match t {
            TableRef::Table { name, span, .. } => {
                !self.is_cte(name)
                    && self
                        .find_table(name, *span)
                        .is_ok_and(|x| x.columns.iter().any(|c| c.0 == "_healpix_29"))
            }
            _ => false,
        }
    }

    /// Of two inner-joined table references, the one to expand (0 or 1), if any.
    fn xm_pick(&self, a: &TableRef, b: &TableRef) -> Option<usize> {
        match (self.xm_simple(a), self.xm_simple(b)) {
            (false, false) => None,
            (true, false) => Some(0),
            (false, true) => Some(1),
            (true, true) => Some(match (self.xm_catalog(a), self.xm_catalog(b)) {
                (false, true) => 0,
                (true, false) => 1,
                // Two catalogs: the smaller is expanded (fewer copies, a smaller hash table).
                (true, true) if self.xm_rows(a) < self.xm_rows(b) => 0,
                _ => 1,
            }),
        }
    }

    /// A catalog's row count (`u64::MAX` when unknown).
    fn xm_rows(&self, t: &TableRef) -> u64 {
        match t {
            TableRef::Table { name, span, .. } if !self.is_cte(name) => self
                .find_table(name, *span)
                .ok()
                .and_then(|x| x.rows)
                .unwrap_or(u64::MAX),
            _ => u64::MAX,
        }
    }

    /// A table reference with one row per cell its rows' circles touch, in column `_xkN`.
    /// Returns the SQL and the qualified key column.
    fn xm_expand(&mut self, t: &TableRef, x: &Expansion<'_>) -> Result<(String, String)> {
        let inner = self.table_ref(t)?;
        let qual = self
            .qualifier(t)
            .ok_or_else(|| Error::query(ErrorKind::Internal, "crossmatch: no qualifier"))?;
        let alias = match t {
            TableRef::Table { alias: Some(a), .. } | TableRef::Derived { alias: a, .. } => {
                quote(&a.name)
            }
            TableRef::Table { name, span, .. } => {
                if self.is_cte(name) {
                    quote(&self.resolve(&name[0]))
                } else {
                    quote(&self.find_table(name, *span)?.table)
                }
            }
            TableRef::Join { .. } => {
                return Err(Error::query(
                    ErrorKind::Internal,
                    "crossmatch: a join cannot be expanded",
                ));
            }
        };
        let ra = self.scalar(x.point.0)?;
        let dec = self.scalar(x.point.1)?;
        self.anon += 1;
        let xk = quote(&format!("_xk{}", self.anon));
        if let Some(s) = self.xm_keys.last_mut() {
            s.push((alias.clone(), xk.clone()));
        }
        Ok((
            format!(
                "(SELECT {qual}.*, unnest(adql_cone_cells({}, {ra}, {dec}, {:?})) AS {xk} FROM {inner}) AS {alias}",
                x.order, x.r
            ),
            format!("{alias}.{xk}"),
        ))
    }

    /// The cell key of a point. When the keyed side is a catalog and the point is its
    /// declared position, the key is its `_healpix_29` shifted to the order (an integer
    /// division, instead of hashing every row again).
    fn xm_key(
        &mut self,
        pt: (&Expr, &Expr),
        order: u8,
        keyed: Option<&TableRef>,
    ) -> Result<String> {
        if let Some(t @ TableRef::Table { name, span, .. }) = keyed
            && !self.is_cte(name)
            && let Ok(x) = self.find_table(name, *span)
            && let Some((ra, dec)) = &x.ra_dec
            && x.columns.iter().any(|c| c.0 == "_healpix_29")
            && column_named(pt.0, ra)
            && column_named(pt.1, dec)
            && let Some(q) = self.qualifier(t)
        {
            let div = 1u64 << (2 * (29 - u32::from(order.min(29))));
            return Ok(format!("({q}.\"_healpix_29\" / {div})"));
        }
        let ra = self.scalar(pt.0)?;
        let dec = self.scalar(pt.1)?;
        Ok(format!("ivo_healpix_index({order}, {ra}, {dec})"))
    }

    /// `left JOIN right ON cond` as a bucketed crossmatch, when `cond` has a positional term
    /// between the two sides; `None` to translate it as a plain join.
    pub(super) fn xmatch_join(
        &mut self,
        left: &TableRef,
        right: &TableRef,
        kind: JoinKind,
        on: &Expr,
    ) -> Result<Option<String>> {
        let (sql_kind, expand) = match kind {
            JoinKind::Inner => ("INNER JOIN", self.xm_pick(left, right)),
            JoinKind::Left => ("LEFT OUTER JOIN", self.xm_simple(right).then_some(1)),
            JoinKind::Right => ("RIGHT OUTER JOIN", self.xm_simple(left).then_some(0)),
            JoinKind::Full | JoinKind::Cross => return Ok(None),
        };
        let Some(expand) = expand else {
            return Ok(None);
        };
        let scopes = [self.xm_scope(left), self.xm_scope(right)];
        let mut terms = Vec::new();
        conjuncts(on, &mut terms);
        let Some((i, _, p)) = self.xm_find(&terms, &scopes, |_, _| true) else {
            return Ok(None);
        };
        let (exp_pt, key_pt) = if i == expand { (p.p, p.q) } else { (p.q, p.p) };
        let x = Expansion {
            point: exp_pt,
            order: order_for(p.r),
            r: p.r,
        };
        let (l, rsql, xk) = if expand == 0 {
            let (l, xk) = self.xm_expand(left, &x)?;
            (l, self.table_ref(right)?, xk)
        } else {
            let l = self.table_ref(left)?;
            let (rs, xk) = self.xm_expand(right, &x)?;
            (l, rs, xk)
        };
        let keyed = if expand == 0 { right } else { left };
        let key = self.xm_key(key_pt, x.order, Some(keyed))?;
        let cond = self.scalar(on)?;
        Ok(Some(format!(
            "({l} {sql_kind} {rsql} ON ({key} = {xk}) AND ({cond}))"
        )))
    }

    /// The FROM list of a SELECT, with FROM items expanded for the positional terms of its
    /// WHERE (comma joins); returns the FROM text and the key equalities to AND to the WHERE.
    pub(super) fn xmatch_from(
        &mut self,
        from: &[TableRef],
        selection: Option<&Expr>,
    ) -> Result<(String, Vec<String>)> {
        // Decide: item → (expansion, key point).
        let mut plan: Vec<Option<Planned<'_>>> = from.iter().map(|_| None).collect();
        if from.len() >= 2
            && let Some(w) = selection
        {
            let scopes: Vec<Scope> = from.iter().map(|t| self.xm_scope(t)).collect();
            let mut terms = Vec::new();
            conjuncts(w, &mut terms);
            for t in terms {
                let expandable =
                    |i: usize, plan: &[Option<_>]| plan[i].is_none() && self.xm_simple(&from[i]);
                let Some((i, j, p)) = self.xm_find(&[t], &scopes, |i, j| {
                    expandable(i, &plan) || expandable(j, &plan)
                }) else {
                    continue;
                };
                let (ei, ej) = (expandable(i, &plan), expandable(j, &plan));
                let (lo, hi) = if i < j { (i, j) } else { (j, i) };
                let e = match (ei, ej) {
                    (true, false) => i,
                    (false, true) => j,
                    _ => {
                        if self.xm_pick(&from[lo], &from[hi]) == Some(0) {
                            lo
                        } else {
                            hi
                        }
                    }
                };
                let (exp_pt, key_pt) = if e == i { (p.p, p.q) } else { (p.q, p.p) };
                let keyed = if e == i { j } else { i };
                plan[e] = Some((
                    Expansion {
                        point: exp_pt,
                        order: order_for(p.r),
                        r: p.r,
                    },
                    key_pt,
                    keyed,
                ));
            }
        }
        let mut out = String::new();
        let mut extra = Vec::new();
        for (t, p) in from.iter().zip(&plan) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            match p {
                Some((x, key_pt, keyed)) => {
                    let (sql, xk) = self.xm_expand(t, x)?;
                    out.push_str(&sql);
                    let key = self.xm_key(*key_pt, x.order, Some(&from[*keyed]))?;
                    extra.push(format!("({key} = {xk})"));
                }
                None => out.push_str(&self.table_ref(t)?),
            }
        }
        Ok((out, extra))
    }

    /// `*` or `q.*` with the key columns of expanded tables left out.
    pub(super) fn xm_wildcard(&self, qualifier: Option<&str>) -> String {
        let cols: Vec<&str> = self
            .xm_keys
            .last()
            .map(|v| {
                v.iter()
                    .filter(|(alias, _)| qualifier.is_none_or(|q| q == alias))
                    .map(|(_, xk)| xk.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let base = match qualifier {
            Some(q) => format!("{q}.*"),
            None => "*".to_string(),
        };
        if cols.is_empty() {
            base
        } else {
            format!("{base} EXCLUDE ({})", cols.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(ra1: f64, de1: f64, ra2: f64, de2: f64) -> f64 {
        tessera_storage::healpix::angular_distance_deg(ra1, de1, ra2, de2)
    }

    /// Every point within r of a centre hashes into one of the centre's cone cells, at the
    /// poles, across RA 0/360 and on cell borders.
    #[test]
    fn cone_cells_cover_every_point_within_the_radius() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut cells = Vec::new();
        for &r in &[
            1.0 / 3600.0,
            2.0 / 3600.0,
            1.0 / 60.0,
            0.5,
            1.0,
            10.0,
            60.0,
            120.0,
        ] {
            let k = order_for(r);
            let near = (2.0 * r).min(0.5);
            for n in 0..6000 {
                let (ra, dec): (f64, f64) = match n % 6 {
                    4 => (
                        (90.0 * rng.random_range(0..4) as f64 + rng.random_range(-near..near))
                            .rem_euclid(360.0),
                        (2.0f64 / 3.0).asin().to_degrees() * if n % 12 == 4 { 1.0 } else { -1.0 }
                            + rng.random_range(-near..near),
                    ),
                    5 => (
                        45.0 + 90.0 * rng.random_range(0..4) as f64 + rng.random_range(-near..near),
                        rng.random_range(-near..near),
                    ),
                    0 => (rng.random_range(0.0..360.0), rng.random_range(-90.0..90.0)),
                    1 => (
                        rng.random_range(-near..near).rem_euclid(360.0),
                        rng.random_range(-1.0..1.0),
                    ),
                    2 => (
                        rng.random_range(0.0..360.0),
                        90.0 - rng.random_range(0.0..r.min(1.0)),
                    ),
                    _ => (
                        rng.random_range(0.0..360.0),
                        -90.0 + rng.random_range(0.0..r.min(1.0)),
                    ),
                };
                cells.clear();
                cone_cells(k, ra, dec, r, &mut cells);
                assert!(
                    cells.windows(2).all(|w| w[0] < w[1]),
                    "cells sorted, distinct"
                );
                // Points at distance ≤ r in random directions, many right at r.
                for m in 0..20 {
                    let d = if m < 10 { r } else { rng.random_range(0.0..r) };
                    let az: f64 = rng.random_range(0.0..std::f64::consts::TAU);
                    let (lat1, lon1, dr) = (dec.to_radians(), ra.to_radians(), d.to_radians());
                    let lat2 = (lat1.sin() * dr.cos() + lat1.cos() * dr.sin() * az.cos()).asin();
                    let lon2 = lon1
                        + (az.sin() * dr.sin() * lat1.cos())
                            .atan2(dr.cos() - lat1.sin() * lat2.sin());
                    let (ra2, dec2) = (lon2.to_degrees().rem_euclid(360.0), lat2.to_degrees());
                    if dist(ra, dec, ra2, dec2) > r {
                        continue;
                    }
                    let h = crate::geom::healpix_index(k as i64, ra2, dec2).unwrap();
                    assert!(
                        cells.binary_search(&h).is_ok(),
                        "r={r} k={k} centre ({ra}, {dec}) point ({ra2}, {dec2}) cell {h} not in {cells:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn orders_follow_the_radius() {
        assert_eq!(order_for(1.0), 5);
        assert_eq!(order_for(3.0 / 3600.0), 15);
        assert_eq!(order_for(60.0), 0);
        assert!(order_for(1.0 / 3600.0) > order_for(1.0 / 60.0));
        let mut c = Vec::new();
        cone_cells(0, 10.0, 10.0, 170.0, &mut c);
        assert_eq!(c, (0..12).collect::<Vec<i64>>());
    }
}
