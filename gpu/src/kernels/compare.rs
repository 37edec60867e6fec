//! The fused kernels against burn's ops on one device, at the model's shapes: the output and the
//! gradients (forward + backward under a fixed weighting of the output), and, when asked, the time
//! of each. `r1kit check kernels` and `r1kit bench kernels` print these on the GPU.

use anyhow::{bail, Result};
use burn::prelude::{Device, Tensor, TensorData};
use burn::tensor::FloatDType;

use crate::bench::time_per_call;
use crate::check::Rng;

/// One op at one shape and dtype, fused against burn's ops.
#[derive(Debug, Clone)]
pub struct OpComparison {
    /// `rms_norm`, `swiglu`, `rope`, `softmax` (the attention's, one chunk), `attention` (the
    /// training attention op, forward and backward over a sequence in chunks), `logprobs` (the LM
    /// head's log-softmax, one chunk), `decode_attn` (a decode step's attention over the KV cache)
    /// or `adamw`.
    pub op: &'static str,
    /// `[rows, cols]` of the activation (softmax: the chunk's score rows and keys; adamw: the
    /// parameter, an MLP projection's).
    pub shape: [usize; 2],
    /// rms_norm: the output's dtype (its input is f32, as the model's residual stream);
    /// swiglu, rope and softmax: the operands' dtype; adamw: always f32 (the master weights).
    pub dtype: FloatDType,
    /// Each result's largest difference relative to the largest |value| of burn's, by name.
    pub differences: Vec<(&'static str, f32)>,
    /// Seconds of one forward + backward: fused, burn's ops (when timed).
    pub seconds: Option<(f64, f64)>,
}

impl OpComparison {
    /// The worst of [`OpComparison::differences`].
    pub fn worst(&self) -> f32 {
        self.differences.iter().map(|(_, d)| *d).fold(0.0, f32::max)
    }
}

/// The tolerance of a relative difference for results written as `dtype`: a few roundings of it.
pub fn tolerance(dtype: FloatDType) -> f32 {
    match dtype {
        FloatDType::F32 => 1e-4,
        _ => 2e-2,
    }
}

/// The sizes the ops are compared at: a model's, over `rows` tokens.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub rows: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
}

/// The attention's softmax is compared on the last chunk of queries of a sequence of this many
/// tokens (at most `rows`), in the attention op's chunks.
const SOFTMAX_SEQUENCE: usize = 2048;

