#!/usr/bin/env bash
# nodetool for the node start.sh started, from the same jars:
#   deploy/local/cassandra/nodetool.sh status | tablestats switchboard | flush ...
# Needs JMX (CASS_JMX_PORT, default 7199). On Java 17 NodeTool needs the server's
# --add-exports/--add-opens flags too.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"
[ -n "$CASS_JMX_PORT" ] || { echo "nodetool: JMX is off (CASS_JMX_PORT is empty)" >&2; exit 1; }
mapfile -t OPTS < <(grep -E '^(--add-|-Dio\.netty|-Djdk)' "$HERE/conf/jvm17-server.options")
mkdir -p "$CASS_WORK/logs/nodetool"
exec "$JAVA" -Xmx128m "${OPTS[@]}" -cp "$CASS_LIB/*" \
	-Dlogback.configurationFile="$HERE/conf/logback.xml" -Dcassandra.logdir="$CASS_WORK/logs/nodetool" \
	-Duser.home="$CASS_WORK" \
	org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$CASS_JMX_PORT" "$@"
