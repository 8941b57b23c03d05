#!/usr/bin/env bash
# Checks that `cargo run -p retail-cli` (the quick start) and the test command's workspace builds
# compile every shared dependency with the same features, so the second reuses what the first
# built (ADR 0021). Prints each crate whose features differ and exits 1; silent when they agree.
set -euo pipefail
cd "$(dirname "$0")/.."
features() {
  cargo tree "$@" --prefix none -f '{p}|{f}' 2>/dev/null |
    sed -e 's/ (\*)//' -e 's/ (proc-macro)//' -e 's/ (\/[^)]*)//' | sort -u | sort -t'|' -k1,1 -u
}
cli=$(features -p retail-cli -e normal,build)
workspace=$(features --workspace -e normal,build,dev)
differ=$(join -t'|' <(printf '%s\n' "$cli") <(printf '%s\n' "$workspace") | awk -F'|' '$2 != $3')
if [ -n "$differ" ]; then
  echo "these crates are built with other features by the tests than by cargo run -p retail-cli" >&2
  echo "(crate | quick start | tests); turn the missing ones on in crates/retail-cli/Cargo.toml:" >&2
  printf '%s\n' "$differ" >&2
  exit 1
fi
