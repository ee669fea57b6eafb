//! Latency tests end to end, over real sockets on loopback: the measured count matches
//! `--count` exactly (with warm-up, pipelining and a connection per transaction), the server
//! answered exactly count + warm-up, percentiles come out in order, Ctrl-C gives partial
//! results, and bad flags exit 2.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    output_within, request_frame, run_ntm, send_signal, spawn_ntm, stdout_json, test_config,
    within, RawClient, Relay, TestServer, PROMPT,
};
use ntm::measure::{self, LatencyConfig, LatencyLimit, LatencyOutcome};
use ntm::report::latency::summary;
use ntm::server::ServerConfig;
use ntm::wire::frame::{self, Message};
use serde_json::Value;

/// Upper bound for a latency test of a few thousand transactions on a busy machine.
const TEST_LIMIT: Duration = Duration::from_secs(20);

fn config(limit: LatencyLimit, warmup: u64, concurrency: u32, connect: bool) -> LatencyConfig {
    LatencyConfig {
        request_bytes: 64,
        response_bytes: 64,
        limit,
        concurrency,
        connect_per_transaction: connect,
        warmup,
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
    }
}

async fn latency(addr: SocketAddr, config: LatencyConfig) -> LatencyOutcome {
    let what = format!("latency test {config:?}");
    within(
        TEST_LIMIT,
        &what,
        measure::latency_test(vec![addr], config.clone(), Arc::new(AtomicBool::new(false))),
    )
    .await
    .unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// min <= p50 <= p90 <= p99 <= p99.9 <= p99.99 <= p99.999 <= max, mean within, stddev >= 0.
fn assert_in_order(values: &[(&str, f64)], mean: f64, stddev: f64, context: &str) {
    for pair in values.windows(2) {
        let ((a, x), (b, y)) = (pair[0], pair[1]);
        assert!(
            x <= y,
            "{context}: {a} = {x} µs > {b} = {y} µs ({values:?})"
        );
    }
    assert!(values[0].1 > 0.0, "{context}: a round trip of 0 µs");
    let (min, max) = (values[0].1, values[values.len() - 1].1);
    assert!(
        min <= mean && mean <= max,
        "{context}: mean {mean} outside {min}..{max}"
    );
    assert!(stddev >= 0.0, "{context}: stddev {stddev}");
}

fn assert_summary_in_order(outcome: &LatencyOutcome, context: &str) {
    let s = summary(outcome).expect("transactions were measured");
    let mut values = vec![("min", s.min)];
    values.extend(s.percentiles.iter().copied());
    values.push(("max", s.max));
    let keys: Vec<&str> = values.iter().map(|v| v.0).collect();
    assert_eq!(
        keys,
        ["min", "p50", "p90", "p99", "p99_9", "p99_99", "p99_999", "max"]
    );
    assert_in_order(&values, s.mean, s.stddev, context);
}

/// The same checks on `rtt_us` of the JSON report, plus the histogram's total.
fn assert_json_in_order(doc: &Value) {
    let rtt = &doc["rtt_us"];
    let keys = [
        "min", "p50", "p90", "p99", "p99_9", "p99_99", "p99_999", "max",
    ];
    let values: Vec<(&str, f64)> = keys
        .iter()
        .map(|&k| {
            let v = rtt[k]
                .as_f64()
                .unwrap_or_else(|| panic!("rtt_us.{k} missing: {rtt}"));
            (k, v)
        })
        .collect();
    let f = |k: &str| {
        rtt[k]
            .as_f64()
            .unwrap_or_else(|| panic!("rtt_us.{k}: {rtt}"))
    };
    assert_in_order(&values, f("mean"), f("stddev"), "json");
    let buckets = doc["histogram"].as_array().expect("histogram[]");
    let counted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(
        Some(counted),
        doc["transactions"].as_u64(),
        "histogram total"
    );
    let uppers: Vec<f64> = buckets
        .iter()
        .map(|b| b["rtt_us_upper"].as_f64().unwrap())
        .collect();
    assert!(
        uppers.windows(2).all(|w| w[0] < w[1]),
        "bucket bounds not increasing: {uppers:?}"
    );
    assert!(
        *uppers.last().unwrap() >= f("max") * 0.99,
        "the last bucket ({}) is below max",
        uppers.last().unwrap()
    );
}

/// Starts a transfer test by hand and returns its test id; the server numbers tests in the
/// order it admits them, so two ids bracket everything admitted in between.
async fn next_test_id(addr: SocketAddr) -> u64 {
    let mut client = RawClient::connect(addr).await;
    let mut bytes = frame::encode_hello().to_vec();
    bytes.extend(request_frame(0, 0));
    client.send(&bytes).await;
    match client.read_frame(PROMPT).await {
        Some(Message::Accepted { test_id, .. }) => test_id,
        other => panic!("expected accepted, got {other:?}"),
    }
}

// ---- Counts and percentiles, through the library ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_counts_are_exact_and_percentiles_in_order() {
    let server = TestServer::start(test_config()).await;
    // (count, warm-up, in flight)
    for (count, warmup, concurrency) in [(2000, 0, 1), (2000, 100, 1), (2000, 100, 4), (1999, 7, 3)]
    {
        let context = format!("count {count}, warm-up {warmup}, concurrency {concurrency}");
        let outcome = latency(
            server.addr,
            config(LatencyLimit::Count(count), warmup, concurrency, false),
        )
        .await;
        assert_eq!(outcome.transactions(), count, "{context}: measured");
        assert_eq!(
            outcome.server_transactions,
            Some(count + warmup),
            "{context}: the server's count"
        );
        assert!(!outcome.partial, "{context}");
        assert!(outcome.elapsed > Duration::ZERO, "{context}");
        assert!(outcome.transactions_per_second() > 0.0, "{context}");
        assert_summary_in_order(&outcome, &context);
    }
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_tests_measure_every_transaction_the_server_answered() {
    let server = TestServer::start(test_config()).await;
    for (warmup, concurrency) in [(0, 1), (50, 4)] {
        let began = Instant::now();
        let outcome = latency(
            server.addr,
            config(
                LatencyLimit::Duration(Duration::from_millis(300)),
                warmup,
                concurrency,
                false,
            ),
        )
        .await;
        assert!(began.elapsed() >= Duration::from_millis(300));
        assert!(outcome.transactions() > 0);
        assert!(
            outcome.elapsed >= Duration::from_millis(300),
            "{:?}",
            outcome.elapsed
        );
        assert_eq!(
            outcome.server_transactions,
            Some(outcome.transactions() + warmup),
            "warm-up {warmup}, concurrency {concurrency}"
        );
        assert_summary_in_order(&outcome, "duration");
    }
    server.stop_within(PROMPT).await;
}

/// With a connection per transaction the server counts nothing per test, but numbers every
/// test it admits: exactly count + warm-up connections must have been made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_per_transaction_counts_are_exact() {
    let server = TestServer::start(ServerConfig {
        max_tests: 8,
        ..test_config()
    })
    .await;
    for (count, warmup, concurrency) in [(101, 0, 1), (101, 0, 3), (101, 10, 3), (40, 2, 4)] {
        let context = format!("count {count}, warm-up {warmup}, concurrency {concurrency}");
        let before = next_test_id(server.addr).await;
        let outcome = latency(
            server.addr,
            config(LatencyLimit::Count(count), warmup, concurrency, true),
        )
        .await;
        let after = next_test_id(server.addr).await;
        assert_eq!(outcome.transactions(), count, "{context}: measured");
        assert_eq!(outcome.server_transactions, None, "{context}");
        assert!(!outcome.partial, "{context}");
        assert_summary_in_order(&outcome, &context);
        assert_eq!(
            after - before - 1,
            count + warmup,
            "{context}: connections made (transactions run)"
        );
    }
    server.stop_within(PROMPT).await;
}

