//! Calibration of the TLSNotary presets on the published measurements, and the comparison of
//! every preset with every published row it models (used by the calibration test and by
//! `examples/mpc_accuracy.rs`).
//!
//! Which rows each calibration uses, and what it borrows where its data cannot tell:
//!
//! | calibration | rows | borrowed |
//! | --- | --- | --- |
//! | alpha.12 | all three 2025-08 files | nothing: it is the only release that varies the request size |
//! | alpha.13 | its bandwidth, latency and download files | cost per byte sent, from alpha.12 |
//! | alpha.14 | its bandwidth and latency files | cost per byte sent, from alpha.12; dependence on the response size, from alpha.15 MPC mode redacted (alpha.14 measured one size, 2 KB, where its bytes equal alpha.15's to within 10 bytes) |
//! | alpha.15 MPC mode | `mpc_reveal_recv` or `mpc_redact_recv` and the 1 ms baseline | cost per byte sent, from alpha.12; link response (round trips, ramps, overlap) from alpha.14, because all its sweep rows share one network condition (20 Mbit/s, 20 ms) |
//! | alpha.15 Proxy mode | `proxy_reveal_recv` or `proxy_redact_recv` and the 1 ms baseline | round trips of preprocess and online fitted from the two network conditions (one ramp, no overlap); finalize's link response from alpha.14 (finalize moves the same bytes in both modes); cost per byte sent: that of a redacted response byte in finalize (both are AES proven in zero knowledge) |
//!
//! The baseline rows (group empty, 1 ms and 1000 Mbit/s, run before each sweep) of alpha.14
//! and alpha.15 are a different configuration in their finalize phase: it downloads nothing,
//! where every sweep row's finalize downloads 480-670 KB, so those runs did not prove the
//! request in zero knowledge. Only their preprocess and online phases are used and compared.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::data::{self, Measured, Release, FINALIZE, ONLINE, PREPROCESS};
use super::fit::{self, LinkFit, LinkParams, Prior, Sample, Shape, TimeRow};
use super::formula::{Formula, Var};
use super::{preset, Estimate, Phase, Protocol, Reveal, Workload, PRESETS};

/// A calibration: one release (and mode and reveal) of TLSNotary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Calib {
    Alpha12,
    Alpha13,
    Alpha14,
    Mpc(Reveal),
    Proxy(Reveal),
}

/// Which phases of a published row a model is compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole session.
    Session,
    /// Preprocess and online only: the row's finalize is a different configuration.
    PreprocessAndOnline,
}

impl Scope {
    fn includes(self, phase: usize) -> bool {
        self == Scope::Session || phase != FINALIZE
    }
}

/// The published rows a calibration models.
fn rows(c: Calib, all: &[Measured]) -> Vec<(Measured, Scope)> {
    let baseline = |m: &Measured| m.group.is_empty();
    let pick = |m: &Measured| -> Option<Scope> {
        match c {
            Calib::Alpha12 => (m.release == Release::Alpha12).then_some(Scope::Session),
            Calib::Alpha13 => (m.release == Release::Alpha13).then_some(Scope::Session),
            Calib::Alpha14 => (m.release == Release::Alpha14).then(|| {
                if baseline(m) {
                    Scope::PreprocessAndOnline
                } else {
                    Scope::Session
                }
            }),
            Calib::Mpc(r) | Calib::Proxy(r) => {
                let proxy = matches!(c, Calib::Proxy(_));
                if m.release != Release::Alpha15 || m.proxy != proxy {
                    return None;
                }
                let group = format!(
                    "{}_{}_recv",
                    if proxy { "proxy" } else { "mpc" },
                    if r == Reveal::Full {
                        "reveal"
                    } else {
                        "redact"
                    }
                );
                if baseline(m) {
                    Some(Scope::PreprocessAndOnline)
                } else {
                    (m.group == group).then_some(Scope::Session)
                }
            }
        }
    };
    all.iter()
        .filter_map(|m| pick(m).map(|s| (m.clone(), s)))
        .collect()
}

/// Fitted formulas and link response of one phase.
#[derive(Debug, Clone)]
pub(crate) struct PhaseFit {
    pub upload: Formula,
    pub download: Formula,
    pub compute: Formula,
    pub link: LinkParams,
}

/// A calibrated release: preprocess, online, finalize.
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    pub phases: Vec<PhaseFit>,
}

