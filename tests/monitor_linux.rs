//! `ntm exec`, `ntm top` and the Linux facade against real sockets on loopback (port 0, bounded,
//! cleaned up). Helper processes are this test binary run again with `NTM_MONITOR_HELPER` set:
//! the counted process is the helper, the listener is in the test process.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::ChildGuard;
use ntm::monitor::{self, Monitor, MonitorOptions};
use serde_json::Value;

const HELPER: &str = "NTM_MONITOR_HELPER";
const CONNECTIONS: usize = 50;

fn ntm() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("ntm"))
}

/// Bytes the helper client sends and expects back on connection `i`.
fn up_bytes(i: usize) -> usize {
    1_000 + 37 * i
}
fn down_bytes(i: usize) -> usize {
    5_000 + 101 * i
}

/// Not a test on its own: the body of the helper process (see the module docs).
#[test]
fn helper() {
    let Ok(spec) = std::env::var(HELPER) else {
        return;
    };
    let words: Vec<&str> = spec.split_whitespace().collect();
    let port: u16 = words[1].parse().unwrap();
    match words[0] {
        // Short connections: send, half-close, read to the end, close. Exits 3.
        "client" => {
            let mut lifetimes = Vec::new();
            for i in 0..CONNECTIONS {
                let began = Instant::now();
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.write_all(&vec![b'u'; up_bytes(i)]).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut back = Vec::new();
                s.read_to_end(&mut back).unwrap();
                assert_eq!(back.len(), down_bytes(i));
                drop(s);
                lifetimes.push(began.elapsed());
            }
            lifetimes.sort();
            eprintln!(
                "helper: median connection lifetime {} µs",
                lifetimes[CONNECTIONS / 2].as_micros()
            );
            std::process::exit(3);
        }
        // One connection held open for a while, then the process exits.
        "hold" => {
            let bytes: usize = words[2].parse().unwrap();
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&vec![b'h'; bytes]).unwrap();
            std::thread::sleep(Duration::from_millis(800));
            std::process::exit(0);
        }
        other => panic!("unknown helper '{other}'"),
    }
}

fn helper_command(spec: String) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "helper", "--nocapture", "--test-threads=1"])
        .env(HELPER, spec);
    c
}

/// A listener on 127.0.0.1:0 that serves `connections` clients one by one: reads to the end,
/// answers `down_bytes(i)`, closes. Returns the total it received.
fn serve_short(connections: usize) -> (SocketAddr, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut received = 0;
        for i in 0..connections {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            received += buf.len();
            s.write_all(&vec![b'd'; down_bytes(i)]).unwrap();
        }
        received
    });
    (addr, handle)
}

#[test]
fn exec_reports_exact_bytes_of_50_short_connections_and_passes_the_exit_code() {
    let (addr, server) = serve_short(CONNECTIONS);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let plot = dir.path().join("plot.svg");
    let helper = helper_command(format!("client {}", addr.port()));
    let mut c = ntm();
    c.args(["exec", "--format", "json", "-o"])
        .arg(&report)
        .arg("--plot")
        .arg(&plot)
        .arg("--")
        .arg(helper.get_program())
        .args(helper.get_args())
        .envs(helper.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = common::output_within(ChildGuard(c.spawn().unwrap()), Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the helper's exit code: {stderr}"
    );
    let received = server.join().unwrap();
    let sent_up: usize = (0..CONNECTIONS).map(up_bytes).sum();
    let sent_down: usize = (0..CONNECTIONS).map(down_bytes).sum();
    assert_eq!(received, sent_up);
    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["traced"], true, "{doc:#}");
    assert_eq!(doc["bytes_up"], sent_up as u64, "{doc:#}\n{stderr}");
    assert_eq!(doc["bytes_down"], sent_down as u64, "{doc:#}\n{stderr}");
    assert_eq!(doc["connections"], CONNECTIONS as u64, "{doc:#}");
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["peers"][0]["remote"], addr.to_string());
    assert_eq!(doc["peers"][0]["connections"], CONNECTIONS as u64);
    assert_eq!(doc["lost_closed"], 0);
    assert!(doc["peak_up_bits_per_second"].as_f64().unwrap() > 0.0);
    // The connections were shorter than a poll (100 ms): they opened and closed between two.
    let median_us: u64 = stderr
        .split("median connection lifetime ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the helper's report");
    eprintln!("median connection lifetime: {median_us} µs");
    assert!(
        median_us < 100_000,
        "connections took {median_us} µs: not short-lived"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
}

#[test]
fn exec_of_a_missing_command_exits_127() {
    let out = ntm()
        .args(["exec", "--", "/nonexistent/ntm-test-command"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot start '/nonexistent/ntm-test-command'"),
        "{stderr}"
    );
}

/// Reads lines from `reader` until one contains `marker`; the rest of that line.
fn wait_for_line(reader: &mut impl BufRead, marker: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("no line with '{marker}'");
        }
        if let Some((_, rest)) = line.split_once(marker) {
            return rest.trim().to_string();
        }
    }
}

