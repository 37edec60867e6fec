//! Data for r1kit's training stages, with no ML dependency: readers (JSONL, gzip, JSON arrays,
//! Parquet) with field mapping, the record types the stages consume, built-in schemas for the real
//! evaluation sets, prompt templates, seeded task generators with exact answers and R1-format
//! worked solutions, splits, shuffling and de-duplication.
//!
//! Everything is reached through a dataset spec string (see [`spec`] for the grammar):
//!
//! ```no_run
//! use r1kit_datasets::{DatasetSpec, PromptTemplate};
//! let loaded = DatasetSpec::parse("gsm8k?limit=5").unwrap().load().unwrap();
//! let template: PromptTemplate = "r1-zero".parse().unwrap();
//! for record in &loaded.records {
//!     println!("{}", template.render_record(record).prompt);
//! }
//! ```

pub mod builtin;
pub mod command;
pub mod error;
pub mod expr;
pub mod generators;
pub mod mapping;
pub mod parquet_reader;
pub mod reader;
pub mod records;
pub mod rng;
pub mod spec;
pub mod split;
pub mod template;
pub mod writer;

pub use builtin::{Builtin, find_assets_dir};
pub use command::{DataArgs, run_data};
pub use error::{DataError, Location, Unit};
pub use expr::{check_countdown, evaluate};
pub use generators::{Generator, Problem, TraceOptions, TraceStyle};
pub use mapping::{AnswerExtract, FieldMap, Loaded, OnError, RecordKind};
pub use records::{ChatMessage, CodeLanguage, Gold, ReasoningTrace, Record, RlPrompt, SftExample};
pub use spec::{DatasetSpec, load_records};
pub use split::{Epochs, Split, split_of};
pub use template::{PromptTemplate, RenderedExample, RenderedPrompt};
pub use writer::write_jsonl;
