//! [`RecommendationsService`]: what sells with a product and what to suggest to a customer, as
//! the recommendations asset wrote it to gold (`product_pairs`, `product_neighbours`,
//! `customer_recommendations`), read from the lake and kept in memory until one of those
//! tables moves (checked at most once a second).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use retail_domain::ports::ConsentRegister;
use retail_lake::Lake;
use retail_lake::arrow::array::RecordBatch;
use retail_lake::schema::{
    GOLD_CUSTOMER_RECOMMENDATIONS, GOLD_DIM_PRODUCT, GOLD_PRODUCT_NEIGHBOURS, GOLD_PRODUCT_PAIRS,
    TableSpec,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::columns::Columns;
use crate::tables::TableCache;
use crate::{Error, Result};

/// The tables read, in the order of the versions kept.
const TABLES: [TableSpec; 4] = [
    GOLD_PRODUCT_PAIRS,
    GOLD_PRODUCT_NEIGHBOURS,
    GOLD_CUSTOMER_RECOMMENDATIONS,
    GOLD_DIM_PRODUCT,
];

/// What narrows a product's recommendations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleThresholds {
    /// Rules with at least this support.
    pub min_support: f64,
    /// Rules with at least this confidence.
    pub min_confidence: f64,
    /// Rules with at least this lift.
    pub min_lift: f64,
    /// Products per list (1 to 100).
    pub limit: usize,
}

impl Default for RuleThresholds {
    fn default() -> Self {
        Self {
            min_support: 0.0,
            min_confidence: 0.0,
            min_lift: 1.0,
            limit: 10,
        }
    }
}

/// An association rule `stock_code ⇒ this`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoughtTogether {
    /// The product recommended.
    pub stock_code: String,
    /// Its description.
    pub description: Option<String>,
    /// Baskets with both / all baskets.
    pub support: f64,
    /// support / support(the product asked about).
    pub confidence: f64,
    /// confidence / support(this product).
    pub lift: f64,
    /// Baskets with both.
    pub baskets_both: i64,
    /// What a client can show.
    pub reason: String,
}

/// A product bought by the same customers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlsoBought {
    /// The product recommended.
    pub stock_code: String,
    /// Its description.
    pub description: Option<String>,
    /// Cosine over the customers who bought them.
    pub similarity: f64,
    /// Customers who bought both.
    pub customers_both: i64,
    /// What a client can show.
    pub reason: String,
}

/// `GET /api/v2/recommendations/products/{stock_code}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductRecommendations {
    /// The product asked about.
    pub stock_code: String,
    /// Its description.
    pub description: Option<String>,
    /// All baskets the rules were counted on.
    pub baskets: i64,
    /// Baskets with this product.
    pub baskets_with_product: i64,
    /// Rules kept when the two products share at least this many baskets: lower thresholds
    /// than that find nothing more.
    pub stored_min_pair_baskets: i64,
    /// Frequently bought together, by lift then confidence.
    pub bought_together: Vec<BoughtTogether>,
    /// Customers who bought this also bought, by similarity.
    pub also_bought: Vec<AlsoBought>,
    /// The gold version they were fitted on.
    pub gold_version: Option<i64>,
}

/// A product for a customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForYou {
    /// 1 for the best.
    pub rank: i32,
    /// The product.
    pub stock_code: String,
    /// Its description.
    pub description: Option<String>,
    /// Σ similarity to their products (0 for a best seller filling the list).
    pub score: f64,
    /// The product of their history it is most like; absent for a best seller.
    pub because: Option<String>,
    /// What a client can show.
    pub reason: String,
}

/// `GET /api/v2/recommendations/customers/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerRecommendations {
    /// The customer.
    pub customer_id: String,
    /// Products they have not bought, best first; empty when the customer has not
    /// consented to profiling.
    pub products: Vec<ForYou>,
    /// Why there is no personal list although the customer is known (`no consent to
    /// profiling`); absent otherwise.
    pub withheld: Option<String>,
    /// The gold version they were fitted on.
    pub gold_version: Option<i64>,
}

/// What sells with what.
#[async_trait]
pub trait RecommendationsService: Send + Sync {
    /// A product's rules and neighbours.
    async fn product(
        &self,
        stock_code: &str,
        thresholds: RuleThresholds,
    ) -> Result<ProductRecommendations>;
    /// A customer's products for them.
    async fn customer(&self, customer_id: &str, limit: usize) -> Result<CustomerRecommendations>;
}

#[derive(Debug, Clone)]
struct RuleRow {
    /// Index into [`Snapshot::codes`].
    consequent: u32,
    support: f64,
    confidence: f64,
    lift: f64,
    baskets_antecedent: i64,
    baskets_both: i64,
}

#[derive(Debug, Clone)]
struct NeighbourRow {
    neighbour: String,
    similarity: f64,
    customers_both: i64,
}

