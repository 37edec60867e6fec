//! Python's `json.dumps` on minijinja values, byte for byte: chat templates print tool schemas
//! and arguments with `tojson`, and the rendered text must match transformers'.

use minijinja::value::{Value, ValueKind};

pub(crate) struct DumpOptions {
    pub ensure_ascii: bool,
    /// The indent string; `None` puts everything on one line.
    pub indent: Option<String>,
    /// (item separator, key separator); Python's default depends on `indent`.
    pub separators: Option<(String, String)>,
    pub sort_keys: bool,
}

pub(crate) fn dumps(value: &Value, options: &DumpOptions) -> Result<String, String> {
    let (item_separator, key_separator) = match (&options.separators, &options.indent) {
        (Some(pair), _) => pair.clone(),
        (None, None) => (", ".to_string(), ": ".to_string()),
        (None, Some(_)) => (",".to_string(), ": ".to_string()),
    };
    let writer = Writer {
        options,
        item_separator,
        key_separator,
    };
    let mut out = String::new();
    writer.write(value, 0, &mut out)?;
    Ok(out)
}

struct Writer<'a> {
    options: &'a DumpOptions,
    item_separator: String,
    key_separator: String,
}

impl Writer<'_> {
    fn write(&self, value: &Value, depth: usize, out: &mut String) -> Result<(), String> {
        match value.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => out.push_str(&number(value)?),
            ValueKind::String => write_string(
                value.as_str().unwrap_or_default(),
                self.options.ensure_ascii,
                out,
            ),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter().map_err(|e| e.to_string())?.collect();
                self.write_container(('[', ']'), &items, depth, out, |item, out| {
                    self.write(item, depth + 1, out)
                })?;
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in value.try_iter().map_err(|e| e.to_string())? {
                    let item = value.get_item(&key).map_err(|e| e.to_string())?;
                    entries.push((key_string(&key)?, item));
                }
                if self.options.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.write_container(('{', '}'), &entries, depth, out, |(key, item), out| {
                    write_string(key, self.options.ensure_ascii, out);
                    out.push_str(&self.key_separator);
                    self.write(item, depth + 1, out)
                })?;
            }
            ValueKind::Undefined => return Err("tojson: the value is undefined".to_string()),
            _ => {
                return Err(format!(
                    "tojson: object of type {} is not JSON serializable",
                    value.kind()
                ));
            }
        }
        Ok(())
    }

    /// Python's layout: `[a, b]` on one line, or with `indent` one item a line, closing bracket
    /// at the outer depth; empty containers stay `[]` / `{}`.
    fn write_container<T>(
        &self,
        (open, close): (char, char),
        items: &[T],
        depth: usize,
        out: &mut String,
        mut write_item: impl FnMut(&T, &mut String) -> Result<(), String>,
    ) -> Result<(), String> {
        out.push(open);
        if items.is_empty() {
            out.push(close);
            return Ok(());
        }
        let newline_indent = |level: usize| {
            self.options
                .indent
                .as_ref()
                .map(|unit| format!("\n{}", unit.repeat(level)))
        };
        let inner = newline_indent(depth + 1);
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                out.push_str(&self.item_separator);
            }
            if let Some(prefix) = &inner {
                out.push_str(prefix);
            }
            write_item(item, out)?;
        }
        if let Some(prefix) = newline_indent(depth) {
            out.push_str(&prefix);
        }
        out.push(close);
        Ok(())
    }
}

/// Python's `str(value)`: what Jinja2 prints for `{{ value }}`. Strings print as they are,
/// inside containers as their `repr`.
pub(crate) fn python_str(value: &Value) -> Result<String, String> {
    if let Some(text) = value.as_str() {
        return Ok(text.to_string());
    }
    let mut out = String::new();
    write_python_repr(value, &mut out)?;
    Ok(out)
}

fn write_python_repr(value: &Value, out: &mut String) -> Result<(), String> {
    match value.kind() {
        ValueKind::None => out.push_str("None"),
        ValueKind::Undefined => out.push_str("Undefined"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&python_number(value)?),
        ValueKind::String => write_python_string_repr(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (index, item) in value.try_iter().map_err(|e| e.to_string())?.enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_python_repr(&item, out)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (index, key) in value.try_iter().map_err(|e| e.to_string())?.enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_python_repr(&key, out)?;
                out.push_str(": ");
                write_python_repr(&value.get_item(&key).map_err(|e| e.to_string())?, out)?;
            }
            out.push('}');
        }
        // Plain objects (namespace, loop, macros) print as minijinja renders them.
        _ => out.push_str(&value.to_string()),
    }
    Ok(())
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double one;
/// backslash escapes for the quote, `\\`, `\n`, `\r`, `\t` and other non-printable characters.
fn write_python_string_repr(text: &str, out: &mut String) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            '\u{2028}'
            | '\u{2029}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2060}'..='\u{2064}'
            | '\u{feff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python converts str, int, float, bool and None keys to strings; others are an error.
