//! The warehouse's column lineage, derived from its SQL.
//!
//! Every summary table, summary view and catalogue query is planned by DataFusion over empty
//! tables of the served relations' schemas, and its logical plan is walked from the scans up:
//! each output column gets the relation columns its value is computed from (`DIRECT`:
//! `IDENTITY`, `TRANSFORMATION`, `AGGREGATION`; a `CASE` condition is `CONDITIONAL`), and the
//! columns that filter, join, group, sort or partition a window are the inputs of its rows
//! (`INDIRECT`, the dataset-level edges of [`ROWS`]). Nothing is declared by hand, so the
//! lineage cannot drift from the SQL that both backends run. A query whose text varies with a
//! closed-list parameter (a grain, a sort column) is planned for every word of the list.

use std::collections::BTreeSet;
use std::sync::Arc;

use deltalake::arrow::datatypes::Schema;
use deltalake::datafusion::common::Column;
use deltalake::datafusion::common::tree_node::{TreeNode as _, TreeNodeRecursion};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use deltalake::datafusion::prelude::SessionContext;
use retail_domain::lineage::{ColumnRef, Dataset, Edge, Lineage, ROWS, Subtype};

use crate::catalogue::{Catalogue, ParamKind, Params, QueryDef};
use crate::embedded::relations;
use crate::error::{Error, Result};
use crate::sql::{SUMMARIES, VIEWS};

/// The dataset name of a warehouse relation (`warehouse.fact_sales`).
pub fn relation_dataset(relation: &str) -> String {
    format!("warehouse.{relation}")
}

/// The dataset name of a catalogue query's answer (`query.sales_summary`).
pub fn query_dataset(query: &str) -> String {
    format!("query.{query}")
}

/// The warehouse's datasets and edges: each served gold table as a relation (its columns as
/// they are), the summary tables and views, and every catalogue query.
///
/// # Errors
///
/// When a statement does not plan, or its plan has a node the walk does not know (a bug this
/// crate's tests catch).
pub async fn lineage() -> Result<Lineage> {
    let context = SessionContext::new();
    let mut lineage = Lineage::default();
    for (table, relation) in relations() {
        let schema = table.arrow_schema();
        register_empty(&context, relation, Arc::clone(&schema))?;
        let dataset = relation_dataset(relation);
        let gold = table.name.replace('/', ".");
        for field in schema.fields() {
            lineage.edges.push(Edge::new(
                ColumnRef::new(gold.clone(), field.name().clone()),
                ColumnRef::new(dataset.clone(), field.name().clone()),
                Subtype::Identity,
                "served as it is (PostgreSQL: loaded by slice)",
            ));
        }
        lineage.datasets.push(Dataset {
            name: dataset,
            layer: "warehouse".to_owned(),
            produced_by: "the warehouse (a gold table)".to_owned(),
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        });
    }
    let summaries = SUMMARIES
        .iter()
        .map(|s| (s.name, s.full(), "summary table"));
    let views = VIEWS.iter().map(|v| (v.name, (v.query)(), "summary view"));
    for (name, sql, what) in summaries.chain(views).collect::<Vec<_>>() {
        let plan = plan(&context, name, &sql).await?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let dataset = relation_dataset(name);
        add_plan(&mut lineage, &dataset, &plan, name)?;
        lineage.datasets.push(Dataset {
            name: dataset,
            layer: "warehouse".to_owned(),
            produced_by: format!("the warehouse ({what})"),
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        });
        register_empty(&context, name, schema)?;
    }
    for query in Catalogue::queries() {
        let dataset = query_dataset(query.name);
        for params in variants(query)? {
            let sql = query.statement(&params).sql;
            let plan = plan(&context, query.name, &sql).await?;
            add_plan(&mut lineage, &dataset, &plan, query.name)?;
        }
        lineage.datasets.push(Dataset {
            name: dataset,
            layer: "query".to_owned(),
            produced_by: format!("the catalogue query {}", query.name),
            columns: query.columns.iter().map(|c| c.name.to_owned()).collect(),
        });
    }
    lineage.normalise();
    Ok(lineage)
}

