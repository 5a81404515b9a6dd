//! MLflow 3 evaluation datasets (`mlflow.genai.datasets`): named collections of records, each
//! record an `inputs` object with optional outputs, expectations, tags and a source. This module
//! holds their rules, as MLflow's SQL store applies them: a record is identified within its
//! dataset by the SHA-256 of its inputs (`json.dumps(inputs, sort_keys=True)`), so upserting
//! the same inputs again merges into the stored record (outputs replaced, expectations and tags
//! merged key by key); every upsert refreshes the dataset's digest (the first 8 hex digits of
//! SHA-256 over `name:last_update_time`), widens its schema with the field types it has not
//! seen and counts its records in its profile. The wire shapes are MLflow's: tags, schema and
//! profile travel as JSON text inside the dataset message, records as one JSON text.

use crate::entities::KeyValue;
use crate::spans::python_json_dumps_ascii;
use crate::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::fmt;

/// The tag that names who made a dataset or record; it becomes `created_by`/`last_updated_by`.
pub const MLFLOW_USER_TAG: &str = "mlflow.user";

const SOURCE_TYPES: &[&str] = &["UNSPECIFIED", "TRACE", "HUMAN", "DOCUMENT", "CODE"];

pub fn new_dataset_id() -> String {
    format!("d-{}", uuid::Uuid::new_v4().simple())
}

pub fn new_record_id() -> String {
    format!("dr-{}", uuid::Uuid::new_v4().simple())
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The digest a dataset has after a change at `last_update_time` (ms).
pub fn dataset_digest(name: &str, last_update_time: i64) -> String {
    let mut digest = sha256_hex(&format!("{name}:{last_update_time}"));
    digest.truncate(8);
    digest
}

/// What identifies a record within its dataset: the hash of its inputs as MLflow writes them.
pub fn inputs_hash(inputs: &Map<String, Value>) -> String {
    sha256_hex(&python_json_dumps_ascii(inputs))
}

/// Python's `str()` of a JSON value, which is how MLflow stores a tag value that is not text.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => python_json_dumps_ascii(other),
    }
}

/// A request field that carries JSON as text (MLflow's dataset messages do).
fn json_parameter(text: &str, field: &str, shape: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| not_a(field, shape, Some(e)))
}

fn not_a(field: &str, shape: &str, cause: Option<serde_json::Error>) -> Error {
    let cause = cause.map(|e| format!(" ({e})")).unwrap_or_default();
    Error::invalid(format!(
        "Invalid value for parameter '{field}': it must be {shape}{cause}."
    ))
}

/// The `tags` field of create-dataset and set-dataset-tags: a JSON object as text. Values that
/// are not text are stored as Python's `str()` writes them; `null` values are skipped, as
/// MLflow skips them when setting tags.
pub fn parse_tags(text: &str) -> Result<Vec<KeyValue>> {
    let Value::Object(map) = json_parameter(text, "tags", "a JSON object of tags")? else {
        return Err(not_a("tags", "a JSON object of tags", None));
    };
    Ok(map
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| KeyValue::new(key.clone(), python_str(value)))
        .collect())
}

/// Where a record came from: `{"source_type": "TRACE", "source_data": {"trace_id": …}}`.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSource {
    /// One of UNSPECIFIED, TRACE, HUMAN, DOCUMENT, CODE.
    pub source_type: String,
    pub source_data: Map<String, Value>,
}

impl RecordSource {
    fn parse(value: &Value) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(Error::invalid(
                "A record's 'source' must be an object with 'source_type' and 'source_data'.",
            ));
        };
        let written = match map.get("source_type") {
            Some(Value::String(text)) => text.to_uppercase(),
            Some(Value::Null) | None => {
                return Err(Error::invalid(
                    "A record's 'source' must name its 'source_type'.",
                ));
            }
            Some(other) => python_str(other).to_uppercase(),
        };
        if !SOURCE_TYPES.contains(&written.as_str()) {
            return Err(Error::invalid(format!(
                "Invalid dataset record source type: {written}. Valid source types: ['{}']",
                SOURCE_TYPES.join("', '")
            )));
        }
        let source_data = match map.get("source_data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(data)) => data.clone(),
            Some(_) => {
                return Err(Error::invalid(
                    "A record's 'source_data' must be an object.",
                ));
            }
        };
        Ok(RecordSource {
            source_type: written,
            source_data,
        })
    }

    /// The id a source is looked up by: a trace's id, else the data's `source_id`.
    fn source_id(&self) -> Option<String> {
        let key = if self.source_type == "TRACE" {
            "trace_id"
        } else {
            "source_id"
        };
        match self.source_data.get(key)? {
            Value::Null => None,
            value => Some(python_str(value)),
        }
    }

    fn to_value(&self) -> Value {
        json!({"source_type": self.source_type, "source_data": self.source_data})
    }
}

