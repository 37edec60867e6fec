//! End-to-end tests on a real (tiny) model trained here: rejection sampling keeps exactly what an
//! independent check accepts; traces mode works across tokenizers while the logit modes refuse
//! them; logit KD and on-policy distillation run and move the student toward the teacher.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use r1kit_datasets::{load_records, write_jsonl, PromptTemplate, Record, SftExample};
use r1kit_model::tokenizer::Tokenizer;
use r1kit_model::{load_model_dir, Model};
use r1kit_train::init::{model_config, train_tokenizer, write_random_model, Shape};
use r1kit_train::packing::{assign_rows, micro_batches, TokenizedExample};

use r1kit_distill::config::{parse_config, Mode};
use r1kit_distill::divergence::{kd_loss, Divergence, DivergenceKind};
use r1kit_distill::reject::RejectReport;
use r1kit_distill::run::distill;
use r1kit_distill::{command, RejectArgs};

const TEMPLATE: &str = "Q: {prompt}\nA:";
/// One-digit additions: all 81 problems.
const PROBLEMS: &str = "arithmetic:n=81,seed=1,digits=1,terms=2,ops=+";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// A model SFT'd on traces of which half are wrong.
    model: PathBuf,
}

fn template() -> PromptTemplate {
    PromptTemplate::Plain { format: TEMPLATE.into() }
}

/// A random qwen2 of the given width with the tokenizer of `tokenizer_dir`.
fn random_model(tokenizer_dir: &Path, hidden: usize, seed: u64, out: &Path) {
    let tok = Tokenizer::from_dir(tokenizer_dir).unwrap();
    let shape = Shape { arch: "qwen2".into(), hidden: Some(hidden), layers: Some(2), heads: Some(4), kv_heads: Some(2), intermediate: Some(2 * hidden), vocab_size: Some(tok.vocab_size()), ..Default::default() };
    let config = model_config(&shape, tok.vocab_size(), &tok.stop_token_ids()).unwrap();
    write_random_model(config, 0.02, seed, tokenizer_dir, out).unwrap();
}

/// Trains, once per test binary, a tiny model on one-digit additions whose traces are wrong half
/// of the time (four traces per problem, each wrong with probability 0.5): sampled at
/// temperature 1 it is right about half of the time.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut traces: Vec<Record> = Vec::new();
        for seed in 1..=4 {
            traces.extend(load_records(&format!("arithmetic:n=81,seed={seed},digits=1,terms=2,ops=+,traces=true,error_rate=0.5")).unwrap());
        }
        let wrong = traces.iter().filter(|r| matches!(r, Record::Trace(t) if t.correct == Some(false))).count();
        assert!((100..=224).contains(&wrong), "about half the traces are wrong: {wrong} of {}", traces.len());
        write_jsonl(&root.join("traces.jsonl"), &traces).unwrap();
        // character-level tokenizer: the byte-level BPE at its minimum size has no merges
        let texts: Vec<String> = traces.iter().map(|r| {
            let rendered = template().render_record(r);
            format!("{}{}", rendered.prompt, rendered.completion.unwrap_or_default())
        }).collect();
        train_tokenizer(&texts, 263, &root.join("tok-chars")).unwrap();
        random_model(&root.join("tok-chars"), 64, 1, &root.join("init"));
        let sft = r1kit_train::config::parse_config(
            &format!(
                "[model]\npath = {:?}\n[data]\ntrain = \"jsonl:{}\"\ntemplate = {{ kind = \"plain\", format = {:?} }}\nmax_seq_len = 64\n[train]\nout_dir = {:?}\nmax_steps = 500\nexamples_per_step = 32\nseed = 1\nschedule = \"cosine\"\nwarmup_steps = 20\nlog_every = 0\n[optimizer]\nlr = 5e-3\n[eval]\nrewards = [\"math\"]\n",
                root.join("init").display().to_string(),
                root.join("traces.jsonl").display(),
                TEMPLATE,
                root.join("sft").display().to_string()
            ),
            &[],
        )
        .unwrap();
        let outcome = r1kit_train::sft::train_sft(&sft, &mut |_| {}).unwrap();
        Fixture { _dir: dir, model: outcome.final_dir, root }
    })
}

