//! MLflow's scoring protocol, as `mlflow models serve` speaks it on `POST /invocations`: a
//! JSON object with exactly one of `dataframe_split`, `dataframe_records`, `instances` or
//! `inputs` (plus optional `params`), or a CSV body; the answer is `{"predictions": …}` shaped
//! like MLflow's (a list for one column or one array, records for a DataFrame, an object for
//! named arrays). Column-signature models also accept a plain `[rows, k]` list, which MLflow
//! refuses for lack of column names.

use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{ArrayRef, BinaryArray, BooleanArray, StringArray, TimestampMicrosecondArray};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mlox_core::{Error, Result};
use mlox_runtime::{ModelInput, ModelOutput, PredictRequest};
use serde_json::{Map, Value};
use std::sync::Arc;

use crate::arrays::{self, Encoded, parse_datetime, primitive};
use crate::codec::{self, Input};
use crate::schema::{Elem, ModelSchema, Target};
use crate::tensor::{Datatype, TensorData, json_int, preview};

/// The body formats `/invocations` accepts, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoringFormat {
    Json,
    Csv,
}

const FIELDS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

pub(crate) fn parse(
    schema: &ModelSchema,
    body: &[u8],
    format: ScoringFormat,
) -> Result<PredictRequest> {
    match format {
        ScoringFormat::Csv => Ok(PredictRequest {
            input: ModelInput::Frame(csv_frame(schema, body)?),
            params: Map::new(),
        }),
        ScoringFormat::Json => parse_json(schema, body),
    }
}

fn parse_json(schema: &ModelSchema, body: &[u8]) -> Result<PredictRequest> {
    let value: Ordered = serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(format!(
            "Invalid input. Ensure that input is a valid JSON formatted string. Error: {e}"
        ))
    })?;
    let Ordered::Object(mut object) = value else {
        return Err(shape_error(&[]));
    };
    let mut take = |key: &str| {
        object
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| object.remove(i).1)
    };
    let params = match take("params").map(Ordered::into_value) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => codec::params(schema, &p),
        Some(other) => {
            return Err(Error::bad_request(format!(
                "'params' must be a JSON object, not {}",
                preview(&other)
            )));
        }
    };
    let present: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| object.iter().any(|(k, _)| k == f))
        .collect();
    let [field] = present.as_slice() else {
        let keys: Vec<&str> = object.iter().map(|(k, _)| k.as_str()).collect();
        return Err(shape_error(&keys));
    };
    let value = object
        .into_iter()
        .find(|(k, _)| k == field)
        .map_or(Ordered::Scalar(Value::Null), |(_, v)| v);
    let input = match *field {
        "dataframe_split" => {
            let (names, columns) = split_columns(schema, value.into_value())?;
            ModelInput::Frame(json_frame(schema, names, columns)?)
        }
        "dataframe_records" => {
            let (names, columns) = record_columns(value, "dataframe_records")?;
            ModelInput::Frame(json_frame(schema, names, columns)?)
        }
        "instances" => match value {
            Ordered::Array(items)
                if !items.is_empty() && items.iter().all(|i| matches!(i, Ordered::Object(_))) =>
            {
                let (names, columns) = record_columns(Ordered::Array(items), "instances")?;
                ModelInput::Frame(json_frame(schema, names, columns)?)
            }
            other => codec::one(schema, json_input("instances".into(), other.into_value())?)?,
        },
        _ => match value {
            Ordered::Object(columns)
                if schema.columns().is_some() || schema.inputs_schema.is_none() =>
            {
                let (names, columns) = columns
                    .into_iter()
                    .map(|(name, v)| match v.into_value() {
                        Value::Array(rows) => (name, rows),
                        scalar => (name, vec![scalar]),
                    })
                    .unzip();
                ModelInput::Frame(json_frame(schema, names, columns)?)
            }
            Ordered::Object(tensors) => codec::dict(
                schema,
                tensors
                    .into_iter()
                    .map(|(name, v)| json_input(name, v.into_value()))
                    .collect::<Result<_>>()?,
            )?,
            other => codec::one(schema, json_input("inputs".into(), other.into_value())?)?,
        },
    };
    Ok(PredictRequest { input, params })
}

