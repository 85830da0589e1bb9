#!/usr/bin/env bash
# Starts or stops a local Redis (Debian's redis-server) on 127.0.0.1, without
# persistence, for development and tests:
#
#   deploy/local/redis.sh start    # then: SWITCHBOARD_TEST_REDIS=127.0.0.1:6379
#   deploy/local/redis.sh stop
#
# start installs redis-server with apt-get when it is missing, and returns once
# the server answers PING. stop ends it by the PID it recorded.
#
# Settings (environment, defaults in brackets):
#   REDIS_PORT [6379]
#   REDIS_WORK [${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/redis/run-<port>]: pid file and log
set -euo pipefail

REDIS_PORT=${REDIS_PORT:-6379}
LOCAL_SERVICES_CACHE=${LOCAL_SERVICES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard}
REDIS_WORK=${REDIS_WORK:-$LOCAL_SERVICES_CACHE/redis/run-$REDIS_PORT}
PIDFILE=$REDIS_WORK/redis.pid

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

install() {
	command -v redis-server >/dev/null && return
	echo "redis: installing Debian's redis-server" >&2
	local sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq redis-server >/dev/null
}

start() {
	install
	if running; then
		echo "redis: already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$REDIS_PORT"
		return
	fi
	if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
		echo "redis: port $REDIS_PORT on 127.0.0.1 is in use (ss -ltnp 'sport = :$REDIS_PORT' says by what)" >&2
		exit 1
	fi
	mkdir -p "$REDIS_WORK"
	rm -f "$PIDFILE"
	# No RDB snapshots, no append-only file: a test server keeps nothing.
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
		--save '' --appendonly no --dir "$REDIS_WORK" \
		--daemonize yes --pidfile "$PIDFILE" --logfile "$REDIS_WORK/redis.log"
	for _ in $(seq 100); do
		if [ -s "$PIDFILE" ] && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
			echo "redis: ready on 127.0.0.1:$REDIS_PORT (pid $(cat "$PIDFILE"))"
			return
		fi
		sleep 0.1
	done
	echo "redis: not answering on 127.0.0.1:$REDIS_PORT after 10 s:" >&2
	tail -n 20 "$REDIS_WORK/redis.log" >&2 || true
	stop >&2
	exit 1
}

stop() {
	if ! [ -f "$PIDFILE" ]; then
		echo "redis: not running (no $PIDFILE)"
		return
	fi
	local pid
	pid=$(cat "$PIDFILE")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			echo "redis: still running 10 s after SIGTERM; SIGKILL" >&2
			kill -KILL "$pid"
		fi
	fi
	rm -f "$PIDFILE"
	echo "redis: stopped (pid $pid)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
