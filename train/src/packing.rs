//! Tokenized examples with their loss mask, packed into rows of a batch.
//!
//! Packing puts several short examples in one row; each keeps its own segment id (attention stays
//! inside the example, see `AttentionMask::causal_segments`) and its positions restart at 0, so a
//! packed row computes exactly what the examples would compute alone.

/// One training example: its tokens and which of them the loss trains on (completion tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    pub tokens: Vec<u32>,
    /// `trained[i]`: token `i` is a target (predicted from the tokens before it).
    pub trained: Vec<bool>,
}

impl TokenizedExample {
    /// A prompt followed by a completion; the loss covers the completion only.
    pub fn prompt_completion(prompt: &[u32], completion: &[u32]) -> Self {
        let tokens = [prompt, completion].concat();
        let trained = (0..tokens.len()).map(|i| i >= prompt.len()).collect();
        TokenizedExample { tokens, trained }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Targets the loss sees (the first token has no prefix to be predicted from).
    pub fn loss_tokens(&self) -> usize {
        self.trained.iter().skip(1).filter(|&&t| t).count()
    }

    /// Keeps the first `max_len` tokens (as TRL truncates).
    pub fn truncated(mut self, max_len: usize) -> Self {
        self.tokens.truncate(max_len);
        self.trained.truncate(max_len);
        self
    }
}

/// A `[batch, seq]` block ready for the forward: row-major tokens, positions, segment ids
/// (0 = padding), next-token targets and the loss weight of each position (1 where the next token
/// is trained on, 0 elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBatch {
    pub batch: usize,
    pub seq: usize,
    pub tokens: Vec<u32>,
    pub positions: Vec<i64>,
    pub segments: Vec<u32>,
    pub targets: Vec<u32>,
    pub loss_mask: Vec<f32>,
}

impl PackedBatch {
    pub fn loss_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m > 0.0).count()
    }

    /// Rows times sequence length: the tokens the forward computes, padding included.
    pub fn padded_tokens(&self) -> usize {
        self.batch * self.seq
    }
}

/// Groups examples (by index, in order) into rows of at most `row_len` tokens, first fit: each
/// example goes to the first open row with room, else opens a new one. Without packing every
/// example has its own row.
pub fn assign_rows(lengths: &[usize], row_len: usize, packing: bool) -> Vec<Vec<usize>> {
    let mut rows: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, &len) in lengths.iter().enumerate() {
        let slot = if packing { rows.iter_mut().find(|(used, _)| used + len <= row_len) } else { None };
        match slot {
            Some((used, members)) => {
                *used += len;
                members.push(i);
            }
            None => rows.push((len, vec![i])),
        }
    }
    rows.into_iter().map(|(_, members)| members).collect()
}

/// Builds the block for `rows` (indices into `examples`), padded to the longest row rounded up to
/// a multiple of `pad_multiple` (fewer distinct shapes for the backends that tune per shape).
pub fn build_batch(examples: &[TokenizedExample], rows: &[Vec<usize>], pad_multiple: usize, pad_id: u32) -> PackedBatch {
    let longest = rows.iter().map(|r| r.iter().map(|&i| examples[i].len()).sum::<usize>()).max().unwrap_or(0);
    let seq = longest.div_ceil(pad_multiple.max(1)) * pad_multiple.max(1);
    let n = rows.len() * seq;
    let mut out = PackedBatch {
        batch: rows.len(),
        seq,
        tokens: vec![pad_id; n],
        positions: vec![0; n],
        segments: vec![0; n],
        targets: vec![pad_id; n],
        loss_mask: vec![0.0; n],
    };
    for (r, members) in rows.iter().enumerate() {
        let mut at = r * seq;
        for (k, &i) in members.iter().enumerate() {
            let example = &examples[i];
            for (p, &token) in example.tokens.iter().enumerate() {
                out.tokens[at + p] = token;
                out.positions[at + p] = p as i64;
                out.segments[at + p] = k as u32 + 1;
                if p + 1 < example.len() {
                    out.targets[at + p] = example.tokens[p + 1];
                    out.loss_mask[at + p] = if example.trained[p + 1] { 1.0 } else { 0.0 };
                }
            }
            at += example.len();
        }
    }
    out
}

