//! The production profile's search engine: a Typesense server, behind the same
//! [`SearchIndex`] port as the embedded index, kept in step with gold by
//! [`TypesenseFollower`].
//!
//! One collection holds every document: the words (`text`, the same tokens the embedded index
//! reads, so both split `T-LIGHT` alike), the filter and facet fields, `popularity`, and, stored
//! but not indexed, the document's JSON and content hash. A second collection (`<name>_meta`)
//! holds the payload of the last sync: the gold version. Keyword search asks for every word,
//! with Typesense's typo budget set like the embedded index's (one typo from 4 letters, two from
//! 8), the best text match first and the best seller among equals. Semantic and hybrid search
//! need the product embeddings, which this adapter does not hold: they are answered by the
//! embedded index only (a request for them here is a clear `400`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use retail_domain::ports::{BoxFuture, CatchUp, Follower, GoldVersion, PortError, SearchIndex};
use retail_domain::search::{
    DocKind, Document, Facets, Hit, SearchFilters, SearchMode, SearchRequest, SearchResults,
    Suggestion, query_words, tokens,
};
use retail_lake::Lake;
use serde_json::{Value, json};

use crate::document::{Fingerprint, from_json, highlight, key_of};
use crate::error::{Error, Result};
use crate::gold::Gold;
use crate::index::{Payload, days};

/// Documents sent per import request.
const IMPORT_BATCH: usize = 5_000;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypesenseConfig {
    /// `http://127.0.0.1:8108`.
    pub url: String,
    /// The API key.
    pub api_key: String,
    /// The collection's name.
    pub collection: String,
}

/// A Typesense server's collection of gold's documents.
#[derive(Debug, Clone)]
pub struct Typesense {
    config: TypesenseConfig,
    client: reqwest::Client,
}

fn unreachable(operation: &str) -> impl Fn(reqwest::Error) -> Error + '_ {
    move |error| Error::Typesense {
        operation: operation.to_owned(),
        detail: error.to_string(),
        unreachable: true,
    }
}

