//! Webhook delivery for mlox: the dispatcher that drains the store's outbox and POSTs each
//! registry event, signed as MLflow 3 signs it, to every subscribed endpoint; the address
//! policy that keeps webhooks off internal networks; and the one-shot delivery behind
//! `/webhooks/{id}/test`. Webhook definitions and their event vocabulary are
//! `mlox_core::webhooks`; the outbox is mlox-store's. This crate speaks no SQL and imports no
//! transport crate of the server (tracking, serving).
//!
//! Where MLflow caches the webhook list for a minute and sends from an in-memory thread pool
//! (so changes made meanwhile, or while the process restarts, are lost), here every event is
//! durable in the database from the change's own transaction, goes out within a second
//! (woken by the store at once, polling for other replicas' events), is retried with
//! exponential backoff on 429/5xx/network errors across restarts, and is sent once per
//! webhook even with several replicas on one database.

mod payload;
mod policy;
pub mod secrets;
mod send;

pub use secrets::secrets;

pub use payload::{
    DELIVERY_ID_HEADER, SIGNATURE_HEADER, SIGNATURE_VERSION, TIMESTAMP_HEADER, envelope,
    example_payload, iso_timestamp, sign,
};
pub use policy::{CheckedUrl, UrlPolicy, is_public};
pub use send::{Attempt, Sender};

use mlox_core::webhooks::{Webhook, WebhookEvent, WebhookStatus};
use mlox_store::{ClaimedDelivery, DeliveryOutcome, SqlStore};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// How the dispatcher behaves. `Default` is the production setting: https only, public
/// addresses only.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Deliver to loopback/private/link-local addresses (development and tests).
    pub allow_private_addresses: bool,
    /// Deliver to `http://` URLs.
    pub allow_http: bool,
    /// How often the outbox is polled for events queued by other replicas.
    pub poll_interval: Duration,
    /// Limit for one request, connection included.
    pub request_timeout: Duration,
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles on every further one.
    pub retry_base: Duration,
    /// Longest delay between two attempts (a `Retry-After` is honoured up to this).
    pub retry_max: Duration,
    /// How long a claim keeps other replicas off a delivery.
    pub lease: Duration,
    /// Deliveries claimed per round.
    pub batch_size: i64,
    /// Endpoints served at once.
    pub max_concurrency: usize,
    /// How long delivered and failed rows stay in the outbox.
    pub delivered_retention: Duration,
    pub failed_retention: Duration,
    /// Outcomes of this replica's attempts, for operators; shared with whoever reads them.
    pub counters: Arc<DeliveryCounters>,
}

/// How this replica's delivery attempts ended, counted since it started.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

impl DeliveryCounters {
    fn count(&self, outcome: &DeliveryOutcome) {
        let counter = match outcome {
            DeliveryOutcome::Delivered => &self.delivered,
            DeliveryOutcome::Retry { .. } => &self.retried,
            DeliveryOutcome::Failed { .. } => &self.failed,
            // Not an attempt: the row waits behind an earlier one that is retried.
            DeliveryOutcome::Deferred { .. } => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts the endpoint accepted (2xx).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Attempts that failed in a way worth another try (connection errors, 429, 5xx).
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Attempts after which the delivery was given up.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            allow_private_addresses: false,
            allow_http: false,
            poll_interval: Duration::from_millis(250),
            request_timeout: Duration::from_secs(10),
            max_attempts: 8,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            lease: Duration::from_secs(120),
            batch_size: 64,
            max_concurrency: 16,
            delivered_retention: Duration::from_secs(3600),
            failed_retention: Duration::from_secs(7 * 24 * 3600),
            counters: Arc::default(),
        }
    }
}

impl DispatcherConfig {
    pub fn policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_private_addresses: self.allow_private_addresses,
            allow_http: self.allow_http,
        }
    }
}

const PURGE_EVERY: Duration = Duration::from_secs(600);
/// After a wake-up from this process's own change, the row may not be committed yet (the
/// store signals from inside the transaction); look again this soon rather than a full poll.
const RECHECK_AFTER_SIGNAL: Duration = Duration::from_millis(30);

/// Starts the dispatcher on the current Tokio runtime. It runs until the handle is aborted.
pub fn spawn_dispatcher(store: SqlStore, config: DispatcherConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sender = match Sender::new(config.policy(), config.request_timeout) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "webhook dispatcher cannot start");
                return;
            }
        };
        Dispatcher {
            store,
            config: Arc::new(config),
            sender,
            busy: Arc::new(Mutex::new(HashSet::new())),
            finished: Arc::new(Notify::new()),
        }
        .run()
        .await;
    })
}

struct Dispatcher {
    store: SqlStore,
    config: Arc<DispatcherConfig>,
    sender: Sender,
    /// Webhooks with a delivery in flight here; not claimed for again until done, so each
    /// endpoint sees this replica's events one at a time, in order.
    busy: Arc<Mutex<HashSet<String>>>,
    finished: Arc<Notify>,
}

