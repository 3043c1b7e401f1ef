//! Sorted multisets of n-grams packed into integers.
//!
//! Segments are short, so sorting a few dozen integer keys and merging two sorted lists is
//! faster than hashing strings, and it needs no allocation once the buffers have grown.

/// A multiset of n-gram keys, sorted, with its distinct keys and their counts.
#[derive(Debug, Default, Clone)]
pub(crate) struct SortedNgrams {
    keys: Vec<u128>,
    distinct: Vec<u128>,
    counts: Vec<u32>,
}

impl SortedNgrams {
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.distinct.clear();
        self.counts.clear();
    }

    #[inline]
    pub(crate) fn push(&mut self, key: u128) {
        self.keys.push(key);
    }

    /// Sorts the keys and computes the distinct keys with their counts.
    pub(crate) fn sort(&mut self) {
        self.keys.sort_unstable();
        self.distinct.clear();
        self.counts.clear();
        for &k in &self.keys {
            if self.distinct.last() == Some(&k) {
                if let Some(c) = self.counts.last_mut() {
                    *c += 1;
                }
            } else {
                self.distinct.push(k);
                self.counts.push(1);
            }
        }
    }

    /// Number of n-grams, counting repeats.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Number of distinct n-grams.
    pub(crate) fn distinct(&self) -> usize {
        self.distinct.len()
    }

    /// For each distinct key of `self`, its count in `other`, written to `out`.
    pub(crate) fn counts_in(&self, other: &SortedNgrams, out: &mut Vec<u32>) {
        out.clear();
        out.resize(self.distinct.len(), 0);
        let (mut i, mut j) = (0, 0);
        while i < self.distinct.len() && j < other.distinct.len() {
            match self.distinct[i].cmp(&other.distinct[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    out[i] = other.counts[j];
                    i += 1;
                    j += 1;
                }
            }
        }
    }

    /// Sum over distinct keys of `min(count, limit)`, the clipped match count.
    pub(crate) fn clipped_matches(&self, limits: &[u32]) -> u64 {
        self.counts.iter().zip(limits).map(|(&c, &l)| c.min(l) as u64).sum()
    }
}

/// Size of the multiset intersection of two sorted n-gram multisets.
pub(crate) fn count_matches(a: &SortedNgrams, b: &SortedNgrams) -> u64 {
    let (mut i, mut j, mut total) = (0, 0, 0u64);
    while i < a.distinct.len() && j < b.distinct.len() {
        match a.distinct[i].cmp(&b.distinct[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                total += a.counts[i].min(b.counts[j]) as u64;
                i += 1;
                j += 1;
            }
        }
    }
    total
}

/// Interns the tokens of a hypothesis so that n-grams become integer keys.
///
/// Token ids are ranks in the sorted list of distinct hypothesis tokens; a reference token
/// that the hypothesis does not contain can never match and gets [`UNKNOWN`].
#[derive(Default)]
pub(crate) struct Vocab {
    order: Vec<u32>,
    /// Byte spans of the distinct tokens, sorted by their text.
    distinct: Vec<(u32, u32)>,
    text: String,
}

/// Id of a token that the hypothesis does not contain.
pub(crate) const UNKNOWN: u32 = u32::MAX;

impl Vocab {
    /// Builds the vocabulary of `tokens` (spans into `text`) and writes their ids to `ids`.
    pub(crate) fn build(&mut self, text: &str, tokens: &[(u32, u32)], ids: &mut Vec<u32>) {
        self.text.clear();
        self.text.push_str(text);
        let text = self.text.as_str();
        let slice = |&(s, e): &(u32, u32)| &text[s as usize..e as usize];
        self.order.clear();
        self.order.extend(0..tokens.len() as u32);
        self.order.sort_unstable_by(|&x, &y| slice(&tokens[x as usize]).cmp(slice(&tokens[y as usize])));
        self.distinct.clear();
        ids.clear();
        ids.resize(tokens.len(), 0);
        for &i in &self.order {
            let span = tokens[i as usize];
            if self.distinct.last().is_none_or(|last| slice(last) != slice(&span)) {
                self.distinct.push(span);
            }
            ids[i as usize] = (self.distinct.len() - 1) as u32;
        }
    }

    /// Number of distinct tokens.
    pub(crate) fn len(&self) -> usize {
        self.distinct.len()
    }

    /// The id of `token`, or [`UNKNOWN`].
    pub(crate) fn id(&self, token: &str) -> u32 {
        let text = self.text.as_str();
        match self.distinct.binary_search_by(|&(s, e)| text[s as usize..e as usize].cmp(token)) {
            Ok(i) => i as u32,
            Err(_) => UNKNOWN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[u128]) -> SortedNgrams {
        let mut s = SortedNgrams::default();
        for &k in keys {
            s.push(k);
        }
        s.sort();
        s
    }

    #[test]
    fn multiset_intersection_clips_counts() {
        let a = set(&[1, 2, 2, 2, 5]);
        let b = set(&[2, 2, 5, 5, 7]);
        assert_eq!(count_matches(&a, &b), 3);
        let mut out = Vec::new();
        a.counts_in(&b, &mut out);
        assert_eq!(out, [0, 2, 2]);
        assert_eq!(a.clipped_matches(&out), 3);
        assert_eq!(a.len(), 5);
        assert_eq!(a.distinct(), 3);
    }
}
