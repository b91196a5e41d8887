#!/usr/bin/env bash
# Build a core OpenTelemetry Collector (otlp receiver; batch, memory_limiter; debug, otlp, otlphttp
# exporters) from Debian's packaged Go sources, without Docker and without the Go module proxy.
#
#   .ci/build-otelcol.sh            # prints the binary's path on the last line of stdout
#
# Environment:
#   OTELCOL_CACHE_DIR  where the binary, .debs and build cache live (default /var/tmp/otel-tokens-otelcol)
#   OTELCOL_REBUILD=1  ignore a binary that is already built
#   DEBIAN_MIRROR      Debian mirror carrying sid (default: the machine's own Debian mirror, read from
#                      its apt sources)
#
# The machine's apt setup is never touched: apt runs with a private APT_CONFIG, sources.list, state and
# cache under the cache dir, and packages are unpacked with `dpkg -x`, never installed.
# Exit status: 0 and the path on success; non-zero with a line starting "build-otelcol: " on stderr.
set -euo pipefail

CACHE_DIR=${OTELCOL_CACHE_DIR:-/var/tmp/otel-tokens-otelcol}
BIN="$CACHE_DIR/otelcol"
# The collector's Debian package (sid) and the Go toolchain that can build it.
COLLECTOR_PKG=golang-opentelemetry-collector-dev
GO_PKG=golang-go

fail() {
    echo "build-otelcol: $*" >&2
    exit 1
}
log() { echo "build-otelcol: $*" >&2; }

if [[ -x "$BIN" && -z "${OTELCOL_REBUILD:-}" ]]; then
    log "reusing $BIN"
    echo "$BIN"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb; do
    command -v "$tool" >/dev/null || fail "needs $tool (a Debian-based machine)"
done
# shellcheck source=.ci/sid-apt.sh
source "$(dirname "$0")/sid-apt.sh"
APT_DIR="$CACHE_DIR/apt"
DEB_DIR="$CACHE_DIR/debs"
ROOT="$CACHE_DIR/root"   # the unpacked packages
mkdir -p "$DEB_DIR"
sid_apt_setup "$APT_DIR"
apt-cache show "$COLLECTOR_PKG" >/dev/null 2>&1 || fail "$MIRROR sid has no package $COLLECTOR_PKG"
COLLECTOR_VERSION=$(apt-cache show "$COLLECTOR_PKG" | sed -n 's/^Version: //p' | head -1)
log "$COLLECTOR_PKG $COLLECTOR_VERSION"

# Only Go source packages and the toolchain are needed; C libraries from the dependency closure are
# skipped because the build is CGO_ENABLED=0.
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances "$COLLECTOR_PKG" "$GO_PKG" 2>/dev/null |
    grep -E '^golang-' | sort -u >"$CACHE_DIR/packages.txt"
[[ -s "$CACHE_DIR/packages.txt" ]] || fail "could not resolve the dependencies of $COLLECTOR_PKG"
# Fetch only the .debs not already here, and drop those a newer sid has replaced.
apt-get -q download --print-uris $(cat "$CACHE_DIR/packages.txt") 2>"$APT_DIR/download.log" |
    awk '{print $2}' | sort >"$CACHE_DIR/debs.txt" ||
    fail "cannot resolve the .debs: $(tail -3 "$APT_DIR/download.log" | tr '\n' ' ')"
[[ -s "$CACHE_DIR/debs.txt" ]] || fail "cannot resolve the .debs: $(tail -3 "$APT_DIR/download.log" | tr '\n' ' ')"
for deb in "$DEB_DIR"/*.deb; do
    if [[ -e "$deb" ]] && ! grep -qxF "$(basename "$deb")" "$CACHE_DIR/debs.txt"; then
        rm -f "$deb"
    fi
done
missing=$(while read -r file; do [[ -e "$DEB_DIR/$file" ]] || echo "${file%%_*}"; done <"$CACHE_DIR/debs.txt")
if [[ -n "$missing" ]]; then
    log "downloading $(wc -w <<<"$missing") of $(wc -l <"$CACHE_DIR/debs.txt") packages"
    # shellcheck disable=SC2086 # one package name per word
    (cd "$DEB_DIR" && apt-get -q download $missing >"$APT_DIR/download.log" 2>&1) ||
        fail "downloading .debs failed: $(grep -E '^(E|Err):' "$APT_DIR/download.log" | head -3 | tr '\n' ' ')"
fi

# Unpack again only when the set of .debs changed.
STAMP=$(ls "$DEB_DIR" | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$ROOT/.stamp" 2>/dev/null)" != "$STAMP" ]]; then
    log "unpacking into $ROOT"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for deb in "$DEB_DIR"/*.deb; do
        dpkg-deb -x "$deb" "$ROOT"
    done
    # Some -dev packages link into each other with absolute paths (/usr/share/gocode/...); point those
    # inside $ROOT so nothing resolves against the host.
    find "$ROOT" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
        target=$(readlink "$link")
        ln -sfn "$ROOT$target" "$link"
    done
    echo "$STAMP" >"$ROOT/.stamp"
fi

GOROOT=$(find "$ROOT/usr/lib" -maxdepth 1 -type d -name 'go-*' | sort -V | tail -1)
[[ -x "$GOROOT/bin/go" ]] || fail "no Go toolchain found in the unpacked $GO_PKG"
export GOROOT PATH="$GOROOT/bin:$PATH"
log "$(go version)"

# GOPATH mode: the import paths resolve against Debian's /usr/share/gocode tree, no module proxy.
WORK="$CACHE_DIR/gopath"
mkdir -p "$WORK/src/otel-tokens-otelcol"
export GO111MODULE=off GOPATH="$WORK:$ROOT/usr/share/gocode" GOCACHE="$CACHE_DIR/gocache" \
    GOTOOLCHAIN=local GOPROXY=off GOFLAGS= CGO_ENABLED=0
cat >"$WORK/src/otel-tokens-otelcol/main.go" <<'EOF'
// A core-distribution OpenTelemetry Collector with only the components otel-tokens' config uses.
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// Set at link time to the Debian package version.
var version = "unknown"

func components() (otelcol.Factories, error) {
	var err error
	factories := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	if factories.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
		return otelcol.Factories{}, err
	}
	if factories.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		batchprocessor.NewFactory(),
		memorylimiterprocessor.NewFactory(),
	); err != nil {
		return otelcol.Factories{}, err
	}
	if factories.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		debugexporter.NewFactory(),
		otlpexporter.NewFactory(),
		otlphttpexporter.NewFactory(),
	); err != nil {
		return otelcol.Factories{}, err
	}
	return factories, nil
}

func main() {
	info := component.BuildInfo{
		Command:     "otelcol",
		Description: "otel-tokens test build of the OpenTelemetry Collector (Debian sources)",
		Version:     version,
	}
	settings := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatal(err)
	}
}
EOF

log "compiling (a few minutes on a small machine)"
(cd "$WORK/src/otel-tokens-otelcol" && nice -n 10 go build -trimpath -ldflags "-X main.version=$COLLECTOR_VERSION" -o "$BIN.tmp" . >"$CACHE_DIR/build.log" 2>&1) ||
    fail "go build failed, first errors: $(head -15 "$CACHE_DIR/build.log")"
mv "$BIN.tmp" "$BIN"
log "built $BIN ($("$BIN" --version 2>&1 | head -1))"
echo "$BIN"
