//! The tokenizer: Hugging Face `tokenizer.json` through the `tokenizers` crate, special tokens and
//! the chat template from `tokenizer_config.json`, stop ids from `generation_config.json`.
//!
//! Chat templates are rendered with minijinja set up the way transformers sets up Jinja2
//! (see [`template`]), and the rendered text is encoded without adding special tokens again:
//! templates already emit their BOS (Llama 3) or none at all (Qwen, SmolLM2).

mod pyjson;
mod strftime;
pub mod template;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::ModelError;

/// Everything that can go wrong reading a tokenizer or rendering its chat template. Each message
/// is one line naming the file (when there is one) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{}: file not found", .path.display())]
    MissingFile { path: PathBuf },
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid JSON: {message}", .path.display())]
    Json { path: PathBuf, message: String },
    #[error("{}: not a usable tokenizer.json: {message}", .path.display())]
    Load { path: PathBuf, message: String },
    #[error("{}: field `{field}`: {problem}", .path.display())]
    BadField {
        path: PathBuf,
        field: String,
        problem: String,
    },
    #[error("{source_name}: no chat template (no `chat_template` field or chat_template.jinja)")]
    NoChatTemplate { source_name: String },
    #[error("{}: chat template does not compile: {message}", .path.display())]
    TemplateSyntax { path: PathBuf, message: String },
    #[error("{}: chat template failed to render: {message}", .path.display())]
    TemplateRender { path: PathBuf, message: String },
    #[error("cannot encode text: {message}")]
    Encode { message: String },
    #[error("cannot decode ids: {message}")]
    Decode { message: String },
    #[error(
        "{}: token id {id} ({token:?}) is not below the model's {rows} embedding rows \
         ({count} token ids are >= {rows}): tokenizer and model do not match",
        .path.display()
    )]
    TokenIdOutOfRange {
        path: PathBuf,
        id: u32,
        token: String,
        rows: usize,
        count: usize,
    },
}

pub type Result<T> = std::result::Result<T, TokenizerError>;

impl From<TokenizerError> for ModelError {
    fn from(err: TokenizerError) -> Self {
        ModelError::Invalid(err.to_string())
    }
}

