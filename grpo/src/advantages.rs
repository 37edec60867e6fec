//! Advantages from rewards, per group of G completions of one prompt (a group never spans
//! batches or ranks). Rewards are laid out group after group: `rewards[g * G + i]`.

use serde::{Deserialize, Serialize};

/// Added to the standard deviation before dividing (TRL's and verl's 1e-4 / 1e-6 are both common;
/// ours is TRL's).
pub const STD_EPS: f64 = 1e-4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdvantageKind {
    /// GRPO: (r - group mean) / (group std + eps), std the unbiased (n - 1) estimator as
    /// `torch.std`; a group of one, or of equal rewards, gets 0.
    GroupZscore,
    /// Dr. GRPO: r - group mean (no division: no difficulty bias).
    GroupMean,
    /// (r - group mean) / (std of the whole batch + eps) (TRL's `scale_rewards = "batch"`).
    GroupMeanBatchStd,
    /// RLOO: r - mean of the *other* completions of the group; 0 for a group of one.
    Rloo,
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Unbiased standard deviation; 0 for fewer than two values.
fn std_unbiased(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// One advantage per completion. `group` must divide `rewards.len()`.
pub fn advantages(rewards: &[f64], group: usize, kind: AdvantageKind) -> Vec<f64> {
    assert!(group > 0 && rewards.len() % group == 0, "rewards ({}) are not whole groups of {group}", rewards.len());
    let batch_std = std_unbiased(rewards);
    let mut out = Vec::with_capacity(rewards.len());
    for g in rewards.chunks(group) {
        let m = mean(g);
        for &r in g {
            let a = match kind {
                AdvantageKind::GroupZscore => {
                    let s = std_unbiased(g);
                    if s == 0.0 { 0.0 } else { (r - m) / (s + STD_EPS) }
                }
                AdvantageKind::GroupMean => r - m,
                AdvantageKind::GroupMeanBatchStd => {
                    if batch_std == 0.0 { 0.0 } else { (r - m) / (batch_std + STD_EPS) }
                }
                AdvantageKind::Rloo => {
                    if g.len() < 2 { 0.0 } else { (r - m) * g.len() as f64 / (g.len() - 1) as f64 }
                }
            };
            out.push(a);
        }
    }
    out
}

/// Whether every value in each group is the same (such groups carry no learning signal).
pub fn zero_variance_groups(values: &[f64], group: usize) -> Vec<bool> {
    values.chunks(group).map(|g| g.iter().all(|v| (v - g[0]).abs() < 1e-12)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn zscore_by_hand() {
        // group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3)
        let s = (1.0f64 / 3.0).sqrt() + STD_EPS;
        close(&advantages(&[1.0, 0.0, 0.0, 1.0], 4, AdvantageKind::GroupZscore), &[0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s]);
        // two groups are independent
        let a = advantages(&[1.0, 0.0, 5.0, 5.0], 2, AdvantageKind::GroupZscore);
        assert!(a[0] > 0.0 && a[1] < 0.0 && a[2] == 0.0 && a[3] == 0.0);
    }

    #[test]
    fn degenerate_groups_give_zero_not_nan() {
        for kind in [AdvantageKind::GroupZscore, AdvantageKind::GroupMean, AdvantageKind::GroupMeanBatchStd, AdvantageKind::Rloo] {
            close(&advantages(&[0.7, 0.7, 0.7], 3, kind), &[0.0, 0.0, 0.0]);
            close(&advantages(&[0.3, 0.9], 1, kind), &[0.0, 0.0]);
        }
    }

    #[test]
    fn mean_only_batch_std_and_rloo_by_hand() {
        close(&advantages(&[3.0, 1.0, 2.0], 3, AdvantageKind::GroupMean), &[1.0, -1.0, 0.0]);
        // RLOO: r_i - mean of the others
        close(&advantages(&[3.0, 1.0, 2.0], 3, AdvantageKind::Rloo), &[3.0 - 1.5, 1.0 - 2.5, 2.0 - 2.0]);
        // batch std over all four rewards [1, 0, 3, 3]: mean 1.75, var = (0.5625+3.0625+1.5625*2)/3
        let r = [1.0, 0.0, 3.0, 3.0];
        let s = ((0.5625 + 3.0625 + 2.0 * 1.5625) / 3.0f64).sqrt() + STD_EPS;
        close(&advantages(&r, 2, AdvantageKind::GroupMeanBatchStd), &[0.5 / s, -0.5 / s, 0.0, 0.0]);
    }

    #[test]
    fn zero_variance_detection() {
        assert_eq!(zero_variance_groups(&[1.0, 1.0, 0.0, 1.0], 2), vec![true, false]);
    }
}
