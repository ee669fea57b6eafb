//! Throughput (stream) tests end to end, over real sockets on loopback: interval counts, exact
//! per-stream byte counts on both sides, every direction, several clients at once, a client
//! killed or interrupted mid-test, a data connection that breaks, bad flags and the plot.
//!
//! Tests that run for a set time pace their senders (`SO_MAX_PACING_RATE`), so two of them
//! sharing this 2-core machine leave the timers and the other test enough CPU.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{
    good_transfer, output_within, reset, run_ntm, send_signal, spawn_ntm, stdout_json,
    stdout_lines, stream_options, stream_request, stream_test, test_config, wait_for_line, within,
    ChildGuard, RawClient, Relay, ResetAfter, TestServer, PROMPT,
};
use ntm::measure::{self, MeasureError, StreamOutcome};
use ntm::server::ServerConfig;
use ntm::wire::frame::{self, ErrorCode, Message, TestRequest};
use ntm::wire::{Direction, Limit, StreamRequest};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Upper bound for one stream test of a couple of seconds, on a busy machine.
const TEST_LIMIT: Duration = Duration::from_secs(15);
/// Pace of timed tests: enough to count, little enough to leave the CPU to the timers.
const PACE_BPS: u64 = 200_000_000;
/// 10,000,001 bytes over 3 streams: the first streams take the remainder.
const TOTAL: u64 = 10_000_001;
const SHARES: [u64; 3] = [3_333_334, 3_333_334, 3_333_333];

fn paced(mut request: StreamRequest, rate_bps: u64) -> StreamRequest {
    request.socket.pacing_rate_bps = Some(rate_bps);
    request
}

/// Server results of a test, which a test that ended normally must have.
fn server_of(outcome: &StreamOutcome) -> &ntm::wire::StreamResults {
    outcome
        .server
        .as_ref()
        .expect("the server sent its final counters")
}

/// A test that ran to its end: not partial, no stream failed on either side.
fn assert_clean(outcome: &StreamOutcome) {
    assert!(!outcome.partial, "the test is marked partial");
    let server = server_of(outcome);
    assert_eq!(server.streams.len(), outcome.request.streams as usize);
    assert_eq!(outcome.streams.len(), outcome.request.streams as usize);
    for (client, server) in outcome.streams.iter().zip(&server.streams) {
        assert_eq!(
            client.error, None,
            "stream {} failed on the client",
            client.stream
        );
        assert_eq!(
            server.error, None,
            "stream {} failed on the server",
            server.stream
        );
    }
}

/// Per stream: the client's (sent, received) and the server's (received, sent).
fn counts(outcome: &StreamOutcome) -> Vec<((u64, u64), (u64, u64))> {
    let server = server_of(outcome);
    outcome
        .streams
        .iter()
        .zip(&server.streams)
        .map(|(c, s)| {
            (
                (c.counters.sent, c.counters.received),
                (s.bytes_received, s.bytes_sent),
            )
        })
        .collect()
}

fn addr_arg(addr: SocketAddr) -> String {
    addr.to_string()
}

