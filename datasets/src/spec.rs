//! Dataset specs: one string names where records come from and how to read them.
//!
//! ```text
//! SPEC    := SOURCE [ '?' KEY=VALUE ( '&' KEY=VALUE )* ]
//! SOURCE  := BUILTIN                          gsm8k, mmath-en, math500, aime2024, aime2025,
//!                                             humaneval, humaneval-rust
//!          | GENERATOR [ ':' KEY=VALUE ( ',' KEY=VALUE )* ]
//!                                             countdown, arithmetic, word
//!          | ( 'jsonl' | 'json' | 'parquet' ) ':' PATH
//!          | PATH                             format from the extension (.jsonl[.gz], .json, .parquet)
//! ```
//!
//! Options after `?` (any source):
//! - `limit=N`: the first N records; `on_error=skip` skips bad records and counts them
//!   (default `fail`: the first bad record is an error naming file, line and field).
//! - `split=train|heldout`, `heldout=0.1`, `split_salt=0`: keep one side of the deterministic
//!   hash split; `dedup=true`: drop repeated problems; `shuffle=SEED`: seeded order.
//!
//! File options: `kind=rl|code|rust|sft|chat|trace|native` (default: inferred from the first
//! record), `prompt_field`, `answer_field`, `answer=as-is|hashes|boxed`, `completion_field`,
//! `messages_field`, `reasoning_field`, `tests_field`, `entry_point_field`, `id_field`,
//! `solution_field`.
//!
//! Generator options (after `:` or `?`): `n=1000`, `seed=0`, `traces=true`, `error_rate=0.1`,
//! `style=compact|verbose`, and the generator's own knobs (countdown: `count=4`, `numbers=1..99`,
//! `target=1..100`; arithmetic: `digits=2`, `terms=3`, `ops=+-*`; word: `max_number=20`).
//!
//! Examples: `gsm8k?limit=100`, `countdown:n=1000,seed=1,count=3?split=train`,
//! `jsonl:data/x.jsonl?prompt_field=question&answer_field=answer&on_error=skip`.

use std::path::{Path, PathBuf};

use crate::builtin::{Builtin, find_assets_dir};
use crate::error::{DataError, Result};
use crate::generators::{self, Generator, SplitFilter, TraceOptions, TraceStyle};
use crate::mapping::{FieldMap, Loaded, OnError, load_file};
use crate::reader::FileFormat;
use crate::records::Record;
use crate::split::{Split, dedup, filter_split, shuffle};

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Builtin(Builtin),
    File { path: PathBuf, format: FileFormat, fields: FieldMap },
    Generator { generator: Generator, n: usize, seed: u64, traces: Option<TraceOptions> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    pub text: String,
    pub source: Source,
    pub limit: Option<usize>,
    pub on_error: OnError,
    pub split: Option<Split>,
    pub heldout_fraction: f64,
    pub split_salt: u64,
    pub dedup: bool,
    pub shuffle_seed: Option<u64>,
}

impl std::str::FromStr for DatasetSpec {
    type Err = DataError;
    fn from_str(text: &str) -> Result<Self> {
        DatasetSpec::parse(text)
    }
}

impl DatasetSpec {
    pub fn parse(text: &str) -> Result<Self> {
        let fail = |message: String| DataError::Spec { spec: text.to_string(), message };
        let (source_text, query) = match text.split_once('?') {
            Some((s, q)) => (s, Some(q)),
            None => (text, None),
        };
        let mut options: Vec<(String, String)> = Vec::new();
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| fail(format!("option `{pair}` is not KEY=VALUE")))?;
                options.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let (head, arg) = match source_text.split_once(':') {
            Some((h, a)) => (h, Some(a)),
            None => (source_text, None),
        };

        let mut spec = DatasetSpec {
            text: text.to_string(),
            source: Source::Builtin(Builtin::Gsm8k),
            limit: None,
            on_error: OnError::Fail,
            split: None,
            heldout_fraction: 0.1,
            split_salt: 0,
            dedup: false,
            shuffle_seed: None,
        };
        // Options every source understands; the rest go to the source.
        let mut rest = Vec::new();
        for (k, v) in options {
            let parsed = match k.as_str() {
                "limit" => v.parse().map(|n| spec.limit = Some(n)).map_err(|_| ()),
                "on_error" => match v.as_str() {
                    "skip" => Ok(OnError::Skip),
                    "fail" => Ok(OnError::Fail),
                    _ => Err(()),
                }
                .map(|policy| spec.on_error = policy),
                "split" => v.parse().map(|s| spec.split = Some(s)).map_err(|_| ()),
                "heldout" => v.parse().ok().filter(|f| (0.0..=1.0).contains(f)).map(|f| spec.heldout_fraction = f).ok_or(()),
                "split_salt" => v.parse().map(|s| spec.split_salt = s).map_err(|_| ()),
                "dedup" => v.parse().map(|b| spec.dedup = b).map_err(|_| ()),
                "shuffle" => v.parse().map(|s| spec.shuffle_seed = Some(s)).map_err(|_| ()),
                _ => {
                    rest.push((k, v));
                    continue;
                }
            };
            parsed.map_err(|_| fail(format!("bad value `{v}` for `{k}`")))?;
        }

