//! What each entity lets a filter or ordering say: its key prefixes, attributes and their
//! aliases, the comparators and value types of every key, and MLflow's wording when one of those
//! is broken. Checks run in MLflow's order (key, then value, then comparator; logged models check
//! the comparator before the value) so the first complaint is the one MLflow would make.

use super::syntax::{
    self, FilterSyntaxError, ListError, OrderBySyntaxError, RawComparison, RawKey, RawOp, RawValue,
};
use super::{Comparison, Filter, Key, KeyKind, Op, OrderBy, SearchEntity, Value};
use crate::{Error, Result};

const NUMERIC_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
const STRING_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Like, Op::ILike];
const STRING_OR_NULL_OPS: &[Op] = &[
    Op::Eq,
    Op::Ne,
    Op::Like,
    Op::ILike,
    Op::IsNull,
    Op::IsNotNull,
];
const STRING_OR_LIST_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::In, Op::NotIn];
const IDENTIFIER_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::In, Op::NotIn];

pub(super) fn filter(entity: SearchEntity, input: &str) -> Result<Filter> {
    let raw = syntax::filter(input).map_err(|error| filter_syntax_error(entity, input, error))?;
    let clauses = raw
        .into_iter()
        .map(|comparison| match entity {
            SearchEntity::Runs => run_comparison(comparison),
            SearchEntity::Experiments => experiment_comparison(comparison),
            SearchEntity::RegisteredModels => registered_model_comparison(comparison),
            SearchEntity::ModelVersions => model_version_comparison(comparison),
            SearchEntity::LoggedModels => logged_model_comparison(comparison),
            SearchEntity::Traces => super::traces::comparison(comparison),
            SearchEntity::EvaluationDatasets => super::evaluation_datasets::comparison(comparison),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Filter { clauses })
}

fn filter_syntax_error(entity: SearchEntity, input: &str, error: FilterSyntaxError) -> Error {
    match error {
        FilterSyntaxError::InvalidClause(_) if entity == SearchEntity::LoggedModels => {
            Error::invalid(format!(
                "Invalid filter string: {}. Expected a list of comparisons separated by 'AND' \
                 (e.g. 'metrics.loss > 0.1 AND params.lr = 0.01').",
                python_repr(input)
            ))
        }
        FilterSyntaxError::InvalidClause(tokens) => {
            // MLflow quotes each token for runs and traces and lists them bare for the others.
            let listed = if matches!(entity, SearchEntity::Runs | SearchEntity::Traces) {
                tokens
                    .iter()
                    .map(|token| format!("'{token}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                tokens.join(", ")
            };
            Error::invalid(format!("Invalid clause(s) in filter string: {listed}"))
        }
        FilterSyntaxError::MultipleStatements if entity == SearchEntity::LoggedModels => {
            Error::invalid(format!(
                "Invalid filter string: {}. Expected a single SQL expression.",
                python_repr(input)
            ))
        }
        FilterSyntaxError::MultipleStatements => Error::invalid(format!(
            "Search filter contained multiple expression {}. Provide AND-ed expression list.",
            python_repr(input)
        )),
        FilterSyntaxError::Blank if entity == SearchEntity::LoggedModels => {
            Error::invalid(format!(
                "Invalid filter string: {}. Expected a single SQL expression.",
                python_repr(input)
            ))
        }
        FilterSyntaxError::Blank => {
            Error::invalid(format!("Invalid filter '{input}'. Could not be parsed."))
        }
    }
}

/// How Python's `repr` shows a string, which MLflow puts in some messages.
pub(super) fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut repr = String::with_capacity(text.len() + 2);
    repr.push(quote);
    for c in text.chars() {
        match c {
            '\\' => repr.push_str("\\\\"),
            '\n' => repr.push_str("\\n"),
            '\r' => repr.push_str("\\r"),
            '\t' => repr.push_str("\\t"),
            _ if c == quote => {
                repr.push('\\');
                repr.push(c);
            }
            _ => repr.push(c),
        }
    }
    repr.push(quote);
    repr
}

pub(super) fn strip_quotes(text: &str) -> &str {
    let wrapped = |quote: char| text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote);
    if wrapped('\'') || wrapped('"') {
        &text[1..text.len() - 1]
    } else {
        text
    }
}

pub(super) fn trim_backticks(text: &str) -> &str {
    if text.len() >= 2 && text.starts_with('`') && text.ends_with('`') {
        &text[1..text.len() - 1]
    } else {
        text
    }
}

/// A key's name once its enclosing quotes are gone, as MLflow unwraps it.
pub(super) fn unwrap_name(text: &str) -> &str {
    trim_backticks(strip_quotes(text))
}

/// The set notation MLflow's messages print valid choices in.
pub(super) fn python_set(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("{{{}}}", quoted.join(", "))
}

pub(super) fn op_set(ops: &[Op]) -> String {
    let names: Vec<&str> = ops.iter().map(|op| op.as_str()).collect();
    python_set(&names)
}

pub(super) fn op_text(op: &RawOp) -> &str {
    match op {
        RawOp::Known(op) => op.as_str(),
        RawOp::Unsupported(text) => text,
    }
}

/// The comparator when it is one of `allowed`.
pub(super) fn allowed_op(op: &RawOp, allowed: &[Op]) -> Option<Op> {
    match op {
        RawOp::Known(op) if allowed.contains(op) => Some(*op),
        _ => None,
    }
}

fn is_null_test(op: &RawOp) -> bool {
    matches!(op, RawOp::Known(Op::IsNull | Op::IsNotNull))
}

pub(super) fn not_quoted(text: &str) -> Error {
    Error::invalid(format!(
        "Parameter value is either not quoted or unidentified quote types used for string value \
         {text}. Use either single or double quotes."
    ))
}

pub(super) fn list_items(
    items: &Result<Vec<String>, ListError>,
    text: &str,
) -> Result<Vec<String>> {
    match items {
        Ok(items) => Ok(items.clone()),
        Err(ListError::Empty) => Err(Error::invalid(
            "While parsing a list in the query, expected a non-empty list of string values, but \
             got empty list",
        )),
        Err(ListError::NotAllStrings) => Err(Error::invalid(format!(
            "While parsing a list in the query, expected string value, punctuation, or \
             whitespace, but got different type in list: {text}"
        ))),
        Err(ListError::IllFormed) => Err(Error::invalid(
            "While parsing a list in the query, expected a non-empty list of string values, but \
             got ill-formed list.",
        )),
    }
}

/// Lists go with `IN` / `NOT IN` only; MLflow would pass `= ('a')` on to the database.
pub(super) fn check_list_op(op: Op, value: &Value, key: &str) -> Result<()> {
    let is_list = matches!(value, Value::List(_));
    if is_list != matches!(op, Op::In | Op::NotIn) {
        return Err(Error::invalid(format!(
            "Invalid comparator '{op}' for '{key}' with a list of values. A list of quoted \
             string values is compared with IN or NOT IN."
        )));
    }
    Ok(())
}

/// Whether a number was written as a whole number, the only kind timestamps and versions take.
fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The comparator of a timestamp attribute, which MLflow compares with whole numbers only.
pub(super) fn whole_number_op(op: &RawOp, name: &str, text: &str) -> Result<Op> {
    let op = allowed_op(op, NUMERIC_OPS).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid comparator for numeric attribute: {}",
            op_text(op)
        ))
    })?;
    if !is_integer_literal(text) {
        return Err(Error::invalid(format!(
            "Invalid value for numeric attribute '{name}': '{text}'"
        )));
    }
    Ok(op)
}

