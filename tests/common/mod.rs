//! Helpers shared by the end-to-end tests: an in-process server on port 0, a raw protocol client
//! for hostile peers, well-behaved transfers with exact-count checks, and child-process guards.
//!
//! Each test file uses a different subset, hence the `dead_code` allowance (which covers the
//! submodules too). The proxy's harness is in [`proxy`] and [`churn`].
#![allow(dead_code)]

pub mod churn;
pub mod proxy;

use std::future::Future;
use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use ntm::measure::{self, MeasureError, TransferOptions, TransferSample, TransferSpec};
use ntm::server::{self, ServerConfig};
use ntm::wire::frame::{self, Message, TestRequest, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything that should take milliseconds: wide enough for a loaded 2-core
/// machine running a debug build, short enough that a hang fails the test quickly.
pub const PROMPT: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {limit:?}"),
    }
}

/// A server config for tests: short idle timeout and grace period, a few test slots.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        max_tests: 4,
        max_connections: 64,
        idle_timeout: Duration::from_millis(500),
        grace_period: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

/// A server running in this test's runtime on 127.0.0.1, port 0.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and spawns [`server::run`] with `config`.
    pub async fn start(config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server::run(listener, config, shutdown.clone()));
        TestServer {
            addr,
            shutdown,
            handle,
        }
    }

    /// Cancels the server and waits for it to return, within `limit`.
    pub async fn stop_within(mut self, limit: Duration) {
        self.shutdown.cancel();
        within(limit, "server shutdown", &mut self.handle)
            .await
            .expect("server task panicked");
    }

    /// Fails the test if the server task has ended (returned or panicked) while it should serve.
    pub fn assert_running(&self) {
        assert!(
            !self.handle.is_finished(),
            "the server task ended while it should still be serving"
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that fails half-way must not leave a server behind in a shared runtime.
        self.shutdown.cancel();
    }
}

/// Client options for tests: a short connect timeout, an I/O timeout above any server idle
/// timeout used here.
pub fn client_options() -> TransferOptions {
    TransferOptions {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
        ..TransferOptions::default()
    }
}

/// Runs one transfer against `addr` with the library client.
pub async fn transfer(
    addr: SocketAddr,
    payload_bytes: u64,
    response_bytes: u64,
) -> Result<TransferSample, MeasureError> {
    let spec = TransferSpec {
        payload_bytes,
        response_bytes,
    };
    measure::transfer(&[addr], spec, &client_options()).await
}

/// Asserts that both ends counted exactly the requested bytes.
pub fn assert_exact(sample: &TransferSample, payload_bytes: u64, response_bytes: u64) {
    assert_eq!(sample.spec.payload_bytes, payload_bytes);
    assert_eq!(sample.spec.response_bytes, response_bytes);
    assert_eq!(sample.client_sent_bytes, payload_bytes, "client sent");
    assert_eq!(
        sample.server.bytes_received, payload_bytes,
        "server received"
    );
    assert_eq!(sample.server.bytes_sent, response_bytes, "server sent");
    assert_eq!(
        sample.client_received_bytes, response_bytes,
        "client received"
    );
}

/// A transfer that must succeed promptly with exact counts on both sides.
pub async fn good_transfer(addr: SocketAddr, payload_bytes: u64, response_bytes: u64) {
    let sample = within(
        PROMPT,
        "well-behaved transfer",
        transfer(addr, payload_bytes, response_bytes),
    )
    .await
    .unwrap_or_else(|e| panic!("well-behaved transfer failed: {e}"));
    assert_exact(&sample, payload_bytes, response_bytes);
}

/// The frame of a transfer request.
pub fn request_frame(upload_bytes: u64, download_bytes: u64) -> Vec<u8> {
    frame::encode(&Message::Request(TestRequest::Transfer {
        upload_bytes,
        download_bytes,
    }))
}

/// A frame with an arbitrary body, valid JSON or not.
pub fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// What a raw client saw when it read the rest of a connection.
#[derive(Debug)]
pub struct Ending {
    /// Every whole frame received, in order.
    pub frames: Vec<Message>,
    /// Bytes after the last whole frame (should be none).
    pub trailing: Vec<u8>,
    /// The server reset the connection instead of closing it cleanly.
    pub reset: bool,
}

