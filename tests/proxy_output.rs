//! End-to-end tests of what the proxy reports (issue 4): flights and round trips, and on the
//! command line bad input, text and NDJSON events, recordings, the plot and the metrics
//! endpoint.
//!
//! Library tests run `ntm::proxy::run` on port 0; command-line tests run the `ntm` binary with
//! `--listen 127.0.0.1:0` and read the bound address from its start line.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::proxy::{
    exchange, read_until_end, record_rows, recorded_bytes, start_echo, start_sink_then_reply,
    ProxyProcess, TestProxy,
};
use common::{within, PROMPT};
use ntm::proxy::flights::Dir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// 1. Flights
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ten_exchanges_are_twenty_flights_and_ten_round_trips() {
    let (echo, _stop) = start_echo().await;
    let mut proxy = TestProxy::to(echo).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let request = [0x77u8; 100];
    for _ in 0..10 {
        s.write_all(&request).await.unwrap();
        let mut back = [0u8; 100];
        within(PROMPT, "response", s.read_exact(&mut back))
            .await
            .unwrap();
    }
    s.shutdown().await.unwrap();
    assert_eq!(read_until_end(&mut s).await, Ok(0));
    let r = proxy.only_close().await;
    assert_eq!(r.flight_count, 20, "{:?}", r.flights);
    assert_eq!(r.round_trips, 10);
    assert_eq!(r.flights.len(), 20);
    for (i, f) in r.flights.iter().enumerate() {
        let dir = if i % 2 == 0 { Dir::Up } else { Dir::Down };
        assert_eq!((f.dir, f.bytes), (dir, 100), "flight {i}: {f:?}");
        assert!(f.start <= f.end);
    }
    for pair in r.flights.windows(2) {
        assert!(pair[1].start >= pair[0].end, "flights overlap: {pair:?}");
        assert_eq!(pair[1].gap, pair[1].start - pair[0].end);
    }
    assert_eq!((r.bytes_up, r.bytes_down), (1000, 1000));
    assert!(r.first_byte_up.unwrap() < r.first_byte_down.unwrap());
    assert!(r.last_byte_up.unwrap() < r.last_byte_down.unwrap());
}

#[tokio::test]
async fn a_one_way_upload_is_one_flight() {
    let (sink, _stop) = start_sink_then_reply(0).await;
    let mut proxy = TestProxy::to(sink).await;
    let back = exchange(proxy.addr, 1 << 20).await;
    assert!(back.is_empty());
    let r = proxy.only_close().await;
    assert_eq!(r.flight_count, 1, "{:?}", r.flights);
    assert_eq!(r.round_trips, 1);
    assert_eq!((r.flights[0].dir, r.flights[0].bytes), (Dir::Up, 1 << 20));
    assert_eq!((r.bytes_up, r.bytes_down), (1 << 20, 0));
    assert_eq!(r.first_byte_down, None);
}

