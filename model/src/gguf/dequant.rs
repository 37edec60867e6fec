//! ggml tensor types and their dequantization to f32, following ggml's reference
//! `dequantize_row_*` (ggml-quants.c) operation for operation, so that results equal gguf-py's
//! `gguf.quants.dequantize` bit for bit (no fused multiply-adds: `a * b + c` rounds twice there too).

use half::{bf16, f16};

/// Values per super-block of the k-quants.
const QK_K: usize = 256;

/// A ggml tensor type, by its id in GGUF tensor infos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq3Xxs,
    Iq1S,
    Iq4Nl,
    Iq3S,
    Iq2S,
    Iq4Xs,
    I8,
    I16,
    I32,
    I64,
    F64,
    Iq1M,
    Bf16,
    Tq1_0,
    Tq2_0,
    Mxfp4,
    /// An id this reader does not know (a newer ggml, or a corrupt file).
    Unknown(u32),
}

/// (id, type, name as ggml spells it, values per block, bytes per block)
const TYPES: [(u32, GgmlType, &str, usize, usize); 32] = [
    (0, GgmlType::F32, "F32", 1, 4),
    (1, GgmlType::F16, "F16", 1, 2),
    (2, GgmlType::Q4_0, "Q4_0", 32, 18),
    (3, GgmlType::Q4_1, "Q4_1", 32, 20),
    (6, GgmlType::Q5_0, "Q5_0", 32, 22),
    (7, GgmlType::Q5_1, "Q5_1", 32, 24),
    (8, GgmlType::Q8_0, "Q8_0", 32, 34),
    (9, GgmlType::Q8_1, "Q8_1", 32, 40),
    (10, GgmlType::Q2K, "Q2_K", QK_K, 84),
    (11, GgmlType::Q3K, "Q3_K", QK_K, 110),
    (12, GgmlType::Q4K, "Q4_K", QK_K, 144),
    (13, GgmlType::Q5K, "Q5_K", QK_K, 176),
    (14, GgmlType::Q6K, "Q6_K", QK_K, 210),
    (15, GgmlType::Q8K, "Q8_K", QK_K, 292),
    (16, GgmlType::Iq2Xxs, "IQ2_XXS", QK_K, 66),
    (17, GgmlType::Iq2Xs, "IQ2_XS", QK_K, 74),
    (18, GgmlType::Iq3Xxs, "IQ3_XXS", QK_K, 98),
    (19, GgmlType::Iq1S, "IQ1_S", QK_K, 50),
    (20, GgmlType::Iq4Nl, "IQ4_NL", 32, 18),
    (21, GgmlType::Iq3S, "IQ3_S", QK_K, 110),
    (22, GgmlType::Iq2S, "IQ2_S", QK_K, 82),
    (23, GgmlType::Iq4Xs, "IQ4_XS", QK_K, 136),
    (24, GgmlType::I8, "I8", 1, 1),
    (25, GgmlType::I16, "I16", 1, 2),
    (26, GgmlType::I32, "I32", 1, 4),
    (27, GgmlType::I64, "I64", 1, 8),
    (28, GgmlType::F64, "F64", 1, 8),
    (29, GgmlType::Iq1M, "IQ1_M", QK_K, 56),
    (30, GgmlType::Bf16, "BF16", 1, 2),
    (34, GgmlType::Tq1_0, "TQ1_0", QK_K, 54),
    (35, GgmlType::Tq2_0, "TQ2_0", QK_K, 66),
    (39, GgmlType::Mxfp4, "MXFP4", 32, 17),
];

impl GgmlType {
    pub fn from_id(id: u32) -> GgmlType {
        TYPES.iter().find(|t| t.0 == id).map_or(GgmlType::Unknown(id), |t| t.1)
    }

    fn entry(self) -> Option<&'static (u32, GgmlType, &'static str, usize, usize)> {
        TYPES.iter().find(|t| t.1 == self)
    }

    /// ggml's name (`Q4_K`, `BF16`, ...), or `type id N` for an unknown id.
    pub fn name(self) -> String {
        match (self, self.entry()) {
            (GgmlType::Unknown(id), _) => format!("unknown ggml type id {id}"),
            (_, Some(e)) => e.2.to_string(),
            (_, None) => unreachable!("every known type has an entry"),
        }
    }

    /// (values per block, bytes per block); `None` for an unknown type.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        self.entry().map(|e| (e.3, e.4))
    }

    /// Whether [`dequantize`] handles this type.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(self, F32 | F16 | Bf16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q3K | Q4K | Q5K | Q6K)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Dequantizes whole blocks of `ty` into `out` (`out.len()` values; `data` holds exactly the
