//! `ntm mpc estimate|replay|sweep`: the MPC cost model from the command line, a replay of its
//! traffic over a real (or emulated) link, and grids over network conditions.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::args::{
    Grid, LinkArgs, MpcArgs, MpcCommand, MpcEstimateArgs, MpcReplayArgs, MpcSweepArgs,
    ProtocolArgs, SweepFormat,
};
use super::{write_json, UsageError};
use crate::measure::{self, LatencyConfig, LatencyLimit, StreamOptions};
use crate::mpc::{self, Link, Protocol, Workload};
use crate::os::SocketOptions;
use crate::proxy::{self, ProxyConfig, ProxyEvent};
use crate::report::{self, Format};
use crate::wire::{Direction, Limit, ReplayPhase, ReplayScript, StreamRequest};

pub async fn run(args: MpcArgs, out: &mut impl Write) -> anyhow::Result<()> {
    match args.command {
        MpcCommand::Estimate(a) => estimate(a, out).await,
        MpcCommand::Sweep(a) => sweep(a, out),
        MpcCommand::Replay(a) => replay(a, out).await,
        MpcCommand::Presets => {
            for p in mpc::PRESETS {
                let default = if p.name == mpc::DEFAULT_PRESET {
                    " (default)"
                } else {
                    ""
                };
                let reveal = if p.takes_reveal {
                    "; --reveal full|redacted"
                } else {
                    ""
                };
                writeln!(out, "{}{default}: {}{reveal}", p.name, p.about)?;
                writeln!(out, "    source: {}", p.source)?;
            }
            Ok(())
        }
    }
}

/// The protocol the flags name, and the workload.
fn protocol(args: &ProtocolArgs) -> anyhow::Result<(Protocol, Workload)> {
    let protocol = match &args.protocol_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!("cannot read protocol file {}: {e}", path.display()))
            })?;
            Protocol::from_toml(&text)
                .map_err(|e| UsageError(format!("protocol file {}: {e}", path.display())))?
        }
        None => {
            let name = args.protocol.as_deref().unwrap_or(mpc::DEFAULT_PRESET);
            mpc::preset(name, args.reveal)
                .ok_or_else(|| UsageError(format!("unknown protocol '{name}'")))?
        }
    };
    let workload = Workload {
        sent_bytes: args.sent,
        recv_bytes: args.recv,
        max_sent: args.max_sent,
        max_recv: args.max_recv,
    };
    Ok((protocol, workload))
}

/// A link and how it was obtained, for the report.
struct NamedLink {
    link: Link,
    how: String,
}

/// The link the flags describe; `None` if they describe none (the caller picks a default).
async fn link(args: &LinkArgs) -> anyhow::Result<Option<NamedLink>> {
    if let Some(p) = args.profile {
        return Ok(Some(profile_link(p)));
    }
    if let Some(addr) = &args.measure {
        return measure_link(addr).await.map(Some);
    }
    let up = args.rate_up.or(args.rate);
    let down = args.rate_down.or(args.rate);
    match (up, down, args.rtt) {
        (None, None, None) => Ok(None),
        (Some(up), Some(down), Some(rtt)) => {
            let link = Link {
                up_bps: up as f64,
                down_bps: down as f64,
                rtt,
            };
            link.check().map_err(|e| UsageError(e.to_string()))?;
            Ok(Some(NamedLink {
                link,
                how: "given".into(),
            }))
        }
        (_, _, None) => Err(UsageError(
            "a link needs a round-trip time: add --rtt (e.g. --rtt 20ms), or use --profile".into(),
        )
        .into()),
        _ => Err(UsageError(
            "a link needs both rates: --rate, or --rate-up and --rate-down".into(),
        )
        .into()),
    }
}

fn profile_link(p: &crate::proxy::link::Profile) -> NamedLink {
    NamedLink {
        link: Link {
            up_bps: p.up_bps as f64,
            down_bps: p.down_bps as f64,
            rtt: p.rtt,
        },
        how: format!("profile {}", p.name),
    }
}

