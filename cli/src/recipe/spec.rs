//! A recipe file and its plan: every stage's configuration resolved (inputs from earlier stages'
//! outputs, the run directory's folders, the seed and device) and checked before any work starts.
//!
//! ```toml
//! name = "r1-tiny"          # default: the file's stem
//! seed = 1                  # every stage's seed unless its config sets one
//! device = "cpu"            # every stage's device unless its config sets one
//! out = "runs/r1-tiny"      # run directory (default runs/<name>; `--out` wins)
//!
//! [heldout]                 # measured after every stage that makes a model
//! dataset = "arithmetic:n=200,seed=1?split=heldout"
//! template = "r1-zero"      # as the trainers' data.template
//! rewards = ["math", "format"]
//! samples = 4               # completions per prompt
//! temperature = 1.0
//! max_new_tokens = 48
//!
//! [[stage]]
//! name = "sft1"             # the stage's folder and the name later stages refer to (`@sft1`)
//! kind = "sft"              # init | convert | sft | grpo | reject | distill | eval
//! model = "@init"           # inputs: `@stage` (an earlier stage's output) or a path
//! data = "@reject1"         # sft/grpo: data.train; distill: data.traces
//! base = "train/configs/sft-arithmetic.toml"   # optional config file under `config`
//! heldout = true            # evaluate the stage's model (default true)
//! [stage.config]            # the stage's own config: `r1kit sft/grpo/distill` TOML, `r1kit
//! ...                       # init/reject` options by their long names, an eval stage's [heldout]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use r1kit_datasets::PromptTemplate;
use serde::{Deserialize, Serialize};

/// The stage kinds, in the order a pipeline usually takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Init,
    Convert,
    Sft,
    Grpo,
    Reject,
    Distill,
    Eval,
}

impl StageKind {
    pub const ALL: [StageKind; 7] = [StageKind::Init, StageKind::Convert, StageKind::Sft, StageKind::Grpo, StageKind::Reject, StageKind::Distill, StageKind::Eval];

    pub fn name(self) -> &'static str {
        match self {
            StageKind::Init => "init",
            StageKind::Convert => "convert",
            StageKind::Sft => "sft",
            StageKind::Grpo => "grpo",
            StageKind::Reject => "reject",
            StageKind::Distill => "distill",
            StageKind::Eval => "eval",
        }
    }

    fn parse(text: &str) -> Option<StageKind> {
        StageKind::ALL.into_iter().find(|k| k.name() == text)
    }

    /// The input keys a stage of this kind takes, each required or not.
    fn inputs(self) -> &'static [(&'static str, Want, bool)] {
        match self {
            StageKind::Init => &[("tokenizer", Want::Model, false)],
            StageKind::Sft | StageKind::Grpo => &[("model", Want::Model, true), ("data", Want::Data, false)],
            StageKind::Reject | StageKind::Eval | StageKind::Convert => &[("model", Want::Model, true)],
            StageKind::Distill => &[("teacher", Want::Model, true), ("student", Want::Model, true), ("data", Want::Data, false)],
        }
    }

    /// Whether the stage's output is a model (else a data file, or nothing for eval).
    pub fn makes(self) -> Option<Want> {
        match self {
            StageKind::Reject => Some(Want::Data),
            StageKind::Eval => None,
            _ => Some(Want::Model),
        }
    }
}

/// What an input or output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    Model,
    Data,
}

impl Want {
    fn noun(self) -> &'static str {
        match self {
            Want::Model => "a model",
            Want::Data => "data",
        }
    }
}

/// How held-out accuracy is measured (the recipe's `[heldout]`, an eval stage's config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldoutSpec {
    /// Dataset spec of prompts with gold answers. Required.
    pub dataset: String,
    /// Prompt template, as the trainers' data.template. Default r1-zero.
    #[serde(default)]
    pub template: PromptTemplate,
    /// The first decides correctness; a `format*` one gives the format rate. Default math, format.
    #[serde(default = "default_rewards")]
    pub rewards: Vec<String>,
    /// Completions per prompt. Default 1.
    #[serde(default = "one")]
    pub samples: usize,
    /// 0 = greedy. Default 0.
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "one_f32")]
    pub top_p: f32,
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// Prompts sampled together. Default 32.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Evaluate at most this many prompts (the first ones).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Sampling seed (default: the recipe's seed), the same for every stage.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_rewards() -> Vec<String> {
    vec!["math".into(), "format".into()]
}
fn one() -> usize {
    1
}
fn one_f32() -> f32 {
    1.0
}
fn default_max_new_tokens() -> usize {
    256
}
fn default_batch() -> usize {
    32
}
fn yes() -> bool {
    true
}

