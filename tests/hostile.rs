//! Hostile clients against the library server: each gets a typed error frame or is dropped, and
//! none of them disturbs a well-behaved client, alone or all at once.
//!
//! Real time, not `tokio::time::pause()`: the peers talk over real sockets, and a paused clock
//! auto-advances whenever the runtime waits on the kernel, which would fire idle timeouts while
//! bytes are still in flight. Idle timeouts are short and every bound is wide.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{
    good_transfer, raw_frame, request_frame, test_config, transfer, RawClient, TestServer, PROMPT,
};
use ntm::measure::MeasureError;
use ntm::server::ServerConfig;
use ntm::wire::frame::{self, ErrorCode, Message, MAX_FRAME_LEN};

/// Idle timeout of the servers that drop stalled clients.
const IDLE: Duration = Duration::from_millis(400);
/// Idle timeout long enough that anything answered within [`PROMPT`] was not answered by it.
const PATIENT: Duration = Duration::from_secs(30);

fn config(max_tests: usize, idle_timeout: Duration) -> ServerConfig {
    ServerConfig {
        max_tests,
        idle_timeout,
        grace_period: Duration::from_millis(100),
        ..test_config()
    }
}

fn hello_then(rest: &[u8]) -> Vec<u8> {
    let mut bytes = frame::encode_hello().to_vec();
    bytes.extend_from_slice(rest);
    bytes
}

/// Sends `bytes` on a new connection and expects an error frame with `code`, then a close,
/// sooner than any idle timeout could explain.
async fn refused_with(addr: SocketAddr, bytes: &[u8], code: ErrorCode) {
    let mut client = RawClient::connect(addr).await;
    client.send(bytes).await;
    let ending = client.expect_error(code, PROMPT).await;
    assert_eq!(ending.frames.len(), 1, "{ending:?}");
    assert!(
        !ending.reset,
        "the server reset instead of closing: {ending:?}"
    );
}

/// Transfers, retrying while the server says busy (a freed slot is noticed a moment after the
/// peer leaves); fails after `limit`. Returns how long it took.
async fn transfer_when_free(addr: SocketAddr, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match transfer(addr, 100_000, 50_000).await {
            Ok(sample) => {
                common::assert_exact(&sample, 100_000, 50_000);
                return started.elapsed();
            }
            Err(MeasureError::Refused {
                code: ErrorCode::Busy,
                ..
            }) if started.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("after {:?}: {e}", started.elapsed()),
        }
    }
}

/// Asserts `client` is dropped with a timeout frame, no sooner than the idle timeout after
/// `since` and not much later.
async fn dropped_for_idling(client: &mut RawClient, since: Instant) {
    client.expect_error(ErrorCode::Timeout, IDLE + PROMPT).await;
    let waited = since.elapsed();
    assert!(
        waited >= IDLE.mul_f64(0.9),
        "dropped after {waited:?}, before the idle timeout {IDLE:?}"
    );
}

