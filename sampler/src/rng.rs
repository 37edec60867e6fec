//! Per-completion random streams: each (seed, prompt, sample) pair has its own generator, so a
//! completion's draws do not depend on batch composition, compaction or other tests.

/// SplitMix64: tiny, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct StreamRng(u64);

impl StreamRng {
    pub fn new(seed: u64, prompt_index: usize, sample_index: usize) -> Self {
        let mut r = StreamRng(seed ^ 0x9E37_79B9_7F4A_7C15);
        let a = r.next_u64() ^ (prompt_index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut r = StreamRng(a);
        let b = r.next_u64() ^ (sample_index as u64).wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        StreamRng(b)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1), with 24 bits (f32's mantissa).
    pub fn uniform_open(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
}
