//! The `code` reward: runs the completion against the record's tests in the sandbox.
//!
//! Spec: `code` or `code:key=value,...` with keys `lang` (auto|python|rust; auto picks Rust when
//! the tests hold `#[test]`), `scoring` (fraction|binary), the record field names `prompt`,
//! `test`, `entry_point`, `edition` (defaults: the HumanEval names), `wall` (seconds).
//! Python tests may be HumanEval `check(candidate)` code (string), or a list of assert strings
//! (MBPP), or a list of `{input, output}` stdin/stdout cases.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

use super::{
    extract_code, python_program, rust_program, CodeError, CodePool, CodeResult, Limits, Python, PythonRunner, RustLimits,
    RustRunner, RustToolchain, Sandbox, SandboxConfig, StdioCase,
};
use crate::reward::{Record, Reward, RewardError, RewardOutput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Auto,
    Python,
    Rust,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeRewardConfig {
    pub lang: Lang,
    /// true: passed / total; false: 1 only when every test passes.
    pub fraction: bool,
    pub prompt_field: String,
    pub test_field: String,
    pub entry_point_field: String,
    pub edition_field: String,
    pub wall: Duration,
}

impl Default for CodeRewardConfig {
    fn default() -> Self {
        CodeRewardConfig {
            lang: Lang::Auto,
            fraction: true,
            prompt_field: "prompt".into(),
            test_field: "test".into(),
            entry_point_field: "entry_point".into(),
            edition_field: "edition".into(),
            wall: Duration::from_secs(10),
        }
    }
}

impl std::str::FromStr for CodeRewardConfig {
    type Err = String;
    fn from_str(args: &str) -> Result<Self, String> {
        let mut config = CodeRewardConfig::default();
        for pair in args.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not key=value"))?;
            match key.trim() {
                "lang" => {
                    config.lang = match value {
                        "auto" => Lang::Auto,
                        "python" => Lang::Python,
                        "rust" => Lang::Rust,
                        other => return Err(format!("lang `{other}`: expected auto, python or rust")),
                    }
                }
                "scoring" => {
                    config.fraction = match value {
                        "fraction" => true,
                        "binary" => false,
                        other => return Err(format!("scoring `{other}`: expected fraction or binary")),
                    }
                }
                "prompt" => config.prompt_field = value.into(),
                "test" => config.test_field = value.into(),
                "entry_point" => config.entry_point_field = value.into(),
                "edition" => config.edition_field = value.into(),
                "wall" => {
                    let secs: f64 = value.parse().map_err(|_| format!("wall `{value}` is not a number of seconds"))?;
                    if !(secs > 0.0 && secs <= 600.0) {
                        return Err(format!("wall {secs} s out of (0, 600]"));
                    }
                    config.wall = Duration::from_secs_f64(secs);
                }
                other => return Err(format!("unknown key `{other}` (lang, scoring, prompt, test, entry_point, edition, wall)")),
            }
        }
        Ok(config)
    }
}

/// The process-wide sandbox: one uid pool per process (created on first use, probed once).
pub fn shared_sandbox() -> Result<Arc<Sandbox>, CodeError> {
    static SANDBOX: OnceLock<Result<Arc<Sandbox>, String>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| Sandbox::new(SandboxConfig::default()).map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| CodeError::Sandbox(super::SandboxError::Unavailable(e)))
}

pub struct CodeReward {
    config: CodeRewardConfig,
    sandbox: Arc<Sandbox>,
    python: OnceLock<Result<PythonRunner, String>>,
    rust: OnceLock<Result<RustRunner, String>>,
    pool: CodePool,
}

/// Why a record cannot be scored, or the sandbox failed: an infrastructure error, not a zero.
#[derive(Debug)]
enum ScoreError {
    Record(String),
    Infra(String),
}

impl CodeReward {
    /// Checks the sandbox now (so that a machine without it fails at startup); interpreters are
    /// looked up on first use of each language.
    pub fn new(config: CodeRewardConfig) -> Result<Self, CodeError> {
        let sandbox = shared_sandbox()?;
        let pool = CodePool::new(sandbox.slots())?;
        Ok(CodeReward { config, sandbox, python: OnceLock::new(), rust: OnceLock::new(), pool })
    }

    /// A string field: `extra[name]`, or the Record's typed field when `name` is its default.
    fn text(record: &Record, name: &str, typed: &Option<String>, default_name: &str) -> Option<String> {
        record.extra.get(name).and_then(Value::as_str).map(str::to_owned).or_else(|| typed.clone().filter(|_| name == default_name))
    }

