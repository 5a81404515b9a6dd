//! A native runtime for MLflow models of the `onnx` flavor: the graph is run by tract, a
//! pure-Rust ONNX engine, and answers what `mlflow.pyfunc.load_model(dir).predict(...)` answers
//! through onnxruntime, shaped as the Python runtime shapes it.
//!
//! [`load`] reads the `MLmodel` and the graph, decides whether tract can run it faithfully,
//! and either returns a [`LoadedModel`] or a [`Load::Fallback`] saying why not, so the caller
//! can hand the directory to the Python runtime instead: graphs with operators tract does not
//! implement, shapes it cannot resolve, text tensors or non-tensor outputs (such as the sequence
//! of maps an sklearn classifier's ZipMap returns; convert with `zipmap=False` to be served
//! natively), and models whose pyfunc loader is not `mlflow.onnx`. Only a graph file that cannot
//! be decoded at all is an error.
//!
//! Requests follow MLflow's onnx pyfunc (the `feed` module says how they become the graph's
//! feeds): a DataFrame is answered with a DataFrame holding one column per graph output, each
//! output flattened as MLflow flattens it (so outputs of different sizes are an error there
//! and here); arrays are answered with one tensor per output, named and shaped as the graph
//! returns it. The flavor's `providers` and `onnx_session_options` tune onnxruntime only and
//! are not consulted: tract runs on the calling thread, never in a pool of its own, so
//! concurrent requests share the cores the way the server schedules them.

mod feed;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use mlox_core::{Error, Result};
use mlox_mlmodel::mlmodel::PYFUNC_FLAVOR;
use mlox_mlmodel::signature::{Schema as SignatureSchema, TensorSpec};
use serde_json::Value;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_linalg::multithread::Executor;
use tract_onnx::tract_hir::infer::{Factoid, ShapeFactoid};

use feed::{Dtype, Feed, InputSpec, Route, Values, each_values};
pub use mlox_runtime::{Load, ModelDir};
use mlox_runtime::{
    LoadedModel, ModelInput, ModelOutput, NativeBackend, PredictRequest, Predictor, fallback,
};

/// The flavor's name in `MLmodel`.
const FLAVOR: &str = "onnx";

/// Above this many input elements a prediction runs on the blocking pool (roughly a
/// millisecond of a small graph's work); below, hopping threads would cost more than it saves.
const BLOCKING_ELEMENTS: usize = 50_000;

/// The backend for `mlflow.onnx` models.
pub struct Onnx;

impl NativeBackend for Onnx {
    fn loader_modules(&self) -> &'static [&'static str] {
        &["mlflow.onnx"]
    }

    fn load(&self, model: &ModelDir) -> Result<Load> {
        load(model)
    }
}

