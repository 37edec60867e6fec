//! Writes random tiny Qwen2 / Qwen3 / Llama models saved by r1kit (f32 and bf16), each with the
//! logits r1kit computes after loading it back, for `scripts/check_saved_checkpoints.py` to compare
//! against HF transformers on a machine that has it.
//!
//!     cargo run -p r1kit-model --example export_roundtrip -- OUT_DIR

use std::path::PathBuf;

use r1kit_model::burn::prelude::*;
use r1kit_model::burn::tensor::Distribution;
use r1kit_model::{load_model_dir, save_model_dir, AttentionMask, Model, ModelConfig, SaveDtype};
use serde_json::json;

fn config(model_type: &str) -> ModelConfig {
    let mut v = json!({"model_type": model_type, "vocab_size": 384, "hidden_size": 64, "intermediate_size": 160,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": model_type != "qwen2", "bos_token_id": 1, "eos_token_id": 2});
    if model_type == "qwen3" {
        v["head_dim"] = json!(32);
    }
    if model_type == "llama" {
        v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
    }
    ModelConfig::from_json(&v).unwrap()
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: export_roundtrip OUT_DIR"));
    let device = Device::flex();
    for arch in ["qwen2", "qwen3", "llama"] {
        let model = Model::build(config(arch), |name, shape| {
            let dist = if name.ends_with("norm.weight") { Distribution::Uniform(0.5, 1.5) } else { Distribution::Normal(0.0, 0.2) };
            Ok(Tensor::random(shape, dist, &device))
        })
        .unwrap();
        for (dtype, tag) in [(SaveDtype::F32, "f32"), (SaveDtype::Bf16, "bf16")] {
            let dir = out.join(format!("{arch}-{tag}"));
            save_model_dir(&model, &dir, dtype, None).unwrap();
            let loaded = load_model_dir(&dir, &device).unwrap();
            let ids: Vec<u32> = (0..10).map(|i| (i * 37 + 5) % 384).collect();
            let positions: Vec<i64> = (0..10).collect();
            let mask = AttentionMask::causal_segments(&[1; 10], 1);
            let logits = loaded.logits(loaded.forward_hidden(&ids, &positions, 1, &mask, None));
            let values = logits.into_data().try_into_vec_as::<f32>().unwrap();
            let report = json!({"input_ids": [ids], "logits": values, "shape": [1, 10, 384], "tolerance": 1e-4});
            std::fs::write(dir.join("r1kit_logits.json"), report.to_string()).unwrap();
            println!("wrote {}", dir.display());
        }
    }
}
