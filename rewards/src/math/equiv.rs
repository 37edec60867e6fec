//! Structured answers (equations, intervals, sets, tuples, matrices) and their equivalence.

use num_bigint::BigInt;
use num_rational::BigRational;

use super::eval::{values_equal, Evaluator, Value};
use super::expr::{parse_expr, Expr};

/// Nesting of structures (a set of tuples of intervals...) we parse before giving up.
const MAX_STRUCTURE_DEPTH: usize = 6;
/// Elements of a set/list/tuple/matrix we compare before giving up.
const MAX_ELEMENTS: usize = 32;
/// Random points for comparing expressions with variables.
const POINTS: usize = 6;

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Expr(Expr),
    Equation(Expr, Expr),
    Interval { left_closed: bool, left: Expr, right: Expr, right_closed: bool },
    Union(Vec<Answer>),
    /// `\{...\}`: unordered.
    Set(Vec<Answer>),
    /// A bare comma-separated list "1, 2": unordered.
    List(Vec<Answer>),
    /// `(a, b, c)`: ordered.
    Tuple(Vec<Answer>),
    Matrix(Vec<Vec<Answer>>),
    /// Anything else, compared as lower-cased text without spaces.
    Text(String),
}

pub fn parse_answer(s: &str) -> Answer {
    parse_at(s.trim(), 0)
}

fn text(s: &str) -> Answer {
    Answer::Text(s.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect())
}

fn parse_at(s: &str, depth: usize) -> Answer {
    if depth > MAX_STRUCTURE_DEPTH || s.is_empty() {
        return text(s);
    }
    if s == "\\emptyset" || s == "\\{\\}" {
        return Answer::Set(Vec::new());
    }
    if let Some(m) = parse_matrix(s, depth) {
        return m;
    }
    let union = split_top(s, "\\cup");
    if union.len() > 1 {
        let parts: Vec<Answer> = union.iter().map(|p| parse_at(p.trim(), depth + 1)).collect();
        return if parts.iter().all(|p| matches!(p, Answer::Interval { .. } | Answer::Tuple(_))) {
            Answer::Union(parts.into_iter().map(tuple_as_open_interval).collect())
        } else {
            text(s)
        };
    }
    if let Some(inner) = s.strip_prefix("\\{").and_then(|r| r.strip_suffix("\\}")) {
        if balanced(inner) {
            return Answer::Set(elements(inner, depth));
        }
    }
    if let Some((open, inner, close)) = enclosed(s) {
        let parts = split_top(inner, ",");
        if parts.len() == 2 {
            let left = parse_expr(parts[0].trim());
            let right = parse_expr(parts[1].trim());
            let bracketed = open == '[' || close == ']';
            let infinite = [&left, &right].iter().any(|e| e.as_ref().is_some_and(|e| e.is_infinite().is_some()));
            if let (Some(left), Some(right)) = (left, right) {
                if bracketed || infinite {
                    return Answer::Interval { left_closed: open == '[', left, right, right_closed: close == ']' };
                }
            }
        }
        if parts.len() >= 2 && open == '(' && close == ')' || parts.len() > 2 && open == '[' && close == ']' {
            return Answer::Tuple(parts.iter().take(MAX_ELEMENTS + 1).map(|p| parse_at(p.trim(), depth + 1)).collect());
        }
    }
    let items = split_top(s, ",");
    if items.len() > 1 {
        return Answer::List(elements(s, depth));
    }
    let words = split_top(s, " and ");
    if words.len() > 1 {
        let parts: Vec<Answer> = words.iter().map(|p| parse_at(p.trim(), depth + 1)).collect();
        if parts.iter().all(|p| !matches!(p, Answer::Text(_))) {
            return Answer::List(parts);
        }
    }
    if has_inequality(s) {
        return text(s);
    }
    let sides = split_top(s, "=");
    if sides.len() == 2 {
        if let (Some(l), Some(r)) = (parse_expr(sides[0].trim()), parse_expr(sides[1].trim())) {
            return Answer::Equation(l, r);
        }
        return text(s);
    }
    if has_word(s) {
        return text(s);
    }
    match parse_expr(s) {
        Some(e) => Answer::Expr(e),
        None => text(s),
    }
}

