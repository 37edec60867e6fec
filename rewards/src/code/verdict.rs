//! What a code run scored and why it failed.

use std::time::Duration;

use serde::Serialize;

use super::sandbox::{RunOutput, Termination};

/// Why a program did not pass every test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    SyntaxError,
    CompileError,
    /// An exception or panic (not an assertion) while loading or testing.
    RuntimeError,
    WrongAnswer,
    /// Wall-clock limit.
    Timeout,
    CpuLimit,
    MemoryLimit,
    OutputLimit,
    /// A write past the file-size limit or the work directory's size.
    FileSizeLimit,
    /// Killed by another signal, or exited before reporting (e.g. `os._exit`).
    Killed,
    /// The test code itself failed (not the candidate's fault, but no credit).
    TestSetupError,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// A short excerpt: the exception, the compiler's first error, the signal.
    pub detail: String,
}

/// The outcome of one completion against its tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeResult {
    pub passed: usize,
    pub total: usize,
    /// The first reason for a test not passing; `None` when all passed.
    pub failure: Option<Failure>,
    #[serde(skip)]
    pub wall: Duration,
}

impl CodeResult {
    pub fn fraction(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.passed as f64 / self.total as f64 }
    }

    pub fn all_passed(&self) -> bool {
        self.total > 0 && self.passed == self.total && self.failure.is_none()
    }

    pub fn failed(total: usize, kind: FailureKind, detail: impl Into<String>, wall: Duration) -> Self {
        CodeResult { passed: 0, total, failure: Some(Failure { kind, detail: detail.into() }), wall }
    }

    /// "3/5 passed (wrong_answer: AssertionError...)" for logs and reward reasons.
    pub fn summary(&self) -> String {
        match &self.failure {
            None => format!("{}/{} passed", self.passed, self.total),
            Some(f) => {
                let kind = serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                format!("{}/{} passed ({kind}: {})", self.passed, self.total, f.detail)
            }
        }
    }
}

/// The failure a run's termination explains when the program did not finish on its own.
pub fn termination_failure(out: &RunOutput) -> Option<Failure> {
    let stderr_tail = tail(&out.stderr, 300);
    let (kind, detail) = match out.termination {
        Termination::Exited(_) => return None,
        Termination::WallTimeout => (FailureKind::Timeout, format!("killed at the wall-clock limit after {:.1} s", out.wall.as_secs_f64())),
        Termination::OutputLimit => (FailureKind::OutputLimit, "output cap exceeded".to_string()),
        Termination::Signaled(sig) if sig == libc::SIGXCPU => (FailureKind::CpuLimit, "CPU time limit (SIGXCPU)".to_string()),
        Termination::Signaled(sig) if sig == libc::SIGXFSZ => (FailureKind::FileSizeLimit, "file size limit (SIGXFSZ)".to_string()),
        Termination::Signaled(sig) => (FailureKind::Killed, format!("killed by signal {sig}{}", if stderr_tail.is_empty() { String::new() } else { format!(": {stderr_tail}") })),
    };
    Some(Failure { kind, detail })
}

/// The last `max` bytes of `bytes` as text on one line.
pub fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(max)..]);
    text.trim().replace('\n', " | ")
}

/// The first `max` bytes of `bytes` as text on one line.
pub fn head(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    text.trim().replace('\n', " | ")
}
