//! From burn's row-major view of a matrix (shape and strides, in elements) to the column-major
//! operands cuBLAS takes. Pure arithmetic, tested on the CPU against an emulation of cuBLAS's
//! indexing rules.
//!
//! Row-major `C[m,n] = op(A)[m,k] op(B)[k,n]` is the column-major `C^T[n,m] = op(B)^T op(A)^T`:
//! cuBLAS's "A" operand is our B and its "B" operand is our A, and a row-major matrix with
//! leading dimension `ld` is, to cuBLAS, its own transpose stored column-major with the same `ld`.
//! A transposed view (strides `[1, ld]`) is column-major already and becomes a cuBLAS transpose
//! op, so `x.transpose()` and the `transpose_*` flags cost no copy.

/// How a matrix's elements sit in memory: element `(i, j)` at `i * ld + j` (row-major) or at
/// `i + j * ld` (column-major, e.g. the transpose of a row-major tensor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Storage {
    RowMajor,
    ColMajor,
}

/// A logical `rows x cols` matrix and where its elements are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatrixView {
    pub rows: usize,
    pub cols: usize,
    /// Leading dimension in elements (the stride between rows for row-major storage, between
    /// columns for column-major storage); at least 1 and at least the contiguous extent.
    pub ld: usize,
    pub storage: Storage,
}

impl MatrixView {
    /// The view of a 2-D tensor with `shape` and `strides` (in elements), transposed first when
    /// `transpose` is set. Strides of size-1 dims do not matter. Fails for layouts that are
    /// neither (pitched) row-major nor column-major, e.g. broadcast (zero-stride) or
    /// overlapping rows.
    pub fn new(shape: [usize; 2], strides: [usize; 2], transpose: bool) -> Result<Self, String> {
        let ([rows, cols], [s0, s1]) = if transpose { ([shape[1], shape[0]], [strides[1], strides[0]]) } else { (shape, strides) };
        if (cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= cols.max(1)) {
            let ld = if rows <= 1 { cols.max(1) } else { s0 };
            return Ok(Self { rows, cols, ld, storage: Storage::RowMajor });
        }
        if (rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= rows.max(1)) {
            let ld = if cols <= 1 { rows.max(1) } else { s1 };
            return Ok(Self { rows, cols, ld, storage: Storage::ColMajor });
        }
        Err(format!("unsupported strides {strides:?} for shape {shape:?} (need row-major or column-major, e.g. not broadcast)"))
    }
}

/// One cuBLAS operand: a column-major `rows x cols` layout with leading dimension `ld`, used as
/// is or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlasOperand {
    pub transpose: bool,
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
}

impl BlasOperand {
    /// `view^T` as cuBLAS sees it (what the row-major to column-major swap needs).
    fn transposed_of(view: MatrixView) -> Self {
        match view.storage {
            // view^T stored column-major: [cols, rows], no op.
            Storage::RowMajor => Self { transpose: false, rows: view.cols, cols: view.rows, ld: view.ld },
            // view stored column-major [rows, cols]; its transpose is the op.
            Storage::ColMajor => Self { transpose: true, rows: view.rows, cols: view.cols, ld: view.ld },
        }
    }
}

/// The leading (batch) dims of a tensor as one run of evenly spaced matrices: `(count, stride)`,
/// the stride in elements between consecutive matrices (0 for a single one). `None` when they are
/// not evenly spaced, e.g. the heads of a `[b, s, h, d]` tensor viewed as `[b, h, s, d]` with
/// `b > 1`, or broadcast. Size-1 dims do not matter.
pub fn batch_of(shape: &[usize], strides: &[usize]) -> Option<(usize, usize)> {
    let dims: Vec<(usize, usize)> = shape.iter().zip(strides).map(|(&n, &s)| (n, s)).filter(|&(n, _)| n != 1).collect();
    let Some(&(_, innermost)) = dims.last() else {
        return Some((1, 0));
    };
    if innermost == 0 {
        return None;
    }
    // Outer dims must step over whole runs of the inner ones.
    for pair in dims.windows(2) {
        let ((_, outer), (inner_n, inner_s)) = (pair[0], pair[1]);
        if outer != inner_s * inner_n {
            return None;
        }
    }
    Some((dims.iter().map(|&(n, _)| n).product(), innermost))
}

/// The cuBLAS problem for row-major `C[m,n] = A[m,k] B[k,n]` (A and B as logical views, after
/// any transpose): cuBLAS computes `D[n, m] = op(blas_a)[n,k] op(blas_b)[k,m]`, column-major,
/// with `blas_a` the memory of our B and `blas_b` that of our A; `batch` such products, matrix
/// `i` of each operand `i * stride` elements after the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlasGemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub blas_a: BlasOperand,
    pub blas_b: BlasOperand,
    /// The output, column-major `[n, m]` (row-major `[m, n]` to us).
    pub blas_c: BlasOperand,
    pub batch: usize,
    /// Strides between the matrices of a batch, in elements, of our A, B and C.
    pub batch_strides: [usize; 3],
}

