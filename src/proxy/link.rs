//! An emulated link in one direction: a rate (serialisation at `rate_bps`, a token bucket with a
//! one-chunk burst) and a one-way delay with optional jitter, pipelined like a real link: each
//! chunk is released at `departure + delay`, independent of the chunks behind it, so delay lowers
//! throughput only through TCP's window. Release times never go backwards, so jitter never
//! reorders bytes. Pure: times are `Duration`s since the link started.

use std::time::Duration;

/// The parameters of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkSpec {
    /// Bits per second; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// One-way delay added to every chunk.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per chunk.
    pub jitter: Duration,
}

impl LinkSpec {
    /// Whether this direction changes the traffic at all.
    pub fn is_shaped(&self) -> bool {
        self.rate_bps.is_some() || !self.delay.is_zero() || !self.jitter.is_zero()
    }

    /// The largest chunk to schedule at once: about 10 ms of the link's rate (so shaping is
    /// smooth at 64 kbit/s as at 1 Gbit/s), at least one full-size segment, at most 64 KiB.
    pub fn chunk_bytes(&self) -> usize {
        match self.rate_bps {
            Some(bps) => ((bps / 8 / 100) as usize).clamp(1460, 64 * 1024),
            None => 64 * 1024,
        }
    }

    /// Bytes that may wait inside the link: twice the bandwidth-delay product at the longest
    /// one-way delay (delay + jitter), for headroom over what is in flight, plus four chunks so
    /// the link always has the next chunk in hand; at most [`MAX_QUEUE`], and never less than
    /// four chunks. This bounds the proxy's memory per connection and direction; past it the
    /// reader stops and TCP pushes back on the sender. With no fixed minimum, a slow link's
    /// queue stays short: at 3G's 0.75 Mbit/s it holds about 0.2 s, not seconds of bufferbloat
    /// on top of the delay asked for.
    pub fn queue_bytes(&self) -> usize {
        let delay = (self.delay + self.jitter).as_secs_f64();
        let bdp = match self.rate_bps {
            Some(bps) => bps as f64 / 8.0 * delay,
            // Unlimited rate: size for 10 Gbit/s, within the cap.
            None => 10e9 / 8.0 * delay,
        };
        ((2.0 * bdp) as usize + 4 * self.chunk_bytes()).min(MAX_QUEUE)
    }
}

/// Most bytes one direction of one connection holds inside an emulated link: with delay only
/// (no rate), 16 MiB keeps a 100 ms one-way delay above 1 Gbit/s, more than TCP's default
/// windows give a real path of that length.
pub const MAX_QUEUE: usize = 16 << 20;

/// When a chunk leaves the emulated link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// When its last byte reaches the far end.
    pub release: Duration,
    /// How long the link took to serialise it (zero without a rate): its bytes reach the far end
    /// over `release - serialise ..= release`.
    pub serialise: Duration,
}

/// The scheduling state of one direction.
#[derive(Debug, Clone)]
pub struct ShapedLink {
    spec: LinkSpec,
    /// When the link finishes serialising what it has been given.
    free_at: Duration,
    /// The last release time handed out, so releases never go backwards.
    last_release: Duration,
}

impl ShapedLink {
    pub fn new(spec: LinkSpec) -> ShapedLink {
        ShapedLink {
            spec,
            free_at: Duration::ZERO,
            last_release: Duration::ZERO,
        }
    }

    /// A chunk of `bytes` arrives at `now`; returns when it leaves the far end.
    /// `jitter_fraction` in `[0, 1]` picks the jitter (the caller draws it, so this stays pure).
    /// A chunk held back behind a jittered one still leaves no sooner than its own serialisation
    /// time after it, so jitter never pushes the link above its rate.
    pub fn schedule(&mut self, now: Duration, bytes: usize, jitter_fraction: f64) -> Slot {
        let start = now.max(self.free_at);
        let serialise = match self.spec.rate_bps {
            Some(bps) if bps > 0 => Duration::from_secs_f64(bytes as f64 * 8.0 / bps as f64),
            _ => Duration::ZERO,
        };
        self.free_at = start + serialise;
        let jitter = self.spec.jitter.mul_f64(jitter_fraction.clamp(0.0, 1.0));
        let release = (self.free_at + self.spec.delay + jitter).max(self.last_release + serialise);
        self.last_release = release;
        Slot { release, serialise }
    }
}

