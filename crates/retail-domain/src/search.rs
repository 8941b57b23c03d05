//! What search finds and how it is asked: the documents of the search index (products,
//! customers, invoices, as gold describes them), the request and its answer, and the text rules
//! every backend shares (tokens, stop words, edit distance, reciprocal rank fusion).
//!
//! The [`crate::ports::SearchIndex`] port takes a [`SearchRequest`] and answers
//! [`SearchResults`]; the embedded index (tantivy) and the production one (Typesense) both
//! implement it, so the service above them does not know which one answers.

use chrono::{NaiveDate, NaiveDateTime};

/// What a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKind {
    /// A stock code of `gold.dim_product`.
    Product,
    /// An identified customer of `gold.dim_customer`.
    Customer,
    /// An invoice of `gold.fact_sales`.
    Invoice,
}

impl DocKind {
    /// Every kind, in the order answers list them.
    pub const ALL: [DocKind; 3] = [DocKind::Product, DocKind::Customer, DocKind::Invoice];

    /// Its name in the API and in the index (`product`, `customer`, `invoice`).
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Product => "product",
            DocKind::Customer => "customer",
            DocKind::Invoice => "invoice",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// How results are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// BM25 over the words, typos forgiven.
    #[default]
    Keyword,
    /// Nearest product embeddings to the query's embedding.
    Semantic,
    /// Both lists fused by reciprocal rank fusion ([`reciprocal_rank_fusion`]).
    Hybrid,
}

impl SearchMode {
    /// Its name in the API (`keyword`, `semantic`, `hybrid`).
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Keyword => "keyword",
            SearchMode::Semantic => "semantic",
            SearchMode::Hybrid => "hybrid",
        }
    }

    /// The mode named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Keyword, Self::Semantic, Self::Hybrid]
            .into_iter()
            .find(|mode| mode.as_str() == name)
    }
}

/// A product as search shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductDoc {
    /// The stock code.
    pub stock_code: String,
    /// The description (`gold.dim_product`); empty when the product has none.
    pub description: String,
    /// `product`, `shipping`, `discount`, ...
    pub line_type: String,
    /// The median unit price of its purchase lines (price above 0); 0 when it has none.
    pub price: f64,
    /// The price's band ([`price_band`]).
    pub price_band: String,
    /// The countries it was sold in (purchase lines), by name, sorted.
    pub countries: Vec<String>,
    /// Units sold (Σ quantity of purchase lines).
    pub units: i64,
    /// Net revenue (Σ `total_amount` of all its lines).
    pub revenue: f64,
    /// Orders it was part of.
    pub orders: i64,
    /// Its first and last sale dates.
    pub first_sale: Option<NaiveDate>,
    /// See `first_sale`.
    pub last_sale: Option<NaiveDate>,
}

/// An identified customer as search shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerDoc {
    /// The customer id.
    pub customer_id: String,
    /// The current country.
    pub country: String,
    /// The RFM segment; `None` without a purchase.
    pub segment: Option<String>,
    /// The first and last purchase dates (lines with quantity > 0).
    pub first_purchase: Option<NaiveDate>,
    /// See `first_purchase`.
    pub last_purchase: Option<NaiveDate>,
    /// Orders (distinct non-cancellation invoices with a purchase line).
    pub orders: i64,
    /// Net revenue (Σ `total_amount` of all their lines).
    pub revenue: f64,
}

/// An invoice as search shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceDoc {
    /// The invoice number.
    pub invoice: String,
    /// The customer; `None` for a guest sale.
    pub customer_id: Option<String>,
    /// The country.
    pub country: String,
    /// The invoice date (its first line's).
    pub date: NaiveDateTime,
    /// Σ `total_amount` of its lines.
    pub total: f64,
    /// Its lines.
    pub lines: i64,
    /// Whether it is a cancellation (`C...`).
    pub cancellation: bool,
}

/// A document of the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A product.
    Product(ProductDoc),
    /// A customer.
    Customer(CustomerDoc),
    /// An invoice.
    Invoice(InvoiceDoc),
}

