//! Turning a request into the arrays an ONNX graph is fed, the way MLflow's onnx pyfunc
//! (`_OnnxModelWrapper.predict`) builds its feed dictionary from what the Python worker hands
//! it, so a request that the Python runtime would answer gets the same numbers here and one it
//! would refuse is refused here too.
//!
//! A DataFrame feeds a single-input graph with `df.values` (one 2-D array in the dtype numpy
//! promotes the columns to) and a multi-input graph with one 1-D column per input, by name.
//! Named tensors are the feed dictionary itself; one unnamed tensor feeds a single-input
//! graph. Columns become numpy arrays as pandas makes them: nulls in float columns are NaN,
//! integer columns with nulls turn `float64`, and anything that would be an object array
//! (text, booleans with nulls) is refused, as onnxruntime refuses it. Finally float64 arrays
//! bound for `tensor(float)` inputs are cast to float32, the one cast MLflow makes; any other
//! dtype or shape mismatch is refused as onnxruntime refuses it.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::DataType;
use mlox_core::{Error, Result};
use mlox_mlmodel::signature::TensorSpec;

use mlox_runtime::{ModelInput, Tensor};

/// The element types this runtime feeds and returns; the names are numpy's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dtype {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

impl Dtype {
    /// How onnxruntime names the tensor type, for messages that read like its own.
    pub(crate) fn onnx_name(self) -> &'static str {
        match self {
            Dtype::Bool => "tensor(bool)",
            Dtype::I8 => "tensor(int8)",
            Dtype::I16 => "tensor(int16)",
            Dtype::I32 => "tensor(int32)",
            Dtype::I64 => "tensor(int64)",
            Dtype::U8 => "tensor(uint8)",
            Dtype::U16 => "tensor(uint16)",
            Dtype::U32 => "tensor(uint32)",
            Dtype::U64 => "tensor(uint64)",
            Dtype::F32 => "tensor(float)",
            Dtype::F64 => "tensor(double)",
        }
    }

    /// (signed, bits) of an integer type.
    fn int(self) -> Option<(bool, u32)> {
        match self {
            Dtype::I8 => Some((true, 8)),
            Dtype::I16 => Some((true, 16)),
            Dtype::I32 => Some((true, 32)),
            Dtype::I64 => Some((true, 64)),
            Dtype::U8 => Some((false, 8)),
            Dtype::U16 => Some((false, 16)),
            Dtype::U32 => Some((false, 32)),
            Dtype::U64 => Some((false, 64)),
            _ => None,
        }
    }

    fn of_int(signed: bool, bits: u32) -> Dtype {
        match (signed, bits) {
            (true, 8) => Dtype::I8,
            (true, 16) => Dtype::I16,
            (true, 32) => Dtype::I32,
            (true, _) => Dtype::I64,
            (false, 8) => Dtype::U8,
            (false, 16) => Dtype::U16,
            (false, 32) => Dtype::U32,
            (false, _) => Dtype::U64,
        }
    }

    /// numpy's `result_type` of two arrays: what `DataFrame.values` gives for mixed columns.
    pub(crate) fn promote(a: Dtype, b: Dtype) -> Dtype {
        if a == b {
            return a;
        }
        match (a, b) {
            (Dtype::Bool, other) | (other, Dtype::Bool) => other,
            (Dtype::F64, _) | (_, Dtype::F64) => Dtype::F64,
            (Dtype::F32, other) | (other, Dtype::F32) => match other.int() {
                // float32 holds every 8- and 16-bit integer exactly; wider ones need float64.
                Some((_, bits)) if bits > 16 => Dtype::F64,
                _ => Dtype::F32,
            },
            _ => {
                let (Some((sa, ba)), Some((sb, bb))) = (a.int(), b.int()) else {
                    return Dtype::F64;
                };
                if sa == sb {
                    return Dtype::of_int(sa, ba.max(bb));
                }
                let (unsigned, signed) = if sa { (bb, ba) } else { (ba, bb) };
                if signed > unsigned {
                    Dtype::of_int(true, signed)
                } else if unsigned < 64 {
                    Dtype::of_int(true, unsigned * 2)
                } else {
                    Dtype::F64
                }
            }
        }
    }
}