/// JSON whose objects keep their key order: serde_json's `Map` sorts keys, but a DataFrame's
/// column order is part of what a model without a signature is given.
enum Ordered {
    Scalar(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    fn into_value(self) -> Value {
        match self {
            Ordered::Scalar(v) => v,
            Ordered::Array(items) => {
                Value::Array(items.into_iter().map(Ordered::into_value).collect())
            }
            Ordered::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(n)))
            }
            fn visit_f64<E>(self, x: f64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(x)))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::String(s.into())))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::String(s)))
            }
            fn visit_unit<E>(self) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }
            fn visit_none<E>(self) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<Ordered, D::Error> {
                serde::Deserialize::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut fields: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
                    // A repeated key keeps its last value, as JSON parsers commonly do.
                    fields.retain(|(existing, _)| *existing != k);
                    fields.push((k, v));
                }
                Ok(Ordered::Object(fields))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn shape_error(keys: &[&str]) -> Error {
    Error::bad_request(format!(
        "The input must be a JSON dictionary with exactly one of the input fields \
         {{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}}. Received dictionary \
         with input fields: {keys:?}. MLflow 2.0 changed the scoring format: a DataFrame goes \
         under 'dataframe_split' or 'dataframe_records'."
    ))
}

/// `{"columns": [...], "data": [[...], ...]}` as named columns. Without `columns`, a row as
/// wide as the signature takes its column names.
fn split_columns(schema: &ModelSchema, value: Value) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let Value::Object(mut split) = value else {
        return Err(Error::bad_request(
            "'dataframe_split' must be an object with 'columns' and 'data'",
        ));
    };
    let rows: Vec<Vec<Value>> = match split.remove("data") {
        Some(Value::Array(rows)) => rows
            .into_iter()
            .map(|r| match r {
                Value::Array(items) => items,
                scalar => vec![scalar],
            })
            .collect(),
        _ => {
            return Err(Error::bad_request(
                "'dataframe_split' needs a 'data' list of rows",
            ));
        }
    };
    let width = rows.first().map_or(0, Vec::len);
    let names: Vec<String> = match split.remove("columns") {
        Some(Value::Array(names)) => names
            .into_iter()
            .map(|n| match n {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        _ => match schema.columns() {
            Some(cols) if cols.len() == width => cols
                .iter()
                .enumerate()
                .map(|(i, c)| c.name.clone().unwrap_or_else(|| i.to_string()))
                .collect(),
            _ => (0..width).map(|i| i.to_string()).collect(),
        },
    };
    let mut columns: Vec<Vec<Value>> = names
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for (i, row) in rows.into_iter().enumerate() {
        if row.len() != names.len() {
            return Err(Error::bad_request(format!(
                "row {i} of 'dataframe_split' has {} values but there are {} columns",
                row.len(),
                names.len()
            )));
        }
        for (column, v) in columns.iter_mut().zip(row) {
            column.push(v);
        }
    }
    Ok((names, columns))
}

/// A list of `{column: value}` records as columns, in the order columns first appear; a
/// column a record lacks is null there.
fn record_columns(value: Ordered, field: &str) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let Ordered::Array(records) = value else {
        return Err(Error::bad_request(format!(
            "'{field}' must be a list of records"
        )));
    };
    let mut names: Vec<String> = Vec::new();
    let mut rows = Vec::with_capacity(records.len());
    for r in records {
        let Ordered::Object(fields) = r else {
            return Err(Error::bad_request(format!(
                "'{field}' must be a list of records, not {}",
                preview(&r.into_value())
            )));
        };
        for (k, _) in &fields {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
        rows.push(fields);
    }
    let mut columns: Vec<Vec<Value>> = names
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for fields in rows {
        let mut values: Vec<Option<Value>> = names.iter().map(|_| None).collect();
        for (k, v) in fields {
            if let Some(i) = names.iter().position(|n| *n == k) {
                values[i] = Some(v.into_value());
            }
        }
        for (column, v) in columns.iter_mut().zip(values) {
            column.push(v.unwrap_or(Value::Null));
        }
    }
    Ok((names, columns))
}

/// Named JSON columns as a DataFrame conformed to the signature.
fn json_frame(
    schema: &ModelSchema,
    names: Vec<String>,
    mut columns: Vec<Vec<Value>>,
) -> Result<arrow_array::RecordBatch> {
    let arrays: Vec<(String, ArrayRef)> = match schema.columns() {
        None => names
            .into_iter()
            .zip(columns)
            .map(|(name, values)| {
                let what = format!("column '{name}'");
                json_column(&values, None, &what).map(|a| (name, a))
            })
            .collect::<Result<_>>()?,
        Some(cols) => {
            let provided: Vec<&str> = names.iter().map(String::as_str).collect();
            let pairs = codec::match_columns(cols, &provided)?;
            let mut out = Vec::with_capacity(pairs.len());
            for (c, i) in pairs {
                let col = &cols[c];
                let name = col.name.clone().unwrap_or_else(|| names[i].clone());
                let values = std::mem::take(&mut columns[i]);
                let what = format!("column '{name}'");
                let target = Target::for_column(&col.dtype);
                out.push((name, json_column(&values, target.as_ref(), &what)?));
            }
            out
        }
    };
    codec::record_batch(arrays)
}

/// One JSON column as an Arrow array of the target type; nulls stay nulls.
fn json_column(values: &[Value], target: Option<&Target>, what: &str) -> Result<ArrayRef> {
    let Some(target) = target else {
        return infer_column(values, what);
    };
    let bad = |i: usize, v: &Value| {
        Error::invalid(format!(
            "{what} cannot be read as {}: row {i} is {}",
            target.label,
            preview(v)
        ))
    };
    macro_rules! typed {
        ($t:ty, $read:expr) => {
            primitive::<$t>(read_column(values, &bad, $read)?)
        };
    }
    macro_rules! int {
        ($t:ty, $n:ty) => {
            typed!($t, |v: &Value| json_int(v)
                .and_then(|n| <$n>::try_from(n).ok()))
        };
    }
    Ok(match target.elem {
        Elem::Typed(Datatype::Fp64) => typed!(Float64Type, Value::as_f64),
        #[allow(clippy::cast_possible_truncation)]
        Elem::Typed(Datatype::Fp32) => {
            typed!(Float32Type, |v: &Value| v.as_f64().map(|x| x as f32))
        }
        Elem::Typed(Datatype::Fp16) => {
            typed!(Float16Type, |v: &Value| v.as_f64().map(half::f16::from_f64))
        }
        Elem::Typed(Datatype::Int8) => int!(Int8Type, i8),
        Elem::Typed(Datatype::Int16) => int!(Int16Type, i16),
        Elem::Typed(Datatype::Int32) => int!(Int32Type, i32),
        Elem::Typed(Datatype::Int64) => int!(Int64Type, i64),
        Elem::Typed(Datatype::Uint8) => int!(UInt8Type, u8),
        Elem::Typed(Datatype::Uint16) => int!(UInt16Type, u16),
        Elem::Typed(Datatype::Uint32) => int!(UInt32Type, u32),
        Elem::Typed(Datatype::Uint64) => int!(UInt64Type, u64),
        Elem::Typed(Datatype::Bool) => Arc::new(BooleanArray::from(read_column(
            values,
            &bad,
            Value::as_bool,
        )?)),
        Elem::Typed(Datatype::Bytes) | Elem::Str => {
            Arc::new(StringArray::from(read_column(values, &bad, Value::as_str)?))
        }
        Elem::Binary => Arc::new(BinaryArray::from_iter(read_column(
            values,
            &bad,
            |v: &Value| v.as_str().and_then(|s| BASE64.decode(s.trim()).ok()),
        )?)),
        Elem::Datetime => Arc::new(TimestampMicrosecondArray::from(read_column(
            values,
            &bad,
            |v: &Value| v.as_str().and_then(parse_datetime),
        )?)),
    })
}

/// Reads every value of a JSON column with `convert`; nulls stay nulls, and a value `convert`
/// rejects is an error naming its row.
fn read_column<'v, T>(
    values: &'v [Value],
    bad: &dyn Fn(usize, &Value) -> Error,
    convert: impl Fn(&'v Value) -> Option<T>,
) -> Result<Vec<Option<T>>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Null => Ok(None),
            v => convert(v).map(Some).ok_or_else(|| bad(i, v)),
        })
        .collect()
}

