//! The record types the training stages consume.

use serde::{Deserialize, Serialize};

/// A prompt for RL (or evaluation) with what a reward needs to verify a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlPrompt {
    /// Stable identifier (task id, or `<dataset>-<index>`).
    pub id: String,
    /// The problem text, before any prompt template.
    pub prompt: String,
    #[serde(flatten)]
    pub gold: Gold,
    /// A reference solution when the source has one (GSM8K worked solution, HumanEval canonical
    /// solution, the generator's own expression); never needed to score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
}

/// What a correct completion must produce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "gold", rename_all = "snake_case")]
pub enum Gold {
    /// A final answer compared by (math) equivalence, e.g. `"18"` or `"\frac{1}{2}"`.
    Answer { answer: String },
    /// Countdown: an expression over `numbers` (each at most once) that equals `target`.
    Countdown { numbers: Vec<i64>, target: i64 },
    /// Code: the completion is run against `tests`, which call `entry_point`.
    Code { language: CodeLanguage, tests: String, entry_point: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeLanguage {
    Python,
    Rust,
}

impl Gold {
    /// The final answer as text when there is one (`Answer`), the target for Countdown.
    pub fn answer_text(&self) -> Option<String> {
        match self {
            Gold::Answer { answer } => Some(answer.clone()),
            Gold::Countdown { target, .. } => Some(target.to_string()),
            Gold::Code { .. } => None,
        }
    }
}

/// One chat message; the tokenizer's chat template renders a list of them (in the model crate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` (kept as text: datasets use other roles too).
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage { role: role.to_string(), content: content.into() }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A supervised example: a prompt/completion pair or a whole chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SftExample {
    Completion { prompt: String, completion: String },
    Chat { messages: Vec<ChatMessage> },
}

/// A worked solution in R1 form, for cold-start SFT and distillation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningTrace {
    pub id: String,
    pub prompt: String,
    /// What goes inside `<think> ... </think>`.
    pub reasoning: String,
    /// What goes inside `<answer> ... </answer>`.
    pub answer: String,
    /// Whether the answer is right; generators set it (traces with injected errors say `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
}

impl ReasoningTrace {
    /// The assistant's whole text in R1 format: `<think>\n…\n</think>\n<answer>…</answer>`.
    pub fn r1_completion(&self) -> String {
        format!("<think>\n{}\n</think>\n<answer>{}</answer>", self.reasoning, self.answer)
    }
}

/// Any record a dataset spec can yield.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Trace(ReasoningTrace),
    Rl(RlPrompt),
    Sft(SftExample),
}

impl Record {
    /// The problem text a template is applied to (for chat SFT: the first user message).
    pub fn prompt_text(&self) -> &str {
        match self {
            Record::Rl(r) => &r.prompt,
            Record::Trace(t) => &t.prompt,
            Record::Sft(SftExample::Completion { prompt, .. }) => prompt,
            Record::Sft(SftExample::Chat { messages }) => messages
                .iter()
                .find(|m| m.role == "user")
                .map(|m| m.content.as_str())
                .unwrap_or(""),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Record::Rl(_) => "rl-prompt",
            Record::Trace(_) => "reasoning-trace",
            Record::Sft(_) => "sft-example",
        }
    }
}
