//! The benchmark that chose when semantic search leaves exact scoring for the IVF index
//! (`retail search bench-vectors`).
//!
//! The catalogue is grown from the trained embeddings: to reach `n` products, product
//! `i ≥ real` is real product `i mod real`'s vector plus Gaussian noise of standard deviation
//! `noise / √dim` per dimension, normalised, so the grown catalogue keeps the real one's
//! clusters. Queries are the embeddings of shop queries (the same words as the search load)
//! and of real products. Each is answered exactly and through an IVF index built with the
//! embeddings' seed; recall at `k` is the share of the exact `k` the index also returns.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ann::Ivf;
use crate::embed::{Embeddings, normalise};

/// Answers taken per query: the depth hybrid search fuses.
pub const DEPTH: usize = 200;

/// One catalogue size's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorBench {
    /// Products.
    pub products: usize,
    /// Queries timed.
    pub queries: usize,
    /// Exact scoring, milliseconds per query: p50 and p99.
    pub exact_ms: (f64, f64),
    /// The IVF index's build, seconds.
    pub build_seconds: f64,
    /// Its lists and lists probed.
    pub lists: usize,
    /// Lists probed per query.
    pub probes: usize,
    /// Through the IVF index, milliseconds per query: p50 and p99.
    pub ivf_ms: (f64, f64),
    /// Mean recall of the first 10.
    pub recall_10: f64,
    /// Mean recall of the first [`DEPTH`].
    pub recall_depth: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn recall(truth: &[(usize, f32)], found: &[(usize, f32)], k: usize) -> f64 {
    let truth: Vec<usize> = truth.iter().take(k).map(|(i, _)| *i).collect();
    if truth.is_empty() {
        return 1.0;
    }
    let hits = found
        .iter()
        .take(k)
        .filter(|(i, _)| truth.contains(i))
        .count();
    hits as f64 / truth.len() as f64
}

/// `embeddings` grown to `products` products.
pub fn grown(embeddings: &Embeddings, products: usize, noise: f32, seed: u64) -> Embeddings {
    let dim = embeddings.dim();
    let real = embeddings.codes().len();
    let mut rng = StdRng::seed_from_u64(seed);
    let sigma = noise / (dim as f32).sqrt();
    let mut vectors = Vec::with_capacity(products * dim);
    let mut codes = Vec::with_capacity(products);
    for index in 0..products {
        let base = embeddings.product(index % real.max(1));
        codes.push(format!("P{index:07}"));
        if index < real {
            vectors.extend_from_slice(base);
            continue;
        }
        let mut vector: Vec<f32> = base
            .iter()
            .map(|x| {
                // Box–Muller.
                let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
                x + sigma * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        let _ = normalise(&mut vector);
        vectors.extend(vector);
    }
    Embeddings::of_vectors(dim, codes, vectors)
}

/// Measures exact and IVF search of `queries` on `embeddings` grown to each of `sizes`.
pub fn run(
    embeddings: &Embeddings,
    queries: &[Vec<f32>],
    sizes: &[usize],
    noise: f32,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Vec<VectorBench> {
    let mut out = Vec::new();
    for &products in sizes {
        progress(products);
        let exact = grown(embeddings, products, noise, seed);
        let started = Instant::now();
        let ivf = Ivf::build(exact.vectors(), exact.dim(), seed);
        let build_seconds = started.elapsed().as_secs_f64();
        let (lists, probes) = (ivf.lists(), ivf.probes());
        let approximate = exact.clone().with_ann(Some(ivf));
        let (mut exact_ms, mut ivf_ms) = (Vec::new(), Vec::new());
        let (mut recall_10, mut recall_depth) = (0.0, 0.0);
        for query in queries {
            let started = Instant::now();
            let truth = exact.nearest(query, DEPTH, |_| true);
            exact_ms.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            let found = approximate.nearest(query, DEPTH, |_| true);
            ivf_ms.push(started.elapsed().as_secs_f64() * 1e3);
            recall_10 += recall(&truth, &found, 10);
            recall_depth += recall(&truth, &found, DEPTH);
        }
        exact_ms.sort_by(f64::total_cmp);
        ivf_ms.sort_by(f64::total_cmp);
        let n = queries.len().max(1) as f64;
        out.push(VectorBench {
            products,
            queries: queries.len(),
            exact_ms: (percentile(&exact_ms, 0.5), percentile(&exact_ms, 0.99)),
            build_seconds,
            lists,
            probes,
            ivf_ms: (percentile(&ivf_ms, 0.5), percentile(&ivf_ms, 0.99)),
            recall_10: recall_10 / n,
            recall_depth: recall_depth / n,
        });
    }
    out
}
