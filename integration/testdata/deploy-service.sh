#!/usr/bin/env bash
# The script driver's command in the end-to-end test: it switches which
# version of the service runs on PORT and restarts it.
# Usage: deploy-service.sh STATE_DIR PORT SERVICE_BINARY
# FAIL_VERSION (set in the target's config) makes deploying that version fail.
set -euo pipefail
state=$1 port=$2 bin=$3
mkdir -p "$state"

stop() {
  if [ -f "$state/pid" ]; then
    pid=$(cat "$state/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$state/pid"
  fi
}

start() {
  setsid "$bin" -addr "127.0.0.1:$port" -version "$1" >>"$state/service.log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$1" >"$state/version"
      echo "version $1 answers on port $port"
      return 0
    fi
    sleep 0.05
  done
  echo "version $1 did not start on port $port" >&2
  return 1
}

case "$TRANSIT_ACTION" in
current)
  cat "$state/version" 2>/dev/null || true
  ;;
deploy | rollback)
  if [ "$TRANSIT_ACTION" = deploy ] && [ "${FAIL_VERSION:-}" = "$TRANSIT_RELEASE_VERSION" ]; then
    echo "forced failure: this target refuses version $TRANSIT_RELEASE_VERSION" >&2
    exit 3
  fi
  echo "$TRANSIT_ACTION $TRANSIT_APPLICATION/$TRANSIT_TARGET: ${TRANSIT_PREVIOUS_VERSION:-nothing} -> $TRANSIT_RELEASE_VERSION (key $TRANSIT_IDEMPOTENCY_KEY)"
  stop
  start "$TRANSIT_RELEASE_VERSION"
  ;;
remove)
  stop
  rm -f "$state/version"
  echo "removed (retain data: ${TRANSIT_RETAIN_DATA:-false})"
  ;;
*)
  echo "unknown action $TRANSIT_ACTION" >&2
  exit 2
  ;;
esac