impl HeldoutSpec {
    fn validate(&self) -> Result<()> {
        if self.rewards.is_empty() || self.samples == 0 || self.max_new_tokens == 0 || self.batch == 0 {
            bail!("rewards must name at least one reward and samples, max_new_tokens, batch be positive");
        }
        r1kit_datasets::DatasetSpec::parse(&self.dataset).with_context(|| format!("dataset `{}`", self.dataset))?;
        r1kit_rewards::RewardRegistry::with_builtins().build_weighted(&self.rewards, &[]).context("rewards")?;
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeHead {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_device")]
    device: String,
    #[serde(default)]
    out: Option<PathBuf>,
    #[serde(default)]
    heldout: Option<toml::Table>,
}

fn default_device() -> String {
    "cpu".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    name: String,
    kind: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    teacher: Option<String>,
    #[serde(default)]
    student: Option<String>,
    #[serde(default)]
    tokenizer: Option<String>,
    #[serde(default)]
    base: Option<PathBuf>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default = "yes")]
    heldout: bool,
}

impl StageFile {
    fn input(&self, key: &str) -> Option<&String> {
        match key {
            "model" => self.model.as_ref(),
            "data" => self.data.as_ref(),
            "teacher" => self.teacher.as_ref(),
            "student" => self.student.as_ref(),
            "tokenizer" => self.tokenizer.as_ref(),
            _ => None,
        }
    }
}

/// A parsed recipe, before it is planned into a run directory.
#[derive(Debug)]
pub struct Recipe {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub device: String,
    pub out: Option<PathBuf>,
    heldout_table: Option<toml::Table>,
    pub heldout: Option<HeldoutSpec>,
    stages: Vec<StageFile>,
}

pub fn load_recipe(path: &Path) -> Result<Recipe> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading recipe {}", path.display()))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    parse_recipe(&text, &stem).with_context(|| format!("recipe {}", path.display()))
}

/// Parses a recipe's text; `default_name` names it when it has no `name`.
pub fn parse_recipe(text: &str, default_name: &str) -> Result<Recipe> {
    let mut table: toml::Table = toml::from_str(text)?;
    let stages_value = table.remove("stage").ok_or_else(|| anyhow!("no [[stage]]: a recipe names its stages in order"))?;
    let head = RecipeHead::deserialize(toml::Value::Table(table)).map_err(|e| anyhow!("{}", one_line(&e)))?;
    let toml::Value::Array(items) = stages_value else { bail!("`stage` must be an array of tables ([[stage]])") };
    let mut stages = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let label = item.get("name").and_then(|n| n.as_str()).map(|n| format!("stage `{n}`")).unwrap_or_else(|| format!("stage {}", i + 1));
        let stage = StageFile::deserialize(item).map_err(|e| anyhow!("{label}: {}", one_line(&e)))?;
        stages.push(stage);
    }
    if stages.is_empty() {
        bail!("no [[stage]]: a recipe names its stages in order");
    }
    let heldout = match &head.heldout {
        Some(t) => {
            let spec = HeldoutSpec::deserialize(toml::Value::Table(t.clone())).map_err(|e| anyhow!("[heldout]: {}", one_line(&e)))?;
            spec.validate().context("[heldout]")?;
            Some(spec)
        }
        None => None,
    };
    Ok(Recipe {
        name: head.name.unwrap_or_else(|| default_name.to_string()),
        description: head.description,
        seed: head.seed,
        device: head.device,
        out: head.out,
        heldout_table: head.heldout,
        heldout,
        stages,
    })
}

