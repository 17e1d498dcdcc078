#!/usr/bin/env bash
# Container tests: the two Compose files run in real containers.
#
#   scripts/container-test.sh
#
# 1. Builds inf343-tarea1:latest without a registry (scripts/build-image.sh).
# 2. Activity 1 (docker-compose.yml): the client sends its messages and stops;
#    log.txt and respuestas.txt agree; `docker stop` of the server is quick
#    and clean. Then a client stopped mid-run (`docker stop`): quick, exit 1,
#    and every message it sent answered and logged.
# 3. Activity 2 (docker-compose.cluster.yml): every confirmed message is in
#    the data.txt of the datanode named; registro_server.txt and
#    registro_cliente.txt agree line for line; the heartbeats see all three
#    datanodes. The networks: the multicast probes are heard on the storage
#    network and not on the front one; from the front network the headnode
#    answers, the storage side (datanodes, the headnode's storage address)
#    cannot be reached.
# 4. Activity 2 again, killing a datanode while a pipelined client sends:
#    every message is still confirmed, the heartbeats see the node inactive,
#    and active again once it is started.
#
# Each run has its own Compose project and a temporary logs folder, removed
# at the end (containers, networks and volumes too), also on failure.
# Without a Docker engine the tests are skipped, except under CI=true, where
# that is a failure. Ends with `containers: N passed, M failed`.
#
# Environment: COMPOSE, the Compose command (default: docker-compose, else
# `docker compose`; .ci/run runs the tests once with each, the second via
# scripts/compose-v2.sh), KEEP_LOGS=1 keeps the logs folder,
# SKIP_IMAGE_BUILD=1 uses the image as is.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
checks() { python3 "$repo/scripts/container_checks.py" "$@"; }

suite=containers suite_long="container tests" ci_needs="Docker and Compose"
# shellcheck source=scripts/testlib.sh
. "$repo/scripts/testlib.sh"

# --- Is there a Docker engine and a Compose tool? ------------------------
command -v docker >/dev/null || skip_or_die "docker is not installed"
docker info >/dev/null 2>&1 || skip_or_die "the Docker engine does not answer (docker info)"
if [[ -n ${COMPOSE:-} ]]; then
    read -r -a compose <<<"$COMPOSE"
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    skip_or_die "neither docker-compose nor docker compose is installed"
fi
compose_version=$("${compose[@]}" version --short 2>/dev/null) ||
    skip_or_die "'${compose[*]} version' does not answer"
printf 'container tests with %s, version %s\n' "${compose[*]}" "$compose_version"
command -v python3 >/dev/null || skip_or_die "python3 is needed for the log checks"

# --- The image ---------------------------------------------------------------
if [[ ${SKIP_IMAGE_BUILD:-} != 1 ]]; then
    say "building the image without a registry (scripts/build-image.sh)"
    scripts/build-image.sh || { fail "build the image"; summary; exit 1; }
fi
image=${TAREA1_IMAGE:-inf343-tarea1:latest}
docker image inspect "$image" >/dev/null 2>&1 || { fail "image $image exists"; summary; exit 1; }
pass "image $image built without pulling ($(($(docker image inspect -f '{{.Size}}' "$image") / 1024)) KiB)"

# --- What every Compose run shares ------------------------------------------
logs=$(mktemp -d "${TMPDIR:-/tmp}/inf343-logs.XXXXXX")
export TAREA1_LOGS=$logs
export TAREA1_PULL_POLICY=never # never pull, never build: use the image above
unset TZ # the tests set it where they mean to
# Run as ourselves, in folders we create, so that we can read and remove
# every file afterwards.
export TAREA1_UID=${TAREA1_UID:-$(id -u)} TAREA1_GID=${TAREA1_GID:-$(id -g)}
mkdir -p "$logs"/activity1/{server,client} "$logs"/activity2/{headnode,client,datanode1,datanode2,datanode3}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Published on loopback only, on free ports, so that nothing else collides.
SERVER_PORT=127.0.0.1:$(free_port) HEADNODE_PORT=127.0.0.1:$(free_port)
SERVER_HTTP_PORT=127.0.0.1:$(free_port) HEADNODE_HTTP_PORT=127.0.0.1:$(free_port)
export SERVER_PORT HEADNODE_PORT SERVER_HTTP_PORT HEADNODE_HTTP_PORT

