//! Turning a skops object tree into a [`Model`]: which scikit-learn classes are understood,
//! which of their fitted attributes matter, and which settings make an estimator one this
//! runtime does not reproduce (refused as [`Refusal::Unsupported`], so the Python runtime
//! serves it).

use std::collections::HashMap;

use super::model::{
    Branch, Categories, Estimator, Linear, LinearOutput, Model, Step, TreeOutput, Trees,
};
use mlox_runtime_native::Refusal;
use mlox_runtime_native::forest::{Compare, Forest, Missing, NodeSpec, Split};
use mlox_runtime_native::input::{Features, Naming};
use mlox_runtime_native::skops::{Attrs, Data, Labels, Node, Scalar, Skops, corrupt, unsupported};

/// Reads the estimator in a skops archive; returns it and a one-line description.
pub(crate) fn read(bytes: &[u8]) -> Result<(Model, String), Refusal> {
    let skops = Skops::open(bytes)?;
    let root = skops.root();
    let mut chain = Vec::new();
    flatten(root, &mut chain)?;
    let Some((last, transformers)) = chain.split_last() else {
        return Err(unsupported("an empty pipeline"));
    };
    let first = chain[0].attrs()?;
    let count = match first.scalar("n_features_in_")? {
        Some(Scalar::Int(n)) if n >= 0 => n as usize,
        _ => return Err(unsupported("an estimator without n_features_in_")),
    };
    let names = first.feature_names()?.unwrap_or_default();
    if !names.is_empty() && names.len() != count {
        return Err(corrupt("feature_names_in_ and n_features_in_ disagree"));
    }
    let mut steps = Vec::with_capacity(transformers.len());
    let mut width = count;
    for t in transformers {
        let step = step(*t, width)?;
        width = step.width_out(width);
        steps.push(step);
    }
    let (estimator, what) = estimator(*last)?;
    let n = match &estimator {
        Estimator::Linear(l) => l.n,
        Estimator::Trees(t) => t.n,
    };
    if n != width {
        return Err(corrupt(format!(
            "the estimator takes {n} features but the steps before it make {width}"
        )));
    }
    let mut description = String::from("scikit-learn ");
    if root.class() == "Pipeline" {
        let kinds: Vec<&str> = chain.iter().map(|n| n.class()).collect();
        description.push_str(&format!("Pipeline({})", kinds.join(", ")));
    } else {
        description.push_str(root.class());
    }
    description.push_str(&format!(", {what}, over {count} input columns"));
    Ok((
        Model {
            features: Features::new(count, names, Naming::Required),
            steps,
            estimator,
        },
        description,
    ))
}

/// The steps of a pipeline, nested pipelines inlined and `passthrough` steps (including the
/// identity FunctionTransformer a ColumnTransformer fits for them) dropped.
fn flatten<'a>(node: Node<'a>, out: &mut Vec<Node<'a>>) -> Result<(), Refusal> {
    if node.type_name() == "sklearn.preprocessing._function_transformer.FunctionTransformer" {
        if node.attrs()?.is_none("func") {
            return Ok(());
        }
        return Err(unsupported("a FunctionTransformer with a function"));
    }
    if node.type_name() != "sklearn.pipeline.Pipeline" {
        out.push(node);
        return Ok(());
    }
    let attrs = node.attrs()?;
    if !attrs.is_none("transform_input") {
        return Err(unsupported("a Pipeline with transform_input"));
    }
    for pair in attrs.req("steps")?.items()? {
        let items = pair.items()?;
        let [_, step] = items[..] else {
            return Err(corrupt("a pipeline step is not a (name, estimator) pair"));
        };
        if step.is_json() {
            match step.scalar()? {
                Scalar::None => continue,
                Scalar::Str(s) if s == "passthrough" => continue,
                other => return Err(unsupported(format!("a pipeline step {other:?}"))),
            }
        }
        flatten(step, out)?;
    }
    Ok(())
}

