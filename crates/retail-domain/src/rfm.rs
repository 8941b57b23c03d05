//! Recency-frequency-monetary scoring helpers for `gold.customer_rfm`.

/// Every segment name, in the order the contract's table lists them.
pub const SEGMENTS: [&str; 10] = [
    "Hibernating",
    "At Risk",
    "Can't Lose Them",
    "About to Sleep",
    "Need Attention",
    "Loyal Customers",
    "Promising",
    "New Customers",
    "Potential Loyalists",
    "Champions",
];

/// `NTILE(buckets)` of 1-based position `row_number` among `total` rows, exactly as SQL
/// `NTILE`: the first `total % buckets` groups get one extra row.
///
/// With fewer rows than buckets, row `n` is in bucket `n`. Out-of-range input is a caller
/// bug: `row_number` is clamped to `1..=total` and `buckets` to at least 1, and a bucket
/// number above 255 saturates.
///
/// ```
/// use retail_domain::rfm::ntile;
///
/// let buckets: Vec<u8> = (1..=7).map(|row| ntile(row, 7, 5)).collect();
/// assert_eq!(buckets, [1, 1, 2, 2, 3, 4, 5]);
/// ```
pub fn ntile(row_number: usize, total: usize, buckets: usize) -> u8 {
    debug_assert!(
        (1..=total).contains(&row_number),
        "row_number within 1..=total"
    );
    debug_assert!(buckets >= 1, "at least one bucket");
    let total = total.max(1);
    let buckets = buckets.max(1);
    let index = row_number.clamp(1, total) - 1;

    let small_size = total / buckets;
    let large_buckets = total % buckets;
    let rows_in_large_buckets = large_buckets * (small_size + 1);
    let bucket = if index < rows_in_large_buckets {
        index / (small_size + 1)
    } else {
        // small_size > 0 here: with total < buckets every row sits in a large bucket.
        large_buckets + (index - rows_in_large_buckets) / small_size
    };
    u8::try_from(bucket + 1).unwrap_or(u8::MAX)
}

/// The contract's segment table, written once: (r from, r to, f from, f to, segment). Each of
/// the 25 (R, F) pairs falls in exactly one rule (a test checks it); [`segment`] reads the
/// table in Rust and [`segment_sql`] writes it as the SQL both warehouse backends run.
///
/// | r \ f | 1 | 2 | 3 | 4 | 5 |
/// |---|---|---|---|---|---|
/// | 1, 2 | Hibernating | Hibernating | At Risk | At Risk | Can't Lose Them |
/// | 3 | About to Sleep | About to Sleep | Need Attention | Loyal Customers | Loyal Customers |
/// | 4 | Promising | Potential Loyalists | Potential Loyalists | Loyal Customers | Loyal Customers |
/// | 5 | New Customers | Potential Loyalists | Potential Loyalists | Champions | Champions |
pub const SEGMENT_RULES: [(u8, u8, u8, u8, &str); 10] = [
    (1, 2, 1, 2, "Hibernating"),
    (1, 2, 3, 4, "At Risk"),
    (1, 2, 5, 5, "Can't Lose Them"),
    (3, 3, 1, 2, "About to Sleep"),
    (3, 3, 3, 3, "Need Attention"),
    (3, 4, 4, 5, "Loyal Customers"),
    (4, 4, 1, 1, "Promising"),
    (5, 5, 1, 1, "New Customers"),
    (4, 5, 2, 3, "Potential Loyalists"),
    (5, 5, 4, 5, "Champions"),
];

/// Segment name from (`r_score`, `f_score`), both `1..=5`, by [`SEGMENT_RULES`].
///
/// Scores outside `1..=5` are a caller bug and are clamped into that range.
pub fn segment(r_score: u8, f_score: u8) -> &'static str {
    debug_assert!(
        (1..=5).contains(&r_score) && (1..=5).contains(&f_score),
        "scores are 1..=5"
    );
    let (r, f) = (r_score.clamp(1, 5), f_score.clamp(1, 5));
    SEGMENT_RULES
        .iter()
        .find(|(r_from, r_to, f_from, f_to, _)| {
            (*r_from..=*r_to).contains(&r) && (*f_from..=*f_to).contains(&f)
        })
        .map_or("Champions", |rule| rule.4)
}

