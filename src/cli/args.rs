//! Command-line arguments (clap derive). Values are parsed by the unit module's parsers, so a bad
//! value is refused before anything runs, with a message naming it and the accepted forms.
//! Values with a unit take `allow_hyphen_values` and plain numbers `allow_negative_numbers`, so
//! `--delay -5ms` reaches our parser (which says negatives are refused) instead of clap taking
//! `-5` for an unknown flag; the test `numeric_values_may_start_with_a_hyphen` holds every
//! subcommand's numeric flags to this.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::report::units;
use crate::report::{Format, RateUnit};

/// Payload sizes of the demo and the default of `measure`, as the original tool used.
pub const DEFAULT_SIZES: &str = "1KB,10KB,100KB,1MB,10MB";

#[derive(Debug, Parser)]
#[command(
    name = "ntm",
    version,
    about = "Measure network performance and what MPC protocols cost on it",
    long_about = "Measure network performance and what MPC protocols cost on it.\n\n\
                  With no command, runs the demo: a built-in server on 127.0.0.1:8080, transfer \
                  tests over several payload sizes, then an MPC overhead estimate for each size.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub demo: DemoArgs,
    /// More log output (-v: debug, -vv: trace); logs go to standard error.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the demo (the same as running ntm with no command).
    Demo(DemoArgs),
    /// Run the measurement server.
    Serve(ServeArgs),
    /// Run transfer or throughput tests against an ntm server.
    Measure(Box<MeasureArgs>),
    /// Run a latency test (request/response or connect/request/close) against an ntm server.
    Latency(LatencyArgs),
    /// Relay TCP to an upstream, counting and timing every byte, optionally emulating a link.
    Proxy(Box<ProxyArgs>),
    /// What an MPC protocol (TLSNotary by default) costs: estimate, replay over a link, sweep.
    Mpc(Box<MpcArgs>),
    /// Traffic by process on this machine, live, from the kernel's socket counters.
    Top(super::top::TopArgs),
    /// Run a command and report its TCP traffic (exact payload bytes) when it exits.
    Exec(super::exec::ExecArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port of the built-in server on 127.0.0.1; a free port is taken if it is in use.
    #[arg(long, default_value_t = 8080, allow_negative_numbers = true)]
    pub port: u16,
    /// Payload sizes, comma-separated (binary units: 1KB = 1024 bytes).
    #[arg(long, value_name = "SIZES", default_value = DEFAULT_SIZES, allow_hyphen_values = true, value_parser = units::parse_size_list)]
    // The full path stops clap from treating this as a repeated flag: one value holds the list.
    pub sizes: ::std::vec::Vec<u64>,
    /// Runs per payload size; figures shown are medians.
    #[arg(long, value_name = "N", default_value = "1", allow_negative_numbers = true, value_parser = parse_repeat)]
    pub repeat: u64,
    /// Pause between tests (the original paused about 0.5 s; default none).
    #[arg(long, value_name = "DURATION", default_value = "0s", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; only an explicit non-loopback address exposes the server.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Tests running at once; clients over the cap get a "busy" error.
    #[arg(long, value_name = "N", default_value = "64", allow_negative_numbers = true, value_parser = parse_max_tests)]
    pub max_tests: u64,
    /// Connections open at once (tests or not); more are closed immediately.
    #[arg(long, value_name = "N", default_value = "1024", allow_negative_numbers = true, value_parser = parse_max_connections)]
    pub max_connections: u64,
    /// Drop a client that makes no progress for this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,
    /// On Ctrl-C, how long running tests may continue before they are stopped.
    #[arg(long, value_name = "DURATION", default_value = "10s", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub grace: Duration,
    /// Largest transfer a client may request in either direction.
    #[arg(long, value_name = "SIZE", default_value = "1TB", allow_hyphen_values = true, value_parser = units::parse_nonzero_size)]
    pub max_size: u64,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// Server address, HOST:PORT (port 8080 if omitted).
    #[arg(value_name = "ADDR", value_parser = parse_target)]
    pub addr: String,
    /// Payload sizes, comma-separated (binary units: 1KB = 1024 bytes).
    #[arg(long, value_name = "SIZES", default_value = DEFAULT_SIZES, allow_hyphen_values = true, value_parser = units::parse_size_list)]
    // The full path stops clap from treating this as a repeated flag: one value holds the list.
    pub sizes: ::std::vec::Vec<u64>,
    /// Response size for every payload (0 for none).
    #[arg(long, value_name = "SIZE", conflicts_with = "response_ratio", allow_hyphen_values = true, value_parser = units::parse_size)]
    pub response: Option<u64>,
    /// Response size as a fraction of each payload.
    #[arg(long, value_name = "R", default_value = "0.5", allow_negative_numbers = true, value_parser = parse_response_ratio)]
    pub response_ratio: f64,
    /// Runs per payload size, for min, median, mean, max and standard deviation.
    #[arg(long, value_name = "N", default_value = "1", allow_negative_numbers = true, value_parser = parse_repeat)]
    pub repeat: u64,
    /// Pause between transfer tests.
    #[arg(long, value_name = "DURATION", default_value = "0s", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub pause: Duration,
    /// Throughput test: send for this long (at most 24 h) instead of transfer tests.
    #[arg(short = 't', long, value_name = "DURATION", conflicts_with_all = ["bytes", "sizes", "response", "repeat"], allow_hyphen_values = true, value_parser = parse_test_duration)]
    pub duration: Option<Duration>,
    /// Throughput test: send this many bytes in total (per direction, split over the streams).
    #[arg(short = 'n', long, value_name = "SIZE", conflicts_with_all = ["sizes", "response", "repeat"], allow_hyphen_values = true, value_parser = units::parse_nonzero_size)]
    pub bytes: Option<u64>,
    /// Parallel streams of a throughput test (1 to 128).
    #[arg(short = 'P', long, value_name = "N", default_value = "1", allow_negative_numbers = true, value_parser = parse_streams)]
    pub streams: u64,
    /// The server sends (throughput test).
    #[arg(short = 'R', long, conflicts_with = "bidir")]
    pub reverse: bool,
    /// Both sides send at once (throughput test).
    #[arg(long)]
    pub bidir: bool,
    /// Report every this long during a throughput test (at least 10ms).
    #[arg(short = 'i', long, value_name = "DURATION", default_value = "1s", allow_hyphen_values = true, value_parser = parse_interval)]
    pub interval: Duration,
    /// Leave the first seconds of a throughput test out of the totals (TCP warm-up).
    #[arg(short = 'O', long, value_name = "DURATION", default_value = "0s", allow_hyphen_values = true, value_parser = parse_omit)]
    pub omit: Duration,
    /// Size of each write of a throughput test.
    #[arg(short = 'l', long, value_name = "SIZE", default_value = "128KB", allow_hyphen_values = true, value_parser = parse_block)]
    pub block: u64,
    /// Socket send and receive buffer size (SO_SNDBUF/SO_RCVBUF) on both ends.
    #[arg(short = 'w', long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_window)]
    pub window: Option<u64>,
    /// Disable Nagle's algorithm (TCP_NODELAY) on the data streams.
    #[arg(short = 'N', long)]
    pub no_delay: bool,
    /// TCP maximum segment size (TCP_MAXSEG), bytes.
    #[arg(short = 'M', long, value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_mss)]
    pub mss: Option<u64>,
    /// Congestion control algorithm (TCP_CONGESTION), e.g. cubic or bbr.
    #[arg(short = 'C', long, value_name = "ALGO", value_parser = parse_congestion)]
    pub congestion: Option<String>,
    /// Pace each stream at this rate (SO_MAX_PACING_RATE), e.g. 100Mbit.
    #[arg(short = 'b', long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate_bps)]
    pub rate: Option<u64>,
    /// Draw throughput per interval (per stream and the sum) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Give up connecting after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,
    /// Give up when the server makes no progress for this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Server address, HOST:PORT (port 8080 if omitted).
    #[arg(value_name = "ADDR", value_parser = parse_target)]
    pub addr: String,
    /// Request and response sizes, REQ[,RESP] (RESP defaults to REQ).
    #[arg(long, value_name = "REQ[,RESP]", default_value = "64", allow_hyphen_values = true, value_parser = parse_message_sizes)]
    pub size: (u32, u32),
    /// Measure for this long (default 5s unless --count is given).
    #[arg(short = 't', long, value_name = "DURATION", conflicts_with = "count", allow_hyphen_values = true, value_parser = parse_test_duration)]
    pub duration: Option<Duration>,
    /// Measure this many transactions.
    #[arg(short = 'n', long, value_name = "N", allow_negative_numbers = true, value_parser = parse_transactions)]
    pub count: Option<u64>,
    /// Transactions in flight: pipelined on one connection, or parallel connections with --connect.
    #[arg(long, value_name = "N", default_value = "1", allow_negative_numbers = true, value_parser = parse_concurrency)]
    pub concurrency: u64,
    /// Open a new connection per transaction (TCP_CRR): measures connection set-up too.
    #[arg(long)]
    pub connect: bool,
    /// Transactions run first and left out of the figures.
    #[arg(long, value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = parse_warmup)]
    pub warmup: u64,
    /// Draw the latency distribution (CDF) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Give up connecting after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,
    /// Give up when the server makes no progress for this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(after_help = PROXY_HELP)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Where to relay connections, HOST:PORT (resolved once, at start); a bare HOST means
    /// port 8080 (the ntm server's), and port 0 is refused.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_target)]
    pub upstream: String,
    /// A named link: lan, fiber, cable, 5g, 4g, 3g, satellite (see below); flags override it.
    #[arg(long, value_name = "NAME", value_parser = parse_profile)]
    pub profile: Option<&'static crate::proxy::link::Profile>,
    /// Rate limit in both directions, e.g. 20Mbit.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate_bps)]
    pub rate: Option<u64>,
    /// Rate limit client -> upstream.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate_bps)]
    pub rate_up: Option<u64>,
    /// Rate limit upstream -> client.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate_bps)]
    pub rate_down: Option<u64>,
    /// One-way delay in both directions (the RTT added is twice this).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub delay: Option<Duration>,
    /// One-way delay client -> upstream.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub delay_up: Option<Duration>,
    /// One-way delay upstream -> client.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub delay_down: Option<Duration>,
    /// Extra random delay per chunk, 0 to this, in both directions (bytes are never reordered).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub jitter: Option<Duration>,
    /// Width of the timeline's bins.
    #[arg(long, value_name = "DURATION", default_value = "10ms", allow_hyphen_values = true, value_parser = parse_bin)]
    pub bin: Duration,
    /// Write every connection's timeline to FILE as it closes: CSV (flushed per connection), or
    /// JSON (with flights, one document, whole at exit) if FILE ends in .json.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
    /// Draw bandwidth over time, up and down, to this SVG file at exit.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Serve the counters in Prometheus text format on http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics: Option<SocketAddr>,
    /// Give up connecting to the upstream after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,
    /// A live view on the terminal: open connections with their rates, sparklines of total
    /// bandwidth (q to quit).
    #[arg(long, conflicts_with = "format")]
    pub tui: bool,
    /// Relay unshaped traffic with splice(2) through a kernel pipe instead of a reused buffer
    /// (Linux; measured slower on loopback, may pay on real NICs).
    #[arg(long)]
    pub splice: bool,
    /// Output: a text line per closed connection, or NDJSON events.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

const PROXY_HELP: &str = "\
Shaping semantics:
  Each direction is an emulated link: a rate (a token bucket: chunks are serialised at the rate)
  and a one-way delay applied to each chunk from the moment it arrives (with a rate, from when
  it has been serialised), pipelined like a real link, so delay lowers throughput only through
  TCP's window. The RTT added is delay-up + delay-down. Jitter adds 0..jitter per chunk, never
  reorders bytes and never lifts the link above its rate. The rate is shared by all
  connections, like an access link. Ctrl-C resets the connections still open.

Profiles (rate up / down, RTT; half the RTT is applied each way):
  lan        1000 / 1000 Mbit/s,   1 ms
  fiber       100 /  100 Mbit/s,  15 ms   (TLSNotary's 'fiber' benchmark)
  cable        20 /   20 Mbit/s,  20 ms   (TLSNotary's 'cable' benchmark)
  5g           30 /   30 Mbit/s,  30 ms
  4g           10 /   20 Mbit/s,  60 ms
  3g         0.75 /    2 Mbit/s, 150 ms
  satellite     3 /   25 Mbit/s, 600 ms";

fn parse_profile(s: &str) -> Result<&'static crate::proxy::link::Profile, String> {
    crate::proxy::link::profile(s).ok_or_else(|| {
        let names: Vec<_> = crate::proxy::link::PROFILES
            .iter()
            .map(|p| p.name)
            .collect();
        format!("unknown profile '{s}': use one of {}", names.join(", "))
    })
}

fn parse_bin(s: &str) -> Result<Duration, String> {
    let d = units::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
        return Err(format!("invalid bin '{s}': use 1ms to 1h"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct MpcArgs {
    #[command(subcommand)]
    pub command: MpcCommand,
}

#[derive(Debug, Subcommand)]
pub enum MpcCommand {
    /// Bytes, round trips and time of one session on a link, per phase, from the model.
    Estimate(MpcEstimateArgs),
    /// Send the protocol's traffic pattern over a real TCP connection to an ntm server.
    Replay(MpcReplayArgs),
    /// Total time over a grid of rates and RTTs.
    Sweep(MpcSweepArgs),
    /// The built-in protocols, with their sources and dates.
    Presets,
}

/// Which protocol, and for what traffic.
#[derive(Debug, Args)]
pub struct ProtocolArgs {
    /// A built-in protocol: tlsn-mpc (default), tlsn-proxy, tlsn-alpha14, tlsn-alpha13,
    /// tlsn-alpha12, tlsn-faq (`ntm mpc presets` lists their sources).
    #[arg(long, value_name = "NAME", value_parser = parse_preset)]
    pub protocol: Option<String>,
    /// For tlsn-mpc and tlsn-proxy: reveal the response fully, or keep parts of it private.
    #[arg(long, value_name = "full|redacted", default_value = "redacted", value_parser = parse_reveal)]
    pub reveal: crate::mpc::Reveal,
    /// A protocol described in a TOML file (see protocols/ for templates).
    #[arg(long, value_name = "FILE", conflicts_with = "protocol")]
    pub protocol_file: Option<std::path::PathBuf>,
    /// Bytes of the plain request the Prover sends.
    #[arg(long, value_name = "SIZE", default_value = "1KB", allow_hyphen_values = true, value_parser = units::parse_size)]
    pub sent: u64,
    /// Bytes of the plain response the Prover receives.
    #[arg(long, value_name = "SIZE", default_value = "10KB", allow_hyphen_values = true, value_parser = units::parse_size)]
    pub recv: u64,
    /// The request limit the protocol preprocesses for (default: the request itself).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = units::parse_size)]
    pub max_sent: Option<u64>,
    /// The response limit the protocol preprocesses for (default: the response itself).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = units::parse_size)]
    pub max_recv: Option<u64>,
}

/// The link to estimate for: a rate and RTT, a profile, or a measurement.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// Rate both ways, e.g. 20Mbit (with --rtt).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate_bps)]
    pub rate: Option<u64>,
    /// Upload rate (with --rtt).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate_bps)]
    pub rate_up: Option<u64>,
    /// Download rate (with --rtt).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate_bps)]
    pub rate_down: Option<u64>,
    /// Round-trip time.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_duration)]
    pub rtt: Option<Duration>,
    /// A named link, as the proxy's: lan, fiber, cable, 5g, 4g, 3g, satellite.
    #[arg(long, value_name = "NAME", value_parser = parse_profile, conflicts_with_all = ["rate", "rate_up", "rate_down", "rtt"])]
    pub profile: Option<&'static crate::proxy::link::Profile>,
    /// Measure the link to this ntm server first (2 s each way and a latency test).
    #[arg(long, value_name = "ADDR", value_parser = parse_target, conflicts_with_all = ["rate", "rate_up", "rate_down", "rtt", "profile"])]
    pub measure: Option<String>,
}

#[derive(Debug, Args)]
pub struct MpcEstimateArgs {
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    pub link: LinkArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct MpcReplayArgs {
    /// The ntm server to replay against, HOST:PORT.
    #[arg(value_name = "ADDR", value_parser = parse_target)]
    pub addr: String,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Emulate this link with an in-process shaping proxy (no root needed).
    #[arg(long, value_name = "NAME", value_parser = parse_profile)]
    pub via_profile: Option<&'static crate::proxy::link::Profile>,
    /// Emulate the link given by --rate/--rtt (or --profile) with an in-process shaping proxy.
    #[arg(long, conflicts_with_all = ["via_profile", "measure"])]
    pub emulate: bool,
    /// Multiply every byte count by F (e.g. 0.05 for a quick check); round trips stay.
    #[arg(long, value_name = "F", default_value = "1", allow_negative_numbers = true, value_parser = parse_scale)]
    pub scale: f64,
    /// Leave the compute (idle) time out.
    #[arg(long)]
    pub no_compute: bool,
    /// The link the prediction is for (default: the --via-profile link, else measured).
    #[command(flatten)]
    pub link: LinkArgs,
    /// Give up connecting after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,
    /// Give up when the server makes no progress for this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub timeout: Duration,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct MpcSweepArgs {
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Rates: a range LOW..HIGH (log-spaced over --steps) or a list, e.g. 5Mbit..1Gbit.
    #[arg(long = "rate", value_name = "RANGE|LIST", default_value = "5Mbit..1Gbit", allow_hyphen_values = true, value_parser = parse_rate_grid)]
    pub rates: Grid<u64>,
    /// RTTs: a range LOW..HIGH or a list, e.g. 10ms..200ms.
    #[arg(long = "rtt", value_name = "RANGE|LIST", default_value = "10ms..200ms", allow_hyphen_values = true, value_parser = parse_rtt_grid)]
    pub rtts: Grid<Duration>,
    /// Points per range.
    #[arg(long, value_name = "N", default_value = "8", allow_negative_numbers = true, value_parser = parse_steps)]
    pub steps: u64,
    /// Mark where the total time crosses this budget.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub budget: Option<Duration>,
    /// Draw a heatmap of the total time (with the budget contour) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = SweepFormat::Text)]
    pub format: SweepFormat,
}

/// Output of `mpc sweep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SweepFormat {
    Text,
    Json,
    Csv,
}

/// Grid axis values: a range to split, or a list.
#[derive(Debug, Clone, PartialEq)]
pub enum Grid<T> {
    Range(T, T),
    List(Vec<T>),
}

fn parse_grid<T: PartialOrd + Copy>(
    s: &str,
    one: impl Fn(&str) -> Result<T, String>,
    what: &str,
) -> Result<Grid<T>, String> {
    if let Some((lo, hi)) = s.split_once("..") {
        let (lo, hi) = (one(lo)?, one(hi)?);
        if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
            return Err(format!(
                "invalid {what} range '{s}': the low end must be below the high end"
            ));
        }
        return Ok(Grid::Range(lo, hi));
    }
    let list = s
        .split(',')
        .map(|p| one(p.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Grid::List(list))
}

fn parse_rate_grid(s: &str) -> Result<Grid<u64>, String> {
    parse_grid(
        s,
        |p| units::parse_rate_bps(p).map_err(|e| e.to_string()),
        "rate",
    )
}

fn parse_rtt_grid(s: &str) -> Result<Grid<Duration>, String> {
    parse_grid(
        s,
        |p| {
            let d = units::parse_duration(p).map_err(|e| e.to_string())?;
            if d > Duration::from_secs(60) {
                return Err(format!("invalid RTT '{p}': at most 60s"));
            }
            Ok(d)
        },
        "RTT",
    )
}

fn parse_steps(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 2, 100)
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let v = units::parse_ratio(s, 0.0, 1.0).map_err(|e| e.to_string())?;
    if v <= 0.0 {
        return Err(format!(
            "invalid scale '{s}': use a number above 0, at most 1, e.g. 0.05"
        ));
    }
    Ok(v)
}

fn parse_reveal(s: &str) -> Result<crate::mpc::Reveal, String> {
    s.parse()
}

fn parse_preset(s: &str) -> Result<String, String> {
    let known: Vec<&str> = crate::mpc::PRESETS.iter().map(|p| p.name).collect();
    if known.iter().any(|k| k.eq_ignore_ascii_case(s)) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "unknown protocol '{s}': use one of {}, or --protocol-file FILE",
            known.join(", ")
        ))
    }
}