/// blocks they need). Returns `Err(message)` for a type this reader does not dequantize or a size
/// mismatch; the caller names the tensor.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), String> {
    let (block_values, block_bytes) = ty.block_layout().ok_or_else(|| format!("{ty} is not a type r1kit knows"))?;
    if !ty.can_dequantize() {
        return Err(format!(
            "type {ty} is not supported (r1kit dequantizes F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q3_K, Q4_K, Q5_K, Q6_K)"
        ));
    }
    if out.len() % block_values != 0 || data.len() != out.len() / block_values * block_bytes {
        return Err(format!(
            "{} values of {ty} need {} bytes in blocks of {block_values}, got {} bytes",
            out.len(),
            out.len().div_ceil(block_values) * block_bytes,
            data.len()
        ));
    }
    let blocks = data.chunks_exact(block_bytes).zip(out.chunks_exact_mut(block_values));
    match ty {
        GgmlType::F32 => blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = f16::from_le_bytes([b[0], b[1]]).to_f32()),
        GgmlType::Bf16 => blocks.for_each(|(b, y)| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| block_q8_0(b, y)),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| block_q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| block_q4_1(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| block_q5_0(b, y)),
        GgmlType::Q3K => blocks.for_each(|(b, y)| block_q3_k(b, y)),
        GgmlType::Q4K => blocks.for_each(|(b, y)| block_q4_k(b, y)),
        GgmlType::Q5K => blocks.for_each(|(b, y)| block_q5_k(b, y)),
        GgmlType::Q6K => blocks.for_each(|(b, y)| block_q6_k(b, y)),
        _ => unreachable!("can_dequantize checked above"),
    }
    Ok(())
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// block_q8_0: d (f16), qs[32] (i8).
fn block_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (v, &q) in y.iter_mut().zip(&b[2..34]) {
        *v = q as i8 as f32 * d;
    }
}

/// block_q4_0: d (f16), qs[16]; low nibbles are values 0..16, high nibbles 16..32, offset 8.
fn block_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// block_q4_1: d (f16), m (f16), qs[16].
fn block_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = (q & 0x0F) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// block_q5_0: d (f16), qh (u32: the fifth bit of each value), qs[16], offset 16.
fn block_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let xh_0 = ((qh >> j) << 4) & 0x10;
        let xh_1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((q as u32 & 0x0F) | xh_0) as i32 - 16;
        let x1 = ((q as u32 >> 4) | xh_1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// block_q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit scales), d (f16).
fn block_q3_k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
    let d_all = f16_at(b, 108);
    let scales: [i32; 16] = std::array::from_fn(|j| {
        let low = if j < 8 { packed[j] & 0x0F } else { packed[j - 8] >> 4 };
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 0x03;
        (low | (high << 4)) as i32 - 32
    });
    let mut is = 0;
    let mut m = 1u8;
    let mut out = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let dl = d_all * scales[is] as f32;
                is += 1;
                for l in part * 16..part * 16 + 16 {
                    let low = ((q[l] >> shift) & 3) as i32;
                    let high = if hmask[l] & m != 0 { 0 } else { 4 };
                    y[out] = dl * (low - high) as f32;
                    out += 1;
                }
            }
            m <<= 1;
        }
    }
}

/// ggml's get_scale_min_k4: the j-th 6-bit (scale, min) pair of a Q4_K / Q5_K block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// block_q4_K: d (f16), dmin (f16), scales[12], qs[128].
fn block_q4_k(b: &[u8], y: &mut [f32]) {
    let (d, min) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (chunk, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// block_q5_K: d (f16), dmin (f16), scales[12], qh[32], qs[128].
fn block_q5_k(b: &[u8], y: &mut [f32]) {
    let (d, min) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    let (mut u1, mut u2) = (1u8, 2u8);
    for (chunk, (ql, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
            y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
        u1 <<= 2;
        u2 <<= 2;
    }
}

/// block_q6_K: ql[128], qh[64], scales[16] (i8), d (f16); offset 32.
fn block_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[n * 64..n * 64 + 64];
        let qh = &b[128 + n * 32..128 + n * 32 + 32];
        let sc = &b[192 + n * 8..192 + n * 8 + 8];
        let y = &mut y[n * 128..n * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * sc[is] as i8 as f32 * q1 as f32;
            y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
            y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
            y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_are_named() {
        for (id, ty, name, _, _) in TYPES {
            assert_eq!(GgmlType::from_id(id), ty);
            assert_eq!(ty.name(), name);
        }
        assert_eq!(GgmlType::from_id(99).name(), "unknown ggml type id 99");
        assert_eq!(QK_K, GgmlType::Q6K.block_layout().unwrap().0);
    }

    #[test]
    fn q8_0_is_scale_times_int8() {
        let mut block = vec![0u8; 34];
        block[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block[2] = 4;
        block[3] = (-6i8) as u8;
        let mut out = vec![f32::NAN; 32];
        dequantize(GgmlType::Q8_0, &block, &mut out).unwrap();
        assert_eq!(&out[..3], &[2.0, -3.0, 0.0]);
    }

    #[test]
    fn q4_0_low_nibbles_first_then_high() {
        let mut block = vec![0u8; 18];
        block[..2].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
        block[2] = 0xF1; // value 0: 1-8 = -7; value 16: 15-8 = 7
        let mut out = vec![0.0; 32];
        dequantize(GgmlType::Q4_0, &block, &mut out).unwrap();
        assert_eq!((out[0], out[16], out[1]), (-14.0, 14.0, -16.0));
    }

    #[test]
    fn unsupported_types_and_bad_sizes_are_errors() {
        let err = dequantize(GgmlType::Q2K, &[0; 84], &mut [0.0; 256]).unwrap_err();
        assert!(err.contains("type Q2_K is not supported"), "{err}");
        let err = dequantize(GgmlType::Unknown(77), &[0; 4], &mut [0.0; 1]).unwrap_err();
        assert!(err.contains("unknown ggml type id 77"), "{err}");
        let err = dequantize(GgmlType::Q8_0, &[0; 33], &mut [0.0; 32]).unwrap_err();
        assert!(err.contains("need 34 bytes"), "{err}");
    }
}
