//! Summing a tensor over data-parallel ranks with NCCL, on burn's own CUDA stream.
//!
//! One process per GPU, one communicator per process. Rank 0 makes NCCL's unique id; the caller
//! hands it to every rank (r1kit-dist's TCP rendezvous, as across machines) and the first
//! [`all_reduce_sum_each`] joins the communicator on the tensor's GPU. The all-reduce is enqueued from
//! cubecl's device-runner thread on the stream burn's kernels of this thread run on, after they
//! resolve the buffer (the same patched `r1kit_stream_and_ptrs` as the cuBLASLt GEMM), so it is
//! ordered with them and nothing waits on the host. libnccl is loaded at run time (cudarc's
//! dynamic loading: the PyTorch wheel's `nvidia/nccl/lib` on LD_LIBRARY_PATH does it; `.gpu/run.sh`
//! adds it).
//!
//! A failure on the runner thread cannot be returned by the call that enqueued it: it is kept and
//! returned by the next call (and by [`crate::take_async_error`]). A rank that dies leaves the
//! others' NCCL calls waiting on the GPU; the trainers' host collective before every all-reduce
//! (r1kit-dist, with its timeout) is what names the dead rank.

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};
use burn::backend::Cube;
use burn::tensor::{DType, Tensor};
use burn_cubecl::tensor::CubeTensor;
use cubecl_environment::stream::StreamId;
use cudarc::nccl::{result as nccl, sys};

use crate::cuda::{CudaServer, cuda_device, device_handle, panic_message, record_async_error};

/// NCCL's raw communicator, used only on the device-runner thread of its GPU.
#[derive(Clone, Copy)]
struct Comm(sys::ncclComm_t);
// SAFETY: the handle is an opaque pointer NCCL lets any thread use; calls on it are serialized
// (they all run on the one runner thread of the communicator's device).
unsafe impl Send for Comm {}

impl Comm {
    /// The handle (a method, so that a closure captures the `Send` wrapper, not the raw field).
    fn raw(self) -> sys::ncclComm_t {
        self.0
    }
}

/// The process's communicator: (device index, rank, ranks, handle).
static COMM: Mutex<Option<(usize, usize, usize, Comm)>> = Mutex::new(None);

/// NCCL's unique id, made on rank 0 and handed to the others before the first all-reduce.
pub fn unique_id() -> Result<Vec<u8>> {
    let id = catch_unwind(nccl::get_uniqueid)
        .map_err(|p| anyhow!("NCCL could not be loaded (is libnccl.so.2 on LD_LIBRARY_PATH?): {}", panic_message(p)))?
        .map_err(|e| anyhow!("ncclGetUniqueId: {e:?}"))?;
    Ok(id.internal.iter().map(|&c| c as u8).collect())
}

