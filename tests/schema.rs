//! The JSON outputs validate against the schemas committed in `schemas/`: real documents from
//! the binary (throughput, latency, transfer measure, demo) must pass, and each schema must be
//! strict: the same document with any field removed, or any value of the wrong type, must fail.

mod common;

use std::time::Duration;

use common::{run_ntm, stdout_json, test_config, TestServer, PROMPT};
use serde_json::Value;

const SCHEMAS: [&str; 4] = ["measure-stream", "latency", "measure-transfer", "demo"];
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `ntm args`, expects success and one JSON document on stdout.
async fn json_of(args: &[&str]) -> Value {
    let output = run_ntm(args, LIMIT).await;
    assert!(output.status.success(), "ntm {args:?}: {output:?}");
    stdout_json(&output)
}

#[test]
fn the_schemas_are_valid_draft_2020_12() {
    for name in SCHEMAS {
        let schema = common::schema(name);
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("schemas/{name}.schema.json is not a valid schema: {e}");
        }
        common::validator(name);
        // Not a schema that accepts anything.
        assert!(
            !common::validator(name).is_valid(&serde_json::json!({})),
            "{name} accepts {{}}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_json_matches_its_schema() {
    let server = TestServer::start(test_config()).await;
    let addr = server.addr.to_string();
    let doc = json_of(&[
        "measure", &addr, "-t", "2s", "-i", "250ms", "-P", "2", "--rate", "300Mbit", "--format",
        "json",
    ])
    .await;
    let intervals = doc["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 8, "a 2 s test at 250 ms intervals");
    common::assert_valid_and_strict("measure-stream", &doc, &[]);

    let doc = json_of(&[
        "measure", &addr, "-n", "10MB", "-P", "3", "--bidir", "-i", "100ms", "--format", "json",
    ])
    .await;
    assert_eq!(doc["start"]["test_start"]["bidir"], true);
    common::assert_valid_and_strict("measure-stream", &doc, &[]);
    // A bidirectional document without its reverse sums is not one.
    let mut broken = doc.clone();
    broken["start"]["test_start"]["bidir"] = Value::Bool(false);
    assert!(!common::validator("measure-stream").is_valid(&broken));
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_json_matches_its_schema() {
    let server = TestServer::start(test_config()).await;
    let addr = server.addr.to_string();
    let rr = json_of(&[
        "latency", &addr, "-n", "300", "--warmup", "5", "--format", "json",
    ])
    .await;
    common::assert_valid_and_strict("latency", &rr, &[]);
    let crr = json_of(&[
        "latency",
        &addr,
        "-n",
        "50",
        "--connect",
        "--concurrency",
        "2",
        "--format",
        "json",
    ])
    .await;
    common::assert_valid_and_strict("latency", &crr, &[]);
    let timed = json_of(&["latency", &addr, "-t", "200ms", "--format", "json"]).await;
    assert_eq!(timed["count"], Value::Null);
    common::assert_valid_and_strict("latency", &timed, &[]);
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_measure_json_matches_its_schema() {
    let server = TestServer::start(test_config()).await;
    let addr = server.addr.to_string();
    let bits = json_of(&[
        "measure",
        &addr,
        "--sizes",
        "1KB,100KB",
        "--repeat",
        "2",
        "--format",
        "json",
    ])
    .await;
    common::assert_valid_and_strict("measure-transfer", &bits, &[]);
    let bytes = json_of(&[
        "measure",
        &addr,
        "--sizes",
        "1000003",
        "--response",
        "0",
        "--units",
        "bytes",
        "--format",
        "json",
    ])
    .await;
    common::assert_valid_and_strict("measure-transfer", &bytes, &[]);
    // A run with both rate units, or neither, is not one.
    let mut both = bits.clone();
    both["tests"][0]["runs"][0]["upload_bytes_per_second"] = Value::from(1.0);
    assert!(!common::validator("measure-transfer").is_valid(&both));
    server.stop_within(PROMPT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_json_matches_its_schema() {
    let doc = json_of(&["--port", "0", "--sizes", "1KB,64KB", "--format", "json"]).await;
    common::assert_valid_and_strict("demo", &doc, &[]);
    let doc = json_of(&[
        "demo", "--port", "0", "--sizes", "10KB", "--repeat", "2", "--units", "bits", "--format",
        "json",
    ])
    .await;
    common::assert_valid_and_strict("demo", &doc, &[]);
}
