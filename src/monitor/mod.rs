//! Traffic of existing processes, from the kernel's own per-socket counters (no packet capture).
//!
//! The OS is reached through one facade, [`Facade`]: each poll it returns an [`Observation`],
//! the only input of the core. The core ([`Monitor`], in `aggregate`) turns per-socket counters
//! into per-process totals and rates, connection lists and process trees; it holds no clock and
//! no socket, so tests feed it fakes. Drawing lives in `report::monitor` and `cli`.
//!
//! On Linux (`linux`) the facade reads `sock_diag` dumps with `tcp_info`, the final counters of
//! closed sockets from the `SKNLGRP_INET*_TCP_DESTROY` multicast groups, socket owners from
//! `/proc/*/fd` and interface totals from `/proc/net/dev`. `ntm exec` adds a tracer (`trap`) that
//! learns each socket its command connects or listens on as it happens, so connections that
//! open and close between two polls are still attributed. Elsewhere every entry point returns
//! [`MonitorError::Unsupported`].
//!
//! # Which counters are exact
//!
//! `tcp_info` counts sequence space, not payload: `bytes_acked` includes the SYN of the side that
//! opened the connection and the FIN once it is acknowledged, and `bytes_received` includes the
//! peer's FIN. `bytes_sent` counts retransmitted bytes again. The payload is therefore derived
//! ([`payload`]):
//!
//! - up = min(`bytes_acked` - SYN, `bytes_sent` - `bytes_retrans`): the bytes the peer
//!   acknowledged, each once. A FIN is acknowledged only after all data before it, so the
//!   minimum drops it; the SYN is known from whether the socket was accepted by a listener.
//! - down = `bytes_received` - FIN. When the peer is on this machine (loopback) its own counters
//!   settle it exactly: down = min(`bytes_received`, peer's `bytes_sent` - `bytes_retrans`).
//!   Otherwise the FIN is known from the states seen (CLOSE_WAIT, LAST_ACK, CLOSING, TIME_WAIT)
//!   and, for a socket that closed, assumed counted (an orderly close) when it received anything.

mod aggregate;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(target_os = "linux")]
mod sockdiag;
#[cfg(target_os = "linux")]
mod trap;

use std::collections::HashMap;
use std::net::SocketAddr;

pub use aggregate::{
    ConnectionRow, GroupSummary, InterfaceRow, Monitor, MonitorOptions, Owner, PeerRow, ProcessRow,
    Snapshot,
};

#[cfg(target_os = "linux")]
use linux as imp;
#[cfg(not(target_os = "linux"))]
use other as imp;

/// Why traffic cannot be monitored.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("traffic monitoring is not supported on this platform (Linux only)")]
    Unsupported,
    #[error("cannot read the kernel's socket table (sock_diag netlink): {0}")]
    Netlink(#[source] std::io::Error),
    #[error("cannot parse the kernel's socket table: {0}")]
    Parse(String),
    #[error("cannot start '{command}': {error}")]
    Spawn {
        command: String,
        #[source]
        error: std::io::Error,
    },
}

/// A socket's counters as `tcp_info` reports them (sequence space; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpCounters {
    /// `tcpi_bytes_acked`: bytes acknowledged by the peer (plus SYN and FIN).
    pub bytes_acked: u64,
    /// `tcpi_bytes_received`: bytes received in order (plus the peer's FIN).
    pub bytes_received: u64,
    /// `tcpi_bytes_sent`: payload bytes transmitted, retransmissions included.
    pub bytes_sent: u64,
    /// `tcpi_bytes_retrans`: payload bytes retransmitted.
    pub bytes_retrans: u64,
}

impl TcpCounters {
    /// Payload bytes transmitted at least once.
    pub fn unique_sent(&self) -> u64 {
        self.bytes_sent.saturating_sub(self.bytes_retrans)
    }
}

/// A TCP state, as numbered by the kernel (`include/net/tcp_states.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpState(pub u8);

impl TcpState {
    pub const ESTABLISHED: TcpState = TcpState(1);
    pub const SYN_SENT: TcpState = TcpState(2);
    pub const SYN_RECV: TcpState = TcpState(3);
    pub const FIN_WAIT1: TcpState = TcpState(4);
    pub const FIN_WAIT2: TcpState = TcpState(5);
    pub const TIME_WAIT: TcpState = TcpState(6);
    pub const CLOSE: TcpState = TcpState(7);
    pub const CLOSE_WAIT: TcpState = TcpState(8);
    pub const LAST_ACK: TcpState = TcpState(9);
    pub const LISTEN: TcpState = TcpState(10);
    pub const CLOSING: TcpState = TcpState(11);

    /// The state's name as `ss` prints it.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "ESTAB",
            2 => "SYN-SENT",
            3 => "SYN-RECV",
            4 => "FIN-WAIT-1",
            5 => "FIN-WAIT-2",
            6 => "TIME-WAIT",
            7 => "CLOSED",
            8 => "CLOSE-WAIT",
            9 => "LAST-ACK",
            10 => "LISTEN",
            11 => "CLOSING",
            _ => "UNKNOWN",
        }
    }

    /// States reached only after the peer's FIN arrived (so `bytes_received` counts it).
    pub fn fin_received(self) -> bool {
        matches!(
            self,
            TcpState::CLOSE_WAIT | TcpState::LAST_ACK | TcpState::CLOSING | TcpState::TIME_WAIT
        )
    }
}

/// One TCP socket as the kernel reports it, live or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSample {
    /// The kernel's socket cookie: unique per socket until reboot.
    pub cookie: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: TcpState,
    /// Inode of the socket file; 0 once no process holds it (closed, still finishing).
    pub inode: u64,
    /// Owner's user id (0 in destroy events, which do not carry it).
    pub uid: u32,
    pub counters: TcpCounters,
}

