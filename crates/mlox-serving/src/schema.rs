//! What the V2 protocol says about a model, derived from its MLflow signature: the metadata
//! tensors clients read, and the defaults the codecs apply (content type per input, request
//! content type). Column specs become one tensor per column, as MLServer's MLflow runtime
//! describes them; tensor specs keep their dtype and shape.

use mlox_core::{Error, Result};
use mlox_mlmodel::signature::{ColSpec, DataType, Schema, Signature, TensorSpec, numpy_to_v2};
use serde_json::{Value, json};

use crate::protocol::{MetadataTensor, Parameters};
use crate::tensor::Datatype;

/// MLServer's codecs, chosen by `parameters.content_type` on a request or an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    /// Numpy array: one tensor as it is.
    Np,
    /// pandas DataFrame: one column per input.
    Pd,
    /// UTF-8 strings.
    Str,
    /// Base64 text that is decoded to bytes.
    Base64,
    /// ISO 8601 date-times.
    Datetime,
    /// Named tensors (MLServer's MLflow runtime's `dict`).
    Dict,
}

impl ContentType {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "np" => ContentType::Np,
            "pd" => ContentType::Pd,
            "str" => ContentType::Str,
            "base64" => ContentType::Base64,
            "datetime" => ContentType::Datetime,
            "dict" => ContentType::Dict,
            other => {
                return Err(Error::invalid(format!(
                    "unknown content_type '{other}' (expected one of np, pd, str, base64, datetime, dict)"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Np => "np",
            ContentType::Pd => "pd",
            ContentType::Str => "str",
            ContentType::Base64 => "base64",
            ContentType::Datetime => "datetime",
            ContentType::Dict => "dict",
        }
    }

    /// Reads `parameters.content_type`; absent is `None`, anything but a known name is a 400.
    pub(crate) fn from_parameters(parameters: &Parameters, what: &str) -> Result<Option<Self>> {
        match parameters.get("content_type") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Self::parse(s)
                .map(Some)
                .map_err(|e| Error::invalid(format!("{what}: {}", e.message))),
            Some(other) => Err(Error::invalid(format!(
                "{what}: content_type must be a string, not {other}"
            ))),
        }
    }
}

/// The element type a model wants for an input, as far as the codecs can convert to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    /// A number or boolean of this V2 type.
    Typed(Datatype),
    Str,
    Binary,
    Datetime,
}

/// A target element type with the name the model's signature uses for it (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub elem: Elem,
    pub label: String,
}

impl Target {
    pub fn for_column(dtype: &DataType) -> Option<Target> {
        let elem = match dtype {
            DataType::Boolean => Elem::Typed(Datatype::Bool),
            DataType::Integer => Elem::Typed(Datatype::Int32),
            DataType::Long => Elem::Typed(Datatype::Int64),
            DataType::Float => Elem::Typed(Datatype::Fp32),
            DataType::Double => Elem::Typed(Datatype::Fp64),
            DataType::String => Elem::Str,
            DataType::Binary => Elem::Binary,
            DataType::Datetime => Elem::Datetime,
            DataType::Complex(_) => return None,
        };
        Some(Target {
            elem,
            label: dtype.mlflow_name(),
        })
    }

    pub fn for_tensor(spec: &TensorSpec) -> Option<Target> {
        let elem = match spec.dtype.as_str() {
            "str" | "object" | "string" => Elem::Str,
            "bytes" => Elem::Binary,
            d if d.starts_with("datetime64") => Elem::Datetime,
            d => Elem::Typed(Datatype::parse(numpy_to_v2(d)?, "").ok()?),
        };
        Some(Target {
            elem,
            label: spec.dtype.clone(),
        })
    }
}

/// The content type an input of this column type gets when the request names none — the
/// same defaults MLServer advertises in its metadata.
pub(crate) fn column_content_type(dtype: &DataType) -> ContentType {
    match dtype {
        DataType::String => ContentType::Str,
        DataType::Binary => ContentType::Base64,
        DataType::Datetime => ContentType::Datetime,
        _ => ContentType::Np,
    }
}

/// Everything the protocol layer derives from a model's signature.
#[derive(Clone, Debug)]
pub(crate) struct ModelSchema {
    pub inputs_schema: Option<Schema>,
    pub params: Option<Vec<String>>,
    /// Applied when a request has no `parameters.content_type`.
    pub content_type: ContentType,
    pub inputs: Vec<MetadataTensor>,
    pub outputs: Vec<MetadataTensor>,
}

impl ModelSchema {
    pub fn new(signature: Option<&Signature>) -> Self {
        let inputs_schema = signature.map(|s| s.inputs.clone());
        let content_type = match &inputs_schema {
            Some(Schema::Tensors(specs)) if specs.len() == 1 && specs[0].name.is_none() => {
                ContentType::Np
            }
            Some(Schema::Tensors(_)) => ContentType::Dict,
            // MLflow models take DataFrames unless their signature says tensors.
            Some(Schema::Columns(_)) | None => ContentType::Pd,
        };
        ModelSchema {
            inputs: inputs_schema
                .as_ref()
                .map(|s| metadata_tensors(s, "input"))
                .unwrap_or_default(),
            outputs: signature
                .and_then(|s| s.outputs.as_ref())
                .map(|s| metadata_tensors(s, "output"))
                .unwrap_or_default(),
            params: signature.map(|s| s.params.iter().map(|p| p.name.clone()).collect()),
            inputs_schema,
            content_type,
        }
    }

