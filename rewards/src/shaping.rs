//! Shaping rewards: cosine-scaled length, DAPO overlong punishment, n-gram repetition
//! penalty, language consistency of the reasoning.

use std::collections::HashSet;

use crate::math::MathReward;
use crate::reward::{Record, Reward, RewardOutput};

/// Length of a completion in tokens when the caller put `completion_tokens` in the record
/// (the trainer knows it), else in characters.
pub fn completion_length(completion: &str, record: &Record) -> f64 {
    record
        .extra
        .get("completion_tokens")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| completion.chars().count() as f64)
}

/// Cosine-scaled length reward (Yeo et al. 2025, as in open-r1): correct answers earn more
/// when short, wrong answers are punished less when long.
#[derive(Debug, Clone)]
pub struct CosineLengthReward {
    pub max_len: f64,
    pub min_value_wrong: f64,
    pub max_value_wrong: f64,
    pub min_value_correct: f64,
    pub max_value_correct: f64,
    pub verifier: MathReward,
}

impl CosineLengthReward {
    pub fn new(max_len: f64) -> Self {
        CosineLengthReward {
            max_len,
            min_value_wrong: -1.0,
            max_value_wrong: -0.5,
            min_value_correct: 0.5,
            max_value_correct: 1.0,
            verifier: MathReward::default(),
        }
    }

    pub fn value(&self, len: f64, correct: bool) -> f64 {
        let progress = (len / self.max_len).clamp(0.0, 1.0);
        let cosine = (progress * std::f64::consts::PI).cos();
        // Wrong: from max_value_wrong (short) up to min_value_wrong... swapped so that
        // a long wrong answer (more effort) is punished less than a short one.
        let (lo, hi) = if correct {
            (self.min_value_correct, self.max_value_correct)
        } else {
            (self.max_value_wrong, self.min_value_wrong)
        };
        lo + 0.5 * (hi - lo) * (1.0 + cosine)
    }
}

impl Reward for CosineLengthReward {
    fn name(&self) -> &str {
        "cosine"
    }
    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        let correct = self.verifier.judge(completion, record).value > 0.0;
        RewardOutput::new(self.value(completion_length(completion, record), correct))
    }
}

/// DAPO's soft overlong punishment: 0 up to `max_len - cache`, then linearly down to -1 at
/// `max_len`, and -1 beyond.
#[derive(Debug, Clone, Copy)]
pub struct OverlongReward {
    pub max_len: f64,
    pub cache: f64,
}

impl OverlongReward {
    pub fn value(&self, len: f64) -> f64 {
        let safe = self.max_len - self.cache;
        if len <= safe {
            0.0
        } else if len <= self.max_len {
            (safe - len) / self.cache
        } else {
            -1.0
        }
    }
}

impl Reward for OverlongReward {
    fn name(&self) -> &str {
        "overlong"
    }
    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        RewardOutput::new(self.value(completion_length(completion, record)))
    }
}

/// Repetition penalty over word n-grams: `max_penalty * (1 - distinct / total)`.
#[derive(Debug, Clone, Copy)]
pub struct RepetitionReward {
    pub ngram: usize,
    pub max_penalty: f64,
}

impl RepetitionReward {
    pub fn value(&self, text: &str) -> f64 {
        let words: Vec<&str> = text.split_whitespace().collect();
        if self.ngram == 0 || words.len() < self.ngram {
            return 0.0;
        }
        let total = words.len() - self.ngram + 1;
        let distinct: HashSet<&[&str]> = words.windows(self.ngram).collect();
        (1.0 - distinct.len() as f64 / total as f64) * self.max_penalty
    }
}

