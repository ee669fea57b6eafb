//! The core of `ntm top` and `ntm exec`: per-socket counters in, per-process totals, rates,
//! connection lists and process trees out. Pure: no clock (elapsed time is passed in), no
//! socket, no file, so tests drive it with hand-made [`Observation`]s.
//!
//! Totals are "since start": a socket that already existed at the first poll counts from its
//! counters then; later sockets count from zero. A closed socket's final counters (its destroy
//! event) stay with it for a few polls, so its peer's final counters can settle its FIN, then
//! fold into its owner's totals: a process that exits keeps its totals, and a connection shorter
//! than a poll is counted in full.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::{payload, Observation, SocketSample, TcpState};

/// Who a socket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Process(u32),
    /// Held by a process whose file descriptors this user may not read.
    NeedsRoot,
    /// No process could be found: the socket closed before a poll saw its owner, or its owner
    /// exited.
    Unattributed,
}

impl Owner {
    /// The name shown for owners that are not a process.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Owner::Process(_) => None,
            Owner::NeedsRoot => Some("unknown (needs root)"),
            Owner::Unattributed => Some("unattributed (closed before seen)"),
        }
    }

    pub fn pid(self) -> Option<u32> {
        match self {
            Owner::Process(pid) => Some(pid),
            _ => None,
        }
    }
}

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Polls a closed socket is kept before it folds into its owner's totals (its peer's final
    /// counters usually arrive within one).
    pub retain_closed_polls: u64,
    /// Keep totals per remote endpoint (for `ntm exec`'s list of peers).
    pub track_peers: bool,
    /// List at most this many connections per process in snapshots, the busiest (0: none,
    /// which saves work with tens of thousands of sockets).
    pub connections_listed: usize,
    /// Forget exited processes that own nothing (a long `ntm top`); off to keep process trees
    /// whole (`ntm exec`: a shell between the command and its children may exit first).
    pub forget_exited: bool,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            retain_closed_polls: 3,
            track_peers: false,
            connections_listed: 100,
            forget_exited: true,
        }
    }
}

/// One connection of a process in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: &'static str,
    /// Payload bytes since start.
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub up_bits_per_second: f64,
    pub down_bits_per_second: f64,
    pub closed: bool,
}

/// One owner (a process, or an unknown bucket) in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessRow {
    pub owner: Owner,
    pub pid: Option<u32>,
    pub ppid: Option<u32>,
    pub name: String,
    /// The process has exited; its totals are final.
    pub exited: bool,
    /// Payload bytes since start.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Rate over the last interval.
    pub up_bits_per_second: f64,
    pub down_bits_per_second: f64,
    /// Connections open now (listeners not counted).
    pub open_connections: usize,
    /// Connections seen since start, open or closed.
    pub connections_total: u64,
    pub connections: Vec<ConnectionRow>,
}

/// An interface's bytes since start and its rate (all protocols, headers included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfaceRow {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_bits_per_second: f64,
    pub tx_bits_per_second: f64,
}

/// The state after one poll.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Time since the first poll.
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Time since the previous poll (zero at the first).
    #[serde(rename = "interval_seconds", serialize_with = "seconds")]
    pub interval: Duration,
    pub processes: Vec<ProcessRow>,
    pub interfaces: Vec<InterfaceRow>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub up_bits_per_second: f64,
    pub down_bits_per_second: f64,
    /// Every process's sockets could be mapped (else some are "unknown (needs root)").
    pub owners_complete: bool,
    /// Destroy events the kernel dropped since start: some closed sockets' last bytes are
    /// missing.
    pub lost_closed: u64,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Traffic of a set of processes (a process tree) with one remote endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerRow {
    pub remote: Option<SocketAddr>,
    pub connections: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// Traffic of a set of processes since start.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupSummary {
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Connections that were established (listeners and failed connects not counted).
    pub connections: u64,
    /// Sockets of the group still open (listeners included).
    pub open_sockets: usize,
    /// By remote endpoint, most bytes first (only with [`MonitorOptions::track_peers`]).
    pub peers: Vec<PeerRow>,
}

