//! Seeded task generators with exact answers, and their worked solutions as R1 traces.
//!
//! A problem carries its solution as a `Computation`: a list of binary steps whose operands are
//! literals or earlier results. Traces print the steps; an erroneous trace re-evaluates the same
//! computation with one step changed, so the mistake propagates to a wrong final answer the way
//! a real slip would.

pub mod arithmetic;
pub mod countdown;
pub mod word;

use std::collections::HashSet;

use crate::error::{DataError, Result};
use crate::records::{Gold, RlPrompt, ReasoningTrace};
use crate::rng::Rng;
use crate::split::{Split, problem_hash, split_of};

pub use arithmetic::ArithmeticConfig;
pub use countdown::CountdownConfig;
pub use word::WordConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Literal(i64),
    /// The result of an earlier step.
    Step(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub left: Operand,
    pub op: char,
    pub right: Operand,
}

/// A change to a computation that makes a trace wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mistake {
    /// The step's result is written off by `delta`, and later steps use the wrong value.
    Slip { step: usize, delta: i64 },
    /// The step uses another operator.
    WrongOperator { step: usize, op: char },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Computation {
    pub steps: Vec<Step>,
}

/// Exact integer result of `a op b`; `None` for an inexact division or overflow.
pub fn apply(a: i64, op: char, b: i64) -> Option<i64> {
    match op {
        '+' => a.checked_add(b),
        '-' => a.checked_sub(b),
        '*' => a.checked_mul(b),
        '/' if b != 0 && a % b == 0 => Some(a / b),
        _ => None,
    }
}

impl Computation {
    /// Each step's (left, right, result), with an optional mistake; `None` when a step has no
    /// exact integer result (or, with `positive`, a non-positive one).
    pub fn evaluate(&self, mistake: Option<Mistake>, positive: bool) -> Option<Vec<(i64, i64, i64)>> {
        let mut values: Vec<(i64, i64, i64)> = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let value = |operand: Operand| match operand {
                Operand::Literal(n) => n,
                Operand::Step(j) => values[j].2,
            };
            let (a, b) = (value(step.left), value(step.right));
            let op = match mistake {
                Some(Mistake::WrongOperator { step, op }) if step == i => op,
                _ => step.op,
            };
            let mut result = apply(a, op, b)?;
            if let Some(Mistake::Slip { step, delta }) = mistake
                && step == i
            {
                result = result.checked_add(delta)?;
            }
            if positive && result <= 0 {
                return None;
            }
            values.push((a, b, result));
        }
        Some(values)
    }

    pub fn result(&self) -> Option<i64> {
        self.evaluate(None, false)?.last().map(|v| v.2)
    }

    /// The operator of a step under a mistake.
    fn op_of(&self, i: usize, mistake: Option<Mistake>) -> char {
        match mistake {
            Some(Mistake::WrongOperator { step, op }) if step == i => op,
            _ => self.steps[i].op,
        }
    }

    /// The whole computation as one expression with minimal parentheses (Countdown answers).
    pub fn expression(&self, mistake: Option<Mistake>) -> String {
        self.steps.len().checked_sub(1).map(|last| self.render(Operand::Step(last), mistake).0).unwrap_or_default()
    }

    /// Text and precedence (2 for * /, 1 for + -, 3 for a literal).
    fn render(&self, operand: Operand, mistake: Option<Mistake>) -> (String, u8) {
        let i = match operand {
            Operand::Literal(n) => return (n.to_string(), 3),
            Operand::Step(i) => i,
        };
        let op = self.op_of(i, mistake);
        let precedence = if op == '*' || op == '/' { 2 } else { 1 };
        let (left, lp) = self.render(self.steps[i].left, mistake);
        let (right, rp) = self.render(self.steps[i].right, mistake);
        let left = if lp < precedence { format!("({left})") } else { left };
        // a - (b + c) and a / (b * c) need their parentheses; a + (b + c) does not.
        let right_needs = rp < precedence || (rp == precedence && (op == '-' || op == '/'));
        let right = if right_needs { format!("({right})") } else { right };
        (format!("{left} {op} {right}"), precedence)
    }
}

/// How traces look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceStyle {
    /// One `a op b = c` line per step: short and regular, for tiny models.
    #[default]
    Compact,
    /// Steps in words.
    Verbose,
}