/// Python's `int()` on a string: surrounding whitespace, a sign and digit-group underscores.
fn python_int(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    let (sign, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let well_grouped = !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if digits.is_empty() || !well_grouped {
        return None;
    }
    digits
        .replace('_', "")
        .parse::<i64>()
        .ok()
        .map(|value| sign * value)
}

// ----------------------------------------------------------------------------------------------
// Runs

const RUN_ENTITY_TYPES: &str = "['metric', 'parameter', 'tag', 'attribute', 'dataset']";
const RUN_SEARCH_ATTRIBUTES: &[&str] = &[
    "Created",
    "Run Name",
    "Run name",
    "artifact_uri",
    "created",
    "end_time",
    "run name",
    "run_id",
    "run_name",
    "start_time",
    "status",
    "user_id",
];
const RUN_ORDER_BY_ATTRIBUTES: &[&str] = &[
    "Created",
    "artifact_uri",
    "created",
    "end_time",
    "run_id",
    "run_name",
    "start_time",
    "status",
    "user_id",
];
const DATASET_KEYS: &[&str] = &["context", "digest", "name"];

/// The canonical name of a run attribute spelled `name` (one of the valid spellings).
fn run_attribute(name: &str) -> &str {
    match name {
        "created" | "Created" => "start_time",
        "run name" | "Run name" | "Run Name" => "run_name",
        other => other,
    }
}

/// The kind and name of a run key, with the attribute spelled as written (aliases included).
fn run_key(key: &RawKey, valid_attributes: &[&str]) -> Result<(KeyKind, String)> {
    let (kind, name) = match (key.prefix(), key.after_prefix()) {
        (Some(prefix), Some(rest)) => {
            let prefix = trim_backticks(prefix);
            let kind = match prefix {
                "metric" | "metrics" => KeyKind::Metric,
                "parameter" | "parameters" | "param" | "params" => KeyKind::Param,
                "tag" | "tags" => KeyKind::Tag,
                "attribute" | "attributes" | "attr" | "run" => KeyKind::Attribute,
                "dataset" | "datasets" => KeyKind::Dataset,
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid entity type '{prefix}'. Valid values are {RUN_ENTITY_TYPES}"
                    )));
                }
            };
            (kind, unwrap_name(rest))
        }
        _ => (KeyKind::Attribute, unwrap_name(&key.text)),
    };
    if kind == KeyKind::Attribute && !valid_attributes.contains(&name) {
        return Err(Error::invalid(format!(
            "Invalid attribute key '{name}' specified. Valid keys are '{}'",
            python_set(valid_attributes)
        )));
    }
    if kind == KeyKind::Dataset && !DATASET_KEYS.contains(&name) {
        return Err(Error::invalid(format!(
            "Invalid dataset key '{name}' specified. Valid keys are '{}'",
            python_set(DATASET_KEYS)
        )));
    }
    Ok((kind, name.to_string()))
}

