#!/usr/bin/env python3
"""Cross-checks the platform's customer models against the `lifetimes` package.

Reads the summary the platform wrote (`gold/customer_clv`: frequency, recency, T,
monetary_value per customer) and the parameters it fitted (the newest `clv` row of
`gold/model_versions`), fits `lifetimes`' BetaGeoFitter and GammaGammaFitter (penalizer 0) on the
same summary, and compares parameters and per-customer predictions. Exits 1 when a parameter
differs by more than --tolerance (relative).

Setup (once): python3 -m venv ~/.cache/retail-models-venv &&
  ~/.cache/retail-models-venv/bin/pip install lifetimes==0.11.3 'pandas<2.2' 'numpy<2' scipy deltalake pyarrow
Run: ~/.cache/retail-models-venv/bin/python scripts/clv_crosscheck.py --lake ./lake
"""

import argparse
import json
import sys

import numpy as np
from deltalake import DeltaTable
from lifetimes import BetaGeoFitter, GammaGammaFitter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="the lake's root directory")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()

    summary = DeltaTable(f"{args.lake}/gold/customer_clv").to_pandas()
    registry = DeltaTable(f"{args.lake}/gold/model_versions").to_pandas()
    clv = registry[(registry.model == "clv") & (registry.status == "trained")]
    newest = clv.sort_values("version").iloc[-1]
    ours = json.loads(newest.parameters)
    discount = ours["discount_monthly"]
    print(f"model version {newest.version}, {len(summary)} customers")

    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary.frequency, summary.recency, summary.t)
    repeat = summary[(summary.frequency > 0) & (summary.monetary_value > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(repeat.frequency, repeat.monetary_value)

    failed = False
    rows = []
    for model, fitted in (("bg_nbd", bgf.params_), ("gamma_gamma", ggf.params_)):
        for name, theirs in fitted.items():
            mine = ours[model][name]
            relative = abs(mine - theirs) / abs(theirs)
            failed |= relative > args.tolerance
            rows.append((model, name, mine, theirs, relative))
    print(f"{'model':<12} {'param':<6} {'platform':>14} {'lifetimes':>14} {'rel. diff':>10}")
    for model, name, mine, theirs, relative in rows:
        print(f"{model:<12} {name:<6} {mine:>14.6f} {theirs:>14.6f} {relative:>10.2e}")

    # Predictions at lifetimes' own parameters against the platform's columns.
    alive = bgf.conditional_probability_alive(summary.frequency, summary.recency, summary.t)
    purchases = bgf.conditional_expected_number_of_purchases_up_to_time(
        90, summary.frequency, summary.recency, summary.t
    )
    value = ggf.customer_lifetime_value(
        bgf,
        summary.frequency,
        summary.recency,
        summary.t,
        summary.monetary_value.where(summary.frequency > 0, 0.0),
        time=12,
        discount_rate=discount,
        freq="D",
    )
    for name, theirs in (
        ("probability_alive", alive),
        ("expected_purchases_90d", purchases),
        ("clv_12m", value),
    ):
        difference = np.abs(summary[name].to_numpy() - np.asarray(theirs))
        scale = np.maximum(np.abs(np.asarray(theirs)), 1e-9)
        print(f"{name:<24} max relative difference over customers: {np.max(difference / scale):.2e}")
    print("FAILED" if failed else "OK: the same parameters within the tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