fn register_empty(context: &SessionContext, name: &str, schema: Arc<Schema>) -> Result<()> {
    let table = MemTable::try_new(schema, vec![Vec::new()])
        .map_err(Error::datafusion(format!("registering {name}")))?;
    context
        .register_table(name, Arc::new(table))
        .map_err(Error::datafusion(format!("registering {name}")))?;
    Ok(())
}

async fn plan(context: &SessionContext, name: &str, sql: &str) -> Result<LogicalPlan> {
    context
        .state()
        .create_logical_plan(sql)
        .await
        .map_err(Error::datafusion(format!(
            "planning {name} for its lineage"
        )))
}

/// Every parameter given (so every optional filter is in the text), once for each word of
/// each closed list.
fn variants(query: &QueryDef) -> Result<Vec<Params>> {
    let mut variants: Vec<Vec<(&str, String)>> = vec![Vec::new()];
    for param in query.params {
        let words: Vec<String> = match param.kind {
            ParamKind::Date => vec!["2011-01-01".to_owned()],
            ParamKind::Month => vec!["2011-01".to_owned()],
            ParamKind::Text => vec!["x".to_owned()],
            ParamKind::Int { min, .. } => vec![min.to_string()],
            ParamKind::Choice(words) => words.iter().map(|w| (*w).to_owned()).collect(),
            ParamKind::Cursor => vec![format!("2011-01-01T00:00:00~{}", "0".repeat(32))],
        };
        variants = variants
            .into_iter()
            .flat_map(|given| {
                words.iter().map(move |word| {
                    let mut given = given.clone();
                    given.push((param.name, word.clone()));
                    given
                })
            })
            .collect();
    }
    variants
        .iter()
        .map(|given| Params::parse(query, given.iter().map(|(k, v)| (*k, v.as_str()))))
        .collect()
}

/// Adds the edges of a planned statement to `lineage`, into `dataset`'s columns.
fn add_plan(lineage: &mut Lineage, dataset: &str, plan: &LogicalPlan, name: &str) -> Result<()> {
    let sources = sources(plan).map_err(|problem| Error::Lineage {
        statement: name.to_owned(),
        problem,
    })?;
    for (field, inputs) in plan.schema().fields().iter().zip(&sources.columns) {
        for (input, subtype) in inputs {
            lineage.edges.push(Edge::new(
                input.clone(),
                ColumnRef::new(dataset, field.name().clone()),
                *subtype,
                "",
            ));
        }
    }
    for (input, subtype) in &sources.rows {
        lineage.edges.push(Edge::new(
            input.clone(),
            ColumnRef::new(dataset, ROWS),
            *subtype,
            "",
        ));
    }
    Ok(())
}

type Inputs = BTreeSet<(ColumnRef, Subtype)>;

/// What a plan's output columns are made from, and what decides its rows.
#[derive(Debug, Default)]
struct Sources {
    /// One set per output column, in schema order.
    columns: Vec<Inputs>,
    /// The inputs of its rows (all `INDIRECT`).
    rows: Inputs,
}

/// The subtype of an input used as `inner` says, inside an expression that uses it as `outer`
/// says: an `INDIRECT` use stays indirect; otherwise the stronger of the two (identity,
/// transformation, aggregation).
fn compose(outer: Subtype, inner: Subtype) -> Subtype {
    use retail_domain::lineage::Kind::Indirect;
    if outer.kind() == Indirect {
        outer
    } else if inner.kind() == Indirect {
        inner
    } else {
        outer.max(inner)
    }
}

/// What one column reference inside an expression contributes.
enum Use {
    Column(Column, Subtype),
    Plan(Arc<LogicalPlan>, Subtype),
}

