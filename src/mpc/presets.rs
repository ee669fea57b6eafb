//! The built-in protocols: TLSNotary releases calibrated on the project's published harness
//! measurements (`data/tlsnotary/`), and the FAQ's rule of thumb for reference.

use super::calibration::{fitted, Calib, Fitted};
use super::faq;
use super::{Protocol, Reveal};

/// A preset's name and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetInfo {
    /// What `--protocol` takes.
    pub name: &'static str,
    /// One line on what it models.
    pub about: &'static str,
    /// Where its numbers come from, with dates.
    pub source: &'static str,
    /// Whether [`Reveal`] changes it.
    pub takes_reveal: bool,
}

/// The preset used when none is named: the newest MPC mode.
pub const DEFAULT_PRESET: &str = "tlsn-mpc";

/// Every preset, newest first.
pub const PRESETS: &[PresetInfo] = &[
    PresetInfo {
        name: "tlsn-mpc",
        about: "TLSNotary after alpha.15, MPC mode (MPC-TLS between Prover and Verifier)",
        source: "TLSNotary blog 2026-05-19 \"fast reveal\" (2026-05_fast_reveal_native.csv: \
                 main after alpha.15, 20 Mbit/s, 20 ms, 1 KB request, 1-50 KB response, \
                 response revealed or redacted); link response from alpha.14 (2026-01-19)",
        takes_reveal: true,
    },
    PresetInfo {
        name: "tlsn-proxy",
        about: "TLSNotary after alpha.15, Proxy mode (the Verifier relays the TLS traffic)",
        source: "TLSNotary blog 2026-05-19 \"fast reveal\" (2026-05_fast_reveal_native.csv: \
                 main after alpha.15, proxy = true, 20 Mbit/s, 20 ms and 1000 Mbit/s, 1 ms)",
        takes_reveal: true,
    },
    PresetInfo {
        name: "tlsn-alpha14",
        about: "TLSNotary v0.1.0-alpha.14, MPC-TLS",
        source:
            "TLSNotary blog 2026-01-19 \"alpha.14 performance\" (native_bandwidth_alpha14.csv, \
                 native_latency_alpha14.csv: 5-1000 Mbit/s at 25 ms, 10-200 ms at 100 Mbit/s, \
                 1 KB / 2 KB); response-size dependence from the 2026-05-19 MPC-mode data",
        takes_reveal: false,
    },
    PresetInfo {
        name: "tlsn-alpha13",
        about: "TLSNotary v0.1.0-alpha.13, MPC-TLS",
        source: "TLSNotary blog 2026-01-19 \"alpha.14 performance\" (native_*_alpha13.csv: \
                 5-1000 Mbit/s at 25 ms, 10-200 ms at 100 Mbit/s, 1-50 KB responses)",
        takes_reveal: false,
    },
    PresetInfo {
        name: "tlsn-alpha12",
        about: "TLSNotary v0.1.0-alpha.12, MPC-TLS",
        source: "TLSNotary blog 2025-08-31 \"benchmarks\" (2025-08_alpha12_native_*.csv: \
                 10-1000 Mbit/s at 25 ms, 10-200 ms at 1000 Mbit/s, 1-128 KB responses, \
                 1 and 2 KB requests)",
        takes_reveal: false,
    },
    PresetInfo {
        name: "tlsn-faq",
        about: "TLSNotary FAQ rule of thumb: 25 MB + 10 MB per KB sent + 40 KB per KB received \
                (decimal MB and KB of traffic; per KB = per 1024 bytes of plain data)",
        source: "TLSNotary FAQ (expectation for the 2025 protocol); download, round trips and \
                 compute from alpha.12 (2025-08-31)",
        takes_reveal: false,
    },
];

fn protocol(info: &PresetInfo, about: String, f: &Fitted) -> Protocol {
    Protocol::new(info.name, about, info.source, f.phase_specs())
        .expect("calibrated presets are valid")
}

/// The preset `name` (see [`PRESETS`]); `reveal` matters only where
/// [`PresetInfo::takes_reveal`]. `None` for an unknown name.
pub fn preset(name: &str, reveal: Reveal) -> Option<Protocol> {
    let info = PRESETS.iter().find(|p| p.name == name)?;
    let with_reveal = || {
        format!(
            "{}; response {}",
            info.about,
            match reveal {
                Reveal::Full => "revealed in full",
                Reveal::Redacted => "partly redacted",
            }
        )
    };
    Some(match name {
        "tlsn-mpc" => protocol(info, with_reveal(), fitted(Calib::Mpc(reveal))),
        "tlsn-proxy" => protocol(info, with_reveal(), fitted(Calib::Proxy(reveal))),
        "tlsn-alpha14" => protocol(info, info.about.into(), fitted(Calib::Alpha14)),
        "tlsn-alpha13" => protocol(info, info.about.into(), fitted(Calib::Alpha13)),
        "tlsn-alpha12" => protocol(info, info.about.into(), fitted(Calib::Alpha12)),
        "tlsn-faq" => {
            let mut p = protocol(info, info.about.into(), fitted(Calib::Alpha12));
            faq::apply(&mut p);
            p
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::Workload;

    #[test]
    fn every_listed_preset_builds_and_unknown_names_do_not() {
        for info in PRESETS {
            for reveal in [Reveal::Full, Reveal::Redacted] {
                let p = preset(info.name, reveal).unwrap();
                assert_eq!(p.name(), info.name);
                assert_eq!(p.phase_specs().len(), 3);
            }
        }
        assert!(preset("tlsn-alpha99", Reveal::Full).is_none());
        assert!(PRESETS.iter().any(|p| p.name == DEFAULT_PRESET));
    }

    #[test]
    fn redacting_the_response_costs_more_than_revealing_it() {
        for name in ["tlsn-mpc", "tlsn-proxy"] {
            let w = Workload::new(1024, 50 * 1024);
            let full = preset(name, Reveal::Full).unwrap().bytes(&w);
            let redacted = preset(name, Reveal::Redacted).unwrap().bytes(&w);
            assert!(
                redacted.upload_bytes > full.upload_bytes + 2_000_000,
                "{name}"
            );
        }
    }

    #[test]
    fn preprocessing_follows_the_configured_limits() {
        let p = preset("tlsn-alpha12", Reveal::Full).unwrap();
        let small = p.phases(&Workload::new(1024, 1024));
        let limited = p.phases(&Workload {
            max_sent: Some(4096),
            max_recv: Some(64 * 1024),
            ..Workload::new(1024, 1024)
        });
        // About 13 MB per KB of request limit, in preprocessing only.
        let extra = limited[0].upload_bytes - small[0].upload_bytes;
        assert!((38_000_000..41_000_000).contains(&extra), "{extra}");
        assert_eq!(limited[1].upload_bytes, small[1].upload_bytes);
        assert!(limited[0].download_bytes > small[0].download_bytes);
    }
}
