//! Token interning, and sorted multisets of n-grams packed into integers.
//!
//! Segments are short, so sorting a few dozen integer keys and merging two sorted lists is
//! cheap, and neither needs allocation once the buffers have grown.

use std::hash::Hasher;

use rustc_hash::{FxHashMap, FxHasher};

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
/// Token ids are dense, in order of first occurrence; a reference token that the hypothesis
/// does not contain can never match and gets [`UNKNOWN`]. Tokens are found by a 64-bit hash
/// whose hit is confirmed by comparing the bytes; in the unlikely case that two distinct
/// hypothesis tokens share a hash, the vocabulary falls back to binary search over the sorted
/// tokens, so the ids are always exact.
#[derive(Default)]
pub(crate) struct Vocab {
    text: Vec<u8>,
    /// Byte spans of the distinct tokens, by id.
    distinct: Vec<(u32, u32)>,
    by_hash: FxHashMap<u64, u32>,
    /// Set when two distinct tokens share a hash: `distinct` is then sorted and searched.
    sorted: bool,
    order: Vec<u32>,
}

/// Id of a token that the hypothesis does not contain.
pub(crate) const UNKNOWN: u32 = u32::MAX;

#[inline]
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}

impl Vocab {
    fn token(&self, (s, e): (u32, u32)) -> &[u8] {
        &self.text[s as usize..e as usize]
    }

    /// Builds the vocabulary of `tokens` (byte spans into `text`) and writes their ids to `ids`.
    pub(crate) fn build(&mut self, text: &[u8], tokens: &[(u32, u32)], ids: &mut Vec<u32>) {
        self.text.clear();
        self.text.extend_from_slice(text);
        self.distinct.clear();
        self.by_hash.clear();
        self.sorted = false;
        ids.clear();
        for &span in tokens {
            let h = hash_bytes(self.token(span));
            let next = self.distinct.len() as u32;
            let id = *self.by_hash.entry(h).or_insert(next);
            if id == next {
                self.distinct.push(span);
            } else if self.token(self.distinct[id as usize]) != self.token(span) {
                self.build_sorted(tokens, ids);
                return;
            }
            ids.push(id);
        }
    }

    /// The collision fallback: ids are ranks in the sorted list of distinct tokens.
    fn build_sorted(&mut self, tokens: &[(u32, u32)], ids: &mut Vec<u32>) {
        self.sorted = true;
        let text = &self.text;
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
    pub(crate) fn id(&self, token: &[u8]) -> u32 {
        if self.sorted {
            return match self.distinct.binary_search_by(|&span| self.token(span).cmp(token)) {
                Ok(i) => i as u32,
                Err(_) => UNKNOWN,
            };
        }
        match self.by_hash.get(&hash_bytes(token)) {
            Some(&id) if self.token(self.distinct[id as usize]) == token => id,
            _ => UNKNOWN,
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
        assert_eq!(count_matches(&b, &a), 3);
        assert_eq!(count_matches(&a, &set(&[])), 0);
    }

    fn spans(text: &str) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut start = 0u32;
        for piece in text.split(' ') {
            out.push((start, start + piece.len() as u32));
            start += piece.len() as u32 + 1;
        }
        out
    }

    #[test]
    fn vocabulary_ids_by_hash_and_by_sorting_agree() {
        let text = "b a c a b";
        let tokens = spans(text);
        let mut hashed = Vocab::default();
        let mut ids = Vec::new();
        hashed.build(text.as_bytes(), &tokens, &mut ids);
        assert_eq!(ids, [0, 1, 2, 1, 0]);
        assert_eq!(hashed.len(), 3);
        assert_eq!(hashed.id(b"c"), 2);
        assert_eq!(hashed.id(b"d"), UNKNOWN);

        // The fallback taken when two tokens share a hash.
        let mut sorted = Vocab::default();
        sorted.build(text.as_bytes(), &tokens, &mut ids);
        sorted.build_sorted(&tokens, &mut ids);
        assert_eq!(ids, [1, 0, 2, 0, 1]);
        assert_eq!(sorted.id(b"a"), 0);
        assert_eq!(sorted.id(b"c"), 2);
        assert_eq!(sorted.id(b"d"), UNKNOWN);
    }
}
