//! `/graphql`: the GraphQL endpoint MLflow's web UI reads runs, experiments, metric histories,
//! artifacts, registry versions and dataset summaries through. Each root field is answered by
//! the REST handler of the same MLflow call (so checks, errors and shapes are that call's), and
//! the REST answer is then cut down to the fields the query selects, typed by MLflow's schema:
//! int64s as strings, absent fields as proto defaults (`""`, `"0"`, `false`, the first enum
//! value, an empty list), a NaN metric as null. A field that fails is null and its error is
//! listed, as graphene answers; the answer is `{"data", "errors"}` with status 200.

mod parse;
mod schema;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use axum::response::IntoResponse;
use futures::future::BoxFuture;
use mlox_core::Error;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::request::{Msg, decode_value};
use crate::state::AppState;
use crate::{browse, registry, tracking};
use parse::{Document, Field, Literal, OperationKind, Selection};
use schema::{FieldType, Kind};

/// A GraphQL request, from a JSON body or (GET) the query string.
#[derive(serde::Deserialize, Default)]
pub struct GraphqlRequest {
    query: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
}

pub async fn graphql(
    State(s): State<AppState>,
    method: Method,
    RawQuery(query_string): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = if method == Method::GET {
        let params = crate::request::query_to_json(query_string.as_deref().unwrap_or(""));
        let text = |key: &str| params[key].as_str().map(str::to_string);
        GraphqlRequest {
            query: text("query"),
            variables: text("variables").and_then(|v| serde_json::from_str(&v).ok()),
            operation_name: text("operationName"),
        }
    } else {
        // A JSON array is a batch: one request that runs many queries, each within the limits
        // below, which is how MLflow's GraphQL endpoint was exhausted (CVE-2025-0453).
        if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError(Error::invalid(
                "Batched GraphQL requests are not supported; send one query per request.",
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(Error::invalid(format!("Invalid GraphQL request body: {e}"))))?
    };
    let query = request
        .query
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError(Error::invalid("A GraphQL request must carry a 'query'.")))?;
    let document = parse::parse(&query).map_err(|e| ApiError(Error::invalid(e)))?;
    let answer = match parse::check_limits(&document) {
        Err(message) => failure(vec![message]),
        Ok(()) => {
            let variables = match request.variables {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            execute(&s, &document, request.operation_name.as_deref(), variables).await
        }
    };
    Ok(Json(answer))
}

fn failure(errors: Vec<String>) -> Value {
    json!({ "data": null, "errors": errors })
}

/// What resolving one operation needs besides the value at hand.
struct Context<'a> {
    state: &'a AppState,
    document: &'a Document,
    variables: Map<String, Value>,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Context<'_> {
    fn error(&self, message: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(message);
        }
    }

    /// A literal with its variables replaced by their values.
    fn value_of(&self, literal: &Literal) -> Value {
        match literal {
            Literal::Variable(name) => self.variables.get(name).cloned().unwrap_or(Value::Null),
            Literal::Int(n) => json!(n),
            Literal::Float(f) => json!(f),
            Literal::Str(s) | Literal::Enum(s) => json!(s),
            Literal::Bool(b) => json!(b),
            Literal::Null => Value::Null,
            Literal::List(items) => Value::Array(items.iter().map(|i| self.value_of(i)).collect()),
            Literal::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.value_of(v)))
                    .collect(),
            ),
        }
    }

    /// Whether `@skip`/`@include` leave the selection in.
    fn included(&self, directives: &[parse::Directive]) -> bool {
        directives.iter().all(|d| {
            let condition = d
                .arguments
                .iter()
                .find(|(name, _)| name == "if")
                .map(|(_, v)| self.value_of(v) == Value::Bool(true));
            match d.name.as_str() {
                "skip" => condition != Some(true),
                "include" => condition != Some(false),
                _ => true,
            }
        })
    }

    /// The fields a selection set asks of an object of `type_name`, fragments expanded.
    fn collect<'s>(
        &'s self,
        type_name: &str,
        selections: &'s [Selection],
        out: &mut Vec<&'s Field>,
    ) {
        for selection in selections {
            match selection {
                Selection::Field(field) if self.included(&field.directives) => out.push(field),
                Selection::Field(_) => {}
                Selection::InlineFragment {
                    type_condition,
                    directives,
                    selection_set,
                } => {
                    if type_condition.as_deref().is_none_or(|t| t == type_name)
                        && self.included(directives)
                    {
                        self.collect(type_name, selection_set, out);
                    }
                }
                Selection::FragmentSpread { name, directives } => {
                    if let Some(fragment) = self.document.fragments.get(name)
                        && fragment.type_condition == type_name
                        && self.included(directives)
                    {
                        self.collect(type_name, &fragment.selection_set, out);
                    }
                }
            }
        }
    }
}

