#!/usr/bin/env bash
# Runs the whole of Activity 2 on this machine, without Docker: builds the
# binaries, starts a headnode and three datanodes on loopback, runs the
# client against the headnode, waits for a heartbeat round, prints where
# every log file is, and stops everything (also on Ctrl-C or an error).
#
# Usage: scripts/activity2.sh [--debug] [--keep] [--append]
#   --debug   build and run the debug profile (faster to build, slower to run)
#   --keep    leave the cluster running after the client, until Ctrl-C
#             (run more clients against it, kill a datanode, watch heartbeats)
#   --append  keep the log files of earlier runs instead of starting afresh
#
# Settings (environment variables):
#   PORT                 headnode port on 127.0.0.1   (default 10000)
#   COUNT                messages the client sends    (default 20; the client
#                        then sends "exit")
#   SEED                 seed of the client's draw    (default: random)
#   PIPELINE             client requests in flight    (default 1)
#   PLACEMENT            random | round-robin | least-loaded (default random)
#   HEARTBEAT            multicast (over 127.0.0.1, as the course asked) |
#                        tcp (a PING on each link)   (default multicast)
#   HEARTBEAT_INTERVAL   time between heartbeat rounds (default 5s)
#   HEARTBEAT_TIMEOUT    time to answer a heartbeat    (default 2s, or 40%
#                        of the interval if shorter)
#   LOG_DIR              where the logs go  (default logs/local/activity2)
#   RUST_LOG             process log level  (default info)
set -euo pipefail

cd "$(dirname "$0")/.."

profile=release
keep=false
fresh=true
for arg in "$@"; do
    case "$arg" in
        --debug) profile=debug ;;
        --keep) keep=true ;;
        --append) fresh=false ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "activity2.sh: unknown option '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done

port="${PORT:-10000}"
count="${COUNT:-20}"
pipeline="${PIPELINE:-1}"
placement="${PLACEMENT:-random}"
heartbeat_mode="${HEARTBEAT:-multicast}"
interval="${HEARTBEAT_INTERVAL:-5s}"
timeout_flags=()
if [ -n "${HEARTBEAT_TIMEOUT:-}" ]; then
    timeout_flags=(--heartbeat-timeout "$HEARTBEAT_TIMEOUT")
fi
logs="${LOG_DIR:-logs/local/activity2}"
export RUST_LOG="${RUST_LOG:-info}"
datanodes=(datanode1 datanode2 datanode3)

step() { printf '\n== %s\n' "$*"; }

step "building (cargo, $profile profile)"
build_flags=(--locked --bin headnode --bin datanode --bin client)
if [[ "$profile" == release ]]; then
    build_flags+=(--release)
fi
cargo build "${build_flags[@]}"
target_dir="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target_dir/$profile"

if [[ "$fresh" == true ]]; then
    rm -f "$logs"/headnode/*.txt "$logs"/datanode*/*.txt "$logs"/client/*.txt
fi
mkdir -p "$logs/headnode" "$logs/client"
for name in "${datanodes[@]}"; do
    mkdir -p "$logs/$name"
done

# Every process we start, so that we stop exactly those.
pids=()
# shellcheck disable=SC2317  # reached through the traps below
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#pids[@]} > 0)); then
        step "stopping the cluster"
        # Datanodes first, so that the headnode's last heartbeat lines are
        # not about nodes that vanished during shutdown.
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
            kill -TERM "${pids[i]}" 2>/dev/null || true
        done
        for pid in "${pids[@]}"; do
            wait "$pid" 2>/dev/null || true
        done
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "starting the headnode on 127.0.0.1:$port ($heartbeat_mode heartbeat)"
"$bin/headnode" --listen "127.0.0.1:$port" --dir "$logs/headnode" \
    --placement "$placement" --heartbeat "$heartbeat_mode" \
    --heartbeat-interval "$interval" "${timeout_flags[@]}" \
    2>>"$logs/headnode/stderr.txt" &
pids+=("$!")
for _ in $(seq 100); do
    if grep -q "listening on" "$logs/headnode/stderr.txt" 2>/dev/null; then
        break
    fi
    if ! kill -0 "${pids[0]}" 2>/dev/null; then
        echo "the headnode exited; see $logs/headnode/stderr.txt:" >&2
        tail -n 5 "$logs/headnode/stderr.txt" >&2
        exit 1
    fi
    sleep 0.1
done

step "starting ${datanodes[*]}"
for name in "${datanodes[@]}"; do
    "$bin/datanode" --headnode "127.0.0.1:$port" --name "$name" \
        --dir "$logs/$name" 2>>"$logs/$name/stderr.txt" &
    pids+=("$!")
done

step "running the client ($count messages, then \"exit\")"
client_flags=(--connect "127.0.0.1:$port" --log "$logs/client/registro_cliente.txt"
    --count "$count" --pipeline "$pipeline")
if [[ -n "${SEED:-}" ]]; then
    client_flags+=(--seed "$SEED")
fi
client_status=0
"$bin/client" "${client_flags[@]}" 2>>"$logs/client/stderr.txt" || client_status=$?

heartbeat="$logs/headnode/heartbeat_server.txt"
if [[ "$keep" == false ]]; then
    step "waiting for a heartbeat round (every $interval)"
    lines_before=$(wc -l 2>/dev/null <"$heartbeat" || echo 0)
    for _ in $(seq 300); do
        lines_now=$(wc -l 2>/dev/null <"$heartbeat" || echo 0)
        if ((lines_now >= lines_before + ${#datanodes[@]})); then
            break
        fi
        sleep 0.1
    done
    tail -n "${#datanodes[@]}" "$heartbeat" 2>/dev/null || true
fi

step "log files"
cat <<EOF
  headnode   $logs/headnode/registro_server.txt
             $logs/headnode/heartbeat_server.txt
  datanodes  $logs/datanode1/data.txt
             $logs/datanode2/data.txt
             $logs/datanode3/data.txt
  client     $logs/client/registro_cliente.txt
  processes  $logs/*/stderr.txt
EOF
for name in "${datanodes[@]}"; do
    printf '  %s stored %s messages\n' "$name" "$(wc -l 2>/dev/null <"$logs/$name/data.txt" || echo 0)"
done

if [[ "$keep" == true ]]; then
    step "cluster running on 127.0.0.1:$port; Ctrl-C stops it"
    echo "  more clients:  $bin/client --connect 127.0.0.1:$port --log $logs/client/registro_cliente.txt --count 100"
    echo "  datanode pids: ${pids[*]:1}"
    wait "${pids[0]}" || true
fi
exit "$client_status"
