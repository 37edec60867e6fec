//! `r1kit run`: the shipped recipes pass the checks, and a bad recipe is refused before any work
//! starts, naming the stage and the key.

use std::path::{Path, PathBuf};
use std::process::Command;

fn r1kit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_r1kit"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(recipe: &Path) -> (bool, String, String) {
    let out = r1kit().current_dir(workspace()).args(["run", "--check"]).arg(recipe).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_tiny_recipe_plans_the_whole_r1_pipeline() {
    let (ok, stdout, stderr) = check(&workspace().join("recipes/r1-tiny.toml"));
    assert!(ok, "{stderr}");
    let kinds: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  ")).filter_map(|l| l.split_once('(')).filter_map(|(_, rest)| rest.split(')').next()).collect();
    assert_eq!(kinds, ["init", "sft", "grpo", "reject", "sft", "grpo", "init", "distill"], "{stdout}");
}

#[test]
fn the_real_model_recipe_checks() {
    let gguf = workspace().join("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(gguf.exists(), "{} is missing: run scripts/fetch-assets.sh", gguf.display());
    let (ok, stdout, stderr) = check(&workspace().join("recipes/r1-smollm2.toml"));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1. base (convert)") && stdout.contains("8. student (distill)"), "{stdout}");
}

#[test]
fn a_bad_recipe_is_refused_before_any_work() {
    let root = std::env::temp_dir().join(format!("r1kit-recipe-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let good_init = "[[stage]]\nname = \"base\"\nkind = \"init\"\n[stage.config]\nhidden = 32\nlayers = 1\ntokenizer_dataset = \"arithmetic:n=20\"\n";
    let cases = [
        // an input that no earlier stage makes, after a stage that would have done work
        (format!("{good_init}[[stage]]\nname = \"rl\"\nkind = \"grpo\"\nmodel = \"@sft1\"\n[stage.config.data]\ntrain = \"arithmetic:n=5\"\n"), ["stage `rl` (grpo), key `model`", "`@sft1` is no earlier stage's output"]),
        (format!("{good_init}[[stage]]\nname = \"x\"\nkind = \"dpo\"\n"), ["stage `x`", "unknown kind `dpo`"]),
        (format!("{good_init}[[stage]]\nname = \"s\"\nkind = \"sft\"\nmodel = \"runs/no-such-model\"\n[stage.config.data]\ntrain = \"arithmetic:n=5\"\n"), ["stage `s` (sft), key `model`", "does not exist"]),
        (format!("{good_init}[[stage]]\nname = \"s\"\nkind = \"sft\"\nmodel = \"@base\"\n[stage.config.data]\ntrain = \"arithmetic:n=5\"\n[stage.config.optimizer]\nlearning_rate = 1.0\n"), ["stage `s` (sft), config", "learning_rate"]),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let recipe = root.join(format!("bad{i}.toml"));
        std::fs::write(&recipe, text).unwrap();
        let run_dir = root.join(format!("run{i}"));
        let out = r1kit().current_dir(workspace()).arg("run").arg(&recipe).arg("--out").arg(&run_dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for e in expected {
            assert!(stderr.contains(e), "case {i}: `{e}` not in: {stderr}");
        }
        assert!(!run_dir.exists(), "case {i}: work started (the run directory exists)");
    }
    let _ = std::fs::remove_dir_all(&root);
}