projects=()
run_id="inf343ct$$"
compose_for() { # PROJECT FILE ARGS...
    local project=$1 file=$2
    shift 2
    "${compose[@]}" -p "$project" -f "$repo/$file" "$@"
}
# Removes everything of a project. The repository's .env sets
# COMPOSE_IGNORE_ORPHANS, which docker-compose 1.29 refuses to combine with
# --remove-orphans (and then removes nothing).
teardown() { # PROJECT FILE
    COMPOSE_IGNORE_ORPHANS=false compose_for "$1" "$2" down -v --remove-orphans -t 2 >/dev/null 2>&1
}
down_all() {
    local entry
    for entry in "${projects[@]}"; do
        teardown "${entry%%:*}" "${entry#*:}"
    done
    if [[ ${KEEP_LOGS:-} == 1 ]]; then
        echo "logs kept in $logs"
    else
        rm -rf "$logs"
    fi
}
trap down_all EXIT
trap 'exit 130' INT TERM

up() { # PROJECT FILE: starts every service (compose waits for the healthchecks)
    projects+=("$1:$2")
    compose_for "$1" "$2" up -d --no-build
}
# Container id of a service (docker ps is much quicker than compose ps).
cid() {
    docker ps -aq --filter "label=com.docker.compose.project=$1" \
        --filter "label=com.docker.compose.service=$3"
}
# Exit code of a container, waiting at most $2 seconds for it to stop.
wait_exit() { timeout "$2" docker wait "$1" 2>/dev/null || echo "timeout"; }
now_ms() { date +%s%3N; }
# Waits (polling) until "$@" succeeds, for at most $1 seconds.
wait_until() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < deadline)) || return 1
        sleep 0.2
    done
}
show_logs() { compose_for "$1" "$2" logs --no-color --tail 30 >&2 || true; }

# Stops a container as `docker stop` does (SIGTERM, then SIGKILL after 10 s):
# passes if it exits by itself, with the expected status (default 0), in
# under 1.5 s (measured: 90-200 ms; the programs drain and exit at once).
check_stop() { # NAME CONTAINER [STATUS]
    local start end status want=${3:-0}
    start=$(now_ms)
    docker stop -t 10 "$2" >/dev/null
    end=$(now_ms)
    status=$(docker inspect -f '{{.State.ExitCode}}' "$2")
    if ((end - start < 1500)) && [[ $status == "$want" ]]; then
        pass "docker stop $1: $((end - start)) ms, exit status $status"
    else
        fail "docker stop $1: $((end - start)) ms, exit status $status (want < 1500 ms, $want)"
    fi
}
# Whether file $1 has at least $2 lines.
at_least() { [[ -f $1 ]] && (($(wc -l <"$1") >= $2)); }

# --- Activity 1 --------------------------------------------------------------
a1() {
    local p="${run_id}a1" f=docker-compose.yml
    say "Activity 1: $f (project $p)"
    local count=${A1_COUNT:-200}
    # TZ unset: the stamps follow the host's /etc/localtime, played here by
    # a zone far from UTC.
    if ! CLIENT_COUNT=$count TAREA1_LOCALTIME=/usr/share/zoneinfo/America/Santiago up "$p" "$f"; then
        fail "activity 1: compose up"
        show_logs "$p" "$f"
        return
    fi
    local client server status client_ip
    client=$(cid "$p" "$f" client)
    server=$(cid "$p" "$f" server)
    client_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$client")
    status=$(wait_exit "$client" 120)
    if [[ $status == 0 ]]; then
        pass "activity 1: the client sent its messages, all confirmed, and exited 0"
    else
        fail "activity 1: client exit status $status"
        show_logs "$p" "$f"
    fi
    if [[ $(docker inspect -f '{{.State.Running}}' "$server") == true ]]; then
        pass "activity 1: the server keeps serving after the client is done"
    else
        fail "activity 1: the server stopped with the client"
    fi
    if checks activity1 "$logs" --client-ip "$client_ip" --messages $((count + 1)) --tz America/Santiago; then
        pass "activity 1: log.txt and respuestas.txt agree, stamped in the host's zone (America/Santiago)"
    else
        fail "activity 1: log.txt and respuestas.txt"
    fi
    check_stop "server" "$server"
    teardown "$p" "$f"
}

