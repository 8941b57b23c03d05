//! Integration tests of the warehouse: both backends on real gold data, loads, migrations,
//! and the warehouses as followers of gold.

mod analysts;
mod conformance;
mod follower;
mod load;
mod migrate;
mod support;