impl BlasGemm {
    /// `c` must be row-major (the output burn allocates).
    pub fn new(a: MatrixView, b: MatrixView, c: MatrixView) -> Result<Self, String> {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        if b.rows != k {
            return Err(format!("inner dimensions differ: op(A) is {m}x{k}, op(B) is {}x{n}", b.rows));
        }
        if c.rows != m || c.cols != n {
            return Err(format!("output is {}x{}, expected {m}x{n}", c.rows, c.cols));
        }
        if c.storage != Storage::RowMajor {
            return Err("output must be row-major".into());
        }
        Ok(Self {
            m,
            n,
            k,
            blas_a: BlasOperand::transposed_of(b),
            blas_b: BlasOperand::transposed_of(a),
            blas_c: BlasOperand::transposed_of(c),
            batch: 1,
            batch_strides: [0; 3],
        })
    }

    /// `batch` products, the matrices of A, B and C `strides` elements apart.
    pub fn batched(self, batch: usize, strides: [usize; 3]) -> Self {
        if batch <= 1 {
            return self;
        }
        Self { batch, batch_strides: strides, ..self }
    }
}

/// The largest power of two (at most 256) that divides a device address: what cuBLASLt's
/// `MIN_ALIGNMENT_*_BYTES` preferences want (it assumes 256 unless told).
pub fn pointer_alignment(ptr: u64) -> u32 {
    if ptr == 0 {
        return 256;
    }
    1u32 << ptr.trailing_zeros().min(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cuBLAS column-major semantics, on host buffers: D(i,j) = sum_p op(A)(i,p) op(B)(p,j),
    /// element (r, c) of a layout at `r + c * ld`.
    fn emulate(g: &BlasGemm, a_mem: &[f64], b_mem: &[f64], c_mem: &mut [f64]) {
        let at = |o: &BlasOperand, mem: &[f64], i: usize, p: usize| {
            let (r, c) = if o.transpose { (p, i) } else { (i, p) };
            assert!(r < o.rows && c < o.cols, "index ({r},{c}) outside {}x{}", o.rows, o.cols);
            mem[r + c * o.ld]
        };
        // cuBLAS dims: M' = n, N' = m, K = k.
        for i in 0..g.n {
            for j in 0..g.m {
                let s: f64 = (0..g.k).map(|p| at(&g.blas_a, b_mem, i, p) * at(&g.blas_b, a_mem, p, j)).sum();
                assert!(i < g.blas_c.rows && j < g.blas_c.cols);
                c_mem[i + j * g.blas_c.ld] = s;
            }
        }
    }

    /// A stored `[r, c]` tensor with row pitch `pitch` (>= c), filled with distinct values.
    fn stored(r: usize, c: usize, pitch: usize, seed: f64) -> (Vec<f64>, [usize; 2], [usize; 2]) {
        let mut mem = vec![f64::NAN; (r.max(1) - 1) * pitch + c.max(1)];
        for i in 0..r {
            for j in 0..c {
                mem[i * pitch + j] = seed + (i * 31 + j * 7) as f64 * 0.01 + (i as f64 * 0.3).sin();
            }
        }
        (mem, [r, c], [pitch, 1])
    }

    fn get(mem: &[f64], strides: [usize; 2], i: usize, j: usize) -> f64 {
        mem[i * strides[0] + j * strides[1]]
    }

    /// Every combination of transpose flags, transposed views and padded rows, odd sizes.
    #[test]
    fn blas_problem_matches_row_major_matmul() {
        for &(m, k, n) in &[(1, 1, 1), (1, 7, 1), (7, 1, 5), (3, 4, 5), (5, 3, 1), (1, 6, 9), (9, 2, 1)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for a_view_t in [false, true] {
                        for pad in [0usize, 3] {
                            // The stored tensor whose (flagged, viewed) transposes give op(A) [m,k].
                            let a_logical_t = ta ^ a_view_t; // stored A is [k,m] when set
                            let (ar, ac) = if a_logical_t { (k, m) } else { (m, k) };
                            let (a_mem, a_shape, a_strides) = stored(ar, ac, ac + pad, 1.0);
                            // A transposed view of the stored tensor: swap shape and strides.
                            let (a_shape_v, a_strides_v) = if a_view_t {
                                ([a_shape[1], a_shape[0]], [a_strides[1], a_strides[0]])
                            } else {
                                (a_shape, a_strides)
                            };
                            let (br, bc) = if tb { (n, k) } else { (k, n) };
                            let (b_mem, b_shape, b_strides) = stored(br, bc, bc + pad, -2.0);
                            let av = MatrixView::new(a_shape_v, a_strides_v, ta).unwrap();
                            let bv = MatrixView::new(b_shape, b_strides, tb).unwrap();
                            let c_pitch = n + pad;
                            let cv = MatrixView::new([m, n], [c_pitch, 1], false).unwrap();
                            let g = BlasGemm::new(av, bv, cv).unwrap();
                            assert_eq!((g.m, g.k, g.n), (m, k, n));
                            let mut c_mem = vec![f64::NAN; (m - 1) * c_pitch + n];
                            emulate(&g, &a_mem, &b_mem, &mut c_mem);
                            for i in 0..m {
                                for j in 0..n {
                                    let want: f64 = (0..k)
                                        .map(|p| {
                                            // op(A)(i,p): logical element of the (view, flag) chain
                                            let x = if a_logical_t { get(&a_mem, a_strides, p, i) } else { get(&a_mem, a_strides, i, p) };
                                            let y = if tb { get(&b_mem, b_strides, j, p) } else { get(&b_mem, b_strides, p, j) };
                                            x * y
                                        })
                                        .sum();
                                    let got = c_mem[i * c_pitch + j];
                                    assert!((got - want).abs() < 1e-9, "m{m} k{k} n{n} ta{ta} tb{tb} view{a_view_t} pad{pad}: ({i},{j}) {got} vs {want}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn views_of_common_layouts() {
        // burn pads rows: a bf16 [64, 896] tensor with strides [1024, 1]
        assert_eq!(MatrixView::new([64, 896], [1024, 1], false).unwrap(), MatrixView { rows: 64, cols: 896, ld: 1024, storage: Storage::RowMajor });
        // its transpose view, and the flag, give the same logical matrix
        let t = MatrixView::new([896, 64], [1, 1024], false).unwrap();
        assert_eq!(t, MatrixView { rows: 896, cols: 64, ld: 1024, storage: Storage::ColMajor });
        assert_eq!(MatrixView::new([64, 896], [1024, 1], true).unwrap(), t);
        // size-1 dims: their strides do not matter
        assert_eq!(MatrixView::new([1, 5], [0, 1], false).unwrap().ld, 5);
        assert_eq!(MatrixView::new([5, 1], [1, 0], false).unwrap(), MatrixView { rows: 5, cols: 1, ld: 1, storage: Storage::RowMajor });
        assert_eq!(MatrixView::new([1, 1], [0, 0], false).unwrap().ld, 1);
        // broadcast rows and overlapping rows are refused
        assert!(MatrixView::new([4, 5], [0, 1], false).is_err());
        assert!(MatrixView::new([4, 5], [3, 1], false).is_err());
        assert!(MatrixView::new([4, 5], [10, 2], false).is_err());
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let a = MatrixView::new([3, 4], [4, 1], false).unwrap();
        let b = MatrixView::new([5, 2], [2, 1], false).unwrap();
        let c = MatrixView::new([3, 2], [2, 1], false).unwrap();
        assert!(BlasGemm::new(a, b, c).unwrap_err().contains("inner dimensions"));
        let b = MatrixView::new([4, 2], [2, 1], false).unwrap();
        assert!(BlasGemm::new(a, b, MatrixView::new([2, 3], [3, 1], false).unwrap()).is_err());
        assert!(BlasGemm::new(a, b, MatrixView::new([3, 2], [1, 3], false).unwrap()).is_err());
        assert!(BlasGemm::new(a, b, c).is_ok());
    }

    #[test]
    fn batch_runs() {
        // contiguous [2, 3, 4, 5]: 6 matrices 20 apart
        assert_eq!(batch_of(&[2, 3], &[60, 20]), Some((6, 20)));
        // the heads of [1, s = 4, h = 3, d = 5] viewed as [1, 3, 4, 5]: 3 matrices 5 apart
        assert_eq!(batch_of(&[1, 3], &[60, 5]), Some((3, 5)));
        // ... but with b = 2 the heads and the batch do not form one run
        assert_eq!(batch_of(&[2, 3], &[60, 5]), None);
        // no batch, a single matrix, broadcast
        assert_eq!(batch_of(&[], &[]), Some((1, 0)));
        assert_eq!(batch_of(&[1, 1], &[7, 7]), Some((1, 0)));
        assert_eq!(batch_of(&[4], &[0]), None);
    }

    #[test]
    fn alignment() {
        assert_eq!(pointer_alignment(0x7f00_0000_0000), 256);
        assert_eq!(pointer_alignment(0x7f00_0000_0102), 2);
        assert_eq!(pointer_alignment(0x7f00_0000_0110), 16);
        assert_eq!(pointer_alignment(0x7f00_0000_0180), 128);
    }
}
