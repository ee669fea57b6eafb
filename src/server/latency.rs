//! The latency test, server side: answer each request of `request_bytes` with `response_bytes`
//! until the client closes its side, then report how many transactions were answered.
//!
//! A request/response test runs on a blocking thread: the answer to a ping-pong cannot be
//! batched, so what counts is the wake-up, and a thread blocked in `recv` wakes faster than a
//! task behind the reactor. Connect/request/close tests answer once and stay on the runtime.

use std::io::{Read, Write};
use std::time::Duration;

use super::session::{SessionError, TestTotals};
use crate::wire::{Connection, ConnectionError, ErrorCode, Message};

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

/// Answers requests on a runtime task (connect/request/close).
pub(super) async fn run(
    conn: &mut Connection,
    request_bytes: u32,
    response_bytes: u32,
) -> Result<TestTotals, SessionError> {
    let mut buf = vec![0x3cu8; request_bytes.max(response_bytes).max(1) as usize];
    let mut transactions = 0u64;
    loop {
        let got = match conn.read_data(request_bytes as u64, &mut buf).await {
            Ok(got) => got,
            // A client that resets after its last answer has ended the test, not broken it.
            Err(ConnectionError::Io(_)) if transactions > 0 => 0,
            Err(e) => return Err(e.into()),
        };
        if got == 0 {
            break;
        }
        if got < request_bytes as u64 {
            return Err(ConnectionError::Closed.into());
        }
        conn.write_data(response_bytes as u64, &buf).await?;
        transactions += 1;
    }
    finish(conn, transactions, request_bytes, response_bytes).await
}

/// Answers requests on a blocking thread (request/response). The socket leaves the reactor
/// meanwhile, so its packets wake only that thread, then comes back for the final frame. If this
/// future is dropped (server shutdown), the socket is shut down, which wakes the thread at once.
pub(super) async fn run_blocking(
    conn: &mut Connection,
    request_bytes: u32,
    response_bytes: u32,
) -> Result<TestTotals, SessionError> {
    let idle = conn.idle_timeout();
    let io = |e| SessionError::from(ConnectionError::Io(e));
    let (blocking, leftover) = conn.detach()?;
    struct Unblock(Option<std::net::TcpStream>);
    impl Drop for Unblock {
        fn drop(&mut self) {
            if let Some(s) = self.0.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
    let mut unblock = Unblock(Some(blocking.try_clone().map_err(io)?));
    let joined = tokio::task::spawn_blocking(move || {
        let r = answer(&blocking, &leftover, request_bytes, response_bytes, idle);
        (blocking, r)
    })
    .await;
    unblock.0 = None;
    let (blocking, answered) =
        joined.map_err(|e| io(std::io::Error::other(format!("latency thread failed: {e}"))))?;
    conn.attach(blocking)?;
    finish(conn, answered.map_err(io)?, request_bytes, response_bytes).await
}

/// The ping-pong loop on a blocking socket. Returns the transactions answered.
fn answer(
    mut stream: &std::net::TcpStream,
    leftover: &[u8],
    request_bytes: u32,
    response_bytes: u32,
    idle: Duration,
) -> std::io::Result<u64> {
    stream.set_read_timeout(Some(idle))?;
    stream.set_write_timeout(Some(idle))?;
    let request = request_bytes as usize;
    let response = vec![0x3cu8; response_bytes as usize];
    let mut buf = vec![0u8; request.max(64 * 1024)];
    // Bytes of the current request received so far; requests may arrive split or batched.
    let mut pending = leftover.len();
    let mut transactions = 0u64;
    loop {
        while pending >= request {
            stream.write_all(&response)?;
            transactions += 1;
            pending -= request;
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(transactions),
            Ok(n) => pending += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if transactions > 0 && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(transactions)
            }
            Err(e) => return Err(e),
        }
    }
}

async fn finish(
    conn: &mut Connection,
    transactions: u64,
    request_bytes: u32,
    response_bytes: u32,
) -> Result<TestTotals, SessionError> {
    // A connect/request/close client may be gone already; its transactions still count.
    if conn
        .write_frame(&Message::LatencyResults { transactions })
        .await
        .is_ok()
    {
        let _ = conn.shutdown().await;
    }
    Ok(TestTotals {
        bytes_received: transactions * request_bytes as u64,
        bytes_sent: transactions * response_bytes as u64,
    })
}
