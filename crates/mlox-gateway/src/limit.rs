//! Per-endpoint rate limits (`limit: {calls, renewal_period}`), counted in this process, or
//! in a store every replica shares ([`SharedCounter`], `mlox gateway start --limits-store`).
//!
//! MLflow counts per client IP and per worker process, and only on its own invocation routes;
//! mlox counts per endpoint for every caller and on `/v1/*` too, so `calls: 10` means ten
//! calls to the endpoint per period. The window is fixed, as in the `limits` library's default
//! strategy MLflow uses.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use futures::future::BoxFuture;

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

/// Where replicas count calls together: the count of a fixed window after one more call.
pub trait SharedCounter: Send + Sync {
    /// Counts one call to `endpoint` in the window starting at `window_start_ms` (epoch
    /// milliseconds) and returns the window's count, this call included; windows ending
    /// before `forget_before_ms` may be dropped.
    fn count(
        &self,
        endpoint: &str,
        window_start_ms: i64,
        forget_before_ms: i64,
    ) -> BoxFuture<'_, Result<u64, String>>;
}

/// Counts one call against `limit` in the shared store. Windows are aligned to the epoch so
/// every replica agrees where one starts. A store that cannot be reached lets the call through
/// (a limit must not take the gateway down) and says so in the log.
pub async fn acquire_shared(
    counter: &dyn SharedCounter,
    endpoint: &str,
    limit: &Limit,
) -> Result<(), Exceeded> {
    let window_ms = (limit.window.as_millis() as i64).max(1);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let start = now_ms - now_ms.rem_euclid(window_ms);
    match counter.count(endpoint, start, start - window_ms).await {
        Ok(calls) if calls > limit.calls => Err(Exceeded {
            retry_after: Duration::from_millis((start + window_ms - now_ms).max(0) as u64),
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(endpoint, error = %e, "the shared limits store could not count a call; letting it through");
            Ok(())
        }
    }
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
}

/// The limit in the words of slowapi's message ("10 per 1 minute").
pub fn describe(limit: &Limit) -> String {
    let period = limit.renewal_period.trim();
    if period.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{} per {period}", limit.calls)
    } else {
        format!("{} per 1 {period}", limit.calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store every "replica" shares, or one that is down.
    #[derive(Default)]
    struct Store {
        windows: Mutex<std::collections::HashMap<(String, i64), u64>>,
        down: bool,
    }

    impl SharedCounter for Store {
        fn count(&self, endpoint: &str, start: i64, _: i64) -> BoxFuture<'_, Result<u64, String>> {
            let key = (endpoint.to_string(), start);
            Box::pin(async move {
                if self.down {
                    return Err("connection refused".into());
                }
                let mut windows = self.windows.lock().unwrap();
                let calls = windows.entry(key).or_default();
                *calls += 1;
                Ok(*calls)
            })
        }
    }

    #[tokio::test]
    async fn shared_limits_count_every_replicas_calls_in_epoch_aligned_windows() {
        let limit = Limit {
            calls: 2,
            key: None,
            renewal_period: "hour".into(),
            window: Duration::from_secs(3600),
        };
        let store = Store::default();
        assert!(acquire_shared(&store, "chat", &limit).await.is_ok());
        assert!(acquire_shared(&store, "chat", &limit).await.is_ok());
        let refused = acquire_shared(&store, "chat", &limit).await.unwrap_err();
        assert!(refused.retry_after <= Duration::from_secs(3600));
        // Another endpoint has a count of its own.
        assert!(acquire_shared(&store, "embed", &limit).await.is_ok());
        let starts: Vec<i64> = store.windows.lock().unwrap().keys().map(|k| k.1).collect();
        assert!(starts.iter().all(|s| s % 3_600_000 == 0), "{starts:?}");
        // A store that is down lets calls through.
        let down = Store {
            down: true,
            ..Store::default()
        };
        assert!(acquire_shared(&down, "chat", &limit).await.is_ok());
    }

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
        assert_eq!(describe(&limit), "10 per 1 minute");
    }
}
