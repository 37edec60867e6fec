//! Errors of this crate. Every error about a record names where it is: file and line (JSONL),
//! item (JSON array) or row (Parquet), and the field when one is involved.

use std::fmt;
use std::path::PathBuf;

/// Which unit of a file a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 1-based line of a JSONL file.
    Line(u64),
    /// 0-based index in a JSON array file.
    Item(u64),
    /// 0-based row of a Parquet file.
    Row(u64),
    /// 0-based index of a generated record.
    Generated(u64),
}

/// Where a record is: the file (or generator name) and the unit inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: PathBuf,
    pub unit: Unit,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = self.source.display();
        match self.unit {
            Unit::Line(n) => write!(f, "{source}:{n}"),
            Unit::Item(n) => write!(f, "{source}: item {n}"),
            Unit::Row(n) => write!(f, "{source}: row {n}"),
            Unit::Generated(n) => write!(f, "{source}: record {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: cannot open: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    /// Reading failed part-way, e.g. a truncated or corrupt gzip stream.
    #[error("{at}: read error (truncated or corrupt file?): {source}")]
    Read { at: Location, source: std::io::Error },
    #[error("{at}: not valid JSON: {message}")]
    Json { at: Location, message: String },
    #[error("{at}: missing field `{field}`")]
    MissingField { at: Location, field: String },
    #[error("{at}: field `{field}` should be {expected}, found {found}")]
    WrongType { at: Location, field: String, expected: &'static str, found: String },
    #[error("{at}: field `{field}`: {message}")]
    BadValue { at: Location, field: String, message: String },
    #[error("{path}: parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{at}: parquet: {message}")]
    ParquetRow { at: Location, message: String },
    #[error("dataset spec `{spec}`: {message}")]
    Spec { spec: String, message: String },
    #[error("{path}: not found ({hint})")]
    AssetMissing { path: PathBuf, hint: String },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

impl DataError {
    /// The location of a per-record error; `None` for errors about a whole file or spec.
    pub fn location(&self) -> Option<&Location> {
        match self {
            DataError::Read { at, .. }
            | DataError::Json { at, .. }
            | DataError::MissingField { at, .. }
            | DataError::WrongType { at, .. }
            | DataError::BadValue { at, .. }
            | DataError::ParquetRow { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Whether skipping this record and going on makes sense (a bad record, not a broken file).
    pub fn is_record_error(&self) -> bool {
        matches!(
            self,
            DataError::Json { .. }
                | DataError::MissingField { .. }
                | DataError::WrongType { .. }
                | DataError::BadValue { .. }
                | DataError::ParquetRow { .. }
        )
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