/// [`SEGMENT_RULES`] as a SQL `CASE` over two score expressions.
///
/// ```
/// let sql = retail_domain::rfm::segment_sql("r", "f");
/// assert!(sql.starts_with("CASE WHEN r BETWEEN 1 AND 2 AND f BETWEEN 1 AND 2 THEN 'Hibernating'"));
/// assert!(sql.contains("'Can''t Lose Them'"));
/// ```
pub fn segment_sql(r_score: &str, f_score: &str) -> String {
    let mut sql = String::from("CASE");
    for (r_from, r_to, f_from, f_to, name) in SEGMENT_RULES {
        sql.push_str(&format!(
            " WHEN {r_score} BETWEEN {r_from} AND {r_to} AND {f_score} BETWEEN {f_from} AND {f_to} \
             THEN '{}'",
            name.replace('\'', "''")
        ));
    }
    sql.push_str(" END");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntiles(total: usize, buckets: usize) -> Vec<u8> {
        (1..=total).map(|row| ntile(row, total, buckets)).collect()
    }

    #[test]
    fn ntile_gives_the_first_groups_one_extra_row() {
        assert_eq!(ntiles(7, 5), [1, 1, 2, 2, 3, 4, 5]);
        assert_eq!(ntiles(10, 5), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(ntiles(11, 5), [1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(ntiles(14, 5), [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5]);
        assert_eq!(ntiles(1, 5), [1]);
        assert_eq!(ntiles(5, 1), [1, 1, 1, 1, 1]);
    }

    #[test]
    fn ntile_with_fewer_rows_than_buckets_numbers_rows() {
        assert_eq!(ntiles(3, 5), [1, 2, 3]);
    }

    #[test]
    fn ntile_matches_a_reference_implementation() {
        for total in 1..=60 {
            for buckets in 1..=12 {
                let mut expected = Vec::with_capacity(total);
                let (size, extra) = (total / buckets, total % buckets);
                for bucket in 0..buckets {
                    let rows = size + usize::from(bucket < extra);
                    expected.extend(std::iter::repeat_n(bucket as u8 + 1, rows));
                }
                assert_eq!(
                    ntiles(total, buckets),
                    expected,
                    "{total} rows in {buckets}"
                );
            }
        }
    }

    #[test]
    fn ntile_saturates_beyond_255_buckets() {
        assert_eq!(ntile(300, 300, 300), u8::MAX);
    }

    /// The contract's table, as written: (r scores, f scores, segment).
    const CONTRACT_TABLE: [(&[u8], &[u8], &str); 10] = [
        (&[1, 2], &[1, 2], "Hibernating"),
        (&[1, 2], &[3, 4], "At Risk"),
        (&[1, 2], &[5], "Can't Lose Them"),
        (&[3], &[1, 2], "About to Sleep"),
        (&[3], &[3], "Need Attention"),
        (&[3, 4], &[4, 5], "Loyal Customers"),
        (&[4], &[1], "Promising"),
        (&[5], &[1], "New Customers"),
        (&[4, 5], &[2, 3], "Potential Loyalists"),
        (&[5], &[4, 5], "Champions"),
    ];

    #[test]
    fn contract_table_covers_every_pair_exactly_once() {
        for r in 1..=5u8 {
            for f in 1..=5u8 {
                let matches: Vec<&str> = CONTRACT_TABLE
                    .iter()
                    .filter(|(rs, fs, _)| rs.contains(&r) && fs.contains(&f))
                    .map(|(_, _, name)| *name)
                    .collect();
                assert_eq!(matches.len(), 1, "pair {r}{f} matches {matches:?}");
            }
        }
    }

    #[test]
    fn segment_follows_the_contract_table_for_all_25_pairs() {
        let expected = [
            [
                "Hibernating",
                "Hibernating",
                "At Risk",
                "At Risk",
                "Can't Lose Them",
            ],
            [
                "Hibernating",
                "Hibernating",
                "At Risk",
                "At Risk",
                "Can't Lose Them",
            ],
            [
                "About to Sleep",
                "About to Sleep",
                "Need Attention",
                "Loyal Customers",
                "Loyal Customers",
            ],
            [
                "Promising",
                "Potential Loyalists",
                "Potential Loyalists",
                "Loyal Customers",
                "Loyal Customers",
            ],
            [
                "New Customers",
                "Potential Loyalists",
                "Potential Loyalists",
                "Champions",
                "Champions",
            ],
        ];
        for r in 1..=5u8 {
            for f in 1..=5u8 {
                let name = segment(r, f);
                assert_eq!(
                    name,
                    expected[usize::from(r - 1)][usize::from(f - 1)],
                    "{r}{f}"
                );
                let (_, _, table_name) = CONTRACT_TABLE
                    .iter()
                    .find(|(rs, fs, _)| rs.contains(&r) && fs.contains(&f))
                    .expect("covered");
                assert_eq!(name, *table_name, "{r}{f}");
                assert!(SEGMENTS.contains(&name));
            }
        }
    }

    #[test]
    fn the_rule_table_covers_every_pair_exactly_once_and_names_every_segment() {
        for r in 1..=5u8 {
            for f in 1..=5u8 {
                let matching = SEGMENT_RULES
                    .iter()
                    .filter(|(a, b, c, d, _)| (*a..=*b).contains(&r) && (*c..=*d).contains(&f))
                    .count();
                assert_eq!(matching, 1, "pair {r}{f}");
            }
        }
        let names: Vec<&str> = SEGMENT_RULES.iter().map(|rule| rule.4).collect();
        assert_eq!(names, SEGMENTS);
    }

    #[test]
    fn every_segment_is_reachable() {
        for name in SEGMENTS {
            assert!(
                (1..=5).any(|r| (1..=5).any(|f| segment(r, f) == name)),
                "{name}"
            );
        }
    }
}
