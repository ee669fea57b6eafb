//! `ntm serve`: binds, logs where, and runs the server until Ctrl-C.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::args::ServeArgs;
use crate::server::{self, ServerConfig};

pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    if local.ip().is_loopback() {
        info!("listening on {local}");
    } else {
        warn!("listening on {local}: reachable from other machines");
    }
    let config = ServerConfig {
        max_tests: args.max_tests as usize,
        max_connections: args.max_connections as usize,
        idle_timeout: args.idle_timeout,
        max_test_bytes: args.max_size,
        grace_period: args.grace,
        ..ServerConfig::default()
    };
    server::run(listener, config, shutdown).await;
    info!("server stopped");
    Ok(())
}
