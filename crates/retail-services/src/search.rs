//! [`SearchService`]: searches and completions over the search index port
//! ([`retail_domain::ports::SearchIndex`]: the embedded tantivy index or Typesense), with the
//! request checked and the answer shaped for the API.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use retail_domain::ports::SearchIndex;
use retail_domain::search::{
    DocKind, Document, Hit, SearchFilters, SearchMode, SearchRequest, Suggestion,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{Error, Result};

/// The most results one page holds.
pub const MAX_LIMIT: usize = 100;
/// How deep pages go (offset + limit).
pub const MAX_DEPTH: usize = 1_000;
/// The longest query.
pub const MAX_QUERY_CHARS: usize = 200;

/// `GET /api/v1/search`'s parameters, as sent.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// What the user typed.
    pub q: String,
    /// `product` (default), `customer` or `invoice`.
    pub kind: Option<String>,
    /// `keyword` (default), `semantic` or `hybrid`.
    pub mode: Option<String>,
    /// Country filter.
    pub country: Option<String>,
    /// Price (product) or total (invoice) at least.
    pub min_price: Option<f64>,
    /// Price (product) or total (invoice) at most.
    pub max_price: Option<f64>,
    /// Line type filter (products).
    pub line_type: Option<String>,
    /// Span ends on or after.
    pub from: Option<NaiveDate>,
    /// Span starts on or before.
    pub to: Option<NaiveDate>,
    /// Results per page (1 to 100, default 20).
    pub limit: Option<usize>,
    /// Where the page starts: the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A product in a result list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductResult {
    /// Stock code.
    pub stock_code: String,
    /// Description.
    pub description: String,
    /// Line type.
    pub line_type: String,
    /// Median unit price of its purchase lines (2 decimals).
    pub price: f64,
    /// `under 1`, `1-2`, `2-5`, `5-10`, `10-50`, `50 and over`.
    pub price_band: String,
    /// Countries it was sold in.
    pub countries: Vec<String>,
    /// Units sold.
    pub units: i64,
    /// Net revenue (2 decimals).
    pub revenue: f64,
    /// Orders it was part of.
    pub orders: i64,
    /// First sale.
    pub first_sale: Option<NaiveDate>,
    /// Last sale.
    pub last_sale: Option<NaiveDate>,
}

/// A customer in a result list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerResult {
    /// Customer id.
    pub customer_id: String,
    /// Current country.
    pub country: String,
    /// RFM segment.
    pub segment: Option<String>,
    /// First purchase.
    pub first_purchase: Option<NaiveDate>,
    /// Last purchase.
    pub last_purchase: Option<NaiveDate>,
    /// Orders.
    pub orders: i64,
    /// Net revenue (2 decimals).
    pub revenue: f64,
}

/// An invoice in a result list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceResult {
    /// Invoice number.
    pub invoice: String,
    /// Customer; absent for a guest sale.
    pub customer_id: Option<String>,
    /// Country.
    pub country: String,
    /// Invoice date and time (local, as in the source).
    pub date: chrono::NaiveDateTime,
    /// Σ total amount of its lines (2 decimals).
    pub total: f64,
    /// Lines.
    pub lines: i64,
    /// Whether it is a cancellation.
    pub cancellation: bool,
}

/// One result: its kind, id, title, highlight and score, and the document of its kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    /// `product`, `customer` or `invoice`.
    pub kind: String,
    /// Stock code, customer id or invoice number.
    pub id: String,
    /// What a result list shows first.
    pub title: String,
    /// The title with the matched words in `<em>`.
    pub highlight: Option<String>,
    /// The ranking score (BM25 for keyword, cosine for semantic, fused for hybrid).
    pub score: f64,
    /// The product, for a product result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductResult>,
    /// The customer, for a customer result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerResult>,
    /// The invoice, for an invoice result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceResult>,
}

/// A value and the matching documents that have it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FacetCount {
    /// The value.
    pub value: String,
    /// Documents.
    pub count: u64,
}

/// Counts of matching documents by value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchFacets {
    /// By country, most first.
    pub country: Vec<FacetCount>,
    /// By line type (products).
    pub line_type: Vec<FacetCount>,
    /// By price band (products).
    pub price_band: Vec<FacetCount>,
}

