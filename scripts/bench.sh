#!/usr/bin/env bash
# Benchmarks the server and the headnode side by side with Redis, on
# loopback only, and prints one line per figure: our value, the baseline
# (Redis, or our own Activity 1, or the memory limit), the floor (figures 1
# and 2), our ratio to the baseline and our fraction of the floor, the target.
#
# One generator measures every side: loadgen, speaking our protocol to our
# nodes and the floor and Redis's (--protocol resp: RPUSH) to Redis. The
# floor is crates/loadgen/examples/floor.rs: frames, one write(2) of the
# lines per batch, then OK, on a plain blocking thread per connection.
# redis-benchmark runs beside them as a cross-check of the Redis figure
# (its own line, "cross-check"), never as the baseline. Figures 2 and 4
# are also measured with tagged messages (loadgen --tagged: SENDID, the
# exactly-once form) in the same rounds as plain SEND, on the same node:
# lines 2t and 4t, tagged over plain.
#
#   scripts/bench.sh           full run: installs redis-server/redis-tools
#                              from Debian if missing, release build, ~2 min
#   scripts/bench.sh --smoke   CI: debug build, tiny counts, checks only that
#                              every scenario ran with zero errors (never a
#                              timing); Redis only if already installed
#
# Settings (environment):
#   BENCH_SIZE=32            message size in bytes, ours and redis-benchmark -d
#   BENCH_RUNS=3             runs per throughput figure; the median is shown
#   BENCH_N1=100000          messages, figure 1 (one connection, no pipelining)
#   BENCH_N2=2000000         messages, figure 2 (50 connections, pipeline 16)
#   BENCH_N3=300000          messages, figure 3 (the same with fsync always)
#   BENCH_N4=1000000         messages, figure 4 (headnode and 3 datanodes)
#   BENCH_IDLE=1000          idle connections, figure 5
#   BENCH_IDLE_SECONDS=10    how long figure 6 watches idle nodes' CPU
#   BENCH_FIGURES="0 1 2 3 4 5 6"  which figures to measure (0, the generator's
#                            ceiling against a trivial sink, only in full mode;
#                            1 measures figure 1, pinned, and 1u, unpinned)
#   BENCH_PIN_CPU=0          the CPU that figure 1 pins each client-server pair
#                            to (ours and Redis alike; see docs/PERFORMANCE.md)
#   BENCH_REDIS_PORT=6399    port of the benchmark's own Redis
#   BENCH_PROFILE            cargo profile: release (full) or debug (smoke)
#   BENCH_HTTP=1             run the server and the headnode with their status
#                            page on (--http 127.0.0.1:0), to compare with off
#   BENCH_MAX_STEAL=5        a run during which the hypervisor took more than
#                            this percentage of the machine's CPU time (steal,
#                            /proc/stat) is run again, up to BENCH_STEAL_RETRIES=3
#                            times (0 with --smoke); the log says so
#   CARGO_TARGET_DIR         where the binaries are built (default target/)
#
# Every process it starts is killed on exit; every file lives in one
# temporary folder, removed on exit. Method and figures: docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full
case "${1:-}" in
    "") ;;
    --smoke) MODE=smoke ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: $0 [--smoke]" >&2
        exit 64
        ;;
esac

SIZE=${BENCH_SIZE:-32}
CONNS=50
PIPE=16
REDIS_PORT=${BENCH_REDIS_PORT:-6399}
if [[ $MODE == smoke ]]; then
    RUNS=${BENCH_RUNS:-1}
    N1=${BENCH_N1:-200}
    N2=${BENCH_N2:-4000}
    N3=${BENCH_N3:-1600}
    N4=${BENCH_N4:-4000}
    IDLE=${BENCH_IDLE:-50}
    IDLE_SECONDS=${BENCH_IDLE_SECONDS:-1}
    PROFILE=${BENCH_PROFILE:-debug}
