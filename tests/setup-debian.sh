#!/usr/bin/env bash
# Installs what cleave needs to build, test and demo on Debian 12, from
# Debian's own archive. Installs only what is missing; safe to run again.
set -euo pipefail

packages=(
  gcc clang meson ninja-build pkg-config   # build, and libFuzzer (clang)
  libpq-dev librdkafka-dev libyaml-dev libjansson-dev libsystemd-dev systemd
  check                                    # unit test framework
  postgresql-15 postgresql-client-15       # throwaway clusters in tests
  kcat                                     # a real Kafka consumer for tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
