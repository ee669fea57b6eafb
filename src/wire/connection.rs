//! A control connection: a buffered TCP stream that reads and writes frames and raw test data,
//! with an idle timeout on every read and write so no peer can hold it forever.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::frame::{self, FrameError, Message, HEADER_LEN, HELLO_LEN};

/// Why a connection could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("the peer sent nothing for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A TCP stream with a small read buffer for frames; bulk reads bypass that buffer.
pub struct Connection {
    stream: BufReader<TcpStream>,
    idle_timeout: Duration,
}

impl Connection {
    /// Wraps `stream`; every read or write that makes no progress for `idle_timeout` fails.
    pub fn new(stream: TcpStream, idle_timeout: Duration) -> Connection {
        // Frames are small and latency matters more than packet count for them.
        let _ = stream.set_nodelay(true);
        Connection {
            stream: BufReader::new(stream),
            idle_timeout,
        }
    }

    /// The underlying socket, for addresses and socket options.
    pub fn socket(&self) -> &TcpStream {
        self.stream.get_ref()
    }

    /// Runs one I/O step under the idle timeout.
    async fn timed<T>(
        idle: Duration,
        step: impl std::future::Future<Output = io::Result<T>>,
    ) -> Result<T, ConnectionError> {
        match timeout(idle, step).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ConnectionError::Closed),
            Ok(Err(e)) => Err(ConnectionError::Io(e)),
            Err(_) => Err(ConnectionError::Idle(idle)),
        }
    }

    /// Sends the client hello.
    pub async fn write_hello(&mut self) -> Result<(), ConnectionError> {
        let hello = frame::encode_hello();
        Self::timed(self.idle_timeout, self.stream.get_mut().write_all(&hello)).await
    }

    /// Reads and checks the client hello. A peer that closes before sending it is `Ok(None)`.
    pub async fn read_hello(&mut self) -> Result<Option<u16>, ConnectionError> {
        let mut hello = [0u8; HELLO_LEN];
        let n = Self::timed(self.idle_timeout, read_full(&mut self.stream, &mut hello)).await?;
        if n == 0 {
            return Ok(None);
        }
        if n < HELLO_LEN {
            return Err(ConnectionError::Closed);
        }
        Ok(Some(frame::parse_hello(&hello)?))
    }

    /// Reads one frame. A clean close before a new frame starts is `Ok(None)`.
    pub async fn read_frame(&mut self) -> Result<Option<Message>, ConnectionError> {
        let idle = self.idle_timeout;
        let mut header = [0u8; HEADER_LEN];
        let n = Self::timed(idle, read_full(&mut self.stream, &mut header)).await?;
        if n == 0 {
            return Ok(None);
        }
        if n < HEADER_LEN {
            return Err(ConnectionError::Closed);
        }
        // Checked against the maximum before the body is allocated.
        let len = frame::parse_header(header)?;
        let mut body = vec![0u8; len];
        Self::timed(idle, self.stream.read_exact(&mut body)).await?;
        Ok(Some(frame::parse_body(&body)?))
    }

    /// Like [`Connection::read_frame`], but a close is an error: the protocol expects a frame.
    pub async fn expect_frame(&mut self) -> Result<Message, ConnectionError> {
        self.read_frame().await?.ok_or(ConnectionError::Closed)
    }

    /// Writes one frame.
    pub async fn write_frame(&mut self, message: &Message) -> Result<(), ConnectionError> {
        let bytes = frame::encode(message);
        Self::timed(self.idle_timeout, self.stream.get_mut().write_all(&bytes)).await
    }

    /// Reads and discards exactly `len` bytes of test data through `buf`, which is reused for
    /// every read so memory stays fixed however large the test. Returns the bytes read, which
    /// is less than `len` only if the peer closed early.
    pub async fn read_data(&mut self, len: u64, buf: &mut [u8]) -> Result<u64, ConnectionError> {
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let n = Self::timed(self.idle_timeout, self.stream.read(&mut buf[..want])).await?;
            if n == 0 {
                break;
            }
            done += n as u64;
        }
        Ok(done)
    }

    /// Writes exactly `len` bytes of test data, cycling through `buf`.
    pub async fn write_data(&mut self, len: u64, buf: &[u8]) -> Result<(), ConnectionError> {
        // The timeout bounds each write, not the whole chunk, so a slow but live peer is fine.
        let mut done = 0u64;
        while done < len {
            let chunk = (len - done).min(buf.len() as u64) as usize;
            let n = Self::timed(
                self.idle_timeout,
                self.stream.get_mut().write(&buf[..chunk]),
            )
            .await?;
            if n == 0 {
                return Err(ConnectionError::Closed);
            }
            done += n as u64;
        }
        Ok(())
    }

    /// Flushes and closes the write side, so the peer sees a clean end of stream.
    pub async fn shutdown(&mut self) -> Result<(), ConnectionError> {
        Self::timed(self.idle_timeout, self.stream.get_mut().shutdown()).await
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
async fn read_full(stream: &mut BufReader<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
