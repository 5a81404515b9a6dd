//! The filter of an issue search, read as MLflow reads it: `status` and `source_run_id`
//! compared with `=` or `!=`, clauses joined by `AND`.

use super::Op;
use super::syntax::{self, FilterSyntaxError, RawOp, RawValue};
use crate::{Error, Result};

/// A field an issue search compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueField {
    Status,
    SourceRunId,
}

impl IssueField {
    pub fn column(self) -> &'static str {
        match self {
            IssueField::Status => "status",
            IssueField::SourceRunId => "source_run_id",
        }
    }
}

/// One clause of an issue search filter.
#[derive(Clone, Debug, PartialEq)]
pub struct IssueClause {
    pub field: IssueField,
    /// `true` for `=`, `false` for `!=`.
    pub equal: bool,
    pub value: String,
}

/// Reads an issue search filter (`status = 'resolved' AND source_run_id != 'abc'`).
pub fn parse_filter(input: &str) -> Result<Vec<IssueClause>> {
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw = syntax::filter(input).map_err(|error| {
        Error::invalid(match error {
            FilterSyntaxError::InvalidClause(tokens) => {
                format!("Invalid clause(s) in filter string: {}", tokens.join(", "))
            }
            _ => format!("Invalid filter string: '{input}'"),
        })
    })?;
    raw.into_iter()
        .map(|clause| {
            let key = clause.key.text.trim_matches(|c| c == '`' || c == '"');
            let field = match key {
                "status" => IssueField::Status,
                "source_run_id" => IssueField::SourceRunId,
                other => {
                    return Err(Error::invalid(format!(
                        "Invalid filter field '{other}'. Supported fields: \
                         {{'status', 'source_run_id'}}"
                    )));
                }
            };
            let equal = match clause.op {
                RawOp::Known(Op::Eq) => true,
                RawOp::Known(Op::Ne) => false,
                RawOp::Known(op) => {
                    return Err(unsupported_comparator(op.as_str()));
                }
                RawOp::Unsupported(op) => return Err(unsupported_comparator(&op)),
            };
            let value = match clause.value {
                RawValue::Quoted { body, .. } => body,
                RawValue::Number { text, .. } | RawValue::Unquoted { text } => text,
                other => {
                    return Err(Error::invalid(format!(
                        "Invalid value '{}' for issue field '{key}'",
                        other.text()
                    )));
                }
            };
            Ok(IssueClause {
                field,
                equal,
                value,
            })
        })
        .collect()
}

fn unsupported_comparator(op: &str) -> Error {
    Error::invalid(format!(
        "Invalid comparator '{op}'. Supported comparators: {{'=', '!='}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compare_status_and_source_run() {
        assert_eq!(
            parse_filter("status = 'resolved' AND source_run_id != \"r1\"").unwrap(),
            [
                IssueClause {
                    field: IssueField::Status,
                    equal: true,
                    value: "resolved".into()
                },
                IssueClause {
                    field: IssueField::SourceRunId,
                    equal: false,
                    value: "r1".into()
                },
            ]
        );
        assert!(parse_filter("  ").unwrap().is_empty());
    }

    #[test]
    fn other_fields_and_comparators_are_refused_in_mlflows_words() {
        for (filter, message) in [
            ("name = 'x'", "Invalid filter field 'name'"),
            ("status LIKE 'x%'", "Invalid comparator 'LIKE'"),
            ("status > 'a'", "Invalid comparator '>'"),
        ] {
            let err = parse_filter(filter).unwrap_err();
            assert_eq!(err.code, crate::Code::InvalidParameterValue, "{filter}");
            assert!(err.message.contains(message), "{filter}: {}", err.message);
        }
    }
}
