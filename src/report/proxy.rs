//! Reports of the proxy: a line per closed connection, NDJSON events, the summary, timeline
//! recordings (CSV or JSON) and the bandwidth plot.

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{json, Value};

use super::units::{format_bit_rate, format_bytes, format_duration};
use crate::proxy::link::LinkSpec;
use crate::proxy::{ConnectionReport, ProxySummary};

/// A link direction in words: "20.00 Mbit/s, 10.00ms delay".
pub fn describe_link(spec: &LinkSpec) -> String {
    let mut parts = vec![match spec.rate_bps {
        Some(bps) => format_bit_rate(bps as f64),
        None => "unlimited".into(),
    }];
    if !spec.delay.is_zero() {
        parts.push(format!("{} delay", format_duration(spec.delay)));
    }
    if !spec.jitter.is_zero() {
        parts.push(format!("{} jitter", format_duration(spec.jitter)));
    }
    parts.join(", ")
}

/// One line for a closed connection.
pub fn write_close_line(out: &mut impl Write, r: &ConnectionReport) -> io::Result<()> {
    let upstream = r.upstream.map_or("(none)".to_string(), |u| u.to_string());
    writeln!(
        out,
        "[{:>4}] {} -> {}  {}  up {}  down {}  {} flights ({} round trips)  peak up {} down {}  {}",
        r.id,
        r.client,
        upstream,
        format_duration(Duration::from_secs_f64(r.seconds)),
        format_bytes(r.bytes_up),
        format_bytes(r.bytes_down),
        r.flight_count,
        r.round_trips,
        format_bit_rate(r.peak_up_bps),
        format_bit_rate(r.peak_down_bps),
        r.end
    )
}

/// A closed connection as one NDJSON event.
pub fn close_json(r: &ConnectionReport) -> Value {
    let mut v = serde_json::to_value(r).expect("reports serialize");
    v["event"] = "close".into();
    v
}

pub fn open_json(id: u64, client: &str, upstream: &str) -> Value {
    json!({"event": "open", "id": id, "client": client, "upstream": upstream})
}

pub fn write_summary(out: &mut impl Write, s: &ProxySummary) -> io::Result<()> {
    writeln!(
        out,
        "Summary: {} connection{}, up {}, down {}, in {}",
        s.connections,
        if s.connections == 1 { "" } else { "s" },
        format_bytes(s.bytes_up),
        format_bytes(s.bytes_down),
        format_duration(Duration::from_secs_f64(s.seconds))
    )
}

pub fn summary_json(s: &ProxySummary) -> Value {
    json!({
        "event": "summary",
        "connections": s.connections,
        "bytes_up": s.bytes_up,
        "bytes_down": s.bytes_down,
        "seconds": s.seconds,
    })
}

/// Timelines of every connection as CSV: one row per connection, direction and bin.
pub fn write_record_csv(out: &mut impl Write, reports: &[ConnectionReport]) -> io::Result<()> {
    writeln!(
        out,
        "connection,direction,bin_start_seconds,bin_seconds,bytes"
    )?;
    for r in reports {
        let bin = r.timeline.bin.as_secs_f64();
        for (dir, bins) in [("up", &r.timeline.up), ("down", &r.timeline.down)] {
            for (i, bytes) in bins.iter().enumerate() {
                writeln!(out, "{},{dir},{:.6},{bin:.6},{bytes}", r.id, i as f64 * bin)?;
            }
        }
    }
    Ok(())
}

/// Every connection's report (timelines and flights included) as one JSON document.
pub fn record_json(reports: &[ConnectionReport], summary: &ProxySummary) -> Value {
    json!({
        "summary": summary_json(summary),
        "connections": reports,
    })
}
