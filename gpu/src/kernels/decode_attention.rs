//! Attention of one new query per row over the KV cache (a decode step), in one kernel.
//!
//! Why: at decode, burn's ops ran the grouped-query attention as two batched GEMMs of 6-7 query
//! rows each (cuBLAS picks a 32 x 32 tile for them), a cast, a scale, a mask add and a five-kernel
//! softmax over the `[rows, heads, slots]` scores: 10.8 of a 1.5B decode step's 19.1 ms
//! (docs/gpu/RESULTS.md, Step 9). Here the scores never leave the chip and each key and value is
//! read once; blocked slots (not yet written, left padding) are not read at all.
//!
//! One cube per (KV head, row): the query heads that share the KV head (`groups`) are its
//! queries. Keys go in blocks of one per unit, with a running maximum per query head (flash
//! decoding's online softmax): a unit scores its key against every query head; the block's maxima
//! come from a tree over shared memory; then the units, in slices of consecutive dims (a value
//! row read by consecutive units), each take every `slices`-th key of the block and add its `p v`
//! for every query head; the slices' shares are summed at the end. Blocks with no visible key
//! read no values.

use burn::prelude::Tensor;
use burn::tensor::DType;
use cubecl::prelude::*;

use super::launch::{buffer, cast, contiguous, cube_primitive, empty, row_units, with_float_type, Cube};