/// A stage's work, its configuration fully resolved.
#[derive(Debug, Clone)]
pub enum Work {
    Init(r1kit_train::command::InitArgs),
    Sft(r1kit_train::config::SftConfig),
    Grpo(r1kit_grpo::config::GrpoConfig),
    Reject(r1kit_distill::RejectArgs),
    Distill(r1kit_distill::config::DistillConfig),
    /// The model is filled in from the stage's `model` input.
    Eval { model: PathBuf, spec: HeldoutSpec },
    Convert(ConvertStage),
}

/// A GGUF file made into a Hugging Face directory (which the trainers read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertStage {
    pub model: PathBuf,
    pub out: PathBuf,
    /// Storage dtype of the weights: f32 (default) or bf16.
    pub dtype: String,
}

#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub name: String,
    pub kind: StageKind,
    /// The stage's folder in the run directory.
    pub dir: PathBuf,
    /// Where its model or data will be (none for eval).
    pub output: Option<PathBuf>,
    pub work: Work,
    /// The resolved configuration as JSON: recorded in done.json, compared on rerun.
    pub resolved: serde_json::Value,
    /// Measure held-out accuracy after the stage.
    pub heldout: bool,
}

/// Resolves every stage against `run_dir`; any error names the stage and the key.
pub fn plan(recipe: &Recipe, run_dir: &Path) -> Result<Vec<PlannedStage>> {
    let mut made: BTreeMap<String, (Want, PathBuf)> = BTreeMap::new();
    let mut order: Vec<String> = vec![];
    let mut planned = Vec::with_capacity(recipe.stages.len());
    for stage in &recipe.stages {
        let label = format!("stage `{}`", stage.name);
        check_stage_name(&stage.name).with_context(|| label.clone())?;
        if made.contains_key(&stage.name) || order.contains(&stage.name) {
            bail!("{label}: the name is used by an earlier stage");
        }
        let kind = StageKind::parse(&stage.kind).ok_or_else(|| {
            anyhow!("{label}: unknown kind `{}` (expected one of {})", stage.kind, StageKind::ALL.map(|k| k.name()).join(", "))
        })?;
        let label = format!("stage `{}` ({})", stage.name, kind.name());
        let mut inputs: BTreeMap<&str, PathOrSpec> = BTreeMap::new();
        for key in ["model", "data", "teacher", "student", "tokenizer"] {
            let Some(value) = stage.input(key) else { continue };
            let Some(&(_, want, _)) = kind.inputs().iter().find(|(k, _, _)| *k == key) else {
                let takes: Vec<&str> = kind.inputs().iter().map(|(k, _, _)| *k).collect();
                bail!("{label}: key `{key}` is not an input of a {} stage (it takes: {})", kind.name(), takes.join(", "));
            };
            let resolved = resolve_input(value, want, &made, &order).with_context(|| format!("{label}, key `{key}`"))?;
            inputs.insert(key, resolved);
        }
        for &(key, _, required) in kind.inputs() {
            if required && !inputs.contains_key(key) {
                bail!("{label}: key `{key}` is required (`@stage` or a path)");
            }
        }
        let dir = run_dir.join(&stage.name);
        let mut table = match &stage.base {
            Some(base) => {
                let text = std::fs::read_to_string(base).with_context(|| format!("{label}, key `base`: reading {}", base.display()))?;
                toml::from_str::<toml::Table>(&text).with_context(|| format!("{label}, key `base`: {}", base.display()))?
            }
            None => toml::Table::new(),
        };
        let inline = if kind == StageKind::Eval {
            let mut merged = recipe.heldout_table.clone().unwrap_or_default();
            merge(&mut merged, stage.config.clone());
            merged
        } else {
            stage.config.clone()
        };
        merge(&mut table, inline);
        let owned = Inject { recipe, dir: &dir, inputs: &inputs }.inject(kind, &mut table);
        for key in &owned {
            if get(&stage.config, key).is_some() {
                bail!("{label}: config key `{key}` is set by the recipe (the stage's inputs and folder); remove it");
            }
        }
        let mut resolved = serde_json::to_value(&table).context("config as JSON")?;
        let mut work = build_work(kind, table).with_context(|| format!("{label}, config"))?;
        if let (Work::Eval { model, .. }, Some(PathOrSpec::Path(path))) = (&mut work, inputs.get("model")) {
            // the evaluated model is part of what the stage did
            *model = path.clone();
            resolved["model"] = serde_json::Value::String(path.to_string_lossy().into_owned());
        }
        let output = kind.makes().map(|_| output_path(kind, &dir));
        if let (Some(want), Some(path)) = (kind.makes(), &output) {
            made.insert(stage.name.clone(), (want, path.clone()));
        }
        order.push(stage.name.clone());
        planned.push(PlannedStage { name: stage.name.clone(), kind, dir, output, work, resolved, heldout: stage.heldout });
    }
    Ok(planned)
}