/// Each of `tensors` (f32, on one CUDA device) summed over the `size` ranks: NCCL's all-reduce in
/// place, one per tensor inside one NCCL group (NCCL fuses them into few kernels, so the tensors
/// need not be concatenated into one bucket first), enqueued on burn's stream. A tensor shared
/// with another (or not laid out contiguously) is copied first; an owned one, such as a fresh
/// gradient, is reduced where it lies. The first call joins the communicator with the id
/// `exchange_id` returns (given rank 0's [`unique_id`] on rank 0, `None` elsewhere).
pub fn all_reduce_sum_each(tensors: Vec<Tensor<1>>, rank: usize, size: usize, exchange_id: impl FnOnce(Option<Vec<u8>>) -> Result<Vec<u8>>) -> Result<Vec<Tensor<1>>> {
    crate::cuda::take_async_error()?;
    let Some(first) = tensors.first() else { return Ok(tensors) };
    let device = first.device();
    let mut owned: Vec<CubeTensor> = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.device() != device {
            bail!("nccl: the tensors of one all-reduce are on {:?} and {:?}", device, t.device());
        }
        let ct: CubeTensor = t.try_into_primitive::<Cube>().map_err(|e| anyhow!("nccl: not a CUDA tensor outside autodiff: {e:?}"))?;
        if ct.dtype != DType::F32 {
            bail!("nccl: the all-reduce sums f32 tensors, got {:?}", ct.dtype);
        }
        // in place: only on a contiguous buffer no other tensor shares
        owned.push(if ct.is_contiguous() && ct.is_contiguous_buffer() && ct.can_mut() { ct } else { ct.copy() });
    }
    let cuda = cuda_device(&owned[0])?;
    let counts: Vec<usize> = owned.iter().map(|ct| ct.meta.shape().num_elements()).collect();
    let stream_id = StreamId::current();
    let dh = device_handle(&cuda);
    let comm = communicator(&dh, cuda.index, rank, size, stream_id, exchange_id)?;
    let handles: Vec<_> = owned.iter().map(|ct| ct.handle.clone()).collect();
    dh.submit(move |server: &mut CudaServer| {
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let bindings = handles.iter().map(|h| h.clone().binding()).collect();
            let (stream, ptrs) = server.r1kit_stream_and_ptrs(stream_id, bindings).map_err(|e| format!("resolving the buffers: {e}"))?;
            nccl::group_start().map_err(|e| format!("ncclGroupStart: {e:?}"))?;
            let mut failed = None;
            for (&ptr, &count) in ptrs.iter().zip(&counts) {
                let ptr = ptr as *mut c_void;
                // SAFETY: `ptr` holds `count` f32 on this device, kept alive by `handles` until
                // the all-reduce is enqueued; memory freed after that is reused in stream order.
                let r = unsafe { nccl::all_reduce(ptr as *const c_void, ptr, count, sys::ncclDataType_t::ncclFloat32, sys::ncclRedOp_t::ncclSum, comm.raw(), stream as sys::cudaStream_t) };
                if let Err(e) = r {
                    failed.get_or_insert(format!("ncclAllReduce of {count} floats: {e:?}"));
                }
            }
            // the group is closed even after a failed call, or NCCL stays inside it
            let ended = nccl::group_end().map_err(|e| format!("ncclGroupEnd: {e:?}"));
            failed.map_or(ended.map(|_| ()), Err)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => record_async_error(e),
            Err(panic) => record_async_error(panic_message(panic)),
        }
        drop(handles);
    });
    Ok(owned.into_iter().map(Tensor::from_primitive::<Cube>).collect())
}

/// The process's communicator, joined on first use (blocking until every rank has joined).
fn communicator(
    dh: &cubecl_common::device_handle::DeviceHandle<CudaServer>,
    device: usize,
    rank: usize,
    size: usize,
    stream_id: StreamId,
    exchange_id: impl FnOnce(Option<Vec<u8>>) -> Result<Vec<u8>>,
) -> Result<Comm> {
    let mut slot = COMM.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((d, r, s, comm)) = *slot {
        if (d, r, s) != (device, rank, size) {
            bail!("nccl: this process joined as rank {r} of {s} on cuda:{d}, not rank {rank} of {size} on cuda:{device}");
        }
        return Ok(comm);
    }
    let id = exchange_id(if rank == 0 { Some(unique_id()?) } else { None })?;
    if id.len() != 128 {
        bail!("nccl: the unique id handed over has {} bytes, not 128", id.len());
    }
    let mut unique = sys::ncclUniqueId { internal: [0; 128] };
    for (d, s) in unique.internal.iter_mut().zip(&id) {
        *d = *s as c_char;
    }
    let joined = dh
        .submit_blocking(move |server: &mut CudaServer| {
            catch_unwind(AssertUnwindSafe(|| -> Result<Comm, String> {
                // makes the device's context current on this thread, as a launch does
                server.r1kit_stream_and_ptrs(stream_id, Vec::new()).map_err(|e| e.to_string())?;
                let mut comm: sys::ncclComm_t = std::ptr::null_mut();
                // SAFETY: `comm` is written by NCCL; the id is every rank's same 128 bytes.
                unsafe { nccl::comm_init_rank(&mut comm, size as i32, unique, rank as i32) }.map_err(|e| format!("ncclCommInitRank (rank {rank} of {size}): {e:?}"))?;
                Ok(Comm(comm))
            }))
            .unwrap_or_else(|p| Err(panic_message(p)))
        })
        .map_err(|e| anyhow!("nccl: the device runner failed: {e:?}"))?
        .map_err(|e| anyhow!("nccl: {e}"))?;
    *slot = Some((device, rank, size, joined));
    Ok(joined)
}
