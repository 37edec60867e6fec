//! Finding the final answer in a completion, and the gold answer in a dataset's answer field.

use std::sync::OnceLock;

use regex::Regex;

/// Completions longer than this are only searched in their last part: answers sit at the end,
/// and this bounds the work on adversarial inputs.
pub const MAX_SCANNED_BYTES: usize = 64 * 1024;
/// Extracted answers longer than this are not parsed (only compared byte-for-byte).
pub const MAX_ANSWER_CHARS: usize = 1000;

/// What to do when no explicit final answer is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// No answer: the completion scores 0 (a false positive is worse than a false negative).
    #[default]
    None,
    /// The last number in the completion (GSM8K-style evaluation of base models).
    LastNumber,
    /// The whole completion (after `</think>` if present), for bare-answer tasks.
    WholeText,
}

impl std::str::FromStr for Fallback {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "none" => Ok(Fallback::None),
            "last-number" => Ok(Fallback::LastNumber),
            "whole" => Ok(Fallback::WholeText),
            other => Err(format!("unknown fallback `{other}` (none, last-number, whole)")),
        }
    }
}

/// The final answer of a completion. Priority: `<answer>` after the reasoning (its `\boxed`
/// if it has one), the last `\boxed`/`\fbox`, `#### N`, "the answer is ...", then `fallback`.
pub fn extract_answer(completion: &str, fallback: Fallback) -> Option<String> {
    let text = tail(completion, MAX_SCANNED_BYTES);
    // Tags inside an unclosed or closed <think> are drafts; look only after </think> when present.
    let after_think = match text.rfind("</think>") {
        Some(i) => &text[i + "</think>".len()..],
        None => text,
    };
    if let Some(inner) = last_tagged(after_think, "answer") {
        let inner = inner.trim();
        return Some(last_boxed(inner).unwrap_or_else(|| inner.to_string()));
    }
    if let Some(b) = last_boxed(after_think).or_else(|| last_boxed(text)) {
        return Some(b);
    }
    if let Some(n) = after_hashes(after_think) {
        return Some(n);
    }
    if let Some(a) = answer_is(after_think) {
        return Some(a);
    }
    match fallback {
        Fallback::None => None,
        Fallback::LastNumber => last_number(after_think),
        Fallback::WholeText => Some(after_think.trim().to_string()).filter(|s| !s.is_empty()),
    }
}

/// The gold answer as datasets write it: GSM8K `... #### N`, a MATH solution's last box,
/// or the answer itself (possibly in `$...$`, which normalization strips).
pub fn extract_gold(gold: &str) -> String {
    if let Some(n) = after_hashes(gold) {
        return n;
    }
    if let Some(b) = last_boxed(gold) {
        return b;
    }
    gold.trim().to_string()
}

/// Last `max` bytes of `s`, cut at a char boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Contents of the last `<tag>...</tag>` pair (an unclosed last tag runs to the end).
fn last_tagged<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.rfind(&open)? + open.len();
    let rest = &text[start..];
    Some(match rest.find(&close) {
        Some(end) => &rest[..end],
        None => rest,
    })
}

/// Contents of the last `\boxed{...}`, `\fbox{...}` or `\boxed x`, braces balanced.
pub fn last_boxed(text: &str) -> Option<String> {
    let (pos, cmd_len) = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|cmd| text.rfind(cmd).map(|p| (p, cmd.len())))
        .max_by_key(|(p, _)| *p)?;
    let rest = &text[pos + cmd_len..];
    if let Some(body) = rest.strip_prefix('{') {
        return balanced_prefix(body).map(str::to_string);
    }
    // `\boxed 5` / `\boxed x`: one space-separated token.
    let rest = rest.strip_prefix(' ')?.trim_start();
    let token: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '$').collect();
    Some(token).filter(|t| !t.is_empty())
}

