//! The sampler against transformers' greedy decoding, against the full forward's log-probabilities,
//! against exact sampling distributions (chi-square), and for stops, seeds and compaction.

use std::path::PathBuf;

use r1kit_model::burn::prelude::*;
use r1kit_model::burn::tensor::activation::log_softmax;
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::{load_model_dir, AttentionMask, Model};
use r1kit_sampler::filters::{choose_at, inverse_cdf, processed_logits, uniforms_tensor, DRAW_BLOCK};
use r1kit_sampler::rng::StreamRng;
use r1kit_sampler::{sample, sample_in_mode, sample_share, Completion, DecodeMode, FinishReason, SamplingParams};
use serde_json::{json, Value};

fn fixture(name: &str) -> (Model, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/parity").join(name);
    let model = load_model_dir(&dir, &Device::flex()).unwrap();
    let reference = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    (model, reference)
}

/// A tokenizer for the fixtures' 384-token vocabulary: token i is a short distinct string, and
/// decoding concatenates them (so strings can span token boundaries).
fn fixture_tokenizer() -> Tokenizer {
    let letters = "abcdefghijklmnopqrstuvwxyz";
    let mut vocab = serde_json::Map::new();
    for i in 0..384usize {
        let a = letters.as_bytes()[i % 26] as char;
        let b = letters.as_bytes()[(i / 26) % 26] as char;
        vocab.insert(if i < 26 { a.to_string() } else { format!("{a}{b}") }, json!(i));
    }
    let tok = json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "a"}});
    Tokenizer::from_json_strings(&tok.to_string(), None, None, "fixture tokenizer").unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn greedy_batch_matches_transformers() {
    let tok = fixture_tokenizer();
    for name in ["qwen2-tiny", "qwen3-tiny", "llama-tiny"] {
        let (model, reference) = fixture(name);
        let greedy = reference["greedy"].as_array().unwrap();
        let prompts: Vec<Vec<u32>> = greedy.iter().map(|g| ids(&g["prompt"])).collect();
        assert_ne!(prompts[0].len(), prompts[1].len(), "prompts of different lengths");
        let out = sample(&model, &tok, &prompts, 1, &SamplingParams::greedy(20)).unwrap();
        let mut compared = 0;
        for (g, c) in greedy.iter().zip(&out) {
            let theirs = ids(&g["tokens"]);
            let gaps: Vec<f64> = g["top1_top2_gap"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            for i in 0..theirs.len() {
                if gaps[i] <= 1e-3 {
                    break;
                }
                assert_eq!(c.tokens[i], theirs[i], "{name} step {i}");
                compared += 1;
            }
        }
        assert!(compared >= 20, "{name}: compared {compared} steps");
    }
}

#[test]
fn sampled_logprobs_equal_full_forward() {
    let tok = fixture_tokenizer();
    let (model, reference) = fixture("qwen3-tiny");
    let prompts: Vec<Vec<u32>> = reference["greedy"].as_array().unwrap().iter().map(|g| ids(&g["prompt"])).collect();
    let params = SamplingParams { temperature: 0.7, max_new_tokens: 12, seed: 3, ..Default::default() };
    let out = sample(&model, &tok, &prompts, 3, &params).unwrap();
    let v = model.config.vocab_size;
    let mut max_diff = 0f32;
    for c in &out {
        let prompt = &prompts[c.prompt_index];
        let seq: Vec<u32> = prompt.iter().chain(&c.tokens).copied().collect();
        let n = seq.len();
        let hidden = model.forward_hidden(&seq, &(0..n as i64).collect::<Vec<_>>(), 1, &AttentionMask::causal_segments(&vec![1; n], 1), None);
        let logp = log_softmax(model.logits(hidden) / 0.7, 2).into_data().try_into_vec_as::<f32>().unwrap();
        for (i, (&t, &lp)) in c.tokens.iter().zip(&c.logprobs).enumerate() {
            let at = prompt.len() - 1 + i;
            max_diff = max_diff.max((logp[at * v + t as usize] - lp).abs());
        }
    }
    assert!(max_diff <= 1e-4, "sampler vs full forward logprob gap {max_diff:e}");
}

/// Expected sampling distribution computed independently in f64 (transformers' processors, with
/// a sort for top-p).
fn expected(logits: &[f64], params: &SamplingParams, seen: &[bool]) -> Vec<f64> {
    let mut x: Vec<f64> = logits
        .iter()
        .zip(seen)
        .map(|(&l, &s)| {
            let p = params.repetition_penalty as f64;
            if s { if l > 0.0 { l / p } else { l * p } } else { l }
        })
        .collect();
    let t = params.temperature as f64;
    x.iter_mut().for_each(|l| *l /= t);
    let softmax = |x: &[f64]| {
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = x.iter().map(|l| (l - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect::<Vec<_>>()
    };
    if params.top_k > 0 {
        let mut sorted = x.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[params.top_k - 1];
        x.iter_mut().for_each(|l| if *l < kth { *l = f64::NEG_INFINITY });
    }
    if params.top_p < 1.0 {
        let p = softmax(&x);
        let keep: Vec<bool> = p.iter().map(|&pi| p.iter().filter(|&&q| q > pi).sum::<f64>() < params.top_p as f64).collect();
        x.iter_mut().zip(keep).for_each(|(l, k)| if !k { *l = f64::NEG_INFINITY });
    }
    if params.min_p > 0.0 {
        let p = softmax(&x);
        let max = p.iter().cloned().fold(0.0, f64::max);
        x.iter_mut().zip(&p).for_each(|(l, &pi)| if pi < max * params.min_p as f64 { *l = f64::NEG_INFINITY });
    }
    softmax(&x)
}

/// Upper critical value of chi-square with `df` degrees of freedom at level 1e-3
/// (Wilson-Hilferty, z = 3.0902).
fn chi2_critical(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.0902;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

#[test]
fn sampling_distributions_pass_chi_square() {
    let device = Device::flex();
    let logits: Vec<f64> = vec![2.0, 1.5, 1.0, 0.9, 0.2, -0.5, -1.0, -3.0];
    let seen = vec![true, false, true, false, false, true, false, false];
    let base = SamplingParams { temperature: 1.0, ..Default::default() };
    let cases = [
        ("temperature 0.6", SamplingParams { temperature: 0.6, ..base.clone() }),
        ("temperature 1.7", SamplingParams { temperature: 1.7, ..base.clone() }),
        ("top-k 3", SamplingParams { top_k: 3, ..base.clone() }),
        ("top-p 0.8", SamplingParams { top_p: 0.8, ..base.clone() }),
        ("top-p 0.5 at T 0.8", SamplingParams { top_p: 0.5, temperature: 0.8, ..base.clone() }),
        ("min-p 0.2", SamplingParams { min_p: 0.2, ..base.clone() }),
        ("repetition penalty 1.5", SamplingParams { repetition_penalty: 1.5, ..base.clone() }),
    ];
    let draws = 20_000;
    let v = logits.len();
    for (label, params) in cases {
        let row: Vec<f32> = logits.iter().map(|&l| l as f32).collect();
        let batch: Vec<f32> = row.iter().cycle().take(draws * v).copied().collect();
        let x = Tensor::<2>::from_data(TensorData::new(batch, [draws, v]), &device);
        let seen_t = Tensor::<2>::from_data(
            TensorData::new(seen.iter().map(|&s| if s { 1f32 } else { 0.0 }).cycle().take(draws * v).collect::<Vec<_>>(), [draws, v]),
            &device,
        );
        let mut rng = StreamRng::new(11, 0, 0);
        let uniforms: Vec<f32> = (0..draws).map(|_| rng.uniform_open()).collect();
        let seen_flags = if params.repetition_penalty != 1.0 { seen.clone() } else { vec![false; v] };
        let p = expected(&logits, &params, &seen_flags);
        // The whole vocabulary in one block, and blocks of 3 (the last one padded; whole blocks
        // and block edges filtered out in the top-k, top-p and min-p cases).
        for block in [DRAW_BLOCK, 3] {
            let label = format!("{label}, blocks of {block}");
            let (ids, logp) = choose_at(processed_logits(x.clone(), &params, Some(&seen_t)), &params, uniforms_tensor(&uniforms, &device), block);
            check_draws(&label, &p, ids, logp, draws);
        }
    }
}

#[test]
fn two_level_draw_inverts_the_cdf() {
    // 1,000 tokens in blocks of 37 (the last one padded), every 7th token and the whole fourth block
    // of zero mass: each draw is the token whose cumulative interval holds u (f64 on the host).
    let device = Device::flex();
    let (rows, vocab, block) = (400, 1000, 37);
    let mut rng = StreamRng::new(5, 1, 2);
    let mut probs = vec![0f32; rows * vocab];
    for (i, p) in probs.iter_mut().enumerate() {
        let t = i % vocab;
        let filtered = t % 7 == 0 || (3 * block..4 * block).contains(&t);
        *p = if filtered { 0.0 } else { (8.0 * rng.uniform_open()).exp() };
    }
    let uniforms: Vec<f32> = (0..rows).map(|_| rng.uniform_open()).collect();
    let ids = inverse_cdf(
        Tensor::<2>::from_data(TensorData::new(probs.clone(), [rows, vocab]), &device),
        uniforms_tensor(&uniforms, &device),
        block,
    );
    let ids = ids.into_data().try_into_vec_as::<i64>().unwrap();
    for r in 0..rows {
        let row = &probs[r * vocab..(r + 1) * vocab];
        let total: f64 = row.iter().map(|&p| p as f64).sum();
        let id = ids[r] as usize;
        let before: f64 = row[..id].iter().map(|&p| p as f64).sum();
        let target = uniforms[r] as f64 * total;
        assert!(row[id] > 0.0, "row {r}: token {id} has zero mass");
        assert!(before <= target + 1e-5 * total && before + row[id] as f64 >= target - 1e-5 * total, "row {r}: token {id} does not hold u");
    }
}

/// The draws' log-probabilities equal the expected distribution's, filtered tokens are never drawn,
/// and the counts pass a chi-square test at level 1e-3.
fn check_draws(label: &str, p: &[f64], ids: Tensor<2, Int>, logp: Tensor<2>, draws: usize) {
    let ids = ids.into_data().try_into_vec_as::<i64>().unwrap();
    let logp = logp.into_data().try_into_vec_as::<f32>().unwrap();
    let mut counts = vec![0usize; p.len()];
    for (&i, &lp) in ids.iter().zip(&logp) {
        counts[i as usize] += 1;
        assert!((lp as f64 - p[i as usize].ln()).abs() < 1e-4, "{label}: logprob of {i}");
    }
    let mut chi2 = 0.0;
    let mut df = 0;
    for k in 0..p.len() {
        if p[k] == 0.0 {
            assert_eq!(counts[k], 0, "{label}: filtered token {k} drawn");
            continue;
        }
        let e = p[k] * draws as f64;
        chi2 += (counts[k] as f64 - e).powi(2) / e;
        df += 1;
    }
    let critical = chi2_critical(df - 1);
    assert!(chi2 < critical, "{label}: chi2 {chi2:.2} >= {critical:.2} (df {})", df - 1);
    eprintln!("{label}: chi2 {chi2:.2} < {critical:.2} (df {}, level 1e-3)", df - 1);
}

#[test]
fn stop_strings_across_token_boundaries_and_finish_reasons() {
    let tok = fixture_tokenizer();
    let (model, reference) = fixture("qwen2-tiny");
    let prompt = ids(&reference["greedy"][0]["prompt"]);
    let free = sample(&model, &tok, &[prompt.clone()], 1, &SamplingParams::greedy(12)).unwrap().remove(0);
    assert_eq!(free.finish_reason, FinishReason::Length);
    assert_eq!(free.tokens.len(), 12);
    // A stop string made of the last character of token 4 and the first of token 5.
    let piece = |t: u32| tok.decode(&[t], false).unwrap();
    let (a, b) = (piece(free.tokens[4]), piece(free.tokens[5]));
    let stop = format!("{}{}", a.chars().last().unwrap(), b.chars().next().unwrap());
    let before_stop = tok.decode(&free.tokens, false).unwrap();
    let cut = before_stop.find(&stop).unwrap();
    let params = SamplingParams { stop_strings: vec![stop.clone()], ..SamplingParams::greedy(12) };
    let stopped = sample(&model, &tok, &[prompt.clone()], 1, &params).unwrap().remove(0);
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert!(stopped.tokens.len() <= 6 && stopped.tokens[..] == free.tokens[..stopped.tokens.len()]);
    assert_eq!(stopped.text, before_stop[..cut], "text cut before '{stop}'");
    assert!(!stopped.text.contains(&stop));
    // A stop token ends the completion and is kept as its last token.
    let params = SamplingParams { stop_token_ids: vec![free.tokens[3]], ..SamplingParams::greedy(12) };
    let stopped = sample(&model, &tok, &[prompt], 1, &params).unwrap().remove(0);
    let first = free.tokens.iter().position(|&t| t == free.tokens[3]).unwrap();
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert_eq!(stopped.tokens, free.tokens[..=first]);
}

#[test]
fn seeded_and_unaffected_by_compaction() {
    let tok = fixture_tokenizer();
    let (model, reference) = fixture("llama-tiny");
    let prompts: Vec<Vec<u32>> = reference["greedy"].as_array().unwrap().iter().map(|g| ids(&g["prompt"])).collect();
    let params = SamplingParams { temperature: 1.0, top_p: 0.95, max_new_tokens: 16, seed: 42, ..Default::default() };
    let a = sample(&model, &tok, &prompts, 4, &params).unwrap();
    let b = sample(&model, &tok, &prompts, 4, &params).unwrap();
    assert_eq!(a.iter().map(|c| &c.tokens).collect::<Vec<_>>(), b.iter().map(|c| &c.tokens).collect::<Vec<_>>());
    let other = sample(&model, &tok, &prompts, 4, &SamplingParams { seed: 43, ..params.clone() }).unwrap();
    assert_ne!(a.iter().map(|c| &c.tokens).collect::<Vec<_>>(), other.iter().map(|c| &c.tokens).collect::<Vec<_>>());
    // With stop tokens, rows finish at different steps and the batch is compacted; every
    // completion must equal the unstopped one cut at its first stop token.
    let stops: Vec<u32> = a.iter().filter_map(|c| c.tokens.get(5).copied()).take(3).collect();
    let stopped = sample(&model, &tok, &prompts, 4, &SamplingParams { stop_token_ids: stops.clone(), ..params.clone() }).unwrap();
    let mut finished_early = 0;
    for (full, s) in a.iter().zip(&stopped) {
        match full.tokens.iter().position(|t| stops.contains(t)) {
            Some(i) => {
                assert_eq!(s.tokens, full.tokens[..=i]);
                assert_eq!(s.finish_reason, FinishReason::Stop);
                finished_early += (i + 1 < full.tokens.len()) as usize;
            }
            None => {
                assert_eq!(s.tokens, full.tokens);
                assert_eq!(s.finish_reason, FinishReason::Length);
            }
        }
        // Same tokens; log-probabilities agree to float rounding (the batch shapes differ).
        assert!((s.logprobs.iter().zip(&full.logprobs)).all(|(x, y)| (x - y).abs() < 1e-4));
    }
    assert!(finished_early >= 3, "compaction exercised ({finished_early} rows stopped early)");
}

#[test]
fn a_share_of_the_batch_draws_what_the_whole_batch_draws_for_it() {
    let tok = fixture_tokenizer();
    let (model, reference) = fixture("qwen2-tiny");
    let prompts: Vec<Vec<u32>> = reference["greedy"].as_array().unwrap().iter().map(|g| ids(&g["prompt"])).collect();
    assert!(prompts.len() >= 2);
    let params = SamplingParams { temperature: 1.0, max_new_tokens: 12, seed: 7, ..Default::default() };
    let whole = sample(&model, &tok, &prompts, 3, &params).unwrap();
    // the second prompt alone, as a data-parallel rank would draw it
    let share = sample_share(&model, &tok, &prompts[1..2], &[1], 3, &params, &mut |_, _| {}).unwrap();
    assert_eq!(share.iter().map(|c| &c.tokens).collect::<Vec<_>>(), whole[3..6].iter().map(|c| &c.tokens).collect::<Vec<_>>());
    // without its place, the prompt gets the first prompt's streams: other draws
    let alone = sample(&model, &tok, &prompts[1..2], 3, &params).unwrap();
    assert_ne!(alone.iter().map(|c| &c.tokens).collect::<Vec<_>>(), whole[3..6].iter().map(|c| &c.tokens).collect::<Vec<_>>());
}

#[test]
fn each_completion_is_handed_over_once_as_soon_as_it_is_final() {
    let tok = fixture_tokenizer();
    let (model, reference) = fixture("llama-tiny");
    let prompts: Vec<Vec<u32>> = reference["greedy"].as_array().unwrap().iter().map(|g| ids(&g["prompt"])).collect();
    let params = SamplingParams { temperature: 1.0, max_new_tokens: 16, seed: 42, ..Default::default() };
    let free = sample(&model, &tok, &prompts, 4, &params).unwrap();
    // stop tokens taken from early positions, so that some rows stop well before the others
    let stops: Vec<u32> = free.iter().filter_map(|c| c.tokens.get(2).copied()).take(2).collect();
    let params = SamplingParams { stop_token_ids: stops, ..params };
    let streams: Vec<usize> = (0..prompts.len()).collect();
    let mut seen: Vec<(usize, Completion)> = Vec::new();
    let out = sample_share(&model, &tok, &prompts, &streams, 4, &params, &mut |c, completion| seen.push((c, completion.clone()))).unwrap();
    let mut order: Vec<usize> = seen.iter().map(|(c, _)| *c).collect();
    for (c, handed) in &seen {
        assert_eq!(handed.tokens, out[*c].tokens, "completion {c}: handed over final");
        assert_eq!(handed.text, out[*c].text);
        assert!(!out[*c].text.is_empty() || out[*c].tokens.is_empty());
    }
    // the rows that stopped early came first, before any row that ran to the limit
    let first_long = seen.iter().position(|(_, c)| c.finish_reason == FinishReason::Length).unwrap_or(seen.len());
    assert!(first_long > 0 && seen[..first_long].iter().all(|(_, c)| c.finish_reason == FinishReason::Stop), "stopped rows first");
    assert!(seen[first_long..].iter().all(|(_, c)| c.finish_reason == FinishReason::Length));
    order.sort();
    assert_eq!(order, (0..out.len()).collect::<Vec<_>>(), "each completion exactly once");
}

#[test]
fn fixed_shape_graph_steps_match_eager_steps() {
    // The graph mode's fixed-shape step (attention over the whole cache, keys/values scattered at
    // a device-held slot, inputs refreshed in place) re-runs op by op on the CPU: it must choose
    // the same tokens as the eager step, through stops and compactions, sampled and greedy.
    let tok = fixture_tokenizer();
    let (model, reference) = fixture("qwen2-tiny");
    let prompts: Vec<Vec<u32>> = reference["greedy"].as_array().unwrap().iter().map(|g| ids(&g["prompt"])).collect();
    let sampled = SamplingParams { temperature: 1.0, top_p: 0.95, max_new_tokens: 14, seed: 7, ..Default::default() };
    let eager = sample_in_mode(&model, Some(&tok), &prompts, 3, &sampled, DecodeMode::Eager).unwrap();
    let stops: Vec<u32> = eager.iter().filter_map(|c| c.tokens.get(4).copied()).take(3).collect();
    // A longer run: captured steps are read every 8, so stops land inside later read windows and
    // rows decode past their stop until the next read (their tokens must be dropped).
    let long = SamplingParams { max_new_tokens: 30, seed: 11, ..sampled.clone() };
    let long_eager = sample_in_mode(&model, Some(&tok), &prompts, 3, &long, DecodeMode::Eager).unwrap();
    let late_stops: Vec<u32> = long_eager.iter().filter_map(|c| c.tokens.get(13).copied()).take(4).collect();
    for params in [
        sampled.clone(),
        SamplingParams { stop_token_ids: stops, ..sampled.clone() },
        SamplingParams::greedy(10),
        SamplingParams { stop_token_ids: late_stops, ..long },
    ] {
        let eager = sample_in_mode(&model, Some(&tok), &prompts, 3, &params, DecodeMode::Eager).unwrap();
        let graph = sample_in_mode(&model, Some(&tok), &prompts, 3, &params, DecodeMode::Graph).unwrap();
        let stopped_early = eager.iter().filter(|c| c.tokens.len() < params.max_new_tokens).count();
        for (e, g) in eager.iter().zip(&graph) {
            assert_eq!(e.tokens, g.tokens, "prompt {} sample {}", e.prompt_index, e.sample_index);
            assert_eq!(e.finish_reason, g.finish_reason);
            let worst = e.logprobs.iter().zip(&g.logprobs).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "logprobs differ by {worst}");
        }
        if !params.stop_token_ids.is_empty() {
            assert!(stopped_early >= 3, "compaction exercised ({stopped_early} rows stopped early)");
        }
    }
}

#[test]
fn timings_count_this_threads_steps_once() {
    let (model, reference) = fixture("qwen2-tiny");
    let prompts: Vec<Vec<u32>> = reference["greedy"].as_array().unwrap().iter().map(|g| ids(&g["prompt"])).collect();
    let _ = r1kit_sampler::timing::take();
    let out = sample_in_mode(&model, None, &prompts, 2, &SamplingParams::greedy(6), DecodeMode::Eager).unwrap();
    let t = r1kit_sampler::timing::take();
    assert_eq!(t.steps as usize, out.iter().map(|c| c.tokens.len()).max().unwrap(), "one count per decode step");
    assert!(t.prefill_s > 0.0 && t.device_wait_s >= 0.0 && t.host_s >= 0.0 && t.capture_s == 0.0, "{t:?}");
    assert_eq!(r1kit_sampler::timing::take().steps, 0, "taken sums start again");
}
