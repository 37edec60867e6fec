//! Training attention that never keeps the `S x S` scores: one autodiff op that runs the queries in
//! chunks, keeps only the output and each row's log-sum-exp, and recomputes a chunk's scores in the
//! backward pass (FlashAttention's recomputation, in chunks of burn ops and cuBLASLt products
//! rather than one kernel). With grouped-query heads, the `groups` query heads that share a
//! key/value head are one batch entry, so keys and values are never repeated.
//!
//! The mask must be causal (every mask the model builds is): query `i` of `s` sees no key after
//! position `t - s + i`. So a chunk of queries `i0..i1` needs only the keys `0..t - s + i1`, which
//! skips the masked upper triangle's products and softmax work (5/8 of the work at 2048 tokens in
//! chunks of 512, about half at long sequences).
//!
//! Forward per chunk: S = Q K^T * scale + mask, P = softmax(S), O = P V.
//! Backward per chunk: dP = dO V^T, dS = P (dP - rowsum(dO O)), dQ = dS K * scale,
//! dK += dS^T Q * scale, dV += P^T dO.
//!
//! Generic over the backend's product ([`Gemm`]): on a `Cube` autodiff device [`attention`] takes
//! it (CUDA; CubeCL's CPU runtime in the `cube-cpu` tests), and the CPU tests run it on flex
//! ([`attention_through_op`]). On `Cube` the softmax of each chunk is one fused kernel each way
//! (`crate::kernels::attention_probs`); elsewhere it is burn's ops.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;
use burn::tensor::FloatDType;

use crate::kernels;
use crate::key_mask::KeyMask;
use crate::matmul::{matmul, matmul_add_f32, matmul_f32, Gemm};
use crate::primitive::{inner, primitive};
use crate::row_chunks;

/// Query positions per chunk: a chunk's scores are `[batch, kv_heads, groups * 512, keys]` f32.
pub const QUERY_CHUNK: usize = 512;

/// Scaled dot-product attention `[b, heads, s, hd]` of `q` `[b, heads, s, hd]` over `k`, `v`
/// `[b, kv_heads, t, hd]` with `mask` `[b, 1, s, t]` (either [`KeyMask`] form), products in `compute`, softmax in
/// f32. `None` unless the tensors are on an autodiff device of burn's `Cube` backend (CUDA, or
/// CubeCL's CPU runtime in the `cube-cpu` tests).
pub fn attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &KeyMask, compute: FloatDType, chunk: usize) -> Option<Tensor<4>> {
    #[cfg(any(feature = "cuda", feature = "cube-cpu"))]
    {
        through_op::<burn::backend::Cube>(q, k, v, mask, compute, chunk)
    }
    #[cfg(not(any(feature = "cuda", feature = "cube-cpu")))]
    {
        let _ = (q, k, v, mask, compute, chunk);
        None
    }
}

/// The op's forward alone, for tensors outside autodiff (a reference or old-policy forward, a
/// prefill): the same chunks, so no `S x S` scores and no masked keys' work. `None` unless the
/// tensors are on a `Cube` device without autodiff.
pub fn attention_untracked(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &KeyMask, compute: FloatDType, chunk: usize) -> Option<Tensor<4>> {
    #[cfg(any(feature = "cuda", feature = "cube-cpu"))]
    {
        q.clone().try_into_primitive::<burn::backend::Cube>().ok()?;
        Some(attention_untracked_anywhere(q, k, v, mask, compute, chunk))
    }
    #[cfg(not(any(feature = "cuda", feature = "cube-cpu")))]
    {
        let _ = (q, k, v, mask, compute, chunk);
        None
    }
}

/// [`attention_untracked`] on any device, for the CPU tests.
#[doc(hidden)]
pub fn attention_untracked_anywhere(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &KeyMask, compute: FloatDType, chunk: usize) -> Tensor<4> {
    let d = Dims::of(q, k);
    let (output, _) = forward(q.clone(), k.clone(), v.clone(), mask, Settings { compute, chunk: chunk.max(1) });
    output.reshape([d.b, d.nkv * d.groups, d.s, d.hd])
}

