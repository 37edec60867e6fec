//! Fused CubeCL kernels for the model's elementwise work, forward and backward: RMSNorm
//! ([`rms_norm`]), rotary embeddings with the heads' transpose ([`rope`]), the SwiGLU gate
//! ([`swiglu`]) and the attention's softmax over a chunk of queries ([`attention_probs`],
//! [`attention_probs_backward`], inside `crate::attention`'s op); the LM head's log-softmax over
//! the vocabulary ([`logprob_rows`], [`logprob_rows_backward`], inside `crate::logprobs`' op); the
//! token embedding's gradient ([`embedding`]); the optimizer's AdamW update ([`adamw_update`]);
//! and, for rollouts, a decode step's attention over the KV cache ([`decode_attention`]) and its
//! token draw from the logits ([`draw_rows`]).
//!
//! Why: a 0.5B training micro-step on the GPU was 9,158 kernels, of which the GEMMs are ~20 ms of
//! 122 ms; the rest is burn's unfused elementwise ops, reductions and f32<->bf16 casts
//! (docs/gpu/RESULTS.md, Step 6). Each op here is one kernel forward and one or two backward,
//! reads any float dtype and computes in f32.
//!
//! They run on burn's `Cube` backend: on CUDA (the `cuda` feature), and on CubeCL's CPU runtime
//! (the `cube-cpu` feature), which is how the tests check them without a GPU, values and
//! gradients against burn's own ops. Each public function returns `None` where its kernels do not
//! apply (another backend, a build without them, burn's fusion on, `R1KIT_FUSED_KERNELS=0`): the
//! caller then computes the same thing with burn's ops.

#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod adamw;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod attention_softmax;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod bias;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod column_sums;
pub mod compare;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod cube_reduce;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod decode_attention;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod draw_rows;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod embedding;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod launch;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod logprob_rows;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod rms_norm;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod rope;
#[cfg(all(feature = "kernels", not(feature = "fusion")))]
mod swiglu;

use burn::prelude::{Int, Tensor};

use crate::key_mask::KeyMask;
use burn::tensor::FloatDType;

/// Whether this build has the fused kernels and they are not switched off by
/// `R1KIT_FUSED_KERNELS=0` (the A/B switch against burn's ops). The variable is read once per
/// process: this is asked several times per layer of every forward pass.
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| cfg!(all(feature = "kernels", not(feature = "fusion"))) && !std::env::var("R1KIT_FUSED_KERNELS").is_ok_and(|v| v == "0"))
}

/// Whether a decode step's attention takes [`decode_attention`] (where it applies) rather than
/// burn's ops: off unless `R1KIT_DECODE_ATTENTION=1` or [`set_decode_attention_in_rollouts`]. Off
/// by default because on an H200 the kernel is slower than cuBLAS's two batched GEMMs and burn's
/// softmax (rollouts 27.4k against 38.5k tokens/s at the 1.5B shape).
pub fn decode_attention_in_rollouts() -> bool {
    match DECODE_ATTENTION.load(std::sync::atomic::Ordering::Relaxed) {
        UNSET => {
            let on = std::env::var("R1KIT_DECODE_ATTENTION").is_ok_and(|v| v == "1");
            DECODE_ATTENTION.store(if on { ON } else { OFF }, std::sync::atomic::Ordering::Relaxed);
            on
        }
        state => state == ON,
    }
}

/// Overrides `R1KIT_DECODE_ATTENTION` for this process (tests of the kernel in rollouts).
pub fn set_decode_attention_in_rollouts(on: bool) {
    DECODE_ATTENTION.store(if on { ON } else { OFF }, std::sync::atomic::Ordering::Relaxed);
}

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;
static DECODE_ATTENTION: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(UNSET);

/// Whether the fused kernels run for tensors on `device` (autodiff or not): [`enabled`] and a
/// device of burn's `Cube` backend. Callers that pick dtypes around a kernel ask this first.
pub fn applies(device: &burn::prelude::Device) -> bool {
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        use burn::backend::DispatchDevice;
        enabled() && matches!(device.as_dispatch().clone().inner(), DispatchDevice::Cube(_))
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = device;
        false
    }
}

