//! `ntm exec`'s tracer: learns every TCP socket the command's process tree connects or listens
//! on at the moment it does, so a connection that opens and closes between two polls is still
//! attributed (its bytes come from the destroy event, matched by socket cookie).
//!
//! A seccomp filter, installed in the child before `exec` and inherited by all its
//! descendants, turns `connect(2)` and `listen(2)` into user notifications (Linux 5.5+). For each,
//! ntm duplicates the socket with `pidfd_getfd(2)` (5.6+), reads its cookie (`SO_COOKIE`), closes
//! the duplicate and lets the call continue unchanged. Nothing else is intercepted; the call
//! costs the command a few microseconds. Without `CAP_SYS_ADMIN` the filter needs
//! `no_new_privs`, so set-user-ID programs run by the command do not gain privileges.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::ProcessInfo;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
/// `SO_COOKIE` (`asm-generic/socket.h`).
const SO_COOKIE: libc::c_int = 57;

/// The parent's end of the channel on which the child hands over its notification fd.
pub struct Pending {
    parent: UnixStream,
    child: Option<UnixStream>,
}

/// Arranges for `command` to install the filter just before it execs.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn prepare(command: &mut tokio::process::Command) -> io::Result<Pending> {
    let (parent, child) = UnixStream::pair()?;
    let fd = child.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, seccomp, sendmsg, close); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            install(fd);
            Ok(())
        });
    }
    Ok(Pending {
        parent,
        child: Some(child),
    })
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn prepare(_command: &mut tokio::process::Command) -> io::Result<Pending> {
    Err(io::Error::other(
        "no seccomp filter for this CPU architecture",
    ))
}

/// In the child: installs the filter and sends its listener fd to the parent; on failure
/// sends a byte with no fd, and the command runs untraced.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn install(channel: RawFd) {
    let filter = [
        bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4), // seccomp_data.arch
        bpf_jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH,
            0,
            3,
        ),
        bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0), // seccomp_data.nr
        bpf_jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_connect as u32,
            2,
            0,
        ),
        bpf_jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_listen as u32,
            1,
            0,
        ),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_USER_NOTIF),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    let load = || {
        // SAFETY: a valid filter program that outlives the call.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &program as *const libc::sock_fprog,
            )
        }
    };
    let mut listener = load();
    if listener < 0 {
        // Without CAP_SYS_ADMIN a filter needs no_new_privs.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        listener = load();
    }
    send_fd(channel, (listener >= 0).then_some(listener as RawFd));
    if listener >= 0 {
        // SAFETY: closing our own copy; the parent holds the other.
        unsafe { libc::close(listener as RawFd) };
    }
}

const fn bpf_stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn bpf_jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Sends one byte, with `fd` attached when there is one (SCM_RIGHTS).
fn send_fd(channel: RawFd, fd: Option<RawFd>) {
    let mut byte = [u8::from(fd.is_some())];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one cmsghdr with one int, aligned as cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: msghdr and cmsg built on the stack within `control`'s bounds.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = fd {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
        libc::sendmsg(channel, &msg, 0);
    }
}

/// Receives what [`send_fd`] sent.
fn receive_fd(channel: &UnixStream) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4];
    // SAFETY: buffers on the stack, lengths given.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(channel.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(None);
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// A socket of the traced tree: its cookie and the process that connected or listened.
pub type Found = (u64, ProcessInfo);

/// Answers the tree's notifications on a thread of its own until dropped (or until every
/// traced process has exited).
pub struct Tracer {
    found: Arc<Mutex<Vec<Found>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<OwnedFd>>>,
}

impl Pending {
    /// After the spawn: takes the child's listener fd and starts answering.
    pub fn start(mut self) -> io::Result<Tracer> {
        drop(self.child.take());
        self.parent
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let listener = receive_fd(&self.parent)?
            .ok_or_else(|| io::Error::other("the seccomp filter could not be installed"))?;
        let found = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (found, stop) = (found.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ntm-exec-trace".into())
                .spawn(move || answer(listener, &found, &stop))?
        };
        Ok(Tracer {
            found,
            stop,
            thread: Some(thread),
        })
    }
}

