//! A protocol as a list of phases, and its cost on a link: bytes, round trips, compute and
//! time per phase. The time formula is documented in the module above ([`super`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::formula::Formula;
use super::{CostModel, MpcEstimate, ProtocolError};

/// A network link as the Prover sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Upload rate, bits per second (decimal: 20 Mbit/s = 20e6).
    pub up_bps: f64,
    /// Download rate, bits per second.
    pub down_bps: f64,
    /// Round-trip time between Prover and Verifier.
    pub rtt: Duration,
}

impl Link {
    /// The same rate both ways, as in the TLSNotary harness.
    pub fn symmetric(rate_bps: f64, rtt: Duration) -> Link {
        Link {
            up_bps: rate_bps,
            down_bps: rate_bps,
            rtt,
        }
    }

    /// Checks that both rates are positive and finite. [`Protocol::estimate`] does not
    /// require it (a zero rate gives an infinite time), but a command should refuse such links.
    pub fn check(&self) -> Result<(), ProtocolError> {
        for (field, v) in [("up_bps", self.up_bps), ("down_bps", self.down_bps)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ProtocolError::Invalid {
                    field: field.into(),
                    message: format!(
                        "a link rate must be a positive number of bits per second, got {v}"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The plain traffic one session carries, and the limits the Prover configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Workload {
    /// Bytes of the request the Prover sends to the server.
    pub sent_bytes: u64,
    /// Bytes of the response it receives.
    pub recv_bytes: u64,
    /// The configured maximum of bytes sent (TLSNotary preprocesses for it); `None` = the
    /// actual size. A limit below the actual size is raised to it.
    pub max_sent: Option<u64>,
    /// The configured maximum of bytes received; `None` = the actual size.
    pub max_recv: Option<u64>,
}

impl Workload {
    /// A session with these sizes and limits equal to them.
    pub fn new(sent_bytes: u64, recv_bytes: u64) -> Workload {
        Workload {
            sent_bytes,
            recv_bytes,
            max_sent: None,
            max_recv: None,
        }
    }

    /// The effective limit on bytes sent.
    pub fn max_sent_bytes(&self) -> u64 {
        self.max_sent.unwrap_or(0).max(self.sent_bytes)
    }

    /// The effective limit on bytes received.
    pub fn max_recv_bytes(&self) -> u64 {
        self.max_recv.unwrap_or(0).max(self.recv_bytes)
    }
}

/// How much of the server's response the Prover reveals to the Verifier. Only the alpha.15+
/// presets (`tlsn-mpc`, `tlsn-proxy`) distinguish the two; the request is always treated as
/// partly redacted, as in the published measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reveal {
    /// The whole response is revealed: TLSNotary's "fast reveal" (server write key reveal).
    Full,
    /// Parts of the response stay hidden and are proven in zero knowledge. The default: it
    /// is the common case (responses carry personal data) and the more expensive one.
    #[default]
    Redacted,
}

impl Reveal {
    /// `full` or `redacted`.
    pub fn name(self) -> &'static str {
        match self {
            Reveal::Full => "full",
            Reveal::Redacted => "redacted",
        }
    }
}

impl fmt::Display for Reveal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reveal {
    type Err = String;

    fn from_str(s: &str) -> Result<Reveal, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Reveal::Full),
            "redacted" | "redact" => Ok(Reveal::Redacted),
            _ => Err(format!("invalid reveal '{s}': use full or redacted")),
        }
    }
}

/// The resource that costs a phase (or a session) the most time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    UploadBandwidth,
    DownloadBandwidth,
    Latency,
    Compute,
}

