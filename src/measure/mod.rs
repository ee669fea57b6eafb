//! Client side of tests: connects to an ntm server, runs transfers and returns samples.
//! Samples carry raw byte counts and durations; summaries and rates are computed downstream.

mod latency;
mod replay;
mod stream;
mod transfer;

pub use latency::{latency_test, LatencyConfig, LatencyLimit, LatencyOutcome};
pub use replay::{replay, ReplayOutcome, ReplayedPhase};
pub use stream::{
    stream_test, ClientStream, IntervalSample, StreamInterval, StreamOptions, StreamOutcome,
};
pub use transfer::{transfer, TransferOptions, TransferSample, TransferSpec};

use std::net::SocketAddr;
use std::time::Duration;

use crate::wire::{ConnectionError, ErrorCode};

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("cannot resolve '{addr}': {error}")]
    Resolve { addr: String, error: std::io::Error },
    #[error("'{addr}' resolves to no address")]
    NoAddress { addr: String },
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot connect to {addr}: no answer within {timeout:?} (see --connect-timeout)")]
    ConnectTimeout { addr: SocketAddr, timeout: Duration },
    #[error("the server at {addr} refused the test: {code}: {message}")]
    Refused {
        addr: SocketAddr,
        code: ErrorCode,
        message: String,
    },
    #[error("protocol error with {addr}: expected {expected}, got {got}")]
    Protocol {
        addr: SocketAddr,
        expected: &'static str,
        got: String,
    },
    #[error("{0}")]
    SocketOption(crate::os::SocketOptionError),
    #[error("connection to {addr} failed during the {phase}: {error}")]
    Connection {
        addr: SocketAddr,
        phase: &'static str,
        error: ConnectionError,
    },
}

/// Resolves `addr` (`HOST:PORT`) to the socket addresses to try, in order.
pub async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, MeasureError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|error| MeasureError::Resolve {
            addr: addr.to_string(),
            error,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(MeasureError::NoAddress {
            addr: addr.to_string(),
        });
    }
    Ok(addrs)
}

/// Every run of one payload size.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferSeries {
    pub spec: TransferSpec,
    pub runs: Vec<TransferSample>,
}

/// Runs each spec `repeat` times, one after another, pausing `interval` between tests.
pub async fn run_series(
    addrs: &[SocketAddr],
    specs: &[TransferSpec],
    repeat: u64,
    interval: Duration,
    options: &TransferOptions,
) -> Result<Vec<TransferSeries>, MeasureError> {
    let mut all = Vec::with_capacity(specs.len());
    let mut first = true;
    for &spec in specs {
        let mut runs = Vec::with_capacity(repeat as usize);
        for _ in 0..repeat {
            if !first && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            first = false;
            runs.push(transfer(addrs, spec, options).await?);
        }
        all.push(TransferSeries { spec, runs });
    }
    Ok(all)
}
