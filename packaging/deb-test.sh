#!/bin/bash
# packaging/deb-test.sh PACKAGE.deb - install the Debian package on this machine, check it,
# run it the way its systemd unit does against the fake AWS on 127.0.0.1, purge it.
#
#   make deb-test            (builds the package first)
#
# Needs root. Installs and purges bedrock-cost-exporter on this machine: do not run it where
# the package is in real use. The exporter only ever talks to 127.0.0.1 (part 2 also lets apt
# fetch Debian packages from the configured mirror). Prints "N passed, N failed" (", 1 skipped"
# when part 2 could not run); exit 0 when nothing failed.
#
# Part 1, on this machine: without systemd as PID 1 (this sandbox) the unit's ExecStart is run as
# the unit's user by runuser, with its EnvironmentFile, NoNewPrivileges, HOME, the sd_notify
# socket (READY=1, RELOADING=1, STOPPING=1 are checked), its ExecReload lines and SIGTERM.
# The rest of the sandbox (namespaces, seccomp, ProtectSystem...) is systemd's own work and is
# only checked statically here (systemd-analyze verify/security).
# Part 2, packaging/deb-test-systemd.sh: the package installed in a booted Debian container
# (systemd-nspawn) or under this machine's systemd, the unit started by systemctl with its
# whole sandbox, checked from /proc. Where systemd cannot be booted, part 2 is skipped (exit 77)
# and the summary says "N passed, N failed, 1 skipped (systemd stage: reason)".
# BCE_DEB_TEST_SYSTEMD=0 skips part 2 (also reported as skipped); BCE_DEB_TEST_SYSTEMD=require
# makes a skipped part 2 a failure.
set -u

DEB=${1:?usage: deb-test.sh bedrock-cost-exporter_VERSION_ARCH.deb}
PKG=bedrock-cost-exporter
USER_NAME=bedrock-cost-exporter
UNIT=/lib/systemd/system/$PKG.service
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=/usr/bin/python3
MAX_EXPOSURE=2.0
# The source tree the package was built from (make deb's copy), else this work tree.
SRC=$(dirname "$DEB")/$(basename "$DEB" | sed 's/^\([^_]*\)_\([^-_]*\).*/\1-\2/')
[ -d "$SRC" ] || SRC=$ROOT

[ "$(id -u)" = 0 ] || { echo "deb-test.sh: needs root (dpkg -i, runuser)" >&2; exit 2; }
[ -f "$DEB" ] || { echo "deb-test.sh: no such package: $DEB" >&2; exit 2; }

# shellcheck source=packaging/testlib.sh
. "$ROOT/packaging/testlib.sh"

TMP=$(mktemp -d /tmp/bce-deb-test.XXXXXX)
chmod 0755 "$TMP"
FAKE_PID="" EXP_PID="" NOTIFY_PID=""
user_existed=no
getent passwd "$USER_NAME" >/dev/null && user_existed=yes

daemon_pids() { pgrep -u "$USER_NAME" -f "^/usr/bin/$PKG " 2>/dev/null; }
kill_daemon() { local p; for p in $(daemon_pids); do kill -TERM "$p" 2>/dev/null; done; }