/// MLflow's name for a key kind in its run messages.
fn run_kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Metric => "metric",
        KeyKind::Param => "parameter",
        KeyKind::Tag => "tag",
        KeyKind::Attribute => "attribute",
        KeyKind::Dataset => "dataset",
        // Trace key kinds never reach run rules; they read as their own prefix.
        KeyKind::Metadata => "metadata",
        KeyKind::Span => "span",
        KeyKind::Feedback => "feedback",
        KeyKind::Expectation => "expectation",
        KeyKind::Issue => "issue",
    }
}

fn run_comparison(raw: RawComparison) -> Result<Comparison> {
    let (kind, written_name) = run_key(&raw.key, RUN_SEARCH_ATTRIBUTES)?;
    let is_numeric_attribute = kind == KeyKind::Attribute
        && matches!(run_attribute(&written_name), "start_time" | "end_time");
    if is_null_test(&raw.op) && !matches!(kind, KeyKind::Param | KeyKind::Tag) {
        return Err(Error::invalid(format!(
            "IS NULL / IS NOT NULL is only supported for tags and params, not for '{}' \
             '{written_name}'",
            run_kind_name(kind)
        )));
    }
    let text = raw.value.text();
    let value = match kind {
        KeyKind::Metric => match &raw.value {
            RawValue::Number { value, .. } => Value::Num(*value),
            _ => {
                return Err(Error::invalid(format!(
                    "Expected numeric value type for metric. Found {text}"
                )));
            }
        },
        KeyKind::Param | KeyKind::Tag => match &raw.value {
            RawValue::Absent => Value::None,
            RawValue::Quoted { body, .. } => Value::Str(body.clone()),
            RawValue::Unquoted { text } => return Err(not_quoted(text)),
            _ => {
                return Err(Error::invalid(format!(
                    "Expected a quoted string value for {} (e.g. 'my-value'). Got value {text}",
                    run_kind_name(kind)
                )));
            }
        },
        KeyKind::Attribute if is_numeric_attribute => match &raw.value {
            RawValue::Number { value, .. } => Value::Num(*value),
            _ => {
                return Err(Error::invalid(format!(
                    "Expected numeric value type for numeric attribute: {written_name}. Found \
                     {text}"
                )));
            }
        },
        KeyKind::Attribute => match &raw.value {
            RawValue::Quoted { body, .. } => Value::Str(body.clone()),
            RawValue::Unquoted { text } => return Err(not_quoted(text)),
            RawValue::List { items, text } => {
                if written_name != "run_id" {
                    return Err(Error::invalid(
                        "Only ['run_id'] attributes support comparison with a list of quoted \
                         string values.",
                    ));
                }
                Value::List(list_items(items, text)?)
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Expected a quoted string value for attributes. Got value {text}"
                )));
            }
        },
        // run_key yields only run kinds, so the trace kinds never get here.
        _ => match &raw.value {
            RawValue::Quoted { body, .. } => Value::Str(body.clone()),
            RawValue::Unquoted { text } => return Err(not_quoted(text)),
            RawValue::List { items, text } => Value::List(list_items(items, text)?),
            _ => {
                return Err(Error::invalid(format!(
                    "Expected a quoted string value for dataset attributes. Got value {text}"
                )));
            }
        },
    };
    let allowed = match kind {
        KeyKind::Metric => NUMERIC_OPS,
        KeyKind::Param | KeyKind::Tag => STRING_OR_NULL_OPS,
        KeyKind::Attribute if is_numeric_attribute => NUMERIC_OPS,
        // run_key yields only run kinds; the trace kinds share the string comparators.
        _ => STRING_OR_LIST_OPS,
    };
    let op = allowed_op(&raw.op, allowed).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid comparator '{}' not one of '{}'",
            op_text(&raw.op),
            op_set(allowed)
        ))
    })?;
    check_list_op(op, &value, &raw.key.text)?;
    let name = if kind == KeyKind::Attribute {
        run_attribute(&written_name).to_string()
    } else {
        written_name
    };
    Ok(Comparison {
        key: Key::new(kind, name),
        op,
        value,
    })
}

