#!/usr/bin/env bash
# Stack tests: Activity 2 as a Docker Swarm stack (docker-stack.yml) on a
# single-node swarm. See docs/SWARM.md.
#
#   scripts/stack-test.sh
#
# 1. Puts this engine in swarm mode (docker swarm init), unless it already
#    is, and deploys the stack under a name of its own, from the local image
#    (--resolve-image never), with its port published on a free port.
# 2. A client through the published port (scripts/stack-client.sh): every
#    confirmed message is in the data.txt its answer names, in the logs
#    that scripts/stack-logs.sh collects, and `audit` finds every guarantee
#    holds; the files belong to the owner of the log folder.
# 3. Scaled to 5: the new datanodes register and get messages. Scaled back
#    to 3 while a client sends: every message still confirmed, the two
#    stopped datanodes reported inactive.
# 4. A datanode's container killed (SIGKILL) while a client sends: every
#    message still confirmed, and Swarm replaces the task under the same
#    name, active again in heartbeat_server.txt.
# 5. `docker stack rm`: no service, container or network of the stack left.
#
# On exit, also after a failure or Ctrl-C: the stack is removed, a swarm the
# test created is left (with the docker_gwbridge network it brought, if it
# was not there before) and the logs folder deleted. A swarm that was there
# before is kept. Where the engine cannot enter swarm mode the tests are
# skipped, except under CI=true, where that is a failure. Ends with
# `stack: N passed, M failed`.
#
# Environment: KEEP_LOGS=1 keeps the logs folder, SKIP_IMAGE_BUILD=1 uses
# the image as is.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
checks() { python3 "$repo/scripts/container_checks.py" "$@"; }

suite=stack suite_long="stack tests" ci_needs="a Docker engine that can run a swarm"
# shellcheck source=scripts/testlib.sh
. "$repo/scripts/testlib.sh"
started=$(date +%s)

command -v docker >/dev/null || skip_or_die "docker is not installed"
docker info >/dev/null 2>&1 || skip_or_die "the Docker engine does not answer (docker info)"
command -v python3 >/dev/null || skip_or_die "python3 is needed for the log checks"

# --- The image ---------------------------------------------------------------
if [[ ${SKIP_IMAGE_BUILD:-} != 1 ]]; then
    say "building the image without a registry (scripts/build-image.sh)"
    scripts/build-image.sh || { fail "build the image"; summary; exit 1; }
fi
image=${TAREA1_IMAGE:-inf343-tarea1:latest}
docker image inspect "$image" >/dev/null 2>&1 || { fail "image $image exists"; summary; exit 1; }

# --- Names and folders of this run (the engine may be shared) ---------------
stack="inf343st$$"
# A port free on every address: mode host publishes on all of them.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])'; }
logs=$(mktemp -d "${TMPDIR:-/tmp}/inf343-stack.XXXXXX")
collected=$logs/collected
HEADNODE_PORT=$(free_port)
export TAREA1_STACK_LOGS=$logs/nodes TAREA1_IMAGE=$image HEADNODE_PORT
# Quick rounds, so that a change of state shows within a second or two.
export HEADNODE_HEARTBEAT_INTERVAL=1s HEADNODE_HEARTBEAT_TIMEOUT=500ms
unset TZ TAREA1_UID TAREA1_GID # the stack's defaults: root that becomes the folders' owner
node_logs=$TAREA1_STACK_LOGS/activity2
heartbeats=$node_logs/headnode/heartbeat_server.txt
registro=$node_logs/client/registro_cliente.txt
# The log folders belong to a user who is not root, as a clone of the
# repository would, so that --run-as-owner has someone to become. As root
# (CI) that is a uid of no one; otherwise ourselves.
owner="$(id -u):$(id -g)"
[[ $(id -u) == 0 ]] && owner=54321:54321
make_folders() { # NAME...
    local name
    for name; do
        mkdir -p "$node_logs/$name" && chown "$owner" "$node_logs/$name"
    done
}
mkdir -p "$node_logs" && chown "$owner" "$TAREA1_STACK_LOGS" "$node_logs"
make_folders headnode client datanode1 datanode2 datanode3

