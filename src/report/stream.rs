//! Reports of stream (throughput) tests: live interval lines and the end summary in iperf3's
//! layout, and JSON that follows iperf3's `-J` where the concepts match (`intervals[]` with
//! `streams[]` and `sum`, `end` with `sum_sent` and `sum_received`).

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::units::{format_bytes, format_duration};
use super::RateUnit;
use crate::measure::{IntervalSample, StreamOutcome};
use crate::os::TcpInfo;
use crate::wire::{Direction, Limit, StreamRequest};

/// One direction of a test, seen from the client: `Forward` is client -> server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Forward,
    Reverse,
}

impl Way {
    /// The directions a test runs, the main one first (iperf3's `sum_sent` is about it).
    pub fn of(direction: Direction) -> &'static [Way] {
        match direction {
            Direction::Upload => &[Way::Forward],
            Direction::Download => &[Way::Reverse],
            Direction::Bidir => &[Way::Forward, Way::Reverse],
        }
    }

    fn tag(self, bidir: bool) -> &'static str {
        match (bidir, self) {
            (false, _) => "",
            (true, Way::Forward) => " TX",
            (true, Way::Reverse) => " RX",
        }
    }
}

/// The header printed before the first interval.
pub fn write_header(out: &mut impl Write, server: &str, request: &StreamRequest) -> io::Result<()> {
    let what = match request.direction {
        Direction::Upload => "client sends",
        Direction::Download => "server sends (reverse)",
        Direction::Bidir => "both send (bidir)",
    };
    let limit = match request.limit {
        Limit::DurationMs(ms) => format_duration(Duration::from_millis(ms)),
        Limit::Bytes(b) => format_bytes(b),
    };
    let streams = request.streams;
    writeln!(
        out,
        "Testing {server}: {streams} stream{}, {what}, {limit}, {} blocks",
        if streams == 1 { "" } else { "s" },
        format_bytes(request.block_bytes as u64)
    )?;
    writeln!(
        out,
        "[ ID] Interval           Transfer     Bitrate            Retr       Cwnd        RTT"
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn rate(unit: RateUnit, bytes: u64, seconds: f64) -> f64 {
    unit.rate(bytes, Duration::from_secs_f64(seconds.max(0.0)))
}

/// Bytes of a stream in one interval, in one direction, from the client's counters.
fn interval_bytes(s: &crate::measure::StreamInterval, way: Way) -> u64 {
    match way {
        Way::Forward => s.bytes_sent,
        Way::Reverse => s.bytes_received,
    }
}

/// The sender's TCP_INFO for a stream at this interval: the client's own socket when it
/// sends, the server's (from its latest report) when the server sends.
fn sender_info(sample: &IntervalSample, index: usize, way: Way) -> Option<TcpInfo> {
    match way {
        Way::Forward => sample.streams.get(index).and_then(|s| s.tcp_info),
        Way::Reverse => sample
            .server
            .as_ref()
            .and_then(|s| s.streams.get(index))
            .and_then(|s| s.tcp_info),
    }
}

fn info_columns(info: Option<TcpInfo>) -> String {
    match info {
        Some(i) => format!(
            "{:>10} {:>10}",
            format_bytes(i.snd_cwnd_bytes()),
            format_duration(Duration::from_micros(i.rtt_us as u64))
        ),
        None => format!("{:>10} {:>10}", "n/a", "n/a"),
    }
}

/// Prints one interval: a line per stream and direction, and a sum when there are several
/// streams. Retransmits are the change since the previous interval (`previous` keeps them).
pub fn write_interval(
    out: &mut impl Write,
    sample: &IntervalSample,
    request: &StreamRequest,
    unit: RateUnit,
    previous_retrans: &mut Vec<u32>,
) -> io::Result<()> {
    let bidir = request.direction == Direction::Bidir;
    let seconds = secs(sample.end - sample.start);
    let span = format!("{:>6.2}-{:<6.2} sec", secs(sample.start), secs(sample.end));
    let omitted = if sample.omitted { "  (omitted)" } else { "" };
    for (w, &way) in Way::of(request.direction).iter().enumerate() {
        let mut total = 0u64;
        let mut total_retr = 0u32;
        for (i, s) in sample.streams.iter().enumerate() {
            let bytes = interval_bytes(s, way);
            total += bytes;
            let info = sender_info(sample, i, way);
            let slot = w * sample.streams.len() + i;
            if previous_retrans.len() <= slot {
                previous_retrans.resize(slot + 1, 0);
            }
            let retr = info.map(|i| {
                let d = i.retransmits.saturating_sub(previous_retrans[slot]);
                previous_retrans[slot] = i.retransmits;
                d
            });
            total_retr += retr.unwrap_or(0);
            writeln!(
                out,
                "[{:>3}{}] {span}  {:>11}  {:>15}  {:>6} {}{omitted}",
                s.stream,
                way.tag(bidir),
                format_bytes(bytes),
                unit.format(rate(unit, bytes, seconds)),
                retr.map_or("n/a".into(), |r| r.to_string()),
                info_columns(info),
            )?;
        }
        if sample.streams.len() > 1 {
            writeln!(
                out,
                "[SUM{}] {span}  {:>11}  {:>15}  {:>6}{omitted}",
                way.tag(bidir),
                format_bytes(total),
                unit.format(rate(unit, total, seconds)),
                total_retr
            )?;
        }
    }
    Ok(())
}

/// Totals of one direction at the end: what the sender sent and the receiver received, each
/// from its own counters, without the omitted warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionTotals {
    pub way: Way,
    /// Per stream: (sent, received, sender retransmits).
    pub streams: Vec<(u64, u64, Option<u32>)>,
    pub sender_seconds: f64,
    pub receiver_seconds: f64,
}

impl DirectionTotals {
    pub fn sent(&self) -> u64 {
        self.streams.iter().map(|s| s.0).sum()
    }
    pub fn received(&self) -> u64 {
        self.streams.iter().map(|s| s.1).sum()
    }
    pub fn retransmits(&self) -> Option<u32> {
        self.streams.iter().map(|s| s.2).sum()
    }
}

/// The end totals of every direction the test ran.
pub fn totals(outcome: &StreamOutcome) -> Vec<DirectionTotals> {
    let omit = outcome.request.omit_ms as f64 / 1000.0;
    let client_seconds = (secs(outcome.elapsed) - omit).max(0.0);
    let server_seconds = outcome
        .server
        .as_ref()
        .map_or(client_seconds, |s| (s.seconds - omit).max(0.0));
    Way::of(outcome.request.direction)
        .iter()
        .map(|&way| {
            let streams = outcome
                .streams
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let server = outcome.server.as_ref().and_then(|s| s.streams.get(i));
                    let cc = c.counters;
                    match way {
                        Way::Forward => (
                            cc.sent - cc.omitted_sent,
                            server.map_or(0, |s| s.bytes_received - s.omitted_bytes_received),
                            c.tcp_info.map(|t| t.retransmits),
                        ),
                        Way::Reverse => (
                            server.map_or(0, |s| s.bytes_sent - s.omitted_bytes_sent),
                            cc.received - cc.omitted_received,
                            server.and_then(|s| s.tcp_info).map(|t| t.retransmits),
                        ),
                    }
                })
                .collect();
            let (sender_seconds, receiver_seconds) = match way {
                Way::Forward => (client_seconds, server_seconds),
                Way::Reverse => (server_seconds, client_seconds),
            };
            DirectionTotals {
                way,
                streams,
                sender_seconds,
                receiver_seconds,
            }
        })
        .collect()
}

