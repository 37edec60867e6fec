//! Resume continues the same trajectory: a run killed with SIGKILL (kill -9) after a checkpoint
//! and resumed ends with the same metrics and weights as an uninterrupted run.
//!
//! The killed run is a real process: this test binary re-executes itself running the ignored
//! `child_sft_run` test, which trains slowly (a pause per step) so the parent can kill it after the
//! first checkpoint appears.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use r1kit_train::config::{parse_config, SftConfig};
use r1kit_train::init::{model_config, train_tokenizer, write_random_model, Shape};
use serde_json::Value;

const CHILD_ENV: &str = "R1KIT_RESUME_TEST_CONFIG";
const TOTAL_STEPS: u64 = 12;

fn make_model(dir: &Path) -> PathBuf {
    let texts: Vec<String> = (0..200).map(|i| format!("Q: {i}+{}=?\nA:<think>\n{i}+{}={}\n</think>\n<answer>{}</answer>", i % 7, i % 7, i + i % 7, i + i % 7)).collect();
    let tok_dir = dir.join("tok");
    train_tokenizer(&texts, 300, &tok_dir).unwrap();
    let tokenizer = r1kit_model::tokenizer::Tokenizer::from_dir(&tok_dir).unwrap();
    let shape = Shape { arch: "qwen2".into(), hidden: Some(32), layers: Some(2), heads: Some(4), kv_heads: Some(2), intermediate: Some(64), ..Default::default() };
    let config = model_config(&shape, tokenizer.vocab_size(), &tokenizer.stop_token_ids()).unwrap();
    let model_dir = dir.join("model");
    write_random_model(config, 0.02, 3, &tok_dir, &model_dir).unwrap();
    model_dir
}

fn config_text(model: &Path, out: &Path) -> String {
    format!(
        r#"
[model]
path = "{}"
[data]
train = "arithmetic:n=48,seed=2,digits=1,terms=2,traces=true?split=train"
heldout = "arithmetic:n=8,seed=2,digits=1,terms=2,traces=true?split=heldout"
template = {{ kind = "plain", format = "Q: {{prompt}}\nA:" }}
max_seq_len = 64
[train]
out_dir = "{}"
max_steps = {TOTAL_STEPS}
examples_per_step = 8
micro_batch_tokens = 256
seed = 5
schedule = "cosine"
warmup_steps = 2
log_every = 0
[optimizer]
lr = 3e-3
[checkpoint]
every = 4
keep_last = 2
[eval]
every = 4
dataset = "arithmetic:n=3,seed=2,digits=1,terms=2?split=heldout"
samples = 2
temperature = 1.0
max_new_tokens = 6
"#,
        model.display(),
        out.display()
    )
}

fn metrics(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The fields that define the trajectory (timings differ between runs).
fn trajectory(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let keep = ["step", "epoch", "loss", "lr", "grad_norm", "loss_tokens", "heldout_loss", "eval"];
            Value::Object(l.as_object().unwrap().iter().filter(|(k, _)| keep.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect())
        })
        .collect()
}

#[test]
#[ignore = "run by kill_9_after_a_checkpoint_then_resume_matches_an_uninterrupted_run as a child process"]
fn child_sft_run() {
    let path = std::env::var(CHILD_ENV).expect("only run by the resume test");
    let config: SftConfig = parse_config(&std::fs::read_to_string(path).unwrap(), &[]).unwrap();
    r1kit_train::sft::train_sft(&config, &mut |_| std::thread::sleep(Duration::from_millis(250))).unwrap();
}

#[test]
fn kill_9_after_a_checkpoint_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = make_model(dir.path());

    // uninterrupted
    let straight_out = dir.path().join("straight");
    let straight: SftConfig = parse_config(&config_text(&model, &straight_out), &[]).unwrap();
    r1kit_train::sft::train_sft(&straight, &mut |_| {}).unwrap();
    let expected = trajectory(&metrics(&straight_out));
    assert_eq!(expected.len(), TOTAL_STEPS as usize);
    assert!(expected[3]["eval"]["examples"].as_u64() == Some(3), "evaluation ran: {}", expected[3]);

    // killed with SIGKILL after its first checkpoint
    let killed_out = dir.path().join("killed");
    let config_path = dir.path().join("killed.toml");
    std::fs::write(&config_path, config_text(&model, &killed_out)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_sft_run", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = killed_out.join("checkpoints/step-4/trainer_state.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !first.exists() {
        assert!(Instant::now() < deadline, "the child wrote no checkpoint in 60 s");
        assert!(child.try_wait().unwrap().is_none(), "the child ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    let at_kill = metrics(&killed_out).len();
    assert!(at_kill < TOTAL_STEPS as usize, "killed mid-run ({at_kill} steps logged)");

    // resume in the same directory
    let resumed: SftConfig = parse_config(&config_text(&model, &killed_out), &[]).unwrap();
    r1kit_train::sft::train_sft(&resumed, &mut |_| {}).unwrap();
    let got = trajectory(&metrics(&killed_out));
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "resumed trajectory differs");
    }
    let a = std::fs::read(straight_out.join("final/model.safetensors")).unwrap();
    let b = std::fs::read(killed_out.join("final/model.safetensors")).unwrap();
    assert!(a == b, "final weights differ");
    // keep-last 2 (+ best) checkpoints remain
    let left = r1kit_train::checkpoint::list_checkpoints(&killed_out.join("checkpoints")).unwrap();
    assert!(left.len() <= 3 && left.contains(&12), "{left:?}");
}
