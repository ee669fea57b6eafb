#!/usr/bin/env bash
# Compare loopback throughput and CPU cost: ntm vs iperf3 3.12 (issue 3, "Benchmarks").
#
# Two configurations, each DURATION seconds (env DURATION, default 10) per run:
#   1 stream:   ntm measure 127.0.0.1:PORT -t DURATION --format json
#                 against ntm serve --listen 127.0.0.1:PORT
#               iperf3 -c 127.0.0.1 -p PORT2 -t DURATION -J
#                 against iperf3 -s -p PORT2
#   4 streams:  the same with -P 4 on both clients.
# Each run goes ntm 1 stream, iperf3 1 stream, ntm 4 streams, iperf3 4 streams, so the tools
# alternate run by run; RUNS runs (env RUNS, default 3) per tool per configuration. The
# figures compared are medians, because the machine may be a noisy VM.
#
# Rate (both tools, Gbit/s = 1e9 bit/s): end.sum_received.bits_per_second, the bytes the
# receiver (server) counted / the receiver's test duration. ntm's JSON follows iperf3's -J
# layout, and its receiver sum comes from the server's own counters.
#
# CPU per GB: user+system CPU seconds of the client (/usr/bin/time -f "%U %S") plus the
# server (difference of utime+stime in /proc/PID/stat before and after the run; covers all
# server threads), divided by the GB moved (end.sum_received.bytes / 1e9). On loopback the
# kernel's TCP work for both directions is charged to the two processes, so this is the
# whole cost of moving the data on this machine, not just the tools' user-space work.
# A run whose ntm JSON says "partial" or lists end.failed_streams is flagged on its line and
# still counted: the rate and bytes are the server's own counters either way.
# Both tools' own end.cpu_utilization_percent (host_total = client, remote_total = server)
# are printed per run for reference only; the ratio uses the measured CPU seconds.
#
# Each tool runs with its own defaults; iperf3 is deliberately not tuned. Both write
# 128 KiB blocks (ntm's default --block is 128 KiB, like iperf3's default -l for TCP).
# They differ on the receive side: ntm's receiver discards the data with recv(MSG_TRUNC),
# so the kernel never copies it to user space, while iperf3 read()s it into a buffer.
# iperf3 3.12 is single-threaded (all -P streams on one thread); ntm spreads streams over
# its runtime's threads.
#
# Printed last, as ratios of the medians: single-stream rate ntm/iperf3 (target >= 1.0,
# goal 1.15), 4-stream rate ntm/iperf3 (target >= 1.0), CPU seconds per GB ntm/iperf3
# (target <= 1.0; median over all runs of both configurations; the last line).
#
# Usage: [RUNS=N] [DURATION=S] bench/throughput.sh      (from any directory)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RUNS="${RUNS:-3}"
DURATION="${DURATION:-10}"
require_whole_number RUNS 1 "an integer"
require_whole_number DURATION 1 "a whole number of seconds"

cd_repo_root

require_command python3
# The CPU-per-GB ratio needs the client's CPU time; Debian's "time" package has /usr/bin/time.
ensure_packages iperf3 /usr/bin/time=time
TIME=/usr/bin/time
TICKS="$(getconf CLK_TCK)"

build_ntm

make_workdir

