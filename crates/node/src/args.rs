//! Value parsers for the binaries' numeric flags.
//!
//! clap's own parsers answer `--seed abc` with `invalid digit found in
//! string` and `--pipeline 0` with `number would be zero for non-zero
//! type`. These say what the flag accepts. clap prefixes each message with
//! the flag and the value (`invalid value 'abc' for '--seed <SEED>': ...`),
//! so a message here only has to give the accepted form. Flags that use
//! them also set `allow_hyphen_values`, so that `--count -1` reaches the
//! parser (which says a count is never negative) instead of clap taking
//! `-1` for an unknown flag.

use std::num::NonZeroUsize;

/// A whole number, 0 or more (`--count`).
pub fn whole_number(text: &str) -> Result<u64, String> {
    parse_u64(text, "a whole number, 0 or more, such as 500")
}

/// A seed for the random draw (`--seed`).
pub fn seed(text: &str) -> Result<u64, String> {
    parse_u64(
        text,
        "a whole number from 0 to 18446744073709551615, such as 7",
    )
}

/// A whole number, 1 or more (`--pipeline`, `--max-connections`).
pub fn at_least_one(text: &str) -> Result<NonZeroUsize, String> {
    let form = "a whole number, 1 or more, such as 16";
    let number = parse_u64(text, form)?;
    usize::try_from(number)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| format!("must be {form}"))
}

/// [`at_least_one`] as a plain `usize` (`--max-connections`).
pub fn count_of_at_least_one(text: &str) -> Result<usize, String> {
    at_least_one(text).map(NonZeroUsize::get)
}

fn parse_u64(text: &str, form: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') && trimmed[1..].chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("cannot be negative: give {form}"));
    }
    trimmed.parse().map_err(|_| format!("is not {form}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_gives_the_accepted_form() {
        assert_eq!(whole_number("500"), Ok(500));
        assert_eq!(whole_number(" 0 "), Ok(0));
        assert!(whole_number("-1")
            .unwrap_err()
            .contains("cannot be negative"));
        assert!(whole_number("ten").unwrap_err().contains("such as 500"));
        assert_eq!(seed("7"), Ok(7));
        assert!(seed("abc")
            .unwrap_err()
            .contains("0 to 18446744073709551615"));
        assert_eq!(at_least_one("16").map(NonZeroUsize::get), Ok(16));
        assert!(at_least_one("0").unwrap_err().contains("1 or more"));
        assert!(at_least_one("-3")
            .unwrap_err()
            .contains("cannot be negative"));
    }
}
