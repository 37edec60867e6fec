//! Reductions across the units of one cube (the row kernels' sums and maxima), through shared memory.

use cubecl::prelude::*;

/// The sum of `value` over the cube's `units` units (a power of two), in every unit.
#[cube]
pub(crate) fn cube_sum(value: f32, #[comptime] units: usize) -> f32 {
    segment_tree(value, units, 1usize, false)
}

/// The largest `value` over the cube's `units` units (a power of two), in every unit.
#[cube]
pub(crate) fn cube_max(value: f32, #[comptime] units: usize) -> f32 {
    segment_tree(value, units, 1usize, true)
}

/// The sum of `value` over the `units` units (a power of two) of this unit's row of the cube
/// (`UNIT_POS_Y`; a cube of `units x segments`), in every unit of that row.
#[cube]
pub(crate) fn segment_sum(value: f32, #[comptime] units: usize, #[comptime] segments: usize) -> f32 {
    segment_tree(value, units, segments, false)
}

/// The largest `value` over the units of this unit's row of the cube; see [`segment_sum`].
#[cube]
pub(crate) fn segment_max(value: f32, #[comptime] units: usize, #[comptime] segments: usize) -> f32 {
    segment_tree(value, units, segments, true)
}

/// A tree over shared memory per row of the cube (every row at once, so every unit meets every
/// barrier), halving the active units each level: a max or a sum (chosen when the kernel is compiled).
#[cube]
fn segment_tree(value: f32, #[comptime] units: usize, #[comptime] segments: usize, #[comptime] max: bool) -> f32 {
    let mut shared = Shared::<[f32]>::new_slice(units * segments);
    let unit = UNIT_POS_X as usize;
    let first = UNIT_POS_Y as usize * units;
    shared[first + unit] = value;
    sync_cube();
    let mut active = units.runtime();
    while active > 1 {
        active /= 2;
        if unit < active {
            let other = shared[first + unit + active];
            if max {
                shared[first + unit] = f32::max(shared[first + unit], other);
            } else {
                shared[first + unit] += other;
            }
        }
        sync_cube();
    }
    shared[first]
}
