#!/usr/bin/env python3
"""Makes FACTOR times the Online Retail daily files, for measurements at scale.

    scripts/scale-data.py ../shared/data/online-retail/spark-guide-by-day /tmp/retail-10x 10

Copy 0 is the data as it is. Copy k (1 <= k < FACTOR) of every row has its invoice suffixed
with `-k` (a cancellation keeps its leading `C`) and its customer id raised by k * 100000
(17850 becomes 117850, 217850, ...; an empty id stays empty), so every copy is new invoices of
new customers on the same days: nothing is a duplicate, and a customer of the real data stays
one customer. Each day's copies go to DST/<day>-<k>.csv.
"""

import csv
import pathlib
import sys


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, target, factor = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    if factor < 1:
        sys.exit("FACTOR must be at least 1")
    target.mkdir(parents=True, exist_ok=True)
    days = sorted(source.glob("*.csv"))
    if not days:
        sys.exit(f"no CSV file in {source}")
    rows = 0
    for day in days:
        with day.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            lines = list(reader)
        invoice, customer = header.index("InvoiceNo"), header.index("CustomerID")
        for copy in range(factor):
            out = target / f"{day.stem}-{copy}.csv"
            with out.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(header)
                for line in lines:
                    if copy:
                        line = list(line)
                        line[invoice] = f"{line[invoice]}-{copy}"
                        text = line[customer].strip()
                        if text:
                            line[customer] = str(int(float(text)) + copy * 100_000)
                    writer.writerow(line)
                    rows += 1
    print(f"wrote {rows} rows in {len(days) * factor} files to {target}")


if __name__ == "__main__":
    main()
