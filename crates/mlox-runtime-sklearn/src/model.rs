//! A scikit-learn model compiled for evaluation: the preprocessing steps a pipeline applies
//! ([`Step`]), the estimator at its end ([`Estimator`]), and how a request's columns flow
//! through them ([`Table`]).
//!
//! Data moves column by column, as pandas hands it to scikit-learn: numbers as `f64` (the
//! dtype every supported transformer computes in), strings borrowed from the request's Arrow
//! arrays until an encoder turns them into numbers. Each step follows its transformer's
//! `transform` operation for operation, in the same order, so the rounding is scikit-learn's;
//! trees compare 32-bit floats, as scikit-learn casts their input to `float32`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, LargeStringArray,
    StringArray, StringViewArray,
};
use arrow_schema::DataType;
use mlox_core::{Error, Result};

use mlox_runtime::{ModelInput, ModelOutput};
use mlox_runtime_native::forest::Forest;
use mlox_runtime_native::input::{self, Features};
use mlox_runtime_native::skops::Labels;
use mlox_runtime_native::{column, tensor};

/// A string column of the request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Text<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    fn of(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Utf8 => Text::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Text::Large(array.as_string::<i64>()),
            DataType::Utf8View => Text::View(array.as_string_view()),
            _ => return None,
        })
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Text::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Text::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Text::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// One column flowing through a pipeline.
#[derive(Debug)]
pub(crate) enum Col<'a> {
    Num(Vec<f64>),
    Text(Text<'a>),
}

/// The columns of a request, or of a step's output.
#[derive(Debug)]
pub(crate) struct Table<'a> {
    pub rows: usize,
    pub cols: Vec<Col<'a>>,
}

/// A fitted transformer.
#[derive(Debug)]
pub(crate) enum Step {
    /// `x - offset` then `/ divide` (StandardScaler, RobustScaler), either part optional.
    Scale {
        offset: Option<Vec<f64>>,
        divide: Option<Vec<f64>>,
    },
    /// `x * scale + min`, then clipped to the feature range when `clip` is set (MinMaxScaler).
    MinMax {
        scale: Vec<f64>,
        min: Vec<f64>,
        clip: Option<(f64, f64)>,
    },
    /// Missing values replaced by `fill`; only the columns in `keep` survive (SimpleImputer
    /// drops columns whose statistic is NaN).
    Impute { fill: Vec<f64>, keep: Vec<usize> },
    /// One indicator column per category (OneHotEncoder).
    OneHot {
        cats: Vec<Categories>,
        error_unknown: bool,
    },
    /// The category's index (OrdinalEncoder): `unknown` for an unseen value (`None`: an
    /// error), `missing` for a missing one the categories include.
    Ordinal {
        cats: Vec<Categories>,
        unknown: Option<f64>,
        missing: f64,
    },
    /// ColumnTransformer: each branch's steps on its input columns, outputs side by side.
    Columns { branches: Vec<Branch> },
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub inputs: Vec<usize>,
    /// Empty for `passthrough`.
    pub steps: Vec<Step>,
}

/// The categories an encoder learned for one column.
#[derive(Debug)]
pub(crate) enum Categories {
    Text {
        index: HashMap<String, usize>,
        /// The position of the missing-value category (None or NaN), if it was seen.
        missing: Option<usize>,
        len: usize,
    },
    Num(Vec<f64>),
}

impl Categories {
    pub(crate) fn len(&self) -> usize {
        match self {
            Categories::Text { len, .. } => *len,
            Categories::Num(v) => v.len(),
        }
    }

    /// The category of row `i` of `col`: `Ok(None)` when unseen; `Err(true)` flags a missing
    /// value the categories lack.
    fn find(&self, col: &Col<'_>, i: usize) -> std::result::Result<Option<usize>, bool> {
        match (self, col) {
            (Categories::Text { index, missing, .. }, Col::Text(t)) => match t.get(i) {
                Some(s) => Ok(index.get(s).copied()),
                None => missing.map(Some).ok_or(true),
            },
            (Categories::Text { missing, .. }, Col::Num(v)) if v[i].is_nan() => {
                missing.map(Some).ok_or(true)
            }
            (Categories::Text { .. }, Col::Num(_)) => Ok(None),
            (Categories::Num(values), Col::Num(v)) => {
                let x = v[i];
                let hit = if x.is_nan() {
                    values.iter().position(|c| c.is_nan())
                } else {
                    values.iter().position(|&c| c == x)
                };
                match hit {
                    None if x.is_nan() => Err(true),
                    hit => Ok(hit),
                }
            }
            (Categories::Num(_), Col::Text(_)) => Ok(None),
        }
    }
}

