//! The per-row data quality score of the contract.

use rust_decimal::Decimal;

/// Per-row quality inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScoreInputs {
    /// How many of the eight business fields are present (non-empty after trimming), 0 to 8.
    pub present_fields: u8,
    /// How many of the three accuracy checks passed, 0 to 3: `unit_price > 0`,
    /// `quantity != 0`, a customer id of at least five characters (an absent one passes).
    pub accuracy_passed: u8,
    /// How many of the two validity checks passed, 0 to 2: a well-formed email (or none),
    /// a country with an ISO code.
    pub validity_passed: u8,
}

/// Returns `(0.60 + 0.05 × present) × (0.70 + 0.10 × accuracy) × (0.70 + 0.15 × validity)`,
/// exact, at most 1.00, rounded half away from zero to 2 decimals. The result has scale 2.
///
/// The arithmetic is done on integers in hundredths, so it is exact and never touches a
/// binary float. Inputs above their maximum count as the maximum.
///
/// ```
/// use retail_domain::score::{quality_score, ScoreInputs};
///
/// // A guest sale with price 0: 0.95 * 0.90 * 1.00 = 0.855, rounded up.
/// let score = quality_score(ScoreInputs { present_fields: 7, accuracy_passed: 2, validity_passed: 2 });
/// assert_eq!(score.to_string(), "0.86");
/// ```
pub fn quality_score(inputs: ScoreInputs) -> Decimal {
    debug_assert!(inputs.present_fields <= 8, "at most eight business fields");
    debug_assert!(inputs.accuracy_passed <= 3, "at most three accuracy checks");
    debug_assert!(inputs.validity_passed <= 2, "at most two validity checks");
    let completeness = 60 + 5 * u64::from(inputs.present_fields.min(8));
    let accuracy = 70 + 10 * u64::from(inputs.accuracy_passed.min(3));
    let validity = 70 + 15 * u64::from(inputs.validity_passed.min(2));
    // Product of three factors in hundredths: scale 6, at most 1_000_000.
    let product_millionths = completeness * accuracy * validity;
    // All terms are positive, so half away from zero is half up.
    let hundredths = ((product_millionths + 5_000) / 10_000).min(100);
    let hundredths = i64::try_from(hundredths).expect("a score of at most 100 hundredths fits i64");
    Decimal::new(hundredths, 2)
}

#[cfg(test)]
mod tests {
    use rust_decimal::RoundingStrategy;

    use super::*;

    fn score(present_fields: u8, accuracy_passed: u8, validity_passed: u8) -> String {
        quality_score(ScoreInputs {
            present_fields,
            accuracy_passed,
            validity_passed,
        })
        .to_string()
    }

    #[test]
    fn complete_valid_row_scores_one() {
        assert_eq!(score(8, 3, 2), "1.00");
    }

    #[test]
    fn guest_sale_scores_ninety_five_hundredths() {
        assert_eq!(score(7, 3, 2), "0.95");
    }

    #[test]
    fn row_with_price_zero_scores_ninety_hundredths() {
        assert_eq!(score(8, 2, 2), "0.90");
    }

    #[test]
    fn guest_sale_with_price_zero_rounds_half_up_to_eighty_six_hundredths() {
        assert_eq!(score(7, 2, 2), "0.86");
    }

    #[test]
    fn row_from_unspecified_country_scores_eighty_five_hundredths() {
        assert_eq!(score(8, 3, 1), "0.85");
    }

    #[test]
    fn score_always_has_scale_two() {
        assert_eq!(quality_score(ScoreInputs::default()).scale(), 2);
        assert_eq!(score(0, 0, 0), "0.29"); // 0.60 * 0.70 * 0.70 = 0.294
    }

    #[test]
    fn integer_arithmetic_matches_the_contract_formula_in_decimals() {
        let hundredth = Decimal::new(1, 2);
        for present in 0..=8u8 {
            for accuracy in 0..=3u8 {
                for validity in 0..=2u8 {
                    let completeness =
                        Decimal::new(60, 2) + Decimal::new(5, 2) * Decimal::from(present);
                    let accuracy_factor =
                        Decimal::new(70, 2) + Decimal::new(10, 2) * Decimal::from(accuracy);
                    let validity_factor =
                        Decimal::new(70, 2) + Decimal::new(15, 2) * Decimal::from(validity);
                    let expected = (completeness * accuracy_factor * validity_factor)
                        .min(Decimal::ONE)
                        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
                    let actual = quality_score(ScoreInputs {
                        present_fields: present,
                        accuracy_passed: accuracy,
                        validity_passed: validity,
                    });
                    assert_eq!(actual, expected, "{present} {accuracy} {validity}");
                    assert!(actual >= hundredth && actual <= Decimal::ONE);
                }
            }
        }
    }
}
