//! Bytes per direction per time bin. Bounded: past [`MAX_BINS`] bins the bin width doubles and
//! neighbouring bins merge, so an hours-long connection costs no more than a short one.

use std::time::Duration;

use serde::Serialize;

use super::flights::Dir;

/// Most bins kept per direction.
pub const MAX_BINS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    #[serde(serialize_with = "secs")]
    pub bin: Duration,
    pub up: Vec<u64>,
    pub down: Vec<u64>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Timeline {
    pub fn new(bin: Duration) -> Timeline {
        Timeline {
            bin: bin.max(Duration::from_micros(100)),
            up: Vec::new(),
            down: Vec::new(),
        }
    }

    /// Adds `bytes` in `dir` at `at` (since the timeline's start).
    pub fn add(&mut self, dir: Dir, at: Duration, bytes: u64) {
        let mut index = (at.as_nanos() / self.bin.as_nanos()) as usize;
        while index >= MAX_BINS {
            self.coarsen();
            index = (at.as_nanos() / self.bin.as_nanos()) as usize;
        }
        let bins = match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        };
        if bins.len() <= index {
            bins.resize(index + 1, 0);
        }
        bins[index] += bytes;
    }

    fn coarsen(&mut self) {
        self.bin *= 2;
        for bins in [&mut self.up, &mut self.down] {
            *bins = bins.chunks(2).map(|c| c.iter().sum()).collect();
        }
    }

    /// The highest rate of any bin in `dir`, bits per second.
    pub fn peak_bps(&self, dir: Dir) -> f64 {
        let bins = match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        };
        let max = bins.iter().copied().max().unwrap_or(0);
        max as f64 * 8.0 / self.bin.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_and_peak() {
        let mut t = Timeline::new(Duration::from_millis(10));
        t.add(Dir::Up, Duration::from_millis(5), 100);
        t.add(Dir::Up, Duration::from_millis(9), 100);
        t.add(Dir::Up, Duration::from_millis(25), 50);
        t.add(Dir::Down, Duration::from_millis(10), 1000);
        assert_eq!(t.up, vec![200, 0, 50]);
        assert_eq!(t.down, vec![0, 1000]);
        assert_eq!(t.peak_bps(Dir::Down), 1000.0 * 8.0 / 0.01);
    }

    #[test]
    fn long_timelines_coarsen_and_keep_every_byte() {
        let mut t = Timeline::new(Duration::from_millis(1));
        let mut total = 0;
        for s in 0..200u64 {
            t.add(Dir::Up, Duration::from_secs(s), 7);
            total += 7;
        }
        assert!(t.up.len() <= MAX_BINS);
        assert_eq!(t.up.iter().sum::<u64>(), total);
        assert!(t.bin > Duration::from_millis(1));
    }
}
