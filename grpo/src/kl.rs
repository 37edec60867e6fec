//! KL estimators between the policy and a frozen reference, per token, from log-probabilities of
//! the sampled tokens (Schulman's k1 / k2 / k3), with d = logp_ref - logp clamped to [-20, 20].
//!
//! Their values all estimate KL(pi || ref) on samples from pi, but as *losses* their gradients
//! differ, which is what matters when the KL sits in the loss:
//! - k1 = -d: its expected gradient is zero (E_pi[grad log pi] = 0): in the loss it does nothing
//!   on average, only adds noise. Use it folded into the reward instead.
//! - k2 = d^2 / 2: its expected gradient is that of the reverse KL(pi || ref).
//! - k3 = e^d - d - 1 (GRPO's choice): its expected gradient is that of the forward KL(ref || pi).
//!
//! The tests check these gradients exactly on a small categorical distribution.

use r1kit_model::burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    K1,
    K2,
    K3,
}

/// Per-token KL estimate from `[rows, tokens]` log-probabilities of the sampled tokens.
pub fn kl_estimate(logp: Tensor<2>, logp_ref: Tensor<2>, estimator: KlEstimator) -> Tensor<2> {
    let d = (logp_ref - logp).clamp(-20.0, 20.0);
    match estimator {
        KlEstimator::K1 => d.neg(),
        KlEstimator::K2 => d.square() * 0.5,
        KlEstimator::K3 => d.clone().exp() - d - 1.0,
    }
}

/// The same on plain numbers (for KL folded into the reward, computed on the host).
pub fn kl_estimate_scalar(logp: f64, logp_ref: f64, estimator: KlEstimator) -> f64 {
    let d = (logp_ref - logp).clamp(-20.0, 20.0);
    match estimator {
        KlEstimator::K1 => -d,
        KlEstimator::K2 => 0.5 * d * d,
        KlEstimator::K3 => d.exp() - d - 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1kit_model::burn::tensor::activation::log_softmax;

    /// Expected gradient wrt the logits theta of sum_x pi(x) k(x; theta), pi held fixed as the
    /// sampling distribution (what the estimator's loss does in expectation).
    fn expected_gradient(theta: &[f64], ref_logp: &[f64], est: KlEstimator) -> Vec<f64> {
        let device = Device::flex().autodiff();
        let v = theta.len();
        let t = Tensor::<2>::from_data(TensorData::new(theta.iter().map(|&x| x as f32).collect::<Vec<_>>(), [1, v]), &device).require_grad();
        let logp = log_softmax(t.clone(), 1);
        let pi: Vec<f32> = logp.clone().detach().exp().into_data().try_into_vec_as::<f32>().unwrap();
        let logp_ref = Tensor::<2>::from_data(TensorData::new(ref_logp.iter().map(|&x| x as f32).collect::<Vec<_>>(), [1, v]), &device);
        let weights = Tensor::<2>::from_data(TensorData::new(pi, [1, v]), &device);
        let loss = (kl_estimate(logp, logp_ref, est) * weights).sum();
        let grads = loss.backward();
        t.grad(&grads).unwrap().into_data().try_into_vec_as::<f32>().unwrap().into_iter().map(f64::from).collect()
    }

    fn softmax(x: &[f64]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect()
    }

    #[test]
    fn values_by_hand() {
        let device = Device::flex();
        let logp = Tensor::<2>::from_data(TensorData::new(vec![-1.0f32, -2.0], [1, 2]), &device);
        let logp_ref = Tensor::<2>::from_data(TensorData::new(vec![-1.5f32, -2.0], [1, 2]), &device);
        let get = |e| kl_estimate(logp.clone(), logp_ref.clone(), e).into_data().try_into_vec_as::<f32>().unwrap();
        // d = -0.5, 0
        assert_eq!(get(KlEstimator::K1), vec![0.5, 0.0]);
        assert_eq!(get(KlEstimator::K2), vec![0.125, 0.0]);
        let k3 = get(KlEstimator::K3);
        assert!((k3[0] as f64 - ((-0.5f64).exp() + 0.5 - 1.0)).abs() < 1e-6 && k3[1] == 0.0);
        assert_eq!(kl_estimate_scalar(-1.0, -1.5, KlEstimator::K2), 0.125);
        // clamping keeps k3 finite for wild ratios
        assert!(kl_estimate_scalar(-100.0, 0.0, KlEstimator::K3).is_finite());
    }

    #[test]
    fn estimator_gradients_follow_their_divergences() {
        let theta = [0.3, -1.2, 0.8, 0.0, 1.5];
        let reference = [1.0, 0.2, -0.5, 0.4, -1.0];
        let pi = softmax(&theta);
        let rf = softmax(&reference);
        let ref_logp: Vec<f64> = rf.iter().map(|p| p.ln()).collect();
        // k1: zero expected gradient
        for g in expected_gradient(&theta, &ref_logp, KlEstimator::K1) {
            assert!(g.abs() < 1e-6, "k1 {g}");
        }
        // k3: gradient of forward KL(ref || pi) wrt the logits is pi - ref
        let g3 = expected_gradient(&theta, &ref_logp, KlEstimator::K3);
        for i in 0..5 {
            assert!((g3[i] - (pi[i] - rf[i])).abs() < 1e-5, "k3 {i}: {} vs {}", g3[i], pi[i] - rf[i]);
        }
        // k2: gradient of reverse KL(pi || ref) wrt the logits is pi * (log pi - log ref - KL)
        let kl: f64 = (0..5).map(|i| pi[i] * (pi[i].ln() - rf[i].ln())).sum();
        let g2 = expected_gradient(&theta, &ref_logp, KlEstimator::K2);
        for i in 0..5 {
            let want = pi[i] * (pi[i].ln() - rf[i].ln() - kl);
            assert!((g2[i] - want).abs() < 1e-5, "k2 {i}: {} vs {want}", g2[i]);
        }
        // and the two are really different directions here
        assert!((0..5).any(|i| (g2[i] - g3[i]).abs() > 1e-2));
    }
}
