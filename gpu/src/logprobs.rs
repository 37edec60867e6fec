//! Token log-probabilities from hidden states as one autodiff op: the LM head's product,
//! log-softmax and gather, chunk by chunk, keeping only each row's log-sum-exp for the backward
//! pass, which recomputes a chunk's logits and turns them into both gradients at once:
//! d logits = g (onehot(target) - softmax), d hidden = d logits @ W, d W = d logits^T @ hidden.
//! Written as a plain graph, every chunk's `[rows, vocab]` logits and softmax would stay alive
//! until the backward pass (two f32 copies of the whole batch's logits).
//!
//! The op is generic over the backend's primitive product ([`Gemm`]); on a CUDA autodiff device
//! [`token_logprobs`] takes it, and the CPU tests run it on flex ([`token_logprobs_through_op`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::prelude::{Int, Tensor, TensorData};
use burn::tensor::FloatDType;

use crate::kernels;
use crate::matmul::{matmul, matmul_add_f32, matmul_f32, Gemm};
use crate::primitive::{inner, primitive};
use crate::row_chunks;

/// Rows of the flattened `[batch * seq, hidden]` block projected to the vocabulary at a time (the
/// model's default): 1,024 rows of a 151,936-id vocabulary are 0.3 GB of bf16 logits.
pub const DEFAULT_CHUNK_ROWS: usize = 1024;

/// How [`token_logprobs`] computes: products in `compute` (f32 results), `chunk_rows` rows of
/// logits at a time, and whether to return each row's entropy as well.
#[derive(Debug, Clone, Copy)]
pub struct LogprobOptions {
    pub compute: FloatDType,
    pub chunk_rows: usize,
    pub with_entropy: bool,
}

/// log p(target) per row `[n]` and, when asked, the entropy per row `[n]` (not tracked):
/// `hidden` `[n, h]`, `head` `[vocab, h]`. `None` unless both tensors are on a CUDA autodiff
/// device (elsewhere the model's chunked graph does the job).
pub fn token_logprobs(hidden: &Tensor<2>, head: &Tensor<2>, targets: &[u32], options: LogprobOptions) -> Option<(Tensor<1>, Option<Tensor<1>>)> {
    #[cfg(feature = "cuda")]
    {
        through_op::<burn::backend::Cube>(hidden, head, targets, options)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (hidden, head, targets, options);
        None
    }
}

/// [`token_logprobs`] through the op on flex, for the CPU tests.
#[doc(hidden)]
pub fn token_logprobs_through_op(hidden: &Tensor<2>, head: &Tensor<2>, targets: &[u32], options: LogprobOptions) -> Option<(Tensor<1>, Option<Tensor<1>>)> {
    through_op::<burn::backend::Flex>(hidden, head, targets, options)
}

fn through_op<B: Gemm>(hidden: &Tensor<2>, head: &Tensor<2>, targets: &[u32], options: LogprobOptions) -> Option<(Tensor<1>, Option<Tensor<1>>)>
where
    DispatchTensor: DispatchKindConversion<B>
        + DispatchKindConversion<Autodiff<B, NoCheckpointing>>
        + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>,
{
    let options = LogprobOptions { chunk_rows: options.chunk_rows.max(1), ..options };
    // A graph built with gradient checkpointing is another autodiff backend type.
    through_op_with::<B, NoCheckpointing>(hidden, head, targets, options).or_else(|| through_op_with::<B, BalancedCheckpointing>(hidden, head, targets, options))
}

fn through_op_with<B: Gemm, C: CheckpointStrategy>(hidden: &Tensor<2>, head: &Tensor<2>, targets: &[u32], options: LogprobOptions) -> Option<(Tensor<1>, Option<Tensor<1>>)>
where
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let (Ok(h), Ok(w)) = (hidden.clone().try_into_primitive::<Autodiff<B, C>>(), head.clone().try_into_primitive::<Autodiff<B, C>>()) else {
        return None;
    };
    let (logp, entropy) = autodiff_logprobs::<B, C>(h, w, targets, options);
    let entropy = entropy.map(|e| Tensor::<1>::from_primitive::<B>(e).to_device(&hidden.device()));
    Some((Tensor::from_primitive::<Autodiff<B, C>>(logp), entropy))
}

/// What the backward pass needs besides the two inputs.
#[derive(Debug, Clone)]
struct Saved<B: Gemm> {
    hidden: NodeId,
    head: NodeId,
    /// `[n]` each row's log-sum-exp over the vocabulary.
    lse: FloatTensor<B>,
    targets: Vec<i64>,
    options: LogprobOptions,
}

