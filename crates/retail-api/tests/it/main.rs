//! Integration tests of the API: the router driven in-process, and a real server on a port.

mod access;
mod analytics;
mod changes;
mod ingestion;
mod operations;
mod support;
