//! Platforms without Linux's facilities: readers return `None`, setters say so.

use std::os::fd::BorrowedFd;

use super::{CpuTime, SocketOptionError, TcpInfo};

pub(super) fn tcp_info(_fd: BorrowedFd<'_>) -> Option<TcpInfo> {
    None
}

pub(super) fn cpu_time() -> Option<CpuTime> {
    None
}

pub(super) fn set_mss<T>(_socket: &T, _mss: u32) -> Result<(), SocketOptionError> {
    Err(SocketOptionError::Unsupported {
        option: "TCP_MAXSEG",
    })
}

pub(super) fn set_congestion<T>(_socket: &T, _name: &str) -> Result<(), SocketOptionError> {
    Err(SocketOptionError::Unsupported {
        option: "TCP_CONGESTION",
    })
}

pub(super) fn set_pacing_rate<T>(_socket: &T, _rate_bps: u64) -> Result<(), SocketOptionError> {
    Err(SocketOptionError::Unsupported {
        option: "SO_MAX_PACING_RATE",
    })
}

pub(super) fn recv_discard(
    socket: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    socket.try_read(buf)
}