impl Document {
    /// Its kind.
    pub fn kind(&self) -> DocKind {
        match self {
            Document::Product(_) => DocKind::Product,
            Document::Customer(_) => DocKind::Customer,
            Document::Invoice(_) => DocKind::Invoice,
        }
    }

    /// Its id within its kind: stock code, customer id, invoice number.
    pub fn id(&self) -> &str {
        match self {
            Document::Product(product) => &product.stock_code,
            Document::Customer(customer) => &customer.customer_id,
            Document::Invoice(invoice) => &invoice.invoice,
        }
    }

    /// The line a result list shows first: a product's description, `Customer 12345`,
    /// `Invoice 536365`.
    pub fn title(&self) -> String {
        match self {
            Document::Product(product) if !product.description.is_empty() => {
                product.description.clone()
            }
            Document::Product(product) => product.stock_code.clone(),
            Document::Customer(customer) => format!("Customer {}", customer.customer_id),
            Document::Invoice(invoice) => format!("Invoice {}", invoice.invoice),
        }
    }

    /// The words keyword search matches: every name, code and place of the document.
    pub fn text(&self) -> String {
        match self {
            Document::Product(product) => format!(
                "{} {} {}",
                product.stock_code, product.description, product.line_type
            ),
            Document::Customer(customer) => format!(
                "{} {} {}",
                customer.customer_id,
                customer.country,
                customer.segment.as_deref().unwrap_or("")
            ),
            Document::Invoice(invoice) => format!(
                "{} {} {}",
                invoice.invoice,
                invoice.customer_id.as_deref().unwrap_or("guest"),
                invoice.country
            ),
        }
    }

    /// The countries a country filter and the country facet see.
    pub fn countries(&self) -> Vec<&str> {
        match self {
            Document::Product(product) => product.countries.iter().map(String::as_str).collect(),
            Document::Customer(customer) => vec![customer.country.as_str()],
            Document::Invoice(invoice) => vec![invoice.country.as_str()],
        }
    }

    /// What a price filter compares: a product's price, an invoice's total; customers have
    /// none.
    pub fn price(&self) -> Option<f64> {
        match self {
            Document::Product(product) => Some(product.price),
            Document::Customer(_) => None,
            Document::Invoice(invoice) => Some(invoice.total),
        }
    }

    /// The days a date filter compares (first and last): a product's sales, a customer's
    /// purchases, an invoice's date.
    pub fn span(&self) -> Option<(NaiveDate, NaiveDate)> {
        match self {
            Document::Product(product) => product.first_sale.zip(product.last_sale),
            Document::Customer(customer) => customer.first_purchase.zip(customer.last_purchase),
            Document::Invoice(invoice) => Some((invoice.date.date(), invoice.date.date())),
        }
    }

    /// The line type a filter and a facet see (products only).
    pub fn line_type(&self) -> Option<&str> {
        match self {
            Document::Product(product) => Some(&product.line_type),
            _ => None,
        }
    }

    /// How much it sold or spent: the tie-break of equal text scores (units for a product,
    /// orders for a customer, the absolute total for an invoice).
    pub fn popularity(&self) -> f64 {
        match self {
            Document::Product(product) => product.units.max(0) as f64,
            Document::Customer(customer) => customer.orders.max(0) as f64,
            Document::Invoice(invoice) => invoice.total.abs(),
        }
    }
}

/// The band of a product's price: `under 1`, `1-2`, `2-5`, `5-10`, `10-50`, `50 and over`
/// (lower bound inclusive).
pub fn price_band(price: f64) -> &'static str {
    match price {
        p if p < 1.0 => "under 1",
        p if p < 2.0 => "1-2",
        p if p < 5.0 => "2-5",
        p if p < 10.0 => "5-10",
        p if p < 50.0 => "10-50",
        _ => "50 and over",
    }
}

/// What narrows a search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilters {
    /// Documents of this country (a product: sold there).
    pub country: Option<String>,
    /// Price (product) or total (invoice) at least this.
    pub min_price: Option<f64>,
    /// Price (product) or total (invoice) at most this.
    pub max_price: Option<f64>,
    /// Products of this line type.
    pub line_type: Option<String>,
    /// Documents whose span ([`Document::span`]) ends on or after this day.
    pub from: Option<NaiveDate>,
    /// Documents whose span starts on or before this day.
    pub to: Option<NaiveDate>,
}

