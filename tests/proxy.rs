//! End-to-end tests of the proxy's relaying (issue 4): half-closes and resets that propagate,
//! TCP_NODELAY on its sockets, stopping, and a refused upstream. Churn is tested in
//! `proxy_churn.rs`, shaping in `proxy_shaping.rs`, what the proxy reports in `proxy_output.rs`;
//! the harness is in `common/proxy.rs` and `common/churn.rs`.
//!
//! The library proxy runs on port 0 in the test's runtime, in real time: bytes cross real
//! sockets.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use common::proxy::{is_reset, one_shot_upstream, random_pool, read_until_end, sha, TestProxy};
use common::{within, PROMPT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// 1. Half-close
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
// 2. Resets
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
    let mut nodelay = std::collections::HashMap::new();
    for (fd, _) in common::proxy::open_fds() {
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
// 3. Upstream failure
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
