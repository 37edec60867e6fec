//! GGUF checkpoints (llama.cpp's format): read the container, dequantize the weights to f32,
//! map llama / qwen2 / qwen3 tensors onto the Hugging Face parameters of [`Model`], rebuild the
//! tokenizer from the file's own metadata, and convert the whole to a Hugging Face directory.
//!
//! ```no_run
//! # use r1kit_model::burn::prelude::Device;
//! let (model, tokenizer) = r1kit_model::gguf::load_gguf_model("model.gguf".as_ref(), &Device::flex())?;
//! r1kit_model::gguf::convert_gguf_to_hf("model.gguf".as_ref(), "out/".as_ref(), r1kit_model::SaveDtype::Bf16)?;
//! # Ok::<(), r1kit_model::ModelError>(())
//! ```

mod dequant;
mod hf_tokenizer;
mod mapping;
mod reader;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use burn::prelude::*;

pub use dequant::{dequantize, GgmlType};
pub use hf_tokenizer::{GgufTokenizerSpec, HfTokenizerFiles};
pub use mapping::{gguf_tensor_name, unpermute_rows};
pub use reader::{MetadataValue, TensorInfo};

use crate::checkpoint::{save_model_dir, SaveDtype};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;
use crate::transformer::Model;

/// An opened GGUF file: its header in memory, tensor data read on demand.
pub struct GgufFile {
    path: PathBuf,
    header: reader::Header,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("metadata_keys", &self.header.metadata.len())
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Reads and checks the header (metadata, tensor infos, that every tensor lies in the file).
    pub fn open(path: &Path) -> Result<GgufFile> {
        let header = reader::read_header(path)?;
        let mut by_name = HashMap::with_capacity(header.tensors.len());
        for (i, t) in header.tensors.iter().enumerate() {
            if by_name.insert(t.name.clone(), i).is_some() {
                return Err(ModelError::checkpoint(path, format!("not a valid GGUF file: tensor '{}' appears twice", t.name)));
            }
        }
        Ok(GgufFile { path: path.to_path_buf(), header, by_name })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.header.version
    }

    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Absolute file offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// Every metadata key/value, in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.header.metadata
    }

    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.header.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.header.tensors[i])
    }

    fn error(&self, message: impl Into<String>) -> ModelError {
        ModelError::checkpoint(&self.path, message)
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name).ok_or_else(|| self.error(format!("no tensor '{name}'")))
    }

    /// The raw bytes of a tensor, as stored.
    pub fn read_tensor_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let info = self.info(name)?;
        let len = info.byte_len.ok_or_else(|| self.error(format!("tensor '{name}' has type {}, which r1kit cannot read", info.ggml_type)))?;
        let mut file = std::fs::File::open(&self.path).map_err(|e| ModelError::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.header.data_offset + info.offset)).map_err(|e| ModelError::io(&self.path, e))?;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact(&mut bytes).map_err(|e| self.error(format!("reading tensor '{name}': {e}")))?;
        Ok(bytes)
    }

    /// A tensor dequantized to f32, in ggml order (`dims[0]` fastest, i.e. row-major `[.., dims[1], dims[0]]`).
    pub fn read_tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        if !info.ggml_type.can_dequantize() {
            return Err(self.error(format!(
                "tensor '{name}' has type {}, which r1kit does not dequantize (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q3_K, Q4_K, Q5_K, Q6_K)",
                info.ggml_type
            )));
        }
        let bytes = self.read_tensor_bytes(name)?;
        let mut values = vec![0f32; info.num_elements() as usize];
        dequantize_parallel(info.ggml_type, &bytes, &mut values).map_err(|m| self.error(format!("tensor '{name}': {m}")))?;
        Ok(values)
    }

    fn meta_string(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.error(format!("metadata '{key}' is a {}, expected a string", v.type_name()))),
        }
    }

    fn meta_id(&self, key: &str) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| self.error(format!("metadata '{key}' is {v:?}, expected a token id"))),
        }
    }

    fn string_array(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let items = v.as_array().ok_or_else(|| self.error(format!("metadata '{key}' is a {}, expected an array of strings", v.type_name())))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| item.as_str().map(String::from).ok_or_else(|| self.error(format!("metadata '{key}'[{i}] is a {}, expected a string", item.type_name()))))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.meta_string("general.architecture")?.ok_or_else(|| self.error("missing metadata 'general.architecture'"))
    }

    /// The model's configuration from `{arch}.*` metadata (validated as a config.json would be).
    pub fn model_config(&self) -> Result<ModelConfig> {
        let json = mapping::hf_config_json(self).map_err(|m| self.error(m))?;
        ModelConfig::from_json(&json).map_err(|m| self.error(format!("metadata gives an invalid config: {m}")))
    }

    /// Dequantizes every parameter onto `device` as f32.
    pub fn load_model(&self, device: &Device) -> Result<Model> {
        let config = self.model_config()?;
        let shape = config.clone();
        Model::build(config, |hf_name, [rows, cols]| {
            let values = self.read_parameter(&shape, hf_name, rows, cols)?;
            Ok(Tensor::<2>::from_data(TensorData::new(values, [rows, cols]), device))
        })
    }

    /// One Hugging Face parameter (`[rows, cols]`, vectors as one row), from its GGUF tensor.
    fn read_parameter(&self, config: &ModelConfig, hf_name: &str, rows: usize, cols: usize) -> Result<Vec<f32>> {
        let gguf_name = gguf_tensor_name(hf_name).ok_or_else(|| self.error(format!("no GGUF tensor name for parameter '{hf_name}'")))?;
        let info = self.tensor(&gguf_name).ok_or_else(|| self.error(format!("tensor '{gguf_name}' (for '{hf_name}') is missing")))?;
        // ggml lists dimensions fastest first: HF [out, in] is ggml [in, out]; trailing 1s are padding.
        let mut dims: Vec<u64> = info.dims.clone();
        while dims.len() > 1 && dims.last() == Some(&1) {
            dims.pop();
        }
        let expected: Vec<u64> = if rows == 1 { vec![cols as u64] } else { vec![cols as u64, rows as u64] };
        if dims != expected {
            return Err(self.error(format!(
                "tensor '{gguf_name}' has ggml dims {:?}, the metadata implies {expected:?} for '{hf_name}'",
                info.dims
            )));
        }
        let values = self.read_tensor_f32(&gguf_name)?;
        match mapping::permuted_heads(config.arch, hf_name, config.num_heads, config.num_kv_heads) {
            None => Ok(values),
            // A bias is permuted like a weight whose rows have one value each.
            Some(n_head) => {
                let permuted_rows = if rows == 1 { cols } else { rows };
                unpermute_rows(&values, permuted_rows, n_head).map_err(|m| self.error(format!("tensor '{gguf_name}': {m}")))
            }
        }
    }

    /// The `tokenizer.ggml.*` metadata, checked for types.
    pub fn tokenizer_spec(&self) -> Result<GgufTokenizerSpec> {
        let model = self.meta_string("tokenizer.ggml.model")?.ok_or_else(|| self.error("no tokenizer in the metadata ('tokenizer.ggml.model' is missing)"))?;
        let tokens = self.string_array("tokenizer.ggml.tokens")?.ok_or_else(|| self.error("missing metadata 'tokenizer.ggml.tokens'"))?;
        let token_types = match self.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .and_then(|items| items.iter().map(MetadataValue::as_i64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| self.error("metadata 'tokenizer.ggml.token_type' is not an array of integers"))?,
        };
        let add_bos = match self.get("tokenizer.ggml.add_bos_token") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| self.error(format!("metadata 'tokenizer.ggml.add_bos_token' is a {}, expected a bool", v.type_name())))?,
        };
        Ok(GgufTokenizerSpec {
            model: model.to_string(),
            pre: self.meta_string("tokenizer.ggml.pre")?.map(String::from),
            tokens,
            token_types,
            merges: self.string_array("tokenizer.ggml.merges")?.unwrap_or_default(),
            bos_id: self.meta_id("tokenizer.ggml.bos_token_id")?,
            eos_id: self.meta_id("tokenizer.ggml.eos_token_id")?,
            eot_id: self.meta_id("tokenizer.ggml.eot_token_id")?,
            pad_id: self.meta_id("tokenizer.ggml.padding_token_id")?,
            unk_id: self.meta_id("tokenizer.ggml.unknown_token_id")?,
            add_bos,
            chat_template: self.meta_string("tokenizer.chat_template")?.map(String::from),
        })
    }

    /// tokenizer.json, tokenizer_config.json and generation_config.json rebuilt from the metadata.
    pub fn hf_tokenizer_files(&self) -> Result<HfTokenizerFiles> {
        self.tokenizer_spec()?.to_hf_files().map_err(|m| self.error(m))
    }

    /// The tokenizer (with chat template and stop ids) built from the file's own metadata.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let files = self.hf_tokenizer_files()?;
        let tokenizer = Tokenizer::from_json_strings(
            &files.tokenizer_json,
            Some(&files.tokenizer_config_json),
            Some(&files.generation_config_json),
            &self.path.display().to_string(),
        )?;
        Ok(tokenizer)
    }
}

