//! The proxy's test harness: `ntm::proxy::run` on port 0 ([`TestProxy`]) and `ntm proxy` as a
//! child process ([`ProxyProcess`]), the upstreams and clients around them, random payloads
//! checked by SHA-256, and this process's descriptors (the library proxy runs in it).
//!
//! Each test file uses a different subset (see the `dead_code` allowance in `common`).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ntm::proxy::link::LinkSpec;
use ntm::proxy::{ConnectionReport, Counters, ProxyConfig, ProxyEvent, ProxySummary};
use ntm::report::proxy::RECORD_CSV_HEADER;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{within, PROMPT};

// ---------------------------------------------------------------------------------------------
// A library proxy on port 0
// ---------------------------------------------------------------------------------------------

/// `ntm::proxy::run` on 127.0.0.1:0 in this test's runtime, with its events and counters.
pub struct TestProxy {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<ProxySummary>,
    events: mpsc::UnboundedReceiver<ProxyEvent>,
    pub counters: Arc<Counters>,
    /// Open events seen so far (by [`TestProxy::closes`]).
    pub opens: Vec<(u64, SocketAddr, SocketAddr)>,
}

impl TestProxy {
    pub async fn start(config: ProxyConfig) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (tx, events) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let handle = tokio::spawn(ntm::proxy::run(
            listener,
            config,
            shutdown.clone(),
            tx,
            counters.clone(),
        ));
        TestProxy {
            addr,
            shutdown,
            handle,
            events,
            counters,
            opens: Vec::new(),
        }
    }

    /// An unshaped proxy to `upstream`.
    pub async fn to(upstream: SocketAddr) -> TestProxy {
        TestProxy::shaped(upstream, LinkSpec::default(), LinkSpec::default()).await
    }

    pub async fn shaped(upstream: SocketAddr, up: LinkSpec, down: LinkSpec) -> TestProxy {
        TestProxy::start(ProxyConfig {
            upstream: vec![upstream],
            up,
            down,
            connect_timeout: Duration::from_secs(2),
            ..ProxyConfig::default()
        })
        .await
    }

    /// The next `n` close reports (open events are kept in `opens`), failing after `limit`.
    pub async fn closes(&mut self, n: usize, limit: Duration) -> Vec<ConnectionReport> {
        let mut reports = Vec::with_capacity(n);
        let collect = async {
            while reports.len() < n {
                match self.events.recv().await {
                    Some(ProxyEvent::Open {
                        id,
                        client,
                        upstream,
                    }) => self.opens.push((id, client, upstream)),
                    Some(ProxyEvent::Close(r)) => reports.push(*r),
                    None => panic!("the proxy's event channel closed"),
                }
            }
        };
        if tokio::time::timeout(limit, collect).await.is_err() {
            panic!(
                "only {} of {n} close events within {limit:?}",
                reports.len()
            );
        }
        reports
    }

    /// The one close report of a test that made one connection.
    pub async fn only_close(&mut self) -> ConnectionReport {
        self.closes(1, PROMPT).await.remove(0)
    }

    /// Stops the proxy and returns its summary, failing if it takes longer than [`PROMPT`].
    pub async fn stop(&mut self) -> ProxySummary {
        self.shutdown.cancel();
        within(PROMPT, "proxy shutdown", &mut self.handle)
            .await
            .expect("the proxy task panicked")
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// Random payloads and their hashes
// ---------------------------------------------------------------------------------------------

pub type Sha = [u8; 32];

pub fn sha(bytes: &[u8]) -> Sha {
    Sha256::digest(bytes).into()
}

/// The seed of this run: `NTM_TEST_SEED` or a fresh one, printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("NTM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{test}: NTM_TEST_SEED={seed}");
    seed
}

/// Random bytes that payloads are cut from (cheaper than drawing every byte afresh).
pub fn random_pool(seed: u64, len: usize) -> Arc<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut pool = vec![0u8; len];
    rng.fill(&mut pool);
    Arc::new(pool)
}