cleanup() {
    kill_daemon
    for p in $EXP_PID $FAKE_PID $NOTIFY_PID; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [ -n "${SYSTEMD:-}" ] && [ "$SYSTEMD" = yes ]; then systemctl stop "$PKG" 2>/dev/null; fi
    if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q installed; then
        dpkg --purge "$PKG" >/dev/null 2>&1
    fi
    if [ "$user_existed" = no ] && getent passwd "$USER_NAME" >/dev/null; then
        deluser --system --quiet "$USER_NAME" >/dev/null 2>&1
        getent group "$USER_NAME" >/dev/null && delgroup --system --quiet "$USER_NAME" >/dev/null 2>&1
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'install ok installed'; then
    echo "deb-test.sh: $PKG is already installed here; it will be reinstalled and purged" >&2
fi

# ---- install -------------------------------------------------------------------------
echo "# dpkg -i $DEB"
if ! dpkg -i "$DEB" > "$TMP/dpkg-i.log" 2>&1; then
    # a missing runtime library: let apt complete the installation
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -f >> "$TMP/dpkg-i.log" 2>&1
fi
check "dpkg -i installs the package" \
    sh -c "dpkg-query -W -f='\${Status}' $PKG | grep -q 'install ok installed'"
if grep -iE 'warning|error' "$TMP/dpkg-i.log"; then
    bad "dpkg -i printed warnings (above)"
else
    ok "dpkg -i printed no warnings"
fi

# ---- files where packaging/README.md says -----------------------------------------------
mode_owner() { stat -c '%a %U:%G' "$1" 2>/dev/null; }
check "/usr/bin/$PKG is executable" test -x /usr/bin/$PKG
check "config /etc/$PKG/$PKG.conf 644 root:root" test "$(mode_owner /etc/$PKG/$PKG.conf)" = "644 root:root"
check "/etc/default/$PKG 640 root:root" test "$(mode_owner /etc/default/$PKG)" = "640 root:root"
check "/etc/default/$PKG sets ARGS" grep -q '^ARGS=""' /etc/default/$PKG
check "unit $UNIT" test -f $UNIT
check "man page /usr/share/man/man1/$PKG.1.gz" test -f /usr/share/man/man1/$PKG.1.gz
check "man page renders without warnings" sh -c \
    "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -Tutf8 -Z -l /usr/share/man/man1/$PKG.1.gz 2>&1 >/dev/null | (! grep -q .)"
check "copyright /usr/share/doc/$PKG/copyright" test -f /usr/share/doc/$PKG/copyright
check "example config under /usr/share/$PKG/examples/" test -f /usr/share/$PKG/examples/$PKG.conf
for f in web-config.yml prometheus-scrape.yml; do
    if [ -f "$SRC/etc/$f" ]; then
        check "example $f under /usr/share/$PKG/examples/" cmp -s "$SRC/etc/$f" /usr/share/$PKG/examples/$f
    fi
done
if [ -d "$SRC/dashboards" ]; then
    n_src=$(cd "$SRC" && find dashboards -type f \( -name '*.json' -o -name '*.yml' -o -name '*.yaml' -o -name '*.md' \) | wc -l)
    n_inst=$(find /usr/share/$PKG/dashboards -type f 2>/dev/null | wc -l)
    check "dashboards and rules under /usr/share/$PKG/dashboards/ ($n_inst of $n_src files)" test "$n_src" = "$n_inst"
fi
check "conffiles: the config and /etc/default" sh -c \
    "dpkg-query -W -f='\${Conffiles}' $PKG | grep -q ' /etc/$PKG/$PKG.conf ' && dpkg-query -W -f='\${Conffiles}' $PKG | grep -q ' /etc/default/$PKG '"
pw=$(getent passwd "$USER_NAME")
check "system user $USER_NAME exists (uid < 1000)" test -n "$pw" -a "$(echo "$pw" | cut -d: -f3)" -lt 1000
check "its home is /var/lib/$PKG" test "$(echo "$pw" | cut -d: -f6)" = /var/lib/$PKG
check "its shell is /usr/sbin/nologin" test "$(echo "$pw" | cut -d: -f7)" = /usr/sbin/nologin
check "group $USER_NAME exists" getent group "$USER_NAME"
check "/var/lib/$PKG 750 $USER_NAME" test "$(mode_owner /var/lib/$PKG)" = "750 $USER_NAME:$USER_NAME"
check "unit enabled (multi-user.target.wants symlink)" \
    test -L /etc/systemd/system/multi-user.target.wants/$PKG.service
check "the binary's --version" sh -c "/usr/bin/$PKG --version | grep -q '^$PKG '"

# ---- the unit, statically ------------------------------------------------------------------
systemd-analyze verify $UNIT > "$TMP/verify.log" 2>&1; rc=$?
cat "$TMP/verify.log"
check "systemd-analyze verify $UNIT: exit $rc, no output" sh -c "test $rc = 0 && ! grep -q . $TMP/verify.log"
exposure=$(systemd-analyze security --offline=yes --no-pager $UNIT 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "# systemd-analyze security --offline=yes $UNIT: exposure $exposure"
check "exposure level $exposure <= $MAX_EXPOSURE" \
    awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e != "" && e + 0 <= m + 0) }'

# ---- the installed binary against the installed config ------------------------------------
check "--check-config accepts the installed config (as $USER_NAME)" \
    runuser -u "$USER_NAME" -- /usr/bin/$PKG --check-config
check "--check-config --config.file=/etc/$PKG/$PKG.conf" /usr/bin/$PKG --check-config --config.file=/etc/$PKG/$PKG.conf

