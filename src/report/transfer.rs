//! Reports of transfer tests (`ntm measure`): per-run figures, summaries over repeats, text and
//! JSON.

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::units::{format_bytes, format_duration};
use super::RateUnit;
use crate::measure::{TransferSample, TransferSeries};
use crate::stats::Summary;

/// The figures summarised over repeated runs, with their JSON key stems.
const FIGURES: [Figure; 5] = [
    Figure::UploadRate,
    Figure::DownloadRate,
    Figure::UploadTime,
    Figure::DownloadTime,
    Figure::TotalTime,
];

#[derive(Debug, Clone, Copy)]
enum Figure {
    UploadRate,
    DownloadRate,
    UploadTime,
    DownloadTime,
    TotalTime,
}

impl Figure {
    fn label(self) -> &'static str {
        match self {
            Figure::UploadRate => "Upload",
            Figure::DownloadRate => "Download",
            Figure::UploadTime => "Upload time",
            Figure::DownloadTime => "Download time",
            Figure::TotalTime => "Time",
        }
    }

    fn json_key(self, unit: RateUnit) -> String {
        match self {
            Figure::UploadRate => format!("upload_{}", unit.json_suffix()),
            Figure::DownloadRate => format!("download_{}", unit.json_suffix()),
            Figure::UploadTime => "upload_seconds".into(),
            Figure::DownloadTime => "download_seconds".into(),
            Figure::TotalTime => "total_seconds".into(),
        }
    }

    /// The value of this figure for one run: a rate in `unit`, or seconds.
    fn value(self, run: &TransferSample, unit: RateUnit) -> f64 {
        match self {
            Figure::UploadRate => unit.rate(run.client_sent_bytes, run.upload),
            Figure::DownloadRate => unit.rate(run.client_received_bytes, run.download),
            Figure::UploadTime => run.upload.as_secs_f64(),
            Figure::DownloadTime => run.download.as_secs_f64(),
            Figure::TotalTime => run.total.as_secs_f64(),
        }
    }

    fn format(self, value: f64, unit: RateUnit) -> String {
        match self {
            Figure::UploadRate | Figure::DownloadRate => unit.format(value),
            _ => format_duration(std::time::Duration::from_secs_f64(value.max(0.0))),
        }
    }
}

/// Summary of one figure over a series' runs.
fn summary(series: &TransferSeries, figure: Figure, unit: RateUnit) -> Option<Summary> {
    let values: Vec<f64> = series.runs.iter().map(|r| figure.value(r, unit)).collect();
    Summary::of(&values)
}

/// The median of a figure over a series (the value itself for one run).
pub(super) fn median(series: &TransferSeries, figure_index: usize, unit: RateUnit) -> f64 {
    summary(series, FIGURES[figure_index], unit).map_or(0.0, |s| s.median)
}

/// Index of each figure in [`FIGURES`], for callers that want one value.
pub(super) mod figure {
    pub const UPLOAD_RATE: usize = 0;
    pub const DOWNLOAD_RATE: usize = 1;
    pub const TOTAL_TIME: usize = 4;
}

/// One run as JSON, numbers in base units.
fn run_json(run: &TransferSample, unit: RateUnit) -> Value {
    let mut m = Map::new();
    m.insert("client_sent_bytes".into(), run.client_sent_bytes.into());
    m.insert(
        "server_received_bytes".into(),
        run.server.bytes_received.into(),
    );
    m.insert("server_sent_bytes".into(), run.server.bytes_sent.into());
    m.insert(
        "client_received_bytes".into(),
        run.client_received_bytes.into(),
    );
    m.insert("connect_seconds".into(), run.connect.as_secs_f64().into());
    for figure in FIGURES {
        m.insert(figure.json_key(unit), figure.value(run, unit).into());
    }
    m.insert(
        "server_upload_seconds".into(),
        run.server.upload_seconds.into(),
    );
    m.insert(
        "server_download_seconds".into(),
        run.server.download_seconds.into(),
    );
    Value::Object(m)
}

/// A series (one payload size, all its runs and their summaries) as JSON.
pub fn series_json(series: &TransferSeries, unit: RateUnit) -> Value {
    let mut summaries = Map::new();
    for figure in FIGURES {
        if let Some(s) = summary(series, figure, unit) {
            summaries.insert(figure.json_key(unit), json!(s));
        }
    }
    json!({
        "payload_bytes": series.spec.payload_bytes,
        "response_bytes": series.spec.response_bytes,
        "runs": series.runs.iter().map(|r| run_json(r, unit)).collect::<Vec<_>>(),
        "summary": summaries,
    })
}

/// The whole `measure` report as one JSON document.
pub fn measure_json(server: &str, repeat: u64, series: &[TransferSeries], unit: RateUnit) -> Value {
    json!({
        "server": server,
        "repeat": repeat,
        "tests": series.iter().map(|s| series_json(s, unit)).collect::<Vec<_>>(),
    })
}

/// The `measure` report as text.
pub fn write_measure_text(
    out: &mut impl Write,
    server: &str,
    series: &[TransferSeries],
    unit: RateUnit,
) -> io::Result<()> {
    let runs = series.first().map_or(0, |s| s.runs.len());
    writeln!(
        out,
        "Transfer tests against {server}: {} payload size(s), {runs} run(s) each",
        series.len()
    )?;
    for s in series {
        write_series_text(out, s, unit)?;
    }
    Ok(())
}

fn write_series_text(out: &mut impl Write, s: &TransferSeries, unit: RateUnit) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "Payload {}, response {}",
        format_bytes(s.spec.payload_bytes),
        format_bytes(s.spec.response_bytes)
    )?;
    // Byte counts are exact; if any run differs from the request it is shown, not hidden.
    for run in &s.runs {
        let exact = run.client_sent_bytes == run.server.bytes_received
            && run.server.bytes_sent == run.client_received_bytes;
        if !exact || std::ptr::eq(run, &s.runs[0]) {
            writeln!(
                out,
                "  Sent: {} (server received {}), Received: {} (server sent {})",
                format_bytes(run.client_sent_bytes),
                format_bytes(run.server.bytes_received),
                format_bytes(run.client_received_bytes),
                format_bytes(run.server.bytes_sent),
            )?;
        }
    }
    // With no response there is no download to rate.
    let shown = FIGURES.into_iter().filter(|f| {
        s.spec.response_bytes > 0 || !matches!(f, Figure::DownloadRate | Figure::DownloadTime)
    });
    if s.runs.len() == 1 {
        for figure in shown {
            let v = figure.value(&s.runs[0], unit);
            writeln!(
                out,
                "  {:<14} {}",
                format!("{}:", figure.label()),
                figure.format(v, unit)
            )?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "  {:<14} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "", "min", "median", "mean", "max", "stddev"
    )?;
    for figure in shown {
        let Some(sm) = summary(s, figure, unit) else {
            continue;
        };
        let f = |v: f64| figure.format(v, unit);
        writeln!(
            out,
            "  {:<14} {:>14} {:>14} {:>14} {:>14} {:>14}",
            figure.label(),
            f(sm.min),
            f(sm.median),
            f(sm.mean),
            f(sm.max),
            f(sm.stddev)
        )?;
    }
    Ok(())
}
