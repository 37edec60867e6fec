//! Rule-based rewards for R1-style RL: math verification, format and shaping rewards,
//! countdown, external-command rewards, and the `r1kit reward` command. No ML dependency.

pub mod bench;
pub mod builtins;
pub mod code;
pub mod command;
pub mod countdown;
pub mod external;
pub mod format;
pub mod math;
pub mod reward;
pub mod shaping;

pub use reward::{batch, CompositeOutput, Record, Reward, RewardError, RewardOutput, RewardRegistry, WeightedRewards};
pub use command::{run_reward, RewardArgs};
