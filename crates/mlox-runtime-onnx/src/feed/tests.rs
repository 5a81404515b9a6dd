use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
};

use super::*;

fn input(name: &str, dtype: Dtype, dims: &[Option<usize>]) -> InputSpec {
    InputSpec {
        name: name.into(),
        dtype,
        dims: dims.to_vec(),
    }
}

fn frame(columns: Vec<(&str, ArrayRef)>) -> ModelInput {
    ModelInput::Frame(RecordBatch::try_from_iter(columns).unwrap())
}

#[test]
fn promotion_follows_numpy() {
    use Dtype::*;
    let cases = [
        (F32, F32, F32),
        (F32, F64, F64),
        (I64, F32, F64),
        (I32, F32, F64),
        (I16, F32, F32),
        (U8, F32, F32),
        (Bool, I32, I32),
        (Bool, F32, F32),
        (I32, I64, I64),
        (U8, I8, I16),
        (U32, I32, I64),
        (U32, I64, I64),
        (U64, I64, F64),
        (U16, U64, U64),
    ];
    for (a, b, want) in cases {
        assert_eq!(Dtype::promote(a, b), want, "{a:?} + {b:?}");
        assert_eq!(Dtype::promote(b, a), want, "{b:?} + {a:?}");
    }
}

#[test]
fn a_frame_feeds_a_single_input_as_rows_in_the_promoted_dtype() {
    let request = frame(vec![
        (
            "a",
            Arc::new(Float64Array::from(vec![1.5, 2.5])) as ArrayRef,
        ),
        ("b", Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef),
    ]);
    let spec = [input("float_input", Dtype::F32, &[None, Some(2)])];
    let (feeds, route) = feeds(&spec, &request, None).unwrap();
    assert_eq!(route, Route::Frame);
    assert_eq!(feeds[0].shape, vec![2, 2]);
    // int64 + float64 → float64, then MLflow's cast to float32.
    assert_eq!(feeds[0].values, Values::F32(vec![1.5, 3.0, 2.5, 4.0]));
}

