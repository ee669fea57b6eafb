//! The demo's report: the original tool's layout ("Network Transfer Test", then "MPC
//! Communication Simulation"), with correct units.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::transfer::{figure, median, series_json};
use super::units::{format_bytes, format_duration};
use super::RateUnit;
use crate::measure::TransferSeries;
use crate::mpc::{overhead_ratios, CostModel, MpcEstimate};

/// One row of the MPC section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MpcRow {
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub estimate: MpcEstimate,
}

/// The MPC rows for each payload: request = payload, response = `response_factor` x payload.
pub fn mpc_rows(model: &dyn CostModel, payloads: &[u64], response_factor: u64) -> Vec<MpcRow> {
    payloads
        .iter()
        .map(|&request_bytes| {
            let response_bytes = request_bytes.saturating_mul(response_factor);
            MpcRow {
                request_bytes,
                response_bytes,
                estimate: model.estimate(request_bytes, response_bytes),
            }
        })
        .collect()
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}x"))
}

/// Text report, in the original's layout. Rates are in `unit` (bytes per second by default).
pub fn write_text(
    out: &mut impl Write,
    series: &[TransferSeries],
    model: &dyn CostModel,
    mpc: &[MpcRow],
    unit: RateUnit,
) -> io::Result<()> {
    writeln!(out, "Network Transfer Test")?;
    writeln!(out, "====================")?;
    for s in series {
        let runs = s.runs.len();
        let run = &s.runs[0];
        writeln!(out)?;
        if runs > 1 {
            writeln!(
                out,
                "Testing with {} payload (median of {runs} runs)",
                format_bytes(s.spec.payload_bytes)
            )?;
        } else {
            writeln!(
                out,
                "Testing with {} payload",
                format_bytes(s.spec.payload_bytes)
            )?;
        }
        writeln!(out, "  Sent: {}", format_bytes(run.client_sent_bytes))?;
        writeln!(
            out,
            "  Received: {}",
            format_bytes(run.client_received_bytes)
        )?;
        let total = median(s, figure::TOTAL_TIME, unit);
        writeln!(
            out,
            "  Time: {}",
            format_duration(std::time::Duration::from_secs_f64(total))
        )?;
        writeln!(
            out,
            "  Upload: {}",
            unit.format(median(s, figure::UPLOAD_RATE, unit))
        )?;
        writeln!(
            out,
            "  Download: {}",
            unit.format(median(s, figure::DOWNLOAD_RATE, unit))
        )?;
        let ratio = run.client_received_bytes as f64 / run.client_sent_bytes.max(1) as f64;
        writeln!(out, "  Ratio (received/sent): {ratio:.2}")?;
    }
    writeln!(out)?;
    writeln!(out, "MPC Communication Simulation")?;
    writeln!(out, "============================")?;
    writeln!(out, "Model: {} ({})", model.name(), model.source())?;
    writeln!(out, "Sizes in binary units: 1 KB = 1024 B, 1 MB = 1024 KB.")?;
    for row in mpc {
        let (up, down) = overhead_ratios(&row.estimate, row.request_bytes, row.response_bytes);
        writeln!(out)?;
        writeln!(
            out,
            "Testing with {} payload",
            format_bytes(row.request_bytes)
        )?;
        writeln!(
            out,
            "  Simulated request size: {}",
            format_bytes(row.request_bytes)
        )?;
        writeln!(
            out,
            "  Simulated response size: {}",
            format_bytes(row.response_bytes)
        )?;
        writeln!(
            out,
            "  Estimated MPC upload overhead: {}",
            format_bytes(row.estimate.upload_bytes)
        )?;
        writeln!(
            out,
            "  Estimated MPC download overhead: {}",
            format_bytes(row.estimate.download_bytes)
        )?;
        writeln!(
            out,
            "  Overhead ratio: {} upload, {} download",
            ratio_text(up),
            ratio_text(down)
        )?;
    }
    Ok(())
}

/// The demo as one JSON document.
pub fn json(
    server: &str,
    series: &[TransferSeries],
    model: &dyn CostModel,
    mpc: &[MpcRow],
    unit: RateUnit,
) -> Value {
    let estimates: Vec<Value> = mpc
        .iter()
        .map(|row| {
            let (up, down) = overhead_ratios(&row.estimate, row.request_bytes, row.response_bytes);
            json!({
                "request_bytes": row.request_bytes,
                "response_bytes": row.response_bytes,
                "upload_bytes": row.estimate.upload_bytes,
                "download_bytes": row.estimate.download_bytes,
                "upload_ratio": up,
                "download_ratio": down,
            })
        })
        .collect();
    json!({
        "server": server,
        "transfers": series.iter().map(|s| series_json(s, unit)).collect::<Vec<_>>(),
        "mpc": {
            "model": model.name(),
            "source": model.source(),
            "estimates": estimates,
        },
    })
}
