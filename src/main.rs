//! The `ntm` binary: parses arguments, installs the Ctrl-C handler, runs the library and maps
//! errors to exit codes (0 ok, 1 runtime failure, 2 bad usage) in one place.

use std::io::IsTerminal;
use std::process::ExitCode;

use ntm::cli::{self, Parsed, UsageError};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Parsed::Run(cli) => cli,
        Parsed::Info(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Parsed::Usage(line) => {
            eprintln!("ntm: {line}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("ntm={}", cli::default_log_level(&cli))));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Standard error, but held while a live view owns the terminal.
        .with_writer(cli::log::writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ntm: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        // Handlers are installed before the command starts, so a signal that arrives at once
        // still means a clean shutdown rather than the default of dying.
        let signals = Signals::install();
        tokio::spawn(signals.watch(shutdown.clone()));
        cli::run(*cli, shutdown).await
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("ntm: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ntm: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The signals that stop ntm, registered with the runtime.
struct Signals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Signals {
    fn install() -> Signals {
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// First Ctrl-C or SIGTERM: graceful shutdown. Second Ctrl-C: exit now.
    async fn watch(mut self, shutdown: CancellationToken) {
        async fn recv(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.interrupt) => {}
            _ = recv(&mut self.terminate) => {}
        }
        shutdown.cancel();
        recv(&mut self.interrupt).await;
        eprintln!("ntm: interrupted again, exiting now");
        std::process::exit(130);
    }
}

/// A reader that went away (`ntm ... | head`) is not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
