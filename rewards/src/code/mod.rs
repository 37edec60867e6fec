//! Code execution as a reward: untrusted programs run in a sandbox (see `sandbox`), against
//! Python (HumanEval, assert lists, stdin/stdout cases) and Rust (HumanEval-Rust) tests.

pub mod landlock;
pub mod python;
pub mod sandbox;
pub mod verdict;

use rayon::prelude::*;

pub use python::{Python, PythonRunner, StdioCase};
pub use sandbox::{Job, Limits, RunOutput, Sandbox, SandboxConfig, SandboxError, Termination};
pub use verdict::{CodeResult, Failure, FailureKind};

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    NoInterpreter(String),
    #[error("code pool: {0}")]
    Pool(String),
}

/// A bounded pool of threads that each wait on one sandboxed process at a time; the sandbox's
/// uid slots bound how many run at once, so the pool has as many threads as slots.
pub struct CodePool {
    pool: rayon::ThreadPool,
}

impl CodePool {
    pub fn new(threads: usize) -> Result<Self, CodeError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("r1kit-code-{i}"))
            .build()
            .map_err(|e| CodeError::Pool(e.to_string()))?;
        Ok(CodePool { pool })
    }

    /// `run` over every item in parallel, results in input order.
    pub fn map<T: Sync, R: Send>(&self, items: &[T], run: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
        self.pool.install(|| items.par_iter().map(run).collect())
    }
}