impl Typesense {
    /// The collection `config.collection` on the server at `config.url`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn new(config: TypesenseConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(unreachable("client"))?;
        Ok(Self { config, client })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.url.trim_end_matches('/'))
    }

    fn meta(&self) -> String {
        format!("{}_meta", self.config.collection)
    }

    async fn send(
        &self,
        operation: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, String)> {
        let response = request
            .header("X-TYPESENSE-API-KEY", &self.config.api_key)
            .send()
            .await
            .map_err(unreachable(operation))?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable(operation))?;
        Ok((status, body))
    }

    async fn ok(&self, operation: &str, request: reqwest::RequestBuilder) -> Result<String> {
        let (status, body) = self.send(operation, request).await?;
        if !status.is_success() {
            return Err(Error::Typesense {
                operation: operation.to_owned(),
                detail: format!("{status}: {body}"),
                unreachable: status.is_server_error(),
            });
        }
        Ok(body)
    }

    fn json(operation: &str, body: &str) -> Result<Value> {
        serde_json::from_str(body).map_err(|error| Error::Typesense {
            operation: operation.to_owned(),
            detail: format!("not JSON: {error}"),
            unreachable: false,
        })
    }

    /// Creates the collections when missing.
    async fn ensure_collections(&self) -> Result<()> {
        let fields = json!([
            {"name": "kind", "type": "string", "facet": true},
            {"name": "text", "type": "string"},
            {"name": "country", "type": "string[]", "facet": true},
            {"name": "line_type", "type": "string", "facet": true, "optional": true},
            {"name": "price_band", "type": "string", "facet": true, "optional": true},
            {"name": "price", "type": "float", "optional": true},
            {"name": "first_day", "type": "int64", "optional": true},
            {"name": "last_day", "type": "int64", "optional": true},
            {"name": "popularity", "type": "float"},
        ]);
        for (name, fields) in [
            (self.config.collection.clone(), fields),
            (
                self.meta(),
                json!([{"name": "gold_version", "type": "int64"}]),
            ),
        ] {
            let (status, body) = self
                .send(
                    "get collection",
                    self.client.get(self.url(&format!("/collections/{name}"))),
                )
                .await?;
            if status.is_success() {
                continue;
            }
            if status != reqwest::StatusCode::NOT_FOUND {
                return Err(Error::Typesense {
                    operation: "get collection".to_owned(),
                    detail: format!("{status}: {body}"),
                    unreachable: status.is_server_error(),
                });
            }
            self.ok(
                "create collection",
                self.client
                    .post(self.url("/collections"))
                    .json(&json!({"name": name, "fields": fields})),
            )
            .await?;
        }
        Ok(())
    }

    /// The payload of the last sync; `None` before the first.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn payload(&self) -> Result<Option<Payload>> {
        let (status, body) = self
            .send(
                "read payload",
                self.client
                    .get(self.url(&format!("/collections/{}/documents/payload", self.meta()))),
            )
            .await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::Typesense {
                operation: "read payload".to_owned(),
                detail: format!("{status}: {body}"),
                unreachable: status.is_server_error(),
            });
        }
        let value = Self::json("read payload", &body)?;
        Ok(value["json"]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok()))
    }

    /// The documents of the collection (those `filter_by` selects, when given), with the
    /// fields `fields` only.
    async fn export(&self, fields: &str, filter_by: Option<&str>) -> Result<Vec<Value>> {
        let mut params = vec![("include_fields", fields)];
        params.extend(filter_by.map(|filter| ("filter_by", filter)));
        let body = self
            .ok(
                "export",
                self.client
                    .get(self.url(&format!(
                        "/collections/{}/documents/export",
                        self.config.collection
                    )))
                    .query(&params),
            )
            .await?;
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| Self::json("export", line))
            .collect()
    }

    /// The content hash of every document in the collection, by key.
    async fn indexed(&self) -> Result<HashMap<String, u64>> {
        let mut out = HashMap::new();
        for value in self.export("id,hash", None).await? {
            if let (Some(id), Some(hash)) = (value["id"].as_str(), value["hash"].as_str()) {
                out.insert(id.to_owned(), hash.parse().unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// Deletes the document of `key`; its answer.
    async fn delete(&self, key: &str) -> Result<(reqwest::StatusCode, String)> {
        self.send(
            "delete",
            self.client.delete(self.url(&format!(
                "/collections/{}/documents/{}",
                self.config.collection,
                urlencode(key)
            ))),
        )
        .await
    }

    /// Removes these customers' documents and their id from their invoices (as the embedded
    /// index does); the number of documents changed.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses a document.
    pub async fn forget(&self, customers: &[String]) -> Result<u64> {
        if customers.is_empty() {
            return Ok(0);
        }
        let wanted: HashSet<&str> = customers.iter().map(String::as_str).collect();
        let mut changed = 0;
        for id in customers {
            let (status, _) = self.delete(&key_of(DocKind::Customer, id)).await?;
            if status.is_success() {
                changed += 1;
            }
        }
        // Invoices name their customer: read them all (erasure is rare), rewrite those named.
        let mut lines = Vec::new();
        for value in self.export("id,json", Some("kind:=invoice")).await? {
            let Some(Document::Invoice(mut invoice)) = value["json"]
                .as_str()
                .and_then(|text| serde_json::from_str(text).ok())
                .and_then(|value| from_json(&value))
            else {
                continue;
            };
            if invoice
                .customer_id
                .as_deref()
                .is_some_and(|id| wanted.contains(id))
            {
                invoice.customer_id = None;
                let doc = Document::Invoice(invoice);
                lines.push(Self::record(&doc, &Fingerprint::of(&doc)).to_string());
            }
        }
        self.import(&lines).await?;
        Ok(changed + lines.len() as u64)
    }

    fn record(doc: &Document, print: &Fingerprint) -> Value {
        let mut value = json!({
            "id": print.key,
            "kind": doc.kind().as_str(),
            "text": tokens(&doc.text()).join(" "),
            "country": doc.countries(),
            "popularity": doc.popularity(),
            "json": print.json,
            "hash": print.hash.to_string(),
        });
        if let Some(line_type) = doc.line_type() {
            value["line_type"] = json!(line_type);
        }
        if let Document::Product(product) = doc {
            value["price_band"] = json!(product.price_band);
        }
        if let Some(price) = doc.price() {
            value["price"] = json!(price);
        }
        if let Some((first, last)) = doc.span() {
            value["first_day"] = json!(days(first));
            value["last_day"] = json!(days(last));
        }
        value
    }

    async fn import(&self, lines: &[String]) -> Result<()> {
        for chunk in lines.chunks(IMPORT_BATCH) {
            let body = self
                .ok(
                    "import",
                    self.client
                        .post(self.url(&format!(
                            "/collections/{}/documents/import?action=upsert",
                            self.config.collection
                        )))
                        .body(chunk.join("\n")),
                )
                .await?;
            for line in body.lines() {
                let value = Self::json("import", line)?;
                if value["success"] != json!(true) {
                    return Err(Error::Typesense {
                        operation: "import".to_owned(),
                        detail: line.to_owned(),
                        unreachable: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Brings the collection to `documents` of gold version `gold`: upserts what is new or
    /// changed, deletes what is gone, then records the payload.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses a document.
    pub async fn sync(&self, gold: i64, documents: &[Document]) -> Result<Payload> {
        self.ensure_collections().await?;
        let indexed = self.indexed().await?;
        let mut lines = Vec::new();
        let mut seen = HashSet::with_capacity(documents.len());
        for doc in documents {
            let print = Fingerprint::of(doc);
            if indexed.get(&print.key) != Some(&print.hash) {
                lines.push(Self::record(doc, &print).to_string());
            }
            seen.insert(print.key);
        }
        self.import(&lines).await?;
        let mut removed = 0;
        for key in indexed.keys().filter(|key| !seen.contains(*key)) {
            let (status, body) = self.delete(key).await?;
            if !status.is_success() {
                return Err(Error::Typesense {
                    operation: "delete".to_owned(),
                    detail: format!("{status}: {body}"),
                    unreachable: status.is_server_error(),
                });
            }
            removed += 1;
        }
        let payload = Payload {
            gold_version: gold,
            documents: seen.len() as u64,
            written: lines.len() as u64,
            removed,
        };
        let record = json!({
            "id": "payload",
            "gold_version": gold,
            "json": serde_json::to_string(&payload).unwrap_or_default(),
        });
        self.ok(
            "write payload",
            self.client
                .post(self.url(&format!(
                    "/collections/{}/documents/import?action=upsert",
                    self.meta()
                )))
                .body(record.to_string()),
        )
        .await?;
        Ok(payload)
    }

    fn filter_by(kind: Option<DocKind>, filters: &SearchFilters) -> String {
        let quote = |value: &str| format!("`{}`", value.replace('`', ""));
        let mut clauses = Vec::new();
        if let Some(kind) = kind {
            clauses.push(format!("kind:={}", kind.as_str()));
        }
        if let Some(country) = &filters.country {
            clauses.push(format!("country:=[{}]", quote(country)));
        }
        if let Some(line_type) = &filters.line_type {
            clauses.push(format!("line_type:={}", quote(line_type)));
        }
        if let Some(min) = filters.min_price {
            clauses.push(format!("price:>={min}"));
        }
        if let Some(max) = filters.max_price {
            clauses.push(format!("price:<={max}"));
        }
        if let Some(to) = filters.to {
            clauses.push(format!("first_day:<={}", days(to)));
        }
        if let Some(from) = filters.from {
            clauses.push(format!("last_day:>={}", days(from)));
        }
        clauses.join(" && ")
    }

    fn document(hit: &Value) -> Result<Document> {
        hit["document"]["json"]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .and_then(|value| from_json(&value))
            .ok_or_else(|| Error::Typesense {
                operation: "search".to_owned(),
                detail: "a document without its JSON: run retail search rebuild".to_owned(),
                unreachable: false,
            })
    }

    async fn query(&self, params: &[(&str, String)]) -> Result<Value> {
        let body = self
            .ok(
                "search",
                self.client
                    .get(self.url(&format!(
                        "/collections/{}/documents/search",
                        self.config.collection
                    )))
                    .query(params),
            )
            .await?;
        Self::json("search", &body)
    }

    async fn keyword(&self, request: &SearchRequest) -> Result<SearchResults> {
        let payload = self.payload().await?.ok_or_else(|| Error::NotBuilt {
            dir: self.config.collection.clone().into(),
        })?;
        let mut words = query_words(&request.text);
        if words.is_empty() {
            words = tokens(&request.text);
        }
        if words.is_empty() {
            return Ok(request.nothing(payload.gold_version));
        }
        let limit = request.limit.max(1);
        // Typesense pages: ask for the pages covering offset..offset + limit.
        let per_page = limit.min(250);
        let page = request.offset / per_page + 1;
        let skip = request.offset % per_page;
        // Codes and ids are never read with typos; Typesense's typo budget is per field, so a
        // query of codes only gets none (a code beside words can still match with a typo).
        let codes_only = words
            .iter()
            .all(|word| word.chars().any(|c| c.is_ascii_digit()));
        let mut params = vec![
            ("q", words.join(" ")),
            ("query_by", "text".to_owned()),
            ("facet_by", "country,line_type,price_band".to_owned()),
            ("max_facet_values", "300".to_owned()),
            ("num_typos", if codes_only { "0" } else { "2" }.to_owned()),
            ("min_len_1typo", "4".to_owned()),
            ("min_len_2typo", "8".to_owned()),
            ("prefix", "false".to_owned()),
            ("drop_tokens_threshold", "0".to_owned()),
            ("sort_by", "_text_match:desc,popularity:desc".to_owned()),
            ("per_page", (per_page + skip).min(250).to_string()),
            ("page", page.to_string()),
        ];
        let filter = Self::filter_by(Some(request.kind), &request.filters);
        if !filter.is_empty() {
            params.push(("filter_by", filter));
        }
        let answer = self.query(&params).await?;
        let matched: HashSet<String> = words.iter().cloned().collect();
        let mut hits = Vec::new();
        for hit in answer["hits"].as_array().into_iter().flatten().skip(skip) {
            if hits.len() >= limit {
                break;
            }
            let document = Self::document(hit)?;
            hits.push(Hit {
                highlight: highlight(&document.title(), &matched),
                score: hit["text_match"].as_f64().unwrap_or(0.0),
                document,
            });
        }
        let mut facets = Facets::default();
        for facet in answer["facet_counts"].as_array().into_iter().flatten() {
            let mut counts: Vec<(String, u64)> = facet["counts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|count| {
                    Some((
                        count["value"].as_str()?.to_owned(),
                        count["count"].as_u64()?,
                    ))
                })
                .collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            match facet["field_name"].as_str() {
                Some("country") => facets.country = counts,
                Some("line_type") => facets.line_type = counts,
                Some("price_band") => facets.price_band = counts,
                _ => {}
            }
        }
        Ok(SearchResults {
            mode: SearchMode::Keyword,
            total: answer["found"].as_u64().unwrap_or(0),
            hits,
            facets,
            corrections: Vec::new(),
            gold_version: payload.gold_version,
        })
    }

    async fn complete(
        &self,
        prefix: &str,
        kind: Option<DocKind>,
        limit: usize,
    ) -> Result<Vec<Suggestion>> {
        let words = tokens(prefix);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = vec![
            ("q", words.join(" ")),
            ("query_by", "text".to_owned()),
            ("prefix", "true".to_owned()),
            ("num_typos", "2".to_owned()),
            ("min_len_1typo", "4".to_owned()),
            ("min_len_2typo", "8".to_owned()),
            ("drop_tokens_threshold", "0".to_owned()),
            ("sort_by", "popularity:desc".to_owned()),
            ("per_page", limit.clamp(1, 250).to_string()),
        ];
        let filter = Self::filter_by(kind, &SearchFilters::default());
        if !filter.is_empty() {
            params.push(("filter_by", filter));
        }
        let answer = self.query(&params).await?;
        let mut out = Vec::new();
        for hit in answer["hits"].as_array().into_iter().flatten() {
            let document = Self::document(hit)?;
            out.push(Suggestion {
                kind: document.kind(),
                id: document.id().to_owned(),
                title: document.title(),
            });
        }
        Ok(out)
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

impl SearchIndex for Typesense {
    fn engine(&self) -> &'static str {
        "typesense"
    }

    fn search<'a>(
        &'a self,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, std::result::Result<SearchResults, PortError>> {
        Box::pin(async move {
            if request.effective_mode() != SearchMode::Keyword {
                return Err(PortError::new(Error::Invalid(format!(
                    "mode {} needs the product embeddings of the embedded index; this \
                     deployment searches with typesense (search.engine): use mode=keyword",
                    request.mode.as_str()
                ))));
            }
            self.keyword(request).await.map_err(PortError::new)
        })
    }

    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        kind: Option<DocKind>,
        limit: usize,
    ) -> BoxFuture<'a, std::result::Result<Vec<Suggestion>, PortError>> {
        Box::pin(async move {
            self.complete(prefix, kind, limit)
                .await
                .map_err(PortError::new)
        })
    }
}

/// The Typesense collection as a follower of gold.
#[derive(Debug, Clone)]
pub struct TypesenseFollower {
    lake: Lake,
    typesense: Typesense,
}

impl TypesenseFollower {
    /// Keeps `typesense` in step with `lake`'s gold.
    pub fn new(lake: Lake, typesense: Typesense) -> Self {
        Self { lake, typesense }
    }
}

impl Follower for TypesenseFollower {
    fn key(&self) -> &'static str {
        "search/typesense"
    }

    fn description(&self) -> &'static str {
        "the Typesense collection of products, customers and invoices"
    }

    fn caught_up(&self) -> BoxFuture<'_, std::result::Result<Option<GoldVersion>, PortError>> {
        Box::pin(async move {
            Ok(self
                .typesense
                .payload()
                .await
                .map_err(PortError::new)?
                .map(|payload| payload.gold_version))
        })
    }

    fn catch_up(
        &self,
        gold: GoldVersion,
    ) -> BoxFuture<'_, std::result::Result<CatchUp, PortError>> {
        Box::pin(async move {
            let data = Gold::read(&self.lake).await.map_err(PortError::new)?;
            let payload = self
                .typesense
                .sync(gold, &crate::asset::documents(&data))
                .await
                .map_err(PortError::new)?;
            Ok(CatchUp {
                rows: payload.written,
                detail_json: Some(
                    json!({"documents": payload.documents, "written": payload.written, "removed": payload.removed})
                        .to_string(),
                ),
            })
        })
    }

    fn forget(&self, customers: &[String]) -> BoxFuture<'_, std::result::Result<u64, PortError>> {
        let customers = customers.to_vec();
        Box::pin(async move {
            self.typesense
                .forget(&customers)
                .await
                .map_err(PortError::new)
        })
    }
}
