//! [`TantivySearch`]: the embedded index answering searches ([`SearchIndex`]).
//!
//! - **Keyword**: each query word (stop words aside) matches itself and the index's words
//!   within the typos it allows ([`typos_allowed`]: one for 4 to 7 letters, two beyond, none
//!   for codes), closer words weighing more (`1 / (1 + distance)`), when the index does not
//!   hold the word itself (so `iceland` never finds Ireland, as in Typesense); every word must
//!   match, and
//!   when no document has them all, any may. BM25 ranks, plus `0.01 · ln(1 + popularity)` so
//!   that equal texts show the best seller first.
//! - **Semantic** (products): the query's embedding against every product's, exact cosine.
//! - **Hybrid** (products): both lists (200 deep each) fused by reciprocal rank fusion.
//!
//! The index is reopened when another process commits to it (the reader follows the index's
//! `meta.json`); the words and embeddings are reloaded when the searcher's generation moves.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use retail_domain::ports::{BoxFuture, PortError, SearchIndex};
use retail_domain::search::{
    DocKind, Document, Facets, Hit, SearchFilters, SearchMode, SearchRequest, SearchResults,
    Suggestion, edit_distance, query_words, reciprocal_rank_fusion, tokens, typos_allowed,
};
use tantivy::collector::{Count, DocSetCollector, FacetCollector, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{TantivyDocument, Value as _};
use tantivy::{DocAddress, IndexReader, ReloadPolicy, Searcher, Term};

use crate::document::{from_json, highlight, id_in, key_of};
use crate::embed::Embeddings;
use crate::error::{Error, Result};
use crate::index::{Fields, MODEL_KIND, POSTINGS, Payload, days};
use crate::sealed::Location;

/// How deep each list of a hybrid search goes, and how many neighbours a semantic search keeps.
pub const CANDIDATES: usize = 200;

/// Query words expanded to at most this many index words each.
const EXPANSIONS: usize = 8;

/// What is loaded from one generation of the index.
#[derive(Debug)]
struct Loaded {
    generation: u64,
    payload: Payload,
    /// Every word of the text field with its document frequency, sorted.
    words: Vec<(String, u64)>,
    /// The words without digits (those typos may be read as), by their length in characters.
    by_length: Vec<Vec<(String, u64)>>,
    embeddings: Option<Embeddings>,
    /// Stock code → index in the embeddings.
    product_of: HashMap<String, usize>,
}

/// An opened index.
struct Open {
    reader: IndexReader,
    fields: Fields,
    dir: PathBuf,
}

/// The embedded index in a directory, answering searches.
pub struct TantivySearch {
    location: Location,
    open: Mutex<Option<Arc<Open>>>,
    loaded: Mutex<Option<Arc<Loaded>>>,
}

impl std::fmt::Debug for TantivySearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivySearch")
            .field("dir", &self.location.dir())
            .finish_non_exhaustive()
    }
}

/// A query word and the index words it matches, with their weights.
#[derive(Debug, Clone)]
struct Expansion {
    word: String,
    terms: Vec<(String, f32)>,
}

impl TantivySearch {
    /// Searches the index at `location` (which may not exist yet: searches then answer that
    /// the index is not built).
    pub fn new(location: Location) -> Self {
        Self {
            location,
            open: Mutex::new(None),
            loaded: Mutex::new(None),
        }
    }

