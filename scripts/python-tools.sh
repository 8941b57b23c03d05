#!/usr/bin/env bash
# The Python packages the test command's checks run with, pinned in scripts/requirements-*.txt:
# `verify` and `s3` into the machine's python3 (the scripts run it by that name), the others each
# in a virtual environment of its own under ~/.cache, installed when missing or when its
# requirements file changed (a stamp in the environment holds the file's sha256).
#
#   scripts/python-tools.sh install verify models s3 stream fuzz   # installs what is missing
#   scripts/python-tools.sh python stream                          # prints that set's python
#
#   verify  deltalake, pyarrow: the second reader (scripts/verify_lake.py, verify_erasure.py)
#   models  lifetimes, pandas, deltalake: the models' and rules' cross-checks
#   s3      boto3, moto, deltalake: the lake on S3 (scripts/s3-check.sh)
#   stream  confluent-kafka, pika: the stream producers (scripts/stream-check.sh)
#   fuzz    schemathesis: the API fuzzer (scripts/fuzz-api.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s\n' "$*" >&2; }

venv_of() {
  case "$1" in
    fuzz) printf '%s\n' "${RETAIL_FUZZ_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/retail-fuzz-venv}" ;;
    models|stream) printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}/retail-$1-venv" ;;
    verify|s3) printf '%s\n' "" ;;
    *) log "unknown set of Python packages: $1 (verify, models, s3, stream, fuzz)"; exit 2 ;;
  esac
}

install_set() {
  local name=$1 venv requirements stamp
  venv=$(venv_of "$name")
  requirements="scripts/requirements-$name.txt"
  if [ -z "$venv" ]; then
    # pip finds what is already there in a second or two.
    python3 -m pip install --quiet --disable-pip-version-check --no-compile -r "$requirements" >&2
    return 0
  fi
  stamp=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "installing the Python packages of $requirements into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2 2>/dev/null; then
    # Debian's python3 needs its venv package.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    python3 -m venv "$venv" >&2
  fi
  # --no-compile: Python compiles a module when it is first imported; compiling every module of
  # pandas, scipy and pyarrow up front costs CPU time the compiler needs meanwhile.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-compile -r "$requirements" >&2
  printf '%s\n' "$stamp" > "$venv/.requirements.sha256"
}

case "${1:-}" in
  install)
    shift
    for name in "$@"; do install_set "$name"; done
    ;;
  python)
    install_set "${2:?name a set: verify, models, s3, stream or fuzz}"
    venv=$(venv_of "$2")
    if [ -n "$venv" ]; then printf '%s\n' "$venv/bin/python"; else command -v python3; fi
    ;;
  *)
    log "usage: $0 install NAME... | python NAME   (NAME: verify, models, s3, stream, fuzz)"
    exit 2
    ;;
esac
