//! LightGBM scikit-learn estimators as MLflow saves them by default: a skops archive
//! (`model.skops`), read without executing anything.
//!
//! This module reads exactly what prediction needs from the estimator's attribute tree: the
//! booster's model string, its `best_iteration`, the objective, and the class labels. Reading
//! the archive itself is [`mlox_runtime_native::skops`]'s.

use mlox_runtime_native::Refusal;
use mlox_runtime_native::skops::{Labels, Scalar, Skops, corrupt, unsupported};

/// What a LightGBM estimator contributes beyond its booster.
#[derive(Debug)]
pub(crate) struct Estimator {
    /// `LGBMClassifier` or `LGBMRegressor`.
    pub class: String,
    /// The booster in LightGBM's text format.
    pub model: String,
    /// The booster's `best_iteration` (0 or less: all rounds).
    pub best_iteration: i64,
    /// The class labels, for a classifier.
    pub classes: Option<Labels>,
}

/// Reads a LightGBM estimator from a skops archive.
pub(crate) fn read(bytes: &[u8]) -> Result<Estimator, Refusal> {
    let skops = Skops::open(bytes)?;
    let root = skops.root();
    let type_name = root.type_name();
    let class = root.class();
    if !matches!(
        type_name.as_str(),
        "lightgbm.sklearn.LGBMClassifier" | "lightgbm.sklearn.LGBMRegressor"
    ) {
        return Err(unsupported(format!("a skops'd {type_name}")));
    }
    let attrs = root.attrs()?;
    let booster = attrs.req("_Booster")?.attrs()?;
    let model = match booster.req("_handle")?.scalar()? {
        Scalar::Str(s) => s,
        _ => return Err(corrupt("_Booster._handle is not the model string")),
    };
    let best_iteration = match booster.req("best_iteration")?.scalar()? {
        Scalar::Int(i) => i,
        _ => -1,
    };
    if let Some(objective) = attrs.get("_objective")
        && !matches!(objective.scalar()?, Scalar::Str(_))
    {
        return Err(unsupported("estimators with a custom objective function"));
    }
    let classes = if class == "LGBMClassifier" {
        Some(attrs.req("_classes")?.labels()?)
    } else {
        None
    };
    Ok(Estimator {
        class: class.to_owned(),
        model,
        best_iteration,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use mlox_runtime_native::skops::testing::{json_node, npy_file, zip};

    fn schema(class: &str, classes: Value) -> Vec<u8> {
        let model = serde_json::to_string("tree\nversion=v4\n").unwrap();
        serde_json::to_vec(&serde_json::json!({
            "__class__": class, "__module__": "lightgbm.sklearn", "__loader__": "ObjectNode",
            "content": {"__class__": "dict", "__loader__": "DictNode", "content": {
                "_Booster": {"__class__": "Booster", "__module__": "lightgbm.basic",
                    "__loader__": "ObjectNode", "content": {"__loader__": "DictNode", "content": {
                        "_handle": json_node(&model),
                        "best_iteration": json_node("7"),
                    }}},
                "_objective": json_node("\"binary\""),
                "_classes": classes,
            }},
        }))
        .unwrap()
    }

    #[test]
    fn a_classifier_with_numeric_labels() {
        let labels: Vec<u8> = [3i64, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let classes = serde_json::json!({"__class__": "ndarray", "__loader__": "NdArrayNode",
            "type": "numpy", "file": "1.npy"});
        let archive = zip(&[
            ("1.npy", &npy_file("'<i8'", false, "(2,)", &labels)),
            ("schema.json", &schema("LGBMClassifier", classes)),
        ]);
        let est = read(&archive).unwrap();
        assert_eq!(est.class, "LGBMClassifier");
        assert_eq!(est.model, "tree\nversion=v4\n");
        assert_eq!(est.best_iteration, 7);
        assert_eq!(est.classes, Some(Labels::Int64(vec![3, 5])));
    }

    #[test]
    fn string_labels_as_json_or_unicode_arrays() {
        let classes = serde_json::json!({"__class__": "ndarray", "__loader__": "NdArrayNode",
            "type": "json", "content": [json_node("\"benign\""), json_node("\"malignant\"")]});
        let archive = zip(&[("schema.json", &schema("LGBMClassifier", classes))]);
        assert_eq!(
            read(&archive).unwrap().classes,
            Some(Labels::Str(vec!["benign".into(), "malignant".into()]))
        );
        let mut utf32 = Vec::new();
        for word in ["ab", "c"] {
            let mut chars: Vec<u32> = word.chars().map(u32::from).collect();
            chars.resize(2, 0);
            utf32.extend(chars.iter().flat_map(|c| c.to_le_bytes()));
        }
        let classes = serde_json::json!({"__class__": "ndarray", "__loader__": "NdArrayNode",
            "type": "numpy", "file": "u.npy"});
        let archive = zip(&[
            ("u.npy", &npy_file("'<U2'", false, "(2,)", &utf32)),
            ("schema.json", &schema("LGBMClassifier", classes)),
        ]);
        assert_eq!(
            read(&archive).unwrap().classes,
            Some(Labels::Str(vec!["ab".into(), "c".into()]))
        );
    }

    #[test]
    fn damaged_and_foreign_archives() {
        let classes = serde_json::json!({"__loader__": "NdArrayNode", "type": "json",
            "content": []});
        let good = zip(&[("schema.json", &schema("LGBMClassifier", classes))]);
        let mut flipped = good.clone();
        flipped[50] ^= 0xff;
        assert!(matches!(read(&flipped), Err(Refusal::Corrupt(_))));
        assert!(matches!(read(b"not a zip"), Err(Refusal::Corrupt(_))));
        assert!(matches!(
            read(&good[..good.len() - 30]),
            Err(Refusal::Corrupt(_))
        ));
        let foreign = serde_json::to_vec(&serde_json::json!({
            "__class__": "LogisticRegression", "__module__": "sklearn.linear_model._logistic",
            "__loader__": "ObjectNode", "content": {}}))
        .unwrap();
        assert!(matches!(
            read(&zip(&[("schema.json", &foreign)])),
            Err(Refusal::Unsupported(_))
        ));
    }
}
