//! The Hugging Face tokenizer files rebuilt from `tokenizer.ggml.*` metadata: `tokenizer.json`
//! (byte-level BPE with the pre-tokenizer llama.cpp's `tokenizer.ggml.pre` names),
//! `tokenizer_config.json` (special tokens, chat template) and `generation_config.json` (stop ids).

use serde_json::{json, Map, Value};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Control tokens that end a turn, recognised by their text as llama.cpp does (its EOG set);
/// the GGUF names only one eos id, Hugging Face's generation_config.json often lists several.
const END_OF_GENERATION_TEXTS: [&str; 7] =
    ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", "<end_of_turn>", "<|end|>"];

/// The tokenizer part of a GGUF's metadata, already checked for types.
#[derive(Debug, Clone)]
pub struct GgufTokenizerSpec {
    /// `tokenizer.ggml.model` (only `gpt2`, byte-level BPE, is supported)
    pub model: String,
    /// `tokenizer.ggml.pre`
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// One per token (`tokenizer.ggml.token_type`); empty when absent.
    pub token_types: Vec<i64>,
    /// "left right" pairs, in merge priority order.
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub eot_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
}

/// The three files' contents, as JSON text.
#[derive(Debug, Clone)]
pub struct HfTokenizerFiles {
    pub tokenizer_json: String,
    pub tokenizer_config_json: String,
    pub generation_config_json: String,
}

/// The split regexes of Qwen2's and Llama 3's tokenizer.json (they differ in digit runs).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// (normalizer, pre_tokenizer, ignore_merges) for a `tokenizer.ggml.pre` value, as the Hugging
/// Face tokenizer.json of the models llama.cpp gave that name to.
fn pre_tokenizer_for(pre: &str) -> Result<(Value, Value, bool), String> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |regex: &str| json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false});
    Ok(match pre {
        // llama.cpp splits these with GPT-2's regex alone.
        "gpt-2" | "gpt2" | "default" | "mpt" | "olmo" | "jais" => (Value::Null, byte_level(true), false),
        // SmolLM / SmolLM2, StarCoder and others: single digits, then GPT-2's byte-level regex.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            false,
        ),
        "qwen2" | "deepseek-r1-qwen" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false)]}),
            false,
        ),
        "llama-bpe" | "llama3" | "llama-v3" | "smaug-bpe" | "dbrx" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false)]}),
            true,
        ),
        other => {
            return Err(format!(
                "tokenizer.ggml.pre '{other}' is not supported (gpt-2, smollm, starcoder, qwen2, deepseek-r1-qwen, llama-bpe, ...); \
                 pass the model's tokenizer.json instead"
            ));
        }
    })
}

impl GgufTokenizerSpec {
    fn token_text(&self, id: Option<u32>) -> Option<&str> {
        id.and_then(|i| self.tokens.get(i as usize)).map(String::as_str)
    }

    fn token_type(&self, id: usize) -> i64 {
        self.token_types.get(id).copied().unwrap_or(1)
    }

    /// Checks ids and builds the three files.
    pub fn to_hf_files(&self) -> Result<HfTokenizerFiles, String> {
        if self.model != "gpt2" {
            return Err(format!(
                "tokenizer.ggml.model '{}' is not supported (only 'gpt2', byte-level BPE); pass the model's tokenizer.json instead",
                self.model
            ));
        }
        if !self.token_types.is_empty() && self.token_types.len() != self.tokens.len() {
            return Err(format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                self.token_types.len(),
                self.tokens.len()
            ));
        }
        for (field, id) in [("bos", self.bos_id), ("eos", self.eos_id), ("eot", self.eot_id), ("padding", self.pad_id), ("unknown", self.unk_id)] {
            if let Some(id) = id.filter(|&id| id as usize >= self.tokens.len()) {
                return Err(format!("tokenizer.ggml.{field}_token_id {id} is outside the {} tokens", self.tokens.len()));
            }
        }
        let pre = self.pre.as_deref().unwrap_or("default");
        let (normalizer, pre_tokenizer, ignore_merges) = pre_tokenizer_for(pre)?;
        if let Some((i, m)) = self.merges.iter().enumerate().find(|(_, m)| m.split(' ').count() != 2) {
            return Err(format!("tokenizer.ggml.merges[{i}] is {m:?}, expected two tokens separated by one space"));
        }

