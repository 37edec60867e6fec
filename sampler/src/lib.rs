//! Rollouts: a batch of prompts, G completions each, on the model's KV cache.
//!
//! Each prompt is prefilled once and its cache rows copied to its G completions; prompts of
//! different lengths are left-padded with per-row positions. Every step chooses tokens on the
//! device (see [`filters`]) and reads back only the chosen ids and their log-probabilities (a
//! captured step every few steps, its next step fed from the device). Rows that finish are
//! compacted away once half the batch is done, so they stop costing work.

pub mod check;
pub mod filters;
pub mod params;
pub mod rng;
pub mod timing;

use r1kit_model::burn::prelude::*;
use r1kit_model::burn::tensor::Graph;
use r1kit_model::generate::left_pad;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::{write_in_place, DecodeInputs, KvCache, Model};
use std::cell::RefCell;
use std::time::{Duration, Instant};

pub use params::{Completion, FinishReason, SamplingParams};
use rng::StreamRng;

#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("sampling parameters: {0}")]
    Params(String),
    #[error("prompt {0} is empty")]
    EmptyPrompt(usize),
    #[error(transparent)]
    Model(#[from] r1kit_model::ModelError),
    #[error("decoding a completion: {0}")]
    Decode(String),
}

/// One row of the running batch: which completion it is and where it stands.
struct Row {
    completion: usize,
    prompt_len: usize,
    rng: StreamRng,
    /// Finished rows keep decoding (their tokens ignored) until the batch is compacted.
    finished: bool,
}

/// Samples `group` completions for every prompt. Results are ordered by prompt, then sample.
pub fn sample(
    model: &Model,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    group: usize,
    params: &SamplingParams,
) -> Result<Vec<Completion>, SamplerError> {
    sample_with(model, Some(tokenizer), prompts, group, params)
}

/// [`sample`] where the tokenizer is optional: without one, completions carry no text and stop
/// strings cannot be used (benchmarks on random weights of a named shape).
pub fn sample_with(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    group: usize,
    params: &SamplingParams,
) -> Result<Vec<Completion>, SamplerError> {
    sample_in_mode(model, tokenizer, prompts, group, params, DecodeMode::for_device(&model.device()))
}

/// How the decode steps after the prefill run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeMode {
    /// Op by op, attending over the cache slots in use.
    Eager,
    /// At fixed shapes ([`Model::decode_fixed`]), captured once per batch size as a CUDA graph
    /// and replayed: one launch per step instead of a thousand. Where the device has no graphs
    /// the same step is re-run op by op. The repetition penalty (a `[rows, vocab]` host mask per
    /// step) falls back to [`Eager`](Self::Eager).
    Graph,
}

impl DecodeMode {
    /// Graphs on CUDA, eager elsewhere (a CPU step gains nothing from fixed shapes).
    pub fn for_device(device: &Device) -> DecodeMode {
        if r1kit_model::device::is_cuda(device) {
            DecodeMode::Graph
        } else {
            DecodeMode::Eager
        }
    }
}

/// [`sample_with`] with the decode mode chosen by the caller.
pub fn sample_in_mode(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    group: usize,
    params: &SamplingParams,
    mode: DecodeMode,
) -> Result<Vec<Completion>, SamplerError> {
    sample_core(model, tokenizer, prompts, None, group, params, mode, None)
}

/// [`sample`] for one share of a larger batch: prompt `i`'s random streams are those of prompt
/// `streams[i]` of the whole batch, so its completions do not depend on how the batch was split
/// (over data-parallel ranks, say).
///
/// `on_final(c, completion)` is called once per completion (`c` its index in the result) as soon
/// as it is final, its text included: at a stop while other rows still decode, or at the end. A
/// caller can score completions while the rest are generated.
pub fn sample_share(
    model: &Model,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    streams: &[usize],
    group: usize,
    params: &SamplingParams,
    on_final: &mut dyn FnMut(usize, &Completion),
) -> Result<Vec<Completion>, SamplerError> {
    assert_eq!(streams.len(), prompts.len(), "one stream index per prompt");
    sample_core(model, Some(tokenizer), prompts, Some(streams), group, params, DecodeMode::for_device(&model.device()), Some(on_final))
}

