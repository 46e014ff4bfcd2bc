#!/usr/bin/env bash
# Starts the test services (PostgreSQL, versitygw) for interactive work and prints the exports:
#   eval "$(scripts/dev-services.sh start)"   then: go test ./...   and when done:
#   scripts/dev-services.sh stop              (uses $CRVAULT_DEV_SERVICES, which start exported)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh

case "${1:-}" in
start)
  # Partial start: tear down what did start, then fail.
  trap 'svc_stop' ERR
  svc_start >&2
  trap - ERR
  svc_state >"$SVC_DIR/state"
  printf 'export CRVAULT_DEV_SERVICES=%q\n' "$SVC_DIR/state"
  for v in VAULT_TEST_DATABASE_URL VAULT_TEST_S3_ENDPOINT VAULT_TEST_S3_ACCESS_KEY VAULT_TEST_S3_SECRET_KEY VAULT_TEST_S3_BUCKET; do
    if [[ -n "${!v:-}" ]]; then printf 'export %s=%q\n' "$v" "${!v}"; fi
  done
  ;;
stop)
  state=${2:-${CRVAULT_DEV_SERVICES:-}}
  if [[ -z "$state" || ! -f "$state" ]]; then
    svc_log "nothing to stop: pass the state file or set CRVAULT_DEV_SERVICES"
    exit 1
  fi
  # shellcheck disable=SC1090
  source "$state"
  svc_stop
  echo 'unset CRVAULT_DEV_SERVICES VAULT_TEST_DATABASE_URL VAULT_TEST_S3_ENDPOINT VAULT_TEST_S3_ACCESS_KEY VAULT_TEST_S3_SECRET_KEY VAULT_TEST_S3_BUCKET'
  ;;
*)
  echo "usage: eval \"\$($0 start)\"  |  eval \"\$($0 stop)\"" >&2
  exit 2
  ;;
esac
