//! The cuBLASLt GEMM on burn's own CUDA stream, on burn-allocated memory.
//!
//! A call queues a closure on cubecl's device-runner thread (`DeviceHandle::submit`, the FIFO
//! queue burn's own kernel launches go through, so it runs in order with them). There the
//! patched `CudaServer::r1kit_stream_and_ptrs` (gpu/patches/) resolves the three buffers as a
//! kernel launch would, cross-stream waits included, and returns burn's CUstream and the device
//! pointers; `cublasLtMatmul` is enqueued on that stream. No host synchronisation. The closure
//! holds the tensors' handles until the GEMM is enqueued, so memory burn frees afterwards is
//! reused in stream order, after the GEMM, exactly as after a kernel.
//!
//! cuBLASLt handle, workspaces (one per CUDA stream) and plans (descriptor, layouts and the
//! heuristic's algorithm per problem) live in a thread-local on the runner thread.
//!
//! Errors: problems visible on the calling thread (device, dtype, shapes, layouts, a missing
//! libcublasLt) are returned. A cuBLASLt failure on the runner thread cannot be; it is kept and
//! returned by the next [`gemm`] or [`take_async_error`], and the output holds garbage.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};
use burn_cubecl::{CubeBackend, CubeDevice};
use burn_cubecl::tensor::CubeTensor;
use cubecl_common::device::Device as _;
use cubecl_common::device_handle::DeviceHandle;
use cubecl_cuda::{CudaDevice, CudaRuntime};
use cubecl_environment::stream::StreamId;
use cubecl_runtime::runtime::Runtime;
use cubecl_runtime::server::Handle;
use cudarc::cublaslt::{result as lt, sys as ltsys};
use cudarc::driver::sys::CUstream;
use burn::backend::Cube;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Tensor};

use crate::layout::{BlasGemm, MatrixView, batch_of, pointer_alignment};

/// cubecl-cuda keeps its `compute` module private; the server is the runtime's associated type.
pub(crate) type CudaServer = <CudaRuntime as Runtime>::Server;

/// cuBLASLt workspace per stream (what PyTorch uses on Hopper).
const WORKSPACE_BYTES: usize = 32 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Elem {
    F32,
    Bf16,
    F16,
}

impl Elem {
    fn of(dtype: DType) -> Result<Self> {
        match dtype {
            DType::F32 => Ok(Self::F32),
            DType::BF16 => Ok(Self::Bf16),
            DType::F16 => Ok(Self::F16),
            other => bail!("gemm: dtype {other:?} is not supported (f32, bf16, f16)"),
        }
    }

    fn cuda(self) -> ltsys::cudaDataType {
        match self {
            Self::F32 => ltsys::cudaDataType::CUDA_R_32F,
            Self::Bf16 => ltsys::cudaDataType::CUDA_R_16BF,
            Self::F16 => ltsys::cudaDataType::CUDA_R_16F,
        }
    }
}

/// `op(a) @ op(b)`; see [`crate::gemm`].
pub fn gemm(a: Tensor<2>, b: Tensor<2>, transpose_a: bool, transpose_b: bool) -> Result<Tensor<2>> {
    let (ca, cb) = (primitive(a, "a")?, primitive(b, "b")?);
    #[cfg(not(feature = "fusion"))]
    let c = gemm_cube(&ca, &cb, transpose_a, transpose_b)?;
    #[cfg(feature = "fusion")]
    let c = crate::fused::gemm(&ca, &cb, transpose_a, transpose_b).ok_or_else(|| anyhow!("gemm: operands {:?} and {:?} do not multiply", ca.shape, cb.shape))?;
    Ok(Tensor::from_primitive::<Cube>(c))
}

/// [`gemm`] on burn-cubecl primitives (what the autodiff op of `crate::matmul` calls), of any
/// rank >= 2 with equal leading (batch) dims: one strided-batched cuBLASLt call. An operand whose
/// batch dims are not one evenly strided run is first made contiguous (a copy, as burn's own
/// matmul would).
pub fn gemm_cube(ca: &CubeTensor, cb: &CubeTensor, transpose_a: bool, transpose_b: bool) -> Result<CubeTensor> {
    gemm_cube_to(ca, cb, transpose_a, transpose_b, GemmOutput::New(ca.dtype))
}