/// The columns and subqueries an expression reads, each with how (the expression alone:
/// `IDENTITY`; inside a function or operator: `TRANSFORMATION`; an aggregate's argument:
/// `AGGREGATION`; a `CASE` condition or an aggregate's `FILTER`: `CONDITIONAL`; a window's
/// partition or order: `WINDOW`).
fn uses(expr: &Expr, how: Subtype, found: &mut Vec<Use>) {
    let inside = |how: Subtype| {
        if how == Subtype::Identity {
            Subtype::Transformation
        } else {
            how
        }
    };
    match expr {
        Expr::Column(column) => found.push(Use::Column(column.clone(), how)),
        Expr::Alias(alias) => uses(&alias.expr, how, found),
        Expr::Case(case) => {
            if let Some(operand) = &case.expr {
                uses(operand, compose(how, Subtype::Conditional), found);
            }
            for (when, then) in &case.when_then_expr {
                uses(when, compose(how, Subtype::Conditional), found);
                uses(then, inside(how), found);
            }
            if let Some(otherwise) = &case.else_expr {
                uses(otherwise, inside(how), found);
            }
        }
        Expr::AggregateFunction(aggregate) => {
            let params = &aggregate.params;
            for arg in &params.args {
                uses(arg, compose(how, Subtype::Aggregation), found);
            }
            if let Some(filter) = &params.filter {
                uses(filter, compose(how, Subtype::Conditional), found);
            }
            for sort in &params.order_by {
                uses(&sort.expr, compose(how, Subtype::Sort), found);
            }
        }
        Expr::WindowFunction(window) => {
            let params = &window.params;
            for arg in &params.args {
                uses(arg, compose(how, Subtype::Aggregation), found);
            }
            for expr in &params.partition_by {
                uses(expr, compose(how, Subtype::Window), found);
            }
            for sort in &params.order_by {
                uses(&sort.expr, compose(how, Subtype::Window), found);
            }
            if let Some(filter) = &params.filter {
                uses(filter, compose(how, Subtype::Conditional), found);
            }
        }
        Expr::ScalarSubquery(subquery) => {
            found.push(Use::Plan(Arc::clone(&subquery.subquery), inside(how)));
        }
        Expr::InSubquery(in_subquery) => {
            uses(&in_subquery.expr, compose(how, Subtype::Filter), found);
            found.push(Use::Plan(
                Arc::clone(&in_subquery.subquery.subquery),
                compose(how, Subtype::Filter),
            ));
        }
        Expr::Exists(exists) => {
            found.push(Use::Plan(
                Arc::clone(&exists.subquery.subquery),
                compose(how, Subtype::Filter),
            ));
        }
        other => {
            // Operators, functions, casts: their columns are transformed.
            let _ = other.apply_children(|child| {
                uses(child, inside(how), found);
                Ok(TreeNodeRecursion::Continue)
            });
        }
    }
}

/// The inputs an expression over `input` (its plan's sources) reads.
fn expr_inputs(
    expr: &Expr,
    how: Subtype,
    input: &LogicalPlan,
    sources: &Sources,
) -> std::result::Result<Inputs, String> {
    inputs_of(expr, how, &sources.columns, |column| {
        input
            .schema()
            .index_of_column(column)
            .map_err(|e| format!("column {column} not found in its input: {e}"))
    })
}

/// The inputs an expression reads: each column it names is the one `index_of` finds among
/// `columns`; a subquery gives its output columns and what decides its rows.
fn inputs_of(
    expr: &Expr,
    how: Subtype,
    columns: &[Inputs],
    index_of: impl Fn(&Column) -> std::result::Result<usize, String>,
) -> std::result::Result<Inputs, String> {
    let mut found = Vec::new();
    uses(expr, how, &mut found);
    let mut inputs = Inputs::new();
    for used in found {
        match used {
            Use::Column(column, how) => {
                for (base, subtype) in &columns[index_of(&column)?] {
                    inputs.insert((base.clone(), compose(how, *subtype)));
                }
            }
            Use::Plan(plan, how) => {
                let inner = self::sources(&plan)?;
                for (base, subtype) in inner.columns.iter().flatten() {
                    inputs.insert((base.clone(), compose(how, *subtype)));
                }
                inputs.extend(inner.rows);
            }
        }
    }
    Ok(inputs)
}