fn floats(attrs: &Attrs<'_>, name: &str, len: usize) -> Result<Vec<f64>, Refusal> {
    let v = attrs.req(name)?.array()?.into_f64(name)?;
    if v.len() != len {
        return Err(corrupt(format!("{name} has {} values for {len}", v.len())));
    }
    Ok(v)
}

/// An optional per-column array (`None` when the attribute is `None`).
fn maybe_floats(attrs: &Attrs<'_>, name: &str, len: usize) -> Result<Option<Vec<f64>>, Refusal> {
    if attrs.is_none(name) {
        return Ok(None);
    }
    floats(attrs, name, len).map(Some)
}

fn step(node: Node<'_>, width: usize) -> Result<Step, Refusal> {
    let type_name = node.type_name();
    let attrs = node.attrs()?;
    if let Some(Scalar::Int(n)) = attrs.scalar("n_features_in_")?
        && n as usize != width
    {
        return Err(corrupt(format!(
            "{type_name} takes {n} columns but receives {width}"
        )));
    }
    Ok(match type_name.as_str() {
        "sklearn.preprocessing._data.StandardScaler" => {
            let offset = if attrs.flag("with_mean", true)? {
                maybe_floats(&attrs, "mean_", width)?
            } else {
                None
            };
            let divide = if attrs.flag("with_std", true)? {
                maybe_floats(&attrs, "scale_", width)?
            } else {
                None
            };
            Step::Scale { offset, divide }
        }
        "sklearn.preprocessing._data.RobustScaler" => {
            let offset = if attrs.flag("with_centering", true)? {
                maybe_floats(&attrs, "center_", width)?
            } else {
                None
            };
            let divide = if attrs.flag("with_scaling", true)? {
                maybe_floats(&attrs, "scale_", width)?
            } else {
                None
            };
            Step::Scale { offset, divide }
        }
        "sklearn.preprocessing._data.MinMaxScaler" => {
            let clip = if attrs.flag("clip", false)? {
                let range = attrs.req("feature_range")?.items()?;
                let bounds = range
                    .iter()
                    .map(|b| b.scalar()?.as_f64().ok_or_else(|| corrupt("feature_range")))
                    .collect::<Result<Vec<_>, _>>()?;
                let [lo, hi] = bounds[..] else {
                    return Err(corrupt("feature_range is not a pair"));
                };
                Some((lo, hi))
            } else {
                None
            };
            Step::MinMax {
                scale: floats(&attrs, "scale_", width)?,
                min: floats(&attrs, "min_", width)?,
                clip,
            }
        }
        "sklearn.impute._base.SimpleImputer" => {
            match attrs.scalar("missing_values")? {
                Some(Scalar::Float(f)) if f.is_nan() => {}
                other => {
                    return Err(unsupported(format!(
                        "a SimpleImputer for missing_values={other:?}"
                    )));
                }
            }
            if attrs.flag("add_indicator", false)? {
                return Err(unsupported("a SimpleImputer with add_indicator"));
            }
            if let Some(dtype) = attrs.get("_fit_dtype")
                && dtype.loader() == "DTypeNode"
            {
                let sample = dtype
                    .raw_content()
                    .map(|c| Node::array(&dtype.with(c)))
                    .transpose()?;
                if !matches!(sample.map(|a| a.data), Some(Data::F64(_))) {
                    return Err(unsupported("a SimpleImputer fitted on non-float64 columns"));
                }
            }
            let fill = imputer_statistics(&attrs, width)?;
            let keep_empty = attrs.flag("keep_empty_features", false)?;
            if keep_empty && fill.iter().any(|f| f.is_nan()) {
                return Err(unsupported("a SimpleImputer keeping empty features"));
            }
            let keep = (0..width).filter(|&j| !fill[j].is_nan()).collect();
            Step::Impute { fill, keep }
        }
        "sklearn.preprocessing._encoders.OneHotEncoder" => {
            if !attrs.is_none("drop_idx_") {
                return Err(unsupported("a OneHotEncoder that drops categories"));
            }
            if attrs.flag("_infrequent_enabled", false)? {
                return Err(unsupported(
                    "a OneHotEncoder grouping infrequent categories",
                ));
            }
            let error_unknown = match attrs.string("handle_unknown")?.as_deref() {
                Some("error") => true,
                Some("ignore" | "infrequent_if_exist") => false,
                other => {
                    return Err(unsupported(format!(
                        "a OneHotEncoder with handle_unknown={other:?}"
                    )));
                }
            };
            Step::OneHot {
                cats: categories(&attrs, width)?,
                error_unknown,
            }
        }
        "sklearn.preprocessing._encoders.OrdinalEncoder" => {
            if attrs.flag("_infrequent_enabled", false)? {
                return Err(unsupported(
                    "an OrdinalEncoder grouping infrequent categories",
                ));
            }
            let unknown = match attrs.string("handle_unknown")?.as_deref() {
                Some("error") => None,
                Some("use_encoded_value") => Some(
                    attrs
                        .req("unknown_value")?
                        .scalar()?
                        .as_f64()
                        .ok_or_else(|| unsupported("a non-numeric unknown_value"))?,
                ),
                other => {
                    return Err(unsupported(format!(
                        "an OrdinalEncoder with handle_unknown={other:?}"
                    )));
                }
            };
            let missing = match attrs.scalar("encoded_missing_value")? {
                None => f64::NAN,
                Some(s) => s
                    .as_f64()
                    .ok_or_else(|| unsupported("a non-numeric encoded_missing_value"))?,
            };
            Step::Ordinal {
                cats: categories(&attrs, width)?,
                unknown,
                missing,
            }
        }
        "sklearn.compose._column_transformer.ColumnTransformer" => columns(&attrs, width)?,
        other => {
            return Err(unsupported(format!("the scikit-learn transformer {other}")));
        }
    })
}