#[allow(clippy::too_many_arguments)]
fn sample_core(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    streams: Option<&[usize]>,
    group: usize,
    params: &SamplingParams,
    mode: DecodeMode,
    mut on_final: Option<&mut dyn FnMut(usize, &Completion)>,
) -> Result<Vec<Completion>, SamplerError> {
    params.validate().map_err(SamplerError::Params)?;
    if tokenizer.is_none() && !params.stop_strings.is_empty() {
        return Err(SamplerError::Params("stop strings need a tokenizer".into()));
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(SamplerError::EmptyPrompt(i));
    }
    let mut out: Vec<Completion> = (0..prompts.len() * group)
        .map(|c| Completion {
            prompt_index: c / group,
            sample_index: c % group,
            tokens: vec![],
            text: String::new(),
            logprobs: vec![],
            finish_reason: FinishReason::Length,
        })
        .collect();
    if out.is_empty() || params.max_new_tokens == 0 {
        if let Some(f) = on_final.as_mut() {
            out.iter().enumerate().for_each(|(c, completion)| f(c, completion));
        }
        return Ok(out);
    }
    let started = Instant::now();
    let decoding = model.frozen();
    let model = &decoding;
    let device = model.device();
    let vocab = model.config.vocab_size;
    let hidden_size = model.config.hidden_size;

    // Prefill each prompt once, then give each of its G completions a copy of its cache rows.
    let (tokens, positions, valid, len) = left_pad(prompts, 0);
    let mut cache = KvCache::new(&model.config, prompts.len(), len + params.max_new_tokens, model.compute, &device);
    let mask = cache.prepare(&valid, len)?;
    let hidden = model.forward_hidden(&tokens, &positions, prompts.len(), &mask, Some(&mut cache));
    let last = hidden.slice([0..prompts.len(), len - 1..len, 0..hidden_size]).reshape([prompts.len(), hidden_size]);
    let expand: Vec<usize> = (0..out.len()).map(|c| c / group).collect();
    cache.select_rows(&expand);
    let logits = model.logits_2d(last).select(0, int_tensor(&expand, &device));

    let mut rows: Vec<Row> = (0..out.len())
        .map(|c| Row {
            completion: c,
            prompt_len: prompts[c / group].len(),
            rng: StreamRng::new(params.seed, streams.map_or(c / group, |s| s[c / group]), c % group),
            finished: false,
        })
        .collect();
    let penalize = params.repetition_penalty != 1.0;
    let graph_mode = mode == DecodeMode::Graph && !penalize;

    // What the captured step reads and writes, declared before the graph that borrows them.
    let cache = RefCell::new(cache);
    let inputs: RefCell<Option<DecodeInputs>> = RefCell::new(None);
    let uniforms_buffer: RefCell<Option<Tensor<2>>> = RefCell::new(None);
    let fixed_step = || {
        let inputs = inputs.borrow();
        let logits = model.decode_fixed(inputs.as_ref().expect("inputs set before the step"), &mut cache.borrow_mut());
        let uniforms = uniforms_buffer.borrow().clone().expect("uniforms set before the step");
        filters::draw(logits, params, None, uniforms)
    };
    let mut graph: Option<Graph<_, _>> = None;
    // The next step's work: logits to choose from (prefill, eager), or fixed-step inputs.
    let mut pending = Pending::Logits(logits);
    timing::add(timing::Phase::Prefill, started.elapsed());
    // the end of the last step's read, and what of the time since went into a graph capture
    let (mut read_end, mut captured) = (None::<Instant>, Duration::ZERO);

    // Chosen tokens not yet read: `(ids, log-probabilities)` per step, in order. Eager steps read
    // every step (the next forward takes the tokens from the host); captured steps take their
    // tokens from the last step on the device and are read every GRAPH_READ_EVERY steps, so the
    // host prepares and launches the next steps while the device runs, instead of the device
    // waiting for the host after every read. Rows that stopped meanwhile decode on (their tokens
    // dropped) until the next read.
    let mut unread: Vec<(Tensor<2, Int>, Tensor<2>)> = Vec::new();
    for step in 0..params.max_new_tokens {
        let uniforms: Vec<f32> = rows.iter_mut().map(|r| r.rng.uniform_open()).collect();
        let captured_step = matches!(pending, Pending::Fixed(_));
        let (ids, chosen) = match pending {
            Pending::Logits(logits) => {
                let seen = penalize.then(|| seen_mask(prompts, group, &out, &rows, vocab, &device));
                filters::draw(logits, params, seen.as_ref(), filters::uniforms_tensor(&uniforms, &device))
            }
            Pending::Fixed(fresh) => {
                let u = filters::uniforms_tensor(&uniforms, &device);
                let result = match graph.as_mut() {
                    None => {
                        *inputs.borrow_mut() = Some(fresh);
                        *uniforms_buffer.borrow_mut() = Some(u);
                        // Capturing runs the step a few times (warm-up) and records it; every run
                        // writes the same keys/values at the same slot, so the repeats are harmless.
                        let t = Instant::now();
                        let g = graph.insert(r1kit_model::burn::tensor::capture(&device, fixed_step.clone()));
                        captured += t.elapsed();
                        timing::add(timing::Phase::Capture, t.elapsed());
                        if g.is_hardware() {
                            // the recorded launches have not run yet
                            unsafe { g.replay() }.clone()
                        } else {
                            g.output().clone()
                        }
                    }
                    Some(g) => {
                        inputs.borrow_mut().as_mut().expect("inputs of the captured step").refresh(fresh);
                        write_in_place(uniforms_buffer.borrow_mut().as_mut().expect("uniforms of the captured step"), u);
                        // Safety: the graph reads the model's weights, the cache and the two input
                        // buffers, all alive and unmoved until the graph is dropped; everything
                        // runs on this thread's stream, and the reads below wait for it.
                        unsafe { g.replay() }.clone()
                    }
                };
                cache.borrow_mut().advance(1);
                result
            }
        };
        // A captured step's outputs are the graph's own buffers, which the next replay
        // overwrites: what waits to be read is a copy.
        unread.push(if captured_step { (ids.clone().add_scalar(0), chosen.add_scalar(0.0)) } else { (ids.clone(), chosen) });
        let last = step + 1 == params.max_new_tokens;
        if !captured_step || last || unread.len() >= GRAPH_READ_EVERY {
            let read_start = Instant::now();
            if let Some(end) = read_end {
                timing::add(timing::Phase::Host, read_start.duration_since(end).saturating_sub(captured));
            }
            let steps = unread.len();
            let (ids_read, logprobs_read) = unread.drain(..).unzip::<_, _, Vec<_>, Vec<_>>();
            let ids_read = read_back::<i64>(Tensor::cat(ids_read, 1).into_data())?;
            let logprobs_read = read_back::<f32>(Tensor::cat(logprobs_read, 1).into_data())?;
            let now = Instant::now();
            timing::add(timing::Phase::DeviceWait, now.duration_since(read_start));
            (read_end, captured) = (Some(now), Duration::ZERO);
            // `[rows, steps]`, row-major: row r's token of the j-th unread step at r * steps + j
            for j in 0..steps {
                timing::count_step();
                for (r, row) in rows.iter_mut().enumerate().filter(|(_, row)| !row.finished) {
                    let completion = &mut out[row.completion];
                    let id = ids_read[r * steps + j] as u32;
                    completion.tokens.push(id);
                    completion.logprobs.push(logprobs_read[r * steps + j]);
                    row.finished = params.stop_token_ids.contains(&id) || hits_stop_string(tokenizer, &completion.tokens, &params.stop_strings)?;
                    if row.finished {
                        completion.finish_reason = FinishReason::Stop;
                        if let Some(f) = on_final.as_mut() {
                            set_text(completion, tokenizer, &params.stop_strings)?;
                            f(row.completion, completion);
                        }
                    }
                }
            }
            if last || rows.iter().all(|r| r.finished) {
                break;
            }
        }
        let read_now = unread.is_empty();
        // Drop finished rows once they are half the batch (each compaction copies the cache, and a
        // captured step is captured again for the new batch size); rows are only known to have
        // finished at a read.
        let done = rows.iter().filter(|r| r.finished).count();
        let compact = read_now && 2 * done >= rows.len();
        let mut next: Vec<u32> = if read_now { rows.iter().map(|r| *out[r.completion].tokens.last().expect("one token per step")).collect() } else { Vec::new() };
        if compact {
            let keep: Vec<usize> = (0..rows.len()).filter(|&r| !rows[r].finished).collect();
            graph = None;
            *inputs.borrow_mut() = None;
            *uniforms_buffer.borrow_mut() = None;
            cache.borrow_mut().select_rows(&keep);
            next = keep.iter().map(|&r| next[r]).collect();
            rows.retain(|r| !r.finished);
        }
        let positions: Vec<i64> = rows.iter().map(|r| (r.prompt_len + step) as i64).collect();
        let valid = vec![true; rows.len()];
        let mut cache = cache.borrow_mut();
        pending = if graph_mode {
            let mask = cache.prepare_fixed(&valid)?;
            Pending::Fixed(if read_now {
                DecodeInputs::new(model, &next, &positions, &mask, &cache)
            } else {
                // the tokens this step chose, still on the device
                DecodeInputs::with_ids(model, ids.reshape([rows.len()]), &positions, &mask, &cache)
            })
        } else {
            let mask = cache.prepare(&valid, 1)?;
            let hidden =
                model.forward_hidden(&next, &positions, rows.len(), &mask, Some(&mut cache));
            Pending::Logits(model.logits_2d(hidden.reshape([rows.len(), hidden_size])))
        };
    }
    drop(graph);
    for (c, completion) in out.iter_mut().enumerate() {
        // rows that stopped were handed over already (with their text) when there is a hook
        let handed_over = on_final.is_some() && completion.finish_reason == FinishReason::Stop;
        if !handed_over {
            set_text(completion, tokenizer, &params.stop_strings)?;
            if let Some(f) = on_final.as_mut() {
                f(c, completion);
            }
        }
    }
    Ok(out)
}

