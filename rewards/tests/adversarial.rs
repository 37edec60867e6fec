//! Hostile answers finish fast without panicking: time is bounded by capping sizes, exponents,
//! depth and evaluation work, never by signals.

use std::time::Duration;

use r1kit_rewards::{Record, RewardRegistry};

const LIMIT: Duration = Duration::from_millis(100);

/// CPU time of the calling thread: the work a reward does, whatever else loads the machine
/// (wall time on a shared 2-core machine measures the neighbours too).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid out pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Scores `completion` with every built-in rule reward against a few golds; returns the slowest.
fn slowest_score(completion: &str) -> Duration {
    let registry = RewardRegistry::with_builtins();
    let names = ["math", "format", "format_strict", "tag_count", "countdown", "cosine", "overlong", "repetition", "language"];
    let rewards: Vec<_> = names.iter().map(|n| registry.build(n).unwrap()).collect();
    let mut record = Record::with_gold("x^2+2x+1");
    record.extra.insert("nums".into(), serde_json::json!([1, 2, 3, 4]));
    record.extra.insert("target".into(), serde_json::json!(10));
    let mut worst = Duration::ZERO;
    for gold in ["x^2+2x+1", "\\frac{1}{2}", "(1, 2)", "1000"] {
        record.gold = Some(gold.to_string());
        for r in &rewards {
            let t = thread_cpu_time();
            let out = r.score(completion, &record);
            worst = worst.max(thread_cpu_time() - t);
            assert!(out.value.is_finite(), "{} gave {}", r.name(), out.value);
        }
    }
    worst
}

fn assert_fast(label: &str, completion: &str) {
    let worst = slowest_score(completion);
    assert!(worst < LIMIT, "{label}: a reward took {worst:?}");
}

#[test]
fn one_megabyte_strings() {
    assert_fast("1 MB of text", &"lorem ipsum 12 ".repeat(70_000));
    assert_fast("1 MB boxed", &format!("\\boxed{{{}}}", "9".repeat(1 << 20)));
    assert_fast("1 MB answer tag", &format!("<think>a</think><answer>{}</answer>", "1+".repeat(1 << 19)));
    assert_fast("1 MB of braces", &format!("\\boxed{{{}", "{".repeat(1 << 20)));
}

#[test]
fn huge_exponents_and_factorials() {
    for answer in [
        "10^{10^{10^{10}}}",
        "2^{2^{2^{2^{2^{2}}}}}",
        "(10^{4000})^{1000}",
        "100000!",
        "1000!",
        "9^{9^{9}} - 9^{9^{9}}",
        "x^{10^{10}}",
        "(x+1)^{400} + (x+2)^{400} + (x+3)^{400} + (x+4)^{400} + (x+5)^{400}",
        "\\binom{100000}{50000}",
        "\\sqrt[100000]{2}",
    ] {
        assert_fast(answer, &format!("\\boxed{{{answer}}}"));
    }
}

#[test]
fn deep_nesting() {
    let braces = format!("\\boxed{{{}1{}}}", "{".repeat(10_000), "}".repeat(10_000));
    assert_fast("10k nested braces", &braces);
    assert_fast("400 nested braces", &format!("\\boxed{{{}1{}}}", "{".repeat(400), "}".repeat(400)));
    assert_fast("400 nested parens", &format!("\\boxed{{{}1{}}}", "(".repeat(400), ")".repeat(400)));
    assert_fast("nested fracs", &format!("\\boxed{{{}1{}}}", "\\frac{1}{".repeat(100), "}".repeat(100)));
    assert_fast("nested text", &format!("\\boxed{{{}a{}}}", "\\text{".repeat(300), "}".repeat(300)));
    assert_fast("nested sets", &format!("\\boxed{{{}1{}}}", "\\{".repeat(200), "\\}".repeat(200)));
    assert_fast("long list", &format!("\\boxed{{{}}}", vec!["x^2+1"; 150].join(",")));
    let row = vec!["x"; 30].join(" & ");
    assert_fast("big matrix", &format!("\\boxed{{\\begin{{pmatrix}}{}\\end{{pmatrix}}}}", vec![row.as_str(); 30].join("\\\\")));
}

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for _ in 0..300 {
        let len = rng.below(3000);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert_fast("random bytes", &String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn fuzz_latex_like_strings_never_panic() {
    const PIECES: &[&str] = &[
        "\\boxed{", "}", "{", "\\frac", "\\sqrt", "[", "]", "(", ")", "^", "_", "-", "+", "*", "/", "=", ",", "x", "y",
        "e", "i", "\\pi", "\\infty", "\\cup", "\\{", "\\}", "1", "0", "99999999", ".", "!", "|", "\\sin", "\\log_",
        "\\text{", "\\left(", "\\right)", "&", "\\\\", "\\begin{pmatrix}", "\\end{pmatrix}", "<answer>", "</answer>",
        "<think>", "</think>", "####", "the answer is ", "$", " ", "\\dfrac", "%", "^\\circ", "\\binom", "\\le",
    ];
    let mut rng = Rng(42);
    let mut worst = Duration::ZERO;
    // R1KIT_FUZZ_ITERS raises the count for longer local fuzzing runs.
    let iters = std::env::var("R1KIT_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    for _ in 0..iters {
        let n = rng.below(40);
        let s: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        worst = worst.max(slowest_score(&s));
        // Also wrapped, so that extraction reaches the parser.
        worst = worst.max(slowest_score(&format!("\\boxed{{{s}}}")));
    }
    assert!(worst < LIMIT, "slowest {worst:?}");
}

#[test]
fn multibyte_characters_next_to_separators() {
    // Byte-level BPE models emit partial UTF-8 that decodes to U+FFFD; a split at a byte that is
    // not a character boundary once panicked here.
    for answer in ["-\u{FFFD}", "\u{FFFD}=2", "1,\u{e9}", "(\u{4e2d}, 2)", "x=\u{1F600}", "[\u{FFFD}\u{FFFD}]", "\u{FFFD}\\cup\u{FFFD}"] {
        assert_fast(answer, &format!("<think>1+1=2</think><answer>{answer}</answer>"));
        assert_fast(answer, &format!("\\boxed{{{answer}}}"));
    }
}
