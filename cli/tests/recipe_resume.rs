//! `r1kit run`: a run killed (SIGKILL) during its third stage and started again leaves the earlier
//! stages' files untouched and ends with the same summary.json as an uninterrupted run (CPU, same
//! seed); the report has a curve per RL metric.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn r1kit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_r1kit"))
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("r1kit-recipe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// init -> sft -> grpo -> eval on a ~0.1M-parameter model: long enough for the model to emit the
/// format sometimes, so rewards (and GRPO's updates) are not all zero.
const RECIPE: &str = r#"
seed = 5
[heldout]
dataset = "arithmetic:n=16,seed=2,digits=1,terms=3,ops=+-?split=heldout"
template = { kind = "plain", format = "Q: {prompt}\nA:" }
samples = 2
temperature = 1.0
max_new_tokens = 40

[[stage]]
name = "base"
kind = "init"
[stage.config]
hidden = 64
layers = 2
heads = 4
kv_heads = 2
intermediate = 128
vocab_size = 288
template = "plain"
tokenizer_dataset = "arithmetic:n=200,seed=1,digits=1,terms=3,ops=+-,traces=true"

[[stage]]
name = "sft"
kind = "sft"
model = "@base"
[stage.config.data]
train = "arithmetic:n=200,seed=1,digits=1,terms=3,ops=+-,traces=true?split=train"
template = { kind = "plain", format = "Q: {prompt}\nA:" }
max_seq_len = 96
[stage.config.train]
max_steps = 120
examples_per_step = 16
log_every = 0
[stage.config.optimizer]
lr = 3e-3
[stage.config.checkpoint]
every = 40

[[stage]]
name = "rl"
kind = "grpo"
model = "@sft"
[stage.config.data]
train = "arithmetic:n=64,seed=3,digits=1,terms=3,ops=+-?split=train"
template = { kind = "plain", format = "Q: {prompt}\nA:" }
[stage.config.rollout]
prompts_per_step = 2
group = 4
max_new_tokens = 40
[stage.config.rewards]
rewards = ["math", "format"]
weights = [1.0, 0.5]
[stage.config.algorithm]
beta = 0.05
[stage.config.optimizer]
lr = 1e-3
[stage.config.run]
steps = 20
save_every = 1
keep_last = 2
samples_every = 0

[[stage]]
name = "final-eval"
kind = "eval"
model = "@rl"
[stage.config]
samples = 3
"#;

/// Every file under `dir`: relative path -> (modification time, content hash).
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (SystemTime, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mut h = DefaultHasher::new();
                std::fs::read(&path).unwrap().hash(&mut h);
                let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), (mtime, h.finish()));
            }
        }
    }
    out
}

