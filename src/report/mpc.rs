//! Reports of `ntm mpc`: estimates per phase, sweeps as tables, JSON and CSV, and replays with
//! measured beside predicted time. Sizes print in binary units (1 MB = 1024 KB) as everywhere in
//! ntm; JSON carries exact bytes.

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{json, Value};

use super::units::{format_bit_rate, format_bytes, format_duration};
use crate::measure::ReplayOutcome;
use crate::mpc::replay::{attribute, SeenPhase};
use crate::mpc::sweep::Sweep;
use crate::mpc::{overhead_ratios, Estimate, Link, PhaseEstimate, Protocol, Resource, Workload};
use crate::proxy::flights::Dir;
use crate::proxy::ConnectionReport;
use crate::wire::ReplayScript;

pub use crate::mpc::replay::replayed_costs;

fn secs(s: f64) -> String {
    format_duration(Duration::from_secs_f64(s.max(0.0)))
}

fn link_line(link: &Link, how: &str) -> String {
    format!(
        "{} up, {} down, {} RTT ({how})",
        format_bit_rate(link.up_bps),
        format_bit_rate(link.down_bps),
        format_duration(link.rtt)
    )
}

fn advice(r: Resource) -> &'static str {
    match r {
        Resource::UploadBandwidth => "a faster uplink helps most",
        Resource::DownloadBandwidth => "a faster downlink helps most",
        Resource::Latency => "a shorter round trip (a closer verifier) helps most",
        Resource::Compute => "faster machines help most; the network is not the bottleneck",
    }
}

fn phase_row(p: &PhaseEstimate) -> String {
    format!(
        "  {:<12} {:>11} {:>11} {:>11} {:>10} {:>10}  {}",
        p.name,
        format_bytes(p.upload_bytes),
        format_bytes(p.download_bytes),
        p.round_trips,
        secs(p.compute_seconds),
        secs(p.seconds),
        p.dominant
    )
}

pub fn write_estimate(
    out: &mut impl Write,
    protocol: &Protocol,
    workload: &Workload,
    link: &Link,
    how: &str,
    estimate: &Estimate,
) -> io::Result<()> {
    writeln!(out, "{}: {}", protocol.name(), protocol.about())?;
    writeln!(
        out,
        "Session: {} sent, {} received, on {}",
        format_bytes(workload.sent_bytes),
        format_bytes(workload.recv_bytes),
        link_line(link, how)
    )?;
    writeln!(
        out,
        "  {:<12} {:>11} {:>11} {:>11} {:>10} {:>10}  dominated by",
        "phase", "upload", "download", "round trips", "compute", "time"
    )?;
    for p in &estimate.phases {
        writeln!(out, "{}", phase_row(p))?;
    }
    writeln!(out, "{}", phase_row(&estimate.total))?;
    let bytes = crate::mpc::MpcEstimate {
        upload_bytes: estimate.total.upload_bytes,
        download_bytes: estimate.total.download_bytes,
    };
    let (up, down) = overhead_ratios(&bytes, workload.sent_bytes, workload.recv_bytes);
    let ratio = |r: Option<f64>| r.map_or("n/a".into(), |r| format!("{r:.0}x"));
    writeln!(
        out,
        "Overhead: upload {} the request, download {} the response.",
        ratio(up),
        ratio(down)
    )?;
    writeln!(
        out,
        "Most of the time goes to {}: {}.",
        estimate.total.dominant,
        advice(estimate.total.dominant)
    )?;
    writeln!(out, "Source: {}", protocol.source())?;
    Ok(())
}

fn phase_json(p: &PhaseEstimate) -> Value {
    json!({
        "name": p.name,
        "upload_bytes": p.upload_bytes,
        "download_bytes": p.download_bytes,
        "round_trips": p.round_trips,
        "compute_seconds": p.compute_seconds,
        "seconds": p.seconds,
        "dominant": p.dominant,
        "upload_seconds": p.upload_seconds,
        "download_seconds": p.download_seconds,
        "latency_seconds": p.latency_seconds,
    })
}

fn link_json(link: &Link, how: &str) -> Value {
    json!({
        "up_bits_per_second": link.up_bps,
        "down_bits_per_second": link.down_bps,
        "rtt_seconds": link.rtt.as_secs_f64(),
        "source": how,
    })
}

fn workload_json(w: &Workload) -> Value {
    json!({
        "sent_bytes": w.sent_bytes,
        "recv_bytes": w.recv_bytes,
        "max_sent_bytes": w.max_sent_bytes(),
        "max_recv_bytes": w.max_recv_bytes(),
    })
}