impl Resource {
    /// `upload bandwidth`, `download bandwidth`, `latency` or `compute`.
    pub fn label(self) -> &'static str {
        match self {
            Resource::UploadBandwidth => "upload bandwidth",
            Resource::DownloadBandwidth => "download bandwidth",
            Resource::Latency => "latency",
            Resource::Compute => "compute",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One phase of a protocol: its costs as formulas of the [`Workload`], and how its time
/// responds to the link (see the module documentation for the formula).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    /// Bytes the Prover sends to the Verifier.
    pub upload: Formula,
    /// Bytes the Prover receives from the Verifier.
    pub download: Formula,
    /// Round trips that wait for the other party (rounded to a whole number).
    pub round_trips: Formula,
    /// Seconds of computation not hidden behind the network.
    pub compute_seconds: Formula,
    /// How many times each direction's bulk transfer pays TCP's slow start from a cold
    /// window (0 = never; 1 = once, as one fresh transfer would).
    pub ramps: f64,
    /// The fraction, 0 to 1, of the shorter of transfer time and wait time (compute plus
    /// round trips) that runs concurrently with the longer (0 = strictly one after the other).
    pub overlap: f64,
}

/// One phase's traffic for a given workload: what a replay sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseCost {
    pub name: String,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub round_trips: u64,
    /// Computation time, idle on the wire.
    pub compute: Duration,
}

/// One phase's (or the session's) predicted cost on a link. Seconds are model seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseEstimate {
    pub name: String,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub round_trips: u64,
    pub compute_seconds: f64,
    /// Predicted wall time.
    pub seconds: f64,
    /// The largest of the four time components below.
    pub dominant: Resource,
    /// `upload_bytes` over the upload rate.
    pub upload_seconds: f64,
    /// `download_bytes` over the download rate.
    pub download_seconds: f64,
    /// Round trips times RTT, plus TCP ramp-up.
    pub latency_seconds: f64,
    /// Time saved by running transfer and waiting concurrently (already subtracted).
    pub overlap_seconds: f64,
}

/// A session's predicted cost: each phase, then the total (phases run one after another).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub protocol: String,
    pub phases: Vec<PhaseEstimate>,
    pub total: PhaseEstimate,
}

/// An MPC protocol's network cost model: named phases with byte, round-trip and compute
/// formulas. Build one with [`super::preset`] or [`Protocol::from_toml`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protocol {
    name: String,
    about: String,
    source: String,
    phases: Vec<Phase>,
}

/// Linux's initial congestion window: 10 segments of 1448 bytes.
pub const INITIAL_WINDOW_BYTES: f64 = 14_480.0;

/// Seconds to move `bytes` over a link of `rate_bytes_per_s` and `rtt_s` in one transfer that
/// starts from TCP's initial window `W0`: slow start delivers a window per round trip and
/// doubles it (continuously: `W0 * 2^x` bytes per round at round `x`, so
/// `W0 * (2^x - 1) / ln 2` after `x` rounds) until the window covers the bandwidth-delay
/// product `R*T`, after `k = log2(R*T/W0)` rounds and `(R*T - W0) / ln 2` bytes; the rest
/// goes at the full rate. Never less than `bytes / rate`; never more for a faster link or a
/// shorter RTT.
pub fn cold_transfer_seconds(bytes: f64, rate_bytes_per_s: f64, rtt_s: f64) -> f64 {
    if bytes.is_nan() || bytes <= 0.0 {
        return 0.0;
    }
    let serial = bytes / rate_bytes_per_s;
    if !(rtt_s > 0.0 && rate_bytes_per_s.is_finite() && rate_bytes_per_s > 0.0) {
        return serial;
    }
    let w0 = INITIAL_WINDOW_BYTES;
    let bdp = rate_bytes_per_s * rtt_s;
    if bdp <= w0 {
        return serial;
    }
    let ln2 = std::f64::consts::LN_2;
    let ramp_bytes = (bdp - w0) / ln2;
    let t = if bytes <= ramp_bytes {
        (bytes * ln2 / w0 + 1.0).log2() * rtt_s
    } else {
        (bdp / w0).log2() * rtt_s + (bytes - ramp_bytes) / rate_bytes_per_s
    };
    t.max(serial)
}

/// The time TCP's slow start adds to one cold transfer: [`cold_transfer_seconds`] minus
/// `bytes / rate`.
pub fn ramp_seconds(bytes: f64, rate_bytes_per_s: f64, rtt_s: f64) -> f64 {
    if bytes.is_nan() || bytes <= 0.0 {
        return 0.0;
    }
    cold_transfer_seconds(bytes, rate_bytes_per_s, rtt_s) - bytes / rate_bytes_per_s
}

