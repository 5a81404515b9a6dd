//! Model signatures as `MLmodel` stores them: JSON strings under `signature.inputs`,
//! `signature.outputs` and `signature.params`, each a list of column specs
//! (`{"type": "double", "name": "fixed acidity", "required": true}`) or of tensor specs
//! (`{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 11]}}`).

use mlox_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// A column's type. Complex types (`array`, `object`, `map`, `any`) keep their JSON so they
/// can be checked later without this crate guessing at them.
#[derive(Clone, Debug, PartialEq)]
pub enum DataType {
    Boolean,
    Integer,
    Long,
    Float,
    Double,
    String,
    Binary,
    Datetime,
    Complex(Value),
}

impl DataType {
    fn from_spec(spec: &Value) -> Result<Self> {
        let name = spec
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("a column spec needs a \"type\""))?;
        Ok(match name {
            "boolean" => DataType::Boolean,
            "integer" => DataType::Integer,
            "long" => DataType::Long,
            "float" => DataType::Float,
            "double" => DataType::Double,
            "string" => DataType::String,
            "binary" => DataType::Binary,
            "datetime" => DataType::Datetime,
            "array" | "object" | "map" | "any" => DataType::Complex(spec.clone()),
            other => {
                return Err(Error::invalid(format!(
                    "unknown column type '{other}' in the model signature"
                )));
            }
        })
    }

    /// The V2 inference protocol datatype a column of this type travels as.
    pub fn v2_datatype(&self) -> &'static str {
        match self {
            DataType::Boolean => "BOOL",
            DataType::Integer => "INT32",
            DataType::Long => "INT64",
            DataType::Float => "FP32",
            DataType::Double => "FP64",
            DataType::String | DataType::Binary | DataType::Datetime | DataType::Complex(_) => {
                "BYTES"
            }
        }
    }

    /// MLflow's name for the type, as error messages quote it.
    pub fn mlflow_name(&self) -> String {
        match self {
            DataType::Boolean => "boolean".into(),
            DataType::Integer => "integer".into(),
            DataType::Long => "long".into(),
            DataType::Float => "float".into(),
            DataType::Double => "double".into(),
            DataType::String => "string".into(),
            DataType::Binary => "binary".into(),
            DataType::Datetime => "datetime".into(),
            DataType::Complex(spec) => spec
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("any")
                .to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColSpec {
    pub name: Option<String>,
    pub dtype: DataType,
    pub required: bool,
}

/// A tensor's numpy dtype (`float64`, `int32`, `bool`, `str`, `object`, …) and shape, with -1
/// for a variable dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: Option<String>,
    pub dtype: String,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// The V2 datatype for this numpy dtype; `None` for dtypes the protocol cannot carry.
    pub fn v2_datatype(&self) -> Option<&'static str> {
        numpy_to_v2(&self.dtype)
    }
}