impl Fitted {
    /// The phases of a [`super::Protocol`].
    pub fn phase_specs(&self) -> Vec<Phase> {
        self.phases
            .iter()
            .zip(data::PHASES)
            .map(|(p, name)| Phase {
                name: name.to_string(),
                upload: p.upload.clone(),
                download: p.download.clone(),
                round_trips: Formula::constant(p.link.rounds as f64),
                compute_seconds: p.compute.clone(),
                ramps: p.link.ramps,
                overlap: p.link.overlap,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantity {
    Upload,
    Download,
    Compute,
}

/// Relative residual above which bytes get step points.
const BYTES_TOLERANCE: f64 = 0.005;
/// Relative residual above which compute gets step points.
const COMPUTE_TOLERANCE: f64 = 0.02;

/// Preprocessing is sized by the configured limits, the other phases by the actual sizes.
fn shape(phase: usize, knots: &[f64], tolerance: f64) -> Shape<'_> {
    let (sent_var, recv_var) = if phase == PREPROCESS {
        (Var::MaxSent, Var::MaxRecv)
    } else {
        (Var::Sent, Var::Recv)
    };
    Shape {
        sent_var,
        recv_var,
        knots,
        tolerance,
    }
}

fn time_rows(rows: &[(Measured, Scope)], phase: usize) -> Vec<TimeRow> {
    rows.iter()
        .filter(|(m, s)| s.includes(phase) && m.seconds[phase] > 0.0)
        .map(|(m, _)| {
            let rate = m.rate_bytes_per_s();
            TimeRow::new(
                m.sent_bytes as f64,
                m.recv_bytes as f64,
                m.upload[phase],
                m.download[phase],
                rate,
                rate,
                m.rtt_s(),
                m.seconds[phase],
            )
        })
        .collect()
}

fn fit_links(
    rows: &[(Measured, Scope)],
    modes: [Option<LinkFit>; 3],
    donor: Option<&[LinkParams; 3]>,
) -> [LinkParams; 3] {
    let mut out = [LinkParams {
        rounds: 0,
        ramps: 1.0,
        overlap: 0.0,
    }; 3];
    for (phase, mode) in modes.iter().enumerate() {
        out[phase] = match (mode, donor) {
            (Some(mode), _) => {
                let t = time_rows(rows, phase);
                let knots = fit::knot_sizes(&t);
                fit::fit_link(&t, shape(phase, &knots, COMPUTE_TOLERANCE), *mode)
            }
            (None, Some(d)) => d[phase],
            (None, None) => out[phase],
        };
    }
    out
}

fn fit_release(
    rows: &[(Measured, Scope)],
    links: [LinkParams; 3],
    prior: &dyn Fn(usize, Quantity) -> Prior,
) -> Fitted {
    let phases = (0..3)
        .map(|phase| {
            let in_scope: Vec<&Measured> = rows
                .iter()
                .filter(|(_, s)| s.includes(phase))
                .map(|(m, _)| m)
                .collect();
            let bytes = |q: Quantity, y: &dyn Fn(&Measured) -> f64| {
                let samples: Vec<Sample> = in_scope
                    .iter()
                    .map(|m| Sample {
                        sent: m.sent_bytes as f64,
                        recv: m.recv_bytes as f64,
                        y: y(m),
                    })
                    .collect();
                fit::fit_formula(
                    &samples,
                    shape(phase, &[], BYTES_TOLERANCE),
                    &prior(phase, q),
                )
            };
            let t = time_rows(rows, phase);
            let knots = fit::knot_sizes(&t);
            PhaseFit {
                upload: bytes(Quantity::Upload, &|m| m.upload[phase]),
                download: bytes(Quantity::Download, &|m| m.download[phase]),
                compute: fit::fit_compute(
                    &t,
                    links[phase],
                    shape(phase, &knots, COMPUTE_TOLERANCE),
                    &prior(phase, Quantity::Compute),
                ),
                link: links[phase],
            }
        })
        .collect();
    Fitted { phases }
}

fn formula(f: &Fitted, phase: usize, q: Quantity) -> &Formula {
    let p = &f.phases[phase];
    match q {
        Quantity::Upload => &p.upload,
        Quantity::Download => &p.download,
        Quantity::Compute => &p.compute,
    }
}

fn sent_only(f: &Fitted, phase: usize, q: Quantity) -> Prior {
    Prior {
        per_sent: Prior::of(formula(f, phase, q)).per_sent,
        recv_shape: None,
    }
}

/// Runs every calibration, in dependency order.
fn calibrate_all() -> HashMap<Calib, Fitted> {
    let all = data::measured();
    let rows_of = |c: Calib| rows(c, &all);
    let fit_all = [Some(LinkFit::All); 3];
    let link12 = fit_links(&rows_of(Calib::Alpha12), fit_all, None);
    let link13 = fit_links(&rows_of(Calib::Alpha13), fit_all, None);
    let link14 = fit_links(&rows_of(Calib::Alpha14), fit_all, None);

    let mut out = HashMap::new();
    let a12 = fit_release(&rows_of(Calib::Alpha12), link12, &|_, _| Prior::default());
    let from12 = |phase: usize, q: Quantity| sent_only(&a12, phase, q);
    out.insert(
        Calib::Alpha13,
        fit_release(&rows_of(Calib::Alpha13), link13, &from12),
    );
    for reveal in [Reveal::Full, Reveal::Redacted] {
        let c = Calib::Mpc(reveal);
        out.insert(c, fit_release(&rows_of(c), link14, &from12));
    }
    let mpc_redacted = &out[&Calib::Mpc(Reveal::Redacted)];
    let a14 = fit_release(&rows_of(Calib::Alpha14), link14, &|phase, q| Prior {
        per_sent: from12(phase, q).per_sent,
        recv_shape: Prior::of(formula(mpc_redacted, phase, q)).recv_shape,
    });
    out.insert(Calib::Alpha14, a14);

    let proxy_links = |c: Calib| {
        let modes = [Some(LinkFit::RoundsOnly), Some(LinkFit::RoundsOnly), None];
        fit_links(&rows_of(c), modes, Some(&link14))
    };
    let redacted = Calib::Proxy(Reveal::Redacted);
    let plain = fit_release(&rows_of(redacted), proxy_links(redacted), &|_, _| {
        Prior::default()
    });
    let per_sent = |phase: usize, q: Quantity| Prior {
        per_sent: Some(if phase == FINALIZE {
            let f = formula(&plain, FINALIZE, q);
            f.per_recv + f.per_max_recv
        } else {
            0.0
        }),
        recv_shape: None,
    };
    for reveal in [Reveal::Full, Reveal::Redacted] {
        let c = Calib::Proxy(reveal);
        out.insert(c, fit_release(&rows_of(c), proxy_links(c), &per_sent));
    }
    out.insert(Calib::Alpha12, a12);
    out
}

/// The calibration `c`, computed once per process (tens of milliseconds in a release build).
pub(crate) fn fitted(c: Calib) -> &'static Fitted {
    static ALL: OnceLock<HashMap<Calib, Fitted>> = OnceLock::new();
    &ALL.get_or_init(calibrate_all)[&c]
}

/// One published row beside a preset's prediction for its workload and link.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The preset's name.
    pub preset: &'static str,
    /// The reveal option, for presets that have one.
    pub reveal: Option<Reveal>,
    /// The published row (medians over its runs).
    pub measured: Measured,
    /// The phases compared.
    pub scope: Scope,
    /// The preset's prediction.
    pub estimate: Estimate,
}

fn phases_of(scope: Scope) -> &'static [usize] {
    match scope {
        Scope::Session => &[PREPROCESS, ONLINE, FINALIZE],
        Scope::PreprocessAndOnline => &[PREPROCESS, ONLINE],
    }
}