impl Ending {
    /// The code of the last frame, if it is an error frame.
    pub fn error_code(&self) -> Option<frame::ErrorCode> {
        match self.frames.last() {
            Some(Message::Error { code, .. }) => Some(*code),
            _ => None,
        }
    }
}

/// A client that speaks the protocol by hand, so tests can misbehave at any byte.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = within(PROMPT, "connect", TcpStream::connect(addr))
            .await
            .expect("connect to the test server");
        stream.set_nodelay(true).unwrap();
        RawClient { stream }
    }

    /// Writes `bytes` in one call.
    pub async fn send(&mut self, bytes: &[u8]) {
        within(PROMPT, "send", self.stream.write_all(bytes))
            .await
            .expect("write to the test server");
    }

    pub async fn hello(&mut self) {
        self.send(&frame::encode_hello()).await;
    }

    pub async fn message(&mut self, message: &Message) {
        self.send(&frame::encode(message)).await;
    }

    /// Sends hello and a transfer request, and expects `Accepted`.
    pub async fn start_test(&mut self, upload_bytes: u64, download_bytes: u64) {
        let mut bytes = frame::encode_hello().to_vec();
        bytes.extend(request_frame(upload_bytes, download_bytes));
        self.send(&bytes).await;
        match self.read_frame(PROMPT).await {
            Some(Message::Accepted { .. }) => {}
            other => panic!("expected accepted, got {other:?}"),
        }
    }

    /// Sends `len` bytes of test data.
    pub async fn send_data(&mut self, len: usize) {
        self.send(&vec![0xa5u8; len]).await;
    }

    /// Reads one frame; `None` on a clean close before it. Fails the test after `limit`.
    pub async fn read_frame(&mut self, limit: Duration) -> Option<Message> {
        let mut header = [0u8; HEADER_LEN];
        match within(
            limit,
            "read frame header",
            self.stream.read_exact(&mut header),
        )
        .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => panic!("reading a frame header: {e}"),
        }
        let len = frame::parse_header(header).expect("server frame within the maximum");
        let mut body = vec![0u8; len];
        within(limit, "read frame body", self.stream.read_exact(&mut body))
            .await
            .expect("whole frame body");
        Some(frame::parse_body(&body).expect("server frame parses"))
    }

    /// Reads until the server closes the connection, within `limit`, and returns what came.
    pub async fn read_to_close(&mut self, limit: Duration) -> Ending {
        let mut bytes = Vec::new();
        let mut reset = false;
        let read = async {
            let mut buf = [0u8; 4096];
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    Err(_) => {
                        reset = true;
                        break;
                    }
                }
            }
        };
        within(limit, "waiting for the server to close", read).await;
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((message, used)) =
            frame::parse(&bytes[at..]).expect("server sends valid frames")
        {
            frames.push(message);
            at += used;
        }
        Ending {
            frames,
            trailing: bytes[at..].to_vec(),
            reset,
        }
    }

    /// Reads until close and asserts the server's last word was an error frame with `code`.
    pub async fn expect_error(&mut self, code: frame::ErrorCode, limit: Duration) -> Ending {
        let ending = self.read_to_close(limit).await;
        assert_eq!(
            ending.error_code(),
            Some(code),
            "expected an error frame with code {code:?}, got {ending:?}"
        );
        assert!(ending.trailing.is_empty(), "bytes after the error frame");
        ending
    }
}

/// Kills and reaps a child process when dropped, so a failing test leaves nothing running.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, polling, for at most `limit`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port on 127.0.0.1 that nothing listens on: bound, noted, released.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Asserts `stderr` is exactly one line and returns it.
pub fn one_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).into_owned();
    assert!(text.ends_with('\n'), "stderr does not end a line: {text:?}");
    assert_eq!(text.lines().count(), 1, "stderr is not one line: {text:?}");
    text.trim_end().to_string()
}

// ---- Throughput, latency and schema tests ----

/// A stream (throughput) test request with the defaults of `ntm measure`: 128 KB blocks, no
/// warm-up, default socket options.
pub fn stream_request(
    streams: u16,
    direction: ntm::wire::Direction,
    limit: ntm::wire::Limit,
    interval_ms: u64,
) -> ntm::wire::StreamRequest {
    ntm::wire::StreamRequest {
        streams,
        direction,
        limit,
        interval_ms,
        omit_ms: 0,
        block_bytes: 128 * 1024,
        socket: ntm::os::SocketOptions::default(),
    }
}

