//! `r1kit bench gemm`: the cuBLASLt GEMM checked and timed on the device, in one call.
//!
//! 1. correctness: against an f64 host reference on seeded inputs, many shapes (odd ones
//!    included), all four transpose combinations, bf16 and f32;
//! 2. agreement with burn's own matmul on the same inputs (bitwise fraction, scaled difference);
//! 3. ordering: a 40-step chain of burn ops and GEMMs with no syncs, temporaries dropped while
//!    GEMMs are pending and fresh allocations reusing their memory, against the same chain with
//!    burn's matmul;
//! 4. speed: bf16 GEMMs of Qwen2.5-0.5B / 1.5B training shapes, cuBLASLt and burn's matmul
//!    (`gpu/bench_gemm_torch.py` times the same list with PyTorch).
//!
//! Every result is printed as it comes and kept in a JSON report (written after each section
//! when asked); a failed case is recorded and the run goes on; the run fails at the end if any
//! check did.
//!
//! The harness takes the GEMM under test as a function, so the CPU tests run it with burn's
//! matmul standing in.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use burn::prelude::{Device, Tensor, TensorData};
use burn::tensor::{DType, Distribution, FloatDType};
use serde_json::{Value, json};

use crate::check::{self, HostOperand, Rng};

#[derive(Clone, Debug, Default)]
pub struct GemmBenchOptions {
    /// Write the JSON report here (after every section).
    pub out: Option<PathBuf>,
    /// Skip the speed section.
    pub skip_speed: bool,
    /// Only the first few correctness shapes and the speed shapes of one model (a smoke run).
    pub quick: bool,
    pub seed: u64,
}

/// A timed shape: `C[m, n] = op(A)[m, k] op(B)[k, n]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeedShape {
    pub name: &'static str,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub transpose_a: bool,
    pub transpose_b: bool,
}

const fn shape(name: &'static str, m: usize, k: usize, n: usize, transpose_a: bool, transpose_b: bool) -> SpeedShape {
    SpeedShape { name, m, k, n, transpose_a, transpose_b }
}

/// Qwen2.5-0.5B (hidden 896, q+k+v 1152, MLP 4864) and 1.5B (1536, 2048, 8960), vocabulary
/// 151936, 16384 tokens per micro-batch: the projections forward, the data gradient
/// (`dY W^T`) and the weight gradient (`X^T dY`). `gpu/bench_gemm_torch.py` has the same list.
pub const SPEED_SHAPES: &[SpeedShape] = &[
    shape("0.5b.qkv", 16384, 896, 1152, false, false),
    shape("0.5b.o", 16384, 896, 896, false, false),
    shape("0.5b.up", 16384, 896, 4864, false, false),
    shape("0.5b.down", 16384, 4864, 896, false, false),
    shape("0.5b.lm_head", 16384, 896, 151936, false, false),
    shape("0.5b.down.dx", 16384, 896, 4864, false, true),
    shape("0.5b.up.dw", 896, 16384, 4864, true, false),
    shape("0.5b.lm_head.dx", 16384, 151936, 896, false, true),
    shape("1.5b.qkv", 16384, 1536, 2048, false, false),
    shape("1.5b.o", 16384, 1536, 1536, false, false),
    shape("1.5b.up", 16384, 1536, 8960, false, false),
    shape("1.5b.down", 16384, 8960, 1536, false, false),
    shape("1.5b.lm_head", 16384, 1536, 151936, false, false),
    shape("1.5b.down.dx", 16384, 1536, 8960, false, true),
    shape("1.5b.up.dw", 1536, 16384, 8960, true, false),
];

/// `(m, k, n)` of the correctness cases: sizes 1 and 7, odd sizes around powers of two, and
/// Qwen2.5-0.5B/1.5B projection shapes with few tokens.
pub const CHECK_SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 1),
    (7, 1, 7),
    (7, 7, 7),
    (3, 5, 129),
    (129, 129, 129),
    (127, 255, 129),
    (1, 896, 4864),
    (7, 4864, 896),
    (64, 896, 4864),
    (896, 4864, 129),
    (256, 1536, 8960),
    (129, 8960, 1536),
    (1000, 1, 1000),
];