    fn opened(&self) -> Result<Arc<Open>> {
        let mut open = self.open.lock().map_err(|_| Error::Poisoned)?;
        if let Some(open) = open.as_ref() {
            return Ok(Arc::clone(open));
        }
        if !self.location.exists() {
            return Err(Error::NotBuilt {
                dir: self.location.dir().to_path_buf(),
            });
        }
        let index = self.location.open()?;
        let fields = Fields::of(&index.schema())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(Error::index(self.location.dir()))?;
        let opened = Arc::new(Open {
            reader,
            fields,
            dir: self.location.dir().to_path_buf(),
        });
        *open = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// The searcher and what was loaded from its generation.
    fn current(&self) -> Result<(Arc<Open>, Searcher, Arc<Loaded>)> {
        let open = self.opened()?;
        let searcher = open.reader.searcher();
        let generation = searcher.generation().generation_id();
        let mut loaded = self.loaded.lock().map_err(|_| Error::Poisoned)?;
        if let Some(current) = loaded.as_ref()
            && current.generation == generation
        {
            return Ok((open, searcher, Arc::clone(current)));
        }
        let fresh = Arc::new(load(&open, &searcher, generation)?);
        *loaded = Some(Arc::clone(&fresh));
        Ok((open, searcher, fresh))
    }

    /// Runs `request` (blocking: call from the blocking pool).
    ///
    /// # Errors
    ///
    /// [`Error::NotBuilt`] before the first build, or when the index cannot be read.
    pub fn search_now(&self, request: &SearchRequest) -> Result<SearchResults> {
        let (open, searcher, loaded) = self.current()?;
        let cx = Context {
            open: &open,
            searcher: &searcher,
            loaded: &loaded,
        };
        if !request.has_words() {
            return Ok(request.nothing(loaded.payload.gold_version));
        }
        match request.effective_mode() {
            SearchMode::Keyword => cx.keyword(request),
            SearchMode::Semantic => cx.semantic(request),
            SearchMode::Hybrid => cx.hybrid(request),
        }
    }

    /// Completes `prefix` (blocking).
    ///
    /// # Errors
    ///
    /// As [`TantivySearch::search_now`].
    pub fn suggest_now(
        &self,
        prefix: &str,
        kind: Option<DocKind>,
        limit: usize,
    ) -> Result<Vec<Suggestion>> {
        let (open, searcher, loaded) = self.current()?;
        let cx = Context {
            open: &open,
            searcher: &searcher,
            loaded: &loaded,
        };
        cx.suggest(prefix, kind, limit)
    }

    /// The payload of the generation being searched.
    ///
    /// # Errors
    ///
    /// As [`TantivySearch::search_now`].
    pub fn payload(&self) -> Result<Payload> {
        Ok(self.current()?.2.payload)
    }
}

fn load(open: &Open, searcher: &Searcher, generation: u64) -> Result<Loaded> {
    let index_error = Error::index(&open.dir);
    let payload = searcher
        .index()
        .load_metas()
        .map_err(&index_error)?
        .payload
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| Error::NotBuilt {
            dir: open.dir.clone(),
        })?;
    let mut frequencies: HashMap<String, u64> = HashMap::new();
    for segment in searcher.segment_readers() {
        let inverted = segment
            .inverted_index(open.fields.text)
            .map_err(&index_error)?;
        let mut stream = inverted.terms().stream().map_err(|source| Error::Io {
            path: open.dir.clone(),
            source,
        })?;
        while stream.advance() {
            if let Ok(word) = std::str::from_utf8(stream.key()) {
                *frequencies.entry(word.to_owned()).or_default() +=
                    u64::from(stream.value().doc_freq);
            }
        }
    }
    let mut words: Vec<(String, u64)> = frequencies.into_iter().collect();
    words.sort();
    let mut by_length: Vec<Vec<(String, u64)>> = Vec::new();
    for (word, frequency) in &words {
        if word.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let length = word.chars().count();
        if by_length.len() <= length {
            by_length.resize_with(length + 1, Vec::new);
        }
        by_length[length].push((word.clone(), *frequency));
    }
    let model = TermQuery::new(
        Term::from_field_text(open.fields.kind, MODEL_KIND),
        POSTINGS,
    );
    let mut embeddings = None;
    for (_, address) in searcher
        .search(&model, &TopDocs::with_limit(1).order_by_score())
        .map_err(&index_error)?
    {
        let doc: TantivyDocument = searcher.doc(address).map_err(&index_error)?;
        if let Some(bytes) = doc.get_first(open.fields.model).and_then(|v| v.as_bytes()) {
            embeddings = Embeddings::from_bytes(bytes);
        }
    }
    let product_of = embeddings
        .as_ref()
        .map(|e: &Embeddings| {
            e.codes()
                .iter()
                .enumerate()
                .map(|(index, code)| (code.clone(), index))
                .collect()
        })
        .unwrap_or_default();
    Ok(Loaded {
        generation,
        payload,
        words,
        by_length,
        embeddings,
        product_of,
    })
}

/// Keyword matches: how many, their facets, and the page ranked.
struct Ranked {
    total: usize,
    facets: tantivy::collector::FacetCounts,
    top: Vec<(f32, DocAddress)>,
}

/// One search's view of the index.
struct Context<'a> {
    open: &'a Open,
    searcher: &'a Searcher,
    loaded: &'a Loaded,
}

