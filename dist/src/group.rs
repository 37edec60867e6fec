//! The ranks joined over TCP: rank 0 listens at the master address, every other rank connects to
//! it (retrying until the timeout, as it may start first) and says which rank it is. Collectives
//! go through rank 0 (a star), which sums in rank order, so every rank gets the same bits and a
//! run is reproducible. Each message is length-prefixed; a closed connection or a message of the
//! wrong length is an error that names the rank.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::world::World;

const HELLO: &[u8; 8] = b"r1kit-dp";

/// How long a collective waits for a silent rank, unless R1KIT_DIST_TIMEOUT (seconds) says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Group {
    world: World,
    /// How long a collective waits for a silent rank.
    timeout: Duration,
    /// Rank 0: a link to each other rank, in rank order; other ranks: the link to rank 0.
    links: Vec<(usize, TcpStream)>,
}

impl Group {
    /// The group of this process when the environment names a world of several ranks.
    pub fn from_env() -> Result<Option<Group>> {
        let Some(world) = World::from_env()? else { return Ok(None) };
        let timeout = match std::env::var("R1KIT_DIST_TIMEOUT") {
            Ok(v) => Duration::from_secs_f64(v.trim().parse::<f64>().with_context(|| format!("environment variable R1KIT_DIST_TIMEOUT={v:?} is not a number of seconds"))?),
            Err(_) => DEFAULT_TIMEOUT,
        };
        Group::connect(&world, timeout).map(Some)
    }