/// Client options for stream tests: a short connect timeout, an I/O timeout above any server
/// idle timeout used here.
pub fn stream_options() -> measure::StreamOptions {
    measure::StreamOptions {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
    }
}

/// Runs a stream test with the library client, failing the test if it errs or takes longer
/// than `limit`.
pub async fn stream_test(
    addr: SocketAddr,
    request: ntm::wire::StreamRequest,
    limit: Duration,
) -> measure::StreamOutcome {
    within(
        limit,
        "stream test",
        measure::stream_test(
            &[addr],
            request,
            &stream_options(),
            CancellationToken::new(),
            None,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("stream test failed: {e}"))
}

/// Runs the `ntm` binary with `args` off the async runtime (so an in-process server keeps
/// serving), killing it after `limit`.
pub async fn run_ntm(args: &[&str], limit: Duration) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || {
        assert_cmd::Command::cargo_bin("ntm")
            .unwrap()
            .args(&args)
            .timeout(limit)
            .output()
            .unwrap()
    });
    within(limit + Duration::from_secs(5), "ntm", run)
        .await
        .unwrap()
}

/// Starts the `ntm` binary with `args`, standard output and error piped, killed when dropped.
pub fn spawn_ntm(args: &[&str]) -> ChildGuard {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ntm"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ntm");
    ChildGuard(child)
}