/// `Compute a + b.` -> a + b, and the integer in `<answer>...</answer>`: an arithmetic check that
/// shares nothing with the rewards crate.
fn independent_check(problem: &str, completion: &str) -> bool {
    let expr = problem.trim_start_matches("Compute ").trim_end_matches('.');
    let Some((a, b)) = expr.split_once(" + ") else { panic!("unexpected problem {problem:?}") };
    let want: i64 = a.trim().parse::<i64>().unwrap() + b.trim().parse::<i64>().unwrap();
    let Some(start) = completion.find("<answer>") else { return false };
    let rest = &completion[start + "<answer>".len()..];
    let Some(end) = rest.find("</answer>") else { return false };
    rest[..end].trim().parse::<i64>().is_ok_and(|got| got == want)
}

#[derive(Parser)]
struct RejectCli {
    #[command(flatten)]
    args: RejectArgs,
}

fn reject(extra: &[&str], out: &Path) -> (RejectReport, Vec<(String, String)>) {
    let model = fixture().model.display().to_string();
    let out_s = out.display().to_string();
    let mut argv = vec!["reject", "--model", &model, "--dataset", PROBLEMS, "--prompt-format", TEMPLATE, "--rewards", "math,format", "--samples", "6", "--temperature", "1", "--max-new-tokens", "24", "--seed", "3", "--batch", "81", "--out", &out_s];
    argv.extend_from_slice(extra);
    let cli = RejectCli::try_parse_from(argv).unwrap();
    let report = command::reject_with_report(&cli.args).unwrap();
    let kept = load_records(&format!("jsonl:{}", out.display()))
        .unwrap()
        .into_iter()
        .map(|r| match r {
            Record::Sft(SftExample::Completion { prompt, completion }) => (prompt, completion),
            other => panic!("the output reads back as SFT examples, got {}", other.kind_name()),
        })
        .collect();
    (report, kept)
}

#[test]
fn rejection_sampling_keeps_exactly_what_an_independent_check_accepts() {
    let root = &fixture().root;
    let (report, kept) = reject(&[], &root.join("accepted.jsonl"));
    assert_eq!(report.sampled, 81 * 6);
    assert!(report.acceptance_rate > 0.2 && report.acceptance_rate < 0.8, "a model right about half of the time: {}", report.summary());
    assert_eq!(kept.len(), report.accepted, "without keep-shortest or dedup every accepted completion is written");
    for (prompt, completion) in &kept {
        assert!(independent_check(prompt, completion), "kept a wrong completion: {prompt:?} -> {completion:?}");
    }
    // The same sampling with nothing rejected: the independent check accepts exactly as many.
    let (all, everything) = reject(&["--criterion", "total", "--threshold=-1e9"], &root.join("all.jsonl"));
    assert_eq!((all.accepted, everything.len()), (81 * 6, 81 * 6));
    let correct = everything.iter().filter(|(p, c)| independent_check(p, c)).count();
    assert_eq!(correct, report.accepted, "rejection kept {} but {} of the same samples are right", report.accepted, correct);
    // per-prompt numbers add up, and the prompts listed with none accepted are those with 0
    assert_eq!(report.per_prompt.iter().map(|p| p.accepted).sum::<usize>(), report.accepted);
    let none: Vec<&String> = report.per_prompt.iter().filter(|p| p.accepted == 0).map(|p| &p.id).collect();
    assert_eq!(report.none_accepted.iter().collect::<Vec<_>>(), none);
    assert!(report.criterion.contains("math"), "the report states what was compared: {}", report.criterion);
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("accepted.report.json")).unwrap()).unwrap();
    assert_eq!(written["accepted"], report.accepted);

    // keep-shortest 1 with dedup: one completion for each prompt with any accepted, the shortest
    let (short, one_each) = reject(&["--keep-shortest", "1", "--dedup"], &root.join("shortest.jsonl"));
    assert_eq!(short.accepted, report.accepted, "same samples, same verdicts");
    assert_eq!(one_each.len(), 81 - report.none_accepted.len());
    for (prompt, completion) in &one_each {
        let shortest = kept.iter().filter(|(p, _)| p == prompt).map(|(_, c)| c.len()).min().unwrap();
        assert!(completion.len() <= shortest + 2, "{completion:?} is not the shortest accepted for {prompt:?}");
    }
}

