//! Which keys each query may attend to, as an additive mask built on the host.
//!
//! One type serves the three cases: left-padded batches, packed rows (several examples in one row,
//! attention kept inside each), and the KV cache's slots during prefill and decode.

use burn::prelude::*;
use r1kit_gpu::KeyMask;

/// Added to the scores of keys a query may not see (finite, so no inf - inf can appear).
const BLOCKED: f32 = r1kit_gpu::BLOCKED;

/// Kept as what it was made from; the dense `[batch, queries, keys]` values are built only when a
/// consumer needs them (`to_tensor`), since most take each query's run of keys instead.
#[derive(Debug, Clone)]
pub struct AttentionMask {
    batch: usize,
    queries: usize,
    keys: usize,
    rule: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    /// `[batch, seq]` segment ids (0: padding).
    Segments(Vec<u32>),
    /// `[batch, keys]` slot validity; the queries occupy slots `start..start + queries`.
    Slots { valid: Vec<bool>, start: usize },
}

impl AttentionMask {
    /// Causal attention inside segments: `segments` is `[batch, seq]` row-major, 0 marks padding
    /// and equal non-zero ids mark one example. A query sees keys of its own segment at or before
    /// it. Padding queries see only themselves, so their rows stay finite.
    pub fn causal_segments(segments: &[u32], batch: usize) -> Self {
        let seq = segments.len() / batch;
        AttentionMask { batch, queries: seq, keys: seq, rule: Rule::Segments(segments.to_vec()) }
    }

    /// Causal attention over cache slots: the new queries occupy slots `start..start + queries`,
    /// `slot_valid` is `[batch, keys]` with `keys >= start + queries` (false for padding slots;
    /// slots after a query's own are blocked whatever they hold).
    pub fn over_slots(slot_valid: &[bool], batch: usize, start: usize, queries: usize) -> Self {
        let keys = slot_valid.len() / batch;
        assert!(
            slot_valid.len() == batch * keys && keys >= start + queries,
            "slot_valid must be [batch, keys >= start + queries]"
        );
        AttentionMask { batch, queries, keys, rule: Rule::Slots { valid: slot_valid.to_vec(), start } }
    }

    /// The key position of query `i` itself (its position, or its cache slot): it sees that key
    /// and none after it.
    fn own_key(&self, i: usize) -> usize {
        match &self.rule {
            Rule::Segments(_) => i,
            Rule::Slots { start, .. } => start + i,
        }
    }

    /// Whether query `i` of row `b` may see key `j`.
    pub fn allows(&self, b: usize, i: usize, j: usize) -> bool {
        let own = self.own_key(i);
        let earlier_allowed = || match &self.rule {
            Rule::Segments(segments) => {
                let row = &segments[b * self.queries..(b + 1) * self.queries];
                row[i] != 0 && row[j] == row[i]
            }
            Rule::Slots { valid, .. } => valid[b * self.keys + j],
        };
        j == own || (j < own && earlier_allowed())
    }

