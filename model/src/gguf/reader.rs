//! The GGUF container (versions 2 and 3): header, metadata key/values, tensor infos, alignment.
//!
//! Every length and count is checked against the bytes left in the file before anything is
//! allocated, so a truncated or corrupt file is an error naming the file, the offset and the
//! field, never a panic or a huge allocation.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::dequant::GgmlType;
use crate::error::{ModelError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays are allowed by the format; deeper nesting than this is corruption.
const MAX_ARRAY_DEPTH: usize = 4;

/// A metadata value (GGUF value types 0..=12).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<MetadataValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetadataValue {
    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v as u64),
            MetadataValue::U16(v) => Some(v as u64),
            MetadataValue::U32(v) => Some(v as u64),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetadataValue::I8(v) => Some(v as i64),
            MetadataValue::I16(v) => Some(v as i64),
            MetadataValue::I32(v) => Some(v as i64),
            MetadataValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// A float as f64. An f32 goes through its shortest decimal form, so that 1e-5 stored as
    /// f32 reads back as 1e-5 (as in the config.json it came from), not 9.9999997e-6.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => format!("{v}").parse().ok(),
            MetadataValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The GGUF name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "uint8",
            MetadataValue::I8(_) => "int8",
            MetadataValue::U16(_) => "uint16",
            MetadataValue::I16(_) => "int16",
            MetadataValue::U32(_) => "uint32",
            MetadataValue::I32(_) => "int32",
            MetadataValue::F32(_) => "float32",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(_) => "array",
            MetadataValue::U64(_) => "uint64",
            MetadataValue::I64(_) => "int64",
            MetadataValue::F64(_) => "float64",
        }
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the fastest-varying (the row length).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Bytes the tensor occupies (`None` for an unknown type).
    pub byte_len: Option<u64>,
}

impl TensorInfo {
    pub fn num_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// Everything before the tensor data.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub metadata: Vec<(String, MetadataValue)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section in the file.
    pub data_offset: u64,
}

/// A reader that knows how many bytes are left, so that no read can ask for more than exists.
struct Bounded<R> {
    inner: R,
    pos: u64,
    len: u64,
    path: PathBuf,
}

impl<R: Read> Bounded<R> {
    fn error(&self, message: impl std::fmt::Display) -> ModelError {
        ModelError::checkpoint(&self.path, format!("not a valid GGUF file: {message}"))
    }

    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "truncated: {what} needs {n} bytes at offset {}, but the file ends at {}",
                self.pos, self.len
            )));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf).map_err(|e| ModelError::io(&self.path, e))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let v = self.bytes(N as u64, what)?;
        Ok(v.try_into().expect("read N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let bytes = self.bytes(len, what)?;
        String::from_utf8(bytes).map_err(|_| self.error(format!("{what} is not valid UTF-8")))
    }

    /// Fails unless `count` items of at least `min_bytes` each can fit in the rest of the file.
    fn check_count(&self, count: u64, min_bytes: u64, what: &str) -> Result<()> {
        if count.saturating_mul(min_bytes) > self.remaining() {
            return Err(self.error(format!(
                "{what} is {count}, but only {} bytes are left after offset {} (truncated or corrupt)",
                self.remaining(),
                self.pos
            )));
        }
        Ok(())
    }

    fn value(&mut self, value_type: u32, what: &str, depth: usize) -> Result<MetadataValue> {
        use MetadataValue as V;
        Ok(match value_type {
            0 => V::U8(self.array::<1>(what)?[0]),
            1 => V::I8(self.array::<1>(what)?[0] as i8),
            2 => V::U16(u16::from_le_bytes(self.array(what)?)),
            3 => V::I16(i16::from_le_bytes(self.array(what)?)),
            4 => V::U32(self.u32(what)?),
            5 => V::I32(i32::from_le_bytes(self.array(what)?)),
            6 => V::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => V::Bool(false),
                1 => V::Bool(true),
                b => return Err(self.error(format!("{what}: bool byte is {b}, expected 0 or 1"))),
            },
            8 => V::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.error(format!("{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}")));
                }
                let elem_type = self.u32(what)?;
                let count = self.u64(what)?;
                let min_bytes = match elem_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8..=12 => 8,
                    other => return Err(self.error(format!("{what}: unknown array element type {other}"))),
                };
                self.check_count(count, min_bytes, &format!("{what}: array length"))?;
                let mut items = Vec::with_capacity(capacity_hint(count));
                for _ in 0..count {
                    items.push(self.value(elem_type, what, depth + 1)?);
                }
                V::Array(items)
            }
            10 => V::U64(self.u64(what)?),
            11 => V::I64(i64::from_le_bytes(self.array(what)?)),
            12 => V::F64(f64::from_le_bytes(self.array(what)?)),
            other => return Err(self.error(format!("{what}: unknown value type {other}"))),
        })
    }
}

