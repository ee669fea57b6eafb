//! End-to-end tests of the proxy's relaying (issue 4): byte-exact under churn (copying and
//! `splice`), half-closes and resets that propagate, TCP_NODELAY on its sockets, stopping, and
//! upstream failure without leaked descriptors. Shaping is tested in `proxy_shaping.rs`, what the
//! proxy reports in `proxy_output.rs`; the harness is in `common/proxy.rs` and `common/churn.rs`.
//!
//! The library proxy runs on port 0 in the test's runtime, in real time: bytes cross real
//! sockets. Random choices come from one seed, printed, and taken from `NTM_TEST_SEED` when set,
//! so a failure can be replayed.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::churn::{
    check_connection, churn, run_client, ClientPlan, HashingUpstream, Mode, DIE, DIE_AFTER,
};
use common::proxy::{
    fd_listing, in_a_process_of_its_own, is_reset, one_shot_upstream, open_fds, open_pipes,
    payload, random_pool, read_hashing, read_until_end, runtime, seed, sha, TestProxy,
};
use common::{within, PROMPT};
use ntm::proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
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
