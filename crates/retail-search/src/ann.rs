//! An approximate nearest-neighbour index for product embeddings past the size where scoring
//! every product stays cheap: an inverted file (IVF, as FAISS's `IndexIVFFlat`).
//!
//! - **Build.** `lists = round(√n)` centroids from spherical k-means (cosine): the initial
//!   centroids are `lists` distinct vectors drawn with the seed, refined for
//!   [`ITERATIONS`] rounds on a sample of at most [`SAMPLE_PER_LIST`] vectors per list (assign
//!   each to its most similar centroid, then each centroid becomes the normalised sum of its
//!   vectors; a centroid left with none stays). Then every vector joins its most similar
//!   centroid's list.
//! - **Search.** Score the centroids, score every vector of the `probes` most similar lists
//!   exactly, keep the best `k`. When a filter leaves fewer than `k` in those lists, probe twice
//!   as many, up to every list (then the answer is exact).
//!
//! `probes = ceil(lists × PROBE_SHARE)`. [`PROBE_SHARE`] and the size above which the index is
//! built (`search.ann_above`) were chosen with `retail search bench-vectors`, which measures
//! exact and IVF latency and IVF recall at 10 on vectors grown from the real embeddings
//! (README, "Benchmarks").

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::embed::{Reader, dot, normalise};

/// k-means rounds.
pub const ITERATIONS: usize = 8;
/// Training vectors per list (a sample keeps the build linear in practice).
pub const SAMPLE_PER_LIST: usize = 64;
/// The share of lists probed.
pub const PROBE_SHARE: f64 = 0.08;

/// An inverted file over `n` vectors of `dim` dimensions, held elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Ivf {
    dim: usize,
    /// `lists × dim` centroids, normalised.
    centroids: Vec<f32>,
    /// The vectors of each list, ascending.
    lists: Vec<Vec<u32>>,
    /// Lists probed per search.
    probes: usize,
}

/// The most similar centroid of `vector` (ties: the lower list).
fn closest(centroids: &[f32], dim: usize, vector: &[f32]) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (list, centroid) in centroids.chunks_exact(dim).enumerate() {
        let score = dot(centroid, vector);
        if score > best.1 {
            best = (list, score);
        }
    }
    best.0
}

impl Ivf {
    /// Builds the index of `vectors` (`n × dim`, normalised), seeded.
    pub fn build(vectors: &[f32], dim: usize, seed: u64) -> Self {
        let n = vectors.len() / dim.max(1);
        let lists = ((n as f64).sqrt().round() as usize).clamp(1, n.max(1));
        let vector = |index: usize| &vectors[index * dim..(index + 1) * dim];
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut centroids: Vec<f32> = order
            .iter()
            .take(lists)
            .flat_map(|&index| vector(index).iter().copied())
            .collect();
        let sample = &order[..n.min(lists * SAMPLE_PER_LIST)];
        for _ in 0..ITERATIONS {
            let mut sums = vec![0f32; lists * dim];
            let mut sizes = vec![0usize; lists];
            for &index in sample {
                let list = closest(&centroids, dim, vector(index));
                sizes[list] += 1;
                for (sum, x) in sums[list * dim..(list + 1) * dim]
                    .iter_mut()
                    .zip(vector(index))
                {
                    *sum += x;
                }
            }
            for list in 0..lists {
                if sizes[list] > 0 {
                    let centroid = &mut sums[list * dim..(list + 1) * dim];
                    let _ = normalise(centroid);
                    centroids[list * dim..(list + 1) * dim].copy_from_slice(centroid);
                }
            }
        }
        let mut members = vec![Vec::new(); lists];
        for index in 0..n {
            members[closest(&centroids, dim, vector(index))].push(index as u32);
        }
        Self {
            dim,
            centroids,
            lists: members,
            probes: ((lists as f64 * PROBE_SHARE).ceil() as usize).clamp(1, lists),
        }
    }

    /// The number of lists.
    pub fn lists(&self) -> usize {
        self.lists.len()
    }

    /// Lists probed per search.
    pub fn probes(&self) -> usize {
        self.probes
    }

    /// The same index probing `probes` lists (at least one, at most all).
    pub fn with_probes(mut self, probes: usize) -> Self {
        self.probes = probes.clamp(1, self.lists.len());
        self
    }

