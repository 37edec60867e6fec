//! This process's place among the ranks, from the environment variables torchrun and
//! `r1kit launch` set: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// Rank among the processes of this machine (which device it takes).
    pub local_rank: usize,
    /// `host:port` where rank 0 listens for the others.
    pub master: String,
}

impl World {
    /// The world of this process; `None` when WORLD_SIZE is unset or 1 (a single process).
    pub fn from_env() -> Result<Option<World>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`World::from_env`] over any variable lookup (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<World>> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name).map(|v| v.trim().parse::<usize>().with_context(|| format!("environment variable {name}={v:?} is not a number"))).transpose()
        };
        let size = match number("WORLD_SIZE")? {
            None | Some(1) => return Ok(None),
            Some(0) => bail!("environment variable WORLD_SIZE=0: need at least one rank"),
            Some(n) => n,
        };
        let rank = number("RANK")?.context("WORLD_SIZE is set but RANK is not")?;
        if rank >= size {
            bail!("environment variable RANK={rank} is not below WORLD_SIZE={size}");
        }
        let local_rank = number("LOCAL_RANK")?.unwrap_or(rank);
        let addr = var("MASTER_ADDR").context("WORLD_SIZE is set but MASTER_ADDR is not")?;
        let port = number("MASTER_PORT")?.context("WORLD_SIZE is set but MASTER_PORT is not")?;
        if port == 0 || port > u16::MAX as usize {
            bail!("environment variable MASTER_PORT={port} is not a port");
        }
        Ok(Some(World { rank, size, local_rank, master: format!("{addr}:{port}") }))
    }

    /// The one rank that writes logs, checkpoints and the final model.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// This rank's share of a step's items: every `size`-th, starting at `rank`. Every rank sees
    /// the same global order, so the shares split it whatever the number of ranks.
    pub fn shard<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items.iter().skip(self.rank).step_by(self.size).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)]) -> Result<Option<World>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        World::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn reads_torchrun_variables_and_names_the_bad_one() {
        assert_eq!(world(&[]).unwrap(), None);
        assert_eq!(world(&[("WORLD_SIZE", "1")]).unwrap(), None);
        let w = world(&[("WORLD_SIZE", "4"), ("RANK", "3"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "10.0.0.2"), ("MASTER_PORT", "29500")]).unwrap().unwrap();
        assert_eq!(w, World { rank: 3, size: 4, local_rank: 1, master: "10.0.0.2:29500".into() });
        assert!(!w.is_main());
        for (vars, named) in [
            (vec![("WORLD_SIZE", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")], "RANK"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")], "RANK=2"),
            (vec![("WORLD_SIZE", "two")], "WORLD_SIZE"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "1")], "MASTER_ADDR"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "70000")], "MASTER_PORT"),
        ] {
            let err = format!("{:#}", world(&vars).unwrap_err());
            assert!(err.contains(named), "{named}: {err}");
        }
    }

    #[test]
    fn shards_cover_the_items_once_whatever_the_world_size() {
        let items: Vec<u32> = (0..10).collect();
        for size in 1..=4 {
            let mut all: Vec<u32> = (0..size).flat_map(|rank| World { rank, size, local_rank: rank, master: String::new() }.shard(&items)).collect();
            all.sort();
            assert_eq!(all, items, "{size} ranks");
        }
    }
}
