#!/usr/bin/env bash
# Compare 64-byte request/response latency on loopback: ntm vs sockperf (issue 3, "Benchmarks").
#
# One TCP connection, one 64-byte request and one 64-byte response at a time, DURATION
# seconds (env DURATION, default 5) per run, alternating ntm, sockperf, ntm, sockperf, ...
# RUNS times each (env RUNS, default 5), then the medians and, as the last lines, the ratios.
#
#   ntm:      ntm latency 127.0.0.1:PORT -t DURATION --size 64 --format json
#             against ntm serve --listen 127.0.0.1:PORT
#   sockperf: sockperf ping-pong --tcp -i 127.0.0.1 -p PORT2 -t DURATION -m 64 [--full-rtt]
#             against sockperf server --tcp -i 127.0.0.1 -p PORT2
#
# Both sides are compared as FULL round trips (request out, response back), in microseconds:
#   ntm       rtt_us.p50 (ntm always reports full round trips).
#   sockperf  "percentile 50.000" with --full-rtt when this sockperf has the flag; without it
#             sockperf prints half the round trip ("latency"), and this script doubles it
#             (and says so in its output).
# Transactions per second:
#   ntm       transactions_per_second.
#   sockperf  ReceivedMessages / RunTime of its "[Valid Duration]" line (sockperf leaves its
#             own warm-up, about 400 ms, out of that line; ntm runs with its default
#             --warmup 0).
#
# Printed last, as ratios of the medians: p50 RTT ntm/sockperf (target <= 1.1) and, the last
# line, transactions per second ntm/sockperf (target >= 0.9). The value is the last field of
# each ratio line.
#
# On a small VM the RTT is bimodal, for both tools alike: about 5 us when client and server
# run on the same vCPU, about 70 us when they run on different vCPUs (each message wakes an
# idle vCPU). The scheduler decides, so single runs can jump between the two; compare the
# ratio, and pin both tools the same way to choose the regime: env SERVER_CPU and CLIENT_CPU
# (a CPU list for taskset, e.g. SERVER_CPU=0 CLIENT_CPU=0) pin the servers and the clients.
# Unset (the default), nothing is pinned.
#
# Usage: [RUNS=N] [DURATION=S] [SERVER_CPU=LIST] [CLIENT_CPU=LIST] bench/latency.sh
#        (from any directory)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RUNS="${RUNS:-5}"
DURATION="${DURATION:-5}"
require_whole_number RUNS 1 "an integer"
require_whole_number DURATION 1 "a whole number of seconds"

cd_repo_root

require_command python3
ensure_packages sockperf

build_ntm

SERVER_PIN=()
CLIENT_PIN=()
[[ -n "${SERVER_CPU:-}" ]] && SERVER_PIN=(taskset -c "$SERVER_CPU")
[[ -n "${CLIENT_CPU:-}" ]] && CLIENT_PIN=(taskset -c "$CLIENT_CPU")

# sockperf 3.x has --full-rtt; older versions print only half the round trip.
SP_HELP="$(sockperf ping-pong -h 2>&1 || true)"
if grep -q -- '--full-rtt' <<<"$SP_HELP"; then
    SP_FULL=(--full-rtt)
    SP_FACTOR=1
    SP_NOTE="sockperf with --full-rtt (full round trip)"
else
    SP_FULL=()
    SP_FACTOR=2
    SP_NOTE="this sockperf has no --full-rtt and prints HALF the round trip: its p50 is doubled here"
fi

make_workdir

free_port NTM_PORT
free_port SP_PORT

start_server ntm-server "$NTM_PORT" "${SERVER_PIN[@]}" "$NTM" serve --listen "127.0.0.1:$NTM_PORT"
start_server sockperf-server "$SP_PORT" "${SERVER_PIN[@]}" sockperf server --tcp -i 127.0.0.1 -p "$SP_PORT"

print_header "ntm vs sockperf, 64 B request/response over loopback, ${DURATION} s per run, $RUNS runs each, alternating" \
    "$(sockperf --version 2>&1 | head -1 || true)"
echo "# RTT: full round trip, microseconds; $SP_NOTE"
echo "# pinning: servers ${SERVER_CPU:-not pinned}, clients ${CLIENT_CPU:-not pinned}"

