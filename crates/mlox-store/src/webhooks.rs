//! Webhooks in storage: their definitions (as `mlox_core::webhooks` defines them, secret
//! included) and the delivery outbox.
//!
//! A registry change writes one outbox row per subscribed webhook inside its own transaction,
//! so nothing committed is ever lost. Any number of server replicas may drain the outbox at
//! once: a dispatcher claims due rows by stamping them with a fresh claim token and a lease in
//! one UPDATE, reads back exactly the rows carrying its token, and fences every later write on
//! that token. An expired lease (a replica that died mid-delivery) makes a row claimable again.

use crate::db::{Bind, Sql, SqlStore, db_err, get_i64, get_opt_str, get_str, now_ms, page_size};
use mlox_core::entities::Page;
use mlox_core::webhooks::{
    NewWebhook, Webhook, WebhookEvent, WebhookStatus, WebhookUpdate, normalize_events,
    validate_webhook_name,
};
use mlox_core::{Error, Result, page_token, validation};
use sqlx::any::AnyRow;

pub const DEFAULT_WEBHOOKS_PER_PAGE: i64 = 100;
pub const MAX_WEBHOOKS_PER_PAGE: i64 = 1000;

/// An outbox row this dispatcher holds a claim on, joined with its webhook's current
/// definition (`None` fields when the webhook has been deleted since).
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub delivery_id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub entity: String,
    pub action: String,
    /// The event's `data`, as JSON text.
    pub payload: String,
    pub created_ms: i64,
    /// Attempts made before this one.
    pub attempts: i64,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub webhook_status: Option<WebhookStatus>,
    /// The claim token every write about this row must present.
    pub claim: String,
    pub lease_expires_ms: i64,
}

/// What became of one delivery attempt.
#[derive(Clone, Debug)]
pub enum DeliveryOutcome {
    Delivered,
    /// A transient failure; try again at `at_ms`.
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Give up on this row for good.
    Failed {
        error: String,
    },
    /// Not attempted (an earlier row for the same endpoint failed); try again at `at_ms`
    /// without counting an attempt.
    Deferred {
        at_ms: i64,
    },
}

/// A delivery's bookkeeping, for operators and tests.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub delivery_id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub entity: String,
    pub action: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

pub const STATE_PENDING: &str = "PENDING";
pub const STATE_DELIVERED: &str = "DELIVERED";
pub const STATE_FAILED: &str = "FAILED";