impl Step {
    /// The number of columns this step turns `width` columns into.
    pub(crate) fn width_out(&self, width: usize) -> usize {
        match self {
            Step::Impute { keep, .. } => keep.len(),
            Step::OneHot { cats, .. } => cats.iter().map(Categories::len).sum(),
            Step::Columns { branches } => branches
                .iter()
                .map(|b| b.steps.iter().fold(b.inputs.len(), |w, s| s.width_out(w)))
                .sum(),
            _ => width,
        }
    }

    /// Whether the step only takes numbers (and so refuses infinities as scikit-learn does).
    pub(crate) fn numeric(&self) -> bool {
        matches!(
            self,
            Step::Scale { .. } | Step::MinMax { .. } | Step::Impute { .. }
        )
    }

    pub(crate) fn apply<'a>(&self, mut table: Table<'a>) -> Result<Table<'a>> {
        let rows = table.rows;
        match self {
            Step::Scale { offset, divide } => {
                for (j, col) in numbers(&mut table.cols, true)?.into_iter().enumerate() {
                    if let Some(offset) = offset {
                        col.iter_mut().for_each(|x| *x -= offset[j]);
                    }
                    if let Some(divide) = divide {
                        col.iter_mut().for_each(|x| *x /= divide[j]);
                    }
                }
                Ok(table)
            }
            Step::MinMax { scale, min, clip } => {
                for (j, col) in numbers(&mut table.cols, true)?.into_iter().enumerate() {
                    for x in col.iter_mut() {
                        *x *= scale[j];
                        *x += min[j];
                        if let Some((lo, hi)) = clip {
                            // numpy's clip keeps NaN.
                            *x = if *x < *lo {
                                *lo
                            } else if *x > *hi {
                                *hi
                            } else {
                                *x
                            };
                        }
                    }
                }
                Ok(table)
            }
            Step::Impute { fill, keep } => {
                numbers(&mut table.cols, true)?;
                let mut cols: Vec<Option<Col<'a>>> = table.cols.into_iter().map(Some).collect();
                let mut out = Vec::with_capacity(keep.len());
                for &j in keep {
                    let Some(Col::Num(mut v)) = cols[j].take() else {
                        return Err(Error::internal("an imputed column is not numeric"));
                    };
                    v.iter_mut()
                        .filter(|x| x.is_nan())
                        .for_each(|x| *x = fill[j]);
                    out.push(Col::Num(v));
                }
                Ok(Table { rows, cols: out })
            }
            Step::OneHot {
                cats,
                error_unknown,
            } => {
                let mut out = Vec::with_capacity(self.width_out(cats.len()));
                for (j, (c, col)) in cats.iter().zip(&table.cols).enumerate() {
                    let start = out.len();
                    out.extend((0..c.len()).map(|_| Col::Num(vec![0.0; rows])));
                    for i in 0..rows {
                        match c.find(col, i) {
                            Ok(Some(k)) => {
                                if let Col::Num(v) = &mut out[start + k] {
                                    v[i] = 1.0;
                                }
                            }
                            _ if *error_unknown => {
                                return Err(Error::invalid(format!(
                                    "Found unknown categories in column {j} during transform"
                                )));
                            }
                            _ => {}
                        }
                    }
                }
                Ok(Table { rows, cols: out })
            }
            Step::Ordinal {
                cats,
                unknown,
                missing,
            } => {
                let mut out = Vec::with_capacity(cats.len());
                for (j, (c, col)) in cats.iter().zip(&table.cols).enumerate() {
                    let mut v = vec![0.0; rows];
                    for (i, slot) in v.iter_mut().enumerate() {
                        *slot = match (c.find(col, i), unknown) {
                            (Ok(Some(k)), _) => {
                                if col_missing(col, i) {
                                    *missing
                                } else {
                                    k as f64
                                }
                            }
                            (_, Some(u)) => *u,
                            (_, None) => {
                                return Err(Error::invalid(format!(
                                    "Found unknown categories in column {j} during transform"
                                )));
                            }
                        };
                    }
                    out.push(Col::Num(v));
                }
                Ok(Table { rows, cols: out })
            }
            Step::Columns { branches } => {
                let mut out = Vec::with_capacity(self.width_out(table.cols.len()));
                for branch in branches {
                    // A column may feed several branches, each transforming its own copy.
                    let cols = branch
                        .inputs
                        .iter()
                        .map(|&j| match table.cols.get(j) {
                            Some(Col::Text(t)) => Ok(Col::Text(*t)),
                            Some(Col::Num(v)) => Ok(Col::Num(v.clone())),
                            None => Err(Error::internal("a ColumnTransformer input is missing")),
                        })
                        .collect::<Result<_>>()?;
                    let mut sub = Table { rows, cols };
                    for step in &branch.steps {
                        sub = step.apply(sub)?;
                    }
                    out.extend(sub.cols);
                }
                Ok(Table { rows, cols: out })
            }
        }
    }
}

