//! Placement fairness: were the confirmed messages spread over the
//! datanodes as uniform random placement (the default, `random`) spreads
//! them?
//!
//! Pearson's chi-square test of the counts per datanode against equal
//! shares, with `k - 1` degrees of freedom for `k` datanodes. The p-value
//! is the chance that uniform placement spreads them at least this
//! unevenly; the verdict says it in words. It is a description, not a
//! guarantee: `round-robin` and `least-loaded` spread differently on
//! purpose, and a datanode inactive for part of the run (see the
//! heartbeat timeline) rightly receives less.

use serde::Serialize;

use crate::stats::chi_square_p_value;

/// The test's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// The file whose lines were counted.
    pub counted_in: String,
    /// Datanodes compared.
    pub datanodes: u32,
    /// Messages counted.
    pub messages: u64,
    /// Pearson's statistic.
    pub chi_square: f64,
    /// `datanodes - 1`.
    pub degrees_of_freedom: u32,
    /// The chance of a spread at least this uneven under uniform placement.
    pub p_value: f64,
    /// The result in words.
    pub verdict: String,
}

/// Tests `counts` (messages per datanode) against equal shares; `None`
/// with fewer than two datanodes or no message.
pub fn test(counts: &[u64], counted_in: &str) -> Option<Placement> {
    let messages: u64 = counts.iter().sum();
    if counts.len() < 2 || messages == 0 {
        return None;
    }
    let expected = messages as f64 / counts.len() as f64;
    let chi_square: f64 = counts
        .iter()
        .map(|&observed| (observed as f64 - expected).powi(2) / expected)
        .sum();
    let degrees_of_freedom = counts.len() as u32 - 1;
    let p_value = chi_square_p_value(chi_square, degrees_of_freedom);
    Some(Placement {
        counted_in: counted_in.to_owned(),
        datanodes: counts.len() as u32,
        messages,
        chi_square,
        degrees_of_freedom,
        p_value,
        verdict: verdict(p_value, expected),
    })
}

fn verdict(p_value: f64, expected: f64) -> String {
    let caveat = if expected < 5.0 {
        " (too few messages per datanode for the test to say much)"
    } else {
        ""
    };
    let chance = percent(p_value);
    if p_value >= 0.05 {
        format!(
            "consistent with uniform random placement: a spread at least this uneven \
             happens {chance} of the time by chance{caveat}"
        )
    } else {
        let degree = if p_value < 0.001 {
            "far from uniform"
        } else {
            "uneven"
        };
        format!(
            "{degree}: uniform random placement spreads messages this unevenly only {chance} \
             of the time; expected if placement is not random or a datanode was inactive \
             for part of the run{caveat}"
        )
    }
}

/// A probability as a percentage a person reads: `62%`, `0.3%`, `< 0.001%`.
fn percent(p: f64) -> String {
    let percent = p * 100.0;
    if percent >= 10.0 {
        format!("{percent:.0}%")
    } else if percent >= 0.1 {
        format!("{percent:.1}%")
    } else if percent >= 0.001 {
        format!("{percent:.3}%")
    } else {
        "< 0.001%".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_spread_is_consistent_with_uniform() {
        let placement = test(&[1000, 1010, 990], "registro_server.txt").unwrap();
        assert_eq!(placement.degrees_of_freedom, 2);
        assert!((placement.chi_square - 0.2).abs() < 1e-9);
        assert!(placement.p_value > 0.9, "{placement:?}");
        assert!(
            placement.verdict.starts_with("consistent"),
            "{}",
            placement.verdict
        );
    }

    #[test]
    fn a_skewed_spread_is_said_to_be_so() {
        let placement = test(&[1500, 750, 750], "registro_server.txt").unwrap();
        assert!(placement.p_value < 1e-6);
        assert!(
            placement.verdict.starts_with("far from uniform"),
            "{}",
            placement.verdict
        );
        let few = test(&[3, 1, 2], "x").unwrap();
        assert!(few.verdict.contains("too few"), "{}", few.verdict);
    }

    #[test]
    fn nothing_to_test_with_one_datanode_or_no_message() {
        assert_eq!(test(&[10], "x"), None);
        assert_eq!(test(&[0, 0], "x"), None);
        assert_eq!(percent(0.62), "62%");
        assert_eq!(percent(0.003), "0.3%");
        assert_eq!(percent(1e-9), "< 0.001%");
    }
}
