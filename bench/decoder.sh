#!/usr/bin/env bash
# Decoder throughput over a large real stream: the shop data (scale 1 by
# default) and the standard pgbench mix, captured once from a throwaway
# cluster, then decoded in memory. Prints MB/s and messages/s.
#   bench/decoder.sh [SCALE [TRANSACTIONS]]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build bench/capture_shop bench/decoder_bench >/dev/null
stream="${TMPDIR:-/tmp}/cleave-bench-shop.stream"
trap 'rm -f "$stream"' EXIT
CLEAVE_SRCDIR="$PWD" ./build/bench/capture_shop "$stream" "${1:-1}" "${2:-5000}"
echo "captured $(du -h "$stream" | cut -f1) of hex frames"
./build/bench/decoder_bench "$stream"
