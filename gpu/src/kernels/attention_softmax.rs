//! The attention's softmax over one chunk of query rows (`crate::attention`), forward and
//! backward, each one kernel over the chunk's `Q K^T` products as the GEMM wrote them.
//!
//! Forward, one row of a cube per row (a cube holds several short rows): `x = product * scale +
//! mask`, the row's maximum and `sum exp(x - max)` in one pass (each unit's running maximum
//! rescales its sum, then the row's units combine them), then `p = exp(x - max) / sum` written in
//! the products' dtype (the `P V` GEMM's), and the row's log-sum-exp `max + ln(sum)` (f32).
//! Backward, one unit per vector of scores (a grid of vector blocks by rows): `p = exp(x - lse)`
//! recomputed, `ds = (dp - rowsum(dO O)) * p * scale`, both in the products' dtype (the `dV`, `dQ`,
//! `dK` GEMMs'). Each replaces ~10 of burn's kernels over the `rows x keys` scores (casts to f32 and
//! back, scale, mask, max, exp, sum, div). Both read and write the scores a vector at a time (16
//! bytes on CUDA where the row length allows): with 2-byte scalars they ran at a third of the
//! memory's bandwidth.
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

use super::cube_reduce::{segment_max, segment_sum};
use super::launch::{buffer, cast, contiguous, cube_primitive, elements, empty, row_units, vector_buffer, vector_width, with_float_type, Cube};
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

/// Score `key` of a row, scaled and masked, and whether the row sees that key: inside its run
/// (runs), or always (the additive mask's -1e30 then makes its weight zero).
#[cube]
fn masked_score(product: f32, mask: &[f32], mask_base: usize, key: usize, lo: usize, hi: usize, scale: f32, #[comptime] by_runs: bool) -> (f32, bool) {
    let mut x = product * scale;
    let mut visible = true;
    if by_runs {
        visible = key >= lo && key < hi;
    } else {
        x += mask[mask_base + key];
    }
    (x, visible)
}