fn distill_config(mode: &str, student: &Path, out: &Path, overrides: &[String]) -> r1kit_distill::config::DistillConfig {
    let text = format!(
        "mode = {mode:?}\n[teacher]\npath = {:?}\n[student]\npath = {:?}\n[data]\nprompts = \"{PROBLEMS}\"\ntemplate = {{ kind = \"plain\", format = {TEMPLATE:?} }}\nmax_seq_len = 64\n[generate]\nsamples = 2\nmax_new_tokens = 24\nprompts_per_batch = 81\n[on_policy]\nmax_new_tokens = 16\n[train]\nout_dir = {:?}\nmax_steps = 3\nexamples_per_step = 8\nlog_every = 0\n[optimizer]\nlr = 1e-3\n",
        fixture().model.display().to_string(),
        student.display().to_string(),
        out.display().to_string()
    );
    parse_config(&text, overrides).unwrap()
}

#[test]
fn different_tokenizers_work_in_trace_mode_and_are_refused_in_logit_modes() {
    let root = &fixture().root;
    // a student with its own BPE (merges: other ids for other tokens) and another width
    let texts: Vec<String> = (0..400).map(|i| format!("Q: Compute {} + {}.\nA:<think>\n{}\n</think>\n<answer>{}</answer>", i % 9 + 1, i % 7 + 1, i, i)).collect();
    train_tokenizer(&texts, 300, &root.join("tok-bpe")).unwrap();
    random_model(&root.join("tok-bpe"), 32, 2, &root.join("student-bpe"));
    for mode in ["logit-kd", "on-policy"] {
        let config = distill_config(mode, &root.join("student-bpe"), &root.join(format!("refused-{mode}")), &[]);
        let err = format!("{:#}", distill(&config, &mut |_| {}).unwrap_err());
        assert!(err.contains("263 ids") && err.contains("300 ids"), "names both vocabulary sizes: {err}");
        assert!(err.contains("tok") || err.contains("student-bpe"), "names the models: {err}");
        assert!(err.contains(&format!("mode `{mode}`")) && err.contains("traces"), "{err}");
        assert!(!root.join(format!("refused-{mode}/final")).exists(), "refused before training");
    }
    let config = distill_config("traces", &root.join("student-bpe"), &root.join("traces-bpe"), &[]);
    assert_eq!(config.mode, Mode::Traces);
    let mut steps = 0;
    let outcome = distill(&config, &mut |_| steps += 1).unwrap();
    assert_eq!((outcome.steps, steps), (3, 3));
    let generation = outcome.generation.expect("the teacher generated the traces");
    assert!(generation.kept > 0 && generation.kept <= 81, "{}", generation.summary());
    let student = load_model_dir(&outcome.final_dir, &r1kit_model::burn::prelude::Device::flex()).unwrap();
    assert_eq!(student.config.hidden_size, 32);
    assert_eq!(Tokenizer::from_dir(&outcome.final_dir).unwrap().vocab_size(), 300, "the student keeps its own tokenizer");
}

fn kd_value(student: &Model, teacher: &Model, examples: &[TokenizedExample], kind: DivergenceKind) -> f64 {
    let rows = assign_rows(&examples.iter().map(|e| e.len()).collect::<Vec<_>>(), 64, true);
    let batches = micro_batches(examples, rows, 256, 8, 0);
    let tokens: usize = batches.iter().map(|b| b.loss_tokens()).sum();
    let divergence = Divergence { kind, jsd_beta: 0.5 };
    batches.iter().map(|b| kd_loss(student, teacher, b, divergence, 1.0, 1.0 / tokens as f64, 7).into_scalar::<f32>() as f64).sum()
}