/// The additive mask's blocked entries are -1e30; anything below this is blocked (probability 0,
/// its key and value not read).
const BLOCKED_BELOW: f32 = -1.0e29;

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn decode_attention_kernel<F: Float, K: Float>(
    queries: &[F],
    keys: &[K],
    values: &[K],
    mask: &[f32],
    out: &mut [F],
    slots: usize,
    scale: f32,
    #[comptime] groups: usize,
    #[comptime] head_dim: usize,
    #[comptime] units: usize,
) {
    let kv_heads = CUBE_COUNT_X as usize;
    let entry = CUBE_POS_Y as usize * kv_heads + CUBE_POS_X as usize;
    let unit = UNIT_POS as usize;
    let width = comptime!(groups * head_dim);
    // the `p v` phase: the units in slices of `span` consecutive dims, each slice its own keys
    let span = comptime!(usize::min(head_dim, units));
    let slices = comptime!(units / span);
    let dims = comptime!(head_dim.div_ceil(span));
    let slice = unit / span;
    let lane = unit % span;
    // queries [b, kv_heads * groups, hd]: this entry's groups are contiguous
    let q_base = entry * width;
    // keys, values [b, kv_heads, slots, hd]
    let kv_base = entry * slots * head_dim;
    let mask_base = CUBE_POS_Y as usize * slots;

    let mut q = Shared::<[f32]>::new_slice(width);
    let mut e = unit;
    while e < width {
        q[e] = f32::cast_from(queries[q_base + e]) * scale;
        e += units;
    }
    // the block's probabilities, and a tree for its maxima (later the sums), [groups, units]
    let mut probs = Shared::<[f32]>::new_slice(comptime!(groups * units));
    let mut tree = Shared::<[f32]>::new_slice(comptime!(groups * units));
    // per query head: the running maximum (the same in every unit), this unit's share of the sum
    let mut running_max = Array::<f32>::new(groups);
    let mut sum = Array::<f32>::new(groups);
    let mut alpha = Array::<f32>::new(groups);
    let mut score = Array::<f32>::new(groups);
    #[unroll]
    for g in 0..groups {
        running_max[g] = f32::new(-3.0e38);
        sum[g] = f32::new(0.0);
    }
    // this unit's share of the output: query head g, dims lane + i * span (i < dims)
    let mut acc = Array::<f32>::new(comptime!(groups * dims));
    #[unroll]
    for i in 0..comptime!(groups * dims) {
        acc[i] = f32::new(0.0);
    }
    sync_cube();

    let mut start = 0usize;
    while start < slots {
        // this unit's key: its score against every query head
        let t = start + unit;
        let mut valid = false;
        let mut bias = 0.0f32;
        if t < slots {
            bias = mask[mask_base + t];
            valid = bias > BLOCKED_BELOW;
        }
        #[unroll]
        for g in 0..groups {
            score[g] = f32::new(-3.0e38);
        }
        if valid {
            #[unroll]
            for g in 0..groups {
                score[g] = bias;
            }
            let k_base = kv_base + t * head_dim;
            // unrolled: the row's loads are independent and all go out before the products
            #[unroll]
            for d in 0..head_dim {
                let k = f32::cast_from(keys[k_base + d]);
                #[unroll]
                for g in 0..groups {
                    score[g] += q[g * head_dim + d] * k;
                }
            }
        }
        #[unroll]
        for g in 0..groups {
            tree[g * units + unit] = score[g];
        }
        sync_cube();
        rows_tree(&mut tree, groups, units, true);
        // every query head sees the same keys: no key of the block is visible when head 0's
        // maximum is the sentinel (the block's values are then not read)
        let any_visible = tree[0] > f32::new(-1.0e38);
        #[unroll]
        for g in 0..groups {
            let new_max = f32::max(running_max[g], tree[g * units]);
            alpha[g] = f32::exp(running_max[g] - new_max);
            running_max[g] = new_max;
            let mut p = 0.0f32;
            if valid {
                p = f32::exp(score[g] - new_max);
            }
            sum[g] = sum[g] * alpha[g] + p;
            probs[g * units + unit] = p;
            #[unroll]
            for i in 0..dims {
                acc[g * dims + i] *= alpha[g];
            }
        }
        sync_cube();
        if any_visible && slice < slices {
            let block = usize::min(units, slots - start);
            let mut j = slice;
            while j < block {
                let v_base = kv_base + (start + j) * head_dim;
                #[unroll]
                for i in 0..dims {
                    let d = lane + i * span;
                    if d < head_dim {
                        let v = f32::cast_from(values[v_base + d]);
                        #[unroll]
                        for g in 0..groups {
                            acc[g * dims + i] += probs[g * units + j] * v;
                        }
                    }
                }
                j += slices;
            }
        }
        sync_cube();
        start += units;
    }

    // the sums over all units
    #[unroll]
    for g in 0..groups {
        tree[g * units + unit] = sum[g];
    }
    sync_cube();
    rows_tree(&mut tree, groups, units, false);
    #[unroll]
    for g in 0..groups {
        sum[g] = tree[g * units];
    }
    sync_cube();
    // each dim's shares over the slices, added by the first slice, divided by the head's sum
    #[unroll]
    for i in 0..dims {
        #[unroll]
        for g in 0..groups {
            tree[g * units + unit] = acc[g * dims + i];
        }
        sync_cube();
        let d = lane + i * span;
        if slice == 0 && d < head_dim {
            #[unroll]
            for g in 0..groups {
                let mut total = 0.0f32;
                #[unroll]
                for s in 0..slices {
                    total += tree[g * units + s * span + lane];
                }
                out[q_base + g * head_dim + d] = F::cast_from(total / sum[g]);
            }
        }
        sync_cube();
    }
}

/// A tree over shared memory `[rows, units]`, all rows at once, halving the active units each
/// level: after it `tree[r * units]` holds row `r`'s maximum or sum (chosen when compiled).
#[cube]
fn rows_tree(tree: &mut [f32], #[comptime] rows: usize, #[comptime] units: usize, #[comptime] max: bool) {
    let unit = UNIT_POS as usize;
    let mut active = units.runtime();
    while active > 1 {
        active /= 2;
        if unit < active {
            #[unroll]
            for r in 0..rows {
                let other = tree[r * units + unit + active];
                if max {
                    tree[r * units + unit] = f32::max(tree[r * units + unit], other);
                } else {
                    tree[r * units + unit] += other;
                }
            }
        }
        sync_cube();
    }
}

