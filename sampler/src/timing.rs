//! Where a rollout's wall time goes, summed over every `sample*` call of this thread since the
//! last [`take`]: for benchmarks (`r1kit bench rollout|grpo-step`), which print it beside their
//! totals. A read of the chosen tokens waits for the device; what the host does after it, until
//! the next launch, is time the device sits idle.

use std::cell::Cell;
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

// Per thread: a rollout runs on its caller's thread (as does its device stream), so concurrent
// rollouts on other threads (tests, say) do not mix into a bench's figures.
thread_local! {
    static SUMS: Cell<DecodeTimings> = const { Cell::new(DecodeTimings { prefill_s: 0.0, capture_s: 0.0, device_wait_s: 0.0, host_s: 0.0, steps: 0 }) };
}

#[derive(Clone, Copy)]
pub(crate) enum Phase {
    Prefill,
    Capture,
    DeviceWait,
    Host,
}

pub(crate) fn add(phase: Phase, d: Duration) {
    SUMS.with(|sums| {
        let mut t = sums.get();
        let s = d.as_secs_f64();
        match phase {
            Phase::Prefill => t.prefill_s += s,
            Phase::Capture => t.capture_s += s,
            Phase::DeviceWait => t.device_wait_s += s,
            Phase::Host => t.host_s += s,
        }
        sums.set(t);
    });
}

pub(crate) fn count_step() {
    SUMS.with(|sums| {
        let mut t = sums.get();
        t.steps += 1;
        sums.set(t);
    });
}

/// This thread's sums since the last call, and starts new ones.
pub fn take() -> DecodeTimings {
    SUMS.with(|sums| sums.take())
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
