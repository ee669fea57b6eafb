//! The core of `ntm top` / `ntm exec`, fed from a fake facade: no sockets, no /proc, no clock.
//! Each test scripts what the kernel would report poll by poll and checks the totals, rates and
//! owners that come out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use ntm::monitor::{
    Facade, Monitor, MonitorError, MonitorOptions, Observation, Owner, ProcessInfo, Snapshot,
    SocketSample, TcpCounters, TcpState,
};

/// A facade that replays scripted observations.
struct FakeFacade {
    script: VecDeque<Observation>,
}

impl Facade for FakeFacade {
    fn observe(&mut self) -> Result<Observation, MonitorError> {
        Ok(self.script.pop_front().unwrap_or_default())
    }
}

/// Runs the script through a monitor, one poll per second; returns every snapshot.
fn run(script: Vec<Observation>, options: MonitorOptions) -> (Monitor, Vec<Snapshot>) {
    let n = script.len();
    let mut facade = FakeFacade {
        script: script.into(),
    };
    let mut monitor = Monitor::new(options);
    let snapshots = (0..n)
        .map(|i| {
            let obs = facade.observe().unwrap();
            monitor.update(obs, Duration::from_secs(i as u64))
        })
        .collect();
    (monitor, snapshots)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn counters(acked: u64, received: u64, sent: u64) -> TcpCounters {
    TcpCounters {
        bytes_acked: acked,
        bytes_received: received,
        bytes_sent: sent,
        bytes_retrans: 0,
    }
}

fn socket(
    cookie: u64,
    local: &str,
    remote: &str,
    state: TcpState,
    inode: u64,
    c: TcpCounters,
) -> SocketSample {
    SocketSample {
        cookie,
        local: addr(local),
        remote: addr(remote),
        state,
        inode,
        uid: 1000,
        counters: c,
    }
}

fn process(pid: u32, ppid: u32, name: &str) -> ProcessInfo {
    ProcessInfo {
        pid,
        ppid,
        name: name.into(),
    }
}

fn row(s: &Snapshot, owner: Owner) -> &ntm::monitor::ProcessRow {
    s.processes
        .iter()
        .find(|p| p.owner == owner)
        .unwrap_or_else(|| panic!("no row for {owner:?} in {:#?}", s.processes))
}

fn procs(list: &[(u32, u32, &str)]) -> Vec<ProcessInfo> {
    list.iter().map(|&(p, pp, n)| process(p, pp, n)).collect()
}

#[test]
fn rates_and_totals_count_from_the_first_poll() {
    let client = |acked, sent| {
        socket(
            1,
            "10.0.0.1:40000",
            "10.0.0.2:443",
            TcpState::ESTABLISHED,
            77,
            counters(acked, 0, sent),
        )
    };
    let owners = HashMap::from([(77, 42)]);
    let poll = |s: SocketSample| Observation {
        sockets: vec![s],
        inode_owners: owners.clone(),
        processes: procs(&[(42, 1, "curl")]),
        owners_complete: true,
        ..Observation::default()
    };
    // Already 1 MB sent when monitoring starts; then 125,000 bytes a second.
    let (_, snaps) = run(
        vec![
            poll(client(1_000_001, 1_000_000)),
            poll(client(1_125_001, 1_125_000)),
            poll(client(1_250_001, 1_250_000)),
        ],
        MonitorOptions::default(),
    );
    let first = row(&snaps[0], Owner::Process(42));
    assert_eq!(
        first.bytes_up, 0,
        "bytes before the first poll are not counted"
    );
    let last = row(&snaps[2], Owner::Process(42));
    assert_eq!(last.bytes_up, 250_000);
    assert_eq!(last.up_bits_per_second, 1_000_000.0);
    assert_eq!(last.name, "curl");
    assert_eq!(last.open_connections, 1);
}

#[test]
fn a_connection_shorter_than_a_poll_is_counted_in_full() {
    // Opened and closed between two polls: only its destroy event is ever seen, and the
    // tracer of `ntm exec` named its owner by cookie.
    let closed = socket(
        9,
        "127.0.0.1:50000",
        "127.0.0.1:8080",
        TcpState::CLOSE,
        0,
        counters(1_000 + 2, 5_000 + 1, 1_000),
    );
    let (monitor, snaps) = run(
        vec![
            Observation {
                processes: procs(&[(100, 1, "sh")]),
                owners_complete: true,
                ..Observation::default()
            },
            Observation {
                closed: vec![closed],
                cookie_owners: vec![(9, 101)],
                processes: procs(&[(100, 1, "sh"), (101, 100, "client")]),
                owners_complete: true,
                ..Observation::default()
            },
        ],
        MonitorOptions {
            track_peers: true,
            ..MonitorOptions::default()
        },
    );
    let r = row(&snaps[1], Owner::Process(101));
    assert_eq!((r.bytes_up, r.bytes_down), (1_000, 5_000));
    let tree = monitor.descendants(100);
    assert_eq!(tree, HashSet::from([100, 101]));
    let g = monitor.group(&tree);
    assert_eq!((g.bytes_up, g.bytes_down, g.connections), (1_000, 5_000, 1));
    assert_eq!(g.peers.len(), 1);
    assert_eq!(g.peers[0].remote, Some(addr("127.0.0.1:8080")));
}

#[test]
fn an_exited_process_keeps_its_final_totals() {
    let live = |acked, received| {
        socket(
            5,
            "10.0.0.1:40001",
            "10.0.0.9:80",
            TcpState::ESTABLISHED,
            55,
            counters(acked, received, acked - 1),
        )
    };
    let with_owner = |s: SocketSample, alive: bool| Observation {
        sockets: vec![s],
        inode_owners: HashMap::from([(55, 7)]),
        processes: if alive {
            procs(&[(7, 1, "wget")])
        } else {
            procs(&[(1, 0, "init")])
        },
        owners_complete: true,
        ..Observation::default()
    };
    let gone = |closed: Vec<SocketSample>| Observation {
        closed,
        processes: procs(&[(1, 0, "init")]),
        owners_complete: true,
        ..Observation::default()
    };
    let (_, snaps) = run(
        vec![
            with_owner(live(1, 0), true),
            with_owner(live(301, 4_000), true),
            // The process exits: the socket's final counters arrive as a destroy event (FIN
            // from the peer counted in bytes_received, our FIN in bytes_acked).
            gone(vec![socket(
                5,
                "10.0.0.1:40001",
                "10.0.0.9:80",
                TcpState::CLOSE,
                0,
                counters(502, 9_001, 500),
            )]),
            gone(vec![]),
            gone(vec![]),
            gone(vec![]),
            gone(vec![]),
        ],
        MonitorOptions::default(),
    );
    for (i, s) in snaps.iter().enumerate().skip(2) {
        let r = row(s, Owner::Process(7));
        assert_eq!((r.bytes_up, r.bytes_down), (500, 9_000), "poll {i}: {r:?}");
        assert!(r.exited, "poll {i}");
        assert_eq!(r.name, "wget");
        assert_eq!(r.open_connections, 0);
    }
    // The last bytes show as a rate in the interval they arrived in, not lost.
    assert_eq!(
        row(&snaps[2], Owner::Process(7)).up_bits_per_second,
        200.0 * 8.0
    );
    assert_eq!(row(&snaps[6], Owner::Process(7)).up_bits_per_second, 0.0);
}

#[test]
fn sockets_of_unreadable_processes_are_unknown_needs_root() {
    let s = socket(
        3,
        "10.0.0.1:22",
        "10.0.0.5:51000",
        TcpState::ESTABLISHED,
        99,
        counters(0, 0, 0),
    );
    let mut later = s.clone();
    later.counters = counters(700, 300, 700);
    // sshd's listener and accepted socket, both unreadable to this user.
    let listener = socket(
        2,
        "0.0.0.0:22",
        "0.0.0.0:0",
        TcpState::LISTEN,
        98,
        TcpCounters::default(),
    );
    let obs = |s: SocketSample| Observation {
        sockets: vec![listener.clone(), s],
        owners_complete: false,
        ..Observation::default()
    };
    let (_, snaps) = run(vec![obs(s), obs(later)], MonitorOptions::default());
    let r = row(&snaps[1], Owner::NeedsRoot);
    assert_eq!(r.name, "unknown (needs root)");
    assert_eq!((r.bytes_up, r.bytes_down), (700, 300));
    assert!(!snaps[1].owners_complete);
}

#[test]
fn the_peer_on_this_machine_settles_the_fin_exactly() {
    // Both ends on loopback, both closed between polls. The client closed first and its
    // socket was freed before the server's FIN arrived (so its bytes_received has no FIN);
    // the server end received the client's FIN. Only the peers' counters tell them apart.
    let client = socket(
        11,
        "127.0.0.1:41000",
        "127.0.0.1:9000",
        TcpState::CLOSE,
        0,
        counters(1 + 100 + 1, 2_000, 100),
    );
    let server = socket(
        12,
        "127.0.0.1:9000",
        "127.0.0.1:41000",
        TcpState::CLOSE,
        0,
        counters(2_000, 100 + 1, 2_000),
    );
    let listener = socket(
        10,
        "127.0.0.1:9000",
        "0.0.0.0:0",
        TcpState::LISTEN,
        500,
        TcpCounters::default(),
    );
    let obs = |sockets: Vec<SocketSample>, closed: Vec<SocketSample>| Observation {
        sockets,
        closed,
        inode_owners: HashMap::from([(500, 20)]),
        cookie_owners: vec![(11, 21)],
        processes: procs(&[(20, 1, "server"), (21, 1, "client")]),
        owners_complete: true,
        ..Observation::default()
    };
    let (_, snaps) = run(
        vec![
            obs(vec![listener.clone()], vec![]),
            obs(vec![listener.clone()], vec![client, server]),
            obs(vec![listener.clone()], vec![]),
            obs(vec![listener.clone()], vec![]),
            obs(vec![listener], vec![]),
        ],
        MonitorOptions::default(),
    );
    let last = snaps.last().unwrap();
    let c = row(last, Owner::Process(21));
    assert_eq!((c.bytes_up, c.bytes_down), (100, 2_000));
    // The accepted end is the listener's process's, and its SYN is not in bytes_acked.
    let s = row(last, Owner::Process(20));
    assert_eq!((s.bytes_up, s.bytes_down), (2_000, 100));
}

#[test]
fn retransmitted_bytes_count_once() {
    let c = TcpCounters {
        bytes_acked: 1 + 10_000,
        bytes_received: 0,
        bytes_sent: 12_000,
        bytes_retrans: 2_000,
    };
    let obs = |c: TcpCounters| Observation {
        sockets: vec![socket(
            1,
            "10.0.0.1:40000",
            "10.0.0.2:80",
            TcpState::ESTABLISHED,
            1,
            c,
        )],
        inode_owners: HashMap::from([(1, 5)]),
        owners_complete: true,
        ..Observation::default()
    };
    let (_, snaps) = run(
        vec![obs(TcpCounters::default()), obs(c)],
        MonitorOptions::default(),
    );
    assert_eq!(row(&snaps[1], Owner::Process(5)).bytes_up, 10_000);
}

#[test]
fn a_socket_closed_before_any_poll_saw_its_owner_is_unattributed_but_counted() {
    let closed = socket(
        4,
        "10.0.0.1:40002",
        "10.0.0.3:443",
        TcpState::CLOSE,
        0,
        counters(1 + 50, 80 + 1, 50),
    );
    let (_, snaps) = run(
        vec![
            Observation::default(),
            Observation {
                closed: vec![closed],
                owners_complete: true,
                ..Observation::default()
            },
        ],
        MonitorOptions::default(),
    );
    let r = row(&snaps[1], Owner::Unattributed);
    assert_eq!((r.bytes_up, r.bytes_down), (50, 80));
    assert_eq!((snaps[1].bytes_up, snaps[1].bytes_down), (50, 80));
}

#[test]
fn interfaces_count_from_the_first_poll() {
    let obs = |rx, tx| Observation {
        interfaces: vec![ntm::monitor::InterfaceCounters {
            name: "eth0".into(),
            rx_bytes: rx,
            tx_bytes: tx,
        }],
        ..Observation::default()
    };
    let (_, snaps) = run(
        vec![obs(1_000, 500), obs(126_000, 625)],
        MonitorOptions::default(),
    );
    let i = &snaps[1].interfaces[0];
    assert_eq!((i.rx_bytes, i.tx_bytes), (125_000, 125));
    assert_eq!(i.rx_bits_per_second, 1_000_000.0);
}

#[test]
fn accepted_connections_stay_with_a_listener_that_closed_in_the_same_poll() {
    let listener = socket(
        30,
        "127.0.0.1:7000",
        "0.0.0.0:0",
        TcpState::LISTEN,
        700,
        TcpCounters::default(),
    );
    let mut listener_closed = listener.clone();
    listener_closed.state = TcpState::CLOSE;
    listener_closed.inode = 0;
    // Accepted and closed between two polls: its SYN is not in bytes_acked.
    let accepted = socket(
        31,
        "127.0.0.1:7000",
        "10.1.1.1:50000",
        TcpState::CLOSE,
        0,
        counters(4_000 + 1, 300 + 1, 4_000),
    );
    let (_, snaps) = run(
        vec![
            Observation {
                sockets: vec![listener],
                inode_owners: HashMap::from([(700, 70)]),
                processes: procs(&[(70, 1, "server")]),
                owners_complete: true,
                ..Observation::default()
            },
            Observation {
                closed: vec![listener_closed, accepted],
                processes: procs(&[(70, 1, "server")]),
                owners_complete: true,
                ..Observation::default()
            },
        ],
        MonitorOptions::default(),
    );
    let r = row(&snaps[1], Owner::Process(70));
    assert_eq!((r.bytes_up, r.bytes_down), (4_000, 300));
}

#[test]
fn a_process_reparented_when_its_parent_exits_stays_in_the_tree() {
    let (monitor, _) = run(
        vec![
            Observation {
                processes: procs(&[(100, 1, "sh"), (101, 100, "sh"), (102, 101, "daemon")]),
                ..Observation::default()
            },
            // 101 exits; its child is reparented to init.
            Observation {
                processes: procs(&[(100, 1, "sh"), (102, 1, "daemon")]),
                ..Observation::default()
            },
        ],
        MonitorOptions {
            forget_exited: false,
            ..MonitorOptions::default()
        },
    );
    assert_eq!(monitor.descendants(100), HashSet::from([100, 101, 102]));
}