/// Splits rows into micro-batches whose padded size (rows x longest row) stays within
/// `token_budget`; a single row longer than the budget still makes a micro-batch of its own.
pub fn micro_batches(examples: &[TokenizedExample], rows: Vec<Vec<usize>>, token_budget: usize, pad_multiple: usize, pad_id: u32) -> Vec<PackedBatch> {
    let row_len = |r: &Vec<usize>| -> usize {
        let len: usize = r.iter().map(|&i| examples[i].len()).sum();
        len.div_ceil(pad_multiple.max(1)) * pad_multiple.max(1)
    };
    let mut out = Vec::new();
    let mut current: Vec<Vec<usize>> = Vec::new();
    let mut longest = 0;
    for row in rows {
        let len = row_len(&row);
        let grown = longest.max(len);
        if !current.is_empty() && grown * (current.len() + 1) > token_budget {
            out.push(build_batch(examples, &current, pad_multiple, pad_id));
            current.clear();
            longest = 0;
        }
        longest = longest.max(len);
        current.push(row);
    }
    if !current.is_empty() {
        out.push(build_batch(examples, &current, pad_multiple, pad_id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_tokens_are_not_trained() {
        let e = TokenizedExample::prompt_completion(&[10, 11, 12], &[20, 21]);
        assert_eq!(e.trained, vec![false, false, false, true, true]);
        assert_eq!(e.loss_tokens(), 2);
        let b = build_batch(&[e], &[vec![0]], 1, 0);
        // position 2 predicts 20, position 3 predicts 21, position 4 predicts nothing
        assert_eq!(b.targets[..4], [11, 12, 20, 21]);
        assert_eq!(b.loss_mask, vec![0.0, 0.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn packed_rows_restart_positions_and_separate_segments() {
        let a = TokenizedExample::prompt_completion(&[1, 2], &[3]);
        let b = TokenizedExample::prompt_completion(&[4], &[5, 6]);
        let c = TokenizedExample::prompt_completion(&[7, 8, 9, 10], &[11]);
        let examples = vec![a, b, c];
        let rows = assign_rows(&examples.iter().map(|e| e.len()).collect::<Vec<_>>(), 6, true);
        assert_eq!(rows, vec![vec![0, 1], vec![2]]);
        let batch = build_batch(&examples, &rows, 4, 0);
        assert_eq!((batch.batch, batch.seq), (2, 8));
        assert_eq!(batch.tokens[..8], [1, 2, 3, 4, 5, 6, 0, 0]);
        assert_eq!(batch.positions[..8], [0, 1, 2, 0, 1, 2, 0, 0]);
        assert_eq!(batch.segments[..8], [1, 1, 1, 2, 2, 2, 0, 0]);
        // the last token of example a must not predict the first of b
        assert_eq!(batch.loss_mask[..8], [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(batch.loss_tokens(), 1 + 2 + 1);
        assert_eq!(assign_rows(&[3, 3, 5], 6, false), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn micro_batches_respect_the_token_budget() {
        let examples: Vec<TokenizedExample> =
            [3usize, 5, 2, 8, 4].iter().map(|&n| TokenizedExample::prompt_completion(&vec![1; n - 1], &[2])).collect();
        let rows = assign_rows(&examples.iter().map(|e| e.len()).collect::<Vec<_>>(), 8, false);
        let mbs = micro_batches(&examples, rows, 16, 1, 0);
        assert!(mbs.iter().all(|b| b.padded_tokens() <= 16), "{:?}", mbs.iter().map(|b| (b.batch, b.seq)).collect::<Vec<_>>());
        assert_eq!(mbs.iter().map(|b| b.batch).sum::<usize>(), 5);
        assert_eq!(mbs.iter().map(|b| b.loss_tokens()).sum::<usize>(), 5);
    }
}