/// [`attention`] through the op on flex, for the CPU tests.
#[doc(hidden)]
pub fn attention_through_op(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &KeyMask, compute: FloatDType, chunk: usize) -> Option<Tensor<4>> {
    through_op::<burn::backend::Flex>(q, k, v, mask, compute, chunk)
}

fn through_op<B: Gemm>(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &KeyMask, compute: FloatDType, chunk: usize) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<B>
        + DispatchKindConversion<Autodiff<B, NoCheckpointing>>
        + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>,
{
    let settings = Settings { compute, chunk: chunk.max(1) };
    // A graph built with gradient checkpointing is another autodiff backend type.
    through_op_with::<B, NoCheckpointing>(q, k, v, mask, settings).or_else(|| through_op_with::<B, BalancedCheckpointing>(q, k, v, mask, settings))
}

fn through_op_with<B: Gemm, C: CheckpointStrategy>(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &KeyMask, settings: Settings) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let to_autodiff = |t: &Tensor<4>| t.clone().try_into_primitive::<Autodiff<B, C>>().ok();
    let (q, k, v) = (to_autodiff(q)?, to_autodiff(k)?, to_autodiff(v)?);
    // the mask is a constant: its primitive on the inner backend
    let mask = match mask {
        KeyMask::Additive(m) => SavedMask::Additive(to_autodiff(m)?.primitive().clone()),
        KeyMask::Runs { runs, keys } => SavedMask::Runs(runs.clone().try_into_primitive::<Autodiff<B, C>>().ok()?.primitive().clone(), *keys),
    };
    Some(Tensor::from_primitive::<Autodiff<B, C>>(autodiff_attention::<B, C>(q, k, v, mask, settings)))
}

/// A [`KeyMask`] as the op keeps it for its backward pass: the inner backend's primitive.
#[derive(Debug, Clone)]
enum SavedMask<B: Gemm> {
    Additive(FloatTensor<B>),
    Runs(FloatTensor<B>, usize),
}

impl<B: Gemm> SavedMask<B>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    fn key_mask(self) -> KeyMask {
        match self {
            SavedMask::Additive(m) => KeyMask::Additive(inner::<B, 4>(m)),
            SavedMask::Runs(runs, keys) => KeyMask::Runs { runs: inner::<B, 3>(runs), keys },
        }
    }
}

/// The chunks' softmax: the fused kernel on a Cube device, else burn's ops on the additive mask
/// (made once per call, on the first chunk that needs it).
struct ChunkSoftmax<'a> {
    mask: &'a KeyMask,
    additive: std::cell::OnceCell<Tensor<4>>,
}

impl<'a> ChunkSoftmax<'a> {
    fn new(mask: &'a KeyMask) -> Self {
        ChunkSoftmax { mask, additive: std::cell::OnceCell::new() }
    }
    fn additive(&self) -> &Tensor<4> {
        self.additive.get_or_init(|| self.mask.additive())
    }
    fn forward(&self, products: &Tensor<4>, i0: usize, c: usize, scale: f64) -> (Tensor<4>, Tensor<5>) {
        kernels::attention_probs(products, self.mask, i0, c, scale).unwrap_or_else(|| kernels::reference::attention_probs(products, self.additive(), i0, c, scale))
    }
    #[allow(clippy::too_many_arguments)]
    fn backward(&self, products: &Tensor<4>, dprobs: &Tensor<4>, lse: &Tensor<5>, row_dot: &Tensor<5>, i0: usize, c: usize, scale: f64) -> (Tensor<4>, Tensor<4>) {
        kernels::attention_probs_backward(products, dprobs, self.mask, lse, row_dot, i0, c, scale)
            .unwrap_or_else(|| kernels::reference::attention_probs_backward(products, dprobs, self.additive(), lse, row_dot, i0, c, scale))
    }
}

/// The op's settings: the products' dtype and the query positions per chunk.
#[derive(Debug, Clone, Copy)]
struct Settings {
    compute: FloatDType,
    chunk: usize,
}