/// Measures the link to an ntm server: 2 s up, 2 s down, and 200 request/response round trips.
async fn measure_link(addr: &str) -> anyhow::Result<NamedLink> {
    let addrs = measure::resolve(addr).await?;
    let options = StreamOptions {
        connect_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(10),
    };
    let mut rates = [0.0f64; 2];
    for (i, direction) in [Direction::Upload, Direction::Download]
        .into_iter()
        .enumerate()
    {
        let request = StreamRequest {
            streams: 1,
            direction,
            limit: Limit::DurationMs(2000),
            interval_ms: 1000,
            omit_ms: 0,
            block_bytes: 128 * 1024,
            socket: SocketOptions::default(),
        };
        let outcome =
            measure::stream_test(&addrs, request, &options, CancellationToken::new(), None).await?;
        let totals = report::stream::totals(&outcome);
        let t = &totals[0];
        rates[i] = t.received() as f64 * 8.0 / t.receiver_seconds.max(1e-9);
    }
    let config = LatencyConfig {
        request_bytes: 64,
        response_bytes: 64,
        limit: LatencyLimit::Count(200),
        concurrency: 1,
        connect_per_transaction: false,
        warmup: 10,
        connect_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(10),
    };
    let latency = measure::latency_test(addrs, config, Arc::default()).await?;
    let rtt = Duration::from_nanos(latency.rtt_ns.value_at_quantile(0.5));
    Ok(NamedLink {
        link: Link {
            up_bps: rates[0],
            down_bps: rates[1],
            rtt,
        },
        how: format!("measured to {addr}"),
    })
}

async fn estimate(args: MpcEstimateArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (protocol, workload) = protocol(&args.protocol)?;
    let link = match link(&args.link).await? {
        Some(l) => l,
        None => NamedLink {
            how: "profile cable (the default; see --rate, --rtt, --profile, --measure)".into(),
            ..profile_link(crate::proxy::link::profile("cable").expect("cable profile"))
        },
    };
    let estimate = protocol.estimate(&workload, &link.link);
    match args.format {
        Format::Text => report::mpc::write_estimate(
            out, &protocol, &workload, &link.link, &link.how, &estimate,
        )?,
        Format::Json => write_json(
            out,
            &report::mpc::estimate_json(&protocol, &workload, &link.link, &link.how, &estimate),
        )?,
    }
    Ok(())
}

/// The values of a grid axis: a list as given, a range log-spaced over `steps`.
fn axis(grid: &Grid<f64>, steps: u64) -> Vec<f64> {
    match grid {
        Grid::List(v) => v.clone(),
        Grid::Range(lo, hi) => (0..steps)
            .map(|i| lo * (hi / lo).powf(i as f64 / (steps - 1) as f64))
            .collect(),
    }
}

fn sweep(args: MpcSweepArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (protocol, workload) = protocol(&args.protocol)?;
    let as_f64 = |g: &Grid<u64>| match g {
        Grid::Range(a, b) => Grid::Range(*a as f64, *b as f64),
        Grid::List(v) => Grid::List(v.iter().map(|&x| x as f64).collect()),
    };
    let rates = axis(&as_f64(&args.rates), args.steps);
    let rtt_grid = match &args.rtts {
        Grid::Range(a, b) => Grid::Range(a.as_secs_f64().max(1e-6), b.as_secs_f64()),
        Grid::List(v) => Grid::List(v.iter().map(|d| d.as_secs_f64()).collect()),
    };
    let rtts = axis(&rtt_grid, args.steps);
    let grid = mpc::sweep::Sweep::run(&protocol, &workload, &rates, &rtts);
    let budget = args.budget.map(|b| b.as_secs_f64());
    match args.format {
        SweepFormat::Text => report::mpc::write_sweep(out, &protocol, &workload, &grid, budget)?,
        SweepFormat::Json => write_json(
            out,
            &report::mpc::sweep_json(&protocol, &workload, &grid, budget),
        )?,
        SweepFormat::Csv => report::mpc::write_sweep_csv(out, &grid)?,
    }
    if let Some(path) = &args.plot {
        report::plot::sweep_svg(path, protocol.name(), &grid, budget)?;
    }
    Ok(())
}

