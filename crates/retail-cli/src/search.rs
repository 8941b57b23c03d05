//! `retail search rebuild|query` and `retail recommend evaluate`: the search index rebuilt from
//! gold, a search from the terminal, and the held-out evaluation of "for you".

use chrono::NaiveDate;
use retail_app::App;
use retail_search::embed::Embeddings;
use retail_search::gold::Gold;
use retail_search::recommend::{self, Evaluation};
use retail_search::vector_bench;
use retail_services::search::SearchQuery;
use serde_json::json;

/// Rebuilds the index from scratch and prints what it did.
pub(crate) async fn rebuild(app: &App, json: bool) -> anyhow::Result<()> {
    let dir = app
        .config
        .search
        .index_dir(app.lake.root(), &app.config.metadata.path);
    let report =
        retail_search::index_gold(&app.lake, &dir, app.config.search.embedding(), true).await?;
    if json {
        println!(
            "{}",
            json!({
                "dir": dir,
                "gold_version": report.payload.gold_version,
                "documents": report.payload.documents,
                "read_ms": report.read_ms,
                "embed_ms": report.embed_ms,
                "index_ms": report.index_ms,
                "bytes": report.bytes,
            })
        );
        return Ok(());
    }
    println!(
        "search index {} rebuilt at gold version {}: {} documents, {:.1} MiB \
         (read gold {} ms, embeddings {} ms, index {} ms)",
        dir.display(),
        report.payload.gold_version,
        report.payload.documents,
        report.bytes as f64 / 1_048_576.0,
        report.read_ms,
        report.embed_ms,
        report.index_ms
    );
    Ok(())
}

/// Grows the trained embeddings to each size and measures exact and IVF nearest neighbours.
pub(crate) async fn bench_vectors(
    app: &App,
    sizes: &[usize],
    noise: f32,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !sizes.is_empty() && sizes.iter().all(|&n| (1..=2_000_000).contains(&n)),
        "--sizes must be 1 to 2,000,000 products each"
    );
    anyhow::ensure!(
        noise.is_finite() && (0.0..=10.0).contains(&noise),
        "--noise must be 0 to 10"
    );
    let gold = Gold::read(&app.lake).await?;
    anyhow::ensure!(
        !gold.purchases.is_empty(),
        "gold holds no purchases: run the pipeline first (retail pipeline run)"
    );
    let settings = app.config.search.embedding();
    eprintln!(
        "training embeddings on gold ({} products)",
        gold.products.len()
    );
    let embeddings = Embeddings::train(&gold, settings).with_ann(None);
    // The shop queries of the search load, then every 40th real product.
    let mut queries: Vec<Vec<f32>> = crate::bench::SEARCH_QUERIES
        .iter()
        .filter_map(|text| embeddings.query(text))
        .collect();
    let real = embeddings.codes().len();
    queries.extend(
        (0..real)
            .step_by(40)
            .map(|i| embeddings.product(i).to_vec()),
    );
    let sizes = sizes.to_vec();
    let results = tokio::task::spawn_blocking(move || {
        vector_bench::run(&embeddings, &queries, &sizes, noise, settings.seed, |n| {
            eprintln!("measuring {n} products");
        })
    })
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&results.iter().map(|r| json!({
            "products": r.products, "queries": r.queries,
            "exact_ms": {"p50": r.exact_ms.0, "p99": r.exact_ms.1},
            "ivf": {"build_seconds": r.build_seconds, "lists": r.lists, "probes": r.probes,
                    "p50_ms": r.ivf_ms.0, "p99_ms": r.ivf_ms.1,
                    "recall_10": r.recall_10, "recall_200": r.recall_depth},
        })).collect::<Vec<_>>())?);
        return Ok(());
    }
    println!(
        "nearest {} products per query, {} queries, dim {}; search.ann_above = {} \
         (IVF past it)",
        vector_bench::DEPTH,
        results.first().map_or(0, |r| r.queries),
        settings.dim,
        settings.ann_above
    );
    println!(
        "{:>9}  {:>15}  {:>8}  {:>12}  {:>15}  {:>9}  {:>10}",
        "products",
        "exact p50/p99",
        "build s",
        "lists/probes",
        "IVF p50/p99",
        "recall@10",
        "recall@200"
    );
    for r in &results {
        println!(
            "{:>9}  {:>6.2} /{:>6.2} ms  {:>8.2}  {:>5} /{:>5}  {:>6.2} /{:>6.2} ms  {:>9.3}  {:>10.3}",
            r.products,
            r.exact_ms.0,
            r.exact_ms.1,
            r.build_seconds,
            r.lists,
            r.probes,
            r.ivf_ms.0,
            r.ivf_ms.1,
            r.recall_10,
            r.recall_depth
        );
    }
    Ok(())
}