/// One chat turn as templates see it: `message.role`, `message.content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The named special tokens transformers passes to chat templates (`special_tokens_map`).
const SPECIAL_TOKEN_FIELDS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// A Hugging Face tokenizer with its special tokens, stop ids and chat template.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    tokenizer_path: PathBuf,
    /// (field name, token text) for each named special token in tokenizer_config.json.
    special_tokens: Vec<(String, String)>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    pad_token_id: Option<u32>,
    /// eos_token_id of generation_config.json (an int or a list), in file order.
    generation_eos_ids: Vec<u32>,
    /// Largest token id + 1, added tokens included.
    vocab_size: usize,
    chat_template: Option<template::ChatTemplate>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.tokenizer_path)
            .field("vocab_size", &self.vocab_size)
            .field("bos_token_id", &self.bos_token_id)
            .field("eos_token_id", &self.eos_token_id)
            .field("stop_token_ids", &self.stop_token_ids())
            .field("has_chat_template", &self.has_chat_template())
            .finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json` and `tokenizer_config.json` from `dir`, plus `generation_config.json`
    /// and `chat_template.jinja` when present (the latter, written by recent transformers,
    /// takes precedence over the config's `chat_template`, as in transformers).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let optional = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
        let tokenizer = Self::from_files(
            dir.join("tokenizer.json"),
            Some(dir.join("tokenizer_config.json")),
            optional("generation_config.json"),
        )?;
        match optional("chat_template.jinja") {
            Some(path) => {
                let source = read_text(&path)?;
                Ok(Tokenizer {
                    chat_template: Some(template::ChatTemplate::new(path, source)),
                    ..tokenizer
                })
            }
            None => Ok(tokenizer),
        }
    }

    /// Loads a tokenizer.json, with the tokenizer_config.json (special tokens, chat template) and
    /// generation_config.json (stop ids) when given. A given file that is missing is an error.
    pub fn from_files(
        tokenizer_json: impl AsRef<Path>,
        tokenizer_config: Option<impl AsRef<Path>>,
        generation_config: Option<impl AsRef<Path>>,
    ) -> Result<Self> {
        let tokenizer_path = tokenizer_json.as_ref().to_path_buf();
        let bytes = read_bytes(&tokenizer_path)?;
        let mut tokenizer = Self::from_tokenizer_json_bytes(tokenizer_path, &bytes)?;
        if let Some(path) = tokenizer_config {
            tokenizer.read_tokenizer_config(path.as_ref())?;
        }
        if let Some(path) = generation_config {
            tokenizer.generation_eos_ids = read_generation_eos_ids(path.as_ref())?;
        }
        if tokenizer.eos_token_id.is_none() {
            tokenizer.eos_token_id = tokenizer.generation_eos_ids.first().copied();
        }
        Ok(tokenizer)
    }

    /// As [`Tokenizer::from_files`], from the files' texts in memory (e.g. rebuilt from a GGUF's
    /// metadata); errors name `source_name` and the file each text stands for.
    pub fn from_json_strings(
        tokenizer_json: &str,
        tokenizer_config_json: Option<&str>,
        generation_config_json: Option<&str>,
        source_name: &str,
    ) -> Result<Self> {
        let label = |file: &str| PathBuf::from(format!("{source_name} ({file})"));
        let mut tokenizer =
            Self::from_tokenizer_json_bytes(label("tokenizer.json"), tokenizer_json.as_bytes())?;
        if let Some(text) = tokenizer_config_json {
            let path = label("tokenizer_config.json");
            tokenizer.apply_tokenizer_config(&path, parse_json_object(&path, text)?)?;
        }
        if let Some(text) = generation_config_json {
            let path = label("generation_config.json");
            tokenizer.generation_eos_ids =
                generation_eos_ids(&path, &parse_json_object(&path, text)?)?;
        }
        if tokenizer.eos_token_id.is_none() {
            tokenizer.eos_token_id = tokenizer.generation_eos_ids.first().copied();
        }
        Ok(tokenizer)
    }

    /// Writes tokenizer.json, tokenizer_config.json (special tokens, chat template) and
    /// generation_config.json (stop ids) into `dir`, so that `from_dir` reads the same tokenizer
    /// back (used when the source was not a directory, e.g. a GGUF file).
    pub fn save_to_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let write = |name: &str, text: String| -> Result<()> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| TokenizerError::Read { path, source })
        };
        let json = self.inner.to_string(true).map_err(|e| TokenizerError::Load { path: dir.join("tokenizer.json"), message: one_line(&e.to_string()) })?;
        write("tokenizer.json", json)?;
        let mut config = serde_json::Map::new();
        for (field, token) in &self.special_tokens {
            config.insert(field.clone(), Json::String(token.clone()));
        }
        if let Some(t) = &self.chat_template {
            config.insert("chat_template".into(), Json::String(t.source().to_string()));
        }
        write("tokenizer_config.json", serde_json::to_string_pretty(&Json::Object(config)).expect("JSON"))?;
        let eos = self.stop_token_ids();
        write("generation_config.json", serde_json::json!({ "eos_token_id": eos }).to_string())?;
        Ok(())
    }

    fn from_tokenizer_json_bytes(tokenizer_path: PathBuf, bytes: &[u8]) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError::Load {
            path: tokenizer_path.clone(),
            message: one_line(&e.to_string()),
        })?;
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&max| max as usize + 1);
        Ok(Tokenizer {
            inner,
            tokenizer_path,
            special_tokens: Vec::new(),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            generation_eos_ids: Vec::new(),
            vocab_size,
            chat_template: None,
        })
    }

    fn read_tokenizer_config(&mut self, path: &Path) -> Result<()> {
        let config = read_json_object(path)?;
        self.apply_tokenizer_config(path, config)
    }

    fn apply_tokenizer_config(
        &mut self,
        path: &Path,
        config: serde_json::Map<String, Json>,
    ) -> Result<()> {
        for field in SPECIAL_TOKEN_FIELDS {
            let Some(token) = special_token_text(path, field, config.get(field))? else {
                continue;
            };
            let id = self.inner.token_to_id(&token);
            match field {
                "bos_token" => self.bos_token_id = Some(self.require_id(path, field, &token, id)?),
                "eos_token" => self.eos_token_id = Some(self.require_id(path, field, &token, id)?),
                "pad_token" => self.pad_token_id = Some(self.require_id(path, field, &token, id)?),
                _ => {}
            }
            self.special_tokens.push((field.to_string(), token));
        }
        if let Some(value) = config.get("chat_template") {
            let source = select_chat_template(path, value)?;
            self.chat_template = Some(template::ChatTemplate::new(path.to_path_buf(), source));
        }
        Ok(())
    }

    fn require_id(&self, path: &Path, field: &str, token: &str, id: Option<u32>) -> Result<u32> {
        id.ok_or_else(|| TokenizerError::BadField {
            path: path.to_path_buf(),
            field: field.to_string(),
            problem: format!(
                "token {token:?} is not in the vocabulary of {}",
                self.tokenizer_path.display()
            ),
        })
    }

    /// Token ids of `text`; `add_special_tokens` applies tokenizer.json's post-processor (a BOS
    /// for some tokenizers, nothing for Qwen and SmolLM2).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding =
            self.inner
                .encode(text, add_special_tokens)
                .map_err(|e| TokenizerError::Encode {
                    message: one_line(&e.to_string()),
                })?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode {
                message: one_line(&e.to_string()),
            })
    }

    /// Largest token id + 1, added tokens included: the embedding rows the model needs at least.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_token_id
    }

    /// tokenizer_config.json's `eos_token`, else the first of generation_config.json's.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_id
    }

    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token_id
    }

    /// Ids that end generation: generation_config.json's `eos_token_id` (one or several) and the
    /// tokenizer's EOS, without repeats.
    pub fn stop_token_ids(&self) -> Vec<u32> {
        let mut ids = self.generation_eos_ids.clone();
        ids.extend(self.eos_token_id);
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        ids
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// The underlying `tokenizers` tokenizer, for batch encoding or offsets.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Renders the chat template as transformers' `apply_chat_template(..., tokenize=False)` does.
    /// `extra` adds template variables (`enable_thinking`, `tools`, `date_string`, ...); they
    /// override the special tokens, as in transformers.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: Option<&serde_json::Map<String, Json>>,
    ) -> Result<String> {
        let template =
            self.chat_template
                .as_ref()
                .ok_or_else(|| TokenizerError::NoChatTemplate {
                    source_name: self.tokenizer_path.display().to_string(),
                })?;
        template.render(messages, add_generation_prompt, &self.special_tokens, extra)
    }

    /// The rendered chat's token ids, encoded without adding special tokens again (the template
    /// already wrote them): equal to transformers' `apply_chat_template(..., tokenize=True)`.
    pub fn encode_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: Option<&serde_json::Map<String, Json>>,
    ) -> Result<Vec<u32>> {
        let text = self.apply_chat_template(messages, add_generation_prompt, extra)?;
        self.encode(&text, false)
    }

    /// Fails when some token id (added tokens included) has no row in a model embedding of
    /// `model_vocab_rows` rows. More rows than tokens is fine (Qwen pads its embeddings).
    pub fn check_vocab_fits(&self, model_vocab_rows: usize) -> Result<()> {
        if self.vocab_size <= model_vocab_rows {
            return Ok(());
        }
        let vocab = self.inner.get_vocab(true);
        let outside: Vec<(&String, &u32)> = vocab
            .iter()
            .filter(|&(_, &id)| id as usize >= model_vocab_rows)
            .collect();
        let Some((token, &id)) = outside.iter().copied().max_by_key(|&(_, id)| *id) else {
            return Ok(());
        };
        Err(TokenizerError::TokenIdOutOfRange {
            path: self.tokenizer_path.clone(),
            id,
            token: token.clone(),
            rows: model_vocab_rows,
            count: outside.len(),
        })
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| io_error(path, source))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> TokenizerError {
    if source.kind() == std::io::ErrorKind::NotFound {
        TokenizerError::MissingFile {
            path: path.to_path_buf(),
        }
    } else {
        TokenizerError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn read_json_object(path: &Path) -> Result<serde_json::Map<String, Json>> {
    let text = read_text(path)?;
    parse_json_object(path, &text)
}

fn parse_json_object(path: &Path, text: &str) -> Result<serde_json::Map<String, Json>> {
    match serde_json::from_str(text) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err(TokenizerError::Json {
            path: path.to_path_buf(),
            message: "expected a JSON object".into(),
        }),
        Err(e) => Err(TokenizerError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// A special token field: a string, an AddedToken object `{"content": ...}`, or null/absent.
fn special_token_text(path: &Path, field: &str, value: Option<&Json>) -> Result<Option<String>> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => Ok(Some(text.clone())),
        Some(Json::Object(map)) => match map.get("content") {
            Some(Json::String(text)) => Ok(Some(text.clone())),
            _ => Err(bad_field(
                path,
                field,
                "an AddedToken object without a string `content`",
            )),
        },
        Some(other) => Err(bad_field(
            path,
            field,
            &format!("expected a string or {{\"content\": ...}}, found {other}"),
        )),
    }
}

/// `chat_template` is a string, or a list of `{name, template}` of which transformers uses "default".
fn select_chat_template(path: &Path, value: &Json) -> Result<String> {
    match value {
        Json::String(source) => Ok(source.clone()),
        Json::Array(entries) => {
            let mut names = Vec::new();
            for entry in entries {
                let name = entry.get("name").and_then(Json::as_str);
                let source = entry.get("template").and_then(Json::as_str);
                match (name, source) {
                    (Some("default"), Some(source)) => return Ok(source.to_string()),
                    (Some(name), Some(_)) => names.push(name.to_string()),
                    _ => {
                        return Err(bad_field(
                            path,
                            "chat_template",
                            "a list entry without string `name` and `template`",
                        ));
                    }
                }
            }
            Err(bad_field(
                path,
                "chat_template",
                &format!("no template named \"default\" among {names:?}"),
            ))
        }
        other => Err(bad_field(
            path,
            "chat_template",
            &format!("expected a string or a list, found {other}"),
        )),
    }
}

/// generation_config.json's `eos_token_id`: an int, a list of ints, null or absent.
fn read_generation_eos_ids(path: &Path) -> Result<Vec<u32>> {
    generation_eos_ids(path, &read_json_object(path)?)
}

fn generation_eos_ids(path: &Path, config: &serde_json::Map<String, Json>) -> Result<Vec<u32>> {
    let as_id = |value: &Json| value.as_u64().and_then(|id| u32::try_from(id).ok());
    match config.get("eos_token_id") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(values)) => values
            .iter()
            .map(|value| {
                as_id(value).ok_or_else(|| {
                    bad_field(path, "eos_token_id", &format!("{value} is not a token id"))
                })
            })
            .collect(),
        Some(value) => as_id(value).map(|id| vec![id]).ok_or_else(|| {
            bad_field(
                path,
                "eos_token_id",
                &format!("{value} is not a token id or a list of them"),
            )
        }),
    }
}

fn bad_field(path: &Path, field: &str, problem: &str) -> TokenizerError {
    TokenizerError::BadField {
        path: path.to_path_buf(),
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

/// Library errors sometimes span lines; error messages here are one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
