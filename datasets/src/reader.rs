//! Raw readers: JSONL (optionally gzip), JSON arrays and Parquet, each yielding
//! `(Location, serde_json::Value)` one record at a time. Field mapping is in `mapping`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{DataError, Location, Result, Unit};

/// File formats the readers understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object per line; gzip-compressed when the file starts with the gzip magic.
    Jsonl,
    /// One JSON array of objects (gzip too).
    JsonArray,
    Parquet,
}

impl FileFormat {
    /// The format a file name says (`.jsonl`, `.jsonl.gz`, `.json`, `.json.gz`, `.parquet`).
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Some(FileFormat::Jsonl)
        } else if name.ends_with(".json") {
            Some(FileFormat::JsonArray)
        } else if name.ends_with(".parquet") {
            Some(FileFormat::Parquet)
        } else {
            None
        }
    }
}

pub type RawRecord = (Location, Value);

/// Streams the raw records of a file in the given format.
pub fn read_raw(path: &Path, format: FileFormat) -> Result<Box<dyn Iterator<Item = Result<RawRecord>>>> {
    Ok(match format {
        FileFormat::Jsonl => Box::new(JsonlReader::open(path)?),
        FileFormat::JsonArray => Box::new(read_json_array(path)?.into_iter().map(Ok)),
        FileFormat::Parquet => Box::new(crate::parquet_reader::ParquetRows::open(path)?),
    })
}

/// Opens a file, decompressing gzip transparently (detected by its magic bytes, not its name).
pub fn open_maybe_gzip(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|source| DataError::Open { path: path.to_path_buf(), source })?;
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().map_err(|source| DataError::Open { path: path.to_path_buf(), source })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(reader))))
    } else {
        Ok(Box::new(reader))
    }
}

/// Streaming JSONL reader. Blank lines are skipped; a read error (truncated gzip, invalid UTF-8)
/// ends the stream after being reported with the line it happened on.
pub struct JsonlReader {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    line_number: u64,
    buffer: String,
    done: bool,
}

impl JsonlReader {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(JsonlReader {
            path: path.to_path_buf(),
            reader: open_maybe_gzip(path)?,
            line_number: 0,
            buffer: String::new(),
            done: false,
        })
    }

    fn location(&self) -> Location {
        Location { source: self.path.clone(), unit: Unit::Line(self.line_number) }
    }
}

impl Iterator for JsonlReader {
    type Item = Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buffer.clear();
            self.line_number += 1;
            match self.reader.read_line(&mut self.buffer) {
                Ok(0) => self.done = true,
                Ok(_) if self.buffer.trim().is_empty() => continue,
                Ok(_) => {
                    let at = self.location();
                    return Some(match serde_json::from_str::<Value>(&self.buffer) {
                        Ok(value) => Ok((at, value)),
                        Err(e) => Err(DataError::Json { at, message: e.to_string() }),
                    });
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(DataError::Read { at: self.location(), source }));
                }
            }
        }
        None
    }
}

/// Reads a file holding one JSON array of records.
pub fn read_json_array(path: &Path) -> Result<Vec<RawRecord>> {
    let mut text = String::new();
    open_maybe_gzip(path)?.read_to_string(&mut text).map_err(|source| DataError::Read {
        at: Location { source: path.to_path_buf(), unit: Unit::Item(0) },
        source,
    })?;
    let items: Vec<Value> = serde_json::from_str(&text).map_err(|e| DataError::Json {
        at: Location { source: path.to_path_buf(), unit: Unit::Line(e.line() as u64) },
        message: e.to_string(),
    })?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (Location { source: path.to_path_buf(), unit: Unit::Item(i as u64) }, v))
        .collect())
}
