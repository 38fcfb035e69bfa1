//! `fail_on_error`: how many failed calls a run tolerates before it fails.
//!
//! A sample whose call failed after its retries is an error: stored with its
//! message, counted apart, and never scored as an abstention or a wrong
//! answer. The task it belongs to cannot be evaluated, so it is left out of
//! every result until `crucible resume` retries the call. By default the
//! first error fails the run, as in Inspect AI's `fail_on_error`.

/// How many errored samples a run tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ErrorTolerance {
    /// The first error fails the run (`fail_on_error: true`, the default).
    #[default]
    None,
    /// Errors never fail the run (`false`): they are counted and left out.
    Unlimited,
    /// Up to this share of the planned samples (`0.05`).
    Fraction(f64),
    /// Up to this many errored samples (`10`).
    Count(u64),
}

/// What `fail_on_error` accepts, for messages.
const EXPECTED: &str = "true (the first error fails the run), false (errors never do), a fraction below 1 of the planned samples (e.g. 0.05) or a whole number of errors (e.g. 10)";

impl ErrorTolerance {
    /// From the YAML value: a boolean or a number.
    pub fn from_flag(fail: bool) -> Self {
        if fail {
            ErrorTolerance::None
        } else {
            ErrorTolerance::Unlimited
        }
    }

    /// From a number: a fraction below 1, or a whole count.
    pub fn from_number(v: f64) -> Result<Self, String> {
        if v > 0.0 && v < 1.0 {
            Ok(ErrorTolerance::Fraction(v))
        } else if v >= 0.0 && v.fract() == 0.0 && v.is_finite() {
            Ok(match v as u64 {
                0 => ErrorTolerance::None,
                n => ErrorTolerance::Count(n),
            })
        } else {
            Err(format!("`fail_on_error` must be {EXPECTED}; found {v}"))
        }
    }

    /// From a command-line value (`--fail-on-error`).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" => Ok(ErrorTolerance::None),
            "false" => Ok(ErrorTolerance::Unlimited),
            t => t
                .parse::<f64>()
                .map_err(|_| format!("expected {EXPECTED}; found `{t}`"))
                .and_then(ErrorTolerance::from_number),
        }
    }

    /// Whether `errors` errored samples out of `planned` are tolerated.
    pub fn tolerates(self, errors: u64, planned: u64) -> bool {
        match self {
            ErrorTolerance::None => errors == 0,
            ErrorTolerance::Unlimited => true,
            ErrorTolerance::Fraction(f) => errors as f64 <= f * planned as f64,
            ErrorTolerance::Count(c) => errors <= c,
        }
    }

    /// The setting in words, for the message of a run it failed.
    pub fn describe(self, planned: u64) -> String {
        match self {
            ErrorTolerance::None => "no errors (fail_on_error: true)".into(),
            ErrorTolerance::Unlimited => "any number of errors".into(),
            ErrorTolerance::Fraction(f) => format!(
                "{} of the {planned} planned samples (fail_on_error: {f})",
                (f * planned as f64).floor()
            ),
            ErrorTolerance::Count(c) => format!("{c} errors (fail_on_error: {c})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_mean_what_inspect_ai_users_expect() {
        let t = |s| ErrorTolerance::parse(s).unwrap();
        assert_eq!(t("true"), ErrorTolerance::None);
        assert_eq!(t("false"), ErrorTolerance::Unlimited);
        assert_eq!(t("0.05"), ErrorTolerance::Fraction(0.05));
        assert_eq!(t("10"), ErrorTolerance::Count(10));
        assert_eq!(t("0"), ErrorTolerance::None);
        for bad in ["-1", "1.5", "yes", "nan", "inf"] {
            assert!(ErrorTolerance::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tolerance_holds_up_to_its_limit_and_no_further() {
        assert!(ErrorTolerance::None.tolerates(0, 100));
        assert!(!ErrorTolerance::None.tolerates(1, 100));
        assert!(ErrorTolerance::Fraction(0.05).tolerates(5, 100));
        assert!(!ErrorTolerance::Fraction(0.05).tolerates(6, 100));
        assert!(ErrorTolerance::Count(3).tolerates(3, 10));
        assert!(!ErrorTolerance::Count(3).tolerates(4, 10));
        assert!(ErrorTolerance::Unlimited.tolerates(u64::MAX, 1));
    }
}
