//! The attention's softmax over one chunk of query rows (`crate::attention`), forward and
//! backward, each one kernel over the chunk's `Q K^T` products as the GEMM wrote them.
//!
//! Forward, one cube per row: `x = product * scale + mask`, the row's maximum and `sum exp(x -
//! max)` in one pass (each unit's running maximum rescales its sum, then the cube combines them),
//! then `p = exp(x - max) / sum` written in the products' dtype (the `P V` GEMM's), and the row's
//! log-sum-exp `max + ln(sum)` (f32). Backward, one unit per element (a grid of key blocks by
//! rows): `p = exp(x - lse)` recomputed, `ds = (dp - rowsum(dO O)) * p * scale`, both in the
//! products' dtype (the `dV`, `dQ`, `dK` GEMMs'). Each replaces ~10 of burn's kernels over the
//! `rows x keys` scores (casts to f32 and back, scale, mask, max, exp, sum, div).
//!
//! The mask comes in either of [`KeyMask`]'s forms: the dense additive one, read per score, or each
//! query's run of visible keys, so that a row reads two numbers instead of `keys` mask values, and
//! keys outside its run are written as zeros without reading their products.
//!
//! Rows are the products' `[b, kv_heads, groups * chunk, keys]` flattened: row `r` is query
//! `first_query + r % chunk` of batch entry `r / (rows / b)`; the additive mask is `[b, 1, s, t]`,
//! the runs `[b, s, 2]`.

use burn::prelude::Tensor;
use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::cube_reduce::{cube_max, cube_sum};
use super::launch::{buffer, cast, contiguous, cube_primitive, elements, empty, row_units, with_float_type, Cube};
use crate::key_mask::KeyMask;

/// Where a chunk's rows sit in the mask: one launch argument of both kernels.
#[derive(CubeType, CubeLaunch)]
struct Rows {
    /// Keys per row (the products' last dim).
    keys: usize,
    /// Query positions in the chunk.
    chunk: usize,
    /// Rows per batch entry: `kv_heads * groups * chunk`.
    per_batch: usize,
    /// The chunk's first query position.
    first_query: usize,
    /// The mask's queries `s`, and its values per query: `t` (additive) or 2 (runs).
    mask_queries: usize,
    mask_keys: usize,
}

/// Where row `row`'s mask values (or its run) start.
#[cube]
fn mask_row_start(rows: &Rows, row: usize) -> usize {
    ((row / rows.per_batch) * rows.mask_queries + rows.first_query + row % rows.chunk) * rows.mask_keys
}

