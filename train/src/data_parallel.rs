//! What the trainers do when several processes share a step (r1kit-dist's `Group`): sum the
//! ranks' gradients, so each rank holds the gradient of the whole step and takes the same
//! optimizer step from the same weights.

use anyhow::{Context, Result};
use r1kit_dist::Group;
use r1kit_model::burn::prelude::*;
use r1kit_model::Model;

use crate::grads::{to_vec, GradMap};
use crate::params::Freeze;

/// Sums `grads` over the ranks, in place. A parameter that took no part in any rank's loss stays
/// absent (as in a single process); one that did on some ranks only counts zeros for the others.
pub fn all_reduce_gradients(group: &mut Group, grads: &mut GradMap, model: &Model, freeze: &Freeze) -> Result<()> {
    let params: Vec<(String, Tensor<2>)> = model.parameters().into_iter().filter(|(name, _)| !freeze.is_frozen(name)).collect();
    let present: Vec<f32> = params.iter().map(|(name, _)| grads.contains_key(name) as u8 as f32).collect();
    if params.first().is_some_and(|(_, t)| r1kit_gpu::nccl_applies(&t.device())) {
        return all_reduce_on_gpus(group, grads, &params, present);
    }
    // one message: a presence flag per parameter, then every gradient (zeros where absent)
    let total: usize = params.iter().map(|(_, t)| t.shape().num_elements()).sum();
    let mut flat = present;
    flat.reserve(total);
    for (name, t) in &params {
        match grads.get(name) {
            Some(g) => flat.extend(to_vec(g)),
            None => flat.extend(std::iter::repeat_n(0.0, t.shape().num_elements())),
        }
    }
    group.all_reduce_sum(&mut flat).context("summing the gradients over the ranks")?;
    let (present, values) = flat.split_at(params.len());
    regroup(grads, &params, present, |_, range, dims, device| Tensor::from_data(TensorData::new(values[range].to_vec(), dims), device));
    Ok(())
}

/// `grads` again from the summed presence flags and the summed gradients in parameter order:
/// `take(index, range, dims, device)` is the gradient of parameter `index`, whose values lie at
/// `range` when the gradients are laid end to end.
fn regroup(grads: &mut GradMap, params: &[(String, Tensor<2>)], present: &[f32], mut take: impl FnMut(usize, std::ops::Range<usize>, [usize; 2], &Device) -> Tensor<2>) {
    grads.clear();
    let mut at = 0;
    for (index, ((name, t), &seen)) in params.iter().zip(present).enumerate() {
        let n = t.shape().num_elements();
        if seen > 0.0 {
            grads.insert(name.clone(), take(index, at..at + n, t.shape().dims(), &t.device()));
        }
        at += n;
    }
}

/// rank 0's NCCL unique id handed to every rank over `group` (bytes in f64s: one all-gather); the
/// id itself where there is no group (one process).
fn exchange_nccl_id(group: Option<&mut Group>, id: Option<Vec<u8>>) -> Result<Vec<u8>> {
    let Some(group) = group else {
        return id.context("one process is rank 0 and makes the id");
    };
    let mine: Vec<f64> = id.unwrap_or_default().into_iter().map(f64::from).collect();
    Ok(group.all_gather_f64(&mine).context("handing out NCCL's unique id")?.into_iter().map(|b| b as u8).collect())
}

/// What [`check_nccl`] measured on this rank.
#[derive(Debug)]
pub struct NcclCheck {
    pub rank: usize,
    pub ranks: usize,
    pub elements: usize,
    /// Largest |NCCL sum - host sum| (exact: the values are small multiples of 1/2).
    pub max_error: f32,
    /// Seconds per all-reduce of `elements` f32 (mean of the timed repeats, each waited for).
    pub seconds: f64,
}

