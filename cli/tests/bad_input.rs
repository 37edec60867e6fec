//! Bad input to `r1kit generate`: each a one-line error naming the file and the problem, a non-zero
//! exit code and no panic.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture() -> PathBuf {
    root().join("model/tests/fixtures/parity/qwen2-tiny")
}

fn smollm2_tokenizer() -> PathBuf {
    let p = root().join("assets/tokenizers/smollm2/tokenizer.json");
    assert!(p.exists(), "{} is missing: run scripts/fetch-assets.sh", p.display());
    p
}

/// A copy of the tiny Qwen2 fixture in a fresh temporary directory, to break.
fn broken_copy(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("r1kit-bad-input-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// Runs `r1kit generate` and returns stderr, asserting failure without a panic in one line.
fn generate_fails(model: &Path, tokenizer: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_r1kit"))
        .args(["generate", "--model"])
        .arg(model)
        .arg("--tokenizer")
        .arg(tokenizer)
        .args(["--prompt", "hello", "--max-new-tokens", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure, got success: {stderr}");
    assert_eq!(out.status.code(), Some(1), "exit code: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

/// A tokenizer whose ids fit the tiny fixture's 384 embedding rows: SmolLM2's vocabulary cut down.
fn small_tokenizer(dir: &Path) -> PathBuf {
    // tokenizers' WordLevel model is enough to load: ids 0..3 only.
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "hello": 1, "world": 2, "</s>": 3}, "unk_token": "<unk>"}
    });
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, json.to_string()).unwrap();
    p
}

#[test]
fn missing_safetensors() {
    let dir = broken_copy("missing");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let err = generate_fails(&dir, &small_tokenizer(&dir));
    assert!(err.contains(&dir.display().to_string()) && err.contains("no model.safetensors"), "{err}");
}

#[test]
fn truncated_safetensors() {
    let dir = broken_copy("truncated");
    let f = dir.join("model.safetensors");
    let len = std::fs::metadata(&f).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len / 2).unwrap();
    let err = generate_fails(&dir, &small_tokenizer(&dir));
    assert!(err.contains("model.safetensors") && err.contains("truncated or corrupt"), "{err}");
}

#[test]
fn unknown_architecture() {
    let dir = broken_copy("arch");
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("\"qwen2\"", "\"mamba\"").replace("Qwen2ForCausalLM", "MambaForCausalLM");
    std::fs::write(&cfg, text).unwrap();
    let err = generate_fails(&dir, &small_tokenizer(&dir));
    assert!(err.contains("config.json") && err.contains("unknown architecture (model_type 'mamba')"), "{err}");
}

#[test]
fn unreadable_config() {
    let dir = broken_copy("config");
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"qwen2\", ").unwrap();
    let err = generate_fails(&dir, &small_tokenizer(&dir));
    assert!(err.contains("config.json") && err.contains("not valid JSON"), "{err}");
}

#[test]
fn tokenizer_larger_than_the_embedding() {
    // SmolLM2's 49,152 tokens against the fixture's 384 embedding rows.
    let dir = broken_copy("vocab");
    let err = generate_fails(&dir, &smollm2_tokenizer());
    assert!(err.contains("384") && err.contains("tokenizer.json"), "{err}");
}

#[test]
fn generate_json_output() {
    let dir = broken_copy("ok");
    let tok = small_tokenizer(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_r1kit"))
        .args(["generate", "--model"])
        .arg(&dir)
        .arg("--tokenizer")
        .arg(&tok)
        .args(["--prompt", "hello world", "--max-new-tokens", "4", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 4);
    assert_eq!(v["logprobs"].as_array().unwrap().len(), 4);
    assert!(v["logprobs"].as_array().unwrap().iter().all(|x| x.as_f64().unwrap() <= 0.0));
    assert_eq!(v["finish_reason"], "length");
}
