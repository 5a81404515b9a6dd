//! Turning a request's Arrow columns or tensors into the dense, row-major feature matrix a
//! forest reads, in the forest's own number type.
//!
//! Columns are found by the model's feature names when it has them; a model trained on bare
//! arrays takes them by position. Nulls become NaN, the one "missing" both libraries know, and
//! integers and booleans are converted straight to the target type as numpy would, so a value
//! is rounded once, the same way the library rounds it.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType};
use arrow_schema::DataType;
use mlox_core::{Error, Result};

use crate::forest::Real;
use mlox_runtime::{ModelInput, Tensor};

/// How columns are matched to the model's features when names disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Every feature name must be present (XGBoost validates names and refuses a mismatch).
    Required,
    /// Names are used when all are present, else columns are taken by position when their
    /// count matches (LightGBM reads a DataFrame by position; its stored names replace spaces
    /// with underscores, so both spellings match).
    Preferred,
}

/// The features a model reads, in the order its trees index them.
#[derive(Clone, Debug)]
pub struct Features {
    names: Vec<String>,
    index: HashMap<String, usize>,
    count: usize,
    naming: Naming,
}

impl Features {
    /// `names` may be empty (a model trained without names); otherwise it has `count` entries.
    pub fn new(count: usize, names: Vec<String>, naming: Naming) -> Self {
        let mut index = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            index.entry(name.clone()).or_insert(i);
        }
        Features {
            names,
            index,
            count,
            naming,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn lookup(&self, column: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(column) {
            return Some(i);
        }
        if self.naming == Naming::Preferred && column.contains(' ') {
            return self.index.get(&column.replace(' ', "_")).copied();
        }
        None
    }

    /// For each input column, the feature it fills (`None`: not one the model reads).
    pub fn assign(&self, columns: &[&str]) -> Result<Vec<Option<usize>>> {
        // Clients nearly always send the signature's columns in its order; checking that
        // first costs a few comparisons instead of a hash per column.
        if !self.names.is_empty()
            && columns.len() == self.count
            && columns.iter().zip(&self.names).all(|(c, n)| c == n)
        {
            return Ok((0..self.count).map(Some).collect());
        }
        if !self.names.is_empty() {
            let mut filled = vec![false; self.count];
            let assigned: Vec<Option<usize>> = columns
                .iter()
                .map(|c| {
                    let feature = self.lookup(c).filter(|&f| !filled[f]);
                    if let Some(f) = feature {
                        filled[f] = true;
                    }
                    feature
                })
                .collect();
            if filled.iter().all(|&f| f) {
                return Ok(assigned);
            }
            let by_position = self.naming == Naming::Preferred && columns.len() == self.count;
            if !by_position {
                let missing: Vec<&str> = filled
                    .iter()
                    .zip(&self.names)
                    .filter(|(f, _)| !**f)
                    .map(|(_, n)| n.as_str())
                    .take(10)
                    .collect();
                let more = filled.iter().filter(|f| !**f).count() - missing.len();
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                return Err(Error::invalid(format!(
                    "the input lacks feature columns the model needs: {}{more}",
                    missing.join(", ")
                )));
            }
        }
        if columns.len() != self.count {
            return Err(Error::invalid(format!(
                "the model takes {} features but the input has {} columns",
                self.count,
                columns.len()
            )));
        }
        Ok((0..self.count).map(Some).collect())
    }
}

/// Rows of features, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    pub rows: usize,
    pub values: Vec<T>,
}

/// The request's rows as a feature matrix.
pub fn matrix<T: Real>(input: &ModelInput, features: &Features) -> Result<Matrix<T>> {
    match input {
        ModelInput::Frame(batch) => {
            let names: Vec<&str> = batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            from_columns(features, &names, batch.columns(), batch.num_rows())
        }
        ModelInput::Tensors(tensors) => from_tensors(features, tensors),
    }
}