/// A query word read as another.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Correction {
    /// As typed.
    pub word: String,
    /// As searched.
    pub read_as: String,
}

/// A page of results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchPage {
    /// The engine that answered (`tantivy`, `typesense`).
    pub engine: String,
    /// How the results were ranked: `keyword`, `semantic` or `hybrid` as asked for products;
    /// `keyword` for customers and invoices (only products have embeddings).
    pub mode: String,
    /// Documents matching (keyword), or kept (semantic, hybrid).
    pub total: u64,
    /// The results.
    pub hits: Vec<SearchHit>,
    /// Counts over the matching documents (keyword and hybrid: the keyword matches; semantic:
    /// the neighbours kept).
    pub facets: SearchFacets,
    /// Words read as others (typos).
    pub corrections: Vec<Correction>,
    /// The cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// The gold version the index reflects.
    pub gold_version: i64,
}

/// A completion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuggestItem {
    /// `product`, `customer` or `invoice`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// What to show.
    pub title: String,
}

/// Searches and completions.
#[async_trait]
pub trait SearchService: Send + Sync {
    /// A page of results.
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage>;
    /// Completions of what is being typed (`kind`: one kind, or any).
    async fn suggest(
        &self,
        q: &str,
        kind: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<SuggestItem>>;
}

/// [`SearchService`] over a search index.
#[derive(Debug)]
pub struct Search {
    index: Arc<dyn SearchIndex>,
}

impl Search {
    /// Searches `index`.
    pub fn new(index: Arc<dyn SearchIndex>) -> Self {
        Self { index }
    }
}

fn money(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn kind(name: Option<&str>) -> Result<Option<DocKind>> {
    name.map(|name| {
        DocKind::parse(name).ok_or_else(|| {
            Error::invalid(format!(
                "type must be product, customer or invoice, not {name:?}"
            ))
        })
    })
    .transpose()
}

fn query_text(q: &str) -> Result<String> {
    let q = q.trim();
    if q.is_empty() {
        return Err(Error::invalid("q must not be empty"));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(format!(
            "q must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(q.to_owned())
}

/// The cursor of the page starting at `offset`.
fn cursor(offset: usize) -> String {
    format!("o{offset}")
}

fn offset(cursor: Option<&str>) -> Result<usize> {
    let Some(cursor) = cursor else {
        return Ok(0);
    };
    cursor
        .strip_prefix('o')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < MAX_DEPTH)
        .ok_or_else(|| {
            Error::invalid(format!(
                "cursor {cursor:?} is not one this API gave (use next_cursor of the previous page)"
            ))
        })
}

fn hit(hit: Hit) -> SearchHit {
    let mut out = SearchHit {
        kind: hit.document.kind().as_str().to_owned(),
        id: hit.document.id().to_owned(),
        title: hit.document.title(),
        highlight: hit.highlight,
        score: hit.score,
        product: None,
        customer: None,
        invoice: None,
    };
    match hit.document {
        Document::Product(p) => {
            out.product = Some(ProductResult {
                stock_code: p.stock_code,
                description: p.description,
                line_type: p.line_type,
                price: money(p.price),
                price_band: p.price_band,
                countries: p.countries,
                units: p.units,
                revenue: money(p.revenue),
                orders: p.orders,
                first_sale: p.first_sale,
                last_sale: p.last_sale,
            });
        }
        Document::Customer(c) => {
            out.customer = Some(CustomerResult {
                customer_id: c.customer_id,
                country: c.country,
                segment: c.segment,
                first_purchase: c.first_purchase,
                last_purchase: c.last_purchase,
                orders: c.orders,
                revenue: money(c.revenue),
            });
        }
        Document::Invoice(i) => {
            out.invoice = Some(InvoiceResult {
                invoice: i.invoice,
                customer_id: i.customer_id,
                country: i.country,
                date: i.date,
                total: money(i.total),
                lines: i.lines,
                cancellation: i.cancellation,
            });
        }
    }
    out
}

fn counts(values: Vec<(String, u64)>) -> Vec<FacetCount> {
    values
        .into_iter()
        .map(|(value, count)| FacetCount { value, count })
        .collect()
}

/// The request a query makes, checked.
///
/// # Errors
///
/// When a parameter is out of range or unknown.
pub fn request(query: &SearchQuery) -> Result<SearchRequest> {
    let text = query_text(&query.q)?;
    let kind = kind(query.kind.as_deref())?.unwrap_or(DocKind::Product);
    let mode = match query.mode.as_deref() {
        None => SearchMode::Keyword,
        Some(name) => SearchMode::parse(name).ok_or_else(|| {
            Error::invalid(format!(
                "mode must be keyword, semantic or hybrid, not {name:?}"
            ))
        })?,
    };
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!(
            "limit must be 1 to {MAX_LIMIT}, not {limit}"
        )));
    }
    for (name, value) in [
        ("min_price", query.min_price),
        ("max_price", query.max_price),
    ] {
        if value.is_some_and(|value| !value.is_finite()) {
            return Err(Error::invalid(format!("{name} must be a finite number")));
        }
    }
    let offset = offset(query.cursor.as_deref())?;
    Ok(SearchRequest {
        text,
        kind,
        mode,
        filters: SearchFilters {
            country: query.country.clone(),
            min_price: query.min_price,
            max_price: query.max_price,
            line_type: query.line_type.clone(),
            from: query.from,
            to: query.to,
        },
        offset,
        limit: limit.min(MAX_DEPTH - offset),
    })
}

#[async_trait]
impl SearchService for Search {
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        let request = request(query)?;
        let found = self
            .index
            .search(&request)
            .await
            .map_err(Error::from_classified)?;
        let next = request.offset + found.hits.len();
        let next_cursor =
            (found.hits.len() == request.limit && (next as u64) < found.total && next < MAX_DEPTH)
                .then(|| cursor(next));
        Ok(SearchPage {
            engine: self.index.engine().to_owned(),
            mode: found.mode.as_str().to_owned(),
            total: found.total,
            hits: found.hits.into_iter().map(hit).collect(),
            facets: SearchFacets {
                country: counts(found.facets.country),
                line_type: counts(found.facets.line_type),
                price_band: counts(found.facets.price_band),
            },
            corrections: found
                .corrections
                .into_iter()
                .map(|(word, read_as)| Correction { word, read_as })
                .collect(),
            next_cursor,
            gold_version: found.gold_version,
        })
    }

