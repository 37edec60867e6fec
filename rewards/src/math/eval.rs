//! Evaluating expressions: exact rationals while the operations allow it (so large integers
//! and tiny fractions never blur), complex f64 for roots, logs, trig and constants.

use num_bigint::BigInt;
use num_complex::Complex64;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::expr::{Expr, Func};

/// Exact values past this many bits (numerator + denominator) become approximate.
pub const MAX_EXACT_BITS: u64 = 4096;
/// Operations per evaluation; bounds the work of any single expression.
pub const EVAL_BUDGET: usize = 20_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Exact(BigRational),
    Approx(Complex64),
}

impl Value {
    pub fn to_complex(&self) -> Option<Complex64> {
        match self {
            Value::Exact(r) => Some(Complex64::new(r.to_f64()?, 0.0)),
            Value::Approx(c) => Some(*c),
        }
    }

    fn approx(c: Complex64) -> Option<Value> {
        (c.re.is_finite() && c.im.is_finite()).then_some(Value::Approx(c))
    }

    fn exact(r: BigRational) -> Option<Value> {
        if bits(&r) <= MAX_EXACT_BITS {
            Some(Value::Exact(r))
        } else {
            Value::approx(Complex64::new(r.to_f64()?, 0.0))
        }
    }

    pub fn is_zero(&self) -> bool {
        match self {
            Value::Exact(r) => r.is_zero(),
            Value::Approx(c) => c.norm() == 0.0,
        }
    }
}

fn bits(r: &BigRational) -> u64 {
    r.numer().bits() + r.denom().bits()
}

/// Equal values: exactly when both are exact, else to a relative 1e-9 (f64 transcendental
/// functions are accurate to ~1e-15; a purely relative test never equates tiny distinct values).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    if let (Value::Exact(x), Value::Exact(y)) = (a, b) {
        return x == y;
    }
    let (Some(x), Some(y)) = (a.to_complex(), b.to_complex()) else { return false };
    let scale = x.norm().max(y.norm());
    let diff = (x - y).norm();
    if diff <= 1e-9 * scale {
        return true;
    }
    // sin(pi) style round-off against an exact zero.
    let exact_zero = matches!(a, Value::Exact(r) if r.is_zero()) || matches!(b, Value::Exact(r) if r.is_zero());
    exact_zero && scale < 1e-12
}

pub struct Evaluator<'a> {
    pub vars: &'a [(String, BigRational)],
    budget: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(vars: &'a [(String, BigRational)]) -> Self {
        Evaluator { vars, budget: EVAL_BUDGET }
    }

    /// None when undefined (division by zero, infinity, unknown variable) or over budget.
    pub fn eval(&mut self, e: &Expr) -> Option<Value> {
        self.budget = self.budget.checked_sub(1)?;
        match e {
            Expr::Num(r) => Value::exact(r.clone()),
            Expr::Pi => Some(Value::Approx(Complex64::new(std::f64::consts::PI, 0.0))),
            Expr::E => Some(Value::Approx(Complex64::new(std::f64::consts::E, 0.0))),
            Expr::I => Some(Value::Approx(Complex64::new(0.0, 1.0))),
            Expr::Infinity => None,
            Expr::Var(name) => self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| Value::Exact(v.clone())),
            Expr::Neg(a) => match self.eval(a)? {
                Value::Exact(r) => Some(Value::Exact(-r)),
                Value::Approx(c) => Some(Value::Approx(-c)),
            },
            Expr::Add(a, b) => self.binary(a, b, |x, y| Some(x + y), |x, y| x + y),
            Expr::Sub(a, b) => self.binary(a, b, |x, y| Some(x - y), |x, y| x - y),
            Expr::Mul(a, b) => self.binary(a, b, |x, y| Some(x * y), |x, y| x * y),
            Expr::Div(a, b) => {
                let d = self.eval(b)?;
                if d.is_zero() {
                    return None;
                }
                let n = self.eval(a)?;
                combine(n, d, |x, y| Some(x / y), |x, y| x / y)
            }
            Expr::Pow(a, b) => {
                let base = self.eval(a)?;
                let exp = self.eval(b)?;
                power(base, exp)
            }
            Expr::Root(n, x) => {
                let degree = self.eval(n)?;
                let radicand = self.eval(x)?;
                root(radicand, degree)
            }
            Expr::Log(base, x) => {
                let base = self.eval(base)?.to_complex()?;
                let x = self.eval(x)?.to_complex()?;
                if x.norm() == 0.0 || base.norm() == 0.0 || base == Complex64::new(1.0, 0.0) {
                    return None;
                }
                Value::approx(x.ln() / base.ln())
            }
            Expr::Func(f, a) => {
                let v = self.eval(a)?;
                apply(*f, v)
            }
            Expr::Binom(n, k) => {
                let n = small_int(&self.eval(n)?, 2000)?;
                let k = small_int(&self.eval(k)?, 2000)?;
                if k < 0 || n < 0 || k > n {
                    return Some(Value::Exact(BigRational::zero()));
                }
                let mut acc = BigInt::one();
                for j in 0..k {
                    acc = acc * BigInt::from(n - j) / BigInt::from(j + 1);
                }
                Value::exact(BigRational::from_integer(acc))
            }
        }
    }

    fn binary(
        &mut self,
        a: &Expr,
        b: &Expr,
        exact: impl Fn(BigRational, BigRational) -> Option<BigRational>,
        approx: impl Fn(Complex64, Complex64) -> Complex64,
    ) -> Option<Value> {
        let x = self.eval(a)?;
        let y = self.eval(b)?;
        combine(x, y, exact, approx)
    }
}

