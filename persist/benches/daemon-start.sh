#!/bin/sh
# Times a daemon start with a restore: from spawning `watchpost run` until `watchpost query
# stores` answers on its socket (polled every 5 ms and a CLI start), RUNS times, each on a
# fresh copy of DATA/watchpost.redb (or an empty data directory with DATA = empty). Leave such a
# file with the benchmark: WATCHPOST_BENCH_DATA_DIR=DIR cargo bench -p watchpost-persist --bench
# persist. Needs root (the daemon runs as root). EBPF is the collector.ebpf setting (off, auto).
#
#   persist/benches/daemon-start.sh target/release/watchpost DIR 5 off
#
# Prints each start's time and the daemon's own restore_us (opening and verifying the file), then
# the median.
set -eu
bin=$1 data=$2 runs=$3 ebpf=${4:-off}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/config.toml" <<CONFIG
[collector]
ebpf = "$ebpf"
[process]
capacity = 65536
[sinks.stdout]
enabled = false
CONFIG
times=""
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    rm -rf "$work/data" "$work/s.sock"
    mkdir "$work/data"
    [ "$data" = empty ] || cp "$data/watchpost.redb" "$work/data/"
    start=$(date +%s%N)
    "$bin" run --config "$work/config.toml" --data-dir "$work/data" --socket "$work/s.sock" \
        >/dev/null 2>"$work/stderr" &
    pid=$!
    until "$bin" query stores --socket "$work/s.sock" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/stderr"; exit 1; }
        sleep 0.005
    done
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    restore=$("$bin" query persistence --socket "$work/s.sock" --json | grep -o '"restore_us":[0-9]*')
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    echo "ready after $ms ms ($restore)"
    times="$times $ms"
done
echo "$times" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print "median " a[int((NR+1)/2)] " ms of " NR}'
