#!/usr/bin/env bash
# cleave's main job on its embedded default: installs the dependencies,
# builds, and validates the example configuration, which maps the shared
# "shop" database (../shared/fixtures/shop) to five service databases.
# (Replication itself joins the demo as it lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build cleave >/dev/null
./build/cleave check -c config/examples/shop.yaml