impl SearchFilters {
    /// Whether `doc` passes every filter (the rule each backend implements in its own query
    /// language, stated once).
    pub fn accept(&self, doc: &Document) -> bool {
        if let Some(country) = &self.country
            && !doc.countries().contains(&country.as_str())
        {
            return false;
        }
        if self.min_price.is_some() || self.max_price.is_some() {
            let Some(price) = doc.price() else {
                return false;
            };
            if self.min_price.is_some_and(|min| price < min)
                || self.max_price.is_some_and(|max| price > max)
            {
                return false;
            }
        }
        if let Some(line_type) = &self.line_type
            && doc.line_type() != Some(line_type.as_str())
        {
            return false;
        }
        if self.from.is_some() || self.to.is_some() {
            let Some((first, last)) = doc.span() else {
                return false;
            };
            if self.from.is_some_and(|from| last < from) || self.to.is_some_and(|to| first > to) {
                return false;
            }
        }
        true
    }
}

/// A search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// What the user typed.
    pub text: String,
    /// Which documents.
    pub kind: DocKind,
    /// How to rank.
    pub mode: SearchMode,
    /// What narrows it.
    pub filters: SearchFilters,
    /// Results skipped (the cursor).
    pub offset: usize,
    /// Results wanted.
    pub limit: usize,
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The document, enough to render a result line.
    pub document: Document,
    /// The ranking score (BM25 for keyword, cosine for semantic, fused for hybrid).
    pub score: f64,
    /// The title with the matched words in `<em>`; `None` when no word matched.
    pub highlight: Option<String>,
}

/// Counts of matching documents by value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    /// By country, most first.
    pub country: Vec<(String, u64)>,
    /// By line type (products).
    pub line_type: Vec<(String, u64)>,
    /// By price band (products).
    pub price_band: Vec<(String, u64)>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// How the results were ranked: as asked for products; always keyword for customers and
    /// invoices, which have no embeddings.
    pub mode: SearchMode,
    /// Documents matching (keyword), or considered (semantic: the neighbours kept).
    pub total: u64,
    /// The page of results.
    pub hits: Vec<Hit>,
    /// Counts over all matching documents.
    pub facets: Facets,
    /// Query words read as other words (`chrismas` → `christmas`).
    pub corrections: Vec<(String, String)>,
    /// The gold version the index reflects.
    pub gold_version: i64,
}

/// A completion of what is being typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The document's kind.
    pub kind: DocKind,
    /// Its id.
    pub id: String,
    /// What to show.
    pub title: String,
}

/// Words that carry no meaning in a product search.
pub const STOP_WORDS: [&str; 24] = [
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on",
    "or", "that", "the", "to", "was", "with", "some", "my", "our",
];

/// The words of `text` as every backend reads them: runs of letters and digits, lowercased
/// (tantivy's default tokenizer: split on anything else, lowercase).
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The words of a query that carry meaning: [`tokens`] without [`STOP_WORDS`].
pub fn query_words(text: &str) -> Vec<String> {
    tokens(text)
        .into_iter()
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .collect()
}

/// The optimal-string-alignment distance between two words: insertions, deletions,
/// substitutions and transpositions of adjacent letters each cost 1.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, cell) in d.iter_mut().step_by(width).enumerate() {
        *cell = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The typos forgiven in a word of `len` letters: none up to 3, one up to 7, two beyond
/// (words with digits, codes and numbers, are never corrected).
pub fn typos_allowed(word: &str) -> usize {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return 0;
    }
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// The constant of reciprocal rank fusion (Cormack et al. 2009).
pub const RRF_K: f64 = 60.0;

