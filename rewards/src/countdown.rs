//! Countdown: combine the given numbers with + - * / and parentheses to hit the target.

use num_bigint::BigInt;
use num_rational::BigRational;
use serde_json::Value as Json;

use crate::math::eval::{Evaluator, Value};
use crate::math::expr::{parse_expr, Expr};
use crate::math::extract::{extract_answer, Fallback};
use crate::reward::{Record, Reward, RewardOutput};

/// Scores 1 when the answer uses each given number at most once, only + - * / and
/// parentheses, and evaluates exactly (rationals) to the target. Reads the numbers from the
/// record's `nums` (or `numbers`) and the target from `target`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountdownReward;

const MAX_EXPRESSION_CHARS: usize = 200;

impl CountdownReward {
    pub fn check(&self, answer: &str, nums: &[i64], target: i64) -> Result<(), String> {
        let expr_text = equation_side(answer, target);
        if expr_text.len() > MAX_EXPRESSION_CHARS {
            return Err("expression too long".into());
        }
        let cleaned = expr_text.replace("\\times", "*").replace("\\cdot", "*").replace("\\div", "/").replace('×', "*").replace('÷', "/");
        if let Some(bad) = cleaned.chars().find(|c| !(c.is_ascii_digit() || "+-*/() ".contains(*c))) {
            return Err(format!("character `{bad}` is not allowed"));
        }
        let expr = parse_expr(&cleaned).ok_or("not an arithmetic expression")?;
        let mut used = Vec::new();
        literals(&expr, &mut used)?;
        let mut available = nums.to_vec();
        for n in &used {
            let pos = available.iter().position(|a| a == n).ok_or(format!("{n} is not available (numbers: {nums:?})"))?;
            available.swap_remove(pos);
        }
        match Evaluator::new(&[]).eval(&expr) {
            Some(Value::Exact(v)) if v == BigRational::from_integer(BigInt::from(target)) => Ok(()),
            Some(Value::Exact(v)) => Err(format!("evaluates to {v}, not {target}")),
            _ => Err("does not evaluate (division by zero?)".into()),
        }
    }
}

/// `1 + 2 * 3 = 7` -> the side that is not just the target.
fn equation_side(answer: &str, target: i64) -> &str {
    match answer.split_once('=') {
        Some((l, r)) if l.trim() == target.to_string() => r.trim(),
        Some((l, _)) => l.trim(),
        None => answer.trim(),
    }
}

/// Integer literals of an expression made only of + - * / and negation.
fn literals(e: &Expr, out: &mut Vec<i64>) -> Result<(), String> {
    match e {
        Expr::Num(r) if r.is_integer() => {
            out.push(r.to_integer().try_into().map_err(|_| "number too large".to_string())?);
            Ok(())
        }
        Expr::Num(r) => Err(format!("{r} is not an integer")),
        Expr::Neg(a) => literals(a, out),
        Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) | Expr::Div(a, b) => {
            literals(a, out)?;
            literals(b, out)
        }
        _ => Err("only + - * / and parentheses are allowed".into()),
    }
}

fn int_list(v: &Json) -> Option<Vec<i64>> {
    v.as_array()?.iter().map(Json::as_i64).collect()
}

impl Reward for CountdownReward {
    fn name(&self) -> &str {
        "countdown"
    }
    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        let nums = record.extra.get("nums").or_else(|| record.extra.get("numbers")).and_then(int_list);
        let target = record
            .extra
            .get("target")
            .and_then(|t| t.as_i64().or_else(|| t.as_str().and_then(|s| s.trim().parse().ok())))
            .or_else(|| record.gold.as_deref().and_then(|g| g.trim().parse().ok()));
        let (Some(nums), Some(target)) = (nums, target) else {
            return RewardOutput::with_reason(0.0, "record needs `nums` (integer list) and `target`");
        };
        let Some(answer) = extract_answer(completion, Fallback::None) else {
            return RewardOutput::with_reason(0.0, "no <answer> found");
        };
        match self.check(&answer, &nums, target) {
            Ok(()) => RewardOutput::new(1.0),
            Err(why) => RewardOutput::with_reason(0.0, why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nums: &[i64], target: i64) -> Record {
        let mut r = Record::default();
        r.extra.insert("nums".into(), serde_json::json!(nums));
        r.extra.insert("target".into(), serde_json::json!(target));
        r
    }

    fn score(c: &str, nums: &[i64], target: i64) -> f64 {
        CountdownReward.score(c, &record(nums, target)).value
    }

    #[test]
    fn exact_use_and_value() {
        assert_eq!(score("<answer>(25 - 5) * 3</answer>", &[3, 5, 25], 60), 1.0);
        assert_eq!(score("<answer>(25 - 5) * 3 = 60</answer>", &[3, 5, 25, 7], 60), 1.0);
        assert_eq!(score("<answer>60 = 3 \\times (25 - 5)</answer>", &[3, 5, 25], 60), 1.0);
        // Exact rationals: 7 / 2 * 4 = 14 exactly.
        assert_eq!(score("<answer>7 / 2 * 4</answer>", &[2, 4, 7], 14), 1.0);
    }

    #[test]
    fn rejects_reuse_foreign_numbers_and_wrong_values() {
        assert_eq!(score("<answer>5 * 5 + 3</answer>", &[3, 5, 25], 28), 0.0);
        assert_eq!(score("<answer>25 + 35</answer>", &[3, 5, 25], 60), 0.0);
        assert_eq!(score("<answer>25 + 5 + 3</answer>", &[3, 5, 25], 60), 0.0);
        assert_eq!(score("<answer>3^2</answer>", &[3, 2], 9), 0.0);
        assert_eq!(score("<answer>3 / (5 - 5)</answer>", &[3, 5, 5], 0), 0.0);
        assert_eq!(score("<answer>x + 1</answer>", &[1], 2), 0.0);
        assert_eq!(score("no answer", &[1], 1), 0.0);
        let out = CountdownReward.score("<answer>1</answer>", &Record::default());
        assert!(out.reason.unwrap().contains("nums"));
    }
}
