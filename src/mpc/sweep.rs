//! A grid of estimates over rates and RTTs: "how long on which links?". Pure.

use std::time::Duration;

use serde::Serialize;

use super::{Link, Protocol, Workload};

/// One cell: a link and the session's predicted cost on it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cell {
    pub rate_bps: f64,
    pub rtt_seconds: f64,
    pub seconds: f64,
    pub upload_bytes: u64,
    pub download_bytes: u64,
}

/// Total time over a grid of symmetric rates (columns) and RTTs (rows).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    pub rates_bps: Vec<f64>,
    pub rtts_seconds: Vec<f64>,
    /// `rows[r][c]` is RTT `r` at rate `c`.
    pub rows: Vec<Vec<Cell>>,
}

impl Sweep {
    pub fn run(
        protocol: &Protocol,
        workload: &Workload,
        rates_bps: &[f64],
        rtts_seconds: &[f64],
    ) -> Sweep {
        let rows = rtts_seconds
            .iter()
            .map(|&rtt| {
                rates_bps
                    .iter()
                    .map(|&rate| {
                        let link = Link::symmetric(rate, Duration::from_secs_f64(rtt));
                        let total = protocol.estimate(workload, &link).total;
                        Cell {
                            rate_bps: rate,
                            rtt_seconds: rtt,
                            seconds: total.seconds,
                            upload_bytes: total.upload_bytes,
                            download_bytes: total.download_bytes,
                        }
                    })
                    .collect()
            })
            .collect();
        Sweep {
            rates_bps: rates_bps.to_vec(),
            rtts_seconds: rtts_seconds.to_vec(),
            rows,
        }
    }

    /// For each RTT, the lowest rate of the grid whose total is within `budget` seconds.
    pub fn budget_frontier(&self, budget: f64) -> Vec<Option<f64>> {
        self.rows
            .iter()
            .map(|row| row.iter().find(|c| c.seconds <= budget).map(|c| c.rate_bps))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::{preset, Reveal, DEFAULT_PRESET, PRESETS};

    #[test]
    fn more_rate_never_costs_more_and_more_rtt_never_less() {
        let rates: Vec<f64> = (0..10).map(|i| 5e6 * 1.8f64.powi(i)).collect();
        let rtts: Vec<f64> = (0..10).map(|i| 0.001 * 1.7f64.powi(i)).collect();
        for info in PRESETS {
            let p = preset(info.name, Reveal::default()).unwrap();
            let s = Sweep::run(&p, &Workload::new(1024, 10 * 1024), &rates, &rtts);
            for r in 0..rtts.len() {
                for c in 0..rates.len() {
                    let t = s.rows[r][c].seconds;
                    if c + 1 < rates.len() {
                        assert!(s.rows[r][c + 1].seconds <= t + 1e-9, "{}: rate", info.name);
                    }
                    if r + 1 < rtts.len() {
                        assert!(s.rows[r + 1][c].seconds >= t - 1e-9, "{}: rtt", info.name);
                    }
                }
            }
        }
    }

    #[test]
    fn frontier_finds_the_slowest_rate_within_budget() {
        let p = preset(DEFAULT_PRESET, Reveal::default()).unwrap();
        let s = Sweep::run(&p, &Workload::new(1024, 1024), &[1e6, 1e8, 1e9], &[0.01]);
        let budget = s.rows[0][1].seconds;
        assert_eq!(s.budget_frontier(budget), vec![Some(1e8)]);
        assert_eq!(s.budget_frontier(0.0), vec![None]);
    }
}
