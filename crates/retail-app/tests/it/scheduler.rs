//! The scheduler of `[scheduler]` as `retail serve` builds it, on a clock the tests move:
//! cron schedules in their time zones with each catch-up rule, a landing directory fed the
//! real daily files one by one, restarts that neither miss nor repeat work.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use retail_app::{App, Config, Role};
use retail_domain::progress::NoProgress;
use retail_domain::schedule::CatchUp;
use retail_metadata::RunStatus;
use retail_services::RunKind;
use retail_services::alerts::ManualClock;
use retail_services::scheduler::{ScheduleConfig, SensorConfig, SensorKind, TickReport};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn config(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.lake.root = dir.join("lake").display().to_string();
    config.metadata.path = dir.join("retail.db").display().to_string();
    config.pipeline.retry_backoff_ms = 10;
    config.api.jwt_secret = "a test secret of at least thirty-two bytes".to_owned();
    tweak(&mut config);
    config
}

async fn app(config: &Config, clock: &Arc<ManualClock>) -> App {
    App::build_with_clock(config.clone(), Role::Server, Arc::clone(clock) as _)
        .await
        .expect("app")
}

fn hourly(name: &str, catch_up: CatchUp) -> ScheduleConfig {
    ScheduleConfig {
        name: name.to_owned(),
        cron: "0 * * * *".to_owned(),
        timezone: "UTC".to_owned(),
        assets: vec!["silver".to_owned()],
        force: false,
        catch_up,
    }
}

/// How many runs each schedule or sensor started in a tick, by name.
fn runs_by(report: &TickReport) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for (by, _, status) in &report.runs {
        assert_ne!(*status, RunStatus::Failed, "{report:?}");
        *counts.entry(by.clone()).or_default() += 1;
    }
    counts.into_iter().collect()
}

fn owned(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_run_on_their_ticks_in_their_zone_and_catch_up_by_their_rule() {
    let data = retail_test_support::Generated::new(2_000, 5);
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), |config| {
        config.scheduler.catch_up_limit = 2;
        config.scheduler.schedules = vec![
            hourly("each", CatchUp::Each),
            hourly("once", CatchUp::Once),
            hourly("skip", CatchUp::Skip),
            ScheduleConfig {
                name: "new-york".to_owned(),
                cron: "0 9 * * *".to_owned(),
                timezone: "America/New_York".to_owned(),
                ..hourly("new-york", CatchUp::Skip)
            },
        ];
    });
    let clock = Arc::new(ManualClock::new(utc("2026-12-03T10:30:00Z")));
    let app = app(&config, &clock).await;
    let inputs: Vec<String> = data.files.iter().map(|p| p.display().to_string()).collect();
    app.services
        .ingest
        .ingest_files(&inputs, "test", &NoProgress)
        .await
        .expect("ingest");
    let scheduler = &app.services.scheduler;

    // First seen: the ticks count from now, nothing is owed.
    assert_eq!(scheduler.tick().await.unwrap(), TickReport::default());
    let status = scheduler.status().await.unwrap();
    let each = &status.schedules[0];
    assert_eq!(each.last_tick, Some(utc("2026-12-03T10:30:00Z")));
    assert_eq!(each.next_tick, Some(utc("2026-12-03T11:00:00Z")));
    // 09:00 in New York in December is 14:00 UTC.
    assert_eq!(
        status.schedules[3].next_tick,
        Some(utc("2026-12-03T14:00:00Z"))
    );

    clock.advance(chrono::Duration::seconds(29 * 60 + 59));
    assert!(scheduler.tick().await.unwrap().runs.is_empty(), "10:59:59");

    // On time: each hourly schedule runs once.
    clock.advance(chrono::Duration::seconds(6));
    let report = scheduler.tick().await.unwrap();
    assert_eq!(
        runs_by(&report),
        owned(&[
            ("schedule:each", 1),
            ("schedule:once", 1),
            ("schedule:skip", 1)
        ])
    );
    assert_eq!(report.passed_over, 0);

    // Down from 11:00 to 14:20: 12:00, 13:00 and 14:00 were missed, and New York's 09:00.
    clock.advance(chrono::Duration::seconds(3 * 3600 + 20 * 60 - 5));
    let report = scheduler.tick().await.unwrap();
    assert_eq!(
        runs_by(&report),
        owned(&[("schedule:each", 2), ("schedule:once", 1)]),
        "each: the newest 2 (the limit); once: one; skip and New York: none"
    );
    assert_eq!(report.passed_over, 1 + 2 + 3 + 1);

    // Another run holds the pipeline: the due work waits, its cursor does not move.
    clock.advance(chrono::Duration::seconds(40 * 60 + 10)); // 15:00:10
    let held = app.store.claim("pipeline run").await.expect("claim");
    let report = scheduler.tick().await.unwrap();
    assert!(report.runs.is_empty());
    assert_eq!(
        report.deferred,
        ["schedule:each", "schedule:once", "schedule:skip"]
    );
    drop(held);

    // A restart in between: the new process owes exactly what the old one did not run.
    drop(app);
    let app = self::app(&config, &clock).await;
    let report = app.services.scheduler.tick().await.unwrap();
    assert_eq!(
        runs_by(&report),
        owned(&[
            ("schedule:each", 1),
            ("schedule:once", 1),
            ("schedule:skip", 1)
        ])
    );
    assert!(
        app.services.scheduler.tick().await.unwrap().runs.is_empty(),
        "nothing twice"
    );

    // New York's 09:00 on the next day, on time (within the grace minute).
    clock.set(utc("2026-12-04T14:00:30Z"));
    let report = app.services.scheduler.tick().await.unwrap();
    assert_eq!(
        runs_by(&report),
        owned(&[
            ("schedule:each", 2),
            ("schedule:new-york", 1),
            ("schedule:once", 1),
            ("schedule:skip", 1)
        ])
    );

    // The runs are recorded as the schedules' own.
    let runs = app.store.runs(Some(RunKind::Pipeline), 100).await.unwrap();
    let by = |name: &str| {
        runs.iter()
            .filter(|r| r.detail.requested_by.as_deref() == Some(name))
            .count()
    };
    assert_eq!(
        (
            by("schedule:each"),
            by("schedule:once"),
            by("schedule:skip"),
            by("schedule:new-york")
        ),
        (6, 4, 3, 1)
    );
}

