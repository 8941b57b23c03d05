//! Recommendations fitted on gold's purchases, with their exact definitions.
//!
//! A **basket** is one invoice's basket lines: `line_type = product`, quantity > 0, on an
//! invoice that is not a cancellation; a product counts once per basket however many lines it
//! has. With `N` baskets:
//!
//! - **Frequently bought together** (association rules `A ⇒ B`):
//!   `support = baskets with A and B / N`; `confidence = support(A ⇒ B) / support(A)`, where
//!   `support(A)` = baskets with A / N; `lift = confidence / support(B)`. Rules are kept when
//!   A and B share at least `min_pair_baskets` baskets.
//! - **Customers who bought this also bought** (item to item): a product's customers are the
//!   identified customers with a basket line of it;
//!   `similarity(i, j) = |C_i ∩ C_j| / sqrt(|C_i| · |C_j|)` (cosine), kept when at least two
//!   customers share them; each product keeps its `neighbours` most similar products.
//! - **For you** (user to user): a customer's history `H_u` is the products of their basket
//!   lines; two customers' similarity is `|H_u ∩ H_v| / sqrt(|H_u| · |H_v|)`; the customer's
//!   `user_neighbours` most similar customers (ties: the lower index) each vote for every product
//!   of theirs with their similarity; the products `u` has not bought are ranked by their votes
//!   (ties: the lower index). The reason is the product of `H_u` most similar (item to item) to
//!   the one recommended ("often bought with X"), when there is one among the kept neighbours.
//!   When fewer than asked get votes, the best sellers (most customers) they have not bought
//!   fill the list. User-to-user was chosen over item-to-item on a validation split (train to
//!   2011-06-30, evaluate July to September 2011), before the held-out test.

use std::collections::HashSet;

use chrono::NaiveDate;

use crate::baskets::Groups;
use crate::gold::Gold;
use crate::top::best;

/// How recommendations are fitted (`[recommendations]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecommendSettings {
    /// A rule is kept when its two products share at least this many baskets.
    pub min_pair_baskets: u32,
    /// Neighbours kept per product.
    pub neighbours: usize,
    /// Similar customers whose votes make a customer's "for you".
    pub user_neighbours: usize,
    /// Products recommended per customer.
    pub per_customer: usize,
}

impl Default for RecommendSettings {
    fn default() -> Self {
        Self {
            min_pair_baskets: 20,
            neighbours: 50,
            user_neighbours: 100,
            per_customer: 20,
        }
    }
}

/// An association rule `antecedent ⇒ consequent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// A.
    pub antecedent: u32,
    /// B.
    pub consequent: u32,
    /// Baskets with A.
    pub baskets_antecedent: u32,
    /// Baskets with B.
    pub baskets_consequent: u32,
    /// Baskets with A and B.
    pub baskets_both: u32,
    /// `baskets_both / N`.
    pub support: f64,
    /// `support / support(A)`.
    pub confidence: f64,
    /// `confidence / support(B)`.
    pub lift: f64,
}

/// A neighbour of a product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// The product.
    pub product: u32,
    /// Its neighbour.
    pub neighbour: u32,
    /// Cosine over customers.
    pub similarity: f64,
    /// Customers who bought both.
    pub customers_both: u32,
}

/// A product recommended to a customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    /// The product.
    pub product: u32,
    /// Its score (0 for a best-seller fill).
    pub score: f64,
    /// The product of their history that contributed most; `None` for a best-seller fill.
    pub because: Option<u32>,
}

/// The association rules of `baskets`.
pub fn rules(baskets: &Groups, min_pair_baskets: u32) -> Vec<Rule> {
    let total = baskets.len() as f64;
    let mut out = Vec::new();
    baskets.co_counts(|a, row| {
        let n_a = baskets.count(a);
        for &(b, both) in row {
            if both < min_pair_baskets.max(1) {
                continue;
            }
            let n_b = baskets.count(b);
            let support = f64::from(both) / total;
            let confidence = support / (f64::from(n_a) / total);
            out.push(Rule {
                antecedent: a,
                consequent: b,
                baskets_antecedent: n_a,
                baskets_consequent: n_b,
                baskets_both: both,
                support,
                confidence,
                lift: confidence / (f64::from(n_b) / total),
            });
        }
    });
    out
}

