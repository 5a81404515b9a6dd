//! Server-side retries of upstream calls (an mlox extension: MLflow's gateway leaves retrying
//! to its client). What is retried: connection failures, timeouts, 429 and 502/503/504, i.e.
//! answers that say "not now" rather than "no". Streams are retried only until the upstream
//! has answered with a success status, never after the first byte reached the client.

use std::time::Duration;

/// How an endpoint retries. `max_attempts` counts the first call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the upstream's answer is returned.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    pub fn disabled() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `retry` (1-based): exponential, capped, with up to 25 %
    /// jitter so clients that failed together do not return together.
    pub fn backoff_for(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let base = self.backoff.saturating_mul(factor).min(self.max_backoff);
        let jitter = base.mul_f64(fastrand::f64() * 0.25);
        base.saturating_sub(jitter)
    }
}

/// Whether an upstream status says the call may succeed if repeated.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        for retry in 1..20 {
            let wait = policy.backoff_for(retry);
            assert!(wait <= policy.max_backoff, "retry {retry}: {wait:?}");
        }
        assert!(policy.backoff_for(1) <= Duration::from_millis(100));
        assert!(policy.backoff_for(1) >= Duration::from_millis(75));
        assert!(policy.backoff_for(3) >= Duration::from_millis(300));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 502, 503, 504] {
            assert!(is_retryable_status(s));
        }
        for s in [200, 400, 401, 404, 422, 500, 501] {
            assert!(!is_retryable_status(s));
        }
    }
}
