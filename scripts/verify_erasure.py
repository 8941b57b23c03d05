#!/usr/bin/env python3
"""Second reader of a GDPR erasure: proves with the Python `deltalake` package (not the
platform's code) that no table of a lake still holds a customer.

For every Delta table below the lake: every text cell (lists of text too) of the latest version
is checked for the id as a whole token (not next to a letter or digit, as ADR 0013 defines);
every Parquet file on disk must be one the latest version references (no old file left for
time travel); every log file left (commits and checkpoints, read as Parquet) must not name the
id; and no version before the latest can be loaded. Exits non-zero on the first finding.

    python3 scripts/verify_erasure.py --lake data/lake --customer 17850
"""
import argparse
import glob
import json
import os
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable


def fail(message):
    print(f"verify_erasure: FOUND: {message}", file=sys.stderr)
    sys.exit(1)


def texts(column):
    """Every non-null text of a column, lists of text flattened."""
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return texts(pa.chunked_array([chunk.flatten() for chunk in column.chunks], kind.value_type))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return [v for v in column.to_pylist() if v is not None]
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--customer", required=True)
    args = parser.parse_args()
    token = re.compile(r"(?<![^\W_])" + re.escape(args.customer) + r"(?![^\W_])")
    logs = sorted(glob.glob(os.path.join(args.lake, "*", "*", "_delta_log")))
    if not logs:
        fail(f"no Delta table below {args.lake}")
    cells = 0
    for log in logs:
        root = os.path.dirname(log)
        name = os.path.relpath(root, args.lake)
        table = DeltaTable(root)
        data = table.to_pyarrow_table()
        for field in data.schema:
            for text in texts(data.column(field.name)):
                cells += 1
                if token.search(text):
                    fail(f"{name}.{field.name} holds {text!r}")
        referenced = {os.path.normpath(os.path.join(root, uri.split(root, 1)[-1].lstrip("/")))
                      for uri in table.file_uris()}
        for path in glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True):
            if "_delta_log" in path:
                continue
            if os.path.normpath(path) not in referenced:
                fail(f"{path} is on disk but not in {name}'s latest version")
        for path in sorted(glob.glob(os.path.join(log, "*"))):
            if path.endswith(".json"):
                with open(path, encoding="utf-8") as handle:
                    if token.search(handle.read()):
                        fail(f"{path} names the customer")
            elif path.endswith(".parquet"):
                if token.search(json.dumps(pq.read_table(path).to_pylist(), default=str)):
                    fail(f"{path} names the customer")
        if table.version() > 0:
            try:
                DeltaTable(root, version=table.version() - 1)
                fail(f"{name} can still be read at version {table.version() - 1}")
            except Exception:  # noqa: BLE001: any failure to load is what is wanted
                pass
    print(f"verify_erasure: {len(logs)} tables, {cells} text cells, no trace of customer {args.customer}")


if __name__ == "__main__":
    main()