/// CPU use as percentages of wall time: (total, user, system).
fn cpu_percent(user: f64, system: f64, seconds: f64) -> (f64, f64, f64) {
    if seconds <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let p = |v: f64| v / seconds * 100.0;
    (p(user + system), p(user), p(system))
}

fn local_cpu(outcome: &StreamOutcome) -> Option<(f64, f64, f64)> {
    outcome.cpu.map(|c| {
        cpu_percent(
            c.user.as_secs_f64(),
            c.system.as_secs_f64(),
            secs(outcome.elapsed),
        )
    })
}

fn remote_cpu(outcome: &StreamOutcome) -> Option<(f64, f64, f64)> {
    let s = outcome.server.as_ref()?;
    Some(cpu_percent(
        s.cpu_user_seconds?,
        s.cpu_system_seconds?,
        s.seconds,
    ))
}

/// The end summary.
pub fn write_summary(
    out: &mut impl Write,
    outcome: &StreamOutcome,
    unit: RateUnit,
) -> io::Result<()> {
    let bidir = outcome.request.direction == Direction::Bidir;
    writeln!(
        out,
        "- - - - - - - - - - - - - - - - - - - - - - - - - - - - -"
    )?;
    if outcome.partial {
        writeln!(out, "Stopped early: these results are partial.")?;
    }
    writeln!(
        out,
        "[ ID] Interval           Transfer     Bitrate            Retr"
    )?;
    for t in totals(outcome) {
        let span = |s: f64| format!("{:>6.2}-{:<6.2} sec", 0.0, s);
        for (i, &(sent, received, retr)) in t.streams.iter().enumerate() {
            writeln!(
                out,
                "[{:>3}{}] {}  {:>11}  {:>15}  {:>6}  sender",
                i,
                t.way.tag(bidir),
                span(t.sender_seconds),
                format_bytes(sent),
                unit.format(rate(unit, sent, t.sender_seconds)),
                retr.map_or("n/a".into(), |r| r.to_string())
            )?;
            writeln!(
                out,
                "[{:>3}{}] {}  {:>11}  {:>15}          receiver",
                i,
                t.way.tag(bidir),
                span(t.receiver_seconds),
                format_bytes(received),
                unit.format(rate(unit, received, t.receiver_seconds)),
            )?;
        }
        if t.streams.len() > 1 {
            writeln!(
                out,
                "[SUM{}] {}  {:>11}  {:>15}  {:>6}  sender",
                t.way.tag(bidir),
                span(t.sender_seconds),
                format_bytes(t.sent()),
                unit.format(rate(unit, t.sent(), t.sender_seconds)),
                t.retransmits().map_or("n/a".into(), |r| r.to_string())
            )?;
            writeln!(
                out,
                "[SUM{}] {}  {:>11}  {:>15}          receiver",
                t.way.tag(bidir),
                span(t.receiver_seconds),
                format_bytes(t.received()),
                unit.format(rate(unit, t.received(), t.receiver_seconds)),
            )?;
        }
    }
    for (i, s) in outcome.streams.iter().enumerate() {
        if let Some(e) = &s.error {
            writeln!(out, "[{i:>3}] failed: {e}")?;
        }
        let server_error = outcome
            .server
            .as_ref()
            .and_then(|r| r.streams.get(i))
            .and_then(|s| s.error.as_ref());
        if let Some(e) = server_error {
            writeln!(out, "[{i:>3}] failed on the server: {e}")?;
        }
    }
    let fmt = |c: Option<(f64, f64, f64)>| match c {
        Some((t, u, s)) => format!("{t:.1}% (user {u:.1}%, system {s:.1}%)"),
        None => "n/a".into(),
    };
    writeln!(
        out,
        "CPU: local {}, remote {}",
        fmt(local_cpu(outcome)),
        fmt(remote_cpu(outcome))
    )?;
    if outcome.server.is_none() {
        writeln!(
            out,
            "The server sent no final counters: receiver figures are missing."
        )?;
    }
    Ok(())
}