fn col_missing(col: &Col<'_>, i: usize) -> bool {
    match col {
        Col::Num(v) => v[i].is_nan(),
        Col::Text(t) => t.get(i).is_none(),
    }
}

/// The numeric columns of a step's input; strings or (when `finite`) infinities are bad input.
fn numbers<'t>(cols: &'t mut [Col<'_>], finite: bool) -> Result<Vec<&'t mut Vec<f64>>> {
    cols.iter_mut()
        .map(|c| match c {
            Col::Num(v) => {
                if finite && v.iter().any(|x| x.is_infinite()) {
                    return Err(Error::invalid(
                        "Input X contains infinity or a value too large for dtype('float64')",
                    ));
                }
                Ok(v)
            }
            Col::Text(_) => Err(Error::invalid(
                "a column of strings reaches a step that takes numbers",
            )),
        })
        .collect()
}

/// The final estimator of a pipeline.
#[derive(Debug)]
pub(crate) enum Estimator {
    Linear(Linear),
    Trees(Trees),
}

/// `X @ coef.T + intercept` (every linear model).
#[derive(Debug)]
pub(crate) struct Linear {
    /// `k × n`, row-major.
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    pub n: usize,
    pub k: usize,
    pub output: LinearOutput,
}

#[derive(Debug)]
pub(crate) enum LinearOutput {
    /// Regression: `two_d` when `coef_` is 2-D, which makes predictions `[rows, k]`.
    Values { two_d: bool },
    /// Classification: `score > 0` with one score, else the first highest score.
    Labels(Labels),
}

/// A tree ensemble over `n` features.
#[derive(Debug)]
pub(crate) struct Trees {
    pub forest: Forest<f64>,
    pub n: usize,
    /// Whether missing values are accepted (else scikit-learn refuses them).
    pub nan_ok: bool,
    pub output: TreeOutput,
}

#[derive(Debug)]
pub(crate) enum TreeOutput {
    /// The sum of the trees' values, divided by `divide` (forests average).
    Mean { divide: Option<f64> },
    /// Classifiers: leaves index class distributions in `table`, summed over trees, divided,
    /// and the first largest picks the label.
    Vote {
        table: Vec<f64>,
        k: usize,
        divide: Option<f64>,
        classes: Labels,
    },
    /// Gradient boosting: `base` plus the learning-rate-scaled trees, one margin per class.
    Boost {
        base: Vec<f64>,
        classes: Option<Labels>,
    },
}

/// A compiled model: input columns, preprocessing, estimator.
#[derive(Debug)]
pub(crate) struct Model {
    pub features: Features,
    pub steps: Vec<Step>,
    pub estimator: Estimator,
}

impl Model {
    /// Row × (feature or tree) visits a request costs.
    pub(crate) fn work(&self, rows: usize) -> usize {
        let per_row = match &self.estimator {
            Estimator::Linear(l) => l.n * l.k,
            Estimator::Trees(t) => t.forest.n_trees() * 8,
        };
        rows.saturating_mul(per_row + self.features.count())
    }

    pub(crate) fn predict(&self, input: &ModelInput) -> Result<ModelOutput> {
        let mut table = self.table(input)?;
        for step in &self.steps {
            table = step.apply(table)?;
        }
        match &self.estimator {
            Estimator::Linear(l) => l.predict(table),
            Estimator::Trees(t) => t.predict(table),
        }
    }

    /// The request's columns in the model's feature order.
    fn table<'a>(&self, input: &'a ModelInput) -> Result<Table<'a>> {
        let count = self.features.count();
        match input {
            ModelInput::Frame(batch) => {
                let names: Vec<&str> = batch
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                let assigned = self.features.assign(&names)?;
                let rows = batch.num_rows();
                let mut cols: Vec<Option<Col<'a>>> = (0..count).map(|_| None).collect();
                for ((array, feature), name) in batch.columns().iter().zip(&assigned).zip(&names) {
                    let Some(f) = *feature else { continue };
                    cols[f] = Some(match Text::of(array.as_ref()) {
                        Some(t) => Col::Text(t),
                        None => {
                            let mut v = vec![0.0; rows];
                            input::fill(array.as_ref(), name, &mut v, 0, 1)?;
                            Col::Num(v)
                        }
                    });
                }
                let cols = cols
                    .into_iter()
                    .map(|c| c.ok_or_else(|| Error::invalid("a feature column is missing")))
                    .collect::<Result<_>>()?;
                Ok(Table { rows, cols })
            }
            ModelInput::Tensors(_) => {
                let m = input::matrix::<f64>(input, &self.features)?;
                let cols = (0..count)
                    .map(|j| Col::Num(m.values.iter().skip(j).step_by(count).copied().collect()))
                    .collect();
                Ok(Table { rows: m.rows, cols })
            }
        }
    }
}

