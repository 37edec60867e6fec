//! The policy transformer: one implementation for Qwen2, Qwen3 and Llama.
//!
//! Weights keep Hugging Face's layout (`[out, in]` for projections) so that loading and saving are
//! plain copies; every parameter is a rank-2 tensor (norm weights and biases are `[1, n]`) so that
//! optimizers and checkpoints handle one kind of tensor.

use burn::prelude::*;
use r1kit_gpu::kernels::reference::cast_to;
use r1kit_gpu::{matmul_compute, matmul_in, KeyMask};
use burn::tensor::FloatDType;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::attention_mask::AttentionMask;
use crate::checkpointing::{recomputed_block, Checkpointing};
use crate::config::{Arch, ModelConfig};
use crate::error::Result;
use crate::kv_cache::KvCache;
use crate::rope::{inverse_frequencies, RopeTables};

#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out, in]`, as in Hugging Face checkpoints.
    pub weight: Tensor<2>,
    /// `[1, out]`
    pub bias: Option<Tensor<2>>,
}

impl Linear {
    /// `x @ W^T (+ bias)` with the product in `compute`, returned in f32.
    pub fn forward(&self, x: Tensor<3>, compute: FloatDType) -> Tensor<3> {
        self.forward_as(x, compute, FloatDType::F32)
    }

    /// [`Linear::forward`] returned as `out`: f32 (autocast's activations) or `compute` itself,
    /// for a fused kernel that reads the GEMM's own output (the bias is added in `out`).
    pub fn forward_as(&self, x: Tensor<3>, compute: FloatDType, out: FloatDType) -> Tensor<3> {
        let [b, s, i] = x.dims();
        let features = self.weight.dims()[0];
        let mut y = cast_to(matmul_compute(x.reshape([b * s, i]), self.weight.clone().transpose(), compute), out);
        if let Some(bias) = &self.bias {
            // one op of ours on a Cube device (its gradient an f32 sum over the rows), else burn's add
            y = match r1kit_gpu::kernels::add_bias(&y, bias) {
                Some(sum) => sum,
                None => y + cast_to(bias.clone(), out),
            };
        }
        y.reshape([b, s, features])
    }
}

/// RMSNorm computed in f32, weight applied after the normalization (as transformers does).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<2>, eps: f64) -> Tensor<D> {
    rms_norm_as(x, weight, eps, FloatDType::F32)
}

/// [`rms_norm`] written as `out`: one fused kernel where they apply (`r1kit_gpu::kernels`), else
/// burn's ops.
fn rms_norm_as<const D: usize>(x: Tensor<D>, weight: &Tensor<2>, eps: f64, out: FloatDType) -> Tensor<D> {
    r1kit_gpu::kernels::rms_norm(&x, weight, eps, out).unwrap_or_else(|| r1kit_gpu::kernels::reference::rms_norm(x, weight, eps, out))
}

