#!/usr/bin/env bash
# Runs every benchmark (no tests) against the same throwaway services as scripts/test.sh. Usage:
#   scripts/bench.sh                                  all benchmarks in ./...
#   scripts/bench.sh -bench S3 -benchtime 3x ./vault/blob/   extra go test arguments (later flags win)
# The figures issue 10 asks for, each a ratio to a baseline measured in the same run:
#   scripts/bench.sh -bench Load -benchtime 1x -count 3 ./cmd/vaultd/
#       the real vaultd at 64 clients: /healthz, /me, metadata, 4 KiB and 1 MiB reads, raw GetObject of the
#       same 1 MiB ciphertext (CRVAULT_LOAD_SECONDS per row, CRVAULT_LOAD_PROFILE=dir for perf profiles,
#       CRVAULT_LOAD_CIPHERTEXT_CACHE=0 for reads that all go to the store, CRVAULT_LOAD_GOGC=n for vaultd
#       with GOGC=n and no heap floor)
#   scripts/bench.sh -bench OpenContent ./vault/         heap per audited read (B/op), SQLite and PostgreSQL
#   scripts/bench.sh -bench TransferVsRawS3 -benchtime 1x -count 10 ./cmd/vaultd/
#       256 MiB upload and download against raw minio-go, ten runs (CRVAULT_BENCH_MIB sets the size)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh

mapfile -t pkgs < <(svc_pkg_args "$@")
args=("$@")
# No package named: everything.
[[ "${pkgs[*]}" == "./..." && "$*" != *./...* ]] && args+=(./...)

trap svc_stop EXIT
# A signal must still run the EXIT trap, and must not leave go test running against dead services.
trap '[[ -n "${go_pid:-}" ]] && kill -TERM -- "-$go_pid" 2>/dev/null; exit 130' INT TERM

svc_start
status=0
# In the background, in its own process group, so that a signal reaches our trap at once and the trap can stop
# go test together with the test binaries it runs.
setsid --wait go test -count=1 -timeout 60m -run '^$' -bench . -benchmem "${args[@]}" &
go_pid=$!
wait "$go_pid" || status=$?
go_pid=""
exit "$status"
