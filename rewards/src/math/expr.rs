//! A small parser for LaTeX / plain-text math expressions, with hard bounds on work.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::Zero;

/// Parsing stops (answer treated as unparseable) past these bounds.
pub const MAX_DEPTH: usize = 64;
pub const MAX_NODES: usize = 4000;
pub const MAX_DIGITS: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(BigRational),
    Pi,
    E,
    I,
    Infinity,
    Var(String),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    /// n-th root: (degree, radicand).
    Root(Box<Expr>, Box<Expr>),
    /// log with a base: (base, argument).
    Log(Box<Expr>, Box<Expr>),
    Func(Func, Box<Expr>),
    Binom(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Cot,
    Sec,
    Csc,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Exp,
    Abs,
    Factorial,
}

impl Expr {
    pub fn is_infinite(&self) -> Option<bool> {
        match self {
            Expr::Infinity => Some(true),
            Expr::Neg(inner) => inner.is_infinite().map(|pos| !pos),
            _ => None,
        }
    }

    /// Names of free variables, sorted and deduplicated.
    pub fn variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect_vars(&self, out: &mut Vec<String>) {
        match self {
            Expr::Var(v) => out.push(v.clone()),
            Expr::Neg(a) | Expr::Func(_, a) => a.collect_vars(out),
            Expr::Add(a, b)
            | Expr::Sub(a, b)
            | Expr::Mul(a, b)
            | Expr::Div(a, b)
            | Expr::Pow(a, b)
            | Expr::Root(a, b)
            | Expr::Log(a, b)
            | Expr::Binom(a, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Letter(char),
    Cmd(String),
    Sym(char),
}

/// Plain-text function and constant names a model may write without a backslash.
const PLAIN_WORDS: &[&str] = &[
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sqrt", "sin", "cos", "tan", "cot", "sec",
    "csc", "log", "ln", "exp", "pi", "infty", "inf", "oo",
];

/// Whether `word` is a function or constant name written without a backslash.
pub fn is_plain_word(word: &str) -> bool {
    PLAIN_WORDS.contains(&word)
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            let mut seen_dot = false;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.' && !seen_dot && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                seen_dot |= chars[i] == '.';
                i += 1;
            }
            if i - start > MAX_DIGITS {
                return None;
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c == '\\' {
            i += 1;
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i == start {
                // \{ \} \| and the like
                let sym = *chars.get(i)?;
                i += 1;
                toks.push(Tok::Cmd(sym.to_string()));
            } else {
                toks.push(Tok::Cmd(chars[start..i].iter().collect()));
            }
        } else if c.is_ascii_alphabetic() {
            let word_end = (i..chars.len()).find(|&j| !chars[j].is_ascii_alphabetic()).unwrap_or(chars.len());
            let word: String = chars[i..word_end].iter().collect();
            if let Some(w) = PLAIN_WORDS.iter().find(|w| word.starts_with(**w) && (word.len() == w.len() || **w == "sqrt")) {
                toks.push(Tok::Cmd(w.to_string()));
                i += w.len();
            } else {
                toks.push(Tok::Letter(c));
                i += 1;
            }
        } else if "+-*/^_()[]{}|!,=<>'".contains(c) {
            toks.push(Tok::Sym(c));
            i += 1;
        } else {
            return None;
        }
    }
    Some(toks)
}

pub fn parse_expr(s: &str) -> Option<Expr> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return None;
    }
    let mut p = Parser { toks, pos: 0, depth: 0, nodes: 0, abs_depth: 0 };
    let e = p.sum()?;
    if p.pos != p.toks.len() {
        return None;
    }
    Some(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    nodes: usize,
    abs_depth: usize,
}

fn b(e: Expr) -> Box<Expr> {
    Box::new(e)
}

fn int(n: i64) -> Expr {
    Expr::Num(BigRational::from_integer(BigInt::from(n)))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat_sym(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_cmd(&mut self, name: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Cmd(n)) if n == name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.nodes += 1;
        (self.depth <= MAX_DEPTH && self.nodes <= MAX_NODES).then_some(())
    }

    fn sum(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut acc = self.product()?;
        loop {
            if self.eat_sym('+') {
                acc = Expr::Add(b(acc), b(self.product()?));
            } else if self.eat_sym('-') {
                acc = Expr::Sub(b(acc), b(self.product()?));
            } else if self.eat_cmd("pm") {
                return None; // two answers in one: not a single value
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(acc)
    }

    fn product(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut acc = self.unary()?;
        loop {
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                return None;
            }
            if self.eat_sym('*') || self.eat_cmd("cdot") || self.eat_cmd("times") || self.eat_cmd("ast") {
                acc = Expr::Mul(b(acc), b(self.unary()?));
            } else if self.eat_sym('/') || self.eat_cmd("div") {
                acc = Expr::Div(b(acc), b(self.unary()?));
            } else if self.starts_primary() {
                acc = Expr::Mul(b(acc), b(self.power()?));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(acc)
    }

    /// Whether the next token can begin an implicitly multiplied factor.
    fn starts_primary(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Letter(_)) => true,
            Some(Tok::Sym('(')) | Some(Tok::Sym('{')) | Some(Tok::Sym('[')) => true,
            Some(Tok::Sym('|')) => self.abs_depth == 0,
            Some(Tok::Cmd(c)) => is_value_command(c),
            _ => false,
        }
    }

    fn unary(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = if self.eat_sym('-') {
            Expr::Neg(b(self.unary()?))
        } else if self.eat_sym('+') {
            self.unary()?
        } else {
            self.power()?
        };
        self.depth -= 1;
        Some(e)
    }

    fn power(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut base = self.postfix()?;
        if self.eat_sym('^') {
            let exp = self.exponent()?;
            base = Expr::Pow(b(base), b(exp));
        }
        self.depth -= 1;
        Some(base)
    }

    /// A superscript: `{...}`, `(...)`, a signed number or a single atom; right associative.
    fn exponent(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = if self.eat_sym('-') {
            Expr::Neg(b(self.exponent()?))
        } else {
            let atom = self.postfix()?;
            if self.eat_sym('^') { Expr::Pow(b(atom), b(self.exponent()?)) } else { atom }
        };
        self.depth -= 1;
        Some(e)
    }

    fn postfix(&mut self) -> Option<Expr> {
        let mut e = self.primary()?;
        while self.eat_sym('!') {
            e = Expr::Func(Func::Factorial, b(e));
        }
        Some(e)
    }

    /// A LaTeX argument: `{...}` or a single character/command (`\frac12`, `\sqrt3`).
    fn latex_arg(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = match self.peek()?.clone() {
            Tok::Sym('{') => {
                self.pos += 1;
                let e = self.sum()?;
                self.eat_sym('}').then_some(e)?
            }
            Tok::Num(n) => {
                self.pos += 1;
                let mut chars = n.chars();
                let first = chars.next()?;
                let rest: String = chars.collect();
                if !rest.is_empty() {
                    // `\frac12`: the argument is one digit; give the rest back.
                    self.pos -= 1;
                    self.toks[self.pos] = Tok::Num(rest);
                    self.toks.insert(self.pos, Tok::Num(first.to_string()));
                    self.pos += 1;
                }
                number(&first.to_string())?
            }
            _ => self.primary()?,
        };
        self.depth -= 1;
        Some(e)
    }

    fn primary(&mut self) -> Option<Expr> {
        self.enter()?;
        let tok = self.peek()?.clone();
        self.pos += 1;
        let e = match tok {
            Tok::Num(n) => number(&n)?,
            Tok::Letter(c) => self.letter(c)?,
            Tok::Sym('(') => self.group(')')?,
            Tok::Sym('[') => self.group(']')?,
            Tok::Sym('{') => self.group('}')?,
            Tok::Sym('|') => {
                self.abs_depth += 1;
                let inner = self.sum()?;
                self.abs_depth -= 1;
                self.eat_sym('|').then_some(())?;
                Expr::Func(Func::Abs, b(inner))
            }
            Tok::Cmd(c) => self.command(&c)?,
            Tok::Sym(_) => return None,
        };
        self.depth -= 1;
        Some(e)
    }

    fn group(&mut self, close: char) -> Option<Expr> {
        let saved = self.abs_depth;
        self.abs_depth = 0;
        let e = self.sum()?;
        self.abs_depth = saved;
        self.eat_sym(close).then_some(e)
    }

    fn letter(&mut self, c: char) -> Option<Expr> {
        let mut name = c.to_string();
        if self.eat_sym('_') {
            name.push('_');
            name.push_str(&self.subscript()?);
        }
        Some(match name.as_str() {
            "e" => Expr::E,
            "i" => Expr::I,
            _ => Expr::Var(name),
        })
    }

    fn subscript(&mut self) -> Option<String> {
        match self.peek()?.clone() {
            Tok::Num(n) => {
                self.pos += 1;
                Some(n)
            }
            Tok::Letter(c) => {
                self.pos += 1;
                Some(c.to_string())
            }
            Tok::Sym('{') => {
                self.pos += 1;
                let mut s = String::new();
                while !self.eat_sym('}') {
                    match self.peek()?.clone() {
                        Tok::Num(n) => s.push_str(&n),
                        Tok::Letter(c) => s.push(c),
                        _ => return None,
                    }
                    self.pos += 1;
                }
                Some(s)
            }
            _ => None,
        }
    }

    fn command(&mut self, c: &str) -> Option<Expr> {
        Some(match c {
            "frac" => {
                let num = self.latex_arg()?;
                let den = self.latex_arg()?;
                Expr::Div(b(num), b(den))
            }
            "binom" | "dbinom" | "tbinom" | "choose" => {
                let n = self.latex_arg()?;
                let k = self.latex_arg()?;
                Expr::Binom(b(n), b(k))
            }
            "sqrt" => {
                let degree = if self.eat_sym('[') {
                    let d = self.sum()?;
                    self.eat_sym(']').then_some(d)?
                } else {
                    int(2)
                };
                let radicand = self.latex_arg()?;
                Expr::Root(b(degree), b(radicand))
            }
            "pi" => Expr::Pi,
            "infty" | "inf" | "oo" => Expr::Infinity,
            "{" => {
                let e = self.sum()?;
                self.eat_cmd("}").then_some(e)?
            }
            "log" | "lg" => {
                let base = if self.eat_sym('_') { self.latex_arg()? } else { Expr::E };
                let arg = self.function_arg()?;
                Expr::Log(b(base), b(arg))
            }
            name => {
                if let Some(f) = function(name) {
                    // \sin^2 x means (\sin x)^2.
                    let power = if self.eat_sym('^') { Some(self.latex_arg()?) } else { None };
                    let arg = self.function_arg()?;
                    let applied = Expr::Func(f, b(arg));
                    match power {
                        Some(p) => Expr::Pow(b(applied), b(p)),
                        None => applied,
                    }
                } else if GREEK.contains(&name) {
                    let mut v = name.to_string();
                    if self.eat_sym('_') {
                        v.push('_');
                        v.push_str(&self.subscript()?);
                    }
                    Expr::Var(v)
                } else {
                    return None;
                }
            }
        })
    }

    /// `\sin(x)`, `\sin{x}`, or `\sin 2x` (an implicit product of atoms).
    fn function_arg(&mut self) -> Option<Expr> {
        if matches!(self.peek(), Some(Tok::Sym('(')) | Some(Tok::Sym('{'))) {
            return self.power();
        }
        let mut acc = self.power()?;
        while matches!(self.peek(), Some(Tok::Num(_)) | Some(Tok::Letter(_)))
            || matches!(self.peek(), Some(Tok::Cmd(c)) if c == "pi" || GREEK.contains(&c.as_str()))
        {
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                return None;
            }
            acc = Expr::Mul(b(acc), b(self.power()?));
        }
        Some(acc)
    }
}

const GREEK: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi",
    "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
];