// ----------------------------------------------------------------------------------------------
// Experiments, registered models and model versions share MLflow's narrower key syntax.

const REGISTRY_ENTITY_TYPES: &str = "('attribute', 'tag', 'tags')";

/// `tag.`/`tags.` keys and bare or `attribute.` attributes, the latter checked against `valid`.
fn attribute_or_tag_key(key: &RawKey, valid_attributes: &[&str]) -> Result<(KeyKind, String)> {
    let (kind, name) = match (key.prefix(), key.after_prefix()) {
        (Some(prefix), Some(rest)) => {
            let kind = match prefix {
                "attribute" => KeyKind::Attribute,
                "tag" | "tags" => KeyKind::Tag,
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid entity type '{prefix}'. Valid entity types are \
                         {REGISTRY_ENTITY_TYPES}"
                    )));
                }
            };
            (kind, unwrap_name(rest))
        }
        _ => (KeyKind::Attribute, unwrap_name(&key.text)),
    };
    if kind == KeyKind::Attribute && !valid_attributes.contains(&name) {
        return Err(Error::invalid(format!(
            "Invalid attribute key '{name}' specified. Valid keys are '{}'",
            python_set(valid_attributes)
        )));
    }
    Ok((kind, name.to_string()))
}

fn tag_value(value: &RawValue) -> Result<Value> {
    match value {
        RawValue::Absent => Ok(Value::None),
        RawValue::Quoted { body, .. } => Ok(Value::Str(body.clone())),
        RawValue::Unquoted { text } => Err(not_quoted(text)),
        other => Err(Error::invalid(format!(
            "Expected a quoted string value for tag (e.g. 'my-value'). Got value {}",
            other.text()
        ))),
    }
}

