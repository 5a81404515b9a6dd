//! Budget policies of the AI gateway (MLflow 3's `/gateway/budgets/*`): a limit in USD over a
//! fixed window of time, for every call (`GLOBAL`, `WORKSPACE`), one endpoint (`ENDPOINT`) or
//! one signed-in user (`USER`), that either alerts once per window (`ALERT`, the
//! `budget_policy.exceeded` webhook event) or refuses calls until the window ends (`REJECT`).
//!
//! This module holds the policy as MLflow's API carries it, MLflow's rules for its fields, the
//! windows (aligned to the epoch as MLflow aligns them, so every replica and MLflow itself
//! agree on where a window starts) and the words a refused call is answered with. Keeping the
//! spend and calling providers belong to other crates.

use serde::Serialize;

use crate::trace_info::{civil_date, days_from_civil};
use crate::{Error, Result};

/// The workspace every request belongs to: mlox has one.
pub const DEFAULT_WORKSPACE: &str = "default";

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the proto's order (number 1 first).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The proto enum number (0 is the unset value).
            pub fn from_number(n: i64) -> Option<$name> {
                usize::try_from(n).ok().and_then(|n| n.checked_sub(1)).and_then(|i| $name::ALL.get(i).copied())
            }
        }
    };
}

wire_enum!(
    /// What a budget is counted in.
    BudgetUnit { Usd = "USD" }
);
wire_enum!(
    /// The unit of a budget window's length.
    DurationUnit {
        Minutes = "MINUTES",
        Hours = "HOURS",
        Days = "DAYS",
        Weeks = "WEEKS",
        Months = "MONTHS",
    }
);
wire_enum!(
    /// Which calls a budget counts.
    TargetScope {
        Global = "GLOBAL",
        Workspace = "WORKSPACE",
        Endpoint = "ENDPOINT",
        User = "USER",
    }
);
wire_enum!(
    /// What happens once a window's spend reaches the budget.
    BudgetAction { Alert = "ALERT", Reject = "REJECT" }
);

impl TargetScope {
    /// Scopes whose policy names what it counts (an endpoint id, a username).
    pub fn is_targeted(self) -> bool {
        matches!(self, TargetScope::Endpoint | TargetScope::User)
    }
}

/// A window's length: `value` units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetDuration {
    pub unit: DurationUnit,
    pub value: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BudgetPolicy {
    pub budget_policy_id: String,
    pub budget_unit: BudgetUnit,
    pub budget_amount: f64,
    pub duration: BudgetDuration,
    pub target_scope: TargetScope,
    pub budget_action: BudgetAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_by: Option<String>,
    pub last_updated_at: i64,
    /// The workspace that owns the policy (not on MLflow's wire; kept as MLflow keeps it).
    #[serde(skip)]
    pub workspace: String,
}

/// A new policy's id, shaped as MLflow shapes it.
pub fn new_budget_policy_id() -> String {
    format!("bp-{}", uuid::Uuid::new_v4().simple())
}

/// `duration.value` must be a positive number of units.
pub fn check_duration_value(value: i64) -> Result<()> {
    if value <= 0 {
        return Err(Error::invalid(format!(
            "duration.value must be a positive integer, got {value}"
        )));
    }
    Ok(())
}

/// An amount must be a finite number, not below zero.
pub fn check_amount(amount: f64) -> Result<()> {
    if !amount.is_finite() || amount < 0.0 {
        return Err(Error::invalid(format!(
            "budget_amount must be a non-negative number, got {amount}"
        )));
    }
    Ok(())
}

/// ENDPOINT and USER policies must name their target; other scopes must not (MLflow's rule,
/// with its words). Returns the target to keep.
pub fn check_target(scope: TargetScope, target_value: Option<&str>) -> Result<Option<String>> {
    let target = target_value.filter(|t| !t.is_empty());
    if scope.is_targeted() {
        match target {
            Some(t) => Ok(Some(t.to_string())),
            None => Err(Error::invalid(format!(
                "target_value is required when target_scope is {}.",
                scope.as_str()
            ))),
        }
    } else if target.is_some() {
        Err(Error::invalid(
            "target_value can only be set when target_scope is ENDPOINT or USER.",
        ))
    } else {
        Ok(None)
    }
}

/// Without sign-in no call has a user, so a USER policy would never count anything.
pub fn check_user_scope_enforceable(scope: TargetScope, auth_enabled: bool) -> Result<()> {
    if scope == TargetScope::User && !auth_enabled {
        return Err(Error::invalid(
            "USER-scoped budget policies require server authentication to be enabled. Without \
             auth the gateway cannot attribute requests to a user, so the policy would never \
             take effect.",
        ));
    }
    Ok(())
}

