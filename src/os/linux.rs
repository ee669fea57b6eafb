//! Linux: TCP_INFO and socket options through `getsockopt`/`setsockopt`, CPU time through
//! `getrusage`.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use super::{CpuTime, SocketOptionError, TcpInfo};

pub(super) fn tcp_info(fd: BorrowedFd<'_>) -> Option<TcpInfo> {
    // SAFETY: tcp_info is plain old data; the kernel fills at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    // Older kernels fill a shorter struct; fields past `len` stay zero.
    Some(TcpInfo {
        rtt_us: info.tcpi_rtt,
        rttvar_us: info.tcpi_rttvar,
        retransmits: info.tcpi_total_retrans,
        snd_cwnd: info.tcpi_snd_cwnd,
        snd_mss: info.tcpi_snd_mss,
        pacing_rate_bps: info.tcpi_pacing_rate.saturating_mul(8),
        delivery_rate_bps: info.tcpi_delivery_rate.saturating_mul(8),
        bytes_retrans: info.tcpi_bytes_retrans,
        bytes_acked: info.tcpi_bytes_acked,
        bytes_received: info.tcpi_bytes_received,
    })
}

pub(super) fn cpu_time() -> Option<CpuTime> {
    // SAFETY: rusage is plain old data filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Some(CpuTime {
        user: tv(usage.ru_utime),
        system: tv(usage.ru_stime),
    })
}

fn setsockopt(fd: i32, level: i32, name: i32, value: &[u8]) -> Result<(), std::io::Error> {
    // SAFETY: `value` is a live slice of `value.len()` readable bytes for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub(super) fn set_mss(socket: &impl AsRawFd, mss: u32) -> Result<(), SocketOptionError> {
    let v = (mss as libc::c_int).to_ne_bytes();
    setsockopt(socket.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_MAXSEG, &v).map_err(|error| {
        SocketOptionError::Failed {
            option: "TCP_MAXSEG",
            value: mss.to_string(),
            error,
        }
    })
}

pub(super) fn set_congestion(socket: &impl AsRawFd, name: &str) -> Result<(), SocketOptionError> {
    setsockopt(
        socket.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_CONGESTION,
        name.as_bytes(),
    )
    .map_err(|error| SocketOptionError::Failed {
        option: "TCP_CONGESTION",
        value: name.to_string(),
        error,
    })
}

pub(super) fn set_pacing_rate(
    socket: &impl AsRawFd,
    rate_bps: u64,
) -> Result<(), SocketOptionError> {
    // The kernel takes bytes per second; a u64 value is accepted since Linux 4.13.
    let bytes_per_second: u64 = (rate_bps / 8).max(1);
    setsockopt(
        socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_MAX_PACING_RATE,
        &bytes_per_second.to_ne_bytes(),
    )
    .map_err(|error| SocketOptionError::Failed {
        option: "SO_MAX_PACING_RATE",
        value: format!("{rate_bps} bit/s"),
        error,
    })
}

pub(super) fn recv_discard(socket: &impl AsRawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: with MSG_TRUNC on TCP the kernel writes nothing to `buf`; `buf` is still a valid
    // writable region of `buf.len()` bytes in case a kernel ignores the flag.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A kernel pipe for `splice(2)`: bytes move socket -> pipe -> socket without entering user
/// space.
pub struct Pipe {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
    capacity: usize,
}

impl Pipe {
    pub fn new(wanted: usize) -> std::io::Result<Pipe> {
        use std::os::fd::FromRawFd;
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe {
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        // A larger pipe moves more per call; if the system refuses, the default is kept.
        // SAFETY: plain fcntl on a descriptor we own.
        let size =
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted as libc::c_int) };
        let capacity = if size > 0 {
            size as usize
        } else {
            // SAFETY: as above.
            let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if got > 0 {
                got as usize
            } else {
                65536
            }
        };
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Moves up to `len` bytes from socket `from` into the pipe. `Ok(0)` is end of stream.
    pub fn fill_from(&self, from: &impl AsRawFd, len: usize) -> std::io::Result<usize> {
        splice(from.as_raw_fd(), self.write.as_raw_fd(), len)
    }

    /// Moves up to `len` bytes from the pipe into socket `to`.
    pub fn drain_to(&self, to: &impl AsRawFd, len: usize) -> std::io::Result<usize> {
        splice(self.read.as_raw_fd(), to.as_raw_fd(), len)
    }
}

fn splice(from: i32, to: i32, len: usize) -> std::io::Result<usize> {
    // SAFETY: splice between two open descriptors with null offsets reads and writes no user
    // memory.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
