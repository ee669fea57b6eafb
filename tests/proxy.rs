//! End-to-end tests of the measuring and shaping proxy (issue 4): byte-exact relaying under
//! churn, half-closes and resets that propagate, upstream failure without leaked descriptors,
//! backpressure toward a stalled client, shaping accuracy, flights, and the command line (bad
//! input, NDJSON, recordings, the plot and the metrics endpoint).
//!
//! Library tests run `ntm::proxy::run` on port 0; command-line tests run the `ntm` binary with
//! `--listen 127.0.0.1:0` and read the bound address from its start line. Real time, not
//! `tokio::time::pause()`: bytes cross real sockets, and only the shaping tests measure time, with
//! tolerances that hold on a busy 2-core machine. Random choices come from one seed, printed, and
//! taken from `NTM_TEST_SEED` when set, so a failure can be replayed.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::churn::{
    check_connection, churn, run_client, ClientPlan, HashingUpstream, Mode, DIE, DIE_AFTER,
};
use common::proxy::{
    exchange, fd_listing, in_a_process_of_its_own, is_reset, one_shot_upstream, open_fds,
    open_pipes, payload, ping, pings, random_pool, read_hashing, read_until_end, runtime, seed,
    sha, start_echo, start_sink_then_reply, ProxyProcess, TestProxy,
};
use common::{within, PROMPT};
use ntm::proxy::flights::Dir;
use ntm::proxy::link::LinkSpec;
use ntm::proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// 1. Byte-exact under churn
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_exact_under_churn_with_half_closes_and_resets() {
    churn(
        "byte_exact_under_churn",
        ProxyConfig::default(),
        1000,
        Duration::from_secs(120),
    )
    .await;
}

/// The shaped relay path (a reader, the emulated link's queue, a writer releasing chunks on
/// time) under the same churn: jitter draws a new delay per chunk, which must never reorder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_exact_under_churn_shaped_2gbit_1ms_jitter_1ms() {
    let link = LinkSpec {
        rate_bps: Some(2_000_000_000),
        delay: Duration::from_millis(1),
        jitter: Duration::from_millis(1),
    };
    let (reports, elapsed) = churn(
        "byte_exact_under_churn_shaped",
        ProxyConfig {
            up: link,
            down: link,
            ..ProxyConfig::default()
        },
        1000,
        Duration::from_secs(60),
    )
    .await;
    // Proof the shaped path ran. Every first byte left the emulated link at least its 1 ms
    // delay after the connection opened (unshaped, the quickest of 1000 takes microseconds);
    // and all connections together never beat the shared link's rate (a busy machine can only
    // make them slower; the 1% is the one-chunk burst).
    for dir in [Dir::Up, Dir::Down] {
        let (bytes, first): (u64, Vec<f64>) = match dir {
            Dir::Up => (
                reports.iter().map(|r| r.bytes_up).sum(),
                reports.iter().filter_map(|r| r.first_byte_up).collect(),
            ),
            Dir::Down => (
                reports.iter().map(|r| r.bytes_down).sum(),
                reports.iter().filter_map(|r| r.first_byte_down).collect(),
            ),
        };
        let quickest = first.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            quickest >= 1e-3,
            "{dir:?}: a first byte {:.3} ms after its connection opened, inside a 1 ms delay",
            quickest * 1e3
        );
        let bps = bytes as f64 * 8.0 / elapsed.as_secs_f64();
        assert!(
            bps <= 2e9 * 1.01,
            "{dir:?}: {:.2} Gbit/s through a 2 Gbit/s link",
            bps / 1e9
        );
    }
}

/// The `splice(2)` relay path (socket -> pipe -> socket) under the same churn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_exact_under_churn_splice() {
    churn(
        "byte_exact_under_churn_splice",
        ProxyConfig {
            splice: true,
            ..ProxyConfig::default()
        },
        1000,
        Duration::from_secs(120),
    )
    .await;
}