/// Hashing for maps keyed by socket cookie. Cookies are assigned by the kernel, not chosen by
/// peers, so a fast multiplicative hash is safe here, and with tens of thousands of sockets a
/// poll spends noticeably less time than with SipHash.
#[derive(Clone, Copy, Default)]
struct CookieHash;

impl std::hash::BuildHasher for CookieHash {
    type Hasher = CookieHasher;
    fn build_hasher(&self) -> CookieHasher {
        CookieHasher(0)
    }
}

struct CookieHasher(u64);

impl std::hash::Hasher for CookieHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // FxHash's step: rotate, xor, multiply by a large odd constant.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A connection that may be listed: cookie, payload since start (up, down), rates.
type Candidate = (u64, (u64, u64), (f64, f64));

struct Tracked {
    sample: SocketSample,
    owner: Owner,
    passive: bool,
    fin_seen: bool,
    connected: bool,
    /// The poll at which the socket closed (destroy event, or gone from the table for good).
    closed_at: Option<u64>,
    /// Polls in a row the socket was missing from the table without a destroy event.
    missing: u64,
    /// The last poll that reported the socket.
    last_seen: u64,
    /// Seen listening (kept once its destroy event says CLOSE).
    listener: bool,
    baseline: (u64, u64),
    previous: (u64, u64),
}

impl Tracked {
    fn listening(&self) -> bool {
        self.listener
    }
}

/// Polls a socket may be missing from the table, without a destroy event, before it is taken
/// as closed with the counters last seen.
const MISSING_POLLS: u64 = 20;

#[derive(Default)]
struct Folded {
    up: u64,
    down: u64,
    connections: u64,
    peers: HashMap<SocketAddr, PeerRow>,
}

struct ProcessEntry {
    ppid: u32,
    name: String,
    alive: bool,
}

struct InterfaceEntry {
    first: (u64, u64),
    previous: (u64, u64),
    now: (u64, u64),
}

/// The aggregation state; feed it one [`Observation`] per poll with [`Monitor::update`].
pub struct Monitor {
    options: MonitorOptions,
    polls: u64,
    sockets: HashMap<u64, Tracked, CookieHash>,
    by_tuple: HashMap<(SocketAddr, SocketAddr), u64>,
    listeners: HashMap<u16, Vec<(IpAddr, Owner)>>,
    cookie_owners: HashMap<u64, u32, CookieHash>,
    processes: HashMap<u32, ProcessEntry>,
    folded: HashMap<Owner, Folded>,
    previous_totals: HashMap<Owner, (u64, u64)>,
    interfaces: Vec<(String, InterfaceEntry)>,
    first_at: Option<Duration>,
    last_at: Option<Duration>,
    lost_closed: u64,
    owners_complete: bool,
}

impl Monitor {
    pub fn new(options: MonitorOptions) -> Monitor {
        Monitor {
            options,
            polls: 0,
            sockets: HashMap::default(),
            by_tuple: HashMap::new(),
            listeners: HashMap::new(),
            cookie_owners: HashMap::default(),
            processes: HashMap::new(),
            folded: HashMap::new(),
            previous_totals: HashMap::new(),
            interfaces: Vec::new(),
            first_at: None,
            last_at: None,
            lost_closed: 0,
            owners_complete: true,
        }
    }

