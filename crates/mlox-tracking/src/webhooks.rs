//! MLflow 3's webhook management endpoints (`/webhooks`, `/webhooks/{webhook_id}`,
//! `/webhooks/{webhook_id}/test`) in the request and response shapes the client uses. URLs
//! are checked against the server's address policy when saved, so a webhook that could never
//! be delivered is refused up front; the secret is stored but never answered back.

use crate::error::{ApiError, ApiResult};
use crate::request::Msg;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use mlox_core::validation;
use mlox_core::webhooks::{NewWebhook, Webhook, WebhookEvent, WebhookStatus, WebhookUpdate};
use mlox_core::wire::de_opt_i64;
use serde::Deserialize;
use serde_json::{Map, Value, json};

type JsonResult = ApiResult<Json<Value>>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create_webhook).get(list_webhooks))
        .route(
            "/webhooks/{webhook_id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/webhooks/{webhook_id}/test", post(test_webhook))
}

/// The webhook as MLflow renders it: enums by name, no secret, no empty description.
pub fn webhook_json(w: &Webhook) -> Value {
    let mut out = Map::new();
    out.insert("webhook_id".into(), json!(w.webhook_id));
    out.insert("name".into(), json!(w.name));
    if let Some(d) = w.description.as_deref().filter(|d| !d.is_empty()) {
        out.insert("description".into(), json!(d));
    }
    out.insert("url".into(), json!(w.url));
    let events: Vec<Value> = w
        .events
        .iter()
        .map(|e| json!({"entity": e.entity.to_ascii_uppercase(), "action": e.action.to_ascii_uppercase()}))
        .collect();
    out.insert("events".into(), Value::Array(events));
    out.insert("status".into(), json!(w.status.as_str()));
    out.insert("creation_timestamp".into(), json!(w.creation_timestamp));
    out.insert(
        "last_updated_timestamp".into(),
        json!(w.last_updated_timestamp),
    );
    Value::Object(out)
}

/// Events arrive as `{"entity": "MODEL_VERSION", "action": "CREATED"}` (the wire form);
/// the `"model_version.created"` string form is accepted too.
fn parse_events(raw: Option<Value>) -> Result<Option<Vec<WebhookEvent>>, ApiError> {
    let items = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ApiError(mlox_core::Error::invalid(format!(
                "Invalid value {other} for parameter 'events' supplied: expected a list of events."
            ))));
        }
    };
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        let (entity, action) = match &item {
            Value::Object(o) => {
                let field = |k: &str| {
                    o.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                (field("entity"), field("action"))
            }
            Value::String(s) => match s.split_once('.') {
                Some((e, a)) => (e.to_string(), a.to_string()),
                None => (s.clone(), String::new()),
            },
            _ => (String::new(), String::new()),
        };
        if entity.is_empty() || action.is_empty() {
            return Err(ApiError(mlox_core::Error::invalid(format!(
                "Invalid webhook event {item}: both 'entity' and 'action' are required."
            ))));
        }
        events.push(WebhookEvent::new(&entity, &action)?);
    }
    Ok(Some(events))
}

fn parse_status(raw: Option<String>) -> Result<Option<WebhookStatus>, ApiError> {
    match raw.as_deref() {
        None | Some("") | Some("WEBHOOK_STATUS_UNSPECIFIED") => Ok(None),
        Some(s) => Ok(Some(WebhookStatus::parse(s)?)),
    }
}

/// A secret as it is stored: sealed, so the database never holds it in the clear. An empty
/// secret (which clears the stored one) stays empty.
fn seal(secret: Option<String>) -> Result<Option<String>, ApiError> {
    match secret {
        Some(secret) if !secret.is_empty() => Ok(Some(mlox_webhooks::secrets().seal(&secret)?)),
        other => Ok(other),
    }
}

#[derive(Deserialize)]
pub struct CreateMsg {
    name: Option<String>,
    url: Option<String>,
    events: Option<Value>,
    description: Option<String>,
    secret: Option<String>,
    status: Option<String>,
}

