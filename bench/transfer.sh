#!/usr/bin/env bash
# Compare large loopback transfers: ntm vs iperf3 (issue 2).
#
# Sends 1 GiB over 127.0.0.1 with each tool, alternating ntm, iperf3, ntm, iperf3, ...
# RUNS times each (env RUNS, default 5, at least 3), then prints the median rate of each
# tool in Gbit/s and, as the last line, the ratio ntm/iperf3 of the medians.
#
#   ntm:    ntm measure 127.0.0.1:PORT --sizes 1GB --response 0 --format json
#           against ntm serve --listen 127.0.0.1:PORT
#   iperf3: iperf3 -c 127.0.0.1 -p PORT2 -n 1G -J
#           against iperf3 -s -p PORT2
#
# Both sizes are binary: ntm's 1GB and iperf3's 1G are each 1073741824 bytes.
#
# The rates compared (both are receiver-confirmed rates, 1 Gbit = 1e9 bits):
#   ntm    tests[0].runs[0].upload_bits_per_second: payload bits / upload_seconds, measured
#          on the client from the first payload byte written until the server's message
#          confirming it received every byte arrived back at the client.
#   iperf3 end.sum_received.bits_per_second: bits the server (receiver) counted as
#          received / the receiver's measured test duration, reported back to the client.
#
# CPU columns: user+system seconds used during the run by the client process (via
# /usr/bin/time, if installed) and by the already running server process (difference of
# utime+stime in /proc/PID/stat before and after the run; covers all server threads).
#
# Usage: [RUNS=N] bench/transfer.sh      (from any directory)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RUNS="${RUNS:-5}"
require_whole_number RUNS 3 "an integer"

cd_repo_root

require_command python3
ensure_packages iperf3

build_ntm

TIME=""
[[ -x /usr/bin/time ]] && TIME=/usr/bin/time
TICKS="$(getconf CLK_TCK)"

make_workdir

ticks_to_s() {
    python3 -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):.2f}")' "$1" "$TICKS"
}

# Client CPU seconds from the /usr/bin/time output file, or "n/a".
client_cpu() {
    if [[ -n "$TIME" && -s "$1" ]]; then
        python3 -c 'import sys; u, s = open(sys.argv[1]).read().split()[-2:]; print(f"{float(u) + float(s):.2f}")' "$1"
    else
        echo "n/a"
    fi
}

# Runs a client command, optionally under /usr/bin/time writing to $1.
run_client() {
    local timefile="$1"
    shift
    if [[ -n "$TIME" ]]; then
        "$TIME" -f "%U %S" -o "$timefile" "$@"
    else
        "$@"
    fi
}

start_ntm_and_iperf3_servers

print_header "ntm vs iperf3, 1 GiB over loopback, $RUNS runs each, alternating" \
    "$(iperf3 --version | head -1)"
echo "# rates: Gbit/s (1e9 bit/s), receiver-confirmed; cpu: seconds user+system"

: >"$WORK/ntm.rates"
: >"$WORK/iperf3.rates"

for ((run = 1; run <= RUNS; run++)); do
    # ntm
    before="$(cpu_ticks "$NTM_PID")"
    if ! run_client "$WORK/time" "$NTM" measure "127.0.0.1:$NTM_PORT" --sizes 1GB --response 0 \
        --format json >"$WORK/ntm.json" 2>"$WORK/ntm.err"; then
        echo "ntm measure failed in run $run:" >&2
        cat "$WORK/ntm.err" >&2
        exit 1
    fi
    after="$(cpu_ticks "$NTM_PID")"
    # Prints the rate, then a note if the server did not receive exactly 1 GiB.
    read -r rate note < <(python3 -c '
import json, sys
run = json.load(open(sys.argv[1]))["tests"][0]["runs"][0]
received = run["server_received_bytes"]
note = "" if received == 1 << 30 else "(server received %d bytes)" % received
print("%.3f" % (run["upload_bits_per_second"] / 1e9), note)
' "$WORK/ntm.json")
    echo "$rate" >>"$WORK/ntm.rates"
    printf 'run %d  ntm     %8s Gbit/s  cpu client %s  server %s%s\n' \
        "$run" "$rate" "$(client_cpu "$WORK/time")" "$(ticks_to_s $((after - before)))" "${note:+  $note}"

    # iperf3
    before="$(cpu_ticks "$IPERF_PID")"
    if ! run_client "$WORK/time" iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -n 1G -J \
        >"$WORK/iperf3.json" 2>"$WORK/iperf3.err"; then
        echo "iperf3 client failed in run $run:" >&2
        cat "$WORK/iperf3.err" "$WORK/iperf3.json" >&2
        exit 1
    fi
    after="$(cpu_ticks "$IPERF_PID")"
    # iperf3's server stops reading when the client's TEST_END arrives on the control
    # connection, so it can count slightly fewer bytes than the 1 GiB sent; noted if so.
    read -r rate note < <(python3 -c '
import json, sys
received = json.load(open(sys.argv[1]))["end"]["sum_received"]
note = "" if received["bytes"] == 1 << 30 else "(server counted %d bytes)" % received["bytes"]
print("%.3f" % (received["bits_per_second"] / 1e9), note)
' "$WORK/iperf3.json")
    echo "$rate" >>"$WORK/iperf3.rates"
    printf 'run %d  iperf3  %8s Gbit/s  cpu client %s  server %s%s\n' \
        "$run" "$rate" "$(client_cpu "$WORK/time")" "$(ticks_to_s $((after - before)))" "${note:+  $note}"
done

python_stats "$WORK/ntm.rates" "$WORK/iperf3.rates" <<'EOF'
ntm = [float(x) for x in open(sys.argv[1]).read().split()]
iperf = [float(x) for x in open(sys.argv[2]).read().split()]
m_ntm, m_iperf = med(ntm), med(iperf)
print(f"median ntm:    {m_ntm:.3f} Gbit/s {rng(ntm, '{:.3f}')}")
print(f"median iperf3: {m_iperf:.3f} Gbit/s {rng(iperf, '{:.3f}')}")
print(f"ratio ntm/iperf3 (median Gbit/s): {m_ntm / m_iperf:.2f}")
EOF