fn tag_op(op: &RawOp, allowed: &[Op]) -> Result<Op> {
    allowed_op(op, allowed)
        .ok_or_else(|| Error::invalid(format!("Invalid comparator for tag: {}", op_text(op))))
}

const EXPERIMENT_ATTRIBUTES: &[&str] =
    &["creation_time", "experiment_id", "last_update_time", "name"];

fn experiment_comparison(raw: RawComparison) -> Result<Comparison> {
    let (kind, name) = attribute_or_tag_key(&raw.key, EXPERIMENT_ATTRIBUTES)?;
    if kind == KeyKind::Tag {
        let value = tag_value(&raw.value)?;
        let op = tag_op(&raw.op, STRING_OR_NULL_OPS)?;
        return Ok(Comparison {
            key: Key::new(kind, name),
            op,
            value,
        });
    }
    if is_null_test(&raw.op) {
        return Err(Error::invalid(format!(
            "IS NULL / IS NOT NULL is only supported for tags, not for attribute '{name}'"
        )));
    }
    let text = raw.value.text();
    let is_time = matches!(name.as_str(), "creation_time" | "last_update_time");
    let value = match &raw.value {
        RawValue::Number { value, .. } if is_time => Value::Num(*value),
        _ if is_time => {
            return Err(Error::invalid(format!(
                "Expected numeric value type for numeric attribute: {name}. Found {text}"
            )));
        }
        RawValue::Quoted { body, .. } => Value::Str(body.clone()),
        RawValue::Unquoted { text } => return Err(not_quoted(text)),
        RawValue::List { items, text } => {
            if name != "experiment_id" {
                return Err(Error::invalid(
                    "Only ['experiment_id'] attributes support comparison with a list of quoted \
                     string values.",
                ));
            }
            Value::List(list_items(items, text)?)
        }
        _ => {
            return Err(Error::invalid(format!(
                "Expected a quoted string value for attributes. Got value {text}"
            )));
        }
    };
    let op = match name.as_str() {
        "experiment_id" => {
            let op = allowed_op(&raw.op, IDENTIFIER_OPS).ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid comparator for experiment_id: {}",
                    op_text(&raw.op)
                ))
            })?;
            let ids: &[String] = match &value {
                Value::Str(id) => std::slice::from_ref(id),
                Value::List(ids) => ids,
                _ => &[],
            };
            if let Some(bad) = ids.iter().find(|id| python_int(id).is_none()) {
                return Err(Error::invalid(format!(
                    "Invalid experiment ID '{bad}'. Experiment ID must be a valid integer."
                )));
            }
            op
        }
        _ if is_time => whole_number_op(&raw.op, &name, text)?,
        _ => allowed_op(&raw.op, STRING_OPS).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid comparator for string attribute: {}",
                op_text(&raw.op)
            ))
        })?,
    };
    check_list_op(op, &value, &raw.key.text)?;
    Ok(Comparison {
        key: Key::new(kind, name),
        op,
        value,
    })
}

