"""Produces the rows of CSV files as JSON messages (one sale each, the CSV header's field
names) to a new topic, round-robin over its partitions, with confluent-kafka (librdkafka): a
standard client, so the consumer is checked against a wire format this project did not write.

    python3 scripts/stream_produce.py BROKERS TOPIC PARTITIONS FILE.csv...
"""

import csv
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    brokers, topic, partitions, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000})
    sent = 0
    for path in files:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                producer.produce(topic, json.dumps(row).encode(), partition=sent % partitions)
                sent += 1
                if sent % 10000 == 0:
                    producer.poll(0)
    if producer.flush(60) != 0:
        raise SystemExit("some messages were not delivered within 60 s")
    print(sent)


if __name__ == "__main__":
    main()
