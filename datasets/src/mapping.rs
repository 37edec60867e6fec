//! Field mapping: which fields of a raw record hold the prompt, answer, messages, ... and how a
//! raw record becomes a typed `Record`. Also the load loop with its error policy.

use std::path::Path;

use serde_json::Value;

use crate::error::{DataError, Location, Result};
use crate::reader::{FileFormat, RawRecord, read_raw};
use crate::records::{ChatMessage, CodeLanguage, Gold, RlPrompt, ReasoningTrace, Record, SftExample};

/// How the gold answer is taken from the answer field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerExtract {
    /// The field is the answer.
    #[default]
    AsIs,
    /// GSM8K: the number after the last `####` (thousands separators removed); the whole field is
    /// kept as the reference solution.
    AfterHashes,
    /// MATH: the content of the last `\boxed{...}`; the whole field is kept as the solution.
    LastBoxed,
}

impl std::str::FromStr for AnswerExtract {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "as-is" | "none" => Ok(AnswerExtract::AsIs),
            "hashes" | "gsm8k" => Ok(AnswerExtract::AfterHashes),
            "boxed" => Ok(AnswerExtract::LastBoxed),
            other => Err(format!("unknown answer extraction `{other}` (as-is, hashes, boxed)")),
        }
    }
}

/// What kind of record a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Prompt + gold answer.
    RlAnswer,
    /// Prompt + tests + entry point.
    RlCode(CodeLanguage),
    /// Prompt + completion.
    SftCompletion,
    /// Chat messages.
    SftChat,
    /// Prompt + reasoning + answer.
    Trace,
    /// Records written by this crate (`RlPrompt` with a `gold` tag), read with serde as they are.
    Native,
}

impl std::str::FromStr for RecordKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "rl" | "answer" => Ok(RecordKind::RlAnswer),
            "code" | "python" => Ok(RecordKind::RlCode(CodeLanguage::Python)),
            "rust" => Ok(RecordKind::RlCode(CodeLanguage::Rust)),
            "sft" | "completion" => Ok(RecordKind::SftCompletion),
            "chat" | "messages" => Ok(RecordKind::SftChat),
            "trace" => Ok(RecordKind::Trace),
            "native" => Ok(RecordKind::Native),
            other => Err(format!("unknown record kind `{other}` (rl, code, rust, sft, chat, trace, native)")),
        }
    }
}

/// Field names (dotted paths reach into nested objects: `meta.answer`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    /// `None`: inferred from the first record's fields.
    pub kind: Option<RecordKind>,
    pub id_field: Option<String>,
    pub prompt_field: String,
    pub answer_field: String,
    pub answer_extract: AnswerExtract,
    pub completion_field: String,
    pub messages_field: String,
    pub reasoning_field: String,
    pub tests_field: String,
    pub entry_point_field: String,
    /// Reference solution field (optional in every record).
    pub solution_field: Option<String>,
    /// Prefix of the ids given to records without an id field: `<prefix>-<index>`.
    pub id_prefix: String,
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap {
            kind: None,
            id_field: Some("id".into()),
            prompt_field: "prompt".into(),
            answer_field: "answer".into(),
            answer_extract: AnswerExtract::AsIs,
            completion_field: "completion".into(),
            messages_field: "messages".into(),
            reasoning_field: "reasoning".into(),
            tests_field: "test".into(),
            entry_point_field: "entry_point".into(),
            solution_field: Some("solution".into()),
            id_prefix: "record".into(),
        }
    }
}

/// What to do with a bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    #[default]
    Fail,
    /// Skip bad records and count them (a broken file still fails).
    Skip,
}

/// Records of a file and what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    pub skipped: usize,
    /// The first few skip reasons, for a message.
    pub skip_examples: Vec<String>,
}

/// Loads a file through a field map. `limit` stops after that many good records.
pub fn load_file(
    path: &Path,
    format: FileFormat,
    map: &FieldMap,
    on_error: OnError,
    limit: Option<usize>,
) -> Result<Loaded> {
    load_raw(read_raw(path, format)?, map, on_error, limit)
}

