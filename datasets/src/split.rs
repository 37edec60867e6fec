//! Deterministic train / held-out splits, de-duplication, seeded shuffling and epochs.
//!
//! The split of a problem depends only on its normalized text (and a salt), never on its position
//! or on the seed that generated it: a held-out problem cannot reach training data through another
//! file, another seed or a duplicate.

use std::collections::HashSet;

use crate::records::Record;
use crate::rng::{Rng, stable_hash};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    HeldOut,
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "heldout" | "held-out" | "test" | "eval" => Ok(Split::HeldOut),
            other => Err(format!("unknown split `{other}` (train, heldout)")),
        }
    }
}

/// Lower-case, whitespace collapsed: trivially different copies count as the same problem.
pub fn normalize_problem(text: &str) -> String {
    text.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

pub fn problem_hash(text: &str) -> u64 {
    stable_hash(normalize_problem(text).as_bytes())
}

/// The split of a problem: held out when its hash falls in the lowest `heldout_fraction`.
pub fn split_of(problem: &str, heldout_fraction: f64, salt: u64) -> Split {
    let h = problem_hash(problem) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // Mix again so the salt changes which problems are held out, not only their order.
    let h = Rng::new(h).next_u64();
    if ((h >> 11) as f64 / (1u64 << 53) as f64) < heldout_fraction { Split::HeldOut } else { Split::Train }
}

/// Keeps the records of one split.
pub fn filter_split(records: Vec<Record>, split: Split, heldout_fraction: f64, salt: u64) -> Vec<Record> {
    records.into_iter().filter(|r| split_of(r.prompt_text(), heldout_fraction, salt) == split).collect()
}

/// Drops later records whose normalized problem text was seen before; returns how many dropped.
pub fn dedup(records: &mut Vec<Record>) -> usize {
    let before = records.len();
    let mut seen = HashSet::new();
    records.retain(|r| seen.insert(problem_hash(r.prompt_text())));
    before - records.len()
}

/// Shuffles in place with a seed.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    Rng::new(seed).shuffle(items);
}

/// The index order of one epoch: a fresh permutation per epoch, reproducible from (seed, epoch).
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    Rng::for_item(seed, 0xE90C, epoch).shuffle(&mut order);
    order
}

/// Endless iterator over items, epoch after epoch, each epoch in its own seeded order.
pub struct Epochs<'a, T> {
    items: &'a [T],
    seed: u64,
    epoch: u64,
    order: Vec<usize>,
    position: usize,
}

impl<'a, T> Epochs<'a, T> {
    pub fn new(items: &'a [T], seed: u64) -> Self {
        Epochs { items, seed, epoch: 0, order: epoch_order(items.len(), seed, 0), position: 0 }
    }

    /// The epoch the next item belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl<'a, T> Iterator for Epochs<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        if self.items.is_empty() {
            return None;
        }
        if self.position == self.order.len() {
            self.epoch += 1;
            self.order = epoch_order(self.items.len(), self.seed, self.epoch);
            self.position = 0;
        }
        let item = &self.items[self.order[self.position]];
        self.position += 1;
        Some(item)
    }
}