/// The GEMM under test: `(a, b, transpose_a, transpose_b) -> op(a) op(b)`.
pub type GemmFn<'a> = dyn Fn(Tensor<2>, Tensor<2>, bool, bool) -> Result<Tensor<2>> + 'a;

/// What a run covers (the tests use small ones).
pub struct Plan {
    pub check_shapes: Vec<(usize, usize, usize)>,
    pub dtypes: Vec<FloatDType>,
    /// f64 multiply-adds the host reference may spend per case (rows are sampled beyond it).
    pub reference_budget: usize,
    pub chain_steps: usize,
    /// `(rows, width)` of the chain's activations; its weight is `width x width`.
    pub chain_dims: (usize, usize),
    pub speed: Vec<SpeedShape>,
    /// Seconds one timed batch should take.
    pub batch_seconds: f64,
}

impl Plan {
    pub fn full(opts: &GemmBenchOptions) -> Self {
        let speed = if opts.skip_speed {
            Vec::new()
        } else if opts.quick {
            SPEED_SHAPES.iter().copied().filter(|s| s.name.starts_with("0.5b") && !s.name.contains("lm_head")).collect()
        } else {
            SPEED_SHAPES.to_vec()
        };
        let check_shapes = if opts.quick { CHECK_SHAPES[..7].to_vec() } else { CHECK_SHAPES.to_vec() };
        Self {
            check_shapes,
            dtypes: vec![FloatDType::BF16, FloatDType::F32],
            reference_budget: 1 << 26,
            chain_steps: 40,
            chain_dims: (64, 1024),
            speed,
            batch_seconds: 0.25,
        }
    }
}

/// The results, section by section, and the failed checks.
#[derive(Default)]
pub struct Report {
    pub sections: serde_json::Map<String, Value>,
    pub failures: Vec<String>,
}

impl Report {
    pub fn json(&self) -> Value {
        let mut v = self.sections.clone();
        v.insert("failures".into(), json!(self.failures));
        v.insert("passed".into(), json!(self.failures.is_empty()));
        Value::Object(v)
    }
}

/// `r1kit bench gemm`: everything on a CUDA device, the report printed and written to
/// `opts.out`; an error at the end when a check failed.
pub fn bench_gemm(device: &Device, opts: &GemmBenchOptions) -> Result<()> {
    if !crate::CUDA {
        bail!("bench gemm: {}", crate::NO_CUDA);
    }
    if !crate::is_cuda(device) {
        bail!("bench gemm: needs a CUDA device (--device cuda), got {device:?}");
    }
    // A device that does not work fails every case the same way: say it once.
    guarded(|| {
        let x = Tensor::<2>::ones([2, 2], device);
        sync(device)?;
        to_host(x)
    })
    .map_err(|e| anyhow!("bench gemm: the CUDA device does not work: {e:#}"))?;
    let plan = Plan::full(opts);
    let report = run(device, &plan, &crate::gemm, opts)?;
    let failed = report.failures.len();
    println!();
    if failed == 0 {
        println!("bench gemm: all checks passed");
        Ok(())
    } else {
        for f in &report.failures {
            println!("FAILED: {f}");
        }
        bail!("bench gemm: {failed} check(s) failed")
    }
}

