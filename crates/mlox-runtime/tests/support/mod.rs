//! What the test binaries of every runtime backend share (each includes this file with
//! `#[path]`, so fixtures and temporary directories stay the including crate's own): finding a Python interpreter that has the packages a
//! test needs, and building the MLflow models a fixture script writes, once per script and
//! interpreter, shared by every test process (nextest runs each test in its own).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// `$MLOX_PYTHON`, else `$MLOX_VENV/bin/python`, when it can import `modules` (comma-separated,
/// as in a Python `import` line). Without one the tests of `suite` print a note and pass,
/// unless `MLOX_REQUIRE_PYTHON=1` makes that a failure.
pub fn python(modules: &str, suite: &str) -> Option<PathBuf> {
    python_from("MLOX_PYTHON", "MLOX_REQUIRE_PYTHON", modules, suite)
}

/// Like [`python`], with the interpreter named by `$var` (else `$MLOX_VENV/bin/python`) and
/// `$require=1` making its absence a failure: suites whose packages the project's venv does
/// not carry point at an interpreter of their own.
pub fn python_from(var: &str, require: &str, modules: &str, suite: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("MLOX_VENV")
                .filter(|v| !v.is_empty())
                .map(|v| PathBuf::from(v).join("bin").join("python"))
        });
    let usable = candidate.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if usable {
        return candidate;
    }
    let what = match &candidate {
        Some(p) => format!("{} cannot import {modules}", p.display()),
        None => format!("neither {var} nor MLOX_VENV is set"),
    };
    if std::env::var(require).is_ok_and(|v| v == "1") {
        panic!("{require}=1 but {what}");
    }
    eprintln!("note: {what}: skipping the {suite} tests");
    None
}

/// Runs `fixtures/<script> OUT_DIR` once for this script's text and interpreter and returns
/// OUT_DIR; concurrent test processes wait on a lock file, and a half-built directory is
/// never used.
pub fn models(python: &Path, script: &str, prefix: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(script);
    let source = std::fs::read_to_string(&path).unwrap();
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        python.hash(&mut h);
        h.finish()
    };
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!("{prefix}-{key:016x}"));
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(format!("{prefix}-{key:016x}.lock"))).unwrap();
    lock.lock().unwrap();
    if !dir.join("expected.json").is_file() {
        let staging = root.join(format!("{prefix}-{key:016x}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).unwrap();
        let output = std::process::Command::new(python)
            .arg(&path)
            .arg(&staging)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{script} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir).unwrap();
    }
    dir
}

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow_schema::DataType;
use mlox_runtime::ModelOutput;
use serde_json::Value;

/// How close a float must be to MLflow's to count as the same answer.
#[derive(Clone, Copy, Debug)]
pub enum Tolerance {
    /// Bit for bit.
    Exact,
    /// Within this fraction of MLflow's value (plus 1e-12 for values near zero).
    Relative(f64),
}

