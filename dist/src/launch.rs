//! `r1kit launch`: one process per device on this machine, each told its rank the way torchrun
//! tells it (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT); across
//! machines, the same command on each with `--nnodes`, `--node-rank` and one `--master`.
//! When a rank fails, the launcher names it, gives the others `--grace` seconds to stop on their
//! own (their next collective fails on the lost connection) and then kills them.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(clap::Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Processes (ranks) on this machine, one per device.
    #[arg(long)]
    pub nproc: usize,
    /// Machines taking part, each running this same command.
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,
    /// This machine's index among them (0 hosts the master).
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// `host:port` where rank 0 listens (required with --nnodes > 1; default: a free port on
    /// 127.0.0.1).
    #[arg(long)]
    pub master: Option<String>,
    /// Seconds the other ranks get to stop by themselves after one fails.
    #[arg(long, default_value_t = 30.0)]
    pub grace: f64,
    /// The r1kit command each rank runs, after `--` (e.g. `-- sft --config sft.toml`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs `program` with `args.command` as every rank of this machine; an error names the first
/// rank that failed.
pub fn run_launch(args: &LaunchArgs, program: &Path) -> Result<()> {
    if args.nproc == 0 || args.nnodes == 0 {
        bail!("--nproc and --nnodes must be at least 1");
    }
    if args.node_rank >= args.nnodes {
        bail!("--node-rank {} is not below --nnodes {}", args.node_rank, args.nnodes);
    }
    let master = match &args.master {
        Some(m) => m.clone(),
        None if args.nnodes == 1 => format!("127.0.0.1:{}", free_port()?),
        None => bail!("--master HOST:PORT is needed with --nnodes > 1 (rank 0's machine, reachable from the others)"),
    };
    let (addr, port) = master.rsplit_once(':').with_context(|| format!("--master {master:?} is not HOST:PORT"))?;
    port.parse::<u16>().with_context(|| format!("--master {master:?}: {port:?} is not a port"))?;
    let world = args.nnodes * args.nproc;
    let mut ranks: Vec<(usize, Child)> = Vec::with_capacity(args.nproc);
    for local in 0..args.nproc {
        let rank = args.node_rank * args.nproc + local;
        let child = Command::new(program)
            .args(&args.command)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", args.nproc.to_string())
            .env("MASTER_ADDR", addr)
            .env("MASTER_PORT", port)
            // NVLink SHARP multicast is off on the GPU machines here (NCCL would fail without it)
            .env("NCCL_NVLS_ENABLE", "0")
            .spawn()
            .with_context(|| format!("starting rank {rank} ({})", program.display()))?;
        eprintln!("r1kit launch: rank {rank} of {world} is pid {}", child.id());
        ranks.push((rank, child));
    }
    supervise(ranks, Duration::from_secs_f64(args.grace.max(0.0)))
}

/// Waits for every rank; after the first failure, the others get `grace` and are then killed.
/// Every rank that fails is named (ranks that die together may be seen in any order).
fn supervise(mut ranks: Vec<(usize, Child)>, grace: Duration) -> Result<()> {
    let mut failed: Vec<(usize, ExitStatus)> = Vec::new();
    let mut deadline: Option<Instant> = None;
    while !ranks.is_empty() {
        let mut i = 0;
        while i < ranks.len() {
            match ranks[i].1.try_wait().with_context(|| format!("waiting for rank {}", ranks[i].0))? {
                Some(status) => {
                    let (rank, _) = ranks.remove(i);
                    if !status.success() {
                        eprintln!("r1kit launch: rank {rank} failed ({status})");
                        failed.push((rank, status));
                        if deadline.is_none() && !ranks.is_empty() {
                            eprintln!("r1kit launch: the other ranks get {:.0} s to stop", grace.as_secs_f64());
                            deadline = Some(Instant::now() + grace);
                        }
                    }
                }
                None => i += 1,
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            for (rank, child) in &mut ranks {
                eprintln!("r1kit launch: killing rank {rank} (pid {})", child.id());
                let _ = child.kill();
                let _ = child.wait();
            }
            ranks.clear();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if failed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = failed.iter().map(|(rank, status)| format!("rank {rank} ({status})")).collect();
    bail!("{} failed", names.join(", "))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port for the master")?;
    Ok(listener.local_addr()?.port())
}
