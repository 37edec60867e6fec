//! The machinery every trainer shares, written and tested once: AdamW with f32 master weights and
//! parameter freezing, LR schedules, global-norm clipping, gradient accumulation under a token
//! budget, checkpoints and resume, metrics, evaluation (pass@k, maj@k), model initialization, and
//! supervised fine-tuning (prompt-masked loss, packing).

pub mod clip;
pub mod grads;
pub mod optim;
pub mod params;
pub mod schedule;
pub mod accumulate;
pub mod data_parallel;
pub mod loss;
pub mod packing;
pub mod checkpoint;
pub mod metrics;
pub mod data;
pub mod eval;
pub mod init;
pub mod config;
pub mod rng;
pub mod sft;
pub mod command;
pub mod device_check;
pub mod bench;

pub use command::{run_eval, run_init, run_sft, EvalArgs, InitArgs, SftArgs};
