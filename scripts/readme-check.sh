#!/usr/bin/env bash
# Runs README.md's commands as written, so that the README cannot drift
# from what works.
#
#   scripts/readme-check.sh            # the "run it" block (Docker, no registry)
#   scripts/readme-check.sh --print test   # print a block's commands
#
# README.md marks each block it promises with a comment line
# `<!-- readme-check: NAME -->` just before the fence. This script:
#
# 1. clones the repository's HEAD into a temporary folder (a fresh clone:
#    only what is committed), as a user would;
# 2. runs the `run-without-registry` block there line by line, the way a
#    person does: a line with `up` runs in the background until the
#    activity's client has exited (it must exit 0), then gets Ctrl-C
#    (SIGINT) and must stop cleanly;
# 3. audits the log files that the run left in the clone's logs/ (the
#    image's `audit`, which exits 0 only when every guarantee holds).
#
# The `test` block is what .ci/run runs as its test step (`--print test`),
# so it is not run twice. The `run-with-registry` block needs a registry and
# is not run here. Host ports: free loopback ports through SERVER_PORT,
# HEADNODE_PORT and their _HTTP_PORT (the documented settings), so that
# nothing collides.
# Environment: COMPOSE, the compose command for `docker-compose` lines
# (default: as written).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD

# The commands of block NAME, one per line.
block() {
    awk -v name="$1" '
        $0 ~ "<!-- readme-check: " name " -->" { armed = 1; next }
        armed && /^```/ { if (inside) exit; inside = 1; next }
        inside { print }
    ' "$repo/README.md"
}

if [[ ${1:-} == --print ]]; then
    commands=$(block "${2:?--print NAME}")
    [[ -n $commands ]] || { echo "readme-check: README.md has no block '$2'" >&2; exit 1; }
    printf '%s\n' "$commands"
    exit 0
fi

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }

if ! docker info >/dev/null 2>&1; then
    if [[ ${CI:-} == true ]]; then
        echo "readme-check: FAILED: no Docker engine (CI=true needs one)" >&2
        exit 1
    fi
    echo "readme-check: skipped: no Docker engine"
    exit 0
fi

commands=$(block run-without-registry)
[[ -n $commands ]] || { echo "readme-check: README.md has no run-without-registry block" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/inf343-readme.XXXXXX")
clone=$work/tarea1
project=$(basename "$work" | tr -cd 'a-z0-9')tarea1
git clone --quiet "$repo" "$clone" || { echo "readme-check: git clone failed" >&2; exit 1; }
cleanup() {
    for file in docker-compose.yml docker-compose.cluster.yml; do
        (cd "$clone" && docker-compose -p "$project" -f "$file" down -t 2 >/dev/null 2>&1)
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export SERVER_PORT=127.0.0.1:$(free_port) HEADNODE_PORT=127.0.0.1:$(free_port)
export SERVER_HTTP_PORT=127.0.0.1:$(free_port) HEADNODE_HTTP_PORT=127.0.0.1:$(free_port)
export COMPOSE_PROJECT_NAME=$project CLIENT_COUNT=${CLIENT_COUNT:-200}
# The first build of a fresh clone reuses this checkout's compiled crates.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
read -r -a compose_cmd <<<"${COMPOSE:-docker-compose}"

# The activity's client container, once it exists.
client_of() { # COMPOSE-FILE
    local service=client
    [[ $1 == *cluster* ]] && service=cluster-client
    docker ps -aq --filter "label=com.docker.compose.project=$project" \
        --filter "label=com.docker.compose.service=$service"
}

# Runs one `up` line as a person does: waits for the client to finish, then
# presses Ctrl-C.
run_up() { # LINE
    local line=$1 file=docker-compose.yml words
    [[ $line == *docker-compose.cluster.yml* ]] && file=docker-compose.cluster.yml
    read -r -a words <<<"$line"
    words=("${compose_cmd[@]}" "${words[@]:1}")
    local out=$work/up-$file.txt
    (cd "$clone" && exec setsid "${words[@]}") >"$out" 2>&1 &
    local up=$! client="" deadline=$((SECONDS + 180))
    while ((SECONDS < deadline)); do
        client=$(client_of "$file")
        [[ -n $client && $(docker inspect -f '{{.State.Status}}' "$client") == exited ]] && break
        sleep 0.5
    done
    local status=timeout
    [[ -n $client ]] && status=$(docker inspect -f '{{.State.ExitCode}}' "$client")
    kill -INT -- "-$up" 2>/dev/null
    local stopped=no
    for _ in $(seq 60); do
        kill -0 "$up" 2>/dev/null || { stopped=yes; break; }
        sleep 0.5
    done
    wait "$up" 2>/dev/null
    if [[ $status == 0 && $stopped == yes ]]; then
        pass "$line: the client exited 0, Ctrl-C stopped the rest"
    else
        fail "$line: client exit status $status, stopped on Ctrl-C: $stopped"
        tail -20 "$out" >&2
    fi
}

printf 'readme-check: the run-without-registry block of README.md, in a fresh clone\n'
while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    if [[ $line == docker-compose*" up"* ]]; then
        run_up "$line"
    elif (cd "$clone" && bash -c "$line") >"$work/step.txt" 2>&1; then
        pass "$line"
    else
        fail "$line"
        tail -20 "$work/step.txt" >&2
    fi
done <<<"$commands"

image=${TAREA1_IMAGE:-inf343-tarea1:latest}
if docker run --rm -v "$clone/logs:/logs:ro" "$image" audit /logs >"$work/audit.txt" 2>&1; then
    pass "audit of the logs the run left: every guarantee holds"
else
    fail "audit of the logs the run left"
    cat "$work/audit.txt" >&2
fi

printf '\nreadme-check: %d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