    pub fn columns(&self) -> Option<&[ColSpec]> {
        match &self.inputs_schema {
            Some(Schema::Columns(c)) if !c.is_empty() => Some(c),
            _ => None,
        }
    }

    /// The name an unnamed output takes, in metadata and in responses alike, so the two never
    /// disagree (MLServer advertises `output-0` and answers `output-1`). A single unnamed
    /// output is `predictions`, what the runtimes call an ndarray result and MLflow's
    /// scoring server calls its answer.
    pub fn output_name(&self, index: usize) -> String {
        match self.outputs.get(index) {
            Some(t) => t.name.clone(),
            None => default_output_name(index, self.outputs.len().max(1)),
        }
    }
}

fn default_output_name(index: usize, count: usize) -> String {
    if count == 1 {
        "predictions".into()
    } else {
        format!("output-{index}")
    }
}

fn metadata_tensors(schema: &Schema, prefix: &str) -> Vec<MetadataTensor> {
    let name = |given: &Option<String>, i: usize, count: usize| match given {
        Some(n) => n.clone(),
        None if prefix == "output" => default_output_name(i, count),
        None => format!("{prefix}-{i}"),
    };
    let with_content_type = |ct: ContentType| {
        let mut p = Parameters::new();
        p.insert("content_type".into(), json!(ct.as_str()));
        p
    };
    match schema {
        Schema::Columns(cols) => cols
            .iter()
            .enumerate()
            .map(|(i, c)| MetadataTensor {
                name: name(&c.name, i, cols.len()),
                datatype: c.dtype.v2_datatype().to_string(),
                // One value per row; [-1, 1] is how MLServer describes a column and the shape
                // our responses give column outputs.
                shape: vec![-1, 1],
                parameters: with_content_type(column_content_type(&c.dtype)),
            })
            .collect(),
        Schema::Tensors(specs) => specs
            .iter()
            .enumerate()
            .map(|(i, t)| MetadataTensor {
                name: name(&t.name, i, specs.len()),
                datatype: t.v2_datatype().unwrap_or("BYTES").to_string(),
                shape: t.shape.clone(),
                parameters: with_content_type(ContentType::Np),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn sig(inputs: &str, outputs: Option<&str>) -> Signature {
        Signature::from_mlmodel_value(&json!({"inputs": inputs, "outputs": outputs})).unwrap()
    }

    #[test]
    fn column_signatures_become_one_tensor_per_column() {
        let s = sig(
            r#"[{"type": "double", "name": "fixed acidity"}, {"type": "string", "name": "text"},
                {"type": "binary", "name": "blob"}, {"type": "long"}]"#,
            Some(r#"[{"type": "double"}]"#),
        );
        let schema = ModelSchema::new(Some(&s));
        assert_eq!(schema.content_type, ContentType::Pd);
        let got: Vec<_> = schema
            .inputs
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.datatype.as_str(),
                    t.shape.clone(),
                    t.parameters["content_type"].clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("fixed acidity", "FP64", vec![-1, 1], json!("np")),
                ("text", "BYTES", vec![-1, 1], json!("str")),
                ("blob", "BYTES", vec![-1, 1], json!("base64")),
                ("input-3", "INT64", vec![-1, 1], json!("np")),
            ]
        );
        assert_eq!(schema.outputs[0].name, "predictions");
        assert_eq!(schema.output_name(0), "predictions");
    }

    #[test]
    fn tensor_signatures_keep_dtype_and_shape() {
        let s = sig(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]"#,
            Some(
                r#"[{"type": "tensor", "name": "a", "tensor-spec": {"dtype": "int64", "shape": [-1]}},
                     {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]"#,
            ),
        );
        let schema = ModelSchema::new(Some(&s));
        assert_eq!(schema.content_type, ContentType::Np);
        assert_eq!(schema.inputs[0].name, "input-0");
        assert_eq!(schema.inputs[0].datatype, "FP32");
        assert_eq!(schema.inputs[0].shape, vec![-1, 4]);
        let outs: Vec<_> = schema.outputs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(outs, ["a", "output-1"]);
    }

    #[test]
    fn models_without_signature_take_dataframes() {
        let schema = ModelSchema::new(None);
        assert_eq!(schema.content_type, ContentType::Pd);
        assert!(schema.inputs.is_empty());
        assert_eq!(schema.output_name(0), "predictions");
    }

    #[test]
    fn unknown_content_types_are_named() {
        let e = ContentType::parse("numpy").unwrap_err();
        assert!(
            e.message.starts_with("unknown content_type 'numpy'"),
            "{}",
            e.message
        );
    }
}