#[derive(Debug, Clone)]
struct Saved<B: Gemm> {
    q: NodeId,
    k: NodeId,
    v: NodeId,
    mask: SavedMask<B>,
    /// `[b, kv_heads, groups, s, hd]` the output, for rowsum(dO O).
    output: FloatTensor<B>,
    /// `[b, kv_heads, groups, s, 1]`
    lse: FloatTensor<B>,
    settings: Settings,
}

/// The dimensions of one call: `b`, kv heads, groups, queries, keys, head dim.
struct Dims {
    b: usize,
    nkv: usize,
    groups: usize,
    s: usize,
    t: usize,
    hd: usize,
}

impl Dims {
    fn of(q: &Tensor<4>, k: &Tensor<4>) -> Dims {
        let [b, nh, s, hd] = q.dims();
        let [_, nkv, t, _] = k.dims();
        Dims { b, nkv, groups: nh / nkv, s, t, hd }
    }
    fn scale(&self) -> f64 {
        1.0 / (self.hd as f64).sqrt()
    }
    /// Keys a chunk of queries ending at `i1` can see under a causal mask: `0..key_limit`.
    fn key_limit(&self, i1: usize) -> usize {
        (self.t - self.s + i1).min(self.t)
    }
    /// Rows `i0..i1` of every group of a `[b, nkv, groups, s, x]` tensor, as `[b, nkv, groups * c, x]`.
    fn rows(&self, t: &Tensor<5>, i0: usize, i1: usize) -> Tensor<4> {
        let [b, nkv, g, _, x] = t.dims();
        t.clone().slice([0..b, 0..nkv, 0..g, i0..i1, 0..x]).reshape([b, nkv, g * (i1 - i0), x])
    }
}

/// The first `limit` keys (or values) `[b, nkv, limit, hd]`.
fn first_keys(t: &Tensor<4>, limit: usize) -> Tensor<4> {
    let [b, nkv, _, hd] = t.dims();
    t.clone().slice([0..b, 0..nkv, 0..limit, 0..hd])
}

/// `Q K^T` of a chunk's query rows `q_c` `[b, nkv, groups * c, hd]` over the keys `k_c` they can
/// see, in the products' dtype: the softmax's input, before scale and mask.
fn chunk_products(q_c: Tensor<4>, k_c: Tensor<4>) -> Tensor<4> {
    matmul(q_c, k_c.swap_dims(2, 3))
}