    /// Takes one poll's observation, made `at` (time since any fixed origin), and returns the
    /// state after it.
    pub fn update(&mut self, obs: Observation, at: Duration) -> Snapshot {
        let first = self.polls == 0;
        self.polls += 1;
        let interval = self
            .last_at
            .map_or(Duration::ZERO, |l| at.saturating_sub(l));
        let first_at = *self.first_at.get_or_insert(at);
        self.owners_complete = obs.owners_complete;
        self.lost_closed += obs.lost_closed;
        self.absorb_processes(&obs);
        self.cookie_owners.extend(obs.cookie_owners.iter().copied());

        // Listeners first, so the sockets they accepted are known as passive. The table holds
        // the listeners tracked now, recently closed ones included (their accepted sockets'
        // destroy events may come in the same poll).
        for s in obs.sockets.iter().filter(|s| s.state == TcpState::LISTEN) {
            self.absorb(s, &obs, first, false);
        }
        self.listeners.clear();
        for t in self.sockets.values().filter(|t| t.listener) {
            let local = t.sample.local;
            let entry = self.listeners.entry(local.port()).or_default();
            entry.retain(|(ip, _)| *ip != local.ip());
            entry.push((local.ip(), t.owner));
        }
        for s in obs.sockets.iter().filter(|s| s.state != TcpState::LISTEN) {
            self.absorb(s, &obs, first, false);
        }
        for s in &obs.closed {
            self.absorb(s, &obs, first, true);
        }
        let polls = self.polls;
        for t in self.sockets.values_mut() {
            if t.closed_at.is_none() && t.last_seen != polls {
                // Gone without a destroy event yet: the event may still be on its way (it comes
                // from a kernel work queue). Given up on only after long enough that it was
                // lost, since counting it after folding would count the socket twice.
                t.missing += 1;
                if t.missing > MISSING_POLLS {
                    t.closed_at = Some(polls);
                }
            }
        }
        self.fold_closed();
        // Now and then: the set costs a pass over every socket.
        if self.options.forget_exited && self.polls % 16 == 0 {
            let owning: HashSet<u32> = self
                .sockets
                .values()
                .map(|t| t.owner)
                .chain(self.folded.keys().copied())
                .filter_map(Owner::pid)
                .collect();
            self.processes
                .retain(|pid, e| e.alive || owning.contains(pid));
        }
        let mut snapshot = self.snapshot(&obs, interval, first);
        snapshot.elapsed = at.saturating_sub(first_at);
        self.last_at = Some(at);
        snapshot
    }

    /// Processes listed are alive; those not listed have exited.
    fn absorb_processes(&mut self, obs: &Observation) {
        for entry in self.processes.values_mut() {
            entry.alive = false;
        }
        for p in &obs.processes {
            // The first parent is kept: a process reparented when its parent exits still
            // belongs to the tree it was born in.
            self.processes
                .entry(p.pid)
                .and_modify(|e| {
                    e.alive = true;
                    if e.name != p.name {
                        e.name.clone_from(&p.name);
                    }
                })
                .or_insert_with(|| ProcessEntry {
                    ppid: p.ppid,
                    name: p.name.clone(),
                    alive: true,
                });
        }
    }

    /// The owner of a socket seen for the first time (or still unowned).
    fn resolve(&self, s: &SocketSample, obs: &Observation) -> Owner {
        if let Some(&pid) = self.cookie_owners.get(&s.cookie) {
            return Owner::Process(pid);
        }
        if s.inode != 0 {
            if let Some(&pid) = obs.inode_owners.get(&s.inode) {
                return Owner::Process(pid);
            }
        }
        if s.state != TcpState::LISTEN {
            if let Some(owner) = self.listener_of(s) {
                if owner.pid().is_some() {
                    return owner;
                }
            }
        }
        if s.inode != 0 && !obs.owners_complete {
            Owner::NeedsRoot
        } else {
            Owner::Unattributed
        }
    }

    /// The listener a socket was accepted from, if any: same port, same or wildcard address.
    fn listener_of(&self, s: &SocketSample) -> Option<Owner> {
        let list = self.listeners.get(&s.local.port())?;
        let exact = list.iter().find(|(ip, _)| *ip == s.local.ip());
        exact
            .or_else(|| list.iter().find(|(ip, _)| ip.is_unspecified()))
            .map(|(_, owner)| *owner)
    }

