use arrow_array::RecordBatch;

use super::*;
use mlox_runtime_native::forest::{Compare, Missing, NodeSpec, Split};
use mlox_runtime_native::input::Naming;

fn nums(cols: &[&[f64]]) -> Table<'static> {
    Table {
        rows: cols[0].len(),
        cols: cols.iter().map(|c| Col::Num(c.to_vec())).collect(),
    }
}

fn values(table: &Table<'_>) -> Vec<Vec<f64>> {
    table
        .cols
        .iter()
        .map(|c| match c {
            Col::Num(v) => v.clone(),
            Col::Text(_) => panic!("text"),
        })
        .collect()
}

fn text(items: &[&str]) -> Categories {
    Categories::Text {
        index: items
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i))
            .collect(),
        missing: None,
        len: items.len(),
    }
}

#[test]
fn scalers_subtract_then_divide_and_clip() {
    let scale = Step::Scale {
        offset: Some(vec![1.0, 2.0]),
        divide: Some(vec![2.0, 4.0]),
    };
    let out = scale
        .apply(nums(&[&[3.0, f64::NAN], &[2.0, 10.0]]))
        .unwrap();
    let v = values(&out);
    assert_eq!(v[0][0], 1.0);
    assert!(v[0][1].is_nan(), "NaN passes through a scaler");
    assert_eq!(v[1], vec![0.0, 2.0]);

    let minmax = Step::MinMax {
        scale: vec![0.5],
        min: vec![-0.5],
        clip: Some((0.0, 1.0)),
    };
    let out = minmax.apply(nums(&[&[0.0, 2.0, 9.0]])).unwrap();
    assert_eq!(values(&out), vec![vec![0.0, 0.5, 1.0]]);

    let err = scale.apply(nums(&[&[f64::INFINITY], &[0.0]])).unwrap_err();
    assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
}

#[test]
fn the_imputer_fills_and_drops_empty_columns() {
    let impute = Step::Impute {
        fill: vec![7.0, f64::NAN, 1.5],
        keep: vec![0, 2],
    };
    assert_eq!(impute.width_out(3), 2);
    let out = impute
        .apply(nums(&[
            &[f64::NAN, 1.0],
            &[f64::NAN, f64::NAN],
            &[2.0, f64::NAN],
        ]))
        .unwrap();
    assert_eq!(values(&out), vec![vec![7.0, 1.0], vec![2.0, 1.5]]);
}

#[test]
fn one_hot_ignores_or_refuses_unknown_categories() {
    let strings = StringArray::from(vec![Some("b"), Some("zz"), None]);
    let table = || Table {
        rows: 3,
        cols: vec![
            Col::Text(Text::Utf8(&strings)),
            Col::Num(vec![2.0, 5.0, 2.0]),
        ],
    };
    let step = |error_unknown| Step::OneHot {
        cats: vec![text(&["a", "b"]), Categories::Num(vec![2.0, 5.0])],
        error_unknown,
    };
    assert_eq!(step(false).width_out(2), 4);
    let out = step(false).apply(table()).unwrap();
    assert_eq!(
        values(&out),
        vec![
            vec![0.0, 0.0, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![1.0, 0.0, 1.0],
            vec![0.0, 1.0, 0.0],
        ]
    );
    let err = step(true).apply(table()).unwrap_err();
    assert!(
        err.message.contains("unknown categories"),
        "{}",
        err.message
    );
}

#[test]
fn ordinal_encoding_with_unknown_and_missing_values() {
    let strings = StringArray::from(vec![Some("b"), Some("zz"), None]);
    let mut cats = text(&["a", "b"]);
    if let Categories::Text { missing, len, .. } = &mut cats {
        *missing = Some(2);
        *len = 3;
    }
    let step = Step::Ordinal {
        cats: vec![cats],
        unknown: Some(-1.0),
        missing: f64::NAN,
    };
    let out = step
        .apply(Table {
            rows: 3,
            cols: vec![Col::Text(Text::Utf8(&strings))],
        })
        .unwrap();
    let v = &values(&out)[0];
    assert_eq!(v[..2], [1.0, -1.0]);
    assert!(v[2].is_nan());
}

#[test]
fn column_transformers_select_and_stack() {
    let step = Step::Columns {
        branches: vec![
            Branch {
                inputs: vec![2],
                steps: vec![],
            },
            Branch {
                inputs: vec![0, 2],
                steps: vec![Step::Scale {
                    offset: None,
                    divide: Some(vec![2.0, 10.0]),
                }],
            },
        ],
    };
    let out = step.apply(nums(&[&[4.0], &[99.0], &[20.0]])).unwrap();
    assert_eq!(values(&out), vec![vec![20.0], vec![2.0], vec![2.0]]);
}

fn stump(threshold: f64, left: f64, right: f64) -> Vec<NodeSpec<f64>> {
    vec![
        NodeSpec::Split(Split {
            feature: 0,
            threshold,
            left: 1,
            right: 2,
            default_left: true,
            missing: Missing::Nan,
            compare: Compare::LessEqual,
        }),
        NodeSpec::Leaf(left),
        NodeSpec::Leaf(right),
    ]
}

fn frame(x: Vec<f64>) -> ModelInput {
    ModelInput::Frame(
        RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(x)) as ArrayRef)]).unwrap(),
    )
}

