//! Where a rollout's wall time goes, summed over every `sample*` call of the process since the
//! last [`take`]: for benchmarks (`r1kit bench rollout|grpo-step`), which print it beside their
//! totals. A read of the chosen tokens waits for the device; what the host does after it, until
//! the next launch, is time the device sits idle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Seconds of the rollouts since the last [`take`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeTimings {
    /// Up to the first step: the prompts' prefill and its logits.
    pub prefill_s: f64,
    /// Capturing a decode step as a graph (its warm-up runs included), once per batch size.
    pub capture_s: f64,
    /// Blocked on the device in the reads of the chosen tokens.
    pub device_wait_s: f64,
    /// The host's own work between one read and the next (stop checks, the next steps' inputs,
    /// launches). Eager steps read every step, so the device is idle for most of it; captured
    /// steps are read every few, and the device runs the steps already launched meanwhile.
    pub host_s: f64,
    pub steps: u64,
}

const FIELDS: usize = 5;
static NANOS: [AtomicU64; FIELDS] = [const { AtomicU64::new(0) }; FIELDS];

#[derive(Clone, Copy)]
pub(crate) enum Phase {
    Prefill = 0,
    Capture = 1,
    DeviceWait = 2,
    Host = 3,
}

pub(crate) fn add(phase: Phase, d: Duration) {
    NANOS[phase as usize].fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
}

pub(crate) fn count_step() {
    NANOS[FIELDS - 1].fetch_add(1, Ordering::Relaxed);
}

/// The sums since the last call, and starts new ones.
pub fn take() -> DecodeTimings {
    let s = |i: usize| NANOS[i].swap(0, Ordering::Relaxed) as f64 * 1e-9;
    DecodeTimings {
        prefill_s: s(Phase::Prefill as usize),
        capture_s: s(Phase::Capture as usize),
        device_wait_s: s(Phase::DeviceWait as usize),
        host_s: s(Phase::Host as usize),
        steps: NANOS[FIELDS - 1].swap(0, Ordering::Relaxed),
    }
}

impl std::fmt::Display for DecodeTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_step = |s: f64| 1e3 * s / self.steps.max(1) as f64;
        write!(
            f,
            "prefill {:.3} s, graph capture {:.3} s, {} steps: waiting on the device {:.3} s ({:.2} ms/step), host's own work {:.3} s ({:.2} ms/step)",
            self.prefill_s,
            self.capture_s,
            self.steps,
            self.device_wait_s,
            per_step(self.device_wait_s),
            self.host_s,
            per_step(self.host_s)
        )
    }
}