/// Counts passed `check_count` fit in the file, but their items can be larger in memory than on
/// disk: reserve modestly and let the vector grow as items are actually read.
fn capacity_hint(count: u64) -> usize {
    count.min(1 << 16) as usize
}

/// Reads the header of the GGUF file at `path` and checks that every tensor lies inside the file.
pub fn read_header(path: &Path) -> Result<Header> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
    let mut r = Bounded { inner: BufReader::with_capacity(1 << 20, file), pos: 0, len, path: path.to_path_buf() };

    let magic = r.array::<4>("magic")?;
    if &magic != MAGIC {
        return Err(r.error(format!("wrong magic {magic:02x?} (expected \"GGUF\"); is this a GGUF file?")));
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(r.error(format!("version {version} is not supported (GGUF 2 and 3 are)")));
    }
    let tensor_count = r.u64("tensor count")?;
    let kv_count = r.u64("metadata count")?;
    // A key/value is at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
    // 8 (name length) + 4 (dims) + 4 (type) + 8 (offset).
    r.check_count(kv_count, 13, "metadata count")?;
    r.check_count(tensor_count, 24, "tensor count")?;

    let mut metadata = Vec::with_capacity(capacity_hint(kv_count));
    for i in 0..kv_count {
        let key = r.string(&format!("metadata key #{i}"))?;
        let value_type = r.u32(&format!("type of metadata '{key}'"))?;
        let value = r.value(value_type, &format!("metadata '{key}'"), 0)?;
        metadata.push((key, value));
    }

    let mut tensors = Vec::with_capacity(capacity_hint(tensor_count));
    for i in 0..tensor_count {
        let name = r.string(&format!("name of tensor #{i}"))?;
        let what = format!("tensor '{name}'");
        let n_dims = r.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.error(format!("{what} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&what)?);
        }
        let ggml_type = GgmlType::from_id(r.u32(&what)?);
        let offset = r.u64(&what)?;
        let numel = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let numel = numel.ok_or_else(|| r.error(format!("{what}: dimensions {dims:?} overflow")))?;
        let byte_len = match ggml_type.block_layout() {
            None => None,
            Some((block_values, block_bytes)) => {
                if dims[0] % block_values as u64 != 0 {
                    return Err(r.error(format!(
                        "{what}: row length {} is not a multiple of the {ggml_type} block size {block_values}",
                        dims[0]
                    )));
                }
                let bytes = (numel / block_values as u64).checked_mul(block_bytes as u64);
                Some(bytes.ok_or_else(|| r.error(format!("{what}: dimensions {dims:?} overflow")))?)
            }
        };
        tensors.push(TensorInfo { name, dims, ggml_type, offset, byte_len });
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() => a,
            _ => return Err(r.error(format!("general.alignment is {v:?}, expected a power of two"))),
        },
    };
    let data_offset = r.pos.div_ceil(alignment) * alignment;
    for t in &tensors {
        if t.offset % alignment != 0 {
            return Err(r.error(format!("tensor '{}': offset {} is not a multiple of the alignment {alignment}", t.name, t.offset)));
        }
        let end = t.byte_len.and_then(|n| data_offset.checked_add(t.offset)?.checked_add(n));
        match (t.byte_len, end) {
            (Some(_), Some(end)) if end <= len => {}
            (Some(n), _) => {
                return Err(r.error(format!(
                    "truncated: tensor '{}' ({n} bytes at data offset {}) ends past the end of the file ({len} bytes)",
                    t.name, t.offset
                )));
            }
            (None, _) => {}
        }
    }
    Ok(Header { version, metadata, tensors, alignment, data_offset })
}