impl std::str::FromStr for TraceStyle {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "compact" => Ok(TraceStyle::Compact),
            "verbose" => Ok(TraceStyle::Verbose),
            other => Err(format!("unknown trace style `{other}` (compact, verbose)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceOptions {
    /// Probability that a trace contains a mistake leading to a wrong answer.
    pub error_rate: f64,
    pub style: TraceStyle,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions { error_rate: 0.0, style: TraceStyle::Compact }
    }
}

/// A generated problem with its exact solution.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub id: String,
    pub prompt: String,
    pub gold: Gold,
    pub computation: Computation,
    /// Countdown answers are expressions; the others are the final number.
    pub answer_is_expression: bool,
    /// Countdown keeps every intermediate value positive (its rules); mistakes must too.
    pub positive_steps: bool,
}

impl Problem {
    /// The correct final answer text.
    pub fn answer(&self) -> String {
        self.answer_under(None)
    }

    fn answer_under(&self, mistake: Option<Mistake>) -> String {
        if self.answer_is_expression {
            self.computation.expression(mistake)
        } else {
            let values = self.computation.evaluate(mistake, false).expect("only valid mistakes are rendered");
            values.last().map(|v| v.2.to_string()).unwrap_or_default()
        }
    }

    fn is_right(&self, mistake: Option<Mistake>) -> bool {
        let values = self.computation.evaluate(mistake, self.positive_steps);
        match (&self.gold, values) {
            (_, None) => false,
            (Gold::Countdown { target, .. }, Some(v)) => v.last().map(|s| s.2) == Some(*target),
            (Gold::Answer { answer }, Some(v)) => v.last().map(|s| s.2.to_string()).as_deref() == Some(answer.as_str()),
            (Gold::Code { .. }, _) => false,
        }
    }

    pub fn to_rl_prompt(&self) -> RlPrompt {
        RlPrompt { id: self.id.clone(), prompt: self.prompt.clone(), gold: self.gold.clone(), solution: Some(self.answer()) }
    }

    /// A worked solution; `rng` decides whether it has a mistake (with `options.error_rate`) and which.
    pub fn trace(&self, options: &TraceOptions, rng: &mut Rng) -> ReasoningTrace {
        let mistake = if rng.chance(options.error_rate) { self.pick_mistake(rng) } else { None };
        let values = self.computation.evaluate(mistake, false).expect("mistakes are checked to evaluate");
        let lines: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, &(a, b, c))| {
                let op = self.computation.op_of(i, mistake);
                step_line(options.style, i, values.len(), a, op, b, c)
            })
            .collect();
        ReasoningTrace {
            id: self.id.clone(),
            prompt: self.prompt.clone(),
            reasoning: lines.join("\n"),
            answer: self.answer_under(mistake),
            correct: Some(self.is_right(mistake)),
        }
    }

    /// A mistake that yields a valid but wrong computation: a wrong operator where the rules
    /// demand positive steps (Countdown), an arithmetic slip otherwise.
    fn pick_mistake(&self, rng: &mut Rng) -> Option<Mistake> {
        let n = self.computation.steps.len();
        if n == 0 {
            return None;
        }
        let start = rng.below(n as u64) as usize;
        let ops = ['+', '-', '*', '/'];
        for k in 0..n {
            let step = (start + k) % n;
            let candidates: Vec<Mistake> = if self.positive_steps {
                ops.iter()
                    .filter(|op| **op != self.computation.steps[step].op)
                    .map(|&op| Mistake::WrongOperator { step, op })
                    .collect()
            } else {
                let magnitude = rng.range(1, 3) * if rng.chance(0.5) { 10 } else { 1 };
                let sign = if rng.chance(0.5) { 1 } else { -1 };
                vec![Mistake::Slip { step, delta: sign * magnitude }, Mistake::Slip { step, delta: -sign * magnitude }]
            };
            let offset = rng.below(candidates.len() as u64) as usize;
            for j in 0..candidates.len() {
                let mistake = candidates[(offset + j) % candidates.len()];
                if self.computation.evaluate(Some(mistake), self.positive_steps).is_some() && !self.is_right(Some(mistake)) {
                    return Some(mistake);
                }
            }
        }
        None
    }
}

fn step_line(style: TraceStyle, i: usize, count: usize, a: i64, op: char, b: i64, c: i64) -> String {
    match style {
        TraceStyle::Compact => format!("{a}{op}{b}={c}"),
        TraceStyle::Verbose => {
            let lead = if i == 0 { "First" } else if i + 1 == count { "Finally" } else { "Then" };
            let verb = match op {
                '+' => "add",
                '-' => "subtract",
                '*' => "multiply",
                _ => "divide",
            };
            format!("{lead}, {verb}: {a} {op} {b} = {c}.")
        }
    }
}

