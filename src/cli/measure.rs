//! `ntm measure ADDR`: transfer tests, or with `--duration`/`--bytes` a throughput test, reported
//! as text (live for throughput) or JSON.

use std::io::{IsTerminal, Write};

use tokio_util::sync::CancellationToken;

use super::args::MeasureArgs;
use super::{write_json, UsageError};
use crate::measure::{self, StreamOptions, TransferOptions, TransferSpec};
use crate::os::SocketOptions;
use crate::report::{self, transfer, units, Format, RateUnit};
use crate::wire::{Direction, Limit, StreamRequest};

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

pub async fn run(
    args: MeasureArgs,
    out: &mut impl Write,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if args.duration.is_some() || args.bytes.is_some() {
        return run_streams(args, out, shutdown).await;
    }
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
    let tests = measure::run_series(&addrs, &specs, args.repeat, args.pause, &options);
    let series = tokio::select! {
        _ = shutdown.cancelled() => anyhow::bail!("interrupted"),
        series = tests => series?,
    };
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

/// The throughput test request the flags describe.
fn stream_request(args: &MeasureArgs) -> StreamRequest {
    let limit = match (args.duration, args.bytes) {
        (_, Some(bytes)) => Limit::Bytes(bytes),
        (Some(d), None) => Limit::DurationMs(d.as_millis() as u64),
        (None, None) => Limit::DurationMs(10_000),
    };
    StreamRequest {
        streams: args.streams as u16,
        direction: match (args.reverse, args.bidir) {
            (_, true) => Direction::Bidir,
            (true, false) => Direction::Download,
            (false, false) => Direction::Upload,
        },
        limit,
        interval_ms: args.interval.as_millis() as u64,
        omit_ms: args.omit.as_millis() as u64,
        block_bytes: args.block as u32,
        socket: SocketOptions {
            window: args.window.map(|w| w as u32),
            mss: args.mss.map(|m| m as u32),
            congestion: args.congestion.clone(),
            no_delay: args.no_delay,
            pacing_rate_bps: args.rate,
        },
    }
}

async fn run_streams(
    args: MeasureArgs,
    out: &mut impl Write,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let request = stream_request(&args);
    let unit = args.output.units.unwrap_or(RateUnit::Bits);
    let options = StreamOptions {
        connect_timeout: args.connect_timeout,
        io_timeout: args.timeout,
    };
    let addrs = measure::resolve(&args.addr).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let test = measure::stream_test(&addrs, request.clone(), &options, shutdown, Some(tx));
    tokio::pin!(test);
    let text = args.output.format == Format::Text;
    // JSON on a terminal still shows progress, on standard error; nothing when piped.
    let progress = !text && std::io::stderr().is_terminal();
    let mut retrans = Vec::new();
    // The header waits for the first interval, so a test that cannot start prints nothing on
    // standard output.
    let mut header_due = text;
    let mut show =
        |sample: &measure::IntervalSample, mut out: &mut dyn Write| -> std::io::Result<()> {
            if text {
                if std::mem::take(&mut header_due) {
                    report::stream::write_header(&mut out, &args.addr, &request)?;
                }
                report::stream::write_interval(&mut out, sample, &request, unit, &mut retrans)?;
                out.flush()?;
            } else if progress {
                let bytes: u64 = sample
                    .streams
                    .iter()
                    .map(|s| s.bytes_sent + s.bytes_received)
                    .sum();
                let secs = (sample.end - sample.start).as_secs_f64();
                eprint!(
                    "\rntm: {:.1} s, {}   ",
                    sample.end.as_secs_f64(),
                    unit.format(unit.rate(bytes, std::time::Duration::from_secs_f64(secs)))
                );
            }
            Ok(())
        };
    let outcome = loop {
        tokio::select! {
            outcome = &mut test => {
                while let Ok(sample) = rx.try_recv() {
                    show(&sample, out)?;
                }
                break outcome?;
            }
            Some(sample) = rx.recv() => show(&sample, out)?,
        }
    };
    if progress {
        eprint!("\r\x1b[2K");
    }
    match args.output.format {
        Format::Text => {
            if outcome.intervals.is_empty() {
                report::stream::write_header(out, &args.addr, &request)?;
            }
            report::stream::write_summary(out, &outcome, unit)?
        }
        Format::Json => write_json(out, &report::stream::json(&args.addr, &outcome))?,
    }
    if let Some(path) = &args.plot {
        report::plot::throughput_svg(path, &outcome)?;
        if text {
            writeln!(out, "Plot written to {}", path.display())?;
        }
    }
    Ok(())
}