/// The facet counts every search answers: by country, line type and price band.
fn facet_collector() -> FacetCollector {
    let mut facets = FacetCollector::for_field("facet");
    for root in ["/country", "/line_type", "/price_band"] {
        facets.add_facet(root);
    }
    facets
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, POSTINGS))
}

impl Context<'_> {
    fn fields(&self) -> &Fields {
        &self.open.fields
    }

    fn error(&self) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
        Error::index(&self.open.dir)
    }

    /// The index words a query word matches: itself, and those within its typos (closest and
    /// most frequent first).
    fn expand(&self, word: &str) -> Expansion {
        let words = &self.loaded.words;
        let exact = words
            .binary_search_by(|(known, _)| known.as_str().cmp(word))
            .is_ok();
        let mut terms: Vec<(String, f32, usize, u64)> = Vec::new();
        if exact {
            terms.push((word.to_owned(), 1.0, 0, u64::MAX));
        }
        // A word the index holds is read as itself only (Iceland is not Ireland).
        let allowed = if exact { 0 } else { typos_allowed(word) };
        if allowed > 0 {
            let length = word.chars().count();
            let lengths = length.saturating_sub(allowed)..=length + allowed;
            for candidates in lengths.filter_map(|n| self.loaded.by_length.get(n)) {
                for (known, frequency) in candidates {
                    let distance = edit_distance(word, known);
                    if distance <= allowed {
                        terms.push((
                            known.clone(),
                            1.0 / (1.0 + distance as f32),
                            distance,
                            *frequency,
                        ));
                    }
                }
            }
        }
        terms.sort_by(|a, b| a.2.cmp(&b.2).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
        terms.truncate(EXPANSIONS);
        Expansion {
            word: word.to_owned(),
            terms: terms
                .into_iter()
                .map(|(term, weight, _, _)| (term, weight))
                .collect(),
        }
    }

    /// The index words starting with `prefix`, most frequent first.
    fn completions(&self, prefix: &str) -> Expansion {
        let words = &self.loaded.words;
        let start = words.partition_point(|(known, _)| known.as_str() < prefix);
        let mut terms: Vec<(String, u64)> = words[start..]
            .iter()
            .take_while(|(known, _)| known.starts_with(prefix))
            .cloned()
            .collect();
        terms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        terms.truncate(50);
        Expansion {
            word: prefix.to_owned(),
            terms: terms
                .into_iter()
                .map(|(term, _)| {
                    let weight = if term == prefix { 1.0 } else { 0.8 };
                    (term, weight)
                })
                .collect(),
        }
    }

    fn word_query(&self, expansion: &Expansion) -> Box<dyn Query> {
        let clauses: Vec<(Occur, Box<dyn Query>)> = expansion
            .terms
            .iter()
            .map(|(term, weight)| {
                let query = term_query(Term::from_field_text(self.fields().text, term));
                (
                    Occur::Should,
                    Box::new(BoostQuery::new(query, *weight)) as Box<dyn Query>,
                )
            })
            .collect();
        Box::new(BooleanQuery::new(clauses))
    }

    /// The filters and the kind as required clauses.
    fn filter_clauses(
        &self,
        kind: Option<DocKind>,
        filters: &SearchFilters,
    ) -> Vec<(Occur, Box<dyn Query>)> {
        let fields = self.fields();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(kind) = kind {
            clauses.push((
                Occur::Must,
                term_query(Term::from_field_text(fields.kind, kind.as_str())),
            ));
        }
        if let Some(country) = &filters.country {
            clauses.push((
                Occur::Must,
                term_query(Term::from_field_text(fields.country, country)),
            ));
        }
        if let Some(line_type) = &filters.line_type {
            clauses.push((
                Occur::Must,
                term_query(Term::from_field_text(fields.line_type, line_type)),
            ));
        }
        if filters.min_price.is_some() || filters.max_price.is_some() {
            let bound = |value: Option<f64>| match value {
                Some(value) => Bound::Included(Term::from_field_f64(fields.price, value)),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(filters.min_price),
                    bound(filters.max_price),
                )),
            ));
        }
        if let Some(to) = filters.to {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Included(Term::from_field_i64(fields.first_day, days(to))),
                )),
            ));
        }
        if let Some(from) = filters.from {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_i64(fields.last_day, days(from))),
                    Bound::Unbounded,
                )),
            ));
        }
        clauses
    }

    fn document(&self, address: DocAddress) -> Result<Document> {
        let doc: TantivyDocument = self.searcher.doc(address).map_err(self.error())?;
        doc.get_first(self.fields().json)
            .and_then(|v| v.as_str())
            .and_then(|json| serde_json::from_str(json).ok())
            .and_then(|value| from_json(&value))
            .ok_or_else(|| Error::Schema {
                detail: "a stored document cannot be read: run retail search rebuild".to_owned(),
            })
    }

    /// The stock code of a product's document, from its key (without parsing its JSON).
    fn product_code(&self, address: DocAddress) -> Result<String> {
        let doc: TantivyDocument = self.searcher.doc(address).map_err(self.error())?;
        doc.get_first(self.fields().key)
            .and_then(|v| v.as_str())
            .and_then(|key| id_in(DocKind::Product, key))
            .map(str::to_owned)
            .ok_or_else(|| Error::Schema {
                detail: "a product without its key: run retail search rebuild".to_owned(),
            })
    }

    fn facets(&self, collected: &tantivy::collector::FacetCounts) -> Facets {
        let list = |root: &str| {
            let mut values: Vec<(String, u64)> = collected
                .get(root)
                .map(|(facet, count)| {
                    let path = facet.to_path_string();
                    let value = path
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .replace("\\/", "/");
                    (value, count)
                })
                .collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            values
        };
        Facets {
            country: list("/country"),
            line_type: list("/line_type"),
            price_band: list("/price_band"),
        }
    }

    /// The keyword query of `text`: every word required, or any when `any`.
    fn keyword_query(
        &self,
        expansions: &[Expansion],
        kind: Option<DocKind>,
        filters: &SearchFilters,
        any: bool,
    ) -> BooleanQuery {
        let mut clauses = self.filter_clauses(kind, filters);
        let words: Vec<(Occur, Box<dyn Query>)> = expansions
            .iter()
            .filter(|expansion| !expansion.terms.is_empty() || !any)
            .map(|expansion| {
                (
                    if any { Occur::Should } else { Occur::Must },
                    self.word_query(expansion),
                )
            })
            .collect();
        if any {
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(words))));
        } else {
            clauses.extend(words);
        }
        BooleanQuery::new(clauses)
    }

    fn expansions(&self, text: &str) -> Vec<Expansion> {
        let mut words = query_words(text);
        if words.is_empty() {
            words = tokens(text);
        }
        words.truncate(16);
        words.iter().map(|word| self.expand(word)).collect()
    }

    /// Ranked keyword matches: `(total, facets, addresses with scores)`, `depth` deep.
    fn ranked(&self, query: &BooleanQuery, depth: usize, offset: usize) -> Result<Ranked> {
        let facets = facet_collector();
        let top = TopDocs::with_limit(depth.max(1))
            .and_offset(offset)
            .tweak_score(move |segment: &tantivy::SegmentReader| {
                let column = segment.fast_fields().f64("popularity").ok();
                move |doc: tantivy::DocId, score: tantivy::Score| {
                    let popularity = column
                        .as_ref()
                        .and_then(|column| column.first(doc))
                        .unwrap_or(0.0);
                    score + 0.01 * (1.0 + popularity.max(0.0)).ln() as f32
                }
            });
        let (top, total, facets) = self
            .searcher
            .search(query, &(top, Count, facets))
            .map_err(self.error())?;
        Ok(Ranked { total, facets, top })
    }

    fn matched_words(expansions: &[Expansion]) -> HashSet<String> {
        expansions
            .iter()
            .flat_map(|expansion| expansion.terms.iter().map(|(term, _)| term.clone()))
            .collect()
    }

    fn corrections(expansions: &[Expansion]) -> Vec<(String, String)> {
        expansions
            .iter()
            .filter_map(|expansion| {
                let first = &expansion.terms.first()?.0;
                (first != &expansion.word).then(|| (expansion.word.clone(), first.clone()))
            })
            .collect()
    }

    /// The keyword query that finds something: all words, else any.
    fn keyword_match(
        &self,
        request: &SearchRequest,
        depth: usize,
        offset: usize,
    ) -> Result<(Vec<Expansion>, Ranked)> {
        let expansions = self.expansions(&request.text);
        let all = self.keyword_query(&expansions, Some(request.kind), &request.filters, false);
        let ranked = self.ranked(&all, depth, offset)?;
        if ranked.total > 0 || expansions.len() == 1 {
            return Ok((expansions, ranked));
        }
        let any = self.keyword_query(&expansions, Some(request.kind), &request.filters, true);
        let ranked = self.ranked(&any, depth, offset)?;
        Ok((expansions, ranked))
    }

    fn keyword(&self, request: &SearchRequest) -> Result<SearchResults> {
        let (expansions, Ranked { total, facets, top }) =
            self.keyword_match(request, request.limit, request.offset)?;
        let matched = Self::matched_words(&expansions);
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let document = self.document(address)?;
            hits.push(Hit {
                highlight: highlight(&document.title(), &matched),
                document,
                score: f64::from(score),
            });
        }
        Ok(SearchResults {
            mode: request.effective_mode(),
            total: total as u64,
            hits,
            facets: self.facets(&facets),
            corrections: Self::corrections(&expansions),
            gold_version: self.loaded.payload.gold_version,
        })
    }

    /// The stock codes passing the filters; `None` when there are no filters.
    fn allowed_products(&self, filters: &SearchFilters) -> Result<Option<HashSet<usize>>> {
        if *filters == SearchFilters::default() {
            return Ok(None);
        }
        let query = BooleanQuery::new(self.filter_clauses(Some(DocKind::Product), filters));
        let addresses = self
            .searcher
            .search(&query, &DocSetCollector)
            .map_err(self.error())?;
        let mut allowed = HashSet::with_capacity(addresses.len());
        for address in addresses {
            if let Some(&index) = self.loaded.product_of.get(&self.product_code(address)?) {
                allowed.insert(index);
            }
        }
        Ok(Some(allowed))
    }

    fn embeddings(&self) -> Result<&Embeddings> {
        self.loaded
            .embeddings
            .as_ref()
            .ok_or_else(|| Error::Schema {
                detail: "the index holds no embeddings: run retail search rebuild".to_owned(),
            })
    }

    /// The products nearest to the query, `CANDIDATES` deep: stock codes and cosines.
    fn neighbours(&self, request: &SearchRequest) -> Result<Vec<(String, f32)>> {
        let embeddings = self.embeddings()?;
        let Some(query) = embeddings.query(&request.text) else {
            return Ok(Vec::new());
        };
        let allowed = self.allowed_products(&request.filters)?;
        Ok(embeddings
            .nearest(&query, CANDIDATES, |index| {
                allowed
                    .as_ref()
                    .is_none_or(|allowed| allowed.contains(&index))
            })
            .into_iter()
            .map(|(index, score)| (embeddings.codes()[index].clone(), score))
            .collect())
    }

    /// The facets over the products of these stock codes.
    fn facets_of(&self, codes: &[String]) -> Result<Facets> {
        if codes.is_empty() {
            return Ok(Facets::default());
        }
        let facets = facet_collector();
        let counts = self
            .searcher
            .search(&self.codes_query(codes), &facets)
            .map_err(self.error())?;
        Ok(self.facets(&counts))
    }

    fn codes_query(&self, codes: &[String]) -> BooleanQuery {
        BooleanQuery::new(
            codes
                .iter()
                .map(|code| {
                    (
                        Occur::Should,
                        term_query(Term::from_field_text(
                            self.fields().key,
                            &key_of(DocKind::Product, code),
                        )),
                    )
                })
                .collect(),
        )
    }

    /// The products of these stock codes (a page: the documents are read and parsed).
    fn products(&self, codes: &[String]) -> Result<HashMap<String, Document>> {
        if codes.is_empty() {
            return Ok(HashMap::new());
        }
        let addresses = self
            .searcher
            .search(&self.codes_query(codes), &DocSetCollector)
            .map_err(self.error())?;
        let mut out = HashMap::with_capacity(addresses.len());
        for address in addresses {
            let document = self.document(address)?;
            out.insert(document.id().to_owned(), document);
        }
        Ok(out)
    }

    fn page(
        &self,
        ranked: &[(String, f64)],
        request: &SearchRequest,
        matched: &HashSet<String>,
        documents: &HashMap<String, Document>,
    ) -> Vec<Hit> {
        ranked
            .iter()
            .skip(request.offset)
            .take(request.limit)
            .filter_map(|(code, score)| {
                let document = documents.get(code)?.clone();
                Some(Hit {
                    highlight: highlight(&document.title(), matched),
                    document,
                    score: *score,
                })
            })
            .collect()
    }

    fn semantic(&self, request: &SearchRequest) -> Result<SearchResults> {
        let neighbours = self.neighbours(request)?;
        let codes: Vec<String> = neighbours.iter().map(|(code, _)| code.clone()).collect();
        let facets = self.facets_of(&codes)?;
        let page: Vec<String> = codes
            .iter()
            .skip(request.offset)
            .take(request.limit)
            .cloned()
            .collect();
        let documents = self.products(&page)?;
        let ranked: Vec<(String, f64)> = neighbours
            .into_iter()
            .map(|(code, score)| (code, f64::from(score)))
            .collect();
        let words: HashSet<String> = query_words(&request.text).into_iter().collect();
        Ok(SearchResults {
            mode: request.effective_mode(),
            total: ranked.len() as u64,
            hits: self.page(&ranked, request, &words, &documents),
            facets,
            corrections: Vec::new(),
            gold_version: self.loaded.payload.gold_version,
        })
    }

    fn hybrid(&self, request: &SearchRequest) -> Result<SearchResults> {
        let (expansions, Ranked { facets, top, .. }) =
            self.keyword_match(request, CANDIDATES, 0)?;
        let mut keyword = Vec::with_capacity(top.len());
        for (_, address) in top {
            keyword.push(self.product_code(address)?);
        }
        let semantic: Vec<String> = self
            .neighbours(request)?
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        let fused: Vec<(String, f64)> = reciprocal_rank_fusion(&[&keyword, &semantic])
            .into_iter()
            .map(|(code, score)| (code.to_owned(), score))
            .collect();
        let page: Vec<String> = fused
            .iter()
            .skip(request.offset)
            .take(request.limit)
            .map(|(code, _)| code.clone())
            .collect();
        let documents = self.products(&page)?;
        let matched = Self::matched_words(&expansions);
        Ok(SearchResults {
            mode: request.effective_mode(),
            total: fused.len() as u64,
            hits: self.page(&fused, request, &matched, &documents),
            facets: self.facets(&facets),
            corrections: Self::corrections(&expansions),
            gold_version: self.loaded.payload.gold_version,
        })
    }

    fn suggest(
        &self,
        prefix: &str,
        kind: Option<DocKind>,
        limit: usize,
    ) -> Result<Vec<Suggestion>> {
        let words = tokens(prefix);
        let Some((last, complete)) = words.split_last() else {
            return Ok(Vec::new());
        };
        let mut expansions: Vec<Expansion> =
            complete.iter().map(|word| self.expand(word)).collect();
        expansions.push(self.completions(last));
        if expansions
            .iter()
            .any(|expansion| expansion.terms.is_empty())
        {
            return Ok(Vec::new());
        }
        let mut query = self.keyword_query(&expansions, kind, &SearchFilters::default(), false);
        if kind.is_none() {
            let mut clauses = vec![(Occur::Must, Box::new(query) as Box<dyn Query>)];
            clauses.push((
                Occur::MustNot,
                term_query(Term::from_field_text(self.fields().kind, MODEL_KIND)),
            ));
            query = BooleanQuery::new(clauses);
        }
        let top = TopDocs::with_limit(limit.max(1))
            .order_by_fast_field::<f64>("popularity", tantivy::Order::Desc);
        let found = self.searcher.search(&query, &top).map_err(self.error())?;
        let mut out = Vec::with_capacity(found.len());
        for (_, address) in found {
            let document = self.document(address)?;
            out.push(Suggestion {
                kind: document.kind(),
                id: document.id().to_owned(),
                title: document.title(),
            });
        }
        Ok(out)
    }
}

fn port(error: Error) -> PortError {
    PortError::new(error)
}

impl SearchIndex for TantivySearch {
    fn engine(&self) -> &'static str {
        "tantivy"
    }

    fn search<'a>(
        &'a self,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, std::result::Result<SearchResults, PortError>> {
        Box::pin(async move { self.search_now(request).map_err(port) })
    }

    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        kind: Option<DocKind>,
        limit: usize,
    ) -> BoxFuture<'a, std::result::Result<Vec<Suggestion>, PortError>> {
        Box::pin(async move { self.suggest_now(prefix, kind, limit).map_err(port) })
    }
}
