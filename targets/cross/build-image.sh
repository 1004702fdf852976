#!/usr/bin/env bash
# Builds the container image `cross` uses for aarch64-unknown-linux-gnu (Cross.toml), locally,
# from Debian packages: no image registry is needed (none is reachable from our build machines).
# A minimal Debian 12 root made by debootstrap, plus the aarch64 cross linker and C library, is
# imported into podman as $IMAGE. The eBPF object is NOT built in the image (that needs nightly,
# bpf-linker and LLVM 22): it is built on the host and passed in (see Cross.toml).
#
# Runs as root. podman keeps its storage under $WATCHPOST_CROSS_PODMAN_DIR (default
# target/cross-podman) with its own configuration, so the machine's podman setup is untouched;
# `source target/cross-podman/env` afterwards points podman (and cross) at it.
#
#   bash targets/cross/build-image.sh            # build (skipped if the image exists)
#   WATCHPOST_CROSS_REBUILD=1 bash ...            # rebuild
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

IMAGE=${WATCHPOST_CROSS_IMAGE:-localhost/watchpost-cross-aarch64:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PODMAN_DIR=${WATCHPOST_CROSS_PODMAN_DIR:-$PWD/target/cross-podman}
PACKAGES=(gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross)

log() { echo "build-image: $*" >&2; }

missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    log "debootstrap, podman, runc present"
fi

# podman with its own storage and configuration (cgroupfs, runc, no network: see
# ../shared/notes/container-runtimes.md for why each setting).
mkdir -p "$PODMAN_DIR"/{storage,run,tmp,networks}
cat >"$PODMAN_DIR/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
CONF
cat >"$PODMAN_DIR/containers.conf" <<CONF
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
tmp_dir = "$PODMAN_DIR/tmp"
runtime = "runc"
[network]
network_config_dir = "$PODMAN_DIR/networks"
CONF
cat >"$PODMAN_DIR/env" <<CONF
export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
export CROSS_CONTAINER_ENGINE=podman
CONF
# shellcheck source=/dev/null
source "$PODMAN_DIR/env"

if podman image exists "$IMAGE" && [ "${WATCHPOST_CROSS_REBUILD:-0}" != 1 ]; then
    log "$IMAGE present"
    exit 0
fi

work=$(mktemp -d)
cleanup() {
    umount "$work/root/proc" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $SUITE (minbase) from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
}
log "installing ${PACKAGES[*]} in the image root"
mount -t proc proc "$work/root/proc"
chroot "$work/root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${PACKAGES[@]}" >"$work/apt.log" 2>&1 || {
    tail -20 "$work/apt.log" >&2
    exit 1
}
chroot "$work/root" apt-get clean
umount "$work/root/proc"
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*

log "importing into podman as $IMAGE"
tar --numeric-owner -C "$work/root" -cf - . | podman import \
    --change 'ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc' \
    --change 'ENV CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null
log "done: $(podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE")"