/// Each product's `k` nearest products by cosine over `histories`, best first (ties by
/// product index).
pub fn neighbours(histories: &Groups, k: usize) -> Vec<Vec<Neighbour>> {
    let mut out = vec![Vec::new(); histories.of_product.len()];
    histories.co_counts(|i, row| {
        let n_i = f64::from(histories.count(i));
        let mut list: Vec<Neighbour> = row
            .iter()
            .filter(|(_, both)| *both >= 2)
            .map(|&(j, both)| Neighbour {
                product: i,
                neighbour: j,
                similarity: f64::from(both) / (n_i * f64::from(histories.count(j))).sqrt(),
                customers_both: both,
            })
            .collect();
        out[i as usize] = best(&mut list, k, |a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.neighbour.cmp(&b.neighbour))
        });
    });
    out
}

/// Each customer's most similar customers (cosine over their products), indexed like
/// `histories.members`, best first.
pub fn similar_customers(histories: &Groups, k: usize) -> Vec<Vec<(u32, f64)>> {
    // Customers sharing products are products sharing groups, with the roles swapped.
    let by_customer = histories.transposed();
    let mut out = vec![Vec::new(); histories.members.len()];
    let mut similar: Vec<(u32, f64)> = Vec::new();
    by_customer.co_counts(|customer, row| {
        let own = histories.members[customer as usize].len() as f64;
        similar.clear();
        similar.extend(row.iter().map(|&(other, both)| {
            let theirs = histories.members[other as usize].len() as f64;
            (other, f64::from(both) / (own * theirs).sqrt())
        }));
        out[customer as usize] = best(&mut similar, k, |a, b| {
            b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
        });
    });
    out
}

/// Products by the number of customers who bought them, most first (ties by index).
pub fn best_sellers(histories: &Groups) -> Vec<u32> {
    let mut order: Vec<u32> = (0..histories.of_product.len() as u32)
        .filter(|&product| histories.count(product) > 0)
        .collect();
    order.sort_by(|&a, &b| histories.count(b).cmp(&histories.count(a)).then(a.cmp(&b)));
    order
}

/// What "for you" is computed from.
#[derive(Debug, Clone)]
pub struct ForYouModel {
    /// The customers' histories.
    pub histories: Groups,
    /// Each history's similar customers.
    pub similar: Vec<Vec<(u32, f64)>>,
    /// Each product's neighbours (for the reasons).
    pub neighbours: Vec<Vec<Neighbour>>,
    /// The fill order.
    pub best_sellers: Vec<u32>,
}

impl ForYouModel {
    /// Fits on `gold`'s purchases up to `until` (or all).
    pub fn fit(gold: &Gold, until: Option<NaiveDate>, settings: RecommendSettings) -> Self {
        let histories = Groups::histories(&gold.purchases, gold.products.len(), until);
        Self {
            similar: similar_customers(&histories, settings.user_neighbours),
            neighbours: neighbours(&histories, settings.neighbours),
            best_sellers: best_sellers(&histories),
            histories,
        }
    }

    /// The history index of each customer (by its index in gold), if they bought.
    pub fn history_of(&self) -> std::collections::HashMap<u32, usize> {
        self.histories
            .keys
            .iter()
            .enumerate()
            .map(|(index, key)| (*key, index))
            .collect()
    }

    /// The `n` products for the customer of history `index`; the best sellers for `None` (no
    /// history).
    pub fn picks(&self, index: Option<usize>, n: usize) -> Vec<Pick> {
        // Dense per-product scratch: a customer's neighbours vote for thousands of products,
        // and hashing them was most of the asset's time at scale.
        let products = self.histories.of_product.len();
        let history: &[u32] = index.map_or(&[], |index| &self.histories.members[index]);
        let mut owned = vec![false; products];
        for &product in history {
            owned[product as usize] = true;
        }
        let mut votes = vec![0.0f64; products];
        let mut voted: Vec<u32> = Vec::new();
        if let Some(index) = index {
            for &(other, similarity) in &self.similar[index] {
                for &product in &self.histories.members[other as usize] {
                    if !owned[product as usize] {
                        if votes[product as usize] == 0.0 {
                            voted.push(product);
                        }
                        votes[product as usize] += similarity;
                    }
                }
            }
        }
        let mut ranked: Vec<(u32, f64)> = voted
            .iter()
            .map(|&product| (product, votes[product as usize]))
            .collect();
        let ranked = best(&mut ranked, n, |a, b| {
            b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
        });
        // The reason: the product of their history most like each pick.
        let mut because: Vec<(f64, u32)> = vec![(0.0, u32::MAX); products];
        for &bought in history {
            for neighbour in &self.neighbours[bought as usize] {
                let entry = &mut because[neighbour.neighbour as usize];
                if neighbour.similarity > entry.0
                    || (neighbour.similarity == entry.0 && bought < entry.1)
                {
                    *entry = (neighbour.similarity, bought);
                }
            }
        }
        let mut picks: Vec<Pick> = ranked
            .into_iter()
            .map(|(product, score)| Pick {
                product,
                score,
                because: Some(because[product as usize].1).filter(|&bought| bought != u32::MAX),
            })
            .collect();
        for &product in &self.best_sellers {
            if picks.len() >= n {
                break;
            }
            if !owned[product as usize] && picks.iter().all(|pick| pick.product != product) {
                picks.push(Pick {
                    product,
                    score: 0.0,
                    because: None,
                });
            }
        }
        picks
    }
}

