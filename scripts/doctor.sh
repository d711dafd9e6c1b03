#!/bin/sh
# `npm run doctor`: compiles when dist/doctor/main.js is stale (as `npm start` does; the compiler's
# words go to stderr, the report alone to stdout), then runs the doctor with the arguments given.
set -e
. scripts/build-if-stale.sh
build_if_stale dist/doctor/main.js >&2
exec node dist/doctor/main.js "$@"