# Runs one client: run_one TOOL STREAMS RUN. Appends a record to $WORK/records and prints
# the run's line.
run_one() {
    local tool="$1" streams="$2" run="$3" server_pid before after line
    local -a cmd
    if [[ "$tool" == ntm ]]; then
        server_pid="$NTM_PID"
        cmd=("$NTM" measure "127.0.0.1:$NTM_PORT" -t "$DURATION" -P "$streams" --format json)
    else
        server_pid="$IPERF_PID"
        cmd=(iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$DURATION" -P "$streams" -J)
    fi
    before="$(cpu_ticks "$server_pid")"
    if ! "$TIME" -f "%U %S" -o "$WORK/time" "${cmd[@]}" >"$WORK/out.json" 2>"$WORK/err"; then
        echo "$tool client ($streams stream(s)) failed in run $run:" >&2
        cat "$WORK/err" "$WORK/out.json" >&2
        exit 1
    fi
    after="$(cpu_ticks "$server_pid")"
    # Prints the run's line and appends "tool streams gbps bytes cpu_seconds" to records.
    line="$(python3 - "$tool" "$streams" "$run" "$WORK/out.json" "$WORK/time" \
        "$((after - before))" "$TICKS" "$WORK/records" <<'EOF'
import json, sys
tool, streams, run, out, timefile, ticks, hz, records = sys.argv[1:]
doc = json.load(open(out))
end = doc["end"]
rx = end["sum_received"]
notes = []
if doc.get("partial"):
    notes.append("PARTIAL")
failed = end.get("failed_streams") or []
if failed:
    first = failed[0]
    notes.append("%d stream(s) reported failed, e.g. client: %s, server: %s"
                 % (len(failed), first.get("client_error"), first.get("server_error")))
# /usr/bin/time prints "Command exited with non-zero status" first if it did; the last two
# fields are always user and system seconds.
user, system = (float(x) for x in open(timefile).read().split()[-2:])
client = user + system
server = int(ticks) / int(hz)
gb = rx["bytes"] / 1e9
gbps = rx["bits_per_second"] / 1e9
cpu = client + server
util = end.get("cpu_utilization_percent", {})
with open(records, "a") as f:
    f.write(f"{tool} {streams} {gbps:.6f} {rx['bytes']} {cpu:.3f}\n")
print(f"run {run}  {streams} stream(s)  {tool:<6} {gbps:7.2f} Gbit/s  {gb:6.2f} GB  "
      f"cpu client {client:5.2f} s  server {server:5.2f} s  {cpu / gb:6.3f} cpu-s/GB  "
      f"(own report: client {util.get('host_total', float('nan')):.0f}%, "
      f"server {util.get('remote_total', float('nan')):.0f}%)"
      + ("  " + "; ".join(notes) if notes else ""))
EOF
)"
    echo "$line"
}

start_ntm_and_iperf3_servers

print_header "ntm vs iperf3, loopback throughput, ${DURATION} s per run, 1 and 4 streams, $RUNS runs each, alternating" \
    "$(iperf3 --version | head -1)"
echo "# rates: end.sum_received, Gbit/s (1e9 bit/s); GB = 1e9 bytes received; cpu: user+system seconds"

: >"$WORK/records"

for ((run = 1; run <= RUNS; run++)); do
    for streams in 1 4; do
        run_one ntm "$streams" "$run"
        run_one iperf3 "$streams" "$run"
    done
done

python_stats "$WORK/records" <<'EOF'
rates, cpu_per_gb = {}, {}
for line in open(sys.argv[1]):
    tool, streams, gbps, nbytes, cpu = line.split()
    key = (tool, int(streams))
    rates.setdefault(key, []).append(float(gbps))
    cpu_per_gb.setdefault(key, []).append(float(cpu) / (int(nbytes) / 1e9))

for streams in (1, 4):
    for tool in ("ntm", "iperf3"):
        r, c = rates[(tool, streams)], cpu_per_gb[(tool, streams)]
        print(f"median {streams} stream(s) {tool:<6} {med(r):7.2f} Gbit/s {rng(r, '{:.2f}')}"
              f"  {med(c):6.3f} cpu-s/GB {rng(c, '{:.3f}')}")
for streams in (1, 4):
    print(f"info: ratio ntm/iperf3 cpu-s/GB, {streams} stream(s) only (median): "
          f"{med(cpu_per_gb[('ntm', streams)]) / med(cpu_per_gb[('iperf3', streams)]):.2f}")

all_cpu = {tool: cpu_per_gb[(tool, 1)] + cpu_per_gb[(tool, 4)] for tool in ("ntm", "iperf3")}
# The value is the last field of each ratio line.
print(f"ratio ntm/iperf3 single-stream rate (median Gbit/s; target >= 1.0, goal 1.15): "
      f"{med(rates[('ntm', 1)]) / med(rates[('iperf3', 1)]):.2f}")
print(f"ratio ntm/iperf3 4-stream rate (median Gbit/s; target >= 1.0): "
      f"{med(rates[('ntm', 4)]) / med(rates[('iperf3', 4)]):.2f}")
print(f"ratio ntm/iperf3 cpu seconds per GB (median of all runs, 1 and 4 streams; target <= 1.0): "
      f"{med(all_cpu['ntm']) / med(all_cpu['iperf3']):.2f}")
EOF
