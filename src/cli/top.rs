//! `ntm top`: traffic by process on this machine, from the kernel's per-socket counters. On a
//! terminal a live view (ratatui, [`view`]); with `--once`, `--count` or when piped, snapshot
//! tables; with `--format json`, NDJSON snapshots. `--metrics ADDR` serves the counters to
//! Prometheus meanwhile.

mod view;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::UsageError;
use crate::monitor::{self, Facade, Monitor, MonitorOptions, Observation, Snapshot};
use crate::report::monitor::{self as report, TableOptions};
use crate::report::units;
use crate::report::Format;

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Refresh every this long (rates are over one interval).
    #[arg(long, value_name = "DURATION", default_value = "1s", allow_hyphen_values = true, value_parser = super::exec::parse_interval)]
    pub interval: Duration,
    /// Print one snapshot, over one interval, and exit.
    #[arg(long, conflicts_with = "count")]
    pub once: bool,
    /// Print this many snapshots, one per interval, and exit.
    #[arg(short = 'n', long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    pub count: Option<u64>,
    /// List each process's connections (in the live view: expand every process).
    #[arg(long)]
    pub connections: bool,
    /// Processes shown in a printed table (the busiest first).
    #[arg(long, value_name = "N", default_value = "25", allow_negative_numbers = true, value_parser = parse_limit)]
    pub limit: usize,
    /// Serve per-process counters in Prometheus text format on http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics: Option<SocketAddr>,
    /// Output: a table, or one JSON snapshot per line (NDJSON).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn parse_count(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 1, 1_000_000_000)
}

/// 0 is a table of the totals alone.
fn parse_limit(s: &str) -> Result<usize, units::UnitError> {
    units::parse_count(s, 0, 1_000_000_000).map(|n| n as usize)
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("invalid listen address '{s}': use IP:PORT, e.g. 127.0.0.1:9100 or [::1]:9100")
    })
}

/// One poll, off the async threads (netlink and /proc reads block).
async fn observe(facade: Box<dyn Facade>) -> anyhow::Result<(Box<dyn Facade>, Observation)> {
    let (facade, obs) = tokio::task::spawn_blocking(move || {
        let mut facade = facade;
        let obs = facade.observe();
        (facade, obs)
    })
    .await?;
    Ok((facade, obs?))
}

pub async fn run(
    args: TopArgs,
    out: &mut impl Write,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut facade = monitor::system()?;
    let metrics = match args.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| UsageError(format!("cannot listen on '{addr}' for metrics: {e}")))?,
        ),
        None => None,
    };
    let latest = Arc::new(Mutex::new(String::new()));
    if let Some(m) = &metrics {
        eprintln!("ntm top: metrics on http://{}/metrics", m.local_addr()?);
    }
    let metrics_task = metrics.map(|m| {
        let latest = latest.clone();
        let render = Arc::new(move || latest.lock().expect("metrics").clone());
        tokio::spawn(crate::http::serve_metrics(m, render, shutdown.clone()))
    });

    let start = Instant::now();
    let live = !args.once
        && args.count.is_none()
        && args.format == Format::Text
        && std::io::stdout().is_terminal();
    let mut monitor = Monitor::new(MonitorOptions {
        // Rows per connection cost time with tens of thousands of sockets: only when shown.
        connections_listed: if args.connections || live { 200 } else { 0 },
        ..MonitorOptions::default()
    });
    let (f, obs) = observe(facade).await?;
    facade = f;
    let first = monitor.update(obs, Duration::ZERO);
    *latest.lock().expect("metrics") = report::metrics_text(&first);

    let result = if live {
        run_live(&args, facade, monitor, start, latest, shutdown.clone()).await
    } else {
        run_printed(&args, facade, monitor, start, latest, out, &shutdown).await
    };
    if let Some(t) = metrics_task {
        t.abort();
    }
    result
}

/// Snapshots printed one per interval: tables (blank line between) or NDJSON.
async fn run_printed(
    args: &TopArgs,
    mut facade: Box<dyn Facade>,
    mut monitor: Monitor,
    start: Instant,
    latest: Arc<Mutex<String>>,
    out: &mut impl Write,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let limit = if args.once { Some(1) } else { args.count };
    let mut printed = 0u64;
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let began = Instant::now();
        // The socket table is read as the poll begins: rates are over the time between reads.
        let at = start.elapsed();
        let (f, obs) = observe(facade).await?;
        facade = f;
        let snapshot = monitor.update(obs, at);
        let poll = began.elapsed();
        *latest.lock().expect("metrics") = report::metrics_text(&snapshot);
        print(out, &snapshot, poll, args, printed > 0)?;
        printed += 1;
        if limit.is_some_and(|l| printed >= l) {
            return Ok(());
        }
    }
}

/// Prints one snapshot; `poll` is what reading the kernel and aggregating took (JSON only).
fn print(
    out: &mut impl Write,
    s: &Snapshot,
    poll: Duration,
    args: &TopArgs,
    separate: bool,
) -> std::io::Result<()> {
    match args.format {
        Format::Json => {
            let mut v = report::snapshot_json(s, args.connections);
            v["poll_seconds"] = poll.as_secs_f64().into();
            writeln!(out, "{v}")?
        }
        Format::Text => {
            if separate {
                writeln!(out)?;
            }
            let options = TableOptions {
                connections: args.connections,
                limit: Some(args.limit),
            };
            report::write_snapshot(out, s, options)?;
        }
    }
    out.flush()
}

/// The live view draws from its own thread; this task polls and hands it each snapshot.
async fn run_live(
    args: &TopArgs,
    mut facade: Box<dyn Facade>,
    mut monitor: Monitor,
    start: Instant,
    latest: Arc<Mutex<String>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let shared = Arc::new(Mutex::new(view::Shared::default()));
    let title = format!(
        "ntm top (every {})",
        crate::report::units::format_duration(args.interval)
    );
    let view = {
        let (shared, stop, expand) = (shared.clone(), shutdown.clone(), args.connections);
        tokio::task::spawn_blocking(move || view::run(shared, title, expand, stop))
    };
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let polled: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = ticker.tick() => {}
            }
            let at = start.elapsed();
            let (f, obs) = observe(facade).await?;
            facade = f;
            let snapshot = monitor.update(obs, at);
            *latest.lock().expect("metrics") = report::metrics_text(&snapshot);
            shared.lock().expect("view state").push(snapshot);
        }
    }
    .await;
    shutdown.cancel();
    view.await??;
    polled
}