        let vocab: Map<String, Value> =
            self.tokens.iter().enumerate().map(|(id, t)| (t.clone(), Value::from(id))).collect();
        let added_tokens: Vec<Value> = (0..self.tokens.len())
            .filter(|&id| matches!(self.token_type(id), TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
            .map(|id| {
                json!({"id": id, "content": self.tokens[id], "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": false, "special": self.token_type(id) == TOKEN_TYPE_CONTROL})
            })
            .collect();
        let post_processor = match (self.add_bos, self.token_text(self.bos_id)) {
            (true, Some(bos)) => json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [self.bos_id], "tokens": [bos]}},
            }),
            _ => Value::Null,
        };
        let tokenizer = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_tokens,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
                "vocab": vocab, "merges": self.merges,
            },
        });

        let mut config = Map::new();
        config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        config.insert("add_bos_token".into(), self.add_bos.into());
        config.insert("clean_up_tokenization_spaces".into(), false.into());
        for (field, id) in [("bos_token", self.bos_id), ("eos_token", self.eos_id), ("pad_token", self.pad_id), ("unk_token", self.unk_id)] {
            if let Some(text) = self.token_text(id) {
                config.insert(field.into(), text.into());
            }
        }
        if let Some(template) = &self.chat_template {
            config.insert("chat_template".into(), template.clone().into());
        }

        let mut generation = Map::new();
        if let Some(bos) = self.bos_id {
            generation.insert("bos_token_id".into(), bos.into());
        }
        generation.insert("eos_token_id".into(), Value::from(self.stop_ids()));
        if let Some(pad) = self.pad_id {
            generation.insert("pad_token_id".into(), pad.into());
        }

        Ok(HfTokenizerFiles {
            tokenizer_json: serde_json::to_string(&tokenizer).expect("JSON values serialize"),
            tokenizer_config_json: serde_json::to_string_pretty(&Value::Object(config)).expect("JSON values serialize"),
            generation_config_json: serde_json::to_string_pretty(&Value::Object(generation)).expect("JSON values serialize"),
        })
    }

    /// eos, eot, then the control tokens llama.cpp treats as end of generation, without repeats.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.eos_id.into_iter().chain(self.eot_id).collect();
        for (id, token) in self.tokens.iter().enumerate() {
            if self.token_type(id) == TOKEN_TYPE_CONTROL && END_OF_GENERATION_TEXTS.contains(&token.as_str()) {
                ids.push(id as u32);
            }
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GgufTokenizerSpec {
        GgufTokenizerSpec {
            model: "gpt2".into(),
            pre: Some("qwen2".into()),
            tokens: ["a", "b", "ab", "<|im_end|>", "<tool>", "<|endoftext|>"].map(String::from).to_vec(),
            token_types: vec![1, 1, 1, 3, 4, 3],
            merges: vec!["a b".into()],
            bos_id: None,
            eos_id: Some(3),
            eot_id: None,
            pad_id: Some(5),
            unk_id: None,
            add_bos: false,
            chat_template: Some("{{ messages }}".into()),
        }
    }

    #[test]
    fn files_carry_added_tokens_and_stop_ids() {
        let files = spec().to_hf_files().unwrap();
        let tok: Value = serde_json::from_str(&files.tokenizer_json).unwrap();
        let added = tok["added_tokens"].as_array().unwrap();
        assert_eq!(added.len(), 3);
        assert_eq!(added[1]["content"], "<tool>");
        assert_eq!(added[1]["special"], false);
        assert_eq!(added[0]["special"], true);
        assert_eq!(tok["normalizer"]["type"], "NFC");
        let config: Value = serde_json::from_str(&files.tokenizer_config_json).unwrap();
        assert_eq!(config["eos_token"], "<|im_end|>");
        assert_eq!(config["pad_token"], "<|endoftext|>");
        let generation: Value = serde_json::from_str(&files.generation_config_json).unwrap();
        assert_eq!(generation["eos_token_id"], json!([3, 5]));
    }

    #[test]
    fn unsupported_tokenizers_and_bad_ids_are_errors() {
        let mut s = spec();
        s.model = "llama".into();
        assert!(s.to_hf_files().unwrap_err().contains("tokenizer.ggml.model 'llama' is not supported"));
        let mut s = spec();
        s.pre = Some("falcon".into());
        assert!(s.to_hf_files().unwrap_err().contains("tokenizer.ggml.pre 'falcon'"));
        let mut s = spec();
        s.eos_id = Some(60);
        assert!(s.to_hf_files().unwrap_err().contains("eos_token_id 60 is outside the 6 tokens"));
        let mut s = spec();
        s.merges.push("abc".into());
        assert!(s.to_hf_files().unwrap_err().contains("merges[1]"));
    }
}