fn registered_model_comparison(raw: RawComparison) -> Result<Comparison> {
    let (kind, name) = attribute_or_tag_key(&raw.key, &["name"])?;
    if kind == KeyKind::Tag {
        if is_null_test(&raw.op) {
            return Err(Error::invalid(format!(
                "Invalid comparator for tag: {}",
                op_text(&raw.op)
            )));
        }
        let value = tag_value(&raw.value)?;
        let op = tag_op(&raw.op, STRING_OPS)?;
        return Ok(Comparison {
            key: Key::new(kind, name),
            op,
            value,
        });
    }
    if is_null_test(&raw.op) {
        return Err(Error::invalid(format!(
            "Invalid comparator for attribute: {}",
            op_text(&raw.op)
        )));
    }
    let value = match &raw.value {
        RawValue::Quoted { body, .. } => Value::Str(body.clone()),
        RawValue::Unquoted { text } => return Err(not_quoted(text)),
        RawValue::List { items, text } => Value::List(list_items(items, text)?),
        other => {
            return Err(Error::invalid(format!(
                "Expected a quoted string value or a list of quoted string values for \
                 attributes. Got value {}",
                other.text()
            )));
        }
    };
    let op = allowed_op(&raw.op, STRING_OR_LIST_OPS).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid comparator for attribute: {}",
            op_text(&raw.op)
        ))
    })?;
    check_list_op(op, &value, &raw.key.text)?;
    Ok(Comparison {
        key: Key::new(kind, name),
        op,
        value,
    })
}

const MODEL_VERSION_ATTRIBUTES: &[&str] = &["name", "run_id", "source_path", "version_number"];

fn model_version_comparison(raw: RawComparison) -> Result<Comparison> {
    let (kind, name) = attribute_or_tag_key(&raw.key, MODEL_VERSION_ATTRIBUTES)?;
    if kind == KeyKind::Tag {
        if is_null_test(&raw.op) {
            return Err(Error::invalid(format!(
                "Invalid comparator for tag: {}",
                op_text(&raw.op)
            )));
        }
        let value = tag_value(&raw.value)?;
        let op = tag_op(&raw.op, STRING_OPS)?;
        return Ok(Comparison {
            key: Key::new(kind, name),
            op,
            value,
        });
    }
    let is_version = name == "version_number";
    let value = match &raw.value {
        RawValue::Quoted { body, .. } => Value::Str(body.clone()),
        RawValue::Unquoted { text } => return Err(not_quoted(text)),
        RawValue::List { items, text } => {
            if !matches!(name.as_str(), "name" | "run_id") {
                return Err(Error::invalid(
                    "Only ['name', 'run_id'] attributes support comparison with a list of quoted \
                     string values.",
                ));
            }
            Value::List(list_items(items, text)?)
        }
        RawValue::Number { value, .. } => {
            if !is_version {
                return Err(Error::invalid(
                    "Only the '{'creation_timestamp', 'last_updated_timestamp', \
                     'version_number'}' attributes support comparison with numeric values.",
                ));
            }
            Value::Num(*value)
        }
        RawValue::Absent => {
            return Err(Error::invalid(format!(
                "Invalid comparator for attribute: {}",
                op_text(&raw.op)
            )));
        }
    };
    if is_version {
        let op = allowed_op(&raw.op, NUMERIC_OPS).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid comparator for attribute version_number: {}",
                op_text(&raw.op)
            ))
        })?;
        // MLflow takes the version as an integer, from a number or a quoted string.
        let version = match (&raw.value, &value) {
            (RawValue::Number { text, .. }, _) if is_integer_literal(text) => text.parse().ok(),
            (_, Value::Str(text)) => python_int(text),
            _ => None,
        };
        let Some(version) = version else {
            let shown = match &value {
                Value::Str(text) => python_repr(text),
                _ => raw.value.text().to_string(),
            };
            return Err(Error::invalid(format!(
                "Invalid value for numeric attribute 'version_number': {shown}"
            )));
        };
        return Ok(Comparison {
            key: Key::new(kind, name),
            op,
            value: Value::Num(version as f64),
        });
    }
    let allowed = if matches!(name.as_str(), "name" | "run_id") {
        STRING_OR_LIST_OPS
    } else {
        STRING_OPS
    };
    let op = allowed_op(&raw.op, allowed).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid comparator for attribute: {}",
            op_text(&raw.op)
        ))
    })?;
    check_list_op(op, &value, &raw.key.text)?;
    Ok(Comparison {
        key: Key::new(kind, name),
        op,
        value,
    })
}

