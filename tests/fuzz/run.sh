#!/bin/sh
# Fuzzes for SECONDS in all (default 60): the decoder, seeded from the
# captured streams, for five sixths of it, and COPY's text rows
# (fuzz_copytext) for the rest. Sets up build-fuzz (or $FUZZ_BUILD) with
# clang on first use. Exits non-zero when libFuzzer finds a crash; the
# crashing input is kept in build-fuzz/crashes (copytext-* for the rows).
#   tests/fuzz/run.sh [SECONDS]
set -eu

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}

# libFuzzer reads -max_total_time=0 as "no limit": each target needs 1 s.
case $seconds in
    '' | *[!0-9]*) seconds=0 ;;
esac
if [ "$seconds" -lt 2 ]; then
    echo "usage: tests/fuzz/run.sh [SECONDS], at least 2" >&2
    exit 2
fi
copytext_seconds=$((seconds / 6))
[ "$copytext_seconds" -ge 1 ] || copytext_seconds=1
decoder_seconds=$((seconds - copytext_seconds))

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true
else
    meson configure "$build" -Dfuzz=true
fi
ninja -C "$build" tests/fuzz/fuzz_decoder tests/fuzz/fuzz_copytext \
    tests/fuzz/make_corpus

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/seeds" "$work/copytext-seeds"
"$build/tests/fuzz/make_corpus" "$work/seeds" "$root"/tests/decoder/streams/*.stream
# Rows as COPY TO writes them, and the escapes it does not write.
i=0
for row in 'a\tb\tc\n' '1\t\\N\t\n' '\\\\N\t\\b\\f\\n\\r\\t\\v\\\\\n' \
           '\\101\\0\\377\t\\x4\\x41\\xg\n' 'x\\' '\t\t\t\t'; do
    printf '%b' "$row" > "$work/copytext-seeds/$i"
    i=$((i + 1))
done

# New inputs accumulate in build-fuzz/corpus*, so later runs start further on.
mkdir -p "$build/corpus" "$build/corpus-copytext" "$build/crashes"
failed=0
status=0
"$build/tests/fuzz/fuzz_decoder" -max_total_time="$decoder_seconds" \
    -artifact_prefix="$build/crashes/" -print_final_stats=1 \
    "$build/corpus" "$work/seeds" || status=$?
if [ "$status" -ne 0 ]; then
    echo "fuzz: fuzz_decoder crashed (exit $status), input in $build/crashes/" >&2
    failed=1
fi
status=0
"$build/tests/fuzz/fuzz_copytext" -max_total_time="$copytext_seconds" \
    -artifact_prefix="$build/crashes/copytext-" -print_final_stats=1 \
    "$build/corpus-copytext" "$work/copytext-seeds" || status=$?
if [ "$status" -ne 0 ]; then
    echo "fuzz: fuzz_copytext crashed (exit $status), input in $build/crashes/copytext-*" >&2
    failed=1
fi
[ "$failed" -eq 0 ] || exit 1
echo "fuzz: no crash in $seconds s ($decoder_seconds s decoder, $copytext_seconds s copytext)"
