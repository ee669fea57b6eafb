//! The demo (`ntm` with no command): the original tool, done right. Starts the built-in server,
//! runs transfer tests (the server answers each payload with half its size), then prints the MPC
//! estimate of the default preset for each size with request = payload and response = 10 x
//! payload.

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::args::DemoArgs;
use super::write_json;
use crate::measure::{self, TransferOptions, TransferSpec};
use crate::mpc::{preset, Reveal, DEFAULT_PRESET};
use crate::report::{demo, Format, RateUnit};
use crate::server::{self, ServerConfig};

/// The MPC section's response is this many times the request, as in the original tool.
const MPC_RESPONSE_FACTOR: u64 = 10;

/// Binds 127.0.0.1:`port`, or a free port if that one is taken (saying so on one line).
async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpListener::bind(wanted).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("cannot bind a free port on 127.0.0.1")?;
            eprintln!(
                "ntm: port {port} is in use; the demo server listens on {} instead",
                listener.local_addr()?
            );
            Ok(listener)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {wanted}")),
    }
}

pub async fn run(
    args: DemoArgs,
    out: &mut impl Write,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = bind(args.port).await?;
    let addr = listener.local_addr()?;
    let server_stop = shutdown.child_token();
    let server = tokio::spawn(server::run(
        listener,
        ServerConfig::default(),
        server_stop.clone(),
    ));

    let specs: Vec<TransferSpec> = args
        .sizes
        .iter()
        .map(|&payload| TransferSpec {
            payload_bytes: payload,
            response_bytes: payload / 2,
        })
        .collect();
    let options = TransferOptions::default();
    let addrs = [addr];
    let tests = measure::run_series(&addrs, &specs, args.repeat, args.interval, &options);
    let result = tokio::select! {
        _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted")),
        r = tests => r.map_err(anyhow::Error::from),
    };
    server_stop.cancel();
    let _ = server.await;
    let series = result?;

    let model = preset(DEFAULT_PRESET, Reveal::default()).expect("the default preset exists");
    let rows = demo::mpc_rows(&model, &args.sizes, MPC_RESPONSE_FACTOR);
    let unit = args.output.units.unwrap_or(RateUnit::Bytes);
    match args.output.format {
        Format::Text => demo::write_text(out, &series, &model, &rows, unit)?,
        Format::Json => write_json(
            out,
            &demo::json(&addr.to_string(), &series, &model, &rows, unit),
        )?,
    }
    Ok(())
}
