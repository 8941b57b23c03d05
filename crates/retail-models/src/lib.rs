//! The models the platform fits on gold, and the asset that keeps them in step with it.
//!
//! - [`forecast`]: daily revenue, orders and units on a trading-day calendar, candidate models
//!   (seasonal naive, ETS, MSTL) chosen per series by a rolling-origin backtest;
//! - [`anomaly`]: an isolation forest over each trading day's metrics, and each metric's
//!   seasonal residual;
//! - [`clv`]: BG/NBD and Gamma-Gamma fitted by maximum likelihood, with bootstrap intervals;
//! - [`optimize`]: Nelder–Mead and the special functions the likelihoods need;
//! - [`stats`]: percentiles and medians;
//! - [`asset`]: the `models` asset downstream of gold, which reads gold, fits all three and
//!   writes their gold tables and the model registry.
//!
//! Every model states its definitions in its module's documentation, so that another tool
//! fitting the same data finds the same numbers.

pub mod anomaly;
pub mod asset;
pub mod clv;
pub mod forecast;
pub mod optimize;
pub mod stats;

pub use asset::{ModelsAsset, ModelsSettings};

/// What can go wrong while fitting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model could not be fitted on the data it was given.
    #[error("fitting failed: {0}")]
    Fit(String),
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