/// Where [`gemm_cube_to`] puts the product.
pub enum GemmOutput<'a> {
    /// A new tensor of this dtype (f32 from bf16 operands saves a cast kernel after the GEMM).
    New(DType),
    /// Added into this tensor (cuBLASLt's beta = 1), in place: the caller's own buffer, which no
    /// other tensor shares, of the product's shape or a view of a larger one.
    AddTo(&'a CubeTensor),
}

/// [`gemm_cube`] with the product in a dtype of its own or added into a tensor.
pub fn gemm_cube_to(ca: &CubeTensor, cb: &CubeTensor, transpose_a: bool, transpose_b: bool, output: GemmOutput) -> Result<CubeTensor> {
    take_async_error()?;
    let cuda = cuda_device(ca)?;
    if cuda_device(cb)? != cuda {
        bail!("gemm: a and b are on different devices");
    }
    if ca.dtype != cb.dtype {
        bail!("gemm: a is {:?} and b is {:?} (one dtype for both)", ca.dtype, cb.dtype);
    }
    let (shape_a, shape_b) = (ca.meta.shape().to_vec(), cb.meta.shape().to_vec());
    let rank = shape_a.len();
    if rank < 2 || shape_b.len() != rank {
        bail!("gemm: a is {shape_a:?} and b is {shape_b:?} (need one rank >= 2)");
    }
    let lead = &shape_a[..rank - 2];
    if shape_b[..rank - 2] != *lead {
        bail!("gemm: batch dims differ: a is {shape_a:?}, b is {shape_b:?} (no broadcasting)");
    }
    let elem = Elem::of(ca.dtype)?;
    let dtype = match output {
        GemmOutput::New(dtype) => dtype,
        GemmOutput::AddTo(acc) => acc.dtype,
    };
    let out_elem = Elem::of(dtype)?;
    if out_elem != elem && out_elem != Elem::F32 {
        bail!("gemm: a {:?} product is written in its operands' dtype or in f32, not {dtype:?}", ca.dtype);
    }
    let (ca, cb) = (evenly_batched(ca), evenly_batched(cb));
    let (va, batch, stride_a) = view(&ca, transpose_a, "a")?;
    let (vb, _, stride_b) = view(&cb, transpose_b, "b")?;
    let (m, k, n) = (va.rows, va.cols, vb.cols);
    if vb.rows != k {
        bail!("gemm: op(a) is {m}x{k} but op(b) is {}x{n}", vb.rows);
    }
    let device = ca.device.clone();
    let out_shape: Vec<usize> = lead.iter().copied().chain([m, n]).collect();
    if let (GemmOutput::AddTo(acc), true) = (&output, m == 0 || n == 0 || batch == 0 || k == 0) {
        return Ok((*acc).clone());
    }
    if m == 0 || n == 0 || batch == 0 {
        return Ok(CubeBackend::float_empty(out_shape.into(), &device, dtype.into()));
    }
    if k == 0 {
        return Ok(CubeBackend::float_zeros(out_shape.into(), &device, dtype.into()));
    }
    // Row-major with no row padding: burn's `float_empty` pads rows whose bytes are not a multiple
    // of its alignment (bf16 logits of 151,936 ids), and every kernel reading the product then
    // copies it to a contiguous buffer first (0.6 ms per 1,024 rows of logits).
    let (co, beta) = match output {
        GemmOutput::New(_) => {
            let out_shape = burn::tensor::Shape::from(out_shape);
            let handle: Handle = ca.client.empty(out_shape.num_elements() * dtype.size());
            (CubeTensor::new_contiguous(ca.client.clone(), device.clone(), out_shape, handle, dtype), 0f32)
        }
        GemmOutput::AddTo(acc) => {
            if acc.meta.shape().to_vec() != out_shape || cuda_device(acc)? != cuda {
                bail!("gemm: adding a {out_shape:?} product into a {:?} tensor", acc.meta.shape().to_vec());
            }
            (acc.clone(), 1f32)
        }
    };
    let (vc, _, stride_c) = view(&co, false, "output")?;
    let g = BlasGemm::new(va, vb, vc).map_err(|e| anyhow!("gemm: {e}"))?.batched(batch, [stride_a, stride_b, stride_c]);

    // Burn's launches from this thread go to this stream; the closure runs with it too.
    let stream_id = StreamId::current();
    let dh = device_handle(&cuda);
    ensure_ready(&dh, &cuda, stream_id)?;
    let handles = [ca.handle.clone(), cb.handle.clone(), co.handle.clone()];
    dh.submit(move |server: &mut CudaServer| {
        let outcome = catch_unwind(AssertUnwindSafe(|| enqueue(server, stream_id, &handles, [elem, out_elem], beta, g)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => record_async_error(e),
            Err(panic) => record_async_error(panic_message(panic)),
        }
        // The handles go here, after the enqueue: reuse of that memory is ordered after the GEMM.
        drop(handles);
    });
    Ok(co)
}

/// The error a GEMM hit on the device-runner thread since the last call, if any.
pub fn take_async_error() -> Result<()> {
    match ASYNC_ERROR.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => bail!("a cuBLASLt GEMM or NCCL call failed on the device-runner thread: {e}"),
        None => Ok(()),
    }
}

