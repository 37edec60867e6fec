//! Chat templates rendered with minijinja, set up like transformers' `_compile_jinja_template`
//! (transformers 5.17): `trim_blocks` and `lstrip_blocks` on, no trailing newline kept, a `tojson`
//! filter that is Python's `json.dumps(ensure_ascii=False)` (Jinja's own escapes HTML), the
//! `raise_exception` and `strftime_now` functions, and Python's str/dict/list methods
//! (`.split`, `.strip`, `.startswith`, `.items()`, ...) through minijinja-contrib's pycompat.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State};
use serde_json::Value as Json;

use super::{ChatMessage, Result, TokenizerError, pyjson, strftime};

const TEMPLATE_NAME: &str = "chat_template";

/// A chat template and the file it came from; compiled on first use, so that a tokenizer whose
/// template minijinja cannot compile still encodes and decodes.
pub(crate) struct ChatTemplate {
    path: PathBuf,
    source: String,
    compiled: OnceLock<std::result::Result<Environment<'static>, String>>,
}

impl ChatTemplate {
    pub(crate) fn new(path: PathBuf, source: String) -> Self {
        ChatTemplate {
            path,
            source,
            compiled: OnceLock::new(),
        }
    }

    fn environment(&self) -> Result<&Environment<'static>> {
        let compiled = self.compiled.get_or_init(|| {
            let mut env = new_environment();
            env.add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(&self.source))
                .map_err(|e| describe(&e))?;
            Ok(env)
        });
        compiled
            .as_ref()
            .map_err(|message| TokenizerError::TemplateSyntax {
                path: self.path.clone(),
                message: message.clone(),
            })
    }

    /// The variables are those transformers passes: `messages`, `add_generation_prompt`,
    /// `tools` and `documents` (none), the named special tokens, then `extra` over them.
    /// The template text as it was read.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        special_tokens: &[(String, String)],
        extra: Option<&serde_json::Map<String, Json>>,
    ) -> Result<String> {
        let env = self.environment()?;
        let mut context: BTreeMap<String, Value> = BTreeMap::new();
        for (field, token) in special_tokens {
            context.insert(field.clone(), Value::from(token.as_str()));
        }
        let messages: Vec<Value> = messages.iter().map(message_value).collect();
        context.insert("messages".into(), Value::from(messages));
        context.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        context.insert("tools".into(), Value::from(()));
        context.insert("documents".into(), Value::from(()));
        for (key, value) in extra.into_iter().flatten() {
            context.insert(key.clone(), json_value(value));
        }
        let render_error = |e: Error| TokenizerError::TemplateRender {
            path: self.path.clone(),
            message: describe(&e),
        };
        let template = env.get_template(TEMPLATE_NAME).map_err(render_error)?;
        template.render(context).map_err(render_error)
    }
}

/// transformers' Jinja environment knows `{% generation %}...{% endgeneration %}`, which marks
/// assistant text (for assistant-token masks) and renders its body unchanged. minijinja does not,
/// so each tag becomes `{% if true %}` / `{% endif %}`, keeping its `-`/`+` whitespace markers
/// and so rendering the same text.
pub(crate) fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (open_marker, body) = split_marker_prefix(inner);
        let (body, close_marker) = split_marker_suffix(body);
        let replacement = match body.trim() {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(keyword) => out.push_str(&format!("{{%{open_marker} {keyword} {close_marker}%}}")),
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

fn split_marker_prefix(inner: &str) -> (&str, &str) {
    match inner.chars().next() {
        Some('-' | '+') => inner.split_at(1),
        _ => ("", inner),
    }
}

fn split_marker_suffix(inner: &str) -> (&str, &str) {
    match inner.chars().last() {
        Some('-' | '+') => inner.split_at(inner.len() - 1),
        _ => (inner, ""),
    }
}

/// The minijinja environment transformers' Jinja2 environment corresponds to.
pub fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python_formatter);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env
}

/// A map that keeps its keys in insertion order, as Python dicts do (minijinja's own maps iterate
/// sorted unless its `preserve_order` feature is on): `message | tojson` and `tools | tojson`
/// must list keys as transformers does.
#[derive(Debug)]
struct OrderedMap(Vec<(String, Value)>);

