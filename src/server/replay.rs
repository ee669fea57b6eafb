//! Replay of a protocol's traffic pattern, server side: for each phase, each exchange reads the
//! client's bytes and answers with the server's. Compute time is the client's idle time at the
//! start of a phase, so the server only waits: its first read of a phase may take the idle
//! timeout plus that compute time.

use std::time::Duration;

use super::session::{SessionError, TestTotals};
use crate::wire::{Connection, ConnectionError, ErrorCode, Message, ReplayCounts, ReplayScript};

/// Most phases in one script.
pub const MAX_PHASES: usize = 64;
/// Most round trips in one phase.
pub const MAX_ROUND_TRIPS: u32 = 1_000_000;
/// Longest compute time of one phase.
pub const MAX_COMPUTE: Duration = Duration::from_secs(600);

pub(super) fn validate(script: &ReplayScript, max_bytes: u64) -> Result<(), SessionError> {
    let bad = |m: String| Err(SessionError::refused(ErrorCode::LimitExceeded, m));
    if script.phases.is_empty() || script.phases.len() > MAX_PHASES {
        return bad(format!(
            "{} phases: use 1 to {MAX_PHASES}",
            script.phases.len()
        ));
    }
    let mut total = 0u64;
    for p in &script.phases {
        if p.round_trips > MAX_ROUND_TRIPS {
            return bad(format!(
                "phase '{}' has {} round trips: at most {MAX_ROUND_TRIPS}",
                p.name, p.round_trips
            ));
        }
        if Duration::from_millis(p.compute_ms) > MAX_COMPUTE {
            return bad(format!(
                "phase '{}' computes for {} ms: at most {} s",
                p.name,
                p.compute_ms,
                MAX_COMPUTE.as_secs()
            ));
        }
        total = total
            .saturating_add(p.upload_bytes)
            .saturating_add(p.download_bytes)
            .saturating_add(2 * p.round_trips as u64);
    }
    if total > max_bytes {
        return bad(format!(
            "the script moves {total} bytes: over this server's limit of {max_bytes} bytes"
        ));
    }
    Ok(())
}

pub(super) async fn run(
    conn: &mut Connection,
    script: &ReplayScript,
    buffer_size: usize,
) -> Result<TestTotals, SessionError> {
    let mut buf = vec![0x6du8; buffer_size.max(1)];
    let mut counts = Vec::with_capacity(script.phases.len());
    let mut totals = TestTotals::default();
    let mut carried = Duration::ZERO;
    for phase in &script.phases {
        let mut c = ReplayCounts {
            bytes_received: 0,
            bytes_sent: 0,
            exchanges: 0,
        };
        // The client idles for the compute time at the start of each phase (and of phases
        // without exchanges before it).
        carried += Duration::from_millis(phase.compute_ms);
        let mut patience = Some(carried);
        for (up, down) in phase.exchanges() {
            let got = match patience.take() {
                Some(extra) if !extra.is_zero() => {
                    conn.read_data_within(up, &mut buf, conn.idle_timeout() + extra)
                        .await?
                }
                _ => conn.read_data(up, &mut buf).await?,
            };
            if got < up {
                return Err(ConnectionError::Closed.into());
            }
            conn.write_data(down, &buf).await?;
            c.bytes_received += up;
            c.bytes_sent += down;
            c.exchanges += 1;
        }
        if c.exchanges > 0 {
            carried = Duration::ZERO;
        }
        totals.bytes_received += c.bytes_received;
        totals.bytes_sent += c.bytes_sent;
        counts.push(c);
    }
    conn.write_frame(&Message::ReplayResults { phases: counts })
        .await?;
    conn.shutdown().await?;
    Ok(totals)
}
