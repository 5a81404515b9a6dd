//! XGBoost models as `Booster.save_model` writes them: the JSON document (`model.json`) or the
//! same document in UBJSON (`model.ubj`, and the `xgb` format, which current XGBoost also
//! writes as UBJSON), read into a [`Forest<f32>`] with the objective's output transform.
//!
//! XGBoost predicts in `f32` throughout: features are cast to `f32`, split conditions are
//! `f32`, leaves are summed in `f32` onto the base margin (the stored `base_score` mapped
//! through the objective's inverse link, in `f32`). This module reproduces each of those steps
//! rather than computing in `f64` and rounding at the end, so its margins equal XGBoost's.
//!
//! Refused (served by the Python runtime instead): `gblinear`, categorical features or
//! splits, multi-target trees (vector leaves), the pre-1.0 binary format, and objectives whose
//! output this module does not reproduce (ranking, survival).

use super::Refusal;
use super::ubjson::{self, Value};
use mlox_runtime_native::forest::{Compare, Forest, Missing, NodeSpec, Split};
use mlox_runtime_native::input::{Features, Naming};

/// What turns summed margins into `Booster.predict` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Objective {
    /// Margins as they are (squared error, logitraw, quantiles, …).
    Identity,
    /// `1 / (1 + exp(-margin))` (binary:logistic, reg:logistic).
    Sigmoid,
    /// `exp(margin)` (count:poisson, reg:gamma, reg:tweedie).
    Exp,
    /// `1` when the margin is positive, else `0` (binary:hinge).
    Hinge,
    /// Per-row softmax over the classes (multi:softprob).
    Softprob,
    /// The index of the largest class margin, as a float (multi:softmax).
    Softmax,
}

/// A loaded XGBoost model.
#[derive(Debug)]
pub(crate) struct Model {
    pub forest: Forest<f32>,
    /// One base margin per output group.
    pub base_margin: Vec<f32>,
    pub objective: Objective,
    pub objective_name: String,
    pub features: Features,
    /// The number of classes for multi-class objectives, else 0.
    pub num_class: usize,
    /// The attribute early stopping leaves behind; the sklearn wrappers predict with the
    /// rounds up to it, a bare `Booster` with all of them.
    pub best_iteration: Option<usize>,
    /// Which serialization the file used, for the model's description.
    pub format: &'static str,
}

/// Reads a saved model; `rounds` limits it to its first boosting rounds (the sklearn
/// wrappers' use of `best_iteration`).
pub(crate) fn read(bytes: &[u8], rounds: RoundLimit) -> Result<Model, Refusal> {
    let (doc, format) = parse_document(bytes)?;
    let learner = doc
        .get("learner")
        .ok_or_else(|| corrupt("the document has no \"learner\""))?;
    from_learner(learner, format, rounds)
}

/// Whether to stop at the `best_iteration` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoundLimit {
    All,
    BestIteration,
}

fn corrupt(message: impl Into<String>) -> Refusal {
    Refusal::Corrupt(message.into())
}

fn unsupported(message: impl Into<String>) -> Refusal {
    Refusal::Unsupported(message.into())
}

/// JSON and UBJSON both open with `{`; what follows tells them apart (a quote, whitespace or
/// `}` in JSON, a length marker in UBJSON). Anything else is the retired binary format.
fn parse_document(bytes: &[u8]) -> Result<(Value, &'static str), Refusal> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let body = &bytes[start..];
    if body.first() != Some(&b'{') {
        return Err(unsupported(
            "the model file is in XGBoost's legacy binary format (saved by XGBoost < 1.0 or \
             as `.bin`/`.model`); re-save it as JSON or UBJSON to serve it natively",
        ));
    }
    let json = matches!(
        body.get(1),
        Some(b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
    );
    if json {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(format!("the model is not valid JSON: {e}")))?;
        Ok((Value::from_json(value), "json"))
    } else {
        let value = ubjson::decode(body)
            .map_err(|e| corrupt(format!("the model is not valid UBJSON: {e}")))?;
        Ok((value, "ubj"))
    }
}

fn field<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a Value, Refusal> {
    v.get(key)
        .ok_or_else(|| corrupt(format!("{what} has no \"{key}\"")))
}

fn int_field(v: &Value, key: &str, what: &str) -> Result<i64, Refusal> {
    field(v, key, what)?
        .as_int()
        .ok_or_else(|| corrupt(format!("{what}'s \"{key}\" is not an integer")))
}

fn count(v: i64, what: &str) -> Result<usize, Refusal> {
    usize::try_from(v).map_err(|_| corrupt(format!("{what} is negative ({v})")))
}

