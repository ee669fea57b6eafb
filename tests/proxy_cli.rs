//! `ntm proxy` end to end, for what only the binary shows: a recording is written as each
//! connection closes (so a killed proxy leaves a usable CSV).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::within;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const PROMPT: Duration = Duration::from_secs(20);

/// An upstream on port 0 that reads to EOF, answers `reply` bytes and closes.
async fn sink_then_reply(reply: usize) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            let mut s = tokio::select! {
                _ = token.cancelled() => return,
                a = listener.accept() => a.unwrap().0,
            };
            tokio::spawn(async move {
                let mut sink = Vec::new();
                if s.read_to_end(&mut sink).await.is_ok() {
                    let _ = s.write_all(&vec![0x5au8; reply]).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    (addr, stop)
}

/// Sends `upload` bytes, closes the sending side and reads the answer to its end.
async fn exchange(addr: SocketAddr, upload: usize) -> usize {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&vec![0x11u8; upload]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    within(PROMPT, "exchange", s.read_to_end(&mut back))
        .await
        .unwrap();
    back.len()
}

/// Per (connection, direction), the bytes of a CSV recording; asserts its header and columns.
fn csv_sums(text: &str) -> HashMap<(u64, String), u64> {
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("connection,direction,bin_start_seconds,bin_seconds,bytes"),
        "{text}"
    );
    let mut sums = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "a whole row: {line:?}");
        *sums
            .entry((f[0].parse().unwrap(), f[1].to_string()))
            .or_default() += f[4].parse::<u64>().unwrap();
    }
    sums
}

/// Three connections close; while the proxy still runs, the CSV already holds exactly their
/// rows (it used to be written only at exit); then the proxy is killed (SIGKILL: no exit path
/// runs) and the file still holds them, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_recording_is_written_as_connections_close() {
    const UP: usize = 50_000;
    const DOWN: usize = 7_000;
    const CONNECTIONS: u64 = 3;
    let (upstream, _stop) = sink_then_reply(DOWN).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("record.csv");
    let mut child = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("ntm"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(upstream.to_string())
        .arg("--record")
        .arg(&csv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ntm proxy");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let start = within(PROMPT, "the start line", stderr.next_line())
        .await
        .unwrap()
        .expect("ntm proxy exited before its start line");
    let addr: SocketAddr = start
        .strip_prefix("ntm proxy: ")
        .and_then(|rest| rest.split(" -> ").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no listen address in {start:?}"));

    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..CONNECTIONS {
        assert_eq!(exchange(addr, UP).await, DOWN);
        // The close line comes after the connection's rows were written.
        let line = within(PROMPT, "a close line", stdout.next_line())
            .await
            .unwrap()
            .expect("ntm proxy closed its output");
        assert!(line.contains("closed"), "{line}");
    }
    let expect: HashMap<(u64, String), u64> = (1..=CONNECTIONS)
        .flat_map(|id| {
            [
                ((id, "up".into()), UP as u64),
                ((id, "down".into()), DOWN as u64),
            ]
        })
        .collect();
    let running = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_sums(&running), expect, "while running:\n{running}");

    child.start_kill().unwrap();
    within(PROMPT, "ntm proxy dies", child.wait())
        .await
        .unwrap();
    let after = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(after, running, "the file changed after the kill");
}