/// Runs `plan` with `gemm` as the GEMM under test.
pub fn run(device: &Device, plan: &Plan, gemm: &GemmFn, opts: &GemmBenchOptions) -> Result<Report> {
    let mut report = Report::default();
    let started = Instant::now();
    report.sections.insert(
        "info".into(),
        json!({"device": format!("{device:?}"), "seed": opts.seed, "gemm": "cuBLASLt, f32 accumulation, on burn's CUDA stream"}),
    );
    let save = |report: &Report| -> Result<()> {
        if let Some(path) = &opts.out {
            std::fs::write(path, serde_json::to_string_pretty(&report.json())? + "\n").map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
        }
        Ok(())
    };

    println!("== correctness: vs f64 host reference and vs burn's matmul (errors scaled by sum|a||b|)");
    println!("{:<5} {:>18} {:>2}  {:>9} {:>9}  {:>9}  {:>8} {:>9}  result", "dtype", "m x k x n", "op", "err", "rel_fro", "burn err", "bitwise", "vs burn");
    let mut cases = Vec::new();
    for &dtype in &plan.dtypes {
        for (si, &(m, k, n)) in plan.check_shapes.iter().enumerate() {
            for (ti, (ta, tb)) in [(false, false), (false, true), (true, false), (true, true)].into_iter().enumerate() {
                let seed = opts.seed ^ ((si as u64) << 8 | (ti as u64) << 4 | dtype_code(dtype));
                let label = format!("{} {m}x{k}x{n} {}{}", dtype_name(dtype), op_name(ta), op_name(tb));
                let outcome = guarded(|| correctness_case(device, gemm, dtype, (m, k, n), (ta, tb), plan.reference_budget, seed));
                match outcome {
                    Ok(case) => {
                        println!(
                            "{:<5} {:>18} {}{}  {:>9.2e} {:>9.2e}  {:>9.2e}  {:>7.1}% {:>9.2e}  {}",
                            dtype_name(dtype),
                            format!("{m}x{k}x{n}"),
                            op_name(ta),
                            op_name(tb),
                            case["error"]["max_scaled"].as_f64().unwrap_or(f64::NAN),
                            case["error"]["rel_fro"].as_f64().unwrap_or(f64::NAN),
                            case["burn_error"]["max_scaled"].as_f64().unwrap_or(f64::NAN),
                            100.0 * case["vs_burn"]["bitwise_equal"].as_f64().unwrap_or(f64::NAN),
                            case["vs_burn"]["max_scaled"].as_f64().unwrap_or(f64::NAN),
                            verdict(&case),
                        );
                        if case["pass_reference"] != json!(true) {
                            report.failures.push(format!("correctness {label}: error vs f64 reference over tolerance ({})", case["error"]));
                        }
                        if case["pass_burn"] != json!(true) {
                            report.failures.push(format!("agreement with burn {label}: {}", case["vs_burn"]));
                        }
                        cases.push(case);
                    }
                    Err(e) => {
                        println!("{label}: ERROR {e:#}");
                        report.failures.push(format!("correctness {label}: {e:#}"));
                        cases.push(json!({"dtype": dtype_name(dtype), "m": m, "k": k, "n": n, "transpose_a": ta, "transpose_b": tb, "error": format!("{e:#}")}));
                    }
                }
            }
        }
    }
    report.sections.insert("correctness".into(), Value::Array(cases));
    save(&report)?;

    println!("\n== batched: attention-shaped products through r1kit_gpu::matmul (4-D, strided batches), vs f64");
    let mut batched = Vec::new();
    for &dtype in &plan.dtypes {
        // [batch, heads] x (m, k, n); A is attention's query view (stored [b, m, h, k]): one strided
        // run when b = 1, a contiguous copy first when b > 1; B is a transposed view of [b, h, n, k].
        for (bi, &(lead, (m, k, n))) in [([1, 3], (33, 16, 40)), ([2, 3], (17, 24, 9)), ([2, 4], (64, 64, 64))].iter().enumerate() {
            let label = format!("batched {} {lead:?} {m}x{k}x{n}", dtype_name(dtype));
            match guarded(|| batched_case(device, dtype, lead, (m, k, n), opts.seed ^ (0xBA7 + bi as u64) ^ dtype_code(dtype))) {
                Ok(case) => {
                    let (err, tol) = (case["max_scaled"].as_f64().unwrap_or(f64::NAN), case["tolerance"].as_f64().unwrap_or(f64::NAN));
                    let pass = case["pass"] == json!(true);
                    println!("{label:<40} err {err:.2e} (tolerance {tol:.0e})  {}", if pass { "PASS" } else { "FAIL" });
                    if !pass {
                        report.failures.push(format!("{label}: {case}"));
                    }
                    batched.push(case);
                }
                Err(e) => {
                    println!("{label}: ERROR {e:#}");
                    report.failures.push(format!("{label}: {e:#}"));
                    batched.push(json!({"label": label, "error": format!("{e:#}")}));
                }
            }
        }
    }
    report.sections.insert("batched".into(), Value::Array(batched));
    save(&report)?;

    println!("\n== ordering: {}-step chains of burn ops and GEMMs, no syncs, memory reused while GEMMs are pending", plan.chain_steps);
    let mut chains = Vec::new();
    for &dtype in &plan.dtypes {
        let label = format!("chain {}", dtype_name(dtype));
        match guarded(|| chain_case(device, gemm, dtype, plan.chain_steps, plan.chain_dims, opts.seed ^ 0xC4A1)) {
            Ok(case) => {
                println!(
                    "{:<5} rel_fro vs burn-matmul chain {:.2e} (tolerance {:.0e}), max |diff| {:.2e}, {:.2}s  {}",
                    dtype_name(dtype),
                    case["rel_fro"].as_f64().unwrap_or(f64::NAN),
                    case["tolerance"].as_f64().unwrap_or(f64::NAN),
                    case["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
                    case["seconds"].as_f64().unwrap_or(f64::NAN),
                    if case["pass"] == json!(true) { "PASS" } else { "FAIL" }
                );
                if case["pass"] != json!(true) {
                    report.failures.push(format!("{label}: {case}"));
                }
                chains.push(case);
            }
            Err(e) => {
                println!("{label}: ERROR {e:#}");
                report.failures.push(format!("{label}: {e:#}"));
                chains.push(json!({"dtype": dtype_name(dtype), "error": format!("{e:#}")}));
            }
        }
    }
    report.sections.insert("ordering".into(), Value::Array(chains));
    save(&report)?;

    if !plan.speed.is_empty() {
        println!("\n== speed: bf16, TFLOP/s = 2mkn / time (median of 5 batches, one sync per batch)");
        println!("{:<16} {:>6} {:>6} {:>6} {:>2}  {:>9} {:>9} {:>7}", "shape", "m", "k", "n", "op", "cuBLASLt", "burn", "lt/burn");
        let mut rows = Vec::new();
        for s in &plan.speed {
            match guarded(|| speed_case(device, gemm, s, plan.batch_seconds, opts.seed)) {
                Ok(row) => {
                    let (lt, burn) = (row["cublaslt_tflops"].as_f64().unwrap_or(f64::NAN), row["burn_tflops"].as_f64().unwrap_or(f64::NAN));
                    println!(
                        "{:<16} {:>6} {:>6} {:>6} {}{}  {:>9.1} {:>9.1} {:>7.2}",
                        s.name,
                        s.m,
                        s.k,
                        s.n,
                        op_name(s.transpose_a),
                        op_name(s.transpose_b),
                        lt,
                        burn,
                        lt / burn
                    );
                    rows.push(row);
                }
                Err(e) => {
                    // A speed row that cannot run is reported, not counted as a failed check.
                    println!("{:<16} ERROR {e:#}", s.name);
                    rows.push(json!({"name": s.name, "error": format!("{e:#}")}));
                }
            }
        }
        report.sections.insert("speed".into(), Value::Array(rows));
    }
    report.sections.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    save(&report)?;
    Ok(report)
}

/// Runs `f`, turning a panic into an error, and then the GEMM's asynchronous error check.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let out = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(anyhow!(
            "panicked: {}",
            p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
        )),
    };
    let late = crate::take_async_error();
    match (out, late) {
        (Ok(_), Err(e)) => Err(e),
        (out, _) => out,
    }
}

