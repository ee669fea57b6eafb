//! The fitting tools calibration uses: a formula through measured points (least squares plus
//! step corrections), and a phase's link response (round trips, ramps, overlap) by profile
//! least squares on relative time errors. Pure arithmetic, no data of its own.

use std::collections::BTreeMap;

use super::formula::{Formula, Steps, Var};
use super::protocol::transfer_seconds;

/// One measured value of a quantity at a workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub sent: f64,
    pub recv: f64,
    pub y: f64,
}

/// What the data of a calibration cannot identify, borrowed from another calibration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prior {
    /// Cost per byte sent, used when every sample has the same request size.
    pub per_sent: Option<f64>,
    /// Slope and steps over the response size, used when there is only one response size.
    pub recv_shape: Option<(f64, Option<Steps>)>,
}

impl Prior {
    /// The shape of an already fitted formula.
    pub fn of(f: &Formula) -> Prior {
        Prior {
            per_sent: Some(f.per_sent + f.per_max_sent),
            recv_shape: Some((f.per_recv + f.per_max_recv, f.steps.clone())),
        }
    }
}

/// How a formula is fitted: which variables carry the sizes, where step corrections may sit,
/// and the residual (relative to the largest value) above which they are kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    pub sent_var: Var,
    pub recv_var: Var,
    /// Response sizes that may carry a step point; empty = every size present.
    pub knots: &'a [f64],
    pub tolerance: f64,
}

fn key(x: f64) -> u64 {
    x.round() as u64
}

/// Least-squares line `c + b x` through the points.
fn line(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

/// Fits `constant + a*sent + b*recv + steps(recv)` to the samples:
/// 1. `a` from samples that share a response size but differ in request size (within-group
///    least squares), else from the prior, else 0;
/// 2. the mean of `y - a*sent` at each allowed response size;
/// 3. a least-squares line through those means; where a mean is off the line by more than
///    `tolerance` of the largest mean, the residuals become step points, so the formula goes
///    through every mean and follows the line's slope beyond the last one. With a single
///    response size the slope and steps come from the prior (shifted through the mean).
pub(crate) fn fit_formula(samples: &[Sample], shape: Shape<'_>, prior: &Prior) -> Formula {
    let mut groups: BTreeMap<u64, Vec<Sample>> = BTreeMap::new();
    for s in samples {
        groups.entry(key(s.recv)).or_default().push(*s);
    }
    let (mut num, mut den) = (0.0, 0.0);
    for g in groups.values() {
        let n = g.len() as f64;
        let ms = g.iter().map(|s| s.sent).sum::<f64>() / n;
        let my = g.iter().map(|s| s.y).sum::<f64>() / n;
        num += g.iter().map(|s| (s.sent - ms) * (s.y - my)).sum::<f64>();
        den += g.iter().map(|s| (s.sent - ms).powi(2)).sum::<f64>();
    }
    let per_sent = if den > 0.0 {
        num / den
    } else {
        prior.per_sent.unwrap_or(0.0)
    };
    let allowed: Vec<u64> = shape.knots.iter().map(|&k| key(k)).collect();
    let points: Vec<(f64, f64)> = groups
        .iter()
        .filter(|(k, _)| allowed.is_empty() || allowed.contains(k))
        .map(|(_, g)| {
            let z = g.iter().map(|s| s.y - per_sent * s.sent).sum::<f64>() / g.len() as f64;
            (g[0].recv, z)
        })
        .collect();
    let mut f = Formula::default();
    *f.coefficient_mut(shape.sent_var) = per_sent;
    match points.len() {
        0 => {}
        1 => {
            let (x0, z0) = points[0];
            if let Some((slope, steps)) = &prior.recv_shape {
                let steps = steps.clone().map(|s| Steps {
                    over: shape.recv_var,
                    ..s
                });
                let at = steps.as_ref().map_or(0.0, |s| s.at(x0));
                f.constant = z0 - slope * x0 - at;
                *f.coefficient_mut(shape.recv_var) = *slope;
                f.steps = steps;
            } else {
                f.constant = z0;
            }
        }
        _ => {
            let (c, b) = line(&points);
            f.constant = c;
            *f.coefficient_mut(shape.recv_var) = b;
            let residuals: Vec<(f64, f64)> =
                points.iter().map(|&(x, z)| (x, z - (c + b * x))).collect();
            let scale = points.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
            if residuals
                .iter()
                .any(|r| r.1.abs() > shape.tolerance * scale)
            {
                f.steps = Some(Steps {
                    over: shape.recv_var,
                    points: residuals,
                });
            }
        }
    }
    f
}

/// Nelder-Mead minimisation from `x0` with initial steps `step`.
pub(crate) fn nelder_mead(
    f: &dyn Fn(&[f64]) -> f64,
    x0: &[f64],
    step: &[f64],
    iterations: usize,
) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut pts: Vec<Vec<f64>> = vec![x0.to_vec()];
    for i in 0..n {
        let mut p = x0.to_vec();
        p[i] += step[i];
        pts.push(p);
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| f(p)).collect();
    for _ in 0..iterations {
        let mut idx: Vec<usize> = (0..=n).collect();
        idx.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        pts = idx.iter().map(|&i| pts[i].clone()).collect();
        vals = idx.iter().map(|&i| vals[i]).collect();
        if (vals[n] - vals[0]).abs() <= 1e-12 * (1.0 + vals[0].abs()) {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| pts[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64)
            .collect();
        let towards = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (pts[n][j] - centroid[j]))
                .collect()
        };
        let xr = towards(-1.0);
        let fr = f(&xr);
        if fr < vals[0] {
            let xe = towards(-2.0);
            let fe = f(&xe);
            (pts[n], vals[n]) = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < vals[n - 1] {
            (pts[n], vals[n]) = (xr, fr);
        } else {
            let xc = towards(0.5);
            let fc = f(&xc);
            if fc < vals[n] {
                (pts[n], vals[n]) = (xc, fc);
            } else {
                for i in 1..=n {
                    pts[i] = (0..n)
                        .map(|j| pts[0][j] + 0.5 * (pts[i][j] - pts[0][j]))
                        .collect();
                    vals[i] = f(&pts[i]);
                }
            }
        }
    }
    let best = (0..=n)
        .min_by(|&a, &b| vals[a].total_cmp(&vals[b]))
        .unwrap_or(0);
    (pts[best].clone(), vals[best])
}

