#!/usr/bin/env bash
# The folders are floors: a file may include headers of its own floor and
# the floors below, never above. Prints each include that breaks the rule
# and fails if there is one.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

floor() {
  case "$1" in
    decoder) echo 0 ;;
    config) echo 1 ;;
    common) echo 2 ;;
    sinks) echo 3 ;;
    daemon) echo 4 ;;
    commands) echo 5 ;;
    *) echo "" ;;
  esac
}

bad=0
checked=0
for dir in decoder config common sinks daemon commands; do
  mine=$(floor "$dir")
  for file in "$dir"/*.[ch]; do
    while IFS= read -r inc; do
      top=${inc%%/*}
      theirs=$(floor "$top")
      checked=$((checked + 1))
      if [ -z "$theirs" ] || [ "$theirs" -gt "$mine" ]; then
        echo "$file includes \"$inc\": $top is above $dir"
        bad=$((bad + 1))
      fi
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
  done
done
echo "layers: $checked includes checked, $bad from a floor above"
[ "$bad" -eq 0 ]