impl Object for OrderedMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.0
                .iter()
                .map(|(name, _)| Value::from(name.as_str()))
                .collect(),
        )
    }
}

/// A message as transformers passes it: a dict `{"role": ..., "content": ...}` in that order.
fn message_value(message: &ChatMessage) -> Value {
    Value::from_object(OrderedMap(vec![
        ("role".to_string(), Value::from(message.role.as_str())),
        ("content".to_string(), Value::from(message.content.as_str())),
    ]))
}

/// A JSON value as a template value, objects keeping their key order (the order of the
/// `serde_json::Map`, which is the file's order when serde_json's `preserve_order` is on).
fn json_value(json: &Json) -> Value {
    match json {
        Json::Array(items) => Value::from(items.iter().map(json_value).collect::<Vec<_>>()),
        Json::Object(map) => Value::from_object(OrderedMap(
            map.iter()
                .map(|(key, value)| (key.clone(), json_value(value)))
                .collect(),
        )),
        scalar => Value::from_serialize(scalar),
    }
}

/// Prints values as Jinja2 does, through Python's `str()`: `True`, `None`, `2.0`, `['a', 1]`,
/// `{'k': 1.0}`; undefined prints nothing. Strings print as they are.
fn python_formatter(
    out: &mut Output,
    state: &State,
    value: &Value,
) -> std::result::Result<(), Error> {
    match value.kind() {
        ValueKind::String | ValueKind::Undefined => minijinja::escape_formatter(out, state, value),
        _ => {
            let text = pyjson::python_str(value)
                .map_err(|message| Error::new(ErrorKind::InvalidOperation, message))?;
            out.write_str(&text)
                .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
        }
    }
}

/// `json.dumps(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False)` with
/// those four as keyword arguments.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<String, Error> {
    let options = pyjson::DumpOptions {
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
        indent: indent_argument(kwargs.get::<Option<Value>>("indent")?)?,
        separators: separators_argument(kwargs.get::<Option<Value>>("separators")?)?,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    pyjson::dumps(value, &options)
        .map_err(|message| Error::new(ErrorKind::InvalidOperation, message))
}

/// Python's `indent`: none, a number of spaces (negative counts as 0), or the indent string.
fn indent_argument(value: Option<Value>) -> std::result::Result<Option<String>, Error> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Some(text) = value.as_str() {
        return Ok(Some(text.to_string()));
    }
    match value.as_i64() {
        Some(n) => Ok(Some(" ".repeat(n.max(0) as usize))),
        None => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: indent must be an int or a string, not {value}"),
        )),
    }
}

/// Python's `separators`: a pair (item separator, key separator).
fn separators_argument(
    value: Option<Value>,
) -> std::result::Result<Option<(String, String)>, Error> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let parts: Vec<Value> = value
        .try_iter()
        .map(|iter| iter.collect())
        .unwrap_or_default();
    match parts.as_slice() {
        [item, key] if item.as_str().is_some() && key.as_str().is_some() => Ok(Some((
            item.as_str().unwrap_or_default().to_string(),
            key.as_str().unwrap_or_default().to_string(),
        ))),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: separators must be a pair of strings, not {value}"),
        )),
    }
}

/// Templates call `raise_exception("...")` to reject a conversation (e.g. roles out of order).
fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `datetime.now().strftime(format)`, on the UTC clock (this crate has no time zone database;
/// pass `date_string` to templates that use it when the date matters).
fn strftime_now(format: String) -> std::result::Result<String, Error> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime::format_unix_seconds(seconds, &format)
        .map_err(|message| Error::new(ErrorKind::InvalidOperation, message))
}

/// minijinja's message plus the template line, on one line.
fn describe(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    super::one_line(&message)
}

#[cfg(test)]
mod tests {
    use super::rewrite_generation_tags;

    #[test]
    fn generation_tags_become_no_op_blocks() {
        assert_eq!(
            rewrite_generation_tags(
                "a{%- generation -%}b{{ x }}{% endgeneration %}c{% if y %}{% endif %}"
            ),
            "a{%- if true -%}b{{ x }}{% endif %}c{% if y %}{% endif %}"
        );
        assert_eq!(
            rewrite_generation_tags("{{ '{%' }} unclosed {% gen"),
            "{{ '{%' }} unclosed {% gen"
        );
    }
}