/// Marks every input `how` (an `INDIRECT` subtype: these decide rows, not values).
fn as_rows(inputs: Inputs, how: Subtype) -> impl Iterator<Item = (ColumnRef, Subtype)> {
    inputs.into_iter().map(move |(base, _)| (base, how))
}

fn sources(plan: &LogicalPlan) -> std::result::Result<Sources, String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let relation = relation_dataset(scan.table_name.table());
            let mut sources = Sources::default();
            for field in scan.projected_schema.fields() {
                sources.columns.push(Inputs::from([(
                    ColumnRef::new(relation.clone(), field.name().clone()),
                    Subtype::Identity,
                )]));
            }
            for filter in &scan.filters {
                let used = expr_inputs(filter, Subtype::Identity, plan, &sources)?;
                sources.rows.extend(as_rows(used, Subtype::Filter));
            }
            Ok(sources)
        }
        LogicalPlan::Projection(projection) => {
            let input = sources(&projection.input)?;
            let mut columns = Vec::with_capacity(projection.expr.len());
            for expr in &projection.expr {
                columns.push(expr_inputs(
                    expr,
                    Subtype::Identity,
                    &projection.input,
                    &input,
                )?);
            }
            Ok(Sources {
                columns,
                rows: input.rows,
            })
        }
        LogicalPlan::Filter(filter) => {
            let mut input = sources(&filter.input)?;
            let used = expr_inputs(&filter.predicate, Subtype::Identity, &filter.input, &input)?;
            input.rows.extend(as_rows(used, Subtype::Filter));
            Ok(input)
        }
        LogicalPlan::Aggregate(aggregate) => {
            let input = sources(&aggregate.input)?;
            let mut out = Sources {
                columns: Vec::new(),
                rows: input.rows.clone(),
            };
            for expr in &aggregate.group_expr {
                let used = expr_inputs(expr, Subtype::Identity, &aggregate.input, &input)?;
                out.rows.extend(as_rows(used.clone(), Subtype::GroupBy));
                out.columns.push(used);
            }
            for expr in &aggregate.aggr_expr {
                out.columns.push(expr_inputs(
                    expr,
                    Subtype::Identity,
                    &aggregate.input,
                    &input,
                )?);
            }
            if out.columns.len() != aggregate.schema.fields().len() {
                return Err("an aggregate with grouping sets".to_owned());
            }
            Ok(out)
        }
        LogicalPlan::Window(window) => {
            let mut out = sources(&window.input)?;
            let input = Sources {
                columns: out.columns.clone(),
                rows: Inputs::new(),
            };
            for expr in &window.window_expr {
                out.columns
                    .push(expr_inputs(expr, Subtype::Identity, &window.input, &input)?);
            }
            Ok(out)
        }
        LogicalPlan::Sort(sort) => {
            let mut input = sources(&sort.input)?;
            for expr in &sort.expr {
                let used = expr_inputs(&expr.expr, Subtype::Identity, &sort.input, &input)?;
                input.rows.extend(as_rows(used, Subtype::Sort));
            }
            Ok(input)
        }
        LogicalPlan::Join(join) => {
            let left = sources(&join.left)?;
            let right = sources(&join.right)?;
            let mut rows: Inputs = left.rows.iter().chain(&right.rows).cloned().collect();
            for (l, r) in &join.on {
                rows.extend(as_rows(
                    expr_inputs(l, Subtype::Identity, &join.left, &left)?,
                    Subtype::Join,
                ));
                rows.extend(as_rows(
                    expr_inputs(r, Subtype::Identity, &join.right, &right)?,
                    Subtype::Join,
                ));
            }
            let both = Sources {
                columns: left.columns.iter().chain(&right.columns).cloned().collect(),
                rows: Inputs::new(),
            };
            if let Some(filter) = &join.filter {
                // The filter sees both sides' columns, left then right.
                let used = expr_inputs_joined(filter, &join.left, &join.right, &both)?;
                rows.extend(as_rows(used, Subtype::Join));
            }
            let columns = match join.join_type {
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => both.columns,
                JoinType::LeftSemi | JoinType::LeftAnti => left.columns,
                JoinType::RightSemi | JoinType::RightAnti => right.columns,
                JoinType::LeftMark => {
                    let mut columns = left.columns;
                    columns.push(right.columns.into_iter().flatten().collect());
                    columns
                }
                JoinType::RightMark => {
                    let mut columns = right.columns;
                    columns.push(left.columns.into_iter().flatten().collect());
                    columns
                }
            };
            Ok(Sources { columns, rows })
        }
        LogicalPlan::Union(union) => {
            let mut out = Sources::default();
            for input in &union.inputs {
                let input = sources(input)?;
                if out.columns.is_empty() {
                    out.columns = vec![Inputs::new(); input.columns.len()];
                }
                for (into, from) in out.columns.iter_mut().zip(input.columns) {
                    into.extend(from);
                }
                out.rows.extend(input.rows);
            }
            Ok(out)
        }
        LogicalPlan::SubqueryAlias(alias) => sources(&alias.input),
        LogicalPlan::Subquery(subquery) => sources(&subquery.subquery),
        LogicalPlan::Limit(limit) => sources(&limit.input),
        LogicalPlan::Repartition(repartition) => sources(&repartition.input),
        LogicalPlan::Distinct(distinct) => sources(distinct.input()),
        LogicalPlan::EmptyRelation(empty) => Ok(Sources {
            columns: vec![Inputs::new(); empty.schema.fields().len()],
            rows: Inputs::new(),
        }),
        LogicalPlan::Values(values) => Ok(Sources {
            columns: vec![Inputs::new(); values.schema.fields().len()],
            rows: Inputs::new(),
        }),
        other => Err(format!("a {} node", other.display())),
    }
}