/// One record of an upsert, as the client sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordInput {
    pub inputs: Map<String, Value>,
    /// `None` when the record has no `outputs` key; `Some(Value::Null)` when it sends `null`.
    pub outputs: Option<Value>,
    pub expectations: Option<Map<String, Value>>,
    pub tags: Option<Map<String, Value>>,
    pub source: Option<RecordSource>,
}

fn optional_object(record: &Map<String, Value>, field: &str) -> Result<Option<Map<String, Value>>> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(_) => Err(Error::invalid(format!(
            "A record's '{field}' must be a JSON object."
        ))),
    }
}

/// The `records` field of an upsert: a JSON list of record objects, as text.
pub fn parse_records(text: &str) -> Result<Vec<RecordInput>> {
    let Value::Array(items) = json_parameter(text, "records", "a JSON list of records")? else {
        return Err(not_a("records", "a JSON list of records", None));
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(record) = item else {
                return Err(Error::invalid("Each record must be a JSON object."));
            };
            Ok(RecordInput {
                inputs: optional_object(record, "inputs")?.unwrap_or_default(),
                outputs: record.get("outputs").cloned(),
                expectations: optional_object(record, "expectations")?,
                tags: optional_object(record, "tags")?,
                source: record.get("source").map(RecordSource::parse).transpose()?,
            })
        })
        .collect()
}

fn user_of(tags: Option<&Map<String, Value>>) -> Option<String> {
    tags?.get(MLFLOW_USER_TAG).map(python_str)
}

/// Who an upsert counts as made by: the `mlflow.user` tag of the last record carrying one.
pub fn upserted_by(records: &[RecordInput]) -> Option<String> {
    records.iter().rev().find_map(|r| user_of(r.tags.as_ref()))
}

/// A stored record.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetRecord {
    pub dataset_record_id: String,
    pub dataset_id: String,
    pub inputs: Map<String, Value>,
    /// `None` when the record has none (`outputs: null`); a record sent without outputs has `{}`.
    pub outputs: Option<Value>,
    pub expectations: Option<Map<String, Value>>,
    pub tags: Map<String, Value>,
    pub source: Option<Value>,
    pub source_id: Option<String>,
    pub source_type: Option<String>,
    pub created_time: i64,
    pub last_update_time: i64,
    pub created_by: Option<String>,
    pub last_updated_by: Option<String>,
}

impl DatasetRecord {
    /// A record first seen in an upsert at `now`.
    pub fn new(dataset_id: &str, input: &RecordInput, now: i64) -> Self {
        let user = user_of(input.tags.as_ref());
        DatasetRecord {
            dataset_record_id: new_record_id(),
            dataset_id: dataset_id.to_string(),
            inputs: input.inputs.clone(),
            outputs: match &input.outputs {
                None => Some(Value::Object(Map::new())),
                Some(Value::Null) => None,
                Some(value) => Some(value.clone()),
            },
            expectations: input.expectations.clone(),
            tags: input.tags.clone().unwrap_or_default(),
            source: input.source.as_ref().map(RecordSource::to_value),
            source_id: input.source.as_ref().and_then(RecordSource::source_id),
            source_type: input.source.as_ref().map(|s| s.source_type.clone()),
            created_time: now,
            last_update_time: now,
            created_by: user.clone(),
            last_updated_by: user,
        }
    }

