//! Every GSM8K test gold and every MMATH English gold scores 1 against itself written in
//! other ways a model writes it, and 0 against a nearby wrong value.

use r1kit_rewards::math::MathReward;
use r1kit_rewards::{Record, Reward};
use serde_json::Value;

fn asset(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/data/").to_string() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}; run scripts/fetch-assets.sh"))
}

/// GSM8K golds: the text after `####` in each line's "answer".
fn gsm8k_golds() -> Vec<String> {
    asset("gsm8k_test.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let answer = v["answer"].as_str().unwrap();
            answer.rsplit("####").next().unwrap().trim().to_string()
        })
        .collect()
}

fn mmath_golds() -> Vec<String> {
    let v: Value = serde_json::from_str(&asset("mmath_en.json")).unwrap();
    v.as_array().unwrap().iter().map(|x| x["answer"].as_str().unwrap().to_string()).collect()
}

fn with_thousands(int: &str) -> String {
    let (sign, digits) = int.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", int));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// (numerator, denominator) of a plain decimal gold like "18", "-3", "2.25".
fn as_fraction(gold: &str) -> Option<(i128, i128)> {
    let (int, frac) = gold.split_once('.').unwrap_or((gold, ""));
    let den = 10i128.checked_pow(frac.len() as u32)?;
    let num: i128 = format!("{int}{frac}").parse().ok()?;
    Some((num, den))
}

fn numeric_rewrites(gold: &str) -> Vec<String> {
    let (num, den) = as_fraction(gold).unwrap();
    let int_part = gold.split('.').next().unwrap();
    let frac_part = gold.split_once('.').map(|(_, f)| format!(".{f}")).unwrap_or_default();
    vec![
        format!("<think>Let me compute.</think>\n<answer>\\boxed{{{gold}}}</answer>"),
        format!("So the result is $\\frac{{{}}}{{{}}}$, i.e. \\boxed{{\\dfrac{{{}}}{{{}}}}}.", num * 2, den * 2, num * 2, den * 2),
        format!("<answer>\\${}{frac_part}</answer>", with_thousands(int_part)),
        format!("Therefore the answer is {}{frac_part} units.", with_thousands(int_part)),
        // Trailing zero: 18 -> "18.0", 2.25 -> "2.250".
        format!("#### {gold}{}\n", if frac_part.is_empty() { ".0" } else { "0" }),
    ]
}

fn wrong_numeric(gold: &str) -> String {
    let (num, den) = as_fraction(gold).unwrap();
    format!("\\boxed{{\\frac{{{}}}{{{den}}}}}", num + den)
}

fn score(completion: &str, gold: &str) -> f64 {
    MathReward::default().score(completion, &Record::with_gold(gold)).value
}

#[test]
fn gsm8k_golds_match_rewrites_and_reject_neighbours() {
    let golds = gsm8k_golds();
    assert_eq!(golds.len(), 1319);
    let mut failures = Vec::new();
    for gold in &golds {
        // The dataset writes some golds with thousands separators ("#### 1,450,000").
        let dataset_gold = format!("Some solution.\n#### {gold}");
        let gold = &gold.replace(',', "");
        for rewrite in numeric_rewrites(gold) {
            if score(&rewrite, &dataset_gold) != 1.0 {
                failures.push(format!("gold {gold}: rewrite `{rewrite}` scored 0"));
            }
        }
        if score(&wrong_numeric(gold), &dataset_gold) != 0.0 {
            failures.push(format!("gold {gold}: wrong `{}` scored 1", wrong_numeric(gold)));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures[..failures.len().min(20)].join("\n"));
}

/// Rewrites of a symbolic gold a model could produce: `\dfrac`, spacing, `\left(`/`\right)`.
fn symbolic_rewrite(gold: &str) -> String {
    gold.replace("\\frac", "\\dfrac")
        .replace(',', ", ")
        .replace('(', "\\left(")
        .replace(')', "\\right)")
        .replace('[', "\\left[")
        .replace('-', " - ")
}

/// Bumps the first digit: a nearby but different value.
fn bump_first_digit(gold: &str) -> String {
    match gold.char_indices().find(|(_, c)| c.is_ascii_digit()) {
        Some((i, c)) => {
            let d = c.to_digit(10).unwrap();
            let next = if d == 9 { 8 } else { d + 1 };
            format!("{}{next}{}", &gold[..i], &gold[i + 1..])
        }
        None => format!("{gold}+1"),
    }
}

#[test]
fn mmath_golds_match_rewrites_and_reject_neighbours() {
    let golds = mmath_golds();
    assert_eq!(golds.len(), 374);
    let mut failures = Vec::new();
    let mut symbolic = 0;
    for gold in &golds {
        let bare = gold.trim().trim_matches('$').to_string();
        let rewrites = if as_fraction(&bare).is_some() {
            numeric_rewrites(&bare)
        } else {
            symbolic += 1;
            vec![
                format!("\\boxed{{{bare}}}"),
                format!("Hence the answer is ${}$.", symbolic_rewrite(&bare)),
                format!("<think>done</think><answer>{}</answer>", symbolic_rewrite(&bare)),
            ]
        };
        for rewrite in rewrites {
            if score(&rewrite, gold) != 1.0 {
                failures.push(format!("gold {gold}: rewrite `{rewrite}` scored 0"));
            }
        }
        let wrong = if as_fraction(&bare).is_some() { wrong_numeric(&bare) } else { format!("\\boxed{{{}}}", bump_first_digit(&bare)) };
        if score(&wrong, gold) != 0.0 {
            failures.push(format!("gold {gold}: wrong `{wrong}` scored 1"));
        }
    }
    assert!(symbolic >= 10, "expected the CNMO symbolic golds, found {symbolic}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures[..failures.len().min(30)].join("\n"));
}

/// Symbolic answers in forms a model writes that are equal to the gold only by algebra.
#[test]
fn symbolic_golds_equal_by_algebra() {
    let cases = [
        ("$\\frac{\\sqrt{6}}{4}$", "\\boxed{\\frac{\\sqrt{3}}{2\\sqrt{2}}}", "\\boxed{\\frac{\\sqrt{6}}{2}}"),
        ("$2\\sqrt{2}$", "\\boxed{\\sqrt{8}}", "\\boxed{\\sqrt{6}}"),
        ("$8\\sqrt{5} - 16$", "\\boxed{8(\\sqrt5-2)}", "\\boxed{8(\\sqrt5-3)}"),
        ("$2\\sqrt{2}-2$", "\\boxed{-2+\\sqrt{8}}", "\\boxed{2-2\\sqrt2}"),
        ("$10^{2^n-n-1}$", "\\boxed{\\frac{10^{2^n}}{10^{n+1}}}", "\\boxed{10^{2^n-n}}"),
        ("$(-\\infty,-1)\\cup(6,+\\infty)$", "\\boxed{(6,\\infty)\\cup(-\\infty,-1)}", "\\boxed{(-\\infty,-1]\\cup(6,\\infty)}"),
        ("$[-\\frac{1}{4}, 0) \\cup (0, 2)$", "\\boxed{[-0.25,0)\\cup(0,2)}", "\\boxed{[-0.25,0]\\cup(0,2)}"),
    ];
    for (gold, same, different) in cases {
        assert_eq!(score(same, gold), 1.0, "{gold} vs {same}");
        assert_eq!(score(different, gold), 0.0, "{gold} vs {different}");
    }
}
