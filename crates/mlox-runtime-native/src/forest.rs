//! The flat decision-tree forest the boosting libraries' and scikit-learn's tree models are
//! compiled into, and its evaluation.
//!
//! Every node of every tree lives in one vector, children by absolute index, so a prediction
//! walks contiguous memory with no pointer chasing or per-tree allocation. The number type is
//! the library's own (`f32` for XGBoost, `f64` for LightGBM and scikit-learn, whose callers
//! round features through `f32` first as scikit-learn does): features, thresholds and leaf sums
//! stay in that precision end to end, which is what makes the results match the libraries bit
//! for bit rather than approximately. The libraries differ only in how a node decides, and
//! that is data on the node ([`Split`]), not code per library.

use std::fmt::Debug;
use std::ops::{Add, Mul};

/// The floating-point type a forest computes in.
pub trait Real:
    Copy + Debug + PartialOrd + Add<Output = Self> + Mul<Output = Self> + Send + Sync + 'static
{
    const ZERO: Self;
    fn is_nan(self) -> bool;
    fn from_f64(v: f64) -> Self;
    fn from_f32(v: f32) -> Self;
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_i64(v: i64) -> Self {
        v as f32
    }
    fn from_u64(v: u64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn from_i64(v: i64) -> Self {
        v as f64
    }
    fn from_u64(v: u64) -> Self {
        v as f64
    }
}

/// What a split does with a missing (NaN) feature value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// NaN takes the default branch (XGBoost; LightGBM's `missing_type=NaN`).
    Nan,
    /// NaN is read as zero and compared like any value (LightGBM's `missing_type=None`).
    AsZero,
    /// NaN and zero both take the default branch (LightGBM's `missing_type=Zero`).
    ZeroOrNan,
}

/// The comparison that sends a present value left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// `value < threshold` (XGBoost).
    Less,
    /// `value <= threshold` (LightGBM).
    LessEqual,
}

/// One node of a tree as a model file describes it, children indexed within the tree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NodeSpec<T> {
    Leaf(T),
    Split(Split<T>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split<T> {
    pub feature: usize,
    pub threshold: T,
    pub left: usize,
    pub right: usize,
    pub default_left: bool,
    pub missing: Missing,
    pub compare: Compare,
}

const LEAF: u8 = 1;
const DEFAULT_LEFT: u8 = 1 << 1;
const LESS_EQUAL: u8 = 1 << 2;
const NAN_AS_ZERO: u8 = 1 << 3;
const ZERO_IS_MISSING: u8 = 1 << 4;

#[derive(Clone, Copy, Debug)]
struct Node<T> {
    /// The threshold of a split, the output of a leaf.
    value: T,
    feature: u32,
    left: u32,
    right: u32,
    flags: u8,
}

#[derive(Clone, Copy, Debug)]
struct Tree {
    root: u32,
    output: u32,
}

/// Trees whose leaf outputs are summed into `n_outputs` margins per row.
#[derive(Clone, Debug)]
pub struct Forest<T> {
    nodes: Vec<Node<T>>,
    trees: Vec<Tree>,
    n_features: usize,
    n_outputs: usize,
}

impl<T: Real> Forest<T> {
    pub fn new(n_features: usize, n_outputs: usize) -> Self {
        Forest {
            nodes: Vec::new(),
            trees: Vec::new(),
            n_features,
            n_outputs,
        }
    }

    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Appends a tree whose root is `nodes[0]`, adding to margin `output`. Leaf values are
    /// multiplied by `weight` when given (DART's per-tree weights), rounded once in `T` as the
    /// library does. A structure that is not a tree (an index out of range, a node reachable
    /// twice, hence possibly a cycle) or a feature beyond the model's count is refused, so
    /// evaluation can never loop or index out of bounds.
    pub fn push_tree(
        &mut self,
        nodes: &[NodeSpec<T>],
        output: usize,
        weight: Option<T>,
    ) -> Result<(), String> {
        if nodes.is_empty() {
            return Err("a tree has no nodes".into());
        }
        if output >= self.n_outputs {
            return Err(format!(
                "a tree adds to output {output} of {}",
                self.n_outputs
            ));
        }
        let base = self.nodes.len();
        let index = |i: usize| -> Result<u32, String> {
            if i >= nodes.len() {
                return Err(format!(
                    "a child index {i} is beyond the tree's {} nodes",
                    nodes.len()
                ));
            }
            u32::try_from(base + i).map_err(|_| "the model has too many nodes".to_string())
        };
        let mut seen = vec![false; nodes.len()];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("node {i} is reached twice: not a tree"));
            }
            if let NodeSpec::Split(s) = &nodes[i] {
                index(s.left)?;
                index(s.right)?;
                stack.push(s.left);
                stack.push(s.right);
            }
        }
        let mut compiled = Vec::with_capacity(nodes.len());
        for spec in nodes {
            compiled.push(match *spec {
                NodeSpec::Leaf(value) => Node {
                    value: weight.map_or(value, |w| value * w),
                    feature: 0,
                    left: 0,
                    right: 0,
                    flags: LEAF,
                },
                NodeSpec::Split(s) => {
                    if s.feature >= self.n_features {
                        return Err(format!(
                            "a split on feature {} of a model with {}",
                            s.feature, self.n_features
                        ));
                    }
                    let mut flags = 0;
                    if s.default_left {
                        flags |= DEFAULT_LEFT;
                    }
                    if s.compare == Compare::LessEqual {
                        flags |= LESS_EQUAL;
                    }
                    match s.missing {
                        Missing::Nan => {}
                        Missing::AsZero => flags |= NAN_AS_ZERO,
                        Missing::ZeroOrNan => flags |= ZERO_IS_MISSING,
                    }
                    Node {
                        value: s.threshold,
                        // Checked against n_features, which came from a usize the caller
                        // allocates rows of, so it fits.
                        feature: u32::try_from(s.feature).map_err(|_| "feature index overflow")?,
                        left: index(s.left)?,
                        right: index(s.right)?,
                        flags,
                    }
                }
            });
        }
        self.nodes.extend(compiled);
        self.trees.push(Tree {
            root: index(0)?,
            output: output as u32,
        });
        Ok(())
    }

    /// Adds every tree's leaf for one row (`n_features` values) into `out` (`n_outputs`
    /// margins, already holding the base scores). Trees are summed in model order, as the
    /// libraries do, so the rounding of each addition is theirs too.
    #[inline]
    pub fn add_row(&self, row: &[T], out: &mut [T]) {
        debug_assert_eq!(row.len(), self.n_features);
        debug_assert_eq!(out.len(), self.n_outputs);
        for tree in &self.trees {
            let leaf = self.leaf(tree.root, row);
            let slot = &mut out[tree.output as usize];
            *slot = *slot + leaf;
        }
    }

    /// Calls `f` with every tree's leaf value for one row, in model order: for models whose
    /// leaves index a table (class distributions) rather than add up.
    #[inline]
    pub fn for_each_leaf(&self, row: &[T], mut f: impl FnMut(T)) {
        debug_assert_eq!(row.len(), self.n_features);
        for tree in &self.trees {
            f(self.leaf(tree.root, row));
        }
    }

    #[inline]
    fn leaf(&self, root: u32, row: &[T]) -> T {
        let mut node = &self.nodes[root as usize];
        while node.flags & LEAF == 0 {
            let next = if go_left(node, row[node.feature as usize]) {
                node.left
            } else {
                node.right
            };
            node = &self.nodes[next as usize];
        }
        node.value
    }
}

