#!/bin/sh
# expect_output.sh REGEX COMMAND [ARG...]: runs COMMAND; passes only when it
# exits 0 AND its standard output has a line matching REGEX (grep -E). CTest's
# PASS_REGULAR_EXPRESSION alone ignores the exit status.
re=$1
shift
out=$("$@")
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 0 ]; then
    echo "expect_output: exit status $rc from $*" >&2
    exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq -- "$re"; then
    echo "expect_output: no line matches /$re/" >&2
    exit 1
fi
