//! The chi-square test's p-value, from the regularized upper incomplete
//! gamma function: `p = Q(k/2, x/2)` for `x` with `k` degrees of freedom.
//!
//! Written here rather than taken from a statistics crate: the audit needs
//! this one function, and the well-known crates bring linear algebra with
//! them. The method is the textbook one: `ln Γ` by Lanczos' approximation
//! (g = 7, 9 terms; about 15 correct digits), `Q` by its power series below
//! `a + 1` and by its continued fraction (modified Lentz) above. The tests
//! check it against the exact forms for 2 degrees of freedom and against
//! the tables' critical values.

/// The probability that a chi-square variable with `degrees` degrees of
/// freedom is at least `statistic`.
pub fn chi_square_p_value(statistic: f64, degrees: u32) -> f64 {
    if statistic <= 0.0 {
        return 1.0;
    }
    upper_gamma_regularized(f64::from(degrees) / 2.0, statistic / 2.0)
}

/// `Q(a, x) = Γ(a, x) / Γ(a)`, for `a > 0`, `x >= 0`.
fn upper_gamma_regularized(a: f64, x: f64) -> f64 {
    const EPSILON: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    const MAX_TERMS: u32 = 1000;
    if x <= 0.0 {
        return 1.0;
    }
    // x^a e^-x / Γ(a), the factor both forms share.
    let prefix = (a * x.ln() - x - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // P(a, x) = prefix * Σ x^n / (a (a+1) ... (a+n)); Q = 1 - P.
        let (mut term, mut sum) = (1.0 / a, 1.0 / a);
        for n in 1..MAX_TERMS {
            term *= x / (a + f64::from(n));
            sum += term;
            if term.abs() < sum.abs() * EPSILON {
                break;
            }
        }
        (1.0 - prefix * sum).clamp(0.0, 1.0)
    } else {
        // Q(a, x) = prefix / (x + 1 - a - 1(1-a) / (x + 3 - a - 2(2-a) / ...)).
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_TERMS {
            let i = f64::from(i);
            let an = -i * (i - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let step = d * c;
            h *= step;
            if (step - 1.0).abs() < EPSILON {
                break;
            }
        }
        (prefix * h).clamp(0.0, 1.0)
    }
}

/// `ln Γ(x)` for `x > 0`, by Lanczos' approximation.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1-x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, coefficient) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += coefficient / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut factorial = 1.0f64;
        for n in 1..20u32 {
            // Γ(n + 1) = n!
            factorial *= f64::from(n);
            assert!(
                close(ln_gamma(f64::from(n) + 1.0), factorial.ln(), 1e-10),
                "{n}"
            );
        }
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
    }

    #[test]
    fn two_degrees_of_freedom_is_an_exponential() {
        for x in [0.01, 0.5, 1.0, 2.0, 5.0, 10.0, 40.0] {
            let exact = (-x / 2.0f64).exp();
            assert!(close(chi_square_p_value(x, 2), exact, 1e-12), "{x}");
        }
    }

    #[test]
    fn critical_values_from_the_tables() {
        // (statistic, degrees, p)
        for (x, k, p) in [
            (3.841_459, 1, 0.05),
            (6.634_897, 1, 0.01),
            (5.991_465, 2, 0.05),
            (7.814_728, 3, 0.05),
            (11.344_867, 3, 0.01),
            (9.487_729, 4, 0.05),
            (18.307_038, 10, 0.05),
            (0.454_936, 1, 0.5),
        ] {
            let got = chi_square_p_value(x, k);
            assert!(close(got, p, 1e-6), "x = {x}, k = {k}: {got}");
        }
        assert_eq!(chi_square_p_value(0.0, 2), 1.0);
        assert!(chi_square_p_value(1000.0, 2) < 1e-100);
    }
}
