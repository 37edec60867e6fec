//! `r1kit reward`: score a JSONL file of completions offline with a weighted set of rewards.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use crate::reward::{Record, RewardRegistry, WeightedRewards};

#[derive(clap::Args, Debug, Clone)]
pub struct RewardArgs {
    /// Rewards to apply, comma-separated specs (e.g. `math,format` or `cosine:4096,external:./score.py`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub rewards: Vec<String>,
    /// One weight per reward, comma-separated (default: all 1).
    #[arg(long, value_delimiter = ',')]
    pub weights: Vec<f64>,
    /// JSONL file of records, one object per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the scored records (default: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Field holding the completion text.
    #[arg(long, default_value = "completion")]
    pub completion_field: String,
    /// Field holding the gold answer (string or number).
    #[arg(long, default_value = "answer")]
    pub answer_field: String,
    /// Field holding the prompt (used by the format rewards when the prompt opens `<think>`).
    #[arg(long, default_value = "prompt")]
    pub prompt_field: String,
    /// Skip and count bad lines instead of stopping at the first one.
    #[arg(long)]
    pub skip_bad: bool,
    /// Records scored together (in parallel, and per call to external rewards).
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
}

/// Which fields of an input object feed the record.
#[derive(Debug, Clone)]
pub struct FieldNames {
    pub completion: String,
    pub answer: String,
    pub prompt: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreSummary {
    pub scored: usize,
    pub skipped: usize,
}

pub fn run_reward(args: &RewardArgs) -> anyhow::Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let composite = RewardRegistry::with_builtins().build_weighted(&args.rewards, &args.weights)?;
    let input = File::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?;
    let fields = FieldNames { completion: args.completion_field.clone(), answer: args.answer_field.clone(), prompt: args.prompt_field.clone() };
    let summary = match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            let s = score_jsonl(BufReader::new(input), &args.input, &mut out, &composite, &fields, args.skip_bad, args.batch_size)?;
            out.flush()?;
            s
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let s = score_jsonl(BufReader::new(input), &args.input, &mut out, &composite, &fields, args.skip_bad, args.batch_size)?;
            out.flush()?;
            s
        }
    };
    eprintln!("scored {} records, skipped {} bad lines", summary.scored, summary.skipped);
    Ok(())
}

/// Reads JSONL records, writes each back whole with `"rewards": {name: value}` and
/// `"reward": total`. Bad lines are errors naming `path:line`, or skipped and counted.
pub fn score_jsonl(
    input: impl BufRead,
    path: &Path,
    out: &mut impl Write,
    composite: &WeightedRewards,
    fields: &FieldNames,
    skip_bad: bool,
    batch_size: usize,
) -> anyhow::Result<ScoreSummary> {
    let mut summary = ScoreSummary::default();
    let mut pending: Vec<(Map<String, Value>, String, Record)> = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = line.with_context(|| format!("{}:{line_no}: cannot read line", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, fields) {
            Ok(item) => pending.push(item),
            Err(why) if skip_bad => {
                eprintln!("{}:{line_no}: skipped: {why}", path.display());
                summary.skipped += 1;
            }
            Err(why) => bail!("{}:{line_no}: {why} (use --skip-bad to skip such lines)", path.display()),
        }
        if pending.len() >= batch_size {
            summary.scored += flush(&mut pending, out, composite)?;
        }
    }
    summary.scored += flush(&mut pending, out, composite)?;
    Ok(summary)
}

fn parse_line(line: &str, fields: &FieldNames) -> Result<(Map<String, Value>, String, Record), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = value else { return Err("not a JSON object".into()) };
    let completion = match obj.get(&fields.completion) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("field `{}` is not a string", fields.completion)),
        None => return Err(format!("missing field `{}`", fields.completion)),
    };
    let gold = match obj.get(&fields.answer) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(format!("field `{}` is not a string or number", fields.answer)),
    };
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
    let record = Record {
        gold,
        prompt: text(&fields.prompt),
        tests: text("tests").or_else(|| text("test")),
        entry_point: text("entry_point"),
        extra: obj.clone(),
    };
    Ok((obj, completion, record))
}

