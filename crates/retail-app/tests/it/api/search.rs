//! `/api/v1/search`, `/api/v1/search/suggest` and `/api/v2/recommendations/...`: the search
//! index and the recommendations the pipeline run keeps in step with gold, on the real data,
//! and the index following new data incrementally on generated data.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use chrono::NaiveDate;
use retail_domain::search::query_words;
use retail_search::gold::Gold;
use retail_search::recommend::{self, RecommendSettings};
use retail_services::ApiConfig;
use retail_test_support::Generated;
use serde_json::Value;

use super::support::{TestApp, assert_error};

async fn real_app() -> Option<TestApp> {
    let data = retail_test_support::real_data()?;
    let files = retail_test_support::daily_files(&data);
    Some(
        TestApp::over(&files, ApiConfig::default(), |config| {
            config.models.enabled = false;
        })
        .await,
    )
}

fn titles(page: &Value) -> Vec<String> {
    page["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| hit["title"].as_str().expect("title").to_owned())
        .collect()
}

#[tokio::test]
async fn products_customers_and_invoices_are_found_with_typos_facets_filters_and_pages() {
    let Some(app) = real_app().await else {
        return;
    };
    let token = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", token.as_str())];

    // Every word must match: each result is a red retrospot product, facets count them all.
    let (status, _, page) = app
        .get("/api/v1/search?q=red%20retrospot&limit=10", &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["engine"], "tantivy");
    let total = page["total"].as_u64().expect("total");
    assert!(total >= 20, "{page}");
    for hit in page["hits"].as_array().expect("hits") {
        let title = hit["title"].as_str().expect("title");
        assert!(
            title.contains("RED") && title.contains("RETROSPOT"),
            "{title}"
        );
        assert!(
            hit["highlight"]
                .as_str()
                .expect("highlight")
                .contains("<em>RETROSPOT</em>"),
            "{hit}"
        );
        assert!(hit["product"]["price"].as_f64().expect("price") >= 0.0);
        assert!(hit["product"]["countries"].as_array().is_some());
    }
    let uk = page["facets"]["country"]
        .as_array()
        .expect("country facet")
        .iter()
        .find(|f| f["value"] == "United Kingdom")
        .expect("sold in the UK");
    assert_eq!(
        uk["count"].as_u64(),
        Some(total),
        "every one sold in the UK"
    );

    // Pages: the cursor walks the same ranking without repeats.
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (status, _, next) = app
        .get(
            &format!("/api/v1/search?q=red%20retrospot&limit=10&cursor={cursor}"),
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let first: HashSet<String> = titles(&page).into_iter().collect();
    assert!(titles(&next).iter().all(|title| !first.contains(title)));

    // Typos are forgiven and said.
    let (status, _, page) = app.get("/api/v1/search?q=chrismas%20lights", &auth).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["corrections"][0]["word"], "chrismas");
    assert_eq!(page["corrections"][0]["read_as"], "christmas");
    assert!(
        titles(&page)[0].starts_with("CHRISTMAS LIGHTS"),
        "{:?}",
        titles(&page)
    );

    // Filters: a country, a price range; a reversed range selects nothing.
    let (_, _, france) = app
        .get(
            "/api/v1/search?q=retrospot&country=France&min_price=2&max_price=5&limit=100",
            &auth,
        )
        .await;
    let found = france["hits"].as_array().expect("hits");
    assert!(!found.is_empty(), "{france}");
    for hit in found {
        let price = hit["product"]["price"].as_f64().expect("price");
        assert!((2.0..=5.0).contains(&price), "{hit}");
        assert!(
            hit["product"]["countries"]
                .as_array()
                .expect("countries")
                .contains(&Value::from("France")),
            "{hit}"
        );
    }
    let (status, _, none) = app
        .get("/api/v1/search?q=retrospot&min_price=5&max_price=2", &auth)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["total"], 0);

    // Customers and invoices, by id and by country, with a date filter.
    let (_, _, customer) = app.get("/api/v1/search?q=12347&type=customer", &auth).await;
    assert_eq!(customer["hits"][0]["customer"]["customer_id"], "12347");
    assert_eq!(customer["hits"][0]["customer"]["country"], "Iceland");
    let (_, _, invoice) = app.get("/api/v1/search?q=536365&type=invoice", &auth).await;
    let first = &invoice["hits"][0]["invoice"];
    assert_eq!(first["invoice"], "536365");
    assert_eq!(first["customer_id"], "17850");
    assert_eq!(first["lines"], 7);
    assert!((first["total"].as_f64().expect("total") - 139.12).abs() < 1e-9);
    let (_, _, december) = app
        .get(
            "/api/v1/search?q=iceland&type=invoice&from=2010-12-01&to=2010-12-31",
            &auth,
        )
        .await;
    assert_eq!(december["total"], 1, "{december}");

    // Type-ahead: the last word is a prefix.
    let (status, _, suggestions) = app
        .get("/api/v1/search/suggest?q=red%20retr&type=product", &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{suggestions}");
    let suggestions = suggestions.as_array().expect("suggestions");
    assert_eq!(suggestions.len(), 10);
    assert!(suggestions.iter().all(|s| {
        let title = s["title"].as_str().unwrap_or_default();
        title.contains("RED") && title.contains("RETRO")
    }));

    // Bad input is a clear 400.
    for (path, expected) in [
        ("/api/v1/search?q=", "q"),
        ("/api/v1/search?q=tea&type=shop", "type"),
        ("/api/v1/search?q=tea&mode=magic", "mode"),
        ("/api/v1/search?q=tea&cursor=xyz", "cursor"),
        ("/api/v1/search?q=tea&limit=0", "limit"),
    ] {
        let (status, _, body) = app.get(path, &auth).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(expected),
            "{path}: {body}"
        );
    }
    let (status, _, body) = app.get("/api/v1/search?q=tea", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // What does not apply finds nothing, or falls back, and says so: never a 400.
    for (path, total) in [
        (
            "/api/v1/search?q=iceland&type=customer&min_price=1",
            Some(0),
        ),
        (
            "/api/v1/search?q=iceland&type=invoice&line_type=product",
            Some(0),
        ),
        ("/api/v1/search?q=%2B%2B%2B", Some(0)),
        ("/api/v1/search?q=iceland&type=customer&mode=semantic", None),
    ] {
        let (status, _, body) = app.get(path, &auth).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        match total {
            Some(total) => assert_eq!(body["total"], total, "{path}: {body}"),
            None => {
                assert_eq!(body["mode"], "keyword", "{path}: {body}");
                assert_eq!(body["hits"][0]["id"], "12347", "{path}: {body}");
            }
        }
    }
    let (status, _, body) = app.get("/api/v1/search/suggest?q=%21", &auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!([]));
}

#[tokio::test]
async fn semantic_search_finds_what_shares_no_word_and_hybrid_fuses_both() {
    let Some(app) = real_app().await else {
        return;
    };
    let token = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", token.as_str())];
    let query = "gifts for a tea party";
    let words: HashSet<String> = query_words(query)
        .into_iter()
        .chain(["gift".to_owned()])
        .collect();
    let (status, _, semantic) = app
        .get(
            "/api/v1/search?q=gifts%20for%20a%20tea%20party&mode=semantic&limit=30",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{semantic}");
    let found = titles(&semantic);
    let unrelated_words: Vec<&String> = found
        .iter()
        .filter(|title| {
            retail_domain::search::tokens(title)
                .iter()
                .all(|word| !words.contains(word))
        })
        .collect();
    assert!(
        unrelated_words.len() >= 10,
        "most results share no word with the query: {found:?}"
    );
    assert!(
        unrelated_words
            .iter()
            .any(|title| title.contains("CAKE") || title.contains("DOILIES")),
        "cake things without a query word: {found:?}"
    );
    let scores: Vec<f64> = semantic["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| hit["score"].as_f64().expect("score"))
        .collect();
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "{scores:?}"
    );
    assert!(scores[0] < 0.99, "the space is not degenerate: {scores:?}");

    let (status, _, hybrid) = app
        .get(
            "/api/v1/search?q=gifts%20for%20a%20tea%20party&mode=hybrid&limit=10",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hybrid}");
    let fused = titles(&hybrid);
    assert!(fused.iter().any(|t| t.contains("TEA")), "{fused:?}");
    assert!(
        fused.iter().any(|t| found.contains(t)),
        "hybrid keeps semantic results: {fused:?}"
    );
}

#[tokio::test]
async fn recommendations_follow_their_definitions_and_beat_best_sellers_on_held_out_data() {
    let Some(app) = real_app().await else {
        return;
    };
    let token = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", token.as_str())];

    // The rules' numbers, recomputed here from gold's facts with the documented definitions.
    let gold = Gold::read(app.lake()).await.expect("gold");
    let mut baskets: HashMap<u32, HashSet<&str>> = HashMap::new();
    for purchase in &gold.purchases {
        baskets
            .entry(purchase.invoice)
            .or_default()
            .insert(gold.products[purchase.product as usize].stock_code.as_str());
    }
    let n = baskets.len() as f64;
    let with = |code: &str| baskets.values().filter(|b| b.contains(code)).count() as f64;
    let both = |a: &str, b: &str| {
        baskets
            .values()
            .filter(|basket| basket.contains(a) && basket.contains(b))
            .count() as f64
    };
    let (status, _, answer) = app
        .get(
            "/api/v2/recommendations/products/22697?min_confidence=0.3&limit=5",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["baskets"].as_f64(), Some(n));
    let rules = answer["bought_together"].as_array().expect("rules");
    assert!(!rules.is_empty(), "{answer}");
    for rule in rules {
        let other = rule["stock_code"].as_str().expect("code");
        let support = both("22697", other) / n;
        let confidence = support / (with("22697") / n);
        let lift = confidence / (with(other) / n);
        assert!((rule["support"].as_f64().expect("s") - support).abs() < 1e-12);
        assert!((rule["confidence"].as_f64().expect("c") - confidence).abs() < 1e-12);
        assert!((rule["lift"].as_f64().expect("l") - lift).abs() < 1e-9);
        assert!(confidence >= 0.3);
        assert!(rule["reason"].as_str().expect("reason").contains("baskets"));
    }
    assert!(!answer["also_bought"].as_array().expect("also").is_empty());

    // A returning customer's products: none they bought, each with a reason.
    let (status, _, answer) = app
        .get("/api/v2/recommendations/customers/12347?limit=10", &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let products = answer["products"].as_array().expect("products");
    assert_eq!(products.len(), 10);
    let customer = gold
        .customers
        .iter()
        .position(|c| c.customer_id == "12347")
        .expect("customer") as u32;
    let bought: HashSet<&str> = gold
        .purchases
        .iter()
        .filter(|p| p.customer == Some(customer))
        .map(|p| gold.products[p.product as usize].stock_code.as_str())
        .collect();
    for product in products {
        assert!(!bought.contains(product["stock_code"].as_str().expect("code")));
        assert!(!product["reason"].as_str().expect("reason").is_empty());
    }
    assert!(
        products.iter().any(|p| p["because"].is_string()),
        "{answer}"
    );

    // Unknown ids and bad thresholds.
    let (status, _, body) = app
        .get("/api/v2/recommendations/products/NOPE", &auth)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = app
        .get("/api/v2/recommendations/customers/99999", &auth)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = app
        .get(
            "/api/v2/recommendations/products/22697?min_support=2",
            &auth,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_input");

    // Held out: train to 2011-09-30, evaluate October to December.
    let evaluation = recommend::evaluate(
        &gold,
        RecommendSettings::default(),
        NaiveDate::from_ymd_opt(2011, 9, 30).expect("date"),
        NaiveDate::from_ymd_opt(2011, 12, 31).expect("date"),
        10,
    );
    assert!(evaluation.customers > 2_000, "{evaluation:?}");
    assert!(
        evaluation.model_returning.hit_rate >= 1.5 * evaluation.baseline_returning.hit_rate,
        "{evaluation:?}"
    );
    assert!(
        evaluation.model.ndcg >= 1.5 * evaluation.baseline.ndcg,
        "{evaluation:?}"
    );
}

#[tokio::test]
async fn the_index_follows_gold_rewriting_only_what_changed_and_rebuild_starts_over() {
    let data = Generated::new(6_000, 20);
    let (first, rest) = data.files.split_at(15);
    let app = TestApp::over(first, ApiConfig::default(), |config| {
        config.models.enabled = false;
    })
    .await;
    let dir = retail_search::Location::new(app.dir().join("lake").join("search"), None);
    let before = retail_search::index::payload(&dir)
        .expect("payload")
        .expect("built by the run");
    assert_eq!(
        before.written, before.documents,
        "the first build writes all"
    );

    app.ingest(rest).await;
    let token = format!("Bearer {}", app.token("admin").await);
    let run = app.run_pipeline(&token).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let after = retail_search::index::payload(&dir)
        .expect("payload")
        .expect("index");
    assert!(after.gold_version > before.gold_version, "{after:?}");
    assert!(after.documents > before.documents, "{after:?}");
    assert!(
        after.written < after.documents / 2,
        "only new and changed documents are written: {after:?}"
    );

    // An invoice of the new days is found.
    let gold = Gold::read(app.lake()).await.expect("gold");
    let newest = gold
        .invoices
        .iter()
        .max_by_key(|invoice| invoice.date)
        .expect("an invoice");
    let analyst = format!("Bearer {}", app.token("data_engineer").await);
    let (status, _, page) = app
        .get(
            &format!("/api/v1/search?q={}&type=invoice", newest.invoice),
            &[("authorization", analyst.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["hits"][0]["id"], newest.invoice.as_str());
    assert_eq!(page["gold_version"].as_i64(), Some(after.gold_version));

    // A rebuild writes everything again, at the same gold version.
    let report = retail_search::index_gold(
        app.lake(),
        dir.dir(),
        retail_search::EmbeddingSettings::default(),
        true,
    )
    .await
    .expect("rebuild");
    assert_eq!(report.payload.gold_version, after.gold_version);
    assert_eq!(report.payload.written, report.payload.documents);
    assert_eq!(report.payload.documents, after.documents);
}

#[tokio::test]
async fn typesense_serves_the_same_matches_as_the_embedded_index_on_a_fixed_query_set() {
    let Some((url, key)) = retail_test_support::typesense() else {
        return;
    };
    let Some(data) = retail_test_support::real_data() else {
        return;
    };
    let files = retail_test_support::daily_files(&data);
    let collection = retail_test_support::unique_name("retail").replace('-', "_");
    let app = TestApp::over(&files, ApiConfig::default(), |config| {
        config.models.enabled = false;
        config.recommendations.enabled = false;
        config.search.engine = "typesense".to_owned();
        config.search.typesense_url = url.clone();
        config.search.typesense_api_key = key.clone();
        config.search.typesense_collection = collection.clone();
    })
    .await;
    let embedded = retail_search::TantivySearch::new(retail_search::Location::new(
        app.dir().join("lake").join("search"),
        None,
    ));
    let token = format!("Bearer {}", app.token("data_engineer").await);
    let auth = [("authorization", token.as_str())];
    for (q, kind) in [
        ("red retrospot", "product"),
        ("chrismas lights", "product"),
        ("white hanging heart", "product"),
        ("85123A", "product"),
        ("regency cakestand", "product"),
        ("jumbo bag pink polkadot", "product"),
        ("alarm clock bakelike", "product"),
        ("12347", "customer"),
        ("iceland", "customer"),
        ("536365", "invoice"),
        ("C536379", "invoice"),
        ("iceland", "invoice"),
    ] {
        let path = format!(
            "/api/v1/search?q={}&type={kind}&limit=10",
            q.replace(' ', "%20")
        );
        let (status, _, theirs) = app.get(&path, &auth).await;
        assert_eq!(status, StatusCode::OK, "{q}: {theirs}");
        assert_eq!(theirs["engine"], "typesense");
        let request = retail_services::search::request(&retail_services::search::SearchQuery {
            q: q.to_owned(),
            kind: Some(kind.to_owned()),
            limit: Some(10),
            ..Default::default()
        })
        .expect("request");
        let ours = embedded.search_now(&request).expect("embedded search");
        assert_eq!(
            theirs["total"].as_u64(),
            Some(ours.total),
            "{q}: the same documents match"
        );
        let their_ids: Vec<&str> = theirs["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|hit| hit["id"].as_str().expect("id"))
            .collect();
        let our_ids: Vec<&str> = ours.hits.iter().map(|hit| hit.document.id()).collect();
        eprintln!(
            "{q} ({kind}, {} matches): typesense {their_ids:?}, tantivy {our_ids:?}",
            ours.total
        );
        if ours.total <= 10 {
            let mut a = their_ids.clone();
            let mut b = our_ids.clone();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{q}: the same results");
            assert_eq!(
                their_ids.first(),
                our_ids.first(),
                "{q}: the same first result"
            );
        }
    }
    let (status, _, suggestions) = app
        .get("/api/v1/search/suggest?q=red%20retr&type=product", &auth)
        .await;
    assert_eq!(status, StatusCode::OK, "{suggestions}");
    assert_eq!(suggestions.as_array().map(Vec::len), Some(10));
    let (status, _, body) = app.get("/api/v1/search?q=tea&mode=semantic", &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Erasure: both engines drop the customer's document and their id from their invoices.
    use retail_domain::ports::{Follower as _, SearchIndex as _};
    use retail_domain::search::Document;
    let forgotten = ["12347".to_owned()];
    let typesense =
        retail_search::typesense::Typesense::new(retail_search::typesense::TypesenseConfig {
            url,
            api_key: key,
            collection,
        })
        .expect("typesense");
    let follower = retail_search::SearchFollower::new(
        app.lake().clone(),
        app.dir().join("lake").join("search"),
        retail_search::EmbeddingSettings::default(),
    );
    let ours = follower.forget(&forgotten).await.expect("embedded forget");
    let theirs = typesense
        .forget(&forgotten)
        .await
        .expect("typesense forget");
    // 12347 has 7 invoices in the data.
    assert_eq!((ours, theirs), (8, 8), "the customer and their 7 invoices");
    assert_eq!(
        follower.forget(&forgotten).await.expect("again"),
        0,
        "forgetting twice changes nothing"
    );
    for (q, kind) in [("12347", "customer"), ("537626", "invoice")] {
        let request = retail_services::search::request(&retail_services::search::SearchQuery {
            q: q.to_owned(),
            kind: Some(kind.to_owned()),
            ..Default::default()
        })
        .expect("request");
        let ours = embedded.search_now(&request).expect("embedded search");
        let theirs = typesense.search(&request).await.expect("typesense search");
        for (engine, results) in [("tantivy", ours), ("typesense", theirs)] {
            let ids: Vec<Option<&str>> = results
                .hits
                .iter()
                .map(|hit| match &hit.document {
                    Document::Invoice(invoice) => invoice.customer_id.as_deref(),
                    Document::Customer(customer) => Some(customer.customer_id.as_str()),
                    Document::Product(_) => None,
                })
                .collect();
            match kind {
                "customer" => assert_eq!(results.total, 0, "{engine}: {ids:?}"),
                _ => assert_eq!(
                    ids,
                    [None],
                    "{engine}: the invoice stays, without its customer"
                ),
            }
        }
    }
}
