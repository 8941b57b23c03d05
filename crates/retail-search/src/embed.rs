//! Product embeddings learned from the data, for semantic search ("gifts for a tea party"
//! finds teapots and cake stands). No model can be downloaded, so the platform trains its own:
//!
//! 1. **Co-purchase.** Over baskets (one invoice's basket lines), the positive pointwise mutual
//!    information of two products is `PPMI(i, j) = max(0, ln(c_ij · N / (n_i · n_j)))`, with
//!    `c_ij` the baskets holding both (pairs in fewer than [`MIN_PAIR_BASKETS`] baskets count 0),
//!    `n_i` the baskets holding `i` and `N` all baskets. A product's co-purchase vector is its
//!    PPMI row projected on `dim` random Gaussian directions (one per product, seeded by its
//!    stock code), normalised: two products bought with the same things point the same way.
//! 2. **Words.** A description word's vector is the normalised sum of the co-purchase vectors of
//!    the products whose description holds it; its weight is its idf,
//!    `ln(products / products holding it)`.
//! 3. **Sub-words.** Every character trigram of `<word>` gets the normalised sum of the vectors
//!    of the words holding it, so a word never seen ("teapots", "gifts") is read from its
//!    trigrams.
//! 4. A product's embedding is the normalised sum of its co-purchase vector and its text vector
//!    (the idf-weighted, normalised sum of its words' vectors); a query's is its text vector.
//!
//! Similarity is the cosine; nearest neighbours are exact (every product scored), which on a
//! few thousand products takes well under a millisecond.

use std::collections::HashMap;

use retail_domain::search::{edit_distance, query_words, tokens, typos_allowed};

use crate::ann::Ivf;
use crate::baskets::Groups;
use crate::gold::Gold;
use crate::top::best;

/// Pairs bought together in fewer baskets are ignored by the co-purchase vectors.
pub const MIN_PAIR_BASKETS: u32 = 2;

/// How embeddings are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingSettings {
    /// Dimensions.
    pub dim: usize,
    /// The seed of the random directions (and of the ANN index's clustering).
    pub seed: u64,
    /// Past this many products, nearest neighbours come from an IVF index ([`crate::ann`])
    /// instead of scoring every product.
    pub ann_above: usize,
}

/// The default of [`EmbeddingSettings::ann_above`], from `retail search bench-vectors` on
/// the real data's embeddings (2 cores): exact scoring's p99 for the 200 nearest passes 2 ms
/// near 8,000 products, and past 10,000 the IVF index is about 4 times faster while finding 97 %
/// or more of the true 10 nearest.
pub const ANN_ABOVE: usize = 10_000;

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            dim: 128,
            seed: 42,
            ann_above: ANN_ABOVE,
        }
    }
}

/// Marks the optional ANN index after the trigrams in [`Embeddings::to_bytes`].
const IVF_TAG: &[u8] = b"IVF1";

/// A weighted word vector.
#[derive(Debug, Clone, PartialEq)]
struct Word {
    idf: f32,
    vector: Vec<f32>,
}

/// Trained embeddings: per product (by stock code), per word and per trigram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    dim: usize,
    codes: Vec<String>,
    /// Row-major, `dim` per product, unit length or zero.
    products: Vec<f32>,
    words: HashMap<String, Word>,
    grams: HashMap<String, Vec<f32>>,
    /// The ANN index over `products`, past `ann_above` products.
    ann: Option<Ivf>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random direction of a stock code: `dim` standard normal draws (Box–Muller) from a