/// Loads `model` natively if it is an ONNX model tract runs faithfully; see the module
/// documentation.
pub fn load(model: &ModelDir) -> Result<Load> {
    let mlmodel = model.mlmodel.clone();
    let Some(flavor) = mlmodel.flavor(FLAVOR) else {
        return fallback("the model has no onnx flavor");
    };
    // Another loader (a custom pyfunc carrying an ONNX file, say) answers in its own way.
    let loader = mlmodel
        .flavor(PYFUNC_FLAVOR)
        .and_then(|p| p.get("loader_module"))
        .and_then(Value::as_str);
    if loader != Some("mlflow.onnx") {
        return fallback(format!(
            "the python_function flavor loads it with {}, not mlflow.onnx",
            loader.unwrap_or("nothing")
        ));
    }
    let Some(path) = data_file(model, flavor) else {
        return fallback("the onnx flavor's data path leaves the model directory");
    };
    let signature = match mlmodel.parsed_signature() {
        Ok(s) => s,
        Err(e) => return fallback(format!("its signature is unreadable: {}", e.message)),
    };
    let proto = match tract_onnx::onnx().proto_model_for_path(&path) {
        Ok(p) => p,
        Err(e) => {
            return Err(Error::invalid(format!(
                "{} is not a readable ONNX model: {e}",
                path.display()
            )));
        }
    };
    let graph = match Interface::describe(&proto) {
        Ok(g) => g,
        Err(reason) => return fallback(reason),
    };
    // tract reports what it cannot do as errors, but an unusual graph can also trip an
    // assertion inside it; either way the Python runtime still serves the model.
    let built = std::panic::catch_unwind(AssertUnwindSafe(|| build_plan(&proto, &path, &graph)));
    let plan = match built {
        Ok(Ok(plan)) => plan,
        Ok(Err(reason)) => return fallback(reason),
        Err(_) => return fallback("tract panicked while preparing the graph"),
    };
    let description = format!(
        "ONNX graph{} (opset {}), inputs {}, outputs {}, run by tract, from {}",
        match (
            proto.producer_name.as_str(),
            proto.producer_version.as_str()
        ) {
            ("", _) => String::new(),
            (name, "") => format!(" from {name}"),
            (name, version) => format!(" from {name} {version}"),
        },
        graph.opset,
        graph
            .inputs
            .iter()
            .map(|i| format!("{} {}{}", i.name, i.dtype.onnx_name(), dims_text(&i.dims)))
            .collect::<Vec<_>>()
            .join(", "),
        graph.outputs.join(", "),
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
    );
    let tensor_signature = match signature.as_ref().map(|s| &s.inputs) {
        Some(SignatureSchema::Tensors(specs)) if !specs.is_empty() => Some(specs.clone()),
        _ => None,
    };
    let runtime = Runtime {
        plan,
        frame_schema: frame_schema(&graph.outputs, &graph.output_types),
        graph,
        tensor_signature,
    };
    Ok(Load::Native {
        model: LoadedModel {
            mlmodel,
            signature,
            predictor: Arc::new(OnnxPredictor {
                runtime: Arc::new(runtime),
            }),
            language: None,
        },
        description,
    })
}

/// The flavor's `data` file inside the model directory (MLflow's default name when it does
/// not say); `None` when it would leave the directory.
fn data_file(model: &ModelDir, flavor: &Value) -> Option<PathBuf> {
    model.file(
        flavor
            .get("data")
            .and_then(Value::as_str)
            .unwrap_or("model.onnx"),
    )
}

fn dims_text(dims: &[Option<usize>]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

/// What onnxruntime would report about the graph's interface.
struct Interface {
    opset: i64,
    /// The graph's inputs that are fed (initializers listed as inputs are not), in order.
    inputs: Vec<InputSpec>,
    outputs: Vec<String>,
    output_types: Vec<Dtype>,
}

fn dtype_of(elem_type: i32) -> std::result::Result<Dtype, String> {
    use pb::tensor_proto::DataType as D;
    let dt = D::try_from(elem_type).map_err(|_| format!("unknown element type {elem_type}"))?;
    Ok(match dt {
        D::Bool => Dtype::Bool,
        D::Int8 => Dtype::I8,
        D::Int16 => Dtype::I16,
        D::Int32 => Dtype::I32,
        D::Int64 => Dtype::I64,
        D::Uint8 => Dtype::U8,
        D::Uint16 => Dtype::U16,
        D::Uint32 => Dtype::U32,
        D::Uint64 => Dtype::U64,
        D::Float => Dtype::F32,
        D::Double => Dtype::F64,
        other => return Err(format!("{} tensors", other.as_str_name().to_lowercase())),
    })
}

/// A value's tensor type, or why it is not one this runtime carries.
fn tensor_type(value: &pb::ValueInfoProto) -> std::result::Result<&pb::type_proto::Tensor, String> {
    match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => Ok(t),
        // The decoder knows only tensor types; sequences, maps and optionals arrive empty.
        None => Err(format!(
            "'{}' is not a tensor (a sequence, map or optional value)",
            value.name
        )),
    }
}

