//! The first `k` of many scored items, without sorting them all.

use std::cmp::Ordering;

/// The first `k` of `items` in the total order `order`, in that order, in a vector of exactly
/// that size: a selection, then a sort of those `k` only. A row can hold every other customer,
/// so sorting rows whole and keeping their capacity cost most of the time and memory at scale.
pub fn best<T: Copy>(items: &mut [T], k: usize, order: impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    let k = k.min(items.len());
    if k == 0 {
        return Vec::new();
    }
    if items.len() > k {
        items.select_nth_unstable_by(k - 1, &order);
    }
    let first = &mut items[..k];
    first.sort_unstable_by(&order);
    first.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_k_are_the_first_k_of_a_full_sort_ties_included() {
        let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        // Many ties at the cut, in scrambled order.
        let items: Vec<(u32, f64)> = (0..500u32)
            .map(|i| ((i * 7919) % 500, f64::from((i * 31) % 9)))
            .collect();
        let mut sorted = items.clone();
        sorted.sort_by(order);
        for k in [0, 1, 5, 100, 499, 500, 800] {
            let mut scratch = items.clone();
            let first = best(&mut scratch, k, order);
            assert_eq!(first, sorted[..k.min(500)], "k = {k}");
            assert_eq!(first.capacity(), k.min(500), "no spare capacity kept");
        }
    }
}
