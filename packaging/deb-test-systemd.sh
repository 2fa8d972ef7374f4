#!/bin/bash
# packaging/deb-test-systemd.sh PACKAGE.deb - the package under a real systemd, with the unit's
# whole sandbox on. Called by deb-test.sh; prints "ok - ..." / "FAIL - ..." lines.
#
# Where systemd is not PID 1 (containers, this sandbox), a Debian bookworm made with
# debootstrap (minbase + systemd) is booted with systemd-nspawn (--ephemeral: every run starts
# from the same pristine tree, cached in build/deb-test/). The container shares the host's
# network, so the exporter inside reaches the fake AWS on the host's 127.0.0.1 and the test
# reaches the exporter there. The package is installed with apt (so its Depends are what
# pulls in the libraries), exactly as a user would; a drop-in adds one EnvironmentFile that
# points ARGS at a config whose endpoints are the fake's, and turns instance metadata off, so
# nothing leaves 127.0.0.1 except apt's downloads from the Debian mirror.
#
# Exit status: 0 every check passed; 1 a check failed; 77 (SKIP_STATUS in testlib.sh, automake's
# SKIP) systemd could not be booted here - not root, no systemd-container/debootstrap, nspawn
# refused or the container's systemd never came up. A skip has checked nothing: it prints
# "SKIPPED: <reason>" and ends with "skipped: systemd stage not run", never "passed".
#
#   BCE_DEB_TEST_SYSTEMD_MODE=auto|host|nspawn  auto (default): the host's systemd when it is
#                      PID 1, else nspawn; host or nspawn forces one (host: skipped without it)
#   BCE_DEB_TEST_WORK=DIR  where the debootstrap'd tree is cached (default build/deb-test)
set -u

DEB=$(readlink -f "${1:?usage: deb-test-systemd.sh PACKAGE.deb}")
PKG=bedrock-cost-exporter
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BCE_DEB_TEST_WORK:-$ROOT/build/deb-test}
BASE=$WORK/rootfs
PYTHON=/usr/bin/python3
STAMP_CONTENT="bookworm minbase systemd systemd-sysv dbus v1"

# shellcheck source=packaging/testlib.sh
. "$ROOT/packaging/testlib.sh"
# Only before the first check: a stage that checked something reports passed/failed.
skip() {
    if [ "$((passed + failed))" -gt 0 ]; then
        bad "systemd stage stopped: $*"; echo "$passed passed, $failed failed"; exit 1
    fi
    echo "SKIPPED: $*"; echo "skipped: systemd stage not run"; exit "$SKIP_STATUS"
}

MODE=${BCE_DEB_TEST_SYSTEMD_MODE:-auto}
case $MODE in
    auto) if [ -d /run/systemd/system ]; then MODE=host; else MODE=nspawn; fi ;;
    host) [ -d /run/systemd/system ] || skip "systemd is not PID 1 here (BCE_DEB_TEST_SYSTEMD_MODE=host)" ;;
    nspawn) ;;
    *) echo "deb-test-systemd.sh: BCE_DEB_TEST_SYSTEMD_MODE must be auto, host or nspawn" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn, or dpkg -i under the host's systemd)"
[ -f "$DEB" ] || { echo "deb-test-systemd.sh: no such package: $DEB" >&2; exit 2; }

