//! Reports of latency tests: transactions per second and full round-trip percentiles from an HDR
//! histogram, as text or JSON.

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{json, Value};

use super::units::{format_bytes, format_duration};
use crate::measure::{LatencyConfig, LatencyLimit, LatencyOutcome};

/// The percentiles reported, with their JSON keys.
pub const PERCENTILES: [(&str, f64); 6] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
    ("p99_99", 99.99),
    ("p99_999", 99.999),
];

/// Round-trip statistics in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RttSummary {
    pub min: f64,
    /// (key, value) per entry of [`PERCENTILES`].
    pub percentiles: Vec<(&'static str, f64)>,
    pub max: f64,
    pub mean: f64,
    pub stddev: f64,
}

pub fn summary(outcome: &LatencyOutcome) -> Option<RttSummary> {
    let h = &outcome.rtt_ns;
    if h.is_empty() {
        return None;
    }
    let us = |ns: f64| ns / 1000.0;
    Some(RttSummary {
        min: us(h.min() as f64),
        percentiles: PERCENTILES
            .iter()
            .map(|&(k, q)| (k, us(h.value_at_quantile(q / 100.0) as f64)))
            .collect(),
        max: us(h.max() as f64),
        mean: us(h.mean()),
        stddev: us(h.stdev()),
    })
}

fn mode(config: &LatencyConfig) -> &'static str {
    if config.connect_per_transaction {
        "connect/request/close (TCP_CRR)"
    } else {
        "request/response (TCP_RR)"
    }
}

fn us(v: f64) -> String {
    format_duration(Duration::from_secs_f64(v.max(0.0) / 1e6))
}

pub fn write_text(
    out: &mut impl Write,
    server: &str,
    config: &LatencyConfig,
    outcome: &LatencyOutcome,
) -> io::Result<()> {
    writeln!(
        out,
        "Latency test against {server}: {}, request {}, response {}, {} in flight",
        mode(config),
        format_bytes(config.request_bytes as u64),
        format_bytes(config.response_bytes as u64),
        config.concurrency
    )?;
    if outcome.partial {
        writeln!(out, "Stopped early: these results are partial.")?;
    }
    writeln!(
        out,
        "Transactions: {} in {:.2} s, {:.1} per second{}",
        outcome.transactions(),
        outcome.elapsed.as_secs_f64(),
        outcome.transactions_per_second(),
        if config.warmup > 0 {
            format!(" (after {} warm-up)", config.warmup)
        } else {
            String::new()
        }
    )?;
    let Some(s) = summary(outcome) else {
        return writeln!(out, "No transactions were measured.");
    };
    writeln!(
        out,
        "Round-trip time (full RTT; sockperf prints half of this):"
    )?;
    let mut heads = vec!["min".to_string()];
    let mut values = vec![us(s.min)];
    for (k, v) in &s.percentiles {
        heads.push(k.replace('_', "."));
        values.push(us(*v));
    }
    for (k, v) in [("max", s.max), ("mean", s.mean), ("stddev", s.stddev)] {
        heads.push(k.into());
        values.push(us(v));
    }
    let row = |cells: &[String]| {
        cells
            .iter()
            .map(|c| format!("{c:>10}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    writeln!(out, "  {}", row(&heads))?;
    writeln!(out, "  {}", row(&values))?;
    if let Some(n) = outcome.server_transactions {
        let expected = outcome.transactions() + config.warmup;
        if n != expected {
            writeln!(
                out,
                "Note: the server answered {n} transactions, the client counted {expected}."
            )?;
        }
    }
    Ok(())
}

pub fn json(server: &str, config: &LatencyConfig, outcome: &LatencyOutcome) -> Value {
    let rtt = summary(outcome).map(|s| {
        let mut m = serde_json::Map::new();
        m.insert("min".into(), s.min.into());
        for (k, v) in s.percentiles {
            m.insert(k.into(), v.into());
        }
        m.insert("max".into(), s.max.into());
        m.insert("mean".into(), s.mean.into());
        m.insert("stddev".into(), s.stddev.into());
        Value::Object(m)
    });
    // Log-spaced buckets from 1 µs, doubling: each with its upper bound and count.
    let buckets: Vec<Value> = if outcome.rtt_ns.is_empty() {
        Vec::new()
    } else {
        outcome
            .rtt_ns
            .iter_log(1000, 2.0)
            .map(|v| {
                json!({
                    "rtt_us_upper": v.value_iterated_to() as f64 / 1000.0,
                    "count": v.count_since_last_iteration(),
                })
            })
            .collect()
    };
    let (count, duration) = match config.limit {
        LatencyLimit::Count(n) => (Some(n), None),
        LatencyLimit::Duration(d) => (None, Some(d.as_secs_f64())),
    };
    json!({
        "server": server,
        "mode": if config.connect_per_transaction { "crr" } else { "rr" },
        "request_bytes": config.request_bytes,
        "response_bytes": config.response_bytes,
        "concurrency": config.concurrency,
        "warmup": config.warmup,
        "count": count,
        "duration_seconds": duration,
        "transactions": outcome.transactions(),
        "seconds": outcome.elapsed.as_secs_f64(),
        "transactions_per_second": outcome.transactions_per_second(),
        "server_transactions": outcome.server_transactions,
        "rtt_us": rtt,
        "histogram": buckets,
        "partial": outcome.partial,
    })
}
