#!/usr/bin/env python3
"""Crash anywhere: kill -9 the platform at random moments and check that nothing was lost,
doubled or changed.

Three kinds of trials, each on the real Online Retail data (the 305 daily files), each in a
fresh lake and metadata file:

  ingest    `retail ingest` of every file is killed with SIGKILL at a random moment, then run
            again to completion, then `retail pipeline run`.
  pipeline  every file is ingested, `retail pipeline run` is killed at a random moment, then
            run again.
  api       `retail serve` receives every file as a CSV body (two clients at once, one
            Idempotency-Key per file) and is killed at a random moment; it is started again,
            the clients send every file again with the same keys (as a client retries), and
            `retail pipeline run` follows.

After each trial: bronze holds exactly the rows of a clean run of the same kind (nothing lost,
nothing doubled), the reconciliation balances and equals the clean run's (silver, quarantine,
duplicates), and six catalogue queries over gold (sales summary, daily revenue, the top 100
products, returns, RFM segments, cohorts) answer exactly what they answer after the clean run.
The kill moment is drawn uniformly over the clean run's duration of that step; a trial whose
process had already finished when the kill came still counts its checks, and trials go on until
`--trials` kills have hit a running process (at most three times as many trials).

Usage:
  scripts/crash-test.py [--binary target/release/retail] [--data DIR] [--trials 10]
                        [--kinds ingest,pipeline,api] [--seed 1] [--work DIR]

Needs only Python 3's standard library and a release build (`cargo build --release`).
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

QUERIES = [
    ["sales_summary"],
    ["revenue_trend", "-p", "grain=day"],
    ["top_products", "-p", "limit=100"],
    ["returns"],
    ["rfm_segments"],
    ["cohort_retention"],
]
SECRET = "a crash-test secret of at least thirty-two bytes"


class Lake:
    """A scratch lake and metadata file, and the CLI run against them."""

    def __init__(self, binary, root):
        self.binary = binary
        self.root = Path(root)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.env = dict(
            os.environ,
            RETAIL__LAKE__ROOT=str(self.root / "lake"),
            RETAIL__METADATA__PATH=str(self.root / "retail.db"),
            RETAIL__TELEMETRY__LOG_LEVEL="error",
            RETAIL__API__JWT_SECRET=SECRET,
        )
        self.env.pop("RETAIL_CONFIG", None)

    def start(self, *args):
        return subprocess.Popen(
            [self.binary, *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args):
        done = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"retail {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done.stdout

    def figures(self):
        """What a trial is judged by: the reconciliation and the catalogue's answers."""
        status = json.loads(self.run("pipeline", "status", "--json"))
        answers = [json.loads(self.run("warehouse", "query", *q, "--json")) for q in QUERIES]
        return status["reconciliation"], answers


def timed(function):
    started = time.monotonic()
    value = function()
    return value, time.monotonic() - started