impl Dispatcher {
    async fn run(self) {
        let signal = self.store.outbox_signal();
        let slots = Arc::new(Semaphore::new(self.config.max_concurrency.max(1)));
        let mut last_purge: Option<Instant> = None;
        let mut recheck = false;
        loop {
            let queued = signal.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();

            if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                self.purge().await;
                last_purge = Some(Instant::now());
            }
            let busy: Vec<String> = lock(&self.busy).iter().cloned().collect();
            let claimed = match self
                .store
                .claim_webhook_deliveries(
                    self.config.batch_size,
                    self.config.lease.as_millis() as i64,
                    &busy,
                )
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e.message, "claiming webhook deliveries failed");
                    Vec::new()
                }
            };
            let full = claimed.len() as i64 >= self.config.batch_size;
            for (webhook_id, rows) in group_by_webhook(claimed) {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                lock(&self.busy).insert(webhook_id.clone());
                let (store, config, sender) =
                    (self.store.clone(), self.config.clone(), self.sender.clone());
                let (busy, finished) = (self.busy.clone(), self.finished.clone());
                tokio::spawn(async move {
                    deliver_in_order(&store, &config, &sender, rows).await;
                    lock(&busy).remove(&webhook_id);
                    drop(slot);
                    finished.notify_one();
                });
            }
            if full {
                continue;
            }
            let wait = if recheck {
                RECHECK_AFTER_SIGNAL
            } else {
                self.config.poll_interval
            };
            recheck = false;
            tokio::select! {
                _ = &mut queued => recheck = true,
                _ = &mut finished => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn purge(&self) {
        let now = mlox_store_now_ms();
        let delivered = now - self.config.delivered_retention.as_millis() as i64;
        let failed = now - self.config.failed_retention.as_millis() as i64;
        if let Err(e) = self.store.purge_webhook_deliveries(delivered, failed).await {
            tracing::warn!(error = %e.message, "purging the webhook outbox failed");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn mlox_store_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Splits a claimed batch per webhook, keeping each one's rows in event order.
fn group_by_webhook(rows: Vec<ClaimedDelivery>) -> Vec<(String, Vec<ClaimedDelivery>)> {
    let mut groups: Vec<(String, Vec<ClaimedDelivery>)> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|(id, _)| *id == row.webhook_id) {
            Some((_, list)) => list.push(row),
            None => groups.push((row.webhook_id.clone(), vec![row])),
        }
    }
    groups
}

/// Delivers one webhook's rows one after another. When the endpoint fails transiently the
/// rest wait for the same retry time, so an outage costs one attempt per round, not one per
/// queued event.
async fn deliver_in_order(
    store: &SqlStore,
    config: &DispatcherConfig,
    sender: &Sender,
    rows: Vec<ClaimedDelivery>,
) {
    let margin = config.request_timeout.as_millis() as i64 + 1000;
    let mut rows = rows.into_iter();
    while let Some(row) = rows.next() {
        if mlox_store_now_ms() + margin > row.lease_expires_ms {
            // The lease would run out mid-request and another replica could send it too.
            let mut rest = vec![row];
            rest.extend(rows);
            if let Err(e) = store.release_webhook_deliveries(&rest).await {
                tracing::warn!(error = %e.message, "releasing webhook deliveries failed");
            }
            return;
        }
        let outcome = deliver(config, sender, &row).await;
        config.counters.count(&outcome);
        record(store, &row, &outcome).await;
        if let DeliveryOutcome::Retry { at_ms, .. } = outcome {
            for later in rows.by_ref() {
                record(store, &later, &DeliveryOutcome::Deferred { at_ms }).await;
            }
        }
    }
}

async fn record(store: &SqlStore, row: &ClaimedDelivery, outcome: &DeliveryOutcome) {
    match store.record_webhook_delivery(row, outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            delivery_id = %row.delivery_id,
            "webhook delivery claim was lost before its outcome was recorded"
        ),
        Err(e) => tracing::warn!(
            delivery_id = %row.delivery_id, error = %e.message,
            "recording a webhook delivery failed; it will be retried when its lease expires"
        ),
    }
}

