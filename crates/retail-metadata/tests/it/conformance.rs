//! The metadata store's contract, checked on each backend: a test per backend calls
//! [`suite`], so both answer every question the same way.

use std::sync::Arc;

use chrono::Duration;
use retail_domain::audit::{AuditEvent, ChainProblem, Outcome};
use retail_metadata::{
    ApiKeyRecord, AuditFilter, ConsentRecord, Error, FieldKeys, MetadataStore, PostgresStore,
    RefreshTokenRecord, Rotation, RunKind, RunRecord, RunStatus, SealedStore, SqliteStore,
    UserRecord,
};

/// Runs every check on `store`; `shared` is a second handle on the same store (another
/// process, another replica) for the claims.
async fn suite(store: Arc<dyn MetadataStore>, shared: Arc<dyn MetadataStore>) {
    runs_are_saved_listed_found_and_interrupted_ones_failed(store.as_ref()).await;
    runs_are_filtered_and_paged(store.as_ref()).await;
    users_sessions_and_keys_keep_only_hashes_and_change_atomically(store.as_ref(), shared.as_ref())
        .await;
    claims_exclude_other_holders_until_released(store.as_ref(), shared.as_ref()).await;
    the_alert_state_changes_only_from_the_version_it_was_read_at(store.as_ref(), shared.as_ref())
        .await;
    a_cursor_changes_only_from_the_version_it_was_read_at(store.as_ref(), shared.as_ref()).await;
    a_lease_has_one_holder_until_it_lapses_or_is_released(Arc::clone(&store), Arc::clone(&shared))
        .await;
    the_audit_trail_chains_every_append_and_filters(Arc::clone(&store), Arc::clone(&shared)).await;
    the_consent_log_keeps_every_choice_and_answers_the_latest(store.as_ref(), shared.as_ref())
        .await;
    partitions_are_recorded_counted_and_read_by_page(store.as_ref(), shared.as_ref()).await;
    store.ping().await.expect("ping");
}

async fn runs_are_filtered_and_paged(store: &dyn MetadataStore) {
    use retail_metadata::{AssetRun, RunFilter};
    // Far from the other test's runs: a day in 2030, one run a minute.
    let t0 = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut saved = Vec::new();
    for minute in 0..7 {
        let mut run = RunRecord::start(if minute == 6 {
            RunKind::Ingest
        } else {
            RunKind::Pipeline
        });
        run.started_at = t0 + Duration::minutes(minute);
        run.detail.requested_by = Some(
            [
                "schedule:nightly",
                "sensor:landing",
                "cli",
                "schedule:hourly",
            ][minute as usize % 4]
                .to_owned(),
        );
        run.detail.assets = if minute % 2 == 0 {
            vec![
                AssetRun::up_to_date("silver/retail_transactions"),
                AssetRun::up_to_date("gold/fact_sales"),
            ]
        } else {
            vec![AssetRun::up_to_date("models")]
        };
        match minute {
            0 => run.detail.gold_build = Some("full".into()),
            2 => {
                run.detail.gold_build = Some("incremental".into());
                run.detail.gold_months = vec!["2011-03".into(), "2011-04".into()];
            }
            4 => run.detail.partitions = vec!["2011-03".into()],
            _ => {}
        }
        run.finish(if minute == 3 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        });
        run.started_at = t0 + Duration::minutes(minute);
        store.save_run(&run).await.unwrap();
        saved.push(run);
    }
    let in_2030 = RunFilter {
        since: Some(t0),
        until: Some(t0 + Duration::hours(1)),
        limit: 100,
        ..RunFilter::default()
    };
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let expect = |minutes: &[usize]| {
        minutes
            .iter()
            .map(|&m| saved[m].run_id.clone())
            .collect::<Vec<_>>()
    };
    let list = |filter: RunFilter| async move { ids(store.list_runs(&filter).await.unwrap()) };

    assert_eq!(
        list(in_2030.clone()).await,
        expect(&[6, 5, 4, 3, 2, 1, 0]),
        "newest first"
    );
    assert_eq!(
        list(RunFilter {
            since: Some(t0 + Duration::minutes(2)),
            until: Some(t0 + Duration::minutes(4)),
            ..in_2030.clone()
        })
        .await,
        expect(&[3, 2]),
        "since inclusive, until exclusive"
    );
    assert_eq!(
        list(RunFilter {
            kind: Some(RunKind::Ingest),
            ..in_2030.clone()
        })
        .await,
        expect(&[6])
    );
    assert_eq!(
        list(RunFilter {
            status: Some(RunStatus::Failed),
            ..in_2030.clone()
        })
        .await,
        expect(&[3])
    );
    assert_eq!(
        list(RunFilter {
            assets: vec!["gold/fact_sales".into(), "gold/dim_date".into()],
            ..in_2030.clone()
        })
        .await,
        expect(&[6, 4, 2, 0])
    );
    assert_eq!(
        list(RunFilter {
            assets: vec!["models".into()],
            ..in_2030.clone()
        })
        .await,
        expect(&[5, 3, 1])
    );
    assert_eq!(
        list(RunFilter {
            requested_by: Some("schedule:nightly".into()),
            ..in_2030.clone()
        })
        .await,
        expect(&[4, 0]),
        "exactly"
    );
    assert_eq!(
        list(RunFilter {
            requested_by: Some("schedule:".into()),
            ..in_2030.clone()
        })
        .await,
        expect(&[4, 3, 0]),
        "a prefix ending with ':'"
    );
    assert!(
        list(RunFilter {
            requested_by: Some("schedule".into()),
            ..in_2030.clone()
        })
        .await
        .is_empty()
    );
    for (month, minutes) in [
        ("2011-03", &[4, 2, 0][..]),
        ("2011-04", &[2, 0]),
        ("2011-05", &[0]),
    ] {
        assert_eq!(
            list(RunFilter {
                partition: Some(month.into()),
                ..in_2030.clone()
            })
            .await,
            expect(minutes),
            "runs that built {month}: full builds, its incremental months, backfills asking for it"
        );
    }

    // Pages of 3: each goes on after the last run of the one before, and they add up.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = list(RunFilter {
            limit: 3,
            before: before.clone(),
            ..in_2030.clone()
        })
        .await;
        if page.is_empty() {
            break;
        }
        before = page.last().cloned();
        pages.push(page);
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), expect(&[6, 5, 4, 3, 2, 1, 0]));
    // Runs started in the same microsecond are ordered by id, and pages keep that order.
    let mut twin = RunRecord::start(RunKind::Pipeline);
    twin.started_at = saved[3].started_at;
    twin.detail.requested_by = Some("twin".into());
    twin.finish(RunStatus::Succeeded);
    store.save_run(&twin).await.unwrap();
    let both = list(RunFilter {
        since: Some(saved[3].started_at),
        until: Some(saved[4].started_at),
        ..in_2030.clone()
    })
    .await;
    assert_eq!(both.len(), 2);
    let first = list(RunFilter {
        since: Some(saved[3].started_at),
        until: Some(saved[4].started_at),
        limit: 1,
        ..in_2030.clone()
    })
    .await;
    let second = list(RunFilter {
        since: Some(saved[3].started_at),
        until: Some(saved[4].started_at),
        limit: 1,
        before: first.first().cloned(),
        ..in_2030
    })
    .await;
    assert_eq!([first, second].concat(), both);
}

