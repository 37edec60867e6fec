//! Which keys each query may attend to, on the device, in one of two forms.
//!
//! Every mask a training or reference forward builds (causal, left padding, packed segments) lets
//! each query see one run of consecutive keys, so it is sent as those runs, two numbers per query,
//! instead of the dense `[b, 1, s, t]` additive mask: the host does not build and upload `s x t`
//! values per row (67 MB per micro-batch of 4 x 2,048 tokens), and the attention's softmax kernels
//! do not read them for every score of every head (half of the forward kernel's bytes). Other
//! consumers (burn's ops, the decode kernel) take the additive form, made on the device when asked.

use burn::prelude::{Int, Tensor, TensorData};

/// Added to the scores of keys a query may not see (finite, so no inf - inf can appear); the same
/// value as the model's host-built masks.
pub const BLOCKED: f32 = -1e30;

#[derive(Debug, Clone)]
pub enum KeyMask {
    /// `[b, 1, s, t]`: 0 where the key is visible, [`BLOCKED`] elsewhere.
    Additive(Tensor<4>),
    /// `[b, s, 2]` f32 (exact integers): query `i` of row `b` sees exactly keys `lo..hi` of the
    /// `keys` keys.
    Runs { runs: Tensor<3>, keys: usize },
}

impl KeyMask {
    /// Runs from the host: `runs` is `[batch, queries]` pairs `(lo, hi)`, row-major.
    pub fn from_runs(runs: &[(u32, u32)], batch: usize, keys: usize, device: &burn::prelude::Device) -> KeyMask {
        let queries = runs.len() / batch.max(1);
        let flat: Vec<f32> = runs.iter().flat_map(|&(lo, hi)| [lo as f32, hi as f32]).collect();
        KeyMask::Runs { runs: Tensor::from_data(TensorData::new(flat, [batch, queries, 2]), device), keys }
    }

    /// `[b, 1, s, t]` of the additive form.
    pub fn dims(&self) -> [usize; 4] {
        match self {
            KeyMask::Additive(mask) => mask.dims(),
            KeyMask::Runs { runs, keys } => {
                let [b, s, _] = runs.dims();
                [b, 1, s, *keys]
            }
        }
    }

    /// The same mask outside autodiff (on the autodiff device's inner one).
    pub fn inner(&self) -> KeyMask {
        match self {
            KeyMask::Additive(mask) => KeyMask::Additive(mask.clone().inner()),
            KeyMask::Runs { runs, keys } => KeyMask::Runs { runs: runs.clone().inner(), keys: *keys },
        }
    }

    /// The same mask on the autodiff device over its own (a constant of a graph there).
    pub fn autodiff(&self) -> KeyMask {
        match self {
            KeyMask::Additive(mask) => KeyMask::Additive(mask.clone().autodiff()),
            KeyMask::Runs { runs, keys } => KeyMask::Runs { runs: runs.clone().autodiff(), keys: *keys },
        }
    }

    pub fn device(&self) -> burn::prelude::Device {
        match self {
            KeyMask::Additive(mask) => mask.device(),
            KeyMask::Runs { runs, .. } => runs.device(),
        }
    }

    /// The additive form (made on the device from runs: a comparison of every key's index with
    /// each query's `lo` and `hi`).
    pub fn additive(&self) -> Tensor<4> {
        match self {
            KeyMask::Additive(mask) => mask.clone(),
            KeyMask::Runs { runs, keys } => {
                let [b, s, _] = runs.dims();
                let device = runs.device();
                let lo = runs.clone().slice([0..b, 0..s, 0..1]).reshape([b, 1, s, 1]);
                let hi = runs.clone().slice([0..b, 0..s, 1..2]).reshape([b, 1, s, 1]);
                let key = Tensor::<1, Int>::arange(0..*keys as i64, &device).float().reshape([1, 1, 1, *keys]);
                let visible = key.clone().greater_equal(lo).bool_and(key.lower(hi));
                Tensor::<4>::zeros([b, 1, s, *keys], &device).mask_fill(visible.bool_not(), BLOCKED)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::Device;

    #[test]
    fn runs_expand_to_the_additive_mask() {
        let device = Device::default();
        // row 0: causal; row 1: a padding query seeing itself, then a segment starting at 1
        let runs = [(0, 1), (0, 2), (0, 3), (0, 1), (1, 2), (1, 3)];
        let mask = KeyMask::from_runs(&runs, 2, 3, &device);
        assert_eq!(mask.dims(), [2, 1, 3, 3]);
        let got = mask.additive().into_data().try_to_vec::<f32>().unwrap();
        let mut want = vec![BLOCKED; 18];
        for (q, &(lo, hi)) in runs.iter().enumerate() {
            for k in lo..hi {
                want[q * 3 + k as usize] = 0.0;
            }
        }
        assert_eq!(got, want);
    }
}
