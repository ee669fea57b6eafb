//! `ntm exec [--] CMD [ARGS...]`: runs a command with inherited stdio, follows its process tree,
//! and when it exits reports its TCP traffic (exact payload bytes up and down, connections,
//! peers, peak rate, duration). ntm exits with the command's exit code.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::monitor::{self, Facade, Monitor, MonitorError, MonitorOptions, Observation};
use crate::report::monitor::{self as report, ExecInterval, ExecReport};
use crate::report::{units, Format};

/// How long, after the command exits, its last sockets may take to close and report their
/// final counters (a FIN handshake with a far peer takes a round trip).
const SETTLE: Duration = Duration::from_secs(3);
/// How long a command may take to exit by itself after ntm is told to stop, before it is sent
/// SIGTERM (on Ctrl-C it got the same SIGINT as ntm).
const STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The report goes to standard error (the command owns standard output), or to \
                  --output FILE.\nExit code: the command's own; 128+N if a signal N killed it; \
                  127 if it could not be started."
)]
pub struct ExecArgs {
    /// Poll interval: the resolution of the peak rate and of the plot.
    #[arg(long, value_name = "DURATION", default_value = "100ms", allow_hyphen_values = true, value_parser = parse_interval)]
    pub interval: Duration,
    /// Draw the command's bandwidth over time, up and down, to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write the report to FILE instead.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The command to run and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

pub(crate) fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = units::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(3600) {
        return Err(format!("invalid interval '{s}': use 10ms to 1h"));
    }
    Ok(d)
}

/// One poll, off the async threads (netlink and /proc reads block).
async fn observe(
    facade: Box<dyn Facade>,
) -> anyhow::Result<(Box<dyn Facade>, Result<Observation, MonitorError>)> {
    Ok(tokio::task::spawn_blocking(move || {
        let mut facade = facade;
        let obs = facade.observe();
        (facade, obs)
    })
    .await?)
}

/// Runs the command and writes the report to `out` (or `--output`). Returns the exit code ntm
/// must exit with: the command's.
pub async fn run(
    args: ExecArgs,
    out: &mut impl Write,
    shutdown: CancellationToken,
) -> anyhow::Result<i32> {
    let words: Vec<String> = args
        .command
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let mut command = tokio::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    let start = Instant::now();
    let traced = match monitor::spawn_traced(command) {
        Ok(t) => t,
        Err(MonitorError::Spawn { command, error }) => {
            eprintln!("ntm exec: cannot start '{command}': {error}");
            let code = if error.kind() == std::io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            return Ok(code);
        }
        Err(e) => return Err(e.into()),
    };
    let mut child = traced.child;
    let mut facade = traced.facade;
    let root = child.id().unwrap_or(0);
    let mut monitor = Monitor::new(MonitorOptions {
        track_peers: true,
        forget_exited: false,
        ..MonitorOptions::default()
    });
    monitor.update(traced.baseline, Duration::ZERO);

    let mut intervals = Vec::new();
    let mut previous = (0u64, 0u64, Duration::ZERO);
    let mut lost = 0u64;
    // `at`: when the poll began; the socket table is read right then.
    let mut poll = |monitor: &mut Monitor,
                    obs: Observation,
                    at: Duration,
                    intervals: &mut Vec<ExecInterval>| {
        lost += obs.lost_closed;
        monitor.update(obs, at);
        let g = monitor.group(&monitor.descendants(root));
        intervals.push(ExecInterval {
            start_seconds: previous.2.as_secs_f64(),
            end_seconds: at.as_secs_f64(),
            bytes_up: g.bytes_up.saturating_sub(previous.0),
            bytes_down: g.bytes_down.saturating_sub(previous.1),
        });
        previous = (g.bytes_up.max(previous.0), g.bytes_down.max(previous.1), at);
    };

    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut stop_at: Option<tokio::time::Instant> = None;
    let status = loop {
        let term = async {
            match stop_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status?,
            _ = ticker.tick() => {
                let at = start.elapsed();
                let (f, obs) = observe(facade).await?;
                facade = f;
                poll(&mut monitor, obs?, at, &mut intervals);
            }
            _ = shutdown.cancelled(), if stop_at.is_none() => {
                stop_at = Some(tokio::time::Instant::now() + STOP_GRACE);
            }
            _ = term => {
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) on our own child's pid, which we have not reaped.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                }
                stop_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
        }
    };
    let duration = start.elapsed();
    // The command's last sockets: closing handshakes, destroy events, their peers' counters.
    let settle_until = Instant::now() + SETTLE;
    loop {
        let at = start.elapsed();
        let (f, obs) = observe(facade).await?;
        facade = f;
        poll(&mut monitor, obs?, at, &mut intervals);
        let members = monitor.descendants(root);
        if !monitor.settling(&members) || Instant::now() >= settle_until {
            break;
        }
        tokio::time::sleep(args.interval.min(Duration::from_millis(50))).await;
    }
    let intervals = close_at_exit(intervals, duration.as_secs_f64());
    let group = monitor.group(&monitor.descendants(root));
    let exit_code = exit_code(&status);
    let report = ExecReport {
        command: words,
        exit_code,
        duration,
        bytes_up: group.bytes_up,
        bytes_down: group.bytes_down,
        connections: group.connections,
        peers: group.peers,
        interval: args.interval,
        intervals,
        traced: traced.traced,
        untraced_reason: traced.untraced_reason,
        lost_closed: lost,
    };
    match &args.output {
        Some(path) => {
            let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
            write_report(&mut file, &report, args.format)?;
            file.flush()?;
        }
        None => write_report(out, &report, args.format)?,
    }
    if let Some(path) = &args.plot {
        report::exec_svg(path, &report)?;
    }
    Ok(exit_code)
}

fn write_report(out: &mut impl Write, r: &ExecReport, format: Format) -> std::io::Result<()> {
    match format {
        Format::Text => report::write_exec(out, r)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report::exec_json(r))?;
            writeln!(out)?;
        }
    }
    out.flush()
}

/// The polls after the command exited only collect the final counters of its last sockets
/// (destroy events lag the close): their bytes belong to the run's last interval, which ends at
/// the exit.
fn close_at_exit(mut intervals: Vec<ExecInterval>, exit: f64) -> Vec<ExecInterval> {
    let Some(first_after) = intervals.iter().position(|i| i.end_seconds > exit) else {
        return intervals;
    };
    let tail = intervals.split_off(first_after);
    let last = ExecInterval {
        start_seconds: tail[0].start_seconds,
        end_seconds: exit.max(tail[0].start_seconds),
        bytes_up: tail.iter().map(|i| i.bytes_up).sum(),
        bytes_down: tail.iter().map(|i| i.bytes_down).sum(),
    };
    if last.bytes_up + last.bytes_down > 0 || last.end_seconds > last.start_seconds {
        intervals.push(last);
    }
    intervals
}

/// The shell's convention: the exit code, or 128 + the signal that killed the command.
fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