/// A process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// The command name (`comm`).
    pub name: String,
}

/// Bytes through one network interface since boot (`/proc/net/dev`): all protocols, headers
/// included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Everything the OS told in one poll: the only input of the core.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Live TCP sockets, listeners included (TIME_WAIT sockets carry no counters and are left
    /// out).
    pub sockets: Vec<SocketSample>,
    /// Final counters of sockets freed since the previous poll (destroy events).
    pub closed: Vec<SocketSample>,
    /// Socket inode -> pid, for sockets whose owner was read. The core keeps each socket's
    /// owner once known, so a facade may report only mappings it did not report before.
    pub inode_owners: HashMap<u64, u32>,
    /// Socket cookie -> pid, learned as the process connected or listened (`ntm exec`).
    pub cookie_owners: Vec<(u64, u32)>,
    /// Processes alive now: at least those owning sockets (all of them to follow a process
    /// tree). A process the core knows that is not listed has exited.
    pub processes: Vec<ProcessInfo>,
    pub interfaces: Vec<InterfaceCounters>,
    /// Whether every process's file descriptors could be read (so an unmapped socket is not
    /// hidden by permissions).
    pub owners_complete: bool,
    /// Destroy events the kernel dropped since the previous poll (receive buffer overflow).
    pub lost_closed: u64,
}

/// The OS side: one call per poll.
pub trait Facade: Send {
    /// What the kernel reports now, and the sockets that closed since the previous call.
    fn observe(&mut self) -> Result<Observation, MonitorError>;
}

/// Which processes' file descriptors are read to map sockets to owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every process (`ntm top`).
    All,
    /// Only this process and its descendants (`ntm exec`).
    Tree(u32),
}

/// The platform's facade for `ntm top`.
pub fn system() -> Result<Box<dyn Facade>, MonitorError> {
    imp::system()
}

/// A command started under `ntm exec`, with the facade that watches it.
pub struct Traced {
    pub child: tokio::process::Child,
    pub facade: Box<dyn Facade>,
    /// Whether the command's connects and listens are traced as they happen (exact attribution
    /// of connections shorter than a poll); when false, ownership comes from polls alone.
    pub traced: bool,
    /// Why tracing is off, when it is.
    pub untraced_reason: Option<String>,
    /// The first observation, taken before the command started: feed it to the core first.
    pub baseline: Observation,
}

/// Starts `command` (stdio inherited) under observation: the facade is subscribed and has taken
/// its baseline before the command runs.
pub fn spawn_traced(command: tokio::process::Command) -> Result<Traced, MonitorError> {
    imp::spawn_traced(command)
}

/// Payload bytes of one socket, up and down; see the module docs for the rules.
///
/// `passive`: the socket was accepted by a listener (its SYN is not in `bytes_acked`).
/// `fin_seen`: it was seen in a state after the peer's FIN. `closed`: its counters are final.
/// `peer`: the counters of the other end, when it is on this machine.
pub fn payload(
    counters: &TcpCounters,
    passive: bool,
    fin_seen: bool,
    closed: bool,
    peer: Option<&TcpCounters>,
) -> (u64, u64) {
    let syn = u64::from(!passive && counters.bytes_acked > 0);
    let up = counters
        .bytes_acked
        .saturating_sub(syn)
        .min(counters.unique_sent());
    let down = match peer {
        Some(p) => counters.bytes_received.min(p.unique_sent()),
        None if fin_seen || (closed && counters.bytes_received > 0) => {
            counters.bytes_received - u64::from(counters.bytes_received > 0)
        }
        None => counters.bytes_received,
    };
    (up, down)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(acked: u64, received: u64, sent: u64, retrans: u64) -> TcpCounters {
        TcpCounters {
            bytes_acked: acked,
            bytes_received: received,
            bytes_sent: sent,
            bytes_retrans: retrans,
        }
    }

    #[test]
    fn client_counts_drop_syn_and_fin() {
        // Measured on Linux 6.18: a client sent 13 bytes and got 7; after an orderly close its
        // counters were acked 15 (13 + SYN + FIN), received 8 (7 + FIN).
        assert_eq!(payload(&c(15, 8, 13, 0), false, false, true, None), (13, 7));
        // The server end: acked 8 (7 + FIN), received 14 (13 + FIN).
        assert_eq!(payload(&c(8, 14, 7, 0), true, false, true, None), (7, 13));
    }

    #[test]
    fn retransmissions_are_counted_once() {
        assert_eq!(
            payload(&c(1001, 0, 1500, 500), false, false, false, None).0,
            1000
        );
    }

    #[test]
    fn bytes_in_flight_are_not_yet_up() {
        // 600 of 1000 bytes acknowledged (plus the SYN).
        assert_eq!(
            payload(&c(601, 0, 1000, 0), false, false, false, None).0,
            600
        );
    }

    #[test]
    fn the_peer_settles_the_fin() {
        let peer = c(0, 0, 7, 0);
        assert_eq!(
            payload(&c(15, 8, 13, 0), false, false, true, Some(&peer)).1,
            7
        );
        // Closed before the peer's FIN arrived: nothing to subtract.
        assert_eq!(
            payload(&c(14, 7, 13, 0), false, false, true, Some(&peer)).1,
            7
        );
    }

    #[test]
    fn live_sockets_subtract_the_fin_only_after_it_came() {
        assert_eq!(payload(&c(1, 7, 0, 0), false, false, false, None).1, 7);
        assert_eq!(payload(&c(1, 8, 0, 0), false, true, false, None).1, 7);
        assert_eq!(payload(&c(0, 0, 0, 0), false, false, true, None), (0, 0));
    }
}