pub fn estimate_json(
    protocol: &Protocol,
    workload: &Workload,
    link: &Link,
    how: &str,
    estimate: &Estimate,
) -> Value {
    let bytes = crate::mpc::MpcEstimate {
        upload_bytes: estimate.total.upload_bytes,
        download_bytes: estimate.total.download_bytes,
    };
    let (up, down) = overhead_ratios(&bytes, workload.sent_bytes, workload.recv_bytes);
    json!({
        "protocol": protocol.name(),
        "source": protocol.source(),
        "workload": workload_json(workload),
        "link": link_json(link, how),
        "phases": estimate.phases.iter().map(phase_json).collect::<Vec<_>>(),
        "total": phase_json(&estimate.total),
        "overhead": {"upload_ratio": up, "download_ratio": down},
    })
}

pub fn write_sweep(
    out: &mut impl Write,
    protocol: &Protocol,
    workload: &Workload,
    sweep: &Sweep,
    budget: Option<f64>,
) -> io::Result<()> {
    writeln!(
        out,
        "{}: total time of one session ({} sent, {} received), by RTT (rows) and rate both ways (columns){}",
        protocol.name(),
        format_bytes(workload.sent_bytes),
        format_bytes(workload.recv_bytes),
        budget.map_or(String::new(), |b| format!("; * = within {}", secs(b)))
    )?;
    write!(out, "{:>10}", "RTT")?;
    for &r in &sweep.rates_bps {
        write!(out, " {:>13}", format_bit_rate(r))?;
    }
    writeln!(out)?;
    for (row, &rtt) in sweep.rows.iter().zip(&sweep.rtts_seconds) {
        write!(out, "{:>10}", secs(rtt))?;
        for c in row {
            let mark = match budget {
                Some(b) if c.seconds <= b => "*",
                _ => " ",
            };
            write!(out, " {:>12}{mark}", secs(c.seconds))?;
        }
        writeln!(out)?;
    }
    if let Some(b) = budget {
        for (rtt, rate) in sweep.rtts_seconds.iter().zip(sweep.budget_frontier(b)) {
            writeln!(
                out,
                "  at {}: {}",
                secs(*rtt),
                rate.map_or(format!("over {} at every rate", secs(b)), |r| format!(
                    "within {} from {}",
                    secs(b),
                    format_bit_rate(r)
                ))
            )?;
        }
    }
    Ok(())
}

pub fn sweep_json(
    protocol: &Protocol,
    workload: &Workload,
    sweep: &Sweep,
    budget: Option<f64>,
) -> Value {
    json!({
        "protocol": protocol.name(),
        "workload": workload_json(workload),
        "rates_bits_per_second": sweep.rates_bps,
        "rtts_seconds": sweep.rtts_seconds,
        "seconds": sweep.rows.iter().map(|r| r.iter().map(|c| c.seconds).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "cells": sweep.rows.iter().flatten().collect::<Vec<_>>(),
        "budget_seconds": budget,
        "budget_min_rate_bits_per_second": budget.map(|b| sweep.budget_frontier(b)),
    })
}

pub fn write_sweep_csv(out: &mut impl Write, sweep: &Sweep) -> io::Result<()> {
    writeln!(
        out,
        "rate_bits_per_second,rtt_seconds,seconds,upload_bytes,download_bytes"
    )?;
    for c in sweep.rows.iter().flatten() {
        writeln!(
            out,
            "{},{},{},{},{}",
            c.rate_bps, c.rtt_seconds, c.seconds, c.upload_bytes, c.download_bytes
        )?;
    }
    Ok(())
}

/// Everything a replay report shows.
pub struct ReplayReport<'a> {
    pub protocol: &'a Protocol,
    pub workload: &'a Workload,
    pub link: &'a Link,
    pub link_how: &'a str,
    pub scale: f64,
    pub script: &'a ReplayScript,
    pub outcome: &'a ReplayOutcome,
    pub predicted: &'a Estimate,
    /// The in-process proxy's report of the replay connection, with `--via-profile`.
    pub proxy: Option<&'a ConnectionReport>,
    /// The server, as the user named it.
    pub server: &'a str,
    /// What the in-process proxy emulated, if anything.
    pub emulated: Option<String>,
}

impl ReplayReport<'_> {
    /// Each phase as the proxy counted it, when there was a proxy.
    pub fn seen(&self) -> Option<Vec<SeenPhase>> {
        let p = self.proxy?;
        let flights: Vec<(bool, u64)> = p
            .flights
            .iter()
            .map(|f| (f.dir == Dir::Up, f.bytes))
            .collect();
        attribute(
            &flights,
            self.script,
            2 * self.outcome.control_round_trips as usize,
            self.outcome.results_frame_bytes,
        )
    }
}

