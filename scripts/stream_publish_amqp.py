"""Publishes the rows of CSV files as JSON messages (one sale each, the CSV header's field
names) to a new RabbitMQ stream or classic queue, with pika: a standard AMQP client, so the
consumer is checked against a wire format this project did not write. Queue messages carry a
message id (their position in the files); stream messages need none. Waits until the broker
counts every message (not with --no-wait, for a queue consumers drain meanwhile: then the
closing of the connection flushes what was sent), then prints how many were sent.

    python3 scripts/stream_publish_amqp.py [--no-wait] URL stream|queue NAME FILE.csv...
"""

import csv
import json
import sys
import time

import pika


def main():
    args = sys.argv[1:]
    wait = True
    if args and args[0] == "--no-wait":
        wait, args = False, args[1:]
    url, kind, name, files = args[0], args[1], args[2], args[3:]
    if kind not in ("stream", "queue"):
        raise SystemExit(f"kind must be stream or queue, not {kind!r}")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    arguments = {"x-queue-type": "stream"} if kind == "stream" else None
    channel.queue_declare(queue=name, durable=True, arguments=arguments)
    sent = 0
    for path in files:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                properties = pika.BasicProperties(message_id=f"row-{sent}") if kind == "queue" else None
                channel.basic_publish(exchange="", routing_key=name, body=json.dumps(row).encode(), properties=properties)
                sent += 1
    # Publishing is asynchronous: wait until the broker holds every message.
    deadline = time.monotonic() + 120
    while wait:
        held = channel.queue_declare(queue=name, passive=True).method.message_count
        if held >= sent:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the broker holds {held} of {sent} messages after 120 s")
        time.sleep(0.2)
    connection.close()
    print(sent)


if __name__ == "__main__":
    main()
