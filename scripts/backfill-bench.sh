#!/usr/bin/env bash
# A backfill of every month of the data beside a full build of gold, on a scratch lake:
# README, "Partitions and backfills".
#
# usage: scripts/backfill-bench.sh BINARY DATA_DIR
#   (DATA_DIR: the real data's daily files, e.g. ../shared/data/online-retail/spark-guide-by-day)
#
# Prints the wall time of: a full build of gold alone (`pipeline run --asset gold
# --force-gold`); a backfill of every month one month per run, with the time of its gold runs
# and of its one run of the assets downstream of gold; the same backfill with every month in
# one run.
set -euo pipefail
usage="usage: scripts/backfill-bench.sh BINARY DATA_DIR"
binary=$(realpath "${1:?$usage}")
data=$(realpath "${2:?$usage}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RETAIL__LAKE__ROOT=$work/lake RETAIL__METADATA__PATH=$work/retail.db \
    RETAIL__TELEMETRY__LOG_LEVEL=warn RETAIL__LAKE__VACUUM_AFTER_RUNS=false

seconds() { # COMMAND...: runs it, prints its wall time in seconds
    local start end
    start=$(date +%s.%N)
    "$@" > "$work/out.json"
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

"$binary" ingest "$data" > /dev/null
"$binary" pipeline run > /dev/null
months=$("$binary" pipeline partitions --json | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p[0]["partition"], p[-1]["partition"], len(p))')
read -r first last count <<< "$months"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); binary: $binary"
echo "gold months: $first to $last ($count)"

full=$(seconds "$binary" pipeline run --asset gold --force-gold --json)
echo "full build of gold:                     ${full} s"

report() { # LABEL PER_RUN
    local wall
    wall=$(seconds "$binary" pipeline backfill --from "$first" --to "$last" --partitions-per-run "$2" --json)
    python3 - "$1" "$wall" "$work/out.json" "$binary" <<'PY'
import json, subprocess, sys
label, wall, path, binary = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
summary = json.load(open(path))
backfill = summary["backfill"]
assert backfill["status"] == "succeeded", backfill
runs = [json.loads(subprocess.run([binary, "pipeline", "runs", "--json", "--limit", "1000",
                                   "--requested-by", "backfill:" + backfill["run_id"]],
                                  capture_output=True, check=True).stdout)]
runs = {r["run_id"]: r for r in runs[0]}
ms = [runs[r]["duration_ms"] for r in backfill["detail"]["runs"]]
print(f"{label:<39} {wall:.2f} s wall; {len(ms) - 1} gold runs {sum(ms[:-1]) / 1000:.2f} s, "
      f"then the downstream run {ms[-1] / 1000:.2f} s")
PY
}
report "backfill, one month per run:" 1
report "backfill, every month in one run:" "$count"
