//! A decode step's token draw from the LM head's logits, in one kernel: one cube per row, the
//! row's maximum, its softmax mass, and the inverse CDF at the row's uniform number (or the
//! argmax, when greedy), with the chosen token's log-probability.
//!
//! Why: by burn's ops the draw was a cast of the `[rows, vocab]` logits to f32, a log-softmax, an
//! exp, a padded copy, block sums, two prefix sums and their comparisons: ~1.9 ms of a 1.5B decode
//! step at 512 rows (docs/gpu/RESULTS.md, Step 9), for what is two reads of the logits.
//!
//! Pass 1, units strided over the row: the largest `x = logit / temperature` and its first index.
//! Pass 2, each unit a contiguous range of the row: its mass `sum exp(x - max)`. A scan over the
//! units' masses in shared memory gives the row's total and each range's start; the one unit
//! whose range holds `u * total` walks it to the token.

use burn::prelude::{Int, Tensor};
use burn::tensor::{DType, Shape};
use cubecl::prelude::*;

use super::launch::{buffer, cast, contiguous, cube_primitive, empty, row_units, with_float_type, Cube};

#[cube(launch_unchecked)]
fn draw_rows_kernel<F: Float>(
    logits: &[F],
    uniforms: &[f32],
    ids: &mut [i32],
    logp: &mut [f32],
    vocab: usize,
    inverse_temperature: f32,
    #[comptime] greedy: bool,
    #[comptime] units: usize,
) {
    let row = CUBE_POS as usize;
    let unit = UNIT_POS as usize;
    let base = row * vocab;

    // pass 1: the largest value and its first index
    let mut best = f32::new(-3.0e38);
    let mut best_index = vocab;
    let mut j = unit;
    while j < vocab {
        let x = f32::cast_from(logits[base + j]) * inverse_temperature;
        if x > best {
            best = x;
            best_index = j;
        }
        j += units;
    }
    let mut values = Shared::<[f32]>::new_slice(units);
    let mut indices = Shared::<[usize]>::new_slice(units);
    values[unit] = best;
    indices[unit] = best_index;
    sync_cube();
    let mut active = units.runtime();
    while active > 1 {
        active /= 2;
        if unit < active {
            let (v, i) = (values[unit + active], indices[unit + active]);
            if v > values[unit] || (v == values[unit] && i < indices[unit]) {
                values[unit] = v;
                indices[unit] = i;
            }
        }
        sync_cube();
    }
    let max = values[0];
    let argmax = indices[0];

    // pass 2: each unit's range and its mass, then an inclusive scan of the masses
    let range = vocab.div_ceil(units);
    let start = unit * range;
    let end = usize::min(start + range, vocab);
    let mut mass = 0.0f32;
    let mut j = start;
    // four at a time: independent loads in flight together
    while j + 4 <= end {
        let mut four = 0.0f32;
        #[unroll]
        for k in 0..4 {
            four += f32::exp(f32::cast_from(logits[base + j + k]) * inverse_temperature - max);
        }
        mass += four;
        j += 4;
    }
    while j < end {
        mass += f32::exp(f32::cast_from(logits[base + j]) * inverse_temperature - max);
        j += 1;
    }
    let mut scan = Shared::<[f32]>::new_slice(units);
    scan[unit] = mass;
    sync_cube();
    let mut offset = 1usize;
    while offset < units {
        let mut before = 0.0f32;
        if unit >= offset {
            before = scan[unit - offset];
        }
        sync_cube();
        scan[unit] += before;
        sync_cube();
        offset *= 2;
    }
    let total = scan[units - 1];
    let lse = max + f32::ln(total);

    if greedy {
        if unit == 0 {
            ids[row] = i32::cast_from(argmax);
            logp[row] = max - lse;
        }
    } else {
        let target = uniforms[row] * total;
        let mut first = 0.0f32;
        if unit > 0 {
            first = scan[unit - 1];
        }
        // exactly one unit's range holds the target (ranges of no mass hold none)
        if first < target && target <= scan[unit] {
            let mut cumulative = first;
            let mut chosen = end;
            let mut last_positive = start;
            let mut j = start;
            while j < end {
                let x = f32::cast_from(logits[base + j]) * inverse_temperature;
                let p = f32::exp(x - max);
                if p > 0.0 {
                    last_positive = j;
                    cumulative += p;
                    if cumulative >= target {
                        chosen = j;
                        j = end;
                    }
                }
                j += 1;
            }
            // the walk's own rounding fell short of the scan's: the range's last token of mass
            if chosen == end {
                chosen = last_positive;
            }
            ids[row] = i32::cast_from(chosen);
            logp[row] = f32::cast_from(logits[base + chosen]) * inverse_temperature - lse;
        }
    }
}

