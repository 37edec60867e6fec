//! GRPO: the algorithm as small pure functions (advantages, KL estimators, the clipped surrogate
//! and its aggregation) and the loop that wires sampler -> rewards -> advantages -> loss -> the
//! optimizer of `train`.

pub mod advantages;
pub mod bench;
pub mod command;
pub mod config;
pub mod kl;
pub mod loss;
pub mod trainer;
pub mod update;