fn flush(pending: &mut Vec<(Map<String, Value>, String, Record)>, out: &mut impl Write, composite: &WeightedRewards) -> anyhow::Result<usize> {
    if pending.is_empty() {
        return Ok(0);
    }
    let items: Vec<(&str, &Record)> = pending.iter().map(|(_, c, r)| (c.as_str(), r)).collect();
    let scores = composite.score_batch(&items)?;
    let count = scores.len();
    for ((mut obj, _, _), score) in pending.drain(..).zip(scores) {
        let rewards: Map<String, Value> = score.values.iter().map(|(n, v)| (n.clone(), json_number(*v))).collect();
        obj.insert("rewards".into(), Value::Object(rewards));
        obj.insert("reward".into(), json_number(score.total));
        serde_json::to_writer(&mut *out, &Value::Object(obj))?;
        out.write_all(b"\n")?;
    }
    Ok(count)
}

fn json_number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RewardArgs,
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("r1kit-reward-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn args(cmd: &[&str]) -> RewardArgs {
        Cli::try_parse_from(std::iter::once("reward").chain(cmd.iter().copied())).unwrap().args
    }

    #[test]
    fn scores_file_keeping_records_whole() {
        let dir = temp_dir("ok");
        let input = dir.join("in.jsonl");
        let output = dir.join("out.jsonl");
        std::fs::write(
            &input,
            concat!(
                r#"{"id": 1, "completion": "<think>x</think><answer>\\boxed{18}</answer>", "answer": "so 18 #### 18"}"#, "\n",
                "\n",
                r#"{"id": 2, "completion": "<answer>19</answer>", "answer": 18}"#, "\n",
            ),
        )
        .unwrap();
        let a = args(&["--rewards", "math,format", "--weights", "1,0.5", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
        run_reward(&a).unwrap();
        let lines: Vec<Value> = std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["id"], 1);
        assert_eq!(lines[0]["answer"], "so 18 #### 18");
        assert_eq!(lines[0]["rewards"]["math"], 1.0);
        assert_eq!(lines[0]["rewards"]["format"], 1.0);
        assert_eq!(lines[0]["reward"], 1.5);
        assert_eq!(lines[1]["rewards"]["math"], 0.0);
        assert_eq!(lines[1]["reward"], 0.0);
    }

    #[test]
    fn bad_lines_are_named_or_skipped() {
        let dir = temp_dir("bad");
        let input = dir.join("in.jsonl");
        let output = dir.join("out.jsonl");
        std::fs::write(&input, "{\"completion\": \"\\\\boxed{1}\", \"answer\": \"1\"}\n{not json\n{\"text\": \"x\"}\n").unwrap();
        let base = ["--rewards", "math", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()];
        let err = run_reward(&args(&base)).unwrap_err().to_string();
        assert!(err.contains("in.jsonl:2") && err.contains("invalid JSON"), "{err}");

        let mut skipping = base.to_vec();
        skipping.push("--skip-bad");
        let fields = FieldNames { completion: "completion".into(), answer: "answer".into(), prompt: "prompt".into() };
        let composite = RewardRegistry::with_builtins().build_weighted(&["math".into()], &[]).unwrap();
        let mut out = Vec::new();
        let summary = score_jsonl(BufReader::new(File::open(&input).unwrap()), &input, &mut out, &composite, &fields, true, 2).unwrap();
        assert_eq!(summary, ScoreSummary { scored: 1, skipped: 2 });
        run_reward(&args(&skipping)).unwrap();
        assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 1);
    }

    #[test]
    fn field_names_are_configurable_and_unknown_rewards_fail() {
        let dir = temp_dir("fields");
        let input = dir.join("in.jsonl");
        let output = dir.join("out.jsonl");
        std::fs::write(&input, "{\"response\": \"The answer is 4.\", \"gold\": \"4\"}\n").unwrap();
        let a = args(&["--rewards", "math", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap(), "--completion-field", "response", "--answer-field", "gold"]);
        run_reward(&a).unwrap();
        assert!(std::fs::read_to_string(&output).unwrap().contains("\"reward\":1.0"));
        let a = args(&["--rewards", "nope", "--input", input.to_str().unwrap()]);
        assert!(run_reward(&a).unwrap_err().to_string().contains("unknown reward `nope`"));
    }
}
