//! Per-step metrics: one JSON object per line in `metrics.jsonl`, a one-line progress report, and
//! the NaN / inf check that stops a run.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value};

/// Appends metric lines; opened for a resumed run, it first drops lines of steps after the
/// checkpoint (they belong to the interrupted trajectory and will be recomputed).
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    pub fn open(path: &Path, resume_step: Option<u64>) -> Result<Self> {
        let kept: Vec<String> = match (resume_step, path.exists()) {
            (Some(step), true) => {
                let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
                let mut kept = Vec::new();
                for line in BufReader::new(file).lines() {
                    let line = line?;
                    let line_step = serde_json::from_str::<Value>(&line).ok().and_then(|v| v.get("step")?.as_u64());
                    // A torn last line (killed mid-write) has no step and is dropped too.
                    if line_step.is_some_and(|s| s <= step) {
                        kept.push(line);
                    }
                }
                kept
            }
            _ => vec![],
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        for line in kept {
            writeln!(file, "{line}")?;
        }
        Ok(MetricsLog { path: path.to_path_buf(), file })
    }

    /// Writes one line (flushed, so a killed run keeps every finished step).
    pub fn write(&mut self, record: &Map<String, Value>) -> Result<()> {
        writeln!(self.file, "{}", Value::Object(record.clone())).with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }
}

/// The names of non-finite values among `values`, for the stop message.
pub fn non_finite(values: &[(&str, f64)]) -> Vec<String> {
    values.iter().filter(|(_, v)| !v.is_finite()).map(|(k, v)| format!("{k}={v}")).collect()
}

/// `step 12/100 | loss 2.3412 | lr 1.20e-4 | grad 0.83 | 5.1k tok/s | 00:42 elapsed, ~05:10 left`
pub fn progress_line(step: u64, total: u64, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64, elapsed_s: f64) -> String {
    let left = if step > 0 { elapsed_s / step as f64 * total.saturating_sub(step) as f64 } else { 0.0 };
    format!(
        "step {step}/{total} | loss {loss:.4} | lr {lr:.2e} | grad {grad_norm:.3} | {} tok/s | {} elapsed, ~{} left",
        human(tokens_per_s),
        clock(elapsed_s),
        clock(left)
    )
}

fn human(x: f64) -> String {
    if x >= 1e3 { format!("{:.1}k", x / 1e3) } else { format!("{x:.0}") }
}

fn clock(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 { format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) } else { format!("{:02}:{:02}", s / 60, s % 60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(step: u64) -> Map<String, Value> {
        serde_json::json!({"step": step, "loss": 1.0 / step as f64}).as_object().unwrap().clone()
    }

    #[test]
    fn resume_drops_lines_after_the_checkpoint_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::open(&path, None).unwrap();
        for s in 1..=5 {
            log.write(&line(s)).unwrap();
        }
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"step\": 6, \"lo");
        std::fs::write(&path, text).unwrap();
        let mut log = MetricsLog::open(&path, Some(3)).unwrap();
        log.write(&line(4)).unwrap();
        let steps: Vec<u64> = std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
    }

    #[test]
    fn non_finite_values_are_named() {
        assert!(non_finite(&[("loss", 1.0), ("grad_norm", 3.0)]).is_empty());
        assert_eq!(non_finite(&[("loss", f64::NAN), ("grad_norm", f64::INFINITY)]), vec!["loss=NaN", "grad_norm=inf"]);
        let p = progress_line(10, 100, 2.5, 1e-4, 0.5, 5100.0, 42.0);
        assert!(p.starts_with("step 10/100 | loss 2.5000 | lr 1.00e-4") && p.contains("5.1k tok/s") && p.contains("~06:18 left"), "{p}");
    }
}
