//! What a `search_traces` filter or ordering may say, read the way MLflow's trace search reads
//! it: the key is split into an identifier (`trace.`, `tags.`, `metadata.`, `span.`, …) and a
//! name, the value is read by identifier, then a few names are moved to where MLflow keeps them
//! (`name` is the `mlflow.traceName` tag, `run_id` the `mlflow.sourceRun` metadata, `timestamp`
//! is `timestamp_ms`) and only then are comparators checked, so each complaint is MLflow's.
//!
//! Python set literals in MLflow's messages print in hash order, which changes from process to
//! process; here they print in one fixed order.

use super::rules::{
    allowed_op, check_list_op, list_items, not_quoted, op_text, python_set, trim_backticks,
    unwrap_name,
};
use super::syntax::{RawComparison, RawKey, RawOp, RawValue};
use super::{Comparison, Key, KeyKind, Op, OrderBy, Value};
use crate::{Error, Result};

/// The tag MLflow keeps a trace's name in.
pub const TRACE_NAME_TAG: &str = "mlflow.traceName";
/// The metadata MLflow keeps the run a trace was recorded in.
pub const SOURCE_RUN_METADATA: &str = "mlflow.sourceRun";
/// The tag MLflow searches for `prompt = 'name/version'`.
pub const LINKED_PROMPTS_TAG: &str = "mlflow.linkedPrompts";

const SEARCH_ATTRIBUTES: &[&str] = &[
    "request_id",
    "timestamp",
    "timestamp_ms",
    "execution_time",
    "execution_time_ms",
    "end_time",
    "end_time_ms",
    "status",
    "client_request_id",
    "name",
    "run_id",
    "prompt",
    "text",
];
const ORDER_BY_ATTRIBUTES: &[&str] = &[
    "experiment_id",
    "timestamp",
    "timestamp_ms",
    "execution_time",
    "execution_time_ms",
    "end_time",
    "end_time_ms",
    "status",
    "request_id",
    "name",
    "run_id",
];
const NUMERIC_ATTRIBUTES: &[&str] = &[
    "timestamp_ms",
    "timestamp",
    "execution_time_ms",
    "execution_time",
    "end_time_ms",
    "end_time",
];
const LIST_ATTRIBUTES: &[&str] = &[
    "name",
    "status",
    "request_id",
    "run_id",
    "client_request_id",
];
const IDENTIFIERS: &[&str] = &[
    "tag",
    "tags",
    "attribute",
    "attributes",
    "trace",
    "request_metadata",
    "metadata",
    "span",
    "feedback",
    "expectation",
    "issue",
];
const SPAN_FIELDS: &[&str] = &["name", "type", "status"];

/// MLflow's RLIKE is listed with every string comparator; it is rejected on its own below.
const TAG_OPS: &[&str] = &[
    "!=",
    "=",
    "LIKE",
    "ILIKE",
    "RLIKE",
    "IS NULL",
    "IS NOT NULL",
];
const STRING_ATTRIBUTE_OPS: &[&str] = &["!=", "=", "IN", "NOT IN", "LIKE", "ILIKE", "RLIKE"];
const NUMERIC_OPS: &[Op] = &[Op::Gt, Op::Ge, Op::Ne, Op::Eq, Op::Lt, Op::Le];
const ASSESSMENT_OPS: &[&str] = &[
    "!=",
    "=",
    ">",
    ">=",
    "<",
    "<=",
    "LIKE",
    "ILIKE",
    "RLIKE",
    "IS NULL",
    "IS NOT NULL",
];

fn identifier_kind(written: &str) -> Result<KeyKind> {
    Ok(match trim_backticks(written) {
        "tag" | "tags" => KeyKind::Tag,
        "attribute" | "attributes" | "trace" => KeyKind::Attribute,
        "request_metadata" | "metadata" => KeyKind::Metadata,
        "span" => KeyKind::Span,
        "feedback" => KeyKind::Feedback,
        "expectation" => KeyKind::Expectation,
        "issue" => KeyKind::Issue,
        other => {
            return Err(Error::invalid(format!(
                "Invalid entity type '{other}'. Valid values are {}",
                python_set(IDENTIFIERS)
            )));
        }
    })
}

/// MLflow's name for an identifier in its messages.
fn identifier_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Tag => "tag",
        KeyKind::Metadata => "request_metadata",
        KeyKind::Span => "span",
        KeyKind::Feedback => "feedback",
        KeyKind::Expectation => "expectation",
        KeyKind::Issue => "issue",
        _ => "attribute",
    }
}

