//! MLServer's codecs for MLflow models: how a V2 request becomes the DataFrame or arrays a
//! model predicts on, and how its result becomes V2 outputs.
//!
//! The request content type (`parameters.content_type`, else the model's default: `pd` for
//! column signatures and models without one) picks the shape of the model input:
//! `pd` makes one column per input; `np`, `str`, `base64` and `datetime` take a single input
//! as one array; `dict` passes named arrays. An input's own content type (else the one its
//! signature column implies) says how its BYTES elements are read. Against a column signature
//! every shape ends as a DataFrame checked column by column; a single `[rows, k]` tensor is
//! split into the signature's k columns, where MLServer answers 500.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema as ArrowSchema};
use mlox_core::{Error, Result};
use mlox_mlmodel::signature::{ColSpec, Schema, TensorSpec};
use mlox_runtime::{ModelInput, ModelOutput, PredictRequest, Tensor};
use serde_json::Value;

use crate::arrays::{self, Encoded};
use crate::protocol::{InferRequest, InferTensor, Parameters, RequestedOutput};
use crate::schema::{ContentType, ModelSchema, Target, column_content_type};
use crate::tensor::{Datatype, TensorData};

/// Parameter keys that steer the protocol and never reach the model as inference parameters.
const RESERVED: &[&str] = &[
    "content_type",
    "headers",
    "binary_data_output",
    "binary_data",
    "binary_data_size",
    "timeout",
    "priority",
    "sequence_id",
    "sequence_start",
    "sequence_end",
];

/// One request input after its shape was checked against its data.
pub(crate) struct Input {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
    /// The input's own `parameters.content_type`, if it gave one.
    pub content_type: Option<ContentType>,
}