    /// Merges an upsert of the same inputs: outputs sent (even `null`) replace the stored
    /// ones, expectations and tags are updated key by key; the source and creation stay.
    pub fn merge(&mut self, input: &RecordInput, now: i64) {
        if let Some(outputs) = &input.outputs {
            self.outputs = (!outputs.is_null()).then(|| outputs.clone());
        }
        if let Some(expectations) = input.expectations.as_ref().filter(|e| !e.is_empty()) {
            self.expectations
                .get_or_insert_with(Map::new)
                .extend(expectations.clone());
        }
        if let Some(tags) = input.tags.as_ref().filter(|t| !t.is_empty()) {
            self.tags.extend(tags.clone());
        }
        self.last_update_time = now;
        if let Some(user) = user_of(input.tags.as_ref()) {
            self.last_updated_by = Some(user);
        }
    }

    /// The record as `GET …/records` lists it (MLflow's `DatasetRecord.to_dict`).
    pub fn to_dict(&self) -> Value {
        let mut out = Map::new();
        out.insert("dataset_record_id".into(), json!(self.dataset_record_id));
        out.insert("dataset_id".into(), json!(self.dataset_id));
        out.insert("inputs".into(), Value::Object(self.inputs.clone()));
        if let Some(outputs) = &self.outputs {
            out.insert("outputs".into(), outputs.clone());
        }
        if let Some(expectations) = &self.expectations {
            out.insert("expectations".into(), Value::Object(expectations.clone()));
        }
        out.insert("tags".into(), Value::Object(self.tags.clone()));
        let optional = [
            ("source", self.source.clone()),
            ("source_id", self.source_id.clone().map(Value::String)),
            ("source_type", self.source_type.clone().map(Value::String)),
            ("created_by", self.created_by.clone().map(Value::String)),
            (
                "last_updated_by",
                self.last_updated_by.clone().map(Value::String),
            ),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                out.insert(key.into(), value);
            }
        }
        out.insert("created_time".into(), json!(self.created_time));
        out.insert("last_update_time".into(), json!(self.last_update_time));
        Value::Object(out)
    }
}

/// Field names with their inferred types, in the order they were first seen.
#[derive(Clone, Debug, Default, PartialEq)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn add_missing(&mut self, values: &Map<String, Value>) {
        for (key, value) in values {
            if !self.0.iter().any(|(k, _)| k == key) {
                self.0.push((key.clone(), field_type(value).to_string()));
            }
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, kind) in &self.0 {
            map.serialize_entry(key, kind)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of field types")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, kind)) = map.next_entry::<String, Value>()? {
                    fields.push((key, kind.as_str().unwrap_or("unknown").to_string()));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// A dataset's outputs are described field by field, or by one type when they are not objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum OutputsSchema {
    Fields(Fields),
    Type(String),
}

/// What MLflow records of a dataset's fields: `{"inputs": {…}, "outputs": {…}, "expectations":
/// {…}, "version": "1.0"}`, each field with the type of the first value seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSchema {
    #[serde(default)]
    inputs: Fields,
    #[serde(default = "no_outputs")]
    outputs: OutputsSchema,
    #[serde(default)]
    expectations: Fields,
    #[serde(default = "schema_version")]
    version: String,
}

fn no_outputs() -> OutputsSchema {
    OutputsSchema::Fields(Fields::default())
}

fn schema_version() -> String {
    "1.0".into()
}

/// The type name MLflow infers for a field's value.
fn field_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The schema after an upsert of `records` into a dataset whose stored schema is `stored`;
/// `None` when there is nothing to describe (no schema yet and no records).
pub fn updated_schema(stored: Option<&str>, records: &[RecordInput]) -> Option<String> {
    let existing = stored.and_then(|text| serde_json::from_str::<DatasetSchema>(text).ok());
    if records.is_empty() && existing.is_none() {
        return None;
    }
    let mut schema = existing.unwrap_or_else(|| DatasetSchema {
        inputs: Fields::default(),
        outputs: no_outputs(),
        expectations: Fields::default(),
        version: schema_version(),
    });
    for record in records {
        schema.inputs.add_missing(&record.inputs);
        match (&mut schema.outputs, &record.outputs) {
            (_, None | Some(Value::Null)) => {}
            (OutputsSchema::Fields(fields), Some(Value::Object(values))) => {
                fields.add_missing(values)
            }
            // Outputs described by one type take no fields.
            (OutputsSchema::Type(_), Some(Value::Object(_))) => {}
            (outputs, Some(value)) => {
                if matches!(outputs, OutputsSchema::Fields(Fields(f)) if f.is_empty()) {
                    *outputs = OutputsSchema::Type(field_type(value).to_string());
                }
            }
        }
        if let Some(expectations) = &record.expectations {
            schema.expectations.add_missing(expectations);
        }
    }
    Some(python_json_dumps_ascii(&schema))
}

