//! Column-level lineage: which columns each column of the platform is made from.
//!
//! A column is named `DATASET.COLUMN`: `source.retail_transactions.invoice` (what a file, an
//! HTTP body or a message carries), `bronze.retail_transactions.invoice`,
//! `silver.retail_transactions.total_amount`, `gold.fact_sales.total_amount`,
//! `warehouse.sales_summary_daily.net_revenue` (a relation of the warehouse),
//! `query.sales_summary.net_revenue` (a catalogue query's answer) and
//! `api/v2/analytics/sales-summary.net_revenue` (what an API route returns). An edge says one
//! column is read to make another, with the kind and subtype of the OpenLineage column lineage
//! facet (1-2-0): `DIRECT` when the value flows into the output (`IDENTITY`, `TRANSFORMATION`,
//! `AGGREGATION`), `INDIRECT` when it only decides which rows or groups there are (`FILTER`,
//! `JOIN`, `GROUP_BY`, `SORT`, `WINDOW`, `CONDITIONAL`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// The column name an edge writes when its input decides which rows a dataset has rather than
/// one column's values (OpenLineage's dataset-level `INDIRECT` lineage): `gold.daily_sales.*`.
/// Walking upstream from any column of the dataset meets it; walking downstream reports it and
/// stops there.
pub const ROWS: &str = "*";

/// A column of a dataset.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct ColumnRef {
    /// The dataset (`gold.fact_sales`).
    pub dataset: String,
    /// The column (`total_amount`).
    pub column: String,
}

impl ColumnRef {
    /// A column of a dataset.
    pub fn new(dataset: impl Into<String>, column: impl Into<String>) -> Self {
        Self {
            dataset: dataset.into(),
            column: column.into(),
        }
    }
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.dataset, self.column)
    }
}

/// Whether an input's values flow into the output or only shape which rows there are.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    /// The output is computed from the input's values.
    Direct,
    /// The input filters, joins, groups, sorts or conditions the rows.
    Indirect,
}

impl Kind {
    /// As OpenLineage writes it: `DIRECT`, `INDIRECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "DIRECT",
            Self::Indirect => "INDIRECT",
        }
    }
}

/// How an input is used (OpenLineage's transformation subtypes).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Subtype {
    /// The value unchanged.
    Identity,
    /// A function of the value (normalised, converted, combined with others).
    Transformation,
    /// An aggregate over many rows.
    Aggregation,
    /// Decides which rows are kept.
    Filter,
    /// Matches rows of two inputs.
    Join,
    /// Decides the groups of an aggregation.
    GroupBy,
    /// Decides the order.
    Sort,
    /// Partitions or orders a window function.
    Window,
    /// Chooses between values (a `CASE`, a rule).
    Conditional,
}

impl Subtype {
    /// As OpenLineage writes it: `IDENTITY`, `GROUP_BY`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "IDENTITY",
            Self::Transformation => "TRANSFORMATION",
            Self::Aggregation => "AGGREGATION",
            Self::Filter => "FILTER",
            Self::Join => "JOIN",
            Self::GroupBy => "GROUP_BY",
            Self::Sort => "SORT",
            Self::Window => "WINDOW",
            Self::Conditional => "CONDITIONAL",
        }
    }

    /// The kind OpenLineage gives the subtype.
    pub fn kind(self) -> Kind {
        match self {
            Self::Identity | Self::Transformation | Self::Aggregation => Kind::Direct,
            Self::Filter
            | Self::Join
            | Self::GroupBy
            | Self::Sort
            | Self::Window
            | Self::Conditional => Kind::Indirect,
        }
    }
}

/// One input column used to make one output column.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Edge {
    /// The input.
    pub from: ColumnRef,
    /// The output.
    pub to: ColumnRef,
    /// `DIRECT` or `INDIRECT` (follows from the subtype).
    pub kind: Kind,
    /// How the input is used.
    pub subtype: Subtype,
    /// What is done, in words (empty when the subtype says it all).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Edge {
    /// An edge; its kind follows from the subtype.
    pub fn new(from: ColumnRef, to: ColumnRef, subtype: Subtype, description: &str) -> Self {
        Self {
            from,
            to,
            kind: subtype.kind(),
            subtype,
            description: description.to_owned(),
        }
    }
}

/// A dataset and its columns, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dataset {
    /// Its name (`gold.fact_sales`).
    pub name: String,
    /// `source`, `bronze`, `silver`, `gold`, `warehouse`, `query` or `api`.
    pub layer: String,
    /// What writes or serves it (`ingestion`, `silver`, `gold`, `models`, `recommendations`,
    /// the warehouse, a catalogue query, a route).
    pub produced_by: String,
    /// Its columns.
    pub columns: Vec<String>,
}

