//! The model's shape and hyper-parameters, read from a Hugging Face `config.json`.
//!
//! Both dialects are accepted: the hub's (`rope_theta`, `rope_scaling`, `torch_dtype`) and
//! transformers 5's (`rope_parameters`, `dtype`). Unknown keys are ignored; a missing required key
//! or an unknown architecture is an error naming the file and the key.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ModelError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Qwen2 / Qwen2.5: q/k/v projections carry a bias.
    Qwen2,
    /// Qwen3: per-head RMSNorm on q and k, no bias, explicit head_dim.
    Qwen3,
    /// Llama 2/3.x: optional `llama3` rope scaling.
    Llama,
}

impl Arch {
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Llama => "llama",
        }
    }
    pub fn hf_class(self) -> &'static str {
        match self {
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Qwen3 => "Qwen3ForCausalLM",
            Arch::Llama => "LlamaForCausalLM",
        }
    }
    fn from_model_type(s: &str) -> Option<Arch> {
        match s {
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            "llama" => Some(Arch::Llama),
            _ => None,
        }
    }
}

/// Llama 3.x's frequency-dependent rope scaling (`rope_type = "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub tie_word_embeddings: bool,
    /// Bias on the q/k/v projections (Qwen2 always; Llama when `attention_bias`).
    pub attention_bias: bool,
    pub max_position_embeddings: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// Storage dtype named by the checkpoint (`bfloat16`, `float32`, ...), for saving back.
    pub dtype: String,
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = crate::error::read_json(path)?;
        Self::from_json(&value).map_err(|message| ModelError::config(path, message))
    }

    /// Builds the config from a parsed `config.json`; the error is a message without the path.
    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        let obj = value.as_object().ok_or("config is not a JSON object")?;
        let model_type = obj.get("model_type").and_then(Value::as_str).unwrap_or("");
        let arch = Arch::from_model_type(model_type).or_else(|| {
            // Fall back on the architectures list when model_type is absent.
            let archs = obj.get("architectures")?.as_array()?;
            archs.iter().filter_map(Value::as_str).find_map(|a| match a {
                "Qwen2ForCausalLM" => Some(Arch::Qwen2),
                "Qwen3ForCausalLM" => Some(Arch::Qwen3),
                "LlamaForCausalLM" => Some(Arch::Llama),
                _ => None,
            })
        });
        let arch = arch.ok_or_else(|| {
            format!("unknown architecture (model_type '{model_type}'); r1kit supports qwen2, qwen3 and llama")
        })?;

        let hidden_size = req_usize(obj, "hidden_size")?;
        let num_heads = req_usize(obj, "num_attention_heads")?;
        let num_kv_heads = opt_usize(obj, "num_key_value_heads")?.unwrap_or(num_heads);
        let head_dim = match opt_usize(obj, "head_dim")? {
            Some(d) => d,
            None => {
                if hidden_size % num_heads != 0 {
                    return Err(format!("hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads}"));
                }
                hidden_size / num_heads
            }
        };
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(format!("num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"));
        }
        if head_dim % 2 != 0 {
            return Err(format!("head_dim {head_dim} must be even for rotary embeddings"));
        }

        // Rope: transformers 5 nests it in `rope_parameters`, the hub's files use top-level keys.
        let rope_params = obj.get("rope_parameters").and_then(Value::as_object);
        let rope_theta = rope_params
            .and_then(|p| p.get("rope_theta"))
            .or_else(|| obj.get("rope_theta"))
            .map(|v| v.as_f64().ok_or("rope_theta is not a number"))
            .transpose()?
            .unwrap_or(10000.0);
        let scaling = rope_params.or_else(|| obj.get("rope_scaling").and_then(Value::as_object));
        let rope_scaling = match scaling {
            None => None,
            Some(s) => {
                let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(Value::as_str).unwrap_or("default");
                match kind {
                    "default" => None,
                    "llama3" => Some(Llama3RopeScaling {
                        factor: req_f64(s, "factor")?,
                        low_freq_factor: req_f64(s, "low_freq_factor")?,
                        high_freq_factor: req_f64(s, "high_freq_factor")?,
                        original_max_position_embeddings: req_usize(s, "original_max_position_embeddings")?,
                    }),
                    other => return Err(format!("rope scaling type '{other}' is not supported (default, llama3)")),
                }
            }
        };

        let eos_token_ids = match obj.get("eos_token_id") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a.iter().map(|v| as_u32(v, "eos_token_id")).collect::<std::result::Result<_, _>>()?,
            Some(v) => vec![as_u32(v, "eos_token_id")?],
        };
        let bos_token_id = match obj.get("bos_token_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(as_u32(v, "bos_token_id")?),
        };
        let dtype = obj
            .get("dtype")
            .or_else(|| obj.get("torch_dtype"))
            .and_then(Value::as_str)
            .unwrap_or("float32")
            .to_string();

        Ok(ModelConfig {
            arch,
            vocab_size: req_usize(obj, "vocab_size")?,
            hidden_size,
            intermediate_size: req_usize(obj, "intermediate_size")?,
            num_layers: req_usize(obj, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: obj.get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: obj.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
            attention_bias: match arch {
                Arch::Qwen2 => true,
                Arch::Qwen3 | Arch::Llama => obj.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            },
            max_position_embeddings: opt_usize(obj, "max_position_embeddings")?.unwrap_or(32768),
            bos_token_id,
            eos_token_ids,
            dtype,
        })
    }

    /// The config as transformers writes it (hub dialect, which transformers 4 and 5 both read).
    pub fn to_hf_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architectures".into(), Value::from(vec![self.arch.hf_class()]));
        m.insert("model_type".into(), self.arch.model_type().into());
        m.insert("vocab_size".into(), self.vocab_size.into());
        m.insert("hidden_size".into(), self.hidden_size.into());
        m.insert("intermediate_size".into(), self.intermediate_size.into());
        m.insert("num_hidden_layers".into(), self.num_layers.into());
        m.insert("num_attention_heads".into(), self.num_heads.into());
        m.insert("num_key_value_heads".into(), self.num_kv_heads.into());
        m.insert("head_dim".into(), self.head_dim.into());
        m.insert("rms_norm_eps".into(), self.rms_norm_eps.into());
        m.insert("rope_theta".into(), self.rope_theta.into());
        m.insert("hidden_act".into(), "silu".into());
        m.insert("tie_word_embeddings".into(), self.tie_word_embeddings.into());
        m.insert("max_position_embeddings".into(), self.max_position_embeddings.into());
        m.insert("torch_dtype".into(), self.dtype.clone().into());
        if self.arch == Arch::Llama {
            m.insert("attention_bias".into(), self.attention_bias.into());
            m.insert("mlp_bias".into(), false.into());
        }
        if let Some(s) = &self.rope_scaling {
            m.insert(
                "rope_scaling".into(),
                serde_json::json!({
                    "rope_type": "llama3",
                    "factor": s.factor,
                    "low_freq_factor": s.low_freq_factor,
                    "high_freq_factor": s.high_freq_factor,
                    "original_max_position_embeddings": s.original_max_position_embeddings,
                }),
            );
        }
        if let Some(b) = self.bos_token_id {
            m.insert("bos_token_id".into(), b.into());
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => {
                m.insert("eos_token_id".into(), (*one).into());
            }
            many => {
                m.insert("eos_token_id".into(), Value::from(many.to_vec()));
            }
        }
        Value::Object(m)
    }

    pub fn num_parameters(&self) -> usize {
        let (h, i, hd) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let q = self.num_heads * hd;
        let kv = self.num_kv_heads * hd;
        let bias = if self.attention_bias { q + 2 * kv } else { 0 };
        let qk_norm = if self.arch == Arch::Qwen3 { 2 * hd } else { 0 };
        let layer = h * q + 2 * h * kv + q * h + bias + qk_norm + 3 * h * i + 2 * h;
        let lm_head = if self.tie_word_embeddings { 0 } else { self.vocab_size * h };
        self.vocab_size * h + self.num_layers * layer + h + lm_head
    }
}

