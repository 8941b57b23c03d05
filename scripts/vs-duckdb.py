#!/usr/bin/env python3
"""The platform beside DuckDB on the same files: whole processes, side by side, medians.

Each pair runs, in alternating order, (a) `retail ingest DATA` then `retail pipeline run` into a
fresh lake (silver and gold: models, recommendations and search off, as the DuckDB script has
none) and (b) `scripts/duckdb_pipeline.py`, the same contract in DuckDB writing Parquet. Wall
time and CPU time (user + system, from the processes' own accounting) are measured per process
and summed per side. The script then checks that both sides agree on bronze, silver, quarantine,
duplicates, fact rows and net revenue, and prints the medians, the ratios and the machine.

    python3 scripts/vs-duckdb.py --retail target/release/retail \
        --data ../shared/data/online-retail/spark-guide-by-day [--pairs 5] [--json]

Needs only the `duckdb` Python package (`pip install duckdb`) beside a built `retail`.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(command, env, cwd):
    """Runs `command`; returns (wall seconds, standard output)."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    out, err = process.communicate()
    wall = time.monotonic() - started
    # communicate() reaped the child: its CPU time is now in RUSAGE_CHILDREN (read as a delta).
    if process.returncode != 0:
        sys.exit(f"vs-duckdb: {' '.join(command)} failed ({process.returncode}):\n{err[-2000:]}")
    return wall, out


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def platform_run(retail, data, work):
    lake = os.path.join(work, "platform")
    shutil.rmtree(lake, ignore_errors=True)
    os.makedirs(lake)
    env = dict(os.environ)
    env.update({
        "RETAIL__LAKE__ROOT": os.path.join(lake, "lake"),
        "RETAIL__METADATA__PATH": os.path.join(lake, "retail.db"),
        "RETAIL__METADATA__URL": "",
        "RETAIL__WAREHOUSE__BACKEND": "embedded",
        "RETAIL__MODELS__ENABLED": "false",
        "RETAIL__RECOMMENDATIONS__ENABLED": "false",
        "RETAIL__SEARCH__ENABLED": "false",
        "RETAIL__OPENLINEAGE__TRANSPORT": "none",
        "RETAIL__TELEMETRY__LOG_LEVEL": "warn",
    })
    cpu_before = children_cpu()
    wall_ingest, ingest = timed([retail, "ingest", data, "--json"], env, lake)
    wall_run, run = timed([retail, "pipeline", "run", "--json"], env, lake)
    cpu = children_cpu() - cpu_before
    return wall_ingest + wall_run, cpu, json.loads(ingest), json.loads(run)


def duckdb_run(python, data, work):
    out = os.path.join(work, "duckdb")
    cpu_before = children_cpu()
    wall, counts = timed([python, os.path.join(HERE, "duckdb_pipeline.py"), "--data", data,
                          "--out", out], dict(os.environ), work)
    return wall, children_cpu() - cpu_before, json.loads(counts)


TABLES = ["fact_sales", "dim_date", "dim_country", "dim_product", "dim_customer", "daily_sales",
          "product_monthly", "customer_rfm", "cohort_retention"]


def platform_counts(ingest, run):
    rows = {a["asset"]: a.get("rows") for a in run["detail"]["assets"]}
    counts = {
        "bronze": ingest["rows_out"],
        "silver": run["rows_out"],
        "quarantine": run["quarantined"],
        "duplicates": run["duplicates"],
    }
    counts.update({table: rows.get(f"gold/{table}") for table in TABLES})
    return counts


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} × {model}, {memory:.0f} GiB, {platform.platform()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--retail", required=True, help="the retail binary (a release build)")
    parser.add_argument("--data", required=True, help="folder of daily CSV files")
    parser.add_argument("--pairs", type=int, default=5, help="pairs of runs (default 5)")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python with duckdb installed (default: this one)")
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    retail = os.path.abspath(args.retail)
    data = os.path.abspath(args.data)
    check = subprocess.run([args.python, "-c", "import duckdb; print(duckdb.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"vs-duckdb: {args.python} cannot import duckdb (pip install duckdb)")
    duckdb_version = check.stdout.strip()
    retail_version = subprocess.run([retail, "--version"], capture_output=True,
                                    text=True).stdout.strip()
    work = args.work or tempfile.mkdtemp(prefix="vs-duckdb-")
    runs = {"platform": [], "duckdb": []}
    try:
        for pair in range(args.pairs):
            order = ["platform", "duckdb"] if pair % 2 == 0 else ["duckdb", "platform"]
            for side in order:
                if side == "platform":
                    wall, cpu, ingest, run = platform_run(retail, data, work)
                    counts = platform_counts(ingest, run)
                else:
                    wall, cpu, duck = duckdb_run(args.python, data, work)
                runs[side].append({"wall": wall, "cpu": cpu})
                print(f"pair {pair + 1} {side:<8} wall {wall:6.2f} s  cpu {cpu:6.2f} s",
                      file=sys.stderr)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    disagreements = [f"{k}: platform {v}, duckdb {duck[k]}" for k, v in counts.items()
                     if v != duck[k]]
    median = {side: {m: statistics.median(r[m] for r in rs) for m in ("wall", "cpu")}
              for side, rs in runs.items()}
    result = {
        "machine": machine(),
        "retail": retail_version,
        "duckdb": duckdb_version,
        "pairs": args.pairs,
        "median": median,
        "wall_ratio": median["platform"]["wall"] / median["duckdb"]["wall"],
        "cpu_ratio": median["platform"]["cpu"] / median["duckdb"]["cpu"],
        "counts": {"platform": counts, "duckdb": duck},
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine   {result['machine']}")
        print(f"versions  {retail_version}; duckdb {duckdb_version}")
        print(f"medians of {args.pairs} pairs (whole processes):")
        for side in ("platform", "duckdb"):
            print(f"  {side:<9} wall {median[side]['wall']:6.2f} s   cpu {median[side]['cpu']:6.2f} s")
        print(f"  platform / duckdb: wall {result['wall_ratio']:.2f}×, cpu {result['cpu_ratio']:.2f}×")
        print(f"  counts: {json.dumps(counts)}")
    if disagreements:
        sys.exit("vs-duckdb: the two sides disagree: " + "; ".join(disagreements))


if __name__ == "__main__":
    main()
