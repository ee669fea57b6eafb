//! `ntm mpc estimate | sweep | replay` through the binary: documented JSON, the FAQ's figures,
//! a replay through an emulated link that matches the model and the pattern, and bad input.

mod common;

use std::time::Duration;

use common::{one_line, run_ntm, stdout_json, test_config, TestServer};
use ntm::server::ServerConfig;

fn ntm_sync(args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("ntm")
        .unwrap()
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

#[test]
fn estimate_json_has_phases_and_totals_that_add_up() {
    let out = ntm_sync(&[
        "mpc", "estimate", "--rate", "20Mbit", "--rtt", "20ms", "--sent", "1KB", "--recv", "10KB",
        "--format", "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let doc = stdout_json(&out);
    assert_eq!(doc["protocol"], ntm::mpc::DEFAULT_PRESET);
    let phases = doc["phases"].as_array().unwrap();
    let names: Vec<_> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["preprocess", "online", "finalize"]);
    for key in ["upload_bytes", "download_bytes", "round_trips"] {
        let sum: u64 = phases.iter().map(|p| p[key].as_u64().unwrap()).sum();
        assert_eq!(doc["total"][key].as_u64().unwrap(), sum, "{key}");
    }
    let seconds: f64 = phases.iter().map(|p| p["seconds"].as_f64().unwrap()).sum();
    assert!((doc["total"]["seconds"].as_f64().unwrap() - seconds).abs() < 1e-9);
    for p in phases {
        assert!([
            "upload_bandwidth",
            "download_bandwidth",
            "latency",
            "compute"
        ]
        .contains(&p["dominant"].as_str().unwrap()));
    }
    assert_eq!(doc["link"]["rtt_seconds"], 0.02);
    assert_eq!(doc["link"]["up_bits_per_second"], 20e6);
}

#[test]
fn faq_preset_is_25_plus_10_plus_0_4_decimal_megabytes() {
    let out = ntm_sync(&[
        "mpc",
        "estimate",
        "--protocol",
        "tlsn-faq",
        "--sent",
        "1KB",
        "--recv",
        "10KB",
        "--profile",
        "cable",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let doc = stdout_json(&out);
    // 25 MB + 10 MB per KB sent + 40 KB per KB received, decimal as the FAQ states.
    assert_eq!(doc["total"]["upload_bytes"], 35_400_000);
    let text = ntm_sync(&[
        "mpc",
        "estimate",
        "--protocol",
        "tlsn-faq",
        "--profile",
        "cable",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    // Printed in ntm's binary units: 35,400,000 B is 33.76 MB of 1024 x 1024 bytes.
    assert!(text.contains("33.76 MB"), "{text}");
}

#[test]
fn profiles_and_links_change_the_time_the_right_way() {
    let total = |args: &[&str]| {
        let mut all = vec!["mpc", "estimate", "--format", "json"];
        all.extend_from_slice(args);
        let out = ntm_sync(&all);
        assert!(out.status.success(), "{out:?}");
        stdout_json(&out)["total"]["seconds"].as_f64().unwrap()
    };
    let cable = total(&["--profile", "cable"]);
    let fiber = total(&["--profile", "fiber"]);
    let slow = total(&[
        "--rate-up",
        "5Mbit",
        "--rate-down",
        "50Mbit",
        "--rtt",
        "20ms",
    ]);
    assert!(fiber < cable, "fiber {fiber} vs cable {cable}");
    assert!(slow > cable, "5 Mbit/s up {slow} vs cable {cable}");
}

#[test]
fn sweep_is_monotonic_and_has_csv_and_json() {
    let out = ntm_sync(&[
        "mpc",
        "sweep",
        "--rate",
        "5Mbit..1Gbit",
        "--rtt",
        "10ms..200ms",
        "--steps",
        "5",
        "--budget",
        "10s",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let doc = stdout_json(&out);
    let rows: Vec<Vec<f64>> = doc["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 5);
    for r in 0..5 {
        assert_eq!(rows[r].len(), 5);
        for c in 0..5 {
            if c + 1 < 5 {
                assert!(
                    rows[r][c + 1] <= rows[r][c],
                    "more rate cost more: {rows:?}"
                );
            }
            if r + 1 < 5 {
                assert!(rows[r + 1][c] >= rows[r][c], "more RTT cost less: {rows:?}");
            }
        }
    }
    let csv = ntm_sync(&["mpc", "sweep", "--steps", "3", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "rate_bits_per_second,rtt_seconds,seconds,upload_bytes,download_bytes"
    );
    assert_eq!(lines.len(), 1 + 9);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sweep.svg");
    let out = ntm_sync(&[
        "mpc",
        "sweep",
        "--budget",
        "20s",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn protocol_files_load_and_bad_ones_name_the_field_and_line() {
    for template in [
        "protocols/garbled-circuit-2pc.toml",
        "protocols/secret-sharing-npc.toml",
    ] {
        let out = ntm_sync(&[
            "mpc",
            "estimate",
            "--protocol-file",
            template,
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{template}: {out:?}");
        assert!(stdout_json(&out)["total"]["seconds"].as_f64().unwrap() > 0.0);
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n\n[[phase]]\nname = \"p\"\nuplod = 5\n").unwrap();
    let out = ntm_sync(&["mpc", "estimate", "--protocol-file", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = one_line(&out.stderr);
    assert!(line.contains("uplod") && line.contains("line"), "{line}");
}

#[test]
fn unknown_presets_and_nonsense_links_exit_2() {
    for args in [
        &["mpc", "estimate", "--protocol", "tlsn-beta9"][..],
        &["mpc", "estimate", "--rate", "0"],
        &["mpc", "estimate", "--rate", "20Mbit"],
        &["mpc", "estimate", "--rtt", "abc"],
        &["mpc", "estimate", "--profile", "mars"],
        &["mpc", "estimate", "--reveal", "some"],
        &["mpc", "sweep", "--rate", "1Gbit..5Mbit"],
        &["mpc", "replay", "127.0.0.1:1", "--scale", "0"],
        &["mpc", "estimate", "--protocol-file", "/nonexistent/p.toml"],
    ] {
        let out = ntm_sync(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let line = one_line(&out.stderr);
        assert!(line.starts_with("ntm: "), "{args:?}: {line}");
    }
}

/// The check: a scaled-down TLSNotary pattern through a shaped 50 Mbit/s, 20 ms link.
/// The measured total is within 20% of the model's prediction for that link, and the proxy's
/// counts of each phase match the pattern exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_an_emulated_link_matches_model_and_pattern() {
    let server = TestServer::start(ServerConfig {
        idle_timeout: Duration::from_secs(10),
        ..test_config()
    })
    .await;
    let addr = server.addr.to_string();
    let out = run_ntm(
        &[
            "mpc",
            "replay",
            &addr,
            "--scale",
            "0.05",
            "--emulate",
            "--rate",
            "50Mbit",
            "--rtt",
            "20ms",
            "--format",
            "json",
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let doc = stdout_json(&out);
    let measured = doc["total"]["measured_seconds"].as_f64().unwrap();
    let predicted = doc["total"]["predicted_seconds"].as_f64().unwrap();
    assert!(
        (measured - predicted).abs() <= 0.2 * predicted,
        "measured {measured:.3} s vs predicted {predicted:.3} s"
    );
    let phases = doc["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 3);
    for p in phases {
        let seen = &p["proxy"];
        assert!(!seen.is_null(), "no proxy counts for {}", p["name"]);
        for key in ["upload_bytes", "download_bytes", "round_trips"] {
            assert_eq!(seen[key], p[key], "{} {key}", p["name"]);
        }
        // The server counted the same.
        assert_eq!(p["server"]["bytes_received"], p["upload_bytes"]);
        assert_eq!(p["server"]["bytes_sent"], p["download_bytes"]);
    }
    // On top of the pattern, the proxy saw exactly the control frames.
    let total_up = doc["total"]["upload_bytes"].as_u64().unwrap();
    let control_up = doc["control"]["upload_bytes"].as_u64().unwrap();
    assert_eq!(
        doc["proxy"]["upload_bytes"].as_u64().unwrap(),
        total_up + control_up
    );
    server.stop_within(Duration::from_secs(5)).await;
}
