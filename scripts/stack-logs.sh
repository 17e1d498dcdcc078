#!/usr/bin/env bash
# Gathers the log files of the Swarm stack (docker-stack.yml) from every
# node into one tree, which `audit` and scripts/container_checks.py read.
#
#   scripts/stack-logs.sh                       # every node -> logs/collected
#   audit logs/collected
#   scripts/stack-logs.sh --out DIR --stack NAME [ENGINE...]
#
# Each task writes on the node it runs on, under the stack's log root
# (TAREA1_STACK_LOGS in docker-stack.yml). The script reads that folder on
# each node through the node's Docker engine: a container of the image,
# created (never started) with the folder mounted read-only, and `docker cp`
# out of it; so it needs no SSH file access or shell on the node, only its
# engine and the image, which the node has to run the stack anyway.
#
# ENGINE is a Docker context name or a daemon address for `docker -H`, such
# as ssh://me@node2. Without one: every node of the swarm, this one through
# this engine, the others as ssh://[STACK_SSH_USER@]ADDRESS, the address
# Swarm knows them by (`docker node inspect`). Nodes that are not part of
# the swarm (where the client ran, for example) can be named too.
#
# Into --out (default logs/collected) goes activity2/ with one folder per
# headnode, datanode and client; a file found on several nodes (a task
# that moved to another node while the stack ran) is merged in time order.
# While the stack runs, each service's own output (stderr) is saved beside
# its files as stderr.txt, as scripts/activity2.sh does. --out is replaced
# on every run, so it must be empty or one this script wrote.
#
# Options: --out DIR, --stack NAME (default tarea1), --root DIR (the log
# root on the nodes; default: the one the running stack mounts, else
# TAREA1_STACK_LOGS, else ./logs/stack, as docker-stack.yml).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

die() { printf 'stack-logs: %s\n' "$*" >&2; exit 1; }
say() { printf 'stack-logs: %s\n' "$*"; }

out=logs/collected stack=tarea1 root=""
engines=()
while (($#)); do
    case $1 in
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --stack) stack=${2:?--stack needs a name}; shift 2 ;;
        --root) root=${2:?--root needs a folder}; shift 2 ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) engines+=("$1"); shift ;;
    esac
done
image=${TAREA1_IMAGE:-inf343-tarea1:latest}
marker=.stack-logs # in --out: the folder is ours to replace

# The log root the running stack mounts at /logs (its activity2 folder).
if [[ -z $root ]]; then
    src=$(docker service inspect "${stack}_datanode" --format \
        '{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{if eq .Target "/logs"}}{{.Source}}{{end}}{{end}}' 2>/dev/null)
    [[ -n $src ]] || src=$(realpath -m "${TAREA1_STACK_LOGS:-./logs/stack}")/activity2
else
    src=$(realpath -m "$root")/activity2
fi

# Every node of the swarm, unless named.
if ((${#engines[@]} == 0)); then
    [[ $(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null) == true ]] ||
        die "this engine manages no swarm: name each node's engine (see --help)"
    while read -r self addr; do
        if [[ $self == true ]]; then
            engines+=(local)
        else
            engines+=("ssh://${STACK_SSH_USER:+$STACK_SSH_USER@}$addr")
        fi
    done < <(docker node ls --format '{{.Self}} {{.ID}}' |
        while read -r self id; do
            printf '%s %s\n' "$self" "$(docker node inspect --format '{{.Status.Addr}}' "$id")"
        done)
fi

if [[ -e $out && -n $(ls -A "$out" 2>/dev/null) && ! -e $out/$marker ]]; then
    die "$out holds files this script did not write; give an empty or new --out"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/inf343-stack-logs.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# 1. Each node's folder, as it is, into $work/N/.
n=0 names=()
for engine in "${engines[@]}"; do
    case $engine in
        local) docker=(docker) ;;
        *://*) docker=(docker -H "$engine") ;;
        *) docker=(docker --context "$engine") ;;
    esac
    name=$("${docker[@]}" info --format '{{.Name}}' 2>/dev/null) || { say "skipped $engine: its engine does not answer"; continue; }
    # --mount, not -v: a missing folder is an error, not a new empty one.
    if ! cid=$("${docker[@]}" create --network none --user 0:0 \
        --mount "type=bind,source=$src,target=/from,readonly" "$image" audit 2>&1); then
        say "nothing on $name: ${cid##*: }"
        continue
    fi
    n=$((n + 1)) names[n]=$name
    mkdir -p "$work/$n"
    "${docker[@]}" cp "$cid:/from/." - | tar -x --no-same-owner -C "$work/$n" ||
        say "could not copy everything from $name"
    "${docker[@]}" rm "$cid" >/dev/null
done
((n > 0)) || die "no node had $src"

# 2. One tree. Every line starts with its time stamp (README: The log
# files), and a file grows in time order, so a file from several nodes is
# merged on that stamp, each node's lines keeping their order.
rm -rf "$out"
mkdir -p "$out/activity2" && : >"$out/$marker" || exit 1
while read -r file; do
    parts=()
    from=()
    for ((i = 1; i <= n; i++)); do
        [[ -f $work/$i/$file ]] && parts+=("$work/$i/$file") && from+=("${names[i]}")
    done
    mkdir -p "$(dirname "$out/activity2/$file")"
    if ((${#parts[@]} == 1)); then
        cp "${parts[0]}" "$out/activity2/$file"
    else
        LC_ALL=C sort -m -s -k1,2 "${parts[@]}" >"$out/activity2/$file"
        say "$file: merged from ${from[*]}"
    fi
done < <(cd "$work" && find . -mindepth 2 -type f -name '*.txt' -printf '%P\n' | cut -d/ -f2- | sort -u)

# 3. What each service printed, while the stack exists (`docker service
# logs` gathers it from every node through the manager).
if docker service inspect "${stack}_headnode" >/dev/null 2>&1; then
    docker service logs --raw --timestamps "${stack}_headnode" >"$out/activity2/headnode/stderr.txt" 2>&1
    # Lines are prefixed with the task's name, <stack>_datanode.<slot>.<id>.
    docker service logs --timestamps --no-trunc "${stack}_datanode" 2>&1 |
        awk -v out="$out/activity2" -v svc="${stack}_datanode." '
            index($2, svc) == 1 || index($1, svc) == 1 {
                name = index($1, svc) == 1 ? $1 : $2
                slot = substr(name, length(svc) + 1); sub(/\..*/, "", slot)
                if (!(slot in made)) { system("mkdir -p \"" out "/datanode" slot "\""); made[slot] = 1 }
                print > (out "/datanode" slot "/stderr.txt")
            }'
fi
say "the log files of ${n} node(s) (${names[*]}) are in $out/activity2"