#[derive(Debug)]
struct LogprobBackward;

impl<B: Gemm> Backward<B, 2> for LogprobBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let saved = ops.state;
        let LogprobOptions { compute, chunk_rows, .. } = saved.options;
        let grad = inner::<B, 1>(grads.consume::<B>(&ops.node));
        let hidden = inner::<B, 2>(checkpointer.retrieve_node_output(saved.hidden));
        let head = inner::<B, 2>(checkpointer.retrieve_node_output(saved.head));
        let lse = inner::<B, 1>(saved.lse);
        let [n, h] = hidden.dims();
        let device = hidden.device();
        let head_c = head.clone().cast(compute);
        let mut d_hidden = Vec::new();
        let mut d_head: Option<Tensor<2>> = None;
        for (start, end) in row_chunks(n, chunk_rows) {
            let h_c = hidden.clone().slice([start..end, 0..h]);
            let logits = chunk_logits(h_c.clone(), &head_c, compute);
            let (lse, g) = (lse.clone().slice([start..end]), grad.clone().slice([start..end]));
            let ids = target_ids(&saved.targets[start..end], &device);
            let d_logits = kernels::logprob_rows_backward(&logits, &lse, &g, &ids, compute)
                .unwrap_or_else(|| kernels::reference::logprob_rows_backward(&logits, &lse, &g, &ids, compute));
            d_hidden.push(matmul_f32(d_logits.clone(), head_c.clone()));
            d_head = Some(matmul_add_f32(d_head, d_logits.transpose(), h_c.cast(compute)));
        }
        let [hidden_parent, head_parent] = ops.parents;
        if let Some(node) = hidden_parent {
            grads.register::<B>(node.id, primitive::<B, 2>(Tensor::cat(d_hidden, 0)));
        }
        if let (Some(node), Some(d_head)) = (head_parent, d_head) {
            grads.register::<B>(node.id, primitive::<B, 2>(d_head));
        }
    }
}

/// The forward pass as a node of the autodiff graph: log p(target) `[n]`, entropy `[n]` if asked.
fn autodiff_logprobs<B: Gemm, C: CheckpointStrategy>(
    hidden: FloatTensor<Autodiff<B, C>>,
    head: FloatTensor<Autodiff<B, C>>,
    targets: &[u32],
    options: LogprobOptions,
) -> (FloatTensor<Autodiff<B, C>>, Option<FloatTensor<B>>)
where
    DispatchTensor: DispatchKindConversion<B>,
{
    let h = inner::<B, 2>(hidden.primitive().clone());
    let w = inner::<B, 2>(head.primitive().clone());
    let (logp, lse, entropy) = forward(h, w, targets, options);
    let entropy = entropy.map(primitive::<B, 1>);
    let logp = primitive::<B, 1>(logp);
    let output = match LogprobBackward.prepare::<C>([hidden.node(), head.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let saved = Saved::<B> {
                hidden: prep.checkpoint(&hidden),
                head: prep.checkpoint(&head),
                lse: primitive::<B, 1>(lse),
                targets: targets.iter().map(|&t| t as i64).collect(),
                options,
            };
            prep.finish(saved, logp)
        }
        OpsKind::UnTracked(prep) => prep.finish(logp),
    };
    (output, entropy)
}

/// log p(target) `[n]`, the log-sum-exp `[n]` and, if asked, the entropy `[n]`, chunk by chunk
/// (the log-softmax of each chunk's logits one kernel where it applies).
fn forward(hidden: Tensor<2>, head: Tensor<2>, targets: &[u32], options: LogprobOptions) -> (Tensor<1>, Tensor<1>, Option<Tensor<1>>) {
    let LogprobOptions { compute, chunk_rows, with_entropy } = options;
    let [n, h] = hidden.dims();
    let device = hidden.device();
    let head_c = head.cast(compute);
    let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let (mut logps, mut lses, mut entropies) = (Vec::new(), Vec::new(), Vec::new());
    for (start, end) in row_chunks(n, chunk_rows) {
        let logits = chunk_logits(hidden.clone().slice([start..end, 0..h]), &head_c, compute);
        let ids = target_ids(&ids[start..end], &device);
        let (logp, lse, entropy) = kernels::logprob_rows(&logits, &ids, with_entropy).unwrap_or_else(|| kernels::reference::logprob_rows(&logits, &ids, with_entropy));
        logps.push(logp);
        lses.push(lse);
        entropies.extend(entropy);
    }
    let entropy = with_entropy.then(|| Tensor::cat(entropies, 0));
    (Tensor::cat(logps, 0), Tensor::cat(lses, 0), entropy)
}

