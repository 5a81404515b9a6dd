//! Latency bookkeeping: every measured operation's duration in microseconds, merged across
//! workers and sorted once at the end. Exact percentiles from a few hundred thousand samples cost
//! a few megabytes, which is cheaper to reason about than a bucketed histogram.

use serde::Serialize;

/// What one worker saw during a measured phase.
#[derive(Default)]
pub struct Recorder {
    pub latencies_us: Vec<u64>,
    pub http_requests: u64,
    pub warmup_requests: u64,
    pub warmup_ops: u64,
    pub warmup_errors: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

const MAX_ERROR_SAMPLES: usize = 5;

impl Recorder {
    pub fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(message);
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        self.http_requests += other.http_requests;
        self.warmup_requests += other.warmup_requests;
        self.warmup_ops += other.warmup_ops;
        self.warmup_errors += other.warmup_errors;
        self.errors += other.errors;
        for sample in other.error_samples {
            if self.error_samples.len() < MAX_ERROR_SAMPLES {
                self.error_samples.push(sample);
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: u64,
}

/// Nearest-rank percentiles over `sorted` (ascending); `None` when nothing succeeded.
pub fn summarize(sorted: &[u64]) -> Option<Latency> {
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    let rank = |q: f64| {
        let n = sorted.len();
        let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        sorted[idx]
    };
    let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
    Some(Latency {
        min,
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max,
        mean: (sum / sorted.len() as u128) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        let s = summarize(&v).unwrap();
        assert_eq!((s.min, s.p50, s.p90, s.p99, s.max), (1, 50, 90, 99, 100));
        assert_eq!(s.mean, 50);
        let one = summarize(&[7]).unwrap();
        assert_eq!((one.p50, one.p99), (7, 7));
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn merge_caps_error_samples() {
        let mut a = Recorder::default();
        for i in 0..4 {
            a.error(format!("a{i}"));
        }
        let mut b = Recorder::default();
        for i in 0..4 {
            b.error(format!("b{i}"));
        }
        b.latencies_us.push(3);
        a.merge(b);
        assert_eq!(a.errors, 8);
        assert_eq!(a.error_samples.len(), MAX_ERROR_SAMPLES);
        assert_eq!(a.latencies_us, vec![3]);
    }
}
