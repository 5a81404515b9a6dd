//! Rules of MLflow 3's trace assessments that hold whichever store keeps them.

use serde_json::{Value, json};

/// An expectation whose value is an object or a list travels as JSON text
/// (`serialized_value`, format `JSON_FORMAT`), the way MLflow's client and server write it;
/// primitive values stay in `value`.
pub fn serialize_expectation_value(assessment: &mut Value) {
    let Some(expectation) = assessment
        .get_mut("expectation")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !matches!(
        expectation.get("value"),
        Some(Value::Object(_) | Value::Array(_))
    ) {
        return;
    }
    if let Some(value) = expectation.remove("value") {
        expectation.insert(
            "serialized_value".into(),
            json!({
                "serialization_format": "JSON_FORMAT",
                "value": crate::spans::python_json_dumps(&value),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_expectations_are_serialized_and_primitives_kept() {
        let mut structured =
            json!({"expectation": {"value": {"threshold_ms": 1000, "passed": true}}});
        serialize_expectation_value(&mut structured);
        assert_eq!(
            structured,
            json!({"expectation": {"serialized_value": {
                "serialization_format": "JSON_FORMAT",
                "value": "{\"passed\": true, \"threshold_ms\": 1000}",
            }}})
        );
        for primitive in [json!("text"), json!(3), json!(true)] {
            let mut assessment = json!({"expectation": {"value": primitive.clone()}});
            serialize_expectation_value(&mut assessment);
            assert_eq!(assessment, json!({"expectation": {"value": primitive}}));
        }
        let mut feedback = json!({"feedback": {"value": {"a": 1}}});
        serialize_expectation_value(&mut feedback);
        assert_eq!(feedback, json!({"feedback": {"value": {"a": 1}}}));
    }
}
