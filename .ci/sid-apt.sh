# Sourced by the .ci scripts: a private apt set-up for Debian sid, so packages can be downloaded and
# unpacked (never installed) while the machine's own apt sources, state and cache stay untouched.
#
#   sid_apt_setup DIR    writes DIR/apt.conf, exports APT_CONFIG, fetches sid's package index
#
# DEBIAN_MIRROR overrides the mirror; by default it is the machine's own Debian mirror. The caller
# defines fail() and log().

# The machine's own Debian mirror: the first apt source URI ending in /debian (deb822 or one-line form).
# Missing files and no match are normal here, so no step may fail the caller's `set -e -o pipefail`.
machine_mirror() {
    {
        grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources || true
        grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
    } | sed -E -e 's/^URIs://' -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]*)?//' | tr ' \t' '\n\n' \
      | { grep -E '^[a-z]+://.*/debian/?$' || true; } | head -n 1 | sed -E 's#/$##'
}

sid_apt_setup() {
    local apt_dir=$1
    MIRROR=${DEBIAN_MIRROR:-$(machine_mirror)}
    [[ -n "$MIRROR" ]] || fail "no Debian mirror in the machine's apt sources; set DEBIAN_MIRROR"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -r "$keyring" ]] || fail "needs $keyring (package debian-archive-keyring) to verify sid"
    mkdir -p "$apt_dir"/{etc/sources.list.d,etc/preferences.d,etc/apt.conf.d,state/lists/partial,cache/archives/partial}
    touch "$apt_dir/state/status"   # empty: apt must not assume anything from this machine is installed
    echo "deb [signed-by=$keyring] $MIRROR sid main" >"$apt_dir/etc/sources.list"
    cat >"$apt_dir/apt.conf" <<CONF
Dir::Etc::SourceList "$apt_dir/etc/sources.list";
Dir::Etc::SourceParts "$apt_dir/etc/sources.list.d";
Dir::Etc::Preferences "$apt_dir/etc/preferences";
Dir::Etc::PreferencesParts "$apt_dir/etc/preferences.d";
Dir::Etc::Parts "$apt_dir/etc/apt.conf.d";
Dir::State "$apt_dir/state";
Dir::State::status "$apt_dir/state/status";
Dir::Cache "$apt_dir/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
// Mirrors and snapshots often serve a sid Release file past its Valid-Until; signatures still apply.
Acquire::Check-Valid-Until "false";
CONF
    export APT_CONFIG="$apt_dir/apt.conf"
    log "updating the private sid package index"
    # apt-get update can exit 0 when a fetch failed, so its log is checked as well.
    if ! apt-get -q update >"$apt_dir/update.log" 2>&1 || grep -qE '^(Err:|E:|W: Failed to fetch)' "$apt_dir/update.log"; then
        fail "cannot fetch the sid package index from $MIRROR: $(grep -E '^(Err:|E:|W:)' "$apt_dir/update.log" | head -3 | tr '\n' ' ')"
    fi
}
