//! Countdown: combine the given numbers with + - * / (each at most once) to reach the target.
//! Problems are built from a random solution, so every one is solvable; all intermediate values
//! are positive integers, as in the game.

use super::{Computation, Operand, Problem, Step, apply, parse_range, parse_value};
use crate::records::Gold;
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct CountdownConfig {
    /// How many numbers (difficulty: each adds a step).
    pub count: usize,
    /// Range of the numbers, inclusive.
    pub numbers: (i64, i64),
    /// Range of the target, inclusive.
    pub target: (i64, i64),
}

impl Default for CountdownConfig {
    fn default() -> Self {
        CountdownConfig { count: 4, numbers: (1, 99), target: (1, 100) }
    }
}

const ATTEMPTS_PER_NUMBERS: usize = 64;
const NUMBER_DRAWS: usize = 200;

impl CountdownConfig {
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "count" => self.count = parse_value(key, value)?,
            "numbers" => self.numbers = parse_range(key, value)?,
            "target" => self.target = parse_range(key, value)?,
            _ => return Err(format!("countdown has no option `{key}` (count, numbers, target)")),
        }
        if self.count < 2 || self.count > 8 {
            return Err(format!("countdown: count must be 2..=8, got {}", self.count));
        }
        if self.numbers.0 < 1 {
            return Err("countdown: numbers must be positive".into());
        }
        Ok(())
    }

    pub fn generate(&self, rng: &mut Rng, id: String) -> Result<Problem, String> {
        for _ in 0..NUMBER_DRAWS {
            let numbers: Vec<i64> = (0..self.count).map(|_| rng.range(self.numbers.0, self.numbers.1)).collect();
            for _ in 0..ATTEMPTS_PER_NUMBERS {
                let Some((computation, value)) = random_solution(&numbers, rng) else { continue };
                if (self.target.0..=self.target.1).contains(&value) {
                    return Ok(Problem {
                        id,
                        prompt: prompt(&numbers, value),
                        gold: Gold::Countdown { numbers, target: value },
                        computation,
                        answer_is_expression: true,
                        positive_steps: true,
                    });
                }
            }
        }
        Err(format!("no target in {:?} reachable from numbers in {:?}; widen the ranges", self.target, self.numbers))
    }
}

pub fn prompt(numbers: &[i64], target: i64) -> String {
    let list: Vec<String> = numbers.iter().map(i64::to_string).collect();
    format!(
        "Using the numbers [{}], create an equation that equals {target}. You can use +, -, * and /, and each number at most once.",
        list.join(", ")
    )
}

/// Combines two random pool entries at a time until one value is left, the way a player does.
fn random_solution(numbers: &[i64], rng: &mut Rng) -> Option<(Computation, i64)> {
    let mut pool: Vec<(i64, Operand)> = numbers.iter().map(|&n| (n, Operand::Literal(n))).collect();
    let mut computation = Computation::default();
    while pool.len() > 1 {
        let mut a = pool.swap_remove(rng.below(pool.len() as u64) as usize);
        let mut b = pool.swap_remove(rng.below(pool.len() as u64) as usize);
        let mut ops = ['+', '-', '*', '/'];
        rng.shuffle(&mut ops);
        let (op, value) = ops.iter().find_map(|&op| {
            // Larger first for - and /, so results stay positive integers.
            if (op == '-' || op == '/') && a.0 < b.0 {
                std::mem::swap(&mut a, &mut b);
            }
            let useful = !(op == '/' && b.0 == 1) && !(op == '*' && (a.0 == 1 || b.0 == 1));
            apply(a.0, op, b.0).filter(|v| *v > 0 && useful).map(|v| (op, v))
        })?;
        computation.steps.push(Step { left: a.1, op, right: b.1 });
        pool.push((value, Operand::Step(computation.steps.len() - 1)));
    }
    Some((computation, pool[0].0))
}