#[cube(launch_unchecked)]
fn attention_softmax_forward<F: Float>(
    products: &[F],
    mask: &[f32],
    probs: &mut [F],
    lse: &mut [f32],
    rows: Rows,
    scale: f32,
    #[comptime] units: usize,
    #[comptime] by_runs: bool,
) {
    let row = CUBE_POS;
    let keys = rows.keys;
    let base = row * keys;
    let mask_base = mask_row_start(&rows, row);
    // the keys this row can see: its run, or all (the additive mask then blocks some)
    let mut lo = 0usize;
    let mut hi = keys;
    if by_runs {
        lo = usize::cast_from(mask[mask_base]);
        hi = usize::min(usize::cast_from(mask[mask_base + 1]), keys);
    }
    // one pass for both: each unit's running maximum, its sum of exp(x - maximum) rescaled as the
    // maximum grows; below any score, so a fully blocked dense row still has a finite maximum
    let mut largest = f32::new(-3.0e38);
    let mut sum = 0.0f32;
    let mut j = lo + UNIT_POS as usize;
    while j < hi {
        let mut x = f32::cast_from(products[base + j]) * scale;
        if !by_runs {
            x += mask[mask_base + j];
        }
        if x > largest {
            sum = sum * f32::exp(largest - x) + 1.0;
            largest = x;
        } else {
            sum += f32::exp(x - largest);
        }
        j += units;
    }
    let max = cube_max(largest, units);
    let total = cube_sum(sum * f32::exp(largest - max), units);
    if UNIT_POS == 0 {
        lse[row] = max + f32::ln(total);
    }
    let inverse = 1.0f32 / total;
    let mut j = UNIT_POS as usize;
    while j < keys {
        let mut p = 0.0f32;
        if j >= lo && j < hi {
            let mut x = f32::cast_from(products[base + j]) * scale;
            if !by_runs {
                x += mask[mask_base + j];
            }
            p = f32::exp(x - max) * inverse;
        }
        probs[base + j] = F::cast_from(p);
        j += units;
    }
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn attention_softmax_backward<F: Float>(
    products: &[F],
    dprobs: &[F],
    mask: &[f32],
    lse: &[f32],
    row_dot: &[f32],
    probs: &mut [F],
    dproducts: &mut [F],
    rows: Rows,
    scale: f32,
    #[comptime] by_runs: bool,
) {
    // a grid of (key blocks, rows), the rows split over y and z past CUDA's 65,535 per dimension:
    // no division per element to find its row
    let row = CUBE_POS_Z as usize * CUBE_COUNT_Y as usize + CUBE_POS_Y as usize;
    let key = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    if key < rows.keys && row < lse.len() {
        let i = row * rows.keys + key;
        let mask_base = mask_row_start(&rows, row);
        let mut visible = true;
        let mut bias = 0.0f32;
        if by_runs {
            visible = key >= usize::cast_from(mask[mask_base]) && key < usize::cast_from(mask[mask_base + 1]);
        } else {
            bias = mask[mask_base + key];
        }
        let mut p = 0.0f32;
        let mut ds = 0.0f32;
        if visible {
            p = f32::exp(f32::cast_from(products[i]) * scale + bias - lse[row]);
            ds = (f32::cast_from(dprobs[i]) - row_dot[row]) * p * scale;
        }
        probs[i] = F::cast_from(p);
        dproducts[i] = F::cast_from(ds);
    }
}

/// The products, the mask (additive, or the runs), the row layout of one call and whether the mask
/// is runs; `None` where the shapes do not fit.
fn prepare(products: &Tensor<4>, mask: &KeyMask, first_query: usize, chunk: usize) -> Option<(CubeTensor, CubeTensor, RowsLaunch, usize, bool)> {
    let [b, _, _, keys] = products.dims();
    let [mb, one, mask_queries, mask_keys] = mask.dims();
    let rows = products.dims()[..3].iter().product::<usize>();
    if mb != b || one != 1 || keys > mask_keys || first_query + chunk > mask_queries || chunk == 0 || rows % (b * chunk) != 0 {
        return None;
    }
    let products = contiguous(cube_primitive(products)?);
    let (values, per_query, by_runs) = match mask {
        KeyMask::Additive(mask) => (contiguous(cast(cube_primitive(mask)?, DType::F32)), mask_keys, false),
        KeyMask::Runs { runs, .. } => (contiguous(cast(cube_primitive(runs)?, DType::F32)), 2, true),
    };
    let layout = RowsLaunch::new(keys, chunk, rows / b, first_query, mask_queries, per_query);
    Some((products, values, layout, rows, by_runs))
}

/// Units per row of the forward kernel: `R1KIT_SOFTMAX_UNITS` (a power of two, for A/B runs on a
/// GPU), else as many as a cube takes up to 256 (fewer units mean more keys each and shorter
/// reduction trees per row).
fn forward_units(products: &CubeTensor) -> usize {
    static ASKED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let most = row_units(products);
    let asked = *ASKED.get_or_init(|| std::env::var("R1KIT_SOFTMAX_UNITS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|u| u.is_power_of_two()));
    asked.map_or(most, |u| u.min(most))
}

/// See [`super::attention_probs`].
pub(super) fn attention_probs(products: &Tensor<4>, mask: &KeyMask, first_query: usize, chunk: usize, scale: f64) -> Option<(Tensor<4>, Tensor<1>)> {
    let (products, mask, layout, rows, by_runs) = prepare(products, mask, first_query, chunk)?;
    let probs = empty(&products, products.meta.shape().clone(), products.dtype);
    let lse = empty(&products, Shape::new([rows]), DType::F32);
    let units = forward_units(&products);
    with_float_type!(products.dtype, F => unsafe {
        attention_softmax_forward::launch_unchecked::<F>(
            &products.client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(units as u32),
            buffer(&products),
            buffer(&mask),
            buffer(&probs),
            buffer(&lse),
            layout,
            scale as f32,
            units,
            by_runs,
        )
    });
    Some((Tensor::from_primitive::<Cube>(probs), Tensor::from_primitive::<Cube>(lse)))
}

/// See [`super::attention_probs_backward`].
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_probs_backward<const L: usize>(
    products: &Tensor<4>,
    dprobs: &Tensor<4>,
    mask: &KeyMask,
    lse: &Tensor<L>,
    row_dot: &Tensor<L>,
    first_query: usize,
    chunk: usize,
    scale: f64,
) -> Option<(Tensor<4>, Tensor<4>)> {
    if dprobs.dims() != products.dims() || dprobs.dtype() != products.dtype() {
        return None;
    }
    let keys = products.dims()[3];
    let (products, mask, layout, rows, by_runs) = prepare(products, mask, first_query, chunk)?;
    let row_values = |t: &Tensor<L>| Some(contiguous(cast(cube_primitive(t)?, DType::F32))).filter(|t| elements(t) == rows);
    let (lse, row_dot, dprobs) = (row_values(lse)?, row_values(row_dot)?, contiguous(cube_primitive(dprobs)?));
    let probs = empty(&products, products.meta.shape().clone(), products.dtype);
    let dproducts = empty(&products, products.meta.shape().clone(), products.dtype);
    const UNITS: u32 = 256;
    let grid_rows = rows.min(65_535);
    with_float_type!(products.dtype, F => unsafe {
        attention_softmax_backward::launch_unchecked::<F>(
            &products.client,
            CubeCount::Static(keys.div_ceil(UNITS as usize) as u32, grid_rows as u32, rows.div_ceil(grid_rows) as u32),
            CubeDim::new_1d(UNITS),
            buffer(&products),
            buffer(&dprobs),
            buffer(&mask),
            buffer(&lse),
            buffer(&row_dot),
            buffer(&probs),
            buffer(&dproducts),
            layout,
            scale as f32,
            by_runs,
        )
    });
    Some((Tensor::from_primitive::<Cube>(probs), Tensor::from_primitive::<Cube>(dproducts)))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::{attention_probs, attention_probs_backward, reference};
    use crate::check::{assert_all_close, Rng};
    use burn::prelude::{Device, Tensor, TensorData};
    use burn::tensor::FloatDType;
    use crate::key_mask::KeyMask;

    fn random<const D: usize>(shape: [usize; D], seed: u64, scale: f64, device: &Device) -> Tensor<D> {
        let values = Rng::new(seed).normals(shape.iter().product(), scale);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Causal `[b, 1, s, s]` with -1e30 (the model's value), plus a padded first key in batch entry 1.
    fn mask(b: usize, s: usize, device: &Device) -> Tensor<4> {
        let mut m = vec![0f32; b * s * s];
        for r in 0..b {
            for i in 0..s {
                for j in 0..s {
                    if j > i || (r == 1 && j == 0 && i > 0) {
                        m[(r * s + i) * s + j] = -1e30;
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(m, [b, 1, s, s]), device)
    }

    /// [`mask`]'s runs: query `i` sees keys `0..=i`, but from 1 in batch entry 1 (its first key padding).
    fn runs(b: usize, s: usize, device: &Device) -> KeyMask {
        let runs: Vec<(u32, u32)> = (0..b).flat_map(|r| (0..s as u32).map(move |i| (u32::from(r == 1 && i > 0), i + 1))).collect();
        KeyMask::from_runs(&runs, b, s, device)
    }

    /// The kernels' mask in both forms (they must agree with burn's ops on the additive one).
    fn both_forms(b: usize, s: usize, device: &Device) -> [(KeyMask, &'static str); 2] {
        [(KeyMask::Additive(mask(b, s, device)), "additive mask"), (runs(b, s, device), "runs")]
    }

    #[test]
    fn the_runs_are_the_additive_mask() {
        let device = Device::cpu();
        assert_eq!(runs(B, S, &device).additive().into_data(), mask(B, S, &device).into_data());
    }

    const B: usize = 2;
    const KV: usize = 2;
    const GROUPS: usize = 3;
    const S: usize = 11;

    /// Chunks `(first_query, chunk, keys)` as the attention op cuts them (keys up to the chunk's
    /// last query), including a chunk of one and one over all keys.
    const CHUNKS: [(usize, usize, usize); 3] = [(0, 4, 4), (4, 1, 5), (5, 6, 11)];

    fn f32_data<const D: usize>(t: Tensor<D>) -> TensorData {
        t.cast(FloatDType::F32).into_data()
    }

    #[test]
    fn forward_gives_burns_softmax_and_log_sum_exp() {
        let device = Device::cpu();
        let mask = mask(B, S, &device);
        for (key_mask, form) in both_forms(B, S, &device) {
            for (dtype, tol) in [(FloatDType::F32, 1e-5), (FloatDType::BF16, 1e-2)] {
                for (first, chunk, keys) in CHUNKS {
                    let products = random([B, KV, GROUPS * chunk, keys], 1, 3.0, &device).cast(dtype);
                    let (p, lse) = attention_probs(&products, &key_mask, first, chunk, 0.3).expect("a Cube device");
                    let (p_ref, lse_ref) = reference::attention_probs(&products, &mask, first, chunk, 0.3);
                    assert_eq!(p.dtype(), dtype.into());
                    assert_eq!(lse.dims(), [B, KV, GROUPS, chunk, 1]);
                    assert_all_close(&["p", "lse"], &[f32_data(p), lse.into_data()], &[f32_data(p_ref), lse_ref.into_data()], tol, &format!("{form}, {dtype:?}, chunk at {first}"));
                }
            }
        }
    }

    #[test]
    fn backward_gives_burns_probabilities_and_score_gradients() {
        let device = Device::cpu();
        let mask = mask(B, S, &device);
        for (key_mask, form) in both_forms(B, S, &device) {
            for (dtype, tol) in [(FloatDType::F32, 1e-5), (FloatDType::BF16, 2e-2)] {
                for (first, chunk, keys) in CHUNKS {
                    let products = random([B, KV, GROUPS * chunk, keys], 2, 3.0, &device).cast(dtype);
                    let dprobs = random([B, KV, GROUPS * chunk, keys], 3, 1.0, &device).cast(dtype);
                    let row_dot = random([B, KV, GROUPS, chunk, 1], 4, 1.0, &device);
                    let (_, lse) = reference::attention_probs(&products, &mask, first, chunk, 0.3);
                    let (p, ds) = attention_probs_backward(&products, &dprobs, &key_mask, &lse, &row_dot, first, chunk, 0.3).expect("a Cube device");
                    let (p_ref, ds_ref) = reference::attention_probs_backward(&products, &dprobs, &mask, &lse, &row_dot, first, chunk, 0.3);
                    assert_all_close(&["p", "ds"], &[f32_data(p), f32_data(ds)], &[f32_data(p_ref), f32_data(ds_ref)], tol, &format!("{form}, {dtype:?}, chunk at {first}"));
                }
            }
        }
    }

    #[test]
    fn backward_covers_rows_past_one_grid_dimension() {
        // 33 x 2048 = 67,584 rows: the backward's grid puts them over y and z (CUDA caps each at
        // 65,535); one key each keeps it small
        let device = Device::cpu();
        let (groups, s) = (33, 2048);
        let mask = mask(1, s, &device);
        let key_mask = KeyMask::Additive(mask.clone());
        let products = random([1, 1, groups * s, 1], 6, 3.0, &device);
        let dprobs = random([1, 1, groups * s, 1], 7, 1.0, &device);
        let row_dot = random([1, 1, groups, s, 1], 8, 1.0, &device);
        let (_, lse) = reference::attention_probs(&products, &mask, 0, s, 0.3);
        let (p, ds) = attention_probs_backward(&products, &dprobs, &key_mask, &lse, &row_dot, 0, s, 0.3).expect("a Cube device");
        let (p_ref, ds_ref) = reference::attention_probs_backward(&products, &dprobs, &mask, &lse, &row_dot, 0, s, 0.3);
        assert_all_close(&["p", "ds"], &[f32_data(p), f32_data(ds)], &[f32_data(p_ref), f32_data(ds_ref)], 1e-5, "67,584 rows");
    }

    #[test]
    fn shapes_that_do_not_fit_are_declined() {
        let device = Device::cpu();
        let mask = mask(B, S, &device);
        let products = random([B, KV, GROUPS * 4, 4], 5, 1.0, &device);
        // the chunk runs past the mask's queries; rows not a multiple of the chunk; another batch
        assert!(attention_probs(&products, &KeyMask::Additive(mask.clone()), 8, 4, 0.3).is_none());
        assert!(attention_probs(&products, &KeyMask::Additive(mask.clone()), 0, 5, 0.3).is_none());
        assert!(attention_probs(&products, &KeyMask::Additive(mask.clone().slice([0..1, 0..1, 0..S, 0..S])), 0, 4, 0.3).is_none());
        assert!(attention_probs(&products, &runs(1, S, &device), 0, 4, 0.3).is_none());
    }
}