TMP=$(mktemp -d /tmp/bce-deb-systemd.XXXXXX)
NSPAWN_PID="" FAKE_PID="" INIT=""
cleanup() {
    [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null   # nspawn powers the container off
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null
    fi
    wait 2>/dev/null
    # --ephemeral's copy of the tree, should nspawn have been killed before removing it
    [ "${MODE:-}" = nspawn ] && rm -rf "$WORK"/.#machine.* "$WORK"/.#.#machine.*
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { local t=$(( $1 * 10 )); shift; for _ in $(seq "$t"); do "$@" && return 0; sleep 0.1; done; return 1; }

if [ "$MODE" = host ]; then
    # systemd is PID 1 here: use it directly.
    IN=()
else
    apt_ensure systemd-container debootstrap || skip "cannot install systemd-container and debootstrap"
    command -v systemd-nspawn > /dev/null || skip "systemd-nspawn not found"
    if [ "$(cat "$BASE/.bce-stamp" 2>/dev/null)" != "$STAMP_CONTENT" ]; then
        MIRROR=$(apt-cache policy 2>/dev/null | sed -n 's|.* \(https\?://[^ ]*\) bookworm/main .*|\1|p' | head -1)
        MIRROR=${MIRROR:-http://deb.debian.org/debian}
        echo "# debootstrap bookworm (minbase + systemd) from $MIRROR into $BASE"
        rm -rf "$BASE" && mkdir -p "$WORK"
        if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$BASE" "$MIRROR" \
                > "$WORK/debootstrap.log" 2>&1; then
            tail -5 "$WORK/debootstrap.log"; bad "debootstrap"; echo "$passed passed, $failed failed"; exit 1
        fi
        rm -f "$BASE/etc/resolv.conf"     # nspawn provides the host's
        echo "$STAMP_CONTENT" > "$BASE/.bce-stamp"
    fi
    rm -rf "$WORK"/.#machine.* "$WORK"/.#.#machine.*   # left by an interrupted run
    mkdir -p "$TMP/deb" && cp "$DEB" "$TMP/deb/"
    systemd-nspawn -q --ephemeral -D "$BASE" -b --register=no --keep-unit \
        --machine="bce-deb-test-$$" --bind-ro="$TMP/deb:/mnt/deb" > "$TMP/nspawn.log" 2>&1 &
    NSPAWN_PID=$!
    find_init() { INIT=$(pgrep -P "$NSPAWN_PID" | head -1); [ -n "$INIT" ] && \
        [ "$(readlink "/proc/$INIT/exe" 2>/dev/null)" != "$(readlink /proc/$NSPAWN_PID/exe)" ]; }
    # up to 30 s for the container's init; at once when nspawn gives up (no privileges,
    # no cgroup delegation, no namespaces in this container...)
    for _ in $(seq 300); do
        find_init && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! find_init; then
        tail -20 "$TMP/nspawn.log" | sed 's/^/# nspawn: /'
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            why="no init in the container after 30 s"
        else
            wait "$NSPAWN_PID"; why="systemd-nspawn exited with status $?"; NSPAWN_PID=""
        fi
        skip "systemd-nspawn could not boot a container here ($why)"
    fi
    IN=(nsenter -t "$INIT" -a)
    running() { "${IN[@]}" systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'; }
    # the package is not installed yet: a container that does not come up is this machine's
    # limit (cgroups, seccomp, /proc), not the package's fault
    if ! wait_for 60 running; then
        state=$("${IN[@]}" systemctl is-system-running 2>/dev/null)
        tail -20 "$TMP/nspawn.log" | sed 's/^/# nspawn: /'
        skip "the container's systemd did not reach running in 60 s (state: ${state:-unknown})"
    fi
    ok "container booted with systemd as PID 1"
fi
in_c() { "${IN[@]}" "$@"; }
echo "# systemd stage: $MODE"

# The fake AWS on the host's loopback, shared with the container.
"$PYTHON" "$ROOT/tests/fake_aws/fake_aws.py" --host 127.0.0.1 --port 0 --port-file "$TMP/fake.port" \
    --quiet > "$TMP/fake.log" 2>&1 &
FAKE_PID=$!
wait_for 10 test -s "$TMP/fake.port"
FAKE="http://127.0.0.1:$(cat "$TMP/fake.port")"
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# The packaged config, with the fake's endpoints, as /run/bce-test/test.conf; a drop-in adds
# /run/bce-test/env after /etc/default/bedrock-cost-exporter (later EnvironmentFile= wins).
dpkg-deb -x "$DEB" "$TMP/pkg"
sed -e "s|https://bedrock-mantle.{region}.api.aws/v1|$FAKE/mantle/{region}/v1|" \
    -e "s|https://ce.us-east-1.amazonaws.com|$FAKE/ce|" \
    -e "s|https://monitoring.{region}.amazonaws.com|$FAKE/monitoring/{region}|" \
    -e "s|https://sts.{region}.amazonaws.com|$FAKE/sts|" \
    -e "s|http://169.254.169.254|$FAKE|" -e "s|http://169.254.170.2|$FAKE|" \
    -e "s|imds_enabled = true;|imds_enabled = false;|" \
    "$TMP/pkg/etc/$PKG/$PKG.conf" > "$TMP/test.conf"
put() { in_c sh -c "mkdir -p \"\$(dirname '$1')\" && cat > '$1' && chmod ${2:-0644} '$1'"; }
put /run/bce-test/test.conf < "$TMP/test.conf"
printf '[Service]\nEnvironmentFile=/run/bce-test/env\n' | put /etc/systemd/system/$PKG.service.d/bce-test.conf
ARGS="--config.file=/run/bce-test/test.conf --web.listen-address=127.0.0.1:$PORT"
printf 'ARGS="%s"\nAWS_EC2_METADATA_DISABLED=true\n' "$ARGS" | put /run/bce-test/env 0600

http_status() { "$PYTHON" - "$PORT" "$1" "${2:-/dev/null}" <<'EOF'
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
    c.request("GET", sys.argv[2]); r = c.getresponse(); open(sys.argv[3], "wb").write(r.read())
    print(r.status)
except OSError:
    print(0)
EOF
}
status_is() { [ "$(http_status "$1")" = "$2" ]; }
prop() { in_c systemctl show -P "$1" $PKG.service; }
journal_has() { in_c journalctl -u $PKG.service --no-pager -o cat | grep -q "$1"; }

# ---- install: enabled and started, not ready without credentials ---------------------------
if [ "$MODE" = nspawn ]; then
    in_c sh -c "apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /mnt/deb/$(basename "$DEB")" \
        > "$TMP/apt.log" 2>&1
    check "apt-get install ./$(basename "$DEB") in the container (Depends resolved)" \
        sh -c "${IN[*]} dpkg-query -W -f='\${Status}' $PKG | grep -q 'install ok installed'" || tail -20 "$TMP/apt.log"
else
    dpkg -i "$DEB" > "$TMP/apt.log" 2>&1
fi
check "unit enabled by the package" test "$(in_c systemctl is-enabled $PKG.service)" = enabled
check "unit started by the package (active)" wait_for 10 sh -c "test \"\$(${IN[*]} systemctl is-active $PKG.service)\" = active"
check "Type=notify: READY=1 reached systemd (StatusText)" sh -c "${IN[*]} systemctl show -P StatusText $PKG.service | grep -q serving"
check "no credentials: /-/healthy 200" wait_for 10 status_is /-/healthy 200
check "no credentials: /-/ready 503" status_is /-/ready 503
check "no credentials: journal names BEDROCK_API_KEY" wait_for 10 journal_has 'BEDROCK_API_KEY is not set'
check "no credentials: journal says no AWS credentials found" wait_for 10 journal_has 'no AWS credentials found'

# ---- credentials, restart: ready, /metrics, the sandbox really on ---------------------------
printf 'ARGS="%s"\nAWS_EC2_METADATA_DISABLED=true\nBEDROCK_API_KEY=demo-bedrock-api-key\nAWS_ACCESS_KEY_ID=AKIDFAKEEXAMPLE\nAWS_SECRET_ACCESS_KEY=fake/secret/EXAMPLEKEY\n' \
    "$ARGS" | put /run/bce-test/env 0600
in_c systemctl restart $PKG.service
check "systemctl restart: active" test "$(in_c systemctl is-active $PKG.service)" = active
check "/-/ready 200 once every source has data" wait_for 30 status_is /-/ready 200
st=$(http_status /metrics "$TMP/metrics")
check "/metrics 200 (got $st)" test "$st" = 200
check "/metrics lists the fake's projects" grep -q 'bedrock_cost_project_info{.*project_name="CustomerChatbot-Prod"' "$TMP/metrics"
check "/metrics has per-project cost" grep -q '^bedrock_cost_project_month_to_date_usd{' "$TMP/metrics"
for src in projects cost_explorer forecast allocation_tags; do
    check "source $src up" grep -q "^bedrock_cost_exporter_source_up{source=\"$src\"} 1" "$TMP/metrics"
done
MAIN=$(prop MainPID)
status_of() { in_c grep "^$1:" /proc/"$MAIN"/status | awk '{print $2}'; }
uid=$(status_of Uid)
check "runs as bedrock-cost-exporter (uid $uid)" test "$(in_c id -u $PKG)" = "$uid"
check "NoNewPrivileges: NoNewPrivs 1" test "$(status_of NoNewPrivs)" = 1
check "SystemCallFilter: seccomp filter mode (2)" test "$(status_of Seccomp)" = 2
check "CapabilityBoundingSet=: CapBnd 0" test "$(status_of CapBnd)" = 0000000000000000
check "no effective capabilities" test "$(status_of CapEff)" = 0000000000000000
in_svc() { in_c nsenter -t "$MAIN" -m "$@"; }   # the service's mount namespace
check "ProtectSystem=strict: /etc, /usr read-only" sh -c "! ${IN[*]} nsenter -t $MAIN -m sh -c 'touch /etc/.bce-w || touch /usr/.bce-w' 2>/dev/null"
check "ProtectSystem=strict: /var read-only (bar StateDirectory)" sh -c "! ${IN[*]} nsenter -t $MAIN -m touch /var/.bce-w 2>/dev/null"
check "StateDirectory= writable" in_svc sh -c 'touch /var/lib/bedrock-cost-exporter/.bce-w && rm /var/lib/bedrock-cost-exporter/.bce-w'
# shellcheck disable=SC2016  # expanded inside the service's namespace
check "ProtectHome=: /root and /home empty" in_svc sh -c '[ -z "$(ls -A /root /home 2>/dev/null | grep -v :)" ]'
check "PrivateDevices=: no /dev/sda-like devices" in_svc sh -c '! ls /dev | grep -qE "^(sd|vd|nvme|mem$|kmsg$)"'
check "state file written by the service" \
    wait_for 10 sh -c "test \"\$(${IN[*]} stat -c %U /var/lib/$PKG/state.json 2>/dev/null)\" = $PKG"
check "no secret in the journal" sh -c "! ${IN[*]} journalctl --no-pager -o cat | grep -qE 'demo-bedrock-api-key|fake/secret/EXAMPLEKEY'"

# ---- reload: checked first, then SIGHUP --------------------------------------------------------
in_c systemctl reload $PKG.service; rc=$?
check "systemctl reload succeeds (exit $rc)" test "$rc" = 0
check "reload delivered SIGHUP (journal)" wait_for 10 journal_has 'SIGHUP received'
check "reload kept the main PID" test "$(prop MainPID)" = "$MAIN"
in_c sh -c 'echo "projects: { page_size = 1000; };" >> /run/bce-test/test.conf'
in_c systemctl reload $PKG.service 2>/dev/null; rc=$?
check "reload with a broken config fails (exit $rc) before any SIGHUP" test "$rc" != 0
check "... and the service keeps running, same PID" sh -c "test \"\$(${IN[*]} systemctl is-active $PKG.service)\" = active && test \"\$(${IN[*]} systemctl show -P MainPID $PKG.service)\" = $MAIN"
put /run/bce-test/test.conf < "$TMP/test.conf"

# ---- RestartPreventExitStatus: a bad command line (exit 2) is not restarted -------------------
printf 'ARGS="--no-such-flag"\nAWS_EC2_METADATA_DISABLED=true\n' | put /run/bce-test/env 0600
in_c systemctl restart $PKG.service 2>/dev/null
sleep 7   # past RestartSec=5s
check "exit 2 (bad command line): failed, not restarted" sh -c \
    "test \"\$(${IN[*]} systemctl show -P ExecMainStatus $PKG.service)\" = 2 && test \"\$(${IN[*]} systemctl show -P NRestarts $PKG.service)\" = 0 && test \"\$(${IN[*]} systemctl is-active $PKG.service)\" != active"
printf 'ARGS="%s"\nAWS_EC2_METADATA_DISABLED=true\n' "$ARGS" | put /run/bce-test/env 0600
in_c systemctl reset-failed $PKG.service 2>/dev/null
in_c systemctl start $PKG.service
check "started again" test "$(in_c systemctl is-active $PKG.service)" = active
in_c systemctl stop $PKG.service
check "systemctl stop: clean exit (status 0)" test "$(prop ExecMainStatus)" = 0
check "STOPPING=1/SIGTERM: result success" test "$(prop Result)" = success

# ---- purge ------------------------------------------------------------------------------------
in_c rm -rf /etc/systemd/system/$PKG.service.d
in_c dpkg --purge $PKG > "$TMP/purge.log" 2>&1
check "dpkg --purge in the systemd system" sh -c "! ${IN[*]} dpkg-query -W -f='\${Status}' $PKG 2>/dev/null | grep -q installed"
for f in /lib/systemd/system/$PKG.service /etc/systemd/system/multi-user.target.wants/$PKG.service \
         /etc/$PKG /etc/default/$PKG /var/lib/$PKG /usr/bin/$PKG; do
    check "purged: $f" in_c sh -c "test ! -e $f -a ! -L $f"
done
check "systemd forgot the unit" sh -c "test \"\$(${IN[*]} systemctl show -P LoadState $PKG.service)\" = not-found"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