// ---------------------------------------------------------------------------------------------
// 2. The command line
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_exits_2_with_one_line_before_any_traffic() {
    let in_use = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let in_use = in_use.local_addr().map(|a| (a, in_use)).unwrap();
    let taken = in_use.0.to_string();
    let upstream = format!("127.0.0.1:{}", common::closed_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--upstream", "nonexistent.invalid:80"],
            "nonexistent.invalid",
        ),
        (vec!["--upstream", &upstream, "--listen", &taken], "in use"),
        (vec!["--upstream", &upstream, "--metrics", &taken], "in use"),
        (vec!["--upstream", &upstream, "--rate", "0"], "'0'"),
        (vec!["--upstream", &upstream, "--rate", "5Xbit"], "'5Xbit'"),
        (vec!["--upstream", &upstream, "--delay", "abc"], "'abc'"),
        (vec!["--upstream", &upstream, "--profile", "mars"], "'mars'"),
    ];
    for (args, expect) in cases {
        let mut full = vec!["proxy"];
        if !args.contains(&"--listen") {
            full.extend(["--listen", "127.0.0.1:0"]);
        }
        full.extend(&args);
        let out = assert_cmd::Command::cargo_bin("ntm")
            .unwrap()
            .args(&full)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = common::one_line(&out.stderr);
        assert!(line.starts_with("ntm: "), "{args:?}: {line}");
        assert!(
            line.contains(expect),
            "{args:?}: {line} should mention {expect}"
        );
        // The start line comes after binding: its absence means no traffic could have flowed.
        assert!(!line.contains(" -> "), "{args:?}: {line}");
        assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    }
    drop(in_use);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_events_csv_record_plot_and_metrics() {
    const UP: usize = 300_000;
    const DOWN: usize = 120_000;
    let (upstream, _stop) = start_sink_then_reply(DOWN).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("timeline.csv");
    let svg = dir.path().join("bandwidth.svg");
    let mut proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--format",
        "json",
        "--record",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(exchange(proxy.addr, UP).await.len(), DOWN);
    assert_eq!(exchange(proxy.addr, UP).await.len(), DOWN);
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&serde_json::Value| e["event"] == "close")
        .count()
        < 2
    {
        let line = proxy.stdout_line().await;
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        events.push(v);
    }
    let opens: Vec<_> = events.iter().filter(|e| e["event"] == "open").collect();
    let closes: Vec<_> = events.iter().filter(|e| e["event"] == "close").collect();
    assert_eq!(opens.len(), 2, "{events:?}");
    for c in &closes {
        assert_eq!(c["bytes_up"], UP as u64, "{c}");
        assert_eq!(c["bytes_down"], DOWN as u64, "{c}");
        assert_eq!(c["end"], "closed");
        assert_eq!(c["flight_count"], 2);
        assert_eq!(c["round_trips"], 1);
        assert_eq!(c["upstream"], upstream.to_string());
        for key in [
            "id",
            "client",
            "seconds",
            "first_byte_up",
            "last_byte_down",
            "flights",
            "timeline",
        ] {
            assert!(!c[key].is_null(), "close event without {key}: {c}");
        }
    }

    // The metrics endpoint counts what was relayed.
    let metrics = get_metrics(proxy.metrics.expect("metrics address")).await;
    assert_eq!(
        metric(&metrics, "ntm_proxy_bytes_total{direction=\"up\"}"),
        2 * UP as u64,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_bytes_total{direction=\"down\"}"),
        2 * DOWN as u64,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_connections_total"),
        2,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_open_connections"),
        0,
        "{metrics}"
    );
    let flights: u64 = closes
        .iter()
        .map(|c| c["flight_count"].as_u64().expect("flight_count"))
        .sum();
    assert_eq!(
        metric(&metrics, "ntm_proxy_flights_total"),
        flights,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ntm_proxy_upstream_failures_total"),
        0,
        "{metrics}"
    );

    // A refused upstream is counted as a failure (and as a connection, with no bytes).
    let refused = format!("127.0.0.1:{}", common::closed_port());
    let mut failing = ProxyProcess::start(&[
        "--upstream",
        &refused,
        "--format",
        "json",
        "--metrics",
        "127.0.0.1:0",
    ])
    .await;
    let mut client = TcpStream::connect(failing.addr).await.unwrap();
    let end = within(PROMPT, "client closed", read_until_end(&mut client)).await;
    assert!(end.is_err() || end == Ok(0), "{end:?}");
    let close: serde_json::Value = serde_json::from_str(&failing.stdout_line().await).unwrap();
    assert_eq!(close["event"], "close", "{close}");
    let failed = get_metrics(failing.metrics.expect("metrics address")).await;
    for (name, value) in [
        ("ntm_proxy_upstream_failures_total", 1),
        ("ntm_proxy_connections_total", 1),
        ("ntm_proxy_open_connections", 0),
        ("ntm_proxy_flights_total", 0),
        ("ntm_proxy_bytes_total{direction=\"up\"}", 0),
    ] {
        assert_eq!(metric(&failed, name), value, "{name}: {failed}");
    }
    let (status, _, stderr) = failing.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");

    let (status, rest, stderr) = proxy.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");
    let summary: Vec<serde_json::Value> = rest
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(summary.len(), 1, "one summary line after Ctrl-C: {rest:?}");
    let s = &summary[0];
    assert_eq!(s["event"], "summary");
    assert_eq!(
        (
            s["connections"].as_u64(),
            s["bytes_up"].as_u64(),
            s["bytes_down"].as_u64()
        ),
        (Some(2), Some(2 * UP as u64), Some(2 * DOWN as u64))
    );

    // The CSV timeline's bytes add up to the bytes relayed, per connection and direction.
    let rows = record_rows(&std::fs::read_to_string(&csv).unwrap());
    for row in &rows {
        assert!(
            row.bin_start_seconds >= 0.0 && (row.bin_seconds - 0.01).abs() < 1e-9,
            "{row:?}"
        );
    }
    let sums = recorded_bytes(&rows);
    for c in &closes {
        let id = c["id"].as_u64().expect("id");
        assert_eq!(sums.get(&(id, "up".into())), Some(&(UP as u64)), "{sums:?}");
        assert_eq!(
            sums.get(&(id, "down".into())),
            Some(&(DOWN as u64)),
            "{sums:?}"
        );
    }
    assert_eq!(sums.len(), 4, "{sums:?}");

    // Bandwidth over time, up and down, both drawn (each direction carried bytes).
    let plot = std::fs::read_to_string(&svg).unwrap();
    common::assert_svg_plot(&plot, &["Mbit/s", "seconds", "up", "down"], 2);
}

