#!/bin/sh
# A fake deployment target for the script driver's tests. Its state lives in
# $STATE_DIR: version (what runs), data (kept unless removed without
# retain_data), calls (one line per call: the action), env.ACTION (the
# TRANSIT_* variables of the last call of ACTION) and pwd.ACTION.
# A file "unreachable" in $STATE_DIR makes current fail; FAIL_DEPLOY=VERSION
# makes the deploy of VERSION fail with exit code 3.
set -eu
: "${STATE_DIR:?STATE_DIR must be set}"
echo "$TRANSIT_ACTION" >> "$STATE_DIR/calls"
env | grep '^TRANSIT_' | sort > "$STATE_DIR/env.$TRANSIT_ACTION"
pwd > "$STATE_DIR/pwd.$TRANSIT_ACTION"

case "$TRANSIT_ACTION" in
current)
	echo "asking $TRANSIT_TARGET what it runs" >&2
	if [ -f "$STATE_DIR/unreachable" ]; then
		echo "ssh: connect to host $TRANSIT_TARGET: no route to host" >&2
		exit 7
	fi
	if [ -f "$STATE_DIR/version" ]; then
		echo "target is up"
		cat "$STATE_DIR/version"
	fi
	;;
deploy)
	echo "deploying $TRANSIT_RELEASE_VERSION over ${TRANSIT_PREVIOUS_VERSION:-nothing}"
	if [ "${FAIL_DEPLOY:-}" = "$TRANSIT_RELEASE_VERSION" ]; then
		echo "no space left on device" >&2
		exit 3
	fi
	echo "$TRANSIT_RELEASE_VERSION" > "$STATE_DIR/version"
	echo "state" > "$STATE_DIR/data"
	echo "deployed $TRANSIT_RELEASE_VERSION"
	;;
rollback)
	echo "$TRANSIT_RELEASE_VERSION" > "$STATE_DIR/version"
	echo "rolled back to $TRANSIT_RELEASE_VERSION"
	;;
remove)
	rm -f "$STATE_DIR/version"
	if [ "$TRANSIT_RETAIN_DATA" = false ]; then
		rm -f "$STATE_DIR/data"
	fi
	echo "removed"
	;;
*)
	echo "unknown action $TRANSIT_ACTION" >&2
	exit 64
	;;
esac
