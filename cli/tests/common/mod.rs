//! What the end-to-end tests of the binary share: running it, a scratch folder, a tiny model.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn r1kit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_r1kit"))
}

pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh folder for one test (`name` unique among the tests).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("r1kit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `r1kit init` of a one-layer qwen2 with a BPE trained on generated arithmetic traces, at
/// `root/init`.
pub fn tiny_model(root: &Path) -> PathBuf {
    let model = root.join("init");
    run_ok(r1kit().args(["init", "--shape", "qwen2", "--hidden", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--intermediate", "64", "--vocab-size", "300", "--template", "plain", "--tokenizer-dataset", "arithmetic:n=200,seed=1,digits=1,terms=3,ops=+-,traces=true", "--out"]).arg(&model));
    model
}
