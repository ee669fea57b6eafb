//! The data streams of a throughput test, shared by client and server: each stream sends raw
//! bytes from one reusable block until its deadline or byte share, and/or reads until the peer
//! closes, counting every byte in atomics that the interval reporter samples.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame::{Direction, Limit, StreamRequest};

/// Byte counters of one stream, written by its tasks and read by the reporter.
#[derive(Debug, Default)]
pub struct StreamCounters {
    sent: AtomicU64,
    received: AtomicU64,
    omitted_sent: AtomicU64,
    omitted_received: AtomicU64,
}

/// A copy of [`StreamCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub sent: u64,
    pub received: u64,
    /// The counters when the warm-up ended.
    pub omitted_sent: u64,
    pub omitted_received: u64,
}

impl StreamCounters {
    pub fn load(&self) -> CounterSnapshot {
        CounterSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            omitted_sent: self.omitted_sent.load(Ordering::Relaxed),
            omitted_received: self.omitted_received.load(Ordering::Relaxed),
        }
    }

    /// Records the end of the warm-up: what was counted so far is excluded from totals.
    pub fn mark_omitted(&self) {
        let now = self.load();
        self.omitted_sent.store(now.sent, Ordering::Relaxed);
        self.omitted_received.store(now.received, Ordering::Relaxed);
    }
}

/// When a sender stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLimit {
    /// Send for this long after the start.
    For(Duration),
    /// Send exactly this many bytes.
    Bytes(u64),
}

/// What one side does on one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRole {
    pub send: Option<SendLimit>,
    pub receive: bool,
}

/// What one side does on every stream of a test.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    streams: u16,
    sends: bool,
    receives: bool,
    limit: Limit,
    omit: Duration,
    pub block: usize,
    pub idle: Duration,
}

impl StreamPlan {
    fn new(request: &StreamRequest, sends: bool, receives: bool, idle: Duration) -> StreamPlan {
        StreamPlan {
            streams: request.streams.max(1),
            sends,
            receives,
            limit: request.limit,
            omit: Duration::from_millis(request.omit_ms),
            block: request.block_bytes.max(1) as usize,
            idle,
        }
    }

    /// The server's side of `request`.
    pub fn for_server(request: &StreamRequest, idle: Duration) -> StreamPlan {
        let d = request.direction;
        StreamPlan::new(request, d.server_sends(), d.client_sends(), idle)
    }

    /// The client's side of `request`.
    pub fn for_client(request: &StreamRequest, idle: Duration) -> StreamPlan {
        let d: Direction = request.direction;
        StreamPlan::new(request, d.client_sends(), d.server_sends(), idle)
    }

    /// The role of stream `index`: byte limits are split evenly, the first streams taking the
    /// remainder, so the total is exact.
    pub fn for_stream(&self, index: usize) -> StreamRole {
        let send = self.sends.then(|| match self.limit {
            Limit::DurationMs(ms) => SendLimit::For(self.omit + Duration::from_millis(ms)),
            Limit::Bytes(total) => {
                let n = self.streams as u64;
                let extra = u64::from((index as u64) < total % n);
                SendLimit::Bytes(total / n + extra)
            }
        });
        StreamRole {
            send,
            receive: self.receives,
        }
    }

    /// How long the data phase may take before it is cut off: the planned time plus a drain
    /// allowance (on a slow or shaped link, what sits in socket buffers and queues takes time to
    /// arrive after the senders stop; each read and write is still bounded by the idle timeout),
    /// or a day for byte-limited tests.
    pub fn max_runtime(&self) -> Duration {
        let drain = (self.idle * 2).max(Duration::from_secs(120));
        match self.limit {
            Limit::DurationMs(ms) => self.omit + Duration::from_millis(ms) + drain,
            Limit::Bytes(_) => Duration::from_secs(24 * 3600) + self.idle,
        }
    }
}

/// The outcome of one stream task: its index and whether its socket broke.
pub type StreamOutcome = (u16, io::Result<()>);