    fn absorb(&mut self, s: &SocketSample, obs: &Observation, first: bool, closed: bool) {
        let polls = self.polls;
        let connected = |s: &SocketSample| {
            s.counters.bytes_received > 0
                || s.counters.bytes_acked > 0
                || matches!(
                    s.state,
                    TcpState::ESTABLISHED
                        | TcpState::FIN_WAIT1
                        | TcpState::FIN_WAIT2
                        | TcpState::CLOSE_WAIT
                        | TcpState::LAST_ACK
                        | TcpState::CLOSING
                )
        };
        if let Some(t) = self.sockets.get_mut(&s.cookie) {
            t.missing = 0;
            t.last_seen = polls;
            t.fin_seen |= s.state.fin_received();
            t.connected |= connected(s);
            if closed {
                // Destroy events carry neither inode nor uid: keep what the polls saw.
                let (inode, uid) = (t.sample.inode, t.sample.uid);
                t.sample = s.clone();
                t.sample.inode = inode;
                t.sample.uid = uid;
                t.closed_at = Some(polls);
            } else if t.closed_at.is_none() {
                t.sample = s.clone();
            }
            if t.owner.pid().is_none() {
                let owner = self.resolve(s, obs);
                if let Some(t) = self.sockets.get_mut(&s.cookie) {
                    t.owner = owner;
                }
            }
            return;
        }
        let passive = s.state == TcpState::SYN_RECV
            || (s.state != TcpState::LISTEN && self.listener_of(s).is_some());
        let owner = self.resolve(s, obs);
        let mut t = Tracked {
            sample: s.clone(),
            owner,
            passive,
            fin_seen: s.state.fin_received(),
            connected: connected(s),
            closed_at: closed.then_some(polls),
            missing: 0,
            last_seen: polls,
            listener: s.state == TcpState::LISTEN,
            baseline: (0, 0),
            previous: (0, 0),
        };
        if first {
            // Existed before monitoring began: count from here. (A destroy event in the first
            // poll is a socket that was closing as monitoring began.)
            let p = payload(
                &s.counters,
                passive,
                t.fin_seen,
                closed,
                self.peer_counters(s).as_ref(),
            );
            t.baseline = p;
            t.previous = p;
        }
        if s.state != TcpState::LISTEN {
            self.by_tuple.insert((s.local, s.remote), s.cookie);
        }
        self.sockets.insert(s.cookie, t);
    }

    fn peer_counters(&self, s: &SocketSample) -> Option<super::TcpCounters> {
        let cookie = self.by_tuple.get(&(s.remote, s.local))?;
        self.sockets.get(cookie).map(|p| p.sample.counters)
    }

    /// Payload of a tracked socket since start.
    fn counted(&self, t: &Tracked) -> (u64, u64) {
        if t.listening() {
            return (0, 0);
        }
        let peer = self.peer_counters(&t.sample);
        let (up, down) = payload(
            &t.sample.counters,
            t.passive,
            t.fin_seen,
            t.closed_at.is_some(),
            peer.as_ref(),
        );
        (
            up.saturating_sub(t.baseline.0),
            down.saturating_sub(t.baseline.1),
        )
    }

    fn fold_closed(&mut self) {
        let polls = self.polls;
        let retain = self.options.retain_closed_polls;
        let done: Vec<u64> = self
            .sockets
            .values()
            .filter(|t| t.closed_at.is_some_and(|c| polls >= c + retain))
            .map(|t| t.sample.cookie)
            .collect();
        for cookie in &done {
            let t = &self.sockets[cookie];
            let (up, down) = self.counted(t);
            let (owner, remote, connected, listening) =
                (t.owner, t.sample.remote, t.connected, t.listening());
            let folded = self.folded.entry(owner).or_default();
            folded.up += up;
            folded.down += down;
            if connected && !listening {
                folded.connections += 1;
                if self.options.track_peers {
                    let peer = folded.peers.entry(remote).or_default();
                    peer.remote = Some(remote);
                    peer.connections += 1;
                    peer.bytes_up += up;
                    peer.bytes_down += down;
                }
            }
        }
        for cookie in done {
            if let Some(t) = self.sockets.remove(&cookie) {
                let key = (t.sample.local, t.sample.remote);
                if self.by_tuple.get(&key) == Some(&cookie) {
                    self.by_tuple.remove(&key);
                }
                self.cookie_owners.remove(&cookie);
            }
        }
    }