fn run_to_end(recipe: &Path, out: &Path) -> String {
    let output = r1kit().arg("run").arg(recipe).arg("--out").arg(out).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn a_run_killed_in_its_third_stage_resumes_to_the_same_summary() {
    let root = scratch("resume");
    let recipe = root.join("tiny.toml");
    std::fs::write(&recipe, RECIPE).unwrap();

    let whole = root.join("whole");
    run_to_end(&recipe, &whole);

    let cut = root.join("cut");
    let mut child = r1kit().arg("run").arg(&recipe).arg("--out").arg(&cut).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let third = cut.join("rl");
    let started = Instant::now();
    // kill once the third stage has written a checkpoint, before it finishes
    loop {
        // a finished checkpoint is renamed into place as step-N (temporaries start with a dot)
        let checkpointed = std::fs::read_dir(third.join("checkpoints"))
            .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("step-")))
            .unwrap_or(false);
        if checkpointed {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its third stage checkpointed");
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint of the third stage after 2 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(!third.join("done.json").exists(), "the third stage finished before the kill: the test proves nothing");
    assert!(cut.join("sft/done.json").exists() && cut.join("base/done.json").exists());
    let before: Vec<_> = ["base", "sft"].iter().map(|s| fingerprint(&cut.join(s))).collect();

    let log = run_to_end(&recipe, &cut);
    assert!(log.contains("base (init): finished earlier, skipped") && log.contains("sft (sft): finished earlier, skipped"), "{log}");
    assert!(log.contains("grpo: resuming from"), "the third stage did not resume from its checkpoint:\n{log}");
    let after: Vec<_> = ["base", "sft"].iter().map(|s| fingerprint(&cut.join(s))).collect();
    assert_eq!(before, after, "an earlier stage's files changed");

    let (a, b) = (summary(&whole), summary(&cut));
    assert_eq!(a, b);
    let stages = a["stages"].as_array().unwrap();
    assert_eq!(stages.iter().map(|s| s["name"].as_str().unwrap()).collect::<Vec<_>>(), ["base", "sft", "rl", "final-eval"]);
    assert!(stages.iter().all(|s| s["heldout_accuracy"].is_number()), "{a}");
    assert!(stages[2]["final_mean_reward"].is_number() && stages[1].get("final_mean_reward").is_none(), "{a}");
    // non-trivial results, so that equal summaries say something
    assert!(stages[1]["heldout_format_rate"].as_f64().unwrap() > 0.0 && stages[2]["final_mean_reward"].as_f64().unwrap() > 0.0, "{a}");

    let html = std::fs::read_to_string(cut.join("report.html")).unwrap();
    for title in ["mean reward", "accuracy (rollouts)", "format rate", "mean completion length", "KL to the reference", "truncation rate"] {
        let chart = html.split("<svg").find(|c| c.contains(&format!("aria-label=\"{title}")) ).unwrap_or_else(|| panic!("no chart {title}"));
        assert!(chart.contains("<polyline"), "chart {title} has no data");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "report must be self-contained");

    // a finished run reruns as a no-op
    let log = run_to_end(&recipe, &cut);
    assert_eq!(log.matches("finished earlier, skipped").count(), 4, "{log}");
    assert_eq!(summary(&cut), a);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_changed_stage_config_is_refused_on_rerun() {
    let root = scratch("changed");
    let recipe = root.join("one.toml");
    let init_only = RECIPE.split("[[stage]]\nname = \"sft\"").next().unwrap();
    std::fs::write(&recipe, init_only).unwrap();
    run_to_end(&recipe, &root.join("run"));
    assert!(init_only.contains("hidden = 64"));
    std::fs::write(&recipe, init_only.replace("hidden = 64", "hidden = 96")).unwrap();
    let output = r1kit().arg("run").arg(&recipe).arg("--out").arg(root.join("run")).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("stage `base` finished earlier with another configuration"), "{stderr}");
    let _ = std::fs::remove_dir_all(&root);
}

/// report.html in headless Chromium (Debian's `chromium` package): it loads with no console
/// message and its SVG plots carry data. Ignored by default (needs the browser):
///   cargo test -p r1kit --test recipe_resume -- --ignored
#[test]
#[ignore]
fn the_report_opens_in_headless_chromium_without_console_messages() {
    let root = scratch("browser");
    let recipe = root.join("tiny.toml");
    std::fs::write(&recipe, RECIPE).unwrap();
    let run = root.join("run");
    run_to_end(&recipe, &run);
    let report = run.join("report.html").canonicalize().unwrap();
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        .arg(format!("--user-data-dir={}", root.join("profile").display()))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("chromium is not installed (apt-get install -y chromium)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let log = String::from_utf8_lossy(&output.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    // the DOM as the browser built it: every RL curve but KL-free ones has a line with points
    let dom = String::from_utf8_lossy(&output.stdout);
    let lines = dom.matches("<polyline").count();
    assert!(lines >= 6 + 1, "{lines} plotted lines in the rendered page");
    assert!(dom.contains("held-out accuracy per stage") && dom.matches("class=\"bar\"").count() == 4, "held-out bars missing");
    let _ = std::fs::remove_dir_all(&root);
}