impl mapping::MetadataSource for GgufFile {
    fn meta_u64(&self, key: &str) -> std::result::Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| format!("metadata '{key}' is {v:?}, expected a non-negative integer")),
        }
    }
    fn meta_f64(&self, key: &str) -> std::result::Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| format!("metadata '{key}' is {v:?}, expected a number")),
        }
    }
    fn meta_str(&self, key: &str) -> std::result::Result<Option<&str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| format!("metadata '{key}' is a {}, expected a string", v.type_name())),
        }
    }
    fn has_tensor(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
    fn tensor_values(&self, name: &str) -> std::result::Result<Option<Vec<f32>>, String> {
        if !self.has_tensor(name) {
            return Ok(None);
        }
        self.read_tensor_f32(name).map(Some).map_err(|e| e.to_string())
    }
    /// The embedding's rows (what the weights need), else the token list's length.
    fn vocab_len(&self) -> Option<usize> {
        match self.tensor("token_embd.weight") {
            Some(t) if t.dims.len() >= 2 => Some(t.dims[1] as usize),
            _ => self.get("tokenizer.ggml.tokens").and_then(MetadataValue::as_array).map(<[_]>::len),
        }
    }
}

/// Dequantizes on all cores for large tensors (loading a 0.5B model is ~0.5 G values).
fn dequantize_parallel(ty: GgmlType, data: &[u8], out: &mut [f32]) -> std::result::Result<(), String> {
    const MIN_BLOCKS_PER_THREAD: usize = 4096;
    let (block_values, block_bytes) = ty.block_layout().ok_or_else(|| format!("{ty} is not a type r1kit knows"))?;
    let blocks = out.len() / block_values;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(blocks / MIN_BLOCKS_PER_THREAD).max(1);
    if threads == 1 || out.len() % block_values != 0 || data.len() != blocks * block_bytes {
        return dequantize(ty, data, out);
    }
    let per_thread = blocks.div_ceil(threads);
    std::thread::scope(|scope| {
        let jobs: Vec<_> = data
            .chunks(per_thread * block_bytes)
            .zip(out.chunks_mut(per_thread * block_values))
            .map(|(d, o)| scope.spawn(move || dequantize(ty, d, o)))
            .collect();
        jobs.into_iter().try_for_each(|j| j.join().unwrap_or_else(|_| Err("dequantization thread panicked".into())))
    })
}

