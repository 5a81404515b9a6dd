//! LightGBM models in the text format `Booster.save_model` / `model_to_string` write, read
//! into a [`Forest<f64>`] with the objective's output conversion.
//!
//! LightGBM predicts in `f64`: thresholds and leaf values are the 17-digit decimals in the
//! file, features are read as doubles (values within 1e-35 of zero become zero, as its row
//! reader drops them), and each split's `decision_type` says how NaN and zero behave. Trees are
//! summed iteration by iteration, class by class, then converted by the objective.
//!
//! Refused (served by the Python runtime instead): categorical splits and pandas categorical
//! columns, linear trees, custom objectives and ranking objectives.

use std::collections::HashMap;

use super::Refusal;
use mlox_runtime_native::forest::{Compare, Forest, Missing, NodeSpec, Split};
use mlox_runtime_native::input::{Features, Naming};

/// LightGBM's threshold below which a feature value counts as zero (`kZeroThreshold`, an
/// `f32` constant widened to `f64`).
pub(crate) const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

/// The objective's conversion of raw scores into `Booster.predict` output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Objective {
    Identity,
    /// `1 / (1 + exp(-k·x))` (binary with `sigmoid:k`, cross_entropy with k = 1).
    Sigmoid(f64),
    /// Softmax across the classes (multiclass).
    Softmax,
    /// An independent sigmoid per class (multiclassova).
    SigmoidPerClass(f64),
    /// `exp(x)` (poisson, gamma, tweedie).
    Exp,
    /// `sign(x)·x²` (regression objectives trained with `reg_sqrt`).
    SignedSquare,
    /// `log(1 + exp(x))` (cross_entropy_lambda).
    Log1pExp,
}

/// A loaded LightGBM model.
#[derive(Debug)]
pub(crate) struct Model {
    pub forest: Forest<f64>,
    pub objective: Objective,
    pub objective_name: String,
    pub features: Features,
    /// Trees per boosting round: the number of classes for multiclass models, else 1.
    pub trees_per_iteration: usize,
    /// Random-forest mode divides the summed scores by the number of rounds.
    pub average_over: Option<f64>,
}

fn corrupt(message: impl Into<String>) -> Refusal {
    Refusal::Corrupt(message.into())
}

fn unsupported(message: impl Into<String>) -> Refusal {
    Refusal::Unsupported(message.into())
}