/// A column without a signature type: booleans, integers, numbers or strings as pandas
/// would read them; lists of equal length become a list column.
fn infer_column(values: &[Value], what: &str) -> Result<ArrayRef> {
    let present = || values.iter().filter(|v| !v.is_null());
    if values.iter().any(Value::is_array) {
        let input = json_input(what.to_string(), Value::Array(values.to_vec()))?;
        let width: usize = input.shape.iter().skip(1).product();
        let values = arrays::to_array(input.data, None, None, what)?;
        return arrays::fixed_size_list(values, width, what);
    }
    let target = if present().all(Value::is_boolean) && present().next().is_some() {
        Elem::Typed(Datatype::Bool)
    } else if present().all(|v| v.is_i64() || v.is_u64()) && present().next().is_some() {
        Elem::Typed(Datatype::Int64)
    } else if present().all(Value::is_number) {
        Elem::Typed(Datatype::Fp64)
    } else if present().all(Value::is_string) {
        Elem::Str
    } else {
        return Err(Error::invalid(format!(
            "{what} mixes value types or holds JSON objects; give the model a signature or send \
             one type per column"
        )));
    };
    json_column(
        values,
        Some(&Target {
            elem: target,
            label: String::new(),
        }),
        what,
    )
}

/// A (nested) JSON list as one tensor input: rectangular, of one element type.
fn json_input(name: String, value: Value) -> Result<Input> {
    let what = format!("'{name}'");
    let mut shape = Vec::new();
    let mut cursor = &value;
    while let Value::Array(items) = cursor {
        shape.push(items.len());
        match items.first() {
            Some(first) => cursor = first,
            None => break,
        }
    }
    if !rectangular(&value, &shape) {
        return Err(Error::bad_request(format!(
            "{what} is a ragged nested list: every row needs the same length"
        )));
    }
    let mut leaves = Vec::new();
    collect_leaves(&value, &mut leaves);
    let datatype = if leaves.iter().all(|v| v.is_boolean()) && !leaves.is_empty() {
        Datatype::Bool
    } else if leaves.iter().all(|v| v.is_i64() || v.is_u64()) && !leaves.is_empty() {
        Datatype::Int64
    } else if leaves.iter().all(|v| v.is_number() || v.is_null()) {
        Datatype::Fp64
    } else if leaves.iter().all(|v| v.is_string()) {
        Datatype::Bytes
    } else {
        return Err(Error::bad_request(format!(
            "{what} mixes value types; send numbers, booleans or strings"
        )));
    };
    let data = TensorData::from_json(datatype, &value, &what)?;
    Ok(Input {
        name,
        shape,
        data,
        content_type: None,
    })
}

