//! The one step every accept loop takes (the server's, the proxy's, the metrics endpoint's): the
//! next connection, or the end once shutdown is asked for.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long to wait after a failed accept before the next.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The next connection on `listener`, or `None` once `shutdown` is cancelled. A failed accept
/// (out of file descriptors and the like, which would fail again at once) is logged with
/// `what` and retried after a pause: never spun on, never the end of the loop.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(e) => {
                warn!(listener = what, error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(ACCEPT_PAUSE) => {}
                }
            }
        }
    }
}
