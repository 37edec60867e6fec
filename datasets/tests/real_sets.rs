//! Every real data set of ASSETS.md loads through its built-in schema with the exact count.

use std::path::PathBuf;

use r1kit_datasets::{Builtin, CodeLanguage, DatasetSpec, Gold, OnError, Record, RlPrompt};

fn assets() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets"));
    assert!(dir.join("data/gsm8k_test.jsonl").exists(), "assets missing: run scripts/fetch-assets.sh");
    dir
}

fn load(builtin: Builtin) -> Vec<RlPrompt> {
    let loaded = builtin.load(&assets(), OnError::Fail, None).unwrap();
    assert_eq!(loaded.skipped, 0);
    loaded
        .records
        .into_iter()
        .map(|r| match r {
            Record::Rl(p) => p,
            other => panic!("{} gave {other:?}", builtin.name()),
        })
        .collect()
}

fn answer(p: &RlPrompt) -> &str {
    match &p.gold {
        Gold::Answer { answer } => answer,
        other => panic!("{}: gold {other:?}", p.id),
    }
}

#[test]
fn gsm8k_has_1319_numeric_golds() {
    let prompts = load(Builtin::Gsm8k);
    assert_eq!(prompts.len(), 1319);
    for p in &prompts {
        let gold = answer(p);
        assert!(gold.parse::<f64>().is_ok(), "{}: gold {gold:?} is not a number", p.id);
        assert!(p.solution.as_deref().unwrap().contains("####"));
    }
    // First problem: Janet's ducks, 16 - 3 - 4 = 9 eggs at $2.
    assert!(prompts[0].prompt.starts_with("Janet"));
    assert_eq!(answer(&prompts[0]), "18");
    // Thousands separators are removed from golds ("#### 2,125" in the file).
    assert!(prompts.iter().any(|p| answer(p) == "2125"));
}

#[test]
fn mmath_english_has_374_and_its_subsets() {
    let all = load(Builtin::MmathEn);
    assert_eq!(all.len(), 374);
    assert!(all.iter().all(|p| !answer(p).is_empty() && !p.prompt.is_empty()));
    assert_eq!(load(Builtin::Math500).len(), 311);
    assert_eq!(load(Builtin::Aime2024).len(), 30);
}

#[test]
fn aime2025_has_30_integer_answers() {
    let prompts = load(Builtin::Aime2025);
    assert_eq!(prompts.len(), 30);
    assert_eq!(answer(&prompts[0]), "70");
    assert_eq!(prompts[0].id, "aime2025-I-0");
    assert_eq!(prompts[15].id, "aime2025-II-0");
    // AIME answers are 0..999; the file writes one of them as an angle, kept as given.
    let not_integers: Vec<&str> = prompts.iter().map(answer).filter(|a| a.parse::<u16>().map_or(true, |n| n > 999)).collect();
    assert_eq!(not_integers, ["336^\\circ"]);
}

#[test]
fn humaneval_has_164_python_tasks() {
    let prompts = load(Builtin::HumanEval);
    assert_eq!(prompts.len(), 164);
    assert_eq!(prompts[0].id, "HumanEval/0");
    for p in &prompts {
        match &p.gold {
            Gold::Code { language, tests, entry_point } => {
                assert_eq!(*language, CodeLanguage::Python);
                assert!(tests.contains("def check"), "{}", p.id);
                assert!(p.prompt.contains(&format!("def {entry_point}")), "{}", p.id);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn humaneval_rust_has_180_rust_tasks() {
    let prompts = load(Builtin::HumanEvalRust);
    assert_eq!(prompts.len(), 180);
    let mut with_asserts = 0;
    for p in &prompts {
        match &p.gold {
            Gold::Code { language, tests, entry_point } => {
                assert_eq!(*language, CodeLanguage::Rust);
                assert!(tests.starts_with("#[cfg(test)]"), "{}", p.id);
                with_asserts += tests.contains("assert") as usize;
                assert!(p.prompt.contains(&format!("fn {entry_point}")), "{}: {entry_point}", p.id);
            }
            other => panic!("{other:?}"),
        }
        assert!(p.solution.is_some());
    }
    // 32 tasks of the package have an empty test module (`// BEGIN_TESTS` and nothing after).
    assert_eq!(with_asserts, 148);
}

#[test]
fn specs_name_builtins_with_options() {
    let spec = DatasetSpec::parse("gsm8k?limit=7").unwrap();
    assert_eq!(spec.load_with_assets(&assets()).unwrap().records.len(), 7);
    let spec = DatasetSpec::parse("mmath-en?split=heldout&heldout=0.5").unwrap();
    let heldout = spec.load_with_assets(&assets()).unwrap().records.len();
    let spec = DatasetSpec::parse("mmath-en?split=train&heldout=0.5").unwrap();
    let train = spec.load_with_assets(&assets()).unwrap().records.len();
    assert_eq!(heldout + train, 374);
    assert!((120..=250).contains(&heldout), "{heldout}");
    assert!(DatasetSpec::parse("gsm8k?prompt_field=x").is_err());
}
