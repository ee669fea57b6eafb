//! `sock_diag` netlink on Linux: a dump of every TCP socket with its `tcp_info`, and the
//! destroy events (`SKNLGRP_INET_TCP_DESTROY`, `SKNLGRP_INET6_TCP_DESTROY`) that carry each
//! socket's final `tcp_info` as it is freed. Both work without privileges.
//!
//! Destroy events are read by a thread of their own as they come, so a burst of short
//! connections between two polls does not overflow the socket's receive buffer; if the kernel
//! still drops some (`ENOBUFS`), the loss is counted and reported, never hidden.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NlasIterator, Parseable, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_INFO, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY,
};
use netlink_packet_sock_diag::inet::nlas::TcpInfo;
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddr};

use super::{MonitorError, SocketSample, TcpCounters, TcpState};

/// `enum sknetlink_groups` in `linux/sock_diag.h`.
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
/// Receive buffer asked for the destroy listener: room for tens of thousands of events.
const DESTROY_BUFFER: usize = 32 << 20;
const RECV_BUFFER: usize = 64 << 10;
/// The legacy `inet_diag` request and response type (`linux/inet_diag.h`).
const TCPDIAG_GETSOCK: u16 = 18;

/// Dumps the TCP socket table.
pub struct Dumper {
    socket: Socket,
    single_walk: bool,
    sequence: u32,
    buffer: Vec<u8>,
}

