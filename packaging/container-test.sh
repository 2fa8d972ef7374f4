#!/bin/bash
# packaging/container-test.sh - prove packaging/Dockerfile's runtime stage without a Docker
# engine. Needs root; `make container-test` runs it. Prints "N passed, N failed".
#
# 1. Static checks of the Dockerfile (hadolint when it is installed; Debian bookworm has no
#    hadolint package): base images, non-root numeric USER, EXPOSE = the default listen
#    port, STOPSIGNAL, exec-form ENTRYPOINT, apt hygiene, no HEALTHCHECK (documented), the
#    runtime packages = exactly the packages owning the binary's NEEDED libraries (+ CA
#    certificates), the build packages = the Makefile's -dev packages.
# 2. The build stage's `make install PREFIX=/usr SYSCONFDIR=/etc DESTDIR=/out`, run here.
# 3. The runtime stage, replayed in a bookworm made with debootstrap (--variant=minbase, the
#    closest to debian:bookworm-slim; cached in build/container/, copied fresh per run): its
#    ARG, RUN (in a chroot, so apt installs exactly RUNTIME_PACKAGES), COPY --from=build,
#    USER, WORKDIR, ENTRYPOINT and CMD instructions, in order. Any other instruction fails.
# 4. In that root, as the image's USER, in a private network namespace (like a container):
#    ldd, --version, --check-config; then ENTRYPOINT+CMD with a config bind-mounted over
#    /etc/bedrock-cost-exporter/bedrock-cost-exporter.conf (endpoints on the fake AWS, which
#    runs in the same namespace on 127.0.0.1), /-/ready, /metrics, the state file, and
#    STOPSIGNAL ending it with exit 0 within docker stop's 10 s.
#
# Not exercised: a real `docker build` (BuildKit, layer caching, .dockerignore handling, the
# debian:bookworm-slim image itself, which also drops documentation via dpkg excludes), the
# build stage's compile inside bookworm-slim (the binary here is this machine's `make`, also
# bookworm), cgroup limits, port publishing, and a container runtime's seccomp/capabilities.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKERFILE=$ROOT/packaging/Dockerfile
WORK=$ROOT/build/container
BASE=$WORK/base-rootfs
RFS=$WORK/rootfs
OUT=$WORK/out
PYTHON=/usr/bin/python3
STAMP_CONTENT="bookworm minbase v1"

# shellcheck source=packaging/testlib.sh
. "$ROOT/packaging/testlib.sh"
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }

[ "$(id -u)" = 0 ] || { echo "container-test.sh: needs root (debootstrap, chroot)" >&2; exit 2; }

# ---- the Dockerfile, parsed: one "INSTRUCTION<TAB>base64(arguments)" line per instruction ----
parse() { # parse STAGE  (STAGE = build|runtime|all)
    "$PYTHON" - "$DOCKERFILE" "$1" <<'EOF'
import base64, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
lines, cur = [], ""
for raw in text.split("\n"):
    if not cur and (raw.strip().startswith("#") or not raw.strip()):
        continue
    if raw.strip().startswith("#"):
        continue
    if raw.endswith("\\"):
        cur += raw[:-1] + " "
        continue
    cur += raw
    lines.append(cur.strip()); cur = ""
stage = None
for l in lines:
    ins, _, args = l.partition(" ")
    ins = ins.upper()
    if ins == "FROM":
        m = re.search(r"\bAS\s+(\S+)$", args, re.I)
        stage = m.group(1) if m else None
    if sys.argv[2] in ("all", stage):
        print(ins + "\t" + base64.b64encode(args.strip().encode()).decode())
EOF
}
dec() { echo "$1" | base64 -d; }
instr_args() { # all arguments of INSTRUCTION in STAGE, one per line
    local ins a
    while IFS=$'\t' read -r ins a; do [ "$ins" = "$1" ] && { dec "$a"; echo; }; done < <(parse "$2")
}
arg_default() { instr_args ARG "$2" | sed -n "s/^$1=\"\\(.*\\)\"$/\\1/p"; }