/// `--format` and `--units`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Rates in bytes or bits per second [default: bytes for the demo, bits for measure].
    #[arg(long, value_enum)]
    pub units: Option<RateUnit>,
}

fn parse_test_duration(s: &str) -> Result<Duration, String> {
    let d = parse_positive_duration(s)?;
    if d > crate::server::MAX_DURATION {
        return Err(format!("invalid duration '{s}': at most 24h"));
    }
    Ok(d)
}

fn parse_omit(s: &str) -> Result<Duration, String> {
    let d = units::parse_duration(s).map_err(|e| e.to_string())?;
    if d > crate::server::MAX_DURATION {
        return Err(format!("invalid duration '{s}': at most 24h"));
    }
    Ok(d)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = units::parse_duration(s).map_err(|e| e.to_string())?;
    if d < crate::server::MIN_INTERVAL {
        return Err(format!("invalid interval '{s}': at least 10ms"));
    }
    Ok(d)
}

fn parse_streams(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 1, crate::server::MAX_STREAMS as u64)
}

fn parse_block(s: &str) -> Result<u64, String> {
    let b = units::parse_nonzero_size(s).map_err(|e| e.to_string())?;
    if b > 16 * units::MIB {
        return Err(format!("invalid block size '{s}': at most 16MB"));
    }
    Ok(b)
}

