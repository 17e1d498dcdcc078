#!/usr/bin/env bash
# The client of Activity 2, run once against the Swarm stack's headnode
# (docker-stack.yml) through its published port, as any client outside the
# swarm: it knows that address and nothing else. Not a service of the stack,
# since a service is restarted or runs once at deploy time; this runs when
# you type it, as often as you like.
#
#   scripts/stack-client.sh                                  # 127.0.0.1:${HEADNODE_PORT:-10000}
#   scripts/stack-client.sh --connect node1:10000 --count 1000 --pipeline 16
#
# Any flag of the client (`client --help`) may follow; the exit status is the
# client's (0: every message confirmed). It runs the image in this machine's
# network (--network host), so 127.0.0.1 and host names mean what they mean
# here, and appends to registro_cliente.txt in activity2/client/ of the
# stack's log root on this machine, where scripts/stack-logs.sh finds it.
#
# Environment: TAREA1_STACK_LOGS (default ./logs/stack, relative to the
# repository, as in docker-stack.yml), HEADNODE_PORT, TAREA1_IMAGE, and the
# client's own CLIENT_* variables (CLIENT_COUNT, CLIENT_PIPELINE, ...), TZ,
# RUST_LOG, as in the compose files.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

image=${TAREA1_IMAGE:-inf343-tarea1:latest}
port=${HEADNODE_PORT:-10000}
folder=$(realpath -m "${TAREA1_STACK_LOGS:-./logs/stack}")/activity2/client
# Made here, by whoever runs this, so that the client (--run-as-owner) and
# its file belong to that user rather than to root.
mkdir -p "$folder" || exit 2

# Root with only the two capabilities that --run-as-owner needs, as the
# stack's nodes (docker-stack.yml, x-node). `-e NAME` with no value passes
# a variable only when it is set here.
exec docker run --rm --network host --user 0:0 --read-only \
    --cap-drop ALL --cap-add SETUID --cap-add SETGID --security-opt no-new-privileges \
    -v "$folder:/logs" -v "${TAREA1_LOCALTIME:-/etc/localtime}:/etc/localtime:ro" \
    -e CLIENT_CONNECT="127.0.0.1:$port" -e CLIENT_LOG=/logs/registro_cliente.txt \
    -e CLIENT_RUN_AS_OWNER=true \
    -e CLIENT_COUNT -e CLIENT_SEED -e CLIENT_PIPELINE -e CLIENT_CONNECT_TIMEOUT \
    -e CLIENT_MAX_FRAME -e RUST_LOG -e TZ \
    "$image" client "$@"