/// The most query heads per KV head the kernel takes (its per-unit registers grow with them).
const MAX_GROUPS: usize = 16;
/// The largest head dim the kernel takes.
const MAX_HEAD_DIM: usize = 256;

/// See [`super::decode_attention`].
pub(super) fn decode_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &Tensor<4>, scale: f64) -> Option<Tensor<4>> {
    decode_attention_in_cubes_of(q, k, v, mask, scale, None)
}

/// [`decode_attention`] with cubes of `units` units (a power of two; default: [`row_units`]), so
/// the tests on the CPU runtime (cubes of its 2 cores) also run the GPU's layout of several
/// slices per value row.
fn decode_attention_in_cubes_of(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &Tensor<4>, scale: f64, units: Option<usize>) -> Option<Tensor<4>> {
    let [b, heads, s, head_dim] = q.dims();
    let [kb, kv_heads, slots, k_dim] = k.dims();
    let fits = s == 1
        && kb == b
        && k_dim == head_dim
        && v.dims() == k.dims()
        && mask.dims() == [b, 1, 1, slots]
        && kv_heads > 0
        && heads % kv_heads == 0
        && heads / kv_heads <= MAX_GROUPS
        && head_dim > 0
        && head_dim <= MAX_HEAD_DIM
        && slots > 0
        && b <= 65_535
        && kv_heads <= 65_535;
    if !fits {
        return None;
    }
    let (q, k, v) = (contiguous(cube_primitive(q)?), contiguous(cube_primitive(k)?), contiguous(cube_primitive(v)?));
    if k.dtype != v.dtype {
        return None;
    }
    let mask = contiguous(cast(cube_primitive(mask)?, DType::F32));
    let out = empty(&q, q.meta.shape().clone(), q.dtype);
    let units = units.unwrap_or_else(|| row_units(&q));
    with_float_type!(q.dtype, F => with_float_type!(k.dtype, K => unsafe {
        decode_attention_kernel::launch_unchecked::<F, K>(
            &q.client,
            CubeCount::Static(kv_heads as u32, b as u32, 1),
            CubeDim::new_1d(units as u32),
            buffer(&q),
            buffer(&k),
            buffer(&v),
            buffer(&mask),
            buffer(&out),
            slots,
            scale as f32,
            heads / kv_heads,
            head_dim,
            units,
        )
    }));
    Some(Tensor::from_primitive::<Cube>(out))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::{decode_attention, reference};
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Tensor, TensorData};
    use burn::tensor::FloatDType;

    fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(Rng::new(seed).normals(shape.iter().product(), 1.0), shape), device)
    }

    /// Left padding and unwritten slots, blocked (compare's decode mask).
    fn mask(b: usize, slots: usize, device: &Device) -> Tensor<4> {
        super::super::compare::decode_mask(b, slots, slots - slots / 4, device)
    }

    fn f32_data(t: Tensor<4>) -> TensorData {
        t.cast(FloatDType::F32).into_data()
    }

    #[test]
    fn gives_the_grouped_query_attention_of_burns_ops() {
        let device = Device::cpu();
        // slots below, at and above a cube's units (the CPU runtime's cores), several blocks;
        // one KV head per query head, and grouped heads; head dims that do not divide the units
        for (b, heads, kv_heads, head_dim, slots) in [(3, 2, 2, 4, 1), (2, 6, 2, 8, 7), (4, 7, 1, 5, 19), (2, 4, 2, 16, 130)] {
            for dtype in [FloatDType::F32, FloatDType::BF16] {
                let q = random([b, heads, 1, head_dim], 1, &device).cast(dtype);
                let k = random([b, kv_heads, slots, head_dim], 2, &device).cast(dtype);
                let v = random([b, kv_heads, slots, head_dim], 3, &device).cast(dtype);
                let m = mask(b, slots, &device);
                let scale = 1.0 / (head_dim as f64).sqrt();
                let f32_of = |t: &Tensor<4>| t.clone().cast(FloatDType::F32);
                let theirs = reference::grouped_attention(f32_of(&q), f32_of(&k), f32_of(&v), &m, scale, |a, b| a.matmul(b));
                // the runtime's own cubes (one slice of dims per value row), and cubes of 16 units
                // (several slices per row, or one with idle units, as on a GPU)
                for units in [None, Some(16)] {
                    let ours = super::decode_attention_in_cubes_of(&q, &k, &v, &m, scale, units).expect("the kernel applies");
                    assert_eq!(ours.dims(), q.dims());
                    assert_eq!(ours.dtype(), q.dtype());
                    // bf16 outputs (|values| up to ~3) round by up to ~1e-2
                    let tolerance = if dtype == FloatDType::F32 { 1e-5 } else { 2e-2 };
                    let case = format!("{b} rows, {heads} heads over {kv_heads}, head dim {head_dim}, {slots} slots, {dtype:?}, cubes of {units:?} units");
                    assert_all_close(&["out"], &[f32_data(ours)], &[f32_data(theirs.clone())], tolerance, &case);
                }
            }
        }
    }

    #[test]
    fn blocked_keys_and_unwritten_blocks_are_not_read() {
        // NaN in every blocked slot's key, and in the values of slots 512 on (not written: blocks
        // of no visible key for any cube size up to 256): a read of any of them would show
        let device = Device::cpu();
        let (b, heads, kv_heads, head_dim, slots) = (3, 4, 2, 8, 600);
        let m = super::super::compare::decode_mask(b, slots, 300, &device);
        let blocked = m.clone().lower_elem(-1e29).reshape([b, 1, slots, 1]).expand([b, kv_heads, slots, head_dim]);
        let slot_index: Vec<f32> = (0..slots).map(|t| t as f32).collect();
        let unwritten = Tensor::<4>::from_data(TensorData::new(slot_index, [1, 1, slots, 1]), &device).greater_equal_elem(512.0).expand([b, kv_heads, slots, head_dim]);
        let q = random([b, heads, 1, head_dim], 4, &device);
        let (k, v) = (random([b, kv_heads, slots, head_dim], 5, &device), random([b, kv_heads, slots, head_dim], 6, &device));
        let (k_poisoned, v_poisoned) = (k.clone().mask_fill(blocked, f32::NAN), v.clone().mask_fill(unwritten, f32::NAN));
        let ours = decode_attention(&q, &k_poisoned, &v_poisoned, &m, 0.5).expect("the kernel applies");
        let theirs = reference::grouped_attention(q, k, v, &m, 0.5, |a, b| a.matmul(b));
        assert_all_close(&["out"], &[f32_data(ours)], &[f32_data(theirs)], 1e-5, "NaN in blocked keys and unwritten values");
    }

    #[test]
    fn shapes_that_do_not_fit_are_declined() {
        let device = Device::cpu();
        let q = random([2, 4, 1, 8], 1, &device);
        let k = random([2, 2, 5, 8], 2, &device);
        let m = mask(2, 5, &device);
        assert!(decode_attention(&random([2, 4, 2, 8], 1, &device), &k, &k, &m, 1.0).is_none(), "two queries per row");
        assert!(decode_attention(&q, &k, &random([2, 2, 4, 8], 3, &device), &m, 1.0).is_none(), "values of another shape");
        assert!(decode_attention(&q, &k, &k, &mask(2, 4, &device), 1.0).is_none(), "a mask over other slots");
        assert!(decode_attention(&random([2, 3, 1, 8], 1, &device), &k, &k, &m, 1.0).is_none(), "heads not a multiple of the KV heads");
        assert!(decode_attention(&q, &k, &k, &m, 1.0).is_some());
    }
}
