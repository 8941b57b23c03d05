"""Produces the rows of CSV files as JSON messages (one sale each, the CSV header's field
names) to a new topic, round-robin over its partitions, with confluent-kafka (librdkafka): a
standard client, so the consumer is checked against a wire format this project did not write.

    python3 scripts/stream_produce.py [--per-second N] [--batch N] BROKERS TOPIC PARTITIONS FILE.csv...

--per-second spreads the messages over time (for trials that kill a consumer while it runs).
--batch sets the most messages per produced batch (10,000 by default); a consumer's round takes
whole batches, so small batches make many small commits (the memory benchmark in the README).
"""

import csv
import json
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    args = sys.argv[1:]
    rate, batch = None, 10000
    while args and args[0] in ("--per-second", "--batch"):
        if args[0] == "--per-second":
            rate = float(args[1])
        else:
            batch = int(args[1])
        args = args[2:]
    brokers, topic, partitions, files = args[0], args[1], int(args[2]), args[3:]
    started = time.monotonic()
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20 if batch >= 10000 else 5, "batch.num.messages": batch})
    sent = 0
    for path in files:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                producer.produce(topic, json.dumps(row).encode(), partition=sent % partitions)
                sent += 1
                if sent % 10000 == 0:
                    producer.poll(0)
                if rate and sent % 1000 == 0:
                    ahead = started + sent / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
    if producer.flush(60) != 0:
        raise SystemExit("some messages were not delivered within 60 s")
    print(sent)


if __name__ == "__main__":
    main()
