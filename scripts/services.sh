# shellcheck shell=bash
# scripts/services.sh is sourced by test.sh, bench.sh and dev-services.sh. It installs (if missing), starts and
# stops the throwaway services the tests need: a PostgreSQL cluster and a versitygw S3 gateway, each in its own
# temp dir, listening on 127.0.0.1 only, on a free port. It never touches the machine's own services.
#
# After svc_start these are exported (unset when a component is unavailable outside CI):
#   VAULT_TEST_DATABASE_URL, VAULT_TEST_S3_ENDPOINT, VAULT_TEST_S3_ACCESS_KEY, VAULT_TEST_S3_SECRET_KEY,
#   VAULT_TEST_S3_BUCKET
# With CI=true any failure to install or start a component is fatal: CI must never silently skip tests.

VERSITYGW_VERSION=v1.8.0
# postgres refuses to run as root, so root runs the cluster as this system user.
SVC_PG_USER=crvault-pg
SVC_BUCKET=crvault-test

svc_log() { printf '[services] %s\n' "$*" >&2; }

# svc_unavailable reports a component that could not be provided: fatal under CI, a warning otherwise.
svc_unavailable() {
  if [[ "${CI:-}" == "true" ]]; then
    svc_log "FATAL (CI=true): $*"
    exit 1
  fi
  svc_log "WARNING: $*; tests that need it will be skipped"
}

svc_as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

svc_apt_install() {
  svc_log "installing $* with apt-get"
  if ! svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
    svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
      svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
  fi
}

# svc_pg_bindir prints the newest PostgreSQL server bin directory that has initdb.
svc_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$d/initdb" ]]; then echo "$d"; return 0; fi
  done
  return 1
}

svc_gobin() { echo "$(go env GOPATH | cut -d: -f1)/bin"; }

