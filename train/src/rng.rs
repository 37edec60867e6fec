//! The trainer's RNG (SplitMix64): its whole state is one u64, saved in checkpoints, and data
//! orders are pure functions of (seed, epoch) so a resumed run sees the same examples.

/// The datasets crate's SplitMix64: one generator for the whole project.
pub use r1kit_datasets::rng::Rng as TrainRng;

/// The order of `n` examples in `epoch`: a Fisher-Yates shuffle seeded by (seed, epoch), or the
/// file order when `shuffle` is off.
pub fn epoch_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        let mut rng = TrainRng::new(seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_orders_are_permutations_that_depend_on_seed_and_epoch() {
        let a = epoch_order(50, 1, 0, true);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 1, 0, true));
        assert_ne!(a, epoch_order(50, 1, 1, true));
        assert_ne!(a, epoch_order(50, 2, 0, true));
        assert_eq!(epoch_order(5, 1, 0, false), vec![0, 1, 2, 3, 4]);
    }
}
