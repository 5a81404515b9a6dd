use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, Float64Array, StringArray};
use bytes::Bytes;
use mlox_mlmodel::Signature;
use serde_json::json;

const WINE: &str = r#"[{"type": "double", "name": "fixed acidity"},
    {"type": "double", "name": "volatile acidity"}, {"type": "double", "name": "alcohol"}]"#;

fn schema(inputs: Option<&str>) -> ModelSchema {
    let sig = inputs.map(|i| Signature::from_mlmodel_value(&json!({"inputs": i})).unwrap());
    ModelSchema::new(sig.as_ref())
}

fn request(body: Value) -> InferRequest {
    let parameters = body
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let inputs = body["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let datatype = Datatype::parse(i["datatype"].as_str().unwrap(), "x").unwrap();
            InferTensor {
                name: i["name"].as_str().unwrap().into(),
                datatype,
                shape: serde_json::from_value(i["shape"].clone()).unwrap(),
                parameters: i
                    .get("parameters")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                data: TensorData::from_json(datatype, &i["data"], "x").unwrap(),
            }
        })
        .collect();
    InferRequest {
        id: None,
        parameters,
        inputs,
        outputs: vec![],
        ..InferRequest::default()
    }
}

fn decode(schema: &ModelSchema, body: Value) -> Result<ModelInput> {
    decode_request(schema, request(body)).map(|p| p.input)
}

