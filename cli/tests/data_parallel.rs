//! Data-parallel SFT and GRPO as separate processes (`r1kit launch`, TCP rendezvous on 127.0.0.1 as across
//! machines): two ranks end where one process with the same global batch ends; SFT and GRPO runs
//! resume with another number of ranks; a killed rank stops the other with a message naming it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use r1kit_model::burn::prelude::Device;

mod common;

use common::{r1kit, run_ok, scratch, tiny_model};

/// A tiny model and an SFT config on generated traces (constant lr, so a resumed run with other
/// max_steps follows the same schedule).
fn setup(root: &Path) -> PathBuf {
    let model = tiny_model(root);
    let text = format!(
        "[model]\npath = \"{}\"\n[data]\ntrain = \"arithmetic:n=40,seed=2,digits=1,terms=2,traces=true\"\ntemplate = {{ kind = \"plain\", format = \"Q: {{prompt}}\\nA:\" }}\n\
         [train]\nexamples_per_step = 7\nmax_steps = 3\nschedule = \"constant\"\nmicro_batch_tokens = 64\nlog_every = 0\n[optimizer]\nlr = 3e-3\n[checkpoint]\nevery = 1\nkeep_last = 0\n",
        model.display()
    );
    let config = root.join("sft.toml");
    std::fs::write(&config, text).unwrap();
    config
}

fn out_dir(dir: &Path) -> String {
    format!("train.out_dir=\"{}\"", dir.display())
}

fn weights_diff(a: &Path, b: &Path) -> r1kit_model::parity::WeightsDiff {
    let load = |dir: &Path| r1kit_model::load_model_dir(dir, &Device::flex()).unwrap();
    r1kit_model::parity::compare_parameters(&load(a), &load(b)).unwrap()
}

/// Equal up to float reassociation (the ranks' gradients are summed in another order than one
/// process's micro-batches, and Adam's first steps magnify tiny differences where the second
/// moment is small): every tensor within 1e-4 of its largest value, far below bf16's 4e-3.
fn assert_same_model(a: &Path, b: &Path, what: &str) {
    let diff = weights_diff(a, b);
    assert!(diff.worst <= 1e-4, "{what}: {} differs by {:.2e} of its largest value", diff.tensor, diff.worst);
    eprintln!("{what}: largest difference {:.2e} of a tensor's largest value ({})", diff.worst, diff.tensor);
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect()
}

#[test]
fn two_ranks_match_one_process_and_resume_with_another_count() {
    let root = scratch("dp-match");
    let config = setup(&root);
    let single = root.join("single");
    run_ok(r1kit().args(["sft", "--config"]).arg(&config).args(["--set", &out_dir(&single)]));
    let two = root.join("two");
    run_ok(r1kit().args(["launch", "--nproc", "2", "--", "sft", "--config"]).arg(&config).args(["--set", &out_dir(&two)]));
    assert_same_model(&single.join("final"), &two.join("final"), "2 ranks vs 1");
    let (l1, l2) = (losses(&single), losses(&two));
    assert_eq!(l1.len(), 3, "rank 0 alone writes the metrics");
    for (a, b) in l1.iter().zip(&l2) {
        assert!((a - b).abs() < 1e-5 * a.abs(), "step losses {l1:?} vs {l2:?}");
    }
    // the initial model is not the trained one: the comparison above can fail
    assert!(weights_diff(&root.join("init"), &single.join("final")).worst > 1e-3);
    // the same comparison as a command (the GPU machine has no test runner): it passes on the two
    // runs and fails on the initial model against the trained one
    run_ok(r1kit().args(["check", "same-weights"]).arg(single.join("final")).arg(two.join("final")).arg("--from").arg(root.join("init")));
    let out = r1kit().args(["check", "same-weights"]).arg(root.join("init")).arg(single.join("final")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("the models differ by"), "{err}");

    // 3 ranks for one step, then the same run resumed in one process
    let resumed = root.join("resumed");
    run_ok(r1kit().args(["launch", "--nproc", "3", "--", "sft", "--config"]).arg(&config).args(["--set", &out_dir(&resumed), "--set", "train.max_steps=1"]));
    run_ok(r1kit().args(["sft", "--config"]).arg(&config).args(["--set", &out_dir(&resumed)]));
    assert_same_model(&single.join("final"), &resumed.join("final"), "3 ranks then 1 vs 1");
}

#[test]
fn a_killed_rank_stops_the_other_and_is_named() {
    let root = scratch("dp-kill");
    let config = setup(&root);
    let run = root.join("run");
    let mut launcher = r1kit()
        .args(["launch", "--nproc", "2", "--grace", "60", "--", "sft", "--config"])
        .arg(&config)
        .args(["--set", &out_dir(&run), "--set", "train.max_steps=100000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = launcher.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut rank1_pid = None;
    let started = Instant::now();
    // rank 1's pid from the launcher, then a step on disk, then SIGKILL
    while rank1_pid.is_none() || !run.join("metrics.jsonl").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "the run did not start: {seen:?}");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            if let Some(pid) = line.strip_prefix("r1kit launch: rank 1 of 2 is pid ") {
                rank1_pid = Some(pid.trim().to_string());
            }
            seen.push(line);
        }
    }
    run_ok(Command::new("kill").args(["-9", rank1_pid.as_deref().unwrap()]));
    let status = launcher.wait().unwrap();
    seen.extend(lines.try_iter());
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        seen.push(line);
    }
    let text = seen.join("\n");
    assert!(!status.success(), "{text}");
    assert!(text.contains("rank 1 failed"), "the launcher names the dead rank: {text}");
    assert!(text.contains("lost rank 1"), "rank 0 stops at its next collective, naming rank 1: {text}");
    assert!(!text.contains("killing rank 0"), "rank 0 stopped by itself within the grace period: {text}");
}