fn key(raw: &RawKey, valid_attributes: &[&str]) -> Result<(KeyKind, String)> {
    let (kind, name) = match (raw.prefix(), raw.after_prefix()) {
        (Some(prefix), Some(rest)) => (identifier_kind(prefix)?, unwrap_name(rest)),
        _ => (KeyKind::Attribute, unwrap_name(&raw.text)),
    };
    if kind == KeyKind::Attribute && !valid_attributes.contains(&name) {
        return Err(Error::invalid(format!(
            "Invalid attribute key '{name}' specified. Valid keys are '{}'",
            python_set(valid_attributes)
        )));
    }
    Ok((kind, name.to_string()))
}

/// Where MLflow keeps a key: some attribute names (matched ignoring case, whatever the
/// identifier, spans excepted) live in a tag, the metadata, the spans or another attribute.
fn relocate(kind: KeyKind, name: String) -> (KeyKind, String) {
    if kind == KeyKind::Span {
        return (kind, name);
    }
    match name.to_lowercase().as_str() {
        "name" => (KeyKind::Tag, TRACE_NAME_TAG.to_string()),
        "prompt" => (KeyKind::Tag, LINKED_PROMPTS_TAG.to_string()),
        "run_id" => (KeyKind::Metadata, SOURCE_RUN_METADATA.to_string()),
        "text" => (KeyKind::Span, "content".to_string()),
        "timestamp" => (kind, "timestamp_ms".to_string()),
        "execution_time" => (kind, "execution_time_ms".to_string()),
        "end_time" => (kind, "end_time_ms".to_string()),
        _ => (kind, name),
    }
}

fn quoted_string_expected(kind: KeyKind, text: &str) -> Error {
    Error::invalid(format!(
        "Expected a quoted string value for {} (e.g. 'my-value'). Got value {text}",
        identifier_name(kind)
    ))
}

fn value(kind: KeyKind, name: &str, raw: &RawValue) -> Result<Value> {
    let text = raw.text();
    Ok(match (kind, raw) {
        (_, RawValue::Absent) => Value::None,
        (_, RawValue::Quoted { body, .. }) => Value::Str(body.clone()),
        (_, RawValue::Unquoted { text }) => return Err(not_quoted(text)),
        (KeyKind::Tag | KeyKind::Span, RawValue::List { items, text }) => {
            Value::List(list_items(items, text)?)
        }
        (KeyKind::Attribute, RawValue::List { items, text }) => {
            if !LIST_ATTRIBUTES.contains(&name) {
                return Err(Error::invalid(format!(
                    "Only attributes in {} supports comparison with a list of quoted string \
                     values.",
                    python_set(LIST_ATTRIBUTES)
                )));
            }
            Value::List(list_items(items, text)?)
        }
        (KeyKind::Attribute, RawValue::Number { value, .. }) => {
            if !NUMERIC_ATTRIBUTES.contains(&name) {
                return Err(Error::invalid(format!(
                    "Only the '{}' attributes support comparison with numeric values.",
                    python_set(NUMERIC_ATTRIBUTES)
                )));
            }
            Value::Num(*value)
        }
        (KeyKind::Feedback | KeyKind::Expectation, RawValue::Number { value, .. }) => {
            Value::Num(*value)
        }
        (KeyKind::Feedback | KeyKind::Expectation, _) => {
            return Err(Error::invalid(format!(
                "Expected a quoted string value or numeric value for {} (e.g. 'my-value' or \
                 0.8). Got value {text}",
                identifier_name(kind)
            )));
        }
        _ => return Err(quoted_string_expected(kind, text)),
    })
}

/// The comparator when it is one of `allowed` (spelled as MLflow's sets spell them); RLIKE,
/// which MLflow also allows, is refused by name because neither database here evaluates
/// regular expressions the same way.
fn checked_op(raw: &RawOp, allowed: &[&str], complaint: impl FnOnce(&str) -> String) -> Result<Op> {
    let text = op_text(raw);
    if !allowed.contains(&text) {
        return Err(Error::invalid(complaint(text)));
    }
    match raw {
        RawOp::Known(op) => Ok(*op),
        RawOp::Unsupported(_) => Err(Error::invalid(format!(
            "The comparator '{text}' is not supported by this server in trace searches."
        ))),
    }
}

