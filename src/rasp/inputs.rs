//! Input sequences to check programs on: all of them when there are few
//! enough, otherwise a seeded random sample.

use crate::value::Value;

/// Number of sequences of length 1..=max_len over `vocab_size` tokens (saturating).
pub fn count_all(vocab_size: usize, max_len: usize) -> u128 {
    let mut total: u128 = 0;
    let mut per_len: u128 = 1;
    for _ in 0..max_len {
        per_len = per_len.saturating_mul(vocab_size as u128);
        total = total.saturating_add(per_len);
    }
    total
}

/// Tokens in all sequences of length 1..=max_len over `vocab_size` tokens
/// (saturating): Σ n · vocab_sizeⁿ.
pub fn count_all_tokens(vocab_size: usize, max_len: usize) -> u128 {
    let mut total: u128 = 0;
    let mut per_len: u128 = 1;
    for n in 1..=max_len {
        per_len = per_len.saturating_mul(vocab_size as u128);
        total = total.saturating_add(per_len.saturating_mul(n as u128));
    }
    total
}

/// Every sequence of length 1..=max_len, shortest first, in vocab order.
pub fn all(vocab: &[Value], max_len: usize) -> impl Iterator<Item = Vec<Value>> + '_ {
    (1..=max_len).flat_map(move |len| {
        let n = vocab.len();
        let total = (n as u128).saturating_pow(len as u32);
        (0..total).map(move |mut k| {
            let mut seq = vec![Value::None; len];
            for slot in seq.iter_mut().rev() {
                *slot = vocab[(k % n as u128) as usize].clone();
                k /= n as u128;
            }
            seq
        })
    })
}

/// A small, fast, seedable generator (SplitMix64): sampling must be reproducible
/// from `--seed` alone, on any machine.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// `n` random sequences; lengths uniform in 1..=max_len, tokens uniform.
pub fn sample(vocab: &[Value], max_len: usize, n: usize, seed: u64) -> Vec<Vec<Value>> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let len = 1 + rng.below(max_len);
            (0..len).map(|_| vocab[rng.below(vocab.len())].clone()).collect()
        })
        .collect()
}

/// `n` random sequences for verification: the even-numbered ones uniform,
/// like [`sample`]'s, the odd-numbered ones built around token pairs
/// (see [`structured`]), so that inputs uniform sampling almost never
/// produces at long lengths (a balanced string of 64 brackets, a first
/// negative balance at the last position) are checked too.
pub fn sample_mixed(vocab: &[Value], max_len: usize, n: usize, seed: u64) -> Vec<Vec<Value>> {
    sample_mixed_iter(vocab, max_len, n, seed).collect()
}

/// [`sample_mixed`]'s sequences, drawn one at a time (verification at long
/// lengths holds a batch, not all of them).
pub fn sample_mixed_iter(
    vocab: &[Value],
    max_len: usize,
    n: usize,
    seed: u64,
) -> impl Iterator<Item = Vec<Value>> + '_ {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(move |k| {
        let len = 1 + rng.below(max_len);
        if k % 2 == 1 && vocab.len() >= 2 {
            structured(vocab, len, &mut rng)
        } else {
            (0..len).map(|_| vocab[rng.below(vocab.len())].clone()).collect()
        }
    })
}