/// One measured phase: its workload, bytes, link and time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeRow {
    pub sent: f64,
    pub recv: f64,
    pub rtt: f64,
    pub seconds: f64,
    up: f64,
    down: f64,
    /// Rates in bytes per second.
    rates: (f64, f64),
}

impl TimeRow {
    /// A row from bytes, rates in bytes per second, RTT and measured time in seconds.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sent: f64,
        recv: f64,
        up: f64,
        down: f64,
        rate_up: f64,
        rate_down: f64,
        rtt: f64,
        seconds: f64,
    ) -> TimeRow {
        TimeRow {
            sent,
            recv,
            rtt,
            seconds,
            up,
            down,
            rates: (rate_up, rate_down),
        }
    }

    fn transfer(&self, ramps: f64) -> f64 {
        transfer_seconds(self.up, self.rates.0, self.rtt, ramps)
            + transfer_seconds(self.down, self.rates.1, self.rtt, ramps)
    }

    /// The network condition, for grouping: rates and RTT (us).
    fn link_key(&self) -> (u64, u64, u64) {
        (key(self.rates.0), key(self.rates.1), key(self.rtt * 1e6))
    }
}

/// How a phase's time responds to the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LinkParams {
    pub rounds: u64,
    pub ramps: f64,
    pub overlap: f64,
}

/// What [`fit_link`] may fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkFit {
    /// Round trips, ramps and overlap.
    All,
    /// Round trips only, with one ramp per transfer and no overlap: for data with too few
    /// network conditions to separate the three.
    RoundsOnly,
}

/// The most round trips a calibrated phase may have.
const MAX_ROUNDS: f64 = 100.0;
/// The most cold-start ramps per direction a calibrated phase may have.
const MAX_RAMPS: f64 = 8.0;

/// The phase time the model gives for `compute` seconds of computation.
#[cfg(test)]
pub(crate) fn predict(r: &TimeRow, p: LinkParams, compute: f64) -> f64 {
    predict_real(r, p.rounds as f64, p.ramps, p.overlap, compute)
}

fn predict_real(r: &TimeRow, rounds: f64, ramps: f64, overlap: f64, compute: f64) -> f64 {
    let x = r.transfer(ramps);
    let w = compute.max(0.0) + rounds * r.rtt;
    x + w - overlap * x.min(w)
}

/// The compute that makes the model reproduce the row's measured time (0 if even none is
/// too much): the model is increasing in compute, so the inverse is unique.
fn implied_real(r: &TimeRow, rounds: f64, ramps: f64, overlap: f64) -> f64 {
    let x = r.transfer(ramps);
    let above = r.seconds - (1.0 - overlap) * x;
    let wait = if above >= x {
        above
    } else if overlap < 1.0 {
        (r.seconds - x) / (1.0 - overlap)
    } else {
        x
    };
    (wait - rounds * r.rtt).max(0.0)
}