fn combine(
    x: Value,
    y: Value,
    exact: impl Fn(BigRational, BigRational) -> Option<BigRational>,
    approx: impl Fn(Complex64, Complex64) -> Complex64,
) -> Option<Value> {
    match (x, y) {
        (Value::Exact(x), Value::Exact(y)) => Value::exact(exact(x, y)?),
        (x, y) => Value::approx(approx(x.to_complex()?, y.to_complex()?)),
    }
}

fn small_int(v: &Value, max: i64) -> Option<i64> {
    match v {
        Value::Exact(r) if r.is_integer() => r.to_integer().to_i64().filter(|n| n.abs() <= max),
        _ => None,
    }
}

fn power(base: Value, exp: Value) -> Option<Value> {
    if let (Value::Exact(b), Value::Exact(e)) = (&base, &exp) {
        if e.is_integer() {
            if let Some(n) = e.to_integer().to_i64() {
                if b.is_zero() {
                    return match n.signum() {
                        1 => Some(Value::Exact(BigRational::zero())),
                        0 => Some(Value::Exact(BigRational::one())),
                        _ => None,
                    };
                }
                // |b| = 1 never grows; otherwise cap the size of the result.
                let abs_one = b.numer().abs() == *b.denom();
                if abs_one || (n.unsigned_abs()).saturating_mul(bits(b)) <= MAX_EXACT_BITS {
                    return Some(Value::Exact(rational_powi(b, n)));
                }
            }
        } else if let Some(q) = e.denom().to_u32().filter(|q| *q <= 64) {
            // b^(p/q): exact when b is a perfect q-th power.
            if let Some(r) = exact_root(b, q) {
                return power(Value::Exact(r), Value::Exact(BigRational::from_integer(e.numer().clone())));
            }
        }
    }
    let b = base.to_complex()?;
    let e = exp.to_complex()?;
    if b.norm() == 0.0 {
        return if e.re > 0.0 { Some(Value::Exact(BigRational::zero())) } else { None };
    }
    if b.im == 0.0 && b.re > 0.0 && e.im == 0.0 {
        return Value::approx(Complex64::new(b.re.powf(e.re), 0.0));
    }
    Value::approx(b.powc(e))
}

fn rational_powi(b: &BigRational, n: i64) -> BigRational {
    let k = n.unsigned_abs() as usize;
    let r = BigRational::new(num_traits::pow(b.numer().clone(), k), num_traits::pow(b.denom().clone(), k));
    if n < 0 { r.recip() } else { r }
}

/// Exact real q-th root of a rational, when numerator and denominator are perfect powers.
fn exact_root(r: &BigRational, q: u32) -> Option<BigRational> {
    if r.is_negative() && q % 2 == 0 {
        return None;
    }
    let n = r.numer().abs();
    let d = r.denom().clone();
    let rn = n.nth_root(q);
    let rd = d.nth_root(q);
    if num_traits::pow(rn.clone(), q as usize) != n || num_traits::pow(rd.clone(), q as usize) != d {
        return None;
    }
    let root = BigRational::new(rn, rd);
    Some(if r.is_negative() { -root } else { root })
}