fn model(estimator: Estimator) -> Model {
    Model {
        features: Features::new(1, vec!["x".into()], Naming::Required),
        steps: vec![],
        estimator,
    }
}

fn column_of<T: 'static + Clone>(out: ModelOutput) -> T {
    let ModelOutput::Frame(batch) = out else {
        panic!("not a column")
    };
    batch
        .column(0)
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
        .clone()
}

#[test]
fn trees_compare_float32_features() {
    // 0.1 as f32 is above 0.1 as f64, so a threshold of exactly 0.1 sends it right.
    let mut forest = Forest::new(1, 1);
    forest.push_tree(&stump(0.1, -1.0, 1.0), 0, None).unwrap();
    let m = model(Estimator::Trees(Trees {
        forest,
        n: 1,
        nan_ok: true,
        output: TreeOutput::Mean { divide: None },
    }));
    let out: Float64Array = column_of(m.predict(&frame(vec![0.1, 0.09, f64::NAN])).unwrap());
    assert_eq!(out.values().to_vec(), vec![1.0, -1.0, -1.0]);
    let err = m.predict(&frame(vec![1e39])).unwrap_err();
    assert!(err.message.contains("float32"), "{}", err.message);
}

#[test]
fn forests_vote_with_averaged_distributions() {
    let mut forest = Forest::new(1, 1);
    // Leaves point at rows of the distribution table.
    forest.push_tree(&stump(0.5, 0.0, 2.0), 0, None).unwrap();
    forest.push_tree(&stump(1.5, 0.0, 2.0), 0, None).unwrap();
    let m = model(Estimator::Trees(Trees {
        forest,
        n: 1,
        nan_ok: false,
        output: TreeOutput::Vote {
            table: vec![0.9, 0.1, 0.2, 0.8],
            k: 2,
            divide: Some(2.0),
            classes: Labels::Str(vec!["no".into(), "yes".into()]),
        },
    }));
    let out: StringArray = column_of(m.predict(&frame(vec![0.0, 1.0, 2.0])).unwrap());
    let got: Vec<&str> = out.iter().map(|v| v.unwrap()).collect();
    // Row 1: (0.2 + 0.9, 0.8 + 0.1) / 2: a tie broken by the first class, as argmax does.
    assert_eq!(got, vec!["no", "no", "yes"]);
    let err = m.predict(&frame(vec![f64::NAN])).unwrap_err();
    assert!(err.message.contains("NaN"), "{}", err.message);
}

#[test]
fn linear_models_shape_values_and_pick_labels() {
    let linear = |k, output| {
        model(Estimator::Linear(Linear {
            coef: (0..k).map(|c| c as f64 + 1.0).collect(),
            intercept: vec![-1.0; k],
            n: 1,
            k,
            output,
        }))
    };
    let out: Float64Array = column_of(
        linear(1, LinearOutput::Values { two_d: false })
            .predict(&frame(vec![2.0]))
            .unwrap(),
    );
    assert_eq!(out.values().to_vec(), vec![1.0]);
    let ModelOutput::Tensors(t) = linear(2, LinearOutput::Values { two_d: true })
        .predict(&frame(vec![2.0]))
        .unwrap()
    else {
        panic!("not a tensor")
    };
    assert_eq!(t[0].shape, vec![1, 2]);

    let binary: Int64Array = column_of(
        linear(1, LinearOutput::Labels(Labels::Int64(vec![3, 4])))
            .predict(&frame(vec![1.0, 0.5]))
            .unwrap(),
    );
    assert_eq!(
        binary.values().to_vec(),
        vec![3, 3],
        "a score of 0 is not > 0"
    );
    let multi: Int64Array = column_of(
        linear(3, LinearOutput::Labels(Labels::Int64(vec![7, 8, 9])))
            .predict(&frame(vec![1.0, -1.0]))
            .unwrap(),
    );
    assert_eq!(multi.values().to_vec(), vec![9, 7]);
}
