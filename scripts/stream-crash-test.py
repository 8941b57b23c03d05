#!/usr/bin/env python3
"""Streams crash anywhere: kill -9 `retail stream run` at random moments while the real data is
produced, start it again each time, and check that bronze holds every message exactly once.

For each source (a Kafka topic of 3 partitions, a RabbitMQ stream, a RabbitMQ queue) in a fresh
lake: a standard client (confluent-kafka or pika, as in scripts/stream-check.sh) produces the
541,909 rows of the 305 daily files as JSON messages (Kafka at 20,000 a second, so that
production lasts about 27 s), while `retail stream run` consumes them
and is killed with SIGKILL after a random 0.2 to 3 seconds, then started again, until it has been
killed at least `--kills` times while running and the producer has finished; a last consumer
then runs until the source has been quiet for 15 seconds (a RabbitMQ stream of the whole
dataset may take seconds to deliver its first message to a new consumer), and `retail pipeline run` follows.

Checks: bronze holds as many rows as were produced, the reconciliation (bronze, silver,
quarantine, duplicates) equals that of the same files ingested as files, and six catalogue
queries over gold answer exactly what they answer after the file ingestion (the queries of
scripts/crash-test.py). A message lost and another doubled would show as a different silver
or duplicate count.

Usage:
  scripts/stream-crash-test.py [--binary target/release/retail] [--data DIR] [--kills 10]
                               [--kinds kafka,rabbitmq-stream,rabbitmq-queue] [--seed 1]

Needs RETAIL_TEST_KAFKA_BROKERS and RETAIL_TEST_AMQP_URL (scripts/services.sh start kafka
rabbitmq), and the Python clients of scripts/requirements-stream.txt (the virtual environment
scripts/stream-check.sh makes, or --python).
"""

import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("crash_test", HERE / "crash-test.py")
crash_test = importlib.util.module_from_spec(spec)
spec.loader.exec_module(crash_test)


def source_args(kind, name):
    if kind == "kafka":
        return ["--brokers", os.environ["RETAIL_TEST_KAFKA_BROKERS"], "--topic", name]
    if kind == "rabbitmq-stream":
        # The server-side offset is stored too, so its entries interleave with the messages.
        port = os.environ.get("RETAIL_TEST_RABBITMQ_STREAM_PORT", "5552")
        return ["--source", "rabbitmq", "--url", os.environ["RETAIL_TEST_AMQP_URL"],
                "--stream", name, "--stream-port", port]
    return ["--source", "rabbitmq", "--url", os.environ["RETAIL_TEST_AMQP_URL"], "--queue", name]


def producer(python, kind, name, paths):
    if kind == "kafka":
        # Spread over about 27 s, so that the kills fall while messages are produced.
        command = [python, str(HERE / "stream_produce.py"), "--per-second", "20000",
                   os.environ["RETAIL_TEST_KAFKA_BROKERS"], name, "3"]
    else:
        what = "stream" if kind == "rabbitmq-stream" else "queue"
        command = [python, str(HERE / "stream_publish_amqp.py"), "--no-wait", os.environ["RETAIL_TEST_AMQP_URL"], what, name]
    return subprocess.Popen(command + paths, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def bronze_rows(lake):
    return json.loads(lake.run("pipeline", "status", "--json"))["reconciliation"]["bronze"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/retail")
    parser.add_argument("--data", default=os.environ.get("RETAIL_TEST_DATA", "../shared/data/online-retail"))
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kinds", default="kafka,rabbitmq-stream,rabbitmq-queue")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--python",
        default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "retail-stream-venv/bin/python"),
        help="a Python with confluent-kafka and pika",
    )
    args = parser.parse_args()

    binary = str(Path(args.binary).resolve())
    files = sorted((Path(args.data) / "spark-guide-by-day").glob("*.csv"))
    if not files:
        sys.exit(f"no daily files under {args.data}/spark-guide-by-day (set --data)")
    paths = [str(f) for f in files]
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="retail-stream-crash-"))
    print(f"{len(files)} files, at least {args.kills} kills per source, seed {args.seed}, binary {binary}")

    clean = crash_test.Lake(binary, work / "files")
    clean.run("ingest", *paths)
    clean.run("pipeline", "run")
    expected = clean.figures()
    print(f"file ingestion: bronze {expected[0]['bronze']} rows")

    failed = False
    rows = []
    for kind in args.kinds.split(","):
        name = f"crash-{kind}-{int(time.time())}-{os.getpid()}"
        lake = crash_test.Lake(binary, work / kind)
        started = time.monotonic()
        production = producer(args.python, kind, name, paths)
        # The topic or queue must exist before a consumer starts.
        deadline = time.monotonic() + 60
        while True:
            probe = subprocess.run(
                [binary, "stream", "status", *source_args(kind, name)],
                env=lake.env, capture_output=True, text=True,
            )
            if probe.returncode == 0:
                break
            if production.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{kind}: the producer did not create {name}: {production.stderr.read()}")
            time.sleep(0.2)
        kills = starts = during = 0
        while kills < args.kills or production.poll() is None:
            producing = production.poll() is None
            consumer = lake.start("stream", "run", *source_args(kind, name), "--until-idle", "30")
            starts += 1
            if crash_test.kill_after(consumer, rng.uniform(0.2, 3.0)):
                kills += 1
                during += producing
            elif consumer.returncode != 0:
                sys.exit(f"{kind}: the consumer failed: {consumer.stderr.read()}")
        out, err = production.communicate()
        if production.returncode != 0:
            sys.exit(f"{kind}: the producer failed: {err}")
        sent = int(out.strip())
        lake.run("stream", "run", *source_args(kind, name), "--until-idle", "15")
        seconds = time.monotonic() - started
        lake.run("pipeline", "run")
        reconciliation, answers = lake.figures()
        problems = []
        if reconciliation["bronze"] != sent:
            problems.append(f"bronze {reconciliation['bronze']} rows, {sent} produced")
        if reconciliation != expected[0]:
            problems.append(f"reconciliation {reconciliation} != files' {expected[0]}")
        for query, got, want in zip(crash_test.QUERIES, answers, expected[1]):
            if got != want:
                problems.append(f"{query[0]} differs from the file ingestion")
        ok = not problems
        failed |= not ok
        print(
            f"{kind}: {sent} produced, {starts} consumers started, {kills} killed while running "
            f"({during} while the producer ran), "
            f"{seconds:.0f} s -> " + ("ok" if ok else "FAILED: " + "; ".join(problems)),
            flush=True,
        )
        rows.append((kind, sent, starts, kills, during, reconciliation["bronze"], ok))
        if ok:
            shutil.rmtree(lake.root)

    print("\n| source | produced | consumers started | killed while running (while producing) | bronze | as the file ingestion |")
    print("|---|---|---|---|---|---|")
    for kind, sent, starts, kills, during, bronze, ok in rows:
        print(f"| {kind} | {sent:,} | {starts} | {kills} ({during}) | {bronze:,} | {'yes' if ok else 'NO'} |")
    if not failed:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
