//! Renders results as text or JSON to any `impl Write`. Unit formatting lives in [`units`].
//! Nothing here measures: reports take samples and compute only derived figures (rates,
//! summaries).

pub mod demo;
pub mod latency;
pub mod monitor;
pub mod mpc;
pub mod plot;
pub mod proxy;
pub mod stream;
pub mod transfer;
pub mod units;

use std::time::Duration;

/// Output format of a reporting command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON, numbers in base units: one document (NDJSON events for `proxy`).
    Json,
}

/// How rates are shown: bytes per second (binary prefixes) or bits per second (decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateUnit {
    Bytes,
    Bits,
}

impl RateUnit {
    /// Suffix of JSON keys holding a rate in this unit.
    pub fn json_suffix(self) -> &'static str {
        match self {
            RateUnit::Bytes => "bytes_per_second",
            RateUnit::Bits => "bits_per_second",
        }
    }

    /// A rate of `bytes` over `elapsed`, in this unit; zero if no time passed.
    pub fn rate(self, bytes: u64, elapsed: Duration) -> f64 {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        let per_second = bytes as f64 / secs;
        match self {
            RateUnit::Bytes => per_second,
            RateUnit::Bits => per_second * 8.0,
        }
    }

    /// Formats a rate already in this unit.
    pub fn format(self, rate: f64) -> String {
        match self {
            RateUnit::Bytes => units::format_byte_rate(rate),
            RateUnit::Bits => units::format_bit_rate(rate),
        }
    }
}
