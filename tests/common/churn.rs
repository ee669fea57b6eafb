//! Churn: many clients with random payloads, sizes and endings (half-closes, resets) through a
//! [`TestProxy`] to a [`HashingUpstream`], every byte checked by SHA-256 at the far end and every
//! count against the proxy's reports.
//!
//! Each test file uses a different subset (see the `dead_code` allowance in `common`).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ntm::proxy::{ConnectionReport, ProxyConfig, ProxySummary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::proxy::{
    payload, random_len, random_pool, read_hashing, seed, sha, start_upstream, write_pieces,
    ReadSeen, Sha, TestProxy,
};
use super::{within, PROMPT};

// ---------------------------------------------------------------------------------------------
// The hashing upstream
// ---------------------------------------------------------------------------------------------

/// A connection id whose top bit asks the hashing upstream to die mid-transfer.
pub const DIE: u64 = 1 << 63;
/// Bytes a dying upstream sends before it resets.
pub const DIE_AFTER: usize = 64 * 1024;

/// What the hashing upstream saw on one connection.
#[derive(Debug)]
pub struct UpstreamSeen {
    /// The first 8 bytes the client sent (its id), if they arrived.
    pub id: Option<u64>,
    /// Everything received, the id included.
    pub read: ReadSeen,
    pub sent: u64,
    pub sent_sha: Sha,
    pub write_failed: bool,
}

/// An upstream that, per connection, reads the client's 8-byte id, then at once reads (hashing)
/// everything the client sends and sends (hashing) a random payload of its own, each direction
/// on its own; it half-closes when done sending and keeps reading. An id with [`DIE`] set makes
/// it send [`DIE_AFTER`] bytes and reset.
pub struct HashingUpstream {
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<UpstreamSeen>,
    stop: CancellationToken,
}

impl HashingUpstream {
    pub async fn start(pool: Arc<Vec<u8>>, max_send: usize, seed: u64) -> HashingUpstream {
        let (tx, seen) = mpsc::unbounded_channel();
        let (addr, stop) = start_upstream(move |stream: TcpStream| {
            let (pool, tx) = (pool.clone(), tx.clone());
            async move {
                let seen = hashing_connection(stream, &pool, max_send, seed).await;
                let _ = tx.send(seen);
            }
        })
        .await;
        HashingUpstream { addr, seen, stop }
    }

    /// The next `n` connections' reports, by id (reports without an id are returned apart).
    pub async fn seen(&mut self, n: usize, limit: Duration) -> (HashMap<u64, UpstreamSeen>, usize) {
        let mut by_id = HashMap::new();
        let mut without_id = 0;
        within(limit, "upstream reports", async {
            for _ in 0..n {
                let s = self.seen.recv().await.expect("upstream report");
                match s.id {
                    Some(id) => assert!(by_id.insert(id, s).is_none(), "id {id} seen twice"),
                    None => without_id += 1,
                }
            }
        })
        .await;
        (by_id, without_id)
    }
}

impl Drop for HashingUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn hashing_connection(
    stream: TcpStream,
    pool: &[u8],
    max_send: usize,
    seed: u64,
) -> UpstreamSeen {
    let _ = stream.set_nodelay(true);
    let mut id_bytes = [0u8; 8];
    let (mut rd, mut wr) = stream.into_split();
    if let Err(e) = rd.read_exact(&mut id_bytes).await {
        return UpstreamSeen {
            id: None,
            read: ReadSeen {
                bytes: 0,
                sha: sha(b""),
                error: Some(e.kind()),
            },
            sent: 0,
            sent_sha: sha(b""),
            write_failed: false,
        };
    }
    let id = u64::from_be_bytes(id_bytes);
    let mut rng = fastrand::Rng::with_seed(seed ^ id.rotate_left(17) ^ 0x5eed);
    if id & DIE != 0 {
        let data = payload(&mut rng, pool, DIE_AFTER);
        let (sent, err) = write_pieces(&mut wr, &data, &mut rng).await;
        let stream = rd.reunite(wr).expect("halves of one stream");
        super::reset(stream);
        return UpstreamSeen {
            id: Some(id),
            read: ReadSeen {
                bytes: 8,
                sha: sha(&id_bytes),
                error: None,
            },
            sent,
            sent_sha: sha(&data[..sent as usize]),
            write_failed: err.is_some(),
        };
    }
    let len = random_len(&mut rng, max_send);
    let data = payload(&mut rng, pool, len);
    // The reader's hash covers everything the client sent, the id included.
    let mut chained = (&id_bytes[..]).chain(&mut rd);
    let reader = read_hashing(&mut chained, None);
    let writer = async {
        let (sent, err) = write_pieces(&mut wr, &data, &mut rng).await;
        if err.is_none() {
            let _ = wr.shutdown().await;
        }
        (sent, err.is_some())
    };
    let (read, (sent, write_failed)) = tokio::join!(reader, writer);
    UpstreamSeen {
        id: Some(id),
        read,
        sent,
        sent_sha: sha(&data[..sent as usize]),
        write_failed,
    }
}