fn frame_of(input: ModelInput) -> RecordBatch {
    match input {
        ModelInput::Frame(b) => b,
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn column_names_of(b: &RecordBatch) -> Vec<String> {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn one_input_per_column_becomes_a_dataframe_in_signature_order() {
    // Seed 001: FP32 inputs of shape [1] for a double signature, in any order.
    let b = frame_of(
        decode(
            &schema(Some(WINE)),
            json!({"inputs": [
                {"name": "alcohol", "shape": [1], "datatype": "FP32", "data": [9.4]},
                {"name": "fixed acidity", "shape": [1], "datatype": "FP32", "data": [7.4]},
                {"name": "volatile acidity", "shape": [1, 1], "datatype": "FP32", "data": [0.7]},
                {"name": "ignored", "shape": [1], "datatype": "FP32", "data": [0]}
            ]}),
        )
        .unwrap(),
    );
    assert_eq!(
        column_names_of(&b),
        ["fixed acidity", "volatile acidity", "alcohol"]
    );
    assert_eq!(b.num_rows(), 1);
    assert_eq!(
        b.column(0).as_primitive::<Float64Type>().value(0),
        7.4f32 as f64
    );
}

#[test]
fn a_two_dimensional_tensor_is_split_into_the_signature_columns() {
    for params in [json!({}), json!({"content_type": "np"})] {
        let b = frame_of(
            decode(
                &schema(Some(WINE)),
                json!({"parameters": params, "inputs": [
                    {"name": "input-0", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}
                ]}),
            )
            .unwrap(),
        );
        assert_eq!(
            column_names_of(&b),
            ["fixed acidity", "volatile acidity", "alcohol"]
        );
        let alcohol = b.column(2).as_primitive::<Float64Type>();
        assert_eq!((alcohol.value(0), alcohol.value(1)), (3.0, 6.0));
    }
}

#[test]
fn a_tensor_of_the_wrong_width_says_how_many_columns_are_wanted() {
    let e = decode(
        &schema(Some(WINE)),
        json!({"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "input 'input-0' has shape [1, 2], but the model signature has 3 columns (fixed \
         acidity, volatile acidity, alcohol); send a [rows, 3] tensor or one input per column"
    );
}

#[test]
fn missing_columns_are_named_with_their_types() {
    let e = decode(
        &schema(Some(WINE)),
        json!({"inputs": [
            {"name": "fixed acidity", "shape": [1], "datatype": "FP64", "data": [1]},
            {"name": "sugar", "shape": [1], "datatype": "FP64", "data": [1]}
        ]}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "the request lacks 2 inputs the model signature requires: 'volatile acidity' (double), \
         'alcohol' (double); it sends 'sugar' the signature does not name"
    );
}

#[test]
fn uncastable_types_and_ragged_rows_are_400s() {
    let e = decode(
        &schema(Some(
            r#"[{"type": "long", "name": "n"}, {"type": "double", "name": "x"}]"#,
        )),
        json!({"inputs": [
            {"name": "n", "shape": [1], "datatype": "FP64", "data": [1.5]},
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}
        ]}),
    )
    .unwrap_err();
    assert_eq!(e.code, mlox_core::Code::InvalidParameterValue);
    assert!(
        e.message
            .starts_with("input 'n' has datatype FP64 but the model signature expects long"),
        "{}",
        e.message
    );
    let e = decode(
        &schema(Some(WINE)),
        json!({"inputs": [
            {"name": "fixed acidity", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            {"name": "volatile acidity", "shape": [1], "datatype": "FP64", "data": [1]},
            {"name": "alcohol", "shape": [2], "datatype": "FP64", "data": [1, 2]}
        ]}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "inputs have different numbers of rows: 'fixed acidity' has 2, 'volatile acidity' has 1"
    );
    let e = decode(
        &schema(Some(WINE)),
        json!({"inputs": [{"name": "fixed acidity", "shape": [3, 1], "datatype": "FP64", "data": [1, 2]}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "input 'fixed acidity' has shape [3, 1] (3 elements) but 2 data elements"
    );
}

#[test]
fn seed_000_a_json_string_reaches_the_model_as_a_list_of_strings() {
    // StringRequestCodec: request- and input-level content_type "str".
    let body = json!({"parameters": {"content_type": "str"}, "inputs": [
        {"name": "input-0", "shape": [1, 1], "datatype": "BYTES", "data": ["{\"a\": 10}"],
         "parameters": {"content_type": "str"}}
    ]});
    let ModelInput::Tensors(t) = decode(&schema(None), body.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(t[0].name, "");
    assert_eq!(t[0].data.as_string::<i32>().value(0), "{\"a\": 10}");
    // With a one-column string signature it is that column, whatever the input's name.
    let b = frame_of(
        decode(
            &schema(Some(r#"[{"type": "string", "name": "text"}]"#)),
            body,
        )
        .unwrap(),
    );
    assert_eq!(column_names_of(&b), ["text"]);
    // The seed's hand-written request: a bare string, shape [len(string)], no content type.
    let b = frame_of(
        decode(
            &schema(None),
            json!({"inputs": [{"name": "work_model1", "shape": [9], "datatype": "BYTES", "data": "{\"a\": 10}"}]}),
        )
        .unwrap(),
    );
    assert_eq!(b.num_rows(), 1);
    assert_eq!(b.column(0).as_string::<i32>().value(0), "{\"a\": 10}");
}

#[test]
fn content_types_decode_bytes_elements() {
    let sig = Some(
        r#"[{"type": "binary", "name": "b"}, {"type": "datetime", "name": "d"}, {"type": "string", "name": "s"}]"#,
    );
    // Defaults come from the signature (base64 for binary, datetime for datetime).
    let b = frame_of(
        decode(
            &schema(sig),
            json!({"inputs": [
                {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["aGk="]},
                {"name": "d", "shape": [1], "datatype": "BYTES", "data": ["2024-03-01"]},
                {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}
            ]}),
        )
        .unwrap(),
    );
    assert_eq!(b.column(0).as_binary::<i32>().value(0), b"hi");
    assert_eq!(b.column(1).data_type().to_string(), "Timestamp(µs)");
    // Without a signature the input's own content type decides.
    let ModelInput::Frame(b) = decode(
        &schema(None),
        json!({"inputs": [
            {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["aGk="], "parameters": {"content_type": "base64"}},
            {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}
        ]}),
    )
    .unwrap() else { panic!() };
    assert_eq!(b.column(0).as_binary::<i32>().value(0), b"hi");
    assert_eq!(b.column(1).as_string::<i32>().value(0), "aGk=");
}

#[test]
fn np_and_dict_pass_arrays() {
    let ModelInput::Tensors(t) = decode(
        &schema(None),
        json!({"parameters": {"content_type": "np"}, "inputs": [
            {"name": "x", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]]}
        ]}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(t[0].shape, vec![2, 2]);
    assert_eq!(
        t[0].data.as_primitive::<Int64Type>().values().to_vec(),
        vec![1, 2, 3, 4]
    );
    let e = decode(
        &schema(None),
        json!({"parameters": {"content_type": "np"}, "inputs": [
            {"name": "x", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "y", "shape": [1], "datatype": "INT64", "data": [1]}
        ]}),
    )
    .unwrap_err();
    assert!(
        e.message
            .starts_with("the 'np' content type takes exactly one input (2 were sent)"),
        "{}",
        e.message
    );
    let ModelInput::Tensors(t) = decode(
        &schema(None),
        json!({"parameters": {"content_type": "dict"}, "inputs": [
            {"name": "x", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "y", "shape": [1], "datatype": "BOOL", "data": [true]}
        ]}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["x", "y"]
    );
    let e = decode(
        &schema(None),
        json!({"parameters": {"content_type": "nd"}, "inputs": []}),
    )
    .unwrap_err();
    assert!(
        e.message.starts_with("request: unknown content_type 'nd'"),
        "{}",
        e.message
    );
}

#[test]
fn tensor_signatures_check_dtype_and_shape() {
    let s = schema(Some(
        r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]"#,
    ));
    let ModelInput::Tensors(t) = decode(
        &s,
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}]}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(t[0].data.data_type(), &arrow_schema::DataType::Float32);
    let e = decode(
        &s,
        json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "input 'x' has shape [1, 3] but the model signature expects [-1, 2]"
    );
}

#[test]
fn params_keep_only_what_the_signature_declares() {
    let sig = Signature::from_mlmodel_value(&json!({
        "inputs": WINE,
        "params": r#"[{"name": "temperature", "type": "double", "default": 0.5}]"#
    }))
    .unwrap();
    let s = ModelSchema::new(Some(&sig));
    let p = json!({"content_type": "pd", "temperature": 0.1, "other": 1});
    assert_eq!(
        params(&s, p.as_object().unwrap()),
        *json!({"temperature": 0.1}).as_object().unwrap()
    );
    let none = ModelSchema::new(None);
    assert_eq!(
        params(&none, p.as_object().unwrap()),
        *json!({"temperature": 0.1, "other": 1}).as_object().unwrap()
    );
}

#[test]
fn frames_encode_one_output_per_column_and_requested_outputs_filter() {
    let batch = record_batch(vec![
        (
            "y".into(),
            Arc::new(Float64Array::from(vec![1.5, 2.5])) as ArrayRef,
        ),
        (
            "label".into(),
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let (outs, params) =
        encode_response(&schema(None), ModelOutput::Frame(batch.clone()), &[]).unwrap();
    assert_eq!(params["content_type"], "pd");
    assert_eq!(outs[0].shape, vec![2, 1]);
    assert_eq!(outs[0].datatype, Datatype::Fp64);
    assert_eq!(outs[1].datatype, Datatype::Bytes);
    assert_eq!(outs[1].parameters["content_type"], "str");
    assert_eq!(
        outs[1].data,
        TensorData::Bytes(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
    );
    let want = [RequestedOutput {
        name: "label".into(),
        parameters: Parameters::new(),
    }];
    let (outs, params) =
        encode_response(&schema(None), ModelOutput::Frame(batch.clone()), &want).unwrap();
    assert_eq!((outs.len(), &params["content_type"]), (1, &json!("str")));
    let want = [RequestedOutput {
        name: "foo".into(),
        parameters: Parameters::new(),
    }];
    let e = encode_response(&schema(None), ModelOutput::Frame(batch), &want).unwrap_err();
    assert_eq!(
        e.message,
        "the model has no output 'foo' (its outputs: label, y)"
    );
}

#[test]
fn tensors_encode_as_they_are_and_unnamed_ones_get_the_metadata_name() {
    let t = Tensor {
        name: String::new(),
        shape: vec![2],
        data: Arc::new(Float64Array::from(vec![1.0, 2.0])),
    };
    let (outs, params) =
        encode_response(&schema(None), ModelOutput::Tensors(vec![t]), &[]).unwrap();
    assert_eq!(
        (outs[0].name.as_str(), outs[0].shape.clone()),
        ("predictions", vec![2])
    );
    assert_eq!(params["content_type"], "np");
    let bad = Tensor {
        name: "p".into(),
        shape: vec![3],
        data: Arc::new(Float64Array::from(vec![1.0, 2.0])),
    };
    let e = encode_response(&schema(None), ModelOutput::Tensors(vec![bad]), &[]).unwrap_err();
    assert_eq!(e.code, mlox_core::Code::InternalError);
}