#[derive(Clone, Debug)]
pub struct Layer {
    pub input_norm: Tensor<2>,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// Qwen3's per-head norms, `[1, head_dim]`.
    pub q_norm: Option<Tensor<2>>,
    pub k_norm: Option<Tensor<2>>,
    pub post_attention_norm: Tensor<2>,
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Layer {
    /// The block's parameters in checkpoint order (absent biases and head norms skipped).
    pub fn tensors_mut(&mut self) -> Vec<&mut Tensor<2>> {
        let Layer { input_norm, q_proj, k_proj, v_proj, o_proj, q_norm, k_norm, post_attention_norm, gate_proj, up_proj, down_proj } = self;
        let mut out: Vec<&mut Tensor<2>> = vec![input_norm, &mut q_proj.weight, &mut k_proj.weight, &mut v_proj.weight];
        out.extend([&mut q_proj.bias, &mut k_proj.bias, &mut v_proj.bias].into_iter().filter_map(Option::as_mut));
        out.push(&mut o_proj.weight);
        out.extend([q_norm, k_norm].into_iter().filter_map(Option::as_mut));
        out.push(post_attention_norm);
        out.extend([&mut gate_proj.weight, &mut up_proj.weight, &mut down_proj.weight]);
        out
    }

    /// [`tensors_mut`](Self::tensors_mut), cloned.
    pub fn tensors(&self) -> Vec<Tensor<2>> {
        self.clone().tensors_mut().into_iter().map(|t| t.clone()).collect()
    }

    /// The same block with `tensors` (in [`tensors_mut`](Self::tensors_mut)'s order) as its parameters.
    pub fn with_tensors(&self, tensors: Vec<Tensor<2>>) -> Layer {
        let mut layer = self.clone();
        let slots = layer.tensors_mut();
        assert_eq!(slots.len(), tensors.len(), "one tensor per parameter of the block");
        for (slot, t) in slots.into_iter().zip(tensors) {
            *slot = t;
        }
        layer
    }
}

#[derive(Clone, Debug)]
pub struct Model {
    pub config: ModelConfig,
    /// `[vocab, hidden]`
    pub embed_tokens: Tensor<2>,
    pub layers: Vec<Layer>,
    pub final_norm: Tensor<2>,
    /// `[vocab, hidden]`; `None` when tied to the embeddings.
    pub lm_head: Option<Tensor<2>>,
    inv_freq: Vec<f32>,
    /// The dtype of the matrix products (f32 by default; bf16 for mixed precision on GPUs).
    pub compute: FloatDType,
    /// What a training graph recomputes in the backward pass instead of keeping (see
    /// [`Checkpointing`] and `tracked` in the train crate).
    pub checkpointing: Checkpointing,
}

/// Name and Hugging Face shape of every parameter, in checkpoint order.
pub fn parameter_specs(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i, hd) = (config.hidden_size, config.intermediate_size, config.head_dim);
    let (q, kv) = (config.num_heads * hd, config.num_kv_heads * hd);
    let mut specs = vec![("model.embed_tokens.weight".to_string(), vec![config.vocab_size, h])];
    for l in 0..config.num_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        specs.push((p("input_layernorm.weight"), vec![h]));
        specs.push((p("self_attn.q_proj.weight"), vec![q, h]));
        specs.push((p("self_attn.k_proj.weight"), vec![kv, h]));
        specs.push((p("self_attn.v_proj.weight"), vec![kv, h]));
        if config.attention_bias {
            specs.push((p("self_attn.q_proj.bias"), vec![q]));
            specs.push((p("self_attn.k_proj.bias"), vec![kv]));
            specs.push((p("self_attn.v_proj.bias"), vec![kv]));
        }
        specs.push((p("self_attn.o_proj.weight"), vec![h, q]));
        if config.arch == Arch::Qwen3 {
            specs.push((p("self_attn.q_norm.weight"), vec![hd]));
            specs.push((p("self_attn.k_norm.weight"), vec![hd]));
        }
        specs.push((p("post_attention_layernorm.weight"), vec![h]));
        specs.push((p("mlp.gate_proj.weight"), vec![i, h]));
        specs.push((p("mlp.up_proj.weight"), vec![i, h]));
        specs.push((p("mlp.down_proj.weight"), vec![h, i]));
    }
    specs.push(("model.norm.weight".to_string(), vec![h]));
    if !config.tie_word_embeddings {
        specs.push(("lm_head.weight".to_string(), vec![config.vocab_size, h]));
    }
    specs
}

/// A rank-2 view of a Hugging Face shape (vectors become `[1, n]`).
pub fn as_matrix_shape(shape: &[usize]) -> [usize; 2] {
    match shape {
        [n] => [1, *n],
        [a, b] => [*a, *b],
        _ => unreachable!("parameters are vectors or matrices"),
    }
}

