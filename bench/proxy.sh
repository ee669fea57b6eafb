#!/usr/bin/env bash
# Benchmark the proxy: ntm proxy vs haproxy 2.6 (mode tcp) vs socat, and ntm proxy's shaping
# accuracy (issue 4, "Benchmarks"). Everything runs on 127.0.0.1.
#
# 1. Unshaped throughput. The same iperf3 test, iperf3 -c 127.0.0.1 -p PORT -t DURATION -J
#    (one stream, env DURATION, default 10 s), against one iperf3 -s, four ways:
#      direct   to iperf3 -s itself
#      ntm      through ntm proxy --listen 127.0.0.1:A --upstream 127.0.0.1:IPERF
#      haproxy  through haproxy -db -f CFG, a "listen" section in mode tcp (nbthread 2,
#               timeouts 1m; the config is written to a temporary directory and printed)
#      socat    through socat TCP-LISTEN:B,bind=127.0.0.1,fork,reuseaddr TCP:127.0.0.1:IPERF
#    The paths take turns going first (run 1: direct ntm haproxy socat, run 2: ntm haproxy socat
#    direct, ...). Every run starts iperf3 -s and the three proxies afresh on ports the kernel just found
#    free, and stops them after it: on this VM the ports a connection gets move its loopback
#    throughput by up to ~25% for every tool, so the median is taken over several draws.
#    Rate: end.sum_received.bits_per_second (what iperf3's server counted / its duration),
#    Gbit/s = 1e9 bit/s. Proxy CPU: user+system seconds the proxy process used during the run
#    (/proc/PID/stat before and after; for socat including its reaped per-connection children),
#    per GB received. Each tool runs with its defaults (socat copies in 8 KiB reads).
# 2. Added latency. ntm latency 127.0.0.1:PORT -t 1 --size 64 --format json against
#    ntm serve: direct, through an unshaped ntm proxy, through haproxy. Figure: rtt_us.p50, a
#    full round trip in microseconds. Added = median via - median direct over the runs (each
#    run's via - direct is printed too, and its median; see the summary for why not that).
#    This section has its own run count, LAT_RUNS (default 10 x RUNS, 1 s each, about 10,000
#    round trips): a round trip of ~60 us moves by ~20 us between runs here while a proxy adds
#    ~25 us, and each run (a new client process) draws its regime afresh, so many short runs
#    beat a few long ones (measured for the same two binaries: 9 runs of 3 s gave ratios of
#    0.96-1.24, 30 runs of 1 s 0.88 and 0.95). The paths take turns going first, so no path
#    always follows the same one.
#    On a small VM the RTT is bimodal: about 5 us when the processes share a vCPU, about 70 us
#    when each message has to wake another vCPU (see bench/latency.sh). A proxy adds a hop, so
#    the regime can change run by run. PIN=1 pins every process of this section (server,
#    proxies, clients) to CPU PIN_CPU (default 0) with taskset, for the same-vCPU regime;
#    PIN=0 (the default) pins nothing. The mode used is printed.
# 3. Shaping accuracy. ntm proxy --rate R (both directions) for R = 1, 10, 100, 1000 Mbit/s in
#    front of ntm serve; ntm measure 127.0.0.1:PROXY -t 5 -O 1 --format json (upload). -O 1
#    leaves the first second (TCP ramp-up and the token bucket's start) out of the figures:
#    measured = end.sum_received.bits_per_second, the server's bytes after the first second /
#    its time after the first second (which includes draining what sits in socket buffers and
#    the proxy's queue when the client stops, at the shaped rate). Printed: measured/configured.
#    Below 10 Mbit/s the client also gets -w 32KB (SO_SNDBUF/SO_RCVBUF): with default buffers
#    about 3 MB queue up in front of the 1 Mbit/s link, which takes ~25 s to drain, past
#    ntm measure's hard deadline (omit + duration + 2 x --timeout), and the run fails.
# 4. Delay accuracy. ntm proxy --delay D (one way, both directions, so 2 x D is added to the
#    RTT) for D = 5, 25, 100 ms; ntm latency 127.0.0.1:PROXY -n 200 --format json (64 B).
#    Error = rtt_us.p50 - 2 x D, nothing else subtracted. The p50 through an unshaped proxy
#    (same command, same server) is printed alongside for reference.
# Sections 3 and 4 are never pinned.
#
# Runs alternate: every run goes through all paths (or rates, delays) in turn, RUNS runs
# (env RUNS, default 3), and the figures are medians because the machine may be a noisy VM.
# The output ends with a summary table, then the ratio lines (the value is the last field of
# each; the last line is a ratio):
#   measured/configured rate at 1, 10, 100, 1000 Mbit/s   target within 0.97..1.03
#   ntm/haproxy unshaped throughput                        target >= 1.3, goal >= 2
#   ntm/haproxy added p50 latency (last line)              target <= 1.2
#
# Usage: [RUNS=N] [LAT_RUNS=N] [DURATION=S] [PIN=0|1] [PIN_CPU=N] bench/proxy.sh      (from any directory)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RUNS="${RUNS:-3}"
DURATION="${DURATION:-10}"
PIN="${PIN:-0}"
PIN_CPU="${PIN_CPU:-0}"
LAT_SECONDS=1
LAT_RUNS="${LAT_RUNS:-$((10 * RUNS))}"
SHAPE_SECONDS=5
DELAY_COUNT=200
RATES_MBIT=(1 10 100 1000)
DELAYS_MS=(5 25 100)
require_whole_number RUNS 1 "an integer"
require_whole_number LAT_RUNS 1 "an integer"
require_whole_number DURATION 1 "a whole number of seconds"
if [[ "$PIN" != 0 && "$PIN" != 1 ]]; then
    echo "PIN must be 0 or 1 (got '$PIN')" >&2
    exit 2
