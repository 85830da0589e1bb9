#!/usr/bin/env bash
# run-kannel.sh: run Kannel 1.4.5 (bearerbox + smsbox) against an SMPP
# simulator, configured from kannel.conf.tmpl beside this script, for a
# benchmark side by side with Switchboard. See README.md beside it.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage:
  run-kannel.sh [options] -- CMD [ARGS...]  start Kannel, run CMD with KANNEL_* in its
                                           environment, stop Kannel; exit with CMD's status
  run-kannel.sh [options] start             start Kannel in the background, print KANNEL_*=...
                                           lines on stdout, exit; e.g.
                                           set -a; eval "$(run-kannel.sh start)"; set +a
  run-kannel.sh [options] stop [DIR]        stop the Kannel started in DIR (default $KANNEL_DIR)
  run-kannel.sh [options] run               start Kannel, stay in the foreground until
                                           SIGINT/SIGTERM, then stop it
  run-kannel.sh [options] render            print the rendered kannel.conf and exit
  run-kannel.sh -h | --help

Options (each has an environment variable; the flag wins):
  --smsc HOST:PORT       the simulator's SMPP address       SMSC_HOST, SMSC_PORT (127.0.0.1:2775)
  --system-id ID         bind system_id                      SYSTEM_ID (kannel)
  --password PW          bind password                       PASSWORD (secret)
  --binds N              transceiver binds (instances)       BINDS (2)
  --window N             max-pending-submits per bind        WINDOW (64)
  --id-format F          simulator --id-format: decimal, hex, hex_resp_decimal_receipt
                         (sets msg-id-type)                  ID_FORMAT (decimal)
  --enquire-link SECS    enquire-link-interval               ENQUIRE_LINK (30)
  --admin-port P         bearerbox admin/status HTTP port    ADMIN_PORT (13000)
  --admin-password PW    admin and status password           ADMIN_PASSWORD (bench)
  --smsbox-port P        bearerbox port for smsbox           SMSBOX_PORT (13001)
  --sendsms-port P       smsbox sendsms HTTP port            SENDSMS_PORT (13013)
  --user USER:PASS       sendsms-user                        SENDSMS_USER, SENDSMS_PASSWORD (bench:bench)
  --log-level N          0 debug .. 4 panic                  LOG_LEVEL (2, warning)
  --queue-limit N        sms-outgoing-queue-limit; beyond it sendsms answers 503
                                                             QUEUE_LIMIT (-1, unlimited)
  --dir DIR              config, store, logs, pids           KANNEL_DIR (new mktemp -d /tmp/kannel.XXXXXX)
  --timeout SECS         how long to wait for readiness      READY_TIMEOUT (30)
  --keep                 keep a directory this script made   KEEP=1 (removed on stop otherwise)

Printed when ready (stdout, one KEY=value a line; everything else goes to stderr):
  KANNEL_SENDSMS_URL=http://127.0.0.1:13013/cgi-bin/sendsms
  KANNEL_SENDSMS_USER, KANNEL_SENDSMS_PASSWORD, KANNEL_STATUS_URL, KANNEL_DIR,
  KANNEL_BEARERBOX_PID, KANNEL_SMSBOX_PID
Installs the Debian package `kannel` with apt-get when bearerbox is missing.
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template=${KANNEL_TEMPLATE:-$here/kannel.conf.tmpl}

SMSC_HOST=${SMSC_HOST:-127.0.0.1}
SMSC_PORT=${SMSC_PORT:-2775}
SYSTEM_ID=${SYSTEM_ID:-kannel}
PASSWORD=${PASSWORD:-secret}
BINDS=${BINDS:-2}
WINDOW=${WINDOW:-64}
ID_FORMAT=${ID_FORMAT:-decimal}
ENQUIRE_LINK=${ENQUIRE_LINK:-30}
ADMIN_PORT=${ADMIN_PORT:-13000}
ADMIN_PASSWORD=${ADMIN_PASSWORD:-bench}
SMSBOX_PORT=${SMSBOX_PORT:-13001}
SENDSMS_PORT=${SENDSMS_PORT:-13013}
SENDSMS_USER=${SENDSMS_USER:-bench}
SENDSMS_PASSWORD=${SENDSMS_PASSWORD:-bench}
LOG_LEVEL=${LOG_LEVEL:-2}
QUEUE_LIMIT=${QUEUE_LIMIT:--1}
KANNEL_DIR=${KANNEL_DIR:-}
READY_TIMEOUT=${READY_TIMEOUT:-30}
KEEP=${KEEP:-0}