// ----------------------------------------------------------------------------------------------
// Logged models have a parser of their own in MLflow, with plural prefixes only.

const LOGGED_MODEL_ENTITY_TYPES: &str = "['attributes', 'metrics', 'params', 'tags']";
const LOGGED_MODEL_ATTRIBUTES: &[&str] = &[
    "creation_time",
    "creation_timestamp",
    "last_updated_time",
    "last_updated_timestamp",
    "model_id",
    "model_type",
    "name",
    "source_run_id",
    "status",
];

/// The canonical name of a logged-model attribute, if it is one.
fn logged_model_attribute(name: &str) -> Option<&'static str> {
    Some(match name {
        "creation_time" | "creation_timestamp" | "creation_timestamp_ms" => "creation_timestamp",
        "last_updated_time" | "last_updated_timestamp" | "last_updated_timestamp_ms" => {
            "last_updated_timestamp"
        }
        "model_id" => "model_id",
        "model_type" => "model_type",
        "name" => "name",
        "source_run_id" => "source_run_id",
        "status" => "status",
        _ => return None,
    })
}

fn logged_model_key(key: &RawKey) -> Result<Key> {
    let (kind, name) = match (key.prefix(), key.after_prefix()) {
        (Some(prefix), Some(rest)) => {
            let kind = match prefix {
                "attributes" => KeyKind::Attribute,
                "metrics" => KeyKind::Metric,
                "params" => KeyKind::Param,
                "tags" => KeyKind::Tag,
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid entity type: {}. Expected one of {LOGGED_MODEL_ENTITY_TYPES}.",
                        python_repr(prefix)
                    )));
                }
            };
            (kind, rest.trim_matches('`'))
        }
        _ => (KeyKind::Attribute, unwrap_name(&key.text)),
    };
    if kind != KeyKind::Attribute {
        return Ok(Key::new(kind, name));
    }
    let canonical = logged_model_attribute(name).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid attribute key '{name}' specified. Valid keys are '{}'",
            python_set(LOGGED_MODEL_ATTRIBUTES)
        ))
    })?;
    Ok(Key::new(kind, canonical))
}

fn logged_model_comparison(raw: RawComparison) -> Result<Comparison> {
    let key = logged_model_key(&raw.key)?;
    let is_numeric = key.kind == KeyKind::Metric
        || (key.kind == KeyKind::Attribute
            && matches!(
                key.name.as_str(),
                "creation_timestamp" | "last_updated_timestamp"
            ));
    let prefix = match key.kind {
        KeyKind::Metric => "metrics",
        KeyKind::Param => "params",
        KeyKind::Tag => "tags",
        _ => "attributes",
    };
    // Listed in the order MLflow's message lists them.
    let allowed: &[Op] = if is_numeric {
        &[Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne]
    } else {
        STRING_OR_LIST_OPS
    };
    let op = allowed_op(&raw.op, allowed).ok_or_else(|| {
        let choices: Vec<String> = allowed.iter().map(|op| format!("'{op}'")).collect();
        Error::invalid(format!(
            "Invalid comparison operator for {prefix}.{}: '{}'. Expected one of ({}).",
            key.name,
            op_text(&raw.op),
            choices.join(", ")
        ))
    })?;
    let value = match &raw.value {
        RawValue::Number { value, .. } if is_numeric => Value::Num(*value),
        other if is_numeric => {
            return Err(Error::invalid(format!(
                "Expected a numeric value for {prefix}.{}. Got value {}",
                key.name,
                other.text()
            )));
        }
        RawValue::Quoted { body, .. } => Value::Str(body.clone()),
        // MLflow reads an unquoted number or word as the string it spells.
        RawValue::Number { text, .. } | RawValue::Unquoted { text } => Value::Str(text.clone()),
        RawValue::List { items, text } => Value::List(list_items(items, text)?),
        RawValue::Absent => Value::None,
    };
    check_list_op(op, &value, &raw.key.text)?;
    Ok(Comparison { key, op, value })
}

