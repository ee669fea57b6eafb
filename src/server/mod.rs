//! The measurement server: accepts connections, admits tests within limits, runs them, and shuts
//! down gracefully. Entry point: [`run`], which takes a bound listener and a shutdown token, so
//! tests bind port 0 and the binary owns signals.

mod latency;
mod replay;
mod session;
mod stream;
mod transfer;

pub use stream::{MAX_DURATION, MAX_STREAMS, MIN_INTERVAL};

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Limits and timeouts of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Tests running at once; a client over the cap gets a `busy` error.
    pub max_tests: usize,
    /// Connections open at once, tests or not; more are closed at once so idle sockets cannot
    /// exhaust memory.
    pub max_connections: usize,
    /// A peer that makes no progress for this long is dropped.
    pub idle_timeout: Duration,
    /// Largest byte count a test may ask for in either direction.
    pub max_test_bytes: u64,
    /// On shutdown, how long running tests may go on before they are stopped.
    pub grace_period: Duration,
    /// Size of each test's reusable data buffer: the server's memory per test.
    pub buffer_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_tests: 64,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(10),
            max_test_bytes: crate::report::units::MAX_SIZE,
            grace_period: Duration::from_secs(10),
            buffer_size: 256 * 1024,
        }
    }
}

/// State shared by every connection of one server.
struct Shared {
    config: ServerConfig,
    tests: Arc<Semaphore>,
    next_test_id: AtomicU64,
    pending: stream::PendingJoins,
}

/// Serves tests on `listener` until `shutdown` is cancelled, then stops accepting, lets running
/// tests finish within the grace period, stops the rest and returns once every task has ended.
pub async fn run(listener: TcpListener, config: ServerConfig, shutdown: CancellationToken) {
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let shared = Arc::new(Shared {
        tests: Arc::new(Semaphore::new(config.max_tests.max(1))),
        next_test_id: AtomicU64::new(1),
        pending: Default::default(),
        config,
    });
    // Cancelled after the grace period: running tests stop.
    let hard_stop = CancellationToken::new();
    let tracker = TaskTracker::new();

    while let Some((stream, peer)) = crate::listener::accept(&listener, &shutdown, "server").await {
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(%peer, "connection limit reached, closing");
            continue;
        };
        let shared = shared.clone();
        let (soft, hard) = (shutdown.clone(), hard_stop.clone());
        tracker.spawn(async move {
            session::serve(stream, peer, shared, soft, hard).await;
            drop(permit);
        });
    }

    drop(listener);
    tracker.close();
    let running = tracker.len();
    if running > 0 {
        info!(running, grace = ?shared.config.grace_period, "shutting down, waiting for running tests");
    }
    if tokio::time::timeout(shared.config.grace_period, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            stopped = tracker.len(),
            "grace period over, stopping running tests"
        );
        hard_stop.cancel();
        tracker.wait().await;
    }
}