fn rectangular(v: &Value, shape: &[usize]) -> bool {
    match (v, shape.split_first()) {
        (Value::Array(items), Some((n, rest))) => {
            items.len() == *n && items.iter().all(|i| rectangular(i, rest))
        }
        (Value::Array(_), None) => false,
        (_, None) => true,
        (_, Some(_)) => false,
    }
}

fn collect_leaves<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_leaves(i, out)),
        other => out.push(other),
    }
}

/// A CSV body with a header row as a DataFrame; cells are typed by the signature, or read
/// as integers, numbers, booleans or text when it says nothing.
fn csv_frame(schema: &ModelSchema, body: &[u8]) -> Result<arrow_array::RecordBatch> {
    let bad = |e: csv::Error| Error::bad_request(format!("Invalid CSV input: {e}"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let names: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(String::from)
        .collect();
    let textual: Vec<bool> = names
        .iter()
        .map(|n| {
            let col = schema.columns().and_then(|cols| match cols {
                [only] if names.len() == 1 => Some(only),
                cols => cols.iter().find(|c| c.name.as_deref() == Some(n)),
            });
            col.and_then(|c| Target::for_column(&c.dtype))
                .is_some_and(|t| matches!(t.elem, Elem::Str | Elem::Binary | Elem::Datetime))
        })
        .collect();
    let mut columns: Vec<Vec<Value>> = names.iter().map(|_| Vec::new()).collect();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        for ((cell, column), text) in record.iter().zip(columns.iter_mut()).zip(&textual) {
            column.push(csv_value(cell, *text));
        }
    }
    json_frame(schema, names, columns)
}

fn csv_value(cell: &str, textual: bool) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    if textual {
        return Value::String(cell.into());
    }
    if let Ok(n) = cell.parse::<i64>() {
        return Value::from(n);
    }
    if let Ok(x) = cell.parse::<f64>() {
        return Value::from(x);
    }
    match cell {
        "True" | "true" | "TRUE" => Value::Bool(true),
        "False" | "false" | "FALSE" => Value::Bool(false),
        _ => Value::String(cell.into()),
    }
}