    /// Joins all ranks of `world`; fails when they are not all there within `timeout`.
    pub fn connect(world: &World, timeout: Duration) -> Result<Group> {
        let deadline = Instant::now() + timeout;
        let links = if world.is_main() { accept_all(world, deadline)? } else { vec![(0, connect_to_main(world, deadline)?)] };
        for (_, stream) in &links {
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            stream.set_nodelay(true)?;
        }
        Ok(Group { world: world.clone(), timeout, links })
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn rank(&self) -> usize {
        self.world.rank
    }

    pub fn size(&self) -> usize {
        self.world.size
    }

    /// Bounds a wait outside this group's own collectives (a GPU all-reduce) by the group's
    /// timeout: while the returned watch lives, running past the timeout ends the process with a
    /// message naming this rank and `what`, as a host collective's timeout would end it with an
    /// error.
    pub fn watch(&self, what: &str) -> crate::watch::Watch {
        crate::watch::watch(self.timeout, format!("rank {}: {what}", self.rank()), |message| {
            eprintln!("error: {message}");
            std::process::exit(1)
        })
    }

    /// Every rank's `values` summed element by element (rank 0 + rank 1 + ...), on every rank.
    pub fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()> {
        self.all_reduce(values, "all-reduce (f32)")
    }

    /// [`Group::all_reduce_sum`] of f64 values (counts, metrics).
    pub fn all_reduce_sum_f64(&mut self, values: &mut [f64]) -> Result<()> {
        self.all_reduce(values, "all-reduce (f64)")
    }

    /// Every rank's `values`, concatenated in rank order, on every rank (they may differ in length).
    pub fn all_gather_f64(&mut self, values: &[f64]) -> Result<Vec<f64>> {
        let mut lengths = vec![0.0; self.size()];
        lengths[self.rank()] = values.len() as f64;
        self.all_reduce(&mut lengths, "all-gather (lengths)")?;
        let lengths: Vec<usize> = lengths.iter().map(|&n| n as usize).collect();
        let start: usize = lengths[..self.rank()].iter().sum();
        let mut all = vec![0.0; lengths.iter().sum()];
        all[start..start + values.len()].copy_from_slice(values);
        self.all_reduce(&mut all, "all-gather")?;
        Ok(all)
    }

    /// Returns once every rank has called it.
    pub fn barrier(&mut self) -> Result<()> {
        self.all_reduce::<f32>(&mut [], "barrier")
    }

    fn all_reduce<T: Element>(&mut self, values: &mut [T], what: &str) -> Result<()> {
        let bytes = values.len() * T::SIZE;
        if self.world.is_main() {
            let mut sum = values.to_vec();
            let mut buffer = vec![0u8; bytes];
            for (peer, stream) in &mut self.links {
                receive(stream, &mut buffer, *peer, what)?;
                for (s, chunk) in sum.iter_mut().zip(buffer.chunks_exact(T::SIZE)) {
                    *s = s.add(T::from_le(chunk));
                }
            }
            let out = to_bytes(&sum);
            for (peer, stream) in &mut self.links {
                send(stream, &out, *peer, what)?;
            }
            values.copy_from_slice(&sum);
        } else {
            let (peer, stream) = &mut self.links[0];
            send(stream, &to_bytes(values), *peer, what)?;
            let mut buffer = vec![0u8; bytes];
            receive(stream, &mut buffer, *peer, what)?;
            for (v, chunk) in values.iter_mut().zip(buffer.chunks_exact(T::SIZE)) {
                *v = T::from_le(chunk);
            }
        }
        Ok(())
    }
}

/// What the collectives carry.
trait Element: Copy {
    const SIZE: usize;
    fn add(self, other: Self) -> Self;
    fn from_le(bytes: &[u8]) -> Self;
    fn to_le(self, out: &mut Vec<u8>);
}

impl Element for f32 {
    const SIZE: usize = 4;
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn from_le(bytes: &[u8]) -> Self {
        f32::from_le_bytes(bytes.try_into().expect("4 bytes"))
    }
    fn to_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Element for f64 {
    const SIZE: usize = 8;
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn from_le(bytes: &[u8]) -> Self {
        f64::from_le_bytes(bytes.try_into().expect("8 bytes"))
    }
    fn to_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

fn to_bytes<T: Element>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    values.iter().for_each(|v| v.to_le(&mut out));
    out
}

fn send(stream: &mut TcpStream, payload: &[u8], peer: usize, what: &str) -> Result<()> {
    stream
        .write_all(&(payload.len() as u64).to_le_bytes())
        .and_then(|_| stream.write_all(payload))
        .map_err(|e| lost(peer, what, e))
}

fn receive(stream: &mut TcpStream, payload: &mut [u8], peer: usize, what: &str) -> Result<()> {
    let mut length = [0u8; 8];
    stream.read_exact(&mut length).map_err(|e| lost(peer, what, e))?;
    let length = u64::from_le_bytes(length) as usize;
    if length != payload.len() {
        bail!("{what}: rank {peer} sent {length} bytes where {} were expected (the ranks disagree on the model or the step)", payload.len());
    }
    stream.read_exact(payload).map_err(|e| lost(peer, what, e))
}

fn lost(peer: usize, what: &str, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => anyhow!("{what}: rank {peer} sent nothing within the timeout (R1KIT_DIST_TIMEOUT): it hangs or is far behind"),
        _ => anyhow!("{what}: lost rank {peer} ({e}): the process died or its machine is unreachable"),
    }
}

/// Rank 0: accepts one connection from every other rank.
fn accept_all(world: &World, deadline: Instant) -> Result<Vec<(usize, TcpStream)>> {
    let listener = TcpListener::bind(&world.master).with_context(|| format!("rank 0 cannot listen at MASTER_ADDR:MASTER_PORT = {}", world.master))?;
    listener.set_nonblocking(true)?;
    let mut slots: Vec<Option<TcpStream>> = (0..world.size).map(|_| None).collect();
    while slots.iter().skip(1).any(Option::is_none) {
        match listener.accept() {
            Ok((mut stream, from)) => {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(remaining(deadline)?))?;
                let mut hello = [0u8; 16];
                stream.read_exact(&mut hello).with_context(|| format!("rendezvous: {from} connected but did not introduce itself"))?;
                if &hello[..8] != HELLO {
                    bail!("rendezvous: {from} is not an r1kit rank (another service at {}?)", world.master);
                }
                let rank = u32::from_le_bytes(hello[8..12].try_into().expect("4 bytes")) as usize;
                let size = u32::from_le_bytes(hello[12..16].try_into().expect("4 bytes")) as usize;
                if size != world.size {
                    bail!("rendezvous: rank {rank} at {from} counts {size} ranks, rank 0 counts {}", world.size);
                }
                if rank == 0 || rank >= world.size || slots[rank].is_some() {
                    bail!("rendezvous: {from} says it is rank {rank}, which is {}", if rank == 0 || rank >= world.size { "not a rank it can be" } else { "taken" });
                }
                stream.write_all(HELLO)?;
                slots[rank] = Some(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing: Vec<String> = slots.iter().enumerate().skip(1).filter(|(_, s)| s.is_none()).map(|(r, _)| r.to_string()).collect();
                    bail!("rendezvous at {}: rank(s) {} did not connect within the timeout", world.master, missing.join(", "));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("rendezvous: accepting a rank"),
        }
    }
    Ok(slots.into_iter().enumerate().skip(1).map(|(r, s)| (r, s.expect("every slot filled"))).collect())
}

/// Other ranks: connect to rank 0 (which may not listen yet) and introduce this rank.
fn connect_to_main(world: &World, deadline: Instant) -> Result<TcpStream> {
    let mut stream = loop {
        match TcpStream::connect(&world.master) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("rank {}: rank 0 did not answer at {} within the timeout", world.rank, world.master));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream.set_read_timeout(Some(remaining(deadline)?))?;
    let mut hello = HELLO.to_vec();
    hello.extend_from_slice(&(world.rank as u32).to_le_bytes());
    hello.extend_from_slice(&(world.size as u32).to_le_bytes());
    stream.write_all(&hello)?;
    let mut ack = [0u8; 8];
    stream.read_exact(&mut ack).with_context(|| format!("rank {}: rank 0 at {} refused this rank (see its log)", world.rank, world.master))?;
    if &ack != HELLO {
        bail!("rank {}: {} is not rank 0 of an r1kit run", world.rank, world.master);
    }
    Ok(stream)
}

fn remaining(deadline: Instant) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("rendezvous: the timeout ran out");
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn worlds(size: usize) -> Vec<World> {
        let master = format!("127.0.0.1:{}", free_port());
        (0..size).map(|rank| World { rank, size, local_rank: rank, master: master.clone() }).collect()
    }

    #[test]
    fn all_reduce_sums_in_rank_order_on_every_rank() {
        let handles: Vec<_> = worlds(3)
            .into_iter()
            .map(|w| {
                std::thread::spawn(move || {
                    let mut g = Group::connect(&w, Duration::from_secs(20)).unwrap();
                    let r = w.rank as f32;
                    let mut v = vec![r, 10.0 * r, 0.1];
                    g.all_reduce_sum(&mut v).unwrap();
                    let mut c = [w.rank as f64 + 0.5];
                    g.all_reduce_sum_f64(&mut c).unwrap();
                    let gathered = g.all_gather_f64(&vec![w.rank as f64; w.rank + 1]).unwrap();
                    assert_eq!(gathered, [0.0, 1.0, 1.0, 2.0, 2.0, 2.0], "rank order, each rank's own length");
                    g.barrier().unwrap();
                    (v, c[0])
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (v, c) in &results {
            assert_eq!(v[..2], [3.0, 30.0]);
            assert_eq!(v[2].to_bits(), ((0.1f32 + 0.1) + 0.1).to_bits(), "rank 0 + rank 1 + rank 2, the same bits everywhere");
            assert_eq!(*c, 4.5);
        }
    }

    #[test]
    fn a_rank_that_dies_is_named_and_a_missing_rank_times_out() {
        let [w0, w1]: [World; 2] = worlds(2).try_into().unwrap();
        let dying = std::thread::spawn(move || drop(Group::connect(&w1, Duration::from_secs(20)).unwrap()));
        let mut g = Group::connect(&w0, Duration::from_secs(20)).unwrap();
        dying.join().unwrap();
        let err = format!("{:#}", g.all_reduce_sum(&mut [1.0]).unwrap_err());
        assert!(err.contains("rank 1"), "{err}");

        let [w0, _]: [World; 2] = worlds(2).try_into().unwrap();
        let err = format!("{:#}", Group::connect(&w0, Duration::from_millis(300)).err().unwrap());
        assert!(err.contains("rank(s) 1 did not connect"), "{err}");
    }

    #[test]
    fn ranks_that_disagree_on_the_length_are_told() {
        let [w0, w1]: [World; 2] = worlds(2).try_into().unwrap();
        let other = std::thread::spawn(move || {
            let mut g = Group::connect(&w1, Duration::from_secs(20)).unwrap();
            let _ = g.all_reduce_sum(&mut [1.0, 2.0]);
        });
        let mut g = Group::connect(&w0, Duration::from_secs(20)).unwrap();
        let err = format!("{:#}", g.all_reduce_sum(&mut [1.0]).unwrap_err());
        assert!(err.contains("rank 1 sent 8 bytes where 4 were expected"), "{err}");
        drop(g);
        other.join().unwrap();
    }
}