#[tokio::test]
async fn oversized_frame_length_is_refused_before_its_body() {
    let server = TestServer::start(config(4, PATIENT)).await;
    refused_with(
        server.addr,
        &hello_then(&u32::MAX.to_be_bytes()),
        ErrorCode::FrameTooLarge,
    )
    .await;
    let just_over = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
    refused_with(
        server.addr,
        &hello_then(&just_over),
        ErrorCode::FrameTooLarge,
    )
    .await;
    good_transfer(server.addr, 10_000, 10_000).await;
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn garbage_and_wrong_hellos_are_refused() {
    let server = TestServer::start(config(4, PATIENT)).await;
    let addr = server.addr;
    refused_with(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ErrorCode::BadMagic,
    )
    .await;
    // A frame where the hello should be.
    refused_with(addr, &request_frame(1, 1), ErrorCode::BadMagic).await;
    for version in [0u16, 2, u16::MAX] {
        let mut hello = b"NTM\0".to_vec();
        hello.extend_from_slice(&version.to_be_bytes());
        refused_with(addr, &hello, ErrorCode::UnsupportedVersion).await;
    }
    good_transfer(addr, 10_000, 10_000).await;
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn malformed_and_out_of_turn_frames_are_bad_requests() {
    let server = TestServer::start(config(4, PATIENT)).await;
    let addr = server.addr;
    for body in [
        &br#"{"type":"request","kind":"#[..],
        b"not json at all",
        b"",
        br#"{"type":"launch_missiles"}"#,
        br#"{"type":"request","kind":"transfer","upload_bytes":-1,"download_bytes":0}"#,
        br#"{"type":"request","kind":"transfer","upload_bytes":1e30,"download_bytes":0}"#,
    ] {
        refused_with(addr, &hello_then(&raw_frame(body)), ErrorCode::BadRequest).await;
    }
    // A well-formed message that is not a request.
    refused_with(
        addr,
        &hello_then(&frame::encode(&Message::Fetch)),
        ErrorCode::BadRequest,
    )
    .await;

    // After the upload, anything but fetch.
    let mut client = RawClient::connect(addr).await;
    client.start_test(1000, 1000).await;
    client.send_data(1000).await;
    assert!(matches!(
        client.read_frame(PROMPT).await,
        Some(Message::UploadComplete {
            bytes_received: 1000,
            ..
        })
    ));
    client.send(&request_frame(1, 1)).await;
    client.expect_error(ErrorCode::BadRequest, PROMPT).await;

    // More upload than announced: the surplus is read as a frame, and refused.
    let mut client = RawClient::connect(addr).await;
    client.start_test(1000, 0).await;
    client.send_data(1000 + 64).await;
    let ending = client.read_to_close(PROMPT).await;
    assert!(
        matches!(ending.frames.first(), Some(Message::UploadComplete { .. })),
        "{ending:?}"
    );
    assert_eq!(
        ending.error_code(),
        Some(ErrorCode::FrameTooLarge),
        "{ending:?}"
    );

    good_transfer(addr, 10_000, 10_000).await;
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn absurd_sizes_are_over_the_limit() {
    let server = TestServer::start(config(4, PATIENT)).await;
    let addr = server.addr;
    refused_with(
        addr,
        &hello_then(&request_frame(u64::MAX, 0)),
        ErrorCode::LimitExceeded,
    )
    .await;
    refused_with(
        addr,
        &hello_then(&request_frame(0, u64::MAX)),
        ErrorCode::LimitExceeded,
    )
    .await;
    let over = ntm::report::units::MAX_SIZE + 1;
    refused_with(
        addr,
        &hello_then(&request_frame(over, 1)),
        ErrorCode::LimitExceeded,
    )
    .await;
    server.stop_within(PROMPT).await;

    // The limit is the server's setting, inclusive.
    let server = TestServer::start(ServerConfig {
        max_test_bytes: 100_000,
        ..config(4, PATIENT)
    })
    .await;
    refused_with(
        server.addr,
        &hello_then(&request_frame(100_001, 0)),
        ErrorCode::LimitExceeded,
    )
    .await;
    let refused = transfer(server.addr, 10, 100_001).await;
    assert!(
        matches!(
            refused,
            Err(MeasureError::Refused {
                code: ErrorCode::LimitExceeded,
                ..
            })
        ),
        "{refused:?}"
    );
    good_transfer(server.addr, 100_000, 100_000).await;
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_idle_timeout() {
    let server = TestServer::start(config(4, IDLE)).await;
    // Nothing at all, half a hello, half a frame header, half a frame body.
    let request = request_frame(1, 1);
    let partials: [Vec<u8>; 4] = [
        Vec::new(),
        b"NTM".to_vec(),
        hello_then(&request[..2]),
        hello_then(&request[..request.len() - 3]),
    ];
    for partial in partials {
        let mut client = RawClient::connect(server.addr).await;
        if !partial.is_empty() {
            client.send(&partial).await;
        }
        let since = Instant::now();
        dropped_for_idling(&mut client, since).await;
    }
    good_transfer(server.addr, 10_000, 10_000).await;
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn a_client_that_stalls_mid_test_is_dropped() {
    let server = TestServer::start(config(4, IDLE)).await;
    // Mid-upload.
    let mut client = RawClient::connect(server.addr).await;
    client.start_test(1_000_000, 1000).await;
    client.send_data(10_000).await;
    let since = Instant::now();
    dropped_for_idling(&mut client, since).await;

    // Upload done, never asks for the response.
    let mut client = RawClient::connect(server.addr).await;
    client.start_test(1000, 1000).await;
    client.send_data(1000).await;
    assert!(matches!(
        client.read_frame(PROMPT).await,
        Some(Message::UploadComplete { .. })
    ));
    let since = Instant::now();
    dropped_for_idling(&mut client, since).await;
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_the_response_frees_its_slot_after_the_idle_timeout() {
    let server = TestServer::start(config(1, IDLE)).await;
    let mut client = RawClient::connect(server.addr).await;
    // Far more than the socket buffers hold, so the server's writes block.
    client.start_test(0, 1 << 30).await;
    assert!(matches!(
        client.read_frame(PROMPT).await,
        Some(Message::UploadComplete {
            bytes_received: 0,
            ..
        })
    ));
    client.message(&Message::Fetch).await;
    let since = Instant::now();
    let busy = transfer(server.addr, 10, 10).await;
    assert!(
        matches!(
            busy,
            Err(MeasureError::Refused {
                code: ErrorCode::Busy,
                ..
            })
        ),
        "the stalled test should hold the only slot: {busy:?}"
    );
    transfer_when_free(server.addr, IDLE + PROMPT).await;
    assert!(
        since.elapsed() >= IDLE.mul_f64(0.9),
        "slot freed after {:?}, before the idle timeout",
        since.elapsed()
    );
    drop(client);
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_test_frees_its_slot_at_once() {
    // With one slot and a long idle timeout, only noticing the departure frees the slot in time.
    let server = TestServer::start(config(1, PATIENT)).await;
    let addr = server.addr;

    // Right after admission.
    let mut client = RawClient::connect(addr).await;
    client.start_test(1_000_000, 1_000_000).await;
    drop(client);
    transfer_when_free(addr, PROMPT).await;

    // Half-way through the upload.
    let mut client = RawClient::connect(addr).await;
    client.start_test(1_000_000, 1_000_000).await;
    client.send_data(500_000).await;
    drop(client);
    transfer_when_free(addr, PROMPT).await;

    // Before fetching the response.
    let mut client = RawClient::connect(addr).await;
    client.start_test(1000, 1_000_000).await;
    client.send_data(1000).await;
    assert!(matches!(
        client.read_frame(PROMPT).await,
        Some(Message::UploadComplete { .. })
    ));
    drop(client);
    transfer_when_free(addr, PROMPT).await;

    // Part-way through the response.
    let mut client = RawClient::connect(addr).await;
    client.start_test(0, 1 << 30).await;
    assert!(matches!(
        client.read_frame(PROMPT).await,
        Some(Message::UploadComplete { .. })
    ));
    client.message(&Message::Fetch).await;
    let mut some = [0u8; 100_000];
    tokio::io::AsyncReadExt::read_exact(&mut client.stream, &mut some)
        .await
        .unwrap();
    drop(client);
    transfer_when_free(addr, PROMPT).await;

    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn a_client_over_the_test_cap_is_told_busy_at_once() {
    let server = TestServer::start(config(1, PATIENT)).await;
    let mut holder = RawClient::connect(server.addr).await;
    holder.start_test(1000, 2000).await;

    let started = Instant::now();
    let refused = common::within(PROMPT, "busy refusal", transfer(server.addr, 10, 10)).await;
    match refused {
        Err(MeasureError::Refused {
            code: ErrorCode::Busy,
            message,
            ..
        }) => assert!(message.contains("maximum of 1 test"), "{message}"),
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(started.elapsed() < PROMPT);

    // The refusal did not disturb the admitted test.
    holder.send_data(1000).await;
    assert!(matches!(
        holder.read_frame(PROMPT).await,
        Some(Message::UploadComplete {
            bytes_received: 1000,
            ..
        })
    ));
    holder.message(&Message::Fetch).await;
    let mut response = vec![0u8; 2000];
    common::within(
        PROMPT,
        "response",
        tokio::io::AsyncReadExt::read_exact(&mut holder.stream, &mut response),
    )
    .await
    .unwrap();
    match holder.read_to_close(PROMPT).await.frames.as_slice() {
        [Message::Counters(c)] => {
            assert_eq!((c.bytes_received, c.bytes_sent), (1000, 2000));
        }
        other => panic!("expected counters, got {other:?}"),
    }
    good_transfer(server.addr, 10_000, 10_000).await;
    server.stop_within(PROMPT).await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let server = TestServer::start(ServerConfig {
        max_connections: 2,
        ..config(4, PATIENT)
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = RawClient::connect(server.addr).await;
        client.hello().await;
        held.push(client);
    }
    // Accepted in order, so both slots are taken when this one is accepted.
    let mut third = RawClient::connect(server.addr).await;
    let ending = third.read_to_close(PROMPT).await;
    assert!(ending.frames.is_empty(), "{ending:?}");
    drop(held);
    // The held connections' slots come back when they close.
    let started = Instant::now();
    loop {
        match transfer(server.addr, 1000, 1000).await {
            Ok(sample) => {
                common::assert_exact(&sample, 1000, 1000);
                break;
            }
            // The server notices the closes a moment later; until then it refuses at the door.
            Err(_) if started.elapsed() < PROMPT => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_disturb_a_well_behaved_one() {
    let server = TestServer::start(config(8, IDLE)).await;
    let addr = server.addr;
    let mut hostile = tokio::task::JoinSet::new();
    for round in 0..2 {
        hostile.spawn(async move {
            refused_with(
                addr,
                &hello_then(&u32::MAX.to_be_bytes()),
                ErrorCode::FrameTooLarge,
            )
            .await
        });
        hostile.spawn(async move {
            refused_with(addr, b"GET / HTTP/1.1\r\n\r\n", ErrorCode::BadMagic).await
        });
        hostile.spawn(async move {
            refused_with(
                addr,
                &hello_then(&request_frame(u64::MAX, u64::MAX)),
                ErrorCode::LimitExceeded,
            )
            .await
        });
        hostile.spawn(async move {
            let mut silent = RawClient::connect(addr).await;
            dropped_for_idling(&mut silent, Instant::now()).await;
        });
        hostile.spawn(async move {
            let mut staller = RawClient::connect(addr).await;
            staller.start_test(10_000_000, 0).await;
            staller.send_data(1_000_000).await;
            dropped_for_idling(&mut staller, Instant::now()).await;
        });
        hostile.spawn(async move {
            let mut leaver = RawClient::connect(addr).await;
            leaver.start_test(10_000_000, 10_000_000).await;
            leaver.send_data(2_000_000 + round).await;
        });
    }
    // Served while the hostile clients are connected, stalled or leaving.
    let mut good = tokio::task::JoinSet::new();
    for (payload, response) in [(3_000_001, 1_000_003), (1, 5_000_000), (65_537, 0)] {
        good.spawn(good_transfer(addr, payload, response));
    }
    while let Some(done) = good.join_next().await {
        done.expect("well-behaved client");
    }
    while let Some(done) = hostile.join_next().await {
        done.expect("hostile client saw what it should");
    }
    server.assert_running();
    good_transfer(addr, 2_000_000, 2_000_000).await;
    server.stop_within(PROMPT).await;
}

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_never_takes_the_server_down() {
    let server = TestServer::start(config(8, IDLE)).await;
    let addr = server.addr;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..36 {
        let len = 1 + (rng.next() % 1500) as usize;
        let mut bytes = rng.bytes(len);
        // Three shapes: garbage from the first byte, garbage after a valid hello, and a frame
        // with a plausible length and a garbage body.
        let expected = match i % 3 {
            0 => {
                bytes[0] = b'X';
                Some(ErrorCode::BadMagic)
            }
            1 => {
                bytes = hello_then(&bytes);
                None
            }
            _ => {
                bytes = hello_then(&raw_frame(&bytes));
                Some(ErrorCode::BadRequest)
            }
        };
        clients.spawn(async move {
            let mut client = RawClient::connect(addr).await;
            client.send(&bytes).await;
            let ending = client.read_to_close(IDLE + PROMPT).await;
            match expected {
                Some(code) => assert_eq!(ending.error_code(), Some(code), "{ending:?}"),
                // A short garbage header waits for its body, then times out; a long one is
                // refused at once.
                None => assert!(
                    matches!(
                        ending.error_code(),
                        Some(ErrorCode::FrameTooLarge | ErrorCode::BadRequest | ErrorCode::Timeout)
                    ),
                    "{ending:?}"
                ),
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("garbage client");
    }
    server.assert_running();
    good_transfer(addr, 1_000_000, 1_000_000).await;
    server.stop_within(PROMPT).await;
}