log() { echo "run-kannel: $*" >&2; }
die() {
	log "$*"
	KEEP=1 # keep the logs of a failed start
	exit 1
}

mode=
stop_dir=
cmd=()
while (($#)); do
	case $1 in
	--smsc)
		SMSC_HOST=${2%:*} SMSC_PORT=${2##*:}
		shift 2
		;;
	--system-id) SYSTEM_ID=$2 && shift 2 ;;
	--password) PASSWORD=$2 && shift 2 ;;
	--binds) BINDS=$2 && shift 2 ;;
	--window) WINDOW=$2 && shift 2 ;;
	--id-format) ID_FORMAT=$2 && shift 2 ;;
	--enquire-link) ENQUIRE_LINK=$2 && shift 2 ;;
	--admin-port) ADMIN_PORT=$2 && shift 2 ;;
	--admin-password) ADMIN_PASSWORD=$2 && shift 2 ;;
	--smsbox-port) SMSBOX_PORT=$2 && shift 2 ;;
	--sendsms-port) SENDSMS_PORT=$2 && shift 2 ;;
	--user)
		SENDSMS_USER=${2%%:*} SENDSMS_PASSWORD=${2#*:}
		shift 2
		;;
	--log-level) LOG_LEVEL=$2 && shift 2 ;;
	--queue-limit) QUEUE_LIMIT=$2 && shift 2 ;;
	--dir) KANNEL_DIR=$2 && shift 2 ;;
	--timeout) READY_TIMEOUT=$2 && shift 2 ;;
	--keep) KEEP=1 && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		(($#)) || die "-- needs a command"
		mode=exec cmd=("$@")
		break
		;;
	start | run | render)
		mode=$1
		shift
		;;
	stop)
		mode=stop
		shift
		if (($#)) && [[ $1 != -* ]]; then
			stop_dir=$1
			shift
		fi
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done
[[ -n $mode ]] || {
	usage >&2
	exit 2
}

for v in SMSC_PORT BINDS WINDOW ENQUIRE_LINK ADMIN_PORT SMSBOX_PORT SENDSMS_PORT LOG_LEVEL READY_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done
[[ $QUEUE_LIMIT =~ ^-?[0-9]+$ ]] || die "QUEUE_LIMIT must be a number, got '$QUEUE_LIMIT'"
((BINDS >= 1)) || die "BINDS must be at least 1"
case $ID_FORMAT in
decimal) MSG_ID_TYPE=0x00 ;;
hex) MSG_ID_TYPE=0x03 ;;
hex_resp_decimal_receipt) MSG_ID_TYPE=0x01 ;;
*) die "unknown --id-format '$ID_FORMAT' (decimal, hex, hex_resp_decimal_receipt)" ;;
esac

# Kannel's binaries are in /usr/sbin, often not in a non-root PATH.
find_box() { PATH=$PATH:/usr/sbin:/usr/local/sbin command -v "$1" || true; }

install_kannel() {
	[[ -n $(find_box bearerbox) ]] && return
	log "bearerbox not found: installing the Debian package kannel"
	local sudo=()
	((EUID == 0)) || sudo=(sudo)
	"${sudo[@]}" apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q kannel >&2
	# The package may start its own bearerbox/wapbox (/etc/kannel/kannel.conf,
	# admin port 13000): stop it and keep it from starting at boot.
	if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
		"${sudo[@]}" systemctl disable --now kannel >&2 || true
	elif [[ -x /etc/init.d/kannel ]]; then
		"${sudo[@]}" /etc/init.d/kannel stop >&2 || true
		"${sudo[@]}" update-rc.d kannel disable >&2 2>&1 || true
	fi
	[[ -n $(find_box bearerbox) ]] || die "bearerbox still missing after apt-get install kannel"
}

