//! Gradient checkpointing: how a training graph trades memory for recomputation, and the
//! per-block op behind [`Checkpointing::Blocks`].
//!
//! A transformer block under `Blocks` is one autodiff op that keeps only its input. Its forward
//! runs the block outside autodiff; its backward runs the block again, tracked, on fresh leaves
//! (a graph of its own: burn's outer backward holds its own graph's lock while it runs a step, and
//! a separate graph never meets that lock), then hands the input's and the parameters' gradients
//! to the outer graph. So a block keeps one `[batch, seq, hidden]` tensor for the backward pass
//! instead of dozens, for a second forward of every block.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::*;
use burn::tensor::FloatDType;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::rope::RopeTables;
use crate::transformer::{block_forward, Layer};

/// How a training graph trades memory for recomputation. In a config: `false` (off), `true` or
/// `"ops"`, `"blocks"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Setting", into = "Setting")]
pub enum Checkpointing {
    /// Every activation the backward pass needs is kept.
    #[default]
    Off,
    /// burn's balanced strategy: memory-bound activations (norms, activations, casts) are
    /// recomputed in the backward pass, the products' outputs kept.
    Ops,
    /// Each transformer block keeps only its input and runs its forward again in the backward
    /// pass: the least memory, about one more forward pass of time.
    Blocks,
}

/// The config forms of [`Checkpointing`]: a bool (as before there were modes) or a name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Setting {
    Flag(bool),
    Mode(String),
}

impl TryFrom<Setting> for Checkpointing {
    type Error = String;
    fn try_from(s: Setting) -> std::result::Result<Self, String> {
        match s {
            Setting::Flag(false) => Ok(Checkpointing::Off),
            Setting::Flag(true) => Ok(Checkpointing::Ops),
            Setting::Mode(m) => m.parse(),
        }
    }
}

impl From<Checkpointing> for Setting {
    fn from(c: Checkpointing) -> Setting {
        match c {
            Checkpointing::Off => Setting::Flag(false),
            Checkpointing::Ops => Setting::Mode("ops".into()),
            Checkpointing::Blocks => Setting::Mode("blocks".into()),
        }
    }
}

impl std::str::FromStr for Checkpointing {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" | "false" => Ok(Checkpointing::Off),
            "ops" | "true" => Ok(Checkpointing::Ops),
            "blocks" => Ok(Checkpointing::Blocks),
            other => Err(format!("gradient checkpointing '{other}': expected false, true, \"ops\" or \"blocks\"")),
        }
    }
}

/// Parents of the op: the block's input, then its parameters (at most 14: Qwen2's biases or
/// Qwen3's head norms), padded with an untracked tensor.
const PARENTS: usize = 15;

/// What the backward pass needs to run the block again, outside autodiff: its input, the block
/// with its parameters, and the constants it read.
#[derive(Clone, Debug)]
struct Saved {
    x: Tensor<3>,
    layer: Layer,
    config: ModelConfig,
    compute: FloatDType,
    rope: RopeTables,
    mask: r1kit_gpu::KeyMask,
}

#[derive(Debug)]
struct BlockBackward;

impl<B: Backend> Backward<B, PARENTS> for BlockBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, PARENTS>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let s = ops.state;
        let dy: Tensor<3> = Tensor::from_primitive::<B>(grads.consume::<B>(&ops.node));
        // fresh leaves (a graph of the recomputation's own), tracked where the outer graph wants a gradient
        let x = s.x.autodiff();
        let x = if ops.parents[0].is_some() { x.require_grad() } else { x };
        let params: Vec<Tensor<2>> = s
            .layer
            .tensors()
            .into_iter()
            .zip(&ops.parents[1..])
            .map(|(p, parent)| if parent.is_some() { p.autodiff().require_grad() } else { p.autodiff() })
            .collect();
        let layer = s.layer.with_tensors(params.clone());
        let rope = RopeTables { cos: s.rope.cos.autodiff(), sin: s.rope.sin.autodiff() };
        let y = block_forward(&s.config, s.compute, &layer, x.clone(), &rope, &s.mask.autodiff(), None);
        let inner = (y * dy.autodiff()).sum().backward();
        if let (Some(node), Some(dx)) = (&ops.parents[0], x.grad(&inner)) {
            grads.register::<B>(node.id, to_primitive::<B, 3>(dx.inner()));
        }
        for (p, parent) in params.iter().zip(&ops.parents[1..]) {
            if let (Some(node), Some(dp)) = (parent, p.grad(&inner)) {
                grads.register::<B>(node.id, to_primitive::<B, 2>(dp.inner()));
            }
        }
    }
}

