//! Which keys each query may attend to, as an additive mask built on the host.
//!
//! One type serves the three cases: left-padded batches, packed rows (several examples in one row,
//! attention kept inside each), and the KV cache's slots during prefill and decode.

use burn::prelude::*;

/// Added to the scores of keys a query may not see (finite, so no inf - inf can appear).
const BLOCKED: f32 = -1e30;

#[derive(Debug, Clone)]
pub struct AttentionMask {
    batch: usize,
    queries: usize,
    keys: usize,
    /// `[batch, queries, keys]`, 0 where allowed, `BLOCKED` elsewhere.
    values: Vec<f32>,
}

impl AttentionMask {
    /// Causal attention inside segments: `segments` is `[batch, seq]` row-major, 0 marks padding
    /// and equal non-zero ids mark one example. A query sees keys of its own segment at or before
    /// it. Padding queries see only themselves, so their rows stay finite.
    pub fn causal_segments(segments: &[u32], batch: usize) -> Self {
        let seq = segments.len() / batch;
        let mut values = vec![BLOCKED; batch * seq * seq];
        for b in 0..batch {
            let row = &segments[b * seq..(b + 1) * seq];
            for i in 0..seq {
                let out = &mut values[(b * seq + i) * seq..(b * seq + i + 1) * seq];
                out[i] = 0.0;
                if row[i] == 0 {
                    continue;
                }
                for j in 0..i {
                    if row[j] == row[i] {
                        out[j] = 0.0;
                    }
                }
            }
        }
        AttentionMask { batch, queries: seq, keys: seq, values }
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
        let mut values = vec![BLOCKED; batch * queries * keys];
        for b in 0..batch {
            let valid = &slot_valid[b * keys..(b + 1) * keys];
            for i in 0..queries {
                let q_slot = start + i;
                let out = &mut values[(b * queries + i) * keys..(b * queries + i + 1) * keys];
                for j in 0..=q_slot {
                    if valid[j] {
                        out[j] = 0.0;
                    }
                }
                out[q_slot] = 0.0;
            }
        }
        AttentionMask { batch, queries, keys, values }
    }

    /// Whether query `i` of row `b` may see key `j`.
    pub fn allows(&self, b: usize, i: usize, j: usize) -> bool {
        self.values[(b * self.queries + i) * self.keys + j] == 0.0
    }

    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.values.clone(), [self.batch, 1, self.queries, self.keys]), device)
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
}
