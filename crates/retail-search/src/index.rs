//! The embedded search index (tantivy): its schema, and how it is kept in step with gold.
//!
//! Every document (product, customer, invoice) is stored with its key (`kind:id`), its JSON
//! and the hash of that JSON. Bringing the index up to date compares each document's hash with
//! the indexed one and rewrites only what changed (and removes what gold no longer holds), in
//! one commit whose payload records the gold version the index then reflects. The product
//! embeddings are stored in the same commit, as one more document (kind `_model`), so the
//! vectors and the text always describe the same gold.

use std::collections::HashMap;
use std::path::Path;

use retail_domain::search::Document;
use serde::{Deserialize, Serialize};
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT,
    TantivyDocument, Value as _,
};
use tantivy::{Index, IndexWriter, Term};

use crate::document::{Fingerprint, fnv, key};
use crate::error::{Error, Result};
use crate::sealed::Location;

/// The kind of the document holding the embeddings.
pub const MODEL_KIND: &str = "_model";
const MODEL_KEY: &str = "_model:embeddings";

/// Memory the index writer may use.
const WRITER_BYTES: usize = 64 * 1024 * 1024;

/// The index's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// `kind:id`, unique.
    pub key: Field,
    /// `product`, `customer`, `invoice`, `_model`.
    pub kind: Field,
    /// The words keyword search matches.
    pub text: Field,
    /// `/country/..`, `/line_type/..`, `/price_band/..`.
    pub facet: Field,
    /// Country names (filter).
    pub country: Field,
    /// Line type (filter).
    pub line_type: Field,
    /// Price or total (filter).
    pub price: Field,
    /// First and last day, days since 1970-01-01 (filter).
    pub first_day: Field,
    /// See `first_day`.
    pub last_day: Field,
    /// The tie-break of equal scores.
    pub popularity: Field,
    /// The document's JSON.
    pub json: Field,
    /// The hash of the JSON.
    pub hash: Field,
    /// The embeddings (the model document only).
    pub model: Field,
}

impl Fields {
    /// The schema and its fields.
    pub fn schema() -> (Schema, Self) {
        let mut builder = Schema::builder();
        let fields = Self {
            key: builder.add_text_field("key", STRING | STORED),
            kind: builder.add_text_field("kind", STRING),
            text: builder.add_text_field("text", TEXT),
            facet: builder.add_facet_field("facet", FacetOptions::default()),
            country: builder.add_text_field("country", STRING),
            line_type: builder.add_text_field("line_type", STRING),
            price: builder.add_f64_field("price", INDEXED | FAST),
            first_day: builder.add_i64_field("first_day", INDEXED | FAST),
            last_day: builder.add_i64_field("last_day", INDEXED | FAST),
            popularity: builder.add_f64_field("popularity", FAST),
            json: builder.add_text_field("json", STORED),
            hash: builder.add_u64_field("hash", STORED),
            model: builder.add_bytes_field("model", STORED),
        };
        (builder.build(), fields)
    }

    /// The fields of an index's schema.
    ///
    /// # Errors
    ///
    /// When the index was written with another schema.
    pub fn of(schema: &Schema) -> Result<Self> {
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| Error::Schema {
                detail: format!("the search index has no field {name}: run retail search rebuild"),
            })
        };
        Ok(Self {
            key: field("key")?,
            kind: field("kind")?,
            text: field("text")?,
            facet: field("facet")?,
            country: field("country")?,
            line_type: field("line_type")?,
            price: field("price")?,
            first_day: field("first_day")?,
            last_day: field("last_day")?,
            popularity: field("popularity")?,
            json: field("json")?,
            hash: field("hash")?,
            model: field("model")?,
        })
    }

    fn document(&self, doc: &Document, print: &Fingerprint) -> TantivyDocument {
        let mut out = TantivyDocument::default();
        out.add_text(self.key, &print.key);
        out.add_text(self.kind, doc.kind().as_str());
        out.add_text(self.text, doc.text());
        for country in doc.countries() {
            out.add_text(self.country, country);
            out.add_facet(self.facet, Facet::from_path(["country", country]));
        }
        if let Some(line_type) = doc.line_type() {
            out.add_text(self.line_type, line_type);
            out.add_facet(self.facet, Facet::from_path(["line_type", line_type]));
        }
        if let Document::Product(product) = doc {
            out.add_facet(
                self.facet,
                Facet::from_path(["price_band", product.price_band.as_str()]),
            );
        }
        if let Some(price) = doc.price() {
            out.add_f64(self.price, price);
        }
        if let Some((first, last)) = doc.span() {
            out.add_i64(self.first_day, days(first));
            out.add_i64(self.last_day, days(last));
        }
        out.add_f64(self.popularity, doc.popularity());
        out.add_text(self.json, &print.json);
        out.add_u64(self.hash, print.hash);
        out
    }
}