#[derive(Debug, Clone)]
struct PickRow {
    rank: i32,
    stock_code: String,
    score: f64,
    because: Option<String>,
}

#[derive(Debug, Default)]
struct Snapshot {
    gold_version: Option<i64>,
    baskets: i64,
    min_pair_baskets: i64,
    /// Stock codes, interned: the rules are hundreds of thousands.
    codes: Vec<String>,
    code_index: HashMap<String, u32>,
    rules: HashMap<u32, Vec<RuleRow>>,
    neighbours: HashMap<String, Vec<NeighbourRow>>,
    customers: HashMap<String, Vec<PickRow>>,
    descriptions: HashMap<String, Option<String>>,
}

/// [`RecommendationsService`] over the lake's recommendation tables.
#[derive(Debug)]
pub struct LakeRecommendations {
    tables: TableCache<Snapshot>,
    min_pair_baskets: i64,
    consent: Option<Arc<dyn ConsentRegister>>,
}

impl LakeRecommendations {
    /// The recommendations of `lake`, whose rules were kept from `min_pair_baskets` shared
    /// baskets.
    pub fn new(lake: Lake, min_pair_baskets: u32) -> Self {
        Self {
            tables: TableCache::new(lake, &TABLES),
            min_pair_baskets: i64::from(min_pair_baskets),
            consent: None,
        }
    }

    /// Answers "for you" lists only for customers `register` allows to be profiled: a
    /// withdrawal counts at once, before the recommendations asset runs again (ADR 0014).
    #[must_use]
    pub fn with_consent(mut self, register: Arc<dyn ConsentRegister>) -> Self {
        self.consent = Some(register);
        self
    }

    async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        self.tables.get(|versions| self.load(versions)).await
    }

    async fn read(&self, table: &TableSpec, version: Option<u64>) -> Result<Vec<RecordBatch>> {
        self.tables.read(table, version).await
    }

    async fn load(&self, versions: Vec<Option<u64>>) -> Result<Snapshot> {
        let mut snapshot = Snapshot {
            min_pair_baskets: self.min_pair_baskets,
            ..Snapshot::default()
        };
        for batch in self.read(&GOLD_PRODUCT_PAIRS, versions[0]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot.baskets = c.int("baskets", row)?;
                let antecedent = snapshot.intern(c.text("antecedent", row)?);
                let consequent = snapshot.intern(c.text("consequent", row)?);
                snapshot.rules.entry(antecedent).or_default().push(RuleRow {
                    consequent,
                    support: c.float("support", row)?,
                    confidence: c.float("confidence", row)?,
                    lift: c.float("lift", row)?,
                    baskets_antecedent: c.int("baskets_antecedent", row)?,
                    baskets_both: c.int("baskets_both", row)?,
                });
            }
        }
        let codes = &snapshot.codes;
        for rules in snapshot.rules.values_mut() {
            rules.sort_by(|a, b| {
                b.lift
                    .total_cmp(&a.lift)
                    .then(b.confidence.total_cmp(&a.confidence))
                    .then(codes[a.consequent as usize].cmp(&codes[b.consequent as usize]))
            });
        }
        for batch in self.read(&GOLD_PRODUCT_NEIGHBOURS, versions[1]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot
                    .neighbours
                    .entry(c.text("stock_code", row)?)
                    .or_default()
                    .push(NeighbourRow {
                        neighbour: c.text("neighbour", row)?,
                        similarity: c.float("similarity", row)?,
                        customers_both: c.int("customers_both", row)?,
                    });
            }
        }
        for batch in self
            .read(&GOLD_CUSTOMER_RECOMMENDATIONS, versions[2])
            .await?
        {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot
                    .customers
                    .entry(c.text("customer_id", row)?)
                    .or_default()
                    .push(PickRow {
                        rank: c
                            .primitive::<retail_lake::arrow::datatypes::Int32Type>("rank", row)?,
                        stock_code: c.text("stock_code", row)?,
                        score: c.float("score", row)?,
                        because: c.text_opt("because", row)?,
                    });
            }
        }
        for picks in snapshot.customers.values_mut() {
            picks.sort_by_key(|pick| pick.rank);
        }
        for batch in self.read(&GOLD_DIM_PRODUCT, versions[3]).await? {
            let c = Columns(&batch);
            for row in 0..batch.num_rows() {
                snapshot
                    .descriptions
                    .insert(c.text("stock_code", row)?, c.text_opt("description", row)?);
            }
        }
        if versions[2].is_some() {
            snapshot.gold_version = self
                .tables
                .lake()
                .app_version(
                    &GOLD_CUSTOMER_RECOMMENDATIONS,
                    retail_lake::schema::RECOMMENDATIONS_MARK,
                )
                .await
                .map_err(Error::from_classified)?;
        }
        Ok(snapshot)
    }
}

impl Snapshot {
    fn intern(&mut self, code: String) -> u32 {
        if let Some(&index) = self.code_index.get(&code) {
            return index;
        }
        let index = self.codes.len() as u32;
        self.code_index.insert(code.clone(), index);
        self.codes.push(code);
        index
    }

