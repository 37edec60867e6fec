//! Python programs against tests: HumanEval `check(candidate)`, assert lists (MBPP form) and
//! stdin/stdout cases. HumanEval and assert forms run once through `harness.py`, which reports
//! each test; stdin/stdout cases run the program once per case.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sandbox::{world_executable, Job, Limits, RunOutput, Sandbox};
use super::verdict::{head, tail, termination_failure, CodeResult, Failure, FailureKind};
use super::CodeError;

const HARNESS: &str = include_str!("harness.py");

/// One stdin/stdout test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StdioCase {
    pub input: String,
    pub output: String,
}

/// A python3 the sandbox uid can execute, and the directories it reads.
#[derive(Debug, Clone)]
pub struct Python {
    pub executable: PathBuf,
    pub read_paths: Vec<PathBuf>,
}

impl Python {
    /// `explicit`, or the first `python3` on PATH that the sandbox uid can reach (a pyenv shim
    /// resolves to its real interpreter; ones under /root are skipped since uid != 0 cannot
    /// traverse /root).
    pub fn find(explicit: Option<&Path>) -> Result<Self, CodeError> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => std::env::var_os("PATH")
                .map(|paths| std::env::split_paths(&paths).map(|d| d.join("python3")).filter(|p| p.exists()).collect())
                .unwrap_or_default(),
        };
        if candidates.is_empty() {
            return Err(CodeError::NoInterpreter("python3 not found on PATH: the Python code reward needs a python3 interpreter".into()));
        }
        let mut rejected = Vec::new();
        for candidate in &candidates {
            match Self::describe(candidate) {
                Ok(python) if world_executable(&python.executable) => return Ok(python),
                Ok(python) => rejected.push(format!(
                    "{} (is {}, in a directory the sandbox uid cannot traverse)",
                    candidate.display(),
                    python.executable.display()
                )),
                Err(e) => rejected.push(format!("{} ({e})", candidate.display())),
            }
        }
        Err(CodeError::NoInterpreter(format!(
            "no python3 usable in the sandbox; tried: {}; pass an interpreter outside /root, e.g. /usr/bin/python3",
            rejected.join("; ")
        )))
    }

    fn describe(candidate: &Path) -> Result<Self, String> {
        let out = Command::new(candidate)
            .args(["-I", "-c", "import sys; print(sys.executable); print(sys.base_prefix)"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("exited with {}", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(exe), Some(prefix)) = (lines.next(), lines.next()) else { return Err("printed no sys.executable".into()) };
        let executable = std::fs::canonicalize(exe).map_err(|e| format!("{exe}: {e}"))?;
        let mut read_paths = vec![PathBuf::from(prefix)];
        if let Some(dir) = executable.parent() {
            read_paths.push(dir.to_path_buf());
        }
        Ok(Python { executable, read_paths })
    }
}

/// Runs Python programs in the sandbox.
pub struct PythonRunner {
    sandbox: Arc<Sandbox>,
    python: Python,
    pub limits: Limits,
}

impl PythonRunner {
    pub fn new(sandbox: Arc<Sandbox>, python: Python, limits: Limits) -> Self {
        PythonRunner { sandbox, python, limits }
    }

    /// HumanEval form: `program` (prompt + completion) then `test`, which defines
    /// `check(candidate)`, called with `entry_point`. Each top-level statement of check's body
    /// holding an assert counts as one test (see harness.py).
    pub fn humaneval(&self, program: &str, test: &str, entry_point: &str) -> Result<CodeResult, CodeError> {
        let spec = serde_json::json!({"form": "check", "program": program, "test": test, "entry_point": entry_point});
        self.run_harness(spec)
    }

    /// MBPP form: `setup` (imports...) then each assert statement as one test.
    pub fn asserts(&self, program: &str, setup: &str, asserts: &[String]) -> Result<CodeResult, CodeError> {
        let spec = serde_json::json!({"form": "asserts", "program": program, "setup": setup, "asserts": asserts});
        self.run_harness(spec)
    }

    /// Runs `program` once per case with the case's stdin; a case passes when the output's
    /// whitespace-separated tokens equal the expected ones.
    pub fn stdio(&self, program: &str, cases: &[StdioCase]) -> Result<CodeResult, CodeError> {
        let mut passed = 0;
        let mut failure = None;
        let mut wall = Duration::ZERO;
        for case in cases {
            let job = Job {
                exe: self.python.executable.to_string_lossy().into_owned(),
                args: vec!["-I".into(), "-B".into(), "{src}/solution.py".into()],
                files: vec![("solution.py".into(), program.as_bytes().to_vec())],
                stdin: case.input.as_bytes().to_vec(),
                read_paths: self.python.read_paths.clone(),
                limits: self.limits.clone(),
                ..Default::default()
            };
            let out = self.sandbox.run(&job)?;
            wall += out.wall;
            let case_failure = stdio_failure(&out, &case.output);
            match case_failure {
                None => passed += 1,
                Some(f) if failure.is_none() => failure = Some(f),
                Some(_) => {}
            }
        }
        Ok(CodeResult { passed, total: cases.len(), failure, wall })
    }

    fn run_harness(&self, mut spec: serde_json::Value) -> Result<CodeResult, CodeError> {
        let nonce = fresh_nonce();
        spec["nonce"] = serde_json::Value::String(nonce.clone());
        let job = Job {
            exe: self.python.executable.to_string_lossy().into_owned(),
            args: vec!["-I".into(), "-B".into(), "{src}/harness.py".into()],
            files: vec![("harness.py".into(), HARNESS.as_bytes().to_vec())],
            stdin: serde_json::to_vec(&spec).expect("json values serialize"),
            read_paths: self.python.read_paths.clone(),
            limits: self.limits.clone(),
            ..Default::default()
        };
        let out = self.sandbox.run(&job)?;
        Ok(harness_verdict(&out, &nonce))
    }
}

fn stdio_failure(out: &RunOutput, expected: &str) -> Option<Failure> {
    if let Some(f) = termination_failure(out) {
        return Some(f);
    }
    if !out.success() {
        let kind = if String::from_utf8_lossy(&out.stderr).contains("SyntaxError") {
            FailureKind::SyntaxError
        } else if String::from_utf8_lossy(&out.stderr).contains("MemoryError") {
            FailureKind::MemoryLimit
        } else {
            FailureKind::RuntimeError
        };
        return Some(Failure { kind, detail: tail(&out.stderr, 300) });
    }
    let got = String::from_utf8_lossy(&out.stdout);
    if got.split_whitespace().eq(expected.split_whitespace()) {
        None
    } else {
        Some(Failure { kind: FailureKind::WrongAnswer, detail: format!("expected {:?}, got {:?}", head(expected.as_bytes(), 100), head(got.as_bytes(), 100)) })
    }
}

/// The same harness run by a bare `python3` subprocess, no sandbox: the baseline of the
/// sandbox-overhead benchmark. Never for untrusted code.
pub fn bare_humaneval(python: &Python, program: &str, test: &str, entry_point: &str) -> Result<bool, CodeError> {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("r1kit-bare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CodeError::Pool(e.to_string()))?;
    let harness = dir.join("harness.py");
    std::fs::write(&harness, HARNESS).map_err(|e| CodeError::Pool(e.to_string()))?;
    let spec = serde_json::json!({"nonce": "bare", "form": "check", "program": program, "test": test, "entry_point": entry_point});
    let mut child = Command::new(&python.executable)
        .args(["-I", "-B"])
        .arg(&harness)
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CodeError::Pool(e.to_string()))?;
    child.stdin.take().expect("piped").write_all(spec.to_string().as_bytes()).map_err(|e| CodeError::Pool(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| CodeError::Pool(e.to_string()))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("bare DONE"))
}

/// A value the program cannot guess: harness result lines must start with it.
pub(crate) fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom fills the buffer we own.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        // getrandom cannot fail on Linux >= 3.17 for 16 bytes; fall back to time and counter.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        bytes = t.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the harness's nonce-prefixed lines; a run that ended before `DONE` is explained by its
/// termination (timeout, limits, killed) and keeps the passes it reported.
pub fn harness_verdict(out: &RunOutput, nonce: &str) -> CodeResult {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut total = 0usize;
    let mut passed = std::collections::BTreeSet::new();
    let mut failure: Option<Failure> = None;
    let mut done = false;
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix(nonce).and_then(|r| r.strip_prefix(' ')) else { continue };
        let mut parts = rest.splitn(4, ' ');
        let tag = parts.next().unwrap_or("");
        let mut set_failure = |kind, detail: &str| {
            if failure.is_none() {
                failure = Some(Failure { kind, detail: serde_json::from_str::<String>(detail).unwrap_or_else(|_| detail.to_string()) });
            }
        };
        match tag {
            "TOTAL" => total = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            "PASS" => {
                if let Some(i) = parts.next().and_then(|n| n.parse::<usize>().ok()) {
                    passed.insert(i);
                }
            }
            "FAIL" => {
                let _index = parts.next();
                let kind = python_failure_kind(parts.next().unwrap_or(""));
                set_failure(kind, parts.next().unwrap_or(""));
            }
            "SYNTAX" => set_failure(FailureKind::SyntaxError, &rest["SYNTAX ".len().min(rest.len())..]),
            "LOADERR" => {
                let kind = python_failure_kind(parts.next().unwrap_or(""));
                let detail = [parts.next().unwrap_or(""), parts.next().unwrap_or("")].join(" ");
                set_failure(kind, detail.trim());
            }
            "SETUPERR" => set_failure(FailureKind::TestSetupError, &rest["SETUPERR ".len().min(rest.len())..]),
            "DONE" => done = true,
            _ => {}
        }
    }
    let passed = passed.into_iter().filter(|&i| i < total).count();
    if !done && failure.is_none() {
        failure = termination_failure(out).or_else(|| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let kind = if stderr.contains("MemoryError") { FailureKind::MemoryLimit } else { FailureKind::Killed };
            Some(Failure { kind, detail: format!("exited ({:?}) before reporting all tests: {}", out.termination, tail(&out.stderr, 300)) })
        });
    }
    if done && failure.is_none() && passed < total {
        failure = Some(Failure { kind: FailureKind::WrongAnswer, detail: format!("{} of {total} tests failed", total - passed) });
    }
    CodeResult { passed, total, failure, wall: out.wall }
}

fn python_failure_kind(tag: &str) -> FailureKind {
    match tag {
        "wrong_answer" => FailureKind::WrongAnswer,
        "memory" => FailureKind::MemoryLimit,
        "file_size" => FailureKind::FileSizeLimit,
        _ => FailureKind::RuntimeError,
    }
}