fi

cd_repo_root

require_command python3
ensure_packages iperf3 haproxy socat taskset=util-linux

build_ntm

LAT_PIN=()
if [[ "$PIN" == 1 ]]; then
    LAT_PIN=(taskset -c "$PIN_CPU")
    PIN_NOTE="PIN=1: every process of the latency section on CPU $PIN_CPU, the same-vCPU regime"
else
    PIN_NOTE="PIN=0: nothing pinned, the scheduler picks the regime"
fi

make_workdir
TICKS="$(getconf CLK_TCK)"

# ---- servers and proxies -------------------------------------------------------------------
# haproxy's settings, for both of its configs.
HAP_GLOBAL="global
    nbthread 2
    maxconn 1000

defaults
    mode tcp
    timeout connect 1m
    timeout client 1m
    timeout server 1m
"

# Throughput: every run starts iperf3 -s and the three proxies afresh, each on a port the kernel
# just found free, and stops them after the run. Which ports a connection gets moves loopback
# throughput here by up to ~25% for the same binary (ntm and haproxy alike, measured: one
# listening port gave 14 Gbit/s, others 17-19, run after run), so a fixed set of ports would let
# one draw decide the ratio; fresh ports per run let the median average over draws.
# Sets IPERF_PORT/PID, T_NTM_PORT/PID, T_HAP_PORT/PID, T_SOCAT_PORT/PID.
start_throughput_servers() {
    free_port IPERF_PORT
    start_server iperf3-server "$IPERF_PORT" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT"
    IPERF_PID="$LAST_PID"
    free_port T_NTM_PORT
    start_server ntm-proxy-iperf "$T_NTM_PORT" "$NTM" proxy --listen "127.0.0.1:$T_NTM_PORT" \
        --upstream "127.0.0.1:$IPERF_PORT"
    T_NTM_PID="$LAST_PID"
    free_port T_HAP_PORT
    printf '%s\nlisten throughput\n    bind 127.0.0.1:%s\n    server iperf3 127.0.0.1:%s\n' \
        "$HAP_GLOBAL" "$T_HAP_PORT" "$IPERF_PORT" >"$WORK/haproxy-throughput.cfg"
    start_server haproxy-throughput "$T_HAP_PORT" haproxy -db -f "$WORK/haproxy-throughput.cfg"
    T_HAP_PID="$LAST_PID"
    free_port T_SOCAT_PORT
    start_server socat "$T_SOCAT_PORT" socat "TCP-LISTEN:$T_SOCAT_PORT,bind=127.0.0.1,fork,reuseaddr" \
        "TCP:127.0.0.1:$IPERF_PORT"
    T_SOCAT_PID="$LAST_PID"
}

