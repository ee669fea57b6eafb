//! `ntm measure ADDR`: transfer tests against a server, reported as text or JSON.

use std::io::Write;

use super::args::MeasureArgs;
use super::{write_json, UsageError};
use crate::measure::{self, TransferOptions, TransferSpec};
use crate::report::{transfer, units, Format, RateUnit};

/// The response size for a payload: fixed, or a ratio of the payload rounded to whole bytes.
pub fn response_for(payload: u64, fixed: Option<u64>, ratio: f64) -> Result<u64, UsageError> {
    let bytes = match fixed {
        Some(bytes) => bytes,
        None => (payload as f64 * ratio).round() as u64,
    };
    if bytes > units::MAX_SIZE {
        return Err(UsageError(format!(
            "invalid response size {bytes} bytes for a payload of {payload} bytes: more than the maximum of 1 TB"
        )));
    }
    Ok(bytes)
}

pub async fn run(args: MeasureArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let specs = args
        .sizes
        .iter()
        .map(|&payload| {
            Ok(TransferSpec {
                payload_bytes: payload,
                response_bytes: response_for(payload, args.response, args.response_ratio)?,
            })
        })
        .collect::<Result<Vec<_>, UsageError>>()?;
    let options = TransferOptions {
        connect_timeout: args.connect_timeout,
        io_timeout: args.timeout,
        ..TransferOptions::default()
    };
    let addrs = measure::resolve(&args.addr).await?;
    let series = measure::run_series(&addrs, &specs, args.repeat, args.interval, &options).await?;
    let unit = args.output.units.unwrap_or(RateUnit::Bits);
    match args.output.format {
        Format::Text => transfer::write_measure_text(out, &args.addr, &series, unit)?,
        Format::Json => write_json(
            out,
            &transfer::measure_json(&args.addr, args.repeat, &series, unit),
        )?,
    }
    Ok(())
}