pub fn load_raw(
    raw: impl Iterator<Item = Result<RawRecord>>,
    map: &FieldMap,
    on_error: OnError,
    limit: Option<usize>,
) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut kind = map.kind;
    for (index, item) in raw.enumerate() {
        if limit.is_some_and(|n| loaded.records.len() >= n) {
            break;
        }
        let mapped = item.and_then(|(at, value)| {
            let kind = *kind.get_or_insert_with(|| infer_kind(&value, map));
            map_record(&value, &at, map, kind, index)
        });
        match mapped {
            Ok(record) => loaded.records.push(record),
            Err(e) if on_error == OnError::Skip && e.is_record_error() => {
                loaded.skipped += 1;
                if loaded.skip_examples.len() < 5 {
                    loaded.skip_examples.push(e.to_string());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(loaded)
}

/// The kind a record's fields suggest, most specific first.
pub fn infer_kind(value: &Value, map: &FieldMap) -> RecordKind {
    let has = |field: &str| lookup(value, field).is_some();
    if has("gold") && has("prompt") {
        RecordKind::Native
    } else if has(&map.messages_field) {
        RecordKind::SftChat
    } else if has(&map.reasoning_field) {
        RecordKind::Trace
    } else if has(&map.completion_field) {
        RecordKind::SftCompletion
    } else if has(&map.tests_field) && has(&map.entry_point_field) {
        RecordKind::RlCode(CodeLanguage::Python)
    } else {
        RecordKind::RlAnswer
    }
}

/// One raw record to a typed record.
pub fn map_record(value: &Value, at: &Location, map: &FieldMap, kind: RecordKind, index: usize) -> Result<Record> {
    if !value.is_object() {
        return Err(DataError::WrongType {
            at: at.clone(),
            field: "<record>".into(),
            expected: "a JSON object",
            found: type_name(value).into(),
        });
    }
    let id = || -> Result<String> {
        match &map.id_field {
            Some(field) => match lookup(value, field) {
                Some(_) => scalar_text(value, field, at),
                None => Ok(format!("{}-{index}", map.id_prefix)),
            },
            None => Ok(format!("{}-{index}", map.id_prefix)),
        }
    };
    let solution = || -> Result<Option<String>> {
        match &map.solution_field {
            Some(field) if lookup(value, field).is_some() => Ok(Some(text(value, field, at)?)),
            _ => Ok(None),
        }
    };
    Ok(match kind {
        RecordKind::Native => Record::Rl(serde_json::from_value::<RlPrompt>(value.clone()).map_err(|e| {
            DataError::BadValue { at: at.clone(), field: "<record>".into(), message: e.to_string() }
        })?),
        RecordKind::RlAnswer => {
            let raw_answer = scalar_text(value, &map.answer_field, at)?;
            let (answer, worked) = extract_answer(&raw_answer, map.answer_extract)
                .map_err(|message| DataError::BadValue { at: at.clone(), field: map.answer_field.clone(), message })?;
            Record::Rl(RlPrompt {
                id: id()?,
                prompt: text(value, &map.prompt_field, at)?,
                gold: Gold::Answer { answer },
                solution: match worked {
                    Some(w) => Some(w),
                    None => solution()?,
                },
            })
        }
        RecordKind::RlCode(language) => Record::Rl(RlPrompt {
            id: id()?,
            prompt: text(value, &map.prompt_field, at)?,
            gold: Gold::Code {
                language,
                tests: text(value, &map.tests_field, at)?,
                entry_point: text(value, &map.entry_point_field, at)?,
            },
            solution: solution()?,
        }),
        RecordKind::SftCompletion => Record::Sft(SftExample::Completion {
            prompt: text(value, &map.prompt_field, at)?,
            completion: text(value, &map.completion_field, at)?,
        }),
        RecordKind::SftChat => Record::Sft(SftExample::Chat { messages: messages(value, &map.messages_field, at)? }),
        RecordKind::Trace => Record::Trace(ReasoningTrace {
            id: id()?,
            prompt: text(value, &map.prompt_field, at)?,
            reasoning: text(value, &map.reasoning_field, at)?,
            answer: scalar_text(value, &map.answer_field, at)?,
            correct: lookup(value, "correct").and_then(Value::as_bool),
        }),
    })
}

/// Gold answer and, when extracted from a worked solution, that solution.
pub fn extract_answer(raw: &str, how: AnswerExtract) -> std::result::Result<(String, Option<String>), String> {
    match how {
        AnswerExtract::AsIs => Ok((raw.trim().to_string(), None)),
        AnswerExtract::AfterHashes => {
            let (_, after) = raw.rsplit_once("####").ok_or("no `####` before the final answer")?;
            let answer: String = after.trim().chars().filter(|c| *c != ',').collect();
            if answer.is_empty() {
                return Err("nothing after `####`".into());
            }
            Ok((answer, Some(raw.to_string())))
        }
        AnswerExtract::LastBoxed => {
            let answer = last_boxed(raw).ok_or("no `\\boxed{...}` in the solution")?;
            Ok((answer, Some(raw.to_string())))
        }
    }
}

/// The content of the last `\boxed{...}` (or `\fbox{...}`), braces balanced.
pub fn last_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed{", "\\fbox{"]
        .iter()
        .filter_map(|marker| text.rfind(marker).map(|i| i + marker.len()))
        .max()?;
    let mut depth = 1usize;
    for (offset, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..start + offset].trim().to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// A field by dotted path.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = value.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn required<'a>(value: &'a Value, field: &str, at: &Location) -> Result<&'a Value> {
    match lookup(value, field) {
        Some(Value::Null) | None => Err(DataError::MissingField { at: at.clone(), field: field.to_string() }),
        Some(v) => Ok(v),
    }
}

/// A string field.
fn text(value: &Value, field: &str, at: &Location) -> Result<String> {
    match required(value, field, at)? {
        Value::String(s) => Ok(s.clone()),
        other => Err(wrong_type(at, field, "a string", other)),
    }
}

/// A string or number field, as text (answers are often stored as numbers).
fn scalar_text(value: &Value, field: &str, at: &Location) -> Result<String> {
    match required(value, field, at)? {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(wrong_type(at, field, "a string or number", other)),
    }
}

fn messages(value: &Value, field: &str, at: &Location) -> Result<Vec<ChatMessage>> {
    let items = match required(value, field, at)? {
        Value::Array(items) => items,
        other => return Err(wrong_type(at, field, "a list of messages", other)),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let get = |key: &str| -> Result<String> {
                let name = format!("{field}[{i}].{key}");
                match item.get(key) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(other) => Err(wrong_type(at, &name, "a string", other)),
                    None => Err(DataError::MissingField { at: at.clone(), field: name }),
                }
            };
            Ok(ChatMessage { role: get("role")?, content: get("content")? })
        })
        .collect()
}

fn wrong_type(at: &Location, field: &str, expected: &'static str, found: &Value) -> DataError {
    DataError::WrongType { at: at.clone(), field: field.to_string(), expected, found: type_name(found).to_string() }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