fn info_json(m: &mut Map<String, Value>, info: Option<TcpInfo>) {
    let Some(i) = info else {
        for k in [
            "retransmits",
            "snd_cwnd",
            "rtt",
            "rttvar",
            "pacing_rate",
            "delivery_rate",
            "bytes_retrans",
        ] {
            m.insert(k.into(), Value::Null);
        }
        return;
    };
    m.insert("retransmits".into(), i.retransmits.into());
    m.insert("snd_cwnd".into(), i.snd_cwnd_bytes().into());
    m.insert("rtt".into(), i.rtt_us.into());
    m.insert("rttvar".into(), i.rttvar_us.into());
    m.insert("pacing_rate".into(), i.pacing_rate_bps.into());
    m.insert("delivery_rate".into(), i.delivery_rate_bps.into());
    m.insert("bytes_retrans".into(), i.bytes_retrans.into());
}

fn span_json(
    start: f64,
    end: f64,
    bytes: u64,
    omitted: Option<bool>,
    sender: bool,
) -> Map<String, Value> {
    let seconds = (end - start).max(0.0);
    let mut m = Map::new();
    m.insert("start".into(), start.into());
    m.insert("end".into(), end.into());
    m.insert("seconds".into(), seconds.into());
    m.insert("bytes".into(), bytes.into());
    m.insert(
        "bits_per_second".into(),
        rate(RateUnit::Bits, bytes, seconds).into(),
    );
    if let Some(o) = omitted {
        m.insert("omitted".into(), o.into());
    }
    m.insert("sender".into(), sender.into());
    m
}

