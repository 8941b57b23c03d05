#!/usr/bin/env python3
"""Stream benchmark: events per second into bronze beside a plain consumer, end-to-end latency
from produce to gold, and the consumer's peak memory.

Throughput (per source: a Kafka topic of 3 partitions, a RabbitMQ stream). The 541,909 rows of
the real data are produced first (the backlog), then in the same run:
  - a plain consumer that only reads every message and counts it (confluent-kafka with explicit
    partition assignment; pika on the stream), the broker's and client's own limit here;
  - `retail stream run --until-idle 10 --json` into a fresh lake; its rate is the records over
    the seconds it was busy (from its start to its last commit, as it reports them), and its
    peak resident memory is read from the kernel when it exits (the backlog of the whole
    dataset). Both include the broker's wait before the first message (RabbitMQ 3.10 takes 3-5 s
    to start a stream of the whole dataset for a new AMQP consumer here, pika as well).

Latency (Kafka, one partition): a producer sends one sale per invoice at a steady --rate
(default 5,000 per second) for --seconds, noting when each was sent, while `retail stream run
--follow --follow-interval-ms 500` consumes and keeps gold current. A watcher reads the
invoices of gold/fact_sales (with the Python deltalake reader) each time the table gets a new
version (polled every 50 ms); an invoice's latency is the time it was first seen in gold minus
the time it was sent. Prints p50, p99 and the largest.

Usage:
  scripts/stream-bench.py [--binary target/release/retail] [--data DIR] [--parts throughput,latency]
                          [--rate 5000] [--seconds 30]

Needs RETAIL_TEST_KAFKA_BROKERS and RETAIL_TEST_AMQP_URL (scripts/services.sh start kafka
rabbitmq), and a Python with confluent-kafka, pika and deltalake (--python; scripts/stream-check.sh
makes one with the first two, and this script adds deltalake to it when missing).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def lake_env(root):
    env = dict(
        os.environ,
        RETAIL__LAKE__ROOT=str(root / "lake"),
        RETAIL__METADATA__PATH=str(root / "retail.db"),
        RETAIL__TELEMETRY__LOG_LEVEL="error",
    )
    env.pop("RETAIL_CONFIG", None)
    return env


def run_measured(command, env):
    """Runs `command`; its stdout, wall seconds and peak resident memory in MiB."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed: {err}")
    return out, time.monotonic() - started, usage.ru_maxrss / 1024


PLAIN_KAFKA = r"""
import sys, time
from confluent_kafka import Consumer, TopicPartition
brokers, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = Consumer({"bootstrap.servers": brokers, "group.id": "plain", "enable.auto.commit": False,
                     "fetch.max.bytes": 16 << 20})
partitions = consumer.list_topics(topic).topics[topic].partitions
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
count = 0
started = time.monotonic()
while count < expected:
    for message in consumer.consume(10000, 1.0):
        if message.error() is None:
            count += 1
print(count, time.monotonic() - started)
"""

PLAIN_RABBIT = r"""
import sys, time, pika
url, stream, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.basic_qos(prefetch_count=10000)
count = 0
started = time.monotonic()
for method, properties, body in channel.consume(stream, arguments={"x-stream-offset": "first"}):
    count += 1
    if count % 1000 == 0 or count == expected:
        channel.basic_ack(method.delivery_tag, multiple=True)
    if count >= expected:
        break
print(count, time.monotonic() - started)
connection.close()
"""


def throughput(args, work, paths):
    rows = []
    for kind in ("kafka", "rabbitmq-stream"):
        name = f"bench-{kind}-{int(time.time())}"
        if kind == "kafka":
            brokers = os.environ["RETAIL_TEST_KAFKA_BROKERS"]
            produce = [args.python, str(HERE / "stream_produce.py"), brokers, name, "3", *paths]
            plain = [args.python, "-c", PLAIN_KAFKA, brokers, name]
            source = ["--brokers", brokers, "--topic", name]
        else:
            url = os.environ["RETAIL_TEST_AMQP_URL"]
            produce = [args.python, str(HERE / "stream_publish_amqp.py"), url, "stream", name, *paths]
            plain = [args.python, "-c", PLAIN_RABBIT, url, name]
            source = ["--source", "rabbitmq", "--url", url, "--stream", name]
        sent = int(subprocess.run(produce, check=True, capture_output=True, text=True).stdout.strip())
        plain_out = subprocess.run(plain + [str(sent)], check=True, capture_output=True, text=True).stdout.split()
        plain_count, plain_seconds = int(plain_out[0]), float(plain_out[1])
        root = work / kind
        out, wall, peak = run_measured(
            [args.binary, "stream", "run", *source, "--until-idle", "10", "--json"], lake_env(root)
        )
        consumed = json.loads(out)
        if consumed["records"] != sent or plain_count != sent:
            sys.exit(f"{kind}: produced {sent}, plain read {plain_count}, bronze got {consumed['records']}")
        busy = consumed["busy_seconds"]
        rows.append((kind, sent, sent / plain_seconds, consumed["records"] / busy, busy, wall, peak, consumed["commits"]))
        print(
            f"{kind}: {sent} messages; plain consumer {sent / plain_seconds:,.0f}/s; into bronze "
            f"{consumed['records'] / busy:,.0f}/s ({busy:.1f} s busy, {consumed['commits']} commits, "
            f"{wall:.1f} s with start-up and 10 s idle); peak RSS {peak:.0f} MiB",
            flush=True,
        )
        shutil.rmtree(root, ignore_errors=True)
    print("\n| source | messages | plain consumer (msg/s) | into bronze (msg/s) | ratio | peak RSS |")
    print("|---|---|---|---|---|---|")
    for kind, sent, plain_rate, rate, busy, wall, peak, commits in rows:
        print(f"| {kind} | {sent:,} | {plain_rate:,.0f} | {rate:,.0f} | {rate / plain_rate:.0%} | {peak:.0f} MiB |")