/// Output `[b, kv_heads, groups, s, hd]` and log-sum-exp `[b, kv_heads, groups, s, 1]`.
fn forward(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &KeyMask, settings: Settings) -> (Tensor<5>, Tensor<5>) {
    let d = Dims::of(&q, &k);
    let softmax = ChunkSoftmax::new(mask);
    let qg = q.reshape([d.b, d.nkv, d.groups, d.s, d.hd]).cast(settings.compute);
    let (k_c, v_c) = (k.cast(settings.compute), v.cast(settings.compute));
    let (mut outputs, mut lses) = (Vec::new(), Vec::new());
    for (i0, i1) in row_chunks(d.s, settings.chunk) {
        let (c, limit) = (i1 - i0, d.key_limit(i1));
        let products = chunk_products(d.rows(&qg, i0, i1), first_keys(&k_c, limit));
        let (p, lse) = softmax.forward(&products, i0, c, d.scale());
        outputs.push(matmul_f32(p, first_keys(&v_c, limit)).reshape([d.b, d.nkv, d.groups, c, d.hd]));
        lses.push(lse);
    }
    (Tensor::cat(outputs, 3), Tensor::cat(lses, 3))
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Gemm> Backward<B, 3> for AttentionBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let saved = ops.state;
        let settings = saved.settings;
        let q = inner::<B, 4>(checkpointer.retrieve_node_output(saved.q));
        let k = inner::<B, 4>(checkpointer.retrieve_node_output(saved.k));
        let v = inner::<B, 4>(checkpointer.retrieve_node_output(saved.v));
        let (mask, output, lse) = (saved.mask.key_mask(), inner::<B, 5>(saved.output), inner::<B, 5>(saved.lse));
        let softmax = ChunkSoftmax::new(&mask);
        let d = Dims::of(&q, &k);
        // each gradient in its input's dtype (bf16 queries, keys and values get bf16 gradients):
        // an f32 gradient registered for a bf16 node reaches ops that take one dtype for both
        let dtype_of = |t: &Tensor<4>| FloatDType::from(t.dtype());
        let (q_dtype, k_dtype, v_dtype) = (dtype_of(&q), dtype_of(&k), dtype_of(&v));
        let grad = inner::<B, 4>(grads.consume::<B>(&ops.node)).reshape([d.b, d.nkv, d.groups, d.s, d.hd]);
        let qg = q.reshape([d.b, d.nkv, d.groups, d.s, d.hd]).cast(settings.compute);
        let (k_c, v_c) = (k.cast(settings.compute), v.cast(settings.compute));
        // rowsum(dO O) of every query at once: one reduction over contiguous rows, not one over
        // each chunk's strided slice (four slow launches per layer in the GPU profile)
        let row_dots = (grad.clone() * output.clone()).sum_dim(4);
        let mut dq = Vec::new();
        // A chunk's dK, dV cover its first `limit` keys; the last chunk (the first one here) sees them all.
        let (mut dk, mut dv): (Option<Tensor<4>>, Option<Tensor<4>>) = (None, None);
        for (i0, i1) in row_chunks(d.s, settings.chunk).collect::<Vec<_>>().into_iter().rev() {
            let (c, limit) = (i1 - i0, d.key_limit(i1));
            let (k_l, v_l) = (first_keys(&k_c, limit), first_keys(&v_c, limit));
            let q_c = d.rows(&qg, i0, i1);
            let lse_c = lse.clone().slice([0..d.b, 0..d.nkv, 0..d.groups, i0..i1, 0..1]);
            let products = chunk_products(q_c.clone(), k_l.clone());
            let do_c = grad.clone().slice([0..d.b, 0..d.nkv, 0..d.groups, i0..i1, 0..d.hd]);
            let row_dot = row_dots.clone().slice([0..d.b, 0..d.nkv, 0..d.groups, i0..i1, 0..1]);
            let do_flat = do_c.reshape([d.b, d.nkv, d.groups * c, d.hd]).cast(settings.compute);
            let dprobs = matmul(do_flat.clone(), v_l.swap_dims(2, 3));
            let (p, ds) = softmax.backward(&products, &dprobs, &lse_c, &row_dot, i0, c, d.scale());
            dq.push(matmul_f32(ds.clone(), k_l).reshape([d.b, d.nkv, d.groups, c, d.hd]));
            dk = Some(matmul_add_f32(dk, ds.swap_dims(2, 3), q_c));
            dv = Some(matmul_add_f32(dv, p.swap_dims(2, 3), do_flat));
        }
        let [q_parent, k_parent, v_parent] = ops.parents;
        if let Some(node) = q_parent {
            dq.reverse();
            let dq = Tensor::cat(dq, 3).reshape([d.b, d.nkv * d.groups, d.s, d.hd]);
            grads.register::<B>(node.id, primitive::<B, 4>(kernels::reference::cast_to(dq, q_dtype)));
        }
        if let (Some(node), Some(dk)) = (k_parent, dk) {
            grads.register::<B>(node.id, primitive::<B, 4>(kernels::reference::cast_to(dk, k_dtype)));
        }
        if let (Some(node), Some(dv)) = (v_parent, dv) {
            grads.register::<B>(node.id, primitive::<B, 4>(kernels::reference::cast_to(dv, v_dtype)));
        }
    }
}