# ---- run it as the unit does, against the fake AWS on 127.0.0.1 ---------------------------
"$PYTHON" "$ROOT/tests/fake_aws/fake_aws.py" --host 127.0.0.1 --port 0 --port-file "$TMP/fake.port" \
    --quiet > "$TMP/fake.log" 2>&1 &
FAKE_PID=$!
for _ in $(seq 100); do [ -s "$TMP/fake.port" ] && break; sleep 0.1; done
FAKE_PORT=$(cat "$TMP/fake.port" 2>/dev/null)
check "fake AWS listening on 127.0.0.1:$FAKE_PORT" test -n "$FAKE_PORT"
FAKE="http://127.0.0.1:$FAKE_PORT"

# The installed config with every AWS endpoint on the fake and instance metadata off.
sed -e "s|https://bedrock-mantle.{region}.api.aws/v1|$FAKE/mantle/{region}/v1|" \
    -e "s|https://ce.us-east-1.amazonaws.com|$FAKE/ce|" \
    -e "s|https://monitoring.{region}.amazonaws.com|$FAKE/monitoring/{region}|" \
    -e "s|https://sts.{region}.amazonaws.com|$FAKE/sts|" \
    -e "s|http://169.254.169.254|$FAKE|" -e "s|http://169.254.170.2|$FAKE|" \
    -e "s|imds_enabled = true;|imds_enabled = false;|" \
    /etc/$PKG/$PKG.conf > "$TMP/test.conf"
chmod 0644 "$TMP/test.conf"
check "test config has no endpoint off loopback" \
    sh -c "! grep -nE 'https?://' '$TMP/test.conf' | grep -v '127.0.0.1' | grep -v '^[0-9]*: *#'"
check "test config keeps imds off" grep -q 'imds_enabled = false;' "$TMP/test.conf"

# A free loopback port for the exporter.
EXP_PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# The EnvironmentFile: the installed one, with the test's ARGS and the fake's credentials.
cp /etc/default/$PKG "$TMP/default"
cat >> "$TMP/default" <<EOF
ARGS="--config.file=$TMP/test.conf --web.listen-address=127.0.0.1:$EXP_PORT"
BEDROCK_API_KEY=demo-bedrock-api-key
AWS_ACCESS_KEY_ID=AKIDFAKEEXAMPLE
AWS_SECRET_ACCESS_KEY=fake/secret/EXAMPLEKEY
EOF

# ExecStart / ExecReload from the installed unit, with $ARGS and $MAINPID expanded as
# systemd does (unquoted $VAR: split on whitespace).
unit_lines() { sed -n "s/^$1=//p" $UNIT; }
EXEC_START=$(unit_lines ExecStart)
check "ExecStart is '/usr/bin/$PKG \$ARGS'" test "$EXEC_START" = "/usr/bin/$PKG \$ARGS"
check "unit User=$USER_NAME" test "$(unit_lines User)" = "$USER_NAME"
check "unit Type=notify" test "$(unit_lines Type)" = notify
check "unit StateDirectory=$PKG" test "$(unit_lines StateDirectory)" = "$PKG"