render() {
	local dir=$1 tmpl
	tmpl=$(<"$template")
	local -A vals=(
		[SMSC_HOST]=$SMSC_HOST [SMSC_PORT]=$SMSC_PORT [SYSTEM_ID]=$SYSTEM_ID [PASSWORD]=$PASSWORD
		[BINDS]=$BINDS [WINDOW]=$WINDOW [MSG_ID_TYPE]=$MSG_ID_TYPE [ENQUIRE_LINK]=$ENQUIRE_LINK
		[ADMIN_PORT]=$ADMIN_PORT [ADMIN_PASSWORD]=$ADMIN_PASSWORD [SMSBOX_PORT]=$SMSBOX_PORT
		[SENDSMS_PORT]=$SENDSMS_PORT [SENDSMS_USER]=$SENDSMS_USER [SENDSMS_PASSWORD]=$SENDSMS_PASSWORD
		[STORE_DIR]=$dir [LOG_DIR]=$dir [LOG_LEVEL]=$LOG_LEVEL [QUEUE_LIMIT]=$QUEUE_LIMIT
	)
	local k
	for k in "${!vals[@]}"; do
		[[ ${vals[$k]} =~ ^[^[:space:]\"\'\$\`\\]*$ ]] || die "$k must not contain blanks, quotes, \$, \` or \\"
		tmpl=${tmpl//"{{$k}}"/"${vals[$k]}"}
	done
	[[ $tmpl != *'{{'* ]] || die "template has placeholders left: $(grep -o '{{[A-Z_]*}}' <<<"$tmpl" | sort -u | tr '\n' ' ')"
	printf '%s\n' "$tmpl"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# listening PORT: a TCP socket listens on PORT (from /proc, no connection).
listening() {
	awk -v p="$(printf ':%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# alive PID NAME: PID is running and is NAME (not a recycled pid).
alive() { [[ -r /proc/$1/comm && $(</proc/"$1"/comm) == "$2" ]]; }

# wait_exec PID NAME: wait until the child just forked has exec'd NAME
# (until then its comm is bash's), so that alive can tell it apart.
wait_exec() {
	local i
	for ((i = 0; i < 100; i++)); do
		alive "$1" "$2" && return 0
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.02
	done
}

status_url() { echo "http://127.0.0.1:$ADMIN_PORT/status.txt?password=$ADMIN_PASSWORD"; }

# stop_boxes DIR: TERM smsbox, then bearerbox (it closes the binds and
# dumps its store), KILL what is still up 15 s later.
stop_boxes() {
	local dir=$1 name pid i
	for name in smsbox bearerbox; do
		[[ -f $dir/$name.pid ]] || continue
		pid=$(<"$dir/$name.pid")
		if alive "$pid" "$name"; then
			kill -TERM "$pid" 2>/dev/null || true
			for ((i = 0; i < 150; i++)); do
				alive "$pid" "$name" || break
				sleep 0.1
			done
			if alive "$pid" "$name"; then
				log "$name ($pid) still up after 15 s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
		rm -f "$dir/$name.pid"
	done
	if [[ -f $dir/.made-by-run-kannel && $KEEP != 1 ]]; then
		rm -rf "$dir"
	else
		log "logs and store kept in $dir"
	fi
}

start_boxes() {
	install_kannel
	command -v curl >/dev/null || die "curl is needed (apt-get install -y curl)"
	local bearerbox smsbox p
	bearerbox=$(find_box bearerbox)
	smsbox=$(find_box smsbox)
	for p in "$ADMIN_PORT" "$SMSBOX_PORT" "$SENDSMS_PORT"; do
		! port_busy "$p" || die "port $p is already in use (another Kannel? the package's service?)"
	done
	if [[ -z $KANNEL_DIR ]]; then
		KANNEL_DIR=$(mktemp -d /tmp/kannel.XXXXXX)
		touch "$KANNEL_DIR/.made-by-run-kannel"
	fi
	mkdir -p "$KANNEL_DIR"
	KANNEL_DIR=$(cd "$KANNEL_DIR" && pwd)
	[[ ! -f $KANNEL_DIR/kannel.store ]] ||
		log "note: $KANNEL_DIR/kannel.store exists: its unsent messages will be sent again"
	render "$KANNEL_DIR" >"$KANNEL_DIR/kannel.conf"

	# -v sets the level of the console log, here a file; log-level in the
	# config sets the log files'. stdin/stdout are detached so that a
	# caller's $(run-kannel.sh start) does not wait for the boxes.
	"$bearerbox" -v "$LOG_LEVEL" "$KANNEL_DIR/kannel.conf" \
		</dev/null >"$KANNEL_DIR/bearerbox.console" 2>&1 &
	echo $! >"$KANNEL_DIR/bearerbox.pid"
	local bpid=$! spid= deadline=$((SECONDS + READY_TIMEOUT))
	wait_exec "$bpid" bearerbox
	# The smsbox needs bearerbox's box port; it gives up at once when it
	# cannot connect. The port is not probed by connecting: bearerbox
	# accepts nothing there while it starts, and probes would fill the
	# listen backlog (10) so that the smsbox's connect is refused.
	until listening "$SMSBOX_PORT"; do
		alive "$bpid" bearerbox || {
			tail -n 20 "$KANNEL_DIR/bearerbox.console" "$KANNEL_DIR/bearerbox.log" >&2 2>/dev/null || true
			die "bearerbox exited at startup (logs in $KANNEL_DIR)"
		}
		((SECONDS < deadline)) || die "bearerbox did not listen on port $SMSBOX_PORT in ${READY_TIMEOUT}s"
		sleep 0.1
	done
	"$smsbox" -v "$LOG_LEVEL" "$KANNEL_DIR/kannel.conf" \
		</dev/null >"$KANNEL_DIR/smsbox.console" 2>&1 &
	spid=$!
	echo "$spid" >"$KANNEL_DIR/smsbox.pid"
	wait_exec "$spid" smsbox

	# Ready: every bind online, the smsbox connected, sendsms answering
	# (without credentials it answers 403 "Authorization failed").
	local st online code
	while :; do
		alive "$bpid" bearerbox || die "bearerbox exited (logs in $KANNEL_DIR)"
		alive "$spid" smsbox || die "smsbox exited (logs in $KANNEL_DIR)"
		st=$(curl -s --max-time 2 "$(status_url)" || true)
		online=$(grep -c 'SMPP:.*(online' <<<"$st" || true)
		code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$SENDSMS_PORT/cgi-bin/sendsms" || true)
		if ((online == BINDS)) && grep -q 'smsbox:.*on-line' <<<"$st" && [[ $code =~ ^[1-5][0-9][0-9]$ ]]; then
			break
		fi
		if ((SECONDS >= deadline)); then
			log "not ready after ${READY_TIMEOUT}s: $online of $BINDS binds online, sendsms answered '$code'"
			grep -E 'SMPP:|smsbox:' <<<"$st" >&2 || true
			grep -v -e 'fopen failed' -e 'System error 2:' "$KANNEL_DIR/bearerbox.log" 2>/dev/null | tail -n 5 >&2 || true
			die "logs in $KANNEL_DIR"
		fi
		sleep 0.2
	done
	log "ready: $BINDS binds to $SMSC_HOST:$SMSC_PORT online, dir $KANNEL_DIR"
}

print_env() {
	cat <<EOF
KANNEL_SENDSMS_URL=http://127.0.0.1:$SENDSMS_PORT/cgi-bin/sendsms
KANNEL_SENDSMS_USER=$SENDSMS_USER
KANNEL_SENDSMS_PASSWORD=$SENDSMS_PASSWORD
KANNEL_STATUS_URL=$(status_url)
KANNEL_DIR=$KANNEL_DIR
KANNEL_BEARERBOX_PID=$(<"$KANNEL_DIR/bearerbox.pid")
KANNEL_SMSBOX_PID=$(<"$KANNEL_DIR/smsbox.pid")
EOF
}

case $mode in
render)
	render "${KANNEL_DIR:-/tmp/kannel}"
	;;
stop)
	stop_dir=${stop_dir:-$KANNEL_DIR}
	[[ -n $stop_dir && -d $stop_dir ]] || die "stop: no directory (give DIR or set KANNEL_DIR)"
	stop_boxes "$stop_dir"
	;;
start)
	# Stop what was started if starting fails; leave it running once ready.
	started=0
	trap '((started)) || [[ -z $KANNEL_DIR ]] || stop_boxes "$KANNEL_DIR"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_boxes
	started=1
	print_env
	;;
run)
	trap 'stop_boxes "$KANNEL_DIR"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_boxes
	print_env
	log "running; Ctrl-C or SIGTERM to stop"
	while alive "$(<"$KANNEL_DIR/bearerbox.pid")" bearerbox; do
		sleep 1 &
		wait $! || true
	done
	die "bearerbox exited (logs in $KANNEL_DIR)"
	;;
exec)
	trap 'stop_boxes "$KANNEL_DIR"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_boxes
	while IFS= read -r line; do
		export "${line?}"
	done < <(print_env)
	print_env >&2
	rc=0
	"${cmd[@]}" || rc=$?
	exit "$rc"
	;;
esac
