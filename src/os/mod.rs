//! Operating-system facilities behind one facade: TCP_INFO, process CPU time and socket options.
//! Linux has them all ([`linux`]); elsewhere the readers return `None` and the setters a clear
//! "not supported on this platform" error, so callers print "n/a".

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;
#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
use other as imp;

use std::os::fd::AsFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A snapshot of the kernel's view of one TCP connection (`getsockopt(TCP_INFO)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TcpInfo {
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u32,
    /// Round-trip time variation, microseconds.
    pub rttvar_us: u32,
    /// Segments retransmitted over the connection's life.
    pub retransmits: u32,
    /// Congestion window, in segments.
    pub snd_cwnd: u32,
    /// Sender's maximum segment size, bytes.
    pub snd_mss: u32,
    /// Kernel pacing rate, bits per second.
    pub pacing_rate_bps: u64,
    /// Most recent delivery rate estimate, bits per second.
    pub delivery_rate_bps: u64,
    /// Bytes retransmitted over the connection's life.
    pub bytes_retrans: u64,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received from the peer.
    pub bytes_received: u64,
}

impl TcpInfo {
    /// Congestion window in bytes.
    pub fn snd_cwnd_bytes(&self) -> u64 {
        self.snd_cwnd as u64 * self.snd_mss as u64
    }
}

/// Reads TCP_INFO of a connected socket; `None` where the platform has none.
pub fn tcp_info(socket: &impl AsFd) -> Option<TcpInfo> {
    imp::tcp_info(socket.as_fd())
}

/// CPU time this process has used so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    /// The CPU time of this process; `None` where it cannot be read.
    pub fn now() -> Option<CpuTime> {
        imp::cpu_time()
    }

    /// CPU used between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Socket options a test may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SocketOptions {
    /// Send and receive buffer size (SO_SNDBUF / SO_RCVBUF), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// Maximum segment size (TCP_MAXSEG), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mss: Option<u32>,
    /// Congestion control algorithm (TCP_CONGESTION), e.g. `cubic` or `bbr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub congestion: Option<String>,
    /// Disable Nagle's algorithm (TCP_NODELAY).
    #[serde(default)]
    pub no_delay: bool,
    /// Pace sending at this rate (SO_MAX_PACING_RATE), bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing_rate_bps: Option<u64>,
}

/// Why a socket option could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SocketOptionError {
    #[error("cannot set {option} to {value}: {error}")]
    Failed {
        option: &'static str,
        value: String,
        error: std::io::Error,
    },
    #[error("{option} is not supported on this platform")]
    Unsupported { option: &'static str },
}

/// Options that must be set before connecting (the window and MSS shape the handshake).
pub fn apply_before_connect(
    socket: &socket2::Socket,
    options: &SocketOptions,
) -> Result<(), SocketOptionError> {
    if let Some(window) = options.window {
        set_window(socket, window)?;
    }
    if let Some(mss) = options.mss {
        imp::set_mss(socket, mss)?;
    }
    Ok(())
}

/// Options that can be set on a connected socket.
pub fn apply_after_connect(
    socket: &socket2::SockRef<'_>,
    options: &SocketOptions,
) -> Result<(), SocketOptionError> {
    if options.no_delay {
        socket
            .set_nodelay(true)
            .map_err(|error| SocketOptionError::Failed {
                option: "TCP_NODELAY",
                value: "1".into(),
                error,
            })?;
    }
    if let Some(name) = &options.congestion {
        imp::set_congestion(&**socket, name)?;
    }
    if let Some(rate) = options.pacing_rate_bps {
        imp::set_pacing_rate(&**socket, rate)?;
    }
    if let Some(window) = options.window {
        // The accepting side's buffers are set here, after the fact; still effective for the
        // window it advertises from now on.
        set_window(socket, window)?;
    }
    Ok(())
}

/// SO_SNDBUF and SO_RCVBUF to `window` bytes.
fn set_window(socket: &socket2::Socket, window: u32) -> Result<(), SocketOptionError> {
    let fail = |option, error| SocketOptionError::Failed {
        option,
        value: window.to_string(),
        error,
    };
    socket
        .set_send_buffer_size(window as usize)
        .map_err(|e| fail("SO_SNDBUF", e))?;
    socket
        .set_recv_buffer_size(window as usize)
        .map_err(|e| fail("SO_RCVBUF", e))
}

/// Reads available bytes from a non-blocking socket and discards them. On Linux, `MSG_TRUNC`
/// lets the kernel drop TCP payload without copying it to user space, so a receiver costs less
/// CPU than the sender it measures; elsewhere the bytes are read into `buf`.
/// `Ok(0)` is end of stream; `WouldBlock` means nothing is ready.
pub fn recv_discard(socket: &tokio::net::TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    socket.try_io(tokio::io::Interest::READABLE, || {
        imp::recv_discard(socket, buf)
    })
}

/// A kernel pipe for zero-copy relaying with `splice(2)`; Linux only.
#[cfg(target_os = "linux")]
pub use linux::Pipe;