impl Tracer {
    /// Sockets learned since the last call.
    pub fn drain(&self) -> Vec<Found> {
        std::mem::take(&mut *self.found.lock().expect("trace list"))
    }
}

impl Drop for Tracer {
    /// Stops answering. If processes of the tree still run (the command left a daemon), their
    /// connect and listen would fail with ENOSYS once no one holds the listener: a small
    /// detached process takes it over and lets every call continue until they have all exited.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(Ok(Some(listener))) = self.thread.take().map(|t| t.join()) {
            hand_over(listener);
        }
    }
}

/// Answers "continue" to every notification on `listener` from a detached child process.
fn hand_over(listener: OwnedFd) {
    let fd = listener.as_raw_fd();
    // SAFETY: after fork the child runs only async-signal-safe syscalls on stack data (no
    // allocation, no locks) and leaves with _exit.
    unsafe {
        if libc::fork() != 0 {
            return; // the parent (or a failed fork): our copy closes as `listener` drops
        }
        libc::setsid(); // out of the terminal's process group: Ctrl-C is not for it
        for other in 0..fd {
            libc::close(other);
        }
        libc::syscall(
            libc::SYS_close_range,
            fd as libc::c_uint + 1,
            libc::c_uint::MAX,
            0,
        );
        loop {
            let mut fds = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut fds, 1, -1) < 0 {
                continue;
            }
            if fds.revents & libc::POLLIN == 0 {
                libc::_exit(0); // every traced process has exited
            }
            let mut request: libc::seccomp_notif = std::mem::zeroed();
            if libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut request) != 0 {
                continue;
            }
            let mut response = libc::seccomp_notif_resp {
                id: request.id,
                val: 0,
                error: 0,
                flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            };
            libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &mut response);
        }
    }
}

/// Answers until told to stop; returns the listener if traced processes may still call.
fn answer(listener: OwnedFd, found: &Mutex<Vec<Found>>, stop: &AtomicBool) -> Option<OwnedFd> {
    let fd = listener.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let mut fds = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut fds, 1, 50) };
        if ready <= 0 {
            continue;
        }
        if fds.revents & libc::POLLIN == 0 {
            if fds.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                return None; // every traced process has exited
            }
            continue;
        }
        // SAFETY: the kernel requires a zeroed struct; it fills it.
        let mut request: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: ioctl with the struct it expects.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut request) } != 0 {
            continue; // the caller died, or was interrupted
        }
        if let Some(f) = inspect(request.pid, request.data.args[0] as RawFd) {
            found.lock().expect("trace list").push(f);
        }
        let mut response = libc::seccomp_notif_resp {
            id: request.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: ioctl with the struct it expects; failure means the caller is gone.
        unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &mut response) };
    }
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut fds, 1, 0) };
    let all_gone = fds.revents & libc::POLLHUP != 0 && fds.revents & libc::POLLIN == 0;
    (!all_gone).then_some(listener)
}

/// The cookie of the TCP socket `fd` of thread `tid`, with its process.
fn inspect(tid: u32, fd: RawFd) -> Option<Found> {
    let process = status(tid)?;
    // SAFETY: plain syscalls; every fd returned is wrapped to be closed.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, process.pid as libc::pid_t, 0);
        if pidfd < 0 {
            return None;
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as RawFd);
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        if dup < 0 {
            return None;
        }
        let dup = OwnedFd::from_raw_fd(dup as RawFd);
        let domain = int_option(&dup, libc::SO_DOMAIN)?;
        let protocol = int_option(&dup, libc::SO_PROTOCOL)?;
        if !matches!(domain, libc::AF_INET | libc::AF_INET6) || protocol != libc::IPPROTO_TCP {
            return None;
        }
        let mut cookie = 0u64;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        let r = libc::getsockopt(
            dup.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        );
        (r == 0).then_some((cookie, process))
    }
}

fn int_option(fd: &OwnedFd, option: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into a c_int of the given length.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(value)
}

/// The process of thread `tid` (`/proc/TID/status`: Tgid, PPid, Name).
fn status(tid: u32) -> Option<ProcessInfo> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    Some(ProcessInfo {
        pid: field("Tgid:")?.parse().ok()?,
        ppid: field("PPid:")?.parse().ok()?,
        name: field("Name:")?,
    })
}
