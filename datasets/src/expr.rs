//! Exact arithmetic expressions: a parser for `+ - * /` with parentheses over integers, a rational
//! evaluator, and the Countdown checker built on them.

use std::fmt;

/// An exact rational with a positive denominator, in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    pub num: i128,
    pub den: i128,
}

impl Rational {
    pub fn integer(n: i64) -> Self {
        Rational { num: n as i128, den: 1 }
    }

    fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num.unsigned_abs(), den.unsigned_abs()).max(1) as i128;
        let sign = if den < 0 { -1 } else { 1 };
        Some(Rational { num: sign * num / g, den: sign * den / g })
    }

    pub fn as_integer(&self) -> Option<i64> {
        (self.den == 1).then(|| i64::try_from(self.num).ok()).flatten()
    }

    fn apply(self, op: char, rhs: Rational) -> Result<Rational, ExprError> {
        let overflow = ExprError::Overflow;
        let (a, b, c, d) = (self.num, self.den, rhs.num, rhs.den);
        let (num, den) = match op {
            '+' => (a.checked_mul(d).and_then(|x| x.checked_add(c.checked_mul(b)?)).ok_or(overflow)?, b.checked_mul(d).ok_or(overflow)?),
            '-' => (a.checked_mul(d).and_then(|x| x.checked_sub(c.checked_mul(b)?)).ok_or(overflow)?, b.checked_mul(d).ok_or(overflow)?),
            '*' => (a.checked_mul(c).ok_or(overflow)?, b.checked_mul(d).ok_or(overflow)?),
            '/' => {
                if c == 0 {
                    return Err(ExprError::DivisionByZero);
                }
                (a.checked_mul(d).ok_or(overflow)?, b.checked_mul(c).ok_or(overflow)?)
            }
            _ => unreachable!("operators come from the parser"),
        };
        Rational::new(num, den).ok_or(ExprError::DivisionByZero)
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 { write!(f, "{}", self.num) } else { write!(f, "{}/{}", self.num, self.den) }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("cannot parse the expression at character {position}: {message}")]
    Parse { position: usize, message: &'static str },
    #[error("division by zero")]
    DivisionByZero,
    #[error("number too large")]
    Overflow,
}

/// Parses and evaluates exactly; returns the value and the integer literals in order.
pub fn evaluate(expression: &str) -> Result<(Rational, Vec<i64>), ExprError> {
    let mut parser = Parser { chars: expression.chars().collect(), position: 0, literals: Vec::new() };
    let value = parser.sum()?;
    parser.skip_spaces();
    if parser.position != parser.chars.len() {
        return Err(parser.error("unexpected character"));
    }
    Ok((value, parser.literals))
}

/// Recursive descent: sum := product (('+'|'-') product)*, product := atom (('*'|'/') atom)*,
/// atom := integer | '(' sum ')'. No unary minus: Countdown builds from the given numbers only.
struct Parser {
    chars: Vec<char>,
    position: usize,
    literals: Vec<i64>,
}

impl Parser {
    fn skip_spaces(&mut self) {
        while self.chars.get(self.position).is_some_and(|c| c.is_whitespace()) {
            self.position += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_spaces();
        self.chars.get(self.position).copied()
    }

    fn error(&self, message: &'static str) -> ExprError {
        ExprError::Parse { position: self.position, message }
    }

    fn sum(&mut self) -> Result<Rational, ExprError> {
        let mut value = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.position += 1;
            value = value.apply(op, self.product()?)?;
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<Rational, ExprError> {
        let mut value = self.atom()?;
        while let Some(op) = self.peek().map(|c| if c == '×' { '*' } else if c == '÷' { '/' } else { c }) {
            if op != '*' && op != '/' {
                break;
            }
            self.position += 1;
            value = value.apply(op, self.atom()?)?;
        }
        Ok(value)
    }

    fn atom(&mut self) -> Result<Rational, ExprError> {
        match self.peek() {
            Some('(') => {
                self.position += 1;
                let value = self.sum()?;
                if self.peek() != Some(')') {
                    return Err(self.error("expected `)`"));
                }
                self.position += 1;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.position;
                while self.chars.get(self.position).is_some_and(|c| c.is_ascii_digit()) {
                    self.position += 1;
                }
                let digits: String = self.chars[start..self.position].iter().collect();
                let n: i64 = digits.parse().map_err(|_| ExprError::Overflow)?;
                self.literals.push(n);
                Ok(Rational::integer(n))
            }
            Some(_) => Err(self.error("expected a number or `(`")),
            None => Err(self.error("unexpected end")),
        }
    }
}

/// Why a Countdown answer is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountdownError {
    #[error(transparent)]
    Expression(#[from] ExprError),
    #[error("uses {0}, which is not among the numbers (or is used more often than given)")]
    NumberNotAvailable(i64),
    #[error("evaluates to {value}, not {target}")]
    WrongValue { value: Rational, target: i64 },
    #[error("uses {used} of the {given} numbers; all are required")]
    NotAllUsed { used: usize, given: usize },
}

/// Checks a Countdown answer: an expression over `numbers`, each used at most once (exactly once
/// when `require_all`), whose exact value is `target`.
pub fn check_countdown(expression: &str, numbers: &[i64], target: i64, require_all: bool) -> Result<(), CountdownError> {
    let (value, literals) = evaluate(expression)?;
    let mut available = numbers.to_vec();
    for literal in &literals {
        let slot = available.iter().position(|n| n == literal).ok_or(CountdownError::NumberNotAvailable(*literal))?;
        available.swap_remove(slot);
    }
    if require_all && !available.is_empty() {
        return Err(CountdownError::NotAllUsed { used: literals.len(), given: numbers.len() });
    }
    if value != Rational::integer(target) {
        return Err(CountdownError::WrongValue { value, target });
    }
    Ok(())
}
