//! The measuring and shaping proxy: relays TCP between clients and one upstream, counts every
//! byte with its timing (first and last byte, a timeline, flights) and optionally emulates a link
//! per direction (rate, delay, jitter). Entry point: [`run`], which takes a bound listener, a
//! config, a shutdown token and a channel for events.

mod buffers;
pub mod flights;
pub mod link;
pub mod metrics;
mod relay;
pub mod timeline;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use flights::{Dir, Flight};
use link::{LinkSpec, ShapedLink};
use timeline::Timeline;

/// How the proxy relays and shapes.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Upstream addresses, tried in order for each connection.
    pub upstream: Vec<SocketAddr>,
    /// Client -> upstream.
    pub up: LinkSpec,
    /// Upstream -> client.
    pub down: LinkSpec,
    /// Width of a timeline bin.
    pub bin: Duration,
    pub connect_timeout: Duration,
    /// Size of the large relay buffer an unshaped direction switches to when it carries bulk
    /// data (see `buffers`), and of the pipe with `splice` (at most 1 MiB there).
    pub buffer_size: usize,
    /// Relay unshaped traffic with `splice(2)` where the platform has it. Off by default: on
    /// loopback it measured slower than the reused buffer (see README).
    pub splice: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            upstream: Vec::new(),
            up: LinkSpec::default(),
            down: LinkSpec::default(),
            bin: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(5),
            buffer_size: 2 << 20,
            splice: false,
        }
    }
}

/// What happened to one connection, reported when it closes.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionReport {
    pub id: u64,
    pub client: SocketAddr,
    pub upstream: Option<SocketAddr>,
    /// Seconds from accept to close.
    pub seconds: f64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Seconds since the connection opened.
    pub first_byte_up: Option<f64>,
    pub last_byte_up: Option<f64>,
    pub first_byte_down: Option<f64>,
    pub last_byte_down: Option<f64>,
    pub flight_count: usize,
    pub round_trips: usize,
    /// The first [`flights::MAX_KEPT`] flights.
    pub flights: Vec<Flight>,
    pub peak_up_bps: f64,
    pub peak_down_bps: f64,
    pub timeline: Timeline,
    /// How it ended: `closed`, `reset by client`, `upstream failed: ...`.
    pub end: String,
}

/// What the proxy reports as it runs.
#[derive(Debug, Clone)]
pub enum ProxyEvent {
    Open {
        id: u64,
        client: SocketAddr,
        upstream: SocketAddr,
    },
    Close(Box<ConnectionReport>),
}

/// Totals over the proxy's life.
#[derive(Debug, Clone, Serialize)]
pub struct ProxySummary {
    pub connections: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub seconds: f64,
    /// Every connection together.
    pub timeline: Timeline,
}

/// Live counters, for metrics, the live view and the summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub open: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub flights: AtomicU64,
    pub upstream_failures: AtomicU64,
    /// The connections open now.
    pub live: Mutex<std::collections::BTreeMap<u64, Arc<LiveConnection>>>,
}

/// An open connection's running counts.
#[derive(Debug)]
pub struct LiveConnection {
    pub client: SocketAddr,
    pub opened: Instant,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub flights: AtomicU64,
}

/// A copy of one open connection's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSnapshot {
    pub id: u64,
    pub client: SocketAddr,
    pub age: Duration,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub flights: u64,
}

impl Counters {
    /// The open connections now, by id.
    pub fn snapshot(&self) -> Vec<LiveSnapshot> {
        let live = self.live.lock().expect("live connections lock");
        live.iter()
            .map(|(&id, c)| LiveSnapshot {
                id,
                client: c.client,
                age: c.opened.elapsed(),
                bytes_up: c.bytes_up.load(Ordering::Relaxed),
                bytes_down: c.bytes_down.load(Ordering::Relaxed),
                flights: c.flights.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// State shared by every connection of one proxy.
struct Shared {
    config: ProxyConfig,
    started: Instant,
    counters: Arc<Counters>,
    total: Mutex<Timeline>,
    /// The emulated links are shared by all connections, like a real access link.
    up: Mutex<ShapedLink>,
    down: Mutex<ShapedLink>,
    next_id: AtomicU64,
    events: mpsc::UnboundedSender<ProxyEvent>,
    buffers: buffers::BufferPool,
}

impl Shared {
    fn link(&self, dir: Dir) -> (&LinkSpec, &Mutex<ShapedLink>) {
        match dir {
            Dir::Up => (&self.config.up, &self.up),
            Dir::Down => (&self.config.down, &self.down),
        }
    }

    /// Counts `bytes` that reached the far end at `at`, delivered over the `serialise` before.
    fn count(&self, dir: Dir, bytes: u64, at: Instant, serialise: Duration) {
        let c = match dir {
            Dir::Up => &self.counters.bytes_up,
            Dir::Down => &self.counters.bytes_down,
        };
        c.fetch_add(bytes, Ordering::Relaxed);
        let at = at.duration_since(self.started);
        self.total.lock().expect("timeline lock").add_spread(
            dir,
            at.saturating_sub(serialise),
            at,
            bytes,
        );
    }
}

/// Relays connections from `listener` until `shutdown`, then closes every connection and returns
/// the totals. Events go to `events` (dropped if nobody listens). `counters` may be shared with a
/// metrics endpoint.
pub async fn run(
    listener: TcpListener,
    config: ProxyConfig,
    shutdown: CancellationToken,
    events: mpsc::UnboundedSender<ProxyEvent>,
    counters: Arc<Counters>,
) -> ProxySummary {
    let shared = Arc::new(Shared {
        total: Mutex::new(Timeline::new(config.bin)),
        up: Mutex::new(ShapedLink::new(config.up)),
        down: Mutex::new(ShapedLink::new(config.down)),
        started: Instant::now(),
        counters,
        next_id: AtomicU64::new(1),
        events,
        buffers: buffers::BufferPool::new(config.buffer_size),
        config,
    });
    let tracker = TaskTracker::new();
    while let Some((client, peer)) = crate::listener::accept(&listener, &shutdown, "proxy").await {
        let shared = shared.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move { relay::serve(client, peer, shared, stop).await });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    let c = &shared.counters;
    let timeline = shared.total.lock().expect("timeline lock").clone();
    ProxySummary {
        connections: c.connections.load(Ordering::Relaxed),
        bytes_up: c.bytes_up.load(Ordering::Relaxed),
        bytes_down: c.bytes_down.load(Ordering::Relaxed),
        seconds: shared.started.elapsed().as_secs_f64(),
        timeline,
    }
}
