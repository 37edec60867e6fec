//! One entry point for "a model and its tokenizer from a path", used by every command and trainer:
//! a Hugging Face directory (tokenizer files inside, or given separately) or a GGUF file (its
//! tokenizer built from its metadata unless one is given).

use std::path::Path;

use burn::prelude::Device;

use crate::error::Result;
use crate::tokenizer::Tokenizer;
use crate::transformer::Model;

/// Loads a model and its tokenizer; `tokenizer` may be a tokenizer.json file or a directory.
/// Checks that every token id has an embedding row.
pub fn load_pretrained(model_path: &Path, tokenizer: Option<&Path>, device: &Device) -> Result<(Model, Tokenizer)> {
    if is_gguf(model_path) {
        let gguf = crate::gguf::GgufFile::open(model_path)?;
        let tokenizer = match tokenizer {
            None => gguf.tokenizer()?,
            Some(p) => load_tokenizer_file(p, model_path.parent().unwrap_or(Path::new(".")))?,
        };
        let model = gguf.load_model(device)?;
        tokenizer.check_vocab_fits(model.config.vocab_size)?;
        return Ok((model, tokenizer));
    }
    let tokenizer = load_tokenizer(model_path, tokenizer)?;
    let model = crate::checkpoint::load_model_dir(model_path, device)?;
    tokenizer.check_vocab_fits(model.config.vocab_size)?;
    Ok((model, tokenizer))
}

/// The tokenizer [`load_pretrained`] would load with the model, without the model: `tokenizer`
/// when given (a tokenizer.json file or a directory), else the model's (a GGUF file's from its
/// metadata).
pub fn load_tokenizer(model_path: &Path, tokenizer: Option<&Path>) -> Result<Tokenizer> {
    let model_dir = if model_path.is_dir() { model_path } else { model_path.parent().unwrap_or(Path::new(".")) };
    match tokenizer {
        Some(p) => load_tokenizer_file(p, model_dir),
        None if is_gguf(model_path) => crate::gguf::GgufFile::open(model_path)?.tokenizer(),
        None => Ok(Tokenizer::from_dir(model_dir)?),
    }
}

/// Stop ids for generation: the tokenizer's (EOS and generation_config.json) and the model config's.
pub fn stop_token_ids(model: &Model, tokenizer: &Tokenizer) -> Vec<u32> {
    let mut ids = tokenizer.stop_token_ids();
    for id in &model.config.eos_token_ids {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    ids
}

/// Whether a path names a GGUF file (by its extension).
pub fn is_gguf(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A tokenizer given explicitly: a directory, or a tokenizer.json with its tokenizer_config.json
/// beside it; stop ids from the model's generation_config.json when there is one.
fn load_tokenizer_file(path: &Path, model_dir: &Path) -> Result<Tokenizer> {
    if path.is_dir() {
        return Ok(Tokenizer::from_dir(path)?);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let config = dir.join("tokenizer_config.json");
    let generation = model_dir.join("generation_config.json");
    Ok(Tokenizer::from_files(path, config.exists().then_some(config.as_path()), generation.exists().then_some(generation.as_path()))?)
}