fn data_rows(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file).expect("read");
    text.lines().filter(|l| !l.is_empty()).count() as u64 - 1
}

async fn table_rows(app: &App, table: &str) -> u64 {
    let status = app.services.pipeline.status().await.expect("status");
    status
        .tables
        .iter()
        .find(|t| t.table == table)
        .map_or(0, |t| t.rows)
}

/// Drops `file` into `landing` as a careful producer does: written under a hidden name, then
/// renamed (atomic).
fn drop_in(file: &Path, landing: &Path) -> PathBuf {
    let name = file.file_name().expect("name");
    let hidden = landing.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::copy(file, &hidden).expect("copy");
    let target = landing.join(name);
    std::fs::rename(&hidden, &target).expect("rename");
    target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landing_sensor_ingests_real_daily_files_dropped_one_by_one_and_a_restart_repeats_nothing()
 {
    let Some(data) = retail_test_support::real_data() else {
        return;
    };
    let files = retail_test_support::daily_files(&data);
    let dir = tempfile::tempdir().expect("dir");
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).expect("landing");
    let config = config(dir.path(), |config| {
        config.scheduler.sensors = vec![SensorConfig {
            name: "landing".to_owned(),
            kind: SensorKind::Landing,
            path: Some(landing.clone()),
            asset: None,
            url: None,
            stream: None,
            max_lag: None,
            assets: vec!["silver".to_owned(), "gold".to_owned()],
        }];
    });
    let clock = Arc::new(ManualClock::new(utc("2026-12-03T10:00:00Z")));
    let app = app(&config, &clock).await;
    let scheduler = &app.services.scheduler;
    assert_eq!(
        scheduler.tick().await.unwrap(),
        TickReport::default(),
        "empty"
    );

    // A file still being copied in is not taken: half of it, then the rest.
    let first = &files[0];
    let bytes = std::fs::read(first).expect("read");
    let target = landing.join(first.file_name().expect("name"));
    std::fs::write(&target, &bytes[..bytes.len() / 2]).expect("half");
    assert_eq!(
        scheduler.tick().await.unwrap(),
        TickReport::default(),
        "seen once"
    );
    std::fs::write(&target, &bytes).expect("whole");
    assert_eq!(
        scheduler.tick().await.unwrap(),
        TickReport::default(),
        "changed: seen once more"
    );
    let report = scheduler.tick().await.unwrap();
    assert_eq!(
        report.ingested_files,
        [target.file_name().unwrap().to_string_lossy()]
    );
    assert_eq!(runs_by(&report), owned(&[("sensor:landing", 1)]));
    let mut expected = data_rows(first);
    assert_eq!(
        table_rows(&app, "bronze/retail_transactions").await,
        expected
    );
    let mut facts = table_rows(&app, "gold/fact_sales").await;
    assert!(facts > 0);

    // The next days, one by one: each is ingested once and gold follows.
    for file in &files[1..3] {
        drop_in(file, &landing);
        assert!(
            scheduler.tick().await.unwrap().ingested_files.is_empty(),
            "seen once"
        );
        let report = scheduler.tick().await.unwrap();
        assert_eq!(report.ingested_files.len(), 1, "{report:?}");
        assert_eq!(runs_by(&report), owned(&[("sensor:landing", 1)]));
        expected += data_rows(file);
        assert_eq!(
            table_rows(&app, "bronze/retail_transactions").await,
            expected
        );
        let now = table_rows(&app, "gold/fact_sales").await;
        assert!(now > facts, "gold grew with {}", file.display());
        facts = now;
    }

    // A restart: nothing is ingested or run again.
    drop(app);
    let app = self::app(&config, &clock).await;
    let scheduler = &app.services.scheduler;
    assert_eq!(scheduler.tick().await.unwrap(), TickReport::default());

    // A file that is not retail-shaped fails with why; a good one dropped beside it still lands.
    std::fs::write(landing.join("notes.csv"), "hello,world\n1,2\n").expect("notes");
    drop_in(&files[3], &landing);
    scheduler.tick().await.unwrap();
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.ingested_files.len(), 1, "{report:?}");
    assert_eq!(report.failed_files.len(), 1, "{report:?}");
    assert_eq!(report.failed_files[0].0, "notes.csv");
    assert!(
        report.failed_files[0].1.contains("contract columns"),
        "{report:?}"
    );
    expected += data_rows(&files[3]);
    assert_eq!(
        table_rows(&app, "bronze/retail_transactions").await,
        expected
    );
    let status = scheduler.status().await.unwrap();
    let sensor = &status.sensors[0];
    assert_eq!(sensor.files.get("ingested"), Some(&4));
    assert_eq!(sensor.files.get("failed"), Some(&1));
    assert_eq!(sensor.failed_files[0].file, "notes.csv");
    assert!(!sensor.run_pending);
    // Failed files are not retried until they change.
    assert_eq!(scheduler.tick().await.unwrap(), TickReport::default());

    // The ingestions are recorded as the sensor's.
    let ingestions = app.store.runs(Some(RunKind::Ingest), 100).await.unwrap();
    assert!(
        ingestions
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .all(|r| r.detail.requested_by.as_deref() == Some("sensor:landing"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_sensor_ingests_objects_put_under_an_s3_prefix_once_and_leaves_the_rest_alone() {
    let Some(moto) = retail_test_support::moto_url() else {
        return;
    };
    let data = retail_test_support::Generated::new(1_500, 7);
    assert!(data.files.len() >= 4, "{:?}", data.files);
    let bucket = format!("landing-{}", uuid::Uuid::new_v4().simple());
    let http = reqwest::Client::new();
    let put = |key: String, body: Vec<u8>| {
        let request = http.put(format!("{moto}/{bucket}/{key}")).body(body);
        async move {
            let response = request.send().await.expect("moto");
            assert!(response.status().is_success(), "{key}: {response:?}");
        }
    };
    let created = http
        .put(format!("{moto}/{bucket}"))
        .send()
        .await
        .expect("moto");
    assert!(created.status().is_success(), "{created:?}");
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), |config| {
        config.lake.storage_options = [
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        config.scheduler.sensors = vec![SensorConfig {
            name: "drops".to_owned(),
            kind: SensorKind::Prefix,
            path: None,
            asset: None,
            url: Some(format!("s3://{bucket}/daily/")),
            stream: None,
            max_lag: None,
            assets: vec!["silver".to_owned(), "gold".to_owned()],
        }];
    });
    let clock = Arc::new(ManualClock::new(utc("2026-12-03T10:00:00Z")));
    let app = app(&config, &clock).await;
    let scheduler = &app.services.scheduler;
    assert_eq!(
        scheduler.tick().await.unwrap(),
        TickReport::default(),
        "empty"
    );

    // Two days, a marker and an object one level down: only the days are taken, once settled.
    let name = |file: &Path| file.file_name().unwrap().to_string_lossy().into_owned();
    for file in &data.files[..2] {
        put(
            format!("daily/{}", name(file)),
            std::fs::read(file).unwrap(),
        )
        .await;
    }
    put("daily/_SUCCESS".to_owned(), Vec::new()).await;
    put(
        format!("daily/archive/{}", name(data.files.last().unwrap())),
        std::fs::read(data.files.last().unwrap()).unwrap(),
    )
    .await;
    assert_eq!(
        scheduler.tick().await.unwrap(),
        TickReport::default(),
        "seen once"
    );
    let report = scheduler.tick().await.unwrap();
    let mut ingested = report.ingested_files.clone();
    ingested.sort();
    assert_eq!(ingested, [name(&data.files[0]), name(&data.files[1])]);
    assert_eq!(runs_by(&report), owned(&[("sensor:drops", 1)]));
    let expected = data_rows(&data.files[0]) + data_rows(&data.files[1]);
    assert_eq!(
        table_rows(&app, "bronze/retail_transactions").await,
        expected
    );
    assert!(table_rows(&app, "gold/fact_sales").await > 0);
    let status = scheduler.status().await.unwrap();
    assert_eq!(status.sensors[0].watches, format!("s3://{bucket}/daily/"));
    assert_eq!(status.sensors[0].files.get("ingested"), Some(&2));

    // A restart repeats nothing; a bad object fails alone, with why, beside a good one.
    drop(app);
    let app = self::app(&config, &clock).await;
    let scheduler = &app.services.scheduler;
    assert_eq!(scheduler.tick().await.unwrap(), TickReport::default());
    put("daily/notes.csv".to_owned(), b"hello,world\n1,2\n".to_vec()).await;
    put(
        format!("daily/{}", name(&data.files[2])),
        std::fs::read(&data.files[2]).unwrap(),
    )
    .await;
    scheduler.tick().await.unwrap();
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.ingested_files, [name(&data.files[2])], "{report:?}");
    assert_eq!(report.failed_files.len(), 1, "{report:?}");
    assert_eq!(report.failed_files[0].0, "notes.csv");
    assert_eq!(
        table_rows(&app, "bronze/retail_transactions").await,
        expected + data_rows(&data.files[2])
    );

    // A prefix that is not a URL the scheduler can use is refused at start.
    let mut bad = config.clone();
    bad.scheduler.sensors[0].url = Some(format!("http://{bucket}/daily"));
    let error = App::build(bad, Role::Cli).await.unwrap_err().to_string();
    assert!(
        error.contains("must be an s3:// or file:/// URL ending with '/'"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_sensor_runs_its_assets_once_per_new_version_of_the_watched_asset() {
    let data = retail_test_support::Generated::new(1_500, 8);
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), |config| {
        config.scheduler.sensors = vec![SensorConfig {
            name: "after-gold".to_owned(),
            kind: SensorKind::Asset,
            path: None,
            asset: Some("gold".to_owned()),
            url: None,
            stream: None,
            max_lag: None,
            assets: vec!["recommendations".to_owned()],
        }];
    });
    let clock = Arc::new(ManualClock::new(utc("2026-12-03T10:00:00Z")));
    let app = app(&config, &clock).await;
    let scheduler = &app.services.scheduler;
    let gold_run = |files: &[PathBuf]| {
        let inputs: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        let app = &app;
        async move {
            app.services
                .ingest
                .ingest_files(&inputs, "test", &NoProgress)
                .await
                .unwrap();
            app.services
                .pipeline
                .run(
                    retail_services::RunRequest {
                        assets: vec!["silver".to_owned(), "gold".to_owned()],
                        ..retail_services::RunRequest::default()
                    },
                    &NoProgress,
                )
                .await
                .unwrap();
        }
    };
    gold_run(&data.files[..4]).await;

    // First seen: the versions of now are the baseline, nothing runs.
    assert_eq!(scheduler.tick().await.unwrap(), TickReport::default());
    let seen = scheduler.status().await.unwrap().sensors[0]
        .versions
        .clone();
    assert_eq!(seen.len(), 12, "every table gold writes: {seen:?}");

    // A new gold: the sensor runs its assets once.
    gold_run(&data.files[4..]).await;
    let report = scheduler.tick().await.unwrap();
    assert_eq!(runs_by(&report), owned(&[("sensor:after-gold", 1)]));
    let moved = scheduler.status().await.unwrap().sensors[0]
        .versions
        .clone();
    assert!(
        moved.iter().all(|(table, version)| version > &seen[table]),
        "{seen:?} then {moved:?}"
    );
    assert_eq!(
        scheduler.tick().await.unwrap(),
        TickReport::default(),
        "not twice"
    );
    let recommendations = app
        .services
        .pipeline
        .runs(retail_services::RunFilter {
            requested_by: Some("sensor:after-gold".to_owned()),
            ..retail_services::RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(recommendations.len(), 1);
    assert_eq!(recommendations[0].detail.selection, ["recommendations"]);
}