/// A named link, with its numbers documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub up_bps: u64,
    pub down_bps: u64,
    /// Round-trip time; half is applied in each direction.
    pub rtt: Duration,
    pub about: &'static str,
}

const fn mbit(m: u64) -> u64 {
    m * 1_000_000
}

/// The built-in profiles. `fiber`, `cable` and `lan` match the scenarios TLSNotary's
/// benchmarks publish (100 Mbit/s at 15 ms, 20 Mbit/s at 20 ms, and a fast local link).
pub const PROFILES: [Profile; 7] = [
    Profile {
        name: "lan",
        up_bps: mbit(1000),
        down_bps: mbit(1000),
        rtt: Duration::from_millis(1),
        about: "gigabit local network",
    },
    Profile {
        name: "fiber",
        up_bps: mbit(100),
        down_bps: mbit(100),
        rtt: Duration::from_millis(15),
        about: "fibre to the home (TLSNotary's 'fiber' scenario)",
    },
    Profile {
        name: "cable",
        up_bps: mbit(20),
        down_bps: mbit(20),
        rtt: Duration::from_millis(20),
        about: "cable broadband (TLSNotary's 'cable' scenario)",
    },
    Profile {
        name: "5g",
        up_bps: mbit(30),
        down_bps: mbit(30),
        rtt: Duration::from_millis(30),
        about: "typical 5G mobile",
    },
    Profile {
        name: "4g",
        up_bps: mbit(10),
        down_bps: mbit(20),
        rtt: Duration::from_millis(60),
        about: "typical 4G/LTE mobile",
    },
    Profile {
        name: "3g",
        up_bps: 750_000,
        down_bps: mbit(2),
        rtt: Duration::from_millis(150),
        about: "3G mobile",
    },
    Profile {
        name: "satellite",
        up_bps: mbit(3),
        down_bps: mbit(25),
        rtt: Duration::from_millis(600),
        about: "geostationary satellite",
    },
];

