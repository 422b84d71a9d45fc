#!/bin/sh
# A deploy that will not stop by itself, for the cancellation tests. It
# writes the pid of a child to $PID_DIR/child, then its own to
# $PID_DIR/leader.
#   stubborn.sh ignore  - the script and its child ignore SIGTERM
#   stubborn.sh exit    - the script exits on SIGTERM, its child ignores it
#   stubborn.sh polite  - both end on SIGTERM
# For TRANSIT_ACTION=current it reports nothing and exits at once.
set -eu
[ "$TRANSIT_ACTION" = current ] && exit 0
mode=${1:-ignore}
case "$mode" in
ignore)
	trap '' TERM # ignored signals stay ignored in children
	sleep 300 &
	;;
exit)
	(
		trap '' TERM
		exec sleep 300
	) &
	trap 'echo "leader: got SIGTERM, leaving"; exit 143' TERM
	;;
polite)
	sleep 300 &
	trap 'echo "leader: got SIGTERM, leaving"; exit 143' TERM
	;;
esac
echo $! > "$PID_DIR/child"
echo $$ > "$PID_DIR/leader.tmp"
mv "$PID_DIR/leader.tmp" "$PID_DIR/leader"
echo "started $mode"
while :; do
	wait || true
	sleep 0.05
done