fn root(radicand: Value, degree: Value) -> Option<Value> {
    let q = small_int(&degree, 64).filter(|q| *q >= 1)?;
    if let Value::Exact(r) = &radicand {
        if let Some(exact) = exact_root(r, q as u32) {
            return Some(Value::Exact(exact));
        }
        // Odd roots of negative reals are real (cube root of -2), not the principal complex root.
        if r.is_negative() && q % 2 == 1 {
            let x = r.to_f64()?;
            return Value::approx(Complex64::new(-(-x).powf(1.0 / q as f64), 0.0));
        }
    }
    let c = radicand.to_complex()?;
    if c.im == 0.0 && c.re >= 0.0 {
        return Value::approx(Complex64::new(c.re.powf(1.0 / q as f64), 0.0));
    }
    Value::approx(c.powf(1.0 / q as f64))
}

fn apply(f: Func, v: Value) -> Option<Value> {
    match f {
        Func::Abs => {
            return match v {
                Value::Exact(r) => Some(Value::Exact(r.abs())),
                Value::Approx(c) => Value::approx(Complex64::new(c.norm(), 0.0)),
            };
        }
        Func::Factorial => {
            let n = small_int(&v, 1000).filter(|n| *n >= 0)?;
            let mut acc = BigInt::one();
            for k in 2..=n {
                acc *= BigInt::from(k);
            }
            return Value::exact(BigRational::from_integer(acc));
        }
        _ => {}
    }
    let x = v.to_complex()?;
    let real = x.im == 0.0;
    let out = match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Cot => x.tan().inv(),
        Func::Sec => x.cos().inv(),
        Func::Csc => x.sin().inv(),
        Func::Asin => x.asin(),
        Func::Acos => x.acos(),
        Func::Atan => x.atan(),
        Func::Sinh => x.sinh(),
        Func::Cosh => x.cosh(),
        Func::Tanh => x.tanh(),
        Func::Ln => {
            if x.norm() == 0.0 {
                return None;
            }
            if real && x.re > 0.0 { Complex64::new(x.re.ln(), 0.0) } else { x.ln() }
        }
        Func::Exp => x.exp(),
        Func::Abs | Func::Factorial => unreachable!("handled above"),
    };
    // Real functions of reals stay real (avoid -0 imaginary noise).
    let out = if real && out.im.abs() < 1e-300 { Complex64::new(out.re, 0.0) } else { out };
    Value::approx(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::expr::parse_expr;

    fn ev(s: &str) -> Option<Value> {
        Evaluator::new(&[]).eval(&parse_expr(s).unwrap())
    }

    fn same(a: &str, b: &str) -> bool {
        values_equal(&ev(a).unwrap(), &ev(b).unwrap())
    }

    #[test]
    fn exact_rationals_for_large_and_tiny_numbers() {
        assert!(same("12345678901234567890123", "12345678901234567890122 + 1"));
        assert!(!same("12345678901234567890123", "12345678901234567890124"));
        assert!(!same(r"\frac{1}{10^{20}}", r"\frac{2}{10^{20}}"));
        assert!(same(r"\frac{1}{10^{20}}", "0.00000000000000000001"));
        assert!(same("0.5", r"\frac12"));
        assert!(!same("0.333", r"\frac13"));
    }

    #[test]
    fn roots_and_transcendentals() {
        assert!(same(r"\sqrt{12}", r"2\sqrt3"));
        assert!(!same(r"\sqrt{12}", r"3\sqrt2"));
        assert!(matches!(ev(r"\sqrt{16}"), Some(Value::Exact(_))));
        assert!(same(r"\sqrt[3]{-8}", "-2"));
        assert!(same(r"8^{2/3}", "4"));
        assert!(same(r"\sin(\pi/6)", r"\frac12"));
        assert!(same(r"\log_2 8", "3"));
        assert!(same(r"e^{\ln 5}", "5"));
        assert!(same(r"\sin(\pi)", "0"));
        assert!(same("(1+i)^2", "2i"));
        assert!(!same("(1+i)^2", "2"));
        assert!(same("5!", "120"));
        assert!(same(r"\binom{5}{2}", "10"));
    }

    #[test]
    fn undefined_and_huge_values_are_none_not_panics() {
        assert!(ev("1/0").is_none());
        assert!(ev(r"\infty").is_none());
        assert!(ev("10^{10^{10^{10}}}").is_none());
        assert!(ev("0^{-1}").is_none());
        assert!(ev("100000!").is_none());
    }
}