fn verdict(case: &Value) -> &'static str {
    match (case["pass_reference"] == json!(true), case["pass_burn"] == json!(true)) {
        (true, true) => "PASS",
        (false, _) => "FAIL",
        (true, false) => "FAIL (vs burn)",
    }
}

fn dtype_name(dtype: FloatDType) -> &'static str {
    match dtype {
        FloatDType::BF16 => "bf16",
        FloatDType::F16 => "f16",
        FloatDType::F32 => "f32",
        _ => "other",
    }
}

fn dtype_code(dtype: FloatDType) -> u64 {
    match dtype {
        FloatDType::BF16 => 1,
        FloatDType::F16 => 2,
        _ => 3,
    }
}

fn op_name(transpose: bool) -> &'static str {
    if transpose { "T" } else { "N" }
}

pub(crate) fn sync(device: &Device) -> Result<()> {
    device.sync().map_err(|e| anyhow!("device sync: {e:?}"))
}

/// Seeded normals rounded to `dtype`, on the host (the values the device gets, exactly) and as a
/// tensor of `shape`.
fn host_tensor(device: &Device, dtype: FloatDType, shape: [usize; 2], std: f64, rng: &mut Rng) -> (Vec<f32>, Tensor<2>) {
    let values = rng.normals(shape[0] * shape[1], std);
    match dtype {
        FloatDType::BF16 => {
            let v: Vec<half::bf16> = values.iter().map(|x| half::bf16::from_f32(*x)).collect();
            let host = v.iter().map(|x| x.to_f32()).collect();
            (host, Tensor::<2>::from_data(TensorData::new(v, shape), (device, DType::BF16)))
        }
        FloatDType::F16 => {
            let v: Vec<half::f16> = values.iter().map(|x| half::f16::from_f32(*x)).collect();
            let host = v.iter().map(|x| x.to_f32()).collect();
            (host, Tensor::<2>::from_data(TensorData::new(v, shape), (device, DType::F16)))
        }
        _ => {
            let t = Tensor::<2>::from_data(TensorData::new(values.clone(), shape), (device, DType::F32));
            (values, t)
        }
    }
}

