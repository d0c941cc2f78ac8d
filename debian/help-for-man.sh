#!/bin/sh
# Runs a program for help2man: `help-for-man.sh <main.js> --help`. yargs right-aligns each option's
# [type] and [default] at the terminal's edge; the padding before them would end up in the man page
# as justified blanks, so it is squeezed to one space.
set -e
main=$1
shift
if [ "${1:-}" = --help ]; then
  node "$main" --help | sed -E 's/ {2,}((\[[^]]*\] *)+)$/ \1/'
else
  exec node "$main" "$@"
fi