stop_throughput_servers() {
    local pid
    for pid in "$T_NTM_PID" "$T_HAP_PID" "$T_SOCAT_PID" "$IPERF_PID"; do
        stop_server "$pid"
    done
}

# Latency section: its own server and proxies, pinned if PIN=1.
free_port L_SERVE_PORT
start_server ntm-serve-latency "$L_SERVE_PORT" "${LAT_PIN[@]}" "$NTM" serve --listen "127.0.0.1:$L_SERVE_PORT"
free_port L_NTM_PORT
start_server ntm-proxy-latency "$L_NTM_PORT" "${LAT_PIN[@]}" "$NTM" proxy --listen "127.0.0.1:$L_NTM_PORT" \
    --upstream "127.0.0.1:$L_SERVE_PORT"

# haproxy for the latency section, pinned with it when PIN=1.
free_port L_HAP_PORT
printf '%s\nlisten latency\n    bind 127.0.0.1:%s\n    server ntm 127.0.0.1:%s\n' \
    "$HAP_GLOBAL" "$L_HAP_PORT" "$L_SERVE_PORT" >"$WORK/haproxy-latency.cfg"
start_server haproxy-latency "$L_HAP_PORT" "${LAT_PIN[@]}" haproxy -db -f "$WORK/haproxy-latency.cfg"

# Shaping sections: an unpinned server, one proxy per rate, one per delay, one unshaped.
free_port S_SERVE_PORT
start_server ntm-serve-shaping "$S_SERVE_PORT" "$NTM" serve --listen "127.0.0.1:$S_SERVE_PORT"
declare -A RATE_PORT DELAY_PORT
for r in "${RATES_MBIT[@]}"; do
    free_port "RATE_PORT[$r]"
    start_server "ntm-proxy-rate-$r" "${RATE_PORT[$r]}" "$NTM" proxy --listen "127.0.0.1:${RATE_PORT[$r]}" \
        --upstream "127.0.0.1:$S_SERVE_PORT" --rate "${r}Mbit"
done
for d in "${DELAYS_MS[@]}"; do
    free_port "DELAY_PORT[$d]"
    start_server "ntm-proxy-delay-$d" "${DELAY_PORT[$d]}" "$NTM" proxy --listen "127.0.0.1:${DELAY_PORT[$d]}" \
        --upstream "127.0.0.1:$S_SERVE_PORT" --delay "${d}ms"
done
free_port S_REF_PORT
start_server ntm-proxy-ref "$S_REF_PORT" "$NTM" proxy --listen "127.0.0.1:$S_REF_PORT" \
    --upstream "127.0.0.1:$S_SERVE_PORT"

print_header "ntm proxy vs haproxy vs socat, and ntm proxy shaping accuracy, loopback, $RUNS runs, alternating" \
    "$(iperf3 --version | head -1); $(haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3); $(socat -V 2>&1 | grep -m1 'socat version' | cut -d' ' -f1-3)"
echo "# throughput: iperf3 -t $DURATION, 1 stream, end.sum_received, Gbit/s (1e9 bit/s); proxy cpu: user+system s per GB received"
echo "# latency: ntm latency -t $LAT_SECONDS --size 64, rtt_us.p50 (full RTT, us); $PIN_NOTE"
echo "# shaping: ntm measure -t $SHAPE_SECONDS -O 1 (first second omitted; -w 32KB below 10 Mbit/s); delay: ntm latency -n $DELAY_COUNT, p50 - 2 x delay"
echo "# haproxy config: $(printf '%s\nlisten NAME\n    bind ...\n    server ...\n' "$HAP_GLOBAL" | grep -v '^$' | sed 's/^ *//' | paste -sd';' | sed 's/;/; /g')"
echo "# throughput: every run starts iperf3 -s, ntm proxy, haproxy and socat afresh on fresh ports"