# --- Swarm mode: join only if not in it, and leave only what we joined -------
joined=false gwbridge_before=false deployed=false
docker network inspect docker_gwbridge >/dev/null 2>&1 && gwbridge_before=true
cleanup() {
    if [[ $deployed == true ]]; then
        docker stack rm "$stack" >/dev/null 2>&1
        wait_until 30 stack_gone
    fi
    if [[ $joined == true ]]; then
        docker swarm leave --force >/dev/null 2>&1
        # Leaving keeps the bridge that swarm mode made; remove it if it
        # was not there before (and nothing else uses it).
        [[ $gwbridge_before == true ]] || docker network rm docker_gwbridge >/dev/null 2>&1
    fi
    if [[ ${KEEP_LOGS:-} == 1 ]]; then
        echo "logs kept in $logs"
    else
        rm -rf "$logs"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (polling) until "$@" succeeds, for at most $1 seconds.
wait_until() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < deadline)) || return 1
        sleep 0.2
    done
}
# Whatever of the stack is still there (services, containers, networks).
stack_leftovers() {
    local label="label=com.docker.stack.namespace=$stack"
    docker service ls -q --filter "$label"
    docker ps -aq --filter "$label"
    docker network ls -q --filter "$label"
}
stack_gone() { [[ -z $(stack_leftovers) ]]; }

say "swarm mode"
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
case $state in
    inactive)
        # Managed on loopback and a port of its own, so that nothing outside
        # this machine can join it while it exists; overlay subnets from a
        # pool of their own, clear of Docker's default 10.0.0.0/8 that a
        # host network may use.
        if ! err=$(docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$(free_port)" \
            --default-addr-pool 10.213.0.0/16 2>&1 >/dev/null); then
            skip_or_die "this engine cannot enter swarm mode (docker swarm init: $err)"
        fi
        joined=true
        pass "docker swarm init: a single-node swarm of our own (left at the end)"
        ;;
    active)
        [[ $(docker info --format '{{.Swarm.ControlAvailable}}') == true ]] ||
            skip_or_die "this engine is a swarm worker; deploying needs a manager"
        printf 'the engine is already in swarm mode: using that swarm, and not leaving it\n'
        ;;
    *) skip_or_die "the engine's swarm state is '$state'" ;;
esac
nodes=$(docker node ls -q | wc -l)
((nodes == 1)) || skip_or_die "the swarm has $nodes nodes; the test reads the files on this one"