echo "# 1. static checks of packaging/Dockerfile"
if command -v hadolint >/dev/null; then
    check "hadolint" hadolint "$DOCKERFILE"
else
    echo "# hadolint: not installed (no Debian package); the checks below stand in for it"
fi
froms=$(instr_args FROM all)
check "two stages, both FROM debian:bookworm-slim" \
    test "$(echo "$froms" | grep -c '^debian:bookworm-slim AS ')" = 2 -a "$(echo "$froms" | grep -c .)" = 2
check "the last stage is 'runtime'" sh -c "echo '$froms' | tail -1 | grep -q ' AS runtime$'"
user=$(instr_args USER runtime | tail -1)
check "runtime USER is numeric and not root ($user)" sh -c "echo '$user' | grep -qE '^[1-9][0-9]*(:[1-9][0-9]*)?$'"
make -s -C "$ROOT" bedrock-cost-exporter >/dev/null || { bad "make"; finish; }
default_port=$("$ROOT/bedrock-cost-exporter" --help | sed -n 's/.*--web.listen-address=VALUE.*(default: :\([0-9]*\)).*/\1/p')
check "EXPOSE $default_port (the default --web.listen-address)" test "$(instr_args EXPOSE runtime)" = "$default_port"
check "STOPSIGNAL SIGTERM" test "$(instr_args STOPSIGNAL runtime)" = SIGTERM
entry=$(instr_args ENTRYPOINT runtime)
check "ENTRYPOINT in exec form" sh -c "echo '$entry' | grep -q '^\[\"/usr/bin/bedrock-cost-exporter\"\]$'"
check "CMD reads the mounted config path" grep -q 'config.file=/etc/bedrock-cost-exporter/bedrock-cost-exporter.conf' \
    <<< "$(instr_args CMD runtime)"
check "no HEALTHCHECK (documented: probe /-/healthy and /-/ready)" test -z "$(instr_args HEALTHCHECK all)"
runs=$(instr_args RUN all)
check "every apt-get install is --no-install-recommends" sh -c \
    "! echo \"\$1\" | grep 'apt-get install' | grep -v -q -- '--no-install-recommends'" sh "$runs"
check "every apt-get update cleans /var/lib/apt/lists" test \
    "$(echo "$runs" | grep -c 'apt-get update')" = "$(echo "$runs" | grep 'apt-get update' | grep -c 'rm -rf /var/lib/apt/lists')"