/// Who made a call, as budgets count it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallScope<'a> {
    pub endpoint_id: Option<&'a str>,
    pub username: Option<&'a str>,
}

impl BudgetPolicy {
    /// Whether this policy counts (and may refuse) a call.
    pub fn applies_to(&self, call: CallScope<'_>) -> bool {
        match self.target_scope {
            TargetScope::Global => true,
            TargetScope::Workspace => self.workspace == DEFAULT_WORKSPACE,
            TargetScope::Endpoint => {
                call.endpoint_id.is_some() && call.endpoint_id == self.target_value.as_deref()
            }
            TargetScope::User => {
                call.username.is_some() && call.username == self.target_value.as_deref()
            }
        }
    }

    /// The window holding `now_ms`.
    pub fn window_at(&self, now_ms: i64) -> Window {
        window_at(self.duration, now_ms)
    }

    /// What a refused call is told (MLflow's words).
    pub fn rejection_message(&self, window: Window) -> String {
        let mut unit = self.duration.unit.as_str().to_ascii_lowercase();
        if self.duration.value == 1 {
            unit.pop();
        }
        format!(
            "Budget limit exceeded. Limit: ${:.2} USD per {} {unit}. Budget resets at {}. \
             Request rejected.",
            self.budget_amount,
            self.duration.value,
            iso_seconds(window.end_ms)
        )
    }
}

/// One window of a policy: `[start_ms, end_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 1969-12-28, the Sunday before the epoch: week windows start on Sundays.
const SUNDAY_BEFORE_EPOCH_MS: i64 = -4 * DAY_MS;

/// The window of `duration` holding `now_ms`. Minute, hour and day windows count from the
/// epoch, week windows from the Sunday before it, month windows from January 1970, so a
/// 3-month window is a calendar quarter. `duration.value` must be positive.
pub fn window_at(duration: BudgetDuration, now_ms: i64) -> Window {
    let n = duration.value.max(1);
    let fixed = |origin: i64, unit_ms: i64| {
        let length = unit_ms * n;
        let start = origin + (now_ms - origin).div_euclid(length) * length;
        Window {
            start_ms: start,
            end_ms: start + length,
        }
    };
    match duration.unit {
        DurationUnit::Minutes => fixed(0, MINUTE_MS),
        DurationUnit::Hours => fixed(0, HOUR_MS),
        DurationUnit::Days => fixed(0, DAY_MS),
        DurationUnit::Weeks => fixed(SUNDAY_BEFORE_EPOCH_MS, 7 * DAY_MS),
        DurationUnit::Months => {
            let (year, month, _) = civil_date(now_ms.div_euclid(DAY_MS));
            let months_since_epoch = (year - 1970) * 12 + (month - 1);
            let first = months_since_epoch.div_euclid(n) * n;
            Window {
                start_ms: month_start_ms(first),
                end_ms: month_start_ms(first + n),
            }
        }
    }
}

/// Midnight UTC on the first day of the month `months` after January 1970.
fn month_start_ms(months: i64) -> i64 {
    let year = 1970 + months.div_euclid(12);
    let month = months.rem_euclid(12) + 1;
    days_from_civil(year, month, 1) * DAY_MS
}