fn to_primitive<B: Backend, const D: usize>(t: Tensor<D>) -> FloatTensor<B>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    t.try_into_primitive::<B>().unwrap_or_else(|_| unreachable!("computed on the inner backend"))
}

/// The block as one op that keeps only `x` for the backward pass; `None` unless `x` is a tracked
/// tensor of an autodiff device (then the caller runs the block as usual).
pub(crate) fn recomputed_block(config: &ModelConfig, compute: FloatDType, layer: &Layer, x: Tensor<3>, rope: &RopeTables, mask: &r1kit_gpu::KeyMask) -> Option<Tensor<3>> {
    #[cfg(feature = "cuda")]
    if let Some(y) = through::<burn::backend::Cube>(config, compute, layer, &x, rope, mask) {
        return Some(y);
    }
    through::<burn::backend::Flex>(config, compute, layer, &x, rope, mask)
}

fn through<B: Backend>(config: &ModelConfig, compute: FloatDType, layer: &Layer, x: &Tensor<3>, rope: &RopeTables, mask: &r1kit_gpu::KeyMask) -> Option<Tensor<3>>
where
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, NoCheckpointing>> + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>,
{
    through_with::<B, NoCheckpointing>(config, compute, layer, x, rope, mask).or_else(|| through_with::<B, BalancedCheckpointing>(config, compute, layer, x, rope, mask))
}

fn through_with<B: Backend, C: CheckpointStrategy>(config: &ModelConfig, compute: FloatDType, layer: &Layer, x: &Tensor<3>, rope: &RopeTables, mask: &r1kit_gpu::KeyMask) -> Option<Tensor<3>>
where
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let xa = x.clone().try_into_primitive::<Autodiff<B, C>>().ok()?;
    let tensors = layer.tensors();
    let pa: Vec<FloatTensor<Autodiff<B, C>>> = tensors.iter().map(|p| p.clone().try_into_primitive::<Autodiff<B, C>>().ok()).collect::<Option<_>>()?;
    assert!(pa.len() < PARENTS, "a block has at most {} parameters", PARENTS - 1);
    // the forward, outside autodiff
    let x_in: Tensor<3> = Tensor::from_primitive::<B>(xa.primitive().clone());
    let inner_layer = layer.with_tensors(pa.iter().map(|p| Tensor::from_primitive::<B>(p.primitive().clone())).collect());
    let rope_in = RopeTables { cos: rope.cos.clone().inner(), sin: rope.sin.clone().inner() };
    let mask_in = mask.inner();
    let y = block_forward(config, compute, &inner_layer, x_in.clone(), &rope_in, &mask_in, None);
    // parents: the input, the parameters, then an untracked tensor as padding
    let pad = crate::device::autodiff_like(Tensor::<2>::zeros([1, 1], &mask_in.device()), x).try_into_primitive::<Autodiff<B, C>>().ok()?;
    let mut nodes = vec![xa.node()];
    nodes.extend(pa.iter().map(|p| p.node()));
    while nodes.len() < PARENTS {
        nodes.push(pad.node());
    }
    let Ok(nodes) = <[_; PARENTS]>::try_from(nodes) else { unreachable!("resized to PARENTS") };
    let output = match BlockBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let saved = Saved { x: x_in, layer: inner_layer, config: config.clone(), compute, rope: rope_in, mask: mask_in };
            prep.finish(saved, to_primitive::<B, 3>(y))
        }
        OpsKind::UnTracked(prep) => prep.finish(to_primitive::<B, 3>(y)),
    };
    Some(Tensor::from_primitive::<Autodiff<B, C>>(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_says_false_true_or_a_mode() {
        let parse = |s: &str| serde_json::from_str::<Checkpointing>(s);
        assert_eq!(parse("false").unwrap(), Checkpointing::Off);
        assert_eq!(parse("true").unwrap(), Checkpointing::Ops);
        assert_eq!(parse("\"ops\"").unwrap(), Checkpointing::Ops);
        assert_eq!(parse("\"blocks\"").unwrap(), Checkpointing::Blocks);
        let err = parse("\"layers\"").unwrap_err().to_string();
        assert!(err.contains("'layers'") && err.contains("\"blocks\""), "{err}");
        for mode in [Checkpointing::Off, Checkpointing::Ops, Checkpointing::Blocks] {
            assert_eq!(parse(&serde_json::to_string(&mode).unwrap()).unwrap(), mode, "round trip");
        }
        assert_eq!("blocks".parse::<Checkpointing>(), Ok(Checkpointing::Blocks));
    }
}
