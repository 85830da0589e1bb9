#!/usr/bin/env bash
# Runs one bench scenario against Switchboard and then against Kannel, on
# the same SMSC simulator (one `switchboard smsc` process for both runs),
# and prints both rows and their ratio.
#
#   bench/kannel/compare.sh [SCENARIO.yaml] [extra bench flags...]
#   bench/kannel/compare.sh bench/scenarios/steady.yaml --rate 3000 --duration 20s
#
# Switchboard runs as its real binary (--gateway-bin), so its CPU and RSS
# are its own; Kannel's are bearerbox's and smsbox's, read from /proc at
# the end of each run. Results (JSON and SVG per target) go to $OUT
# (default a new directory under /tmp). Everything listens on 127.0.0.1 and
# everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

scenario=${1:-bench/scenarios/steady.yaml}
shift || true
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
"$benchbin" --scenario "$scenario" --gateway-bin "$bin" --smsc "$SIM_ADDR" \
	--out "$OUT/switchboard.json" --plot "$OUT/switchboard.svg" "$@" | tee "$OUT/switchboard.txt" | grep -v '^\['

echo "== Kannel ($scenario) → $OUT/kannel.json"
# The driver measures bearerbox (--pid); smsbox's CPU is read at the end.
bench/kannel/run-kannel.sh --smsc "$SIM_ADDR" -- bash -c '
	"$0" --scenario "$1" --target kannel --smsc "$2" --kannel-url "${KANNEL_SENDSMS_URL%/cgi-bin/sendsms}" \
		--kannel-user "$KANNEL_SENDSMS_USER" --kannel-pass "$KANNEL_SENDSMS_PASSWORD" --pid "$KANNEL_BEARERBOX_PID" \
		--out "$3/kannel.json" --plot "$3/kannel.svg" "${@:4}" | tee "$3/kannel.txt" | grep -v "^\["
	awk "{print (\$14+\$15)/100}" /proc/$KANNEL_SMSBOX_PID/stat > "$3/smsbox_cpu_s"
	awk "/VmRSS/ {print \$2/1024}" /proc/$KANNEL_SMSBOX_PID/status > "$3/smsbox_rss_mb"
' "$benchbin" "$scenario" "$SIM_ADDR" "$OUT" "$@"

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = []
for name in ("switchboard", "kannel"):
    r = json.load(open(os.path.join(out, name + ".json")))
    s = r.get("summary") or {}
    e2e = s.get("e2e_latency") or {}
    rows.append((name, s.get("accepted_per_s", 0), s["accept_latency"]["p50_ms"], s["accept_latency"]["p99_ms"],
                 s.get("delivered_per_s", 0), e2e.get("p50_ms", 0), e2e.get("p99_ms", 0), s.get("lost", 0),
                 s.get("gateway_cpu_cores", 0), s.get("rss_mb_peak", 0)))
m = rows[0][-1]
print()
print("| target | accepted/s | accept p50 ms | accept p99 ms | delivered/s | e2e p50 ms | e2e p99 ms | lost | CPU cores | peak RSS MB |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print("| %s | %.0f | %.2f | %.2f | %.0f | %.1f | %.1f | %d | %.2f | %.0f |" % r)
sb, k = rows
def ratio(a, b):
    return "%.2f" % (a / b) if b else "—"
print("| Switchboard ÷ Kannel | %s | %s | %s | %s | %s | %s | | | |" % (
    ratio(sb[1], k[1]), ratio(sb[2], k[2]), ratio(sb[3], k[3]), ratio(sb[4], k[4]), ratio(sb[5], k[5]), ratio(sb[6], k[6])))
try:
    print("\nKannel CPU/RSS above are bearerbox's; smsbox used %s CPU-seconds in all and %s MB RSS at the end." % (
        open(os.path.join(out, "smsbox_cpu_s")).read().strip(), open(os.path.join(out, "smsbox_rss_mb")).read().strip()))
except OSError:
    pass
print("results:", out)
PY
