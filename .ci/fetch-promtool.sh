#!/usr/bin/env bash
# Unpack Prometheus 3's promtool from Debian sid (never installed), so CI validates the shipped
# prometheus.yml whole: Debian stable's promtool (Prometheus 2) rejects its otlp: block.
#
#   .ci/fetch-promtool.sh     # prints the promtool path on the last line of stdout
#
# Environment: PROMTOOL_CACHE_DIR (default /var/tmp/otel-tokens-promtool), DEBIAN_MIRROR (see sid-apt.sh).
set -euo pipefail

CACHE_DIR=${PROMTOOL_CACHE_DIR:-/var/tmp/otel-tokens-promtool}
BIN="$CACHE_DIR/root/usr/bin/promtool"
fail() { echo "fetch-promtool: $*" >&2; exit 1; }
log() { echo "fetch-promtool: $*" >&2; }

if [[ -x "$BIN" ]]; then
    log "reusing $BIN"
    echo "$BIN"
    exit 0
fi
# shellcheck source=.ci/sid-apt.sh
source "$(dirname "$0")/sid-apt.sh"
sid_apt_setup "$CACHE_DIR/apt"
mkdir -p "$CACHE_DIR/debs"
(cd "$CACHE_DIR/debs" && apt-get -q download promtool >"$CACHE_DIR/download.log" 2>&1) ||
    fail "downloading sid's promtool package failed: $(tail -3 "$CACHE_DIR/download.log" | tr '\n' ' ')"
rm -rf "$CACHE_DIR/root"
dpkg-deb -x "$CACHE_DIR"/debs/promtool_*.deb "$CACHE_DIR/root"
"$BIN" --version >&2 || fail "the unpacked promtool does not run"
echo "$BIN"