/// A sequence of length `len` (one less where a balanced word cannot fill an
/// odd length) with bracket structure: some disjoint pairs of vocab tokens
/// act as (open, close); each pair gets a balanced word (no prefix has more
/// closes than opens, equal at its end), the words are shuffled into each
/// other and the other tokens fill in. Then one of three: kept balanced; a
/// close with no open appended (the first negative balance at the last
/// position); or cut to a random prefix and filled up with uniform tokens.
/// Counting programs (Dyck, balances, frequency comparisons) turn on exactly
/// these cases.
pub fn structured(vocab: &[Value], len: usize, rng: &mut SplitMix64) -> Vec<Value> {
    // pairs (0,1), (2,3), ... of an order of the vocab are brackets: half the
    // time the vocab's own (sorted) order, all of it paired, which pairs
    // "(" ")", "[" "]" and "{" "}" as they are meant; otherwise a random
    // order and a random number of pairs
    let mut order: Vec<usize> = (0..vocab.len()).collect();
    let pairs = if rng.below(2) == 0 {
        order.len() / 2
    } else {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        1 + rng.below(order.len() / 2)
    };
    let fillers = &order[2 * pairs..];
    let variant = rng.below(3);
    let room = if variant == 1 { len - 1 } else { len };
    let mut filler_count = if fillers.is_empty() { 0 } else { rng.below(room / 4 + 1) };
    let mut word_len = room - filler_count;
    if word_len % 2 == 1 {
        word_len -= 1;
        if !fillers.is_empty() {
            filler_count += 1;
        }
    }
    let mut opens = vec![0usize; pairs];
    for _ in 0..word_len / 2 {
        opens[rng.below(pairs)] += 1;
    }
    // each pair's balanced word as steps (true: open): a random arrangement
    // of k opens and k closes; a close at depth 0 becomes an open, and as
    // many of the last opens as that added become closes (every step after
    // the first of them is then a close, down to depth 0)
    let words: Vec<Vec<bool>> = opens
        .iter()
        .map(|&k| {
            let mut w: Vec<bool> = (0..2 * k).map(|i| i < k).collect();
            for i in (1..w.len()).rev() {
                w.swap(i, rng.below(i + 1));
            }
            let mut depth = 0i64;
            for step in w.iter_mut() {
                if depth == 0 && !*step {
                    *step = true;
                }
                depth += if *step { 1 } else { -1 };
            }
            let mut extra = depth / 2;
            for step in w.iter_mut().rev() {
                if extra == 0 {
                    break;
                }
                if *step {
                    *step = false;
                    extra -= 1;
                }
            }
            w
        })
        .collect();
    // the words shuffled into one another (each in its own order), with fillers
    let mut next = vec![0usize; pairs];
    let mut seq = Vec::with_capacity(len);
    let mut fillers_left = filler_count;
    loop {
        let remaining: Vec<usize> = (0..pairs).filter(|&p| next[p] < words[p].len()).collect();
        let choices = remaining.len() + usize::from(fillers_left > 0);
        if choices == 0 {
            break;
        }
        let pick = rng.below(choices);
        if pick == remaining.len() {
            seq.push(vocab[fillers[rng.below(fillers.len())]].clone());
            fillers_left -= 1;
        } else {
            let p = remaining[pick];
            let open = words[p][next[p]];
            next[p] += 1;
            seq.push(vocab[order[2 * p + usize::from(!open)]].clone());
        }
    }
    match variant {
        0 => {}
        1 => seq.push(vocab[order[2 * rng.below(pairs) + 1]].clone()),
        _ => {
            seq.truncate(rng.below(seq.len() + 1));
            while seq.len() < len {
                seq.push(vocab[rng.below(vocab.len())].clone());
            }
        }
    }
    if seq.is_empty() {
        seq.push(vocab[rng.below(vocab.len())].clone());
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_enumerates_every_sequence_once() {
        let vocab = [Value::Int(0), Value::Int(1), Value::Int(2)];
        let seqs: Vec<_> = all(&vocab, 3).collect();
        assert_eq!(seqs.len() as u128, count_all(3, 3));
        assert_eq!(seqs.len(), 3 + 9 + 27);
        let unique: std::collections::HashSet<_> = seqs.iter().collect();
        assert_eq!(unique.len(), seqs.len());
        assert_eq!(seqs[3], vec![Value::Int(0), Value::Int(0)]);
    }

    /// The running balance of `open` minus `close` tokens, per prefix.
    fn balances(seq: &[Value], open: &Value, close: &Value) -> Vec<i64> {
        seq.iter()
            .scan(0i64, |b, t| {
                *b += i64::from(t == open) - i64::from(t == close);
                Some(*b)
            })
            .collect()
    }

    #[test]
    fn mixed_samples_hold_balanced_and_last_negative_bracket_strings() {
        let vocab: Vec<Value> = ["(", ")", "{", "}"].iter().map(|t| Value::Str(t.to_string())).collect();
        let a = sample_mixed(&vocab, 64, 2000, 3);
        assert_eq!(a, sample_mixed(&vocab, 64, 2000, 3));
        assert!(a.iter().all(|s| !s.is_empty() && s.len() <= 64));
        // with both pairs as brackets, whichever pairs the generator chose
        let pairs = [(&vocab[0], &vocab[1]), (&vocab[2], &vocab[3])];
        let balanced = a
            .iter()
            .filter(|s| s.len() >= 20)
            .filter(|s| {
                pairs
                    .iter()
                    .all(|(o, c)| balances(s, o, c).iter().all(|b| *b >= 0) && balances(s, o, c).last() == Some(&0))
            })
            .count();
        let last_negative = a
            .iter()
            .filter(|s| s.len() >= 20)
            .filter(|s| {
                let first_negative = |o: &Value, c: &Value| balances(s, o, c).iter().position(|b| *b < 0);
                let firsts: Vec<Option<usize>> = pairs.iter().map(|(o, c)| first_negative(o, c)).collect();
                firsts.contains(&Some(s.len() - 1)) && firsts.iter().all(|f| f.is_none_or(|p| p == s.len() - 1))
            })
            .count();
        eprintln!("{balanced} balanced, {last_negative} with the first negative at the end, of 2000");
        // uniform sampling gives almost none of either at these lengths
        assert!(balanced >= 100, "{balanced} balanced");
        assert!(last_negative >= 100, "{last_negative} with the first negative at the end");
    }

    #[test]
    fn sampling_is_reproducible_and_covers_lengths() {
        let vocab = [Value::Int(0), Value::Int(1)];
        let a = sample(&vocab, 4, 200, 7);
        assert_eq!(a, sample(&vocab, 4, 200, 7));
        assert_ne!(a, sample(&vocab, 4, 200, 8));
        for len in 1..=4 {
            assert!(a.iter().any(|s| s.len() == len));
        }
    }
}