#[inline]
fn go_left<T: Real>(node: &Node<T>, mut x: T) -> bool {
    if x.is_nan() {
        if node.flags & NAN_AS_ZERO == 0 {
            return node.flags & DEFAULT_LEFT != 0;
        }
        x = T::ZERO;
    } else if node.flags & ZERO_IS_MISSING != 0 && x == T::ZERO {
        return node.flags & DEFAULT_LEFT != 0;
    }
    if node.flags & LESS_EQUAL != 0 {
        x <= node.value
    } else {
        x < node.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split<T>(
        feature: usize,
        threshold: T,
        left: usize,
        right: usize,
        default_left: bool,
        missing: Missing,
        compare: Compare,
    ) -> NodeSpec<T> {
        NodeSpec::Split(Split {
            feature,
            threshold,
            left,
            right,
            default_left,
            missing,
            compare,
        })
    }

    /// x0 < 1 ? (x1 < 5 ? 10 : 20) : 30, missing x0 goes right, missing x1 goes left.
    fn xgb_tree() -> Vec<NodeSpec<f32>> {
        vec![
            split(0, 1.0, 1, 2, false, Missing::Nan, Compare::Less),
            split(1, 5.0, 3, 4, true, Missing::Nan, Compare::Less),
            NodeSpec::Leaf(30.0),
            NodeSpec::Leaf(10.0),
            NodeSpec::Leaf(20.0),
        ]
    }

    fn predict<T: Real>(forest: &Forest<T>, row: &[T], base: T) -> T {
        let mut out = vec![base; forest.n_outputs()];
        forest.add_row(row, &mut out);
        out[0]
    }

    #[test]
    fn strict_comparison_and_default_directions() {
        let mut forest = Forest::new(2, 1);
        forest.push_tree(&xgb_tree(), 0, None).unwrap();
        let nan = f32::NAN;
        assert_eq!(predict(&forest, &[0.0, 0.0], 0.0), 10.0);
        assert_eq!(predict(&forest, &[0.0, 5.0], 0.0), 20.0, "5 < 5 is false");
        assert_eq!(predict(&forest, &[1.0, 0.0], 0.0), 30.0, "1 < 1 is false");
        assert_eq!(
            predict(&forest, &[nan, 0.0], 0.0),
            30.0,
            "x0 missing goes right"
        );
        assert_eq!(
            predict(&forest, &[0.0, nan], 0.0),
            10.0,
            "x1 missing goes left"
        );
        assert_eq!(
            predict(&forest, &[-1.0, 7.0], 0.5),
            20.5,
            "the base is added"
        );
    }

    #[test]
    fn trees_sum_into_their_outputs_with_weights() {
        let mut forest = Forest::new(2, 2);
        forest.push_tree(&xgb_tree(), 0, None).unwrap();
        forest.push_tree(&xgb_tree(), 1, Some(0.5)).unwrap();
        forest.push_tree(&[NodeSpec::Leaf(1.0)], 1, None).unwrap();
        let mut out = [100.0, 200.0];
        forest.add_row(&[0.0, 0.0], &mut out);
        assert_eq!(out, [110.0, 206.0]);
        assert_eq!(forest.n_trees(), 3);
    }

    #[test]
    fn lightgbm_missing_types() {
        // x0 <= 0.5 ? -1 : 1 under each missing type, default left.
        let tree = |missing| {
            vec![
                split(0, 0.5f64, 1, 2, true, missing, Compare::LessEqual),
                NodeSpec::Leaf(-1.0),
                NodeSpec::Leaf(1.0),
            ]
        };
        let eval = |missing, x: f64| {
            let mut forest = Forest::new(1, 1);
            forest.push_tree(&tree(missing), 0, None).unwrap();
            predict(&forest, &[x], 0.0)
        };
        assert_eq!(eval(Missing::Nan, 0.5), -1.0, "<= sends equal values left");
        assert_eq!(eval(Missing::Nan, f64::NAN), -1.0);
        assert_eq!(eval(Missing::Nan, 0.0), -1.0, "zero is a value under NaN");

        // None: NaN becomes zero, which is <= 0.5, so left; default_left is ignored.
        let mut forest = Forest::new(1, 1);
        forest
            .push_tree(
                &[
                    split(0, -0.5f64, 1, 2, true, Missing::AsZero, Compare::LessEqual),
                    NodeSpec::Leaf(-1.0),
                    NodeSpec::Leaf(1.0),
                ],
                0,
                None,
            )
            .unwrap();
        assert_eq!(
            predict(&forest, &[f64::NAN], 0.0),
            1.0,
            "NaN reads as 0 > -0.5"
        );

        // Zero: zero and NaN take the default branch even where the comparison disagrees.
        let mut forest = Forest::new(1, 1);
        forest
            .push_tree(
                &[
                    split(
                        0,
                        -0.5f64,
                        1,
                        2,
                        true,
                        Missing::ZeroOrNan,
                        Compare::LessEqual,
                    ),
                    NodeSpec::Leaf(-1.0),
                    NodeSpec::Leaf(1.0),
                ],
                0,
                None,
            )
            .unwrap();
        assert_eq!(predict(&forest, &[0.0], 0.0), -1.0);
        assert_eq!(predict(&forest, &[-0.0], 0.0), -1.0);
        assert_eq!(predict(&forest, &[f64::NAN], 0.0), -1.0);
        assert_eq!(predict(&forest, &[0.25], 0.0), 1.0);
        assert_eq!(predict(&forest, &[-0.75], 0.0), -1.0);
    }

    #[test]
    fn structures_that_are_not_trees_are_refused() {
        let mut forest = Forest::<f32>::new(2, 1);
        let cycle = [
            split(0, 1.0, 1, 2, false, Missing::Nan, Compare::Less),
            split(0, 1.0, 0, 2, false, Missing::Nan, Compare::Less),
            NodeSpec::Leaf(1.0),
        ];
        assert!(forest.push_tree(&cycle, 0, None).is_err());
        let shared = [
            split(0, 1.0, 1, 1, false, Missing::Nan, Compare::Less),
            NodeSpec::Leaf(1.0),
        ];
        assert!(forest.push_tree(&shared, 0, None).is_err());
        let out_of_range = [
            split(0, 1.0, 1, 7, false, Missing::Nan, Compare::Less),
            NodeSpec::Leaf(1.0),
        ];
        assert!(forest.push_tree(&out_of_range, 0, None).is_err());
        let bad_feature = [
            split(2, 1.0, 1, 2, false, Missing::Nan, Compare::Less),
            NodeSpec::Leaf(1.0),
            NodeSpec::Leaf(2.0),
        ];
        assert!(forest.push_tree(&bad_feature, 0, None).is_err());
        assert!(forest.push_tree(&[], 0, None).is_err());
        assert!(forest.push_tree(&[NodeSpec::Leaf(1.0)], 1, None).is_err());
        assert_eq!(forest.n_trees(), 0, "a refused tree leaves nothing behind");
        // Unreachable nodes (XGBoost's deleted ones) are allowed.
        let with_orphan = [
            split(0, 1.0, 1, 2, false, Missing::Nan, Compare::Less),
            NodeSpec::Leaf(1.0),
            NodeSpec::Leaf(2.0),
            NodeSpec::Leaf(99.0),
        ];
        forest.push_tree(&with_orphan, 0, None).unwrap();
        assert_eq!(predict(&forest, &[5.0, 0.0], 0.0), 2.0);
    }
}
