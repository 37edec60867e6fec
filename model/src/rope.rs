//! Rotary position embeddings in Hugging Face's rotate-half convention.
//!
//! The tables are computed on the host in f32 exactly as transformers does (inverse frequencies in
//! f32, angle = position * inv_freq in f32), so that positions in the thousands match its logits.

use burn::prelude::*;

use crate::config::ModelConfig;

/// Inverse frequencies, `head_dim / 2` of them, with Llama 3's scaling applied when configured.
pub fn inverse_frequencies(config: &ModelConfig) -> Vec<f32> {
    let dim = config.head_dim;
    let base = config.rope_theta as f32;
    let inv: Vec<f32> = (0..dim / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32)).collect();
    match &config.rope_scaling {
        None => inv,
        Some(s) => {
            let factor = s.factor as f32;
            let (low, high) = (s.low_freq_factor as f32, s.high_freq_factor as f32);
            let old_ctx = s.original_max_position_embeddings as f32;
            let low_freq_wavelen = old_ctx / low;
            let high_freq_wavelen = old_ctx / high;
            inv.into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_freq_wavelen { f / factor } else { f };
                    let is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
                    if is_medium {
                        let smooth = (old_ctx / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

/// cos and sin tables for given positions, each `[batch, 1, seq, head_dim]` (broadcast over heads).
#[derive(Clone, Debug)]
pub struct RopeTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
}

impl RopeTables {
    /// `positions` is row-major `[batch, seq]`.
    pub fn new(inv_freq: &[f32], positions: &[i64], batch: usize, seq: usize, device: &Device) -> Self {
        let half = inv_freq.len();
        let dim = 2 * half;
        let mut cos = vec![0f32; batch * seq * dim];
        let mut sin = vec![0f32; batch * seq * dim];
        for (row, &pos) in positions.iter().enumerate() {
            let base = row * dim;
            for (i, &f) in inv_freq.iter().enumerate() {
                let angle = (pos as f32 * f) as f64;
                let (s, c) = angle.sin_cos();
                cos[base + i] = c as f32;
                cos[base + half + i] = c as f32;
                sin[base + i] = s as f32;
                sin[base + half + i] = s as f32;
            }
        }
        let shape = [batch, 1, seq, dim];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }

    /// x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1]; x is `[batch, heads, seq, head_dim]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        r1kit_gpu::kernels::reference::rotate(x, &self.cos, &self.sin)
    }

    /// [`RopeTables::apply`] to `x` `[batch, seq, heads, head_dim]` (a projection's output,
    /// reshaped), returned as `[batch, heads, seq, head_dim]`: one fused kernel where they apply.
    pub fn apply_to_heads(&self, x: Tensor<4>) -> Tensor<4> {
        r1kit_gpu::kernels::rope(&x, &self.cos, &self.sin).unwrap_or_else(|| self.apply(x.swap_dims(1, 2)))
    }
}