/// Reads a text model; `iterations`, when positive, keeps only the first that many rounds (the
/// Booster's `best_iteration` as a pickled or skops'd estimator carries it).
pub(crate) fn read(text: &str, iterations: Option<usize>) -> Result<Model, Refusal> {
    let mut lines = text.lines().map(str::trim_end);
    if lines.next().map(str::trim) != Some("tree") {
        return Err(corrupt(
            "the file does not start with LightGBM's \"tree\" header",
        ));
    }
    let mut header: HashMap<&str, &str> = HashMap::new();
    let mut flags: Vec<&str> = Vec::new();
    let mut blocks: Vec<HashMap<&str, &str>> = Vec::new();
    let mut current: Option<HashMap<&str, &str>> = None;
    let mut pandas_categorical = None;
    let mut in_trees = true;
    for line in lines {
        if let Some(rest) = line.strip_prefix("pandas_categorical:") {
            pandas_categorical = Some(rest.trim());
            continue;
        }
        if !in_trees {
            continue;
        }
        if line == "end of trees" {
            blocks.extend(current.take());
            in_trees = false;
            continue;
        }
        if line.starts_with("Tree=") {
            blocks.extend(current.replace(HashMap::new()));
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let target = match current.as_mut() {
            Some(block) => block,
            None => &mut header,
        };
        match line.split_once('=') {
            Some((key, value)) => {
                target.insert(key, value);
            }
            None if current.is_none() => flags.push(line),
            None => {}
        }
    }
    if in_trees {
        blocks.extend(current.take());
    }
    if let Some(cats) = pandas_categorical
        && !matches!(cats, "null" | "[]" | "")
    {
        return Err(unsupported("pandas categorical features"));
    }

    let number = |key: &str| -> Result<usize, Refusal> {
        header
            .get(key)
            .ok_or_else(|| corrupt(format!("the header has no {key}")))?
            .trim()
            .parse()
            .map_err(|_| corrupt(format!("{key} is not a count")))
    };
    let num_class = number("num_class")?;
    let trees_per_iteration = match header.get("num_tree_per_iteration") {
        Some(_) => number("num_tree_per_iteration")?,
        None => num_class,
    };
    if trees_per_iteration == 0 {
        return Err(corrupt("num_tree_per_iteration is 0"));
    }
    let max_feature: i64 = header
        .get("max_feature_idx")
        .ok_or_else(|| corrupt("the header has no max_feature_idx"))?
        .trim()
        .parse()
        .map_err(|_| corrupt("max_feature_idx is not an integer"))?;
    let n_features = usize::try_from(max_feature + 1)
        .map_err(|_| corrupt(format!("max_feature_idx is {max_feature}")))?;
    let names: Vec<String> = header
        .get("feature_names")
        .map(|n| n.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if !names.is_empty() && names.len() != n_features {
        return Err(corrupt(format!(
            "{} feature names for {n_features} features",
            names.len()
        )));
    }
    let objective_name = header.get("objective").copied().unwrap_or("").trim();
    let objective = objective(objective_name, trees_per_iteration)?;
    if header.get("linear_tree").is_some_and(|v| v.trim() == "1") {
        return Err(unsupported("linear trees"));
    }

    if !blocks.len().is_multiple_of(trees_per_iteration) {
        return Err(corrupt(format!(
            "{} trees is not a whole number of rounds of {trees_per_iteration}",
            blocks.len()
        )));
    }
    let used = match iterations {
        Some(n) if n > 0 => blocks.len().min(n.saturating_mul(trees_per_iteration)),
        _ => blocks.len(),
    };
    let mut forest = Forest::new(n_features, trees_per_iteration);
    for (i, block) in blocks.iter().take(used).enumerate() {
        let nodes = read_tree(block).map_err(|e| match e {
            Refusal::Corrupt(m) => corrupt(format!("tree {i}: {m}")),
            other => other,
        })?;
        forest
            .push_tree(&nodes, i % trees_per_iteration, None)
            .map_err(|e| corrupt(format!("tree {i}: {e}")))?;
    }
    let average_over = flags
        .contains(&"average_output")
        .then(|| (used / trees_per_iteration).max(1) as f64);
    Ok(Model {
        forest,
        objective,
        objective_name: objective_name.to_owned(),
        features: Features::new(n_features, names, Naming::Preferred),
        trees_per_iteration,
        average_over,
    })
}

/// The conversion for an objective line such as `binary sigmoid:1` or
/// `multiclass num_class:3`.
fn objective(line: &str, trees_per_iteration: usize) -> Result<Objective, Refusal> {
    let mut tokens = line.split_whitespace();
    let name = tokens.next().unwrap_or("");
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for token in tokens {
        if token == "sqrt" {
            sqrt = true;
        } else if let Some(v) = token.strip_prefix("sigmoid:") {
            sigmoid = v
                .parse()
                .map_err(|_| corrupt(format!("objective '{line}' has a bad sigmoid")))?;
        }
    }
    let multiclass = matches!(name, "multiclass" | "multiclassova");
    if multiclass != (trees_per_iteration > 1) {
        return Err(corrupt(format!(
            "objective '{line}' with {trees_per_iteration} trees per round"
        )));
    }
    Ok(match name {
        "binary" => Objective::Sigmoid(sigmoid),
        "cross_entropy" => Objective::Sigmoid(1.0),
        "cross_entropy_lambda" => Objective::Log1pExp,
        "multiclass" => Objective::Softmax,
        "multiclassova" => Objective::SigmoidPerClass(sigmoid),
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" => {
            if sqrt {
                Objective::SignedSquare
            } else {
                Objective::Identity
            }
        }
        "poisson" | "gamma" | "tweedie" => Objective::Exp,
        "" | "custom" | "none" => {
            return Err(unsupported("models trained with a custom objective"));
        }
        other => {
            return Err(unsupported(format!(
                "objective '{other}' has no native implementation"
            )));
        }
    })
}

fn parse_list<T: std::str::FromStr>(
    block: &HashMap<&str, &str>,
    key: &str,
    len: usize,
) -> Result<Vec<T>, Refusal> {
    let text = block.get(key).ok_or_else(|| corrupt(format!("no {key}")))?;
    let values: Vec<T> = text
        .split_whitespace()
        .map(|v| v.parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| corrupt(format!("{key} holds a value that is not a number")))?;
    if values.len() != len {
        return Err(corrupt(format!(
            "{key} has {} entries where {len} were expected",
            values.len()
        )));
    }
    Ok(values)
}

/// Internal nodes first, then leaves: a negative child `c` is leaf `-c - 1`.
fn read_tree(block: &HashMap<&str, &str>) -> Result<Vec<NodeSpec<f64>>, Refusal> {
    if block.get("is_linear").is_some_and(|v| v.trim() == "1") {
        return Err(unsupported("linear trees"));
    }
    if block
        .get("num_cat")
        .is_some_and(|v| v.trim().parse::<usize>().map_or(true, |n| n > 0))
    {
        return Err(unsupported("categorical splits"));
    }
    let leaves: usize = block
        .get("num_leaves")
        .ok_or_else(|| corrupt("no num_leaves"))?
        .trim()
        .parse()
        .map_err(|_| corrupt("num_leaves is not a count"))?;
    if leaves == 0 {
        return Err(corrupt("num_leaves is 0"));
    }
    let leaf_values: Vec<f64> = parse_list(block, "leaf_value", leaves)?;
    if leaves == 1 {
        return Ok(vec![NodeSpec::Leaf(leaf_values[0])]);
    }
    let internal = leaves - 1;
    let features: Vec<usize> = parse_list(block, "split_feature", internal)?;
    let thresholds: Vec<f64> = parse_list(block, "threshold", internal)?;
    let decisions: Vec<u8> = parse_list(block, "decision_type", internal)?;
    let left: Vec<i64> = parse_list(block, "left_child", internal)?;
    let right: Vec<i64> = parse_list(block, "right_child", internal)?;
    let child = |c: i64| -> Result<usize, Refusal> {
        let index = if c >= 0 {
            usize::try_from(c).ok().filter(|&c| c < internal)
        } else {
            usize::try_from(-(c + 1))
                .ok()
                .filter(|&l| l < leaves)
                .map(|l| internal + l)
        };
        index.ok_or_else(|| corrupt(format!("child {c} is out of range")))
    };
    let mut nodes = Vec::with_capacity(internal + leaves);
    for i in 0..internal {
        let decision = decisions[i];
        if decision & 1 != 0 {
            return Err(unsupported("categorical splits"));
        }
        let missing = match (decision >> 2) & 3 {
            0 => Missing::AsZero,
            1 => Missing::ZeroOrNan,
            2 => Missing::Nan,
            _ => return Err(corrupt(format!("decision_type {decision}"))),
        };
        nodes.push(NodeSpec::Split(Split {
            feature: features[i],
            threshold: thresholds[i],
            left: child(left[i])?,
            right: child(right[i])?,
            default_left: decision & 2 != 0,
            missing,
            compare: Compare::LessEqual,
        }));
    }
    nodes.extend(leaf_values.into_iter().map(NodeSpec::Leaf));
    Ok(nodes)
}

impl Model {
    /// Outputs per row: the classes of a multiclass model, else 1.
    pub(crate) fn n_outputs(&self) -> usize {
        self.trees_per_iteration
    }

    /// `Booster.predict` for `rows` rows of features (already with near-zero values zeroed):
    /// `rows × n_outputs` values, row-major.
    pub(crate) fn predict(&self, rows: usize, features: &[f64]) -> Vec<f64> {
        let width = self.forest.n_features();
        let k = self.n_outputs();
        let mut out = vec![0.0; rows * k];
        for (r, scores) in out.chunks_mut(k).enumerate() {
            self.forest
                .add_row(&features[r * width..(r + 1) * width], scores);
            if let Some(n) = self.average_over {
                scores.iter_mut().for_each(|s| *s /= n);
            }
            self.convert(scores);
        }
        out
    }

    fn convert(&self, scores: &mut [f64]) {
        match self.objective {
            Objective::Identity => {}
            Objective::Sigmoid(k) | Objective::SigmoidPerClass(k) => scores
                .iter_mut()
                .for_each(|s| *s = 1.0 / (1.0 + (-k * *s).exp())),
            Objective::Softmax => {
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                scores.iter_mut().for_each(|s| *s /= sum);
            }
            Objective::Exp => scores.iter_mut().for_each(|s| *s = s.exp()),
            Objective::SignedSquare => scores.iter_mut().for_each(|s| *s *= s.abs()),
            Objective::Log1pExp => scores.iter_mut().for_each(|s| *s = s.exp().ln_1p()),
        }
    }
}

/// Zeroes values LightGBM's row reader would drop as zero.
pub(crate) fn zero_small(features: &mut [f64]) {
    for v in features {
        if v.abs() <= ZERO_THRESHOLD {
            *v = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINARY: &str = "tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:1
feature_names=a b
feature_infos=[0:1] [0:1]
tree_sizes=100 100

Tree=0
num_leaves=3
num_cat=0
split_feature=0 1
split_gain=1 1
threshold=0.5 1.0000000000000001e-35
decision_type=0 6
left_child=1 -1
right_child=-2 -3
leaf_value=0.25 -0.5 1
leaf_weight=1 1 1
leaf_count=1 1 1
internal_value=0 0
internal_weight=1 1
internal_count=3 2
is_linear=0
shrinkage=1


Tree=1
num_leaves=1
num_cat=0
split_feature=
split_gain=
threshold=
decision_type=
left_child=
right_child=
leaf_value=0.125
leaf_weight=
leaf_count=
internal_value=
internal_weight=
internal_count=
is_linear=0
shrinkage=1


end of trees

feature_importances:
a=1

parameters:
[boosting: gbdt]
end of parameters

pandas_categorical:null
";

    fn raw(model: &Model, rows: &[[f64; 2]]) -> Vec<f64> {
        let mut flat: Vec<f64> = rows.iter().flatten().copied().collect();
        zero_small(&mut flat);
        let width = model.forest.n_features();
        let mut out = vec![0.0; rows.len()];
        for (r, o) in out.iter_mut().enumerate() {
            let mut s = [0.0];
            model
                .forest
                .add_row(&flat[r * width..(r + 1) * width], &mut s);
            *o = s[0];
        }
        out
    }

    #[test]
    fn reads_trees_and_decision_types() {
        let m = read(BINARY, None).unwrap();
        assert_eq!(m.forest.n_trees(), 2);
        assert_eq!(m.objective, Objective::Sigmoid(1.0));
        assert_eq!(m.features.names(), ["a", "b"]);
        // Node 0 (decision 0: missing None, default right) reads NaN as 0, which goes left;
        // node 1 (decision 6: missing Zero, default left) sends zero and NaN left (leaf 0).
        let out = raw(
            &m,
            &[
                [0.5, 5.0],
                [0.75, 5.0],
                [0.0, 0.0],
                [0.0, f64::NAN],
                [0.0, 1e-36],
                [f64::NAN, 5.0],
            ],
        );
        assert_eq!(out, [1.125, -0.375, 0.375, 0.375, 0.375, 1.125]);
        let p = m.predict(1, &[0.5, 5.0]);
        assert_eq!(p, [1.0 / (1.0 + (-1.125f64).exp())]);
    }

    #[test]
    fn iterations_and_average_output() {
        let m = read(BINARY, Some(1)).unwrap();
        assert_eq!(m.forest.n_trees(), 1);
        let rf = BINARY.replace("tree_sizes=", "average_output\ntree_sizes=");
        let m = read(&rf, None).unwrap();
        assert_eq!(m.average_over, Some(2.0));
        let p = m.predict(1, &[0.5, 5.0]);
        assert_eq!(p, [1.0 / (1.0 + (-(1.125f64 / 2.0)).exp())]);
    }

    #[test]
    fn objectives_convert_like_lightgbm() {
        let convert = |objective: Objective, scores: &[f64]| {
            let mut m = read(BINARY, None).unwrap();
            m.objective = objective;
            let mut s = scores.to_vec();
            m.convert(&mut s);
            s
        };
        assert_eq!(convert(Objective::SignedSquare, &[-3.0]), [-9.0]);
        assert_eq!(convert(Objective::Exp, &[0.0]), [1.0]);
        assert_eq!(convert(Objective::Sigmoid(2.0), &[0.0]), [0.5]);
        assert_eq!(convert(Objective::Log1pExp, &[0.0]), [2f64.ln()]);
        let soft = convert(Objective::Softmax, &[1.0, 1.0]);
        assert_eq!(soft, [0.5, 0.5]);
        assert_eq!(
            objective("regression sqrt", 1).unwrap(),
            Objective::SignedSquare
        );
        assert_eq!(
            objective("multiclass num_class:3", 3).unwrap(),
            Objective::Softmax
        );
        assert_eq!(
            objective("multiclassova num_class:3 sigmoid:2", 3).unwrap(),
            Objective::SigmoidPerClass(2.0)
        );
        assert!(matches!(
            objective("lambdarank", 1),
            Err(Refusal::Unsupported(_))
        ));
        assert!(matches!(objective("", 1), Err(Refusal::Unsupported(_))));
        assert!(matches!(objective("binary", 3), Err(Refusal::Corrupt(_))));
    }

    #[test]
    fn unsupported_and_corrupt_models() {
        let unsupported = [
            BINARY.replace(
                "pandas_categorical:null",
                "pandas_categorical:[[\"a\",\"b\"]]",
            ),
            BINARY.replace("decision_type=0 6", "decision_type=1 6"),
            BINARY.replacen("num_cat=0", "num_cat=1", 1),
            BINARY.replacen("is_linear=0", "is_linear=1", 1),
            BINARY.replace("objective=binary sigmoid:1", "objective=lambdarank"),
        ];
        for text in unsupported {
            assert!(
                matches!(read(&text, None), Err(Refusal::Unsupported(_))),
                "{text}"
            );
        }
        let corrupt = [
            BINARY.replace("tree\nversion", "version"),
            BINARY.replace("left_child=1 -1", "left_child=1 -7"),
            BINARY.replace("left_child=1 -1", "left_child=0 -1"),
            BINARY.replace("split_feature=0 1", "split_feature=0 2"),
            BINARY.replace("threshold=0.5 ", "threshold=x "),
            BINARY.replace("leaf_value=0.25 -0.5 1", "leaf_value=0.25 -0.5"),
            BINARY.replace("max_feature_idx=1", "max_feature_idx=x"),
        ];
        for text in corrupt {
            assert!(
                matches!(read(&text, None), Err(Refusal::Corrupt(_))),
                "{text}"
            );
        }
    }
}