REC="$WORK/records"
: >"$REC"

fail() {
    echo "$1 failed in run $2:" >&2
    cat "$WORK/out" "$WORK/err" >&2
    exit 1
}

# ---- 1. unshaped throughput ----------------------------------------------------------------
echo
echo "## 1. unshaped throughput (iperf3, 1 stream, ${DURATION} s)"
TPUT_PATHS=(direct ntm haproxy socat)
for ((run = 1; run <= RUNS; run++)); do
    start_throughput_servers
    # The paths take turns going first, as in the latency section.
    for ((i = 0; i < 4; i++)); do
        path="${TPUT_PATHS[$(((run - 1 + i) % 4))]}"
        case "$path" in
            direct) port="$IPERF_PORT"; pid="" ;;
            ntm) port="$T_NTM_PORT"; pid="$T_NTM_PID" ;;
            haproxy) port="$T_HAP_PORT"; pid="$T_HAP_PID" ;;
            socat) port="$T_SOCAT_PORT"; pid="$T_SOCAT_PID" ;;
        esac
        before=0
        [[ -n "$pid" ]] && before="$(cpu_ticks_with_children "$pid")"
        iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -J >"$WORK/out" 2>"$WORK/err" \
            || fail "iperf3 through $path" "$run"
        sleep 0.2 # let socat reap its per-connection children, so their CPU is counted
        ticks=-1
        [[ -n "$pid" ]] && ticks=$(($(cpu_ticks_with_children "$pid") - before))
        python3 - "$run" "$path" "$WORK/out" "$ticks" "$TICKS" "$REC" <<'EOF'
import json, sys
run, path, out, ticks, hz, rec = sys.argv[1:]
doc = json.load(open(out))
if "error" in doc:
    sys.exit(f"iperf3 through {path}: {doc['error']}")
rx = doc["end"]["sum_received"]
gbps = rx["bits_per_second"] / 1e9
gb = rx["bytes"] / 1e9
cpu = int(ticks) / int(hz) if int(ticks) >= 0 else None
with open(rec, "a") as f:
    f.write(f"tput {path} {run} {gbps:.6f} {cpu / gb if cpu is not None else 'nan'}\n")
cpu_text = f"proxy cpu {cpu:5.2f} s  {cpu / gb:6.3f} cpu-s/GB" if cpu is not None else ""
print(f"run {run}  {path:<8} {gbps:7.2f} Gbit/s  {gb:6.2f} GB  {cpu_text}")
EOF
    done
    stop_throughput_servers
done

# ---- 2. added latency ----------------------------------------------------------------------
# The paths take turns going first (run 1: direct ntm haproxy, run 2: ntm haproxy direct, ...),
# so neither proxy always follows the direct run; each run prints its via - direct, and the
# summary's "added" is median via - median direct.
echo
echo "## 2. added latency (ntm latency -t $LAT_SECONDS --size 64, p50 full RTT; ${PIN_NOTE%%:*}; $LAT_RUNS runs)"
LAT_PATHS=(direct ntm haproxy)
for ((run = 1; run <= LAT_RUNS; run++)); do
    for ((i = 0; i < 3; i++)); do
        path="${LAT_PATHS[$(((run - 1 + i) % 3))]}"
        case "$path" in
            direct) port="$L_SERVE_PORT" ;;
            ntm) port="$L_NTM_PORT" ;;
            haproxy) port="$L_HAP_PORT" ;;
        esac
        "${LAT_PIN[@]}" "$NTM" latency "127.0.0.1:$port" -t "$LAT_SECONDS" --size 64 --format json \
            >"$WORK/out-$path" 2>"$WORK/err" || { cp "$WORK/out-$path" "$WORK/out"; fail "ntm latency via $path" "$run"; }
    done
    python3 - "$run" "$WORK" "$REC" <<'EOF'