/// Days since 1970-01-01.
pub fn days(day: chrono::NaiveDate) -> i64 {
    i64::from(
        (day - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days() as i32,
    )
}

/// What a commit of the index records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The gold version the index reflects.
    pub gold_version: i64,
    /// Documents indexed, the embeddings' included.
    pub documents: u64,
    /// Documents written by the commit (new or changed).
    pub written: u64,
    /// Documents removed by the commit.
    pub removed: u64,
}

/// The payload of the index's last commit; `None` when there is no index at `location`.
///
/// # Errors
///
/// When the index cannot be read.
pub fn payload(location: &Location) -> Result<Option<Payload>> {
    if !location.exists() {
        return Ok(None);
    }
    let index = location.open()?;
    let metas = index.load_metas().map_err(Error::index(location.dir()))?;
    Ok(metas
        .payload
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok()))
}

/// The writing side of the index.
#[derive(Debug, Clone)]
pub struct IndexDir {
    location: Location,
}

impl IndexDir {
    /// The index at `location` (created on first write).
    pub fn new(location: Location) -> Self {
        Self { location }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.location.dir()
    }

    fn open(&self) -> Result<(Index, Fields)> {
        std::fs::create_dir_all(self.location.dir()).map_err(|source| Error::Io {
            path: self.location.dir().to_path_buf(),
            source,
        })?;
        let index = if self.location.exists() {
            self.location.open()?
        } else {
            self.location.create(Fields::schema().0)?
        };
        let fields = Fields::of(&index.schema())?;
        Ok((index, fields))
    }

    fn writer(&self, index: &Index) -> Result<IndexWriter> {
        index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(Error::index(self.location.dir()))
    }