/// RMSNorm over the last dim, `x / sqrt(mean(x^2) + eps) * weight` in f32 (weight `[1, n]`,
/// applied after the normalization, as transformers does), written as `out` (so the bf16 a GEMM
/// takes next needs no cast of its own). `x` and `weight` of one float dtype, on a `Cube` device.
/// Gradients for both, through an autodiff op of ours when they are tracked.
pub fn rms_norm<const D: usize>(x: &Tensor<D>, weight: &Tensor<2>, eps: f64, out: FloatDType) -> Option<Tensor<D>> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        rms_norm::rms_norm(x, weight, eps, out)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (x, weight, eps, out);
        None
    }
}

/// A linear layer's bias added to its product: `y + bias` with `y` `[rows, cols]` in any float dtype
/// and `bias` `[1, cols]` (f32, a parameter), returned in `y`'s dtype; when tracked, the bias's
/// gradient is the f32 sum of `dy` over the rows, in two kernels. `None` off a `Cube` device.
pub fn add_bias(y: &Tensor<2>, bias: &Tensor<2>) -> Option<Tensor<2>> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        bias::add_bias(y, bias)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (y, bias);
        None
    }
}

/// The token embedding's rows `weight[ids]` `[n, hidden]` of a tracked table on a `Cube`
/// autodiff device, its gradient scattered by one kernel (burn's walks the ids one by one); `None`
/// elsewhere (an untracked table, another device: burn's `select` then).
pub fn embedding(weight: &Tensor<2>, ids: &Tensor<1, Int>) -> Option<Tensor<2>> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        embedding::embedding(weight, ids)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (weight, ids);
        None
    }
}

/// The SwiGLU gate `silu(gate) * up`, computed in f32 and written in the operands' dtype (both of
/// one float dtype, one shape, on a `Cube` device), gradients for both when tracked.
pub fn swiglu<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        swiglu::swiglu(gate, up)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (gate, up);
        None
    }
}

/// Rotary embeddings of `x` `[b, s, heads, hd]` (a projection's output, reshaped) with tables
/// `cos`, `sin` `[b, 1, s, hd]` (constants), returned as `[b, heads, s, hd]` in `x`'s dtype:
/// `x * cos + rotate_half(x) * sin` with the transpose folded in. A gradient for `x` when tracked.
pub fn rope(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        rope::rope(x, cos, sin)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (x, cos, sin);
        None
    }
}

/// The attention's softmax over a chunk of query rows, from the chunk's `Q K^T` products
/// `[b, kv_heads, groups * chunk, keys]` (the GEMM's output, any float dtype) and the mask
/// `[b, 1, s, t]` in either form (the chunk's queries are `first_query..first_query + chunk`, its keys the first
/// `keys`): `p = softmax(products * scale + mask)` computed in f32 and written in the products'
/// dtype (the `P V` GEMM's), and each row's log-sum-exp `[b, kv_heads, groups, chunk, 1]` f32 for
/// the backward pass. Not an autodiff op: the attention op's own forward calls it. `None` off a
/// `Cube` device or for shapes that do not fit.
pub fn attention_probs(products: &Tensor<4>, mask: &KeyMask, first_query: usize, chunk: usize, scale: f64) -> Option<(Tensor<4>, Tensor<5>)> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        let [b, kv, rows, _] = products.dims();
        let (p, lse) = attention_softmax::attention_probs(products, mask, first_query, chunk, scale)?;
        Some((p, lse.reshape([b, kv, rows / chunk, chunk, 1])))
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (products, mask, first_query, chunk, scale);
        None
    }
}

/// The attention op's backward through the softmax of one chunk ([`attention_probs`]'s inputs,
/// plus `dprobs = dO V^T` in the products' dtype, the forward's log-sum-exp and
/// `row_dot = rowsum(dO * O)`, each with one value per row): `(p, ds)` with `p` recomputed as
/// `exp(products * scale + mask - lse)` and `ds = (dprobs - row_dot) * p * scale`, both in the
/// products' dtype (the gradient GEMMs'). `None` off a `Cube` device or for shapes that do not fit.
#[allow(clippy::too_many_arguments)]
pub fn attention_probs_backward<const L: usize>(
    products: &Tensor<4>,
    dprobs: &Tensor<4>,
    mask: &KeyMask,
    lse: &Tensor<L>,
    row_dot: &Tensor<L>,
    first_query: usize,
    chunk: usize,
    scale: f64,
) -> Option<(Tensor<4>, Tensor<4>)> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        attention_softmax::attention_probs_backward(products, dprobs, mask, lse, row_dot, first_query, chunk, scale)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (products, dprobs, mask, lse, row_dot, first_query, chunk, scale);
        None
    }
}

