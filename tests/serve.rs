//! `ntm serve` as a process: it exits 0 on SIGINT or SIGTERM after letting a running test finish,
//! logs each test, and holds a fixed amount of memory however large the test. The library's `run`
//! honours its grace period whether tests finish or stall.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    good_transfer, test_config, wait_timeout, within, ChildGuard, RawClient, TestServer, PROMPT,
};
use ntm::server::ServerConfig;
use ntm::wire::frame::{ErrorCode, Message};
use tokio::io::AsyncReadExt;

/// `ntm serve` on port 0, with its stderr lines arriving on a channel.
struct ServeProcess {
    child: ChildGuard,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl ServeProcess {
    fn start(extra: &[&str]) -> ServeProcess {
        let child = Command::new(assert_cmd::cargo::cargo_bin("ntm"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ntm serve");
        let mut child = ChildGuard(child);
        let stderr = child.0.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = wait_for_line(&rx, "listening on ");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.trim_end_matches(':').parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        ServeProcess {
            child,
            addr,
            stderr: rx,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit and returns its status and every later stderr line.
    fn exit(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let status = wait_timeout(&mut self.child.0, limit)
            .unwrap_or_else(|| panic!("ntm serve still running {limit:?} after the signal"));
        // The process is gone, so the reader thread sees the end of stderr.
        let lines = self.stderr.iter().collect();
        (status, lines)
    }
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no stderr line with {needle:?}: {e}"),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until nothing listens on `addr` any more: the server has stopped accepting.
async fn until_refused(addr: SocketAddr) {
    within(PROMPT, "listener to close", async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Sends the rest of a started test's upload, fetches `response` bytes and checks the counters.
async fn finish_test(client: &mut RawClient, rest: usize, upload: u64, response: u64) {
    client.send_data(rest).await;
    match client.read_frame(PROMPT).await {
        Some(Message::UploadComplete { bytes_received, .. }) => assert_eq!(bytes_received, upload),
        other => panic!("expected upload_complete, got {other:?}"),
    }
    client.message(&Message::Fetch).await;
    let mut body = vec![0u8; response as usize];
    within(PROMPT, "response", client.stream.read_exact(&mut body))
        .await
        .unwrap();
    match client.read_to_close(PROMPT).await.frames.as_slice() {
        [Message::Counters(c)] => assert_eq!((c.bytes_received, c.bytes_sent), (upload, response)),
        other => panic!("expected counters, got {other:?}"),
    }
}

#[test]
fn serve_exits_0_on_sigint_and_logs_each_test() {
    let serve = ServeProcess::start(&[]);
    runtime().block_on(good_transfer(serve.addr, 12_345, 678));
    serve.signal("INT");
    let (status, lines) = serve.exit(Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(0),
        "stderr after the signal: {lines:#?}"
    );
    let logged = lines
        .iter()
        .find(|l| l.contains("test finished"))
        .unwrap_or_else(|| panic!("no test line: {lines:#?}"));
    for field in [
        "kind=\"transfer\"",
        "bytes_received=12345",
        "bytes_sent=678",
        "peer=127.0.0.1:",
        "duration=",
    ] {
        assert!(logged.contains(field), "{field} missing from {logged}");
    }
}

#[test]
fn serve_exits_0_on_a_signal_right_after_it_says_it_is_listening() {
    // Once "listening on" is printed, a supervisor may stop the server at any moment; the
    // signal handlers must already be in place. The window, if any, is small, so try often.
    for round in 0..24 {
        let serve = ServeProcess::start(&[]);
        let name = if round % 2 == 0 { "TERM" } else { "INT" };
        serve.signal(name);
        let (status, lines) = serve.exit(Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}, SIG{name}: {status}; stderr: {lines:#?}"
        );
    }
}

#[test]
fn serve_lets_a_running_test_finish_after_sigint() {
    let serve = ServeProcess::start(&["--grace", "20s", "--idle-timeout", "20s"]);
    let rt = runtime();
    let mut client = rt.block_on(async {
        let mut client = RawClient::connect(serve.addr).await;
        client.start_test(1_000_000, 300_000).await;
        client.send_data(400_000).await;
        client
    });
    serve.signal("INT");
    rt.block_on(until_refused(serve.addr));
    let mut child = serve.child;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "ntm serve exited with a test running"
    );
    rt.block_on(finish_test(&mut client, 600_000, 1_000_000, 300_000));
    let status = wait_timeout(&mut child.0, PROMPT).expect("ntm serve exits once the test is done");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_running_test_finishes_within_the_grace_period() {
    let server = TestServer::start(ServerConfig {
        grace_period: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..test_config()
    })
    .await;
    let mut client = RawClient::connect(server.addr).await;
    client.start_test(1_000_000, 1_000_000).await;
    client.send_data(500_000).await;

    server.shutdown.cancel();
    until_refused(server.addr).await;
    server.assert_running();
    let started = Instant::now();
    finish_test(&mut client, 500_000, 1_000_000, 1_000_000).await;
    server.stop_within(PROMPT).await;
    assert!(started.elapsed() < PROMPT);
}

/// A test that stalls is stopped when the grace period ends, with a `shutting_down` frame.
async fn stalled_test_is_stopped_after(grace_period: Duration) {
    let server = TestServer::start(ServerConfig {
        grace_period,
        idle_timeout: Duration::from_secs(30),
        ..test_config()
    })
    .await;
    let mut staller = RawClient::connect(server.addr).await;
    staller.start_test(1_000_000, 1_000_000).await;
    staller.send_data(1000).await;

    let started = Instant::now();
    server.stop_within(PROMPT).await;
    let took = started.elapsed();
    assert!(
        took >= grace_period,
        "stopped after {took:?}, before the grace period"
    );
    staller.expect_error(ErrorCode::ShuttingDown, PROMPT).await;
}

#[tokio::test]
async fn a_stalled_test_is_stopped_when_the_grace_period_ends() {
    stalled_test_is_stopped_after(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn with_no_grace_period_shutdown_is_immediate() {
    stalled_test_is_stopped_after(Duration::ZERO).await;
}

#[tokio::test]
async fn shutdown_tells_connected_clients_without_a_test() {
    let server = TestServer::start(ServerConfig {
        grace_period: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..test_config()
    })
    .await;
    let mut silent = RawClient::connect(server.addr).await;
    let mut greeted = RawClient::connect(server.addr).await;
    greeted.hello().await;
    // Connections are accepted in order: once this one is served, both above are in sessions.
    good_transfer(server.addr, 1000, 1000).await;

    // No test is running, so the grace period does not apply.
    server.stop_within(PROMPT).await;
    silent.expect_error(ErrorCode::ShuttingDown, PROMPT).await;
    greeted.expect_error(ErrorCode::ShuttingDown, PROMPT).await;
}

/// Peak resident memory of a process, from `/proc/PID/status`.
#[cfg(target_os = "linux")]
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn serve_memory_does_not_grow_with_the_test_size() {
    let serve = ServeProcess::start(&[]);
    let pid = serve.child.0.id();
    let rt = runtime();
    // Warm up: the first test allocates the runtime's and the test's buffers.
    rt.block_on(good_transfer(serve.addr, 1_000_000, 1_000_000));
    let before = peak_rss_bytes(pid);
    let big = 256 * 1024 * 1024;
    rt.block_on(async {
        let sample = within(
            Duration::from_secs(60),
            "256 MB each way",
            common::transfer(serve.addr, big, big),
        )
        .await
        .expect("large transfer");
        common::assert_exact(&sample, big, big);
    });
    let growth = peak_rss_bytes(pid).saturating_sub(before);
    assert!(
        growth < 32 * 1024 * 1024,
        "peak memory grew by {growth} bytes for a 256 MB test"
    );
    serve.signal("INT");
    let (status, _) = serve.exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}
