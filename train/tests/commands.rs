//! The subcommands parsed as the CLI parses them, run on temporary files.

use clap::Parser;
use r1kit_train::{run_init, run_sft, InitArgs, SftArgs};

#[derive(Parser)]
struct Init {
    #[command(flatten)]
    args: InitArgs,
}

#[derive(Parser)]
struct Sft {
    #[command(flatten)]
    args: SftArgs,
}

#[test]
fn init_then_sft_with_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let text = dir.path().join("corpus.txt");
    std::fs::write(&text, (0..100).map(|i| format!("Q: {i}*2=?\nA:<think>\n{i}*2={}\n</think>\n<answer>{}</answer>\n", i * 2, i * 2)).collect::<String>()).unwrap();
    let init = Init::parse_from(["init", "--shape", "llama", "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64", "--vocab-size", "320", "--train-tokenizer", text.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    run_init(&init.args).unwrap();
    let config = r1kit_model::config::ModelConfig::from_file(&model.join("config.json")).unwrap();
    assert_eq!((config.hidden_size, config.num_layers, config.vocab_size), (32, 1, 320));
    assert!(model.join("tokenizer.json").exists() && model.join("generation_config.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n.starts_with('.')).collect();
    assert!(leftovers.is_empty(), "scratch removed: {leftovers:?}");

    let out = dir.path().join("run");
    let recipe = dir.path().join("sft.toml");
    std::fs::write(&recipe, format!("[model]\npath = \"{}\"\n[data]\ntrain = \"arithmetic:n=16,digits=1\"\ntemplate = \"plain\"\n[train]\nout_dir = \"{}\"\nlog_every = 0\n", model.display(), out.display())).unwrap();
    // the dataset lacks traces: an RL prompt has no completion, and the error says so
    let bad = Sft::parse_from(["sft", "--config", recipe.to_str().unwrap()]);
    let err = run_sft(&bad.args).unwrap_err();
    assert!(format!("{err:#}").contains("no completion"), "{err:#}");
    let good = Sft::parse_from(["sft", "--config", recipe.to_str().unwrap(), "--set", "data.train=arithmetic:n=16,digits=1,traces=true", "--set", "train.examples_per_step=8", "--set", "optimizer.lr=1e-3"]);
    run_sft(&good.args).unwrap();
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count();
    assert_eq!(lines, 2, "16 examples / 8 per step, one epoch");
    assert!(out.join("final/model.safetensors").exists() && out.join("checkpoints/step-2/optimizer.safetensors").exists());
    let typo = Sft::parse_from(["sft", "--config", recipe.to_str().unwrap(), "--set", "train.epoch=2"]);
    assert!(format!("{:#}", run_sft(&typo.args).unwrap_err()).contains("epoch"));
}