/// A payload of `len` bytes cut from `pool` at random places.
pub fn payload(rng: &mut fastrand::Rng, pool: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = rng.usize(1..=(len - out.len()).min(64 * 1024));
        let at = rng.usize(..=pool.len() - n);
        out.extend_from_slice(&pool[at..at + n]);
    }
    out
}

/// A size for one direction: some empty, some tiny, the rest uniform up to `max`.
pub fn random_len(rng: &mut fastrand::Rng, max: usize) -> usize {
    match rng.u8(..100) {
        0..=9 => 0,
        10..=14 => rng.usize(1..100),
        _ => rng.usize(..=max),
    }
}

/// Writes `data` in random-sized pieces; returns how many bytes the kernel took and the error,
/// if any. Counting per `write` (not `write_all`) keeps the count exact when the peer resets.
pub async fn write_pieces(
    w: &mut OwnedWriteHalf,
    data: &[u8],
    rng: &mut fastrand::Rng,
) -> (u64, Option<std::io::Error>) {
    let mut at = 0;
    while at < data.len() {
        let n = rng.usize(1..=(data.len() - at).min(128 * 1024));
        match w.write(&data[at..at + n]).await {
            Ok(0) => return (at as u64, Some(ErrorKind::WriteZero.into())),
            Ok(k) => at += k,
            Err(e) => return (at as u64, Some(e)),
        }
    }
    (at as u64, None)
}

/// What a reader saw: bytes, their hash, and how the stream ended.
#[derive(Debug, Clone)]
pub struct ReadSeen {
    pub bytes: u64,
    pub sha: Sha,
    /// `None`: a clean EOF (or the reader stopped by choice).
    pub error: Option<ErrorKind>,
}

/// Reads until EOF, an error, or (if `stop_after` is set) at least that many bytes.
pub async fn read_hashing(r: &mut (impl AsyncRead + Unpin), stop_after: Option<u64>) -> ReadSeen {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let error = loop {
        if stop_after.is_some_and(|k| bytes >= k) {
            break None;
        }
        match r.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => {
                hasher.update(&buf[..n]);
                bytes += n as u64;
            }
            Err(e) => break Some(e.kind()),
        }
    };
    ReadSeen {
        bytes,
        sha: hasher.finalize().into(),
        error,
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------------------------

/// An upstream on a fresh listener that runs `handle` for every connection it accepts, until
/// the returned token is cancelled.
pub async fn start_upstream<F, Fut>(handle: F) -> (SocketAddr, CancellationToken)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            let s = tokio::select! {
                _ = token.cancelled() => return,
                a = listener.accept() => a.unwrap().0,
            };
            tokio::spawn(handle(s));
        }
    });
    (addr, stop)
}