/// `hidden_c @ head_c^T`, `[rows, vocab]` in the compute dtype (the log-softmax reads it in f32).
fn chunk_logits(hidden: Tensor<2>, head_c: &Tensor<2>, compute: FloatDType) -> Tensor<2> {
    matmul(hidden.cast(compute), head_c.clone().transpose())
}

fn target_ids(ids: &[i64], device: &burn::prelude::Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(ids.to_vec(), [ids.len(), 1]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::Device;
    use burn::tensor::activation::log_softmax;

    fn random(shape: [usize; 2], seed: u64, device: &Device) -> Tensor<2> {
        let values = crate::check::Rng::new(seed).normals(shape[0] * shape[1], 1.0);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Values, entropy and both gradients of `sum(w ⊙ logp)` (a weight per row), through the op or
    /// as burn's own graph.
    fn run(use_op: bool, compute: FloatDType, chunk_rows: usize, checkpointing: bool) -> [TensorData; 4] {
        let device = Device::default().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let (n, h, vocab) = (7, 5, 11);
        let hidden = random([n, h], 1, &device).require_grad();
        let head = random([vocab, h], 2, &device).require_grad();
        let w = random([n, 1], 3, &device).reshape([n]);
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 4 + 1) % vocab as u32).collect();
        let (logp, entropy) = if use_op {
            let options = LogprobOptions { compute, chunk_rows, with_entropy: true };
            let (l, e) = token_logprobs_through_op(&hidden, &head, &targets, options).expect("flex tensors");
            (l, e.unwrap())
        } else {
            let logits = hidden.clone().cast(compute).matmul(head.clone().cast(compute).transpose()).cast(FloatDType::F32);
            let all = log_softmax(logits, 1);
            let ids = target_ids(&targets.iter().map(|&t| t as i64).collect::<Vec<_>>(), &device);
            let d = all.clone().detach();
            (all.gather(1, ids).reshape([n]), (d.clone().exp() * d).sum_dim(1).neg().reshape([n]))
        };
        let grads = (logp.clone() * w).sum().backward();
        [logp.into_data(), entropy.into_data(), hidden.grad(&grads).unwrap().into_data(), head.grad(&grads).unwrap().into_data()]
    }

    #[test]
    fn the_op_gives_the_graphs_values_entropy_and_gradients() {
        for (compute, tol) in [(FloatDType::F32, 1e-5), (FloatDType::BF16, 3e-2)] {
            let reference = run(false, compute, 1, false);
            for chunk_rows in [1, 3, 7, 100] {
                let ours = run(true, compute, chunk_rows, false);
                crate::check::assert_all_close(&["logp", "entropy", "d hidden", "d head"], &ours, &reference, tol, &format!("{compute:?}, chunks of {chunk_rows}"));
            }
            // with gradient checkpointing the graph is another autodiff backend type: the op still runs
            let ours = run(true, compute, 3, true);
            crate::check::assert_all_close(&["logp", "entropy", "d hidden", "d head"], &ours, &reference, tol, &format!("{compute:?}, gradient checkpointing"));
        }
    }

    #[test]
    fn an_untracked_head_gets_no_gradient() {
        let device = Device::default().autodiff();
        let hidden = random([4, 3], 4, &device).require_grad();
        let head = random([6, 3], 5, &device);
        let (logp, entropy) = token_logprobs_through_op(&hidden, &head, &[0, 5, 2, 2], LogprobOptions { compute: FloatDType::F32, chunk_rows: 2, with_entropy: false }).unwrap();
        assert!(entropy.is_none());
        let grads = logp.sum().backward();
        assert!(head.grad(&grads).is_none());
        // d sum(logp) / d hidden = sum over rows of (onehot - p) @ W: finite and not all zero
        let g = hidden.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|x| x.abs() > 1e-3));
    }

    #[test]
    fn without_autodiff_there_is_no_op() {
        let device = Device::default();
        let (hidden, head) = (random([2, 3], 6, &device), random([4, 3], 7, &device));
        assert!(token_logprobs_through_op(&hidden, &head, &[1, 2], LogprobOptions { compute: FloatDType::F32, chunk_rows: 1, with_entropy: false }).is_none());
    }
}
