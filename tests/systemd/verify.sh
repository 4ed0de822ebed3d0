#!/usr/bin/env bash
# systemd-analyze verify on cleave.service as meson configured it for this
# build (ExecStart= the built binary, which verify requires to exist). Any
# message about the unit fails the test: verify exits 0 on many warnings.
set -uo pipefail
unit=${1:?usage: verify.sh UNIT}

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not found (Debian package systemd; tests/setup-debian.sh installs it)" >&2
  exit 1
fi

out=$(systemd-analyze verify --man=no "$unit" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 0 ]; then
  echo "FAIL: systemd-analyze verify exited $rc" >&2
  exit 1
fi
# Lines about other units (e.g. a host's own broken units pulled in as
# dependencies) are not ours to fix.
if printf '%s\n' "$out" | grep -q "cleave.service"; then
  echo "FAIL: systemd-analyze verify complained about cleave.service" >&2
  exit 1
fi

# What the unit actually ran under must still allow the re-exec on reload.
for key in NoExecPaths; do
  if grep -q "^$key=" "$unit"; then
    echo "FAIL: $key= would forbid cleave's execv(/proc/self/exe)" >&2
    exit 1
  fi
done
if grep -Eq '^SystemCallFilter=~.*@(process|default)|^SystemCallFilter=~.*execve' "$unit"; then
  echo "FAIL: SystemCallFilter= denies execve, which cleave's reload re-exec needs" >&2
  exit 1
fi
echo "ok: $unit"