fn check_stage_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("name `{name}` must be non-empty letters, digits, `-` or `_` (it names the stage's folder)");
    }
    Ok(())
}

/// A resolved input: a path (models, data files) or a dataset spec passed through.
#[derive(Debug, Clone)]
enum PathOrSpec {
    Path(PathBuf),
    Spec(String),
}

impl PathOrSpec {
    fn as_toml(&self) -> toml::Value {
        match self {
            PathOrSpec::Path(p) => toml::Value::String(p.to_string_lossy().into_owned()),
            PathOrSpec::Spec(s) => toml::Value::String(s.clone()),
        }
    }
}

fn resolve_input(value: &str, want: Want, made: &BTreeMap<String, (Want, PathBuf)>, order: &[String]) -> Result<PathOrSpec> {
    if let Some(reference) = value.strip_prefix('@') {
        let Some((makes, path)) = made.get(reference) else {
            let earlier = if order.is_empty() { "none".to_string() } else { order.join(", ") };
            bail!("`{value}` is no earlier stage's output (earlier stages: {earlier})");
        };
        if *makes != want {
            bail!("`{value}` makes {}, not {}", makes.noun(), want.noun());
        }
        return Ok(PathOrSpec::Path(path.clone()));
    }
    match want {
        Want::Model => {
            let path = PathBuf::from(value);
            if !path.exists() {
                bail!("model path `{value}` does not exist{}", if value.starts_with("assets/") { " (run scripts/fetch-assets.sh)" } else { "" });
            }
            Ok(PathOrSpec::Path(path))
        }
        Want::Data => {
            r1kit_datasets::DatasetSpec::parse(value).with_context(|| format!("dataset `{value}`"))?;
            Ok(PathOrSpec::Spec(value.to_string()))
        }
    }
}

fn output_path(kind: StageKind, dir: &Path) -> PathBuf {
    match kind {
        StageKind::Init | StageKind::Convert => dir.join("model"),
        StageKind::Reject => dir.join("accepted.jsonl"),
        _ => dir.join("final"),
    }
}

struct Inject<'a> {
    recipe: &'a Recipe,
    dir: &'a Path,
    inputs: &'a BTreeMap<&'a str, PathOrSpec>,
}

