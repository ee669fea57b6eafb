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
        self.add_spread(dir, at, at, bytes);
    }

    /// Adds `bytes` in `dir` spread evenly over `from..to`, as a link that serialised them over
    /// that time delivers them; every byte lands in some bin (the rounding goes to the last).
    /// An empty span (`from == to`) is one [`Timeline::add`] at `to`.
    pub fn add_spread(&mut self, dir: Dir, from: Duration, to: Duration, bytes: u64) {
        let from = from.min(to);
        // A span that ends on a bin boundary ends in the bin before it: 0..30 ms is three
        // 10 ms bins, not four.
        let end = if to > from {
            to - Duration::from_nanos(1)
        } else {
            to
        };
        while self.index(end) >= MAX_BINS {
            self.coarsen();
        }
        let (first, last) = (self.index(from), self.index(end));
        let bin = self.bin;
        let bins = match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        };
        if bins.len() <= last {
            bins.resize(last + 1, 0);
        }
        let span = (to - from).as_nanos();
        if first == last || span == 0 {
            bins[last] += bytes;
            return;
        }
        let mut given = 0;
        for (i, slot) in bins.iter_mut().enumerate().take(last).skip(first) {
            // The part of from..to inside bin i.
            let inside_end = (bin.as_nanos() * (i as u128 + 1)).min(to.as_nanos());
            let inside_start = (bin.as_nanos() * i as u128).max(from.as_nanos());
            let share = (bytes as u128 * (inside_end - inside_start) / span) as u64;
            *slot += share;
            given += share;
        }
        bins[last] += bytes - given;
    }

    fn index(&self, at: Duration) -> usize {
        (at.as_nanos() / self.bin.as_nanos()) as usize
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
    fn spread_bytes_follow_the_time_they_took() {
        let mut t = Timeline::new(Duration::from_millis(10));
        // 3000 bytes over 5..35 ms: 500 in bin 0, 1000 in bins 1 and 2, 500 in bin 3.
        t.add_spread(
            Dir::Up,
            Duration::from_millis(5),
            Duration::from_millis(35),
            3000,
        );
        assert_eq!(t.up, vec![500, 1000, 1000, 500]);
        // Rounding never loses a byte, and a span ending on a boundary ends in the bin before.
        t.add_spread(Dir::Down, Duration::ZERO, Duration::from_millis(30), 10);
        assert_eq!(t.down, vec![3, 3, 4]);
        // A span inside one bin is one add.
        t.add_spread(
            Dir::Down,
            Duration::from_millis(41),
            Duration::from_millis(42),
            7,
        );
        assert_eq!(t.down[4], 7);
    }

    #[test]
    fn a_span_past_the_last_bin_coarsens_first() {
        let mut t = Timeline::new(Duration::from_millis(1));
        t.add_spread(
            Dir::Up,
            Duration::ZERO,
            Duration::from_secs(3600),
            1_000_000,
        );
        assert!(t.up.len() <= MAX_BINS);
        assert_eq!(t.up.iter().sum::<u64>(), 1_000_000);
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