/// A decode step's attention: one query per row `q` `[b, heads, 1, hd]` over the cache's keys and
/// values `[b, kv_heads, slots, hd]` (grouped-query: query head `h` reads KV head `h / (heads /
/// kv_heads)`), the additive mask `[b, 1, 1, slots]` (-1e30 blocks a slot: its key and value are
/// not read), `softmax(q k^T * scale + mask) v` computed in f32 and returned in `q`'s dtype. No
/// autodiff (rollouts). `None` off a `Cube` device or for shapes that do not fit.
///
/// Correct, but not yet faster than burn's two GEMMs on the GPU (docs/gpu/RESULTS.md, Step 9), so
/// the model takes it only when asked: [`decode_attention_in_rollouts`].
pub fn decode_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &Tensor<4>, scale: f64) -> Option<Tensor<4>> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        decode_attention::decode_attention(q, k, v, mask, scale)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (q, k, v, mask, scale);
        None
    }
}

/// A decode step's token draw from the logits `[rows, vocab]` (any float dtype) at `temperature`
/// alone (no top-k, top-p or min-p): with `x = logits / temperature`, each row's token is the
/// inverse CDF of `softmax(x)` at the row's uniform number in (0, 1) (`uniforms` `[rows, 1]`), or
/// the first argmax when `temperature` is 0; returned with its log-probability `x - lse(x)`, as
/// `([rows, 1]` ids, `[rows, 1]` f32). A token of zero probability is never drawn. No autodiff.
/// `None` off a `Cube` device or for shapes that do not fit.
pub fn draw_rows(logits: &Tensor<2>, uniforms: &Tensor<2>, temperature: f32) -> Option<(Tensor<2, Int>, Tensor<2>)> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        draw_rows::draw_rows(logits, uniforms, temperature)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (logits, uniforms, temperature);
        None
    }
}

/// The log-softmax of one chunk of the LM head's logits `[rows, vocab]` (the GEMM's output, any
/// float dtype) at the targets `[rows, 1]`: `(log p(target), log-sum-exp, entropy if asked)`, each
/// `[rows]` f32, computed in f32. Not an autodiff op: `crate::logprobs`' op calls it. `None` off a
/// `Cube` device or for shapes that do not fit.
pub fn logprob_rows(logits: &Tensor<2>, targets: &Tensor<2, Int>, with_entropy: bool) -> Option<(Tensor<1>, Tensor<1>, Option<Tensor<1>>)> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        logprob_rows::logprob_rows(logits, targets, with_entropy)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (logits, targets, with_entropy);
        None
    }
}

/// The gradient of [`logprob_rows`]' log-probabilities with respect to the logits, given the
/// upstream gradient `grad` `[rows]` and the forward's log-sum-exp: `grad (onehot(target) -
/// softmax)`, written as `out` (the dtype the gradient GEMMs take). `None` off a `Cube` device or
/// for shapes that do not fit.
pub fn logprob_rows_backward(logits: &Tensor<2>, lse: &Tensor<1>, grad: &Tensor<1>, targets: &Tensor<2, Int>, out: FloatDType) -> Option<Tensor<2>> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        logprob_rows::logprob_rows_backward(logits, lse, grad, targets, out)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (logits, lse, grad, targets, out);
        None
    }
}

/// One AdamW step's constants (torch's formula; `r1kit_train::optim` computes them).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// The decoupled weight decay's factor `1 - lr * weight_decay` (1 for no decay).
    pub decay: f64,
    /// `1 - beta1^t` and `1 - beta2^t`.
    pub bias_correction1: f64,
    pub bias_correction2: f64,
}

/// One AdamW update of a parameter from its gradient and moments `(m, v)`, all of one shape and
/// float dtype: `(param, m, v)` after the step, in one kernel. `None` off a `Cube` device or for
/// operands that do not match.
pub fn adamw_update(param: &Tensor<2>, grad: &Tensor<2>, m: &Tensor<2>, v: &Tensor<2>, step: AdamWStep) -> Option<(Tensor<2>, Tensor<2>, Tensor<2>)> {
    if !enabled() {
        return None;
    }
    #[cfg(all(feature = "kernels", not(feature = "fusion")))]
    {
        adamw::adamw(param, grad, m, v, step)
    }
    #[cfg(not(all(feature = "kernels", not(feature = "fusion"))))]
    {
        let _ = (param, grad, m, v, step);
        None
    }
}