def kill_after(process, seconds):
    """SIGKILL `process` after `seconds`; whether it was still running then."""
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`retail serve` on a free loopback port."""

    def __init__(self, lake):
        self.port = free_port()
        self.process = lake.start("serve", "--listen", f"127.0.0.1:{self.port}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"retail serve exited: {self.process.stderr.read()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("retail serve did not answer /health within 60 s")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def send_files(port, key, files, stop_on_error):
    """POSTs each file as CSV with an Idempotency-Key of its name, two at a time. Returns
    how many were answered 202 or 200; with `stop_on_error`, a connection error ends it."""

    def post(path):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/ingest/transactions",
            data=path.read_bytes(),
            method="POST",
            headers={
                "content-type": "text/csv",
                "x-api-key": key,
                "idempotency-key": f"crash-test-{path.name}",
            },
        )
        for attempt in range(20):
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                if error.code in (429, 503) and attempt < 19:
                    time.sleep(float(error.headers.get("retry-after", "1")))
                    continue
                raise RuntimeError(f"{path.name}: HTTP {error.code}: {error.read()[:300]!r}")
            except OSError:
                if stop_on_error:
                    return None
                raise
        raise RuntimeError(f"{path.name}: still refused after 20 attempts")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(post, files))
    bad = [s for s in statuses if s not in (200, 202, None)]
    if bad:
        raise RuntimeError(f"unexpected answers {bad}")
    return sum(1 for s in statuses if s in (200, 202))


def api_load(lake, files, kill_at=None):
    """Sends every file through the API; with `kill_at`, kills the server then, restarts it
    and sends every file again. Whether the kill hit a running load."""
    key = [w for w in lake.run("keys", "create", "--name", "crash", "--role", "data_engineer").split() if w.startswith("rk_")][0]
    server = Server(lake)
    if kill_at is None:
        send_files(server.port, key, files, stop_on_error=False)
        server.stop()
        return False
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        load = pool.submit(send_files, server.port, key, files, True)
        try:
            load.result(timeout=kill_at)
            hit = False
        except concurrent.futures.TimeoutError:
            hit = True
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        load.result()
    server = Server(lake)
    send_files(server.port, key, files, stop_on_error=False)
    server.stop()
    return hit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/retail")
    parser.add_argument("--data", default=os.environ.get("RETAIL_TEST_DATA", "../shared/data/online-retail"))
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--kinds", default="ingest,pipeline,api")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()

    binary = str(Path(args.binary).resolve())
    files = sorted((Path(args.data) / "spark-guide-by-day").glob("*.csv"))
    if not files:
        sys.exit(f"no daily files under {args.data}/spark-guide-by-day (set --data)")
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="retail-crash-"))
    paths = [str(f) for f in files]
    print(f"{len(files)} files, {args.trials} trials per kind, seed {args.seed}, binary {binary}")

    # Clean runs: the figures to match and how long each step takes.
    clean = Lake(binary, work / "clean")
    _, ingest_seconds = timed(lambda: clean.run("ingest", *paths))
    _, pipeline_seconds = timed(lambda: clean.run("pipeline", "run"))
    expected_files = clean.figures()
    clean_api = Lake(binary, work / "clean-api")
    _, api_seconds = timed(lambda: api_load(clean_api, files))
    clean_api.run("pipeline", "run")
    expected_api = clean_api.figures()
    print(
        f"clean runs: ingest {ingest_seconds:.1f} s, pipeline {pipeline_seconds:.1f} s, "
        f"API load {api_seconds:.1f} s; bronze {expected_files[0]['bronze']} rows from files, "
        f"{expected_api[0]['bronze']} through the API"
    )

    results = {}
    for kind in args.kinds.split(","):
        passed = hits = trial = 0
        while hits < args.trials and trial < 3 * args.trials:
            trial += 1
            lake = Lake(binary, work / f"{kind}-{trial}")
            if kind == "ingest":
                kill_at = rng.uniform(0, ingest_seconds)
                hit = kill_after(lake.start("ingest", *paths), kill_at)
                lake.run("ingest", *paths)
                lake.run("pipeline", "run")
                expected = expected_files
            elif kind == "pipeline":
                lake.run("ingest", *paths)
                kill_at = rng.uniform(0, pipeline_seconds)
                hit = kill_after(lake.start("pipeline", "run"), kill_at)
                lake.run("pipeline", "run")
                expected = expected_files
            elif kind == "api":
                kill_at = rng.uniform(0, api_seconds)
                hit = api_load(lake, files, kill_at)
                lake.run("pipeline", "run")
                expected = expected_api
            else:
                sys.exit(f"unknown kind {kind!r}: ingest, pipeline or api")
            reconciliation, answers = lake.figures()
            problems = []
            if reconciliation != expected[0]:
                problems.append(f"reconciliation {reconciliation} != {expected[0]}")
            balance = sum(reconciliation[k] for k in ("silver", "quarantine", "duplicates", "updates"))
            if reconciliation["bronze"] != balance + 2 * reconciliation["deletes"]:
                problems.append(f"reconciliation does not balance: {reconciliation}")
            for query, got, want in zip(QUERIES, answers, expected[1]):
                if got != want:
                    problems.append(f"{query[0]} differs from the clean run")
            ok = not problems
            passed += ok
            hits += hit
            print(
                f"{kind:<8} trial {trial:>2}: killed at {kill_at:5.2f} s "
                f"({'while running' if hit else 'after it had finished'}) -> "
                + ("ok" if ok else "FAILED: " + "; ".join(problems)),
                flush=True,
            )
            if ok:
                shutil.rmtree(lake.root)
        results[kind] = (trial, hits, passed)

    print("\n| kind | trials | killed while running | nothing lost or doubled, gold as a clean run |")
    print("|---|---|---|---|")
    for kind, (trials, hits, passed) in results.items():
        print(f"| {kind} | {trials} | {hits} | {passed} of {trials} |")
    failed = any(passed != trials or hits < args.trials for trials, hits, passed in results.values())
    if not failed:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