async fn execute(
    state: &AppState,
    document: &Document,
    operation_name: Option<&str>,
    mut variables: Map<String, Value>,
) -> Value {
    let operation = match operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|o| o.name.as_deref() == Some(name)),
        None if document.operations.len() == 1 => document.operations.first(),
        None => {
            return failure(vec![
                "Must provide operation name if query contains multiple operations.".into(),
            ]);
        }
    };
    let Some(operation) = operation else {
        return failure(vec![format!(
            "Unknown operation named '{}'.",
            operation_name.unwrap_or_default()
        )]);
    };
    let root = match operation.kind {
        OperationKind::Query => "Query",
        OperationKind::Mutation => "Mutation",
        OperationKind::Subscription => {
            return failure(vec!["Schema is not configured for subscriptions.".into()]);
        }
    };
    for (name, default) in &operation.variables {
        if let Some(default) = default
            && !variables.contains_key(name)
        {
            let context = Context {
                state,
                document,
                variables: Map::new(),
                errors: Default::default(),
            };
            variables.insert(name.clone(), context.value_of(default));
        }
    }
    let context = Context {
        state,
        document,
        variables,
        errors: Default::default(),
    };
    let mut problems = Vec::new();
    validate(&context, root, &operation.selection_set, &mut problems);
    if !problems.is_empty() {
        return failure(problems);
    }
    let mut fields = Vec::new();
    context.collect(root, &operation.selection_set, &mut fields);
    let mut data = Map::new();
    for field in fields {
        if field.name == "__typename" {
            data.insert(field.response_key().to_string(), json!(root));
            continue;
        }
        let value = match resolve_root(&context, field).await {
            Ok(answer) => match schema::field(root, &field.name) {
                Some(ty) => project(&context, ty.kind, &answer, field).await,
                None => Value::Null,
            },
            Err(message) => {
                context.error(message);
                Value::Null
            }
        };
        data.insert(field.response_key().to_string(), value);
    }
    let errors = context.errors.into_inner().unwrap_or_default();
    json!({
        "data": data,
        "errors": if errors.is_empty() { Value::Null } else { json!(errors) },
    })
}

/// graphql-core's checks that every selected field exists, and that objects, and only
/// objects, select subfields.
fn validate(
    context: &Context<'_>,
    type_name: &str,
    selections: &[Selection],
    out: &mut Vec<String>,
) {
    let mut fields = Vec::new();
    context.collect(type_name, selections, &mut fields);
    for field in fields {
        if field.name == "__typename" {
            continue;
        }
        let Some(ty) = schema::field(type_name, &field.name) else {
            out.push(format!(
                "Cannot query field '{}' on type '{type_name}'.",
                field.name
            ));
            continue;
        };
        match (ty.kind, &field.selection_set) {
            (Kind::Object(child), Some(sub)) => validate(context, child, sub, out),
            (Kind::Object(child), None) => out.push(format!(
                "Field '{}' of type '{}' must have a selection of subfields. Did you mean '{} \
                 {{ ... }}'?",
                field.name,
                if ty.list {
                    format!("[{child}!]")
                } else {
                    child.to_string()
                },
                field.name
            )),
            (kind, Some(_)) => out.push(format!(
                "Field '{}' must not have a selection since type '{}' has no subfields.",
                field.name,
                kind.type_name()
            )),
            (_, None) => {}
        }
    }
}

