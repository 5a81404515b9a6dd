//! Webhooks as MLflow 3 defines them: the events a webhook may subscribe to (entity and action,
//! in MLflow's spelling), a webhook's definition and status, and the rules its name and event
//! list follow. Storing them and delivering events belong to the store and mlox-webhooks.

use crate::{Error, Result};

/// Every event MLflow 3 lets a webhook subscribe to, as `(entity, action)`.
pub const WEBHOOK_EVENTS: &[(&str, &str)] = &[
    ("registered_model", "created"),
    ("model_version", "created"),
    ("model_version_tag", "set"),
    ("model_version_tag", "deleted"),
    ("model_version_alias", "created"),
    ("model_version_alias", "deleted"),
    ("prompt", "created"),
    ("prompt_version", "created"),
    ("prompt_tag", "set"),
    ("prompt_tag", "deleted"),
    ("prompt_version_tag", "set"),
    ("prompt_version_tag", "deleted"),
    ("prompt_alias", "created"),
    ("prompt_alias", "deleted"),
    ("budget_policy", "exceeded"),
];

const ENTITIES: &[&str] = &[
    "registered_model",
    "model_version",
    "model_version_tag",
    "model_version_alias",
    "prompt",
    "prompt_version",
    "prompt_tag",
    "prompt_version_tag",
    "prompt_alias",
    "budget_policy",
];
const ACTIONS: &[&str] = &["created", "updated", "deleted", "set", "exceeded"];

/// One subscribable event, in MLflow's lower-case spelling (`model_version`, `created`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WebhookEvent {
    pub entity: String,
    pub action: String,
}

impl WebhookEvent {
    /// Accepts either spelling MLflow uses (`MODEL_VERSION` on the wire, `model_version` in
    /// its Python API) and refuses combinations MLflow refuses, with its message.
    pub fn new(entity: &str, action: &str) -> Result<Self> {
        let entity_l = entity.trim().to_ascii_lowercase();
        let action_l = action.trim().to_ascii_lowercase();
        if !ENTITIES.contains(&entity_l.as_str()) {
            return Err(Error::invalid(format!(
                "Invalid webhook event entity '{entity}'. Valid entities are: {}",
                ENTITIES.join(", ")
            )));
        }
        if !ACTIONS.contains(&action_l.as_str()) {
            return Err(Error::invalid(format!(
                "Invalid webhook event action '{action}'. Valid actions are: {}",
                ACTIONS.join(", ")
            )));
        }
        if !WEBHOOK_EVENTS.contains(&(entity_l.as_str(), action_l.as_str())) {
            let valid: Vec<String> = WEBHOOK_EVENTS
                .iter()
                .filter(|(e, _)| *e == entity_l)
                .map(|(_, a)| format!("'{a}'"))
                .collect();
            return Err(Error::invalid(format!(
                "Invalid action '{action_l}' for entity '{entity_l}'. Valid actions are: [{}]",
                valid.join(", ")
            )));
        }
        Ok(WebhookEvent {
            entity: entity_l,
            action: action_l,
        })
    }

    /// `entity.action`, the form MLflow prints and the form stored.
    pub fn key(&self) -> String {
        format!("{}.{}", self.entity, self.action)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookStatus {
    Active,
    Disabled,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Active => "ACTIVE",
            WebhookStatus::Disabled => "DISABLED",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ACTIVE" => Ok(WebhookStatus::Active),
            "DISABLED" => Ok(WebhookStatus::Disabled),
            _ => Err(Error::invalid(format!(
                "Invalid webhook status '{s}'. Valid statuses are: ACTIVE, DISABLED"
            ))),
        }
    }
}

/// A webhook as stored. `secret` never leaves the server through the API, as in MLflow.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub webhook_id: String,
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub status: WebhookStatus,
    pub secret: Option<String>,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
}

#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub description: Option<String>,
    pub secret: Option<String>,
    pub status: Option<WebhookStatus>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEvent>>,
    pub secret: Option<String>,
    pub status: Option<WebhookStatus>,
}

pub fn validate_webhook_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(Error::invalid(format!(
            "Webhook name '{name}' is invalid. It must start and end with a letter or digit, be less \
             than 63 characters long, and contain only letters, digits, dots (.), underscores (_), \
             and hyphens (-)."
        )));
    }
    Ok(())
}

/// Keeps the caller's order, drops repeats, and refuses an empty list as MLflow does.
pub fn normalize_events(events: &[WebhookEvent]) -> Result<Vec<WebhookEvent>> {
    if events.is_empty() {
        return Err(Error::invalid(
            "Webhook events must be a non-empty list of WebhookEvent objects: [].",
        ));
    }
    let mut out: Vec<WebhookEvent> = Vec::with_capacity(events.len());
    for e in events {
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}