/// The profile of a dataset holding `num_records` records; MLflow keeps none for an empty one.
pub fn profile(num_records: i64) -> Option<String> {
    (num_records > 0).then(|| python_json_dumps_ascii(&json!({ "num_records": num_records })))
}

/// An evaluation dataset as MLflow's `Dataset` message carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationDataset {
    pub dataset_id: String,
    pub name: String,
    pub tags: Vec<KeyValue>,
    pub schema: Option<String>,
    pub profile: Option<String>,
    pub digest: String,
    pub created_time: i64,
    pub last_update_time: i64,
    pub created_by: Option<String>,
    pub last_updated_by: Option<String>,
    /// The experiments the dataset belongs to, when known; none is sent as none (the client
    /// then asks `…/experiment-ids`).
    pub experiment_ids: Option<Vec<String>>,
}

impl EvaluationDataset {
    pub fn to_json(&self) -> Value {
        let tags: Map<String, Value> = self
            .tags
            .iter()
            .map(|t| (t.key.clone(), Value::String(t.value.clone())))
            .collect();
        let mut out = Map::new();
        out.insert("dataset_id".into(), json!(self.dataset_id));
        out.insert("name".into(), json!(self.name));
        out.insert("tags".into(), json!(python_json_dumps_ascii(&tags)));
        let optional = [
            ("schema", &self.schema),
            ("profile", &self.profile),
            ("created_by", &self.created_by),
            ("last_updated_by", &self.last_updated_by),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                out.insert(key.into(), json!(value));
            }
        }
        out.insert("digest".into(), json!(self.digest));
        out.insert("created_time".into(), json!(self.created_time));
        out.insert("last_update_time".into(), json!(self.last_update_time));
        if let Some(ids) = self.experiment_ids.as_ref().filter(|ids| !ids.is_empty()) {
            out.insert("experiment_ids".into(), json!(ids));
        }
        Value::Object(out)
    }
}

/// Where a page of records starts: after a record (MLflow's `created_time:record_id` cursor,
/// base64), or at an offset (a plain number, which MLflow also reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordCursor {
    Start,
    After {
        created_time: i64,
        record_id: String,
    },
    Offset(i64),
}

pub fn records_page_token(created_time: i64, record_id: &str) -> String {
    STANDARD.encode(format!("{created_time}:{record_id}"))
}