import json, sys
run, work, rec = sys.argv[1:]
docs = {p: json.load(open(f"{work}/out-{p}")) for p in ("direct", "ntm", "haproxy")}
direct = docs["direct"]["rtt_us"]["p50"]
for path, doc in docs.items():
    rtt = doc["rtt_us"]
    p50 = rtt["p50"]
    with open(rec, "a") as f:
        f.write(f"lat {path} {run} {p50} {p50 - direct}\n")
    added = "" if path == "direct" else f"  added {p50 - direct:+8.2f} us"
    note = "  PARTIAL" if doc.get("partial") else ""
    print(f"run {run}  {path:<8} p50 {p50:8.2f} us  p99 {rtt['p99']:8.2f} us  "
          f"{doc['transactions_per_second']:8.0f} transactions/s{added}{note}")
EOF
done

# ---- 3. shaping accuracy -------------------------------------------------------------------
echo
echo "## 3. rate accuracy (ntm measure -t $SHAPE_SECONDS -O 1 through ntm proxy --rate R)"
for ((run = 1; run <= RUNS; run++)); do
    for r in "${RATES_MBIT[@]}"; do
        window=()
        (( r < 10 )) && window=(-w 32KB)
        "$NTM" measure "127.0.0.1:${RATE_PORT[$r]}" -t "$SHAPE_SECONDS" -O 1 "${window[@]}" --format json \
            >"$WORK/out" 2>"$WORK/err" || fail "ntm measure at $r Mbit/s" "$run"
        python3 - "$run" "$r" "$WORK/out" "$REC" <<'EOF'
import json, sys
run, r, out, rec = sys.argv[1:]
doc = json.load(open(out))
end = doc["end"]
rx = end["sum_received"]
configured = float(r) * 1e6
ratio = rx["bits_per_second"] / configured
notes = []
if doc.get("partial"):
    notes.append("PARTIAL")
for s in end.get("failed_streams") or []:
    notes.append(f"stream failed: client {s.get('client_error')}, server {s.get('server_error')}")
with open(rec, "a") as f:
    f.write(f"rate {r} {run} {ratio}\n")
print(f"run {run}  {r:>4} Mbit/s  measured {rx['bits_per_second'] / 1e6:9.3f} Mbit/s  "
      f"ratio {ratio:.4f}  ({rx['bytes']} bytes in {rx['seconds']:.2f} s at the server)"
      + ("  " + "; ".join(notes) if notes else ""))
EOF
    done
done

# ---- 4. delay accuracy ---------------------------------------------------------------------
echo
echo "## 4. delay accuracy (ntm latency -n $DELAY_COUNT through ntm proxy --delay D; 0 = unshaped proxy)"
for ((run = 1; run <= RUNS; run++)); do
    for d in 0 "${DELAYS_MS[@]}"; do
        if [[ "$d" == 0 ]]; then port="$S_REF_PORT"; else port="${DELAY_PORT[$d]}"; fi
        "$NTM" latency "127.0.0.1:$port" -n "$DELAY_COUNT" --size 64 --format json \
            >"$WORK/out" 2>"$WORK/err" || fail "ntm latency at delay $d ms" "$run"
        python3 - "$run" "$d" "$WORK/out" "$REC" <<'EOF'
import json, sys
run, d, out, rec = sys.argv[1:]
doc = json.load(open(out))
rtt = doc["rtt_us"]
p50_ms = rtt["p50"] / 1000
err = p50_ms - 2 * int(d)
with open(rec, "a") as f:
    f.write(f"delay {d} {run} {p50_ms} {err}\n")
note = "  PARTIAL" if doc.get("partial") else ""
what = "unshaped proxy" if d == "0" else f"delay {int(d):>3} ms"
print(f"run {run}  {what:<14}  p50 {p50_ms:9.3f} ms  p99 {rtt['p99'] / 1000:9.3f} ms  "
      f"p50 - {2 * int(d)} ms = {err:+.3f} ms{note}")