impl Inject<'_> {
    /// Writes the recipe-owned keys into `table` (the stage's config, merged) and the recipe's
    /// seed and device where the config leaves them unset; returns the keys it owns.
    fn inject(&self, kind: StageKind, table: &mut toml::Table) -> Vec<String> {
        let mut owned = vec![];
        let mut force = |table: &mut toml::Table, key: &str, value: toml::Value| {
            set(table, key, value);
            owned.push(key.to_string());
        };
        let path = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned());
        let seed = toml::Value::Integer(self.recipe.seed as i64);
        let device = toml::Value::String(self.recipe.device.clone());
        let input = |k: &str| self.inputs.get(k).map(PathOrSpec::as_toml);
        let default = |table: &mut toml::Table, key: &str, value: toml::Value| {
            if get(table, key).is_none() {
                set(table, key, value);
            }
        };
        match kind {
            StageKind::Init => {
                force(table, "out", path(&self.dir.join("model")));
                if let Some(t) = input("tokenizer") {
                    force(table, "tokenizer", t);
                }
                default(table, "seed", seed);
            }
            StageKind::Sft => {
                force(table, "model.path", input("model").expect("required"));
                force(table, "train.out_dir", path(self.dir));
                if let Some(d) = input("data") {
                    force(table, "data.train", d);
                }
                default(table, "model.device", device);
                default(table, "train.seed", seed);
            }
            StageKind::Grpo => {
                force(table, "model.path", input("model").expect("required"));
                force(table, "run.out", path(self.dir));
                if let Some(d) = input("data") {
                    force(table, "data.train", d);
                }
                default(table, "model.device", device);
                default(table, "run.seed", seed);
            }
            StageKind::Reject => {
                force(table, "model", input("model").expect("required"));
                force(table, "out", path(&self.dir.join("accepted.jsonl")));
                default(table, "device", device);
                default(table, "seed", seed);
            }
            StageKind::Distill => {
                force(table, "teacher.path", input("teacher").expect("required"));
                force(table, "student.path", input("student").expect("required"));
                force(table, "train.out_dir", path(self.dir));
                if let Some(d) = input("data") {
                    force(table, "data.traces", d);
                }
                default(table, "teacher.device", device.clone());
                default(table, "student.device", device);
                default(table, "train.seed", seed.clone());
                default(table, "generate.seed", seed);
            }
            StageKind::Eval => {
                default(table, "seed", seed);
            }
            StageKind::Convert => {
                force(table, "model", input("model").expect("required"));
                force(table, "out", path(&self.dir.join("model")));
                default(table, "dtype", toml::Value::String("f32".into()));
            }
        }
        owned
    }
}

fn build_work(kind: StageKind, table: toml::Table) -> Result<Work> {
    let value = toml::Value::Table(table);
    let clean = |e: toml::de::Error| anyhow!("{}", one_line(&e));
    Ok(match kind {
        StageKind::Init => Work::Init(clap_args::<InitWrap>(value)?.args),
        StageKind::Reject => Work::Reject(clap_args::<RejectWrap>(value)?.args),
        StageKind::Sft => {
            let config = r1kit_train::config::SftConfig::deserialize(value).map_err(clean)?;
            config.validate()?;
            Work::Sft(config)
        }
        StageKind::Grpo => {
            let config = r1kit_grpo::config::GrpoConfig::deserialize(value).map_err(clean)?;
            config.validate().map_err(anyhow::Error::msg)?;
            Work::Grpo(config)
        }
        StageKind::Distill => {
            let config = r1kit_distill::config::DistillConfig::deserialize(value).map_err(clean)?;
            config.validate()?;
            Work::Distill(config)
        }
        StageKind::Convert => {
            let stage = ConvertStage::deserialize(value).map_err(clean)?;
            if stage.dtype != "f32" && stage.dtype != "bf16" {
                bail!("dtype `{}`: expected f32 or bf16", stage.dtype);
            }
            if stage.model.extension().is_none_or(|e| e != "gguf") {
                bail!("model `{}`: a convert stage reads a .gguf file", stage.model.display());
            }
            Work::Convert(stage)
        }
        StageKind::Eval => {
            let spec = HeldoutSpec::deserialize(value).map_err(clean)?;
            spec.validate()?;
            Work::Eval { model: PathBuf::new(), spec }
        }
    })
}

#[derive(Parser)]
#[command(no_binary_name = true)]
struct InitWrap {
    #[command(flatten)]
    args: r1kit_train::command::InitArgs,
}

#[derive(Parser)]
#[command(no_binary_name = true)]
struct RejectWrap {
    #[command(flatten)]
    args: r1kit_distill::RejectArgs,
}

/// A command's options from a TOML table keyed by their long names (`kv_heads = 2` is
/// `--kv-heads 2`): the command's own defaults and checks apply, and an unknown key is an error
/// naming it.
fn clap_args<P: Parser>(value: toml::Value) -> Result<P> {
    let toml::Value::Table(table) = value else { unreachable!("a table") };
    let command = P::command();
    let mut argv: Vec<String> = vec![];
    for (key, value) in &table {
        let Some(arg) = command.get_arguments().find(|a| a.get_id().as_str() == key) else {
            let known: Vec<&str> = command.get_arguments().map(|a| a.get_id().as_str()).filter(|id| *id != "help").collect();
            bail!("unknown key `{key}` (expected one of {})", known.join(", "));
        };
        let flag = format!("--{}", arg.get_long().unwrap_or(key));
        match value {
            toml::Value::Boolean(b) if !arg.get_action().takes_values() => {
                if *b {
                    argv.push(flag);
                }
            }
            toml::Value::Array(items) => {
                let parts: Result<Vec<String>> = items.iter().map(|v| scalar(key, v)).collect();
                argv.push(format!("{flag}={}", parts?.join(",")));
            }
            other => argv.push(format!("{flag}={}", scalar(key, other)?)),
        }
    }
    P::try_parse_from(&argv).map_err(|e| anyhow!("{}", e.to_string().lines().next().unwrap_or("invalid options").trim_start_matches("error: ")))
}