// ---------------------------------------------------------------------------------------------
// Churn clients
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Writes and reads at once; half-closes when its upload is done.
    Concurrent,
    /// Writes everything, half-closes, only then reads: the download flows after the FIN.
    UploadThenRead,
    /// Writes part of its upload, reads a little, then resets (SO_LINGER 0).
    Reset,
}

#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub id: u64,
    pub upload: Vec<u8>,
    pub mode: Mode,
    /// Reset mode: bytes to write before resetting.
    pub reset_after_write: usize,
    /// Reset mode: bytes to read (at least one, or the EOF) before resetting.
    pub reset_after_read: u64,
}

impl ClientPlan {
    pub fn random(id: u64, rng: &mut fastrand::Rng, pool: &[u8], max: usize) -> ClientPlan {
        // Every upload starts with the id, so the upstream's report can be matched.
        let len = 8 + random_len(rng, max.saturating_sub(8));
        let mut upload = id.to_be_bytes().to_vec();
        upload.extend(payload(rng, pool, len - 8));
        let mode = match rng.u8(..100) {
            0..=4 => Mode::Reset,
            5..=34 => Mode::UploadThenRead,
            _ => Mode::Concurrent,
        };
        ClientPlan {
            id,
            mode,
            reset_after_write: rng.usize(8..=upload.len()),
            reset_after_read: rng.u64(1..=64 * 1024),
            upload,
        }
    }
}

/// What one client did and saw.
#[derive(Debug)]
pub struct ClientSeen {
    pub id: u64,
    pub local: SocketAddr,
    pub written: u64,
    pub write_error: Option<ErrorKind>,
    pub read: ReadSeen,
}

/// Runs one client through the proxy. With `pause`, a concurrent client stops after half its
/// upload until `pause` is cancelled (and says so on `paused`).
pub async fn run_client(
    proxy: SocketAddr,
    plan: &ClientPlan,
    seed: u64,
    pause: Option<(&CancellationToken, &mpsc::UnboundedSender<u64>)>,
) -> ClientSeen {
    // A source address of its own (all of 127/8 is loopback): the proxy's report names the
    // client by address, and a port freed by a reset may be taken again by a later client.
    let socket = TcpSocket::new_v4().unwrap();
    let [_, _, hi, lo] = (plan.id as u32 & 0xffff).to_be_bytes();
    socket
        .bind(SocketAddr::from(([127, 1, hi, lo], 0)))
        .expect("bind a loopback source address");
    let stream = socket.connect(proxy).await.expect("connect to the proxy");
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap();
    let mut rng = fastrand::Rng::with_seed(seed ^ plan.id);
    let (mut rd, mut wr) = stream.into_split();
    let (written, write_error, read) = match plan.mode {
        Mode::Concurrent => {
            let writer = async {
                let mut written = 0;
                let mut data = &plan.upload[..];
                if let Some((token, paused)) = pause {
                    let half = data.len() / 2;
                    let (n, e) = write_pieces(&mut wr, &data[..half], &mut rng).await;
                    if e.is_some() {
                        return (n, e.map(|e| e.kind()));
                    }
                    written = n;
                    data = &data[half..];
                    let _ = paused.send(plan.id);
                    token.cancelled().await;
                }
                let (n, e) = write_pieces(&mut wr, data, &mut rng).await;
                if e.is_none() {
                    wr.shutdown().await.expect("half-close");
                }
                (written + n, e.map(|e| e.kind()))
            };
            let ((written, e), read) = tokio::join!(writer, read_hashing(&mut rd, None));
            (written, e, read)
        }
        Mode::UploadThenRead => {
            let (written, e) = write_pieces(&mut wr, &plan.upload, &mut rng).await;
            if e.is_none() {
                wr.shutdown().await.expect("half-close");
            }
            let read = read_hashing(&mut rd, None).await;
            (written, e.map(|e| e.kind()), read)
        }
        Mode::Reset => {
            let part = &plan.upload[..plan.reset_after_write];
            let (written, e) = write_pieces(&mut wr, part, &mut rng).await;
            let read = read_hashing(&mut rd, Some(plan.reset_after_read)).await;
            let stream = rd.reunite(wr).expect("halves of one stream");
            super::reset(stream);
            (written, e.map(|e| e.kind()), read)
        }
    };
    ClientSeen {
        id: plan.id,
        local,
        written,
        write_error,
        read,
    }
}

