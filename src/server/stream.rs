//! The stream (throughput) test, server side. The control connection admits the test and hands
//! out a cookie; the client opens one data connection per stream and joins with it; once all
//! have joined the server says `start`, runs the streams, reports its counters every interval and
//! at the end. A client that vanishes ends its test within the idle timeout.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::session::{unexpected, SessionError, TestTotals};
use super::Shared;
use crate::os::{self, CpuTime};
use crate::wire::data::{self, StreamCounters, StreamPlan};
use crate::wire::{
    Connection, ConnectionError, ErrorCode, Limit, Message, ServerInterval, ServerStream,
    StreamRequest, StreamResults,
};

/// Most parallel streams in one test.
pub const MAX_STREAMS: u16 = 128;
/// Longest test.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Shortest reporting interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Largest write block.
pub const MAX_BLOCK: u32 = 16 << 20;

/// Data connections waiting to be handed to their test, by cookie.
pub(super) type PendingJoins = std::sync::Mutex<HashMap<u64, mpsc::Sender<(u16, Connection)>>>;

pub(super) fn validate(request: &StreamRequest, max_bytes: u64) -> Result<(), SessionError> {
    let bad = |message: String| Err(SessionError::refused(ErrorCode::LimitExceeded, message));
    if request.streams == 0 || request.streams > MAX_STREAMS {
        return bad(format!(
            "{} streams: use 1 to {MAX_STREAMS}",
            request.streams
        ));
    }
    match request.limit {
        Limit::DurationMs(ms) if ms == 0 || Duration::from_millis(ms) > MAX_DURATION => {
            return bad(format!(
                "duration of {ms} ms: use more than 0, at most 24 h"
            ));
        }
        Limit::Bytes(bytes) if bytes == 0 || bytes > max_bytes => {
            return bad(format!(
                "{bytes} bytes: use 1 to this server's limit of {max_bytes} bytes"
            ));
        }
        _ => {}
    }
    if Duration::from_millis(request.interval_ms) < MIN_INTERVAL {
        return bad(format!(
            "interval of {} ms: at least {} ms",
            request.interval_ms,
            MIN_INTERVAL.as_millis()
        ));
    }
    if Duration::from_millis(request.omit_ms) > MAX_DURATION {
        return bad(format!("omit of {} ms: at most 24 h", request.omit_ms));
    }
    if request.block_bytes == 0 || request.block_bytes > MAX_BLOCK {
        return bad(format!(
            "block of {} bytes: use 1 to {MAX_BLOCK}",
            request.block_bytes
        ));
    }
    Ok(())
}

/// Hands a data connection to the test that issued `cookie`.
pub(super) fn join(
    conn: Connection,
    cookie: u64,
    stream: u16,
    shared: &Shared,
) -> Result<(), String> {
    let sender = shared
        .pending
        .lock()
        .expect("pending joins lock")
        .get(&cookie)
        .cloned();
    match sender {
        Some(sender) => sender
            .try_send((stream, conn))
            .map_err(|_| format!("stream {stream} joined a test that has all its streams")),
        // Unknown cookies are dropped without an answer: nothing to learn by guessing.
        None => Err(format!("unknown test cookie for stream {stream}")),
    }
}

/// Removes the test's cookie when the test ends, however it ends.
struct CookieGuard<'a> {
    pending: &'a PendingJoins,
    cookie: u64,
}

impl Drop for CookieGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .expect("pending joins lock")
            .remove(&self.cookie);
    }
}

/// A random cookie: std's hasher keys are random per process and per `RandomState`.
fn random_cookie() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