fn final_numbers<'t>(table: &'t mut Table<'_>, n: usize) -> Result<Vec<&'t mut Vec<f64>>> {
    if table.cols.len() != n {
        return Err(Error::invalid(format!(
            "the estimator takes {n} features but the pipeline made {}",
            table.cols.len()
        )));
    }
    numbers(&mut table.cols, true)
}

impl Linear {
    fn predict(&self, mut table: Table<'_>) -> Result<ModelOutput> {
        let rows = table.rows;
        let cols = final_numbers(&mut table, self.n)?;
        if cols.iter().any(|c| c.iter().any(|x| x.is_nan())) {
            return Err(Error::invalid("Input X contains NaN"));
        }
        let mut scores = vec![0.0; rows * self.k];
        for (i, row) in scores.chunks_mut(self.k).enumerate() {
            for (c, slot) in row.iter_mut().enumerate() {
                let w = &self.coef[c * self.n..(c + 1) * self.n];
                let dot = cols.iter().zip(w).fold(0.0, |acc, (x, w)| acc + x[i] * w);
                *slot = dot + self.intercept[c];
            }
        }
        match &self.output {
            LinearOutput::Values { two_d } => {
                let values = Arc::new(Float64Array::from(scores));
                Ok(if *two_d {
                    tensor(values, rows, self.k)
                } else {
                    column(values)
                })
            }
            LinearOutput::Labels(classes) => {
                let picks: Vec<usize> = if self.k == 1 {
                    scores.iter().map(|&s| usize::from(s > 0.0)).collect()
                } else {
                    scores.chunks(self.k).map(argmax).collect()
                };
                Ok(column(labels(classes, &picks)))
            }
        }
    }
}

impl Trees {
    fn predict(&self, mut table: Table<'_>) -> Result<ModelOutput> {
        let rows = table.rows;
        let cols = final_numbers(&mut table, self.n)?;
        let mut row = vec![0.0f64; self.n];
        let k = self.forest.n_outputs();
        let mut sums = vec![0.0f64; k];
        let mut values = Vec::with_capacity(rows * k);
        let mut picks = Vec::with_capacity(rows);
        for i in 0..rows {
            for (slot, col) in row.iter_mut().zip(&cols) {
                let x = col[i];
                if x.is_nan() && !self.nan_ok {
                    return Err(Error::invalid("Input X contains NaN"));
                }
                if x.abs() > f64::from(f32::MAX) {
                    return Err(Error::invalid(
                        "Input X contains infinity or a value too large for dtype('float32')",
                    ));
                }
                *slot = f64::from(x as f32);
            }
            match &self.output {
                TreeOutput::Mean { divide } => {
                    sums[0] = 0.0;
                    self.forest.add_row(&row, &mut sums);
                    values.push(divide.map_or(sums[0], |d| sums[0] / d));
                }
                TreeOutput::Vote {
                    table,
                    k,
                    divide,
                    classes: _,
                } => {
                    sums.clear();
                    sums.resize(*k, 0.0);
                    self.forest.for_each_leaf(&row, |at| {
                        let at = at as usize;
                        for (s, p) in sums.iter_mut().zip(&table[at..at + k]) {
                            *s += p;
                        }
                    });
                    if let Some(d) = divide {
                        sums.iter_mut().for_each(|s| *s /= d);
                    }
                    picks.push(argmax(&sums));
                }
                TreeOutput::Boost { base, classes } => {
                    sums.copy_from_slice(base);
                    self.forest.add_row(&row, &mut sums);
                    match classes {
                        None => values.extend_from_slice(&sums),
                        Some(_) if k == 1 => picks.push(usize::from(sums[0] >= 0.0)),
                        Some(_) => picks.push(argmax(&sums)),
                    }
                }
            }
        }
        Ok(match &self.output {
            TreeOutput::Vote { classes, .. }
            | TreeOutput::Boost {
                classes: Some(classes),
                ..
            } => column(labels(classes, &picks)),
            _ => column(Arc::new(Float64Array::from(values))),
        })
    }
}

/// numpy's argmax: the first largest value.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

fn labels(classes: &Labels, picks: &[usize]) -> ArrayRef {
    match classes {
        Labels::Int64(l) => Arc::new(Int64Array::from_iter_values(picks.iter().map(|&c| l[c]))),
        Labels::Int32(l) => Arc::new(Int32Array::from_iter_values(picks.iter().map(|&c| l[c]))),
        Labels::Float64(l) => Arc::new(Float64Array::from_iter_values(picks.iter().map(|&c| l[c]))),
        Labels::Bool(l) => Arc::new(BooleanArray::from_iter(picks.iter().map(|&c| Some(l[c])))),
        Labels::Str(l) => Arc::new(StringArray::from_iter_values(
            picks.iter().map(|&c| l[c].as_str()),
        )),
    }
}

#[cfg(test)]
mod tests;