/// RMSNorm at `[rows, hidden]` (f32 input, output in `dtype`), rotary embeddings of the queries
/// `[1, rows, heads, head_dim]` and SwiGLU at `[rows, intermediate]` (both in `dtype`), the
/// attention's softmax (forward and backward kernels) on the last chunk of a 2048-token sequence
/// (products in `dtype`), the training attention op over that sequence (forward and backward, in
/// chunks of a quarter), the LM head's log-softmax (forward and backward kernels) on one chunk of
/// `[1024, vocab]` logits in `dtype`, a decode step's attention over the KV cache (up to 512 rows
/// and 768 slots, in `dtype`), and one AdamW update of an `[hidden, intermediate]` f32 parameter, fused
/// against burn's ops on `device` (an autodiff device is taken as given; a plain one is made
/// autodiff). Timed over ~`batch_seconds` per batch when that is above 0.
pub fn compare(device: &Device, sizes: Sizes, dtype: FloatDType, batch_seconds: f64) -> Result<Vec<OpComparison>> {
    let Sizes { rows, hidden: cols, intermediate, heads, kv_heads, head_dim, vocab } = sizes;
    let device = if device.is_autodiff() { device.clone() } else { device.clone().autodiff() };
    if !super::applies(&device) {
        bail!("the fused kernels do not run on {device:?} in this build (a CUDA build, or the tests' cube-cpu one; R1KIT_FUSED_KERNELS=0 turns them off)");
    }
    let mut rng = Rng::new(7);
    let mut random = |shape: [usize; 2], std: f64| Tensor::<2>::from_data(TensorData::new(rng.normals(shape[0] * shape[1], std), shape), &device);

    let x = random([rows, cols], 2.0).require_grad();
    let weight = (random([1, cols], 0.3) + 1.0).require_grad();
    let w_norm = random([rows, cols], 1.0);
    let norm = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let y = if fused { super::rms_norm(&x, &weight, 1e-6, dtype).ok_or_else(|| anyhow::anyhow!("rms_norm: the kernel declined"))? } else { super::reference::rms_norm(x.clone(), &weight, 1e-6, dtype) };
        let grads = (y.clone().cast(FloatDType::F32) * w_norm.clone()).sum().backward();
        Ok(vec![y, x.grad(&grads).expect("x is tracked"), weight.grad(&grads).expect("weight is tracked")])
    };
    let gate = random([rows, intermediate], 3.0).cast(dtype).require_grad();
    let up = random([rows, intermediate], 1.0).cast(dtype).require_grad();
    let w_gate = random([rows, intermediate], 1.0);
    let gated = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let y = if fused { super::swiglu(&gate, &up).ok_or_else(|| anyhow::anyhow!("swiglu: the kernel declined"))? } else { super::reference::swiglu(gate.clone(), up.clone()) };
        let grads = (y.clone().cast(FloatDType::F32) * w_gate.clone()).sum().backward();
        Ok(vec![y, gate.grad(&grads).expect("gate is tracked"), up.grad(&grads).expect("up is tracked")])
    };
    let q = Tensor::<4>::from_data(TensorData::new(rng.normals(rows * heads * head_dim, 1.0), [1, rows, heads, head_dim]), &device).cast(dtype).require_grad();
    let (cos, sin) = rope_tables(rows, head_dim, &device);
    let w_rope = Tensor::<4>::from_data(TensorData::new(rng.normals(rows * heads * head_dim, 1.0), [1, heads, rows, head_dim]), &device);
    let rotated = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let y = if fused { super::rope(&q, &cos, &sin).ok_or_else(|| anyhow::anyhow!("rope: the kernel declined"))? } else { super::reference::rope(q.clone(), &cos, &sin) };
        let grads = (y.clone().cast(FloatDType::F32) * w_rope.clone()).sum().backward();
        Ok(vec![y.reshape([rows * heads, head_dim]), q.grad(&grads).expect("q is tracked").reshape([rows * heads, head_dim])])
    };

    // outside autodiff, as the attention op and the optimizer call them
    let seq = SOFTMAX_SEQUENCE.min(rows);
    let chunk = crate::attention::QUERY_CHUNK.min(seq);
    let (first_query, score_rows, kv_heads) = (seq - chunk, heads * chunk, kv_heads.max(1));
    let mut scores = |std: f64| Tensor::<4>::from_data(TensorData::new(rng.normals(score_rows * seq, std), [1, kv_heads, score_rows / kv_heads, seq]), &device).inner().cast(dtype);
    let (products, dprobs) = (scores(4.0), scores(1.0));
    let mask = causal_mask(seq, &device);
    // the kernels take the mask as the model now sends it, each query's run of keys; burn's ops the additive form
    let runs: Vec<(u32, u32)> = (0..seq as u32).map(|i| (0, i + 1)).collect();
    let key_runs = crate::KeyMask::from_runs(&runs, 1, seq, &mask.device());
    let row_dot = Tensor::<4>::from_data(TensorData::new(rng.normals(score_rows, 1.0), [1, kv_heads, score_rows / kv_heads, 1]), &device).inner();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let softmax = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let (p, lse) = if fused {
            super::attention_probs(&products, &key_runs, first_query, chunk, scale).ok_or_else(|| anyhow::anyhow!("softmax: the kernel declined"))?
        } else {
            super::reference::attention_probs(&products, &mask, first_query, chunk, scale)
        };
        let lse = lse.reshape([1, kv_heads, score_rows / kv_heads, 1]);
        let (p_again, ds) = if fused {
            super::attention_probs_backward(&products, &dprobs, &key_runs, &lse, &row_dot, first_query, chunk, scale).ok_or_else(|| anyhow::anyhow!("softmax backward: the kernel declined"))?
        } else {
            super::reference::attention_probs_backward(&products, &dprobs, &mask, &lse, &row_dot, first_query, chunk, scale)
        };
        let flat = |t: Tensor<4>| t.reshape([score_rows, seq]);
        Ok(vec![flat(p), lse.reshape([score_rows, 1]), flat(p_again), flat(ds)])
    };
    // the training attention op over the whole sequence in chunks of a quarter (the cuBLASLt GEMMs
    // writing f32 and adding each chunk's dK, dV into the first keys' rows), against burn's graph
    let mut qkv = |heads: usize| Tensor::<4>::from_data(TensorData::new(rng.normals(seq * heads * head_dim, 1.0), [1, heads, seq, head_dim]), &device);
    let (aq, ak, av, w_attention) = (qkv(heads).require_grad(), qkv(kv_heads).require_grad(), qkv(kv_heads).require_grad(), qkv(heads));
    let runs_tracked = crate::KeyMask::from_runs(&runs, 1, seq, &device);
    let additive = runs_tracked.additive();
    let attention = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let out = if fused {
            crate::attention::attention(&aq, &ak, &av, &runs_tracked, dtype, (seq / 4).max(1)).ok_or_else(|| anyhow::anyhow!("attention: the op declined"))?
        } else {
            // the products through the GEMM the op uses (burn's own f32 matmul may round to TF32)
            super::reference::grouped_attention(aq.clone(), ak.clone(), av.clone(), &additive, scale, |a, b| crate::matmul_in(a, b, dtype))
        };
        let grads = (out.clone().cast(FloatDType::F32) * w_attention.clone()).sum().backward();
        let flat = |t: Tensor<4>| {
            let [_, h, s, d] = t.dims();
            t.cast(FloatDType::F32).reshape([h * s, d])
        };
        Ok(vec![flat(out), flat(aq.grad(&grads).expect("q is tracked")), flat(ak.grad(&grads).expect("k is tracked")), flat(av.grad(&grads).expect("v is tracked"))])
    };
    // one chunk of the LM head's logits, as `crate::logprobs`' op cuts them
    let logit_rows = crate::logprobs::DEFAULT_CHUNK_ROWS.min(rows);
    let logits = Tensor::<2>::from_data(TensorData::new(rng.normals(logit_rows * vocab, 3.0), [logit_rows, vocab]), &device).inner().cast(dtype);
    let ids: Vec<i64> = (0..logit_rows).map(|r| ((r * 7919) % vocab) as i64).collect();
    let ids = Tensor::<2, burn::prelude::Int>::from_data(TensorData::new(ids, [logit_rows, 1]), &logits.device());
    let upstream = Tensor::<1>::from_data(TensorData::new(rng.normals(logit_rows, 1.0), [logit_rows]), &device).inner();
    let logprobs = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let (logp, lse, entropy) = if fused {
            super::logprob_rows(&logits, &ids, true).ok_or_else(|| anyhow::anyhow!("logprobs: the kernel declined"))?
        } else {
            super::reference::logprob_rows(&logits, &ids, true)
        };
        let d = if fused {
            super::logprob_rows_backward(&logits, &lse, &upstream, &ids, dtype).ok_or_else(|| anyhow::anyhow!("logprobs backward: the kernel declined"))?
        } else {
            super::reference::logprob_rows_backward(&logits, &lse, &upstream, &ids, dtype)
        };
        let column = |t: Tensor<1>| t.reshape([logit_rows, 1]);
        Ok(vec![column(logp), column(lse), column(entropy.expect("asked for")), d])
    };
    // a decode step's attention over the KV cache: one query per row, at most 512 rows (issue 13's
    // rollout batch) and 768 slots (256 prompt + 512 new tokens), two thirds of them written;
    // against the model's path before the kernel (two GEMMs in `dtype`, softmax by burn's ops)
    let (decode_rows, slots) = ((rows / 32).clamp(2, 512), (rows * 3 / 64).clamp(5, 768));
    let mut cache = |heads: usize, slots: usize| Tensor::<4>::from_data(TensorData::new(rng.normals(decode_rows * heads * slots * head_dim, 1.0), [decode_rows, heads, slots, head_dim]), &device).inner().cast(dtype);
    let (dq, dk, dv) = (cache(heads, 1), cache(kv_heads, slots), cache(kv_heads, slots));
    let dmask = decode_mask(decode_rows, slots, slots * 2 / 3, &dq.device());
    let decode = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let out = if fused {
            super::decode_attention(&dq, &dk, &dv, &dmask, scale).ok_or_else(|| anyhow::anyhow!("decode attention: the kernel declined"))?
        } else {
            super::reference::grouped_attention(dq.clone(), dk.clone(), dv.clone(), &dmask, scale, |a, b| crate::matmul_in(a, b, dtype))
        };
        Ok(vec![out.reshape([decode_rows * heads, head_dim])])
    };
    let mut plain = |shape: [usize; 2], std: f64| Tensor::<2>::from_data(TensorData::new(rng.normals(shape[0] * shape[1], std), shape), &device).inner();
    let (param, grad, m) = (plain([cols, intermediate], 0.02), plain([cols, intermediate], 1e-3), plain([cols, intermediate], 1e-3));
    let v = plain([cols, intermediate], 1e-3).square();
    let step = super::AdamWStep { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1.0 - 1e-4 * 0.01, bias_correction1: 1.0 - 0.9f64.powi(10), bias_correction2: 1.0 - 0.999f64.powi(10) };
    let adamw = |fused: bool| -> Result<Vec<Tensor<2>>> {
        let (p, m, v) = if fused {
            super::adamw_update(&param, &grad, &m, &v, step).ok_or_else(|| anyhow::anyhow!("adamw: the kernel declined"))?
        } else {
            super::reference::adamw_update(param.clone(), &grad, m.clone(), v.clone(), step)
        };
        Ok(vec![p, m, v])
    };

    let mut results = Vec::new();
    type Case<'a> = (&'static str, [usize; 2], &'static [&'static str], FloatDType, &'a dyn Fn(bool) -> Result<Vec<Tensor<2>>>);
    let mut cases: Vec<Case> = vec![
        ("rms_norm", [rows, cols], &["y", "dx", "dweight"], dtype, &norm),
        ("swiglu", [rows, intermediate], &["y", "dgate", "dup"], dtype, &gated),
        ("rope", [rows, heads * head_dim], &["y", "dx"], dtype, &rotated),
        ("softmax", [score_rows, seq], &["p", "lse", "p again", "ds"], dtype, &softmax),
        ("attention", [seq, heads * head_dim], &["out", "dq", "dk", "dv"], dtype, &attention),
        ("logprobs", [logit_rows, vocab], &["logp", "lse", "entropy", "dlogits"], dtype, &logprobs),
        ("decode_attn", [decode_rows * heads, slots], &["out"], dtype, &decode),
    ];
    // the optimizer's state is f32 whatever the products' dtype: compared once, in the f32 pass
    if dtype == FloatDType::F32 {
        cases.push(("adamw", [cols, intermediate], &["param", "m", "v"], FloatDType::F32, &adamw));
    }
    for (op, shape, names, dtype, run) in cases {
        let (ours, theirs) = (run(true)?, run(false)?);
        let differences = names.iter().zip(ours.into_iter().zip(theirs)).map(|(name, (o, t))| Ok((*name, relative_difference(o.into_data(), t.into_data())?))).collect::<Result<Vec<_>>>()?;
        let seconds = if batch_seconds > 0.0 {
            Some((time_per_call(&device, batch_seconds, || run(true))?, time_per_call(&device, batch_seconds, || run(false))?))
        } else {
            None
        };
        results.push(OpComparison { op, shape, dtype, differences, seconds });
    }
    Ok(results)
}

