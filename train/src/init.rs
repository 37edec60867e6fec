//! Fresh models: a randomly initialized transformer of any shape as a Hugging Face directory,
//! with a tokenizer copied from elsewhere or trained here (byte-level BPE with the `tokenizers`
//! crate's `BpeTrainer`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use r1kit_model::burn::prelude::*;
use r1kit_model::config::ModelConfig;
use r1kit_model::{save_model_dir, Model, SaveDtype};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

/// Tokens with their own ids that the tokenizer treats as special (skipped when decoding).
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// R1 template tags: single tokens, but kept in decoded text (the format reward reads them).
pub const TAG_TOKENS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];

/// ChatML, as Qwen writes it, without a default system prompt.
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/// Trains a byte-level BPE of `vocab_size` ids (specials and tags included) on `texts` and writes
/// tokenizer.json, tokenizer_config.json (ChatML template, EOS `<|endoftext|>`) and
/// generation_config.json (stops at `<|endoftext|>` and `<|im_end|>`) into `dir`.
pub fn train_tokenizer(texts: &[String], vocab_size: usize, dir: &Path) -> Result<()> {
    let minimum = 256 + SPECIAL_TOKENS.len() + TAG_TOKENS.len();
    if vocab_size < minimum {
        bail!("--vocab-size {vocab_size} is too small for a byte-level BPE: it needs at least {minimum} (256 bytes + special tokens)");
    }
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(t.to_string(), true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size - TAG_TOKENS.len())
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None::<tokenizers::NormalizerWrapper>)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevelDecoder::default()))
        .build()
        .map_err(|e| anyhow::anyhow!("building the tokenizer: {e}"))?;
    tokenizer.train(&mut trainer, texts.iter()).map_err(|e| anyhow::anyhow!("training the tokenizer: {e}"))?;
    let mut tokenizer: tokenizers::Tokenizer = tokenizer.into();
    tokenizer.add_tokens(&TAG_TOKENS.iter().map(|t| AddedToken::from(t.to_string(), false)).collect::<Vec<_>>());
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tokenizer.save(dir.join("tokenizer.json"), true).map_err(|e| anyhow::anyhow!("writing tokenizer.json: {e}"))?;
    let id = |t: &str| tokenizer.token_to_id(t).expect("added above");
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": null,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": null,
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": false,
        "chat_template": CHATML_TEMPLATE,
    });
    write_json(&dir.join("tokenizer_config.json"), &config)?;
    let generation = serde_json::json!({"eos_token_id": [id("<|endoftext|>"), id("<|im_end|>")], "pad_token_id": id("<|endoftext|>")});
    write_json(&dir.join("generation_config.json"), &generation)?;
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Copies a tokenizer (a tokenizer.json file, or a directory with one and its companions) to `dir`.
pub fn copy_tokenizer(from: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let source_dir = if from.is_dir() { from.to_path_buf() } else { from.parent().map(Path::to_path_buf).unwrap_or_default() };
    let json = if from.is_dir() { from.join("tokenizer.json") } else { from.to_path_buf() };
    if !json.exists() {
        bail!("{}: no tokenizer.json", from.display());
    }
    std::fs::copy(&json, dir.join("tokenizer.json")).with_context(|| format!("copying {}", json.display()))?;
    for file in ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"] {
        let src = source_dir.join(file);
        if src.exists() {
            std::fs::copy(&src, dir.join(file)).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

/// Shape of a new model. `arch` is `qwen2`, `qwen3`, `llama` or a preset name (`tiny`,
/// `smollm2-135m`, ...), whose values the other fields override.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub arch: String,
    pub hidden: Option<usize>,
    pub layers: Option<usize>,
    pub heads: Option<usize>,
    pub kv_heads: Option<usize>,
    pub intermediate: Option<usize>,
    pub vocab_size: Option<usize>,
    pub max_positions: Option<usize>,
    pub tie_embeddings: Option<bool>,
}

/// The model config for `shape`; `min_vocab` (the tokenizer's size) bounds the vocabulary from
/// below, and an unset vocabulary is `min_vocab` rounded up to a multiple of 64.
pub fn model_config(shape: &Shape, min_vocab: usize, eos_ids: &[u32]) -> Result<ModelConfig> {
    let mut json = match shape.arch.as_str() {
        "qwen2" | "qwen3" | "llama" => serde_json::json!({"model_type": shape.arch, "hidden_size": 256, "num_hidden_layers": 4,
            "num_attention_heads": 4, "intermediate_size": 768, "vocab_size": 0, "tie_word_embeddings": true,
            "max_position_embeddings": 4096, "rope_theta": 10000.0}),
        preset => {
            let config = ModelConfig::preset(preset).with_context(|| {
                format!("unknown --shape `{preset}` (qwen2, qwen3, llama or a preset: {})", r1kit_model::config::PRESET_SHAPES.join(", "))
            })?;
            config.to_hf_json()
        }
    };
    let obj = json.as_object_mut().expect("object");
    let set = |obj: &mut serde_json::Map<String, serde_json::Value>, key: &str, v: Option<usize>| {
        if let Some(v) = v {
            obj.insert(key.into(), v.into());
        }
    };
    set(obj, "hidden_size", shape.hidden);
    set(obj, "num_hidden_layers", shape.layers);
    set(obj, "num_attention_heads", shape.heads);
    set(obj, "intermediate_size", shape.intermediate);
    set(obj, "max_position_embeddings", shape.max_positions);
    let heads = obj["num_attention_heads"].as_u64().unwrap_or(1) as usize;
    obj.insert("num_key_value_heads".into(), shape.kv_heads.unwrap_or(heads).into());
    if shape.hidden.is_some() || shape.heads.is_some() {
        obj.remove("head_dim"); // a preset's head_dim no longer fits the new width
    }
    let preset_vocab = obj["vocab_size"].as_u64().unwrap_or(0) as usize;
    let vocab = shape.vocab_size.unwrap_or(if preset_vocab >= min_vocab { preset_vocab } else { min_vocab.div_ceil(64) * 64 });
    if vocab < min_vocab {
        bail!("--vocab-size {vocab} is smaller than the tokenizer's {min_vocab} ids");
    }
    obj.insert("vocab_size".into(), vocab.into());
    if let Some(tie) = shape.tie_embeddings {
        obj.insert("tie_word_embeddings".into(), tie.into());
    }
    if !eos_ids.is_empty() {
        obj.insert("eos_token_id".into(), serde_json::json!(eos_ids));
    }
    ModelConfig::from_json(&json).map_err(|e| anyhow::anyhow!("model shape: {e}"))
}

/// A random model (weights ~ N(0, init_std), as transformers' `initializer_range`) saved with the
/// tokenizer files of `tokenizer_dir` as a Hugging Face directory at `out`.
pub fn write_random_model(config: ModelConfig, init_std: f64, seed: u64, tokenizer_dir: &Path, out: &Path) -> Result<Model> {
    let model = Model::init_random(config, &Device::flex(), init_std, seed);
    save_model_dir(&model, out, SaveDtype::F32, Some(tokenizer_dir))?;
    Ok(model)
}

/// A scratch directory beside `out` for the tokenizer files, removed by the caller.
pub fn scratch_beside(out: &Path, tag: &str) -> PathBuf {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    parent.join(format!(".{name}.{tag}-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1kit_model::tokenizer::{ChatMessage, Tokenizer};

    fn corpus() -> Vec<String> {
        (0..300).map(|i| format!("User: what is {i} + {}?\nAssistant: <think>\n{i}+{}={}\n</think>\n<answer>{}</answer>", i * 7 % 100, i * 7 % 100, i + i * 7 % 100, i + i * 7 % 100)).collect()
    }

    #[test]
    fn trained_tokenizer_round_trips_and_has_the_chat_template_and_tags() {
        let dir = tempfile::tempdir().unwrap();
        train_tokenizer(&corpus(), 400, dir.path()).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert!(tok.vocab_size() <= 400 && tok.vocab_size() > 300, "{}", tok.vocab_size());
        let text = "<think>\n12+34=46\n</think>\n<answer>46</answer>";
        let ids = tok.encode(text, true).unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), text, "tags survive decoding with specials skipped");
        assert!(ids.contains(&tok.token_to_id("<think>").unwrap()), "tags are single tokens");
        assert!(ids.len() < text.len() / 2, "merges compress the text: {} ids for {} bytes", ids.len(), text.len());
        let eos = tok.eos_token_id().unwrap();
        assert_eq!(tok.id_to_token(eos).as_deref(), Some("<|endoftext|>"));
        assert!(tok.stop_token_ids().contains(&tok.token_to_id("<|im_end|>").unwrap()));
        let chat = tok.apply_chat_template(&[ChatMessage::new("user", "1+1?")], true, None).unwrap();
        assert_eq!(chat, "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n");
        assert!(train_tokenizer(&corpus(), 100, dir.path()).is_err());
    }

    #[test]
    fn shapes_from_arch_or_preset_with_overrides() {
        let shape = Shape { arch: "llama".into(), hidden: Some(64), layers: Some(2), heads: Some(4), kv_heads: Some(2), intermediate: Some(128), ..Default::default() };
        let c = model_config(&shape, 300, &[1, 2]).unwrap();
        assert_eq!((c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size), (64, 2, 4, 2, 16, 320));
        assert_eq!(c.eos_token_ids, vec![1, 2]);
        let c = model_config(&Shape { arch: "tiny".into(), layers: Some(1), ..Default::default() }, 300, &[]).unwrap();
        assert_eq!((c.hidden_size, c.num_layers, c.vocab_size), (128, 1, 512));
        assert!(model_config(&Shape { arch: "gpt2".into(), ..Default::default() }, 300, &[]).unwrap_err().to_string().contains("unknown --shape"));
        assert!(model_config(&Shape { arch: "qwen2".into(), vocab_size: Some(100), ..Default::default() }, 300, &[]).is_err());
    }
}
