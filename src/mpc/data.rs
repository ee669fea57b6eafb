//! The published TLSNotary harness measurements (`data/tlsnotary/`, embedded at build time),
//! reduced to one row per configuration: the median of each column over its runs.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Link;

/// A TLSNotary release the data covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Release {
    /// v0.1.0-alpha.12 (+28 commits), blog post 2025-08-31.
    Alpha12,
    /// alpha.13, blog post 2026-01-19.
    Alpha13,
    /// alpha.14, blog post 2026-01-19.
    Alpha14,
    /// main after alpha.15, blog post 2026-05-19 ("fast reveal").
    Alpha15,
}

/// The embedded files: (release, file name, contents).
pub const FILES: &[(Release, &str, &str)] = &[
    (
        Release::Alpha12,
        "2025-08_alpha12_native_bandwidth.csv",
        include_str!("../../data/tlsnotary/2025-08_alpha12_native_bandwidth.csv"),
    ),
    (
        Release::Alpha12,
        "2025-08_alpha12_native_latency.csv",
        include_str!("../../data/tlsnotary/2025-08_alpha12_native_latency.csv"),
    ),
    (
        Release::Alpha12,
        "2025-08_alpha12_native_download.csv",
        include_str!("../../data/tlsnotary/2025-08_alpha12_native_download.csv"),
    ),
    (
        Release::Alpha13,
        "native_bandwidth_alpha13.csv",
        include_str!("../../data/tlsnotary/native_bandwidth_alpha13.csv"),
    ),
    (
        Release::Alpha13,
        "native_latency_alpha13.csv",
        include_str!("../../data/tlsnotary/native_latency_alpha13.csv"),
    ),
    (
        Release::Alpha13,
        "native_download_alpha13.csv",
        include_str!("../../data/tlsnotary/native_download_alpha13.csv"),
    ),
    (
        Release::Alpha14,
        "native_bandwidth_alpha14.csv",
        include_str!("../../data/tlsnotary/native_bandwidth_alpha14.csv"),
    ),
    (
        Release::Alpha14,
        "native_latency_alpha14.csv",
        include_str!("../../data/tlsnotary/native_latency_alpha14.csv"),
    ),
    (
        Release::Alpha15,
        "2026-05_fast_reveal_native.csv",
        include_str!("../../data/tlsnotary/2026-05_fast_reveal_native.csv"),
    ),
];

/// Phase indices in the arrays below.
pub const PREPROCESS: usize = 0;
pub const ONLINE: usize = 1;
pub const FINALIZE: usize = 2;
/// Phase names, in order.
pub const PHASES: [&str; 3] = ["preprocess", "online", "finalize"];

/// One published configuration: medians over its runs. Finalize figures are computed per run
/// as total minus preprocess minus online, then the median is taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub release: Release,
    /// The harness's group name (`bandwidth_sweep`, `mpc_reveal_recv`, ...); empty for the
    /// baseline runs at 1 ms and 1000 Mbit/s that precede each sweep.
    pub group: String,
    pub rtt_ms: u32,
    /// Mbit/s, both directions.
    pub rate_mbit: u32,
    pub sent_bytes: u64,
    pub recv_bytes: u64,
    /// Proxy mode (alpha.15+).
    pub proxy: bool,
    pub runs: usize,
    /// Seconds per phase.
    pub seconds: [f64; 3],
    pub total_seconds: f64,
    /// Bytes the Prover uploaded / downloaded per phase.
    pub upload: [f64; 3],
    pub download: [f64; 3],
    pub upload_total: f64,
    pub download_total: f64,
}

impl Measured {
    /// The round-trip time, seconds.
    pub fn rtt_s(&self) -> f64 {
        self.rtt_ms as f64 / 1000.0
    }

    /// The harness's link: the rate both ways and the RTT.
    pub fn link(&self) -> Link {
        Link::symmetric(
            self.rate_mbit as f64 * 1e6,
            Duration::from_millis(self.rtt_ms as u64),
        )
    }

    /// The rate, bytes per second.
    pub fn rate_bytes_per_s(&self) -> f64 {
        self.rate_mbit as f64 * 1e6 / 8.0
    }