/// One interval as iperf3-style JSON.
fn interval_json(sample: &IntervalSample, direction: Direction) -> Value {
    let (start, end) = (secs(sample.start), secs(sample.end));
    let mut out = Map::new();
    let mut streams = Vec::new();
    for (w, &way) in Way::of(direction).iter().enumerate() {
        let mut total = 0;
        for (i, s) in sample.streams.iter().enumerate() {
            let bytes = interval_bytes(s, way);
            total += bytes;
            let mut m = span_json(start, end, bytes, Some(sample.omitted), way == Way::Forward);
            m.insert("socket".into(), s.stream.into());
            info_json(&mut m, sender_info(sample, i, way));
            streams.push(Value::Object(m));
        }
        let key = if w == 0 { "sum" } else { "sum_bidir_reverse" };
        out.insert(
            key.into(),
            Value::Object(span_json(
                start,
                end,
                total,
                Some(sample.omitted),
                way == Way::Forward,
            )),
        );
    }
    out.insert("streams".into(), streams.into());
    Value::Object(out)
}

/// The whole stream test as one JSON document.
pub fn json(server: &str, outcome: &StreamOutcome) -> Value {
    let r = &outcome.request;
    let (duration, bytes) = match r.limit {
        Limit::DurationMs(ms) => (ms as f64 / 1000.0, 0),
        Limit::Bytes(b) => (0.0, b),
    };
    let mut end = Map::new();
    let mut end_streams: Vec<Value> = Vec::new();
    for (w, t) in totals(outcome).iter().enumerate() {
        for (i, &(sent, received, retr)) in t.streams.iter().enumerate() {
            let mut sender = span_json(0.0, t.sender_seconds, sent, None, true);
            sender.insert("socket".into(), i.into());
            sender.insert("retransmits".into(), retr.into());
            let mut receiver = span_json(0.0, t.receiver_seconds, received, None, false);
            receiver.insert("socket".into(), i.into());
            end_streams.push(
                json!({"sender": sender, "receiver": receiver, "reverse": t.way == Way::Reverse}),
            );
        }
        let suffix = if w == 0 { "" } else { "_bidir_reverse" };
        let mut sent = span_json(0.0, t.sender_seconds, t.sent(), None, true);
        sent.insert("retransmits".into(), t.retransmits().into());
        end.insert(format!("sum_sent{suffix}"), Value::Object(sent));
        end.insert(
            format!("sum_received{suffix}"),
            Value::Object(span_json(
                0.0,
                t.receiver_seconds,
                t.received(),
                None,
                false,
            )),
        );
    }
    end.insert("streams".into(), end_streams.into());
    let (l, rm) = (local_cpu(outcome), remote_cpu(outcome));
    end.insert(
        "cpu_utilization_percent".into(),
        json!({
            "host_total": l.map(|c| c.0), "host_user": l.map(|c| c.1), "host_system": l.map(|c| c.2),
            "remote_total": rm.map(|c| c.0), "remote_user": rm.map(|c| c.1), "remote_system": rm.map(|c| c.2),
        }),
    );
    let errors: Vec<Value> = outcome
        .streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let server = outcome
                .server
                .as_ref()
                .and_then(|r| r.streams.get(i))
                .and_then(|s| s.error.clone());
            (s.error.is_some() || server.is_some())
                .then(|| json!({"socket": i, "client_error": s.error, "server_error": server}))
        })
        .collect();
    end.insert("failed_streams".into(), errors.into());
    json!({
        "start": {
            "server": server,
            "connected_to": outcome.server_addr.to_string(),
            "test_start": {
                "protocol": "TCP",
                "num_streams": r.streams,
                "blksize": r.block_bytes,
                "omit": r.omit_ms as f64 / 1000.0,
                "duration": duration,
                "bytes": bytes,
                "reverse": r.direction == Direction::Download,
                "bidir": r.direction == Direction::Bidir,
                "interval": r.interval_ms as f64 / 1000.0,
            },
        },
        "intervals": outcome.intervals.iter().map(|s| interval_json(s, r.direction)).collect::<Vec<_>>(),
        "end": end,
        "partial": outcome.partial,
    })
}