/// The references the kernels are checked against (tests here, `r1kit check kernels` on a GPU):
/// the same maths in burn's ops, as the model computed it before the kernels.
pub mod reference {
    use burn::prelude::{Int, Tensor};
    use burn::tensor::{FloatDType, IndexingUpdateOp};

    /// `t` as `dtype`, with no cast (and no autodiff node) where it already is.
    pub fn cast_to<const D: usize>(t: Tensor<D>, dtype: FloatDType) -> Tensor<D> {
        if t.dtype() == dtype.into() { t } else { t.cast(dtype) }
    }

    /// RMSNorm in f32 by burn's ops, cast to `out`.
    pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<2>, eps: f64, out: FloatDType) -> Tensor<D> {
        let x = cast_to(x, FloatDType::F32);
        let variance = x.clone().square().mean_dim(D - 1);
        let normed = x * (variance + eps).sqrt().recip();
        let n = weight.dims()[1];
        let mut shape = [1usize; D];
        shape[D - 1] = n;
        cast_to(normed * cast_to(weight.clone(), FloatDType::F32).reshape(shape), out)
    }

    /// [`super::rope`] by burn's ops: the transpose, then [`rotate`].
    pub fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        rotate(x.swap_dims(1, 2), cos, sin)
    }

    /// `x * cos + rotate_half(x) * sin` with `rotate_half(x) = [-x2, x1]` (Hugging Face's
    /// convention), `x` `[b, heads, s, hd]`, the tables `[b, 1, s, hd]`; in f32, returned in
    /// `x`'s dtype.
    pub fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype().into();
        let x = cast_to(x, FloatDType::F32);
        let [b, h, s, d] = x.dims();
        let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        cast_to(x * cast_to(cos.clone(), FloatDType::F32) + rotated * cast_to(sin.clone(), FloatDType::F32), dtype)
    }

    /// [`super::attention_probs`] by burn's ops (the attention op's chunks before the kernel).
    pub fn attention_probs(products: &Tensor<4>, mask: &Tensor<4>, first_query: usize, chunk: usize, scale: f64) -> (Tensor<4>, Tensor<5>) {
        let [b, kv, rows, keys] = products.dims();
        let scores = chunk_scores(products, mask, first_query, chunk, scale);
        let max = scores.clone().max_dim(4);
        let exp = (scores - max.clone()).exp();
        let sum = exp.clone().sum_dim(4);
        let p = cast_to((exp / sum.clone()).reshape([b, kv, rows, keys]), products.dtype().into());
        (p, max + sum.log())
    }

    /// [`super::attention_probs_backward`] by burn's ops.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_probs_backward<const L: usize>(
        products: &Tensor<4>,
        dprobs: &Tensor<4>,
        mask: &Tensor<4>,
        lse: &Tensor<L>,
        row_dot: &Tensor<L>,
        first_query: usize,
        chunk: usize,
        scale: f64,
    ) -> (Tensor<4>, Tensor<4>) {
        let [b, kv, rows, keys] = products.dims();
        let per_row = [b, kv, rows / chunk, chunk, 1];
        let p = (chunk_scores(products, mask, first_query, chunk, scale) - cast_to(lse.clone(), FloatDType::F32).reshape(per_row)).exp();
        let dp = cast_to(dprobs.clone(), FloatDType::F32).reshape([b, kv, rows / chunk, chunk, keys]);
        let ds = (dp - cast_to(row_dot.clone(), FloatDType::F32).reshape(per_row)) * p.clone() * scale;
        let dtype = products.dtype().into();
        (cast_to(p.reshape([b, kv, rows, keys]), dtype), cast_to(ds.reshape([b, kv, rows, keys]), dtype))
    }

    /// `products * scale + mask` in f32, `[b, kv_heads, groups, chunk, keys]`.
    fn chunk_scores(products: &Tensor<4>, mask: &Tensor<4>, first_query: usize, chunk: usize, scale: f64) -> Tensor<5> {
        let [b, kv, rows, keys] = products.dims();
        let scores = cast_to(products.clone(), FloatDType::F32).reshape([b, kv, rows / chunk, chunk, keys]);
        let m = cast_to(mask.clone(), FloatDType::F32).slice([0..b, 0..1, first_query..first_query + chunk, 0..keys]).unsqueeze_dim::<5>(1);
        scores * scale + m
    }

    /// Scaled dot-product attention with grouped-query heads by burn's ops, the two products by
    /// `product` (the model's: in its compute dtype, returned in f32): `q` `[b, heads, s, hd]`,
    /// `k`, `v` `[b, kv_heads, t, hd]`, the additive mask `[b, 1, s, t]`. The query heads that
    /// share a KV head are one batch entry of `groups x s` rows, so keys and values are never
    /// repeated per query head (at decode, that copy of the whole cache per layer and step was the
    /// larger part of the attention's memory traffic). [`super::decode_attention`]'s reference.
    pub fn grouped_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &Tensor<4>, scale: f64, product: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<4>) -> Tensor<4> {
        let [b, heads, s, hd] = q.dims();
        let [_, kv_heads, t, _] = k.dims();
        let groups = heads / kv_heads;
        // head h reads key/value head h / groups: [b, heads, s, hd] -> [b, kv_heads, groups * s, hd]
        let q = q.reshape([b, kv_heads, groups * s, hd]);
        let scores = product(q, k.swap_dims(2, 3)).reshape([b, kv_heads, groups, s, t]) * scale + mask.clone().unsqueeze_dim::<5>(1);
        let probs = burn::tensor::activation::softmax(scores, 4).reshape([b, kv_heads, groups * s, t]);
        product(probs, v).reshape([b, heads, s, hd])
    }

    /// [`super::logprob_rows`] by burn's ops (the LM head op's chunks before the kernel).
    pub fn logprob_rows(logits: &Tensor<2>, targets: &Tensor<2, Int>, with_entropy: bool) -> (Tensor<1>, Tensor<1>, Option<Tensor<1>>) {
        let [rows, _] = logits.dims();
        let x = cast_to(logits.clone(), FloatDType::F32);
        let max = x.clone().max_dim(1);
        let shifted = x.clone() - max.clone();
        let exp = shifted.clone().exp();
        let sum = exp.clone().sum_dim(1);
        let lse = max + sum.clone().log();
        // H = lse - sum(p * logit), from the shifted logits (the plain form cancels: logits ~100 lose 1e-5)
        let entropy = with_entropy.then(|| (sum.clone().log() - (exp * shifted).sum_dim(1) / sum).reshape([rows]));
        let logp = x.gather(1, targets.clone()) - lse.clone();
        (logp.reshape([rows]), lse.reshape([rows]), entropy)
    }

    /// [`super::logprob_rows_backward`] by burn's ops: the softmax part everywhere, plus `grad` at
    /// the target.
    pub fn logprob_rows_backward(logits: &Tensor<2>, lse: &Tensor<1>, grad: &Tensor<1>, targets: &Tensor<2, Int>, out: FloatDType) -> Tensor<2> {
        let [rows, _] = logits.dims();
        let g = cast_to(grad.clone(), FloatDType::F32).reshape([rows, 1]);
        let p = (cast_to(logits.clone(), FloatDType::F32) - cast_to(lse.clone(), FloatDType::F32).reshape([rows, 1])).exp();
        cast_to((p * g.clone()).neg().scatter(1, targets.clone(), g, IndexingUpdateOp::Add), out)
    }

    /// [`super::adamw_update`] by burn's ops (torch's formula term by term).
    pub fn adamw_update(param: Tensor<2>, grad: &Tensor<2>, m: Tensor<2>, v: Tensor<2>, step: super::AdamWStep) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        let m = m.mul_scalar(step.beta1) + grad.clone().mul_scalar(1.0 - step.beta1);
        let v = v.mul_scalar(step.beta2) + grad.clone().square().mul_scalar(1.0 - step.beta2);
        let param = if step.decay != 1.0 { param.mul_scalar(step.decay) } else { param };
        // torch: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom
        let denom = v.clone().sqrt().div_scalar(step.bias_correction2.sqrt()).add_scalar(step.eps);
        let param = param - m.clone().div(denom).mul_scalar(step.lr / step.bias_correction1);
        (param, m, v)
    }

    /// `silu(gate) * up` in f32 by burn's ops, cast back to the operands' dtype.
    pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
        let dtype = gate.dtype().into();
        cast_to(burn::tensor::activation::silu(cast_to(gate, FloatDType::F32)) * cast_to(up, FloatDType::F32), dtype)
    }
}
