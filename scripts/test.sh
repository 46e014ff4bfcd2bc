#!/usr/bin/env bash
# Runs every test against real services started just for this run (PostgreSQL and a versitygw S3 gateway),
# and tears them down afterwards, even on failure. Usage:
#   scripts/test.sh                       go vet ./... and go test ./...
#   scripts/test.sh -run TestX ./vault/...  extra go test arguments; packages default to ./...
# Set CI=true to turn any missing component into a failure instead of skipped tests.
# cmd/vaultd runs its end-to-end tests 8 at a time (its TestMain; they mostly wait); -parallel N overrides that.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh
# shellcheck source=scripts/chromium.sh
source scripts/chromium.sh

mapfile -t pkgs < <(svc_pkg_args "$@")
args=("$@")
# No package named: everything.
[[ "${pkgs[*]}" == "./..." && "$*" != *./...* ]] && args+=(./...)

trap svc_stop EXIT
# A signal must still run the EXIT trap, and must not leave go test running against dead services.
trap '[[ -n "${go_pid:-}" ]] && kill -TERM -- "-$go_pid" 2>/dev/null; exit 130' INT TERM

# Vet what is tested: all of it by default, only the named packages when some are given.
svc_log "go vet ${pkgs[*]}"
go vet "${pkgs[@]}"

svc_start
chromium_ensure
status=0
# In the background, in its own process group, so that a signal reaches our trap at once and the trap can stop
# go test together with the test binaries it runs.
setsid --wait go test -count=1 -timeout 40m "${args[@]}" &
go_pid=$!
wait "$go_pid" || status=$?
go_pid=""
# deploy/ is a Go module of its own, so that the compose and Kubernetes libraries that validate the deployment files
# stay out of the server's go.mod; the whole suite runs it too (alone: cd deploy && go test ./...). It builds the
# static binary the Dockerfile builds and checks it.
if [[ $# -eq 0 ]]; then
  svc_log "deploy: go vet and go test"
  (cd deploy && go vet ./... && setsid --wait go test -count=1 -timeout 20m ./...) || status=$?
fi
exit "$status"