#[test]
fn grpo_on_two_ranks_matches_one_process() {
    let root = scratch("dp-grpo");
    setup(&root);
    // the share of Latin script varies between a random model's completions, so advantages are not all 0
    let text = format!(
        "[model]\npath = \"{}\"\n[data]\ntrain = \"arithmetic:n=64,seed=3,digits=1,terms=2?split=train\"\nheldout = \"arithmetic:n=4,seed=3,digits=1,terms=2?split=heldout\"\n\
         template = {{ kind = \"plain\", format = \"Q: {{prompt}}\\nA:\" }}\n[rollout]\nprompts_per_step = 3\ngroup = 4\nmax_new_tokens = 8\n\
         [rewards]\nrewards = [\"math\", \"language:en\"]\n[algorithm]\nbeta = 0.05\nmu = 2\n[optimizer]\nlr = 1e-3\n[run]\nout = \"{}\"\nsteps = 2\neval_every = 0\nsamples_every = 1\n",
        root.join("init").display(),
        root.join("run").display()
    );
    let config = root.join("grpo.toml");
    std::fs::write(&config, text).unwrap();
    run_ok(r1kit().args(["launch", "--nproc", "2", "--", "grpo", "--config"]).arg(&config));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(root.join("run/metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // rank 0 alone writes: the held-out line before training, then one line per step
    assert_eq!(records.len(), 3, "{records:?}");
    for r in &records[1..] {
        assert_eq!(r["groups"], 3, "both ranks' groups (2 + 1) are counted: {r}");
        assert!(r["loss"].as_f64().unwrap().is_finite() && r["grad_norm"].as_f64().unwrap() >= 0.0, "{r}");
    }
    assert!(root.join("run/final/model.safetensors").exists());

    // one process, same config: each prompt's completions come from the streams of its place in the
    // step, whatever the ranks, so the two runs draw the same rollouts and end with the same weights
    let single = root.join("single");
    run_ok(r1kit().args(["grpo", "--config"]).arg(&config).args(["--set", &format!("run.out=\"{}\"", single.display())]));
    let single_records: Vec<serde_json::Value> = std::fs::read_to_string(single.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (one, two) in single_records[1..].iter().zip(&records[1..]) {
        // the gathered rollout metrics: the same rollouts, counted over both ranks
        for (key, value) in one.as_object().unwrap() {
            let gathered = ["reward/", "advantage/", "completion_length/", "accuracy", "truncation_rate", "zero_variance_groups", "groups"];
            if gathered.iter().any(|p| key.starts_with(p)) {
                let (a, b) = (value.as_f64().unwrap(), two[key].as_f64().unwrap());
                assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{key}: {a} (1 process) vs {b} (2 ranks)");
            }
        }
        assert!(one["advantage/std"].as_f64().unwrap() > 0.0, "rewards vary, so the update is not KL alone: {one}");
        let (a, b) = (one["loss"].as_f64().unwrap(), two["loss"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1e-3), "losses {a} vs {b}");
    }
    assert_same_model(&single.join("final"), &root.join("run/final"), "GRPO, 2 ranks vs 1");

    // resumed with another number of ranks: two ranks take step 1, one process step 2, and the run
    // ends where one process taking both ends (constant lr: the shorter first run keeps the schedule)
    let set = |key: &str, value: String| ["--set".to_string(), format!("{key}={value}")];
    let constant = set("optimizer.schedule", "\"constant\"".into());
    let whole = root.join("whole");
    run_ok(r1kit().args(["grpo", "--config"]).arg(&config).args(set("run.out", format!("\"{}\"", whole.display()))).args(&constant));
    let resumed = root.join("resumed");
    let resumed_out = set("run.out", format!("\"{}\"", resumed.display()));
    run_ok(r1kit().args(["launch", "--nproc", "2", "--", "grpo", "--config"]).arg(&config).args(&resumed_out).args(&constant).args(set("run.steps", "1".into())));
    run_ok(r1kit().args(["grpo", "--config"]).arg(&config).args(&resumed_out).args(&constant));
    assert_same_model(&whole.join("final"), &resumed.join("final"), "GRPO, 2 ranks for step 1 then 1 process vs 1 process");

    // dynamic sampling: the ranks agree on each resampling round
    let dynamic = root.join("dynamic");
    run_ok(r1kit().args(["launch", "--nproc", "2", "--", "grpo", "--config"]).arg(&config).args(["--set", &format!("run.out=\"{}\"", dynamic.display()), "--set", "algorithm.dynamic_sampling=true", "--set", "algorithm.max_resample_rounds=2"]));
    let last: serde_json::Value = serde_json::from_str(std::fs::read_to_string(dynamic.join("metrics.jsonl")).unwrap().lines().last().unwrap()).unwrap();
    assert!(last["groups"].as_u64().unwrap() <= 3 && last["grad_norm"].as_f64().unwrap().is_finite(), "{last}");

    // more ranks than groups: refused, naming the key
    let out = r1kit().args(["launch", "--nproc", "4", "--grace", "5", "--", "grpo", "--config"]).arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rollout.prompts_per_step = 3 is fewer than the 4 ranks"), "{err}");
}