/// The fixture models whose names start with one of `prefixes`; at least one must.
pub fn names(expected: &Value, prefixes: &[&str]) -> Vec<String> {
    let names: Vec<String> = expected["models"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .cloned()
        .collect();
    assert!(
        !names.is_empty(),
        "no fixture model starts with {prefixes:?}"
    );
    names
}

/// Asserts `output` is what MLflow answered (`expected` holds its `ndim`, `shape`, `dtype` and
/// `values`), shaped as the Python runtime shapes it: a 1-D answer is a one-column frame named
/// `predictions`, a 2-D one a tensor of that name. Returns (bit-identical values, values).
pub fn compare(
    what: &str,
    output: ModelOutput,
    expected: &Value,
    tolerance: Tolerance,
) -> (usize, usize) {
    let shape: Vec<usize> = expected["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = match (expected["ndim"].as_u64().unwrap(), output) {
        (1, ModelOutput::Frame(batch)) => {
            assert_eq!(batch.num_columns(), 1, "{what}");
            assert_eq!(batch.schema().field(0).name(), "predictions", "{what}");
            assert_eq!(batch.num_rows(), shape[0], "{what}");
            batch.column(0).clone()
        }
        (2, ModelOutput::Tensors(tensors)) => {
            assert_eq!(tensors.len(), 1, "{what}");
            assert_eq!(tensors[0].name, "predictions", "{what}");
            assert_eq!(tensors[0].shape, shape, "{what}");
            tensors[0].data.clone()
        }
        (n, other) => panic!("{what}: MLflow answered {n}-D, mlox {other:?}"),
    };
    let want = expected["values"].as_array().unwrap();
    let dtype = expected["dtype"].as_str().unwrap();
    let expected_type = match dtype {
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "int64" => DataType::Int64,
        "int32" => DataType::Int32,
        "bool" => DataType::Boolean,
        "str" => DataType::Utf8,
        other => panic!("{what}: unexpected dtype {other}"),
    };
    assert_eq!(data.data_type(), &expected_type, "{what}");
    assert_eq!(data.len(), want.len(), "{what}");
    assert_eq!(data.null_count(), 0, "{what}");
    let floats: Option<Vec<f64>> = match dtype {
        "float32" => Some(
            downcast::<Float32Array>(&data)
                .values()
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
        ),
        "float64" => Some(downcast::<Float64Array>(&data).values().to_vec()),
        _ => None,
    };
    if let Some(got) = floats {
        let mut exact = 0;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let w = w.as_f64().unwrap();
            let close = match tolerance {
                Tolerance::Exact => g.to_bits() == w.to_bits(),
                Tolerance::Relative(r) => (g - w).abs() <= r * w.abs() + 1e-12,
            };
            assert!(close, "{what}: value {i} is {g}, MLflow says {w}");
            exact += usize::from(g.to_bits() == w.to_bits());
        }
        return (exact, want.len());
    }
    let got: Vec<Value> = match dtype {
        "int64" => downcast::<Int64Array>(&data)
            .values()
            .iter()
            .map(|&v| Value::from(v))
            .collect(),
        "int32" => downcast::<Int32Array>(&data)
            .values()
            .iter()
            .map(|&v| Value::from(v))
            .collect(),
        "bool" => downcast::<BooleanArray>(&data)
            .iter()
            .map(|v| Value::from(v.unwrap()))
            .collect(),
        _ => downcast::<StringArray>(&data)
            .iter()
            .map(|v| Value::from(v.unwrap()))
            .collect(),
    };
    assert_eq!(&got, want, "{what}");
    (want.len(), want.len())
}

pub fn downcast<T: 'static>(array: &ArrayRef) -> &T {
    array.as_any().downcast_ref::<T>().unwrap()
}

/// What a fixture script recorded MLflow answering, from its `expected.json`.
/// Every model the fixture script wrote is named by one of the prefixes some test checks, so a
/// model added to the script cannot go unchecked.
pub fn assert_every_model_covered(expected: &Value, prefixes: &[&str]) {
    for name in expected["models"].as_object().unwrap().keys() {
        assert!(
            prefixes.iter().any(|p| name.starts_with(p)),
            "{name} is not covered by any test"
        );
    }
}

pub fn expected(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

/// The model a native runtime loaded; a fallback fails the test with its reason.
pub fn native(name: &str, load: mlox_runtime::Load) -> mlox_runtime::LoadedModel {
    match load {
        mlox_runtime::Load::Native { model, description } => {
            eprintln!("{name}: {description}");
            model
        }
        mlox_runtime::Load::Fallback { reason } => panic!("{name} fell back: {reason}"),
    }
}

/// Each answered value rendered on its own, so answers of any type compare row by row.
pub fn flat_values(output: ModelOutput) -> Vec<String> {
    let array = match output {
        ModelOutput::Frame(batch) => batch.column(0).clone(),
        ModelOutput::Tensors(tensors) => tensors[0].data.clone(),
    };
    (0..array.len())
        .map(|i| format!("{:?}", array.slice(i, 1)))
        .collect()
}