fn encode_events(events: &[WebhookEvent]) -> String {
    events
        .iter()
        .map(WebhookEvent::key)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_events(text: &str) -> Vec<WebhookEvent> {
    text.split(',')
        .filter_map(|k| k.split_once('.'))
        .map(|(entity, action)| WebhookEvent {
            entity: entity.to_string(),
            action: action.to_string(),
        })
        .collect()
}

fn webhook_not_found(id: &str) -> Error {
    Error::not_found(format!("Webhook with ID {id} not found."))
}

const WEBHOOK_COLUMNS: &str = "webhook_id, name, description, url, events, secret, status, creation_timestamp, last_updated_timestamp";

fn webhook_from_row(row: &AnyRow) -> Webhook {
    Webhook {
        webhook_id: get_str(row, "webhook_id"),
        name: get_str(row, "name"),
        description: get_opt_str(row, "description"),
        url: get_str(row, "url"),
        events: decode_events(&get_str(row, "events")),
        status: WebhookStatus::parse(&get_str(row, "status")).unwrap_or(WebhookStatus::Disabled),
        secret: get_opt_str(row, "secret").filter(|s| !s.is_empty()),
        creation_timestamp: get_i64(row, "creation_timestamp"),
        last_updated_timestamp: get_i64(row, "last_updated_timestamp"),
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl SqlStore {
    /// Creates a webhook. The URL's reachability policy is the caller's to check first: it
    /// needs DNS and the server's configuration, neither of which the store has.
    pub async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        if new.name.is_empty() {
            return Err(validation::missing_value("name"));
        }
        if new.url.is_empty() {
            return Err(validation::missing_value("url"));
        }
        validate_webhook_name(&new.name)?;
        let events = normalize_events(&new.events)?;
        let now = now_ms();
        let webhook = Webhook {
            webhook_id: uuid::Uuid::new_v4().to_string(),
            name: new.name,
            description: new.description.filter(|d| !d.is_empty()),
            url: new.url,
            events,
            status: new.status.unwrap_or(WebhookStatus::Active),
            secret: new.secret.filter(|s| !s.is_empty()),
            creation_timestamp: now,
            last_updated_timestamp: now,
        };
        let mut sql = Sql::new("INSERT INTO webhooks (");
        sql.push(WEBHOOK_COLUMNS).push(") VALUES (");
        sql.bind_str(&webhook.webhook_id)
            .push(", ")
            .bind_str(&webhook.name)
            .push(", ");
        sql.bind(Bind::OptStr(webhook.description.clone()))
            .push(", ")
            .bind_str(&webhook.url)
            .push(", ");
        sql.bind_str(encode_events(&webhook.events)).push(", ");
        sql.bind(Bind::OptStr(webhook.secret.clone()))
            .push(", ")
            .bind_str(webhook.status.as_str())
            .push(", ");
        sql.bind_i64(now).push(", ").bind_i64(now).push(")");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(webhook)
    }

    pub async fn get_webhook(&self, webhook_id: &str) -> Result<Webhook> {
        let mut sql = Sql::new("SELECT ");
        sql.push(WEBHOOK_COLUMNS)
            .push(" FROM webhooks WHERE webhook_id = ")
            .bind_str(webhook_id);
        match sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        {
            Some(row) => Ok(webhook_from_row(&row)),
            None => Err(webhook_not_found(webhook_id)),
        }
    }

    /// Newest first, as MLflow lists them.
    pub async fn list_webhooks(
        &self,
        max_results: Option<i64>,
        token: Option<&str>,
    ) -> Result<Page<Webhook>> {
        // MLflow's client sends 0 for "not set".
        let max = page_size(
            max_results.filter(|n| *n != 0),
            DEFAULT_WEBHOOKS_PER_PAGE,
            1..=MAX_WEBHOOKS_PER_PAGE,
            |_| format!("max_results must be between 1 and {MAX_WEBHOOKS_PER_PAGE}."),
        )?;
        let offset = page_token::decode(token)? as i64;
        let mut sql = Sql::new("SELECT ");
        sql.push(WEBHOOK_COLUMNS)
            .push(" FROM webhooks ORDER BY creation_timestamp DESC, webhook_id LIMIT ");
        sql.bind_i64(max + 1).push(" OFFSET ").bind_i64(offset);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let mut items: Vec<Webhook> = rows.iter().map(webhook_from_row).collect();
        let next_page_token = if items.len() as i64 > max {
            items.truncate(max as usize);
            Some(page_token::encode((offset + max) as u64))
        } else {
            None
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    pub async fn update_webhook(&self, webhook_id: &str, update: WebhookUpdate) -> Result<Webhook> {
        let mut webhook = self.get_webhook(webhook_id).await?;
        if let Some(name) = update.name {
            validate_webhook_name(&name)?;
            webhook.name = name;
        }
        if let Some(url) = update.url {
            webhook.url = url;
        }
        if let Some(events) = update.events {
            webhook.events = normalize_events(&events)?;
        }
        if let Some(description) = update.description {
            webhook.description = Some(description).filter(|d| !d.is_empty());
        }
        if let Some(secret) = update.secret {
            webhook.secret = Some(secret).filter(|s| !s.is_empty());
        }
        if let Some(status) = update.status {
            webhook.status = status;
        }
        webhook.last_updated_timestamp = now_ms().max(webhook.last_updated_timestamp);
        let mut sql = Sql::new("UPDATE webhooks SET name = ");
        sql.bind_str(&webhook.name)
            .push(", description = ")
            .bind(Bind::OptStr(webhook.description.clone()));
        sql.push(", url = ")
            .bind_str(&webhook.url)
            .push(", events = ")
            .bind_str(encode_events(&webhook.events));
        sql.push(", secret = ")
            .bind(Bind::OptStr(webhook.secret.clone()));
        sql.push(", status = ").bind_str(webhook.status.as_str());
        sql.push(", last_updated_timestamp = ")
            .bind_i64(webhook.last_updated_timestamp);
        sql.push(" WHERE webhook_id = ").bind_str(webhook_id);
        let done = sql.query().execute(&self.write).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(webhook_not_found(webhook_id));
        }
        Ok(webhook)
    }

    /// Deletes a webhook and drops its undelivered events; delivered history goes with the
    /// regular purge.
    pub async fn delete_webhook(&self, webhook_id: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = Sql::new("DELETE FROM webhooks WHERE webhook_id = ");
        sql.bind_str(webhook_id);
        if sql
            .query()
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 0
        {
            return Err(webhook_not_found(webhook_id));
        }
        let mut sql = Sql::new("DELETE FROM webhook_outbox WHERE webhook_id = ");
        sql.bind_str(webhook_id)
            .push(" AND state = ")
            .bind_str(STATE_PENDING);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// Queues `entity.action` for every active webhook subscribed to it, inside the caller's
    /// transaction. Returns how many deliveries were queued.
    pub(crate) async fn enqueue_webhook_event(
        &self,
        tx: &mut Tx<'_>,
        entity: &str,
        action: &str,
        payload: &serde_json::Value,
    ) -> Result<usize> {
        let mut sql = Sql::new("SELECT webhook_id, events FROM webhooks WHERE status = ");
        sql.bind_str(WebhookStatus::Active.as_str());
        let rows = sql.query().fetch_all(&mut **tx).await.map_err(db_err)?;
        let key = format!("{entity}.{action}");
        let targets: Vec<String> = rows
            .iter()
            .filter(|r| get_str(r, "events").split(',').any(|k| k == key))
            .map(|r| get_str(r, "webhook_id"))
            .collect();
        if targets.is_empty() {
            return Ok(0);
        }
        let event_id = uuid::Uuid::new_v4().to_string();
        let payload = payload.to_string();
        let now = now_ms();
        for webhook_id in &targets {
            let mut sql = Sql::new(
                "INSERT INTO webhook_outbox (delivery_id, event_id, webhook_id, entity, action, payload, created_ms, state, attempts, next_attempt_ms) VALUES (",
            );
            sql.bind_str(uuid::Uuid::new_v4().to_string())
                .push(", ")
                .bind_str(&event_id)
                .push(", ");
            sql.bind_str(webhook_id)
                .push(", ")
                .bind_str(entity)
                .push(", ")
                .bind_str(action)
                .push(", ");
            sql.bind_str(&payload)
                .push(", ")
                .bind_i64(now)
                .push(", ")
                .bind_str(STATE_PENDING);
            sql.push(", 0, ").bind_i64(now).push(")");
            sql.query().execute(&mut **tx).await.map_err(db_err)?;
        }
        Ok(targets.len())
    }

    /// Claims up to `limit` due deliveries for `lease_ms`, skipping webhooks this dispatcher
    /// is still busy with (so one endpoint sees its events in order). Safe to run from many
    /// replicas at once: the UPDATE re-checks the claim condition row by row, so a row goes
    /// to exactly one claimant.
    pub async fn claim_webhook_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
        busy_webhooks: &[String],
    ) -> Result<Vec<ClaimedDelivery>> {
        let now = now_ms();
        // Polling is frequent and usually finds nothing: look on the read pool first so an
        // idle dispatcher never takes the write lock (SQLite has one).
        let mut probe = Sql::new("SELECT delivery_id FROM webhook_outbox WHERE state = ");
        probe
            .bind_str(STATE_PENDING)
            .push(" AND next_attempt_ms <= ")
            .bind_i64(now);
        probe
            .push(" AND (claim_owner IS NULL OR lease_expires_ms < ")
            .bind_i64(now)
            .push(") LIMIT 1");
        if probe
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .is_none()
        {
            return Ok(Vec::new());
        }
        let claim = uuid::Uuid::new_v4().to_string();
        let lease_expires_ms = now + lease_ms;
        let mut sql = Sql::new("UPDATE webhook_outbox SET claim_owner = ");
        sql.bind_str(&claim)
            .push(", lease_expires_ms = ")
            .bind_i64(lease_expires_ms);
        sql.push(" WHERE delivery_id IN (SELECT delivery_id FROM webhook_outbox WHERE state = ");
        sql.bind_str(STATE_PENDING)
            .push(" AND next_attempt_ms <= ")
            .bind_i64(now);
        sql.push(" AND (claim_owner IS NULL OR lease_expires_ms < ")
            .bind_i64(now)
            .push(")");
        if !busy_webhooks.is_empty() {
            sql.push(" AND webhook_id NOT IN ");
            sql.bind_list(busy_webhooks.iter().map(|w| Bind::Str(w.clone())));
        }
        sql.push(" ORDER BY created_ms LIMIT ")
            .bind_i64(limit)
            .push(")");
        sql.push(" AND state = ").bind_str(STATE_PENDING);
        sql.push(" AND (claim_owner IS NULL OR lease_expires_ms < ")
            .bind_i64(now)
            .push(")");
        let claimed = sql
            .query()
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        if claimed == 0 {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT o.delivery_id, o.event_id, o.webhook_id, o.entity, o.action, o.payload, o.created_ms, o.attempts, \
             w.url, w.secret, w.status FROM webhook_outbox o LEFT JOIN webhooks w ON w.webhook_id = o.webhook_id \
             WHERE o.claim_owner = ",
        );
        sql.bind_str(&claim)
            .push(" ORDER BY o.created_ms, o.event_id");
        let rows = sql.query().fetch_all(&self.write).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| ClaimedDelivery {
                delivery_id: get_str(r, "delivery_id"),
                event_id: get_str(r, "event_id"),
                webhook_id: get_str(r, "webhook_id"),
                entity: get_str(r, "entity"),
                action: get_str(r, "action"),
                payload: get_str(r, "payload"),
                created_ms: get_i64(r, "created_ms"),
                attempts: get_i64(r, "attempts"),
                url: get_opt_str(r, "url"),
                secret: get_opt_str(r, "secret").filter(|s| !s.is_empty()),
                webhook_status: get_opt_str(r, "status")
                    .and_then(|s| WebhookStatus::parse(&s).ok()),
                claim: claim.clone(),
                lease_expires_ms,
            })
            .collect())
    }

    /// Records an attempt's outcome and releases the claim. Returns false when the claim was
    /// lost (the lease expired and another dispatcher took the row), in which case nothing
    /// is written.
    pub async fn record_webhook_delivery(
        &self,
        delivery: &ClaimedDelivery,
        outcome: &DeliveryOutcome,
    ) -> Result<bool> {
        let now = now_ms();
        let mut sql =
            Sql::new("UPDATE webhook_outbox SET claim_owner = NULL, lease_expires_ms = NULL");
        match outcome {
            DeliveryOutcome::Delivered => {
                sql.push(", state = ").bind_str(STATE_DELIVERED);
                sql.push(", attempts = attempts + 1, last_error = NULL, finished_ms = ")
                    .bind_i64(now);
            }
            DeliveryOutcome::Retry { at_ms, error } => {
                sql.push(", attempts = attempts + 1, next_attempt_ms = ")
                    .bind_i64(*at_ms);
                sql.push(", last_error = ").bind_str(truncate(error));
            }
            DeliveryOutcome::Failed { error } => {
                sql.push(", state = ").bind_str(STATE_FAILED);
                sql.push(", attempts = attempts + 1, last_error = ")
                    .bind_str(truncate(error));
                sql.push(", finished_ms = ").bind_i64(now);
            }
            DeliveryOutcome::Deferred { at_ms } => {
                sql.push(", next_attempt_ms = ").bind_i64(*at_ms);
            }
        }
        sql.push(" WHERE delivery_id = ")
            .bind_str(&delivery.delivery_id);
        sql.push(" AND claim_owner = ").bind_str(&delivery.claim);
        let done = sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Hands claimed rows back untouched, for a dispatcher that will not get to them before
    /// its lease runs out.
    pub async fn release_webhook_deliveries(&self, deliveries: &[ClaimedDelivery]) -> Result<()> {
        for d in deliveries {
            let mut sql = Sql::new(
                "UPDATE webhook_outbox SET claim_owner = NULL, lease_expires_ms = NULL WHERE delivery_id = ",
            );
            sql.bind_str(&d.delivery_id)
                .push(" AND claim_owner = ")
                .bind_str(&d.claim);
            sql.query().execute(&self.write).await.map_err(db_err)?;
        }
        Ok(())
    }

    /// Deletes finished rows: delivered ones that finished before `delivered_before_ms`,
    /// failed ones (kept longer, for inspection) before `failed_before_ms`.
    pub async fn purge_webhook_deliveries(
        &self,
        delivered_before_ms: i64,
        failed_before_ms: i64,
    ) -> Result<u64> {
        let mut sql = Sql::new("DELETE FROM webhook_outbox WHERE (state = ");
        sql.bind_str(STATE_DELIVERED)
            .push(" AND finished_ms < ")
            .bind_i64(delivered_before_ms);
        sql.push(") OR (state = ")
            .bind_str(STATE_FAILED)
            .push(" AND finished_ms < ")
            .bind_i64(failed_before_ms);
        sql.push(")");
        Ok(sql
            .query()
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    /// The outbox rows of one webhook, oldest first.
    pub async fn list_webhook_deliveries(&self, webhook_id: &str) -> Result<Vec<DeliveryRecord>> {
        let mut sql = Sql::new(
            "SELECT delivery_id, event_id, webhook_id, entity, action, state, attempts, last_error FROM webhook_outbox WHERE webhook_id = ",
        );
        sql.bind_str(webhook_id)
            .push(" ORDER BY created_ms, event_id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| DeliveryRecord {
                delivery_id: get_str(r, "delivery_id"),
                event_id: get_str(r, "event_id"),
                webhook_id: get_str(r, "webhook_id"),
                entity: get_str(r, "entity"),
                action: get_str(r, "action"),
                state: get_str(r, "state"),
                attempts: get_i64(r, "attempts"),
                last_error: get_opt_str(r, "last_error"),
            })
            .collect())
    }
}

fn truncate(error: &str) -> String {
    const MAX: usize = 2000;
    if error.len() <= MAX {
        return error.to_string();
    }
    let mut end = MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    async fn store(dir: &tempfile::TempDir) -> SqlStore {
        SqlStore::open(StoreOptions {
            uri: format!("sqlite:///{}", dir.path().join("w.db").display()),
            default_artifact_root: "mlflow-artifacts:".into(),
            max_connections: 4,
        })
        .await
        .unwrap()
    }

    fn ev(e: &str, a: &str) -> WebhookEvent {
        WebhookEvent::new(e, a).unwrap()
    }

    #[test]
    fn events_accept_both_spellings_and_refuse_bad_pairs() {
        assert_eq!(
            ev("MODEL_VERSION", "CREATED").key(),
            "model_version.created"
        );
        let err = WebhookEvent::new("MODEL_VERSION", "SET").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid action 'set' for entity 'model_version'. Valid actions are: ['created']"
        );
        assert!(WebhookEvent::new("nope", "created").is_err());
    }

    #[test]
    fn names_follow_mlflow_rules() {
        assert!(validate_webhook_name("a").is_ok());
        assert!(validate_webhook_name("my-hook.v1_x").is_ok());
        for bad in ["", "-a", "a-", "a b", &"a".repeat(64)] {
            assert!(validate_webhook_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn crud_and_paging() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let w = s
                .create_webhook(NewWebhook {
                    name: format!("h{i}"),
                    url: "https://example.com/hook".into(),
                    events: vec![
                        ev("model_version", "created"),
                        ev("model_version", "created"),
                    ],
                    description: None,
                    secret: Some("s".into()),
                    status: None,
                })
                .await
                .unwrap();
            assert_eq!(w.events.len(), 1);
            ids.push(w.webhook_id);
        }
        let page = s.list_webhooks(Some(2), None).await.unwrap();
        assert_eq!(page.items.len(), 2);
        let rest = s
            .list_webhooks(Some(2), page.next_page_token.as_deref())
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert!(rest.next_page_token.is_none());
        assert!(s.list_webhooks(Some(1001), None).await.is_err());

        let up = s
            .update_webhook(
                &ids[0],
                WebhookUpdate {
                    status: Some(WebhookStatus::Disabled),
                    description: Some("d".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(up.status, WebhookStatus::Disabled);
        assert_eq!(
            s.get_webhook(&ids[0]).await.unwrap().description.as_deref(),
            Some("d")
        );
        s.delete_webhook(&ids[0]).await.unwrap();
        let err = s.get_webhook(&ids[0]).await.unwrap_err();
        assert_eq!(
            err.message,
            format!("Webhook with ID {} not found.", ids[0])
        );
        assert!(s.delete_webhook(&ids[0]).await.is_err());
    }

    #[tokio::test]
    async fn claims_are_exclusive_fenced_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let w = s
            .create_webhook(NewWebhook {
                name: "h".into(),
                url: "https://example.com/hook".into(),
                events: vec![ev("registered_model", "created")],
                description: None,
                secret: None,
                status: None,
            })
            .await
            .unwrap();
        s.create_registered_model("m1", &[], None).await.unwrap();
        s.create_registered_model("m2", &[], None).await.unwrap();

        let first = s.claim_webhook_deliveries(10, 60_000, &[]).await.unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].url.as_deref(), Some("https://example.com/hook"));
        assert!(
            s.claim_webhook_deliveries(10, 60_000, &[])
                .await
                .unwrap()
                .is_empty()
        );

        assert!(
            s.record_webhook_delivery(&first[0], &DeliveryOutcome::Delivered)
                .await
                .unwrap()
        );
        // A second write under the same claim is refused: the claim was released.
        assert!(
            !s.record_webhook_delivery(&first[0], &DeliveryOutcome::Delivered)
                .await
                .unwrap()
        );

        // An expired lease makes the row claimable again, and the old claim is fenced out.
        let mut sql =
            Sql::new("UPDATE webhook_outbox SET lease_expires_ms = 0 WHERE delivery_id = ");
        sql.bind_str(&first[1].delivery_id);
        sql.query().execute(&s.write).await.unwrap();
        let again = s.claim_webhook_deliveries(10, 60_000, &[]).await.unwrap();
        assert_eq!(again.len(), 1);
        assert!(
            !s.record_webhook_delivery(&first[1], &DeliveryOutcome::Delivered)
                .await
                .unwrap()
        );
        let retry = DeliveryOutcome::Retry {
            at_ms: now_ms() + 60_000,
            error: "503".into(),
        };
        assert!(s.record_webhook_delivery(&again[0], &retry).await.unwrap());
        assert!(
            s.claim_webhook_deliveries(10, 60_000, &[])
                .await
                .unwrap()
                .is_empty()
        );

        let records = s.list_webhook_deliveries(&w.webhook_id).await.unwrap();
        let states: Vec<(&str, i64)> = records
            .iter()
            .map(|r| (r.state.as_str(), r.attempts))
            .collect();
        assert_eq!(states, vec![(STATE_DELIVERED, 1), (STATE_PENDING, 1)]);

        assert_eq!(
            s.purge_webhook_deliveries(now_ms() + 1, 0).await.unwrap(),
            1
        );
        s.delete_webhook(&w.webhook_id).await.unwrap();
        assert!(
            s.list_webhook_deliveries(&w.webhook_id)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn only_subscribed_active_webhooks_get_events() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let mk = |name: &str, events: Vec<WebhookEvent>, status| NewWebhook {
            name: name.into(),
            url: "https://example.com/hook".into(),
            events,
            description: None,
            secret: None,
            status: Some(status),
        };
        let on = s
            .create_webhook(mk(
                "on",
                vec![ev("registered_model", "created")],
                WebhookStatus::Active,
            ))
            .await
            .unwrap();
        let off = s
            .create_webhook(mk(
                "off",
                vec![ev("registered_model", "created")],
                WebhookStatus::Disabled,
            ))
            .await
            .unwrap();
        let other = s
            .create_webhook(mk(
                "other",
                vec![ev("model_version", "created")],
                WebhookStatus::Active,
            ))
            .await
            .unwrap();
        s.create_registered_model("m", &[], Some("d"))
            .await
            .unwrap();
        assert_eq!(
            s.list_webhook_deliveries(&on.webhook_id)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.list_webhook_deliveries(&off.webhook_id)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.list_webhook_deliveries(&other.webhook_id)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