fn to_host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| anyhow!("reading back: {e:?}"))
}

fn op(t: Tensor<2>, transpose: bool) -> Tensor<2> {
    if transpose { t.transpose() } else { t }
}

fn correctness_case(
    device: &Device,
    gemm: &GemmFn,
    dtype: FloatDType,
    (m, k, n): (usize, usize, usize),
    (ta, tb): (bool, bool),
    budget: usize,
    seed: u64,
) -> Result<Value> {
    let mut rng = Rng::new(seed);
    let a_shape = if ta { [k, m] } else { [m, k] };
    let b_shape = if tb { [n, k] } else { [k, n] };
    let (ah, a) = host_tensor(device, dtype, a_shape, 1.0, &mut rng);
    let (bh, b) = host_tensor(device, dtype, b_shape, 1.0, &mut rng);
    let c = gemm(a.clone(), b.clone(), ta, tb)?;
    if c.dims() != [m, n] {
        bail!("output shape {:?}, expected [{m}, {n}]", c.dims());
    }
    if c.dtype() != DType::from(dtype) {
        bail!("output dtype {:?}, expected {dtype:?}", c.dtype());
    }
    let c = to_host(c)?;
    crate::take_async_error()?;
    let c_burn = to_host(op(a, ta).matmul(op(b, tb)))?;

    let rows = check::reference_rows(m, k, n, budget);
    let (values, scale) = check::reference(
        HostOperand { data: &ah, shape: a_shape, transpose: ta },
        HostOperand { data: &bh, shape: b_shape, transpose: tb },
        &rows,
    );
    let err = check::errors(&c, n, &rows, &values, &scale);
    let burn_err = check::errors(&c_burn, n, &rows, &values, &scale);
    let agree = check::agreement(&c, &c_burn, n, &rows, &scale);
    let name = dtype_name(dtype);
    let (tol, agree_tol) = (check::tolerance(name), check::agreement_tolerance(name));
    Ok(json!({
        "dtype": name, "m": m, "k": k, "n": n, "transpose_a": ta, "transpose_b": tb,
        "rows_checked": rows.len(),
        "error": {"max_scaled": err.max_scaled, "rel_fro": err.rel_fro, "non_finite": err.non_finite},
        "tolerance": tol,
        "burn_error": {"max_scaled": burn_err.max_scaled, "rel_fro": burn_err.rel_fro, "non_finite": burn_err.non_finite},
        "vs_burn": {"bitwise_equal": agree.bitwise_equal, "max_scaled": agree.max_scaled, "tolerance": agree_tol},
        "pass_reference": err.non_finite == 0 && err.max_scaled <= tol,
        "pass_burn": agree.max_scaled <= agree_tol,
    }))
}