/// The value `mlflow models serve` puts under `"predictions"`.
/// A JSON value whose objects keep their keys in the order given: a DataFrame's records and
/// a dict of outputs must list columns as the model returned them (pandas rebuilds a frame
/// in key order), while `serde_json`'s own objects sort their keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Predictions {
    Plain(Value),
    /// JSON written elsewhere, whose key order is kept.
    Raw(RawJson),
    Rows(Vec<Vec<(String, Value)>>),
    Named(Vec<(String, Value)>),
}

/// JSON text passed on as written (compared as text).
#[derive(Clone, Debug)]
pub struct RawJson(pub Box<serde_json::value::RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl serde::Serialize for Predictions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        fn object<S: serde::Serializer>(
            serializer: S,
            entries: &[(String, Value)],
        ) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(entries.len()))?;
            for (k, v) in entries {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
        struct Row<'a>(&'a [(String, Value)]);
        impl serde::Serialize for Row<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                object(serializer, self.0)
            }
        }
        match self {
            Predictions::Plain(v) => v.serialize(serializer),
            Predictions::Raw(v) => v.0.serialize(serializer),
            Predictions::Named(entries) => object(serializer, entries),
            Predictions::Rows(rows) => {
                let mut seq = serializer.serialize_seq(Some(rows.len()))?;
                for row in rows {
                    seq.serialize_element(&Row(row))?;
                }
                seq.end()
            }
        }
    }
}

pub(crate) fn predictions(output: ModelOutput) -> Result<Predictions> {
    match output {
        ModelOutput::Frame(batch) => {
            let columns: Vec<(String, Encoded)> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, a)| {
                    arrays::from_array(a.as_ref(), &format!("column '{}'", f.name()))
                        .map(|e| (f.name().clone(), e))
                })
                .collect::<Result<_>>()?;
            let rows = batch.num_rows();
            let metadata = batch.schema_ref().metadata();
            let result = metadata.get(RESULT_KEY).map(String::as_str);
            if let [(_, only)] = columns.as_slice() {
                match result {
                    // pandas' records of `pd.DataFrame(series)`: one key, the Series' name.
                    Some("series") => {
                        let key = series_key(metadata.get(SERIES_NAME_KEY));
                        return Ok(Predictions::Rows(
                            (0..rows)
                                .map(|r| vec![(key.clone(), row_value(only, r))])
                                .collect(),
                        ));
                    }
                    Some("scalar") if rows == 1 => {
                        return Ok(Predictions::Plain(row_value(only, 0)));
                    }
                    Some("dataframe") => {}
                    _ => {
                        return Ok(Predictions::Plain(Value::Array(
                            (0..rows).map(|r| row_value(only, r)).collect(),
                        )));
                    }
                }
            }
            Ok(Predictions::Rows(
                (0..rows)
                    .map(|r| {
                        columns
                            .iter()
                            .map(|(name, enc)| (name.clone(), row_value(enc, r)))
                            .collect()
                    })
                    .collect(),
            ))
        }
        ModelOutput::Tensors(tensors) => {
            let mut named = Vec::new();
            let count = tensors.len();
            for (i, t) in tensors.into_iter().enumerate() {
                let enc = arrays::from_array(t.data.as_ref(), &format!("output '{}'", t.name))?;
                let mut shape = if t.shape.is_empty() {
                    vec![enc.data.len()]
                } else {
                    t.shape
                };
                shape.extend(&enc.inner);
                if shape.iter().product::<usize>() != enc.data.len() {
                    return Err(Error::internal(format!(
                        "the model returned output '{}' with shape {shape:?} but {} elements",
                        t.name,
                        enc.data.len()
                    )));
                }
                let value = nest(&enc.data, &shape, 0);
                // An array result reaches here as one tensor named `predictions` (or unnamed);
                // a dict, even of one key, keeps its keys, as MLflow answers it.
                if count == 1 && (t.name.is_empty() || t.name == "predictions") {
                    return Ok(Predictions::Plain(value));
                }
                let name = if t.name.is_empty() {
                    format!("output-{i}")
                } else {
                    t.name
                };
                named.push((name, value));
            }
            Ok(Predictions::Named(named))
        }
    }
}

