//! The policy model: Qwen2 / Qwen3 / Llama transformers on burn, Hugging Face checkpoints in and
//! out, the tokenizer and chat template, the KV cache and greedy decoding.

pub mod attention_mask;
pub mod checkpoint;
pub mod checkpointing;
pub mod config;
pub mod device;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kv_cache;
pub mod logprobs;
pub mod parity;
pub mod pretrained;
pub mod rope;
pub mod tokenizer;
pub mod transformer;

pub use attention_mask::AttentionMask;
pub use checkpoint::{SaveDtype, load_model_dir, save_model_dir};
pub use checkpointing::Checkpointing;
pub use config::{Arch, ModelConfig};
pub use error::{ModelError, Result};
pub use kv_cache::KvCache;
pub use pretrained::{load_pretrained, load_tokenizer};
pub use transformer::{DecodeInputs, Model, normal_tensor, write_in_place, write_ints_in_place};

pub use burn;
