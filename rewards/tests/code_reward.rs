//! The `code` reward through the registry, on HumanEval-shaped records.

use std::io::Read;

use r1kit_rewards::{Record, RewardRegistry};
use serde_json::{json, Value};

fn record(row: &Value) -> Record {
    let extra = row.as_object().unwrap().clone();
    Record { prompt: row["prompt"].as_str().map(str::to_owned), ..Record { extra, ..Default::default() } }
}

#[test]
fn code_reward_scores_humaneval_records_from_the_registry() {
    let mut text = String::new();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/data/HumanEval.jsonl.gz");
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("run scripts/fetch-assets.sh")).read_to_string(&mut text).unwrap();
    let rows: Vec<Value> = text.lines().take(6).map(|l| serde_json::from_str(l).unwrap()).collect();
    let registry = RewardRegistry::with_builtins();
    let reward = registry.build("code").unwrap();
    let records: Vec<Record> = rows.iter().map(record).collect();
    let canonical: Vec<String> = rows.iter().map(|r| r["canonical_solution"].as_str().unwrap().to_owned()).collect();
    let items: Vec<(&str, &Record)> = canonical.iter().map(String::as_str).zip(&records).collect();
    let scores = reward.score_batch(&items).unwrap();
    assert!(scores.iter().all(|s| s.value == 1.0), "{scores:?}");
    // A chat-style answer in a fence that defines the function itself, and a wrong one.
    let fenced = "Sure:\n```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```";
    let truncate = records.iter().find(|r| r.extra["entry_point"] == "truncate_number").unwrap();
    assert_eq!(reward.score(fenced, truncate).value, 1.0);
    let wrong = reward.score("    return number\n", truncate);
    assert!(wrong.value < 1.0 && wrong.reason.unwrap().contains("wrong_answer"));
}

#[test]
fn code_reward_options_and_other_test_forms() {
    let registry = RewardRegistry::with_builtins();
    let binary = registry.build("code:scoring=binary,test=test_list").unwrap();
    let fraction = registry.build("code:test=test_list").unwrap();
    let extra = json!({"test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 5"]}).as_object().unwrap().clone();
    let mbpp = Record { extra, ..Default::default() };
    let program = "def add(a, b):\n    return a + b\n";
    assert_eq!(fraction.score(program, &mbpp).value, 0.5);
    assert_eq!(binary.score(program, &mbpp).value, 0.0);
    let extra = json!({"cases": [{"input": "2 3\n", "output": "5"}, {"input": "10 -4\n", "output": "6\n"}]}).as_object().unwrap().clone();
    let stdio = Record { extra, ..Default::default() };
    let sum = registry.build("code:test=cases").unwrap();
    assert_eq!(sum.score("a, b = map(int, input().split())\nprint(a + b)\n", &stdio).value, 1.0);
    assert_eq!(sum.score("print(5)\n", &stdio).value, 0.5);
    assert!(registry.build("code:scoring=maybe").is_err());
    assert!(registry.build("code:color=red").is_err());
    // A record without tests is an error for batch scoring, not a silent zero.
    let empty = Record::default();
    assert!(fraction.score_batch(&[("x", &empty)]).is_err());
}