/// Sends `signal` (e.g. `libc::SIGINT`) to `child`.
pub fn send_signal(child: &Child, signal: i32) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid this test spawned and has not reaped yet.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Waits (off the runtime) for a child to exit within `limit` and returns its output.
pub fn output_within(mut guard: ChildGuard, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut stdout = guard.0.stdout.take().expect("piped stdout");
    let mut stderr = guard.0.stderr.take().expect("piped stderr");
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = wait_timeout(&mut guard.0, limit)
        .unwrap_or_else(|| panic!("ntm still running {limit:?} later"));
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Parses standard output as one JSON document, failing the test with the text if it is not.
pub fn stdout_json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The schema committed as `schemas/{name}.schema.json`.
pub fn schema(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Where `doc` breaks the schema `name`: one line per error, empty if it validates.
pub fn schema_errors(name: &str, doc: &serde_json::Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema(name))
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

/// Fails the test unless `doc` validates against the schema `name`.
pub fn assert_valid(name: &str, doc: &serde_json::Value) {
    let errors = schema_errors(name, doc);
    assert!(
        errors.is_empty(),
        "output does not match schemas/{name}.schema.json:\n  {}\ndocument: {doc:#}",
        errors.join("\n  ")
    );
}

/// Resets a connection: SO_LINGER 0, then close, so the peer gets an RST.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

/// A TCP relay on 127.0.0.1 port 0 in front of `upstream`. It counts the bytes it relays
/// towards the server, so a test can tell that a client's data is flowing without taking a
/// test slot, and it can reset one of its connections (both sides) mid-test. Its tasks end
/// when it is dropped.
pub struct Relay {
    pub addr: SocketAddr,
    relayed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    _tasks: tokio::task::JoinSet<()>,
}

/// Which connection a [`Relay`] resets, and when.
#[derive(Debug, Clone, Copy)]
pub struct ResetAfter {
    /// Index of the connection in accept order (0 = the first).
    pub connection: usize,
    /// Bytes relayed towards the server on it first.
    pub bytes: u64,
}

impl Relay {
    pub async fn start(upstream: SocketAddr, doom: Option<ResetAfter>) -> Relay {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().unwrap();
        let relayed = std::sync::Arc::new(AtomicU64::new(0));
        let counter = relayed.clone();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            for index in 0.. {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let counter = counter.clone();
                let doomed = doom.filter(|d| d.connection == index);
                relays.spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut up = 0u64;
                    let mut down_open = true;
                    loop {
                        if doomed.is_some_and(|d| up >= d.bytes) {
                            reset(client);
                            reset(server);
                            return;
                        }
                        let mut back = [0u8; 16 * 1024];
                        tokio::select! {
                            r = client.read(&mut buf) => match r {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if server.write_all(&buf[..n]).await.is_err() { break; }
                                    up += n as u64;
                                    counter.fetch_add(n as u64, Ordering::Relaxed);
                                }
                            },
                            r = server.read(&mut back), if down_open => match r {
                                Ok(0) => { down_open = false; let _ = client.shutdown().await; }
                                Err(_) => break,
                                Ok(n) => if client.write_all(&back[..n]).await.is_err() { break; },
                            },
                        }
                    }
                    // The client closed its side: pass that on, then relay the rest back.
                    let _ = server.shutdown().await;
                    if down_open {
                        let _ = tokio::io::copy(&mut server, &mut client).await;
                    }
                });
            }
        });
        Relay {
            addr,
            relayed,
            _tasks: tasks,
        }
    }

    /// Bytes relayed towards the server so far, over all connections.
    pub fn relayed(&self) -> u64 {
        self.relayed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until at least `bytes` went towards the server; fails the test after `limit`.
    pub async fn until_relayed(&self, bytes: u64, limit: Duration) {
        let start = std::time::Instant::now();
        while self.relayed() < bytes {
            assert!(
                start.elapsed() < limit,
                "only {} of {bytes} bytes relayed within {limit:?}",
                self.relayed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Reads a child's standard output line by line on a thread, so a test can wait for a line.
pub fn stdout_lines(child: &mut ChildGuard) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line that starts with `prefix`, returning every line read; fails after `limit`.
pub fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    prefix: &str,
    limit: Duration,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.starts_with(prefix);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no line starting {prefix:?} within {limit:?}; got {seen:?}"),
        }
    }
}

/// JSON pointers to every object member in `doc`; of each array only the first element is
/// visited (the schemas apply one item schema to all elements).
pub fn member_paths(doc: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    assert!(!k.contains(['/', '~']), "key {k:?} needs escaping");
                    let path = format!("{at}/{k}");
                    out.push(path.clone());
                    walk(child, &path, out);
                }
            }
            serde_json::Value::Array(a) => {
                if let Some(first) = a.first() {
                    walk(first, &format!("{at}/0"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out
}

/// A value of another JSON type than `v`, that no schema here accepts in its place.
pub fn wrong_type(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(_) => serde_json::Value::Bool(true),
        serde_json::Value::Number(_)
        | serde_json::Value::Bool(_)
        | serde_json::Value::Object(_) => serde_json::Value::String("x".into()),
        // Where null is allowed, so is a number or a string, never an array.
        serde_json::Value::Null | serde_json::Value::Array(_) => {
            serde_json::Value::Object(Default::default())
        }
    }
}

/// Asserts a usage error of `ntm ARGS`: exit 2, nothing on stdout, one stderr line starting
/// `ntm: ` that quotes `value` and contains `says`.
pub fn usage_error(args: &[&str], value: &str, says: &str) {
    let output = assert_cmd::Command::cargo_bin("ntm")
        .unwrap()
        .args(args)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let line = one_line(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "ntm {args:?}: {line}");
    assert!(output.stdout.is_empty(), "ntm {args:?}: stdout not empty");
    assert!(line.starts_with("ntm: "), "ntm {args:?}: {line}");
    assert!(
        line.contains(&format!("'{value}'")),
        "ntm {args:?}: the message should quote '{value}': {line}"
    );
    assert!(
        line.contains(says),
        "ntm {args:?}: the message should say {says:?}: {line}"
    );
}

/// The compiled schema `name` (draft 2020-12).
pub fn validator(name: &str) -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema(name))
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"))
}

/// Asserts `doc` is valid, and that removing any member (but those in `optional`) or changing
/// any member's type makes it invalid.
pub fn assert_valid_and_strict(name: &str, doc: &serde_json::Value, optional: &[&str]) {
    assert_valid(name, doc);
    let schema = validator(name);
    let paths = member_paths(doc);
    assert!(
        paths.len() > 10,
        "{name}: suspiciously small document {doc}"
    );
    let mut lax = Vec::new();
    for path in &paths {
        let (parent, key) = path.rsplit_once('/').unwrap();
        if !optional.contains(&path.as_str()) {
            let mut without = doc.clone();
            without
                .pointer_mut(parent)
                .and_then(serde_json::Value::as_object_mut)
                .unwrap()
                .remove(key);
            if schema.is_valid(&without) {
                lax.push(format!("missing {path}"));
            }
        }
        let mut retyped = doc.clone();
        let slot = retyped.pointer_mut(path).unwrap();
        *slot = wrong_type(slot);
        if schema.is_valid(&retyped) {
            lax.push(format!("wrong type at {path}"));
        }
    }
    assert!(
        lax.is_empty(),
        "schemas/{name}.schema.json accepts a broken document:\n  {}\ndocument: {doc:#}",
        lax.join("\n  ")
    );
}

