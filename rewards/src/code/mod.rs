//! Code execution as a reward: untrusted programs run in a sandbox (see `sandbox`), against
//! Python (HumanEval, assert lists, stdin/stdout cases) and Rust (HumanEval-Rust) tests.

pub mod bench;
pub mod landlock;
pub mod python;
pub mod reward;
pub mod rust;
pub mod sandbox;
pub mod verdict;

use rayon::prelude::*;

pub use bench::{bench_code, CodeBench};
pub use python::{Python, PythonRunner, StdioCase};
pub use reward::{CodeReward, CodeRewardConfig, Lang};
pub use rust::{RustLimits, RustRunner, RustToolchain};
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

/// The code inside the last fenced block (```lang ... ```) of a chat-style completion, or the
/// completion itself when it has no complete fence.
pub fn extract_code(completion: &str) -> &str {
    let mut blocks = Vec::new();
    let mut rest = completion;
    while let Some(open) = rest.find("```") {
        let after_open = &rest[open + 3..];
        let Some(line_end) = after_open.find('\n') else { break };
        let body = &after_open[line_end + 1..];
        let Some(close) = body.find("```") else { break };
        blocks.push(&body[..close]);
        rest = &body[close + 3..];
    }
    blocks.last().copied().unwrap_or(completion)
}

/// Whether `code` itself defines `entry_point` (`def name(` in Python, `fn name` in Rust).
fn defines(code: &str, keyword: &str, entry_point: &str) -> bool {
    code.match_indices(keyword).any(|(i, _)| {
        let at_word_start = i == 0 || !code.as_bytes()[i - 1].is_ascii_alphanumeric() && code.as_bytes()[i - 1] != b'_';
        let after = code[i + keyword.len()..].trim_start();
        at_word_start
            && after.starts_with(entry_point)
            && after[entry_point.len()..].trim_start().starts_with(['(', '<'])
    })
}

/// The Python program for HumanEval form: prompt + completion when the completion continues the
/// prompt's function; when it defines the entry point itself (chat models), the prompt (kept
/// for its imports; a docstring-only function is valid) then the completion on a new line.
pub fn python_program(prompt: &str, completion: &str, entry_point: &str) -> String {
    if defines(completion, "def ", entry_point) { format!("{prompt}\n    pass\n\n{completion}\n") } else { format!("{prompt}{completion}\n") }
}

/// The Rust source for HumanEval-Rust form: prompt + completion + tests, or the completion
/// alone in place of the prompt when it defines the entry point itself (some canonical
/// solutions of HumanEval-Rust repeat the whole program, `use` lines included).
pub fn rust_program(prompt: &str, completion: &str, test: &str, entry_point: &str) -> String {
    if defines(completion, "fn ", entry_point) {
        format!("{completion}\n\n{test}\n")
    } else {
        format!("{prompt}{completion}\n\n{test}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_last_fenced_block() {
        assert_eq!(extract_code("x = 1"), "x = 1");
        assert_eq!(extract_code("Here:\n```python\ndef f():\n    return 1\n```\nand\n```py\nprint(2)\n```"), "print(2)\n");
        assert_eq!(extract_code("unclosed ```python\nx"), "unclosed ```python\nx");
    }

    #[test]
    fn programs_keep_or_replace_the_prompt() {
        let prompt = "import math\ndef f(x):\n    \"\"\"doc\"\"\"\n";
        assert_eq!(python_program(prompt, "    return x\n", "f"), format!("{prompt}    return x\n\n"));
        assert!(python_program(prompt, "def f(x):\n    return x\n", "f").ends_with("\ndef f(x):\n    return x\n\n"));
        assert!(!defines("def fx(y):", "def ", "f"));
        assert!(!defines("undef f(y):", "def ", "f"));
        assert_eq!(rust_program("fn g() -> i32 {", "1\n}", "#[cfg(test)] mod t {}", "g"), "fn g() -> i32 {1\n}\n\n#[cfg(test)] mod t {}\n");
        assert!(rust_program("fn g() -> i32 {", "use std::cmp::max;\nfn g() -> i32 { 1 }", "T", "g").starts_with("use std"));
    }
}
