# packaging/testlib.sh - sourced by the packaging tests (deb-test.sh, deb-test-systemd.sh,
# container-test.sh): TAP-like result lines and counters, stages that may be skipped, and
# installing missing Debian packages (apt-get update only when something is missing).
# shellcheck shell=bash

passed=0 failed=0 skipped=0 skip_reasons=""
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# A stage that cannot run here (no systemd to boot, not root...) exits with SKIP_STATUS (77,
# automake's SKIP) after a line "SKIPPED: reason". It has checked nothing, so it never prints
# "passed". A caller counts it with skipped_stage, and its summary says so.
SKIP_STATUS=77
skipped_stage() {
    skipped=$((skipped + 1)); skip_reasons="${skip_reasons:+$skip_reasons; }$*"; echo "SKIPPED: $*"
}
# "N passed, N failed", plus ", N skipped (reasons)" when a stage was skipped.
summary() {
    if [ "$skipped" -gt 0 ]; then
        echo "$passed passed, $failed failed, $skipped skipped ($skip_reasons)"
    else
        echo "$passed passed, $failed failed"
    fi
}

# run_stage NAME COMMAND...: runs a stage script that prints ok/FAIL lines and exits 0, 1 or
# SKIP_STATUS; shows its output (but its own summary line), adds its counts to ours. A skip is
# counted as skipped with the stage's reason, or as a failure when SKIP_IS_FAILURE=1. A stage
# that fails without a FAIL line, or passes without an ok line, is a failure.
run_stage() {
    local name=$1 log rc n_ok n_fail reason
    shift
    log=$(mktemp /tmp/bce-stage.XXXXXX)
    "$@" > "$log" 2>&1; rc=$?
    grep -vE '^[0-9]+ passed, [0-9]+ failed$|^skipped: ' "$log"
    n_ok=$(grep -c '^ok ' "$log"); n_fail=$(grep -c '^FAIL ' "$log")
    passed=$((passed + n_ok)); failed=$((failed + n_fail))
    if [ "$rc" = "$SKIP_STATUS" ]; then
        reason=$(sed -n 's/^SKIPPED: //p' "$log" | head -1)
        reason="$name: ${reason:-no reason given}"
        if [ "$((n_ok + n_fail))" -gt 0 ]; then
            bad "$name: exit $SKIP_STATUS (skipped) after $((n_ok + n_fail)) checks"
        elif [ "${SKIP_IS_FAILURE:-0}" = 1 ]; then
            bad "$reason (a skip counts as a failure here)"
        else
            skipped=$((skipped + 1)); skip_reasons="${skip_reasons:+$skip_reasons; }$reason"
        fi
    elif [ "$rc" != 0 ] && [ "$n_fail" = 0 ]; then
        bad "$name: exit $rc without a FAIL line"
    elif [ "$n_ok" = 0 ] && [ "$n_fail" = 0 ]; then
        bad "$name: ran no check"
    fi
    rm -f "$log"
}

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