/// Asserts a successful `ntm ... --plot FILE` run: it says where the plot went, and FILE is a
/// plot (see [`assert_svg_plot`]; removed afterwards).
pub fn assert_plot_written(output: std::process::Output, path: &std::path::Path) {
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains(&format!("Plot written to {}", path.display())),
        "{text}"
    );
    let svg = std::fs::read_to_string(path).expect("the plot file");
    assert_svg_plot(&svg, &[], 1);
    let _ = std::fs::remove_file(path);
}

/// Asserts `svg` is a whole SVG document with a drawn plot: at least `series` data lines
/// (coloured polylines or paths of three or more points, inside the canvas, not flat: the
/// legend's samples and the black axes and ticks do not count), numbers on both axes (four or
/// more numeric labels), axis descriptions (two or more other labels), and a text element for
/// each of `labels`.
pub fn assert_svg_plot(svg: &str, labels: &[&str], series: usize) {
    let head = &svg[..svg.len().min(300)];
    assert!(svg.starts_with("<svg"), "not an SVG document: {head}");
    assert!(
        svg.trim_end().ends_with("</svg>"),
        "an unfinished SVG: {head}"
    );
    let root = &svg[..svg.find('>').expect("the svg tag ends")];
    let size = |name: &str| -> f64 {
        svg_attribute(root, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric {name} in {root}"))
    };
    let (width, height) = (size("width"), size("height"));

    let mut lines = Vec::new();
    for (tag, points) in [("<polyline", "points"), ("<path", "d")] {
        for (at, _) in svg.match_indices(tag) {
            let element = &svg[at..at + svg[at..].find('>').expect("the element ends")];
            let stroke = svg_attribute(element, "stroke").unwrap_or("none");
            if stroke == "none" || stroke == "#000000" {
                continue;
            }
            let numbers: Vec<f64> = svg_attribute(element, points)
                .unwrap_or("")
                .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().unwrap_or_else(|_| panic!("{t:?} in {element}")))
                .collect();
            let xy: Vec<(f64, f64)> = numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            lines.push((stroke, xy));
        }
    }
    let drawn: Vec<_> = lines
        .iter()
        .filter(|(_, xy)| xy.len() >= 3 && xy.iter().any(|p| p.1 != xy[0].1))
        .collect();
    assert!(
        drawn.len() >= series,
        "{} drawn series, {series} wanted, among the coloured lines {:?}",
        drawn.len(),
        lines
            .iter()
            .map(|(c, xy)| (c, xy.len()))
            .collect::<Vec<_>>()
    );
    for (stroke, xy) in &drawn {
        for &(x, y) in xy {
            assert!(
                (0.0..=width).contains(&x) && (0.0..=height).contains(&y),
                "series {stroke}: point ({x}, {y}) outside the {width} x {height} canvas"
            );
        }
    }

    let texts: Vec<&str> = svg
        .match_indices("<text")
        .map(|(at, _)| {
            let open = at + svg[at..].find('>').expect("the text tag ends") + 1;
            let close = open + svg[open..].find("</text>").expect("the text element ends");
            svg[open..close].trim()
        })
        .collect();
    let (numbers, words): (Vec<&str>, Vec<&str>) =
        texts.iter().partition(|t| t.parse::<f64>().is_ok());
    assert!(numbers.len() >= 4, "too few numbers on the axes: {texts:?}");
    assert!(words.len() >= 2, "no axis descriptions: {texts:?}");
    for label in labels {
        assert!(texts.contains(label), "no label {label:?} among {texts:?}");
    }
}

/// The value of attribute `name` in the start tag `element` (without its closing `>`).
fn svg_attribute<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}
