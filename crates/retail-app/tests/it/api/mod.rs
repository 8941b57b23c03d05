//! The HTTP API, resource by resource.

mod access;
mod alerts;
mod analytics;
mod audit;
mod backfill;
mod changes;
mod consent;
mod dashboards;
mod freshness;
mod gdpr;
mod ingestion;
mod lineage;
mod models;
mod operations;
mod pipeline;
mod search;
pub(crate) mod support;
mod traces;
