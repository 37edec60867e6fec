//! From llama.cpp's conventions to Hugging Face's: tensor names, dimension order, the q/k row
//! permutation of the llama architecture, and the model config from `{arch}.*` metadata.

use serde_json::{json, Map, Value};

use crate::config::Arch;

/// The GGUF tensor that holds a Hugging Face parameter, e.g.
/// `model.layers.3.self_attn.q_proj.weight` -> `blk.3.attn_q.weight`.
pub fn gguf_tensor_name(hf_name: &str) -> Option<String> {
    match hf_name {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, param) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (module, kind) = param.rsplit_once('.')?;
    let gguf_module = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf_module}.{kind}"))
}

/// llama.cpp's converter permutes the rows of q_proj / k_proj for the llama architecture (its
/// rope pairs adjacent dimensions, Hugging Face's pairs the two halves of each head); this gives
/// the number of heads to undo it with, or `None` for tensors that are stored as in HF.
pub fn permuted_heads(arch: Arch, hf_name: &str, num_heads: usize, num_kv_heads: usize) -> Option<usize> {
    if arch != Arch::Llama {
        return None;
    }
    if hf_name.contains(".self_attn.q_proj.") {
        Some(num_heads)
    } else if hf_name.contains(".self_attn.k_proj.") {
        Some(num_kv_heads)
    } else {
        None
    }
}

/// Undoes `convert_hf_to_gguf.py`'s `permute`: `w.reshape(n_head, 2, d/n_head/2, ...)
/// .swapaxes(1, 2)`, on a row-major matrix of `rows` rows (a bias is a matrix of one-wide rows).
/// In the GGUF, row `h*hd + 2*i + s` holds Hugging Face row `h*hd + s*hd/2 + i`.
pub fn unpermute_rows(values: &[f32], rows: usize, n_head: usize) -> Result<Vec<f32>, String> {
    if n_head == 0 || rows % (2 * n_head) != 0 || values.len() % rows != 0 {
        return Err(format!("cannot undo the rope permutation: {rows} rows are not a multiple of 2 x {n_head} heads"));
    }
    let cols = values.len() / rows;
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0.0f32; values.len()];
    for h in 0..n_head {
        for i in 0..half {
            for s in 0..2 {
                let src = h * head_dim + 2 * i + s;
                let dst = h * head_dim + s * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    Ok(out)
}

/// The metadata a config needs, looked up by key; `Err` carries the message.
pub trait MetadataSource {
    fn meta_u64(&self, key: &str) -> Result<Option<u64>, String>;
    fn meta_f64(&self, key: &str) -> Result<Option<f64>, String>;
    fn meta_str(&self, key: &str) -> Result<Option<&str>, String>;
    fn has_tensor(&self, name: &str) -> bool;
    fn vocab_len(&self) -> Option<usize>;
    /// A (small) tensor's values, or `None` when absent.
    fn tensor_values(&self, name: &str) -> Result<Option<Vec<f32>>, String>;
}

/// Llama 3.x files carry their rope scaling only as `rope_freqs.weight`, the per-frequency
/// divisors convert_hf_to_gguf.py computed from (factor, low/high_freq_factor, original context).
/// Recovers those parameters: the largest divisor is the factor, the others are searched among
/// the values Llama 3 models use and must reproduce every divisor.
pub fn llama3_scaling_from_rope_freqs(rope_freqs: &[f32], head_dim: usize, rope_theta: f64) -> Result<Option<Value>, String> {
    if rope_freqs.len() != head_dim / 2 {
        return Err(format!("rope_freqs.weight has {} values, head_dim {head_dim} needs {}", rope_freqs.len(), head_dim / 2));
    }
    let factor = rope_freqs.iter().copied().fold(f32::MIN, f32::max) as f64;
    if rope_freqs.iter().all(|&f| f == 1.0) {
        return Ok(None);
    }
    let divisors = |low: f64, high: f64, old_ctx: f64| -> Vec<f64> {
        (0..head_dim / 2)
            .map(|i| {
                let freq = 1.0 / rope_theta.powf((2 * i) as f64 / head_dim as f64);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                if wavelen < old_ctx / high {
                    1.0
                } else if wavelen > old_ctx / low {
                    factor
                } else {
                    let smooth = (old_ctx / wavelen - low) / (high - low);
                    1.0 / ((1.0 - smooth) / factor + smooth)
                }
            })
            .collect()
    };
    for old_ctx in [8192.0, 4096.0, 2048.0, 16384.0, 32768.0, 65536.0, 131072.0] {
        for (low, high) in [(1.0, 4.0), (1.0, 2.0), (1.0, 8.0), (2.0, 4.0), (2.0, 8.0)] {
            let fits = divisors(low, high, old_ctx)
                .iter()
                .zip(rope_freqs)
                .all(|(want, &got)| (want - got as f64).abs() <= 1e-4 * want.abs());
            if fits {
                return Ok(Some(json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                    "high_freq_factor": high, "original_max_position_embeddings": old_ctx as u64})));
            }
        }
    }
    Err(format!("rope_freqs.weight (factor {factor}) does not match Llama 3 rope scaling for any usual low/high frequency factors and original context"))
}

