//! Sums over the rows of a `[rows, cols]` matrix, `[1, cols]` f32, in two kernels: blocks of
//! [`BLOCK_ROWS`] rows summed per column into partials, then the partials summed per column. The
//! bias and norm-weight gradients of a micro-batch are such sums over its 8,192 token rows; burn's
//! reductions over that (strided) axis took 66-156 us each on an H200 (docs/gpu/RESULTS.md, Step 11).

use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{buffer, elements, empty, row_units, with_float_type};

/// Rows per block of the first kernel.
pub(super) const BLOCK_ROWS: usize = 64;

/// `partials[block, col]` = the sum of `x[row, col]` over block `block`'s rows (one unit a column).
#[cube(launch_unchecked)]
fn block_column_sums<F: Float>(x: &[F], partials: &mut [f32], rows: usize, cols: usize, #[comptime] block_rows: usize) {
    let col = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    let block = CUBE_POS_Y as usize;
    if col < cols {
        let mut row = block * block_rows;
        let end = usize::min(row + block_rows, rows);
        let mut acc = 0.0f32;
        while row < end {
            acc += f32::cast_from(x[row * cols + col]);
            row += 1;
        }
        partials[block * cols + col] = acc;
    }
}

/// `sums[col]` = the sum of `partials[.., col]` over the `blocks` rows (one unit a column).
#[cube(launch_unchecked)]
fn sum_columns(partials: &[f32], sums: &mut [f32], blocks: usize, cols: usize) {
    let col = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
    if col < cols {
        let mut acc = 0.0f32;
        let mut block = 0usize;
        while block < blocks {
            acc += partials[block * cols + col];
            block += 1;
        }
        sums[col] = acc;
    }
}

/// The blocks of `rows` rows.
pub(super) fn blocks(rows: usize) -> usize {
    rows.div_ceil(BLOCK_ROWS).max(1)
}

/// `[1, cols]` f32: the column sums of `partials` `[blocks, cols]` f32 (contiguous).
pub(super) fn sum_partials(partials: &CubeTensor) -> CubeTensor {
    let cols = partials.meta.shape()[1];
    let blocks = partials.meta.shape()[0];
    let sums = empty(partials, Shape::new([1, cols]), DType::F32);
    let units = row_units(partials);
    unsafe {
        sum_columns::launch_unchecked(
            &partials.client,
            CubeCount::Static(cols.div_ceil(units) as u32, 1, 1),
            CubeDim::new_1d(units as u32),
            buffer(partials),
            buffer(&sums),
            blocks,
            cols,
        )
    };
    sums
}

/// `[1, cols]` f32: the column sums of a contiguous `x` whose last dim is `cols` (any float dtype).
pub(super) fn column_sums(x: &CubeTensor) -> Option<CubeTensor> {
    let cols = *x.meta.shape().last()?;
    let rows = elements(x) / cols.max(1);
    let blocks = blocks(rows);
    let partials = empty(x, Shape::new([blocks, cols]), DType::F32);
    let units = row_units(x);
    with_float_type!(x.dtype, F => unsafe {
        block_column_sums::launch_unchecked::<F>(
            &x.client,
            CubeCount::Static(cols.div_ceil(units) as u32, blocks as u32, 1),
            CubeDim::new_1d(units as u32),
            buffer(x),
            buffer(&partials),
            rows,
            cols,
            BLOCK_ROWS,
        )
    });
    Some(sum_partials(&partials))
}
