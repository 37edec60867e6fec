//! GRPO resume: a run killed with SIGKILL after a checkpoint and started again ends with the same
//! metrics (timings aside) and the same final weights as an uninterrupted run (CPU, same seed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::{r1kit, run_ok, scratch, tiny_model};

fn config(root: &Path, model: &Path) -> PathBuf {
    let text = format!(
        r#"[model]
path = "{model}"
[data]
train = "arithmetic:n=64,seed=3,digits=1,terms=3,ops=+-?split=train"
heldout = "arithmetic:n=8,seed=3,digits=1,terms=3,ops=+-?split=heldout"
template = {{ kind = "plain", format = "Q: {{prompt}}\nA:" }}
[rollout]
prompts_per_step = 2
group = 4
max_new_tokens = 10
[rewards]
rewards = ["math", "format", "overlong:40:30"]
[algorithm]
beta = 0.05
mu = 2
[optimizer]
lr = 1e-3
[run]
steps = 8
seed = 4
eval_every = 4
save_every = 2
keep_last = 2
samples_every = 0
"#,
        model = model.display()
    );
    let path = root.join("grpo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// metrics.jsonl lines without the wall-clock fields.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().retain(|k, _| !k.starts_with("time/"));
            v
        })
        .collect()
}

#[test]
fn killed_and_resumed_run_matches_uninterrupted_run() {
    let root = scratch("grpo-resume");
    let model = tiny_model(&root);
    let cfg = config(&root, &model);

    let whole = root.join("whole");
    run_ok(r1kit().args(["grpo", "--config"]).arg(&cfg).args(["--set", &format!("run.out=\"{}\"", whole.display())]));

    let killed = root.join("killed");
    let mut child = r1kit()
        .args(["grpo", "--config"])
        .arg(&cfg)
        .args(["--set", &format!("run.out=\"{}\"", killed.display())])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let first = killed.join("checkpoints/step-2/trainer_state.json");
    let start = Instant::now();
    while !first.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("final").exists(), "killed before the end");
    let partial = metrics(&killed).len();
    assert!(partial < metrics(&whole).len(), "killed mid-run ({partial} metric lines)");

    let rerun = r1kit().args(["grpo", "--config"]).arg(&cfg).args(["--set", &format!("run.out=\"{}\"", killed.display())]).output().unwrap();
    let log = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{log}");
    assert!(log.contains("grpo: resuming from") && log.contains("(step "), "the rerun resumed from a checkpoint: {log}");
    let (a, b) = (metrics(&whole), metrics(&killed));
    // the rewards vary, so the updates are real (not zero advantages)
    assert!(a.iter().any(|m| m["advantage/std"].as_f64().unwrap_or(0.0) > 0.1), "advantages carry signal");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    let weights = |run: &Path| std::fs::read(run.join("final/model.safetensors")).unwrap();
    assert!(weights(&whole) == weights(&killed), "final weights differ");
}
