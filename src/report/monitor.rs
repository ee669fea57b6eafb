//! Reports of `ntm top` and `ntm exec`: the snapshot table, NDJSON snapshots, Prometheus
//! metrics, the exec report (text and JSON) and its bandwidth plot. Figures come computed from
//! the monitor's core; nothing here measures.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::plot::PlotError;
use super::units::{format_bit_rate, format_bytes, format_duration};
use crate::monitor::{PeerRow, ProcessRow, Snapshot};

/// What a text snapshot shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableOptions {
    /// List each process's connections under it.
    pub connections: bool,
    /// Show at most this many owners (the busiest).
    pub limit: Option<usize>,
}

/// The note printed when some sockets' owners could not be read.
pub const NEEDS_ROOT_NOTE: &str = "sockets of other users' processes are counted as \
    \"unknown (needs root)\"; run as root to see their owners";

fn owner_name(p: &ProcessRow) -> String {
    if p.exited {
        format!("{} (exited)", p.name)
    } else {
        p.name.clone()
    }
}

/// One snapshot as a table: owners by current rate, interfaces below.
pub fn write_snapshot(out: &mut impl Write, s: &Snapshot, options: TableOptions) -> io::Result<()> {
    writeln!(
        out,
        "ntm top  {}  up {}  down {}  total up {}  down {}",
        if s.interval.is_zero() {
            format!("at {}", format_duration(s.elapsed))
        } else {
            format!("interval {}", format_duration(s.interval))
        },
        format_bit_rate(s.up_bits_per_second),
        format_bit_rate(s.down_bits_per_second),
        format_bytes(s.bytes_up),
        format_bytes(s.bytes_down)
    )?;
    writeln!(
        out,
        "{:>8}  {:<34} {:>15} {:>15} {:>11} {:>11} {:>6}",
        "PID", "NAME", "UP/s", "DOWN/s", "UP", "DOWN", "CONNS"
    )?;
    let shown = options.limit.unwrap_or(usize::MAX);
    for p in s.processes.iter().take(shown) {
        let pid = p.pid.map_or("-".to_string(), |pid| pid.to_string());
        let mut name = owner_name(p);
        if name.chars().count() > 34 {
            name = name.chars().take(33).collect::<String>() + "…";
        }
        writeln!(
            out,
            "{pid:>8}  {name:<34} {:>15} {:>15} {:>11} {:>11} {:>6}",
            format_bit_rate(p.up_bits_per_second),
            format_bit_rate(p.down_bits_per_second),
            format_bytes(p.bytes_up),
            format_bytes(p.bytes_down),
            p.open_connections
        )?;
        if options.connections {
            for c in &p.connections {
                writeln!(
                    out,
                    "{:>10}{} -> {}  {}  up {} ({})  down {} ({})",
                    "",
                    c.local,
                    c.remote,
                    c.state,
                    format_bytes(c.bytes_up),
                    format_bit_rate(c.up_bits_per_second),
                    format_bytes(c.bytes_down),
                    format_bit_rate(c.down_bits_per_second)
                )?;
            }
        }
    }
    if s.processes.len() > shown {
        writeln!(out, "{:>10}... {} more", "", s.processes.len() - shown)?;
    }
    if !s.interfaces.is_empty() {
        writeln!(out, "interfaces (all protocols, headers included):")?;
        for i in &s.interfaces {
            writeln!(
                out,
                "  {:<12} rx {:>11} ({:>15})   tx {:>11} ({:>15})",
                i.name,
                format_bytes(i.rx_bytes),
                format_bit_rate(i.rx_bits_per_second),
                format_bytes(i.tx_bytes),
                format_bit_rate(i.tx_bits_per_second)
            )?;
        }
    }
    if !s.owners_complete {
        writeln!(out, "note: {NEEDS_ROOT_NOTE}")?;
    }
    if s.lost_closed > 0 {
        writeln!(
            out,
            "note: the kernel dropped closed-socket events {} times: some short connections are missing",
            s.lost_closed
        )?;
    }
    Ok(())
}

/// One snapshot as a JSON object (one NDJSON line). Connections only when asked.
pub fn snapshot_json(s: &Snapshot, connections: bool) -> Value {
    let mut v = serde_json::to_value(s).expect("snapshots serialize");
    v["event"] = "snapshot".into();
    if let Some(rows) = v["processes"].as_array_mut() {
        for row in rows {
            if let Some(obj) = row.as_object_mut() {
                if !connections {
                    obj.remove("connections");
                }
                // `owner` is an enum ({"process": pid} or "needs_root"): say it plainly.
                let kind = match obj.get("owner") {
                    Some(Value::String(k)) => k.clone(),
                    _ => "process".to_string(),
                };
                obj.insert("owner".into(), kind.into());
            }
        }
    }
    v
}