impl Input {
    pub fn new(tensor: InferTensor) -> Result<Self> {
        let what = format!("input '{}'", tensor.name);
        let content_type = ContentType::from_parameters(&tensor.parameters, &what)?
            .filter(|ct| !matches!(ct, ContentType::Pd | ContentType::Dict));
        let mut shape = tensor
            .shape
            .iter()
            .map(|d| usize::try_from(*d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| {
                Error::invalid(format!(
                    "{what} has shape {:?}: dimensions cannot be negative",
                    tensor.shape
                ))
            })?;
        let count: usize = shape.iter().product();
        if count != tensor.data.len() {
            // MLServer takes a lone BYTES element whatever the shape says; seed 000 sends one
            // JSON string with shape [len(string)].
            if tensor.datatype == Datatype::Bytes && tensor.data.len() == 1 {
                shape = vec![1];
            } else {
                return Err(Error::invalid(format!(
                    "{what} has shape {:?} ({count} elements) but {} data elements",
                    tensor.shape,
                    tensor.data.len()
                )));
            }
        }
        Ok(Input {
            name: tensor.name,
            shape,
            data: tensor.data,
            content_type,
        })
    }

    fn what(&self) -> String {
        format!("input '{}'", self.name)
    }

    fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    fn width(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// Decodes a V2 request for a model.
pub(crate) fn decode_request(
    schema: &ModelSchema,
    request: InferRequest,
) -> Result<PredictRequest> {
    let content_type = ContentType::from_parameters(&request.parameters, "request")?
        .unwrap_or(schema.content_type);
    let params = params(schema, &request.parameters);
    if request.inputs.is_empty() {
        return Err(Error::invalid("the request has no inputs"));
    }
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for tensor in request.inputs {
        if inputs.iter().any(|i: &Input| i.name == tensor.name) {
            return Err(Error::invalid(format!(
                "the request has two inputs named '{}'",
                tensor.name
            )));
        }
        inputs.push(Input::new(tensor)?);
    }
    let input = match content_type {
        ContentType::Pd => ModelInput::Frame(frame(schema, inputs)?),
        ContentType::Dict => dict(schema, inputs)?,
        single => {
            let count = inputs.len();
            let Some(mut input) = inputs.pop().filter(|_| count == 1) else {
                return Err(Error::invalid(format!(
                    "the '{}' content type takes exactly one input ({count} were sent); \
                     use 'pd' for one input per column",
                    single.as_str()
                )));
            };
            if single != ContentType::Np && input.content_type.is_none() {
                input.content_type = Some(single);
            }
            one(schema, input)?
        }
    };
    Ok(PredictRequest { input, params })
}

/// The inference parameters a model gets: everything but protocol keys, and with a
/// signature only those it declares (MLflow ignores the others).
pub(crate) fn params(schema: &ModelSchema, parameters: &Parameters) -> Parameters {
    parameters
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .filter(|(k, _)| schema.params.as_ref().is_none_or(|names| names.contains(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One input as the whole model input (`np`, `str`, … and MLflow's tensor-shaped JSON).
pub(crate) fn one(schema: &ModelSchema, input: Input) -> Result<ModelInput> {
    match &schema.inputs_schema {
        Some(Schema::Columns(cols)) if !cols.is_empty() => {
            Ok(ModelInput::Frame(frame(schema, vec![input])?))
        }
        Some(Schema::Tensors(specs)) if specs.len() > 1 => Err(Error::invalid(format!(
            "the model takes {} tensors ({}) but the request sends one",
            specs.len(),
            tensor_names(specs)
        ))),
        Some(Schema::Tensors(specs)) => {
            let spec = specs.first();
            let name = spec.and_then(|s| s.name.clone()).unwrap_or_default();
            Ok(ModelInput::Tensors(vec![tensor(input, spec, name)?]))
        }
        _ => Ok(ModelInput::Tensors(vec![tensor(
            input,
            None,
            String::new(),
        )?])),
    }
}

/// Named arrays (`dict`, and MLflow's `inputs` object for tensor models).
pub(crate) fn dict(schema: &ModelSchema, mut inputs: Vec<Input>) -> Result<ModelInput> {
    match &schema.inputs_schema {
        Some(Schema::Columns(cols)) if !cols.is_empty() => {
            Ok(ModelInput::Frame(frame(schema, inputs)?))
        }
        Some(Schema::Tensors(specs)) if !specs.is_empty() => {
            if specs.len() == 1 && inputs.len() == 1 {
                let spec = &specs[0];
                let name = spec.name.clone().unwrap_or_default();
                let input = inputs.remove(0);
                return Ok(ModelInput::Tensors(vec![tensor(input, Some(spec), name)?]));
            }
            let mut by_name: HashMap<String, Input> =
                inputs.into_iter().map(|i| (i.name.clone(), i)).collect();
            let mut tensors = Vec::with_capacity(specs.len());
            let mut missing = Vec::new();
            for (i, spec) in specs.iter().enumerate() {
                let name = spec.name.clone().unwrap_or_else(|| format!("input-{i}"));
                match by_name.remove(&name) {
                    Some(input) => tensors.push(tensor(input, Some(spec), name)?),
                    None => missing.push(format!("'{name}' ({})", spec.dtype)),
                }
            }
            if !missing.is_empty() {
                return Err(missing_error(&missing, by_name.keys()));
            }
            Ok(ModelInput::Tensors(tensors))
        }
        _ => Ok(ModelInput::Tensors(
            inputs
                .into_iter()
                .map(|i| {
                    let name = i.name.clone();
                    tensor(i, None, name)
                })
                .collect::<Result<_>>()?,
        )),
    }
}

fn tensor(input: Input, spec: Option<&TensorSpec>, name: String) -> Result<Tensor> {
    let what = input.what();
    if let Some(spec) = spec.filter(|s| !s.shape.is_empty()) {
        let fits = spec.shape.len() == input.shape.len()
            && spec
                .shape
                .iter()
                .zip(&input.shape)
                .all(|(want, got)| *want < 0 || usize::try_from(*want).ok() == Some(*got));
        if !fits {
            return Err(Error::invalid(format!(
                "{what} has shape {:?} but the model signature expects {:?}",
                input.shape, spec.shape
            )));
        }
    }
    let target = spec.and_then(Target::for_tensor);
    let data = arrays::to_array(input.data, input.content_type, target.as_ref(), &what)?;
    Ok(Tensor {
        name,
        shape: input.shape,
        data,
    })
}

/// A DataFrame from the inputs, one column each, conformed to the signature's columns.
pub(crate) fn frame(schema: &ModelSchema, mut inputs: Vec<Input>) -> Result<RecordBatch> {
    let columns: Vec<(String, ArrayRef)> = match schema.columns() {
        None => inputs
            .into_iter()
            .map(|i| {
                let name = i.name.clone();
                column(i, None, None).map(|a| (name, a))
            })
            .collect::<Result<_>>()?,
        Some(cols)
            if inputs.len() == 1
                && cols.len() > 1
                && !cols
                    .iter()
                    .any(|c| c.name.as_deref() == Some(&inputs[0].name)) =>
        {
            split(inputs.remove(0), cols)?
        }
        Some(cols) => {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            let pairs = match_columns(cols, &names)?;
            let mut slots: Vec<Option<Input>> = inputs.into_iter().map(Some).collect();
            let mut out = Vec::with_capacity(pairs.len());
            for (c, i) in pairs {
                let Some(input) = slots[i].take() else {
                    continue;
                };
                let col = &cols[c];
                let name = col.name.clone().unwrap_or_else(|| input.name.clone());
                out.push((
                    name,
                    column(input, Some(col), Some(column_content_type(&col.dtype)))?,
                ));
            }
            out
        }
    };
    record_batch(columns)
}

/// A `[rows, k]` tensor read as the signature's k columns, in order.
fn split(input: Input, cols: &[ColSpec]) -> Result<Vec<(String, ArrayRef)>> {
    let k = cols.len();
    if input.shape.len() != 2 || input.shape[1] != k {
        return Err(Error::invalid(format!(
            "{} has shape {:?}, but the model signature has {k} columns ({}); send a [rows, {k}] \
             tensor or one input per column",
            input.what(),
            input.shape,
            column_names(cols)
        )));
    }
    let rows = input.rows();
    cols.iter()
        .enumerate()
        .map(|(j, col)| {
            let name = col.name.clone().unwrap_or_else(|| format!("input-{j}"));
            let piece = Input {
                name: name.clone(),
                shape: vec![rows],
                data: input.data.strided(j, k),
                content_type: input.content_type,
            };
            column(piece, Some(col), None).map(|a| (name, a))
        })
        .collect()
}

/// One input as one column: one value per row, or a list per row for array-typed columns.
fn column(
    input: Input,
    col: Option<&ColSpec>,
    default_ct: Option<ContentType>,
) -> Result<ArrayRef> {
    let what = input.what();
    let width = input.width();
    let target = col.and_then(|c| Target::for_column(&c.dtype));
    if width != 1
        && let (Some(col), Some(_)) = (col, &target)
    {
        return Err(Error::invalid(format!(
            "{what} has shape {:?}: {width} values per row, but column '{}' ({}) holds one value \
             per row",
            input.shape,
            col.name.as_deref().unwrap_or(&input.name),
            col.dtype.mlflow_name()
        )));
    }
    let content_type = input.content_type.or(default_ct);
    let values = arrays::to_array(input.data, content_type, target.as_ref(), &what)?;
    if width == 1 {
        Ok(values)
    } else {
        arrays::fixed_size_list(values, width, &what)
    }
}

/// Pairs signature columns with the provided names: `(column index, provided index)` in
/// signature order. One provided column for a one-column signature pairs whatever its name;
/// named signatures pair by name (extra names are ignored, as MLflow does); unnamed ones by
/// position.
pub(crate) fn match_columns(cols: &[ColSpec], provided: &[&str]) -> Result<Vec<(usize, usize)>> {
    if cols.len() == 1 && provided.len() == 1 {
        return Ok(vec![(0, 0)]);
    }
    if cols.iter().all(|c| c.name.is_some()) {
        let mut pairs = Vec::with_capacity(cols.len());
        let mut missing = Vec::new();
        for (c, col) in cols.iter().enumerate() {
            let name = col.name.as_deref().unwrap_or_default();
            match provided.iter().position(|p| *p == name) {
                Some(i) => pairs.push((c, i)),
                None if col.required => {
                    missing.push(format!("'{name}' ({})", col.dtype.mlflow_name()))
                }
                None => {}
            }
        }
        if !missing.is_empty() {
            let extra = provided
                .iter()
                .filter(|p| !cols.iter().any(|c| c.name.as_deref() == Some(**p)));
            return Err(missing_error(&missing, extra));
        }
        return Ok(pairs);
    }
    if cols.len() != provided.len() {
        return Err(Error::invalid(format!(
            "the model signature has {} unnamed columns but the request sends {}",
            cols.len(),
            provided.len()
        )));
    }
    Ok((0..cols.len()).map(|i| (i, i)).collect())
}

fn missing_error<S: AsRef<str>>(missing: &[String], extra: impl Iterator<Item = S>) -> Error {
    let mut extra: Vec<String> = extra.map(|s| format!("'{}'", s.as_ref())).collect();
    extra.sort();
    let mut message = format!(
        "the request lacks {} input{} the model signature requires: {}",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", ")
    );
    if !extra.is_empty() {
        message.push_str(&format!(
            "; it sends {} the signature does not name",
            extra.join(", ")
        ));
    }
    Error::invalid(message)
}

/// Checks that the columns have one length and builds the DataFrame.
pub(crate) fn record_batch(columns: Vec<(String, ArrayRef)>) -> Result<RecordBatch> {
    if let Some((first, a)) = columns.first()
        && let Some((other, b)) = columns.iter().find(|(_, b)| b.len() != a.len())
    {
        return Err(Error::invalid(format!(
            "inputs have different numbers of rows: '{first}' has {}, '{other}' has {}",
            a.len(),
            b.len()
        )));
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(name, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays)
        .map_err(|e| Error::internal(format!("cannot assemble the model input: {e}")))
}

fn column_names(cols: &[ColSpec]) -> String {
    cols.iter()
        .enumerate()
        .map(|(i, c)| c.name.clone().unwrap_or_else(|| format!("input-{i}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn tensor_names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| s.name.clone().unwrap_or_else(|| format!("input-{i}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Encodes a model result as V2 outputs and response parameters, keeping only the outputs
/// the request asked for (in its order) when it named any.
pub(crate) fn encode_response(
    schema: &ModelSchema,
    output: ModelOutput,
    requested: &[RequestedOutput],
) -> Result<(Vec<InferTensor>, Parameters)> {
    let mut frame = false;
    let mut outputs: Vec<InferTensor> = match output {
        ModelOutput::Frame(batch) => {
            frame = true;
            let rows = i64::try_from(batch.num_rows()).unwrap_or(i64::MAX);
            batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .enumerate()
                .map(|(i, (field, array))| {
                    let name = if field.name().is_empty() {
                        schema.output_name(i)
                    } else {
                        field.name().clone()
                    };
                    let enc = arrays::from_array(array.as_ref(), &format!("output '{name}'"))?;
                    let mut shape = vec![rows];
                    if enc.inner.is_empty() {
                        shape.push(1);
                    } else {
                        shape.extend(
                            enc.inner
                                .iter()
                                .map(|d| i64::try_from(*d).unwrap_or(i64::MAX)),
                        );
                    }
                    Ok(output_tensor(name, shape, enc))
                })
                .collect::<Result<_>>()?
        }
        ModelOutput::Tensors(tensors) => tensors
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let name = if t.name.is_empty() {
                    schema.output_name(i)
                } else {
                    t.name
                };
                let enc = arrays::from_array(t.data.as_ref(), &format!("output '{name}'"))?;
                let mut dims = if t.shape.is_empty() {
                    vec![t.data.len()]
                } else {
                    t.shape
                };
                dims.extend(&enc.inner);
                if dims.iter().product::<usize>() != enc.data.len() {
                    return Err(Error::internal(format!(
                        "the model returned output '{name}' with shape {dims:?} but {} elements",
                        enc.data.len()
                    )));
                }
                let shape = dims
                    .iter()
                    .map(|d| i64::try_from(*d).unwrap_or(i64::MAX))
                    .collect();
                Ok(output_tensor(name, shape, enc))
            })
            .collect::<Result<_>>()?,
    };
    if !requested.is_empty() {
        let mut chosen = Vec::with_capacity(requested.len());
        for want in requested {
            match outputs.iter().position(|o| o.name == want.name) {
                Some(i) => chosen.push(outputs.swap_remove(i)),
                None if chosen.iter().any(|o: &InferTensor| o.name == want.name) => {}
                None => {
                    let mut have: Vec<&str> = outputs
                        .iter()
                        .chain(&chosen)
                        .map(|o| o.name.as_str())
                        .collect();
                    have.sort_unstable();
                    return Err(Error::invalid(format!(
                        "the model has no output '{}' (its outputs: {})",
                        want.name,
                        have.join(", ")
                    )));
                }
            }
        }
        outputs = chosen;
    }
    let content_type = match outputs.as_slice() {
        [only] => only
            .parameters
            .get("content_type")
            .cloned()
            .unwrap_or(Value::String("np".into())),
        _ if frame => Value::String(ContentType::Pd.as_str().into()),
        _ => Value::String(ContentType::Dict.as_str().into()),
    };
    let mut parameters = Parameters::new();
    parameters.insert("content_type".into(), content_type);
    Ok((outputs, parameters))
}

fn output_tensor(name: String, shape: Vec<i64>, enc: Encoded) -> InferTensor {
    let mut parameters = Parameters::new();
    parameters.insert(
        "content_type".into(),
        Value::String(enc.content_type.as_str().into()),
    );
    InferTensor {
        name,
        datatype: enc.data.datatype(),
        shape,
        parameters,
        data: enc.data,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