/// `q @ k^T` for `q` the `[b, h, m, k]` view of a stored `[b, m, h, k]` tensor and `k^T` the
/// transposed view of a stored `[b, h, n, k]` one, through [`crate::matmul`], against an f64
/// reference per matrix of the batch.
fn batched_case(device: &Device, dtype: FloatDType, [b, h]: [usize; 2], (m, k, n): (usize, usize, usize), seed: u64) -> Result<Value> {
    let mut rng = Rng::new(seed);
    let (qh, q) = host_tensor(device, dtype, [b * m, h * k], 1.0, &mut rng);
    let (kh, kt) = host_tensor(device, dtype, [b * h * n, k], 1.0, &mut rng);
    let q = q.reshape([b, m, h, k]).swap_dims(1, 2);
    let kt = kt.reshape([b, h, n, k]).swap_dims(2, 3);
    let c = crate::matmul(q, kt);
    if c.dims() != [b, h, m, n] {
        bail!("output shape {:?}, expected [{b}, {h}, {m}, {n}]", c.dims());
    }
    let c = to_host(c)?;
    crate::take_async_error()?;
    let mut max_scaled = 0f64;
    for bi in 0..b {
        for hi in 0..h {
            // this batch's query matrix [m, k], gathered from the stored [b, m, h, k]
            let qm: Vec<f32> = (0..m).flat_map(|i| (0..k).map(move |p| (i, p))).map(|(i, p)| qh[((bi * m + i) * h + hi) * k + p]).collect();
            let km = &kh[(bi * h + hi) * n * k..][..n * k];
            let rows: Vec<usize> = (0..m).collect();
            let (values, scale) = check::reference(
                HostOperand { data: &qm, shape: [m, k], transpose: false },
                HostOperand { data: km, shape: [n, k], transpose: true },
                &rows,
            );
            let got = &c[(bi * h + hi) * m * n..][..m * n];
            let err = check::errors(got, n, &rows, &values, &scale);
            if err.non_finite > 0 {
                bail!("non-finite outputs in matrix ({bi}, {hi})");
            }
            max_scaled = max_scaled.max(err.max_scaled);
        }
    }
    let tol = check::tolerance(dtype_name(dtype));
    Ok(json!({"dtype": dtype_name(dtype), "lead": [b, h], "m": m, "k": k, "n": n, "max_scaled": max_scaled, "tolerance": tol, "pass": max_scaled <= tol}))
}

