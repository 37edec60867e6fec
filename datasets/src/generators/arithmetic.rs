//! Multi-digit arithmetic: `37 + 48 * 2 - 15` with the usual precedence; divisions are exact.

use super::{Computation, Operand, Problem, Step, parse_value};
use crate::records::Gold;
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct ArithmeticConfig {
    /// Digits of each number (1..=6).
    pub digits: u32,
    /// Numbers in the expression (2..=8); each adds a step.
    pub terms: usize,
    /// Operators to draw from, a subset of `+-*/`.
    pub operators: Vec<char>,
}

impl Default for ArithmeticConfig {
    fn default() -> Self {
        ArithmeticConfig { digits: 2, terms: 3, operators: vec!['+', '-', '*'] }
    }
}

impl ArithmeticConfig {
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "digits" => self.digits = parse_value(key, value)?,
            "terms" => self.terms = parse_value(key, value)?,
            "ops" | "operators" => self.operators = value.chars().collect(),
            _ => return Err(format!("arithmetic has no option `{key}` (digits, terms, ops)")),
        }
        if !(1..=6).contains(&self.digits) {
            return Err(format!("arithmetic: digits must be 1..=6, got {}", self.digits));
        }
        if !(2..=8).contains(&self.terms) {
            return Err(format!("arithmetic: terms must be 2..=8, got {}", self.terms));
        }
        if self.operators.is_empty() || self.operators.iter().any(|c| !"+-*/".contains(*c)) {
            return Err(format!("arithmetic: ops must be a non-empty subset of +-*/, got {value:?}"));
        }
        Ok(())
    }

    fn number(&self, rng: &mut Rng) -> i64 {
        let low = if self.digits == 1 { 1 } else { 10i64.pow(self.digits - 1) };
        rng.range(low, 10i64.pow(self.digits) - 1)
    }

    pub fn generate(&self, rng: &mut Rng, id: String) -> Result<Problem, String> {
        // Draw operators, then numbers; a division's left side is made a multiple of its divisor.
        let ops: Vec<char> = (1..self.terms).map(|_| *rng.pick(&self.operators)).collect();
        let mut numbers: Vec<i64> = (0..self.terms).map(|_| self.number(rng)).collect();
        let mut computation = Computation::default();
        // Multiplicative runs first (left to right), then the additive chain.
        let mut additive: Vec<(char, Operand, i64)> = Vec::new(); // (op before, operand, value)
        let mut i = 0;
        while i < self.terms {
            let mut operand = Operand::Literal(numbers[i]);
            let mut value = numbers[i];
            while i + 1 < self.terms && (ops[i] == '*' || ops[i] == '/') {
                let op = ops[i];
                if op == '/' {
                    // Choose the divisor so the quotient is a whole number: the divisor is a small
                    // factor of the running value when one exists, else the value is rescaled.
                    let divisor = numbers[i + 1].clamp(2, 99).min(value.max(2));
                    let divisor = (2..=divisor).rev().find(|d| value % d == 0).unwrap_or(1);
                    numbers[i + 1] = divisor;
                }
                let right = numbers[i + 1];
                value = super::apply(value, op, right).ok_or("overflow")?;
                computation.steps.push(Step { left: operand, op, right: Operand::Literal(right) });
                operand = Operand::Step(computation.steps.len() - 1);
                i += 1;
            }
            let before = if additive.is_empty() { '+' } else { ops[i - run_len(&ops, i)] };
            additive.push((before, operand, value));
            i += 1;
        }
        let mut chain = additive[0].1;
        for &(op, operand, _) in &additive[1..] {
            computation.steps.push(Step { left: chain, op, right: operand });
            chain = Operand::Step(computation.steps.len() - 1);
        }
        if computation.steps.is_empty() {
            return Err("no operation".into());
        }
        let result = computation.result().ok_or("overflow")?;
        let expression = render_flat(&numbers, &ops);
        Ok(Problem {
            id,
            prompt: format!("Compute {expression}."),
            gold: Gold::Answer { answer: result.to_string() },
            computation,
            answer_is_expression: false,
            positive_steps: false,
        })
    }
}

/// How many * or / operators precede term `i` in its multiplicative run.
fn run_len(ops: &[char], i: usize) -> usize {
    let mut n = 0;
    while n < i && (ops[i - 1 - n] == '*' || ops[i - 1 - n] == '/') {
        n += 1;
    }
    n + 1
}

fn render_flat(numbers: &[i64], ops: &[char]) -> String {
    let mut text = numbers[0].to_string();
    for (op, n) in ops.iter().zip(&numbers[1..]) {
        text.push_str(&format!(" {op} {n}"));
    }
    text
}