/// Hit rate and NDCG at `k` of one recommender on a held-out period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Share of customers with at least one recommended product among those they bought for
    /// the first time.
    pub hit_rate: f64,
    /// Mean normalised discounted cumulative gain (binary relevance).
    pub ndcg: f64,
}

/// The held-out evaluation of "for you" beside the best-seller baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Training uses purchases up to and including this day.
    pub cutoff: NaiveDate,
    /// The held-out period's last day.
    pub until: NaiveDate,
    /// Recommendations per customer.
    pub k: usize,
    /// Customers evaluated: identified, with at least one product bought for the first time
    /// in the held-out period.
    pub customers: usize,
    /// Of those, customers with no purchase before the cutoff (both recommenders give them
    /// the best sellers).
    pub new_customers: usize,
    /// "For you".
    pub model: Accuracy,
    /// The best sellers (most customers before the cutoff) they had not bought.
    pub baseline: Accuracy,
    /// "For you", customers with purchases before the cutoff only.
    pub model_returning: Accuracy,
    /// The baseline, customers with purchases before the cutoff only.
    pub baseline_returning: Accuracy,
}

fn accuracy(lists: &[(Vec<u32>, HashSet<u32>)], k: usize) -> Accuracy {
    let mut hits = 0usize;
    let mut ndcg = 0.0;
    for (recommended, relevant) in lists {
        let gain: f64 = recommended
            .iter()
            .take(k)
            .enumerate()
            .filter(|(_, product)| relevant.contains(product))
            .map(|(rank, _)| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        let ideal: f64 = (0..relevant.len().min(k))
            .map(|rank| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        if gain > 0.0 {
            hits += 1;
            ndcg += gain / ideal;
        }
    }
    let customers = lists.len().max(1) as f64;
    Accuracy {
        hit_rate: hits as f64 / customers,
        ndcg: ndcg / customers,
    }
}

/// Trains on purchases up to `cutoff`, then for each customer who bought between the day after
/// and `until` recommends `k` products and counts those they then bought for the first time.
pub fn evaluate(
    gold: &Gold,
    settings: RecommendSettings,
    cutoff: NaiveDate,
    until: NaiveDate,
    k: usize,
) -> Evaluation {
    let model = ForYouModel::fit(gold, Some(cutoff), settings);
    let history_of = model.history_of();
    let mut later: Vec<HashSet<u32>> = vec![HashSet::new(); gold.customers.len()];
    for purchase in &gold.purchases {
        if let Some(customer) = purchase.customer
            && purchase.date > cutoff
            && purchase.date <= until
        {
            later[customer as usize].insert(purchase.product);
        }
    }
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    let (mut ours_returning, mut baseline_returning) = (Vec::new(), Vec::new());
    for (customer, after) in later.iter().enumerate() {
        let index = history_of.get(&(customer as u32)).copied();
        let bought: &[u32] = index.map_or(&[], |index| &model.histories.members[index]);
        let owned: HashSet<u32> = bought.iter().copied().collect();
        let relevant: HashSet<u32> = after.difference(&owned).copied().collect();
        if relevant.is_empty() {
            continue;
        }
        let picks: Vec<u32> = model.picks(index, k).iter().map(|p| p.product).collect();
        let popular: Vec<u32> = model
            .best_sellers
            .iter()
            .copied()
            .filter(|product| !owned.contains(product))
            .take(k)
            .collect();
        if index.is_some() {
            ours_returning.push((picks.clone(), relevant.clone()));
            baseline_returning.push((popular.clone(), relevant.clone()));
        }
        ours.push((picks, relevant.clone()));
        baseline.push((popular, relevant));
    }
    Evaluation {
        cutoff,
        until,
        k,
        customers: ours.len(),
        new_customers: ours.len() - ours_returning.len(),
        model: accuracy(&ours, k),
        baseline: accuracy(&baseline, k),
        model_returning: accuracy(&ours_returning, k),
        baseline_returning: accuracy(&baseline_returning, k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(members: Vec<Vec<u32>>, products: usize) -> Groups {
        let mut of_product = vec![Vec::new(); products];
        for (group, products) in members.iter().enumerate() {
            for &product in products {
                of_product[product as usize].push(group as u32);
            }
        }
        Groups {
            keys: (0..members.len() as u32).collect(),
            members,
            of_product,
        }
    }

    #[test]
    fn rules_follow_the_definitions_of_support_confidence_and_lift() {
        // 4 baskets: A in 3, B in 2, both in 2.
        let baskets = groups(vec![vec![0, 1], vec![0, 1], vec![0], vec![2]], 3);
        let rules = rules(&baskets, 1);
        let a_b = rules
            .iter()
            .find(|rule| (rule.antecedent, rule.consequent) == (0, 1))
            .unwrap();
        assert_eq!(
            (
                a_b.baskets_antecedent,
                a_b.baskets_consequent,
                a_b.baskets_both
            ),
            (3, 2, 2)
        );
        assert!((a_b.support - 0.5).abs() < 1e-12);
        assert!((a_b.confidence - 2.0 / 3.0).abs() < 1e-12);
        assert!((a_b.lift - (2.0 / 3.0) / 0.5).abs() < 1e-12);
        let b_a = rules
            .iter()
            .find(|rule| (rule.antecedent, rule.consequent) == (1, 0))
            .unwrap();
        assert!((b_a.confidence - 1.0).abs() < 1e-12);
        assert_eq!(rules.len(), 2, "product 2 shares no basket");
        assert!(super::rules(&baskets, 3).is_empty());
    }

    #[test]
    fn a_customer_gets_what_similar_customers_bought_with_the_reason_then_best_sellers() {
        // Customers: 0 bought 0; 1 and 2 bought 0 and 1; 3 bought 0, 1 and 2; 4 bought 3.
        let histories = groups(
            vec![vec![0], vec![0, 1], vec![0, 1], vec![0, 1, 2], vec![3]],
            4,
        );
        let neighbours = neighbours(&histories, 10);
        assert!((neighbours[0][0].similarity - 3.0 / 12f64.sqrt()).abs() < 1e-12);
        assert_eq!(neighbours[2], [], "only one customer bought product 2");
        let similar = similar_customers(&histories, 2);
        assert_eq!(similar[0].iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2]);
        assert!((similar[0][0].1 - 1.0 / 2f64.sqrt()).abs() < 1e-12);
        let model = ForYouModel {
            best_sellers: best_sellers(&histories),
            similar,
            neighbours,
            histories,
        };
        assert_eq!(model.best_sellers, [0, 1, 2, 3]);
        let picks = model.picks(Some(0), 3);
        assert_eq!(
            picks
                .iter()
                .map(|pick| (pick.product, pick.because))
                .collect::<Vec<_>>(),
            [(1, Some(0)), (2, None), (3, None)],
            "1 from the two most similar customers, with its reason; then best sellers"
        );
        assert!((picks[0].score - 2.0 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            model
                .picks(None, 2)
                .iter()
                .map(|p| p.product)
                .collect::<Vec<_>>(),
            [0, 1],
            "no history: the best sellers"
        );
    }

    #[test]
    fn accuracy_counts_hits_and_discounts_them_by_rank() {
        let relevant: HashSet<u32> = [5, 6].into_iter().collect();
        let lists = vec![
            (vec![5, 1, 2], relevant.clone()),
            (vec![1, 2, 6], relevant),
            (vec![1], [9].into_iter().collect()),
        ];
        let accuracy = accuracy(&lists, 3);
        assert!((accuracy.hit_rate - 2.0 / 3.0).abs() < 1e-12);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        let expected = (1.0 / ideal + (1.0 / 4f64.log2()) / ideal) / 3.0;
        assert!((accuracy.ndcg - expected).abs() < 1e-12);
    }
}
