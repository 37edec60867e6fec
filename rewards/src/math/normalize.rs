//! Turning an answer as a model or dataset writes it into a canonical string for parsing.

use std::sync::OnceLock;

use regex::Regex;

use super::extract::balanced_prefix;

/// Canonical form of an answer: LaTeX wrappers, spacing, units, currency, percent and degree
/// marks removed; `\dfrac`/`\tfrac` as `\frac`; thousands separators dropped from plain numbers.
pub fn normalize(answer: &str) -> String {
    let mut s = unicode_to_latex(answer.trim());
    s = strip_math_delimiters(&s);
    s = s.replace("{,}", ""); // 1{,}000
    s = thin_space_thousands(&s);
    // Protect `\\` (matrix row breaks) from the `\ ` spacing rule.
    s = s.replace("\\\\", "\u{1}");
    for (from, to) in REPLACEMENTS {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s = s.replace('\u{1}', "\\\\");
    s = unwrap_commands(&s, TEXT_COMMANDS);
    s = degree_marks(&s);
    s = s.replace("\\%", "").replace('%', "");
    s = collapse_spaces(&s);
    s = s.trim_end_matches(['.', ';']).trim().to_string();
    s = strip_leading_words(&s);
    s = strip_units(&s);
    s = strip_currency(&s);
    s = plain_thousands(&s);
    s = choice_letter(&s);
    s.trim().to_string()
}

const REPLACEMENTS: &[(&str, &str)] = &[
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("\\cfrac", "\\frac"),
    ("\\displaystyle", ""),
    ("\\left.", ""),
    ("\\right.", ""),
    ("\\left", ""),
    ("\\right", ""),
    ("\\bigl", ""),
    ("\\bigr", ""),
    ("\\Bigl", ""),
    ("\\Bigr", ""),
    ("\\big", ""),
    ("\\Big", ""),
    ("\\qquad", " "),
    ("\\quad", " "),
    ("\\!", ""),
    ("\\,", " "),
    ("\\;", " "),
    ("\\:", " "),
    ("\\ ", " "),
    ("~", " "),
    ("\\$", ""),
    ("\\infinity", "\\infty"),
    ("\\inf ", "\\infty "),
    ("\\varnothing", "\\emptyset"),
    ("\\le ", "\\leq "),
    ("\\ge ", "\\geq "),
    ("\\lbrace", "\\{"),
    ("\\rbrace", "\\}"),
    ("\\lvert", "|"),
    ("\\rvert", "|"),
    ("\\vert", "|"),
    ("\\mid", "|"),
    ("\\neq", "\\ne"),
    ("\\dots", ""),
    ("\\ldots", ""),
    ("\\cdots", ""),
];

/// Commands whose braced argument is plain text or styling: keep the content.
const TEXT_COMMANDS: &[&str] = &[
    "\\text", "\\textbf", "\\textit", "\\textrm", "\\textnormal", "\\mbox", "\\mathrm", "\\mathbf",
    "\\mathit", "\\mathsf", "\\mathtt", "\\boldsymbol", "\\bm", "\\operatorname", "\\hbox",
];

fn unicode_to_latex(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '−' | '–' | '—' => out.push('-'),
            '×' => out.push_str("\\times "),
            '·' | '⋅' => out.push_str("\\cdot "),
            '÷' => out.push_str("\\div "),
            '√' => out.push_str("\\sqrt"),
            'π' => out.push_str("\\pi "),
            '∞' => out.push_str("\\infty "),
            '≤' => out.push_str("\\leq "),
            '≥' => out.push_str("\\geq "),
            '∪' => out.push_str("\\cup "),
            '∅' => out.push_str("\\emptyset "),
            '°' => out.push_str("^\\circ"),
            '€' | '£' | '¥' | '₹' => {}
            '\u{a0}' | '\u{2009}' | '\u{202f}' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn strip_math_delimiters(s: &str) -> String {
    let mut s = s.replace("\\(", "").replace("\\)", "");
    s = s.replace("\\[", "").replace("\\]", "");
    // A lone `$` is math mode or a currency sign; `\$` is handled later as currency.
    let mut out = String::with_capacity(s.len());
    let mut prev_backslash = false;
    for c in s.chars() {
        if c == '$' && !prev_backslash {
            continue;
        }
        prev_backslash = c == '\\';
        out.push(c);
    }
    out
}

/// `1\,000` and `1\!000` style separators inside numbers.
fn thin_space_thousands(s: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(\d)\\[,!](\d{3})").unwrap());
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut cur = s.to_string();
    // Repeat for 1\,000\,000 (matches cannot overlap within one pass).
    for _ in 0..4 {
        let next = re.replace_all(&cur, "$1$2").into_owned();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// Replaces `\cmd{content}` by `content` for each command, braces balanced.
pub fn unwrap_commands(s: &str, commands: &[&str]) -> String {
    let mut s = s.to_string();
    for cmd in commands {
        let pattern = format!("{cmd}{{");
        // Bounded: each pass removes one occurrence; strings are capped upstream.
        let mut guard = 0;
        while let Some(pos) = s.find(&pattern) {
            guard += 1;
            if guard > 200 {
                break;
            }
            let body_start = pos + pattern.len();
            let Some(body) = balanced_prefix(&s[body_start..]) else { break };
            let body_len = body.len();
            let body = body.to_string();
            s.replace_range(pos..body_start + body_len + 1, &body);
        }
    }
    s
}

fn degree_marks(s: &str) -> String {
    let mut s = s.to_string();
    for mark in ["^{\\circ}", "^\\circ", "\\circ", "\\degree", "^{o}"] {
        if s.contains(mark) {
            s = s.replace(mark, "");
        }
    }
    s
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "x = ..." stays (equations are compared as equations); "so 5" style lead-ins are rare
/// after extraction, but "answer: 5" and "Answer 5" are not.
fn strip_leading_words(s: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    static MEMBER: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(?i)^(?:final answer|answer)\s*[:=]?\s*").unwrap());
    // "x \in [1, 2]" answers "[1, 2]".
    let member = MEMBER.get_or_init(|| Regex::new(r"^[A-Za-z](?:_\{?\w+\}?)?\s*\\in\b\s*").unwrap());
    member.replace(&re.replace(s, ""), "").into_owned()
}

const UNIT_WORDS: &[&str] = &[
    "cm", "mm", "km", "m", "meter", "meters", "metre", "metres", "centimeters", "kilometers",
    "inch", "inches", "in", "ft", "foot", "feet", "yard", "yards", "mile", "miles", "mph", "kg",
    "g", "gram", "grams", "kilograms", "lb", "lbs", "pound", "pounds", "ounce", "ounces", "oz",
    "hour", "hours", "hr", "hrs", "minute", "minutes", "min", "mins", "second", "seconds", "sec",
    "s", "day", "days", "week", "weeks", "month", "months", "year", "years", "dollar", "dollars",
    "cent", "cents", "usd", "percent", "degree", "degrees", "unit", "units", "liter", "liters",
    "l", "ml", "gallon", "gallons", "cup", "cups", "square", "sq", "cubic", "per", "each",
];

/// Drops unit words after a number: "18 dollars", "5\text{ cm}^2", "3 square feet".
fn strip_units(s: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^(.*?[\d}\)])\s*((?:[A-Za-z]+\.?\s*)+)(?:\^\{?[23]\}?)?$").unwrap()
    });
    let Some(caps) = re.captures(s) else { return s.to_string() };
    let words: Vec<&str> = caps[2].split_whitespace().collect();
    let all_units = words.iter().all(|w| {
        let w = w.trim_end_matches('.').to_ascii_lowercase();
        UNIT_WORDS.contains(&w.as_str()) || (w.len() >= 3 && !is_math_word(&w))
    });
    // Require a space or a text unit: "2x" and "3m" without space stay expressions.
    let spaced = caps[2].len() < s.len() - caps[1].len();
    if all_units && (spaced || words.iter().any(|w| w.len() >= 3 && !is_math_word(w))) {
        caps[1].trim().to_string()
    } else {
        s.to_string()
    }
}

fn is_math_word(w: &str) -> bool {
    matches!(
        w,
        "sin" | "cos" | "tan" | "cot" | "sec" | "csc" | "log" | "ln" | "exp" | "sqrt" | "pi" | "arcsin"
            | "arccos" | "arctan" | "infty" | "inf" | "and" | "or" | "mod" | "pmod"
    )
}

fn strip_currency(s: &str) -> String {
    let t = s.trim();
    for prefix in ["USD", "US", "Rs.", "Rs", "€", "£"] {
        if let Some(rest) = t.strip_prefix(prefix) {
            if rest.trim_start().starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
                return rest.trim().to_string();
            }
        }
    }
    t.to_string()
}

