//! Word problems: short multi-step stories (GSM8K-like, smaller numbers) with an exact integer
//! answer. Each template builds its own computation; names and objects vary the text.

use super::{Computation, Operand, Problem, Step, parse_value};
use crate::records::Gold;
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct WordConfig {
    /// Largest base number in a story (difficulty).
    pub max_number: i64,
}

impl Default for WordConfig {
    fn default() -> Self {
        WordConfig { max_number: 20 }
    }
}

const NAMES: [&str; 12] = ["Ava", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Hugo", "Ivy", "Jack", "Lena", "Omar"];
const ITEMS: [&str; 8] = ["apples", "marbles", "stickers", "pencils", "cards", "shells", "coins", "books"];
const FOODS: [&str; 4] = ["cookies", "muffins", "pancakes", "cupcakes"];

impl WordConfig {
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "max" | "max_number" => self.max_number = parse_value(key, value)?,
            _ => return Err(format!("word has no option `{key}` (max_number)")),
        }
        if self.max_number < 5 {
            return Err(format!("word: max_number must be at least 5, got {}", self.max_number));
        }
        Ok(())
    }

    pub fn generate(&self, rng: &mut Rng, id: String) -> Result<Problem, String> {
        let name = *rng.pick(&NAMES);
        let m = self.max_number;
        let (prompt, computation) = match rng.below(4) {
            0 => {
                // have + packs * per pack - given away
                let item = *rng.pick(&ITEMS);
                let (have, packs, per, given) = (rng.range(2, m), rng.range(2, 9), rng.range(2, m), rng.range(1, m));
                let prompt = format!(
                    "{name} has {have} {item}. {name} buys {packs} packs with {per} {item} in each pack, then gives {given} {item} to a friend. How many {item} does {name} have now?"
                );
                (prompt, chain(&[(Some(packs), '*', per), (None, '+', have), (None, '-', given)]))
            }
            1 => {
                // change from a bill
                let item = *rng.pick(&ITEMS);
                let (count, price) = (rng.range(2, 9), rng.range(2, m));
                let cost = count * price;
                let bill = [10, 20, 50, 100, 200, 500].into_iter().find(|b| *b >= cost).unwrap_or(1000);
                let prompt = format!(
                    "{name} buys {count} {item} that cost ${price} each and pays with a ${bill} bill. How many dollars of change does {name} get?"
                );
                let mut c = chain(&[(Some(count), '*', price)]);
                c.steps.push(Step { left: Operand::Literal(bill), op: '-', right: Operand::Step(0) });
                (prompt, c)
            }
            2 => {
                // trays * per tray / friends, exact
                let food = *rng.pick(&FOODS);
                let (trays, friends, share) = (rng.range(2, 6), rng.range(2, 6), rng.range(1, 5));
                let per_tray = friends * share;
                let prompt = format!(
                    "{name} bakes {trays} trays of {per_tray} {food} and shares them equally among {friends} friends. How many {food} does each friend get?"
                );
                (prompt, chain(&[(Some(trays), '*', per_tray), (None, '/', friends)]))
            }
            _ => {
                // distance: speed * hours + extra
                let (speed, hours, extra) = (rng.range(2, m) * 5, rng.range(2, 6), rng.range(1, m));
                let prompt = format!(
                    "{name} drives at {speed} km per hour for {hours} hours, then drives {extra} km more. How many km does {name} drive in total?"
                );
                (prompt, chain(&[(Some(speed), '*', hours), (None, '+', extra)]))
            }
        };
        let result = computation.result().ok_or("inexact step")?;
        if result < 0 {
            // Only template 0 can go negative (gives away more than it has): ask for another draw.
            return self.generate(rng, id);
        }
        Ok(Problem {
            id,
            prompt,
            gold: Gold::Answer { answer: result.to_string() },
            computation,
            answer_is_expression: false,
            positive_steps: false,
        })
    }
}

/// Steps `(left literal, or the previous result) op right`, left to right.
fn chain(steps: &[(Option<i64>, char, i64)]) -> Computation {
    let mut computation = Computation::default();
    for (i, &(left, op, right)) in steps.iter().enumerate() {
        let left = match left {
            Some(n) => Operand::Literal(n),
            None => Operand::Step(i - 1),
        };
        computation.steps.push(Step { left, op, right: Operand::Literal(right) });
    }
    computation
}