/// generator seeded by the FNV-1a hash of the code and `seed`.
fn direction(code: &str, seed: u64, dim: usize) -> Vec<f32> {
    let mut state =
        retail_domain::hash::fnv1a(retail_domain::hash::FNV_OFFSET ^ seed, code.bytes());
    let mut out = Vec::with_capacity(dim);
    while out.len() < dim {
        let u1 = ((splitmix(&mut state) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        out.push((radius * angle.cos()) as f32);
        if out.len() < dim {
            out.push((radius * angle.sin()) as f32);
        }
    }
    out
}

pub(crate) fn normalise(vector: &mut [f32]) -> bool {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm <= f32::EPSILON {
        vector.iter_mut().for_each(|x| *x = 0.0);
        return false;
    }
    vector.iter_mut().for_each(|x| *x /= norm);
    true
}

/// Removes the mean of the non-zero rows from each of them and normalises them again: every
/// product is bought with the best sellers, which gives all vectors a common direction that
/// would make every cosine high.
fn center(rows: &mut [f32], dim: usize) {
    let mut mean = vec![0f32; dim];
    let mut count = 0f32;
    for row in rows.chunks_exact(dim) {
        if row.iter().any(|x| *x != 0.0) {
            add(&mut mean, row, 1.0);
            count += 1.0;
        }
    }
    if count == 0.0 {
        return;
    }
    mean.iter_mut().for_each(|x| *x /= count);
    for row in rows.chunks_exact_mut(dim) {
        if row.iter().any(|x| *x != 0.0) {
            add(row, &mean, -1.0);
            normalise(row);
        }
    }
}

fn add(into: &mut [f32], vector: &[f32], weight: f32) {
    for (a, b) in into.iter_mut().zip(vector) {
        *a += weight * b;
    }
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The character trigrams of `<word>`.
fn trigrams(word: &str) -> Vec<String> {
    let chars: Vec<char> = format!("<{word}>").chars().collect();
    chars
        .windows(3)
        .map(|window| window.iter().collect())
        .collect()
}

impl Embeddings {
    /// Trains on gold's baskets and descriptions.
    pub fn train(gold: &Gold, settings: EmbeddingSettings) -> Self {
        let dim = settings.dim;
        let n = gold.products.len();
        let baskets = Groups::baskets(&gold.purchases, n, None);
        let total = baskets.len() as f64;
        let directions: Vec<Vec<f32>> = gold
            .products
            .iter()
            .map(|product| direction(&product.stock_code, settings.seed, dim))
            .collect();
        let mut copurchase = vec![0f32; n * dim];
        baskets.co_counts(|product, row| {
            let n_i = f64::from(baskets.count(product));
            let into = &mut copurchase[product as usize * dim..(product as usize + 1) * dim];
            for &(other, both) in row {
                if both < MIN_PAIR_BASKETS {
                    continue;
                }
                let pmi = (f64::from(both) * total / (n_i * f64::from(baskets.count(other)))).ln();
                if pmi > 0.0 {
                    add(into, &directions[other as usize], pmi as f32);
                }
            }
            normalise(into);
        });
        center(&mut copurchase, dim);

        // Words: idf and the sum of the co-purchase vectors of the products holding them.
        let words_of: Vec<Vec<String>> = gold
            .products
            .iter()
            .map(|product| {
                let mut words = tokens(&product.description);
                words.retain(|word| !word.chars().all(|c| c.is_ascii_digit()));
                words.sort();
                words.dedup();
                words
            })
            .collect();
        let mut words: HashMap<String, Word> = HashMap::new();
        for (product, product_words) in words_of.iter().enumerate() {
            for word in product_words {
                let entry = words.entry(word.clone()).or_insert_with(|| Word {
                    idf: 0.0,
                    vector: vec![0.0; dim],
                });
                entry.idf += 1.0;
                add(
                    &mut entry.vector,
                    &copurchase[product * dim..(product + 1) * dim],
                    1.0,
                );
            }
        }
        for word in words.values_mut() {
            word.idf = (n as f32 / word.idf).ln().max(0.0);
            normalise(&mut word.vector);
        }
        let mut grams: HashMap<String, Vec<f32>> = HashMap::new();
        for (text, word) in &words {
            for gram in trigrams(text) {
                add(
                    grams.entry(gram).or_insert_with(|| vec![0.0; dim]),
                    &word.vector,
                    1.0,
                );
            }
        }
        grams.retain(|_, vector| normalise(vector));

        let mut products = copurchase;
        for (product, product_words) in words_of.iter().enumerate() {
            let mut text = vec![0f32; dim];
            for word in product_words {
                let entry = &words[word];
                add(&mut text, &entry.vector, entry.idf);
            }
            normalise(&mut text);
            let own = &mut products[product * dim..(product + 1) * dim];
            add(own, &text, 1.0);
            normalise(own);
        }
        Self {
            dim,
            codes: gold
                .products
                .iter()
                .map(|product| product.stock_code.clone())
                .collect(),
            ann: (n > settings.ann_above).then(|| Ivf::build(&products, dim, settings.seed)),
            products,
            words,
            grams,
        }
    }

    /// Dimensions.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The stock codes, in the order of their vectors.
    pub fn codes(&self) -> &[String] {
        &self.codes
    }

    /// Every product's vector, row after row.
    pub fn vectors(&self) -> &[f32] {
        &self.products
    }

    /// The vector of the `index`-th product.
    pub fn product(&self, index: usize) -> &[f32] {
        &self.products[index * self.dim..(index + 1) * self.dim]
    }

    /// A word's vector: its own when it is a description word, else the nearest description
    /// word within the typos allowed, else the sum of its known trigrams; `None` when nothing
    /// of it is known. With the weight it gets in a query: its idf, half the mean idf for a
    /// word read from its trigrams.
    fn word(&self, word: &str) -> Option<(Vec<f32>, f32)> {
        if let Some(known) = self.words.get(word) {
            return Some((known.vector.clone(), known.idf));
        }
        let allowed = typos_allowed(word);
        if allowed > 0 {
            let nearest = self
                .words
                .iter()
                .map(|(text, known)| (edit_distance(word, text), text, known))
                .filter(|(distance, _, _)| *distance <= allowed)
                .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
            if let Some((_, _, known)) = nearest {
                return Some((known.vector.clone(), known.idf));
            }
        }
        let mut vector = vec![0f32; self.dim];
        for gram in trigrams(word) {
            if let Some(known) = self.grams.get(&gram) {
                add(&mut vector, known, 1.0);
            }
        }
        // A word read from its trigrams weighs half a typical word: it is a guess.
        let mean_idf = self.words.values().map(|w| w.idf).sum::<f32>() / self.words.len() as f32;
        normalise(&mut vector).then_some((vector, mean_idf / 2.0))
    }

    /// The embedding of a query: the idf-weighted, normalised sum of its words' vectors;
    /// `None` when no word of it is known.
    pub fn query(&self, text: &str) -> Option<Vec<f32>> {
        let mut vector = vec![0f32; self.dim];
        for word in query_words(text) {
            if let Some((known, weight)) = self.word(&word) {
                add(&mut vector, &known, weight.max(0.1));
            }
        }
        normalise(&mut vector).then_some(vector)
    }

    /// The `k` products nearest to `query` among those `allowed`, by cosine, best first (ties
    /// by stock code): from the ANN index when there is one, else exact.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        allowed: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        let score = |index: usize| dot(query, self.product(index));
        let mut scored: Vec<(usize, f32)> = match &self.ann {
            Some(ann) => ann.search(query, k, &allowed, &score),
            None => (0..self.codes.len())
                .filter(|&index| allowed(index))
                .map(|index| (index, score(index)))
                .collect(),
        };
        scored.retain(|(_, score)| *score > 0.0);
        best(&mut scored, k, |a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.codes[a.0].cmp(&self.codes[b.0]))
        })
    }

    /// The ANN index, when there is one.
    pub fn ann(&self) -> Option<&Ivf> {
        self.ann.as_ref()
    }

    /// The same embeddings searched through `ann` (`None`: exactly).
    pub fn with_ann(mut self, ann: Option<Ivf>) -> Self {
        self.ann = ann;
        self
    }

    /// Embeddings of `codes` with these unit `vectors` and no words (benchmarks).
    pub fn of_vectors(dim: usize, codes: Vec<String>, vectors: Vec<f32>) -> Self {
        Self {
            dim,
            codes,
            products: vectors,
            ..Self::default()
        }
    }

    /// The embeddings as bytes (little endian), to store with the index.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"RDPE1".to_vec();
        let put_str = |out: &mut Vec<u8>, text: &str| {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        };
        let put_vec = |out: &mut Vec<u8>, vector: &[f32]| {
            for x in vector {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.codes.len() as u32).to_le_bytes());
        for (index, code) in self.codes.iter().enumerate() {
            put_str(&mut out, code);
            put_vec(&mut out, self.product(index));
        }
        let mut words: Vec<_> = self.words.iter().collect();
        words.sort_by(|a, b| a.0.cmp(b.0));
        out.extend_from_slice(&(words.len() as u32).to_le_bytes());
        for (text, word) in words {
            put_str(&mut out, text);
            out.extend_from_slice(&word.idf.to_le_bytes());
            put_vec(&mut out, &word.vector);
        }
        let mut grams: Vec<_> = self.grams.iter().collect();
        grams.sort_by(|a, b| a.0.cmp(b.0));
        out.extend_from_slice(&(grams.len() as u32).to_le_bytes());
        for (text, vector) in grams {
            put_str(&mut out, text);
            put_vec(&mut out, vector);
        }
        if let Some(ann) = &self.ann {
            out.extend_from_slice(IVF_TAG);
            ann.write(&mut out);
        }
        out
    }

    /// Reads what [`Embeddings::to_bytes`] wrote; `None` when the bytes are not that.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader {
            bytes: bytes.strip_prefix(b"RDPE1")?,
        };
        let dim = reader.u32()? as usize;
        let mut out = Self {
            dim,
            ..Self::default()
        };
        for _ in 0..reader.u32()? {
            out.codes.push(reader.string()?);
            out.products.extend(reader.vector(dim)?);
        }
        for _ in 0..reader.u32()? {
            let text = reader.string()?;
            let idf = f32::from_le_bytes(reader.take(4)?.try_into().ok()?);
            let vector = reader.vector(dim)?;
            out.words.insert(text, Word { idf, vector });
        }
        for _ in 0..reader.u32()? {
            let text = reader.string()?;
            out.grams.insert(text, reader.vector(dim)?);
        }
        if let Some(rest) = reader.bytes.strip_prefix(IVF_TAG) {
            reader.bytes = rest;
            out.ann = Some(Ivf::read(dim, out.codes.len(), &mut reader)?);
        }
        reader.bytes.is_empty().then_some(out)
    }
}