        spec.source = if let Some(generator) = Generator::by_name(head) {
            let mut generator_options: Vec<(String, String)> = Vec::new();
            if let Some(arg) = arg.filter(|a| !a.is_empty()) {
                for pair in arg.split(',') {
                    let (k, v) = pair.split_once('=').ok_or_else(|| fail(format!("generator option `{pair}` is not KEY=VALUE")))?;
                    generator_options.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            generator_options.extend(rest);
            generator_source(generator, &generator_options).map_err(fail)?
        } else if let Some(builtin) = Builtin::by_name(head) {
            if arg.is_some() || !rest.is_empty() {
                let extra = rest.first().map(|(k, _)| k.clone()).unwrap_or_else(|| ":".into());
                return Err(fail(format!("built-in `{head}` takes no option `{extra}`")));
            }
            Source::Builtin(builtin)
        } else {
            let (path, format) = match (head, arg) {
                ("jsonl", Some(p)) => (PathBuf::from(p), FileFormat::Jsonl),
                ("json", Some(p)) => (PathBuf::from(p), FileFormat::JsonArray),
                ("parquet", Some(p)) => (PathBuf::from(p), FileFormat::Parquet),
                _ => {
                    let path = PathBuf::from(source_text);
                    let format = FileFormat::from_path(&path).ok_or_else(|| {
                        fail(format!(
                            "`{source_text}` is no built-in ({}), generator ({}) or file with a known extension",
                            Builtin::ALL.map(|b| b.name()).join(", "),
                            Generator::NAMES.join(", ")
                        ))
                    })?;
                    (path, format)
                }
            };
            Source::File { path, format, fields: field_map(&rest).map_err(fail)? }
        };
        Ok(spec)
    }

    /// Loads with the assets folder found by `find_assets_dir` (only built-ins need it).
    pub fn load(&self) -> Result<Loaded> {
        let assets = match self.source {
            Source::Builtin(_) => find_assets_dir()?,
            _ => PathBuf::new(),
        };
        self.load_with_assets(&assets)
    }

    pub fn load_with_assets(&self, assets_dir: &Path) -> Result<Loaded> {
        // A split or dedup sees every record before `limit` applies.
        let early_limit = if self.split.is_some() || self.dedup || self.shuffle_seed.is_some() { None } else { self.limit };
        let mut loaded = match &self.source {
            Source::Builtin(b) => b.load(assets_dir, self.on_error, early_limit)?,
            Source::File { path, format, fields } => load_file(path, *format, fields, self.on_error, early_limit)?,
            Source::Generator { generator, n, seed, traces } => {
                let filter = self.split.map(|split| SplitFilter { split, heldout_fraction: self.heldout_fraction, salt: self.split_salt });
                let problems = generators::generate(generator, *n, *seed, filter)?;
                let records = match traces {
                    Some(options) => generators::traces(&problems, options, *seed).into_iter().map(Record::Trace).collect(),
                    None => problems.iter().map(|p| Record::Rl(p.to_rl_prompt())).collect(),
                };
                Loaded { records, ..Loaded::default() }
            }
        };
        if let Some(split) = self.split {
            loaded.records = filter_split(std::mem::take(&mut loaded.records), split, self.heldout_fraction, self.split_salt);
        }
        if self.dedup {
            dedup(&mut loaded.records);
        }
        if let Some(seed) = self.shuffle_seed {
            shuffle(&mut loaded.records, seed);
        }
        if let Some(limit) = self.limit {
            loaded.records.truncate(limit);
        }
        Ok(loaded)
    }
}

fn generator_source(mut generator: Generator, options: &[(String, String)]) -> std::result::Result<Source, String> {
    let (mut n, mut seed, mut traces, mut trace_options) = (1000usize, 0u64, false, TraceOptions::default());
    for (k, v) in options {
        let bad = || format!("bad value `{v}` for `{k}`");
        match k.as_str() {
            "n" => n = v.parse().map_err(|_| bad())?,
            "seed" => seed = v.parse().map_err(|_| bad())?,
            "traces" => traces = v.parse().map_err(|_| bad())?,
            "error_rate" => {
                trace_options.error_rate = v.parse().ok().filter(|p| (0.0..=1.0).contains(p)).ok_or_else(bad)?;
            }
            "style" => trace_options.style = v.parse::<TraceStyle>()?,
            _ => generator.set(k, v)?,
        }
    }
    Ok(Source::Generator { generator, n, seed, traces: traces.then_some(trace_options) })
}

fn field_map(options: &[(String, String)]) -> std::result::Result<FieldMap, String> {
    let mut map = FieldMap::default();
    for (k, v) in options {
        let v = v.clone();
        match k.as_str() {
            "kind" => map.kind = Some(v.parse()?),
            "prompt_field" => map.prompt_field = v,
            "answer_field" => map.answer_field = v,
            "answer" => map.answer_extract = v.parse()?,
            "completion_field" => map.completion_field = v,
            "messages_field" => map.messages_field = v,
            "reasoning_field" => map.reasoning_field = v,
            "tests_field" => map.tests_field = v,
            "entry_point_field" => map.entry_point_field = v,
            "id_field" => map.id_field = Some(v),
            "solution_field" => map.solution_field = Some(v),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(map)
}

/// Parses and loads a spec; the records only.
pub fn load_records(spec: &str) -> Result<Vec<Record>> {
    Ok(DatasetSpec::parse(spec)?.load()?.records)
}