    /// Calls `visit` with every live document stored in the index.
    fn for_each_stored(
        &self,
        index: &Index,
        mut visit: impl FnMut(TantivyDocument) -> Result<()>,
    ) -> Result<()> {
        let reader = index.reader().map_err(Error::index(self.location.dir()))?;
        let searcher = reader.searcher();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(64).map_err(|source| Error::Io {
                path: self.location.dir().to_path_buf(),
                source,
            })?;
            for doc in segment.doc_ids_alive() {
                visit(store.get(doc).map_err(Error::index(self.location.dir()))?)?;
            }
        }
        Ok(())
    }

    /// The hash of every indexed document, by key.
    fn indexed(&self, index: &Index, fields: &Fields) -> Result<HashMap<String, u64>> {
        let mut out = HashMap::new();
        self.for_each_stored(index, |stored| {
            let key = stored.get_first(fields.key).and_then(|v| v.as_str());
            let hash = stored.get_first(fields.hash).and_then(|v| v.as_u64());
            if let (Some(key), Some(hash)) = (key, hash) {
                out.insert(key.to_owned(), hash);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Brings the index to `documents` and `embeddings` (as bytes) of gold version `gold`:
    /// writes what is new or changed, removes what is gone, in one commit. With `rebuild`,
    /// everything is removed and written again.
    ///
    /// # Errors
    ///
    /// When the index cannot be written; the index then stays as it was.
    pub fn sync(
        &self,
        gold: i64,
        documents: &[Document],
        embeddings: &[u8],
        rebuild: bool,
    ) -> Result<Payload> {
        let (index, fields) = self.open()?;
        let indexed = if rebuild {
            HashMap::new()
        } else {
            self.indexed(&index, &fields)?
        };
        let mut writer = self.writer(&index)?;
        if rebuild {
            writer
                .delete_all_documents()
                .map_err(Error::index(self.location.dir()))?;
        }
        let mut seen = std::collections::HashSet::with_capacity(documents.len() + 1);
        let mut written = 0u64;
        for doc in documents {
            let print = Fingerprint::of(doc);
            if !seen.insert(print.key.clone()) {
                return Err(Error::Schema {
                    detail: format!("two documents have the key {}", print.key),
                });
            }
            if indexed.get(&print.key) == Some(&print.hash) {
                continue;
            }
            writer.delete_term(Term::from_field_text(fields.key, &print.key));
            writer
                .add_document(fields.document(doc, &print))
                .map_err(Error::index(self.location.dir()))?;
            written += 1;
        }
        let model_hash = fnv(embeddings);
        seen.insert(MODEL_KEY.to_owned());
        if indexed.get(MODEL_KEY) != Some(&model_hash) {
            writer.delete_term(Term::from_field_text(fields.key, MODEL_KEY));
            let mut model = TantivyDocument::default();
            model.add_text(fields.key, MODEL_KEY);
            model.add_text(fields.kind, MODEL_KIND);
            model.add_bytes(fields.model, embeddings);
            model.add_u64(fields.hash, model_hash);
            writer
                .add_document(model)
                .map_err(Error::index(self.location.dir()))?;
            written += 1;
        }
        let mut removed = 0u64;
        for key in indexed.keys() {
            if !seen.contains(key) {
                writer.delete_term(Term::from_field_text(fields.key, key));
                removed += 1;
            }
        }
        let payload = Payload {
            gold_version: gold,
            documents: seen.len() as u64,
            written,
            removed,
        };
        let text = serde_json::to_string(&payload).map_err(|source| Error::Schema {
            detail: format!("cannot encode the index payload: {source}"),
        })?;
        let mut prepared = writer
            .prepare_commit()
            .map_err(Error::index(self.location.dir()))?;
        prepared.set_payload(&text);
        prepared
            .commit()
            .map_err(Error::index(self.location.dir()))?;
        writer
            .wait_merging_threads()
            .map_err(Error::index(self.location.dir()))?;
        Ok(payload)
    }

    /// Removes these customers and their invoices' customer ids from the index (GDPR
    /// erasure): their customer documents are deleted, their invoices kept as guest sales
    /// (gold no longer holds them after an erasure, so the follower's next catch-up removes
    /// them); then every segment is merged into one, so no deleted document stays on disk.
    /// Returns the documents changed.
    ///
    /// # Errors
    ///
    /// When the index cannot be written.
    pub fn forget(&self, customers: &[String]) -> Result<u64> {
        if !self.location.exists() || customers.is_empty() {
            return Ok(0);
        }
        let (index, fields) = self.open()?;
        let wanted: std::collections::HashSet<&str> =
            customers.iter().map(String::as_str).collect();
        let mut writer = self.writer(&index)?;
        let mut changed = 0u64;
        self.for_each_stored(&index, |stored| {
            let document = stored
                .get_first(fields.json)
                .and_then(|v| v.as_str())
                .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
                .and_then(|value| crate::document::from_json(&value));
            match document {
                Some(Document::Customer(customer))
                    if wanted.contains(customer.customer_id.as_str()) =>
                {
                    writer.delete_term(Term::from_field_text(
                        fields.key,
                        &key(&Document::Customer(customer)),
                    ));
                    changed += 1;
                }
                Some(Document::Invoice(mut invoice))
                    if invoice
                        .customer_id
                        .as_deref()
                        .is_some_and(|id| wanted.contains(id)) =>
                {
                    invoice.customer_id = None;
                    let doc = Document::Invoice(invoice);
                    let print = Fingerprint::of(&doc);
                    writer.delete_term(Term::from_field_text(fields.key, &print.key));
                    writer
                        .add_document(fields.document(&doc, &print))
                        .map_err(Error::index(self.location.dir()))?;
                    changed += 1;
                }
                _ => {}
            }
            Ok(())
        })?;
        let metas = index
            .load_metas()
            .map_err(Error::index(self.location.dir()))?;
        let mut prepared = writer
            .prepare_commit()
            .map_err(Error::index(self.location.dir()))?;
        if let Some(payload) = metas.payload.as_deref() {
            prepared.set_payload(payload);
        }
        prepared
            .commit()
            .map_err(Error::index(self.location.dir()))?;
        // Deleted documents stay in their segments until a merge rewrites them: merge every
        // segment into one and remove the old files, so nothing of the customers is left on
        // disk.
        let segments = index
            .searchable_segment_ids()
            .map_err(Error::index(self.location.dir()))?;
        if !segments.is_empty() {
            writer
                .merge(&segments)
                .wait()
                .map_err(Error::index(self.location.dir()))?;
        }
        writer
            .garbage_collect_files()
            .wait()
            .map_err(Error::index(self.location.dir()))?;
        writer
            .wait_merging_threads()
            .map_err(Error::index(self.location.dir()))?;
        Ok(changed)
    }
}

/// The record option keyword search reads postings with.
pub const POSTINGS: IndexRecordOption = IndexRecordOption::WithFreqs;