/// A configured generator.
#[derive(Debug, Clone, PartialEq)]
pub enum Generator {
    Countdown(CountdownConfig),
    Arithmetic(ArithmeticConfig),
    Word(WordConfig),
}

impl Generator {
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Countdown(_) => "countdown",
            Generator::Arithmetic(_) => "arithmetic",
            Generator::Word(_) => "word",
        }
    }

    /// Names a `data gen` / dataset spec accepts.
    pub const NAMES: [&'static str; 3] = ["countdown", "arithmetic", "word"];

    /// The default configuration of a generator name.
    pub fn by_name(name: &str) -> Option<Generator> {
        match name {
            "countdown" => Some(Generator::Countdown(CountdownConfig::default())),
            "arithmetic" => Some(Generator::Arithmetic(ArithmeticConfig::default())),
            "word" | "word-problems" => Some(Generator::Word(WordConfig::default())),
            _ => None,
        }
    }

    /// Sets one option (`count=4`, `digits=3`, ...).
    pub fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        match self {
            Generator::Countdown(c) => c.set(key, value),
            Generator::Arithmetic(c) => c.set(key, value),
            Generator::Word(c) => c.set(key, value),
        }
    }

    /// The problem at `index` of the stream of `seed`.
    pub fn problem(&self, seed: u64, index: u64) -> Result<Problem> {
        let mut rng = Rng::for_item(seed, stream_of(self.name()), index);
        let id = format!("{}-{seed}-{index}", self.name());
        match self {
            Generator::Countdown(c) => c.generate(&mut rng, id),
            Generator::Arithmetic(c) => c.generate(&mut rng, id),
            Generator::Word(c) => c.generate(&mut rng, id),
        }
        .map_err(|message| DataError::Other(format!("{}: {message}", self.name())))
    }
}

fn stream_of(name: &str) -> u64 {
    crate::rng::stable_hash(name.as_bytes())
}

/// Which problems a generation keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFilter {
    pub split: Split,
    pub heldout_fraction: f64,
    pub salt: u64,
}

/// `n` distinct problems of a seed (duplicates by normalized text dropped), optionally only those
/// of one split. Fails when the configuration cannot produce that many distinct problems.
pub fn generate(generator: &Generator, n: usize, seed: u64, filter: Option<SplitFilter>) -> Result<Vec<Problem>> {
    let mut seen = HashSet::new();
    let mut problems = Vec::with_capacity(n);
    let max_attempts = (n as u64).saturating_mul(50).max(1000);
    let mut index = 0u64;
    while problems.len() < n {
        if index >= max_attempts {
            return Err(DataError::Other(format!(
                "{}: found only {} distinct problems in {max_attempts} attempts (asked for {n}); widen the ranges",
                generator.name(),
                problems.len()
            )));
        }
        let problem = generator.problem(seed, index)?;
        index += 1;
        if filter.is_some_and(|f| split_of(&problem.prompt, f.heldout_fraction, f.salt) != f.split) {
            continue;
        }
        if seen.insert(problem_hash(&problem.prompt)) {
            problems.push(problem);
        }
    }
    Ok(problems)
}

/// Traces of problems; whether each has a mistake depends only on (seed, problem id).
pub fn traces(problems: &[Problem], options: &TraceOptions, seed: u64) -> Vec<ReasoningTrace> {
    problems
        .iter()
        .map(|p| {
            let mut rng = Rng::for_item(seed, stream_of("trace"), crate::rng::stable_hash(p.id.as_bytes()));
            p.trace(options, &mut rng)
        })
        .collect()
}

/// Parses a `k=v` option value, naming the key in the error.
pub(crate) fn parse_value<T: std::str::FromStr>(key: &str, value: &str) -> std::result::Result<T, String> {
    value.parse().map_err(|_| format!("option `{key}`: cannot parse `{value}`"))
}

/// Parses `lo..hi` / `lo-hi` (inclusive) or a single value.
pub(crate) fn parse_range(key: &str, value: &str) -> std::result::Result<(i64, i64), String> {
    let parts: Vec<&str> = value.split("..").collect();
    let (lo, hi) = match parts.as_slice() {
        [single] => (parse_value(key, single)?, parse_value(key, single)?),
        [lo, hi] => (parse_value(key, lo)?, parse_value(key, hi.trim_start_matches('='))?),
        _ => return Err(format!("option `{key}`: expected lo..hi, got `{value}`")),
    };
    if lo > hi {
        return Err(format!("option `{key}`: empty range {lo}..{hi}"));
    }
    Ok((lo, hi))
}
