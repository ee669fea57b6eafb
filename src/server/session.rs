//! One client connection: hello, request, admission, then the test's data phase.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Shared;
use crate::wire::{Connection, ConnectionError, ErrorCode, Message, ServerCounters, TestRequest};

/// Why a session ended early; logged, and sent to the client where it can still hear it.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("refused: {code}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
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
    let admitted = tokio::select! {
        _ = soft_stop.cancelled() => {
            refuse(&mut conn, ErrorCode::ShuttingDown, "the server is shutting down".into()).await;
            return;
        }
        admitted = admit(&mut conn, &shared) => admitted,
    };
    let (request, test_id, permit) = match admitted {
        Ok(Some(admitted)) => admitted,
        Ok(None) => return,
        Err(e) => {
            debug!(%peer, error = %e, "session refused");
            if let Some((code, message)) = reply_for(&e) {
                refuse(&mut conn, code, message).await;
            }
            return;
        }
    };
    let outcome = tokio::select! {
        _ = hard_stop.cancelled() => {
            refuse(&mut conn, ErrorCode::ShuttingDown, "the server stopped the test at shutdown".into()).await;
            warn!(%peer, id = test_id, kind = request.kind(), "test stopped at shutdown");
            drop(permit);
            return;
        }
        outcome = run_test(&mut conn, &request, &shared) => outcome,
    };
    drop(permit);
    let duration = started.elapsed();
    match outcome {
        Ok(c) => info!(
            %peer,
            id = test_id,
            kind = request.kind(),
            bytes_received = c.bytes_received,
            bytes_sent = c.bytes_sent,
            duration = ?duration,
            "test finished"
        ),
        Err(e) => {
            warn!(%peer, id = test_id, kind = request.kind(), duration = ?duration, error = %e, "test failed");
            if let Some((code, message)) = reply_for(&e) {
                refuse(&mut conn, code, message).await;
            }
        }
    }
}

/// Reads the hello and the request, validates it and takes a test slot.
/// `Ok(None)`: the peer left before asking for anything.
async fn admit(
    conn: &mut Connection,
    shared: &Shared,
) -> Result<Option<(TestRequest, u64, tokio::sync::OwnedSemaphorePermit)>, SessionError> {
    if conn.read_hello().await?.is_none() {
        return Ok(None);
    }
    let request = match conn.read_frame().await? {
        None => return Ok(None),
        Some(Message::Request(request)) => request,
        Some(other) => return Err(unexpected("a test request", &other)),
    };
    validate(&request, shared)?;
    let Ok(permit) = shared.tests.clone().try_acquire_owned() else {
        return Err(SessionError::Refused {
            code: ErrorCode::Busy,
            message: format!(
                "the server is running its maximum of {} tests; try again later",
                shared.config.max_tests
            ),
        });
    };
    let test_id = shared.next_test_id.fetch_add(1, Ordering::Relaxed);
    conn.write_frame(&Message::Accepted { test_id }).await?;
    Ok(Some((request, test_id, permit)))
}

fn validate(request: &TestRequest, shared: &Shared) -> Result<(), SessionError> {
    let max = shared.config.max_test_bytes;
    match *request {
        TestRequest::Transfer {
            upload_bytes,
            download_bytes,
        } => {
            for (what, bytes) in [("upload", upload_bytes), ("download", download_bytes)] {
                if bytes > max {
                    return Err(SessionError::Refused {
                        code: ErrorCode::LimitExceeded,
                        message: format!(
                            "{what} of {bytes} bytes is over this server's limit of {max} bytes"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Runs an admitted test's data phase and returns the server's counters.
async fn run_test(
    conn: &mut Connection,
    request: &TestRequest,
    shared: &Shared,
) -> Result<ServerCounters, SessionError> {
    match *request {
        TestRequest::Transfer {
            upload_bytes,
            download_bytes,
        } => {
            transfer(
                conn,
                upload_bytes,
                download_bytes,
                shared.config.buffer_size,
            )
            .await
        }
    }
}

/// Receive `upload` bytes and confirm them; on `Fetch`, send `download` bytes; then counters.
async fn transfer(
    conn: &mut Connection,
    upload: u64,
    download: u64,
    buffer_size: usize,
) -> Result<ServerCounters, SessionError> {
    // One buffer per test, reused for every read and write: memory is fixed however large the
    // test. Its contents are arbitrary; filling it once keeps the pages resident.
    let mut buf = vec![0x5au8; buffer_size.max(1)];

    let upload_started = Instant::now();
    let bytes_received = conn.read_data(upload, &mut buf).await?;
    let upload_time = upload_started.elapsed();
    if bytes_received < upload {
        return Err(ConnectionError::Closed.into());
    }
    conn.write_frame(&Message::UploadComplete {
        bytes_received,
        seconds: upload_time.as_secs_f64(),
    })
    .await?;

    match conn.expect_frame().await? {
        Message::Fetch => {}
        other => return Err(unexpected("fetch", &other)),
    }
    let download_started = Instant::now();
    conn.write_data(download, &buf).await?;
    let download_time = download_started.elapsed();

    let counters = ServerCounters {
        bytes_received,
        bytes_sent: download,
        upload_seconds: upload_time.as_secs_f64(),
        download_seconds: download_time.as_secs_f64(),
    };
    conn.write_frame(&Message::Counters(counters)).await?;
    conn.shutdown().await?;
    Ok(counters)
}

fn unexpected(expected: &'static str, got: &Message) -> SessionError {
    let got = match got {
        Message::Request(_) => "request",
        Message::Accepted { .. } => "accepted",
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
async fn refuse(conn: &mut Connection, code: ErrorCode, message: String) {
    let send = async {
        conn.write_frame(&Message::Error { code, message }).await?;
        conn.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), send).await;
}