static ASYNC_ERROR: Mutex<Option<String>> = Mutex::new(None);

pub(crate) fn record_async_error(e: String) {
    let mut slot = ASYNC_ERROR.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(e);
    }
}

pub(crate) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

fn primitive(t: Tensor<2>, name: &str) -> Result<burn::backend::tensor::FloatTensor<Cube>> {
    let autodiff = t.device().is_autodiff();
    t.try_into_primitive::<Cube>().map_err(|e| {
        if autodiff {
            anyhow!("gemm: {name} is an autodiff tensor (use r1kit_gpu::matmul, which tracks gradients): {e:?}")
        } else {
            anyhow!("gemm: {name} is not a CUDA tensor: {e:?}")
        }
    })
}

pub(crate) fn cuda_device(t: &CubeTensor) -> Result<CudaDevice> {
    match &t.device {
        CubeDevice::Cuda(d) => Ok(d.clone()),
        #[allow(unreachable_patterns)]
        other => bail!("gemm: needs a CUDA device, got {other:?}"),
    }
}

/// The operand itself when its batch dims form one evenly strided run, else a contiguous copy.
fn evenly_batched(t: &CubeTensor) -> CubeTensor {
    let (shape, strides) = (t.meta.shape(), t.meta.strides());
    let r = shape.len();
    if r <= 2 || batch_of(&shape[..r - 2], &strides[..r - 2]).is_some() {
        return t.clone();
    }
    burn_cubecl::kernel::into_contiguous(t.clone())
}

/// The last two dims as a matrix view, and the batch: `(view, count, stride)`.
fn view(t: &CubeTensor, transpose: bool, name: &str) -> Result<(MatrixView, usize, usize)> {
    if t.meta.is_tiled() {
        bail!("gemm: {name} has a tiled storage layout");
    }
    let (shape, strides) = (t.meta.shape(), t.meta.strides());
    let r = shape.len();
    if r < 2 || strides.len() != r {
        bail!("gemm: {name} has rank {r} (need >= 2)");
    }
    let (batch, stride) = batch_of(&shape[..r - 2], &strides[..r - 2])
        .ok_or_else(|| anyhow!("gemm: {name}'s batch dims {:?} (strides {:?}) are not one evenly strided run", &shape[..r - 2], &strides[..r - 2]))?;
    let view = MatrixView::new([shape[r - 2], shape[r - 1]], [strides[r - 2], strides[r - 1]], transpose)
        .map_err(|e| anyhow!("gemm: {name}: {e}"))?;
    Ok((view, batch, stride))
}

pub(crate) fn device_handle(device: &CudaDevice) -> DeviceHandle<CudaServer> {
    thread_local! {
        static HANDLES: RefCell<HashMap<usize, DeviceHandle<CudaServer>>> = RefCell::new(HashMap::new());
    }
    HANDLES.with(|h| h.borrow_mut().entry(device.index).or_insert_with(|| DeviceHandle::new(device.to_id())).clone())
}

