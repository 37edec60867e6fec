//! Built-in schemas for the real data sets that `scripts/fetch-assets.sh` puts in `assets/data`.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::mapping::{AnswerExtract, FieldMap, Loaded, OnError, RecordKind, load_raw};
use crate::reader::{FileFormat, read_raw};
use crate::mapping::lookup;
use crate::records::CodeLanguage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// GSM8K test, 1,319 problems; gold = the number after `####`.
    Gsm8k,
    /// MMATH English: 374 problems (MATH-500 subset, AIME 2024/2025, CNMO); golds as given.
    MmathEn,
    /// The MATH-500 part of MMATH English (311).
    Math500,
    /// AIME 2024 from MMATH English (30).
    Aime2024,
    /// AIME 2025 I and II (15 + 15).
    Aime2025,
    /// HumanEval (Python), 164 tasks.
    HumanEval,
    /// HumanEval-Rust, 180 tasks.
    HumanEvalRust,
}

impl Builtin {
    pub const ALL: [Builtin; 7] = [
        Builtin::Gsm8k,
        Builtin::MmathEn,
        Builtin::Math500,
        Builtin::Aime2024,
        Builtin::Aime2025,
        Builtin::HumanEval,
        Builtin::HumanEvalRust,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Gsm8k => "gsm8k",
            Builtin::MmathEn => "mmath-en",
            Builtin::Math500 => "math500",
            Builtin::Aime2024 => "aime2024",
            Builtin::Aime2025 => "aime2025",
            Builtin::HumanEval => "humaneval",
            Builtin::HumanEvalRust => "humaneval-rust",
        }
    }

    pub fn by_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Files under `assets/data`, read in order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Builtin::Gsm8k => &["gsm8k_test.jsonl"],
            Builtin::MmathEn | Builtin::Math500 | Builtin::Aime2024 => &["mmath_en.json"],
            Builtin::Aime2025 => &["aime2025-I.jsonl", "aime2025-II.jsonl"],
            Builtin::HumanEval => &["HumanEval.jsonl.gz"],
            Builtin::HumanEvalRust => &["HumanEval_rust.jsonl"],
        }
    }

    /// Only records whose `data_source` is this (subsets of MMATH).
    fn data_source(self) -> Option<&'static str> {
        match self {
            Builtin::Math500 => Some("MATH500"),
            Builtin::Aime2024 => Some("AIME2024"),
            _ => None,
        }
    }

    pub fn field_map(self, file: &str) -> FieldMap {
        let stem = file.split('.').next().unwrap_or(file);
        let question = FieldMap {
            kind: Some(RecordKind::RlAnswer),
            id_field: None,
            prompt_field: "question".into(),
            answer_field: "answer".into(),
            solution_field: None,
            id_prefix: format!("{}-{stem}", self.name()),
            ..FieldMap::default()
        };
        let code = |language| FieldMap {
            kind: Some(RecordKind::RlCode(language)),
            id_field: Some("task_id".into()),
            prompt_field: "prompt".into(),
            tests_field: "test".into(),
            entry_point_field: "entry_point".into(),
            solution_field: Some("canonical_solution".into()),
            ..FieldMap::default()
        };
        match self {
            Builtin::Gsm8k => FieldMap { answer_extract: AnswerExtract::AfterHashes, id_prefix: "gsm8k".into(), ..question },
            Builtin::MmathEn | Builtin::Math500 | Builtin::Aime2024 => {
                FieldMap { id_prefix: self.name().into(), ..question }
            }
            Builtin::Aime2025 => FieldMap { id_prefix: stem.into(), ..question },
            Builtin::HumanEval => code(CodeLanguage::Python),
            Builtin::HumanEvalRust => code(CodeLanguage::Rust),
        }
    }

    pub fn load(self, assets_dir: &Path, on_error: OnError, limit: Option<usize>) -> Result<Loaded> {
        let mut all = Loaded::default();
        for file in self.files() {
            let path = assets_dir.join("data").join(file);
            if !path.exists() {
                return Err(DataError::AssetMissing { path, hint: "run scripts/fetch-assets.sh".into() });
            }
            let format = FileFormat::from_path(&path).expect("built-in files have known extensions");
            let source = self.data_source();
            let raw = read_raw(&path, format)?.filter(move |item| match (source, item) {
                (Some(source), Ok((_, value))) => lookup(value, "data_source").and_then(|v| v.as_str()) == Some(source),
                _ => true,
            });
            let remaining = limit.map(|n| n.saturating_sub(all.records.len()));
            let loaded = load_raw(raw, &self.field_map(file), on_error, remaining)?;
            all.records.extend(loaded.records);
            all.skipped += loaded.skipped;
            all.skip_examples.extend(loaded.skip_examples);
        }
        Ok(all)
    }
}

/// The assets folder: `$R1KIT_ASSETS`, else the first `assets/` with a `data/` folder in the
/// current directory or one of its parents.
pub fn find_assets_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("R1KIT_ASSETS") {
        return Ok(PathBuf::from(dir));
    }
    let cwd = std::env::current_dir().map_err(|e| DataError::Other(format!("current directory: {e}")))?;
    cwd.ancestors()
        .map(|d| d.join("assets"))
        .find(|d| d.join("data").is_dir())
        .ok_or_else(|| DataError::AssetMissing {
            path: cwd.join("assets/data"),
            hint: "run scripts/fetch-assets.sh, or set R1KIT_ASSETS".into(),
        })
}
