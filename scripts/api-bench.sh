#!/usr/bin/env bash
# Load benchmark of the HTTP API with wrk (from the distribution's packages, installed when
# missing): a cached analytics endpoint, and batch ingestion.
#
#   scripts/api-bench.sh target/release/retail ../shared/data/online-retail/spark-guide-by-day
#
# It builds a scratch lake from the data (retail demo), creates a user, starts `retail serve`
# on 127.0.0.1 with rate limits lifted (one user sends everything), runs wrk, and stops the
# server. Results are wrk's own report: requests per second and the latency distribution.
# BENCH_ONLY=cached skips the ingestion runs. Telemetry comes from the caller's RETAIL__TELEMETRY__*
# variables, to measure its cost, e.g.:
#   RETAIL__TELEMETRY__METRICS=false scripts/api-bench.sh ...                       # all off
#   RETAIL__TELEMETRY__LOG_LEVEL=warn,retail=info \
#   RETAIL__TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:54317 scripts/api-bench.sh ...  # all on
set -euo pipefail

retail=$(realpath "${1:?usage: api-bench.sh RETAIL_BINARY DATA_DIR}")
data=$(realpath "${2:?usage: api-bench.sh RETAIL_BINARY DATA_DIR}")
duration="${BENCH_SECONDS:-15}"
connections="${BENCH_CONNECTIONS:-32}"
batch="${BENCH_BATCH:-1000}"
port="${BENCH_PORT:-58080}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk from the distribution's packages" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2
fi

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
# Telemetry as the caller set it (RETAIL__TELEMETRY__METRICS, RETAIL__TELEMETRY__OTLP_ENDPOINT,
# a log level that keeps the platform's info spans, ...); by default warnings only.
export RETAIL__TELEMETRY__LOG_LEVEL="${RETAIL__TELEMETRY__LOG_LEVEL:-warn}"
export RETAIL__API__JWT_SECRET="bench-secret-of-at-least-thirty-two-bytes"
export RETAIL__API__RATE_LIMIT_PER_MINUTE=1000000000 RETAIL__API__RATE_LIMIT_BURST=1000000
export RETAIL__API__BODY_LIMIT_BYTES=67108864

echo "==> building the lake from $data" >&2
"$retail" demo --no-serve --data "$data" > demo.txt
printf '%s' "bench password 0123" | "$retail" users create --username bench --role admin --password-stdin >&2
"$retail" serve --listen "127.0.0.1:$port" 2> serve.log &
server=$!
for _ in $(seq 1 100); do
  if curl -fs "http://127.0.0.1:$port/health" >/dev/null; then break; fi
  sleep 0.1
done
token=$(curl -fs -X POST "http://127.0.0.1:$port/api/v1/auth/login" \
  -H 'content-type: application/json' \
  -d '{"username":"bench","password":"bench password 0123"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

echo "==> cached analytics: GET /api/v2/analytics/sales-summary?country=France, $connections connections, ${duration}s" >&2
curl -fs "http://127.0.0.1:$port/api/v2/analytics/sales-summary?country=France" -H "authorization: Bearer $token" >/dev/null
wrk -t2 -c"$connections" -d"${duration}s" --latency -H "authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/v2/analytics/sales-summary?country=France"

if [ "${BENCH_ONLY:-}" = cached ]; then exit 0; fi

echo "==> batch ingestion: POST /api/v1/ingest/transactions, $batch records a request" >&2
python3 - "$batch" > body.json <<'PY'
import json, sys
n = int(sys.argv[1])
rows = [{"InvoiceNo": str(700000 + i // 10), "StockCode": "85123A",
         "Description": "WHITE HANGING HEART T-LIGHT HOLDER", "Quantity": 1 + i % 12,
         "InvoiceDate": "2011-12-10 09:%02d:00" % (i % 60), "UnitPrice": 2.55,
         "CustomerID": str(12346 + i % 4000), "Country": "United Kingdom"} for i in range(n)]
print(json.dumps(rows))
PY
cat > post.lua <<LUA
local f = io.open("$work/body.json", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $token"
LUA
wrk -t2 -c4 -d"${duration}s" --latency -s post.lua "http://127.0.0.1:$port/api/v1/ingest/transactions"
echo "(transactions per second = requests per second x $batch)" >&2