: >"$WORK/ntm.rec"
: >"$WORK/sockperf.rec"

for ((run = 1; run <= RUNS; run++)); do
    # ntm
    if ! "${CLIENT_PIN[@]}" "$NTM" latency "127.0.0.1:$NTM_PORT" -t "$DURATION" --size 64 --format json \
        >"$WORK/ntm.json" 2>"$WORK/ntm.err"; then
        echo "ntm latency failed in run $run:" >&2
        cat "$WORK/ntm.err" >&2
        exit 1
    fi
    python3 - "$run" "$WORK/ntm.json" "$WORK/ntm.rec" <<'EOF'
import json, sys
run, path, rec = sys.argv[1:]
doc = json.load(open(path))
rtt = doc["rtt_us"]
tps = doc["transactions_per_second"]
with open(rec, "a") as f:
    f.write(f"{rtt['p50']} {tps}\n")
note = "  PARTIAL" if doc.get("partial") else ""
print(f"run {run}  ntm       p50 {rtt['p50']:8.2f} us  p99 {rtt['p99']:8.2f} us  "
      f"mean {rtt['mean']:8.2f} us  {tps:9.0f} transactions/s  ({doc['transactions']} transactions){note}")
EOF

    # sockperf
    if ! "${CLIENT_PIN[@]}" sockperf ping-pong --tcp -i 127.0.0.1 -p "$SP_PORT" -t "$DURATION" -m 64 "${SP_FULL[@]}" \
        >"$WORK/sockperf.out" 2>&1; then
        echo "sockperf ping-pong failed in run $run:" >&2
        cat "$WORK/sockperf.out" >&2
        exit 1
    fi
    python3 - "$run" "$WORK/sockperf.out" "$WORK/sockperf.rec" "$SP_FACTOR" <<'EOF'
import re, sys
run, path, rec, factor = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
text = re.sub(r"\x1b\[[0-9;]*m", "", open(path).read())
def pct(p):
    m = re.search(r"percentile %s\s*=\s*([0-9.]+)" % re.escape(p), text)
    if not m:
        sys.exit(f"no 'percentile {p}' in sockperf's output:\n{text}")
    return float(m.group(1)) * factor
m = re.search(r"\[Valid Duration\] RunTime=([0-9.]+) sec;.*ReceivedMessages=([0-9]+)", text)
if not m:
    sys.exit(f"no '[Valid Duration]' line in sockperf's output:\n{text}")
runtime, received = float(m.group(1)), int(m.group(2))
tps = received / runtime
p50, p99 = pct("50.000"), pct("99.000")
m = re.search(r"avg-(?:rtt|latency)=([0-9.]+)", text)
mean = float(m.group(1)) * factor if m else float("nan")
with open(rec, "a") as f:
    f.write(f"{p50} {tps}\n")
print(f"run {run}  sockperf  p50 {p50:8.2f} us  p99 {p99:8.2f} us  "
      f"mean {mean:8.2f} us  {tps:9.0f} transactions/s  ({received} messages in {runtime:.3f} s)")
EOF
done

python_stats "$WORK/ntm.rec" "$WORK/sockperf.rec" <<'EOF'
def load(path):
    rows = [tuple(map(float, line.split())) for line in open(path)]
    return [r[0] for r in rows], [r[1] for r in rows]
ntm_rtt, ntm_tps = load(sys.argv[1])
sp_rtt, sp_tps = load(sys.argv[2])
print(f"median ntm:      p50 RTT {med(ntm_rtt):8.2f} us {rng(ntm_rtt, '{:.2f}')}"
      f"  {med(ntm_tps):9.0f} transactions/s {rng(ntm_tps, '{:.0f}')}")
print(f"median sockperf: p50 RTT {med(sp_rtt):8.2f} us {rng(sp_rtt, '{:.2f}')}"
      f"  {med(sp_tps):9.0f} transactions/s {rng(sp_tps, '{:.0f}')}")
print(f"ratio ntm/sockperf p50 full RTT (median us; target <= 1.1): {med(ntm_rtt) / med(sp_rtt):.2f}")
print(f"ratio ntm/sockperf transactions per second (median; target >= 0.9): {med(ntm_tps) / med(sp_tps):.2f}")
EOF