pub fn write_replay(out: &mut impl Write, r: &ReplayReport<'_>) -> io::Result<()> {
    writeln!(
        out,
        "Replay of {} ({} sent, {} received{}) against {}{}",
        r.protocol.name(),
        format_bytes(r.workload.sent_bytes),
        format_bytes(r.workload.recv_bytes),
        if r.scale < 1.0 {
            format!(", bytes x {}", r.scale)
        } else {
            String::new()
        },
        r.server,
        r.emulated
            .as_ref()
            .map_or(String::new(), |e| format!(" through an emulated {e}")),
    )?;
    writeln!(out, "Prediction for {}", link_line(r.link, r.link_how))?;
    writeln!(
        out,
        "  {:<12} {:>11} {:>11} {:>11} {:>10} {:>10} {:>8}",
        "phase", "upload", "download", "round trips", "measured", "predicted", "error"
    )?;
    let error = |m: f64, p: f64| {
        if p > 0.0 {
            format!("{:+.1}%", (m - p) / p * 100.0)
        } else {
            "n/a".into()
        }
    };
    for (phase, pred) in r.outcome.phases.iter().zip(&r.predicted.phases) {
        let m = phase.elapsed.as_secs_f64();
        writeln!(
            out,
            "  {:<12} {:>11} {:>11} {:>11} {:>10} {:>10} {:>8}",
            phase.name,
            format_bytes(phase.bytes_sent),
            format_bytes(phase.bytes_received),
            phase.exchanges,
            secs(m),
            secs(pred.seconds),
            error(m, pred.seconds)
        )?;
    }
    let m = r.outcome.elapsed.as_secs_f64();
    let total_up: u64 = r.outcome.phases.iter().map(|p| p.bytes_sent).sum();
    let total_down: u64 = r.outcome.phases.iter().map(|p| p.bytes_received).sum();
    let rounds: u64 = r.outcome.phases.iter().map(|p| p.exchanges).sum();
    writeln!(
        out,
        "  {:<12} {:>11} {:>11} {:>11} {:>10} {:>10} {:>8}",
        "total",
        format_bytes(total_up),
        format_bytes(total_down),
        rounds,
        secs(m),
        secs(r.predicted.total.seconds),
        error(m, r.predicted.total.seconds)
    )?;
    if let Some(p) = r.proxy {
        writeln!(
            out,
            "The proxy counted {} up and {} down in {} flights ({} round trips); the pattern is {} up and {} down in {} round trips, plus {} up and {} down of control frames in 1 round trip.",
            format_bytes(p.bytes_up),
            format_bytes(p.bytes_down),
            p.flight_count,
            p.round_trips,
            format_bytes(total_up),
            format_bytes(total_down),
            rounds,
            format_bytes(r.outcome.control_bytes.0),
            format_bytes(r.outcome.control_bytes.1),
        )?;
        match r.seen() {
            Some(seen) => {
                let exact = seen.iter().zip(&r.outcome.phases).all(|(s, p)| {
                    s.upload_bytes == p.bytes_sent
                        && s.download_bytes == p.bytes_received
                        && s.round_trips == p.exchanges
                });
                writeln!(
                    out,
                    "Per phase, the proxy's counts {} the pattern.",
                    if exact { "match" } else { "DO NOT match" }
                )?;
            }
            None => writeln!(
                out,
                "The proxy's flights do not split into the pattern's phases."
            )?,
        }
    }
    Ok(())
}

pub fn replay_json(r: &ReplayReport<'_>) -> Value {
    let seen = r.seen();
    let phases: Vec<Value> = r
        .outcome
        .phases
        .iter()
        .zip(&r.predicted.phases)
        .enumerate()
        .map(|(i, (phase, pred))| {
            json!({
                "name": phase.name,
                "upload_bytes": phase.bytes_sent,
                "download_bytes": phase.bytes_received,
                "round_trips": phase.exchanges,
                "compute_seconds": phase.compute.as_secs_f64(),
                "measured_seconds": phase.elapsed.as_secs_f64(),
                "predicted_seconds": pred.seconds,
                "server": phase.server,
                "proxy": seen.as_ref().and_then(|s| s.get(i)),
            })
        })
        .collect();
    let sum =
        |f: fn(&crate::measure::ReplayedPhase) -> u64| r.outcome.phases.iter().map(f).sum::<u64>();
    json!({
        "protocol": r.protocol.name(),
        "workload": workload_json(r.workload),
        "scale": r.scale,
        "server": r.server,
        "emulated": r.emulated,
        "link": link_json(r.link, r.link_how),
        "phases": phases,
        "total": {
            "upload_bytes": sum(|p| p.bytes_sent),
            "download_bytes": sum(|p| p.bytes_received),
            "round_trips": sum(|p| p.exchanges),
            "measured_seconds": r.outcome.elapsed.as_secs_f64(),
            "predicted_seconds": r.predicted.total.seconds,
        },
        "control": {
            "upload_bytes": r.outcome.control_bytes.0,
            "download_bytes": r.outcome.control_bytes.1,
            "round_trips": r.outcome.control_round_trips,
        },
        "proxy": r.proxy.map(|p| json!({
            "upload_bytes": p.bytes_up,
            "download_bytes": p.bytes_down,
            "flights": p.flight_count,
            "round_trips": p.round_trips,
        })),
    })
}