/// Maps a numpy dtype name to the V2 datatype that carries it.
pub fn numpy_to_v2(dtype: &str) -> Option<&'static str> {
    Some(match dtype {
        "bool" => "BOOL",
        "int8" => "INT8",
        "int16" => "INT16",
        "int32" => "INT32",
        "int64" => "INT64",
        "uint8" => "UINT8",
        "uint16" => "UINT16",
        "uint32" => "UINT32",
        "uint64" => "UINT64",
        "float16" => "FP16",
        "float32" => "FP32",
        "float64" => "FP64",
        "str" | "object" | "bytes" | "string" => "BYTES",
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub enum Schema {
    Columns(Vec<ColSpec>),
    Tensors(Vec<TensorSpec>),
}

impl Schema {
    /// Parses one of the JSON strings MLflow stores for a schema.
    pub fn from_json(text: &str) -> Result<Self> {
        let specs: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("the model signature is not valid JSON: {e}")))?;
        let tensors = specs
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) == Some("tensor"))
            .count();
        if tensors > 0 && tensors < specs.len() {
            return Err(Error::invalid(
                "a model signature mixes tensor and column specs",
            ));
        }
        if tensors > 0 {
            return specs
                .iter()
                .map(tensor_spec)
                .collect::<Result<_>>()
                .map(Schema::Tensors);
        }
        specs
            .iter()
            .map(|s| {
                Ok(ColSpec {
                    name: s.get("name").and_then(Value::as_str).map(str::to_string),
                    dtype: DataType::from_spec(s)?,
                    required: s.get("required").and_then(Value::as_bool).unwrap_or(true),
                })
            })
            .collect::<Result<_>>()
            .map(Schema::Columns)
    }

    pub fn len(&self) -> usize {
        match self {
            Schema::Columns(c) => c.len(),
            Schema::Tensors(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every entry has a name (a DataFrame-like schema rather than positional).
    pub fn has_names(&self) -> bool {
        match self {
            Schema::Columns(c) => c.iter().all(|c| c.name.is_some()),
            Schema::Tensors(t) => t.iter().all(|t| t.name.is_some()),
        }
    }
}

fn tensor_spec(spec: &Value) -> Result<TensorSpec> {
    #[derive(Deserialize)]
    struct Inner {
        dtype: String,
        #[serde(default)]
        shape: Vec<i64>,
    }
    let inner: Inner = spec
        .get("tensor-spec")
        .cloned()
        .ok_or_else(|| Error::invalid("a tensor spec needs a \"tensor-spec\""))
        .and_then(|v| {
            serde_json::from_value(v)
                .map_err(|e| Error::invalid(format!("a tensor spec is malformed: {e}")))
        })?;
    Ok(TensorSpec {
        name: spec.get("name").and_then(Value::as_str).map(str::to_string),
        dtype: inner.dtype,
        shape: inner.shape,
    })
}

/// One inference parameter a model accepts, with its default.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: String,
    #[serde(default)]
    pub default: Value,
    #[serde(default)]
    pub shape: Option<Vec<i64>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub inputs: Schema,
    pub outputs: Option<Schema>,
    pub params: Vec<ParamSpec>,
}

impl Signature {
    /// Reads the `signature` mapping of an `MLmodel` document.
    pub fn from_mlmodel_value(value: &Value) -> Result<Self> {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let inputs = text("inputs")
            .ok_or_else(|| Error::invalid("the model signature has no inputs"))
            .and_then(Schema::from_json)?;
        let outputs = text("outputs").map(Schema::from_json).transpose()?;
        let params = match text("params") {
            Some(p) => serde_json::from_str(p).map_err(|e| {
                Error::invalid(format!("the model signature's params are malformed: {e}"))
            })?,
            None => Vec::new(),
        };
        Ok(Signature {
            inputs,
            outputs,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn column_schemas_keep_names_types_and_required_flags() {
        let s = Schema::from_json(
            r#"[{"type": "double", "name": "fixed acidity", "required": true},
                {"type": "long", "name": "n", "required": false},
                {"type": "string", "name": "s"}]"#,
        )
        .unwrap();
        let Schema::Columns(cols) = &s else {
            panic!("{s:?}")
        };
        assert_eq!(cols[0].name.as_deref(), Some("fixed acidity"));
        assert_eq!(cols[0].dtype.v2_datatype(), "FP64");
        assert!(!cols[1].required);
        assert_eq!(cols[1].dtype.v2_datatype(), "INT64");
        assert!(cols[2].required, "required defaults to true");
        assert_eq!(cols[2].dtype.v2_datatype(), "BYTES");
        assert!(s.has_names());
    }

    #[test]
    fn tensor_schemas_keep_dtype_and_shape() {
        let s = Schema::from_json(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]"#,
        )
        .unwrap();
        assert_eq!(
            s,
            Schema::Tensors(vec![TensorSpec {
                name: None,
                dtype: "float64".into(),
                shape: vec![-1]
            }])
        );
        let Schema::Tensors(t) = &s else { panic!() };
        assert_eq!(t[0].v2_datatype(), Some("FP64"));
        assert!(!s.has_names());
    }

    #[test]
    fn complex_column_types_are_kept_as_json() {
        let s =
            Schema::from_json(r#"[{"type": "array", "items": {"type": "double"}, "name": "emb"}]"#)
                .unwrap();
        let Schema::Columns(cols) = s else { panic!() };
        assert_eq!(cols[0].dtype.mlflow_name(), "array");
        assert_eq!(cols[0].dtype.v2_datatype(), "BYTES");
    }

    #[test]
    fn bad_schemas_are_refused_with_the_reason() {
        for (text, why) in [
            ("not json", "not valid JSON"),
            (r#"[{"name": "x"}]"#, "needs a \"type\""),
            (r#"[{"type": "decimal"}]"#, "unknown column type 'decimal'"),
            (
                r#"[{"type": "tensor", "tensor-spec": {"dtype": "float64"}}, {"type": "double"}]"#,
                "mixes tensor and column",
            ),
            (r#"[{"type": "tensor"}]"#, "needs a \"tensor-spec\""),
        ] {
            let e = Schema::from_json(text).unwrap_err();
            assert!(e.message.contains(why), "{text}: {}", e.message);
        }
    }

    #[test]
    fn signatures_read_inputs_outputs_and_params() {
        let sig = Signature::from_mlmodel_value(&json!({
            "inputs": r#"[{"type": "string", "name": "text"}]"#,
            "outputs": r#"[{"type": "tensor", "tensor-spec": {"dtype": "object", "shape": [-1]}}]"#,
            "params": r#"[{"name": "temperature", "type": "double", "default": 0.5, "shape": null}]"#,
        }))
        .unwrap();
        assert_eq!(sig.inputs.len(), 1);
        assert!(matches!(sig.outputs, Some(Schema::Tensors(_))));
        assert_eq!(sig.params[0].name, "temperature");
        assert_eq!(sig.params[0].default, json!(0.5));

        let no_outputs = Signature::from_mlmodel_value(
            &json!({"inputs": "[{\"type\": \"double\"}]", "outputs": null}),
        )
        .unwrap();
        assert_eq!(no_outputs.outputs, None);
        assert!(Signature::from_mlmodel_value(&json!({"outputs": "[]"})).is_err());
    }

    #[test]
    fn numpy_dtypes_map_to_v2_datatypes() {
        assert_eq!(numpy_to_v2("float32"), Some("FP32"));
        assert_eq!(numpy_to_v2("uint64"), Some("UINT64"));
        assert_eq!(numpy_to_v2("object"), Some("BYTES"));
        assert_eq!(numpy_to_v2("complex128"), None);
    }
}
