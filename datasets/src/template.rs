//! Prompt templates: how a problem text becomes what the model sees. A template is a config
//! value (TOML / JSON), either a bare name or a table with options:
//!
//! ```toml
//! template = "r1-zero"
//! template = { kind = "r1-zero", prefill_think = true }
//! template = { kind = "plain", format = "Question: {prompt}\nAnswer:" }
//! template = { kind = "chat", system = "You are a helpful assistant." }
//! ```
//!
//! The chat template of the tokenizer is applied later (model crate); here `chat` yields the list
//! of messages.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::records::{ChatMessage, Record, ReasoningTrace, SftExample};

/// The instruction of DeepSeek-R1-Zero (paper, table 1).
pub const R1_ZERO_INSTRUCTION: &str = "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PromptTemplate {
    /// `{instruction}\nUser: {prompt}\nAssistant:`; the model continues with ` <think>`. With
    /// `prefill_think` the prompt already ends with `Assistant: <think>`.
    R1Zero { instruction: Option<String>, prefill_think: bool },
    /// The problem text put into `format` at `{prompt}`.
    Plain { format: String },
    /// `[system?, user]` messages for the tokenizer's chat template.
    Chat { system: Option<String> },
}

impl Default for PromptTemplate {
    fn default() -> Self {
        PromptTemplate::r1_zero()
    }
}

impl PromptTemplate {
    pub fn r1_zero() -> Self {
        PromptTemplate::R1Zero { instruction: None, prefill_think: false }
    }
    pub fn plain() -> Self {
        PromptTemplate::Plain { format: "{prompt}".to_string() }
    }
    pub fn chat(system: Option<String>) -> Self {
        PromptTemplate::Chat { system }
    }

    /// What the model sees for a problem text.
    pub fn render_prompt(&self, problem: &str) -> RenderedPrompt {
        match self {
            PromptTemplate::R1Zero { instruction, prefill_think } => {
                let instruction = instruction.as_deref().unwrap_or(R1_ZERO_INSTRUCTION);
                let opening = if *prefill_think { " <think>" } else { "" };
                RenderedPrompt::Text(format!("{instruction}\nUser: {problem}\nAssistant:{opening}"))
            }
            PromptTemplate::Plain { format } => RenderedPrompt::Text(format.replace("{prompt}", problem)),
            PromptTemplate::Chat { system } => {
                let mut messages = Vec::with_capacity(2);
                if let Some(system) = system {
                    messages.push(ChatMessage::system(system.clone()));
                }
                messages.push(ChatMessage::user(problem));
                RenderedPrompt::Chat(messages)
            }
        }
    }

    /// Text the template already put at the start of the assistant's turn (`<think>` when
    /// prefilled): a format reward must prepend it to the completion.
    pub fn assistant_prefill(&self) -> &'static str {
        match self {
            PromptTemplate::R1Zero { prefill_think: true, .. } => "<think>",
            _ => "",
        }
    }

    /// The completion the model should produce for a trace, after this template's prompt.
    pub fn trace_completion(&self, trace: &ReasoningTrace) -> String {
        let full = trace.r1_completion();
        match self {
            PromptTemplate::R1Zero { prefill_think: true, .. } => full["<think>".len()..].to_string(),
            // The prompt ends with "Assistant:"; the reply starts after a space.
            PromptTemplate::R1Zero { .. } => format!(" {full}"),
            _ => full,
        }
    }

    /// Prompt and (when the record has one) target completion, as the model sees them.
    pub fn render_record(&self, record: &Record) -> RenderedExample {
        match record {
            Record::Rl(r) => RenderedExample { prompt: self.render_prompt(&r.prompt), completion: None },
            Record::Trace(t) => RenderedExample {
                prompt: self.render_prompt(&t.prompt),
                completion: Some(self.trace_completion(t)),
            },
            Record::Sft(SftExample::Completion { prompt, completion }) => RenderedExample {
                prompt: self.render_prompt(prompt),
                completion: Some(completion.clone()),
            },
            Record::Sft(SftExample::Chat { messages }) => RenderedExample {
                prompt: RenderedPrompt::Chat(self.chat_messages(messages)),
                completion: None,
            },
        }
    }

    /// A whole chat under this template: a chat template adds its system prompt when the
    /// conversation has none; text templates keep the messages as they are.
    fn chat_messages(&self, messages: &[ChatMessage]) -> Vec<ChatMessage> {
        match self {
            PromptTemplate::Chat { system: Some(system) } if !messages.iter().any(|m| m.role == "system") => {
                std::iter::once(ChatMessage::system(system.clone())).chain(messages.iter().cloned()).collect()
            }
            _ => messages.to_vec(),
        }
    }

    fn validate(self) -> Result<Self, String> {
        if let PromptTemplate::Plain { format } = &self
            && !format.contains("{prompt}")
        {
            return Err(format!("plain template format {format:?} has no {{prompt}} placeholder"));
        }
        Ok(self)
    }
}

/// A rendered prompt: text for completion models, messages for the chat template.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RenderedPrompt {
    Text(String),
    Chat(Vec<ChatMessage>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedExample {
    pub prompt: RenderedPrompt,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<String>,
}

impl fmt::Display for RenderedPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderedPrompt::Text(text) => f.write_str(text),
            RenderedPrompt::Chat(messages) => {
                for (i, m) in messages.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "[{}]\n{}", m.role, m.content)?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for PromptTemplate {
    type Err = String;
    /// A bare name: `r1-zero`, `r1-zero-prefill`, `plain`, `chat`.
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "r1-zero" | "r1zero" => Ok(PromptTemplate::r1_zero()),
            "r1-zero-prefill" => Ok(PromptTemplate::R1Zero { instruction: None, prefill_think: true }),
            "plain" => Ok(PromptTemplate::plain()),
            "chat" => Ok(PromptTemplate::chat(None)),
            other => Err(format!("unknown prompt template `{other}` (r1-zero, r1-zero-prefill, plain, chat)")),
        }
    }
}

/// The table form; a mirror of `PromptTemplate` so that a bare name is accepted too.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum TemplateTable {
    R1Zero {
        #[serde(default)]
        instruction: Option<String>,
        #[serde(default)]
        prefill_think: bool,
    },
    Plain {
        #[serde(default = "default_plain_format")]
        format: String,
    },
    Chat {
        #[serde(default)]
        system: Option<String>,
    },
}

fn default_plain_format() -> String {
    "{prompt}".to_string()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TemplateRepr {
    Name(String),
    Table(TemplateTable),
}

impl<'de> Deserialize<'de> for PromptTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let template = match TemplateRepr::deserialize(deserializer)? {
            TemplateRepr::Name(name) => name.parse().map_err(serde::de::Error::custom)?,
            TemplateRepr::Table(TemplateTable::R1Zero { instruction, prefill_think }) => {
                PromptTemplate::R1Zero { instruction, prefill_think }
            }
            TemplateRepr::Table(TemplateTable::Plain { format }) => PromptTemplate::Plain { format },
            TemplateRepr::Table(TemplateTable::Chat { system }) => PromptTemplate::Chat { system },
        };
        template.validate().map_err(serde::de::Error::custom)
    }
}
