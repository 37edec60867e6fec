//! Records to tokens: SFT examples with their loss mask, and evaluation prompts with what the
//! rewards need to score a completion.
//!
//! Text prompts are encoded with the tokenizer's special tokens (a BOS where it adds one) and the
//! completion separately, followed by EOS, so the prompt/completion boundary is exact. Chats go
//! through the tokenizer's chat template; the loss covers each assistant turn, found as the tokens
//! between the conversation rendered up to that turn with a generation prompt and rendered
//! through it.

use anyhow::{bail, Context, Result};
use r1kit_datasets::{Gold, PromptTemplate, Record, RenderedPrompt};
use r1kit_model::tokenizer::{ChatMessage, Tokenizer};

use crate::packing::TokenizedExample;

fn to_model_messages(messages: &[r1kit_datasets::ChatMessage]) -> Vec<ChatMessage> {
    messages.iter().map(|m| ChatMessage::new(m.role.clone(), m.content.clone())).collect()
}

/// The tokens of a whole chat, trained on the assistant turns only.
pub fn tokenize_chat(tokenizer: &Tokenizer, messages: &[ChatMessage]) -> Result<TokenizedExample> {
    let tokens = tokenizer.encode_chat(messages, false, None)?;
    let mut trained = vec![false; tokens.len()];
    for (i, message) in messages.iter().enumerate().filter(|(_, m)| m.role == "assistant") {
        let before = tokenizer.encode_chat(&messages[..i], true, None)?;
        let through = tokenizer.encode_chat(&messages[..=i], false, None)?;
        if !tokens.starts_with(&before) || !tokens.starts_with(&through) || through.len() < before.len() {
            bail!("the chat template does not render the conversation up to assistant turn {i} as a prefix of the whole; cannot mask the prompt ({:?}...)", message.content.chars().take(40).collect::<String>());
        }
        trained[before.len()..through.len()].iter_mut().for_each(|t| *t = true);
    }
    Ok(TokenizedExample { tokens, trained })
}

/// A text prompt and its completion (EOS appended when the tokenizer has one).
pub fn tokenize_text(tokenizer: &Tokenizer, prompt: &str, completion: &str) -> Result<TokenizedExample> {
    let prompt = tokenizer.encode(prompt, true)?;
    let mut completion = tokenizer.encode(completion, false)?;
    completion.extend(tokenizer.eos_token_id());
    Ok(TokenizedExample::prompt_completion(&prompt, &completion))
}

/// One record as an SFT example under `template`; records without a target (RL prompts) are an
/// error naming the record.
pub fn tokenize_record(tokenizer: &Tokenizer, template: &PromptTemplate, record: &Record) -> Result<TokenizedExample> {
    let rendered = template.render_record(record);
    match (rendered.prompt, rendered.completion) {
        (RenderedPrompt::Text(prompt), Some(completion)) => tokenize_text(tokenizer, &prompt, &completion),
        (RenderedPrompt::Chat(messages), Some(completion)) => {
            let mut messages = to_model_messages(&messages);
            messages.push(ChatMessage::new("assistant", completion));
            tokenize_chat(tokenizer, &messages)
        }
        (RenderedPrompt::Chat(messages), None) => tokenize_chat(tokenizer, &to_model_messages(&messages)),
        (RenderedPrompt::Text(_), None) => bail!("a {} record has no completion to train on (SFT needs prompt/completion pairs, chats or traces)", record.kind_name()),
    }
}

/// A prompt to evaluate: its tokens and the rewards' view of the task.
#[derive(Debug, Clone)]
pub struct EvalItem {
    pub id: String,
    pub prompt_tokens: Vec<u32>,
    /// The prompt as text (the format reward looks for a prefilled `<think>`).
    pub prompt_text: String,
    pub reward_record: r1kit_rewards::Record,
}

/// The rewards' record for a dataset record: the gold answer, countdown's numbers and target in
/// `extra`, code tests and entry point.
pub fn reward_record(record: &Record, prompt_text: &str) -> r1kit_rewards::Record {
    let mut out = r1kit_rewards::Record { prompt: Some(prompt_text.to_string()), ..Default::default() };
    match record {
        Record::Rl(r) => match &r.gold {
            Gold::Answer { answer } => out.gold = Some(answer.clone()),
            Gold::Countdown { numbers, target } => {
                out.gold = Some(target.to_string());
                out.extra.insert("nums".into(), serde_json::json!(numbers));
                out.extra.insert("target".into(), serde_json::json!(target));
            }
            Gold::Code { language, tests, entry_point } => {
                out.tests = Some(tests.clone());
                out.entry_point = Some(entry_point.clone());
                out.extra.insert("language".into(), serde_json::to_value(language).unwrap_or_default());
            }
        },
        Record::Trace(t) => out.gold = Some(t.answer.clone()),
        Record::Sft(_) => {}
    }
    out
}

fn record_id(record: &Record, index: usize) -> String {
    match record {
        Record::Rl(r) => r.id.clone(),
        Record::Trace(t) => t.id.clone(),
        Record::Sft(_) => format!("example-{index}"),
    }
}

/// Evaluation prompts for `records` under `template` (chat prompts through the chat template with
/// a generation prompt).
pub fn eval_items(tokenizer: &Tokenizer, template: &PromptTemplate, records: &[Record]) -> Result<Vec<EvalItem>> {
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let (prompt_tokens, prompt_text) = match template.render_prompt(record.prompt_text()) {
                RenderedPrompt::Text(text) => (tokenizer.encode(&text, true)?, text),
                RenderedPrompt::Chat(messages) => {
                    let messages = to_model_messages(&messages);
                    let text = tokenizer.apply_chat_template(&messages, true, None)?;
                    (tokenizer.encode(&text, false)?, text)
                }
            };
            Ok(EvalItem { id: record_id(record, i), prompt_tokens, reward_record: reward_record(record, &prompt_text), prompt_text })
        })
        .collect::<Result<Vec<_>>>()
        .context("preparing evaluation prompts")
}
