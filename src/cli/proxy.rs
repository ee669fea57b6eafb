//! `ntm proxy`: resolves, opens its output files and binds before any traffic flows (so bad
//! input exits 2), then relays and reports each connection as it closes (to the recording too),
//! the summary on Ctrl-C, and the plot at exit.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::args::ProxyArgs;
use super::UsageError;
use crate::proxy::link::LinkSpec;
use crate::proxy::{self, Counters, ProxyConfig, ProxyEvent};
use crate::report::proxy::{RecordFormat, Recording};
use crate::report::{self, Format};

/// The two directions' links: the profile, then the flags over it.
pub fn links(args: &ProxyArgs) -> (LinkSpec, LinkSpec) {
    let (mut up, mut down) = args
        .profile
        .map_or((LinkSpec::default(), LinkSpec::default()), |p| p.links());
    // A direction's own flag wins over the flag for both, which wins over the profile.
    if let Some(r) = args.rate_up.or(args.rate) {
        up.rate_bps = Some(r);
    }
    if let Some(r) = args.rate_down.or(args.rate) {
        down.rate_bps = Some(r);
    }
    if let Some(d) = args.delay_up.or(args.delay) {
        up.delay = d;
    }
    if let Some(d) = args.delay_down.or(args.delay) {
        down.delay = d;
    }
    if let Some(j) = args.jitter {
        up.jitter = j;
        down.jitter = j;
    }
    (up, down)
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = if e.kind() == ErrorKind::AddrInUse {
            "the address is in use".to_string()
        } else {
            e.to_string()
        };
        UsageError(format!("cannot listen on '{addr}' for {what}: {why}")).into()
    })
}

/// Creates an output file, refusing a path that cannot be written as bad usage.
/// Opens (or creates) an output file for writing without emptying it yet, so a proxy that then
/// fails to start leaves an existing file as it was.
fn open_for_writing(path: &Path) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| UsageError(format!("cannot write '{}': {e}", path.display())).into())
}

/// Starts the recording at `path` on `file` (emptied now): JSON if it ends in `.json`, else CSV.
fn start_recording(path: &Path, file: File) -> anyhow::Result<Recording<BufWriter<File>>> {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let format = if json {
        RecordFormat::Json
    } else {
        RecordFormat::Csv
    };
    file.set_len(0)
        .and_then(|()| Recording::start(BufWriter::new(file), format))
        .map_err(|e| anyhow::anyhow!("cannot write '{}': {e}", path.display()))
}

