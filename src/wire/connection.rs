//! A control connection: a TCP stream with a read buffer that holds partial frames, so reading a
//! frame is cancel-safe (it can sit in a `select!`), and an idle timeout on every read and write so
//! no peer can hold it forever. Bulk test data bypasses the buffer.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::frame::{self, FrameError, Message, HELLO_LEN};

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
    /// `None` while a blocking thread owns the socket (see [`Connection::detach`]).
    stream: Option<TcpStream>,
    buffer: BytesMut,
    idle_timeout: Duration,
}

impl Connection {
    /// Wraps `stream`; every read or write that makes no progress for `idle_timeout` fails.
    pub fn new(stream: TcpStream, idle_timeout: Duration) -> Connection {
        // Frames are small and latency matters more than packet count for them.
        let _ = stream.set_nodelay(true);
        Connection {
            stream: Some(stream),
            buffer: BytesMut::with_capacity(4096),
            idle_timeout,
        }
    }

    /// The underlying socket, for addresses and socket options.
    ///
    /// # Panics
    /// While detached.
    pub fn socket(&self) -> &TcpStream {
        self.stream
            .as_ref()
            .expect("socket of a detached connection")
    }

    fn stream(&mut self) -> Result<&mut TcpStream, ConnectionError> {
        self.stream.as_mut().ok_or(ConnectionError::Closed)
    }

    /// Hands the socket to blocking code: it leaves the reactor (so its readiness events stop
    /// waking the runtime) and becomes blocking. Returns it with the bytes already read past the
    /// last frame. Until [`Connection::attach`], every operation fails as closed.
    pub fn detach(&mut self) -> Result<(std::net::TcpStream, BytesMut), ConnectionError> {
        let stream = self.stream.take().ok_or(ConnectionError::Closed)?;
        let std = stream.into_std()?;
        std.set_nonblocking(false)?;
        Ok((std, self.buffer.split()))
    }

    /// Takes the socket back from blocking code.
    pub fn attach(&mut self, stream: std::net::TcpStream) -> Result<(), ConnectionError> {
        stream.set_nonblocking(true)?;
        self.stream = Some(TcpStream::from_std(stream)?);
        Ok(())
    }

    /// The idle timeout of this connection.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Unwraps the socket and any bytes already read past the last frame.
    ///
    /// # Panics
    /// While detached.
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (
            self.stream.expect("socket of a detached connection"),
            self.buffer,
        )
    }

    /// Runs one I/O step under a timeout (none if `limit` is `None`).
    async fn timed<T>(
        limit: Option<Duration>,
        step: impl std::future::Future<Output = io::Result<T>>,
    ) -> Result<T, ConnectionError> {
        let result = match limit {
            Some(limit) => match timeout(limit, step).await {
                Ok(r) => r,
                Err(_) => return Err(ConnectionError::Idle(limit)),
            },
            None => step.await,
        };
        match result {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ConnectionError::Closed),
            Err(e) => Err(ConnectionError::Io(e)),
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self, limit: Option<Duration>) -> Result<usize, ConnectionError> {
        let stream = self.stream.as_mut().ok_or(ConnectionError::Closed)?;
        Self::timed(limit, stream.read_buf(&mut self.buffer)).await
    }

    /// Sends the client hello.
    pub async fn write_hello(&mut self) -> Result<(), ConnectionError> {
        let hello = frame::encode_hello();
        let idle = self.idle_timeout;
        Self::timed(Some(idle), self.stream()?.write_all(&hello)).await
    }

    /// Reads and checks the client hello. A peer that closes before sending it is `Ok(None)`.
    pub async fn read_hello(&mut self) -> Result<Option<u16>, ConnectionError> {
        while self.buffer.len() < HELLO_LEN {
            if self.fill(Some(self.idle_timeout)).await? == 0 {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(ConnectionError::Closed),
                };
            }
        }
        let hello: [u8; HELLO_LEN] = self.buffer[..HELLO_LEN].try_into().expect("HELLO_LEN");
        self.buffer.advance(HELLO_LEN);
        Ok(Some(frame::parse_hello(&hello)?))
    }

    /// Reads one frame. A clean close before a new frame starts is `Ok(None)`. Cancel-safe.
    pub async fn read_frame(&mut self) -> Result<Option<Message>, ConnectionError> {
        self.read_frame_within(Some(self.idle_timeout)).await
    }

    /// Like [`Connection::read_frame`] with another limit on each read; `None` waits forever
    /// (for a control connection that is quiet while a test runs).
    pub async fn read_frame_within(
        &mut self,
        limit: Option<Duration>,
    ) -> Result<Option<Message>, ConnectionError> {
        loop {
            // The length is checked against the maximum as soon as the header is here, before
            // waiting for (or allocating) the body.
            if let Some((message, used)) = frame::parse(&self.buffer)? {
                self.buffer.advance(used);
                return Ok(Some(message));
            }
            if self.fill(limit).await? == 0 {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(ConnectionError::Closed),
                };
            }
        }
    }

    /// Like [`Connection::read_frame`], but a close is an error: the protocol expects a frame.
    pub async fn expect_frame(&mut self) -> Result<Message, ConnectionError> {
        self.read_frame().await?.ok_or(ConnectionError::Closed)
    }

    /// Writes one frame.
    pub async fn write_frame(&mut self, message: &Message) -> Result<(), ConnectionError> {
        let bytes = frame::encode(message);
        let idle = self.idle_timeout;
        Self::timed(Some(idle), self.stream()?.write_all(&bytes)).await
    }

    /// Reads and discards exactly `len` bytes of test data through `buf`, which is reused for
    /// every read so memory stays fixed however large the test. Returns the bytes read, which
    /// is less than `len` only if the peer closed early.
    pub async fn read_data(&mut self, len: u64, buf: &mut [u8]) -> Result<u64, ConnectionError> {
        let idle = self.idle_timeout;
        self.read_data_within(len, buf, idle).await
    }

    /// Like [`Connection::read_data`], but the first read may wait up to `first_wait` (a peer
    /// that is known to be busy, e.g. computing, before it sends).
    pub async fn read_data_within(
        &mut self,
        len: u64,
        buf: &mut [u8],
        first_wait: Duration,
    ) -> Result<u64, ConnectionError> {
        let mut wait = first_wait;
        // Data that arrived with the last frame is consumed first.
        let buffered = (self.buffer.len() as u64).min(len) as usize;
        self.buffer.advance(buffered);
        let mut done = buffered as u64;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let n = Self::timed(Some(wait), self.stream()?.read(&mut buf[..want])).await?;
            wait = self.idle_timeout;
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
            let idle = self.idle_timeout;
            let n = Self::timed(Some(idle), self.stream()?.write(&buf[..chunk])).await?;
            if n == 0 {
                return Err(ConnectionError::Closed);
            }
            done += n as u64;
        }
        Ok(())
    }

    /// Flushes and closes the write side, so the peer sees a clean end of stream.
    pub async fn shutdown(&mut self) -> Result<(), ConnectionError> {
        let idle = self.idle_timeout;
        Self::timed(Some(idle), self.stream()?.shutdown()).await
    }
}