fn from_learner(
    learner: &Value,
    format: &'static str,
    rounds: RoundLimit,
) -> Result<Model, Refusal> {
    if let Some(types) = learner.get("feature_types").and_then(Value::to_strings)
        && types.iter().any(|t| t == "c")
    {
        return Err(unsupported("the model has categorical features"));
    }
    let objective_name = field(learner, "objective", "the learner")?
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("the objective has no name"))?
        .to_owned();
    let objective = match objective_name.as_str() {
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror"
        | "binary:logitraw" => Objective::Identity,
        "binary:logistic" | "reg:logistic" => Objective::Sigmoid,
        "count:poisson" | "reg:gamma" | "reg:tweedie" => Objective::Exp,
        "binary:hinge" => Objective::Hinge,
        "multi:softprob" => Objective::Softprob,
        "multi:softmax" => Objective::Softmax,
        other => {
            return Err(unsupported(format!(
                "objective '{other}' has no native implementation"
            )));
        }
    };

    let params = field(learner, "learner_model_param", "the learner")?;
    let n_features = count(
        int_field(params, "num_feature", "learner_model_param")?,
        "num_feature",
    )?;
    let num_class = count(
        params.get("num_class").and_then(Value::as_int).unwrap_or(0),
        "num_class",
    )?;
    let num_target = count(
        params
            .get("num_target")
            .and_then(Value::as_int)
            .unwrap_or(1),
        "num_target",
    )?;
    let n_groups = if num_class > 0 {
        num_class
    } else {
        num_target.max(1)
    };
    if matches!(objective, Objective::Softprob | Objective::Softmax) && num_class == 0 {
        return Err(corrupt(format!("{objective_name} without num_class")));
    }
    let base_margin = base_margin(params, objective, n_groups)?;

    let booster = field(learner, "gradient_booster", "the learner")?;
    let booster_name = booster.get("name").and_then(Value::as_str).unwrap_or("");
    let (model, weights) = match booster_name {
        "gbtree" => (field(booster, "model", "gbtree")?, None),
        "dart" => {
            let gbtree = field(booster, "gbtree", "dart")?;
            let weights = field(booster, "weight_drop", "dart")?
                .to_f32s()
                .ok_or_else(|| corrupt("dart's weight_drop is not a list of numbers"))?;
            (field(gbtree, "model", "dart's gbtree")?, Some(weights))
        }
        "gblinear" => return Err(unsupported("gblinear (linear booster) models")),
        other => return Err(unsupported(format!("booster '{other}'"))),
    };

    let trees = match field(model, "trees", "the tree model")? {
        Value::Array(trees) => trees.as_slice(),
        other if other.array_len() == Some(0) => &[],
        _ => return Err(corrupt("\"trees\" is not a list")),
    };
    let tree_info = field(model, "tree_info", "the tree model")?
        .to_ints()
        .ok_or_else(|| corrupt("tree_info is not a list of integers"))?;
    if tree_info.len() != trees.len() {
        return Err(corrupt(format!(
            "{} trees but {} tree_info entries",
            trees.len(),
            tree_info.len()
        )));
    }
    if let Some(w) = &weights
        && w.len() != trees.len()
    {
        return Err(corrupt(format!(
            "{} trees but {} dart weights",
            trees.len(),
            w.len()
        )));
    }

    let best_iteration = learner
        .get("attributes")
        .and_then(|a| a.get("best_iteration"))
        .and_then(Value::as_int)
        .and_then(|i| usize::try_from(i).ok());
    let used = match (rounds, best_iteration) {
        (RoundLimit::BestIteration, Some(best)) => {
            trees_in_rounds(model, best + 1, n_groups, trees.len())?
        }
        _ => trees.len(),
    };

    let mut forest = Forest::new(n_features, n_groups);
    let mut nodes = Vec::new();
    for (i, tree) in trees.iter().take(used).enumerate() {
        read_tree(tree, &mut nodes).map_err(|e| match e {
            Refusal::Corrupt(m) => corrupt(format!("tree {i}: {m}")),
            other => other,
        })?;
        let group = usize::try_from(tree_info[i])
            .map_err(|_| corrupt(format!("tree {i} has group {}", tree_info[i])))?;
        let weight = weights.as_ref().map(|w| w[i]);
        forest
            .push_tree(&nodes, group, weight)
            .map_err(|e| corrupt(format!("tree {i}: {e}")))?;
    }

    let names = learner
        .get("feature_names")
        .and_then(Value::to_strings)
        .unwrap_or_default();
    if !names.is_empty() && names.len() != n_features {
        return Err(corrupt(format!(
            "{} feature names for {n_features} features",
            names.len()
        )));
    }
    Ok(Model {
        forest,
        base_margin,
        objective,
        objective_name,
        features: Features::new(n_features, names, Naming::Required),
        num_class,
        best_iteration,
        format,
    })
}

