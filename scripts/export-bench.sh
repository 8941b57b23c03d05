#!/usr/bin/env bash
# Times an unfiltered CSV export of a lake built from DATA, three runs, with one binary.
#
#   scripts/export-bench.sh target/release/retail ../shared/data/online-retail/spark-guide-by-day
#
# Builds a scratch lake (ingest + pipeline run), starts `retail serve` on a loopback port with
# rate limits lifted, and times `curl` fetching GET /api/v1/sales/export?format=csv to a file.
set -euo pipefail
bin=$(realpath "$1")
data=$(realpath "$2")
port=${3:-18091}
dir=$(mktemp -d /tmp/retail-export.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
export RETAIL__LAKE__ROOT=$dir/lake RETAIL__METADATA__PATH=$dir/retail.db RETAIL__TELEMETRY__LOG_LEVEL=error
export RETAIL__API__RATE_LIMIT_PER_MINUTE=100000 RETAIL__API__RATE_LIMIT_BURST=100000
export RETAIL__API__JWT_SECRET=an-export-bench-secret-of-32-bytes-at-least
"$bin" ingest "$data" >/dev/null
"$bin" pipeline run >/dev/null 2>&1
key=$("$bin" keys create --name bench --role data_engineer | grep -o 'rk_[a-z0-9_]*')
"$bin" serve --listen "127.0.0.1:$port" > serve.log 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
for run in 1 2 3; do
  curl -s -o out.csv -w "run $run: HTTP %{http_code}, %{time_total} s, %{size_download} bytes\n" \
    -H "x-api-key: $key" "http://127.0.0.1:$port/api/v1/sales/export?format=csv"
done
echo "lines (with the header): $(wc -l < out.csv)"