fn parse_window(s: &str) -> Result<u64, String> {
    let b = units::parse_nonzero_size(s).map_err(|e| e.to_string())?;
    if b > 1 << 30 {
        return Err(format!("invalid window '{s}': at most 1GB"));
    }
    Ok(b)
}

fn parse_mss(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 88, 65535)
}

fn parse_congestion(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() < 16
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "invalid congestion algorithm '{s}': use a name such as cubic, reno or bbr (see /proc/sys/net/ipv4/tcp_available_congestion_control)"
        ));
    }
    Ok(s.to_string())
}

fn parse_message_sizes(s: &str) -> Result<(u32, u32), String> {
    let one = |part: &str| -> Result<u32, String> {
        let v = units::parse_size(part).map_err(|e| e.to_string())?;
        if v == 0 || v > 1 << 20 {
            return Err(format!("invalid message size '{part}': use 1 byte to 1MB"));
        }
        Ok(v as u32)
    };
    match s.split_once(',') {
        // A response of 0 bytes would leave nothing to wait for: no round trip to time.
        Some((q, r)) => Ok((one(q)?, one(r)?)),
        None => {
            let q = one(s)?;
            Ok((q, q))
        }
    }
}

fn parse_transactions(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 1, 1_000_000_000)
}

fn parse_warmup(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    units::parse_count(s, 0, 1_000_000_000).map_err(|e| e.to_string())
}