else
    RUNS=${BENCH_RUNS:-3}
    N1=${BENCH_N1:-100000}
    N2=${BENCH_N2:-2000000}
    N3=${BENCH_N3:-300000}
    N4=${BENCH_N4:-1000000}
    IDLE=${BENCH_IDLE:-1000}
    IDLE_SECONDS=${BENCH_IDLE_SECONDS:-10}
    PROFILE=${BENCH_PROFILE:-release}
fi
MEMORY_LIMIT_MIB=50
MAX_STEAL=${BENCH_MAX_STEAL:-5}
# The smoke run measures nothing: a stolen run need not be repeated.
STEAL_RETRIES=${BENCH_STEAL_RETRIES:-$([[ $MODE == smoke ]] && echo 0 || echo 3)}
FIGURES=" ${BENCH_FIGURES:-0 1 2 3 4 5 6} "
want() { [[ $FIGURES == *" $1 "* ]]; }

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ---------------------------------------------------------------- clean-up

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
PIDS=()
# A command prefix for the processes of a pinned measurement (figure 1):
# empty, or taskset with the CPU.
PIN=()
PIN_CPU=${BENCH_PIN_CPU:-0}
REDIS_UP=no
REDIS_PID=""
# The floor of the figure being measured (figures 1 and 2), or none.
FLOOR_PID=""
FLOOR_ADDR=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ $REDIS_UP == yes ]]; then
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Give each a moment to drain, then make sure.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A thousand idle connections need a thousand descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- build

if [[ $PROFILE == release ]]; then
    PROFILE_FLAG=(--release)
else
    PROFILE_FLAG=()
fi
say "building the workspace ($PROFILE)"
cargo build "${PROFILE_FLAG[@]}" --workspace --locked --bins --quiet
cargo build "${PROFILE_FLAG[@]}" -p loadgen --example sink --example floor --locked --quiet
BIN="${CARGO_TARGET_DIR:-target}/$PROFILE"
need=(loadgen)
if want 1 || want 2 || want 3 || want 5 || want 6; then need+=(server); fi
if want 4 || want 6; then need+=(headnode datanode); fi
for bin in "${need[@]}"; do
    [[ -x $BIN/$bin ]] || die "$BIN/$bin was not built"
done

if [[ $MODE == full ]]; then
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
        say "installing redis-server and redis-tools from Debian"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            redis-server redis-tools >/dev/null
    fi
fi
HAVE_REDIS=no
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    HAVE_REDIS=yes
fi
# The cross-check only: the Redis figures come from loadgen.
HAVE_REDIS_BENCHMARK=no
if [[ $HAVE_REDIS == yes ]] && command -v redis-benchmark >/dev/null; then
    HAVE_REDIS_BENCHMARK=yes
fi

# ---------------------------------------------------------------- processes

# start NAME CMD... : starts CMD in the background with its stderr in
# $WORK/NAME.log, and waits for its "listening on <addr>" line. Sets PID
# and ADDR.
start() {
    local name=$1
    shift
    local log="$WORK/$name.log"
    # Created here, not by the background job's redirection, which may
    # come after the first look at it below (set -e would end the script).
    : >"$log"
    RUST_LOG=${RUST_LOG:-info} "${PIN[@]}" "$@" >/dev/null 2>"$log" &
    PID=$!
    PIDS+=("$PID")
    ADDR=""
    for _ in $(seq 200); do
        ADDR=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$log" | head -n 1)
        [[ -n $ADDR ]] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    die "$name did not start listening"
}

# stop PID: SIGTERM, as docker stop does, and wait.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wait_for_line FILE TEXT: waits up to 20 s for TEXT to appear in FILE.
wait_for_line() {
    for _ in $(seq 200); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$1" >&2
    die "no '$2' in $1"
}

# The status pages, on with BENCH_HTTP=1 (they must cost nothing unread).
HTTP=()
[[ ${BENCH_HTTP:-} == 1 ]] && HTTP=(--http 127.0.0.1:0)

start_floor() { # NAME: the write-and-answer floor, its lines in $WORK/NAME.txt
    start "$1" "$BIN/examples/floor" 127.0.0.1:0 "$WORK/$1.txt"
}

