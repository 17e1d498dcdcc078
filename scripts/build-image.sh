#!/usr/bin/env bash
# Builds the image inf343-tarea1:latest WITHOUT a registry: nothing is pulled.
#
#   scripts/build-image.sh            # static release binaries + the image
#
# 1. Compiles static release binaries on the host (glibc crt-static, the same
#    command as the Dockerfile's `build` stage).
# 2. Stages them in a small temporary build context as docker/prebuilt/bin/.
# 3. Builds docker/Dockerfile with BINARIES=prebuilt. The runtime stage is the
#    one the registry path (`docker-compose build`) uses; only the source of
#    /out/bin differs. BuildKit skips the unused `build` stage (whose base
#    image would need a registry). Without BuildKit, the legacy builder would
#    build every stage, so the script hands it the same Dockerfile with the
#    `build` stage cut out (between its `# >>>` and `# <<<` markers).
#
# Environment:
#   TAREA1_IMAGE      tag to build (default inf343-tarea1:latest)
#   TAREA1_BUILDER    auto (default) | buildkit | legacy
#   CARGO_TARGET_DIR  honoured, as by cargo
set -euo pipefail
cd "$(dirname "$0")/.."

image=${TAREA1_IMAGE:-inf343-tarea1:latest}
builder=${TAREA1_BUILDER:-auto}
# The host's own target (x86_64 or aarch64 Linux): the image runs on this
# engine, which shares the host's architecture.
triple=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $triple ]] || { printf 'build-image: error: rustc -vV names no host\n' >&2; exit 1; }
bins=(server client headnode datanode audit)

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed)"

# 1. Static binaries. The explicit --target keeps build scripts and
# proc-macros (built for the host) dynamic, as they must be.
say "compiling static release binaries ($triple)"
# Without debug info (as in the Dockerfile): 4 MB a binary instead of 21 MB;
# symbol names stay, for backtraces.
RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --locked --release \
    --target "$triple" -p server -p client -p headnode -p datanode -p audit
out="${CARGO_TARGET_DIR:-target}/$triple/release"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/inf343-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/docker/prebuilt/bin" "$ctx/docker/prebuilt/logs" "$ctx/docker/prebuilt/zoneinfo"
# The time zone database, as the Dockerfile's build stage takes it from the
# Rust image (leap-second "right/" zones left out); none if the host has none.
if [[ -d /usr/share/zoneinfo ]]; then
    cp -a /usr/share/zoneinfo/. "$ctx/docker/prebuilt/zoneinfo/"
    rm -rf "$ctx/docker/prebuilt/zoneinfo/right"
fi
for bin in "${bins[@]}"; do
    # A dynamic binary would not start in the scratch image ("no such file
    # or directory" for its missing loader): refuse it here, clearly.
    if LC_ALL=C readelf -l "$out/$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
        die "$out/$bin is dynamically linked; the image needs static binaries"
    fi
    cp "$out/$bin" "$ctx/docker/prebuilt/bin/"
done
cp docker/Dockerfile "$ctx/Dockerfile"

# 2. Pick a builder. BuildKit comes either from the buildx plugin or, in
# Docker CLIs before 23.0, built into `docker build` itself; a machine may
# have several CLIs (Debian's docker.io 20.10 in /usr/bin beside a newer one).
buildkit_cli=""
find_buildkit() {
    if docker buildx version >/dev/null 2>&1; then
        buildkit_cli=docker
        return 0
    fi
    local cli major
    while read -r cli; do
        major=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1) || continue
        if [[ $major =~ ^[0-9]+$ ]] && ((major < 23)); then
            buildkit_cli=$cli
            return 0
        fi
    done < <(type -ap docker | awk '!seen[$0]++')
    return 1
}
case $builder in
    auto) if find_buildkit; then builder=buildkit; else builder=legacy; fi ;;
    buildkit) find_buildkit || die "no Docker CLI with BuildKit found (install buildx, or use TAREA1_BUILDER=legacy)" ;;
    legacy) ;;
    *) die "TAREA1_BUILDER must be auto, buildkit or legacy (got '$builder')" ;;
esac

# 3. The image. The one it replaces is removed if nothing uses it, so that
# rebuilds do not pile up untagged images.
old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
if [[ $builder == buildkit ]]; then
    say "building $image with BuildKit ($buildkit_cli)"
    DOCKER_BUILDKIT=1 "$buildkit_cli" build --build-arg BINARIES=prebuilt \
        --tag "$image" "$ctx"
else
    say "building $image with the legacy builder (the build stage cut out)"
    sed -i '/^# >>> build stage/,/^# <<< build stage/d' "$ctx/Dockerfile"
    grep -q 'AS build$' "$ctx/Dockerfile" && die "could not cut the build stage out of the Dockerfile"
    DOCKER_BUILDKIT=0 docker build --build-arg BINARIES=prebuilt \
        --tag "$image" "$ctx"
fi

new_id=$(docker image inspect --format '{{.Id}}' "$image")
if [[ -n $old_id && $old_id != "$new_id" ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
fi
size=$(docker image inspect --format '{{.Size}}' "$image")
say "built $image ($((size / 1024)) KiB)"
