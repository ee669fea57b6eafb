//! `ntm latency ADDR`: request/response or connect/request/close latency with percentiles.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::args::LatencyArgs;
use super::write_json;
use crate::measure::{self, LatencyConfig, LatencyLimit};
use crate::report::{self, Format};

pub async fn run(
    args: LatencyArgs,
    out: &mut impl Write,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let limit = match (args.count, args.duration) {
        (Some(n), _) => LatencyLimit::Count(n),
        (None, Some(d)) => LatencyLimit::Duration(d),
        (None, None) => LatencyLimit::Duration(Duration::from_secs(5)),
    };
    let config = LatencyConfig {
        request_bytes: args.size.0,
        response_bytes: args.size.1,
        limit,
        concurrency: args.concurrency as u32,
        connect_per_transaction: args.connect,
        warmup: args.warmup,
        connect_timeout: args.connect_timeout,
        io_timeout: args.timeout,
    };
    let addrs = measure::resolve(&args.addr).await?;
    // The test runs on blocking threads; Ctrl-C reaches them through a flag.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let watcher = tokio::spawn(async move {
        shutdown.cancelled().await;
        flag.store(true, Ordering::Relaxed);
    });
    let outcome = measure::latency_test(addrs, config.clone(), stop).await;
    watcher.abort();
    let outcome = outcome?;
    match args.format {
        Format::Text => report::latency::write_text(out, &args.addr, &config, &outcome)?,
        Format::Json => write_json(out, &report::latency::json(&args.addr, &config, &outcome))?,
    }
    if let Some(path) = &args.plot {
        report::plot::latency_cdf_svg(path, &outcome)?;
        if args.format == Format::Text {
            writeln!(out, "Plot written to {}", path.display())?;
        }
    }
    Ok(())
}