// ---- Intervals ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seconds_at_250ms_intervals_yield_8_intervals() {
    let server = TestServer::start(test_config()).await;
    let request = paced(
        stream_request(2, Direction::Upload, Limit::DurationMs(2000), 250),
        PACE_BPS,
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let outcome = within(
        TEST_LIMIT,
        "2 s stream test",
        measure::stream_test(
            &[server.addr],
            request,
            &stream_options(),
            CancellationToken::new(),
            Some(tx),
        ),
    )
    .await
    .expect("stream test");
    assert_clean(&outcome);
    let spans: Vec<(f64, f64)> = outcome
        .intervals
        .iter()
        .map(|s| (s.start.as_secs_f64(), s.end.as_secs_f64()))
        .collect();
    assert_eq!(outcome.intervals.len(), 8, "intervals: {spans:?}");

    // Every interval also went out live, in order, as it happened.
    let mut live = Vec::new();
    while let Ok(sample) = rx.try_recv() {
        live.push(sample);
    }
    assert_eq!(
        live, outcome.intervals,
        "live samples differ from the outcome"
    );

    // Back to back from 0 to the end of the test, each about 250 ms (timers run late on a
    // busy machine, hence the wide band), the last one reaching ~2 s.
    assert_eq!(outcome.intervals[0].start, Duration::ZERO);
    for pair in outcome.intervals.windows(2) {
        assert_eq!(
            pair[0].end, pair[1].start,
            "gap between intervals: {spans:?}"
        );
    }
    for (i, s) in outcome.intervals.iter().enumerate() {
        let len = (s.end - s.start).as_secs_f64();
        assert!(!s.omitted, "interval {i} omitted without --omit");
        assert!(
            (0.125..0.45).contains(&len),
            "interval {i} lasted {len} s: {spans:?}"
        );
        assert_eq!(s.streams.len(), 2);
    }
    let last_end = spans[7].1;
    assert!(
        (1.95..2.6).contains(&last_end),
        "last interval ends at {last_end} s"
    );

    // The intervals add up to the totals, stream by stream, and the server got every byte.
    for (i, ((sent, received), (server_received, _))) in counts(&outcome).into_iter().enumerate() {
        let in_intervals: u64 = outcome
            .intervals
            .iter()
            .map(|s| s.streams[i].bytes_sent)
            .sum();
        assert_eq!(in_intervals, sent, "stream {i}: intervals vs total sent");
        assert!(sent > 0, "stream {i} sent nothing");
        assert_eq!(
            received, 0,
            "stream {i}: the client received in an upload test"
        );
        assert_eq!(
            server_received, sent,
            "stream {i}: server received vs client sent"
        );
    }
    server.stop_within(PROMPT).await;
}

// ---- Exact counts of --bytes tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_byte_test_counts_exactly_per_stream() {
    let server = TestServer::start(test_config()).await;
    let request = stream_request(3, Direction::Upload, Limit::Bytes(TOTAL), 1000);
    let outcome = stream_test(server.addr, request, TEST_LIMIT).await;
    assert_clean(&outcome);
    for (i, ((sent, received), (server_received, server_sent))) in
        counts(&outcome).into_iter().enumerate()
    {
        assert_eq!(sent, SHARES[i], "stream {i}: client sent");
        assert_eq!(server_received, SHARES[i], "stream {i}: server received");
        assert_eq!(
            (received, server_sent),
            (0, 0),
            "stream {i}: nothing comes back"
        );
    }
    server.stop_within(PROMPT).await;
}

