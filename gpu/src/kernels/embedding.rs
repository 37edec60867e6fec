//! The token embedding's lookup, `weight[ids]`, as an autodiff op whose backward scatters `dy`'s
//! rows into the weight's gradient with one kernel over every element of `dy` (an atomic f32 add
//! each: a token that appears twice adds twice). burn's own backward (`select_assign`) walks the
//! ids one after another in each of `hidden` units, 3.6 ms per 8,192-token micro-batch of the 0.5B
//! shape on an H200 (docs/gpu/RESULTS.md, Step 12).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::prelude::Tensor;
use burn::tensor::Int as IntKind;
use burn::tensor::DType;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{autodiff_primitive, buffer, cast, contiguous, elements, with_float_type, with_int_type, Cube};

#[cube(launch_unchecked)]
fn embedding_backward<F: Float, I: Int>(dy: &[F], ids: &[I], dweight: &mut [Atomic<f32>], hidden: usize, vocab: usize) {
    // a grid of (column blocks, rows), the rows split over y and z past CUDA's 65,535 per dimension
    let row = CUBE_POS_Z as usize * CUBE_COUNT_Y as usize + CUBE_POS_Y as usize;
    let column = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    if column < hidden && row < ids.len() {
        let id = usize::cast_from(ids[row]);
        // an id past the table (the model checks them before) adds nowhere rather than out of bounds
        if id < vocab {
            dweight[id * hidden + column].fetch_add(f32::cast_from(dy[row * hidden + column]));
        }
    }
}

/// `dweight[ids[r]] += dy[r]` for every row `r`, into a new f32 `[vocab, hidden]` of zeros.
fn scatter_rows(dy: CubeTensor, ids: &CubeTensor, vocab: usize) -> Option<CubeTensor> {
    let dy = contiguous(dy);
    let [rows, hidden] = dy.meta.shape().to_vec().try_into().ok()?;
    let device: burn::prelude::Device = Tensor::<2>::from_primitive::<Cube>(dy.clone()).device();
    let dweight = Tensor::<2>::zeros([vocab, hidden], &device).cast(burn::tensor::FloatDType::F32).try_into_primitive::<Cube>().ok()?;
    if elements(ids) != rows {
        return None;
    }
    if rows == 0 || hidden == 0 {
        return Some(dweight);
    }
    const UNITS: u32 = 256;
    let grid_rows = rows.min(65_535);
    with_float_type!(dy.dtype, F => with_int_type!(ids.dtype, I => unsafe {
        embedding_backward::launch_unchecked::<F, I>(
            &dy.client,
            CubeCount::Static(hidden.div_ceil(UNITS as usize) as u32, grid_rows as u32, rows.div_ceil(grid_rows) as u32),
            CubeDim::new_1d(UNITS),
            buffer(&dy),
            buffer(ids),
            buffer(&dweight),
            hidden,
            vocab,
        )
    }));
    Some(dweight)
}

/// See [`super::embedding`].
pub(super) fn embedding(weight: &Tensor<2>, ids: &Tensor<1, IntKind>) -> Option<Tensor<2>> {
    tracked::<NoCheckpointing>(weight, ids).or_else(|| tracked::<BalancedCheckpointing>(weight, ids))
}

/// The rows of `weight` at `ids` on the inner backend.
fn forward(weight: CubeTensor, ids: CubeTensor) -> CubeTensor {
    let rows = Tensor::<2>::from_primitive::<Cube>(weight).select(0, Tensor::<1, IntKind>::from_primitive::<Cube>(ids));
    rows.try_into_primitive::<Cube>().unwrap_or_else(|_| unreachable!("computed on Cube"))
}

#[derive(Debug)]
struct EmbeddingBackward;

impl Backward<Cube, 1> for EmbeddingBackward {
    /// The ids, the table's rows and dtype.
    type State = (CubeTensor, usize, DType);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Cube>(&ops.node);
        let (ids, vocab, dtype) = ops.state;
        let [weight_parent] = ops.parents;
        if let Some(node) = weight_parent {
            let dweight = scatter_rows(dy, &ids, vocab).expect("a float gradient of rank 2 and integer ids");
            grads.register::<Cube>(node.id, cast(dweight, dtype));
        }
    }
}

fn tracked<C: CheckpointStrategy>(weight: &Tensor<2>, ids: &Tensor<1, IntKind>) -> Option<Tensor<2>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Cube, C>>,
{
    let weight = autodiff_primitive::<C, 2>(weight)?;
    // an autodiff backend keeps integer tensors as its inner backend's
    let ids = contiguous(ids.clone().try_into_primitive::<Autodiff<Cube, C>>().ok()?);
    let [vocab, _] = weight.primitive().meta.shape().to_vec().try_into().ok()?;
    let dtype = weight.primitive().dtype;
    let out = forward(weight.primitive().clone(), ids.clone());
    let result = match EmbeddingBackward.prepare::<C>([weight.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((ids, vocab, dtype), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Cube, C>>(result))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::embedding;
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Int, Tensor, TensorData};

    /// Output and the table's gradient under `sum(w ⊙ out)`, by the op or by burn's select.
    fn run(fused: bool, checkpointing: bool) -> [TensorData; 2] {
        let device = Device::cpu().autodiff();
        let device = if checkpointing { device.gradient_checkpointing() } else { device };
        let (vocab, hidden) = (11, 300);
        let weight = Tensor::<2>::from_data(TensorData::new(Rng::new(1).normals(vocab * hidden, 1.0), [vocab, hidden]), &device).require_grad();
        // repeated ids (3 thrice, 0 twice), the last row of the table, a row never used
        let ids = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 0, 3, 10, 7, 0, 3, 1], [8]), &device);
        let w = Tensor::<2>::from_data(TensorData::new(Rng::new(2).normals(8 * hidden, 1.0), [8, hidden]), &device);
        let out = if fused { embedding(&weight, &ids).expect("a Cube device") } else { weight.clone().select(0, ids) };
        let grads = (out.clone() * w).sum().backward();
        [out.into_data(), weight.grad(&grads).unwrap().into_data()]
    }

    #[test]
    fn the_op_gives_burns_rows_and_gradient() {
        let reference = run(false, false);
        for checkpointing in [false, true] {
            assert_all_close(&["rows", "dweight"], &run(true, checkpointing), &reference, 1e-5, &format!("checkpointing {checkpointing}"));
        }
    }

    #[test]
    fn untracked_tables_are_left_to_burn() {
        let device = Device::cpu();
        let weight = Tensor::<2>::zeros([4, 3], &device);
        let ids = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        assert!(embedding(&weight, &ids).is_none());
    }
}
