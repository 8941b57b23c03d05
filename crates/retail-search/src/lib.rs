//! Search and recommendations on gold, kept in step with every pipeline run.
//!
//! - [`gold`]: what search and recommendations read from gold (documents, basket lines);
//! - [`baskets`]: baskets, customers' histories and their co-occurrence counts;
//! - [`embed`]: product embeddings learned from co-purchase and description sub-words;
//! - [`recommend`]: association rules, item-to-item neighbours, "for you", and their held-out
//!   evaluation, each with its exact definition;
//! - [`document`]: documents as JSON, their content hash, highlighting;
//! - [`index`]: the embedded index's schema and its incremental writes;
//! - [`search`]: [`TantivySearch`], the embedded index behind the
//!   [`retail_domain::ports::SearchIndex`] port;
//! - [`typesense`]: the Typesense adapter of the same port and its follower of gold;
//! - [`asset`]: [`SearchFollower`] (the `search` follower of gold) and
//!   [`RecommendationsAsset`] (the `recommendations` asset).

pub mod ann;
pub mod asset;
pub mod baskets;
pub mod document;
pub mod embed;
mod error;
pub mod gold;
pub mod index;
pub mod recommend;
pub mod sealed;
pub mod search;
pub mod top;
pub mod typesense;
pub mod vector_bench;

pub use asset::{RecommendationsAsset, SearchFollower, index_gold};
pub use embed::EmbeddingSettings;
pub use error::{Error, Result};
pub use recommend::RecommendSettings;
pub use sealed::Location;
pub use search::TantivySearch;
