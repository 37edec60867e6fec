//! Distillation for R1-style post-training: rejection sampling (sample N completions per prompt,
//! keep what the rewards verify, write SFT data), and moving a teacher into a student by traces
//! (SFT on the teacher's verified completions), logit KD (forward KL, reverse KL or JSD against
//! the teacher's distribution) or on-policy distillation (the student samples, the teacher scores
//! its tokens, per-token reverse KL).

pub mod command;
pub mod config;
pub mod dedup;
pub mod divergence;
pub mod memory;
pub mod reject;
pub mod run;
pub mod vocab;

pub use command::{run_distill, run_reject, DistillArgs, RejectArgs};
