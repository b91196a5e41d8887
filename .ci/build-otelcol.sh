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
# The machine's own Debian mirror: the first apt source URI ending in /debian (deb822 or one-line form).
machine_mirror() {
    {
        grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}'
        grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
    } | grep -E '/debian/?$' | head -n 1 | sed -E 's#/$##'
}
MIRROR=${DEBIAN_MIRROR:-$(machine_mirror)}
[[ -n "$MIRROR" ]] || { echo "build-otelcol: no Debian mirror in the machine's apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
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
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r "$KEYRING" ]] || fail "needs $KEYRING (package debian-archive-keyring) to verify sid"

APT_DIR="$CACHE_DIR/apt"
DEB_DIR="$CACHE_DIR/debs"
ROOT="$CACHE_DIR/root"   # the unpacked packages
mkdir -p "$APT_DIR"/{etc/sources.list.d,etc/preferences.d,etc/apt.conf.d,state/lists/partial,cache/archives/partial} \
    "$DEB_DIR"
touch "$APT_DIR/state/status"   # empty: apt must not assume anything from this machine is installed
echo "deb [signed-by=$KEYRING] $MIRROR sid main" >"$APT_DIR/etc/sources.list"
cat >"$APT_DIR/apt.conf" <<EOF
Dir::Etc::SourceList "$APT_DIR/etc/sources.list";
Dir::Etc::SourceParts "$APT_DIR/etc/sources.list.d";
Dir::Etc::Preferences "$APT_DIR/etc/preferences";
Dir::Etc::PreferencesParts "$APT_DIR/etc/preferences.d";
Dir::Etc::Parts "$APT_DIR/etc/apt.conf.d";
Dir::State "$APT_DIR/state";
Dir::State::status "$APT_DIR/state/status";
Dir::Cache "$APT_DIR/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
// Mirrors and snapshots often serve a sid Release file past its Valid-Until; signatures still apply.
Acquire::Check-Valid-Until "false";
EOF
export APT_CONFIG="$APT_DIR/apt.conf"

log "updating the private sid package index"
# apt-get update can exit 0 when a fetch failed, so its log is checked as well.
if ! apt-get -q update >"$APT_DIR/update.log" 2>&1 || grep -qE '^(Err:|E:|W: Failed to fetch)' "$APT_DIR/update.log"; then
    fail "cannot fetch the sid package index from $MIRROR: $(grep -E '^(Err:|E:|W:)' "$APT_DIR/update.log" | head -3 | tr '\n' ' ')"
fi
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
