//! Baskets and histories: the groups of products bought together (one invoice's basket lines)
//! or by the same customer, and the co-occurrence counts both kinds of recommendation and the
//! embeddings are built from.

use chrono::NaiveDate;

use crate::gold::Purchase;

/// Groups of distinct products (baskets, or customers' histories) and, per product, the groups
/// it is in.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    /// Each group's products, sorted, distinct.
    pub members: Vec<Vec<u32>>,
    /// Each product's groups, ascending.
    pub of_product: Vec<Vec<u32>>,
    /// Each group's key (the invoice or the customer).
    pub keys: Vec<u32>,
}

impl Groups {
    /// Groups `purchases` (up to and including `until`) by `key` (`None`: the purchase is left
    /// out); `products` is the number of products.
    pub fn build(
        purchases: &[Purchase],
        products: usize,
        until: Option<NaiveDate>,
        key: impl Fn(&Purchase) -> Option<u32>,
    ) -> Self {
        // Keys are indices into gold's invoices or customers: a dense map, not a hash map.
        let mut index_of: Vec<u32> = Vec::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        let mut keys: Vec<u32> = Vec::new();
        for purchase in purchases {
            if until.is_some_and(|until| purchase.date > until) {
                continue;
            }
            let Some(group) = key(purchase) else {
                continue;
            };
            if index_of.len() <= group as usize {
                index_of.resize(group as usize + 1, u32::MAX);
            }
            if index_of[group as usize] == u32::MAX {
                index_of[group as usize] = members.len() as u32;
                members.push(Vec::new());
                keys.push(group);
            }
            members[index_of[group as usize] as usize].push(purchase.product);
        }
        let mut of_product = vec![Vec::new(); products];
        for (group, products) in members.iter_mut().enumerate() {
            products.sort_unstable();
            products.dedup();
            for &product in products.iter() {
                of_product[product as usize].push(group as u32);
            }
        }
        Self {
            members,
            of_product,
            keys,
        }
    }

    /// One basket per invoice.
    pub fn baskets(purchases: &[Purchase], products: usize, until: Option<NaiveDate>) -> Self {
        Self::build(purchases, products, until, |purchase| {
            Some(purchase.invoice)
        })
    }

    /// One history per identified customer (guests left out).
    pub fn histories(purchases: &[Purchase], products: usize, until: Option<NaiveDate>) -> Self {
        Self::build(purchases, products, until, |purchase| purchase.customer)
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The groups `product` is in.
    pub fn count(&self, product: u32) -> u32 {
        self.of_product[product as usize].len() as u32
    }

    /// The same incidence with the roles swapped: each group becomes an item and each item a
    /// group (customers sharing products, instead of products sharing customers). The keys are
    /// the new groups' indices.
    pub fn transposed(&self) -> Self {
        Self {
            keys: (0..self.of_product.len() as u32).collect(),
            members: self.of_product.clone(),
            of_product: self.members.clone(),
        }
    }

    /// Calls `visit(product, row)` for every product in a group, `row` being every other
    /// product sharing a group with it and the number of groups they share, by product.
    pub fn co_counts(&self, mut visit: impl FnMut(u32, &[(u32, u32)])) {
        let mut scratch = vec![0u32; self.of_product.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut row: Vec<(u32, u32)> = Vec::new();
        for (product, groups) in self.of_product.iter().enumerate() {
            if groups.is_empty() {
                continue;
            }
            for &group in groups {
                for &other in &self.members[group as usize] {
                    if other as usize == product {
                        continue;
                    }
                    if scratch[other as usize] == 0 {
                        touched.push(other);
                    }
                    scratch[other as usize] += 1;
                }
            }
            row.clear();
            if touched.len() * 8 > scratch.len() {
                // Most items touched (customers sharing a popular product): one pass over
                // them all is cheaper than sorting the touched ones.
                for (other, count) in scratch.iter_mut().enumerate() {
                    if *count > 0 {
                        row.push((other as u32, *count));
                        *count = 0;
                    }
                }
            } else {
                touched.sort_unstable();
                for &other in &touched {
                    row.push((other, scratch[other as usize]));
                    scratch[other as usize] = 0;
                }
            }
            touched.clear();
            visit(product as u32, &row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(invoice: u32, customer: Option<u32>, product: u32) -> Purchase {
        Purchase {
            invoice,
            customer,
            product,
            date: NaiveDate::from_ymd_opt(2011, 1, 1).unwrap(),
        }
    }

    #[test]
    fn co_counts_count_shared_groups_once_however_often_a_product_repeats() {
        let purchases = [
            purchase(1, Some(0), 0),
            purchase(1, Some(0), 1),
            purchase(1, Some(0), 1),
            purchase(2, None, 0),
            purchase(2, None, 1),
            purchase(2, None, 2),
            purchase(3, Some(0), 2),
        ];
        let baskets = Groups::baskets(&purchases, 4, None);
        assert_eq!(baskets.len(), 3);
        assert_eq!(
            (baskets.count(0), baskets.count(1), baskets.count(3)),
            (2, 2, 0)
        );
        let mut rows = Vec::new();
        baskets.co_counts(|product, row| rows.push((product, row.to_vec())));
        assert_eq!(
            rows,
            [
                (0, vec![(1, 2), (2, 1)]),
                (1, vec![(0, 2), (2, 1)]),
                (2, vec![(0, 1), (1, 1)])
            ]
        );
        let histories = Groups::histories(&purchases, 4, None);
        assert_eq!(histories.members, [vec![0, 1, 2]]);
    }

    #[test]
    fn co_counts_rows_are_by_product_whether_few_or_most_products_are_touched() {
        // 64 products: product 60's row touches 2 (sorted), product 0's touches 40 (scanned).
        let mut purchases = vec![
            purchase(1, None, 60),
            purchase(1, None, 50),
            purchase(3, None, 60),
            purchase(3, None, 45),
        ];
        for product in (1..=40).rev() {
            purchases.push(purchase(2, None, 0));
            purchases.push(purchase(2, None, product));
        }
        let baskets = Groups::baskets(&purchases, 64, None);
        let mut rows = std::collections::BTreeMap::new();
        baskets.co_counts(|product, row| {
            rows.insert(product, row.to_vec());
        });
        assert_eq!(rows[&60], [(45, 1), (50, 1)]);
        let expected: Vec<(u32, u32)> = (1..=40).map(|product| (product, 1)).collect();
        assert_eq!(rows[&0], expected);
        assert_eq!(rows[&7][..2], [(0, 1), (1, 1)]);
    }
}