    /// `[batch, 1, queries, keys]`: 0 where allowed, -1e30 elsewhere.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let mut values = vec![BLOCKED; self.batch * self.queries * self.keys];
        for b in 0..self.batch {
            for i in 0..self.queries {
                let row = &mut values[(b * self.queries + i) * self.keys..(b * self.queries + i + 1) * self.keys];
                for (j, value) in row.iter_mut().enumerate().take(self.own_key(i) + 1) {
                    if self.allows(b, i, j) {
                        *value = 0.0;
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(values, [self.batch, 1, self.queries, self.keys]), device)
    }

    /// Each query's visible keys as one run `lo..hi`, `[batch, queries]` row-major, or `None`
    /// where some query's visible keys are not consecutive (a segment id reused after another, a
    /// hole among valid slots). Causal masks, left padding and packed segments are runs.
    pub fn key_runs(&self) -> Option<Vec<(u32, u32)>> {
        let mut runs = Vec::with_capacity(self.batch * self.queries);
        for b in 0..self.batch {
            match &self.rule {
                Rule::Segments(segments) => {
                    let row = &segments[b * self.queries..(b + 1) * self.queries];
                    // where each id's current stretch began; an id seen again after another is no run
                    let mut stretch_start = 0;
                    let mut seen = std::collections::HashSet::new();
                    for i in 0..self.queries {
                        if i == 0 || row[i] != row[i - 1] {
                            stretch_start = i;
                            if row[i] != 0 && !seen.insert(row[i]) {
                                return None;
                            }
                        }
                        let lo = if row[i] == 0 { i } else { stretch_start };
                        runs.push((lo as u32, i as u32 + 1));
                    }
                }
                Rule::Slots { valid, .. } => {
                    let valid = &valid[b * self.keys..(b + 1) * self.keys];
                    let first_valid = valid.iter().position(|&v| v);
                    for i in 0..self.queries {
                        let q_slot = self.own_key(i);
                        // the valid slots before the query's own, then the query's slot itself
                        let lo = match first_valid.filter(|&f| f < q_slot) {
                            None => q_slot,
                            Some(f) if valid[f..q_slot].iter().all(|&v| v) => f,
                            Some(_) => return None,
                        };
                        runs.push((lo as u32, q_slot as u32 + 1));
                    }
                }
            }
        }
        Some(runs)
    }

    /// The mask on `device` in the form its consumers there take: each query's run of keys where
    /// the attention kernels run and the mask is runs (several query positions: a prefill, a
    /// training or reference forward), else the additive mask.
    pub fn to_key_mask(&self, device: &Device) -> KeyMask {
        if self.queries > 1 && r1kit_gpu::kernels::applies(device) {
            if let Some(runs) = self.key_runs() {
                return KeyMask::from_runs(&runs, self.batch, self.keys, device);
            }
        }
        KeyMask::Additive(self.to_tensor(device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_segments_stay_apart() {
        // one row: pad, example 1 (2 tokens), example 2 (2 tokens)
        let m = AttentionMask::causal_segments(&[0, 1, 1, 2, 2], 1);
        assert!(m.allows(0, 2, 1) && m.allows(0, 2, 2) && !m.allows(0, 2, 3));
        assert!(!m.allows(0, 3, 1) && !m.allows(0, 3, 2) && m.allows(0, 4, 3));
        assert!(!m.allows(0, 1, 0) && m.allows(0, 0, 0), "padding is never seen, but sees itself");
    }

    #[test]
    fn slots_mask_skips_padding() {
        // row 0 has a padding slot 0; 3 slots cached, 1 new query
        let m = AttentionMask::over_slots(&[false, true, true, true, true, true, true, true], 2, 3, 1);
        assert!(!m.allows(0, 0, 0) && m.allows(0, 0, 1) && m.allows(0, 0, 3));
        assert!(m.allows(1, 0, 0));
    }

    /// `runs` say exactly what `allows` says, and the dense tensor too.
    fn assert_runs_agree(m: &AttentionMask) {
        let runs = m.key_runs().expect("a mask of runs");
        let dense = m.to_tensor(&Device::default()).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(runs.len(), m.batch * m.queries);
        for b in 0..m.batch {
            for i in 0..m.queries {
                let (lo, hi) = runs[b * m.queries + i];
                for j in 0..m.keys {
                    let seen = m.allows(b, i, j);
                    assert_eq!(seen, (lo as usize..hi as usize).contains(&j), "row {b}, query {i}, key {j}: runs {lo}..{hi}");
                    assert_eq!(dense[(b * m.queries + i) * m.keys + j] == 0.0, seen, "row {b}, query {i}, key {j}: dense");
                }
            }
        }
    }

    #[test]
    fn causal_padded_and_packed_masks_are_runs() {
        assert_runs_agree(&AttentionMask::causal_segments(&[1, 1, 1, 1], 1));
        // left and right padding, two rows, packed examples
        assert_runs_agree(&AttentionMask::causal_segments(&[0, 0, 1, 1, 1, 2, 2, 0, 3, 3, 4, 4, 4, 4, 0, 0], 2));
        // prefill after left padding, then a decode step, over slots
        let valid = [false, false, true, true, true, true, true, true, true, true, true, true, true, true, false, false];
        assert_runs_agree(&AttentionMask::over_slots(&valid, 2, 0, 4));
        assert_runs_agree(&AttentionMask::over_slots(&valid, 2, 5, 1));
    }

    #[test]
    fn masks_with_holes_are_not_runs() {
        // an example id reused after another: its first part is visible across the gap
        assert!(AttentionMask::causal_segments(&[1, 1, 2, 1], 1).key_runs().is_none());
        // a padding slot between valid ones, before the query
        assert!(AttentionMask::over_slots(&[true, false, true, true], 1, 3, 1).key_runs().is_none());
    }
}
