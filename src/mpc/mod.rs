//! MPC cost models: how many bytes, round trips and seconds an MPC protocol such as
//! TLSNotary costs for a given plain request and response on a given link. Pure: no sockets,
//! no clocks, no files at run time (the published measurements are embedded).
//!
//! # The model
//!
//! A [`Protocol`] is a list of [`Phase`]s run one after another (TLSNotary: `preprocess`,
//! `online`, `finalize`). For a [`Workload`] (bytes sent `s`, received `r`, and the configured
//! limits `S` >= `s`, `R` >= `r` that a protocol may preprocess for) each phase has
//!
//! - upload bytes `U` and download bytes `D`, round trips `n` and compute seconds `C`, each a
//!   [`Formula`]: `constant + a*s + b*r + c*S + d*R + steps(x)`, where `steps` is an optional
//!   piecewise-linear term over one of the sizes (measured costs move in steps where the
//!   implementation allocates batches);
//! - `ramps` (how many cold TCP slow starts each direction's bulk transfer pays) and
//!   `overlap` (how much of the transfer runs concurrently with compute and round trips).
//!
//! On a [`Link`] with upload rate `Ru`, download rate `Rd` (bytes/s) and round-trip time `T`:
//!
//! ```text
//! X = send(U, Ru) + send(D, Rd)                 transfer, upload then download
//! W = C + n*T                                   waiting: compute and round trips
//! t = X + W - overlap * min(X, W)               the phase
//!
//! send(B, R) = B/R + ramps * slow_start(B/ramps, R, T)
//! ```
//!
//! The starting point `U/Ru + D/Rd + n*T + C` is the case `ramps = 0, overlap = 0`. Two
//! refinements, each because the published data shows it:
//!
//! - `send` moves `B` bytes as `ramps` transfers that each start from TCP's initial window
//!   `W0` = 14,480 bytes (Linux: 10 segments); `slow_start` ([`ramp_seconds`]) is what slow
//!   start adds to one of them: the window doubles every round trip (continuously,
//!   `W0 * 2^x` bytes in round `x`) until it covers the bandwidth-delay product `R*T`, then
//!   the rest flows at `R`. It grows with the bandwidth-delay product, never makes a faster
//!   link or a shorter RTT slower, and lets the model follow alpha.12's preprocessing at
//!   1000 Mbit/s, which grows by 24 ms per ms of RTT between 10 and 25 ms but by 36 between
//!   100 and 200 ms, where a constant number of round trips cannot.
//! - `overlap`: at 10 Mbit/s alpha.12's preprocessing takes only 0.25 s more than its bytes
//!   need, at 1000 Mbit/s 1.06 s more: computation hides behind slow transfers.
//!
//! Upload and download are added, not overlapped: fitting an overlap between them to the
//! bandwidth sweeps makes every release fit worse (relative RMS error of alpha.12's
//! preprocessing 1% when added, 6% when the download is hidden under the upload).
//!
//! The session's time is the sum of its phases. The [`Resource`] that dominates a phase (or
//! the session) is the largest of `U/Ru` (upload bandwidth), `D/Rd` (download bandwidth),
//! `n*T` plus ramps (latency) and `C` (compute).
//!
//! # Presets and calibration
//!
//! [`PRESETS`] lists the built-in protocols; [`DEFAULT_PRESET`] is the newest MPC mode. The
//! TLSNotary presets' constants are not typed in: [`calibration`] fits them to the published
//! harness measurements in `data/tlsnotary/` when a preset is first built (once per process):
//!
//! 1. per phase, the round trips `n`, `ramps` and `overlap` minimise the squared relative
//!    error of the phase's time over every published network condition, with the compute
//!    profiled out (for given link parameters, the compute that fits best);
//! 2. bytes: least squares in the request and response sizes per phase and direction, plus
//!    step points where the line misses a measured size by more than 0.5%;
//! 3. compute: the same, on the compute each measured run implies under the fitted link
//!    parameters.
//!
//! What a release's data cannot identify (the cost per byte sent, where only one request size
//! was measured; the link response, where one network condition was) is borrowed from a
//! release that measured it, as [`calibration`] documents.
//!
//! # Units
//!
//! Bytes are bytes, rates are bits per second (decimal), times are seconds or [`Duration`]s.
//! The FAQ preset states its figures in decimal MB and KB; see [`FaqModel`].
//!
//! [`Duration`]: std::time::Duration

pub mod calibration;
mod data;
mod expr;
mod faq;
pub mod file;
mod fit;
mod formula;
mod presets;
mod protocol;
pub mod replay;
pub mod sweep;

pub use data::{Measured, Release};
pub use faq::FaqModel;
pub use formula::{Formula, Steps, Var};
pub use presets::{preset, PresetInfo, DEFAULT_PRESET, PRESETS};
pub use protocol::{
    cold_transfer_seconds, ramp_seconds, transfer_seconds, Estimate, Link, Phase, PhaseCost,
    PhaseEstimate, Protocol, Resource, Reveal, Workload, INITIAL_WINDOW_BYTES,
};

use serde::Serialize;

/// Bytes the Prover moves to and from the Verifier for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MpcEstimate {
    pub upload_bytes: u64,
    pub download_bytes: u64,
}

/// A model of an MPC protocol's network cost, bytes only (the demo's view).
pub trait CostModel {
    /// Short name, e.g. `tlsn-mpc`.
    fn name(&self) -> &str;
    /// Where the model's figures come from.
    fn source(&self) -> &str;
    /// The cost of one session that sends `sent_bytes` and receives `recv_bytes` of plain data.
    fn estimate(&self, sent_bytes: u64, recv_bytes: u64) -> MpcEstimate;
}

/// How many times the plain traffic an estimate is: upload over the bytes sent, download over
/// the bytes received. `None` where the plain figure is zero.
pub fn overhead_ratios(
    estimate: &MpcEstimate,
    sent_bytes: u64,
    recv_bytes: u64,
) -> (Option<f64>, Option<f64>) {
    let ratio = |mpc: u64, plain: u64| (plain > 0).then(|| mpc as f64 / plain as f64);
    (
        ratio(estimate.upload_bytes, sent_bytes),
        ratio(estimate.download_bytes, recv_bytes),
    )
}

/// A protocol that cannot be built: a bad file, or invalid parts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// The file is not valid TOML.
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// A field of the file is missing, unknown or has a bad value.
    #[error("line {line}: {field}: {message}")]
    Field {
        field: String,
        line: usize,
        message: String,
    },
    /// A protocol built in code has a bad part.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}
