//! What a `search_datasets` filter or ordering may say about MLflow 3 evaluation datasets: the
//! attributes `name`, `created_by`, `last_updated_by` (text) and `created_time`,
//! `last_update_time` (whole numbers), and `tags.<key>`. Checks run in MLflow's order (key,
//! value, then comparator) with its wording; Python sets print in one fixed order here.

use super::rules::{
    allowed_op, list_items, not_quoted, op_text, python_set, trim_backticks, unwrap_name,
    whole_number_op,
};
use super::syntax::{RawComparison, RawKey, RawOp, RawValue};
use super::{Comparison, Key, KeyKind, Op, OrderBy, Value};
use crate::{Error, Result};

const SEARCH_ATTRIBUTES: &[&str] = &[
    "name",
    "created_time",
    "last_update_time",
    "created_by",
    "last_updated_by",
];
const ORDER_BY_ATTRIBUTES: &[&str] = &["name", "created_time", "last_update_time"];
const NUMERIC_ATTRIBUTES: &[&str] = &["created_time", "last_update_time"];
const TAG_OPS: &[Op] = &[Op::Ne, Op::Eq, Op::Like, Op::ILike];
/// Text attributes take these, `name` also `IN`; any other comparator MLflow does not list for
/// text (`<`, `>`…) it hands to the database as written.
const STRING_OPS: &[Op] = &[Op::Ne, Op::Eq, Op::Like, Op::ILike];
const ORDINARY_STRING_OPS: &[Op] = &[Op::Ne, Op::Eq, Op::Like, Op::ILike, Op::In, Op::NotIn];

/// A tag or an attribute; `attributes.` and every other prefix are refused as MLflow refuses
/// them.
fn key(raw: &RawKey, valid_attributes: &[&str]) -> Result<(KeyKind, String)> {
    match (raw.prefix(), raw.after_prefix()) {
        (Some(prefix), Some(rest)) => {
            if trim_backticks(prefix) != "tags" {
                return Err(Error::invalid(format!(
                    "Invalid identifier token '{prefix}' specified"
                )));
            }
            Ok((KeyKind::Tag, unwrap_name(rest).to_string()))
        }
        _ => {
            let name = unwrap_name(&raw.text);
            if !valid_attributes.contains(&name) {
                return Err(Error::invalid(format!(
                    "Invalid attribute key '{name}' specified. Valid keys are: {}",
                    python_set(valid_attributes)
                )));
            }
            Ok((KeyKind::Attribute, name.to_string()))
        }
    }
}

pub(super) fn comparison(raw: RawComparison) -> Result<Comparison> {
    let (kind, name) = key(&raw.key, SEARCH_ATTRIBUTES)?;
    let numeric = kind == KeyKind::Attribute && NUMERIC_ATTRIBUTES.contains(&name.as_str());
    if matches!(raw.op, RawOp::Known(Op::IsNull | Op::IsNotNull)) && kind != KeyKind::Tag {
        return Err(Error::invalid(format!(
            "IS NULL / IS NOT NULL is only supported for tags and params, not for 'attribute' \
             '{name}'"
        )));
    }
    let text = raw.value.text();
    let value = match &raw.value {
        RawValue::Absent => Value::None,
        RawValue::Number { value, .. } if numeric => Value::Num(*value),
        _ if numeric => {
            return Err(Error::invalid(format!(
                "Expected numeric value type for numeric attribute: {name}. Found {text}"
            )));
        }
        RawValue::Quoted { body, .. } => Value::Str(body.clone()),
        RawValue::Unquoted { text } => return Err(not_quoted(text)),
        RawValue::List { items, text } if kind == KeyKind::Attribute => {
            if name != "name" {
                return Err(Error::invalid(
                    "Only ['name'] attributes support comparison with a list of quoted string \
                     values.",
                ));
            }
            Value::List(list_items(items, text)?)
        }
        _ if kind == KeyKind::Tag => {
            return Err(Error::invalid(format!(
                "Expected a quoted string value for tag (e.g. 'my-value'). Got value {text}"
            )));
        }
        _ => {
            return Err(Error::invalid(format!(
                "Expected a quoted string value for attributes. Got value {text}"
            )));
        }
    };
    let is_list = matches!(value, Value::List(_));
    if is_list && raw.op != RawOp::Known(Op::In) {
        return Err(Error::invalid(
            "List values for 'name' are only supported with the IN comparator.",
        ));
    }
    let op = if kind == KeyKind::Tag {
        allowed_op(&raw.op, TAG_OPS).ok_or_else(|| {
            Error::invalid(format!("Invalid comparator for tag: {}", op_text(&raw.op)))
        })?
    } else if numeric {
        whole_number_op(&raw.op, &name, text)?
    } else {
        match &raw.op {
            RawOp::Known(op) if STRING_OPS.contains(op) => *op,
            RawOp::Known(Op::In) if name == "name" && is_list => Op::In,
            RawOp::Known(op) if !ORDINARY_STRING_OPS.contains(op) => *op,
            other => {
                return Err(Error::invalid(format!(
                    "Invalid comparator for string attribute: {}",
                    op_text(other)
                )));
            }
        }
    };
    Ok(Comparison {
        key: Key::new(kind, name),
        op,
        value,
    })
}

pub(super) fn order_by(raw: &RawKey, ascending: bool) -> Result<OrderBy> {
    let (kind, name) = key(raw, ORDER_BY_ATTRIBUTES)?;
    if kind != KeyKind::Attribute {
        return Err(Error::invalid("Invalid order_by entity: tag"));
    }
    Ok(OrderBy {
        key: Key::new(kind, name),
        ascending,
    })
}
