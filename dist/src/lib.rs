//! Data parallelism across processes, one per device: which rank this process is
//! ([`World`], from the variables torchrun and `r1kit launch` set), the rendezvous of all ranks
//! over TCP at the master address, and the collectives the trainers call ([`Group`]: sum
//! all-reduce, barrier), in the same way on one machine or across several.
//!
//! The transport here moves host buffers: it is what CPU training uses, and what the tests run.
//! A rank that dies closes its connection, so the others stop at their next collective with an
//! error naming it; a rank that hangs is named after the group's timeout, and a wait on a GPU
//! collective is bounded by the same timeout ([`Group::watch`]).

pub mod group;
pub mod launch;
pub mod watch;
pub mod world;

pub use group::Group;
pub use launch::{LaunchArgs, run_launch};
pub use world::World;
