//! One suite of behaviour run on both metadata stores: the SQLite file and a PostgreSQL schema.

mod conformance;
