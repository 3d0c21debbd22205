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