/// The completion's text: its tokens decoded, cut before the first stop string (none without a
/// tokenizer).
fn set_text(completion: &mut Completion, tokenizer: Option<&Tokenizer>, stop_strings: &[String]) -> Result<(), SamplerError> {
    if let Some(tokenizer) = tokenizer {
        let text = tokenizer.decode(&completion.tokens, true).map_err(|e| SamplerError::Decode(e.to_string()))?;
        completion.text = cut_at_stop_strings(&text, stop_strings).to_string();
    }
    Ok(())
}

/// Captured decode steps between two reads of the chosen tokens (see the decode loop).
const GRAPH_READ_EVERY: usize = 8;

/// What the next decode step starts from.
enum Pending {
    /// Logits of the last tokens (after the prefill, or an eager step).
    Logits(Tensor<2>),
    /// The fixed-shape step's inputs for the last tokens.
    Fixed(DecodeInputs),
}

fn read_back<E: r1kit_model::burn::tensor::Element>(data: TensorData) -> Result<Vec<E>, SamplerError> {
    data.try_into_vec_as::<E>().map_err(|e| SamplerError::Decode(format!("reading sampled values: {e:?}")))
}

/// Whether the completion's text so far contains a stop string (decoded whole, so that strings
/// spanning token boundaries are found).
fn hits_stop_string(tokenizer: Option<&Tokenizer>, tokens: &[u32], stops: &[String]) -> Result<bool, SamplerError> {
    let Some(tokenizer) = tokenizer.filter(|_| !stops.is_empty()) else {
        return Ok(false);
    };
    let text = tokenizer.decode(tokens, true).map_err(|e| SamplerError::Decode(e.to_string()))?;
    Ok(stops.iter().any(|s| !s.is_empty() && text.contains(s.as_str())))
}

/// `[rows, vocab]` with 1.0 where a token occurs in the row's prompt or completion so far
/// (built on the host: the repetition penalty is rarely used in RL, and this keeps it simple).
fn seen_mask(prompts: &[Vec<u32>], group: usize, out: &[Completion], rows: &[Row], vocab: usize, device: &Device) -> Tensor<2> {
    let mut seen = vec![0f32; rows.len() * vocab];
    for (r, row) in rows.iter().enumerate() {
        let completion = &out[row.completion];
        for &t in prompts[row.completion / group].iter().chain(&completion.tokens) {
            if (t as usize) < vocab {
                seen[r * vocab + t as usize] = 1.0;
            }
        }
    }
    Tensor::from_data(TensorData::new(seen, [rows.len(), vocab]), device)
}

fn int_tensor(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

/// The text before the first stop string (the whole text when none occurs).
pub fn cut_at_stop_strings<'a>(text: &'a str, stops: &[String]) -> &'a str {
    let cut = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min();
    match cut {
        Some(i) => &text[..i],
        None => text,
    }
}
