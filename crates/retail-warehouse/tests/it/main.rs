//! Integration tests of the warehouse: both backends on real gold data, loads, migrations.

mod conformance;
mod load;
mod migrate;
mod support;
