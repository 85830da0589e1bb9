#!/usr/bin/env bash
# Starts one local Apache Cassandra 5.0 node from Maven Central jars (no tarball, no
# container) on 127.0.0.1 and returns once it answers CQL. Needs Java 17 and Maven;
# Maven Central only on the first run of a version (the jars are cached).
#
#   deploy/local/cassandra/start.sh     # then: SWITCHBOARD_TEST_CQL=127.0.0.1:9042
#   deploy/local/cassandra/stop.sh
#
# Everything it writes lives outside the repository, under
# ${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/cassandra (LOCAL_SERVICES_CACHE moves it):
#   lib-<version>/   the jars, fetched once per version
#   run-<cql port>/  the node: data, commit log, logs, cassandra.pid
#
# Settings (environment, defaults in brackets):
#   CASS_VERSION [5.0.8]  CASS_HEAP [512M]  CASS_CQL_PORT [9042]  CASS_STORAGE_PORT [7000]
#   CASS_JMX_PORT [7199; empty: no JMX, no nodetool]  CASS_START_TIMEOUT [240 s]
#   CASS_LIB, CASS_WORK [see above]  JAVA_HOME [a Java 17 under /usr/lib/jvm]
#   CASS_FRESH [1: start from an empty data directory; 0: keep the data]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"
CASS_HEAP=${CASS_HEAP:-512M}
CASS_START_TIMEOUT=${CASS_START_TIMEOUT:-240}
CASS_FRESH=${CASS_FRESH:-1}
# Cassandra 5.0 runs on Java 11 and 17 only (not on the newer JDKs also installed).
"$JAVA" -version 2>&1 | head -1 | grep -qE '"(11|17)\.' ||
	{ echo "cassandra: need Java 11 or 17, got: $("$JAVA" -version 2>&1 | head -1)" >&2; exit 1; }

fetch_jars() {
	[ -f "$CASS_LIB/.complete" ] && return
	local try
	for try in 1 2 3; do
		rm -rf "$CASS_LIB"
		mkdir -p "$CASS_LIB"
		if mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" -Dcassandra.version="$CASS_VERSION" \
			-Dcassandra.lib="$CASS_LIB" \
			org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies; then
			break
		fi
		[ "$try" = 3 ] && { echo "cassandra: fetching the jars failed 3 times" >&2; exit 1; }
		echo "cassandra: fetching the jars failed (try $try); again in 10 s" >&2
		sleep 10
	done
	# Marked complete only when the jars really landed.
	ls "$CASS_LIB/cassandra-all-$CASS_VERSION.jar" "$CASS_LIB"/jamm-*.jar >/dev/null ||
		{ echo "cassandra: jars missing in $CASS_LIB after mvn" >&2; exit 1; }
	touch "$CASS_LIB/.complete"
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fetch_jars
JAMM=$(ls "$CASS_LIB"/jamm-*.jar | head -1)

if [ -f "$CASS_WORK/cassandra.pid" ] && kill -0 "$(cat "$CASS_WORK/cassandra.pid")" 2>/dev/null; then
	echo "cassandra: already running (pid $(cat "$CASS_WORK/cassandra.pid")) on 127.0.0.1:$CASS_CQL_PORT"
	exit 0
fi
# A port in use (a node of another checkout, anything) would let the wait below see
# that listener and report ready while this node dies on bind.
for p in "$CASS_CQL_PORT" "$CASS_STORAGE_PORT" ${CASS_JMX_PORT:+"$CASS_JMX_PORT"}; do
	if port_taken "$p"; then
		echo "cassandra: port $p on 127.0.0.1 is in use (ss -ltnp 'sport = :$p' says by what)" >&2
		exit 1
	fi
done
[ "$CASS_FRESH" = 1 ] && rm -rf "$CASS_WORK"
mkdir -p "$CASS_WORK"/{data,commitlog,hints,saved_caches,cdc_raw,logs,triggers}
sed -e "s#@WORK@#$CASS_WORK#g" -e "s#@CQL_PORT@#$CASS_CQL_PORT#g" \
	-e "s#@STORAGE_PORT@#$CASS_STORAGE_PORT#g" "$HERE/conf/cassandra.yaml" >"$CASS_WORK/cassandra.yaml"

mapfile -t JVM_OPTS < <(grep -vE '^[[:space:]]*(#|$)' "$HERE/conf/jvm17-server.options")
JVM_OPTS+=(
	"-Xms$CASS_HEAP" "-Xmx$CASS_HEAP" "-XX:MaxDirectMemorySize=$CASS_HEAP"
	"-javaagent:$JAMM"                                    # as cassandra-env.sh does
	"-Dcassandra.config=file://$CASS_WORK/cassandra.yaml" # a URL, not a path
	"-Dcassandra.storagedir=$CASS_WORK"
	"-Dcassandra.logdir=$CASS_WORK/logs"
	"-Dcassandra.triggers_dir=$CASS_WORK/triggers"
	"-Dlogback.configurationFile=$HERE/conf/logback.xml"
	"-Dcassandra-foreground=yes"                          # else it closes stdout/stderr
	"-Dcassandra.skip_wait_for_gossip_to_settle=0"        # one node: nothing to wait for
	"-Dcassandra.load_ring_state=false"
	"-Dcassandra.ring_delay_ms=5000"
	"-Dcassandra.unsafesystem=true"                       # no fsync of system tables
	"-Dchronicle.analytics.disable=true"
	"-XX:HeapDumpPath=$CASS_WORK"
)
[ -n "$CASS_JMX_PORT" ] && JVM_OPTS+=("-Dcassandra.jmx.local.port=$CASS_JMX_PORT")

# In its own session, so the shell that started it may exit or be interrupted. setsid
# forks when it is a process group leader (under job control), so the JVM's PID is
# not always $!: the shell it runs writes its own PID, then becomes the JVM.
rm -f "$CASS_WORK/cassandra.pid"
# shellcheck disable=SC2016
setsid bash -c 'echo $$ >"$1/cassandra.pid"; shift; exec "$@"' _ "$CASS_WORK" \
	"$JAVA" "${JVM_OPTS[@]}" -cp "$CASS_LIB/*" org.apache.cassandra.service.CassandraDaemon \
	>"$CASS_WORK/logs/stdout.log" 2>&1 </dev/null &
for _ in $(seq 50); do [ -s "$CASS_WORK/cassandra.pid" ] && break; sleep 0.1; done
PID=$(cat "$CASS_WORK/cassandra.pid")
echo "cassandra: $CASS_VERSION starting, pid $PID, logs in $CASS_WORK/logs"

# The native transport (CQL) opens last, just before "Startup complete".
start=$SECONDS
until port_taken "$CASS_CQL_PORT"; do
	if ! kill -0 "$PID" 2>/dev/null; then
		echo "cassandra: exited during start:" >&2
		tail -n 60 "$CASS_WORK/logs/stdout.log" >&2
		rm -f "$CASS_WORK/cassandra.pid"
		exit 1
	fi
	if ((SECONDS - start >= CASS_START_TIMEOUT)); then
		echo "cassandra: not answering on $CASS_CQL_PORT after ${CASS_START_TIMEOUT}s; stopping it" >&2
		tail -n 60 "$CASS_WORK/logs/stdout.log" >&2
		"$HERE/stop.sh" >&2 || true
		exit 1
	fi
	sleep 1
done
echo "cassandra: CQL ready on 127.0.0.1:$CASS_CQL_PORT after $((SECONDS - start)) s"
