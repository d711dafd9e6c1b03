#!/bin/sh
# `npm start`: compiles when dist/main.js is missing or older than a source file or a build
# setting, then becomes the server (exec), so that the signals npm forwards reach it.
set -e
if [ ! -f dist/main.js ] ||
  [ -n "$(find src tsconfig.json tsconfig.build.json nest-cli.json -newer dist/main.js | head -n 1)" ]; then
  # In the background, because a shell waiting for a foreground command dies of SIGTERM without
  # passing it on; a signal during the build ends the build, and no server starts.
  nest build &
  build=$!
  trap 'kill "$build" 2>/dev/null || true' TERM INT
  wait "$build"
  trap - TERM INT
fi
exec node dist/main.js