/// `2026-01-01T00:00:00Z`.
fn iso_seconds(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_date(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(date: &str) -> i64 {
        // "YYYY-MM-DDTHH:MM"
        let p = |a: usize, b: usize| date[a..b].parse::<i64>().unwrap();
        days_from_civil(p(0, 4), p(5, 7), p(8, 10)) * DAY_MS
            + p(11, 13) * HOUR_MS
            + p(14, 16) * MINUTE_MS
    }

    fn window(unit: DurationUnit, value: i64, now: &str) -> (String, String) {
        let w = window_at(BudgetDuration { unit, value }, ms(now));
        (iso_seconds(w.start_ms), iso_seconds(w.end_ms))
    }

    #[test]
    fn windows_are_aligned_as_mlflow_aligns_them() {
        use DurationUnit::*;
        assert_eq!(
            window(Minutes, 15, "2026-12-07T18:49"),
            ("2026-12-07T18:45:00Z".into(), "2026-12-07T19:00:00Z".into())
        );
        assert_eq!(
            window(Hours, 2, "2026-12-07T19:10"),
            ("2026-12-07T18:00:00Z".into(), "2026-12-07T20:00:00Z".into())
        );
        assert_eq!(
            window(Days, 1, "2026-12-07T23:59"),
            ("2026-12-07T00:00:00Z".into(), "2026-12-08T00:00:00Z".into())
        );
        // 2026-12-06 is a Sunday.
        assert_eq!(
            window(Weeks, 1, "2026-12-07T10:00"),
            ("2026-12-06T00:00:00Z".into(), "2026-12-13T00:00:00Z".into())
        );
        assert_eq!(
            window(Months, 1, "2026-12-31T23:59"),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
        // Quarters: a 3-month window counted from January 1970.
        assert_eq!(
            window(Months, 3, "2026-05-15T00:00"),
            ("2026-04-01T00:00:00Z".into(), "2026-07-01T00:00:00Z".into())
        );
        assert_eq!(
            window(Months, 1, "2024-02-29T12:00"),
            ("2024-02-01T00:00:00Z".into(), "2024-03-01T00:00:00Z".into())
        );
    }

    #[test]
    fn a_window_holds_its_start_and_not_its_end() {
        let d = BudgetDuration {
            unit: DurationUnit::Hours,
            value: 1,
        };
        let w = window_at(d, 7 * HOUR_MS);
        assert_eq!((w.start_ms, w.end_ms), (7 * HOUR_MS, 8 * HOUR_MS));
        assert_eq!(window_at(d, 8 * HOUR_MS - 1), w);
        assert_ne!(window_at(d, 8 * HOUR_MS), w);
    }

    #[test]
    fn targets_follow_the_scope() {
        assert_eq!(
            check_target(TargetScope::Endpoint, Some("e-1")).unwrap(),
            Some("e-1".into())
        );
        let missing = check_target(TargetScope::User, Some("")).unwrap_err();
        assert_eq!(
            missing.message,
            "target_value is required when target_scope is USER."
        );
        assert!(check_target(TargetScope::Global, Some("x")).is_err());
        assert_eq!(check_target(TargetScope::Workspace, None).unwrap(), None);
        assert!(check_user_scope_enforceable(TargetScope::User, false).is_err());
        assert!(check_user_scope_enforceable(TargetScope::User, true).is_ok());
        assert!(check_user_scope_enforceable(TargetScope::Global, false).is_ok());
        assert!(check_duration_value(0).is_err());
        assert!(check_amount(f64::NAN).is_err() && check_amount(-1.0).is_err());
    }

    fn policy(scope: TargetScope, target: Option<&str>) -> BudgetPolicy {
        BudgetPolicy {
            budget_policy_id: "bp-1".into(),
            budget_unit: BudgetUnit::Usd,
            budget_amount: 5.0,
            duration: BudgetDuration {
                unit: DurationUnit::Days,
                value: 1,
            },
            target_scope: scope,
            budget_action: BudgetAction::Reject,
            target_value: target.map(str::to_string),
            created_by: None,
            created_at: 0,
            last_updated_by: None,
            last_updated_at: 0,
            workspace: DEFAULT_WORKSPACE.into(),
        }
    }

    #[test]
    fn policies_count_the_calls_of_their_scope() {
        let call = CallScope {
            endpoint_id: Some("e-1"),
            username: Some("alice"),
        };
        let anonymous = CallScope {
            endpoint_id: Some("e-1"),
            username: None,
        };
        assert!(policy(TargetScope::Global, None).applies_to(anonymous));
        assert!(policy(TargetScope::Workspace, None).applies_to(anonymous));
        assert!(policy(TargetScope::Endpoint, Some("e-1")).applies_to(call));
        assert!(!policy(TargetScope::Endpoint, Some("e-2")).applies_to(call));
        assert!(policy(TargetScope::User, Some("alice")).applies_to(call));
        assert!(!policy(TargetScope::User, Some("alice")).applies_to(anonymous));
    }

    #[test]
    fn a_refusal_says_the_limit_and_when_it_resets() {
        let p = policy(TargetScope::Global, None);
        let w = p.window_at(ms("2026-12-07T18:49"));
        assert_eq!(
            p.rejection_message(w),
            "Budget limit exceeded. Limit: $5.00 USD per 1 day. Budget resets at \
             2026-12-08T00:00:00Z. Request rejected."
        );
    }

    #[test]
    fn enums_read_names_and_proto_numbers() {
        assert_eq!(TargetScope::from_number(3), Some(TargetScope::Endpoint));
        assert_eq!(TargetScope::from_number(0), None);
        assert_eq!(TargetScope::from_number(5), None);
        assert_eq!(DurationUnit::from_name("WEEKS"), Some(DurationUnit::Weeks));
        assert_eq!(BudgetAction::from_number(2), Some(BudgetAction::Reject));
        assert_eq!(BudgetUnit::from_name("EUR"), None);
    }
}