/// Checks one connection end to end: client, proxy report and upstream agree.
pub fn check_connection(
    plan: &ClientPlan,
    client: &ClientSeen,
    up: &UpstreamSeen,
    r: &ConnectionReport,
) {
    let id = plan.id;
    // The report's timeline can be long: the first 600 characters say enough.
    let ctx: String = format!("connection {id} ({:?}), report {r:?}", plan.mode)
        .chars()
        .take(600)
        .collect();
    let ctx = &ctx;
    if plan.mode == Mode::Reset {
        // Nothing is invented and nothing counted that was not sent: receiver <= proxy <= sender.
        assert!(
            up.read.bytes <= r.bytes_up && r.bytes_up <= client.written,
            "{ctx}: upstream read {} <= proxy up {} <= client wrote {}",
            up.read.bytes,
            r.bytes_up,
            client.written
        );
        assert!(
            client.read.bytes <= r.bytes_down && r.bytes_down <= up.sent,
            "{ctx}: client read {} <= proxy down {} <= upstream sent {}",
            client.read.bytes,
            r.bytes_down,
            up.sent
        );
        assert!(
            r.end == "reset by client" || r.end == "client went away",
            "{ctx}: end {:?}",
            r.end
        );
        return;
    }
    assert_eq!(client.write_error, None, "{ctx}: client write failed");
    assert_eq!(client.read.error, None, "{ctx}: client read failed");
    assert_eq!(up.read.error, None, "{ctx}: upstream read failed");
    assert!(!up.write_failed, "{ctx}: upstream write failed");
    let sent = plan.upload.len() as u64;
    assert_eq!(client.written, sent, "{ctx}: client wrote");
    assert_eq!(r.bytes_up, sent, "{ctx}: proxy counted up");
    assert_eq!(up.read.bytes, sent, "{ctx}: upstream received");
    assert_eq!(up.read.sha, sha(&plan.upload), "{ctx}: upload SHA-256");
    assert_eq!(r.bytes_down, up.sent, "{ctx}: proxy counted down");
    assert_eq!(client.read.bytes, up.sent, "{ctx}: client received");
    assert_eq!(client.read.sha, up.sent_sha, "{ctx}: download SHA-256");
    assert_eq!(r.end, "closed", "{ctx}");
    assert_eq!(
        r.timeline.up.iter().sum::<u64>(),
        r.bytes_up,
        "{ctx}: up timeline"
    );
    assert_eq!(
        r.timeline.down.iter().sum::<u64>(),
        r.bytes_down,
        "{ctx}: down timeline"
    );
}

// ---------------------------------------------------------------------------------------------
// The churn run
// ---------------------------------------------------------------------------------------------

