# Shared by start.sh, stop.sh and nodetool.sh (sourced, not run): where the jars
# and the node's files live, its ports, and the Java to use. See start.sh.
CASS_VERSION=${CASS_VERSION:-5.0.8}
CASS_CQL_PORT=${CASS_CQL_PORT:-9042}
CASS_STORAGE_PORT=${CASS_STORAGE_PORT:-7000}
CASS_JMX_PORT=${CASS_JMX_PORT-7199}
LOCAL_SERVICES_CACHE=${LOCAL_SERVICES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard}
CASS_LIB=${CASS_LIB:-$LOCAL_SERVICES_CACHE/cassandra/lib-$CASS_VERSION}
CASS_WORK=${CASS_WORK:-$LOCAL_SERVICES_CACHE/cassandra/run-$CASS_CQL_PORT}
if [ -z "${JAVA_HOME:-}" ]; then
	for j in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk /usr/lib/jvm/openjdk-17; do
		[ -x "$j/bin/java" ] && JAVA_HOME=$j && break
	done
fi
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
