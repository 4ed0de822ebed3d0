#!/usr/bin/env bash
# The bash completion (completion/cleave.bash) driven as bash drives it:
# COMP_WORDS and COMP_CWORD set, _cleave called, COMPREPLY compared with
# the candidates expected, against the real binary and the example
# configuration.
#   completion.sh PATH-TO-CLEAVE PATH-TO-cleave.bash
set -u
cleave=$1
example=${CLEAVE_SRCDIR:?}/config/examples/shop.yaml
# shellcheck source-path=SCRIPTDIR source=../../completion/cleave.bash
source "$2" || { echo "FAIL: $2 does not source"; exit 1; }
failed=0

[[ $(complete -p cleave 2>&1) == "complete -F _cleave cleave" ]] || {
  echo "FAIL: cleave's completion is not _cleave: $(complete -p cleave 2>&1)"
  failed=1
}

# Words, one a line, sorted, on one line.
sorted() { printf '%s\n' "$@" | sed '/^$/d' | sort | paste -sd' '; }

# Completes `cleave WORD...` at the end of the last WORD ("" for a <TAB>
# after a space), as bash would: COMPREPLY, and err what it printed.
complete_line() {
  COMP_WORDS=("$cleave" "$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="${COMP_WORDS[*]}"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  err=$(_cleave 2>&1 >/dev/null)   # in a subshell, only to see stderr
  _cleave 2>/dev/null
}

# Reports `cleave WORD...` as WANT (a description), OK or not.
report() {
  if [[ $1 == ok ]]; then
    echo "ok: cleave ${*:3}<TAB>: [$2]"
  else
    echo "FAIL: cleave ${*:3}<TAB>: got [${COMPREPLY[*]-}], want [$2]${err:+, stderr: $err}"
    failed=1
  fi
}

# expect "WANT..." WORD...: the candidates are the words WANT, in any
# order, and nothing is printed.
expect() {
  local want got err words
  read -ra words <<<"$1"
  want=$(sorted ${words[@]+"${words[@]}"})
  shift
  complete_line "$@"
  got=$(sorted ${COMPREPLY[@]+"${COMPREPLY[@]}"})
  if [[ $got == "$want" && -z $err ]]; then
    report ok "$want" "$@"
  else
    report fail "$want" "$@"
  fi
}

# expect_one WANT WORD...: the one candidate is WANT, spaces and all.
expect_one() {
  local want=$1 err
  shift
  complete_line "$@"
  if [[ ${#COMPREPLY[@]} == 1 && ${COMPREPLY[0]} == "$want" && -z $err ]]
  then
    report ok "$want" "$@"
  else
    report fail "$want" "$@"
  fi
}

# The commands, and the options before one.
expect "analyze check complete cutover drop resync rollback run status verify" ""
expect "check complete cutover" c
expect "--help --version" --
# A command's options, only its own.
expect "--config --json --lag-limit --lock-timeout --pause-budget --socket" \
  cutover --
expect "--config --keys --man --markdown --service --services --tables" \
  check --
expect "--json --metrics --socket" status -c "$example" --
# SERVICE from the file given with -c, --config FILE or --config=FILE
# (which bash splits at '=').
services="inventory_service notification_service order_service payment_service user_service"
expect "$services" cutover -c "$example" ""
expect "$services" rollback --config "$example" ""
expect "order_service" complete --config = "$example" o
expect "$services" verify -c "$example" --service ""
# SERVICE given: options, not services again.
expect "--json --socket --table" resync -c "$example" order_service ""
# --table: the tables of the service named, as the file writes them.
expect "order_items orders shipping_addresses" \
  resync -c "$example" order_service --table ""
expect "payment_methods payments refunds" \
  verify -c "$example" --service payment_service --table ""
expect "user_preferences user_sessions users" verify -c "$example" --table us
# The file after -c; nothing for a number; nothing, quietly, without a
# readable configuration.
expect "$example" check -c "${example%.yaml}"
expect "" cutover -c "$example" order_service --lag-limit ""
expect "" cutover ""
expect "" cutover -c /nonexistent/cleave.yaml ""
expect "" frobnicate --

# A table that needs quotes in SQL, and so in the shell, is offered
# quoted for the shell, whole.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed 's/\[orders, order_items, shipping_addresses\]/[orders, "sales.\\"Order Items\\""]/' \
  "$example" >"$dir/quoted.yaml"
example=$dir/quoted.yaml
expect_one 'sales.\"Order\ Items\"' verify -c "$example" --table s
expect_one 'sales.\"Order\ Items\"' verify -c "$example" --table 'sales.\"Or'

exit $failed