/// The proxy links that emulate `link`: each direction its rate and half the RTT.
fn emulation(link: &Link) -> (crate::proxy::link::LinkSpec, crate::proxy::link::LinkSpec) {
    let half = link.rtt / 2;
    let spec = |bps: f64| crate::proxy::link::LinkSpec {
        rate_bps: Some(bps.round().max(1.0) as u64),
        delay: half,
        jitter: Duration::ZERO,
    };
    (spec(link.up_bps), spec(link.down_bps))
}

/// The replay script for a workload: the model's phases, bytes scaled, compute kept or dropped.
pub fn script(protocol: &Protocol, workload: &Workload, scale: f64, compute: bool) -> ReplayScript {
    ReplayScript {
        phases: protocol
            .phases(workload)
            .into_iter()
            .map(|p| ReplayPhase {
                name: p.name,
                upload_bytes: (p.upload_bytes as f64 * scale).round() as u64,
                download_bytes: (p.download_bytes as f64 * scale).round() as u64,
                round_trips: p.round_trips.min(u32::MAX as u64) as u32,
                compute_ms: if compute {
                    p.compute.as_millis() as u64
                } else {
                    0
                },
            })
            .collect(),
    }
}

async fn replay(args: MpcReplayArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (protocol, workload) = protocol(&args.protocol)?;
    let script = script(&protocol, &workload, args.scale, !args.no_compute);
    let server = measure::resolve(&args.addr).await?;

    // The link the prediction is for: as given, else the emulated one, else measured.
    let given = link(&args.link).await?;
    if args.emulate && given.is_none() {
        return Err(
            UsageError("--emulate needs a link: --rate and --rtt, or --profile".into()).into(),
        );
    }
    let emulated = match (args.via_profile, args.emulate, &given) {
        (Some(p), _, _) => Some(p.links()),
        (None, true, Some(l)) => Some(emulation(&l.link)),
        _ => None,
    };
    let link = match (given, args.via_profile) {
        (Some(l), _) => l,
        (None, Some(p)) => profile_link(p),
        (None, None) => measure_link(&args.addr).await?,
    };

    // With --via-profile or --emulate, an in-process proxy emulates the link and counts what
    // crosses it.
    let stop = CancellationToken::new();
    let mut via = None;
    let target = match emulated {
        Some((up, down)) => {
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let addr: SocketAddr = listener.local_addr()?;
            let config = ProxyConfig {
                upstream: server.clone(),
                up,
                down,
                ..ProxyConfig::default()
            };
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let task = tokio::spawn(proxy::run(
                listener,
                config,
                stop.clone(),
                tx,
                Arc::default(),
            ));
            via = Some((task, rx));
            vec![addr]
        }
        None => server,
    };
    let outcome = measure::replay(
        &target,
        &script,
        args.connect_timeout,
        args.timeout,
        args.no_compute,
    )
    .await;
    let proxy_report = match via.as_mut() {
        Some((_, rx)) => {
            // The replay's connection closes right after its results; its report follows.
            let wait = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(event) = rx.recv().await {
                    if let ProxyEvent::Close(r) = event {
                        return Some(r);
                    }
                }
                None
            });
            wait.await.ok().flatten()
        }
        None => None,
    };
    stop.cancel();
    if let Some((task, _)) = via {
        let _ = task.await;
    }
    let outcome = outcome?;
    // The prediction is for the traffic actually replayed (scaled, at least a byte per round
    // trip), strictly in sequence, as the replay runs it.
    let costs = report::mpc::replayed_costs(&script);
    let predicted = protocol.sequential().estimate_phases(&costs, &link.link);
    let replay_report = report::mpc::ReplayReport {
        protocol: &protocol,
        workload: &workload,
        link: &link.link,
        link_how: &link.how,
        scale: args.scale,
        script: &script,
        outcome: &outcome,
        predicted: &predicted,
        proxy: proxy_report.as_deref(),
        server: &args.addr,
        emulated: args
            .via_profile
            .map(|p| format!("{} link", p.name))
            .or_else(|| args.emulate.then(|| "link".to_string())),
    };
    match args.format {
        Format::Text => report::mpc::write_replay(out, &replay_report)?,
        Format::Json => write_json(out, &report::mpc::replay_json(&replay_report))?,
    }
    Ok(())
}
