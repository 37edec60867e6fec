//! Hugging Face checkpoint directories in and out: `config.json`, `model.safetensors` (or shards
//! with `model.safetensors.index.json`), f32 / bf16 / f16 on disk; saving writes a directory that
//! transformers loads, atomically (a temporary sibling directory, then a rename).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::transformer::Model;

/// Files copied along with the weights when a model directory is saved.
pub const TOKENIZER_FILES: [&str; 5] =
    ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"];

/// Storage dtype for saved weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    Bf16,
}

impl SaveDtype {
    fn hf_name(self) -> &'static str {
        match self {
            SaveDtype::F32 => "float32",
            SaveDtype::Bf16 => "bfloat16",
        }
    }
}

/// Loads `dir/config.json` and its safetensors weights onto `device` as f32.
pub fn load_model_dir(dir: &Path, device: &Device) -> Result<Model> {
    if !dir.is_dir() {
        return Err(ModelError::checkpoint(dir, "not a directory (expected a Hugging Face model directory with config.json)"));
    }
    let config = ModelConfig::from_file(&dir.join("config.json"))?;
    let mut shards = WeightFiles::open(dir)?;
    Model::build(config, |name, shape| {
        let (path, values, file_shape) = shards.read_f32(name)?;
        let numel: usize = file_shape.iter().product();
        if numel != shape[0] * shape[1] || (file_shape.len() == 2 && file_shape != shape) {
            return Err(ModelError::checkpoint(
                &path,
                format!("tensor '{name}' has shape {file_shape:?}, config.json implies {:?}", strip_unit(shape)),
            ));
        }
        Ok(Tensor::<2>::from_data(TensorData::new(values, shape), device))
    })
}

fn strip_unit(shape: [usize; 2]) -> Vec<usize> {
    if shape[0] == 1 { vec![shape[1]] } else { shape.to_vec() }
}

/// The safetensors files of a model directory, read lazily, one file at a time in memory.
struct WeightFiles {
    /// tensor name -> file
    index: HashMap<String, PathBuf>,
    loaded: Option<(PathBuf, Vec<u8>)>,
}

impl WeightFiles {
    fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let mut index = HashMap::new();
        if index_path.exists() {
            let value: serde_json::Value = crate::error::read_json(&index_path)?;
            let map = value
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ModelError::checkpoint(&index_path, "no 'weight_map' object"))?;
            for (name, file) in map {
                let file = file.as_str().ok_or_else(|| ModelError::checkpoint(&index_path, format!("weight_map['{name}'] is not a file name")))?;
                index.insert(name.clone(), dir.join(file));
            }
        } else if single.exists() {
            let bytes = std::fs::read(&single).map_err(|e| ModelError::io(&single, e))?;
            let names = parse(&single, &bytes)?.names().into_iter().map(String::from).collect::<Vec<_>>();
            for name in names {
                index.insert(name, single.clone());
            }
            return Ok(WeightFiles { index, loaded: Some((single, bytes)) });
        } else {
            return Err(ModelError::checkpoint(dir, "no model.safetensors or model.safetensors.index.json"));
        }
        Ok(WeightFiles { index, loaded: None })
    }

    /// Reads one tensor as f32, returning the file it came from and its shape on disk.
    fn read_f32(&mut self, name: &str) -> Result<(PathBuf, Vec<f32>, Vec<usize>)> {
        let path = self.index.get(name).cloned().ok_or_else(|| {
            let any = self.index.values().next().cloned().unwrap_or_default();
            ModelError::checkpoint(&any, format!("tensor '{name}' is missing"))
        })?;
        if self.loaded.as_ref().map(|(p, _)| p != &path).unwrap_or(true) {
            let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
            self.loaded = Some((path.clone(), bytes));
        }
        let (_, bytes) = self.loaded.as_ref().expect("just loaded");
        let st = parse(&path, bytes)?;
        let view = st.tensor(name).map_err(|e| ModelError::checkpoint(&path, format!("tensor '{name}': {e}")))?;
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(ModelError::checkpoint(&path, format!("tensor '{name}' has dtype {other:?}; r1kit reads F32, BF16 and F16"))),
        };
        Ok((path, values, view.shape().to_vec()))
    }
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| ModelError::checkpoint(path, format!("not a valid safetensors file ({e}); truncated or corrupt?")))
}

/// Writes `model` as a Hugging Face directory at `out`: config.json, model.safetensors and the
/// tokenizer / generation files found in `tokenizer_dir`. The directory appears whole or not at all.
pub fn save_model_dir(model: &Model, out: &Path, dtype: SaveDtype, tokenizer_dir: Option<&Path>) -> Result<()> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    let file_name = out.file_name().ok_or_else(|| ModelError::Invalid(format!("{}: not a directory name", out.display())))?;
    let tmp = parent.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    let result = write_dir_contents(model, &tmp, dtype, tokenizer_dir);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        // Replace an older copy: move it aside first so that `out` is never half-written.
        let old = parent.join(format!(".{}.old-{}", file_name.to_string_lossy(), std::process::id()));
        std::fs::rename(out, &old).map_err(|e| ModelError::io(out, e))?;
        std::fs::rename(&tmp, out).map_err(|e| ModelError::io(out, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, out).map_err(|e| ModelError::io(out, e))?;
    }
    Ok(())
}

fn write_dir_contents(model: &Model, dir: &Path, dtype: SaveDtype, tokenizer_dir: Option<&Path>) -> Result<()> {
    let mut config = model.config.clone();
    config.dtype = dtype.hf_name().to_string();
    let config_path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config.to_hf_json()).expect("config serializes");
    std::fs::write(&config_path, text).map_err(|e| ModelError::io(&config_path, e))?;

    let specs: BTreeMap<String, Vec<usize>> = crate::transformer::parameter_specs(&model.config).into_iter().collect();
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (name, tensor) in model.parameters() {
        let values = tensor.into_data().try_into_vec_as::<f32>().map_err(|e| ModelError::Invalid(format!("reading '{name}': {e:?}")))?;
        let bytes: Vec<u8> = match dtype {
            SaveDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            SaveDtype::Bf16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
        };
        let shape = specs[&name].clone();
        tensors.push((name, bytes, shape));
    }
    let st_dtype = match dtype {
        SaveDtype::F32 => Dtype::F32,
        SaveDtype::Bf16 => Dtype::BF16,
    };
    let views = tensors
        .iter()
        .map(|(name, bytes, shape)| {
            let view = safetensors::tensor::TensorView::new(st_dtype, shape.clone(), bytes)
                .map_err(|e| ModelError::Invalid(format!("tensor '{name}': {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, Some(metadata), &weights)
        .map_err(|e| ModelError::checkpoint(&weights, format!("writing failed: {e}")))?;

    if let Some(src) = tokenizer_dir {
        for file in TOKENIZER_FILES {
            let from = src.join(file);
            if from.exists() {
                let to = dir.join(file);
                std::fs::copy(&from, &to).map_err(|e| ModelError::io(&from, e))?;
            }
        }
    }
    Ok(())
}
