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

#[test]
fn sft_reads_a_tokenizer_given_apart_from_the_model() {
    // The model directory without its tokenizer files: SFT fails naming the tokenizer, and with
    // model.tokenizer pointing elsewhere it trains and saves that tokenizer with the model.
    let dir = tempfile::tempdir().unwrap();
    let (model, tok) = (dir.path().join("m"), dir.path().join("tok"));
    let text = dir.path().join("corpus.txt");
    std::fs::write(&text, (0..60).map(|i| format!("Q: {i}+1=?\nA:<think>\n{i}+1={}\n</think>\n<answer>{}</answer>\n", i + 1, i + 1)).collect::<String>()).unwrap();
    let init = Init::parse_from(["init", "--shape", "llama", "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64", "--vocab-size", "320", "--train-tokenizer", text.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    run_init(&init.args).unwrap();
    std::fs::create_dir_all(&tok).unwrap();
    for name in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::rename(model.join(name), tok.join(name)).unwrap();
    }
    let out = dir.path().join("run");
    let recipe = dir.path().join("sft.toml");
    std::fs::write(&recipe, format!("[model]\npath = \"{}\"\n[data]\ntrain = \"arithmetic:n=8,digits=1,traces=true\"\ntemplate = \"plain\"\n[train]\nout_dir = \"{}\"\nlog_every = 0\nexamples_per_step = 8\n", model.display(), out.display())).unwrap();
    let without = Sft::parse_from(["sft", "--config", recipe.to_str().unwrap()]);
    let err = format!("{:#}", run_sft(&without.args).unwrap_err());
    assert!(err.contains("tokenizer"), "{err}");
    let with = Sft::parse_from(["sft", "--config", recipe.to_str().unwrap(), "--set", &format!("model.tokenizer={}", tok.display())]);
    run_sft(&with.args).unwrap();
    assert!(out.join("final/tokenizer.json").exists(), "the given tokenizer is saved with the model");
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(saved.contains("tokenizer ="), "the override is part of the run's config");
}
