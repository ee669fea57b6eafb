# shellcheck shell=bash
# Shared helpers of the benchmark scripts in bench/ (transfer.sh, throughput.sh, latency.sh,
# proxy.sh). Each script sources it first, before it changes directory:
#
#   . "$(dirname "$0")/lib.sh"
#
# Sourcing only defines functions and two variables (BENCH_REPO_ROOT, BENCH_USED_PORTS); the
# functions set these globals for the scripts: NTM (build_ntm), WORK and PIDS
# (make_workdir), LAST_PID (start_server), NTM_PORT, NTM_PID, IPERF_PORT and IPERF_PID
# (start_ntm_and_iperf3_servers).

# Absolute path of the repository (the parent of bench/), fixed now because the scripts change
# directory afterwards.
BENCH_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Ports free_port has handed out so far, space-separated and space-padded.
BENCH_USED_PORTS=" "

# require_whole_number NAME MIN WHAT: exits 2 with "NAME must be WHAT >= MIN (got '...')"
# unless the variable NAME holds a whole number >= MIN. WHAT describes the value, e.g.
# "an integer" or "a whole number of seconds".
require_whole_number() {
    local name="$1" min="$2" what="$3"
    local value="${!name}"
    if ! [[ "$value" =~ ^[0-9]+$ ]] || (( value < min )); then
        echo "$name must be $what >= $min (got '$value')" >&2
        exit 2
    fi
}

# cd_repo_root: changes to the repository root, so the scripts work from any directory.
cd_repo_root() {
    cd "$BENCH_REPO_ROOT" || exit
}

# require_command CMD: exits 1 with "CMD is required" unless CMD is on PATH (for what the
# scripts do not install themselves, like python3).
require_command() {
    command -v "$1" >/dev/null || { echo "$1 is required" >&2; exit 1; }
}

# ensure_packages SPEC...: installs with apt-get (one update, one install) the Debian package
# of every tool that is missing. SPEC is CMD or CMD=PACKAGE (PACKAGE defaults to CMD); CMD is
# looked up on PATH, or, if it is an absolute path, must be an executable file there.
ensure_packages() {
    local spec cmd
    local -a missing=()
    for spec in "$@"; do
        cmd="${spec%%=*}"
        if [[ "$cmd" == /* ]]; then
            [[ -x "$cmd" ]] && continue
        else
            command -v "$cmd" >/dev/null && continue
        fi
        missing+=("${spec#*=}")
    done
    if (( ${#missing[@]} )); then
        apt-get update || exit
        apt-get install -y "${missing[@]}" || exit
    fi
}

# build_ntm: builds the release binary and sets NTM to its path, under $CARGO_TARGET_DIR if
# that is set, else under target/; exits 1 if there is no binary there.
build_ntm() {
    cargo build --release
    NTM="${CARGO_TARGET_DIR:-target}/release/ntm"
    [[ -x "$NTM" ]] || { echo "no binary at $NTM" >&2; exit 1; }
}

# make_workdir: creates a temporary directory, WORK, and an empty list of background
# processes, PIDS, and sets the traps: on any exit cleanup_workdir runs; SIGINT exits 130,
# SIGTERM 143.
make_workdir() {
    WORK="$(mktemp -d)"
    PIDS=()
    trap cleanup_workdir EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# cleanup_workdir: the EXIT trap of make_workdir: stops (and reaps) every process in PIDS that
# is still running, in order, then deletes WORK.
cleanup_workdir() {
    local pid
    for pid in "${PIDS[@]}"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}

# free_port VAR: stores in the variable VAR (an array element such as "PORT[$k]" works too) a
# TCP port on 127.0.0.1 that the kernel found free and that this script was not given before.
# The port is closed again at once, so it is free, not reserved.
free_port() {
    local port
    while :; do
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
        [[ "$BENCH_USED_PORTS" == *" $port "* ]] || break
    done
    BENCH_USED_PORTS+="$port "
    printf -v "$1" '%s' "$port"
}

# wait_listening PID PORT LOG: waits (at most ~10 s) until something listens on
# 127.0.0.1:PORT; exits 1, printing LOG, if process PID dies first or time runs out.
wait_listening() {
    local pid="$1" port="$2" log="$3" i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "server on port $port exited early; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $port is not listening after 10 s; its log:" >&2
    cat "$log" >&2
    exit 1
}

# start_server NAME PORT CMD...: starts CMD in the background with its output in
# $WORK/NAME.log, adds it to PIDS (so cleanup_workdir stops it), sets LAST_PID to its pid and
# waits until it listens on PORT.
start_server() {
    local name="$1" port="$2"
    shift 2
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_listening "$LAST_PID" "$port" "$WORK/$name.log"
}

# stop_server PID: stops (and reaps) a process that start_server started; cleanup_workdir
# skips it afterwards.
stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# start_ntm_and_iperf3_servers: starts the two servers that transfer.sh and throughput.sh
# compare, each on a port of its own: "ntm serve" on NTM_PORT and "iperf3 -s" on IPERF_PORT
# (logs ntm-server.log and iperf3-server.log in WORK); sets NTM_PORT, NTM_PID, IPERF_PORT and
# IPERF_PID.
# shellcheck disable=SC2034 # the PIDs are for the scripts that source this file
start_ntm_and_iperf3_servers() {
    free_port NTM_PORT
    free_port IPERF_PORT
    start_server ntm-server "$NTM_PORT" "$NTM" serve --listen "127.0.0.1:$NTM_PORT"
    NTM_PID="$LAST_PID"
    start_server iperf3-server "$IPERF_PORT" iperf3 -s -p "$IPERF_PORT"
    IPERF_PID="$LAST_PID"
}

# cpu_ticks PID: CPU time (user+system, in clock ticks) used so far by process PID, all
# threads.
cpu_ticks() {
    sum_stat_ticks "$1" 2 # fields 14 (utime) and 15 (stime)
}

# cpu_ticks_with_children PID: cpu_ticks plus the CPU time of the children that PID has waited
# for (socat forks one per connection).
cpu_ticks_with_children() {
    sum_stat_ticks "$1" 4 # fields 14-17: utime, stime, cutime, cstime
}

# sum_stat_ticks PID N: the sum of N fields of /proc/PID/stat from field 14 (utime) on.
sum_stat_ticks() {
    local stat i sum=0
    local -a f
    stat="$(<"/proc/$1/stat")"
    stat="${stat##*) }" # drop "pid (comm) ", comm may contain spaces: field 3 is now f[0]
    read -ra f <<<"$stat"
    for ((i = 11; i < 11 + $2; i++)); do
        sum=$((sum + f[i]))
    done
    echo "$sum"
}

# print_header TITLE TOOLS: prints the header lines every benchmark starts with: "# TITLE",
# the kernel, CPU count and CPU model, "# TOOLS" (the other tools' versions) and ntm's
# version ($NTM --version).
print_header() {
    echo "# $1"
    echo "# kernel: $(uname -sr), CPUs: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "# $2"
    echo "# $("$NTM" --version)"
}

# python_stats ARG...: runs the python3 program read from stdin with the arguments ARG...
# (sys.argv[1:]), after a prelude that imports math, statistics and sys and defines
#   med(values)       the median (statistics.median)
#   rng(values, fmt)  "(min X, max Y)", X and Y formatted with the str.format pattern fmt
# for the summaries (medians over runs) at the end of each benchmark.
python_stats() {
    local program
    program="$(cat)"
    python3 -c "import math, statistics, sys
med = statistics.median
def rng(values, fmt):
    return f\"(min {fmt.format(min(values))}, max {fmt.format(max(values))})\"
$program" "$@"
}