pub fn parse_records_page_token(token: Option<&str>) -> Result<RecordCursor> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(RecordCursor::Start);
    };
    let cursor = STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (time, id) = text.split_once(':')?;
            Some(RecordCursor::After {
                created_time: time.trim().parse().ok()?,
                record_id: id.to_string(),
            })
        });
    if let Some(cursor) = cursor {
        return Ok(cursor);
    }
    match token.trim().parse::<i64>() {
        Ok(offset) if offset >= 0 => Ok(RecordCursor::Offset(offset)),
        _ => Err(Error::invalid(format!("Invalid page token '{token}'."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(value: Value) -> Vec<RecordInput> {
        parse_records(&value.to_string()).unwrap()
    }

    #[test]
    fn digests_and_hashes_are_mlflows() {
        // hashlib.sha256(b"ds:1700000000000").hexdigest()[:8]
        assert_eq!(dataset_digest("ds", 1_700_000_000_000), "3b239679");
        // hashlib.sha256(json.dumps({"q": "a", "n": 1}, sort_keys=True).encode()).hexdigest()
        let inputs = json!({"q": "a", "n": 1});
        assert_eq!(
            inputs_hash(inputs.as_object().unwrap()),
            "0ec0629e470471df5b925063287e0e9ed2c9f19496c9ebee2d4eb716fe0a6055"
        );
        // Key order does not matter.
        let reordered = json!({"n": 1, "q": "a"});
        assert_eq!(
            inputs_hash(inputs.as_object().unwrap()),
            inputs_hash(reordered.as_object().unwrap())
        );
    }

    #[test]
    fn tags_are_a_json_object_with_python_strings() {
        let tags = parse_tags(r#"{"a": "x", "n": 5, "f": 1.5, "b": true, "z": null}"#).unwrap();
        assert_eq!(
            tags,
            vec![
                KeyValue::new("a", "x"),
                KeyValue::new("b", "True"),
                KeyValue::new("f", "1.5"),
                KeyValue::new("n", "5"),
            ]
        );
        for bad in ["nope", "[1, 2]", "\"text\""] {
            assert_eq!(
                parse_tags(bad).unwrap_err().code,
                crate::Code::InvalidParameterValue
            );
        }
    }

    #[test]
    fn records_are_checked_before_anything_is_stored() {
        let bad = [
            json!({"inputs": {}}).to_string(),
            "not json".to_string(),
            json!([1]).to_string(),
            json!([{"inputs": [1]}]).to_string(),
            json!([{"inputs": {}, "expectations": "x"}]).to_string(),
            json!([{"inputs": {}, "tags": "x"}]).to_string(),
            json!([{"inputs": {}, "source": "x"}]).to_string(),
            json!([{"inputs": {}, "source": {"source_type": "CODE", "source_data": 1}}])
                .to_string(),
        ];
        for text in bad {
            assert_eq!(
                parse_records(&text).unwrap_err().code,
                crate::Code::InvalidParameterValue,
                "{text}"
            );
        }
        let e =
            parse_records(&json!([{"inputs": {}, "source": {"source_type": "weird"}}]).to_string())
                .unwrap_err();
        assert_eq!(
            e.message,
            "Invalid dataset record source type: WEIRD. Valid source types: ['UNSPECIFIED', \
             'TRACE', 'HUMAN', 'DOCUMENT', 'CODE']"
        );
    }

    #[test]
    fn a_new_record_takes_mlflows_defaults() {
        let input = records(json!([{
            "inputs": {"q": "c"},
            "tags": {"mlflow.user": "ann"},
            "source": {"source_type": "trace", "source_data": {"trace_id": "tr-1"}},
        }]))
        .remove(0);
        let record = DatasetRecord::new("d-1", &input, 7);
        assert!(record.dataset_record_id.starts_with("dr-"));
        let mut dict = record.to_dict();
        dict["dataset_record_id"] = json!("dr-x");
        assert_eq!(
            dict,
            json!({
                "dataset_record_id": "dr-x", "dataset_id": "d-1", "inputs": {"q": "c"},
                "outputs": {}, "tags": {"mlflow.user": "ann"},
                "source": {"source_type": "TRACE", "source_data": {"trace_id": "tr-1"}},
                "source_id": "tr-1", "source_type": "TRACE", "created_by": "ann",
                "last_updated_by": "ann", "created_time": 7, "last_update_time": 7,
            })
        );
        // outputs: null means none; no tags are an empty object.
        let bare = DatasetRecord::new(
            "d-1",
            &records(json!([{"inputs": {}, "outputs": null}]))[0],
            1,
        );
        assert_eq!(bare.outputs, None);
        assert!(bare.tags.is_empty());
        assert_eq!(bare.to_dict().get("outputs"), None);
    }

    #[test]
    fn merging_replaces_outputs_and_updates_expectations_and_tags() {
        let first = records(
            json!([{"inputs": {"q": 1}, "expectations": {"a": 1, "b": 2}, "tags": {"t": "1"},
            "source": {"source_type": "HUMAN", "source_data": {"source_id": "s"}}}]),
        );
        let mut record = DatasetRecord::new("d", &first[0], 1);
        let second = records(
            json!([{"inputs": {"q": 1}, "expectations": {"b": 3}, "outputs": "o",
            "tags": {"mlflow.user": "bo"}, "source": {"source_type": "CODE"}}]),
        );
        record.merge(&second[0], 5);
        assert_eq!(
            record.expectations,
            json!({"a": 1, "b": 3}).as_object().cloned()
        );
        assert_eq!(record.outputs, Some(json!("o")));
        assert_eq!(
            record.tags,
            *json!({"t": "1", "mlflow.user": "bo"}).as_object().unwrap()
        );
        assert_eq!(record.source_type.as_deref(), Some("HUMAN"));
        assert_eq!((record.created_time, record.last_update_time), (1, 5));
        assert_eq!(
            (
                record.created_by.as_deref(),
                record.last_updated_by.as_deref()
            ),
            (None, Some("bo"))
        );
        // Empty expectations change nothing; outputs: null removes them.
        record.merge(
            &records(json!([{"inputs": {"q": 1}, "expectations": {}, "outputs": null}]))[0],
            6,
        );
        assert_eq!(
            record.expectations,
            json!({"a": 1, "b": 3}).as_object().cloned()
        );
        assert_eq!(record.outputs, None);
    }

    #[test]
    fn the_schema_keeps_the_first_type_seen_per_field_in_order() {
        let batch = records(json!([
            {"inputs": {"q": "a", "n": 1}, "expectations": {"x": 1.5}},
            {"inputs": {"q": 2, "é": [1]}, "outputs": "plain"},
            {"inputs": {"z": null}, "outputs": {"o": 1}, "expectations": {"ok": true}},
        ]));
        let schema = updated_schema(None, &batch).unwrap();
        assert_eq!(
            schema,
            r#"{"inputs": {"n": "integer", "q": "string", "\u00e9": "array", "z": "null"}, "outputs": "string", "expectations": {"x": "float", "ok": "boolean"}, "version": "1.0"}"#
        );
        let more = records(json!([{"inputs": {"w": {}}}]));
        let widened = updated_schema(Some(&schema), &more).unwrap();
        assert!(widened.starts_with(
            r#"{"inputs": {"n": "integer", "q": "string", "\u00e9": "array", "z": "null", "w": "object"}"#
        ));
        assert_eq!(updated_schema(None, &[]), None);
        assert_eq!(
            updated_schema(None, &records(json!([{"inputs": {}, "outputs": {"o": 1}}]))).unwrap(),
            r#"{"inputs": {}, "outputs": {"o": "integer"}, "expectations": {}, "version": "1.0"}"#
        );
        assert_eq!(profile(0), None);
        assert_eq!(profile(3).unwrap(), r#"{"num_records": 3}"#);
    }

    #[test]
    fn the_upserting_user_is_the_last_record_naming_one() {
        let batch = records(json!([
            {"inputs": {"a": 1}, "tags": {"mlflow.user": "x"}},
            {"inputs": {"a": 2}, "tags": {"mlflow.user": "y"}},
            {"inputs": {"a": 3}},
        ]));
        assert_eq!(upserted_by(&batch).as_deref(), Some("y"));
        assert_eq!(upserted_by(&batch[2..]), None);
    }

    #[test]
    fn datasets_render_as_mlflows_message() {
        let dataset = EvaluationDataset {
            dataset_id: "d-1".into(),
            name: "n".into(),
            tags: vec![KeyValue::new("a", "é")],
            schema: None,
            profile: Some(r#"{"num_records": 1}"#.into()),
            digest: "abcd1234".into(),
            created_time: 1,
            last_update_time: 2,
            created_by: None,
            last_updated_by: Some("u".into()),
            experiment_ids: Some(vec![]),
        };
        assert_eq!(
            dataset.to_json(),
            json!({"dataset_id": "d-1", "name": "n", "tags": "{\"a\": \"\\u00e9\"}",
                   "profile": "{\"num_records\": 1}", "last_updated_by": "u",
                   "digest": "abcd1234", "created_time": 1, "last_update_time": 2})
        );
    }

    #[test]
    fn record_page_tokens_are_mlflows_cursors() {
        let token = records_page_token(1796618651489, "dr-6fd4");
        assert_eq!(token, STANDARD.encode("1796618651489:dr-6fd4"));
        assert_eq!(
            parse_records_page_token(Some(&token)).unwrap(),
            RecordCursor::After {
                created_time: 1796618651489,
                record_id: "dr-6fd4".into()
            }
        );
        assert_eq!(parse_records_page_token(None).unwrap(), RecordCursor::Start);
        assert_eq!(
            parse_records_page_token(Some("12")).unwrap(),
            RecordCursor::Offset(12)
        );
        assert_eq!(
            parse_records_page_token(Some("zzz")).unwrap_err().code,
            crate::Code::InvalidParameterValue
        );
    }
}
