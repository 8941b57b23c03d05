#!/usr/bin/env bash
# End-to-end check of a lake on S3: starts a throw-away S3 endpoint (moto) on 127.0.0.1, ingests
# three days of real data in two steps through `retail`, runs the pipeline after each, and checks
# that bronze = silver + quarantine + duplicates on the S3 tables. Stops the endpoint when done.
#
# usage: scripts/s3-check.sh RETAIL_BINARY DAILY_FILES_DIR
set -euo pipefail
retail=$(realpath "$1")
days=$(realpath "$2")
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true; wait "$moto" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; then break; fi
  sleep 0.2
done
python3 - "$port" <<'PY'
import sys, boto3
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", aws_access_key_id="test",
             aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket="lake")
PY
export AWS_EC2_METADATA_DISABLED=true \
  RETAIL__LAKE__ROOT=s3://lake/retail \
  RETAIL__METADATA__PATH="$work/retail.db" \
  RETAIL__TELEMETRY__LOG_LEVEL=warn \
  RETAIL__LAKE__STORAGE_OPTIONS__AWS_ENDPOINT_URL="http://127.0.0.1:$port" \
  RETAIL__LAKE__STORAGE_OPTIONS__AWS_ACCESS_KEY_ID=test \
  RETAIL__LAKE__STORAGE_OPTIONS__AWS_SECRET_ACCESS_KEY=test \
  RETAIL__LAKE__STORAGE_OPTIONS__AWS_REGION=us-east-1 \
  RETAIL__LAKE__STORAGE_OPTIONS__AWS_ALLOW_HTTP=true \
  RETAIL__LAKE__STORAGE_OPTIONS__AWS_S3_ALLOW_UNSAFE_RENAME=true
cd "$work"
"$retail" ingest "$days/2010-12-01.csv" "$days/2010-12-02.csv" > ingest1.txt
"$retail" pipeline run > run1.txt
"$retail" ingest "$days/2010-12-03.csv" > ingest2.txt
"$retail" pipeline run > run2.txt
"$retail" pipeline status > status.txt
cat run2.txt status.txt
grep -q 'reconciliation: bronze 7419 = silver 7317 + quarantine 0 + duplicates 102 (balanced)' status.txt
grep -q '^gold:   up to date' status.txt
echo "s3 check: passed"