impl Interface {
    fn describe(proto: &pb::ModelProto) -> std::result::Result<Interface, String> {
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| "the ONNX file holds no graph".to_owned())?;
        if graph.node.iter().any(|n| n.op_type == "ZipMap") {
            return Err(
                "the graph ends in a ZipMap (a list of {label: probability} maps); convert the \
                 classifier with zipmap=False to serve it natively"
                    .to_owned(),
            );
        }
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version);
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .map(|input| {
                let t = tensor_type(input).map_err(|e| format!("input {e}"))?;
                let dtype = dtype_of(t.elem_type)
                    .map_err(|e| format!("input '{}' takes {e}", input.name))?;
                let Some(shape) = &t.shape else {
                    return Err(format!("input '{}' declares no shape", input.name));
                };
                let dims = shape
                    .dim
                    .iter()
                    .map(|d| match d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => {
                            Some(v as usize)
                        }
                        _ => None,
                    })
                    .collect();
                Ok(InputSpec {
                    name: input.name.clone(),
                    dtype,
                    dims,
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        if inputs.is_empty() {
            return Err("the graph takes no inputs".to_owned());
        }
        let mut outputs = Vec::new();
        let mut output_types = Vec::new();
        for output in &graph.output {
            let t = tensor_type(output).map_err(|e| format!("output {e}"))?;
            let dtype =
                dtype_of(t.elem_type).map_err(|e| format!("output '{}' is {e}", output.name))?;
            outputs.push(output.name.clone());
            output_types.push(dtype);
        }
        Ok(Interface {
            opset,
            inputs,
            outputs,
            output_types,
        })
    }
}

type Plan = Arc<TypedRunnableModel>;

/// tract's optimized plan for the graph, with every unknown dimension a symbol (the first
/// one of each input the shared batch size), or why tract cannot run it.
fn build_plan(
    proto: &pb::ModelProto,
    path: &Path,
    graph: &Interface,
) -> std::result::Result<Plan, String> {
    let dir = path.parent().and_then(Path::to_str);
    let parsed = tract_onnx::onnx()
        .parse(proto, dir)
        .map_err(|e| format!("tract cannot read the graph: {e:#}"))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(format!(
            "the graph refers to values it never defines: {:?}",
            parsed.unresolved_inputs
        ));
    }
    let mut model = parsed.model;
    let outlets = model.input_outlets().map_err(|e| e.to_string())?.to_vec();
    if outlets.len() != graph.inputs.len() {
        return Err(format!(
            "tract sees {} inputs where the graph declares {}",
            outlets.len(),
            graph.inputs.len()
        ));
    }
    let batch = model.symbols.sym("batch");
    for (ix, outlet) in outlets.iter().enumerate() {
        let name = model.node(outlet.node).name.clone();
        let Some(spec) = graph.inputs.iter().find(|i| i.name == name) else {
            return Err(format!(
                "tract's input '{name}' is not one the graph declares"
            ));
        };
        let fact = model.input_fact(ix).map_err(|e| e.to_string())?.clone();
        let dims: Vec<TDim> = fact
            .shape
            .dims()
            .enumerate()
            .map(|(d, dim)| match dim.concretize() {
                Some(known) => known,
                None if d == 0 => TDim::Sym(batch.clone()),
                None => TDim::Sym(model.symbols.sym(&format!("{name}_dim{d}"))),
            })
            .collect();
        if dims.len() != spec.dims.len() {
            return Err(format!("input '{name}' has no fixed rank"));
        }
        let dt = datum_type(spec.dtype);
        model
            .set_input_fact(
                ix,
                InferenceFact::dt_shape(dt, dims.into_iter().collect::<ShapeFactoid>()),
            )
            .map_err(|e| e.to_string())?;
    }
    let typed = model
        .into_optimized()
        .map_err(|e| format!("tract cannot run the graph: {e:#}"))?;
    let outputs = typed.output_outlets().map_err(|e| e.to_string())?;
    for (i, outlet) in outputs.iter().enumerate() {
        let dt = typed
            .outlet_fact(*outlet)
            .map_err(|e| e.to_string())?
            .datum_type;
        if graph
            .output_types
            .get(i)
            .is_none_or(|&want| datum_type(want) != dt)
        {
            return Err(format!(
                "tract computes output {i} as {dt:?}, not the graph's declared type"
            ));
        }
    }
    let options = RunOptions {
        executor: Some(Executor::SingleThread),
        ..RunOptions::default()
    };
    typed
        .into_runnable_with_options(&options)
        .map_err(|e| format!("tract cannot plan the graph: {e:#}"))
}

fn datum_type(dtype: Dtype) -> DatumType {
    match dtype {
        Dtype::Bool => DatumType::Bool,
        Dtype::I8 => DatumType::I8,
        Dtype::I16 => DatumType::I16,
        Dtype::I32 => DatumType::I32,
        Dtype::I64 => DatumType::I64,
        Dtype::U8 => DatumType::U8,
        Dtype::U16 => DatumType::U16,
        Dtype::U32 => DatumType::U32,
        Dtype::U64 => DatumType::U64,
        Dtype::F32 => DatumType::F32,
        Dtype::F64 => DatumType::F64,
    }
}