/// `connections` clients, 32 at a time, through a proxy with `config` (its upstream set here) to
/// a [`HashingUpstream`]: random sizes up to 1 MiB each way, concurrent and upload-then-read
/// clients, half-closes from both ends and client resets. Every byte is checked by SHA-256 at
/// the far end and every count by the proxy's reports, summary and counters. Returns the
/// proxy's reports and its summary.
pub async fn churn(
    test: &str,
    config: ProxyConfig,
    connections: u64,
    limit: Duration,
) -> (Vec<ConnectionReport>, ProxySummary) {
    const AT_ONCE: usize = 32;
    // Up to 1 MiB each way (issue 4), debug builds included: Cargo.toml optimises sha2 there.
    let max = 1 << 20;
    let seed = seed(test);
    let pool = random_pool(seed, 4 << 20);
    let mut upstream = HashingUpstream::start(pool.clone(), max, seed).await;
    let mut proxy = TestProxy::start(ProxyConfig {
        upstream: vec![upstream.addr],
        connect_timeout: Duration::from_secs(2),
        ..config
    })
    .await;

    let mut rng = fastrand::Rng::with_seed(seed);
    let plans: Vec<Arc<ClientPlan>> = (1..=connections)
        .map(|id| {
            let mut plan = ClientPlan::random(id, &mut rng, &pool, max);
            // Resets are 5% of random plans; every 25th is one too, so a short run has some.
            if id % 25 == 0 {
                plan.mode = Mode::Reset;
            }
            Arc::new(plan)
        })
        .collect();
    for mode in [Mode::Concurrent, Mode::UploadThenRead, Mode::Reset] {
        assert!(
            plans.iter().any(|p| p.mode == mode),
            "the plan has no {mode:?} client"
        );
    }
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    let mut clients = JoinSet::new();
    for plan in &plans {
        let (plan, slots, addr) = (plan.clone(), slots.clone(), proxy.addr);
        clients.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            within(Duration::from_secs(30), "one churn client", async {
                run_client(addr, &plan, seed, None).await
            })
            .await
        });
    }
    let mut seen = HashMap::new();
    within(limit, &format!("{connections} churn connections"), async {
        while let Some(c) = clients.join_next().await {
            let c = c.expect("client task panicked");
            seen.insert(c.id, c);
        }
    })
    .await;
    let reports = proxy.closes(connections as usize, PROMPT * 2).await;
    let (ups, without_id) = upstream.seen(connections as usize, PROMPT * 2).await;
    assert_eq!(
        without_id, 0,
        "every upstream connection read its client's id"
    );

    let mut by_client: HashMap<SocketAddr, &ConnectionReport> = HashMap::new();
    for r in &reports {
        assert!(
            by_client.insert(r.client, r).is_none(),
            "two reports for client {}",
            r.client
        );
    }
    assert_eq!(
        proxy.opens.len(),
        connections as usize,
        "one open event each"
    );
    for plan in &plans {
        let client = &seen[&plan.id];
        let r = by_client
            .get(&client.local)
            .unwrap_or_else(|| panic!("no close report for connection {}", plan.id));
        let up = ups
            .get(&plan.id)
            .unwrap_or_else(|| panic!("the upstream never saw connection {}", plan.id));
        check_connection(plan, client, up, r);
    }

    let elapsed = started.elapsed();
    let summary = proxy.stop().await;
    let up: u64 = reports.iter().map(|r| r.bytes_up).sum();
    let down: u64 = reports.iter().map(|r| r.bytes_down).sum();
    eprintln!(
        "{test}: {connections} connections, {up} bytes up, {down} bytes down in {elapsed:.1?}"
    );
    assert_eq!(summary.connections, connections);
    assert_eq!(
        (summary.bytes_up, summary.bytes_down),
        (up, down),
        "summary totals"
    );
    let c = &proxy.counters;
    assert_eq!(c.bytes_up.load(Ordering::Relaxed), up, "counters up");
    assert_eq!(c.bytes_down.load(Ordering::Relaxed), down, "counters down");
    assert_eq!(c.open.load(Ordering::Relaxed), 0, "open gauge back to 0");
    assert_eq!(
        summary.timeline.up.iter().sum::<u64>(),
        up,
        "total timeline up"
    );
    assert_eq!(
        summary.timeline.down.iter().sum::<u64>(),
        down,
        "total timeline down"
    );
    (reports, summary)
}