/// The compute formula that best explains the rows under `p`.
pub(crate) fn fit_compute(
    rows: &[TimeRow],
    p: LinkParams,
    shape: Shape<'_>,
    prior: &Prior,
) -> Formula {
    fit_compute_real(rows, p.rounds as f64, p.ramps, p.overlap, shape, prior)
}

fn fit_compute_real(
    rows: &[TimeRow],
    rounds: f64,
    ramps: f64,
    overlap: f64,
    shape: Shape<'_>,
    prior: &Prior,
) -> Formula {
    let samples: Vec<Sample> = rows
        .iter()
        .map(|r| Sample {
            sent: r.sent,
            recv: r.recv,
            y: implied_real(r, rounds, ramps, overlap),
        })
        .collect();
    fit_formula(&samples, shape, prior)
}

fn compute_at(f: &Formula, r: &TimeRow) -> f64 {
    let w = super::Workload::new(r.sent as u64, r.recv as u64);
    f.eval(&w).max(0.0)
}

/// Sum of squared relative time errors when compute is fitted to the rows (compute is
/// "profiled out": for given link parameters it is whatever fits best).
fn objective(rows: &[TimeRow], rounds: f64, ramps: f64, overlap: f64, shape: Shape<'_>) -> f64 {
    let compute = fit_compute_real(rows, rounds, ramps, overlap, shape, &Prior::default());
    rows.iter()
        .map(|r| {
            let t = predict_real(r, rounds, ramps, overlap, compute_at(&compute, r));
            ((t - r.seconds) / r.seconds).powi(2)
        })
        .sum()
}

/// The link response that best explains the rows. `All`: Nelder-Mead over (round trips,
/// ramps, overlap) from four starts, then the round trips are made whole (the nearest whole
/// numbers are tried, ramps and overlap refitted for each). `RoundsOnly`: every whole number
/// of round trips up to 100 with one ramp and no overlap. Compute is profiled out.
pub(crate) fn fit_link(rows: &[TimeRow], shape: Shape<'_>, mode: LinkFit) -> LinkParams {
    let clamp = |x: &[f64]| (x[0].clamp(0.0, MAX_RAMPS), x[1].clamp(0.0, 1.0));
    match mode {
        LinkFit::RoundsOnly => (0..=MAX_ROUNDS as u64)
            .map(|rounds| {
                let v = objective(rows, rounds as f64, 1.0, 0.0, shape);
                (v, rounds)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, rounds)| LinkParams {
                rounds,
                ramps: 1.0,
                overlap: 0.0,
            })
            .unwrap_or(LinkParams {
                rounds: 0,
                ramps: 1.0,
                overlap: 0.0,
            }),
        LinkFit::All => {
            let f = |x: &[f64]| {
                let (ramps, overlap) = clamp(&x[1..]);
                objective(rows, x[0].clamp(0.0, MAX_ROUNDS), ramps, overlap, shape)
            };
            let mut best = (f64::INFINITY, vec![10.0, 1.0, 0.5]);
            for start in [
                [10.0, 1.0, 0.5],
                [30.0, 0.5, 0.2],
                [3.0, 2.0, 0.8],
                [20.0, 1.5, 0.1],
            ] {
                let (x, v) = nelder_mead(&f, &start, &[8.0, 0.5, 0.2], 400);
                if v < best.0 {
                    best = (v, x);
                }
            }
            let r0 = best.1[0].clamp(0.0, MAX_ROUNDS).floor();
            let mut whole = (
                f64::INFINITY,
                LinkParams {
                    rounds: r0 as u64,
                    ramps: 1.0,
                    overlap: 0.0,
                },
            );
            for rounds in [r0 - 1.0, r0, r0 + 1.0, r0 + 2.0] {
                if !(0.0..=MAX_ROUNDS).contains(&rounds) {
                    continue;
                }
                let g = |x: &[f64]| {
                    let (ramps, overlap) = clamp(x);
                    objective(rows, rounds, ramps, overlap, shape)
                };
                for start in [[best.1[1], best.1[2]], [1.0, 0.5]] {
                    let (x, v) = nelder_mead(&g, &start, &[0.3, 0.1], 150);
                    if v < whole.0 {
                        let (ramps, overlap) = clamp(&x);
                        whole = (
                            v,
                            LinkParams {
                                rounds: rounds as u64,
                                ramps,
                                overlap,
                            },
                        );
                    }
                }
            }
            whole.1
        }
    }
}

