//! TLSNotary's published rule of thumb (its FAQ, written for the 2025 protocol): the Prover
//! uploads about 25 MB per session, plus about 10 MB per KB sent, plus about 40 KB per KB
//! received.
//!
//! Units: the FAQ's amounts of traffic are decimal, as it states them (1 MB = 10^6 bytes,
//! 1 KB = 10^3 bytes); "per KB" of plain data is read as per 1024 bytes, ntm's KB, so that a
//! 1 KB request and a 10 KB response as ntm parses them (1024 and 10,240 bytes) cost exactly
//! 25 MB + 10 MB + 400 KB = 35,400,000 bytes, the "about 35.4 MB". ntm prints sizes in
//! binary units, so that is printed as 33.76 MB (35,400,000 / 1024^2).
//!
//! The FAQ gives neither a download figure nor times: those come from the alpha.12 calibration
//! of the same era (`tlsn-alpha12`).

use super::calibration::{fitted, Calib};
use super::formula::Formula;
use super::{CostModel, MpcEstimate, Protocol, Workload};

/// Fixed upload per session: 25 MB (decimal).
pub const UPLOAD_FIXED: u64 = 25_000_000;
/// Upload per KB (1024 bytes) of request: 10 MB (decimal). AES in garbled circuits.
pub const UPLOAD_PER_KB_SENT: u64 = 10_000_000;
/// Upload per KB (1024 bytes) of response: 40 KB (decimal).
pub const UPLOAD_PER_KB_RECV: u64 = 40_000;

const KB: f64 = 1024.0;

/// The FAQ expectation as a bytes-only model, `tlsn-faq`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaqModel;

impl CostModel for FaqModel {
    fn name(&self) -> &str {
        "tlsn-faq"
    }

    fn source(&self) -> &str {
        "TLSNotary FAQ (upload: 25 MB + 10 MB per KB sent + 40 KB per KB received, decimal MB); \
         download: alpha.12 harness, 2025-08"
    }

    fn estimate(&self, sent_bytes: u64, recv_bytes: u64) -> MpcEstimate {
        // Per-KB terms are scaled in u128 so a 1 TB input cannot overflow, then saturate.
        let per_kb = |bytes: u64, cost: u64| {
            u64::try_from(bytes as u128 * cost as u128 / 1024).unwrap_or(u64::MAX)
        };
        let upload = UPLOAD_FIXED
            .saturating_add(per_kb(sent_bytes, UPLOAD_PER_KB_SENT))
            .saturating_add(per_kb(recv_bytes, UPLOAD_PER_KB_RECV));
        let alpha12 = fitted(Calib::Alpha12);
        let w = Workload::new(sent_bytes, recv_bytes);
        let download = alpha12
            .phases
            .iter()
            .map(|p| p.download.eval(&w).max(0.0).round())
            .sum::<f64>();
        MpcEstimate {
            upload_bytes: upload,
            download_bytes: download as u64,
        }
    }
}

/// Replaces an alpha.12 protocol's upload with the FAQ's: the fixed and per-byte-sent terms in
/// preprocessing (where alpha.12 garbles the request's AES), the per-byte-received term online
/// (where alpha.12 pays for the response).
pub(crate) fn apply(p: &mut Protocol) {
    let uploads = [
        Formula {
            per_max_sent: UPLOAD_PER_KB_SENT as f64 / KB,
            ..Formula::constant(UPLOAD_FIXED as f64)
        },
        Formula {
            per_recv: UPLOAD_PER_KB_RECV as f64 / KB,
            ..Formula::default()
        },
        Formula::default(),
    ];
    for (phase, upload) in p.phases_mut().iter_mut().zip(uploads) {
        phase.upload = upload;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::{preset, Reveal};

    const KIB: u64 = 1024;

    #[test]
    fn one_kb_request_ten_kb_response_is_35_4_decimal_megabytes() {
        let e = FaqModel.estimate(KIB, 10 * KIB);
        assert_eq!(e.upload_bytes, 25_000_000 + 10_000_000 + 400_000);
        // Downloads come from alpha.12: about 3.4-4.2 MB, mostly preprocessing.
        assert!(
            (3_400_000..4_300_000).contains(&e.download_bytes),
            "{}",
            e.download_bytes
        );
        let p = preset("tlsn-faq", Reveal::Full).unwrap();
        assert_eq!(p.bytes(&Workload::new(KIB, 10 * KIB)), e);
    }

    #[test]
    fn ten_kb_request_hundred_kb_response() {
        let e = FaqModel.estimate(10 * KIB, 100 * KIB);
        assert_eq!(e.upload_bytes, 25_000_000 + 100_000_000 + 4_000_000);
    }

    #[test]
    fn huge_inputs_saturate_instead_of_overflowing() {
        let e = FaqModel.estimate(u64::MAX, u64::MAX);
        assert_eq!(e.upload_bytes, u64::MAX);
    }

    #[test]
    fn ratios_divide_by_plain_sizes() {
        let e = FaqModel.estimate(KIB, 10 * KIB);
        let (up, down) = super::super::overhead_ratios(&e, KIB, 10 * KIB);
        assert_eq!(up, Some(e.upload_bytes as f64 / 1024.0));
        assert_eq!(down, Some(e.download_bytes as f64 / 10240.0));
        assert_eq!(super::super::overhead_ratios(&e, 0, 0), (None, None));
    }
}