impl Model {
    /// Builds a model by asking `get(name, shape)` for every parameter of `parameter_specs`.
    pub fn build(config: ModelConfig, mut get: impl FnMut(&str, [usize; 2]) -> Result<Tensor<2>>) -> Result<Model> {
        let mut specs = parameter_specs(&config).into_iter();
        let mut next = |expect: &str| -> Result<Tensor<2>> {
            let (name, shape) = specs.next().expect("parameter_specs and Model::build agree");
            debug_assert!(name.ends_with(expect), "{name} vs {expect}");
            get(&name, as_matrix_shape(&shape))
        };
        let embed_tokens = next("embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for _ in 0..config.num_layers {
            let input_norm = next("input_layernorm.weight")?;
            let (qw, kw, vw) = (next("q_proj.weight")?, next("k_proj.weight")?, next("v_proj.weight")?);
            let (qb, kb, vb) = if config.attention_bias {
                (Some(next("q_proj.bias")?), Some(next("k_proj.bias")?), Some(next("v_proj.bias")?))
            } else {
                (None, None, None)
            };
            let o_proj = Linear { weight: next("o_proj.weight")?, bias: None };
            let (q_norm, k_norm) = if config.arch == Arch::Qwen3 {
                (Some(next("q_norm.weight")?), Some(next("k_norm.weight")?))
            } else {
                (None, None)
            };
            let post_attention_norm = next("post_attention_layernorm.weight")?;
            layers.push(Layer {
                input_norm,
                q_proj: Linear { weight: qw, bias: qb },
                k_proj: Linear { weight: kw, bias: kb },
                v_proj: Linear { weight: vw, bias: vb },
                o_proj,
                q_norm,
                k_norm,
                post_attention_norm,
                gate_proj: Linear { weight: next("gate_proj.weight")?, bias: None },
                up_proj: Linear { weight: next("up_proj.weight")?, bias: None },
                down_proj: Linear { weight: next("down_proj.weight")?, bias: None },
            });
        }
        let final_norm = next("model.norm.weight")?;
        let lm_head = if config.tie_word_embeddings { None } else { Some(next("lm_head.weight")?) };
        let inv_freq = inverse_frequencies(&config);
        Ok(Model { config, embed_tokens, layers, final_norm, lm_head, inv_freq, compute: FloatDType::F32, checkpointing: Checkpointing::Off })
    }