/// Creates the cuBLASLt handle on the device's runner thread once, synchronously, so that a
/// missing libcublasLt is an error here rather than on the runner thread.
fn ensure_ready(dh: &DeviceHandle<CudaServer>, device: &CudaDevice, stream_id: StreamId) -> Result<()> {
    static READY: Mutex<Vec<(usize, Result<(), String>)>> = Mutex::new(Vec::new());
    let mut ready = READY.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, r)) = ready.iter().find(|(i, _)| *i == device.index) {
        return r.clone().map_err(|e| anyhow!("gemm: cuBLASLt unavailable on cuda:{}: {e}", device.index));
    }
    let r = dh
        .submit_blocking(move |server: &mut CudaServer| {
            catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
                // Makes the device's context current on this thread, as a launch does.
                server.r1kit_stream_and_ptrs(stream_id, Vec::new()).map_err(|e| e.to_string())?;
                with_lt(|_| Ok(()))
            }))
            .unwrap_or_else(|p| Err(panic_message(p)))
        })
        .map_err(|e| format!("{e:?}"))
        .and_then(|r| r);
    ready.push((device.index, r.clone()));
    r.map_err(|e| anyhow!("gemm: cuBLASLt unavailable on cuda:{}: {e}", device.index))
}

/// On the runner thread: resolve the buffers on the stream and enqueue the GEMM there.
fn enqueue(server: &mut CudaServer, stream_id: StreamId, handles: &[Handle; 3], elems: [Elem; 2], beta: f32, g: BlasGemm) -> Result<(), String> {
    let bindings = handles.iter().map(|h| h.clone().binding()).collect();
    let (stream, ptrs) = server.r1kit_stream_and_ptrs(stream_id, bindings).map_err(|e| format!("resolving the buffers: {e}"))?;
    with_lt(|lt| unsafe { lt.matmul(stream, elems, beta, g, ptrs[0], ptrs[1], ptrs[2]) })
}

/// cuBLASLt state of one runner thread.
struct Lt {
    handle: ltsys::cublasLtHandle_t,
    /// Per CUDA stream: GEMMs on one stream run one after another and may share one; GEMMs on
    /// two streams may not.
    workspaces: HashMap<usize, u64>,
    /// Keyed by the operands' and the output's element types, the shapes and the alignments.
    plans: HashMap<([Elem; 2], BlasGemm, [u32; 3]), Plan>,
}

struct Plan {
    desc: ltsys::cublasLtMatmulDesc_t,
    la: ltsys::cublasLtMatrixLayout_t,
    lb: ltsys::cublasLtMatrixLayout_t,
    lc: ltsys::cublasLtMatrixLayout_t,
    algo: ltsys::cublasLtMatmulAlgo_t,
}

thread_local! {
    static LT: RefCell<Option<Lt>> = const { RefCell::new(None) };
}

fn with_lt<R>(f: impl FnOnce(&mut Lt) -> Result<R, String>) -> Result<R, String> {
    LT.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let handle = lt::create_handle().map_err(|e| format!("cublasLtCreate: {e}"))?;
            *cell = Some(Lt { handle, workspaces: HashMap::new(), plans: HashMap::new() });
        }
        f(cell.as_mut().expect("set above"))
    })
}

fn cublas(what: &str) -> impl FnOnce(lt::CublasError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Lt {
    fn workspace(&mut self, stream: CUstream) -> Result<u64, String> {
        match self.workspaces.entry(stream as usize) {
            Entry::Occupied(e) => Ok(*e.get()),
            Entry::Vacant(v) => {
                // The device's context is current: the buffers were just resolved on it.
                let ptr = unsafe { cudarc::driver::result::malloc_sync(WORKSPACE_BYTES) }.map_err(|e| format!("cuBLASLt workspace: {e}"))?;
                Ok(*v.insert(ptr))
            }
        }
    }

    /// `C = op(A) op(B) + beta C` with burn's pointers `a`, `b`, `c` (see [`BlasGemm`] for the
    /// swap), the operands of `elems[0]` and `C` of `elems[1]`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn matmul(&mut self, stream: CUstream, elems: [Elem; 2], beta: f32, g: BlasGemm, a: u64, b: u64, c: u64) -> Result<(), String> {
        let workspace = self.workspace(stream)?;
        let align = [pointer_alignment(b), pointer_alignment(a), pointer_alignment(c)];
        let handle = self.handle;
        let plan = match self.plans.entry((elems, g, align)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(unsafe { Plan::new(handle, elems, g, align) }?),
        };
        let alpha = 1f32;
        unsafe {
            lt::matmul(
                handle,
                plan.desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                b as *const c_void,
                plan.la,
                a as *const c_void,
                plan.lb,
                c as *const c_void,
                plan.lc,
                c as *mut c_void,
                plan.lc,
                &plan.algo,
                workspace as *mut c_void,
                WORKSPACE_BYTES,
                stream as ltsys::cudaStream_t,
            )
        }
        .map_err(cublas("cublasLtMatmul"))
    }
}

