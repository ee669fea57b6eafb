//! One transfer test: upload a payload, have the server confirm it, fetch the response, then read
//! the server's own counters.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::MeasureError;
use crate::wire::{Connection, ConnectionError, Message, ServerCounters, TestRequest};

/// The sizes of one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSpec {
    /// Bytes the client sends.
    pub payload_bytes: u64,
    /// Bytes the server sends back.
    pub response_bytes: u64,
}

/// How the client connects and how long it waits.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    pub connect_timeout: Duration,
    /// Longest wait for any progress once connected.
    pub io_timeout: Duration,
    /// Size of the reusable send/receive buffer.
    pub buffer_size: usize,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            buffer_size: 256 * 1024,
        }
    }
}

/// What one transfer measured, on both ends.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferSample {
    pub spec: TransferSpec,
    /// The address the test ran against.
    pub server_addr: SocketAddr,
    pub client_sent_bytes: u64,
    pub client_received_bytes: u64,
    /// The server's own counters, sent after the test.
    pub server: ServerCounters,
    /// TCP connect time.
    pub connect: Duration,
    /// From the first byte written until the server confirmed receiving every byte.
    pub upload: Duration,
    /// From the request for the response until its last byte arrived.
    pub download: Duration,
    /// From the start of the connect until the server's counters arrived.
    pub total: Duration,
}

/// Connects to the first of `addrs` that answers and runs one transfer.
pub async fn transfer(
    addrs: &[SocketAddr],
    spec: TransferSpec,
    options: &TransferOptions,
) -> Result<TransferSample, MeasureError> {
    let started = Instant::now();
    let (stream, addr) = connect(addrs, options.connect_timeout).await?;
    let connect = started.elapsed();
    let mut conn = Connection::new(stream, options.io_timeout);
    let fail = |phase: &'static str| {
        move |error: ConnectionError| MeasureError::Connection { addr, phase, error }
    };

    conn.write_hello().await.map_err(fail("handshake"))?;
    conn.write_frame(&Message::Request(TestRequest::Transfer {
        upload_bytes: spec.payload_bytes,
        download_bytes: spec.response_bytes,
    }))
    .await
    .map_err(fail("handshake"))?;
    match conn.expect_frame().await.map_err(fail("handshake"))? {
        Message::Accepted { .. } => {}
        other => return Err(unexpected(addr, "accepted", other)),
    }

    let mut buf = vec![0xa5u8; options.buffer_size.max(1)];
    let upload_started = Instant::now();
    conn.write_data(spec.payload_bytes, &buf)
        .await
        .map_err(fail("upload"))?;
    match conn.expect_frame().await.map_err(fail("upload"))? {
        Message::UploadComplete { .. } => {}
        other => return Err(unexpected(addr, "upload_complete", other)),
    }
    let upload = upload_started.elapsed();

    let download_started = Instant::now();
    conn.write_frame(&Message::Fetch)
        .await
        .map_err(fail("download"))?;
    let client_received_bytes = conn
        .read_data(spec.response_bytes, &mut buf)
        .await
        .map_err(fail("download"))?;
    let download = download_started.elapsed();
    if client_received_bytes < spec.response_bytes {
        return Err(fail("download")(ConnectionError::Closed));
    }

    let server = match conn.expect_frame().await.map_err(fail("results"))? {
        Message::Counters(counters) => counters,
        other => return Err(unexpected(addr, "counters", other)),
    };
    Ok(TransferSample {
        spec,
        server_addr: addr,
        client_sent_bytes: spec.payload_bytes,
        client_received_bytes,
        server,
        connect,
        upload,
        download,
        total: started.elapsed(),
    })
}

/// Tries each address in turn, each within `timeout`.
pub(super) async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), MeasureError> {
    let mut last = None;
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, addr)),
            Ok(Err(error)) => last = Some(MeasureError::Connect { addr, error }),
            Err(_) => last = Some(MeasureError::ConnectTimeout { addr, timeout }),
        }
    }
    Err(last.unwrap_or(MeasureError::NoAddress {
        addr: String::new(),
    }))
}

/// A typed error frame becomes a refusal; anything else out of turn is a protocol error.
pub(super) fn unexpected(addr: SocketAddr, expected: &'static str, got: Message) -> MeasureError {
    match got {
        Message::Error { code, message } => MeasureError::Refused {
            addr,
            code,
            message,
        },
        other => MeasureError::Protocol {
            addr,
            expected,
            got: format!("{other:?}"),
        },
    }
}