# runtime packages = owners of the binary's NEEDED libraries + ca-certificates
needed_pkgs=$(readelf -d "$ROOT/bedrock-cost-exporter" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | while read -r lib; do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|x86_64|64bit/ { print $NF; exit }')
    [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
    real=$(dirname "$path")/$(basename "$(readlink -f "$path")")
    for p in "$path" "$real" "/usr$path" "/usr$real" "${path#/usr}" "${real#/usr}"; do
        dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1 | grep . && break
    done
done | sort -u)
want_rt=$(printf '%s\nca-certificates\n' "$needed_pkgs" | sort -u | xargs)
have_rt=$(arg_default RUNTIME_PACKAGES runtime | tr ' ' '\n' | sort -u | xargs)
check "RUNTIME_PACKAGES = the binary's libraries + ca-certificates ($want_rt)" test "$want_rt" = "$have_rt" \
    || echo "#   Dockerfile has: $have_rt"
# build packages = the Makefile's DEB_BUILD_PKGS
want_bd=$(make -s -C "$ROOT" -pn bedrock-cost-exporter 2>/dev/null | sed -n 's/^DEB_BUILD_PKGS := //p' | tr ' ' '\n' \
    | sort -u | xargs)
want_bd=$(printf '%s\nlibcurl4-openssl-dev\n' "$want_bd" | tr ' ' '\n' | sort -u | xargs)
have_bd=$(arg_default BUILD_PACKAGES build | tr ' ' '\n' | sort -u | xargs)
check "BUILD_PACKAGES = the Makefile's build packages ($want_bd)" test "$want_bd" = "$have_bd" \
    || echo "#   Dockerfile has: $have_bd"

# ---- 2. the build stage's install ---------------------------------------------------------
echo "# 2. make install PREFIX=/usr SYSCONFDIR=/etc DESTDIR=$OUT"
rm -rf "$OUT"
check "make install into DESTDIR=/out" \
    sh -c "make -s -C '$ROOT' install PREFIX=/usr SYSCONFDIR=/etc DESTDIR='$OUT' > '$WORK/install.log' 2>&1"

# ---- 3. the runtime stage in a debootstrap'd bookworm -----------------------------------
echo "# 3. the runtime stage, replayed in a debootstrap'd bookworm"
apt_ensure debootstrap || { bad "install debootstrap"; finish; }
if [ "$(cat "$BASE/.bce-stamp" 2>/dev/null)" != "$STAMP_CONTENT" ]; then
    MIRROR=$(apt-cache policy 2>/dev/null | sed -n 's|.* \(https\?://[^ ]*\) bookworm/main .*|\1|p' | head -1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    echo "# debootstrap --variant=minbase bookworm from $MIRROR (cached in $BASE)"
    rm -rf "$BASE" && mkdir -p "$WORK"
    if ! debootstrap --variant=minbase bookworm "$BASE" "$MIRROR" > "$WORK/debootstrap.log" 2>&1; then
        tail -5 "$WORK/debootstrap.log"; bad "debootstrap"; finish
    fi
    echo "$STAMP_CONTENT" > "$BASE/.bce-stamp"
fi
rm -rf "$RFS" && cp -a "$BASE" "$RFS"
cp /etc/resolv.conf "$RFS/etc/resolv.conf"   # what a container runtime provides

# Run a command in the root with /proc and /dev, in a private mount namespace.
in_root() { # in_root [--net] ENV... -- COMMAND...
    local net=() envs=()
    [ "$1" = --net ] && { net=(--net); shift; }
    while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
    # shellcheck disable=SC2016  # expanded by the inner sh
    unshare --mount --propagation private "${net[@]}" --fork sh -c '
        r=$1; shift
        mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && exec "$@"' sh "$RFS" \
        chroot "$RFS" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${envs[@]}" "$@"
}

declare -A ARGV=()
IMG_USER=root IMG_WORKDIR=/ ENTRY="" CMD=""
replay_ok=yes
while IFS=$'\t' read -r ins a; do
    args=$(dec "$a")
    case $ins in
    FROM) ;;
    ARG)
        k=${args%%=*}; v=${args#*=}; v=${v#\"}; v=${v%\"}; ARGV[$k]=$v ;;
    RUN)
        envs=(); for k in "${!ARGV[@]}"; do envs+=("$k=${ARGV[$k]}"); done
        echo "# RUN ${args:0:100}..."
        if ! in_root "${envs[@]}" -- /bin/sh -c "$args" > "$WORK/run.log" 2>&1; then
            tail -20 "$WORK/run.log"; bad "RUN ${args:0:60}"; replay_ok=no
        fi ;;
    COPY)
        read -r from src dst <<< "$args"
        if [ "$from" != --from=build ]; then bad "COPY without --from=build: $args"; replay_ok=no; continue; fi
        s=$OUT${src#/out}   # the build stage installs into DESTDIR=/out
        if [ ! -e "$s" ]; then bad "COPY source $src not in make install's output"; replay_ok=no; continue; fi
        mkdir -p "$RFS$(dirname "$dst")"
        if [ -d "$s" ]; then mkdir -p "$RFS$dst" && cp -a "$s/." "$RFS$dst/"; else cp -a "$s" "$RFS$dst"; fi
        echo "# COPY --from=build $src $dst" ;;
    USER) IMG_USER=$args ;;
    WORKDIR) IMG_WORKDIR=$args ;;
    ENTRYPOINT) ENTRY=$args ;;
    CMD) CMD=$args ;;
    EXPOSE|STOPSIGNAL) ;;
    *) bad "instruction $ins is not replayed by container-test.sh"; replay_ok=no ;;
    esac