start_server() { # NAME FSYNC
    mkdir -p "$WORK/$1"
    start "$1" "$BIN/server" --listen 127.0.0.1:0 --dir "$WORK/$1" --fsync "$2" "${HTTP[@]}"
}

start_cluster() { # NAME FSYNC: a headnode and three datanodes
    mkdir -p "$WORK/$1"
    start "$1-headnode" "$BIN/headnode" --listen 127.0.0.1:0 --dir "$WORK/$1" --fsync "$2" "${HTTP[@]}"
    local head=$ADDR head_pid=$PID n
    CLUSTER_PIDS=("$head_pid")
    for n in 1 2 3; do
        mkdir -p "$WORK/$1/datanode$n"
        RUST_LOG=${RUST_LOG:-info} "$BIN/datanode" --headnode "$head" --name "datanode$n" \
            --dir "$WORK/$1/datanode$n" --fsync "$2" >/dev/null 2>"$WORK/$1-datanode$n.log" &
        PIDS+=("$!")
        CLUSTER_PIDS+=("$!")
    done
    for n in 1 2 3; do
        wait_for_line "$WORK/$1-datanode$n.log" "registered with headnode"
    done
    ADDR=$head
    PID=$head_pid
}

# ---------------------------------------------------------------- measuring

# Scenarios run inside $(...), so a failure is recorded in a file.
fail() { echo "$*" >>"$WORK/failed"; }

json_field() { # JSON KEY
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1" | tr -d '"'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else print v[int((NR + 1) / 2)] }'
}

# ours_once LABEL PIDS ARGS...: one loadgen run against our node(s), whose
# CPU time is charged to PIDS (comma-separated). Echoes "msgs/s node-ns
# loadgen-ns": the rate and the CPU nanoseconds per message of our
# processes (summed) and of the generator. A run with any error marks the
# benchmark failed.
ours_once() {
    local label=$1 pids=$2 out
    shift 2
    if ! out=$("${PIN[@]}" "$BIN/loadgen" --json --cpu-pids "$pids" "$@" 2>>"$WORK/loadgen.log"); then
        say "$label: errors: ${out:-loadgen failed}"
        tail -n 5 "$WORK/loadgen.log" >&2
        fail "$label"
    fi
    local rate cpu node gen
    rate=$(json_field "$out" msgs_per_sec)
    LAST_LATENCY="p50 $(json_field "$out" p50_us) p99 $(json_field "$out" p99_us) p99.9 $(json_field "$out" p999_us)"
    cpu=$(sed -n 's/.*"cpu_ns_per_msg":{\([^}]*\)}.*/\1/p' <<<"$out")
    gen=$(sed -n 's/.*"loadgen":\([0-9]*\).*/\1/p' <<<"$cpu")
    node=$(tr ',' '\n' <<<"$cpu" | grep -v loadgen | cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }')
    echo "${rate:-0} ${node:-0} ${gen:-0} ${LAST_LATENCY// /_}"
}

# cpu_ticks PID: user + system CPU of PID so far, in 1/100 s.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# redis_once LABEL CONNS PIPELINE MESSAGES: one loadgen run of RPUSH
# against the benchmark's Redis (--protocol resp), like ours_once.
redis_once() {
    redis-cli -p "$REDIS_PORT" del mylist >/dev/null
    ours_once "$1" "$REDIS_PID" --protocol resp --connect "127.0.0.1:$REDIS_PORT" \
        --connections "$2" --pipeline "$3" --messages "$4" --size "$SIZE"
}