svc_install() {
  if ! command -v go >/dev/null; then
    svc_log "FATAL: go is not on PATH (install Go $(sed -n 's/^go //p' go.mod) first)"
    exit 1
  fi
  if ! svc_pg_bindir >/dev/null; then
    svc_apt_install postgresql || true
    svc_pg_bindir >/dev/null || svc_unavailable "PostgreSQL server (initdb) could not be installed"
  fi
  if ! command -v curl >/dev/null; then
    svc_apt_install curl || true
    command -v curl >/dev/null || svc_unavailable "curl could not be installed (needed to create the S3 bucket)"
  fi
  local bin have
  bin="$(svc_gobin)/versitygw"
  have=""
  if [[ -x "$bin" ]]; then
    have=$(go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" { print $3 }')
  fi
  if [[ "$have" != "$VERSITYGW_VERSION" ]]; then
    svc_log "installing versitygw $VERSITYGW_VERSION into $(svc_gobin) (takes a minute the first time)"
    # Outside the repo so our go.mod plays no part; GOBIN pins the destination.
    (cd / && GOBIN="$(svc_gobin)" GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION") >&2 ||
      svc_unavailable "go install versitygw@$VERSITYGW_VERSION failed"
  fi
}

# svc_free_port prints a loopback TCP port nobody listens on. It is below Linux's ephemeral range so outgoing
# connections do not grab it meanwhile; callers retry on the small remaining race.
svc_free_port() {
  local p _
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

svc_random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# svc_pg_run runs a PostgreSQL command as an unprivileged user.
svc_pg_run() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u "$SVC_PG_USER" -- "$@"; else "$@"; fi
}

svc_start_postgres() {
  local bindir port attempt
  bindir=$(svc_pg_bindir) || { svc_unavailable "PostgreSQL server not installed"; return 0; }
  SVC_PG_DIR="$SVC_DIR/pg"
  mkdir -p "$SVC_PG_DIR"
  if [[ $(id -u) -eq 0 ]]; then
    if ! id "$SVC_PG_USER" >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin "$SVC_PG_USER" ||
        { svc_unavailable "cannot create system user $SVC_PG_USER for PostgreSQL"; return 0; }
    fi
    chmod 0711 "$SVC_DIR"
    chown "$SVC_PG_USER" "$SVC_PG_DIR"
  fi
  chmod 0700 "$SVC_PG_DIR"
  # Throwaway cluster: trust auth (it listens on loopback only, and lives for one run). --no-sync only skips
  # initdb's own flush of the files it creates; the server itself runs with PostgreSQL's durable defaults
  # (fsync, synchronous_commit and full_page_writes on), which the tests and benchmarks must be measured on.
  if ! svc_pg_run "$bindir/initdb" -D "$SVC_PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
    >"$SVC_PG_DIR/initdb.log" 2>&1; then
    cat "$SVC_PG_DIR/initdb.log" >&2
    svc_unavailable "initdb failed"
    return 0
  fi
  for attempt in 1 2 3 4 5; do
    port=$(svc_free_port) || break
    if svc_pg_run "$bindir/pg_ctl" -D "$SVC_PG_DIR/data" -l "$SVC_PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $SVC_PG_DIR -c max_connections=300" \
      start >/dev/null 2>&1; then
      SVC_PG_BINDIR="$bindir"
      break
    fi
    svc_log "PostgreSQL did not start on port $port (attempt $attempt)"
  done
  if [[ -z "${SVC_PG_BINDIR:-}" ]]; then
    tail -n 20 "$SVC_PG_DIR/server.log" >&2 2>/dev/null || true
    svc_unavailable "PostgreSQL did not start"
    return 0
  fi
  for _ in $(seq 1 60); do
    if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
      export VAULT_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      svc_log "PostgreSQL ready on 127.0.0.1:$port"
      return 0
    fi
    sleep 0.5
  done
  svc_unavailable "PostgreSQL started but never became ready"
}

# svc_s3 sends one signed S3 request with curl and prints the HTTP status.
svc_s3() {
  local method=$1 path=$2 body=${3:-}
  curl -sS -o "$SVC_S3_DIR/last-response" -w '%{http_code}' --max-time 10 \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$VAULT_TEST_S3_ACCESS_KEY:$VAULT_TEST_S3_SECRET_KEY" \
    -H "x-amz-content-sha256: $(printf '%s' "$body" | sha256sum | cut -d' ' -f1)" \
    -X "$method" --data-binary "$body" "http://$VAULT_TEST_S3_ENDPOINT/$path" 2>/dev/null || true
}

# svc_try_versitygw starts the gateway with the given extra posix flags and checks that it can create the
# bucket and store an object (which needs xattrs unless --sidecar is given). Returns non-zero on failure.
svc_try_versitygw() {
  local port _ code
  port=$(svc_free_port) || return 1
  export VAULT_TEST_S3_ENDPOINT="127.0.0.1:$port"
  # nohup: dev-services.sh leaves it running after the starting shell is gone.
  nohup "$(svc_gobin)/versitygw" --port "127.0.0.1:$port" --health /health --quiet \
    --access "$VAULT_TEST_S3_ACCESS_KEY" --secret "$VAULT_TEST_S3_SECRET_KEY" \
    posix "$@" "$SVC_S3_DIR/root" </dev/null >>"$SVC_S3_DIR/versitygw.log" 2>&1 &
  SVC_VGW_PID=$!
  for _ in $(seq 1 50); do
    kill -0 "$SVC_VGW_PID" 2>/dev/null || break
    if curl -fsS --max-time 2 -o /dev/null "http://$VAULT_TEST_S3_ENDPOINT/health" 2>/dev/null; then
      code=$(svc_s3 PUT "$VAULT_TEST_S3_BUCKET")
      if [[ "$code" != 200 && "$code" != 409 ]]; then
        svc_log "versitygw: create bucket answered $code: $(head -c 300 "$SVC_S3_DIR/last-response")"
        break
      fi
      code=$(svc_s3 PUT "$VAULT_TEST_S3_BUCKET/probe" probe)
      if [[ "$code" != 200 ]]; then
        svc_log "versitygw: probe object answered $code: $(head -c 300 "$SVC_S3_DIR/last-response")"
        break
      fi
      svc_s3 DELETE "$VAULT_TEST_S3_BUCKET/probe" >/dev/null
      return 0
    fi
    sleep 0.2
  done
  kill "$SVC_VGW_PID" 2>/dev/null && wait "$SVC_VGW_PID" 2>/dev/null
  SVC_VGW_PID=""
  rm -rf "${SVC_S3_DIR:?}/root" "${SVC_S3_DIR:?}/meta"
  return 1
}

svc_start_s3() {
  local bin
  bin="$(svc_gobin)/versitygw"
  [[ -x "$bin" ]] || { svc_unavailable "versitygw not installed"; return 0; }
  SVC_S3_DIR="$SVC_DIR/s3"
  export VAULT_TEST_S3_ACCESS_KEY="test$(svc_random_hex 8)"
  export VAULT_TEST_S3_SECRET_KEY="$(svc_random_hex 20)"
  export VAULT_TEST_S3_BUCKET="$SVC_BUCKET"
  local attempt
  for attempt in 1 2 3; do
    mkdir -p "$SVC_S3_DIR/root"
    # Metadata in xattrs is versitygw's normal mode; filesystems without user xattrs (older tmpfs, some
    # overlays) fail the probe, and then a sidecar directory holds the metadata instead.
    if svc_try_versitygw; then break; fi
    mkdir -p "$SVC_S3_DIR/root" "$SVC_S3_DIR/meta"
    svc_log "versitygw with xattr metadata failed (attempt $attempt); trying --sidecar"
    if svc_try_versitygw --sidecar "$SVC_S3_DIR/meta"; then break; fi
  done
  if [[ -z "${SVC_VGW_PID:-}" ]]; then
    tail -n 20 "$SVC_S3_DIR/versitygw.log" >&2 2>/dev/null || true
    unset VAULT_TEST_S3_ENDPOINT VAULT_TEST_S3_ACCESS_KEY VAULT_TEST_S3_SECRET_KEY VAULT_TEST_S3_BUCKET
    svc_unavailable "versitygw did not start"
    return 0
  fi
  svc_log "versitygw ready on $VAULT_TEST_S3_ENDPOINT, bucket $VAULT_TEST_S3_BUCKET"
}

# svc_start installs what is missing and starts both services under a fresh temp dir.
svc_start() {
  svc_install
  local base=${TMPDIR:-/tmp}
  # root hands part of the dir to the postgres user, which must be able to reach it.
  [[ $(id -u) -eq 0 ]] && base=/tmp
  SVC_DIR=$(mktemp -d "$base/crvault-services.XXXXXX")
  svc_start_postgres
  svc_start_s3
}

# svc_stop tears everything down; safe to call more than once and after a partial start.
svc_stop() {
  if [[ -n "${SVC_VGW_PID:-}" ]]; then
    kill "$SVC_VGW_PID" 2>/dev/null || true
    # Not our child when called from "dev-services.sh stop": poll instead of wait.
    for _ in $(seq 1 50); do kill -0 "$SVC_VGW_PID" 2>/dev/null || break; sleep 0.1; done
    SVC_VGW_PID=""
  fi
  if [[ -n "${SVC_PG_BINDIR:-}" && -d "${SVC_PG_DIR:-}/data" ]]; then
    svc_pg_run "$SVC_PG_BINDIR/pg_ctl" -D "$SVC_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    SVC_PG_BINDIR=""
  fi
  if [[ -n "${SVC_DIR:-}" && -d "$SVC_DIR" ]]; then
    rm -rf "$SVC_DIR"
  fi
  SVC_DIR=""
}

# svc_state prints shell assignments that let a later "dev-services.sh stop" find what svc_start started.
svc_state() {
  printf 'SVC_DIR=%q\nSVC_PG_DIR=%q\nSVC_PG_BINDIR=%q\nSVC_VGW_PID=%q\n' \
    "${SVC_DIR:-}" "${SVC_PG_DIR:-}" "${SVC_PG_BINDIR:-}" "${SVC_VGW_PID:-}"
}

# svc_pkg_args prints, one per line, the go test arguments that name packages (".", "./x", "../x", "all",
# module paths), skipping flag values such as the "." of "-bench ." or the "A/B" of "-run A/B".
# Prints ./... when there are none.
svc_pkg_args() {
  local a found="" skip=""
  for a in "$@"; do
    if [[ -n "$skip" ]]; then skip=""; continue; fi
    case "$a" in
      -*=* | -v | -race | -short | -failfast | -benchmem | -json | -cover | -x | -n | -a | -msan | -asan | -trimpath | -work | -fullpath) ;;
      -*) skip=1 ;; # a flag whose value is the next argument
      . | ./* | ../* | all | github.com/*) echo "$a"; found=1 ;;
    esac
  done
  [[ -n "$found" ]] || echo ./...
}
