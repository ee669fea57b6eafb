//! `measure` against the server: through the library (exact byte counts on both sides for odd
//! and empty sizes) and through the real binary against an in-process server (JSON and text).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use assert_cmd::Command;
use common::{assert_exact, test_config, transfer, within, TestServer, PROMPT};
use ntm::measure::{self, TransferSpec};
use ntm::server::ServerConfig;
use serde_json::Value;

/// Runs the binary with `args` off the async runtime, so the in-process server keeps serving.
async fn ntm(args: Vec<String>) -> std::process::Output {
    let run = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("ntm")
            .unwrap()
            .args(&args)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap()
    });
    within(Duration::from_secs(40), "ntm measure", run)
        .await
        .unwrap()
}

fn measure_args(addr: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["measure".to_string(), addr.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The fields of each run in `measure --format json`, as README.md documents them.
const RUN_KEYS: [&str; 12] = [
    "client_received_bytes",
    "client_sent_bytes",
    "connect_seconds",
    "download_bits_per_second",
    "download_seconds",
    "server_download_seconds",
    "server_received_bytes",
    "server_sent_bytes",
    "server_upload_seconds",
    "total_seconds",
    "upload_bits_per_second",
    "upload_seconds",
];

fn json_of(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "measure failed: {output:?}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_transfer_counts_are_exact_on_both_sides() {
    let config = ServerConfig {
        buffer_size: 64 * 1024,
        ..test_config()
    };
    let server = TestServer::start(config).await;
    // Sizes around the buffer sizes (64 KiB server, 256 KiB client), odd sizes, and empties.
    let cases = [
        (1, 1),
        (1024, 512),
        (1_000_003, 0),
        (0, 1_000_003),
        (0, 0),
        (64 * 1024 + 1, 64 * 1024 - 1),
        (3 * 1024 * 1024 + 7, 5 * 1024 * 1024 + 3),
    ];
    for (payload, response) in cases {
        let sample = within(PROMPT, "transfer", transfer(server.addr, payload, response))
            .await
            .unwrap_or_else(|e| panic!("transfer {payload}/{response} failed: {e}"));
        assert_exact(&sample, payload, response);
        assert_eq!(sample.server_addr, server.addr);
        assert!(sample.total >= sample.upload + sample.download);
    }
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_each_count_exactly() {
    let server = TestServer::start(ServerConfig {
        max_tests: 16,
        ..test_config()
    })
    .await;
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..12u64 {
        let (payload, response) = (100_000 * i + i, 77_777 * (12 - i));
        clients.spawn(common::good_transfer(server.addr, payload, response));
    }
    while let Some(done) = clients.join_next().await {
        done.expect("concurrent transfer");
    }
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_series_runs_every_spec_repeat_times() {
    let server = TestServer::start(test_config()).await;
    let specs = [
        TransferSpec {
            payload_bytes: 1000,
            response_bytes: 10,
        },
        TransferSpec {
            payload_bytes: 200_001,
            response_bytes: 100_000,
        },
    ];
    let series = within(
        PROMPT,
        "series",
        measure::run_series(
            &[server.addr],
            &specs,
            3,
            Duration::ZERO,
            &common::client_options(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(series.len(), 2);
    for (s, spec) in series.iter().zip(specs) {
        assert_eq!(s.spec, spec);
        assert_eq!(s.runs.len(), 3);
        for run in &s.runs {
            assert_exact(run, spec.payload_bytes, spec.response_bytes);
        }
    }
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_json_has_runs_and_summaries() {
    let server = TestServer::start(test_config()).await;
    let output = ntm(measure_args(
        server.addr,
        &["--sizes", "1KB,100KB", "--repeat", "3", "--format", "json"],
    ))
    .await;
    let doc = json_of(&output);
    assert_eq!(doc["server"], server.addr.to_string());
    assert_eq!(doc["repeat"], 3);
    let tests = doc["tests"].as_array().expect("tests[]");
    assert_eq!(tests.len(), 2);
    for (t, payload) in tests.iter().zip([1024u64, 100 * 1024]) {
        assert_eq!(t["payload_bytes"], payload);
        // Default response ratio 0.5.
        assert_eq!(t["response_bytes"], payload / 2);
        let runs = t["runs"].as_array().expect("runs[]");
        assert_eq!(runs.len(), 3);
        for run in runs {
            // Every field the README documents.
            for key in RUN_KEYS {
                assert!(run.get(key).is_some(), "{key} missing from {run}");
            }
            assert_eq!(run["client_sent_bytes"], payload, "{run}");
            assert_eq!(run["server_received_bytes"], payload, "{run}");
            assert_eq!(run["server_sent_bytes"], payload / 2, "{run}");
            assert_eq!(run["client_received_bytes"], payload / 2, "{run}");
            // measure reports bit rates by default.
            assert!(run["upload_bits_per_second"].as_f64().unwrap() > 0.0);
            assert!(run["download_bits_per_second"].as_f64().unwrap() > 0.0);
        }
        let summary = t["summary"].as_object().expect("summary");
        for key in [
            "upload_bits_per_second",
            "download_bits_per_second",
            "upload_seconds",
            "download_seconds",
            "total_seconds",
        ] {
            let s = &summary[key];
            assert_eq!(s["count"], 3, "{key}: {s}");
            let f = |k: &str| {
                s[k].as_f64()
                    .unwrap_or_else(|| panic!("{key}.{k} missing: {s}"))
            };
            assert!(f("min") <= f("median") && f("median") <= f("max"), "{s}");
            assert!(f("min") <= f("mean") && f("mean") <= f("max"), "{s}");
            assert!(f("stddev") >= 0.0, "{s}");
        }
        assert!(!summary.contains_key("upload_bytes_per_second"));
    }
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_units_bytes_and_fixed_or_ratio_responses() {
    let server = TestServer::start(test_config()).await;
    let doc = json_of(
        &ntm(measure_args(
            server.addr,
            &[
                "--sizes",
                "1000003",
                "--response",
                "0",
                "--units",
                "bytes",
                "--format",
                "json",
            ],
        ))
        .await,
    );
    let run = &doc["tests"][0]["runs"][0];
    assert_eq!(doc["tests"][0]["response_bytes"], 0);
    assert_eq!(run["server_received_bytes"], 1_000_003);
    assert_eq!(run["client_received_bytes"], 0);
    assert!(run["upload_bytes_per_second"].as_f64().unwrap() > 0.0);
    assert!(run.get("upload_bits_per_second").is_none(), "{run}");

    let doc = json_of(
        &ntm(measure_args(
            server.addr,
            &[
                "--sizes",
                "1KB",
                "--response-ratio",
                "2.5",
                "--format",
                "json",
            ],
        ))
        .await,
    );
    let run = &doc["tests"][0]["runs"][0];
    assert_eq!(run["server_sent_bytes"], 2560);
    assert_eq!(run["client_received_bytes"], 2560);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_text_names_each_payload() {
    let server = TestServer::start(test_config()).await;
    let output = ntm(measure_args(
        server.addr,
        &["--sizes", "1KB,100KB", "--repeat", "2"],
    ))
    .await;
    assert!(output.status.success(), "measure failed: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with(&format!("Transfer tests against {}", server.addr)),
        "{text}"
    );
    assert!(
        text.contains("Payload 1.00 KB, response 512.00 B\n"),
        "{text}"
    );
    assert!(
        text.contains("Payload 100.00 KB, response 50.00 KB\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Sent: 1.00 KB (server received 1.00 KB), Received: 512.00 B (server sent 512.00 B)"
        ),
        "{text}"
    );
    for column in ["min", "median", "mean", "max", "stddev"] {
        assert!(text.contains(column), "{column} column missing:\n{text}");
    }
    assert!(text.contains("bit/s"), "{text}");

    // With no response there is no download to show.
    let output = ntm(measure_args(
        server.addr,
        &["--sizes", "1KB", "--response", "0"],
    ))
    .await;
    assert!(output.status.success(), "measure failed: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("Payload 1.00 KB, response 0.00 B\n"),
        "{text}"
    );
    assert!(text.contains("Upload"), "{text}");
    assert!(!text.contains("Download"), "{text}");
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_busy_and_exits_1() {
    let server = TestServer::start(ServerConfig {
        max_tests: 1,
        idle_timeout: Duration::from_secs(30),
        ..test_config()
    })
    .await;
    let mut holder = common::RawClient::connect(server.addr).await;
    holder.start_test(1000, 1000).await;
    let output = ntm(measure_args(server.addr, &["--sizes", "1KB"])).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let line = common::one_line(&output.stderr);
    assert!(line.starts_with("ntm: error: "), "{line}");
    assert!(line.contains("busy"), "{line}");
    assert!(output.stdout.is_empty());
    drop(holder);
    server.stop_within(PROMPT).await;
}
