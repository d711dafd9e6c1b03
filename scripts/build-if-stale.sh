# Sourced by scripts/start.sh and scripts/doctor.sh. `build_if_stale <file>`: compiles
# (`nest build`) when <file> is missing or older than a source file or a build setting.
# In the background, because a shell waiting for a foreground command dies of SIGTERM without
# passing it on; a signal during the build ends the build, and, under `set -e`, the script.
build_if_stale() {
  if [ ! -f "$1" ] ||
    [ -n "$(find src tsconfig.json tsconfig.build.json nest-cli.json -newer "$1" | head -n 1)" ]; then
    nest build &
    build=$!
    trap 'kill "$build" 2>/dev/null || true' TERM INT
    wait "$build"
    trap - TERM INT
  fi
}
