//! Choosing the next token from a row of logits: greedy, or sampled after temperature, top-k
//! and top-p (nucleus) filtering, in transformers' order, from a generator seeded per request so
//! a seed repeats its answer.

use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;

#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    Greedy,
    Sample {
        temperature: f64,
        /// 0 keeps every token.
        top_k: usize,
        /// 1.0 keeps every token.
        top_p: f64,
    },
}

pub struct Sampler {
    strategy: Strategy,
    rng: StdRng,
}

/// The index of the largest value (the first of equal ones, as `argmax` does).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(strategy: Strategy, seed: u64) -> Sampler {
        Sampler {
            strategy,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn next(&mut self, logits: &[f32]) -> u32 {
        let Strategy::Sample {
            temperature,
            top_k,
            top_p,
        } = self.strategy
        else {
            return argmax(logits);
        };
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if top_k > 0 {
            order.truncate(top_k);
        }
        let max = logits[order[0]] as f64;
        let mut weights: Vec<f64> = order
            .iter()
            .map(|&i| ((logits[i] as f64 - max) / temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        if top_p < 1.0 {
            // Keep the smallest prefix whose probability reaches top_p (at least one token).
            let mut mass = 0.0;
            let keep = weights
                .iter()
                .position(|w| {
                    mass += w / total;
                    mass >= top_p
                })
                .map_or(weights.len(), |i| i + 1);
            weights.truncate(keep);
            order.truncate(keep);
        }
        match WeightedIndex::new(&weights) {
            Ok(dist) => order[dist.sample(&mut self.rng)] as u32,
            Err(_) => order[0] as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut s = Sampler::new(Strategy::Greedy, 0);
        assert_eq!(s.next(&[0.1, 3.0, -1.0, 3.0]), 1);
    }

    #[test]
    fn top_k_of_one_and_a_tiny_top_p_are_greedy() {
        let logits = [0.5, 2.0, 1.9, -4.0];
        for strategy in [
            Strategy::Sample {
                temperature: 5.0,
                top_k: 1,
                top_p: 1.0,
            },
            Strategy::Sample {
                temperature: 1.0,
                top_k: 0,
                top_p: 1e-6,
            },
        ] {
            let mut s = Sampler::new(strategy, 9);
            for _ in 0..50 {
                assert_eq!(s.next(&logits), 1);
            }
        }
    }

    #[test]
    fn sampling_repeats_for_a_seed_and_spreads_over_likely_tokens() {
        let logits = [1.0, 1.0, 1.0, -30.0];
        let strategy = Strategy::Sample {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        };
        let run = |seed| {
            let mut s = Sampler::new(strategy.clone(), seed);
            (0..40).map(|_| s.next(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        let seen: std::collections::BTreeSet<u32> = run(4).into_iter().collect();
        assert_eq!(seen, [0, 1, 2].into_iter().collect());
    }
}