# --- Helpers -----------------------------------------------------------------
service=${stack}_datanode
# The running task of datanode slot $1: "TASK_ID CONTAINER_ID".
task_of_slot() {
    local task
    task=$(docker service ps "$service" --filter desired-state=running --format '{{.ID}} {{.Name}}' |
        awk -v name="$service.$1" '$2 == name { print $1; exit }')
    [[ -n $task ]] || return 1
    printf '%s %s\n' "$task" "$(docker inspect --format '{{.Status.ContainerStatus.ContainerID}}' "$task")"
}
# Whether slot $1's task is running in a container whose host name is
# datanode$1 (a task that replaces another takes its slot, so its name).
slot_running() {
    local ids container
    ids=$(task_of_slot "$1") || return 1
    container=${ids#* }
    [[ -n $container && $(docker inspect -f '{{.State.Running}} {{.Config.Hostname}}' "$container") == "true datanode$1" ]]
}
active_after() { checks heartbeat "$heartbeats" "$1" active --after-line "${2:-0}"; }
inactive_after() { checks heartbeat "$heartbeats" "$1" inactive --after-line "${2:-0}"; }
# The datanodes with no such heartbeat line after line MARK within the
# time; prints their names, and succeeds when there is none.
not_yet() { # active|inactive MARK SECONDS NODE...
    local state=$1 mark=$2 seconds=$3 node missing=()
    shift 3
    for node; do
        wait_until "$seconds" "${state}_after" "$node" "$mark" || missing+=("$node")
    done
    printf '%s' "${missing[*]}"
    ((${#missing[@]} == 0))
}
at_least() { [[ -f $1 ]] && (($(wc -l <"$1") >= $2)); }
show_logs() {
    docker service ps --no-trunc "$service" "${stack}_headnode" >&2
    docker service logs --tail 20 "${stack}_headnode" >&2
    docker service logs --tail 20 "$service" >&2
}
client() { scripts/stack-client.sh "$@" 2>&1 | tail -1; return "${PIPESTATUS[0]}"; }
sent=0 # messages of every client so far, "exit" included
# Every node of the swarm (here this one), as a person would collect them.
collect() { scripts/stack-logs.sh --stack "$stack" --out "$collected" >/dev/null; }
# The collected files: every confirmed message in the data.txt named, the
# registros line for line; and `audit` (exit 0: every guarantee holds).
check_files() { # WHAT NODES... [--killed NODE]
    local what=$1 out
    shift
    if ! collect; then
        fail "$what: scripts/stack-logs.sh collects the logs"
        return
    fi
    if checks activity2 "$collected" "$@" --messages "$sent"; then
        pass "$what: every confirmed message is in the data.txt its answer names (collected logs)"
    else
        fail "$what: the collected data.txt files and registros"
    fi
    if out=$(docker run --rm --network none --user 0:0 -v "$collected:/logs:ro" "$image" audit /logs 2>&1); then
        pass "$what: audit: every guarantee holds"
    else
        fail "$what: audit exit status $?"
        printf '%s\n' "$out" | grep -v '^    ok' | tail -25 >&2
    fi
}
# A long client in the background, for the changes made while it sends.
# Returns once it has 20,000 answers.
long_client() { # COUNT: sets client_pid
    local before
    before=$(checks count "$registro")
    scripts/stack-client.sh --count "$1" --pipeline 32 >"$logs/long-client.txt" 2>&1 &
    client_pid=$!
    sent=$((sent + $1 + 1))
    wait_until 60 at_least "$registro" $((before + 20000))
}
wait_client() { # WHAT
    local status
    wait "$client_pid"
    status=$?
    if [[ $status == 0 ]]; then
        pass "$1: every message still confirmed ($(tail -1 "$logs/long-client.txt"))"
    else
        fail "$1: client exit status $status: $(tail -1 "$logs/long-client.txt")"
        show_logs
    fi
}

# --- 1. Deploy -----------------------------------------------------------------
say "deploy the stack $stack (port $HEADNODE_PORT)"
deploy_out=$logs/deploy.txt
if docker stack deploy --resolve-image never -c docker-stack.yml "$stack" >"$deploy_out" 2>&1; then
    deployed=true
    pass "docker stack deploy --resolve-image never: deployed from the local image, no registry"
else
    deployed=true # partly, maybe: cleanup removes what there is
    fail "docker stack deploy: $(tail -3 "$deploy_out")"
    summary
    exit 1
fi
if grep -qi "ignoring\|unsupported" "$deploy_out"; then
    fail "docker stack deploy ignored part of the file: $(grep -i -m1 'ignoring\|unsupported' "$deploy_out")"
else
    pass "docker stack deploy used every key of docker-stack.yml (no 'Ignoring unsupported options')"
fi
if late=$(not_yet active 0 60 datanode1 datanode2 datanode3); then
    pass "datanode1..3 registered under their slot's names (heartbeat_server.txt: all active, tcp heartbeat)"
else
    fail "no active heartbeat line for $late"
    show_logs
fi

# --- 2. A client through the published port --------------------------------------
say "a client through the published port"
count=3000
sent=$((sent + count + 1))
if result=$(client --count "$count" --pipeline 16); then
    pass "client through 127.0.0.1:$HEADNODE_PORT: exit 0 ($result)"
else
    fail "client through 127.0.0.1:$HEADNODE_PORT: $result"
    show_logs
fi
check_files "3 datanodes" datanode1 datanode2 datanode3
if grep -q "listening on" "$collected/activity2/headnode/stderr.txt" &&
    grep -q "registered with headnode as datanode3" "$collected/activity2/datanode3/stderr.txt"; then
    pass "scripts/stack-logs.sh saved each service's output beside its files (headnode/, datanodeN/stderr.txt)"
else
    fail "no stderr.txt of the headnode or datanode3 in the collected logs"
fi
foreign=$(find "$TAREA1_STACK_LOGS" ! -user "${owner%%:*}" | head -3)
if [[ -z $foreign ]]; then
    pass "every file on the node belongs to the log folder's owner ($owner; --run-as-owner)"
else
    fail "files not owned by $owner: $foreign"
fi

# --- 3. Scale to 5 and back to 3 -------------------------------------------------
say "docker service scale $service=5, then back to 3"
make_folders datanode4 datanode5
mark=$(checks count "$heartbeats")
docker service scale --detach "$service=5" >/dev/null 2>&1
if late=$(not_yet active "$mark" 60 datanode4 datanode5); then
    pass "scaled to 5: datanode4 and datanode5 registered and are active"
else
    fail "scaled to 5: no active heartbeat line for $late"
    show_logs
fi
sent=$((sent + count + 1))
result=$(client --count "$count" --pipeline 16) || fail "client with 5 datanodes: $result"
check_files "5 datanodes" datanode1 datanode2 datanode3 datanode4 datanode5
for n in 4 5; do
    stored=$(checks count "$collected/activity2/datanode$n/data.txt")
    if ((stored > 0)); then
        pass "scaled to 5: datanode$n stored $stored messages"
    else
        fail "scaled to 5: datanode$n stored nothing"
    fi
done

# Down to 3 while a client sends: Swarm stops slots 4 and 5 (SIGTERM); they
# confirm what they took, and the headnode places the rest elsewhere.
long_client 400000
mark=$(checks count "$heartbeats")
docker service scale --detach "$service=3" >/dev/null 2>&1
if kill -0 "$client_pid" 2>/dev/null; then
    pass "scaled back to 3 while the client was still sending"
else
    fail "scaled back to 3 after the client had finished; raise its count"
fi
wait_client "scaled back to 3"
if late=$(not_yet inactive "$mark" 30 datanode4 datanode5) && [[ $(docker service ls --filter "name=$service" --format '{{.Replicas}}') == 3/3 ]]; then
    pass "scaled back to 3: 3/3 replicas, datanode4 and datanode5 reported inactive"
else
    fail "scaled back to 3: replicas $(docker service ls --filter "name=$service" --format '{{.Replicas}}'), no inactive line for $late"
fi
check_files "scaled back to 3" datanode1 datanode2 datanode3 datanode4 datanode5

# --- 4. A datanode's container killed mid-run -------------------------------------
victim=2
say "datanode$victim's container killed (SIGKILL) while a client sends"
read -r old_task old_container < <(task_of_slot "$victim") ||
    fail "no running task in slot $victim"
long_client 400000
mark=$(checks count "$heartbeats")
docker kill "$old_container" >/dev/null
if kill -0 "$client_pid" 2>/dev/null; then
    pass "datanode$victim killed with the client still sending"
else
    fail "datanode$victim killed after the client had finished; raise its count"
fi
wait_client "datanode$victim killed"
if wait_until 20 inactive_after "datanode$victim" "$mark"; then
    pass "datanode$victim reported inactive after the kill"
else
    fail "no inactive line for datanode$victim after the kill"
fi
mark=$(checks count "$heartbeats")
if wait_until 60 slot_running "$victim" && wait_until 30 active_after "datanode$victim" "$mark"; then
    read -r new_task _ < <(task_of_slot "$victim")
    if [[ $new_task != "$old_task" ]]; then
        pass "Swarm replaced the task (task $new_task for $old_task), host name datanode$victim, active again under its name"
    else
        fail "slot $victim still runs the killed task $old_task"
    fi
else
    fail "datanode$victim not replaced, or not active again, within 60 s"
    show_logs
fi
check_files "datanode$victim killed" datanode1 datanode2 datanode3 datanode4 datanode5 --killed "datanode$victim"
names=$(sed -n 's/^.* -> El \(\S*\) .*$/\1/p' "$heartbeats" | sort -u | tr '\n' ' ')
if [[ $names == "datanode1 datanode2 datanode3 datanode4 datanode5 " ]]; then
    pass "the heartbeat named only datanode1..5 all along: $names"
else
    fail "heartbeat_server.txt names $names"
fi

# --- 5. docker stack rm --------------------------------------------------------
say "docker stack rm $stack"
docker stack rm "$stack" >/dev/null 2>&1
if wait_until 60 stack_gone; then
    deployed=false
    pass "docker stack rm: no service, container or network of the stack left"
else
    fail "docker stack rm left: $(stack_leftovers | tr '\n' ' ')"
fi
if [[ $joined == true ]]; then
    joined=false
    docker swarm leave --force >/dev/null 2>&1
    [[ $gwbridge_before == true ]] || docker network rm docker_gwbridge >/dev/null 2>&1
    if [[ $(docker info --format '{{.Swarm.LocalNodeState}}') == inactive ]] &&
        ! docker network inspect ingress >/dev/null 2>&1 &&
        { [[ $gwbridge_before == true ]] || ! docker network inspect docker_gwbridge >/dev/null 2>&1; }; then
        pass "left the swarm: swarm mode off, no ingress or docker_gwbridge network left"
    else
        fail "after docker swarm leave: state $(docker info --format '{{.Swarm.LocalNodeState}}'), networks $(docker network ls --format '{{.Name}}' | grep -E 'ingress|gwbridge' | tr '\n' ' ')"
    fi
fi

printf '\nstack tests took %d s\n' $(($(date +%s) - started))
summary
((failed == 0))