/// The keys row `row` can see: its run, or all of them (the additive mask then blocks some).
#[cube]
fn key_run(mask: &[f32], mask_base: usize, keys: usize, #[comptime] by_runs: bool) -> (usize, usize) {
    let mut lo = 0usize;
    let mut hi = keys;
    if by_runs {
        lo = usize::cast_from(mask[mask_base]);
        hi = usize::min(usize::cast_from(mask[mask_base + 1]), keys);
    }
    (lo, hi)
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn attention_softmax_forward<F: Float, N: Size>(
    products: &[Vector<F, N>],
    mask: &[f32],
    probs: &mut [Vector<F, N>],
    lse: &mut [f32],
    rows: Rows,
    scale: f32,
    #[comptime] width: usize,
    #[comptime] units: usize,
    #[comptime] rows_per_cube: usize,
    #[comptime] by_runs: bool,
) {
    // rows_per_cube rows per cube, `units` units (UNIT_POS_X) per row, each reading `width` scores at a time
    let row = CUBE_POS as usize * rows_per_cube + UNIT_POS_Y as usize;
    let in_range = row < lse.len();
    let keys = rows.keys;
    let vectors = keys / width;
    let base = row * vectors;
    let mut mask_base = 0usize;
    let mut lo = 0usize;
    let mut hi = 0usize;
    if in_range {
        mask_base = mask_row_start(&rows, row);
        let (l, h) = key_run(mask, mask_base, keys, by_runs);
        lo = l;
        hi = h;
    }
    let (lo_vector, hi_vector) = (lo / width, hi.div_ceil(width));
    // one pass for both: each unit's running maximum, its sum of exp(x - maximum) rescaled as the
    // maximum grows (once per vector); below any score, so a fully blocked dense row still has a
    // finite maximum
    let mut largest = f32::new(-3.0e38);
    let mut sum = 0.0f32;
    let mut v = lo_vector + UNIT_POS_X as usize;
    while v < hi_vector {
        let x = products[base + v];
        let mut vector_max = f32::new(-3.0e38);
        #[unroll]
        for e in 0..width {
            let (s, visible) = masked_score(f32::cast_from(x.extract(e)), mask, mask_base, v * width + e, lo, hi, scale, by_runs);
            if visible {
                vector_max = f32::max(vector_max, s);
            }
        }
        if vector_max > largest {
            sum *= f32::exp(largest - vector_max);
            largest = vector_max;
        }
        #[unroll]
        for e in 0..width {
            let (s, visible) = masked_score(f32::cast_from(x.extract(e)), mask, mask_base, v * width + e, lo, hi, scale, by_runs);
            if visible {
                sum += f32::exp(s - largest);
            }
        }
        v += units;
    }
    let max = segment_max(largest, units, rows_per_cube);
    let total = segment_sum(sum * f32::exp(largest - max), units, rows_per_cube);
    if in_range {
        if UNIT_POS_X == 0 {
            lse[row] = max + f32::ln(total);
        }
        let inverse = 1.0f32 / total;
        let mut v = UNIT_POS_X as usize;
        while v < vectors {
            let mut out = Vector::<F, N>::empty();
            if v >= lo_vector && v < hi_vector {
                let x = products[base + v];
                #[unroll]
                for e in 0..width {
                    let (s, visible) = masked_score(f32::cast_from(x.extract(e)), mask, mask_base, v * width + e, lo, hi, scale, by_runs);
                    let mut p = 0.0f32;
                    if visible {
                        p = f32::exp(s - max) * inverse;
                    }
                    out.insert(e, F::cast_from(p));
                }
            } else {
                #[unroll]
                for e in 0..width {
                    out.insert(e, F::cast_from(0.0f32));
                }
            }
            probs[base + v] = out;
            v += units;
        }
    }
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn attention_softmax_backward<F: Float, N: Size>(
    products: &[Vector<F, N>],
    dprobs: &[Vector<F, N>],
    mask: &[f32],
    lse: &[f32],
    row_dot: &[f32],
    probs: &mut [Vector<F, N>],
    dproducts: &mut [Vector<F, N>],
    rows: Rows,
    scale: f32,
    #[comptime] width: usize,
    #[comptime] by_runs: bool,
) {
    // a grid of (blocks of a row's vectors, rows), the rows split over y and z past CUDA's 65,535
    // per dimension: no division per element to find its row
    let row = CUBE_POS_Z as usize * CUBE_COUNT_Y as usize + CUBE_POS_Y as usize;
    let v = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    let vectors = rows.keys / width;
    if v < vectors && row < lse.len() {
        let i = row * vectors + v;
        let mask_base = mask_row_start(&rows, row);
        let (lo, hi) = key_run(mask, mask_base, rows.keys, by_runs);
        let mut p_out = Vector::<F, N>::empty();
        let mut ds_out = Vector::<F, N>::empty();
        if v >= lo / width && v < hi.div_ceil(width) {
            let (x, dp) = (products[i], dprobs[i]);
            let (row_lse, row_dot) = (lse[row], row_dot[row]);
            #[unroll]
            for e in 0..width {
                let (s, visible) = masked_score(f32::cast_from(x.extract(e)), mask, mask_base, v * width + e, lo, hi, scale, by_runs);
                let mut p = 0.0f32;
                let mut ds = 0.0f32;
                if visible {
                    p = f32::exp(s - row_lse);
                    ds = (f32::cast_from(dp.extract(e)) - row_dot) * p * scale;
                }
                p_out.insert(e, F::cast_from(p));
                ds_out.insert(e, F::cast_from(ds));
            }
        } else {
            #[unroll]
            for e in 0..width {
                p_out.insert(e, F::cast_from(0.0f32));
                ds_out.insert(e, F::cast_from(0.0f32));
            }
        }
        probs[i] = p_out;
        dproducts[i] = ds_out;
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

/// Units per row of the forward kernel (its cube holds `most / units` rows): about four vectors
/// each, so a short row does not leave most of a cube idle; `R1KIT_SOFTMAX_UNITS` (a power of two)
/// sets it for A/B runs on a GPU.
fn forward_units(vectors: usize, most: usize) -> usize {
    static ASKED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let asked = *ASKED.get_or_init(|| std::env::var("R1KIT_SOFTMAX_UNITS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|u| u.is_power_of_two()));
    asked.unwrap_or_else(|| vectors.div_ceil(4).next_power_of_two()).clamp(1, most)
}

/// See [`super::attention_probs`].
pub(super) fn attention_probs(products: &Tensor<4>, mask: &KeyMask, first_query: usize, chunk: usize, scale: f64) -> Option<(Tensor<4>, Tensor<1>)> {
    let keys = products.dims()[3];
    let (products, mask, layout, rows, by_runs) = prepare(products, mask, first_query, chunk)?;
    let probs = empty(&products, products.meta.shape().clone(), products.dtype);
    let lse = empty(&products, Shape::new([rows]), DType::F32);
    let width = vector_width(&[&products, &probs], keys);
    let most = row_units(&products);
    let units = forward_units(keys / width, most);
    let rows_per_cube = most / units;
    with_float_type!(products.dtype, F => unsafe {
        attention_softmax_forward::launch_unchecked::<F>(
            &products.client,
            CubeCount::Static(rows.div_ceil(rows_per_cube) as u32, 1, 1),
            CubeDim::new_2d(units as u32, rows_per_cube as u32),
            width,
            vector_buffer(&products, width),
            buffer(&mask),
            vector_buffer(&probs, width),
            buffer(&lse),
            layout,
            scale as f32,
            width,
            units,
            rows_per_cube,
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
    let width = vector_width(&[&products, &dprobs, &probs, &dproducts], keys);
    let units = row_units(&products) as u32;
    let grid_rows = rows.min(65_535);
    with_float_type!(products.dtype, F => unsafe {
        attention_softmax_backward::launch_unchecked::<F>(
            &products.client,
            CubeCount::Static((keys / width).div_ceil(units as usize) as u32, grid_rows as u32, rows.div_ceil(grid_rows) as u32),
            CubeDim::new_1d(units),
            width,
            vector_buffer(&products, width),
            vector_buffer(&dprobs, width),
            buffer(&mask),
            buffer(&lse),
            buffer(&row_dot),
            vector_buffer(&probs, width),
            vector_buffer(&dproducts, width),
            layout,
            scale as f32,
            width,
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
    const S: usize = 19;

    /// Chunks `(first_query, chunk, keys)` as the attention op cuts them (keys up to the chunk's
    /// last query), including a chunk of one, rows of a whole number of vectors (4, 16; the runs of
    /// batch entry 1 then start inside a vector) and rows of none (5, 19).
    const CHUNKS: [(usize, usize, usize); 4] = [(0, 4, 4), (4, 1, 5), (8, 8, 16), (5, 14, 19)];

    #[test]
    fn rows_of_whole_vectors_are_read_as_vectors() {
        // else the tests above would not reach the vector paths
        let device = Device::cpu();
        for dtype in [FloatDType::F32, FloatDType::BF16] {
            let t = super::cube_primitive(&random([1, 1, 2, 16], 1, 1.0, &device).cast(dtype)).expect("a Cube device");
            assert!(super::vector_width(&[&t], 16) > 1, "{dtype:?}");
            assert_eq!(super::vector_width(&[&t], 19), 1, "{dtype:?}");
        }
    }

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
        assert!(attention_probs(&products, &KeyMask::Additive(mask.clone()), 16, 4, 0.3).is_none());
        assert!(attention_probs(&products, &KeyMask::Additive(mask.clone()), 0, 5, 0.3).is_none());
        assert!(attention_probs(&products, &KeyMask::Additive(mask.clone().slice([0..1, 0..1, 0..S, 0..S])), 0, 4, 0.3).is_none());
        assert!(attention_probs(&products, &runs(1, S, &device), 0, 4, 0.3).is_none());
    }
}