impl Plan {
    /// Descriptor (f32 accumulation and scalars), layouts, alignment-aware heuristic.
    unsafe fn new(handle: ltsys::cublasLtHandle_t, elems: [Elem; 2], g: BlasGemm, align: [u32; 3]) -> Result<Self, String> {
        use ltsys::cublasLtMatmulDescAttributes_t as D;
        use ltsys::cublasLtMatmulPreferenceAttributes_t as P;
        let (dt, dt_c) = (elems[0].cuda(), elems[1].cuda());
        unsafe {
            let desc = lt::create_matmul_desc(ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F, ltsys::cudaDataType::CUDA_R_32F)
                .map_err(cublas("cublasLtMatmulDescCreate"))?;
            let (ta, tb) = (g.blas_a.transpose as i32, g.blas_b.transpose as i32);
            let set = |attr, v: &i32| lt::set_matmul_desc_attribute(desc, attr, v as *const i32 as *const c_void, 4);
            set(D::CUBLASLT_MATMUL_DESC_TRANSA, &ta).map_err(cublas("TRANSA"))?;
            set(D::CUBLASLT_MATMUL_DESC_TRANSB, &tb).map_err(cublas("TRANSB"))?;
            let layout = |o: crate::layout::BlasOperand, dt| lt::create_matrix_layout(dt, o.rows as u64, o.cols as u64, o.ld as i64);
            let la = layout(g.blas_a, dt).map_err(cublas("layout A"))?;
            let lb = layout(g.blas_b, dt).map_err(cublas("layout B"))?;
            let lc = layout(g.blas_c, dt_c).map_err(cublas("layout C"))?;
            if g.batch > 1 {
                // cuBLAS's A is our B and its B our A (see BlasGemm).
                let [stride_a, stride_b, stride_c] = g.batch_strides;
                for (l, stride) in [(la, stride_b), (lb, stride_a), (lc, stride_c)] {
                    use ltsys::cublasLtMatrixLayoutAttribute_t as L;
                    let (count, offset) = (g.batch as i32, stride as i64);
                    lt::set_matrix_layout_attribute(l, L::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count as *const i32 as *const c_void, 4)
                        .map_err(cublas("BATCH_COUNT"))?;
                    lt::set_matrix_layout_attribute(l, L::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &offset as *const i64 as *const c_void, 8)
                        .map_err(cublas("STRIDED_BATCH_OFFSET"))?;
                }
            }
            let pref = lt::create_matmul_pref().map_err(cublas("cublasLtMatmulPreferenceCreate"))?;
            let ws = WORKSPACE_BYTES as u64;
            lt::set_matmul_pref_attribute(pref, P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws as *const u64 as *const c_void, 8)
                .map_err(cublas("MAX_WORKSPACE_BYTES"))?;
            for (attr, bytes) in [
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align[0]),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align[1]),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align[2]),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align[2]),
            ] {
                lt::set_matmul_pref_attribute(pref, attr, &bytes as *const u32 as *const c_void, 4).map_err(cublas("MIN_ALIGNMENT"))?;
            }
            let heuristic = lt::get_matmul_algo_heuristic(handle, desc, la, lb, lc, lc, pref);
            let _ = lt::destroy_matmul_pref(pref);
            let heuristic = heuristic.map_err(|e| format!("no cuBLASLt algorithm for {elems:?} {g:?} alignments {align:?}: {e}"))?;
            Ok(Self { desc, la, lb, lc, algo: heuristic.algo })
        }
    }
}