/// The text before the `}` that closes an already-opened `{`; None if it never closes.
pub fn balanced_prefix(body: &str) -> Option<&str> {
    let mut depth = 1usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1, // skip escaped char such as \{ or \}
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&body[..i]);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn after_hashes(text: &str) -> Option<String> {
    let i = text.rfind("####")?;
    let line = text[i + 4..].lines().next().unwrap_or("").trim();
    Some(line.trim_end_matches('.').trim().to_string()).filter(|s| !s.is_empty())
}

fn answer_is(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(?i)the (?:final )?answer is\s*:?\s*").unwrap());
    let m = re.find_iter(text).last()?;
    let line = text[m.end()..].lines().next().unwrap_or("").trim();
    // Prefer the first inline math span, which is where models put the value.
    let value = match inline_math(line) {
        Some(math) => math,
        None => line.trim_end_matches(['.', ',', ';']).trim(),
    };
    Some(value.to_string()).filter(|s| !s.is_empty())
}

fn inline_math(line: &str) -> Option<&str> {
    for (open, close) in [("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")] {
        if let Some(s) = line.find(open) {
            let rest = &line[s + open.len()..];
            if let Some(e) = rest.find(close) {
                return Some(&rest[..e]);
            }
        }
    }
    None
}

fn last_number(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?").unwrap());
    re.find_iter(text).last().map(|m| m.as_str().trim_end_matches(',').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract_answer(s, Fallback::None)
    }

    #[test]
    fn boxed_with_nested_braces_last_wins() {
        assert_eq!(ex(r"first \boxed{1} then \boxed{\frac{1}{\sqrt{2}}}.").as_deref(), Some(r"\frac{1}{\sqrt{2}}"));
        assert_eq!(ex(r"so \fbox{42}").as_deref(), Some("42"));
        assert_eq!(ex(r"so $\boxed 7$").as_deref(), Some("7"));
        assert_eq!(ex(r"unclosed \boxed{3"), None);
    }

    #[test]
    fn answer_tag_wins_over_think() {
        let c = "<think>maybe <answer>5</answer> or \\boxed{6}</think>\n<answer>7</answer>";
        assert_eq!(ex(c).as_deref(), Some("7"));
        let c = "<think>\\boxed{6}</think> <answer>The total is \\boxed{8}.</answer>";
        assert_eq!(ex(c).as_deref(), Some("8"));
        // An <answer> only inside think is not taken when </think> closes it and nothing follows.
        assert_eq!(ex("<think><answer>5</answer></think> done"), None);
    }

    #[test]
    fn hashes_and_answer_is_and_fallbacks() {
        assert_eq!(ex("work...\n#### 1,234\n").as_deref(), Some("1,234"));
        assert_eq!(ex("So the answer is $\\frac{3}{4}$ indeed.").as_deref(), Some("\\frac{3}{4}"));
        assert_eq!(ex("Thus, the final answer is: 12.").as_deref(), Some("12"));
        assert_eq!(ex("we get 3 then 4"), None);
        assert_eq!(extract_answer("we get 3 then 4.5 apples", Fallback::LastNumber).as_deref(), Some("4.5"));
        assert_eq!(extract_answer("<think>x</think> 17", Fallback::WholeText).as_deref(), Some("17"));
    }

    #[test]
    fn gold_forms() {
        assert_eq!(extract_gold("Janet sells 9.\n#### 18"), "18");
        assert_eq!(extract_gold(r"Hence $\boxed{\frac{1}{2}}$."), r"\frac{1}{2}");
        assert_eq!(extract_gold("$5$"), "$5$");
    }

    #[test]
    fn deep_nesting_is_linear() {
        // 60k braces (inside the 64 KiB scan window): linear is milliseconds, quadratic ~4e9 steps; the bound is loose
        // so that a loaded machine cannot fail it
        let deep = format!("\\boxed{{{}1{}}}", "{".repeat(30_000), "}".repeat(30_000));
        let t = std::time::Instant::now();
        assert!(ex(&deep).is_some());
        assert!(t.elapsed().as_millis() < 2000);
    }
}