/// Loads a GGUF file's weights (as f32, on `device`) and its tokenizer (from the metadata).
pub fn load_gguf_model(path: &Path, device: &Device) -> Result<(Model, Tokenizer)> {
    let gguf = GgufFile::open(path)?;
    let tokenizer = gguf.tokenizer()?;
    let model = gguf.load_model(device)?;
    tokenizer.check_vocab_fits(model.config.vocab_size)?;
    Ok((model, tokenizer))
}

/// Writes the GGUF file at `gguf_path` as a Hugging Face directory `out_dir` (config.json,
/// model.safetensors in `dtype`, tokenizer.json, tokenizer_config.json, generation_config.json)
/// that `load_model_dir` and `Tokenizer::from_dir` (and transformers) read.
pub fn convert_gguf_to_hf(gguf_path: &Path, out_dir: &Path, dtype: SaveDtype) -> Result<()> {
    let gguf = GgufFile::open(gguf_path)?;
    let files = gguf.hf_tokenizer_files()?;
    // Check that the files load before writing anything.
    Tokenizer::from_json_strings(&files.tokenizer_json, Some(&files.tokenizer_config_json), Some(&files.generation_config_json), &gguf_path.display().to_string())?;
    let model = gguf.load_model(&Device::flex())?;

    // save_model_dir copies tokenizer files from a directory: stage them next to the output.
    let parent = out_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    let staging = parent.join(format!(".gguf-tokenizer-{}-{}", std::process::id(), out_dir.file_name().map_or("out".into(), |n| n.to_string_lossy())));
    std::fs::create_dir_all(&staging).map_err(|e| ModelError::io(&staging, e))?;
    let result = (|| {
        for (name, text) in [
            ("tokenizer.json", &files.tokenizer_json),
            ("tokenizer_config.json", &files.tokenizer_config_json),
            ("generation_config.json", &files.generation_config_json),
        ] {
            let path = staging.join(name);
            std::fs::write(&path, text).map_err(|e| ModelError::io(&path, e))?;
        }
        save_model_dir(&model, out_dir, dtype, Some(&staging))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}