/// Schema metadata a Python model's frame answer carries: what the model returned (`dataframe`,
/// `series`, `list` or `scalar`), which decides how MLflow's scoring server renders it, and a
/// Series' name as JSON. Native runtimes set none: their one column is an array's values.
const RESULT_KEY: &str = "mlox.result";
const SERIES_NAME_KEY: &str = "mlox.series_name";

/// The key pandas gives a Series' values in records: its name as text (`0` when unnamed).
fn series_key(name: Option<&String>) -> String {
    match name.map(|n| serde_json::from_str::<Value>(n)) {
        Some(Ok(Value::String(s))) => s,
        Some(Ok(Value::Null)) | None => "0".to_string(),
        Some(Ok(other)) => other.to_string(),
        Some(Err(_)) => name.cloned().unwrap_or_default(),
    }
}

fn row_value(enc: &Encoded, row: usize) -> Value {
    if enc.inner.is_empty() {
        return enc.data.json_at(row);
    }
    let width: usize = enc.inner.iter().product();
    nest(&enc.data, &enc.inner, row * width)
}

fn nest(data: &TensorData, shape: &[usize], offset: usize) -> Value {
    let Some((n, rest)) = shape.split_first() else {
        return data.json_at(offset);
    };
    let stride: usize = rest.iter().product();
    Value::Array(
        (0..*n)
            .map(|i| nest(data, rest, offset + i * stride))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, Float64Array, RecordBatch};
    use mlox_mlmodel::Signature;
    use mlox_runtime::Tensor;
    use serde_json::json;

    const WINE: &str = r#"[{"type": "double", "name": "fixed acidity"},
        {"type": "double", "name": "alcohol"}]"#;

    fn schema(inputs: Option<&str>) -> ModelSchema {
        let sig = inputs.map(|i| Signature::from_mlmodel_value(&json!({"inputs": i})).unwrap());
        ModelSchema::new(sig.as_ref())
    }

    fn frame(schema: &ModelSchema, body: Value) -> RecordBatch {
        match parse(schema, body.to_string().as_bytes(), ScoringFormat::Json)
            .unwrap()
            .input
        {
            ModelInput::Frame(b) => b,
            other => panic!("{other:?}"),
        }
    }

    fn error(schema: &ModelSchema, body: &str) -> Error {
        parse(schema, body.as_bytes(), ScoringFormat::Json).unwrap_err()
    }

    fn floats(b: &RecordBatch, i: usize) -> Vec<f64> {
        b.column(i).as_primitive::<Float64Type>().values().to_vec()
    }

    #[test]
    fn every_json_orientation_gives_the_same_frame() {
        let s = schema(Some(WINE));
        for body in [
            json!({"dataframe_split": {"columns": ["fixed acidity", "alcohol"], "data": [[7.7, 11.5], [8.5, 9]]}}),
            json!({"dataframe_split": {"data": [[7.7, 11.5], [8.5, 9]]}}),
            json!({"dataframe_records": [{"fixed acidity": 7.7, "alcohol": 11.5}, {"alcohol": 9, "fixed acidity": 8.5}]}),
            json!({"instances": [{"fixed acidity": 7.7, "alcohol": 11.5}, {"fixed acidity": 8.5, "alcohol": 9}]}),
            json!({"inputs": {"fixed acidity": [7.7, 8.5], "alcohol": [11.5, 9]}}),
            // MLflow answers 400 here ("column names required"); the signature names them.
            json!({"inputs": [[7.7, 11.5], [8.5, 9]]}),
        ] {
            let b = frame(&s, body.clone());
            assert_eq!(b.schema().field(0).name(), "fixed acidity", "{body}");
            assert_eq!(
                (floats(&b, 0), floats(&b, 1)),
                (vec![7.7, 8.5], vec![11.5, 9.0]),
                "{body}"
            );
        }
    }

    #[test]
    fn csv_bodies_are_frames() {
        let s = schema(Some(WINE));
        let PredictRequest {
            input: ModelInput::Frame(b),
            ..
        } = parse(
            &s,
            b"fixed acidity,alcohol\n7.7,11.5\n8.5,9\n",
            ScoringFormat::Csv,
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(floats(&b, 1), vec![11.5, 9.0]);
        let s = schema(Some(r#"[{"type": "string", "name": "code"}]"#));
        let PredictRequest {
            input: ModelInput::Frame(b),
            ..
        } = parse(&s, b"code\n007\n", ScoringFormat::Csv).unwrap()
        else {
            panic!()
        };
        assert_eq!(b.column(0).as_string::<i32>().value(0), "007");
    }

    #[test]
    fn scoring_errors_say_what_is_wrong() {
        let s = schema(Some(WINE));
        let e = error(&s, r#"{"dataframe_split": {"columns": "#);
        assert_eq!(e.code, mlox_core::Code::BadRequest);
        assert!(
            e.message
                .starts_with("Invalid input. Ensure that input is a valid JSON"),
            "{}",
            e.message
        );
        let e = error(&s, r#"{"columns": ["a"], "data": [[1]]}"#);
        assert!(
            e.message
                .contains("Received dictionary with input fields: [\"columns\", \"data\"]"),
            "{}",
            e.message
        );
        let e = error(
            &s,
            r#"{"dataframe_split": {"columns": ["fixed acidity", "alcohol"], "data": [["x", 1]]}}"#,
        );
        assert_eq!(
            e.message,
            "column 'fixed acidity' cannot be read as double: row 0 is \"x\""
        );
        let e = error(
            &s,
            r#"{"dataframe_split": {"columns": ["fixed acidity"], "data": [[1]]}}"#,
        );
        assert_eq!(
            e.message,
            "the request lacks 1 input the model signature requires: 'alcohol' (double)"
        );
        let e = error(&s, r#"{"inputs": [[1, 2, 3]]}"#);
        assert!(
            e.message
                .contains("has shape [1, 3], but the model signature has 2 columns"),
            "{}",
            e.message
        );
    }

    #[test]
    fn params_and_untyped_columns() {
        let s = schema(None);
        let p = parse(
            &s,
            br#"{"inputs": {"text": ["hello"]}, "params": {"foo": 1}}"#,
            ScoringFormat::Json,
        )
        .unwrap();
        assert_eq!(p.params, *json!({"foo": 1}).as_object().unwrap());
        let ModelInput::Frame(b) = p.input else {
            panic!()
        };
        assert_eq!(b.column(0).as_string::<i32>().value(0), "hello");
        // Raw text: json!() would sort the keys, and column order is what is checked here.
        let body = br#"{"dataframe_records": [{"n": 1, "x": 1.5, "ok": true, "v": [1, 2]}]}"#;
        let ModelInput::Frame(b) = parse(&s, body, ScoringFormat::Json).unwrap().input else {
            panic!()
        };
        let types: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        assert_eq!(
            types,
            ["Int64", "Float64", "Boolean", "FixedSizeList(2 x Int64)"]
        );
    }

    #[test]
    fn tensor_models_get_arrays() {
        let s = schema(Some(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]"#,
        ));
        let p = parse(
            &s,
            br#"{"instances": [[1, 2], [3, 4]]}"#,
            ScoringFormat::Json,
        )
        .unwrap();
        let ModelInput::Tensors(t) = p.input else {
            panic!()
        };
        assert_eq!(t[0].shape, vec![2, 2]);
        assert_eq!(
            t[0].data.as_primitive::<Float64Type>().values().to_vec(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn a_python_models_frame_says_whether_it_was_a_series_a_frame_or_a_scalar() {
        let col = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
        let tagged = |metadata: &[(&str, &str)]| {
            let batch =
                codec::record_batch(vec![("predictions".into(), col(vec![3.0, 5.0]))]).unwrap();
            let schema = batch.schema().as_ref().clone().with_metadata(
                metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<std::collections::HashMap<String, String>>(),
            );
            let batch = RecordBatch::try_new(Arc::new(schema), batch.columns().to_vec()).unwrap();
            serde_json::to_string(&predictions(ModelOutput::Frame(batch)).unwrap()).unwrap()
        };
        assert_eq!(
            tagged(&[(RESULT_KEY, "series"), (SERIES_NAME_KEY, r#""x""#)]),
            r#"[{"x":3.0},{"x":5.0}]"#
        );
        assert_eq!(
            tagged(&[(RESULT_KEY, "series"), (SERIES_NAME_KEY, "null")]),
            r#"[{"0":3.0},{"0":5.0}]"#
        );
        assert_eq!(
            tagged(&[(RESULT_KEY, "series"), (SERIES_NAME_KEY, "7")]),
            r#"[{"7":3.0},{"7":5.0}]"#
        );
        assert_eq!(
            tagged(&[(RESULT_KEY, "dataframe")]),
            r#"[{"predictions":3.0},{"predictions":5.0}]"#
        );
        assert_eq!(tagged(&[(RESULT_KEY, "list")]), "[3.0,5.0]");
        // Native runtimes tag nothing: their one column is an array's values.
        assert_eq!(tagged(&[]), "[3.0,5.0]");
    }

    #[test]
    fn predictions_are_shaped_like_mlflow_with_columns_in_the_models_order() {
        let col = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
        let text =
            |output: ModelOutput| serde_json::to_string(&predictions(output).unwrap()).unwrap();
        let one = codec::record_batch(vec![("y".into(), col(vec![5.5, 6.0]))]).unwrap();
        assert_eq!(text(ModelOutput::Frame(one)), "[5.5,6.0]");
        let two = codec::record_batch(vec![
            ("b".into(), col(vec![2.0])),
            ("a".into(), col(vec![1.0])),
        ])
        .unwrap();
        assert_eq!(text(ModelOutput::Frame(two)), r#"[{"b":2.0,"a":1.0}]"#);
        let t = |name: &str, shape: Vec<usize>, v: Vec<f64>| Tensor {
            name: name.into(),
            shape,
            data: col(v),
        };
        assert_eq!(
            text(ModelOutput::Tensors(vec![t(
                "predictions",
                vec![2, 2],
                vec![1.0, 2.0, 3.0, 4.0]
            )])),
            "[[1.0,2.0],[3.0,4.0]]"
        );
        assert_eq!(
            text(ModelOutput::Tensors(vec![
                t("z", vec![1], vec![1.0]),
                t("a", vec![1], vec![f64::NAN])
            ])),
            r#"{"z":[1.0],"a":[null]}"#
        );
        assert_eq!(
            text(ModelOutput::Tensors(vec![t(
                "variable",
                vec![2, 1],
                vec![4.5, 3.5]
            )])),
            r#"{"variable":[[4.5],[3.5]]}"#
        );
        assert!(Array::len(&StringArray::from(vec!["x"])) == 1);
    }
}