pub(super) async fn run(
    control: &mut Connection,
    request: StreamRequest,
    test_id: u64,
    shared: &Shared,
) -> Result<TestTotals, SessionError> {
    let n = request.streams as usize;
    let idle = shared.config.idle_timeout;
    let (tx, mut rx) = mpsc::channel(n);
    let cookie = random_cookie();
    shared
        .pending
        .lock()
        .expect("pending joins lock")
        .insert(cookie, tx);
    let guard = CookieGuard {
        pending: &shared.pending,
        cookie,
    };
    control
        .write_frame(&Message::Accepted { test_id, cookie })
        .await?;

    // Every stream must join within the idle timeout; the control connection closing ends it.
    let mut joined: Vec<Option<Connection>> = (0..n).map(|_| None).collect();
    let deadline = tokio::time::Instant::now() + idle;
    let mut count = 0;
    while count < n {
        tokio::select! {
            j = rx.recv() => {
                let Some((index, conn)) = j else { break };
                match joined.get_mut(index as usize) {
                    Some(slot @ None) => { *slot = Some(conn); count += 1; }
                    _ => return Err(SessionError::refused(
                        ErrorCode::BadRequest,
                        format!("stream index {index} is out of range or joined twice"),
                    )),
                }
            }
            frame = control.read_frame_within(None) => {
                return match frame? {
                    None => Err(ConnectionError::Closed.into()),
                    Some(other) => Err(unexpected("streams to join", &other)),
                };
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(SessionError::refused(
                    ErrorCode::Timeout,
                    format!("only {count} of {n} streams joined within {idle:?}"),
                ));
            }
        }
    }
    drop(guard);

    let mut sockets = Vec::with_capacity(n);
    for conn in joined.into_iter().flatten() {
        let (socket, leftover) = conn.into_parts();
        if !leftover.is_empty() {
            return Err(SessionError::refused(
                ErrorCode::BadRequest,
                "data arrived on a stream before the test started",
            ));
        }
        os::apply_after_connect(&socket2::SockRef::from(&socket), &request.socket)
            .map_err(|e| SessionError::refused(ErrorCode::BadRequest, e.to_string()))?;
        sockets.push(Arc::new(socket));
    }

    let plan = StreamPlan::for_server(&request, idle);
    let cpu_start = CpuTime::now();
    let stop = CancellationToken::new();
    let started = Instant::now();
    control.write_frame(&Message::Start).await?;
    let counters: Vec<Arc<StreamCounters>> = (0..n).map(|_| Arc::default()).collect();
    let mut tasks = JoinSet::new();
    for (index, socket) in sockets.iter().enumerate() {
        data::spawn(
            &mut tasks,
            index as u16,
            socket.clone(),
            counters[index].clone(),
            plan.for_stream(index),
            &plan,
            stop.clone(),
        );
    }

    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(request.interval_ms),
        Duration::from_millis(request.interval_ms),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let omit_at = tokio::time::Instant::now() + Duration::from_millis(request.omit_ms);
    let mut omitted = request.omit_ms == 0;
    // The test cannot outlive its own plan by more than the idle timeout.
    let hard_deadline = tokio::time::Instant::now() + plan.max_runtime();
    let mut errors: Vec<Option<String>> = vec![None; n];
    let mut control_open = true;
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => {
                if let Some(Ok((index, Err(e)))) = done {
                    errors[index as usize] = Some(e.to_string());
                }
            }
            _ = ticker.tick() => {
                let report = snapshot(&sockets, &counters, started.elapsed(), &errors);
                control.write_frame(&Message::Interval(report)).await?;
            }
            _ = tokio::time::sleep_until(omit_at), if !omitted => {
                omitted = true;
                for c in &counters {
                    c.mark_omitted();
                }
            }
            frame = control.read_frame_within(None), if control_open => {
                match frame {
                    Ok(Some(Message::Stop)) => stop.cancel(),
                    Ok(Some(other)) => return Err(unexpected("stop", &other)),
                    // The client vanished: end the test now and free its slot.
                    Ok(None) | Err(_) => { control_open = false; stop.cancel(); }
                }
            }
            _ = tokio::time::sleep_until(hard_deadline) => {
                stop.cancel();
                for e in errors.iter_mut().filter(|e| e.is_none()) {
                    *e = Some("stopped: the test ran past its time".into());
                }
                break;
            }
        }
    }
    tasks.abort_all();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = CpuTime::now()
        .zip(cpu_start)
        .map(|(end, start)| end.since(&start));
    let report = snapshot(&sockets, &counters, started.elapsed(), &errors);
    let totals = TestTotals {
        bytes_received: report.streams.iter().map(|s| s.bytes_received).sum(),
        bytes_sent: report.streams.iter().map(|s| s.bytes_sent).sum(),
    };
    if control_open {
        control
            .write_frame(&Message::StreamResults(StreamResults {
                seconds,
                streams: report.streams,
                cpu_user_seconds: cpu.map(|c| c.user.as_secs_f64()),
                cpu_system_seconds: cpu.map(|c| c.system.as_secs_f64()),
            }))
            .await?;
    }
    Ok(totals)
}

/// The server's counters of every stream now.
fn snapshot(
    sockets: &[Arc<tokio::net::TcpStream>],
    counters: &[Arc<StreamCounters>],
    elapsed: Duration,
    errors: &[Option<String>],
) -> ServerInterval {
    ServerInterval {
        seconds: elapsed.as_secs_f64(),
        streams: counters
            .iter()
            .zip(sockets)
            .zip(errors)
            .enumerate()
            .map(|(i, ((c, socket), error))| {
                let now = c.load();
                ServerStream {
                    stream: i as u16,
                    bytes_received: now.received,
                    bytes_sent: now.sent,
                    omitted_bytes_received: now.omitted_received,
                    omitted_bytes_sent: now.omitted_sent,
                    tcp_info: os::tcp_info(&**socket),
                    error: error.clone(),
                }
            })
            .collect(),
    }
}