/// cos and sin `[1, 1, rows, head_dim]` of positions `0..rows` at Qwen2.5's base (two equal halves, as the model builds them).
fn rope_tables(rows: usize, head_dim: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let half = head_dim / 2;
    let (mut cos, mut sin) = (vec![0f32; rows * head_dim], vec![0f32; rows * head_dim]);
    for p in 0..rows {
        for i in 0..half {
            let angle = p as f64 / 1e6f64.powf(2.0 * i as f64 / head_dim as f64);
            for j in [i, i + half] {
                cos[p * head_dim + j] = angle.cos() as f32;
                sin[p * head_dim + j] = angle.sin() as f32;
            }
        }
    }
    let table = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, rows, head_dim]), device);
    (table(cos), table(sin))
}

/// The model's causal mask `[1, 1, s, s]` (-1e30 above the diagonal).
fn causal_mask(s: usize, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..s * s).map(|i| if i % s > i / s { -1e30 } else { 0.0 }).collect();
    Tensor::<4>::from_data(TensorData::new(values, [1, 1, s, s]), device).inner()
}

/// A decode step's additive mask `[rows, 1, 1, slots]` over a KV cache whose first `written`
/// slots hold tokens: row `r`'s first `r % 3` slots are left padding (fewer where `written` is
/// small: every row sees at least one slot) and the slots from `written` on are not yet written,
/// both blocked with -1e30.
pub(crate) fn decode_mask(rows: usize, slots: usize, written: usize, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..rows * slots)
        .map(|i| {
            let (r, t) = (i / slots, i % slots);
            let padding = (r % 3).min(written.saturating_sub(1));
            if t >= padding && t < written { 0.0 } else { -1e30 }
        })
        .collect();
    Tensor::<4>::from_data(TensorData::new(values, [rows, 1, 1, slots]), device)
}

