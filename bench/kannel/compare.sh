#!/usr/bin/env bash
# Runs one bench scenario against Switchboard and then against Kannel, on
# the same SMSC simulator (one `switchboard smsc` process for both runs),
# and prints both rows and their ratio.
#
#   bench/kannel/compare.sh [SCENARIO.yaml] [extra bench flags...]
#   bench/kannel/compare.sh bench/scenarios/steady.yaml --rate 3000 --duration 20s
#
# Switchboard runs as its real binary (--gateway-bin), so its CPU and RSS
# are its own; Kannel's are bearerbox's and smsbox's together (--pid with
# both), over the same measured window. Each row has the CPU per delivered
# message: the process(es)' CPU time in the window over the final
# callbacks (Kannel: DLRs) received in it. Results (JSON and SVG per target) go to $OUT
# (default a new directory under /tmp). Everything listens on 127.0.0.1 and
# everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

scenario=${1:-bench/scenarios/steady.yaml}
shift || true
# Flags that shape only one side would make the rows incomparable: the
# carrier's binds, window and pace reach the Switchboard run alone (Kannel
# keeps its template's), the receipt delay is the shared simulator's
# (RECEIPT_DELAY), and the webhook settings are Switchboard's.
for a in "$@"; do
	case ${a#"${a%%[!-]*}"} in # the flag without its dashes (Go takes - and --)
	binds* | window* | carrier-tps* | receipt-delay* | callback-batch* | callback-statuses* | webhook-concurrency* | \
		storage* | max-queued* | reconnect-min* | reconnect-max*)
		echo "compare.sh: $a would apply to one side only; set it in both gateways' templates (or RECEIPT_DELAY=...)" >&2
		exit 2
		;;
	esac
done
OUT=${OUT:-$(mktemp -d /tmp/compare.XXXXXX)}
SIM_ADDR=${SIM_ADDR:-127.0.0.1:27750}
# Kannel loses receipts that arrive before it has stored the submit_sm_resp
# (bearerbox.log: "got DLR but could not find message"); our simulator sends
# them at once by default. 100 ms gives both gateways the same, realistic gap.
RECEIPT_DELAY=${RECEIPT_DELAY:-100ms}

bin=$OUT/switchboard
go build -o "$bin" ./cmd/switchboard
benchbin=$OUT/bench
go build -o "$benchbin" ./bench

sim_pid=
cleanup() { [[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true; }
trap cleanup EXIT
"$bin" smsc --listen "$SIM_ADDR" --receipt-delay "$RECEIPT_DELAY" --stats-interval 0 --log-level warn &
sim_pid=$!

echo "== Switchboard ($scenario) → $OUT/switchboard.json"
# A failed run (messages lost) still gets its Kannel row beside it.
sb_status=0
"$benchbin" --scenario "$scenario" --gateway-bin "$bin" --smsc "$SIM_ADDR" \
	--out "$OUT/switchboard.json" --plot "$OUT/switchboard.svg" "$@" | tee "$OUT/switchboard.txt" | grep -v '^\[' ||
	sb_status=$?

echo "== Kannel ($scenario) → $OUT/kannel.json"
# The driver measures bearerbox and smsbox together (--pid with both).
k_status=0
bench/kannel/run-kannel.sh --smsc "$SIM_ADDR" -- bash -c '
	"$0" --scenario "$1" --target kannel --smsc "$2" --kannel-url "${KANNEL_SENDSMS_URL%/cgi-bin/sendsms}" \
		--kannel-user "$KANNEL_SENDSMS_USER" --kannel-pass "$KANNEL_SENDSMS_PASSWORD" \
		--pid "$KANNEL_BEARERBOX_PID,$KANNEL_SMSBOX_PID" \
		--out "$3/kannel.json" --plot "$3/kannel.svg" "${@:4}" | tee "$3/kannel.txt" | grep -v "^\["
' "$benchbin" "$scenario" "$SIM_ADDR" "$OUT" "$@" || k_status=$?

for side in switchboard kannel; do
	if [[ ! -s $OUT/$side.json ]]; then
		echo "compare.sh: the $side run wrote no results (exit statuses: Switchboard $sb_status, Kannel $k_status); see $OUT/$side.txt" >&2
		exit 1
	fi
done

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
reports = {name: json.load(open(os.path.join(out, name + ".json"))) for name in ("switchboard", "kannel")}
def ratio(a, b):
    return "%.2f" % (a / b) if b else "—"
def row(name, s):
    e2e = s.get("e2e_latency") or {}
    return (name, s.get("accepted_per_s", 0), s["accept_latency"]["p50_ms"], s["accept_latency"]["p99_ms"],
            s.get("delivered_per_s", 0), e2e.get("p50_ms", 0), e2e.get("p99_ms", 0), s.get("lost", 0),
            s.get("gateway_cpu_cores", 0), s.get("cpu_us_per_msg", 0), s.get("rss_mb_peak", 0))
head = "| target | accepted/s | accept p50 ms | accept p99 ms | delivered/s | e2e p50 ms | e2e p99 ms | lost | CPU cores | CPU µs per delivered msg | peak RSS MB |"
fmt = "| %s | %.0f | %.2f | %.2f | %.0f | %.1f | %.1f | %d | %.2f | %.0f | %.0f |"
print()
if all(r.get("ramp") for r in reports.values()):
    # The ramp: every step of both, then the highest sustainable rates.
    for name, r in reports.items():
        print("%s ramp:" % name)
        print(head.replace("| target |", "| step |"))
        print("| --- " * 11 + "|")
        for st in r["ramp"]["steps"]:
            verdict = "ok" if st["ok"] else st.get("reason", "")
            print(fmt % row("%.0f/s (%s)" % (st["rate"], verdict), st["summary"]))
        print()
    sb, k = (reports[n]["ramp"]["highest_sustainable_rate"] for n in ("switchboard", "kannel"))
    print("| highest sustainable rate (p99 accept <= %.0f ms, nothing lost) | Switchboard | Kannel | Switchboard ÷ Kannel |" %
          reports["switchboard"]["ramp"]["p99_limit_ms"])
    print("| --- | ---: | ---: | ---: |")
    print("| msg/s | %.0f | %.0f | %s |" % (sb, k, ratio(sb, k)))
    for name, r in reports.items():
        print("%s stopped: %s" % (name, r["ramp"].get("stopped", "")))
else:
    rows = [row(n, reports[n].get("summary") or {}) for n in ("switchboard", "kannel")]
    print(head)
    print("| --- " + "| ---: " * 10 + "|")
    for r in rows:
        print(fmt % r)
    sb, k = rows
    print("| Switchboard ÷ Kannel | %s | %s | %s | %s | %s | %s | | %s | %s | %s |" % (
        ratio(sb[1], k[1]), ratio(sb[2], k[2]), ratio(sb[3], k[3]), ratio(sb[4], k[4]), ratio(sb[5], k[5]),
        ratio(sb[6], k[6]), ratio(sb[8], k[8]), ratio(sb[9], k[9]), ratio(sb[10], k[10])))
print("\nKannel's CPU and RSS are bearerbox's and smsbox's together; Switchboard's the gateway process's alone.")
print("results:", out)
PY
for run in "Switchboard $sb_status switchboard" "Kannel $k_status kannel"; do
	read -r name status file <<<"$run"
	if ((status != 0)); then
		echo "the $name run failed (exit $status): see $OUT/$file.txt" >&2
	fi
done
if ((sb_status != 0 || k_status != 0)); then
	exit 1
fi
