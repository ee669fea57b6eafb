//! MPC cost models: how many bytes an MPC protocol such as TLSNotary moves for a given plain
//! request and response. Pure: no sockets, no clocks.
//!
//! Models sit behind [`CostModel`] so the demo and the commands do not depend on which one is
//! used; the calibrated, phase-based models of later work plug in here.

mod faq;

pub use faq::FaqModel;

use serde::Serialize;

/// Bytes the Prover moves to and from the Verifier for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MpcEstimate {
    pub upload_bytes: u64,
    pub download_bytes: u64,
}

/// A model of an MPC protocol's network cost.
pub trait CostModel {
    /// Short name, e.g. `tlsn-faq`.
    fn name(&self) -> &'static str;
    /// Where the model's figures come from.
    fn source(&self) -> &'static str;
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
