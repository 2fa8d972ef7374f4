# packaging/testlib.sh - sourced by the packaging tests (deb-test.sh, deb-test-systemd.sh,
# container-test.sh): TAP-like result lines and counters, and installing missing Debian
# packages (apt-get update only when something is missing).
# shellcheck shell=bash

passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

apt_ensure() {
    local missing="" p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "# installing$missing"
    # shellcheck disable=SC2086  # a list of package names
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
}
