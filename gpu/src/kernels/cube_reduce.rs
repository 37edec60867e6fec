//! Reductions across the units of one cube (the row kernels' sums and maxima), through shared memory.

use cubecl::prelude::*;

/// The sum of `value` over the cube's `units` units (a power of two), in every unit.
#[cube]
pub(crate) fn cube_sum(value: f32, #[comptime] units: usize) -> f32 {
    cube_tree(value, units, false)
}

/// The largest `value` over the cube's `units` units (a power of two), in every unit.
#[cube]
pub(crate) fn cube_max(value: f32, #[comptime] units: usize) -> f32 {
    cube_tree(value, units, true)
}

/// A tree over shared memory, halving the active units each level: a max or a sum (chosen when
/// the kernel is compiled).
#[cube]
fn cube_tree(value: f32, #[comptime] units: usize, #[comptime] max: bool) -> f32 {
    let mut shared = Shared::<[f32]>::new_slice(units);
    let unit = UNIT_POS as usize;
    shared[unit] = value;
    sync_cube();
    let mut active = units.runtime();
    while active > 1 {
        active /= 2;
        if unit < active {
            let other = shared[unit + active];
            if max {
                shared[unit] = f32::max(shared[unit], other);
            } else {
                shared[unit] += other;
            }
        }
        sync_cube();
    }
    shared[0]
}