# redis_benchmark_once CONNS PIPELINE MESSAGES: one redis-benchmark run of
# RPUSH, the cross-check of the Redis figure. Echoes "req/s server-ns
# benchmark-ns latency", like ours_once.
redis_benchmark_once() {
    redis-cli -p "$REDIS_PORT" del mylist >/dev/null
    local before after rate bench_s TIMEFORMAT='%U %S'
    before=$(cpu_ticks "$REDIS_PID")
    { time "${PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t rpush -c "$1" -P "$2" -n "$3" \
        -d "$SIZE" --csv >"$WORK/redis-benchmark.csv"; } 2>"$WORK/redis-benchmark.time"
    after=$(cpu_ticks "$REDIS_PID")
    rate=$(tail -n 1 "$WORK/redis-benchmark.csv" | cut -d, -f2 | tr -d '"')
    # The last line: redis-benchmark may write to stderr too.
    bench_s=$(tail -n 1 "$WORK/redis-benchmark.time" | awk '{ print $1 + $2 }')
    # The CSV's latencies are in ms: p50 is column 5, p99 column 7.
    local latency
    latency=$(tail -n 1 "$WORK/redis-benchmark.csv" | tr -d '"' |
        awk -F, '{ printf "p50_%.1f_p99_%.1f", $5 * 1000, $7 * 1000 }')
    awk -v r="$rate" -v b="$before" -v a="$after" -v s="$bench_s" -v n="$3" -v l="$latency" \
        'BEGIN { printf "%s %.0f %.0f %s\n", r, (a - b) * 1e7 / n, s * 1e9 / n, l }'
}

# cpu_times: the machine's steal and total CPU time so far, in ticks
# (/proc/stat's first line: user nice system idle iowait irq softirq steal).
cpu_times() { awk '/^cpu / { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

# stolen_since "STEAL TOTAL": the percentage of the machine's CPU time the
# hypervisor took since cpu_times printed its two numbers (0 off a VM).
stolen_since() {
    local before after
    read -r -a before <<<"$1"
    read -r -a after < <(cpu_times)
    awk -v s="$((after[0] - before[0]))" -v t="$((after[1] - before[1]))" \
        'BEGIN { printf "%.0f", (t > 0 ? 100 * s / t : 0) }'
}

# run_side SIDE: one run of SIDE for measure (whose locals it reads:
# label, run, pids, conns, pipe, messages), into `result`.
run_side() {
    local side=$1
    case $side in
    ours)
        read -r -a result < <(ours_once "$label, run $run" "$pids" --connect "$ADDR" \
            --connections "$conns" --pipeline "$pipe" --messages "$messages" --size "$SIZE")
        ;;
    tagged)
        read -r -a result < <(ours_once "$label, tagged, run $run" "$pids" --connect "$ADDR" \
            --connections "$conns" --pipeline "$pipe" --messages "$messages" --size "$SIZE" \
            --tagged)
        ;;
    redis) read -r -a result < <(redis_once "$label, redis, run $run" "$conns" "$pipe" "$messages") ;;
    floor)
        read -r -a result < <(ours_once "$label, floor, run $run" "$FLOOR_PID" \
            --connect "$FLOOR_ADDR" --connections "$conns" --pipeline "$pipe" \
            --messages "$messages" --size "$SIZE")
        ;;
    redis-benchmark) read -r -a result < <(redis_benchmark_once "$conns" "$pipe" "$messages") ;;
    esac
}