pub async fn run(
    args: ProxyArgs,
    out: &mut impl Write,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let upstream: Vec<_> = match tokio::net::lookup_host(&args.upstream).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            return Err(
                UsageError(format!("cannot resolve upstream '{}': {e}", args.upstream)).into(),
            )
        }
    };
    if upstream.is_empty() {
        return Err(UsageError(format!(
            "upstream '{}' resolves to no address",
            args.upstream
        ))
        .into());
    }
    let (up, down) = links(&args);
    // Files first: a path that cannot be written is refused before any traffic, not at exit.
    // They are emptied only once the proxy is listening.
    let record_file = match &args.record {
        Some(path) => Some((path, open_for_writing(path)?)),
        None => None,
    };
    if let Some(path) = &args.plot {
        // Drawn at exit, over this file; opened now to find out it can be.
        open_for_writing(path)?;
    }
    let listener = bind(args.listen, "the proxy").await?;
    let counters = Arc::new(Counters::default());
    let metrics = match args.metrics {
        Some(addr) => Some(bind(addr, "metrics").await?),
        None => None,
    };
    let mut recording = match record_file {
        Some((path, file)) => Some((path, start_recording(path, file)?)),
        None => None,
    };
    let local = listener.local_addr()?;
    eprintln!(
        "ntm proxy: {local} -> {} (up: {}; down: {})",
        args.upstream,
        report::proxy::describe_link(&up),
        report::proxy::describe_link(&down)
    );
    if let Some(m) = &metrics {
        eprintln!("ntm proxy: metrics on http://{}/metrics", m.local_addr()?);
    }
    let metrics_task =
        metrics.map(|m| tokio::spawn(proxy::metrics::serve(m, counters.clone(), shutdown.clone())));

    let config = ProxyConfig {
        upstream,
        up,
        down,
        bin: args.bin,
        connect_timeout: args.connect_timeout,
        splice: args.splice,
        ..ProxyConfig::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tui = args.tui && std::io::stdout().is_terminal();
    if args.tui && !tui {
        eprintln!("ntm proxy: --tui needs a terminal; printing lines instead");
    }
    let recent: super::tui::Recent = Default::default();
    let view = tui.then(|| {
        let (counters, recent, stop) = (counters.clone(), recent.clone(), shutdown.clone());
        let title = format!("ntm proxy {local} -> {}", args.upstream);
        tokio::task::spawn_blocking(move || super::tui::run(counters, recent, title, stop))
    });
    // The relay runs as its own task, so a slow reader of our output (a pipe that fills) holds
    // up the printing here, never the accepting and relaying.
    let stop = shutdown.clone();
    let mut relay = tokio::spawn(proxy::run(listener, config, shutdown, tx, counters));
    // Every event is recorded first (once a connection is reported, the file holds it), then
    // printed. The first failure, of either, stops the proxy and ends the handling of events;
    // the recording and the plot are still finished before the error is returned, so a closed
    // pipe on our output (`| head`) leaves whole files.
    let print = |event: ProxyEvent, out: &mut dyn Write| -> std::io::Result<()> {
        let mut out = out;
        match (event, args.format) {
            (
                ProxyEvent::Open {
                    id,
                    client,
                    upstream,
                },
                Format::Json,
            ) => {
                let v = report::proxy::open_json(id, &client.to_string(), &upstream.to_string());
                writeln!(out, "{v}")?;
            }
            (ProxyEvent::Open { .. }, Format::Text) => {}
            (ProxyEvent::Close(r), format) => match format {
                _ if tui => {
                    let mut line = Vec::new();
                    report::proxy::write_close_line(&mut line, &r)?;
                    let mut recent = recent.lock().expect("recent lock");
                    recent.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
                    while recent.len() > super::tui::RECENT {
                        recent.pop_front();
                    }
                }
                Format::Json => writeln!(out, "{}", report::proxy::close_json(&r))?,
                Format::Text => report::proxy::write_close_line(&mut out, &r)?,
            },
        }
        out.flush()
    };
    let mut failed: Option<anyhow::Error> = None;
    let mut handle = |event: ProxyEvent, out: &mut dyn Write| {
        if failed.is_some() {
            return;
        }
        let recorded = match (&event, &mut recording) {
            (ProxyEvent::Close(r), Some((path, recording))) => recording
                .connection(r)
                .with_context(|| format!("cannot write '{}'", path.display())),
            _ => Ok(()),
        };
        if let Err(e) = recorded.and_then(|()| Ok(print(event, out)?)) {
            stop.cancel();
            failed = Some(e);
        }
    };
    let summary = loop {
        tokio::select! {
            summary = &mut relay => break summary?,
            Some(event) = rx.recv() => handle(event, out),
        }
    };
    while let Ok(event) = rx.try_recv() {
        handle(event, out);
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(view) = view {
        view.await??;
    }
    if failed.is_none() {
        match args.format {
            Format::Text => report::proxy::write_summary(out, &summary)?,
            Format::Json => writeln!(out, "{}", report::proxy::summary_json(&summary))?,
        }
    }
    if let Some((path, recording)) = recording {
        let finished = recording
            .finish(&summary)
            .with_context(|| format!("cannot write '{}'", path.display()));
        // A recording that failed before is not finished again over its error.
        if failed.is_none() {
            finished?;
        }
    }
    if let Some(path) = &args.plot {
        report::plot::proxy_svg(path, &summary.timeline)?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(())
}