    /// Every parameter with its checkpoint name, in `parameter_specs` order.
    pub fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor<2>)> {
        let mut out: Vec<&mut Tensor<2>> = vec![&mut self.embed_tokens];
        for layer in &mut self.layers {
            out.extend(layer.tensors_mut());
        }
        out.push(&mut self.final_norm);
        out.extend(self.lm_head.as_mut());
        let names = parameter_specs(&self.config).into_iter().map(|(n, _)| n);
        names.zip(out).collect()
    }

    /// Every parameter with its checkpoint name (clones are cheap handles).
    pub fn parameters(&self) -> Vec<(String, Tensor<2>)> {
        let mut copy = self.clone();
        copy.parameters_mut().into_iter().map(|(n, t)| (n, t.clone())).collect()
    }

    /// Applies `f` to every parameter (device moves, `require_grad`, optimizer updates).
    pub fn map_parameters(mut self, mut f: impl FnMut(&str, Tensor<2>) -> Tensor<2>) -> Model {
        for (name, slot) in self.parameters_mut() {
            let t = slot.clone();
            *slot = f(&name, t);
        }
        self
    }

    /// The same weights with matrix products in `compute` (see `matmul_in`).
    pub fn with_compute(mut self, compute: FloatDType) -> Model {
        self.compute = compute;
        self
    }

    /// The same weights, trained with this gradient checkpointing (see the field).
    pub fn with_checkpointing(mut self, checkpointing: Checkpointing) -> Model {
        self.checkpointing = checkpointing;
        self
    }

    pub fn device(&self) -> Device {
        self.embed_tokens.device()
    }

    /// For forward passes that take no gradients (rollouts, GRPO's frozen reference): the same
    /// model with every projection's weight and the LM head already in the compute dtype, i.e.
    /// cast once instead of at every product (which would cast them to the same values), and held
    /// in it (half an f32 copy's memory in bf16). The head is untied (`lm_head` set); not for
    /// training or saving.
    pub fn frozen(&self) -> Model {
        let mut model = self.clone();
        if self.compute == FloatDType::F32 {
            return model;
        }
        let compute = self.compute;
        for layer in &mut model.layers {
            for linear in [&mut layer.q_proj, &mut layer.k_proj, &mut layer.v_proj, &mut layer.o_proj, &mut layer.gate_proj, &mut layer.up_proj, &mut layer.down_proj] {
                linear.weight = linear.weight.clone().detach().cast(compute);
            }
        }
        model.lm_head = Some(self.lm_head.as_ref().unwrap_or(&self.embed_tokens).clone().detach().cast(compute));
        model
    }

    /// Hidden states after the final norm, `[batch, seq, hidden]`.
    ///
    /// `tokens` and `positions` are row-major `[batch, seq]`; the mask says which key each query
    /// may see (left padding, packed segments, or the KV cache's slots).
    pub fn forward_hidden(
        &self,
        tokens: &[u32],
        positions: &[i64],
        batch: usize,
        mask: &AttentionMask,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let seq = tokens.len() / batch;
        let device = self.device();
        let ids = token_tensor(tokens, &device);
        let rope = RopeTables::new(&self.inv_freq, positions, batch, seq, &device);
        let mask = mask.to_key_mask(&device);
        let mut cache = cache.map(CacheAccess::Append);
        let hidden = self.forward_ids(ids, batch, &rope, &mask, cache.as_mut());
        if let Some(CacheAccess::Append(cache)) = cache {
            cache.advance(seq);
        }
        hidden
    }

    /// One decode step whose shapes and kernel launches are the same at every step: logits
    /// `[batch, vocab]` for one new token per row, read from `inputs` (device buffers refreshed in
    /// place between steps), keys/values written in place at the slot that `inputs.slot` holds,
    /// attention over the cache's whole capacity. Such a step can be captured as a CUDA graph once
    /// and replayed (see the sampler). The cache is not advanced: the caller does it after the step.
    pub fn decode_fixed(&self, inputs: &DecodeInputs, cache: &mut KvCache) -> Tensor<2> {
        let [batch] = inputs.ids.dims();
        let mut access = CacheAccess::Fixed(cache, &inputs.slot);
        let mask = KeyMask::Additive(inputs.mask.clone());
        let hidden = self.forward_ids(inputs.ids.clone(), batch, &inputs.rope, &mask, Some(&mut access));
        self.logits_2d(hidden.reshape([batch, self.config.hidden_size]))
    }

    fn forward_ids(
        &self,
        ids: Tensor<1, Int>,
        batch: usize,
        rope: &RopeTables,
        mask: &KeyMask,
        mut cache: Option<&mut CacheAccess>,
    ) -> Tensor<3> {
        let [n] = ids.dims();
        let rows = r1kit_gpu::kernels::embedding(&self.embed_tokens, &ids).unwrap_or_else(|| self.embed_tokens.clone().select(0, ids));
        let mut x = rows.reshape([batch, n / batch, self.config.hidden_size]);
        for (index, layer) in self.layers.iter().enumerate() {
            let recomputed = match (&cache, self.checkpointing) {
                (None, Checkpointing::Blocks) => recomputed_block(&self.config, self.compute, layer, x.clone(), rope, mask),
                _ => None,
            };
            x = match recomputed {
                Some(y) => y,
                None => block_forward(&self.config, self.compute, layer, x, rope, mask, cache.as_deref_mut().map(|c| (c, index))),
            };
        }
        rms_norm(x, &self.final_norm, self.config.rms_norm_eps)
    }
}

