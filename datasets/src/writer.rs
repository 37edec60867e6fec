//! JSONL writers (gzip when the path ends in `.gz`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::error::{DataError, Result};

/// Writes one JSON object per line; returns how many.
pub fn write_jsonl<'a, T: Serialize + 'a>(path: &Path, items: impl IntoIterator<Item = &'a T>) -> Result<usize> {
    let io = |source| DataError::Write { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = BufWriter::new(File::create(path).map_err(io)?);
    if path.extension().is_some_and(|e| e == "gz") {
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let count = write_lines(&mut encoder, items).map_err(io)?;
        encoder.finish().and_then(|mut f| f.flush()).map_err(io)?;
        Ok(count)
    } else {
        let mut file = file;
        let count = write_lines(&mut file, items).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(count)
    }
}

fn write_lines<'a, T: Serialize + 'a>(out: &mut impl Write, items: impl IntoIterator<Item = &'a T>) -> std::io::Result<usize> {
    let mut count = 0;
    for item in items {
        serde_json::to_writer(&mut *out, item)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}