fn autodiff_attention<B: Gemm, C: CheckpointStrategy>(
    q: FloatTensor<Autodiff<B, C>>,
    k: FloatTensor<Autodiff<B, C>>,
    v: FloatTensor<Autodiff<B, C>>,
    mask: SavedMask<B>,
    settings: Settings,
) -> FloatTensor<Autodiff<B, C>>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    let (qi, ki) = (inner::<B, 4>(q.primitive().clone()), inner::<B, 4>(k.primitive().clone()));
    let d = Dims::of(&qi, &ki);
    let (output, lse) = forward(qi, ki, inner::<B, 4>(v.primitive().clone()), &mask.clone().key_mask(), settings);
    let result = primitive::<B, 4>(output.clone().reshape([d.b, d.nkv * d.groups, d.s, d.hd]));
    match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let saved = Saved::<B> {
                q: prep.checkpoint(&q),
                k: prep.checkpoint(&k),
                v: prep.checkpoint(&v),
                mask,
                output: primitive::<B, 5>(output),
                lse: primitive::<B, 5>(lse),
                settings,
            };
            prep.finish(saved, result)
        }
        OpsKind::UnTracked(prep) => prep.finish(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::{Device, TensorData};
    use burn::tensor::activation::softmax;

    fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let values = crate::check::Rng::new(seed).normals(shape.iter().product(), 1.0);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Causal `[b, 1, s, s]`, with the first two positions of the second row padding (blocked as keys).
    fn causal_mask(b: usize, s: usize, device: &Device) -> Tensor<4> {
        let mut m = vec![0f32; b * s * s];
        for r in 0..b {
            for i in 0..s {
                for j in 0..s {
                    if j > i || (r == 1 && j < 2 && j != i) {
                        m[(r * s + i) * s + j] = -1e30;
                    }
                }
            }
        }
        Tensor::<4>::from_data(TensorData::new(m, [b, 1, s, s]), device)
    }

    /// [`causal_mask`] as each query's run of keys.
    fn causal_runs(b: usize, s: usize, device: &Device) -> KeyMask {
        let runs: Vec<(u32, u32)> = (0..b).flat_map(|r| (0..s as u32).map(move |i| (if r == 1 && i >= 2 { 2 } else if r == 1 { i } else { 0 }, i + 1))).collect();
        KeyMask::from_runs(&runs, b, s, device)
    }

    /// The output and the gradients of q, k, v under `sum(w ⊙ out)`, through the op (its mask
    /// additive, or as runs) or as burn's graph (the model's attention before the op: grouped
    /// heads, additive mask, softmax in f32).
    fn run(use_op: bool, compute: FloatDType, chunk: usize, checkpointing: bool) -> [TensorData; 4] {
        run_with(use_op, false, compute, chunk, checkpointing)
    }

    fn run_with(use_op: bool, runs: bool, compute: FloatDType, chunk: usize, checkpointing: bool) -> [TensorData; 4] {
        let device = Device::default().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let (b, nh, nkv, s, hd) = (2, 6, 2, 7, 4);
        let q = random([b, nh, s, hd], 1, &device).require_grad();
        let k = random([b, nkv, s, hd], 2, &device).require_grad();
        let v = random([b, nkv, s, hd], 3, &device).require_grad();
        let w = random([b, nh, s, hd], 4, &device);
        let mask = causal_mask(b, s, &device);
        let key_mask = if runs { causal_runs(b, s, &device) } else { KeyMask::Additive(mask.clone()) };
        let out = if use_op {
            attention_through_op(&q, &k, &v, &key_mask, compute, chunk).expect("flex tensors")
        } else {
            let groups = nh / nkv;
            let qg = q.clone().reshape([b, nkv, groups * s, hd]).cast(compute);
            let scores = qg.matmul(k.clone().cast(compute).swap_dims(2, 3)).cast(FloatDType::F32).reshape([b, nkv, groups, s, s]);
            let scores = scores * (1.0 / (hd as f64).sqrt()) + mask.clone().unsqueeze_dim::<5>(1);
            let p = softmax(scores, 4).reshape([b, nkv, groups * s, s]).cast(compute);
            p.matmul(v.clone().cast(compute)).cast(FloatDType::F32).reshape([b, nh, s, hd])
        };
        let grads = (out.clone() * w).sum().backward();
        [out.into_data(), q.grad(&grads).unwrap().into_data(), k.grad(&grads).unwrap().into_data(), v.grad(&grads).unwrap().into_data()]
    }

    #[test]
    fn the_op_gives_the_graphs_output_and_gradients() {
        for (compute, tol) in [(FloatDType::F32, 1e-5), (FloatDType::BF16, 5e-2)] {
            let reference = run(false, compute, 1, false);
            for chunk in [1, 3, 7, 64] {
                let ours = run(true, compute, chunk, false);
                crate::check::assert_all_close(&["output", "dq", "dk", "dv"], &ours, &reference, tol, &format!("{compute:?}, chunks of {chunk}"));
            }
            // with gradient checkpointing the graph is another autodiff backend type: the op still runs
            let ours = run(true, compute, 3, true);
            crate::check::assert_all_close(&["output", "dq", "dk", "dv"], &ours, &reference, tol, &format!("{compute:?}, gradient checkpointing"));
            // the mask as runs (what the model sends where the kernels run)
            let ours = run_with(true, true, compute, 3, false);
            crate::check::assert_all_close(&["output", "dq", "dk", "dv"], &ours, &reference, tol, &format!("{compute:?}, mask as runs"));
        }
    }

    #[test]
    fn the_test_runs_are_the_test_mask() {
        let device = Device::default();
        assert_eq!(causal_runs(2, 7, &device).additive().into_data(), causal_mask(2, 7, &device).into_data());
    }

    #[test]
    fn gradients_come_in_the_inputs_dtype() {
        // the model hands the op bf16 queries, keys and values when the fused kernels run
        let device = Device::default().autodiff();
        let (b, nh, nkv, s, hd) = (1, 4, 2, 5, 4);
        let q = random([b, nh, s, hd], 1, &device).cast(FloatDType::BF16).require_grad();
        let k = random([b, nkv, s, hd], 2, &device).cast(FloatDType::BF16).require_grad();
        let v = random([b, nkv, s, hd], 3, &device).require_grad();
        let mask = causal_mask(b, s, &device);
        let out = attention_through_op(&q, &k, &v, &KeyMask::Additive(mask), FloatDType::BF16, 2).expect("flex tensors");
        let grads = out.sum().backward();
        assert_eq!(q.grad(&grads).unwrap().dtype(), FloatDType::BF16.into());
        assert_eq!(k.grad(&grads).unwrap().dtype(), FloatDType::BF16.into());
        assert_eq!(v.grad(&grads).unwrap().dtype(), FloatDType::F32.into());
    }

    #[test]
    fn the_untracked_forward_gives_the_graphs_output() {
        let device = Device::default();
        let (b, nh, nkv, s, hd) = (2, 6, 2, 7, 4);
        let (q, k, v) = (random([b, nh, s, hd], 1, &device), random([b, nkv, s, hd], 2, &device), random([b, nkv, s, hd], 3, &device));
        let mask = causal_mask(b, s, &device);
        let groups = nh / nkv;
        let scores = q.clone().reshape([b, nkv, groups * s, hd]).matmul(k.clone().swap_dims(2, 3)).reshape([b, nkv, groups, s, s]);
        let p = softmax(scores * (1.0 / (hd as f64).sqrt()) + mask.clone().unsqueeze_dim::<5>(1), 4).reshape([b, nkv, groups * s, s]);
        let reference = p.matmul(v.clone()).reshape([b, nh, s, hd]).into_data();
        for (key_mask, form) in [(KeyMask::Additive(mask.clone()), "additive"), (causal_runs(b, s, &device), "runs")] {
            for chunk in [1, 3, 7, 64] {
                let ours = attention_untracked_anywhere(&q, &k, &v, &key_mask, FloatDType::F32, chunk).into_data();
                crate::check::assert_all_close(&["output"], &[ours], &[reference.clone()], 1e-5, &format!("{form}, chunks of {chunk}"));
            }
        }
    }

    #[test]
    fn without_autodiff_there_is_no_op() {
        let device = Device::default();
        let x = random([1, 2, 3, 4], 5, &device);
        let mask = Tensor::<4>::zeros([1, 1, 3, 3], &device);
        assert!(attention_through_op(&x, &x, &x, &KeyMask::Additive(mask), FloatDType::F32, 2).is_none());
    }
}