/// One attempt at one delivery, and what to do next.
async fn deliver(
    config: &DispatcherConfig,
    sender: &Sender,
    row: &ClaimedDelivery,
) -> DeliveryOutcome {
    let (Some(url), Some(status)) = (row.url.as_deref(), row.webhook_status) else {
        return DeliveryOutcome::Failed {
            error: "The webhook was deleted.".into(),
        };
    };
    if status != WebhookStatus::Active {
        return DeliveryOutcome::Failed {
            error: "The webhook is disabled.".into(),
        };
    }
    let secret = match row.secret.as_deref().map(|s| secrets().open(s)).transpose() {
        Ok(secret) => secret,
        Err(e) => return DeliveryOutcome::Failed { error: e.message },
    };
    let body = envelope(&row.entity, &row.action, row.created_ms, &row.payload);
    let attempt = sender
        .post(url, &row.delivery_id, secret.as_deref(), body)
        .await;
    let (error, retry_after) = match attempt {
        Attempt::Response { status, .. } if (200..300).contains(&status) => {
            tracing::debug!(delivery_id = %row.delivery_id, webhook_id = %row.webhook_id, status, "webhook delivered");
            return DeliveryOutcome::Delivered;
        }
        Attempt::Response {
            status, location, ..
        } if (300..400).contains(&status) => {
            let error = format!(
                "HTTP {status}: redirect to {} not followed",
                location.as_deref().unwrap_or("(no location)")
            );
            return fail(row, error);
        }
        Attempt::Response {
            status,
            body,
            retry_after,
            ..
        } => {
            let error = format!(
                "HTTP {status}: {}",
                body.chars().take(500).collect::<String>()
            );
            if !matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504) {
                return fail(row, error);
            }
            (error, retry_after)
        }
        Attempt::Failed {
            message,
            retryable: false,
        } => return fail(row, message),
        Attempt::Failed {
            message,
            retryable: true,
        } => (message, None),
    };
    let attempts = row.attempts + 1;
    if attempts >= i64::from(config.max_attempts) {
        return fail(row, format!("Gave up after {attempts} attempts: {error}"));
    }
    let delay = retry_after
        .unwrap_or_else(|| backoff(config, attempts))
        .min(config.retry_max);
    tracing::info!(
        delivery_id = %row.delivery_id, webhook_id = %row.webhook_id, attempts,
        retry_in_ms = delay.as_millis() as u64, error = %error, "webhook delivery will be retried"
    );
    DeliveryOutcome::Retry {
        at_ms: mlox_store_now_ms() + delay.as_millis() as i64,
        error,
    }
}

fn fail(row: &ClaimedDelivery, error: String) -> DeliveryOutcome {
    tracing::warn!(delivery_id = %row.delivery_id, webhook_id = %row.webhook_id, error = %error, "webhook delivery failed");
    DeliveryOutcome::Failed { error }
}

/// `retry_base * 2^(n-1)`, capped, with ±25 % jitter so many failed deliveries to one
/// recovering endpoint do not return in one burst.
fn backoff(config: &DispatcherConfig, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let base = config
        .retry_base
        .saturating_mul(1 << exp)
        .min(config.retry_max);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0; // 0..1
    base.mul_f64(0.75 + jitter * 0.5)
}

/// What `/webhooks/{id}/test` answers, in MLflow's `WebhookTestResult` terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestResult {
    pub success: bool,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
}

fn shared_sender(policy: UrlPolicy) -> Result<Sender, String> {
    static SENDERS: [OnceLock<Result<Sender, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = usize::from(policy.allow_private_addresses) * 2 + usize::from(policy.allow_http);
    SENDERS[slot]
        .get_or_init(|| Sender::new(policy, Duration::from_secs(30)))
        .clone()
}

/// Sends `event`'s example payload (the webhook's first event when `None`) once, as MLflow's
/// test does, and reports what the endpoint answered.
pub async fn test_webhook(
    webhook: &Webhook,
    event: Option<&WebhookEvent>,
    policy: UrlPolicy,
) -> TestResult {
    let failed = |message: String| TestResult {
        success: false,
        error_message: Some(format!("Failed to test webhook: {message}")),
        ..Default::default()
    };
    let Some(event) = event.or(webhook.events.first()) else {
        return failed("the webhook has no events".into());
    };
    let Some(data) = example_payload(&event.entity, &event.action) else {
        return failed(format!("Unknown event type: {}", event.key()));
    };
    if let Err(e) = policy.validate(&webhook.url).await {
        return failed(e.message);
    }
    let sender = match shared_sender(policy) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let body = envelope(
        &event.entity,
        &event.action,
        mlox_store_now_ms(),
        &data.to_string(),
    );
    let delivery_id = uuid::Uuid::new_v4().to_string();
    let secret = match webhook
        .secret
        .as_deref()
        .map(|s| secrets().open(s))
        .transpose()
    {
        Ok(secret) => secret,
        Err(e) => return failed(e.message),
    };
    match sender
        .post(&webhook.url, &delivery_id, secret.as_deref(), body)
        .await
    {
        Attempt::Response {
            status,
            body,
            location,
            ..
        } => {
            let redirect = (300..400).contains(&status);
            TestResult {
                success: (200..300).contains(&status),
                response_status: Some(status),
                response_body: Some(body).filter(|b| !b.is_empty()),
                error_message: redirect.then(|| {
                    format!(
                        "Redirect to {} not followed.",
                        location.as_deref().unwrap_or("(no location)")
                    )
                }),
            }
        }
        Attempt::Failed { message, .. } => failed(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let config = DispatcherConfig {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(1000),
            ..Default::default()
        };
        let b1 = backoff(&config, 1);
        assert!(
            b1 >= Duration::from_millis(75) && b1 <= Duration::from_millis(125),
            "{b1:?}"
        );
        let b3 = backoff(&config, 3);
        assert!(
            b3 >= Duration::from_millis(300) && b3 <= Duration::from_millis(500),
            "{b3:?}"
        );
        assert!(backoff(&config, 40) <= Duration::from_millis(1250));
    }
}