/// `statistics_`: floats, or for the `constant` strategy an object array of numbers.
fn imputer_statistics(attrs: &Attrs<'_>, width: usize) -> Result<Vec<f64>, Refusal> {
    let array = attrs.req("statistics_")?.array()?;
    let values = match array.data {
        Data::F64(v) => v,
        Data::Nodes(nodes) => nodes
            .iter()
            .map(|n| {
                n.scalar()?
                    .as_f64()
                    .ok_or_else(|| unsupported("a SimpleImputer of non-numeric columns"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(unsupported("a SimpleImputer of non-numeric columns")),
    };
    if values.len() != width {
        return Err(corrupt("statistics_ does not match the columns"));
    }
    Ok(values)
}

fn categories(attrs: &Attrs<'_>, width: usize) -> Result<Vec<Categories>, Refusal> {
    let lists = attrs.req("categories_")?.items()?;
    if lists.len() != width {
        return Err(corrupt("categories_ does not match the columns"));
    }
    lists
        .iter()
        .map(|l| {
            let array = l.array()?;
            Ok(match array.data {
                Data::F64(v) => Categories::Num(v),
                Data::I64(v) => Categories::Num(v.iter().map(|&i| i as f64).collect()),
                Data::I32(v) => Categories::Num(v.iter().map(|&i| f64::from(i)).collect()),
                Data::Str(v) => text_categories(v.into_iter().map(Some).collect()),
                Data::Nodes(nodes) => {
                    let items = nodes
                        .iter()
                        .map(|n| match n.scalar()? {
                            Scalar::Str(s) => Ok(Some(s)),
                            Scalar::None => Ok(None),
                            Scalar::Float(f) if f.is_nan() => Ok(None),
                            other => Err(unsupported(format!(
                                "categories of mixed types ({other:?})"
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    text_categories(items)
                }
                _ => return Err(unsupported("categories of an unsupported numpy dtype")),
            })
        })
        .collect()
}

fn text_categories(items: Vec<Option<String>>) -> Categories {
    let len = items.len();
    let mut index = HashMap::with_capacity(len);
    let mut missing = None;
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Some(s) => {
                index.entry(s).or_insert(i);
            }
            None => missing = missing.or(Some(i)),
        }
    }
    Categories::Text {
        index,
        missing,
        len,
    }
}

fn columns(attrs: &Attrs<'_>, width: usize) -> Result<Step, Refusal> {
    if !attrs.is_none("transformer_weights") {
        return Err(unsupported("a ColumnTransformer with transformer_weights"));
    }
    let indices = attrs.req("_transformer_to_input_indices")?.dict()?;
    let outputs = attrs.req("output_indices_")?.dict()?;
    let mut branches = Vec::new();
    let mut offset = 0;
    for entry in attrs.req("transformers_")?.items()? {
        let items = entry.items()?;
        let [name, transformer, _] = items[..] else {
            return Err(corrupt("a ColumnTransformer entry is not a triple"));
        };
        let Scalar::Str(name) = name.scalar()? else {
            return Err(corrupt("a ColumnTransformer entry has no name"));
        };
        let inputs: Vec<usize> = indices
            .req(&name)?
            .items()?
            .iter()
            .map(|i| match i.scalar()? {
                Scalar::Int(i) if (i as usize) < width && i >= 0 => Ok(i as usize),
                _ => Err(corrupt("a column index is out of range")),
            })
            .collect::<Result<_, _>>()?;
        let mut steps = Vec::new();
        if transformer.is_json() {
            match transformer.scalar()? {
                Scalar::Str(s) if s == "drop" => continue,
                Scalar::Str(s) if s == "passthrough" => {}
                other => return Err(unsupported(format!("a column transformer {other:?}"))),
            }
        } else {
            let mut chain = Vec::new();
            flatten(transformer, &mut chain)?;
            let mut w = inputs.len();
            for t in chain {
                let s = step(t, w)?;
                w = s.width_out(w);
                steps.push(s);
            }
        }
        if inputs.is_empty() {
            continue;
        }
        let branch = Branch { inputs, steps };
        let w = branch
            .steps
            .iter()
            .fold(branch.inputs.len(), |w, s| s.width_out(w));
        // The fitted output slices confirm the widths computed here.
        if let Some(slice) = outputs.get(&name)
            && slice.loader() == "SliceNode"
        {
            let bounds = (slice_bound(slice, "start"), slice_bound(slice, "stop"));
            if bounds != (Some(offset), Some(offset + w)) {
                return Err(corrupt(format!(
                    "the ColumnTransformer's {name} output is {bounds:?}, not {offset}..{}",
                    offset + w
                )));
            }
        }
        offset += w;
        branches.push(branch);
    }
    Ok(Step::Columns { branches })
}

fn slice_bound(slice: Node<'_>, key: &str) -> Option<usize> {
    slice.raw_content()?.get(key)?.as_u64().map(|v| v as usize)
}

/// The classes of a classifier.
fn classes(attrs: &Attrs<'_>) -> Result<Labels, Refusal> {
    attrs.req("classes_")?.labels()
}

fn n_features(attrs: &Attrs<'_>) -> Result<usize, Refusal> {
    match attrs.scalar("n_features_in_")? {
        Some(Scalar::Int(n)) if n >= 0 => Ok(n as usize),
        _ => Err(corrupt("the estimator has no n_features_in_")),
    }
}

const LINEAR_REGRESSORS: &[&str] = &[
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._ridge.RidgeCV",
    "sklearn.linear_model._coordinate_descent.Lasso",
    "sklearn.linear_model._coordinate_descent.LassoCV",
    "sklearn.linear_model._coordinate_descent.ElasticNet",
    "sklearn.linear_model._coordinate_descent.ElasticNetCV",
    "sklearn.linear_model._stochastic_gradient.SGDRegressor",
];

const LINEAR_CLASSIFIERS: &[&str] = &[
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
];

fn estimator(node: Node<'_>) -> Result<(Estimator, String), Refusal> {
    let type_name = node.type_name();
    let attrs = node.attrs()?;
    let class = node.class();
    if LINEAR_REGRESSORS.contains(&type_name.as_str()) {
        let linear = linear(&attrs, None)?;
        let what = format!("{} target(s)", linear.k);
        return Ok((Estimator::Linear(linear), what));
    }
    if LINEAR_CLASSIFIERS.contains(&type_name.as_str()) {
        let classes = classes(&attrs)?;
        let linear = linear(&attrs, Some(classes))?;
        let what = format!("{} score(s)", linear.k);
        return Ok((Estimator::Linear(linear), what));
    }
    let n = n_features(&attrs);
    let trees = match type_name.as_str() {
        "sklearn.tree._classes.DecisionTreeClassifier"
        | "sklearn.tree._classes.ExtraTreeClassifier" => {
            let nan_ok = class == "DecisionTreeClassifier"
                || attrs.string("splitter")?.as_deref() == Some("random");
            vote(&[node], n?, nan_ok, false, classes(&attrs)?)?
        }
        "sklearn.tree._classes.DecisionTreeRegressor"
        | "sklearn.tree._classes.ExtraTreeRegressor" => {
            let nan_ok = class == "DecisionTreeRegressor"
                || attrs.string("splitter")?.as_deref() == Some("random");
            mean(&[node], n?, nan_ok, false)?
        }
        "sklearn.ensemble._forest.RandomForestClassifier"
        | "sklearn.ensemble._forest.ExtraTreesClassifier" => {
            let members = attrs.req("estimators_")?.items()?;
            vote(&members, n?, true, true, classes(&attrs)?)?
        }
        "sklearn.ensemble._forest.RandomForestRegressor"
        | "sklearn.ensemble._forest.ExtraTreesRegressor" => {
            let members = attrs.req("estimators_")?.items()?;
            mean(&members, n?, true, true)?
        }
        "sklearn.ensemble._gb.GradientBoostingClassifier"
        | "sklearn.ensemble._gb.GradientBoostingRegressor" => boost(&attrs, n?, class)?,
        other => {
            return Err(unsupported(format!("the scikit-learn estimator {other}")));
        }
    };
    let what = format!("{} trees", trees.forest.n_trees());
    Ok((Estimator::Trees(trees), what))
}

fn linear(attrs: &Attrs<'_>, classes: Option<Labels>) -> Result<Linear, Refusal> {
    let coef = attrs.req("coef_")?.array()?;
    let two_d = coef.shape.len() == 2;
    let (k, n) = match coef.shape[..] {
        [n] => (1, n),
        [k, n] => (k, n),
        _ => return Err(corrupt("coef_ is not a vector or matrix")),
    };
    let coef = coef.into_f64("coef_")?;
    let intercept_node = attrs.req("intercept_")?;
    let intercept = if intercept_node.is_json() {
        vec![intercept_node.number()?; k]
    } else {
        let array = intercept_node.array()?;
        let values = match array.data {
            Data::F64(v) => v,
            _ => array.into_f64("intercept_")?,
        };
        match values.len() {
            1 => vec![values[0]; k],
            len if len == k => values,
            _ => return Err(corrupt("intercept_ does not match coef_")),
        }
    };
    if let Some(Scalar::Int(f)) = attrs.scalar("n_features_in_")?
        && f as usize != n
    {
        return Err(corrupt("coef_ does not match n_features_in_"));
    }
    let output = match classes {
        None => LinearOutput::Values { two_d },
        Some(classes) => {
            let fits = (k == 1 && classes.len() == 2) || (k == classes.len() && k > 2);
            if !fits {
                return Err(unsupported(format!(
                    "a linear classifier with {k} score(s) for {} classes",
                    classes.len()
                )));
            }
            LinearOutput::Labels(classes)
        }
    };
    Ok(Linear {
        coef,
        intercept,
        n,
        k,
        output,
    })
}

/// A fitted `sklearn.tree._tree.Tree`: its nodes and their `value` rows (`width` numbers each).
struct RawTree {
    left: Vec<i64>,
    right: Vec<i64>,
    feature: Vec<i64>,
    threshold: Vec<f64>,
    missing_left: Vec<u8>,
    values: Vec<f64>,
    width: usize,
}

fn raw_tree(estimator: Node<'_>) -> Result<RawTree, Refusal> {
    let attrs = estimator.attrs()?;
    if let Some(Scalar::Int(outputs)) = attrs.scalar("n_outputs_")?
        && outputs != 1
    {
        return Err(unsupported("multi-output trees"));
    }
    let tree = attrs.req("tree_")?;
    if tree.loader() != "TreeNode" {
        return Err(unsupported("a tree not stored as a scikit-learn Tree"));
    }
    let tree = tree.attrs()?;
    let nodes = tree.req("nodes")?.array()?;
    let Data::Records(records) = nodes.data else {
        return Err(corrupt("tree nodes are not a record array"));
    };
    let values = tree.req("values")?.array()?;
    let count = nodes.shape.first().copied().unwrap_or(0);
    let width = match values.shape[..] {
        [c, 1, w] if c == count => w,
        _ => return Err(unsupported("tree values of an unexpected shape")),
    };
    Ok(RawTree {
        left: records.i64s("left_child")?,
        right: records.i64s("right_child")?,
        feature: records.i64s("feature")?,
        threshold: records.f64s("threshold")?,
        missing_left: records.u8s("missing_go_to_left")?,
        values: values.into_f64("tree values")?,
        width,
    })
}

impl RawTree {
    /// The tree as forest nodes, each leaf's value given by `leaf(node index)`.
    fn specs(&self, mut leaf: impl FnMut(usize) -> f64) -> Result<Vec<NodeSpec<f64>>, Refusal> {
        let index = |i: i64| usize::try_from(i).map_err(|_| corrupt("a negative child index"));
        (0..self.left.len())
            .map(|i| {
                // scikit-learn marks leaves with TREE_LEAF (-1) children.
                if self.left[i] == -1 {
                    return Ok(NodeSpec::Leaf(leaf(i)));
                }
                Ok(NodeSpec::Split(Split {
                    feature: usize::try_from(self.feature[i])
                        .map_err(|_| corrupt("a negative feature index"))?,
                    threshold: self.threshold[i],
                    left: index(self.left[i])?,
                    right: index(self.right[i])?,
                    default_left: self.missing_left[i] != 0,
                    missing: Missing::Nan,
                    compare: Compare::LessEqual,
                }))
            })
            .collect()
    }
}

fn push(
    forest: &mut Forest<f64>,
    specs: &[NodeSpec<f64>],
    output: usize,
    weight: Option<f64>,
) -> Result<(), Refusal> {
    forest
        .push_tree(specs, output, weight)
        .map_err(|e| corrupt(format!("a tree is malformed: {e}")))
}

fn mean(members: &[Node<'_>], n: usize, nan_ok: bool, average: bool) -> Result<Trees, Refusal> {
    let mut forest = Forest::new(n, 1);
    for member in members {
        let tree = raw_tree(*member)?;
        if tree.width != 1 {
            return Err(corrupt("a regression tree with several values per leaf"));
        }
        let specs = tree.specs(|i| tree.values[i])?;
        push(&mut forest, &specs, 0, None)?;
    }
    Ok(Trees {
        forest,
        n,
        nan_ok,
        output: TreeOutput::Mean {
            divide: average.then_some(members.len() as f64),
        },
    })
}

fn vote(
    members: &[Node<'_>],
    n: usize,
    nan_ok: bool,
    average: bool,
    classes: Labels,
) -> Result<Trees, Refusal> {
    let k = classes.len();
    let mut forest = Forest::new(n, 1);
    let mut table = Vec::new();
    for member in members {
        let tree = raw_tree(*member)?;
        if tree.width < k {
            return Err(corrupt("a tree has fewer class values than the classes"));
        }
        let specs = tree.specs(|i| {
            let at = table.len();
            table.extend_from_slice(&tree.values[i * tree.width..i * tree.width + k]);
            at as f64
        })?;
        push(&mut forest, &specs, 0, None)?;
    }
    Ok(Trees {
        forest,
        n,
        nan_ok,
        output: TreeOutput::Vote {
            table,
            k,
            divide: average.then_some(members.len() as f64),
            classes,
        },
    })
}

fn boost(attrs: &Attrs<'_>, n: usize, class: &str) -> Result<Trees, Refusal> {
    let learning_rate = attrs.req("learning_rate")?.number()?;
    let stages = attrs.req("estimators_")?.array()?;
    let Data::Nodes(rows) = stages.data else {
        return Err(corrupt("estimators_ is not an array of trees"));
    };
    let k = match stages.shape[..] {
        [_, k] if k >= 1 => k,
        _ => return Err(corrupt("estimators_ is not a 2-D array")),
    };
    let classifier = class == "GradientBoostingClassifier";
    let classes = if classifier {
        Some(classes(attrs)?)
    } else {
        None
    };
    let init = attrs.req("init_")?;
    let base = if init.is_json() {
        match init.scalar()? {
            Scalar::Str(s) if s == "zero" => vec![0.0; k],
            other => return Err(unsupported(format!("a gradient boosting init {other:?}"))),
        }
    } else {
        let init_attrs = init.attrs()?;
        match (init.type_name().as_str(), &classes) {
            ("sklearn.dummy.DummyRegressor", None) => {
                let constant = init_attrs
                    .req("constant_")?
                    .array()?
                    .into_f64("constant_")?;
                if constant.len() != 1 || k != 1 {
                    return Err(unsupported("a multi-output DummyRegressor init"));
                }
                constant
            }
            ("sklearn.dummy.DummyClassifier", Some(classes)) => {
                if init_attrs
                    .string("_strategy")?
                    .or(init_attrs.string("strategy")?)
                    != Some("prior".into())
                {
                    return Err(unsupported("a DummyClassifier init other than 'prior'"));
                }
                let prior = floats(&init_attrs, "class_prior_", classes.len())?;
                let loss = attrs.string("loss")?;
                prior_margins(&prior, k, loss.as_deref())?
            }
            (other, _) => {
                return Err(unsupported(format!("a gradient boosting init {other}")));
            }
        }
    };
    let mut forest = Forest::new(n, k);
    for row in rows {
        let members = row.items()?;
        if members.len() != k {
            return Err(corrupt("a boosting stage has the wrong number of trees"));
        }
        for (c, member) in members.iter().enumerate() {
            let tree = raw_tree(*member)?;
            let specs = tree.specs(|i| tree.values[i * tree.width])?;
            push(&mut forest, &specs, c, Some(learning_rate))?;
        }
    }
    Ok(Trees {
        forest,
        n,
        nan_ok: false,
        output: TreeOutput::Boost { base, classes },
    })
}

/// The raw predictions of a `prior` DummyClassifier under the loss's link: the logit of the
/// positive class (half of it for the exponential loss), or the log of each class's prior over
/// their geometric mean.
fn prior_margins(prior: &[f64], k: usize, loss: Option<&str>) -> Result<Vec<f64>, Refusal> {
    let eps = f64::EPSILON;
    let clip = |p: f64| p.clamp(eps, 1.0 - eps);
    match (k, loss) {
        (1, Some("log_loss")) if prior.len() == 2 => {
            let p = clip(prior[1]);
            Ok(vec![(p / (1.0 - p)).ln()])
        }
        (1, Some("exponential")) if prior.len() == 2 => {
            let p = clip(prior[1]);
            Ok(vec![0.5 * (p / (1.0 - p)).ln()])
        }
        (k, Some("log_loss")) if k == prior.len() && k > 2 => {
            let p: Vec<f64> = prior.iter().map(|&p| clip(p)).collect();
            let mean_log = p.iter().map(|p| p.ln()).sum::<f64>() / k as f64;
            let gm = mean_log.exp();
            Ok(p.iter().map(|p| (p / gm).ln()).collect())
        }
        _ => Err(unsupported(format!(
            "gradient boosting with loss {loss:?} over {k} margin(s)"
        ))),
    }
}

#[cfg(test)]
mod tests;