/// How many leading trees make up the first `rounds` boosting rounds.
fn trees_in_rounds(
    model: &Value,
    rounds: usize,
    n_groups: usize,
    n_trees: usize,
) -> Result<usize, Refusal> {
    if let Some(indptr) = model.get("iteration_indptr").and_then(Value::to_ints)
        && !indptr.is_empty()
    {
        let end = indptr
            .get(rounds.min(indptr.len() - 1))
            .copied()
            .unwrap_or(0);
        return Ok(usize::try_from(end).unwrap_or(0).min(n_trees));
    }
    let parallel = model
        .get("gbtree_model_param")
        .and_then(|p| p.get("num_parallel_tree"))
        .and_then(Value::as_int)
        .unwrap_or(1);
    let per_round = count(parallel, "num_parallel_tree")?.max(1) * n_groups;
    Ok(rounds.saturating_mul(per_round).min(n_trees))
}

/// `base_score` is stored in the output's space (a probability for logistic objectives) and
/// is a list per output since XGBoost 3.0, a single number before; the margin it starts from
/// is its image under the link function, computed in `f32` as XGBoost does.
fn base_margin(params: &Value, objective: Objective, n_groups: usize) -> Result<Vec<f32>, Refusal> {
    let raw = params
        .get("base_score")
        .ok_or_else(|| corrupt("learner_model_param has no base_score"))?;
    let scores: Vec<f32> = match raw {
        Value::Str(s) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|p| p.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt(format!("base_score '{s}' is not a number")))?,
        other => match other.as_f64() {
            Some(v) => vec![v as f32],
            None => other
                .to_f32s()
                .ok_or_else(|| corrupt("base_score is not a number"))?,
        },
    };
    let scores = match scores.len() {
        1 => vec![scores[0]; n_groups],
        n if n == n_groups => scores,
        n => {
            return Err(corrupt(format!("{n} base scores for {n_groups} outputs")));
        }
    };
    scores
        .into_iter()
        .map(|s| match objective {
            Objective::Sigmoid => {
                if !(s > 0.0 && s < 1.0) {
                    return Err(corrupt(format!(
                        "base_score {s} is not a probability in (0, 1)"
                    )));
                }
                Ok(-(1.0f32 / s - 1.0f32).ln())
            }
            Objective::Exp => {
                if s <= 0.0 {
                    return Err(corrupt(format!("base_score {s} is not positive")));
                }
                Ok(s.ln())
            }
            _ => Ok(s),
        })
        .collect()
}

fn read_tree(tree: &Value, nodes: &mut Vec<NodeSpec<f32>>) -> Result<(), Refusal> {
    let param = field(tree, "tree_param", "the tree")?;
    let n = count(int_field(param, "num_nodes", "tree_param")?, "num_nodes")?;
    let leaf_vector = param
        .get("size_leaf_vector")
        .and_then(Value::as_int)
        .unwrap_or(1);
    if leaf_vector > 1 {
        return Err(unsupported(
            "multi-target trees (multi_strategy=multi_output_tree)",
        ));
    }
    if let Some(kinds) = tree.get("split_type").and_then(Value::to_ints)
        && kinds.iter().any(|&k| k != 0)
    {
        return Err(unsupported("categorical splits"));
    }
    if tree
        .get("categories_nodes")
        .and_then(Value::array_len)
        .is_some_and(|l| l > 0)
    {
        return Err(unsupported("categorical splits"));
    }
    let ints = |key: &str| -> Result<Vec<i64>, Refusal> {
        let v = field(tree, key, "the tree")?
            .to_ints()
            .ok_or_else(|| corrupt(format!("{key} is not a list of integers")))?;
        if v.len() != n {
            return Err(corrupt(format!(
                "{key} has {} entries for {n} nodes",
                v.len()
            )));
        }
        Ok(v)
    };
    let left = ints("left_children")?;
    let right = ints("right_children")?;
    let feature = ints("split_indices")?;
    let default_left = ints("default_left")?;
    let conditions = field(tree, "split_conditions", "the tree")?
        .to_f32s()
        .ok_or_else(|| corrupt("split_conditions is not a list of numbers"))?;
    if conditions.len() != n {
        return Err(corrupt(format!(
            "split_conditions has {} entries for {n} nodes",
            conditions.len()
        )));
    }
    nodes.clear();
    for i in 0..n {
        nodes.push(if left[i] == -1 {
            NodeSpec::Leaf(conditions[i])
        } else {
            let index = |v: i64, what: &str| {
                usize::try_from(v).map_err(|_| corrupt(format!("node {i} has {what} {v}")))
            };
            NodeSpec::Split(Split {
                feature: index(feature[i], "split index")?,
                threshold: conditions[i],
                left: index(left[i], "left child")?,
                right: index(right[i], "right child")?,
                default_left: default_left[i] != 0,
                missing: Missing::Nan,
                compare: Compare::Less,
            })
        });
    }
    Ok(())
}

