//! Learning-rate schedules: linear warmup from 0, then constant, linear decay to 0, or cosine
//! decay to 0, with the formulas of transformers' `get_constant_schedule_with_warmup`,
//! `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup` (num_cycles 0.5).
//! As there, optimizer step `s` (0-based) uses `lr * factor(s)`, so the first step of a warmup
//! runs at learning rate 0.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    #[default]
    Linear,
    Cosine,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(ScheduleKind::Constant),
            "linear" => Ok(ScheduleKind::Linear),
            "cosine" => Ok(ScheduleKind::Cosine),
            other => Err(format!("unknown schedule `{other}` (constant, linear, cosine)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    /// Multiplier of the peak learning rate at optimizer step `step` (0-based).
    pub fn factor(&self, step: u64) -> f64 {
        let (s, w, n) = (step as f64, self.warmup_steps as f64, self.total_steps as f64);
        if step < self.warmup_steps {
            return s / w.max(1.0);
        }
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => ((n - s) / (n - w).max(1.0)).max(0.0),
            ScheduleKind::Cosine => {
                let progress = (s - w) / (n - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }

    pub fn lr(&self, peak: f64, step: u64) -> f64 {
        peak * self.factor(step)
    }
}

/// Warmup steps from a ratio of the total, rounded up as transformers' `get_warmup_steps` does.
pub fn warmup_from_ratio(ratio: f64, total_steps: u64) -> u64 {
    (ratio * total_steps as f64).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_then_linear_matches_transformers() {
        let s = Schedule { kind: ScheduleKind::Linear, warmup_steps: 10, total_steps: 110 };
        // lambda: step / 10 while warming, then (110 - step) / 100
        assert!(close(s.factor(0), 0.0));
        assert!(close(s.factor(5), 0.5));
        assert!(close(s.factor(10), 1.0));
        assert!(close(s.factor(60), 0.5));
        assert!(close(s.factor(109), 0.01));
        assert!(close(s.factor(110), 0.0));
        assert!(close(s.factor(500), 0.0));
        assert!(close(s.lr(3e-4, 35), 3e-4 * 0.75));
    }

    #[test]
    fn warmup_then_cosine_matches_transformers() {
        let s = Schedule { kind: ScheduleKind::Cosine, warmup_steps: 4, total_steps: 104 };
        assert!(close(s.factor(2), 0.5));
        assert!(close(s.factor(4), 1.0));
        // progress 0.25 -> 0.5 * (1 + cos(pi/4))
        assert!(close(s.factor(29), 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2)));
        assert!(close(s.factor(54), 0.5));
        assert!(close(s.factor(104), 0.0));
        assert!(s.factor(103) > 0.0 && s.factor(103) < 1e-3);
    }

    #[test]
    fn constant_and_no_warmup() {
        let s = Schedule { kind: ScheduleKind::Constant, warmup_steps: 3, total_steps: 10 };
        assert!(close(s.factor(1), 1.0 / 3.0));
        assert!(close(s.factor(3), 1.0) && close(s.factor(9), 1.0));
        let s = Schedule { kind: ScheduleKind::Linear, warmup_steps: 0, total_steps: 4 };
        assert_eq!([0, 1, 2, 3].map(|i| s.factor(i)), [1.0, 0.75, 0.5, 0.25]);
        assert_eq!(warmup_from_ratio(0.03, 100), 3);
        assert_eq!(warmup_from_ratio(0.1, 15), 2);
    }
}