    /// A short description for messages: `alpha13 latency_sweep 25ms 100Mbit 1024/2048 B`.
    pub fn label(&self) -> String {
        format!(
            "{:?} {} {}ms {}Mbit sent {} recv {}{}",
            self.release,
            if self.group.is_empty() {
                "baseline"
            } else {
                &self.group
            },
            self.rtt_ms,
            self.rate_mbit,
            self.sent_bytes,
            self.recv_bytes,
            if self.proxy { " proxy" } else { "" }
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

type Key = (Release, String, u32, u32, u64, u64, bool);

/// Every published configuration, in file order of first appearance. Panics if an embedded
/// file is malformed (they are fixed at build time and checked by the tests).
pub fn measured() -> Vec<Measured> {
    let mut order: Vec<Key> = Vec::new();
    let mut runs: BTreeMap<Key, Vec<BTreeMap<&str, f64>>> = BTreeMap::new();
    for &(release, file, text) in FILES {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{file}: {line}");
            let cell = |name: &str| {
                header
                    .iter()
                    .position(|h| *h == name)
                    .map(|i| cells[i])
                    .unwrap_or("")
            };
            let num = |name: &str| -> f64 {
                cell(name)
                    .parse()
                    .unwrap_or_else(|_| panic!("{file}: column {name} in {line}"))
            };
            let key: Key = (
                release,
                cell("group").to_string(),
                num("latency") as u32,
                num("bandwidth") as u32,
                num("upload_size") as u64,
                num("download_size") as u64,
                cell("proxy") == "true",
            );
            let mut values = BTreeMap::new();
            for col in [
                "time_preprocess",
                "time_online",
                "time_total",
                "uploaded_preprocess",
                "uploaded_online",
                "uploaded_total",
                "downloaded_preprocess",
                "downloaded_online",
                "downloaded_total",
            ] {
                values.insert(col, num(col));
            }
            if !runs.contains_key(&key) {
                order.push(key.clone());
            }
            runs.entry(key).or_default().push(values);
        }
    }
    order
        .into_iter()
        .map(|key| {
            let rs = &runs[&key];
            let med = |f: &dyn Fn(&BTreeMap<&str, f64>) -> f64| median(rs.iter().map(f).collect());
            let col = |c: &'static str| move |r: &BTreeMap<&str, f64>| r[c];
            let three = |pre: &'static str, on: &'static str, tot: &'static str, scale: f64| {
                [
                    med(&|r| r[pre] * scale),
                    med(&|r| r[on] * scale),
                    med(&|r| (r[tot] - r[pre] - r[on]) * scale),
                ]
            };
            let (release, group, rtt_ms, rate_mbit, sent_bytes, recv_bytes, proxy) = key.clone();
            Measured {
                release,
                group,
                rtt_ms,
                rate_mbit,
                sent_bytes,
                recv_bytes,
                proxy,
                runs: rs.len(),
                seconds: three("time_preprocess", "time_online", "time_total", 1e-3),
                total_seconds: med(&|r| col("time_total")(r) * 1e-3),
                upload: three(
                    "uploaded_preprocess",
                    "uploaded_online",
                    "uploaded_total",
                    1.0,
                ),
                download: three(
                    "downloaded_preprocess",
                    "downloaded_online",
                    "downloaded_total",
                    1.0,
                ),
                upload_total: med(&col("uploaded_total")),
                download_total: med(&col("downloaded_total")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_parses_into_configurations() {
        let m = measured();
        let runs: usize = m.iter().map(|r| r.runs).sum();
        let lines: usize = FILES
            .iter()
            .map(|(_, _, t)| t.lines().filter(|l| !l.trim().is_empty()).count() - 1)
            .sum();
        assert_eq!(runs, lines);
        // alpha.12 bandwidth sweep at 10 Mbit/s: 10 runs, median preprocess 29.839 s.
        let r = m
            .iter()
            .find(|r| r.release == Release::Alpha12 && r.rate_mbit == 10)
            .unwrap();
        assert_eq!(r.runs, 10);
        assert!((r.seconds[PREPROCESS] - 29.839).abs() < 1e-9);
        assert_eq!(r.upload_total, 34_598_347.0);
        // The alpha.13 baseline appears in three files and is one configuration of 9 runs.
        let b = m
            .iter()
            .find(|r| r.release == Release::Alpha13 && r.group.is_empty())
            .unwrap();
        assert_eq!(b.runs, 9);
        assert_eq!(m.iter().filter(|r| r.proxy).count(), 17);
    }
}
