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

/// The header of a CSV recording.
pub const RECORD_CSV_HEADER: &str = "connection,direction,bin_start_seconds,bin_seconds,bytes";

/// One connection's timeline as CSV rows: one per direction and bin.
pub fn write_record_csv_rows(out: &mut impl Write, r: &ConnectionReport) -> io::Result<()> {
    let bin = r.timeline.bin.as_secs_f64();
    for (dir, bins) in [("up", &r.timeline.up), ("down", &r.timeline.down)] {
        for (i, bytes) in bins.iter().enumerate() {
            writeln!(out, "{},{dir},{:.6},{bin:.6},{bytes}", r.id, i as f64 * bin)?;
        }
    }
    Ok(())
}

/// The form of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// [`RECORD_CSV_HEADER`], then each connection's rows.
    Csv,
    /// `{"connections":[...],"summary":{...}}`: every connection's report (timelines and
    /// flights included), then the summary.
    Json,
}

/// A recording written as connections close, so no report waits in memory until exit. Each
/// connection is flushed as it is written: a CSV recording of a proxy that is killed holds every
/// connection that closed before. A JSON document is whole once [`Recording::finish`] has
/// written the summary.
#[derive(Debug)]
pub struct Recording<W: Write> {
    out: W,
    format: RecordFormat,
    connections: u64,
}

impl<W: Write> Recording<W> {
    /// Starts a recording on `out`: the CSV header, or the opening of the JSON document.
    pub fn start(mut out: W, format: RecordFormat) -> io::Result<Self> {
        match format {
            RecordFormat::Csv => writeln!(out, "{RECORD_CSV_HEADER}")?,
            RecordFormat::Json => out.write_all(b"{\"connections\":[")?,
        }
        out.flush()?;
        Ok(Recording {
            out,
            format,
            connections: 0,
        })
    }

    /// Adds a closed connection and flushes.
    pub fn connection(&mut self, r: &ConnectionReport) -> io::Result<()> {
        match self.format {
            RecordFormat::Csv => write_record_csv_rows(&mut self.out, r)?,
            RecordFormat::Json => {
                if self.connections > 0 {
                    self.out.write_all(b",")?;
                }
                serde_json::to_writer(&mut self.out, r)?;
            }
        }
        self.connections += 1;
        self.out.flush()
    }

    /// Ends the recording (for JSON, with the summary) and returns the writer, flushed.
    pub fn finish(mut self, summary: &ProxySummary) -> io::Result<W> {
        if self.format == RecordFormat::Json {
            write!(self.out, "],\"summary\":{}}}", summary_json(summary))?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::flights::{Dir, Flight};
    use crate::proxy::timeline::Timeline;

    /// The document a JSON [`Recording`] writes piece by piece, built at once.
    fn record_json(reports: &[ConnectionReport], summary: &ProxySummary) -> Value {
        json!({
            "summary": summary_json(summary),
            "connections": reports,
        })
    }

    fn report(id: u64, up: u64, down: u64) -> ConnectionReport {
        let mut timeline = Timeline::new(Duration::from_millis(10));
        timeline.add(Dir::Up, Duration::from_millis(3), up);
        timeline.add(Dir::Down, Duration::from_millis(25), down);
        ConnectionReport {
            id,
            client: "127.0.0.1:40000".parse().unwrap(),
            upstream: Some("127.0.0.1:8080".parse().unwrap()),
            seconds: 0.031,
            bytes_up: up,
            bytes_down: down,
            first_byte_up: Some(0.003),
            last_byte_up: Some(0.003),
            first_byte_down: Some(0.025),
            last_byte_down: Some(0.025),
            flight_count: 2,
            round_trips: 1,
            flights: vec![
                Flight {
                    dir: Dir::Up,
                    bytes: up,
                    start: Duration::from_millis(3),
                    end: Duration::from_millis(3),
                    gap: Duration::from_millis(3),
                },
                Flight {
                    dir: Dir::Down,
                    bytes: down,
                    start: Duration::from_millis(25),
                    end: Duration::from_millis(25),
                    gap: Duration::from_millis(22),
                },
            ],
            peak_up_bps: up as f64 * 800.0,
            peak_down_bps: down as f64 * 800.0,
            timeline,
            end: "closed".into(),
        }
    }

    fn summary(reports: &[ConnectionReport]) -> ProxySummary {
        ProxySummary {
            connections: reports.len() as u64,
            bytes_up: reports.iter().map(|r| r.bytes_up).sum(),
            bytes_down: reports.iter().map(|r| r.bytes_down).sum(),
            seconds: 1.5,
            timeline: Timeline::new(Duration::from_millis(10)),
        }
    }

    #[test]
    fn a_streamed_json_recording_is_the_whole_document() {
        for n in 0..3 {
            let reports: Vec<_> = (1..=n).map(|id| report(id, 100 * id, 7 * id)).collect();
            let mut rec = Recording::start(Vec::new(), RecordFormat::Json).unwrap();
            for r in &reports {
                rec.connection(r).unwrap();
            }
            let bytes = rec.finish(&summary(&reports)).unwrap();
            let doc: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{n} connections: not JSON ({e})"));
            assert_eq!(doc, record_json(&reports, &summary(&reports)), "{n}");
        }
    }

    #[test]
    fn csv_rows_are_written_and_flushed_as_each_connection_closes() {
        /// Counts what reached the file: only flushed bytes.
        #[derive(Default)]
        struct Flushed {
            pending: Vec<u8>,
            file: Vec<u8>,
        }
        impl Write for Flushed {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.pending.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                self.file.append(&mut self.pending);
                Ok(())
            }
        }
        let mut rec = Recording::start(Flushed::default(), RecordFormat::Csv).unwrap();
        assert_eq!(rec.out.file, format!("{RECORD_CSV_HEADER}\n").as_bytes());
        rec.connection(&report(1, 100, 7)).unwrap();
        rec.connection(&report(2, 200, 14)).unwrap();
        let text = String::from_utf8(rec.out.file.clone()).unwrap();
        // Bins: up [100], down [0, 0, 7].
        let expect = [
            RECORD_CSV_HEADER,
            "1,up,0.000000,0.010000,100",
            "1,down,0.000000,0.010000,0",
            "1,down,0.010000,0.010000,0",
            "1,down,0.020000,0.010000,7",
            "2,up,0.000000,0.010000,200",
            "2,down,0.000000,0.010000,0",
            "2,down,0.010000,0.010000,0",
            "2,down,0.020000,0.010000,14",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expect);
        let out = rec.finish(&summary(&[])).unwrap();
        assert_eq!(out.file, text.as_bytes(), "a CSV recording has no trailer");
    }
}