/// Reverse: the server sends its share, the client must receive all of it. The pace keeps
/// bytes in the server's socket buffer after its last write, as any real link does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_byte_test_delivers_every_byte_the_server_sent() {
    let server = TestServer::start(test_config()).await;
    let request = paced(
        stream_request(3, Direction::Download, Limit::Bytes(TOTAL), 1000),
        PACE_BPS,
    );
    let outcome = stream_test(server.addr, request, TEST_LIMIT).await;
    for (i, ((sent, received), (server_received, server_sent))) in
        counts(&outcome).into_iter().enumerate()
    {
        assert_eq!(server_sent, SHARES[i], "stream {i}: server sent");
        assert_eq!(
            received, SHARES[i],
            "stream {i}: client received (client error: {:?})",
            outcome.streams[i].error
        );
        assert_eq!(
            (sent, server_received),
            (0, 0),
            "stream {i}: nothing goes up"
        );
    }
    assert_clean(&outcome);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidir_byte_test_counts_exactly_both_ways() {
    let server = TestServer::start(test_config()).await;
    let request = paced(
        stream_request(3, Direction::Bidir, Limit::Bytes(TOTAL), 1000),
        PACE_BPS,
    );
    let outcome = stream_test(server.addr, request, TEST_LIMIT).await;
    for (i, ((sent, received), (server_received, server_sent))) in
        counts(&outcome).into_iter().enumerate()
    {
        assert_eq!(sent, SHARES[i], "stream {i}: client sent");
        assert_eq!(server_received, SHARES[i], "stream {i}: server received");
        assert_eq!(server_sent, SHARES[i], "stream {i}: server sent");
        assert_eq!(
            received, SHARES[i],
            "stream {i}: client received (client error: {:?})",
            outcome.streams[i].error
        );
    }
    assert_clean(&outcome);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_byte_test_json_reports_exact_shares() {
    let server = TestServer::start(test_config()).await;
    let addr = addr_arg(server.addr);
    let output = run_ntm(
        &[
            "measure", &addr, "-n", "10000001", "-P", "3", "--format", "json",
        ],
        TEST_LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let doc = stdout_json(&output);
    assert_eq!(doc["start"]["test_start"]["bytes"], TOTAL);
    assert_eq!(doc["end"]["sum_sent"]["bytes"], TOTAL);
    assert_eq!(doc["end"]["sum_received"]["bytes"], TOTAL);
    let streams = doc["end"]["streams"].as_array().expect("end.streams[]");
    assert_eq!(streams.len(), 3);
    for (i, s) in streams.iter().enumerate() {
        assert_eq!(s["sender"]["bytes"], SHARES[i], "{s}");
        assert_eq!(s["receiver"]["bytes"], SHARES[i], "{s}");
        assert_eq!(s["sender"]["socket"], i, "{s}");
        assert_eq!(s["reverse"], false, "{s}");
    }
    assert_eq!(doc["end"]["failed_streams"], Value::Array(vec![]));
    assert_eq!(doc["partial"], false);
    server.stop_within(PROMPT).await;
}

// ---- Directions ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_and_bidir_report_both_directions() {
    let server = TestServer::start(test_config()).await;

    let reverse = paced(
        stream_request(2, Direction::Download, Limit::DurationMs(700), 100),
        PACE_BPS,
    );
    let outcome = stream_test(server.addr, reverse, TEST_LIMIT).await;
    for (i, ((sent, received), (server_received, server_sent))) in
        counts(&outcome).into_iter().enumerate()
    {
        assert_eq!(sent, 0, "reverse stream {i}: the client sent");
        assert_eq!(
            server_received, 0,
            "reverse stream {i}: the server received"
        );
        assert!(
            server_sent > 0,
            "reverse stream {i}: the server sent nothing"
        );
        assert!(
            received > 0,
            "reverse stream {i}: the client received nothing"
        );
        assert_eq!(
            received, server_sent,
            "reverse stream {i}: download not exact"
        );
        let in_intervals: u64 = outcome
            .intervals
            .iter()
            .map(|s| s.streams[i].bytes_received)
            .sum();
        assert!(
            in_intervals > 0,
            "reverse stream {i}: no interval saw bytes"
        );
    }

    let bidir = paced(
        stream_request(2, Direction::Bidir, Limit::DurationMs(700), 100),
        PACE_BPS,
    );
    let outcome = stream_test(server.addr, bidir, TEST_LIMIT).await;
    for (i, ((sent, received), (server_received, server_sent))) in
        counts(&outcome).into_iter().enumerate()
    {
        assert!(
            sent > 0 && received > 0,
            "bidir stream {i}: client {sent}/{received}"
        );
        assert!(
            server_sent > 0 && server_received > 0,
            "bidir stream {i}: server {server_received}/{server_sent}"
        );
        assert_eq!(server_received, sent, "bidir stream {i}: upload not exact");
        assert_eq!(
            received, server_sent,
            "bidir stream {i}: download not exact"
        );
        let up: u64 = outcome
            .intervals
            .iter()
            .map(|s| s.streams[i].bytes_sent)
            .sum();
        let down: u64 = outcome
            .intervals
            .iter()
            .map(|s| s.streams[i].bytes_received)
            .sum();
        assert!(
            up > 0 && down > 0,
            "bidir stream {i}: intervals {up}/{down}"
        );
    }
    server.stop_within(PROMPT).await;
}

fn sum_bytes(doc: &Value, key: &str) -> u64 {
    doc["end"][key]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("end.{key}.bytes missing: {}", doc["end"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reverse_and_bidir_json_have_both_directions() {
    let server = TestServer::start(test_config()).await;
    let addr = addr_arg(server.addr);
    let base = [
        "measure", &addr, "-t", "1s", "-i", "250ms", "-P", "2", "--rate", "200Mbit", "--format",
        "json",
    ];

    let output = run_ntm(&[&base[..], &["--bidir"]].concat(), TEST_LIMIT).await;
    assert!(output.status.success(), "{output:?}");
    let doc = stdout_json(&output);
    assert_eq!(doc["start"]["test_start"]["bidir"], true);
    assert_eq!(doc["start"]["test_start"]["reverse"], false);
    for key in [
        "sum_sent",
        "sum_received",
        "sum_sent_bidir_reverse",
        "sum_received_bidir_reverse",
    ] {
        assert!(sum_bytes(&doc, key) > 0, "end.{key}.bytes is 0");
    }
    let intervals = doc["intervals"].as_array().expect("intervals[]");
    assert!(!intervals.is_empty());
    for i in intervals {
        // Two streams, each in both directions.
        assert_eq!(i["streams"].as_array().unwrap().len(), 4, "{i}");
        // Within the planned second both directions flow (after it, one may still drain).
        if i["sum"]["end"].as_f64().unwrap() <= 1.0 {
            assert!(i["sum"]["bytes"].as_u64().unwrap() > 0, "{i}");
            assert!(i["sum_bidir_reverse"]["bytes"].as_u64().unwrap() > 0, "{i}");
        }
    }
    let streams = doc["end"]["streams"].as_array().expect("end.streams[]");
    let reversed: Vec<bool> = streams.iter().map(|s| s["reverse"] == true).collect();
    assert_eq!(reversed, [false, false, true, true]);
    common::assert_valid("measure-stream", &doc);

    let output = run_ntm(&[&base[..], &["-R"]].concat(), TEST_LIMIT).await;
    assert!(output.status.success(), "{output:?}");
    let doc = stdout_json(&output);
    assert_eq!(doc["start"]["test_start"]["reverse"], true);
    assert_eq!(doc["start"]["test_start"]["bidir"], false);
    assert!(sum_bytes(&doc, "sum_sent") > 0);
    assert!(sum_bytes(&doc, "sum_received") > 0);
    assert!(doc["end"].get("sum_sent_bidir_reverse").is_none());
    let streams = doc["end"]["streams"].as_array().expect("end.streams[]");
    assert_eq!(streams.len(), 2);
    assert!(streams.iter().all(|s| s["reverse"] == true), "{streams:?}");
    common::assert_valid("measure-stream", &doc);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omit_leaves_the_warm_up_out_of_the_totals() {
    let server = TestServer::start(test_config()).await;
    let mut request = paced(
        stream_request(1, Direction::Upload, Limit::DurationMs(1000), 250),
        PACE_BPS,
    );
    request.omit_ms = 500;
    let outcome = stream_test(server.addr, request, TEST_LIMIT).await;
    assert_clean(&outcome);
    // 0.5 s of warm-up, then 1 s measured, at 250 ms intervals.
    let omitted: Vec<bool> = outcome.intervals.iter().map(|s| s.omitted).collect();
    assert_eq!(omitted, [true, true, false, false, false, false]);
    let client = outcome.streams[0].counters;
    assert!(client.omitted_sent > 0 && client.omitted_sent < client.sent);
    let measured: u64 = outcome
        .intervals
        .iter()
        .filter(|s| !s.omitted)
        .map(|s| s.streams[0].bytes_sent)
        .sum();
    let doc = ntm::report::stream::json("test", &outcome);
    let total = sum_bytes(&doc, "sum_sent");
    assert_eq!(
        total,
        client.sent - client.omitted_sent,
        "totals leave the warm-up out"
    );
    // The warm-up's end and the interval boundary are two timers at the same instant.
    let slack = total / 10;
    assert!(
        total.abs_diff(measured) <= slack,
        "totals {total}, measured intervals {measured}"
    );
    let seconds = doc["end"]["sum_sent"]["seconds"].as_f64().unwrap();
    assert!((0.95..1.4).contains(&seconds), "measured for {seconds} s");
    assert_eq!(doc["start"]["test_start"]["omit"], 0.5);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_test_over_the_cap_is_told_busy() {
    let server = TestServer::start(ServerConfig {
        max_tests: 1,
        idle_timeout: Duration::from_secs(30),
        ..test_config()
    })
    .await;
    let mut holder = RawClient::connect(server.addr).await;
    holder.start_test(1000, 1000).await;
    let addr = addr_arg(server.addr);
    let began = Instant::now();
    let output = run_ntm(&["measure", &addr, "-t", "5s", "-P", "4"], TEST_LIMIT).await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "took {:?}",
        began.elapsed()
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let line = common::one_line(&output.stderr);
    assert!(
        line.starts_with("ntm: error: ") && line.contains("busy"),
        "{line}"
    );
    drop(holder);
    server.stop_within(PROMPT).await;
}

// ---- Several clients ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_at_once_all_complete() {
    let server = TestServer::start(ServerConfig {
        max_tests: 4,
        ..test_config()
    })
    .await;
    let began = Instant::now();
    let mut clients = JoinSet::new();
    // Every direction at once, one client twice.
    let directions = [
        Direction::Upload,
        Direction::Download,
        Direction::Bidir,
        Direction::Upload,
    ];
    for direction in directions {
        let request = paced(
            stream_request(2, direction, Limit::DurationMs(1000), 250),
            PACE_BPS / 4,
        );
        let addr = server.addr;
        clients.spawn(async move { stream_test(addr, request, TEST_LIMIT).await });
    }
    let mut done = 0;
    while let Some(outcome) = clients.join_next().await {
        let outcome = outcome.expect("client task");
        assert_clean(&outcome);
        assert!(
            outcome.elapsed >= Duration::from_millis(1000),
            "{:?}",
            outcome.elapsed
        );
        let direction = outcome.request.direction;
        for (i, ((sent, received), (server_received, server_sent))) in
            counts(&outcome).into_iter().enumerate()
        {
            // Each side reads its streams to the end: what one sent, the other received.
            assert_eq!(server_received, sent, "{direction:?} stream {i}: upload");
            assert_eq!(received, server_sent, "{direction:?} stream {i}: download");
            assert_eq!(
                sent > 0,
                direction.client_sends(),
                "{direction:?} stream {i}"
            );
            assert_eq!(
                server_sent > 0,
                direction.server_sends(),
                "{direction:?} stream {i}"
            );
        }
        done += 1;
    }
    assert_eq!(done, 4);
    // One after another they would take over 4 s.
    let wall = began.elapsed();
    assert!(
        wall < Duration::from_secs(3),
        "4 one-second tests took {wall:?}"
    );
    server.stop_within(PROMPT).await;
}

// ---- A client that dies or is interrupted ----

/// Polls until a transfer is admitted; returns how long that took.
async fn until_admitted(addr: SocketAddr, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match common::transfer(addr, 1000, 1000).await {
            Ok(sample) => {
                common::assert_exact(&sample, 1000, 1000);
                return start.elapsed();
            }
            Err(MeasureError::Refused {
                code: ErrorCode::Busy,
                ..
            }) => {}
            Err(e) => panic!("probe transfer failed: {e}"),
        }
        assert!(
            start.elapsed() < limit,
            "the slot was not freed within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the first interval line of a text-mode `ntm measure` child: its test is running.
async fn until_first_interval(
    lines: std::sync::mpsc::Receiver<String>,
) -> std::sync::mpsc::Receiver<String> {
    tokio::task::spawn_blocking(move || {
        wait_for_line(&lines, "[  0", PROMPT);
        lines
    })
    .await
    .unwrap()
}

/// Waits for a child to exit within `limit`; returns its status and the rest of its stdout.
async fn exit_within(
    mut child: ChildGuard,
    lines: std::sync::mpsc::Receiver<String>,
    limit: Duration,
) -> (std::process::ExitStatus, String) {
    tokio::task::spawn_blocking(move || {
        let status = common::wait_timeout(&mut child.0, limit)
            .unwrap_or_else(|| panic!("ntm still running {limit:?} later"));
        // The process is gone, so the reader thread sees the end of stdout.
        let rest: Vec<String> = lines.iter().collect();
        (status, rest.join("\n") + "\n")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_test_frees_its_slot() {
    // One slot and an idle timeout far beyond the wait allowed: only noticing the closed
    // control connection frees the slot in time.
    let server = TestServer::start(ServerConfig {
        max_tests: 1,
        idle_timeout: Duration::from_secs(20),
        ..test_config()
    })
    .await;
    let addr = addr_arg(server.addr);
    for extra in [&[][..], &["-R"][..], &["--bidir"][..]] {
        let args = [
            &[
                "measure", &addr, "-t", "30", "-i", "100ms", "--rate", "100Mbit",
            ][..],
            extra,
        ]
        .concat();
        let mut child = spawn_ntm(&args);
        let lines = stdout_lines(&mut child);
        let _lines = until_first_interval(lines).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "ntm {args:?} ended early"
        );
        child.0.kill().expect("kill -9 the client");
        child.0.wait().unwrap();
        let took = until_admitted(server.addr, Duration::from_secs(5)).await;
        assert!(
            took < Duration::from_secs(3),
            "{extra:?}: slot freed after {took:?}"
        );
        server.assert_running();
    }
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_prints_partial_results_as_valid_json() {
    let server = TestServer::start(test_config()).await;
    // JSON mode prints nothing until the end: the relay shows when data flows.
    let relay = Relay::start(server.addr, None).await;
    let addr = addr_arg(relay.addr);
    let child = spawn_ntm(&[
        "measure", &addr, "-t", "30", "-i", "200ms", "-P", "2", "--rate", "200Mbit", "--format",
        "json",
    ]);
    relay.until_relayed(1_000_000, PROMPT).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    send_signal(&child.0, libc::SIGINT);
    let interrupted = Instant::now();
    let output = tokio::task::spawn_blocking(move || output_within(child, PROMPT))
        .await
        .unwrap();
    assert!(
        interrupted.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        interrupted.elapsed()
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let doc = stdout_json(&output);
    assert_eq!(doc["partial"], true, "{doc}");
    let intervals = doc["intervals"].as_array().expect("intervals[]");
    assert!(intervals.len() >= 2, "{} intervals", intervals.len());
    let sent = sum_bytes(&doc, "sum_sent");
    assert!(sent > 0);
    // The client stopped sending; the server read to the end of every stream.
    assert_eq!(sum_bytes(&doc, "sum_received"), sent, "{}", doc["end"]);
    let seconds = doc["end"]["sum_sent"]["seconds"].as_f64().unwrap();
    assert!(seconds < 10.0, "a 30 s test stopped at {seconds} s");
    assert_eq!(
        doc["end"]["failed_streams"],
        Value::Array(vec![]),
        "{}",
        doc["end"]
    );
    common::assert_valid("measure-stream", &doc);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_text_mode_says_the_results_are_partial() {
    let server = TestServer::start(test_config()).await;
    let addr = addr_arg(server.addr);
    let mut child = spawn_ntm(&[
        "measure", &addr, "-t", "30", "-i", "200ms", "-R", "--rate", "200Mbit",
    ]);
    let lines = until_first_interval(stdout_lines(&mut child)).await;
    send_signal(&child.0, libc::SIGINT);
    let (status, text) = exit_within(child, lines, PROMPT).await;
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(
        text.contains("Stopped early: these results are partial."),
        "{text}"
    );
    assert!(
        text.contains("  sender\n") && text.contains("receiver\n"),
        "{text}"
    );
    assert!(!text.contains("failed"), "{text}");
    server.stop_within(PROMPT).await;
}

// ---- A data connection that breaks ----

/// Opens a data connection and joins the test with `cookie` as stream `index`.
async fn join(addr: SocketAddr, cookie: u64, index: u16) -> TcpStream {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect a data stream");
    let mut bytes = frame::encode_hello().to_vec();
    bytes.extend(frame::encode(&Message::Join {
        cookie,
        stream: index,
    }));
    stream.write_all(&bytes).await.unwrap();
    stream
}

/// Reads control frames until `done` accepts one, skipping others; fails after `limit`.
async fn read_until<T>(
    control: &mut RawClient,
    limit: Duration,
    mut done: impl FnMut(&Message) -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match control.read_frame(left).await {
            Some(m) => {
                if let Some(v) = done(&m) {
                    return v;
                }
            }
            None => panic!("the server closed the control connection"),
        }
    }
}

/// Server side, with exact counts: a hand-made client resets one of two streams after the
/// server has counted 1 MB on it, and finishes the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_is_failed_with_its_bytes_and_the_test_ends_cleanly_on_the_server() {
    let server = TestServer::start(test_config()).await;
    let mut control = RawClient::connect(server.addr).await;
    let request = stream_request(2, Direction::Upload, Limit::DurationMs(60_000), 20);
    control.hello().await;
    control
        .message(&Message::Request(TestRequest::Stream(request)))
        .await;
    let cookie = match control.read_frame(PROMPT).await {
        Some(Message::Accepted { cookie, .. }) => cookie,
        other => panic!("expected accepted, got {other:?}"),
    };
    let mut doomed = join(server.addr, cookie, 0).await;
    let mut survivor = join(server.addr, cookie, 1).await;
    assert_eq!(control.read_frame(PROMPT).await, Some(Message::Start));

    const MB: u64 = 1_000_000;
    let block = vec![0x5au8; MB as usize];
    within(PROMPT, "send 1 MB on each stream", async {
        doomed.write_all(&block).await.unwrap();
        survivor.write_all(&block).await.unwrap();
    })
    .await;
    // Wait until the server has counted every byte of both, so the reset loses none.
    read_until(&mut control, PROMPT, |m| match m {
        Message::Interval(i) => (i.streams.iter().all(|s| s.bytes_received == MB)).then_some(()),
        other => panic!("expected intervals, got {other:?}"),
    })
    .await;
    reset(doomed);
    within(PROMPT, "finish the other stream", async {
        survivor.write_all(&block).await.unwrap();
        survivor.shutdown().await.unwrap();
    })
    .await;
    let results = read_until(&mut control, PROMPT, |m| match m {
        Message::Interval(_) => None,
        Message::StreamResults(r) => Some(r.clone()),
        other => panic!("expected results, got {other:?}"),
    })
    .await;
    let broken = &results.streams[0];
    assert!(
        broken.error.is_some(),
        "the reset stream is not marked failed: {broken:?}"
    );
    assert_eq!(broken.bytes_received, MB, "bytes of the broken stream");
    let whole = &results.streams[1];
    assert_eq!(whole.error, None, "{whole:?}");
    assert_eq!(whole.bytes_received, 2 * MB, "bytes of the whole stream");
    // The server then closes the control connection cleanly: no error frame, no reset.
    let ending = control.read_to_close(PROMPT).await;
    assert!(ending.frames.is_empty() && !ending.reset, "{ending:?}");
    server.assert_running();
    good_transfer(server.addr, 100_000, 100_000).await;
    server.stop_within(PROMPT).await;
}

/// Client side, through the library: a relay resets the first data connection (its second
/// connection, after the control one) mid-test; the other stream runs to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_is_reported_failed_and_the_client_test_still_ends() {
    let server = TestServer::start(test_config()).await;
    let proxy = Relay::start(
        server.addr,
        Some(ResetAfter {
            connection: 1,
            bytes: 2_000_000,
        }),
    )
    .await;
    let request = paced(
        stream_request(2, Direction::Upload, Limit::DurationMs(1200), 200),
        PACE_BPS,
    );
    let outcome = stream_test(proxy.addr, request, TEST_LIMIT).await;
    assert!(!outcome.partial);
    let results = server_of(&outcome);
    let (client0, server0) = (&outcome.streams[0], &results.streams[0]);
    assert!(client0.error.is_some(), "client did not see stream 0 break");
    assert!(server0.error.is_some(), "server did not see stream 0 break");
    assert!(
        server0.bytes_received >= 1_000_000,
        "stream 0 bytes so far: {server0:?}"
    );
    assert!(server0.bytes_received <= client0.counters.sent);
    let (client1, server1) = (&outcome.streams[1], &results.streams[1]);
    assert_eq!(client1.error, None);
    assert_eq!(server1.error, None);
    assert_eq!(
        server1.bytes_received, client1.counters.sent,
        "the whole stream is exact"
    );
    assert!(
        outcome.elapsed >= Duration::from_millis(1200),
        "ended at {:?}",
        outcome.elapsed
    );

    // The report names the failed stream and keeps its bytes.
    let doc = ntm::report::stream::json(&proxy.addr.to_string(), &outcome);
    let failed = doc["end"]["failed_streams"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["socket"], 0);
    assert!(failed[0]["client_error"].is_string() && failed[0]["server_error"].is_string());
    assert_eq!(
        doc["end"]["streams"][0]["receiver"]["bytes"],
        server0.bytes_received
    );
    assert_eq!(
        doc["end"]["streams"][0]["sender"]["bytes"],
        client0.counters.sent
    );
    common::assert_valid("measure-stream", &doc);

    server.assert_running();
    good_transfer(server.addr, 100_000, 100_000).await;
    server.stop_within(PROMPT).await;
}

// ---- Bad input ----

#[test]
fn out_of_range_throughput_flags_exit_2_with_one_line() {
    let addr = format!("127.0.0.1:{}", common::closed_port());
    common::usage_error(&["measure", &addr, "-t", "1s", "-P", "0"], "0", "1 to 128");
    common::usage_error(
        &["measure", &addr, "-t", "1s", "-P", "129"],
        "129",
        "1 to 128",
    );
    common::usage_error(&["measure", &addr, "--streams", "129"], "129", "1 to 128");
    common::usage_error(&["measure", &addr, "-t", "25h"], "25h", "at most 24h");
    common::usage_error(
        &["measure", &addr, "-t", "1s", "-i", "5ms"],
        "5ms",
        "at least 10ms",
    );
    common::usage_error(&["measure", &addr, "-t", "0s"], "0s", "more than 0");
}

// ---- Plot ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_writes_an_svg() {
    let server = TestServer::start(test_config()).await;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("throughput-plot.svg");
    let _ = std::fs::remove_file(&path);
    let addr = addr_arg(server.addr);
    let output = run_ntm(
        &[
            "measure",
            &addr,
            "-t",
            "1s",
            "-i",
            "100ms",
            "-P",
            "2",
            "--rate",
            "200Mbit",
            "--plot",
            path.to_str().unwrap(),
        ],
        TEST_LIMIT,
    )
    .await;
    common::assert_plot_written(output, &path);
    server.stop_within(PROMPT).await;
}