/// The column-level lineage of the whole platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lineage {
    /// Every dataset, in the order data flows.
    pub datasets: Vec<Dataset>,
    /// Every edge, sorted.
    pub edges: Vec<Edge>,
}

/// Which way to walk from a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// What the column is made from, back to the sources.
    Upstream,
    /// What is made from the column, down to the API.
    Downstream,
    /// Both.
    Both,
}

/// A column's lineage: the edges reached walking from it, with their distance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColumnLineage {
    /// The column asked about.
    pub column: ColumnRef,
    /// Edges towards the sources; `hops` 1 are the column's own inputs.
    pub upstream: Vec<Hop>,
    /// Edges towards the API; `hops` 1 are the columns made directly from it.
    pub downstream: Vec<Hop>,
}

/// An edge met walking from a column, `hops` edges away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hop {
    /// How many edges from the column asked about (1: adjacent).
    pub hops: usize,
    /// The edge.
    #[serde(flatten)]
    pub edge: Edge,
}

/// Why a lineage question has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineageError {
    /// The text is not `DATASET.COLUMN` of a known dataset.
    #[error(
        "unknown dataset in {0:?}: name a column as DATASET.COLUMN, e.g. gold.fact_sales.total_amount (`retail pipeline lineage` lists the datasets)"
    )]
    UnknownDataset(String),
    /// The dataset has no such column.
    #[error("{dataset} has no column {column:?} (its columns: {columns})")]
    UnknownColumn {
        /// The dataset.
        dataset: String,
        /// The column asked for.
        column: String,
        /// The columns it has.
        columns: String,
    },
}

impl Lineage {
    /// Sorts and deduplicates the edges (same input, output and subtype).
    pub fn normalise(&mut self) {
        self.edges.sort();
        self.edges
            .dedup_by(|a, b| a.from == b.from && a.to == b.to && a.subtype == b.subtype);
    }