fn scalar(key: &str, value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!("key `{key}`: expected a string, number or boolean"),
    })
}

/// A deserialization error on one line ("unknown field `x`, expected ... in `optimizer`").
fn one_line(e: &toml::de::Error) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value at a dotted key.
pub fn get<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Sets a dotted key, creating (or replacing non-table values by) tables on the way.
pub fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut current = table;
    for part in &parts[..parts.len() - 1] {
        let entry = current.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("a table");
    }
    current.insert(parts[parts.len() - 1].to_string(), value);
}

/// Deep merge: tables merge key by key, anything else in `over` replaces.
pub fn merge(into: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "seed = 3\n[heldout]\ndataset = \"arithmetic:n=10,seed=1\"\n";

    fn plan_text(stages: &str) -> Result<Vec<PlannedStage>> {
        let recipe = parse_recipe(&format!("{HEAD}{stages}"), "t")?;
        plan(&recipe, Path::new("/tmp/run"))
    }

    const INIT: &str = "[[stage]]\nname = \"base\"\nkind = \"init\"\n[stage.config]\nhidden = 32\nlayers = 1\ntokenizer_dataset = \"arithmetic:n=20\"\ntemplate = \"plain\"\n";
    const SFT: &str = "[[stage]]\nname = \"sft1\"\nkind = \"sft\"\nmodel = \"@base\"\n[stage.config.data]\ntrain = \"arithmetic:n=20,traces=true\"\n";

    fn err(stages: &str) -> String {
        format!("{:#}", plan_text(stages).unwrap_err())
    }

    #[test]
    fn a_valid_pipeline_resolves_inputs_folders_and_seed() {
        let reject = "[[stage]]\nname = \"rs\"\nkind = \"reject\"\nmodel = \"@sft1\"\n[stage.config]\ndataset = \"arithmetic:n=5\"\nrewards = [\"math\", \"format\"]\nsamples = 2\n";
        let sft2 = "[[stage]]\nname = \"sft2\"\nkind = \"sft\"\nmodel = \"@sft1\"\ndata = \"@rs\"\n[stage.config.train]\nseed = 7\n";
        let stages = plan_text(&format!("{INIT}{SFT}{reject}{sft2}")).unwrap();
        assert_eq!(stages.len(), 4);
        let Work::Init(init) = &stages[0].work else { panic!() };
        assert_eq!((init.hidden, init.seed, init.out.clone()), (Some(32), 3, PathBuf::from("/tmp/run/base/model")));
        let Work::Sft(sft) = &stages[1].work else { panic!() };
        assert_eq!(sft.model.path, PathBuf::from("/tmp/run/base/model"));
        assert_eq!(sft.train.out_dir, PathBuf::from("/tmp/run/sft1"));
        assert_eq!(sft.train.seed, 3);
        let Work::Reject(r) = &stages[2].work else { panic!() };
        assert_eq!((r.samples, r.rewards.clone(), r.model.clone()), (2, vec!["math".to_string(), "format".into()], PathBuf::from("/tmp/run/sft1/final")));
        let Work::Sft(sft2) = &stages[3].work else { panic!() };
        assert_eq!(sft2.data.train, "/tmp/run/rs/accepted.jsonl");
        assert_eq!(sft2.train.seed, 7, "a stage's own seed wins");
        assert_eq!(stages[3].output, Some(PathBuf::from("/tmp/run/sft2/final")));
    }

    #[test]
    fn bad_recipes_name_the_stage_and_the_key() {
        let e = err(&format!("{INIT}[[stage]]\nname = \"x\"\nkind = \"ppo\"\n"));
        assert!(e.contains("stage `x`") && e.contains("unknown kind `ppo`"), "{e}");
        let e = err(&format!("{INIT}[[stage]]\nname = \"s\"\nkind = \"sft\"\nmodel = \"@sft9\"\n[stage.config.data]\ntrain = \"arithmetic:n=5\"\n"));
        assert!(e.contains("stage `s` (sft), key `model`") && e.contains("`@sft9` is no earlier stage's output (earlier stages: base)"), "{e}");
        let e = err(&format!("{SFT}{INIT}"));
        assert!(e.contains("stage `sft1` (sft), key `model`") && e.contains("earlier stages: none"), "{e}");
        let e = err("[[stage]]\nname = \"s\"\nkind = \"grpo\"\nmodel = \"/no/such/model\"\n[stage.config.data]\ntrain = \"arithmetic:n=5\"\n");
        assert!(e.contains("stage `s` (grpo), key `model`") && e.contains("/no/such/model` does not exist"), "{e}");
        let e = err(&format!("{INIT}{SFT}[stage.config.train]\nepoch = 2\n"));
        assert!(e.contains("stage `sft1` (sft), config") && e.contains("epoch"), "{e}");
        let e = err(&format!("{INIT}[[stage]]\nname = \"s\"\nkind = \"sft\"\nmodel = \"@base\"\ndata = \"@base\"\n"));
        assert!(e.contains("key `data`") && e.contains("`@base` makes a model, not data"), "{e}");
        let e = err(&format!("{INIT}{SFT}[stage.config.train]\nout_dir = \"elsewhere\"\n"));
        assert!(e.contains("stage `sft1` (sft): config key `train.out_dir` is set by the recipe"), "{e}");
        let e = err(&format!("{INIT}[[stage]]\nname = \"d\"\nkind = \"distill\"\nmodel = \"@base\"\n"));
        assert!(e.contains("stage `d` (distill): key `model` is not an input of a distill stage"), "{e}");
        let e = err("[[stage]]\nname = \"base\"\nkind = \"init\"\nmodle = \"x\"\n");
        assert!(e.contains("stage `base`") && e.contains("modle"), "{e}");
        let e = err("[[stage]]\nname = \"base\"\nkind = \"init\"\n[stage.config]\nhiden = 3\n");
        assert!(e.contains("stage `base` (init), config") && e.contains("unknown key `hiden`"), "{e}");
        let e = err(&format!("{INIT}{INIT}"));
        assert!(e.contains("stage `base`: the name is used by an earlier stage"), "{e}");
    }

    #[test]
    fn eval_stages_inherit_the_recipe_heldout_settings() {
        let stages = plan_text(&format!("{INIT}[[stage]]\nname = \"ev\"\nkind = \"eval\"\nmodel = \"@base\"\n[stage.config]\nsamples = 8\n")).unwrap();
        let Work::Eval { model, spec } = &stages[1].work else { panic!() };
        assert_eq!((spec.dataset.as_str(), spec.samples, spec.seed), ("arithmetic:n=10,seed=1", 8, Some(3)));
        assert_eq!(model, Path::new("/tmp/run/base/model"));
        assert_eq!(stages[1].resolved["model"], "/tmp/run/base/model");
        assert_eq!(stages[1].output, None);
    }

    #[test]
    fn merge_is_deep_and_set_creates_tables() {
        let mut a: toml::Table = toml::from_str("[x]\na = 1\nb = 2\n").unwrap();
        merge(&mut a, toml::from_str("[x]\nb = 3\n[y]\nc = 4\n").unwrap());
        set(&mut a, "z.w", toml::Value::Integer(5));
        assert_eq!(get(&a, "x.a").and_then(|v| v.as_integer()), Some(1));
        assert_eq!(get(&a, "x.b").and_then(|v| v.as_integer()), Some(3));
        assert_eq!(get(&a, "y.c").and_then(|v| v.as_integer()), Some(4));
        assert_eq!(get(&a, "z.w").and_then(|v| v.as_integer()), Some(5));
    }
}