impl Model {
    /// The output groups: classes, targets, or 1.
    pub(crate) fn n_groups(&self) -> usize {
        self.forest.n_outputs()
    }

    /// Summed margins, `rows × n_groups`, row-major.
    pub(crate) fn margins(&self, rows: usize, features: &[f32]) -> Vec<f32> {
        let width = self.forest.n_features();
        let groups = self.n_groups();
        let mut out = Vec::with_capacity(rows * groups);
        for r in 0..rows {
            out.extend_from_slice(&self.base_margin);
            let start = r * groups;
            self.forest.add_row(
                &features[r * width..(r + 1) * width],
                &mut out[start..start + groups],
            );
        }
        out
    }

    /// Applies the objective's transform to margins in place; the result has `rows ×
    /// n_groups` values, or `rows` for multi:softmax (one class index per row).
    pub(crate) fn transform(&self, margins: &mut Vec<f32>) {
        let groups = self.n_groups();
        match self.objective {
            Objective::Identity => {}
            Objective::Sigmoid => margins.iter_mut().for_each(|m| *m = sigmoid(*m)),
            Objective::Exp => margins.iter_mut().for_each(|m| *m = m.exp()),
            Objective::Hinge => margins
                .iter_mut()
                .for_each(|m| *m = if *m > 0.0 { 1.0 } else { 0.0 }),
            Objective::Softprob => margins.chunks_mut(groups).for_each(softmax),
            Objective::Softmax => {
                *margins = margins
                    .chunks(groups)
                    .map(|row| argmax(row) as f32)
                    .collect();
            }
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Softmax as XGBoost computes it: exponentials of the differences from the row maximum in
/// `f32`, summed in `f64`, each divided by the sum rounded back to `f32`.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += f64::from(*x);
    }
    let sum = sum as f32;
    for x in row.iter_mut() {
        *x /= sum;
    }
}

/// The first index of the largest value, as numpy's `argmax`.
pub(crate) fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate().skip(1) {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-tree binary:logistic model over features a, b, as XGBoost 3 writes it:
    /// a < 0.5 ? (b < 2 ? 0.2 : -0.1) : -0.4, missing a goes left, missing b right.
    fn model_json(objective: &str, base_score: &str) -> String {
        format!(
            r#"{{"learner":{{
              "attributes":{{"best_iteration":"0"}},
              "feature_names":["a","b"],"feature_types":["float","float"],
              "gradient_booster":{{"name":"gbtree","model":{{
                "gbtree_model_param":{{"num_parallel_tree":"1","num_trees":"2"}},
                "iteration_indptr":[0,1,2],
                "tree_info":[0,0],
                "trees":[
                  {{"tree_param":{{"num_nodes":"5","num_feature":"2","size_leaf_vector":"1"}},
                   "left_children":[1,3,-1,-1,-1],"right_children":[2,4,-1,-1,-1],
                   "split_indices":[0,1,0,0,0],"split_conditions":[0.5,2.0,-0.4,0.2,-0.1],
                   "default_left":[1,0,0,0,0],"split_type":[0,0,0,0,0],
                   "categories_nodes":[]}},
                  {{"tree_param":{{"num_nodes":"1","num_feature":"2","size_leaf_vector":"1"}},
                   "left_children":[-1],"right_children":[-1],"split_indices":[0],
                   "split_conditions":[0.25],"default_left":[0]}}
                ]}}}},
              "learner_model_param":{{"base_score":"{base_score}","num_class":"0",
                "num_feature":"2","num_target":"1"}},
              "objective":{{"name":"{objective}"}}}},"version":[3,2,0]}}"#
        )
    }

    fn margins(model: &Model, rows: &[[f32; 2]]) -> Vec<f32> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        model.margins(rows.len(), &flat)
    }

    #[test]
    fn reads_json_and_sums_onto_the_logit_of_base_score() {
        let m = read(
            model_json("binary:logistic", "[5E-1]").as_bytes(),
            RoundLimit::All,
        )
        .unwrap();
        assert_eq!(m.format, "json");
        assert_eq!(m.base_margin, vec![0.0]);
        assert_eq!(m.features.names(), ["a", "b"]);
        let out = margins(
            &m,
            &[[0.0, 0.0], [0.0, 3.0], [1.0, 0.0], [f32::NAN, f32::NAN]],
        );
        assert_eq!(out, vec![0.2 + 0.25, -0.1 + 0.25, -0.4 + 0.25, -0.1 + 0.25]);
        let mut probs = out.clone();
        m.transform(&mut probs);
        assert_eq!(probs[0], 1.0 / (1.0 + (-0.45f32).exp()));
    }

    #[test]
    fn best_iteration_limits_the_rounds_only_when_asked() {
        let bytes = model_json("reg:squarederror", "1E0");
        let all = read(bytes.as_bytes(), RoundLimit::All).unwrap();
        let best = read(bytes.as_bytes(), RoundLimit::BestIteration).unwrap();
        assert_eq!(all.forest.n_trees(), 2);
        assert_eq!(best.forest.n_trees(), 1);
        assert_eq!(best.best_iteration, Some(0));
        assert_eq!(margins(&best, &[[0.0, 0.0]]), vec![1.2]);
    }

    #[test]
    fn ubjson_and_json_give_the_same_model() {
        let json: serde_json::Value =
            serde_json::from_str(&model_json("count:poisson", "[2E0]")).unwrap();
        let ubj = ubjson::tests::encode(&Value::from_json(json));
        let m = read(&ubj, RoundLimit::All).unwrap();
        assert_eq!(m.format, "ubj");
        assert_eq!(m.objective, Objective::Exp);
        assert_eq!(m.base_margin, vec![2.0f32.ln()]);
        assert_eq!(margins(&m, &[[0.0, 0.0]]), vec![2.0f32.ln() + 0.2 + 0.25]);
    }

    #[test]
    fn unsupported_models_are_refusals_and_broken_ones_are_corrupt() {
        let unsupported = [
            model_json("rank:pairwise", "5E-1"),
            model_json("binary:logistic", "5E-1").replace(
                r#""feature_types":["float","float"]"#,
                r#""feature_types":["float","c"]"#,
            ),
            model_json("binary:logistic", "5E-1")
                .replace(r#""split_type":[0,0,0,0,0]"#, r#""split_type":[1,0,0,0,0]"#),
            model_json("binary:logistic", "5E-1")
                .replace(r#""name":"gbtree""#, r#""name":"gblinear""#),
        ];
        for doc in unsupported {
            assert!(
                matches!(
                    read(doc.as_bytes(), RoundLimit::All),
                    Err(Refusal::Unsupported(_))
                ),
                "{doc}"
            );
        }
        assert!(matches!(
            read(b"binf\x00\x00\x00\x00", RoundLimit::All),
            Err(Refusal::Unsupported(m)) if m.contains("legacy")
        ));
        let corrupt_docs = [
            "{\"learner\":".to_owned(),
            "{\"nothing\":1}".to_owned(),
            model_json("binary:logistic", "[5E-1]").replace("[1,3,-1,-1,-1]", "[1,3,-1,-1]"),
            model_json("binary:logistic", "[5E-1]").replace("[1,3,-1,-1,-1]", "[1,0,-1,-1,-1]"),
            model_json("binary:logistic", "[5E-1]").replace(
                r#""split_indices":[0,1,0,0,0]"#,
                r#""split_indices":[0,9,0,0,0]"#,
            ),
            model_json("binary:logistic", "[1.5E0]"),
            model_json("binary:logistic", "[5E-1,5E-1]"),
        ];
        for doc in corrupt_docs {
            assert!(
                matches!(
                    read(doc.as_bytes(), RoundLimit::All),
                    Err(Refusal::Corrupt(_))
                ),
                "{doc}"
            );
        }
        assert!(matches!(
            read(b"{L\x00\x00", RoundLimit::All),
            Err(Refusal::Corrupt(_))
        ));
    }

    #[test]
    fn softmax_and_softprob_match_numpy_conventions() {
        let mut row = vec![1.0f32, 3.0, 3.0];
        assert_eq!(argmax(&row), 1, "ties go to the first");
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[1] == row[2] && row[0] < row[1]);
    }
}