    /// The `k` vectors most similar to `query` among those `allowed`, unordered, with their
    /// scores; `score` scores a vector by index.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: &impl Fn(usize) -> bool,
        score: &impl Fn(usize) -> f32,
    ) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> = self
            .centroids
            .chunks_exact(self.dim)
            .map(|centroid| dot(centroid, query))
            .enumerate()
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut probes = self.probes;
        let mut found = Vec::new();
        let mut probed = 0;
        loop {
            for &(list, _) in &ranked[probed..probes] {
                for &index in &self.lists[list] {
                    let index = index as usize;
                    if allowed(index) {
                        found.push((index, score(index)));
                    }
                }
            }
            probed = probes;
            if found.len() >= k || probes == ranked.len() {
                return found;
            }
            probes = (probes * 2).min(ranked.len());
        }
    }

    /// Appends the index to `out` (little endian).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.lists.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.probes as u32).to_le_bytes());
        for x in &self.centroids {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for list in &self.lists {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for index in list {
                out.extend_from_slice(&index.to_le_bytes());
            }
        }
    }

    /// Reads what [`Ivf::write`] wrote for `n` vectors of `dim`; `None` when it is not that.
    pub(crate) fn read(dim: usize, n: usize, reader: &mut Reader<'_>) -> Option<Self> {
        let lists = reader.u32()? as usize;
        let probes = reader.u32()? as usize;
        if lists == 0 || lists > n.max(1) || probes == 0 || probes > lists {
            return None;
        }
        let centroids = reader.vector(lists * dim)?;
        let mut members = Vec::with_capacity(lists);
        let mut seen = 0;
        for _ in 0..lists {
            let len = reader.u32()? as usize;
            let list = (0..len).map(|_| reader.u32()).collect::<Option<Vec<_>>>()?;
            if list.iter().any(|&index| index as usize >= n) {
                return None;
            }
            seen += len;
            members.push(list);
        }
        (seen == n).then_some(Self {
            dim,
            centroids,
            lists: members,
            probes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// `n` normalised vectors around `clusters` random centres.
    fn clustered(n: usize, clusters: usize, dim: usize) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(3);
        let centres: Vec<f32> = (0..clusters * dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let centre = &centres[(i % clusters) * dim..(i % clusters + 1) * dim];
            let mut v: Vec<f32> = centre
                .iter()
                .map(|c| c + rng.random_range(-0.3..0.3))
                .collect();
            let _ = normalise(&mut v);
            out.extend(v);
        }
        out
    }

    fn exact(vectors: &[f32], dim: usize, query: &[f32], k: usize) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = vectors
            .chunks_exact(dim)
            .map(|v| dot(v, query))
            .enumerate()
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(k).map(|(i, _)| i).collect()
    }

    #[test]
    fn every_vector_is_in_one_list_and_the_bytes_read_back() {
        let dim = 16;
        let vectors = clustered(2_000, 40, dim);
        let ivf = Ivf::build(&vectors, dim, 9);
        assert_eq!(ivf.lists(), 45);
        let mut all: Vec<u32> = ivf.lists.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..2_000).collect::<Vec<u32>>());
        assert_eq!(
            ivf,
            Ivf::build(&vectors, dim, 9),
            "the same seed builds the same index"
        );
        let mut bytes = Vec::new();
        ivf.write(&mut bytes);
        let read = Ivf::read(dim, 2_000, &mut Reader { bytes: &bytes });
        assert_eq!(read, Some(ivf.clone()));
        assert_eq!(
            Ivf::read(dim, 1_999, &mut Reader { bytes: &bytes }),
            None,
            "a list may not name a vector past the end"
        );
    }

    #[test]
    fn probing_finds_most_true_neighbours_and_all_lists_finds_them_all() {
        let dim = 16;
        let vectors = clustered(4_000, 60, dim);
        let ivf = Ivf::build(&vectors, dim, 1);
        let score = |index: usize| dot(&vectors[index * dim..(index + 1) * dim], &vectors[..dim]);
        let mut recall = 0.0;
        let queries = 50u32;
        for q in 0..queries as usize {
            let query = &vectors[q * 37 * dim..(q * 37 + 1) * dim];
            let score = |index: usize| dot(&vectors[index * dim..(index + 1) * dim], query);
            let truth = exact(&vectors, dim, query, 10);
            let mut found = ivf.search(query, 10, &|_| true, &score);
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let hits = found
                .iter()
                .take(10)
                .filter(|(i, _)| truth.contains(i))
                .count();
            recall += hits as f64 / 10.0;
            let everything = ivf.clone().with_probes(usize::MAX);
            let mut all = everything.search(query, 10, &|_| true, &score);
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let all: Vec<usize> = all.iter().take(10).map(|(i, _)| *i).collect();
            assert_eq!(all, truth, "probing every list is exact");
        }
        assert!(recall / f64::from(queries) > 0.9, "recall {recall}");
        // A filter that leaves a single vector still finds it, wherever it is.
        let far = ivf.lists.iter().rev().find(|l| !l.is_empty()).unwrap()[0] as usize;
        let found = ivf.search(&vectors[..dim], 10, &|index| index == far, &score);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, far);
    }
}