/// The `input` argument of a root field as the REST message of the same call: GraphQL's
/// camel-case names in the proto's snake case.
fn input_message(context: &Context<'_>, field: &Field) -> Value {
    fn to_proto(value: Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (schema::proto_name(&k), to_proto(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    field
        .arguments
        .iter()
        .find(|(name, _)| name == "input")
        .map(|(_, literal)| to_proto(context.value_of(literal)))
        .unwrap_or_else(|| json!({}))
}

/// A REST handler's answer as JSON, or its error message.
async fn answer_of(response: impl IntoResponse) -> Result<Value, String> {
    let response = response.into_response();
    let ok = response.status().is_success();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
    if ok {
        Ok(value)
    } else {
        Err(value["message"]
            .as_str()
            .unwrap_or("The request failed.")
            .to_string())
    }
}

fn message<T: serde::de::DeserializeOwned>(input: Value) -> Result<Msg<T>, String> {
    decode_value(input).map(Msg).map_err(|e| e.0.message)
}

async fn resolve_root(context: &Context<'_>, field: &Field) -> Result<Value, String> {
    let s = || State(context.state.clone());
    let input = input_message(context, field);
    match field.name.as_str() {
        "test" | "testMutation" => {
            let echoed = field
                .arguments
                .iter()
                .find(|(name, _)| name == "inputString")
                .map(|(_, v)| context.value_of(v))
                .unwrap_or(Value::Null);
            Ok(json!({ "output": echoed }))
        }
        "mlflowGetExperiment" => {
            answer_of(tracking::get_experiment(s(), message(input)?).await).await
        }
        "mlflowGetRun" => answer_of(tracking::get_run(s(), message(input)?).await).await,
        "mlflowGetMetricHistoryBulkInterval" => {
            answer_of(tracking::get_metric_history_bulk_interval(s(), message(input)?).await).await
        }
        "mlflowSearchRuns" => answer_of(tracking::search_runs(s(), message(input)?).await).await,
        "mlflowSearchDatasets" => {
            answer_of(tracking::search_datasets(s(), message(input)?).await).await
        }
        "mlflowSearchModelVersions" => {
            answer_of(registry::search_model_versions(s(), message(input)?).await).await
        }
        "mlflowListArtifacts" => {
            let query: String = input
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
                .map(|(k, v)| {
                    format!(
                        "{k}={}&",
                        percent_encoding::utf8_percent_encode(
                            v,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )
                })
                .collect();
            answer_of(browse::list_run_artifacts(s(), RawQuery(Some(query))).await).await
        }
        other => Err(format!("Cannot query field '{other}'.")),
    }
}

/// `value` (a REST answer, or part of one) cut down to what `field` selects, as `kind`.
fn project<'a>(
    context: &'a Context<'a>,
    kind: Kind,
    value: &'a Value,
    field: &'a Field,
) -> BoxFuture<'a, Value> {
    Box::pin(async move {
        match kind {
            Kind::Object(type_name) => {
                let object = value.as_object().cloned().unwrap_or_default();
                let Some(selections) = &field.selection_set else {
                    return Value::Null;
                };
                let mut fields = Vec::new();
                context.collect(type_name, selections, &mut fields);
                let mut out = Map::new();
                for sub in fields {
                    let projected = if sub.name == "__typename" {
                        json!(type_name)
                    } else if let Some(ty) = schema::field(type_name, &sub.name) {
                        let child = match extension(context, type_name, &object, ty).await {
                            Some(resolved) => resolved,
                            None => object.get(ty.proto_name).cloned().unwrap_or(Value::Null),
                        };
                        project_field(context, ty, &child, sub).await
                    } else {
                        Value::Null
                    };
                    out.insert(sub.response_key().to_string(), projected);
                }
                Value::Object(out)
            }
            scalar => scalar_value(scalar, value),
        }
    })
}

async fn project_field(
    context: &Context<'_>,
    ty: FieldType,
    value: &Value,
    field: &Field,
) -> Value {
    if ty.outside_proto && value.is_null() {
        return Value::Null;
    }
    if ty.list {
        let mut items = Vec::new();
        for item in value.as_array().into_iter().flatten() {
            items.push(project(context, ty.kind, item, field).await);
        }
        Value::Array(items)
    } else {
        project(context, ty.kind, value, field).await
    }
}

/// A scalar as MLflow's schema types it; an absent value is the proto's default.
fn scalar_value(kind: Kind, value: &Value) -> Value {
    match kind {
        Kind::String => match value {
            Value::Null => json!(""),
            Value::String(_) => value.clone(),
            other => json!(other.to_string()),
        },
        Kind::Long => match value {
            Value::Null => json!("0"),
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        // NaN and the infinities are strings in proto JSON; GraphQL's Float cannot carry
        // them, and MLflow answers a NaN metric as null.
        Kind::Float => match value {
            Value::Null => json!(0.0),
            Value::Number(_) => value.clone(),
            _ => Value::Null,
        },
        Kind::Boolean => match value {
            Value::Bool(_) => value.clone(),
            _ => json!(false),
        },
        Kind::Enum(_, names) => match value {
            Value::String(s) if names.contains(&s.as_str()) => value.clone(),
            _ => json!(names[0]),
        },
        Kind::Object(_) => Value::Null,
    }
}

/// The fields MLflow adds to a run beyond its proto (`MlflowRunExtension`): its experiment and
/// the registry versions made from it. `None` for every other field.
async fn extension(
    context: &Context<'_>,
    type_name: &str,
    object: &Map<String, Value>,
    ty: FieldType,
) -> Option<Value> {
    if type_name != "MlflowRun" {
        return None;
    }
    let s = || State(context.state.clone());
    let info = object.get("info").cloned().unwrap_or_default();
    let answer = match ty.proto_name {
        "experiment" => {
            let input = json!({ "experiment_id": info["experiment_id"] });
            match message(input) {
                Ok(m) => answer_of(tracking::get_experiment(s(), m).await)
                    .await
                    .map(|a| a["experiment"].clone()),
                Err(e) => Err(e),
            }
        }
        "model_versions" => {
            let run_id = info["run_id"]
                .as_str()
                .unwrap_or_default()
                .replace('\'', "\\'");
            let input = json!({ "filter": format!("run_id='{run_id}'") });
            match message(input) {
                Ok(m) => answer_of(registry::search_model_versions(s(), m).await)
                    .await
                    .map(|a| a["model_versions"].clone()),
                Err(e) => Err(e),
            }
        }
        _ => return None,
    };
    Some(answer.unwrap_or_else(|e| {
        context.error(e);
        Value::Null
    }))
}
