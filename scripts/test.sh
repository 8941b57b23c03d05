#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (on the real Online Retail
# data when ../shared/data/online-retail is beside the checkout), doctests, and an independent
# second reader (Python deltalake) of the tables a demo run produces.
#
# It installs what it needs from the package registries when missing (cargo-nextest, the Python
# packages of the second reader and of a throw-away S3 endpoint, moto) and starts that endpoint
# on 127.0.0.1 for the S3 check, stopping it afterwards.
# Set CARGO_TARGET_DIR to reuse a build cache outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

data="${RETAIL_TEST_DATA:-$root/../shared/data/online-retail}"
if [ -d "$data/spark-guide-by-day" ]; then
  export RETAIL_TEST_DATA="$data" RETAIL_REQUIRE_TEST_DATA=1
  echo "real data: $RETAIL_TEST_DATA"
else
  echo "real data not found at $data: tests that need it will say so and skip"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (the retail binary used by the checks below)"
cargo build --workspace --bins

step "cargo nextest run"
cargo nextest run --workspace --profile ci

step "doctests"
cargo test --workspace --doc

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

step "second reader: Python deltalake over a demo lake"
if [ -n "${RETAIL_TEST_DATA:-}" ]; then
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-verify.txt
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  target_dir="${CARGO_TARGET_DIR:-$root/target}"
  (cd "$work" && RETAIL__TELEMETRY__LOG_LEVEL=warn "$target_dir/debug/retail" demo --data "$RETAIL_TEST_DATA/spark-guide-by-day" > demo.txt)
  python3 scripts/verify_lake.py --lake "$work/data/lake" --data "$RETAIL_TEST_DATA/spark-guide-by-day"
else
  echo "skipped: needs the real data"
fi

step "lake on S3 (a throw-away moto endpoint on 127.0.0.1)"
if [ -n "${RETAIL_TEST_DATA:-}" ]; then
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-s3.txt
  scripts/s3-check.sh "${CARGO_TARGET_DIR:-$root/target}/debug/retail" "$RETAIL_TEST_DATA/spark-guide-by-day"
else
  echo "skipped: needs the real data"
fi

step "done"