    fn description(&self, code: &str) -> Option<String> {
        self.descriptions.get(code).cloned().flatten()
    }

    fn name(&self, code: &str) -> String {
        self.description(code).unwrap_or_else(|| code.to_owned())
    }

    fn fitted(&self) -> Result<()> {
        if self.gold_version.is_none() {
            return Err(Error::not_found(
                "no recommendations yet: the recommendations asset has not been fitted on gold \
                 (run the pipeline, or `retail pipeline run --asset recommendations`)",
            ));
        }
        Ok(())
    }
}

fn check_limit(limit: usize) -> Result<()> {
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid(format!(
            "limit must be 1 to 100, not {limit}"
        )));
    }
    Ok(())
}

#[async_trait]
impl RecommendationsService for LakeRecommendations {
    async fn product(
        &self,
        stock_code: &str,
        thresholds: RuleThresholds,
    ) -> Result<ProductRecommendations> {
        check_limit(thresholds.limit)?;
        for (name, value) in [
            ("min_support", thresholds.min_support),
            ("min_confidence", thresholds.min_confidence),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::invalid(format!(
                    "{name} must be 0 to 1, not {value}"
                )));
            }
        }
        if !(thresholds.min_lift.is_finite() && thresholds.min_lift >= 0.0) {
            return Err(Error::invalid(format!(
                "min_lift must be 0 or more, not {}",
                thresholds.min_lift
            )));
        }
        let snapshot = self.snapshot().await?;
        snapshot.fitted()?;
        let code = stock_code.trim().to_uppercase();
        if !snapshot.descriptions.contains_key(&code) {
            return Err(Error::not_found(format!(
                "no product with stock code {code}"
            )));
        }
        let name = snapshot.name(&code);
        let rules = snapshot
            .code_index
            .get(&code)
            .and_then(|index| snapshot.rules.get(index))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let bought_together = rules
            .iter()
            .filter(|rule| {
                rule.support >= thresholds.min_support
                    && rule.confidence >= thresholds.min_confidence
                    && rule.lift >= thresholds.min_lift
            })
            .take(thresholds.limit)
            .map(|rule| BoughtTogether {
                description: snapshot.description(&snapshot.codes[rule.consequent as usize]),
                stock_code: snapshot.codes[rule.consequent as usize].clone(),
                support: rule.support,
                confidence: rule.confidence,
                lift: rule.lift,
                baskets_both: rule.baskets_both,
                reason: format!(
                    "in {:.0} % of the baskets with {name}",
                    rule.confidence * 100.0
                ),
            })
            .collect();
        let also_bought = snapshot
            .neighbours
            .get(&code)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .take(thresholds.limit)
            .map(|neighbour| AlsoBought {
                description: snapshot.description(&neighbour.neighbour),
                stock_code: neighbour.neighbour.clone(),
                similarity: neighbour.similarity,
                customers_both: neighbour.customers_both,
                reason: format!(
                    "{} customers who bought {name} also bought it",
                    neighbour.customers_both
                ),
            })
            .collect();
        Ok(ProductRecommendations {
            description: snapshot.description(&code),
            baskets: snapshot.baskets,
            baskets_with_product: rules.first().map_or(0, |rule| rule.baskets_antecedent),
            stored_min_pair_baskets: snapshot.min_pair_baskets,
            stock_code: code,
            bought_together,
            also_bought,
            gold_version: snapshot.gold_version,
        })
    }

    async fn customer(&self, customer_id: &str, limit: usize) -> Result<CustomerRecommendations> {
        check_limit(limit)?;
        let snapshot = self.snapshot().await?;
        snapshot.fitted()?;
        let id = customer_id.trim();
        if !crate::consent::profiling(self.consent.as_ref())
            .await?
            .allows(id)
        {
            return Ok(CustomerRecommendations {
                customer_id: id.to_owned(),
                products: Vec::new(),
                withheld: Some("no consent to profiling".to_owned()),
                gold_version: snapshot.gold_version,
            });
        }
        let picks = snapshot.customers.get(id).ok_or_else(|| {
            Error::not_found(format!(
                "no recommendations for customer {id}: no such customer, or no purchase"
            ))
        })?;
        Ok(CustomerRecommendations {
            customer_id: id.to_owned(),
            products: picks
                .iter()
                .take(limit)
                .map(|pick| ForYou {
                    rank: pick.rank,
                    description: snapshot.description(&pick.stock_code),
                    stock_code: pick.stock_code.clone(),
                    score: pick.score,
                    reason: match &pick.because {
                        Some(because) => format!("often bought with {}", snapshot.name(because)),
                        None => "a best seller you have not bought yet".to_owned(),
                    },
                    because: pick.because.clone(),
                })
                .collect(),
            withheld: None,
            gold_version: snapshot.gold_version,
        })
    }
}
