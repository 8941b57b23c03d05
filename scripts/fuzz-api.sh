#!/usr/bin/env bash
# The API against its own OpenAPI document: schemathesis (pinned in requirements-fuzz.txt)
# generates requests from /openapi.json (valid ones, and invalid ones the document forbids),
# sends them to `retail serve` over a scratch lake of generated data, and checks every answer
# with all its checks: no 5xx, every status documented, every body matching its schema, every
# request the document calls valid accepted and every one it calls invalid refused.
#
#   scripts/fuzz-api.sh [path/to/retail] [extra schemathesis options]
#
# Needs python3 (with venv). The seed is fixed so a failure can be replayed; set
# RETAIL_FUZZ_SEED to explore others and RETAIL_FUZZ_EXAMPLES (default 25) for depth.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
binary="${1:-${CARGO_TARGET_DIR:-$root/target}/debug/retail}"
shift || true
examples="${RETAIL_FUZZ_EXAMPLES:-25}"
seed="${RETAIL_FUZZ_SEED:-1}"

schemathesis="$(dirname "$(scripts/python-tools.sh python fuzz)")/schemathesis"

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export RETAIL__LAKE__ROOT="$work/lake" RETAIL__METADATA__PATH="$work/retail.db"
export RETAIL__TELEMETRY__LOG_LEVEL=error
export RETAIL__API__JWT_SECRET="fuzz-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# The fuzzer sends thousands of requests: a limit it hits would hide the answers under test.
export RETAIL__API__RATE_LIMIT_PER_MINUTE=1000000 RETAIL__API__RATE_LIMIT_BURST=1000000
unset RETAIL_CONFIG

"$binary" generate --rows 3000 --days 20 --out "$work/files" >/dev/null
"$binary" ingest "$work"/files/*.csv >/dev/null
"$binary" pipeline run >/dev/null
key=$("$binary" keys create --name fuzz --role admin | grep -o 'rk_[A-Za-z0-9_-]*' | head -n 1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.2
done

"$schemathesis" --config-file scripts/schemathesis.toml \
  run "http://127.0.0.1:$port/openapi.json" \
  --checks all --max-examples "$examples" --seed "$seed" \
  --header "X-API-Key: $key" --no-color "$@"