/// Flat, row-major elements of one array.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Values {
    Bool(Vec<bool>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Applies `$body` to the vector inside any variant, bound as `$v`.
macro_rules! each_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::Bool($v) => $body,
            Values::I8($v) => $body,
            Values::I16($v) => $body,
            Values::I32($v) => $body,
            Values::I64($v) => $body,
            Values::U8($v) => $body,
            Values::U16($v) => $body,
            Values::U32($v) => $body,
            Values::U64($v) => $body,
            Values::F32($v) => $body,
            Values::F64($v) => $body,
        }
    };
}
pub(crate) use each_values;

/// Numbers convertible with `as`, so widening follows numpy's `astype` exactly.
trait Numeric: Copy {
    fn from_values(values: &Values) -> Vec<Self>;
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            fn from_values(values: &Values) -> Vec<$t> {
                match values {
                    Values::Bool(v) => v.iter().map(|&x| u8::from(x) as $t).collect(),
                    Values::I8(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::I16(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::I32(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::I64(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::U8(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::U16(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::U32(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::U64(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::F32(v) => v.iter().map(|&x| x as $t).collect(),
                    Values::F64(v) => v.iter().map(|&x| x as $t).collect(),
                }
            }
        }
    )*};
}
numeric!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl Values {
    pub(crate) fn dtype(&self) -> Dtype {
        match self {
            Values::Bool(_) => Dtype::Bool,
            Values::I8(_) => Dtype::I8,
            Values::I16(_) => Dtype::I16,
            Values::I32(_) => Dtype::I32,
            Values::I64(_) => Dtype::I64,
            Values::U8(_) => Dtype::U8,
            Values::U16(_) => Dtype::U16,
            Values::U32(_) => Dtype::U32,
            Values::U64(_) => Dtype::U64,
            Values::F32(_) => Dtype::F32,
            Values::F64(_) => Dtype::F64,
        }
    }

    pub(crate) fn len(&self) -> usize {
        each_values!(self, v => v.len())
    }

    /// These values as `to`; only ever asked for a type numpy promotion reaches, so booleans
    /// are never the target of a cast from numbers.
    fn cast(&self, to: Dtype) -> Values {
        if self.dtype() == to {
            return self.clone();
        }
        match to {
            Dtype::Bool => Values::Bool(f64::from_values(self).iter().map(|&x| x != 0.0).collect()),
            Dtype::I8 => Values::I8(i8::from_values(self)),
            Dtype::I16 => Values::I16(i16::from_values(self)),
            Dtype::I32 => Values::I32(i32::from_values(self)),
            Dtype::I64 => Values::I64(i64::from_values(self)),
            Dtype::U8 => Values::U8(u8::from_values(self)),
            Dtype::U16 => Values::U16(u16::from_values(self)),
            Dtype::U32 => Values::U32(u32::from_values(self)),
            Dtype::U64 => Values::U64(u64::from_values(self)),
            Dtype::F32 => Values::F32(f32::from_values(self)),
            Dtype::F64 => Values::F64(f64::from_values(self)),
        }
    }

    /// Equal-length columns of one dtype laid out as rows.
    fn interleave(columns: &[Values], rows: usize) -> Values {
        fn rows_of<T: Copy>(columns: &[&[T]], rows: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(rows * columns.len());
            for r in 0..rows {
                out.extend(columns.iter().map(|c| c[r]));
            }
            out
        }
        macro_rules! gather {
            ($variant:ident) => {
                Values::$variant(rows_of(
                    &columns
                        .iter()
                        .map(|c| match c {
                            Values::$variant(v) => v.as_slice(),
                            _ => unreachable!("columns are cast to one dtype first"),
                        })
                        .collect::<Vec<_>>(),
                    rows,
                ))
            };
        }
        match columns.first().map(Values::dtype).unwrap_or(Dtype::F64) {
            Dtype::Bool => gather!(Bool),
            Dtype::I8 => gather!(I8),
            Dtype::I16 => gather!(I16),
            Dtype::I32 => gather!(I32),
            Dtype::I64 => gather!(I64),
            Dtype::U8 => gather!(U8),
            Dtype::U16 => gather!(U16),
            Dtype::U32 => gather!(U32),
            Dtype::U64 => gather!(U64),
            Dtype::F32 => gather!(F32),
            Dtype::F64 => gather!(F64),
        }
    }
}

/// One input of the graph as onnxruntime describes it; `None` dims are symbolic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InputSpec {
    pub name: String,
    pub dtype: Dtype,
    pub dims: Vec<Option<usize>>,
}

/// One array fed to the graph.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Feed {
    pub values: Values,
    pub shape: Vec<usize>,
}

/// Which of MLflow's answers the request gets: a DataFrame of flattened outputs for a
/// DataFrame, a dict of arrays for arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Frame,
    Dict,
}

/// The feeds for `inputs`, in the graph's input order, and how the answer is shaped.
/// `tensor_signature` holds the signature's input specs when they are tensors: MLflow's
/// schema enforcement then turns a DataFrame into arrays before the model sees it.
pub(crate) fn feeds(
    inputs: &[InputSpec],
    request: &ModelInput,
    tensor_signature: Option<&[TensorSpec]>,
) -> Result<(Vec<Feed>, Route)> {
    match (request, tensor_signature) {
        (ModelInput::Frame(batch), None) => Ok((frame_feeds(inputs, batch)?, Route::Frame)),
        (ModelInput::Frame(batch), Some(specs)) => {
            let arrays = frame_as_arrays(batch, specs)?;
            Ok((dict_feeds(inputs, arrays)?, Route::Dict))
        }
        (ModelInput::Tensors(tensors), _) => {
            let arrays = tensors
                .iter()
                .map(|t| Ok((t.name.clone(), tensor_feed(t)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok((dict_feeds(inputs, arrays)?, Route::Dict))
        }
    }
}

/// `df.values`: the columns as rows of one 2-D array in the dtype numpy promotes them to.
fn frame_matrix(batch: &RecordBatch) -> Result<Feed> {
    let columns = batch
        .schema_ref()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| column_values(f.name(), c.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let Some(dtype) = columns.iter().map(Values::dtype).reduce(Dtype::promote) else {
        return Err(Error::invalid("the input DataFrame has no columns"));
    };
    let columns: Vec<Values> = columns.iter().map(|c| c.cast(dtype)).collect();
    Ok(Feed {
        values: Values::interleave(&columns, batch.num_rows()),
        shape: vec![batch.num_rows(), columns.len()],
    })
}

fn frame_feeds(inputs: &[InputSpec], batch: &RecordBatch) -> Result<Vec<Feed>> {
    let rows = batch.num_rows();
    if let [input] = inputs {
        let feed = frame_matrix(batch)?;
        return Ok(vec![conform(input, feed)?]);
    }
    inputs
        .iter()
        .map(|input| {
            let Some(column) = batch.column_by_name(&input.name) else {
                return Err(Error::invalid(format!(
                    "the ONNX model takes {} inputs, one per DataFrame column, but the input \
                     has no column '{}'",
                    inputs.len(),
                    input.name
                )));
            };
            let feed = Feed {
                values: column_values(&input.name, column.as_ref())?,
                shape: vec![rows],
            };
            conform(input, feed)
        })
        .collect()
}

/// What MLflow's enforcement of a tensor signature makes of a DataFrame: the signature's named
/// tensors, each a column shaped as its spec says, or for one unnamed tensor the whole frame
/// (`df.to_numpy()`, or its one column shaped as the spec says).
fn frame_as_arrays(batch: &RecordBatch, specs: &[TensorSpec]) -> Result<Vec<(String, Feed)>> {
    let rows = batch.num_rows();
    let shaped = |name: &str, values: Values, spec: &TensorSpec| -> Result<Feed> {
        let shape = resolve_shape(&spec.shape, values.len()).ok_or_else(|| {
            Error::invalid(format!(
                "column '{name}' has {} values, which cannot take the signature's shape {:?}",
                values.len(),
                spec.shape
            ))
        })?;
        Ok(Feed { values, shape })
    };
    let named = specs.iter().all(|s| s.name.is_some());
    if named {
        return specs
            .iter()
            .map(|spec| {
                let name = spec.name.clone().unwrap_or_default();
                let column = batch.column_by_name(&name).ok_or_else(|| {
                    Error::invalid(format!("the input lacks the signature's input '{name}'"))
                })?;
                let values = column_values(&name, column.as_ref())?;
                Ok((name.clone(), shaped(&name, values, spec)?))
            })
            .collect();
    }
    let Some(spec) = specs.first() else {
        return Err(Error::invalid("the model signature declares no inputs"));
    };
    if rows == 0 || batch.num_columns() == 0 {
        return Err(Error::invalid("Input DataFrame is empty."));
    }
    if batch.num_columns() == 1 {
        let field = batch.schema_ref().field(0).clone();
        let values = column_values(field.name(), batch.column(0).as_ref())?;
        return Ok(vec![(String::new(), shaped(field.name(), values, spec)?)]);
    }
    let width = batch.num_columns();
    if spec.shape != [-1, width as i64] {
        return Err(Error::invalid(format!(
            "This model contains a model signature with an unnamed input. Since the input data \
             is a pandas DataFrame containing multiple columns, the input shape must be of the \
             structure (-1, number_of_dataframe_columns). Instead, the input DataFrame passed \
             had {width} columns and an input shape of {:?}",
            spec.shape
        )));
    }
    Ok(vec![(String::new(), frame_matrix(batch)?)])
}

/// A signature shape with its `-1` (at most one) filled in for `len` elements.
fn resolve_shape(shape: &[i64], len: usize) -> Option<Vec<usize>> {
    let known: usize = shape
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    let free = shape.iter().filter(|&&d| d < 0).count();
    match free {
        0 => (known == len).then(|| shape.iter().map(|&d| d as usize).collect()),
        1 if known > 0 && len.is_multiple_of(known) => Some(
            shape
                .iter()
                .map(|&d| if d < 0 { len / known } else { d as usize })
                .collect(),
        ),
        1 if len == 0 => Some(shape.iter().map(|&d| d.max(0) as usize).collect()),
        _ => None,
    }
}

/// The feed dictionary: one unnamed array is the single input's, named arrays go by name.
fn dict_feeds(inputs: &[InputSpec], arrays: Vec<(String, Feed)>) -> Result<Vec<Feed>> {
    let input_names = || {
        inputs
            .iter()
            .map(|i| format!("'{}'", i.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if arrays.len() == 1 && arrays[0].0.is_empty() {
        let [input] = inputs else {
            return Err(Error::invalid(format!(
                "Unable to map numpy array input to the expected model input. Numpy arrays can \
                 only be used as input for MLflow ONNX models that have a single input. This \
                 model requires {} inputs. Please pass in data as either a dictionary or a \
                 DataFrame with the following tensors: {}.",
                inputs.len(),
                input_names()
            )));
        };
        return arrays
            .into_iter()
            .map(|(_, feed)| conform(input, feed))
            .collect();
    }
    if arrays.iter().any(|(name, _)| name.is_empty()) {
        return Err(Error::invalid(
            "when several tensors are sent, each needs a name",
        ));
    }
    let mut by_name: std::collections::HashMap<String, Feed> = arrays.into_iter().collect();
    if let Some(extra) = by_name
        .keys()
        .find(|k| !inputs.iter().any(|i| &i.name == *k))
    {
        return Err(Error::invalid(format!(
            "Invalid input name: {extra}; the ONNX model's inputs are {}",
            input_names()
        )));
    }
    let missing: Vec<String> = inputs
        .iter()
        .filter(|i| !by_name.contains_key(&i.name))
        .map(|i| format!("'{}'", i.name))
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "Required inputs ({}) are missing from input feed",
            missing.join(", ")
        )));
    }
    inputs
        .iter()
        .map(|input| {
            let feed = by_name.remove(&input.name).expect("checked above");
            conform(input, feed)
        })
        .collect()
}

fn tensor_feed(tensor: &Tensor) -> Result<Feed> {
    let elements: usize = tensor.shape.iter().product();
    if elements != tensor.data.len() {
        return Err(Error::invalid(format!(
            "tensor '{}' has shape {:?} ({elements} elements) but holds {} values",
            tensor.name,
            tensor.shape,
            tensor.data.len()
        )));
    }
    Ok(Feed {
        values: column_values(&tensor.name, tensor.data.as_ref())?,
        shape: tensor.shape.clone(),
    })
}

/// MLflow's float64 → float32 cast, then onnxruntime's checks of dtype and shape.
fn conform(input: &InputSpec, mut feed: Feed) -> Result<Feed> {
    if input.dtype == Dtype::F32 && feed.values.dtype() == Dtype::F64 {
        feed.values = feed.values.cast(Dtype::F32);
    }
    if feed.values.dtype() != input.dtype {
        return Err(Error::invalid(format!(
            "Unexpected input data type for input '{}'. Actual: ({}) , expected: ({})",
            input.name,
            feed.values.dtype().onnx_name(),
            input.dtype.onnx_name()
        )));
    }
    if feed.shape.len() != input.dims.len() {
        return Err(Error::invalid(format!(
            "Invalid rank for input: {} Got: {} Expected: {} Please fix either the inputs or \
             the model.",
            input.name,
            feed.shape.len(),
            input.dims.len()
        )));
    }
    let wrong: Vec<String> = feed
        .shape
        .iter()
        .zip(&input.dims)
        .enumerate()
        .filter_map(|(i, (&got, want))| match want {
            Some(w) if *w != got => Some(format!("index: {i} Got: {got} Expected: {w}")),
            _ => None,
        })
        .collect();
    if !wrong.is_empty() {
        return Err(Error::invalid(format!(
            "Got invalid dimensions for input: {} for the following indices {}",
            input.name,
            wrong.join(", ")
        )));
    }
    Ok(feed)
}

/// One Arrow column as the numpy array pandas (or pyarrow's `to_numpy`) would make of it.
fn column_values(name: &str, array: &dyn Array) -> Result<Values> {
    fn prim<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<T::Native> {
        array.as_primitive::<T>().values().to_vec()
    }
    fn with_nan<T>(array: &dyn Array) -> Vec<f64>
    where
        T: ArrowPrimitiveType,
        T::Native: Into<f64>,
    {
        array
            .as_primitive::<T>()
            .iter()
            .map(|v| v.map_or(f64::NAN, Into::into))
            .collect()
    }
    let nulls = array.null_count() > 0;
    let values = match array.data_type() {
        DataType::Float32 => Values::F32(
            array
                .as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.unwrap_or(f32::NAN))
                .collect(),
        ),
        DataType::Float64 => Values::F64(with_nan::<Float64Type>(array)),
        DataType::Int8 if nulls => Values::F64(with_nan::<Int8Type>(array)),
        DataType::Int16 if nulls => Values::F64(with_nan::<Int16Type>(array)),
        DataType::Int32 if nulls => Values::F64(with_nan::<Int32Type>(array)),
        DataType::Int64 if nulls => Values::F64(
            array
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map_or(f64::NAN, |x| x as f64))
                .collect(),
        ),
        DataType::UInt8 if nulls => Values::F64(with_nan::<UInt8Type>(array)),
        DataType::UInt16 if nulls => Values::F64(with_nan::<UInt16Type>(array)),
        DataType::UInt32 if nulls => Values::F64(with_nan::<UInt32Type>(array)),
        DataType::UInt64 if nulls => Values::F64(
            array
                .as_primitive::<UInt64Type>()
                .iter()
                .map(|v| v.map_or(f64::NAN, |x| x as f64))
                .collect(),
        ),
        DataType::Int8 => Values::I8(prim::<Int8Type>(array)),
        DataType::Int16 => Values::I16(prim::<Int16Type>(array)),
        DataType::Int32 => Values::I32(prim::<Int32Type>(array)),
        DataType::Int64 => Values::I64(prim::<Int64Type>(array)),
        DataType::UInt8 => Values::U8(prim::<UInt8Type>(array)),
        DataType::UInt16 => Values::U16(prim::<UInt16Type>(array)),
        DataType::UInt32 => Values::U32(prim::<UInt32Type>(array)),
        DataType::UInt64 => Values::U64(prim::<UInt64Type>(array)),
        DataType::Boolean if !nulls => Values::Bool(array.as_boolean().values().iter().collect()),
        other => {
            let what = if name.is_empty() {
                "the input".to_owned()
            } else {
                format!("'{name}'")
            };
            let kind = if matches!(other, DataType::Boolean) {
                "booleans with missing values".to_owned()
            } else {
                format!("{other} values")
            };
            return Err(Error::invalid(format!(
                "{what} holds {kind}, which become an object array that the ONNX model cannot \
                 take"
            )));
        }
    };
    Ok(values)
}

#[cfg(test)]
mod tests;