/// The response sizes measured at the network condition with the most distinct response
/// sizes (ties: the one whose sizes cover the most rows): where compute may carry step points.
pub(crate) fn knot_sizes(rows: &[TimeRow]) -> Vec<f64> {
    let mut by_link: BTreeMap<(u64, u64, u64), Vec<u64>> = BTreeMap::new();
    for r in rows {
        let sizes = by_link.entry(r.link_key()).or_default();
        if !sizes.contains(&key(r.recv)) {
            sizes.push(key(r.recv));
        }
    }
    let covered = |sizes: &Vec<u64>| rows.iter().filter(|r| sizes.contains(&key(r.recv))).count();
    let best = by_link
        .values()
        .max_by_key(|s| (s.len(), covered(s)))
        .cloned()
        .unwrap_or_default();
    let mut v: Vec<f64> = best.into_iter().map(|k| k as f64).collect();
    v.sort_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(knots: &[f64]) -> Shape<'_> {
        Shape {
            sent_var: Var::Sent,
            recv_var: Var::Recv,
            knots,
            tolerance: 0.005,
        }
    }

    #[test]
    fn exact_line_needs_no_steps() {
        let s: Vec<Sample> = [(1.0, 1.0), (1.0, 3.0), (2.0, 3.0)]
            .iter()
            .map(|&(sent, recv)| Sample {
                sent,
                recv,
                y: 5.0 + 7.0 * sent + 11.0 * recv,
            })
            .collect();
        let f = fit_formula(&s, shape(&[]), &Prior::default());
        assert!((f.per_sent - 7.0).abs() < 1e-9);
        assert!((f.per_recv - 11.0).abs() < 1e-9);
        assert!((f.constant - 5.0).abs() < 1e-9);
        assert!(f.steps.is_none());
    }

    #[test]
    fn steps_go_through_every_mean_and_follow_the_slope_beyond() {
        let ys = [
            (1000.0, 100.0),
            (2000.0, 100.0),
            (3000.0, 400.0),
            (4000.0, 400.0),
        ];
        let s: Vec<Sample> = ys
            .iter()
            .map(|&(recv, y)| Sample { sent: 0.0, recv, y })
            .collect();
        let f = fit_formula(&s, shape(&[]), &Prior::default());
        for &(recv, y) in &ys {
            let v = f.eval(&super::super::Workload::new(0, recv as u64));
            assert!((v - y).abs() < 1e-6, "{recv}: {v}");
        }
        let beyond = f.eval(&super::super::Workload::new(0, 5000));
        assert!((beyond - (400.0 + f.per_recv * 1000.0)).abs() < 1e-6);
    }

    #[test]
    fn one_size_borrows_the_prior_shape() {
        let s = [Sample {
            sent: 1.0,
            recv: 2000.0,
            y: 1000.0,
        }];
        let prior = Prior {
            per_sent: Some(3.0),
            recv_shape: Some((0.5, None)),
        };
        let f = fit_formula(&s, shape(&[]), &prior);
        assert_eq!(f.per_sent, 3.0);
        assert_eq!(f.per_recv, 0.5);
        assert!((f.eval(&super::super::Workload::new(1, 2000)) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn nelder_mead_finds_a_quadratic_minimum() {
        let f = |x: &[f64]| (x[0] - 3.0).powi(2) + 2.0 * (x[1] + 1.0).powi(2);
        let (x, v) = nelder_mead(&f, &[0.0, 0.0], &[1.0, 1.0], 500);
        assert!((x[0] - 3.0).abs() < 1e-4 && (x[1] + 1.0).abs() < 1e-4 && v < 1e-8);
    }

    #[test]
    fn link_fit_recovers_a_synthetic_phase() {
        let truth = LinkParams {
            rounds: 12,
            ramps: 1.5,
            overlap: 0.4,
        };
        let mut rows = Vec::new();
        for (mbit, rtt_ms) in [
            (5.0, 25.0),
            (20.0, 25.0),
            (100.0, 25.0),
            (1000.0, 25.0),
            (100.0, 10.0),
            (100.0, 100.0),
            (100.0, 200.0),
            (1000.0, 200.0),
        ] {
            let rate = mbit * 1e6 / 8.0;
            let mut r = TimeRow::new(1024.0, 2048.0, 20e6, 2e6, rate, rate, rtt_ms / 1000.0, 0.0);
            r.seconds = predict(&r, truth, 0.7);
            rows.push(r);
        }
        let got = fit_link(&rows, shape(&[]), LinkFit::All);
        assert_eq!(got.rounds, 12, "{got:?}");
        assert!(
            (got.ramps - 1.5).abs() < 0.05 && (got.overlap - 0.4).abs() < 0.05,
            "{got:?}"
        );
        let c = fit_compute(&rows, got, shape(&[]), &Prior::default());
        assert!(
            (c.constant + c.per_sent * 1024.0 - 0.7).abs() < 0.01,
            "{c:?}"
        );
    }
}
