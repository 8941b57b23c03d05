//! The `retail` binary end to end on generated data: every command a user types in the quick
//! start, their `--help`, and clear errors that change nothing.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `retail` with a lake and metadata store in `dir`.
fn retail(dir: &Path, args: &[&str]) -> Output {
    retail_with(dir, &[], args)
}

/// Runs `retail` with a lake and metadata store in `dir` and these variables.
fn retail_with(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retail"))
        .args(args)
        .current_dir(dir)
        .env_remove("RETAIL_CONFIG")
        .env("RETAIL__LAKE__ROOT", dir.join("lake"))
        .env("RETAIL__METADATA__PATH", dir.join("retail.db"))
        .env("RETAIL__TELEMETRY__LOG_LEVEL", "warn")
        .envs(vars.iter().copied())
        .output()
        .expect("retail runs")
}

/// Runs `retail` with these variables, asserts success and returns its standard output.
fn stdout_with(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> String {
    let output = retail_with(dir, vars, args);
    assert!(
        output.status.success(),
        "retail {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Runs `retail`, asserts success and parses its standard output as JSON.
fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let output = retail(dir, args);
    assert!(
        output.status.success(),
        "retail {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "retail {args:?} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn materialized(run: &serde_json::Value) -> Vec<String> {
    run["detail"]["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .filter(|a| a["status"] == "materialized")
        .map(|a| a["asset"].as_str().expect("key").to_owned())
        .collect()
}

#[test]
fn the_quick_start_commands_work_asset_by_asset_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let generated = retail(
        dir,
        &["generate", "--rows", "2000", "--days", "15", "--out", "gen"],
    );
    assert!(generated.status.success());

    let ingestion = json(dir, &["ingest", "gen", "--json"]);
    assert_eq!(ingestion["status"], "succeeded", "{ingestion}");
    let landed = ingestion["rows_out"].as_u64().unwrap();
    assert!(landed >= 2_000, "{ingestion}");

    // Silver alone: gold stays behind, and the status says so.
    let silver = json(dir, &["pipeline", "run", "--asset", "silver", "--json"]);
    let written = materialized(&silver);
    assert!(written.contains(&"silver/retail_transactions".to_owned()));
    assert!(
        written.iter().all(|t| t.starts_with("silver/")),
        "{written:?}"
    );
    let status = json(dir, &["pipeline", "status", "--json"]);
    assert_eq!(status["silver_up_to_date"], true, "{status}");
    assert_eq!(status["gold_up_to_date"], false, "{status}");

    let rest = json(dir, &["pipeline", "run", "--json"]);
    assert!(
        materialized(&rest).contains(&"gold/fact_sales".to_owned()),
        "{rest}"
    );
    assert!(
        !materialized(&rest).iter().any(|t| t.starts_with("silver/")),
        "silver was current: {rest}"
    );
    let status = json(dir, &["pipeline", "status", "--json"]);
    assert_eq!(status["gold_up_to_date"], true, "{status}");

    let rows = json(
        dir,
        &[
            "warehouse",
            "query",
            "sales_summary",
            "--backend",
            "embedded",
            "--json",
        ],
    );
    let summary = &rows.as_array().expect("rows")[0];
    assert!(summary["orders"].as_u64().is_some_and(|n| n > 0), "{rows}");

    // Bad input: a clear error naming the problem, and nothing recorded or written.
    let runs_before = json(dir, &["pipeline", "runs", "--json"])
        .as_array()
        .unwrap()
        .len();
    let unknown = retail(dir, &["pipeline", "run", "--asset", "platinum"]);
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(message.contains("platinum"), "{message}");
    let missing = retail(dir, &["ingest", "nowhere/*.csv"]);
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("nowhere/*.csv"), "{message}");
    let query = retail(
        dir,
        &[
            "warehouse",
            "query",
            "sales_summary",
            "-p",
            "from=yesterday",
        ],
    );
    assert!(!query.status.success());
    let message = String::from_utf8_lossy(&query.stderr);
    assert!(message.contains("from"), "{message}");
    // The failed ingestion is recorded as failed; no pipeline run was added.
    let runs = json(dir, &["pipeline", "runs", "--kind", "pipeline", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 2);
    let all = json(dir, &["pipeline", "runs", "--json"])
        .as_array()
        .unwrap()
        .len();
    assert!(all <= runs_before + 1);
    let status = json(dir, &["pipeline", "status", "--json"]);
    assert_eq!(status["gold_up_to_date"], true, "{status}");
    // A vacuum within the retention removes nothing and changes no version.
    let vacuum = json(dir, &["lake", "vacuum", "--json"]);
    let tables = vacuum.as_array().unwrap();
    assert_eq!(tables.len(), retail_lake::schema::ALL_TABLES.len());
    assert!(tables.iter().all(|t| t["files"] == 0), "{vacuum}");
    let refused = retail(dir, &["lake", "vacuum", "--retention-hours", "0"]);
    assert!(!refused.status.success());
    let status = json(dir, &["pipeline", "status", "--json"]);
    assert_eq!(status["gold_up_to_date"], true, "{status}");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &[][..],
        &["ingest"],
        &["pipeline"],
        &["pipeline", "run"],
        &["pipeline", "status"],
        &["pipeline", "runs"],
        &["pipeline", "assets"],
        &["quality", "report"],
        &["generate"],
        &["demo"],
        &["bench"],
        &["warehouse"],
        &["warehouse", "load"],
        &["warehouse", "status"],
        &["warehouse", "query"],
        &["warehouse", "catalogue"],
        &["serve"],
        &["scheduler"],
        &["scheduler", "status"],
        &["scheduler", "tick"],
        &["users"],
        &["keys"],
        &["migrate"],
        &["lake"],
        &["lake", "vacuum"],
        &["stream"],
        &["stream", "run"],
        &["stream", "status"],
        &["config"],
        &["config", "print"],
        &["config", "check"],
        &["alerts"],
        &["alerts", "list"],
        &["alerts", "ack"],
        &["alerts", "silence"],
        &["audit"],
        &["audit", "verify"],
        &["audit", "list"],
        &["gdpr"],
        &["gdpr", "forget"],
        &["gdpr", "status"],
        &["gdpr", "list"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let output = retail(dir.path(), &args);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "retail {args:?}");
        assert!(text.contains("Usage: retail"), "retail {args:?}: {text}");
    }
}

#[test]
fn a_customer_is_forgotten_from_the_command_line_and_the_report_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    assert!(
        retail(
            dir,
            &["generate", "--rows", "2000", "--days", "10", "--out", "gen"]
        )
        .status
        .success()
    );
    json(dir, &["ingest", "gen", "--json"]);
    json(dir, &["pipeline", "run", "--json"]);
    // A customer of the generated files (the seventh field is the customer's id).
    let file = std::fs::read_dir(dir.join("gen"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let customer = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(6))
        .map(|id| id.trim_end_matches(".0").to_owned())
        .find(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .expect("a customer in the generated data");
    let report = json(dir, &["gdpr", "forget", "--customer", &customer, "--json"]);
    assert_eq!(report["status"], "succeeded", "{report}");
    let bronze = &report["tables"][0];
    assert_eq!(bronze["table"], "bronze/retail_transactions", "{report}");
    assert!(bronze["rows"].as_u64().unwrap() > 0, "{report}");
    let request = report["request_id"].as_str().unwrap();
    let status = json(dir, &["gdpr", "status", request, "--json"]);
    assert_eq!(status, report);
    let listed = json(dir, &["gdpr", "list", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let unknown = retail(dir, &["gdpr", "status", "erasure-none"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no erasure request"));
    // A blank id changes nothing; the trail never holds the id in a command line.
    let blank = retail(dir, &["gdpr", "forget", "--customer", " "]);
    assert!(!blank.status.success());
    assert!(String::from_utf8_lossy(&blank.stderr).contains("blank"));
    let trail = retail(dir, &["audit", "list", "--json"]);
    let trail = String::from_utf8_lossy(&trail.stdout);
    assert!(trail.contains("gdpr.forget"), "{trail}");
    assert!(!trail.contains("cli.gdpr"), "{trail}");
    assert!(
        !trail.contains(&format!("--customer {customer}")),
        "{trail}"
    );
}

#[test]
fn commands_that_change_something_are_audited_and_verify_names_an_altered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let as_tester = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_retail"))
            .args(args)
            .env_remove("RETAIL_CONFIG")
            .env("RETAIL__LAKE__ROOT", dir.path().join("lake"))
            .env("RETAIL__METADATA__PATH", dir.path().join("retail.db"))
            .env("RETAIL__TELEMETRY__LOG_LEVEL", "warn")
            .env("USER", "tester")
            .output()
            .expect("retail runs")
    };
    assert!(
        as_tester(&["keys", "create", "--name", "bi", "--role", "data_analyst"])
            .status
            .success()
    );
    assert!(
        !as_tester(&["keys", "revoke", "--id", "no-such-key"])
            .status
            .success()
    );
    assert!(as_tester(&["keys", "list"]).status.success());
    let listed = as_tester(&["audit", "list", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let summary: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("cli:tester", "cli.keys.create", "success"),
            ("cli:tester", "cli.keys.revoke", "failure"),
        ],
        "reads (keys list, audit list) are not audited"
    );
    assert!(
        entries[0]["target"]
            .as_str()
            .unwrap()
            .ends_with("keys create --name bi --role data_analyst")
    );
    assert!(entries[0]["source"].as_str().unwrap().starts_with("cli@"));
    assert!(
        entries[1]["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-key")
    );
    let verified = as_tester(&["audit", "verify", "--json"]);
    assert!(verified.status.success());
    let verdict: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(verdict["verified"], 2);
    let head = format!(
        "{}:{}",
        verdict["head"][0],
        verdict["head"][1].as_str().unwrap()
    );
    // Altered behind the platform's back: verify fails and names the entry.
    let connection = rusqlite::Connection::open(dir.path().join("retail.db")).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_no_update;
             UPDATE audit_log SET outcome = 'success' WHERE seq = 2",
        )
        .unwrap();
    let verified = as_tester(&["audit", "verify", "--expect-head", &head]);
    assert!(!verified.status.success());
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(stderr.contains("entry 2 was altered"), "{stderr}");
    assert!(String::from_utf8_lossy(&verified.stdout).contains("entries verified  1"));
    // A head that is not one is refused by name.
    let refused = as_tester(&["audit", "verify", "--expect-head", "2:abc"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not a head"));
}

/// The moto server of the test run (`RETAIL_TEST_MOTO_URL`); its absence fails the test where
/// `RETAIL_REQUIRE_MOTO` is set (CI), and skips it elsewhere, saying so.
fn moto_url() -> Option<String> {
    if let Ok(url) = std::env::var("RETAIL_TEST_MOTO_URL") {
        return Some(url);
    }
    assert!(
        std::env::var_os("RETAIL_REQUIRE_MOTO").is_none(),
        "RETAIL_TEST_MOTO_URL is not set (scripts/services.sh start moto)"
    );
    eprintln!("skipped: RETAIL_TEST_MOTO_URL is not set");
    None
}

/// Calls one Secrets Manager action on moto in eu-west-1 (moto reads the service and region
/// from the credential scope and takes any signature).
fn secrets_manager(url: &str, action: &str, body: &serde_json::Value) -> String {
    use std::io::{Read as _, Write as _};
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST / HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/x-amz-json-1.1\r\n\
         x-amz-target: secretsmanager.{action}\r\nauthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20260101/eu-west-1/secretsmanager/aws4_request, SignedHeaders=host, \
         Signature=00\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{action}: {answer}");
    answer
}

#[test]
fn secrets_come_from_files_variables_and_aws_secrets_manager() {
    let Some(moto) = moto_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = std::process::id();
    let name = format!("retail/test-{run}");
    let jwt = "a signing secret of at least thirty-two bytes, kept in AWS";
    secrets_manager(
        &moto,
        "CreateSecret",
        &serde_json::json!({
            "Name": name,
            "SecretString": serde_json::json!({"jwt": jwt, "short": "too short"}).to_string(),
        }),
    );
    std::fs::write(dir.path().join("redis"), "redis://127.0.0.1:6379/\n").unwrap();
    let check = |jwt_reference: &str| {
        Command::new(env!("CARGO_BIN_EXE_retail"))
            .args(["config", "check"])
            .env_remove("RETAIL_CONFIG")
            .env("RETAIL__LAKE__ROOT", dir.path().join("lake"))
            .env("RETAIL__METADATA__PATH", dir.path().join("retail.db"))
            .env("RETAIL__TELEMETRY__LOG_LEVEL", "warn")
            .env("RETAIL__API__JWT_SECRET", jwt_reference)
            .env(
                "RETAIL__API__REDIS_URL",
                format!("file:{}", dir.path().join("redis").display()),
            )
            .env("RETAIL__SECRETS__AWS_ENDPOINT", &moto)
            .env("RETAIL__SECRETS__AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .expect("retail runs")
    };
    let fine = check(&format!("aws-sm:{name}#jwt"));
    assert!(
        fine.status.success(),
        "{}",
        String::from_utf8_lossy(&fine.stderr)
    );
    // The value fetched is the one checked: a short one breaks the length rule.
    for (reference, says) in [
        (
            format!("aws-sm:{name}#short"),
            "api.jwt_secret must be at least 32 bytes".to_owned(),
        ),
        (
            format!("aws-sm:{name}#missing"),
            "the secret has no key \"missing\"".to_owned(),
        ),
        (
            "aws-sm:retail/no-such-secret".to_owned(),
            "ResourceNotFoundException".to_owned(),
        ),
        (
            "env:RETAIL_TEST_NO_SUCH_VARIABLE".to_owned(),
            "RETAIL_TEST_NO_SUCH_VARIABLE is not set".to_owned(),
        ),
        (
            "file:/no/such/file".to_owned(),
            "cannot read /no/such/file".to_owned(),
        ),
    ] {
        let output = check(&reference);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{reference}: {stderr}");
        assert!(stderr.contains(&says), "{reference}: {stderr}");
        assert!(!stderr.contains(jwt), "a secret is never printed: {stderr}");
    }
}

#[test]
fn alerts_are_silenced_listed_and_acknowledged_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let listed = json(dir.path(), &["alerts", "list", "--json"]);
    assert_eq!(listed, serde_json::json!({"alerts": [], "silences": []}));
    let output = retail(
        dir.path(),
        &[
            "alerts",
            "silence",
            "--matcher",
            "alertname=\"BronzeStale\"",
            "--minutes",
            "30",
            "--comment",
            "supplier feed paused",
            "--by",
            "ops",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = json(dir.path(), &["alerts", "list", "--json"]);
    let silence = &listed["silences"][0];
    assert_eq!(
        silence["matchers"],
        serde_json::json!(["alertname=\"BronzeStale\""])
    );
    assert_eq!(silence["created_by"], "ops");
    // Mistakes are named and change nothing.
    for (args, says) in [
        (
            &[
                "alerts",
                "silence",
                "--matcher",
                "alertname",
                "--comment",
                "x",
            ][..],
            "matcher",
        ),
        (
            &[
                "alerts",
                "silence",
                "--matcher",
                "a=\"b\"",
                "--comment",
                " ",
            ],
            "comment",
        ),
        (
            &["alerts", "ack", "0123456789abcdef"],
            "no alert has fingerprint",
        ),
    ] {
        let output = retail(dir.path(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    let id = silence["id"].as_str().unwrap();
    let output = retail(dir.path(), &["alerts", "silence", "--expire", id]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = json(dir.path(), &["alerts", "list", "--json"]);
    assert_eq!(listed["silences"], serde_json::json!([]));
}

#[test]
fn an_unreachable_broker_is_a_clear_error_within_the_retry_time() {
    let dir = tempfile::tempdir().unwrap();
    let output = retail(
        dir.path(),
        &[
            "stream",
            "run",
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "sales",
            "--retry-seconds",
            "1",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("kafka: failed to connect to 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn stream_options_of_the_other_source_or_a_missing_name_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["stream", "run", "--topic", "sales"],
            "source kafka needs brokers",
        ),
        (
            &[
                "stream",
                "run",
                "--source",
                "rabbitmq",
                "--url",
                "amqp://127.0.0.1:1",
            ],
            "source rabbitmq needs a queue or a stream",
        ),
        (
            &[
                "stream", "status", "--source", "rabbitmq", "--queue", "q", "--topic", "t",
            ],
            "brokers, topic and partitions are for source kafka",
        ),
        (
            &[
                "stream",
                "run",
                "--brokers",
                "b:1",
                "--topic",
                "t",
                "--queue",
                "q",
            ],
            "url, queue and stream are for source rabbitmq",
        ),
    ];
    for (args, expected) in cases {
        let output = retail(dir.path(), args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("retail.db").exists(),
        "a refused command opens nothing"
    );
    let output = retail(
        dir.path(),
        &[
            "stream",
            "run",
            "--source",
            "rabbitmq",
            "--url",
            "amqp://guest:secret@127.0.0.1:1/%2f",
            "--queue",
            "sales",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rabbitmq: failed to connect to amqp://guest:***@127.0.0.1:1/%2f"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[test]
fn serve_refuses_a_random_token_secret_beyond_loopback_before_opening_anything() {
    let dir = tempfile::tempdir().unwrap();
    let output = retail(dir.path(), &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RETAIL__API__JWT_SECRET"), "{stderr}");
    assert!(
        !dir.path().join("retail.db").exists(),
        "nothing is created by a refused start"
    );
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            found.push((path, bytes));
        }
    }
    found
}

#[test]
fn an_encrypted_lake_answers_as_a_plain_one_and_its_keys_rotate() {
    let root = tempfile::tempdir().unwrap();
    let (plain, sealed) = (root.path().join("plain"), root.path().join("sealed"));
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::create_dir_all(&sealed).unwrap();
    let generated = retail(
        root.path(),
        &["generate", "--rows", "2000", "--days", "10", "--out", "gen"],
    );
    assert!(generated.status.success());
    let generated_dir = root.path().join("gen");
    let gen_dir = generated_dir.to_str().unwrap();

    let key = stdout_with(root.path(), &[], &["lake", "keys", "generate"]);
    let key = key.trim().to_owned();
    assert!(
        key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()),
        "{key}"
    );
    let with_key = [("RETAIL__LAKE__ENCRYPTION__MASTER_KEY", key.as_str())];
    let summary = |dir: &Path, vars: &[(&str, &str)]| {
        stdout_with(
            dir,
            vars,
            &[
                "warehouse",
                "query",
                "sales_summary",
                "--backend",
                "embedded",
                "--json",
            ],
        )
    };
    for (dir, vars) in [(&plain, &[][..]), (&sealed, &with_key[..])] {
        stdout_with(dir, vars, &["ingest", gen_dir, "--json"]);
        stdout_with(dir, vars, &["pipeline", "run", "--json"]);
    }
    let expected = summary(&plain, &[]);
    assert!(expected.contains("orders"), "{expected}");
    assert_eq!(summary(&sealed, &with_key), expected, "the same answers");

    // The embedded search index answers the same from its sealed files.
    let search = |dir: &Path, vars: &[(&str, &str)]| {
        stdout_with(
            dir,
            vars,
            &["search", "query", "lantern white", "--limit", "5"],
        )
    };
    let found = search(&plain, &[]);
    assert!(!found.starts_with("0 results"), "{found}");
    assert_eq!(search(&sealed, &with_key), found, "the same hits");

    // Every file of every table, and of the search index beside them, is sealed; only the
    // keyring (wrapped keys) is not, and the index's empty lock files.
    let lake = sealed.join("lake");
    let files = files_under(&lake);
    assert!(files.len() > 50, "{}", files.len());
    assert!(
        files
            .iter()
            .any(|(path, bytes)| path.starts_with(lake.join("search")) && bytes.len() > 1000),
        "the index is on the disk"
    );
    let unsealed: Vec<String> = files
        .iter()
        .filter(|(path, bytes)| {
            !bytes.starts_with(b"RDPENC01")
                && !bytes.is_empty()
                && !path.ends_with("_encryption/keyring.json")
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(unsealed.is_empty(), "{unsealed:?}");

    // A new data key: what is written from now on is sealed under it.
    let status: serde_json::Value = serde_json::from_str(&stdout_with(
        &sealed,
        &with_key,
        &["lake", "keys", "status", "--json"],
    ))
    .unwrap();
    assert_eq!(status["current"], 1, "{status}");
    stdout_with(&sealed, &with_key, &["lake", "keys", "rotate-data-key"]);
    let more = retail(
        root.path(),
        &[
            "generate",
            "--rows",
            "300",
            "--days",
            "2",
            "--start",
            "2011-03-01",
            "--seed",
            "7",
            "--out",
            "more",
        ],
    );
    assert!(
        more.status.success(),
        "{}",
        String::from_utf8_lossy(&more.stderr)
    );
    let more = root.path().join("more");
    stdout_with(
        &sealed,
        &with_key,
        &["ingest", more.to_str().unwrap(), "--json"],
    );
    stdout_with(&sealed, &with_key, &["pipeline", "run", "--json"]);
    let under_second = files_under(&sealed.join("lake"))
        .iter()
        .filter(|(_, bytes)| bytes.len() > 12 && bytes[8..12] == 2u32.to_be_bytes())
        .count();
    assert!(under_second > 0, "files sealed under data key 2");

    // A new master key, the old one kept as previous until every data key is wrapped anew.
    let new_key = stdout_with(root.path(), &[], &["lake", "keys", "generate"]);
    let new_key = new_key.trim().to_owned();
    let config = root.path().join("rotation.toml");
    std::fs::write(
        &config,
        format!(
            "[lake.encryption]\nmaster_key = \"{new_key}\"\nprevious_master_keys = [\"{key}\"]\n"
        ),
    )
    .unwrap();
    let rotation = [("RETAIL_CONFIG", config.to_str().unwrap())];
    let rewrapped = stdout_with(&sealed, &rotation, &["lake", "keys", "rewrap"]);
    assert!(
        rewrapped.starts_with("2 data keys wrapped anew"),
        "{rewrapped}"
    );
    let only_new = [("RETAIL__LAKE__ENCRYPTION__MASTER_KEY", new_key.as_str())];
    let after = summary(&sealed, &only_new);
    assert_ne!(after, expected, "the second batch is in gold");
    assert!(after.contains("orders"), "{after}");

    // The retired key, no key, or a malformed key: a clear error, nothing read.
    for (vars, message) in [
        (&with_key[..], "is wrapped by master key"),
        (&[][..], "lake.encryption.master_key is not set"),
        (
            &[("RETAIL__LAKE__ENCRYPTION__MASTER_KEY", "0123")][..],
            "64 hex digits",
        ),
    ] {
        let refused = retail_with(&sealed, vars, &["pipeline", "status", "--json"]);
        assert!(!refused.status.success());
        let error = String::from_utf8_lossy(&refused.stderr);
        assert!(error.contains(message), "{message}: {error}");
    }
}

/// `retail scheduler status --json` of the lake and store in `dir`.
fn scheduler_status(dir: &Path, config: &Path) -> serde_json::Value {
    let config = config.display().to_string();
    let output = retail_with(
        dir,
        &[("RETAIL_CONFIG", &config)],
        &["scheduler", "status", "--json"],
    );
    assert!(
        output.status.success(),
        "retail scheduler status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// Waits up to `limit` for `check` on the scheduler's status; returns how long it took.
fn wait_for_status(
    dir: &Path,
    config: &Path,
    limit: std::time::Duration,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let status = scheduler_status(dir, config);
        if check(&status) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what} within {limit:?}: {status:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn a_second_scheduler_takes_over_when_the_first_is_killed_and_a_clean_stop_frees_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).unwrap();
    let config = dir.path().join("retail.toml");
    std::fs::write(
        &config,
        format!(
            "[scheduler]\ntick_seconds = 1\nlease_seconds = 3\n\n[[scheduler.sensors]]\n\
             name = \"landing\"\nkind = \"landing\"\npath = {:?}\nassets = [\"silver\"]\n",
            landing.display().to_string()
        ),
    )
    .unwrap();
    let spawn = |log: &str| {
        Command::new(env!("CARGO_BIN_EXE_retail"))
            .args(["scheduler"])
            .current_dir(dir.path())
            .env("RETAIL_CONFIG", &config)
            .env("RETAIL__LAKE__ROOT", dir.path().join("lake"))
            .env("RETAIL__METADATA__PATH", dir.path().join("retail.db"))
            .env("RETAIL__TELEMETRY__LOG_LEVEL", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .expect("retail scheduler starts")
    };
    let holder = |status: &serde_json::Value| {
        status["lease_held"]
            .as_bool()
            .unwrap_or(false)
            .then(|| status["lease"]["holder"].as_str().unwrap_or("").to_owned())
    };
    let held_by = |pid: u32| {
        move |status: &serde_json::Value| {
            holder(status).is_some_and(|h| h.contains(&format!(":{pid}:")))
        }
    };
    let limit = std::time::Duration::from_secs(60);

    let mut first = spawn("first.log");
    wait_for_status(
        dir.path(),
        &config,
        limit,
        "the first scheduler holds the lease",
        held_by(first.id()),
    );
    let mut second = spawn("second.log");
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(
        held_by(first.id())(&scheduler_status(dir.path(), &config)),
        "a live holder keeps its lease past its length (it renews)"
    );

    // Killed: no clean stop, the lease lapses and the second takes it.
    first.kill().unwrap();
    first.wait().unwrap();
    let took = wait_for_status(
        dir.path(),
        &config,
        limit,
        "the second scheduler takes over",
        held_by(second.id()),
    );
    eprintln!("takeover after the holder was killed: {took:?} (lease 3 s, tick 1 s)");
    let refused = retail_with(
        dir.path(),
        &[("RETAIL_CONFIG", &config.display().to_string())],
        &["scheduler", "tick"],
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("another scheduler holds the lease"),
        "{message}"
    );

    // The successor runs the sensor: a file dropped now is ingested.
    std::fs::write(
        landing.join("2011-01-04.csv"),
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
         540000,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-01-04 10:00:00,2.55,17850,United Kingdom\n",
    )
    .unwrap();
    wait_for_status(
        dir.path(),
        &config,
        limit,
        "the dropped file is ingested and run",
        |status| {
            status["sensors"][0]["files"]["ingested"] == 1
                && status["sensors"][0]["run_pending"] == false
        },
    );
    let runs = json(dir.path(), &["pipeline", "runs", "--json"]);
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["detail"]["requested_by"] == "sensor:landing"
                && r["kind"] == "pipeline"
                && r["status"] == "succeeded"),
        "{runs:#}"
    );

    // SIGTERM: the holder stops cleanly and frees the lease at once.
    let terminated = Command::new("kill")
        .arg(second.id().to_string())
        .status()
        .unwrap();
    assert!(terminated.success());
    assert!(second.wait().unwrap().success(), "a clean stop exits 0");
    let status = scheduler_status(dir.path(), &config);
    assert_eq!(status["lease"], serde_json::Value::Null, "{status:#}");
}