/// Seconds to move `bytes` as `ramps` equal cold transfers one after another (`ramps` = 0:
/// `bytes / rate`, no slow start at all; fractional values interpolate).
pub fn transfer_seconds(bytes: f64, rate_bytes_per_s: f64, rtt_s: f64, ramps: f64) -> f64 {
    if bytes.is_nan() || bytes <= 0.0 {
        return 0.0;
    }
    let serial = bytes / rate_bytes_per_s;
    if !(ramps > 0.0 && serial.is_finite()) {
        return serial;
    }
    serial + ramps * ramp_seconds(bytes / ramps, rate_bytes_per_s, rtt_s)
}

fn to_count(v: f64) -> u64 {
    // `as` saturates and maps NaN to 0.
    v.max(0.0).round() as u64
}

fn dominant(upload: f64, download: f64, latency: f64, compute: f64) -> Resource {
    let mut best = (Resource::UploadBandwidth, upload);
    for c in [
        (Resource::DownloadBandwidth, download),
        (Resource::Latency, latency),
        (Resource::Compute, compute),
    ] {
        if c.1 > best.1 {
            best = c;
        }
    }
    best.0
}

impl Protocol {
    /// A protocol from its parts; checks that there is at least one phase, that names are
    /// unique and non-empty, that every number is finite, `ramps` >= 0 and `overlap` in 0..=1.
    pub fn new(
        name: impl Into<String>,
        about: impl Into<String>,
        source: impl Into<String>,
        phases: Vec<Phase>,
    ) -> Result<Protocol, ProtocolError> {
        let invalid = |field: String, message: String| ProtocolError::Invalid { field, message };
        let name = name.into();
        if name.trim().is_empty() {
            return Err(invalid("name".into(), "must not be empty".into()));
        }
        if phases.is_empty() {
            return Err(invalid(
                "phase".into(),
                "a protocol needs at least one phase".into(),
            ));
        }
        for (i, p) in phases.iter().enumerate() {
            let at = |f: &str| format!("phase[{i}].{f}");
            if p.name.trim().is_empty() {
                return Err(invalid(at("name"), "must not be empty".into()));
            }
            if phases[..i].iter().any(|q| q.name == p.name) {
                return Err(invalid(
                    at("name"),
                    format!("duplicate phase name '{}'", p.name),
                ));
            }
            for (field, f) in [
                ("upload", &p.upload),
                ("download", &p.download),
                ("round_trips", &p.round_trips),
                ("compute_seconds", &p.compute_seconds),
            ] {
                if let Some(v) = f.numbers().find(|v| !v.is_finite()) {
                    return Err(invalid(at(field), format!("must be finite, got {v}")));
                }
                if let Some(s) = &f.steps {
                    if s.points.windows(2).any(|w| w[1].0 <= w[0].0) {
                        return Err(invalid(
                            at(field),
                            "steps points must have strictly increasing x".into(),
                        ));
                    }
                }
            }
            if !(p.ramps.is_finite() && p.ramps >= 0.0) {
                return Err(invalid(
                    at("ramps"),
                    format!("must be >= 0, got {}", p.ramps),
                ));
            }
            if !(0.0..=1.0).contains(&p.overlap) {
                return Err(invalid(
                    at("overlap"),
                    format!("must be between 0 and 1, got {}", p.overlap),
                ));
            }
        }
        Ok(Protocol {
            name,
            about: about.into(),
            source: source.into(),
            phases,
        })
    }

    /// Short name, e.g. `tlsn-mpc`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One line on what the protocol is.
    pub fn about(&self) -> &str {
        &self.about
    }

    /// Where its numbers come from (publication and date, or the file's own text).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The phases as formulas.
    pub fn phase_specs(&self) -> &[Phase] {
        &self.phases
    }