/// See [`super::draw_rows`].
pub(super) fn draw_rows(logits: &Tensor<2>, uniforms: &Tensor<2>, temperature: f32) -> Option<(Tensor<2, Int>, Tensor<2>)> {
    let [rows, vocab] = logits.dims();
    if uniforms.dims() != [rows, 1] || rows == 0 || vocab == 0 || !(temperature >= 0.0 && temperature.is_finite()) {
        return None;
    }
    let logits = contiguous(cube_primitive(logits)?);
    let uniforms = contiguous(cast(cube_primitive(uniforms)?, DType::F32));
    let ids = empty(&logits, Shape::new([rows, 1]), DType::I32);
    let logp = empty(&logits, Shape::new([rows, 1]), DType::F32);
    let units = row_units(&logits);
    let greedy = temperature == 0.0;
    let inverse_temperature = if greedy { 1.0 } else { 1.0 / temperature };
    with_float_type!(logits.dtype, F => unsafe {
        draw_rows_kernel::launch_unchecked::<F>(
            &logits.client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(units as u32),
            buffer(&logits),
            buffer(&uniforms),
            buffer(&ids),
            buffer(&logp),
            vocab,
            inverse_temperature,
            greedy,
            units,
        )
    });
    Some((Tensor::<2, Int>::from_primitive::<Cube>(ids), Tensor::from_primitive::<Cube>(logp)))
}

#[cfg(all(test, feature = "cube-cpu"))]
mod tests {
    use super::super::draw_rows;
    use crate::check::Rng;
    use burn::prelude::{Device, Tensor, TensorData};
    use burn::tensor::FloatDType;

    /// The inverse CDF in f64 on the host: the first token whose cumulative mass reaches `u` of
    /// the total, and how close `u` lies to a boundary between tokens (relative to the total).
    fn host_draw(row: &[f32], inverse_temperature: f64, u: f64) -> (usize, f64) {
        let x: Vec<f64> = row.iter().map(|&v| v as f64 * inverse_temperature).collect();
        let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
        let total: f64 = p.iter().sum();
        let (mut cumulative, mut chosen, mut margin) = (0.0, row.len() - 1, f64::INFINITY);
        for (j, pj) in p.iter().enumerate() {
            let before = cumulative;
            cumulative += pj;
            margin = margin.min((cumulative / total - u).abs());
            if before / total < u && cumulative / total >= u {
                chosen = j;
                break;
            }
        }
        (chosen, margin)
    }

    fn draw(values: &[f32], rows: usize, vocab: usize, uniforms: &[f32], temperature: f32, dtype: FloatDType) -> (Vec<i64>, Vec<f32>) {
        let device = Device::cpu();
        let logits = Tensor::<2>::from_data(TensorData::new(values.to_vec(), [rows, vocab]), &device).cast(dtype);
        let u = Tensor::<2>::from_data(TensorData::new(uniforms.to_vec(), [rows, 1]), &device);
        let (ids, logp) = draw_rows(&logits, &u, temperature).expect("the kernel applies");
        (ids.into_data().convert::<i64>().try_to_vec::<i64>().unwrap(), logp.into_data().try_to_vec::<f32>().unwrap())
    }

    #[test]
    fn draws_the_inverse_cdf_at_the_rows_uniforms() {
        // vocabularies below, at and above the cube's units, one not a multiple of them; logits
        // large enough that exp without the maximum overflows
        for (rows, vocab) in [(4, 3), (3, 64), (5, 1001)] {
            for temperature in [1.0f32, 0.7] {
                let values = Rng::new(vocab as u64).normals(rows * vocab, 4.0).iter().map(|v| v + 100.0).collect::<Vec<f32>>();
                let uniforms: Vec<f32> = (0..rows).map(|r| (r as f32 + 0.37) / rows as f32).collect();
                let (ids, logp) = draw(&values, rows, vocab, &uniforms, temperature, FloatDType::F32);
                for r in 0..rows {
                    let row = &values[r * vocab..(r + 1) * vocab];
                    let (id, margin) = host_draw(row, 1.0 / temperature as f64, uniforms[r] as f64);
                    // where u lies within rounding of a boundary either neighbour is a right draw
                    if margin > 1e-4 {
                        assert_eq!(ids[r] as usize, id, "row {r} of {rows} x {vocab}, T {temperature}");
                    }
                    // the drawn token's log-probability, whichever it is
                    let inverse = 1.0 / temperature as f64;
                    let max = row.iter().map(|&v| v as f64 * inverse).fold(f64::NEG_INFINITY, f64::max);
                    let lse = max + row.iter().map(|&v| (v as f64 * inverse - max).exp()).sum::<f64>().ln();
                    let expected = row[ids[r] as usize] as f64 * inverse - lse;
                    assert!((logp[r] as f64 - expected).abs() < 1e-4, "row {r}: log-probability {} against {expected}", logp[r]);
                }
            }
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum_and_zero_mass_is_never_drawn() {
        let vocab = 300;
        // row 0: the maximum twice (the first wins); row 1: all mass on two tokens, the rest at -inf
        let mut values = vec![0f32; 2 * vocab];
        values[17] = 5.0;
        values[250] = 5.0;
        for (j, v) in values[vocab..].iter_mut().enumerate() {
            *v = if j == 40 || j == 41 { 1.0 } else { f32::NEG_INFINITY };
        }
        let (ids, logp) = draw(&values, 2, vocab, &[0.5, 0.5], 0.0, FloatDType::F32);
        assert_eq!(ids[0], 17);
        assert_eq!(ids[1], 40);
        assert!((logp[1] - 0.5f32.ln()).abs() < 1e-6, "{}", logp[1]);
        for u in [1e-7f32, 0.3, 0.5, 0.7, 1.0 - 1e-7] {
            let (ids, _) = draw(&values, 2, vocab, &[u, u], 1.0, FloatDType::BF16);
            assert!(ids[1] == 40 || ids[1] == 41, "u {u}: drew {} of zero mass", ids[1]);
            assert_eq!(ids[1] == 41, u > 0.5, "u {u}");
        }
    }
}