/// Per-process and per-interface counters in Prometheus text format.
pub fn metrics_text(s: &Snapshot) -> String {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    type Labels = Vec<(String, String)>;
    let mut registry = Registry::with_prefix("ntm_top");
    let bytes = Family::<Labels, Counter>::default();
    registry.register(
        "bytes",
        "TCP payload bytes since ntm top started, by process and direction",
        bytes.clone(),
    );
    let open = Family::<Labels, Gauge>::default();
    registry.register(
        "open_connections",
        "TCP connections open now, by process",
        open.clone(),
    );
    for p in &s.processes {
        let pid = p.pid.map_or("-".to_string(), |pid| pid.to_string());
        let labels = |extra: Option<&str>| -> Labels {
            let mut l = vec![("pid".into(), pid.clone()), ("name".into(), p.name.clone())];
            if let Some(d) = extra {
                l.push(("direction".into(), d.into()));
            }
            l
        };
        bytes.get_or_create(&labels(Some("up"))).inc_by(p.bytes_up);
        bytes
            .get_or_create(&labels(Some("down")))
            .inc_by(p.bytes_down);
        open.get_or_create(&labels(None))
            .set(p.open_connections as i64);
    }
    let interface = Family::<Labels, Counter>::default();
    registry.register(
        "interface_bytes",
        "Bytes through each interface since ntm top started (all protocols, headers included)",
        interface.clone(),
    );
    for i in &s.interfaces {
        for (dir, v) in [("rx", i.rx_bytes), ("tx", i.tx_bytes)] {
            interface
                .get_or_create(&vec![
                    ("interface".into(), i.name.clone()),
                    ("direction".into(), dir.into()),
                ])
                .inc_by(v);
        }
    }
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// Bytes of the traced command in one poll interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExecInterval {
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// What `ntm exec` found.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecReport {
    pub command: Vec<String>,
    pub exit_code: i32,
    /// From start to the command's exit.
    pub duration: Duration,
    /// TCP payload bytes, exact (see `monitor`).
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub connections: u64,
    pub peers: Vec<PeerRow>,
    pub interval: Duration,
    pub intervals: Vec<ExecInterval>,
    /// Connections were traced as they opened (else attributed by polls alone).
    pub traced: bool,
    pub untraced_reason: Option<String>,
    pub lost_closed: u64,
}

impl ExecReport {
    /// Seconds a rate over `i` is taken over: at least one poll interval, so the last, short
    /// interval (it ends at the exit, and holds the final counters of sockets that closed
    /// since the poll before) does not read as a burst.
    fn rate_seconds(&self, i: &ExecInterval) -> f64 {
        (i.end_seconds - i.start_seconds)
            .max(self.interval.as_secs_f64())
            .max(1e-9)
    }

    /// The highest rate over one interval, up and down, bits per second.
    pub fn peak_bits_per_second(&self) -> (f64, f64) {
        self.intervals.iter().fold((0.0f64, 0.0f64), |(u, d), i| {
            let secs = self.rate_seconds(i);
            (
                u.max(i.bytes_up as f64 * 8.0 / secs),
                d.max(i.bytes_down as f64 * 8.0 / secs),
            )
        })
    }
}

pub fn write_exec(out: &mut impl Write, r: &ExecReport) -> io::Result<()> {
    let (peak_up, peak_down) = r.peak_bits_per_second();
    writeln!(out, "ntm exec: {}", r.command.join(" "))?;
    writeln!(out, "  exit code    {}", r.exit_code)?;
    writeln!(out, "  duration     {}", format_duration(r.duration))?;
    writeln!(
        out,
        "  TCP up       {} ({} bytes of payload)",
        format_bytes(r.bytes_up),
        r.bytes_up
    )?;
    writeln!(
        out,
        "  TCP down     {} ({} bytes of payload)",
        format_bytes(r.bytes_down),
        r.bytes_down
    )?;
    writeln!(
        out,
        "  connections  {} to {} peer{}",
        r.connections,
        r.peers.len(),
        if r.peers.len() == 1 { "" } else { "s" }
    )?;
    writeln!(
        out,
        "  peak rate    up {}, down {} (over {} intervals)",
        format_bit_rate(peak_up),
        format_bit_rate(peak_down),
        format_duration(r.interval)
    )?;
    for p in &r.peers {
        writeln!(
            out,
            "    {:<40} {:>5} connection{}  up {:>11}  down {:>11}",
            p.remote.map_or("?".to_string(), |a| a.to_string()),
            p.connections,
            if p.connections == 1 { " " } else { "s" },
            format_bytes(p.bytes_up),
            format_bytes(p.bytes_down)
        )?;
    }
    if let Some(why) = &r.untraced_reason {
        writeln!(
            out,
            "  note: connections were not traced as they opened ({why}); ones shorter than an interval may be missing"
        )?;
    }
    if r.lost_closed > 0 {
        writeln!(
            out,
            "  note: the kernel dropped closed-socket events {} times: totals may be short",
            r.lost_closed
        )?;
    }
    Ok(())
}

