//! How strongly two trace filters go together: normalized pointwise mutual information (NPMI)
//! over the 2×2 table of traces matching one filter, the other, both or neither, computed as
//! MLflow computes it, with and without Jeffreys-prior smoothing.

/// Added to every cell of the table for the smoothed value.
const JEFFREYS_PRIOR: f64 = 0.5;

/// Trace counts of one correlation: all traces searched, those matching each filter and those
/// matching both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub total: i64,
    pub filter1: i64,
    pub filter2: i64,
    pub joint: i64,
}

/// NPMI unsmoothed and smoothed: NaN where undefined (no traces, or a filter matching none),
/// -1 unsmoothed when both filters match traces but never the same one.
pub fn npmi(counts: Counts) -> (f64, f64) {
    let Counts {
        total,
        filter1,
        filter2,
        joint,
    } = counts;
    if total <= 0 || filter1 == 0 || filter2 == 0 {
        return (f64::NAN, f64::NAN);
    }
    let n11 = joint;
    let n10 = filter1 - joint;
    let n01 = filter2 - joint;
    let n00 = total - filter1 - filter2 + joint;
    if n11.min(n10).min(n01).min(n00) < 0 {
        return (f64::NAN, f64::NAN);
    }
    let cells = [n11, n10, n01, n00].map(|n| n as f64);
    let unsmoothed = if joint == 0 {
        -1.0
    } else {
        npmi_of_cells(cells, 0.0)
    };
    (unsmoothed, npmi_of_cells(cells, JEFFREYS_PRIOR))
}

fn npmi_of_cells([n11, n10, n01, n00]: [f64; 4], smoothing: f64) -> f64 {
    let (s11, s10, s01, s00) = (
        n11 + smoothing,
        n10 + smoothing,
        n01 + smoothing,
        n00 + smoothing,
    );
    let total = s11 + s10 + s01 + s00;
    let (n1, n2) = (s11 + s10, s11 + s01);
    if n1 <= 0.0 || n2 <= 0.0 || s11 <= 0.0 {
        return f64::NAN;
    }
    if n10 == 0.0 && n01 == 0.0 && n00 == 0.0 {
        return 1.0;
    }
    let pmi = (s11.ln() + total.ln()) - (n1.ln() + n2.ln());
    let denominator = -(s11.ln() - total.ln());
    (pmi / denominator).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: i64, filter1: i64, filter2: i64, joint: i64) -> Counts {
        Counts {
            total,
            filter1,
            filter2,
            joint,
        }
    }

    #[test]
    fn filters_that_go_together_score_high() {
        let (raw, smoothed) = npmi(counts(10, 6, 7, 6));
        assert!(0.6 < raw && raw < 0.8, "{raw}");
        assert!(smoothed.is_finite());
        assert!(npmi(counts(10, 4, 3, 3)).0 > 0.5);
    }

    #[test]
    fn undefined_and_disjoint_cases_follow_mlflow() {
        assert!(npmi(counts(10, 0, 7, 0)).0.is_nan());
        assert!(npmi(counts(0, 0, 0, 0)).1.is_nan());
        assert_eq!(npmi(counts(10, 3, 4, 0)).0, -1.0);
        assert_eq!(npmi(counts(5, 5, 5, 5)).0, 1.0);
        // Impossible tables are undefined, not a panic.
        assert!(npmi(counts(3, 5, 5, 1)).0.is_nan());
    }
}