/// The inputs of a join filter, whose columns may come from either side (left, then right).
fn expr_inputs_joined(
    expr: &Expr,
    left: &LogicalPlan,
    right: &LogicalPlan,
    both: &Sources,
) -> std::result::Result<Inputs, String> {
    inputs_of(expr, Subtype::Identity, &both.columns, |column| {
        left.schema().index_of_column(column).or_else(|_| {
            right
                .schema()
                .index_of_column(column)
                .map(|index| left.schema().fields().len() + index)
                .map_err(|e| format!("join column {column}: {e}"))
        })
    })
}

#[cfg(test)]
mod tests {
    use retail_domain::lineage::{Direction, Kind};

    use super::*;

    #[tokio::test]
    async fn every_query_column_is_derived_and_sales_summary_reads_what_its_sql_says() {
        let lineage = lineage().await.unwrap();
        for query in Catalogue::queries() {
            let dataset = query_dataset(query.name);
            let rows = ColumnRef::new(&dataset, ROWS);
            let has_rows = lineage.edges.iter().any(|e| e.to == rows);
            for column in query.columns {
                let target = ColumnRef::new(&dataset, column.name);
                // A count of rows reads no column: its inputs are what decides the rows.
                assert!(
                    lineage.edges.iter().any(|e| e.to == target) || has_rows,
                    "{target} has no inputs"
                );
            }
        }
        // returns.return_lines is COUNT(*): no column, but the rows' filters.
        let lines = lineage.walk(
            &lineage.resolve("query.returns.return_lines").unwrap(),
            Direction::Upstream,
        );
        assert!(
            lines
                .upstream
                .iter()
                .all(|h| h.edge.kind == Kind::Indirect || h.hops > 1),
            "{lines:?}"
        );
        assert!(!lines.upstream.is_empty());
        let net = lineage.resolve("query.sales_summary.net_revenue").unwrap();
        let walk = lineage.walk(&net, Direction::Upstream);
        let gold: BTreeSet<(String, Kind)> = walk
            .upstream
            .iter()
            .filter(|h| h.edge.from.dataset.starts_with("gold."))
            .map(|h| (h.edge.from.to_string(), h.edge.kind))
            .collect();
        assert!(
            gold.iter()
                .any(|(c, k)| c.ends_with(".net_revenue") && *k == Kind::Direct),
            "{gold:?}"
        );
    }
}
