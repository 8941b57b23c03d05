#!/usr/bin/env python3
"""Second reader and independent check of a lake built from the Online Retail daily files.

Reads the Delta tables with the Python `deltalake` package (not the platform's code) and
recomputes silver counts, money, `gold/daily_sales`, `gold/customer_rfm` and
`gold/cohort_retention` straight from the CSV files by the data contract, in plain Python with
exact decimals. Exits non-zero on the first disagreement.

    python3 scripts/verify_lake.py --lake data/lake --data ../shared/data/online-retail/spark-guide-by-day
"""
import argparse
import csv
import datetime as dt
import glob
import os
import sys
from collections import defaultdict
from decimal import Decimal

from deltalake import DeltaTable

ALIASES = {"EIRE": "Ireland", "RSA": "South Africa", "USA": "United States"}
SEGMENTS = {}
for r in range(1, 6):
    for f in range(1, 6):
        if r <= 2 and f <= 2: s = "Hibernating"
        elif r <= 2 and f <= 4: s = "At Risk"
        elif r <= 2: s = "Can't Lose Them"
        elif r == 3 and f <= 2: s = "About to Sleep"
        elif r == 3 and f == 3: s = "Need Attention"
        elif r in (3, 4) and f >= 4: s = "Loyal Customers"
        elif r == 4 and f == 1: s = "Promising"
        elif r == 5 and f == 1: s = "New Customers"
        elif r in (4, 5) and f in (2, 3): s = "Potential Loyalists"
        else: s = "Champions"
        SEGMENTS[(r, f)] = s


def fail(message):
    print(f"verify_lake: MISMATCH: {message}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def check(name, actual, expected):
    if actual != expected:
        fail(f"{name}: lake has {actual!r}, independent computation {expected!r}")
    print(f"  ok  {name}: {actual!r}" if not isinstance(actual, (list, dict)) else f"  ok  {name}")


def ntile(position, total, buckets=5):
    base, extra = divmod(total, buckets)
    big = extra * (base + 1)
    if position <= big:
        return (position - 1) // (base + 1) + 1
    return extra + (position - big - 1) // base + 1


def load_silver_independently(folder):
    seen, rows, raw = set(), [], 0
    for path in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            for record in reader:
                raw += 1
                invoice, stock, desc, qty, date, price, customer, country = record
                if Decimal(price) < 0:
                    continue
                key = tuple(record)
                if key in seen:
                    continue
                seen.add(key)
                customer = customer.strip()
                if customer.endswith(".0"):
                    customer = customer[:-2]
                rows.append({
                    "invoice": invoice.strip(),
                    "quantity": int(qty),
                    "date": dt.datetime.strptime(date, "%Y-%m-%d %H:%M:%S"),
                    "total": int(qty) * Decimal(price),
                    "customer": customer or None,
                    "country": ALIASES.get(country.strip(), country.strip()),
                })
    return raw, rows


def table(lake, name):
    return DeltaTable(os.path.join(lake, name)).to_pyarrow_table().to_pylist()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()

    raw, silver = load_silver_independently(args.data)
    print(f"independent: {raw} raw rows, {len(silver)} silver rows")
    lake_silver = DeltaTable(os.path.join(args.lake, "silver/retail_transactions"))
    arrow = lake_silver.to_pyarrow_table(columns=["total_amount"])
    check("bronze rows", DeltaTable(os.path.join(args.lake, "bronze/retail_transactions")).to_pyarrow_table(columns=["source_row"]).num_rows, raw)
    check("silver rows", arrow.num_rows, len(silver))
    check("silver total_amount", sum(arrow.column("total_amount").to_pylist()), sum(r["total"] for r in silver))

    # gold/daily_sales per date and country
    daily = defaultdict(lambda: {"gross": Decimal(0), "returns": Decimal(0), "net": Decimal(0), "orders": set(),
                                 "units": 0, "customers": set(), "lines": 0})
    for r in silver:
        d = daily[(r["date"].date(), r["country"])]
        d["net"] += r["total"]; d["lines"] += 1
        if r["quantity"] > 0:
            d["gross"] += r["total"]; d["units"] += r["quantity"]
            if not r["invoice"].upper().startswith("C"):
                d["orders"].add(r["invoice"])
        else:
            d["returns"] -= r["total"]
        if r["customer"]:
            d["customers"].add(r["customer"])
    expected_daily = {k: (v["gross"], v["returns"], v["net"], len(v["orders"]), v["units"], len(v["customers"]), v["lines"])
                      for k, v in daily.items()}
    lake_daily = {(row["date"], row["country_name"]): (row["gross_revenue"], row["returns_amount"], row["net_revenue"],
                                                       row["orders"], row["units"], row["customers"], row["lines"])
                  for row in table(args.lake, "gold/daily_sales")}
    check("gold/daily_sales", lake_daily, expected_daily)

    # gold/customer_rfm
    reference = max(r["date"] for r in silver).date() + dt.timedelta(days=1)
    last, invoices, monetary = {}, defaultdict(set), defaultdict(Decimal)
    for r in silver:
        c = r["customer"]
        if not c:
            continue
        monetary[c] += r["total"]
        if r["quantity"] > 0:
            last[c] = max(last.get(c, r["date"].date()), r["date"].date())
            if not r["invoice"].upper().startswith("C"):
                invoices[c].add(r["invoice"])
    customers = [{"id": c, "recency": (reference - d).days, "frequency": len(invoices[c]), "monetary": monetary[c]}
                 for c, d in last.items()]
    n = len(customers)
    for key, field, descending in (("r", "recency", True), ("f", "frequency", False), ("m", "monetary", False)):
        ordered = sorted(customers, key=lambda c: ((-c[field]) if descending else c[field], c["id"]))
        for position, c in enumerate(ordered, start=1):
            c[key] = ntile(position, n)
    expected_rfm = {c["id"]: (c["recency"], c["frequency"], c["monetary"], c["r"], c["f"], c["m"], SEGMENTS[(c["r"], c["f"])])
                    for c in customers}
    lake_rfm = {row["customer_id"]: (row["recency_days"], row["frequency"], row["monetary"], row["r_score"],
                                     row["f_score"], row["m_score"], row["segment"])
                for row in table(args.lake, "gold/customer_rfm")}
    check("gold/customer_rfm", lake_rfm, expected_rfm)

    # gold/cohort_retention
    month = lambda d: d.year * 12 + d.month - 1
    activity = defaultdict(set)
    for r in silver:
        if r["customer"] and r["quantity"] > 0 and not r["invoice"].upper().startswith("C"):
            activity[r["customer"]].add(month(r["date"]))
    last_month = max(month(r["date"]) for r in silver)
    cohorts = defaultdict(list)
    for c, months in activity.items():
        cohorts[min(months)].append(months)
    expected_cohorts = {}
    for cohort, members in cohorts.items():
        for offset in range(0, last_month - cohort + 1):
            active = sum(1 for months in members if cohort + offset in months)
            label = f"{cohort // 12:04d}-{cohort % 12 + 1:02d}"
            expected_cohorts[(label, offset)] = (len(members), active)
    lake_cohorts = {(row["cohort_month"], row["month_offset"]): (row["cohort_size"], row["active_customers"])
                    for row in table(args.lake, "gold/cohort_retention")}
    check("gold/cohort_retention", lake_cohorts, expected_cohorts)
    print("verify_lake: the lake agrees with the independent computation")


if __name__ == "__main__":
    main()
    # The deltalake and pyarrow native thread pools can abort the interpreter's teardown
    # ("terminate called without an active exception") after all checks passed: leave directly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