/// `1,234,567` -> `1234567` only when the whole answer is such a number (a comma is
/// otherwise a separator of tuples, lists and intervals).
fn plain_thousands(s: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$").unwrap());
    if re.is_match(s) { s.replace(',', "") } else { s.to_string() }
}

/// Multiple-choice answers: "(B)", "B)", "B." -> "B".
fn choice_letter(s: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"^\(?([A-E])[\).:]?$").unwrap());
    match re.captures(s) {
        Some(c) => c[1].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize as n;

    #[test]
    fn latex_wrappers_and_spacing() {
        assert_eq!(n(r"$\dfrac{1}{2}$"), r"\frac{1}{2}");
        assert_eq!(n(r"\tfrac12"), r"\frac12");
        assert_eq!(n(r"\left( 1, 2 \right)"), "( 1, 2 )");
        assert_eq!(n(r"\text{Evelyn}"), "Evelyn");
        assert_eq!(n(r"\mbox{yes}"), "yes");
        assert_eq!(n(r"\mathrm{e}^{2}"), "e^{2}");
        assert_eq!(n(r"3\!\cdot\!4"), r"3\cdot4");
        assert_ne!(n(r"\frac{1}{2}"), n(r"\frac{1}{3}"));
    }

    #[test]
    fn units_currency_percent_degrees() {
        assert_eq!(n(r"18 \text{ dollars}"), "18");
        assert_eq!(n(r"\$18"), "18");
        assert_eq!(n(r"$\$1,000$"), "1000");
        assert_eq!(n("5 cm^2"), "5");
        assert_eq!(n(r"50\%"), "50");
        assert_eq!(n(r"30^\circ"), "30");
        assert_eq!(n(r"30^{\circ}"), "30");
        assert_eq!(n("30°"), "30");
        assert_eq!(n("12 square feet"), "12");
        // Not units: variables written right after a number stay.
        assert_eq!(n("2x"), "2x");
        assert_eq!(n(r"3\sqrt{2}"), r"3\sqrt{2}");
    }

    #[test]
    fn thousands_only_for_plain_numbers() {
        assert_eq!(n("1,234,567"), "1234567");
        assert_eq!(n(r"1\,234"), "1234");
        assert_eq!(n("1{,}234"), "1234");
        assert_eq!(n("(1,100)"), "(1,100)");
        assert_eq!(n("1,2"), "1,2");
    }

    #[test]
    fn choices_and_trailing_period() {
        assert_eq!(n(r"\text{(B)}"), "B");
        assert_eq!(n("C)"), "C");
        assert_eq!(n("7."), "7");
        assert_eq!(n("Answer: 7"), "7");
        assert_eq!(n(r"x \in [1, 2]"), "[1, 2]");
        assert_eq!(n(r"x \infty"), r"x \infty");
    }
}