/// Reciprocal rank fusion: each id scores Σ 1 / ([`RRF_K`] + rank) over the lists it is in
/// (ranks from 1); ties keep the order of first appearance. Returns ids with their fused
/// scores, best first.
pub fn reciprocal_rank_fusion<'a>(lists: &[&'a [String]]) -> Vec<(&'a str, f64)> {
    let mut fused: Vec<(&'a str, f64)> = Vec::new();
    let mut position = std::collections::HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            let score = 1.0 / (RRF_K + rank as f64 + 1.0);
            match position.get(id.as_str()) {
                Some(&at) => {
                    let entry: &mut (&str, f64) = &mut fused[at];
                    entry.1 += score;
                }
                None => {
                    position.insert(id.as_str(), fused.len());
                    fused.push((id.as_str(), score));
                }
            }
        }
    }
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
}

impl SearchRequest {
    /// The mode that applies: the one asked for products, keyword for customers and invoices
    /// (only products have embeddings).
    pub fn effective_mode(&self) -> SearchMode {
        if self.kind == DocKind::Product {
            self.mode
        } else {
            SearchMode::Keyword
        }
    }

    /// Whether the text has a word to search for (letters or digits): a query of punctuation
    /// only finds nothing.
    pub fn has_words(&self) -> bool {
        !tokens(&self.text).is_empty()
    }

    /// The answer to a request that finds nothing.
    pub fn nothing(&self, gold_version: i64) -> SearchResults {
        SearchResults {
            mode: self.effective_mode(),
            total: 0,
            hits: Vec::new(),
            facets: Facets::default(),
            corrections: Vec::new(),
            gold_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_one_for_a_missing_letter_and_for_a_transposition() {
        assert_eq!(edit_distance("chrismas", "christmas"), 1);
        assert_eq!(edit_distance("retrospot", "retorspot"), 1);
        assert_eq!(edit_distance("lights", "lights"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("teapot", "cake"), 5);
    }

    #[test]
    fn words_are_lowercased_runs_of_letters_and_digits_and_stop_words_leave_queries() {
        assert_eq!(
            tokens("RED RETROSPOT CAKE-STAND 85123A"),
            ["red", "retrospot", "cake", "stand", "85123a"]
        );
        assert_eq!(
            query_words("gifts for a tea party"),
            ["gifts", "tea", "party"]
        );
        assert_eq!(typos_allowed("tea"), 0);
        assert_eq!(typos_allowed("chrismas"), 2);
        assert_eq!(typos_allowed("85123a"), 0);
    }

    #[test]
    fn fusion_adds_reciprocal_ranks_so_an_id_in_both_lists_wins() {
        let keyword = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let semantic = ["c".to_owned(), "d".to_owned()];
        let fused = reciprocal_rank_fusion(&[&keyword, &semantic]);
        assert_eq!(fused[0].0, "c");
        assert!((fused[0].1 - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-12);
        assert_eq!(
            fused.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            ["c", "a", "b", "d"]
        );
    }

    #[test]
    fn filters_compare_price_span_country_and_line_type() {
        let product = Document::Product(ProductDoc {
            stock_code: "22423".to_owned(),
            description: "REGENCY CAKESTAND 3 TIER".to_owned(),
            line_type: "product".to_owned(),
            price: 12.75,
            price_band: price_band(12.75).to_owned(),
            countries: vec!["France".to_owned(), "United Kingdom".to_owned()],
            units: 10,
            revenue: 127.5,
            orders: 2,
            first_sale: NaiveDate::from_ymd_opt(2010, 12, 1),
            last_sale: NaiveDate::from_ymd_opt(2011, 3, 1),
        });
        let filters = |f: SearchFilters| f.accept(&product);
        assert!(filters(SearchFilters::default()));
        assert!(filters(SearchFilters {
            country: Some("France".to_owned()),
            min_price: Some(10.0),
            max_price: Some(12.75),
            ..SearchFilters::default()
        }));
        assert!(!filters(SearchFilters {
            country: Some("Spain".to_owned()),
            ..SearchFilters::default()
        }));
        assert!(!filters(SearchFilters {
            from: NaiveDate::from_ymd_opt(2011, 3, 2),
            ..SearchFilters::default()
        }));
        assert!(filters(SearchFilters {
            to: NaiveDate::from_ymd_opt(2010, 12, 1),
            line_type: Some("product".to_owned()),
            ..SearchFilters::default()
        }));
        assert_eq!(price_band(12.75), "10-50");
    }
}