    /// The dataset of this name.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name == name)
    }

    /// Reads `DATASET.COLUMN`, the dataset being the longest known name followed by a dot
    /// (API datasets are paths, `api/v1/sales.total_amount`).
    ///
    /// # Errors
    ///
    /// When no dataset of that name exists or it has no such column.
    pub fn resolve(&self, text: &str) -> Result<ColumnRef, LineageError> {
        let dataset = self
            .datasets
            .iter()
            .filter(|d| {
                text.len() > d.name.len() + 1
                    && text.starts_with(d.name.as_str())
                    && text.as_bytes()[d.name.len()] == b'.'
            })
            .max_by_key(|d| d.name.len())
            .ok_or_else(|| LineageError::UnknownDataset(text.to_owned()))?;
        let column = &text[dataset.name.len() + 1..];
        if !dataset.columns.iter().any(|c| c == column) {
            return Err(LineageError::UnknownColumn {
                dataset: dataset.name.clone(),
                column: column.to_owned(),
                columns: dataset.columns.join(", "),
            });
        }
        Ok(ColumnRef::new(dataset.name.clone(), column))
    }

    /// The edges reached from `column` walking `direction`, each once, nearest first
    /// (breadth first; ties in edge order).
    pub fn walk(&self, column: &ColumnRef, direction: Direction) -> ColumnLineage {
        let up = matches!(direction, Direction::Upstream | Direction::Both);
        let down = matches!(direction, Direction::Downstream | Direction::Both);
        ColumnLineage {
            column: column.clone(),
            upstream: if up {
                self.bfs(column, true)
            } else {
                Vec::new()
            },
            downstream: if down {
                self.bfs(column, false)
            } else {
                Vec::new()
            },
        }
    }

    fn bfs(&self, start: &ColumnRef, upstream: bool) -> Vec<Hop> {
        let mut by_node: BTreeMap<ColumnRef, Vec<&Edge>> = BTreeMap::new();
        for edge in &self.edges {
            let key = if upstream { &edge.to } else { &edge.from };
            by_node.entry(key.clone()).or_default().push(edge);
        }
        let mut seen: BTreeSet<ColumnRef> = BTreeSet::from([start.clone()]);
        let mut queue: VecDeque<(ColumnRef, usize)> = VecDeque::from([(start.clone(), 0)]);
        let mut hops = Vec::new();
        while let Some((node, distance)) = queue.pop_front() {
            let rows = ColumnRef::new(node.dataset.clone(), ROWS);
            let mut edges: Vec<&Edge> = by_node.get(&node).cloned().unwrap_or_default();
            // What decides a dataset's rows is met once, from its first column reached.
            if upstream && seen.insert(rows.clone()) {
                edges.extend(by_node.get(&rows).into_iter().flatten());
            }
            for edge in edges {
                hops.push(Hop {
                    hops: distance + 1,
                    edge: edge.clone(),
                });
                let next = if upstream { &edge.from } else { &edge.to };
                if next.column != ROWS && seen.insert(next.clone()) {
                    queue.push_back((next.clone(), distance + 1));
                }
            }
        }
        hops
    }

    /// The edges into the columns of `dataset`.
    pub fn inputs_of<'a>(&'a self, dataset: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.to.dataset == dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Lineage {
        let col = |d: &str, c: &str| ColumnRef::new(d, c);
        let mut lineage = Lineage {
            datasets: vec![
                Dataset {
                    name: "silver.t".into(),
                    layer: "silver".into(),
                    produced_by: "silver".into(),
                    columns: vec!["q".into(), "p".into(), "c".into()],
                },
                Dataset {
                    name: "gold.f".into(),
                    layer: "gold".into(),
                    produced_by: "gold".into(),
                    columns: vec!["amount".into()],
                },
                Dataset {
                    name: "api/v1/sales".into(),
                    layer: "api".into(),
                    produced_by: "GET /api/v1/sales".into(),
                    columns: vec!["amount".into()],
                },
            ],
            edges: vec![
                Edge::new(
                    col("silver.t", "q"),
                    col("gold.f", "amount"),
                    Subtype::Transformation,
                    "q × p",
                ),
                Edge::new(
                    col("silver.t", "p"),
                    col("gold.f", "amount"),
                    Subtype::Transformation,
                    "q × p",
                ),
                Edge::new(
                    col("silver.t", "c"),
                    col("gold.f", "amount"),
                    Subtype::Filter,
                    "",
                ),
                Edge::new(
                    col("gold.f", "amount"),
                    col("api/v1/sales", "amount"),
                    Subtype::Identity,
                    "",
                ),
                Edge::new(
                    col("gold.f", "amount"),
                    col("api/v1/sales", "amount"),
                    Subtype::Identity,
                    "",
                ),
            ],
        };
        lineage.normalise();
        lineage
    }

    #[test]
    fn columns_resolve_by_the_longest_dataset_name_and_unknown_ones_say_why() {
        let lineage = graph();
        assert_eq!(
            lineage.resolve("api/v1/sales.amount").unwrap(),
            ColumnRef::new("api/v1/sales", "amount")
        );
        assert!(matches!(
            lineage.resolve("gold.f.nope"),
            Err(LineageError::UnknownColumn { .. })
        ));
        assert!(matches!(
            lineage.resolve("gold.fx.amount"),
            Err(LineageError::UnknownDataset(_))
        ));
        assert!(matches!(
            lineage.resolve("gold.f"),
            Err(LineageError::UnknownDataset(_))
        ));
    }

    #[test]
    fn the_names_are_openlineages() {
        for subtype in [Subtype::Identity, Subtype::GroupBy, Subtype::Conditional] {
            assert_eq!(
                serde_json::to_value(subtype).unwrap(),
                subtype.as_str(),
                "{subtype:?}"
            );
        }
        assert_eq!(serde_json::to_value(Kind::Indirect).unwrap(), "INDIRECT");
        assert_eq!(Kind::Indirect.as_str(), "INDIRECT");
    }

    #[test]
    fn walking_finds_every_edge_once_with_its_distance() {
        let lineage = graph();
        assert_eq!(lineage.edges.len(), 4, "the duplicate edge is merged");
        let walk = lineage.walk(
            &ColumnRef::new("api/v1/sales", "amount"),
            Direction::Upstream,
        );
        let seen: Vec<(usize, String, Kind)> = walk
            .upstream
            .iter()
            .map(|h| (h.hops, h.edge.from.to_string(), h.edge.kind))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, "gold.f.amount".to_owned(), Kind::Direct),
                (2, "silver.t.c".to_owned(), Kind::Indirect),
                (2, "silver.t.p".to_owned(), Kind::Direct),
                (2, "silver.t.q".to_owned(), Kind::Direct),
            ]
        );
        assert!(walk.downstream.is_empty());
        let down = lineage.walk(&ColumnRef::new("silver.t", "q"), Direction::Downstream);
        assert_eq!(down.downstream.len(), 2);
        assert_eq!(down.downstream[1].hops, 2);
    }
}
