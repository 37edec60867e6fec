//! The KV cache, designed once for every decoder after: preallocated per layer as
//! `[batch, kv_heads, capacity, head_dim]`, written at a common slot index with per-row positions
//! (rows of different prompt lengths are left-padded, and padding slots are masked), with static
//! shapes so that a GPU decode step can be captured as a graph.

use burn::prelude::*;
use burn::tensor::{FloatDType, IndexingUpdateOp};

use crate::attention_mask::AttentionMask;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

pub struct KvCache {
    keys: Vec<Option<Tensor<4>>>,
    values: Vec<Option<Tensor<4>>>,
    batch: usize,
    capacity: usize,
    len: usize,
    /// `[batch, capacity]`: whether a slot holds a real token (not padding).
    slot_valid: Vec<bool>,
}

impl KvCache {
    /// Keys and values are stored in `dtype`: the model's compute dtype, which the attention casts
    /// them to anyway (a bf16 cache is half the memory and no per-step cast of the whole cache).
    pub fn new(config: &ModelConfig, batch: usize, capacity: usize, dtype: FloatDType, device: &Device) -> Self {
        let shape = [batch, config.num_kv_heads, capacity, config.head_dim];
        let zeros = || (0..config.num_layers).map(|_| Some(Tensor::<4>::zeros(shape, device).cast(dtype))).collect();
        KvCache { keys: zeros(), values: zeros(), batch, capacity, len: 0, slot_valid: vec![false; batch * capacity] }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Reserves the next `queries` slots for tokens whose validity (`[batch, queries]`, false for
    /// padding) is given, and returns the mask the forward pass must use.
    pub fn prepare(&mut self, new_valid: &[bool], queries: usize) -> Result<AttentionMask> {
        self.prepare_over(new_valid, queries, self.len + queries)
    }

    /// [`prepare`](Self::prepare) for one query per row whose mask spans the whole capacity: the
    /// fixed-shape decode step ([`Model::decode_fixed`](crate::Model::decode_fixed)) attends over
    /// every slot, and the mask blocks those not yet written. The step writes at slot
    /// [`len`](Self::len); [`advance`](Self::advance) after it.
    pub fn prepare_fixed(&mut self, new_valid: &[bool]) -> Result<AttentionMask> {
        self.prepare_over(new_valid, 1, self.capacity)
    }

    /// Reserves `queries` slots and returns the mask over the first `keys` slots.
    fn prepare_over(&mut self, new_valid: &[bool], queries: usize, keys: usize) -> Result<AttentionMask> {
        if self.len + queries > self.capacity {
            return Err(ModelError::Invalid(format!(
                "KV cache full: {} slots used + {queries} new > capacity {}",
                self.len, self.capacity
            )));
        }
        let mut visible = Vec::with_capacity(self.batch * keys);
        for b in 0..self.batch {
            for i in 0..queries {
                self.slot_valid[b * self.capacity + self.len + i] = new_valid[b * queries + i];
            }
            visible.extend_from_slice(&self.slot_valid[b * self.capacity..b * self.capacity + keys]);
        }
        Ok(AttentionMask::over_slots(&visible, self.batch, self.len, queries))
    }

    /// Writes this layer's new keys/values `[batch, kv_heads, 1, head_dim]` at the slot that
    /// `slot` holds (`[batch, kv_heads, 1, head_dim]`, every entry the slot's index, on the device,
    /// so the step's shapes and launches do not change with the slot) and returns the whole cache.
    /// Written in place: the cache's buffers stay where a captured graph recorded them.
    pub(crate) fn write_at(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>, slot: &Tensor<4, Int>) -> (Tensor<4>, Tensor<4>) {
        let write = |cache: &mut Option<Tensor<4>>, x: Tensor<4>| {
            let full = cache.take().expect("cache layer present");
            let x = x.cast(full.dtype());
            let full = full.scatter(2, slot.clone(), x, IndexingUpdateOp::Assign);
            *cache = Some(full.clone());
            full
        };
        (write(&mut self.keys[layer], k), write(&mut self.values[layer], v))
    }

    /// The slot index tensor [`write_at`](Self::write_at) takes, for the slot of the next token.
    pub fn slot_index(&self) -> Tensor<4, Int> {
        let keys = self.keys[0].as_ref().expect("cache layer present");
        let [batch, kv_heads, _, head_dim] = keys.dims();
        let shape = [batch, kv_heads, 1, head_dim];
        Tensor::from_data(TensorData::new(vec![self.len as i64; shape.iter().product()], shape), &keys.device())
    }

    /// Writes this layer's new keys/values at the reserved slots and returns all slots in use.
    pub(crate) fn write_and_read(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [b, h, s, d] = k.dims();
        let (start, end) = (self.len, self.len + s);
        let write = |slot: &mut Option<Tensor<4>>, x: Tensor<4>| {
            let full = slot.take().expect("cache layer present");
            let x = x.cast(full.dtype());
            let full = full.slice_assign([0..b, 0..h, start..end, 0..d], x);
            let used = full.clone().slice([0..b, 0..h, 0..end, 0..d]);
            *slot = Some(full);
            used
        };
        (write(&mut self.keys[layer], k), write(&mut self.values[layer], v))
    }

    /// Marks `queries` more slots as written (the forward pass does it; after a fixed-shape step,
    /// the caller).
    pub fn advance(&mut self, queries: usize) {
        self.len += queries;
    }

    /// Keeps only the given rows, in the given order (rows may repeat): the way a prompt's cache is
    /// copied to the G completions of its group, or finished rows are dropped.
    pub fn select_rows(&mut self, rows: &[usize]) {
        let device = self.keys[0].as_ref().expect("cache layer present").device();
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [rows.len()]), &device);
        for slot in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *slot = Some(slot.take().expect("cache layer present").select(0, idx.clone()));
        }
        let mut valid = Vec::with_capacity(rows.len() * self.capacity);
        for &r in rows {
            valid.extend_from_slice(&self.slot_valid[r * self.capacity..(r + 1) * self.capacity]);
        }
        self.slot_valid = valid;
        self.batch = rows.len();
    }
}
