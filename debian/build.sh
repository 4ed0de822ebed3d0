#!/usr/bin/env bash
# Builds cleave's Debian package from this tree:
#
#   bash debian/build.sh [--lintian] [OUTDIR]
#
# Installs the build dependencies (debian/control) with apt-get when some
# are missing, copies the tree (tracked and untracked files, not build*/
# nor .git) into a temporary directory, runs `dpkg-buildpackage -us -uc
# -b` there without the tests (DEB_BUILD_OPTIONS=nocheck: the project's
# own suites need PostgreSQL clusters) nor a debug-symbols package
# (noautodbgsym), and moves cleave_<version>_<arch>.deb
# into OUTDIR (default: the top of the tree). --lintian checks the package
# afterwards and fails on an error or warning.
# Run as root on Debian 12, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

lintian=0
[ "${1:-}" = --lintian ] && { lintian=1; shift; }
OUT=$(realpath "${1:-$ROOT}")

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_install() {
  DEBIAN_FRONTEND=noninteractive $sudo apt-get "$@" -y -qq --no-install-recommends >/dev/null
}

# ---- build dependencies ------------------------------------------------
need=(dpkg-dev)
[ $lintian = 0 ] || need+=(lintian)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || ! dpkg-checkbuilddeps >/dev/null 2>&1; then
  echo "build-deb: installing the build dependencies"
  $sudo apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || apt_install install "${missing[@]}"
  apt_install build-dep ./
fi

# ---- one version ---------------------------------------------------------
# The package's version is the project's: meson.build and debian/changelog
# must agree, or the .deb would say one thing and `cleave --version` another.
version=$(dpkg-parsechangelog -S Version)
project=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -1)
[ "$version" = "$project" ] || {
  echo "build-deb: debian/changelog says $version, meson.build $project:" \
       "add a changelog entry (dch -v $project)" >&2
  exit 1
}

# ---- build in a copy of the tree -----------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/cleave-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/cleave"
git ls-files --cached --others --exclude-standard |
  while IFS= read -r f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$work/cleave"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=cleave_${version}_${arch}.deb
echo "build-deb: building $deb in $work"
if ! (cd "$work/cleave" &&
      DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
        dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (the log's end above)" >&2
  exit 1
fi
mv "$work/$deb" "$OUT/"
echo "build-deb: $OUT/$deb"

if [ $lintian = 1 ]; then
  # What lintian says below a warning (pedantic and info tags) is
  # explained in README.md, "Installing from the Debian package".
  lintian --fail-on error,warning --info "$OUT/$deb"
fi