pub(super) fn comparison(raw: RawComparison) -> Result<Comparison> {
    let (kind, name) = key(&raw.key, SEARCH_ATTRIBUTES)?;
    let is_null_test = matches!(raw.op, RawOp::Known(Op::IsNull | Op::IsNotNull));
    if matches!(kind, KeyKind::Feedback | KeyKind::Expectation) && !is_null_test {
        let numeric_op = matches!(raw.op, RawOp::Known(Op::Lt | Op::Le | Op::Gt | Op::Ge));
        let is_number = matches!(raw.value, RawValue::Number { .. });
        let is_string = matches!(raw.value, RawValue::Quoted { .. });
        if numeric_op != is_number || !(is_number || is_string) {
            let text = raw.value.text();
            let identifier = identifier_name(kind);
            return Err(Error::invalid(if numeric_op {
                format!(
                    "Expected a numeric value for {identifier} when using comparator '{}'. Got \
                     value {text}",
                    op_text(&raw.op)
                )
            } else {
                format!(
                    "Expected a quoted string value for {identifier} (e.g. 'my-value'). Got \
                     value {text}"
                )
            }));
        }
    }
    let value = value(kind, &name, &raw.value)?;
    let (kind, name) = relocate(kind, name);
    let op = match kind {
        KeyKind::Issue => {
            if name != "id" {
                return Err(Error::invalid(format!(
                    "Invalid issue attribute '{name}'. Supported attributes: id"
                )));
            }
            checked_op(&raw.op, &["="], |op| {
                format!("issue.{name} comparator '{op}' not one of '{{'='}}'")
            })?
        }
        KeyKind::Attribute if NUMERIC_ATTRIBUTES.contains(&name.as_str()) => {
            // MLflow's message names the string comparators here.
            allowed_op(&raw.op, NUMERIC_OPS).ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid comparator '{}' not one of '{}",
                    op_text(&raw.op),
                    python_set(STRING_ATTRIBUTE_OPS)
                ))
            })?
        }
        KeyKind::Attribute => checked_op(&raw.op, STRING_ATTRIBUTE_OPS, |op| {
            format!(
                "Invalid comparator '{op}' not one of '{}'",
                python_set(STRING_ATTRIBUTE_OPS)
            )
        })?,
        KeyKind::Tag => checked_op(&raw.op, TAG_OPS, |op| {
            format!(
                "Invalid comparator '{op}' not one of '{}",
                python_set(TAG_OPS)
            )
        })?,
        KeyKind::Metadata => checked_op(&raw.op, TAG_OPS, |op| {
            format!(
                "Invalid comparator '{op}' not one of '{}'",
                python_set(TAG_OPS)
            )
        })?,
        KeyKind::Span => {
            let (allowed, shown): (&[&str], &str) =
                if let Some(attribute) = name.strip_prefix("attributes.") {
                    if attribute.is_empty() {
                        return Err(Error::invalid(
                            "Span attribute name cannot be empty after 'attributes.'",
                        ));
                    }
                    (STRING_ATTRIBUTE_OPS, "")
                } else if SPAN_FIELDS.contains(&name.as_str()) {
                    (STRING_ATTRIBUTE_OPS, "")
                } else if name == "content" {
                    (&["LIKE", "ILIKE"], "{'LIKE', 'ILIKE'}")
                } else {
                    return Err(Error::invalid(format!(
                        "Invalid span attribute '{name}'. Supported attributes: name, status, \
                     type, attributes.<attribute_name>."
                    )));
                };
            let shown = if shown.is_empty() {
                python_set(STRING_ATTRIBUTE_OPS)
            } else {
                shown.to_string()
            };
            checked_op(&raw.op, allowed, |op| {
                format!("span.{name} comparator '{op}' not one of '{shown}'")
            })?
        }
        KeyKind::Feedback | KeyKind::Expectation => {
            if name.is_empty() {
                return Err(Error::invalid("Assessment field name cannot be empty"));
            }
            checked_op(&raw.op, ASSESSMENT_OPS, |op| {
                format!(
                    "assessment.{name} comparator '{op}' not one of '{}'",
                    python_set(ASSESSMENT_OPS)
                )
            })?
        }
        KeyKind::Metric | KeyKind::Param | KeyKind::Dataset => {
            return Err(Error::invalid(format!(
                "Invalid search expression type '{}'",
                identifier_name(kind)
            )));
        }
    };
    check_list_op(op, &value, &raw.key.text)?;
    let value = match value {
        // A quoted number compares as the number it spells against a numeric attribute.
        Value::Str(text)
            if kind == KeyKind::Attribute && NUMERIC_ATTRIBUTES.contains(&name.as_str()) =>
        {
            match text.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Value::Num(number),
                _ => {
                    return Err(Error::invalid(format!(
                        "Expected numeric value type for numeric attribute: {name}. Found {}",
                        raw.value.text()
                    )));
                }
            }
        }
        other => other,
    };
    Ok(Comparison {
        key: Key::new(kind, name),
        op,
        value,
    })
}

pub(super) fn order_by(raw: &RawKey, ascending: bool) -> Result<OrderBy> {
    let (kind, name) = key(raw, ORDER_BY_ATTRIBUTES)?;
    let (kind, name) = relocate(kind, name);
    if !matches!(kind, KeyKind::Attribute | KeyKind::Tag | KeyKind::Metadata) {
        return Err(Error::invalid(format!(
            "Invalid identifier type '{}'",
            identifier_name(kind)
        )));
    }
    Ok(OrderBy {
        key: Key::new(kind, name),
        ascending,
    })
}