impl Comparison {
    fn measured_sum(&self, f: impl Fn(&Measured, usize) -> f64) -> f64 {
        phases_of(self.scope)
            .iter()
            .map(|&p| f(&self.measured, p))
            .sum()
    }

    fn predicted_sum(&self, f: impl Fn(&super::PhaseEstimate) -> f64) -> f64 {
        phases_of(self.scope)
            .iter()
            .map(|&p| f(&self.estimate.phases[p]))
            .sum()
    }

    /// Measured seconds over the compared phases (the published median total for a session).
    pub fn measured_seconds(&self) -> f64 {
        match self.scope {
            Scope::Session => self.measured.total_seconds,
            Scope::PreprocessAndOnline => self.measured_sum(|m, p| m.seconds[p]),
        }
    }

    /// Predicted seconds over the compared phases.
    pub fn predicted_seconds(&self) -> f64 {
        self.predicted_sum(|p| p.seconds)
    }

    /// Measured bytes uploaded over the compared phases.
    pub fn measured_upload(&self) -> f64 {
        match self.scope {
            Scope::Session => self.measured.upload_total,
            Scope::PreprocessAndOnline => self.measured_sum(|m, p| m.upload[p]),
        }
    }

    /// Predicted bytes uploaded over the compared phases.
    pub fn predicted_upload(&self) -> f64 {
        self.predicted_sum(|p| p.upload_bytes as f64)
    }