fn function(name: &str) -> Option<Func> {
    Some(match name {
        "sin" => Func::Sin,
        "cos" => Func::Cos,
        "tan" => Func::Tan,
        "cot" => Func::Cot,
        "sec" => Func::Sec,
        "csc" => Func::Csc,
        "arcsin" => Func::Asin,
        "arccos" => Func::Acos,
        "arctan" => Func::Atan,
        "sinh" => Func::Sinh,
        "cosh" => Func::Cosh,
        "tanh" => Func::Tanh,
        "ln" => Func::Ln,
        "exp" => Func::Exp,
        _ => return None,
    })
}

fn is_value_command(c: &str) -> bool {
    matches!(c, "frac" | "sqrt" | "pi" | "infty" | "log" | "lg" | "binom" | "dbinom" | "tbinom")
        || function(c).is_some()
        || GREEK.contains(&c)
}

/// An exact decimal literal: "0.125" -> 1/8.
pub fn number(s: &str) -> Option<Expr> {
    parse_decimal(s).map(Expr::Num)
}

pub fn parse_decimal(s: &str) -> Option<BigRational> {
    let (int_part, frac_part) = s.split_once('.').unwrap_or((s, ""));
    if s.len() > MAX_DIGITS || (int_part.is_empty() && frac_part.is_empty()) {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let numer: BigInt = if digits.is_empty() { BigInt::zero() } else { digits.parse().ok()? };
    let denom = num_traits::pow(BigInt::from(10), frac_part.len());
    Some(BigRational::new(numer, denom))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse_expr(s).unwrap_or_else(|| panic!("failed to parse {s}"))
    }

    #[test]
    fn parses_latex_forms() {
        assert_eq!(p(r"\frac12"), Expr::Div(b(int(1)), b(int(2))));
        assert_eq!(p(r"\frac{1}{2}"), p("1/2"));
        assert_eq!(p(r"\sqrt3"), Expr::Root(b(int(2)), b(int(3))));
        assert_eq!(p(r"2\sqrt{3}"), Expr::Mul(b(int(2)), b(p(r"\sqrt{3}"))));
        assert_eq!(p("x_1"), Expr::Var("x_1".into()));
        assert!(matches!(p(r"\sin^2 x"), Expr::Pow(_, _)));
        assert!(matches!(p(r"\log_2 8"), Expr::Log(_, _)));
        assert!(matches!(p("|x-1|"), Expr::Func(Func::Abs, _)));
        assert!(matches!(p("5!"), Expr::Func(Func::Factorial, _)));
        assert_eq!(p("0.125"), Expr::Num(BigRational::new(1.into(), 8.into())));
    }

    #[test]
    fn rejects_garbage_and_bounds() {
        assert!(parse_expr("1 +").is_none());
        assert!(parse_expr(r"\frac{1}").is_none());
        assert!(parse_expr("@@").is_none());
        assert!(parse_expr(&"(".repeat(10_000)).is_none());
        assert!(parse_expr(&"9".repeat(MAX_DIGITS + 1)).is_none());
    }
}
