//! Format rewards for the R1-Zero template: `<think>...</think>` then `<answer>...</answer>`.

use std::sync::OnceLock;

use regex::Regex;

use crate::reward::{Record, Reward, RewardOutput};

/// Completions often start inside `<think>` because the prompt ends with it; put it back
/// so the completion can be checked as a whole.
fn with_prompt_opening<'a>(completion: &'a str, record: &Record) -> std::borrow::Cow<'a, str> {
    let prompt_opens = record.prompt.as_deref().is_some_and(|p| p.trim_end().ends_with("<think>"));
    if prompt_opens && !completion.trim_start().starts_with("<think>") {
        format!("<think>{completion}").into()
    } else {
        completion.into()
    }
}

/// 1 when the completion follows the template. Strict: exactly
/// `<think>\n...\n</think>\n<answer>\n...\n</answer>` and nothing else. Lenient: one think
/// block followed by one answer block, any whitespace, nothing after the answer.
#[derive(Debug, Clone, Copy)]
pub struct FormatReward {
    pub strict: bool,
}

impl FormatReward {
    pub fn check(&self, completion: &str) -> Result<(), &'static str> {
        static STRICT: OnceLock<Regex> = OnceLock::new();
        static LENIENT: OnceLock<Regex> = OnceLock::new();
        let re = if self.strict {
            STRICT.get_or_init(|| Regex::new(r"(?s)\A<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>\z").unwrap())
        } else {
            LENIENT.get_or_init(|| Regex::new(r"(?s)\A\s*<think>.*?</think>\s*<answer>.*?</answer>\s*\z").unwrap())
        };
        for tag in ["<think>", "</think>", "<answer>", "</answer>"] {
            if completion.matches(tag).count() != 1 {
                return Err("each tag must appear exactly once");
            }
        }
        if re.is_match(completion) { Ok(()) } else { Err("tags out of template order or text outside them") }
    }
}

impl Reward for FormatReward {
    fn name(&self) -> &str {
        if self.strict { "format_strict" } else { "format" }
    }
    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        let completion = with_prompt_opening(completion, record);
        match self.check(&completion) {
            Ok(()) => RewardOutput::new(1.0),
            Err(why) => RewardOutput::with_reason(0.0, why),
        }
    }
}

/// Partial credit while the format is being learned: 0.25 for each of `<think>\n`,
/// `\n</think>\n`, `\n<answer>\n`, `\n</answer>` present exactly once.
#[derive(Debug, Clone, Copy, Default)]
pub struct TagCountReward;

impl Reward for TagCountReward {
    fn name(&self) -> &str {
        "tag_count"
    }
    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        let completion = with_prompt_opening(completion, record);
        let value = ["<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"]
            .iter()
            .filter(|tag| completion.matches(**tag).count() == 1)
            .count() as f64
            * 0.25;
        RewardOutput::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(r: &dyn Reward, c: &str) -> f64 {
        r.score(c, &Record::default()).value
    }

    #[test]
    fn strict_and_lenient_template() {
        let strict = FormatReward { strict: true };
        let lenient = FormatReward { strict: false };
        let good = "<think>\nreason\n</think>\n<answer>\n42\n</answer>";
        assert_eq!(score(&strict, good), 1.0);
        assert_eq!(score(&lenient, good), 1.0);
        let loose = "<think>reason</think> <answer>42</answer>\n";
        assert_eq!(score(&strict, loose), 0.0);
        assert_eq!(score(&lenient, loose), 1.0);
        for bad in [
            "<answer>42</answer><think>r</think>",
            "<think>r</think><answer>42</answer> trailing",
            "<think>r</think><answer>1</answer><answer>2</answer>",
            "<think>r <answer>42</answer>",
            "42",
        ] {
            assert_eq!(score(&lenient, bad), 0.0, "{bad}");
        }
    }

    #[test]
    fn prompt_ending_in_think_counts_as_opened() {
        let record = Record { prompt: Some("Solve it.\nAssistant: <think>".into()), ..Default::default() };
        let c = "\nreason\n</think>\n<answer>\n42\n</answer>";
        assert_eq!(FormatReward { strict: true }.score(c, &record).value, 1.0);
        assert_eq!(FormatReward { strict: true }.score(c, &Record::default()).value, 0.0);
    }

    #[test]
    fn tag_count_gives_partial_credit() {
        assert_eq!(score(&TagCountReward, "<think>\nx\n</think>\n<answer>\n1\n</answer>"), 1.0);
        assert_eq!(score(&TagCountReward, "<think>\nx\n</think>\n"), 0.5);
        assert_eq!(score(&TagCountReward, "<think>\n<think>\n"), 0.0);
        assert_eq!(score(&TagCountReward, "nothing"), 0.0);
    }
}
