#!/usr/bin/env bash
# A stream into bronze and on to gold, against a real broker: the files' rows are produced as
# JSON messages by a standard client (confluent-kafka for a Kafka topic, pika for a RabbitMQ
# stream or queue), consumed by `retail stream run --follow` (the pipeline following bronze),
# and the gold figures must equal those of the same files ingested as files. Also checks that a
# second consumer of the same topic or stream writes nothing.
#
#   scripts/stream-check.sh RETAIL_BINARY DATA_DIR [kafka|rabbitmq-stream|rabbitmq-queue]
#       (DATA_DIR: daily CSV files; default kafka)
#
# Needs RETAIL_TEST_KAFKA_BROKERS or RETAIL_TEST_AMQP_URL (scripts/services.sh start kafka
# rabbitmq) and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$1
data=$2
kind=${3:-kafka}
case "$kind" in
  kafka) brokers=${RETAIL_TEST_KAFKA_BROKERS:?start the broker first: scripts/services.sh start kafka} ;;
  rabbitmq-stream|rabbitmq-queue) url=${RETAIL_TEST_AMQP_URL:?start the broker first: scripts/services.sh start rabbitmq} ;;
  *) echo "unknown source $kind (kafka, rabbitmq-stream, rabbitmq-queue)" >&2; exit 2 ;;
esac

python=$(scripts/python-tools.sh python stream)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
topic="sales-$(date +%s)-$$"
export RETAIL__TELEMETRY__LOG_LEVEL=warn
unset RETAIL_CONFIG

SECONDS=0
case "$kind" in
  kafka)
    sent=$("$python" scripts/stream_produce.py "$brokers" "$topic" 3 "$data"/*.csv)
    source=(--brokers "$brokers" --topic "$topic") ;;
  rabbitmq-stream)
    sent=$("$python" scripts/stream_publish_amqp.py "$url" stream "$topic" "$data"/*.csv)
    source=(--source rabbitmq --url "$url" --stream "$topic" --stream-port "${RETAIL_TEST_RABBITMQ_STREAM_PORT:-5552}") ;;
  rabbitmq-queue)
    sent=$("$python" scripts/stream_publish_amqp.py "$url" queue "$topic" "$data"/*.csv)
    source=(--source rabbitmq --url "$url" --queue "$topic") ;;
esac
echo "produced $sent messages to $kind $topic in ${SECONDS}s"

as_stream() { RETAIL__LAKE__ROOT="$work/stream/lake" RETAIL__METADATA__PATH="$work/stream/retail.db" "$binary" "$@"; }
as_files() { RETAIL__LAKE__ROOT="$work/files/lake" RETAIL__METADATA__PATH="$work/files/retail.db" "$binary" "$@"; }

SECONDS=0
# --follow: the pipeline follows bronze while consuming, and runs once more at the end, so gold
# is current when the consumer stops (no separate pipeline run below).
consumed=$(as_stream stream run "${source[@]}" --until-idle 5 --follow --json)
echo "consumed in ${SECONDS}s: $consumed"
records=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["records"])' "$consumed")
if [ "$records" != "$sent" ]; then
  echo "error: produced $sent messages, bronze got $records" >&2
  exit 1
fi
again=$(as_stream stream run "${source[@]}" --until-idle 1 --json)
if [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["records"])' "$again")" != 0 ]; then
  echo "error: a second consumer wrote records again: $again" >&2
  exit 1
fi
as_stream stream status "${source[@]}"
if [ "$kind" = kafka ]; then
  # The consumer group's offsets on the broker (for lag tools), read by a client we did not write.
  committed=$("$python" - "$brokers" "$topic" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "retail", "enable.auto.commit": False})
offsets = consumer.committed([TopicPartition(sys.argv[2], p) for p in range(3)], timeout=30)
consumer.close()
print(sum(tp.offset for tp in offsets if tp.offset >= 0))
PY
)
  if [ "$committed" != "$sent" ]; then
    echo "error: consumer group retail's offsets on the broker add up to $committed, not $sent" >&2
    exit 1
  fi
  echo "consumer group retail's offsets on the broker (read by confluent-kafka) add up to $committed"
fi
if [ "$kind" = rabbitmq-stream ]; then
  # The stream's server-side offset for the consumer name "retail": the last message taken.
  # Stream offsets need not be dense (the broker may number other entries), so it is compared
  # with bronze's position (the next offset to read), not with the count of messages.
  stored=$(as_stream stream status "${source[@]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["server_offset"])')
  position=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["positions"][sys.argv[2]])' "$consumed" "$topic")
  if [ "$stored" != "$((position - 1))" ]; then
    echo "error: the broker's offset for retail is $stored, not $((position - 1)) (bronze's position $position less one)" >&2
    exit 1
  fi
  echo "the broker's offset for retail on $topic: $stored (the last message bronze took; $sent messages)"
fi

as_files ingest "$data"/*.csv >/dev/null
as_files pipeline run >/dev/null
for query in sales_summary geography "revenue_trend --param grain=month"; do
  # shellcheck disable=SC2086
  as_stream warehouse query $query --json > "$work/stream.json"
  # shellcheck disable=SC2086
  as_files warehouse query $query --json > "$work/files.json"
  if ! cmp -s "$work/stream.json" "$work/files.json"; then
    echo "error: $query differs between the stream and the files" >&2
    diff "$work/stream.json" "$work/files.json" | head -20 >&2
    exit 1
  fi
done
echo "gold from the $kind equals gold from the files ($sent rows)"