/// An upstream that echoes every byte back until EOF, then closes.
pub async fn start_echo() -> (SocketAddr, CancellationToken) {
    start_upstream(|mut s: TcpStream| async move {
        let _ = s.set_nodelay(true);
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

/// An upstream that reads until EOF, then sends `reply` bytes and closes.
pub async fn start_sink_then_reply(reply: usize) -> (SocketAddr, CancellationToken) {
    start_upstream(move |mut s: TcpStream| async move {
        let mut sink = Vec::new();
        if s.read_to_end(&mut sink).await.is_ok() {
            let _ = s.write_all(&vec![0x5au8; reply]).await;
            let _ = s.shutdown().await;
        }
    })
    .await
}

/// Accepts one connection on a fresh listener; returns the address and the accepted stream.
pub async fn one_shot_upstream() -> (SocketAddr, JoinHandle<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move { listener.accept().await.unwrap().0 });
    (addr, handle)
}

// ---------------------------------------------------------------------------------------------
// `ntm proxy` as a process
// ---------------------------------------------------------------------------------------------

/// Upper bound for a child `ntm` to start and print its first line: longer than [`PROMPT`],
/// because exec'ing a debug binary while other tests load both cores can itself take seconds.
pub const STARTUP: Duration = Duration::from_secs(20);

/// `ntm proxy --listen 127.0.0.1:0 ...` in a child process, killed when dropped.
pub struct ProxyProcess {
    child: tokio::process::Child,
    /// The start line: "ntm proxy: LISTEN -> UPSTREAM (up: ...; down: ...)".
    pub start_line: String,
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
    /// `None` once [`ProxyProcess::close_stdout`] closed our end of the pipe.
    stdout: Option<tokio::io::Lines<BufReader<tokio::process::ChildStdout>>>,
    stderr: JoinHandle<String>,
}

impl ProxyProcess {
    pub async fn start(args: &[&str]) -> ProxyProcess {
        let mut child = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("ntm"))
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn ntm proxy");
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let wants_metrics = args.contains(&"--metrics");
        let mut start_line = String::new();
        let mut metrics = None;
        let mut early = Vec::new();
        within(STARTUP, "the proxy's start line", async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("ntm proxy: metrics on http://") {
                    let addr = rest.trim_end_matches("/metrics");
                    metrics = Some(addr.parse::<SocketAddr>().expect("metrics address"));
                } else if line.starts_with("ntm proxy: ") && line.contains(" -> ") {
                    start_line = line;
                } else {
                    early.push(line);
                }
                if !start_line.is_empty() && (metrics.is_some() || !wants_metrics) {
                    return;
                }
            }
            panic!("ntm proxy exited before its start line: {early:?}");
        })
        .await;
        let listen = start_line["ntm proxy: ".len()..]
            .split(" -> ")
            .next()
            .unwrap();
        let addr = listen.parse().expect("listen address in the start line");
        let stderr = tokio::spawn(async move {
            let mut rest: String = early.iter().map(|l| format!("{l}\n")).collect();
            while let Ok(Some(line)) = stderr.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        });
        let stdout = Some(BufReader::new(child.stdout.take().unwrap()).lines());
        ProxyProcess {
            child,
            start_line,
            addr,
            metrics,
            stdout,
            stderr,
        }
    }

    pub async fn stdout_line(&mut self) -> String {
        let stdout = self.stdout.as_mut().expect("standard output still open");
        within(PROMPT, "a line from ntm proxy", stdout.next_line())
            .await
            .unwrap()
            .expect("ntm proxy closed its output")
    }

    /// Closes our end of the proxy's standard output, as `| head -1` does once it has its line:
    /// the proxy's next write fails with a broken pipe.
    pub fn close_stdout(&mut self) {
        self.stdout = None;
    }

    /// Waits for the proxy to exit by itself; returns the exit status and all of standard
    /// error.
    pub async fn exited(mut self) -> (std::process::ExitStatus, String) {
        let status = tokio::time::timeout(PROMPT, self.child.wait()).await;
        if status.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        let stderr = within(PROMPT, "stderr", &mut self.stderr).await.unwrap();
        match status {
            Ok(status) => (status.unwrap(), stderr),
            Err(_) => panic!("ntm proxy did not exit within {PROMPT:?}; its stderr:\n{stderr}"),
        }
    }

    /// Ctrl-C; returns the exit status, the rest of standard output and all of standard error.
    pub async fn interrupt(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let pid = self.child.id().expect("ntm proxy still running") as libc::pid_t;
        // SAFETY: kill(2) on a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let status = within(PROMPT, "ntm proxy exits on Ctrl-C", self.child.wait())
            .await
            .unwrap();
        let mut rest = Vec::new();
        if let Some(stdout) = &mut self.stdout {
            while let Ok(Some(line)) = stdout.next_line().await {
                rest.push(line);
            }
        }
        let stderr = within(PROMPT, "stderr", &mut self.stderr).await.unwrap();
        (status, rest, stderr)
    }

    /// SIGKILL, so that no exit path runs; waits for the process to be gone.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill ntm proxy");
        within(PROMPT, "ntm proxy dies", self.child.wait())
            .await
            .unwrap();
    }
}

/// One row of a CSV recording (`ntm proxy --record FILE.csv`).
#[derive(Debug)]
pub struct RecordRow {
    pub connection: u64,
    pub direction: String,
    pub bin_start_seconds: f64,
    pub bin_seconds: f64,
    pub bytes: u64,
}