/// `max |a - b| / max |b|`.
fn relative_difference(a: TensorData, b: TensorData) -> Result<f32> {
    let (a, b) = (a.convert::<f32>().try_into_vec::<f32>()?, b.convert::<f32>().try_into_vec::<f32>()?);
    if a.len() != b.len() {
        bail!("{} values against {}", a.len(), b.len());
    }
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0f32, f32::max).max(f32::MIN_POSITIVE);
    Ok(if diff.is_nan() { f32::INFINITY } else { diff / scale })
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::*;

    #[test]
    fn the_comparison_runs_and_passes_on_the_cpu_runtime() {
        for dtype in [FloatDType::F32, FloatDType::BF16] {
            let sizes = Sizes { rows: 19, hidden: 40, intermediate: 56, heads: 3, kv_heads: 1, head_dim: 8, vocab: 300 };
            let results = compare(&Device::cpu(), sizes, dtype, 0.0).unwrap();
            let ops: Vec<&str> = results.iter().map(|r| r.op).collect();
            let mut expected = vec!["rms_norm", "swiglu", "rope", "softmax", "attention", "logprobs", "decode_attn"];
            if dtype == FloatDType::F32 {
                expected.push("adamw");
            }
            assert_eq!(ops, expected);
            for r in &results {
                assert!(r.worst() <= tolerance(dtype), "{r:?}");
                assert!(r.seconds.is_none());
            }
        }
    }

    #[test]
    fn a_device_without_the_kernels_is_refused() {
        let sizes = Sizes { rows: 4, hidden: 8, intermediate: 8, heads: 2, kv_heads: 1, head_dim: 4, vocab: 16 };
        let err = compare(&Device::flex(), sizes, FloatDType::F32, 0.0).unwrap_err();
        assert!(err.to_string().contains("do not run"), "{err}");
    }
}
