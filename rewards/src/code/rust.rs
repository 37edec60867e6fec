//! Rust programs against HumanEval-Rust tests: `prompt + completion + test` (a `#[cfg(test)]`
//! module) built with `rustc --test` and run, both inside one sandbox run.
//!
//! Why compile inside the sandbox: the compiler reads files named by the program
//! (`include_str!("/root/secret")`, `#[path]` modules) and runs its own large code on untrusted
//! input; compiled outside, a program could embed any host file into its binary and print it.
//! The toolchain lives under /root, which the sandbox uid cannot traverse, so its sysroot is
//! bind-mounted read-only into the run. The shell lowers the address-space and CPU limits
//! after compiling, so the test binary runs under the tighter run limits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::sandbox::{Job, Limits, RunOutput, Sandbox};
use super::verdict::{tail, termination_failure, CodeResult, Failure, FailureKind};
use super::CodeError;

/// The Rust toolchain: its sysroot (holding bin/rustc and the standard library).
#[derive(Debug, Clone)]
pub struct RustToolchain {
    pub sysroot: PathBuf,
}

impl RustToolchain {
    /// `rustc --print sysroot` of the `rustc` on PATH (or `explicit`).
    pub fn find(explicit: Option<&Path>) -> Result<Self, CodeError> {
        let rustc = explicit.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("rustc"));
        let out = Command::new(&rustc).args(["--print", "sysroot"]).output().map_err(|e| {
            CodeError::NoInterpreter(format!("rustc not found ({}: {e}): the Rust code reward needs a Rust toolchain", rustc.display()))
        })?;
        if !out.status.success() {
            return Err(CodeError::NoInterpreter(format!("{} --print sysroot failed: {}", rustc.display(), tail(&out.stderr, 300))));
        }
        let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !sysroot.join("bin/rustc").exists() {
            return Err(CodeError::NoInterpreter(format!("no bin/rustc under the sysroot {}", sysroot.display())));
        }
        if !Path::new("/usr/bin/cc").exists() {
            return Err(CodeError::NoInterpreter("rustc needs a linker: /usr/bin/cc is missing".into()));
        }
        Ok(RustToolchain { sysroot })
    }
}

/// Limits for the Rust runner: `compile` covers rustc (it needs a large address space and
/// threads), `run` the test binary.
#[derive(Debug, Clone)]
pub struct RustLimits {
    pub compile: Limits,
    pub run_address_space_bytes: u64,
    pub run_cpu_secs: u64,
}

impl Default for RustLimits {
    fn default() -> Self {
        RustLimits {
            compile: Limits {
                wall: std::time::Duration::from_secs(30),
                cpu_secs: 30,
                address_space_bytes: 8 << 30,
                file_size_bytes: 64 << 20,
                open_files: 256,
                processes: 64,
                output_bytes: 1 << 20,
                work_dir_bytes: 256 << 20,
            },
            run_address_space_bytes: 1 << 30,
            run_cpu_secs: 10,
        }
    }
}

pub struct RustRunner {
    sandbox: Arc<Sandbox>,
    toolchain: RustToolchain,
    pub limits: RustLimits,
}

/// Exit code the script uses for a failed compilation.
const COMPILE_FAILED: i32 = 97;

impl RustRunner {
    pub fn new(sandbox: Arc<Sandbox>, toolchain: RustToolchain, limits: RustLimits) -> Self {
        RustRunner { sandbox, toolchain, limits }
    }