fn from_columns<T: Real>(
    features: &Features,
    names: &[&str],
    columns: &[ArrayRef],
    rows: usize,
) -> Result<Matrix<T>> {
    let assigned = features.assign(names)?;
    let width = features.count();
    let mut values = vec![T::ZERO; rows * width];
    for ((column, feature), name) in columns.iter().zip(&assigned).zip(names) {
        let Some(feature) = *feature else { continue };
        if column.len() != rows {
            return Err(Error::invalid(format!(
                "column '{name}' has {} values for {rows} rows",
                column.len()
            )));
        }
        fill(column.as_ref(), name, &mut values, feature, width)?;
    }
    Ok(Matrix { rows, values })
}

fn from_tensors<T: Real>(features: &Features, tensors: &[Tensor]) -> Result<Matrix<T>> {
    for t in tensors {
        let elements: usize = t.shape.iter().product();
        if elements != t.data.len() {
            return Err(Error::invalid(format!(
                "tensor '{}' has shape {:?} ({elements} elements) but holds {} values",
                t.name,
                t.shape,
                t.data.len()
            )));
        }
    }
    let width = features.count();
    match tensors {
        [t] if t.shape.len() == 2 || (t.shape.len() == 1 && t.name.is_empty()) => {
            let (rows, cols) = match t.shape[..] {
                [rows, cols] => (rows, cols),
                _ => (1, t.shape[0]),
            };
            if cols != width {
                return Err(Error::invalid(format!(
                    "the model takes {width} features but tensor '{}' has shape {:?}",
                    t.name, t.shape
                )));
            }
            let mut values = vec![T::ZERO; rows * width];
            fill(t.data.as_ref(), &t.name, &mut values, 0, 1)?;
            Ok(Matrix { rows, values })
        }
        _ => {
            // Several tensors: one column each, as MLflow makes a DataFrame of named arrays.
            let rows = tensors
                .first()
                .map_or(0, |t| t.shape.first().copied().unwrap_or(1));
            for t in tensors {
                let is_column = matches!(t.shape[..], [n] | [n, 1] if n == rows);
                if !is_column || t.name.is_empty() {
                    return Err(Error::invalid(format!(
                        "tensor '{}' of shape {:?} is not a named column of {rows} rows; send \
                         one [rows, {width}] tensor or one named tensor per feature",
                        t.name, t.shape
                    )));
                }
            }
            let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
            let columns: Vec<ArrayRef> = tensors.iter().map(|t| t.data.clone()).collect();
            from_columns(features, &names, &columns, rows)
        }
    }
}

