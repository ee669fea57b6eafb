//! `ntm proxy` end to end, for what only the binary shows: a recording is written as each
//! connection closes (so a killed proxy leaves a usable CSV), and log lines stay off the
//! terminal while the live view is on it.

mod common;

use std::collections::HashMap;

use common::proxy::{exchange, record_rows, recorded_bytes, start_sink_then_reply, ProxyProcess};

/// Three connections close; while the proxy still runs, the CSV already holds exactly their
/// rows (it used to be written only at exit); then the proxy is killed (SIGKILL: no exit path
/// runs) and the file still holds them, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_recording_is_written_as_connections_close() {
    const UP: usize = 50_000;
    const DOWN: usize = 7_000;
    const CONNECTIONS: u64 = 3;
    let (upstream, _stop) = start_sink_then_reply(DOWN).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("record.csv");
    let mut proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--record",
        csv.to_str().unwrap(),
    ])
    .await;
    for _ in 0..CONNECTIONS {
        assert_eq!(exchange(proxy.addr, UP).await.len(), DOWN);
        // The close line comes after the connection's rows were written.
        let line = proxy.stdout_line().await;
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
    assert_eq!(
        recorded_bytes(&record_rows(&running)),
        expect,
        "while running:\n{running}"
    );

    proxy.kill().await;
    let after = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(after, running, "the file changed after the kill");
}

/// `ntm proxy --format json --record FILE.json --plot FILE.svg | head -1`: once the reader of
/// the output has gone, the next event cannot be printed (a broken pipe). The proxy stops, exits
/// 0 (a closed pipe is not a failure), and still finishes both files: the recording is one whole
/// JSON document with the connections and the summary, and the plot is drawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_pipe_still_leaves_whole_recording_and_plot() {
    const UP: usize = 20_000;
    const DOWN: usize = 3_000;
    let (upstream, _stop) = start_sink_then_reply(DOWN).await;
    let dir = tempfile::tempdir().unwrap();
    let (record, plot) = (dir.path().join("record.json"), dir.path().join("plot.svg"));
    let mut proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--format",
        "json",
        "--record",
        record.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ])
    .await;
    assert_eq!(exchange(proxy.addr, UP).await.len(), DOWN);
    assert!(proxy.stdout_line().await.contains(r#""event":"open""#));
    assert!(proxy.stdout_line().await.contains(r#""event":"close""#));
    proxy.close_stdout();
    // Its open event is the first print to fail. The proxy may stop (and reset this
    // connection) before the connect is seen to complete, so either outcome will do.
    let _second = tokio::net::TcpStream::connect(proxy.addr).await;
    let (status, stderr) = proxy.exited().await;
    assert!(status.success(), "{status:?}: {stderr}");

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).expect("whole JSON");
    let connections = doc["connections"].as_array().expect("connections");
    assert!(!connections.is_empty(), "{doc}");
    assert_eq!(connections[0]["bytes_up"], UP as u64);
    assert_eq!(connections[0]["bytes_down"], DOWN as u64);
    assert!(
        doc["summary"]["connections"].as_u64().unwrap() >= 1,
        "{doc}"
    );
    common::assert_svg_plot(&std::fs::read_to_string(&plot).unwrap(), &["up", "down"], 2);
}

/// A pseudo-terminal: the master end, and the path of the slave end.
#[cfg(target_os = "linux")]
fn open_pty(rows: u16, cols: u16) -> (std::fs::File, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new descriptor (checked) that the File then owns; grantpt,
    // unlockpt, ptsname and ioctl act on it; ptsname's static buffer is copied at once.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = std::fs::File::from_raw_fd(fd);
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let name = libc::ptsname(fd);
        assert!(!name.is_null());
        let slave = std::ffi::CStr::from_ptr(name).to_str().unwrap().to_string();
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(libc::ioctl(fd, libc::TIOCSWINSZ, &size), 0);
        (master, slave)
    }
}

/// Waits until `screen` holds `needle` (after byte `from`), failing after `limit`; returns
/// where it starts.
#[cfg(target_os = "linux")]
fn wait_for(
    screen: &std::sync::Mutex<Vec<u8>>,
    needle: &[u8],
    from: usize,
    what: &str,
    limit: std::time::Duration,
) -> usize {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let bytes = screen.lock().unwrap().clone();
        if let Some(at) = find(&bytes[from.min(bytes.len())..], needle) {
            return from + at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not on the terminal within {limit:?}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(target_os = "linux")]
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `ntm proxy --tui` on a terminal, an upstream that refuses: the warning the proxy logs used to
/// be written on the terminal over the live view. It must come after the view has left the
/// alternate screen. Standard error is the terminal too, so the order on it is the test.
#[cfg(target_os = "linux")]
#[test]
fn log_lines_are_held_while_the_live_view_is_up() {
    use common::proxy::STARTUP;
    use common::PROMPT;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::os::unix::process::CommandExt;
    const ENTER: &[u8] = b"\x1b[?1049h";
    const LEAVE: &[u8] = b"\x1b[?1049l";
    const WARNING: &[u8] = b"upstream connection failed";

    let (mut master, slave) = open_pty(40, 160);
    let upstream = format!("127.0.0.1:{}", common::closed_port());
    let tty = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .unwrap()
    };
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("ntm"));
    command
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--tui",
        ])
        .stdin(tty())
        .stdout(tty())
        .stderr(tty());
    // SAFETY: between fork and exec only async-signal-safe calls: the child leads a new session
    // whose controlling terminal is the pty, so the view never touches the tester's terminal.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = common::ChildGuard(command.spawn().expect("spawn ntm proxy --tui"));
    // The test keeps no slave end open: the master reads EIO once the child is gone.
    drop(command);

    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let (screen, mut master) = (screen.clone(), master.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = master.read(&mut buf) {
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let start = wait_for(&screen, b" -> ", 0, "the start line", STARTUP);
    let addr: SocketAddr = {
        let bytes = screen.lock().unwrap();
        let line = String::from_utf8_lossy(&bytes[..start]).into_owned();
        line.rsplit("ntm proxy: ")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no listen address in {line:?}"))
    };
    wait_for(&screen, ENTER, 0, "the live view", PROMPT);

    // The proxy logs the refused upstream before it closes the client: once the client sees
    // the end, the warning has been written (or held), with the view up.
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(PROMPT)).unwrap();
    let mut rest = Vec::new();
    let end = client.read_to_end(&mut rest);
    assert!(end.is_err() || rest.is_empty(), "{end:?} {rest:?}");

    master.write_all(b"q").unwrap();
    let status = common::wait_timeout(&mut child.0, PROMPT).expect("ntm proxy quits on q");
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
    let bytes = screen.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&bytes);
    let left = find(&bytes, LEAVE).unwrap_or_else(|| panic!("never left the view: {text:?}"));
    let warned = find(&bytes, WARNING).unwrap_or_else(|| panic!("no warning at all: {text:?}"));
    assert!(
        warned > left,
        "the warning was written while the view was up: {text:?}"
    );
    assert_eq!(
        bytes
            .windows(WARNING.len())
            .filter(|w| w == &WARNING)
            .count(),
        1,
        "{text:?}"
    );
}
