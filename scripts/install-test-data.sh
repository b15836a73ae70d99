#!/bin/sh
# Install the Debian data packages the tests read, when they are missing and we may.
# Tests that need a package skip with a message when it cannot be installed.
set -u
missing=""
for pkg in wordnet-base; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: Debian packages$missing are missing and cannot be installed here; their tests will skip" >&2
    exit 0
fi
echo "installing Debian packages:$missing"
apt-get update -qq >/dev/null 2>&1
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null 2>&1 || echo "note: could not install$missing; their tests will skip" >&2
exit 0
