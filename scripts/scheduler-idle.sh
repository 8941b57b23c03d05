#!/usr/bin/env bash
# The scheduler's cost when idle: CPU used by an idle `retail serve` over a window, on a lake of
# generated rows, without [scheduler], with a cron schedule and a landing sensor, and with an
# asset sensor on gold as well. README, "Orchestration".
#
# usage: scripts/scheduler-idle.sh BINARY [ROWS] [SECONDS]
set -euo pipefail
binary=$(realpath "${1:?usage: scripts/scheduler-idle.sh BINARY [ROWS] [SECONDS]}")
rows=${2:-20000}
window=${3:-180}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

config() { # NAME: the [scheduler] of a variant
    case $1 in
        none) : ;;
        cheap) printf '[scheduler]\n[[scheduler.schedules]]\nname = "hourly"\ncron = "0 * * * *"\n[[scheduler.sensors]]\nname = "landing"\nkind = "landing"\npath = "%s"\n' "$work/$1/landing" ;;
        asset) config cheap | sed "s#/cheap/#/asset/#"; printf '[[scheduler.sensors]]\nname = "models-after-gold"\nkind = "asset"\nasset = "gold"\nassets = ["models"]\n' ;;
    esac
}

port=18180
for variant in none cheap asset; do
    dir=$work/$variant
    mkdir -p "$dir/landing"
    config "$variant" > "$dir/retail.toml"
    export RETAIL_CONFIG=$dir/retail.toml RETAIL__LAKE__ROOT=$dir/lake RETAIL__METADATA__PATH=$dir/retail.db \
        RETAIL__TELEMETRY__LOG_LEVEL=warn RETAIL__API__LISTEN=127.0.0.1:$((port++)) \
        RETAIL__API__JWT_SECRET=an-idle-measurement-secret-of-32-bytes-or-more
    "$binary" generate --rows "$rows" --seed 1 --out "$dir/generated" > /dev/null
    "$binary" ingest "$dir/generated" > /dev/null
    "$binary" pipeline run > /dev/null
    "$binary" serve > "$dir/serve.log" 2>&1 &
    echo "$!" > "$dir/pid"
done
sleep 10
declare -A start
for variant in none cheap asset; do
    start[$variant]=$(awk '{print $14 + $15}' "/proc/$(cat "$work/$variant/pid")/stat")
done
sleep "$window"
ticks=$(getconf CLK_TCK)
echo "CPU of an idle retail serve over $window s ($rows generated rows, $(nproc) CPUs):"
for variant in none cheap asset; do
    used=$(( $(awk '{print $14 + $15}' "/proc/$(cat "$work/$variant/pid")/stat") - ${start[$variant]} ))
    awk -v v="$variant" -v u="$used" -v t="$ticks" -v w="$window" \
        'BEGIN { printf "  %-6s %6.2f s  %5.2f %% of one core\n", v, u / t, 100 * u / t / w }'
done