/// Runs one search and prints the page.
pub(crate) async fn query(app: &App, query: SearchQuery, json: bool) -> anyhow::Result<()> {
    let page = app.services.search.search(&query).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    println!(
        "{} results ({} mode, {}, gold version {})",
        page.total, page.mode, page.engine, page.gold_version
    );
    for correction in &page.corrections {
        println!("  read {:?} as {:?}", correction.word, correction.read_as);
    }
    for hit in &page.hits {
        println!("  {:>8.3}  {:<10} {}", hit.score, hit.id, hit.title);
    }
    if let Some(cursor) = &page.next_cursor {
        println!("  next page: --cursor {cursor}");
    }
    Ok(())
}

/// Trains on purchases up to `cutoff`, evaluates on those until `until`, prints the table.
pub(crate) async fn evaluate(
    app: &App,
    cutoff: NaiveDate,
    until: NaiveDate,
    k: usize,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(cutoff < until, "--cutoff must be before --until");
    anyhow::ensure!((1..=100).contains(&k), "--k must be 1 to 100");
    let gold = Gold::read(&app.lake).await?;
    anyhow::ensure!(
        !gold.purchases.is_empty(),
        "gold holds no purchases: run the pipeline first (retail pipeline run)"
    );
    let settings = app.config.recommendations.settings();
    let evaluation =
        tokio::task::spawn_blocking(move || recommend::evaluate(&gold, settings, cutoff, until, k))
            .await?;
    print_evaluation(&evaluation, json);
    Ok(())
}

fn print_evaluation(e: &Evaluation, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "cutoff": e.cutoff,
                "until": e.until,
                "k": e.k,
                "customers": e.customers,
                "new_customers": e.new_customers,
                "model": {"hit_rate": e.model.hit_rate, "ndcg": e.model.ndcg},
                "baseline": {"hit_rate": e.baseline.hit_rate, "ndcg": e.baseline.ndcg},
                "returning": {
                    "model": {"hit_rate": e.model_returning.hit_rate, "ndcg": e.model_returning.ndcg},
                    "baseline": {"hit_rate": e.baseline_returning.hit_rate, "ndcg": e.baseline_returning.ndcg},
                },
            })
        );
        return;
    }
    println!(
        "trained on purchases up to {}, evaluated on {} customers who bought something new \
         from {} to {} ({} of them without earlier purchases)",
        e.cutoff,
        e.customers,
        e.cutoff.succ_opt().unwrap_or(e.cutoff),
        e.until,
        e.new_customers
    );
    println!(
        "{:<34} {:>12} {:>12}",
        "recommender",
        format!("hit rate@{}", e.k),
        format!("NDCG@{}", e.k)
    );
    for (name, accuracy) in [
        ("for you (similar customers)", e.model),
        ("best sellers not yet bought", e.baseline),
        ("  returning customers: for you", e.model_returning),
        ("  returning customers: baseline", e.baseline_returning),
    ] {
        println!(
            "{name:<34} {:>12.4} {:>12.4}",
            accuracy.hit_rate, accuracy.ndcg
        );
    }
    for (who, ours, theirs) in [
        ("all customers", e.model, e.baseline),
        (
            "returning customers",
            e.model_returning,
            e.baseline_returning,
        ),
    ] {
        if theirs.hit_rate > 0.0 && theirs.ndcg > 0.0 {
            println!(
                "{who}: hit rate {:.2}x the baseline's, NDCG {:.2}x",
                ours.hit_rate / theirs.hit_rate,
                ours.ndcg / theirs.ndcg
            );
        }
    }
}