fn key_string(key: &Value) -> Result<String, String> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::Number => number(key),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::None => Ok("null".to_string()),
        _ => Err(format!(
            "tojson: keys must be str, int, float, bool or None, not {}",
            key.kind()
        )),
    }
}

/// Python's `repr` of a number: integers as digits, floats as [`float_repr`] except that
/// Python prints `inf` / `nan` where JSON has `Infinity` / `NaN`.
fn python_number(value: &Value) -> Result<String, String> {
    let text = number(value)?;
    Ok(match text.as_str() {
        "NaN" => "nan".to_string(),
        "Infinity" => "inf".to_string(),
        "-Infinity" => "-inf".to_string(),
        _ => text,
    })
}

fn number(value: &Value) -> Result<String, String> {
    if value.is_integer() {
        return Ok(value.to_string());
    }
    let x = f64::try_from(value.clone()).map_err(|e| e.to_string())?;
    Ok(float_repr(x))
}

/// `float.__repr__` as json.dumps writes it: shortest round-trip digits, positional notation for
/// exponents in [-4, 16), else `d.ddde+XX`; NaN and infinities as JavaScript names.
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.5e-7".
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let body = if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let point = exponent as usize + 1;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        }
    } else {
        let fraction = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}{fraction}e{exponent_sign}{:02}",
            &digits[..1],
            exponent.abs()
        )
    };
    format!("{sign}{body}")
}

/// A JSON string as Python writes it: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control
/// characters as `\u00XX`; with `ensure_ascii` everything outside printable ASCII as `\uXXXX`
/// (UTF-16 surrogate pairs above U+FFFF).
fn write_string(text: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(json: &str, options: DumpOptions) -> String {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        dumps(&Value::from_serialize(&value), &options).unwrap()
    }

    fn defaults() -> DumpOptions {
        DumpOptions {
            ensure_ascii: false,
            indent: None,
            separators: None,
            sort_keys: false,
        }
    }

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are Python 3.11's repr() of the same floats.
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (123456789.0, "123456789.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (-0.0, "-0.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, expected) in cases {
            assert_eq!(float_repr(x), expected, "repr({x})");
        }
    }

    #[test]
    fn strings_escape_like_python() {
        // json.dumps('a"b\\c\n\t\x01é東🙂<>&', ensure_ascii=False) and ensure_ascii=True
        let value = Value::from("a\"b\\c\n\t\u{1}é東🙂<>&\u{7f}");
        let plain = dumps(&value, &defaults()).unwrap();
        assert_eq!(plain, "\"a\\\"b\\\\c\\n\\t\\u0001é東🙂<>&\u{7f}\"");
        let ascii = dumps(
            &value,
            &DumpOptions {
                ensure_ascii: true,
                ..defaults()
            },
        )
        .unwrap();
        assert_eq!(
            ascii,
            "\"a\\\"b\\\\c\\n\\t\\u0001\\u00e9\\u6771\\ud83d\\ude42<>&\\u007f\""
        );
    }

    #[test]
    fn layout_matches_python() {
        let json = r#"{"b": [1, 2.5, {"x": null}], "a": true, "e": [], "f": {}}"#;
        // serde_json without preserve_order sorts keys on parse, so input order is a, b, e, f.
        assert_eq!(
            dump(json, defaults()),
            r#"{"a": true, "b": [1, 2.5, {"x": null}], "e": [], "f": {}}"#
        );
        assert_eq!(
            dump(
                json,
                DumpOptions {
                    indent: Some("  ".into()),
                    ..defaults()
                }
            ),
            "{\n  \"a\": true,\n  \"b\": [\n    1,\n    2.5,\n    {\n      \"x\": null\n    }\n  ],\n  \"e\": [],\n  \"f\": {}\n}"
        );
        assert_eq!(
            dump(
                json,
                DumpOptions {
                    separators: Some((",".into(), ":".into())),
                    ..defaults()
                }
            ),
            r#"{"a":true,"b":[1,2.5,{"x":null}],"e":[],"f":{}}"#
        );
    }

    #[test]
    fn undefined_is_an_error() {
        assert!(
            dumps(&Value::UNDEFINED, &defaults())
                .unwrap_err()
                .contains("undefined")
        );
    }
}
