//! HumanEval through the sandboxed Python runner: canonical solutions pass, mutants fail,
//! partial fractions count per assert.

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use r1kit_rewards::code::{CodePool, FailureKind, Limits, Python, PythonRunner, Sandbox, SandboxConfig};
use serde_json::Value;

fn asset(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/data")).join(name);
    assert!(path.exists(), "{} missing: run scripts/fetch-assets.sh", path.display());
    path
}

fn humaneval() -> Vec<Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(asset("HumanEval.jsonl.gz")).unwrap()).read_to_string(&mut text).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn runner() -> &'static PythonRunner {
    static RUNNER: OnceLock<PythonRunner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let sandbox = Arc::new(Sandbox::new(SandboxConfig { slots: 8, ..Default::default() }).expect("sandbox"));
        let limits = Limits { wall: Duration::from_secs(10), cpu_secs: 5, ..Default::default() };
        PythonRunner::new(sandbox, Python::find(None).expect("python3"), limits)
    })
}

fn field<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key].as_str().unwrap_or_else(|| panic!("field {key}"))
}

#[test]
fn every_canonical_solution_scores_one() {
    let rows = humaneval();
    assert_eq!(rows.len(), 164);
    let pool = CodePool::new(8).unwrap();
    let results = pool.map(&rows, |row| {
        let program = format!("{}{}", field(row, "prompt"), field(row, "canonical_solution"));
        runner().humaneval(&program, field(row, "test"), field(row, "entry_point")).unwrap()
    });
    let failing: Vec<String> = rows
        .iter()
        .zip(&results)
        .filter(|(_, r)| !r.all_passed())
        .map(|(row, r)| format!("{}: {}", field(row, "task_id"), r.summary()))
        .collect();
    assert!(failing.is_empty(), "canonical solutions not scoring 1:\n{}", failing.join("\n"));
    // The split into per-assert tests really happened: most tasks have several.
    assert!(results.iter().filter(|r| r.total > 1).count() > 140);
}

const MULTI_TEST: &str = "
def check(candidate):
    assert candidate(2) == 4
    assert candidate(3) == 9
    squares = [candidate(i) for i in range(4)]
    assert squares == [0, 1, 4, 9]
    assert candidate(-2) == 4
    for i in range(10):
        assert candidate(i) == i * i
";

#[test]
fn partial_fraction_counts_each_assert_statement() {
    let runner = runner();
    let square = runner.humaneval("def f(x):\n    return x * x\n", MULTI_TEST, "f").unwrap();
    assert_eq!((square.passed, square.total), (5, 5), "{}", square.summary());
    assert!(square.failure.is_none());
    // Wrong for negative numbers only: 4 of 5.
    let abs_square = runner.humaneval("def f(x):\n    return x * x if x >= 0 else 0\n", MULTI_TEST, "f").unwrap();
    assert_eq!((abs_square.passed, abs_square.total), (4, 5), "{}", abs_square.summary());
    assert_eq!(abs_square.failure.as_ref().unwrap().kind, FailureKind::WrongAnswer);
    // Right only for 0, 1 and 2 (x + x): candidate(2) and nothing else.
    let doubled = runner.humaneval("def f(x):\n    return x + x\n", MULTI_TEST, "f").unwrap();
    assert_eq!((doubled.passed, doubled.total), (1, 5), "{}", doubled.summary());
    // Raises on odd numbers: an error, not a wrong answer. candidate(2) passes, candidate(3)
    // fails, then the setup statement `squares = ...` raises, which fails every later test.
    let even_only = runner.humaneval("def f(x):\n    if x % 2: raise ValueError('odd')\n    return x * x\n", MULTI_TEST, "f").unwrap();
    assert_eq!((even_only.passed, even_only.total), (1, 5), "{}", even_only.summary());
    assert_eq!(even_only.failure.as_ref().unwrap().kind, FailureKind::RuntimeError);
    assert!(even_only.failure.as_ref().unwrap().detail.contains("ValueError"));
}

#[test]
fn syntax_errors_and_missing_entry_points_score_zero_with_reason() {
    let runner = runner();
    let syntax = runner.humaneval("def f(x):\n    return x *\n", MULTI_TEST, "f").unwrap();
    assert_eq!((syntax.passed, syntax.total), (0, 5));
    assert_eq!(syntax.failure.unwrap().kind, FailureKind::SyntaxError);
    let missing = runner.humaneval("def g(x):\n    return x * x\n", MULTI_TEST, "f").unwrap();
    assert_eq!(missing.passed, 0);
    assert!(missing.failure.unwrap().detail.contains("entry point f"));
    // Printing a forged result line does not count: the nonce is unknown to the program.
    let forged = runner.humaneval("print('PASS 0')\nimport sys\nsys.exit(0)\n", MULTI_TEST, "f").unwrap();
    assert_eq!(forged.passed, 0, "{}", forged.summary());
}

#[test]
fn assert_list_form_counts_each_assert() {
    let asserts: Vec<String> = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 5"].map(String::from).into();
    let result = runner().asserts("def add(a, b):\n    return a + b\n", "import math", &asserts).unwrap();
    assert_eq!((result.passed, result.total), (2, 3), "{}", result.summary());
}

#[test]
fn every_committed_mutant_scores_below_one() {
    let rows = humaneval();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/code/humaneval_mutants.jsonl");
    let mutants: Vec<Value> = std::fs::read_to_string(fixture).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // make_mutants.py finds a failing operator/constant mutant for 157 of the 164 tasks.
    assert_eq!(mutants.len(), 157);
    let pool = CodePool::new(8).unwrap();
    let results = pool.map(&mutants, |m| {
        let row = rows.iter().find(|r| r["task_id"] == m["task_id"]).unwrap();
        let program = format!("{}{}", field(row, "prompt"), field(m, "completion"));
        runner().humaneval(&program, field(row, "test"), field(row, "entry_point")).unwrap()
    });
    let passing: Vec<String> =
        mutants.iter().zip(&results).filter(|(_, r)| r.fraction() >= 1.0).map(|(m, _)| format!("{} {}", field(m, "task_id"), field(m, "mutation"))).collect();
    assert!(passing.is_empty(), "mutants scoring 1:\n{}", passing.join("\n"));
    // Most mutants break only some asserts: partial credit is visible.
    assert!(results.iter().filter(|r| r.passed > 0).count() > 50);
}

#[test]
fn bench_code_measures_throughput_and_overhead() {
    let tasks: Vec<(String, String, String)> = humaneval()
        .iter()
        .take(20)
        .map(|r| (format!("{}{}", field(r, "prompt"), field(r, "canonical_solution")), field(r, "test").to_owned(), field(r, "entry_point").to_owned()))
        .collect();
    let bench = r1kit_rewards::code::bench_code(&tasks, 2, 1, 10).unwrap();
    eprintln!("{bench:?}");
    assert_eq!(bench.all_passed, 20);
    // the figures exist (their values are the benchmark's to print, not a unit test's to judge:
    // on a loaded machine either run may be slower)
    assert_eq!(bench.executions, 20);
    assert!(bench.executions_per_sec.is_finite() && bench.executions_per_sec > 0.0);
    assert!(!bench.sandboxed_run.is_zero() && !bench.bare_run.is_zero());
}