done < <(parse runtime)
check "runtime stage replayed (ARG, RUN, COPY, USER, WORKDIR, ENTRYPOINT, CMD)" test "$replay_ok" = yes

# ---- 4. the image's contents, as the image's user ----------------------------------------
echo "# 4. run as USER $IMG_USER in WORKDIR $IMG_WORKDIR"
json_list() { "$PYTHON" -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$1"; }
mapfile -t ENTRY_V < <(json_list "$ENTRY")
mapfile -t CMD_V < <(json_list "$CMD")
as_user() { # as_user [--net] ENV... -- ARGS...  (runs ENTRYPOINT ARGS as USER in WORKDIR)
    local pre=()
    [ "$1" = --net ] && { pre=(--net); shift; }
    while [ "$1" != -- ]; do pre+=("$1"); shift; done; shift
    # shellcheck disable=SC2016  # expanded by the inner sh
    in_root "${pre[@]}" HOME=/var/lib/bedrock-cost-exporter -- setpriv --reuid="${IMG_USER%%:*}" \
        --regid="${IMG_USER##*:}" --clear-groups sh -c 'cd "$1" && shift && exec "$@"' sh "$IMG_WORKDIR" "$@"
}
check "ldd: every library resolved in the runtime root" \
    sh -c "! chroot '$RFS' ldd /usr/bin/bedrock-cost-exporter | grep -q 'not found'"
check "no compiler or -dev package in the runtime root" sh -c \
    "! chroot '$RFS' dpkg-query -W -f='\${Package}\n' | grep -qE '^(gcc|cpp|make|.*-dev)$'"
check "$IMG_USER owns /var/lib/bedrock-cost-exporter" \
    test "$(stat -c %u:%g "$RFS/var/lib/bedrock-cost-exporter")" = "$IMG_USER"
v=$(as_user -- "${ENTRY_V[@]}" --version 2>&1)
check "--version: $v" sh -c "echo '$v' | grep -q '^bedrock-cost-exporter '"
as_user -- "${ENTRY_V[@]}" "${CMD_V[@]}" --check-config > "$WORK/check.log" 2>&1; rc=$?
check "ENTRYPOINT CMD --check-config on the image's config: exit $rc" test "$rc" = 0

# The container: its own network namespace (loopback only), the fake AWS inside it, a config
# mounted over the image's, ENTRYPOINT + CMD as USER, then STOPSIGNAL.
sed -e 's|https://bedrock-mantle.{region}.api.aws/v1|http://127.0.0.1:FAKEPORT/mantle/{region}/v1|' \
    -e 's|https://ce.us-east-1.amazonaws.com|http://127.0.0.1:FAKEPORT/ce|' \
    -e 's|https://sts.{region}.amazonaws.com|http://127.0.0.1:FAKEPORT/sts|' \
    -e 's|imds_enabled = true;|imds_enabled = false;|' \
    "$ROOT/etc/bedrock-cost-exporter.conf" > "$WORK/mounted.conf.in"
cat > "$WORK/in-netns.sh" <<'EOF'
#!/bin/bash
# runs inside `unshare --net --mount`: loopback up, fake AWS, config mount, the "container"
set -u
WORK=$1 RFS=$2 PYTHON=$3 ROOT=$4 PORT=$5 UID_GID=$6 WORKDIR=$7; shift 7
ip link set lo up
"$PYTHON" "$ROOT/tests/fake_aws/fake_aws.py" --host 127.0.0.1 --port 0 --port-file "$WORK/fake.port" --quiet &
fake=$!
for _ in $(seq 100); do [ -s "$WORK/fake.port" ] && break; sleep 0.1; done
sed "s/FAKEPORT/$(cat "$WORK/fake.port")/" "$WORK/mounted.conf.in" > "$WORK/mounted.conf"
chmod 0644 "$WORK/mounted.conf"
mount --bind "$WORK/mounted.conf" "$RFS/etc/bedrock-cost-exporter/bedrock-cost-exporter.conf"
mount -t proc proc "$RFS/proc"; mount --rbind /dev "$RFS/dev"
chroot "$RFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/lib/bedrock-cost-exporter \
    BEDROCK_API_KEY=demo-bedrock-api-key AWS_ACCESS_KEY_ID=AKIDFAKEEXAMPLE \
    AWS_SECRET_ACCESS_KEY=fake/secret/EXAMPLEKEY \
    setpriv --reuid="${UID_GID%%:*}" --regid="${UID_GID##*:}" --clear-groups \
    sh -c 'cd "$1" && shift && exec "$@"' sh "$WORKDIR" "$@" > "$WORK/exporter.log" 2>&1 &
exp=$!
get() { "$PYTHON" -c '
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
    c.request("GET", sys.argv[2]); r = c.getresponse(); sys.stdout.buffer.write(r.read()); sys.exit(0 if r.status == 200 else 1)
except OSError:
    sys.exit(1)' "$PORT" "$1"; }
ready=no
for _ in $(seq 300); do get /-/ready >/dev/null && { ready=yes; break; }; sleep 0.1; done
echo "ready=$ready"
get /metrics > "$WORK/metrics"; echo "metrics=$?"
for _ in $(seq 50); do [ -s "$RFS/var/lib/bedrock-cost-exporter/state.json" ] && break; sleep 0.1; done
echo "state_owner=$(stat -c %u:%g "$RFS/var/lib/bedrock-cost-exporter/state.json" 2>/dev/null)"
t0=$(date +%s%N)
kill -TERM "$exp"      # STOPSIGNAL
# the chroot'd process is exp's exec chain; wait for it
wait "$exp"; rc=$?
echo "stop_rc=$rc stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
kill "$fake"; wait "$fake" 2>/dev/null
EOF
chmod +x "$WORK/in-netns.sh"
unshare --net --mount --propagation private --fork "$WORK/in-netns.sh" "$WORK" "$RFS" "$PYTHON" "$ROOT" \
    "$default_port" "$IMG_USER" "$IMG_WORKDIR" "${ENTRY_V[@]}" "${CMD_V[@]}" > "$WORK/container.out" 2>&1
val() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" "$WORK/container.out" | tail -1; }
check "container: /-/ready 200 on :$default_port against the fake AWS" test "$(val ready)" = yes \
    || tail -20 "$WORK/exporter.log" "$WORK/container.out"
check "container: /metrics 200" test "$(val metrics)" = 0
check "container: /metrics lists the fake's projects" \
    grep -q 'bedrock_cost_project_info{.*project_name="CustomerChatbot-Prod"' "$WORK/metrics"
check "container: per-project cost" grep -q '^bedrock_cost_project_month_to_date_usd{' "$WORK/metrics"
check "container: state file written by $IMG_USER" test "$(val state_owner)" = "$IMG_USER"
check "container: the log shows the mounted config in use" grep -q 'config=/etc/bedrock-cost-exporter/bedrock-cost-exporter.conf' "$WORK/exporter.log"
check "container: STOPSIGNAL SIGTERM -> exit 0 ($(val stop_ms) ms, docker stop allows 10000)" \
    sh -c "test '$(val stop_rc)' = 0 && test '$(val stop_ms)' -lt 10000"
check "container: no secret in the log" sh -c "! grep -qE 'demo-bedrock-api-key|fake/secret/EXAMPLEKEY' '$WORK/exporter.log'"

finish