/// Many large requests in flight: neither side may block writing while the other does too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_large_messages_do_not_deadlock() {
    let server = TestServer::start(test_config()).await;
    let mut config = config(LatencyLimit::Count(32), 0, 16, false);
    config.request_bytes = 1 << 20;
    config.response_bytes = 1 << 20;
    config.io_timeout = Duration::from_secs(3);
    let outcome = latency(server.addr, config).await;
    assert_eq!(outcome.transactions(), 32);
    assert_eq!(outcome.server_transactions, Some(32));
    server.stop_within(PROMPT).await;
}

// ---- Through the binary ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_json_count_matches_and_percentiles_in_order() {
    let server = TestServer::start(test_config()).await;
    let addr = server.addr.to_string();

    let output = run_ntm(
        &[
            "latency",
            &addr,
            "-n",
            "500",
            "--warmup",
            "20",
            "--concurrency",
            "4",
            "--format",
            "json",
        ],
        TEST_LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let doc = stdout_json(&output);
    assert_eq!(doc["mode"], "rr");
    assert_eq!(doc["count"], 500);
    assert_eq!(doc["transactions"], 500);
    assert_eq!(doc["warmup"], 20);
    assert_eq!(doc["concurrency"], 4);
    assert_eq!(doc["server_transactions"], 520);
    assert_eq!(doc["partial"], false);
    assert!(doc["transactions_per_second"].as_f64().unwrap() > 0.0);
    assert_json_in_order(&doc);
    common::assert_valid("latency", &doc);

    let output = run_ntm(
        &[
            "latency",
            &addr,
            "-n",
            "200",
            "--connect",
            "--concurrency",
            "2",
            "--format",
            "json",
        ],
        TEST_LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let doc = stdout_json(&output);
    assert_eq!(doc["mode"], "crr");
    assert_eq!(doc["transactions"], 200);
    assert_eq!(doc["server_transactions"], Value::Null);
    assert_json_in_order(&doc);
    common::assert_valid("latency", &doc);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_text_states_full_round_trips_and_the_count() {
    let server = TestServer::start(test_config()).await;
    let addr = server.addr.to_string();
    let output = run_ntm(
        &[
            "latency", &addr, "-n", "300", "--warmup", "10", "--size", "100,1000",
        ],
        TEST_LIMIT,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "Latency test against {addr}: request/response (TCP_RR), request 100.00 B, response 1000.00 B"
        )),
        "{text}"
    );
    assert!(text.contains("Transactions: 300 in "), "{text}");
    assert!(text.contains("(after 10 warm-up)"), "{text}");
    assert!(text.contains("Round-trip time (full RTT"), "{text}");
    for column in [
        "min", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "stddev",
    ] {
        assert!(text.contains(column), "{column} missing:\n{text}");
    }
    // The server's count agrees, so no note about a mismatch.
    assert!(!text.contains("Note:"), "{text}");
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_prints_partial_latency_results_as_valid_json() {
    let server = TestServer::start(test_config()).await;
    // JSON mode prints nothing until the end: the relay shows when requests flow.
    let relay = Relay::start(server.addr, None).await;
    let addr = relay.addr.to_string();
    let child = spawn_ntm(&["latency", &addr, "-t", "30", "--format", "json"]);
    relay.until_relayed(64 * 1000, PROMPT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_signal(&child.0, libc::SIGINT);
    let output = tokio::task::spawn_blocking(move || output_within(child, PROMPT))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let doc = stdout_json(&output);
    assert_eq!(doc["partial"], true, "{doc}");
    let transactions = doc["transactions"].as_u64().unwrap();
    assert!(transactions > 0);
    assert_eq!(doc["server_transactions"], transactions, "{doc}");
    assert!(doc["seconds"].as_f64().unwrap() < 10.0);
    assert_json_in_order(&doc);
    common::assert_valid("latency", &doc);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_writes_an_svg() {
    let server = TestServer::start(test_config()).await;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("latency-plot.svg");
    let _ = std::fs::remove_file(&path);
    let addr = server.addr.to_string();
    let output = run_ntm(
        &[
            "latency",
            &addr,
            "-n",
            "500",
            "--plot",
            path.to_str().unwrap(),
        ],
        TEST_LIMIT,
    )
    .await;
    common::assert_plot_written(output, &path);
    server.stop_within(PROMPT).await;
}

// ---- Bad input ----

#[test]
fn out_of_range_latency_flags_exit_2_with_one_line() {
    let addr = format!("127.0.0.1:{}", common::closed_port());
    common::usage_error(&["latency", &addr, "--size", "0"], "0", "1 byte to 1MB");
    common::usage_error(&["latency", &addr, "--size", "0,64"], "0", "1 byte to 1MB");
    common::usage_error(&["latency", &addr, "--size", "2MB"], "2MB", "1 byte to 1MB");
    common::usage_error(&["latency", &addr, "--concurrency", "0"], "0", "1 to 1024");
    common::usage_error(
        &["latency", &addr, "--concurrency", "1025"],
        "1025",
        "1 to 1024",
    );
    common::usage_error(&["latency", &addr, "-n", "0"], "0", "from 1");
    common::usage_error(&["latency", &addr, "-t", "25h"], "25h", "at most 24h");
}
