//! Flights: a flight is a maximal run of data in one direction before data flows the other way.
//! The number of flights is the number of one-way trips the protocol needed, which is what makes
//! MPC protocols latency-bound. Pure: fed with times and byte counts.

use std::time::Duration;

use serde::Serialize;

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }
}

/// One flight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flight {
    pub dir: Dir,
    pub bytes: u64,
    /// When its first byte arrived, since the connection opened.
    #[serde(serialize_with = "secs")]
    pub start: Duration,
    /// When its last byte arrived.
    #[serde(serialize_with = "secs")]
    pub end: Duration,
    /// Silence before it: from the end of the previous flight (or the open) to its start.
    #[serde(serialize_with = "secs")]
    pub gap: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Splits a connection's chunks into flights. Every flight is counted; the first [`MAX_KEPT`]
/// are stored with their bytes and times.
#[derive(Debug, Clone, Default)]
pub struct FlightTracker {
    kept: Vec<Flight>,
    count: usize,
    /// The direction and end of the newest flight, stored or not.
    newest: Option<(Dir, Duration)>,
}

/// Most flights stored per connection (about 4 MB); past this they are still counted.
pub const MAX_KEPT: usize = 100_000;

impl FlightTracker {
    /// Records `bytes` arriving in direction `dir` at `at`; returns whether they began a new
    /// flight.
    pub fn record(&mut self, dir: Dir, bytes: u64, at: Duration) -> bool {
        match self.newest {
            Some((newest, end)) if newest == dir => {
                let end = at.max(end);
                self.newest = Some((dir, end));
                // The newest flight is stored when every flight so far is.
                if self.kept.len() == self.count {
                    let f = self.kept.last_mut().expect("a stored newest flight");
                    f.bytes += bytes;
                    f.end = end;
                }
                false
            }
            newest => {
                let gap = at.saturating_sub(newest.map_or(Duration::ZERO, |(_, end)| end));
                self.count += 1;
                self.newest = Some((dir, at));
                if self.kept.len() < MAX_KEPT {
                    self.kept.push(Flight {
                        dir,
                        bytes,
                        start: at,
                        end: at,
                        gap,
                    });
                }
                true
            }
        }
    }

    /// The stored flights: the first [`MAX_KEPT`].
    pub fn flights(&self) -> &[Flight] {
        &self.kept
    }

    /// Every flight so far, stored or not.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Round trips: a request flight and the response flight after it make one.
    pub fn round_trips(&self) -> usize {
        self.count.div_ceil(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn runs_in_one_direction_merge() {
        let mut t = FlightTracker::default();
        assert!(
            t.record(Dir::Up, 100, MS),
            "the first chunk begins a flight"
        );
        assert!(!t.record(Dir::Up, 50, 2 * MS), "the second continues it");
        t.record(Dir::Down, 1000, 10 * MS);
        t.record(Dir::Down, 1000, 11 * MS);
        t.record(Dir::Up, 10, 30 * MS);
        let f = t.flights();
        assert_eq!(t.count(), 3);
        assert_eq!(t.round_trips(), 2);
        assert_eq!((f[0].dir, f[0].bytes, f[0].gap), (Dir::Up, 150, MS));
        assert_eq!((f[1].dir, f[1].bytes, f[1].gap), (Dir::Down, 2000, 8 * MS));
        assert_eq!((f[2].bytes, f[2].start, f[2].gap), (10, 30 * MS, 19 * MS));
    }

    #[test]
    fn flights_past_the_stored_ones_are_still_counted() {
        let mut t = FlightTracker::default();
        let extra = 7;
        for i in 0..MAX_KEPT + extra {
            let dir = if i % 2 == 0 { Dir::Up } else { Dir::Down };
            t.record(dir, 10, MS * i as u32);
            // A second chunk of the same flight.
            t.record(dir, 5, MS * i as u32);
        }
        assert_eq!(t.count(), MAX_KEPT + extra);
        assert_eq!(t.round_trips(), (MAX_KEPT + extra).div_ceil(2));
        assert_eq!(t.flights().len(), MAX_KEPT);
        let last = t.flights().last().unwrap();
        assert_eq!(
            last.bytes, 15,
            "later chunks do not pile into the last stored flight"
        );
        assert_eq!(last.dir, Dir::Down);
    }

    #[test]
    fn empty_connection_has_no_flights() {
        let t = FlightTracker::default();
        assert_eq!((t.count(), t.round_trips()), (0, 0));
    }
}