/// Reads the little-endian bytes of [`Embeddings::to_bytes`].
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    pub(crate) fn vector(&mut self, dim: usize) -> Option<Vec<f32>> {
        Some(
            self.take(dim * 4)?
                .chunks_exact(4)
                .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::Purchase;
    use chrono::NaiveDate;
    use retail_domain::search::ProductDoc;

    fn product(code: &str, description: &str) -> ProductDoc {
        ProductDoc {
            stock_code: code.to_owned(),
            description: description.to_owned(),
            line_type: "product".to_owned(),
            price: 1.0,
            price_band: "1-2".to_owned(),
            countries: Vec::new(),
            units: 1,
            revenue: 1.0,
            orders: 1,
            first_sale: None,
            last_sale: None,
        }
    }

    /// Tea things bought together, garden things bought together, never across.
    fn gold() -> Gold {
        let products = vec![
            product("T1", "TEA SET"),
            product("T2", "CERAMIC TEAPOT"),
            product("T3", "CAKE STAND"),
            product("G1", "GARDEN SPADE"),
            product("G2", "WATERING CAN"),
            product("G3", "FLOWER POT"),
        ];
        let date = NaiveDate::from_ymd_opt(2011, 1, 1).unwrap();
        let mut purchases = Vec::new();
        for invoice in 0..40u32 {
            let group: &[u32] = if invoice % 2 == 0 {
                &[0, 1, 2]
            } else {
                &[3, 4, 5]
            };
            for &product in group {
                purchases.push(Purchase {
                    invoice,
                    customer: None,
                    product,
                    date,
                });
            }
        }
        // A few mixed baskets, so that no product is in every basket.
        Gold {
            products,
            purchases,
            ..Gold::default()
        }
    }

    #[test]
    fn a_query_finds_products_bought_with_what_its_words_name_though_they_share_no_word() {
        let embeddings = Embeddings::train(
            &gold(),
            EmbeddingSettings {
                dim: 32,
                seed: 7,
                ann_above: ANN_ABOVE,
            },
        );
        let query = embeddings.query("for tea").unwrap();
        let nearest = embeddings.nearest(&query, 3, |_| true);
        let codes: Vec<&str> = nearest
            .iter()
            .map(|(index, _)| embeddings.codes()[*index].as_str())
            .collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(sorted, ["T1", "T2", "T3"], "{nearest:?}");
        assert_eq!(codes[0], "T1", "the product holding the word comes first");
        // An unknown word is read from its trigrams: "teapots" is close to "teapot".
        let plural = embeddings.query("teapots").unwrap();
        let first = embeddings.nearest(&plural, 1, |_| true)[0].0;
        assert!(["T1", "T2", "T3"].contains(&embeddings.codes()[first].as_str()));
        assert!(embeddings.query("zzzz qqqq").is_none());
    }

    #[test]
    fn embeddings_survive_their_bytes_and_refuse_garbage() {
        let embeddings = Embeddings::train(
            &gold(),
            EmbeddingSettings {
                dim: 8,
                seed: 1,
                ann_above: ANN_ABOVE,
            },
        );
        let bytes = embeddings.to_bytes();
        assert_eq!(Embeddings::from_bytes(&bytes), Some(embeddings));
        assert_eq!(Embeddings::from_bytes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Embeddings::from_bytes(b"nonsense"), None);
    }

    #[test]
    fn past_ann_above_an_ivf_index_is_built_stored_and_searched() {
        let settings = EmbeddingSettings {
            dim: 8,
            seed: 1,
            ann_above: 0,
        };
        let with_ann = Embeddings::train(&gold(), settings);
        let ann = with_ann.ann().expect("more products than ann_above");
        assert_eq!(
            ann.lists(),
            (with_ann.codes().len() as f64).sqrt().round() as usize
        );
        let bytes = with_ann.to_bytes();
        assert_eq!(Embeddings::from_bytes(&bytes).as_ref(), Some(&with_ann));
        assert_eq!(Embeddings::from_bytes(&bytes[..bytes.len() - 4]), None);
        // Probing every list answers exactly what scoring every product does.
        let exact = with_ann.clone().with_ann(None);
        let all = with_ann
            .clone()
            .with_ann(Some(ann.clone().with_probes(usize::MAX)));
        let query = exact.query("tea party").expect("known words");
        assert_eq!(
            all.nearest(&query, 3, |_| true),
            exact.nearest(&query, 3, |_| true)
        );
        assert_eq!(
            all.nearest(&query, 3, |index| index == 2),
            exact.nearest(&query, 3, |index| index == 2)
        );
    }
}
