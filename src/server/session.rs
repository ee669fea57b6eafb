//! One client connection: hello, then either a test request (admitted within the limits and run)
//! or a `join` that hands this connection to a running stream test.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{latency, replay, stream, transfer, Shared};
use crate::wire::{Connection, ConnectionError, ErrorCode, Message, TestRequest};

/// Why a session ended early; logged, and sent to the client where it can still hear it.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("refused: {code}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
}

impl SessionError {
    pub(super) fn refused(code: ErrorCode, message: impl Into<String>) -> SessionError {
        SessionError::Refused {
            code,
            message: message.into(),
        }
    }
}

/// Byte counts of a finished test, for the log line.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TestTotals {
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    soft_stop: CancellationToken,
    hard_stop: CancellationToken,
) {
    let mut conn = Connection::new(stream, shared.config.idle_timeout);
    let started = Instant::now();
    // Until a test is admitted, a shutdown ends the session at once; afterwards only the hard
    // stop does, so admitted tests get their grace period.
    let first = tokio::select! {
        _ = soft_stop.cancelled() => {
            refuse(&mut conn, ErrorCode::ShuttingDown, "the server is shutting down".into()).await;
            return;
        }
        first = read_first(&mut conn) => first,
    };
    let request = match first {
        Ok(None) => return,
        Ok(Some(Message::Join { cookie, stream })) => {
            if let Err(e) = stream::join(conn, cookie, stream, &shared) {
                debug!(%peer, error = %e, "join refused");
            }
            return;
        }
        Ok(Some(Message::Request(request))) => request,
        Ok(Some(other)) => {
            let e = unexpected("a test request or join", &other);
            debug!(%peer, error = %e, "session refused");
            refuse(&mut conn, ErrorCode::BadRequest, e.to_string()).await;
            return;
        }
        Err(e) => {
            debug!(%peer, error = %e, "session refused");
            if let Some((code, message)) = reply_for(&e) {
                refuse(&mut conn, code, message).await;
            }
            return;
        }
    };
    let admitted = admit(&request, &shared);
    let (test_id, permit) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => {
            debug!(%peer, error = %e, "test refused");
            if let Some((code, message)) = reply_for(&e) {
                refuse(&mut conn, code, message).await;
            }
            return;
        }
    };
    let kind = request.kind();
    let quiet = matches!(
        request,
        TestRequest::Latency {
            connect_per_transaction: true,
            ..
        }
    );
    let outcome = tokio::select! {
        _ = hard_stop.cancelled() => {
            refuse(&mut conn, ErrorCode::ShuttingDown, "the server stopped the test at shutdown".into()).await;
            warn!(%peer, id = test_id, kind, "test stopped at shutdown");
            return;
        }
        outcome = run_test(&mut conn, request, test_id, &shared) => outcome,
    };
    drop(permit);
    let duration = started.elapsed();
    match outcome {
        // One line per connection would flood the log of a connect/request/close test.
        Ok(c) if quiet => debug!(
            %peer,
            id = test_id,
            kind,
            bytes_received = c.bytes_received,
            bytes_sent = c.bytes_sent,
            duration = ?duration,
            "test finished"
        ),
        Ok(c) => info!(
            %peer,
            id = test_id,
            kind,
            bytes_received = c.bytes_received,
            bytes_sent = c.bytes_sent,
            duration = ?duration,
            "test finished"
        ),
        Err(e) => {
            warn!(%peer, id = test_id, kind, duration = ?duration, error = %e, "test failed");
            if let Some((code, message)) = reply_for(&e) {
                refuse(&mut conn, code, message).await;
            }
        }
    }
}

/// Reads the hello and the first frame. `Ok(None)`: the peer left before asking for anything.
async fn read_first(conn: &mut Connection) -> Result<Option<Message>, SessionError> {
    if conn.read_hello().await?.is_none() {
        return Ok(None);
    }
    Ok(conn.read_frame().await?)
}

