#!/usr/bin/env bash
# Installs the pieces the eBPF build needs, each only when it is missing, so a warm machine pays
# nothing: LLVM 22 development files (bpf-linker links against them), bpf-linker 0.13.0 built for
# LLVM 22, and the nightly toolchain's rust-src (the eBPF crate builds `core` with -Z build-std).
# Never runs `rustup update` (the installed stable/nightly are pinned; see ebpf/README.md).
# Also installs what the eBPF tests use (dnsmasq, dig, setpriv, nsenter, ip, perl) when
# WATCHPOST_EBPF_TEST_TOOLS=1.
set -euo pipefail

BPF_LINKER_VERSION=0.13.0
LLVM_MAJOR=22

log() { echo "install-toolchain: $*" >&2; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# 1. LLVM 22 development files (llvm-config + static libraries for bpf-linker's build).
if [ ! -x "/usr/lib/llvm-${LLVM_MAJOR}/bin/llvm-config" ]; then
    log "installing llvm-${LLVM_MAJOR}-dev"
    apt_install "llvm-${LLVM_MAJOR}-dev"
else
    log "llvm-${LLVM_MAJOR}-dev present"
fi

# 2. bpf-linker for LLVM 22. Plain `cargo install bpf-linker` picks LLVM 23 and the image's
#    LLVM 14 llvm-config; the exact version, features and prefix below are the ones that work.
if command -v bpf-linker >/dev/null 2>&1 \
    && bpf-linker --version 2>/dev/null | grep -q "${BPF_LINKER_VERSION}"; then
    log "bpf-linker ${BPF_LINKER_VERSION} present"
else
    log "building bpf-linker ${BPF_LINKER_VERSION} (about 80 s on 2 cores)"
    LLVM_PREFIX="/usr/lib/llvm-${LLVM_MAJOR}" cargo +stable install bpf-linker \
        --version "${BPF_LINKER_VERSION}" --locked --no-default-features \
        --features "llvm-${LLVM_MAJOR}"
fi

# 3. rust-src for the nightly toolchain (needed by -Z build-std=core).
if rustup component list --installed --toolchain nightly 2>/dev/null | grep -q '^rust-src'; then
    log "nightly rust-src present"
else
    log "adding rust-src to nightly"
    rustup component add rust-src --toolchain nightly
fi

# 4. Optional: the tools the kernel tests drive (a DNS server, a DNS client, setpriv).
if [ "${WATCHPOST_EBPF_TEST_TOOLS:-0}" = 1 ]; then
    missing=()
    command -v dnsmasq >/dev/null 2>&1 || missing+=(dnsmasq)
    command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
    command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
    # The DNS and exec integrity tests: namespaces (unshare, nsenter), `ip`, perl (prctl rename).
    command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v perl >/dev/null 2>&1 || missing+=(perl-base)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing test tools: ${missing[*]}"
        apt_install "${missing[@]}"
    else
        log "test tools present"
    fi
fi
