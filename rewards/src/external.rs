//! User rewards without recompiling: a long-lived command reads records as JSONL on stdin
//! and answers one score per line on stdout (a number, or a JSON object with "reward").

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::reward::{Record, Reward, RewardError, RewardOutput};

struct Process {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    lines: Receiver<std::io::Result<String>>,
    stderr_tail: Arc<Mutex<String>>,
}

/// Runs `sh -c COMMAND` once and keeps it: each batch is written as JSONL, and exactly one
/// line per record is read back within `timeout` per line; otherwise the process is killed
/// and the batch fails with an error naming the command, the line and its stderr.
pub struct ExternalReward {
    command: String,
    timeout: Duration,
    process: Mutex<Option<Process>>,
}

const STDERR_TAIL_BYTES: usize = 2000;

impl ExternalReward {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn spawn(command: &str, timeout: Duration) -> Result<Self, RewardError> {
        if command.trim().is_empty() {
            return Err(RewardError::BadArgument { name: "external".into(), arg: String::new(), why: "needs a command: external:COMMAND".into() });
        }
        let reward = ExternalReward { command: command.to_string(), timeout, process: Mutex::new(None) };
        *reward.process.lock().unwrap() = Some(reward.start()?);
        Ok(reward)
    }

    fn fail(&self, why: impl Into<String>) -> RewardError {
        RewardError::Failed { name: format!("external `{}`", self.command), why: why.into() }
    }

    fn start(&self) -> Result<Process, RewardError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.fail(format!("cannot start: {e}")))?;
        let stdin = Arc::new(Mutex::new(child.stdin.take().expect("piped stdin")));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    break;
                }
            }
        });
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let tail = stderr_tail.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap();
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
                if t.len() > STDERR_TAIL_BYTES {
                    let mut cut = t.len() - STDERR_TAIL_BYTES;
                    while !t.is_char_boundary(cut) {
                        cut += 1;
                    }
                    t.drain(..cut);
                }
            }
        });
        Ok(Process { child, stdin, lines, stderr_tail })
    }

    fn run_batch(&self, proc: &mut Process, items: &[(&str, &Record)]) -> Result<Vec<RewardOutput>, RewardError> {
        let mut payload = String::new();
        for (completion, record) in items {
            payload.push_str(&request_line(completion, record));
            payload.push('\n');
        }
        // Write from a thread: a command that does not read must not block us past the timeout.
        let stdin = proc.stdin.clone();
        std::thread::spawn(move || {
            let mut s = stdin.lock().unwrap();
            let _ = s.write_all(payload.as_bytes()).and_then(|_| s.flush());
        });
        let mut outs = Vec::with_capacity(items.len());
        for i in 0..items.len() {
            let line = match proc.lines.recv_timeout(self.timeout) {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => return Err(self.fail(format!("reading its output: {e}"))),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.fail(format!("no score for record {} of the batch within {:?}", i + 1, self.timeout)));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50)); // let stderr drain
                    let status = proc.child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_else(|| "closed stdout".into());
                    return Err(self.fail(format!(
                        "exited ({status}) after {i} of {} scores; stderr: {}",
                        items.len(),
                        proc.stderr_tail.lock().unwrap().trim()
                    )));
                }
            };
            outs.push(parse_score(&line).map_err(|why| self.fail(format!("output line {} `{}`: {why}", i + 1, shorten(&line))))?);
        }
        Ok(outs)
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// The record as the command sees it: its extra fields, plus completion, answer, prompt,
/// tests and entry_point.
pub fn request_line(completion: &str, record: &Record) -> String {
    let mut obj: Map<String, Value> = record.extra.clone();
    obj.insert("completion".into(), completion.into());
    for (key, value) in [("answer", &record.gold), ("prompt", &record.prompt), ("tests", &record.tests), ("entry_point", &record.entry_point)] {
        if let Some(v) = value {
            obj.insert(key.into(), v.clone().into());
        }
    }
    Value::Object(obj).to_string()
}

