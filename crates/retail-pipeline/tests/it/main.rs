//! Integration tests of the pipeline on real Delta tables in a temporary directory, with the
//! real Online Retail data where it is available.

mod changes;
mod contract;
mod incremental;
mod ingestion;
mod real_data;
mod support;
