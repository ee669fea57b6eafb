//! The demo through the real binary: every section, exact byte counts, the FAQ model's figures,
//! the fallback when its port is taken, JSON output and its running time.

mod common;

use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// Demo payloads in bytes, as printed.
const PAYLOADS: [(u64, &str); 5] = [
    (1024, "1.00 KB"),
    (10 * 1024, "10.00 KB"),
    (100 * 1024, "100.00 KB"),
    (1024 * 1024, "1.00 MB"),
    (10 * 1024 * 1024, "10.00 MB"),
];

fn ntm() -> Command {
    let mut cmd = Command::cargo_bin("ntm").unwrap();
    // Bounds a hang; the real time limit is asserted where it matters.
    cmd.timeout(Duration::from_secs(60));
    cmd
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn demo_prints_every_section_and_the_default_preset_figures() {
    let output = ntm().args(["--port", "0"]).output().unwrap();
    assert!(output.status.success(), "demo failed: {output:?}");
    let text = stdout_of(&output);
    assert!(
        output.stderr.is_empty(),
        "unexpected stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let transfers = text
        .find("Network Transfer Test")
        .expect("transfer section");
    let mpc = text
        .find("MPC Communication Simulation")
        .expect("MPC section");
    assert!(transfers < mpc, "sections out of order:\n{text}");
    let (transfer_part, mpc_part) = text.split_at(mpc);

    for (bytes, shown) in PAYLOADS {
        let line = format!("Testing with {shown} payload\n");
        assert_eq!(
            transfer_part.matches(&line).count(),
            1,
            "transfer line for {shown}:\n{text}"
        );
        assert_eq!(
            mpc_part.matches(&line).count(),
            1,
            "MPC line for {shown}:\n{text}"
        );
        // The server answers with half the payload; the counts are exact, so is the text.
        let half = ntm::report::units::format_bytes(bytes / 2);
        let block = format!("Testing with {shown} payload\n  Sent: {shown}\n  Received: {half}\n");
        assert!(transfer_part.contains(&block), "{block:?} missing:\n{text}");
    }
    for label in ["  Time: ", "  Upload: ", "  Download: "] {
        assert_eq!(
            transfer_part.matches(label).count(),
            5,
            "{label:?}:\n{text}"
        );
    }
    assert_eq!(
        transfer_part
            .matches("  Ratio (received/sent): 0.50\n")
            .count(),
        5,
        "{text}"
    );

    // The default preset's estimate, from the library: the demo must print exactly it.
    let model = ntm::mpc::preset(ntm::mpc::DEFAULT_PRESET, ntm::mpc::Reveal::default()).unwrap();
    for (request, shown_request, shown_response) in [
        (1024u64, "1.00 KB", "10.00 KB"),
        (10240, "10.00 KB", "100.00 KB"),
    ] {
        let bytes = model.bytes(&ntm::mpc::Workload::new(request, request * 10));
        let row = mpc_part
            .split(&format!("Testing with {shown_request} payload\n"))
            .nth(1)
            .unwrap();
        let expected = format!(
            "  Simulated request size: {shown_request}\n  Simulated response size: {shown_response}\n  \
             Estimated MPC upload overhead: {}\n  Estimated MPC download overhead: {}\n",
            ntm::report::units::format_bytes(bytes.upload_bytes),
            ntm::report::units::format_bytes(bytes.download_bytes)
        );
        assert!(
            row.starts_with(&expected),
            "{shown_request} row:\n{row}\nexpected:\n{expected}"
        );
        // Tens of megabytes up for a kilobyte request: the order TLSNotary publishes.
        assert!(bytes.upload_bytes > 20_000_000, "{bytes:?}");
    }
    // The original's unit mistakes.
    assert!(!text.contains("25.01 MB"), "{text}");
    assert!(!text.contains("overhead: 400"), "{text}");
}

#[test]
fn demo_json_has_exact_counts_and_estimates() {
    let output = ntm()
        .args(["--port", "0", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "demo failed: {output:?}");
    let doc = json_of(&output);

    let transfers = doc["transfers"].as_array().expect("transfers[]");
    assert_eq!(transfers.len(), PAYLOADS.len());
    for (t, (payload, _)) in transfers.iter().zip(PAYLOADS) {
        assert_eq!(t["payload_bytes"], payload);
        assert_eq!(t["response_bytes"], payload / 2);
        let runs = t["runs"].as_array().expect("runs[]");
        assert_eq!(runs.len(), 1);
        for run in runs {
            assert_eq!(run["client_sent_bytes"], payload, "{run}");
            assert_eq!(run["server_received_bytes"], payload, "{run}");
            assert_eq!(run["server_sent_bytes"], payload / 2, "{run}");
            assert_eq!(run["client_received_bytes"], payload / 2, "{run}");
            // The demo's rates default to bytes per second.
            assert!(run["upload_bytes_per_second"].as_f64().unwrap() > 0.0);
            assert!(run["total_seconds"].as_f64().unwrap() > 0.0);
        }
    }

    let estimates = doc["mpc"]["estimates"].as_array().expect("estimates[]");
    assert_eq!(estimates.len(), PAYLOADS.len());
    for (e, (payload, _)) in estimates.iter().zip(PAYLOADS) {
        for key in [
            "request_bytes",
            "response_bytes",
            "upload_bytes",
            "download_bytes",
            "upload_ratio",
            "download_ratio",
        ] {
            assert!(e.get(key).is_some(), "{key} missing from {e}");
        }
        assert_eq!(e["request_bytes"], payload);
        assert_eq!(e["response_bytes"], payload * 10);
    }
    let model = ntm::mpc::preset(ntm::mpc::DEFAULT_PRESET, ntm::mpc::Reveal::default()).unwrap();
    for (e, request) in estimates.iter().zip([1024u64, 10240]) {
        let bytes = model.bytes(&ntm::mpc::Workload::new(request, request * 10));
        assert_eq!(e["upload_bytes"], bytes.upload_bytes);
        assert_eq!(e["download_bytes"], bytes.download_bytes);
    }
    assert_eq!(doc["mpc"]["model"], ntm::mpc::DEFAULT_PRESET);
    assert!(doc["mpc"]["source"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(doc["server"]
        .as_str()
        .is_some_and(|s| s.starts_with("127.0.0.1:")));
}

#[test]
fn demo_repeat_and_units_flags() {
    let output = ntm()
        .args([
            "--port", "0", "--sizes", "1KB,3000", "--repeat", "3", "--units", "bits", "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "demo failed: {output:?}");
    let doc = json_of(&output);
    let transfers = doc["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[1]["payload_bytes"], 3000);
    assert_eq!(transfers[1]["response_bytes"], 1500);
    for t in transfers {
        let runs = t["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        for run in runs {
            assert_eq!(run["client_sent_bytes"], t["payload_bytes"]);
            assert_eq!(run["client_received_bytes"], t["response_bytes"]);
            assert!(run.get("upload_bits_per_second").is_some(), "{run}");
            assert!(run.get("upload_bytes_per_second").is_none(), "{run}");
        }
        assert_eq!(t["summary"]["upload_bits_per_second"]["count"], 3);
    }
    assert_eq!(doc["mpc"]["estimates"].as_array().unwrap().len(), 2);
}

#[test]
fn demo_takes_a_free_port_when_its_port_is_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = ntm()
        .args([
            "--port",
            &port.to_string(),
            "--sizes",
            "1KB",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "demo failed: {output:?}");
    let line = common::one_line(&output.stderr);
    assert!(
        line.contains(&format!("port {port} is in use")),
        "stderr: {line}"
    );
    let doc = json_of(&output);
    let server = doc["server"].as_str().expect("server address");
    assert_ne!(server, format!("127.0.0.1:{port}"));
    assert!(
        line.contains(server),
        "stderr should say where: {line} / {server}"
    );
    assert_eq!(
        doc["transfers"][0]["runs"][0]["server_received_bytes"],
        1024
    );
    drop(taken);
}

#[test]
fn demo_with_no_arguments_uses_port_8080_or_says_where() {
    // The real default: 8080 may be free or taken on this machine; either way the demo runs.
    let output = ntm().output().unwrap();
    assert!(output.status.success(), "demo failed: {output:?}");
    let text = stdout_of(&output);
    assert!(text.starts_with("Network Transfer Test\n"), "{text}");
    assert!(text.contains("MPC Communication Simulation"), "{text}");
    if !output.stderr.is_empty() {
        let line = common::one_line(&output.stderr);
        assert!(line.contains("port 8080 is in use"), "stderr: {line}");
    }
}

#[test]
fn demo_finishes_within_three_seconds() {
    // The budget (set for release builds); the debug demo takes milliseconds, so the
    // same bound holds here with a wide margin on a busy machine.
    let started = Instant::now();
    let output = ntm().args(["--port", "0"]).output().unwrap();
    let elapsed = started.elapsed();
    assert!(output.status.success(), "demo failed: {output:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "the demo took {elapsed:?}"
    );
}