env_args() { # the variables of an EnvironmentFile, as env(1) arguments
    "$PYTHON" - "$1" <<'EOF'
import shlex, sys
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if not line or line[0] in "#;" or "=" not in line:
        continue
    k, v = line.split("=", 1)
    v = shlex.split(v)[0] if v.strip() else ""
    print(f"{k.strip()}={v}")
EOF
}
mapfile -t ENVV < <(env_args "$TMP/default")
ARGS_VALUE=$(printf '%s\n' "${ENVV[@]}" | sed -n 's/^ARGS=//p' | tail -1)
expand() { local cmd=$1; cmd=${cmd//\$ARGS/$ARGS_VALUE}; cmd=${cmd//\$MAINPID/${EXP_PID:-0}}; echo "$cmd"; }

# sd_notify: a datagram socket the exporter writes READY=1 etc. to, as systemd's would.
"$PYTHON" - "$TMP/notify.sock" "$TMP/notify.log" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        msg = s.recv(4096).decode("utf-8", "replace")
        log.write(msg.replace("\n", " ") + "\n")
EOF
NOTIFY_PID=$!
for _ in $(seq 50); do [ -S "$TMP/notify.sock" ] && break; sleep 0.1; done

run_as_unit() { # runuser + NoNewPrivileges + a clean environment like systemd's
    runuser -u "$USER_NAME" -- setpriv --no-new-privs -- env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        HOME=/var/lib/$PKG USER=$USER_NAME LOGNAME=$USER_NAME SHELL=/usr/sbin/nologin \
        NOTIFY_SOCKET="$TMP/notify.sock" "${ENVV[@]}" "$@"
}

wait_for() { # wait_for SECONDS COMMAND...
    local t=$(( $1 * 10 )); shift
    for _ in $(seq "$t"); do "$@" && return 0; sleep 0.1; done; return 1
}
http_get() { # http_get PATH -> status and body in $TMP/body
    "$PYTHON" - "$EXP_PORT" "$1" "$TMP/body" <<'EOF'
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
    c.request("GET", sys.argv[2]); r = c.getresponse(); body = r.read()
except OSError:
    print(0); sys.exit(0)
open(sys.argv[3], "wb").write(body); print(r.status)
EOF
}
notified() { grep -q "$1" "$TMP/notify.log" 2>/dev/null; }
is_ready() { [ "$(http_get /-/ready)" = 200 ]; }
is_healthy() { [ "$(http_get /-/healthy)" = 200 ]; }

echo "# ExecStart as $USER_NAME: $(expand "$EXEC_START")"
# shellcheck disable=SC2046
run_as_unit $(expand "$EXEC_START") > "$TMP/exporter.log" 2>&1 &
EXP_PID=$!
check "READY=1 on the notify socket (Type=notify)" wait_for 10 notified 'READY=1'
check "/-/healthy answers 200" wait_for 10 is_healthy
check "/-/ready turns 200 once every source has data" wait_for 30 is_ready
st=$(http_get /metrics)
check "/metrics 200 (got $st)" test "$st" = 200
cp "$TMP/body" "$TMP/metrics"
check "/metrics lists the fake's projects" grep -q 'bedrock_cost_project_info{.*project_name="CustomerChatbot-Prod"' "$TMP/metrics"
check "/metrics has per-project cost" grep -q '^bedrock_cost_project_month_to_date_usd{' "$TMP/metrics"
for src in projects cost_explorer forecast allocation_tags; do
    check "source $src up" grep -q "^bedrock_cost_exporter_source_up{source=\"$src\"} 1" "$TMP/metrics"
done
if command -v promtool >/dev/null; then
    check "promtool check metrics" sh -c "promtool check metrics < $TMP/metrics > $TMP/promtool.log 2>&1"
fi
daemon_pid=$(daemon_pids | head -1)
check "daemon runs as $USER_NAME" test -n "$daemon_pid"
check "daemon has NoNewPrivs and no effective capabilities" sh -c \
    "grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$daemon_pid/status && grep -q '^CapEff:[[:space:]]*0*$' /proc/$daemon_pid/status"
check "state file written to /var/lib/$PKG by $USER_NAME" \
    wait_for 10 sh -c "test \"\$(stat -c %U /var/lib/$PKG/state.json 2>/dev/null)\" = $USER_NAME"
check "no secret in the log" sh -c "! grep -qE 'demo-bedrock-api-key|fake/secret/EXAMPLEKEY' $TMP/exporter.log"

# systemctl reload: the ExecReload lines in order; the check first, then SIGHUP.
EXP_MAIN=$daemon_pid
reload_ok=yes
while IFS= read -r line; do
    cmd=${line//\$ARGS/$ARGS_VALUE}; cmd=${cmd//\$MAINPID/$EXP_MAIN}
    echo "# ExecReload: $cmd"
    # shellcheck disable=SC2086
    run_as_unit $cmd >> "$TMP/reload.log" 2>&1 || { reload_ok=no; break; }
done < <(unit_lines ExecReload)
check "ExecReload (--check-config, then kill -HUP) succeeds" test "$reload_ok" = yes
check "RELOADING=1 then READY=1 after SIGHUP" wait_for 10 sh -c \
    "grep -n 'RELOADING=1' $TMP/notify.log >/dev/null && test \$(grep -c 'READY=1' $TMP/notify.log) -ge 2"
check "log says the configuration was reloaded" wait_for 5 grep -q 'SIGHUP received' "$TMP/exporter.log"
# A broken config: ExecReload's first line fails, so no SIGHUP is sent.
cp "$TMP/test.conf" "$TMP/test.conf.good"
echo 'projects: { page_size = 1000; };' >> "$TMP/test.conf"
first_reload=$(unit_lines ExecReload | head -1)
cmd=${first_reload//\$ARGS/$ARGS_VALUE}
# shellcheck disable=SC2086
run_as_unit $cmd > "$TMP/reload-bad.log" 2>&1; rc=$?
check "ExecReload's check rejects a broken config (exit $rc, want 1)" test "$rc" = 1
check "... and names file:line" grep -q "test.conf:[0-9]*:" "$TMP/reload-bad.log"
cp "$TMP/test.conf.good" "$TMP/test.conf"

kill -TERM "$daemon_pid" 2>/dev/null
wait "$EXP_PID"; rc=$?
EXP_PID=""
check "SIGTERM: exit status 0 (got $rc)" test "$rc" = 0
check "STOPPING=1 on the notify socket" notified 'STOPPING=1'

# With no credentials at all (as right after installation): it keeps serving, not ready,
# and the log says what is missing.
rm -f /var/lib/$PKG/state.json
printf 'ARGS="--config.file=%s --web.listen-address=127.0.0.1:%s"\n' "$TMP/test.conf" "$EXP_PORT" > "$TMP/default.nocreds"
mapfile -t ENVV < <(env_args "$TMP/default.nocreds")
# shellcheck disable=SC2046
run_as_unit $(expand "$EXEC_START") > "$TMP/exporter-nocreds.log" 2>&1 &
EXP_PID=$!
check "without credentials: /-/healthy 200" wait_for 10 is_healthy
sleep 2
st=$(http_get /-/ready)
check "without credentials: /-/ready 503 (got $st)" test "$st" = 503
check "without credentials: the log names BEDROCK_API_KEY" wait_for 10 grep -q 'BEDROCK_API_KEY' "$TMP/exporter-nocreds.log"
check "without credentials: the log says no AWS credentials were found" \
    wait_for 10 grep -qi 'no AWS credentials' "$TMP/exporter-nocreds.log"
kill_daemon; wait "$EXP_PID" 2>/dev/null; EXP_PID=""

# ---- upgrade in place keeps a changed conffile ---------------------------------------------
echo '# local change' >> /etc/$PKG/$PKG.conf
dpkg -i --force-confold "$DEB" > "$TMP/dpkg-reinstall.log" 2>&1
check "reinstall (upgrade path) succeeds" sh -c "dpkg-query -W -f='\${Status}' $PKG | grep -q 'install ok installed'"
check "reinstall keeps the changed config" grep -q '^# local change' /etc/$PKG/$PKG.conf

# ---- purge ----------------------------------------------------------------------------------
dpkg --purge "$PKG" > "$TMP/dpkg-purge.log" 2>&1
check "dpkg --purge succeeds" sh -c "! dpkg-query -W -f='\${Status}' $PKG 2>/dev/null | grep -q installed"
for f in /usr/bin/$PKG $UNIT /usr/share/man/man1/$PKG.1.gz /usr/share/$PKG /usr/share/doc/$PKG \
         /etc/$PKG /etc/default/$PKG /var/lib/$PKG \
         /etc/systemd/system/multi-user.target.wants/$PKG.service; do
    check "purged: $f is gone" test ! -e "$f" -a ! -L "$f"
done
check "purge leaves the system user (Debian convention)" getent passwd "$USER_NAME"
leftover=$(find / -xdev \( -path /proc -o -path "$TMP" -o -path "$ROOT" \) -prune -o \
    -name "*$PKG*" -print 2>/dev/null | grep -v '^/tmp/\|^/var/lib/dpkg/\|^/var/cache/\|^/var/log/\|^/root/\|^/work/\|^/home/' | head)
check "nothing named $PKG left outside dpkg's records${leftover:+: $leftover}" test -z "$leftover"

# ---- the unit under a real systemd (systemd-nspawn where systemd is not PID 1) ----------------
case ${BCE_DEB_TEST_SYSTEMD:-1} in
    0) skipped_stage "systemd stage: BCE_DEB_TEST_SYSTEMD=0" ;;
    *) echo "# packaging/deb-test-systemd.sh"
       [ "${BCE_DEB_TEST_SYSTEMD:-1}" = require ] && SKIP_IS_FAILURE=1
       run_stage "systemd stage" "$ROOT/packaging/deb-test-systemd.sh" "$DEB" ;;
esac

summary
[ "$failed" = 0 ]