/// The rows of a CSV recording; asserts the header is [`RECORD_CSV_HEADER`] and every row whole.
pub fn record_rows(text: &str) -> Vec<RecordRow> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(RECORD_CSV_HEADER), "{text}");
    let columns: Vec<&str> = RECORD_CSV_HEADER.split(',').collect();
    let at = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no column {name} in {RECORD_CSV_HEADER}"))
    };
    let (connection, direction, bin_start, bin, bytes) = (
        at("connection"),
        at("direction"),
        at("bin_start_seconds"),
        at("bin_seconds"),
        at("bytes"),
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), columns.len(), "a whole row: {line:?}");
            let count = |i: usize| -> u64 {
                f[i].parse()
                    .unwrap_or_else(|e| panic!("column {i}: {e}: {line:?}"))
            };
            let seconds = |i: usize| -> f64 {
                f[i].parse()
                    .unwrap_or_else(|e| panic!("column {i}: {e}: {line:?}"))
            };
            RecordRow {
                connection: count(connection),
                direction: f[direction].to_string(),
                bin_start_seconds: seconds(bin_start),
                bin_seconds: seconds(bin),
                bytes: count(bytes),
            }
        })
        .collect()
}

/// Bytes per (connection, direction) in a recording's rows.
pub fn recorded_bytes(rows: &[RecordRow]) -> HashMap<(u64, String), u64> {
    let mut sums = HashMap::new();
    for row in rows {
        *sums
            .entry((row.connection, row.direction.clone()))
            .or_default() += row.bytes;
    }
    sums
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// Connects to `addr`, sends `upload` bytes, half-closes, and returns what came back.
pub async fn exchange(addr: SocketAddr, upload: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&vec![0x11u8; upload]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    within(PROMPT, "exchange", s.read_to_end(&mut back))
        .await
        .unwrap();
    back
}

/// One 64-byte round trip on `s`.
pub async fn ping(s: &mut TcpStream) -> Duration {
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let t = Instant::now();
    s.write_all(&msg).await.unwrap();
    within(PROMPT, "ping", s.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(back, msg);
    t.elapsed()
}

/// `count` pings after one warm-up; sorted.
pub async fn pings(addr: SocketAddr, count: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    ping(&mut s).await;
    let mut rtts = Vec::new();
    for _ in 0..count {
        rtts.push(ping(&mut s).await);
    }
    rtts.sort();
    rtts
}

/// Reads until something other than data: `Ok(bytes read)` for a clean EOF, the error otherwise.
pub async fn read_until_end(s: &mut TcpStream) -> Result<u64, ErrorKind> {
    let seen = read_hashing(s, None).await;
    match seen.error {
        None => Ok(seen.bytes),
        Some(kind) => Err(kind),
    }
}

/// Whether an error of `kind` is how a reset connection shows.
pub fn is_reset(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

// ---------------------------------------------------------------------------------------------
// Tests that need this process to themselves
// ---------------------------------------------------------------------------------------------

/// Whether this process is the child that runs test `name` alone. Tests that count this
/// process's descriptors need the process to themselves: the first call reruns the test binary
/// with just that test (an environment variable marks the child), asserts that it passed and
/// returns `false`; in the child it returns `true`.
pub fn in_a_process_of_its_own(name: &str) -> bool {
    const ALONE: &str = "NTM_PROXY_TEST_ALONE";
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rerun the test binary");
    let out = super::output_within(super::ChildGuard(child), Duration::from_secs(60));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the test failed alone:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child did not run the test:\n{text}"
    );
    false
}

/// A runtime like `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` gives.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// This process's descriptors
// ---------------------------------------------------------------------------------------------

/// This process's open descriptors in ascending order, each with what it refers to (a path,
/// `socket:[inode]`, `pipe:[inode]`; empty if it closed while being listed). Read from
/// `/proc/self/fd`, whose own descriptor is among them.
#[cfg(target_os = "linux")]
pub fn open_fds() -> Vec<(i32, std::path::PathBuf)> {
    let mut fds: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            Some((fd, std::fs::read_link(e.path()).unwrap_or_default()))
        })
        .collect();
    fds.sort();
    fds
}