fn owner_row(snapshot: &Value, pid: u32) -> Option<&Value> {
    snapshot["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
}

#[test]
fn top_attributes_serve_and_measure_traffic_to_their_pids() {
    let mut serve = ChildGuard(
        ntm()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = BufReader::new(serve.0.stderr.take().unwrap());
    let addr = wait_for_line(&mut log, "listening on ");
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    let measure = ChildGuard(
        ntm()
            .args(["measure", &addr, "-t", "4"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = ntm()
        .args(["top", "--once", "--format", "json", "--interval", "1s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let snapshot: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let client = owner_row(&snapshot, measure.0.id()).expect("a row for ntm measure");
    let server = owner_row(&snapshot, serve.0.id()).expect("a row for ntm serve");
    let up = client["bytes_up"].as_u64().unwrap();
    let down = server["bytes_down"].as_u64().unwrap();
    assert!(
        up > 10_000_000,
        "measure sent only {up} bytes in 1 s: {snapshot:#}"
    );
    // The same bytes seen from both ends of a loopback connection in the same dump.
    let gap = up.abs_diff(down) as f64 / up as f64;
    assert!(gap < 0.05, "client up {up} vs server down {down}");
    assert!(client["up_bits_per_second"].as_f64().unwrap() > 80e6);
    assert_eq!(client["name"], "ntm");
    assert!(client["bytes_down"].as_u64().unwrap() < up / 100);
    drop(measure);
}

#[test]
fn a_process_that_exits_during_monitoring_keeps_its_final_totals() {
    const BYTES: u64 = 1_000_000;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut n = 0u64;
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
        }
    });
    let mut top = ChildGuard(
        ntm()
            .args([
                "top",
                "--format",
                "json",
                "--interval",
                "200ms",
                "--count",
                "12",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(top.0.stdout.take().unwrap()).lines();
    // The first snapshot: ntm top has its baseline.
    let mut snapshots = vec![lines.next().unwrap().unwrap()];
    let mut helper = ChildGuard(
        helper_command(format!("hold {port} {BYTES}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = helper.0.id();
    assert!(
        common::wait_timeout(&mut helper.0, Duration::from_secs(20)).is_some_and(|s| s.success())
    );
    assert_eq!(sink.join().unwrap(), BYTES);
    snapshots.extend(lines.map(|l| l.unwrap()));
    assert!(common::wait_timeout(&mut top.0, Duration::from_secs(20)).is_some_and(|s| s.success()));
    assert_eq!(snapshots.len(), 12);
    let snapshots: Vec<Value> = snapshots
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = snapshots
        .iter()
        .position(|s| owner_row(s, pid).is_some())
        .expect("the helper is seen");
    let mut previous = 0;
    for (i, s) in snapshots.iter().enumerate().skip(first) {
        let row =
            owner_row(s, pid).unwrap_or_else(|| panic!("snapshot {i} lost the helper: {s:#}"));
        let up = row["bytes_up"].as_u64().unwrap();
        assert!(up >= previous, "snapshot {i}: {up} < {previous}");
        previous = up;
    }
    let last = owner_row(snapshots.last().unwrap(), pid).unwrap();
    assert_eq!(last["bytes_up"], BYTES, "{last:#}");
    assert_eq!(last["exited"], true, "{last:#}");
    assert_eq!(last["open_connections"], 0);
}

#[test]
fn the_facade_reports_live_sockets_and_final_counters_of_closed_ones() {
    let mut facade = monitor::system().expect("sock_diag works here");
    let mut monitor = Monitor::new(MonitorOptions::default());
    let started = Instant::now();
    monitor.update(facade.observe().unwrap(), started.elapsed());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let client_addr = client.local_addr().unwrap();
    client.write_all(&[1u8; 12_345]).unwrap();
    let mut buf = vec![0u8; 12_345];
    server.read_exact(&mut buf).unwrap();
    server.write_all(&[2u8; 54_321]).unwrap();
    let mut buf = vec![0u8; 54_321];
    client.read_exact(&mut buf).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let live = monitor.update(facade.observe().unwrap(), started.elapsed());
    let me = live
        .processes
        .iter()
        .find(|p| p.pid == Some(std::process::id()))
        .expect("this process owns sockets");
    let c = me
        .connections
        .iter()
        .find(|c| c.local == client_addr)
        .expect("the client socket, attributed to this process");
    assert_eq!(
        (c.bytes_up, c.bytes_down, c.state),
        (12_345, 54_321, "ESTAB")
    );

    drop(client);
    drop(server);
    std::thread::sleep(Duration::from_millis(100));
    let after = monitor.update(facade.observe().unwrap(), started.elapsed());
    let me = after
        .processes
        .iter()
        .find(|p| p.pid == Some(std::process::id()))
        .unwrap();
    let c = me
        .connections
        .iter()
        .find(|c| c.local == client_addr)
        .expect("the closed client socket, still listed");
    assert!(c.closed, "{c:?}");
    assert_eq!((c.bytes_up, c.bytes_down), (12_345, 54_321));
    let s = me
        .connections
        .iter()
        .find(|c| c.remote == client_addr)
        .expect("the closed server socket");
    assert_eq!((s.bytes_up, s.bytes_down), (54_321, 12_345));
}
