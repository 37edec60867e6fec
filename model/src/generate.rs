//! What every decoder shares: left padding of prompt batches and finish reasons. (Decoding
//! itself lives in the sampler crate.)

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop token was produced (it is kept as the last token).
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// Left-pads prompts to one length: returns tokens, positions and validity, row-major `[batch, len]`.
pub fn left_pad(prompts: &[Vec<u32>], pad_id: u32) -> (Vec<u32>, Vec<i64>, Vec<bool>, usize) {
    let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut tokens = Vec::with_capacity(prompts.len() * len);
    let mut positions = Vec::with_capacity(prompts.len() * len);
    let mut valid = Vec::with_capacity(prompts.len() * len);
    for p in prompts {
        let pad = len - p.len();
        tokens.extend(std::iter::repeat_n(pad_id, pad).chain(p.iter().copied()));
        positions.extend(std::iter::repeat_n(0, pad).chain(0..p.len() as i64));
        valid.extend(std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, p.len())));
    }
    (tokens, positions, valid, len)
}