/// `splice: true` really takes the splice path: an open connection holds two pipes (one per
/// direction, two descriptors each) while it relays, none without it. Otherwise the churn test
/// above would pass just as well on the copying path it silently falls back to.
#[test]
fn splice_relays_through_a_pipe_each_way() {
    if !in_a_process_of_its_own("splice_relays_through_a_pipe_each_way") {
        return;
    }
    runtime().block_on(async {
        for (splice, pipe_fds) in [(false, 0), (true, 4)] {
            let (addr, accepted) = one_shot_upstream().await;
            let mut proxy = TestProxy::start(ProxyConfig {
                upstream: vec![addr],
                splice,
                ..ProxyConfig::default()
            })
            .await;
            let before = open_pipes();
            let mut client = TcpStream::connect(proxy.addr).await.unwrap();
            let mut upstream = within(PROMPT, "accept", accepted).await.unwrap();
            // A byte each way: both directions' pumps are running.
            let mut byte = [0u8; 1];
            client.write_all(b"u").await.unwrap();
            within(PROMPT, "up", upstream.read_exact(&mut byte))
                .await
                .unwrap();
            upstream.write_all(b"d").await.unwrap();
            within(PROMPT, "down", client.read_exact(&mut byte))
                .await
                .unwrap();
            assert_eq!(
                open_pipes() - before,
                pipe_fds,
                "pipe descriptors of one open connection with splice: {splice}"
            );
            drop((client, upstream));
            let r = proxy.only_close().await;
            assert_eq!((r.bytes_up, r.bytes_down), (1, 1), "{r:?}");
            proxy.stop().await;
            assert_eq!(open_pipes(), before, "splice: {splice}: pipes left open");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Half-close
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_half_close_reaches_upstream_which_can_still_send() {
    let (addr, accepted) = one_shot_upstream().await;
    let mut proxy = TestProxy::to(addr).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let request = vec![7u8; 1000];
    client.write_all(&request).await.unwrap();
    client.shutdown().await.unwrap();

    let mut upstream = within(PROMPT, "accept", accepted).await.unwrap();
    let mut got = Vec::new();
    within(
        PROMPT,
        "upstream sees the client's FIN",
        upstream.read_to_end(&mut got),
    )
    .await
    .expect("a clean EOF, not an error");
    assert_eq!(got, request);
    // After the FIN the other direction still carries a whole response.
    let response = random_pool(2, 1 << 20);
    within(PROMPT, "response after FIN", upstream.write_all(&response))
        .await
        .unwrap();
    upstream.shutdown().await.unwrap();
    let mut back = Vec::new();
    within(
        PROMPT,
        "client reads the response",
        client.read_to_end(&mut back),
    )
    .await
    .unwrap();
    assert_eq!(sha(&back), sha(&response), "the response arrived whole");
    let r = proxy.only_close().await;
    assert_eq!((r.bytes_up, r.bytes_down), (1000, 1 << 20));
    assert_eq!(r.end, "closed");
}

#[tokio::test]
async fn upstream_half_close_reaches_client_which_can_still_send() {
    let (addr, accepted) = one_shot_upstream().await;
    let mut proxy = TestProxy::to(addr).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut upstream = within(PROMPT, "accept", accepted).await.unwrap();
    let mut hello = [0u8; 5];
    upstream.read_exact(&mut hello).await.unwrap();
    upstream.write_all(&[1u8; 100_000]).await.unwrap();
    upstream.shutdown().await.unwrap();

    let mut got = Vec::new();
    within(
        PROMPT,
        "client sees the upstream's FIN",
        client.read_to_end(&mut got),
    )
    .await
    .expect("a clean EOF");
    assert_eq!(got.len(), 100_000);
    let upload = random_pool(3, 500_000);
    let send = async {
        client.write_all(&upload).await.unwrap();
        client.shutdown().await.unwrap();
    };
    let mut rest = Vec::new();
    let (_, read) = within(PROMPT, "upload after the upstream's FIN", async {
        tokio::join!(send, upstream.read_to_end(&mut rest))
    })
    .await;
    read.expect("a clean EOF at the upstream");
    assert_eq!(sha(&rest), sha(&upload));
    let r = proxy.only_close().await;
    assert_eq!((r.bytes_up, r.bytes_down), (5 + 500_000, 100_000));
    assert_eq!(r.end, "closed");
}

// ---------------------------------------------------------------------------------------------
// 3. Resets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_reset_reaches_upstream_as_a_reset() {
    let (addr, accepted) = one_shot_upstream().await;
    let mut proxy = TestProxy::to(addr).await;
    let client = TcpStream::connect(proxy.addr).await.unwrap();
    let mut upstream = within(PROMPT, "accept", accepted).await.unwrap();
    let mut client = client;
    client.write_all(&[9u8; 1000]).await.unwrap();
    let mut got = [0u8; 1000];
    within(PROMPT, "data first", upstream.read_exact(&mut got))
        .await
        .unwrap();
    common::reset(client);
    let end = within(
        PROMPT,
        "upstream learns of the reset",
        read_until_end(&mut upstream),
    )
    .await;
    match end {
        Err(kind) => assert!(is_reset(kind), "expected a reset, got {kind:?}"),
        Ok(n) => panic!("the upstream saw a clean EOF (after {n} more bytes), not a reset"),
    }
    let r = proxy.only_close().await;
    assert_eq!(r.end, "reset by client");
    assert_eq!(r.bytes_up, 1000);
}

#[tokio::test]
async fn upstream_reset_reaches_client_as_a_reset() {
    let (addr, accepted) = one_shot_upstream().await;
    let mut proxy = TestProxy::to(addr).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(b"x").await.unwrap();
    let mut upstream = within(PROMPT, "accept", accepted).await.unwrap();
    upstream.write_all(&[3u8; 1000]).await.unwrap();
    let mut got = [0u8; 1000];
    within(PROMPT, "data first", client.read_exact(&mut got))
        .await
        .unwrap();
    common::reset(upstream);
    let end = within(
        PROMPT,
        "client learns of the reset",
        read_until_end(&mut client),
    )
    .await;
    match end {
        Err(kind) => assert!(is_reset(kind), "expected a reset, got {kind:?}"),
        Ok(n) => panic!("the client saw a clean EOF (after {n} more bytes), not a reset"),
    }
    let r = proxy.only_close().await;
    assert_eq!(r.end, "reset by upstream");
    assert_eq!((r.bytes_up, r.bytes_down), (1, 1000));
}

/// TCP_NODELAY on both of the proxy's sockets of a connection, so it adds no Nagle delay to the
/// protocol it watches. The proxy runs in this process, so its sockets are among this process's
/// file descriptors: found by their addresses, asked with getsockopt.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn both_proxy_sockets_of_a_connection_have_nodelay() {
    use std::os::fd::BorrowedFd;
    let (addr, accepted) = one_shot_upstream().await;
    let proxy = TestProxy::to(addr).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(b"x").await.unwrap();
    let mut upstream = within(PROMPT, "accept", accepted).await.unwrap();
    let mut byte = [0u8; 1];
    // Relayed: the proxy has both sockets set up.
    within(PROMPT, "the relayed byte", upstream.read_exact(&mut byte))
        .await
        .unwrap();
    let (client_addr, proxy_upstream_side) =
        (client.local_addr().unwrap(), upstream.peer_addr().unwrap());
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut nodelay = HashMap::new();
    for fd in fds {
        // SAFETY: only borrowed for the calls below; a descriptor that has closed since the
        // listing makes them fail, which skips it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        let (Ok(local), Ok(peer)) = (sock.local_addr(), sock.peer_addr()) else {
            continue;
        };
        let (Some(local), Some(peer)) = (local.as_socket(), peer.as_socket()) else {
            continue;
        };
        let side = if (local, peer) == (proxy.addr, client_addr) {
            "toward the client"
        } else if (local, peer) == (proxy_upstream_side, addr) {
            "toward the upstream"
        } else if (local, peer) == (client_addr, proxy.addr) {
            "the test's own client"
        } else {
            continue;
        };
        nodelay.insert(side, sock.nodelay().unwrap());
    }
    assert_eq!(nodelay.get("toward the client"), Some(&true), "{nodelay:?}");
    assert_eq!(
        nodelay.get("toward the upstream"),
        Some(&true),
        "{nodelay:?}"
    );
    // The check can tell: the test's client never asked for it.
    assert_eq!(
        nodelay.get("the test's own client"),
        Some(&false),
        "{nodelay:?}"
    );
}

/// Stopping the proxy cuts the transfers still running: both sides get a reset, so neither
/// mistakes the cut for a clean end of stream (a FIN would look like a complete download).
#[tokio::test]
async fn stopping_the_proxy_resets_the_connections_still_open() {
    let (addr, accepted) = one_shot_upstream().await;
    let mut proxy = TestProxy::to(addr).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(b"get").await.unwrap();
    let mut upstream = within(PROMPT, "accept", accepted).await.unwrap();
    upstream.write_all(&[5u8; 1000]).await.unwrap();
    let mut got = [0u8; 1000];
    within(PROMPT, "data first", client.read_exact(&mut got))
        .await
        .unwrap();
    let summary = proxy.stop().await;
    assert_eq!(summary.connections, 1);
    let end = within(
        PROMPT,
        "client learns of the stop",
        read_until_end(&mut client),
    )
    .await;
    match end {
        Err(kind) => assert!(is_reset(kind), "expected a reset, got {kind:?}"),
        Ok(n) => panic!("the client saw a clean EOF (after {n} more bytes), not a reset"),
    }
    let end = within(
        PROMPT,
        "upstream learns of the stop",
        read_until_end(&mut upstream),
    )
    .await;
    match end {
        Err(kind) => assert!(is_reset(kind), "expected a reset upstream, got {kind:?}"),
        Ok(n) => panic!("the upstream saw a clean EOF (after {n} more bytes), not a reset"),
    }
    let r = proxy.only_close().await;
    assert_eq!(r.end, "proxy stopped");
    assert_eq!((r.bytes_up, r.bytes_down), (3, 1000));
}

// ---------------------------------------------------------------------------------------------
// 4. Upstream failure
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refused_upstream_closes_the_client_promptly() {
    let port = common::closed_port();
    let mut proxy = TestProxy::to(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let started = Instant::now();
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let _ = client.write_all(b"anyone there?").await;
    // A close or a reset, either way promptly and with no data.
    let end = within(PROMPT, "client closed", read_until_end(&mut client)).await;
    if let Ok(n) = end {
        assert_eq!(n, 0, "no data from a refused upstream");
    }
    let r = proxy.only_close().await;
    assert!(
        r.end.starts_with("upstream failed"),
        "end should say the upstream failed: {:?}",
        r.end
    );
    assert!(
        r.end.contains(&port.to_string()),
        "end names the address: {:?}",
        r.end
    );
    assert!(r.upstream.is_none());
    assert!(started.elapsed() < PROMPT);
    assert!(proxy.opens.is_empty(), "no open event without an upstream");
    assert_eq!(proxy.counters.upstream_failures.load(Ordering::Relaxed), 1);
    assert_eq!(proxy.counters.open.load(Ordering::Relaxed), 0);
}

#[test]
fn upstream_dies_mid_transfer_others_carry_on_and_fds_return() {
    if in_a_process_of_its_own("upstream_dies_mid_transfer_others_carry_on_and_fds_return") {
        runtime().block_on(upstream_dies_body());
    }
}

async fn upstream_dies_body() {
    const OTHERS: u64 = 8;
    let seed = seed("upstream_dies_mid_transfer");
    let pool = random_pool(seed, 2 << 20);
    let mut upstream = HashingUpstream::start(pool.clone(), 512 * 1024, seed).await;
    let mut proxy = TestProxy::to(upstream.addr).await;
    let fds_before = open_fds();

    let mut rng = fastrand::Rng::with_seed(seed);
    let plans: Vec<ClientPlan> = (1..=OTHERS)
        .map(|id| {
            let mut p = ClientPlan::random(id, &mut rng, &pool, 0);
            p.upload.extend(payload(&mut rng, &pool, 512 * 1024));
            p.mode = Mode::Concurrent;
            p
        })
        .collect();
    let resume = CancellationToken::new();
    let (paused_tx, mut paused) = mpsc::unbounded_channel();
    let mut others = JoinSet::new();
    for plan in plans.clone() {
        let (resume, paused_tx, addr) = (resume.clone(), paused_tx.clone(), proxy.addr);
        others
            .spawn(async move { run_client(addr, &plan, seed, Some((&resume, &paused_tx))).await });
    }
    // Every other connection is half-way through its upload when the victim's upstream dies.
    within(PROMPT, "others half-way", async {
        for _ in 0..OTHERS {
            paused.recv().await.unwrap();
        }
    })
    .await;
    let victim_id = DIE | 99;
    let mut victim = TcpStream::connect(proxy.addr).await.unwrap();
    let victim_local = victim.local_addr().unwrap();
    victim.write_all(&victim_id.to_be_bytes()).await.unwrap();
    let victim_seen = within(
        PROMPT,
        "the victim sees its upstream die",
        read_hashing(&mut victim, None),
    )
    .await;
    assert!(
        victim_seen.bytes <= DIE_AFTER as u64,
        "{victim_seen:?}: more than the upstream sent"
    );
    drop(victim);
    resume.cancel();

    let mut seen = HashMap::new();
    within(Duration::from_secs(20), "the others finish", async {
        while let Some(c) = others.join_next().await {
            let c = c.unwrap();
            seen.insert(c.id, c);
        }
    })
    .await;
    let reports = proxy.closes(OTHERS as usize + 1, PROMPT).await;
    let (ups, without_id) = upstream.seen(OTHERS as usize + 1, PROMPT).await;
    assert_eq!(without_id, 0);
    let by_client: HashMap<_, _> = reports.iter().map(|r| (r.client, r)).collect();
    let victim_report = by_client[&victim_local];
    assert_eq!(victim_report.end, "reset by upstream", "{victim_report:?}");
    assert_eq!(victim_report.bytes_up, 8);
    assert!(victim_report.bytes_down <= ups[&victim_id].sent);
    assert!(victim_seen.bytes <= victim_report.bytes_down);
    if let Some(kind) = victim_seen.error {
        assert!(
            is_reset(kind),
            "the victim's connection ended with {kind:?}"
        );
    }
    for plan in &plans {
        let c = &seen[&plan.id];
        check_connection(plan, c, &ups[&plan.id], by_client[&c.local]);
    }
    drop(seen);

    // Every connection is closed: the proxy's descriptors come back to where they were.
    let settled = Instant::now();
    loop {
        let now = open_fds();
        if now <= fds_before {
            break;
        }
        if settled.elapsed() > PROMPT {
            panic!(
                "{now} descriptors open, {fds_before} before the connections:\n{}",
                fd_listing().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.counters.open.load(Ordering::Relaxed), 0);
}

// ---------------------------------------------------------------------------------------------
// 5. Stalled client: backpressure, not buffering
// ---------------------------------------------------------------------------------------------

fn sysctl_max(path: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8 << 20)
}

async fn stalled_client_gets_backpressure(up: LinkSpec, down: LinkSpec) {
    const TOTAL: u64 = 200 << 20;
    const SMALL_BUFFER: usize = 64 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let upstream_sndbuf = Arc::new(AtomicUsize::new(0));
    let (w, sb) = (written.clone(), upstream_sndbuf.clone());
    let sender = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let sock = socket2::SockRef::from(&s);
        sock.set_send_buffer_size(SMALL_BUFFER).unwrap();
        sb.store(sock.send_buffer_size().unwrap(), Ordering::Relaxed);
        let mut go = [0u8; 2];
        s.read_exact(&mut go).await.unwrap();
        let block = vec![0xabu8; 256 * 1024];
        while w.load(Ordering::Relaxed) < TOTAL {
            match s.write(&block).await {
                Ok(n) => w.fetch_add(n as u64, Ordering::Relaxed),
                Err(_) => return,
            };
        }
    });
    let mut proxy = TestProxy::shaped(upstream_addr, up, down).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(SMALL_BUFFER as u32).unwrap();
    let client_rcvbuf = socket.recv_buffer_size().unwrap() as u64;
    let mut client = socket.connect(proxy.addr).await.unwrap();
    client.write_all(b"GO").await.unwrap();

    // Wait until the upstream's writes stop making progress.
    let stalled = within(
        Duration::from_secs(30),
        "the upstream's writes block",
        async {
            let (mut last, mut since) = (0, Instant::now());
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let now = written.load(Ordering::Relaxed);
                if now != last || now == 0 {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() > Duration::from_millis(500) {
                    return now;
                }
            }
        },
    )
    .await;
    // What may legitimately sit between the two ends: the proxy's own buffer, the test's two
    // small socket buffers and the proxy's two autotuned ones. The proxy's share is a fixed
    // number, not one taken from the library, so a library that lets its queue grow fails here:
    // one 2 MiB relay buffer unshaped; at 1 Gbit/s and 5 ms, a queue of twice the
    // bandwidth-delay product (1.25 MB) and a chunk. 8 MiB covers either with room to spare.
    const PROXY_HELD: u64 = 8 << 20;
    let sockets = client_rcvbuf
        + upstream_sndbuf.load(Ordering::Relaxed) as u64
        + sysctl_max("/proc/sys/net/ipv4/tcp_rmem")
        + sysctl_max("/proc/sys/net/ipv4/tcp_wmem");
    let bound = PROXY_HELD + sockets;
    eprintln!("stalled after {stalled} bytes; bound {bound}");
    assert!(
        stalled < TOTAL,
        "the upstream never blocked: the proxy buffers everything"
    );
    assert!(
        stalled < bound,
        "the upstream wrote {stalled} bytes to a client that read none: the proxy buffers \
         (bound {bound} = proxy {PROXY_HELD} + socket buffers {sockets})"
    );
    // Proof it is backpressure and not a stuck proxy: reading lets the upstream go on.
    let mut drained = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    within(PROMPT * 2, "the client drains 16 MiB", async {
        while drained < 16 << 20 {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed the stalled client");
            drained += n as u64;
        }
    })
    .await;
    within(PROMPT, "the upstream resumes", async {
        while written.load(Ordering::Relaxed) < stalled + (8 << 20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    common::reset(client);
    let r = proxy.only_close().await;
    sender.abort();
    let _ = sender.await;
    let written = written.load(Ordering::Relaxed);
    assert!(
        drained <= r.bytes_down && r.bytes_down <= written,
        "client read {drained} <= proxy counted {} <= upstream wrote {written}",
        r.bytes_down
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_gets_backpressure_unshaped() {
    stalled_client_gets_backpressure(LinkSpec::default(), LinkSpec::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_gets_backpressure_shaped_1gbit_5ms() {
    let link = LinkSpec {
        rate_bps: Some(1_000_000_000),
        delay: Duration::from_millis(5),
        jitter: Duration::ZERO,
    };
    stalled_client_gets_backpressure(link, link).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Shaping accuracy
// ---------------------------------------------------------------------------------------------

/// An upstream that takes one upload and returns its rate in bit/s (of the bytes after the
/// first read, over the time from that read to the last) and its byte count.
async fn rate_receiver() -> (SocketAddr, JoinHandle<(f64, usize)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let receiver = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let (mut total, mut first) = (0usize, None);
        let mut last = Instant::now();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            if first.is_none() {
                first = Some((Instant::now(), n));
            }
            last = Instant::now();
            total += n;
        }
        let (start, first_bytes) = first.unwrap();
        // The first read's bytes arrived at `start`; the rate is of those that came after.
        (
            (total - first_bytes) as f64 * 8.0 / (last - start).as_secs_f64(),
            total,
        )
    });
    (upstream, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_up_8mbit_measures_8mbit_at_the_receiver() {
    const BYTES: usize = 2_000_000; // 2 s at 8 Mbit/s
    let (upstream, receiver) = rate_receiver().await;
    let proxy =
        ProxyProcess::start(&["--upstream", &upstream.to_string(), "--rate-up", "8Mbit"]).await;
    assert!(
        proxy
            .start_line
            .contains("up: 8.00 Mbit/s; down: unlimited"),
        "{}",
        proxy.start_line
    );
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&vec![1u8; BYTES]).await.unwrap();
    s.shutdown().await.unwrap();
    let (bps, total) = within(Duration::from_secs(10), "the upload", receiver)
        .await
        .unwrap();
    eprintln!("--rate-up 8Mbit: {:.3} Mbit/s at the receiver", bps / 1e6);
    assert_eq!(total, BYTES);
    assert!(
        (bps / 8e6 - 1.0).abs() <= 0.10,
        "measured {:.3} Mbit/s through --rate-up 8Mbit",
        bps / 1e6
    );
}

/// Jitter delays chunks but never lifts the link above its rate: a chunk held back behind a
/// jittered one still leaves a serialisation time after it, not in a burst. The close report's
/// peak (the busiest 10 ms bin) stays near the rate too: shaped bytes are spread over the time
/// the link took to serialise them, so no bin shows two chunks' worth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jittered_8mbit_link_keeps_its_rate_and_its_peak() {
    const BYTES: usize = 1_500_000; // 1.5 s at 8 Mbit/s
    let (upstream, receiver) = rate_receiver().await;
    let link = LinkSpec {
        rate_bps: Some(8_000_000),
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(10),
    };
    let mut proxy = TestProxy::shaped(upstream, link, LinkSpec::default()).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&vec![1u8; BYTES]).await.unwrap();
    s.shutdown().await.unwrap();
    let (bps, total) = within(Duration::from_secs(10), "the upload", receiver)
        .await
        .unwrap();
    let r = proxy.only_close().await;
    eprintln!(
        "8 Mbit/s, 5 ms + 10 ms jitter: {:.3} Mbit/s at the receiver, peak {:.3} Mbit/s",
        bps / 1e6,
        r.peak_up_bps / 1e6
    );
    assert_eq!(total, BYTES);
    assert_eq!(r.bytes_up, BYTES as u64);
    assert!(
        (8e6 * 0.90..=8e6 * 1.05).contains(&bps),
        "measured {:.3} Mbit/s through an 8 Mbit/s link with jitter",
        bps / 1e6
    );
    assert!(
        r.peak_up_bps <= 8e6 * 1.3,
        "the busiest bin shows {:.3} Mbit/s on an 8 Mbit/s link",
        r.peak_up_bps / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_down_8mbit_measures_8mbit_at_the_client() {
    const BYTES: usize = 2_000_000; // 2 s at 8 Mbit/s
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let sender = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(&vec![2u8; BYTES]).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let proxy =
        ProxyProcess::start(&["--upstream", &upstream.to_string(), "--rate-down", "8Mbit"]).await;
    assert!(
        proxy
            .start_line
            .contains("up: unlimited; down: 8.00 Mbit/s"),
        "{}",
        proxy.start_line
    );
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let (bps, total) = within(Duration::from_secs(10), "the download", async {
        let mut buf = vec![0u8; 64 * 1024];
        let (mut total, mut first) = (0usize, None);
        let mut last = Instant::now();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            if first.is_none() {
                first = Some((Instant::now(), n));
            }
            last = Instant::now();
            total += n;
        }
        let (start, first_bytes) = first.unwrap();
        // The first read's bytes arrived at `start`; the rate is of those that came after.
        (
            (total - first_bytes) as f64 * 8.0 / (last - start).as_secs_f64(),
            total,
        )
    })
    .await;
    within(PROMPT, "the upstream's send", sender).await.unwrap();
    eprintln!("--rate-down 8Mbit: {:.3} Mbit/s at the client", bps / 1e6);
    assert_eq!(total, BYTES);
    assert!(
        (bps / 8e6 - 1.0).abs() <= 0.10,
        "measured {:.3} Mbit/s through --rate-down 8Mbit",
        bps / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_20ms_adds_40ms_of_rtt() {
    let (echo, _stop) = start_echo().await;
    let proxy = ProxyProcess::start(&["--upstream", &echo.to_string(), "--delay", "20ms"]).await;
    let rtts = pings(proxy.addr, 20).await;
    let (min, median) = (rtts[0], rtts[rtts.len() / 2]);
    eprintln!(
        "RTT min {min:?} median {median:?} max {:?}",
        rtts[rtts.len() - 1]
    );
    assert!(
        min >= Duration::from_millis(40),
        "an RTT of {min:?} beats 2 x 20 ms"
    );
    assert!(
        median <= Duration::from_millis(50),
        "median RTT {median:?} is more than 10 ms over 40 ms (a busy 2-core machine adds a few): {rtts:?}"
    );
}

/// Each delay goes its own way: the upstream runs in this process, so the time a ping reaches
/// it splits each round trip into its up and down halves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_up_10ms_down_30ms_adds_40ms_of_rtt() {
    const PINGS: usize = 20;
    // What a median may exceed its delay by: a debug proxy in its own process, on a 2-core
    // machine also running the churn tests (and more), measured up to 5.5 ms over.
    const SLACK: Duration = Duration::from_millis(10);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut msg = [0u8; 64];
        while s.read_exact(&mut msg).await.is_ok() {
            let _ = arrived_tx.send(Instant::now());
            s.write_all(&msg).await.unwrap();
        }
    });
    let proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--delay-up",
        "10ms",
        "--delay-down",
        "30ms",
    ])
    .await;
    let line = &proxy.start_line;
    let (up, down) = line.split_once("; down: ").expect("both directions");
    assert!(
        up.contains("up: unlimited, 10") && down.starts_with("unlimited, 30"),
        "{line}"
    );
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    ping(&mut s).await;
    arrived.recv().await.unwrap();
    let (mut ups, mut downs, mut rtts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PINGS {
        let sent = Instant::now();
        let rtt = ping(&mut s).await;
        let at_upstream = arrived.recv().await.unwrap();
        ups.push(at_upstream - sent);
        downs.push(sent + rtt - at_upstream);
        rtts.push(rtt);
    }
    drop(s);
    within(PROMPT, "the echo ends", echo).await.unwrap();
    for (what, times, delay) in [("up", ups, 10), ("down", downs, 30), ("RTT", rtts, 40)] {
        let mut times = times;
        times.sort();
        let (min, median) = (times[0], times[PINGS / 2]);
        let delay = Duration::from_millis(delay);
        eprintln!(
            "{what}: min {min:?} median {median:?} max {:?}",
            times[PINGS - 1]
        );
        assert!(min >= delay, "{what}: {min:?} beats its {delay:?} delay");
        assert!(
            median <= delay + SLACK,
            "{what}: median {median:?} is more than {SLACK:?} over {delay:?}: {times:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_cable_adds_20ms_of_rtt() {
    let (echo, _stop) = start_echo().await;
    let proxy = ProxyProcess::start(&["--upstream", &echo.to_string(), "--profile", "cable"]).await;
    assert!(
        proxy.start_line.contains("20.00 Mbit/s"),
        "{}",
        proxy.start_line
    );
    let rtts = pings(proxy.addr, 20).await;
    let (min, median) = (rtts[0], rtts[rtts.len() / 2]);
    eprintln!(
        "RTT min {min:?} median {median:?} max {:?}",
        rtts[rtts.len() - 1]
    );
    assert!(
        min >= Duration::from_millis(20),
        "an RTT of {min:?} beats cable's 20 ms"
    );
    assert!(
        median <= Duration::from_millis(25),
        "median RTT {median:?} is more than 5 ms over 20 ms: {rtts:?}"
    );
}

/// Delay is pipelined: it lowers throughput only through the window, never per chunk. A link
/// that held each 64 KiB chunk for a round trip before taking the next would move 64 KiB per
/// 40 ms (one that delayed the chunks one after another, 64 KiB per 20 ms: twice that); the
/// proxy's queue holds a bandwidth-delay product, so a 32 MiB upload must go at least 4 times
/// faster than stop-and-wait, and arrive whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_20ms_each_way_does_not_stop_and_wait_per_chunk() {
    const BYTES: usize = 32 << 20;
    const CHUNK: f64 = 64.0 * 1024.0;
    let delay = Duration::from_millis(20);
    let link = LinkSpec {
        rate_bps: None,
        delay,
        jitter: Duration::ZERO,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let receiver = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let seen = read_hashing(&mut s, None).await;
        (seen, Instant::now())
    });
    let mut proxy = TestProxy::shaped(upstream, link, link).await;
    let data = random_pool(7, BYTES);
    let started = Instant::now();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // Bounded well above the 20 s a stop-and-wait link would take, so that case fails by the
    // assertion below, with its numbers, not by the timeout.
    within(Duration::from_secs(60), "the upload", async {
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
    })
    .await;
    let (seen, done) = within(Duration::from_secs(60), "the receiver", receiver)
        .await
        .unwrap();
    let elapsed = done - started;
    assert_eq!(seen.error, None);
    assert_eq!(seen.bytes, BYTES as u64);
    assert_eq!(seen.sha, sha(&data), "the upload arrived whole");
    let bps = BYTES as f64 * 8.0 / elapsed.as_secs_f64();
    let stop_and_wait_bps = CHUNK * 8.0 / (2 * delay).as_secs_f64();
    eprintln!(
        "32 MiB through 20 ms each way in {elapsed:?}: {:.1} Mbit/s; stop-and-wait per 64 KiB: \
         {:.1} Mbit/s",
        bps / 1e6,
        stop_and_wait_bps / 1e6
    );
    assert!(
        bps >= 4.0 * stop_and_wait_bps,
        "{:.1} Mbit/s is not 4 x the {:.1} Mbit/s of stop-and-wait per 64 KiB chunk",
        bps / 1e6,
        stop_and_wait_bps / 1e6
    );
    drop(s);
    let r = proxy.only_close().await;
    assert_eq!(r.bytes_up, BYTES as u64);
    let first = r.first_byte_up.expect("a first byte up");
    assert!(
        first >= delay.as_secs_f64(),
        "the first byte left the link {first} s after the connection opened, inside its delay"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Flights
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ten_exchanges_are_twenty_flights_and_ten_round_trips() {
    let (echo, _stop) = start_echo().await;
    let mut proxy = TestProxy::to(echo).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let request = [0x77u8; 100];
    for _ in 0..10 {
        s.write_all(&request).await.unwrap();
        let mut back = [0u8; 100];
        within(PROMPT, "response", s.read_exact(&mut back))
            .await
            .unwrap();
    }
    s.shutdown().await.unwrap();
    assert_eq!(read_until_end(&mut s).await, Ok(0));
    let r = proxy.only_close().await;
    assert_eq!(r.flight_count, 20, "{:?}", r.flights);
    assert_eq!(r.round_trips, 10);
    assert_eq!(r.flights.len(), 20);
    for (i, f) in r.flights.iter().enumerate() {
        let dir = if i % 2 == 0 { Dir::Up } else { Dir::Down };
        assert_eq!((f.dir, f.bytes), (dir, 100), "flight {i}: {f:?}");
        assert!(f.start <= f.end);
    }
    for pair in r.flights.windows(2) {
        assert!(pair[1].start >= pair[0].end, "flights overlap: {pair:?}");
        assert_eq!(pair[1].gap, pair[1].start - pair[0].end);
    }
    assert_eq!((r.bytes_up, r.bytes_down), (1000, 1000));
    assert!(r.first_byte_up.unwrap() < r.first_byte_down.unwrap());
    assert!(r.last_byte_up.unwrap() < r.last_byte_down.unwrap());
}

#[tokio::test]
async fn a_one_way_upload_is_one_flight() {
    let (sink, _stop) = start_sink_then_reply(0).await;
    let mut proxy = TestProxy::to(sink).await;
    let back = exchange(proxy.addr, 1 << 20).await;
    assert!(back.is_empty());
    let r = proxy.only_close().await;
    assert_eq!(r.flight_count, 1, "{:?}", r.flights);
    assert_eq!(r.round_trips, 1);
    assert_eq!((r.flights[0].dir, r.flights[0].bytes), (Dir::Up, 1 << 20));
    assert_eq!((r.bytes_up, r.bytes_down), (1 << 20, 0));
    assert_eq!(r.first_byte_down, None);
}

// ---------------------------------------------------------------------------------------------
// 8. The command line
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_exits_2_with_one_line_before_any_traffic() {
    let in_use = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let in_use = in_use.local_addr().map(|a| (a, in_use)).unwrap();
    let taken = in_use.0.to_string();
    let upstream = format!("127.0.0.1:{}", common::closed_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--upstream", "nonexistent.invalid:80"],
            "nonexistent.invalid",
        ),
        (vec!["--upstream", &upstream, "--listen", &taken], "in use"),
        (vec!["--upstream", &upstream, "--metrics", &taken], "in use"),
        (vec!["--upstream", &upstream, "--rate", "0"], "'0'"),
        (vec!["--upstream", &upstream, "--rate", "5Xbit"], "'5Xbit'"),
        (vec!["--upstream", &upstream, "--delay", "abc"], "'abc'"),
        (vec!["--upstream", &upstream, "--profile", "mars"], "'mars'"),
    ];
    for (args, expect) in cases {
        let mut full = vec!["proxy"];
        if !args.contains(&"--listen") {
            full.extend(["--listen", "127.0.0.1:0"]);
        }
        full.extend(&args);
        let out = assert_cmd::Command::cargo_bin("ntm")
            .unwrap()
            .args(&full)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = common::one_line(&out.stderr);
        assert!(line.starts_with("ntm: "), "{args:?}: {line}");
        assert!(
            line.contains(expect),
            "{args:?}: {line} should mention {expect}"
        );
        // The start line comes after binding: its absence means no traffic could have flowed.
        assert!(!line.contains(" -> "), "{args:?}: {line}");
        assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    }
    drop(in_use);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_events_csv_record_plot_and_metrics() {
    const UP: usize = 300_000;
    const DOWN: usize = 120_000;
    let (upstream, _stop) = start_sink_then_reply(DOWN).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("timeline.csv");
    let svg = dir.path().join("bandwidth.svg");
    let mut proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--format",
        "json",
        "--record",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(exchange(proxy.addr, UP).await.len(), DOWN);
    // A gap of several 10 ms bins, so the plot has lines to draw: within one bin all of it
    // would be a single point per direction (see plot_of_traffic_within_one_bin_is_drawn).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(exchange(proxy.addr, UP).await.len(), DOWN);
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&serde_json::Value| e["event"] == "close")
        .count()
        < 2
    {
        let line = proxy.stdout_line().await;
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        events.push(v);
    }
    let opens: Vec<_> = events.iter().filter(|e| e["event"] == "open").collect();
    let closes: Vec<_> = events.iter().filter(|e| e["event"] == "close").collect();
    assert_eq!(opens.len(), 2, "{events:?}");
    for c in &closes {
        assert_eq!(c["bytes_up"], UP as u64, "{c}");
        assert_eq!(c["bytes_down"], DOWN as u64, "{c}");
        assert_eq!(c["end"], "closed");
        assert_eq!(c["flight_count"], 2);
        assert_eq!(c["round_trips"], 1);
        assert_eq!(c["upstream"], upstream.to_string());
        for key in [
            "id",
            "client",
            "seconds",
            "first_byte_up",
            "last_byte_down",
            "flights",
            "timeline",
        ] {
            assert!(!c[key].is_null(), "close event without {key}: {c}");
        }
    }

    // The metrics endpoint counts what was relayed.
    let metrics = get_metrics(proxy.metrics.expect("metrics address")).await;
    assert_eq!(
        metric(&metrics, "ntm_proxy_bytes_total{direction=\"up\"}"),
        2 * UP as u64,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_bytes_total{direction=\"down\"}"),
        2 * DOWN as u64,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_connections_total"),
        2,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_open_connections"),
        0,
        "{metrics}"
    );
    let flights: u64 = closes
        .iter()
        .map(|c| c["flight_count"].as_u64().expect("flight_count"))
        .sum();
    assert_eq!(
        metric(&metrics, "ntm_proxy_flights_total"),
        flights,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_upstream_failures_total"),
        0,
        "{metrics}"
    );

    // A refused upstream is counted as a failure (and as a connection, with no bytes).
    let refused = format!("127.0.0.1:{}", common::closed_port());
    let mut failing = ProxyProcess::start(&[
        "--upstream",
        &refused,
        "--format",
        "json",
        "--metrics",
        "127.0.0.1:0",
    ])
    .await;
    let mut client = TcpStream::connect(failing.addr).await.unwrap();
    let end = within(PROMPT, "client closed", read_until_end(&mut client)).await;
    assert!(end.is_err() || end == Ok(0), "{end:?}");
    let close: serde_json::Value = serde_json::from_str(&failing.stdout_line().await).unwrap();
    assert_eq!(close["event"], "close", "{close}");
    let failed = get_metrics(failing.metrics.expect("metrics address")).await;
    for (name, value) in [
        ("ntm_proxy_upstream_failures_total", 1),
        ("ntm_proxy_connections_total", 1),
        ("ntm_proxy_open_connections", 0),
        ("ntm_proxy_flights_total", 0),
        ("ntm_proxy_bytes_total{direction=\"up\"}", 0),
    ] {
        assert_eq!(metric(&failed, name), value, "{name}: {failed}");
    }
    let (status, _, stderr) = failing.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");

    let (status, rest, stderr) = proxy.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");
    let summary: Vec<serde_json::Value> = rest
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(summary.len(), 1, "one summary line after Ctrl-C: {rest:?}");
    let s = &summary[0];
    assert_eq!(s["event"], "summary");
    assert_eq!(
        (
            s["connections"].as_u64(),
            s["bytes_up"].as_u64(),
            s["bytes_down"].as_u64()
        ),
        (Some(2), Some(2 * UP as u64), Some(2 * DOWN as u64))
    );

    // The CSV timeline's bytes add up to the bytes relayed, per connection and direction.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("connection,direction,bin_start_seconds,bin_seconds,bytes")
    );
    let mut sums: HashMap<(String, String), u64> = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "{line}");
        let start: f64 = f[2].parse().unwrap();
        let bin: f64 = f[3].parse().unwrap();
        assert!(start >= 0.0 && (bin - 0.01).abs() < 1e-9, "{line}");
        *sums.entry((f[0].into(), f[1].into())).or_default() += f[4].parse::<u64>().unwrap();
    }
    for c in &closes {
        let id = c["id"].to_string();
        assert_eq!(
            sums.get(&(id.clone(), "up".into())),
            Some(&(UP as u64)),
            "{sums:?}"
        );
        assert_eq!(
            sums.get(&(id, "down".into())),
            Some(&(DOWN as u64)),
            "{sums:?}"
        );
    }
    assert_eq!(sums.len(), 4, "{sums:?}");

    // Bandwidth over time, up and down, both drawn (each direction carried bytes).
    let plot = std::fs::read_to_string(&svg).unwrap();
    common::assert_svg_plot(&plot, &["Mbit/s", "seconds", "up", "down"], 2);
}

/// A short session: one exchange, all of it in the first 10 ms bin. Each direction must still
/// draw a line (a flat step over that bin), not empty axes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_of_traffic_within_one_bin_is_drawn() {
    let (upstream, _stop) = start_sink_then_reply(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bandwidth.svg");
    let proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--plot",
        svg.to_str().unwrap(),
    ])
    .await;
    assert_eq!(exchange(proxy.addr, 1000).await.len(), 1000);
    let (status, _, stderr) = proxy.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    common::assert_svg_plot(&plot, &["up", "down"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_record_and_text_lines() {
    let (upstream, _stop) = start_sink_then_reply(5000).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let mut proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--record",
        record.to_str().unwrap(),
    ])
    .await;
    assert_eq!(exchange(proxy.addr, 70_000).await.len(), 5000);
    let line = proxy.stdout_line().await;
    assert!(
        line.contains("closed") && line.contains(&upstream.to_string()),
        "{line}"
    );
    let (status, rest, stderr) = proxy.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(
        rest.iter().any(|l| l.starts_with("Summary: 1 connection,")),
        "{rest:?}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).expect("record is JSON");
    assert_eq!(doc["summary"]["bytes_up"], 70_000);
    assert_eq!(doc["summary"]["bytes_down"], 5000);
    let conns = doc["connections"].as_array().expect("connections");
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(
        (c["bytes_up"].as_u64(), c["bytes_down"].as_u64()),
        (Some(70_000), Some(5000))
    );
    let sum = |k: &str| {
        c["timeline"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("up"), sum("down")), (70_000, 5000));
    assert_eq!(c["flights"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_logs_one_clear_line() {
    let port = common::closed_port();
    let upstream = format!("127.0.0.1:{port}");
    let mut proxy = ProxyProcess::start(&["--upstream", &upstream]).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    // A close or a reset (the proxy drops the client without reading it), and no data.
    let end = within(PROMPT, "client closed", read_until_end(&mut client)).await;
    assert!(end.is_err() || end == Ok(0), "{end:?}");
    let line = proxy.stdout_line().await;
    assert!(line.contains("upstream failed"), "{line}");
    let (status, _, stderr) = proxy.interrupt().await;
    assert!(status.success());
    let why: Vec<&str> = stderr.lines().filter(|l| l.contains(&upstream)).collect();
    assert_eq!(why.len(), 1, "one line says why: {stderr}");
    assert!(why[0].to_lowercase().contains("refused"), "{}", why[0]);
}

async fn get_metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    within(PROMPT, "metrics response", s.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}
