//! End-to-end tests of the proxy under churn (issue 4): a thousand connections byte-exact on the
//! copying and the `splice` paths, proof that `splice` is taken, and an upstream dying mid-churn
//! while the others carry on and the descriptors come back.
//!
//! Linux only: every churn client binds a loopback source address of its own (all of 127/8 is
//! loopback on Linux, only 127.0.0.1 elsewhere), `splice(2)` is Linux's, and the descriptors
//! are counted in `/proc/self/fd`.
//!
//! The library proxy runs on port 0 in the test's runtime, in real time: bytes cross real
//! sockets. Random choices come from one seed, printed, and taken from `NTM_TEST_SEED` when set,
//! so a failure can be replayed.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::churn::{
    check_connection, churn, run_client, ClientPlan, HashingUpstream, Mode, DIE, DIE_AFTER,
};
use common::proxy::{
    in_a_process_of_its_own, is_reset, one_shot_upstream, open_fds, payload, random_pool,
    read_hashing, runtime, seed, TestProxy,
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

/// The pipe descriptors of this process (`splice` moves bytes through one per direction).
fn open_pipes() -> usize {
    open_fds()
        .iter()
        .filter(|(_, target)| target.to_string_lossy().starts_with("pipe:"))
        .count()
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
// 2. An upstream dies mid-churn
// ---------------------------------------------------------------------------------------------

/// This process's descriptors, one per line, for a failure message.
fn fd_listing() -> String {
    open_fds()
        .iter()
        .map(|(fd, target)| format!("{fd} -> {}", target.display()))
        .collect::<Vec<_>>()
        .join("\n")
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
    let fds_before = open_fds().len();

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
        let now = open_fds().len();
        if now <= fds_before {
            break;
        }
        if settled.elapsed() > PROMPT {
            panic!(
                "{now} descriptors open, {fds_before} before the connections:\n{}",
                fd_listing()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.counters.open.load(Ordering::Relaxed), 0);
}
