#!/usr/bin/env bash
# Installs the dependencies (and the PostgreSQL versions Debian lacks that
# tests ask for), builds cleave and runs every test suite (unit and
# integration: the integration tests start their own throwaway
# PostgreSQL). With --sanitize: the suites marked `sanitize` in their
# meson.build (the decoder, the sinks, the unit suites and the end-to-end
# runs that exercise memory most) under AddressSanitizer and
# UndefinedBehaviorSanitizer, in build-san/.
# Prints each suite's time, longest first, and ends with one line
# "tests: N passed, M failed" counting Check's checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
bash tests/setup-pg.sh 14 16 17 18

builddir=build
opts=()
multiplier=1
suites=()
if [ "${1:-}" = "--sanitize" ]; then
  builddir=build-san
  opts=(-Db_sanitize=address,undefined -Db_lundef=false)
  multiplier=4
  suites=(--suite sanitize)
  # Long cases whose code other cases take here too (shop_add_long_case).
  export CK_EXCLUDE_TAGS=unsanitized
fi

if [ -f "$builddir/build.ninja" ]; then
  meson setup --reconfigure "$builddir" "${opts[@]}" >/dev/null
else
  meson setup "$builddir" "${opts[@]}" >/dev/null
fi
meson compile -C "$builddir"

status=0
meson test -C "$builddir" --print-errorlogs --timeout-multiplier "$multiplier" \
  "${suites[@]}" || status=$?

# Check prints "100%: Checks: 12, Failures: 0, Errors: 0" per suite.
python3 - "$builddir/meson-logs/testlog.json" <<'PY'
import json, re, sys
passed = failed = 0
rows = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    m = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", t.get("stdout", ""))
    if m:
        total, fails, errors = map(int, m.groups())
        passed += total - fails - errors
        failed += fails + errors
        what = m.group(0)
    elif t.get("result") != "OK":
        failed += 1
        what = t.get("result")
    else:
        what = "OK"
    rows.append((t.get("duration", 0), t["name"], what))
for seconds, name, what in sorted(rows, reverse=True):
    print(f"  {name:<15} {seconds:7.1f} s  {what}")
print(f"  {'(sum)':<15} {sum(r[0] for r in rows):7.1f} s")
print(f"tests: {passed} passed, {failed} failed")
PY
exit "$status"