# measure LABEL PIDS CONNS PIPELINE MESSAGES: RUNS rounds, each one run of
# ours (at $ADDR, CPU charged to PIDS), then of Redis through loadgen
# (when running), of the floor (when $FLOOR_PID is set) and of
# redis-benchmark (the cross-check, when Redis runs): interleaved, so that
# every side sees the same drift in the machine's load (tagged and plain
# swap places every other round; with FRESH set, every run of ours on new
# nodes). A run during which the hypervisor took more than MAX_STEAL % of
# the CPU time is run again (STEAL_RETRIES times at most): what another
# virtual machine took is not ours to measure. Sets OURS, REDIS, FLOOR and
# REDIS_BENCHMARK to the median rates (0 for a side not run), and logs
# every run with CPU per message, latency and steal.
measure() {
    local label=$1 pids=$2 conns=$3 pipe=$4 messages=$5 run result side
    local -A rates=() cpus=() lats=() steals=()
    local sides=(ours)
    # Tagged messages (SENDID, exactly once) beside plain SEND, same node.
    if [[ ${TAGGED:-} == yes ]]; then sides+=(tagged); fi
    if [[ $HAVE_REDIS == yes && -n $REDIS_PID ]]; then sides+=(redis); fi
    if [[ -n ${FLOOR_PID:-} ]]; then sides+=(floor); fi
    if [[ $HAVE_REDIS_BENCHMARK == yes && -n $REDIS_PID ]]; then sides+=(redis-benchmark); fi
    local order
    for run in $(seq "$RUNS"); do
        # Plain and tagged swap places every other round: a node that slows
        # as its files grow, or a machine that drifts, weighs on both alike.
        order=("${sides[@]}")
        if [[ ${TAGGED:-} == yes ]] && ((run % 2 == 0)); then
            order=(tagged ours "${sides[@]:2}")
        fi
        for side in "${order[@]}"; do
            local tries=0 before stolen
            while :; do
                # A figure that names a FRESH function gets new nodes, their
                # files empty, before each run of ours: see fresh_cluster.
                if [[ -n ${FRESH:-} && ($side == ours || $side == tagged) ]]; then
                    "$FRESH"
                    pids=$FRESH_PIDS
                fi
                before=$(cpu_times)
                run_side "$side"
                stolen=$(stolen_since "$before")
                if ((stolen <= MAX_STEAL)); then break; fi
                if ((++tries > STEAL_RETRIES)); then
                    say "$label, $side, run $run: ${stolen}% of the CPU time stolen, kept after $STEAL_RETRIES retries"
                    break
                fi
                say "$label, $side, run $run: the hypervisor took ${stolen}% of the CPU time; running it again"
            done
            rates[$side]+="${result[0]} "
            steals[$side]+="${stolen}% "
            cpus[$side]+="${result[1]}/${result[2]} "
            lats[$side]+="${result[3]} "
        done
    done
    med() { tr ' ' '\n' <<<"${rates[$1]:-}" | { grep . || true; } | median; }
    OURS=$(med ours)
    OURS_TAGGED=$(med tagged)
    REDIS=$(med redis)
    FLOOR=$(med floor)
    REDIS_BENCHMARK=$(med redis-benchmark)
    for side in "${sides[@]}"; do
        local what="node/loadgen"
        [[ $side == redis-benchmark ]] && what="redis-server/redis-benchmark"
        say "$label: $side per s ${rates[$side]% }; CPU ns per request $what ${cpus[$side]% }; latency us ${lats[$side]% }; steal ${steals[$side]% }"
    done
    # The figure is the ratio of the medians; the rounds' own ratios show
    # how far one round's pair of runs (seconds apart) can drift.
    if [[ ${TAGGED:-} == yes ]]; then
        say "$label: tagged / plain, round by round: $(paste -d ' ' \
            <(tr ' ' '\n' <<<"${rates[tagged]}" | grep .) \
            <(tr ' ' '\n' <<<"${rates[ours]}" | grep .) |
            awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), ($2 > 0 ? $1 / $2 : 0) }')"
    fi
}

