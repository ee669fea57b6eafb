//! The command line: parses arguments into validated configurations, runs the library, prints.
//! The only user of clap. Exit codes: 0 ok, 1 runtime failure, 2 bad usage.

pub mod args;
mod demo;
mod exec;
mod latency;
pub mod log;
mod measure;
mod mpc;
mod proxy;
mod serve;
mod top;
mod tui;

use std::io::Write;

use clap::Parser;
use tokio_util::sync::CancellationToken;

pub use args::{Cli, Command};

/// A usage error found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What `main` does with a parse outcome.
pub enum Parsed {
    Run(Box<Cli>),
    /// Help or version: print it, exit 0.
    Info(String),
    /// A one-line usage error, exit 2.
    Usage(String),
}

/// Parses the process arguments. Clap's multi-line errors are cut to their first line, which
/// names the flag, the value and what is accepted.
pub fn parse() -> Parsed {
    match Cli::try_parse() {
        Ok(cli) => Parsed::Run(Box::new(cli)),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    Parsed::Info(e.render().to_string())
                }
                _ => Parsed::Usage(one_line(&e.render().to_string())),
            }
        }
    }
}

/// Clap's error on one line: what is wrong, which argument, what is accepted, without the
/// usage block and the pointer to `--help`.
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    let line = parts.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// The default log level of a command: the server logs each test, other commands only problems.
pub fn default_log_level(cli: &Cli) -> &'static str {
    let base = match cli.command {
        Some(Command::Serve(_)) => 2,
        _ => 1,
    };
    match base + cli.verbose {
        0 | 1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    }
}

/// Runs the parsed command to completion and returns the exit code it asks for (0, or the
/// command's own under `exec`). `shutdown` is cancelled on Ctrl-C.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<u8> {
    // Not locked for the whole run: the proxy's live view draws on stdout from its own thread.
    let mut out = std::io::stdout();
    match cli.command {
        None => demo::run(cli.demo, &mut out, shutdown).await?,
        Some(Command::Demo(args)) => demo::run(args, &mut out, shutdown).await?,
        Some(Command::Serve(args)) => serve::run(args, shutdown).await?,
        Some(Command::Measure(args)) => measure::run(*args, &mut out, shutdown).await?,
        Some(Command::Latency(args)) => latency::run(args, &mut out, shutdown).await?,
        Some(Command::Proxy(args)) => proxy::run(*args, &mut out, shutdown).await?,
        Some(Command::Mpc(args)) => mpc::run(*args, &mut out).await?,
        Some(Command::Top(args)) => top::run(args, &mut out, shutdown).await?,
        Some(Command::Exec(args)) => {
            // The command owns standard output, as under time(1): the report goes to stderr.
            let code = exec::run(args, &mut std::io::stderr(), shutdown).await?;
            return Ok(code.clamp(0, 255) as u8);
        }
    }
    out.flush()?;
    Ok(0)
}

/// Writes a JSON document and a newline.
fn write_json(out: &mut impl Write, value: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}
