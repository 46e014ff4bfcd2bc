#!/usr/bin/env bash
# Runs every benchmark (no tests) against the same throwaway services as scripts/test.sh. Usage:
#   scripts/bench.sh                                  all benchmarks in ./...
#   scripts/bench.sh -bench S3 -benchtime 3x ./vault/blob/   extra go test arguments (later flags win)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh

mapfile -t pkgs < <(svc_pkg_args "$@")
args=("$@")
# No package named: everything.
[[ "${pkgs[*]}" == "./..." && "$*" != *./...* ]] && args+=(./...)

trap svc_stop EXIT
trap 'exit 130' INT TERM

svc_start
status=0
go test -count=1 -timeout 60m -run '^$' -bench . -benchmem "${args[@]}" || status=$?
exit "$status"