#[test]
fn integer_frames_reach_float_inputs_only_through_float64() {
    let ints = frame(vec![
        ("a", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ("b", Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef),
    ]);
    let spec = [input("x", Dtype::F32, &[None, Some(2)])];
    let err = feeds(&spec, &ints, None).unwrap_err();
    assert!(
        err.message.contains("Actual: (tensor(int64))"),
        "{}",
        err.message
    );
    // A null turns an integer column into float64 with NaN, which is then cast.
    let with_null = frame(vec![
        (
            "a",
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        ),
        ("b", Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef),
    ]);
    let (f, _) = feeds(&spec, &with_null, None).unwrap();
    let Values::F32(v) = &f[0].values else {
        panic!("{:?}", f[0].values)
    };
    assert_eq!(v[0], 1.0);
    assert!(v[2].is_nan());
    assert_eq!(v[3], 4.0);
}

#[test]
fn a_frame_feeds_several_inputs_one_column_each_by_name() {
    let request = frame(vec![
        (
            "v",
            Arc::new(Float32Array::from(vec![1.0, 2.0])) as ArrayRef,
        ),
        (
            "extra",
            Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef,
        ),
        ("u", Arc::new(Int32Array::from(vec![5, 6])) as ArrayRef),
    ]);
    let spec = [
        input("u", Dtype::I32, &[None]),
        input("v", Dtype::F32, &[None]),
    ];
    let (f, route) = feeds(&spec, &request, None).unwrap();
    assert_eq!(route, Route::Frame);
    assert_eq!(f[0].values, Values::I32(vec![5, 6]));
    assert_eq!(f[1].values, Values::F32(vec![1.0, 2.0]));
    assert_eq!(f[0].shape, vec![2]);

    let two_d = [
        input("u", Dtype::I32, &[None, Some(1)]),
        input("v", Dtype::F32, &[None]),
    ];
    let err = feeds(&two_d, &request, None).unwrap_err();
    assert!(
        err.message.contains("Invalid rank for input: u"),
        "{}",
        err.message
    );

    let missing = [
        input("w", Dtype::F32, &[None]),
        input("v", Dtype::F32, &[None]),
    ];
    let err = feeds(&missing, &request, None).unwrap_err();
    assert!(err.message.contains("no column 'w'"), "{}", err.message);
}

#[test]
fn text_and_shape_mismatches_are_refused() {
    let text = frame(vec![(
        "a",
        Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
    )]);
    let spec = [input("x", Dtype::F32, &[None, Some(1)])];
    assert!(feeds(&spec, &text, None).is_err());
    let bools = frame(vec![(
        "a",
        Arc::new(BooleanArray::from(vec![Some(true), None])) as ArrayRef,
    )]);
    assert!(
        feeds(&spec, &bools, None)
            .unwrap_err()
            .message
            .contains("missing values")
    );
    let narrow = frame(vec![(
        "a",
        Arc::new(Float32Array::from(vec![1.0])) as ArrayRef,
    )]);
    let wide = [input("x", Dtype::F32, &[None, Some(11)])];
    let err = feeds(&wide, &narrow, None).unwrap_err();
    assert!(
        err.message.contains("index: 1 Got: 1 Expected: 11"),
        "{}",
        err.message
    );
}

#[test]
fn tensors_are_the_feed_dictionary() {
    let tensor = |name: &str, shape: Vec<usize>, data: ArrayRef| Tensor {
        name: name.into(),
        shape,
        data,
    };
    let spec = [
        input("a", Dtype::F32, &[None, Some(2)]),
        input("b", Dtype::I64, &[None]),
    ];
    let request = ModelInput::Tensors(vec![
        tensor("b", vec![2], Arc::new(Int64Array::from(vec![7, 8]))),
        tensor(
            "a",
            vec![2, 2],
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
        ),
    ]);
    let (f, route) = feeds(&spec, &request, None).unwrap();
    assert_eq!(route, Route::Dict);
    assert_eq!(f[0].values, Values::F32(vec![1.0, 2.0, 3.0, 4.0]));
    assert_eq!(f[0].shape, vec![2, 2]);
    assert_eq!(f[1].values, Values::I64(vec![7, 8]));

    let unnamed = ModelInput::Tensors(vec![tensor(
        "",
        vec![1, 2],
        Arc::new(Float32Array::from(vec![1.0, 2.0])),
    )]);
    let err = feeds(&spec, &unnamed, None).unwrap_err();
    assert!(err.message.contains("single input"), "{}", err.message);
    let (f, _) = feeds(&spec[..1], &unnamed, None).unwrap();
    assert_eq!(f[0].shape, vec![1, 2]);

    let extra = ModelInput::Tensors(vec![tensor(
        "c",
        vec![1],
        Arc::new(Int64Array::from(vec![1])),
    )]);
    let err = feeds(&spec, &extra, None).unwrap_err();
    assert!(
        err.message.contains("Invalid input name: c"),
        "{}",
        err.message
    );
    let partial = ModelInput::Tensors(vec![tensor(
        "b",
        vec![1],
        Arc::new(Int64Array::from(vec![1])),
    )]);
    let err = feeds(&spec, &partial, None).unwrap_err();
    assert!(err.message.contains("'a'"), "{}", err.message);
}

#[test]
fn a_tensor_signature_turns_frames_into_arrays() {
    let request = frame(vec![
        (
            "a",
            Arc::new(Float32Array::from(vec![1.0, 2.0])) as ArrayRef,
        ),
        (
            "b",
            Arc::new(Float32Array::from(vec![3.0, 4.0])) as ArrayRef,
        ),
    ]);
    let spec = [input("float_input", Dtype::F32, &[None, Some(2)])];
    let unnamed = [TensorSpec {
        name: None,
        dtype: "float32".into(),
        shape: vec![-1, 2],
    }];
    let (f, route) = feeds(&spec, &request, Some(&unnamed)).unwrap();
    assert_eq!(route, Route::Dict);
    assert_eq!(f[0].values, Values::F32(vec![1.0, 3.0, 2.0, 4.0]));
    let wrong = [TensorSpec {
        shape: vec![-1, 3],
        ..unnamed[0].clone()
    }];
    assert!(feeds(&spec, &request, Some(&wrong)).is_err());
}

#[test]
fn signature_shapes_resolve_their_free_dimension() {
    assert_eq!(resolve_shape(&[-1, 2], 6), Some(vec![3, 2]));
    assert_eq!(resolve_shape(&[-1], 4), Some(vec![4]));
    assert_eq!(resolve_shape(&[-1, 4], 6), None);
    assert_eq!(resolve_shape(&[2, 3], 6), Some(vec![2, 3]));
}