/// `steps` steps of `x <- tanh(1.5 x W)`, the product through the GEMM under test (in four
/// spellings: plain, `(W^T x^T)^T` with both flags and a transposed output, a transposed view
/// with its flag, a transposed weight view with its flag) or through burn's matmul; no sync;
/// each step drops its temporary right after the GEMM is queued and allocates fresh tensors that
/// may reuse its memory. The chain with the GEMM under test runs first, so no burn result of it
/// can sit in reused memory.
fn chain_case(device: &Device, gemm: &GemmFn, dtype: FloatDType, steps: usize, (rows, width): (usize, usize), seed: u64) -> Result<Value> {
    let mut rng = Rng::new(seed);
    // Gain 0.75 per step (std 0.5/sqrt(width), times 1.5), so rounding differences do not grow.
    let (_, w) = host_tensor(device, dtype, [width, width], 0.5 / (width as f64).sqrt(), &mut rng);
    let (_, x0) = host_tensor(device, dtype, [rows, width], 1.0, &mut rng);
    let run = |under_test: bool| -> Result<Vec<f32>> {
        let mm = |a: Tensor<2>, b: Tensor<2>, ta: bool, tb: bool| -> Result<Tensor<2>> {
            if under_test { gemm(a, b, ta, tb) } else { Ok(op(a, ta).matmul(op(b, tb))) }
        };
        let mut x = x0.clone();
        let mut junk = VecDeque::new();
        for i in 0..steps {
            let t = x * 1.5f32;
            let y = match i % 4 {
                0 => mm(t, w.clone(), false, false)?,
                1 => mm(w.clone(), t, true, true)?.transpose(),
                2 => mm(t.transpose(), w.clone(), true, false)?,
                _ => mm(t, w.clone().transpose(), false, true)?,
            };
            // Fresh memory while the GEMM may be pending: garbage if anything runs out of order.
            junk.push_back(Tensor::<2>::random([rows, width], Distribution::Normal(0.0, 100.0), (device, DType::F32)).cast(dtype));
            if junk.len() > 3 {
                junk.pop_front();
            }
            x = y.tanh();
        }
        to_host(x)
    };
    let started = Instant::now();
    let under_test = run(true)?;
    crate::take_async_error()?;
    let seconds = started.elapsed().as_secs_f64();
    let burn = run(false)?;
    let (mut num, mut den, mut max_abs) = (0f64, 0f64, 0f64);
    let mut non_finite = 0usize;
    for (x, y) in under_test.iter().zip(&burn) {
        if !x.is_finite() {
            non_finite += 1;
            continue;
        }
        let d = (*x as f64 - *y as f64).abs();
        num += d * d;
        den += (*y as f64) * (*y as f64);
        max_abs = max_abs.max(d);
    }
    let rel_fro = if den > 0.0 { (num / den).sqrt() } else { f64::INFINITY };
    let tolerance = if dtype == FloatDType::F32 { 1e-2 } else { 5e-2 };
    let _ = sync(device);
    Ok(json!({
        "dtype": dtype_name(dtype), "steps": steps, "rows": rows, "width": width,
        "rel_fro": rel_fro, "max_abs_diff": max_abs, "non_finite": non_finite, "tolerance": tolerance,
        "bitwise_equal": under_test.iter().zip(&burn).all(|(x, y)| x.to_bits() == y.to_bits()),
        "seconds": seconds,
        "pass": non_finite == 0 && rel_fro <= tolerance,
    }))
}