/// Validates a request and takes a test slot.
fn admit(
    request: &TestRequest,
    shared: &Shared,
) -> Result<(u64, tokio::sync::OwnedSemaphorePermit), SessionError> {
    validate(request, shared)?;
    let Ok(permit) = shared.tests.clone().try_acquire_owned() else {
        return Err(SessionError::refused(
            ErrorCode::Busy,
            format!(
                "the server is running its maximum of {} tests; try again later",
                shared.config.max_tests
            ),
        ));
    };
    Ok((shared.next_test_id.fetch_add(1, Ordering::Relaxed), permit))
}

fn validate(request: &TestRequest, shared: &Shared) -> Result<(), SessionError> {
    let max = shared.config.max_test_bytes;
    let over = |what: &str, bytes: u64| {
        SessionError::refused(
            ErrorCode::LimitExceeded,
            format!("{what} of {bytes} bytes is over this server's limit of {max} bytes"),
        )
    };
    match request {
        TestRequest::Transfer {
            upload_bytes,
            download_bytes,
        } => {
            for (what, bytes) in [("upload", *upload_bytes), ("download", *download_bytes)] {
                if bytes > max {
                    return Err(over(what, bytes));
                }
            }
            Ok(())
        }
        TestRequest::Stream(request) => stream::validate(request, max),
        TestRequest::Replay(script) => replay::validate(script, max),
        TestRequest::Latency {
            request_bytes,
            response_bytes,
            ..
        } => latency::validate(*request_bytes, *response_bytes),
    }
}

async fn run_test(
    conn: &mut Connection,
    request: TestRequest,
    test_id: u64,
    shared: &Shared,
) -> Result<TestTotals, SessionError> {
    match request {
        TestRequest::Transfer {
            upload_bytes,
            download_bytes,
        } => {
            conn.write_frame(&Message::Accepted { test_id, cookie: 0 })
                .await?;
            transfer::run(
                conn,
                upload_bytes,
                download_bytes,
                shared.config.buffer_size,
            )
            .await
        }
        TestRequest::Stream(request) => stream::run(conn, request, test_id, shared).await,
        TestRequest::Replay(script) => {
            conn.write_frame(&Message::Accepted { test_id, cookie: 0 })
                .await?;
            replay::run(conn, &script, shared.config.buffer_size).await
        }
        TestRequest::Latency {
            request_bytes,
            response_bytes,
            connect_per_transaction,
        } => {
            conn.write_frame(&Message::Accepted { test_id, cookie: 0 })
                .await?;
            if connect_per_transaction {
                latency::run(conn, request_bytes, response_bytes).await
            } else {
                latency::run_blocking(conn, request_bytes, response_bytes).await
            }
        }
    }
}

pub(super) fn unexpected(expected: &'static str, got: &Message) -> SessionError {
    let got = match got {
        Message::Request(_) => "request",
        Message::Accepted { .. } => "accepted",
        Message::Join { .. } => "join",
        Message::Start => "start",
        Message::Stop => "stop",
        Message::Interval(_) => "interval",
        Message::StreamResults(_) => "stream_results",
        Message::LatencyResults { .. } => "latency_results",
        Message::ReplayResults { .. } => "replay_results",
        Message::UploadComplete { .. } => "upload_complete",
        Message::Fetch => "fetch",
        Message::Counters(_) => "counters",
        Message::Error { .. } => "error",
    };
    SessionError::Unexpected {
        expected,
        got: got.to_string(),
    }
}

/// The typed error frame to send for a failure, if the peer can still hear one.
fn reply_for(e: &SessionError) -> Option<(ErrorCode, String)> {
    match e {
        SessionError::Refused { code, message } => Some((*code, message.clone())),
        SessionError::Unexpected { .. } => Some((ErrorCode::BadRequest, e.to_string())),
        SessionError::Connection(ConnectionError::Frame(f)) => Some((f.code(), f.to_string())),
        SessionError::Connection(ConnectionError::Idle(d)) => Some((
            ErrorCode::Timeout,
            format!("no data from the client for {d:?}; closing"),
        )),
        SessionError::Connection(_) => None,
    }
}

/// Sends an error frame, best effort and briefly: the peer may be gone or not reading.
pub(super) async fn refuse(conn: &mut Connection, code: ErrorCode, message: String) {
    let send = async {
        conn.write_frame(&Message::Error { code, message }).await?;
        conn.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), send).await;
}
