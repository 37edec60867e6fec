//! Whether a student's full training state fits in memory, said before training starts.
//!
//! Full AdamW on f32 master weights keeps, per parameter, the weight, its gradient and two
//! moments: 16 bytes (activations and the teacher come on top).

use r1kit_model::config::ModelConfig;

/// Bytes of weights + gradients + AdamW moments per trained parameter (4 x f32).
pub const ADAMW_BYTES_PER_PARAM: u64 = 16;
/// Bytes per parameter of a frozen f32 model (the teacher: weights only).
pub const FROZEN_BYTES_PER_PARAM: u64 = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    pub student_params: u64,
    pub teacher_params: u64,
    /// Student training state plus the teacher's weights, before activations.
    pub needed_bytes: u64,
    pub available_bytes: Option<u64>,
}

impl MemoryPlan {
    pub fn new(student: &ModelConfig, teacher: Option<&ModelConfig>, available_bytes: Option<u64>) -> Self {
        let student_params = student.num_parameters() as u64;
        let teacher_params = teacher.map_or(0, |t| t.num_parameters() as u64);
        MemoryPlan {
            student_params,
            teacher_params,
            needed_bytes: student_params * ADAMW_BYTES_PER_PARAM + teacher_params * FROZEN_BYTES_PER_PARAM,
            available_bytes,
        }
    }

    pub fn fits(&self) -> bool {
        self.available_bytes.is_none_or(|a| self.needed_bytes <= a)
    }

    /// One line for the log; when it does not fit, what to do about it.
    pub fn describe(&self) -> String {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let size = |b: u64| if b < (1u64 << 30) { format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64) } else { format!("{:.2} GiB", gib(b)) };
        let head = format!(
            "student {} params x {} B (f32 weights, grads, AdamW m and v) + teacher {} params x {} B = {} before activations",
            self.student_params, ADAMW_BYTES_PER_PARAM, self.teacher_params, FROZEN_BYTES_PER_PARAM, size(self.needed_bytes)
        );
        match self.available_bytes {
            None => format!("{head}; available memory unknown"),
            Some(a) if self.needed_bytes <= a => format!("{head}; {:.2} GiB available", gib(a)),
            Some(a) => format!(
                "{head}, but only {:.2} GiB is available: full AdamW state does not fit. Use a smaller student shape, freeze parameters (train.freeze), or a machine with more memory",
                gib(a)
            ),
        }
    }
}

/// MemAvailable from /proc/meminfo (None where there is no such file).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_presets_against_a_small_machine() {
        let student = ModelConfig::preset("qwen2.5-1.5b").unwrap();
        let teacher = ModelConfig::preset("llama3.2-1b").unwrap();
        let eight_gib = 8u64 << 30;
        let plan = MemoryPlan::new(&student, Some(&teacher), Some(eight_gib));
        assert!(plan.student_params > 1_400_000_000 && plan.student_params < 1_700_000_000, "{}", plan.student_params);
        assert!(!plan.fits());
        let text = plan.describe();
        assert!(text.contains("does not fit") && text.contains("8.00 GiB"), "{text}");
        let tiny = MemoryPlan::new(&ModelConfig::preset("tiny").unwrap(), None, Some(eight_gib));
        assert!(tiny.fits() && !tiny.describe().contains("does not fit"));
        assert_eq!(tiny.needed_bytes, tiny.student_params * 16);
    }

    #[test]
    fn reads_mem_available() {
        let text = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(parse_mem_available(text), Some(2048 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }
}
