use serde_json::{Value, json};

use super::*;
use mlox_runtime_native::skops::testing::{json_node, npy_file, zip};

fn dict(entries: Value) -> Value {
    json!({"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
        "content": entries})
}

fn object(module: &str, class: &str, attrs: Value) -> Value {
    json!({"__class__": class, "__module__": module, "__loader__": "ObjectNode",
        "content": dict(attrs)})
}

fn array(file: &str) -> Value {
    json!({"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode",
        "type": "numpy", "file": file})
}

fn list(items: Vec<Value>) -> Value {
    json!({"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
        "content": items})
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn archive(schema: Value, arrays: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let schema = serde_json::to_vec(&schema).unwrap();
    let mut files: Vec<(&str, &[u8])> = arrays.iter().map(|(n, d)| (*n, &d[..])).collect();
    files.push(("schema.json", &schema));
    zip(&files)
}

/// A depth-1 regression tree on feature 0: `x <= threshold ? 1 : 2`, children at `right`.
fn tree_files(threshold: f64, right: i64) -> (Value, Vec<(&'static str, Vec<u8>)>) {
    let descr = "[('left_child', '<i8'), ('right_child', '<i8'), ('feature', '<i8'), \
                 ('threshold', '<f8'), ('missing_go_to_left', '|u1'), ('', '|V7')]";
    let mut nodes = Vec::new();
    for (l, r, f, t, m) in [
        (1i64, right, 0i64, threshold, 1u8),
        (-1, -1, -2, -2.0, 0),
        (-1, -1, -2, -2.0, 0),
    ] {
        nodes.extend(l.to_le_bytes());
        nodes.extend(r.to_le_bytes());
        nodes.extend(f.to_le_bytes());
        nodes.extend(t.to_le_bytes());
        nodes.push(m);
        nodes.extend([0u8; 7]);
    }
    let tree = json!({"__class__": "Tree", "__module__": "sklearn.tree._tree",
        "__loader__": "TreeNode", "__reduce__": {}, "content": dict(json!({
            "nodes": array("nodes.npy"), "values": array("values.npy")}))});
    let estimator = object(
        "sklearn.tree._classes",
        "DecisionTreeRegressor",
        json!({"n_features_in_": json_node("1"), "n_outputs_": json_node("1"), "tree_": tree}),
    );
    let files = vec![
        ("nodes.npy", npy_file(descr, false, "(3,)", &nodes)),
        (
            "values.npy",
            npy_file("'<f8'", false, "(3, 1, 1)", &f64s(&[0.0, 1.0, 2.0])),
        ),
    ];
    (estimator, files)
}

#[test]
fn a_scaled_logistic_regression_pipeline() {
    let names = json!({"__class__": "ndarray", "__module__": "numpy",
        "__loader__": "NdArrayNode", "type": "json",
        "content": [json_node("\"a\""), json_node("\"b\"")]});
    let scaler = object(
        "sklearn.preprocessing._data",
        "StandardScaler",
        json!({"with_mean": json_node("true"), "with_std": json_node("true"),
            "n_features_in_": json_node("2"), "feature_names_in_": names,
            "mean_": array("mean.npy"), "scale_": array("scale.npy")}),
    );
    let logistic = object(
        "sklearn.linear_model._logistic",
        "LogisticRegression",
        json!({"n_features_in_": json_node("2"), "classes_": array("classes.npy"),
            "coef_": array("coef.npy"), "intercept_": array("intercept.npy")}),
    );
    let step = |name: &str, est: Value| {
        json!({"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
            "content": [json_node(&format!("\"{name}\"")), est]})
    };
    let pipeline = object(
        "sklearn.pipeline",
        "Pipeline",
        json!({"steps": list(vec![step("scale", scaler), step("model", logistic)]),
            "transform_input": json_node("null")}),
    );
    let bytes = archive(
        pipeline,
        &[
            (
                "mean.npy",
                npy_file("'<f8'", false, "(2,)", &f64s(&[1.0, 2.0])),
            ),
            (
                "scale.npy",
                npy_file("'<f8'", false, "(2,)", &f64s(&[2.0, 4.0])),
            ),
            (
                "classes.npy",
                npy_file(
                    "'<i8'",
                    false,
                    "(2,)",
                    &[0i64, 1]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "coef.npy",
                npy_file("'<f8'", true, "(1, 2)", &f64s(&[1.0, -1.0])),
            ),
            (
                "intercept.npy",
                npy_file("'<f8'", false, "(1,)", &f64s(&[0.25])),
            ),
        ],
    );
    let (model, description) = read(&bytes).unwrap();
    assert!(
        description.contains("StandardScaler, LogisticRegression"),
        "{description}"
    );
    assert_eq!(model.steps.len(), 1);
    let Estimator::Linear(l) = &model.estimator else {
        panic!("not linear")
    };
    assert_eq!((l.k, l.n), (1, 2));
    assert!(matches!(&l.output, LinearOutput::Labels(Labels::Int64(c)) if c == &[0, 1]));
}

#[test]
fn trees_are_read_and_checked() {
    let (estimator, files) = tree_files(0.5, 2);
    let (model, _) = read(&archive(estimator, &files)).unwrap();
    let Estimator::Trees(t) = &model.estimator else {
        panic!("not trees")
    };
    assert_eq!(t.forest.n_trees(), 1);
    assert!(t.nan_ok);

    // A child index beyond the node array is a corrupt file, never a crash later.
    let (estimator, files) = tree_files(0.5, 9);
    assert!(matches!(
        read(&archive(estimator, &files)),
        Err(Refusal::Corrupt(_))
    ));
}

#[test]
fn unknown_estimators_and_settings_are_unsupported() {
    let svc = object(
        "sklearn.svm._classes",
        "SVC",
        json!({"n_features_in_": json_node("2")}),
    );
    let Err(Refusal::Unsupported(reason)) = read(&archive(svc, &[])) else {
        panic!("read an SVC")
    };
    assert!(reason.contains("SVC"), "{reason}");

    let imputer = object(
        "sklearn.impute._base",
        "SimpleImputer",
        json!({"n_features_in_": json_node("1"), "missing_values": json_node("NaN"),
            "add_indicator": json_node("true")}),
    );
    assert!(matches!(
        step(Node::test(&imputer), 1),
        Err(Refusal::Unsupported(_))
    ));
}

#[test]
fn prior_margins_follow_the_loss_links() {
    let binary = prior_margins(&[0.25, 0.75], 1, Some("log_loss")).unwrap();
    assert!((binary[0] - 3f64.ln()).abs() < 1e-15);
    let half = prior_margins(&[0.25, 0.75], 1, Some("exponential")).unwrap();
    assert!((half[0] - 0.5 * 3f64.ln()).abs() < 1e-15);
    let multi = prior_margins(&[0.2, 0.3, 0.5], 3, Some("log_loss")).unwrap();
    assert!(
        multi.iter().sum::<f64>().abs() < 1e-12,
        "centred on the geometric mean"
    );
    assert!(prior_margins(&[0.5, 0.5], 1, Some("huber")).is_err());
}