def latency(args, work):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from deltalake import DeltaTable

    brokers = os.environ["RETAIL_TEST_KAFKA_BROKERS"]
    topic = f"latency-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result()
    root = work / "latency"
    consumer = subprocess.Popen(
        [args.binary, "stream", "run", "--brokers", brokers, "--topic", topic, "--until-idle", "5",
         "--follow", "--follow-interval-ms", "500", "--max-wait-ms", "100", "--json"],
        env=lake_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    total = args.rate * args.seconds
    sent_at = {}
    seen_at = {}
    done = threading.Event()

    def watch():
        path = root / "lake" / "gold" / "fact_sales"
        table, version = None, -1
        while not (done.is_set() and len(seen_at) >= total):
            time.sleep(0.05)
            try:
                if table is None:
                    table = DeltaTable(str(path))
                else:
                    table.update_incremental()
            except Exception:
                continue
            if table.version() == version:
                continue
            version = table.version()
            now = time.time()
            invoices = table.to_pyarrow_table(columns=["invoice"]).column("invoice").to_pylist()
            for invoice in invoices:
                if invoice not in seen_at:
                    seen_at[invoice] = now
            if done.is_set() and time.time() > finished + 60:
                break

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    started = time.monotonic()
    for n in range(total):
        due = started + n / args.rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        invoice = str(700000 + n)
        message = {
            "InvoiceNo": invoice, "StockCode": "85123A", "Description": "WHITE HANGING HEART T-LIGHT HOLDER",
            "Quantity": "2", "InvoiceDate": "2011-12-09 12:00:00", "UnitPrice": "2.55",
            "CustomerID": str(12346 + n % 4000), "Country": "United Kingdom",
        }
        producer.produce(topic, json.dumps(message).encode(), partition=0)
        sent_at[invoice] = time.time()
        producer.poll(0)
    producer.flush(30)
    finished = time.time()
    achieved = total / (time.monotonic() - started)
    done.set()
    watcher.join(timeout=120)
    consumer.wait(timeout=300)
    latencies = sorted(seen_at[i] - sent_at[i] for i in sent_at if i in seen_at)
    if len(latencies) != total:
        sys.exit(f"only {len(latencies)} of {total} invoices reached gold: {consumer.stderr.read()[-2000:]}")

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    print(
        f"latency at {achieved:,.0f} events/s for {args.seconds} s ({total:,} events, one partition, "
        f"--follow-interval-ms 500): p50 {percentile(50):.2f} s, p99 {percentile(99):.2f} s, "
        f"max {latencies[-1]:.2f} s"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/retail")
    parser.add_argument("--data", default=os.environ.get("RETAIL_TEST_DATA", "../shared/data/online-retail"))
    parser.add_argument("--parts", default="throughput,latency")
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument(
        "--python",
        default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "retail-stream-venv/bin/python"),
        help="a Python with confluent-kafka and pika",
    )
    args = parser.parse_args()
    args.binary = str(Path(args.binary).resolve())
    files = sorted((Path(args.data) / "spark-guide-by-day").glob("*.csv"))
    if not files:
        sys.exit(f"no daily files under {args.data}/spark-guide-by-day (set --data)")
    work = Path(tempfile.mkdtemp(prefix="retail-stream-bench-"))
    try:
        parts = args.parts.split(",")
        if "throughput" in parts:
            throughput(args, work, [str(f) for f in files])
        if "latency" in parts:
            if subprocess.run([args.python, "-c", "import deltalake"], capture_output=True).returncode != 0:
                subprocess.run([args.python, "-m", "pip", "install", "--quiet", "-r", str(HERE / "requirements-verify.txt")], check=True)
            if sys.executable != args.python and os.environ.get("RETAIL_BENCH_CHILD") is None:
                # The latency part imports the clients: run it in the Python that has them.
                env = dict(os.environ, RETAIL_BENCH_CHILD="1")
                subprocess.run([args.python, __file__, "--binary", args.binary, "--data", args.data,
                                "--parts", "latency", "--rate", str(args.rate), "--seconds", str(args.seconds),
                                "--python", args.python], check=True, env=env)
            else:
                latency(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
