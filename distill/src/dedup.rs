//! Near-duplicate completions: normalized text and word n-gram Jaccard similarity, and the
//! choice of which accepted completions to keep (shortest first, duplicates dropped).

use std::collections::HashSet;

/// Lower-cased, whitespace collapsed: completions that differ only in spacing or case are equal.
pub fn normalize_text(text: &str) -> String {
    text.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

/// The set of word n-grams of the normalized text (the whole text as one gram when shorter).
pub fn ngrams(text: &str, n: usize) -> HashSet<Vec<String>> {
    let words: Vec<String> = normalize_text(text).split(' ').filter(|w| !w.is_empty()).map(String::from).collect();
    let n = n.max(1);
    if words.len() < n {
        return std::iter::once(words).filter(|w| !w.is_empty()).collect();
    }
    words.windows(n).map(<[String]>::to_vec).collect()
}

/// |A ∩ B| / |A ∪ B|; two empty sets are identical (1.0).
pub fn jaccard<T: Eq + std::hash::Hash>(a: &HashSet<T>, b: &HashSet<T>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// How near-duplicates are found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DedupOptions {
    /// Word n-gram size of the Jaccard similarity.
    pub ngram: usize,
    /// Completions at least this similar to a kept one are dropped (1.0: exact normalized
    /// duplicates only).
    pub threshold: f64,
}

impl Default for DedupOptions {
    fn default() -> Self {
        DedupOptions { ngram: 3, threshold: 0.9 }
    }
}

/// Indices of `texts` to keep, in their given order: each is kept unless its normalized text
/// equals, or its n-gram Jaccard similarity reaches `threshold` with, one already kept.
pub fn dedup_indices(texts: &[&str], options: DedupOptions) -> Vec<usize> {
    let mut kept: Vec<(usize, String, HashSet<Vec<String>>)> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let norm = normalize_text(text);
        let grams = ngrams(text, options.ngram);
        let duplicate = kept.iter().any(|(_, n, g)| *n == norm || jaccard(g, &grams) >= options.threshold);
        if !duplicate {
            kept.push((i, norm, grams));
        }
    }
    kept.into_iter().map(|(i, _, _)| i).collect()
}

/// Which of one prompt's accepted completions to write: shortest first (ties keep sampling
/// order), near-duplicates dropped when `dedup` is set, at most `keep_shortest` of them.
/// `lengths` are the completions' token counts.
pub fn select_accepted(texts: &[&str], lengths: &[usize], keep_shortest: Option<usize>, dedup: Option<DedupOptions>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    if keep_shortest.is_some() {
        order.sort_by_key(|&i| (lengths[i], i));
    }
    let order = match dedup {
        Some(options) => {
            let ordered: Vec<&str> = order.iter().map(|&i| texts[i]).collect();
            dedup_indices(&ordered, options).into_iter().map(|k| order[k]).collect()
        }
        None => order,
    };
    order.into_iter().take(keep_shortest.unwrap_or(usize::MAX)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_ngrams() {
        let a = ngrams("the cat sat on the mat", 2);
        let b = ngrams("The  cat sat on a mat", 2);
        // a: {the cat, cat sat, sat on, on the, the mat}; b: {the cat, cat sat, sat on, on a, a mat}
        assert_eq!(a.len(), 5);
        assert!((jaccard(&a, &b) - 3.0 / 7.0).abs() < 1e-12);
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(ngrams("hi", 3).len(), 1, "short texts are one gram");
    }

    #[test]
    fn dedup_drops_normalized_and_near_duplicates_keeps_the_first() {
        let texts = ["12 + 3 = 15 so 15", "12  +  3 =  15 SO 15", "12 + 3 = 15 so the answer is 15", "completely different text here"];
        assert_eq!(dedup_indices(&texts, DedupOptions { ngram: 2, threshold: 1.0 }), vec![0, 2, 3]);
        // at 0.5, text 2 shares 5 of its 9 bigrams with text 0's 6: 5/10 >= 0.5
        assert_eq!(dedup_indices(&texts, DedupOptions { ngram: 2, threshold: 0.5 }), vec![0, 3]);
    }

    #[test]
    fn select_keeps_the_shortest_k_after_dedup() {
        let texts = ["a b c d e", "a b c", "a b c", "x y"];
        let lengths = [5, 3, 3, 2];
        assert_eq!(select_accepted(&texts, &lengths, Some(2), None), vec![3, 1]);
        assert_eq!(select_accepted(&texts, &lengths, Some(3), Some(DedupOptions { ngram: 2, threshold: 1.0 })), vec![3, 1, 0]);
        assert_eq!(select_accepted(&texts, &lengths, None, Some(DedupOptions { ngram: 2, threshold: 1.0 })), vec![0, 1, 3]);
        assert_eq!(select_accepted(&texts, &lengths, None, None), vec![0, 1, 2, 3]);
    }
}