/// Spawns the tasks of one stream: a sender, a receiver, or both (bidirectional).
pub fn spawn(
    tasks: &mut JoinSet<StreamOutcome>,
    index: u16,
    socket: Arc<TcpStream>,
    counters: Arc<StreamCounters>,
    role: StreamRole,
    plan: &StreamPlan,
    stop: CancellationToken,
) {
    let (block, idle) = (plan.block, plan.idle);
    if let Some(limit) = role.send {
        let (socket, counters, stop) = (socket.clone(), counters.clone(), stop.clone());
        tasks.spawn(async move {
            let r = send(&socket, &counters, limit, block, idle, &stop).await;
            // Tell the peer this direction is done, whatever happened.
            let _ = socket2::SockRef::from(&*socket).shutdown(std::net::Shutdown::Write);
            (index, r)
        });
    }
    if role.receive {
        tasks.spawn(async move { (index, receive(&socket, &counters, block, idle).await) });
    }
}

fn idle_error(idle: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no progress for {idle:?}"))
}

async fn send(
    socket: &TcpStream,
    counters: &StreamCounters,
    limit: SendLimit,
    block: usize,
    idle: Duration,
    stop: &CancellationToken,
) -> io::Result<()> {
    let buf = vec![0xa5u8; block];
    let (deadline, mut remaining) = match limit {
        SendLimit::For(d) => (Some(Instant::now() + d), u64::MAX),
        SendLimit::Bytes(n) => (None, n),
    };
    while remaining > 0 && !stop.is_cancelled() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let want = (block as u64).min(remaining) as usize;
        match socket.try_write(&buf[..want]) {
            Ok(n) => {
                counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                remaining -= n as u64;
                // A socket that always has room would otherwise never yield, and the interval
                // reporter on the same worker would wait.
                tokio::task::consume_budget().await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let wait_until = deadline.unwrap_or_else(|| Instant::now() + idle);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(wait_until) => {
                        if deadline.is_none() { return Err(idle_error(idle)); }
                    }
                    r = tokio::time::timeout(idle, socket.writable()) => {
                        r.map_err(|_| idle_error(idle))??;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn receive(
    socket: &TcpStream,
    counters: &StreamCounters,
    block: usize,
    idle: Duration,
) -> io::Result<()> {
    let mut buf = vec![0u8; block.max(64 * 1024)];
    loop {
        match crate::os::recv_discard(socket, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                counters.received.fetch_add(n as u64, Ordering::Relaxed);
                tokio::task::consume_budget().await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(idle, socket.readable())
                    .await
                    .map_err(|_| idle_error(idle))??;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(streams: u16, direction: Direction, limit: Limit) -> StreamRequest {
        StreamRequest {
            streams,
            direction,
            limit,
            interval_ms: 1000,
            omit_ms: 0,
            block_bytes: 1000,
            socket: Default::default(),
        }
    }

    #[test]
    fn byte_limits_split_exactly() {
        let r = request(3, Direction::Upload, Limit::Bytes(10));
        let plan = StreamPlan::for_client(&r, Duration::from_secs(1));
        let shares: Vec<_> = (0..3).map(|i| plan.for_stream(i).send).collect();
        assert_eq!(
            shares,
            vec![
                Some(SendLimit::Bytes(4)),
                Some(SendLimit::Bytes(3)),
                Some(SendLimit::Bytes(3))
            ]
        );
        assert!(!plan.for_stream(0).receive);
        let server = StreamPlan::for_server(&r, Duration::from_secs(1));
        assert_eq!(server.for_stream(0).send, None);
        assert!(server.for_stream(0).receive);
    }

    #[test]
    fn bidir_sends_and_receives_on_both_sides() {
        let r = request(1, Direction::Bidir, Limit::DurationMs(2000));
        for plan in [
            StreamPlan::for_client(&r, Duration::from_secs(1)),
            StreamPlan::for_server(&r, Duration::from_secs(1)),
        ] {
            let role = plan.for_stream(0);
            assert_eq!(role.send, Some(SendLimit::For(Duration::from_secs(2))));
            assert!(role.receive);
        }
    }
}