/// Writes `array` into `out` at `offset`, `offset + stride`, … converted to `T`.
pub fn fill<T: Real>(
    array: &dyn Array,
    name: &str,
    out: &mut [T],
    offset: usize,
    stride: usize,
) -> Result<()> {
    fn primitive<P: ArrowPrimitiveType, T: Real>(
        array: &dyn Array,
        out: &mut [T],
        offset: usize,
        stride: usize,
        convert: impl Fn(P::Native) -> T,
    ) {
        let array = array.as_primitive::<P>();
        let slots = out.iter_mut().skip(offset).step_by(stride);
        if array.null_count() == 0 {
            for (slot, &v) in slots.zip(array.values().iter()) {
                *slot = convert(v);
            }
        } else {
            for (slot, v) in slots.zip(array.iter()) {
                *slot = v.map_or(T::from_f64(f64::NAN), &convert);
            }
        }
    }
    match array.data_type() {
        DataType::Float64 => primitive::<Float64Type, T>(array, out, offset, stride, T::from_f64),
        DataType::Float32 => primitive::<Float32Type, T>(array, out, offset, stride, T::from_f32),
        DataType::Float16 => {
            primitive::<Float16Type, T>(array, out, offset, stride, |v| T::from_f32(v.to_f32()))
        }
        DataType::Int64 => primitive::<Int64Type, T>(array, out, offset, stride, T::from_i64),
        DataType::Int32 => {
            primitive::<Int32Type, T>(array, out, offset, stride, |v| T::from_i64(v.into()))
        }
        DataType::Int16 => {
            primitive::<Int16Type, T>(array, out, offset, stride, |v| T::from_i64(v.into()))
        }
        DataType::Int8 => {
            primitive::<Int8Type, T>(array, out, offset, stride, |v| T::from_i64(v.into()))
        }
        DataType::UInt64 => primitive::<UInt64Type, T>(array, out, offset, stride, T::from_u64),
        DataType::UInt32 => {
            primitive::<UInt32Type, T>(array, out, offset, stride, |v| T::from_u64(v.into()))
        }
        DataType::UInt16 => {
            primitive::<UInt16Type, T>(array, out, offset, stride, |v| T::from_u64(v.into()))
        }
        DataType::UInt8 => {
            primitive::<UInt8Type, T>(array, out, offset, stride, |v| T::from_u64(v.into()))
        }
        DataType::Boolean => {
            let array = array.as_boolean();
            for (slot, v) in out
                .iter_mut()
                .skip(offset)
                .step_by(stride)
                .zip(array.iter())
            {
                *slot = match v {
                    Some(true) => T::from_f64(1.0),
                    Some(false) => T::ZERO,
                    None => T::from_f64(f64::NAN),
                };
            }
        }
        DataType::Null => {
            for slot in out
                .iter_mut()
                .skip(offset)
                .step_by(stride)
                .take(array.len())
            {
                *slot = T::from_f64(f64::NAN);
            }
        }
        other => {
            return Err(Error::invalid(format!(
                "column '{name}' holds {other} values; the model takes numbers"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        BooleanArray, Float32Array, Float64Array, Int64Array, NullArray, RecordBatch, StringArray,
        UInt8Array,
    };

    use super::*;

    fn frame(columns: Vec<(&str, ArrayRef)>) -> ModelInput {
        ModelInput::Frame(RecordBatch::try_from_iter(columns).unwrap())
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_are_matched_by_name_whatever_their_order() {
        let features = Features::new(2, names(&["a", "b"]), Naming::Required);
        let input = frame(vec![
            (
                "extra",
                Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(Int64Array::from(vec![Some(3), None])) as ArrayRef,
            ),
            (
                "a",
                Arc::new(Float64Array::from(vec![1.5, 2.5])) as ArrayRef,
            ),
        ]);
        let m = matrix::<f64>(&input, &features).unwrap();
        assert_eq!(m.rows, 2);
        assert_eq!(m.values[..3], [1.5, 3.0, 2.5]);
        assert!(m.values[3].is_nan(), "a null is missing");
    }

    #[test]
    fn a_missing_named_feature_is_bad_input() {
        let features = Features::new(2, names(&["a", "b"]), Naming::Required);
        let input = frame(vec![
            ("a", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ("c", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
        ]);
        let err = matrix::<f32>(&input, &features).unwrap_err();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
        assert!(err.message.contains(": b"), "{}", err.message);
    }

    #[test]
    fn lightgbm_names_fall_back_to_positions_and_accept_spaces() {
        let features = Features::new(2, names(&["mean_radius", "Column_1"]), Naming::Preferred);
        let spaced = frame(vec![
            (
                "Column_1",
                Arc::new(Float64Array::from(vec![2.0])) as ArrayRef,
            ),
            (
                "mean radius",
                Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
            ),
        ]);
        assert_eq!(
            matrix::<f64>(&spaced, &features).unwrap().values,
            [1.0, 2.0]
        );
        let positional = frame(vec![
            ("x", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ("y", Arc::new(Float64Array::from(vec![2.0])) as ArrayRef),
        ]);
        assert_eq!(
            matrix::<f64>(&positional, &features).unwrap().values,
            [1.0, 2.0]
        );
        let short = frame(vec![(
            "x",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        )]);
        assert!(matrix::<f64>(&short, &features).is_err());
    }

    #[test]
    fn unnamed_models_read_columns_by_position() {
        let features = Features::new(2, Vec::new(), Naming::Required);
        let input = frame(vec![
            ("p", Arc::new(UInt8Array::from(vec![7])) as ArrayRef),
            ("q", Arc::new(BooleanArray::from(vec![true])) as ArrayRef),
        ]);
        assert_eq!(matrix::<f32>(&input, &features).unwrap().values, [7.0, 1.0]);
        let wide = frame(vec![
            ("p", Arc::new(UInt8Array::from(vec![7])) as ArrayRef),
            ("q", Arc::new(UInt8Array::from(vec![7])) as ArrayRef),
            ("r", Arc::new(UInt8Array::from(vec![7])) as ArrayRef),
        ]);
        assert!(matrix::<f32>(&wide, &features).is_err());
    }

    #[test]
    fn values_are_rounded_once_into_the_forest_type() {
        let features = Features::new(3, Vec::new(), Naming::Required);
        // 2^24 + 1 is not an f32; converting the integer directly rounds it like numpy does.
        let input = frame(vec![
            ("a", Arc::new(Float64Array::from(vec![0.1])) as ArrayRef),
            (
                "b",
                Arc::new(Int64Array::from(vec![16_777_217])) as ArrayRef,
            ),
            ("c", Arc::new(NullArray::new(1)) as ArrayRef),
        ]);
        let m = matrix::<f32>(&input, &features).unwrap();
        assert_eq!(m.values[0], 0.1f64 as f32);
        assert_eq!(m.values[1], 16_777_216.0);
        assert!(m.values[2].is_nan());
    }

    #[test]
    fn strings_are_refused_with_the_column_name() {
        let features = Features::new(1, names(&["s"]), Naming::Required);
        let input = frame(vec![(
            "s",
            Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
        )]);
        let err = matrix::<f32>(&input, &features).unwrap_err();
        assert!(err.message.contains("'s'"), "{}", err.message);
    }

    #[test]
    fn tensors_are_a_matrix_or_named_columns() {
        let features = Features::new(2, names(&["a", "b"]), Naming::Required);
        let matrix_input = ModelInput::Tensors(vec![Tensor {
            name: "input-0".into(),
            shape: vec![2, 2],
            data: Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0, 4.0])),
        }]);
        let m = matrix::<f32>(&matrix_input, &features).unwrap();
        assert_eq!((m.rows, m.values), (2, vec![1.0, 2.0, 3.0, 4.0]));

        let one_row = ModelInput::Tensors(vec![Tensor {
            name: String::new(),
            shape: vec![2],
            data: Arc::new(Float64Array::from(vec![5.0, 6.0])),
        }]);
        assert_eq!(
            matrix::<f32>(&one_row, &features).unwrap().values,
            [5.0, 6.0]
        );

        let columns = ModelInput::Tensors(vec![
            Tensor {
                name: "b".into(),
                shape: vec![2, 1],
                data: Arc::new(Float64Array::from(vec![2.0, 4.0])),
            },
            Tensor {
                name: "a".into(),
                shape: vec![2],
                data: Arc::new(Float64Array::from(vec![1.0, 3.0])),
            },
        ]);
        assert_eq!(
            matrix::<f32>(&columns, &features).unwrap().values,
            [1.0, 2.0, 3.0, 4.0]
        );

        let wrong_width = ModelInput::Tensors(vec![Tensor {
            name: String::new(),
            shape: vec![1, 3],
            data: Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
        }]);
        assert!(matrix::<f32>(&wrong_width, &features).is_err());
        let bad_shape = ModelInput::Tensors(vec![Tensor {
            name: String::new(),
            shape: vec![2, 2],
            data: Arc::new(Float64Array::from(vec![1.0])),
        }]);
        assert!(matrix::<f32>(&bad_shape, &features).is_err());
    }
}