/// A run of 3+ letters that is not a command or function name: a word answer ("Evelyn",
/// "odd"), compared as text rather than as a product of single-letter variables.
fn has_word(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let after_backslash = start > 0 && bytes[start - 1] == b'\\';
            let word = &s[start..i];
            if !after_backslash && word.len() >= 3 && !super::expr::is_plain_word(word) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

fn elements(inner: &str, depth: usize) -> Vec<Answer> {
    split_top(inner, ",")
        .iter()
        .filter(|p| !p.trim().is_empty())
        .take(MAX_ELEMENTS + 1)
        .map(|p| parse_at(p.trim(), depth + 1))
        .collect()
}

fn tuple_as_open_interval(a: Answer) -> Answer {
    match a {
        Answer::Tuple(parts) if parts.len() == 2 => match (&parts[0], &parts[1]) {
            (Answer::Expr(l), Answer::Expr(r)) => {
                Answer::Interval { left_closed: false, left: l.clone(), right: r.clone(), right_closed: false }
            }
            _ => Answer::Tuple(parts),
        },
        other => other,
    }
}

fn has_inequality(s: &str) -> bool {
    s.contains('<') || s.contains('>') || ["\\le", "\\ge", "\\ne", "\\approx", "\\lt", "\\gt"].iter().any(|c| s.contains(c))
}

fn parse_matrix(s: &str, depth: usize) -> Option<Answer> {
    let begin = s.find("\\begin{")?;
    let env_end = begin + 7 + s[begin + 7..].find('}')?;
    let env = &s[begin + 7..env_end];
    if !env.ends_with("matrix") && env != "array" {
        return None;
    }
    let end_tag = format!("\\end{{{env}}}");
    let after = &s[env_end + 1..];
    let mut body = &after[..after.rfind(&end_tag)?];
    if env == "array" {
        // column spec {cc}
        body = body.trim_start().strip_prefix('{').and_then(|b| b.split_once('}')).map(|(_, rest)| rest)?;
    }
    let rows: Vec<Vec<Answer>> = body
        .split("\\\\")
        .filter(|r| !r.trim().is_empty())
        .take(MAX_ELEMENTS + 1)
        .map(|r| r.split('&').take(MAX_ELEMENTS + 1).map(|c| parse_at(c.trim(), depth + 1)).collect())
        .collect();
    Some(Answer::Matrix(rows))
}

/// Splits at `sep` outside any bracket pair.
pub fn split_top<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth: i64 = 0;
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && s.is_char_boundary(i) && bytes[i..].starts_with(sep.as_bytes()) && !is_relation_char(s, i, sep) {
            parts.push(&s[start..i]);
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// `=` inside `<=`, `>=`, `!=`, `:=` is not an equation sign; `\cup` must not be `\cupdot`.
fn is_relation_char(s: &str, i: usize, sep: &str) -> bool {
    match sep {
        "=" => {
            let prev = s[..i].chars().last();
            let next = s[i + 1..].chars().next();
            matches!(prev, Some('<' | '>' | '!' | ':')) || next == Some('=')
        }
        "\\cup" => s[i + sep.len()..].chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
        _ => false,
    }
}

fn balanced(s: &str) -> bool {
    let mut depth: i64 = 0;
    for b in s.bytes() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// `(..)`, `[..]`, `(..]`, `[..)` whose first bracket closes at the very end.
fn enclosed(s: &str) -> Option<(char, &str, char)> {
    let open = s.chars().next().filter(|c| *c == '(' || *c == '[')?;
    let close = s.chars().last().filter(|c| *c == ')' || *c == ']')?;
    let inner = &s[1..s.len() - 1];
    balanced(inner).then_some((open, inner, close))
}

pub fn answers_equivalent(a: &Answer, b: &Answer) -> bool {
    use Answer::*;
    match (a, b) {
        (Expr(x), Expr(y)) => exprs_equivalent(x, y),
        (Equation(l, r), Expr(e)) | (Expr(e), Equation(l, r)) => {
            // `x = 5` answers `5`.
            matches!(l, super::expr::Expr::Var(_)) && exprs_equivalent(r, e)
        }
        (Equation(l1, r1), Equation(l2, r2)) => equations_equivalent((l1, r1), (l2, r2)),
        (
            Interval { left_closed: lc1, left: l1, right: r1, right_closed: rc1 },
            Interval { left_closed: lc2, left: l2, right: r2, right_closed: rc2 },
        ) => lc1 == lc2 && rc1 == rc2 && exprs_equivalent(l1, l2) && exprs_equivalent(r1, r2),
        (Tuple(t), Interval { left_closed: false, left, right, right_closed: false })
        | (Interval { left_closed: false, left, right, right_closed: false }, Tuple(t)) => {
            t.len() == 2 && answers_equivalent(&t[0], &Expr(left.clone())) && answers_equivalent(&t[1], &Expr(right.clone()))
        }
        (Union(x), Union(y)) | (Set(x), Set(y)) | (List(x), List(y)) | (Set(x), List(y)) | (List(x), Set(y)) => {
            unordered_equal(x, y)
        }
        (Tuple(x), Tuple(y)) => x.len() == y.len() && x.len() <= MAX_ELEMENTS && x.iter().zip(y).all(|(p, q)| answers_equivalent(p, q)),
        (Matrix(x), Matrix(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(rx, ry)| rx.len() == ry.len() && rx.iter().zip(ry).all(|(p, q)| answers_equivalent(p, q)))
        }
        (Text(x), Text(y)) => x == y,
        _ => false,
    }
}

fn unordered_equal(x: &[Answer], y: &[Answer]) -> bool {
    if x.len() != y.len() || x.len() > MAX_ELEMENTS {
        return false;
    }
    let mut used = vec![false; y.len()];
    x.iter().all(|a| {
        let hit = (0..y.len()).find(|&j| !used[j] && answers_equivalent(a, &y[j]));
        hit.map(|j| used[j] = true).is_some()
    })
}

/// Deterministic rational sample points, away from small integers where identities collide.
fn sample_point(var_index: usize, point: usize) -> BigRational {
    const DENOMS: [i64; POINTS] = [7, 11, 13, 17, 19, 23];
    let n = ((point * 37 + var_index * 53 + 11) % 61) as i64 - 30;
    let n = if n == 0 { 29 } else { n };
    BigRational::new(BigInt::from(n), BigInt::from(DENOMS[point % POINTS]))
}

fn environments(vars: &[String]) -> Vec<Vec<(String, BigRational)>> {
    (0..POINTS)
        .map(|k| vars.iter().enumerate().map(|(j, v)| (v.clone(), sample_point(j, k))).collect())
        .collect()
}

pub fn exprs_equivalent(a: &Expr, b: &Expr) -> bool {
    if a == b {
        return true;
    }
    if a.is_infinite().is_some() || b.is_infinite().is_some() {
        return a.is_infinite() == b.is_infinite();
    }
    // Union of both sides' variables: `\sin^2 x + \cos^2 x` vs `1` is an identity.
    let mut vars = a.variables();
    vars.extend(b.variables());
    vars.sort();
    vars.dedup();
    // Constants need one evaluation; with variables, every point must agree.
    let points = if vars.is_empty() { 1 } else { POINTS };
    let mut compared = 0;
    for env in environments(&vars).into_iter().take(points) {
        let x = Evaluator::new(&env).eval(a);
        let y = Evaluator::new(&env).eval(b);
        match (x, y) {
            (None, None) => continue,
            (Some(x), Some(y)) if values_equal(&x, &y) => compared += 1,
            _ => return false,
        }
    }
    compared >= points.min(2)
}

/// Same equation: same sides (either order), or with variables, `l1 - r1` a constant
/// non-zero multiple of `l2 - r2` (`y = 2x + 1` vs `2x - y + 1 = 0`).
fn equations_equivalent(e1: (&Expr, &Expr), e2: (&Expr, &Expr)) -> bool {
    if (exprs_equivalent(e1.0, e2.0) && exprs_equivalent(e1.1, e2.1)) || (exprs_equivalent(e1.0, e2.1) && exprs_equivalent(e1.1, e2.0)) {
        return true;
    }
    let d1 = Expr::Sub(Box::new(e1.0.clone()), Box::new(e1.1.clone()));
    let d2 = Expr::Sub(Box::new(e2.0.clone()), Box::new(e2.1.clone()));
    let vars = d1.variables();
    if vars.is_empty() || vars != d2.variables() {
        return false;
    }
    let mut ratio: Option<Value> = None;
    let mut compared = 0;
    for env in environments(&vars) {
        let (Some(x), Some(y)) = (Evaluator::new(&env).eval(&d1), Evaluator::new(&env).eval(&d2)) else { continue };
        match (x.is_zero(), y.is_zero()) {
            (true, true) => continue,
            (false, false) => {}
            _ => return false,
        }
        let r = match (&x, &y) {
            (Value::Exact(p), Value::Exact(q)) => Value::Exact(p / q),
            _ => match (x.to_complex(), y.to_complex()) {
                (Some(p), Some(q)) => Value::Approx(p / q),
                _ => return false,
            },
        };
        match &ratio {
            None => ratio = Some(r),
            Some(first) if values_equal(first, &r) => {}
            Some(_) => return false,
        }
        compared += 1;
    }
    compared >= 2
}