#[test]
fn logit_kd_and_on_policy_move_a_same_vocabulary_student_toward_the_teacher() {
    let root = &fixture().root;
    random_model(&root.join("tok-chars"), 32, 3, &root.join("student-chars"));
    let device = r1kit_model::burn::prelude::Device::flex();
    let teacher = load_model_dir(&fixture().model, &device).unwrap();
    let tok = Tokenizer::from_dir(&fixture().model).unwrap();
    let examples: Vec<TokenizedExample> = load_records(&format!("jsonl:{}", root.join("traces.jsonl").display())).unwrap()[..24]
        .iter()
        .map(|r| r1kit_train::data::tokenize_record(&tok, &template(), r).unwrap())
        .collect();
    // the teacher against itself: zero for every divergence (chunking over 7 positions at a time)
    for kind in [DivergenceKind::ForwardKl, DivergenceKind::ReverseKl, DivergenceKind::Jsd] {
        assert!(kd_value(&teacher, &teacher, &examples, kind).abs() < 1e-5);
    }
    let before = kd_value(&load_model_dir(&root.join("student-chars"), &device).unwrap(), &teacher, &examples, DivergenceKind::ForwardKl);
    assert!(before > 0.1, "a random student is far from the teacher: {before}");
    let overrides = ["kd.divergence=forward-kl".to_string(), format!("data.traces=\"jsonl:{}\"", root.join("traces.jsonl").display()), "train.max_steps=15".into(), "optimizer.lr=1e-2".into()];
    let kd = distill_config("logit-kd", &root.join("student-chars"), &root.join("kd"), &overrides);
    let mut losses = Vec::new();
    let outcome = distill(&kd, &mut |r| losses.push(r["loss"].as_f64().unwrap())).unwrap();
    let after = kd_value(&load_model_dir(&outcome.final_dir, &device).unwrap(), &teacher, &examples, DivergenceKind::ForwardKl);
    assert!(after < 0.7 * before, "logit KD brings the student's distribution to the teacher's: {before} -> {after}");
    assert!(outcome.trained_tokens > 0 && (losses[0] - before).abs() < 0.5 * before, "step losses are the same KL: {losses:?} vs {before}");

    for estimator in ["full", "sampled"] {
        let config = distill_config("on-policy", &root.join("student-chars"), &root.join(format!("op-{estimator}")), &[format!("on_policy.estimator={estimator}"), "on_policy.max_new_tokens=12".into()]);
        let mut losses = Vec::new();
        let outcome = distill(&config, &mut |r| losses.push((r["loss"].as_f64().unwrap(), r["completion_tokens_mean"].as_f64().unwrap()))).unwrap();
        assert_eq!(losses.len(), 3);
        assert!(losses.iter().all(|(l, n)| l.is_finite() && *l > 0.0 && *n > 0.0), "{estimator}: {losses:?}");
        assert!(outcome.final_dir.join("model.safetensors").exists());
    }
}

#[test]
fn teacher_and_student_take_the_model_section_keys() {
    let root = &fixture().root;
    let bad = distill_config("traces", &fixture().model, &root.join("bad-compute"), &["teacher.compute=\"f8\"".into()]);
    let err = format!("{:#}", distill(&bad, &mut |_| {}).unwrap_err());
    assert!(err.contains("teacher.compute"), "names the key: {err}");

    // a student whose directory holds only weights: its tokenizer named apart, bf16 products,
    // gradient checkpointing (the teacher's log-probabilities join the student's checkpointed graph)
    random_model(&root.join("tok-chars"), 32, 4, &root.join("student-full"));
    let weights_only = root.join("student-weights-only");
    std::fs::create_dir_all(&weights_only).unwrap();
    for file in ["model.safetensors", "config.json"] {
        std::fs::copy(root.join("student-full").join(file), weights_only.join(file)).unwrap();
    }
    let overrides = [
        format!("student.tokenizer={:?}", root.join("tok-chars").display().to_string()),
        "student.compute=\"bf16\"".into(),
        "train.gradient_checkpointing=true".into(),
        format!("data.traces=\"jsonl:{}\"", root.join("traces.jsonl").display()),
        "train.max_steps=2".into(),
    ];
    let config = distill_config("logit-kd", &weights_only, &root.join("kd-weights-only"), &overrides);
    let outcome = distill(&config, &mut |_| {}).unwrap();
    assert_eq!(outcome.steps, 2);
    let saved = Tokenizer::from_dir(&outcome.final_dir).expect("the final model carries the named tokenizer");
    assert_eq!(saved.vocab_size(), Tokenizer::from_dir(&root.join("tok-chars")).unwrap().vocab_size());
}
