//! Parquet through the `parquet` crate's row API (no arrow): each row becomes a JSON object so
//! the same field mapping serves every format.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;

use crate::error::{DataError, Location, Result, Unit};
use crate::reader::RawRecord;

pub struct ParquetRows {
    path: PathBuf,
    rows: RowIter<'static>,
    row_number: u64,
}

impl ParquetRows {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| DataError::Open { path: path.to_path_buf(), source })?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| DataError::Parquet { path: path.to_path_buf(), message: e.to_string() })?;
        let reader: Box<dyn FileReader> = Box::new(reader);
        Ok(ParquetRows { path: path.to_path_buf(), rows: RowIter::from_file_into(reader), row_number: 0 })
    }
}

impl Iterator for ParquetRows {
    type Item = Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = self.rows.next()?;
        let at = Location { source: self.path.clone(), unit: Unit::Row(self.row_number) };
        self.row_number += 1;
        Some(match row {
            Ok(row) => Ok((at, row.to_json_value())),
            Err(e) => Err(DataError::ParquetRow { at, message: e.to_string() }),
        })
    }
}
