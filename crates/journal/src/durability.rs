//! The `--fsync` setting and the duration syntax shared by every flag.

use std::{fmt, str::FromStr, time::Duration};

/// When appended records are forced to disk. See the crate docs for what
/// each mode can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Confirm once written to the file; the kernel flushes when it likes.
    #[default]
    Never,
    /// Confirm only after `fdatasync`, shared by concurrent appends.
    Always,
    /// Confirm once written; flush at least this often.
    Interval(Duration),
}

impl FromStr for Durability {
    type Err = String;

    /// Parses `never`, `always`, or a duration such as `1s` or `200ms`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "never" => Ok(Durability::Never),
            "always" => Ok(Durability::Always),
            other => match parse_duration(other) {
                Ok(every) if every.is_zero() => Err("the fsync interval must be positive".into()),
                Ok(every) => Ok(Durability::Interval(every)),
                Err(_) => Err(format!(
                    "expected 'never', 'always' or an interval such as '1s', got '{other}'"
                )),
            },
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Never => f.write_str("never"),
            Durability::Always => f.write_str("always"),
            Durability::Interval(every) => write!(f, "{}ms", every.as_millis()),
        }
    }
}

/// Parses a duration written as a number and a unit: `500ms`, `5s`, `2m`,
/// `1.5s`. The unit is required, so that `5` is never mistaken for 5 ms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const FORM: &str = "give a number and a unit, such as 500ms, 5s or 1.5m";
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("'{text}' is negative: {FORM}"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("'{text}' has no unit: {FORM}"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' does not start with a number: {FORM}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit '{unit}' in '{text}': {FORM}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("'{text}': {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_with_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn parses_durability_modes() {
        assert_eq!("never".parse(), Ok(Durability::Never));
        assert_eq!("always".parse(), Ok(Durability::Always));
        assert_eq!(
            "1s".parse(),
            Ok(Durability::Interval(Duration::from_secs(1)))
        );
        assert!("0s".parse::<Durability>().is_err());
        assert!("sometimes".parse::<Durability>().is_err());
        assert_eq!(
            Durability::Interval(Duration::from_secs(1)).to_string(),
            "1000ms"
        );
    }
}