fn arrow_type(dtype: Dtype) -> DataType {
    match dtype {
        Dtype::Bool => DataType::Boolean,
        Dtype::I8 => DataType::Int8,
        Dtype::I16 => DataType::Int16,
        Dtype::I32 => DataType::Int32,
        Dtype::I64 => DataType::Int64,
        Dtype::U8 => DataType::UInt8,
        Dtype::U16 => DataType::UInt16,
        Dtype::U32 => DataType::UInt32,
        Dtype::U64 => DataType::UInt64,
        Dtype::F32 => DataType::Float32,
        Dtype::F64 => DataType::Float64,
    }
}

/// The schema of a DataFrame answer, built once per model rather than per request.
fn frame_schema(names: &[String], types: &[Dtype]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .zip(types)
            .map(|(n, &t)| Field::new(n, arrow_type(t), true))
            .collect::<Vec<_>>(),
    ))
}

struct Runtime {
    plan: Plan,
    graph: Interface,
    frame_schema: SchemaRef,
    /// The signature's inputs when they are tensors, which changes what a DataFrame becomes.
    tensor_signature: Option<Vec<TensorSpec>>,
}

struct OnnxPredictor {
    runtime: Arc<Runtime>,
}

#[async_trait]
impl Predictor for OnnxPredictor {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        if input_elements(&request.input) <= BLOCKING_ELEMENTS {
            return self.runtime.predict(&request.input);
        }
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.predict(&request.input))
            .await
            .map_err(|e| Error::internal(format!("a prediction task failed: {e}")))?
    }
}

fn input_elements(input: &ModelInput) -> usize {
    match input {
        ModelInput::Frame(batch) => batch.num_rows().saturating_mul(batch.num_columns()),
        ModelInput::Tensors(tensors) => tensors.iter().map(|t| t.data.len()).sum(),
    }
}

impl Runtime {
    fn predict(&self, input: &ModelInput) -> Result<ModelOutput> {
        let (feeds, route) =
            feed::feeds(&self.graph.inputs, input, self.tensor_signature.as_deref())?;
        let inputs = feeds
            .into_iter()
            .map(|f| to_tract(f).map(IntoTValue::into_tvalue))
            .collect::<Result<TVec<_>>>()?;
        // A request whose shapes the graph cannot take may trip an assertion inside tract
        // rather than an error; it is still the request's fault, not the server's.
        let outputs = std::panic::catch_unwind(AssertUnwindSafe(|| self.plan.run(inputs)))
            .map_err(|_| Error::invalid("the ONNX model could not run on this input"))?
            .map_err(|e| Error::invalid(format!("the ONNX model could not run: {e:#}")))?;
        let arrays = outputs
            .iter()
            .zip(&self.graph.output_types)
            .map(|(value, &dtype)| from_tract(value, dtype))
            .collect::<Result<Vec<_>>>()?;
        match route {
            Route::Frame => self.frame(arrays),
            Route::Dict => Ok(ModelOutput::Tensors(
                arrays
                    .into_iter()
                    .zip(&self.graph.outputs)
                    .map(|((data, shape), name)| mlox_runtime::Tensor {
                        name: name.clone(),
                        shape,
                        data,
                    })
                    .collect(),
            )),
        }
    }

    /// MLflow's DataFrame answer: every output flattened into a column, which pandas only
    /// accepts when all have the same length.
    fn frame(&self, arrays: Vec<(ArrayRef, Vec<usize>)>) -> Result<ModelOutput> {
        let lengths: Vec<usize> = arrays.iter().map(|(a, _)| a.len()).collect();
        if lengths.windows(2).any(|w| w[0] != w[1]) {
            let shapes: Vec<String> = arrays
                .iter()
                .zip(&self.graph.outputs)
                .map(|((_, shape), name)| format!("'{name}' {shape:?}"))
                .collect();
            return Err(Error::invalid(format!(
                "All arrays must be of the same length: MLflow answers a DataFrame input with \
                 one flattened column per output, and this model's outputs differ in size ({}); \
                 send the input as tensors to get each output whole",
                shapes.join(", ")
            )));
        }
        let columns = arrays.into_iter().map(|(a, _)| a).collect();
        RecordBatch::try_new(self.frame_schema.clone(), columns)
            .map(ModelOutput::Frame)
            .map_err(|e| Error::internal(format!("cannot build the answer: {e}")))
    }
}