/// A Hugging Face `config.json` value built from `{arch}.*` metadata, for `ModelConfig::from_json`.
pub fn hf_config_json(meta: &impl MetadataSource) -> Result<Value, String> {
    let arch = meta.meta_str("general.architecture")?.ok_or("missing 'general.architecture'")?.to_string();
    if !matches!(arch.as_str(), "llama" | "qwen2" | "qwen3") {
        return Err(format!("architecture '{arch}' is not supported (llama, qwen2, qwen3)"));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let required = |k: &str| -> Result<u64, String> {
        meta.meta_u64(&key(k))?.ok_or_else(|| format!("missing '{}'", key(k)))
    };
    if let Some(kind) = meta.meta_str(&key("rope.scaling.type"))? {
        if kind != "none" {
            return Err(format!("'{}' is '{kind}': rope scaling other than none is not supported", key("rope.scaling.type")));
        }
    }
    let hidden = required("embedding_length")?;
    let heads = required("attention.head_count")?;
    let rope_theta = meta.meta_f64(&key("rope.freq_base"))?.unwrap_or(10000.0);
    let vocab = match meta.vocab_len() {
        Some(n) => n as u64,
        None => meta.meta_u64(&key("vocab_size"))?.ok_or("no 'tokenizer.ggml.tokens' and no vocab_size")?,
    };
    let mut c = Map::new();
    c.insert("model_type".into(), arch.clone().into());
    c.insert("vocab_size".into(), vocab.into());
    c.insert("hidden_size".into(), hidden.into());
    c.insert("intermediate_size".into(), required("feed_forward_length")?.into());
    c.insert("num_hidden_layers".into(), required("block_count")?.into());
    c.insert("num_attention_heads".into(), heads.into());
    c.insert("num_key_value_heads".into(), meta.meta_u64(&key("attention.head_count_kv"))?.unwrap_or(heads).into());
    let key_length = meta.meta_u64(&key("attention.key_length"))?;
    if let Some(head_dim) = key_length {
        c.insert("head_dim".into(), head_dim.into());
    }
    if let Some(rope_freqs) = meta.tensor_values("rope_freqs.weight")? {
        let head_dim = key_length.unwrap_or(hidden / heads.max(1)) as usize;
        if let Some(scaling) = llama3_scaling_from_rope_freqs(&rope_freqs, head_dim, rope_theta)? {
            c.insert("rope_scaling".into(), scaling);
        }
    }
    if let Some(eps) = meta.meta_f64(&key("attention.layer_norm_rms_epsilon"))? {
        c.insert("rms_norm_eps".into(), eps.into());
    }
    c.insert("rope_theta".into(), rope_theta.into());
    if let Some(ctx) = meta.meta_u64(&key("context_length"))? {
        c.insert("max_position_embeddings".into(), ctx.into());
    }
    c.insert("tie_word_embeddings".into(), (!meta.has_tensor("output.weight")).into());
    if arch == "llama" {
        c.insert("attention_bias".into(), meta.has_tensor("blk.0.attn_q.bias").into());
    }
    if let Some(bos) = meta.meta_u64("tokenizer.ggml.bos_token_id")? {
        c.insert("bos_token_id".into(), bos.into());
    }
    if let Some(eos) = meta.meta_u64("tokenizer.ggml.eos_token_id")? {
        c.insert("eos_token_id".into(), eos.into());
    }
    c.insert("torch_dtype".into(), json!("float32"));
    Ok(Value::Object(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways_for_every_parameter_kind() {
        assert_eq!(gguf_tensor_name("model.embed_tokens.weight").unwrap(), "token_embd.weight");
        assert_eq!(gguf_tensor_name("model.layers.12.self_attn.o_proj.weight").unwrap(), "blk.12.attn_output.weight");
        assert_eq!(gguf_tensor_name("model.layers.0.self_attn.k_proj.bias").unwrap(), "blk.0.attn_k.bias");
        assert_eq!(gguf_tensor_name("model.layers.1.self_attn.q_norm.weight").unwrap(), "blk.1.attn_q_norm.weight");
        assert_eq!(gguf_tensor_name("model.layers.1.post_attention_layernorm.weight").unwrap(), "blk.1.ffn_norm.weight");
        assert_eq!(gguf_tensor_name("model.layers.1.mlp.down_proj.weight").unwrap(), "blk.1.ffn_down.weight");
        assert_eq!(gguf_tensor_name("lm_head.weight").unwrap(), "output.weight");
        assert_eq!(gguf_tensor_name("model.layers.x.mlp.up_proj.weight"), None);
        assert_eq!(gguf_tensor_name("model.layers.0.mlp.experts.weight"), None);
    }

    /// The permutation written in numpy terms (reshape, swapaxes, reshape), applied forward.
    fn permute_like_llama_cpp(hf: &[f32], rows: usize, n_head: usize) -> Vec<f32> {
        let cols = hf.len() / rows;
        let half = rows / n_head / 2;
        let mut out = Vec::with_capacity(hf.len());
        for h in 0..n_head {
            for i in 0..half {
                for s in 0..2 {
                    let src = (h * 2 + s) * half + i;
                    out.extend_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        let (rows, cols, heads) = (12, 3, 3);
        let hf: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let gguf = permute_like_llama_cpp(&hf, rows, heads);
        assert_ne!(gguf, hf);
        // head 0, hd = 4: gguf rows are hf rows 0, 2, 1, 3
        assert_eq!(&gguf[..3 * 4], &[0., 1., 2., 6., 7., 8., 3., 4., 5., 9., 10., 11.]);
        assert_eq!(unpermute_rows(&gguf, rows, heads).unwrap(), hf);
        assert!(unpermute_rows(&gguf, rows, 5).unwrap_err().contains("not a multiple"));
    }
}
