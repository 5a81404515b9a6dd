//! The search-filter grammar of MLflow's search endpoints: `filter` strings (comparisons joined by
//! `AND`) and `order_by` clauses, for runs, experiments, logged models, registered models,
//! model versions, traces and evaluation datasets. This module owns what a filter may say and
//! what it means — which key kinds and attributes each entity knows, which comparators and value
//! types each key takes, how quoted keys and values read — and the messages a rejected filter
//! gets. It accepts what MLflow's server accepts and answers the rest with MLflow's
//! INVALID_PARAMETER_VALUE errors; executing a filter is left to the stores.

mod evaluation_datasets;
pub mod issues;
mod lex;
mod rules;
mod syntax;
pub mod traces;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

use crate::Result;

/// What is being searched; each entity has its own keys and rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SearchEntity {
    Runs,
    Experiments,
    LoggedModels,
    RegisteredModels,
    ModelVersions,
    /// MLflow 3 traces (`search_traces`).
    Traces,
    /// MLflow 3 evaluation datasets (`search_datasets`).
    EvaluationDatasets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum KeyKind {
    Metric,
    Param,
    Tag,
    Attribute,
    /// A run's dataset inputs (`datasets.name`, `datasets.digest`, `datasets.context`).
    Dataset,
    /// A trace's request metadata (`metadata.<key>`, `request_metadata.<key>`).
    Metadata,
    /// A trace's spans: `name`, `type`, `status`, `content` or `attributes.<name>`.
    Span,
    /// A trace's feedback assessments, by assessment name.
    Feedback,
    /// A trace's expectation assessments, by assessment name.
    Expectation,
    /// Issues linked to a trace (`issue.id`).
    Issue,
}

/// A key a filter or ordering refers to. Attribute names are canonical: every alias MLflow
/// accepts for an attribute (`created` for `start_time`, `creation_time` for a logged model's
/// `creation_timestamp`…) resolves to one name per entity. Other names are as the user wrote
/// them, with the enclosing back-quotes or double quotes removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Key {
    pub kind: KeyKind,
    pub name: String,
}

impl Key {
    pub fn new(kind: KeyKind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// SQL `LIKE`: `%` any run of characters, `_` any one character; case-sensitive.
    Like,
    /// `LIKE`, ignoring case.
    ILike,
    In,
    NotIn,
    /// Only for params and tags of runs and tags of experiments: the key is absent.
    IsNull,
    IsNotNull,
}

impl Op {
    /// The comparator as MLflow spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Value {
    /// A quoted string, exactly as written between its quotes: MLflow unescapes nothing, so
    /// `'it''s'` compares against `it''s`.
    Str(String),
    /// A number. Numeric attributes that are timestamps or versions are whole numbers here.
    Num(f64),
    /// The strings of an `IN` / `NOT IN` list, read as Python string literals (escapes resolved).
    List(Vec<String>),
    /// The comparator (`IS NULL`, `IS NOT NULL`) takes no value.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub key: Key,
    pub op: Op,
    pub value: Value,
}

/// A conjunction of comparisons; the empty filter matches everything.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Filter {
    pub clauses: Vec<Comparison>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct OrderBy {
    pub key: Key,
    pub ascending: bool,
}

/// Parses a `filter` string for `entity`. An empty string is the empty filter.
pub fn parse_filter(entity: SearchEntity, input: &str) -> Result<Filter> {
    rules::filter(entity, input)
}

/// Parses one `order_by` clause, `key [ASC|DESC]`, ascending unless `DESC` is written.
///
/// For logged models the clause is the `field_name` of MLflow's structured order_by
/// (`metrics.<name>` or an attribute), optionally followed by `ASC` or `DESC`.
pub fn parse_order_by(entity: SearchEntity, input: &str) -> Result<OrderBy> {
    rules::order_by(entity, input)
}

impl Filter {
    /// The filter as a string that [`parse_filter`] reads back into the same filter, for every
    /// entity that accepts its keys.
    pub fn to_filter_string(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, clause) in self.clauses.iter().enumerate() {
            if index > 0 {
                f.write_str(" AND ")?;
            }
            write!(f, "{clause}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.op)?;
        match &self.value {
            Value::None => Ok(()),
            value => write!(f, " {value}"),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            KeyKind::Metric => "metrics.",
            KeyKind::Param => "params.",
            KeyKind::Tag => "tags.",
            KeyKind::Dataset => "datasets.",
            KeyKind::Metadata => "metadata.",
            KeyKind::Span => "span.",
            KeyKind::Feedback => "feedback.",
            KeyKind::Expectation => "expectation.",
            KeyKind::Issue => "issue.",
            KeyKind::Attribute => "",
        };
        write!(f, "{prefix}{}", render_key_name(&self.name))
    }
}

impl fmt::Display for OrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.key,
            if self.ascending { "ASC" } else { "DESC" }
        )
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(text) => f.write_str(&render_string_value(text)),
            Value::Num(number) => f.write_str(&render_number(*number)),
            Value::List(items) => {
                f.write_str("(")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&lex::render_python_string_literal(item))?;
                }
                f.write_str(")")
            }
            Value::None => Ok(()),
        }
    }
}

/// Bare when every dot-separated part is a word, else back-quoted; names that a back-quote
/// would cut short go in double quotes. A name that is itself wrapped in back-quotes cannot be
/// written at all, since MLflow strips one pair whichever way it is quoted.
fn render_key_name(name: &str) -> String {
    let bare = name
        .split('.')
        .all(|part| !part.is_empty() && part.chars().all(lex::is_word_char));
    if bare {
        name.to_string()
    } else if !name.contains('`') {
        format!("`{name}`")
    } else if !name.contains('"') && !name.contains('\\') {
        format!("\"{name}\"")
    } else {
        format!("`{name}`")
    }
}

/// Single quotes unless the text would end the literal early, then double quotes.
fn render_string_value(text: &str) -> String {
    if lex::literal_reads_back(text, b'\'', true) || !lex::literal_reads_back(text, b'"', true) {
        format!("'{text}'")
    } else {
        format!("\"{text}\"")
    }
}

fn render_number(number: f64) -> String {
    if number.is_infinite() {
        // Overflowing literals are how a filter says infinity.
        if number > 0.0 {
            "1e999".to_string()
        } else {
            "-1e999".to_string()
        }
    } else {
        number.to_string()
    }
}
