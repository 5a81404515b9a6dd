//! Per-endpoint rate limits (`limit: {calls, renewal_period}`), counted in this process.
//!
//! MLflow counts per client IP and per worker process, and only on its own invocation routes;
//! mlox counts per endpoint for every caller and on `/v1/*` too, so `calls: 10` means ten
//! calls to the endpoint per period. The window is fixed, as in the `limits` library's default
//! strategy MLflow uses.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Limit;

#[derive(Debug)]
pub struct RateLimiter {
    calls: u64,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u64,
}

/// A refused call: when the current window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub retry_after: Duration,
}

impl RateLimiter {
    pub fn new(limit: &Limit) -> Self {
        RateLimiter {
            calls: limit.calls,
            window: limit.window,
            state: Mutex::new(Window {
                started: Instant::now(),
                used: 0,
            }),
        }
    }

    /// Counts one call, or says how long until the next one is allowed.
    pub fn acquire(&self) -> Result<(), Exceeded> {
        self.acquire_at(Instant::now())
    }

    fn acquire_at(&self, now: Instant) -> Result<(), Exceeded> {
        // A poisoned lock only means another request panicked mid-count; the count is still
        // a number, so keep using it.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.started);
        if elapsed >= self.window {
            // Windows are aligned to the first one so a steady caller sees regular resets.
            let windows = elapsed.as_nanos() / self.window.as_nanos().max(1);
            let advance = self.window.as_nanos().saturating_mul(windows);
            state.started += Duration::from_nanos(u64::try_from(advance).unwrap_or(u64::MAX));
            state.used = 0;
        }
        if state.used < self.calls {
            state.used += 1;
            Ok(())
        } else {
            let ends = state.started + self.window;
            Err(Exceeded {
                retry_after: ends.saturating_duration_since(now),
            })
        }
    }

    /// The limit in the words of slowapi's message ("10 per 1 minute").
    pub fn describe(&self, limit: &Limit) -> String {
        let period = limit.renewal_period.trim();
        if period.starts_with(|c: char| c.is_ascii_digit()) {
            format!("{} per {period}", self.calls)
        } else {
            format!("{} per 1 {period}", self.calls)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(calls: u64, seconds: u64) -> RateLimiter {
        RateLimiter::new(&Limit {
            calls,
            key: None,
            renewal_period: "minute".into(),
            window: Duration::from_secs(seconds),
        })
    }

    #[test]
    fn counts_calls_per_window() {
        let l = limiter(2, 60);
        let t0 = Instant::now();
        assert!(l.acquire_at(t0).is_ok());
        assert!(l.acquire_at(t0).is_ok());
        let refused = l.acquire_at(t0 + Duration::from_secs(10));
        assert!(
            matches!(refused, Err(Exceeded { retry_after }) if retry_after <= Duration::from_secs(50))
        );
        assert!(l.acquire_at(t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn describes_like_slowapi() {
        let limit = Limit {
            calls: 10,
            key: None,
            renewal_period: "minute".into(),
            window: Duration::from_secs(60),
        };
        assert_eq!(RateLimiter::new(&limit).describe(&limit), "10 per 1 minute");
    }
}
