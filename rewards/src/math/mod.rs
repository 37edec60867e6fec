//! Math accuracy: extract the final answer, normalize, and decide equivalence with the gold.

pub mod equiv;
pub mod eval;
pub mod expr;
pub mod extract;
pub mod normalize;

use crate::reward::{Record, Reward, RewardOutput};
pub use equiv::{answers_equivalent, parse_answer, Answer};
pub use extract::{extract_answer, extract_gold, Fallback, MAX_ANSWER_CHARS};
pub use normalize::normalize;

/// Whether `answer` (already extracted) is equivalent to `gold` (already extracted).
/// Unsure means no: unparseable answers only match by identical normalized text.
pub fn is_equivalent(gold: &str, answer: &str) -> bool {
    if gold.trim() == answer.trim() {
        return true;
    }
    if gold.len() > MAX_ANSWER_CHARS || answer.len() > MAX_ANSWER_CHARS {
        return false;
    }
    let (g, a) = (normalize(gold), normalize(answer));
    if g.is_empty() || a.is_empty() {
        return false;
    }
    if g == a {
        return true;
    }
    answers_equivalent(&parse_answer(&g), &parse_answer(&a))
}

/// Scores a completion 1 when its final answer is equivalent to the record's gold, else 0.
#[derive(Debug, Clone, Default)]
pub struct MathReward {
    pub fallback: Fallback,
}

impl MathReward {
    pub fn new(fallback: Fallback) -> Self {
        MathReward { fallback }
    }

    /// The verdict with its reason; shared by the rewards that need correctness (cosine length).
    pub fn judge(&self, completion: &str, record: &Record) -> RewardOutput {
        let Some(gold) = record.gold.as_deref() else {
            return RewardOutput::with_reason(0.0, "record has no gold answer");
        };
        let Some(answer) = extract_answer(completion, self.fallback) else {
            return RewardOutput::with_reason(0.0, "no final answer found");
        };
        if is_equivalent(&extract_gold(gold), &answer) {
            RewardOutput::new(1.0)
        } else {
            let shown: String = answer.chars().take(60).collect();
            RewardOutput::with_reason(0.0, format!("answer `{shown}` is not the gold"))
        }
    }
}

impl Reward for MathReward {
    fn name(&self) -> &str {
        "math"
    }
    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        self.judge(completion, record)
    }
}

#[cfg(test)]
mod tests {
    use super::is_equivalent as eq;

    fn both(gold: &str, same: &str, different: &str) {
        assert!(eq(gold, same), "expected `{gold}` == `{same}`");
        assert!(!eq(gold, different), "expected `{gold}` != `{different}`");
    }

    #[test]
    fn numbers() {
        both("18", "18.0", "18.01");
        both("18", "018", "180");
        both("1000", "1,000", "1,001");
        both("0.5", r"\frac{1}{2}", r"\frac{1}{3}");
        both(r"\frac{3}{4}", r"\dfrac34", "0.7");
        both("-3", "- 3", "3");
        both("123456789012345678901234567890", "123456789012345678901234567890.0", "123456789012345678901234567891");
        both(r"10^{-20}", "0.00000000000000000001", r"2\cdot 10^{-20}");
        both("50", r"50\%", "5");
        both("30", r"30^\circ", "31");
        both("18", r"\$18", "19");
        both("7", r"7 \text{ cm}", "8");
    }

    #[test]
    fn symbolic() {
        both(r"\sqrt{12}", r"2\sqrt3", r"3\sqrt2");
        both("(x+1)^2", "x^2+2x+1", "x^2+x+1");
        both(r"\frac{\pi}{2}", r"\pi/2", r"\pi");
        both(r"2\pi", r"\pi \cdot 2", r"\pi^2");
        both(r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", "0.7071");
        both(r"e^2", r"\exp(2)", "e^3");
        both(r"\log_2 32", "5", "6");
        both(r"\sin^2 x + \cos^2 x", "1", "2");
        both("3+4i", "4i+3", "3-4i");
        both("2xy", "2yx", "2x");
        both(r"\frac{a+b}{2}", r"\frac{b}{2} + \frac{a}{2}", r"\frac{a-b}{2}");
    }

    #[test]
    fn equations() {
        both("x = 5", "5", "6");
        both("5", "x = 5", "x = 6");
        both("y = 2x + 1", "2x - y + 1 = 0", "y = 2x - 1");
        both("y = 2x + 1", "2x + 1 = y", "y = x + 1");
        // Only the right-hand side compared would make these equal; they are not.
        assert!(!eq("x = 5", "y = 6"));
        assert!(!eq("2 = 5", "5"));
    }

    #[test]
    fn tuples_sets_intervals() {
        both("(1, 2)", r"\left(1, 2\right)", "(2, 1)");
        both(r"\{1, 2, 3\}", r"\{3, 1, 2\}", r"\{1, 2\}");
        both("1, 2, 3", "3, 2, 1", "1, 2, 4");
        both("[1, 3)", r"\left[ 1, 3 \right)", "(1, 3]");
        both(r"(-\infty, 0) \cup (1, \infty)", r"(1, \infty) \cup (-\infty, 0)", r"(-\infty, 0] \cup (1, \infty)");
        both(r"[-2, 7]", r"[-2,7]", "(-2, 7)");
        both(r"(3, \frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi)");
        both("x = 1, y = 2", "y = 2, x = 1", "x = 2, y = 1");
        both(r"\emptyset", r"\varnothing", r"\{0\}");
    }

    #[test]
    fn matrices() {
        both(
            r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
            r"\begin{bmatrix} 1 & 2 \\ 3 & \frac{8}{2} \end{bmatrix}",
            r"\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}",
        );
        both(r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}", r"\begin{pmatrix}1\\-2\end{pmatrix}", r"\begin{pmatrix} -2 \\ 1 \end{pmatrix}");
    }

    #[test]
    fn text_and_choices() {
        both(r"\text{Evelyn}", "evelyn", "Bob");
        both("(B)", r"\text{B}", "C");
        both(r"\text{(C)}", "C", "(D)");
    }
}