pub fn exec_json(r: &ExecReport) -> Value {
    let (peak_up, peak_down) = r.peak_bits_per_second();
    json!({
        "command": r.command,
        "exit_code": r.exit_code,
        "duration_seconds": r.duration.as_secs_f64(),
        "bytes_up": r.bytes_up,
        "bytes_down": r.bytes_down,
        "connections": r.connections,
        "peers": r.peers.iter().map(|p| json!({
            "remote": p.remote.map(|a| a.to_string()),
            "connections": p.connections,
            "bytes_up": p.bytes_up,
            "bytes_down": p.bytes_down,
        })).collect::<Vec<_>>(),
        "peak_up_bits_per_second": peak_up,
        "peak_down_bits_per_second": peak_down,
        "interval_seconds": r.interval.as_secs_f64(),
        "intervals": r.intervals,
        "traced": r.traced,
        "untraced_reason": r.untraced_reason,
        "lost_closed": r.lost_closed,
    })
}

/// The command's bandwidth over time, up and down, one point per interval.
pub fn exec_svg(path: &Path, r: &ExecReport) -> Result<(), PlotError> {
    let series = |pick: fn(&ExecInterval) -> u64| -> Vec<(f64, f64)> {
        r.intervals
            .iter()
            .map(|i| {
                (
                    i.end_seconds,
                    pick(i) as f64 * 8.0 / r.rate_seconds(i) / 1e6,
                )
            })
            .collect()
    };
    let title: String = format!("ntm exec: {}", r.command.join(" "))
        .chars()
        .take(80)
        .collect();
    super::plot::up_down_svg(
        path,
        &title,
        "Mbit/s (TCP payload)",
        series(|i| i.bytes_up),
        series(|i| i.bytes_down),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::{InterfaceRow, Owner};

    fn snapshot() -> Snapshot {
        Snapshot {
            elapsed: Duration::from_secs(2),
            interval: Duration::from_secs(1),
            processes: vec![ProcessRow {
                owner: Owner::Process(42),
                pid: Some(42),
                ppid: Some(1),
                name: "curl".into(),
                exited: false,
                bytes_up: 1000,
                bytes_down: 2_000_000,
                up_bits_per_second: 8000.0,
                down_bits_per_second: 16e6,
                open_connections: 1,
                connections_total: 1,
                connections: vec![],
            }],
            interfaces: vec![InterfaceRow {
                name: "lo".into(),
                rx_bytes: 5,
                tx_bytes: 5,
                rx_bits_per_second: 40.0,
                tx_bits_per_second: 40.0,
            }],
            bytes_up: 1000,
            bytes_down: 2_000_000,
            up_bits_per_second: 8000.0,
            down_bits_per_second: 16e6,
            owners_complete: false,
            lost_closed: 0,
        }
    }

    #[test]
    fn table_names_the_process_and_the_note() {
        let mut out = Vec::new();
        write_snapshot(&mut out, &snapshot(), TableOptions::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("curl"), "{text}");
        assert!(text.contains("16.00 Mbit/s"), "{text}");
        assert!(text.contains("needs root"), "{text}");
    }

    #[test]
    fn json_owner_is_a_plain_word() {
        let v = snapshot_json(&snapshot(), false);
        assert_eq!(v["processes"][0]["owner"], "process");
        assert_eq!(v["processes"][0]["pid"], 42);
        assert_eq!(v["processes"][0]["bytes_down"], 2_000_000);
        assert!(v["processes"][0].get("connections").is_none());
    }

    #[test]
    fn metrics_carry_pid_and_direction() {
        let text = metrics_text(&snapshot());
        assert!(
            text.contains(
                "ntm_top_bytes_total{pid=\"42\",name=\"curl\",direction=\"down\"} 2000000"
            ),
            "{text}"
        );
    }

    #[test]
    fn peak_is_the_busiest_interval() {
        let r = ExecReport {
            command: vec!["x".into()],
            exit_code: 0,
            duration: Duration::from_secs(1),
            bytes_up: 0,
            bytes_down: 0,
            connections: 0,
            peers: vec![],
            interval: Duration::from_millis(100),
            intervals: vec![
                ExecInterval {
                    start_seconds: 0.0,
                    end_seconds: 0.1,
                    bytes_up: 100,
                    bytes_down: 0,
                },
                ExecInterval {
                    start_seconds: 0.1,
                    end_seconds: 0.2,
                    bytes_up: 1000,
                    bytes_down: 10,
                },
            ],
            traced: true,
            untraced_reason: None,
            lost_closed: 0,
        };
        let (up, down) = r.peak_bits_per_second();
        assert!((up - 80_000.0).abs() < 1e-6, "{up}");
        assert!((down - 800.0).abs() < 1e-6, "{down}");
    }
}
