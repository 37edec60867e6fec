//! HumanEval-Rust through the sandbox: canonical solutions of the codegen tasks compile and
//! pass. 28 of the 121 codegen tasks ship a truncated `test` (the module header up to
//! `// BEGIN_TESTS`, no #[test]; their canonical_solution is a whole program): those cannot
//! score and must be reported as a test-setup error. rustc takes ~0.3 s a task on this 2-core
//! machine, so the default suite checks a fixed subset (every 8th usable task) and an ignored
//! test checks all of them.

use std::sync::{Arc, OnceLock};

use r1kit_rewards::code::{CodePool, FailureKind, RustLimits, RustRunner, RustToolchain, Sandbox, SandboxConfig};
use serde_json::Value;

fn has_tests(row: &Value) -> bool {
    row["test"].as_str().unwrap().contains("#[test]")
}

fn codegen_tasks() -> Vec<Value> {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/data/HumanEval_rust.jsonl"));
    assert!(path.exists(), "{} missing: run scripts/fetch-assets.sh", path.display());
    let rows: Vec<Value> = std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 180);
    rows.into_iter().filter(|r| r["category"] == "codegen").collect()
}

fn runner() -> &'static RustRunner {
    static RUNNER: OnceLock<RustRunner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let sandbox = Arc::new(Sandbox::new(SandboxConfig { uid_base: 2_000_200_000, slots: 4, ..Default::default() }).expect("sandbox"));
        let mut limits = RustLimits::default();
        limits.run_cpu_secs = 1;
        RustRunner::new(sandbox, RustToolchain::find(None).expect("rustc"), limits)
    })
}

fn source(row: &Value, completion: &str) -> String {
    let field = |k: &str| row[k].as_str().unwrap();
    r1kit_rewards::code::rust_program(field("prompt"), completion, field("test"), field("entry_point"))
}

fn check_canonical(rows: &[Value]) {
    let pool = CodePool::new(4).unwrap();
    let results = pool.map(rows, |row| {
        let edition = row["edition"].as_str().unwrap_or("2021");
        runner().humaneval(&source(row, row["canonical_solution"].as_str().unwrap()), edition).unwrap()
    });
    let failing: Vec<String> = rows
        .iter()
        .zip(&results)
        .filter(|(_, r)| !r.all_passed())
        .map(|(row, r)| format!("{}: {}", row["task_id"], r.summary()))
        .collect();
    assert!(failing.is_empty(), "{} of {} canonical solutions fail:\n{}", failing.len(), rows.len(), failing.join("\n"));
}

#[test]
fn canonical_codegen_subset_scores_one() {
    let rows: Vec<Value> = codegen_tasks().into_iter().filter(has_tests).step_by(8).collect();
    assert_eq!(rows.len(), 12);
    check_canonical(&rows);
}

#[test]
#[ignore = "all 93 codegen tasks with tests: ~40 s of rustc on 2 cores"]
fn every_canonical_codegen_solution_scores_one() {
    // CodeGen/14a016b2fdd7's canonical `max_by_key` returns the last longest string while its
    // test wants the first: a dataset bug, its wrong answer is the right verdict.
    let rows: Vec<Value> = codegen_tasks().into_iter().filter(has_tests).filter(|r| r["task_id"] != "CodeGen/14a016b2fdd7").collect();
    assert_eq!(rows.len(), 92);
    check_canonical(&rows);
}

#[test]
fn tasks_without_tests_are_a_setup_error_not_a_pass() {
    let untested: Vec<Value> = codegen_tasks().into_iter().filter(|r| !has_tests(r)).collect();
    assert_eq!(untested.len(), 28);
    let row = &untested[0];
    let result = runner().humaneval(&source(row, row["canonical_solution"].as_str().unwrap()), "2024").unwrap();
    assert_eq!(result.passed, 0);
    assert_eq!(result.failure.unwrap().kind, FailureKind::TestSetupError);
}

#[test]
fn wrong_and_broken_solutions_fail_with_reasons() {
    let rows = codegen_tasks();
    let row = &rows[0];
    let edition = row["edition"].as_str().unwrap();
    let wrong = runner().humaneval(&source(row, "false\n}"), edition).unwrap();
    assert_eq!(wrong.passed, 0, "{}", wrong.summary());
    assert_eq!(wrong.failure.unwrap().kind, FailureKind::WrongAnswer);
    let broken = runner().humaneval(&source(row, "numbers.frobnicate()\n}"), edition).unwrap();
    assert_eq!(broken.failure.as_ref().unwrap().kind, FailureKind::CompileError, "{}", broken.summary());
    assert!(broken.failure.unwrap().detail.contains("frobnicate"));
    // include_str! of a host file is a compile error: rustc itself runs confined.
    let sneaky = runner().humaneval(&source(row, "include_str!(\"/etc/hostname\").is_empty()\n}"), edition).unwrap();
    assert_eq!(sneaky.failure.as_ref().unwrap().kind, FailureKind::CompileError, "{}", sneaky.summary());
    let looping = runner().humaneval(&source(row, "loop {}\n}"), edition).unwrap();
    assert_eq!(looping.failure.as_ref().unwrap().kind, FailureKind::CpuLimit, "{}", looping.summary());
}
