//! Whether a teacher and a student share a vocabulary: the logit modes compare distributions
//! over token ids, which only makes sense when every id means the same token on both sides.

use anyhow::{bail, Result};
use r1kit_model::tokenizer::Tokenizer;

/// The first id whose token differs between the two tokenizers (either side may lack it).
pub fn first_vocab_difference(a: &Tokenizer, b: &Tokenizer) -> Option<(u32, Option<String>, Option<String>)> {
    let n = a.vocab_size().max(b.vocab_size()) as u32;
    (0..n).map(|id| (id, a.id_to_token(id), b.id_to_token(id))).find(|(_, x, y)| x != y)
}

/// Ok when logit KD / on-policy distillation can compare the two models' distributions: the
/// tokenizers map every id to the same token and the models have as many vocabulary rows.
/// The error names both tokenizers, their sizes and the first id that differs.
pub fn check_shared_vocab(teacher: (&str, &Tokenizer, usize), student: (&str, &Tokenizer, usize), mode: &str) -> Result<()> {
    let (t_name, t_tok, t_rows) = teacher;
    let (s_name, s_tok, s_rows) = student;
    if let Some((id, t, s)) = first_vocab_difference(t_tok, s_tok) {
        let show = |x: Option<String>| x.map_or("(none)".to_string(), |t| format!("{t:?}"));
        bail!(
            "mode `{mode}` needs teacher and student to share a vocabulary, but the tokenizers differ: teacher {t_name} has {} ids, student {s_name} has {} ids, and id {id} is {} for the teacher and {} for the student. Use mode = \"traces\" (text is re-tokenized for the student)",
            t_tok.vocab_size(),
            s_tok.vocab_size(),
            show(t),
            show(s)
        );
    }
    if t_rows != s_rows {
        bail!("mode `{mode}`: teacher {t_name} has {t_rows} vocabulary rows and student {s_name} has {s_rows}; the tokenizers agree, but the output layers must have the same size for their distributions to be compared");
    }
    Ok(())
}
