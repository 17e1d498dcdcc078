#!/usr/bin/env bash
# The headnode's status page in a real headless browser (Chromium from the
# distribution's packages), while a real cluster runs on 127.0.0.1.
#
#   scripts/browser-test.sh                       # the test
#   scripts/browser-test.sh --screenshot FILE     # also keep the screenshot
#
# Starts a headnode with --http, three datanodes and a client; lets
# Chromium run the page's script and reads the page it rendered: three
# datanodes active. Kills datanode2 and reads it again: datanode2
# inactive, the others active. Saves a screenshot of the page (the one in
# docs/images/ came from here). Without Chromium it installs it under
# CI=true (root, Debian), and otherwise skips with a message. Ends with
# `browser: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

screenshot=target/status-page.png
if [[ ${1:-} == --screenshot ]]; then
    screenshot=${2:?--screenshot FILE}
fi

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser && ${CI:-} == true && $(id -u) == 0 ]]; then
    echo "browser: installing chromium from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-liberation >/dev/null 2>&1
    browser=$(command -v chromium || true)
fi
if [[ -z $browser ]]; then
    [[ ${CI:-} == true ]] && { echo "browser: FAILED: no chromium (CI=true needs it)" >&2; exit 1; }
    echo "browser: skipped: no chromium (apt-get install chromium)"
    exit 0
fi

cargo build --quiet --locked --bin headnode --bin datanode --bin client || exit 1
bin=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug
work=$(mktemp -d "${TMPDIR:-/tmp}/inf343-browser.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        { kill -9 "$pid" && wait "$pid"; } 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) http=$(free_port)
"$bin/headnode" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" --dir "$work/headnode" \
    --heartbeat-interval 500ms --heartbeat-timeout 300ms 2>"$work/headnode.log" &
pids+=("$!")
declare -A datanode
for name in datanode1 datanode2 datanode3; do
    "$bin/datanode" --headnode "127.0.0.1:$port" --name "$name" --dir "$work/$name" 2>"$work/$name.log" &
    datanode[$name]=$!
    pids+=("$!")
done
url="http://127.0.0.1:$http/"
for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('${url}status.json', timeout=1)" 2>/dev/null && break
    sleep 0.2
done
"$bin/client" --connect "127.0.0.1:$port" --log "$work/registro_cliente.txt" \
    --count 400 --interval 5ms >/dev/null 2>&1 &
pids+=("$!")

# The page as Chromium rendered it, once its script ran.
rendered() {
    "$browser" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --virtual-time-budget=4000 --dump-dom "$url" 2>/dev/null
}
# Whether the rendered page shows datanode $1 in state $2, retried a while.
shows() {
    local page
    for _ in $(seq 20); do
        page=$(rendered)
        if [[ $page == *"data-datanode=\"$1\" data-state=\"$2\""* ]]; then
            return 0
        fi
        sleep 0.5
    done
    printf '%s\n' "$page" | grep -o 'data-datanode="[^"]*" data-state="[^"]*"' >&2
    return 1
}

if shows datanode1 active && shows datanode2 active && shows datanode3 active; then
    pass "Chromium renders the page with datanode1, datanode2 and datanode3 active"
else
    fail "the rendered page does not show the three datanodes active"
fi
mkdir -p "$(dirname "$screenshot")"
if "$browser" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --hide-scrollbars --window-size=1000,1150 --virtual-time-budget=4000 \
    --screenshot="$screenshot" "$url" >/dev/null 2>&1 && [[ -s $screenshot ]]; then
    pass "screenshot saved: $screenshot"
else
    fail "no screenshot"
fi
{ kill -9 "${datanode[datanode2]}" && wait "${datanode[datanode2]}"; } 2>/dev/null
if shows datanode2 inactive && shows datanode1 active && shows datanode3 active; then
    pass "after kill -9 of datanode2 the page shows it inactive, the others active"
else
    fail "the page does not show datanode2 inactive after it was killed"
fi

printf '\nbrowser: %d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
