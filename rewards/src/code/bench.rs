//! Throughput of the code reward on HumanEval canonical solutions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CodeError, CodePool, Limits, Python, PythonRunner, Sandbox, SandboxConfig};

#[derive(Debug, Clone)]
pub struct CodeBench {
    pub executions: usize,
    pub threads: usize,
    pub executions_per_sec: f64,
    pub all_passed: usize,
    /// Mean wall time of one sandboxed HumanEval run, sequential.
    pub sandboxed_run: Duration,
    /// Mean wall time of the same harness run by a bare `python3` subprocess.
    pub bare_run: Duration,
}

/// Runs `tasks` (prompt+canonical, test, entry_point) `rounds` times on `threads` workers, then
/// `samples` sequential runs sandboxed and bare to get the per-run sandbox overhead.
pub fn bench_code(tasks: &[(String, String, String)], threads: usize, rounds: usize, samples: usize) -> Result<CodeBench, CodeError> {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig { slots: threads.max(1), ..Default::default() })?);
    let python = Python::find(None)?;
    let runner = PythonRunner::new(sandbox, python.clone(), Limits::default());
    let pool = CodePool::new(threads)?;
    let work: Vec<&(String, String, String)> = (0..rounds).flat_map(|_| tasks.iter()).collect();
    let start = Instant::now();
    let results = pool.map(&work, |(program, test, entry)| runner.humaneval(program, test, entry));
    let elapsed = start.elapsed();
    let mut all_passed = 0;
    for r in results {
        all_passed += r?.all_passed() as usize;
    }
    let samples = samples.clamp(1, tasks.len().max(1));
    let start = Instant::now();
    for (program, test, entry) in tasks.iter().take(samples) {
        runner.humaneval(program, test, entry)?;
    }
    let sandboxed_run = start.elapsed() / samples as u32;
    let start = Instant::now();
    for (program, test, entry) in tasks.iter().take(samples) {
        super::python::bare_humaneval(&python, program, test, entry)?;
    }
    let bare_run = start.elapsed() / samples as u32;
    Ok(CodeBench {
        executions: work.len(),
        threads,
        executions_per_sec: work.len() as f64 / elapsed.as_secs_f64(),
        all_passed,
        sandboxed_run,
        bare_run,
    })
}