async fn partitions_are_recorded_counted_and_read_by_page(
    store: &dyn MetadataStore,
    shared: &dyn MetadataStore,
) {
    use retail_metadata::{PartitionFilter, PartitionState, PartitionStatus, backfill_scope};
    let scope = backfill_scope(&format!("conformance-{}", uuid_suffix()));
    let months: Vec<String> = (1..=12).map(|m| format!("2011-{m:02}")).collect();
    let pending: Vec<PartitionState> = months.iter().map(PartitionState::pending).collect();
    store.save_partitions(&scope, &pending).await.unwrap();
    assert_eq!(
        shared.partition_counts(&scope).await.unwrap(),
        [(PartitionStatus::Pending, 12)].into(),
        "another handle sees them"
    );
    // Two done, one failed: saved again under the same keys, they replace what was there.
    let mut done = Vec::new();
    for (month, status) in [
        ("2011-01", PartitionStatus::Succeeded),
        ("2011-02", PartitionStatus::Succeeded),
        ("2011-03", PartitionStatus::Failed),
    ] {
        done.push(PartitionState {
            status,
            run_id: Some(format!("run-{month}")),
            attempts: 1,
            rows: (status == PartitionStatus::Succeeded).then_some(40_000),
            error: (status == PartitionStatus::Failed).then(|| "check failed".to_owned()),
            ..PartitionState::pending(month)
        });
    }
    store.save_partitions(&scope, &done).await.unwrap();
    assert_eq!(
        store.partition_counts(&scope).await.unwrap(),
        [
            (PartitionStatus::Pending, 9),
            (PartitionStatus::Succeeded, 2),
            (PartitionStatus::Failed, 1)
        ]
        .into()
    );
    let page = |after: Option<&str>, status: Option<PartitionStatus>, limit: usize| {
        let filter = PartitionFilter {
            status,
            after: after.map(str::to_owned),
            limit,
        };
        let scope = scope.clone();
        async move { shared.partitions(&scope, &filter).await.unwrap() }
    };
    let first = page(None, None, 5).await;
    assert_eq!(
        first
            .iter()
            .map(|p| p.partition.as_str())
            .collect::<Vec<_>>(),
        ["2011-01", "2011-02", "2011-03", "2011-04", "2011-05"]
    );
    assert_eq!(first[0], done[0], "read back as saved");
    assert_eq!(first[2], done[2]);
    let rest = page(Some("2011-05"), None, 100).await;
    assert_eq!(rest.len(), 7, "the next page starts after the last key");
    assert_eq!(rest[0].partition, "2011-06");
    let failed = page(None, Some(PartitionStatus::Failed), 100).await;
    assert_eq!(failed, vec![done[2].clone()]);
    assert!(
        page(Some("2011-03"), Some(PartitionStatus::Succeeded), 100)
            .await
            .is_empty()
    );
    assert!(
        store
            .partitions("backfill:none", &PartitionFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .partition_counts("backfill:none")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn runs_are_saved_listed_found_and_interrupted_ones_failed(store: &dyn MetadataStore) {
    let mut ingest = RunRecord::start(RunKind::Ingest);
    ingest.rows_in = 10;
    ingest.detail.idempotency_key = Some("d1gest".to_owned());
    ingest.finish(RunStatus::Succeeded);
    store.save_run(&ingest).await.unwrap();
    let mut failed = RunRecord::start(RunKind::Pipeline);
    failed.started_at = ingest.started_at + Duration::seconds(1);
    failed.error = Some("boom".into());
    failed.detail.requested_by = Some("cli".into());
    failed.finish(RunStatus::Failed);
    store.save_run(&failed).await.unwrap();
    let mut running = RunRecord::start(RunKind::Pipeline);
    running.started_at = ingest.started_at + Duration::seconds(2);
    store.save_run(&running).await.unwrap();

    let all = store.runs(None, 10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, [&running.run_id, &failed.run_id, &ingest.run_id]);
    assert_eq!(all[1], failed, "a record reads back equal");
    assert_eq!(
        store.runs(Some(RunKind::Ingest), 10).await.unwrap(),
        vec![ingest.clone()]
    );
    assert_eq!(store.runs(None, 1).await.unwrap().len(), 1);
    assert_eq!(
        store.run(&failed.run_id).await.unwrap(),
        Some(failed.clone())
    );
    assert!(store.run("nope").await.unwrap().is_none());
    assert_eq!(
        store.run_by_idempotency_key("d1gest").await.unwrap(),
        Some(ingest.clone())
    );
    assert!(
        store
            .run_by_idempotency_key("other")
            .await
            .unwrap()
            .is_none()
    );

    // Saving again replaces.
    running.rows_out = 7;
    store.save_run(&running).await.unwrap();
    assert_eq!(
        store.run(&running.run_id).await.unwrap().unwrap().rows_out,
        7
    );

    let marked = store
        .fail_interrupted_runs(RunKind::Pipeline, "interrupted")
        .await
        .unwrap();
    assert_eq!(marked, 1);
    let after = store.run(&running.run_id).await.unwrap().unwrap();
    assert_eq!(after.status, RunStatus::Failed);
    assert_eq!(after.error.as_deref(), Some("interrupted"));
    assert!(after.finished_at.is_some());
    assert_eq!(
        store
            .run(&failed.run_id)
            .await
            .unwrap()
            .unwrap()
            .error
            .as_deref(),
        Some("boom"),
        "finished runs are left alone"
    );
}

async fn users_sessions_and_keys_keep_only_hashes_and_change_atomically(
    store: &dyn MetadataStore,
    shared: &dyn MetadataStore,
) {
    let ana = UserRecord {
        username: "ana".into(),
        password_hash: "$argon2id$hash".into(),
        role: "data_analyst".into(),
        disabled: false,
        created_at: retail_metadata::now(),
    };
    assert!(store.insert_user(&ana).await.unwrap());
    assert!(!store.insert_user(&ana).await.unwrap(), "the name is taken");
    assert_eq!(store.user("ana").await.unwrap(), Some(ana.clone()));
    assert!(store.user("bob").await.unwrap().is_none());

    let token = RefreshTokenRecord {
        token_hash: "t1".into(),
        username: "ana".into(),
        family: "f1".into(),
        expires_at: 2_000_000_000,
        used: false,
        revoked: false,
    };
    store.insert_refresh_token(&token).await.unwrap();
    assert_eq!(
        store.refresh_token("t1").await.unwrap(),
        Some(token.clone())
    );
    let rotated = Rotation::Rotated {
        username: "ana".into(),
        family: "f1".into(),
    };
    assert_eq!(
        store
            .rotate_refresh_token("t1", "t1b", 2_000_000_000, 1_000, 10)
            .await
            .unwrap(),
        rotated
    );
    let next = store.refresh_token("t1b").await.unwrap().unwrap();
    assert_eq!((next.family.as_str(), next.used), ("f1", false));
    assert!(store.refresh_token("t1").await.unwrap().unwrap().used);
    // A retry within the grace period gets a next token too; after it, the session ends.
    assert_eq!(
        store
            .rotate_refresh_token("t1", "t1c", 2_000_000_000, 1_009, 10)
            .await
            .unwrap(),
        rotated
    );
    assert_eq!(
        store
            .rotate_refresh_token("t1", "t1d", 2_000_000_000, 1_011, 10)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert!(store.refresh_token("t1b").await.unwrap().unwrap().revoked);
    assert!(store.refresh_token("t1d").await.unwrap().is_none());
    assert_eq!(
        store
            .rotate_refresh_token("t1b", "t1e", 2_000_000_000, 1_012, 10)
            .await
            .unwrap(),
        Rotation::Revoked
    );
    assert_eq!(
        store
            .rotate_refresh_token("nope", "t1f", 2_000_000_000, 1_012, 10)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    store
        .insert_refresh_token(&RefreshTokenRecord {
            token_hash: "old".into(),
            family: "f0".into(),
            expires_at: 500,
            ..token.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh_token("old", "old2", 2_000_000_000, 1_012, 10)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // Racing rotations of one token without a grace period: exactly one wins.
    store
        .insert_refresh_token(&RefreshTokenRecord {
            token_hash: "race".into(),
            family: "fr".into(),
            ..token.clone()
        })
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        store.rotate_refresh_token("race", "race-a", 2_000_000_000, 1_020, 0),
        shared.rotate_refresh_token("race", "race-b", 2_000_000_000, 1_020, 0),
    );
    let mut outcomes =
        [a.unwrap(), b.unwrap()].map(|rotation| matches!(rotation, Rotation::Rotated { .. }));
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [false, true],
        "one rotation wins, the other is a reuse"
    );
    store
        .insert_refresh_token(&RefreshTokenRecord {
            token_hash: "t2".into(),
            ..token.clone()
        })
        .await
        .unwrap();
    store.revoke_refresh_family("f1").await.unwrap();
    assert!(store.refresh_token("t2").await.unwrap().unwrap().revoked);

    store.revoke_access_token("j1", 100).await.unwrap();
    store.revoke_access_token("j1", 100).await.unwrap();
    store.revoke_access_token("j2", 300).await.unwrap();
    let mut revoked = store.revoked_access_tokens(50).await.unwrap();
    revoked.sort();
    assert_eq!(revoked, ["j1", "j2"]);
    assert_eq!(store.revoked_access_tokens(200).await.unwrap(), ["j2"]);

    let key = ApiKeyRecord {
        id: "abc".into(),
        name: "loader".into(),
        key_hash: "kh".into(),
        role: "data_engineer".into(),
        created_at: retail_metadata::now(),
        revoked: false,
    };
    store.insert_api_key(&key).await.unwrap();
    assert_eq!(
        store.api_key_by_hash("kh").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.api_keys().await.unwrap(), vec![key.clone()]);
    assert!(store.revoke_api_key("abc").await.unwrap());
    assert!(!store.revoke_api_key("nope").await.unwrap());
    assert!(store.api_key_by_hash("kh").await.unwrap().unwrap().revoked);

    store
        .insert_refresh_token(&RefreshTokenRecord {
            token_hash: "t3".into(),
            family: "f3".into(),
            ..token
        })
        .await
        .unwrap();
    assert!(store.disable_user("ana").await.unwrap());
    assert!(!store.disable_user("bob").await.unwrap());
    assert!(store.user("ana").await.unwrap().unwrap().disabled);
    assert!(
        store.refresh_token("t3").await.unwrap().unwrap().revoked,
        "disabling a user ends their sessions"
    );
    assert_eq!(store.users().await.unwrap().len(), 1);
    let listed = serde_json::to_string(&store.users().await.unwrap()).unwrap();
    assert!(!listed.contains("argon2"), "{listed}");
}

async fn claims_exclude_other_holders_until_released(
    store: &dyn MetadataStore,
    shared: &dyn MetadataStore,
) {
    let held = store.claim("pipeline run").await.unwrap();
    assert_eq!(held.operation(), "pipeline run");
    assert!(matches!(
        shared.claim("pipeline run").await,
        Err(Error::Busy {
            operation: "pipeline run"
        })
    ));
    let other = shared.claim("ingestion").await.unwrap();
    drop(held);
    // A PostgreSQL claim is released when its connection closes: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match shared.claim("pipeline run").await {
            Ok(_) => break,
            Err(Error::Busy { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    drop(other);
}

async fn the_alert_state_changes_only_from_the_version_it_was_read_at(
    store: &dyn MetadataStore,
    shared: &dyn MetadataStore,
) {
    assert_eq!(store.alert_state().await.unwrap(), (0, None));
    assert!(store.save_alert_state(0, "{\"a\":1}").await.unwrap());
    assert!(
        !shared.save_alert_state(0, "{\"b\":1}").await.unwrap(),
        "a second first write loses"
    );
    let (version, document) = shared.alert_state().await.unwrap();
    assert_eq!((version, document.as_deref()), (1, Some("{\"a\":1}")));
    assert!(shared.save_alert_state(1, "{\"a\":2}").await.unwrap());
    assert!(
        !store.save_alert_state(1, "{\"a\":3}").await.unwrap(),
        "a writer that read version 1 lost to the one that wrote version 2"
    );
    assert_eq!(
        store.alert_state().await.unwrap(),
        (2, Some("{\"a\":2}".to_owned()))
    );
}

async fn a_cursor_changes_only_from_the_version_it_was_read_at(
    store: &dyn MetadataStore,
    shared: &dyn MetadataStore,
) {
    assert_eq!(store.cursor("schedule:nightly").await.unwrap(), (0, None));
    assert!(
        store
            .save_cursor("schedule:nightly", 0, "t1")
            .await
            .unwrap()
    );
    assert!(
        !shared
            .save_cursor("schedule:nightly", 0, "t1'")
            .await
            .unwrap(),
        "a second first write loses"
    );
    assert!(
        shared
            .save_cursor("schedule:nightly", 1, "t2")
            .await
            .unwrap()
    );
    assert!(
        !store
            .save_cursor("schedule:nightly", 1, "t3")
            .await
            .unwrap(),
        "a writer that read version 1 lost to the one that wrote version 2"
    );
    assert_eq!(
        store.cursor("schedule:nightly").await.unwrap(),
        (2, Some("t2".to_owned()))
    );
    // Cursors are independent of each other.
    assert_eq!(shared.cursor("sensor:landing").await.unwrap(), (0, None));
    assert!(shared.save_cursor("sensor:landing", 0, "{}").await.unwrap());
    assert_eq!(store.cursor("schedule:nightly").await.unwrap().0, 2);
}

async fn a_lease_has_one_holder_until_it_lapses_or_is_released(
    store: Arc<dyn MetadataStore>,
    shared: Arc<dyn MetadataStore>,
) {
    let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let at = |seconds: i64| t0 + Duration::seconds(seconds);
    let ttl = std::time::Duration::from_secs(30);
    assert_eq!(store.lease("scheduler").await.unwrap(), None);

    let taken = store
        .acquire_lease("scheduler", "a", t0, ttl)
        .await
        .unwrap();
    assert_eq!(
        (taken.holder.as_str(), taken.acquired_at, taken.expires_at),
        ("a", t0, at(30))
    );
    // Another holder is refused while it runs, and told who holds it.
    let refused = shared
        .acquire_lease("scheduler", "b", at(10), ttl)
        .await
        .unwrap();
    assert_eq!(refused, taken);
    assert!(!refused.held_by("b", at(10)));
    // The holder renews: the expiry moves, the start stays.
    let renewed = store
        .acquire_lease("scheduler", "a", at(20), ttl)
        .await
        .unwrap();
    assert_eq!((renewed.acquired_at, renewed.expires_at), (t0, at(50)));
    assert_eq!(shared.lease("scheduler").await.unwrap(), Some(renewed));
    // Lapsed: the next taker gets it, and the old holder no longer holds it.
    let successor = shared
        .acquire_lease("scheduler", "b", at(50), ttl)
        .await
        .unwrap();
    assert_eq!(
        (successor.holder.as_str(), successor.acquired_at),
        ("b", at(50))
    );
    let late = store
        .acquire_lease("scheduler", "a", at(55), ttl)
        .await
        .unwrap();
    assert!(!late.held_by("a", at(55)) && late.held_by("b", at(55)));
    // Only the holder releases it; then it is free at once.
    store.release_lease("scheduler", "a").await.unwrap();
    assert_eq!(store.lease("scheduler").await.unwrap().unwrap().holder, "b");
    shared.release_lease("scheduler", "b").await.unwrap();
    assert_eq!(store.lease("scheduler").await.unwrap(), None);

    // Takers racing for a free lease: exactly one wins, and every one is told the same winner.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                Arc::clone(&store)
            } else {
                Arc::clone(&shared)
            };
            tokio::spawn(async move {
                store
                    .acquire_lease("race", &format!("r{i}"), t0, ttl)
                    .await
                    .unwrap()
                    .holder
            })
        })
        .collect();
    let mut holders = Vec::new();
    for racer in racers {
        holders.push(racer.await.unwrap());
    }
    holders.dedup();
    assert_eq!(holders.len(), 1, "{holders:?}");
}

fn event(actor: &str, action: &str, target: &str, outcome: Outcome) -> AuditEvent {
    AuditEvent {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        source: "127.0.0.1".to_owned(),
        outcome,
        detail: "{}".to_owned(),
    }
}

async fn the_audit_trail_chains_every_append_and_filters(
    store: Arc<dyn MetadataStore>,
    shared: Arc<dyn MetadataStore>,
) {
    let all = AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    };
    assert!(store.audit_entries(&all).await.unwrap().is_empty());
    // Two writers at once (two processes, two replicas): one chain, no number twice.
    let appends = (0..24).map(|i| {
        let store = if i % 2 == 0 { &store } else { &shared };
        let store = Arc::clone(store);
        tokio::spawn(async move {
            let (actor, action, outcome) = match i % 3 {
                0 => ("user:alice", "auth.login", Outcome::Success),
                1 => ("user:bob", "auth.login", Outcome::Denied),
                _ => ("user:alice", "http.write", Outcome::Failure),
            };
            store
                .append_audit(&event(actor, action, &format!("GET /c/{i}%_x"), outcome))
                .await
                .unwrap()
        })
    });
    let mut sealed = Vec::new();
    for append in appends {
        sealed.push(append.await.unwrap());
    }
    let entries = shared.audit_entries(&all).await.unwrap();
    assert_eq!(entries.len(), 24);
    let stored = shared.audit_entries_as_stored(&all).await.unwrap();
    let check = retail_domain::audit::verify(&stored, None);
    assert!(check.is_intact(), "{:?}", check.problem);
    assert_eq!(check.head.as_ref().map(|(seq, _)| *seq), Some(24));
    for entry in &sealed {
        assert_eq!(entries[usize::try_from(entry.seq).unwrap() - 1], *entry);
    }
    // Filters, each on its own and with paging.
    let count = |filter: AuditFilter| {
        let store = Arc::clone(&store);
        async move { store.audit_entries(&filter).await.unwrap() }
    };
    let alice = count(AuditFilter {
        actor: Some("user:alice".to_owned()),
        ..all.clone()
    })
    .await;
    assert_eq!(alice.len(), 16);
    assert!(alice.iter().all(|e| e.event.actor == "user:alice"));
    let auth = count(AuditFilter {
        action: Some("auth.".to_owned()),
        ..all.clone()
    })
    .await;
    assert_eq!(auth.len(), 16);
    assert_eq!(
        count(AuditFilter {
            action: Some("auth".to_owned()),
            ..all.clone()
        })
        .await
        .len(),
        0,
        "an action without its dot is exact"
    );
    let denied = count(AuditFilter {
        outcome: Some(Outcome::Denied),
        ..all.clone()
    })
    .await;
    assert_eq!(denied.len(), 8);
    // `%` and `_` in the text are literal.
    let target = count(AuditFilter {
        target_contains: Some("/1%_".to_owned()),
        ..all.clone()
    })
    .await;
    let targets: Vec<_> = target.iter().map(|e| e.event.target.as_str()).collect();
    assert_eq!(targets, ["GET /c/1%_x"]);
    let two = count(AuditFilter {
        target_contains: Some("/c/2".to_owned()),
        limit: 2,
        after_seq: 3,
        ..all.clone()
    })
    .await;
    assert_eq!(
        two.iter()
            .map(|e| e.event.target.as_str())
            .collect::<Vec<_>>(),
        ["GET /c/20%_x", "GET /c/21%_x"],
        "a search pages after a number and stops at its limit"
    );
    assert!(
        count(AuditFilter {
            target_contains: Some("/c/".to_owned()),
            limit: 0,
            ..all.clone()
        })
        .await
        .is_empty(),
        "a limit of 0 finds nothing"
    );
    assert!(
        count(AuditFilter {
            target_contains: Some("/1__".to_owned()),
            ..all.clone()
        })
        .await
        .is_empty()
    );
    let page = count(AuditFilter {
        after_seq: 10,
        limit: 5,
        ..all.clone()
    })
    .await;
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [11, 12, 13, 14, 15]
    );
    let first = chrono::DateTime::parse_from_rfc3339(&entries[0].at)
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        count(AuditFilter {
            since: Some(first + Duration::days(1)),
            ..all.clone()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        count(AuditFilter {
            until: Some(first + Duration::days(1)),
            ..all.clone()
        })
        .await
        .len(),
        24
    );
}

async fn the_consent_log_keeps_every_choice_and_answers_the_latest(
    store: &dyn MetadataStore,
    shared: &dyn MetadataStore,
) {
    let start = chrono::Utc::now();
    let choice = |customer: &str, purpose: &str, granted: bool, minutes: i64| ConsentRecord {
        customer_id: customer.to_owned(),
        purpose: purpose.to_owned(),
        granted,
        // Whole seconds: the log keeps RFC 3339 text.
        at: chrono::DateTime::from_timestamp(start.timestamp() + minutes * 60, 0).unwrap(),
        recorded_by: "user:dpo".to_owned(),
        source: "web-form".to_owned(),
    };
    let history = [
        choice("17850", "marketing", true, 0),
        choice("17850", "profiling", false, 1),
        choice("12346", "marketing", false, 2),
        choice("17850", "marketing", false, 3),
        choice("12346", "marketing", true, 4),
    ];
    for (i, record) in history.iter().enumerate() {
        let store = if i % 2 == 0 { store } else { shared };
        store.append_consent(record).await.unwrap();
    }
    let of_17850 = shared.consent_history("17850").await.unwrap();
    assert_eq!(of_17850, [0, 1, 3].map(|i| history[i].clone()));
    assert_eq!(
        store.latest_consents("marketing").await.unwrap(),
        [("12346".to_owned(), true), ("17850".to_owned(), false)]
    );
    assert_eq!(
        store.latest_consents("profiling").await.unwrap(),
        [("17850".to_owned(), false)]
    );
    assert!(store.latest_consents("analytics").await.unwrap().is_empty());
    assert_eq!(store.erase_consent("17850").await.unwrap(), 3);
    assert!(shared.consent_history("17850").await.unwrap().is_empty());
    assert_eq!(store.consent_history("12346").await.unwrap().len(), 2);
    assert!(store.latest_consents("profiling").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retail.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let shared = Arc::new(SqliteStore::open(&path).unwrap());
    suite(store, shared).await;
    // The trail refuses changes; someone with the file who drops the guard is found out.
    let connection = rusqlite::Connection::open(&path).unwrap();
    for change in [
        "UPDATE audit_log SET outcome = 'success' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
    ] {
        let error = connection.execute(change, []).unwrap_err().to_string();
        assert!(error.contains("append-only"), "{error}");
    }
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_no_update;
             UPDATE audit_log SET outcome = 'success' WHERE seq = 2",
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let entries = store
        .audit_entries(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let check = retail_domain::audit::verify(&entries, None);
    assert_eq!(check.problem, Some(ChainProblem::Altered { seq: 2 }));
    assert_eq!(check.verified, 1);
}

/// Data keys held in memory, as the lake's keyring hands them out: key `current` seals.
#[derive(Debug)]
struct Keys {
    current: u32,
    keys: Vec<[u8; 32]>,
}

impl Keys {
    fn new(current: u32) -> Arc<Self> {
        Arc::new(Self {
            current,
            keys: (1..=3u8).map(|i| [i; 32]).collect(),
        })
    }
}

#[async_trait::async_trait]
impl FieldKeys for Keys {
    async fn current(&self) -> Result<(u32, [u8; 32]), String> {
        Ok((self.current, self.key(self.current).await?))
    }

    async fn key(&self, id: u32) -> Result<[u8; 32], String> {
        self.keys
            .get(id as usize - 1)
            .copied()
            .ok_or_else(|| format!("the keyring has no data key {id}"))
    }
}

async fn sealed(inner: Arc<dyn MetadataStore>, current: u32) -> Arc<dyn MetadataStore> {
    Arc::new(
        SealedStore::open(inner, Keys::new(current))
            .await
            .unwrap()
            .0,
    )
}

/// The bytes with the hex digits of every sealed value (`enc1:<key id>:<hex>`) blanked out, so
/// that what is left is everything the store wrote in clear. Ciphertext written as hex holds a
/// given five-digit number by chance once in about a million places (16^5); the file and its
/// log hold about 9,000 hex digits and the search looks for three such numbers, so about one
/// run in forty failed on a chance match (one did, in the test command of 2026-12-04).
fn without_ciphertext(bytes: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"enc1:";
    let mut out = bytes.to_vec();
    let mut at = 0;
    while let Some(found) = out[at..].windows(PREFIX.len()).position(|w| w == PREFIX) {
        at += found + PREFIX.len();
        while out.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if out.get(at) == Some(&b':') {
            at += 1;
            while let Some(byte) = out.get_mut(at).filter(|b| b.is_ascii_hexdigit()) {
                *byte = b'.';
                at += 1;
            }
        }
    }
    out
}

#[test]
fn only_the_hex_of_sealed_values_is_blanked_out() {
    let bytes = b"12346 enc1:2:0a12346f:12346 enc1:x12346 enc1:7:";
    assert_eq!(
        without_ciphertext(bytes),
        b"12346 enc1:2:........:12346 enc1:x12346 enc1:7:"
    );
}

#[tokio::test]
async fn a_sealed_sqlite_store_keeps_the_contract_and_its_file_holds_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retail.db");
    let plain: Arc<dyn MetadataStore> = Arc::new(SqliteStore::open(&path).unwrap());
    // Choices recorded before sealing was on are sealed when it is turned on.
    for customer in ["99001", "99002"] {
        plain
            .append_consent(&ConsentRecord {
                customer_id: customer.to_owned(),
                purpose: "marketing".to_owned(),
                granted: true,
                at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                recorded_by: "user:dpo".to_owned(),
                source: "store".to_owned(),
            })
            .await
            .unwrap();
    }
    let (store, now_sealed) = SealedStore::open(Arc::clone(&plain), Keys::new(1))
        .await
        .unwrap();
    assert_eq!(now_sealed, 2);
    let store: Arc<dyn MetadataStore> = Arc::new(store);
    assert_eq!(store.consent_history("99001").await.unwrap().len(), 1);
    assert_eq!(store.erase_consent("99002").await.unwrap(), 1);
    assert_eq!(store.erase_consent("99001").await.unwrap(), 1);
    // A data key rotation later: entries are written under key 2, and both stay readable.
    let shared = sealed(Arc::new(SqliteStore::open(&path).unwrap()), 2).await;
    suite(Arc::clone(&store), shared).await;
    store
        .append_audit(&event(
            "user:dpo",
            "gdpr.forget",
            "customer:17850",
            Outcome::Success,
        ))
        .await
        .unwrap();

    let file = without_ciphertext(&std::fs::read(&path).unwrap());
    let wal = without_ciphertext(&std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
    for text in [
        "17850",
        "12346",
        "99001",
        "GET /c/",
        "127.0.0.1",
        "customer:",
    ] {
        let found = |bytes: &[u8]| bytes.windows(text.len()).any(|w| w == text.as_bytes());
        assert!(
            !found(&file) && !found(&wal),
            "{text:?} is on the disk in clear"
        );
    }
    let all = AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    };
    // The chain covers what is stored: checked without the keys.
    let as_stored = plain.audit_entries(&all).await.unwrap();
    assert!(
        as_stored
            .iter()
            .all(|e| e.event.target.starts_with("enc1:"))
    );
    assert!(retail_domain::audit::verify(&as_stored, None).is_intact());
    // The data keys' ids are in the values: key 1 and key 2 both sealed entries.
    assert!(
        as_stored
            .iter()
            .any(|e| e.event.source.starts_with("enc1:1:"))
    );
    assert!(
        as_stored
            .iter()
            .any(|e| e.event.source.starts_with("enc1:2:"))
    );

    // Another keyring (a wrong master key would not even open it): nothing opens.
    let foreign: Arc<dyn MetadataStore> = Arc::new(
        SealedStore::open(
            Arc::new(SqliteStore::open(&path).unwrap()),
            Arc::new(Keys {
                current: 1,
                keys: vec![[9; 32]],
            }),
        )
        .await
        .unwrap()
        .0,
    );
    let error = foreign.audit_entries(&all).await.unwrap_err().to_string();
    assert!(error.contains("does not open"), "{error}");
    assert!(foreign.consent_history("12346").await.unwrap().is_empty());
    // A value moved to another column does not open either.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_no_update;
             UPDATE audit_log SET target = source WHERE seq = 3",
        )
        .unwrap();
    let error = store
        .audit_entries(&AuditFilter {
            after_seq: 2,
            limit: 1,
            ..all.clone()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("audit_log.target does not open"), "{error}");
    let check = retail_domain::audit::verify(&plain.audit_entries(&all).await.unwrap(), None);
    assert_eq!(check.problem, Some(ChainProblem::Altered { seq: 3 }));
}

/// The PostgreSQL server of the test run (`RETAIL_TEST_POSTGRES_URL`); its absence fails the
/// test where `RETAIL_REQUIRE_POSTGRES` is set (CI), and skips it elsewhere, saying so.
fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("RETAIL_TEST_POSTGRES_URL") {
        return Some(url);
    }
    assert!(
        std::env::var_os("RETAIL_REQUIRE_POSTGRES").is_none(),
        "RETAIL_TEST_POSTGRES_URL is not set (scripts/services.sh start postgres)"
    );
    eprintln!("skipped: RETAIL_TEST_POSTGRES_URL is not set");
    None
}

#[tokio::test]
async fn the_postgres_store_keeps_the_contract() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("metadata_test_{}", uuid_suffix());
    let store = Arc::new(PostgresStore::connect(&url, &schema, 2).await.unwrap());
    let shared = Arc::new(PostgresStore::connect(&url, &schema, 2).await.unwrap());
    suite(Arc::clone(&store) as Arc<dyn MetadataStore>, shared).await;
    // The trail refuses changes, also to its owner; dropping the guard is found out.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for change in [
        format!("UPDATE {schema}.audit_log SET outcome = 'success' WHERE seq = 2"),
        format!("DELETE FROM {schema}.audit_log WHERE seq = 2"),
        format!("TRUNCATE {schema}.audit_log"),
    ] {
        let error = client.execute(&change, &[]).await.unwrap_err();
        let message = error.as_db_error().map(|e| e.message().to_owned());
        assert_eq!(message.as_deref(), Some("the audit trail is append-only"));
    }
    client
        .batch_execute(&format!(
            "DROP TRIGGER audit_log_no_change ON {schema}.audit_log;
             DELETE FROM {schema}.audit_log WHERE seq = 5"
        ))
        .await
        .unwrap();
    let entries = store
        .audit_entries(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let check = retail_domain::audit::verify(&entries, None);
    assert_eq!(
        check.problem,
        Some(ChainProblem::Missing {
            expected: 5,
            found: Some(6)
        })
    );
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_sealed_postgres_store_keeps_the_contract() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("metadata_test_{}", uuid_suffix());
    let plain = Arc::new(PostgresStore::connect(&url, &schema, 2).await.unwrap());
    let store = sealed(Arc::clone(&plain) as Arc<dyn MetadataStore>, 1).await;
    let shared = sealed(
        Arc::new(PostgresStore::connect(&url, &schema, 2).await.unwrap()),
        2,
    )
    .await;
    suite(store, shared).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            &format!(
                "SELECT customer_id FROM {schema}.consent_log
                 UNION ALL SELECT target FROM {schema}.audit_log
                 UNION ALL SELECT source FROM {schema}.audit_log"
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let value: String = row.get(0);
        assert!(value.starts_with("enc1:"), "{value} is stored in clear");
    }
    plain.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_postgres_schema_of_a_newer_build_or_an_edited_migration_stops_start_up() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("metadata_test_{}", uuid_suffix());
    let store = PostgresStore::connect(&url, &schema, 1).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            &format!("UPDATE {schema}.metadata_migrations SET checksum = 'x' WHERE version = 1"),
            &[],
        )
        .await
        .unwrap();
    let edited = PostgresStore::connect(&url, &schema, 1).await.unwrap_err();
    assert!(edited.to_string().contains("changed after"), "{edited}");
    client
        .execute(
            &format!("INSERT INTO {schema}.metadata_migrations VALUES (999, 'y')"),
            &[],
        )
        .await
        .unwrap();
    let newer = PostgresStore::connect(&url, &schema, 1).await.unwrap_err();
    assert!(
        newer.to_string().contains("newer than this build"),
        "{newer}"
    );
    let wrong = PostgresStore::connect("postgres://u:sekrit@127.0.0.1:1/db", "s", 1)
        .await
        .unwrap_err();
    assert!(!format!("{wrong:?}{wrong}").contains("sekrit"), "{wrong}");
    store.drop_schema().await.unwrap();
}

fn uuid_suffix() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}