fn to_tract(feed: Feed) -> Result<Tensor> {
    let shape = feed.shape;
    each_values!(&feed.values, v => Tensor::from_shape(&shape, v))
        .map_err(|e| Error::invalid(format!("cannot build an input tensor: {e}")))
}

/// An output as a flat Arrow array in the graph's declared type, with its shape.
fn from_tract(value: &TValue, dtype: Dtype) -> Result<(ArrayRef, Vec<usize>)> {
    let shape = value.shape().to_vec();
    let failed = |e: TractError| Error::internal(format!("cannot read an output: {e}"));
    fn flat<T: Datum + Copy>(value: &TValue) -> TractResult<Vec<T>> {
        Ok(value.to_plain_array_view::<T>()?.iter().copied().collect())
    }
    let array: ArrayRef = match dtype {
        Dtype::Bool => Arc::new(BooleanArray::from(flat::<bool>(value).map_err(failed)?)),
        Dtype::I8 => Arc::new(Int8Array::from(flat::<i8>(value).map_err(failed)?)),
        Dtype::I16 => Arc::new(Int16Array::from(flat::<i16>(value).map_err(failed)?)),
        Dtype::I32 => Arc::new(Int32Array::from(flat::<i32>(value).map_err(failed)?)),
        Dtype::I64 => Arc::new(Int64Array::from(flat::<i64>(value).map_err(failed)?)),
        Dtype::U8 => Arc::new(UInt8Array::from(flat::<u8>(value).map_err(failed)?)),
        Dtype::U16 => Arc::new(UInt16Array::from(flat::<u16>(value).map_err(failed)?)),
        Dtype::U32 => Arc::new(UInt32Array::from(flat::<u32>(value).map_err(failed)?)),
        Dtype::U64 => Arc::new(UInt64Array::from(flat::<u64>(value).map_err(failed)?)),
        Dtype::F32 => Arc::new(Float32Array::from(flat::<f32>(value).map_err(failed)?)),
        Dtype::F64 => Arc::new(Float64Array::from(flat::<f64>(value).map_err(failed)?)),
    };
    Ok((array, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `dir`'s MLmodel and offers it to this backend, as selection does.
    fn load_dir(dir: &Path) -> Result<Load> {
        load(&ModelDir::open(dir)?)
    }

    fn reason(load: Load) -> String {
        match load {
            Load::Fallback { reason } => reason,
            Load::Native { description, .. } => panic!("loaded natively: {description}"),
        }
    }

    #[test]
    fn other_flavors_and_escaping_paths_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            ModelDir::open(dir.path())
                .unwrap_err()
                .message
                .contains("MLmodel")
        );
        std::fs::write(
            dir.path().join("MLmodel"),
            "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n",
        )
        .unwrap();
        assert!(reason(load_dir(dir.path()).unwrap()).contains("onnx flavor"));
        std::fs::write(
            dir.path().join("MLmodel"),
            "flavors:\n  onnx:\n    data: model.onnx\n  python_function:\n    \
             loader_module: custom.loader\n",
        )
        .unwrap();
        assert!(reason(load_dir(dir.path()).unwrap()).contains("custom.loader"));
        std::fs::write(
            dir.path().join("MLmodel"),
            "flavors:\n  onnx:\n    data: ../model.onnx\n  python_function:\n    \
             loader_module: mlflow.onnx\n",
        )
        .unwrap();
        assert!(reason(load_dir(dir.path()).unwrap()).contains("leaves"));
    }

    #[test]
    fn an_unreadable_graph_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("MLmodel"),
            "flavors:\n  onnx:\n    data: model.onnx\n  python_function:\n    \
             loader_module: mlflow.onnx\n",
        )
        .unwrap();
        assert!(load_dir(dir.path()).is_err());
        std::fs::write(
            dir.path().join("model.onnx"),
            b"\xff\xff\xff\xff not protobuf",
        )
        .unwrap();
        let err = load_dir(dir.path()).err().unwrap();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
    }
}