# The client stopped in the middle of a long run, as `docker stop` or Ctrl-C
# under `compose up` do: it stops sending, records the answer to every
# message it sent, and exits 1 (interrupted) at once.
a1_stop() {
    local p="${run_id}a1s" f=docker-compose.yml
    say "Activity 1 with the client stopped mid-run (project $p)"
    rm -f "$logs/activity1/server/log.txt" "$logs/activity1/client/respuestas.txt"
    if ! CLIENT_COUNT=10000000 CLIENT_PIPELINE=16 up "$p" "$f"; then
        fail "activity 1 stop: compose up"
        show_logs "$p" "$f"
        return
    fi
    local client
    client=$(cid "$p" "$f" client)
    wait_until 60 at_least "$logs/activity1/client/respuestas.txt" 2000
    check_stop "client mid-run" "$client" 1
    if checks activity1 "$logs" --interrupted; then
        pass "activity 1 stop: every message the client sent is answered in respuestas.txt and in log.txt"
    else
        fail "activity 1 stop: log.txt and respuestas.txt"
    fi
    teardown "$p" "$f"
}

# --- Activity 2 --------------------------------------------------------------
nodes=(datanode1 datanode2 datanode3)
heartbeats="$logs/activity2/headnode/heartbeat_server.txt"

a2() {
    local p="${run_id}a2" f=docker-compose.cluster.yml
    say "Activity 2: $f (project $p)"
    local count=${A2_COUNT:-3000}
    # TZ by name overrides the host's zone: the image carries the zone database.
    if ! CLIENT_COUNT=$count CLIENT_PIPELINE=16 HEADNODE_HEARTBEAT_INTERVAL=1s HEADNODE_HEARTBEAT_TIMEOUT=500ms \
        TZ=Asia/Tokyo up "$p" "$f"; then
        fail "activity 2: compose up"
        show_logs "$p" "$f"
        return
    fi
    local client status node
    client=$(cid "$p" "$f" cluster-client)
    status=$(wait_exit "$client" 180)
    if [[ $status == 0 ]]; then
        pass "activity 2: the client's messages were all confirmed (exit 0)"
    else
        fail "activity 2: client exit status $status"
        show_logs "$p" "$f"
    fi
    if checks activity2 "$logs" "${nodes[@]}" --messages $((count + 1)); then
        pass "activity 2: data.txt files, registro_server.txt and registro_cliente.txt agree"
    else
        fail "activity 2: data.txt files and registros"
    fi
    if checks stamps "$logs/activity2/client/registro_cliente.txt" --tz Asia/Tokyo; then
        pass "activity 2: TZ=Asia/Tokyo overrides the host's zone"
    else
        fail "activity 2: TZ=Asia/Tokyo"
    fi
    local missing=()
    for node in "${nodes[@]}"; do
        wait_until 20 checks heartbeat "$heartbeats" "$node" active || missing+=("$node")
    done
    if ((${#missing[@]} == 0)) && checks heartbeat-format "$heartbeats"; then
        pass "activity 2: heartbeat_server.txt shows all three datanodes active"
    else
        fail "activity 2: no active heartbeat line for: ${missing[*]}"
    fi
    if wait_until 20 checks status "http://$HEADNODE_HTTP_PORT" "${nodes[@]}"; then
        pass "activity 2: the status page, published at $HEADNODE_HTTP_PORT, shows the three datanodes active"
    else
        fail "activity 2: the status page at $HEADNODE_HTTP_PORT"
        checks status "http://$HEADNODE_HTTP_PORT" "${nodes[@]}"
    fi
    a2_networks "$p" "$f"
    check_stop "headnode" "$(cid "$p" "$f" headnode)"
    check_stop "datanode1" "$(cid "$p" "$f" datanode1)"
    teardown "$p" "$f"
}

# Address of container $1 on network $2.
ip_on() { docker inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }
# `client --ping` from a fresh container on network $1; prints its stderr.
ping_from() { # NETWORK ADDR:PORT
    docker run --rm --network "$1" --user "$TAREA1_UID:$TAREA1_GID" --cap-drop ALL "$image" \
        client --ping --connect "$2" --connect-timeout 2s 2>&1 >/dev/null
}

# The two networks of Activity 2, while its cluster runs.
a2_networks() { # PROJECT FILE
    local p=$1 f=$2 head datanode storage=${1}_storage front=${1}_front
    head=$(cid "$p" "$f" headnode)
    datanode=$(cid "$p" "$f" datanode2)
    local head_storage head_front datanode_ip
    head_storage=$(ip_on "$head" "$storage")
    head_front=$(ip_on "$head" "$front")
    datanode_ip=$(ip_on "$datanode" "$storage")
    # Heard from inside the containers' network namespaces (needs root).
    if [[ $(id -u) == 0 ]] && command -v nsenter >/dev/null; then
        local pid
        pid=$(docker inspect -f '{{.State.Pid}}' "$datanode")
        if nsenter -t "$pid" -n python3 "$repo/scripts/container_checks.py" probe \
            --interface "$datanode_ip" --source "$head_storage"; then
            pass "activity 2 networks: datanode2 hears the multicast probes from the headnode's storage address"
        else
            fail "activity 2 networks: no multicast probe heard on the storage network"
        fi
        pid=$(docker inspect -f '{{.State.Pid}}' "$head")
        if nsenter -t "$pid" -n python3 "$repo/scripts/container_checks.py" probe \
            --interface "$head_front" --none --timeout 3; then
            pass "activity 2 networks: no probe goes out on the front network"
        else
            fail "activity 2 networks: probes go out on the front network"
        fi
    else
        printf 'SKIP  activity 2 networks: capturing the probes needs root and nsenter\n'
    fi
    local err
    if err=$(ping_from "$front" "$head_front:10000"); then
        pass "activity 2 networks: from the front network the headnode answers PING"
    else
        fail "activity 2 networks: the headnode does not answer on the front network: $err"
    fi
    # A timeout, not a refusal: a refusal would come from a host that the
    # packets reached.
    local target
    for target in "datanode2 $datanode_ip:10000" "the headnode's storage address $head_storage:10000"; do
        if err=$(ping_from "$front" "${target##* }"); then
            fail "activity 2 networks: the front network reaches ${target% *}"
        elif [[ $err == *"timed out"* ]]; then
            pass "activity 2 networks: the front network cannot reach ${target% *} (connect timed out)"
        else
            fail "activity 2 networks: ${target% *} from the front network: $err"
        fi
    done
    if err=$(ping_from "$front" "datanode1:10000") || [[ $err != *"lookup"* ]]; then
        fail "activity 2 networks: the name datanode1 resolves on the front network: $err"
    else
        pass "activity 2 networks: the name datanode1 does not resolve on the front network"
    fi
}

# --- Activity 2, losing a datanode while the client sends --------------------
a2_kill() {
    local p="${run_id}a2k" f=docker-compose.cluster.yml victim=datanode2
    say "Activity 2 with $victim killed mid-run (project $p)"
    rm -rf "${logs:?}"/activity2/*/*
    local count=${A2_KILL_COUNT:-600000}
    if ! CLIENT_COUNT=$count CLIENT_PIPELINE=32 \
        HEADNODE_HEARTBEAT_INTERVAL=1s HEADNODE_HEARTBEAT_TIMEOUT=500ms up "$p" "$f"; then
        fail "activity 2 kill: compose up"
        show_logs "$p" "$f"
        return
    fi
    local client victim_id registro="$logs/activity2/client/registro_cliente.txt"
    client=$(cid "$p" "$f" cluster-client)
    victim_id=$(cid "$p" "$f" "$victim")
    # Kill the node (SIGKILL: no goodbye) once the client is under way.
    wait_until 60 at_least "$registro" 2000
    docker kill "$victim_id" >/dev/null
    local running sent_before
    running=$(docker inspect -f '{{.State.Running}}' "$client")
    sent_before=$(checks count "$registro")
    local killed_at
    killed_at=$(checks count "$heartbeats")
    if [[ $running == true ]]; then
        pass "activity 2 kill: $victim killed (SIGKILL) with the client still sending ($sent_before answers so far)"
    else
        fail "activity 2 kill: the client had already finished ($sent_before messages); raise A2_KILL_COUNT"
    fi
    local status
    status=$(wait_exit "$client" 300)
    if [[ $status == 0 ]]; then
        pass "activity 2 kill: every message still confirmed (client exit 0, $(checks count "$registro") messages)"
    else
        fail "activity 2 kill: client exit status $status"
        show_logs "$p" "$f"
    fi
    if checks activity2 "$logs" "${nodes[@]}" --killed "$victim" --messages $((count + 1)); then
        pass "activity 2 kill: every confirmed message is in the data.txt named"
    else
        fail "activity 2 kill: data.txt files and registros"
    fi
    if wait_until 20 checks heartbeat "$heartbeats" "$victim" inactive --after-line "$killed_at"; then
        pass "activity 2 kill: heartbeat_server.txt shows $victim inactive"
    else
        fail "activity 2 kill: no 'inactive' heartbeat line for $victim"
    fi
    local inactive_at
    inactive_at=$(checks count "$heartbeats")
    compose_for "$p" "$f" start "$victim" >/dev/null 2>&1
    if wait_until 30 checks heartbeat "$heartbeats" "$victim" active --after-line "$inactive_at"; then
        pass "activity 2 kill: $victim active again after compose start"
    else
        fail "activity 2 kill: $victim not active again after compose start"
        show_logs "$p" "$f"
    fi
    teardown "$p" "$f"
}

# --- Both activities from one folder -----------------------------------------
# Run from the same folder, both files make one Compose project (the
# folder's name; here one -p for both). Each must come up, run again and go
# down in any order with no effect on the other, and with no orphan warning.
together() {
    local p="${run_id}both" a1=docker-compose.yml a2=docker-compose.cluster.yml
    say "Both activities as one project (project $p)"
    local -x SERVER_PORT=127.0.0.1:$(free_port) HEADNODE_PORT=127.0.0.1:$(free_port)
    local -x SERVER_HTTP_PORT=127.0.0.1:$(free_port) HEADNODE_HTTP_PORT=127.0.0.1:$(free_port)
    rm -rf "${logs:?}"/activity1/*/* "${logs:?}"/activity2/*/*
    local out="$logs/compose-output.txt"
    projects+=("$p:$a1" "$p:$a2")
    : >"$out"
    # Activity 1 up, then Activity 2 beside it.
    CLIENT_COUNT=20 compose_for "$p" "$a1" up -d --no-build >>"$out" 2>&1 &&
        CLIENT_COUNT=20 compose_for "$p" "$a2" up -d --no-build >>"$out" 2>&1 ||
        { fail "together: up of both"; cat "$out" >&2; return; }
    local c1 c2
    c1=$(cid "$p" "$a1" client)
    c2=$(cid "$p" "$a2" cluster-client)
    if [[ $(wait_exit "$c1" 120) == 0 && $(wait_exit "$c2" 120) == 0 ]]; then
        pass "together: both clients ran side by side and exited 0"
    else
        fail "together: client exit statuses $(docker inspect -f '{{.State.ExitCode}}' "$c1" "$c2" | tr '\n' ' ')"
        show_logs "$p" "$a2"
    fi
    # Activity 1 down while Activity 2 runs: Activity 2 keeps running and
    # runs its client again.
    compose_for "$p" "$a1" down -t 2 >>"$out" 2>&1
    local before
    before=$(checks count "$logs/activity2/client/registro_cliente.txt")
    if [[ $(docker inspect -f '{{.State.Running}}' "$(cid "$p" "$a2" headnode)") == true ]] &&
        compose_for "$p" "$a2" start cluster-client >>"$out" 2>&1 &&
        [[ $(wait_exit "$c2" 120) == 0 ]] &&
        (($(checks count "$logs/activity2/client/registro_cliente.txt") == before + 21)); then
        pass "together: Activity 1 down, Activity 2 still up and its client runs again"
    else
        fail "together: Activity 2 after Activity 1 went down"
        tail -20 "$out" >&2
    fi
    # The other order: Activity 1 up again beside it, Activity 2 down,
    # Activity 1's client run again with `start client`.
    CLIENT_COUNT=20 compose_for "$p" "$a1" up -d --no-build >>"$out" 2>&1
    c1=$(cid "$p" "$a1" client)
    wait_exit "$c1" 120 >/dev/null
    compose_for "$p" "$a2" down -t 2 >>"$out" 2>&1
    before=$(checks count "$logs/activity1/client/respuestas.txt")
    if compose_for "$p" "$a1" start client >>"$out" 2>&1 &&
        [[ $(wait_exit "$c1" 120) == 0 ]] &&
        (($(checks count "$logs/activity1/client/respuestas.txt") == before + 21)); then
        pass "together: Activity 2 down, Activity 1's client runs again with start client"
    else
        fail "together: Activity 1 after Activity 2 went down"
        tail -20 "$out" >&2
    fi
    compose_for "$p" "$a1" down -t 2 >>"$out" 2>&1
    if grep -qi "orphan" "$out"; then
        fail "together: Compose warned about orphans: $(grep -i -m1 orphan "$out")"
    elif grep -qi -E "error|not found" "$out"; then
        fail "together: Compose said: $(grep -i -m1 -E "error|not found" "$out")"
    else
        pass "together: no orphan warning and no error from Compose"
    fi
}

# --- A newcomer's run: a normal user, plain `up`, files they own ---------------
# As a user who is not root, on a copy of the repository's files, with no
# variable set: plain `up` starts from the image that is there (no build,
# no pull) and every file under logs/ belongs to that user, who can delete
# it. CI runs as root, which would prove nothing, so the test makes a user.
newcomer() {
    say "A newcomer: plain up as a normal user"
    if [[ $(id -u) != 0 ]]; then
        printf 'SKIP  newcomer: creating a test user needs root\n'
        return
    fi
    local user=inf343ct home
    local -x SERVER_PORT=127.0.0.1:$(free_port) SERVER_HTTP_PORT=127.0.0.1:$(free_port)
    id "$user" >/dev/null 2>&1 || useradd --create-home --groups docker "$user" ||
        { fail "newcomer: useradd $user"; return; }
    home=$(mktemp -d "${TMPDIR:-/tmp}/inf343-newcomer.XXXXXX")
    chmod 755 "$home"
    # The folder's name is the project's: plain `up`, no -p.
    local p="${run_id}new"
    local tree="$home/$p"
    # The repository's own files, as a clone would hold them.
    mkdir -p "$tree"
    (cd "$repo" && git ls-files -co --exclude-standard -- docker-compose.yml \
        docker-compose.cluster.yml .env logs) | (cd "$repo" && xargs cp --parents -t "$tree")
    chown -R "$user:" "$home"
    projects+=("$p:docker-compose.yml")
    local as_user=(runuser -u "$user" -- env -u TAREA1_LOGS -u TAREA1_UID -u TAREA1_GID
        -u TAREA1_PULL_POLICY HOME="/home/$user" SERVER_PORT="$SERVER_PORT" SERVER_HTTP_PORT="$SERVER_HTTP_PORT" CLIENT_COUNT=20)
    local out
    if out=$(cd "$tree" && "${as_user[@]}" "${compose[@]}" up --exit-code-from client 2>&1); then
        pass "newcomer: plain up as $user ran Activity 1 to the end from the image there"
    else
        fail "newcomer: plain up as $user"
        printf '%s\n' "$out" | tail -20 >&2
    fi
    if printf '%s' "$out" | grep -q -E "Pulling|Building|pull access"; then
        fail "newcomer: plain up tried to pull or build: $(printf '%s' "$out" | grep -m1 -E 'Pulling|Building|pull access')"
    fi
    local foreign
    foreign=$(find "$tree/logs" ! -user "$user" | head -3)
    if [[ -z $foreign ]] && [[ -s $tree/logs/activity1/server/log.txt ]]; then
        pass "newcomer: every file under logs/ belongs to $user"
    else
        fail "newcomer: files not owned by $user: $foreign"
    fi
    if (cd "$tree" && "${as_user[@]}" "${compose[@]}" down -t 2 >/dev/null 2>&1) &&
        runuser -u "$user" -- rm -r "$tree/logs/activity1/server/log.txt" "$tree/logs/activity1/client/respuestas.txt"; then
        pass "newcomer: $user deletes the log files without sudo"
    else
        fail "newcomer: $user cannot delete the log files"
    fi
    # A folder the server cannot write: the reason, with the remedy, is in
    # the output of `up` itself.
    rm -f "$tree/logs/activity1/server/.log.txt.lock"
    chmod 555 "$tree/logs/activity1/server"
    out=$(cd "$tree" && "${as_user[@]}" "${compose[@]}" up --exit-code-from client 2>&1)
    chmod 755 "$tree/logs/activity1/server"
    if printf '%s' "$out" | grep -q "give --dir a folder"; then
        pass "newcomer: a log folder the server cannot write: up's own output says why and what to do"
    else
        fail "newcomer: no reason in up's output for a log folder the server cannot write"
        printf '%s\n' "$out" | tail -10 >&2
    fi
    (cd "$tree" && "${as_user[@]}" "${compose[@]}" down -t 2 >/dev/null 2>&1)
    rm -rf "$home"
}

# --- The cluster secret --------------------------------------------------------
# Activity 2 makes its secret on the first up (a fresh folder here), and a
# datanode container without it is refused and stops with status 2.
a2_secret() {
    local p="${run_id}sec" f=docker-compose.cluster.yml
    say "Activity 2: the cluster secret (project $p)"
    local -x TAREA1_SECRETS="$logs/secrets"
    mkdir -p "$TAREA1_SECRETS"
    if ! CLIENT_COUNT=20 up "$p" "$f"; then
        fail "secret: compose up"
        show_logs "$p" "$f"
        return
    fi
    local secret="$TAREA1_SECRETS/cluster_secret"
    if [[ $(wait_exit "$(cid "$p" "$f" cluster-client)" 120) == 0 ]] &&
        [[ $(stat -c '%a %u' "$secret") == "600 $(stat -c %u "$TAREA1_SECRETS")" ]]; then
        pass "secret: made on the first up (mode 600, the folder's owner's); the datanodes proved it"
    else
        fail "secret: $(stat -c '%a %U' "$secret" 2>&1), or the client failed"
        show_logs "$p" "$f"
    fi
    local out status
    out=$(docker run --rm --network "${p}_storage" --cap-drop ALL "$image" \
        datanode --headnode headnode:10000 --name datanode1 2>&1)
    status=$?
    if ((status == 2)) && grep -q -- "--cluster-secret-file" <<<"$out" &&
        docker logs "$(cid "$p" "$f" headnode)" 2>&1 | grep -q "did not prove it knows"; then
        pass "secret: a datanode container without it is refused and exits 2"
    else
        fail "secret: an impostor datanode exited $status: $(tail -1 <<<"$out")"
    fi
    compose_for "$p" "$f" down -v -t 2 >/dev/null 2>&1
}

a1
a1_stop
a2
a2_kill
together
newcomer
a2_secret
summary
((failed == 0))
