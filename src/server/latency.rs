//! The latency test, server side: answer each request of `request_bytes` with `response_bytes`
//! until the client closes its side, then report how many transactions were answered.

use super::session::{SessionError, TestTotals};
use crate::wire::{Connection, ErrorCode, Message};

/// Largest request or response of a latency test: these are small messages by design.
pub const MAX_MESSAGE: u32 = 1 << 20;

pub(super) fn validate(request_bytes: u32, response_bytes: u32) -> Result<(), SessionError> {
    if request_bytes == 0 || request_bytes > MAX_MESSAGE || response_bytes > MAX_MESSAGE {
        return Err(SessionError::refused(
            ErrorCode::LimitExceeded,
            format!(
                "latency messages of {request_bytes} and {response_bytes} bytes: requests must be 1 to {MAX_MESSAGE} bytes, responses 0 to {MAX_MESSAGE}"
            ),
        ));
    }
    Ok(())
}

pub(super) async fn run(
    conn: &mut Connection,
    request_bytes: u32,
    response_bytes: u32,
) -> Result<TestTotals, SessionError> {
    let mut buf = vec![0x3cu8; request_bytes.max(response_bytes).max(1) as usize];
    let mut transactions = 0u64;
    loop {
        let got = conn.read_data(request_bytes as u64, &mut buf).await?;
        if got == 0 {
            break;
        }
        if got < request_bytes as u64 {
            return Err(crate::wire::ConnectionError::Closed.into());
        }
        conn.write_data(response_bytes as u64, &buf).await?;
        transactions += 1;
    }
    conn.write_frame(&Message::LatencyResults { transactions })
        .await?;
    conn.shutdown().await?;
    Ok(TestTotals {
        bytes_received: transactions * request_bytes as u64,
        bytes_sent: transactions * response_bytes as u64,
    })
}