    /// Each phase's bytes, round trips and compute for `workload`: the traffic pattern a
    /// replay sends. Bytes and round trips are rounded to whole numbers, negatives to zero.
    pub fn phases(&self, workload: &Workload) -> Vec<PhaseCost> {
        self.phases
            .iter()
            .map(|p| PhaseCost {
                name: p.name.clone(),
                upload_bytes: to_count(p.upload.eval(workload)),
                download_bytes: to_count(p.download.eval(workload)),
                round_trips: to_count(p.round_trips.eval(workload)),
                compute: Duration::try_from_secs_f64(p.compute_seconds.eval(workload).max(0.0))
                    .unwrap_or(Duration::MAX),
            })
            .collect()
    }

    /// Total bytes up and down for `workload`.
    pub fn bytes(&self, workload: &Workload) -> MpcEstimate {
        let costs = self.phases(workload);
        MpcEstimate {
            upload_bytes: costs
                .iter()
                .fold(0u64, |a, c| a.saturating_add(c.upload_bytes)),
            download_bytes: costs
                .iter()
                .fold(0u64, |a, c| a.saturating_add(c.download_bytes)),
        }
    }

    /// The predicted cost of one session of `workload` on `link`.
    pub fn estimate(&self, workload: &Workload, link: &Link) -> Estimate {
        self.estimate_phases(&self.phases(workload), link)
    }

    /// The prediction for given phase costs (for example [`Protocol::phases`] with bytes
    /// scaled down, or compute zeroed, as a replay may send them). Costs are matched to this
    /// protocol's phases by position; extra costs use `ramps` 1 and `overlap` 0.
    pub fn estimate_phases(&self, costs: &[PhaseCost], link: &Link) -> Estimate {
        let rtt = link.rtt.as_secs_f64();
        let (ru, rd) = (link.up_bps / 8.0, link.down_bps / 8.0);
        let phases: Vec<PhaseEstimate> = costs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (ramps, overlap) = self
                    .phases
                    .get(i)
                    .map_or((1.0, 0.0), |p| (p.ramps, p.overlap));
                let (up, down) = (c.upload_bytes as f64, c.download_bytes as f64);
                let upload_seconds = if up > 0.0 { up / ru } else { 0.0 };
                let download_seconds = if down > 0.0 { down / rd } else { 0.0 };
                // Slow start's share of the transfer (0 when a rate is 0 and the time infinite).
                let slow = |total: f64, serial: f64| {
                    if total.is_finite() {
                        total - serial
                    } else {
                        0.0
                    }
                };
                let ramp = slow(transfer_seconds(up, ru, rtt, ramps), upload_seconds)
                    + slow(transfer_seconds(down, rd, rtt, ramps), download_seconds);
                let compute_seconds = c.compute.as_secs_f64();
                let transfer = upload_seconds + download_seconds + ramp;
                let wait = compute_seconds + c.round_trips as f64 * rtt;
                let overlap_seconds = overlap * transfer.min(wait);
                let latency_seconds = c.round_trips as f64 * rtt + ramp;
                PhaseEstimate {
                    name: c.name.clone(),
                    upload_bytes: c.upload_bytes,
                    download_bytes: c.download_bytes,
                    round_trips: c.round_trips,
                    compute_seconds,
                    seconds: transfer + wait - overlap_seconds,
                    dominant: dominant(
                        upload_seconds,
                        download_seconds,
                        latency_seconds,
                        compute_seconds,
                    ),
                    upload_seconds,
                    download_seconds,
                    latency_seconds,
                    overlap_seconds,
                }
            })
            .collect();
        let sum = |f: fn(&PhaseEstimate) -> f64| phases.iter().map(f).sum::<f64>();
        let count =
            |f: fn(&PhaseEstimate) -> u64| phases.iter().fold(0u64, |a, p| a.saturating_add(f(p)));
        let (us, ds, ls, cs) = (
            sum(|p| p.upload_seconds),
            sum(|p| p.download_seconds),
            sum(|p| p.latency_seconds),
            sum(|p| p.compute_seconds),
        );
        let total = PhaseEstimate {
            name: "total".into(),
            upload_bytes: count(|p| p.upload_bytes),
            download_bytes: count(|p| p.download_bytes),
            round_trips: count(|p| p.round_trips),
            compute_seconds: cs,
            seconds: sum(|p| p.seconds),
            dominant: dominant(us, ds, ls, cs),
            upload_seconds: us,
            download_seconds: ds,
            latency_seconds: ls,
            overlap_seconds: sum(|p| p.overlap_seconds),
        };
        Estimate {
            protocol: self.name.clone(),
            phases,
            total,
        }
    }

    /// The same protocol with every phase's `overlap` set to 0: what a strictly sequential
    /// replay of [`Protocol::phases`] (bulk transfers, then ping-pongs, then idle compute)
    /// should take.
    pub fn sequential(&self) -> Protocol {
        let mut p = self.clone();
        for phase in &mut p.phases {
            phase.overlap = 0.0;
        }
        p
    }

    pub(crate) fn phases_mut(&mut self) -> &mut [Phase] {
        &mut self.phases
    }
}