/// Looks a profile up by name (case-insensitive).
pub fn profile(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

impl Profile {
    /// The up (client -> upstream) and down directions of this profile.
    pub fn links(&self) -> (LinkSpec, LinkSpec) {
        let half = self.rtt / 2;
        (
            LinkSpec {
                rate_bps: Some(self.up_bps),
                delay: half,
                jitter: Duration::ZERO,
            },
            LinkSpec {
                rate_bps: Some(self.down_bps),
                delay: half,
                jitter: Duration::ZERO,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rate_serialises_back_to_back_chunks() {
        // 8 Mbit/s = 1 byte per microsecond: 1000-byte chunks take 1 ms each.
        let mut link = ShapedLink::new(LinkSpec {
            rate_bps: Some(8_000_000),
            ..Default::default()
        });
        let releases: Vec<_> = (0..5)
            .map(|_| link.schedule(Duration::ZERO, 1000, 0.0).release)
            .collect();
        assert_eq!(releases, vec![MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS]);
    }

    #[test]
    fn delay_is_pipelined_not_added_per_chunk() {
        let mut link = ShapedLink::new(LinkSpec {
            rate_bps: Some(8_000_000),
            delay: 50 * MS,
            jitter: Duration::ZERO,
        });
        let a = link.schedule(Duration::ZERO, 1000, 0.0).release;
        let b = link.schedule(Duration::ZERO, 1000, 0.0).release;
        assert_eq!(a, 51 * MS);
        assert_eq!(
            b,
            52 * MS,
            "the second chunk follows 1 ms later, not 50 ms later"
        );
    }

    #[test]
    fn an_idle_link_starts_fresh() {
        let mut link = ShapedLink::new(LinkSpec {
            rate_bps: Some(8_000_000),
            delay: 10 * MS,
            jitter: Duration::ZERO,
        });
        link.schedule(Duration::ZERO, 1000, 0.0);
        assert_eq!(link.schedule(100 * MS, 1000, 0.0).release, 111 * MS);
    }

    #[test]
    fn jitter_never_reorders() {
        let mut link = ShapedLink::new(LinkSpec {
            rate_bps: None,
            delay: 10 * MS,
            jitter: 20 * MS,
        });
        let first = link.schedule(Duration::ZERO, 100, 1.0).release;
        let second = link.schedule(MS, 100, 0.0).release;
        assert_eq!(first, 30 * MS);
        assert_eq!(
            second,
            30 * MS,
            "held back to keep order, not sent before the first"
        );
    }

    #[test]
    fn long_run_rate_is_exact() {
        for bps in [64_000u64, 1_000_000, 100_000_000, 1_000_000_000] {
            let spec = LinkSpec {
                rate_bps: Some(bps),
                ..Default::default()
            };
            let mut link = ShapedLink::new(spec);
            let chunk = spec.chunk_bytes();
            let total_bytes = chunk * 1000;
            let mut last = Duration::ZERO;
            for _ in 0..1000 {
                last = link.schedule(Duration::ZERO, chunk, 0.0).release;
            }
            let rate = total_bytes as f64 * 8.0 / last.as_secs_f64();
            assert!((rate / bps as f64 - 1.0).abs() < 1e-6, "{bps}: {rate}");
        }
    }

    #[test]
    fn profiles_are_documented_and_split_the_rtt() {
        let cable = profile("CABLE").unwrap();
        let (up, down) = cable.links();
        assert_eq!(up.rate_bps, Some(20_000_000));
        assert_eq!(up.delay + down.delay, Duration::from_millis(20));
        for name in ["lan", "fiber", "cable", "5g", "4g", "3g", "satellite"] {
            assert!(profile(name).is_some(), "{name}");
        }
    }

    #[test]
    fn jitter_never_lifts_the_link_above_its_rate() {
        // 8 Mbit/s: 1000 bytes take 1 ms. The first chunk draws the full 20 ms of jitter, the
        // rest none: they queue behind it and leave 1 ms apart, not in a burst.
        let mut link = ShapedLink::new(LinkSpec {
            rate_bps: Some(8_000_000),
            delay: 10 * MS,
            jitter: 20 * MS,
        });
        let first = link.schedule(Duration::ZERO, 1000, 1.0);
        assert_eq!(
            first,
            Slot {
                release: 31 * MS,
                serialise: MS
            }
        );
        let rest: Vec<_> = (0..4)
            .map(|_| link.schedule(Duration::ZERO, 1000, 0.0).release)
            .collect();
        assert_eq!(rest, vec![32 * MS, 33 * MS, 34 * MS, 35 * MS]);
    }

    #[test]
    fn queue_holds_a_bandwidth_delay_product() {
        let spec = LinkSpec {
            rate_bps: Some(1_000_000_000),
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
        };
        // 2 x 1.25 MB + four 64 KiB chunks.
        assert_eq!(spec.queue_bytes(), 2_500_000 + 4 * 64 * 1024);
        assert_eq!(LinkSpec::default().queue_bytes(), 4 * 64 * 1024);
    }

    #[test]
    fn queues_stay_short_on_slow_links_and_bounded_on_long_ones() {
        let (up, _) = profile("3g").unwrap().links();
        let seconds = up.queue_bytes() as f64 * 8.0 / up.rate_bps.unwrap() as f64;
        assert!(seconds < 0.25, "3g up queues {seconds} s");
        for delay in [30, 100, 1000] {
            let delay_only = LinkSpec {
                delay: Duration::from_millis(delay),
                ..Default::default()
            };
            assert_eq!(delay_only.queue_bytes(), MAX_QUEUE);
        }
    }
}
