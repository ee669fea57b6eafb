//! Replay of a protocol's traffic pattern, client side: phase by phase, idle for the compute
//! time, then each exchange sends the client's bytes and reads the server's, timing each phase.
//! TCP_NODELAY is on, as TLSNotary requires, so small messages are not held back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::transfer::{connect, unexpected};
use super::MeasureError;
use crate::wire::frame::{self, encode_hello};
use crate::wire::{Connection, ConnectionError, Message, ReplayCounts, ReplayScript, TestRequest};

/// One phase as the client measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedPhase {
    pub name: String,
    /// Compute (idle) time included in `elapsed`.
    pub compute: Duration,
    pub elapsed: Duration,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub exchanges: u64,
    /// What the server counted in this phase.
    pub server: Option<ReplayCounts>,
}

/// A whole replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOutcome {
    pub server_addr: SocketAddr,
    pub phases: Vec<ReplayedPhase>,
    pub elapsed: Duration,
    /// Bytes of the control protocol (hello, request, frames) on the same connection, which a
    /// proxy counts on top of the pattern: (up, down).
    pub control_bytes: (u64, u64),
    /// Of the control bytes down, those of the final results frame (which rides on the last
    /// answer's flight).
    pub results_frame_bytes: u64,
    /// Round trips of the control protocol on top of the pattern: the request and its answer
    /// (the final results ride on the last exchange's answer).
    pub control_round_trips: u64,
}

/// Replays `script` against the server at `addrs`. `skip_compute` leaves the idle times out.
pub async fn replay(
    addrs: &[SocketAddr],
    script: &ReplayScript,
    connect_timeout: Duration,
    io_timeout: Duration,
    skip_compute: bool,
) -> Result<ReplayOutcome, MeasureError> {
    let (stream, addr) = connect(addrs, connect_timeout).await?;
    let mut conn = Connection::new(stream, io_timeout);
    let fail = |phase: &'static str| {
        move |error: ConnectionError| MeasureError::Connection { addr, phase, error }
    };
    let request = Message::Request(TestRequest::Replay(script.clone()));
    let control_up = (encode_hello().len() + frame::encode(&request).len()) as u64;
    conn.write_hello().await.map_err(fail("handshake"))?;
    conn.write_frame(&request)
        .await
        .map_err(fail("handshake"))?;
    let accepted = conn.expect_frame().await.map_err(fail("handshake"))?;
    let mut control_down = frame::encode(&accepted).len() as u64;
    if !matches!(accepted, Message::Accepted { .. }) {
        return Err(unexpected(addr, "accepted", accepted));
    }
    let largest = script
        .phases
        .iter()
        .flat_map(|p| p.exchanges())
        .map(|(u, d)| u.max(d))
        .max()
        .unwrap_or(1);
    let mut buf = vec![0x52u8; (largest.min(256 * 1024)) as usize];
    let started = Instant::now();
    let mut phases = Vec::with_capacity(script.phases.len());
    for phase in &script.phases {
        let begun = Instant::now();
        let compute = if skip_compute {
            Duration::ZERO
        } else {
            Duration::from_millis(phase.compute_ms)
        };
        if !compute.is_zero() {
            tokio::time::sleep(compute).await;
        }
        let (mut sent, mut received, mut exchanges) = (0, 0, 0);
        for (up, down) in phase.exchanges() {
            conn.write_data(up, &buf).await.map_err(fail("replay"))?;
            let got = conn
                .read_data(down, &mut buf)
                .await
                .map_err(fail("replay"))?;
            if got < down {
                return Err(fail("replay")(ConnectionError::Closed));
            }
            sent += up;
            received += down;
            exchanges += 1;
        }
        phases.push(ReplayedPhase {
            name: phase.name.clone(),
            compute,
            elapsed: begun.elapsed(),
            bytes_sent: sent,
            bytes_received: received,
            exchanges,
            server: None,
        });
    }
    let elapsed = started.elapsed();
    let results = conn.expect_frame().await.map_err(fail("results"))?;
    let results_frame_bytes = frame::encode(&results).len() as u64;
    control_down += results_frame_bytes;
    match results {
        Message::ReplayResults { phases: counts } => {
            for (p, c) in phases.iter_mut().zip(counts) {
                p.server = Some(c);
            }
        }
        other => return Err(unexpected(addr, "replay_results", other)),
    }
    Ok(ReplayOutcome {
        server_addr: addr,
        phases,
        elapsed,
        control_bytes: (control_up, control_down),
        results_frame_bytes,
        control_round_trips: 1,
    })
}