impl Reward for RepetitionReward {
    fn name(&self) -> &str {
        "repetition"
    }
    fn score(&self, completion: &str, _: &Record) -> RewardOutput {
        RewardOutput::new(self.value(completion))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Latin,
    Han,
    Cyrillic,
}

impl std::str::FromStr for Script {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "en" | "latin" => Ok(Script::Latin),
            "zh" | "han" => Ok(Script::Han),
            "ru" | "cyrillic" => Ok(Script::Cyrillic),
            other => Err(format!("unknown script `{other}` (en, zh, ru)")),
        }
    }
}

impl Script {
    fn contains(self, c: char) -> bool {
        match self {
            Script::Latin => c.is_ascii_alphabetic() || ('\u{c0}'..='\u{24f}').contains(&c),
            Script::Han => ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c),
            Script::Cyrillic => ('\u{400}'..='\u{4ff}').contains(&c),
        }
    }
}

/// R1's language-consistency reward: the share of the reasoning's letters that are in the
/// target script (the reasoning is the `<think>` block when there is one).
#[derive(Debug, Clone, Copy)]
pub struct LanguageReward {
    pub script: Script,
}

impl LanguageReward {
    pub fn value(&self, completion: &str) -> f64 {
        let reasoning = match (completion.find("<think>"), completion.find("</think>")) {
            (Some(s), Some(e)) if s < e => &completion[s + 7..e],
            (None, Some(e)) => &completion[..e],
            _ => completion,
        };
        let (mut letters, mut in_script) = (0usize, 0usize);
        for c in reasoning.chars().filter(|c| c.is_alphabetic()) {
            letters += 1;
            in_script += self.script.contains(c) as usize;
        }
        if letters == 0 { 0.0 } else { in_script as f64 / letters as f64 }
    }
}

impl Reward for LanguageReward {
    fn name(&self) -> &str {
        "language"
    }
    fn score(&self, completion: &str, _: &Record) -> RewardOutput {
        RewardOutput::new(self.value(completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_prefers_short_correct_and_long_wrong() {
        let r = CosineLengthReward::new(1000.0);
        assert!((r.value(0.0, true) - 1.0).abs() < 1e-12);
        assert!((r.value(1000.0, true) - 0.5).abs() < 1e-12);
        assert!((r.value(0.0, false) + 1.0).abs() < 1e-12);
        assert!((r.value(1000.0, false) + 0.5).abs() < 1e-12);
        assert!(r.value(200.0, true) > r.value(800.0, true));
        assert!(r.value(200.0, false) < r.value(800.0, false));
        let rec = Record::with_gold("7");
        assert!(r.score("\\boxed{7}", &rec).value > 0.9);
        assert!(r.score("\\boxed{8}", &rec).value < -0.9);
    }

    #[test]
    fn overlong_soft_punishment() {
        let r = OverlongReward { max_len: 100.0, cache: 20.0 };
        assert_eq!(r.value(80.0), 0.0);
        assert!((r.value(90.0) + 0.5).abs() < 1e-12);
        assert_eq!(r.value(100.0), -1.0);
        assert_eq!(r.value(150.0), -1.0);
        let mut rec = Record::default();
        rec.extra.insert("completion_tokens".into(), 90.into());
        assert!((r.score("short text", &rec).value + 0.5).abs() < 1e-12);
    }

    #[test]
    fn repetition_penalty() {
        let r = RepetitionReward { ngram: 3, max_penalty: -1.0 };
        assert_eq!(r.value("a b c d e f"), 0.0);
        assert!(r.value(&"the same words ".repeat(50)) < -0.9);
        assert_eq!(r.value("too short"), 0.0);
    }

    #[test]
    fn language_share_of_reasoning() {
        let en = LanguageReward { script: Script::Latin };
        assert_eq!(en.value("<think>all english</think><answer>好</answer>"), 1.0);
        let mixed = en.value("<think>abcd 好好好好</think>");
        assert!((mixed - 0.5).abs() < 1e-12);
        let zh = LanguageReward { script: Script::Han };
        assert_eq!(zh.value("<think>好好</think>"), 1.0);
        assert_eq!(zh.value("12345"), 0.0);
    }
}
