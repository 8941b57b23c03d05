#!/usr/bin/env python3
"""Cross-checks the platform's association rules against pandas, from gold's facts.

Recomputes, with the definitions of the README (Recommendations) and nothing of the platform's
code: a basket is one invoice's lines with line_type = product, quantity > 0, not a
cancellation, each stock code once; support(A => B) = baskets with A and B / all baskets;
confidence = support(A => B) / support(A); lift = confidence / support(B); rules kept when A and
B share at least --min-pair-baskets baskets. Compares them with gold/product_pairs (the same
rules, numbers within 1e-12). Exits 1 on any difference.

Run: ~/.cache/retail-models-venv/bin/python scripts/rules_crosscheck.py --lake ./lake
"""

import argparse
import sys
from itertools import combinations

import pandas as pd
from deltalake import DeltaTable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="the lake's root directory")
    parser.add_argument("--min-pair-baskets", type=int, default=20)
    args = parser.parse_args()

    facts = DeltaTable(f"{args.lake}/gold/fact_sales").to_pandas(
        columns=["invoice", "product_key", "quantity", "is_cancellation", "line_type"]
    )
    products = DeltaTable(f"{args.lake}/gold/dim_product").to_pandas(
        columns=["product_key", "stock_code"]
    )
    lines = facts[
        (facts.line_type == "product") & (facts.quantity > 0) & (~facts.is_cancellation)
    ].merge(products, on="product_key")
    baskets = lines.groupby("invoice").stock_code.apply(lambda s: sorted(set(s)))
    n = len(baskets)
    with_product = lines.drop_duplicates(["invoice", "stock_code"]).stock_code.value_counts()
    pairs: dict[tuple[str, str], int] = {}
    for basket in baskets:
        for a, b in combinations(basket, 2):
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
    expected = {}
    for (a, b), both in pairs.items():
        if both < args.min_pair_baskets:
            continue
        for x, y in ((a, b), (b, a)):
            support = both / n
            confidence = support / (with_product[x] / n)
            expected[(x, y)] = (both, support, confidence, confidence / (with_product[y] / n))

    ours = DeltaTable(f"{args.lake}/gold/product_pairs").to_pandas()
    print(f"{n} baskets; {len(expected)} rules here, {len(ours)} in gold/product_pairs")
    problems = 0
    if set(zip(ours.antecedent, ours.consequent)) != set(expected):
        print("the two sets of rules differ")
        problems += 1
    worst = 0.0
    for row in ours.itertuples():
        both, support, confidence, lift = expected.get((row.antecedent, row.consequent), (0, 0, 0, 0))
        if row.baskets != n or row.baskets_both != both:
            problems += 1
        worst = max(
            worst,
            abs(row.support - support),
            abs(row.confidence - confidence),
            abs(row.lift - lift) / max(lift, 1.0),
        )
    print(f"largest difference in support, confidence, lift: {worst:.3g}")
    if worst > 1e-12:
        problems += 1
    print("rules agree" if problems == 0 else f"{problems} problems")
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