/// NCCL on this process's GPU (`device`): joins the communicator (one process, or the ranks that
/// `r1kit launch` started), sums values that depend on the rank (in three tensors of one group)
/// and compares them with the sum computed on the host, then times `repeats` all-reduces of
/// `elements` floats.
pub fn check_nccl(device: &Device, elements: usize, repeats: usize) -> Result<NcclCheck> {
    if !r1kit_gpu::nccl_applies(device) {
        anyhow::bail!("nccl: needs a CUDA device in a CUDA build without fusion (and R1KIT_NCCL unset), got {device:?}");
    }
    let mut group = Group::from_env()?;
    let (rank, ranks) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
    let value = |i: usize, r: usize| (i % 97) as f32 * 0.5 + r as f32;
    let mine: Vec<f32> = (0..elements).map(|i| value(i, rank)).collect();
    // three tensors of unequal lengths in one NCCL group, as a model's gradients go
    let cuts = [0, elements / 2, elements / 2 + elements / 3, elements];
    let parts: Vec<Tensor<1>> = cuts.windows(2).map(|w| Tensor::<1>::from_data(TensorData::new(mine[w[0]..w[1]].to_vec(), [w[1] - w[0]]), device)).collect();
    let sums = r1kit_gpu::nccl_all_reduce_sum_each(parts, rank, ranks, |id| exchange_nccl_id(group.as_mut(), id))?;
    let sum = Tensor::cat(sums, 0);
    let got = sum.clone().try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("nccl: reading the sum back: {e:?}"))?;
    let max_error = got.iter().enumerate().map(|(i, &x)| (x - (0..ranks).map(|r| value(i, r)).sum::<f32>()).abs()).fold(0.0, f32::max);
    r1kit_gpu::take_async_error()?;
    // timed on a buffer this process owns, summed in place again and again (the values grow, the
    // work does not), each all-reduce waited for
    let mut x = sum;
    let started = std::time::Instant::now();
    for _ in 0..repeats {
        x = r1kit_gpu::nccl_all_reduce_sum_each(vec![x], rank, ranks, |_| unreachable!("joined above"))?.remove(0);
        device.sync().map_err(|e| anyhow::anyhow!("nccl: waiting for the all-reduce: {e:?}"))?;
    }
    r1kit_gpu::take_async_error()?;
    Ok(NcclCheck { rank, ranks, elements, max_error, seconds: started.elapsed().as_secs_f64() / repeats.max(1) as f64 })
}

/// [`all_reduce_gradients`] on GPUs: the presence flags over the host collective (which also names
/// a dead rank), the gradients through NCCL where they lie (one NCCL group, no copy into a bucket),
/// never leaving the GPU.
fn all_reduce_on_gpus(group: &mut Group, grads: &mut GradMap, params: &[(String, Tensor<2>)], mut present: Vec<f32>) -> Result<()> {
    group.all_reduce_sum(&mut present).context("summing which gradients the ranks have")?;
    // taken out of the map, so each gradient's buffer is this call's alone and is summed in place
    let parts: Vec<Tensor<1>> = params
        .iter()
        .map(|(name, t)| {
            let n = t.shape().num_elements();
            grads.remove(name).map_or_else(|| Tensor::zeros([n], &t.device()), |g| g.reshape([n]))
        })
        .collect();
    let (rank, size) = (group.rank(), group.size());
    let sums = r1kit_gpu::nccl_all_reduce_sum_each(parts, rank, size, |id| exchange_nccl_id(Some(group), id)).context("summing the gradients over the ranks (NCCL)")?;
    // NCCL's kernel waits on the GPU for every rank; a rank that died inside it would leave this
    // one waiting for ever in its next read from the device. So wait here, within the timeout.
    if let Some(first) = sums.first() {
        let _watch = group.watch("summing the gradients over NCCL");
        first.device().sync().map_err(|e| anyhow::anyhow!("waiting for NCCL's sum: {e:?}"))?;
    }
    r1kit_gpu::take_async_error()?;
    regroup(grads, params, &present, |index, _, dims, _| sums[index].clone().reshape(dims));
    Ok(())
}