fn req_usize(obj: &Map<String, Value>, key: &str) -> std::result::Result<usize, String> {
    opt_usize(obj, key)?.ok_or_else(|| format!("missing required key '{key}'"))
}

fn opt_usize(obj: &Map<String, Value>, key: &str) -> std::result::Result<Option<usize>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| format!("'{key}' must be a non-negative integer, got {v}")),
    }
}

fn req_f64(obj: &Map<String, Value>, key: &str) -> std::result::Result<f64, String> {
    obj.get(key).and_then(Value::as_f64).ok_or_else(|| format!("missing or non-numeric key '{key}'"))
}

fn as_u32(v: &Value, key: &str) -> std::result::Result<u32, String> {
    v.as_u64().filter(|x| *x <= u32::MAX as u64).map(|x| x as u32).ok_or_else(|| format!("'{key}' must be a token id, got {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qwen2() -> Value {
        json!({"model_type": "qwen2", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "rope_theta": 1000000.0, "torch_dtype": "bfloat16", "eos_token_id": [3, 4]})
    }

    #[test]
    fn hub_dialect() {
        let c = ModelConfig::from_json(&qwen2()).unwrap();
        assert_eq!(c.arch, Arch::Qwen2);
        assert_eq!(c.head_dim, 16);
        assert!(c.attention_bias);
        assert_eq!(c.rope_theta, 1e6);
        assert_eq!(c.dtype, "bfloat16");
        assert_eq!(c.eos_token_ids, vec![3, 4]);
    }

    #[test]
    fn transformers5_dialect_with_llama3_scaling() {
        let v = json!({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "dtype": "float32",
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}});
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.num_kv_heads, 4);
        assert_eq!(c.rope_theta, 5e5);
        assert_eq!(c.rope_scaling.unwrap().original_max_position_embeddings, 64);
        // the round trip through the hub dialect keeps everything
        let back = ModelConfig::from_json(&c.to_hf_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn errors_name_the_problem() {
        let mut v = qwen2();
        v["model_type"] = json!("mamba");
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("unknown architecture (model_type 'mamba')"));
        let mut v = qwen2();
        v.as_object_mut().unwrap().remove("vocab_size");
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("'vocab_size'"));
        let mut v = qwen2();
        v["num_key_value_heads"] = json!(3);
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("multiple of num_key_value_heads"));
    }
}

