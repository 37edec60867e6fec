//! Which parameters train: freezing by name pattern, and which ones weight decay skips.
//!
//! Patterns are checkpoint names (`model.layers.0.self_attn.q_proj.weight`) with `*` matching any
//! run of characters, e.g. `model.embed_tokens.weight`, `model.layers.*.mlp.*`, `*norm*`.

/// Whether `name` matches `pattern` (`*` matches any run of characters, including dots).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Classic iterative wildcard match with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Parameters matching any of `frozen` keep their values; the others train.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Freeze {
    pub patterns: Vec<String>,
}

impl Freeze {
    pub fn new(patterns: &[String]) -> Self {
        Freeze { patterns: patterns.to_vec() }
    }

    pub fn is_frozen(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, name))
    }

    /// Errors when a pattern matches no parameter (a typo would silently train everything).
    pub fn check_against<'a>(&self, names: impl IntoIterator<Item = &'a str> + Clone) -> Result<(), String> {
        for pattern in &self.patterns {
            if !names.clone().into_iter().any(|n| glob_match(pattern, n)) {
                return Err(format!("freeze pattern `{pattern}` matches no parameter"));
            }
        }
        Ok(())
    }
}

/// Hugging Face Trainer's rule (`get_decay_parameter_names`): biases and norm weights get no
/// weight decay.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("norm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob_match("model.layers.*.mlp.*", "model.layers.3.mlp.up_proj.weight"));
        assert!(!glob_match("model.layers.*.mlp.*", "model.layers.3.self_attn.q_proj.weight"));
        assert!(glob_match("*norm*", "model.layers.0.input_layernorm.weight"));
        assert!(glob_match("model.embed_tokens.weight", "model.embed_tokens.weight"));
        assert!(!glob_match("model.embed_tokens", "model.embed_tokens.weight"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn freeze_rejects_patterns_matching_nothing() {
        let names = ["model.embed_tokens.weight", "model.norm.weight"];
        assert!(Freeze::new(&["model.embed*".into()]).check_against(names).is_ok());
        let err = Freeze::new(&["model.embedd*".into()]).check_against(names).unwrap_err();
        assert!(err.contains("model.embedd*"), "{err}");
    }

    #[test]
    fn decay_skips_biases_and_norms() {
        assert!(decays("model.layers.0.self_attn.q_proj.weight"));
        assert!(!decays("model.layers.0.self_attn.q_proj.bias"));
        assert!(!decays("model.layers.0.post_attention_layernorm.weight"));
        assert!(!decays("model.norm.weight"));
    }
}