    fn snapshot(&mut self, obs: &Observation, interval: Duration, first: bool) -> Snapshot {
        let secs = interval.as_secs_f64();
        let rate = |now: u64, before: u64| {
            if secs > 0.0 {
                now.saturating_sub(before) as f64 * 8.0 / secs
            } else {
                0.0
            }
        };
        let mut rows: HashMap<Owner, ProcessRow> = HashMap::new();
        let blank = |owner: Owner, this: &Monitor| -> ProcessRow {
            let entry = owner.pid().and_then(|pid| this.processes.get(&pid));
            ProcessRow {
                owner,
                pid: owner.pid(),
                ppid: entry.map(|e| e.ppid),
                name: owner.label().map_or_else(
                    || entry.map_or_else(|| "?".to_string(), |e| e.name.clone()),
                    str::to_string,
                ),
                exited: owner.pid().is_some() && !entry.is_some_and(|e| e.alive),
                bytes_up: 0,
                bytes_down: 0,
                up_bits_per_second: 0.0,
                down_bits_per_second: 0.0,
                open_connections: 0,
                connections_total: 0,
                connections: Vec::new(),
            }
        };
        for (owner, f) in &self.folded {
            let row = rows.entry(*owner).or_insert_with(|| blank(*owner, self));
            row.bytes_up += f.up;
            row.bytes_down += f.down;
            row.connections_total += f.connections;
        }
        let listed = self.options.connections_listed;
        let mut updates = Vec::with_capacity(self.sockets.len());
        // Per owner: (cookie, payload since start, rates) of each connection, to list the
        // busiest without building a row for every one of tens of thousands.
        let mut candidates: HashMap<Owner, Vec<Candidate>> = HashMap::new();
        for t in self.sockets.values() {
            if t.listening() {
                continue;
            }
            let (up, down) = self.counted(t);
            updates.push((t.sample.cookie, (up, down)));
            let row = rows.entry(t.owner).or_insert_with(|| blank(t.owner, self));
            row.bytes_up += up;
            row.bytes_down += down;
            if t.connected {
                row.connections_total += 1;
            }
            if t.closed_at.is_none() {
                row.open_connections += 1;
            }
            if listed > 0 {
                let rates = if first {
                    (0.0, 0.0)
                } else {
                    (rate(up, t.previous.0), rate(down, t.previous.1))
                };
                candidates
                    .entry(t.owner)
                    .or_default()
                    .push((t.sample.cookie, (up, down), rates));
            }
        }
        for (owner, mut list) in candidates {
            list.sort_by(|a, b| {
                (b.2 .0 + b.2 .1)
                    .total_cmp(&(a.2 .0 + a.2 .1))
                    .then((b.1 .0 + b.1 .1).cmp(&(a.1 .0 + a.1 .1)))
            });
            list.truncate(listed);
            let row = rows.get_mut(&owner).expect("a row per owner with sockets");
            row.connections = list
                .into_iter()
                .map(|(cookie, (up, down), (up_bps, down_bps))| {
                    let t = &self.sockets[&cookie];
                    let closed = t.closed_at.is_some();
                    ConnectionRow {
                        local: t.sample.local,
                        remote: t.sample.remote,
                        state: if closed {
                            TcpState::CLOSE.name()
                        } else {
                            t.sample.state.name()
                        },
                        bytes_up: up,
                        bytes_down: down,
                        up_bits_per_second: up_bps,
                        down_bits_per_second: down_bps,
                        closed,
                    }
                })
                .collect();
        }
        for (cookie, now) in updates {
            if let Some(t) = self.sockets.get_mut(&cookie) {
                t.previous = now;
            }
        }
        let mut processes: Vec<ProcessRow> = rows
            .into_values()
            .filter(|r| {
                r.bytes_up + r.bytes_down > 0 || r.open_connections > 0 || r.connections_total > 0
            })
            .collect();
        let mut totals = HashMap::new();
        for row in &mut processes {
            let before = self
                .previous_totals
                .get(&row.owner)
                .copied()
                .unwrap_or((0, 0));
            row.up_bits_per_second = rate(row.bytes_up, before.0);
            row.down_bits_per_second = rate(row.bytes_down, before.1);
            totals.insert(row.owner, (row.bytes_up, row.bytes_down));
        }
        self.previous_totals = totals;
        processes.sort_by(|a, b| {
            let ra = a.up_bits_per_second + a.down_bits_per_second;
            let rb = b.up_bits_per_second + b.down_bits_per_second;
            rb.total_cmp(&ra)
                .then((b.bytes_up + b.bytes_down).cmp(&(a.bytes_up + a.bytes_down)))
                .then(a.owner.cmp(&b.owner))
        });
        let interfaces = self.interfaces_rows(obs, &rate);
        let bytes_up = processes.iter().map(|p| p.bytes_up).sum();
        let bytes_down = processes.iter().map(|p| p.bytes_down).sum();
        // A fold, not sum(): an empty f64 sum is -0.0, which prints as "-0.00".
        let up_bits_per_second = processes.iter().fold(0.0, |a, p| a + p.up_bits_per_second);
        let down_bits_per_second = processes
            .iter()
            .fold(0.0, |a, p| a + p.down_bits_per_second);
        Snapshot {
            elapsed: Duration::ZERO,
            interval,
            processes,
            interfaces,
            bytes_up,
            bytes_down,
            up_bits_per_second,
            down_bits_per_second,
            owners_complete: self.owners_complete,
            lost_closed: self.lost_closed,
        }
    }

