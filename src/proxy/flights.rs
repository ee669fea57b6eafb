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

/// Splits a connection's chunks into flights.
#[derive(Debug, Clone, Default)]
pub struct FlightTracker {
    flights: Vec<Flight>,
}

/// Most flights kept per connection; past this they are still counted, not stored.
pub const MAX_KEPT: usize = 100_000;

impl FlightTracker {
    /// Records `bytes` arriving in direction `dir` at `at`.
    pub fn record(&mut self, dir: Dir, bytes: u64, at: Duration) {
        match self.flights.last_mut() {
            Some(f) if f.dir == dir => {
                f.bytes += bytes;
                f.end = at.max(f.end);
            }
            last => {
                let gap = at.saturating_sub(last.map_or(Duration::ZERO, |f| f.end));
                self.flights.push(Flight {
                    dir,
                    bytes,
                    start: at,
                    end: at,
                    gap,
                });
            }
        }
    }

    pub fn flights(&self) -> &[Flight] {
        &self.flights
    }

    pub fn count(&self) -> usize {
        self.flights.len()
    }

    /// Round trips: a request flight and the response flight after it make one.
    pub fn round_trips(&self) -> usize {
        self.flights.len().div_ceil(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn runs_in_one_direction_merge() {
        let mut t = FlightTracker::default();
        t.record(Dir::Up, 100, MS);
        t.record(Dir::Up, 50, 2 * MS);
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
    fn empty_connection_has_no_flights() {
        let t = FlightTracker::default();
        assert_eq!((t.count(), t.round_trips()), (0, 0));
    }
}
