#!/bin/sh
# A deployment target kept in a folder ($1), for tests of the script driver.
# It keeps the version in $1/version and appends every call to $1/calls:
#   <unix time> <pid> <action> version=… prev=… retain=… key=… <what>
# DEPLOY_SECONDS makes a deploy last that long, writing "alive" twice a
# second; with BACKGROUND=1 a background process writes "alive-bg" too, and
# outlives the script if the script is killed (as a process of a dead
# worker would).
dir=$1
mkdir -p "$dir"
log() {
  echo "$(date +%s.%N) $$ $TRANSIT_ACTION version=$TRANSIT_RELEASE_VERSION prev=$TRANSIT_PREVIOUS_VERSION retain=$TRANSIT_RETAIN_DATA key=$TRANSIT_IDEMPOTENCY_KEY $*" >> "$dir/calls"
}
case "$TRANSIT_ACTION" in
current)
  cat "$dir/version" 2>/dev/null
  exit 0 ;;
deploy|rollback)
  log start
  if [ "$TRANSIT_ACTION" = deploy ] && [ -n "$DEPLOY_SECONDS" ]; then
    if [ "$BACKGROUND" = 1 ]; then
      ( while true; do log alive-bg; sleep 0.5; done ) &
      bg=$!
    fi
    i=0
    while [ "$i" -lt $((DEPLOY_SECONDS * 2)) ]; do
      log alive
      sleep 0.5
      i=$((i + 1))
    done
    [ -n "$bg" ] && kill "$bg"
  fi
  if [ "$TRANSIT_RELEASE_VERSION" = "$FAIL_VERSION" ]; then
    log failed
    echo "this target refuses $FAIL_VERSION" >&2
    exit 3
  fi
  echo "$TRANSIT_RELEASE_VERSION" > "$dir/version"
  log done ;;
remove)
  log start
  rm -f "$dir/version"
  log done ;;
esac
