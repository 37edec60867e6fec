//! Differential test against PyPI math-verify 0.9.0 on 650 (completion, gold) pairs.
//! Fixture made by fixtures/make_math_verify_fixture.py; every disagreement is listed in
//! fixtures/math_verify_disagreements.jsonl with the reason ours is right.

use std::collections::HashMap;

use r1kit_rewards::math::MathReward;
use r1kit_rewards::{Record, Reward};
use serde_json::Value;

const PAIRS: &str = include_str!("fixtures/math_verify_pairs.jsonl");
const DISAGREEMENTS: &str = include_str!("fixtures/math_verify_disagreements.jsonl");

fn rows(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn every_disagreement_with_math_verify_is_explained() {
    let pairs: Vec<Value> = rows(PAIRS).into_iter().filter(|r| r.get("completion").is_some()).collect();
    assert!(pairs.len() >= 300, "only {} pairs", pairs.len());
    let listed: HashMap<(String, String), Value> = rows(DISAGREEMENTS)
        .into_iter()
        .map(|r| ((r["completion"].as_str().unwrap().to_string(), r["gold"].as_str().unwrap().to_string()), r))
        .collect();
    let reward = MathReward::default();
    let mut unexplained = Vec::new();
    let mut disagreements = 0;
    for pair in &pairs {
        let completion = pair["completion"].as_str().unwrap();
        let gold = pair["gold"].as_str().unwrap();
        let theirs = pair["math_verify"].as_bool().unwrap();
        let ours = reward.score(completion, &Record::with_gold(gold)).value == 1.0;
        let key = (completion.to_string(), gold.to_string());
        if ours != theirs {
            disagreements += 1;
            let explained = listed.get(&key).is_some_and(|r| r["ours"].as_bool() == Some(ours) && r["reason"].as_str().is_some_and(|s| !s.is_empty()));
            if !explained {
                unexplained.push(serde_json::json!({"completion": completion, "gold": gold, "math_verify": theirs, "ours": ours, "reason": ""}).to_string());
            }
        } else if listed.contains_key(&key) {
            unexplained.push(format!("stale entry (now agreeing): {completion} | {gold}"));
        }
    }
    eprintln!("{} pairs, {disagreements} disagreements with math-verify", pairs.len());
    assert!(unexplained.is_empty(), "unexplained:\n{}", unexplained.join("\n"));
}
