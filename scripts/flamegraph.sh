#!/usr/bin/env bash
# Flame graphs of our nodes under the loads of scripts/bench.sh, as used in
# docs/PERFORMANCE.md.
#
#   scripts/flamegraph.sh SCENARIO [OUT.svg]
#
# SCENARIO (the figure numbers of scripts/bench.sh):
#   server-1    the server, 1 connection without pipelining, --fsync never
#               (unpinned: figure 1u)
#   server-2    the server, 50 connections x pipeline 16, --fsync never
#   server-3    the server, 50 connections x pipeline 16, --fsync always
#   cluster-4   the headnode and its three datanodes, 50 x 16, --fsync never
# OUT defaults to target/flamegraphs/SCENARIO.svg.
#
# Starts everything on 127.0.0.1 in a temporary folder, loads it with
# loadgen, samples the node(s) with `perf record -e cpu-clock --call-graph
# dwarf` for FLAME_SECONDS (default 5) and folds the samples with inferno.
# Needs perf (Debian's linux-perf; installed with apt-get if missing) and
# inferno (installed from crates.io into target/inferno if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

scenario=${1:-}
case $scenario in
server-1 | server-2 | server-3 | cluster-4) ;;
*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
out=${2:-target/flamegraphs/$scenario.svg}
seconds=${FLAME_SECONDS:-5}
say() { printf 'flamegraph: %s\n' "$*" >&2; }

if ! command -v perf >/dev/null; then
    say "installing perf (linux-perf)"
    apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
fi
inferno=$repo/target/inferno/bin
if [[ ! -x $inferno/inferno-flamegraph ]]; then
    say "installing inferno into target/inferno"
    cargo install --quiet --locked inferno --version 0.12.8 --root "$repo/target/inferno"
fi

say "building the release binaries"
cargo build --quiet --release --locked -p server -p headnode -p datanode -p loadgen
bin=$repo/target/release

work=$(mktemp -d "${TMPDIR:-/tmp}/inf343-flame.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start NAME ARGS...: starts a node in the background, logging to $work.
start() {
    local name=$1
    shift
    RUST_LOG=info "$@" 2>"$work/$name.log" &
    pids+=("$!")
}
# listening NAME: the address the node logged, once it did.
listening() {
    local addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/$1.log" | head -n 1)
        [[ -n $addr ]] && break
        sleep 0.1
    done
    [[ -n $addr ]] || { say "$1 did not start: $(cat "$work/$1.log")"; exit 1; }
    echo "$addr"
}

connections=50 pipeline=16
case $scenario in
server-1 | server-2 | server-3)
    fsync=never
    [[ $scenario == server-3 ]] && fsync=always
    [[ $scenario == server-1 ]] && connections=1 pipeline=1
    start server "$bin/server" --listen 127.0.0.1:0 --dir "$work/server" --fsync "$fsync"
    profiled=${pids[-1]}
    addr=$(listening server)
    title="server, $connections x $pipeline, --fsync $fsync"
    ;;
cluster-4)
    start headnode "$bin/headnode" --listen 127.0.0.1:0 --dir "$work/headnode"
    profiled=${pids[-1]}
    addr=$(listening headnode)
    for n in 1 2 3; do
        start "datanode$n" "$bin/datanode" --headnode "$addr" --name "datanode$n" \
            --dir "$work/datanode$n"
        profiled+=",${pids[-1]}"
    done
    for n in 1 2 3; do
        for _ in $(seq 100); do
            grep -q "registered" "$work/datanode$n.log" && break
            sleep 0.1
        done
    done
    title="headnode and 3 datanodes, $connections x $pipeline, --fsync never"
    ;;
esac

# More messages than the sampling needs; the generator is stopped after it.
"$bin/loadgen" --connect "$addr" --connections "$connections" --pipeline "$pipeline" \
    --messages 1000000000 >/dev/null 2>"$work/loadgen.log" &
pids+=("$!")
sleep 1
say "sampling $title for ${seconds}s"
perf record --quiet -F 999 -e cpu-clock --call-graph dwarf,16384 -p "$profiled" \
    -o "$work/perf.data" -- sleep "$seconds" 2>"$work/perf.log"
mkdir -p "$(dirname "$out")"
perf script -i "$work/perf.data" 2>/dev/null |
    "$inferno/inferno-collapse-perf" --all >"$work/folded"
"$inferno/inferno-flamegraph" --minwidth 0.5 --title "$title (scripts/flamegraph.sh $scenario)" \
    <"$work/folded" >"$out"
say "wrote $out"
# A first reading: the share of samples in the kernel (frames marked _[k])
# and the frames with the most samples of their own.
awk '{ n = $NF; $NF = ""; sub(/ $/, ""); k = split($0, f, ";"); total += n
       if (f[k] ~ /_\[k\]$/) kernel += n }
     END { printf "flamegraph: %.1f%% of the samples in the kernel\n", 100 * kernel / total }' \
    "$work/folded" >&2
say "hottest frames (share of samples spent in the frame itself):"
awk '{ n = $NF; $NF = ""; sub(/ $/, ""); k = split($0, f, ";"); self[f[k]] += n; total += n }
     END { for (name in self) printf "%6.2f%%  %s\n", 100 * self[name] / total, name }' \
    "$work/folded" | sort -rn | head -n "${FLAME_TOP:-15}" >&2