    fn python(&self) -> Result<&PythonRunner, ScoreError> {
        self.python
            .get_or_init(|| {
                let python = Python::find(None).map_err(|e| e.to_string())?;
                let limits = Limits { wall: self.config.wall, cpu_secs: self.config.wall.as_secs().max(1), ..Default::default() };
                Ok(PythonRunner::new(self.sandbox.clone(), python, limits))
            })
            .as_ref()
            .map_err(|e| ScoreError::Infra(e.clone()))
    }

    fn rust(&self) -> Result<&RustRunner, ScoreError> {
        self.rust
            .get_or_init(|| {
                let toolchain = RustToolchain::find(None).map_err(|e| e.to_string())?;
                Ok(RustRunner::new(self.sandbox.clone(), toolchain, RustLimits::default()))
            })
            .as_ref()
            .map_err(|e| ScoreError::Infra(e.clone()))
    }

    fn run(&self, completion: &str, record: &Record) -> Result<CodeResult, ScoreError> {
        let c = &self.config;
        let prompt = Self::text(record, &c.prompt_field, &record.prompt, "prompt").unwrap_or_default();
        let entry_point = Self::text(record, &c.entry_point_field, &record.entry_point, "entry_point");
        let tests_value = record
            .extra
            .get(&c.test_field)
            .cloned()
            .or_else(|| record.tests.clone().filter(|_| matches!(c.test_field.as_str(), "test" | "tests")).map(Value::String));
        let Some(tests) = tests_value else {
            return Err(ScoreError::Record(format!("record has no `{}` field with tests", c.test_field)));
        };
        let code = extract_code(completion);
        let infra = |e: CodeError| ScoreError::Infra(e.to_string());
        match tests {
            Value::String(test) => {
                let rust = match c.lang {
                    Lang::Rust => true,
                    Lang::Python => false,
                    Lang::Auto => test.contains("#[test]") || test.contains("#[cfg(test)]"),
                };
                let entry_point =
                    entry_point.ok_or_else(|| ScoreError::Record(format!("record has no `{}` field", c.entry_point_field)))?;
                if rust {
                    let edition = Self::text(record, &c.edition_field, &None, "").unwrap_or_else(|| "2021".into());
                    self.rust()?.humaneval(&rust_program(&prompt, code, &test, &entry_point), &edition).map_err(infra)
                } else {
                    self.python()?.humaneval(&python_program(&prompt, code, &entry_point), &test, &entry_point).map_err(infra)
                }
            }
            Value::Array(items) if items.iter().all(Value::is_string) => {
                let asserts: Vec<String> = items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                let program = if prompt.is_empty() || code != completion { code.to_string() } else { format!("{prompt}{code}") };
                self.python()?.asserts(&program, "", &asserts).map_err(infra)
            }
            Value::Array(items) => {
                let cases: Vec<StdioCase> = serde_json::from_value(Value::Array(items))
                    .map_err(|e| ScoreError::Record(format!("`{}`: expected strings or {{input, output}} cases: {e}", c.test_field)))?;
                self.python()?.stdio(code, &cases).map_err(infra)
            }
            other => Err(ScoreError::Record(format!("`{}` is {other}, expected test code or a list", c.test_field))),
        }
    }

    fn output(&self, result: &CodeResult) -> RewardOutput {
        let value = if self.config.fraction { result.fraction() } else if result.all_passed() { 1.0 } else { 0.0 };
        RewardOutput::with_reason(value, result.summary())
    }
}

impl Reward for CodeReward {
    fn name(&self) -> &str {
        "code"
    }

    /// Infrastructure failures score 0 with the reason; `score_batch` reports them as errors.
    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        match self.run(completion, record) {
            Ok(result) => self.output(&result),
            Err(ScoreError::Record(why)) | Err(ScoreError::Infra(why)) => RewardOutput::with_reason(0.0, why),
        }
    }

    fn score_batch(&self, items: &[(&str, &Record)]) -> Result<Vec<RewardOutput>, RewardError> {
        let results = self.pool.map(items, |(completion, record)| self.run(completion, record));
        results
            .into_iter()
            .map(|r| match r {
                Ok(result) => Ok(self.output(&result)),
                Err(ScoreError::Record(why)) => Err(RewardError::Failed { name: "code".into(), why }),
                Err(ScoreError::Infra(why)) => Err(RewardError::Failed { name: "code".into(), why }),
            })
            .collect()
    }
}

/// Factory for the registry: `code` / `code:key=value,...`.
pub fn build(args: &str) -> Result<Arc<dyn Reward>, RewardError> {
    let config: CodeRewardConfig =
        args.parse().map_err(|why| RewardError::BadArgument { name: "code".into(), arg: args.into(), why })?;
    let reward = CodeReward::new(config).map_err(|e| RewardError::Failed { name: "code".into(), why: e.to_string() })?;
    Ok(Arc::new(reward))
}