/// One transformer block: attention (grouped-query heads, RoPE, the KV cache when given) and the
/// SwiGLU MLP, each behind an RMSNorm and added to the residual stream.
pub(crate) fn block_forward(
    c: &ModelConfig,
    compute: FloatDType,
    layer: &Layer,
    x: Tensor<3>,
    rope: &RopeTables,
    mask: &KeyMask,
    cache: Option<(&mut CacheAccess, usize)>,
) -> Tensor<3> {
    let [b, s, _] = x.dims();
    let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
    // With the fused kernels, the norms write the dtype the GEMMs take, and the queries, keys,
    // values and the MLP's gate stay in the GEMMs' dtype (autocast's own dtypes there; the kernels
    // compute in f32 inside), so no cast runs between the products.
    let between_gemms = if r1kit_gpu::kernels::applies(&x.device()) { compute } else { FloatDType::F32 };
    let hx = rms_norm_as(x.clone(), &layer.input_norm, c.rms_norm_eps, between_gemms);
    let heads = |t: Tensor<3>, n: usize, norm: &Option<Tensor<2>>| -> Tensor<4> {
        let t = t.reshape([b, s, n, hd]);
        let t = match norm {
            Some(w) => rms_norm(t, w, c.rms_norm_eps),
            None => t,
        };
        rope.apply_to_heads(t)
    };
    let m = compute;
    // per-head norms (Qwen3) take f32, as their f32 weights (the norm kernel takes one dtype)
    let qk = if layer.q_norm.is_some() { FloatDType::F32 } else { between_gemms };
    let q = heads(layer.q_proj.forward_as(hx.clone(), m, qk), nh, &layer.q_norm);
    let k = heads(layer.k_proj.forward_as(hx.clone(), m, qk), nkv, &layer.k_norm);
    let v = layer.v_proj.forward_as(hx, m, between_gemms).reshape([b, s, nkv, hd]).swap_dims(1, 2);
    let (k, v) = match cache {
        Some((CacheAccess::Append(cache), index)) => cache.write_and_read(index, k, v),
        Some((CacheAccess::Fixed(cache, slot), index)) => cache.write_at(index, k, v, slot),
        None => (k, v),
    };
    let attn = attention(q, k, v, mask, m); // [b, nh, s, hd]
    let attn = attn.swap_dims(1, 2).reshape([b, s, nh * hd]);
    let x = x + layer.o_proj.forward(attn, m);
    let hx = rms_norm_as(x.clone(), &layer.post_attention_norm, c.rms_norm_eps, between_gemms);
    let (gate, up) = (layer.gate_proj.forward_as(hx.clone(), m, between_gemms), layer.up_proj.forward_as(hx, m, between_gemms));
    let act = r1kit_gpu::kernels::swiglu(&gate, &up).unwrap_or_else(|| r1kit_gpu::kernels::reference::swiglu(gate, up));
    x + layer.down_proj.forward(act, m)
}

impl Model {
    /// Logits `[batch, seq, vocab]` from hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, h] = hidden.dims();
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        matmul_in(hidden.reshape([b * s, h]), head.clone().transpose(), self.compute).reshape([b, s, self.config.vocab_size])
    }

    /// The output projection of a flat `[n, hidden]` block, for chunked log-probabilities.
    pub fn logits_2d(&self, hidden: Tensor<2>) -> Tensor<2> {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        matmul_in(hidden, head.clone().transpose(), self.compute)
    }
}

/// How a forward pass uses the KV cache.
pub(crate) enum CacheAccess<'a> {
    /// Append at the next slots and attend over the slots in use (prefill, eager decode).
    Append(&'a mut KvCache),
    /// Write at the slot a device tensor holds and attend over the whole capacity (fixed shapes).
    Fixed(&'a mut KvCache, &'a Tensor<4, Int>),
}

/// The inputs of [`Model::decode_fixed`], on the device. Each step builds fresh ones on the host
/// and [`refresh`](Self::refresh)es the first step's buffers with them, in place, because a
/// captured graph reads the buffers it was recorded with.
pub struct DecodeInputs {
    /// `[batch]` the token of each row.
    pub ids: Tensor<1, Int>,
    pub rope: RopeTables,
    /// `[batch, 1, 1, capacity]`, from [`KvCache::prepare_fixed`].
    pub mask: Tensor<4>,
    /// From [`KvCache::slot_index`].
    pub slot: Tensor<4, Int>,
}

impl DecodeInputs {
    /// One token and position per row; `mask` and `slot` from the cache for this step.
    pub fn new(model: &Model, tokens: &[u32], positions: &[i64], mask: &AttentionMask, cache: &KvCache) -> DecodeInputs {
        DecodeInputs::with_ids(model, token_tensor(tokens, &model.device()), positions, mask, cache)
    }

    /// As [`DecodeInputs::new`], the tokens `[batch]` already on the device (the last step's
    /// choice, which the host has not read yet).
    pub fn with_ids(model: &Model, ids: Tensor<1, Int>, positions: &[i64], mask: &AttentionMask, cache: &KvCache) -> DecodeInputs {
        let device = model.device();
        DecodeInputs {
            rope: RopeTables::new(&model.inv_freq, positions, ids.dims()[0], 1, &device),
            ids,
            mask: mask.to_tensor(&device),
            slot: cache.slot_index(),
        }
    }