fn parse_score(line: &str) -> Result<RewardOutput, String> {
    let line = line.trim();
    if let Ok(v) = line.parse::<f64>() {
        return if v.is_finite() { Ok(RewardOutput::new(v)) } else { Err("score is not finite".into()) };
    }
    let obj: Value = serde_json::from_str(line).map_err(|_| "not a number or a JSON object".to_string())?;
    let value = obj.get("reward").or_else(|| obj.get("score")).and_then(Value::as_f64).ok_or("JSON object without a numeric \"reward\"")?;
    let reason = obj.get("reason").and_then(Value::as_str).map(str::to_string);
    Ok(RewardOutput { value, reason })
}

impl Reward for ExternalReward {
    fn name(&self) -> &str {
        "external"
    }

    fn score(&self, completion: &str, record: &Record) -> RewardOutput {
        match self.score_batch(&[(completion, record)]) {
            Ok(mut outs) => outs.pop().unwrap_or_else(|| RewardOutput::with_reason(0.0, "no score")),
            Err(e) => RewardOutput::with_reason(0.0, e.to_string()),
        }
    }

    fn score_batch(&self, items: &[(&str, &Record)]) -> Result<Vec<RewardOutput>, RewardError> {
        let mut guard = self.process.lock().unwrap_or_else(|p| p.into_inner());
        let proc = match guard.as_mut() {
            Some(p) => p,
            None => return Err(self.fail("the command failed earlier and was stopped")),
        };
        let result = self.run_batch(proc, items);
        if result.is_err() {
            // Out of sync or dead: stop it so later batches fail clearly instead of misaligning.
            if let Some(mut p) = guard.take() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        result
    }
}

impl Drop for ExternalReward {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.get_mut().ok().and_then(Option::take) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items<'a>(texts: &'a [&'a str], record: &'a Record) -> Vec<(&'a str, &'a Record)> {
        texts.iter().map(|t| (*t, record)).collect()
    }

    #[test]
    fn long_lived_command_scores_batches() {
        // Scores the completion's length, via a JSON reply; one process for two batches.
        let cmd = r#"while IFS= read -r line; do n=$(printf '%s' "$line" | sed 's/.*"completion":"\([^"]*\)".*/\1/' | wc -c); echo "{\"reward\": $n}"; done"#;
        let reward = ExternalReward::spawn(cmd, Duration::from_secs(10)).unwrap();
        let rec = Record::with_gold("1");
        let outs = reward.score_batch(&items(&["ab", "abcd"], &rec)).unwrap();
        assert_eq!(outs.iter().map(|o| o.value).collect::<Vec<_>>(), vec![2.0, 4.0]);
        assert_eq!(reward.score("abc", &rec).value, 3.0);
    }

    #[test]
    fn misbehaving_commands_give_clear_errors() {
        let rec = Record::default();
        let garbage = ExternalReward::spawn("while read l; do echo nope; done", Duration::from_secs(5)).unwrap();
        let err = garbage.score_batch(&items(&["a"], &rec)).unwrap_err().to_string();
        assert!(err.contains("output line 1") && err.contains("nope"), "{err}");

        let dies = ExternalReward::spawn("read l; echo 1; echo boom >&2; exit 3", Duration::from_secs(5)).unwrap();
        let err = dies.score_batch(&items(&["a", "b"], &rec)).unwrap_err().to_string();
        assert!(err.contains("after 1 of 2") && err.contains("boom"), "{err}");
        // Later batches fail clearly rather than reading misaligned scores.
        assert!(dies.score_batch(&items(&["a"], &rec)).unwrap_err().to_string().contains("failed earlier"));

        let slow = ExternalReward::spawn("sleep 5", Duration::from_millis(200)).unwrap();
        let t = std::time::Instant::now();
        let err = slow.score_batch(&items(&["a"], &rec)).unwrap_err().to_string();
        assert!(err.contains("within") && t.elapsed() < Duration::from_secs(3), "{err}");
    }

    #[test]
    fn request_carries_record_fields() {
        let mut rec = Record::with_gold("42");
        rec.extra.insert("id".into(), 7.into());
        let v: Value = serde_json::from_str(&request_line("text", &rec)).unwrap();
        assert_eq!(v["completion"], "text");
        assert_eq!(v["answer"], "42");
        assert_eq!(v["id"], 7);
    }
}
