//! Nelder–Mead minimisation and the special functions the customer models need.

/// Where a minimisation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The point found.
    pub x: Vec<f64>,
    /// The function's value there.
    pub value: f64,
    /// Iterations used.
    pub iterations: usize,
    /// Whether the simplex shrank below the tolerance before the iteration limit.
    pub converged: bool,
}

/// Minimises `f` from `start` with the Nelder–Mead simplex (standard coefficients: reflection
/// 1, expansion 2, contraction 0.5, shrink 0.5; initial steps of 0.5 or 5 % of a coordinate,
/// the larger). Stops when the simplex's values and its points both differ by less than `tol`,
/// or after `max_iter` iterations. A non-finite value counts as +∞, so the simplex walks away
/// from where the function is undefined.
pub fn nelder_mead(f: impl Fn(&[f64]) -> f64, start: &[f64], tol: f64, max_iter: usize) -> Minimum {
    let n = start.len();
    let eval = |x: &[f64]| {
        let value = f(x);
        if value.is_finite() {
            value
        } else {
            f64::INFINITY
        }
    };
    let mut simplex: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut point = start.to_vec();
        point[i] += (start[i].abs() * 0.05).max(0.5);
        simplex.push(point);
    }
    let mut values: Vec<f64> = simplex.iter().map(|x| eval(x)).collect();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        iterations += 1;
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
        simplex = order.iter().map(|i| simplex[*i].clone()).collect();
        values = order.iter().map(|i| values[*i]).collect();
        let spread_value = (values[n] - values[0]).abs();
        let spread_point = simplex[1..]
            .iter()
            .flat_map(|p| p.iter().zip(&simplex[0]).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        if spread_value <= tol && spread_point <= tol {
            converged = true;
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64)
            .collect();
        let towards = |coefficient: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&simplex[n])
                .map(|(c, w)| c + coefficient * (w - c))
                .collect()
        };
        let reflected = towards(-1.0);
        let reflected_value = eval(&reflected);
        if reflected_value < values[0] {
            let expanded = towards(-2.0);
            let expanded_value = eval(&expanded);
            if expanded_value < reflected_value {
                simplex[n] = expanded;
                values[n] = expanded_value;
            } else {
                simplex[n] = reflected;
                values[n] = reflected_value;
            }
            continue;
        }
        if reflected_value < values[n - 1] {
            simplex[n] = reflected;
            values[n] = reflected_value;
            continue;
        }
        let (contracted, contracted_value) = if reflected_value < values[n] {
            let point = towards(-0.5);
            let value = eval(&point);
            (point, value)
        } else {
            let point = towards(0.5);
            let value = eval(&point);
            (point, value)
        };
        if contracted_value < values[n].min(reflected_value) {
            simplex[n] = contracted;
            values[n] = contracted_value;
            continue;
        }
        let best = simplex[0].clone();
        for i in 1..=n {
            simplex[i] = best
                .iter()
                .zip(&simplex[i])
                .map(|(b, p)| b + 0.5 * (p - b))
                .collect();
            values[i] = eval(&simplex[i]);
        }
    }
    let best = (0..=n)
        .min_by(|a, b| values[*a].total_cmp(&values[*b]))
        .unwrap_or(0);
    Minimum {
        x: simplex[best].clone(),
        value: values[best],
        iterations,
        converged,
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9; relative error below 1e-14).
pub fn ln_gamma(x: f64) -> f64 {
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
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The Gauss hypergeometric function ₂F₁(a, b; c; z) for `0 ≤ z < 1`, summed as its power
/// series until a term is below 1e-14 of the sum (at most 100,000 terms).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..100_000 {
        let k = f64::from(k);
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-14 * sum.abs() {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        for n in 1..20u32 {
            let factorial: f64 = (1..n).map(f64::from).product();
            assert!(
                (ln_gamma(f64::from(n)) - factorial.ln()).abs() < 1e-10,
                "{n}"
            );
        }
        let half = std::f64::consts::PI.sqrt().ln();
        assert!((ln_gamma(0.5) - half).abs() < 1e-12);
        assert!((ln_gamma(0.25) - 1.288_022_524_698_077_5).abs() < 1e-12);
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z.
        for z in [0.1, 0.5, 0.9, 0.99] {
            let expected = -(1.0f64 - z).ln() / z;
            assert!((hyp2f1(1.0, 1.0, 2.0, z) - expected).abs() < 1e-9, "{z}");
        }
        // ₂F₁(a, b; b; z) = (1 − z)^−a.
        assert!((hyp2f1(2.5, 3.0, 3.0, 0.4) - 0.6f64.powf(-2.5)).abs() < 1e-10);
    }

    #[test]
    fn nelder_mead_finds_the_rosenbrock_minimum() {
        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let found = nelder_mead(rosenbrock, &[-1.2, 1.0], 1e-10, 10_000);
        assert!(found.converged);
        assert!((found.x[0] - 1.0).abs() < 1e-4 && (found.x[1] - 1.0).abs() < 1e-4);
    }
}