    /// Copies `fresh` into these buffers (a copy kernel each, in place: nothing else holds them).
    pub fn refresh(&mut self, fresh: DecodeInputs) {
        // ids from the host and ids a draw kernel wrote may be of different integer dtypes
        let ids = fresh.ids.cast(self.ids.dtype());
        write_ints_in_place(&mut self.ids, ids);
        write_in_place(&mut self.rope.cos, fresh.rope.cos);
        write_in_place(&mut self.rope.sin, fresh.rope.sin);
        write_in_place(&mut self.mask, fresh.mask);
        write_ints_in_place(&mut self.slot, fresh.slot);
    }
}

/// Copies `fresh` into `buffer`'s memory (burn's slice-assign writes in place when the handle is
/// the buffer's only one), so that a captured graph that reads `buffer` sees the new values.
pub fn write_in_place<const D: usize>(buffer: &mut Tensor<D>, fresh: Tensor<D>) {
    let ranges = buffer.dims().map(|n| 0..n);
    buffer.inplace(|b| b.slice_assign(ranges, fresh));
}

/// [`write_in_place`] for integer tensors.
pub fn write_ints_in_place<const D: usize>(buffer: &mut Tensor<D, Int>, fresh: Tensor<D, Int>) {
    let ranges = buffer.dims().map(|n| 0..n);
    buffer.inplace(|b| b.slice_assign(ranges, fresh));
}

fn token_tensor(tokens: &[u32], device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(ids, [tokens.len()]), device)
}

/// Scaled dot-product attention with grouped-query heads; `mask` `[b, 1, s, t]` in either form.
fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &KeyMask, compute: FloatDType) -> Tensor<4> {
    // On a Cube autodiff device (training on CUDA; CubeCL's CPU runtime in the tests): one op that
    // keeps no S x S scores for the backward pass, its softmax a fused kernel each way.
    if let Some(out) = r1kit_gpu::attention::attention(&q, &k, &v, mask, compute, r1kit_gpu::attention::QUERY_CHUNK) {
        return out;
    }
    let [_, _, s, hd] = q.dims();
    let scale = 1.0 / (hd as f64).sqrt();
    // On a Cube device without autodiff: a prefill or a reference forward takes the op's chunks,
    // which skip the masked keys' work; a decode step (one query) one kernel over the cache where
    // asked (not yet faster than the two GEMMs below on a GPU).
    let fused = if s > 1 {
        r1kit_gpu::attention::attention_untracked(&q, &k, &v, mask, compute, r1kit_gpu::attention::QUERY_CHUNK)
    } else if r1kit_gpu::kernels::decode_attention_in_rollouts() {
        r1kit_gpu::kernels::decode_attention(&q, &k, &v, &mask.additive(), scale)
    } else {
        None
    };
    fused.unwrap_or_else(|| r1kit_gpu::kernels::reference::grouped_attention(q, k, v, &mask.additive(), scale, |a, b| matmul_in(a, b, compute)))
}

impl Model {
    /// A freshly initialized model as transformers initializes one: weights ~ N(0, init_std),
    /// norm weights 1, biases 0. Drawn on the host from `seed` alone (the same draws the flex
    /// backend makes after `seed`, but from a generator of our own: the backend's is global, so
    /// anything else drawing at the same time, such as a parallel test, would change the weights).
    pub fn init_random(config: ModelConfig, device: &Device, init_std: f64, seed: u64) -> Model {
        let mut rng = StdRng::seed_from_u64(seed);
        Model::build(config, |name, shape| {
            Ok(if name.ends_with("norm.weight") {
                Tensor::ones(shape, device)
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape, device)
            } else {
                normal_tensor(shape, init_std, &mut rng, device)
            })
        })
        .expect("random initialization cannot fail")
    }
}

/// A tensor of `shape` with entries ~ N(0, std) drawn from `rng` on the host.
pub fn normal_tensor<const D: usize>(shape: [usize; D], std: f64, rng: &mut StdRng, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::random::<f32, _, _>(shape, burn::tensor::Distribution::Normal(0.0, std), rng), device)
}
