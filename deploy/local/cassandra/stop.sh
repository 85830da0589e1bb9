#!/usr/bin/env bash
# Stops the node start.sh started, by the PID it recorded: SIGTERM, then SIGKILL if it
# is still there after 30 s. Takes the same CASS_* settings as start.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"
PIDFILE=$CASS_WORK/cassandra.pid
[ -f "$PIDFILE" ] || { echo "cassandra: not running (no $PIDFILE)"; exit 0; }
PID=$(cat "$PIDFILE")
if kill -0 "$PID" 2>/dev/null; then
	kill -TERM "$PID"
	for _ in $(seq 30); do kill -0 "$PID" 2>/dev/null || break; sleep 1; done
	if kill -0 "$PID" 2>/dev/null; then
		echo "cassandra: still running 30 s after SIGTERM; SIGKILL" >&2
		kill -KILL "$PID"
	fi
fi
rm -f "$PIDFILE"
echo "cassandra: stopped (pid $PID)"