EOF
    done
done

# ---- summary and ratios --------------------------------------------------------------------
echo
python_stats "$REC" "$PIN_NOTE" <<'EOF'
tput, tcpu, lat, added, rate, delay, delay_err = {}, {}, {}, {}, {}, {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    kind, key = f[0], f[1]
    if kind == "tput":
        tput.setdefault(key, []).append(float(f[3]))
        if f[4] != "nan":
            tcpu.setdefault(key, []).append(float(f[4]))
    elif kind == "lat":
        lat.setdefault(key, []).append(float(f[3]))
        if key != "direct":
            added.setdefault(key, []).append(float(f[4]))
    elif kind == "rate":
        rate.setdefault(int(key), []).append(float(f[3]))
    elif kind == "delay":
        delay.setdefault(int(key), []).append(float(f[3]))
        delay_err.setdefault(int(key), []).append(float(f[4]))

print("## summary (medians over runs)")
print("unshaped throughput, iperf3 1 stream:")
for path in ("direct", "ntm", "haproxy", "socat"):
    cpu = f"  proxy {med(tcpu[path]):6.3f} cpu-s/GB" if path in tcpu else ""
    print(f"  {path:<8} {med(tput[path]):7.2f} Gbit/s {rng(tput[path], '{:.2f}')}{cpu}")
# ntm and haproxy alternate within a run, so each run's own ratio shows the spread.
per_run = [n / h for n, h in zip(tput["ntm"], tput["haproxy"]) if h > 0]
print("  ntm/haproxy per run: " + " ".join(f"{x:.2f}" for x in per_run))
print(f"added p50 latency, 64 B request/response ({sys.argv[2]}):")
print(f"  direct   p50 {med(lat['direct']):8.2f} us {rng(lat['direct'], '{:.2f}')}")
# Added = median via - median direct. Each measurement draws its own scheduling regime (see the
# top of this script), independently of the one before it, so pairing a via run with its
# direct run adds direct's spread to every difference instead of cancelling anything; the
# median of those per-run differences is printed too.
added_med = {p: med(lat[p]) - med(lat["direct"]) for p in ("ntm", "haproxy")}
for path in ("ntm", "haproxy"):
    print(f"  {path:<8} p50 {med(lat[path]):8.2f} us {rng(lat[path], '{:.2f}')}"
          f"  added {added_med[path]:+8.2f} us (per-run differences: median {med(added[path]):+.2f}, "
          f"min {min(added[path]):+.2f}, max {max(added[path]):+.2f})")
print("rate accuracy, measured/configured (target 0.97..1.03):")
for r in sorted(rate):
    v = med(rate[r])
    ok = "ok" if 0.97 <= v <= 1.03 else "MISSED"
    print(f"  {r:>4} Mbit/s  {v:.4f} {rng(rate[r], '{:.4f}')}  {ok}")
print("delay accuracy, p50 RTT - 2 x delay (target within +-1 ms):")
print(f"  unshaped proxy p50 (reference, not subtracted): {med(delay[0]):.3f} ms")
for d in sorted(k for k in delay if k):
    v = med(delay_err[d])
    ok = "ok" if abs(v) <= 1.0 else "MISSED"
    print(f"  {d:>4} ms one way  p50 {med(delay[d]):9.3f} ms  error {v:+.3f} ms "
          f"{rng(delay_err[d], '{:+.3f}')}  {ok}")

# Ratio lines last; the value is the last field of each line.
for r in sorted(rate):
    print(f"ratio measured/configured rate at {r} Mbit/s (median; target 0.97..1.03): {med(rate[r]):.3f}")
print(f"ratio ntm/haproxy unshaped throughput (median Gbit/s; target >= 1.3, goal >= 2): "
      f"{med(tput['ntm']) / med(tput['haproxy']):.2f}")
h = added_med["haproxy"]
n = added_med["ntm"]
value = n / h if h > 0 else math.inf
print(f"ratio ntm/haproxy added p50 latency (median via - median direct, us; target <= 1.2): {value:.2f}")
EOF
