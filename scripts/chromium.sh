# shellcheck shell=bash
# scripts/chromium.sh is sourced by test.sh. chromium_ensure installs Debian's chromium (and CJK fonts, so the
# Chinese screenshots are legible) when missing, for the browser tests in cmd/vaultd/web_test.go. With CI=true a
# Chromium that cannot be installed is fatal: the browser tests must fail, never skip.
chromium_ensure() {
  if command -v chromium >/dev/null; then return 0; fi
  svc_log "installing Debian's chromium for the browser tests"
  svc_apt_install chromium fonts-noto-cjk || svc_apt_install chromium || true
  command -v chromium >/dev/null || svc_unavailable "Chromium could not be installed (needed by the browser tests)"
}
