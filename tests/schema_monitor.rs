//! The JSON of `ntm top --format json` (NDJSON snapshots) and `ntm exec --format json` validates
//! against `schemas/top.schema.json` and `schemas/exec.schema.json`: real documents from the
//! binary, taken while this test exchanges a little TCP traffic on loopback (port 0, bounded),
//! must pass, and each schema must be strict: the same document with any field removed, or any
//! value of the wrong type, must fail (as in tests/schema.rs).
//!
//! The command `ntm exec` runs is this test binary again with `NTM_SCHEMA_HELPER` set (as in
//! tests/monitor_linux.rs): it makes two loopback connections to a listener of the test.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::ChildGuard;
use serde_json::{json, Value};

const HELPER: &str = "NTM_SCHEMA_HELPER";
/// Each `ntm` run must end within this (they take well under a second).
const LIMIT: Duration = Duration::from_secs(15);
/// The helper's connections: bytes up and down of connection `i`, and its exit code.
const HELPER_CONNECTIONS: usize = 2;
const HELPER_EXIT: i32 = 5;

fn up_bytes(i: usize) -> usize {
    3_000 + 1_000 * i
}
fn down_bytes(i: usize) -> usize {
    20_000 + 7 * i
}

#[test]
fn the_monitor_schemas_are_valid_draft_2020_12() {
    for name in ["top", "exec"] {
        let schema = common::schema(name);
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("schemas/{name}.schema.json is not a valid schema: {e}");
        }
        assert!(
            !common::validator(name).is_valid(&json!({})),
            "{name} accepts {{}}"
        );
    }
}

fn ntm() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("ntm"))
}

/// Runs `c` (stdin closed, output piped) and expects it to exit with `code` within [`LIMIT`].
fn run(mut c: Command, code: i32) -> std::process::Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = common::output_within(ChildGuard(c.spawn().expect("spawn ntm")), LIMIT);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{c:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Traffic on loopback while it lives: one connection that echoes 1 KB back and forth every
/// few milliseconds, both ends in this process.
struct Exchange {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Exchange {
    fn start() -> Exchange {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let echo = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let client = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(LIMIT)).unwrap();
                let mut buf = [0u8; 1024];
                while !stop.load(Ordering::Relaxed) {
                    s.write_all(&[b'e'; 1024]).unwrap();
                    s.read_exact(&mut buf).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Exchange {
            stop,
            threads: vec![client, echo],
        }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("exchange thread");
        }
    }
}

/// `ntm top --format json` with `args`: its snapshots, one per line.
fn top_snapshots(args: &[&str]) -> Vec<Value> {
    let mut c = ntm();
    c.args(["top", "--format", "json"]).args(args);
    let out = run(c, 0);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `snapshot` with this process's row first, so the strictness check (which looks at the first
/// element of each array) sees a row with live connections.
fn own_row_first(mut snapshot: Value) -> Value {
    let me = std::process::id();
    let rows = snapshot["processes"].as_array_mut().unwrap();
    let at = rows
        .iter()
        .position(|p| p["pid"] == me)
        .unwrap_or_else(|| panic!("no row for this process ({me})"));
    let row = rows.remove(at);
    assert_eq!(row["owner"], "process", "{row:#}");
    assert!(
        row["bytes_up"].as_u64().unwrap() > 0 && row["bytes_down"].as_u64().unwrap() > 0,
        "the exchange is counted: {row:#}"
    );
    rows.insert(0, row);
    snapshot
}

#[test]
fn top_ndjson_matches_its_schema() {
    let exchange = Exchange::start();
    let snapshots = top_snapshots(&["--count", "2", "--interval", "200ms", "--connections"]);
    let once = top_snapshots(&["--once", "--interval", "200ms"]);
    exchange.finish();

    assert_eq!(snapshots.len(), 2, "--count 2: {snapshots:#?}");
    for s in &snapshots {
        common::assert_valid("top", s);
    }
    let with_connections = own_row_first(snapshots[1].clone());
    let own = &with_connections["processes"][0];
    assert!(
        own["connections"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["state"] == "ESTAB")),
        "the exchange's connections are listed: {own:#}"
    );
    assert!(
        !with_connections["interfaces"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no interfaces: {with_connections:#}"
    );
    // `connections` is there only with --connections: removing it from one row is only caught
    // when other rows still have it.
    common::assert_valid_and_strict("top", &with_connections, &["/processes/0/connections"]);

    assert_eq!(once.len(), 1, "--once prints one snapshot: {once:#?}");
    let once = own_row_first(once.into_iter().next().unwrap());
    assert!(
        once["processes"][0].get("connections").is_none(),
        "{once:#}"
    );
    common::assert_valid_and_strict("top", &once, &[]);

    // Constraints between fields.
    let v = common::validator("top");
    let mut broken = with_connections.clone();
    broken["processes"][0]["pid"] = Value::Null;
    assert!(!v.is_valid(&broken), "a process without a pid");
    let mut broken = with_connections.clone();
    broken["processes"][0]["owner"] = "needs_root".into();
    assert!(!v.is_valid(&broken), "a needs_root bucket with a pid");
    let mut broken = with_connections.clone();
    broken["processes"][0]["connections"][0]["closed"] = true.into();
    broken["processes"][0]["connections"][0]["state"] = "ESTAB".into();
    assert!(!v.is_valid(&broken), "a closed connection still ESTAB");
    let mut broken = with_connections.clone();
    let mut row = broken["processes"][0].clone();
    row.as_object_mut().unwrap().remove("connections");
    broken["processes"].as_array_mut().unwrap().push(row);
    assert!(
        !v.is_valid(&broken),
        "connections listed for some rows only"
    );
    let mut bucket = once.clone();
    bucket["processes"][0] = json!({
        "owner": "unattributed", "pid": null, "ppid": null,
        "name": "unattributed (closed before seen)", "exited": false,
        "bytes_up": 1, "bytes_down": 2, "up_bits_per_second": 8.0, "down_bits_per_second": 16.0,
        "open_connections": 0, "connections_total": 1
    });
    common::assert_valid("top", &bucket);
    bucket["processes"][0]["name"] = "unknown (needs root)".into();
    assert!(!v.is_valid(&bucket), "a bucket named for another");
}

/// Not a test on its own: the command `ntm exec` runs (see the module docs). Makes
/// [`HELPER_CONNECTIONS`] connections to the port in `NTM_SCHEMA_HELPER`, each sending
/// `up_bytes(i)`, half-closing and reading `down_bytes(i)` back; exits [`HELPER_EXIT`].
#[test]
fn exec_helper() {
    let Ok(port) = std::env::var(HELPER) else {
        return;
    };
    let port: u16 = port.parse().unwrap();
    for i in 0..HELPER_CONNECTIONS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(&vec![b'u'; up_bytes(i)]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), down_bytes(i));
    }
    std::process::exit(HELPER_EXIT);
}

/// A listener on 127.0.0.1:0 for the helper: reads each connection to the end, answers
/// `down_bytes(i)`, closes. Returns what it received.
fn serve_helper() -> (SocketAddr, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut received = 0;
        for i in 0..HELPER_CONNECTIONS {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            received += buf.len();
            s.write_all(&vec![b'd'; down_bytes(i)]).unwrap();
        }
        received
    });
    (addr, handle)
}