// ----------------------------------------------------------------------------------------------
// order_by

pub(super) fn order_by(entity: SearchEntity, input: &str) -> Result<OrderBy> {
    let parse = || {
        syntax::order_by(input).map_err(|error| match error {
            OrderBySyntaxError::Unparseable => Error::invalid(format!(
                "Invalid order_by clause '{input}'. Could not be parsed."
            )),
            OrderBySyntaxError::InvalidDirection => Error::invalid(format!(
                "Invalid ordering key in order_by clause '{input}'."
            )),
        })
    };
    let (key, ascending) = match entity {
        SearchEntity::LoggedModels => return logged_model_order_by(input),
        _ => {
            let (key, direction) = parse()?;
            (key, direction.unwrap_or(true))
        }
    };
    let key = match entity {
        SearchEntity::Runs => {
            let (kind, name) = run_key(&key, RUN_ORDER_BY_ATTRIBUTES)?;
            match kind {
                KeyKind::Attribute => Key::new(kind, run_attribute(&name)),
                KeyKind::Dataset => {
                    return Err(Error::invalid("Invalid identifier type 'dataset'"));
                }
                _ => Key::new(kind, name),
            }
        }
        SearchEntity::Experiments => {
            let (kind, name) = attribute_or_tag_key(&key, EXPERIMENT_ATTRIBUTES)?;
            if kind != KeyKind::Attribute {
                return Err(Error::invalid("Invalid order_by entity: tag"));
            }
            Key::new(kind, name)
        }
        SearchEntity::RegisteredModels => {
            let name = match (key.first_dot, unwrap_name(&key.text)) {
                (None, "name") => "name",
                (None, "timestamp" | "last_updated_timestamp") => "last_updated_timestamp",
                (_, written) => {
                    return Err(Error::invalid(format!(
                        "Invalid order by key '{written}' specified. Valid keys are \
                         '{{'name', 'timestamp'}}'"
                    )));
                }
            };
            Key::new(KeyKind::Attribute, name)
        }
        SearchEntity::ModelVersions => {
            const ORDERABLE: &[&str] = &[
                "creation_timestamp",
                "last_updated_timestamp",
                "name",
                "version_number",
            ];
            let (kind, name) = attribute_or_tag_key(&key, ORDERABLE)?;
            if kind != KeyKind::Attribute {
                return Err(Error::invalid(format!(
                    "Invalid order by key '{name}' specified. Valid keys are {}",
                    python_set(ORDERABLE)
                )));
            }
            Key::new(kind, name)
        }
        SearchEntity::LoggedModels => return logged_model_order_by(input),
        SearchEntity::Traces => return super::traces::order_by(&key, ascending),
        SearchEntity::EvaluationDatasets => {
            return super::evaluation_datasets::order_by(&key, ascending);
        }
    };
    Ok(OrderBy { key, ascending })
}

/// A logged model's `field_name` is free text: `metrics.<any name>` or an attribute.
fn logged_model_order_by(input: &str) -> Result<OrderBy> {
    let trimmed = input.trim();
    let (field, ascending) = match trimmed.rsplit_once(char::is_whitespace) {
        Some((field, word)) if word.eq_ignore_ascii_case("asc") => (field.trim_end(), true),
        Some((field, word)) if word.eq_ignore_ascii_case("desc") => (field.trim_end(), false),
        _ => (trimmed, true),
    };
    let key = match field.split_once('.') {
        Some(("metrics", name)) => Key::new(KeyKind::Metric, name),
        Some(_) => {
            return Err(Error::invalid(format!(
                "Invalid order by field name: {field}. Only metrics are supported."
            )));
        }
        None => {
            let name = logged_model_attribute(field)
                .ok_or_else(|| Error::invalid(format!("Invalid order by field name: {field}.")))?;
            Key::new(KeyKind::Attribute, name)
        }
    };
    Ok(OrderBy { key, ascending })
}
