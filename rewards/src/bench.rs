//! Throughput of the math reward (for `r1kit bench rewards`): answers/s and latency
//! percentiles, separately for GSM8K-style integer answers and MATH-style symbolic answers.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::Value;

use crate::math::MathReward;
use crate::reward::{Record, Reward};

#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    pub answers: usize,
    pub answers_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RewardBench {
    pub threads: usize,
    pub integer: Throughput,
    pub symbolic: Throughput,
}

impl std::fmt::Display for RewardBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "math reward on {} threads", self.threads)?;
        for (label, t) in [("integer (GSM8K)", &self.integer), ("symbolic (MATH)", &self.symbolic)] {
            writeln!(
                f,
                "  {label:<16} {:>7} answers  {:>10.0} answers/s  p50 {:>7.1} us  p99 {:>7.1} us",
                t.answers, t.answers_per_sec, t.p50_us, t.p99_us
            )?;
        }
        Ok(())
    }
}

/// Symbolic (gold, answer, equal) cases in the forms MATH golds take.
const SYMBOLIC: &[(&str, &str, bool)] = &[
    (r"\frac{\sqrt{6}}{4}", r"\frac{\sqrt{3}}{2\sqrt{2}}", true),
    (r"2\sqrt{2}", r"\sqrt{8}", true),
    (r"8\sqrt{5} - 16", r"8(\sqrt5-2)", true),
    (r"(x+1)^2", "x^2+2x+1", true),
    (r"(x+1)^2", "x^2+x+1", false),
    (r"\frac{\pi}{2}", r"\pi/2", true),
    (r"(-\infty,-1)\cup(6,+\infty)", r"(6,\infty)\cup(-\infty,-1)", true),
    (r"[-\frac{1}{4}, 0) \cup (0, 2)", r"[-0.25,0]\cup(0,2)", false),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})", true),
    ("y = 2x + 1", "2x - y + 1 = 0", true),
    (r"\{1, 2, 3\}", r"\{3, 1, 2\}", true),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{bmatrix} 1 & 2 \\ 3 & \frac{8}{2} \end{bmatrix}", true),
    ("3+4i", "4i+3", true),
    (r"10^{2^n-n-1}", r"\frac{10^{2^n}}{10^{n+1}}", true),
    (r"\frac{a+b}{2}", r"\frac{b}{2} + \frac{a}{2}", true),
    (r"\sin^2 x + \cos^2 x", "1", true),
    (r"\log_2 32", "6", false),
    (r"\text{Evelyn}", "Evelyn", true),
];

/// Filler reasoning so extraction scans a realistic completion, not a bare box.
const REASONING: &str = "<think>\nLet me work through this step by step. First we compute the quantities involved, \
then combine them carefully, checking each intermediate value against the constraints in the problem.\n</think>\n";

fn gsm8k_golds(data_dir: &Path) -> Result<Vec<String>, String> {
    let path = data_dir.join("gsm8k_test.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e} (run scripts/fetch-assets.sh)", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            v["answer"].as_str().map(str::to_string).ok_or_else(|| format!("{}:{}: no string field `answer`", path.display(), i + 1))
        })
        .collect()
}

/// Times every case on the rayon pool, `rounds` times over. Fails if a verdict is wrong, so a
/// broken verifier cannot post a fast number.
fn measure(cases: &[(String, Record, bool)], rounds: usize) -> Result<Throughput, String> {
    let reward = MathReward::default();
    let work: Vec<&(String, Record, bool)> = (0..rounds.max(1)).flat_map(|_| cases.iter()).collect();
    let start = Instant::now();
    let timed: Vec<(f64, bool)> = work
        .par_iter()
        .map(|(completion, record, expected)| {
            let t = Instant::now();
            let value = reward.score(completion, record).value;
            (t.elapsed().as_secs_f64() * 1e6, (value == 1.0) == *expected)
        })
        .collect();
    let wall = start.elapsed().as_secs_f64();
    if let Some(i) = timed.iter().position(|(_, ok)| !ok) {
        let (c, r, e) = work[i];
        return Err(format!("wrong verdict (expected {e}) for `{c}` against gold {:?}", r.gold));
    }
    let mut lat: Vec<f64> = timed.iter().map(|(us, _)| *us).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Ok(Throughput { answers: lat.len(), answers_per_sec: lat.len() as f64 / wall, p50_us: pct(0.5), p99_us: pct(0.99) })
}

/// Benchmarks the math reward on all GSM8K test golds (right and off-by-one answers) and on
/// symbolic MATH-style answers, each repeated `rounds` times. `data_dir` is `assets/data`.
pub fn bench_rewards(data_dir: &Path, rounds: usize) -> Result<RewardBench, String> {
    let integer: Vec<(String, Record, bool)> = gsm8k_golds(data_dir)?
        .into_iter()
        .flat_map(|solution| {
            let gold = solution.rsplit("####").next().unwrap_or("").trim().replace(',', "");
            let wrong = gold.parse::<i64>().map(|g| (g + 1).to_string()).unwrap_or_else(|_| format!("{gold}1"));
            let record = Record::with_gold(solution);
            [
                (format!("{REASONING}<answer>The answer is \\boxed{{{gold}}}.</answer>"), record.clone(), true),
                (format!("{REASONING}<answer>\\boxed{{{wrong}}}</answer>"), record, false),
            ]
        })
        .collect();
    let symbolic: Vec<(String, Record, bool)> = SYMBOLIC
        .iter()
        .map(|(gold, answer, equal)| (format!("{REASONING}<answer>\\boxed{{{answer}}}</answer>"), Record::with_gold(format!("${gold}$")), *equal))
        .collect();
    Ok(RewardBench {
        threads: rayon::current_num_threads(),
        integer: measure(&integer, rounds)?,
        symbolic: measure(&symbolic, rounds * (integer.len() / symbolic.len()).max(1))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_runs_on_real_golds_and_checks_verdicts() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/data"));
        let bench = bench_rewards(dir, 1).unwrap();
        assert_eq!(bench.integer.answers, 2 * 1319);
        assert!(bench.symbolic.answers >= 2 * 1319 - SYMBOLIC.len());
        assert!(bench.integer.answers_per_sec > 0.0 && bench.integer.p99_us >= bench.integer.p50_us);
        eprintln!("{bench}");
    }
}