fn parse_concurrency(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 1, 1024)
}

fn parse_repeat(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 1, 1_000_000)
}

fn parse_max_tests(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 1, 100_000)
}

fn parse_max_connections(s: &str) -> Result<u64, units::UnitError> {
    units::parse_count(s, 1, 1_000_000)
}

fn parse_response_ratio(s: &str) -> Result<f64, units::UnitError> {
    units::parse_ratio(s, 0.0, 1000.0)
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = units::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("invalid duration '{s}': must be more than 0"));
    }
    Ok(d)
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("invalid listen address '{s}': use IP:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080")
    })
}

/// Checks the shape of `HOST[:PORT]` (resolution happens when connecting) and adds the default
/// port, 8080 (the ntm server's). Port 0 is refused: it cannot be connected to.
pub fn parse_target(s: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "invalid address '{s}': use HOST:PORT, e.g. 127.0.0.1:8080, localhost:8080 or [::1]:8080"
        )
    };
    let port_zero = || {
        format!("invalid address '{s}': port 0 cannot be connected to; use a port from 1 to 65535")
    };
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(port_zero());
        }
        return Ok(s.to_string());
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        // A bare IP (v6 cannot take ":port" without brackets).
        return Ok(SocketAddr::new(ip, 8080).to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
        None => (s, 8080),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if !host_ok {
        return Err(bad());
    }
    if port == 0 {
        return Err(port_zero());
    }
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Value names of arguments whose values are not numbers, so need not start with '-'. Any
    /// other value-taking argument is taken for a number (with or without a unit) and must let
    /// `-5` or `-5ms` reach its parser, or clap refuses it as an unknown flag `-5`.
    const NOT_NUMBERS: &[&str] = &[
        "ADDR",
        "HOST:PORT",
        "FILE",
        "FILE.svg",
        "NAME",
        "ALGO",
        "full|redacted",
    ];

    /// Plain numbers, for which `allow_negative_numbers` is enough: it lets `-5` through, but
    /// not `-5ms`, so a value with a unit needs `allow_hyphen_values`.
    const PLAIN_NUMBERS: &[&str] = &["N", "R", "F", "BYTES", "PORT"];

    /// Every argument of `cmd` and its subcommands, with the command path (`ntm mpc sweep`).
    fn all_args(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for arg in cmd.get_arguments() {
            out.push((path.to_string(), arg.clone()));
        }
        for sub in cmd.get_subcommands() {
            all_args(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    fn value_name(arg: &clap::Arg) -> String {
        match arg.get_value_names() {
            Some([name, ..]) => name.to_string(),
            _ => arg.get_id().as_str().to_uppercase(),
        }
    }

    fn flag(arg: &clap::Arg) -> String {
        match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => format!("-{short}/--{long}"),
            (None, Some(long)) => format!("--{long}"),
            (Some(short), None) => format!("-{short}"),
            (None, None) => format!("<{}>", value_name(arg)),
        }
    }

    /// Regression test for `--delay -5ms` refused as "unexpected argument '-5'", and for the
    /// flags a hand-made pass over the attributes missed (`--port`, `top -n`, `top --limit`).
    #[test]
    fn numeric_values_may_start_with_a_hyphen() {
        let mut args = Vec::new();
        all_args(&Cli::command(), "ntm", &mut args);
        let mut offenders = Vec::new();
        let mut exempted = std::collections::BTreeSet::new();
        for (path, arg) in &args {
            // Enumerations (--format, --units) list their values; none starts with '-'.
            if !arg.get_action().takes_values() || !arg.get_possible_values().is_empty() {
                continue;
            }
            let name = value_name(arg);
            if NOT_NUMBERS.contains(&name.as_str()) {
                exempted.insert(name);
                continue;
            }
            let what = format!("{path} {} {name}", flag(arg));
            if arg.is_allow_hyphen_values_set() {
                continue;
            }
            if !arg.is_allow_negative_numbers_set() {
                offenders.push(format!("{what}: needs allow_hyphen_values (a value with a unit) or allow_negative_numbers (a plain number)"));
            } else if !PLAIN_NUMBERS.contains(&name.as_str()) {
                offenders.push(format!("{what}: allow_negative_numbers lets -5 through, not -5ms; use allow_hyphen_values, or add {name} to PLAIN_NUMBERS if it is a plain number"));
            }
        }
        assert!(offenders.is_empty(), "\n{}", offenders.join("\n"));
        // An exception no argument uses would silently exempt a future numeric one.
        for name in NOT_NUMBERS {
            assert!(
                exempted.contains(*name),
                "NOT_NUMBERS lists {name}, which no argument uses"
            );
        }
    }

    #[test]
    fn targets() {
        assert_eq!(parse_target("127.0.0.1:9000").unwrap(), "127.0.0.1:9000");
        assert_eq!(parse_target("localhost").unwrap(), "localhost:8080");
        assert_eq!(parse_target("[::1]:7").unwrap(), "[::1]:7");
        assert_eq!(parse_target("::1").unwrap(), "[::1]:8080");
        for bad in [
            "",
            ":80",
            "host:port",
            "host:99999",
            "a b:1",
            "host:0",
            "127.0.0.1:0",
        ] {
            let e = parse_target(bad).unwrap_err();
            assert!(e.contains(&format!("'{}'", bad.trim())), "{e}");
        }
        for zero in ["host:0", "127.0.0.1:0", "[::1]:0"] {
            assert!(parse_target(zero).unwrap_err().contains("port 0"), "{zero}");
        }
    }
}