    /// Compiles `source` (prompt + completion + tests) with `rustc --test` and runs it; the
    /// fraction is libtest's passed / run tests, and only a zero exit counts as all passed.
    pub fn humaneval(&self, source: &str, edition: &str) -> Result<CodeResult, CodeError> {
        if !matches!(edition, "2015" | "2018" | "2021" | "2024") {
            return Err(CodeError::NoInterpreter(format!("unknown Rust edition {edition:?}")));
        }
        if !source.contains("#[test]") {
            return Ok(CodeResult::failed(0, FailureKind::TestSetupError, "the tests hold no #[test] function", std::time::Duration::ZERO));
        }
        // The shell execs the test binary as the namespace's init, so its exit status reaches
        // r1kit through the supervisor and cannot be forged by printing.
        let script = format!(
            "{{mnt}}/toolchain/bin/rustc --test --edition {edition} -C debuginfo=0 -o {{work}}/tests {{src}}/main.rs \
             2>{{work}}/compile.txt || {{ head -c 4000 {{work}}/compile.txt >&2; exit {COMPILE_FAILED}; }}\n\
             ulimit -v {} && ulimit -S -t {} || exit 1\n\
             exec {{work}}/tests --test-threads=1\n",
            self.limits.run_address_space_bytes / 1024,
            self.limits.run_cpu_secs,
        );
        let job = Job {
            exe: "/bin/sh".into(),
            args: vec!["-c".into(), script],
            files: vec![("main.rs".into(), source.as_bytes().to_vec())],
            binds: vec![(self.toolchain.sysroot.clone(), "toolchain".into())],
            limits: self.limits.compile.clone(),
            ..Default::default()
        };
        let out = self.sandbox.run(&job)?;
        Ok(libtest_verdict(&out))
    }
}

/// Reads libtest's output (`running N tests`, one `... ok` per passing test) and the test
/// binary's exit status; only a zero exit with every test ok counts as all passed.
pub fn libtest_verdict(out: &RunOutput) -> CodeResult {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.termination == super::sandbox::Termination::Exited(COMPILE_FAILED) {
        let detail = first_compile_error(&String::from_utf8_lossy(&out.stderr));
        return CodeResult::failed(0, FailureKind::CompileError, detail, out.wall);
    }
    let total = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("running ").and_then(|r| r.strip_suffix(" tests").or(r.strip_suffix(" test"))))
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .next()
        .unwrap_or(0);
    let passed = stdout.lines().filter(|l| l.starts_with("test ") && l.ends_with(" ... ok")).count().min(total);
    let exit = match out.termination {
        super::sandbox::Termination::Exited(code) => Some(code),
        _ => None,
    };
    let failure = match exit {
        Some(0) if total > 0 && passed == total => None,
        Some(0) => Some(Failure { kind: FailureKind::WrongAnswer, detail: format!("exit 0 but {passed} of {total} tests reported ok") }),
        Some(code) => {
            let panicked = stdout.lines().find(|l| l.contains("panicked at")).map(str::to_owned);
            let kind = match code {
                101 if stdout.contains("assertion") => FailureKind::WrongAnswer,
                101 => FailureKind::RuntimeError,
                c if c == 128 + libc::SIGXCPU || c == 128 + libc::SIGKILL => FailureKind::CpuLimit,
                c if c > 128 => FailureKind::Killed,
                _ => FailureKind::RuntimeError,
            };
            let detail = panicked.or_else(|| stdout.lines().find(|l| l.contains("memory allocation")).map(str::to_owned));
            Some(Failure { kind, detail: detail.unwrap_or_else(|| format!("test binary exited with {code}: {}", tail(&out.stderr, 200))) })
        }
        None => termination_failure(out).or_else(|| {
            Some(Failure { kind: FailureKind::Killed, detail: format!("ended ({:?}) before the tests finished: {}", out.termination, tail(&out.stderr, 300)) })
        }),
    };
    let passed = if failure.is_none() { passed } else { passed.min(total.saturating_sub(1)) };
    CodeResult { passed, total: total.max(1), failure, wall: out.wall }
}

fn first_compile_error(stderr: &str) -> String {
    let mut lines = stderr.lines().skip_while(|l| !l.starts_with("error"));
    let first: Vec<&str> = lines.by_ref().take(3).collect();
    if first.is_empty() { tail(stderr.as_bytes(), 300) } else { first.join(" | ") }
}