/// `ntm exec --format json -o FILE -- command...`, expecting `code`: the report.
fn exec_report(command: &[&std::ffi::OsStr], envs: &[(&str, String)], code: i32) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut c = ntm();
    c.args(["exec", "--format", "json", "--interval", "50ms", "-o"])
        .arg(&report)
        .arg("--")
        .args(command)
        .envs(envs.iter().map(|(k, v)| (k, v)));
    run(c, code);
    let text = std::fs::read_to_string(&report).expect("the report file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the report is not JSON ({e}): {text}"))
}

#[test]
fn exec_json_matches_its_schema() {
    let (addr, server) = serve_helper();
    let me = std::env::current_exe().unwrap();
    let doc = exec_report(
        &[
            me.as_os_str(),
            "--exact".as_ref(),
            "exec_helper".as_ref(),
            "--nocapture".as_ref(),
            "--test-threads=1".as_ref(),
        ],
        &[(HELPER, addr.port().to_string())],
        HELPER_EXIT,
    );
    let up: usize = (0..HELPER_CONNECTIONS).map(up_bytes).sum();
    let down: usize = (0..HELPER_CONNECTIONS).map(down_bytes).sum();
    assert_eq!(server.join().unwrap(), up);
    assert_eq!(doc["exit_code"], HELPER_EXIT, "{doc:#}");
    assert_eq!(doc["bytes_up"], up as u64, "{doc:#}");
    assert_eq!(doc["bytes_down"], down as u64, "{doc:#}");
    assert_eq!(doc["connections"], HELPER_CONNECTIONS as u64, "{doc:#}");
    assert_eq!(doc["peers"][0]["remote"], addr.to_string(), "{doc:#}");
    assert!(!doc["intervals"].as_array().unwrap().is_empty(), "{doc:#}");
    common::assert_valid_and_strict("exec", &doc, &[]);

    let v = common::validator("exec");
    let mut broken = doc.clone();
    broken["untraced_reason"] = if doc["traced"] == true {
        "reason".into()
    } else {
        Value::Null
    };
    assert!(
        !v.is_valid(&broken),
        "untraced_reason disagrees with traced"
    );
    let mut flipped = doc.clone();
    flipped["traced"] = (doc["traced"] != true).into();
    flipped["untraced_reason"] = if doc["traced"] == true {
        "the filter could not be installed".into()
    } else {
        Value::Null
    };
    common::assert_valid("exec", &flipped);

    // A command without connections: empty peers, still a valid report.
    let quiet = exec_report(&["true".as_ref()], &[], 0);
    assert_eq!(quiet["connections"], 0, "{quiet:#}");
    assert_eq!(quiet["peers"], json!([]), "{quiet:#}");
    common::assert_valid("exec", &quiet);
}
