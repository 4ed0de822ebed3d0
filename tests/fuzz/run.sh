#!/bin/sh
# Fuzzes the decoder for SECONDS (default 60), seeded from the captured
# streams. Sets up build-fuzz with clang on first use. Exits non-zero when
# libFuzzer finds a crash; the crashing input is kept in build-fuzz/crashes.
#   tests/fuzz/run.sh [SECONDS]
set -eu

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true
else
    meson configure "$build" -Dfuzz=true
fi
ninja -C "$build" tests/fuzz/fuzz_decoder tests/fuzz/make_corpus

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/seeds"
"$build/tests/fuzz/make_corpus" "$work/seeds" "$root"/tests/decoder/streams/*.stream

# New inputs accumulate in build-fuzz/corpus, so later runs start further on.
mkdir -p "$build/corpus" "$build/crashes"
status=0
"$build/tests/fuzz/fuzz_decoder" -max_total_time="$seconds" \
    -artifact_prefix="$build/crashes/" -print_final_stats=1 \
    "$build/corpus" "$work/seeds" || status=$?
if [ "$status" -ne 0 ]; then
    echo "fuzz: crash found (exit $status), input in $build/crashes/" >&2
    exit 1
fi
echo "fuzz: no crash in $seconds s"
