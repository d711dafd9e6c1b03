#!/bin/sh
# `npm start`: compiles when dist/main.js is missing or older than a source file or a build
# setting, then becomes the server (exec), so that the signals npm forwards reach it.
set -e
. scripts/build-if-stale.sh
build_if_stale dist/main.js
exec node dist/main.js