/// A short session: one exchange, all of it in the first 10 ms bin. Each direction must still
/// draw a line (a flat step over that bin), not empty axes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_of_traffic_within_one_bin_is_drawn() {
    let (upstream, _stop) = start_sink_then_reply(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bandwidth.svg");
    let proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--plot",
        svg.to_str().unwrap(),
    ])
    .await;
    assert_eq!(exchange(proxy.addr, 1000).await.len(), 1000);
    let (status, _, stderr) = proxy.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    common::assert_svg_plot(&plot, &["up", "down"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_record_and_text_lines() {
    let (upstream, _stop) = start_sink_then_reply(5000).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let mut proxy = ProxyProcess::start(&[
        "--upstream",
        &upstream.to_string(),
        "--record",
        record.to_str().unwrap(),
    ])
    .await;
    assert_eq!(exchange(proxy.addr, 70_000).await.len(), 5000);
    let line = proxy.stdout_line().await;
    assert!(
        line.contains("closed") && line.contains(&upstream.to_string()),
        "{line}"
    );
    let (status, rest, stderr) = proxy.interrupt().await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(
        rest.iter().any(|l| l.starts_with("Summary: 1 connection,")),
        "{rest:?}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).expect("record is JSON");
    assert_eq!(doc["summary"]["bytes_up"], 70_000);
    assert_eq!(doc["summary"]["bytes_down"], 5000);
    let conns = doc["connections"].as_array().expect("connections");
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(
        (c["bytes_up"].as_u64(), c["bytes_down"].as_u64()),
        (Some(70_000), Some(5000))
    );
    let sum = |k: &str| {
        c["timeline"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("up"), sum("down")), (70_000, 5000));
    assert_eq!(c["flights"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_logs_one_clear_line() {
    let port = common::closed_port();
    let upstream = format!("127.0.0.1:{port}");
    let mut proxy = ProxyProcess::start(&["--upstream", &upstream]).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    // A close or a reset (the proxy drops the client without reading it), and no data.
    let end = within(PROMPT, "client closed", read_until_end(&mut client)).await;
    assert!(end.is_err() || end == Ok(0), "{end:?}");
    let line = proxy.stdout_line().await;
    assert!(line.contains("upstream failed"), "{line}");
    let (status, _, stderr) = proxy.interrupt().await;
    assert!(status.success());
    let why: Vec<&str> = stderr.lines().filter(|l| l.contains(&upstream)).collect();
    assert_eq!(why.len(), 1, "one line says why: {stderr}");
    assert!(why[0].to_lowercase().contains("refused"), "{}", why[0]);
}

async fn get_metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    within(PROMPT, "metrics response", s.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}