    /// Measured bytes downloaded over the compared phases.
    pub fn measured_download(&self) -> f64 {
        match self.scope {
            Scope::Session => self.measured.download_total,
            Scope::PreprocessAndOnline => self.measured_sum(|m, p| m.download[p]),
        }
    }

    /// Predicted bytes downloaded over the compared phases.
    pub fn predicted_download(&self) -> f64 {
        self.predicted_sum(|p| p.download_bytes as f64)
    }

    /// (predicted - measured) / measured, seconds.
    pub fn time_error(&self) -> f64 {
        self.predicted_seconds() / self.measured_seconds() - 1.0
    }

    /// (predicted - measured) / measured, bytes uploaded.
    pub fn upload_error(&self) -> f64 {
        self.predicted_upload() / self.measured_upload() - 1.0
    }

    /// (predicted - measured) / measured, bytes downloaded.
    pub fn download_error(&self) -> f64 {
        self.predicted_download() / self.measured_download() - 1.0
    }
}

/// Every calibrated preset (and reveal option) beside every published row it models, and
/// `tlsn-faq` beside the alpha.12 rows (its era; it is a reference, not calibrated).
pub fn comparisons() -> Vec<Comparison> {
    let all = data::measured();
    let mut out = Vec::new();
    for info in PRESETS {
        let variants: Vec<(Option<Reveal>, Calib)> = match info.name {
            "tlsn-alpha12" | "tlsn-faq" => vec![(None, Calib::Alpha12)],
            "tlsn-alpha13" => vec![(None, Calib::Alpha13)],
            "tlsn-alpha14" => vec![(None, Calib::Alpha14)],
            "tlsn-mpc" => [Reveal::Full, Reveal::Redacted]
                .map(|r| (Some(r), Calib::Mpc(r)))
                .to_vec(),
            "tlsn-proxy" => [Reveal::Full, Reveal::Redacted]
                .map(|r| (Some(r), Calib::Proxy(r)))
                .to_vec(),
            _ => vec![],
        };
        for (reveal, c) in variants {
            let Some(protocol) = preset(info.name, reveal.unwrap_or_default()) else {
                continue;
            };
            for (m, scope) in rows(c, &all) {
                let workload = Workload::new(m.sent_bytes, m.recv_bytes);
                let estimate = protocol.estimate(&workload, &m.link());
                out.push(Comparison {
                    preset: info.name,
                    reveal,
                    measured: m,
                    scope,
                    estimate,
                });
            }
        }
    }
    out
}

/// One published row predicted by a calibration that did not see it.
#[derive(Debug, Clone)]
pub struct HeldOut {
    pub preset: &'static str,
    pub measured: Measured,
    pub scope: Scope,
    pub predicted_seconds: f64,
    pub measured_seconds: f64,
}

impl HeldOut {
    /// (predicted - measured) / measured.
    pub fn time_error(&self) -> f64 {
        self.predicted_seconds / self.measured_seconds - 1.0
    }
}

/// Leave-one-out check of the time model for the releases calibrated on their own data
/// (alpha.12, alpha.13, alpha.14): each published configuration in turn is left out, the
/// release is calibrated on the others (link response, bytes and compute), and the left-out
/// row is predicted. Slow (one calibration per row): for the accuracy example, not the CLI.
pub fn leave_one_out() -> Vec<HeldOut> {
    let all = data::measured();
    let mut out = Vec::new();
    for (name, c) in [
        ("tlsn-alpha12", Calib::Alpha12),
        ("tlsn-alpha13", Calib::Alpha13),
        ("tlsn-alpha14", Calib::Alpha14),
    ] {
        let rows = rows(c, &all);
        for i in 0..rows.len() {
            let mut train = rows.clone();
            let (m, scope) = train.remove(i);
            let links = fit_links(&train, [Some(LinkFit::All); 3], None);
            let fitted = fit_release(&train, links, &|_, _| Prior::default());
            let Ok(p) = Protocol::new(name, "", "", fitted.phase_specs()) else {
                continue;
            };
            let e = p.estimate(&Workload::new(m.sent_bytes, m.recv_bytes), &m.link());
            let phases = phases_of(scope);
            let predicted_seconds = phases.iter().map(|&p| e.phases[p].seconds).sum();
            let measured_seconds = match scope {
                Scope::Session => m.total_seconds,
                Scope::PreprocessAndOnline => phases.iter().map(|&p| m.seconds[p]).sum(),
            };
            out.push(HeldOut {
                preset: name,
                measured: m,
                scope,
                predicted_seconds,
                measured_seconds,
            });
        }
    }
    out
}