    fn interfaces_rows(
        &mut self,
        obs: &Observation,
        rate: &dyn Fn(u64, u64) -> f64,
    ) -> Vec<InterfaceRow> {
        for i in &obs.interfaces {
            let now = (i.rx_bytes, i.tx_bytes);
            match self.interfaces.iter_mut().find(|(n, _)| *n == i.name) {
                Some((_, e)) => {
                    e.previous = e.now;
                    e.now = now;
                }
                None => self.interfaces.push((
                    i.name.clone(),
                    InterfaceEntry {
                        first: now,
                        previous: now,
                        now,
                    },
                )),
            }
        }
        self.interfaces
            .iter()
            .map(|(name, e)| InterfaceRow {
                name: name.clone(),
                rx_bytes: e.now.0.saturating_sub(e.first.0),
                tx_bytes: e.now.1.saturating_sub(e.first.1),
                rx_bits_per_second: rate(e.now.0, e.previous.0),
                tx_bits_per_second: rate(e.now.1, e.previous.1),
            })
            .collect()
    }

    /// `root` and every process seen descending from it (exited ones included).
    pub fn descendants(&self, root: u32) -> HashSet<u32> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, e) in &self.processes {
            children.entry(e.ppid).or_default().push(pid);
        }
        let mut out = HashSet::from([root]);
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            for &child in children.get(&pid).into_iter().flatten() {
                if out.insert(child) {
                    stack.push(child);
                }
            }
        }
        out
    }

    /// Traffic since start of the sockets owned by `members`.
    pub fn group(&self, members: &HashSet<u32>) -> GroupSummary {
        let mut g = GroupSummary::default();
        let mut peers: HashMap<SocketAddr, PeerRow> = HashMap::new();
        for (owner, f) in &self.folded {
            if !owner.pid().is_some_and(|p| members.contains(&p)) {
                continue;
            }
            g.bytes_up += f.up;
            g.bytes_down += f.down;
            g.connections += f.connections;
            for (remote, p) in &f.peers {
                let e = peers.entry(*remote).or_default();
                e.remote = Some(*remote);
                e.connections += p.connections;
                e.bytes_up += p.bytes_up;
                e.bytes_down += p.bytes_down;
            }
        }
        for t in self.sockets.values() {
            if !t.owner.pid().is_some_and(|p| members.contains(&p)) {
                continue;
            }
            if t.closed_at.is_none() {
                g.open_sockets += 1;
            }
            if t.listening() {
                continue;
            }
            let (up, down) = self.counted(t);
            g.bytes_up += up;
            g.bytes_down += down;
            if t.connected {
                g.connections += 1;
                if self.options.track_peers {
                    let e = peers.entry(t.sample.remote).or_default();
                    e.remote = Some(t.sample.remote);
                    e.connections += 1;
                    e.bytes_up += up;
                    e.bytes_down += down;
                }
            }
        }
        g.peers = peers.into_values().collect();
        g.peers.sort_by(|a, b| {
            (b.bytes_up + b.bytes_down)
                .cmp(&(a.bytes_up + a.bytes_down))
                .then(a.remote.cmp(&b.remote))
        });
        g
    }

    /// Whether sockets of `members` are still open or awaiting their final counters (closed
    /// ones are kept a few polls for their peer's counters).
    pub fn settling(&self, members: &HashSet<u32>) -> bool {
        self.sockets
            .values()
            .any(|t| t.owner.pid().is_some_and(|p| members.contains(&p)))
    }
}