# start_redis APPENDFSYNC: starts the benchmark's own Redis; fails (after
# saying why) if the port is taken or Redis does not come up.
start_redis() {
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        say "something already answers on port $REDIS_PORT (set BENCH_REDIS_PORT)"
        return 1
    fi
    mkdir -p "$WORK/redis"
    # exec: $! is then redis-server itself, whose CPU time is read.
    # No automatic AOF rewrite: our logs are never rewritten either, and a
    # rewrite forked in the middle of a timed run (figure 2 appends ~130 MB
    # a run) would take CPU from Redis on a two-core machine.
    (exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
        --appendonly yes --appendfsync "$1" --auto-aof-rewrite-percentage 0 \
        --daemonize no --logfile "$WORK/redis.log") &
    PIDS+=("$!")
    REDIS_PID=$!
    REDIS_UP=yes
    for _ in $(seq 100); do
        [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && return 0
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    say "redis did not start on port $REDIS_PORT: $(tail -n 3 "$WORK/redis.log" 2>/dev/null)"
    stop_redis
    return 1
}

stop_redis() {
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_UP=no
    REDIS_PID=""
    rm -rf "$WORK/redis"
}

# line FIGURE OURS BASE FLOOR RATIO OF_FLOOR TARGET: prints one figure.
# RATIO is ours / BASE, OF_FLOOR ours / FLOOR ("-" where there is none). MET
# is judged from RATIO and TARGET (">=x" or "<=x"), except in smoke mode.
line() {
    local met ratio=$5 of_floor=$6
    if [[ $MODE == smoke ]]; then
        # Tiny counts on a debug build: the figures only show it ran.
        met="ran"
        ratio="-"
        of_floor="-"
    elif [[ $5 == - || $7 == - ]]; then
        met="n/a"
    else
        met=$(awk -v r="$5" -v t="$7" 'BEGIN {
            op = substr(t, 1, 2); v = substr(t, 3) + 0
            print ((op == ">=" && r >= v) || (op == "<=" && r <= v)) ? "yes" : "NO" }')
    fi
    printf "$LINE_FORMAT" "$1" "$2" "$3" "$4" "$ratio" "$of_floor" "$7" "$met"
}
LINE_FORMAT='%-44s %-16s %-20s %-16s %-6s %-8s %-6s %s\n'

# floor_label RATE: the floor column.
floor_label() {
    if [[ $1 == 0 || -z $1 ]]; then echo "-"; else echo "$(rate "$1") msg/s"; fi
}

# cross_check FIGURE: after a figure against Redis, the redis-benchmark
# figure of the same rounds, and our ratio to it: information only.
cross_check() {
    if [[ $HAVE_REDIS_BENCHMARK == yes && ${REDIS_BENCHMARK:-0} != 0 ]]; then
        line "$1 cross-check: redis-benchmark" "$(rate "$OURS") msg/s" \
            "$(rate "$REDIS_BENCHMARK") req/s" - "$(ratio "$OURS" "$REDIS_BENCHMARK")" - -
    fi
}

ratio() { awk -v a="$1" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
rate() { awk -v r="$1" 'BEGIN { printf "%.0f", r }'; }

# ---------------------------------------------------------------- figures

say "mode $MODE: $SIZE-byte messages, $RUNS run(s) per figure, median"
{
    printf 'machine: %s, %s cores, %s\n' \
        "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)" "$(nproc)" "$(uname -r)"
    printf 'messages: %s bytes; runs per figure: %s (median); redis: %s\n' "$SIZE" "$RUNS" \
        "$([[ $HAVE_REDIS == yes ]] && redis-server --version | cut -d' ' -f3 || echo 'not installed, skipped')"
} | tee "$WORK/summary.txt"
printf "$LINE_FORMAT" figure ours baseline floor ratio "of floor" target met

if [[ $HAVE_REDIS == yes ]] && ! start_redis no; then
    # The smoke test is about our binaries; the full run needs Redis.
    [[ $MODE == smoke ]] || die "cannot run Redis"
    say "Redis skipped"
    HAVE_REDIS=no
fi
redis_label() {
    if [[ $HAVE_REDIS == yes ]]; then echo "$(rate "$1") req/s"; else echo "redis skipped"; fi
}

# 0. The generator's own ceiling, against a node that stores nothing.
if [[ $MODE == full ]] && want 0; then
    start sink "$BIN/examples/sink" 127.0.0.1:0
    read -r -a result < <(ours_once "sink" "$PID" --connect "$ADDR" --connections "$CONNS" \
        --pipeline "$PIPE" --messages "$N2" --size "$SIZE")
    stop "$PID"
    say "sink: CPU ns/msg sink ${result[1]}, loadgen ${result[2]}"
    line "0 loadgen ceiling: trivial sink, 50x16" "$(rate "${result[0]}") msg/s" "(information)" - - - -
fi

# 1. One connection, no pipelining, fsync never vs RPUSH with AOF, fsync no.
# Each client-server pair is pinned to one CPU, ours and Redis alike: left
# to the scheduler, a request-reply ping-pong on this VM measures the
# hypervisor waking an idle vCPU (the same for a server that does nothing),
# not the software. The unpinned figure follows, for information.
if want 1; then
    PIN=(taskset -c "$PIN_CPU")
    if [[ $HAVE_REDIS == yes ]]; then
        taskset -a -p -c "$PIN_CPU" "$REDIS_PID" >/dev/null
    fi
    start_floor fig1-floor
    FLOOR_PID=$PID FLOOR_ADDR=$ADDR
    start_server fig1 never
    measure "figure 1" "$PID" 1 1 "$N1"
    stop "$PID"
    PIN=()
    if [[ $HAVE_REDIS == yes ]]; then
        taskset -a -p -c "0-$(($(nproc) - 1))" "$REDIS_PID" >/dev/null
    fi
    line "1 1 conn, no pipelining, pinned to 1 CPU" "$(rate "$OURS") msg/s" \
        "$(redis_label "$REDIS")" "$(floor_label "$FLOOR")" "$(ratio "$OURS" "$REDIS")" \
        "$(ratio "$OURS" "$FLOOR")" ">=1.15"
    cross_check 1
    # The floor's threads stay on the pinned CPU: a fresh one, unpinned.
    stop "$FLOOR_PID"
    start_floor fig1u-floor
    FLOOR_PID=$PID FLOOR_ADDR=$ADDR
    start_server fig1u never
    measure "figure 1u" "$PID" 1 1 "$N1"
    stop "$PID"
    line "1u the same, unpinned (VM wake-up floor)" "$(rate "$OURS") msg/s" \
        "$(redis_label "$REDIS")" "$(floor_label "$FLOOR")" "$(ratio "$OURS" "$REDIS")" \
        "$(ratio "$OURS" "$FLOOR")" "-"
    cross_check 1u
    stop "$FLOOR_PID"
    FLOOR_PID=""
fi

# 2. 50 connections, pipeline 16, fsync never vs AOF appendfsync no.
ours2=0
if want 2; then
    start_floor fig2-floor
    FLOOR_PID=$PID FLOOR_ADDR=$ADDR
    start_server fig2 never
    TAGGED=yes measure "figure 2" "$PID" "$CONNS" "$PIPE" "$N2"
    stop "$PID"
    stop "$FLOOR_PID"
    FLOOR_PID=""
    ours2=$OURS
    line "2 50 conns x16, fsync never / AOF no" "$(rate "$OURS") msg/s" \
        "$(redis_label "$REDIS")" "$(floor_label "$FLOOR")" "$(ratio "$OURS" "$REDIS")" \
        "$(ratio "$OURS" "$FLOOR")" ">=1.0"
    line "2t the same, tagged (SENDID) / plain" "$(rate "$OURS_TAGGED") msg/s" \
        "$(rate "$OURS") msg/s (plain)" - "$(ratio "$OURS_TAGGED" "$OURS")" - ">=0.85"
    cross_check 2
fi

# 3. The same with fsync always vs AOF appendfsync always.
if want 3; then
    if [[ $HAVE_REDIS == yes ]]; then
        redis-cli -p "$REDIS_PORT" config set appendfsync always >/dev/null
    fi
    start_server fig3 always
    measure "figure 3" "$PID" "$CONNS" "$PIPE" "$N3"
    stop "$PID"
    line "3 50 conns x16, fsync always / AOF always" "$(rate "$OURS") msg/s" \
        "$(redis_label "$REDIS")" - "$(ratio "$OURS" "$REDIS")" - ">=1.0"
    cross_check 3
fi
if [[ $HAVE_REDIS == yes ]]; then
    stop_redis
fi

# fresh_cluster: stops figure 4's cluster, if any, and starts a new one
# with empty files; sets ADDR and FRESH_PIDS. Each run of figure 4 gets
# its own: a cluster kept through the rounds slows as its files grow (the
# kernel's time in write(2) rises with them; docs/PERFORMANCE.md, "Tagged
# messages beside plain", step 11), so a run would depend on what the
# runs before it wrote.
CLUSTER_PIDS=()
fresh_cluster() {
    local pid
    for pid in "${CLUSTER_PIDS[@]}"; do stop "$pid"; done
    rm -rf "$WORK/fig4"
    start_cluster fig4 never
    FRESH_PIDS=$(IFS=,; echo "${CLUSTER_PIDS[*]}")
}

# 4. Activity 2: headnode and three datanodes vs our figure 2.
if want 4; then
    TAGGED=yes FRESH=fresh_cluster measure "figure 4" "" "$CONNS" "$PIPE" "$N4"
    for pid in "${CLUSTER_PIDS[@]}"; do stop "$pid"; done
    line "4 activity 2 (headnode+3 datanodes), 50x16" "$(rate "$OURS") msg/s" \
        "$(rate "$ours2") msg/s (fig 2)" - "$(ratio "$OURS" "$ours2")" - ">=0.5"
    line "4t the same, tagged (SENDID) / plain" "$(rate "$OURS_TAGGED") msg/s" \
        "$(rate "$OURS") msg/s (plain)" - "$(ratio "$OURS_TAGGED" "$OURS")" - ">=0.85"
fi

# 5. Memory: server RSS with idle connections.
if want 5; then
    start_server fig5 never
    if ! out=$("$BIN/loadgen" --json --connect "$ADDR" --idle-connections "$IDLE" \
        --rss-pid "$PID" 2>>"$WORK/loadgen.log"); then
        say "figure 5: errors: ${out:-loadgen failed}"
        tail -n 5 "$WORK/loadgen.log" >&2
        fail "figure 5"
    fi
    stop "$PID"
    rss_kib=$(json_field "$out" rss_kib)
    rss_mib=$(awk -v k="${rss_kib:-0}" 'BEGIN { printf "%.1f", k / 1024 }')
    line "5 server RSS, $IDLE idle connections" "$rss_mib MiB" "limit $MEMORY_LIMIT_MIB MiB" - \
        "$(ratio "$rss_mib" "$MEMORY_LIMIT_MIB")" - "<=1.0"
fi

# 6. Idle CPU: a server holding one idle connection (after a message, so
# its session has run), and a headnode with three datanodes (heartbeats
# every 5 s), each left alone for IDLE_SECONDS; the busiest process's share
# of one core. Nothing may spin while there is nothing to do.
if want 6; then
    start_server fig6 never
    server_pid=$PID
    "$BIN/loadgen" --connect "$ADDR" --messages 1 >/dev/null 2>>"$WORK/loadgen.log" ||
        fail "figure 6"
    # An idle connection held open for the whole watch (by this shell),
    # after one PING.
    exec 7<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}"
    printf '\x00\x00\x00\x04PING' >&7
    start_cluster fig6 never
    idle_pids=("$server_pid" "${CLUSTER_PIDS[@]}")
    declare -A idle_before=()
    for pid in "${idle_pids[@]}"; do idle_before[$pid]=$(cpu_ticks "$pid"); done
    sleep "$IDLE_SECONDS"
    idle_worst=0
    idle_each=()
    for pid in "${idle_pids[@]}"; do
        used=$(awk -v a="$(cpu_ticks "$pid")" -v b="${idle_before[$pid]}" -v s="$IDLE_SECONDS" \
            'BEGIN { printf "%.2f", (a - b) / s }')
        idle_each+=("$used")
        idle_worst=$(awk -v a="$used" -v b="$idle_worst" 'BEGIN { print (a > b) ? a : b }')
    done
    say "figure 6: % of a core over $IDLE_SECONDS s: server, headnode, datanodes: ${idle_each[*]}"
    exec 7>&-
    stop "$server_pid"
    for pid in "${CLUSTER_PIDS[@]}"; do stop "$pid"; done
    line "6 idle CPU, busiest node ($IDLE_SECONDS s)" "$idle_worst % core" "limit 1 % core" - \
        "$(ratio "$idle_worst" 1)" - "<=1.0"
fi

if [[ -s $WORK/failed ]]; then
    die "errors in: $(paste -sd, "$WORK/failed")"
fi
say "done"