/// Named shapes of real models (random weights), for benchmarks and `r1kit init --shape`.
pub const PRESET_SHAPES: [&str; 5] = ["tiny", "smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b", "llama3.2-1b"];

impl ModelConfig {
    /// The configuration of a named shape (see `PRESET_SHAPES`).
    pub fn preset(name: &str) -> Option<ModelConfig> {
        let v = match name {
            "tiny" => serde_json::json!({"model_type": "qwen2", "vocab_size": 512, "hidden_size": 128,
                "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                "rope_theta": 10000.0, "tie_word_embeddings": true, "max_position_embeddings": 4096}),
            "smollm2-135m" => serde_json::json!({"model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
                "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "rope_theta": 100000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "max_position_embeddings": 8192}),
            "qwen2.5-0.5b" => serde_json::json!({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
                "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                "rope_theta": 1000000.0, "tie_word_embeddings": true, "max_position_embeddings": 32768}),
            "qwen2.5-1.5b" => serde_json::json!({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536,
                "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                "rope_theta": 1000000.0, "tie_word_embeddings": true, "max_position_embeddings": 32768}),
            "llama3.2-1b" => serde_json::json!({"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048,
                "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "max_position_embeddings": 131072,
                "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192}}),
            _ => return None,
        };
        Some(ModelConfig::from_json(&v).expect("presets are valid"))
    }
}