    async fn suggest(
        &self,
        q: &str,
        kind_name: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<SuggestItem>> {
        let text = query_text(q)?;
        let kind = kind(kind_name)?;
        let limit = limit.unwrap_or(10);
        if !(1..=50).contains(&limit) {
            return Err(Error::invalid(format!(
                "limit must be 1 to 50, not {limit}"
            )));
        }
        let found = self
            .index
            .suggest(&text, kind, limit)
            .await
            .map_err(Error::from_classified)?;
        Ok(found
            .into_iter()
            .map(|Suggestion { kind, id, title }| SuggestItem {
                kind: kind.as_str().to_owned(),
                id,
                title,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_and_cursors_are_ours() {
        let ok = request(&SearchQuery {
            q: " red retrospot ".to_owned(),
            cursor: Some(cursor(40)),
            ..SearchQuery::default()
        })
        .unwrap();
        assert_eq!(
            (ok.text.as_str(), ok.offset, ok.limit),
            ("red retrospot", 40, 20)
        );
        assert_eq!(ok.kind, DocKind::Product);
        for (bad, expected) in [
            (SearchQuery::default(), "q must not be empty"),
            (
                SearchQuery {
                    q: "x".to_owned(),
                    kind: Some("shop".to_owned()),
                    ..SearchQuery::default()
                },
                "type must be",
            ),
            (
                SearchQuery {
                    q: "x".to_owned(),
                    mode: Some("magic".to_owned()),
                    ..SearchQuery::default()
                },
                "mode must be",
            ),
            (
                SearchQuery {
                    q: "x".to_owned(),
                    limit: Some(0),
                    ..SearchQuery::default()
                },
                "limit must be",
            ),
            (
                SearchQuery {
                    q: "x".to_owned(),
                    cursor: Some("abc".to_owned()),
                    ..SearchQuery::default()
                },
                "cursor",
            ),
            (
                SearchQuery {
                    q: "x".repeat(201),
                    ..SearchQuery::default()
                },
                "at most 200",
            ),
        ] {
            let error = request(&bad).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
    }
}