impl CostModel for Protocol {
    fn name(&self) -> &str {
        &self.name
    }

    fn source(&self) -> &str {
        &self.source
    }

    fn estimate(&self, sent_bytes: u64, recv_bytes: u64) -> MpcEstimate {
        self.bytes(&Workload::new(sent_bytes, recv_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(up: f64, down: f64, rounds: f64, compute: f64) -> Phase {
        Phase {
            name: "p".into(),
            upload: Formula::constant(up),
            download: Formula::constant(down),
            round_trips: Formula::constant(rounds),
            compute_seconds: Formula::constant(compute),
            ramps: 0.0,
            overlap: 0.0,
        }
    }

    fn one(p: Phase) -> Protocol {
        Protocol::new("t", "", "", vec![p]).unwrap()
    }

    #[test]
    fn plain_formula_without_ramps_or_overlap() {
        // 1 MB up at 8 Mbit/s = 1 s, 2 MB down at 16 Mbit/s = 1 s, 10 x 50 ms, 0.5 s compute.
        let p = one(phase(1e6, 2e6, 10.0, 0.5));
        let link = Link {
            up_bps: 8e6,
            down_bps: 16e6,
            rtt: Duration::from_millis(50),
        };
        let e = p.estimate(&Workload::new(0, 0), &link);
        assert!((e.total.seconds - 3.0).abs() < 1e-9, "{}", e.total.seconds);
        assert_eq!(e.total.round_trips, 10);
        assert_eq!(e.phases[0].upload_bytes, 1_000_000);
        assert!((e.total.latency_seconds - 0.5).abs() < 1e-9);
    }

    #[test]
    fn overlap_hides_part_of_the_shorter_side() {
        let mut ph = phase(1e6, 0.0, 0.0, 0.4);
        ph.overlap = 0.5;
        let link = Link::symmetric(8e6, Duration::ZERO);
        let e = one(ph).estimate(&Workload::default(), &link);
        // transfer 1 s, wait 0.4 s: 1.4 - 0.5 * 0.4.
        assert!((e.total.seconds - 1.2).abs() < 1e-9);
        assert!((e.total.overlap_seconds - 0.2).abs() < 1e-9);
    }

    #[test]
    fn ramp_grows_with_the_bandwidth_delay_product() {
        // Tiny BDP: no ramp. Large transfer: log2(BDP / W0) rounds less the ramp's bytes.
        assert_eq!(ramp_seconds(1e7, 1e5, 0.01), 0.0);
        let (rate, rtt) = (125e6, 0.2);
        let bdp = rate * rtt;
        let r = ramp_seconds(1e9, rate, rtt);
        let ramp_bytes = (bdp - INITIAL_WINDOW_BYTES) / std::f64::consts::LN_2;
        let expect = (bdp / INITIAL_WINDOW_BYTES).log2() * rtt - ramp_bytes / rate;
        assert!((r - expect).abs() < 1e-9, "{r} {expect}");
        // A small transfer over a big pipe: a few round trips, not the whole ramp.
        let small = cold_transfer_seconds(100e3, 125e6, 0.1);
        let rounds = (100e3 * std::f64::consts::LN_2 / INITIAL_WINDOW_BYTES + 1.0).log2();
        assert!((small - rounds * 0.1).abs() < 1e-9, "{small}");
        assert!(ramp_seconds(1e9, 125e6, 0.1) < r);
        // Two cold transfers of half the bytes each cost more than one.
        assert!(transfer_seconds(30e6, rate, rtt, 2.0) > transfer_seconds(30e6, rate, rtt, 1.0));
        assert_eq!(transfer_seconds(30e6, rate, rtt, 0.0), 30e6 / rate);
    }

    proptest::proptest! {
        #[test]
        fn transfers_never_slow_down_with_more_rate_or_less_rtt(
            bytes in 1.0f64..1e9,
            rate in 1e4f64..2e9,
            more in 1.0f64..10.0,
            rtt in 0.0f64..0.5,
            longer in 0.0f64..0.2,
            ramps in 0.0f64..6.0,
        ) {
            let t = transfer_seconds(bytes, rate, rtt, ramps);
            proptest::prop_assert!(t >= bytes / rate * (1.0 - 1e-12));
            proptest::prop_assert!(transfer_seconds(bytes, rate * more, rtt, ramps) <= t * (1.0 + 1e-12));
            proptest::prop_assert!(transfer_seconds(bytes, rate, rtt + longer, ramps) >= t * (1.0 - 1e-12));
        }
    }

    #[test]
    fn dominant_resource_is_the_largest_component() {
        let link = Link::symmetric(8e6, Duration::from_millis(100));
        let e = one(phase(10e6, 0.0, 1.0, 0.0)).estimate(&Workload::default(), &link);
        assert_eq!(e.total.dominant, Resource::UploadBandwidth);
        let e = one(phase(0.0, 10e6, 1.0, 0.0)).estimate(&Workload::default(), &link);
        assert_eq!(e.total.dominant, Resource::DownloadBandwidth);
        let e = one(phase(1e3, 1e3, 100.0, 0.0)).estimate(&Workload::default(), &link);
        assert_eq!(e.total.dominant, Resource::Latency);
        let e = one(phase(1e3, 1e3, 1.0, 60.0)).estimate(&Workload::default(), &link);
        assert_eq!(e.total.dominant, Resource::Compute);
    }

    #[test]
    fn zero_rate_gives_infinite_time_and_check_refuses_it() {
        let link = Link::symmetric(0.0, Duration::from_millis(1));
        assert!(link.check().is_err());
        let e = one(phase(1.0, 0.0, 0.0, 0.0)).estimate(&Workload::default(), &link);
        assert!(e.total.seconds.is_infinite());
        assert!(Link::symmetric(1e6, Duration::ZERO).check().is_ok());
    }

    #[test]
    fn limits_below_actual_sizes_are_raised() {
        let w = Workload {
            sent_bytes: 100,
            recv_bytes: 200,
            max_sent: Some(10),
            max_recv: Some(4096),
        };
        assert_eq!(w.max_sent_bytes(), 100);
        assert_eq!(w.max_recv_bytes(), 4096);
    }

    #[test]
    fn new_rejects_bad_phases() {
        let mut p = phase(1.0, 1.0, 1.0, 1.0);
        p.overlap = 2.0;
        let err = Protocol::new("t", "", "", vec![p]).unwrap_err().to_string();
        assert!(err.contains("phase[0].overlap"), "{err}");
        let err = Protocol::new("t", "", "", vec![]).unwrap_err().to_string();
        assert!(err.contains("at least one phase"), "{err}");
        let dup = vec![phase(1.0, 1.0, 1.0, 1.0), phase(1.0, 1.0, 1.0, 1.0)];
        let err = Protocol::new("t", "", "", dup).unwrap_err().to_string();
        assert!(err.contains("duplicate"), "{err}");
    }

    #[test]
    fn reveal_parses() {
        assert_eq!("full".parse::<Reveal>(), Ok(Reveal::Full));
        assert_eq!("Redacted".parse::<Reveal>(), Ok(Reveal::Redacted));
        assert!("some"
            .parse::<Reveal>()
            .unwrap_err()
            .contains("full or redacted"));
    }
}