pub async fn create_webhook(State(s): State<AppState>, Msg(m): Msg<CreateMsg>) -> JsonResult {
    let name = m
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| validation::missing_value("name"))?;
    let url = m
        .url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| validation::missing_value("url"))?;
    let events = parse_events(m.events)?.ok_or_else(|| validation::missing_value("events"))?;
    let status = parse_status(m.status)?;
    s.settings.webhook_policy.validate(&url).await?;
    let webhook = s
        .store
        .create_webhook(NewWebhook {
            name,
            url,
            events,
            description: m.description,
            secret: seal(m.secret)?,
            status,
        })
        .await?;
    Ok(Json(json!({ "webhook": webhook_json(&webhook) })))
}

#[derive(Deserialize)]
pub struct ListMsg {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

pub async fn list_webhooks(State(s): State<AppState>, Msg(m): Msg<ListMsg>) -> JsonResult {
    let page = s
        .store
        .list_webhooks(m.max_results, m.page_token.as_deref())
        .await?;
    let mut out = Map::new();
    if !page.items.is_empty() {
        out.insert(
            "webhooks".into(),
            page.items.iter().map(webhook_json).collect(),
        );
    }
    if let Some(token) = page.next_page_token {
        out.insert("next_page_token".into(), json!(token));
    }
    Ok(Json(Value::Object(out)))
}

pub async fn get_webhook(State(s): State<AppState>, Path(id): Path<String>) -> JsonResult {
    let webhook = s.store.get_webhook(&id).await?;
    Ok(Json(json!({ "webhook": webhook_json(&webhook) })))
}

#[derive(Deserialize)]
pub struct UpdateMsg {
    name: Option<String>,
    description: Option<String>,
    url: Option<String>,
    events: Option<Value>,
    secret: Option<String>,
    status: Option<String>,
}

/// As in MLflow: an empty name, URL or event list leaves the field unchanged, while an empty
/// description or secret clears it.
pub async fn update_webhook(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Msg(m): Msg<UpdateMsg>,
) -> JsonResult {
    let events = parse_events(m.events)?.filter(|e| !e.is_empty());
    let status = parse_status(m.status)?;
    let url = m.url.filter(|u| !u.is_empty());
    // A missing webhook is reported before a URL problem, as MLflow does.
    s.store.get_webhook(&id).await?;
    if let Some(url) = &url {
        s.settings.webhook_policy.validate(url).await?;
    }
    let update = WebhookUpdate {
        name: m.name.filter(|n| !n.is_empty()),
        description: m.description,
        url,
        events,
        secret: seal(m.secret)?,
        status,
    };
    let webhook = s.store.update_webhook(&id, update).await?;
    Ok(Json(json!({ "webhook": webhook_json(&webhook) })))
}

pub async fn delete_webhook(State(s): State<AppState>, Path(id): Path<String>) -> JsonResult {
    s.store.delete_webhook(&id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct TestMsg {
    event: Option<Value>,
}

pub async fn test_webhook(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Msg(m): Msg<TestMsg>,
) -> JsonResult {
    let event = match m.event {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) if o.is_empty() => None,
        Some(e) => parse_events(Some(Value::Array(vec![e])))?.and_then(|mut v| v.pop()),
    };
    let webhook = s.store.get_webhook(&id).await?;
    let result =
        mlox_webhooks::test_webhook(&webhook, event.as_ref(), s.settings.webhook_policy).await;
    let mut out = Map::new();
    out.insert("success".into(), json!(result.success));
    if let Some(status) = result.response_status {
        out.insert("response_status".into(), json!(status));
    }
    if let Some(body) = result.response_body {
        out.insert("response_body".into(), json!(body));
    }
    if let Some(message) = result.error_message {
        out.insert("error_message".into(), json!(message));
    }
    Ok(Json(json!({ "result": Value::Object(out) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_in_both_forms() {
        let parsed = parse_events(Some(json!([
            {"entity": "MODEL_VERSION", "action": "CREATED"},
            "model_version_tag.set",
        ])))
        .unwrap()
        .unwrap();
        assert_eq!(parsed[0].key(), "model_version.created");
        assert_eq!(parsed[1].key(), "model_version_tag.set");
        assert!(parse_events(Some(json!([{"entity": "MODEL_VERSION"}]))).is_err());
        let err =
            parse_events(Some(json!([{"entity": "MODEL_VERSION", "action": "SET"}]))).unwrap_err();
        assert_eq!(
            err.0.message,
            "Invalid action 'set' for entity 'model_version'. Valid actions are: ['created']"
        );
    }
}