impl Dumper {
    pub fn new() -> Result<Dumper, MonitorError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(MonitorError::Netlink)?;
        socket.bind_auto().map_err(MonitorError::Netlink)?;
        socket
            .connect(&NetlinkAddr::new(0, 0))
            .map_err(MonitorError::Netlink)?;
        Ok(Dumper {
            socket,
            single_walk: true,
            sequence: 0,
            buffer: vec![0; RECV_BUFFER],
        })
    }

    /// Appends every IPv4 and IPv6 TCP socket but those in TIME_WAIT (which keep no counters).
    ///
    /// One `TCPDIAG_GETSOCK` request returns both families in a single walk of the kernel's
    /// connection table (per-family `SOCK_DIAG_BY_FAMILY` requests walk it twice: with 256K
    /// buckets that is most of a poll's cost on an idle machine). If the kernel refuses it,
    /// the per-family requests are used from then on.
    pub fn dump(&mut self, out: &mut Vec<SocketSample>) -> Result<(), MonitorError> {
        if self.single_walk {
            let mark = out.len();
            let request = self.both_families_request();
            match self.send_and_collect(&request, out) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!("TCPDIAG_GETSOCK refused ({e}); dumping per family");
                    out.truncate(mark);
                    self.single_walk = false;
                }
            }
        }
        for family in [AF_INET, AF_INET6] {
            let request = self.family_request(family);
            self.send_and_collect(&request, out)?;
        }
        Ok(())
    }

    /// The legacy request (`struct inet_diag_req`): its dump covers every family.
    fn both_families_request(&mut self) -> Vec<u8> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut states = StateFlags::all();
        states.remove(StateFlags::TIME_WAIT);
        let mut body = vec![0u8; 60];
        body[0] = AF_INET;
        body[3] = ExtensionFlags::INFO.bits();
        body[52..56].copy_from_slice(&states.bits().to_ne_bytes());
        let mut request = Vec::with_capacity(16 + body.len());
        request.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        request.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
        request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        request.extend_from_slice(&self.sequence.to_ne_bytes());
        request.extend_from_slice(&0u32.to_ne_bytes());
        request.extend_from_slice(&body);
        request
    }

    fn family_request(&mut self, family: u8) -> Vec<u8> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.sequence;
        let mut states = StateFlags::all();
        states.remove(StateFlags::TIME_WAIT);
        let socket_id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::INFO,
                states,
                socket_id,
            })
            .into(),
        );
        packet.finalize();
        let mut request = vec![0; packet.buffer_len()];
        packet.serialize(&mut request);
        request
    }

    fn send_and_collect(
        &mut self,
        request: &[u8],
        out: &mut Vec<SocketSample>,
    ) -> Result<(), MonitorError> {
        self.socket
            .send(request, 0)
            .map_err(MonitorError::Netlink)?;
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.buffer[..], 0)
                .map_err(MonitorError::Netlink)?;
            let mut offset = 0;
            while offset + 16 <= n {
                let bytes = &self.buffer[offset..n];
                let length = message_length(bytes);
                if length < 16 || length > bytes.len() {
                    return Err(MonitorError::Parse(format!(
                        "netlink message of {length} bytes at offset {offset} of {n}"
                    )));
                }
                offset += (length + 3) & !3;
                let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
                let sequence = u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
                if sequence != self.sequence {
                    continue; // leftovers of an earlier, interrupted dump
                }
                let payload = &bytes[16..length];
                match kind {
                    SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => out.extend(parse_response(payload)),
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR if payload.len() >= 4 => {
                        let code =
                            i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        return Err(MonitorError::Netlink(io::Error::from_raw_os_error(-code)));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn message_length(bytes: &[u8]) -> usize {
    u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
}

/// IPv4-mapped IPv6 addresses as IPv4, so both ends of a connection name each other alike.
fn canonical(ip: IpAddr, port: u16) -> SocketAddr {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    SocketAddr::new(ip, port)
}

/// Length of `struct inet_diag_msg`, the fixed part of each response.
const RESPONSE_HEADER_LEN: usize = 72;

/// The sample of one `inet_diag_msg` and its attributes, if it carries `tcp_info` or is a
/// listener. Only the header and `INET_DIAG_INFO` are decoded: a dump of tens of thousands of
/// sockets stays cheap.
pub fn parse_response(payload: &[u8]) -> Option<SocketSample> {
    let h = InetResponseHeader::parse(payload.get(..RESPONSE_HEADER_LEN)?).ok()?;
    let mut counters = None;
    for nla in NlasIterator::new(&payload[RESPONSE_HEADER_LEN..]) {
        let Ok(nla) = nla else { break };
        if nla.kind() == INET_DIAG_INFO {
            // An old kernel's shorter tcp_info fails here: that socket is skipped, not the dump.
            let info = TcpInfo::parse(nla.value()).ok()?;
            counters = Some(TcpCounters {
                bytes_acked: info.bytes_acked,
                bytes_received: info.bytes_received,
                bytes_sent: info.bytes_sent,
                bytes_retrans: info.bytes_retrans,
            });
        }
    }
    let state = TcpState(h.state);
    if counters.is_none() && state != TcpState::LISTEN {
        return None;
    }
    let id = &h.socket_id;
    let low = u32::from_ne_bytes([id.cookie[0], id.cookie[1], id.cookie[2], id.cookie[3]]);
    let high = u32::from_ne_bytes([id.cookie[4], id.cookie[5], id.cookie[6], id.cookie[7]]);
    Some(SocketSample {
        cookie: (u64::from(high) << 32) | u64::from(low),
        local: canonical(id.source_address, id.source_port),
        remote: canonical(id.destination_address, id.destination_port),
        state,
        inode: u64::from(h.inode),
        uid: h.uid,
        counters: counters.unwrap_or_default(),
    })
}

/// Collects destroy events on a thread of its own until dropped.
pub struct DestroyListener {
    queue: Arc<Mutex<Vec<SocketSample>>>,
    lost: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DestroyListener {
    pub fn start() -> Result<DestroyListener, MonitorError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(MonitorError::Netlink)?;
        socket.bind_auto().map_err(MonitorError::Netlink)?;
        for group in [SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY] {
            socket
                .add_membership(group)
                .map_err(MonitorError::Netlink)?;
        }
        grow_receive_buffer(&socket);
        socket
            .set_non_blocking(true)
            .map_err(MonitorError::Netlink)?;
        let queue = Arc::new(Mutex::new(Vec::new()));
        let lost = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queue, lost, stop) = (queue.clone(), lost.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ntm-destroy".into())
                .spawn(move || listen(socket, &queue, &lost, &stop))
                .map_err(MonitorError::Netlink)?
        };
        Ok(DestroyListener {
            queue,
            lost,
            stop,
            thread: Some(thread),
        })
    }

    /// The events received since the last call, and how many the kernel dropped.
    pub fn drain(&self) -> (Vec<SocketSample>, u64) {
        let events = std::mem::take(&mut *self.queue.lock().expect("destroy queue"));
        (events, self.lost.swap(0, Ordering::Relaxed))
    }
}

impl Drop for DestroyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// As large a receive buffer as allowed: `SO_RCVBUFFORCE` past `rmem_max` when privileged.
fn grow_receive_buffer(socket: &Socket) {
    let size = DESTROY_BUFFER as libc::c_int;
    // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the given length.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = socket.set_rx_buf_sz(DESTROY_BUFFER);
    }
}

fn listen(socket: Socket, queue: &Mutex<Vec<SocketSample>>, lost: &AtomicU64, stop: &AtomicBool) {
    let mut buffer = vec![0u8; RECV_BUFFER];
    let mut batch = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut fds = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut fds, 1, 50) };
        loop {
            match socket.recv(&mut &mut buffer[..], 0) {
                Ok(n) => parse_events(&buffer[..n], &mut batch),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("destroy events stopped: {e}");
                    return;
                }
            }
        }
        if !batch.is_empty() {
            queue.lock().expect("destroy queue").append(&mut batch);
        }
    }
}

fn parse_events(bytes: &[u8], out: &mut Vec<SocketSample>) {
    let mut offset = 0;
    while offset + 16 <= bytes.len() {
        let message = &bytes[offset..];
        let length = message_length(message);
        if length < 16 || length > message.len() {
            return;
        }
        if u16::from_ne_bytes([message[4], message[5]]) == SOCK_DIAG_BY_FAMILY {
            out.extend(parse_response(&message[16..length]));
        }
        offset += (length + 3) & !3;
    }
}
