//! Checks for `#[param(check = ...)]`: each takes the value and returns the rule it
//! breaks, which the error shows beside the key and the value
//! (`adam.eps = -1.0 is invalid: must be >= 0`).

/// The result of a check: `Err(rule)` when the value breaks it.
pub type Check = Result<(), String>;

fn rule(ok: bool, rule: &str) -> Check {
    if ok {
        Ok(())
    } else {
        Err(rule.to_string())
    }
}

/// `>= 0` (PyTorch's "Invalid learning rate / epsilon / weight_decay value" checks).
pub fn non_negative(v: &f64) -> Check {
    rule(*v >= 0.0, "must be >= 0")
}

/// Finite: not NaN or infinite.
pub fn finite(v: &f64) -> Check {
    rule(v.is_finite(), "must be finite")
}

/// `> 0`.
pub fn positive(v: &f64) -> Check {
    rule(*v > 0.0, "must be > 0")
}

/// In `[0, 1)`.
pub fn unit_interval(v: &f64) -> Check {
    rule((0.0..1.0).contains(v), "must be in [0, 1)")
}

/// In `[0, 1]`.
pub fn probability(v: &f64) -> Check {
    rule((0.0..=1.0).contains(v), "must be in [0, 1]")
}

/// In `(0, 1)`.
pub fn open_unit_interval(v: &f64) -> Check {
    rule(*v > 0.0 && *v < 1.0, "must be in (0, 1)")
}

/// PyTorch's `betas`: both in `[0, 1)`.
pub fn betas(v: &(f64, f64)) -> Check {
    rule((0.0..1.0).contains(&v.0) && (0.0..1.0).contains(&v.1), "expected two numbers in [0, 1)")
}

/// `>= min`: `check = at_least(1)` for an integer, `at_least(1.0)` for a float.
pub fn at_least<T: PartialOrd + std::fmt::Display + Copy>(min: T) -> impl Fn(&T) -> Check {
    move |v| if *v >= min { Ok(()) } else { Err(format!("must be >= {min}")) }
}

/// `> min`.
pub fn greater_than<T: PartialOrd + std::fmt::Display + Copy>(min: T) -> impl Fn(&T) -> Check {
    move |v| if *v > min { Ok(()) } else { Err(format!("must be > {min}")) }
}

/// Every element of a list passes `each`.
pub fn each<T>(each: impl Fn(&T) -> Check) -> impl Fn(&Vec<T>) -> Check {
    move |v| v.iter().try_for_each(&each)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_their_rule() {
        assert_eq!(non_negative(&-1.0), Err("must be >= 0".to_string()));
        assert!(non_negative(&0.0).is_ok());
        assert_eq!(at_least(1)(&0i64), Err("must be >= 1".to_string()));
        assert!(betas(&(0.9, 0.999)).is_ok());
        assert!(betas(&(0.9, 1.0)).is_err());
        assert_eq!(each(positive)(&vec![1.0, -2.0]), Err("must be > 0".to_string()));
    }
}