/// Seconds per call of `f` (median of 5 batches of back-to-back calls, one sync per batch, at
/// most two results alive).
pub(crate) fn time_per_call<T>(device: &Device, batch_seconds: f64, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    for _ in 0..2 {
        let c = f()?;
        sync(device)?;
        drop(c);
    }
    let t = Instant::now();
    let c = f()?;
    sync(device)?;
    drop(c);
    let estimate = t.elapsed().as_secs_f64().max(1e-6);
    let iters = ((batch_seconds / estimate) as usize).clamp(3, 500);
    let mut samples = Vec::with_capacity(5);
    for _ in 0..5 {
        let t = Instant::now();
        let mut keep = VecDeque::with_capacity(3);
        for _ in 0..iters {
            keep.push_back(f()?);
            if keep.len() > 2 {
                keep.pop_front();
            }
        }
        sync(device)?;
        samples.push(t.elapsed().as_secs_f64() / iters as f64);
        drop(keep);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(samples[samples.len() / 2])
}

fn speed_case(device: &Device, gemm: &GemmFn, s: &SpeedShape, batch_seconds: f64, _seed: u64) -> Result<Value> {
    let a_shape = if s.transpose_a { [s.k, s.m] } else { [s.m, s.k] };
    let b_shape = if s.transpose_b { [s.n, s.k] } else { [s.k, s.n] };
    let rand = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), (device, DType::F32)).cast(FloatDType::BF16);
    let (a, b) = (rand(a_shape), rand(b_shape));
    sync(device)?;
    let flop = 2.0 * s.m as f64 * s.k as f64 * s.n as f64;
    let lt = time_per_call(device, batch_seconds, || gemm(a.clone(), b.clone(), s.transpose_a, s.transpose_b))?;
    crate::take_async_error()?;
    let burn = time_per_call(device, batch_seconds, || Ok(op(a.clone(), s.transpose_a).matmul(op(b.clone(), s.transpose_b))))?;
    Ok(json!({
        "name": s.name, "m": s.m, "k": s.k, "n": s.n, "transpose_a": s.transpose_a, "transpose_b": s.transpose_b,
        "dtype": "bf16",
        "cublaslt_ms": lt * 1e3, "burn_ms": burn * 1e3,
        "cublaslt_tflops": flop / lt / 1e12, "burn_tflops": flop / burn / 1e12,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_plan() -> Plan {
        Plan {
            check_shapes: vec![(1, 1, 1), (7, 5, 3), (9, 33, 17)],
            dtypes: vec![FloatDType::F32, FloatDType::BF16],
            reference_budget: 1 << 20,
            chain_steps: 6,
            chain_dims: (4, 16),
            speed: vec![shape("tiny", 8, 16, 8, false, true)],
            batch_seconds: 0.005,
        }
    }

    /// The whole harness on the CPU with burn's matmul standing in for the GEMM: every check
    /// passes and the report has every section.
    #[test]
    fn harness_passes_with_burns_matmul() {
        let device = Device::flex();
        let burn_mm = |a: Tensor<2>, b: Tensor<2>, ta: bool, tb: bool| -> Result<Tensor<2>> { Ok(op(a, ta).matmul(op(b, tb))) };
        let dir = std::env::temp_dir().join(format!("r1kit-gpu-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("report.json");
        let opts = GemmBenchOptions { out: Some(out.clone()), seed: 5, ..Default::default() };
        let report = run(&device, &small_plan(), &burn_mm, &opts).unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(written["passed"], json!(true));
        assert_eq!(written["correctness"].as_array().unwrap().len(), 2 * 3 * 4);
        assert_eq!(written["correctness"][0]["vs_burn"]["bitwise_equal"], json!(1.0));
        assert_eq!(written["ordering"][0]["pass"], json!(true));
        assert!(written["speed"][0]["burn_tflops"].as_f64().unwrap() > 0.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A wrong GEMM (here: ignoring a transpose flag, or adding noise) fails the checks and the
    /// run still completes every section.
    #[test]
    fn harness_catches_a_wrong_gemm() {
        let device = Device::flex();
        let wrong = |a: Tensor<2>, b: Tensor<2>, ta: bool, tb: bool| -> Result<Tensor<2>> {
            Ok(op(a, ta).matmul(op(b, tb)) + 1e-2f32)
        };
        let mut plan = small_plan();
        plan.speed.clear();
        let report = run(&device, &plan, &wrong, &GemmBenchOptions::default()).unwrap();
        assert!(report.failures.iter().any(|f| f.starts_with("correctness")), "{:?}", report.failures);
        assert!(report.sections.contains_key("ordering"));
        let failing = |a: Tensor<2>, _b: Tensor<2>, _ta: bool, _tb: bool| -> Result<Tensor<2>> {
            let _ = a;
            bail!("no GEMM here")
        };
        let report = run(&device, &plan, &failing, &GemmBenchOptions::default()).unwrap();
        assert_eq!(report.failures.len(), 2 * (3 * 4 + 1), "{:?}", report.failures);
    }

    #[test]
    fn cpu_build_refuses_clearly() {
        if crate::CUDA {
            return;
        }
        let e = bench_gemm(&Device::flex(), &GemmBenchOptions::default()).unwrap_err().to_string();
        assert!(e.contains("built without CUDA"), "{e}");
        let e = crate::gemm(Tensor::<2>::zeros([2, 2], &Device::flex()), Tensor::<2>::zeros([2, 2], &Device::flex()), false, false).unwrap_err();
        assert!(e.to_string().contains("built without CUDA"));
    }

    /// gpu/bench_gemm_torch.py times the same shapes.
    #[test]
    fn torch_script_has_the_same_speed_shapes() {
        let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/bench_gemm_torch.py")).unwrap();
        let py = |b: bool| if b { "True" } else { "False" };
        for s in SPEED_SHAPES {
            let tuple = format!("(\"{}\", {}, {}, {}, {}, {})", s.name, s.m, s.k, s.n, py(s.transpose_a), py(s.transpose_b));
            assert!(script.contains(&tuple), "bench_gemm_torch.py lacks {tuple}");
        }
        assert_eq!(script.matches("\n    (\"").count(), SPEED_SHAPES.len());
    }
}
